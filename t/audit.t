#!/usr/bin/perl

# The audit trail: conf/audit.conf's JSON lines, written by nginx's own
# access_log over the gateway's variables, one record per request; the
# exact record for an allowed write, a policy refusal, a validation
# refusal, a stale etag and a hub error.  No key, token or caller signature
# in any log.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IoTHubTwin qw(json_encode json_decode);

my $KEY = 'YXVkaXQtdGVzdC1jYWxsZXIta2V5LTAxMjM0NTY3ODk=';

my $t = IoTHubTwin->new;
$t->secret($KEY);

$t->write_file('callers.json', json_encode({ callers => {
    'backend-a' => { keys => { primary => $KEY }, rules => [
        { operations => ['update'], devices => ['dev1', 'nosuch'],
          tags => ['location.*'], desired => ['telemetry.**'] } ] } } }));

$t->start_nginx("    include %%ROOT%%/conf/audit.conf;\n"
                . IoTHubTwin::gateway(<<'EOF', server => <<'EOF2'));
            iothub_twin_identity sas;
            iothub_twin_sas_host gateway.example.com;
            iothub_twin_callers %%DIR%%/callers.json;
EOF
        access_log %%DIR%%/audit.log iothub_twin_audit;
EOF2

my $n = 0;

sub send_patch {
    my ($path, $body, @h) = @_;
    my $token = $t->secret(IoTHubTwin::sas_token(
        sr => 'gateway.example.com', skn => 'backend-a', key => $KEY));
    my $r = $t->patch($path, $body, 'Authorization' => $token,
                      'Request-Id' => 'req-' . ++$n, @h);
    for my $req (@{$t->hub_requests}) {
        $t->secret($_) for IoTHubTwin::header($req, 'Authorization');
    }
    return $r;
}

# nginx writes the access log line after the answer: wait for a new one
my $seen = 0;

# what the caller's read scope withheld of the answer, from the last record
my ($withheld, $withheld_paths);

sub record {
    my @lines;
    for (1 .. 100) {
        @lines = split /\n/, $t->read_file('audit.log');
        last if @lines > $seen;
        select(undef, undef, undef, 0.02);
    }
    $seen = @lines;
    my $rec = json_decode($lines[-1]);
    like(delete $rec->{time}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$/,
         'time');
    like(delete $rec->{request_time}, qr/^\d+\.\d{3}$/, 'request_time');
    my $up = delete $rec->{upstream_time};
    ($withheld, $withheld_paths) = delete @$rec{qw(withheld withheld_paths)};
    like(delete $rec->{hub_request_id}, qr/^([0-9a-f-]{36})?$/,
         'the hub\'s request id when the hub answered');
    return ($rec, $up, scalar @lines);
}

# an allowed write

my $r = send_patch('/twins/dev1',
                   '{"tags":{"location":{"city":"Bergen"}},'
                   . '"properties":{"desired":{"telemetry":{"interval":9}}}}',
                   'If-Match' => 'AAAAAAAAAAE=');
is($r->{status}, 200, 'allowed write: 200');
my ($rec, $up, $count) = record();
like($up, qr/^\d+\.\d{3}$/, 'allowed write: upstream time');
is_deeply($rec, {
    request_id => 'req-1', caller => 'backend-a', operation => 'update',
    hub => 'testhub.azure-devices.net', device_id => 'dev1', module_id => '',
    paths => 'tags.location.city properties.desired.telemetry.interval',
    values => '', if_match_sent => 'AAAAAAAAAAE=',
    if_match_forwarded => '"AAAAAAAAAAE="', decision => 'allow',
    reason => '', policy_mode => 'enforce', error => '', status => '200',
    upstream_status => '200', hub_error => '',
    etag => 'AAAAAAAAAAI=', version => '2',
}, 'allowed write: the record') or diag explain $rec;
like($withheld, qr/^[1-9][0-9]*$/,
     'allowed write: nodes of the answer withheld (the default read scope)');
