#!/usr/bin/perl

# A hub's throttle, respected once for everybody (iothub_twin_hub_backoff):
# after the hub answers 429, every worker answers further writes to that
# hub itself, in the hub's ThrottlingException shape with the time left as
# Retry-After, for the hub's Retry-After or the configured window, and
# forwards nothing; reads are governed apart; the first write after the
# window reaches the hub again.  Off by default.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep);
use IoTHubTwin qw(json_encode);

my $t = IoTHubTwin->new;

$t->start_nginx("    iothub_twin_backoff_zone 64k;\n"
                . "    iothub_twin_metrics_zone 64k;\n"
                . IoTHubTwin::gateway(<<'EOF', server => <<'EOF2'),
            iothub_twin_read on;
            iothub_twin_hub_backoff 1s;
EOF
        location = /metrics {
            iothub_twin_metrics;
        }
EOF2
                workers => 2);

sub update { $t->patch('/twins/dev1', { tags => { n => ++$t->{n} } }) }
sub read_twin { $t->http(method => 'GET', path => '/twins/dev1') }
sub hub_seen { scalar @{$t->hub_requests} }

# the hub throttles a write, with Retry-After: 2

$t->hub_reset;
$t->hub_config(fail => { status => 429, retry_after => '2', count => 1 });
my $r = update();
is($r->{status}, 429, 'the hub\'s 429 reaches the caller');
is($r->{headers}{'retry-after'}, '2', 'with the hub\'s Retry-After');
is(hub_seen(), 1, 'the hub saw that one');

# every worker now answers writes itself
my @answers;
for (1 .. 8) {
    $r = update();
    push @answers, $r;
}
is(join(',', map { $_->{status} } @answers), join(',', (429) x 8),
   'the next writes: 429 from the gateway, whichever worker');
IoTHubTwin::is_hub_error($answers[0], 429, 'ThrottlingException',
                         qr/the hub is throttling writes/,
                         'in the hub\'s ThrottlingException shape');
ok(!(grep { ($_->{headers}{'retry-after'} // '') !~ /^[12]$/ } @answers),
   'with the time left as Retry-After');
is(hub_seen(), 1, 'none of them reached the hub');

# reads are governed apart
$r = read_twin();
is($r->{status}, 200, 'a read during the window goes through');
is(hub_seen(), 2, 'and reached the hub');

# after the window, writes reach the hub again
sleep 2.1;
$r = update();
is($r->{status}, 200, 'the first write after the window: 200');
is(hub_seen(), 3, 'it reached the hub');

# no Retry-After from the hub: the configured window (1s)
$t->hub_reset;
$t->hub_config(fail => { status => 429, count => 1 });
is(update()->{status}, 429, 'a 429 without Retry-After');
$r = update();
is($r->{status}, 429, 'the next write is answered by the gateway');
is($r->{headers}{'retry-after'}, '1', 'for the configured window');
is(hub_seen(), 1, 'and not forwarded');
sleep 1.1;
is(update()->{status}, 200, 'after the window: 200');

# a throttled read holds back reads, not writes
$t->hub_reset;
$t->hub_config(fail => { status => 429, retry_after => '2', count => 1 });
is(read_twin()->{status}, 429, 'the hub throttles a read');
is(read_twin()->{status}, 429, 'the next read is answered by the gateway');
is(update()->{status}, 200, 'a write still goes through');
is(hub_seen(), 2, 'the hub saw the first read and the write');

# the counters
$r = $t->http(method => 'GET', path => '/metrics');
like($r->{body},
     qr/^iothub_twin_hub_throttled_total\{hub="testhub\.azure-devices\.net"\} 3$/m,
     'metrics: the hub\'s 429s');
my ($answered) = $r->{body} =~
    /^iothub_twin_backoff_answered_total\{hub="testhub\.azure-devices\.net"\} (\d+)$/m;
is($answered, 10, 'metrics: the 429s answered for the hub');

$t->finish;

# off by default: a 429 changes nothing for the next request

$t = IoTHubTwin->new;
$t->start_nginx(IoTHubTwin::gateway(''));
$t->hub_config(fail => { status => 429, retry_after => '5', count => 1 });
is(update()->{status}, 429, 'off: the hub\'s 429');
is(update()->{status}, 200, 'off: the next write is forwarded');
is(hub_seen(), 2, 'off: the hub saw both');

# configuration errors name the directive and the value
my ($rc, $out) = $t->nginx_test(IoTHubTwin::gateway(
    "            iothub_twin_hub_backoff on;\n"));
isnt($rc, 0, 'on without a zone: nginx -t fails');
like($out, qr/"iothub_twin_hub_backoff on" needs "iothub_twin_backoff_zone"/,
     'on without a zone: the message says what is missing');
($rc, $out) = $t->nginx_test("    iothub_twin_backoff_zone 64k;\n"
    . IoTHubTwin::gateway("            iothub_twin_hub_backoff 2h;\n"));
like($out, qr/invalid value "2h" in "iothub_twin_hub_backoff"/,
     'a window over 1h: the message names the value');

$t->finish;

done_testing;
