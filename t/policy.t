#!/usr/bin/perl

# Per-caller policy end to end: operations, device and module patterns
# (exact, prefix, glob), writable paths (* and **), denied paths winning,
# null as a write, system modules, per-caller limits, report mode; nginx -t
# on broken policy files; a reload with a broken file keeps the old policy.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IoTHubTwin qw(json_encode);

my $t = IoTHubTwin->new;

# a device of the seed whose ID holds '#', '?' and '*'; as a pattern
# matching only itself, and an ID the unescaped pattern would match
my $weird = "dev#?%\$'()*+,;=\@!:-._";
sub literal { my ($id) = @_; $id =~ s/([*?])/\\$1/g; return $id }
(my $near = $weird) =~ tr/?*/ax/;

my %callers = (
    'ops' => { rules => [
        { operations => ['read', 'update'], devices => ['dev1', 'dev2'],
          modules => ['', 'mod1'],
          tags => ['location.*', 'owner'],
          desired => ['telemetry.**'],
          deny => ['properties.desired.telemetry.secret.**'] } ] },
    'fleet' => { require_if_match => JSON::PP::true, max_body_size => 200,
                 rules => [
        { operations => ['update'], devices => ['dev?'],
          tags => ['**'] } ] },
    'edge' => { rules => [
        { operations => ['update'], devices => ['dev*'],
          modules => ['*'], desired => ['**'] },
        { operations => ['read'], devices => ['dev1'],
          modules => ['$edgeAgent'] } ] },
    'auditor' => { mode => 'report', rules => [
        { operations => ['read'], devices => ['dev1'] } ] },
    'literal' => { rules => [
        { operations => ['update'], devices => [literal($weird), 'star\*', 'dev#1\?x'],
          tags => ['\*', 'k.\*\*'], desired => ['cfg.**'],
          deny => ['properties.desired.cfg.\*'] } ] },
);

$t->write_file('callers.json', json_encode({ callers => \%callers }));

my $conf = IoTHubTwin::gateway(<<'EOF');
            iothub_twin_read on;
            iothub_twin_identity variable $http_x_test_caller;
            iothub_twin_callers %%DIR%%/callers.json;
            add_header X-Decision "$iothub_twin_decision" always;
            add_header X-Reason "$iothub_twin_reason" always;
            add_header X-Mode "$iothub_twin_policy_mode" always;
EOF
$t->start_nginx($conf);

sub as {
    my ($caller, $path, $body, @h) = @_;
    return $t->patch($path, $body, 'X-Test-Caller' => $caller, @h);
}

sub denied {
    my ($r, $re, $name) = @_;
    IoTHubTwin::is_hub_error($r, 403, 'PolicyDenied', $re, $name);
    is($r->{headers}{'x-decision'}, 'deny', "$name: decision");
}

# allowed writes

my $r = as('ops', '/twins/dev1',
           { tags => { location => { city => 'Bergen' }, owner => 'ops' },
             properties => { desired => { telemetry => { interval => 5,
                                                         batch => { size => 9 } } } } });
is($r->{status}, 200, 'ops: allowed paths: 200');
is($r->{headers}{'x-decision'}, 'allow', 'decision allow');
is($r->{headers}{'x-mode'}, 'enforce', 'mode enforce');
is($t->hub_twin('dev1')->{tags}{owner}, 'ops', 'hub state updated');

is(as('ops', '/twins/dev1/modules/mod1', { tags => { owner => 'x' } })->{status},
   200, 'ops: a listed module');

$t->hub_reset;

# refused, nothing forwarded

denied(as('ops', '/twins/dev1', { tags => { location => { city => { name => 'x' } } } }),
       qr/tags\.location\.city\.name/, 'ops: * is one segment only');
denied(as('ops', '/twins/dev1', { tags => { location => {} } }),
       qr/tags\.location/, 'ops: writing the parent of a pattern');
