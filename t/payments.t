# Money under concurrency: payments fired at one invoice at the same
# moment can never overpay it (the invoice's row lock orders them), and
# invoices finalized at the same moment get consecutive numbers without
# gaps or duplicates (the company's row lock).

use strict;
use warnings;

use Test::More;
use Worksible::Test qw(company api_key http_config nginx_start nginx_stop
    http request at_once psql_value json);

nginx_start(name => 'payments', port => 1976, workers => 2,
            http => http_config(postgres => qq{"$ENV{TEST_NGINX_PG_CONNINFO}" pool=4 connect_timeout=1s query_timeout=5s}),
            server => '
        location /v1/ { worksible_auth on; worksible_api; }');

my $cmp = company(name => 'Payments Co', currency => 'EUR');
my $key = api_key($cmp, 'freelancers:write projects:write contracts:write '
                      . 'invoices:write payments:write')->{key};

sub post {
    my ($path, $obj) = @_;
    my $res = http('POST', $path, { Authorization => "Bearer $key",
        'Content-Type' => 'application/json' }, port => 1976,
        defined $obj ? (body => json()->encode($obj)) : ());
    return { %$res, json => eval { json()->decode($res->{body}) } // {} };
}

my %auth = (Authorization => "Bearer $key");
my %json = (%auth, 'Content-Type' => 'application/json');

# requests at once, each on its own connection: how many got each status
sub statuses {
    my %status;
    $status{ $_->{status} }++ for at_once(1976, @_);
    return \%status;
}

sub payments {
    my (@bodies) = @_;
    return statuses(map { request('POST', '/v1/payments', \%json, json()->encode($_)) } @bodies);
}

my $prj = post('/v1/projects', { name => 'P' })->{json}{id};
my $fl = post('/v1/freelancers', { email => 'pay@example.com', name => 'F',
    country => 'DE' })->{json}{id};
my $ctr = post('/v1/contracts', { project_id => $prj, freelancer_id => $fl,
    type => 'fixed', rate => 100000, currency => 'EUR' })->{json}{id};

my $inv = post('/v1/invoices', { contract_id => $ctr, line_items => [
    { description => 'Work', quantity => 1, unit_amount => 100000 } ] })->{json}{id};
is(post("/v1/invoices/$inv/finalize")->{json}{status}, 'open', 'an open invoice of 100000');

# 25 payments of 7000 at once: 14 fit (98000), the 15th would overpay
my $st = payments(map { { invoice_id => $inv, amount => 7000, currency => 'EUR' } } 1 .. 25);
is($st->{201}, 14, '25 payments of 7000 at once: exactly 14 pass');
is($st->{400}, 11, 'the other 11 would overpay: 400');
is(psql_value("SELECT sum(amount) FROM payments WHERE invoice_id = '$inv'"), 98000,
   'the payments sum to 98000');
is(psql_value("SELECT amount_paid || ' ' || amount_due || ' ' || status FROM invoices WHERE id = '$inv'"),
   '98000 2000 open', 'the invoice says 98000 paid, 2000 due');

# then 10 payments of the 2000 left at once: one pays it, the rest find it paid
$st = payments(map { { invoice_id => $inv, amount => 2000, currency => 'EUR' } } 1 .. 10);
is($st->{201}, 1, 'ten payments of the last 2000 at once: one passes');
is($st->{409}, 9, 'the other nine find it paid: 409');
is(psql_value("SELECT sum(amount) FROM payments WHERE invoice_id = '$inv'"), 100000,
   'the sum never exceeds the total');
is(psql_value("SELECT status FROM invoices WHERE id = '$inv'"), 'paid', 'paid');

# 12 invoices finalized at once: numbers 2..13, each once
my @drafts = map {
    post('/v1/invoices', { contract_id => $ctr, line_items => [
        { description => 'W', quantity => 1, unit_amount => 10 } ] })->{json}{id}
} 1 .. 12;
my @numbers;
for my $res (at_once(1976, map { request('POST', "/v1/invoices/$_/finalize", \%auth, '') } @drafts)) {
    if (($res->{body} // '') =~ /"number" ?: ?(\d+)/) { push @numbers, $1 } else { diag($res->{body}) }
}
is_deeply([ sort { $a <=> $b } @numbers ], [ 2 .. 13 ],
          '12 finalizations at once: numbers 2 to 13, no gap, no duplicate');

# PATCHes and finalizations of one draft at the same moment: each waits
# for the other (never a deadlock, never a 500)
my %seen;
for my $round (1 .. 5) {
    my $draft = post('/v1/invoices', { contract_id => $ctr, line_items => [
        { description => 'W', quantity => 1, unit_amount => 10 } ] })->{json}{id};
    my $patch = json()->encode({ line_items => [ map {
        { description => "L$_", quantity => 1, unit_amount => 10 } } 1 .. 20 ] });
    my $st = statuses(map {
        $_ % 2 ? request('PATCH', "/v1/invoices/$draft", \%json, $patch)
               : request('POST', "/v1/invoices/$draft/finalize", \%auth, '')
    } 1 .. 6);
    $seen{$_} += $st->{$_} for keys %$st;
}
is(($seen{200} // 0) + ($seen{409} // 0), 30,
   'PATCHes and finalizations of one draft at once: 200 or 409, never a 500')
    or diag(explain(\%seen));

nginx_stop();
done_testing();
