#!/usr/bin/perl

# Several hubs behind one gateway: two emulators as two hubs, each with its
# own name, certificate (valid for that name only) and keys.  Twins are
# routed by device-ID pattern or by a map over $iothub_twin_device_id; each
# hub receives only its own twins, signed with its own key for its own
# name, over TLS verified against its own name; a device that routes to no
# hub is the hub's 404 and reaches neither; $iothub_twin_hub names the
# routed hub for limit_req and the log; a hub's 429 backs off that hub
# only; a reload with new routes routes by the new ones.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep);
use IoTHubTwin qw(json_encode json_decode);

my $t = IoTHubTwin->new;
$t->start_emulator(name => 'hub2', seed => "$FindBin::Bin/data/seed-eu.json");

my $HUB = $IoTHubTwin::HUB;
my $HUB2 = $IoTHubTwin::HUB2;

# the two hubs, and a third name whose upstream is the EU hub's server: its
# certificate does not name it, so nothing may reach that server through it
#
# The first hub is reached through an upstream{} named after it (the
# harness's), the EU hub through pass= host:port, an upstream of its own
# that proxy_pass would add
my $HUBS = <<'EOF';
    iothub_twin_hub_define %%HUB%% policy=service
                           key_file=%%DIR%%/hub.key;
    iothub_twin_hub_define %%HUB2%% policy=service
                           key_file=%%DIR%%/hub2.key key_slot=secondary
                           api_version=2020-09-30
                           pass=https://127.0.0.1:%%HUB2_PORT%%;
    upstream wrong_upstream {
        server 127.0.0.1:%%HUB2_PORT%%;
    }

    iothub_twin_hub_define wronghub.azure-devices.net policy=service
                           key_file=%%DIR%%/hub2.key
                           pass=https://wrong_upstream;

    iothub_twin_backoff_zone 64k;
    iothub_twin_metrics_zone 128k;

    server {
        listen 127.0.0.1:%%MET_PORT%%;
        location = /metrics {
            iothub_twin_metrics;
        }
    }

    log_format hubs '$iothub_twin_device_id $iothub_twin_hub $status';

    limit_req_zone $iothub_twin_hub zone=perhub:1m rate=1r/m;

    map $iothub_twin_device_id $device_hub {
        default "";
        dev1 %%HUB%%;
        dev2 %%HUB2%%;
        ~^eu- %%HUB2%%;
        ghost nohub.azure-devices.net;
    }
EOF

sub routed_server {
    my ($port, $routes, $extra) = @_;
    $extra //= '';
    my $log = lc $port;
    return <<"EOF";
    server {
        listen 127.0.0.1:%%${port}_PORT%%;
        access_log %%DIR%%/$log.log hubs;

        location / {
            iothub_twin_pass route;
$routes
            iothub_twin_read on;
            iothub_twin_hub_backoff 2s;
            proxy_ssl_trusted_certificate %%CA%%;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
$extra
        }
    }
EOF
}

my $PATTERNS = <<'EOF';
            iothub_twin_route device "eu-*" %%HUB2%%;
            iothub_twin_route device "dev?" %%HUB%%;
            iothub_twin_route device "wrong-*" wronghub.azure-devices.net;
EOF

my $MAP = "            iothub_twin_route variable \$device_hub;\n";

my $LIMIT = "            limit_req zone=perhub;\n"
            . "            limit_req_status 429;\n";

# callers known by a header (identity variable), with rules for some hubs
my $POLICY = <<'EOF';
            iothub_twin_identity variable $http_x_caller;
            iothub_twin_callers %%DIR%%/callers.json;
EOF

$t->write_file('callers.json', json_encode({ callers => {
    'eu-ops' => { rules => [
        { operations => ['read', 'update'], devices => ['*'],
          tags => ['**'], hubs => [$HUB2] } ] },
    'fleet' => { rules => [
        { operations => ['update'], devices => ['*'], tags => ['**'] },
        { operations => ['update'], devices => ['*'],
          deny => ['tags.secret'], hubs => [uc $HUB2] } ] },
} }));

sub config {
    my ($patterns) = @_;
    return $HUBS . routed_server('GW', $patterns)
           . routed_server('MAP', $MAP)
           . routed_server('LIM', $MAP, $LIMIT)
           . routed_server('POL', $patterns, $POLICY);
}

$t->start_nginx(config($PATTERNS));

