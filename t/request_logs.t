# The request log: every request of a worksible_auth location becomes a
# row (refused ones too), in batches that never make a request wait; the
# company reads its own with GET /v1/request_logs; PostgreSQL down drops
# rows, counts them, and logging resumes after.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(sleep time);
use Worksible::Test qw(company api_key psql psql_value http_config
    nginx_start nginx_stop http json stack);

my $company = company(plan => 'growth');
my $one = api_key(company(plan => Worksible::Test::plan(limit => 1, window => 60)),
                  'company:read');
my $key = api_key($company, 'company:read request_logs:read');
my $other = api_key(company(plan => 'growth'), 'company:read request_logs:read');

nginx_start(name => 'request_logs', port => 1980, workers => 2,
    http => http_config() . '
    worksible_key_cache zone=keys:1m;
    server { listen 127.0.0.1:1979; location / { return 200 "ok\n"; } }',
    server => 'location /v1/ { worksible_auth on; worksible_rate_limit on; worksible_api; }
               location /svc/ { worksible_auth on; proxy_pass http://127.0.0.1:1979; }
               location = /metrics { worksible_metrics; }');

my %auth = (Authorization => "Bearer $key->{key}", 'User-Agent' => 'log-test/1.0');
my %ids;
for my $req (['limited1', '/v1/companies/me', { Authorization => "Bearer $one->{key}" }],
             ['limited2', '/v1/companies/me', { Authorization => "Bearer $one->{key}" }],
             ['ok', '/v1/companies/me', \%auth], ['scope', '/v1/freelancers', \%auth],
             ['nokey', '/v1/companies/me', { 'User-Agent' => 'log-test/1.0' }],
             ['other', '/v1/companies/me', { Authorization => "Bearer $other->{key}" }],
             ['secret', "/v1/companies/me?token=$key->{key}", \%auth])
{
    my $res = http('GET', $req->[1], $req->[2]);
    $ids{ $req->[0] } = $res->{headers}{'x-request-id'};
}

sub rows_of {
    my @ids = @_;
    my $in = join ',', map { "'$_'" } @ids;
    my $deadline = time + 8;
    my $rows;
    do {
        sleep 0.3;
        $rows = psql("SELECT id, company_id, api_key_id, method, path, status, latency_ms,
                             host(ip), user_agent, replayed, ratelimit_remaining
                      FROM request_logs WHERE id IN ($in) ORDER BY created_at, id");
    } until @$rows == @ids || time > $deadline;
    return { map { $_->[0] => $_ } @$rows };
}

my $rows = rows_of(values %ids);
is(scalar keys %$rows, 7, 'every request became a row, within seconds');
is($rows->{ $ids{limited2} }[5], 429, 'a rate-limited request is logged: 429');
is($rows->{ $ids{limited2} }[10], 0, '... with no budget left');

# the row is JSON written by the module itself: text as it came (quotes,
# backslashes, controls, UTF-8), cut at a character, "?" when not UTF-8
my %ua = (odd => qq{q"b\\s \x01\x7f \xc3\xa9 \xe6\x97\xa5 end},
          bad => "bad \xff\xfe", long => "\xc3\xa9" x 300,
          pasted => "tool/1 $key->{key} (x)",
          encoded => 't/2 Wsk%5Flive%5F' . substr($key->{key}, 9),
          bare => 'wsk_', late => ('x' x 500) . $key->{key});
my %uid;
for my $k (sort keys %ua) {
    my $res = http('GET', '/v1/companies/me',
                   { Authorization => "Bearer $key->{key}", 'User-Agent' => $ua{$k},
                     'Idempotency-Key' => "ik-$k-$key->{key}" });
    $uid{$k} = $res->{headers}{'x-request-id'};
}
my $urows = rows_of(values %uid);
is($urows->{ $uid{odd} }[8], $ua{odd}, 'a user agent with quotes, a backslash, controls and UTF-8 is logged as it came');
is($urows->{ $uid{bad} }[8], '?', 'one that is not UTF-8 is logged as "?"');
is($urows->{ $uid{long} }[8], "\xc3\xa9" x 256, 'a long one is cut at 512 bytes, at a character');

# a client that pasted its key into a header: no key reaches the log there either
is($urows->{ $uid{pasted} }[8], 'tool/1 wsk_[redacted] (x)', 'a key in the user agent is redacted');
is($urows->{ $uid{encoded} }[8], 't/2 wsk_[redacted]', 'percent-encoded, in any case');
is($urows->{ $uid{bare} }[8], 'wsk_[redacted]', 'a bare prefix');
is($urows->{ $uid{late} }[8], ('x' x 500) . 'wsk_[redacte', 'near the cut at 512 bytes');
is(psql_value("SELECT idempotency_key FROM request_logs WHERE id = '$uid{pasted}'"),
   'ik-pasted-wsk_[redacted]', 'and in the Idempotency-Key');
is(psql_value("SELECT count(*) FROM request_logs WHERE id IN ("
              . join(',', map { "'$_'" } values %uid) . ")
               AND (user_agent LIKE '%$key->{key}%' OR idempotency_key LIKE '%$key->{key}%')"),
   0, 'no row holds the key');
is(psql_value("SELECT count(*) FROM request_logs WHERE id = '$uid{odd}'
               AND created_at BETWEEN now() - interval '1 minute' AND now()"),
   1, 'created_at is the request time');

my $ok = $rows->{ $ids{ok} };
is_deeply([ @$ok[1 .. 10] ],
    [ $company, $key->{id}, 'GET', '/v1/companies/me', 200, $ok->[6], '127.0.0.1',
      'log-test/1.0', 'f', 599 ],
    'a 200: company, key, method, path, status, client, agent, rate limit');
like($ok->[6], qr/^\d+$/, 'latency in ms');
is($rows->{ $ids{scope} }[5], 403, 'a refused scope is logged: 403 ...');
is($rows->{ $ids{scope} }[1], $company, '... for its company');
is($rows->{ $ids{nokey} }[5], 401, 'a missing key is logged: 401 ...');
is($rows->{ $ids{nokey} }[1], undef, '... with no company');
unlike($rows->{ $ids{secret} }[4], qr/\Q$key->{key}\E/, 'a key in the query never reaches the log');
like($rows->{ $ids{secret} }[4], qr/token=wsk_\[redacted\]/, 'it is redacted');

# --- the query API -------------------------------------------------------------

sub logs {
    my ($query, $k) = @_;
    my $res = http('GET', "/v1/request_logs?$query",
                   { Authorization => "Bearer " . ($k // $key->{key}) });
    return ($res->{status}, $res->{status} == 200 ? json()->decode($res->{body}) : $res->{body});
}

my ($status, $list) = logs('limit=100');
is($status, 200, 'GET /v1/request_logs');
my %seen = map { $_->{id} => $_ } @{ $list->{data} };
ok($seen{ $ids{ok} } && $seen{ $ids{scope} }, 'the company sees its rows');
ok(!$seen{ $ids{other} } && !$seen{ $ids{nokey} }, "and not another company's, nor unowned ones");
is($seen{ $ids{ok} }{object}, 'request_log', 'request_log objects');

($status, $list) = logs('status=403');
is_deeply([ map { $_->{id} } @{ $list->{data} } ], [ $ids{scope} ], 'status=403');
($status, $list) = logs('status=4xx&limit=100');
ok((grep { $_->{id} eq $ids{scope} } @{ $list->{data} }), 'status=4xx');
ok(!(grep { $_->{status} < 400 } @{ $list->{data} }), 'only 4xx');
($status, $list) = logs('path=/v1/free');
is_deeply([ map { $_->{id} } @{ $list->{data} } ], [ $ids{scope} ], 'path prefix');
($status, $list) = logs("api_key_id=$key->{id}&method=GET&limit=100");
is(scalar @{ $list->{data} }, scalar(grep { ($_->{api_key_id} // '') eq $key->{id} } values %seen),
   'api_key_id and method');
($status) = logs('status=6xx');
is($status, 400, 'a bad status filter is 400');

# --- PostgreSQL down -------------------------------------------------------------

http('GET', '/svc/x', \%auth);   # the key is cached now
stack('pg-stop');
my @down;
for (1 .. 5) {
    my $res = http('GET', '/svc/x', \%auth);
    push @down, $res->{status};
}
is_deeply(\@down, [200, 200, 200, 200, 200], 'PostgreSQL down: requests keep succeeding');

sleep 2;
my $m = http('GET', '/metrics', { Accept => 'application/json' });
cmp_ok(json()->decode($m->{body})->{log_rows_dropped_total}, '>=', 5, 'the lost rows are counted');

stack('pg-start');
my $deadline = time + 10;
my $res;
do { sleep 0.3; $res = http('GET', '/svc/x', \%auth) } until time > $deadline || $res->{status} == 200;
my $back = $res->{headers}{'x-request-id'};
$rows = rows_of($back);
ok($rows->{$back}, 'PostgreSQL back: rows are written again');

# --- a reload right after requests: the old workers send their batch ------

my @before = map { http('GET', '/svc/x', \%auth)->{headers}{'x-request-id'} } 1 .. 3;
Worksible::Test::nginx_reload();
$rows = rows_of(@before);
is(scalar keys %$rows, 3, 'rows of the requests just before a reload are written');

nginx_stop();

my $log = Worksible::Test::slurp("$ENV{WORKSIBLE_TOP}/t/servroot_request_logs/logs/error.log");
my ($secret) = $key->{key} =~ /_([A-Za-z0-9]{32})$/;
unlike($log, qr/\Q$secret\E/, 'no key in any line of the error log');

done_testing();
