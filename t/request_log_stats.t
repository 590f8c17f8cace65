# GET /v1/request_logs/stats (migrations/0012_request_log_stats.sql): per
# bucket, requests by status class, refusals by code and latency
# percentiles, from the per-minute rollups the ingest keeps (a retried
# batch counts once), or from the raw rows with a path filter (exact
# percentiles); the filters, the default range (the last 24 hours, real
# traffic through nginx), the errors, another company's rows, the prune.

use strict;
use warnings;

use POSIX qw(strftime);
use Test::More;
use Time::HiRes qw(sleep time);
use Worksible::Test qw(company api_key psql psql_value psql_as http_config
    nginx_start nginx_stop http json);

my $cmp = company(plan => 'growth');
my $other = company(plan => 'growth');
my $key = api_key($cmp, 'company:read request_logs:read');
my $k2 = api_key($cmp, 'company:read');
my $narrow = api_key($cmp, 'company:read');

nginx_start(name => 'request_log_stats', port => 1961, http => http_config(),
    server => 'location /v1/ { worksible_auth on; worksible_rate_limit on; worksible_api; }');

# --- known rows, three days ago, 10:00-12:00 UTC ---------------------------------

my $day = int(time / 86400) * 86400 - 3 * 86400;
my $tag = sprintf '%08X', $$ * 1000 + int(rand(1000));
my $n = 0;
sub at { strftime('%Y-%m-%dT%H:%M:%S', gmtime($day + $_[0])) . '.000Z' }
sub row {
    my ($t, $method, $path, $status, $ms, %o) = @_;
    return { id => sprintf('req_%s%018d', $tag, $n++),
             company_id => exists $o{company} ? $o{company} : $cmp,
             api_key_id => $o{key} // $key->{id}, method => $method,
             path => $path, status => $status, latency_ms => $ms,
             ip => '192.0.2.1', user_agent => 'stats-test', created_at => at($t) };
}
my $h10 = 10 * 3600;
my @hour10 = (
    row($h10 + 5, 'GET', '/v1/invoices', 200, 1),
    row($h10 + 6, 'GET', '/v1/invoices', 200, 2),
    row($h10 + 60, 'POST', '/v1/payouts', 201, 3),
    row($h10 + 120, 'GET', '/v1/freelancers', 404, 4),
    row($h10 + 1800, 'GET', '/v1/companies/me', 401, 5, key => $k2->{id}),
    row($h10 + 3599, 'GET', '/v1/companies/me', 429, 5, key => $k2->{id}),
    row($h10 + 10, 'GET', '/v1/invoices', 200, 9, company => $other),
    row($h10 + 11, 'GET', '/v1/invoices', 401, 9, company => undef, key => ''),
);
my @hour11 = (
    row($h10 + 3600, 'GET', '/v1/payouts', 403, 1, key => $k2->{id}),
    row($h10 + 4200, 'GET', '/v1/payouts', 500, 250),
    row($h10 + 4230, 'DELETE', '/v1/x_%', 200, 700),
);
$_->{api_key_id} = undef for grep { $_->{api_key_id} eq '' } @hour10;

sub ingest {
    my (@rows) = @_;
    my $batch = json()->encode(\@rows);
    $batch =~ s/'/''/g;
    my ($out, $err, $rc) = psql_as('worksible_api',
        "SELECT worksible_request_logs_insert('$batch'::json)");
    is($rc, 0, 'the batch is taken') or diag($err);
    return $out;
}
is(ingest(@hour10), 8, 'a batch as nginx sends it: 8 rows');
is(ingest(@hour11), 3, 'another: 3 rows');
is(ingest(@hour10), 0, 'the first batch again (a retry): nothing new');

