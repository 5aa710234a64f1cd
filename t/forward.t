#!/usr/bin/perl

# Device and module twin updates end to end: through the gateway, over TLS
# with the hub's certificate verified, signed, to the hub emulator; the
# twin's state is checked afterwards, and what the hub received is checked
# header by header.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IoTHubTwin qw(json_decode);

my $t = IoTHubTwin->new;

$t->start_nginx(IoTHubTwin::gateway(<<'EOF'));
            iothub_twin_read on;
EOF


# device twin

my $r = $t->patch('/twins/dev1?api-version=2021-04-12',
                  { tags => { location => { city => 'Bergen', zip => '5003' } },
                    properties => { desired => { telemetry => { interval => 60 } } } },
                  'Authorization' => 'SharedAccessSignature sr=caller&sig=x&se=1&skn=caller',
                  'Cookie' => 'session=abc',
                  'Proxy-Authorization' => 'Basic Zm9vOmJhcg==');

is($r->{status}, 200, 'device twin update: 200');
is($r->{json}{deviceId}, 'dev1', 'the hub answered with the twin');
is($r->{json}{version}, 2, 'the version went up');
is($r->{json}{tags}{location}{city}, 'Bergen', 'tags merged');
is($r->{headers}{etag}, qq{"$r->{json}{etag}"},
   'ETag from the returned twin, quoted');

my $twin = $t->hub_twin('dev1');
is($twin->{tags}{location}{city}, 'Bergen', 'hub state: tag replaced');
is($twin->{tags}{location}{zip}, '5003', 'hub state: tag added');
is($twin->{properties}{desired}{telemetry}{interval}, 60,
   'hub state: desired updated');
is($twin->{version}, 2, 'hub state: version');

my $seen = $t->hub_requests;
is(scalar @$seen, 1, 'the hub received one request');
my $req = $seen->[0];
is($req->{method}, 'PATCH', 'method');
is($req->{target}, '/twins/dev1?api-version=2021-04-12', 'canonical target');
is($req->{auth}, 'ok', 'the hub accepted the signature');

my @auth = IoTHubTwin::header($req, 'Authorization');
is(scalar @auth, 1, 'one Authorization header');
like($auth[0], qr/^SharedAccessSignature sr=testhub\.azure-devices\.net&sig=[^&]+&skn=service&se=\d+$/,
     'the gateway token replaced the caller\'s');
is(scalar(IoTHubTwin::header($req, 'Cookie')), 0, 'Cookie dropped');
is(scalar(IoTHubTwin::header($req, 'Proxy-Authorization')), 0,
   'Proxy-Authorization dropped');
is((IoTHubTwin::header($req, 'Host'))[0], 'testhub.azure-devices.net', 'Host is the hub');
is_deeply(json_decode($req->{body}),
          { tags => { location => { city => 'Bergen', zip => '5003' } },
            properties => { desired => { telemetry => { interval => 60 } } } },
          'the body forwarded as sent');

my ($se) = $auth[0] =~ /&se=(\d+)$/;
ok($se > time + 3500 && $se <= time + 3600, 'token lifetime: one hour');

# module twin, with the caller's api-version replaced by the configured one

$t->hub_reset;

$r = $t->patch('/twins/dev1/modules/mod1?api-version=2020-09-30',
               { properties => { desired => { mode => 'eco' } } });
is($r->{status}, 200, 'module twin update: 200');
is($r->{json}{moduleId}, 'mod1', 'module twin returned');
is($t->hub_twin('dev1', 'mod1')->{properties}{desired}{mode}, 'eco',
   'hub state: module desired updated');
is($t->hub_requests->[0]{target},
   '/twins/dev1/modules/mod1?api-version=2021-04-12',
   'upstream gets the configured api-version');

# no query at all is fine too

$t->hub_reset;
$r = $t->patch('/twins/dev2', { tags => { a => 1 } });
is($r->{status}, 200, 'update without api-version');
is($t->hub_requests->[0]{target}, '/twins/dev2?api-version=2021-04-12',
   'api-version added');

# null deletes

$r = $t->patch('/twins/dev2', { tags => { a => undef } });
is($r->{status}, 200, 'null patch: 200');
ok(!exists $t->hub_twin('dev2')->{tags}{a}, 'hub state: null deleted the tag');

# read-through

$t->hub_reset;
$r = $t->http(method => 'GET', path => '/twins/dev1/modules/mod1');
is($r->{status}, 200, 'read: 200');
is($r->{json}{moduleId}, 'mod1', 'read: module twin');
is($r->{headers}{etag}, qq{"$r->{json}{etag}"}, 'read: ETag');
is($t->hub_requests->[0]{method}, 'GET', 'read forwarded as GET');

# the hub's own errors come back as the hub sent them

$r = $t->patch('/twins/nosuchdevice', { tags => { a => 1 } });
IoTHubTwin::is_hub_error($r, 404, 'DeviceNotFound', undef,
                         'hub 404 DeviceNotFound passed through');
ok(!exists $r->{headers}{etag}, 'no ETag on an error');

$r = $t->patch('/twins/dev1/modules/nosuchmodule', { tags => { a => 1 } });
IoTHubTwin::is_hub_error($r, 404, 'ModuleNotFound', undef,
                         'hub 404 ModuleNotFound passed through');

# the hub sends ETag itself: it is passed as it is, not doubled

$t->hub_config(etag_header => JSON::PP::true);
$r = $t->patch('/twins/dev2', { tags => { b => 2 } });
is($r->{status}, 200, 'update with the hub sending ETag');
my @etags = grep { lc $_->[0] eq 'etag' } @{$r->{header_list}};
is(scalar @etags, 1, 'one ETag header');
is($etags[0][1], qq{"$r->{json}{etag}"}, 'the hub\'s ETag');

# keepalive to the hub: several requests in a row work

$t->hub_reset;
my $ok = 0;
for my $i (1 .. 5) {
    $ok++ if $t->patch('/twins/dev2', { tags => { n => $i } })->{status} == 200;
}
is($ok, 5, 'five updates in a row');
is($t->hub_twin('dev2')->{tags}{n}, 5, 'the last one is the state');

$t->finish;

# a location that tries to forward the caller's own Authorization still
# sends only the gateway's token: the caller's value is emptied

$t = IoTHubTwin->new;
my $conf = IoTHubTwin::gateway('');
$conf =~ s/(iothub_twin_pass)/proxy_set_header Authorization \$http_authorization;\n            proxy_set_header X-Caller-Cookie \$http_cookie;\n            $1/;
$t->start_nginx($conf);

$r = $t->patch('/twins/dev1', { tags => { a => 1 } },
               'Authorization' => 'SharedAccessSignature sr=x&sig=caller-secret&se=1&skn=c',
               'Cookie' => 'session=caller-cookie');
is($r->{status}, 200, 'misconfigured Authorization: 200');
$req = $t->hub_requests->[0];
@auth = IoTHubTwin::header($req, 'Authorization');
is(scalar @auth, 1, 'one Authorization header reached the hub');
like($auth[0], qr/skn=service&se=\d+$/, 'and it is the gateway token');
unlike(join(' ', map { "@$_" } @{$req->{headers}}), qr/caller-secret|caller-cookie/,
       'no caller credential reached the hub');

$t->finish;

done_testing;
