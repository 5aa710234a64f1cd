#!/usr/bin/perl

# The SAS token: one per worker, reused across requests, renewed when half
# its lifetime is gone; signed with the primary or the secondary key.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep);
use IoTHubTwin;

my $t = IoTHubTwin->new;
$t->start_nginx(IoTHubTwin::gateway("            iothub_twin_token_lifetime 10s;\n"));

sub token {
    my ($req) = @_;
    my ($a) = IoTHubTwin::header($req, 'Authorization');
    return $a;
}

my $start = time;
$t->patch('/twins/dev1', { tags => { n => $_ } }) for 1 .. 3;

my @seen = @{$t->hub_requests};
is(scalar @seen, 3, 'three requests');
is(scalar(grep { $_->{auth} eq 'ok' } @seen), 3, 'all signed correctly');

my @tokens = map { token($_) } @seen;
is($tokens[1], $tokens[0], 'second request reuses the token');
is($tokens[2], $tokens[0], 'third request reuses the token');

my ($se) = $tokens[0] =~ /&se=(\d+)/;
ok($se >= $start + 10 && $se <= time + 10, 'expiry is now + lifetime');

# past half the lifetime: a new token

sleep 6;
$t->hub_reset;
$t->patch('/twins/dev1', { tags => { n => 4 } });
my $renewed = token($t->hub_requests->[0]);
isnt($renewed, $tokens[0], 'renewed after half the lifetime');
my ($se2) = $renewed =~ /&se=(\d+)/;
ok($se2 > $se, 'with a later expiry');
is($t->hub_requests->[0]{auth}, 'ok', 'the renewed token verifies');

$t->finish;

# the secondary key signs when told to; the hub accepts either

$t = IoTHubTwin->new;
$t->start_nginx(IoTHubTwin::gateway("            iothub_twin_hub_key_slot secondary;\n"));
my $r = $t->patch('/twins/dev1', { tags => { k => 2 } });
is($r->{status}, 200, 'signed with the secondary key: 200');
is($t->hub_requests->[0]{auth}, 'ok', 'the hub verified it');
$t->finish;

# a key the hub does not know: the hub's 401 comes back

$t = IoTHubTwin->new;
$t->write_file('hub.key', "# rotated away\n"
                          . $t->secret('d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk=')
                          . "\n");
$t->start_nginx(IoTHubTwin::gateway(''));
$r = $t->patch('/twins/dev1', { tags => { k => 3 } });
IoTHubTwin::is_hub_error($r, 401, 'IotHubUnauthorizedAccess', undef,
                         'wrong key: the hub\'s 401 passed back');
is($t->hub_requests->[0]{auth}, 'bad-signature', 'the hub saw a bad signature');
unlike($r->{body}, qr/SharedAccessSignature/, 'no token in the answer');
$t->finish;

done_testing;
