package IoTHubTwin;

# A small harness in the spirit of nginx-tests: each test writes a real
# nginx.conf, starts the distro's nginx with the built module in front of the
# hub emulator (over TLS, certificate verified), and speaks raw HTTP.  When
# the test ends, error.log must hold no [alert], [crit] or [emerg] line and
# no worker may have died.

use strict;
use warnings;

use Exporter 'import';
use File::Basename qw(dirname);
use File::Path qw(make_path);
use File::Spec;
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use Digest::SHA qw(hmac_sha256);
use MIME::Base64 qw(encode_base64 decode_base64);
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);
use Test::More;

our @EXPORT_OK = qw(json_decode json_encode);

our $ROOT = File::Spec->rel2abs(dirname(__FILE__) . '/../..');
our $BUILD = "$ROOT/build";
our $NGINX = $ENV{NGINX_BIN} || '/usr/sbin/nginx';
our $MODULE = $ENV{IOTHUB_TWIN_MODULE}
    || "$BUILD/ngx_http_iothub_twin_module.so";

# the hub key the emulator knows for policy "service" (primary, secondary)
our $HUB_KEY = 'c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0wMTIzNDU2Nzg5';
our $HUB_KEY2 = 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=';
our $HUB = 'testhub.azure-devices.net';

# a second hub (start_emulator(name => 'hub2')): its own name, its own
# certificate (valid for that name only) and its own keys
our $HUB2 = 'euhub.azure-devices.net';
our $HUB2_KEY = 'ZXUtaHViLWtleS1mb3ItdGVzdHMtb25seS05ODc2NTQzMjEw';
our $HUB2_KEY2 = 'ZXUtaHViLXNlY29uZGFyeS1rZXktZm9yLXRlc3RzLW9ubHk=';

my $JSON = JSON::PP->new->canonical->allow_nonref;

sub json_decode { $JSON->decode($_[0]) }
sub json_encode { $JSON->encode($_[0]) }

my @instances;

sub new {
    my ($class, %opts) = @_;

    my $dir = tempdir('iothub-twin-t-XXXXXX', TMPDIR => 1,
                      CLEANUP => !$ENV{TEST_KEEP});
    chmod 0755, $dir;

    my $self = bless {
        dir => $dir,
        opts => \%opts,
        secrets => [$HUB_KEY, $HUB_KEY2, $HUB2_KEY, $HUB2_KEY2],
    }, $class;

    push @instances, $self;

    $self->write_file('hub.key', "$HUB_KEY\n$HUB_KEY2\n");
    $self->write_file('hub2.key', "$HUB2_KEY\n$HUB2_KEY2\n");

    $self->start_emulator(%opts) unless $opts{no_emulator};

    return $self;
}

sub dir { $_[0]{dir} }

sub write_file {
    my ($self, $name, $content) = @_;
    my $path = "$self->{dir}/$name";
    make_path(dirname($path));
    open my $fh, '>', $path or die "$path: $!";
    print $fh $content;
    close $fh;
    return $path;
}

sub read_file {
    my ($self, $name) = @_;
    my $path = $name =~ m{^/} ? $name : "$self->{dir}/$name";
    open my $fh, '<', $path or return '';
    local $/;
    my $s = <$fh>;
    close $fh;
    return $s;
}

sub free_port {
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                  LocalPort => 0, Proto => 'tcp',
                                  ReuseAddr => 1)
        or die "no free port: $!";
    my $port = $s->sockport;
    close $s;
    return $port;
}

sub port {
    my ($self, $name) = @_;
    return $self->{ports}{$name} //= free_port();
}

# remember a secret: the harness greps every log for it when the test ends
sub secret {
    my ($self, $s) = @_;
    push @{$self->{secrets}}, $s if defined $s && length $s;
    return $s;
}

# ---------------------------------------------------------------- emulator

# the hub emulator; name => 'hub2' starts the second hub beside the first
# (ports hub2 and hub2_control, log hub2-requests.jsonl)
#
# A free port is picked, then closed, before the emulator binds it, so
# another process may take it in between: the emulator is started again
# on new ports when its address is in use.
sub start_emulator {
    my ($self, %opts) = @_;

    my $name = $opts{name} || 'hub';
    my $control_name = $name ne 'hub' ? "${name}_control" : 'control';

    for my $try (1 .. 5) {
        my $error = $self->try_emulator(%opts, name => $name);
        return unless defined $error;
        die $error unless $error =~ /Address already in use/ && $try < 5;
        delete $self->{ports}{$_} for $name, $control_name;
    }
}

