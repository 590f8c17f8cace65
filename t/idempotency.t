# Idempotency-Key (API.md, Idempotency): replays byte for byte, 422 on
# each kind of mismatch, 409 while the first runs, malformed and missing
# keys, company scope, concurrency (one connection each, two nginx
# servers), a client that leaves, Redis flushed (PostgreSQL still
# replays), Redis down, and proxied services (the lock renewed; 5xx,
# timeouts, max_size, a client that left and a failed store kept as
# "outcome unknown"; a service never reached released), against the rows in PostgreSQL,
# the records in Redis and a service that counts its calls.

use strict;
use warnings;

use IO::Socket::INET;
use POSIX ();
use Test::More;
use Time::HiRes qw(sleep time);
use Worksible::Test qw(company api_key http_config nginx_start nginx_stop
    nginx_clone http request at_once leave psql_value redis_cli stack json
    problem service);

my $top = $ENV{WORKSIBLE_TOP};
my $counter = "$top/t/servroot_idempotency.calls";

# --- a service behind proxy_pass that counts its calls (Worksible::Test) ---

sub calls { Worksible::Test::calls($counter) }

my $service = service(1973, $counter);

my $http = http_config() . '
    server {
        listen 127.0.0.1:1972;
        location /v1/ { worksible_auth on; worksible_idempotency on ttl=2s;
                        worksible_api; }
    }';

