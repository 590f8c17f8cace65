#!/usr/bin/env perl
# The request log's SQL side (migrations/0007_request_logs.sql and the
# list's filters, worksible_list_request_logs of 0013_static_sql.sql, the
# same as the generic worksible_list): the batch insert as nginx makes
# it (worksible_api, SECURITY DEFINER, day partitions made on demand, a
# retried batch never duplicates), row-level security, the list with its
# filters and cursors, and the prune (owner only, whole days).
#
# Needs a migrated database (the test driver migrates it) and psql.
# Connection from PGHOST, PGPORT, PGDATABASE; PGUSER is the owner
# (worksible). The rows are written under ids and companies unique to this
# run, one day 400 days ago (UTC) and yesterday, so the script can run
# again on the same database.
use strict;
use warnings;
use Test::More;
use JSON::PP ();
use Worksible::Test ();
use POSIX qw(strftime);

$ENV{PGHOST}     //= '127.0.0.1';
$ENV{PGPORT}     //= '15433';
$ENV{PGDATABASE} //= 'worksible';
my $OWNER = $ENV{PGUSER} // 'worksible';
my $API   = 'worksible_api';
my $json  = JSON::PP->new->canonical;

# psql($role, $sql) and q_($s): Worksible::Test's psql_as and sql_literal
*psql = \&Worksible::Test::psql_as;
*q_ = \&Worksible::Test::sql_literal;

# as($user, $sql): stdout of $sql; any error fails the test
sub as {
    my ($user, $sql) = @_;
    my ($out, $err, $rc) = psql($user, $sql);
    fail("psql as $user failed ($rc): $err\nSQL: $sql") if $rc;
    return $out;
}

