# A revoked key stops working on every worker of every nginx at once, not
# after the key cache's ttl: PostgreSQL announces revocations (NOTIFY
# worksible_api_keys) and one worker per server listens on a connection of
# its own. Here the ttl is a minute, so only the announcement can explain a
# refusal within seconds. When the channel is down the cache is emptied as
# soon as it is back (announcements may have been missed meanwhile).

use strict;
use warnings;

use POSIX ();
use Test::More;
use Time::HiRes qw(sleep time);
use Worksible::Test qw(company api_key cli psql psql_value http_config
    nginx_start nginx_stop nginx_clone http json);

my $http = http_config() . '
    worksible_key_cache zone=keys:1m ttl=60s negative_ttl=60s;';

my $prefix = nginx_start(name => 'revocation', port => 1944, http => $http, workers => 2,
    server => 'location /v1/ { worksible_auth on; worksible_api; }');
my $stop_second = nginx_clone($prefix, 'revocation2', { 1944 => 1945 });

my $company = company(plan => 'growth');
my $admin = api_key($company, 'api_keys:write company:read');

sub get {
    my ($key, $port) = @_;
    return http('GET', '/v1/companies/me', { Authorization => "Bearer $key->{key}" },
                port => $port)->{status};
}

# cached on both servers, on both workers of each (several connections)
sub warm {
    my ($key) = @_;
    my %seen;
    $seen{ get($key, $_) }++ for (1944, 1945) x 4;
    return join ',', sort keys %seen;
}

# seconds until every server refuses key, polling both (undef: not in 10 s)
sub refused_after {
    my ($key, $t0) = @_;
    my %done;
    while (time < $t0 + 10) {
        for my $port (1944, 1945) {
            $done{$port} //= time - $t0 if get($key, $port) == 401;
        }
        return (sort { $b <=> $a } values %done)[0] if keys %done == 2;
        sleep 0.02;
    }
    return undef;
}

# (pg_stat_activity shows other roles' queries to a superuser only)
my $listeners = sub {
    my ($n) = Worksible::Test::psql_as('postgres',
        q{SELECT count(*) FROM pg_stat_activity WHERE query = 'LISTEN "worksible_api_keys"'});
    return $n;
};
my $deadline = time + 5;
sleep 0.1 while $listeners->() < 2 && time < $deadline;
is($listeners->(), 2, 'one listening connection per server (worker 0), not per worker');

# --- revoked through the API -------------------------------------------------------

my $key = api_key($company, 'company:read');
is(warm($key), '200', 'a key is cached on both servers');
my $t0 = time;
my $res = http('POST', "/v1/api_keys/$key->{id}/revoke", { Authorization => "Bearer $admin->{key}" },
               port => 1944);
is($res->{status}, 200, 'revoked through the API of the first server');
my $api = refused_after($key, $t0);
ok(defined $api, 'both servers refuse it long before the 60 s ttl');
cmp_ok($api // 99, '<', 5, sprintf('(after %.3f s)', $api // 99));

# --- revoked with the CLI -------------------------------------------------------------

$key = api_key($company, 'company:read');
is(warm($key), '200', 'another key is cached on both servers');
$t0 = time;
is((cli('key', 'revoke', $key->{id}))[0], 0, 'revoked with the CLI');
my $cli = refused_after($key, $t0);
ok(defined $cli, 'both servers refuse it long before the ttl');
cmp_ok($cli // 99, '<', 5, sprintf('(after %.3f s)', $cli // 99));

# --- revoked while its lookup runs: the lookup's answer is not cached -----------------

$key = api_key($company, 'company:read');
# hold the lookup (it reads plans) for a second and a half
my $locker = fork // die;
if (!$locker) {
    Worksible::Test::psql_as('postgres',
        'BEGIN; LOCK TABLE plans IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(1.5); COMMIT;');
    POSIX::_exit(0);
}
sleep 0.3;
my $client = fork // die;
if (!$client) {
    get($key, 1944);    # a lookup that began before the revocation
    POSIX::_exit(0);
}
sleep 0.3;
is((cli('key', 'revoke', $key->{id}))[0], 0, 'revoked while a lookup of it waits');
waitpid($_, 0) for $locker, $client;
is(get($key, 1944), 401, 'the lookup that began before does not put the key back in the cache');

# --- the channel down: missed announcements empty the cache when it is back -----------

$key = api_key($company, 'company:read');
is(warm($key), '200', 'a third key is cached');
# revoked without an announcement, then the listeners' sessions end
psql("UPDATE api_keys SET revoked_at = now() WHERE id = '$key->{id}'");
$t0 = time;
my (undef, $err, $rc) = Worksible::Test::psql_as('postgres',
    q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity
      WHERE query = 'LISTEN "worksible_api_keys"'});
is($rc, 0, 'the listening sessions are terminated') or diag($err);
my $down = refused_after($key, $t0);
ok(defined $down, 'revoked while nobody listened: still refused long before the ttl');
$deadline = time + 5;
sleep 0.1 while $listeners->() < 2 && time < $deadline;
is($listeners->(), 2, 'both servers listen again');

like(Worksible::Test::slurp("$prefix/logs/error.log") // '',
     qr/LISTEN "worksible_api_keys" lost, the key cache's ttl applies until it is back/,
     'the error log says the channel was lost');

# the cache works again after the flush
my $fresh = api_key($company, 'company:read');
is(warm($fresh), '200', 'keys are cached and served again');

$stop_second->();
nginx_stop();

diag(sprintf('revocation reached both servers in %.3f s (API), %.3f s (CLI)',
             $api // -1, $cli // -1));

done_testing();
