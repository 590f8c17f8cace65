# API keys in the access phase: Authorization parsing, key verification,
# expiry, revocation, plan eligibility, scopes (API.md, Authentication).

use strict;
use warnings;

use Test::Nginx::Socket 'no_plan';
use Worksible::Test qw(company api_key cli psql use_default_http_config);

our $company = company(plan => 'growth', name => 'Auth Test Co');
our $key = api_key($company, 'company:read freelancers:read')->{key};
our $write_key = api_key($company, 'company:write freelancers:write')->{key};
our $narrow_key = api_key($company, 'company:read')->{key};
our $custom_key = api_key($company, 'reports:read')->{key};

my $expired = api_key($company, 'company:read', name => 'soon expired',
    expires_at => '2099-01-01T00:00:00Z');
psql("UPDATE api_keys SET expires_at = now() - interval '1 second'
      WHERE id = '$expired->{id}'");
our $expired_key = $expired->{key};

my $revoked = api_key($company, 'company:read');
(cli('key', 'revoke', $revoked->{id}))[0] == 0 or die 'revoke failed';
our $revoked_key = $revoked->{key};

our $trial_key = api_key(company(plan => 'trial'), 'company:read')->{key};
our $core_key = api_key(company(plan => 'core'), 'company:read')->{key};

(our $wrong_secret = $key) =~ s/.$/$& eq 'A' ? 'B' : 'A'/e;
(our $unknown_id = $key) =~ s/^wsk_live_............/wsk_live_zzzzzzzzzzzz/;
(our $test_mode = $key) =~ s/^wsk_live_/wsk_test_/;

# one body for every invalid key, whatever the reason
our $invalid = qr/^\{"type":"https:\/\/docs\.worksible\.com\/errors\/api_key_invalid","title":"API key invalid","status":401,"detail":"The API key is malformed, unknown or wrong\.","code":"api_key_invalid","param":null,"request_id":"req_[0-9A-HJKMNP-TV-Z]{26}"\}$/;

use_default_http_config();
no_shuffle();
run_tests();

__DATA__

=== TEST 1: a valid key gets its company
--- config
    location /v1/ { worksible_auth on; worksible_api; }
--- request
GET /v1/companies/me
--- more_headers eval
"Authorization: Bearer $::key"
--- error_code: 200
--- response_headers_like
Content-Type: application/json; charset=utf-8
X-Request-Id: ^req_[0-9A-HJKMNP-TV-Z]{26}$
Cache-Control: no-store
--- response_body_like eval
qr/^\{"object" : "company", "id" : "$::company", "name" : "Auth Test Co", "plan" : "growth", "currency" : "EUR", "created_at" : "\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "updated_at" : "[^"]+Z"\}$/



=== TEST 2: no Authorization header
--- config
    location /v1/ { worksible_auth on; worksible_api; }
--- request
GET /v1/companies/me
--- error_code: 401
--- response_headers_like
WWW-Authenticate: ^Bearer realm="worksible"$
Content-Type: ^application/problem\+json$
X-Request-Id: ^req_[0-9A-HJKMNP-TV-Z]{26}$
Cache-Control: no-store
--- response_body_like chomp
^\{"type":"https://docs\.worksible\.com/errors/api_key_missing","title":"API key missing","status":401,"detail":".+?","code":"api_key_missing","param":null,"request_id":"req_[0-9A-HJKMNP-TV-Z]{26}"\}$



=== TEST 3: a wrong secret
--- config
    location /v1/ { worksible_auth on; worksible_api; }
--- request
GET /v1/companies/me
--- more_headers eval
"Authorization: Bearer $::wrong_secret"
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer realm="worksible", error="invalid_token"
--- response_body_like eval
$::invalid



=== TEST 4: an unknown key id
--- config
    location /v1/ { worksible_auth on; worksible_api; }
--- request
GET /v1/companies/me
--- more_headers eval
"Authorization: Bearer $::unknown_id"
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer realm="worksible", error="invalid_token"
--- response_body_like eval
$::invalid



=== TEST 5: malformed tokens and schemes are all api_key_invalid
--- config
    location /v1/ { worksible_auth on; worksible_api; }
--- request eval
["GET /v1/companies/me", "GET /v1/companies/me", "GET /v1/companies/me",
 "GET /v1/companies/me", "GET /v1/companies/me", "GET /v1/companies/me",
 "GET /v1/companies/me", "GET /v1/companies/me"]
--- more_headers eval
["Authorization: Basic " . substr($::key, 9),
 "Authorization: Bearer",
 "Authorization: Bearer " . substr($::key, 0, -1),
 "Authorization: Bearer $::key" . "x",
 "Authorization: Bearer $::test_mode",
 "Authorization: Bearer " . uc($::key),
 "Authorization: Bearer wsk_live_abc_def",
 "Authorization: Bearer$::key"]
--- error_code eval
[401, 401, 401, 401, 401, 401, 401, 401]
--- response_body_like eval
[$::invalid, $::invalid, $::invalid, $::invalid, $::invalid, $::invalid,
 $::invalid, $::invalid]



=== TEST 6: the scheme is case-insensitive and may be followed by several spaces
--- config
    location /v1/ { worksible_auth on; worksible_api; }
--- request eval
["GET /v1/companies/me", "GET /v1/companies/me"]
--- more_headers eval
["Authorization: bEaReR $::key", "Authorization: Bearer    $::key"]
--- error_code eval
[200, 200]
--- response_body_like eval
[qr/"id" : "$::company"/, qr/"id" : "$::company"/]



=== TEST 7: an expired key
--- config
    location /v1/ { worksible_auth on; worksible_api; }
--- request
GET /v1/companies/me
--- more_headers eval
"Authorization: Bearer $::expired_key"
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer realm="worksible", error="invalid_token"
--- response_body_like chomp
^\{"type":"https://docs\.worksible\.com/errors/api_key_expired","title":"API key expired","status":401,"detail":"[^"]+","code":"api_key_expired","param":null,"request_id":"req_\w{26}"\}$



=== TEST 8: a revoked key
--- config
    location /v1/ { worksible_auth on; worksible_api; }
--- request
GET /v1/companies/me
--- more_headers eval
"Authorization: Bearer $::revoked_key"
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer realm="worksible", error="invalid_token"
--- response_body_like chomp
"code":"api_key_revoked"



=== TEST 9: trial and core plans have no API access
--- config
    location /v1/ { worksible_auth on; worksible_api; }
--- request eval
["GET /v1/companies/me", "GET /v1/companies/me"]
--- more_headers eval
["Authorization: Bearer $::trial_key", "Authorization: Bearer $::core_key"]
--- error_code eval
[403, 403]
--- response_body_like eval
[qr/^\{"type":"https:\/\/docs\.worksible\.com\/errors\/plan_not_eligible","title":"Plan not eligible","status":403,"detail":"Your plan does not include API access: upgrade in Settings \x{e2}\x{86}\x{92} Billing\.","code":"plan_not_eligible","param":null,"request_id":"req_\w{26}"\}$/,
 qr/"code":"plan_not_eligible"/]



=== TEST 10: a missing scope is 403 with the scope named
--- config
    location /v1/ { worksible_auth on; worksible_api; }
--- request
GET /v1/freelancers
--- more_headers eval
"Authorization: Bearer $::narrow_key"
--- error_code: 403
--- response_headers
WWW-Authenticate: Bearer realm="worksible", error="insufficient_scope", scope="freelancers:read"
--- response_body_like chomp
^\{"type":"https://docs\.worksible\.com/errors/insufficient_scope","title":"Insufficient scope","status":403,"detail":"This endpoint needs the scope freelancers:read\.","code":"insufficient_scope","param":null,"request_id":"req_\w{26}"\}$



=== TEST 11: write implies read; a custom scope grants nothing of ours
--- config
    location /v1/ { worksible_auth on; worksible_api; }
--- request eval
["GET /v1/companies/me", "GET /v1/freelancers", "GET /v1/companies/me"]
--- more_headers eval
["Authorization: Bearer $::write_key", "Authorization: Bearer $::write_key",
 "Authorization: Bearer $::custom_key"]
--- error_code eval
[200, 200, 403]



=== TEST 12: a client's own X-Request-Id is ignored
--- config
    location /v1/ { worksible_auth on; worksible_api; }
--- request
GET /v1/companies/me
--- more_headers eval
"Authorization: Bearer $::key\nX-Request-Id: mine"
--- error_code: 200
--- response_headers_like
X-Request-Id: ^req_\w{26}$



=== TEST 13: worksible_auth in front of another content handler
--- http_config eval
Worksible::Test::http_config() . <<'CONF';
    server {
        listen 127.0.0.1:1985;
        location / { return 200 "guarded ok\n"; }
    }
CONF
--- config
    location /guarded { worksible_auth on; proxy_pass http://127.0.0.1:1985; }
    location /open { return 200 "open\n"; }
--- request eval
["GET /guarded", "GET /guarded", "GET /open"]
--- more_headers eval
["Authorization: Bearer $::key", "", ""]
--- error_code eval
[200, 401, 200]
--- response_body_like eval
[qr/^guarded ok$/, qr/"code":"api_key_missing"/, qr/^open$/]



=== TEST 14: the identity variables reach a proxied service, the key does not
--- http_config eval
Worksible::Test::http_config() . <<'CONF';
    server {
        listen 127.0.0.1:1985;
        location / {
            return 200 "company=$http_x_worksible_company key=$http_x_worksible_api_key plan=$http_x_worksible_plan scopes=$http_x_worksible_scopes request=$http_x_request_id authorization=[$http_authorization]\n";
        }
    }
CONF
--- config
    location /guarded {
        worksible_auth on;
        proxy_set_header X-Worksible-Company $worksible_company_id;
        proxy_set_header X-Worksible-Api-Key $worksible_api_key_id;
        proxy_set_header X-Worksible-Plan $worksible_plan;
        proxy_set_header X-Worksible-Scopes $worksible_scopes;
        proxy_set_header X-Request-Id $worksible_request_id;
        proxy_set_header Authorization "";
        proxy_pass http://127.0.0.1:1985;
    }
--- request
GET /guarded
--- more_headers eval
"Authorization: Bearer $::key"
--- error_code: 200
--- response_body_like eval
qr/^company=$::company key=key_\w{26} plan=growth scopes=company:read freelancers:read request=req_\w{26} authorization=\[\]$/