{
    my ($out, $err, $rc) = psql($OWNER,
        "SELECT to_regclass('request_logs') IS NOT NULL
                AND to_regprocedure('worksible_request_logs_insert(json)') IS NOT NULL");
    BAIL_OUT("database not migrated (0007) or unreachable: $err") if $rc || $out ne 't';
}

# ---------------------------------------------------------------- fixture
my $tag = sprintf '%d%d', $$, time;
my ($A, $B) = split /\|/, as($OWNER, "
    WITH a AS (INSERT INTO companies (name, plan, currency)
               VALUES ('rl-$tag A', 'growth', 'EUR') RETURNING id),
         b AS (INSERT INTO companies (name, plan, currency)
               VALUES ('rl-$tag B', 'growth', 'EUR') RETURNING id)
    SELECT (SELECT id FROM a), (SELECT id FROM b)");
ok($A && $B, 'fixture: two companies');

my $today = int(time / 86400) * 86400;
my $d0 = $today - 400 * 86400;       # the old day
my $d1 = $today - 86400;             # yesterday
sub day  { strftime('%Y%m%d', gmtime $_[0]) }
sub at   { my ($t, $ms) = @_; strftime('%Y-%m-%dT%H:%M:%S', gmtime $t) . sprintf('.%03dZ', $ms) }
sub whole { strftime('%Y-%m-%dT%H:%M:%SZ', gmtime $_[0]) }
my ($p0, $p1) = map { 'request_logs_p' . day($_) } $d0, $d1;

my ($kA1, $kA2, $kB) = map { "key_$tag$_" } qw(A1 A2 B);
sub rid { sprintf 'req_%s_%02d', $tag, $_[0] }

# n => [company, key, method, path, status, time, ms, ip, replayed]
my %row = (
    1  => [$A, $kA1, 'GET',  '/v1/freelancers',          200, $d0 + 10 * 3600, 100, '192.0.2.1'],
    2  => [$A, $kA2, 'POST', '/v1/freelancers',          201, $d0 + 11 * 3600, 200, '192.0.2.2'],
    3  => [$A, $kA1, 'GET',  '/v1/free_x?limit=1',       404, $d0 + 12 * 3600, 300, '2001:db8::1'],
    4  => [$B, $kB,  'GET',  '/v1/freelancers',          500, $d0 + 12 * 3600 + 1800, 0, '192.0.2.4'],
    5  => [undef, undef, 'GET', '/v1/companies/me',      401, $d0 + 13 * 3600, 0, '192.0.2.5'],
    6  => [$A, $kA1, 'GET',  '/v1/freeAx',               503, $d1 + 1 * 3600, 0, undef],
    7  => [$A, $kA2, 'GET',  '/v1/freelancers/fl_1',     200, $d1 + 2 * 3600, 0, '192.0.2.7'],
    8  => [$A, $kA1, 'POST', '/v1/payouts',              429, $d1 + 3 * 3600, 0, '203.0.113.9', 1],
    9  => [$A, $kA1, 'GET',  '/v1/100%_off',             200, $d1 + 3 * 3600, 0, '192.0.2.9'],
    10 => [$A, $kA1, 'GET',  '/v1/100xyz',               200, $d1 + 4 * 3600, 0, '192.0.2.10'],
);

sub row_json {
    my ($n) = @_;
    my ($c, $k, $m, $p, $s, $t, $ms, $ip, $replayed) = @{ $row{$n} };
    return {
        id => rid($n), company_id => $c, api_key_id => $k, method => $m,
        path => $p, status => $s, latency_ms => 10 + $n, ip => $ip,
        user_agent => ($n == 8 ? 'curl/8.5' : undef),
        idempotency_key => ($n == 8 ? "idem-$tag" : undef),
        replayed => ($replayed ? JSON::PP::true : JSON::PP::false),
        ratelimit_remaining => ($n == 5 ? undef : 100 - $n),
        created_at => at($t, $ms),
    };
}

my $batch = $json->encode([map { row_json($_) } 1 .. 10]);

# ---------------------------------------------------------------- insert
is(as($API, 'SELECT worksible_request_logs_insert(' . q_($batch) . ')'), 10,
   'insert as worksible_api: 10 rows');
is(as($OWNER, "SELECT to_regclass('$p0') IS NOT NULL, to_regclass('$p1') IS NOT NULL"),
   't|t', "the two day partitions exist ($p0, $p1)");
is(as($OWNER, "SELECT string_agg(tableoid::regclass::text || ':' || count, ',' ORDER BY tableoid::regclass::text)
               FROM (SELECT tableoid, count(*) FROM request_logs
                     WHERE id LIKE 'req\\_${tag}\\_%' GROUP BY tableoid) s"),
   "$p0:5,$p1:5", '... each row in its day');
is(as($API, 'SELECT worksible_request_logs_insert(' . q_($batch) . ')'), 0,
   'the same batch again: 0 rows');
is(as($API, 'SELECT worksible_request_logs_insert(\'[]\')'), 0, 'an empty batch: 0');
is(as($OWNER, "SELECT count(*) FROM request_logs WHERE id LIKE 'req\\_${tag}\\_%'"), 10,
   '... still 10 rows');
{
    # a retried batch with one new row: only the new one counts
    my $r11 = row_json(7);
    $r11->{id} = rid(11);
    my $partial = $json->encode([row_json(1), $r11]);
    is(as($API, 'BEGIN; SELECT worksible_request_logs_insert(' . q_($partial) . '); ROLLBACK'), 1,
       'a batch with one new row: 1 (rolled back)');

    my ($out, $err, $rc) = psql($API, 'SELECT worksible_request_logs_insert(\'{"id":1}\')');
    ok($rc && $err =~ /WS400/, 'a batch that is not an array: WS400') or diag $err;

    ($out, $err, $rc) = psql($API, "INSERT INTO request_logs (id, method, path, status, latency_ms, created_at)
                                    VALUES ('req_x', 'GET', '/', 200, 1, now())");
    ok($rc && $err =~ /42501: permission denied for table request_logs/,
       'worksible_api may not INSERT directly') or diag $err;

    ($out, $err, $rc) = psql($API, "SELECT count(*) FROM $p1");
    ok($rc && $err =~ /42501: permission denied for table $p1/,
       '... nor read a partition directly') or diag $err;
}

# ---------------------------------------------------------------- RLS
is(as($API, "SELECT set_config('worksible.company_id', " . q_($A) . ", false);
             SELECT string_agg(id, ',' ORDER BY id) FROM request_logs"),
   "$A\n" . join(',', map { rid($_) } 1, 2, 3, 6, 7, 8, 9, 10),
   'worksible_api bound to A sees A\'s rows only');
is(as($API, "SELECT set_config('worksible.company_id', " . q_($B) . ", false);
             SELECT string_agg(id, ',' ORDER BY id) FROM request_logs"),
   "$B\n" . rid(4), '... bound to B, B\'s only');
is(as($API, 'SELECT count(*) FROM request_logs'), 0,
   '... unbound, none (not even the rows without a company)');

# ---------------------------------------------------------------- list
# list_try(company, filters, limit, after, before): (stdout, stderr, rc)
# of the module's statement
sub list_try {
    my ($company, $filters, $limit, $after, $before) = @_;
    return psql($API, sprintf
        "SELECT worksible_list_request_logs(%s, %s, %s, %s, %s::jsonb)",
        q_($company), $limit // 'NULL', q_($after), q_($before),
        q_($json->encode($filters // {})));
}

# the same list by the generic worksible_list: its text, or its error
sub generic_list {
    my ($company, $filters, $limit, $after, $before) = @_;
    my ($out, $err, $rc) = psql($API, sprintf
        "SELECT worksible_list(%s, 'request_logs', 'worksible_request_log_object',
                               '/v1/request_logs', %s, %s, %s, %s::jsonb)",
        q_($company), $limit // 'NULL', q_($after), q_($before),
        q_($json->encode($filters // {})));
    return $rc ? "error: $err" : $out;
}

# list(...): the decoded list object; an error fails the test
sub list {
    my ($out, $err, $rc) = list_try(@_);
    if ($rc) {
        fail("worksible_list failed: $err");
        return { data => [] };
    }
    return $json->decode($out);
}

sub ids_of { join ' ', map { $_->{id} =~ /_(\d\d)\z/ ? $1 + 0 : $_->{id} } @{ $_[0]{data} } }

my $all = list($A);
is(ids_of($all), '10 9 8 7 6 3 2 1', 'A\'s list: newest first, ties by id');
is_deeply([@$all{qw(object has_more url)}], ['list', JSON::PP::false, '/v1/request_logs'],
          '... a list object');
is(ids_of(list($B)), '4', 'B\'s list');

{
    my $text = as($API, "SELECT set_config('worksible.company_id', " . q_($A) . ", false);
        SELECT worksible_request_log_object(l) FROM request_logs l WHERE id = " . q_(rid(8)));
    $text =~ s/\A[^\n]*\n//;
    is(join(' ', $text =~ /"(\w+)"\s*:/g),
       'object id api_key_id method path status latency_ms ip user_agent idempotency_key '
       . 'replayed ratelimit_remaining created_at', 'the request_log object: members in order');
    is_deeply($json->decode($text), {
        object => 'request_log', id => rid(8), api_key_id => $kA1, method => 'POST',
        path => '/v1/payouts', status => 429, latency_ms => 18, ip => '203.0.113.9',
        user_agent => 'curl/8.5', idempotency_key => "idem-$tag", replayed => JSON::PP::true,
        ratelimit_remaining => 92, created_at => whole($d1 + 3 * 3600) },
        '... and their values (created_at in whole seconds)');
    my $by = { map { $_->{id} => $_ } @{ $all->{data} } };
    is($by->{rid(3)}{ip}, '2001:db8::1', 'an IPv6 ip, bare');
    is($by->{rid(1)}{ip}, '192.0.2.1', 'an IPv4 ip, no /32');
    ok(exists $by->{rid(6)}{ip} && !defined $by->{rid(6)}{ip}, 'no ip: null');
    is($by->{rid(3)}{path}, '/v1/free_x?limit=1', 'the query string is kept');
    ok(!exists $by->{rid(1)}{company_id}, 'no company_id in the object');
}

my @cases = (
    [ { status => '200' },                       '10 9 7 1' ],
    [ { status => '404' },                       '3' ],
    [ { 'status[class]' => '2' },                '10 9 7 2 1' ],
    [ { 'status[class]' => '4' },                '8 3' ],
    [ { 'status[class]' => '5' },                '6' ],
    [ { 'status[class]' => '1' },                '' ],
    [ { method => 'POST' },                      '8 2' ],
    [ { api_key_id => $kA2 },                    '7 2' ],
    [ { api_key_id => $kB },                     '' ],
    [ { 'path[prefix]' => '/v1/freelancers' },   '7 2 1' ],
    [ { 'path[prefix]' => '/v1/free_' },         '3' ],
    [ { 'path[prefix]' => '/v1/100%' },          '9' ],
    [ { 'path[prefix]' => '/v1/100%_' },         '9' ],
    [ { 'path[prefix]' => '/v1/\\' },            '' ],
    [ { 'path[prefix]' => '' },                  '10 9 8 7 6 3 2 1' ],
    [ { 'created_at[gte]' => whole($d1) },       '10 9 8 7 6' ],
    [ { 'created_at[lt]' => whole($d1) },        '3 2 1' ],
    # compared as shown, in whole seconds: 1 (10:00:00.100) is not after
    # 10:00:00, and 3 (12:00:00.300) is not after 12:00:00
    [ { 'created_at[gt]' => whole($d0 + 10 * 3600),
        'created_at[lte]' => whole($d1 + 2 * 3600) }, '7 6 3 2' ],
    [ { 'created_at[gte]' => whole($d0 + 11 * 3600),
        'created_at[lte]' => whole($d0 + 12 * 3600) }, '3 2' ],
    [ { 'status[class]' => '2', api_key_id => $kA1 }, '10 9 1' ],
    [ { 'status[class]' => '2', method => 'GET',
        'created_at[lt]' => whole($d1 + 4 * 3600) },  '9 7 1' ],
);
for my $c (@cases) {
    is(ids_of(list($A, $c->[0])), $c->[1], 'filter ' . $json->encode($c->[0]));
    is((list_try($A, $c->[0]))[0], generic_list($A, $c->[0]),
       '... the same text as worksible_list');
}

for my $bad ('20', '600', '099', 'abc', '2xx', '') {
    my ($out, $err, $rc) = list_try($A, { status => $bad });
    ok($rc && $err =~ /WS400/ && $err =~ /DETAIL:\s+status\b/,
       "status '$bad': WS400 DETAIL status") or diag $err;
}
{
    my ($out, $err, $rc) = list_try($A, { latency_ms => '5' });
    ok($rc && $err =~ /WS400/ && $err =~ /DETAIL:\s+latency_ms\b/,
       'a filter the list does not have: WS400 naming it') or diag $err;
}

for my $bad ('0', '6', 'x', '55', '') {
    my ($out, $err, $rc) = list_try($A, { 'status[class]' => $bad });
    ok($rc && $err =~ /WS400/ && $err =~ /DETAIL:\s+status\b/,
       "status[class] '$bad': WS400 DETAIL status") or diag $err;
}

# cursors: [filters, limit, starting_after n, ending_before n] -> ids, has_more
my @pages = (
    [ {}, 3, undef, undef, '10 9 8', 1 ],
    [ {}, 3, 8, undef, '7 6 3', 1 ],
    [ {}, 3, 3, undef, '2 1', 0 ],
    [ {}, 1, 9, undef, '8', 1 ],
    [ {}, 2, undef, 3, '7 6', 1 ],
    [ {}, 3, undef, 9, '10', 0 ],
    [ {}, 1, undef, 8, '9', 1 ],
    [ { status => '200' }, 2, 9, undef, '7 1', 0 ],
    [ { 'status[class]' => '2' }, 2, undef, 2, '9 7', 1 ],
    [ { 'path[prefix]' => '/v1/free' }, 10, undef, 3, '7 6', 0 ],
);
for my $p (@pages) {
    my ($f, $limit, $after, $before, $ids, $more) = @$p;
    my $page = list($A, $f, $limit, defined $after ? rid($after) : undef,
                    defined $before ? rid($before) : undef);
    my $name = sprintf 'page %s limit %d %s', $json->encode($f), $limit,
        defined $after ? "starting_after $after"
        : defined $before ? "ending_before $before" : 'first';
    is(ids_of($page), $ids, $name);
    is($page->{has_more} ? 1 : 0, $more, "$name: has_more");
    my @args = ($A, $f, $limit, defined $after ? rid($after) : undef,
                defined $before ? rid($before) : undef);
    is((list_try(@args))[0], generic_list(@args), "$name: as worksible_list");
}
{
    my ($out, $err, $rc) = list_try($A, {}, 3, rid(4));
    ok($rc && $err =~ /WS400/ && $err =~ /DETAIL:\s+starting_after/,
       'B\'s row as A\'s cursor: WS400 starting_after') or diag $err;
}

# cursors that are the module's request ids (req_ + a ULID of the moment
# the id was made, just after created_at): found through the index within
# a second of that time; an id whose time is farther (or no ULID, above)
# is still found, by a look everywhere
{
    my $t = $d1 + 5 * 3600;
    my ($near, $far) = split /\|/, as($OWNER,
        "SELECT worksible_id('req', to_timestamp($t.004)), worksible_id('req', to_timestamp($t - 90000))");
    my $rows = $json->encode([
        { id => $near, company_id => $A, method => 'GET', path => '/v1/ulid', status => 200,
          latency_ms => 1, created_at => at($t, 0) },
        { id => $far, company_id => $A, method => 'GET', path => '/v1/ulid', status => 200,
          latency_ms => 1, created_at => at($t + 1, 0) },
    ]);
    is(as($API, 'SELECT worksible_request_logs_insert(' . q_($rows) . ')'), 2,
       'two rows whose ids are ULIDs');
    is(as($OWNER, "SELECT worksible_ulid_time(" . q_($near) . ") = to_timestamp($t.004)"), 't',
       'worksible_ulid_time reads the id\'s time back');
    is(ids_of(list($A, {}, 2, $near)), '10 9', 'starting_after the near id: the next page');
    is(ids_of(list($A, {}, 1, undef, $near)), $far, 'ending_before it: the newer row');
    is(ids_of(list($A, {}, 2, $far)), "$near 10",
       'starting_after the far id (its ULID a day off): found too');
    is((list_try($A, {}, 2, $far))[0], generic_list($A, {}, 2, $far), '... as worksible_list');
    as($OWNER, "DELETE FROM request_logs WHERE path = '/v1/ulid' AND company_id = " . q_($A));
}

# ---------------------------------------------------------------- prune
{
    my ($out, $err, $rc) = psql($API, "SELECT worksible_request_logs_prune('100 days')");
    ok($rc && $err =~ /42501: permission denied for function worksible_request_logs_prune/,
       'worksible_api may not prune') or diag $err;

    ($out, $err, $rc) = psql($OWNER, "SELECT worksible_request_logs_prune('-1 day')");
    ok($rc && $err =~ /22023/, 'a negative age is refused') or diag $err;

    my @dropped = split /\n/, as($OWNER, "SELECT worksible_request_logs_prune('100 days')");
    ok((grep { $_ eq $p0 } @dropped), "prune 100 days drops $p0");
    ok(!(grep { $_ eq $p1 } @dropped), "... not $p1");
    my $cut = day($today - 100 * 86400);
    ok(!(grep { !/\Arequest_logs_p(\d{8})\z/ || $1 ge $cut } @dropped),
       '... nor any day less than 100 days old') or diag "@dropped";
    is(as($OWNER, "SELECT to_regclass('$p0') IS NULL, to_regclass('$p1') IS NOT NULL"),
       't|t', "$p0 is gone, $p1 stays");
    is(ids_of(list($A)), '10 9 8 7 6', 'A\'s list: yesterday\'s rows remain');
    is(as($OWNER, "SELECT count(*) FROM worksible_request_logs_prune('100 days')"), 0,
       'prune again: nothing');
}

done_testing();
