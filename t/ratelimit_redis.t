# Rate limits across connections and servers, and Redis failing: 50
# requests at once, two nginx instances on one Redis, Redis stopped and
# started, and a Redis that accepts but never answers (SIGSTOP).

use strict;
use warnings;

use IO::Select;
use IO::Socket::INET;
use Test::More;
use Time::HiRes qw(sleep time);
use Worksible::Test qw(company api_key plan http_config nginx_start
    nginx_stop nginx_clone http request at_once redis_cli stack);

my $top = $ENV{WORKSIBLE_TOP};

my $server = '
        location /closed/ { worksible_auth on; worksible_rate_limit on;
                            proxy_pass http://127.0.0.1:1998; }
        location /open/ { worksible_auth on;
                          worksible_rate_limit on fail=open;
                          proxy_pass http://127.0.0.1:1998; }';
my $http = http_config(redis => "$ENV{TEST_NGINX_REDIS} timeout=300ms") . '
    server { listen 127.0.0.1:1998; location / { return 200 "ok\n"; } }';

# a key of a new company on a plan of $limit a minute (and, in list
# context, the company)
sub key_on {
    my ($limit) = @_;
    my $plan = plan(limit => $limit, window => 60);
    my $company = company(plan => $plan);
    my $key = api_key($company, 'company:read')->{key};
    return wantarray ? ($key, $company) : $key;
}

# n requests at once, each on its own connection: the statuses
sub burst {
    my ($port, $key, $n) = @_;
    my %status;
    $status{ $_->{status} }++
        for at_once($port, (request('GET', '/closed/x', { Authorization => "Bearer $key" })) x $n);
    return \%status;
}

my $prefix = nginx_start(name => 'ratelimit', port => 1996, workers => 2,
    http => $http, server => $server);

# --- 50 at once on a plan of 5 ----------------------------------------------

my ($five, $five_company) = key_on(5);
my $st = burst(1996, $five, 50);
is($st->{200}, 5, '50 requests at once on a plan of 5: exactly 5 pass');
is($st->{429}, 45, 'and 45 are limited');

# T = 12 s: the 5 charged requests moved the company's TAT 60 s ahead; the
# 45 refused ones must not have moved it further
# (its company's counter only: other suites leave theirs in this Redis)
my $pttl = redis_cli('PTTL', "worksible:rl:{$five_company}");
cmp_ok($pttl, '<=', 60_000, 'limited requests are not charged (the budget is 60 s ahead, no more)');
cmp_ok($pttl, '>', 55_000, 'and the 5 charged ones are');

# --- two servers, one Redis, one budget --------------------------------------

nginx_stop();
my $four = key_on(4);

# the second instance, beside the first
my $stop_second = nginx_clone($prefix, 'ratelimit2', { 1996 => 1997, 1998 => 1999 });

nginx_start(name => 'ratelimit', port => 1996, workers => 2,
    http => $http, server => $server);
sleep 0.3;

my @seen;
for my $port (1996, 1997, 1996, 1997, 1996, 1997) {
    push @seen, http('GET', '/closed/x', { Authorization => "Bearer $four" }, port => $port)->{status};
}
is_deeply(\@seen, [200, 200, 200, 200, 429, 429],
          'two nginx servers on one Redis share one budget of 4');

$stop_second->();

# --- Redis stopped ------------------------------------------------------------

my $key = key_on(1000);
my $res = http('GET', '/closed/x', { Authorization => "Bearer $key" });
is($res->{status}, 200, 'Redis up: 200');
like($res->{headers}{ratelimit} // '', qr/;r=999;t=\d+$/, 'with RateLimit');

stack('redis-stop');

$res = http('GET', '/closed/x', { Authorization => "Bearer $key" }, timeout => 5);
is($res->{status}, 503, 'Redis down, fail=closed: 503');
like($res->{headers}{'retry-after'} // '', qr/^\d+$/, 'with Retry-After');
like($res->{body} // '', qr/"code":"service_unavailable"/, 'service_unavailable');

$res = http('GET', '/open/x', { Authorization => "Bearer $key" }, timeout => 5);
is($res->{status}, 200, 'Redis down, fail=open: 200');
ok(!exists $res->{headers}{ratelimit}, 'without rate-limit headers');

stack('redis-start');

my $deadline = time + 10;
do { sleep 0.2; $res = http('GET', '/closed/x', { Authorization => "Bearer $key" }) }
    until ($res->{status} == 200 && $res->{headers}{ratelimit}) || time > $deadline;
is($res->{status}, 200, 'Redis back: 200 again, without restarting nginx');
like($res->{headers}{ratelimit} // '', qr/;r=\d+;t=\d+$/, 'and the headers are back');

# --- a Redis that accepts but never answers ----------------------------------

my $rpid = Worksible::Test::slurp("$top/build/test/redis.pid");
chomp $rpid;
kill 'STOP', $rpid;

# clients that leave while their command waits: nothing calls them back
for (1 .. 5) {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:1996') or die;
    print $s "GET /closed/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer $key\r\n\r\n";
    sleep 0.02;
    close $s;
}
sleep 0.5;

my $t0 = time;
$res = http('GET', '/closed/x', { Authorization => "Bearer $key" }, timeout => 5);
my $took = time - $t0;
is($res->{status}, 503, 'Redis stopped with SIGSTOP, fail=closed: 503');
cmp_ok($took, '<', 3, 'bounded by the timeout, not the client');

$res = http('GET', '/open/x', { Authorization => "Bearer $key" }, timeout => 5);
is($res->{status}, 200, 'fail=open: 200');

kill 'CONT', $rpid;

$deadline = time + 10;
do { sleep 0.2; $res = http('GET', '/closed/x', { Authorization => "Bearer $key" }) }
    until ($res->{status} == 200 && $res->{headers}{ratelimit}) || time > $deadline;
is($res->{status}, 200, 'Redis answering again: 200 with headers');

# --- Redis forgot the script (restart, SCRIPT FLUSH): EVAL reloads it --------

is(redis_cli('SCRIPT', 'FLUSH'), 'OK', 'the script cache is flushed');
$res = http('GET', '/closed/x', { Authorization => "Bearer $key" });
is($res->{status}, 200, 'NOSCRIPT is answered by sending the script: 200');
like($res->{headers}{ratelimit} // '', qr/;r=\d+;t=\d+$/, 'with headers');

# --- an operator changes the plan ----------------------------------------------

my $plan = plan(limit => 1000, window => 60);
my $changing = api_key(company(plan => $plan), 'company:read')->{key};
$res = http('GET', '/closed/x', { Authorization => "Bearer $changing" });
like($res->{headers}{'ratelimit-policy'} // '', qr/;q=1000;w=60$/, 'the plan as it was');
my ($code) = Worksible::Test::cli('plan', 'set', $plan, '--limit', '2', '--window', '10');
is($code, 0, 'worksible plan set changes it');
$res = http('GET', '/closed/x', { Authorization => "Bearer $changing" });
like($res->{headers}{'ratelimit-policy'} // '', qr/;q=2;w=10$/,
     'the next request uses it (no key cache here; with one, within its ttl)');

# a raised plan: the budget at once, less what was used
my $raised = plan(limit => 10, window => 60);
my $raise = api_key(company(plan => $raised), 'company:read')->{key};
http('GET', '/closed/x', { Authorization => "Bearer $raise" }) for 1 .. 6;
Worksible::Test::cli('plan', 'set', $raised, '--limit', '1000');
$res = http('GET', '/closed/x', { Authorization => "Bearer $raise" });
my ($r) = ($res->{headers}{ratelimit} // '') =~ /;r=(\d+);/;
cmp_ok($r // 0, '>=', 990, "raised from 10 to 1000 a minute after 6 requests: r=$r, about 993 ...");
cmp_ok($r // 1000, '<=', 993, '... (the 6 used still count, the old rate no more)');

# a lowered plan: never a wait past the new window
my $lowered = plan(limit => 1000, window => 60);
my $lower = api_key(company(plan => $lowered), 'company:read')->{key};
http('GET', '/closed/x', { Authorization => "Bearer $lower" }) for 1 .. 6;
Worksible::Test::cli('plan', 'set', $lowered, '--limit', '2');
$res = http('GET', '/closed/x', { Authorization => "Bearer $lower" });
is($res->{status}, 429, 'lowered from 1000 to 2 a minute after 6 requests: 429');
cmp_ok($res->{headers}{'retry-after'} // 999, '<=', 60, 'with a Retry-After within the new window');

my $log = Worksible::Test::slurp("$prefix/logs/error.log");
my @warns = $log =~ /requests pass without rate limits/g;
cmp_ok(scalar @warns, '<=', 4, 'fail=open warned at most once per 10 s per worker');

nginx_stop();
done_testing();
