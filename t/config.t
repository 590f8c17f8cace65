# nginx -t refuses wrong directive values with a clear message.

use strict;
use warnings;

use File::Path qw(make_path);
use Test::More;

my $top = $ENV{WORKSIBLE_TOP};
my $prefix = "$top/t/servroot_config";
make_path("$prefix/conf", "$prefix/logs");
my $secret = $ENV{TEST_NGINX_KEY_SECRET_FILE};
my $pg = qq{"$ENV{TEST_NGINX_PG_CONNINFO}"};

# nginx -t on an http{} body: (exit code, output)
sub nginx_t {
    my ($http) = @_;
    open my $fh, '>', "$prefix/conf/nginx.conf" or die;
    print $fh "load_module $ENV{TEST_NGINX_LOAD_MODULES};\n",
        "error_log logs/error.log;\npid logs/nginx.pid;\nevents {}\n",
        "http {\n$http\n}\n";
    close $fh;
    # nginx -t exits without freeing what it parsed: leaks are not errors
    # here (AddressSanitizer's other checks stay on)
    local $ENV{ASAN_OPTIONS} = ($ENV{ASAN_OPTIONS} // '') . ':detect_leaks=0';
    my $out = `$ENV{TEST_NGINX_BINARY} -t -p $prefix -c conf/nginx.conf 2>&1`;
    return ($? >> 8, $out);
}

open my $bad, '>', "$prefix/conf/bad_secret" or die;
print $bad "not hex\n";
close $bad;

my $server = 'server { listen 127.0.0.1:1989; location /v1/ { worksible_auth on; worksible_api; } }';

my @cases = (
    [ "worksible_postgres $pg; worksible_key_secret_file $secret; $server",
      0, qr/syntax is ok/, 'a good configuration' ],
    [ "worksible_postgres \"host=127.0.0.1 port=5432 nonsense=1\"; worksible_key_secret_file $secret;",
      1, qr/invalid worksible_postgres conninfo: invalid connection option "nonsense" in /, 'unknown conninfo option' ],
    [ "worksible_postgres $pg pool=0; worksible_key_secret_file $secret;",
      1, qr/invalid worksible_postgres parameter "pool=0"/, 'pool=0' ],
    [ "worksible_postgres $pg query_timeout=soon; worksible_key_secret_file $secret;",
      1, qr/invalid worksible_postgres parameter "query_timeout=soon"/, 'a bad timeout' ],
    [ "worksible_postgres $pg prepare=maybe; worksible_key_secret_file $secret;",
      1, qr/invalid worksible_postgres parameter "prepare=maybe" \(.*prepare=on\|off, pgbouncer=on\|off\)/, 'prepare is on or off' ],
    [ "worksible_postgres $pg prepare=off; worksible_key_secret_file $secret; $server",
      0, qr/syntax is ok/, 'prepare=off' ],
    [ "worksible_postgres $pg pgbouncer=on; worksible_key_secret_file $secret; $server",
      0, qr/syntax is ok/, 'pgbouncer=on' ],
    [ "worksible_postgres $pg pgbouncer=on prepare=on; worksible_key_secret_file $secret;",
      1, qr/worksible_postgres: prepare=on with pgbouncer=on/, 'pgbouncer=on refuses prepare=on' ],
    [ "worksible_postgres \"$ENV{TEST_NGINX_PG_CONNINFO} options='-c work_mem=8MB'\" pgbouncer=on; worksible_key_secret_file $secret;",
      1, qr/worksible_postgres: PgBouncer refuses the startup parameter "options" \(pgbouncer=on\)/, 'pgbouncer=on refuses a conninfo with options' ],
    [ "worksible_postgres $pg; worksible_key_secret_file $secret; worksible_postgres_replica $pg check=500ms; worksible_read_replica on max_lag=2s; $server",
      0, qr/syntax is ok/, 'a replica, read in every location' ],
    [ "worksible_postgres $pg; worksible_key_secret_file $secret; worksible_read_replica on; $server",
      1, qr/"worksible_read_replica on" needs "worksible_postgres_replica" in http\{\}/, 'worksible_read_replica without a replica' ],
    [ "worksible_postgres $pg; worksible_key_secret_file $secret; worksible_postgres_replica $pg; worksible_read_replica on max_lag=soon;",
      1, qr/invalid worksible_read_replica "max_lag=soon" \(off, or on \[max_lag=TIME\]\)/, 'a bad max_lag' ],
    [ "worksible_postgres $pg; worksible_key_secret_file $secret; worksible_postgres_replica $pg check=0;",
      1, qr/invalid worksible_postgres_replica parameter "check=0"/, 'a bad check' ],
    [ "worksible_postgres \"host=no-such-host.invalid dbname=x\";",
      1, qr/worksible_postgres host "no-such-host.invalid" not resolved/, 'an unresolvable host' ],
    [ "worksible_postgres \"host=::1 port=5432 dbname=worksible\"; worksible_key_secret_file $secret;",
      0, qr/syntax is ok/, 'an IPv6 literal host' ],
    [ "worksible_postgres \"host=127.0.0.1,::1 port=5432 dbname=worksible target_session_attrs=read-write\"; worksible_key_secret_file $secret;",
      0, qr/syntax is ok/, 'an IPv6 literal in a list of hosts' ],
    [ "worksible_postgres \"postgresql://127.0.0.1:5432,[::1]:5432/worksible?target_session_attrs=read-write\"; worksible_key_secret_file $secret;",
      0, qr/syntax is ok/, 'a multi-host URI with an IPv6 literal' ],
    [ "worksible_postgres \"host=127.0.0.1,127.0.0.1 port=5432,5433,5434\";",
      1, qr/worksible_postgres: 2 hosts but 3 ports/, 'a list of hosts and a list of ports that differ' ],
    [ "worksible_postgres \"host=127.0.0.1,no-such-host.invalid\";",
      1, qr/worksible_postgres host "no-such-host.invalid" not resolved/, 'an unresolvable host in a list' ],
    [ "worksible_postgres \"host=127.0.0.1,/run/postgresql\";",
      1, qr/a socket directory in a list of hosts/, 'a socket directory in a list' ],
    [ "worksible_key_secret_file $prefix/conf/missing;",
      1, qr/open\(\) ".*missing" failed/, 'a missing secret file' ],
    [ "worksible_key_secret_file $prefix/conf/bad_secret;",
      1, qr/must hold 64 hex characters \(32 random bytes\), or up to 4 lines of VERSION:HEX/, 'a secret file that is not 64 hex characters' ],
    [ "worksible_postgres $pg; $server",
      1, qr/"worksible_auth" needs "worksible_postgres" and "worksible_key_secret_file"/, 'auth without a secret' ],
    [ "worksible_postgres $pg; worksible_key_secret_file $secret; server { listen 127.0.0.1:1989; location /v1/ { worksible_auth on; proxy_pass http://127.0.0.1:1; worksible_api; } }",
      1, qr/"worksible_api" directive is duplicate, or follows another content handler \(proxy_pass\.\.\.\) in this location/, 'worksible_api after proxy_pass' ],
    [ "worksible_postgres $pg; worksible_key_secret_file $secret; server { listen 127.0.0.1:1989; location /v1/ { worksible_auth on; worksible_api; proxy_pass http://127.0.0.1:1; } }",
      1, qr/"worksible_api" and another content handler \(proxy_pass\.\.\.\) in one location/, 'proxy_pass after worksible_api' ],
    [ "worksible_postgres $pg; worksible_key_secret_file $secret; server { listen 127.0.0.1:1989; location /v1/ { worksible_auth on; worksible_api; worksible_health; } }",
      1, qr/"worksible_health" directive is duplicate, or follows another content handler/, 'worksible_health beside worksible_api' ],
    [ "worksible_postgres $pg; worksible_key_secret_file $secret; server { listen 127.0.0.1:1989; location / { worksible_auth off; worksible_api; } }",
      1, qr/"worksible_api" needs "worksible_auth on"/, 'worksible_api with auth off' ],
    [ "worksible_auth maybe;",
      1, qr/invalid value "maybe"/, 'a bad flag' ],
    [ "worksible_redis 127.0.0.1:6379 timeout=never;",
      1, qr/invalid worksible_redis parameter "timeout=never"/, 'a bad Redis timeout' ],
    [ "worksible_redis no-such-host.invalid;",
      1, qr/worksible_redis "no-such-host.invalid" not resolved/, 'an unresolvable Redis' ],
    [ "worksible_redis 127.0.0.1 password_file=$prefix/conf/missing;",
      1, qr/open\(\) ".*missing" failed/, 'a missing Redis password file' ],
    [ "worksible_postgres $pg; worksible_key_secret_file $secret; server { listen 127.0.0.1:1989; location / { worksible_auth on; worksible_rate_limit on; } }",
      1, qr/"worksible_rate_limit" needs "worksible_redis"/, 'rate limits without Redis' ],
    [ "worksible_postgres $pg; worksible_key_secret_file $secret; worksible_redis 127.0.0.1; server { listen 127.0.0.1:1989; worksible_auth on; worksible_scope reports:read; worksible_idempotency required; location = /health { worksible_auth off; worksible_health; } location / { root html; } }",
      0, qr/syntax is ok/, 'a location with worksible_auth off under a guarded server' ],
    [ "worksible_postgres $pg; worksible_key_secret_file $secret; worksible_redis 127.0.0.1; worksible_scope reports:read; server { listen 127.0.0.1:1989; location /r/ { worksible_auth on; root html; } location / { root html; } }",
      0, qr/syntax is ok/, 'an http-level scope, the key checked in one location' ],
    [ "worksible_postgres $pg; worksible_key_secret_file $secret; worksible_redis 127.0.0.1; server { listen 127.0.0.1:1989; worksible_scope reports:read; worksible_idempotency on; location /v1/ { worksible_auth on; worksible_api; } location / { root html; } }",
      0, qr/syntax is ok/, 'a server-level scope and idempotency, the key checked in one location' ],
    [ "worksible_postgres $pg; worksible_key_secret_file $secret; server { listen 127.0.0.1:1989; worksible_auth on; location / { worksible_auth off; worksible_scope reports:read; root html; } }",
      1, qr/"worksible_scope" needs "worksible_auth on" in its location/, 'a scope beside worksible_auth off' ],
    [ "worksible_postgres $pg; worksible_key_secret_file $secret; server { listen 127.0.0.1:1989; location / { worksible_scope reports:read; root html; } }",
      1, qr/"worksible_scope" needs "worksible_auth on" in its location/, 'a scope nothing checks' ],
    [ "worksible_deprecation 2026-02-30;",
      1, qr/invalid worksible_deprecation parameter "2026-02-30"/, 'a deprecation date that is no day' ],
    [ "worksible_deprecation 2026-06-01 sunset=2026-01-01;",
      1, qr/the sunset is before the deprecation/, 'a sunset before the deprecation' ],
    [ "worksible_deprecation 2026-06-01 gone;",
      1, qr/"gone" needs a sunset/, 'gone without a sunset' ],
    [ "worksible_deprecation 2026-06-01 sunset=2027-01-01 link=https://x/>;",
      1, qr/invalid worksible_deprecation parameter "link=/, 'a link that would break the header' ],
    [ "worksible_redis 127.0.0.1; server { listen 127.0.0.1:1989; location / { worksible_rate_limit on fail=maybe; } }",
      1, qr/invalid worksible_rate_limit "on fail=maybe"/, 'a bad fail mode' ],
    [ "worksible_postgres $pg; worksible_key_secret_file $secret; worksible_redis 127.0.0.1; server { listen 127.0.0.1:1989; location / { worksible_auth on; worksible_idempotency required ttl=1h lock=2s max_size=64k; } }",
      0, qr/syntax is ok/, 'idempotency with every parameter' ],
    [ "worksible_postgres $pg; worksible_key_secret_file $secret; server { listen 127.0.0.1:1989; location / { worksible_auth on; worksible_idempotency on; } }",
      1, qr/"worksible_idempotency" needs "worksible_redis"/, 'idempotency without Redis' ],
    [ "worksible_redis 127.0.0.1; server { listen 127.0.0.1:1989; location / { worksible_idempotency on; } }",
      1, qr/"worksible_idempotency" needs "worksible_auth on" in its location/, 'idempotency without keys' ],
    [ "worksible_idempotency sometimes;",
      1, qr/invalid worksible_idempotency "sometimes"/, 'a bad idempotency mode' ],
    [ "worksible_idempotency on lock=100ms;",
      1, qr/invalid worksible_idempotency "lock=100ms" \(on\|off\|required/, 'a lock TTL too short to renew' ],
    [ "worksible_idempotency on ttl=0;",
      1, qr/invalid worksible_idempotency "ttl=0"/, 'no retention' ],
    [ "worksible_idempotency on ttl=400d;",
      1, qr/invalid worksible_idempotency "ttl=400d"/, 'a retention past 365 days' ],
    [ "worksible_idempotency on max_size=big;",
      1, qr/invalid worksible_idempotency "max_size=big"/, 'a bad max_size' ],
);

for my $c (@cases) {
    my ($http, $fails, $re, $name) = @$c;
    my ($code, $out) = nginx_t($http);
    is($code != 0 ? 1 : 0, $fails, "$name: nginx -t " . ($fails ? 'fails' : 'passes'));
    like($out, $re, "$name: message") or diag($out);
}

done_testing();