denied(as('ops', '/twins/dev1', { tags => { color => 'red' } }),
       qr/tags\.color/, 'ops: a tag not listed');
denied(as('ops', '/twins/dev1', { tags => { color => undef } }),
       qr/tags\.color/, 'ops: deleting (null) a tag not listed');
denied(as('ops', '/twins/dev1',
          { properties => { desired => { telemetry => { secret => { k => 1 } } } } }),
       qr/properties\.desired\.telemetry\.secret\.k/,
       'ops: denied path wins over **');
denied(as('ops', '/twins/dev1',
          { tags => { owner => 'me' },
            properties => { desired => { telemetry => { secret => undef } } } }),
       qr/properties\.desired\.telemetry\.secret/,
       'ops: one refused path refuses the whole patch');
denied(as('ops', '/twins/dev3', { tags => { owner => 'x' } }),
       qr/dev3/, 'ops: a device not covered');
denied(as('ops', '/twins/dev1/modules/mod2', { tags => { owner => 'x' } }),
       qr/mod2/, 'ops: a module not covered');

is(scalar @{$t->hub_requests}, 0, 'no refused request reached the hub');

is(as('ops', '/twins/dev1', { tags => { owner => undef } })->{status}, 200,
   'ops: deleting (null) an allowed tag');

# operations

$r = $t->http(method => 'GET', path => '/twins/dev1',
              headers => ['X-Test-Caller' => 'fleet']);
denied($r, qr/read/, 'fleet: read not allowed');
is($t->http(method => 'GET', path => '/twins/dev1',
            headers => ['X-Test-Caller' => 'ops'])->{status},
   200, 'ops: read allowed');

# glob devices, per-caller If-Match and body size

$r = as('fleet', '/twins/dev2', { tags => { a => 1 } });
IoTHubTwin::is_hub_error($r, 428, 'PreconditionRequired', undef,
                         'fleet: If-Match required for this caller');
is(as('fleet', '/twins/dev2', { tags => { a => 1 } }, 'If-Match' => '*')->{status},
   200, 'fleet: dev? matches dev2');
denied(as('fleet', '/twins/dev10', { tags => { a => 1 } }, 'If-Match' => '*'),
       qr/dev10/, 'fleet: dev? does not match dev10');
$r = as('fleet', '/twins/dev2', { tags => { a => 'x' x 300 } }, 'If-Match' => '*');
IoTHubTwin::is_hub_error($r, 413, 'MessageTooLarge', qr/200/,
                         'fleet: the caller\'s own body limit');
is(as('ops', '/twins/dev1', { tags => { owner => 'x' x 300 } })->{status}, 200,
   'ops: no such limit');

# system modules: only a pattern that names them

denied(as('edge', '/twins/dev1/modules/$edgeAgent',
          { properties => { desired => { a => 1 } } }),
       qr/\$edgeAgent/, 'edge: * does not cover $edgeAgent');
is(as('edge', '/twins/dev1/modules/mod1',
      { properties => { desired => { a => 1 } } })->{status},
   200, 'edge: * covers mod1');
is($t->http(method => 'GET', path => '/twins/dev1/modules/%24edgeAgent',
            headers => ['X-Test-Caller' => 'edge'])->{status},
   200, 'edge: a rule naming $edgeAgent allows reading it');
denied(as('edge', '/twins/dev1', { properties => { desired => { a => 1 } } }),
       qr/dev1/, 'edge: modules only, not the device twin');

# report mode: logged, forwarded anyway

$t->hub_reset;
$r = as('auditor', '/twins/dev1', { tags => { audited => 1 } });
is($r->{status}, 200, 'report mode: forwarded');
is($r->{headers}{'x-decision'}, 'report', 'report mode: decision report');
is($r->{headers}{'x-mode'}, 'report', 'report mode: mode');
like($r->{headers}{'x-reason'}, qr/update/, 'report mode: the reason');
is(scalar @{$t->hub_requests}, 1, 'report mode: the hub got it');
like($t->read_file('error.log'), qr/report mode, would refuse caller "auditor"/,
     'report mode: logged');

