# GET /v1/request_logs/stats with hostile path prefixes (migrations 0014 and
# 0015): for any filters, the totals (requests, each status class, each
# refusal) are what the raw rows of request_logs count for the same
# company, range and filters, a path filter being starts_with(path, prefix)
# on the path with its query. Prefixes: LIKE's "%", "_" and "\", quotes,
# multi-byte characters, U+FFFF, U+D7FF, U+10FFFF, DEL, exactly 200 and 201
# characters (of one and of two bytes), paths longer than 200 characters,
# routes longer than 200 characters, "?" in and at the end of the prefix,
# "?" right after the third "/", "",
# "/"; each with and without method, api_key_id and status; under a
# company whose paths are hot (the path level 8 serves a bare deep
# prefix) and one whose paths each take a request (the rows serve it);
# rows of the current minute and older ones. Then the same through HTTP,
# and the prefixes the API refuses (a clean 400 naming path).

use strict;
use warnings;
use utf8;

use Encode qw(encode_utf8);
use POSIX qw(strftime);
use Test::More;
use Worksible::Test qw(company api_key psql psql_value psql_as http_config
    nginx_start nginx_stop http json problem log_days);

sub copy_batch {
    my (@lines) = @_;
    my $file = "/tmp/request_log_stats_attack.$$";
    open my $fh, '>:raw', $file or die;
    print $fh encode_utf8(join '', map { "$_\n" } @lines);
    close $fh;
    my $out = `psql -X -q -At -U worksible_api -c "SELECT worksible_request_logs_stage(); COPY pg_temp.worksible_request_log_batch FROM STDIN; SELECT worksible_request_logs_ingest()" < $file 2>&1`;
    unlink $file;
    return ($out, $? >> 8);
}

# COPY's text format: a backslash doubled (no tab or newline in our paths)
sub copy_text { my ($s) = @_; $s =~ s/\\/\\\\/g; return $s }

sub lit { Worksible::Test::sql_literal(encode_utf8($_[0])) }

my $a194 = 'a' x 194;
my $e194 = 'é' x 194;
my @paths = (
    '/v1/x/%a', '/v1/x/%', '/v1/x/_b', '/v1/x/ab', '/v1/x/\\c', '/v1/x/\\',
    "/v1/x/'q", '/v1/x/"q', '/v1/x/é', '/v1/x/éz', "/v1/x/\x{1F600}",
    "/v1/x/\x{1F600}\x{1F601}", "/v1/x/\x{FFFF}", "/v1/x/\x{FFFF}\x{10000}",
    "/v1/x/\x{D7FF}", "/v1/x/\x{D7FF}\x{E000}", "/v1/x/\x{10FFFF}",
    "/v1/x/\x{10FFFF}\x{10FFFF}", "/v1/x/\x7f", "/v1/x/\x7f\x{80}",
    "/v1/x/$a194", "/v1/x/${a194}b", "/v1/x/${a194}bc", "/v1/x/${a194}?q",
    "/v1/x/${e194}", "/v1/x/${e194}é", "/v1/x/${e194}é?q=1",
    "/v1/x/" . ('é' x 193) . "\x{1F600}", "/v1/x/" . ('é' x 193) . "\x{1F600}zz",
    '/v1/x/?q=1', '/v1/x/?', '/v1/x?y=/a/b/c', '/v1/x?', '/v1/x',
    '/v1/%/a', '/v1/_/a', '/v1/\\/a', '/v1/é/a', "/v1/\x{10FFFF}/a",
    '/v1/x/a/b/c?d=/e', '/', '/?', '/?a=/b/c/d',
    # a route (up to the third "/") longer than 200 characters
    '/v1/' . ('r' x 300) . '/b?x', '/v1/' . ('é' x 300) . '/b',
);
my @prefixes = (
    '', '/', '/v1', '/v1/', '/v1/x', '/v1/x/', '/v1/%', '/v1/_', '/v1/\\',
    '/v1/é', "/v1/\x{10FFFF}", '/v1/%/', '/v1/x/%', '/v1/x/_', '/v1/x/\\',
    "/v1/x/'", '/v1/x/"', '/v1/x/é', "/v1/x/\x{1F600}", "/v1/x/\x{FFFF}",
    "/v1/x/\x{D7FF}", "/v1/x/\x{10FFFF}", "/v1/x/\x{10FFFF}\x{10FFFF}",
    "/v1/x/\x7f", "/v1/x/$a194", "/v1/x/${a194}b", "/v1/x/${a194}bc",
    "/v1/x/${a194}?", "/v1/x/${e194}", "/v1/x/${e194}é",
    "/v1/x/" . ('é' x 193) . "\x{1F600}", "/v1/x/" . ('é' x 193) . "\x{1F600}z",
    '/v1/x/?', '/v1/x/?q', '/v1/x?', '/v1/x?y=/a/', '/?', '/?a=/b/c',
    '/v1/x/a/b/', '/v1/x/a/b/c?',
    '/v1/' . ('r' x 196), '/v1/' . ('r' x 197), '/v1/' . ('é' x 196), '/v1/' . ('é' x 197),
    '/v1/' . ('r' x 300) . '/', '/v1/' . ('é' x 300) . '/b',
);
is(length("/v1/x/$a194"), 200, 'a prefix of 200 characters');
is(length("/v1/x/${e194}"), 200, '... and one of 200 two-byte characters');

