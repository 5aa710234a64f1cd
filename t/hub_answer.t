#!/usr/bin/perl

# What the hub sends back is input too.  An etag that is not an etag never
# becomes a header (no CR LF injection); a 200 that is cut short, stalls,
# is not JSON or is larger than a twin can be becomes a hub-shaped 502 that
# says whether the write may have been applied, and the access log says
# 502 too; a chunked twin of unknown length is held and given whole.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IoTHubTwin qw(json_encode json_decode);

my $t = IoTHubTwin->new;

$t->start_nginx("    log_format status '\$status \$iothub_twin_error';\n"
                . IoTHubTwin::gateway(<<'EOF', server => <<'EOF2'));
            iothub_twin_read on;
            proxy_read_timeout 1s;
EOF
        access_log %%DIR%%/status.log status;
EOF2

# nginx writes the log line after the answer: wait for a new one
my $lines = 0;

sub last_status {
    for (1 .. 100) {
        my @l = split /\n/, $t->read_file('status.log');
        if (@l > $lines) {
            $lines = @l;
            return $l[-1];
        }
        select(undef, undef, undef, 0.02);
    }
    return '';
}

sub with_fault {
    my ($fault, @req) = @_;
    $t->hub_config(answer => $fault);
    return @req ? $t->http(@req)
                : $t->patch('/twins/dev1', { tags => { n => ++$t->{n} } });
}

# etags that are not etags: no header is made of them

for my $bad ("AAAA\r\nX-Injected: yes", "AA AA", "AA\\\"AA", "",
             'x' x 300)
{
    (my $name = $bad) =~ s/([^ -~])/sprintf('\\x%02x', ord $1)/ge;
    $name = substr($name, 0, 40);
    my $r = with_fault({ mode => 'etag', etag => $bad });
    ok(!exists $r->{headers}{'x-injected'}, "etag \"$name\": no header "
       . 'injected');
    ok(!exists $r->{headers}{etag}, "etag \"$name\": no ETag");
    is($r->{status}, $bad =~ /\r/ ? 502 : 200,
       "etag \"$name\": a raw CR LF is no JSON (502), the others are");
    my ($head) = split /\r\n\r\n/, $r->{raw}, 2;
    unlike($head, qr/X-Injected/i, "etag \"$name\": not in the head");
    last_status();
}

# a good etag still becomes the ETag header
my $r = with_fault({ mode => 'etag', etag => 'AAAAAAAAAAk=' });
last_status();
is($r->{status}, 200, 'a good etag: 200');
is($r->{headers}{etag}, '"AAAAAAAAAAk="', 'a good etag: the ETag header');

# a chunked twin of unknown length is held whole
$r = with_fault({ mode => 'chunked' });
last_status();
is($r->{status}, 200, 'chunked twin: 200');
my $twin = json_decode($r->{body});
is($twin->{tags}{n}, $t->{n}, 'chunked twin: the whole updated twin');
is($r->{headers}{etag}, qq{"$twin->{etag}"}, 'chunked twin: ETag');

# a 200 that cannot be given: a 502 in the hub's shape

my %bad = (
    cut => qr/was cut short\x3b|was cut short\\x3b the update may have been applied/,
    stall => qr/was cut short/,
    not_json => qr/is not a twin/,
    huge => qr/is larger than a twin can be/,
);

for my $mode (sort keys %bad) {
    $t->hub_reset;
    my $before = $t->hub_twin('dev1')->{version};
    $r = with_fault({ mode => $mode, stall_ms => 3000 });
    IoTHubTwin::is_hub_error($r, 502, 'BadGateway', $bad{$mode},
                             "$mode: 502 BadGateway");
    like($r->{json}{Message} // '', qr/may have been applied/,
         "$mode: the caller is told the write may have been applied");
    ok(!exists $r->{headers}{etag}, "$mode: no ETag");
    is($t->hub_twin('dev1')->{version}, $before + 1,
       "$mode: the hub did apply it");
    is(last_status(), '502 BadGateway', "$mode: the log says 502");
}

