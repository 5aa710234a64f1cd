#!/usr/bin/perl

# Least privilege on the way back: the twin a GET, a PATCH or a PUT answers
# with holds only what the caller's rules let it read.  Default scopes (what
# a rule lets write, plus deviceId, moduleId, etag and version), explicit
# ones, top-level members, deny, $metadata pruned with the data, sections
# kept as {} with their $version, device and module twins, report mode,
# and a hub answer that is not a twin.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IoTHubTwin qw(json_encode json_decode);

my $KEY = 'cmVhZC1zY29wZS10ZXN0LWNhbGxlci1rZXktMDEyMzQ1Njc4OQ==';

my $t = IoTHubTwin->new;
$t->secret($KEY);

my %rule = (devices => ['dev1'], modules => ['', 'mod1']);

$t->write_file('callers.json', json_encode({ callers => {
    # writes a tag and a desired subtree; reads what it writes (default)
    'narrow' => { keys => { primary => $KEY }, rules => [
        { operations => ['read', 'update'], %rule,
          tags => ['location.*'], desired => ['telemetry.**'] } ] },
    # a fleet operations service: writes desired.telemetry, reads the
    # reported firmware and the status too
    'ops' => { keys => { primary => $KEY }, rules => [
        { operations => ['read', 'update'], %rule,
          desired => ['telemetry.**'],
          read => ['properties.desired.telemetry.**',
                   'properties.reported.firmware.**', 'status'] } ] },
    # reads everything
    'wide' => { keys => { primary => $KEY }, rules => [
        { operations => ['read', 'update'], %rule,
          tags => ['**'], desired => ['**'], read => ['**'] } ] },
    # reads everything but the reported firmware
    'denied' => { keys => { primary => $KEY }, rules => [
        { operations => ['read'], %rule, read => ['**'],
          deny => ['properties.reported.firmware.**'] } ] },
    # a rule that only reads: no write patterns, so only the basics
    'bare' => { keys => { primary => $KEY }, rules => [
        { operations => ['read'], %rule } ] },
    # as narrow, in report mode
    'reporter' => { keys => { primary => $KEY }, mode => 'report', rules => [
        { operations => ['read', 'update'], %rule,
          tags => ['location.*'], desired => ['telemetry.**'] } ] },
} }));

$t->start_nginx("    include %%ROOT%%/conf/audit.conf;\n"
                . IoTHubTwin::gateway(<<'EOF', server => <<'EOF2'));
            iothub_twin_identity sas;
            iothub_twin_sas_host gateway.example.com;
            iothub_twin_callers %%DIR%%/callers.json;
            iothub_twin_read on;
EOF
        access_log %%DIR%%/audit.log iothub_twin_audit;
EOF2

sub req {
    my ($caller, $method, $path, $body) = @_;
    my $token = $t->secret(IoTHubTwin::sas_token(
        sr => 'gateway.example.com', skn => $caller, key => $KEY));
    return $t->http(method => $method, path => $path,
                    headers => ['Authorization' => $token,
                                defined $body
                                ? ('Content-Type' => 'application/json')
                                : ()],
                    body => defined $body ? json_encode($body) : undef);
}

# the leaf paths of a twin, "$metadata" and "$version" left out
sub leaves {
    my ($node, $prefix, $out) = @_;
    $out //= [];
    my @keys = ref $node eq 'HASH' ? grep { !/^\$/ } sort keys %$node : ();
    if (@keys) {
        leaves($node->{$_}, $prefix eq '' ? $_ : "$prefix.$_", $out)
            for @keys;
    } else {
        push @$out, $prefix;
    }
    return $out;
}

my $BASICS = [qw(deviceId etag version)];

sub seen {
    my ($r) = @_;
    my $j = $r->{json} or return 'not JSON';
    return join ' ', @{leaves($j, '')};
}

# what each caller sees of dev1, on a GET

my $r = req('narrow', 'GET', '/twins/dev1');
is($r->{status}, 200, 'narrow GET: 200');
is(seen($r), 'deviceId etag properties.desired.telemetry.interval '
   . 'properties.reported tags.location.city version',
   'narrow GET: what it may write, and the basics');
is(ref $r->{json}{properties}{reported}, 'HASH',
   'narrow GET: reported kept as an object');
ok(exists $r->{json}{properties}{reported}{'$version'},
   'narrow GET: the section $version stays');
is(join(',', sort grep { !/^\$/ } keys %{$r->{json}{properties}{desired}{'$metadata'}}),
   'telemetry', 'narrow GET: $metadata only for what is kept');
is($r->{headers}{etag}, qq{"$r->{json}{etag}"}, 'narrow GET: ETag');
is($r->{headers}{'content-length'}, length $r->{body},
   'narrow GET: Content-Length of what is sent');

