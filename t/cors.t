# worksible_cors: a preflight from an allowed origin is answered without a
# key (204, not charged, logged as what it is, not as a refusal); a plain
# OPTIONS still needs a key; every response to an allowed origin, errors
# and nginx's own pages included, carries Access-Control-Allow-Origin and
# exposes the rate-limit, request id and replay headers; a disallowed
# origin gets no CORS header; a proxied service's own CORS headers give
# way; nginx -t refuses bad origins.

use strict;
use warnings;

use File::Path qw(make_path);
use IO::Socket::INET;
use Test::More;
use Time::HiRes qw(sleep time);
use Worksible::Test qw(company api_key plan psql psql_value http_config
    nginx_start nginx_stop http json redis_cli);

my $app = 'https://app.example.com';
nginx_start(name => 'cors', port => 1962, http => http_config() . '
    server {
        listen 127.0.0.1:1971;
        location / {
            add_header Access-Control-Allow-Origin "*" always;
            add_header Access-Control-Allow-Credentials "true" always;
            return 200 "upstream\n";
        }
    }',
    server => "
        worksible_errors on;
        location /v1/ {
            worksible_auth on; worksible_rate_limit on; worksible_idempotency on;
            worksible_cors $app http://127.0.0.1:1962 max_age=5m;
            client_max_body_size 100;
            worksible_api;
        }
        location /svc/ {
            worksible_auth on;
            worksible_cors $app;
            proxy_pass http://127.0.0.1:1971;
        }
        location /down/ {
            worksible_auth on;
            worksible_cors $app;
            proxy_pass http://127.0.0.1:1;
            error_page 502 = \@down;
        }
        location \@down { return 503 \"down\\n\"; }
        location /open/ { worksible_cors *; return 200 \"open\\n\"; }
        location /inherit/ { return 200 \"none\\n\"; }");

my $cmp = company(plan => plan(limit => 5, window => 3600));
my $key = api_key($cmp, 'company:read payouts:write freelancers:write');
my %k = (Authorization => "Bearer $key->{key}");
my %o = (Origin => $app);
my $expose = qr/^RateLimit, RateLimit-Policy, Retry-After, X-Request-Id, Idempotent-Replayed\b/;

# --- a preflight ------------------------------------------------------------------------

my $pre = http('OPTIONS', '/v1/companies/me', { %o, 'Access-Control-Request-Method' => 'GET',
    'Access-Control-Request-Headers' => 'authorization' });
is($pre->{status}, 204, 'a preflight from an allowed origin: 204 without a key');
is($pre->{headers}{'access-control-allow-origin'}, $app, 'Access-Control-Allow-Origin: the origin');
like($pre->{headers}{'access-control-allow-methods'}, qr/\bGET\b.*\bPOST\b.*\bPATCH\b/, 'the methods');
like($pre->{headers}{'access-control-allow-headers'}, qr/^Authorization, Content-Type, Idempotency-Key$/,
     'the request headers a client sends');
is($pre->{headers}{'access-control-max-age'}, 300, 'max_age=5m: 300 s');
is($pre->{headers}{vary}, 'Origin', 'Vary: Origin');
is($pre->{headers}{'www-authenticate'}, undef, 'no WWW-Authenticate');
is($pre->{headers}{'ratelimit'}, undef, 'not charged: no RateLimit');
is($pre->{body}, '', 'no body');
like($pre->{headers}{'x-request-id'}, qr/^req_/, 'a request id');

# a preflight and the request it announces, on one kept-alive connection
{
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:1962') or die "connect: $!";
    print $s "OPTIONS /v1/companies/me HTTP/1.1\r\nHost: localhost\r\nOrigin: $app\r\n"
           . "Access-Control-Request-Method: GET\r\n\r\n";
    my $first = '';
    sysread($s, $first, 65536, length $first) until $first =~ /\r\n\r\n/;
    like($first, qr{^HTTP/1\.1 204 }, 'kept alive: the preflight answered');
    unlike($first, qr/^Connection: close/mi, '... the connection stays open');
    print $s "GET /v1/companies/me HTTP/1.1\r\nHost: localhost\r\nOrigin: $app\r\n"
           . "Connection: close\r\n\r\n";
    local $/;
    my $second = <$s>;
    like($second, qr{^HTTP/1\.1 401 }, '... and the next request on it answered (401 without a key)');
    like($second, qr/^Access-Control-Allow-Origin: \Q$app\E\r$/mi, '... with its CORS header');
}

# the company's first charge still finds the whole budget
my $first = http('GET', '/v1/companies/me', { %k, %o });
is($first->{status}, 200, 'then a GET with the key: 200');
like($first->{headers}{ratelimit}, qr/;r=4;/, '... its first charge: 4 of 5 left');
is($first->{headers}{'access-control-allow-origin'}, $app, '... with Access-Control-Allow-Origin');
like($first->{headers}{'access-control-expose-headers'}, $expose, '... exposing the headers a page needs');
like($first->{headers}{'access-control-expose-headers'}, qr/X-RateLimit-Remaining/, '... and X-RateLimit-*');
is($first->{headers}{vary}, 'Origin', '... Vary: Origin');

my $deadline = time + 8;
my $row;
do { sleep 0.3; $row = psql("SELECT method, status, company_id FROM request_logs
                             WHERE id = '$pre->{headers}{'x-request-id'}'")->[0] }
    until $row || time > $deadline;
is_deeply($row, [ 'OPTIONS', 204, undef ], 'the preflight is logged as a 204, not as a refusal');

# --- a plain OPTIONS, errors -----------------------------------------------------------------

my $plain = http('OPTIONS', '/v1/companies/me', \%o);
is($plain->{status}, 401, 'a plain OPTIONS without a key: 401');
is(json()->decode($plain->{body})->{code}, 'api_key_missing', 'api_key_missing');
is($plain->{headers}{'access-control-allow-origin'}, $app, '... with Access-Control-Allow-Origin');

my $with = http('OPTIONS', '/v1/companies/me', { %k, %o });
is($with->{status}, 405, 'a plain OPTIONS with a key: what the API says (405)');
is($with->{headers}{'access-control-allow-origin'}, $app, '... with Access-Control-Allow-Origin');

my $wrong = http('GET', '/v1/companies/me', { %o, Authorization => 'Bearer wsk_live_000000000000_' . ('A' x 32) });
is($wrong->{status}, 401, 'a wrong key: 401');
is($wrong->{headers}{'access-control-allow-origin'}, $app, '... with Access-Control-Allow-Origin');
like($wrong->{headers}{'access-control-expose-headers'}, qr/WWW-Authenticate/, '... WWW-Authenticate readable');

my $scope = http('GET', '/v1/invoices', { %k, %o });
is($scope->{status}, 403, 'a scope missing: 403');
is($scope->{headers}{'access-control-allow-origin'}, $app, '... with Access-Control-Allow-Origin');

my $body = '{"name":"x","email":"c@example.com","country":"DE"}';
my @idem = map { http('POST', '/v1/freelancers', { %k, %o, 'Content-Type' => 'application/json',
                      'Idempotency-Key' => "cors-$$" }, body => $body) } 1 .. 2;
is($idem[1]{headers}{'idempotent-replayed'}, 'true', 'an idempotent replay');
is($idem[1]{headers}{'access-control-allow-origin'}, $app, '... with Access-Control-Allow-Origin');

my $limited = http('GET', '/v1/companies/me', { %k, %o });
is($limited->{status}, 429, 'over the plan: 429');
ok($limited->{headers}{'retry-after'}, '... with Retry-After');
is($limited->{headers}{'access-control-allow-origin'}, $app, '... and Access-Control-Allow-Origin');
like($limited->{headers}{'access-control-expose-headers'}, $expose, '... exposing Retry-After');

my $big = http('POST', '/v1/companies/me', { %o, 'Content-Type' => 'application/json' },
               body => 'x' x 500);
is($big->{status}, 413, "nginx's own error page (413)");
is($big->{headers}{'access-control-allow-origin'}, $app, '... with Access-Control-Allow-Origin');

my $local = http('GET', '/v1/companies/me', { Origin => 'http://127.0.0.1:1962' });
is($local->{headers}{'access-control-allow-origin'}, 'http://127.0.0.1:1962', 'the second origin listed');

# --- origins not allowed ---------------------------------------------------------------------

for my $origin ('https://evil.example.com', 'https://app.example.com.evil.com',
                'http://app.example.com', 'null')
{
    my $res = http('GET', '/v1/companies/me', { Origin => $origin });
    is($res->{status}, 401, "Origin $origin: the API answers as to anyone");
    is_deeply([ grep { /^access-control-/ } keys %{ $res->{headers} } ], [],
              '... without any CORS header');
    my $p = http('OPTIONS', '/v1/companies/me', { Origin => $origin,
                 'Access-Control-Request-Method' => 'GET' });
    is($p->{status}, 401, '... its preflight is no preflight: 401');
    is($p->{headers}{'access-control-allow-origin'}, undef, '... without CORS headers');
}
my $two = http('GET', '/v1/companies/me', { Origin => [ $app, $app ] });
is($two->{headers}{'access-control-allow-origin'}, undef, 'two Origin headers: no CORS header');
my $none = http('GET', '/v1/companies/me', {});
is($none->{headers}{'access-control-allow-origin'}, undef, 'no Origin: no CORS header');
is($none->{headers}{vary}, 'Origin', '... but Vary: Origin');

# --- a proxied service's own headers; "*"; a location without it --------------------------------

my $key2 = api_key(company(plan => 'growth'), 'company:read');
my $svc = http('GET', '/svc/x', { Authorization => "Bearer $key2->{key}", %o });
is($svc->{body}, "upstream\n", 'proxied: the service answers');
is($svc->{headers}{'access-control-allow-origin'}, $app, "our Access-Control-Allow-Origin, not the service's *");
is($svc->{headers}{'access-control-allow-credentials'}, undef, "the service's other CORS headers go");
$svc = http('GET', '/svc/x', { Authorization => "Bearer $key2->{key}", Origin => 'https://evil.example.com' });
is_deeply([ grep { /^access-control-/ } keys %{ $svc->{headers} } ], [],
          'a disallowed origin: none of the service\'s CORS headers either');

my $open = http('GET', '/open/', { Origin => 'https://any.example.org:8443' });
is($open->{headers}{'access-control-allow-origin'}, 'https://any.example.org:8443', '"*": any origin, echoed');
$open = http('GET', '/open/', { Origin => 'null' });
is($open->{headers}{'access-control-allow-origin'}, undef, '"*": not the opaque origin "null"');
# the service down, its error_page fallback answers: still this location's
# response to the page (X-Request-Id and the rate-limit headers follow it,
# README "Inside real configurations"), so the page must be able to read it
my $down = http('GET', '/down/x', { Authorization => "Bearer $key2->{key}", %o });
is($down->{status}, 503, 'a proxied service down: its error_page fallback answers 503');
like($down->{headers}{'x-request-id'} // '', qr/^req_/, '... with our X-Request-Id');
is($down->{headers}{'access-control-allow-origin'}, $app,
   '... and Access-Control-Allow-Origin (else the page cannot read the error)');
is($down->{headers}{vary}, 'Origin', '... and Vary: Origin');

my $inh = http('GET', '/inherit/', \%o);
is($inh->{headers}{'access-control-allow-origin'}, undef, 'a location without worksible_cors: none');

nginx_stop();

# --- nginx -t --------------------------------------------------------------------------------

my $prefix = "$ENV{WORKSIBLE_TOP}/t/servroot_cors_t";
make_path("$prefix/conf", "$prefix/logs");
for my $case ([ 'https://a.example.com http://b.example.com:8080 max_age=1h', 0, qr/syntax is ok/ ],
              [ 'off', 0, qr/syntax is ok/ ],
              [ 'https://a.example.com/', 1, qr/invalid worksible_cors origin "https:\/\/a.example.com\/"/ ],
              [ 'a.example.com', 1, qr/invalid worksible_cors origin "a.example.com"/ ],
              [ 'ftp://a.example.com', 1, qr/invalid worksible_cors origin/ ],
              [ 'https://a.example.com max_age=2d', 1, qr/invalid worksible_cors "max_age=2d"/ ],
              [ 'max_age=1m', 1, qr/worksible_cors needs an origin/ ])
{
    open my $fh, '>', "$prefix/conf/nginx.conf" or die;
    print $fh "load_module $ENV{TEST_NGINX_LOAD_MODULES};\nerror_log logs/error.log;\n",
        "pid logs/nginx.pid;\nevents {}\nhttp { worksible_cors $case->[0]; }\n";
    close $fh;
    local $ENV{ASAN_OPTIONS} = ($ENV{ASAN_OPTIONS} // '') . ':detect_leaks=0';
    my $out = `$ENV{TEST_NGINX_BINARY} -t -p $prefix -c conf/nginx.conf 2>&1`;
    is($? >> 8, $case->[1], "worksible_cors $case->[0]: nginx -t " . ($case->[1] ? 'refuses it' : 'takes it'));
    like($out, $case->[2], '... saying so') or diag($out);
}

done_testing();
