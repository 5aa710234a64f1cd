#!/usr/bin/perl

# Caller identity, each mode: the caller's own SAS token (built as the Node
# SDK builds it), a verified client certificate, a variable set by
# auth_request.  No or bad identity: 401, always with the same text; the
# caller's credentials never reach the hub.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IoTHubTwin qw(json_encode);

my $KEY_A = 'YmFja2VuZC1hLXByaW1hcnkta2V5LWZvci10ZXN0cw==';
my $KEY_A2 = 'YmFja2VuZC1hLXNlY29uZGFyeS1rZXktZm9yLXRlc3Q=';
my $KEY_B = 'YmFja2VuZC1iLWtleS1mb3ItdGVzdHMtMDEyMzQ1Ng==';
my $KEY_A_NEW = 'YmFja2VuZC1hLXJvdGF0ZWQta2V5LWZvci10ZXN0cyE=';

sub callers {
    my ($key_a) = @_;
    my $rule = { operations => ['read', 'update'], devices => ['dev1'],
                 modules => ['', 'mod1'], tags => ['**'], desired => ['**'] };
    return json_encode({ callers => {
        'backend-a' => { keys => { primary => $key_a, secondary => $KEY_A2 },
                         rules => [$rule] },
        'backend-b' => { keys => { primary => $KEY_B }, rules => [$rule] },
        'CN=backend-b,O=Example Backends' => { rules => [$rule] },
    } });
}

my $t = IoTHubTwin->new;
$t->secret($_) for $KEY_A, $KEY_A2, $KEY_B, $KEY_A_NEW;
$t->write_file('callers.json', callers($KEY_A));

sub sas_conf {
    return IoTHubTwin::gateway(<<'EOF');
            iothub_twin_identity sas;
            iothub_twin_sas_host gateway.example.com;
            iothub_twin_sas_skew 60s;
            iothub_twin_callers %%DIR%%/callers.json;
            add_header X-Caller $iothub_twin_caller always;
EOF
}

$t->start_nginx(sas_conf());

sub token {
    my (%a) = @_;
    return $t->secret(IoTHubTwin::sas_token(sr => 'gateway.example.com',
                                            skn => 'backend-a',
                                            key => $KEY_A, %a));
}

sub update_with {
    my ($auth) = @_;
    return $t->patch('/twins/dev1', { tags => { by => 'sas' } },
                     defined $auth ? ('Authorization' => $auth) : ());
}

# a good token

my $r = update_with(token());
is($r->{status}, 200, 'sas: a good token: 200');
is($r->{headers}{'x-caller'}, 'backend-a', 'sas: the caller is the skn');
my $req = $t->hub_requests->[-1];
my ($auth) = IoTHubTwin::header($req, 'Authorization');
like($auth, qr/&skn=service&se=\d+$/, 'the hub got the gateway token');
is($req->{auth}, 'ok', 'which the hub accepted');

# fields in another order, the secondary key, expiry within the skew

(my $reordered = token()) =~ s/^SharedAccessSignature (sr=[^&]+)&(sig=[^&]+)&(skn=[^&]+)&(se=\d+)$/SharedAccessSignature $4&$3&$1&$2/;
is(update_with($reordered)->{status}, 200, 'sas: fields in any order');
is(update_with(token(key => $KEY_A2))->{status}, 200,
   'sas: the secondary key');
is(update_with(token(se => time - 30))->{status}, 200,
   'sas: expired 30 s ago, within the 60 s skew');
is(update_with(token(sr => 'GATEWAY.example.com'))->{status}, 200,
   'sas: the host compared without case');

# refusals, all with the same answer

$t->hub_reset;

my %bad = (
    'no Authorization' => undef,
    'expired beyond the skew' => token(se => time - 120),
    'wrong key' => token(key => $KEY_B),
    'unknown skn' => token(skn => 'backend-x'),
    'another caller\'s skn' => token(skn => 'backend-b'),
    'wrong sr (the hub)' => token(sr => 'testhub.azure-devices.net'),
    'not a SAS token' => 'Bearer abc',
    'a field twice' => token() . '&se=1',
    'raw + in sig' => do { my $x = token(); $x =~ s/%2B/+/g; $x },
);

for my $name (sort keys %bad) {
    next if $name eq 'raw + in sig' && $bad{$name} !~ /\+/;
    $r = update_with($bad{$name});
    IoTHubTwin::is_hub_error($r, 401, 'IotHubUnauthorizedAccess',
                             qr/^ErrorCode:IotHubUnauthorizedAccess;the caller could not be identified$/,
                             "sas: $name");
    is($r->{headers}{'x-caller'}, undef, "sas: $name: no caller");
}

is(scalar @{$t->hub_requests}, 0, 'no refused request reached the hub');

# rotation: a new primary in the policy file, reloaded; tokens signed with
# the old key stop working, the secondary still works