# unknown caller

$r = as('nobody', '/twins/dev1', { tags => { a => 1 } });
IoTHubTwin::is_hub_error($r, 401, 'IotHubUnauthorizedAccess', undef,
                         'a caller not in the policy: 401');

# escapes: "\?" and "\*" are literal in IDs and in path patterns

$t->hub_reset;
my $wpath = '/twins/' . IoTHubTwin::uri_component($weird);
$r = as('literal', $wpath, { tags => { '*' => 1 } });
is($r->{status}, 200, 'literal: \\? and \\* in the ID pattern, \\* the key *');
is($t->hub_twin($weird)->{tags}{'*'}, 1, 'literal: the hub has tag *');
denied(as('literal', '/twins/' . IoTHubTwin::uri_component($near),
          { tags => { '*' => 1 } }),
       qr/device dev#a%/, 'literal: the pattern does not match ? and * as wildcards');
$r = as('literal', '/twins/dev%231%3Fx', { tags => { '*' => 1 } });
is($r->{headers}{'x-decision'}, 'allow',
   'literal: dev#1\\?x allows dev#1?x (which the hub does not know)');
denied(as('literal', '/twins/dev%231ax', { tags => { '*' => 1 } }),
       qr/dev#1ax/, 'literal: dev#1\\?x does not match dev#1ax');
denied(as('literal', '/twins/star1', { tags => { '*' => 1 } }),
       qr/star1/, 'literal: star\\* does not match star1');
denied(as('literal', $wpath, { tags => { a => 1 } }),
       qr/tags\.a/, 'literal: \\* does not match the key a');
is(as('literal', $wpath, { tags => { k => { '**' => 1 } } })->{status}, 200,
   'literal: \\*\\* matches the key **');
denied(as('literal', $wpath, { tags => { k => { x => 1 } } }),
       qr/tags\.k\.x/, 'literal: \\*\\* is no wildcard');
denied(as('literal', $wpath,
          { properties => { desired => { cfg => { '*' => { a => 1 } } } } }),
       qr/properties\.desired\.cfg\.\*\.a.*deny\[0\]/,
       'literal: deny of the key * covers its subtree');
is(as('literal', $wpath,
      { properties => { desired => { cfg => { x => 1 } } } })->{status},
   200, 'literal: deny of the key * leaves other keys');

# reload with a broken file: nginx keeps the old policy and says why

$t->allow_log(qr/\[emerg\].*iothub_twin_callers/);
$t->write_file('callers.json', '{"callers": {"ops": {"rules": [}}}');
$t->reload_nginx($conf);
like($t->read_file('error.log'), qr/\[emerg\].*"iothub_twin_callers".*callers\.json/,
     'reload with a broken file: the error is logged');
is(as('ops', '/twins/dev1', { tags => { owner => 'still' } })->{status}, 200,
   'the old policy still runs');

# reload with a good file: the new policy runs

$callers{ops}{rules}[0]{tags} = ['color'];
$t->write_file('callers.json', json_encode({ callers => \%callers }));
$t->reload_nginx($conf);
is(as('ops', '/twins/dev1', { tags => { color => 'red' } })->{status}, 200,
   'the new policy allows color');
denied(as('ops', '/twins/dev1', { tags => { owner => 'x' } }), qr/owner/,
       'and no longer owner');

$t->finish;

# nginx -t on broken policy files: the file, the caller, the entry

$t = IoTHubTwin->new(no_emulator => 1);

my @broken = (
    [ '{"callers": {"a": {"rules": [}}}', qr/line 1/, 'not JSON' ],
    [ '{"callers": {"a": {"rules": []}, "a": {"rules": []}}}', qr/duplicate/i,
      'duplicate caller' ],
    [ '{"callers": {}}', qr/callers/, 'no callers' ],
    [ '{"callers": {"a": {"rules": [{"operations": ["read"], "devices": ["d"]}], "colour": 1}}}',
      qr/caller "a".*colour/, 'unknown caller field' ],
    [ '{"callers": {"a": {"rules": [{"operations": ["read"], "devices": ["d"], "x": 1}]}}}',
      qr/caller "a".*rules\[0\].*x/, 'unknown rule field' ],
    [ '{"callers": {"a": {"rules": [{"operations": ["write"], "devices": ["d"]}]}}}',
      qr/caller "a".*operations\[0\]/, 'unknown operation' ],
    [ '{"callers": {"a": {"rules": [{"operations": ["read"], "devices": ["[x"]}]}}}',
      qr/caller "a".*devices\[0\]/, 'bad device pattern' ],
    [ '{"callers": {"a": {"rules": [{"operations": ["read"], "devices": ["d"], "tags": ["a..b"]}]}}}',
      qr/caller "a".*tags\[0\]/, 'bad path pattern' ],
    [ '{"callers": {"a": {"rules": [{"operations": ["read"], "devices": []}]}}}',
      qr/caller "a".*devices/, 'empty devices' ],
    [ '{"callers": {"a": {"rules": [{"operations": ["read"], "devices": "d"}]}}}',
      qr/caller "a".*devices/, 'devices not an array' ],
    [ '{"callers": {"a": {"keys": {"primary": "not base64!"}, "rules": [{"operations": ["read"], "devices": ["d"]}]}}}',
      qr/caller "a".*primary/, 'bad key' ],
    [ '{"callers": {"a": {"mode": "audit", "rules": [{"operations": ["read"], "devices": ["d"]}]}}}',
      qr/caller "a".*mode/, 'bad mode' ],
    [ '{"callers": {"bad \\"name": {"rules": [{"operations": ["read"], "devices": ["d"]}]}}}',
      qr/caller "bad \\x22name": a caller name is/, 'bad caller name' ],
    [ '{"callers": {"a": {"rules": [{"operations": ["read"], "devices": ["d\\\\x"]}]}}}',
      qr/caller "a": rules\[0\]\.devices\[0\]: "d\\x5cx": a backslash may only come before/,
      'a backslash before x in an ID pattern' ],
    [ '{"callers": {"a": {"rules": [{"operations": ["update"], "devices": ["d"], "tags": ["a.\\\\b"]}]}}}',
      qr/caller "a": rules\[0\]\.tags\[0\]: "a\.\\x5cb": a backslash may only come before/,
      'a backslash before b in a path pattern' ],
);

for my $case (@broken) {
    my ($json, $re, $name) = @$case;
    $t->write_file('broken.json', $json);
    my ($rc, $out) = $t->nginx_test(IoTHubTwin::gateway(<<'EOF'));
            iothub_twin_identity variable $http_x_test_caller;
            iothub_twin_callers %%DIR%%/broken.json;
EOF
    isnt($rc, 0, "broken policy, $name: nginx -t fails");
    like($out, qr/"iothub_twin_callers".*broken\.json/, "$name: names the file")
        or diag $out;
    like($out, $re, "$name: names the entry") or diag $out;
}

$t->write_file('good.json', json_encode({ callers => \%callers }));
my ($rc, $out) = $t->nginx_test(IoTHubTwin::gateway(<<'EOF'));
            iothub_twin_callers %%DIR%%/good.json;
EOF
like($out, qr/"iothub_twin_callers" .* needs "iothub_twin_identity"/,
     'a policy without an identity mode fails nginx -t');

($rc, $out) = $t->nginx_test(IoTHubTwin::gateway(<<'EOF'));
            iothub_twin_identity sas;
EOF
like($out, qr/needs "iothub_twin_callers"/,
     'an identity mode without a policy fails nginx -t');

$t->finish;

done_testing;