my $k1 = 'key_attackA';
my $k2 = 'key_attackB';
my @status = (200, 200, 200, 404, 404, 404, 429, 429, 429, 401, 401, 401, 500, 403);

# hot: each path 14 times a minute (level 8 rows of 3 requests or more),
# two minutes: 3 hours ago and the current minute
my $hot = company(plan => 'growth');
my $cold = company(plan => 'growth');
my $now = time;
my $n = 0;
my @lines;
for my $t ($now - 3 * 3600, $now - 2) {
    my $at = strftime('%Y-%m-%dT%H:%M:%S.000Z', gmtime $t);
    for my $p (@paths) {
        for my $i (0 .. $#status) {
            push @lines, join "\t", 'req_atk' . $n++, $hot,
                ($status[$i] == 401 ? '\N' : $i % 2 ? $k1 : $k2),
                ($i % 3 ? 'GET' : 'POST'), copy_text($p), $status[$i], $i,
                '\N', '\N', '\N', 'f', '\N', $at;
        }
    }
}
# cold: each path once a minute, a minute apart, over the last 5 hours
my $m = 0;
for my $p (@paths) {
    for my $i (0 .. 4) {
        my $at = strftime('%Y-%m-%dT%H:%M:%S.000Z', gmtime($now - 2 - 60 * $m++));
        push @lines, join "\t", 'req_atk' . $n++, $cold,
            ($status[$i * 3 % @status] == 401 ? '\N' : $i % 2 ? $k1 : $k2),
            ($i % 2 ? 'GET' : 'DELETE'), copy_text($p . "?i=$i"),
            $status[$i * 3 % @status], $i, '\N', '\N', '\N', 'f', '\N', $at;
    }
}
# the days of those 5 hours have their partitions, as in a database that ran
# then (one migrated since 00:00 UTC has none of yesterday's)
log_days($now - 3 * 3600, $now - 60 * $m, $now);
my ($out, $rc) = copy_batch(@lines);
is($rc, 0, scalar(@lines) . ' rows for two companies in one batch') or diag $out;
like($out, qr/^@{[ scalar @lines ]}$/m, '... all taken');
is(psql_value("SELECT count(*) FROM request_logs WHERE company_id IN ('$hot', '$cold')"),
   scalar @lines, '... all in request_logs (none waits)');
psql('ANALYZE request_logs; ANALYZE request_log_minutes');

my $gte = strftime('%Y-%m-%dT%H:%M:%SZ', gmtime($now - 6 * 3600));
my @filters = (
    {}, { method => 'GET' }, { api_key_id => $k1 }, { status => '429' },
    { 'status[class]' => '4' }, { method => 'POST', api_key_id => $k2, 'status[class]' => '2' },
);

