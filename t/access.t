# Access control in front of any location: worksible_scope, IP allowlists
# through nginx's realip module, and protected paths reached by variants.

use strict;
use warnings;

use Test::Nginx::Socket 'no_plan';
use Worksible::Test qw(company api_key http_config);

my $enterprise = company(plan => 'enterprise', name => 'Access Test Co');
our $reader = api_key($enterprise, 'reports:read')->{key};
our $writer = api_key($enterprise, 'reports:write audit:read')->{key};
our $none = api_key($enterprise, 'company:read')->{key};
our $local = api_key($enterprise, 'reports:read', allow_ip => ['127.0.0.1'])->{key};
our $ten = api_key($enterprise, 'reports:read', allow_ip => ['10.0.0.0/8'])->{key};
our $v6 = api_key($enterprise, 'reports:read', allow_ip => ['2001:db8::/32'])->{key};

our $http = http_config() . <<'CONF';
    server {
        listen 127.0.0.1:1985;
        location / { return 200 "backend $request_uri\n"; }
    }
CONF

no_shuffle();
no_root_location();
add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value('http_config', $::http) unless defined $block->http_config;
});
run_tests();

__DATA__

=== TEST 1: worksible_scope: the key must hold every listed scope
--- config
    location /reports/ {
        worksible_auth on;
        worksible_scope reports:read;
        proxy_pass http://127.0.0.1:1985;
    }
    location /audit/ {
        worksible_auth on;
        worksible_scope reports:read audit:read;
        proxy_pass http://127.0.0.1:1985;
    }
--- request eval
["GET /reports/q1", "GET /reports/q1", "GET /reports/q1", "GET /audit/x",
 "GET /audit/x"]
--- more_headers eval
["Authorization: Bearer $::reader", "Authorization: Bearer $::writer",
 "Authorization: Bearer $::none", "Authorization: Bearer $::writer",
 "Authorization: Bearer $::reader"]
--- error_code eval
[200, 200, 403, 200, 403]
--- response_body_like eval
[qr{^backend /reports/q1$}, qr{^backend /reports/q1$},
 qr/^\{"type":"https:\/\/docs\.worksible\.com\/errors\/insufficient_scope","title":"Insufficient scope","status":403,"detail":"This endpoint needs the scope reports:read\.","code":"insufficient_scope","param":null,"request_id":"req_\w{26}"\}$/,
 qr{^backend /audit/x$}, qr/"detail":"This endpoint needs the scope audit:read\."/]



=== TEST 2: insufficient_scope names the scope in WWW-Authenticate
--- config
    location /reports/ {
        worksible_auth on;
        worksible_scope reports:read;
        proxy_pass http://127.0.0.1:1985;
    }
--- request
GET /reports/q1
--- more_headers eval
"Authorization: Bearer $::none"
--- error_code: 403
--- response_headers
WWW-Authenticate: Bearer realm="worksible", error="insufficient_scope", scope="reports:read"
Cache-Control: no-store



=== TEST 3: variants of a protected path are checked or not found, never served unchecked
--- config
    location /reports/ {
        worksible_auth on;
        worksible_scope reports:read;
        proxy_pass http://127.0.0.1:1985;
    }
    location / { return 404; }
--- request eval
["GET /reports/q1", "GET //reports/q1", "GET /reports//q1",
 "GET /x/../reports/q1", "GET /reports/./q1", "GET /%72eports/q1",
 "GET /reports%2Fq1", "GET /REPORTS/q1", "GET /reports/%2e%2e/reports/q1"]
--- more_headers eval
"Authorization: Bearer $::none"
--- error_code eval
[403, 403, 403, 403, 403, 403, 403, 404, 403]
--- response_body_unlike eval
[(qr/backend/) x 9]



=== TEST 4: the same variants with the scope reach the service
--- config
    location /reports/ {
        worksible_auth on;
        worksible_scope reports:read;
        proxy_pass http://127.0.0.1:1985;
    }
    location / { return 404; }
--- request eval
["GET //reports/q1", "GET /x/../reports/q1", "GET /%72eports/q1"]
--- more_headers eval
"Authorization: Bearer $::reader"
--- error_code eval
[200, 200, 200]
--- response_body_like eval
[(qr/^backend /) x 3]



=== TEST 5: an allowlist that holds the client's address, and one that does not
--- config
    location /reports/ {
        worksible_auth on;
        proxy_pass http://127.0.0.1:1985;
    }
--- request eval
["GET /reports/a", "GET /reports/a"]
--- more_headers eval
["Authorization: Bearer $::local", "Authorization: Bearer $::ten"]
--- error_code eval
[200, 403]
--- response_body_like eval
[qr/^backend/,
 qr/^\{"type":"https:\/\/docs\.worksible\.com\/errors\/ip_not_allowed","title":"IP address not allowed","status":403,"detail":"The request came from 127\.0\.0\.1, which this API key's IP allowlist does not include\.","code":"ip_not_allowed","param":null,"request_id":"req_\w{26}"\}$/]



