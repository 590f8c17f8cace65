# Key management over the API: /v1/api_keys list, retrieve, create (the key
# once), revoke; no key grants more than it holds; bad bodies change nothing.

use strict;
use warnings;

use Test::Nginx::Socket 'no_plan';
use Worksible::Test qw(company api_key psql_value use_default_http_config);

our $ent = company(plan => 'enterprise', name => 'Keys Enterprise');
our $admin = api_key($ent, 'api_keys:write company:read freelancers:read')->{key};
our $reader = api_key($ent, 'api_keys:read');
our $growth = company(plan => 'growth', name => 'Keys Growth');
our $growth_admin = api_key($growth, 'api_keys:write freelancers:read')->{key};
our $foreign = api_key($growth, 'company:read');

our $problem = \&Worksible::Test::problem;

our $count = sub { psql_value("SELECT count(*) FROM api_keys WHERE company_id = '$ent'") };
our $before = $count->();

use_default_http_config();
no_shuffle();
add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value('config',
        "    location /v1/ { worksible_auth on; worksible_api; }\n")
        unless defined $block->config;
});
run_tests();

is($count->(), $before + 2, 'exactly the two keys of TEST 1 and TEST 2 were created');

__DATA__

=== TEST 1: create a key: 201, Location, the key once
--- request
POST /v1/api_keys
{"name":"ci deploy","scopes":["freelancers:read","company:read","freelancers:read"]}
--- more_headers eval
"Authorization: Bearer $::admin\nContent-Type: application/json"
--- error_code: 201
--- response_headers_like
Location: ^/v1/api_keys/key_[0-9A-HJKMNP-TV-Z]{26}$
Content-Type: ^application/json; charset=utf-8$
Cache-Control: no-store
--- response_body_like chomp
^\{"object":"api_key","id":"key_\w{26}","name":"ci deploy","prefix":"wsk_live_[a-z0-9]{12}","scopes":\["freelancers:read","company:read"\],"ip_allowlist":\[\],"expires_at":null,"revoked_at":null,"last_used_at":null,"created_at":"[^"]+Z","key":"wsk_live_[a-z0-9]{12}_[A-Za-z0-9]{32}"\}$



=== TEST 2: write implies read; an enterprise key may carry an allowlist and an expiry
--- request
POST /v1/api_keys
{"scopes":["api_keys:read"],"ip_allowlist":["203.0.113.0/24","2001:db8::1"],"expires_at":"2099-01-31t12:00:00+01:00"}
--- more_headers eval
"Authorization: Bearer $::admin\nContent-Type: application/json; charset=utf-8"
--- error_code: 201
--- response_body_like chomp
"scopes":\["api_keys:read"\],"ip_allowlist":\["203\.0\.113\.0/24","2001:db8::1/128"\],"expires_at":"2099-01-31T11:00:00Z"



=== TEST 3: no key grants a scope it does not hold
--- request
POST /v1/api_keys
{"scopes":["freelancers:read","payouts:write"]}
--- more_headers eval
"Authorization: Bearer $::admin\nContent-Type: application/json"
--- error_code: 403
--- response_body_like eval
$::problem->(403, 'insufficient_scope', 'scopes[1]')



=== TEST 4: bad bodies are 400 naming the field, and create nothing
--- request eval
[map { "POST /v1/api_keys\n$_" }
 'nope', '[1,2]', '{"scopes":["company:read"],"scopes":["company:read"]}',
 '{"scopes":["company:read"],"color":"red"}', '{}', '{"scopes":"company:read"}',
 '{"scopes":[]}', '{"scopes":[1]}', '{"scopes":["company"]}',
 '{"scopes":["company:read"],"name":' . ('"' . ('x' x 201) . '"') . '}',
 '{"scopes":["company:read"],"name":5}',
 '{"scopes":["company:read"],"expires_at":"tomorrow"}',
 '{"scopes":["company:read"],"expires_at":"2001-01-01T00:00:00Z"}',
 '{"scopes":["company:read"],"expires_at":"2099-02-30T00:00:00Z"}',
 '{"scopes":["company:read"],"ip_allowlist":["10.0.0.1/8"]}',
 '{"scopes":["company:read"],"ip_allowlist":["10.0.0.0/8","010.1.1.1"]}',
 '{"scopes":["company:read"],"ip_allowlist":"10.0.0.0/8"}',
 '{"scopes":["company:read"],"name":"a\u0000b"}',
 '{"scopes":["company:read"],"name":"\ud800"}',
 '{"scopes":["company:read"],"name":" \t "}']
