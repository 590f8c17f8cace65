# The PostgreSQL pool's queue and bounds (issue 14, found by a review): a
# query that waited in the queue keeps its connection through a lock wait
# (the server's statement_timeout ends it first); a 503 never answers a
# write that commits afterwards; worksible_health is served like a request,
# not behind a stuck request-log batch; queue=0 runs a query on a free
# connection.

use strict;
use warnings;

use IO::Socket::INET;
use POSIX ();
use Test::More;
use Time::HiRes qw(sleep time);
use Worksible::Test qw(company api_key psql_value http_config nginx_start
    nginx_stop http);

my $company = company(plan => 'growth');
my $key = api_key($company, 'company:read')->{key};
my $auth = { Authorization => "Bearer $key" };
my $db = $ENV{PGDATABASE};
my $conninfo = $ENV{TEST_NGINX_PG_CONNINFO};
my $port = 1963;

sub sessions {
    return join ' ', map { $_->[0] } @{ Worksible::Test::psql(
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'nginx-worksible'
         AND datname = '$db' ORDER BY pid") };
}

sub error_log { Worksible::Test::slurp("$ENV{WORKSIBLE_TOP}/t/servroot_pg_queue/logs/error.log") // '' }

# a session of the owner that runs $sql in a transaction held $seconds
sub hold {
    my ($seconds, $sql, $held) = @_;
    my $pid = fork // die;
    if ($pid == 0) {
        exec 'psql', '-X', '-q', '-c', "BEGIN; $sql; SELECT pg_sleep($seconds); COMMIT;";
    }
    for (1 .. 100) {
        last if psql_value($held) > 0;
        sleep 0.05;
    }
    return $pid;
}

sub waiting_on_locks {
    my ($n) = Worksible::Test::psql_as('postgres', "SELECT count(*) FROM pg_stat_activity
        WHERE application_name = 'nginx-worksible' AND wait_event_type = 'Lock'");
    return $n;
}

sub running { return waitpid($_[0], POSIX::WNOHANG()) == 0 }

my @alnum = ('a' .. 'z', 0 .. 9);
sub made_up {
    my $id = join '', map { $alnum[rand @alnum] } 1 .. 12;
    my $secret = join '', map { ('A' .. 'Z', 'a' .. 'z', 0 .. 9)[rand 62] } 1 .. 32;
    return "GET /v1/companies/me HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
         . "Authorization: Bearer wsk_live_${id}_$secret\r\n\r\n";
}

# --- a query that waited in the queue: the module gives up only after the
# server's own statement_timeout/lock_timeout (which start when the query
# is sent), so two lookups behind a lock with pool=1 close no connection

nginx_start(name => 'pg_queue', port => $port,
    http => http_config(postgres => qq{"$conninfo" pool=1 connect_timeout=1s query_timeout=2s}),
    server => 'location /v1/ { worksible_auth on; worksible_api; }
        location = /health { worksible_health; }');

is(http('GET', '/v1/companies/me', $auth, port => $port)->{status}, 200, 'pool=1: warm');
my $pool = sessions();
like($pool, qr/^\d+$/, "one session ($pool)");

my $locker = hold(6, 'LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE',
    "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
     WHERE c.relname = 'api_keys' AND l.mode = 'AccessExclusiveLock' AND l.granted");
my $a = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") or die;
print $a made_up();
sleep 0.5;
my $b = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") or die;
print $b made_up();
my $ra = do { local $/; Worksible::Test::response(scalar readline($a)) };
my $rb = do { local $/; Worksible::Test::response(scalar readline($b)) };
is($ra->{status}, 503, 'the running lookup past query_timeout: 503');
is($rb->{status}, 503, 'the queued one past query_timeout: 503');
sleep 3;    # both server-side lock_timeouts (2 s) have passed
waitpid($locker, 0);
is(http('GET', '/v1/companies/me', $auth, port => $port)->{status}, 200, 'then a request: 200');
unlike(error_log(), qr/still runs, closing its connection/,
       'no connection was closed: the server\'s lock_timeout ends each query');
is(sessions(), $pool, 'the same session serves it (no reconnect)');

nginx_stop();

# --- a stuck request-log batch (pool=2) does not hold up worksible_health:
# the probe is served like a request

nginx_start(name => 'pg_queue', port => $port,
    http => http_config(postgres => qq{"$conninfo" pool=2 connect_timeout=1s query_timeout=6s}),
    server => 'location /v1/ { worksible_auth on; worksible_api; }
        location = /health { worksible_health; }');

$locker = hold(14, 'LOCK TABLE request_logs IN SHARE MODE',
    "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
     WHERE c.relname = 'request_logs' AND l.mode = 'ShareLock' AND l.granted");
my $t1 = time;
is(http('GET', '/v1/companies/me', $auth, port => $port)->{status}, 200,
   'a request (its log batch will wait on the lock)');
sleep 0.2 until waiting_on_locks() or time > $t1 + 5;    # the batch is sent
is(waiting_on_locks(), 1, 'the log batch waits on the lock');
my $health = http('GET', '/health', {}, port => $port, timeout => 12);
ok(running($locker), 'the lock is still held');
unlike(error_log(), qr/rows dropped/,
       'the probe was answered while the batch was still stuck, not after PostgreSQL refused it')
    or diag("the probe took $health->{ms} ms");
is($health->{status}, 200, 'worksible_health while a log batch is stuck: 200');
like($health->{body} // '', qr/"postgres":"up"/, '"postgres":"up" (it answers requests)');
is(http('GET', '/v1/companies/me', $auth, port => $port)->{status}, 200,
   'as a request shows');
waitpid($locker, 0);

nginx_stop();

# --- a write answered 503 (Retry-After) never commits afterwards: it waited
# in the queue, then the server's own bound ends it, and its error is the
# answer

nginx_start(name => 'pg_queue', port => $port,
    http => http_config(postgres => qq{"$conninfo" pool=1 connect_timeout=1s query_timeout=2s})
            . "    worksible_key_cache zone=pg_queue_keys:1m ttl=60s;\n",
    server => 'location /v1/ { worksible_auth on; worksible_api; }');

my $wkey = api_key($company, 'company:read freelancers:write')->{key};
my $wauth = "Authorization: Bearer $wkey\r\nContent-Type: application/json\r\n";
is(http('GET', '/v1/companies/me', { Authorization => "Bearer $wkey" }, port => $port)->{status},
   200, 'pool=1: warm (the key is cached)');
sub onboard {
    my ($email) = @_;
    my $body = qq({"email":"$email","name":"Late","country":"DE"});
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") or die;
    print $s "POST /v1/freelancers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n$wauth"
        . "Content-Length: " . length($body) . "\r\n\r\n$body";
    return $s;
}
my $lock_held = "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
     WHERE c.relname = 'freelancers' AND l.mode = 'ShareLock' AND l.granted";
$locker = hold(20, 'LOCK TABLE freelancers IN SHARE MODE', $lock_held);
my $w1 = onboard('late-a@example.com');
sleep 0.5;
my $w2 = onboard('late-b@example.com');
my $r1 = do { local $/; Worksible::Test::response(scalar readline($w1)) };
my $r2 = do { local $/; Worksible::Test::response(scalar readline($w2)) };
is($r1->{status}, 503, 'the first write, past query_timeout (lock_timeout on the server): 503');
is($r2->{status}, 503, 'the second, which waited in the queue, past query_timeout: 503');
like($r2->{headers}{'retry-after'} // '', qr/^\d+$/, '... with Retry-After (try again)');
# the lock goes once the second client has its 503
Worksible::Test::psql_as('postgres', "SELECT pg_terminate_backend(l.pid) FROM pg_locks l
    JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'freelancers'
    AND l.mode = 'ShareLock' AND l.granted");
waitpid($locker, 0);
sleep 1;
is(psql_value("SELECT count(*) FROM freelancers WHERE email = 'late-b\@example.com'"), 0,
   'and it did not happen: no row (the retry would make a second one)');
nginx_stop();

# --- queue=0: a query runs on an idle connection, or one opened at once

nginx_start(name => 'pg_queue', port => $port,
    http => http_config(postgres => qq{"$conninfo" pool=2 queue=0 connect_timeout=1s query_timeout=2s}),
    server => 'location /v1/ { worksible_auth on; worksible_api; }');
my $q0 = http('GET', '/v1/companies/me', $auth, port => $port);
is($q0->{status}, 200, 'queue=0, an idle pool: the query runs, 200');
unlike(error_log(), qr/queue full \(0 waiting\)/, 'and is not refused as "queue full (0 waiting)"');
nginx_stop();
done_testing();
