# The REST API's routes, query checks and resources of the foundation:
# /v1/companies/me, /v1/freelancers, /v1/freelancers/{id} (API.md).

use strict;
use warnings;

use Test::Nginx::Socket 'no_plan';
use Worksible::Test qw(company api_key freelancers use_default_http_config);

our $company = company(plan => 'scale', name => 'Api Test Co');
our $key = api_key($company, 'company:read freelancers:read')->{key};
our @ids = freelancers($company, 3);

our $other = company(plan => 'growth', name => 'Other Co');
our @other_ids = freelancers($other, 1);

# $bad->($param, $code): the 400 problem for $param (parameter_invalid)
our $bad = sub {
    my ($param, $code) = @_;
    Worksible::Test::problem(400, $code // 'parameter_invalid', $param);
};

use_default_http_config();
no_shuffle();
add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value('config',
        "    location /v1/ { worksible_auth on; worksible_api; }\n")
        unless defined $block->config;
    $block->set_value('more_headers', "Authorization: Bearer $::key")
        unless defined $block->more_headers;
});
run_tests();

__DATA__

=== TEST 1: list freelancers: newest first, the list envelope
--- request
GET /v1/freelancers
--- error_code: 200
--- response_headers
Content-Type: application/json; charset=utf-8
Cache-Control: no-store
--- response_body_like eval
qr/^\{"object" : "list", "data" : \[\{"object" : "freelancer", "id" : "$::ids[0]".*"id" : "$::ids[1]".*"id" : "$::ids[2]"[^\]]*\], "has_more" : false, "url" : "\/v1\/freelancers"\}$/



=== TEST 2: limit bounds
--- request eval
["GET /v1/freelancers?limit=1", "GET /v1/freelancers?limit=100"]
--- error_code eval
[200, 200]
--- response_body_like eval
[qr/"id" : "$::ids[0]".*"has_more" : true/, qr/"has_more" : false/]



=== TEST 3: bad limits name the parameter
--- request eval
["GET /v1/freelancers?limit=0", "GET /v1/freelancers?limit=101",
 "GET /v1/freelancers?limit=abc", "GET /v1/freelancers?limit=-1",
 "GET /v1/freelancers?limit=2147483648", "GET /v1/freelancers?limit=",
 "GET /v1/freelancers?limit=1.5", "GET /v1/freelancers?limit=%201"]
--- error_code eval
[400, 400, 400, 400, 400, 400, 400, 400]
--- response_body_like eval
[($::bad->('limit')) x 8]



=== TEST 4: both cursors at once name ending_before
--- request eval
"GET /v1/freelancers?starting_after=$::ids[0]&ending_before=$::ids[2]"
--- error_code: 400
--- response_body_like eval
$::bad->('ending_before')



=== TEST 5: malformed cursors, another company's cursor
--- request eval
["GET /v1/freelancers?starting_after=nope",
 "GET /v1/freelancers?ending_before=prj_01ARZ3NDEKTSV4RRFFQ69G5FAV",
 "GET /v1/freelancers?starting_after=$::other_ids[0]",
 "GET /v1/freelancers?ending_before=$::other_ids[0]",
 "GET /v1/freelancers?starting_after=fl_01ARZ3NDEKTSV4RRFFQ69G5FAV"]
--- error_code eval
[400, 400, 400, 400, 400]
--- response_body_like eval
[$::bad->('starting_after'), $::bad->('ending_before'),
 $::bad->('starting_after'), $::bad->('ending_before'),
 $::bad->('starting_after')]



=== TEST 6: unknown and repeated parameters
--- request eval
["GET /v1/freelancers?sort=name", "GET /v1/freelancers?limit=1&limit=2",
 "GET /v1/companies/me?expand=all"]
--- error_code eval
[400, 400, 400]
--- response_body_like eval
[$::bad->('sort', 'parameter_unknown'), $::bad->('limit'),
 $::bad->('expand', 'parameter_unknown')]



=== TEST 6b: a parameter without a name is named as it was sent, and a name that is no UTF-8 is cut, never emptied (fuzz findings: t/fuzz/corpus/query/regress-nameless-parameter, regress-name-of-continuation-bytes)
--- request eval
["GET /v1/freelancers?=5", "GET /v1/freelancers?limit=1&%25", "GET /v1/freelancers?" . ("%80" x 70) . "=1",
 "GET /v1/freelancers?limit=1&%"]