--- more_headers eval
"Authorization: Bearer $::admin\nContent-Type: application/json"
--- error_code eval
[(400) x 20]
--- response_body_like eval
[$::problem->(400, 'invalid_json'), $::problem->(400, 'invalid_json'),
 $::problem->(400, 'invalid_json'), $::problem->(400, 'parameter_unknown', 'color'),
 $::problem->(400, 'parameter_missing', 'scopes'), $::problem->(400, 'parameter_invalid', 'scopes'),
 $::problem->(400, 'parameter_invalid', 'scopes'), $::problem->(400, 'parameter_invalid', 'scopes[0]'),
 $::problem->(400, 'parameter_invalid', 'scopes[0]'), $::problem->(400, 'parameter_invalid', 'name'),
 $::problem->(400, 'parameter_invalid', 'name'), $::problem->(400, 'parameter_invalid', 'expires_at'),
 $::problem->(400, 'parameter_invalid', 'expires_at'), $::problem->(400, 'parameter_invalid', 'expires_at'),
 $::problem->(400, 'parameter_invalid', 'ip_allowlist[0]'), $::problem->(400, 'parameter_invalid', 'ip_allowlist[1]'),
 $::problem->(400, 'parameter_invalid', 'ip_allowlist'), $::problem->(400, 'invalid_json'),
 $::problem->(400, 'invalid_json'), $::problem->(400, 'parameter_invalid', 'name')]



=== TEST 5: media type and size
--- request eval
["POST /v1/api_keys\n{\"scopes\":[\"company:read\"]}",
 "POST /v1/api_keys\n" . ('{"scopes":["company:read"],"name":"' . ('x' x 70000) . '"}'),
 "POST /v1/api_keys"]
--- more_headers eval
["Authorization: Bearer $::admin\nContent-Type: text/plain",
 "Authorization: Bearer $::admin\nContent-Type: application/json",
 "Authorization: Bearer $::admin"]
--- error_code eval
[415, 413, 400]
--- response_body_like eval
[$::problem->(415, 'unsupported_media_type'), $::problem->(413, 'body_too_large'),
 $::problem->(400, 'invalid_json')]



=== TEST 6: a new IP allowlist needs the enterprise plan
--- request
POST /v1/api_keys
{"scopes":["freelancers:read"],"ip_allowlist":["10.0.0.0/8"]}
--- more_headers eval
"Authorization: Bearer $::growth_admin\nContent-Type: application/json"
--- error_code: 403
--- response_body_like eval
$::problem->(403, 'plan_not_eligible', 'ip_allowlist')



=== TEST 7: list and retrieve never show a key or a hash
--- request eval
["GET /v1/api_keys?limit=100", "GET /v1/api_keys/$::reader->{id}"]
--- more_headers eval
"Authorization: Bearer $::admin"
--- error_code eval
[200, 200]
--- response_body_like eval
[qr/^\{"object" : "list", "data" : \[\{"object" : "api_key".*"id" : "$::reader->{id}".*\], "has_more" : false, "url" : "\/v1\/api_keys"\}$/,
 qr/^\{"object" : "api_key", "id" : "$::reader->{id}", "name" : null, "prefix" : "wsk_live_[a-z0-9]{12}", "scopes" : \["api_keys:read"\]/]
--- response_body_unlike eval
[qr/wsk_live_[a-z0-9]{12}_|hash|secret/, qr/wsk_live_[a-z0-9]{12}_|hash|secret/]



=== TEST 8: revoke, twice; another company's key is not found
--- request eval
["POST /v1/api_keys/$::reader->{id}/revoke", "POST /v1/api_keys/$::reader->{id}/revoke",
 "POST /v1/api_keys/$::foreign->{id}/revoke", "GET /v1/api_keys/$::foreign->{id}"]
--- more_headers eval
"Authorization: Bearer $::admin"
--- error_code eval
[200, 200, 404, 404]
--- response_body_like eval
[qr/"id" : "$::reader->{id}".*"revoked_at" : "[^"]+Z"/, qr/"revoked_at" : "[^"]+Z"/,
 $::problem->(404, 'resource_not_found'), $::problem->(404, 'resource_not_found')]



=== TEST 9: the scopes of the endpoints, and their methods
--- request eval
["POST /v1/api_keys\n{}", "GET /v1/api_keys/key_01ARZ3NDEKTSV4RRFFQ69G5FAV/revoke",
 "DELETE /v1/api_keys"]
--- more_headers eval
["Authorization: Bearer $::foreign->{key}\nContent-Type: application/json",
 "Authorization: Bearer $::admin", "Authorization: Bearer $::admin"]
--- error_code eval
[403, 405, 405]
--- response_headers eval
["WWW-Authenticate: Bearer realm=\"worksible\", error=\"insufficient_scope\", scope=\"api_keys:write\"",
 "Allow: POST", "Allow: GET, HEAD, POST"]



=== TEST 10: an expiry past year 9999, or an offset PostgreSQL cannot read
--- request eval
["POST /v1/api_keys\n{\"scopes\":[\"company:read\"],\"expires_at\":\"9999-12-31T23:59:60Z\"}",
 "POST /v1/api_keys\n{\"scopes\":[\"company:read\"],\"expires_at\":\"9999-12-31T23:59:59-15:00\"}",
 "POST /v1/api_keys\n{\"scopes\":[\"company:read\"],\"expires_at\":\"2099-01-01T00:00:00+24:00\"}"]
--- more_headers eval
"Authorization: Bearer $::admin\nContent-Type: application/json"
--- error_code eval
[400, 400, 400]
--- response_body_like eval
[($::problem->(400, 'parameter_invalid', 'expires_at')) x 3]
