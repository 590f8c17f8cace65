# The write path and the first resources: company, freelancers, projects,
# contracts (API.md, Conventions and Resources). Each validation rule names
# its field; a refused body writes nothing; PATCH changes only what it
# sends; companies never see each other's rows.

use strict;
use warnings;

use Test::Nginx::Socket 'no_plan';
use Worksible::Test qw(company api_key freelancers psql psql_value
    use_default_http_config);

our $company = company(plan => 'growth', name => 'Resources Co');
our $key = api_key($company, join ' ', map { "$_:write" }
    qw(company freelancers projects contracts))->{key};
our $reader = api_key($company, 'freelancers:read projects:read')->{key};

our $other = company(plan => 'growth', name => 'Other Resources Co');
our $other_key = api_key($other, 'freelancers:write projects:write contracts:write')->{key};
our ($other_fl) = freelancers($other, 1);
our $other_prj = psql_value("SELECT worksible_project_write('$other', NULL, '{\"name\":\"Theirs\"}')::json->>'id'");

our ($fl) = freelancers($company, 1);
our $prj = psql_value("SELECT worksible_project_write('$company', NULL, '{\"name\":\"Ours\",\"budget\":500000,\"currency\":\"JPY\"}')::json->>'id'");

our $problem = \&Worksible::Test::problem;

our $rows = sub { psql_value("SELECT count(*) FROM $_[0] WHERE company_id = '$company'") };
our %before = map { $_ => $rows->($_) } qw(freelancers projects contracts);

use_default_http_config();
no_shuffle();
add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value('config',
        "    location /v1/ { worksible_auth on; worksible_api; }\n")
        unless defined $block->config;
    $block->set_value('more_headers',
        "Authorization: Bearer $::key\nContent-Type: application/json")
        unless defined $block->more_headers;
});
run_tests();

is($rows->('freelancers'), $before{freelancers} + 1, 'one freelancer was created, no more');
is($rows->('projects'), $before{projects} + 2, 'two projects were created, no more');
is($rows->('contracts'), $before{contracts} + 1, 'one contract was created, no more');

__DATA__

