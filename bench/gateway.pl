#!/usr/bin/perl

# What the gateway costs over plain proxy_pass, in the configuration
# operators run: caller identity from a trusted variable, a policy of 100
# callers with 100 path patterns each, SAS signing, the audit log of
# conf/audit.conf written to a file, TLS to the hub verified, keepalive.
#
# Two nginx instances, each with ONE worker pinned to the same CPU: one
# forwards with plain proxy_pass, the other is the gateway.  Both forward
# over TLS to the same stand-in hub (nginx serving a fixed twin after
# reading the whole body), on another CPU, with the same keepalive.  wrk
# drives them in alternating rounds.  For each body the figures are the
# worker's CPU time per request (utime + stime from /proc/<pid>/stat over
# a round, divided by the requests it logged), minor page faults per
# request, and the worker's RSS after the 32 KB rounds, beside the goals.
# Then one instrumented run (callgrind) of the gateway splits its
# instructions per request by stage, and one of plain proxy_pass gives
# its instructions for the same requests; the 64 KB GET gets the same
# split through the gateway with the read scope and with "**", side by
# side.  Benchmarks inform: nothing here fails on a figure.
#
#   BENCH_SECONDS=3 BENCH_ROUNDS=4 BENCH_CONNECTIONS=64 \
#   BENCH_CALLGRIND_REQUESTS=100 perl bench/gateway.pl
#
# BENCH_ROUNDS=0 skips the timed rounds, BENCH_CALLGRIND_REQUESTS=0 the
# instrumented runs; BENCH_BODIES=get (or patch) runs only the GET (or
# the PATCH) rounds and instrumented runs; TEST_KEEP=1 keeps the folder
# with the configurations, logs and callgrind files.  About 3 minutes
# with the defaults.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../t/lib";
use IoTHubTwin qw(json_encode json_decode);

use File::Path qw(make_path);
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

$| = 1;

my $SECONDS = $ENV{BENCH_SECONDS} || 3;
my $ROUNDS = $ENV{BENCH_ROUNDS} // 4;
my $CONNS = $ENV{BENCH_CONNECTIONS} || 64;
my $CG_REQUESTS = $ENV{BENCH_CALLGRIND_REQUESTS} // 100;
my $CG_DEPTH = 24;

my $NGINX = $IoTHubTwin::NGINX;
my $HZ = POSIX::sysconf(POSIX::_SC_CLK_TCK()) || 100;

my $CALLER = 'svc-063';
my $DEVICE = 'dev-063-17-edge';
my $PATH = "/twins/$DEVICE?api-version=2021-04-12";

my $t = IoTHubTwin->new(no_emulator => 1);
my $dir = $t->dir;

my $HUB_WORKER;

# ---------------------------------------------------------------- CPUs

