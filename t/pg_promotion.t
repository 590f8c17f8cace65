# A real PostgreSQL failover (issue 20): a streaming replica of the test
# primary (pg_basebackup -R, util/stack.sh replica-start) on 15443, nginx
# given both hosts with target_session_attrs=read-write. Under a steady
# stream of keyed POSTs and GETs from three clients, the primary stops and
# the replica is promoted (pg_ctl promote), twice: a fast stop with
# asynchronous replication, then an immediate stop (a crash) with the
# replica synchronous (synchronous_standby_names, synchronous_commit=on:
# what a write acknowledged must survive). Asserted each time: writes come
# back within 5 s of the promotion without a reload, every request sent
# later than that succeeds, failures meanwhile are 503, every key ran once
# (one row and one idempotency record per key on the new primary), each
# key's replay answers the original bytes, and no worker alert. The
# primary is started again at the end, alone and asynchronous.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(sleep time);
use Worksible::Test qw(company api_key http_config nginx_start nginx_stop
    psql psql_as);
use Worksible::Traffic qw(traffic_start traffic_stop traffic_check_keys);

my $top = $ENV{WORKSIBLE_TOP};
my $port = 1956;
my $replica_port = 15443;
my $clients = 3;

sub stack { system("$top/util/stack.sh", @_, 'test') == 0 or die "stack.sh @_ failed" }

# the primary's replication settings of a round (undef: its defaults)
sub synchronous {
    my ($on) = @_;
    my (undef, $err, $rc) = psql_as('postgres', $on
        ? "ALTER SYSTEM SET synchronous_standby_names = '*';
           ALTER SYSTEM SET synchronous_commit = on; SELECT pg_reload_conf();"
        : "ALTER SYSTEM RESET synchronous_standby_names;
           ALTER SYSTEM RESET synchronous_commit; SELECT pg_reload_conf();");
    die "synchronous $on: $err" if $rc;
}

# the primary started again whatever happens, alone and asynchronous
END {
    local $?;
    system("$top/util/stack.sh", 'replica-stop', 'test');
    system("$top/util/stack.sh", 'pg-start', 'test');
    synchronous(0);
}

# on_replica($sql): psql against the replica (the new primary after)
sub on_replica {
    local $ENV{PGPORT} = $replica_port;
    return psql(@_);
}

(my $conninfo = $ENV{TEST_NGINX_PG_CONNINFO})
    =~ s/host=\S+ port=(\d+)/host=127.0.0.1,127.0.0.1 port=$1,$replica_port/;
$conninfo .= ' target_session_attrs=read-write';

sub round {
    my ($name, $mode, $sync) = @_;

    stack('replica-start');
    my $company = company(plan => 'growth');
    my $key = api_key($company, 'freelancers:read freelancers:write')->{key};

    # the replica streams: the company made now on the primary is there
    my $seen;
    for (1 .. 100) {
        $seen = on_replica("SELECT count(*) FROM companies WHERE id = '$company'")->[0][0];
        last if $seen;
        sleep 0.1;
    }
    is($seen, 1, "$name: the replica replays the primary (the test company is there)");
    is(on_replica('SELECT pg_is_in_recovery()')->[0][0], 't', "$name: the replica is a standby");

    if ($sync) {
        # set on the primary only (the copy would otherwise wait for a
        # standby of its own once promoted)
        synchronous(1);
        my $state = '';
        for (1 .. 100) {
            ($state) = psql_as('postgres', 'SELECT sync_state FROM pg_stat_replication');
            last if $state eq 'sync';
            sleep 0.1;
        }
        is($state, 'sync', "$name: the replica is synchronous");
    }

    nginx_start(name => 'pg_promotion', port => $port, workers => 2,
        http => http_config(postgres => qq{"$conninfo" pool=2 connect_timeout=1s query_timeout=2s}),
        server => 'location /v1/ { worksible_auth on; worksible_idempotency on;
                                   worksible_api; }');

    traffic_start(name => "pg_promotion_$mode", port => $port, key => $key);
    sleep 1.5;
    my $stopped_at = time;
    {
        local $ENV{PRIMARY_STOP_MODE} = $mode;
        stack('primary-stop');
    }
    sleep 1;
    my $promoted_at = time;
    stack('promote');
    sleep 7;
    my @reqs = traffic_stop();
    note(sprintf "$name: primary stopped, replica promoted %.1f s later",
         $promoted_at - $stopped_at);

    my @before = grep { $_->{done} < $stopped_at } @reqs;
    ok(@before >= $clients, "$name: " . scalar(@before) . ' requests answered before the primary stopped');
    is(scalar(grep { $_->{status} != 200 && $_->{status} != 201 } @before), 0,
       "$name: all of them succeeded");

    my @outage = grep { $_->{status} != 200 && $_->{status} != 201 } @reqs;
    is(scalar(grep { $_->{status} != 503 } @outage), 0,
       "$name: " . scalar(@outage) . ' requests failed in the failover, all with 503')
        or diag(join "\n", map { "$_->{kind} $_->{key} $_->{status} $_->{body}" }
                           grep { $_->{status} != 503 } @outage);

    my ($back) = sort { $a <=> $b } map { $_->{done} }
        grep { $_->{kind} eq 'POST' && $_->{status} == 201 && !$_->{replayed}
               && $_->{sent} > $promoted_at } @reqs;
    ok(defined $back && $back - $promoted_at <= 5,
       sprintf("$name: a new write succeeds %.2f s after the promotion (at most 5 s)",
               ($back // 1e9) - $promoted_at));

    my @late = grep { $_->{sent} > $promoted_at + 5 } @reqs;
    ok(@late >= $clients, "$name: " . scalar(@late) . ' requests sent more than 5 s after the promotion');
    is(scalar(grep { $_->{status} != 200 && $_->{status} != 201 } @late), 0,
       "$name: every one of them succeeded, without a reload")
        or diag(join "\n", map { "$_->{kind} $_->{status} $_->{body}" }
                           grep { $_->{status} != 200 && $_->{status} != 201 } @late);

    my %tries;
    $tries{$_->{key}}++ for grep { $_->{kind} eq 'POST' } @reqs;
    my @retried = grep { $tries{$_} > 1 } keys %tries;
    ok(@retried >= 1, "$name: " . scalar(@retried) . ' keys were sent more than once (the failover hit them)');

    is(on_replica('SELECT pg_is_in_recovery()')->[0][0], 'f', "$name: the replica is a primary now");

    my %rows = map { $_->[0] => $_->[1] } @{ on_replica(
        "SELECT split_part(email, '\@', 1), count(*) FROM freelancers
         WHERE company_id = '$company' GROUP BY 1") };
    my %records = map { $_->[0] => $_->[1] } @{ on_replica(
        "SELECT idempotency_key, count(*) FROM idempotency_records
         WHERE company_id = '$company' GROUP BY 1") };
    traffic_check_keys(\@reqs, \%rows, \%records);

    my $log = Worksible::Test::slurp("$top/t/servroot_pg_promotion/logs/error.log") // '';
    like($log, qr/worksible postgres connect to \S+ failed/,
         "$name: the error log names the failed connects of the outage");

    nginx_stop();

    # the old primary again, alone (the promoted copy has diverged)
    stack('replica-stop');
    stack('pg-start');
    synchronous(0);
}

round('fast stop', 'fast', 0);
round('crash, synchronous replica', 'immediate', 1);

done_testing();
