#!/usr/bin/perl

# The unit tests of the pure parts (t/unit/*.c, built by make into
# build/unit/), each a TAP stream, relayed here one assertion at a time.

use strict;
use warnings;

use FindBin;
use Test::More;

my $root = "$FindBin::Bin/..";

my @tests = sort glob "$root/t/unit/test_*.c";
ok(scalar @tests, 'there are unit tests');

for my $src (@tests) {
    my ($name) = $src =~ m{/(test_\w+)\.c$};
    my $bin = "$root/build/unit/$name";

    subtest $name => sub {
        ok(-x $bin, "$name is built") or return;

        my @out = `cd $root && $bin 2>&1`;
        my $status = $? >> 8;
        my ($plan, $seen) = (undef, 0);

        for (@out) {
            chomp;
            if (/^1\.\.(\d+)$/) {
                $plan = $1;
            } elsif (/^(not )?ok \d+ - (.*)$/) {
                $seen++;
                ok(!$1, $2);
            } elsif (/^#/) {
                diag($_);
            }
        }

        ok(defined $plan && $plan == $seen, "plan of $seen assertions");
        is($status, 0, 'exit status');
    };
}

done_testing;