sub via {
    my ($port, %req) = @_;
    return IoTHubTwin::http_request('127.0.0.1', $t->port($port), %req);
}

sub patch_via {
    my ($port, $path, $body) = @_;
    return via($port, method => 'PATCH', path => $path,
               headers => ['Content-Type' => 'application/json'],
               body => json_encode($body));
}

sub reset_both { $t->hub_reset; $t->hub_reset('hub2') }

sub seen {
    my ($name) = @_;
    return $t->hub_requests($name);
}

sub auth_of {
    my ($req) = @_;
    my ($auth) = IoTHubTwin::header($req, 'Authorization');
    return $auth // '';
}

# ---------------------------------------------------------------- patterns

reset_both();

my $r = patch_via('gw', '/twins/dev1', { tags => { routed => 'a' } });
is($r->{status}, 200, 'dev1 (pattern dev?) is updated');
my $one = seen();
my $two = seen('hub2');
is(scalar @$one, 1, 'the first hub got it');
is(scalar @$two, 0, 'the EU hub got nothing');
like(auth_of($one->[0]),
     qr/^SharedAccessSignature sr=testhub\.azure-devices\.net&sig=[^&]+&skn=service&se=\d+$/,
     'signed for the first hub');
is($one->[0]{auth}, 'ok', 'the first hub accepted the signature');
is($t->hub_twin('dev1')->{tags}{routed}, 'a', 'and applied the patch');

reset_both();

$r = patch_via('gw', '/twins/eu-1', { tags => { routed => 'b' } });
is($r->{status}, 200, 'eu-1 (pattern eu-*) is updated');
ok($r->{headers}{etag}, 'with the EU hub\'s etag');
$one = seen();
$two = seen('hub2');
is(scalar @$one, 0, 'the first hub got nothing');
is(scalar @$two, 1, 'the EU hub got it');
like(auth_of($two->[0]),
     qr/^SharedAccessSignature sr=euhub\.azure-devices\.net&sig=[^&]+&skn=service&se=\d+$/,
     'signed for the EU hub');
is($two->[0]{auth}, 'ok',
   'the EU hub accepted the signature (its own secondary key)');
my ($host) = IoTHubTwin::header($two->[0], 'Host');
is($host, $HUB2, 'Host is the EU hub\'s name');
like($two->[0]{target}, qr/\?api-version=2020-09-30$/,
     'with the EU hub\'s api-version')
    or diag(json_encode($two->[0]));
is($t->hub_twin('eu-1', undef, 'hub2')->{tags}{routed}, 'b',
   'the EU hub applied the patch');
ok(!defined $t->hub_twin('eu-1'), 'the first hub has no eu-1');

# a module twin and a read

reset_both();
$r = via('gw', method => 'GET', path => '/twins/eu-1/modules/m1');
is($r->{status}, 200, 'GET of an EU module twin');
is($r->{json}{moduleId}, 'm1', 'it is the module twin');
is(scalar @{seen('hub2')}, 1, 'from the EU hub');
is(scalar @{seen()}, 0, 'not from the first hub');

# a device that routes nowhere

reset_both();
for my $id ('us-1', 'dev10', 'EU-1') {
    $r = patch_via('gw', "/twins/$id", { tags => { x => 1 } });
    IoTHubTwin::is_hub_error($r, 404, 'DeviceNotFound',
                             qr/not on any hub behind this gateway/,
                             "$id routes to no hub: 404");
}
$r = via('gw', method => 'GET', path => '/twins/us-1');
is($r->{status}, 404, 'a read of it too');

# its body is never read as a request: a complete update to a routed twin
# hidden in it, one write, a kept-alive connection
my $inner = '{"tags":{"smuggled":true}}';
my $hidden = "PATCH /twins/eu-1 HTTP/1.1\r\nHost: gateway\r\n"
    . "Content-Type: application/json\r\n"
    . 'Content-Length: ' . length($inner) . "\r\n\r\n$inner";
