# nginx -s reload (SIGHUP) while requests flow: every request answered, the
# old workers close their PostgreSQL connections without an [alert].

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(sleep time);
use Worksible::Test qw(company api_key nginx_start nginx_stop nginx_reload
    http);

my $company = company(plan => 'growth');
my $key = api_key($company, 'company:read')->{key};

nginx_start(name => 'reload', port => 1988, workers => 2,
    server => 'location /v1/ { worksible_auth on; worksible_api; }');

pipe(my $rd, my $wr) or die;
my $pid = fork // die;
if ($pid == 0) {
    close $rd;
    my %count;
    my $end = time + 4;
    while (time < $end) {
        my $res = http('GET', '/v1/companies/me',
            { Authorization => "Bearer $key" }, port => 1988);
        $count{ $res->{status} }++;
    }
    print $wr join(',', map { "$_=$count{$_}" } sort keys %count), "\n";
    exit 0;
}
close $wr;

for (1 .. 3) {
    sleep 1;
    nginx_reload();
}

my $counts = <$rd>;
waitpid($pid, 0);
chomp $counts;
like($counts, qr/^200=\d+$/, "every request during 3 reloads was 200 ($counts)");
my ($n) = $counts =~ /=(\d+)/;
cmp_ok($n, '>', 20, 'and requests kept flowing');

nginx_stop();
done_testing();
