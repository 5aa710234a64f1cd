#!/usr/bin/perl

# Patch validation end to end: every refusal class is answered by the gateway
# in the hub's shape, naming the path and the rule, and nothing reaches the
# hub; patches right at the limits pass and are applied.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IoTHubTwin qw(json_encode);

my $t = IoTHubTwin->new;

$t->start_nginx(IoTHubTwin::gateway(<<'EOF'));
            add_header X-Paths $iothub_twin_paths always;
EOF

my $k1024 = 'k' x 1024;
my $s4096 = 's' x 4096;
my $max = 4503599627370495;
# the section object is level 0, the object value of its key level 1
my $deep10 = '{"a":' x 10 . '{"z":1}' . '}' x 10;
my $deep11 = '{"a":' x 11 . '{"z":1}' . '}' x 11;

# refusals: [ body, status code name, message pattern, what ]
my @refused = (
    [ '{"tags":', 'IotHubFormatError', qr/unexpected end of input/,
      'truncated JSON' ],
    [ '{"tags":{}} x', 'IotHubFormatError', qr/unexpected data after/,
      'trailing bytes' ],
    [ "{'tags':{}}", 'IotHubFormatError', qr/not valid JSON/, 'single quotes' ],
    [ '{"tags":{"a":1,}}', 'IotHubFormatError', qr/not valid JSON/,
      'trailing comma' ],
    [ '{"tags":{"a":01}}', 'IotHubFormatError', qr/leading zero/,
      'leading zero' ],
    [ qq({"tags":{"a":"\xff"}}), 'IotHubFormatError', qr/invalid UTF-8/,
      'invalid UTF-8' ],
    [ qq({"tags":{"a":"\xc0\xaf"}}), 'IotHubFormatError', qr/invalid UTF-8/,
      'overlong UTF-8' ],
    [ '{"tags":{"a":"\ud800"}}', 'IotHubFormatError', qr/surrogate/,
      'lone surrogate' ],
    [ "\xef\xbb\xbf{}", 'IotHubFormatError', qr/not valid JSON/, 'BOM' ],
    [ '[]', 'ArgumentInvalid', qr/must be a JSON object/, 'array at the top' ],
    [ '{"tags":{"a":1,"a":2}}', 'ArgumentInvalid',
      qr/tags\.a: duplicate key|duplicate key/, 'duplicate key' ],
    [ '{"tags":{"x":{"a":1,"\u0061":2}}}', 'ArgumentInvalid',
      qr/duplicate key/, 'duplicate key through an escape, at depth' ],
    [ '{"properties":{"reported":{"a":1}}}', 'ArgumentInvalid',
      qr/properties\.reported: the service side may not write reported/,
      'reported properties' ],
    [ '{"properties":{"desired":{},"other":1}}', 'ArgumentInvalid',
      qr/only desired properties/, 'another properties section' ],
    [ '{"tags":{},"foo":1}', 'ArgumentInvalid', qr/foo: unknown twin field/,
      'unknown top-level field' ],
    [ '{"deviceId":"dev2","tags":{}}', 'ArgumentInvalid',
      qr/deviceId: does not match the id in the request path/,
      'deviceId of another device' ],
    [ '{"moduleId":"m","tags":{}}', 'ArgumentInvalid',
      qr/moduleId: not allowed in a device twin patch/,
      'moduleId on a device twin' ],
    [ '{"tags":"x"}', 'ArgumentInvalid', qr/tags: must be a JSON object/,
      'tags not an object' ],
    [ '{"properties":{"desired":{"a":{"b$":1}}}}', 'ArgumentInvalid',
      qr/properties\.desired\.a\.b\$: key contains '\$'/, '$ in a key' ],
    [ '{"properties":{"desired":{"\u0024x":1}}}', 'ArgumentInvalid',
      qr/key contains '\$'/, '$ through an escape' ],
    [ '{"properties":{"desired":{"$metadata":{}}}}', 'ArgumentInvalid',
      qr/maintained by the hub/, '$metadata' ],
    [ '{"properties":{"desired":{"$version":3}}}', 'ArgumentInvalid',
      qr/maintained by the hub/, '$version' ],
    [ '{"tags":{"a.b":1}}', 'ArgumentInvalid', qr/key contains '\.'/,
      '. in a key' ],
    [ '{"tags":{"a b":1}}', 'ArgumentInvalid', qr/key contains a space/,
      'space in a key' ],
    [ '{"tags":{"a\u0001":1}}', 'ArgumentInvalid', qr/control character/,
      'control character in a key' ],
    [ '{"tags":{"a\u0085":1}}', 'ArgumentInvalid', qr/control character/,
      'C1 control character in a key' ],
    [ '{"tags":{"":1}}', 'ArgumentInvalid', qr/key is empty/, 'empty key' ],
    [ json_encode({ tags => { $k1024 . 'k' => 1 } }), 'ArgumentInvalid',
      qr/key longer than 1024 bytes/, '1025-byte key' ],
    [ json_encode({ tags => { a => $s4096 . 's' } }), 'ArgumentInvalid',
      qr/tags\.a: string longer than 4096 bytes/, '4097-byte string' ],
    [ '{"tags":{"a":4503599627370496}}', 'ArgumentInvalid',
      qr/integer outside/, 'integer over the range' ],
    [ '{"tags":{"a":-4503599627370497}}', 'ArgumentInvalid',
      qr/integer outside/, 'integer under the range' ],
    [ '{"tags":{"a":1e400}}', 'ArgumentInvalid|IotHubFormatError',
      qr/out of range/, 'double overflow' ],
    [ '{"tags":{"a":[1,null]}}', 'ArgumentInvalid',
      qr/tags\.a: null inside an array/, 'null inside an array' ],
    [ '{"tags":' . $deep11 . '}', 'ArgumentInvalid',
      qr/more than 10 levels/, '11 levels of objects' ],
    [ json_encode({ tags => { map { ("k$_" => 'v' x 100) } 1 .. 80 } }),
      'ArgumentInvalid', qr/tags: size exceeds the 8192 byte limit/,
      'tags over 8 KB' ],
    [ json_encode({ properties => { desired =>
          { map { ("k$_" => 'v' x 1000) } 1 .. 33 } } }),
      'ArgumentInvalid',
      qr/properties\.desired: size exceeds the 32768 byte limit/,
      'desired over 32 KB' ],
    [ '{"tags":{"a":"\u0000"}}', 'ArgumentInvalid|IotHubFormatError',
      qr/U\+0000/, 'NUL in a string' ],
);