# the measured workers on one CPU, wrk on another, the hub on a third
# when there is one (else beside wrk)
sub cpus {
    my ($list) = $t->read_file('/proc/self/status')
                 =~ /^Cpus_allowed_list:\s*(\S+)/m;
    my @cpus;
    for (split /,/, $list // '0') {
        my ($a, $b) = split /-/;
        push @cpus, $a .. ($b // $a);
    }
    return @cpus;
}

my @cpus = cpus();
my $CPU_GW = $cpus[0];
my $CPU_LOAD = $cpus[1] // $cpus[0];
my $CPU_HUB = $cpus[2] // $CPU_LOAD;

# ---------------------------------------------------------------- bodies

# A desired patch shaped like a device configuration: apps, groups of a
# dozen settings, short keys and values (about 16 bytes a leaf, so 32 KB
# is about 2,000 leaves).  Rendered by hand: the key order is the order
# the leaves were added.
sub render {
    my ($apps, $extra) = @_;
    my @a;
    for my $app (@$apps) {
        my @g = map {
            my $grp = $_;
            qq("$grp->{name}":{) . join(',', @{$grp->{leaves}}) . '}'
        } @{$app->{groups}};
        push @a, qq("$app->{name}":{) . join(',', @g) . '}';
    }
    push @a, $extra if $extra;
    return '{"properties":{"desired":{' . join(',', @a) . '}}}';
}

sub leaf {
    my ($g, $s) = @_;
    my $key = sprintf '"set%02d"', $s;
    return $s % 3 == 0 ? sprintf('%s:%d', $key, 10000 + $g * 12 + $s)
         : $s % 3 == 1 ? sprintf('%s:"on-%03d"', $key, $g % 1000)
         : "$key:" . ($g % 2 ? 'true' : 'false');
}

# the largest such patch of at most $size bytes; returns the text and the
# number of leaves
sub patch_of {
    my ($size, $extra) = @_;
    my (@apps, $n);
    my $g = 0;
    $n = 0;

    for (;;) {
        my $app = $apps[$g % 16] //= { name => sprintf('app%02d', $g % 16),
                                       groups => [] };
        my $grp = { name => sprintf('g%03d', $g), leaves => [] };
        push @{$app->{groups}}, $grp;

        for my $s (0 .. 11) {
            push @{$grp->{leaves}}, leaf($g, $s);
            if (length(render(\@apps, $extra)) > $size) {
                pop @{$grp->{leaves}};
                pop @{$app->{groups}} unless @{$grp->{leaves}};
                return (render([grep { @{$_->{groups}} } @apps], $extra),
                        $n);
            }
            $n++;
        }
        $g++;
    }
}

# name, body, leaves, the twin the hub answers with, status expected from
# the gateway
my @BODIES;
{
    for ([ '200 B', 200, '200' ], [ '1 KB', 1024, '1k' ],
         [ '32 KB', 32768, '32k' ])
    {
        my ($body, $n) = patch_of($_->[1]);
        push @BODIES, { name => $_->[0], body => $body, leaves => $n,
                        twin => $_->[2], status => 200, file => $_->[2] };
    }

    # a 1 KB patch with one path the caller may not write, at the end, so
    # the whole patch is validated before the policy refuses it
    my $extra = '"secret":{"token":"x"}';
    my ($body, $n) = patch_of(1024, $extra);
    push @BODIES, { name => 'refused', body => $body, leaves => $n + 1,
                    twin => '1k', status => 403, file => 'refused' };
}

for my $b (@BODIES) {
    $t->write_file("body-$b->{file}.json", $b->{body});
    $t->write_file("body-$b->{file}.lua", <<"EOF");
local f = assert(io.open("$dir/body-$b->{file}.json", "rb"))
wrk.method = "PATCH"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["If-Match"] = "*"
wrk.headers["X-Caller"] = "$CALLER"
wrk.headers["User-Agent"] = "bench-twin/$b->{twin}"
EOF
}

# the twins the hub answers with: the patched twin, as the hub does
for my $b (grep { $_->{status} == 200 } @BODIES) {
    my ($desired) = $b->{body} =~ /^\{"properties":\{"desired":(.*)\}\}$/s;
    $t->write_file("twin-$b->{twin}.json",
        qq({"deviceId":"$DEVICE","etag":"AAAAAAAAAAc=","version":7,)
        . qq("status":"enabled","tags":{"site":"oslo"},)
        . qq("properties":{"desired":$desired,"reported":{}}}));
}

# ---------------------------------------------------------------- GET

# The twin a GET answers with, about 64 KB, as the hub writes it: status
# fields, tags, and desired and reported properties each with their
# "$metadata" (one entry per key, nested like the values, with
# "$lastUpdated" and, in desired, "$lastUpdatedVersion") and "$version".
# Objects are lists of [ key, value ] pairs, so that the key order is the
# order they were added; a value that is not a list is JSON text.

my $WHEN = '"2024-05-02T08:15:42.1234567Z"';

sub ordered {
    my ($o) = @_;
    return $o unless ref $o;
    return '{' . join(',', map { qq("$_->[0]":) . ordered($_->[1]) } @$o)
           . '}';
}

# the "$metadata" of a section: the section's own entry, then one per key
sub metadata {
    my ($o, $version) = @_;
    my @m = ([ '$lastUpdated', $WHEN ]);
    push @m, [ '$lastUpdatedVersion', $version ] if defined $version;
    for my $kv (@$o) {
        push @m, [ $kv->[0], ref $kv->[1]
                             ? metadata($kv->[1], $version)
                             : [ @m[0 .. (defined $version ? 1 : 0)] ] ];
    }
    return \@m;
}

sub section {
    my ($o, $version, $with_version) = @_;
    return [ @$o, [ '$metadata', metadata($o, $with_version
                                              ? $version : undef) ],
             [ '$version', $version ] ];
}

# desired: device settings as the patches have them (apps, groups of 12);
# reported: firmware, per-sensor telemetry, diagnostics; tags: the site,
# the asset, its maintenance log
sub get_twin {
    my ($apps, $sensors, $records) = @_;
    my (@desired, @reported, @tags);

    for my $a (0 .. $apps - 1) {
        my @groups;
        for my $g (0 .. 3) {
            push @groups, [ sprintf('g%03d', $a * 4 + $g),
                            [ map { [ split /:/, leaf($a * 4 + $g, $_), 2 ] }
                                  0 .. 11 ] ];
        }
        $_->[0] =~ s/"//g for map { @{$_->[1]} } @groups;
        push @desired, [ sprintf('app%02d', $a), \@groups ];
    }

    push @reported, [ firmware => [
        [ version => '"4.2.17"' ], [ build => '"20240417.3"' ],
        [ bootloader => '"2.1.0"' ], [ channel => '"stable"' ],
        [ update => [ [ state => '"idle"' ], [ progress => 100 ],
                      [ lastCheck => $WHEN ], [ lastResult => '"ok"' ] ] ],
        map { [ "partition$_" => [ [ image => qq("4.2.1$_") ],
                                   [ size => 8388608 + $_ ],
                                   [ sha256 => '"' . ('ab' x 32) . '"' ],
                                   [ active => $_ ? 'false' : 'true' ] ] ] }
            0 .. 1 ] ];
    push @reported, [ telemetry => [ map {
        [ sprintf('s%03d', $_) => [ [ value => 20 + $_ % 17 ],
                                    [ unit => '"degC"' ],
                                    [ min => -40 ], [ max => 125 ],
                                    [ ok => 'true' ] ] ] } 0 .. $sensors - 1
    ] ];
    push @reported, [ diagnostics => [
        [ uptime => 8640123 ], [ restarts => 3 ], [ memFree => 183520 ],
        [ cpuLoad => 0.42 ], [ rssi => -67 ], [ ip => '"10.20.30.40"' ] ] ];

    push @tags, [ site => [ [ name => '"oslo-2"' ], [ building => '"B"' ],
                            [ floor => 3 ], [ room => '"3.14"' ],
                            [ geo => [ [ lat => 59.91 ],
                                       [ lon => 10.75 ] ] ] ] ];
    push @tags, [ asset => [ [ serial => '"SN-0063-17"' ],
                             [ vendor => '"acme"' ], [ model => '"edge-7"' ],
                             [ owner => '"plant-ops"' ] ] ];
    push @tags, [ maintenance => [ map {
        [ sprintf('r%03d', $_) => [ [ date => $WHEN ],
                                    [ by => qq("tech-@{[ $_ % 9 ]}") ],
                                    [ kind => '"inspection"' ],
                                    [ passed => 'true' ] ] ] }
        0 .. $records - 1 ] ];

    return [
        [ deviceId => qq("$DEVICE") ], [ etag => '"AAAAAAAAAAk="' ],
        [ deviceEtag => '"MTIzNDU2Nzg="' ], [ status => '"enabled"' ],
        [ statusUpdateTime => '"0001-01-01T00:00:00Z"' ],
        [ connectionState => '"Connected"' ],
        [ lastActivityTime => $WHEN ], [ cloudToDeviceMessageCount => 0 ],
        [ authenticationType => '"sas"' ],
        [ x509Thumbprint => [ [ primaryThumbprint => 'null' ],
                              [ secondaryThumbprint => 'null' ] ] ],
        [ modelId => '""' ], [ version => 9 ],
        [ capabilities => [ [ iotEdge => 'false' ] ] ],
        [ tags => \@tags ],
        [ properties => [ [ desired => section(\@desired, 12, 1) ],
                          [ reported => section(\@reported, 57, 0) ] ] ],
    ];
}

my $GET_TWIN = ordered(get_twin(4, 92, 50));
my $GET = { name => 'GET 64 KB', file => 'get', status => 200 };

$t->write_file('twin-get.json', $GET_TWIN);
$t->write_file('body-get.lua', <<"EOF");
wrk.method = "GET"
wrk.headers["X-Caller"] = "$CALLER"
wrk.headers["User-Agent"] = "bench-twin/get"
EOF

# the bench caller's read scope in the filtered GET rounds: about a third
# of the twin (all of desired, the firmware it reports, the site tag and
# status, beside what is always read)
my @READ = ('properties.desired.**', 'properties.reported.firmware.**',
            'tags.site.**', 'status');

# ---------------------------------------------------------------- policy

# 100 callers, one rule each: ten device globs and 100 desired path
# patterns.  The bench caller's device matches its last glob, and the
# patterns its patches write are in the second half of its list, between
# patterns that match nothing: a matcher that scans pays for the list.
sub decoy {
    my ($c, $k) = @_;
    my @kinds = ("fw$c-$k.**", "net.if$c-$k.*", "app9$k.*.set00",
                 "limits.*.max$c-$k", "*.*.cfg$c-$k");
    return $kinds[$k % 5];
}

# $read, when given, is the bench caller's "read" list
sub callers_json {
    my ($read) = @_;
    my %callers;

    for my $c (0 .. 99) {
        my $n = sprintf '%03d', $c;
        my @devices = ("plant$c-line?-*", "sensor-??-$c-*", "gw$c-*",
                       "*-$c-edge", "lab$c-bench-?", "fleet-$c-*-x",
                       "kiosk-$c-??", "vm$c-*", "ws-$c-*", "dev-$n-??-*");
        my @desired;

        for my $k (0 .. 99) {
            if ($k >= 50 && $k % 2 == 0) {
                my $a = ($k - 50) / 2;
                push @desired, sprintf($a % 2 ? 'app%02d.*.*' : 'app%02d.**',
                                       $a);
            } else {
                push @desired, decoy($c, $k);
            }
        }

        $callers{sprintf 'svc-%03d', $c} = {
            mode => 'enforce',
            rules => [ {
                operations => [ 'read', 'update' ],
                devices => \@devices,
                modules => [ '', 'agent' ],
                tags => [ "site", "owner$c" ],
                desired => \@desired,
            } ],
        };
    }

    $callers{$CALLER}{rules}[0]{read} = $read if $read;

    return json_encode({ callers => \%callers });
}

$t->write_file('callers.json', callers_json());
$t->write_file('callers-read.json', callers_json(\@READ));
$t->write_file('callers-all.json', callers_json([ '**' ]));

# ---------------------------------------------------------------- nginx

my $CA = "$IoTHubTwin::BUILD/certs/ca.pem";
my $HUB = $IoTHubTwin::HUB;
my $MODULE = $IoTHubTwin::MODULE;
my $ROOT = $IoTHubTwin::ROOT;

sub main_conf {
    my ($name, %o) = @_;
    my $d = "$dir/$name";
    my $load = $o{module} ? "load_module $MODULE;" : '';
    my $master = $o{single} ? 'off' : 'on';
    return <<"EOF";
$load
worker_processes 1;
daemon off;
master_process $master;
pid $d/nginx.pid;
error_log $d/error.log error;

events {
    worker_connections 1024;
}

http {
    client_body_temp_path $d/client_body_temp;
    proxy_temp_path $d/proxy_temp;
    fastcgi_temp_path $d/fastcgi_temp;
    uwsgi_temp_path $d/uwsgi_temp;
    scgi_temp_path $d/scgi_temp;
$o{http}
}
EOF
}

# the stand-in hub: reads the whole body (the mirror module reads it
# before the content phase), then answers with a fixed twin from a file
# (through error_page: the static module refuses PATCH, and finds no file
# for a GET)
sub hub_conf {
    my ($port) = @_;
    return main_conf('hub', http => <<"EOF");
    access_log off;

    map \$http_user_agent \$bench_twin {
        default          1k;
        bench-twin/200   200;
        bench-twin/32k   32k;
        bench-twin/get   get;
    }

    server {
        listen 127.0.0.1:$port ssl;
        ssl_certificate $IoTHubTwin::BUILD/certs/hub.pem;
        ssl_certificate_key $IoTHubTwin::BUILD/certs/hub.key;
        client_max_body_size 1m;
        client_body_buffer_size 128k;

        location / {
            mirror /.read-body;
            mirror_request_body on;
            log_not_found off;
            error_page 404 405 =200 /.twin;
        }

        location = /.read-body {
            internal;
            return 204;
        }

        location = /.twin {
            internal;
            default_type "application/json; charset=utf-8";
            alias $dir/twin-\$bench_twin.json;
        }
    }
EOF
}

# as many idle connections to the hub as wrk keeps to nginx, so that
# neither side opens TLS connections to the hub in the rounds
sub upstream_conf {
    my ($hub_port) = @_;
    return <<"EOF";
    upstream $HUB {
        server 127.0.0.1:$hub_port;
        keepalive $CONNS;
    }
EOF
}

# plain proxy_pass: the same TLS settings iothub_twin_pass sets, and
# nginx's default access log
sub plain_conf {
    my ($name, $port, $hub_port, %o) = @_;
    my $d = "$dir/$name";
    return main_conf($name, single => $o{single},
                     http => upstream_conf($hub_port) . <<"EOF");
    server {
        listen 127.0.0.1:$port;
        access_log $d/access.log combined;
        client_max_body_size 1m;
        client_body_buffer_size 128k;

        location / {
            proxy_pass https://$HUB;
            proxy_ssl_verify on;
            proxy_ssl_server_name on;
            proxy_ssl_trusted_certificate $CA;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_connect_timeout 5s;
            proxy_read_timeout 30s;
        }
    }
EOF
}

# the gateway as conf/iothub-twin.conf has it, with identity, policy and
# the audit log of conf/audit.conf; wrk plays the trusted front that sets
# X-Caller
sub gateway_conf {
    my ($name, $port, $hub_port, %o) = @_;
    my $d = "$dir/$name";
    my $callers = $o{callers} // "$dir/callers.json";
    return main_conf($name, module => 1, single => $o{single},
                     http => upstream_conf($hub_port) . <<"EOF");
    include $ROOT/conf/audit.conf;

    server {
        listen 127.0.0.1:$port;
        access_log $d/audit.log iothub_twin_audit;
        client_max_body_size 1m;
        client_body_buffer_size 128k;

        error_page 400 /.iothub_twin/400;
        error_page 413 /.iothub_twin/413;
        error_page 502 504 =503 /.iothub_twin/503;

        location = /.iothub_twin/400 {
            internal;
            iothub_twin_error 400 ArgumentInvalid "the request is malformed";
        }

        location = /.iothub_twin/413 {
            internal;
            iothub_twin_error 413 MessageTooLarge "the body is too large";
        }

        location = /.iothub_twin/503 {
            internal;
            iothub_twin_error 503 ServiceUnavailable
                              "the hub could not be reached";
        }

        location / {
            iothub_twin_pass https://$HUB;
            iothub_twin_hub_policy service;
            iothub_twin_hub_key_file $dir/hub.key;
            iothub_twin_hub_key_slot primary;
            iothub_twin_token_lifetime 1h;
            iothub_twin_api_version 2021-04-12;
            iothub_twin_read on;
            iothub_twin_require_if_match off;
            iothub_twin_max_body_size 128k;

            iothub_twin_identity variable \$http_x_caller;
            iothub_twin_callers $callers;

            proxy_ssl_trusted_certificate $CA;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_connect_timeout 5s;
            proxy_read_timeout 30s;
        }
    }
EOF
}

my %masters;

sub start_nginx {
    my ($name, $conf, $cpu, $port, @wrap) = @_;
    my $d = "$dir/$name";

    make_path($d);
    $t->write_file("$name/nginx.conf", $conf);

    my $pid = fork();
    die "fork: $!" unless defined $pid;

    if ($pid == 0) {
        open STDOUT, '>>', "$d/nginx.out";
        open STDERR, '>&', \*STDOUT;
        { exec 'taskset', '-c', $cpu, @wrap, $NGINX, '-p', $d,
               '-c', "$d/nginx.conf", '-e', "$d/error.log"; }
        POSIX::_exit(127);
    }

    $masters{$name} = $pid;

    my $deadline = time + (@wrap ? 120 : 15);
    while (time < $deadline) {
        if (waitpid($pid, WNOHANG) == $pid) {
            delete $masters{$name};
            die "$name nginx exited at start:\n"
                . $t->read_file("$d/nginx.out")
                . $t->read_file("$d/error.log");
        }
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $port, Proto => 'tcp');
        if ($s) {
            close $s;
            return $pid;
        }
        sleep 0.1;
    }

    die "$name nginx did not listen on port $port\n";
}

sub stop_nginx {
    my ($name) = @_;
    my $pid = delete $masters{$name} or return;
    kill 'QUIT', $pid;
    my $deadline = time + 30;
    while (time < $deadline) {
        return if waitpid($pid, WNOHANG) == $pid;
        sleep 0.05;
    }
    kill 'KILL', $pid;
    waitpid($pid, 0);
}

END {
    stop_nginx($_) for keys %masters;
}

$SIG{INT} = $SIG{TERM} = sub { exit 1 };

sub proc_stat {
    my ($pid) = @_;
    my $s = $t->read_file("/proc/$pid/stat")
        or die "no process $pid (a worker that crashed? see dmesg and the"
               . " error logs; TEST_KEEP=1 keeps them)\n";
    $s =~ s/^.*\) //s;
    my @f = split ' ', $s;
    return { ppid => $f[1], minflt => $f[7], ticks => $f[11] + $f[12] };
}

