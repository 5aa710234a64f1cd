#!/usr/bin/perl

# IDs: decoded exactly once, checked against the hub's rules, re-encoded
# canonically upstream; everything else is refused before the hub sees it.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IoTHubTwin qw(json_encode);

# the seed plus devices whose IDs hold '%' and what reads as escapes: legal
# at the hub, which decodes a path segment exactly once, as the gateway does

my $t = IoTHubTwin->new(no_emulator => 1);
my $seed = IoTHubTwin::json_decode(
    $t->read_file("$FindBin::Bin/data/seed.json"));
push @{$seed->{devices}},
    map { { deviceId => $_, tags => {}, desired => {}, reported => {} } }
        '%41', 'a%2Fb', 'dev1%0d%0a';
$seed->{devices}[-1]{modules} = [ { moduleId => 'm%2F', tags => {},
                                    desired => {}, reported => {} } ];
$t->start_emulator(seed => $t->write_file('seed.json', json_encode($seed)));

$t->start_nginx(IoTHubTwin::gateway(<<'EOF'));
            iothub_twin_read on;
            add_header X-Device-Id "$iothub_twin_device_id" always;
            add_header X-Module-Id "$iothub_twin_module_id" always;
EOF

my $special = q{dev#?%$'()*+,;=@!:-._};
my $special_mod = q{m#?%$'()*+,;=@!:-._};
my $enc = IoTHubTwin::uri_component($special);
my $enc_mod = IoTHubTwin::uri_component($special_mod);

# every allowed special character, encoded as the Node SDK encodes it

my $r = $t->patch("/twins/$enc/modules/$enc_mod?api-version=2021-04-12",
                  { properties => { desired => { level => 2 } } });
is($r->{status}, 200, 'special-character module twin: 200');
is($r->{json}{deviceId}, $special, 'the hub found the device');
is($r->{json}{moduleId}, $special_mod, 'the hub found the module');
is($t->hub_twin($special, $special_mod)->{properties}{desired}{level}, 2,
   'hub state updated');
is($t->hub_requests->[0]{target},
   "/twins/$enc/modules/$enc_mod?api-version=2021-04-12",
   'forwarded with the canonical encoding');

# lowercase escapes and escaped plain characters are normalised

$t->hub_reset;
(my $lower = $enc) =~ s/(%[0-9A-F]{2})/lc $1/ge;
$r = $t->patch("/twins/$lower", { tags => { x => 1 } });
is($r->{status}, 200, 'lowercase escapes: 200');
is($t->hub_requests->[0]{target}, "/twins/$enc?api-version=2021-04-12",
   'forwarded with uppercase escapes');

$t->hub_reset;
$r = $t->patch('/twins/%64ev1', { tags => { x => 1 } });
is($r->{status}, 200, 'escaped plain character: 200');
is($t->hub_requests->[0]{target}, '/twins/dev1?api-version=2021-04-12',
   'forwarded with the plain character');

# the C SDK sends IDs unencoded

$t->hub_reset;
$r = $t->http(method => 'GET', path => '/twins/dev1/modules/$edgeAgent');
is($r->{status}, 200, 'unencoded $ in a module ID: 200');
is($t->hub_requests->[0]{target},
   '/twins/dev1/modules/%24edgeAgent?api-version=2021-04-12',
   'forwarded encoded');

# an ID that still holds '%' after one decoding is an ID like any other:
# decoded once, checked, re-encoded once ('%' as %25), and the hub, which
# decodes once too, finds the same twin

my @pct = (
    [ '/twins/%2541', '/twins/%2541', '%41', undef ],
    [ '/twins/a%252Fb', '/twins/a%252Fb', 'a%2Fb', undef ],
    [ '/twins/a%25%32Fb', '/twins/a%252Fb', 'a%2Fb', undef,
      'an escaped plain character next to %25' ],
    [ '/twins/dev1%250d%250a', '/twins/dev1%250d%250a', 'dev1%0d%0a', undef ],
    [ '/twins/dev1%250d%250a/modules/m%252F',
      '/twins/dev1%250d%250a/modules/m%252F', 'dev1%0d%0a', 'm%2F' ],
);

for my $case (@pct) {
    my ($path, $up, $dev, $mod, $name) = @$case;
    $name //= $path;
    $t->hub_reset;
    $r = $t->patch($path, { tags => { pct => 1 } });
    is($r->{status}, 200, "$name: 200");
    is($r->{json}{deviceId}, $dev, "$name: the hub's twin is $dev");
    is($r->{json}{moduleId}, $mod, "$name: module $mod") if defined $mod;
    is($r->{headers}{'x-device-id'}, $dev,
       "$name: \$iothub_twin_device_id is the once-decoded ID");
    is($r->{headers}{'x-module-id'}, $mod, "$name: \$iothub_twin_module_id")
        if defined $mod;
    is($t->hub_requests->[0]{target}, "$up?api-version=2021-04-12",
       "$name: forwarded as $up");
    is($t->hub_twin($dev, $mod)->{tags}{pct}, 1,
       "$name: applied to the twin $dev");
}

# "%41" is the ID "A" (an escaped plain character), not the twin "%41"

$t->hub_reset;
$r = $t->patch('/twins/%41', { tags => { x => 1 } });
is($r->{status}, 404, '%41: the ID A, which the hub does not have');
is($r->{headers}{'x-device-id'}, 'A', '%41: $iothub_twin_device_id is A');
is($t->hub_requests->[0]{target}, '/twins/A?api-version=2021-04-12',
   '%41: forwarded as A');

# a path that is not /twins/{id} or /twins/{id}/modules/{mid}: the hub's 404

$t->hub_reset;

for my $path ('/twins/lab-42/things/x', '/twins/a/b',
              '/twins/dev1/modules/mod1/x', '/twins/dev1/',
              '/twins/dev1/modules', '/twins/dev1/Modules/mod1',
              '/devices/dev1', '/twins')
{
    $r = $t->patch($path, { tags => { x => 1 } });
    IoTHubTwin::is_hub_error($r, 404, 'NotFound',
                             qr{serves only /twins/\{deviceId\}},
                             "$path: 404");
}

is(scalar @{$t->hub_requests}, 0, 'no other path reached the hub');

# a raw '#' starts a fragment, which no request target may hold; '#' in an
# ID arrives as %23 (the gateway reads the request line as sent; sent here
# over a raw socket)

for my $path ('/twins/dev1#frag', '/twins/dev1/modules/mod1#',
              '/twins/dev#1?api-version=2021-04-12',
              '/twins/dev1?api-version=2021-04-12#frag')
{
    $r = $t->raw("PATCH $path HTTP/1.1\r\nHost: gateway\r\n"
                 . "Connection: close\r\nContent-Type: application/json\r\n"
                 . "Content-Length: 2\r\n\r\n{}");
    IoTHubTwin::is_hub_error($r, 400, 'ArgumentInvalid',
                             qr/fragment \('#'\): '#' in an ID is sent as %23/,
                             "raw '#' in $path: 400");
}

is(scalar @{$t->hub_requests}, 0, 'no fragment reached the hub');

$r = $t->patch('/twins/' . IoTHubTwin::uri_component($special), '{}');
is($r->{status}, 200, "'#' as %23: 200");

# refusals: 400 ArgumentInvalid in the hub's shape, nothing forwarded

$t->hub_reset;

my @bad = (
    [ '/twins/a%2Fb', qr/device ID contains '\/'/, '%2F in an ID' ],
    [ '/twins/a%2fb/modules/m', qr/device ID contains '\/'/, '%2f in an ID' ],
    [ '/twins/d/modules/a%2Fb', qr/module ID contains '\/'/,
      '%2F in a module ID' ],
    [ '/twins/%2F', qr/device ID contains '\/' \(byte 0x2f\)/,
      '%2F alone: a decoded / is not an ID character' ],
    [ '/twins/%250d%0d', qr/outside the allowed set \(byte 0x0d\)/,
      'CR after one decoding' ],
    [ '/twins/a%00b', qr/the request is malformed/, 'NUL (refused by nginx)' ],
    [ '/twins/caf%C3%A9', qr/outside the allowed set \(byte 0xc3\)/,
      'non-ASCII, encoded' ],
    [ "/twins/caf\xc3\xa9", qr/outside the allowed set/, 'non-ASCII, raw' ],
    [ '/twins/a%20b', qr/outside the allowed set \(byte 0x20\)/, 'space' ],
    [ '/twins/a~b', qr/outside the allowed set/, '~' ],
    [ '/twins/a%', qr/malformed percent-escape|the request is malformed/,
      'lone %' ],
    [ '/twins/a%zz', qr/the request is malformed/,
      'bad escape (refused by nginx)' ],
    [ '/twins/..', qr/dot segment/, '..' ],
    [ '/twins/%2e', qr/dot segment/, 'encoded .' ],
    [ '/twins/', qr/device ID is empty/, 'empty device ID' ],
    [ '/twins/d/modules/', qr/module ID is empty/, 'empty module ID' ],
    [ '/twins/' . ('a' x 129), qr/longer than 128/, '129 characters' ],
    [ '/twins/dev1?b?api-version=2021-04-12',
      qr/only query parameter accepted is api-version/,
      'unencoded ? in an ID (C SDK style)' ],
    [ '/twins/dev1?api-version=2021-04-12&x=1',
      qr/only query parameter/, 'unknown query parameter' ],
    [ '/twins/dev1?api-version=banana', qr/not a valid version/,
      'bad api-version' ],
);

for my $case (@bad) {
    my ($path, $re, $name) = @$case;
    $r = $t->patch($path, { tags => { x => 1 } });
    IoTHubTwin::is_hub_error($r, 400, 'ArgumentInvalid', $re, $name);
}

ok(length('/twins/' . ('a' x 128)), '128 characters are fine:');
$r = $t->patch('/twins/' . ('a' x 128), { tags => { x => 1 } });
is($r->{status}, 404, '128 characters reach the hub (which has no such device)');

my $seen = $t->hub_requests;
is(scalar @$seen, 1, 'only the valid request reached the hub');

# not a twin method

$t->hub_reset;

for my $m (qw(PUT DELETE POST)) {
    $r = $t->http(method => $m, path => '/twins/dev1',
                  headers => ['Content-Type' => 'application/json'],
                  body => '{}');
    IoTHubTwin::is_hub_error($r, 405, 'MethodNotAllowed', qr/\Q$m\E/,
                             "$m: 405");
    is($r->{headers}{allow}, 'GET, PATCH', "$m: Allow");
}

is(scalar @{$t->hub_requests}, 0, 'none of them reached the hub');

$t->finish;

# the policy sees the once-decoded ID: a rule for "%41" allows /twins/%2541
# and not /twins/%41 (the ID "A")

$t = IoTHubTwin->new(no_emulator => 1);
$t->start_emulator(seed => $t->write_file('seed.json', json_encode($seed)));
$t->write_file('callers.json', json_encode({ callers => {
    pct => { rules => [ { operations => ['update'], devices => ['%41'],
                          tags => ['**'] } ] } } }));
$t->start_nginx(IoTHubTwin::gateway(<<'EOF'));
            iothub_twin_identity variable $http_x_test_caller;
            iothub_twin_callers %%DIR%%/callers.json;
EOF

$r = $t->patch('/twins/%2541', { tags => { p => 1 } }, 'X-Test-Caller' => 'pct');
is($r->{status}, 200, 'policy for "%41": /twins/%2541 allowed');
is($t->hub_twin('%41')->{tags}{p}, 1, 'policy for "%41": applied');
$r = $t->patch('/twins/%41', { tags => { p => 1 } }, 'X-Test-Caller' => 'pct');
IoTHubTwin::is_hub_error($r, 403, 'PolicyDenied', undef,
                         'policy for "%41": /twins/%41 (the ID A) denied');
is(scalar @{$t->hub_requests}, 1, 'only the allowed one reached the hub');

$t->finish;

# reads are off by default

$t = IoTHubTwin->new;
$t->start_nginx(IoTHubTwin::gateway(''));

$r = $t->http(method => 'GET', path => '/twins/dev1');
IoTHubTwin::is_hub_error($r, 405, 'MethodNotAllowed', undef,
                         'GET without iothub_twin_read: 405');
is($r->{headers}{allow}, 'PATCH', 'Allow: PATCH');
is(scalar @{$t->hub_requests}, 0, 'nothing forwarded');

$t->finish;

done_testing;
