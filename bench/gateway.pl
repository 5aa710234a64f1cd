#!/usr/bin/perl

# What the gateway costs over plain proxy_pass, measured side by side in one
# run: the same nginx, the same TLS upstream (a canned twin served by nginx
# itself, so the upstream is not the bottleneck), the same keepalive, the
# same load from wrk; one server forwards with proxy_pass, the other with
# iothub_twin_pass (body read and validated, token, If-Match, ETag).
# Prints requests per second and latency for each, and the ratio.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../t/lib";
use IoTHubTwin qw(json_encode);

my $seconds = $ENV{BENCH_SECONDS} || 3;
my $conns = $ENV{BENCH_CONNECTIONS} || 16;

my $t = IoTHubTwin->new(no_emulator => 1);

my %twin = (deviceId => 'dev1', etag => 'AAAAAAAAAAc=', version => 7,
            tags => { location => { city => 'Oslo' } },
            properties => { desired => { telemetry => { interval => 30 } },
                            reported => {} });

# patches of about 1 KB and 32 KB in properties.desired, shaped like real
# ones: groups of a dozen settings, not one flat object of a thousand keys
sub patch_of {
    my ($n) = @_;
    my %d;
    my $g = 0;
    while (length(json_encode(\%d)) < $n) {
        my $group = $d{sprintf 'group%03d', $g++} = {};
        $group->{sprintf 'setting%02d', $_} = $_ % 3 ? 'value-' . ('x' x 12)
                                              : $_ * 1000 for 1 .. 12;
    }
    return json_encode({ properties => { desired => \%d } });
}

my $conf = <<'EOF';
    upstream bench_hub {
        server 127.0.0.1:%%HUB_PORT%%;
        keepalive 32;
    }

    # the "hub": nginx serving a canned twin over TLS
    server {
        listen 127.0.0.1:%%HUB_PORT%% ssl;
        ssl_certificate %%ROOT%%/build/certs/hub.pem;
        ssl_certificate_key %%ROOT%%/build/certs/hub.key;
        client_max_body_size 1m;
        client_body_buffer_size 128k;
        # the hub reads the whole body before it answers: the mirror
        # module reads it in the precontent phase, then the answer comes
        # from a file through error_page (the static module refuses PATCH)
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
            alias %%DIR%%/twin.json;
        }
    }

    # plain proxy_pass: the baseline
    server {
        listen 127.0.0.1:%%PLAIN_PORT%%;
        client_max_body_size 1m;
        client_body_buffer_size 128k;
        location / {
            proxy_pass https://bench_hub;
            proxy_ssl_verify on;
            proxy_ssl_name testhub.azure-devices.net;
            proxy_ssl_server_name on;
            proxy_ssl_trusted_certificate %%CA%%;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }

    # the gateway
    server {
        listen 127.0.0.1:%%GW_PORT%%;
        client_max_body_size 1m;
        client_body_buffer_size 128k;
        location / {
            iothub_twin_pass https://bench_hub;
            iothub_twin_hub testhub.azure-devices.net;
            iothub_twin_hub_policy service;
            iothub_twin_hub_key_file %%DIR%%/hub.key;
            proxy_ssl_name testhub.azure-devices.net;
            proxy_ssl_trusted_certificate %%CA%%;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
EOF

$t->write_file('twin.json', json_encode(\%twin));

$t->start_nginx($conf, workers => 1);

sub wrk {
    my ($port, $body) = @_;
    my $lua = $t->write_file('patch.lua', <<"EOF");
wrk.method = "PATCH"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[$body]==]
EOF
    my $out = `wrk -t1 -c$conns -d${seconds}s --latency -s $lua http://127.0.0.1:$port/twins/dev1 2>&1`;
    my ($rps) = $out =~ /Requests\/sec:\s+([\d.]+)/;
    my ($p50) = $out =~ /50%\s+([\d.]+\w+)/;
    my ($p99) = $out =~ /99%\s+([\d.]+\w+)/;
    my ($non2xx) = $out =~ /Non-2xx or 3xx responses:\s+(\d+)/;
    die "wrk failed:\n$out" unless $rps;
    die "errors during the run:\n$out" if $non2xx;
    return ($rps, $p50, $p99);
}

# check both paths answer 200 before measuring
for my $port ($t->port('plain'), $t->port('gw')) {
    my $r = IoTHubTwin::http_request('127.0.0.1', $port, method => 'PATCH',
                                     path => '/twins/dev1',
                                     headers => ['Content-Type' => 'application/json'],
                                     body => patch_of(100));
    die "port $port answered $r->{status}: $r->{body}\n" unless $r->{status} == 200;
}

# the machine is shared: rounds alternate the two paths, and the best
# round of each is kept, so that a moment of load elsewhere does not
# decide the ratio
my $rounds = $ENV{BENCH_ROUNDS} || 3;

printf "%-8s %-14s %10s %9s %9s   (best of %d rounds of %d s)\n",
       'patch', 'path', 'req/s', 'p50', 'p99', $rounds, $seconds;

for my $size (1024, 32 * 1024) {
    my $body = patch_of($size);
    my (@plain, @gw);

    for (1 .. $rounds) {
        my @a = wrk($t->port('plain'), $body);
        my @b = wrk($t->port('gw'), $body);
        @plain = @a if !@plain || $a[0] > $plain[0];
        @gw = @b if !@gw || $b[0] > $gw[0];
    }

    my $label = ($size / 1024) . ' KB';
    printf "%-8s %-14s %10.0f %9s %9s\n", $label, 'proxy_pass', @plain;
    printf "%-8s %-14s %10.0f %9s %9s\n", $label, 'iothub_twin', @gw;
    printf "%-8s gateway/proxy_pass throughput ratio: %.2f\n", $label,
           $gw[0] / $plain[0];
}

$t->stop;
