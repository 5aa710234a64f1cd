#!/usr/bin/perl

# The scenarios of t/sdk.t with requests shaped as the Azure C service SDK
# (iothub_service_client, iothub_devicetwin.c) sends them: IDs not
# percent-encoded, If-Match: * bare, api-version=2020-09-30, Content-Type on
# reads too (with Content-Length: 0), and the caller's token as the C SDK
# builds it (sr, sig, se, skn; lowercase hex in the signature's escapes).
# Plain HTTP to the gateway: what matters here is the request's shape.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Digest::SHA qw(hmac_sha256);
use File::Temp qw(tempdir);
use MIME::Base64 qw(encode_base64 decode_base64);
use Test::More;
use IoTHubTwin qw(json_decode json_encode);

my $KEY_A = encode_base64('backend-a primary key, tests only', '');
my $KEY_A2 = encode_base64('backend-a secondary key, tests only', '');
my $KEY_B = encode_base64('backend-b primary key, tests only', '');
my $WRONG = encode_base64('not the key of any caller at all', '');

my $API = 'api-version=2020-09-30';
my $UPSTREAM_API = 'api-version=2021-04-12';

# every allowed special character (the seed's), and those of them the C SDK
# can send unencoded in a path: no '#', '?' or '%'
my $DEV = q{dev#?%$'()*+,;=@!:-._};
my $MOD = q{m#?%$'()*+,;=@!:-._};
my $CDEV = q{c+:@!*'()=,;-._$};
my $CMOD = q{m+:@!*'()=,;-._$};

# the repository's seed plus a device the C SDK can name
my $seed = do {
    my $f = "$IoTHubTwin::ROOT/t/data/seed.json";
    open my $fh, '<', $f or die "$f: $!";
    local $/;
    json_decode(<$fh>);
};
push @{$seed->{devices}}, {
    deviceId => $CDEV, tags => {}, desired => {}, reported => {},
    modules => [ { moduleId => $CMOD, tags => {}, desired => { level => 1 },
                   reported => {} } ],
};
my $seed_dir = tempdir('iothub-twin-seed-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $seed_file = "$seed_dir/seed.json";
open my $sf, '>', $seed_file or die "$seed_file: $!";
print $sf json_encode($seed);
close $sf;

my $CALLERS = {
    callers => {
        'backend-a' => {
            keys => { primary => $KEY_A, secondary => $KEY_A2 },
            rules => [ {
                operations => ['read', 'update'],
                devices => ['dev1', 'dev2', 'dev#*', 'c+*'],
                modules => ['', 'mod1', 'm#*', 'm+*'],
                tags => ['**'],
                desired => ['**'],
                deny => ['properties.desired.locked.**'],
            } ],
        },
        'backend-b' => {
            keys => { primary => $KEY_B },
            rules => [ { operations => ['read'], devices => ['dev2'] } ],
        },
    },
};

my $IDENTITY = <<'EOF';
            iothub_twin_identity sas;
            iothub_twin_sas_host localhost;
            iothub_twin_callers %%DIR%%/callers.json;
            iothub_twin_read on;
EOF

my $t = IoTHubTwin->new(seed => $seed_file);
$t->secret($_) for $KEY_A, $KEY_A2, $KEY_B, $WRONG;
$t->write_file('callers.json', json_encode($CALLERS));
$t->start_nginx(IoTHubTwin::gateway($IDENTITY));

# the caller's token as the C SDK's SASToken_Create builds it
sub c_token {
    my (%a) = @_;
    my $key = $a{key} // $KEY_A;
    my $skn = $a{skn} // 'backend-a';
    my $se = $a{se} // int(time) + 3600;
    my $sig = encode_base64(hmac_sha256("localhost\n$se", decode_base64($key)),
                            '');
    $sig =~ s/([^A-Za-z0-9\-_.!*()])/sprintf('%%%02x', ord $1)/ge;
    return "SharedAccessSignature sr=localhost&sig=$sig&se=$se&skn=$skn";
}

my $n = 0;
sub guid { sprintf '2f1e0c3a-5b6d-4e7f-8a9b-%012x', ++$n }

# one request as the C SDK sends it: the IDs as they are
sub csdk {
    my ($method, $device, $module, %o) = @_;
    my $path = "/twins/$device" . (defined $module ? "/modules/$module" : '');
    my @h = ('Authorization' => $o{token} // c_token(),
             'Request-Id' => guid(),
             'User-Agent' => 'iothubserviceclient/1.13.0',
             'Content-Type' => 'application/json; charset=utf-8');
    push @h, 'If-Match' => $o{if_match} // '*' if $method eq 'PATCH';
    my $body = defined $o{patch} ? json_encode($o{patch}) : '';
    return $t->http(method => $method, path => "$path?$API",
                    host => 'localhost', headers => \@h, body => $body);
}


sub targets { join ' ', map { "$_->{method} $_->{target}" } @{$t->hub_requests} }

my ($r, $seen, $twin);

# reads (a GET with Content-Type and Content-Length: 0)

$t->hub_reset;
$r = csdk('GET', 'dev1');
is($r->{status}, 200, 'GET device twin: 200');
is($r->{json}{deviceId}, 'dev1', 'GET device twin: the twin');
$r = csdk('GET', 'dev1', 'mod1');
is($r->{status}, 200, 'GET module twin: 200');
is($r->{json}{moduleId}, 'mod1', 'GET module twin: the twin');
is(targets(), "GET /twins/dev1?$UPSTREAM_API GET /twins/dev1/modules/mod1?$UPSTREAM_API",
   'reads: the hub got the configured api-version');
IoTHubTwin::signed_by_gateway($t->hub_requests, 'reads');

# updates with If-Match: * bare, and with the current etag

my $patch = { tags => { location => { city => 'Bergen' } },
              properties => { desired => { telemetry => { interval => 60 } } } };

$t->hub_reset;
$r = csdk('PATCH', 'dev1', undef, patch => $patch);
is($r->{status}, 200, 'PATCH device twin, If-Match *: 200');
$twin = $t->hub_twin('dev1');
is($twin->{tags}{location}{city}, 'Bergen', 'PATCH *: hub tags');
is($twin->{properties}{desired}{telemetry}{interval}, 60, 'PATCH *: hub desired');
$seen = $t->hub_requests->[-1];
is(join('|', IoTHubTwin::header($seen, 'If-Match')), '*', 'PATCH *: bare * forwarded');
is_deeply(json_decode($seen->{body}), $patch, 'PATCH *: the patch forwarded');

$r = csdk('PATCH', 'dev1', undef, patch => { tags => { step => 2 } },
          if_match => qq{"$twin->{etag}"});
is($r->{status}, 200, 'PATCH device twin, current etag: 200');
is($t->hub_twin('dev1')->{tags}{step}, 2, 'PATCH etag: hub state');

$r = csdk('PATCH', 'dev1', 'mod1',
          patch => { properties => { desired => { mode => 'eco' } } });
is($r->{status}, 200, 'PATCH module twin, If-Match *: 200');
$twin = $t->hub_twin('dev1', 'mod1');
is($twin->{properties}{desired}{mode}, 'eco', 'PATCH module *: hub state');

$r = csdk('PATCH', 'dev1', 'mod1', patch => { tags => { site => 'north' } },
          if_match => qq{"$twin->{etag}"});
is($r->{status}, 200, 'PATCH module twin, current etag: 200');
is($t->hub_twin('dev1', 'mod1')->{tags}{site}, 'north',
   'PATCH module etag: hub state');

is(targets(), join(' ', "PATCH /twins/dev1?$UPSTREAM_API",
                   "PATCH /twins/dev1?$UPSTREAM_API",
                   "PATCH /twins/dev1/modules/mod1?$UPSTREAM_API",
                   "PATCH /twins/dev1/modules/mod1?$UPSTREAM_API"),
   'updates: what the hub received');
IoTHubTwin::signed_by_gateway($t->hub_requests, 'updates');

# read, then update (what Twin.update() does in the Node SDK; the C SDK
# sends * every time)

$t->hub_reset;
$r = csdk('GET', 'dev2');
$r = csdk('PATCH', 'dev2', undef, patch => { tags => { owner => 'ops' } },
          if_match => qq{"$r->{json}{etag}"});
is($r->{status}, 200, 'read then update: 200');
is($t->hub_twin('dev2')->{tags}{owner}, 'ops', 'read then update: hub state');

# a stale etag: the hub's 412

$t->hub_reset;
csdk('PATCH', 'dev1', undef, patch => { tags => { step => 1 } });
$r = csdk('PATCH', 'dev1', undef, patch => { tags => { step => 2 } },
          if_match => '"AAAAAAAAAAE="');
IoTHubTwin::is_hub_error($r, 412, 'PreconditionFailed', undef,
                         'stale etag: the hub\'s 412');
is($t->hub_requests->[-1]{status}, 412, 'stale etag: the hub answered');
is($t->hub_twin('dev1')->{tags}{step}, 1, 'stale etag: hub state unchanged');

# refused by the policy: 403 PolicyDenied, nothing forwarded

$t->hub_reset;
$r = csdk('PATCH', 'dev1', undef,
          patch => { properties => { desired => { locked => { relay => 1 } } } });
IoTHubTwin::is_hub_error($r, 403, 'PolicyDenied',
                         qr/backend-a may not do this: .*properties\.desired\.locked/,
                         'denied path: 403');
$r = csdk('GET', 'dev1', '$edgeAgent');
IoTHubTwin::is_hub_error($r, 403, 'PolicyDenied', qr/backend-a may not do this/,
                         'unencoded $edgeAgent, outside the rules: 403');
is(scalar @{$t->hub_requests}, 0, 'policy refusals: nothing forwarded');

# refused by validation: 400 ArgumentInvalid

$r = csdk('PATCH', 'dev1', undef, patch => { tags => { 'cost$center' => 1 } });
IoTHubTwin::is_hub_error($r, 400, 'ArgumentInvalid', qr/\$/,
                         'a key with $: 400');
is(scalar @{$t->hub_requests}, 0, 'validation refusal: nothing forwarded');

# special IDs: those the C SDK can send unencoded pass, decoded once ('+'
# stays '+') and re-encoded canonically; '#', '?' and '%' unencoded cannot
# be IDs and are refused, nothing forwarded

$t->hub_reset;
$r = csdk('GET', $CDEV);
is($r->{status}, 200, 'unencoded special device: 200');
is($r->{json}{deviceId}, $CDEV, 'unencoded special device: the twin');
$r = csdk('PATCH', $CDEV, $CMOD,
          patch => { properties => { desired => { level => 2 } } });
is($r->{status}, 200, 'unencoded special module: 200');
is($t->hub_twin($CDEV, $CMOD)->{properties}{desired}{level}, 2,
   'unencoded special module: hub state');
my $cpath = '/twins/' . IoTHubTwin::uri_component($CDEV);
is(targets(), "GET $cpath?$UPSTREAM_API PATCH $cpath/modules/"
              . IoTHubTwin::uri_component($CMOD) . "?$UPSTREAM_API",
   'unencoded special IDs: encoded canonically upstream');

$t->hub_reset;
IoTHubTwin::is_hub_error(csdk('GET', $DEV), 400, 'ArgumentInvalid', undef,
                         "unencoded '#?%' in a device ID: 400");
IoTHubTwin::is_hub_error(csdk('GET', 'dev1', $MOD), 400, 'ArgumentInvalid',
                         undef, "unencoded '#?%' in a module ID: 400");
is(scalar @{$t->hub_requests}, 0, "unencoded '#?%': nothing forwarded");

# the same IDs percent-encoded (as the C SDK's callers would have to) pass

$r = csdk('PATCH', IoTHubTwin::uri_component($DEV),
          IoTHubTwin::uri_component($MOD),
          patch => { properties => { desired => { level => 3 } } });
is($r->{status}, 200, 'encoded special IDs: 200');
is($t->hub_twin($DEV, $MOD)->{properties}{desired}{level}, 3,
   'encoded special IDs: hub state');

# the C SDK's headers pass; two requests on one connection (keep-alive),
# each with a token of its own; the hub gets the gateway's token

$t->hub_reset;
my $head = "Host: localhost\r\nUser-Agent: iothubserviceclient/1.13.0\r\n"
    . "Content-Type: application/json; charset=utf-8\r\n";
my $body = json_encode({ tags => { n => 1 } });
$r = $t->raw("GET /twins/dev2?$API HTTP/1.1\r\n$head"
             . "Authorization: " . c_token() . "\r\n"
             . "Request-Id: " . guid() . "\r\nContent-Length: 0\r\n\r\n"
             . "PATCH /twins/dev2?$API HTTP/1.1\r\n$head"
             . "Authorization: " . c_token(se => int(time) + 3599) . "\r\n"
             . "Request-Id: " . guid() . "\r\nIf-Match: *\r\n"
             . "Connection: close\r\nContent-Length: " . length($body)
             . "\r\n\r\n$body");
my @statuses = $r->{raw} =~ m{HTTP/1\.1 (\d{3}) }g;
is("@statuses", '200 200', 'two requests on one connection: 200 200');
$seen = $t->hub_requests;
is(scalar @$seen, 2, 'both forwarded');
IoTHubTwin::signed_by_gateway($seen, 'C SDK headers');
is(join('|', map { IoTHubTwin::header($_, 'User-Agent') } @$seen),
   'iothubserviceclient/1.13.0|iothubserviceclient/1.13.0', 'User-Agent passed');
is(join('|', map { IoTHubTwin::header($_, 'Request-Id') } @$seen),
   join('|', map { sprintf '2f1e0c3a-5b6d-4e7f-8a9b-%012x', $_ } $n - 1, $n),
   'Request-Id passed');
is(join('|', IoTHubTwin::header($seen->[1], 'If-Match')), '*', 'If-Match * passed');

# unauthorized: wrong key, unknown key name, expired, another sr, no
# token at all; the secondary key works

$t->hub_reset;
my %bad = (
    'a wrong key' => c_token(key => $WRONG),
    'an unknown key name' => c_token(skn => 'backend-x'),
    'an expired token' => c_token(se => int(time) - 600),   # past the skew
    'a token for another host' => do {
        (my $x = c_token()) =~ s/sr=localhost/sr=testhub.azure-devices.net/;
        $x;
    },
    'the hub\'s own key' => c_token(skn => 'service', key => $IoTHubTwin::HUB_KEY),
);
for my $name (sort keys %bad) {
    $r = csdk('GET', 'dev1', undef, token => $bad{$name});
    IoTHubTwin::is_hub_error($r, 401, 'IotHubUnauthorizedAccess',
                             qr/could not be identified/, "$name: 401");
}
$r = $t->http(method => 'GET', path => "/twins/dev1?$API", host => 'localhost');
IoTHubTwin::is_hub_error($r, 401, 'IotHubUnauthorizedAccess', undef,
                         'no Authorization: 401');
is(scalar @{$t->hub_requests}, 0, 'unauthorized: nothing forwarded');

$r = csdk('GET', 'dev1', undef, token => c_token(key => $KEY_A2));
is($r->{status}, 200, 'the secondary key: 200');

my $hub_log = $t->read_file('hub-requests.jsonl');
unlike($hub_log, qr/skn=backend-/, 'no caller token reached the hub');
ok(!grep({ index($hub_log, $_) >= 0 } $KEY_A, $KEY_A2, $KEY_B),
   'no caller key reached the hub');

$t->finish;

# throttled: limit_req keyed on the caller, 429 ThrottlingException

$t = IoTHubTwin->new(seed => $seed_file);
$t->secret($_) for $KEY_A, $KEY_A2, $KEY_B;
$t->write_file('callers.json', json_encode($CALLERS));
$t->start_nginx(
    "    limit_req_zone \$iothub_twin_caller zone=callers:1m rate=1r/m;\n"
    . IoTHubTwin::gateway($IDENTITY . <<'EOF', server => <<'EOF2'));
            limit_req zone=callers;           # no burst: nginx refuses burst=0
            limit_req_status 429;
EOF
        error_page 429 /.iothub_twin/429;
        location = /.iothub_twin/429 {
            internal;
            iothub_twin_error 429 ThrottlingException "too many requests";
        }
EOF2

$r = csdk('GET', 'dev1');
is($r->{status}, 200, 'throttling: the first request passes');
$r = csdk('GET', 'dev1');
IoTHubTwin::is_hub_error($r, 429, 'ThrottlingException', qr/too many requests/,
                         'throttling: the second is 429');
$r = csdk('GET', 'dev2', undef, token => c_token(skn => 'backend-b', key => $KEY_B));
is($r->{status}, 200, 'throttling: another caller has its own budget');
is(targets(), "GET /twins/dev1?$UPSTREAM_API GET /twins/dev2?$UPSTREAM_API",
   'throttling: the throttled request was not forwarded');

unlike($t->read_file('hub-requests.jsonl'), qr/skn=backend-/,
       'throttling: no caller token reached the hub');

$t->finish;

done_testing;
