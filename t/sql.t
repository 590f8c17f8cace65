#!/usr/bin/env perl
# The SQL layer as the module sees it: connected as worksible_api (no
# BYPASSRLS, owns nothing), through the functions of migrations/0003_api.sql.
#
# Needs a migrated database (the test driver migrates it; demo data is not
# loaded) and psql. Connection from PGHOST, PGPORT, PGDATABASE; PGUSER is the
# owner (worksible) that writes the fixture; the checks run as worksible_api.
# The fixture (two companies, their freelancers with fixed created_at, a
# project, an API key) is written in one statement under names unique to
# this run, so the script can run again and again on the same database.
use strict;
use warnings;
use Test::More;
use JSON::PP ();
use File::Temp ();
use Worksible::Test ();

$ENV{PGHOST}     //= '127.0.0.1';
$ENV{PGPORT}     //= '15433';
$ENV{PGDATABASE} //= 'worksible';
my $OWNER = $ENV{PGUSER} // 'worksible';
my $API   = 'worksible_api';
my $json  = JSON::PP->new;

# psql($role, $sql) and q_($s): Worksible::Test's psql_as and sql_literal
*psql = \&Worksible::Test::psql_as;
*q_ = \&Worksible::Test::sql_literal;

# api($sql): stdout of $sql as worksible_api; any error fails the test
sub api {
    my ($sql) = @_;
    my ($out, $err, $rc) = psql($API, $sql);
    diag("psql as $API failed ($rc): $err\nSQL: $sql") if $rc;
    return $out;
}

