#!/usr/bin/perl

# conf/gateway-node.conf, the scale-out example (one of three nodes before
# an S1 hub), as shipped but for addresses and files: it passes nginx -t,
# serves an update the hub applies, sends its audit line to syslog and
# counts it on the metrics port.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IoTHubTwin;
use NodeExample;

my $t = IoTHubTwin->new;

NodeExample::check($t,
                   NodeExample::http_conf($t,
                       "$IoTHubTwin::ROOT/conf/gateway-node.conf",
                       "$IoTHubTwin::ROOT/conf/audit.conf"),
                   'conf/gateway-node.conf');

$t->finish;
done_testing;
