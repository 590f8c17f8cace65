# Rate limits: GCRA per company on Redis, the headers of API.md on every
# charged or limited response, what is charged and what is not.

use strict;
use warnings;

use Test::Nginx::Socket 'no_plan';
use Worksible::Test qw(company api_key plan http_config);

my $plan = plan(limit => 3, window => 60);
my $company = company(plan => $plan, name => 'Limited Co');
our $key = api_key($company, 'company:read')->{key};
our $other = api_key(company(plan => $plan), 'company:read reports:read')->{key};
our $narrow = api_key(company(plan => $plan), 'reports:read')->{key};
our $policy = "\"$plan\";q=3;w=60";

our $http = http_config() . <<'CONF';
    server {
        listen 127.0.0.1:1985;
        location / { return 200 "backend\n"; }
    }
CONF

no_shuffle();
add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value('http_config', $::http) unless defined $block->http_config;
});
run_tests();

__DATA__

=== TEST 1: a plan of 3 per 60 s: 200, 200, 200, 429, 429 with remaining 2, 1, 0, 0, 0
--- config
    location /v1/ { worksible_auth on; worksible_rate_limit on; worksible_api; }
--- request eval
[("GET /v1/companies/me") x 5]
--- more_headers eval
"Authorization: Bearer $::key"
--- error_code eval
[200, 200, 200, 429, 429]
--- response_headers eval
[map { "RateLimit-Policy: $::policy\nRateLimit: \"" . ($::policy =~ /^"([^"]+)"/)[0] . "\";r=$_;t=20\nX-RateLimit-Limit: 3\nX-RateLimit-Remaining: $_" } 2, 1, 0, 0, 0]
--- response_headers_like eval
[("X-RateLimit-Reset: \\d{10}") x 3, ("Retry-After: 20") x 2]
--- response_body_like eval
[(qr/"object" : "company"/) x 3,
 (qr/^\{"type":"https:\/\/docs\.worksible\.com\/errors\/rate_limited","title":"Rate limited","status":429,"detail":"[^"]+","code":"rate_limited","param":null,"request_id":"req_\w{26}"\}$/) x 2]



=== TEST 2: errors after the key and address checks are charged and carry the headers
--- config
    location /v1/ { worksible_auth on; worksible_rate_limit on; worksible_api; }
    location /reports/ {
        worksible_auth on;
        worksible_rate_limit on;
        worksible_scope reports:read;
        proxy_pass http://127.0.0.1:1985;
    }
--- request eval
["GET /v1/nothing", "GET /v1/freelancers", "GET /reports/x", "GET /v1/companies/me"]
--- more_headers eval
["Authorization: Bearer $::other", "Authorization: Bearer $::other",
 "Authorization: Bearer $::other", "Authorization: Bearer $::narrow"]
--- error_code eval
[404, 403, 200, 403]
--- response_headers_like eval
["X-RateLimit-Remaining: 2", "X-RateLimit-Remaining: 1",
 "X-RateLimit-Remaining: 0", "X-RateLimit-Remaining: 2"]



=== TEST 3: refused keys are not charged and get no headers
--- config
    location /v1/ { worksible_auth on; worksible_rate_limit on; worksible_api; }
--- request eval
["GET /v1/companies/me", "GET /v1/companies/me"]
--- more_headers eval
["", "Authorization: Bearer wsk_live_aaaaaaaaaaaa_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"]
--- error_code eval
[401, 401]
--- response_headers eval
["!RateLimit\n!X-RateLimit-Remaining", "!RateLimit\n!X-RateLimit-Remaining"]



=== TEST 4: without worksible_rate_limit, no headers
--- config
    location /v1/ { worksible_auth on; worksible_api; }
--- request
GET /v1/companies/me
--- more_headers eval
"Authorization: Bearer $::narrow"
--- error_code: 403
--- response_headers
!RateLimit-Policy
!X-RateLimit-Limit