for my $case (@refused) {
    my ($body, $code, $re, $name) = @$case;
    my $r = $t->patch('/twins/dev1', $body);
    my $got = $r->{headers}{'iothub-errorcode'} // '';
    ($code) = grep { $_ eq $got } split /\|/, $code if $code =~ /\|/;
    IoTHubTwin::is_hub_error($r, 400, $code // 'ArgumentInvalid', $re, $name);
}

is(scalar @{$t->hub_requests}, 0, 'no refused patch reached the hub');

# the error text shows only a short excerpt of the caller's data

my $r = $t->patch('/twins/dev1',
                  json_encode({ tags => { ('x' x 900) . '$' => 1 } }));
is($r->{status}, 400, 'long bad key: 400');
ok(length($r->{json}{Message}) < 400, 'the message is short')
    or diag length $r->{json}{Message};

# at the limits: accepted, applied, and the paths listed

my @accepted = (
    [ json_encode({ tags => { $k1024 => 1 } }), '1024-byte key',
      "tags.$k1024" ],
    [ json_encode({ tags => { a => $s4096 } }), '4096-byte string', 'tags.a' ],
    [ qq({"tags":{"a":4503599627370495,"b":-4503599627370496}}),
      'integers at the range ends', 'tags.a tags.b' ],
    [ '{"tags":' . $deep10 . '}', '10 levels of objects',
      'tags' . '.a' x 10 . '.z' ],
    [ '{"tags":{"a":[1,"x",[true,{"b":2}]]}}', 'arrays', 'tags.a' ],
    [ qq({"properties":{"desired":{"a":null,"b":{"c":null}}}}),
      'nulls are deletes', 'properties.desired.a properties.desired.b.c' ],
    [ qq({"deviceId":"dev1","etag":"AAAAAAAAAAE=","version":1,)
      . qq("status":"enabled","tags":{"x":"\u00e9\ud83d\ude00"}}),
      'read-only fields ignored, escapes and surrogate pairs', 'tags.x' ],
    [ qq(\t{ "tags" :\r\n{ "a" : 1 } }\n), 'whitespace everywhere', 'tags.a' ],
    [ '{"tags":{"a":{}}}', 'empty object', 'tags.a' ],
    [ '{}', 'empty patch', undef ],
);

for my $case (@accepted) {
    my ($body, $name, $paths) = @$case;
    $t->hub_reset;
    $r = $t->patch('/twins/dev1', $body);
    is($r->{status}, 200, "$name: 200");
    is($r->{headers}{'x-paths'}, $paths, "$name: paths written") if $paths;
    is($t->hub_requests->[0]{body}, $body, "$name: forwarded as sent");
}

# the last one, {}, was applied to the seeded twin: a new version, no change
is_deeply($t->hub_twin('dev1')->{tags}, { location => { city => 'Oslo' } },
          'an empty patch changes nothing');
is($t->hub_twin('dev1')->{version}, 2, 'but it is a new version');

# depth, counted as the hub counts it: its own example of the deepest valid
# twin, in tags and desired, device and module twins, is forwarded and
# applied; one level more is refused and nothing is forwarded

my @levels = qw(one two three four five six seven eight nine ten);
my $example = '{"property":"value"}';
$example = qq({"$_":$example}) for reverse @levels;
my $too_deep = '{"property":"value"}';
$too_deep = qq({"$_":$too_deep}) for reverse(@levels, 'eleven');

for my $twin ([ 'dev1' ], [ 'dev1', 'mod1' ]) {
    my ($dev, $mod) = @$twin;
    my $path = "/twins/$dev" . (defined $mod ? "/modules/$mod" : '');
    my $what = defined $mod ? 'module twin' : 'device twin';

    for my $section ('tags', 'properties.desired') {
        my $wrap = $section eq 'tags'
                   ? sub { qq({"tags":$_[0]}) }
                   : sub { qq({"properties":{"desired":$_[0]}}) };

        $t->hub_reset;
        my $body = $wrap->($example);
        $r = $t->patch($path, $body);
        is($r->{status}, 200, "hub's 10-level example in $section, $what: 200");
        is($r->{headers}{'x-paths'},
           join('.', $section, @levels, 'property'),
           "hub's 10-level example in $section, $what: the path");
        is($t->hub_requests->[0]{body}, $body,
           "hub's 10-level example in $section, $what: forwarded");

        my $node = $t->hub_twin($dev, $mod);
        $node = $section eq 'tags' ? $node->{tags}
                                   : $node->{properties}{desired};
        $node = $node->{$_} // {} for @levels;
        is($node->{property}, 'value',
           "hub's 10-level example in $section, $what: applied");

        $t->hub_reset;
        $r = $t->patch($path, $wrap->($too_deep));
        IoTHubTwin::is_hub_error($r, 400, 'ArgumentInvalid',
                                 qr/ten\.eleven: more than 10 levels/,
                                 "11 levels in $section, $what: refused");
        is(scalar @{$t->hub_requests}, 0,
           "11 levels in $section, $what: nothing forwarded");
    }
}

# a module twin: moduleId must match

$t->hub_reset;
$r = $t->patch('/twins/dev1/modules/mod1',
               '{"deviceId":"dev1","moduleId":"mod1","tags":{"m":1}}');
is($r->{status}, 200, 'matching deviceId and moduleId: 200');
$r = $t->patch('/twins/dev1/modules/mod1',
               '{"moduleId":"mod2","tags":{"m":1}}');
IoTHubTwin::is_hub_error($r, 400, 'ArgumentInvalid',
                         qr/moduleId: does not match/, 'other moduleId');
is(scalar @{$t->hub_requests}, 1, 'only the valid one reached the hub');

$t->finish;

done_testing;
