# A real PostgreSQL failover (issue 20): a streaming replica of the test
# primary (pg_basebackup -R, util/stack.sh replica-start) on 55443, nginx
# given both hosts with target_session_attrs=read-write. Under a steady
# stream of keyed POSTs and GETs from three clients, the primary stops
# (pg_ctl stop -m fast) and the replica is promoted (pg_ctl promote).
# Asserted: writes come back within 5 s of the promotion without a reload,
# every request sent later than that succeeds, every key ran once (one row
# and one idempotency record per key on the new primary), each key's
# replay answers the original bytes, and no worker alert. The primary is
# started again at the end (alone: the promoted copy is deleted).

use strict;
use warnings;

use POSIX ();
use Test::More;
use Time::HiRes qw(sleep time);
use Worksible::Test qw(company api_key http_config nginx_start nginx_stop
    psql);
use Worksible::Traffic qw(traffic_start traffic_stop traffic_check_keys);

my $top = $ENV{WORKSIBLE_TOP};
my $port = 1956;
my $replica_port = 55443;
my $clients = 3;

sub stack { system("$top/util/stack.sh", @_, 'test') == 0 or die "stack.sh @_ failed" }

# the replica, and the primary started again whatever happens
stack('replica-start');
END {
    local $?;
    system("$top/util/stack.sh", 'replica-stop', 'test');
    system("$top/util/stack.sh", 'pg-start', 'test');
}

my $company = company(plan => 'growth');
my $key = api_key($company, 'freelancers:read freelancers:write')->{key};

# on_replica($sql): psql against the replica (the new primary after)
sub on_replica {
    local $ENV{PGPORT} = $replica_port;
    return psql(@_);
}

# the replica streams: a company made now on the primary shows up there
my $seen;
for (1 .. 100) {
    $seen = on_replica("SELECT count(*) FROM companies WHERE id = '$company'")->[0][0];
    last if $seen;
    sleep 0.1;
}
is($seen, 1, 'the replica replays the primary (the test company is there)');
is(on_replica('SELECT pg_is_in_recovery()')->[0][0], 't', 'the replica is a standby');

(my $conninfo = $ENV{TEST_NGINX_PG_CONNINFO})
    =~ s/host=\S+ port=(\d+)/host=127.0.0.1,127.0.0.1 port=$1,$replica_port/;
$conninfo .= ' target_session_attrs=read-write';

nginx_start(name => 'pg_promotion', port => $port, workers => 2,
    http => http_config(postgres => qq{"$conninfo" pool=2 connect_timeout=1s query_timeout=2s}),
    server => 'location /v1/ { worksible_auth on; worksible_idempotency on;
                               worksible_api; }');

traffic_start(name => 'pg_promotion', port => $port, key => $key);
sleep 1.5;
my $stopped_at = time;
stack('primary-stop');
sleep 1;
my $promoted_at = time;
stack('promote');
sleep 7;
my @reqs = traffic_stop();
note(sprintf 'primary stopped, replica promoted %.1f s later', $promoted_at - $stopped_at);

my @before = grep { $_->{done} < $stopped_at } @reqs;
ok(@before >= $clients, scalar(@before) . ' requests answered before the primary stopped');
is(scalar(grep { $_->{status} != 200 && $_->{status} != 201 } @before), 0,
   'all of them succeeded');

my @outage = grep { $_->{status} != 200 && $_->{status} != 201 } @reqs;
is(scalar(grep { $_->{status} != 503 } @outage), 0,
   scalar(@outage) . ' requests failed in the failover, all with 503')
    or diag(join "\n", map { "$_->{kind} $_->{key} $_->{status} $_->{body}" }
                       grep { $_->{status} != 503 } @outage);

my ($back) = sort { $a <=> $b } map { $_->{done} }
    grep { $_->{kind} eq 'POST' && $_->{status} == 201 && !$_->{replayed}
           && $_->{sent} > $promoted_at } @reqs;
ok(defined $back && $back - $promoted_at <= 5,
   sprintf('a new write succeeds %.2f s after the promotion (at most 5 s)',
           ($back // 1e9) - $promoted_at));

my @late = grep { $_->{sent} > $promoted_at + 5 } @reqs;
ok(@late >= $clients, scalar(@late) . ' requests sent more than 5 s after the promotion');
is(scalar(grep { $_->{status} != 200 && $_->{status} != 201 } @late), 0,
   'every one of them succeeded, without a reload')
    or diag(join "\n", map { "$_->{kind} $_->{status} $_->{body}" }
                       grep { $_->{status} != 200 && $_->{status} != 201 } @late);

my %tries;
$tries{$_->{key}}++ for grep { $_->{kind} eq 'POST' } @reqs;
my @retried = grep { $tries{$_} > 1 } keys %tries;
ok(@retried >= 1, scalar(@retried) . ' keys were sent more than once (the failover hit them)');

is(on_replica('SELECT pg_is_in_recovery()')->[0][0], 'f', 'the replica is a primary now');

my %rows = map { $_->[0] => $_->[1] } @{ on_replica(
    "SELECT split_part(email, '\@', 1), count(*) FROM freelancers
     WHERE company_id = '$company' GROUP BY 1") };
my %records = map { $_->[0] => $_->[1] } @{ on_replica(
    "SELECT idempotency_key, count(*) FROM idempotency_records
     WHERE company_id = '$company' GROUP BY 1") };
traffic_check_keys(\@reqs, \%rows, \%records);

my $log = Worksible::Test::slurp("$top/t/servroot_pg_promotion/logs/error.log") // '';
like($log, qr/worksible postgres connect to \S+ failed/,
     'the error log names the failed connects of the outage');

nginx_stop();
done_testing();
