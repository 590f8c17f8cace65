# docs/openapi.yaml against the server: it lints clean (Redocly CLI, the
# version pinned in docs/package.json), names every route of the module
# and every error code it sends, and real responses of every endpoint,
# success and each kind of error, validate against it (JSON::Validator):
# a member or header the document lacks, or one it requires and the
# server omits, fails.

use strict;
use warnings;

use JSON::Validator;
use Test::More;
use Time::HiRes qw(sleep);
use Worksible::Test qw(company api_key plan http_config nginx_start
    nginx_stop http psql json redis_cli stack);

my $top = $ENV{WORKSIBLE_TOP};
my $doc = "$top/docs/openapi.yaml";

# --- lint ----------------------------------------------------------------------

my $lint = `cd $top/docs && npx --no-install redocly lint openapi.yaml 2>&1`;
is($? >> 8, 0, 'redocly lint passes') or diag($lint);
like($lint, qr/Your API description is valid/, 'it says the document is valid');
unlike($lint, qr/\d+ warnings?\b/, 'without warnings') or diag($lint);

my $schema = JSON::Validator->new->schema($doc)->schema;
is_deeply([ map {"$_"} @{ $schema->errors } ], [], 'an OpenAPI 3.0 document JSON::Validator reads');

# --- every route and every code of the module is in it -------------------------