my $old = token();
$t->write_file('callers.json', callers($KEY_A_NEW));
$t->reload_nginx(sas_conf());

$r = update_with($old);
IoTHubTwin::is_hub_error($r, 401, 'IotHubUnauthorizedAccess', undef,
                         'sas: a token of the rotated-away key, replayed');
is(update_with(token(key => $KEY_A_NEW))->{status}, 200,
   'sas: the new primary works');
is(update_with(token(key => $KEY_A2))->{status}, 200,
   'sas: the secondary still works');

$t->finish;

# mTLS: the verified client certificate's CN, or its whole subject

$t = IoTHubTwin->new;
$t->write_file('callers.json', callers($KEY_A));

sub mtls_conf {
    my ($mode) = @_;
    my $c = IoTHubTwin::gateway(<<"EOF",
            iothub_twin_identity mtls $mode;
            iothub_twin_callers %%DIR%%/callers.json;
            add_header X-Caller \$iothub_twin_caller always;
EOF
        server => <<'EOF');
        listen 127.0.0.1:%%TLS_PORT%% ssl;
        ssl_certificate %%ROOT%%/build/certs/hub.pem;
        ssl_certificate_key %%ROOT%%/build/certs/hub.key;
        ssl_client_certificate %%CA%%;
        ssl_verify_client optional_no_ca;
EOF
    return $c;
}

$t->start_nginx(mtls_conf('cn'));

sub curl {
    my ($cert) = @_;
    my $certs = "$IoTHubTwin::BUILD/certs";
    my $opt = $cert ? "--cert $certs/$cert.pem --key $certs/$cert.key" : '';
    my $out = `curl -s -o /dev/null -w '%{http_code} %header{x-caller}' --cacert $certs/ca.pem $opt -X PATCH -H 'Content-Type: application/json' -d '{"tags":{"by":"mtls"}}' https://127.0.0.1:@{[$t->port('tls')]}/twins/dev1 2>&1`;
    return $out;
}

like(curl('backend-a'), qr/^200 backend-a$/, 'mtls cn: backend-a');
like(curl('backend-b'), qr/^200 backend-b$/, 'mtls cn: backend-b');
like(curl(undef), qr/^401/, 'mtls: no certificate: 401');
like(curl('intruder'), qr/^401/,
     'mtls: CN=backend-a from another CA: 401');
like(`curl -s -o /dev/null -w '%{http_code}' -X PATCH -H 'Content-Type: application/json' -d '{}' http://127.0.0.1:@{[$t->port('gw')]}/twins/dev1`,
     qr/^401/, 'mtls: plain HTTP: 401');

$t->start_nginx(mtls_conf('subject'));
like(curl('backend-b'), qr/^200 CN=backend-b,O=Example Backends$/,
     'mtls subject: the whole subject is the caller');
like(curl('backend-a'), qr/^401/, 'mtls subject: a subject not in the policy');

$t->finish;

# variable: what auth_request found, through auth_request_set

$t = IoTHubTwin->new;
$t->write_file('callers.json', callers($KEY_A));
$t->start_nginx(<<'EOF' . IoTHubTwin::gateway(<<'EOF2', server => <<'EOF3'));
    server {
        listen 127.0.0.1:%%AUTH_PORT%%;
        location / {
            if ($http_x_api_key = "key-a") {
                add_header X-Caller backend-a;
                return 204;
            }
            if ($http_x_api_key = "key-x") {
                add_header X-Caller backend-x;
                return 204;
            }
            return 401;
        }
    }
EOF
            auth_request /_auth;
            auth_request_set $caller $upstream_http_x_caller;
            iothub_twin_identity variable $caller;
            iothub_twin_callers %%DIR%%/callers.json;
            add_header X-Caller $iothub_twin_caller always;
EOF2
        location = /_auth {
            internal;
            proxy_pass http://127.0.0.1:%%AUTH_PORT%%;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }
EOF3

$r = $t->patch('/twins/dev1', { tags => { by => 'variable' } },
               'X-Api-Key' => 'key-a');
is($r->{status}, 200, 'variable: a known caller: 200');
is($r->{headers}{'x-caller'}, 'backend-a', 'variable: the caller');
is($t->hub_twin('dev1')->{tags}{by}, 'variable', 'hub state updated');

$r = $t->patch('/twins/dev1', { tags => { by => 'x' } },
               'X-Api-Key' => 'key-x');
IoTHubTwin::is_hub_error($r, 401, 'IotHubUnauthorizedAccess', undef,
                         'variable: a caller not in the policy');

$r = $t->patch('/twins/dev1', { tags => { by => 'y' } },
               'X-Api-Key' => 'wrong');
is($r->{status}, 401, 'variable: auth_request refused');

$t->finish;

done_testing;
