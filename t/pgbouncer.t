# Behind PgBouncer 1.18 (Debian's) in transaction pooling (issue 20):
# util/stack.sh pgbouncer-start, 2 server connections for nginx's 2 x 4.
# With pgbouncer=on: no "options" startup parameter (PgBouncer refuses it),
# statements unnamed (a named one would be missing on the next server
# connection), no LISTEN (the key cache's ttl bounds revocations). The
# normal flow (auth, a list, a keyed POST and its replay) through it; the
# same without the switch (the refusal detected: the same fallback), and
# with PgBouncer dropping "options" silently (the lost named statements
# detected: sent unnamed from then on); a
# PgBouncer restart under keyed traffic: requests recover without a
# reload, no key runs twice.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(sleep time);
use Worksible::Test qw(company api_key freelancers http_config nginx_start
    nginx_stop http psql json);
use Worksible::Traffic qw(traffic_start traffic_stop traffic_check_keys);

my $top = $ENV{WORKSIBLE_TOP};
my $port = 1957;
my $bouncer = 16433;

sub stack { system("$top/util/stack.sh", @_, 'test') == 0 or die "stack.sh @_ failed" }

stack('pgbouncer-start');
END { local $?; system("$top/util/stack.sh", 'pgbouncer-stop', 'test') }

# admin($command): PgBouncer's admin console, rows of { column => value }
sub admin {
    my ($cmd) = @_;
    my @lines = `psql -X -q -A -F '\t' -h 127.0.0.1 -p $bouncer -U postgres -d pgbouncer -c '$cmd'`;
    chomp @lines;
    my @cols = split /\t/, shift @lines;
    return map { my %r; @r{@cols} = split /\t/, $_, -1; \%r }
           grep { !/^\(\d+ rows?\)$/ } @lines;
}

my ($mode) = map { $_->{value} } grep { $_->{key} eq 'pool_mode' } admin('SHOW CONFIG');
is($mode, 'transaction', 'PgBouncer pools transactions');
like((admin('SHOW VERSION'))[0]{version} // '', qr/^PgBouncer 1\.18/, 'PgBouncer 1.18');

# server transactions PgBouncer ran for the database worksible
sub xacts {
    my ($s) = grep { $_->{database} eq 'worksible' } admin('SHOW STATS');
    return $s ? $s->{total_xact_count} : 0;
}

my $company = company(plan => 'growth');
my $key = api_key($company, 'company:read freelancers:read freelancers:write')->{key};
my $auth = { Authorization => "Bearer $key" };
my @ids = freelancers($company, 3);

my $conninfo = "host=127.0.0.1 port=$bouncer dbname=worksible user=worksible_api";
my $server = 'location /v1/ { worksible_auth on; worksible_idempotency on;
                              worksible_api; }';

sub start {
    my ($switch) = @_;
    nginx_start(name => 'pgbouncer', port => $port, workers => 2,
        http => http_config(postgres => qq{"$conninfo" pool=4 connect_timeout=1s query_timeout=2s$switch})
              . "    worksible_key_cache zone=keys:1m ttl=5s;\n",
        server => $server);
}

