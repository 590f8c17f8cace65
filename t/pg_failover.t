# libpq's multi-host conninfo when the first host hangs (powered off,
# SIGSTOPped, a dead VM whose TCP still answers): libpq (non-blocking)
# passes over a host that refuses, never over one that does not answer, so
# the module starts the connect again from the next address once
# connect_timeout passes (issue 14, found by a review).

use strict;
use warnings;

use IO::Socket::INET;
use POSIX ();
use Test::More;
use Time::HiRes qw(sleep time);
use Worksible::Test qw(company api_key http_config nginx_start nginx_stop http);

my $company = company(plan => 'growth');
my $key = api_key($company, 'company:read')->{key};
my $auth = { Authorization => "Bearer $key" };
my $conninfo = $ENV{TEST_NGINX_PG_CONNINFO};
my $port = 1964;
my $hung = 1965;

# a "server" that accepts connections and never says a word
my $srv = IO::Socket::INET->new(LocalAddr => "127.0.0.1:$hung", Listen => 64,
    ReuseAddr => 1) or die "listen $hung: $!";
my $pid = fork // die;
if ($pid == 0) {
    my @held;
    while (my $c = $srv->accept) { push @held, $c }
    POSIX::_exit(0);
}
close $srv;
END { kill 'TERM', $pid if $pid; }

my ($pg_port) = $conninfo =~ /port=(\d+)/;
(my $multi = $conninfo) =~ s/host=\S+ port=\d+/host=127.0.0.1,127.0.0.1 port=$hung,$pg_port/;
$multi .= ' target_session_attrs=read-write';

my $out = `psql -X -At "$multi connect_timeout=2" -c 'SELECT 42' 2>&1`;
is($out, "42\n", 'psql with the same conninfo (connect_timeout=2) passes the hung host over');

nginx_start(name => 'pg_failover', port => $port,
    http => http_config(postgres => qq{"$multi" pool=2 connect_timeout=1s query_timeout=3s}),
    server => 'location /v1/ { worksible_auth on; worksible_api; }');

my $res;
my $deadline = time + 8;
do { $res = http('GET', '/v1/companies/me', $auth, port => $port, timeout => 5) }
    until $res->{status} == 200 || time > $deadline;
is($res->{status}, 200, 'the first host hangs, the second is the primary: 200 within 8 s');

nginx_stop();
done_testing();
