# Deprecation (RFC 9745), Sunset (RFC 8594) and Link on a deprecated
# location's responses, and 410 gone after a sunset with "gone".

use strict;
use warnings;

use Test::Nginx::Socket 'no_plan';
use Worksible::Test qw(company api_key problem use_default_http_config);

our $key = api_key(company(plan => 'growth'), 'company:read')->{key};
our $gone = problem(410, 'gone');

use_default_http_config();
no_shuffle();
run_tests();

__DATA__

=== TEST 1: a deprecated endpoint announces its sunset, on success and on errors
--- config
    location /v1/ {
        worksible_deprecation 2026-01-01 sunset=2099-01-01 link=https://docs.worksible.com/changelog/v2;
        worksible_auth on;
        worksible_api;
    }
--- request eval
["GET /v1/companies/me", "GET /v1/companies/me"]
--- more_headers eval
["Authorization: Bearer $::key", ""]
--- error_code eval
[200, 401]
--- response_headers eval
[("Deprecation: \@1767225600\nSunset: Thu, 01 Jan 2099 00:00:00 GMT\nLink: <https://docs.worksible.com/changelog/v2>; rel=\"deprecation\", <https://docs.worksible.com/changelog/v2>; rel=\"sunset\"") x 2]



=== TEST 2: after the sunset, "gone" answers 410 pointing at the link, key or not
--- config
    location /v1/ {
        worksible_deprecation 2019-06-01 sunset=2020-01-01 link=https://docs.worksible.com/changelog/v2 gone;
        worksible_auth on;
        worksible_api;
    }
--- request eval
["GET /v1/companies/me", "GET /v1/companies/me"]
--- more_headers eval
["Authorization: Bearer $::key", ""]
--- error_code eval
[410, 410]
--- response_headers eval
[("Sunset: Wed, 01 Jan 2020 00:00:00 GMT") x 2]
--- response_headers_like eval
[("X-Request-Id: req_\\w{26}") x 2]
--- response_body_like eval
[qr/"detail":"This endpoint was removed at its sunset: see https:\/\/docs\.worksible\.com\/changelog\/v2\."/, $::gone]



=== TEST 3: without "gone", a location past its sunset still answers, with the headers
--- config
    location /old/ {
        worksible_deprecation 2019-06-01 sunset=2020-01-01;
        return 200 "still here\n";
    }
--- request
GET /old/x
--- error_code: 200
--- response_headers
Deprecation: @1559347200
Sunset: Wed, 01 Jan 2020 00:00:00 GMT
!Link
--- response_body
still here