=== TEST 1: PATCH the company: only the name changes
--- request
PATCH /v1/companies/me
{"name":"Resources Company"}
--- error_code: 200
--- response_body_like eval
qr/^\{"object" : "company", "id" : "$::company", "name" : "Resources Company", "plan" : "growth", "currency" : "EUR"/



=== TEST 2: create a freelancer: 201, defaults, money as integers
--- request
POST /v1/freelancers
{"email":"ada@example.com","name":"Ada Lovelace","country":"GB","hourly_rate":9000,"currency":"EUR"}
--- error_code: 201
--- response_headers_like
Location: /v1/freelancers/fl_\w{26}
--- response_body_like chomp
^\{"object":"freelancer","id":"fl_\w{26}","email":"ada@example.com","name":"Ada Lovelace","country":"GB","status":"invited","hourly_rate":9000,"currency":"EUR","created_at":"[^"]+Z","updated_at":"[^"]+Z"\}$



=== TEST 3: every validation rule names its field, and writes nothing
--- request eval
[map { "POST /v1/freelancers\n$_" }
 '{"name":"A","country":"GB"}',
 '{"email":"a@b","country":"GB"}',
 '{"email":"nope","name":"A","country":"GB"}',
 '{"email":"a@b","name":"","country":"GB"}',
 '{"email":"a@b","name":"A","country":"gb"}',
 '{"email":"a@b","name":"A","country":"XX"}',
 '{"email":"a@b","name":"A","country":"GB","status":"fired"}',
 '{"email":"a@b","name":"A","country":"GB","hourly_rate":90.5,"currency":"EUR"}',
 '{"email":"a@b","name":"A","country":"GB","hourly_rate":"9000","currency":"EUR"}',
 '{"email":"a@b","name":"A","country":"GB","hourly_rate":9007199254740992,"currency":"EUR"}',
 '{"email":"a@b","name":"A","country":"GB","hourly_rate":-1,"currency":"EUR"}',
 '{"email":"a@b","name":"A","country":"GB","hourly_rate":9000}',
 '{"email":"a@b","name":"A","country":"GB","currency":"EUR"}',
 '{"email":"a@b","name":"A","country":"GB","hourly_rate":9000,"currency":"XYZ"}',
 '{"email":"a@b","name":"A","country":"GB","id":"fl_01ARZ3NDEKTSV4RRFFQ69G5FAV"}',
 '{"email":"a@b","name":null,"country":"GB"}',
 '{"email":"a@b","name":"A","country":"GB","hourly_rate":99999999999999999999,"currency":"EUR"}']
--- error_code eval
[(400) x 17]
--- response_body_like eval
[$::problem->(400, 'parameter_missing', 'email'), $::problem->(400, 'parameter_missing', 'name'),
 $::problem->(400, 'parameter_invalid', 'email'), $::problem->(400, 'parameter_invalid', 'name'),
 $::problem->(400, 'parameter_invalid', 'country'), $::problem->(400, 'parameter_invalid', 'country'),
 $::problem->(400, 'parameter_invalid', 'status'), $::problem->(400, 'parameter_invalid', 'hourly_rate'),
 $::problem->(400, 'parameter_invalid', 'hourly_rate'), $::problem->(400, 'parameter_invalid', 'hourly_rate'),
 $::problem->(400, 'parameter_invalid', 'hourly_rate'), $::problem->(400, 'parameter_invalid', 'currency'),
 $::problem->(400, 'parameter_invalid', 'hourly_rate'), $::problem->(400, 'parameter_invalid', 'currency'),
 $::problem->(400, 'parameter_unknown', 'id'), $::problem->(400, 'parameter_invalid', 'name'),
 $::problem->(400, 'parameter_invalid', 'hourly_rate')]



=== TEST 4: PATCH changes only what it sends; null clears an optional pair
--- request eval
["PATCH /v1/freelancers/$::fl\n{\"status\":\"offboarded\"}",
 "PATCH /v1/freelancers/$::fl\n{\"hourly_rate\":12000,\"currency\":\"USD\"}",
 "PATCH /v1/freelancers/$::fl\n{\"hourly_rate\":null,\"currency\":null}",
 "PATCH /v1/freelancers/$::fl\n{\"hourly_rate\":null}",
 "PATCH /v1/freelancers/$::fl\n{\"id\":\"fl_01ARZ3NDEKTSV4RRFFQ69G5FAV\"}"]
--- error_code eval
[200, 200, 200, 200, 400]
--- response_body_like eval
[qr/"id" : "$::fl", "email" : "[^"]+", "name" : "Freelancer 1", "country" : "DE", "status" : "offboarded", "hourly_rate" : null/,
 qr/"status" : "offboarded", "hourly_rate" : 12000, "currency" : "USD"/,
 qr/"hourly_rate" : null, "currency" : null/,
 qr/"hourly_rate" : null, "currency" : null/,
 $::problem->(400, 'parameter_unknown', 'id')]



=== TEST 5: another company's freelancer cannot be read or changed
--- request eval
["GET /v1/freelancers/$::other_fl", "PATCH /v1/freelancers/$::other_fl\n{\"name\":\"Mine\"}"]
--- error_code eval
[404, 404]



=== TEST 6: projects: create, list filter, PATCH, validation
--- request eval
["POST /v1/projects\n{\"name\":\"Website\",\"description\":\"New site\",\"budget\":1500000,\"currency\":\"EUR\"}",
 "GET /v1/projects?status=archived",
 "PATCH /v1/projects/$::prj\n{\"status\":\"archived\"}",
 "GET /v1/projects?status=archived",
 "POST /v1/projects\n{\"name\":\"X\",\"budget\":100}",
 "POST /v1/projects\n{\"description\":\"no name\"}",
 "GET /v1/projects?status=done"]