# starts it once: undef when it is up, else why not
sub try_emulator {
    my ($self, %opts) = @_;

    my $name = $opts{name};
    my $second = $name ne 'hub';

    my $https = $self->port($name);
    my $control = $self->port($second ? "${name}_control" : 'control');
    my $prefix = $second ? $name : 'hub';

    my @cmd = ('python3', "$ROOT/emulator/hub_emulator.py",
               '--listen', "127.0.0.1:$https",
               '--cert', "$BUILD/certs/$prefix.pem",
               '--key', "$BUILD/certs/$prefix.key",
               '--hub', $second ? $HUB2 : $HUB,
               '--policies', "$ROOT/t/data/$prefix-policies.json",
               '--seed', $opts{seed} || "$ROOT/t/data/seed.json",
               '--control', "127.0.0.1:$control",
               '--log', "$self->{dir}/$prefix-requests.jsonl");
    push @cmd, '--etag-header' if $opts{etag_header};

    my $pid = open(my $out, '-|');
    die "fork: $!" unless defined $pid;

    if ($pid == 0) {
        open STDERR, '>', "$self->{dir}/" . ($second ? "$name-" : '')
                          . 'emulator.log';
        exec @cmd or die "exec @cmd: $!";
    }

    my $sel = IO::Select->new($out);
    my $line = '';
    my $deadline = time + 15;

    while (time < $deadline && $line !~ /\n/) {
        last unless $sel->can_read($deadline - time);
        my $n = sysread($out, my $buf, 512);
        last unless $n;
        $line .= $buf;
    }

    if ($line !~ /^hub-emulator ready/) {
        kill 'TERM', $pid;
        waitpid($pid, 0);
        return "hub emulator did not start: $line\n"
            . $self->read_file(($second ? "$name-" : '') . 'emulator.log');
    }

    if ($second) {
        $self->{emulators}{$name} = { pid => $pid, fh => $out };
    } else {
        $self->{emulator} = { pid => $pid, fh => $out };
    }

    return undef;
}

# the control port of the first hub, or with a name, of that one
sub control_port {
    my ($self, $name) = @_;
    return $self->port(defined $name && $name ne 'hub'
                       ? "${name}_control" : 'control');
}

sub control {
    my ($self, $method, $path, $body, $name) = @_;
    my $r = http_request('127.0.0.1', $self->control_port($name),
                         method => $method, path => $path,
                         body => defined $body ? json_encode($body) : undef,
                         headers => ['Content-Type' => 'application/json']);
    die "control $method $path: no answer\n" unless $r->{status};
    return $r;
}

# what the hub emulator received since the last reset
sub hub_requests {
    my ($self, $name) = @_;
    return json_decode($self->control('GET', '/requests', undef, $name)
                       ->{body});
}

# the values of one header in a request the hub received
sub header {
    my ($req, $name) = @_;
    return map { $_->[1] } grep { lc $_->[0] eq lc $name } @{$req->{headers}};
}

# every request the hub received carried the gateway's token, not a caller's
sub signed_by_gateway {
    my ($seen, $name) = @_;
    my @bad = grep {
        my @auth = header($_, 'Authorization');
        !($_->{auth} eq 'ok' && @auth == 1
          && $auth[0] =~ /^SharedAccessSignature sr=testhub\.azure-devices\.net&sig=[^&]+&skn=service&se=\d+$/)
    } @$seen;
    ok(@$seen && !@bad, "$name: the hub got the gateway's token");
}

sub hub_reset {
    my ($self, $name) = @_;
    $self->control('POST', '/reset', undef, $name);
}

# hub_config(key => value, ...), or for the second hub
# hub_config(hub2 => { key => value, ... })
sub hub_config {
    my ($self, %cfg) = @_;
    if (my $h2 = delete $cfg{hub2}) {
        $self->control('POST', '/config', $h2, 'hub2');
    }
    $self->control('POST', '/config', \%cfg) if %cfg;
}

sub hub_twin {
    my ($self, $device, $module, $name) = @_;
    my $path = '/twins/' . uri_component($device);
    $path .= '/modules/' . uri_component($module) if defined $module;
    my $r = $self->control('GET', $path, undef, $name);
    return $r->{status} == 200 ? json_decode($r->{body}) : undef;
}