like($withheld_paths, qr/\S/,
     'allowed write: the first of them named');

# a policy refusal

$r = send_patch('/twins/dev1', { tags => { owner => 'me' } });
is($r->{status}, 403, 'policy refusal: 403');
($rec, $up) = record();
is($up, '', 'policy refusal: no upstream time');
is_deeply($rec, {
    request_id => 'req-2', caller => 'backend-a', operation => 'update',
    hub => 'testhub.azure-devices.net', device_id => 'dev1', module_id => '',
    paths => 'tags.owner',
    values => '', if_match_sent => '', if_match_forwarded => '',
    decision => 'deny', reason => $rec->{reason}, policy_mode => 'enforce',
    error => 'PolicyDenied', status => '403', upstream_status => '',
    hub_error => '', etag => '', version => '',
}, 'policy refusal: the record') or diag explain $rec;
like($rec->{reason}, qr/tags\.owner/, 'policy refusal: the reason names the path');

# a validation refusal

$r = send_patch('/twins/dev1', '{"tags":{"location":{"a$":1}}}');
is($r->{status}, 400, 'validation refusal: 400');
($rec) = record();
is($rec->{decision}, 'refused', 'validation refusal: decision');
is($rec->{error}, 'ArgumentInvalid', 'validation refusal: error');
is($rec->{upstream_status}, '', 'validation refusal: not forwarded');
is($rec->{request_id}, 'req-3', 'validation refusal: request id');

# a stale etag: the hub's 412

$r = send_patch('/twins/dev1', { tags => { location => { city => 'x' } } },
                'If-Match' => '"AAAAAAAAAAE="');
is($r->{status}, 412, 'stale etag: 412');
($rec) = record();
is_deeply([ @$rec{qw(decision error upstream_status hub_error status
                     if_match_forwarded etag)} ],
          [ 'allow', '', '412', 'PreconditionFailed', '412', '"AAAAAAAAAAE="',
            '' ],
          'stale etag: the record') or diag explain $rec;

# a hub error

$t->hub_config(fail => { status => 503, count => 1 });
$r = send_patch('/twins/dev1', { tags => { location => { city => 'y' } } });
is($r->{status}, 503, 'hub error: 503 passed back');
($rec) = record();
is_deeply([ @$rec{qw(decision upstream_status hub_error status)} ],
          [ 'allow', '503', 'ServiceUnavailable', '503' ],
          'hub error: the record') or diag explain $rec;

# a device the hub does not have

$r = send_patch('/twins/nosuch', { tags => { location => { city => 'z' } } });
($rec, undef, $count) = record();
is($rec->{hub_error}, 'DeviceNotFound', 'hub 404: hub_error');

# without identity: one record too

$r = $t->patch('/twins/dev1', { tags => {} });
is($r->{status}, 401, 'no identity: 401');
($rec, undef, my $count2) = record();
is($count2, $count + 1, 'one record per request');
is_deeply([ @$rec{qw(caller decision error)} ],
          [ '', 'unauthenticated', 'IotHubUnauthorizedAccess' ],
          'no identity: the record');
is($rec->{reason}, 'no Authorization header',
   'no identity: the reason is in the record');
unlike($r->{body}, qr/Authorization header/,
       'no identity: and not in the answer');

# a token signed with the wrong key: the reason in the record only
$r = $t->patch('/twins/dev1', { tags => {} }, 'Authorization' =>
               IoTHubTwin::sas_token(sr => 'gateway.example.com',
                                     skn => 'backend-a',
                                     key => 'd3Jvbmcta2V5LXdyb25nLWtleS0wMTIzNDU2Nzg5'));
is($r->{status}, 401, 'wrong key: 401');
($rec) = record();
like($rec->{reason}, qr/signature|key/i, 'wrong key: the reason in the record')
    or diag explain $rec;
unlike($r->{body}, qr/signature/i, 'wrong key: not in the answer');

