#!/usr/bin/perl

# The official Node service SDK (azure-iothub, unmodified, pinned in
# t/node/package.json) used as a backend would use it, with nothing changed
# but the connection string: HostName is the gateway, the key is the
# caller's own.  t/node/twin-client.js runs the SDK calls; every scenario
# checks what the SDK reports, the hub's state, and what the hub received.
#
# The SDK always connects to port 443 of HostName, so the gateway listens on
# 127.0.0.1:443 with TLS (the test CA is trusted through
# NODE_EXTRA_CA_CERTS).  The test is skipped when that port is taken.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Errno qw(EADDRINUSE);
use IO::Socket::INET;
use MIME::Base64 qw(encode_base64);
use Test::More;
use IoTHubTwin qw(json_decode json_encode);

my $NODE = $ENV{NODE_BIN} || 'node';
my $CLIENT = "$IoTHubTwin::ROOT/t/node/twin-client.js";
my $SDK = "$IoTHubTwin::ROOT/t/node/node_modules/azure-iothub/package.json";

my $probe = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 443,
                                  Listen => 1, Proto => 'tcp',
                                  ReuseAddr => 1);
if (!$probe) {
    plan skip_all => $! == EADDRINUSE
        ? 'something else listens on 127.0.0.1:443, where the SDK connects'
        : "cannot listen on 127.0.0.1:443 ($!): the SDK needs that port";
}
close $probe;

-f $SDK or die "$SDK is missing: run make deps (npm ci --prefix t/node)\n";
my $SDK_VERSION = do {
    open my $fh, '<', $SDK or die "$SDK: $!";
    local $/;
    json_decode(<$fh>)->{version};
};

# callers and their keys (test-only keys; the harness greps every log for them)

my $KEY_A = encode_base64('backend-a primary key, tests only', '');
my $KEY_A2 = encode_base64('backend-a secondary key, tests only', '');
my $KEY_B = encode_base64('backend-b primary key, tests only', '');
my $KEY_OPS = encode_base64('ops caller primary key, tests only', '');
my $WRONG = encode_base64('not the key of any caller at all', '');

sub cs { "HostName=localhost;SharedAccessKeyName=$_[0];SharedAccessKey=$_[1]" }

my $CS_A = cs('backend-a', $KEY_A);

