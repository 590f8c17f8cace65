#!/usr/bin/env perl
# Named prepared statements (worksible_postgres prepare=on|off, issue 16):
# a list or retrieve is parsed once per connection and executed by name
# after that; a connection made again prepares again; a Parse that fails
# answers that request (500) and leaves the connection usable; prepare=off
# sends every statement unnamed (PgBouncer in transaction pooling).
#
# What PostgreSQL did is read from its own log: while this script runs,
# worksible_api's sessions have log_min_duration_statement=0 (ALTER ROLE,
# reset at the end), so the server logs each step of the extended protocol with the statement's name
# ("parse worksible_list_freelancers: ...", "execute <unnamed>: ...").

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(sleep time);
use Worksible::Test qw(company api_key freelancers psql_value http_config
    nginx_start nginx_stop http json);

my $company = company(plan => 'growth');
my $key = api_key($company, 'freelancers:read projects:read')->{key};
my $auth = { Authorization => "Bearer $key" };
my @ids = freelancers($company, 3);

my ($datadir) = Worksible::Test::psql_as('postgres',
    "SELECT current_setting('data_directory')");
my $server_log = "$datadir/server.log";
ok(-r $server_log, "PostgreSQL's log is readable ($server_log)");

my $app = 'nginx-worksible-prepare';

sub log_statements {
    my ($on) = @_;
    my (undef, $err, $rc) = Worksible::Test::psql_as('postgres', $on
        ? 'ALTER ROLE worksible_api SET log_min_duration_statement = 0'
        : 'ALTER ROLE worksible_api RESET log_min_duration_statement');
    die "log_statements $on: $err" if $rc;
}
log_statements(1);
END { local $?; log_statements(0) }

# start(prepare): nginx with one connection that logs its statements
sub start {
    my ($prepare) = @_;
    my $conninfo = "$ENV{TEST_NGINX_PG_CONNINFO} application_name=$app";
    nginx_start(name => 'pg_prepare', port => 1941,
        http => http_config(postgres => qq{"$conninfo" pool=1 connect_timeout=1s query_timeout=2s}
                                        . ($prepare ? '' : ' prepare=off')),
        server => 'location /v1/ { worksible_auth on; worksible_api; }');
}

# the backend pid of our one connection ('' when there is none)
sub backend {
    return psql_value("SELECT string_agg(pid::text, ',') FROM pg_stat_activity
                       WHERE application_name = '$app'") // '';
}

# the log lines of backend $pid written since byte $from
sub log_of {
    my ($pid, $from) = @_;
    # the server writes its log lines asynchronously to the request
    sleep 0.2;
    my $log = Worksible::Test::slurp($server_log) // '';
    return grep { /\[$pid\]/ } split /\n/, substr($log, $from);
}

sub log_size { return -s $server_log // 0 }

sub list_ok {
    my ($name) = @_;
    my $res = http('GET', '/v1/freelancers?limit=2', $auth);
    is($res->{status}, 200, "$name: 200");
    my $body = eval { json()->decode($res->{body}) } // {};
    is(join(' ', map { $_->{id} } @{ $body->{data} // [] }), "$ids[0] $ids[1]",
       "$name: the two newest freelancers");
    return $res;
}

# --- prepare=on (the default): parsed once, executed by name --------------

start(1);
my $from = log_size();
list_ok("list $_") for 1 .. 3;
my $get = http('GET', "/v1/freelancers/$ids[2]", $auth);
is($get->{status}, 200, 'retrieve: 200');
is(eval { json()->decode($get->{body})->{id} } // '', $ids[2], 'retrieve: the freelancer');

my $pid = backend();
like($pid, qr/^\d+$/, "one connection ($pid)");
my @lines = log_of($pid, $from);
is(scalar(grep { /parse worksible_list_freelancers: SELECT worksible_list_freelancers\(/ } @lines), 1,
   'the list was parsed once, by name') or diag join "\n", @lines;
is(scalar(grep { /execute worksible_list_freelancers: / } @lines), 3,
   '... and executed by name three times');
is(scalar(grep { /parse worksible_get_freelancers: / } @lines), 1,
   'the retrieve too');
is(scalar(grep { /<unnamed>.*worksible_(list|get)_freelancers/ } @lines), 0,
   'no unnamed list or retrieve');

# --- a connection made again starts empty ---------------------------------

Worksible::Test::psql_as('postgres', "SELECT pg_terminate_backend($pid)");
my $deadline = time + 5;
my $res;
do { sleep 0.1; $res = http('GET', '/v1/freelancers?limit=2', $auth) }
    until $res->{status} == 200 || time > $deadline;
is($res->{status}, 200, 'after the backend was terminated: 200 again');
list_ok('the next list on the new connection');
my $pid2 = backend();
isnt($pid2, $pid, "a new connection ($pid2)");
@lines = log_of($pid2, $from);
is(scalar(grep { /parse worksible_list_freelancers: / } @lines), 1,
   'which parsed the list again, once') or diag join "\n", @lines;
is(scalar(grep { /prepared statement .* does not exist/ } log_of($pid2, $from)), 0,
   'and never ran a statement it had not prepared');

# --- a failed Parse answers its request and nothing else ------------------

my $sig = 'worksible_list_projects(text, integer, text, text, jsonb)';
my $renamed = 0;
END {
    local $?;
    Worksible::Test::psql_as('worksible',
        "ALTER FUNCTION worksible_list_projects_gone(text, integer, text, text, jsonb)
         RENAME TO worksible_list_projects") if $renamed;
}
my (undef, $err, $rc) = Worksible::Test::psql_as('worksible',
    "ALTER FUNCTION $sig RENAME TO worksible_list_projects_gone");
ok(!$rc, 'worksible_list_projects renamed away') or diag $err;
$renamed = !$rc;

$res = http('GET', '/v1/projects', $auth);
is($res->{status}, 500, 'a list whose Parse fails: 500');
like($res->{body} // '', qr/"code":"internal_error"/, '... internal_error');
unlike($res->{body} // '', qr/worksible_list_projects|does not exist/,
       '... without the database\'s words');
list_ok('the same connection, another statement');

(undef, $err, $rc) = Worksible::Test::psql_as('worksible',
    "ALTER FUNCTION worksible_list_projects_gone(text, integer, text, text, jsonb)
     RENAME TO worksible_list_projects");
ok(!$rc, 'worksible_list_projects back') or diag $err;
$renamed = $rc;
$res = http('GET', '/v1/projects', $auth);
is($res->{status}, 200, 'the function back: the list is prepared and runs, 200');
is(backend(), $pid2, 'all on the one connection, never closed');

nginx_stop();

# --- prepare=off: every statement unnamed ---------------------------------

start(0);
$from = log_size();
list_ok("prepare=off, list $_") for 1 .. 2;
my $pid3 = backend();
@lines = log_of($pid3, $from);
is(scalar(grep { /execute <unnamed>: SELECT worksible_list_freelancers\(/ } @lines), 2,
   'prepare=off: the list runs unnamed') or diag join "\n", @lines;
is(scalar(grep { /(parse|execute) worksible_/ } @lines), 0, '... never by name');

nginx_stop();
done_testing();