for my $te (0, 1) {
    my $body = $te ? sprintf("%x\r\n%s\r\n0\r\n\r\n", length $hidden,
                             $hidden)
                   : $hidden;
    my $head = "PATCH /twins/us-1 HTTP/1.1\r\nHost: gateway\r\n"
        . "Content-Type: application/json\r\n"
        . ($te ? "Transfer-Encoding: chunked\r\n"
               : 'Content-Length: ' . length($body) . "\r\n")
        . "\r\n";
    my $raw = IoTHubTwin::raw_request('127.0.0.1', $t->port('gw'),
                                      $head . $body, timeout => 2)->{raw};
    my @status = $raw =~ m{HTTP/1\.1 (\d{3}) }g;
    is("@status", '404', 'a body hidden in a refused '
       . ($te ? 'chunked' : 'Content-Length') . ' update: one answer');
}
is(scalar @{seen()} + scalar @{seen('hub2')}, 0, 'nothing reached a hub');
ok(!exists $t->hub_twin('eu-1', undef, 'hub2')->{tags}{smuggled},
   'the hidden update was not applied');

# a hub's certificate is checked against that hub's name

reset_both();
$r = patch_via('gw', '/twins/wrong-1', { tags => { x => 1 } });
is($r->{status}, 502,
   'a hub whose certificate does not name it: 502');
is(scalar @{seen('hub2')}, 0,
   'nothing reached the server behind it');

# ---------------------------------------------------------------- map

reset_both();
$r = patch_via('map', '/twins/dev2', { tags => { by => 'map' } });
is($r->{status}, 200, 'dev2 through the map');
is(scalar @{seen('hub2')}, 1, 'the map sends dev2 to the EU hub');
is(scalar @{seen()}, 0, 'not to the first hub');
is($t->hub_twin('dev2', undef, 'hub2')->{tags}{by}, 'map',
   'the EU hub\'s dev2 was updated');
ok(!exists $t->hub_twin('dev2')->{tags}{by},
   'the first hub\'s dev2 was not');

reset_both();
$r = patch_via('map', '/twins/dev1', { tags => { by => 'map' } });
is($r->{status}, 200, 'dev1 through the map');
is(scalar @{seen()}, 1, 'the map sends dev1 to the first hub');
$r = patch_via('map', '/twins/eu-2', { tags => { by => 'map' } });
is($r->{status}, 200, 'eu-2 through the map (a regex entry)');
is(scalar @{seen('hub2')}, 1, 'to the EU hub');

reset_both();
$r = patch_via('map', '/twins/nobody', { tags => { x => 1 } });
IoTHubTwin::is_hub_error($r, 404, 'DeviceNotFound', qr/nobody/,
                         'the map\'s default "" routes to no hub: 404');
$r = patch_via('map', '/twins/ghost', { tags => { x => 1 } });
IoTHubTwin::is_hub_error($r, 500, 'InternalServerError',
                         qr/misconfigured/,
                         'a map value that is no defined hub: 500');
is(scalar @{seen()} + scalar @{seen('hub2')}, 0, 'nothing reached a hub');
like($t->read_file('error.log'),
     qr/"iothub_twin_route variable" gave "nohub\.azure-devices\.net"/,
     'the error log names the value');

# ---------------------------------------------------------------- log

my @log = split /\n/, $t->read_file('gw.log');
ok((grep { $_ eq "dev1 $HUB 200" } @log), 'the log names the first hub')
    or diag(join "\n", @log);
ok((grep { $_ eq "eu-1 $HUB2 200" } @log), 'and the EU hub');
ok((grep { $_ eq "us-1 - 404" } @log), 'and no hub for a device of none');

# ---------------------------------------------------------------- policy

sub patch_as {
    my ($caller, $path, $body) = @_;
    return via('pol', method => 'PATCH', path => $path,
               headers => ['Content-Type' => 'application/json',
                           'X-Caller' => $caller],
               body => json_encode($body));
}

reset_both();
$r = patch_as('eu-ops', '/twins/eu-1', { tags => { ops => 1 } });
is($r->{status}, 200, 'a caller for the EU hub only updates an EU twin');
$r = patch_as('eu-ops', '/twins/dev1', { tags => { ops => 1 } });
IoTHubTwin::is_hub_error($r, 403, 'PolicyDenied', qr/hub testhub/,
                         'and not a twin on the first hub');
$r = patch_as('fleet', '/twins/dev1', { tags => { secret => 1 } });
is($r->{status}, 200, 'a deny for the EU hub only does not apply elsewhere');
$r = patch_as('fleet', '/twins/eu-2', { tags => { secret => 1 } });
IoTHubTwin::is_hub_error($r, 403, 'PolicyDenied', qr/tags\.secret/,
                         'it applies on the EU hub (named in another case)');
is(scalar @{seen('hub2')}, 1, 'the EU hub got only the allowed update');
is(scalar @{seen()}, 1, 'the first hub got only the allowed update');

