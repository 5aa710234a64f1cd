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
# its instructions for the same requests.  Benchmarks inform: nothing
# here fails on a figure.
#
#   BENCH_SECONDS=3 BENCH_ROUNDS=4 BENCH_CONNECTIONS=64 \
#   BENCH_CALLGRIND_REQUESTS=100 perl bench/gateway.pl
#
# BENCH_ROUNDS=0 skips the timed rounds, BENCH_CALLGRIND_REQUESTS=0 the
# instrumented runs; TEST_KEEP=1 keeps the folder with the
# configurations, logs and callgrind files.  About 3 minutes with the
# defaults.

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
wrk.headers["X-Bench-Twin"] = "$b->{twin}"
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

sub callers_json {
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

    return json_encode({ callers => \%callers });
}

$t->write_file('callers.json', callers_json());

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
# (through error_page: the static module refuses PATCH)
sub hub_conf {
    my ($port) = @_;
    return main_conf('hub', http => <<"EOF");
    access_log off;

    map \$http_x_bench_twin \$bench_twin {
        default 1k;
        200     200;
        32k     32k;
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
            error_page 405 =200 /.twin;
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
            iothub_twin_callers $dir/callers.json;

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
    my $s = $t->read_file("/proc/$pid/stat") or die "no process $pid\n";
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
                     'X-Bench-Twin' => $b->{twin} ]);
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
        my @paths = split / /, $line->{paths};
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
        } else {
            die "the refusal is not the policy's: $r->{body}\n"
                unless ($r->{headers}{'iothub-errorcode'} // '')
                       eq 'PolicyDenied';
        }
    }
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
    my $req = "PATCH $PATH HTTP/1.1\r\nHost: gateway\r\n"
        . "Content-Type: application/json\r\nIf-Match: *\r\n"
        . "X-Caller: $CALLER\r\nX-Bench-Twin: $b->{twin}\r\n"
        . 'Content-Length: ' . length($b->{body}) . "\r\n\r\n$b->{body}";
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

# a run of nginx under callgrind (master_process off): for each body a
# warm-up, counters zeroed, $CG_REQUESTS requests, counters dumped;
# returns the dumps, one a body
sub callgrind_run {
    my ($name, $conf, $port, $side, @args) = @_;
    my $out = "$dir/$name/callgrind.out";

    my $pid = start_nginx($name, $conf, $CPU_GW, $port, 'valgrind',
                          '--tool=callgrind', '--dump-instr=no',
                          "--callgrind-out-file=$out", @args);
    my $warm = 20;

    for my $b (@BODIES) {
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
        . @BODIES . "\n" unless @dumps == @BODIES;
    return @dumps;
}

sub commify {
    my ($n) = @_;
    1 while $n =~ s/^(\d+)(\d{3})/$1,$2/;
    return $n;
}

# ---------------------------------------------------------------- run

my $hub_port = $t->port('hub');
my %plain = (name => 'plain', port => $t->port('plain'),
             log => "$dir/plain/access.log");
my %gw = (name => 'gateway', port => $t->port('gw'),
          log => "$dir/gw/audit.log");

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

sub stages {
    my $gw_port = $t->port('cg-gw');
    my $plain_port = $t->port('cg-plain');
    my (@stage, @total, @plain, %stages);

    for my $dump (callgrind_run('cg-gw',
                      gateway_conf('cg-gw', $gw_port, $hub_port, single => 1),
                      $gw_port, 'gateway', "--separate-callers=$CG_DEPTH"))
    {
        my ($stage, $total) = callgrind_stages($dump);
        push @stage, $stage;
        push @total, $total;
        $stages{$_} += $stage->{$_} / $total for keys %$stage;
    }

    for my $dump (callgrind_run('cg-plain',
                      plain_conf('cg-plain', $plain_port, $hub_port,
                                 single => 1),
                      $plain_port, 'plain'))
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

$HUB_WORKER = worker_of(start_nginx('hub', hub_conf($hub_port), $CPU_HUB,
                                    $hub_port));

if ($ROUNDS) {
    $plain{master} = start_nginx('plain',
                                 plain_conf('plain', $plain{port}, $hub_port),
                                 $CPU_GW, $plain{port});
    $gw{master} = start_nginx('gw', gateway_conf('gw', $gw{port}, $hub_port),
                              $CPU_GW, $gw{port});
    $plain{worker} = worker_of($plain{master});
    $gw{worker} = worker_of($gw{master});

    check($plain{port}, $gw{port});

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
    print "\n";

    goals(measure());

    stop_nginx('plain');
    stop_nginx('gw');
}

if ($CG_REQUESTS && system('valgrind --version >/dev/null 2>&1') != 0) {
    print "\nno valgrind: no split by stage (make deps installs it)\n";

} elsif ($CG_REQUESTS) {
    stages();
}

stop_nginx($_) for keys %masters;

print "\nkept: $dir\n" if $ENV{TEST_KEEP};
