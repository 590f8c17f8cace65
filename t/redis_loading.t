# A Redis that answers LOADING (still reading its data): the rate limiter
# treats it as down (fail=open passes, fail=closed 503) and the breaker
# opens. The Redis here is a fake speaking RESP on a local port.

use strict;
use warnings;

use IO::Socket::INET;
use Test::More;
use Time::HiRes qw(sleep);
use Worksible::Test qw(company api_key http_config nginx_start nginx_stop
    http);

my $fake = IO::Socket::INET->new(LocalAddr => '127.0.0.1:1981', Listen => 16,
    ReuseAddr => 1) or die "fake redis: $!";

my $pid = fork // die;
if ($pid == 0) {
    # one connection at a time: PING -> PONG, anything else -> LOADING
    while (my $c = $fake->accept) {
        my $buf = '';
        while (sysread($c, my $chunk, 4096)) {
            $buf .= $chunk;
            while ($buf =~ s/^\*(\d+)\r\n//) {
                my @args;
                for (1 .. $1) {
                    $buf =~ s/^\$(\d+)\r\n// or last;
                    push @args, substr($buf, 0, $1, '');
                    $buf =~ s/^\r\n//;
                }
                print $c(uc($args[0] // '') eq 'PING'
                    ? "+PONG\r\n"
                    : "-LOADING Redis is loading the dataset in memory\r\n");
            }
        }
    }
    exit 0;
}

my $key = api_key(company(plan => 'growth'), 'company:read')->{key};

nginx_start(name => 'redis_loading', port => 1982,
    http => http_config(redis => '127.0.0.1:1981 timeout=300ms') . '
    server { listen 127.0.0.1:1983; location / { return 200 "ok\n"; } }',
    server => '
        location /closed/ { worksible_auth on; worksible_rate_limit on;
                            proxy_pass http://127.0.0.1:1983; }
        location /open/ { worksible_auth on; worksible_rate_limit on fail=open;
                          proxy_pass http://127.0.0.1:1983; }');
sleep 0.3;

my $res = http('GET', '/open/x', { Authorization => "Bearer $key" });
is($res->{status}, 200, 'LOADING with fail=open: the request passes');
ok(!exists $res->{headers}{ratelimit}, 'without rate-limit headers');

$res = http('GET', '/closed/x', { Authorization => "Bearer $key" });
is($res->{status}, 503, 'with fail=closed (the breaker open after LOADING): 503');
like($res->{headers}{'retry-after'} // '', qr/^\d+$/, 'with Retry-After');

my $log = Worksible::Test::slurp("$ENV{WORKSIBLE_TOP}/t/servroot_redis_loading/logs/error.log");
like($log, qr/Redis is loading its data/, 'the error log says why');

nginx_stop();
kill 'TERM', $pid;
waitpid($pid, 0);
done_testing();