# ---------------------------------------------------------------- metrics

my $metrics = via('met', path => '/metrics')->{body};
like($metrics,
     qr/^iothub_twin_hub_requests_total\{hub="euhub\.azure-devices\.net",status="2xx"\} [1-9]\d*$/m,
     'metrics count the requests forwarded to the EU hub');
like($metrics,
     qr/^iothub_twin_hub_requests_total\{hub="testhub\.azure-devices\.net",status="2xx"\} [1-9]\d*$/m,
     'and to the first hub');
like($metrics,
     qr/^iothub_twin_hub_requests_total\{hub="wronghub\.azure-devices\.net",status="5xx"\} 1$/m,
     'and the one that could not reach its hub');
like($metrics, qr/^iothub_twin_refusals_total\{code="DeviceNotFound",rule="[^"]+"\} [1-9]/m,
     'refusals of devices routed to no hub are counted');

# ---------------------------------------------------------------- limit_req

# one request a minute per hub: the first to each hub passes, the second
# to the same hub is refused, whichever device

reset_both();
my @st = map { patch_via('lim', "/twins/$_", { tags => { l => 1 } })->{status} }
         qw(dev1 eu-1 eu-2 dev2 dev1);
is("@st", '200 200 429 429 429',
   'limit_req keyed on $iothub_twin_hub limits each hub apart');
is(scalar @{seen()}, 1, 'the first hub got one');
is(scalar @{seen('hub2')}, 1, 'the EU hub got one');

# ---------------------------------------------------------------- backoff

# the EU hub throttles once: writes to it are answered by the gateway for
# its Retry-After, writes to the first hub still go through

reset_both();
$t->hub_config(hub2 => { fail => { status => 429, retry_after => '2',
                                   count => 1 } });
$r = patch_via('gw', '/twins/eu-1', { tags => { b => 1 } });
is($r->{status}, 429, 'the EU hub\'s 429 reaches the caller');
$r = patch_via('gw', '/twins/eu-2', { tags => { b => 2 } });
IoTHubTwin::is_hub_error($r, 429, 'ThrottlingException',
                         qr/throttling/,
                         'the next write to the EU hub: the gateway\'s 429');
$r = patch_via('gw', '/twins/dev1', { tags => { b => 3 } });
is($r->{status}, 200, 'a write to the first hub goes through');
is(scalar @{seen('hub2')}, 1, 'the EU hub saw only the first write');
is(scalar @{seen()}, 1, 'the first hub saw its write');

# ---------------------------------------------------------------- reload

# new routes: eu-* now goes to the first hub (which has no eu-1: its 404)

sleep 2.2;   # the EU hub's back-off window above ends
reset_both();
$t->reload_nginx(config(<<'EOF'));
            iothub_twin_route device "eu-*" %%HUB%%;
            iothub_twin_route device "dev?" %%HUB2%%;
EOF

$r = patch_via('gw', '/twins/dev2', { tags => { reloaded => 1 } });
is($r->{status}, 200, 'after the reload, dev2 is updated');
is(scalar @{seen('hub2')}, 1, 'on the EU hub, as the new routes say');
$r = patch_via('gw', '/twins/eu-1', { tags => { reloaded => 1 } });
is($r->{status}, 404, 'eu-1 now goes to the first hub, which has no eu-1');
my $first = seen();
is(scalar @$first, 1, 'the first hub got it');
is($first->[0]{auth}, 'ok', 'signed with the first hub\'s key');

# ---------------------------------------------------------------- nginx -t

sub conf_error {
    my ($http, $re, $name) = @_;
    my ($rc, $out) = $t->nginx_test($http);
    ok($rc != 0 && $out =~ $re, $name) or diag($out);
}

my $DEF = <<'EOF';
    upstream %%HUB2%% {
        server 127.0.0.1:%%HUB2_PORT%%;
    }
    iothub_twin_hub_define %%HUB%% policy=service key_file=%%DIR%%/hub.key;
    iothub_twin_hub_define %%HUB2%% policy=service key_file=%%DIR%%/hub2.key;
EOF

sub loc {
    my ($inside) = @_;
    return <<"EOF";
    server {
        listen 127.0.0.1:%%GW_PORT%%;
        location / {
$inside
            proxy_ssl_trusted_certificate %%CA%%;
        }
    }
EOF
}

