# The life of an idempotency record (issue 14, found by a review): a
# proxied call longer than the key's ttl is still in progress, not run
# twice; a reservation Redis answered too late goes with its lock, not
# kept as an unknown outcome; a record from before 0.14 (no lock deadline)
# reads as in progress.

use strict;
use warnings;

use IO::Socket::INET;
use POSIX ();
use Test::More;
use Time::HiRes qw(sleep time);
use Worksible::Test qw(company api_key http_config nginx_start nginx_stop
    http redis_cli problem service);

my $top = $ENV{WORKSIBLE_TOP};
my $counter = "$top/t/servroot_idempotency_records.calls";
sub calls { Worksible::Test::calls($counter) }

my $service = service(1962, $counter);

my $server = '
        location /short/ { worksible_auth on; worksible_idempotency on ttl=1s;
                           proxy_pass http://127.0.0.1:1962; }
        location /svc/ { worksible_auth on;
                         worksible_idempotency on lock=1s;
                         proxy_pass http://127.0.0.1:1962; }';

my $prefix = nginx_start(name => 'idempotency_records', port => 1961,
    http => http_config(redis => "$ENV{TEST_NGINX_REDIS} timeout=100ms"),
    server => $server);

my $cmp = company(name => 'Attack14 Idem Co');
my $key = api_key($cmp, 'freelancers:write')->{key};

sub post {
    my ($path, $idem, $body) = @_;
    return http('POST', $path, { Authorization => "Bearer $key",
        'Content-Type' => 'application/json', 'Idempotency-Key' => $idem },
        body => $body, port => 1961);
}

# --- a proxied call longer than the key's ttl: each renewal keeps the
# record for max(ttl, lock), so its retry is in progress, not a second run

unlink $counter;
my $first = fork // die;
if ($first == 0) {
    post('/short/slow', 'ttl-1', '{}');
    POSIX::_exit(0);
}
sleep 1.4;
my $retry = post('/short/slow', 'ttl-1', '{}');
waitpid($first, 0);
is($retry->{status}, 409,
   'ttl=1s, a proxied call of 2 s: its retry at 1.4 s gets 409 (in progress), not a second run');
is(calls(), 1, 'the service ran once');

# --- Redis stalls past `timeout` while a reservation is on the wire: the
# client gets 503, the service never runs; Redis runs the reservation when
# it wakes, but a reservation lives only for its lock until its owner
# renews it, so it goes by itself and the retry runs

unlink $counter;
my ($redis_pid) = redis_cli('INFO', 'server') =~ /process_id:(\d+)/ or die 'no Redis pid';
kill 'STOP', $redis_pid;
my $stalled = post('/svc/stall', 'stall-1', '{}');
sleep 0.3;
kill 'CONT', $redis_pid;
is($stalled->{status}, 503, 'Redis stalled during the reservation: 503');
is(calls(), 0, 'the service was not called');
sleep 2;    # the lock (1 s) passes, the breaker closes
my $after;
for (1 .. 20) {
    $after = post('/svc/stall', 'stall-1', '{}');
    last if $after->{status} != 503;
    sleep 0.25;
}
isnt($after->{status}, 409, 'its retry after the lock runs, not 409');
unlike($after->{body} // '', qr/idempotency_outcome_unknown/,
       'not "outcome unknown" for a request that never reached the service');
is(calls(), 1, 'the service then ran once');

# --- an in-flight record of the previous version ({fp, owner}, PEXPIRE
# lock, no 'until'), during a reload or an upgrade: in progress

unlink $counter;
post('/svc/fail', 'old-1', '{}');    # a record with the fingerprint of '{}'
my $record = "worksible:idem:{$cmp}:old-1";
my $fp = redis_cli('HGET', $record, 'fp');
like($fp, qr/./, 'the record has a fingerprint');
redis_cli('DEL', $record);
redis_cli('HSET', $record, 'fp', $fp, 'owner', 'an-old-worker-request');
redis_cli('PEXPIRE', $record, 10000);
my $old = post('/svc/fail', 'old-1', '{}');
is($old->{status}, 409, 'a previous version\'s running record: 409');
like($old->{body}, problem(409, 'idempotency_request_in_progress'),
     '... in progress (as before the change), not outcome unknown');

nginx_stop();
unlink $counter;

done_testing();
