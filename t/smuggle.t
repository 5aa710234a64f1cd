#!/usr/bin/perl

# No byte of a refused request's body is ever read as a request.  For each
# refusal class, the refused request carries a second complete, correctly
# signed request inside its body, sent in one write: the caller gets
# exactly one answer and the hub receives nothing.  A request pipelined
# after a refused one (outside its body) is answered normally.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IoTHubTwin qw(json_encode);

my $KEY = 'c211Z2dsZS10ZXN0LWNhbGxlci1rZXktMDEyMzQ1Njc4OQ==';

my $t = IoTHubTwin->new;
$t->secret($KEY);

$t->write_file('callers.json', json_encode({ callers => {
    'backend-a' => { keys => { primary => $KEY }, rules => [
        { operations => ['update'], devices => ['dev1'], tags => ['**'] } ] },
    'strict' => { keys => { primary => $KEY },
                  require_if_match => JSON::PP::true, rules => [
        { operations => ['update'], devices => ['dev1'], tags => ['**'] } ] },
} }));

$t->start_nginx(IoTHubTwin::gateway(<<'EOF'));
            iothub_twin_identity sas;
            iothub_twin_sas_host gateway.example.com;
            iothub_twin_callers %%DIR%%/callers.json;
            iothub_twin_max_body_size 1k;
            client_max_body_size 8k;
EOF

sub token {
    my ($caller) = @_;
    return $t->secret(IoTHubTwin::sas_token(
        sr => 'gateway.example.com', skn => $caller || 'backend-a',
        key => $KEY));
}

# a complete, authorized update: what must never reach the hub
sub hidden {
    my $body = '{"tags":{"smuggled":true}}';
    return "PATCH /twins/dev1 HTTP/1.1\r\nHost: gateway\r\n"
        . 'Authorization: ' . token() . "\r\n"
        . "Content-Type: application/json\r\n"
        . 'Content-Length: ' . length($body) . "\r\n\r\n$body";
}

sub head {
    my ($line, @h) = @_;
    my $text = "$line\r\nHost: gateway\r\n";
    while (my ($k, $v) = splice @h, 0, 2) {
        $text .= "$k: $v\r\n";
    }
    return "$text\r\n";
}

sub chunk {
    my ($data) = @_;
    return sprintf("%x\r\n", length $data) . "$data\r\n";
}

# the number of answers on one connection; a kept-alive connection is given
# time to answer a second request, then closed
sub answers {
    my ($bytes) = @_;
    my $r = $t->raw($bytes, timeout => 2);
    my @status = $r->{raw} =~ m{HTTP/1\.1 (\d{3}) }g;
    return @status;
}

sub refused {
    my ($name, $status, $bytes) = @_;
    $t->hub_reset;
    my @answers = answers($bytes);
    is(join(',', @answers), $status, "$name: exactly one answer, $status");
    is(scalar @{$t->hub_requests}, 0, "$name: the hub received nothing");
    my $twin = $t->hub_twin('dev1');
    ok(!exists $twin->{tags}{smuggled}, "$name: nothing was applied");
}

my $auth = token();
my $hidden = hidden();
my @json = ('Content-Type' => 'application/json');

# 413 by Content-Length: the body would be larger than the gateway accepts
my $padded = $hidden . (' ' x (3000 - length $hidden));
refused('413 by Content-Length', 413,
        head('PATCH /twins/dev1 HTTP/1.1', Authorization => $auth, @json,
             'Content-Length' => length $padded) . $padded);

# 413 by chunk size: the first chunk-size line is over client_max_body_size
refused('413 by chunk size over nginx\'s limit', 413,
        head('PATCH /twins/dev1 HTTP/1.1', Authorization => $auth, @json,
             'Transfer-Encoding' => 'chunked')
        . "100000\r\n" . $hidden);

# 413 by chunks: read whole (under nginx's limit), over the gateway's
refused('413 by chunks over the gateway\'s limit', 413,
        head('PATCH /twins/dev1 HTTP/1.1', Authorization => $auth, @json,
             'Transfer-Encoding' => 'chunked')
        . chunk($padded) . "0\r\n\r\n");

