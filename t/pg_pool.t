# The PostgreSQL pool under stress (issue 14): a client that leaves
# mid-query, or a query past query_timeout, costs no connection (the reply
# is drained and the connection reused); a queued request does not pay for
# another's abort; a query still running past its grace is closed and the
# server stops it by itself; background work never takes the capacity that
# requests need; libpq's multi-host conninfo with target_session_attrs.

use strict;
use warnings;

use IO::Socket::INET;
use POSIX ();
use Test::More;
use Time::HiRes qw(sleep time);
use Worksible::Test qw(company api_key psql_value psql_as http_config
    nginx_start nginx_stop http json leave);

my $company = company(plan => 'growth');
my $key = api_key($company, 'company:read freelancers:write')->{key};
my $key_id = psql_value("SELECT id FROM api_keys WHERE company_id = '$company' ORDER BY created_at DESC LIMIT 1");
my $auth = { Authorization => "Bearer $key" };
my $db = $ENV{PGDATABASE};
my $conninfo = $ENV{TEST_NGINX_PG_CONNINFO};
my $port = 1941;
my $me = "GET /v1/companies/me HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer $key\r\n\r\n";

# the module's sessions, as "pid pid ..." (one worker: one pool)
sub sessions {
    return join ' ', map { $_->[0] } @{ Worksible::Test::psql(
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'nginx-worksible'
         AND datname = '$db' ORDER BY pid") };
}

sub waiting_on_locks {
    my ($n) = psql_as('postgres', "SELECT count(*) FROM pg_stat_activity
        WHERE application_name = 'nginx-worksible' AND wait_event_type = 'Lock'");
    return $n;
}

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

# 1 while the psql of hold() has not ended (a zombie has)
sub running { return waitpid($_[0], POSIX::WNOHANG()) == 0 }

sub lock_keys {
    return hold($_[0], 'LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE',
        "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
         WHERE c.relname = 'api_keys' AND l.mode = 'AccessExclusiveLock' AND l.granted");
}

sub error_log { Worksible::Test::slurp("$ENV{WORKSIBLE_TOP}/t/servroot_pg_pool/logs/error.log") // '' }

sub start {
    my ($pg, $server) = @_;
    nginx_start(name => 'pg_pool', port => $port,
        http => http_config(postgres => qq{"$conninfo" $pg}),
        server => $server // 'location /v1/ { worksible_auth on; worksible_api; }');
}

# --- pool=1: aborts and timeouts drain the connection, never close it ----

start('pool=1 connect_timeout=1s query_timeout=2s');

is(http('GET', '/v1/companies/me', $auth, port => $port)->{status}, 200, 'pool=1: warm');
my $pool = sessions();
like($pool, qr/^\d+$/, "one session ($pool)");

# three clients leave while their lookups wait on a lock
my $locker = lock_keys(1.5);
leave($port, $me, 0.3) for 1 .. 3;
waitpid($locker, 0);

is(http('GET', '/v1/companies/me', $auth, port => $port)->{status}, 200,
   'after three clients left mid-query: 200');
is(sessions(), $pool, 'and the same session served it: the reply was drained, no reconnect');
like(error_log(), qr/query abandoned, its reply will be discarded/, 'the log says the reply is discarded');
unlike(error_log(), qr/closing its connection/, 'no connection was closed');

# A runs, B waits for the only connection; A's client leaves: B gets it
$locker = lock_keys(1);
my $a = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") or die;
print $a $me;
sleep 0.2;
my $b = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") or die;
print $b $me;
sleep 0.2;
close $a;
my $res = do { local $/; Worksible::Test::response(scalar readline($b)) };
is($res->{status}, 200, 'a request queued behind one whose client left: 200');
waitpid($locker, 0);
is(sessions(), $pool, 'on the drained connection, not a new one');

# past query_timeout: 503 for the client, the server's lock_timeout ends
# the query, the reply is drained and the connection stays
$locker = lock_keys(4);
$res = http('GET', '/v1/companies/me', $auth, port => $port, timeout => 8);
is($res->{status}, 503, 'a query past query_timeout (2s): 503');
like($res->{headers}{'retry-after'} // '', qr/^\d+$/, 'with Retry-After');
waitpid($locker, 0);
is(http('GET', '/v1/companies/me', $auth, port => $port)->{status}, 200, 'the next request: 200');
is(sessions(), $pool, 'still the same session: the timed-out query was drained');
like(error_log(), qr/query timed out after 2000 ms|canceling statement due to statement timeout/,
     'the timeout is logged (ours or the server\'s, whichever came first)');

# --- the issue's storm: 2 workers, pool=4; 400 requests with made-up key ids
# (each costs a lookup), 100 at a time, each client gone 1 ms after sending.
# Every connection survives: no reconnect storm.

nginx_stop();
nginx_start(name => 'pg_pool', port => $port, workers => 2,
    http => http_config(postgres => qq{"$conninfo" pool=4 connect_timeout=1s query_timeout=2s}),
    server => 'location /v1/ { worksible_auth on; worksible_api; }');
my @alnum = ('a' .. 'z', 0 .. 9);
for my $wave (1 .. 4) {
    my @socks;
    for (1 .. 100) {
        my $id = join '', map { $alnum[rand @alnum] } 1 .. 12;
        my $secret = join '', map { ('A' .. 'Z', 'a' .. 'z', 0 .. 9)[rand 62] } 1 .. 32;
        my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") or die "connect: $!";
        print $s "GET /v1/companies/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wsk_live_${id}_$secret\r\n\r\n";
        push @socks, $s;
    }
    sleep 0.001;
    close $_ for @socks;
    sleep 0.3;
}
for (1 .. 8) {
    is(http('GET', '/v1/companies/me', $auth, port => $port)->{status}, 200, "after the storm: 200 ($_)");
}
my @after = split ' ', sessions();
ok(@after <= 8, scalar(@after) . ' sessions, at most pool x workers (8)');
like(error_log(), qr/query abandoned, its reply will be discarded/, 'the storm abandoned queries mid-flight');
unlike(error_log(), qr/closing its connection/, 'no connection was closed by the storm');

# --- the operator turned the server's bounds off: the connection is closed
# 1 s past query_timeout, and client_connection_check_interval stops the
# backend's query though the transaction holding the lock goes on

$conninfo .= q{ options='-c statement_timeout=0 -c lock_timeout=0'};
start('pool=1 connect_timeout=1s query_timeout=1s');
is(http('GET', '/v1/companies/me', $auth, port => $port)->{status}, 200, 'no server bounds: warm');
$pool = sessions();

my $t0 = time;
$locker = lock_keys(5);
$res = http('GET', '/v1/companies/me', $auth, port => $port, timeout => 8);
is($res->{status}, 503, 'a query past query_timeout (1s): 503');
sleep 0.2 until error_log() =~ /still runs, closing its connection/ || time - $t0 > 4.5;
like(error_log(), qr/a query abandoned past query_timeout still runs, closing its connection/,
     'closed 1 s past query_timeout');
sleep 1.3;
ok(running($locker), 'the lock is still held') or diag('the machine is too slow for this check');
is(waiting_on_locks(), 0, 'and PostgreSQL stopped the query of the closed connection (client_connection_check_interval)');
waitpid($locker, 0);
is(http('GET', '/v1/companies/me', $auth, port => $port)->{status}, 200, 'a new connection serves the next request');
isnt(sessions(), $pool, 'a new session');
nginx_stop();
$conninfo = $ENV{TEST_NGINX_PG_CONNINFO};

# --- background work takes at most half the pool -------------------------
# pool=2: the request-log batch and the last_used_at batch both wait on
# locks; a request still gets the other connection at once

nginx_start(name => 'pg_pool', port => $port,
    http => http_config(postgres => qq{"$conninfo" pool=2 connect_timeout=1s query_timeout=20s})
            . "    worksible_key_cache zone=pg_pool_keys:1m ttl=60s;\n",
    server => 'location /v1/ { worksible_auth on; worksible_api; }');

my $since = psql_value('SELECT now()');
$locker = hold(9, "LOCK TABLE request_logs IN SHARE MODE; UPDATE api_keys SET name = name WHERE id = '$key_id'",
    "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
     WHERE c.relname = 'request_logs' AND l.mode = 'ShareLock' AND l.granted");
is(http('GET', '/v1/companies/me', $auth, port => $port)->{status}, 200,
   'a request: logged (its batch will wait) and its key touched (the batch will wait)');
# the log batch is sent within 1 s, last_used_at within 5 s
sleep 5.8;
$res = http('GET', '/v1/companies/me', $auth, port => $port, timeout => 10);
is($res->{status}, 200, 'with both background batches stuck, a request: 200');
ok(running($locker), '... while they are still stuck (it did not wait for them)');
is(waiting_on_locks(), 1, 'one background query waits in PostgreSQL, the other in the pool');
waitpid($locker, 0);
my $deadline = time + 10;
my $logged = "SELECT count(*) FROM request_logs WHERE company_id = '$company' AND created_at >= '$since'";
sleep 0.2 until psql_value($logged) >= 2 || time > $deadline;
is(psql_value($logged), 2, 'the stuck batches were written once the lock went: both requests logged');
nginx_stop();

# --- libpq's multi-host conninfo: the first host refuses, the second is the
# primary; a server that turns read-only is left for the writable one

my ($pg_port) = $conninfo =~ /port=(\d+)/;
(my $multi = $conninfo) =~ s/host=\S+ port=\d+/host=127.0.0.1,127.0.0.1 port=1,$pg_port/;
$multi .= ' target_session_attrs=read-write';
nginx_start(name => 'pg_pool', port => $port,
    http => http_config(postgres => qq{"$multi" pool=2 connect_timeout=1s query_timeout=2s}),
    server => 'location /v1/ { worksible_auth on; worksible_api; }');

is(http('GET', '/v1/companies/me', $auth, port => $port)->{status}, 200,
   'host=127.0.0.1,127.0.0.1 port=1,PG target_session_attrs=read-write: 200 from the second host');

sub read_only {
    my ($on) = @_;
    my (undef, $err, $rc) = psql_as('postgres', ($on
        ? 'ALTER SYSTEM SET default_transaction_read_only = on'
        : 'ALTER SYSTEM RESET default_transaction_read_only') . '; SELECT pg_reload_conf();');
    die "read_only $on: $err" if $rc;
    sleep 0.5;
}
END { local $?; read_only(0) }

sub onboard {
    return http('POST', '/v1/freelancers', { %$auth, 'Content-Type' => 'application/json' },
        port => $port,
        body => json()->encode({ email => "mh$_[0]\@example.com", name => 'Mh', country => 'DE' }));
}

read_only(1);
$res = onboard(1);
is($res->{status}, 503, 'the server turned read-only: a write is 503');
like($res->{headers}{'retry-after'} // '', qr/^\d+$/, 'with Retry-After');
like(error_log(), qr/is read-only, reconnecting/, 'the connection is left for a writable host');
$res = http('GET', '/v1/companies/me', $auth, port => $port);
is($res->{status}, 503, 'no writable host (target_session_attrs=read-write): reads are 503 too');
like(error_log(), qr/connect to .* failed: .*read-only/s, 'libpq refused the read-only server');
read_only(0);
$deadline = time + 5;
do { sleep 0.2; $res = onboard(2) } until $res->{status} == 201 || time > $deadline;
is($res->{status}, 201, 'writable again: writes within 5 s, without a reload');
is(psql_value("SELECT count(*) FROM freelancers WHERE company_id = '$company' AND email LIKE 'mh%'"), 1,
   'and the refused write never ran');

nginx_stop();
done_testing();