my $server = '
        location /v1/ { worksible_auth on; worksible_rate_limit on;
                        worksible_idempotency on; worksible_api; }
        location /svc/ { worksible_auth on; worksible_rate_limit on;
                         worksible_idempotency on lock=1s max_size=1k;
                         proxy_pass http://127.0.0.1:1973; }
        location /strict/ { worksible_auth on;
                            worksible_idempotency required;
                            proxy_pass http://127.0.0.1:1973; }
        location /hurried/ { worksible_auth on; worksible_idempotency on;
                             proxy_read_timeout 1s;
                             proxy_pass http://127.0.0.1:1973; }
        location /nowhere/ { worksible_auth on; worksible_idempotency on;
                             proxy_pass http://127.0.0.1:1; }
        location /patient/ { worksible_auth on;
                             worksible_idempotency on lock=1s;
                             proxy_ignore_client_abort on;
                             proxy_pass http://127.0.0.1:1973; }';

my $prefix = nginx_start(name => 'idempotency', port => 1970, workers => 2,
    http => $http, server => $server);

my $cmp = company(name => 'Idem Co');
my $key = api_key($cmp, 'freelancers:write projects:write api_keys:write reports:read')->{key};
my $other_cmp = company(name => 'Other Idem Co');
my $other = api_key($other_cmp, 'freelancers:write')->{key};
my $n = 0;

# POST $path with JSON $body and Idempotency-Key $idem (undef: none)
sub post {
    my ($path, $idem, $body, %o) = @_;
    my %h = (Authorization => 'Bearer ' . ($o{key} // $key),
             'Content-Type' => 'application/json');
    $h{'Idempotency-Key'} = $idem if defined $idem;
    return http($o{method} // 'POST', $path, \%h, body => $body,
                port => $o{port} // 1970);
}

sub rows {
    my ($email) = @_;
    return psql_value("SELECT count(*) FROM freelancers WHERE email = '$email'");
}

sub freelancer {
    my ($email) = @_;
    return qq({"email":"$email","name":"Idem Person","country":"DE"});
}

# --- replay: status, headers, body bytes --------------------------------------

my $body = freelancer('replay@example.com');
my $first = post('/v1/freelancers', 'create-1', $body);
is($first->{status}, 201, 'the first request runs: 201');
ok(!exists $first->{headers}{'idempotent-replayed'},
   'the first response is not marked replayed');

my $again = post('/v1/freelancers', 'create-1', $body);
is($again->{status}, 201, 'the repeat gets 201');
is($again->{body}, $first->{body}, 'the repeat gets the same body, byte for byte');
is($again->{headers}{'idempotent-replayed'}, 'true', 'Idempotent-Replayed: true');
is($again->{headers}{location}, $first->{headers}{location}, 'the same Location');
is($again->{headers}{'content-type'}, $first->{headers}{'content-type'},
   'the same Content-Type');
isnt($again->{headers}{'x-request-id'}, $first->{headers}{'x-request-id'},
     'a fresh X-Request-Id');
ok($again->{headers}{date}, 'a Date');
is($again->{headers}{'x-ratelimit-remaining'},
   $first->{headers}{'x-ratelimit-remaining'} - 1,
   'fresh rate-limit headers: the replay is charged');
is(rows('replay@example.com'), 1, 'one row in PostgreSQL');

my $record = "worksible:idem:{$cmp}:create-1";
is(redis_cli('HGET', $record, 'status'), '201', 'Redis keeps the status');
is(redis_cli('HGET', $record, 'body'), $first->{body}, 'and the body');
my $ttl = redis_cli('TTL', $record);
ok($ttl > 86000 && $ttl <= 86400, "for 24 hours (TTL $ttl)");
is(psql_value("SELECT count(*) FROM idempotency_records WHERE company_id = '$cmp'
               AND idempotency_key = 'create-1'
               AND expires_at BETWEEN now() + interval '23 hours 59 minutes'
                                  AND now() + interval '24 hours'"),
   1, 'PostgreSQL keeps the outcome of the write for 24 hours');

# the request log says which one was replayed
sleep 1.5;
is(psql_value("SELECT replayed FROM request_logs WHERE id = '"
              . $again->{headers}{'x-request-id'} . "'"), 't',
   'the request log marks the replay');
is(psql_value("SELECT replayed FROM request_logs WHERE id = '"
              . $first->{headers}{'x-request-id'} . "'"), 'f',
   'and not the first');

# --- the structured-field form is the same key -------------------------------

my $quoted = post('/v1/freelancers', '"create-1"', $body);
is($quoted->{headers}{'idempotent-replayed'}, 'true',
   '"create-1" (a structured-field string) is the key create-1');
my $escaped = post('/v1/freelancers', '"a\\"b\\\\c"', freelancer('esc@example.com'));
is($escaped->{status}, 201, 'a quoted key with \\" and \\\\ escapes');
ok(redis_cli('EXISTS', "worksible:idem:{$cmp}:a\"b\\c"),
   'is unquoted before use');

# --- 422 on each kind of mismatch --------------------------------------------

for my $case (
    [ 'another body', 'POST', '/v1/freelancers', freelancer('other@example.com') ],
    [ 'the same body spaced differently', 'POST', '/v1/freelancers', "$body " ],
    [ 'another path', 'POST', '/v1/projects', $body ],
    [ 'another query', 'POST', '/v1/freelancers?x=1', $body ],
    [ 'another method', 'PATCH', '/v1/freelancers', $body ],
    [ 'a query written into the path', 'POST', '/v1/freelancers%3Fx=1', $body ],
) {
    my ($name, $method, $path, $b) = @$case;
    my $res = post($path, 'create-1', $b, method => $method);
    is($res->{status}, 422, "$name: 422");
    like($res->{body}, problem(422, 'idempotency_key_reused'), "$name: idempotency_key_reused");
}
is(rows('other@example.com'), 0, 'a mismatch creates nothing');

# --- malformed and missing keys ----------------------------------------------

for my $case (
    [ 'empty', '' ],
    [ 'too long', 'k' x 256 ],
    [ 'with a space', 'a b' ],
    [ 'not ASCII', "caf\xc3\xa9" ],
    [ 'an unterminated string', '"abc' ],
    [ 'a bad escape', '"a\\nb"' ],
    [ 'an empty string', '""' ],
) {
    my ($name, $idem) = @$case;
    my $res = post('/v1/freelancers', $idem, freelancer('bad-key@example.com'));
    is($res->{status}, 400, "a key $name: 400");
    like($res->{body}, problem(400, 'idempotency_key_invalid'), "a key $name: idempotency_key_invalid");
}
my $max = post('/v1/freelancers', 'k' x 255, freelancer('bad-key@example.com'));
is($max->{status}, 201, 'a key of 255 characters is fine');

{
    my $res = http('POST', '/v1/freelancers', { Authorization => "Bearer $key",
        'Content-Type' => 'application/json', 'Idempotency-Key' => [ 'a', 'b' ] },
        port => 1970, body => freelancer('two-keys@example.com'));
    like("$res->{status} $res->{body}", qr{^400 .*"code":"idempotency_key_invalid"}s,
         'two Idempotency-Key headers: 400 idempotency_key_invalid');
}
is(rows('bad-key@example.com'), 1, 'malformed keys create nothing');
is(rows('two-keys@example.com'), 0, 'two keys create nothing');

my $missing = post('/strict/things', undef, '{}');
is($missing->{status}, 400, 'worksible_idempotency required: a POST without the header is 400');
like($missing->{body}, problem(400, 'idempotency_key_missing'), 'idempotency_key_missing');
is(http('GET', '/strict/things', { Authorization => "Bearer $key" })->{status}, 201,
   'a GET needs no key there');

# --- scoped to the company ---------------------------------------------------

my $theirs = post('/v1/freelancers', 'create-1', $body, key => $other);
is($theirs->{status}, 201, "another company's same key and body runs");
ok(!exists $theirs->{headers}{'idempotent-replayed'}, 'and is not a replay');
isnt($theirs->{body}, $first->{body}, 'it gets its own freelancer');
is(rows('replay@example.com'), 2, 'one row per company');

# --- errors: stored below 500 ------------------------------------------------

my $invalid = post('/v1/freelancers', 'invalid-1', '{"email":"nope"}');
is($invalid->{status}, 400, 'a 400 of the API');
my $invalid2 = post('/v1/freelancers', 'invalid-1', '{"email":"nope"}');
is($invalid2->{body}, $invalid->{body},
   'is replayed byte for byte, its request_id the first one\'s');
is($invalid2->{headers}{'idempotent-replayed'}, 'true', 'marked replayed');

# --- the key of a new API key is never stored --------------------------------

my $kbody = '{"name":"idem key","scopes":["freelancers:write"]}';
my $k1 = post('/v1/api_keys', 'key-1', $kbody);
is($k1->{status}, 201, 'POST /v1/api_keys with a key: 201');
my $secret = json()->decode($k1->{body})->{key};
like($secret, qr/^wsk_live_/, 'the first response shows the key');
my $k2 = post('/v1/api_keys', 'key-1', $kbody);
is(json()->decode($k2->{body})->{key}, undef, 'its replay has "key": null');
(my $nulled = $k1->{body}) =~ s/"key":"[^"]+"/"key":null/;
is($k2->{body}, $nulled, 'and is otherwise byte for byte the first');
unlike(redis_cli('HGET', "worksible:idem:{$cmp}:key-1", 'body'), qr/\Q$secret\E/,
       'Redis never holds the key');
unlike(psql_value("SELECT result FROM idempotency_records WHERE idempotency_key = 'key-1'"),
       qr/\Q$secret\E/, 'nor PostgreSQL');
is(psql_value("SELECT count(*) FROM api_keys WHERE name = 'idem key'"), 1,
   'one API key was created');

# --- Redis forgets: PostgreSQL still replays, nothing is written twice ------

redis_cli('DEL', $record, "worksible:idem:{$cmp}:key-1");
my $pg = post('/v1/freelancers', 'create-1', $body);
is($pg->{status}, 201, 'Redis lost the record: the retry gets 201');
is($pg->{body}, $first->{body}, 'the original body, from PostgreSQL');
is($pg->{headers}{'idempotent-replayed'}, 'true', 'marked replayed');
is($pg->{headers}{location}, $first->{headers}{location}, 'with its Location');
is(rows('replay@example.com'), 2, 'and no new row');
is(redis_cli('HGET', $record, 'body'), $first->{body}, 'Redis has the record again');

my $pgk = post('/v1/api_keys', 'key-1', $kbody);
is($pgk->{body}, $nulled, 'a new API key replayed from PostgreSQL: "key": null, the same bytes');
is(psql_value("SELECT count(*) FROM api_keys WHERE name = 'idem key'"), 1,
   'and still one API key');

redis_cli('DEL', $record);
my $pg422 = post('/v1/freelancers', 'create-1', freelancer('late@example.com'));
is($pg422->{status}, 422, 'Redis lost it, another body: 422 from PostgreSQL\'s record');
is(rows('late@example.com'), 0, 'nothing written');
is(redis_cli('EXISTS', $record), '0', 'and the key is not taken in Redis');

# Redis forgets, and the write would now fail: the record answers first
my $prj = json()->decode(post('/v1/projects', undef,
    '{"name":"Budgeted","budget":100,"currency":"EUR"}')->{body})->{id};
my $w1 = post("/v1/projects/$prj", 'budget-1', '{"budget":200}', method => 'PATCH');
is($w1->{status}, 200, 'a PATCH with a key');
post("/v1/projects/$prj", undef, '{"budget":null,"currency":null}', method => 'PATCH');
redis_cli('DEL', "worksible:idem:{$cmp}:budget-1");
my $w2 = post("/v1/projects/$prj", 'budget-1', '{"budget":200}', method => 'PATCH');
is($w2->{status}, 200, 'Redis forgot it and the same PATCH would now fail: still its 200');
is($w2->{body}, $w1->{body}, 'the first body, from PostgreSQL');
is(psql_value("SELECT coalesce(budget::text, 'null') FROM projects WHERE id = '$prj'"), 'null',
   'and the write did not run again');

# --- ten at once, each on its own connection ----------------------------------

# $count identical POSTs with one key at once: how many got each status
# ("201 replayed" for a replay)
sub burst {
    my ($count, $idem, $b, @ports) = @_;
    my $req = request('POST', '/v1/freelancers', { Authorization => "Bearer $key",
        'Content-Type' => 'application/json', 'Idempotency-Key' => $idem }, $b);
    my %seen;
    for my $res (at_once(\@ports, ($req) x $count)) {
        my $code = $res->{status};
        $code .= ' replayed' if ($res->{headers}{'idempotent-replayed'} // '') eq 'true';
        $seen{$code}++;
    }
    return \%seen;
}

my $seen = burst(10, 'burst-1', freelancer('burst@example.com'), 1970);
is($seen->{201}, 1, 'ten at once: exactly one runs (201)');
is(($seen->{409} // 0) + ($seen->{'201 replayed'} // 0), 9,
   'the other nine get 409 or the replay')
    or diag(explain($seen));
is(rows('burst@example.com'), 1, 'one row');

# two nginx servers on one Redis and one PostgreSQL
my $stop_second = nginx_clone($prefix, 'idempotency2', { 1970 => 1971, 1972 => 1974 });
$seen = burst(10, 'burst-2', freelancer('burst2@example.com'), 1970, 1971);
is($seen->{201}, 1, 'ten at once on two servers: exactly one runs');
is(rows('burst2@example.com'), 1, 'one row');
$stop_second->();

# --- a client that leaves mid-request ----------------------------------------

# hold the table so that the write waits, send, leave, let it go
my $locker = fork // die;
if ($locker == 0) {
    exec 'psql', '-X', '-q', '-c',
        'BEGIN; LOCK TABLE freelancers IN SHARE ROW EXCLUSIVE MODE; SELECT pg_sleep(1.5); COMMIT;';
}
sleep 0.3;
leave(1970, request('POST', '/v1/freelancers', { Authorization => "Bearer $key",
    'Content-Type' => 'application/json', 'Idempotency-Key' => 'leaver-1' },
    freelancer('leaver@example.com')), 0.3);
waitpid($locker, 0);
sleep 0.5;
ok(rows('leaver@example.com') <= 1, 'the client left: at most one row');
my $back = post('/v1/freelancers', 'leaver-1', freelancer('leaver@example.com'));
is($back->{status}, 201, 'its retry gets 201');
is(rows('leaver@example.com'), 1, 'and there is exactly one row');

# a client that leaves while Redis still holds its reservation back
my $busy_redis = fork // die;
if ($busy_redis == 0) {
    # Redis runs one script at a time: 250 ms of this delays the next command
    exec 'redis-cli', '-h', '127.0.0.1', '-p', (split /:/, $ENV{TEST_NGINX_REDIS})[1],
        'EVAL', "local s = redis.call('TIME') repeat local n = redis.call('TIME') "
              . "until (n[1] - s[1]) * 1000000 + n[2] - s[2] > 250000 return 1", '0';
}
sleep 0.05;
leave(1972, request('POST', '/v1/freelancers', { Authorization => "Bearer $key",
    'Content-Type' => 'application/json', 'Idempotency-Key' => 'early-1' },
    freelancer('early@example.com')), 0.05);
waitpid($busy_redis, 0);
sleep 0.1;
is(redis_cli('EXISTS', "worksible:idem:{$cmp}:early-1"), '0',
   'a client that left before Redis answered leaves no lock behind');
is(post('/v1/freelancers', 'early-1', freelancer('early@example.com'), port => 1972)->{status},
   201, 'its retry runs at once');

# --- a proxied service --------------------------------------------------------

unlink $counter;
my $p1 = post('/svc/things', 'svc-1', '{"a":1}');
is($p1->{status}, 201, 'a proxied POST runs');
my $p2 = post('/svc/things', 'svc-1', '{"a":1}');
is($p2->{body}, $p1->{body}, 'its repeat gets the same body');
is($p2->{headers}{'idempotent-replayed'}, 'true', 'marked replayed');
is($p2->{headers}{location}, '/things/1', 'with the service\'s Location');
is(calls(), 1, 'the service was called once');
my $t1st = post('/svc/text', 'svc-text', '{}');
my $t2nd = post('/svc/text', 'svc-text', '{}');
is($t2nd->{headers}{'content-type'}, 'text/plain; charset=utf-8',
   'a replayed Content-Type with a charset is the service\'s, byte for byte');
is($t2nd->{headers}{'content-type'}, $t1st->{headers}{'content-type'}, 'as the first');

# a service's 5xx, a timeout, a body too big to keep: the service was
# reached and may have acted, so the key is kept as "outcome unknown" for
# its ttl, and never runs again (issue 14)
sub unknown_ok {
    my ($res, $what) = @_;
    is($res->{status}, 409, "$what: the retry gets 409");
    like($res->{body}, problem(409, 'idempotency_outcome_unknown'), '... idempotency_outcome_unknown');
    ok(!exists $res->{headers}{'retry-after'}, '... with no Retry-After (do not retry this key)');
}
my $f1 = post('/svc/fail', 'svc-fail', '{}');
is($f1->{status}, 500, 'the service fails: 500');
unknown_ok(post('/svc/fail', 'svc-fail', '{}'), 'a 5xx of the service');
is(calls(), 3, 'the service was called once for it');
like(redis_cli('PTTL', "worksible:idem:{$cmp}:svc-fail"), qr/^\d{6,}$/,
     'the record is kept for the key\'s ttl (24 h), not the lock');

my $t1 = post('/hurried/slow', 'svc-slow', '{}');
is($t1->{status}, 504, 'the service times out: 504');
my $before = calls();
unknown_ok(post('/hurried/slow', 'svc-slow', '{}'), 'a timeout (504 after the service got the request)');
is(calls(), $before, 'the service was not called again');
sleep 1.5;

my $b1 = post('/svc/big', 'svc-big', '{}');
is(length($b1->{body}), 2048, 'a response over max_size passes whole');
unknown_ok(post('/svc/big', 'svc-big', '{}'), 'a response over max_size');
like(Worksible::Test::slurp("$prefix/logs/error.log"),
     qr/worksible idempotency: not stored, the body is over max_size: the key "svc-big" is kept as outcome unknown \(409\) for its ttl/,
     'with a warning');

# only a request that provably never reached the service releases its key
my $r1 = post('/nowhere/x', 'svc-nowhere', '{}');
is($r1->{status}, 502, 'the service refuses connections: 502');
is(redis_cli('EXISTS', "worksible:idem:{$cmp}:svc-nowhere"), '0',
   'no byte reached it: the key is released');
is(post('/nowhere/x', 'svc-nowhere', '{}')->{status}, 502, 'and a retry runs (502 again, not 409)');

# --- 409 while the first runs; the lock is renewed ----------------------------

unlink $counter;
my $slow = fork // die;
if ($slow == 0) {
    my $r = post('/svc/slow', 'svc-inflight', '{}');
    POSIX::_exit($r->{status} == 201 ? 0 : 1);
}
sleep 0.5;
my $busy = post('/svc/slow', 'svc-inflight', '{}');
is($busy->{status}, 409, 'the same key while the first runs: 409');
like($busy->{body}, problem(409, 'idempotency_request_in_progress'), 'idempotency_request_in_progress');
is($busy->{headers}{'retry-after'}, '1', 'with Retry-After');
sleep 1;
is(post('/svc/slow', 'svc-inflight', '{}')->{status}, 409,
   'still 409 after the lock TTL (1 s): the lock is renewed while it runs');
waitpid($slow, 0);
is($? >> 8, 0, 'the first got its 201');
my $after = post('/svc/slow', 'svc-inflight', '{}');
is($after->{headers}{'idempotent-replayed'}, 'true', 'then the repeat is a replay');
is(calls(), 1, 'the slow service ran once');

# a proxied request whose client left: the service got it, its outcome is
# unknown; the key is kept as such for its ttl, never run again
unlink $counter;
leave(1970, request('POST', '/svc/slow', { Authorization => "Bearer $key",
    'Content-Type' => 'application/json', 'Idempotency-Key' => 'svc-left' }, '{}'), 0.3);
sleep 0.2;
unknown_ok(post('/svc/slow', 'svc-left', '{}'), 'a proxied request whose client left');
sleep 1.2;
unknown_ok(post('/svc/slow', 'svc-left', '{}'), 'after the lock TTL too');
sleep 1;
is(calls(), 1, 'the service ran once');

# proxy_ignore_client_abort on: nginx lets the service finish and still
# passes its response through the filters, so it is kept: the retry of a
# client that left gets the replay (README)
unlink $counter;
leave(1970, request('POST', '/patient/slow', { Authorization => "Bearer $key",
    'Content-Type' => 'application/json', 'Idempotency-Key' => 'svc-patient' }, '{}'), 0.3);
my $wait = post('/patient/slow', 'svc-patient', '{}');
is($wait->{status}, 409, 'proxy_ignore_client_abort: while the service still runs, 409 ...');
like($wait->{body}, problem(409, 'idempotency_request_in_progress'), '... in progress');
sleep 2.5;
my $kept = post('/patient/slow', 'svc-patient', '{}');
is($kept->{status}, 201, 'once it finished, the retry gets its 201 ...');
is($kept->{headers}{'idempotent-replayed'}, 'true', '... replayed');
is($kept->{body}, '{"call":1,"body":"{}"}', '... the body the service sent the client that left');
is(calls(), 1, 'the service ran once, to its end');

# Redis stalls while the response is stored: the store may fail; either way
# a retry is the replay or 409 outcome unknown, never a second run
unlink $counter;
my ($redis_pid) = redis_cli('INFO', 'server') =~ /process_id:(\d+)/ or die 'no Redis pid';
my $staller = fork // die;
if ($staller == 0) {
    Time::HiRes::sleep(1.8);
    kill 'STOP', $redis_pid;
    Time::HiRes::sleep(0.8);
    kill 'CONT', $redis_pid;
    POSIX::_exit(0);
}
my $st1 = post('/svc/slow', 'svc-stall', '{}');
waitpid($staller, 0);
kill 'CONT', $redis_pid;
sleep 1.5;
my $st2 = post('/svc/slow', 'svc-stall', '{}');
ok($st2->{status} == 409 && $st2->{body} =~ /idempotency_outcome_unknown/
   || ($st2->{headers}{'idempotent-replayed'} // '') eq 'true',
   "Redis stalled during the store: the retry is the replay or outcome unknown ($st2->{status})");
is(calls(), 1, 'the service ran once');

# --- retention ---------------------------------------------------------------

my $s1 = post('/v1/freelancers', 'short-1', freelancer('short@example.com'), port => 1972);
is($s1->{status}, 201, 'ttl=2s: the first runs');
is(post('/v1/freelancers', 'short-1', freelancer('short@example.com'), port => 1972)
       ->{headers}{'idempotent-replayed'}, 'true', 'and is replayed meanwhile');
sleep 2.5;
my $s2 = post('/v1/freelancers', 'short-1', freelancer('short@example.com'), port => 1972);
is($s2->{status}, 201, 'after the retention time the key is free again');
ok(!exists $s2->{headers}{'idempotent-replayed'}, 'and the request runs');
is(rows('short@example.com'), 2, 'a second row');
post('/v1/freelancers', 'short-2', freelancer('short2@example.com'), port => 1972);
sleep 2.5;
post('/v1/freelancers', 'short-3', freelancer('short3@example.com'), port => 1972);
is(psql_value("SELECT count(*) FROM idempotency_records
               WHERE company_id = '$cmp' AND expires_at <= now()"), 0,
   'a write deletes its company\'s expired records');

# --- Redis down: never run unprotected ----------------------------------------

stack('redis-stop');
# (the location without rate limits: they would answer 503 first)
my $down = post('/v1/freelancers', 'down-1', freelancer('down@example.com'), port => 1972);
is($down->{status}, 503, 'Redis down: a request with a key gets 503');
like($down->{body}, problem(503, 'service_unavailable'), 'service_unavailable');
like($down->{headers}{'retry-after'} // '', qr/^\d+$/, 'with Retry-After');
is(rows('down@example.com'), 0, 'and nothing ran');
is(post('/v1/freelancers', undef, freelancer('nokey@example.com'), port => 1972)->{status},
   201, 'a request without a key still runs');
stack('redis-start');
sleep 0.5;
my $up;
for (1 .. 40) {
    $up = post('/v1/freelancers', 'down-1', freelancer('down@example.com'), port => 1972);
    last if $up->{status} == 201;
    sleep 0.25;
}
is($up->{status}, 201, 'Redis back: the retry runs');

nginx_stop();
unlink $counter;

done_testing();