$t->finish;

# who was throttled: a request limit_req refuses through error_page keeps
# the caller, operation and twin known before the redirect

$t = IoTHubTwin->new;
$seen = 0;
$t->secret($KEY);
$t->write_file('callers.json', json_encode({ callers => {
    'backend-a' => { keys => { primary => $KEY }, rules => [
        { operations => ['update'], devices => ['dev1'],
          tags => ['location.*'] } ] } } }));
$t->start_nginx("    include %%ROOT%%/conf/audit.conf;\n"
    . "    limit_req_zone \$iothub_twin_caller zone=per_caller:1m "
    . "rate=1r/m;\n"
    . IoTHubTwin::gateway(<<'EOF', server => <<'EOF2'));
            iothub_twin_identity sas;
            iothub_twin_sas_host gateway.example.com;
            iothub_twin_callers %%DIR%%/callers.json;
            limit_req zone=per_caller nodelay;
            limit_req_status 429;
EOF
        access_log %%DIR%%/audit.log iothub_twin_audit;
        error_page 429 /.iothub_twin/error;
        location = /.iothub_twin/error {
            internal;
            iothub_twin_error auto;
        }
EOF2

$r = send_patch('/twins/dev1', { tags => { location => { city => 'a' } } });
is($r->{status}, 200, 'throttling: the first update passes');
record();

$r = send_patch('/twins/dev1/modules/mod1',
                { tags => { location => { city => 'b' } } });
IoTHubTwin::is_hub_error($r, 429, 'ThrottlingException', undef,
                         'throttling: the hub\'s 429 shape');
is($r->{headers}{'retry-after'}, '10', 'throttling: Retry-After');
($rec) = record();
is_deeply([ @$rec{qw(caller operation device_id module_id decision error
                     status upstream_status)} ],
          [ 'backend-a', 'update', 'dev1', 'mod1', 'throttled',
            'ThrottlingException', '429', '' ],
          'throttling: the record names who was throttled')
    or diag explain $rec;

$t->finish;

# the paths written: the first ones listed, then how many more, so that a
# patch of thousands of leaves does not write a line of tens of KB

$t = IoTHubTwin->new;
$seen = 0;
$t->start_nginx("    include %%ROOT%%/conf/audit.conf;\n"
                . IoTHubTwin::gateway("            iothub_twin_audit_paths 3;\n",
                                      server => "        access_log %%DIR%%/audit.log iothub_twin_audit;\n"));
$r = $t->patch('/twins/dev1', { tags => { map { ("k$_" => $_) } 1 .. 50 } });
is($r->{status}, 200, 'many paths: 200');
($rec) = record();
my @listed = split / /, $rec->{paths};
is(scalar(grep { /^tags\.k\d+$/ } @listed), 3, 'many paths: three listed');
like($rec->{paths}, qr/ \(\+47 more\)$/, 'many paths: and how many more');

my ($rc, $out) = $t->nginx_test(IoTHubTwin::gateway(
    "            iothub_twin_audit_paths 5000;\n"));
isnt($rc, 0, 'iothub_twin_audit_paths 5000: nginx -t fails');
like($out, qr/invalid value "5000" in "iothub_twin_audit_paths"/,
     'iothub_twin_audit_paths 5000: the message names the value');

$t->finish;

# values only when asked, capped

$t = IoTHubTwin->new;
$seen = 0;
$t->start_nginx("    include %%ROOT%%/conf/audit.conf;\n"
                . IoTHubTwin::gateway("            iothub_twin_audit_values 20;\n",
                                      server => "        access_log %%DIR%%/audit.log iothub_twin_audit;\n"));
$r = $t->patch('/twins/dev1', '{"tags":{"location":{"city":"Tromsø"}}}');
is($r->{status}, 200, 'values: 200');
($rec) = record();
is($rec->{values}, '{"tags":{"location":', 'values: the first 20 bytes');

$t->finish;

done_testing;