--- error_code eval
[201, 200, 200, 200, 400, 400, 400]
--- response_body_like eval
[qr/^\{"object":"project","id":"prj_\w{26}","name":"Website","description":"New site","status":"active","budget":1500000,"currency":"EUR"/,
 qr/^\{"object" : "list", "data" : \[\], "has_more" : false, "url" : "\/v1\/projects"\}$/,
 qr/"id" : "$::prj", "name" : "Ours", "description" : null, "status" : "archived", "budget" : 500000, "currency" : "JPY"/,
 qr/^\{"object" : "list", "data" : \[\{"object" : "project", "id" : "$::prj"/,
 $::problem->(400, 'parameter_invalid', 'currency'),
 $::problem->(400, 'parameter_missing', 'name'),
 $::problem->(400, 'parameter_invalid', 'status')]



=== TEST 7: contracts: references must be this company's, dates must hold
--- request eval
["POST /v1/contracts\n{\"project_id\":\"$::prj\",\"freelancer_id\":\"$::other_fl\",\"type\":\"hourly\",\"rate\":9000,\"currency\":\"EUR\"}",
 "POST /v1/contracts\n{\"project_id\":\"$::other_prj\",\"freelancer_id\":\"$::fl\",\"type\":\"hourly\",\"rate\":9000,\"currency\":\"EUR\"}",
 "POST /v1/contracts\n{\"project_id\":\"prj_01ARZ3NDEKTSV4RRFFQ69G5FAV\",\"freelancer_id\":\"$::fl\",\"type\":\"hourly\",\"rate\":9000,\"currency\":\"EUR\"}",
 "POST /v1/contracts\n{\"project_id\":\"$::prj\",\"freelancer_id\":\"$::fl\",\"type\":\"hourly\",\"rate\":9000,\"currency\":\"EUR\",\"start_date\":\"2026-02-30\"}",
 "POST /v1/contracts\n{\"project_id\":\"$::prj\",\"freelancer_id\":\"$::fl\",\"type\":\"hourly\",\"rate\":9000,\"currency\":\"EUR\",\"start_date\":\"2026-03-01\",\"end_date\":\"2026-02-01\"}",
 "POST /v1/contracts\n{\"project_id\":\"$::fl\",\"freelancer_id\":\"$::fl\",\"type\":\"hourly\",\"rate\":9000,\"currency\":\"EUR\"}",
 "POST /v1/contracts\n{\"project_id\":\"$::prj\",\"freelancer_id\":\"$::fl\",\"type\":\"fixed\",\"rate\":250000,\"currency\":\"JPY\",\"start_date\":\"2026-03-01\",\"end_date\":\"2026-06-30\"}"]
--- error_code eval
[400, 400, 400, 400, 400, 400, 201]
--- response_body_like eval
[$::problem->(400, 'parameter_invalid', 'freelancer_id'), $::problem->(400, 'parameter_invalid', 'project_id'),
 $::problem->(400, 'parameter_invalid', 'project_id'), $::problem->(400, 'parameter_invalid', 'start_date'),
 $::problem->(400, 'parameter_invalid', 'end_date'), $::problem->(400, 'parameter_invalid', 'project_id'),
 qr/^\{"object":"contract","id":"ctr_\w{26}","project_id":"$::prj","freelancer_id":"$::fl","type":"fixed","rate":250000,"currency":"JPY","status":"draft","start_date":"2026-03-01","end_date":"2026-06-30"/]



=== TEST 8: contract lists filter by reference, type and time
--- request eval
["GET /v1/contracts?project_id=$::prj&type=fixed", "GET /v1/contracts?freelancer_id=$::other_fl",
 "GET /v1/contracts?created_at[gte]=2000-01-01T00:00:00Z&created_at[lt]=2999-01-01T00:00:00Z",
 "GET /v1/contracts?created_at[gte]=2999-01-01T00:00:00Z", "GET /v1/contracts?created_at[gte]=yesterday",
 "GET /v1/contracts?created_at%5Bgt%5D=2026-13-01T00:00:00Z", "GET /v1/contracts?type=weekly"]
--- error_code eval
[200, 200, 200, 200, 400, 400, 400]
--- response_body_like eval
[qr/^\{"object" : "list", "data" : \[\{"object" : "contract", "id" : "ctr_\w{26}", "project_id" : "$::prj"[^\]]*\], "has_more" : false/,
 qr/"data" : \[\]/, qr/"data" : \[\{"object" : "contract"/, qr/"data" : \[\]/,
 $::problem->(400, 'parameter_invalid', 'created_at[gte]'), $::problem->(400, 'parameter_invalid', 'created_at[gt]'),
 $::problem->(400, 'parameter_invalid', 'type')]



=== TEST 9: writes need the write scope
--- request eval
["POST /v1/freelancers\n{}", "PATCH /v1/projects/$::prj\n{}"]
--- more_headers eval
"Authorization: Bearer $::reader\nContent-Type: application/json"
--- error_code eval
[403, 403]
--- response_headers eval
["WWW-Authenticate: Bearer realm=\"worksible\", error=\"insufficient_scope\", scope=\"freelancers:write\"",
 "WWW-Authenticate: Bearer realm=\"worksible\", error=\"insufficient_scope\", scope=\"projects:write\""]



=== TEST 10: another company's project: not in lists, not readable, not writable
--- request eval
["GET /v1/projects/$::other_prj", "PATCH /v1/projects/$::other_prj\n{\"name\":\"Mine\"}",
 "GET /v1/projects?limit=100"]
--- error_code eval
[404, 404, 200]
--- response_body_unlike eval
[qr/"id" : "\Q$::other_prj\E"/, qr/Theirs/, qr/\Q$::other_prj\E/]



=== TEST 11: bytes that are not UTF-8 are invalid JSON
--- request eval
"POST /v1/projects\n{\"name\":\"\xff\xfe\"}"
--- error_code: 400
--- response_body_like eval
$::problem->(400, 'invalid_json')



=== TEST 12: a rule only the schema knows (a Unicode space in an email) is still 400 naming the field
--- request
POST /v1/freelancers
{"email":"a\u2003b@example.com","name":"A","country":"GB"}
--- error_code: 400
--- response_body_like eval
$::problem->(400, 'parameter_invalid', 'email')
--- error_log
a body passed the checks but not the schema



=== TEST 13: a body larger than client_body_buffer_size (read back from its temporary file)
--- request eval
"POST /v1/projects\n{\"name\":\"Big body\"," . (" " x 40000) . "\"description\":\"" . ("\x{e2}\x{82}\x{ac}" x 5000) . "\"}"
--- error_code: 201
--- response_body_like chomp
^\{"object":"project","id":"prj_\w{26}","name":"Big body","description":"(?:\x{e2}\x{82}\x{ac}){5000}"



=== TEST 14: times PostgreSQL cannot hold, and charsets other than UTF-8
--- request eval
["GET /v1/contracts?created_at%5Bgte%5D=2026-01-01T00:00:00-24:00",
 "GET /v1/projects?created_at%5Blt%5D=2026-01-01T24:00:00Z",
 "GET /v1/projects?created_at%5Blt%5D=2026-01-01T10:00:60Z",
 "POST /v1/projects\n{\"name\":\"Latin\"}",
 "POST /v1/projects\n{\"name\":\"  \"}",
 "PATCH /v1/companies/me\n{\"name\":\" \"}"]
--- more_headers eval
["Authorization: Bearer $::key", "Authorization: Bearer $::key", "Authorization: Bearer $::key",
 "Authorization: Bearer $::key\nContent-Type: application/json; charset=latin1",
 "Authorization: Bearer $::key\nContent-Type: application/json; charset=\"UTF-8\"",
 "Authorization: Bearer $::key\nContent-Type: application/json"]
--- error_code eval
[400, 400, 400, 415, 400, 400]
--- response_body_like eval
[$::problem->(400, 'parameter_invalid', 'created_at[gte]'), $::problem->(400, 'parameter_invalid', 'created_at[lt]'),
 $::problem->(400, 'parameter_invalid', 'created_at[lt]'), $::problem->(415, 'unsupported_media_type'),
 $::problem->(400, 'parameter_invalid', 'name'), $::problem->(400, 'parameter_invalid', 'name')]



=== TEST 15: a long unknown member is echoed cut at a character boundary
--- request eval
"POST /v1/projects\n{\"" . ("a" x 63) . "\x{c3}\x{a9}\":1}"
--- error_code: 400
--- response_body_like eval
$::problem->(400, 'parameter_unknown', "a" x 63)



=== TEST 16: a member named "" is unknown, and named (fuzz finding: t/fuzz/corpus/body/regress-empty-member-name)
--- request eval
"POST /v1/projects\n{\"\":1,\"name\":\"x\"}"
--- error_code: 400
--- response_body_like eval
$::problem->(400, 'parameter_unknown', '')
