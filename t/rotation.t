#!/usr/bin/perl

# Hub key rotation under load, as README's "Operations" describes it: the
# gateway moves to the secondary key with a reload, the hub's primary key
# is regenerated, the gateway gets the new primary and moves back with a
# second reload, then the secondary is regenerated too.  Two client loops
# send updates the whole time (the hub takes 20 ms per answer, so requests
# are in flight at each reload); every answer must be 2xx.  A last step
# shows the check has teeth: regenerating the key the gateway signs with
# makes the hub refuse it.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use POSIX qw(_exit);
use Time::HiRes qw(sleep time);
use IoTHubTwin;

my $P = $IoTHubTwin::HUB_KEY;       # what the emulator starts with
my $S = $IoTHubTwin::HUB_KEY2;
my $P_NEW = 'cm90YXRlZC1wcmltYXJ5LWtleS1mb3ItdGVzdHMtMDE=';
my $S_NEW = 'cm90YXRlZC1zZWNvbmRhcnkta2V5LWZvci10ZXN0cy0=';
my $P_LAST = 'YSB0aGlyZCBwcmltYXJ5IGtleSwgbmV2ZXIgdG9sZCA=';

my $t = IoTHubTwin->new;
$t->secret($_) for $P_NEW, $S_NEW, $P_LAST;

sub conf {
    my ($slot) = @_;
    return IoTHubTwin::gateway("            iothub_twin_hub_key_slot $slot;\n");
}

sub hub_keys { $t->hub_config(keys => { service => [@_] }) }

# the worker processes of the running master
sub workers {
    my $master = $t->{nginx};
    return grep { /^\d+$/ } map { (split ' ')[0] }
        grep { /nginx: worker process/ } `ps -o pid=,args= --ppid $master`;
}

# a reload, and the wait until every old worker has finished its requests
# and exited: only then does no token signed with the old key leave
sub reload_and_drain {
    my ($slot, $step) = @_;
    my @old = workers();
    $t->reload_nginx(conf($slot), workers => 2);
    my $deadline = time + 20;
    sleep 0.05 while time < $deadline && grep { kill 0, $_ } @old;
    ok(!(grep { kill 0, $_ } @old), "$step: the old workers have exited");
    my @new = workers();
    ok(@new == 2 && !(grep { my $n = $_; grep { $_ == $n } @old } @new),
       "$step: two new workers");
}

# a client loop in its own process: one update after another, each on a
# new connection, "time status" per answer (000 when there was none)
sub client {
    my ($n) = @_;
    my $pid = fork() // die "fork: $!";
    return $pid if $pid;
    open my $out, '>', $t->dir . "/client-$n.txt" or _exit(1);
    $out->autoflush(1);
    my $i = 0;
    until (-e $t->dir . '/stop') {
        my $r = eval {
            $t->patch('/twins/dev1', { tags => { "c$n" => $i++ } })
        } || {};
        printf $out "%.3f %s\n", time, $r->{status} || '000';
    }
    close $out;
    _exit(0);
}

$t->write_file('hub.key', "$P\n$S\n");
$t->hub_config(delay_ms => 20);
$t->start_nginx(conf('primary'), workers => 2);

my @clients = map { client($_) } 1, 2;
my %mark = (start => time);
sleep 1;

# 1. the gateway signs with the secondary key
$t->write_file('hub.key', "$P\n$S\n");
reload_and_drain('secondary', '1. slot secondary');
$mark{secondary} = time;
sleep 1;

# 2. regenerate the primary key in the hub: the old one is refused from now
hub_keys($P_NEW, $S);
$mark{regenerated} = time;
sleep 1;

# 3. the new primary in the file, the gateway back on the primary slot
$t->write_file('hub.key', "$P_NEW\n$S\n");
reload_and_drain('primary', '3. new primary, slot primary');
$mark{primary} = time;
sleep 1;

# 4. regenerate the secondary too, and put it in the file
hub_keys($P_NEW, $S_NEW);
$t->write_file('hub.key', "$P_NEW\n$S_NEW\n");
reload_and_drain('primary', '4. new secondary in the file');
$mark{done} = time;
sleep 1;

$t->write_file('stop', '');
waitpid($_, 0) for @clients;

my @answers = map { [split ' '] }
    map { split /\n/, $t->read_file("client-$_.txt") } 1, 2;
my @bad = grep { $_->[1] !~ /^2\d\d$/ } @answers;

cmp_ok(scalar @answers, '>', 100, 'the clients sent '
       . scalar(@answers) . ' updates during the rotation');
is(scalar @bad, 0, 'every answer was 2xx')
    or diag join "\n", map { "@$_" } @bad[0 .. ($#bad < 9 ? $#bad : 9)];

for my $phase (['secondary', 'regenerated'], ['regenerated', 'primary'],
               ['primary', 'done'])
{
    my ($from, $to) = @$phase;
    my $n = grep { $_->[0] >= $mark{$from} && $_->[0] < $mark{$to} }
        @answers;
    cmp_ok($n, '>', 10, "$n updates answered between $from and $to");
}

# the hub checked every one of them
my @seen = @{$t->hub_requests};
is(scalar(grep { $_->{auth} ne 'ok' } @seen), 0,
   'the hub accepted every token it got (' . scalar(@seen) . ')');

# the teeth: regenerate the key the gateway signs with, without a reload
hub_keys($P_LAST, $S_NEW);
my $r = $t->patch('/twins/dev1', { tags => { after => 'regeneration' } });
is($r->{status}, 401, 'a key regenerated under the gateway: the hub '
   . 'refuses its token (401)');

$t->finish;
done_testing;