--- error_code eval
[400, 400, 400, 400]
--- response_body_like eval
[$::bad->('=5', 'parameter_unknown'), $::bad->('%', 'parameter_unknown'),
 $::bad->('?', 'parameter_unknown'), $::bad->('%', 'parameter_unknown')]



=== TEST 7: status filter
--- request eval
["GET /v1/freelancers?status=active", "GET /v1/freelancers?status=invited",
 "GET /v1/freelancers?status=gone"]
--- error_code eval
[200, 200, 400]
--- response_body_like eval
[qr/"id" : "$::ids[0]"/, qr/^\{"object" : "list", "data" : \[\], "has_more" : false/,
 $::bad->('status')]



=== TEST 8: retrieve a freelancer
--- request eval
"GET /v1/freelancers/$::ids[1]"
--- error_code: 200
--- response_body_like eval
qr/^\{"object" : "freelancer", "id" : "$::ids[1]", "email" : "[^"]+", "name" : "Freelancer 2", "country" : "DE", "status" : "active", "hourly_rate" : null, "currency" : null, "created_at" : "[^"]+Z", "updated_at" : "[^"]+Z"\}$/



=== TEST 9: another company's, unknown and malformed ids are 404
--- request eval
["GET /v1/freelancers/$::other_ids[0]",
 "GET /v1/freelancers/fl_01ARZ3NDEKTSV4RRFFQ69G5FAV",
 "GET /v1/freelancers/fl_nope", "GET /v1/freelancers/$::company"]
--- error_code eval
[404, 404, 404, 404]
--- response_body_like eval
[(qr/^\{"type":"https:\/\/docs\.worksible\.com\/errors\/resource_not_found","title":"Resource not found","status":404,"detail":"No such freelancer\.","code":"resource_not_found","param":null,"request_id":"req_\w{26}"\}$/) x 4]



=== TEST 10: unknown routes
--- request eval
["GET /v1/nothing", "GET /v1/freelancers/", "GET /v1/Freelancers",
 "GET /v1/companies/me/x", "GET /v1/freelancers/$::ids[0]/x"]
--- error_code eval
[404, 404, 404, 404, 404]
--- response_body_like eval
[(qr/"code":"route_not_found"/) x 5]



=== TEST 11: a method the path does not take is 405 with Allow
--- request eval
["DELETE /v1/companies/me", "PUT /v1/freelancers"]
--- error_code eval
[405, 405]
--- response_headers eval
["Allow: GET, HEAD, PATCH", "Allow: GET, HEAD, POST"]
--- response_body_like eval
[(qr/"code":"method_not_allowed"/) x 2]



=== TEST 12: HEAD answers like GET without a body
--- request
HEAD /v1/companies/me
--- error_code: 200
--- response_headers
Content-Type: application/json; charset=utf-8
--- response_body:



=== TEST 13: the path nginx normalized is the one routed
--- request eval
["GET /v1//companies/me", "GET /v1/x/../companies/me",
 "GET /v1/%63ompanies/me"]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
[(qr/"id" : "$::company"/) x 3]



=== TEST 14: a host name in the conninfo, resolved when nginx loads (every address tried)
--- http_config eval
(my $c = $ENV{TEST_NGINX_PG_CONNINFO}) =~ s/host=[^ ]+/host=localhost/;
Worksible::Test::http_config(postgres => qq{"$c"});
--- request
GET /v1/companies/me
--- error_code: 200
--- response_body_like eval
qr/"id" : "$::company"/



=== TEST 15: libpq moving to the next address mid-connect (a new socket) is followed
--- http_config eval
(my $c = $ENV{TEST_NGINX_PG_CONNINFO}) =~ s/host=[^ ]+//;
$c =~ s/port=(\d+)/host=db,db hostaddr=127.0.0.1,127.0.0.1 port=1,$1/;
Worksible::Test::http_config(postgres => qq{"$c"});
--- request
GET /v1/companies/me
--- error_code: 200
--- response_body_like eval
qr/"id" : "$::company"/