sub worker_of {
    my ($master) = @_;
    my $deadline = time + 10;
    while (time < $deadline) {
        opendir my $d, '/proc' or die "/proc: $!";
        for my $pid (grep { /^\d+$/ } readdir $d) {
            my $s = eval { proc_stat($pid) } or next;
            return $pid if $s->{ppid} == $master;
        }
        closedir $d;
        sleep 0.1;
    }
    die "no worker under nginx $master\n";
}

sub rss_kb {
    my ($pid) = @_;
    my ($kb) = $t->read_file("/proc/$pid/status") =~ /^VmRSS:\s+(\d+)/m;
    return $kb;
}

# ---------------------------------------------------------------- checks

sub request {
    my ($port, $b) = @_;
    return IoTHubTwin::http_request('127.0.0.1', $port, method => 'PATCH',
        path => $PATH, body => $b->{body},
        headers => [ 'Content-Type' => 'application/json',
                     'If-Match' => '*', 'X-Caller' => $CALLER,
                     'User-Agent' => "bench-twin/$b->{twin}" ]);
}

sub lines_of {
    my ($file) = @_;
    open my $fh, '<', $file or return 0;
    my $n = 0;
    while (sysread($fh, my $buf, 1 << 20)) {
        $n += ($buf =~ tr/\n//);
    }
    close $fh;
    return $n;
}

sub last_line {
    my ($file) = @_;
    my @l = split /\n/, $t->read_file($file);
    return $l[-1] // '';
}

# each body through each side once: the status, and for the gateway the
# audit line (caller, decision, every path written)
sub check {
    my ($plain_port, $gw_port) = @_;

    for my $b (@BODIES) {
        my $r = request($plain_port, $b);
        die "plain proxy_pass answered $b->{name} with "
            . ($r->{status} // 'nothing') . "\n"
            unless ($r->{status} // 0) == 200;
        die "plain proxy_pass answered $b->{name} with another twin\n"
            unless $r->{body} eq $t->read_file("twin-$b->{twin}.json");

        $r = request($gw_port, $b);
        die "the gateway answered $b->{name} with "
            . ($r->{status} // 'nothing') . ": $r->{body}\n"
            unless ($r->{status} // 0) == $b->{status};

        # the line is written after the answer is sent
        my ($line, $n) = (undef, 0);
        while (!$line && $n++ < 50) {
            $line = eval { json_decode(last_line("$dir/gw/audit.log")) };
            sleep 0.05 unless $line;
        }
        die "no audit line for $b->{name}\n" unless $line;
        truncate "$dir/gw/audit.log", 0;
        # the first iothub_twin_audit_paths of them, then " (+N more)"
        my $more = $line->{paths} =~ s/ \(\+(\d+) more\)$// ? $1 : 0;
        my @paths = ((split / /, $line->{paths}), (undef) x $more);
        my $decision = $b->{status} == 200 ? 'allow' : 'deny';

        die "audit line for $b->{name}: caller $line->{caller}, decision "
            . "$line->{decision}, " . scalar(@paths) . " paths, expected "
            . "$CALLER, $decision, $b->{leaves}\n"
            unless $line->{caller} eq $CALLER
                   && $line->{decision} eq $decision
                   && @paths == $b->{leaves};

        if ($b->{status} == 200) {
            die "no ETag from the gateway for $b->{name}\n"
                unless $r->{headers}{etag};
            # the caller reads the desired properties it wrote: the answer
            # holds the patch, so it cannot be shorter
            die "the gateway answered $b->{name} with a twin of "
                . length($r->{body}) . " bytes\n"
                unless length $r->{body} >= length $b->{body};
        } else {
            die "the refusal is not the policy's: $r->{body}\n"
                unless ($r->{headers}{'iothub-errorcode'} // '')
                       eq 'PolicyDenied';
        }
    }
}

# the GET through plain proxy_pass, the unfiltered and the filtered
# gateway once: plain and unfiltered send the hub's twin as it is; the
# filtered answer is strict JSON, smaller, and holds what the read scope
# keeps and nothing else; the audit line says what was withheld.
# Returns the bytes of each answer's body.
sub check_get {
    my (%sides) = @_;
    my %bytes;
    my $full = json_decode($GET_TWIN);

    for my $name (qw(plain all read)) {
        my $side = $sides{$name};
        my $r = IoTHubTwin::http_request('127.0.0.1', $side->{port},
            method => 'GET', path => $PATH,
            headers => [ 'X-Caller' => $CALLER,
                         'User-Agent' => 'bench-twin/get' ]);
        die "$side->{name} answered the GET with "
            . ($r->{status} // 'nothing') . ": " . ($r->{body} // '') . "\n"
            unless ($r->{status} // 0) == 200;
        die "$side->{name}: Content-Length "
            . ($r->{headers}{'content-length'} // 'none') . " for a body of "
            . length($r->{body}) . " bytes\n"
            unless ($r->{headers}{'content-length'} // -1)
                   == length $r->{body};
        $bytes{$name} = length $r->{body};

        if ($name ne 'read') {
            next if $r->{body} eq $GET_TWIN;
            my $i = 0;
            $i++ while substr($r->{body}, $i, 1) eq substr($GET_TWIN, $i, 1);
            die "$side->{name} changed the twin of the GET ("
                . length($r->{body}) . " bytes for " . length($GET_TWIN)
                . "), from byte $i: "
                . substr($r->{body}, $i > 40 ? $i - 40 : 0, 120) . "\n";
            next;
        }

        my $got = eval { json_decode($r->{body}) }
            or die "$side->{name}: the filtered twin is not JSON: $@\n";
        die "$side->{name}: the filtered twin ($bytes{read} bytes) is not"
            . " smaller than the hub's (" . length($GET_TWIN) . ")\n"
            unless $bytes{read} < length $GET_TWIN;

        my $d = $got->{properties}{desired};
        my $rep = $got->{properties}{reported};
        my @bad;
        push @bad, 'top-level ' . join(',', sort keys %$got)
            unless join(',', sort keys %$got)
                   eq 'deviceId,etag,properties,status,tags,version';
        push @bad, 'tags ' . join(',', sort keys %{$got->{tags}})
            unless join(',', sort keys %{$got->{tags}}) eq 'site'
                   && json_encode($got->{tags}{site})
                      eq json_encode($full->{tags}{site});
        push @bad, 'desired'
            unless json_encode($d)
                   eq json_encode($full->{properties}{desired});
        push @bad, 'reported ' . join(',', sort keys %$rep)
            unless join(',', grep { !/^\$/ } sort keys %$rep) eq 'firmware'
                   && json_encode($rep->{firmware})
                      eq json_encode($full->{properties}{reported}{firmware})
                   && $rep->{'$version'}
                      == $full->{properties}{reported}{'$version'}
                   && join(',', grep { !/^\$/ }
                                sort keys %{$rep->{'$metadata'}})
                      eq 'firmware';
        push @bad, 'etag, version or status'
            unless $got->{etag} eq $full->{etag}
                   && $got->{version} == $full->{version}
                   && $got->{status} eq $full->{status};
        die "$side->{name}: the filtered twin is not the read scope's: "
            . join('; ', @bad) . "\n" if @bad;
    }

    # the audit lines (written after the answers are sent)
    for my $name (qw(all read)) {
        my $side = $sides{$name};
        my ($line, $n) = (undef, 0);
        while (!$line && $n++ < 50) {
            $line = eval { json_decode(last_line($side->{log})) };
            sleep 0.05 unless $line;
        }
        die "no audit line for the GET through $side->{name}\n"
            unless $line;
        truncate $side->{log}, 0;
        my $withheld = $line->{withheld} || 0;
        die "audit line for the GET through $side->{name}: caller"
            . " $line->{caller}, decision $line->{decision}, withheld"
            . " '$line->{withheld}'\n"
            unless $line->{caller} eq $CALLER
                   && $line->{decision} eq 'allow'
                   && ($name eq 'all' ? !$withheld : $withheld > 0);
    }

    return \%bytes;
}

# ---------------------------------------------------------------- rounds

sub wrk {
    my ($port, $b, $seconds) = @_;
    my $url = "http://127.0.0.1:$port$PATH";
    my $cmd = "taskset -c $CPU_LOAD wrk -t1 -c$CONNS -d${seconds}s"
              . " --timeout 10s -s $dir/body-$b->{file}.lua '$url' 2>&1";
    my $out = `$cmd`;
    my ($n) = $out =~ /(\d+) requests in/;
    my ($rps) = $out =~ /Requests\/sec:\s+([\d.]+)/;
    my ($non2xx) = $out =~ /Non-2xx or 3xx responses:\s+(\d+)/;
    my ($errors) = $out =~ /Socket errors:\s*(.*)/;
    die "wrk failed:\n$out" unless $n;
    return { n => $n, rps => $rps, non2xx => $non2xx // 0,
             errors => $errors };
}

# one round on one side: the worker's CPU time and minor faults over the
# round, per request it logged
sub round {
    my ($side, $b, $seconds) = @_;
    my $log = $side->{log};

    truncate $log, 0;
    my $s0 = proc_stat($side->{worker});
    my $h0 = proc_stat($HUB_WORKER);
    my @c0 = times;
    my $t0 = time;
    my $w = wrk($side->{port}, $b, $seconds);
    my $wall = time - $t0;
    my @c1 = times;
    my $h1 = proc_stat($HUB_WORKER);
    my $s1 = proc_stat($side->{worker});
    my $n = lines_of($log);
    truncate $log, 0;

    my $refused = $side->{name} eq 'gateway' && $b->{status} != 200;
    my $bad = $refused ? $w->{n} - $w->{non2xx} : $w->{non2xx};
    die "$side->{name}, $b->{name}: $bad of $w->{n} answers were not "
        . ($refused ? 403 : '2xx') . "\n" if $bad;
    warn "$side->{name}, $b->{name}: socket errors: $w->{errors}\n"
        if $w->{errors};
    die "$side->{name}, $b->{name}: no request logged\n" unless $n;

    my $cpu = ($s1->{ticks} - $s0->{ticks}) / $HZ;

    # how busy the measured worker, the hub and wrk were: a worker far
    # from busy pays more for each wake-up
    return { n => $n, rps => $w->{rps}, busy => $cpu / $wall,
             hub => ($h1->{ticks} - $h0->{ticks}) / $HZ / $wall,
             wrk => ($c1[2] + $c1[3] - $c0[2] - $c0[3]) / $wall,
             cpu => $cpu / $n * 1e6,
             flt => ($s1->{minflt} - $s0->{minflt}) / $n };
}

sub median {
    my @s = sort { $a <=> $b } @_;
    return @s % 2 ? $s[$#s / 2] : ($s[@s / 2 - 1] + $s[@s / 2]) / 2;
}

sub range {
    my @s = sort { $a <=> $b } @_;
    return ($s[0], $s[-1]);
}

# ---------------------------------------------------------------- stages

# One instrumented run: the gateway alone (master_process off) under
# callgrind, with --separate-callers so that every cost comes with its
# chain of callers.  For each body, counters are zeroed after a warm-up,
# the body is sent $CG_REQUESTS times over one keepalive connection, and
# the counters are dumped.  Each function's own instructions go to the
# stage of the nearest function in its chain that belongs to one (a
# memcpy in the validator is the validator's).  The distro's nginx is
# stripped of its static functions' names: those pass their cost up to
# their nearest named caller, so the log handler (static) is counted
# under ngx_http_free_request, which calls it, and static proxy code
# (the proxy module's header parsing) under the nginx core.  libssl and
# libcrypto are TLS.

my $CORE = 'nginx core (events, parsing, pools)';

my @STAGES = (
    [ 'validate', qr/^ngx_http_iothub_twin_patch_/ ],
    [ 'paths', qr/^ngx_http_iothub_twin_path$/ ],
    [ 'read verdicts', qr/^ngx_http_iothub_twin_policy_(?:read|always)/ ],
    [ 'read filter', qr/^ngx_http_iothub_twin_(?:filter|read_scope$)/ ],
    [ 'policy', qr/^ngx_http_iothub_twin_(?:policy_|identify|access$|deny$)/ ],
    [ 'response hold', qr/^ngx_http_iothub_twin_(?:header_filter|body_filter
                                                 |hold|release|twin_etag
                                                 |twin_info|skip_)/x ],
    [ '-', qr/^ngx_http_iothub_twin_\w+_variable$/ ],
    [ 'gateway, other', qr/^ngx_http_iothub_twin_/ ],
    [ 'audit log', qr/^ngx_http_free_request$/ ],
    [ 'TLS/proxy to the hub', qr/^(?:ngx_ssl_|ngx_http_upstream_|ngx_event_pipe
                                    |ngx_event_connect_peer|SSL_|ssl3_|tls
                                    |ossl_|EVP_|BIO_)/x ],
    [ 'body read', qr/^(?:ngx_http_read_client_request_body
                        |ngx_http_request_body_save_filter
                        |ngx_http_read_unbuffered)/x ],
    [ 'response to the caller', qr/^(?:ngx_http_write_filter
                                     |ngx_http_send_header
                                     |ngx_http_output_filter
                                     |ngx_linux_sendfile_chain
                                     |ngx_writev)/x ],
    [ $CORE, qr/^(?:ngx_destroy_pool|ngx_reset_pool|ngx_create_pool
                  |ngx_palloc|ngx_pnalloc|ngx_pcalloc)/x ],
    [ '-', qr/^(?:ngx_http_get_indexed_variable|ngx_http_get_flushed_variable
                |ngx_escape_json|0x[0-9a-f]+)$/x ],
    [ $CORE, qr/^ngx_/ ],
);

my %STAGE_OBJECT = (libssl => 'TLS/proxy to the hub',
                    libcrypto => 'TLS/proxy to the hub');

sub stage_of {
    my ($chain, $objects) = @_;
    for my $i (0 .. $#$chain) {
        my $fn = $chain->[$i];
        $fn =~ s/\@.*//;
        if ($i == 0 && $objects) {
            for my $o (keys %STAGE_OBJECT) {
                return $STAGE_OBJECT{$o} if $objects =~ /\b\Q$o\E/;
            }
        }
        for my $s (@STAGES) {
            next unless $fn =~ $s->[1];
            last if $s->[0] eq '-';
            return $s->[0];
        }
    }
    return 'other (beyond the caller depth)';
}

# own costs per context from a callgrind file (name compression, the
# cost line after calls= is the call's inclusive cost, not an own cost)
sub callgrind_stages {
    my ($file) = @_;
    my (%names, %obnames, %own, %ob_of, $fn, $ob, $skip);

    open my $fh, '<', $file or die "$file: $!";
    while (my $l = <$fh>) {
        if ($l =~ /^(c?)(fn|ob)=\((\d+)\)(?: (.*))?$/) {
            my ($c, $kind, $id, $name) = ($1, $2, $3, $4);
            my $table = $kind eq 'fn' ? \%names : \%obnames;
            $table->{$id} = $name if defined $name;
            next if $c;
            if ($kind eq 'fn') {
                $fn = $names{$id};
                $ob_of{$fn} //= $ob;
            } else {
                $ob = $obnames{$id};
            }
            next;
        }
        if ($l =~ /^calls=/) {
            $skip = 1;
            next;
        }
        if ($l =~ /^[+\-*]?\d*\s+(\d+)/) {
            if ($skip) {
                $skip = 0;
                next;
            }
            $own{$fn} += $1 if defined $fn;
        }
    }
    close $fh;

    my (%stage, $total);
    for my $ctx (keys %own) {
        my $s = stage_of([ split /'/, $ctx ], $ob_of{$ctx});
        $stage{$s} += $own{$ctx};
        $total += $own{$ctx};
    }
    return (\%stage, $total);
}

# sends the same request $n times over one keepalive connection
sub keepalive_requests {
    my ($port, $b, $n, $side) = @_;
    my $status = $side eq 'plain' ? 200 : $b->{status};
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => 60)
        or die "connect $port: $!";
    my $req = defined $b->{body}
        ? "PATCH $PATH HTTP/1.1\r\nHost: gateway\r\n"
          . "Content-Type: application/json\r\nIf-Match: *\r\n"
          . "X-Caller: $CALLER\r\nUser-Agent: bench-twin/$b->{twin}\r\n"
          . 'Content-Length: ' . length($b->{body}) . "\r\n\r\n$b->{body}"
        : "GET $PATH HTTP/1.1\r\nHost: gateway\r\nX-Caller: $CALLER\r\n"
          . "User-Agent: bench-twin/$b->{file}\r\n\r\n";
    my $buf = '';

    for (1 .. $n) {
        $s->syswrite($req) == length $req or die "write: $!";
        for (;;) {
            if ($buf =~ m{^HTTP/1\.1\s(\d+)\s.*?\r\nContent-Length:\s(\d+)\r\n
                          .*?\r\n\r\n}six
                && length($buf) >= $+[0] + $2)
            {
                die "$side, $b->{name}: status $1 under callgrind\n"
                    unless $1 == $status;
                substr($buf, 0, $+[0] + $2, '');
                last;
            }
            my $got = sysread($s, $buf, 65536, length $buf);
            die "connection closed under callgrind\n" unless $got;
        }
    }
    close $s;
}

# zeroes (-z) or dumps (-d) the counters of a process under callgrind;
# bounded, should the process not answer
sub callgrind_control {
    my ($what, $pid) = @_;
    system("timeout 60 callgrind_control $what $pid >/dev/null 2>&1") == 0
        or die "callgrind_control $what $pid failed\n";
}

# a run of nginx under callgrind (master_process off): for each of the
# bodies a warm-up, counters zeroed, $CG_REQUESTS requests, counters
# dumped; returns the dumps, one a body
sub callgrind_run {
    my ($name, $conf, $port, $side, $bodies, @args) = @_;
    my $out = "$dir/$name/callgrind.out";

    my $pid = start_nginx($name, $conf, $CPU_GW, $port, 'valgrind',
                          '--tool=callgrind', '--dump-instr=no',
                          "--callgrind-out-file=$out", @args);
    my $warm = 20;

    for my $b (@$bodies) {
        keepalive_requests($port, $b, $warm, $side);
        callgrind_control('-z', $pid);
        keepalive_requests($port, $b, $CG_REQUESTS, $side);
        callgrind_control('-d', $pid);
        $warm = 5;
    }

    stop_nginx($name);

    my @dumps = sort { ($a =~ /(\d+)$/)[0] <=> ($b =~ /(\d+)$/)[0] }
                grep { /\.\d+$/ } glob("$out.*");
    die "callgrind left " . @dumps . " dumps in $dir/$name, not "
        . @$bodies . "\n" unless @dumps == @$bodies;
    return @dumps;
}

sub commify {
    my ($n) = @_;
    1 while $n =~ s/^(-?\d+)(\d{3})/$1,$2/;
    return $n;
}

# ---------------------------------------------------------------- run

my $hub_port = $t->port('hub');
my %plain = (name => 'plain', label => 'plain', key => 'plain',
             port => $t->port('plain'),
             log => "$dir/plain/access.log");
my %gw = (name => 'gateway', port => $t->port('gw'),
          log => "$dir/gw/audit.log");
my %gw_read = (name => 'gateway, read scope', label => 'gateway filtered',
               key => 'read', port => $t->port('gw-read'),
               log => "$dir/gw-read/audit.log");
my %gw_all = (name => 'gateway, read **', label => 'gateway, **',
              key => 'all', port => $t->port('gw-all'),
              log => "$dir/gw-all/audit.log");

sub measure {
    my (%res, %rss);

    printf "%-8s %-7s %6s %5s %4s %4s %21s %7s\n", 'body', 'side', 'req/s',
           'busy', 'hub', 'wrk', 'CPU us/request', 'flt/req';

    for my $b (@BODIES) {
        my (@p, @g);

        # a warm-up per side: connections to the hub, token, caches
        round($_, $b, 1) for \%plain, \%gw;

        for my $i (1 .. $ROUNDS) {
            my @order = $i % 2 ? (\%plain, \%gw) : (\%gw, \%plain);
            for my $side (@order) {
                my $r = round($side, $b, $SECONDS);
                push @{$side == \%plain ? \@p : \@g}, $r;
            }
        }

        my %m;
        for ([ plain => \@p ], [ gateway => \@g ]) {
            my ($name, $rs) = @$_;
            my @cpu = map { $_->{cpu} } @$rs;
            $m{$name} = { cpu => median(@cpu), range => [ range(@cpu) ],
                          rps => median(map { $_->{rps} } @$rs),
                          busy => median(map { $_->{busy} } @$rs),
                          hub => median(map { $_->{hub} } @$rs),
                          wrk => median(map { $_->{wrk} } @$rs),
                          flt => median(map { $_->{flt} } @$rs) };
            printf "%-8s %-7s %6.0f %4.0f%% %3.0f%% %3.0f%% %7.1f"
                   . " [%5.1f-%6.1f] %7.2f\n",
                   $name eq 'plain' ? $b->{name} : '', $name, $m{$name}{rps},
                   100 * $m{$name}{busy},
                   100 * $m{$name}{hub}, 100 * $m{$name}{wrk},
                   $m{$name}{cpu}, @{$m{$name}{range}}, $m{$name}{flt};
        }

        my @ratios = map { $p[$_]{cpu} / $g[$_]{cpu} } 0 .. $#p;
        $m{ratio} = $m{plain}{cpu} / $m{gateway}{cpu};
        $m{ratio_range} = [ range(@ratios) ];
        printf "%-8s %-7s %6s %5s %4s %4s %7.2f [%5.2f-%6.2f]  plain/gateway"
               . "%s\n", '', 'ratio', '', '', '', '', $m{ratio},
               @{$m{ratio_range}},
               $b->{status} == 200 ? '' : ' (plain forwards it)';
        $res{$b->{name}} = \%m;

        if ($b->{name} eq '32 KB') {
            $rss{plain} = rss_kb($plain{worker});
            $rss{gateway} = rss_kb($gw{worker});
        }
    }

    printf "\nworker RSS after the 32 KB rounds: plain %.1f MB, gateway"
           . " %.1f MB\n", $rss{plain} / 1024, $rss{gateway} / 1024;

    return (\%res, \%rss);
}

sub goal {
    my ($what, $figure, $met, $gap) = @_;
    printf "  %-44s %-16s %s\n", $what, $figure, $met ? 'MET' : "gap: $gap";
}

sub goals {
    my ($res, $rss) = @_;

    print "\ngoals (on this run's medians):\n";

    for ([ '200 B', 0.90 ], [ '1 KB', 0.90 ], [ '32 KB', 0.75 ],
         [ 'refused', 1.0 ])
    {
        my ($name, $goal) = @$_;
        my $m = $res->{$name};
        my $need = $m->{gateway}{cpu} - $m->{plain}{cpu} / $goal;
        my $what = $name eq 'refused'
                 ? 'refusal no dearer than a forward (>= 1.00)'
                 : sprintf 'ratio >= %.2f at %s', $goal, $name;
        goal($what, sprintf('%.2f', $m->{ratio}), $m->{ratio} >= $goal,
             sprintf('%.2f short: %.1f us/request too many',
                     $goal - $m->{ratio}, $need));
    }

    my ($worst, $worst_name);
    for my $b (@BODIES) {
        my $d = $res->{$b->{name}}{gateway}{flt}
                - $res->{$b->{name}}{plain}{flt};
        ($worst, $worst_name) = ($d, $b->{name})
            if !defined $worst || $d > $worst;
    }
    goal('page faults per request within 2 of plain\'s',
         sprintf('%+.2f (%s)', $worst, $worst_name), $worst <= 2,
         sprintf('%.2f faults/request too many', $worst - 2));

    my $drss = ($rss->{gateway} - $rss->{plain}) / 1024;
    goal('worker RSS within 2 MB of plain\'s', sprintf('%+.1f MB', $drss),
         $drss <= 2, sprintf('%.1f MB too much', $drss - 2));
}

# the GET on three sides, in rounds whose order turns: plain proxy_pass,
# the gateway with the read scope, the gateway reading "**"
sub measure_get {
    my ($bytes, @sides) = @_;
    my (%r, %m);

    round($_, $GET, 1) for @sides;

    for my $i (0 .. $ROUNDS - 1) {
        for my $k (0 .. $#sides) {
            my $side = $sides[($i + $k) % @sides];
            push @{$r{$side->{name}}}, round($side, $GET, $SECONDS);
        }
    }

    printf "\n%-10s %-16s %6s %5s %4s %4s %21s %7s %7s\n", 'GET 64 KB',
           'side', 'req/s', 'busy', 'hub', 'wrk', 'CPU us/request',
           'flt/req', 'bytes';
    for my $side (@sides) {
        my $rs = $r{$side->{name}};
        my @cpu = map { $_->{cpu} } @$rs;
        $m{$side->{name}} = median(@cpu);
        printf "%-10s %-16s %6.0f %4.0f%% %3.0f%% %3.0f%% %7.1f"
               . " [%5.1f-%6.1f] %7.2f %7d\n", '', $side->{label},
               median(map { $_->{rps} } @$rs),
               100 * median(map { $_->{busy} } @$rs),
               100 * median(map { $_->{hub} } @$rs),
               100 * median(map { $_->{wrk} } @$rs),
               $m{$side->{name}}, range(@cpu),
               median(map { $_->{flt} } @$rs), $bytes->{$side->{key}};
    }

    my ($plain, $read, $all) = map { $_->{name} } @sides;
    my @ratios = map { $r{$all}[$_]{cpu} / $r{$read}[$_]{cpu} }
                 0 .. $ROUNDS - 1;
    my $ratio = $m{$all} / $m{$read};
    printf "%-10s %-16s %6s %5s %4s %4s %7.2f [%5.2f-%6.2f]"
           . "  unfiltered/filtered\n", '', 'ratio', '', '', '', '',
           $ratio, range(@ratios);
    printf "%-10s %-16s %6s %5s %4s %4s %7.2f %15s  plain/filtered,"
           . " %.2f plain/unfiltered\n", '', '', '', '', '', '',
           $m{$plain} / $m{$read}, '', $m{$plain} / $m{$all};
    printf "filtered answer: %d of %d bytes (%.0f%%)\n", $bytes->{read},
           $bytes->{all}, 100 * $bytes->{read} / $bytes->{all};

    print "\ngoal for the GET (on this run's medians):\n";
    goal('filtered GET within 10% of the unfiltered',
         sprintf('%+.1f%%', 100 * ($m{$read} / $m{$all} - 1)),
         $m{$read} <= 1.10 * $m{$all},
         sprintf('%.1f us/request too many',
                 $m{$read} - 1.10 * $m{$all}));
}

sub stages {
    my $gw_port = $t->port('cg-gw');
    my $plain_port = $t->port('cg-plain');
    my (@stage, @total, @plain, %stages);

    for my $dump (callgrind_run('cg-gw',
                      gateway_conf('cg-gw', $gw_port, $hub_port, single => 1),
                      $gw_port, 'gateway', \@BODIES,
                      "--separate-callers=$CG_DEPTH"))
    {
        my ($stage, $total) = callgrind_stages($dump);
        push @stage, $stage;
        push @total, $total;
        $stages{$_} += $stage->{$_} / $total for keys %$stage;
    }

    for my $dump (callgrind_run('cg-plain',
                      plain_conf('cg-plain', $plain_port, $hub_port,
                                 single => 1),
                      $plain_port, 'plain', \@BODIES))
    {
        push @plain, (callgrind_stages($dump))[1];
    }

    printf "\nwhere the gateway's instructions go (callgrind, one process,"
           . " %d requests per body\nafter a warm-up; user-space"
           . " instructions only: the kernel's work for system\ncalls and"
           . " page faults is in the CPU figures above, not here), in"
           . " instructions\nper request, and the share of each stage at"
           . " 32 KB:\n\n", $CG_REQUESTS;

    my $row = "%-36s" . (" %10s" x @BODIES) . " %6s\n";
    my ($i32) = grep { $BODIES[$_]{name} eq '32 KB' } 0 .. $#BODIES;
    my $per = sub { commify(int($_[0] / $CG_REQUESTS + 0.5)) };

    printf $row, 'stage', (map { $_->{name} } @BODIES), 'share';
    for my $s (sort { $stages{$b} <=> $stages{$a} } keys %stages) {
        printf $row, $s, (map { $per->($_->{$s} // 0) } @stage),
               sprintf('%.1f%%', 100 * ($stage[$i32]{$s} // 0)
                                 / $total[$i32]);
    }
    printf $row, 'gateway, total', (map { $per->($_) } @total), '';
    printf $row, 'plain proxy_pass, total', (map { $per->($_) } @plain), '';
    printf $row, 'ratio plain/gateway',
           (map { sprintf '%.2f', $plain[$_] / $total[$_] } 0 .. $#total),
           '';
}

# the GET of the 64 KB twin under callgrind through the gateway with the
# read scope and with "**", and through plain proxy_pass: instructions per
# request by stage, side by side
sub stages_get {
    my (@stage, @total, %stages);

    for my $side ([ 'cg-read', "$dir/callers-read.json" ],
                  [ 'cg-all', "$dir/callers-all.json" ])
    {
        my ($name, $callers) = @$side;
        my $port = $t->port($name);
        my ($dump) = callgrind_run($name,
                         gateway_conf($name, $port, $hub_port, single => 1,
                                      callers => $callers),
                         $port, 'gateway', [ $GET ],
                         "--separate-callers=$CG_DEPTH");
        my ($stage, $total) = callgrind_stages($dump);
        push @stage, $stage;
        push @total, $total;
        $stages{$_} += $stage->{$_} for keys %$stage;
    }

    my $port = $t->port('cg-plain-get');
    my ($dump) = callgrind_run('cg-plain-get',
                     plain_conf('cg-plain-get', $port, $hub_port,
                                single => 1),
                     $port, 'plain', [ $GET ]);
    my $plain = (callgrind_stages($dump))[1];

    printf "\nwhere the GET's instructions go (callgrind, one process, %d"
           . " requests after a\nwarm-up, user-space instructions per"
           . " request):\n\n", $CG_REQUESTS;

    my $row = "%-36s %12s %12s %10s\n";
    my $per = sub { commify(int($_[0] / $CG_REQUESTS + 0.5)) };

    printf $row, 'stage', 'read scope', 'read **', 'scope-**';
    for my $s (sort { $stages{$b} <=> $stages{$a} } keys %stages) {
        printf $row, $s, (map { $per->($_->{$s} // 0) } @stage),
               $per->(($stage[0]{$s} // 0) - ($stage[1]{$s} // 0));
    }
    printf $row, 'gateway, total', (map { $per->($_) } @total),
           $per->($total[0] - $total[1]);
    printf $row, 'plain proxy_pass, total', $per->($plain), '', '';
    printf $row, 'ratio scope/**', sprintf('%.3f', $total[0] / $total[1]),
           '', '';
}

$HUB_WORKER = worker_of(start_nginx('hub', hub_conf($hub_port), $CPU_HUB,
                                    $hub_port));

if ($ROUNDS) {
    $plain{master} = start_nginx('plain',
                                 plain_conf('plain', $plain{port}, $hub_port),
                                 $CPU_GW, $plain{port});
    $gw{master} = start_nginx('gw', gateway_conf('gw', $gw{port}, $hub_port),
                              $CPU_GW, $gw{port});
    $gw_read{master} = start_nginx('gw-read',
        gateway_conf('gw-read', $gw_read{port}, $hub_port,
                     callers => "$dir/callers-read.json"),
        $CPU_GW, $gw_read{port});
    $gw_all{master} = start_nginx('gw-all',
        gateway_conf('gw-all', $gw_all{port}, $hub_port,
                     callers => "$dir/callers-all.json"),
        $CPU_GW, $gw_all{port});
    $_->{worker} = worker_of($_->{master})
        for \%plain, \%gw, \%gw_read, \%gw_all;

    check($plain{port}, $gw{port});
    my $bytes = check_get(plain => \%plain, read => \%gw_read,
                          all => \%gw_all);

    printf "gateway against plain proxy_pass, one nginx worker each on CPU"
           . " %d;\nstand-in hub (nginx, TLS) on CPU %d, wrk -c%d on CPU %d;"
           . " %d rounds of %d s per body\nand side, alternating; medians"
           . " [min-max over rounds]\n", $CPU_GW, $CPU_HUB, $CONNS,
           $CPU_LOAD, $ROUNDS, $SECONDS;
    for my $b (@BODIES) {
        printf "  %-8s %6d bytes, %4d leaves%s\n", $b->{name},
               length $b->{body}, $b->{leaves},
               $b->{status} == 200 ? '' : ' (one path not allowed: 403)';
    }
    printf "  %-8s %6d bytes of twin (\$metadata included) answered to a"
           . " GET, through\n%11s plain proxy_pass and two gateways, the"
           . " caller's read scope\n%11s %s\n%11s or \"**\"\n", 'GET',
           length $GET_TWIN, '', '', join(' ', @READ), '';
    print "\n";

    measure_get($bytes, \%plain, \%gw_read, \%gw_all)
        if !$ENV{BENCH_BODIES} || $ENV{BENCH_BODIES} =~ /\bget\b/;
    goals(measure())
        if !$ENV{BENCH_BODIES} || $ENV{BENCH_BODIES} =~ /\bpatch\b/;

    stop_nginx($_) for qw(plain gw gw-read gw-all);
}

if ($CG_REQUESTS && system('valgrind --version >/dev/null 2>&1') != 0) {
    print "\nno valgrind: no split by stage (make deps installs it)\n";

} elsif ($CG_REQUESTS) {
    stages_get()
        if !$ENV{BENCH_BODIES} || $ENV{BENCH_BODIES} =~ /\bget\b/;
    stages()
        if !$ENV{BENCH_BODIES} || $ENV{BENCH_BODIES} =~ /\bpatch\b/;
}

stop_nginx($_) for keys %masters;

print "\nkept: $dir\n" if $ENV{TEST_KEEP};
