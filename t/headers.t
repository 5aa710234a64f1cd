#!/usr/bin/perl

# One meaning per request: every header the gateway or the hub interprets
# appears once, or the request is a hub-shaped 400 and nothing is
# forwarded; an encoded body is refused; a raw fragment in the target is
# refused; and the hub receives only the headers it reads, each once.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IoTHubTwin;

my $t = IoTHubTwin->new;

$t->start_nginx(IoTHubTwin::gateway(''));

my $body = '{"tags":{"location":{"city":"Oslo"}}}';

sub send_raw {
    my ($target, @h) = @_;
    my $text = "PATCH $target HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n";
    while (my ($k, $v) = splice @h, 0, 2) {
        $text .= "$k: $v\r\n";
    }
    $text .= 'Content-Length: ' . length($body) . "\r\n\r\n$body";
    $t->hub_reset;
    return $t->raw($text);
}

sub refused {
    my ($r, $status, $code, $re, $name) = @_;
    IoTHubTwin::is_hub_error($r, $status, $code, $re, $name);
    is(scalar @{$t->hub_requests}, 0, "$name: nothing forwarded");
}

my @json = ('Content-Type' => 'application/json');

# headers given twice, in the same case and in another

refused(send_raw('/twins/dev1', @json, @json), 400, 'ArgumentInvalid',
        qr/Content-Type is given more than once/, 'two Content-Types');
refused(send_raw('/twins/dev1', @json, 'content-type' => 'text/plain'), 400,
        'ArgumentInvalid', qr/Content-Type/, 'Content-Type twice, other case');
refused(send_raw('/twins/dev1', @json, 'Request-Id' => 'a',
                 'Request-Id' => 'b'),
        400, 'ArgumentInvalid', qr/Request-Id is given more than once/,
        'two Request-Ids');
refused(send_raw('/twins/dev1', @json, 'If-Match' => '"AAAAAAAAAAE="',
                 'if-match' => '*'),
        400, 'ArgumentInvalid', undef, 'two If-Matches');
refused(send_raw('/twins/dev1', @json, 'Authorization' => 'a',
                 'Authorization' => 'b'),
        400, 'ArgumentInvalid', undef, 'two Authorizations');
refused(send_raw('/twins/dev1', @json, 'Content-Encoding' => 'gzip'), 415,
        'UnsupportedMediaType', qr/encoded/, 'Content-Encoding gzip');
refused(send_raw('/twins/dev1', @json, 'Content-Encoding' => 'identity',
                 'Content-Encoding' => 'gzip'),
        400, 'ArgumentInvalid', qr/Content-Encoding/, 'two Content-Encodings');

# a raw '#' starts a fragment, which a request target cannot hold

refused(send_raw('/twins/dev1#frag', @json), 400, 'ArgumentInvalid', undef,
        'a fragment in the target');

# what the hub receives: only the headers it reads, one of each

my $r = send_raw('/twins/dev1', @json, 'Content-Encoding' => 'identity',
                 'Request-Id' => 'req-42',
                 'User-Agent' => 'azure-iothub/1.16.6',
                 'Accept' => 'application/json',
                 'X-HTTP-Method-Override' => 'PUT',
                 'X-Forwarded-Host' => 'evil.example.com',
                 'Forwarded' => 'host=evil.example.com',
                 'Expect' => '',
                 'Cookie' => 'a=b',
                 'Proxy-Authorization' => 'Basic eDp5',
                 'x-ms-client-request-id' => 'c1');
is($r->{status}, 200, 'identity encoding and extra headers: 200');

my $seen = $t->hub_requests;
is(scalar @$seen, 1, 'forwarded once');
my %names;
$names{lc $_->[0]}++ for @{$seen->[0]{headers}};
is(join(',', sort keys %names),
   'accept,authorization,content-length,content-type,host,'
   . 'request-id,user-agent',
   'the hub got only the headers it reads');
ok(!(grep { $_ > 1 } values %names), 'each of them once');
is((IoTHubTwin::header($seen->[0], 'Request-Id'))[0], 'req-42',
   'Request-Id passed');
is((IoTHubTwin::header($seen->[0], 'Content-Type'))[0], 'application/json',
   'Content-Type passed');
IoTHubTwin::signed_by_gateway($seen, 'extra headers');

$t->finish;

done_testing;
