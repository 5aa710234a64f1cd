#!/usr/bin/perl

# The shipped configurations work as written.  conf/iothub-twin.conf,
# conf/multi-hub.conf (with a second hub emulator) and each
# conf/identity-*.conf, with only their file paths, addresses and the
# hub's name pointed at this test's files and the hub emulator, pass
# nginx -t, start, forward an update from their kind of caller over TLS,
# and answer every status nginx itself can produce in the hub's shape:
# bad request lines, headers too large, a target too long, TRACE, an
# unknown Transfer-Encoding, HTTP/2.0 on HTTP/1 and no identity.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::SSL;
use IoTHubTwin qw(json_encode);

my $KEY = 'c2hpcHBlZC1jb25mLWNhbGxlci1rZXktMDEyMzQ1Njc4OQ==';
my $CERTS = "$IoTHubTwin::BUILD/certs";

# the caller each configuration knows, and how it proves who it is
my %caller = (
    'iothub-twin.conf' => {},
    'identity-sas.conf' => {
        headers => sub { ('Authorization' => IoTHubTwin::sas_token(
            sr => 'twin-gateway.example.com', skn => 'backend-a',
            key => $KEY)) } },
    'identity-mtls.conf' => {
        ssl => [SSL_cert_file => "$CERTS/backend-a.pem",
                SSL_key_file => "$CERTS/backend-a.key"] },
    'identity-variable.conf' => {
        headers => sub { ('Authorization' => 'Bearer backend-a-token') } },
    'multi-hub.conf' => { device => 'eu-1', hub => 'hub2' },
);

