package NodeExample;

# conf/gateway-node.conf (one of three gateway nodes before an S1 hub), or
# the copy the Debian package installs, turned into a configuration a test
# can run: the hub is the emulator, the gateway and the metrics listen on
# loopback ports, the audit goes to a UDP syslog port the test reads, and
# the key and policy files are the test's own.  Everything else (zones,
# rates, locations, error pages) stays as shipped.

use strict;
use warnings;

use IO::Socket::INET;
use IO::Select;
use Test::More;
use IoTHubTwin qw(json_encode);

our $CALLER = 'orders-service';
our $CALLER_KEY = 'b3JkZXJzLXNlcnZpY2UtdGVzdC1rZXktcHJpbWFyeSEh';
our $SAS_HOST = 'twin-gateway.example.com';

# the http-block text: audit.conf's log format, then the adapted example
sub http_conf {
    my ($t, $example, $audit) = @_;

    my $text = $t->read_file($example);
    die "$example is empty or missing\n" unless length $text;

    # the harness declares the hub's upstream, pointing at the emulator
    $text =~ s/^upstream myhub\.azure-devices\.net \{\n.*?^\}\n//ms
        or die "$example: no upstream block: the example changed\n";

    my %subst = (
        qr/myhub\.azure-devices\.net/ => '%%HUB%%',
        qr/listen 443 ssl;/ => 'listen 127.0.0.1:%%GW_PORT%%;',
        qr/listen 9145;/ => 'listen 127.0.0.1:%%METRICS_PORT%%;',
        qr{allow 10\.0\.0\.0/24;} => 'allow 127.0.0.1;',
        qr{syslog:server=unix:/dev/log,}
            => 'syslog:server=127.0.0.1:%%SYSLOG_PORT%%,',
        qr{/etc/nginx/tls/twin-gateway\.crt} => '%%ROOT%%/build/certs/hub.pem',
        qr{/etc/nginx/tls/twin-gateway\.key} => '%%ROOT%%/build/certs/hub.key',
        qr{/etc/nginx/iothub/service\.key} => '%%DIR%%/hub.key',
        qr{/etc/nginx/iothub/callers\.json} => '%%DIR%%/node-callers.json',
        qr{/etc/ssl/certs/ca-certificates\.crt} => '%%CA%%',
    );

    for my $re (keys %subst) {
        $text =~ s/$re/$subst{$re}/g
            or die "$example: nothing matches $re: the example changed\n";
    }

    $t->secret($CALLER_KEY);
    $t->write_file('node-callers.json', json_encode({ callers => {
        $CALLER => {
            keys => { primary => $CALLER_KEY },
            rules => [{ operations => ['read', 'update'],
                        devices => ['dev1'], tags => ['**'],
                        desired => ['**'] }],
        },
    } }));

    return "    include $audit;\n$text";
}

# a syslog listener for the audit lines
sub syslog {
    my ($t) = @_;
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                  LocalPort => $t->port('syslog'),
                                  Proto => 'udp')
        or die "syslog port: $!";
    return $s;
}

# the datagrams that arrived within a few seconds
sub syslog_lines {
    my ($s, $want) = @_;
    my @lines;
    my $sel = IO::Select->new($s);
    while (@lines < $want && $sel->can_read(5)) {
        $s->recv(my $buf, 65536);
        push @lines, $buf;
    }
    return @lines;
}

# nginx -t, a start, one update the hub applies, its audit line over
# syslog and its count on /metrics
sub check {
    my ($t, $http, $name) = @_;

    my ($rc, $out) = $t->nginx_test($http);
    is($rc, 0, "$name: nginx -t") or diag $out;

    my $syslog = syslog($t);
    $t->start_nginx($http);

    my $r = update($t, { node => 'one of three' });
    is($r->{status}, 200, "$name: an update through the gateway: 200")
        or diag $r->{raw};
    is($t->hub_twin('dev1')->{tags}{node}, 'one of three',
       "$name: the hub applied it");
    IoTHubTwin::signed_by_gateway($t->hub_requests, $name);

    my ($line) = syslog_lines($syslog, 1);
    like($line // '', qr/^<\d+>.* iothub_twin: \{.*"caller":"\Q$CALLER\E".*"status":"200"/,
         "$name: the audit line reached syslog");

    my $m = IoTHubTwin::http_request('127.0.0.1', $t->port('metrics'),
                                     path => '/metrics');
    like($m->{body} // '',
         qr/^iothub_twin_requests_total\{caller="\Q$CALLER\E",operation="update",decision="allow",status="2xx"\} 1$/m,
         "$name: counted on the metrics port");
}

# an update as the caller, with the caller's own token
sub update {
    my ($t, $tags) = @_;
    my $token = $t->secret(IoTHubTwin::sas_token(sr => $SAS_HOST,
                                                 skn => $CALLER,
                                                 key => $CALLER_KEY));
    return $t->patch('/twins/dev1', { tags => $tags },
                     'Authorization' => $token);
}

1;