# the ids of a list's page, space-separated
sub ids_of {
    my ($body) = @_;
    my $page = eval { json()->decode($body) } // {};
    return join ' ', map { $_->{id} } @{ $page->{data} // [] };
}

# the normal flow: 5 tests named $name
sub flow {
    my ($name) = @_;
    my $before = xacts();
    my $me = http('GET', '/v1/companies/me', $auth);
    is($me->{status}, 200, "$name: the key is found through PgBouncer") or diag($me->{body});
    # more lists than server connections, from both workers: each runs on
    # whichever server connection PgBouncer hands out
    my @lists = map { http('GET', '/v1/freelancers?limit=2', $auth) } 1 .. 20;
    # the flows' POSTs are the newest freelancers
    my $newest = join ' ', map { $_->[0] } @{ psql(
        "SELECT id FROM freelancers WHERE company_id = '$company'
         ORDER BY created_at DESC, id DESC LIMIT 2") };
    my @good = grep { $_->{status} == 200 && ids_of($_->{body}) eq $newest } @lists;
    is(scalar(@good), 20, "$name: 20 lists, each the two newest freelancers")
        or diag(join "\n", map { "$_->{status} $_->{body}" } grep { $_->{status} != 200 } @lists);
    my $idem = "bouncer-$name-$$";
    my %h = (%$auth, 'Content-Type' => 'application/json', 'Idempotency-Key' => $idem);
    my $body = qq({"email":"$idem\@example.com","name":"Bounced","country":"DE"});
    my $first = http('POST', '/v1/freelancers', \%h, body => $body);
    my $again = http('POST', '/v1/freelancers', \%h, body => $body);
    ok($first->{status} == 201 && $again->{status} == 201
       && $again->{headers}{'idempotent-replayed'} && $again->{body} eq $first->{body},
       "$name: a keyed POST 201, its replay the same bytes")
        or diag("$first->{status} $first->{body} / $again->{status} $again->{body}");
    is(psql("SELECT count(*) FROM freelancers WHERE email = '$idem\@example.com'")->[0][0], 1,
       "$name: one row");
    ok(xacts() - $before >= 22, "$name: PgBouncer ran the transactions (" . (xacts() - $before) . ')');
}

# --- pgbouncer=on ------------------------------------------------------------

start(' pgbouncer=on');
flow('pgbouncer=on');
my $log = Worksible::Test::slurp("$top/t/servroot_pgbouncer/logs/error.log") // '';
like($log, qr/pgbouncer=on, revocations reach the key cache within its ttl \(no LISTEN\)/,
     'no LISTEN, and the error log says so');
unlike($log, qr/unsupported startup parameter/, 'no startup parameter refused');
nginx_stop();

# --- no switch: the refusal is detected --------------------------------------

start('');
flow('detected');
$log = Worksible::Test::slurp("$top/t/servroot_pgbouncer/logs/error.log") // '';
like($log, qr/refuses the startup parameter "options" \(PgBouncer\?\): connecting without it/,
     'the refused "options" is logged once a worker falls back');
like($log, qr/no LISTEN "worksible_api_keys" behind PgBouncer/,
     'the revocation listener stops');
nginx_stop();

# --- options dropped silently: the lost statements detected ------------------
#
# With ignore_startup_parameters = options nothing is refused: the pool
# prepares statements until one is missing on the server connection
# PgBouncer hands out (or already there), then sends them unnamed.

stack('pgbouncer-stop');
{
    local $ENV{PGBOUNCER_IGNORE} = 'options';
    stack('pgbouncer-start');
}
start('');
flow('ignored');
$log = Worksible::Test::slurp("$top/t/servroot_pgbouncer/logs/error.log") // '';
like($log, qr/lost the prepared statement "worksible_\w+" \(a pooler in transaction mode\?\): statements go unnamed/,
     'a lost prepared statement is logged, and the list sent again unnamed');
unlike($log, qr/\[error\].*prepared statement/, 'no request failed for it');
nginx_stop();
stack('pgbouncer-stop');
stack('pgbouncer-start');

# --- PgBouncer restarted under keyed traffic --------------------------------

start(' pgbouncer=on');
traffic_start(name => 'pgbouncer', port => $port, key => $key);
sleep 1.5;
my $stopped_at = time;
stack('pgbouncer-stop');
sleep 1;
my $started_at = time;
stack('pgbouncer-start');
sleep 5;
my @reqs = traffic_stop();

my @bad = grep { $_->{status} != 200 && $_->{status} != 201 } @reqs;
ok(scalar(grep { $_->{done} < $stopped_at } @reqs) >= 3, 'traffic before the restart');
is(scalar(grep { $_->{status} != 503 } @bad), 0,
   scalar(@bad) . ' requests failed while PgBouncer was away, all with 503')
    or diag(join "\n", map { "$_->{kind} $_->{status} $_->{body}" } grep { $_->{status} != 503 } @bad);
my ($back) = sort { $a <=> $b } map { $_->{done} }
    grep { $_->{kind} eq 'POST' && $_->{status} == 201 && $_->{sent} > $started_at } @reqs;
ok(defined $back && $back - $started_at <= 3,
   sprintf('writes back %.2f s after PgBouncer (at most 3 s)', ($back // 1e9) - $started_at));
my @late = grep { $_->{sent} > $started_at + 3 } @reqs;
ok(@late >= 3 && !grep({ $_->{status} != 200 && $_->{status} != 201 } @late),
   scalar(@late) . ' requests sent 3 s after it, all succeeded, without a reload');

my %rows = map { $_->[0] => $_->[1] } @{ psql(
    "SELECT split_part(email, '\@', 1), count(*) FROM freelancers
     WHERE company_id = '$company' AND email LIKE 'pgbouncer-%' GROUP BY 1") };
my %records = map { $_->[0] => $_->[1] } @{ psql(
    "SELECT idempotency_key, count(*) FROM idempotency_records
     WHERE company_id = '$company' AND idempotency_key LIKE 'pgbouncer-%' GROUP BY 1") };
traffic_check_keys(\@reqs, \%rows, \%records);

nginx_stop();
done_testing();
