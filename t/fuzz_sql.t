# The validators' property end to end (issue 19): whatever the query and
# body fuzz targets were fed, the answer is accepted, and then PostgreSQL
# takes it, or a 4xx problem (a 400 naming its parameter), never a 5xx.
# Sent through nginx and the real SQL: every input of their corpora
# (t/fuzz/corpus/{query,body}: the suites' requests, the findings) and a
# sample of what the targets accepted in long runs (t/fuzz/accepted/,
# make fuzz-accepted), with the ids in them replaced by this company's
# objects of the same kind. No body that passed the C checks is refused
# by the schema ("passed the checks but not the schema" in the log).
# In a database of its own: what the inputs write is no other suite's.

use strict;
use warnings;

use Test::More;
use Worksible::Test qw(cli company api_key http_config nginx_start
    nginx_stop http json slurp);

my $top = $ENV{WORKSIBLE_TOP};

my $db = "fuzz_sql_t_$$";
system('createdb', '-h', $ENV{PGHOST}, '-p', $ENV{PGPORT}, '-U', 'postgres',
       '-O', $ENV{PGUSER}, $db) == 0
    or BAIL_OUT("createdb $db failed (is the test stack up?)");
END {
    system('dropdb', '-h', $ENV{PGHOST}, '-p', $ENV{PGPORT}, '-U', 'postgres',
           '--if-exists', '--force', $db);
}
$ENV{PGDATABASE} = $db;
my ($code, undef, $err) = cli('migrate');
$code == 0 or BAIL_OUT("migrate $db: $err");
(my $conninfo = $ENV{TEST_NGINX_PG_CONNINFO}) =~ s/dbname=\S+/dbname=$db/;

my $prefix = nginx_start(name => 'fuzz_sql', port => 1961,
    http => http_config(postgres => qq{"$conninfo" pool=2 connect_timeout=1s }
                                    . 'query_timeout=2s'),
    server => '
        worksible_errors on;
        location /v1/ { worksible_auth on; worksible_api; }');

my $cmp = company(name => 'Fuzz Co', currency => 'EUR', plan => 'scale');
my $key = api_key($cmp, join ' ', 'company:write', 'request_logs:read',
    map { "$_:write" } qw(freelancers projects contracts timesheets
                          invoices payments payouts api_keys));

sub api {
    my ($method, $target, $body) = @_;
    my %h = (Authorization => "Bearer $key->{key}");
    $h{'Content-Type'} = 'application/json' if defined $body;
    my $res = http($method, $target, \%h, port => 1961,
                   defined $body ? (body => $body) : ());
    $res->{json} = eval { json()->decode($res->{body}) };
    return $res;
}

sub create {
    my ($path, $obj) = @_;
    my $res = api('POST', $path, json()->encode($obj));
    die "POST $path: $res->{status} $res->{body}" unless $res->{status} == 201;
    return $res->{json}{id};
}

# one object of each kind: the ids the inputs name become these (a key of
# its own, which an input may revoke)
my %id = (key => api_key($cmp, 'company:read')->{id});
$id{prj} = create('/v1/projects', { name => 'Fuzzed' });
$id{fl} = create('/v1/freelancers', { email => 'fuzz@example.com',
                                      name => 'Fuzz', country => 'DE' });
$id{ctr} = create('/v1/contracts', { project_id => $id{prj},
    freelancer_id => $id{fl}, type => 'hourly', rate => 9000,
    currency => 'EUR' });
$id{ts} = create('/v1/timesheets', { contract_id => $id{ctr},
    period_start => '2026-11-02', period_end => '2026-11-08',
    entries => [ { date => '2026-11-02', minutes => 60 } ] });
$id{inv} = create('/v1/invoices', { contract_id => $id{ctr},
    line_items => [ { description => 'Work', quantity => 2,
                      unit_amount => 50000 } ] });
is(api('POST', "/v1/invoices/$id{inv}/finalize")->{status}, 200,
   'an open invoice to pay');
$id{pay} = create('/v1/payments', { invoice_id => $id{inv}, amount => 100,
                                    currency => 'EUR' });
$id{po} = create('/v1/payouts', { freelancer_id => $id{fl}, amount => 100,
                                  currency => 'EUR' });

my $ulid = qr/[0-9A-HJKMNP-TV-Z]{26}/;
my ($sent, $accepted, $ok) = (0, 0, 0);

for my $target (qw(query body)) {
    for my $dir ("corpus/$target", "accepted/$target") {
        for my $file (sort glob("$top/t/fuzz/$dir/*")) {
            my $input = slurp($file);
            # "METHOD TARGET", for a body a newline and the body
            my ($line, $body) = split /\n/, $input, 2;
            my ($method, $path) = $line =~ m{^([A-Z]+) (/.*)$} or next;
            next if ($target eq 'body') != defined $body;
            s/\b(key|prj|fl|ctr|ts|inv|pay|po)_$ulid/$id{$1}/g
                for grep { defined } $path, $body;
            # what a request line cannot hold raw, as a client would send it
            $path =~ s/([^\x21-\x7e]|#)/sprintf('%%%02X', ord $1)/ge;
            my $res = api($method, $path, $body);
            $sent++;
            if ($dir =~ /^accepted/) {
                $accepted++;
                $ok++ if $res->{status} >= 200 && $res->{status} < 300;
            }
            my $name = "$dir/" . (split m{/}, $file)[-1];
            diag("STATUS $res->{status} $res->{body}") if $ENV{FUZZ_SQL_DEBUG};
            ok($res->{status} >= 200 && $res->{status} < 500,
               "$name: $res->{status}, no 5xx")
                or diag("$method $path\n" . ($body // '') . "\n$res->{body}");
            next unless $res->{status} == 400;
            my $code = ($res->{json} // {})->{code} // '';
            ok($code =~ /^parameter_/ ? defined $res->{json}{param}
               : $code =~ /^(invalid_json|invalid_request)$/,
               "$name: a 400 $code names the parameter")
                or diag("$method $path\n$res->{body}");
        }
    }
}

cmp_ok($accepted, '>=', 100, "$accepted accepted fuzz inputs sent");
cmp_ok($ok, '>=', $accepted / 4,
       "$ok of the $accepted accepted ones written or read ($sent in all)");

nginx_stop();
unlike(slurp("$prefix/logs/error.log") // '',
       qr/passed the checks but not the schema/,
       'no body the C checks passed was refused by the schema');

done_testing();
