# worksible_errors: nginx's own error pages become RFC 9457 problems with
# X-Request-Id and Cache-Control, even before any location is chosen.

use strict;
use warnings;

use Test::Nginx::Socket 'no_plan';
use Worksible::Test qw(company api_key use_default_http_config);

our $key = api_key(company(plan => 'growth'), 'company:read')->{key};

our $problem = \&Worksible::Test::problem;

use_default_http_config();
no_shuffle();
no_root_location();
add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value('config', <<'CONF') unless defined $block->config;
    worksible_errors on;
    location /v1/ { client_max_body_size 1k; worksible_auth on; worksible_api; }
    location /down/ { proxy_pass http://127.0.0.1:1; }
    location / { return 404; }
CONF
});
run_tests();

__DATA__

=== TEST 1: a malformed request (two Authorization headers) is an invalid_request problem
--- raw_request eval
"GET /v1/companies/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer $::key\r\nAuthorization: Bearer $::key\r\nConnection: close\r\n\r\n"
--- error_code: 400
--- response_headers_like
Content-Type: ^application/problem\+json$
X-Request-Id: ^req_\w{26}$
Cache-Control: no-store
--- response_body_like eval
$::problem->(400, 'invalid_request')



=== TEST 2: a NUL in the path, a body over client_max_body_size, a path outside the API
--- request eval
["GET /v1/freelancers/%00", "POST /v1/companies/me\n" . ('x' x 2000), "GET /elsewhere"]
--- more_headers eval
"Authorization: Bearer $::key"
--- error_code eval
[400, 413, 404]
--- response_body_like eval
[$::problem->(400, 'invalid_request'), $::problem->(413, 'body_too_large'),
 $::problem->(404, 'route_not_found')]



=== TEST 3: a service that is down behind proxy_pass
--- request
GET /down/x
--- error_code: 502
--- response_body_like eval
$::problem->(502, 'bad_gateway')
--- error_log
connect() failed



=== TEST 4: TRACE is refused by nginx itself
--- request
TRACE /v1/companies/me
--- error_code: 405
--- response_body_like eval
$::problem->(405, 'method_not_allowed')



=== TEST 5: our own problems are left as they are
--- request
GET /v1/companies/me
--- error_code: 401
--- response_body_like eval
$::problem->(401, 'api_key_missing')



=== TEST 6: without worksible_errors, nginx's page stays
--- config
    location / { return 404; }
--- request
GET /elsewhere
--- error_code: 404
--- response_headers
!X-Request-Id
Content-Type: text/html



=== TEST 7: a request line nginx cannot read: its 400 is a problem with a request id, though there is no method to take (fuzz finding: t/fuzz/corpus/ratelimit/regress-no-request-line)
--- raw_request eval
"GET /v1/companies/me HTTP/1.1 extra\r\nHost: x\r\nConnection: close\r\n\r\n"
--- error_code: 400
--- response_headers_like
Content-Type: ^application/problem\+json$
X-Request-Id: ^req_\w{26}$
--- response_body_like eval
$::problem->(400, 'invalid_request')
