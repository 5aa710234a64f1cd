#!/usr/bin/perl

# Twin replace (PUT) with iothub_twin_replace on: validated as a patch is,
# without null; a caller may replace only if its rules let it write tags
# and desired as a whole; If-Match goes with it; off, PUT is a 405.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IoTHubTwin qw(json_encode json_decode);

my $KEY = 'cmVwbGFjZS10ZXN0LWNhbGxlci1rZXktMDEyMzQ1Njc4OQ==';

my $t = IoTHubTwin->new;
$t->secret($KEY);

$t->write_file('callers.json', json_encode({ callers => {
    'whole' => { keys => { primary => $KEY }, rules => [
        { operations => ['replace', 'update', 'read'], devices => ['dev1'],
          modules => ['', 'mod1'], tags => ['**'], desired => ['**'] } ] },
    'narrow' => { keys => { primary => $KEY }, rules => [
        { operations => ['replace', 'update'], devices => ['dev1'],
          tags => ['location.*'], desired => ['**'] } ] },
} }));

$t->start_nginx(IoTHubTwin::gateway(<<'EOF'));
            iothub_twin_identity sas;
            iothub_twin_sas_host gateway.example.com;
            iothub_twin_callers %%DIR%%/callers.json;
            iothub_twin_replace on;
EOF

sub put {
    my ($caller, $path, $body, @h) = @_;
    my $token = $t->secret(IoTHubTwin::sas_token(
        sr => 'gateway.example.com', skn => $caller, key => $KEY));
    $t->hub_reset;
    return $t->http(method => 'PUT', path => $path,
                    headers => ['Content-Type' => 'application/json',
                                'Authorization' => $token, @h],
                    body => ref $body ? json_encode($body) : $body);
}

my $twin = { tags => { owner => 'ops' },
             properties => { desired => { mode => 'eco' } } };

# a replace by a caller that may write both sections whole
my $r = put('whole', '/twins/dev1', $twin);
is($r->{status}, 200, 'replace: 200');
my $seen = $t->hub_requests;
is(scalar @$seen, 1, 'replace: forwarded once');
is($seen->[0]{method}, 'PUT', 'replace: as a PUT');
is($seen->[0]{target}, '/twins/dev1?api-version=2021-04-12',
   'replace: the canonical target');
IoTHubTwin::signed_by_gateway($seen, 'replace');
my $hub = $t->hub_twin('dev1');
is_deeply($hub->{tags}, { owner => 'ops' },
          'replace: the old tags are gone, the new ones are there');
is_deeply([ grep { !/^\$/ } sort keys %{$hub->{properties}{desired}} ],
          ['mode'], 'replace: desired replaced as a whole');

# a module twin
$r = put('whole', '/twins/dev1/modules/mod1', $twin);
is($r->{status}, 200, 'replace a module twin: 200');

# If-Match goes with it
$r = put('whole', '/twins/dev1', $twin, 'If-Match' => '"AAAAAAAAAAE="');
is($r->{status}, 200, 'replace with the current etag: 200');
is(join('|', IoTHubTwin::header($t->hub_requests->[0], 'If-Match')),
   '"AAAAAAAAAAE="', 'replace: If-Match forwarded');
$r = put('whole', '/twins/dev1', $twin, 'If-Match' => '"AAAAAAAAAAk="');
is($r->{status}, 412, 'replace with a stale etag: the hub\'s 412');

# refusals: nothing forwarded

sub refused {
    my ($r, $status, $code, $re, $name) = @_;
    IoTHubTwin::is_hub_error($r, $status, $code, $re, $name);
    is(scalar @{$t->hub_requests}, 0, "$name: nothing forwarded");
}

refused(put('narrow', '/twins/dev1', $twin), 403, 'PolicyDenied',
        qr/replace/, 'a caller that may not write tags whole');
refused(put('whole', '/twins/dev1',
            '{"tags":{"owner":null},"properties":{"desired":{}}}'),
        400, 'ArgumentInvalid', qr/null/, 'a replace with null');
refused(put('whole', '/twins/dev1', '{"tags":{"a$":1}}'), 400,
        'ArgumentInvalid', undef, 'a replace that breaks the hub\'s rules');
refused(put('whole', '/twins/dev2', $twin), 403, 'PolicyDenied', undef,
        'another device');

$t->finish;

# off by default: 405 with Allow
$t = IoTHubTwin->new;
$t->start_nginx(IoTHubTwin::gateway(''));
$r = $t->http(method => 'PUT', path => '/twins/dev1',
              headers => ['Content-Type' => 'application/json'],
              body => json_encode($twin));
IoTHubTwin::is_hub_error($r, 405, 'MethodNotAllowed', undef,
                         'replace off by default: 405');
is($r->{headers}{allow}, 'PATCH', 'replace off: Allow says PATCH');
is(scalar @{$t->hub_requests}, 0, 'replace off: nothing forwarded');
$t->finish;

done_testing;
