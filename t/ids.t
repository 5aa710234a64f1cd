#!/usr/bin/perl

# IDs: decoded exactly once, checked against the hub's rules, re-encoded
# canonically upstream; everything else is refused before the hub sees it.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IoTHubTwin;

my $t = IoTHubTwin->new;

$t->start_nginx(IoTHubTwin::gateway("            iothub_twin_read on;\n"));

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

# refusals: 400 ArgumentInvalid in the hub's shape, nothing forwarded

$t->hub_reset;

my @bad = (
    [ '/twins/a%2Fb', qr/device ID contains '\/'/, '%2F in an ID' ],
    [ '/twins/a%2fb/modules/m', qr/device ID contains '\/'/, '%2f in an ID' ],
    [ '/twins/d/modules/a%2Fb', qr/module ID contains '\/'/,
      '%2F in a module ID' ],
    [ '/twins/a/b', qr{the path must be}, '/ inside an ID' ],
    [ '/twins/dev1/modules/mod1/x', qr{the path must be}, 'extra segment' ],
    [ '/twins/a%252Fb', qr/percent-encoded twice/, 'double encoding' ],
    [ '/twins/dev%2531', qr/percent-encoded twice/, 'double-encoded plain' ],
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

# not a twin path, not a twin method

$t->hub_reset;

$r = $t->patch('/devices/dev1', { tags => { x => 1 } });
IoTHubTwin::is_hub_error($r, 404, 'NotFound', qr{/twins/}, 'other path: 404');

$r = $t->patch('/twins', { tags => { x => 1 } });
IoTHubTwin::is_hub_error($r, 404, 'NotFound', undef, '/twins: 404');

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
