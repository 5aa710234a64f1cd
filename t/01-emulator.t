#!/usr/bin/perl

# The hub emulator's own self-test (emulator/test_emulator.py): it must check
# SAS signatures for real and keep twin state as the hub does, or the other
# tests prove nothing.

use strict;
use warnings;

use FindBin;
use Test::More;

my $root = "$FindBin::Bin/..";
my $out = `cd $root && python3 emulator/test_emulator.py 2>&1`;
my $status = $? >> 8;

my ($ran) = $out =~ /^Ran (\d+) tests?/m;
ok($ran && $ran >= 20, "the emulator self-test ran (" . ($ran // 0) . " tests)");
is($status, 0, 'and passed') or diag $out;
like($out, qr/^OK/m, 'unittest says OK');

done_testing;