# ---------------------------------------------------------------- nginx

sub conf_text {
    my ($self, $http, %opts) = @_;

    my $dir = $self->{dir};
    my $workers = $opts{workers} || 1;
    my $main = $opts{main} || '';

    my $text = <<"EOF";
load_module $MODULE;
worker_processes $workers;
pid $dir/nginx.pid;
error_log $dir/error.log info;
daemon off;
master_process on;
$main
events {
    worker_connections 256;
}

http {
    access_log $dir/access.log;
    client_body_temp_path $dir/client_body_temp;
    proxy_temp_path $dir/proxy_temp;
    fastcgi_temp_path $dir/fastcgi_temp;
    uwsgi_temp_path $dir/uwsgi_temp;
    scgi_temp_path $dir/scgi_temp;

%%UPSTREAM%%
$http
}
EOF
    # a configuration may bring its own upstream for the hub
    my $upstream = $opts{no_upstream} ? '' : <<"EOF";
    upstream $HUB {
        server 127.0.0.1:%%HUB_PORT%%;
        keepalive 4;
    }
EOF
    $text =~ s/%%UPSTREAM%%\n/$upstream/;
    return $self->expand($text);
}

sub expand {
    my ($self, $text) = @_;
    my %v = (
        GW_PORT => sub { $self->port('gw') },
        HUB_PORT => sub { $self->port('hub') },
        DIR => sub { $self->{dir} },
        CA => sub { "$BUILD/certs/ca.pem" },
        OTHER_CA => sub { "$BUILD/certs/other-ca.pem" },
        HUB => sub { $HUB },
        HUB2 => sub { $HUB2 },
        ROOT => sub { $ROOT },
    );
    $text =~ s/%%(\w+)%%/exists $v{$1} ? $v{$1}->()
                         : $1 =~ m{^(\w+)_PORT$} ? $self->port(lc $1)
                         : die "unknown %%$1%%\n"/ge;
    return $text;
}

# the recommended gateway location, with extra directives inside it
sub gateway {
    my ($extra, %opts) = @_;
    $extra //= '';
    my $loc = $opts{location} || '/';
    my $server_extra = $opts{server} || '';
    return <<"EOF";
    server {
        listen 127.0.0.1:%%GW_PORT%%;

        error_page 400 /.iothub_twin/400;
        location = /.iothub_twin/400 {
            internal;
            iothub_twin_error 400 ArgumentInvalid "the request is malformed";
        }
$server_extra
        location $loc {
            iothub_twin_pass https://%%HUB%%;
            iothub_twin_hub_policy service;
            iothub_twin_hub_key_file %%DIR%%/hub.key;
            proxy_ssl_trusted_certificate %%CA%%;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
$extra
        }
    }
EOF
}

# nginx -t on a configuration: returns (exit status, output)
sub nginx_test {
    my ($self, $http, %opts) = @_;
    my $conf = $self->write_file('test.conf', $self->conf_text($http, %opts));
    my $out = `$NGINX -t -p $self->{dir} -c $conf -e $self->{dir}/test-error.log 2>&1`;
    return ($? >> 8, $out);
}

sub start_nginx {
    my ($self, $http, %opts) = @_;

    $self->stop_nginx;

    my $conf = $self->write_file('nginx.conf', $self->conf_text($http, %opts));

    my $pid = fork();
    die "fork: $!" unless defined $pid;

    if ($pid == 0) {
        open STDOUT, '>>', "$self->{dir}/nginx.out";
        open STDERR, '>&', \*STDOUT;
        exec $NGINX, '-p', $self->{dir}, '-c', $conf,
             '-e', "$self->{dir}/error.log"
            or die "exec $NGINX: $!";
    }

    $self->{nginx} = $pid;

    my $deadline = time + 10;
    while (time < $deadline) {
        if (waitpid($pid, WNOHANG) == $pid) {
            delete $self->{nginx};
            die "nginx exited at start:\n" . $self->read_file('nginx.out')
                . $self->read_file('error.log');
        }
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $self->port('gw'),
                                      Proto => 'tcp');
        if ($s) {
            close $s;
            return $self;
        }
        sleep 0.05;
    }

    die "nginx did not listen on port " . $self->port('gw') . "\n";
}

