#!/usr/bin/perl

# Metrics: a scripted sequence of requests across two workers, then the
# counters read from iothub_twin_metrics; a reload keeps them and bumps the
# generation.  And rate limits: per caller and per device, with the hub's
# ThrottlingException shape and Retry-After, while other callers pass.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IoTHubTwin qw(json_encode);

my $t = IoTHubTwin->new;

$t->write_file('callers.json', json_encode({ callers => {
    'backend-a' => { rules => [ { operations => ['read', 'update'],
                                  devices => ['dev1', 'dev2'],
                                  tags => ['**'] } ] },
    'backend-b' => { rules => [ { operations => ['update'],
                                  devices => ['dev2'], tags => ['**'] } ] },
} }));

my $conf = "    iothub_twin_metrics_zone 1m;\n"
    . "    include %%ROOT%%/conf/rate-limits.conf;\n"
    . IoTHubTwin::gateway(<<'EOF', server => <<'EOF2');
            iothub_twin_read on;
            iothub_twin_identity variable $http_x_test_caller;
            iothub_twin_callers %%DIR%%/callers.json;
            limit_req zone=iothub_caller burst=40 nodelay;
            limit_req zone=iothub_device burst=6 nodelay;
            limit_req_status 429;
            add_header X-Worker $pid always;
EOF
        error_page 429 /.iothub_twin/429;
        location = /.iothub_twin/429 {
            internal;
            iothub_twin_error 429 ThrottlingException "too many requests"
                              retry_after=1;
        }
        location = /metrics {
            iothub_twin_metrics;
        }
EOF2

$t->start_nginx($conf, workers => 2);

my %forwarded_by;

sub as {
    my ($caller, $path, $body) = @_;
    my $r = $t->patch($path, $body, 'X-Test-Caller' => $caller);
    $forwarded_by{$r->{headers}{'x-worker'}}++ if $r->{status} == 200;
    return $r;
}

sub metrics {
    my $r = $t->http(path => '/metrics');
    is($r->{status}, 200, 'metrics: 200');
    like($r->{headers}{'content-type'}, qr{^text/plain; version=0\.0\.4},
         'metrics: Prometheus text format');
    my %m;
    for (split /\n/, $r->{body}) {
        next if /^#/;
        my ($k, $v) = /^(\S+) (\S+)$/ or next;
        $m{$k} = $v;
    }
    return \%m;
}

# the sequence: over several connections, so both workers take part

as('backend-a', '/twins/dev1', { tags => { n => $_ } }) for 1 .. 2;    # 200
as('backend-a', '/twins/dev2', { tags => { n => 1 } });                # 200
as('backend-b', '/twins/dev2', { tags => { n => 2 } });                # 200
as('backend-b', '/twins/dev1', { tags => { n => 3 } });                # 403
as('backend-a', '/twins/dev1', '{"tags":{"$x":1}}');                   # 400
as('backend-a', '/twins/dev1', '{"tags":');                            # 400
as('nobody', '/twins/dev1', { tags => { n => 4 } });                   # 401
my $g = $t->http(method => 'GET', path => '/twins/dev1',
                 headers => ['X-Test-Caller' => 'backend-a']);         # 200
$forwarded_by{$g->{headers}{'x-worker'}}++;

my $m = metrics();

my %want = (
    'iothub_twin_requests_total{caller="backend-a",operation="update",decision="allow",status="2xx"}' => 3,
    'iothub_twin_requests_total{caller="backend-a",operation="read",decision="allow",status="2xx"}' => 1,
    'iothub_twin_requests_total{caller="backend-b",operation="update",decision="allow",status="2xx"}' => 1,
    'iothub_twin_requests_total{caller="backend-b",operation="update",decision="deny",status="4xx"}' => 1,
    'iothub_twin_requests_total{caller="backend-a",operation="update",decision="refused",status="4xx"}' => 2,
    'iothub_twin_requests_total{caller="-",operation="update",decision="unauthenticated",status="4xx"}' => 1,
    'iothub_twin_refusals_total{code="ArgumentInvalid",rule="key_dollar"}' => 1,
    'iothub_twin_refusals_total{code="IotHubFormatError",rule="syntax"}' => 1,
    'iothub_twin_refusals_total{code="PolicyDenied",rule="other"}' => 1,
    'iothub_twin_refusals_total{code="IotHubUnauthorizedAccess",rule="other"}' => 1,
    'iothub_twin_upstream_latency_seconds_count' => 5,
    'iothub_twin_upstream_latency_seconds_bucket{le="+Inf"}' => 5,
    'iothub_twin_policy_generation' => 1,
);

for my $k (sort keys %want) {
    is($m->{$k}, $want{$k}, $k);
}

is($m->{iothub_twin_tokens_signed_total}, scalar keys %forwarded_by,
   'tokens signed: one per worker that forwarded ('
   . join(', ', map { "pid $_: $forwarded_by{$_}" } sort keys %forwarded_by)
   . '), counted once in the shared zone');

# a reload keeps the counters and bumps the generation

$t->reload_nginx($conf, workers => 2);
$m = metrics();
is($m->{iothub_twin_policy_generation}, 2, 'reload: generation 2');
is($m->{'iothub_twin_requests_total{caller="backend-a",operation="update",decision="allow",status="2xx"}'},
   3, 'reload: counters kept');

# rate limits: backend-a on dev2, burst 6, then 429 in the hub's shape

my @status;
push @status, as('backend-a', '/twins/dev2', { tags => { r => $_ } })->{status}
    for 1 .. 10;
ok(scalar(grep { $_ == 429 } @status), 'per-device limit triggers: '
   . join(' ', @status));

my $r = as('backend-a', '/twins/dev2', { tags => { r => 7 } });
IoTHubTwin::is_hub_error($r, 429, 'ThrottlingException',
                         qr/too many requests/, 'throttled: hub shape');
is($r->{headers}{'retry-after'}, '1', 'throttled: Retry-After');

is(as('backend-b', '/twins/dev2', { tags => { r => 8 } })->{status}, 200,
   'another caller on the same device passes');
is(as('backend-a', '/twins/dev1', { tags => { r => 9 } })->{status}, 200,
   'the same caller on another device passes');

$m = metrics();
ok($m->{'iothub_twin_refusals_total{code="ThrottlingException",rule="other"}'} >= 1,
   'throttled requests are counted');

# a 429 from the hub itself is passed back unchanged, with its Retry-After

$t->hub_config(fail => { status => 429, code => 'ThrottlingException',
                         retry_after => '7', count => 1 });
$r = as('backend-b', '/twins/dev2', { tags => { r => 10 } });
IoTHubTwin::is_hub_error($r, 429, 'ThrottlingException', undef,
                         'the hub\'s own 429');
is($r->{headers}{'retry-after'}, '7', 'the hub\'s Retry-After');

$t->finish;

done_testing;