my %ops = map { (uc($_->{method}) . ' ' . $_->{path}) => 1 } @{ $schema->routes->to_array };
my $routes = do { local (@ARGV, $/) = ("$top/src/ngx_worksible_api.c"); <> };
my @routes = $routes =~ /\{ NGX_HTTP_(\w+), ngx_string\("(\/v1[^"]*)"\)/g;
ok(@routes > 60, 'the route table was read');
while (my ($m, $p) = splice @routes, 0, 2) {
    ok($ops{"$m $p"}, "the document has $m $p");
}
my $problems = do { local (@ARGV, $/) = ("$top/src/ngx_worksible_problem.c"); <> };
my %codes = map { $_ => 1 } @{ $schema->get('/components/schemas/Problem/properties/code/enum') };
for my $code ($problems =~ /\{ (?:NGX_HTTP_\w+|\d+), "(\w+)",/g) {
    ok($codes{$code}, "the document has the error code $code");
}

# --- real responses ----------------------------------------------------------------

nginx_start(name => 'openapi', port => 1977, http => http_config(), server => '
        worksible_errors on;
        location /v1/ { worksible_auth on; worksible_rate_limit on;
                        worksible_idempotency on; worksible_api; }');

my $plan = plan(limit => 100000, window => 60);
my $cmp = company(plan => $plan, name => 'OpenAPI Co', currency => 'EUR');
my $all = join ' ', map { "$_:write" }
    qw(company freelancers projects contracts timesheets invoices payments payouts api_keys);
my $key = api_key($cmp, "$all request_logs:read")->{key};
my $narrow = api_key($cmp, 'company:read')->{key};
my $revoked = api_key($cmp, 'company:read');
psql("UPDATE api_keys SET revoked_at = now() WHERE id = '$revoked->{id}'");
my $expired = api_key($cmp, 'company:read', expires_at => '2030-01-01T00:00:00Z');
psql("UPDATE api_keys SET expires_at = now() - interval '1 day' WHERE id = '$expired->{id}'");
my $trial = api_key(company(plan => 'trial'), 'company:read')->{key};
my $walled = api_key(company(plan => 'enterprise'), 'company:read',
                     allow_ip => ['192.0.2.0/24'])->{key};
my $tight = api_key(company(plan => plan(limit => 1, window => 3600)), 'company:read')->{key};

my ($checked, %statuses) = (0);

# $method $path (for the document: $template) [$body], headers: the response
sub check {
    my ($name, $method, $path, $template, $body, %o) = @_;
    my %h = (Authorization => 'Bearer ' . ($o{key} // $key));
    delete $h{Authorization} if $o{anonymous};
    $h{'Content-Type'} = $o{type} // 'application/json' if defined $body;
    $h{'Idempotency-Key'} = $o{idem} if defined $o{idem};
    my $res = http($method, $path, \%h, port => 1977, defined $body ? (body => $body) : ());
    my $json = eval { json()->decode($res->{body}) };
    my @errors = $schema->validate_response([lc $method, $template, $res->{status}], {
        body => sub {
            return { exists => length($res->{body}) > 0, value => $json,
                     accept => $res->{headers}{'content-type'} };
        },
        header => sub {
            my ($n) = @_;
            my $v = $res->{headers}{lc $n};
            return { exists => defined $v, value => $v };
        },
    });
    is($res->{status}, $o{status}, "$name: $method $path is $o{status}") if $o{status};
    ok(!@errors, "$name: the $res->{status} of $method $template matches the document")
        or diag(join("\n", map {"$_"} @errors) . "\n$res->{body}");
    $checked++;
    $statuses{ $res->{status} }++;
    return $json // {};
}

# successes, creating what the next ones need
my $me = check('company', 'GET', '/v1/companies/me', '/v1/companies/me', undef, status => 200);
check('company update', 'PATCH', '/v1/companies/me', '/v1/companies/me', '{"name":"OpenAPI Co"}', status => 200);
my $fl = check('create freelancer', 'POST', '/v1/freelancers', '/v1/freelancers',
    '{"email":"oa@example.com","name":"Oa","country":"DE","hourly_rate":9000,"currency":"EUR"}', status => 201)->{id};
check('list freelancers', 'GET', '/v1/freelancers?limit=1', '/v1/freelancers', undef, status => 200);
check('get freelancer', 'GET', "/v1/freelancers/$fl", '/v1/freelancers/{id}', undef, status => 200);
check('update freelancer', 'PATCH', "/v1/freelancers/$fl", '/v1/freelancers/{id}', '{"status":"active"}', status => 200);
my $prj = check('create project', 'POST', '/v1/projects', '/v1/projects', '{"name":"Oa project"}', status => 201)->{id};
check('list projects', 'GET', '/v1/projects', '/v1/projects', undef, status => 200);
check('get project', 'GET', "/v1/projects/$prj", '/v1/projects/{id}', undef, status => 200);
check('update project', 'PATCH', "/v1/projects/$prj", '/v1/projects/{id}', '{"budget":100,"currency":"EUR"}', status => 200);
my $ctr = check('create contract', 'POST', '/v1/contracts', '/v1/contracts',
    json()->encode({ project_id => $prj, freelancer_id => $fl, type => 'hourly', rate => 9000,
                     currency => 'EUR', start_date => '2026-11-01' }), status => 201)->{id};
check('list contracts', 'GET', "/v1/contracts?project_id=$prj", '/v1/contracts', undef, status => 200);
check('get contract', 'GET', "/v1/contracts/$ctr", '/v1/contracts/{id}', undef, status => 200);
check('update contract', 'PATCH', "/v1/contracts/$ctr", '/v1/contracts/{id}', '{"status":"active"}', status => 200);
my $week = json()->encode({ contract_id => $ctr, period_start => '2026-11-02', period_end => '2026-11-08',
    entries => [ { date => '2026-11-02', minutes => 60, description => 'x' } ] });
my $ts = check('create timesheet', 'POST', '/v1/timesheets', '/v1/timesheets', $week, status => 201)->{id};
check('list timesheets', 'GET', '/v1/timesheets?status=draft', '/v1/timesheets', undef, status => 200);
check('get timesheet', 'GET', "/v1/timesheets/$ts", '/v1/timesheets/{id}', undef, status => 200);
check('update timesheet', 'PATCH', "/v1/timesheets/$ts", '/v1/timesheets/{id}', '{"period_end":"2026-11-07"}', status => 200);
check('submit timesheet', 'POST', "/v1/timesheets/$ts/submit", '/v1/timesheets/{id}/submit', undef, status => 200);
check('approve timesheet', 'POST', "/v1/timesheets/$ts/approve", '/v1/timesheets/{id}/approve', undef, status => 200);
my $ts2 = check('another timesheet', 'POST', '/v1/timesheets', '/v1/timesheets', $week, status => 201)->{id};
check('submit it', 'POST', "/v1/timesheets/$ts2/submit", '/v1/timesheets/{id}/submit', undef, status => 200);
check('reject timesheet', 'POST', "/v1/timesheets/$ts2/reject", '/v1/timesheets/{id}/reject', undef, status => 200);
my $lines = json()->encode({ contract_id => $ctr, due_date => '2026-12-31',
    line_items => [ { description => 'Work', quantity => 2, unit_amount => 5000 } ] });
my $inv = check('create invoice', 'POST', '/v1/invoices', '/v1/invoices', $lines, status => 201)->{id};
check('list invoices', 'GET', '/v1/invoices', '/v1/invoices', undef, status => 200);
check('get invoice', 'GET', "/v1/invoices/$inv", '/v1/invoices/{id}', undef, status => 200);
check('update invoice', 'PATCH', "/v1/invoices/$inv", '/v1/invoices/{id}', '{"due_date":null}', status => 200);
check('finalize invoice', 'POST', "/v1/invoices/$inv/finalize", '/v1/invoices/{id}/finalize', undef, status => 200);
my $pay = check('create payment', 'POST', '/v1/payments', '/v1/payments',
    json()->encode({ invoice_id => $inv, amount => 4000, currency => 'EUR' }), status => 201)->{id};
check('list payments', 'GET', "/v1/payments?invoice_id=$inv", '/v1/payments', undef, status => 200);
check('get payment', 'GET', "/v1/payments/$pay", '/v1/payments/{id}', undef, status => 200);
my $inv2 = check('another invoice', 'POST', '/v1/invoices', '/v1/invoices', $lines, status => 201)->{id};
check('finalize it', 'POST', "/v1/invoices/$inv2/finalize", '/v1/invoices/{id}/finalize', undef, status => 200);
check('void invoice', 'POST', "/v1/invoices/$inv2/void", '/v1/invoices/{id}/void', undef, status => 200);
my $po = check('create payout', 'POST', '/v1/payouts', '/v1/payouts',
    json()->encode({ freelancer_id => $fl, amount => 100, currency => 'EUR' }), status => 201)->{id};
check('list payouts', 'GET', '/v1/payouts', '/v1/payouts', undef, status => 200);
check('get payout', 'GET', "/v1/payouts/$po", '/v1/payouts/{id}', undef, status => 200);
my $k = check('create api key', 'POST', '/v1/api_keys', '/v1/api_keys',
    '{"name":"oa","scopes":["company:read"],"expires_at":"2030-01-01T00:00:00Z"}', status => 201)->{id};
check('list api keys', 'GET', '/v1/api_keys', '/v1/api_keys', undef, status => 200);
check('get api key', 'GET', "/v1/api_keys/$k", '/v1/api_keys/{id}', undef, status => 200);
check('revoke api key', 'POST', "/v1/api_keys/$k/revoke", '/v1/api_keys/{id}/revoke', undef, status => 200);
sleep 1.5;    # the request log batch
check('request logs', 'GET', '/v1/request_logs?limit=5', '/v1/request_logs', undef, status => 200);
check('request log stats', 'GET', '/v1/request_logs/stats', '/v1/request_logs/stats', undef, status => 200);
check('request log stats by minute', 'GET', '/v1/request_logs/stats?interval=1m&created_at[gte]=2026-11-01T00:00:00Z&created_at[lt]=2026-11-01T00:05:00Z&status=2xx&method=GET&path=/v1/',
      '/v1/request_logs/stats', undef, status => 200);

# idempotency: a replay, and its errors
check('idempotent create', 'POST', '/v1/payouts', '/v1/payouts',
    json()->encode({ freelancer_id => $fl, amount => 5, currency => 'EUR' }), idem => 'oa-1', status => 201);
check('its replay', 'POST', '/v1/payouts', '/v1/payouts',
    json()->encode({ freelancer_id => $fl, amount => 5, currency => 'EUR' }), idem => 'oa-1', status => 201);
check('a replayed key', 'POST', '/v1/api_keys', '/v1/api_keys',
    '{"scopes":["company:read"]}', idem => 'oa-key') for 1 .. 2;
check('a reused key', 'POST', '/v1/payouts', '/v1/payouts', '{}', idem => 'oa-1', status => 422);
check('a malformed key', 'POST', '/v1/payouts', '/v1/payouts', '{}', idem => 'a b', status => 400);

# each kind of error
check('no key', 'GET', '/v1/companies/me', '/v1/companies/me', undef, anonymous => 1, status => 401);
check('a wrong key', 'GET', '/v1/companies/me', '/v1/companies/me', undef,
      key => 'wsk_live_000000000000_' . ('A' x 32), status => 401);
check('a revoked key', 'GET', '/v1/companies/me', '/v1/companies/me', undef, key => $revoked->{key}, status => 401);
check('an expired key', 'GET', '/v1/companies/me', '/v1/companies/me', undef, key => $expired->{key}, status => 401);
check('no API access', 'GET', '/v1/companies/me', '/v1/companies/me', undef, key => $trial, status => 403);
check('an address not allowed', 'GET', '/v1/companies/me', '/v1/companies/me', undef, key => $walled, status => 403);
check('a scope missing', 'GET', '/v1/freelancers', '/v1/freelancers', undef, key => $narrow, status => 403);
check('rate limited (first)', 'GET', '/v1/companies/me', '/v1/companies/me', undef, key => $tight, status => 200);
check('rate limited', 'GET', '/v1/companies/me', '/v1/companies/me', undef, key => $tight, status => 429);
check('a bad filter', 'GET', '/v1/freelancers?status=gone', '/v1/freelancers', undef, status => 400);
check('a bad interval', 'GET', '/v1/request_logs/stats?interval=2h', '/v1/request_logs/stats', undef, status => 400);
check('an unknown parameter', 'GET', '/v1/projects?colour=red', '/v1/projects', undef, status => 400);
check('bad JSON', 'POST', '/v1/freelancers', '/v1/freelancers', '{', status => 400);
check('a missing field', 'POST', '/v1/contracts', '/v1/contracts', '{}', status => 400);
check('a nested field', 'POST', '/v1/invoices', '/v1/invoices',
      json()->encode({ contract_id => $ctr, line_items => [ { description => 'x', quantity => 0, unit_amount => 1 } ] }),
      status => 400);
check('another media type', 'POST', '/v1/projects', '/v1/projects', 'name=x',
      type => 'application/x-www-form-urlencoded', status => 415);
check('a body too large', 'POST', '/v1/projects', '/v1/projects', '{"name":"' . ('x' x 70000) . '"}', status => 413);
check('no such object', 'GET', '/v1/invoices/inv_01ARZ3NDEKTSV4RRFFQ69G5FAV', '/v1/invoices/{id}', undef, status => 404);
check('no such object to move', 'POST', '/v1/invoices/inv_01ARZ3NDEKTSV4RRFFQ69G5FAV/void',
      '/v1/invoices/{id}/void', undef, status => 404);
check('a method not allowed', 'DELETE', '/v1/freelancers', '/v1/freelancers', undef, status => 405);
check('a state conflict', 'POST', "/v1/timesheets/$ts/reject", '/v1/timesheets/{id}/reject', undef, status => 409);
check('a conflict on payment', 'POST', '/v1/payments', '/v1/payments',
      json()->encode({ invoice_id => $inv2, amount => 1, currency => 'EUR' }), status => 409);

stack('pg-stop');
check('PostgreSQL down', 'GET', "/v1/payouts/$po", '/v1/payouts/{id}', undef, status => 503);
stack('pg-start');
stack('redis-stop');
check('Redis down', 'GET', '/v1/companies/me', '/v1/companies/me', undef, status => 503);
stack('redis-start');
sleep 1;

ok($checked > 60, "$checked responses checked");
is_deeply([ sort { $a <=> $b } keys %statuses ],
          [ 200, 201, 400, 401, 403, 404, 405, 409, 413, 415, 422, 429, 503 ],
          'every status the API sends was among them');

nginx_stop();
done_testing();
