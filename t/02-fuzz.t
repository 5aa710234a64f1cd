#!/usr/bin/perl

# A short run of each fuzzer (built by "make fuzz") over its seed corpus:
# every fuzz/fuzz_*.c (patch, id, sas, etag, policy; about 30 s for all of
# them on the project's machine), each an ASan and UBSan build, so "make
# test-asan" replays the corpora under the sanitizers too.  New inputs go
# to a scratch folder, never into the committed corpus.  Longer runs: make
# fuzz-run FUZZ_SECONDS=600.

use strict;
use warnings;

use FindBin;
use File::Path qw(make_path remove_tree);
use Test::More;

my $root = "$FindBin::Bin/..";
my $runs = $ENV{FUZZ_RUNS} || 30000;

my @targets = sort glob "$root/fuzz/fuzz_*.c";
ok(scalar @targets, 'there are fuzz targets');

for my $src (@targets) {
    my ($name) = $src =~ m{/(fuzz_\w+)\.c$};
    (my $corpus = $name) =~ s/^fuzz_//;
    my $bin = "$root/build/fuzz/$name";
    my $scratch = "$root/build/fuzz/scratch-$name";

    ok(-x $bin, "$name is built") or next;
    remove_tree($scratch);
    make_path($scratch);

    my $out = `$bin -runs=$runs -seed=1 -max_len=4096 $scratch $root/fuzz/corpus/$corpus 2>&1`;
    my $status = $? >> 8;
    is($status, 0, "$name: $runs runs, no crash, no disagreement")
        or diag(join "\n", (split /\n/, $out)[-30 .. -1]);
    like($out, qr/Done \d+ runs/, "$name: libFuzzer finished");
}

done_testing;
