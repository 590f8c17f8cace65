# Money under concurrency: payments fired at one invoice at the same
# moment can never overpay it (the invoice's row lock orders them), and
# invoices finalized at the same moment get consecutive numbers without
# gaps or duplicates (the company's row lock).

use strict;
use warnings;

use IO::Socket::INET;
use Test::More;
use Worksible::Test qw(company api_key http_config nginx_start nginx_stop
    http psql_value json);

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

# n POSTs at once, each on its own connection: their statuses
sub at_once {
    my ($path, @bodies) = @_;
    my @socks = map { IO::Socket::INET->new(PeerAddr => '127.0.0.1:1976') or die } @bodies;
    for my $i (0 .. $#bodies) {
        my $b = json()->encode($bodies[$i]);
        print { $socks[$i] } "POST $path HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            . "Authorization: Bearer $key\r\nContent-Type: application/json\r\n"
            . "Content-Length: " . length($b) . "\r\n\r\n$b";
    }
    my (%status, @bodies_out);
    for my $s (@socks) {
        local $/;
        my $raw = <$s> // '';
        my ($code) = $raw =~ m{^HTTP/1\.1 (\d+)};
        $status{ $code // 0 }++;
        push @bodies_out, (split /\r\n\r\n/, $raw, 2)[1];
    }
    return (\%status, \@bodies_out);
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
my ($st) = at_once('/v1/payments',
    map { { invoice_id => $inv, amount => 7000, currency => 'EUR' } } 1 .. 25);
is($st->{201}, 14, '25 payments of 7000 at once: exactly 14 pass');
is($st->{400}, 11, 'the other 11 would overpay: 400');
is(psql_value("SELECT sum(amount) FROM payments WHERE invoice_id = '$inv'"), 98000,
   'the payments sum to 98000');
is(psql_value("SELECT amount_paid || ' ' || amount_due || ' ' || status FROM invoices WHERE id = '$inv'"),
   '98000 2000 open', 'the invoice says 98000 paid, 2000 due');

# then 10 payments of the 2000 left at once: one pays it, the rest find it paid
($st) = at_once('/v1/payments',
    map { { invoice_id => $inv, amount => 2000, currency => 'EUR' } } 1 .. 10);
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
my @socks = map { IO::Socket::INET->new(PeerAddr => '127.0.0.1:1976') or die } @drafts;
print { $socks[$_] } "POST /v1/invoices/$drafts[$_]/finalize HTTP/1.1\r\nHost: x\r\n"
    . "Connection: close\r\nAuthorization: Bearer $key\r\nContent-Length: 0\r\n\r\n"
    for 0 .. $#drafts;
my @numbers;
for my $s (@socks) {
    local $/;
    my $raw = <$s> // '';
    if ($raw =~ /"number" ?: ?(\d+)/) { push @numbers, $1 } else { diag($raw) }
}
is_deeply([ sort { $a <=> $b } @numbers ], [ 2 .. 13 ],
          '12 finalizations at once: numbers 2 to 13, no gap, no duplicate');

# PATCHes and finalizations of one draft at the same moment: each waits
# for the other (never a deadlock, never a 500)
my %seen;
for my $round (1 .. 5) {
    my $draft = post('/v1/invoices', { contract_id => $ctr, line_items => [
        { description => 'W', quantity => 1, unit_amount => 10 } ] })->{json}{id};
    my @reqs = map {
        my $patch = json()->encode({ line_items => [ map {
            { description => "L$_", quantity => 1, unit_amount => 10 } } 1 .. 20 ] });
        $_ % 2 ? "PATCH /v1/invoices/$draft HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                 . "Authorization: Bearer $key\r\nContent-Type: application/json\r\n"
                 . "Content-Length: " . length($patch) . "\r\n\r\n$patch"
               : "POST /v1/invoices/$draft/finalize HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                 . "Authorization: Bearer $key\r\nContent-Length: 0\r\n\r\n"
    } 1 .. 6;
    my @s = map { IO::Socket::INET->new(PeerAddr => '127.0.0.1:1976') or die } @reqs;
    print { $s[$_] } $reqs[$_] for 0 .. $#reqs;
    for my $sock (@s) {
        local $/;
        my ($code) = (<$sock> // '') =~ m{^HTTP/1\.1 (\d+)};
        $seen{ $code // 0 }++;
    }
}
is(($seen{200} // 0) + ($seen{409} // 0), 30,
   'PATCHes and finalizations of one draft at once: 200 or 409, never a 500')
    or diag(explain(\%seen));

nginx_stop();
done_testing();