sub reload_nginx {
    my ($self, $http, %opts) = @_;
    $self->write_file('nginx.conf', $self->conf_text($http, %opts));
    kill 'HUP', $self->{nginx};
    sleep 1;
}

sub stop_nginx {
    my ($self) = @_;
    my $pid = delete $self->{nginx} or return;
    kill 'QUIT', $pid;
    my $deadline = time + 10;
    while (time < $deadline) {
        return if waitpid($pid, WNOHANG) == $pid;
        sleep 0.05;
    }
    kill 'KILL', $pid;
    waitpid($pid, 0);
}

sub stop {
    my ($self) = @_;
    $self->stop_nginx;
    for my $e (delete $self->{emulator},
               values %{delete $self->{emulators} || {}})
    {
        next unless $e;
        kill 'TERM', $e->{pid};
        waitpid($e->{pid}, 0);
    }
}

# ---------------------------------------------------------------- SAS

# a caller's token as the Node SDK builds it: sr, sig, skn, se
sub sas_token {
    my (%a) = @_;
    my $sr = uri_component($a{sr});
    my $se = $a{se} // int(time) + 3600;
    my $sig = encode_base64(hmac_sha256("$sr\n$se", decode_base64($a{key})),
                            '');
    return "SharedAccessSignature sr=$sr&sig=" . uri_component($sig)
        . '&skn=' . uri_component($a{skn}) . "&se=$se";
}

# a log line the test expects (a reload with a broken file logs [emerg])
sub allow_log {
    my ($self, $re) = @_;
    push @{$self->{allow_log}}, $re;
}

# ---------------------------------------------------------------- HTTP

