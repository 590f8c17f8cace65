# Timesheets, invoices, payments and payouts (API.md, Resources): happy
# paths, validation naming the (nested) field, every state conflict,
# filters, isolation between companies, money rules, and idempotent
# creation; checked against the responses and the rows in PostgreSQL.

use strict;
use warnings;

use Test::More;
use Worksible::Test qw(company api_key http_config nginx_start nginx_stop
    http psql_value json problem);

my $server = '
        location /v1/ { worksible_auth on; worksible_idempotency on;
                        worksible_api; }';
nginx_start(name => 'billing', port => 1975, http => http_config(),
            server => $server);

my $all = 'freelancers:write projects:write contracts:write timesheets:write '
        . 'invoices:write payments:write payouts:write';
my $cmp = company(name => 'Billing Co', currency => 'EUR');
my $key = api_key($cmp, $all)->{key};
my $other_cmp = company(name => 'Other Billing Co');
my $other = api_key($other_cmp, $all)->{key};

# $method $path [JSON body]: { status, headers, body, json }
sub api {
    my ($method, $path, $body, %o) = @_;
    my %h = (Authorization => 'Bearer ' . ($o{key} // $key));
    $h{'Content-Type'} = 'application/json' if defined $body;
    $h{'Idempotency-Key'} = $o{idem} if $o{idem};
    my $res = http($method, $path, \%h, port => 1975,
                   defined $body ? (body => $body) : ());
    $res->{json} = eval { json()->decode($res->{body}) } // {};
    return $res;
}

sub create {
    my ($path, $obj, %o) = @_;
    my $res = api('POST', $path, json()->encode($obj), %o);
    die "POST $path: $res->{status} $res->{body}" unless $res->{status} == 201;
    return $res->{json};
}

# a 400 naming $param that wrote nothing to $table
sub refused {
    my ($name, $method, $path, $body, $code, $param, $table) = @_;
    my $before = psql_value("SELECT count(*) FROM $table");
    my $res = api($method, $path, $body);
    is($res->{status}, 400, "$name: 400");
    like($res->{body}, problem(400, $code, $param), "$name: $code naming $param");
    is(psql_value("SELECT count(*) FROM $table"), $before, "$name: nothing written");
}

sub conflict {
    my ($name, $method, $path, $body) = @_;
    my $res = api($method, $path, $body);
    is($res->{status}, 409, "$name: 409");
    like($res->{body}, problem(409, 'state_conflict'), "$name: state_conflict");
    return $res;
}

# the company's people and contracts
my $prj = create('/v1/projects', { name => 'Billing project' })->{id};
my $fl = create('/v1/freelancers', { email => 'bill@example.com',
    name => 'Bill', country => 'DE' })->{id};
my $ctr = create('/v1/contracts', { project_id => $prj, freelancer_id => $fl,
    type => 'hourly', rate => 9000, currency => 'EUR' })->{id};
my $o_prj = create('/v1/projects', { name => 'Theirs' }, key => $other)->{id};
my $o_fl = create('/v1/freelancers', { email => 'o@example.com', name => 'O',
    country => 'FR' }, key => $other)->{id};
my $o_ctr = create('/v1/contracts', { project_id => $o_prj,
    freelancer_id => $o_fl, type => 'fixed', rate => 100, currency => 'USD' },
    key => $other)->{id};

# --- timesheets ---------------------------------------------------------------

my $week = { contract_id => $ctr, period_start => '2026-11-02',
             period_end => '2026-11-08',
             entries => [ { date => '2026-11-02', minutes => 480, description => 'API' },
                          { date => '2026-11-03', minutes => 90 } ] };
my $r = api('POST', '/v1/timesheets', json()->encode($week));
is($r->{status}, 201, 'a timesheet: 201');
my $ts = $r->{json};
is($r->{headers}{location}, "/v1/timesheets/$ts->{id}", 'with its Location');
like($ts->{id}, qr/^ts_[0-9A-HJKMNP-TV-Z]{26}$/, 'a ts_ id');
is($ts->{status}, 'draft', 'a draft');
is($ts->{total_minutes}, 570, 'total_minutes 570');
is_deeply($ts->{entries}, [ { date => '2026-11-02', minutes => 480, description => 'API' },
                            { date => '2026-11-03', minutes => 90, description => undef } ],
          'its entries, in order');
is(psql_value("SELECT count(*) FROM timesheet_entries WHERE timesheet_id = '$ts->{id}'"), 2,
   'two entry rows');

my $tsbody = sub { json()->encode({ %$week, entries => [ @_ ] }) };
for my $case (
    [ 'minutes 0', $tsbody->({ date => '2026-11-02', minutes => 0 }), 'parameter_invalid', 'entries[0].minutes' ],
    [ 'minutes 1441', $tsbody->({ date => '2026-11-02', minutes => 1441 }), 'parameter_invalid', 'entries[0].minutes' ],
    [ 'minutes as a string', $tsbody->({ date => '2026-11-02', minutes => '60' }), 'parameter_invalid', 'entries[0].minutes' ],
    [ 'a date outside the period', $tsbody->({ date => '2026-11-02', minutes => 1 }, { date => '2026-11-09', minutes => 1 }), 'parameter_invalid', 'entries[1].date' ],
    [ 'a date that is no day', $tsbody->({ date => '2026-02-30', minutes => 1 }), 'parameter_invalid', 'entries[0].date' ],
    [ 'an entry without a date', $tsbody->({ minutes => 1 }), 'parameter_missing', 'entries[0].date' ],
    [ 'an unknown member in an entry', $tsbody->({ date => '2026-11-02', minutes => 1, rate => 1 }), 'parameter_unknown', 'entries[0].rate' ],
    [ 'an entry that is no object', $tsbody->(3), 'parameter_invalid', 'entries[0]' ],
    [ 'entries that are no array', json()->encode({ %$week, entries => {} }), 'parameter_invalid', 'entries' ],
    [ 'another company\'s contract', json()->encode({ %$week, contract_id => $o_ctr }), 'parameter_invalid', 'contract_id' ],
    [ 'more than 1440 minutes on one day', $tsbody->({ date => '2026-11-03', minutes => 1000 }, { date => '2026-11-03', minutes => 441 }), 'parameter_invalid', 'entries' ],
    [ 'a period that ends before it starts', json()->encode({ %$week, period_end => '2026-11-01', entries => [] }), 'parameter_invalid', 'period_end' ],
    [ 'no period', json()->encode({ contract_id => $ctr }), 'parameter_missing', 'period_start' ],
) {
    refused("timesheet: $case->[0]", 'POST', '/v1/timesheets', $case->[1], $case->[2], $case->[3], 'timesheets');
}

$r = api('PATCH', "/v1/timesheets/$ts->{id}",
         json()->encode({ entries => [ { date => '2026-11-04', minutes => 60 } ] }));
is($r->{status}, 200, 'PATCH a draft: 200');
is($r->{json}{total_minutes}, 60, 'its entries replaced whole');
is(psql_value("SELECT count(*) FROM timesheet_entries WHERE timesheet_id = '$ts->{id}'"), 1,
   'one entry row left');
refused('PATCH a period its entries leave', 'PATCH', "/v1/timesheets/$ts->{id}",
        '{"period_end":"2026-11-03"}', 'parameter_invalid', 'period_end', 'timesheets');
refused('PATCH a period start its entries leave', 'PATCH', "/v1/timesheets/$ts->{id}",
        '{"period_start":"2026-11-05"}', 'parameter_invalid', 'period_start', 'timesheets');

my $empty = create('/v1/timesheets', { %$week, entries => [] });
refused('submit a timesheet without entries', 'POST', "/v1/timesheets/$empty->{id}/submit",
        undef, 'parameter_invalid', 'entries', 'timesheets');
conflict('approve a draft', 'POST', "/v1/timesheets/$ts->{id}/approve");
conflict('reject a draft', 'POST', "/v1/timesheets/$ts->{id}/reject");

$r = api('POST', "/v1/timesheets/$ts->{id}/submit");
is($r->{status}, 200, 'submit: 200');
is($r->{json}{status}, 'submitted', 'submitted');
like($r->{json}{submitted_at}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'with submitted_at');
conflict('PATCH a submitted timesheet', 'PATCH', "/v1/timesheets/$ts->{id}", '{"entries":[]}');
is(psql_value("SELECT count(*) FROM timesheet_entries WHERE timesheet_id = '$ts->{id}'"), 1,
   'which changed nothing');
conflict('submit it again', 'POST', "/v1/timesheets/$ts->{id}/submit");
$r = api('POST', "/v1/timesheets/$ts->{id}/approve");
is($r->{json}{status}, 'approved', 'approve: approved');
conflict('reject an approved timesheet', 'POST', "/v1/timesheets/$ts->{id}/reject");
is(psql_value("SELECT status FROM timesheets WHERE id = '$ts->{id}'"), 'approved',
   'still approved');

my $rej = create('/v1/timesheets', $week);
api('POST', "/v1/timesheets/$rej->{id}/submit");
is(api('POST', "/v1/timesheets/$rej->{id}/reject")->{json}{status}, 'rejected', 'reject: rejected');
conflict('approve a rejected timesheet', 'POST', "/v1/timesheets/$rej->{id}/approve");
conflict('PATCH a rejected timesheet', 'PATCH', "/v1/timesheets/$rej->{id}", '{"entries":[]}');

is(api('GET', "/v1/timesheets/$ts->{id}")->{json}{status}, 'approved', 'GET a timesheet');
my $list = api('GET', '/v1/timesheets?status=approved')->{json};
is_deeply([ map { $_->{id} } @{ $list->{data} } ], [ $ts->{id} ], 'list ?status=approved');
is(scalar @{ api('GET', "/v1/timesheets?contract_id=$ctr")->{json}{data} }, 3,
   'list ?contract_id');
like(api('GET', '/v1/timesheets?status=late')->{body}, problem(400, 'parameter_invalid', 'status'),
     'an unknown status filter');
is(api('GET', "/v1/timesheets/$ts->{id}", undef, key => $other)->{status}, 404,
   "another company's timesheet: 404");
is(scalar @{ api('GET', '/v1/timesheets', undef, key => $other)->{json}{data} }, 0,
   'and not in its list');
is(api('POST', "/v1/timesheets/$ts->{id}/reject", undef, key => $other)->{status}, 404,
   'nor can it be moved');

# --- invoices -------------------------------------------------------------------

my $lines = [ { description => 'Design', quantity => 3, unit_amount => 12000 },
              { description => 'Discount', quantity => 1, unit_amount => -1000 } ];
$r = api('POST', '/v1/invoices', json()->encode({ contract_id => $ctr,
         due_date => '2026-12-31', line_items => $lines }));
is($r->{status}, 201, 'an invoice: 201');
my $inv = $r->{json};
is($inv->{currency}, 'EUR', "in its contract's currency");
is_deeply([ map { $_->{amount} } @{ $inv->{line_items} } ], [ 36000, -1000 ],
          'line amounts by the server');
is_deeply([ @$inv{qw(subtotal total amount_paid amount_due)} ], [ 35000, 35000, 0, 35000 ],
          'subtotal, total, amount_paid, amount_due');
is($inv->{number}, undef, 'no number while a draft');
is($inv->{status}, 'draft', 'a draft');

my $ibody = sub { json()->encode({ contract_id => $ctr, line_items => [ @_ ] }) };
my $line = sub { { description => 'x', quantity => 1, unit_amount => 1, @_ } };
for my $case (
    [ 'quantity 0', $ibody->($line->(quantity => 0)), 'line_items[0].quantity' ],
    [ 'a float quantity', '{"contract_id":"' . $ctr . '","line_items":[{"description":"x","quantity":1.5,"unit_amount":1}]}', 'line_items[0].quantity' ],
    [ 'a float amount', '{"contract_id":"' . $ctr . '","line_items":[{"description":"x","quantity":1,"unit_amount":1.0}]}', 'line_items[0].unit_amount' ],
    [ 'an exponent', '{"contract_id":"' . $ctr . '","line_items":[{"description":"x","quantity":1,"unit_amount":1e3}]}', 'line_items[0].unit_amount' ],
    [ 'an amount as a string', $ibody->($line->(unit_amount => '100')), 'line_items[0].unit_amount' ],
    [ 'an amount past 2^53-1', '{"contract_id":"' . $ctr . '","line_items":[{"description":"x","quantity":1,"unit_amount":9007199254740992}]}', 'line_items[0].unit_amount' ],
    [ 'an amount past 64 bits', '{"contract_id":"' . $ctr . '","line_items":[{"description":"x","quantity":2,"unit_amount":99999999999999999999}]}', 'line_items[0].unit_amount' ],
    [ 'a negative amount past 64 bits', '{"contract_id":"' . $ctr . '","line_items":[{"description":"x","quantity":2,"unit_amount":1},{"description":"y","quantity":1,"unit_amount":-99999999999999999999}]}', 'line_items[1].unit_amount' ],
    [ 'a line amount past 2^53-1', $ibody->($line->(quantity => 1000000, unit_amount => 9007199254741)), 'line_items[0].unit_amount' ],
    [ 'a subtotal past 2^53-1', $ibody->($line->(unit_amount => 9007199254740991), $line->(unit_amount => 1)), 'line_items' ],
    [ 'a subtotal past 2^53-1 in any order', $ibody->($line->(unit_amount => -1), $line->(unit_amount => 9007199254740991), $line->(unit_amount => 2)), 'line_items' ],
    [ 'a total below zero', $ibody->($line->(unit_amount => -5)), 'line_items' ],
    [ 'a line without a description', $ibody->({ quantity => 1, unit_amount => 1 }), 'line_items[0].description' ],
    [ 'another currency than the contract\'s', json()->encode({ contract_id => $ctr, currency => 'USD' }), 'currency' ],
    [ 'a currency that is no code', json()->encode({ contract_id => $ctr, currency => 'eur' }), 'currency' ],
    [ 'another company\'s contract', json()->encode({ contract_id => $o_ctr }), 'contract_id' ],
    [ 'a due date that is no day', json()->encode({ contract_id => $ctr, due_date => '2026-13-01' }), 'due_date' ],
) {
    my $code = $case->[0] =~ /without/ ? 'parameter_missing' : 'parameter_invalid';
    refused("invoice: $case->[0]", 'POST', '/v1/invoices', $case->[1], $code, $case->[2], 'invoices');
}

$r = api('PATCH', "/v1/invoices/$inv->{id}", json()->encode({ line_items => [
         { description => 'Design', quantity => 4, unit_amount => 12500 } ] }));
is($r->{status}, 200, 'PATCH a draft invoice');
is_deeply([ @{ $r->{json} }{qw(subtotal total amount_due)} ], [ 50000, 50000, 50000 ],
          'the totals follow its new lines');

# the currency is the contract's when made, then the invoice's own
my $eur = create('/v1/contracts', { project_id => $prj, freelancer_id => $fl,
    type => 'fixed', rate => 100, currency => 'EUR' })->{id};
my $kept = create('/v1/invoices', { contract_id => $eur, line_items => $lines });
api('PATCH', "/v1/contracts/$eur", '{"currency":"JPY","rate":100}');
is(api('PATCH', "/v1/invoices/$kept->{id}", '{"due_date":"2027-01-01"}')->{json}{currency}, 'EUR',
   'a contract that changed its currency leaves its draft invoice in its own');

my $blank = create('/v1/invoices', { contract_id => $ctr });
refused('finalize an invoice without lines', 'POST', "/v1/invoices/$blank->{id}/finalize",
        undef, 'parameter_invalid', 'line_items', 'invoices');
conflict('void a draft', 'POST', "/v1/invoices/$inv->{id}/void");

$r = api('POST', "/v1/invoices/$inv->{id}/finalize");
is($r->{status}, 200, 'finalize: 200');
is($r->{json}{status}, 'open', 'open');
is($r->{json}{number}, 1, 'the company\'s invoice number 1');
conflict('finalize it again', 'POST', "/v1/invoices/$inv->{id}/finalize");
conflict('PATCH an open invoice', 'PATCH', "/v1/invoices/$inv->{id}", '{"due_date":null}');

my $inv2 = create('/v1/invoices', { contract_id => $ctr, line_items => $lines });
is(api('POST', "/v1/invoices/$inv2->{id}/finalize")->{json}{number}, 2,
   'the next one gets 2, after a refused finalization: no gap');
my $theirs = create('/v1/invoices', { contract_id => $o_ctr, line_items => $lines }, key => $other);
is(api('POST', "/v1/invoices/$theirs->{id}/finalize", undef, key => $other)->{json}{number}, 1,
   'numbers are per company');

# --- payments ---------------------------------------------------------------------

my $pay = sub { json()->encode({ invoice_id => $inv->{id}, amount => 10000, currency => 'EUR', @_ }) };
conflict('pay a draft', 'POST', '/v1/payments',
         json()->encode({ invoice_id => $blank->{id}, amount => 1, currency => 'EUR' }));
refused('pay more than is due', 'POST', '/v1/payments', $pay->(amount => 50001),
        'parameter_invalid', 'amount', 'payments');
refused('pay 0', 'POST', '/v1/payments', $pay->(amount => 0), 'parameter_invalid', 'amount', 'payments');
refused('pay in another currency', 'POST', '/v1/payments', $pay->(currency => 'USD'),
        'parameter_invalid', 'currency', 'payments');
refused('pay a float', 'POST', '/v1/payments',
        '{"invoice_id":"' . $inv->{id} . '","amount":100.5,"currency":"EUR"}',
        'parameter_invalid', 'amount', 'payments');
refused("pay another company's invoice", 'POST', '/v1/payments', $pay->(invoice_id => $theirs->{id}),
        'parameter_invalid', 'invoice_id', 'payments');

$r = api('POST', '/v1/payments', $pay->());
is($r->{status}, 201, 'a payment: 201');
conflict('void an invoice with a payment', 'POST', "/v1/invoices/$inv->{id}/void");
like($r->{json}{id}, qr/^pay_/, 'a pay_ id');
my $after = api('GET', "/v1/invoices/$inv->{id}")->{json};
is_deeply([ @$after{qw(amount_paid amount_due status)} ], [ 10000, 40000, 'open' ],
          'the invoice moved in the same transaction');
$r = api('POST', '/v1/payments', $pay->(amount => 40000));
$after = api('GET', "/v1/invoices/$inv->{id}")->{json};
is_deeply([ @$after{qw(amount_paid amount_due status)} ], [ 50000, 0, 'paid' ],
          'paid in full: status paid');
ok($after->{paid_at}, 'with paid_at');
conflict('pay a paid invoice', 'POST', '/v1/payments', $pay->(amount => 1));
conflict('void a paid invoice', 'POST', "/v1/invoices/$inv->{id}/void");

$r = api('POST', "/v1/invoices/$inv2->{id}/void");
is($r->{json}{status}, 'void', 'void an open invoice');
conflict('pay a void invoice', 'POST', '/v1/payments',
         json()->encode({ invoice_id => $inv2->{id}, amount => 1, currency => 'EUR' }));

is(scalar @{ api('GET', "/v1/payments?invoice_id=$inv->{id}")->{json}{data} }, 2,
   'list payments ?invoice_id');
is(api('PATCH', "/v1/payments/$r->{json}{id}", '{}')->{status}, 405, 'no update of a payment: 405');
is(psql_value("SELECT sum(amount) FROM payments WHERE invoice_id = '$inv->{id}'"), 50000,
   'the payments sum to the total');

# --- payouts ------------------------------------------------------------------------

$r = api('POST', '/v1/payouts', json()->encode({ freelancer_id => $fl, amount => 5000, currency => 'EUR' }));
is($r->{status}, 201, 'a payout: 201');
is($r->{json}{status}, 'pending', 'pending');
for my $case (
    [ 'amount 0', { freelancer_id => $fl, amount => 0, currency => 'EUR' }, 'amount' ],
    [ 'a negative amount', { freelancer_id => $fl, amount => -1, currency => 'EUR' }, 'amount' ],
    [ 'an unknown currency', { freelancer_id => $fl, amount => 1, currency => 'ZZZ' }, 'currency' ],
    [ "another company's freelancer", { freelancer_id => $o_fl, amount => 1, currency => 'EUR' }, 'freelancer_id' ],
) {
    refused("payout: $case->[0]", 'POST', '/v1/payouts', json()->encode($case->[1]),
            'parameter_invalid', $case->[2], 'payouts');
}
is(scalar @{ api('GET', "/v1/payouts?status=pending&freelancer_id=$fl")->{json}{data} }, 1,
   'list payouts ?status&freelancer_id');
is(api('PATCH', "/v1/payouts/$r->{json}{id}", '{}')->{status}, 405, 'no update of a payout: 405');

# --- idempotent creation: the same key twice, one row -----------------------------

my $fresh = create('/v1/invoices', { contract_id => $ctr, line_items => $lines });
api('POST', "/v1/invoices/$fresh->{id}/finalize");
for my $case (
    [ '/v1/timesheets', $week, 'timesheets' ],
    [ '/v1/invoices', { contract_id => $ctr, line_items => $lines }, 'invoices' ],
    [ '/v1/payments', { invoice_id => $fresh->{id}, amount => 100, currency => 'EUR' }, 'payments' ],
    [ '/v1/payouts', { freelancer_id => $fl, amount => 100, currency => 'EUR' }, 'payouts' ],
) {
    my ($path, $obj, $table) = @$case;
    my $before = psql_value("SELECT count(*) FROM $table");
    my $a = api('POST', $path, json()->encode($obj), idem => "once-$table");
    my $b = api('POST', $path, json()->encode($obj), idem => "once-$table");
    is($a->{status}, 201, "$path with a key: 201");
    is($b->{body}, $a->{body}, "$path: the same key again replays");
    is(psql_value("SELECT count(*) FROM $table"), $before + 1, "$path: one row");
}
is(api('GET', "/v1/invoices/$fresh->{id}")->{json}{amount_paid}, 100,
   'a replayed payment was counted once');
my $twice = create('/v1/invoices', { contract_id => $ctr, line_items => $lines });
my $f1 = api('POST', "/v1/invoices/$twice->{id}/finalize", undef, idem => 'fin-1');
my $f2 = api('POST', "/v1/invoices/$twice->{id}/finalize", undef, idem => 'fin-1');
is($f2->{status}, 200, 'a finalization retried with its key: the replay, not 409');
is($f2->{body}, $f1->{body}, 'the same invoice and number');

nginx_stop();
done_testing();
