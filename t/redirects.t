# One client request is one state, whatever nginx does with it: index,
# try_files (to a URI and to a named location), error_page (to a URI and
# to a named location), X-Accel-Redirect from a slow upstream outliving the
# lock renewal, auth_request and deny beside idempotency, Expect:
# 100-continue on every refusal, and a slow reader of a problem body.
# Each case asserts the budget taken (a plan of 1000 a day: one charge is
# r=999), the rows in request_logs, the upstream's calls and the headers.

use strict;
use warnings;

use File::Path qw(make_path);
use IO::Socket::INET;
use POSIX ();
use Test::More;
use Time::HiRes qw(sleep time);
use Worksible::Test qw(company api_key plan http_config nginx_start
    nginx_stop http request psql redis_cli service calls call_log problem);

my $top = $ENV{WORKSIBLE_TOP};
my $counter = "$top/t/servroot_redirects.calls";
my $root = "$top/t/servroot_redirects_html";

make_path("$root/tf", "$root/data", "$root/ssi", "$root/status", "$root/err");
for (["$root/tf/index.json", qq({"index":true}\n)],
     ["$root/data/x.json", qq({"x":1}\n)],
     ["$root/err/e.json", qq({"error":true}\n)],
     ["$root/ssi/two.html",
      qq(C<!--# include virtual="/health" -->D<!--# include virtual="/v1/companies/me" -->E\n)],
     ["$root/status/two.html",
      qq(a<!--# include virtual="/health" -->b<!--# include virtual="/health" -->c\n)])
{
    open my $fh, '>', $_->[0] or die;
    print $fh $_->[1];
    close $fh;
}

my $service = service(1951, $counter);

my $svc = 'http://127.0.0.1:1951';
nginx_start(name => 'redirects', port => 1950, http => http_config() . "
    root $root;
    server {
        listen 127.0.0.1:1952;
        location = /authz {
            if (\$http_x_authz = yes) { return 204; }
            return 403;
        }
    }", server => "
        location /tf/ { worksible_auth on; worksible_rate_limit on;
                        worksible_idempotency on; index index.json; }

        location /tu/ { worksible_auth on; worksible_rate_limit on;
                        try_files /nothing /data/x.json; }
        location /data/ { worksible_auth on; worksible_rate_limit on;
                          worksible_scope data:read; }

        location /tn/ { worksible_auth on; worksible_rate_limit on;
                        worksible_idempotency on; try_files \$uri \@svc; }
        location \@svc { proxy_pass $svc; }

        location /ep/ { worksible_auth on; worksible_rate_limit on;
                        worksible_idempotency on;
                        proxy_pass http://127.0.0.1:1953;
                        error_page 502 = \@fallback; }
        location \@fallback { proxy_pass $svc; }

        location /eu/ { worksible_auth on; worksible_rate_limit on;
                        worksible_idempotency on;
                        proxy_pass http://127.0.0.1:1953;
                        error_page 502 = /fallback/; }
        location /fallback/ { proxy_pass $svc; }

        location /xa/ { worksible_auth on; worksible_rate_limit on;
                        worksible_idempotency on lock=300ms;
                        proxy_pass $svc; }
        location /internal/ { internal; proxy_pass $svc; }

        location /ar/ { worksible_auth on; worksible_idempotency on;
                        auth_request /authz; proxy_pass $svc; }
        location = /authz { internal; proxy_pass http://127.0.0.1:1952;
                            proxy_pass_request_body off;
                            proxy_set_header Content-Length \"\"; }

        location /dn/ { worksible_auth on; worksible_idempotency on;
                        deny 127.0.0.1; proxy_pass $svc; }

        location /v1/ { worksible_auth on; worksible_rate_limit on;
                        worksible_api; }

        location /slow/ { worksible_errors on; limit_rate 200;
                          send_timeout 30s; return 404; }

        location = /probe { worksible_auth on; worksible_rate_limit on;
                            alias $root/data/x.json; }

        location = /health { worksible_health; }
        location /ssi/ { ssi on; worksible_auth on; worksible_rate_limit on; }
        location /status/ { ssi on; }
        location /mir/ { worksible_auth on; worksible_rate_limit on;
                         mirror /v1/companies/me; proxy_pass $svc; }

        location /bb/ { worksible_auth on; worksible_idempotency on;
                        client_body_timeout 2s;
                        error_page 400 408 413 /err/e.json;
                        proxy_pass $svc; }
        location /err/ { worksible_auth on; worksible_idempotency on; }

        location /sa/ { satisfy any; allow 10.0.0.0/8; deny all;
                        worksible_auth on; proxy_pass $svc; }
        location /sb/ { satisfy any; allow 127.0.0.1; deny all;
                        worksible_auth on; proxy_pass $svc; }

        location /ae/ { worksible_auth on; worksible_idempotency on;
                        auth_request /authz; error_page 403 = \@login;
                        proxy_pass $svc; }
        location \@login { worksible_auth on; worksible_idempotency on;
                            proxy_pass $svc; }

        location /ts/ { worksible_auth on; worksible_idempotency on;
                        try_files \$uri \@scoped; }
        location \@scoped { worksible_auth on; worksible_scope admin:read;
                            worksible_rate_limit on; proxy_pass $svc; }");

# a fresh key on a plan of 1000 requests a day: charges do not come back
# during the test
sub key {
    my ($scopes, %o) = @_;
    my $plan = plan(limit => 1000, window => 86400);
    return api_key(company(plan => $plan), $scopes // 'company:read', %o);
}

sub auth { return { Authorization => "Bearer $_[0]{key}", %{ $_[1] // {} } } }

# the budget left, as a charged probe sees it (the probe takes one)
sub left {
    my ($key) = @_;
    my $res = http('GET', '/probe', auth($key));
    return $res->{headers}{ratelimit} =~ /;r=(\d+);/ ? $1 + 1 : undef;
}

# the request_logs rows of a key: [method, path, status] each, in order
sub logged {
    my ($key, $n) = @_;
    my $deadline = time + 8;
    my $rows;
    do {
        sleep 0.3;
        $rows = psql("SELECT method, path, status FROM request_logs
                      WHERE api_key_id = '$key->{id}' AND path <> '/probe'
                      ORDER BY created_at, id");
    } until @$rows >= $n || time > $deadline;
    return $rows;
}

sub record_key {
    my ($key, $idem) = @_;
    my $company = psql("SELECT company_id FROM api_keys WHERE id = '$key->{id}'")->[0][0];
    return "worksible:idem:{$company}:$idem";
}

# the status kept under an Idempotency-Key ('' while it runs or when none)
sub record { redis_cli('HGET', record_key(@_), 'status') }

# 1 while Redis holds anything under the key (a release may take a moment)
sub held {
    my $k = record_key(@_);
    my $deadline = time + 2;
    my $n;
    do { $n = redis_cli('EXISTS', $k); sleep 0.05 if $n } while $n && time < $deadline;
    return $n;
}

# --- index ---------------------------------------------------------------------

my $k = key();
my $res = http('GET', '/tf/', auth($k));
is($res->{status}, 200, 'index: GET /tf/ serves index.json');
like($res->{body}, qr/"index":true/, 'its body');
like($res->{headers}{ratelimit} // '', qr/;r=999;/, 'one charge: r=999 on the final response');
like($res->{headers}{'x-request-id'} // '', qr/^req_/, 'X-Request-Id');
is(left($k), 999, 'the budget lost one, not two');

my $p1 = http('POST', '/tf/', auth($k, { 'Idempotency-Key' => 'tf-1' }), body => '{"a":1}');
is($p1->{status}, 405, 'index: a first POST gets the static module\'s 405, not 422 against itself');
is($p1->{headers}{'idempotent-replayed'}, undef, 'it is not a replay');
is(record($k, 'tf-1'), '405', 'its outcome is stored once, under the key');
my $p2 = http('POST', '/tf/', auth($k, { 'Idempotency-Key' => 'tf-1' }), body => '{"a":1}');
is($p2->{status}, 405, 'the retry replays it ...');
is($p2->{headers}{'idempotent-replayed'}, 'true', '... as a replay, not 409');
is_deeply(logged($k, 3), [['GET', '/tf/', 200], ['POST', '/tf/', 405], ['POST', '/tf/', 405]],
          'one request_logs row per client request, with the path it asked for');

# --- try_files to a URI ----------------------------------------------------------

$k = key('company:read data:read');
$res = http('GET', '/tu/', auth($k));
is($res->{status}, 200, 'try_files to a URI: the fallback file');
like($res->{body}, qr/"x":1/, 'its body');
like($res->{headers}{ratelimit} // '', qr/;r=999;/, 'charged in the first location only');
is(left($k), 999, 'one charge');

my $noscope = key();
$res = http('GET', '/tu/', auth($noscope));
is($res->{status}, 403, 'the new location\'s worksible_scope is checked again');
like($res->{body}, problem(403, 'insufficient_scope'), 'insufficient_scope');
like($res->{headers}{'www-authenticate'} // '', qr/scope="data:read"/, 'naming data:read');
is(left($noscope), 999, 'still one charge');
is_deeply(logged($k, 1), [['GET', '/tu/', 200]], 'one row');
is_deeply(logged($noscope, 1), [['GET', '/tu/', 403]], 'one row for the refusal');

# --- try_files to a named location --------------------------------------------------

$k = key();
$p1 = http('POST', '/tn/things', auth($k, { 'Idempotency-Key' => 'tn-1' }), body => 'one');
is($p1->{status}, 201, 'try_files to a named location: the service answers');
like($p1->{headers}{ratelimit} // '', qr/;r=999;/, 'with the rate-limit headers');
$p2 = http('POST', '/tn/things', auth($k, { 'Idempotency-Key' => 'tn-1' }), body => 'one');
is($p2->{status}, 201, 'the retry ...');
is($p2->{headers}{'idempotent-replayed'}, 'true', '... is a replay');
is($p2->{body}, $p1->{body}, 'byte for byte');
is(calls($counter), 1, 'the service ran once');
is(left($k), 998, 'two requests, two charges');
is_deeply(logged($k, 2), [['POST', '/tn/things', 201], ['POST', '/tn/things', 201]], 'two rows');

# --- error_page to a named location (the method stays) --------------------------------

unlink $counter;
$k = key();
$p1 = http('POST', '/ep/x', auth($k, { 'Idempotency-Key' => 'ep-1' }), body => 'two');
is($p1->{status}, 201, 'error_page 502 = @fallback: the fallback answers');
like($p1->{headers}{ratelimit} // '', qr/;r=999;/, 'with the rate-limit headers');
like($p1->{headers}{'x-request-id'} // '', qr/^req_/, 'and X-Request-Id');
is(record($k, 'ep-1'), '201', 'the fallback\'s answer is stored');
$p2 = http('POST', '/ep/x', auth($k, { 'Idempotency-Key' => 'ep-1' }), body => 'two');
is($p2->{headers}{'idempotent-replayed'}, 'true', 'the retry is a replay, not 409');
is_deeply([call_log($counter)], ['POST /ep/x'], 'the fallback ran once, as a POST');
is(left($k), 998, 'one charge each');
is_deeply(logged($k, 2), [['POST', '/ep/x', 201], ['POST', '/ep/x', 201]],
          'a row for each, with the final status');

# --- error_page to a URI (the method becomes GET) --------------------------------------

unlink $counter;
$k = key();
$p1 = http('POST', '/eu/x', auth($k, { 'Idempotency-Key' => 'eu-1' }), body => 'three');
is($p1->{status}, 201, 'error_page 502 = /fallback/: the fallback answers');
like($p1->{headers}{ratelimit} // '', qr/;r=999;/, 'with the rate-limit headers');
is_deeply([call_log($counter)], ['GET /fallback/'], 'the fallback ran as a GET');
$p2 = http('POST', '/eu/x', auth($k, { 'Idempotency-Key' => 'eu-1' }), body => 'three');
is($p2->{headers}{'idempotent-replayed'}, 'true', 'the retry is a replay');
is(calls($counter), 1, 'nothing ran twice');
is_deeply(logged($k, 2), [['POST', '/eu/x', 201], ['POST', '/eu/x', 201]],
          'the rows keep the client\'s method');

# --- X-Accel-Redirect from a slow upstream, past the lock renewal -------------------------

unlink $counter;
$k = key();
my $t0 = time;
my $pid = fork // die;
if (!$pid) {
    my $r = http('POST', '/xa/slow/accel/internal/slow', auth($k, { 'Idempotency-Key' => 'xa-1' }),
                 body => 'four');
    POSIX::_exit($r->{status} == 201 ? 0 : 1);
}
sleep 3;    # the first upstream (2 s) answered; the redirected one runs
is(record($k, 'xa-1'), '', 'mid-request: the record has no outcome yet ...');
my $company = psql("SELECT company_id FROM api_keys WHERE id = '$k->{id}'")->[0][0];
cmp_ok(redis_cli('PTTL', "worksible:idem:{$company}:xa-1"), '>', 0,
       '... and its 300 ms lock is still renewed after the redirect');
waitpid($pid, 0);
is($? >> 8, 0, 'X-Accel-Redirect: the internal location\'s 201 reaches the client');
is(record($k, 'xa-1'), '201', 'and is stored');
$p2 = http('POST', '/xa/slow/accel/internal/slow', auth($k, { 'Idempotency-Key' => 'xa-1' }),
           body => 'four');
is($p2->{headers}{'idempotent-replayed'}, 'true', 'the retry is a replay');
is_deeply([call_log($counter)], ['POST /xa/slow/accel/internal/slow', 'GET /internal/slow'],
          'each upstream ran once');
is(left($k), 998, 'one charge each');
is_deeply(logged($k, 2), [['POST', '/xa/slow/accel/internal/slow', 201],
                          ['POST', '/xa/slow/accel/internal/slow', 201]], 'one row each');

# --- auth_request and deny beside idempotency --------------------------------------------

unlink $counter;
$k = key();
$res = http('POST', '/ar/x', auth($k, { 'Idempotency-Key' => 'ar-1' }), body => 'five');
is($res->{status}, 403, 'auth_request refuses: 403');
is(held($k, 'ar-1'), 0, 'the refusal is not stored');
$res = http('POST', '/ar/x', auth($k, { 'Idempotency-Key' => 'ar-1', 'X-Authz' => 'yes' }),
            body => 'five');
is($res->{status}, 201, 'allowed on the retry: the service runs');
is($res->{headers}{'idempotent-replayed'}, undef, 'not a replay of the refusal');
is(calls($counter), 1, 'once');

$res = http('POST', '/dn/x', auth($k, { 'Idempotency-Key' => 'dn-1' }), body => 'six');
is($res->{status}, 403, 'deny: 403');
is(held($k, 'dn-1'), 0, 'not stored either');
is(calls($counter), 1, 'and the service did not run');

# --- Expect: 100-continue ------------------------------------------------------------------

# the first bytes nginx sends after the headers of a POST that promises 99
# bytes and waits for 100 Continue
sub expect {
    my ($headers) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:1950') or die;
    my $req = "POST /v1/invoices HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            . "Expect: 100-continue\r\nContent-Length: 99\r\nConnection: close\r\n";
    $req .= "$_: $headers->{$_}\r\n" for sort keys %$headers;
    print $s "$req\r\n";
    $s->blocking(0);
    my $got = '';
    my $deadline = time + 5;
    while (time < $deadline && $got !~ /\r\n\r\n/) {
        my $n = sysread($s, my $buf, 4096);
        $got .= $buf if $n;
        sleep 0.01;
    }
    return $got =~ m{^HTTP/1\.1 (\d+)} ? $1 : 0;
}

my $inv = key('invoices:write');
my $allowlisted = api_key(company(plan => 'enterprise'), 'invoices:write',
                         allow_ip => ['192.0.2.0/24']);
my $one = api_key(company(plan => plan(limit => 1, window => 86400)), 'invoices:write');
http('GET', '/v1/companies/me', auth($one));
is(expect({}), 401, 'Expect: 100-continue, no key: 401 at once, no 100 Continue');
is(expect({ Authorization => 'Bearer wsk_live_nope' }), 401, 'a wrong key: 401');
is(expect(auth(key('company:read'))), 403, 'a missing scope: 403');
is(expect(auth($allowlisted)), 403, 'a denied address: 403');
is(expect(auth($one)), 429, 'a company over its limit: 429');
is(expect(auth($inv)), 100, 'an allowed request gets its 100 Continue');

# --- a slow reader of a problem body --------------------------------------------------------

$res = http('GET', '/slow/x', {}, timeout => 15);
is($res->{status}, 404, 'worksible_errors at 200 bytes/s: 404 ...');
like($res->{body}, problem(404, 'route_not_found'),
     '... and the whole problem arrives, long before send_timeout');

# --- subrequests: SSI and mirror -------------------------------------------------------

$k = key();
$res = http('GET', '/ssi/two.html', auth($k));
is($res->{status}, 200, 'SSI: the page of a guarded location');
like($res->{body}, qr/^C\{"status":"ok","postgres":"up","redis":"up"\}D/,
     'worksible_health answers its own include');
unlike($res->{body}, qr/"id":"cmp_/, 'worksible_api does not answer an include');
$res = http('GET', '/status/two.html', {});
like($res->{body}, qr/^a\{"status":"ok".*\}b\{"status":"ok".*\}c$/,
     'an unguarded page with two worksible_health includes gets both');

unlink $counter;
$res = http('GET', '/mir/x', auth($k));
is($res->{status}, 201, 'mirror to /v1/: the client gets the location\'s own answer ...');
like($res->{body}, qr/"call":1/, '... the service\'s body, not the mirror\'s');

# --- a body that fails to arrive, with error_page ----------------------------------------

$k = key();
my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:1950') or die;
print $s "POST /bb/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
       . "Authorization: Bearer $k->{key}\r\nIdempotency-Key: bb-1\r\n"
       . "Transfer-Encoding: chunked\r\n\r\n";
sleep 0.3;
print $s "zz\r\n";
$s->blocking(0);
my $raw = '';
my $deadline = time + 8;
while (time < $deadline) {
    my $n = sysread($s, my $buf, 4096);
    last if defined $n && $n == 0;
    $raw .= $buf if $n;
    sleep 0.01;
}
like($raw, qr{^HTTP/1\.1 400 }, 'an invalid chunked body: 400, through error_page ...');
like($raw, qr/"error":true/, '... its page, at once (the reservation does not wait for a body that failed)');
is(held($k, 'bb-1'), 0, 'nothing reserved');

# --- satisfy any ------------------------------------------------------------------------------

unlink $counter;
$k = key();
is(http('GET', '/sa/x', auth($k))->{status}, 403,
   'satisfy any: a valid key does not stand in for allow/deny (127.0.0.1 is denied)');
is(http('GET', '/sb/x', {})->{status}, 401, 'nor does an allowed address stand in for the key');
is(http('GET', '/sb/x', auth($k))->{status}, 201, 'a key and an allowed address pass');
is(calls($counter), 1, 'the service ran once');

# --- refusals answered through error_page = @named, and our own in a later location ---------

unlink $counter;
$k = key();
$res = http('POST', '/ae/x', auth($k, { 'Idempotency-Key' => 'ae-1' }), body => 'seven');
is($res->{status}, 201, 'auth_request refuses, error_page 403 = @login answers');
is(held($k, 'ae-1'), 0, 'the error page is not stored under the key');
$res = http('POST', '/ae/x', auth($k, { 'Idempotency-Key' => 'ae-1', 'X-Authz' => 'yes' }),
            body => 'seven');
is($res->{headers}{'idempotent-replayed'}, undef, 'the retry that passes runs, no replay');
is(calls($counter), 2, 'the login page, then the service');

unlink $counter;
$k = key();
$res = http('POST', '/ts/x', auth($k, { 'Idempotency-Key' => 'ts-1' }), body => 'eight');
is($res->{status}, 403, 'try_files into a location whose scope the key lacks: 403');
is(held($k, 'ts-1'), 0, 'a refusal of ours is not kept either (the reservation is released)');
$res = http('POST', '/ts/x', auth($k, { 'Idempotency-Key' => 'ts-1' }), body => 'eight');
is($res->{headers}{'idempotent-replayed'}, undef, 'the retry is refused afresh, not replayed');
is(calls($counter), 0, 'nothing ran');
is(left($k), 998, 'charged in the later location, once per request');

nginx_stop();
unlink $counter;

done_testing();