my $DEV = q{dev#?%$'()*+,;=@!:-._};
my $MOD = q{m#?%$'()*+,;=@!:-._};

my $CALLERS = {
    callers => {
        'backend-a' => {
            keys => { primary => $KEY_A, secondary => $KEY_A2 },
            rules => [ {
                operations => ['read', 'update'],
                devices => ['dev1', 'dev2', 'dev#*'],
                modules => ['', 'mod1', 'm#*'],
                tags => ['**'],
                desired => ['**'],
                deny => ['properties.desired.locked.**'],
            } ],
        },
        'backend-b' => {
            keys => { primary => $KEY_B },
            rules => [ { operations => ['read'], devices => ['dev2'] } ],
        },
        # a fleet operations service: writes desired telemetry, reads the
        # reported firmware and the status
        'ops' => {
            keys => { primary => $KEY_OPS },
            rules => [ {
                operations => ['read', 'update'],
                devices => ['dev1'],
                desired => ['telemetry.**'],
                read => ['properties.desired.telemetry.**',
                         'properties.reported.firmware.**', 'status'],
            } ],
        },
    },
};

# the gateway as backends see it: TLS on 443 for the SDK, plus plain HTTP on
# a free port for the harness (it waits for that port to know nginx is up)

sub conf {
    my (%o) = @_;
    my $http = $o{http} || '';
    my $server = $o{server} || '';
    my $location = $o{location} || '';
    my $pass = $o{routed} ? "            iothub_twin_pass route;\n$o{routed}"
        : <<'EOF';
            iothub_twin_pass https://%%HUB%%;
            iothub_twin_hub_policy service;
            iothub_twin_hub_key_file %%DIR%%/hub.key;
EOF

    return <<"EOF";
    log_format sdk '\$connection \$connection_requests \$request_method '
                   '\$status "\$iothub_twin_caller" "\$http_user_agent" '
                   '"\$http_request_id" \$caller_se';

    # the expiry of the caller's token, only that, for the log; taken in
    # the rewrite phase (set, below), before the gateway empties the
    # caller's Authorization
    map \$http_authorization \$caller_token_se {
        "~[ &]se=(?<se>[0-9]+)"  \$se;
        default                  -;
    }
$http
    server {
        listen 127.0.0.1:443 ssl;
        listen 127.0.0.1:%%GW_PORT%%;

        ssl_certificate     %%ROOT%%/build/certs/hub.pem;
        ssl_certificate_key %%ROOT%%/build/certs/hub.key;

        access_log %%DIR%%/sdk-access.log sdk;

        error_page 400 /.iothub_twin/400;
        location = /.iothub_twin/400 {
            internal;
            iothub_twin_error 400 ArgumentInvalid "the request is malformed";
        }
$server
        location / {
$pass            proxy_ssl_trusted_certificate %%CA%%;
            proxy_http_version 1.1;
            proxy_set_header Connection "";

            iothub_twin_identity sas;
            iothub_twin_sas_host localhost;
            iothub_twin_callers %%DIR%%/callers.json;
            iothub_twin_read on;

            set \$caller_se \$caller_token_se;
$location
        }
    }
EOF
}

my $t = IoTHubTwin->new;
$t->secret($_) for $KEY_A, $KEY_A2, $KEY_B, $WRONG;
$t->write_file('callers.json', json_encode($CALLERS));
$t->start_nginx(conf());

# runs scenarios through the SDK client, in order, in one process (one
# Registry, with its keep-alive agent, per caller); one answer per scenario
sub sdk {
    my @steps = map {
        my %s = %$_;
        $s{connectionString} //= $CS_A unless $s{sharedAccessSignature};
        \%s;
    } @_;

    local $ENV{NODE_EXTRA_CA_CERTS} = "$IoTHubTwin::BUILD/certs/ca.pem";
    open(my $fh, '-|', $NODE, $CLIENT, json_encode(\@steps))
        or die "$NODE: $!";
    my @out = map { eval { json_decode($_) }
                    // { ok => 0, name => 'not JSON', message => $_ } } <$fh>;
    close $fh;
    diag("twin-client.js exited with status " . ($? >> 8)) if $?;

    push @out, { ok => 0, name => 'no answer' } while @out < @steps;
    return wantarray ? @out : $out[0];
}


sub sdk_error {
    my ($r, $class, $status, $code, $text_re, $name) = @_;
    note("$name: the SDK says $r->{name}: $r->{message}");
    subtest $name => sub {
        ok(!$r->{ok}, 'the SDK reports an error');
        is($r->{name}, $class, "error class $class");
        is($r->{statusCode}, $status, "status $status");
        is($r->{errorCode}, $code, "iothub-errorcode $code");
        like($r->{message}, $text_re, 'message') if $text_re;
    } or diag(explain($r));
}

my ($r, @r, $seen, $twin);

# read-through: Registry.getTwin and Registry.getModuleTwin

$t->hub_reset;
$r = sdk({ op => 'getTwin', deviceId => 'dev1' });
ok($r->{ok}, 'getTwin: ok') or diag(explain($r));
is($r->{result}{deviceId}, 'dev1', 'getTwin: the device twin');
is($r->{result}{tags}{location}{city}, 'Oslo', 'getTwin: its tags');
is($r->{result}{etag}, $t->hub_twin('dev1')->{etag}, 'getTwin: its etag');

$r = sdk({ op => 'getModuleTwin', deviceId => 'dev1', moduleId => 'mod1' });
ok($r->{ok}, 'getModuleTwin: ok') or diag(explain($r));
is($r->{result}{moduleId}, 'mod1', 'getModuleTwin: the module twin');
is($r->{result}{properties}{desired}{mode}, 'normal',
   'getModuleTwin: its desired properties');

$seen = $t->hub_requests;
is(join(' ', map { "$_->{method} $_->{target}" } @$seen),
   'GET /twins/dev1?api-version=2021-04-12 '
   . 'GET /twins/dev1/modules/mod1?api-version=2021-04-12',
   'reads: what the hub received');
IoTHubTwin::signed_by_gateway($seen, 'reads');

# Registry.updateTwin, with "*" and with the current etag

my $patch = { tags => { location => { city => 'Bergen' } },
              properties => { desired => { telemetry => { interval => 60 } } } };

$t->hub_reset;
$r = sdk({ op => 'updateTwin', deviceId => 'dev1', etag => '*',
           patch => $patch });
ok($r->{ok}, 'updateTwin "*": ok') or diag(explain($r));
is($r->{result}{tags}{location}{city}, 'Bergen', 'updateTwin "*": the new twin');

$twin = $t->hub_twin('dev1');
is($twin->{version}, 2, 'updateTwin "*": hub version 2');
is($twin->{tags}{location}{city}, 'Bergen', 'updateTwin "*": hub tags');
is($twin->{properties}{desired}{telemetry}{interval}, 60,
   'updateTwin "*": hub desired');

$seen = $t->hub_requests;
is(scalar @$seen, 1, 'updateTwin "*": one request');
is($seen->[0]{target}, '/twins/dev1?api-version=2021-04-12',
   'updateTwin "*": target');
is(join('|', IoTHubTwin::header($seen->[0], 'If-Match')), '"*"',
   'updateTwin "*": If-Match "*" as the SDK sent it');
is_deeply(json_decode($seen->[0]{body}), $patch, 'updateTwin "*": the patch');

$r = sdk({ op => 'updateTwin', deviceId => 'dev1', etag => $twin->{etag},
           patch => { tags => { step => 2 } } });
ok($r->{ok}, 'updateTwin etag: ok') or diag(explain($r));
is($t->hub_twin('dev1')->{tags}{step}, 2, 'updateTwin etag: hub tags');
is(join('|', IoTHubTwin::header($t->hub_requests->[-1], 'If-Match')), qq{"$twin->{etag}"},
   'updateTwin etag: the quoted etag reached the hub');

# Registry.updateModuleTwin, with "*" and with the current etag

$t->hub_reset;
$r = sdk({ op => 'updateModuleTwin', deviceId => 'dev1', moduleId => 'mod1',
           etag => '*', patch => { properties => { desired => { mode => 'eco' } } } });
ok($r->{ok}, 'updateModuleTwin "*": ok') or diag(explain($r));
is($r->{result}{moduleId}, 'mod1', 'updateModuleTwin "*": the module twin');

$twin = $t->hub_twin('dev1', 'mod1');
is($twin->{properties}{desired}{mode}, 'eco', 'updateModuleTwin "*": hub state');

$r = sdk({ op => 'updateModuleTwin', deviceId => 'dev1', moduleId => 'mod1',
           etag => $twin->{etag}, patch => { tags => { site => 'north' } } });
ok($r->{ok}, 'updateModuleTwin etag: ok') or diag(explain($r));
is($t->hub_twin('dev1', 'mod1')->{tags}{site}, 'north',
   'updateModuleTwin etag: hub state');

$seen = $t->hub_requests;
is(join(' ', map { "$_->{method} $_->{target} " . join('', IoTHubTwin::header($_, 'If-Match')) } @$seen),
   'PATCH /twins/dev1/modules/mod1?api-version=2021-04-12 "*" '
   . qq{PATCH /twins/dev1/modules/mod1?api-version=2021-04-12 "$twin->{etag}"},
   'updateModuleTwin: what the hub received');
IoTHubTwin::signed_by_gateway($seen, 'updates');

# Twin.update() on a twin fetched with getTwin: the fetched etag is the
# precondition

$t->hub_reset;
my $etag = $t->hub_twin('dev2')->{etag};
$r = sdk({ op => 'twinUpdate', deviceId => 'dev2',
           patch => { tags => { owner => 'ops' } } });
ok($r->{ok}, 'Twin.update: ok') or diag(explain($r));
is($r->{result}{tags}{owner}, 'ops', 'Twin.update: the twin was refreshed');
is($t->hub_twin('dev2')->{tags}{owner}, 'ops', 'Twin.update: hub state');

$seen = $t->hub_requests;
is(join(' ', map { "$_->{method} " . join('', IoTHubTwin::header($_, 'If-Match')) } @$seen),
   qq{GET  PATCH "$etag"}, 'Twin.update: a read, then a PATCH with its etag');

# a stale etag: the hub's 412, which the SDK raises as InvalidEtagError

$t->hub_reset;
@r = sdk({ op => 'updateTwin', deviceId => 'dev1', etag => '*',
           patch => { tags => { step => 1 } } },
         { op => 'updateTwin', deviceId => 'dev1', etag => 'AAAAAAAAAAE=',
           patch => { tags => { step => 2 } } });
ok($r[0]{ok}, 'stale etag: the first update passes');
sdk_error($r[1], 'InvalidEtagError', 412, 'PreconditionFailed', undef,
          'stale etag: InvalidEtagError');
is($t->hub_requests->[-1]{status}, 412, 'stale etag: the hub answered 412');
is($t->hub_twin('dev1')->{tags}{step}, 1, 'stale etag: hub state unchanged');

# refused by the caller's policy: 403, which the SDK raises as
# TooManyDevicesError (its mapping of every 403), with the gateway's text

$t->hub_reset;
@r = sdk({ op => 'updateTwin', deviceId => 'dev1', etag => '*',
           patch => { properties => { desired => { locked => { relay => 1 } } } } },
         { op => 'getModuleTwin', deviceId => 'dev1', moduleId => '$edgeAgent' });
sdk_error($r[0], 'TooManyDevicesError', 403, 'PolicyDenied',
          qr/^caller backend-a may not do this: .*properties\.desired\.locked/,
          'denied path: 403 PolicyDenied');
sdk_error($r[1], 'TooManyDevicesError', 403, 'PolicyDenied',
          qr/^caller backend-a may not do this/,
          'a twin outside the rules: 403 PolicyDenied');
is(scalar @{$t->hub_requests}, 0, 'policy refusals: nothing forwarded');
ok(!exists $t->hub_twin('dev1')->{properties}{desired}{locked},
   'policy refusal: hub state unchanged');

# the SDK keeps only what stands between the first and the second ";" of
# Message: the gateway writes ";" in its text as \x3b, so the SDK gets it whole
$r = sdk({ op => 'getModuleTwin', deviceId => $DEV, moduleId => '$edgeAgent' });
is($r->{statusCode}, 403, 'a refusal naming an ID with ";": 403');
like($r->{message}, qr/not covered by any rule/,
     'a refusal naming an ID with ";": the SDK gets the whole reason '
     . '(the gateway writes ";" as \\x3b)');

# refused by validation: 400, ArgumentError

$t->hub_reset;
$r = sdk({ op => 'updateTwin', deviceId => 'dev1', etag => '*',
           patch => { tags => { 'cost$center' => 1 } } });
sdk_error($r, 'ArgumentError', 400, 'ArgumentInvalid', qr/\$/,
          'a key with $: ArgumentError');
is(scalar @{$t->hub_requests}, 0, 'validation refusal: nothing forwarded');

# IDs made of every allowed special character, encoded by the SDK

$t->hub_reset;
@r = sdk({ op => 'getTwin', deviceId => $DEV },
         { op => 'updateModuleTwin', deviceId => $DEV, moduleId => $MOD,
           etag => '*', patch => { properties => { desired => { level => 2 } } } },
         { op => 'twinUpdate', deviceId => $DEV, moduleId => $MOD,
           patch => { tags => { checked => JSON::PP::true } } });
ok($r[0]{ok} && $r[0]{result}{deviceId} eq $DEV, 'special IDs: getTwin')
    or diag(explain($r[0]));
ok($r[1]{ok} && $r[1]{result}{moduleId} eq $MOD, 'special IDs: updateModuleTwin')
    or diag(explain($r[1]));
ok($r[2]{ok}, 'special IDs: Twin.update') or diag(explain($r[2]));

$twin = $t->hub_twin($DEV, $MOD);
is($twin->{properties}{desired}{level}, 2, 'special IDs: hub desired');
ok($twin->{tags}{checked}, 'special IDs: hub tags');

my $path = '/twins/' . IoTHubTwin::uri_component($DEV);
my $mpath = "$path/modules/" . IoTHubTwin::uri_component($MOD);
is(join(' ', map { $_->{target} } @{$t->hub_requests}),
   join(' ', map { "$_?api-version=2021-04-12" } $path, $mpath, $mpath, $mpath),
   'special IDs: the hub got them encoded as encodeURIComponent does');

# what the SDK sends passes as it is: Request-Id, User-Agent, its
# Content-Type, keep-alive, a token signed anew for each request

$t->hub_reset;
@r = sdk({ op => 'getTwin', deviceId => 'dev2' },
         { op => 'updateTwin', deviceId => 'dev2', patch => { tags => { n => 1 } } },
         { op => 'updateTwin', deviceId => 'dev2', patch => { tags => { n => 2 } },
           pauseMs => 1100 },
         { op => 'getTwin', deviceId => 'dev2' });
is(scalar(grep { $_->{ok} } @r), 4, 'four SDK calls in a row: ok')
    or diag(explain(\@r));
is($r[3]{result}{tags}{n}, 2, 'the last read sees the last update');

$seen = $t->hub_requests;
is(scalar @$seen, 4, 'the hub received four requests');
IoTHubTwin::signed_by_gateway($seen, 'SDK headers');
is(join(' ', map { IoTHubTwin::header($_, 'User-Agent') } @$seen),
   join(' ', ("azure-iothub/$SDK_VERSION") x 4), 'User-Agent passed');
my %ids = map { (IoTHubTwin::header($_, 'Request-Id'))[0] // '' => 1 } @$seen;
is(scalar(grep { /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/ } keys %ids),
   4, 'Request-Id passed, one per request');
is(join('|', map { IoTHubTwin::header($_, 'Content-Type') } grep { $_->{method} eq 'PATCH' } @$seen),
   'application/json; charset=utf-8|application/json; charset=utf-8',
   'the SDK\'s Content-Type passed');

my @log = map { [split / /] } grep { /"backend-a"/ }
    split /\n/, $t->read_file('sdk-access.log');
@log = @log[-4 .. -1] if @log >= 4;
ok(grep({ $_->[1] > 1 } @log), 'the SDK reused its keep-alive connection')
    or diag(explain(\@log));
my %se = map { $_->[-1] => 1 } @log;
ok(keys %se >= 2, 'the SDK signed new tokens, the gateway took each');
ok(!grep({ !/^\d+$/ || $_ < time + 3500 } keys %se),
   'the caller tokens live an hour');

# unauthorized: a wrong key, an unknown key name, an expired token (past
# the gateway's 5-minute skew; the SDK sends a given token as it is with
# fromSharedAccessSignature); the secondary key works

$t->hub_reset;
my $expired = IoTHubTwin::sas_token(sr => 'localhost', skn => 'backend-a',
                                    key => $KEY_A, se => int(time) - 600);

@r = sdk({ op => 'getTwin', deviceId => 'dev1',
           connectionString => cs('backend-a', $WRONG) },
         { op => 'getTwin', deviceId => 'dev1',
           connectionString => cs('backend-x', $KEY_A) },
         { op => 'getTwin', deviceId => 'dev1',
           sharedAccessSignature => $expired },
         { op => 'getTwin', deviceId => 'dev1',
           connectionString => cs('backend-a', $KEY_A2) });
my $unauth = qr/the caller could not be identified/;
sdk_error($r[0], 'UnauthorizedError', 401, 'IotHubUnauthorizedAccess', $unauth,
          'a wrong key: UnauthorizedError');
sdk_error($r[1], 'UnauthorizedError', 401, 'IotHubUnauthorizedAccess', $unauth,
          'an unknown key name: UnauthorizedError');
sdk_error($r[2], 'UnauthorizedError', 401, 'IotHubUnauthorizedAccess', $unauth,
          'an expired token: UnauthorizedError');
ok($r[3]{ok}, 'the secondary key: ok') or diag(explain($r[3]));
is(scalar @{$t->hub_requests}, 1, 'only the secondary key\'s read forwarded');

# a caller with a read scope: what the SDK gets is cut down to it, and the
# SDK goes on working with it (getTwin, Twin.update with the etag it read,
# updateTwin with that etag)

my $CS_OPS = cs('ops', $KEY_OPS);

$t->hub_reset;
@r = sdk({ op => 'getTwin', deviceId => 'dev1', connectionString => $CS_OPS },
         { op => 'twinUpdate', deviceId => 'dev1', connectionString => $CS_OPS,
           patch => { properties => { desired => { telemetry => {
               interval => 45 } } } } });
ok($r[0]{ok}, 'read scope, getTwin: ok') or diag(explain($r[0]));
is($r[0]{result}{properties}{reported}{firmware}{version}, '1.0.3',
   'read scope, getTwin: the reported firmware');
is($r[0]{result}{status}, 'enabled', 'read scope, getTwin: the status');
ok(!exists $r[0]{result}{tags}{location},
   'read scope, getTwin: no tags it may not read');
ok(!exists $r[0]{result}{properties}{reported}{telemetry},
   'read scope, getTwin: no reported telemetry');
ok($r[1]{ok}, 'read scope, Twin.update: ok') or diag(explain($r[1]));
is($r[1]{result}{properties}{desired}{telemetry}{interval}, 45,
   'read scope, Twin.update: the SDK sees its own change');
is($t->hub_twin('dev1')->{properties}{desired}{telemetry}{interval}, 45,
   'read scope, Twin.update: hub state');
$seen = $t->hub_requests;
is(join(' ', map { "$_->{method} " . join('', IoTHubTwin::header($_, 'If-Match')) } @$seen),
   qq{GET  GET  PATCH "$r[0]{result}{etag}"},
   'read scope, Twin.update: the PATCH carried the etag it read');

$twin = $t->hub_twin('dev1');
$r = sdk({ op => 'updateTwin', deviceId => 'dev1', connectionString => $CS_OPS,
           etag => $twin->{etag},
           patch => { properties => { desired => { telemetry => {
               interval => 50 } } } } });
ok($r->{ok}, 'read scope, updateTwin with the etag read: ok')
    or diag(explain($r));
ok(!exists $r->{result}{tags}{location},
   'read scope, updateTwin: the answer is cut down too');

# throttled: limit_req keyed on the caller, 429 in the hub's shape, which
# the SDK raises as ThrottlingError; another caller has its own budget

$t->start_nginx(conf(
    http => "    limit_req_zone \$iothub_twin_caller zone=callers:1m rate=1r/m;\n",
    server => <<'EOF',
        error_page 429 /.iothub_twin/429;
        location = /.iothub_twin/429 {
            internal;
            iothub_twin_error 429 ThrottlingException "too many requests";
        }
EOF
    location => <<'EOF'));
            limit_req zone=callers;           # no burst: nginx refuses burst=0
            limit_req_status 429;
EOF

$t->hub_reset;
@r = sdk({ op => 'getTwin', deviceId => 'dev1' },
         { op => 'getTwin', deviceId => 'dev1' },
         { op => 'getTwin', deviceId => 'dev2',
           connectionString => cs('backend-b', $KEY_B) });
ok($r[0]{ok}, 'throttling: the first request passes') or diag(explain($r[0]));
sdk_error($r[1], 'ThrottlingError', 429, 'ThrottlingException',
          qr/too many requests/, 'throttling: the second is ThrottlingError');
ok($r[2]{ok}, 'throttling: another caller is not throttled')
    or diag(explain($r[2]));
is(join(' ', map { $_->{target} } @{$t->hub_requests}),
   '/twins/dev1?api-version=2021-04-12 /twins/dev2?api-version=2021-04-12',
   'throttling: the throttled request was not forwarded');

# two hubs behind the gateway, one connection string: dev* twins are on
# the first hub, eu-* twins on the EU hub (its own name, key and
# certificate); the SDK reads and updates both and never knows

$t->start_emulator(name => 'hub2',
                   seed => "$IoTHubTwin::ROOT/t/data/seed-eu.json");
$CALLERS->{callers}{'backend-a'}{rules}[0]{devices} = ['dev1', 'eu-*'];
$CALLERS->{callers}{'backend-a'}{rules}[0]{modules} = ['', 'mod1', 'm1'];
$t->write_file('callers.json', json_encode($CALLERS));
$t->stop_nginx;
$t->start_nginx(conf(
    http => <<'EOF',
    upstream %%HUB2%% {
        server 127.0.0.1:%%HUB2_PORT%%;
    }
    iothub_twin_hub_define %%HUB%% policy=service key_file=%%DIR%%/hub.key;
    iothub_twin_hub_define %%HUB2%% policy=service
                           key_file=%%DIR%%/hub2.key;
EOF
    routed => <<'EOF'));
            iothub_twin_route device "dev*" %%HUB%%;
            iothub_twin_route device "eu-*" %%HUB2%%;
EOF

$t->hub_reset;
$t->hub_reset('hub2');
@r = sdk({ op => 'getTwin', deviceId => 'dev1' },
         { op => 'getTwin', deviceId => 'eu-1' },
         { op => 'getModuleTwin', deviceId => 'eu-1', moduleId => 'm1' },
         { op => 'twinUpdate', deviceId => 'eu-1',
           patch => { tags => { via => 'sdk' } } },
         { op => 'updateTwin', deviceId => 'dev1', etag => '*',
           patch => { tags => { via => 'sdk' } } },
         { op => 'getTwin', deviceId => 'us-1' });
ok($r[0]{ok} && $r[0]{result}{deviceId} eq 'dev1',
   'two hubs: getTwin of a twin on the first hub') or diag(explain($r[0]));
ok($r[1]{ok} && $r[1]{result}{tags}{site} eq 'Berlin',
   'two hubs: getTwin of a twin on the EU hub') or diag(explain($r[1]));
ok($r[2]{ok} && $r[2]{result}{moduleId} eq 'm1',
   'two hubs: getModuleTwin on the EU hub') or diag(explain($r[2]));
ok($r[3]{ok}, 'two hubs: twin.update on the EU hub, with the etag it read')
    or diag(explain($r[3]));
ok($r[4]{ok}, 'two hubs: updateTwin on the first hub')
    or diag(explain($r[4]));
sdk_error($r[5], 'DeviceNotFoundError', 404, 'DeviceNotFound',
          qr/us-1/, 'two hubs: a device on neither hub is DeviceNotFoundError');
is($t->hub_twin('eu-1', undef, 'hub2')->{tags}{via}, 'sdk',
   'two hubs: the EU hub applied its update');
is($t->hub_twin('dev1')->{tags}{via}, 'sdk',
   'two hubs: the first hub applied its update');

my $seen1 = $t->hub_requests;
my $seen2 = $t->hub_requests('hub2');
is(join(' ', map { "$_->{method} $_->{path}" } @$seen1),
   'GET /twins/dev1 PATCH /twins/dev1',
   'two hubs: the first hub got only its twins');
is(join(' ', map { "$_->{method} $_->{path}" } @$seen2),
   'GET /twins/eu-1 GET /twins/eu-1/modules/m1 GET /twins/eu-1 '
   . 'PATCH /twins/eu-1',
   'two hubs: the EU hub got only its twins');
IoTHubTwin::signed_by_gateway($seen1, 'two hubs: the first hub');
ok(!grep({ my ($a) = IoTHubTwin::header($_, 'Authorization');
           $_->{auth} ne 'ok'
           || $a !~ /^SharedAccessSignature sr=euhub\.azure-devices\.net&/ }
         @$seen2),
   'two hubs: the EU hub got only tokens signed for it, and accepted them');

# no caller credential ever reached the hub (the harness checks the other
# logs for the keys in finish)

my $hub_log = $t->read_file('hub-requests.jsonl');
ok(length $hub_log, 'the hub logged its requests');
unlike($hub_log, qr/skn=backend-/, 'no caller token in what the hub received');
ok(!grep({ index($hub_log, $_) >= 0 } $KEY_A, $KEY_A2, $KEY_B),
   'no caller key in what the hub received');

$t->finish;

done_testing;
