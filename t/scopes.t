# The scope matrix of our endpoints: each names its scope; write implies
# read; a key without the scope is refused before anything runs.

use strict;
use warnings;

use Test::Nginx::Socket 'no_plan';
use Worksible::Test qw(company api_key use_default_http_config);

my $company = company(plan => 'growth', name => 'Scopes Co');
our %key = map { $_ => api_key($company, $_)->{key} }
    qw(company:read company:write freelancers:read freelancers:write
       projects:read projects:write contracts:read contracts:write
       timesheets:read timesheets:write invoices:read invoices:write
       payments:read payments:write payouts:read payouts:write
       api_keys:read api_keys:write reports:read);

# [method, path, scope needed]
our @endpoints = (
    ['GET', '/v1/companies/me', 'company:read'],
    ['GET', '/v1/freelancers', 'freelancers:read'],
    ['GET', '/v1/freelancers/fl_01ARZ3NDEKTSV4RRFFQ69G5FAV', 'freelancers:read'],
    ['GET', '/v1/api_keys', 'api_keys:read'],
    ['GET', '/v1/api_keys/key_01ARZ3NDEKTSV4RRFFQ69G5FAV', 'api_keys:read'],
    ['POST', '/v1/api_keys', 'api_keys:write'],
    ['POST', '/v1/api_keys/key_01ARZ3NDEKTSV4RRFFQ69G5FAV/revoke', 'api_keys:write'],
    ['PATCH', '/v1/companies/me', 'company:write'],
    ['POST', '/v1/freelancers', 'freelancers:write'],
    ['PATCH', '/v1/freelancers/fl_01ARZ3NDEKTSV4RRFFQ69G5FAV', 'freelancers:write'],
    ['GET', '/v1/projects', 'projects:read'],
    ['POST', '/v1/projects', 'projects:write'],
    ['GET', '/v1/projects/prj_01ARZ3NDEKTSV4RRFFQ69G5FAV', 'projects:read'],
    ['PATCH', '/v1/projects/prj_01ARZ3NDEKTSV4RRFFQ69G5FAV', 'projects:write'],
    ['GET', '/v1/contracts', 'contracts:read'],
    ['POST', '/v1/contracts', 'contracts:write'],
    ['GET', '/v1/contracts/ctr_01ARZ3NDEKTSV4RRFFQ69G5FAV', 'contracts:read'],
    ['PATCH', '/v1/contracts/ctr_01ARZ3NDEKTSV4RRFFQ69G5FAV', 'contracts:write'],
    ['GET', '/v1/timesheets', 'timesheets:read'],
    ['POST', '/v1/timesheets', 'timesheets:write'],
    ['GET', '/v1/timesheets/ts_01ARZ3NDEKTSV4RRFFQ69G5FAV', 'timesheets:read'],
    ['PATCH', '/v1/timesheets/ts_01ARZ3NDEKTSV4RRFFQ69G5FAV', 'timesheets:write'],
    ['POST', '/v1/timesheets/ts_01ARZ3NDEKTSV4RRFFQ69G5FAV/submit', 'timesheets:write'],
    ['POST', '/v1/timesheets/ts_01ARZ3NDEKTSV4RRFFQ69G5FAV/approve', 'timesheets:write'],
    ['POST', '/v1/timesheets/ts_01ARZ3NDEKTSV4RRFFQ69G5FAV/reject', 'timesheets:write'],
    ['GET', '/v1/invoices', 'invoices:read'],
    ['POST', '/v1/invoices', 'invoices:write'],
    ['GET', '/v1/invoices/inv_01ARZ3NDEKTSV4RRFFQ69G5FAV', 'invoices:read'],
    ['PATCH', '/v1/invoices/inv_01ARZ3NDEKTSV4RRFFQ69G5FAV', 'invoices:write'],
    ['POST', '/v1/invoices/inv_01ARZ3NDEKTSV4RRFFQ69G5FAV/finalize', 'invoices:write'],
    ['POST', '/v1/invoices/inv_01ARZ3NDEKTSV4RRFFQ69G5FAV/void', 'invoices:write'],
    ['GET', '/v1/payments', 'payments:read'],
    ['POST', '/v1/payments', 'payments:write'],
    ['GET', '/v1/payments/pay_01ARZ3NDEKTSV4RRFFQ69G5FAV', 'payments:read'],
    ['GET', '/v1/payouts', 'payouts:read'],
    ['POST', '/v1/payouts', 'payouts:write'],
    ['GET', '/v1/payouts/po_01ARZ3NDEKTSV4RRFFQ69G5FAV', 'payouts:read'],
);

# every endpoint with every key: allowed (not 403) exactly when the key's
# scope is the one needed, or its write
sub held {
    my ($has, $needs) = @_;
    return 1 if $has eq $needs;
    (my $write = $needs) =~ s/:read$/:write/;
    return $has eq $write;
}

our (@requests, @headers, @codes);
for my $e (@endpoints) {
    for my $k (sort keys %key) {
        push @requests, "$e->[0] $e->[1]" . ($e->[0] =~ /POST|PATCH/ ? "\n{}" : '');
        push @headers, "Authorization: Bearer $key{$k}\nContent-Type: application/json";
        push @codes, held($k, $e->[2]) ? qr/^(?:200|400|404)$/ : qr/^403$/;
    }
}

use_default_http_config();
no_shuffle();
run_tests();

__DATA__

=== TEST 1: every endpoint against every scope
--- config
    location /v1/ { worksible_auth on; worksible_api; }
--- request eval
\@::requests
--- more_headers eval
\@::headers
--- error_code_like eval
\@::codes
