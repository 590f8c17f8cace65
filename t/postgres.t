# The per-worker PostgreSQL pool: a database that stops and starts again, a
# query that outlives its timeout, and clients that leave mid-query.

use strict;
use warnings;

use IO::Socket::INET;
use Test::More;
use Time::HiRes qw(sleep time);
use Worksible::Test qw(company api_key psql_value http_config nginx_start
    nginx_stop http json stack);

my $company = company(plan => 'growth');
my $key = api_key($company, 'company:read')->{key};
my $auth = { Authorization => "Bearer $key" };
my $db = $ENV{PGDATABASE};

nginx_start(name => 'postgres', port => 1987,
    http => http_config(postgres => qq{"$ENV{TEST_NGINX_PG_CONNINFO}" pool=2 connect_timeout=1s query_timeout=2s}),
    server => 'location /v1/ { worksible_auth on; worksible_api; }');

sub backends {
    return psql_value("SELECT count(*) FROM pg_stat_activity
                       WHERE application_name = 'nginx-worksible' AND datname = '$db'");
}

# a session of the owner that holds api_keys locked for $seconds
sub lock_keys {
    my ($seconds) = @_;
    my $pid = fork // die;
    if ($pid == 0) {
        exec 'psql', '-X', '-q', '-c',
            "BEGIN; LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep($seconds); COMMIT;";
    }
    # wait until the lock is held
    for (1 .. 100) {
        last if psql_value("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
                            WHERE c.relname = 'api_keys' AND l.mode = 'AccessExclusiveLock' AND l.granted") > 0;
        sleep 0.05;
    }
    return $pid;
}

my $res = http('GET', '/v1/companies/me', $auth);
is($res->{status}, 200, 'PostgreSQL up: 200');
is(json()->decode($res->{body})->{id}, $company, 'the company');

# --- PostgreSQL stopped and started again ---------------------------------

stack('pg-stop');

for my $try (1, 2) {
    $res = http('GET', '/v1/companies/me', $auth, timeout => 8);
    is($res->{status}, 503, "PostgreSQL down, request $try: 503, not a hang");
    like($res->{headers}{'retry-after'} // '', qr/^[1-9]\d*$/, 'with Retry-After in seconds');
    like($res->{body} // '', qr/"code":"service_unavailable"/, 'service_unavailable');
    unlike($res->{body} // '', qr/connect|refused|postgres/i, 'no database error text');
}

stack('pg-start');

my $deadline = time + 15;
do { sleep 0.2; $res = http('GET', '/v1/companies/me', $auth) }
    until $res->{status} == 200 || time > $deadline;
is($res->{status}, 200, 'PostgreSQL back: 200 without restarting nginx');

# --- a query longer than query_timeout ------------------------------------

my $locker = lock_keys(4);
$res = http('GET', '/v1/companies/me', $auth, timeout => 8);
is($res->{status}, 503, 'a query past query_timeout (2s) is 503');
sleep 0.8;
my ($waiting) = Worksible::Test::psql_as('postgres',
    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'nginx-worksible'
     AND wait_event_type = 'Lock'");
is($waiting, 0, 'and PostgreSQL gave up too (lock_timeout from query_timeout): no backend still waits');
waitpid($locker, 0);
$res = http('GET', '/v1/companies/me', $auth);
is($res->{status}, 200, 'and the next request works');

# --- clients that leave mid-query -----------------------------------------

my $before = backends();
ok($before >= 1 && $before <= 2, "pool connected ($before backends, pool=2)");

$locker = lock_keys(2);
for (1 .. 3) {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:1987') or die;
    print $s "GET /v1/companies/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer $key\r\n\r\n";
    sleep 0.3;
    close $s;
}
waitpid($locker, 0);

$deadline = time + 10;
my $after;
do { sleep 0.2; $after = backends() } until $after <= 2 || time > $deadline;
ok($after <= 2, "after 3 abandoned queries: $after backends, never more than the pool");

for (1 .. 4) {
    $res = http('GET', '/v1/companies/me', $auth);
    is($res->{status}, 200, "pool healthy after the aborts ($_)");
}

# --- a read-only PostgreSQL (a replica promoted badly, a failover): a write is
# 503 with Retry-After (try later), never 500; reads go on; no reload needed

my $writer = api_key($company, 'freelancers:write company:read')->{key};
sub read_only {
    my ($on) = @_;
    my (undef, $err, $rc) = Worksible::Test::psql_as('postgres', ($on
        ? 'ALTER SYSTEM SET default_transaction_read_only = on'
        : 'ALTER SYSTEM RESET default_transaction_read_only') . '; SELECT pg_reload_conf();');
    die "read_only $on: $err" if $rc;
    sleep 0.5;
}
# whatever happens, the next suites get a writable database
END { local $?; read_only(0) }
sub onboard {
    return http('POST', '/v1/freelancers', { Authorization => "Bearer $writer",
        'Content-Type' => 'application/json' },
        body => json()->encode({ email => "ro$_[0]\@example.com", name => 'Ro', country => 'DE' }));
}
read_only(1);
$res = onboard(1);
is($res->{status}, 503, 'read-only PostgreSQL: a write is 503 ...');
like($res->{body} // '', qr/"code":"service_unavailable"/, '... service_unavailable');
like($res->{headers}{'retry-after'} // '', qr/^\d+$/, '... with Retry-After');
is(http('GET', '/v1/companies/me', { Authorization => "Bearer $writer" })->{status}, 200,
   'reads go on');
read_only(0);
is(onboard(2)->{status}, 201, 'writable again: the write runs, without a reload');

my $log = Worksible::Test::slurp("$ENV{WORKSIBLE_TOP}/t/servroot_postgres/logs/error.log");
like($log, qr/query abandoned, its reply will be discarded/, 'abandoned queries were drained');

nginx_stop();
done_testing();
