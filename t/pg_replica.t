# Read replicas (issue 20): worksible_postgres_replica names a streaming
# replica (util/stack.sh replica-start: pg_basebackup -R of the test
# primary, on 15443), worksible_read_replica on [max_lag=TIME] lets a
# location's GETs read there. The proof of where a read ran: with the
# replica's replay paused (pg_wal_replay_pause()), a freelancer inserted on
# the primary is missing from a list read on the replica. Asserted: reads
# within max_lag go to the replica, a location without the directive and
# one whose max_lag the paused replica passes read the primary; writes,
# idempotency records and key lookups go to the primary; a replica that
# stops is skipped, the reads that were on it answered by the primary.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(sleep time);
use Worksible::Test qw(company api_key freelancers http_config nginx_start
    nginx_stop http psql json);

my $top = $ENV{WORKSIBLE_TOP};
my $replica_port = 15443;
my ($near, $far, $off) = (1958, 1959, 1954);

sub stack { system("$top/util/stack.sh", @_, 'test') == 0 or die "stack.sh @_ failed" }

stack('replica-start');
END { local $?; system("$top/util/stack.sh", 'replica-stop', 'test') }

# on_replica($sql): as postgres, on the replica
sub on_replica {
    my ($sql) = @_;
    my $out = `psql -X -q -At -h 127.0.0.1 -p $replica_port -U postgres -d worksible -c "$sql"`;
    chomp $out;
    return $out;
}

my $company = company(plan => 'growth');
my $key = api_key($company, 'freelancers:read freelancers:write')->{key};
my ($first) = freelancers($company, 1);

# the replica has caught up with the primary's last commit
sub caught_up {
    my ($id) = @_;
    for (1 .. 100) {
        return 1 if on_replica("SELECT count(*) FROM freelancers WHERE id = '$id'") eq '1';
        sleep 0.1;
    }
    return 0;
}
ok(caught_up($first), 'the replica streams from the primary');

(my $replica = $ENV{TEST_NGINX_PG_CONNINFO}) =~ s/port=\d+/port=$replica_port/;
my $location = 'location /v1/ { worksible_auth on; worksible_idempotency on;
                                 worksible_api; }';
my $http = http_config()
    . qq{    worksible_postgres_replica "$replica application_name=nginx-replica" pool=2 check=200ms connect_timeout=1s query_timeout=2s;\n}
    . "    server { listen 127.0.0.1:$far; worksible_read_replica on max_lag=1h; $location }\n"
    . "    server { listen 127.0.0.1:$off; $location }\n";

nginx_start(name => 'pg_replica', port => $near, workers => 2, http => $http,
    server => "worksible_read_replica on max_lag=1s; $location");