$r = req('ops', 'GET', '/twins/dev1');
is(seen($r), 'deviceId etag properties.desired.telemetry.interval '
   . 'properties.reported.firmware.version status tags version',
   'ops GET: desired telemetry, reported firmware, status');
is_deeply($r->{json}{tags}, {}, 'ops GET: tags kept as {}');

$r = req('wide', 'GET', '/twins/dev1');
my $full = $t->hub_twin('dev1');
is_deeply($r->{json}, $full, 'wide GET: the whole twin');

$r = req('denied', 'GET', '/twins/dev1');
ok(!exists $r->{json}{properties}{reported}{firmware},
   'denied GET: the denied subtree is gone');
ok(!exists $r->{json}{properties}{reported}{'$metadata'}{firmware},
   'denied GET: and its $metadata');
is($r->{json}{properties}{reported}{telemetry}{interval}, 30,
   'denied GET: the rest of reported is there');
is($r->{json}{status}, 'enabled', 'denied GET: status is there');

$r = req('bare', 'GET', '/twins/dev1');
is(seen($r), 'deviceId etag properties.desired properties.reported tags '
   . 'version', 'bare GET: the basics only');

# a module twin
$r = req('narrow', 'GET', '/twins/dev1/modules/mod1');
is($r->{status}, 200, 'module GET: 200');
is($r->{json}{moduleId}, 'mod1', 'module GET: moduleId is a basic');
ok(!exists $r->{json}{properties}{desired}{mode},
   'module GET: what it may not read is gone');

# the answer of an update: the caller sees its own change, not the rest
$t->hub_reset;
$r = req('narrow', 'PATCH', '/twins/dev1',
         { tags => { location => { city => 'Bergen' } } });
is($r->{status}, 200, 'narrow PATCH: 200');
is($r->{json}{tags}{location}{city}, 'Bergen', 'narrow PATCH: its change');
ok(!exists $r->{json}{properties}{reported}{firmware},
   'narrow PATCH: no reported firmware');
is($r->{json}{version}, $t->hub_twin('dev1')->{version},
   'narrow PATCH: the new version');

# the audit record says how much was withheld
my @lines = split /\n/, $t->read_file('audit.log');
for (1 .. 50) {
    last if @lines >= 9;
    select(undef, undef, undef, 0.05);
    @lines = split /\n/, $t->read_file('audit.log');
}
my $rec = json_decode($lines[-1]);
ok($rec->{withheld} > 0, 'audit: nodes withheld counted')
    or diag explain $rec;

# report mode: the whole twin, and the record says what would have gone
$r = req('reporter', 'GET', '/twins/dev1');
is_deeply($r->{json}, $t->hub_twin('dev1'), 'report mode: the whole twin');
@lines = split /\n/, $t->read_file('audit.log');
for (1 .. 50) {
    last if @lines >= 10;
    select(undef, undef, undef, 0.05);
    @lines = split /\n/, $t->read_file('audit.log');
}
$rec = json_decode($lines[-1]);
ok($rec->{withheld} > 0, 'report mode: the record counts what would go')
    or diag explain $rec;
like($rec->{withheld_paths}, qr/properties\.reported|status/,
     'report mode: and names the first of them');
like($t->read_file('error.log'), qr/report mode, would withhold \d+ nodes/,
     'report mode: a log line');

# a twin larger than a pool block: the filter's copy replaces the held
# answer, and what the record and the header say of it stays right
$r = req('wide', 'PATCH', '/twins/dev1',
         { tags => { map { ("bulk$_" => 'x' x 60) } 1 .. 120 } });
is($r->{status}, 200, 'large twin: written');
my $n = () = split /\n/, $t->read_file('audit.log');
$r = req('narrow', 'GET', '/twins/dev1');
is($r->{status}, 200, 'large twin, narrow GET: 200');
ok(!exists $r->{json}{tags}{bulk1}, 'large twin: the bulk tags withheld');
my $etag = $t->hub_twin('dev1')->{etag};
is($r->{headers}{etag}, qq{"$etag"}, 'large twin: ETag');
for (1 .. 50) {
    @lines = split /\n/, $t->read_file('audit.log');
    last if @lines > $n;
    select(undef, undef, undef, 0.05);
}
$rec = json_decode($lines[-1]);
is($rec->{etag}, $etag, 'large twin: the record\'s etag');
ok($rec->{withheld} >= 120, 'large twin: the record counts the withheld');

# a hub answer that is not a twin never reaches a scoped caller
$t->hub_config(answer => { mode => 'not_json' });
$r = req('narrow', 'GET', '/twins/dev1');
IoTHubTwin::is_hub_error($r, 502, 'BadGateway', qr/is not a twin/,
                         'not a twin: 502');
unlike($r->{body}, qr/Service temporarily/, 'not a twin: none of it sent');

$t->finish;

done_testing;