my $ROUTE_A = loc("            iothub_twin_pass route;\n"
                  . "            iothub_twin_route device a %%HUB%%;");

conf_error($DEF . loc(<<'EOF'),
            iothub_twin_pass route;
            iothub_twin_route device "eu-*" nohub.azure-devices.net;
EOF
           qr/unknown hub "nohub\.azure-devices\.net" in "iothub_twin_route device eu-\* nohub\.azure-devices\.net" in \S+:\d+/,
           'nginx -t: a route to an undefined hub');

conf_error($DEF . loc(<<'EOF'),
            iothub_twin_pass route;
            iothub_twin_route device "eu-*" %%HUB2%%;
            iothub_twin_route device "*-1" %%HUB%%;
EOF
           qr/"iothub_twin_route device eu-\* \S+" in \S+:\d+ and "iothub_twin_route device \*-1 \S+" in \S+:\d+ overlap/,
           'nginx -t: patterns that route one device to two hubs');

my ($rc, $out) = $t->nginx_test($DEF . loc(<<'EOF'));
            iothub_twin_pass route;
            iothub_twin_route device "eu-*" %%HUB2%%;
            iothub_twin_route device "eu-1*" %%HUB2%%;
            iothub_twin_route device "us-*" %%HUB%%;
EOF
is($rc, 0, 'nginx -t: overlapping patterns to one hub are fine') or diag($out);

conf_error($DEF . loc(<<'EOF'),
            iothub_twin_pass route;
EOF
           qr/"iothub_twin_pass route" in location "\/" needs "iothub_twin_route"/,
           'nginx -t: routed without routes');

conf_error($DEF . loc(<<'EOF'),
            iothub_twin_pass https://%%HUB%%;
            iothub_twin_hub_policy service;
            iothub_twin_hub_key_file %%DIR%%/hub.key;
            iothub_twin_route device "eu-*" %%HUB2%%;
EOF
           qr/"iothub_twin_route" in location "\/" needs "iothub_twin_pass route"/,
           'nginx -t: routes in a single-hub location');

conf_error($DEF . loc(<<'EOF'),
            iothub_twin_pass route;
            iothub_twin_route device "eu-*" %%HUB2%%;
            iothub_twin_route variable $http_x_hub;
EOF
           qr/"iothub_twin_route variable" cannot be combined/,
           'nginx -t: patterns and a value together');

conf_error($DEF . loc(<<'EOF'),
            iothub_twin_pass route;
            iothub_twin_route device "eu-\x" %%HUB2%%;
EOF
           qr/invalid pattern "eu-\\x" in "iothub_twin_route"/,
           'nginx -t: a bad pattern');

conf_error($DEF . loc(<<'EOF'),
            iothub_twin_pass route;
            iothub_twin_hub_key_file %%DIR%%/hub.key;
            iothub_twin_route device "eu-*" %%HUB2%%;
EOF
           qr/"iothub_twin_pass route" in location "\/" takes each hub's name, policy and key/,
           'nginx -t: a location key in a routed location');

conf_error(<<'EOF' . $ROUTE_A,
    iothub_twin_hub_define %%HUB%% policy=service;
EOF
           qr/"iothub_twin_hub_define testhub\.azure-devices\.net" needs policy=<SAS policy name> and key_file=<path>/,
           'nginx -t: a hub without a key file');

conf_error(<<'EOF' . $ROUTE_A,
    iothub_twin_hub_define %%HUB%% policy=service key_file=%%DIR%%/none.key;
EOF
           qr/"iothub_twin_hub_define": cannot open key file "\S+none\.key"/,
           'nginx -t: a key file that is not there');

$t->write_file('one.key', "$IoTHubTwin::HUB_KEY\n");
conf_error(<<'EOF' . $ROUTE_A,
    iothub_twin_hub_define %%HUB%% policy=service key_file=%%DIR%%/one.key
                           key_slot=secondary;
EOF
           qr/key_slot=secondary, but key file "\S+one\.key" holds no secondary key/,
           'nginx -t: key_slot=secondary without a secondary key');

conf_error($DEF . <<'EOF' . $ROUTE_A,
    iothub_twin_hub_define TESTHUB.azure-devices.net policy=service
                           key_file=%%DIR%%/hub.key;
EOF
           qr/duplicate hub "TESTHUB\.azure-devices\.net" in "iothub_twin_hub_define"/,
           'nginx -t: a hub defined twice');