=== TEST 6: the client address comes from realip when the peer is trusted
--- config
    set_real_ip_from 127.0.0.1;
    real_ip_header X-Forwarded-For;
    location /reports/ {
        worksible_auth on;
        proxy_pass http://127.0.0.1:1985;
    }
--- request eval
["GET /reports/a", "GET /reports/a", "GET /reports/a"]
--- more_headers eval
["Authorization: Bearer $::ten\nX-Forwarded-For: 10.1.2.3",
 "Authorization: Bearer $::ten\nX-Forwarded-For: 192.0.2.7",
 "Authorization: Bearer $::local\nX-Forwarded-For: 10.1.2.3"]
--- error_code eval
[200, 403, 403]
--- response_body_like eval
[qr/^backend/, qr/came from 192\.0\.2\.7,/, qr/came from 10\.1\.2\.3,/]



=== TEST 7: an untrusted peer's X-Forwarded-For is ignored
--- config
    set_real_ip_from 192.0.2.0/24;
    real_ip_header X-Forwarded-For;
    location /reports/ {
        worksible_auth on;
        proxy_pass http://127.0.0.1:1985;
    }
--- request
GET /reports/a
--- more_headers eval
"Authorization: Bearer $::ten\nX-Forwarded-For: 10.1.2.3"
--- error_code: 403
--- response_body_like chomp
came from 127\.0\.0\.1,



=== TEST 8: a repeated X-Forwarded-For: nginx takes the last address, and so do we
--- config
    set_real_ip_from 127.0.0.1;
    real_ip_header X-Forwarded-For;
    location /reports/ {
        worksible_auth on;
        proxy_pass http://127.0.0.1:1985;
    }
--- request eval
["GET /reports/a", "GET /reports/a"]
--- more_headers eval
["Authorization: Bearer $::ten\nX-Forwarded-For: 10.1.2.3\nX-Forwarded-For: 192.0.2.9",
 "Authorization: Bearer $::ten\nX-Forwarded-For: 192.0.2.9, 10.9.9.9"]
--- error_code eval
[403, 200]
--- response_body_like eval
[qr/came from 192\.0\.2\.9,/, qr/^backend/]



=== TEST 9: IPv6 clients and IPv4-mapped IPv6 addresses
--- config
    set_real_ip_from 127.0.0.1;
    real_ip_header X-Real-IP;
    location /reports/ {
        worksible_auth on;
        proxy_pass http://127.0.0.1:1985;
    }
--- request eval
["GET /reports/a", "GET /reports/a", "GET /reports/a", "GET /reports/a"]
--- more_headers eval
["Authorization: Bearer $::v6\nX-Real-IP: 2001:db8::5",
 "Authorization: Bearer $::v6\nX-Real-IP: 2001:db9::5",
 "Authorization: Bearer $::ten\nX-Real-IP: ::ffff:10.1.2.3",
 "Authorization: Bearer $::ten\nX-Real-IP: ::ffff:11.1.2.3"]
--- error_code eval
[200, 403, 200, 403]
--- response_body_like eval
[qr/^backend/, qr/came from 2001:db9::5,/, qr/^backend/, qr/came from ::ffff:11\.1\.2\.3,/]



=== TEST 10: beside auth_request: both must pass, whatever their order
--- config
    location /reports/ {
        worksible_auth on;
        auth_request /check;
        proxy_pass http://127.0.0.1:1985;
    }
    location = /check {
        internal;
        if ($http_x_deny) { return 403; }
        return 204;
    }
--- request eval
["GET /reports/a", "GET /reports/a", "GET /reports/a"]
--- more_headers eval
["Authorization: Bearer $::reader", "Authorization: Bearer $::reader\nX-Deny: 1",
 ""]
--- error_code eval
[200, 403, 401]
--- response_body_like eval
[qr/^backend/, qr/403 Forbidden/, qr/"code":"api_key_missing"/]



=== TEST 11: behind limit_req, keyed on the client address
--- http_config eval
$::http . "    limit_req_zone \$binary_remote_addr zone=ip:1m rate=1r/m;\n"
--- config
    location /reports/ {
        limit_req zone=ip burst=1 nodelay;
        limit_req_status 429;
        worksible_errors on;
        worksible_auth on;
        proxy_pass http://127.0.0.1:1985;
    }
--- request eval
["GET /reports/a", "GET /reports/a", "GET /reports/a"]
--- more_headers eval
"Authorization: Bearer $::reader"
--- error_code eval
[200, 200, 429]
--- response_headers_like eval
["X-Request-Id: req_\\w{26}", "X-Request-Id: req_\\w{26}", "Retry-After: 1"]
--- response_body_like eval
[qr/^backend/, qr/^backend/, qr/^\{"type":"https:\/\/docs\.worksible\.com\/errors\/rate_limited"/]