# 400: a malformed chunk size, the hidden request after it
refused('400 bad chunk', 400,
        head('PATCH /twins/dev1 HTTP/1.1', Authorization => $auth, @json,
             'Transfer-Encoding' => 'chunked')
        . "zz\r\n" . $hidden);

# 400: a malformed chunk in the middle of the body
refused('400 bad chunk after a good one', 400,
        head('PATCH /twins/dev1 HTTP/1.1', Authorization => $auth, @json,
             'Transfer-Encoding' => 'chunked')
        . chunk('{"tags":') . "1x\r\n" . $hidden);

# refusals before the body is read, with Content-Length and with chunks
my %before = (
    '400 bad ID' => [400, 'PATCH /twins/bad%2Fid HTTP/1.1',
                     Authorization => $auth, @json],
    '401 no identity' => [401, 'PATCH /twins/dev1 HTTP/1.1', @json],
    '403 policy' => [403, 'PATCH /twins/dev2 HTTP/1.1',
                     Authorization => $auth, @json],
    '405 method' => [405, 'DELETE /twins/dev1 HTTP/1.1',
                     Authorization => $auth, @json],
    '415 media type' => [415, 'PATCH /twins/dev1 HTTP/1.1',
                         Authorization => $auth,
                         'Content-Type' => 'text/plain'],
    '428 no If-Match' => [428, 'PATCH /twins/dev1 HTTP/1.1',
                          Authorization => token('strict'), @json],
    '400 two Content-Types' => [400, 'PATCH /twins/dev1 HTTP/1.1',
                                Authorization => $auth, @json, @json],
);

for my $name (sort keys %before) {
    my ($status, $line, @h) = @{$before{$name}};

    refused("$name, Content-Length body", $status,
            head($line, @h, 'Content-Length' => length $hidden) . $hidden);

    refused("$name, chunked body", $status,
            head($line, @h, 'Transfer-Encoding' => 'chunked')
            . chunk($hidden) . "0\r\n\r\n");
}

# a refusal to a caller waiting for "100 Continue": no invitation to send
# a body that is refused anyway, one answer
$t->hub_reset;
my $r = $t->raw(head('PATCH /twins/dev2 HTTP/1.1', Authorization => $auth,
                     @json, 'Expect' => '100-continue',
                     'Content-Length' => length $hidden), timeout => 2);
unlike($r->{raw}, qr/100 Continue/, '403 with Expect: no 100 Continue');
is(join(',', $r->{raw} =~ m{HTTP/1\.1 (\d{3}) }g), '403',
   '403 with Expect: one answer');
is(scalar @{$t->hub_requests}, 0, '403 with Expect: nothing forwarded');

# a body that is not JSON: read whole, refused by the validator
refused('400 validation', 400,
        head('PATCH /twins/dev1 HTTP/1.1', Authorization => $auth, @json,
             'Content-Length' => length $hidden) . $hidden);

# a request pipelined after a refused one, outside its body: the refused
# body is discarded and the next request answered as usual

for my $case (['401', 'PATCH /twins/dev1 HTTP/1.1', @json],
              ['403', 'PATCH /twins/dev2 HTTP/1.1', Authorization => $auth,
               @json])
{
    my ($status, $line, @h) = @$case;
    my $junk = '{"tags":{"discarded":true}}';

    $t->hub_reset;
    my @answers = answers(head($line, @h, 'Content-Length' => length $junk)
                          . $junk . $hidden);
    is(join(',', @answers), "$status,200",
       "$status then a pipelined update: two answers");

    my $seen = $t->hub_requests;
    is(scalar @$seen, 1, "$status then pipelined: the hub got one request");
    is($seen->[0]{body}, '{"tags":{"smuggled":true}}',
       "$status then pipelined: the pipelined one");
    IoTHubTwin::signed_by_gateway($seen, "$status then pipelined");
}

$t->finish;

done_testing;