# a read cut short: 502, and nothing about a write
$r = with_fault({ mode => 'cut' }, method => 'GET', path => '/twins/dev1');
IoTHubTwin::is_hub_error($r, 502, 'BadGateway', qr/was cut short/,
                         'read cut short: 502');
unlike($r->{json}{Message} // '', qr/applied/, 'read cut short: no write');

# the gateway keeps serving
$t->hub_reset;
$r = $t->patch('/twins/dev1', { tags => { after => 1 } });
is($r->{status}, 200, 'after the faults: 200');

# a twin with whitespace between and around its members (valid JSON): the
# caller gets the same twin, and a Content-Length that is its length

for my $method ('GET', 'PATCH') {
    $t->hub_reset;
    my $r = $method eq 'GET'
        ? with_fault({ mode => 'spaced' }, method => 'GET',
                     path => '/twins/dev1')
        : with_fault({ mode => 'spaced' });
    my $hub = $t->hub_twin('dev1');
    is($r->{status}, 200, "spaced twin, $method: 200");
    is($r->{headers}{'content-length'}, length $r->{body},
       "spaced twin, $method: Content-Length is the body's length");
    is_deeply($r->{json}, $hub, "spaced twin, $method: the hub's twin")
        or diag($r->{body});
    is($r->{headers}{etag}, qq{"$hub->{etag}"}, "spaced twin, $method: ETag");
    last_status();
}

# the same for a scoped caller, whose answer the read filter cuts down
# before the etag is looked for in what it kept

$t->write_file('callers.json', json_encode({ callers => {
    'tags-only' => { rules => [
        { operations => ['read', 'update'], devices => ['dev1'],
          tags => ['**'] } ] } } }));
$t->stop_nginx;
$t->start_nginx(IoTHubTwin::gateway(<<'EOF'));
            iothub_twin_read on;
            iothub_twin_identity variable $http_x_caller;
            iothub_twin_callers %%DIR%%/callers.json;
EOF

sub scoped {
    my ($fault, $method) = @_;
    $t->hub_config(answer => $fault) if $fault;
    return $method
        ? $t->http(method => 'GET', path => '/twins/dev1',
                   headers => ['X-Caller' => 'tags-only'])
        : $t->patch('/twins/dev1', { tags => { n => ++$t->{n} } },
                    'X-Caller' => 'tags-only');
}

for my $bad ("AAAA\r\nX-Injected: yes", "AA AA", "AA\\\"AA", "",
             'x' x 300)
{
    (my $name = $bad) =~ s/([^ -~])/sprintf('\\x%02x', ord $1)/ge;
    $name = substr($name, 0, 40);
    for my $method (0, 1) {
        my $what = ($method ? 'read' : 'update') . " etag \"$name\"";
        my $r = scoped({ mode => 'etag', etag => $bad }, $method);
        ok(!exists $r->{headers}{etag}, "scoped $what: no ETag");
        is($r->{status}, $bad =~ /\r/ ? 502 : 200,
           "scoped $what: a raw CR LF is no JSON (502), the others are");
        my ($head) = split /\r\n\r\n/, $r->{raw}, 2;
        unlike($head, qr/X-Injected/i, "scoped $what: not in the head");
    }
}

$r = scoped({ mode => 'etag', etag => 'AAAAAAAAAAk=' }, 1);
is($r->{headers}{etag}, '"AAAAAAAAAAk="',
   'scoped read, a good etag: the ETag header');
is($r->{json}{etag}, 'AAAAAAAAAAk=', 'scoped read: the etag in the twin');
ok(!exists $r->{json}{properties}{reported}{firmware},
   'scoped read: what the caller may not read is withheld');

$r = scoped(undef, 1);
my $hub = $t->hub_twin('dev1');
is($r->{json}{version}, $hub->{version}, 'scoped read: the twin\'s version');
is($r->{headers}{etag}, qq{"$hub->{etag}"}, 'scoped read: its etag');

$t->allow_log(qr/upstream (prematurely closed|timed out)/);
$t->finish;

done_testing;