conf_error(<<'EOF' . loc("            iothub_twin_pass route;"),
    iothub_twin_hub_define https://x.azure-devices.net policy=service
                           key_file=%%DIR%%/hub.key;
EOF
           qr/invalid hub "https:\/\/x\.azure-devices\.net" in "iothub_twin_hub_define": expected the hub's host name/,
           'nginx -t: a hub that is not a host name');

conf_error(<<'EOF' . $ROUTE_A,
    iothub_twin_hub_define %%HUB%% policy=service key_file=%%DIR%%/hub.key
                           pass=http://%%HUB%%;
EOF
           qr/invalid URL "http:\/\/testhub\.azure-devices\.net" in "iothub_twin_hub_define": the hub is reached over https only/,
           'nginx -t: a hub reached without TLS');

conf_error(<<'EOF' . $ROUTE_A,
    iothub_twin_hub_define %%HUB%% policy=service key_file=%%DIR%%/hub.key
                           keyslot=secondary;
EOF
           qr/invalid parameter "keyslot=secondary" in "iothub_twin_hub_define testhub\.azure-devices\.net"/,
           'nginx -t: an unknown parameter');

conf_error($DEF . <<'EOF' . $ROUTE_A,
    iothub_twin_hub_define other.azure-devices.net policy=service
                           key_file=%%DIR%%/hub.key pass=https://%%HUB2%%;
EOF
           qr/"iothub_twin_hub_define other\.azure-devices\.net" passes to "https:\/\/euhub\.azure-devices\.net" as hub "euhub\.azure-devices\.net" defined in \S+:\d+ does: each hub needs its own upstream/,
           'nginx -t: two hubs on one upstream');

conf_error(<<'EOF' . $ROUTE_A,
    iothub_twin_hub_define %%HUB%% policy=service key_file=%%DIR%%/hub.key
                           token_lifetime=5s;
EOF
           qr/invalid value "token_lifetime=5s" in "iothub_twin_hub_define": expected a time from 10s to 365d/,
           'nginx -t: a token lifetime out of bounds');

conf_error(<<'EOF' . $ROUTE_A,
    iothub_twin_hub_define %%HUB%% policy=service key_file=%%DIR%%/hub.key
                           api_version=2021-4-12;
EOF
           qr/invalid value "api_version=2021-4-12" in "iothub_twin_hub_define": expected a date like 2021-04-12/,
           'nginx -t: a bad api-version');

$t->write_file('bad-callers.json', json_encode({ callers => {
    'x' => { rules => [ { operations => ['update'], devices => ['*'],
                          tags => ['**'], hubs => [$HUB, $HUB2] } ] } } }));

conf_error($DEF . loc(<<'EOF'),
            iothub_twin_pass route;
            iothub_twin_route device "eu-*" %%HUB2%%;
            iothub_twin_identity variable $http_x_caller;
            iothub_twin_callers %%DIR%%/bad-callers.json;
EOF
           qr/"iothub_twin_callers" in location "\/": \S+bad-callers\.json: caller "x": rules\[0\]\.hubs\[0\]: unknown hub "testhub\.azure-devices\.net" \(no "iothub_twin_route" of this location names it\)/,
           'nginx -t: a rule for a hub the location does not route to');

conf_error(<<'EOF' . loc(<<'EOF2'),
    upstream %%HUB2%% {
        server 127.0.0.1:%%HUB2_PORT%%;
    }
EOF
            iothub_twin_pass https://%%HUB2%%;
            iothub_twin_hub_policy service;
            iothub_twin_hub_key_file %%DIR%%/hub2.key;
            iothub_twin_identity variable $http_x_caller;
            iothub_twin_callers %%DIR%%/bad-callers.json;
EOF2
           qr/caller "x": rules\[0\]\.hubs\[0\]: unknown hub "testhub\.azure-devices\.net" \(this location sends every twin to its one hub\)/,
           'nginx -t: a rule for another hub than a single-hub location\'s');

($rc, $out) = $t->nginx_test($DEF . loc(<<'EOF'));
            iothub_twin_pass route;
            iothub_twin_route variable $http_x_hub;
            iothub_twin_identity variable $http_x_caller;
            iothub_twin_callers %%DIR%%/bad-callers.json;
EOF
is($rc, 0, 'nginx -t: with a route value, every defined hub may be named')
    or diag($out);

$t->finish;

done_testing;