for my $file (sort keys %caller) {
    my $t = IoTHubTwin->new;
    $t->secret($KEY);
    my $c = $caller{$file};
    my $device = $c->{device} || 'dev1';
    $t->start_emulator(name => 'hub2',
                       seed => "$IoTHubTwin::ROOT/t/data/seed-eu.json")
        if $c->{hub};

    $t->write_file('callers.json', json_encode({ callers => {
        'backend-a' => { keys => { primary => $KEY }, rules => [
            { operations => ['update', 'read'], devices => ['dev1'],
              tags => ['**'] } ] } } }));

    my $conf = $t->read_file("$IoTHubTwin::ROOT/conf/$file");
    my $dir = $t->dir;
    my %paths = (
        '/etc/nginx/tls/twin-gateway.crt' => "$CERTS/hub.pem",
        '/etc/nginx/tls/twin-gateway.key' => "$CERTS/hub.key",
        '/etc/nginx/tls/backend-ca.pem' => "$CERTS/ca.pem",
        '/etc/nginx/iothub/service.key' => "$dir/hub.key",
        '/etc/nginx/iothub/fleet-us.key' => "$dir/hub.key",
        '/etc/nginx/iothub/fleet-eu.key' => "$dir/hub2.key",
        '/etc/nginx/iothub/callers.json' => "$dir/callers.json",
        '/etc/ssl/certs/ca-certificates.crt' => "$CERTS/ca.pem",
    );
    for my $from (keys %paths) {
        $conf =~ s/\Q$from\E/$paths{$from}/g;
    }
    my $n = 0;
    $n += $conf =~ s/server myhub\.azure-devices\.net:443;/server 127.0.0.1:%%HUB_PORT%%;/g;
    $n += $conf =~ s/myhub\.azure-devices\.net/testhub.azure-devices.net/g;
    $n += $conf =~ s/server fleet-us\.azure-devices\.net:443;/server 127.0.0.1:%%HUB_PORT%%;/g;
    $n += $conf =~ s/server fleet-eu\.azure-devices\.net:443;/server 127.0.0.1:%%HUB2_PORT%%;/g;
    $n += $conf =~ s/fleet-us\.azure-devices\.net/testhub.azure-devices.net/g;
    $n += $conf =~ s/fleet-eu\.azure-devices\.net/euhub.azure-devices.net/g;
    $n += $conf =~ s/listen 443 ssl;/listen 127.0.0.1:%%GW_PORT%% ssl;/g;
    $conf =~ s{http://127\.0\.0\.1:9000/}{http://127.0.0.1:%%AUTH_PORT%%/}g;
    ok($n >= 3, "$file: addresses pointed at the test") or diag $conf;
    unlike($conf, qr{/etc/}, "$file: every path pointed at the test");

    # the token service identity-variable.conf asks
    $conf .= <<'EOF' if $file eq 'identity-variable.conf';

    server {
        listen 127.0.0.1:%%AUTH_PORT%%;
        location = /check {
            if ($http_authorization = "Bearer backend-a-token") {
                add_header X-Caller backend-a;
                return 204;
            }
            return 401;
        }
    }
EOF

    my ($rc, $out) = $t->nginx_test($conf, no_upstream => 1);
    is($rc, 0, "$file: nginx -t") or diag $out;

    $t->start_nginx($conf, no_upstream => 1);

    my $send = sub {
        my ($text) = @_;
        my $s = IO::Socket::SSL->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $t->port('gw'),
                                     SSL_verify_mode => SSL_VERIFY_NONE,
                                     Timeout => 5, @{$c->{ssl} || []})
            or return {};
        $s->syswrite($text);
        my $resp = '';
        while (1) {
            my $n = $s->sysread(my $buf, 65536);
            last unless $n;
            $resp .= $buf;
        }
        close $s;
        return IoTHubTwin::parse_response($resp);
    };

    my $request = sub {
        my ($line, $body, @h) = @_;
        my $text = "$line\r\nHost: twin-gateway.example.com\r\n"
            . "Connection: close\r\n";
        while (my ($k, $v) = splice @h, 0, 2) {
            $text .= "$k: $v\r\n";
        }
        $text .= 'Content-Length: ' . length($body) . "\r\n" if defined $body;
        return "$text\r\n" . ($body // '');
    };

    my @id = $c->{headers} ? $c->{headers}->() : ();
    $t->secret($id[1]) if @id;
    my @json = ('Content-Type' => 'application/json');

    # an update from this configuration's kind of caller
    my $r = $send->($request->("PATCH /twins/$device HTTP/1.1",
                               '{"tags":{"shipped":"' . $file . '"}}',
                               @json, @id));
    is($r->{status}, 200, "$file: an update goes through");
    is($t->hub_twin($device, undef, $c->{hub})->{tags}{shipped}, $file,
       "$file: the hub applied it");

    # what nginx itself refuses, in the hub's shape
    my @hostile = (
        ['a malformed request line', 400, 'ArgumentInvalid',
         "PATCH /twins/dev1 HTTP/1.1 extra\r\nHost: x\r\n\r\n"],
        ['headers too large (494)', 400, 'ArgumentInvalid',
         $request->('GET /twins/dev1 HTTP/1.1', undef,
                    'X-Big' => 'b' x 9000)],
        ['a target too long', 414, 'ArgumentInvalid',
         $request->('GET /twins/' . ('a' x 9000) . ' HTTP/1.1', undef)],
        ['TRACE', 405, 'MethodNotAllowed',
         $request->('TRACE /twins/dev1 HTTP/1.1', undef)],
        ['an unknown Transfer-Encoding', 501, 'ArgumentInvalid',
         $request->('PATCH /twins/dev1 HTTP/1.1', undef, @json,
                    'Transfer-Encoding' => 'gzip, chunked')],
        ['HTTP/2.0 on HTTP/1', 505, 'ArgumentInvalid',
         "PATCH /twins/dev1 HTTP/2.0\r\nHost: x\r\n\r\n"],
    );
    push @hostile, ['no identity', 401, 'IotHubUnauthorizedAccess',
                    $request->('PATCH /twins/dev1 HTTP/1.1', '{"tags":{}}',
                               @json)]
        if $c->{headers};

    for my $h (@hostile) {
        my ($name, $status, $code, $bytes) = @$h;
        $t->hub_reset;
        $t->hub_reset('hub2') if $c->{hub};
        IoTHubTwin::is_hub_error($send->($bytes), $status, $code, undef,
                                 "$file: $name");
        is(scalar @{$t->hub_requests}
           + ($c->{hub} ? scalar @{$t->hub_requests('hub2')} : 0), 0,
           "$file: $name: nothing forwarded");
    }

    $t->finish;
}

done_testing;