# the id of the newest freelancer a list read through $port shows
sub newest {
    my ($port, $k) = @_;
    my $res = http('GET', '/v1/freelancers?limit=1',
                   { Authorization => 'Bearer ' . ($k // $key) }, port => $port);
    return "status $res->{status}" unless $res->{status} == 200;
    my $page = eval { json()->decode($res->{body}) } // {};
    return $page->{data}[0]{id} // 'none';
}

# the answers of n lists through $port, joined by spaces when they differ
sub lists {
    my ($port, $n, $k) = @_;
    my %seen = map { (newest($port, $k) => 1) } 1 .. $n;
    return join ' ', sort keys %seen;
}

sleep 0.5;    # the workers' first measures
is(lists($far, 10), $first, 'caught up: lists on the replica location show the newest freelancer');

# --- replay paused: the replica falls behind -----------------------------------

is(on_replica('SELECT pg_wal_replay_pause()'), '', 'the replica replay is paused');
my ($second) = freelancers($company, 1);
sleep 0.5;

is(lists($far, 10), $first,
   'max_lag=1h: 10 lists read on the replica (the freelancer inserted since is missing)');
is(lists($off, 10), $second, 'no worksible_read_replica: 10 lists read on the primary');

my $deadline = time + 6;
sleep 0.1 until newest($near) eq $second || time > $deadline;
is(lists($near, 10), $second,
   'max_lag=1s: once the paused replica is 1 s behind, 10 lists read on the primary');
is(lists($far, 4), $first, 'while max_lag=1h still reads the replica');

# a key made now exists on the primary only: found, its list from the replica
my $late_key = api_key($company, 'freelancers:read')->{key};
is(on_replica("SELECT count(*) FROM api_keys WHERE company_id = '$company'"), '1',
   'the new key is not on the replica');
is(lists($far, 4, $late_key), $first,
   'the new key is looked up on the primary, its list read on the replica');

# writes, and their idempotency records, go to the primary
my %h = (Authorization => "Bearer $key", 'Content-Type' => 'application/json',
         'Idempotency-Key' => "replica-$$");
my $body = qq({"email":"replica-$$\@example.com","name":"Written","country":"DE"});
my $post = http('POST', '/v1/freelancers', \%h, body => $body, port => $far);
is($post->{status}, 201, 'a POST on the replica location: 201 (the replica is read-only)');
is(psql("SELECT count(*) FROM freelancers WHERE email = 'replica-$$\@example.com'")->[0][0], 1,
   'its row is on the primary');
is(psql("SELECT count(*) FROM idempotency_records WHERE idempotency_key = 'replica-$$'")->[0][0], 1,
   'and its idempotency record');
my $again = http('POST', '/v1/freelancers', \%h, body => $body, port => $far);
ok($again->{status} == 201 && $again->{headers}{'idempotent-replayed'}
   && $again->{body} eq $post->{body}, 'its replay: the same bytes');
my $third = json()->decode($post->{body})->{id};

# --- replay resumed, then the replica stopped --------------------------------

on_replica('SELECT pg_wal_replay_resume()');
ok(caught_up($third), 'the replica catches up once resumed');
$deadline = time + 6;
sleep 0.1 until newest($near) eq $third || time > $deadline;
is(lists($near, 10), $third, 'max_lag=1s reads are current again');

stack('replica-stop');
my @after = map { newest($_ % 2 ? $far : $near) } 1 .. 20;
is(join(' ', grep { $_ ne $third } @after), '',
   'the replica stopped: 20 lists at once, every one answered (from the primary)');

my $log = Worksible::Test::slurp("$top/t/servroot_pg_replica/logs/error.log") // '';
like($log, qr/worksible replica 127\.0\.0\.1:$replica_port\/worksible unavailable: reads go to the primary/,
     'the error log says the replica is unavailable');
like($log, qr/worksible replica 127\.0\.0\.1:$replica_port\/worksible is a standby, \d+ ms behind/,
     'and when it was measured first');
nginx_stop();

# --- a replica that stops between two measures ------------------------------
#
# check=60s: the last measure (a standby, caught up) still holds when it
# stops, so reads are sent to it; each is answered by the primary.

stack('replica-start');
ok(caught_up($third), 'a fresh replica');
$http =~ s/check=200ms/check=60s/;
nginx_start(name => 'pg_replica', port => $near, workers => 2, http => $http,
    server => "worksible_read_replica on max_lag=1s; $location");
$deadline = time + 5;
sleep 0.1 until (Worksible::Test::slurp("$top/t/servroot_pg_replica/logs/error.log") // '')
                =~ /is a standby(?s:.*)is a standby/ || time > $deadline;
is(lists($far, 10), $third, 'both workers measured it: lists read');
stack('replica-stop');
@after = map { newest($_ % 2 ? $far : $near) } 1 .. 20;
is(join(' ', grep { $_ ne $third } @after), '',
   'it stopped: 20 lists at once, every one answered (from the primary)');
$log = Worksible::Test::slurp("$top/t/servroot_pg_replica/logs/error.log") // '';
like($log, qr/worksible read replica (unavailable|failed), request_id req_\w+: .*reading from the primary/,
     'the error log names the reads sent to the primary instead');

nginx_stop();
done_testing();
