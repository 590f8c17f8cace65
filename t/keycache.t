# The shared-memory key cache: revocation within the TTL, cached keys while
# PostgreSQL is down, negative entries, a reload that keeps the zone, and
# last_used_at recorded without a write per request.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(sleep time);
use Worksible::Test qw(company api_key cli psql_value http_config
    nginx_start nginx_stop nginx_reload http stack);

my $company = company(plan => 'growth');
my $key = api_key($company, 'company:read');
my $other = api_key($company, 'company:read');
my $revoked = api_key($company, 'company:read');
(my $unknown = $key->{key}) =~ s/^wsk_live_.{12}/wsk_live_nosuchkey000/;

my $http = http_config() . <<'CONF';
    worksible_key_cache zone=keys:1m ttl=5s negative_ttl=3s;
    server {
        listen 127.0.0.1:1991;
        location / { return 200 "service\n"; }
    }
CONF

# /svc/ guards another service: it needs PostgreSQL only for the key
nginx_start(name => 'keycache', port => 1990, http => $http, workers => 2,
    server => 'location /v1/ { worksible_auth on; worksible_api; }
               location /svc/ { worksible_auth on; proxy_pass http://127.0.0.1:1991; }');

sub get {
    my ($k, $path) = @_;
    return http('GET', $path // '/v1/companies/me',
        { Authorization => "Bearer $k" }, timeout => 8);
}

# --- last_used_at ------------------------------------------------------------

is(psql_value("SELECT last_used_at FROM api_keys WHERE id = '$key->{id}'"),
   undef, 'a new key was never used');
is(get($key->{key})->{status}, 200, 'the key works') for 1 .. 5;

my $used;
my $deadline = time + 10;
do { sleep 0.5; $used = psql_value("SELECT last_used_at IS NOT NULL FROM api_keys WHERE id = '$key->{id}'") }
    until $used eq 't' || time > $deadline;
is($used, 't', 'last_used_at is recorded within seconds, in a batch');

# --- revocation is seen within the TTL -------------------------------------

is(get($revoked->{key})->{status}, 200, 'a key that will be revoked works, and is cached');
is((cli('key', 'revoke', $revoked->{id}))[0], 0, 'revoked with the CLI');

my $res = get($revoked->{key});
my $t0 = time;
$res = get($revoked->{key}) while $res->{status} == 200 && time < $t0 + 10;
is($res->{status}, 401, 'the revoked key is refused ...');
like($res->{body}, qr/"code":"api_key_revoked"/, '... as revoked');
cmp_ok(time - $t0, '<=', 5.5, '... within the 5 s TTL');

# --- PostgreSQL down: cached keys keep working ------------------------------

is(get($key->{key}, '/svc/x')->{status}, 200, 'warm: the key is cached');
is(get($unknown, '/svc/x')->{status}, 401, 'an unknown key id is refused, and cached as unknown');

stack('pg-stop');

$res = get($key->{key}, '/svc/x');
is($res->{status}, 200, 'PostgreSQL down: a cached key still reaches the service');
is($res->{body}, "service\n", 'the service answered');
is(get($unknown, '/svc/x')->{status}, 401, 'PostgreSQL down: a cached unknown key id is still 401, not 503');
is(get($other->{key}, '/svc/x')->{status}, 503, 'PostgreSQL down: a key not in the cache is 503');
is(get($key->{key})->{status}, 503, 'PostgreSQL down: our own API needs the database: 503');

# --- the zone survives a reload ---------------------------------------------

nginx_reload();
sleep 0.5;
is(get($key->{key}, '/svc/x')->{status}, 200, 'after nginx -s reload, with PostgreSQL still down: still cached');

stack('pg-start');

nginx_stop();
done_testing();
