#!/usr/bin/perl

# nginx -t refuses a bad configuration with a message naming the directive
# and the value; a good one passes.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IoTHubTwin;

my $t = IoTHubTwin->new(no_emulator => 1);

$t->write_file('empty.key', "\n# nothing here\n\n");
$t->write_file('bad.key', "not-base64!\n");
$t->write_file('three.key', "YQ==\nYWI=\nYWJj\n");
$t->write_file('one.key', "$IoTHubTwin::HUB_KEY\n");

my ($rc, $out) = $t->nginx_test(IoTHubTwin::gateway(''));
is($rc, 0, 'the recommended configuration passes nginx -t') or diag $out;

sub refused {
    my ($conf, $re, $name) = @_;
    my ($rc, $out) = $t->nginx_test($conf);
    isnt($rc, 0, "$name: nginx -t fails");
    like($out, $re, "$name: message") or diag $out;
    unlike($out, qr/\Q$IoTHubTwin::HUB_KEY\E/, "$name: no key in the message");
}

sub with_key {
    my ($key) = @_;
    (my $c = IoTHubTwin::gateway('')) =~ s{%%DIR%%/hub\.key}{$key};
    return $c;
}

refused(with_key('%%DIR%%/missing.key'),
        qr/"iothub_twin_hub_key_file": cannot open key file ".*missing\.key"/,
        'missing key file');
refused(with_key('%%DIR%%/empty.key'),
        qr/key file ".*empty\.key" holds no key/, 'empty key file');
refused(with_key('%%DIR%%/bad.key'),
        qr/key file ".*bad\.key" line 1 is not a base64 key/,
        'non-base64 key file');
refused(with_key('%%DIR%%/three.key'),
        qr/key file ".*three\.key" holds more than two keys \(line 3\)/,
        'three keys');

my $c = with_key('%%DIR%%/one.key');
$c =~ s/(iothub_twin_hub_policy service;)/$1\n            iothub_twin_hub_key_slot secondary;/;
refused($c, qr/"iothub_twin_hub_key_slot secondary".*holds no secondary key/,
        'secondary slot, one key');

my $base = IoTHubTwin::gateway('');

for my $case (
    [ 'http://%%HUB%%',
      qr/invalid URL "http:\/\/testhub[^"]*" in "iothub_twin_pass": the hub is reached over https only/ ],
    [ 'https://%%HUB%%/twins/',
      qr/invalid URL "https:\/\/testhub[^"]*\/twins\/" in "iothub_twin_pass": give only/ ],
    [ 'https://%%HUB%%$request_uri',
      qr/invalid URL .*\$request_uri" in "iothub_twin_pass"/ ],
) {
    ($c = $base) =~ s{iothub_twin_pass https://%%HUB%%;}{iothub_twin_pass $case->[0];};
    refused($c, $case->[1], "iothub_twin_pass $case->[0]");
}

($c = $base) =~ s/\s*iothub_twin_hub_policy service;//;
refused($c, qr/needs "iothub_twin_hub_policy"/, 'no policy');

($c = $base) =~ s/\s*iothub_twin_hub_key_file [^;]+;//;
refused($c, qr/needs "iothub_twin_hub_key_file"/, 'no key file');

refused(IoTHubTwin::gateway("            proxy_pass https://%%HUB%%;\n"),
        qr/"proxy_pass" directive is duplicate/,
        'proxy_pass beside iothub_twin_pass');
refused(IoTHubTwin::gateway("            proxy_ssl_verify off;\n"),
        qr/"proxy_ssl_verify" directive is duplicate/,
        'proxy_ssl_verify off after iothub_twin_pass');
($c = $base) =~ s/(iothub_twin_pass)/proxy_ssl_verify off;\n            $1/;
refused($c, qr/"iothub_twin_pass" sets "proxy_ssl_verify on" itself/,
        'proxy_ssl_verify off before iothub_twin_pass');
refused(IoTHubTwin::gateway("            fastcgi_pass 127.0.0.1:9000;\n"),
        qr/"iothub_twin_pass" in location "\/" is overridden by another content handler/,
        'another content handler');
($c = $base) =~ s/\s*proxy_ssl_trusted_certificate [^;]+;//;
refused($c, qr/no "?proxy_ssl_trusted_certificate"? for "?proxy_ssl_verify/,
        'no trusted CA for the hub');

for my $case (
    [ 'iothub_twin_token_lifetime 5s',
      qr/invalid value "5s" in "iothub_twin_token_lifetime"/ ],
    [ 'iothub_twin_token_lifetime 400d',
      qr/invalid value "400d" in "iothub_twin_token_lifetime"/ ],
    [ 'iothub_twin_token_lifetime soon',
      qr/invalid value "soon" in "iothub_twin_token_lifetime"/ ],
    [ 'iothub_twin_sas_skew 2h',
      qr/invalid value "2h" in "iothub_twin_sas_skew": expected a time from 0s to 1h/ ],
    [ 'iothub_twin_audit_values 100k',
      qr/invalid value "100k" in "iothub_twin_audit_values"/ ],
    [ 'iothub_twin_identity magic',
      qr/invalid value "magic" in "iothub_twin_identity"/ ],
    [ 'iothub_twin_identity mtls serial',
      qr/invalid value "serial" in "iothub_twin_identity mtls"/ ],
    [ 'iothub_twin_metrics',
      qr/"iothub_twin_metrics" needs "iothub_twin_metrics_zone"/ ],
    [ 'iothub_twin_error 429 ThrottlingException "x" retry_after=soon',
      qr/invalid value "retry_after=soon" in "iothub_twin_error"/ ],
    [ 'iothub_twin_api_version latest',
      qr/invalid value "latest" in "iothub_twin_api_version"/ ],
    [ 'iothub_twin_max_body_size 1g',
      qr/invalid value "1g" in "iothub_twin_max_body_size"/ ],
    [ 'iothub_twin_hub_key_slot tertiary', qr/invalid value "tertiary"/ ],
    [ 'iothub_twin_read maybe',
      qr/invalid value "maybe" in "iothub_twin_read"/ ],
    [ 'iothub_twin_require_if_match 1',
      qr/invalid value "1" in "iothub_twin_require_if_match"/ ],
    [ 'iothub_twin_error 200 Fine',
      qr/invalid status "200" in "iothub_twin_error"/ ],
    [ 'iothub_twin_error 400 Bad-Name',
      qr/invalid error code "Bad-Name" in "iothub_twin_error"/ ],
) {
    refused(IoTHubTwin::gateway("            $case->[0];\n"), $case->[1],
            $case->[0]);
}

# the directives that may stand at http and server level

($rc, $out) = $t->nginx_test(<<'CONF');
    iothub_twin_hub_policy service;
    iothub_twin_hub_key_file %%DIR%%/hub.key;
    iothub_twin_token_lifetime 30m;
    iothub_twin_api_version 2021-04-12;
    iothub_twin_max_body_size 64k;
    server {
        listen 127.0.0.1:%%GW_PORT%%;
        iothub_twin_read on;
        iothub_twin_hub testhub.azure-devices.net;
        location /twins/ {
            iothub_twin_pass https://127.0.0.1:%%HUB_PORT%%;
            proxy_ssl_trusted_certificate %%CA%%;
        }
    }
CONF
is($rc, 0, 'inherited settings pass nginx -t') or diag $out;

$t->finish;

done_testing;
