#!/usr/bin/perl

# The hub is reached over TLS with its certificate verified: a gateway that
# does not trust the hub's issuer forwards nothing.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IoTHubTwin;

my $t = IoTHubTwin->new;

(my $conf = IoTHubTwin::gateway('')) =~ s/%%CA%%/%%OTHER_CA%%/;
$t->start_nginx($conf);

my $r = $t->patch('/twins/dev1', { tags => { a => 1 } });
is($r->{status}, 502, 'untrusted hub certificate: 502');
is(scalar @{$t->hub_requests}, 0, 'the hub received no request');
like($t->read_file('error.log'), qr/upstream SSL certificate verify error/,
     'error.log says why');
is($t->hub_twin('dev1')->{version}, 1, 'hub state unchanged');

# the name is verified too: the right CA, but the hub reached by a name
# that is not in its certificate

$conf = IoTHubTwin::gateway('');
$conf =~ s{iothub_twin_pass https://%%HUB%%;}{iothub_twin_pass https://wronghub;\n            iothub_twin_hub %%HUB%%;};
$t->start_nginx("    upstream wronghub { server 127.0.0.1:%%HUB_PORT%%; }\n"
                . $conf);

$r = $t->patch('/twins/dev1', { tags => { a => 1 } });
is($r->{status}, 502, 'certificate for another name: 502');
is(scalar @{$t->hub_requests}, 0, 'the hub received no request');

$t->finish;

done_testing;
