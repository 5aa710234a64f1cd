#!/usr/bin/perl

# conf/gateway-node.conf, the scale-out example (one of three nodes before
# an S1 hub), as shipped but for addresses and files: it passes nginx -t,
# serves an update the hub applies, sends its audit line to syslog and
# counts it on the metrics port.  Then what README's "Operations" says of
# reloads: an idle keep-alive connection is closed (a new one works), the
# new workers sign new tokens while the counters stay, and a reload with a
# broken hub key file keeps the old configuration serving.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw(sleep time);
use IoTHubTwin;
use NodeExample;

my $t = IoTHubTwin->new;

my $http = NodeExample::http_conf($t,
                                  "$IoTHubTwin::ROOT/conf/gateway-node.conf",
                                  "$IoTHubTwin::ROOT/conf/audit.conf");

NodeExample::check($t, $http, 'conf/gateway-node.conf');

sub metric {
    my ($name) = @_;
    my $m = IoTHubTwin::http_request('127.0.0.1', $t->port('metrics'),
                                     path => '/metrics');
    return ($m->{body} // '') =~ /^\Q$name\E (\d+)$/m ? $1 : undef;
}

sub workers {
    my $master = $t->{nginx};
    return map { (split ' ')[0] }
        grep { /nginx: worker process/ } `ps -o pid=,args= --ppid $master`;
}

sub reload_and_drain {
    my @old = workers();
    $t->reload_nginx($http);
    my $deadline = time + 20;
    sleep 0.05 while time < $deadline && grep { kill 0, $_ } @old;
}

# one keep-alive request on an open connection; the answer's status, or
# undef when the connection was closed
sub keepalive_update {
    my ($s) = @_;
    my $token = $t->secret(IoTHubTwin::sas_token(
        sr => $NodeExample::SAS_HOST, skn => $NodeExample::CALLER,
        key => $NodeExample::CALLER_KEY));
    my $body = '{"tags":{"keepalive":1}}';
    $s->syswrite("PATCH /twins/dev1 HTTP/1.1\r\nHost: gateway\r\n"
                 . "Authorization: $token\r\n"
                 . "Content-Type: application/json\r\n"
                 . 'Content-Length: ' . length($body) . "\r\n\r\n$body");
    my $text = '';
    my $sel = IO::Select->new($s);
    while ($sel->can_read(5)) {
        my $n = sysread($s, my $buf, 65536);
        last unless $n;
        $text .= $buf;
        if ($text =~ /^(.*?\r\n\r\n)/s) {
            my $head = $1;
            my ($len) = $head =~ /^Content-Length: (\d+)\r$/mi;
            last if defined $len && length($text) >= length($head) + $len;
        }
    }
    return $text =~ m{^HTTP/1\.1 (\d{3})} ? $1 : undef;
}

# a reload: the idle keep-alive connection is closed, a new one works;
# the counters stay, the new worker signs a new token

my $signed = metric('iothub_twin_tokens_signed_total');
my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                              PeerPort => $t->port('gw'), Proto => 'tcp')
    or die "connect: $!";
is(keepalive_update($s), 200, 'keep-alive: the first update');

reload_and_drain();

my $sel = IO::Select->new($s);
ok($sel->can_read(5) && !sysread($s, my $buf, 1),
   'reload: nginx closed the idle keep-alive connection');
close $s;

$s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                           PeerPort => $t->port('gw'), Proto => 'tcp')
    or die "connect: $!";
is(keepalive_update($s), 200, 'reload: an update on a new connection');
close $s;

is(metric('iothub_twin_requests_total{caller="orders-service",'
          . 'operation="update",decision="allow",status="2xx"}'), 3,
   'reload: the counters kept the updates from before it');
is(metric('iothub_twin_tokens_signed_total'), $signed + 1,
   'reload: the new worker signed its own token');

# a reload with a broken hub key file: nginx keeps the old configuration

$t->allow_log(qr/\[emerg\].*hub\.key/);
my $generation = metric('iothub_twin_policy_generation');
my $key = $t->read_file('hub.key');
$t->write_file('hub.key', "this is not base64!\n");
$t->reload_nginx($http);
like($t->read_file('error.log'), qr/\[emerg\].*hub\.key.*line 1/,
     'broken key file: the reload fails and says where');
is(NodeExample::update($t, { broken => 'file' })->{status}, 200,
   'broken key file: the old configuration keeps serving');
is(metric('iothub_twin_policy_generation'), $generation,
   "broken key file: no configuration was loaded (generation $generation)");
$t->write_file('hub.key', $key);

$t->finish;
done_testing;
