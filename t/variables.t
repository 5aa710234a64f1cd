#!/usr/bin/perl

# The variables not covered elsewhere, and a configured api-version; and the
# shipped configurations: conf/demo.conf (what "make run" starts) and
# conf/callers.json pass nginx -t.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IoTHubTwin;

my $t = IoTHubTwin->new;

$t->start_nginx(IoTHubTwin::gateway(<<'EOF'));
            iothub_twin_api_version 2020-09-30;
            add_header X-Upstream-Uri $iothub_twin_upstream_uri always;
            add_header X-If-Match-Kind $iothub_twin_if_match_kind always;
            add_header X-Hub $iothub_twin_hub always;
            add_header X-Device $iothub_twin_device_id always;
            add_header X-Module $iothub_twin_module_id always;
            add_header X-Operation $iothub_twin_operation always;
EOF

my $r = $t->patch('/twins/a%2b/modules/%24m?api-version=2021-04-12',
                  { tags => { a => 1 } }, 'If-Match' => 'AAAAAAAAAAE=');
is($r->{headers}{'x-upstream-uri'},
   '/twins/a%2B/modules/%24m?api-version=2020-09-30',
   '$iothub_twin_upstream_uri: canonical, with the configured api-version');
is($r->{headers}{'x-if-match-kind'}, 'bare-quoted', '$iothub_twin_if_match_kind');
is($r->{headers}{'x-hub'}, 'testhub.azure-devices.net', '$iothub_twin_hub');
is($r->{headers}{'x-device'}, 'a+', '$iothub_twin_device_id, decoded');
is($r->{headers}{'x-module'}, '$m', '$iothub_twin_module_id, decoded');
is($r->{headers}{'x-operation'}, 'update', '$iothub_twin_operation');
is($t->hub_requests->[0]{target},
   '/twins/a%2B/modules/%24m?api-version=2020-09-30',
   'the hub got the configured api-version');

$r = $t->patch('/twins/dev1', { tags => { a => 1 } }, 'If-Match' => '"*"');
is($r->{headers}{'x-if-match-kind'}, 'any-quoted', 'kind any-quoted');
$r = $t->patch('/twins/dev1', { tags => { a => 1 } });
is($r->{headers}{'x-if-match-kind'}, 'none', 'kind none');

# the token variable holds what the hub received in Authorization

$t->stop_nginx;
$t->start_nginx(IoTHubTwin::gateway(<<'EOF'));
            add_header X-Token $iothub_twin_token always;
EOF
$t->hub_reset;
$r = $t->patch('/twins/dev1', { tags => { a => 2 } });
my ($auth) = IoTHubTwin::header($t->hub_requests->[0], 'Authorization');
$t->secret($auth);
is($r->{headers}{'x-token'}, $auth, '$iothub_twin_token is what the hub got');

$t->finish;

# the shipped configurations

$t = IoTHubTwin->new(no_emulator => 1);

my $demo = $t->read_file("$IoTHubTwin::ROOT/conf/demo.conf");
$demo =~ s/\@ROOT\@/$IoTHubTwin::ROOT/g;
$demo =~ s/\@RUN\@/$t->{dir}/g;
$demo =~ s/^daemon off;$//m;
my $conf = $t->write_file('demo.conf', $demo);
my $out = `$IoTHubTwin::NGINX -t -p $t->{dir} -c $conf -e $t->{dir}/test-error.log 2>&1`;
is($? >> 8, 0, 'conf/demo.conf passes nginx -t') or diag $out;

my ($rc, $o) = $t->nginx_test(IoTHubTwin::gateway(<<'EOF'));
            iothub_twin_identity sas;
            iothub_twin_sas_host gateway.example.com;
            iothub_twin_callers %%ROOT%%/conf/callers.json;
EOF
is($rc, 0, 'conf/callers.json loads') or diag $o;

($rc, $o) = $t->nginx_test("    include %%ROOT%%/conf/audit.conf;\n"
                           . "    include %%ROOT%%/conf/rate-limits.conf;\n"
                           . IoTHubTwin::gateway(''));
is($rc, 0, 'conf/audit.conf and conf/rate-limits.conf load') or diag $o;

$t->finish;

done_testing;