sub where {
    my ($f) = @_;
    my @w;
    push @w, 'method = ' . lit($f->{method}) if exists $f->{method};
    push @w, 'api_key_id = ' . lit($f->{api_key_id}) if exists $f->{api_key_id};
    push @w, "status = $f->{status}" if exists $f->{status};
    push @w, sprintf('status BETWEEN %d AND %d', $f->{'status[class]'} * 100,
                     $f->{'status[class]'} * 100 + 99) if exists $f->{'status[class]'};
    push @w, 'starts_with(path, ' . lit($f->{'path[prefix]'}) . ')'
        if exists $f->{'path[prefix]'};
    return join ' AND ', 'TRUE', @w;
}

my $counts = join " || '/' || ", 'count(*)',
    (map { "count(*) FILTER (WHERE status BETWEEN ${_}00 AND ${_}99)" } 1 .. 5),
    (map { "count(*) FILTER (WHERE status = $_)" } 401, 403, 429);

sub stats_counts {
    my ($s) = @_;
    my $t = $s->{total} // {};
    return join '/', map { $_ // 'none' } $t->{requests},
        (map { $t->{status_classes}{"${_}xx"} } 1 .. 5),
        (map { $t->{refused}{$_} } 401, 403, 429);
}

# every case: the raw rows' counts (the owner, in one session), the stats
# (worksible_api, in one session)
my (@cases, @want_sql, @stats_sql);
for my $c ($hot, $cold) {
    for my $p (@prefixes) {
        for my $f (@filters) {
            my %f = (%$f, 'path[prefix]' => $p);
            push @cases, [ $c eq $hot ? 'hot' : 'cold', \%f ];
            push @want_sql, "SELECT $counts FROM request_logs WHERE company_id = '$c' AND "
                            . where(\%f) . ';';
            my $j = json()->encode({ %f, 'created_at[gte]' => $gte });
            push @stats_sql, "SELECT worksible_request_log_stats('$c', '/v1/request_logs/stats', "
                             . Worksible::Test::sql_literal($j) . ');';
        }
    }
}
my ($want, $e1, $r1) = psql_as('worksible', join "\n", @want_sql);
is($r1, 0, 'the raw counts') or diag $e1;
my ($got, $e2, $r2) = psql_as('worksible_api', join "\n", @stats_sql);
is($r2, 0, 'the stats, as worksible_api') or diag $e2;
my @want = split /\n/, $want, -1;
my @got = split /\n/, $got, -1;
is(scalar @got, scalar @cases, 'a stats answer per case');
my $bad = 0;
for my $i (0 .. $#cases) {
    my ($what, $f) = @{ $cases[$i] };
    my $s = eval { json()->decode($got[$i] // '') } // {};
    my $ok = is(stats_counts($s), $want[$i],
                "$what " . json()->encode($f) . ': the rows\' counts');
    $bad++ unless $ok;
}
is($bad, 0, 'no case differs');
cmp_ok((grep { $_ !~ m{^0/} } @want), '>=', @cases / 2, 'most cases count some rows');

# both ways of a deep prefix were taken: level 8 under the hot company (a
# count added to it alone, in a transaction rolled back, shows), the rows
# under the cold one (1 added: its rows stay under two requests each)
for my $case ([ $hot, "/v1/x/\x{1F600}", 1000, 1000 ], [ $cold, "/v1/x/\x{1F600}", 1, 0 ],
              [ $hot, "/v1/x/$a194", 1000, 1000 ], [ $hot, "/v1/x/${e194}", 1000, 1000 ]) {
    my ($c, $p, $add, $shows) = @$case;
    my $j = json()->encode({ 'path[prefix]' => $p, 'created_at[gte]' => $gte });
    my $raw = psql_value("SELECT count(*) FROM request_logs WHERE company_id = '$c'
                          AND starts_with(path, " . lit($p) . ')');
    my ($v, $e) = psql_as('postgres', "BEGIN;
        UPDATE request_log_minutes SET requests = requests + $add
        WHERE company_id = '$c' AND level = 8 AND route = " . lit($p) . " AND status = 200
          AND minute = (SELECT max(minute) FROM request_log_minutes
                        WHERE company_id = '$c' AND level = 8 AND route = " . lit($p) . "
                          AND status = 200);
        SET LOCAL ROLE worksible_api;
        SELECT worksible_request_log_stats('$c', '/v1/request_logs/stats', "
        . Worksible::Test::sql_literal($j) . ")->'total'->>'requests';
        ROLLBACK;");
    is($v, $raw + $shows, ($c eq $hot ? 'hot' : 'cold') . ' ' . json()->encode($p)
       . ($shows ? ': level 8 serves it' : ': the rows serve it')) or diag $e;
}

# --- through HTTP ------------------------------------------------------------

my $key = api_key($hot, 'request_logs:read');
nginx_start(name => 'request_log_stats_attack', port => 1967, http => http_config(),
    server => 'location /v1/ { worksible_auth on; worksible_api; }');
my %auth = (Authorization => "Bearer $key->{key}");

sub pct {
    my ($s) = @_;
    my $b = encode_utf8($s);
    $b =~ s/([^A-Za-z0-9\/._~-])/sprintf '%%%02X', ord $1/ge;
    return $b;
}

for my $p ('/v1/x/%', '/v1/x/_', '/v1/x/\\', "/v1/x/'", "/v1/x/\x{1F600}",
           "/v1/x/\x{10FFFF}", "/v1/x/$a194", "/v1/x/${a194}b", "/v1/x/${e194}",
           "/v1/x/${e194}é", '/v1/x/?', '/v1/x?', '/', '/v1/%') {
    my $res = http('GET', '/v1/request_logs/stats?created_at[gte]=' . $gte . '&path=' . pct($p),
                   \%auth);
    my $s = eval { json()->decode($res->{body}) } // {};
    my $w = psql_value("SELECT $counts FROM request_logs WHERE company_id = '$hot' AND "
                       . where({ 'path[prefix]' => $p }));
    is($res->{status} . ' ' . stats_counts($s), "200 $w",
       'HTTP ' . json()->encode($p) . ': 200, the rows\' counts');
}

# the list's path filter (LIKE, its metacharacters escaped) takes the
# same rows
for my $p ('/v1/x/%', '/v1/x/_', '/v1/x/\\', "/v1/x/'", "/v1/x/\x{10FFFF}",
           "/v1/x/${a194}b", '/v1/x?') {
    my $w = psql_value("SELECT count(*) FROM request_logs WHERE company_id = '$hot' AND "
                       . where({ 'path[prefix]' => $p }));
    my $res = http('GET', '/v1/request_logs?limit=100&path=' . pct($p), \%auth);
    my $l = eval { json()->decode($res->{body}) } // {};
    my @bad = grep { index($_->{path}, $p) != 0 } @{ $l->{data} // [] };
    is($res->{status} . ' ' . scalar(@{ $l->{data} // [] }) . ' ' . scalar(@bad),
       "200 $w 0", 'list ' . json()->encode($p) . ': the rows that start with it');
}

for my $case ([ '', 'empty' ], [ 'v1/x', 'no leading "/"' ], [ '/v1/x%00', 'a NUL' ],
              [ '/v1/x%FF', 'not UTF-8' ], [ '/v1/x%C3', 'a character cut' ],
              [ '/' . ('a' x 512), 'of 513 characters' ]) {
    my ($q, $what) = @$case;
    my $res = http('GET', "/v1/request_logs/stats?path=$q", \%auth);
    is($res->{status}, 400, "path $what: 400");
    like($res->{body}, problem(400, 'parameter_invalid', 'path'), '... a problem naming path');
}
my $res = http('GET', '/v1/request_logs/stats?path=/' . ('a' x 511), \%auth);
is($res->{status}, 200, 'path of 512 bytes: 200');
# the limit is 512 characters (docs/openapi.yaml's maxLength), not bytes
$res = http('GET', '/v1/request_logs/stats?path=' . pct('/' . ('é' x 511)), \%auth);
is($res->{status}, 200, 'path of 512 two-byte characters (1023 bytes): 200');
$res = http('GET', '/v1/request_logs/stats?path=' . pct('/' . ('é' x 512)), \%auth);
is($res->{status}, 400, 'path of 513 characters: 400');
like($res->{body}, problem(400, 'parameter_invalid', 'path'), '... a problem naming path');
$res = http('GET', '/v1/request_logs?path=' . pct('/' . ('é' x 511)), \%auth);
is($res->{status}, 200, 'the list too: 512 characters, 200');

nginx_stop();

done_testing();