is(psql_value("SELECT count(*) FROM request_log_minutes WHERE company_id = '$cmp'
               AND method = '*' AND api_key_id = '*' AND route = '*'"), 8,
   'rollups: one row per minute and status of the company (8), all methods and keys');
is(psql_value("SELECT sum(requests) FROM request_log_minutes WHERE company_id = '$cmp'
               AND method = 'GET' AND api_key_id = '*' AND route = '*'"), 7, '... per method');
is(psql_value("SELECT sum(requests) FROM request_log_minutes WHERE company_id = '$cmp'
               AND method = '*' AND api_key_id = '$k2->{id}' AND route = '*'"), 3, '... per key');
is(psql_value("SELECT count(*) FROM request_log_minutes WHERE company_id IS NULL
               OR company_id = ''"), 0, 'no rollup of rows without a company');

my %auth = (Authorization => "Bearer $key->{key}");
my $range = 'created_at[gte]=' . at($h10) . '&created_at[lt]=' . at($h10 + 7200);
$range =~ s/\.000Z/Z/g;

sub stats {
    my ($query, $k) = @_;
    my $res = http('GET', "/v1/request_logs/stats?$query",
                   { Authorization => 'Bearer ' . ($k // $key->{key}) });
    my $body = eval { json()->decode($res->{body}) } // {};
    return ($res, $body);
}

sub bucket {
    my ($requests, $classes, $refused, $lat) = @_;
    my %c = map { ("${_}xx" => 0) } 1 .. 5;
    my %r = map { ($_ => 0) } 401, 403, 429;
    return { requests => $requests, status_classes => { %c, %$classes },
             refused => { %r, %$refused }, latency_ms => $lat };
}

# --- hourly buckets ---------------------------------------------------------------

my ($res, $s) = stats("$range&interval=1h");
is($res->{status}, 200, 'GET /v1/request_logs/stats: 200') or diag($res->{body});
like($res->{headers}{'content-type'}, qr{^application/json}, 'JSON');
is($s->{object}, 'request_log_stats', 'object request_log_stats');
is($s->{url}, '/v1/request_logs/stats', 'its url');
is($s->{interval}, '1h', 'the interval');
is($s->{start}, at($h10) =~ s/\.000Z/Z/r, 'start');
is($s->{end}, at($h10 + 7200) =~ s/\.000Z/Z/r, 'end');
is(scalar @{ $s->{data} }, 2, 'two hourly buckets');
is($s->{data}[0]{start}, at($h10) =~ s/\.000Z/Z/r, 'the first starts at 10:00');
is($s->{data}[1]{start}, at($h10 + 3600) =~ s/\.000Z/Z/r, 'the second at 11:00');
my %b0 = %{ $s->{data}[0] }; delete $b0{start};
is_deeply(\%b0, bucket(6, { '2xx' => 3, '4xx' => 3 }, { 401 => 1, 429 => 1 },
                       { p50 => 3, p95 => 5, p99 => 5, max => 5 }),
          '10:00: 6 requests, 3 2xx, 3 4xx (a 401, a 429), exact percentiles below 6 ms');
my %b1 = %{ $s->{data}[1] }; delete $b1{start};
is_deeply(\%b1, bucket(3, { '2xx' => 1, '4xx' => 1, '5xx' => 1 }, { 403 => 1 },
                       { p50 => 299, p95 => 700, p99 => 700, max => 700 }),
          '11:00: 3 requests; p50 250 ms read from its bucket 250-299, p95 capped by the max');
is_deeply($s->{total}, bucket(9, { '2xx' => 4, '4xx' => 4, '5xx' => 1 },
                              { 401 => 1, 403 => 1, 429 => 1 },
                              { p50 => 4, p95 => 700, p99 => 700, max => 700 }),
          'the total of the range');

# --- other intervals ----------------------------------------------------------------

($res, $s) = stats("$range&interval=1m");
is($res->{status}, 200, 'interval=1m');
is(scalar @{ $s->{data} }, 120, '120 minutes, empty ones included');
is($s->{data}[0]{requests}, 2, '10:00: 2 requests');
is($s->{data}[1]{requests}, 1, '10:01: 1');
is($s->{data}[2]{status_classes}{'4xx'}, 1, '10:02: the 404');
is($s->{data}[3]{requests}, 0, '10:03: none');
is($s->{data}[3]{latency_ms}{p50}, undef, '... and no percentile');

($res, $s) = stats("$range&interval=1d");
is(scalar @{ $s->{data} }, 1, 'interval=1d: one bucket');
is($s->{data}[0]{start}, strftime('%Y-%m-%dT00:00:00Z', gmtime $day), 'aligned to 00:00 UTC');
is($s->{data}[0]{requests}, 9, 'with the 9 requests of the range');

my $bounds = 'created_at[gte]=' . at($h10 + 90) . '&created_at[lt]=' . at($h10 + 150);
$bounds =~ s/\.000Z/Z/g;
($res, $s) = stats("$bounds&interval=1m");
is($s->{start}, at($h10 + 60) =~ s/\.000Z/Z/r, 'start widened down to its minute');
is($s->{end}, at($h10 + 180) =~ s/\.000Z/Z/r, 'end up to its minute');
is($s->{total}{requests}, 2, 'whole minutes counted');

# --- filters ----------------------------------------------------------------------

my %by = (
    'status=4xx' => [ 4, { '4xx' => 4 } ],
    'status=404' => [ 1, { '4xx' => 1 } ],
    'status=2xx' => [ 4, { '2xx' => 4 } ],
    'method=POST' => [ 1, { '2xx' => 1 } ],
    "api_key_id=$k2->{id}" => [ 3, { '4xx' => 3 } ],
    "method=GET&api_key_id=$k2->{id}" => [ 3, { '4xx' => 3 } ],
    'path=/v1/payouts' => [ 3, { '2xx' => 1, '4xx' => 1, '5xx' => 1 } ],
    'path=/v1/x_' => [ 1, { '2xx' => 1 } ],
    'path=/v1/x%25' => [ 0, {} ],
    'status=5xx&path=/v1/pay' => [ 1, { '5xx' => 1 } ],
);
for my $f (sort keys %by) {
    ($res, $s) = stats("$range&$f");
    is($res->{status}, 200, "$f: 200") or diag($res->{body});
    is($s->{total}{requests}, $by{$f}[0], "$f: $by{$f}[0] requests");
    my %c = map { ("${_}xx" => 0) } 1 .. 5;
    is_deeply($s->{total}{status_classes}, { %c, %{ $by{$f}[1] } }, "$f: by class");
}

($res, $s) = stats("$range&path=/v1/payouts");
is_deeply($s->{data}[1]{latency_ms}, { p50 => 1, p95 => 250, p99 => 250, max => 250 },
          'a path filter reads the rows, through the same histogram buckets');
($res, $s) = stats("$range&path=/");
is_deeply([ map { $_->{status_classes} } @{ $s->{data} } ],
          [ map { $_->{status_classes} } @{ (stats("$range"))[1]{data} } ],
          'the rows and the rollups agree');

# --- the last 24 hours, by default: real traffic ------------------------------------

my $fresh = company(plan => 'growth');
my $fkey = api_key($fresh, 'company:read request_logs:read');
my %f = (Authorization => "Bearer $fkey->{key}");
is(http('GET', '/v1/companies/me', \%f)->{status}, 200, 'traffic: a 200');
is(http('GET', '/v1/freelancers', \%f)->{status}, 403, 'a 403');
is(http('GET', '/v1/nothing', \%f)->{status}, 404, 'a 404');
my $deadline = time + 8;
do { sleep 0.3 } until psql_value("SELECT count(*) FROM request_log_minutes
    WHERE company_id = '$fresh' AND method = '*' AND api_key_id = '*' AND route = '*'") >= 3 || time > $deadline;
($res, $s) = stats('', $fkey->{key});
is($res->{status}, 200, 'no parameters: 200');
is($s->{interval}, '1h', 'interval 1h by default');
ok(@{ $s->{data} } == 24 || @{ $s->{data} } == 25, 'the last 24 hours: 24 or 25 hourly buckets')
    or diag(scalar @{ $s->{data} });
is_deeply([ @{ $s->{total} }{qw(requests)}, $s->{total}{status_classes}{'2xx'},
            $s->{total}{status_classes}{'4xx'}, $s->{total}{refused}{403} ],
          [ 3, 1, 2, 1 ], 'the 3 requests: a 2xx, two 4xx, one refused 403');
# the requests' hour may be the one before the stats' (logged at hh:59:59,
# asked at hh+1:00:01): the buckets hold the rows at their own hours, the
# last bucket is that of the end
my %rows_by_hour = map { @$_ } @{ psql("SELECT to_char(date_bin('1 hour', created_at,
    '2000-01-01 00:00Z') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), count(*)
    FROM request_logs WHERE company_id = '$fresh' GROUP BY 1") };
is_deeply({ map { ($_->{start} => $_->{requests}) } grep { $_->{requests} } @{ $s->{data} } },
          \%rows_by_hour, 'in the buckets of their hours (the last, or the one before)');
is($s->{data}[-1]{start}, strftime('%Y-%m-%dT%H:00:00Z', gmtime(json_time($s->{end}) - 60)),
   'the last bucket is the hour of the end');
my $now = time;
ok(abs(json_time($s->{end}) - $now) <= 61, 'end: now, to the minute');
ok(abs(json_time($s->{start}) - ($now - 86400)) <= 61, 'start: 24 hours earlier');

sub json_time {
    my ($t) = @_;
    my ($y, $m, $d, $H, $M, $S) = $t =~ /^(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)Z$/ or return 0;
    require Time::Local;
    return Time::Local::timegm($S, $M, $H, $d, $m - 1, $y);
}

# --- ranges at the ends of the calendar: 400, or times that are RFC 3339 and in order ------

for my $q ('created_at[lt]=0001-01-01T00:00:00Z', 'created_at[lt]=9999-12-31T23:59:59Z') {
    ($res, $s) = stats($q);
    if ($res->{status} == 400) {
        like($s->{param} // '', qr/^created_at/, "$q: 400 naming the time");
        next;
    }
    is($res->{status}, 200, "$q: 200 (or a 400)");
    like($s->{start} // '', qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, "$q: start is RFC 3339 ($s->{start})");
    like($s->{end} // '', qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, "$q: end is RFC 3339 ($s->{end})");
    cmp_ok($s->{start} // '', 'lt', $s->{end} // '', "$q: start before end");
    my @starts = map { $_->{start} } @{ $s->{data} };
    is_deeply(\@starts, [ sort @starts ], "$q: the buckets oldest first as their times say");
}

# --- another company's rows, errors ----------------------------------------------------

($res, $s) = stats($range, api_key($other, 'request_logs:read')->{key});
is($s->{total}{requests}, 1, "another company sees its own row only");

for my $bad (['interval=2h', 'interval'], ['interval=1w', 'interval'],
             ['created_at[gte]=yesterday', 'created_at[gte]'],
             ['created_at[lt]=2026-13-01T00:00:00Z', 'created_at[lt]'],
             ['created_at[gte]=2026-11-02T00:00:00Z&created_at[lt]=2026-11-01T00:00:00Z', 'created_at[gte]'],
             ['created_at[gte]=2026-11-01T00:00:00Z&created_at[lt]=2026-11-03T00:00:00Z&interval=1m', 'interval'],
             ['status=4x', 'status'], ['method=FETCH', 'method'], ['api_key_id=fl_1', 'api_key_id'],
             ['path=v1', 'path'], ['limit=5', 'limit'], ['interval=1h&interval=1d', 'interval'])
{
    ($res, $s) = stats($bad->[0]);
    is($res->{status}, 400, "$bad->[0]: 400");
    is($s->{param}, $bad->[1], "... naming $bad->[1]");
    is($s->{code}, $bad->[0] eq 'limit=5' ? 'parameter_unknown' : 'parameter_invalid', "... $s->{code}");
}

($res, $s) = stats($range, $narrow->{key});
is($res->{status}, 403, 'a key without request_logs:read: 403');
is($s->{code}, 'insufficient_scope', 'insufficient_scope');
like($res->{headers}{'www-authenticate'}, qr/scope="request_logs:read"/, 'naming the scope');
is(http('POST', '/v1/request_logs/stats', \%auth)->{status}, 405, 'POST: 405');

# --- the prune takes the rollups of the days it drops ------------------------------------

my $end = strftime('%Y-%m-%d 00:00:00+00', gmtime($day + 86400));
my ($out, $err, $rc) = psql_as('worksible',
    "SELECT count(*) FROM worksible_request_logs_prune(now() - timestamptz '$end')");
is($rc, 0, 'prune through the end of that day') or diag($err);
is(psql_value("SELECT count(*) FROM request_log_minutes WHERE company_id = '$cmp'
               AND minute < '$end'"), 0, "that day's rollups are gone");
is(psql_value("SELECT count(*) FROM request_log_minutes WHERE company_id = '$fresh'"), 
   psql_value("SELECT count(*) FROM request_log_minutes WHERE company_id = '$fresh'
               AND minute >= '$end'"), "today's stay");
cmp_ok(psql_value("SELECT count(*) FROM request_log_minutes WHERE company_id = '$fresh'"),
       '>', 0, '... and are there');
($res, $s) = stats($range);
is($s->{total}{requests}, 0, 'the stats of that day: nothing');

nginx_stop();
done_testing();
