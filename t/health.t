# worksible_health: 200 when this worker reaches PostgreSQL and Redis, 503
# naming the store that is down, for load balancers.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(sleep time);
use Worksible::Test qw(nginx_start nginx_stop http json stack);

nginx_start(name => 'health', port => 1995,
    server => 'location = /health { worksible_health; }');

sub health {
    my $res = http('GET', '/health', {}, timeout => 8);
    return ($res->{status}, $res->{body} ? json()->decode($res->{body}) : {}, $res);
}

# until the status is $want, for at most 10 s
sub until_status {
    my ($want) = @_;
    my ($status, $body, $res);
    my $deadline = time + 10;
    do { ($status, $body, $res) = health(); sleep 0.2 if $status != $want }
        until $status == $want || time > $deadline;
    return ($status, $body, $res);
}

my ($status, $body, $res) = until_status(200);
is($status, 200, 'both stores up: 200');
is_deeply($body, { status => 'ok', postgres => 'up', redis => 'up' }, 'the body says so');
is($res->{headers}{'cache-control'}, 'no-store', 'not cached');

stack('pg-stop');
($status, $body) = until_status(503);
is($status, 503, 'PostgreSQL stopped: 503');
is_deeply($body, { status => 'unavailable', postgres => 'down', redis => 'up' },
          'naming PostgreSQL');
stack('pg-start');
($status) = until_status(200);
is($status, 200, 'PostgreSQL back: 200');

stack('redis-stop');
($status, $body) = until_status(503);
is($status, 503, 'Redis stopped: 503');
is_deeply($body, { status => 'unavailable', postgres => 'up', redis => 'down' },
          'naming Redis');
stack('redis-start');
($status) = until_status(200);
is($status, 200, 'Redis back: 200, once the probe finds it');

$res = http('POST', '/health', {});
is($res->{status}, 405, 'GET and HEAD only');

nginx_stop();
done_testing();