sub list_call {
    my ($company, $limit, $after, $before, $status) = @_;
    my $out = api(sprintf 'SELECT worksible_freelancers_list(%s, %s, %s, %s, %s)',
                  q_($company), $limit // 'NULL', q_($after), q_($before), q_($status));
    return $json->decode($out);
}

sub ids { [map { $_->{id} } @{ $_[0]{data} }] }

# ---------------------------------------------------------------- the schema
{
    my ($out, $err, $rc) = psql($OWNER,
        "SELECT to_regclass('freelancers') IS NOT NULL
                AND to_regprocedure('worksible_freelancers_list(text,integer,text,text,text)') IS NOT NULL");
    BAIL_OUT("database not migrated (0001..0003) or unreachable: $err") if $rc || $out ne 't';
    ($out) = psql($OWNER, 'SELECT rolbypassrls FROM pg_roles WHERE rolname = current_user');
    BAIL_OUT("$OWNER needs BYPASSRLS (util/stack.sh creates it so)") if $out ne 't';
}

# ---------------------------------------------------------------- fixture
# Company A: 23 freelancers, number g created at 2024-03-01 12:00 UTC + g
# hours, except that numbers 10 to 13 share 22:00 (ties broken by id);
# status by g % 4: 0 and 3 active (11), 1 invited (6), 2 offboarded (6);
# every third has an hourly rate of 5000 + g EUR cents.
# Company B: 3 freelancers. A also gets a project and an API key.
my $tag    = "sqlt-$$-" . time;
my $key_id = substr(unpack('H*', pack('N2', $$, time)) . '0' x 12, 0, 12);
my ($A, $B, $prj, $key);
{
    my $sql = <<'SQL';
WITH a AS (INSERT INTO companies (name, plan, currency)
           VALUES (:'tag' || ' A', 'growth', 'EUR') RETURNING id),
     b AS (INSERT INTO companies (name, plan, currency)
           VALUES (:'tag' || ' B', 'growth', 'EUR') RETURNING id),
     fa AS (INSERT INTO freelancers (company_id, email, name, country, status,
                                     hourly_rate, currency, created_at, updated_at)
            SELECT a.id, 'a' || g || '@example.com', 'A Freelancer ' || g, 'FR',
                   (ARRAY['active', 'invited', 'offboarded', 'active'])[1 + g % 4],
                   CASE WHEN g % 3 = 0 THEN 5000 + g END,
                   CASE WHEN g % 3 = 0 THEN 'EUR' END, t.ts, t.ts + interval '1 day'
            FROM a, generate_series(1, 23) AS g,
                 LATERAL (SELECT timestamptz '2024-03-01 12:00:00+00'
                                 + CASE WHEN g BETWEEN 10 AND 13 THEN 10 ELSE g END
                                   * interval '1 hour' AS ts) AS t
            RETURNING 1),
     fb AS (INSERT INTO freelancers (company_id, email, name, country, status, created_at)
            SELECT b.id, 'b' || g || '@example.com', 'B Freelancer ' || g, 'JP', 'active',
                   timestamptz '2024-03-01 12:30:00+00' + g * interval '1 hour'
            FROM b, generate_series(1, 3) AS g
            RETURNING 1),
     p AS (INSERT INTO projects (company_id, name) SELECT a.id, 'A project' FROM a
           RETURNING id),
     k AS (INSERT INTO api_keys (company_id, key_id, name, secret_hash, secret_version, scopes)
           SELECT a.id, :'key_id', 'sql.t', decode(repeat('ab', 32), 'hex'), 1,
                  '{freelancers:read}'
           FROM a RETURNING id)
SELECT (SELECT id FROM a), (SELECT id FROM b), (SELECT id FROM p), (SELECT id FROM k),
       (SELECT count(*) FROM fa), (SELECT count(*) FROM fb);
SQL
    my $in = File::Temp->new(SUFFIX => '.sql');
    print $in $sql;
    close $in;
    my $out = `psql -X -q -At -v ON_ERROR_STOP=1 -U $OWNER -v tag=$tag -v key_id=$key_id -f $in 2>&1`;
    BAIL_OUT("fixture failed: $out") if $?;
    $out =~ s/\n\z//;
    my ($na, $nb);
    ($A, $B, $prj, $key, $na, $nb) = split /\|/, $out;
    is("$na/$nb", '23/3', 'fixture: 23 freelancers for A, 3 for B');
}

# A's freelancers in API order, computed here, not by SQL: created_at
# newest first, then id descending.
my (@all, %status_of, @b_ids);
{
    my ($out) = psql($OWNER, "SELECT id, status, extract(epoch FROM created_at)::bigint
                              FROM freelancers WHERE company_id = " . q_($A));
    my @rows = map { [split /\|/] } split /\n/, $out;
    @all = map { $_->[0] } sort { $b->[2] <=> $a->[2] or $b->[0] cmp $a->[0] } @rows;
    %status_of = map { $_->[0] => $_->[1] } @rows;
    ($out) = psql($OWNER, "SELECT id FROM freelancers WHERE company_id = " . q_($B));
    @b_ids = split /\n/, $out;
}
is(scalar @all, 23, 'A has 23 freelancers');
is(scalar @b_ids, 3, 'B has 3 freelancers');

# ---------------------------------------------------------------- RLS
is(api('SELECT count(*) FROM freelancers'), '0',
   'worksible_api sees no freelancer without worksible.company_id');
is(api('SELECT count(*) FROM companies'), '0', '... and no company');
is(api('SELECT count(*) FROM api_keys'), '0', '... and no API key');
is(api("SELECT set_config('worksible.company_id', " . q_($A) . ", false);
        SELECT count(*) FROM freelancers;
        SELECT count(*) FROM freelancers WHERE company_id = " . q_($B)),
   "$A\n23\n0", 'with the setting: exactly A\'s 23 freelancers, none of B\'s');

{
    my ($out, $err, $rc) = psql($API, "SELECT set_config('worksible.company_id', " . q_($A) . ", false);
        INSERT INTO freelancers (company_id, email, name, country)
        VALUES (" . q_($B) . ", 'x\@example.com', 'Intruder', 'FR')");
    ok($rc && $err =~ /42501: new row violates row-level security policy for table "freelancers"/,
       'INSERT of another company\'s freelancer fails under RLS') or diag $err;

    ($out, $err, $rc) = psql($API, "INSERT INTO freelancers (company_id, email, name, country)
        VALUES (" . q_($A) . ", 'x\@example.com', 'Intruder', 'FR')");
    ok($rc && $err =~ /row-level security/, '... and so does any INSERT without the setting')
        or diag $err;

    ($out, $err, $rc) = psql($API, "BEGIN;
        SELECT set_config('worksible.company_id', " . q_($A) . ", true);
        INSERT INTO freelancers (company_id, email, name, country)
        VALUES (" . q_($A) . ", 'x\@example.com', 'Own', 'FR') RETURNING left(id, 3);
        ROLLBACK");
    is($out, "$A\nfl_", '... while its own company\'s INSERT passes (rolled back)') or diag $err;

    ($out, $err, $rc) = psql($API, "SELECT set_config('worksible.company_id', " . q_($A) . ", false);
        DELETE FROM freelancers");
    ok($rc && $err =~ /42501: permission denied for table freelancers/,
       'worksible_api may not DELETE freelancers') or diag $err;

    ($out, $err, $rc) = psql($API, "SELECT set_config('worksible.company_id', " . q_($A) . ", false);
        UPDATE freelancers SET company_id = " . q_($B));
    ok($rc && $err =~ /42501: permission denied/, '... nor move one to another company')
        or diag $err;

    ($out, $err, $rc) = psql($API, "INSERT INTO request_logs (id, method, path, status,
                                     latency_ms, created_at)
        VALUES ('req_x', 'GET', '/', 200, 1, now())");
    ok($rc && $err =~ /42501: permission denied for table request_logs/,
       '... nor write request_logs directly (only worksible_request_logs_insert does)')
        or diag $err;

    ($out, $err, $rc) = psql($OWNER, "INSERT INTO contracts (company_id, project_id, freelancer_id,
                                                           type, rate, currency)
        VALUES (" . join(', ', map { q_($_) } $A, $prj, $b_ids[0]) . ", 'hourly', 9000, 'EUR')");
    ok($rc && $err =~ /23503: insert or update on table "contracts" violates foreign key constraint/,
       'even the owner cannot point A\'s contract at B\'s freelancer') or diag $err;

    ($out, $err, $rc) = psql($OWNER, "INSERT INTO freelancers (company_id, email, name, country,
                                                             hourly_rate, currency)
        VALUES (" . q_($A) . ", 'x\@example.com', 'Big', 'FR', 9007199254740992, 'EUR')");
    ok($rc && $err =~ /23514: .*check constraint "freelancers_hourly_rate_check"/,
       'money above 2^53-1 is refused') or diag $err;

    ($out, $err, $rc) = psql($OWNER, "INSERT INTO freelancers (company_id, email, name, country,
                                                             hourly_rate)
        VALUES (" . q_($A) . ", 'x\@example.com', 'No currency', 'FR', 9000)");
    ok($rc && $err =~ /23514: .*check constraint "freelancers_check"/,
       'an hourly_rate without currency is refused') or diag $err;

    ($out, $err, $rc) = psql($OWNER, "INSERT INTO freelancers (company_id, email, name, country)
        VALUES (" . q_($A) . ", 'x\@example.com', 'Wrong country', 'UK')");
    ok($rc && $err =~ /23503: .*freelancers_country_fkey/, "country 'UK' is not ISO 3166-1")
        or diag $err;
}

# ---------------------------------------------------------------- key lookup
is(api("SELECT api_key_id, company_id, secret_version, scopes, ip_allowlist, expires_at,
               revoked, plan, api_access, rate_limit, rate_window
        FROM worksible_key_lookup('$key_id')"),
   "$key|$A|1|{freelancers:read}|{}||f|growth|t|600|60",
   'worksible_key_lookup works as worksible_api, before any company is set');
is(api("SELECT encode(secret_hash, 'hex') FROM worksible_key_lookup('$key_id')"),
   'ab' x 32, '... and returns the hash');
is(api("SELECT count(*) FROM worksible_key_lookup('zzzzzzzzzzzz')"), '0',
   '... and no row for an unknown key id');

# ---------------------------------------------------------------- company
{
    my $raw = api('SELECT worksible_company_me(' . q_($A) . ')');
    like($raw, qr/^\{"object" : "company", "id" : /, 'company: "object" first');
    my $c = $json->decode($raw);
    is_deeply([sort keys %$c], [sort qw(object id name plan currency created_at updated_at)],
              'company: exactly its fields');
    is_deeply([@$c{qw(object id name plan currency)}], ['company', $A, "$tag A", 'growth', 'EUR'],
              'company: values');
    like($c->{created_at}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'company: RFC 3339 UTC time');
    is(api('SELECT worksible_company_me(' . q_($B) . ') ->> \'id\''), $B, 'company: B is B');
    is(api("SELECT worksible_company_me('cmp_nope') IS NULL"), 't', 'company: unknown -> NULL');
}

# ---------------------------------------------------------------- freelancer object
{
    # number 9 of A: created 2024-03-01 21:00, invited (9 % 4 = 1), 5009 EUR
    my ($id9) = psql($OWNER, "SELECT id FROM freelancers WHERE company_id = " . q_($A)
                             . " AND email = 'a9\@example.com'");
    my $raw = api('SELECT worksible_freelancer_get(' . q_($A) . ', ' . q_($id9) . ')');
    my @keys = $raw =~ /"(\w+)" : /g;
    is_deeply(\@keys, [qw(object id email name country status hourly_rate currency
                          created_at updated_at)], 'freelancer: members in order, "object" first');
    like($raw, qr/"hourly_rate" : 5009, "currency" : "EUR"/, 'freelancer: money is a JSON integer');
    is_deeply($json->decode($raw), {
        object => 'freelancer', id => $id9, email => 'a9@example.com', name => 'A Freelancer 9',
        country => 'FR', status => 'invited', hourly_rate => 5009, currency => 'EUR',
        created_at => '2024-03-01T21:00:00Z', updated_at => '2024-03-02T21:00:00Z',
    }, 'freelancer: exact object');

    my ($id8) = psql($OWNER, "SELECT id FROM freelancers WHERE company_id = " . q_($A)
                             . " AND email = 'a8\@example.com'");
    like(api('SELECT worksible_freelancer_get(' . q_($A) . ', ' . q_($id8) . ')'),
         qr/"hourly_rate" : null, "currency" : null/, 'freelancer: no rate -> nulls');

    is(api('SELECT worksible_freelancer_get(' . q_($A) . ', ' . q_($b_ids[0]) . ') IS NULL'), 't',
       'get: another company\'s id -> NULL');
    is(api('SELECT worksible_freelancer_get(' . q_($B) . ', ' . q_($id9) . ') IS NULL'), 't',
       'get: ... in both directions');
    is(api('SELECT worksible_freelancer_get(' . q_($A) . ", 'fl_00000000000000000000000000') IS NULL"),
       't', 'get: unknown id -> NULL');
    is(api('SELECT worksible_freelancer_get(' . q_($A) . ", 'not an id''; --') IS NULL"), 't',
       'get: malformed id -> NULL');
}

# ---------------------------------------------------------------- list
{
    my $l = list_call($A, 100);
    is_deeply(ids($l), \@all, 'list: newest first, ties by id descending');
    is_deeply([@$l{qw(object has_more url)}], ['list', JSON::PP::false, '/v1/freelancers'],
              'list: envelope');
    like(api('SELECT worksible_freelancers_list(' . q_($A) . ', 1, NULL, NULL, NULL)'),
         qr/^\{"object" : "list", "data" : \[\{"object" : "freelancer", /, 'list: "object" first');

    $l = list_call($A, undef);
    is_deeply(ids($l), [@all[0 .. 19]], 'list: default limit 20');
    ok($l->{has_more}, '... has_more');
    ok(!list_call($A, 23)->{has_more}, 'list: limit = count -> has_more false');
    ok(list_call($A, 22)->{has_more}, 'list: limit = count - 1 -> has_more true');

    # Walk the whole list both ways at several page sizes (pages then start
    # and end inside the created_at tie of positions 10..13 too): forward
    # with starting_after = the last id of each page, backward from the
    # oldest with ending_before = the first id of each page.
    my $cursor;
    for my $n (1, 2, 3, 5) {
        my (@seen, @more);
        $cursor = undef;
        for (1 .. 30) {
            $l = list_call($A, $n, $cursor);
            push @seen, @{ ids($l) };
            push @more, $l->{has_more} ? 1 : 0;
            last unless $l->{has_more};
            $cursor = $seen[-1];
        }
        my $pages = int((23 + $n - 1) / $n);
        is_deeply(\@seen, \@all, "limit $n, starting_after walk: every freelancer once, in order");
        is_deeply(\@more, [(1) x ($pages - 1), 0],
                  "... $pages pages, has_more false only on the last");

        my @pages;
        @more = ();
        $cursor = $all[-1];
        for (1 .. 30) {
            $l = list_call($A, $n, undef, $cursor);
            unshift @pages, ids($l);
            push @more, $l->{has_more} ? 1 : 0;
            last unless $l->{has_more};
            $cursor = $l->{data}[0]{id};
        }
        is_deeply($pages[-1], [@all[22 - $n .. 21]],
                  "limit $n, ending_before the oldest: the page just before it, newest first");
        is_deeply([map { @$_ } @pages], [@all[0 .. 21]],
                  "limit $n, ending_before walk: every newer freelancer once, in order");
        $pages = int((22 + $n - 1) / $n);
        is_deeply(\@more, [(1) x ($pages - 1), 0],
                  "... $pages pages, has_more false only at the newest");
    }

    # the tie: numbers 10..13 share created_at (positions 10..13 in @all)
    is_deeply(ids(list_call($A, 2, $all[9])), [@all[10, 11]],
              'starting_after just before a created_at tie: its two highest ids');
    is_deeply(ids(list_call($A, 2, $all[10])), [@all[11, 12]],
              'starting_after inside the tie: the next ids down');
    is_deeply(ids(list_call($A, 2, undef, $all[14])), [@all[12, 13]],
              'ending_before just after the tie: its two lowest ids');
    is_deeply(ids(list_call($A, 2, undef, $all[12])), [@all[10, 11]],
              'ending_before inside the tie: the next ids up');

    $l = list_call($A, 5, undef, $all[0]);
    is_deeply([ids($l), $l->{has_more}], [[], JSON::PP::false], 'ending_before the newest: empty');
    $l = list_call($A, 5, $all[-1]);
    is_deeply([ids($l), $l->{has_more}], [[], JSON::PP::false], 'starting_after the oldest: empty');

    # status filter
    for my $st (qw(active invited offboarded)) {
        my @want = grep { $status_of{$_} eq $st } @all;
        is_deeply(ids(list_call($A, 100, undef, undef, $st)), \@want,
                  sprintf 'status=%s: the %d of them, in order', $st, scalar @want);
    }
    my @active = grep { $status_of{$_} eq 'active' } @all;
    is(scalar @active, 11, 'A has 11 active freelancers');
    my @walk;
    $cursor = undef;
    for (1 .. 20) {
        $l = list_call($A, 5, $cursor, undef, 'active');
        push @walk, @{ ids($l) };
        last unless $l->{has_more};
        $cursor = $walk[-1];
    }
    is_deeply(\@walk, \@active, 'status=active walked by 5: all 11, in order');
    my ($invited) = grep { $status_of{$_} eq 'invited' } @all;
    my ($pos) = grep { $all[$_] eq $invited } 0 .. $#all;
    is_deeply(ids(list_call($A, 100, $invited, undef, 'active')),
              [grep { $status_of{$_} eq 'active' } @all[$pos + 1 .. $#all]],
              'a cursor that the filter excludes still places the page');
}

# ---------------------------------------------------------------- list errors
{
    my $err_of = sub {
        my ($sql) = @_;
        my ($out, $err, $rc) = psql($API, $sql);
        return $rc ? join('|', $err =~ /ERROR:\s+(\w+): (.*)/, $err =~ /DETAIL:\s+(.*)/) : 'no error';
    };
    my $call = sub {
        sprintf 'SELECT worksible_freelancers_list(%s, %s, %s, %s, %s)',
            map { defined $_ && /^\d+$/ ? $_ : q_($_) } @_;
    };
    is($err_of->($call->($A, 5, $b_ids[0], undef, undef)), 'WS400|No object with this id is in the list|starting_after',
       'starting_after = another company\'s id -> WS400, DETAIL starting_after');
    is($err_of->($call->($A, 5, undef, $b_ids[0], undef)), 'WS400|No object with this id is in the list|ending_before',
       'ending_before = another company\'s id -> WS400, DETAIL ending_before');
    is($err_of->($call->($A, 5, 'fl_00000000000000000000000000', undef, undef)),
       'WS400|No object with this id is in the list|starting_after', 'unknown cursor: the same error');
    is($err_of->($call->($A, 5, "x'--", undef, undef)), 'WS400|No object with this id is in the list|starting_after',
       'malformed cursor: the same error');
    is($err_of->($call->($B, 5, $all[0], undef, undef)), 'WS400|No object with this id is in the list|starting_after',
       'and the other way round (B with A\'s id)');
    like($err_of->($call->($A, 5, $all[0], $all[1], undef)), qr/^WS400\|.*\|ending_before$/,
         'both cursors -> WS400, param ending_before');
    like($err_of->($call->($A, 0, undef, undef, undef)), qr/^WS400\|.*\|limit$/, 'limit 0 -> WS400');
    like($err_of->($call->($A, 101, undef, undef, undef)), qr/^WS400\|.*\|limit$/, 'limit 101 -> WS400');
    like($err_of->($call->($A, 5, undef, undef, 'paid')), qr/^WS400\|.*\|status$/,
         'unknown status -> WS400');
}

# ---------------------------------------------------------------- privileges
is(api("SELECT has_function_privilege('public', 'worksible_freelancers_list(text,integer,text,text,text)', 'EXECUTE')"),
   'f', 'PUBLIC may not execute the API functions');
is(api("SELECT bool_and(prosecdef) FROM pg_proc WHERE proname IN
        ('worksible_company_me', 'worksible_freelancer_object', 'worksible_freelancers_list',
         'worksible_freelancer_get')"),
   'f', 'the API functions are SECURITY INVOKER');

done_testing();