sub uri_component {
    my ($s) = @_;
    $s =~ s/([^A-Za-z0-9\-_.!~*'()])/sprintf('%%%02X', ord $1)/ge;
    return $s;
}

# a request to the gateway: method, path, headers (list), body
sub http {
    my ($self, %req) = @_;
    return http_request('127.0.0.1', $self->port('gw'), %req);
}

# shorthand for the common case: PATCH a twin with a JSON body
sub patch {
    my ($self, $path, $body, @headers) = @_;
    return $self->http(method => 'PATCH', path => $path,
                       headers => ['Content-Type' => 'application/json',
                                   @headers],
                       body => ref $body ? json_encode($body) : $body);
}

sub http_request {
    my ($host, $port, %req) = @_;

    my $method = $req{method} || 'GET';
    my $path = $req{path} || '/';
    my $body = $req{body};
    my @h = @{$req{headers} || []};

    my $text = "$method $path HTTP/1.1\r\nHost: " . ($req{host} || 'gateway')
        . "\r\nConnection: close\r\n";
    while (my ($k, $v) = splice @h, 0, 2) {
        $text .= "$k: $v\r\n";
    }
    if (defined $body && !$req{no_length}) {
        $text .= 'Content-Length: ' . length($body) . "\r\n";
    }
    $text .= "\r\n";
    $text .= $body if defined $body;

    return raw_request($host, $port, $text);
}

# sends raw bytes (a string, or a list of strings with pauses between them)
sub raw {
    my ($self, $parts, %opts) = @_;
    return raw_request('127.0.0.1', $self->port('gw'), $parts, %opts);
}

sub raw_request {
    my ($host, $port, $parts, %opts) = @_;

    my $s = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port,
                                  Proto => 'tcp', Timeout => 5)
        or die "connect $host:$port: $!";

    my @parts = ref $parts ? @$parts : ($parts);
    while (@parts) {
        my $p = shift @parts;
        $s->syswrite($p);
        sleep($opts{pause} || 0.2) if @parts;
    }

    if ($opts{close_early}) {
        close $s;
        return {};
    }

    my $resp = '';
    my $sel = IO::Select->new($s);
    my $deadline = time + ($opts{timeout} || 10);
    while (time < $deadline) {
        last unless $sel->can_read($deadline - time);
        my $n = sysread($s, my $buf, 65536);
        last unless $n;
        $resp .= $buf;
    }
    close $s;

    return parse_response($resp);
}

sub parse_response {
    my ($text) = @_;

    my %r = (raw => $text, headers => {}, header_list => []);
    my ($head, $body) = split /\r\n\r\n/, $text, 2;
    return \%r unless defined $head;

    my @lines = split /\r\n/, $head;
    my $status = shift @lines // '';
    ($r{status}) = $status =~ m{^HTTP/\d\.\d (\d{3})};

    for (@lines) {
        my ($k, $v) = /^([^:]+):\s*(.*)$/ or next;
        push @{$r{header_list}}, [$k, $v];
        my $lk = lc $k;
        $r{headers}{$lk} = exists $r{headers}{$lk}
            ? "$r{headers}{$lk}, $v" : $v;
    }

    $body //= '';
    if (($r{headers}{'transfer-encoding'} || '') =~ /chunked/i) {
        my $decoded = '';
        while ($body =~ s/^([0-9a-fA-F]+)\r\n//) {
            my $n = hex $1;
            last if $n == 0;
            $decoded .= substr($body, 0, $n, '');
            $body =~ s/^\r\n//;
        }
        $body = $decoded;
    }
    $r{body} = $body;

    if (($r{headers}{'content-type'} || '') =~ m{application/json}
        && length $body)
    {
        $r{json} = eval { json_decode($body) };
    }

    return \%r;
}

# ---------------------------------------------------------------- checks

# the hub's error shape, as the gateway must produce it
sub is_hub_error {
    my ($r, $status, $code, $text_re, $name) = @_;
    $name //= "$status $code";

    subtest $name => sub {
        is($r->{status}, $status, 'status');
        is($r->{headers}{'iothub-errorcode'}, $code, 'iothub-errorcode');
        like($r->{headers}{'content-type'} // '',
             qr{^application/json; charset=utf-8$}, 'content type');
        ok($r->{headers}{'x-ms-request-id'}, 'x-ms-request-id');
        my $j = $r->{json} || {};
        is(join(',', sort keys %$j), 'ExceptionMessage,Message', 'shape');
        like($j->{Message} // '', qr/^ErrorCode:\Q$code\E;/, 'Message');
        like($j->{Message} // '', $text_re, 'text') if $text_re;
        like($j->{ExceptionMessage} // '',
             qr{^Tracking ID:[0-9a-f]{32}-G:0-TimeStamp:\d\d/\d\d/\d{4} \d\d:\d\d:\d\d$},
             'ExceptionMessage');
    };
}

# what ASan, UBSan and LeakSanitizer write when they report
my $SANITIZER_RE = qr/(?:Address|UndefinedBehavior|Leak)Sanitizer|runtime error:/;

# the log lines a test produced must not hold an alert, crit or emerg line,
# a crashed worker, a sanitizer report (in a log, the emulator's output, or
# a report file in sanitizer/, where t/lib/nginx-sanitized puts them), or
# any secret the test used
sub check_logs {
    my ($self) = @_;

    my @found;
    opendir my $d, $self->{dir} or return;
    for my $f (sort grep { /\.(log|out|jsonl)$/ } readdir $d) {
        my $text = $self->read_file($f);
        for my $line (split /\n/, $text) {
            if ($f !~ /-requests\.jsonl$/ && $line =~ $SANITIZER_RE) {
                push @found, "$f: $line";
                next;
            }
            if ($f =~ /error\.log$|\.out$/
                && $line =~ /\[(alert|crit|emerg)\]|exited on signal/)
            {
                next if $f eq 'test-error.log';
                next if grep { $line =~ $_ } @{$self->{allow_log} || []};
                push @found, "$f: $line";
            }
        }
        next if $f =~ /-requests\.jsonl$/;
        for my $s (@{$self->{secrets}}) {
            push @found, "$f holds a secret" if index($text, $s) >= 0;
        }
    }
    closedir $d;

    for my $f (sort glob "$self->{dir}/sanitizer/*") {
        my $text = $self->read_file($f);
        next unless length $text;
        my @lines = grep { $_ =~ $SANITIZER_RE || /^\s+#\d/ }
                    split /\n/, $text;
        push @found, "sanitizer report $f:\n"
                     . join("\n", @lines[0 .. ($#lines < 15 ? $#lines : 15)]);
        for my $s (@{$self->{secrets}}) {
            push @found, "$f holds a secret" if index($text, $s) >= 0;
        }
    }

    return @found;
}

# stops everything and checks the logs; every test file ends with it
sub finish {
    my ($self) = @_;
    $self->stop;
    my @bad = $self->check_logs;
    ok(!@bad, 'no alert, crash or secret in the logs')
        or diag("in $self->{dir}:\n" . join("\n", @bad));
}

sub DESTROY { }

END {
    $_->stop for @instances;
}

1;
