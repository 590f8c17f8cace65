# The request log's ingest (migrations/0014_request_log_ingest.sql and the
# worker's COPY): text in COPY's escaping comes back byte for byte, a batch
# larger than libpq's buffers goes through the write event, a batch commits
# whole or not at all and a lost connection logs no row twice, partitions
# are made ahead (rows of a day without one wait and are moved), the prune
# drops detached partitions, and the stats read through the rollups (path
# prefixes, a method and a key together) count what the raw rows count.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(sleep time);
use POSIX qw(strftime);
use Encode ();
use Worksible::Test qw(company api_key psql psql_value psql_as http_config
    nginx_start nginx_stop http json log_days clear_of);

my $company = company(plan => 'growth');
my $key = api_key($company, 'company:read request_logs:read');
my $cq = "'$company'";

nginx_start(name => 'request_log_ingest', port => 1953, workers => 1,
    http => http_config() . '    worksible_key_cache zone=keys:1m;',
    server => 'location /v1/ { worksible_auth on; worksible_api; }');

my %auth = (Authorization => "Bearer $key->{key}");

# rows_of(@ids): id => [hex of path, hex of user_agent, status] once all are there
sub rows_of {
    my @ids = @_;
    my $in = join ',', map { "'$_'" } @ids;
    my $deadline = time + 10;
    my $rows;
    do {
        sleep 0.3;
        $rows = psql("SELECT id, encode(convert_to(path, 'UTF8'), 'hex'),
                             encode(convert_to(user_agent, 'UTF8'), 'hex'), status
                      FROM request_logs WHERE id IN ($in)");
    } until @$rows >= @ids || time > $deadline;
    return { map { $_->[0] => $_ } @$rows };
}

# --- COPY's escaping: tabs, backslashes, quotes, "\N", "\.", UTF-8 ------------

my %ua = (
    tab     => "a\tb\t\tc",
    slashes => 'back\\slash \\\\ \\N \\. \\t end\\',
    quotes  => qq{"double" 'single' \x01\x1f\x7f},
    nul_seq => '\\N',
    utf8    => "\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80",
    bad     => "bad \xc3\x28",
);
my %path = (
    tab     => '/v1/companies/me?q=%09',
    slashes => '/v1/companies/me?x=\\N\\.\\\\',
    quotes  => '/v1/companies/me?x="y"&z=\'w\'',
    nul_seq => '/v1/companies/me?\\',
    utf8    => "/v1/companies/me?x=\xc3\xa9",
    bad     => "/v1/companies/me?x=\xff",
);
my %id;
for my $k (sort keys %ua) {
    my $res = http('GET', $path{$k}, { %auth, 'User-Agent' => $ua{$k} });
    ok($res->{status}, "$k: answered ($res->{status}: a query /v1/companies/me does not take)");
    $id{$k} = $res->{headers}{'x-request-id'};
}
my $rows = rows_of(values %id);
is(scalar keys %$rows, scalar keys %id, 'every request is logged once');
for my $k (sort keys %ua) {
    my ($want_ua, $want_path) = ($ua{$k}, $path{$k});
    ($want_ua, $want_path) = ('?', '?') if $k eq 'bad';
    is($rows->{ $id{$k} }[2], unpack('H*', $want_ua), "$k: the user agent round-trips byte for byte");
    is($rows->{ $id{$k} }[1], unpack('H*', $want_path), "$k: the path too");
}
is(psql_value("SELECT count(*) FROM request_logs WHERE id IN ("
              . join(',', map { "'$_'" } values %id) . ") AND user_agent IS NULL"), 0,
   'a user agent "\\N" is text, not NULL');

# --- a batch larger than libpq's buffers: many writes on the write event -------

my $long = '/v1/companies/me?pad=' . ('x\\y' x 600);
my @big;
for my $i (1 .. 600) {
    my $res = http('GET', "$long&i=$i", { %auth, 'User-Agent' => "big\t$i" });
    push @big, $res->{headers}{'x-request-id'};
}
my $deadline = time + 15;
my $n;
do { sleep 0.3; $n = psql_value("SELECT count(*) FROM request_logs WHERE company_id = $cq
                                  AND user_agent LIKE E'big\\t%'") }
    until $n >= 600 || time > $deadline;
is($n, 600, '600 rows of 2 KB (over a megabyte of COPY data a batch) are logged');
is(psql_value("SELECT count(*) FROM request_logs WHERE company_id = $cq
               AND user_agent LIKE E'big\\t%' AND path = " . Worksible::Test::sql_literal("$long&i=" . '1')),
   1, '... each path as it came');

# --- a lost connection: no row twice ---------------------------------------------

my @lost;
for my $round (1 .. 5) {
    for my $i (1 .. 30) {
        push @lost, http('GET', "/v1/companies/me?lost=$round", \%auth)->{headers}{'x-request-id'};
    }
    # every connection nginx holds, ended mid-whatever it does
    my $killed = `psql -X -q -At -U postgres -c "SELECT count(pg_terminate_backend(pid))
        FROM pg_stat_activity WHERE usename = 'worksible_api'"`;
    is($? >> 8, 0, "round $round: nginx's connections ended ($killed)");
}
for my $i (1 .. 30) {
    push @lost, http('GET', '/v1/companies/me?lost=after', \%auth)->{headers}{'x-request-id'};
}
my $in = join ',', map { "'$_'" } @lost;
$deadline = time + 10;
do { sleep 0.3 } until psql_value("SELECT count(*) FROM request_logs WHERE id IN ($in)
                                    AND path = '/v1/companies/me?lost=after'") == 30
                       || time > $deadline;
is(psql_value("SELECT count(*) - count(DISTINCT id) FROM request_logs WHERE id IN ($in)"), 0,
   'connections killed during the batches: no request is logged twice');
cmp_ok(psql_value("SELECT count(*) FROM request_logs WHERE id IN ($in)"), '<=', scalar @lost,
       '... nor more rows than requests');
is(psql_value("SELECT count(*) FROM request_logs WHERE id IN ($in)
               AND path = '/v1/companies/me?lost=after'"), 30, '... and logging goes on after');
is(psql_value("SELECT coalesce(sum(requests), 0) FROM request_log_minutes WHERE company_id = $cq
               AND level = 0")
   , psql_value("SELECT count(*) FROM request_logs WHERE company_id = $cq"),
   'the rollups count exactly the rows logged (a batch counts in both or neither)');

# --- a day without its partition: the batch goes again, into request_logs_pending ---

{
    # today's partition aside, the 20 requests must be logged today: the
    # block does not start in a day's last minute (after 00:00 UTC they
    # would go to the next day's partition, made ahead, and none would wait)
    clear_of(86400, 60);
    my $t = time;
    my $day = strftime('%Y%m%d', gmtime $t);
    my $next = strftime('%Y-%m-%d', gmtime($t + 86400));
    my $logged = psql_value("SELECT count(*) FROM request_logs WHERE company_id = $cq");
    my $counted = psql_value("SELECT sum(requests) FROM request_log_minutes
                              WHERE company_id = $cq AND level = 0");
    my $paths = psql_value("SELECT count(*) FROM request_logs WHERE company_id = $cq
                            AND path LIKE '/v1/companies/me%'");
    # out of the log, and under another name: as if prepare never made it
    psql("ALTER TABLE request_logs DETACH PARTITION request_logs_p$day;
          ALTER TABLE request_logs_p$day RENAME TO request_logs_aside");
    my @ids = map { http('GET', "/v1/companies/me?nopart=$_", \%auth)->{headers}{'x-request-id'} }
              1 .. 20;
    my $in = join ',', map { "'$_'" } @ids;
    my $deadline = time + 10;
    my $n;
    do { sleep 0.3; $n = psql_value("SELECT count(*) FROM request_logs_pending WHERE id IN ($in)") }
        until $n >= 20 || time > $deadline;
    is($n, 20, 'today without its partition: the COPY refused, the rows go again and wait '
               . 'in request_logs_pending');
    is(psql_value("SELECT sum(requests) FROM request_log_minutes
                   WHERE company_id = $cq AND level = 0") - $counted, 20,
       '... counted once at level 0');
    is(psql_value("SELECT sum(requests) FROM request_log_minutes WHERE company_id = $cq
                   AND level = 8 AND route = '/v1/companies/me'")
       - $paths, 20, '... and at level 8');
    psql("ALTER TABLE request_logs_aside RENAME TO request_logs_p$day;
          ALTER TABLE request_logs ATTACH PARTITION request_logs_p$day
          FOR VALUES FROM ('" . strftime('%Y-%m-%d', gmtime $t) . " 00:00:00+00') TO ('$next 00:00:00+00')");
    psql('SELECT count(*) FROM worksible_request_logs_prepare()');
    is(psql_value("SELECT count(*) FROM request_logs WHERE id IN ($in)"), 20,
       'partition back, prepare: the rows are moved into the log');
    is(psql_value("SELECT count(*) FROM request_logs WHERE company_id = $cq"), $logged + 20,
       '... with the rows logged before');
    is(psql_value("SELECT coalesce(sum(requests), 0) FROM request_log_minutes WHERE company_id = $cq
                   AND level = 0"), $logged + 20, '... and the rollups count each once');
    is(psql_value("SELECT coalesce(sum(requests), 0) FROM request_log_minutes WHERE company_id = $cq
                   AND level = 8"), $logged + 20, '... at level 8 too');
}

# --- any other refusal: dropped, never sent again through the staging path ---------

{
    psql('REVOKE INSERT ON request_logs FROM worksible_log_writer');
    my @ids = map { http('GET', "/v1/companies/me?refused=$_", \%auth)->{headers}{'x-request-id'} }
              1 .. 5;
    my $in = join ',', map { "'$_'" } @ids;
    my $log = "$ENV{WORKSIBLE_TOP}/t/servroot_request_log_ingest/logs/error.log";
    my $deadline = time + 10;
    sleep 0.3 until (Worksible::Test::slurp($log) // "") =~ /batch refused: .*permission denied for table request_logs/
                    || time > $deadline;
    like(Worksible::Test::slurp($log) // "", qr/batch refused: .*permission denied for table request_logs(?!.*request_logs_pending)/,
         'INSERT revoked from worksible_log_writer: the batch is refused');
    psql('GRANT INSERT ON request_logs TO worksible_log_writer');
    # batches go one at a time: once a later row is there, the refused one is done
    my $later = http('GET', '/v1/companies/me?refused=after', \%auth)->{headers}{'x-request-id'};
    $deadline = time + 10;
    sleep 0.3 until psql_value("SELECT count(*) FROM request_logs WHERE id = '$later'")
                    || time > $deadline;
    is(psql_value("SELECT count(*) FROM request_logs WHERE id = '$later'"), 1,
       '... granted again: a later request is logged');
    is(psql_value("SELECT count(*) FROM request_logs WHERE id IN ($in)")
       + psql_value("SELECT count(*) FROM request_logs_pending WHERE id IN ($in)"), 0,
       '... the batch refused meanwhile (permission denied) is dropped, not sent again');
}

nginx_stop();

# --- a batch commits whole or not at all ----------------------------------------

my $other = company(plan => 'growth');
# $now_t: the time of the rows dated "now" below; days and minutes named
# after them are its (a later reading may be past 00:00 UTC)
my $now_t = time;
my $now = strftime('%Y-%m-%dT%H:%M:%S.000Z', gmtime $now_t);
sub copy_batch {
    my (@lines) = @_;
    my $data = join '', map { "$_\n" } @lines;
    my $file = "/tmp/request_log_ingest.$$";
    open my $fh, '>', $file or die;
    print $fh $data;
    close $fh;
    my $out = `psql -X -q -At -U worksible_api -c "SELECT worksible_request_logs_stage(); COPY pg_temp.worksible_request_log_batch FROM STDIN; SELECT worksible_request_logs_ingest()" < $file 2>&1`;
    unlink $file;
    return ($out, $? >> 8);
}
my $row = sub { join "\t", "req_copy$_[0]", $other, 'key_copy', 'GET', $_[1] // '/v1/copy',
                $_[2] // 200, 3, '192.0.2.1', '\N', '\N', 'f', '\N', $_[3] // $now };
my ($out, $rc) = copy_batch($row->(1), $row->(2, '/v1/copy', 'notanumber'), $row->(3));
isnt($rc, 0, 'a COPY with a bad row fails') or diag $out;
is(psql_value("SELECT count(*) FROM request_logs WHERE company_id = '$other'"), 0,
   '... and logs none of its rows');
is(psql_value("SELECT count(*) FROM request_log_minutes WHERE company_id = '$other'"), 0,
   '... nor counts any');
($out, $rc) = copy_batch($row->(1), $row->(2), $row->(3));
is($rc, 0, 'the same rows, good: taken') or diag $out;
like($out, qr/^3$/m, '... ingest says 3');
is(psql_value("SELECT count(*) FROM request_logs WHERE company_id = '$other'"), 3, '... 3 rows');

# --- COPY straight into request_logs, as nginx does (worksible_log_writer) ------

my $cols = 'id, company_id, api_key_id, method, path, status, latency_ms, ip, user_agent, '
         . 'idempotency_key, replayed, ratelimit_remaining, created_at';
sub direct_batch {
    my (@lines) = @_;
    my $file = "/tmp/request_log_ingest.$$";
    open my $fh, '>', $file or die;
    print $fh map { "$_\n" } @lines;
    close $fh;
    my $out = `psql -X -q -At -U worksible_api -c "SET LOCAL ROLE worksible_log_writer; COPY request_logs ($cols) FROM STDIN" < $file 2>&1`;
    unlink $file;
    return ($out, $? >> 8);
}
my $dc = company(plan => 'growth');
my $drow = sub { join "\t", "req_direct$_[0]", $dc, 'key_direct', 'GET', $_[1] // '/v1/direct/x_1?q=1',
                 200, 3, '192.0.2.1', '\N', '\N', 'f', '\N', $_[2] // $now };
($out, $rc) = direct_batch(map { $drow->($_) } 1 .. 4);
is($rc, 0, 'worksible_api COPYs 4 rows straight into request_logs (as worksible_log_writer)')
    or diag $out;
is(psql_value("SELECT count(*) FROM request_logs WHERE company_id = '$dc'"), 4, '... logged');
is(psql_value("SELECT sum(requests) FROM request_log_minutes WHERE company_id = '$dc' AND level = 0"),
   4, '... counted once at level 0');
is(psql_value("SELECT string_agg(route || '=' || requests, ',') FROM request_log_minutes
               WHERE company_id = '$dc' AND level = 8"), '/v1/direct/x_1=4', '... and at level 8');
is(psql_value("SELECT count(DISTINCT level) FROM request_log_minutes WHERE company_id = '$dc'"), 9,
   '... at each of the 9 levels');
my $tomorrow_at = strftime('%Y-%m-%dT00:00:30.000Z', gmtime($now_t + 86400));
($out, $rc) = direct_batch($drow->(5), $drow->(6, '/v1/direct/y', $tomorrow_at),
                           $drow->(7, '/v1/direct/y', $tomorrow_at));
is($rc, 0, 'a batch over two days') or diag $out;
is(psql_value("SELECT string_agg(tableoid::regclass::text || '=' || n, ',' ORDER BY 1) FROM (
                   SELECT tableoid, count(*) AS n FROM request_logs
                   WHERE id IN ('req_direct5', 'req_direct6', 'req_direct7') GROUP BY 1) AS x"),
   join(',', 'request_logs_p' . strftime('%Y%m%d', gmtime $now_t) . '=1',
             'request_logs_p' . strftime('%Y%m%d', gmtime($now_t + 86400)) . '=2'),
   '... each row in its day\'s partition');
is(psql_value("SELECT string_agg(requests::text, ',' ORDER BY minute) FROM request_log_minutes
               WHERE company_id = '$dc' AND level = 0 AND minute >= '$tomorrow_at'::timestamptz - interval '1 minute'"),
   '2', '... counted in its minute');
is(psql_value("SELECT sum(requests) FROM request_log_minutes WHERE company_id = '$dc' AND level = 0")
   . '/' . psql_value("SELECT sum(requests) FROM request_log_minutes WHERE company_id = '$dc' AND level = 8"),
   '7/7', '... all 7 rows counted once, levels 0 and 8');
($out, $rc) = direct_batch($drow->(8), $drow->(9, '/v1/direct/far', strftime('%Y-%m-%dT%H:%M:%S.000Z', gmtime(time + 25 * 86400))));
isnt($rc, 0, 'a batch with a row whose day has no partition is refused');
like($out, qr/no partition of relation "request_logs" found for row/, '... "no partition" (23514)');
is(psql_value("SELECT count(*) FROM request_logs WHERE id IN ('req_direct8', 'req_direct9')")
   + psql_value("SELECT count(*) FROM request_logs_pending WHERE id IN ('req_direct8', 'req_direct9')"),
   0, '... none of its rows logged');
is(psql_value("SELECT sum(requests) FROM request_log_minutes WHERE company_id = '$dc' AND level = 0"),
   7, '... nor counted');

# the writer may add rows, nothing more; worksible_api still reads one company
for my $case (['SELECT count(*) FROM request_logs', 'read the log'],
              ["UPDATE request_logs SET status = 500 WHERE company_id = '$dc'", 'UPDATE it'],
              ["DELETE FROM request_logs WHERE company_id = '$dc'", 'DELETE from it'],
              ["INSERT INTO request_logs ($cols) VALUES ('req_directR', '$dc', NULL, 'GET', '/',"
               . " 200, 1, NULL, NULL, NULL, false, NULL, now()) RETURNING id", 'read back what it adds'],
              ["INSERT INTO request_log_minutes (company_id, level, minute, status, requests,"
               . " latency_max, latency_hist) VALUES ('$dc', 0, now(), 200, 1, 1, '{}')",
               'write the rollups'],
              ['SELECT count(*) FROM request_logs_pending', 'read the waiting rows']) {
    my ($sql, $what) = @$case;
    my (undef, $e, $r) = psql_as('worksible_api', "SET ROLE worksible_log_writer; $sql");
    ok($r && $e =~ /42501: permission denied/, "as worksible_log_writer, worksible_api may not $what")
        or diag $e;
}
for my $sql ("UPDATE request_logs SET status = 500", "DELETE FROM request_logs") {
    my (undef, $e, $r) = psql_as('worksible_api',
        "SELECT set_config('worksible.company_id', '$dc', false); $sql");
    ok($r && $e =~ /42501: permission denied/, "nor as itself: $sql") or diag $e;
}
is((psql_as('worksible_api', "SELECT set_config('worksible.company_id', '$other', false);
                              SELECT count(*) FROM request_logs WHERE company_id = '$dc'"))[0],
   "$other\n0", '... and bound to another company it reads none of them');
is(psql_value("SELECT count(*) FROM request_logs WHERE company_id = '$dc'"), 7,
   'the log still holds the 7 rows');

# --- every level's rollup rows are those of the logged rows, row by row ---------
# (the trigger groups rows by their path before it computes route and path key:
# paths that differ in their query, a "/" in the query, paths shorter than a
# route or longer than a key, 2-byte characters across the 200th, rows without
# a key, latencies in several buckets, two minutes)
{
    my $gc = company(plan => 'growth');
    my $min1 = strftime('%Y-%m-%dT%H:%M:10.000Z', gmtime($now_t - 120));
    log_days($now_t - 120);   # (yesterday's, soon after 00:00 UTC)
    my @paths = ('/v1/invoices?limit=1', '/v1/invoices?limit=2', '/v1/invoices',
                 '/v1/projects/prj_1/tasks?x=1', '/v1/projects/prj_2/tasks', '/v1',
                 '/', '/v1/a?b/c/d/e', '/v1/x/' . ('a' x 250),
                 '/v1/y/' . ("\xc3\xa9" x 200) . '?q', '/v1/projects/prj_1/tasks');
    my @lines;
    for my $i (0 .. 43) {
        push @lines, join "\t", "req_levels$i", $gc,
            ('key_levels_a', 'key_levels_b', '\N')[$i % 3], ('GET', 'POST')[$i % 2],
            $paths[$i % @paths], (200, 404, 500)[$i % 5 % 3], (1, 7, 95, 70000, 4)[$i % 5],
            '192.0.2.9', '\N', '\N', 'f', '\N', $i % 4 ? $now : $min1;
    }
    my ($o, $c) = direct_batch(@lines);
    is($c, 0, 'a batch of 44 rows over 11 paths, 3 keys, 2 methods, 3 statuses, 2 minutes') or diag $o;
    my @levels = ([0], [1, 'method'], [2, 'key'], [3, 'method', 'key'], [4, 'route'],
                  [5, 'route', 'method', 'key'], [6, 'route', 'method'], [7, 'route', 'key'],
                  [8, 'pk']);
    my $expected = join "\nUNION ALL\n", map {
        my ($level, @kept) = @$_;
        my %k = map { $_ => 1 } @kept;
        "SELECT $level AS level, " . ($k{method} ? 'method' : "'*'") . ', '
        . ($k{key} ? 'key' : "'*'") . ', '
        . ($k{route} ? 'route' : $k{pk} ? 'pk' : "'*'")
        . ", minute, status, count(*), max(latency_ms),
               worksible_latency_hist(array_agg(latency_ms))
           FROM r GROUP BY " . join(', ', @kept, 'minute', 'status')
    } @levels;
    my $rollups = "SELECT level, method, api_key_id, route, minute, status, requests,
                          latency_max, latency_hist
                   FROM request_log_minutes WHERE company_id = '$gc'";
    my $r = "WITH r AS (SELECT method, coalesce(api_key_id, '') AS key,
                               worksible_request_log_route(path) AS route,
                               worksible_request_log_path_key(path) AS pk,
                               date_bin('1 minute', created_at, '2000-01-01 00:00Z') AS minute,
                               status, latency_ms
                        FROM request_logs WHERE company_id = '$gc')";
    is(psql_value("$r SELECT count(*) FROM ($expected) AS e"), 221,
       '... make 221 rollup rows, counted from the rows one by one');
    is(psql_value("$r SELECT count(*) FROM (($expected) EXCEPT ($rollups)) AS x")
       . '/' . psql_value("$r SELECT count(*) FROM (($rollups) EXCEPT ($expected)) AS x"),
       '0/0', '... which are exactly the rollups the trigger wrote, at every level');
}

# --- batches of several workers at once: none lost to a deadlock ------------------
# (each worker has its own connection; their batches upsert the rollup rows of the
# same minute at once, with differing paths, keys and methods: in hash order two
# of them could lock two rows in opposite orders, 40P01, the batch rolled back)
{
    my $wc = company(plan => 'growth');
    my @pids;
    for my $w (1 .. 4) {
        my $file = "/tmp/request_log_ingest.$$.w$w";
        open my $fh, '>', $file or die;
        srand($w);
        for my $b (1 .. 10) {
            my $paths = 1 + int rand(40 * $w);
            print $fh "BEGIN;\nSET LOCAL ROLE worksible_log_writer;\nCOPY request_logs ($cols) FROM STDIN;\n";
            for my $i (1 .. 1000) {
                print $fh join("\t", "req_workers$w.$b.$i", $wc, 'key_w' . int(rand($w + 1)),
                               (qw(GET POST PATCH DELETE))[rand($w)], '/v1/p' . int(rand $paths) . '/x',
                               (200, 201, 400, 404, 429, 500)[rand 6], int(exp(rand 6)),
                               '198.51.100.1', 'w', '\N', 'f', '\N', $now), "\n";
            }
            print $fh "\\.\nCOMMIT;\n";
        }
        close $fh;
        my $pid = fork // die;
        if (!$pid) {
            exec "psql -X -q -v ON_ERROR_STOP=1 -U worksible_api -f $file >$file.out 2>&1";
        }
        push @pids, [$pid, $file];
    }
    my @failed;
    for (@pids) {
        my ($pid, $file) = @$_;
        waitpid $pid, 0;
        push @failed, "worker batches $file: " . `cat $file.out` if $?;
        unlink $file, "$file.out";
    }
    is(scalar @failed, 0, '4 sessions of 10 batches of 1,000 rows at once: every batch commits')
        or diag @failed;
    is(psql_value("SELECT count(*) FROM request_logs WHERE company_id = '$wc'")
       . '/' . psql_value("SELECT sum(requests) FROM request_log_minutes
                           WHERE company_id = '$wc' AND level = 0"),
       '40000/40000', '... all 40,000 rows logged and counted once');
}

# --- the staging path and a batch of both its parts at once: no deadlock ------------
# (the staging path looks at the days' partitions, then writes a batch's rows of
# days with one and those of days without in two parts; with a partition attached
# in between, a COPY holding rows of both parts takes the same rollup rows in
# the other order: 0016 counted the parts in two statements and one batch was
# aborted, 40P01. Sessions: t0 holds the first company's rollup row of the late
# day; t1, the staging path, waits on it; the late day's partition is attached;
# t2 copies rows of both days; t0 gives up.)
{
    my ($c0, $c1, $c2) = sort map { company(plan => 'growth') } 1 .. 3;
    my $late_t = time + 28 * 86400;   # (one reading: one day)
    my $late = strftime('%Y-%m-%dT12:00:00.000Z', gmtime $late_t);
    my $part = 'request_logs_p' . strftime('%Y%m%d', gmtime $late_t);
    is(psql_value("SELECT to_regclass('$part') IS NULL"), 't', "$part is not there yet");
    my $row = sub { join ', ', map { $_ eq '\N' ? 'NULL' : Worksible::Test::sql_literal($_) }
                               $_[0], $_[1], '\N', 'GET', '/v1/x', 200, 5, '198.51.100.2',
                               'dl', '\N', 'f', '\N', $_[2] };
    my %sql = (
        t0 => "BEGIN;\nINSERT INTO request_logs_pending ($cols) VALUES (" . $row->('req_dl0', $c0, $late)
              . ");\nSELECT pg_sleep(60);\nCOMMIT;\n",
        t1 => "BEGIN;\nSELECT worksible_request_logs_stage();\n"
              . "INSERT INTO pg_temp.worksible_request_log_batch ($cols) VALUES ("
              . join('), (', $row->('req_dl1a', $c2, $now), $row->('req_dl1b', $c0, $late),
                             $row->('req_dl1c', $c1, $late))
              . ");\nSELECT worksible_request_logs_ingest();\nCOMMIT;\n",
        t2 => "BEGIN;\nSET LOCAL ROLE worksible_log_writer;\n"
              . "INSERT INTO request_logs ($cols) VALUES ("
              . join('), (', $row->('req_dl2a', $c1, $late), $row->('req_dl2b', $c2, $now))
              . ");\nCOMMIT;\n");
    my %pid;
    my $start = sub {
        my ($s, $user) = @_;
        my $file = "/tmp/request_log_ingest.$$.$s";
        open my $fh, '>', $file or die;
        print $fh $sql{$s};
        close $fh;
        my $pid = fork // die;
        if (!$pid) {
            $ENV{PGAPPNAME} = "dl_$s";
            exec "psql -X -q -v ON_ERROR_STOP=1 -U $user -f $file >$file.out 2>&1";
        }
        $pid{$s} = $pid;
    };
    my $waiting = sub {   # is session $s waiting on a lock (or done, when $done)
        my ($s, $done) = @_;
        my $deadline = time + 20;
        while (time < $deadline) {
            # (pg_locks: the other roles' wait events are hidden from this one)
            return 1 if psql_value("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                                    WHERE a.application_name = 'dl_$s' AND NOT l.granted");
            return 1 if $done && waitpid($pid{$s}, 1) == $pid{$s} && (delete($pid{$s}), 1);
            select undef, undef, undef, 0.1;
        }
        return 0;
    };
    $start->('t0', 'worksible');
    my $deadline = time + 20;
    select undef, undef, undef, 0.1
        until psql_value("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'dl_t0'
                          AND query LIKE '%pg_sleep%'") || time > $deadline;
    $start->('t1', 'worksible_api');
    ok($waiting->('t1'), 't1 (the staging path) waits on t0');
    psql_value("CREATE TABLE $part (LIKE request_logs INCLUDING DEFAULTS);
                ALTER TABLE request_logs ATTACH PARTITION $part FOR VALUES
                FROM ('" . substr($late, 0, 10) . " 00:00+00') TO ('"
                . strftime('%Y-%m-%d', gmtime($late_t + 86400)) . " 00:00+00')");
    $start->('t2', 'worksible_api');
    ok($waiting->('t2', 1), 't2 (a COPY of both days) waits or is done');
    psql_value("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'dl_t0'");
    waitpid $pid{$_}, 0 for keys %pid;   # (t0's exit status: cancelled)
    my %out = map { $_ => Worksible::Test::slurp("/tmp/request_log_ingest.$$.$_.out") // '' } qw(t1 t2);
    unlink map { ("/tmp/request_log_ingest.$$.$_", "/tmp/request_log_ingest.$$.$_.out") } qw(t0 t1 t2);
    is($out{t1} =~ /ERROR/ ? $out{t1} : '', '', 't1 commits');
    is($out{t2} =~ /ERROR/ ? $out{t2} : '', '', 't2 commits');
    is(psql_value("SELECT string_agg(id, ' ' ORDER BY id) FROM request_logs WHERE user_agent = 'dl'")
       . ' / ' . psql_value("SELECT string_agg(id, ' ' ORDER BY id) FROM request_logs_pending
                             WHERE user_agent = 'dl'"),
       'req_dl1a req_dl2a req_dl2b / req_dl1b req_dl1c',
       '... their rows logged, those of the late day from t1 waiting in request_logs_pending');
    is(psql_value("SELECT string_agg(company_id || '=' || requests, ' ' ORDER BY company_id)
                   FROM request_log_minutes WHERE level = 0 AND company_id IN ('$c0', '$c1', '$c2')"),
       "$c0=1 $c1=2 $c2=2", '... and counted once');
}

# --- partitions made ahead; a day without one waits, no DDL on the ingest --------

# (the days are named from one reading, after which the block has a minute
# before 00:00 UTC; the last prepare ran earlier, maybe on the day before,
# so prepare runs first, as the workers do every hour)
clear_of(86400, 60);
psql_as('worksible_api', 'SELECT count(*) FROM worksible_request_logs_prepare()');
my $ahead_t = time;
my $tomorrow = strftime('%Y%m%d', gmtime($ahead_t + 86400));
my $after = strftime('%Y%m%d', gmtime($ahead_t + 2 * 86400));
is(psql_value("SELECT count(*) FROM pg_inherits WHERE inhparent = 'request_logs'::regclass
               AND inhrelid::regclass::text IN ('request_logs_p$tomorrow', 'request_logs_p$after')"),
   2, 'tomorrow\'s and the next day\'s partitions exist before any row');
my $far = $ahead_t + 20 * 86400;
my $far_day = strftime('%Y%m%d', gmtime $far);
my $far_at = strftime('%Y-%m-%dT%H:%M:%S.000Z', gmtime $far);
my $rels = psql_value("SELECT count(*) FROM pg_class WHERE relpersistence <> 't'");
($out, $rc) = copy_batch($row->(4, '/v1/far', 200, $far_at), $row->(5));
is($rc, 0, 'a batch with a row 20 days ahead is taken') or diag $out;
is(psql_value("SELECT count(*) FROM pg_class WHERE relpersistence <> 't'"), $rels,
   '... without making any table');
is(psql_value("SELECT count(*) FROM request_logs_pending WHERE id = 'req_copy4'"), 1,
   '... the row waits in request_logs_pending');
is(psql_value("SELECT count(*) FROM request_logs WHERE id = 'req_copy5'"), 1,
   '... the other is logged');
is(psql_value("SELECT sum(requests) FROM request_log_minutes WHERE company_id = '$other' AND level = 0"),
   5, '... both are counted');
my ($made, $err);
($made, $err, $rc) = psql_as('worksible_api', 'SELECT * FROM worksible_request_logs_prepare()');
is($rc, 0, 'prepare as worksible_api (what the workers run hourly)') or diag $err;
is($made, "request_logs_p$far_day", '... makes the waiting row\'s day');
is(psql_value("SELECT tableoid::regclass FROM request_logs WHERE id = 'req_copy4'"),
   "request_logs_p$far_day", '... and moves the row in');
is(psql_value("SELECT count(*) FROM request_logs_pending"), 0, '... none waits any more');
is(psql_value("SELECT sum(requests) FROM request_log_minutes WHERE company_id = '$other' AND level = 0")
   . '/' . psql_value("SELECT sum(requests) FROM request_log_minutes WHERE company_id = '$other' AND level = 8"),
   '5/5', '... without counting it again (levels 0 and 8)');
($made) = psql_as('worksible_api', 'SELECT count(*) FROM worksible_request_logs_prepare()');
is($made, 0, 'prepare again: nothing to make');

# --- prune: a partition detached concurrently, then dropped -----------------------

my $old = time - 50 * 86400;
my $old_day = strftime('%Y%m%d', gmtime $old);
is(psql_value("SELECT worksible_request_logs_insert(json_build_array(json_build_object("
              . "'id', 'req_old', 'company_id', '$other', 'method', 'GET', 'path', '/v1/old',"
              . "'status', 200, 'latency_ms', 1, 'created_at', '"
              . strftime('%Y-%m-%dT%H:%M:%S.000Z', gmtime $old) . "')))"), 1,
   'a row 50 days old (the JSON ingest makes its partition)');
like(psql_value("SELECT string_agg(name, ',') FROM worksible_request_logs_prunable('30 days')"),
     qr/(?:^|,)request_logs_p$old_day(?:,|$)/, 'prunable 30 days: its partition');
psql("ALTER TABLE request_logs DETACH PARTITION request_logs_p$old_day CONCURRENTLY");
is(psql_value("SELECT count(*) FROM request_logs WHERE id = 'req_old'"), 0,
   'detached concurrently: out of the log');
like(psql_value("SELECT string_agg(x, ',') FROM worksible_request_logs_prune('30 days') AS x"),
     qr/(?:^|,)request_logs_p$old_day(?:,|$)/, 'the prune drops the detached table');
is(psql_value("SELECT to_regclass('request_logs_p$old_day') IS NULL"), 't', '... it is gone');
is(psql_value("SELECT count(*) FROM request_log_minutes WHERE company_id = '$other'
               AND minute < now() - interval '30 days'"), 0, '... and its rollups');

# --- a concurrent detach interrupted: the CLI's prune finalizes it ------------------

{
    my $t = time - 60 * 86400;
    my $day = strftime('%Y%m%d', gmtime $t);
    is(psql_value("SELECT worksible_request_logs_insert(json_build_array(json_build_object("
                  . "'id', 'req_old2', 'company_id', '$other', 'method', 'GET', 'path', '/v1/old',"
                  . "'status', 200, 'latency_ms', 1, 'created_at', '"
                  . strftime('%Y-%m-%dT%H:%M:%S.000Z', gmtime $t) . "')))"), 1,
       'a row 60 days old');
    # a reader's snapshot holds the detach in its second transaction,
    # which a statement_timeout then cancels: the partition stays pending
    my $pid = fork // die;
    if ($pid == 0) {
        exec 'psql', '-X', '-q', '-o', '/dev/null', '-c', 'BEGIN ISOLATION LEVEL REPEATABLE READ',
             '-c', 'SELECT count(*) FROM request_logs', '-c', 'SELECT pg_sleep(3)',
             '-c', 'COMMIT';
    }
    sleep 0.7;
    my $detach = `psql -X -q -c "SET statement_timeout = '1s'" -c "ALTER TABLE request_logs DETACH PARTITION request_logs_p$day CONCURRENTLY" 2>&1`;
    like($detach, qr/statement timeout/, 'a concurrent detach cancelled while a reader holds its snapshot');
    is(psql_value("SELECT inhdetachpending FROM pg_inherits
                   WHERE inhrelid = 'request_logs_p$day'::regclass"), 't', '... leaves it pending');
    waitpid $pid, 0;
    my ($code, $out, $err) = Worksible::Test::cli('logs', 'prune', '--older-than', '30d');
    is($code, 0, 'logs prune 30d') or diag $err;
    like($out, qr/^request_logs_p$day$/m, '... finalizes the detach and drops it');
    is(psql_value("SELECT to_regclass('request_logs_p$day') IS NULL"), 't', '... it is gone');
}

# --- stats through the rollups count what the rows count ----------------------------

my $sc = company(plan => 'growth');
my $k1 = 'key_statsA'; my $k2 = 'key_statsB';
my @paths = ('/v1/invoices', '/v1/invoices/inv_1', '/v1/invoices/inv_2?x=1',
             '/v1/freelancers?limit=5', '/v1/freelancers/frl_9/projects', '/v1/free',
             '/healthz', '/');
my @lines;
my $t0 = time - 3 * 3600;
log_days($t0, time);   # (yesterday's, in a run soon after 00:00 UTC)
for my $i (0 .. 399) {
    push @lines, join "\t", "req_stats$i", $sc, ($i % 3 ? $k1 : $k2),
        (qw(GET POST DELETE))[$i % 3 == 0 ? 0 : $i % 5 == 0 ? 1 : $i % 7 == 0 ? 2 : 0],
        $paths[$i % @paths], (200, 201, 404, 429, 500)[$i % 5], $i % 97,
        '\N', '\N', '\N', 'f', '\N',
        strftime('%Y-%m-%dT%H:%M:%S.000Z', gmtime($t0 + $i * 17));
}
($out, $rc) = copy_batch(@lines);
is($rc, 0, '400 rows for the stats') or diag $out;

my $range = json()->encode({ 'created_at[gte]' => strftime('%Y-%m-%dT%H:00:00Z', gmtime($t0 - 3600)),
                             'created_at[lt]' => strftime('%Y-%m-%dT%H:00:00Z', gmtime(time + 3600)) });
for my $case (
    [ {}, 'TRUE' ],
    [ { 'path[prefix]' => '/v1/invoices' }, "starts_with(path, '/v1/invoices')" ],
    [ { 'path[prefix]' => '/v1/inv' }, "starts_with(path, '/v1/inv')" ],
    [ { 'path[prefix]' => '/v1/invoices/' }, "starts_with(path, '/v1/invoices/')" ],
    [ { 'path[prefix]' => '/v1/free' }, "starts_with(path, '/v1/free')" ],
    [ { 'path[prefix]' => '/' }, "starts_with(path, '/')" ],
    [ { 'path[prefix]' => '/v1/invoices/inv_1' }, "starts_with(path, '/v1/invoices/inv_1')" ],
    [ { 'path[prefix]' => '/v1/freelancers?' }, "starts_with(path, '/v1/freelancers?')" ],
    [ { method => 'GET', api_key_id => $k1 }, "method = 'GET' AND api_key_id = '$k1'" ],
    [ { method => 'POST', 'path[prefix]' => '/v1/invoices' },
      "method = 'POST' AND starts_with(path, '/v1/invoices')" ],
    [ { api_key_id => $k2, 'path[prefix]' => '/v1/f' },
      "api_key_id = '$k2' AND starts_with(path, '/v1/f')" ],
    [ { method => 'GET', api_key_id => $k1, 'path[prefix]' => '/v1/invoices/', 'status[class]' => '2' },
      "method = 'GET' AND api_key_id = '$k1' AND starts_with(path, '/v1/invoices/') AND status BETWEEN 200 AND 299" ],
    [ { method => 'DELETE', status => '404' }, "method = 'DELETE' AND status = 404" ],
    # deeper than a route: the path level 8 (alone), or the rows
    [ { 'path[prefix]' => '/v1/invoices/inv_' }, "starts_with(path, '/v1/invoices/inv_')" ],
    [ { 'path[prefix]' => '/v1/invoices/inv_2' }, "starts_with(path, '/v1/invoices/inv_2')" ],
    [ { 'path[prefix]' => '/v1/freelancers/frl_9/' }, "starts_with(path, '/v1/freelancers/frl_9/')" ],
    [ { method => 'GET', 'path[prefix]' => '/v1/invoices/inv_1' },
      "method = 'GET' AND starts_with(path, '/v1/invoices/inv_1')" ],
    [ { api_key_id => $k1, 'path[prefix]' => '/v1/freelancers/frl_9/p' },
      "api_key_id = '$k1' AND starts_with(path, '/v1/freelancers/frl_9/p')" ],
    [ { method => 'GET', api_key_id => $k2, 'path[prefix]' => '/v1/invoices/inv_', status => '429' },
      "method = 'GET' AND api_key_id = '$k2' AND starts_with(path, '/v1/invoices/inv_') AND status = 429" ],
    [ { 'path[prefix]' => '/v1/invoices/inv_2?x' }, "starts_with(path, '/v1/invoices/inv_2?x')" ],
    [ { 'path[prefix]' => '/v1/invoices/inv_2?' . 'y' x 300 }, 'FALSE' ],
) {
    my ($filters, $where) = @$case;
    my $f = json()->encode({ %{ json()->decode($range) }, %$filters });
    my $want = psql_value("SELECT count(*) || '/' || count(*) FILTER (WHERE status BETWEEN 400 AND 499)
                                  || '/' || count(*) FILTER (WHERE status = 429)
                           FROM request_logs WHERE company_id = '$sc' AND $where");
    my ($stats, $e, $r) = psql_as('worksible_api',
        "SELECT worksible_request_log_stats('$sc', '/v1/request_logs/stats', '$f')");
    my $s = eval { json()->decode($stats) } // {};
    is(join('/', $s->{total}{requests} // 'none', $s->{total}{status_classes}{'4xx'} // 'none',
            $s->{total}{refused}{429} // 'none'),
       $want, 'stats ' . json()->encode($filters) . ': the rows\' counts') or diag $e;
}
# prefixes ending in the characters with no next one in UTF-8 (U+D7FF, the
# last before the surrogates, and U+10FFFF): no upper bound to the range,
# the counts still the rows'
{
    my $uc = company(plan => 'growth');
    my @u = ("/v1/u/a\x{D7FF}", "/v1/u/a\x{D7FF}", "/v1/u/a\x{D7FF}b", "/v1/u/a\x{D7FE}",
             "/v1/\x{10FFFF}", "/v1/\x{10FFFF}z?q", "/v1/\x{10FFFE}", "/v1/u/a");
    my $i = 0;
    my ($o, $c) = copy_batch(map {
        Encode::encode_utf8(join "\t", 'req_uni' . $i++, $uc, 'key_uni', 'GET', $_, 200, 2,
                            '\N', '\N', '\N', 'f', '\N', $now) } @u);
    is($c, 0, 'paths ending in U+D7FF, U+10FFFF and their neighbours') or diag $o;
    for my $prefix ("/v1/u/a\x{D7FF}", "/v1/u/a\x{D7FE}", "/v1/\x{10FFFF}", "/v1/\x{10FFFE}") {
        my $f = json()->encode({ %{ json()->decode($range) }, 'path[prefix]' => $prefix });
        my $want = grep { substr($_, 0, length $prefix) eq $prefix } @u;
        my ($stats, $e) = psql_as('worksible_api',
            "SELECT worksible_request_log_stats('$uc', '/v1/request_logs/stats', '$f')->'total'->>'requests'");
        is($stats, $want, sprintf('stats for a prefix ending in U+%04X: %d rows', ord(substr($prefix, -1)), $want))
            or diag $e;
    }
}

# rows waiting for their day's partition count in the stats whichever
# source answers (the rollups, or the rows: the log's and the waiting ones)
{
    my $pc = company(plan => 'growth');
    my $later = strftime('%Y-%m-%dT%H:%M:%S.000Z', gmtime(time + 25 * 86400));
    my ($o, $c) = copy_batch(map {
        join "\t", "req_pend$_", $pc, 'key_pend', 'GET', '/v1/pend/x?y=1', 200, 2,
            '\N', '\N', '\N', 'f', '\N', $_ ? $later : $now } 0 .. 2);
    is($c, 0, 'a row now and two 25 days ahead') or diag $o;
    is(psql_value("SELECT count(*) FROM request_logs_pending WHERE company_id = '$pc'"), 2,
       '... those two wait for their partition');
    my $span = { 'created_at[gte]' => strftime('%Y-%m-%dT00:00:00Z', gmtime(time - 86400)),
                 'created_at[lt]' => strftime('%Y-%m-%dT00:00:00Z', gmtime(time + 30 * 86400)),
                 interval => '1d' };
    for my $filters ({}, { 'path[prefix]' => '/v1/pend/x' },
                     { 'path[prefix]' => '/v1/pend/x', method => 'GET' },
                     { 'path[prefix]' => '/v1/pend/x?' }) {
        my $f = json()->encode({ %$span, %$filters });
        my ($n, $e) = psql_as('worksible_api',
            "SELECT worksible_request_log_stats('$pc', '/v1/request_logs/stats', '$f')->'total'->>'requests'");
        is($n, 3, 'stats ' . json()->encode($filters) . ': the waiting rows count') or diag $e;
    }
    my ($seen) = psql_as('worksible_api', "SELECT count(*) FROM request_logs_pending");
    is($seen, 0, 'worksible_api reads no waiting row of a company it has not named');
    my ($null, $ne) = psql_as('worksible_api',
        "SELECT worksible_request_log_stats('$pc', '/v1/request_logs/stats', '"
        . json()->encode({ %$span, 'path[prefix]' => undef, method => undef }) . "')->'total'->>'requests'");
    is($null, 3, 'a filter given as JSON null is no filter') or diag $ne;
}

# a prefix deeper than a route reads level 8 when it holds fewer than half
# as many rows as the log under it (one path hot), else the rows (many
# paths of a request each): a count added to level 8 alone (1000, or 1 so
# that the rows stay more than half as many), in a transaction rolled
# back, shows which
my $hc = company(plan => 'growth');
my $minute_t = time - 1800;
log_days($minute_t);
my $minute = strftime('%Y-%m-%dT%H:%M:05.000Z', gmtime $minute_t);
($out, $rc) = copy_batch(map {
    join "\t", "req_hook$_", $hc, 'key_hook', 'POST',
        ($_ < 300 ? '/v1/hooks/one' : "/v1/hooks/many_$_"), ($_ % 2 ? 200 : 500), 4,
        '\N', '\N', '\N', 'f', '\N', $minute } 0 .. 599);
is($rc, 0, '300 requests to one path, 300 to a path each, in one minute') or diag $out;
psql('ANALYZE request_logs; ANALYZE request_log_minutes');
for my $case ([ '/v1/hooks/one', '/v1/hooks/one', 1000, 1000, 'level 8' ],
              [ '/v1/hooks/many_', '/v1/hooks/many_301', 1, 0, 'the rows' ]) {
    my ($prefix, $path, $add, $shows, $what) = @$case;
    my $f = json()->encode({ %{ json()->decode($range) }, 'path[prefix]' => $prefix });
    my ($n, $e) = psql_as('postgres', "BEGIN;
        UPDATE request_log_minutes SET requests = requests + $add
        WHERE company_id = '$hc' AND level = 8 AND route = '$path' AND status = 200;
        SET LOCAL ROLE worksible_api;
        SELECT worksible_request_log_stats('$hc', '/v1/request_logs/stats', '$f')->'total'->>'requests';
        ROLLBACK;");
    is($n, 300 + $shows, "stats for $prefix read $what") or diag $e;
}
is(psql_value("SELECT string_agg(route || '=' || n, ',' ORDER BY route) FROM (
                   SELECT route, sum(requests) AS n FROM request_log_minutes
                   WHERE company_id = '$sc' AND level = 8 GROUP BY route) AS x"),
   join(',', map { "$_->[0]=50" } sort { $a->[0] cmp $b->[0] }
        map { [ (split /\?/)[0] ] } @paths),
   'level 8 keeps the paths without their query');
is(psql_value("SELECT string_agg(worksible_request_log_path_exact(p)::text, ',' ORDER BY o)
    FROM unnest(ARRAY['/v1/invoices/inv_1', '/v1/x?', '', repeat('a', 200), repeat('a', 201)])
         WITH ORDINALITY AS u(p, o)"), 'true,false,true,true,false',
   'the prefixes the paths serve exactly: no "?", 200 characters');

my $exact = psql_value("SELECT string_agg(worksible_request_log_route_exact(p)::text, ',' ORDER BY o)
    FROM unnest(ARRAY['/v1/invoices', '/v1/inv', '/v1/invoices/', '/v1/invoices/inv_1',
                      '/v1/x?', '', repeat('a', 201)]) WITH ORDINALITY AS u(p, o)");
is($exact, 'true,true,true,false,false,true,false',
   'the prefixes the routes serve exactly: up to the third "/", no "?", 200 characters');

done_testing();
