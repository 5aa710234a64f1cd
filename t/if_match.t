#!/usr/bin/perl

# If-Match with the hub's rules: quoted etags and "*" pass as they are, bare *
# passes, a bare etag is quoted (the hub would silently ignore it), malformed
# values are refused; a stale etag gets the hub's own 412 back.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IoTHubTwin;

my $t = IoTHubTwin->new;
$t->start_nginx(IoTHubTwin::gateway(''));

sub forwarded_if_match {
    return join '|', IoTHubTwin::header($t->hub_requests->[-1], 'If-Match');
}

my $etag = $t->hub_twin('dev1')->{etag};    # version 1
is($etag, 'AAAAAAAAAAE=', 'seed etag');

# current etag, quoted: applied

my $r = $t->patch('/twins/dev1', { tags => { step => 1 } },
                  'If-Match' => qq{"$etag"});
is($r->{status}, 200, 'quoted current etag: 200');
is(forwarded_if_match(), qq{"$etag"}, 'forwarded as is');
my $etag2 = $r->{json}{etag};
is($r->{headers}{etag}, qq{"$etag2"}, 'new ETag returned');

# the old etag, quoted: the hub's 412, passed back unchanged

$t->hub_reset;
$t->patch('/twins/dev1', { tags => { step => 1 } });    # version 2
$r = $t->patch('/twins/dev1', { tags => { step => 2 } },
               'If-Match' => qq{"$etag"});
IoTHubTwin::is_hub_error($r, 412, 'PreconditionFailed', undef,
                         'stale quoted etag: the hub\'s 412');
is($t->hub_requests->[-1]{status}, 412, 'it was the hub that answered 412');
is($t->hub_twin('dev1')->{tags}{step}, 1, 'hub state unchanged');

# a bare etag is quoted before forwarding, so the precondition holds: the
# hub would have ignored it unquoted and applied the stale write

$r = $t->patch('/twins/dev1', { tags => { step => 3 } },
               'If-Match' => $etag);
is($r->{status}, 412, 'stale bare etag: 412 (it was quoted)');
is(forwarded_if_match(), qq{"$etag"}, 'forwarded quoted');
is($t->hub_twin('dev1')->{tags}{step}, 1, 'hub state unchanged');

my $current = $t->hub_twin('dev1')->{etag};
$r = $t->patch('/twins/dev1', { tags => { step => 4 } },
               'If-Match' => $current);
is($r->{status}, 200, 'current bare etag: 200');
is(forwarded_if_match(), qq{"$current"}, 'forwarded quoted');

# unconditional forms

$r = $t->patch('/twins/dev1', { tags => { step => 5 } }, 'If-Match' => '*');
is($r->{status}, 200, 'bare *: 200');
is(forwarded_if_match(), '*', 'bare * forwarded as is');

$r = $t->patch('/twins/dev1', { tags => { step => 6 } }, 'If-Match' => '"*"');
is($r->{status}, 200, 'quoted "*": 200');
is(forwarded_if_match(), '"*"', 'quoted "*" forwarded as is');

$r = $t->patch('/twins/dev1', { tags => { step => 7 } });
is($r->{status}, 200, 'no If-Match: 200');
is(forwarded_if_match(), '', 'no If-Match forwarded');

# malformed: refused, nothing forwarded

$t->hub_reset;

for my $bad ('"abc', 'a b', '"a", "b"', 'a,b', '""', 'W/abc') {
    $r = $t->patch('/twins/dev1', { tags => { x => 1 } }, 'If-Match' => $bad);
    IoTHubTwin::is_hub_error($r, 400, 'ArgumentInvalid', qr/If-Match/,
                             "malformed If-Match [$bad]");
}

$r = $t->patch('/twins/dev1', { tags => { x => 1 } },
               'If-Match' => '"a"', 'If-Match' => '"b"');
IoTHubTwin::is_hub_error($r, 400, 'ArgumentInvalid',
                         qr/more than once|the request is malformed/,
                         'two If-Match headers');

is(scalar @{$t->hub_requests}, 0, 'no malformed If-Match reached the hub');

$t->finish;

# iothub_twin_require_if_match on: 428 without one

$t = IoTHubTwin->new;
$t->start_nginx(IoTHubTwin::gateway("            iothub_twin_require_if_match on;\n"));

$r = $t->patch('/twins/dev1', { tags => { x => 1 } });
IoTHubTwin::is_hub_error($r, 428, 'PreconditionRequired', qr/If-Match/,
                         'required and absent: 428');
is(scalar @{$t->hub_requests}, 0, 'nothing forwarded');

$r = $t->patch('/twins/dev1', { tags => { x => 1 } }, 'If-Match' => '*');
is($r->{status}, 200, 'required and given: 200');

$t->finish;

done_testing;
