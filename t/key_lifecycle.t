# A key's life through the API: created (shown once), used, revoked, then
# refused within the key cache's TTL; the key and its hash never appear in
# the database in clear, in another response, or in the error log.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(sleep time);
use Worksible::Test qw(company api_key freelancers psql_value http_config
    nginx_start nginx_stop http json);

my $company = company(plan => 'scale');
my $admin = api_key($company, 'api_keys:write freelancers:read')->{key};
freelancers($company, 2);

nginx_start(name => 'key_lifecycle', port => 1994,
    http => http_config() . "    worksible_key_cache zone=keys:1m ttl=2s;\n",
    server => 'location /v1/ { worksible_auth on; worksible_api; }');

my $res = http('POST', '/v1/api_keys',
    { Authorization => "Bearer $admin", 'Content-Type' => 'application/json',
      'Content-Length' => 0 });
is($res->{status}, 400, 'an empty body is refused');

sub post {
    my ($path, $body) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:1994') or die;
    print $s "POST $path HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        . "Authorization: Bearer $admin\r\nContent-Type: application/json\r\n"
        . 'Content-Length: ' . length($body) . "\r\n\r\n$body";
    local $/;
    my $raw = <$s>;
    my ($head, $content) = split /\r\n\r\n/, $raw, 2;
    my ($status) = $head =~ m{^HTTP/1\.1 (\d+)};
    return ($status, $content);
}

my ($status, $body) = post('/v1/api_keys', '{"scopes":["freelancers:read"],"name":"life"}');
is($status, 201, 'created');
my $created = json()->decode($body);
my $key = $created->{key};
like($key, qr/^wsk_live_[a-z0-9]{12}_[A-Za-z0-9]{32}$/, 'the key is in the response');
my ($secret) = $key =~ /_([A-Za-z0-9]{32})$/;

is(psql_value("SELECT count(*) FROM api_keys k WHERE k::text LIKE '%$secret%'"), 0,
   'no column of the row holds the secret');
is(psql_value("SELECT length(secret_hash) FROM api_keys WHERE id = '$created->{id}'"), 32,
   'only a 32-byte hash is stored');
my $hash = psql_value("SELECT encode(secret_hash, 'hex') FROM api_keys WHERE id = '$created->{id}'");

$res = http('GET', '/v1/freelancers', { Authorization => "Bearer $key" });
is($res->{status}, 200, 'the new key works');

$res = http('GET', "/v1/api_keys/$created->{id}", { Authorization => "Bearer $admin" });
is($res->{status}, 200, 'read back (api_keys:write implies read)');
unlike($res->{body}, qr/\Q$secret\E|\Q$hash\E|"key"/, 'without the key or its hash');

($status, $body) = post("/v1/api_keys/$created->{id}/revoke", '');
is($status, 200, 'revoked through the API');
unlike($body, qr/\Q$secret\E|\Q$hash\E/, 'the revoke response holds neither key nor hash');

my $t0 = time;
do { sleep 0.2; $res = http('GET', '/v1/freelancers', { Authorization => "Bearer $key" }) }
    while $res->{status} == 200 && time < $t0 + 6;
is($res->{status}, 401, 'the revoked key is refused ...');
cmp_ok(time - $t0, '<', 3, '... within the 2 s TTL');

nginx_stop();

my $log = Worksible::Test::slurp("$ENV{WORKSIBLE_TOP}/t/servroot_key_lifecycle/logs/error.log");
unlike($log, qr/\Q$secret\E/, 'the error log never holds the secret');
unlike($log, qr/\Q$hash\E/i, 'nor the hash');

done_testing();
