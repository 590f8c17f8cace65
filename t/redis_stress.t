# Redis under stress (issue 14): a slow reply fails only the commands past
# their timeout, a long stall opens the breaker and it closes once Redis
# answers again, an idle connection Redis drops (CLIENT KILL) is reconnected
# for the next request, and a command whose fate is unknown (written, then
# the connection died) is not sent twice: the rate-limit script and the
# Idempotency-Key reservation are not retried. Commands larger than the
# socket takes (1 MB outcomes kept while Redis is stopped) are written whole
# as it drains, and a command queued as Redis closes the connection is sent
# on the next one.

use strict;
use warnings;

use IO::Socket::INET;
use Socket qw(IPPROTO_TCP TCP_CORK);
use Test::More;
use Time::HiRes qw(sleep time);
use Worksible::Test qw(company api_key plan http_config nginx_start
    nginx_stop http request redis_cli);

my $top = $ENV{WORKSIBLE_TOP};

my $server = '
        location /closed/ { worksible_auth on; worksible_rate_limit on;
                            proxy_pass http://127.0.0.1:1961; }
        location /idem/ { worksible_auth on; worksible_idempotency on;
                          proxy_pass http://127.0.0.1:1961; }
        location /both/ { worksible_auth on; worksible_rate_limit on;
                          worksible_idempotency on;
                          proxy_pass http://127.0.0.1:1961; }
        location = /metrics { worksible_metrics; }';
my $upstream = '
    server { listen 127.0.0.1:1961; location / { return 200 "ok\n"; } }';

# one worker: every command shares one connection; the key cache keeps
# PostgreSQL out of the timings below
my $keycache = '
    worksible_key_cache zone=redis_stress:1m ttl=10m;';
my $prefix = nginx_start(name => 'redis_stress', port => 1960, workers => 1,
    http => http_config(redis => "$ENV{TEST_NGINX_REDIS} timeout=300ms")
            . $keycache . $upstream,
    server => $server);

# a day's window: no budget comes back while the test runs, so r counts
# the charges exactly
my $plan = plan(limit => 1000, window => 86400);
my $company = company(plan => $plan);
my $key = api_key($company, 'company:read')->{key};
my %auth = (Authorization => "Bearer $key");

# sends a request without reading the answer: the socket
sub send_only {
    my ($path) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:1960') or die "connect: $!";
    print $s request('GET', $path, \%auth);
    return $s;
}

# the answer on a socket of send_only()
sub answer {
    my ($s) = @_;
    local $/;
    return Worksible::Test::response(scalar readline($s));
}

# a counter of the redis store in /metrics
sub metric {
    my ($name) = @_;
    my $body = http('GET', '/metrics', {})->{body} // '';
    return $body =~ /^worksible_store_${name}_total\{store="redis"\} (\d+)$/m ? $1 : -1;
}

sub remaining {
    my ($res) = @_;
    return ($res->{headers}{ratelimit} // '') =~ /;r=(\d+);/ ? $1 : -1;
}

my $rpid = Worksible::Test::slurp("$top/build/test/redis.pid");
chomp $rpid;

my $res = http('GET', '/closed/x', \%auth);
is($res->{status}, 200, 'Redis up: 200');
is(remaining($res), 999, 'the first charge: r=999');

# --- a stall of 0.65 s: only the commands past their timeout fail -------------

my ($timeouts, $errors) = (metric('timeouts'), metric('errors'));

kill 'STOP', $rpid;
my @early = map { send_only('/closed/early') } 1 .. 3;
sleep 0.6;            # the early commands are past their 300 ms
my @late = map { send_only('/closed/late') } 1 .. 3;
sleep 0.05;
kill 'CONT', $rpid;

my @st = map { answer($_)->{status} } @early;
is_deeply(\@st, [503, 503, 503], 'the 3 commands past their timeout: 503 (fail=closed)');
my @late_res = map { answer($_) } @late;
is_deeply([map { $_->{status} } @late_res], [200, 200, 200],
          'the 3 sent during the stall and answered within their timeout: 200, the connection kept');
ok(!grep({ remaining($_) < 0 } @late_res), 'with their rate-limit headers');
is(metric('timeouts') - $timeouts, 3, 'worksible_store_timeouts_total counts the 3');
is(metric('errors') - $errors, 0, 'and no other command failed');

# the late replies of the timed-out commands were read and discarded; those
# commands ran in Redis all the same (their fate was unknown: not resent)
$res = http('GET', '/closed/x', \%auth);
is($res->{status}, 200, 'after the stall: 200');
is(remaining($res), 992, 'the Redis counter: 8 charges (1 + 6 + this one), none twice');

my $log = Worksible::Test::slurp("$prefix/logs/error.log");
like($log, qr/worksible redis \S+: command timed out after 300 ms \(\d+ since the last such line\), its late reply is discarded/,
     'the error log names the timeouts');
unlike($log, qr/nothing read for/, 'and the breaker did not open');

# --- an idle connection Redis drops: the next requests reconnect ---------------

for my $round (1 .. 2) {
    my $before = remaining(http('GET', '/closed/x', \%auth));
    $errors = metric('errors');
    my $killed = redis_cli('CLIENT', 'KILL', 'TYPE', 'normal');
    cmp_ok($killed, '>=', 1, "round $round: CLIENT KILL TYPE normal closed nginx's connection");
    my @seen = map { http('GET', '/closed/x', \%auth) } 1 .. 8;
    is_deeply([map { $_->{status} } @seen], [(200) x 8],
              "round $round: the 8 requests after it, one after another: all 200");
    is_deeply([map { remaining($_) } @seen], [map { $before - $_ } 1 .. 8],
              "round $round: each charged once in Redis");
    is(metric('errors') - $errors, 0, "round $round: no command failed");
}
$log = Worksible::Test::slurp("$prefix/logs/error.log");
like($log, qr/worksible redis \S+: connection lost: .*, reconnecting/,
     'the error log says the connection was lost and is made again');

# --- a stall of 2 s: the breaker opens, then closes -----------------------------

kill 'STOP', $rpid;
my $t0 = time;
my @stalled = map { send_only('/closed/stalled') } 1 .. 2;
sleep 1.5;            # past max(timeout, connect_timeout) = 1 s without a reply
($timeouts, $errors) = (metric('timeouts'), metric('errors'));
$res = http('GET', '/closed/x', \%auth, timeout => 5);
is($res->{status}, 503, 'Redis stalled past 1 s: 503');
like($res->{headers}{'retry-after'} // '', qr/^\d+$/, 'with Retry-After');
is(metric('timeouts') - $timeouts, 0, 'refused at once (the breaker is open), not timed out');
cmp_ok(metric('errors') - $errors, '>=', 1, 'and counted as an error');
sleep 0.05 while time < $t0 + 2;
kill 'CONT', $rpid;
$t0 = time;
is_deeply([map { answer($_)->{status} } @stalled], [503, 503], 'the stalled commands: 503');

my $deadline = time + 8;
do { sleep 0.1; $res = http('GET', '/closed/x', \%auth) }
    until $res->{status} == 200 || time > $deadline;
is($res->{status}, 200, 'Redis answering again: 200 without a reload');
cmp_ok(time - $t0, '<', 6, 'within the probe backoff (a few seconds)');
$log = Worksible::Test::slurp("$prefix/logs/error.log");
like($log, qr/worksible redis \S+: nothing read for 1000 ms with 2 commands outstanding/,
     'the error log says why the breaker opened');
like($log, qr/worksible redis \S+ is back/, 'and that it closed');

# --- frozen, then gone: the probes are refused until Redis is back --------------

kill 'STOP', $rpid;
my $frozen = send_only('/closed/frozen');
sleep 1.3;            # the breaker is open: nothing read for 1 s
kill 'KILL', $rpid;   # a stopped process dies of it
my $gone = time + 5;
sleep 0.05 while IO::Socket::INET->new(PeerAddr => $ENV{TEST_NGINX_REDIS}) && time < $gone;
is(answer($frozen)->{status}, 503, 'a command on a frozen Redis: 503');
sleep 0.5;            # probes find the port closed
$res = http('GET', '/closed/x', \%auth);
is($res->{status}, 503, 'Redis gone: 503');
unlink "$top/build/test/redis.pid";
Worksible::Test::stack('redis-start');
$rpid = Worksible::Test::slurp("$top/build/test/redis.pid");
chomp $rpid;
$t0 = time;
$deadline = time + 8;
do { sleep 0.1; $res = http('GET', '/closed/x', \%auth) }
    until $res->{status} == 200 || time > $deadline;
is($res->{status}, 200, 'Redis started again: 200 without a reload');
cmp_ok(time - $t0, '<', 6, 'within the probe backoff');
# a day's budget would confuse other suites' scans of worksible:rl:*
redis_cli('DEL', "worksible:rl:{$company}");
$log = Worksible::Test::slurp("$prefix/logs/error.log");
like($log, qr/worksible redis \S+: nothing read for 1000 ms with 1 command outstanding/,
     'the error log: the freeze');
like($log, qr/worksible redis \S+: connect failed: Connection refused, still down/,
     'then the refused probes');

nginx_stop();

# --- 1 MB outcomes stored while Redis is stopped: partial writes ----------------
#
# Six responses of 1 MB each, kept under their Idempotency-Key while Redis
# is stopped: the store commands fill the socket, the transport writes the
# rest as the socket drains (the write event armed), every record is whole.

my $blobdir = "$top/t/servroot_redis_stress_blob";
system('rm', '-rf', $blobdir);
mkdir $blobdir or die;
my $blob = join('', map { chr(97 + $_ % 26) x 1024 } 0 .. 1023);
open my $bfh, '>', "$blobdir/blob" or die;
print $bfh $blob;
close $bfh;

nginx_start(name => 'redis_stress_big', port => 1960, workers => 1,
    http => http_config(redis => "$ENV{TEST_NGINX_REDIS} timeout=3s") . "
    server { listen 127.0.0.1:1961; location / { limit_rate 4m; root $blobdir;
                                                 rewrite ^ /blob break; } }",
    server => '
        location /big/ { worksible_auth on; worksible_idempotency on max_size=2m;
                         proxy_method GET; proxy_pass http://127.0.0.1:1961; }');

my $big_company = company(plan => 'growth');
my $big_key = api_key($big_company, 'company:read')->{key};
my @big = map {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:1960') or die "connect: $!";
    print $s request('POST', '/big/x', { Authorization => "Bearer $big_key",
                                          'Idempotency-Key' => "big-$_" }, '');
    $s;
} 1 .. 6;
sleep 0.1;            # reserved; the responses take 0.25 s each
kill 'STOP', $rpid;
sleep 0.6;
kill 'CONT', $rpid;
my @big_res = map { answer($_) } @big;
is_deeply([map { $_->{status} } @big_res], [(200) x 6], '6 responses of 1 MB: 200');
ok(!grep({ $_->{body} ne $blob } @big_res), 'each whole');
my @stored;
my $big_deadline = time + 5;
do {
    sleep 0.1;
    @stored = map { redis_cli('HSTRLEN', "worksible:idem:{$big_company}:big-$_", 'body') } 1 .. 6;
} until !grep({ $_ != length $blob } @stored) || time > $big_deadline;
is_deeply(\@stored, [(length $blob) x 6], 'all 6 kept whole in Redis, written while it was stopped');
my @replays = map { http('POST', '/big/x', { Authorization => "Bearer $big_key",
                                              'Idempotency-Key' => "big-$_" }, body => '') } 1 .. 6;
is_deeply([map { ($_->{headers}{'idempotent-replayed'} // '') . ($_->{body} eq $blob ? ' same' : ' differs') } @replays],
          [('true same') x 6], 'and replayed, the same bytes');
unlike(Worksible::Test::slurp("$top/t/servroot_redis_stress_big/logs/error.log") // '',
       qr/store failed|cannot add a write event/, 'no store failed');
redis_cli('DEL', map { "worksible:idem:{$big_company}:big-$_" } 1 .. 6);

nginx_stop();

# --- a connection that dies with a command written: not resent ------------------
#
# A fake Redis on 1962: PING -> PONG; EVALSHA is logged (its ARGV[1], or
# "charge" for the rate limit) and answered (the charge: allowed, r=999;
# reserve: reserved; store and the others: 1), except while the file
# "drop" exists: "" or "KIND" (the next command, or the next of that kind,
# is not answered) or "after KIND" (the next of that kind is answered):
# then it is deleted and the connection closed.

my $dir = "$top/t/servroot_redis_stress_fake";
system('rm', '-rf', $dir);
mkdir $dir or die;
my $fake = IO::Socket::INET->new(LocalAddr => '127.0.0.1:1962', Listen => 16,
    ReuseAddr => 1) or die "fake redis: $!";
my $fpid = fork // die;
if ($fpid == 0) {
    $SIG{CHLD} = 'IGNORE';
    while (my $c = $fake->accept) {
        my $child = fork // die;
        if ($child) {
            open my $fh, '>>', "$dir/pids" or die;
            print $fh "$child\n";
            close $fh;
            next;
        }
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
                my $cmd = uc($args[0] // '');
                if ($cmd eq 'PING') { print $c "+PONG\r\n"; next }
                my $kind = $args[4] =~ /^\d+$/ ? 'charge' : $args[4];
                open my $fh, '>>', "$dir/commands" or die;
                print $fh "$kind\n";
                close $fh;
                my $drop = Worksible::Test::slurp("$dir/drop");
                if (defined $drop && ($drop eq '' || $drop eq $kind)) {
                    unlink "$dir/drop";
                    close $c;
                    POSIX::_exit(0);
                }
                my $after = defined $drop && $drop eq "after $kind";
                # corked: the answer and the end leave in one segment
                setsockopt($c, IPPROTO_TCP, TCP_CORK, 1) if $after;
                print $c ($kind eq 'reserve' ? "*1\r\n\$8\r\nreserved\r\n"
                        : $kind eq 'charge' ? "*4\r\n:1\r\n:999\r\n:1\r\n:0\r\n"
                        : ":1\r\n");
                if ($after) {
                    unlink "$dir/drop";
                    close $c;
                    POSIX::_exit(0);
                }
            }
        }
        POSIX::_exit(0);
    }
    POSIX::_exit(0);
}
close $fake;

sub commands {
    open my $fh, '<', "$dir/commands" or return ();
    chomp(my @l = <$fh>);
    return @l;
}

# the next command (or the next with this ARGV[1]) loses its connection;
# first the commands of earlier requests (a store follows the response)
# have arrived
sub drop_next {
    my ($action) = @_;
    my $n = -1;
    for (1 .. 25) {
        my $now = () = commands();
        last if $now == $n;
        $n = $now;
        sleep 0.2;
    }
    open my $fh, '>', "$dir/drop" or die;
    print $fh $action // '';
    close $fh;
}

$prefix = nginx_start(name => 'redis_stress_fake', port => 1960, workers => 1,
    http => http_config(redis => '127.0.0.1:1962 timeout=300ms') . $upstream,
    server => $server);
sleep 0.2;

$res = http('GET', '/closed/x', \%auth);
is($res->{status}, 200, 'fake Redis: 200');

drop_next();
$res = http('GET', '/closed/x', \%auth);
is($res->{status}, 503, 'the connection died with the rate-limit script written: 503 (fail=closed)');
is(scalar(grep { $_ eq 'charge' } commands()), 2, 'and the script was not sent again (it charges)');
$res = http('GET', '/closed/x', \%auth);
is($res->{status}, 200, 'the next request: 200 on a new connection');
is(scalar(grep { $_ eq 'charge' } commands()), 3, 'one command for it');

drop_next();
$res = http('POST', '/idem/x', { %auth, 'Idempotency-Key' => 'k-stress-1' });
is($res->{status}, 503, 'the connection died with an Idempotency-Key reservation written: 503');
like($res->{headers}{'retry-after'} // '', qr/^\d+$/, 'with Retry-After');
is(scalar(grep { $_ eq 'reserve' } commands()), 1, 'and the reservation was not sent again');
$res = http('POST', '/idem/x', { %auth, 'Idempotency-Key' => 'k-stress-2' });
is($res->{status}, 200, 'the next keyed request: reserved on a new connection, 200');

# storing the outcome is safe to run twice (only the owner of a running
# record may store): sent again on the next connection
drop_next('store');
my $stores = grep { $_ eq 'store' } commands();
$res = http('POST', '/idem/x', { %auth, 'Idempotency-Key' => 'k-stress-3' });
is($res->{status}, 200, 'a keyed request whose store loses its connection: 200');
my $deadline2 = time + 3;
sleep 0.05 while grep({ $_ eq 'store' } commands()) < $stores + 2 && time < $deadline2;
is(scalar(grep { $_ eq 'store' } commands()) - $stores, 2,
   'its store was sent again on a new connection (written twice, stored once)');
$log = Worksible::Test::slurp("$prefix/logs/error.log");
unlike($log, qr/store failed/, 'and did not fail');

# the charge's answer and the connection's end come in one read: the
# reservation its request then sends is not written when the end is read,
# so it is sent on the next connection
drop_next('after charge');
my $reserves = grep { $_ eq 'reserve' } commands();
$res = http('POST', '/both/x', { %auth, 'Idempotency-Key' => 'k-stress-4' });
is($res->{status}, 200, 'a reservation queued on a connection that closed before writing it: 200');
is(scalar(grep { $_ eq 'reserve' } commands()) - $reserves, 1,
   'sent once, on the next connection');

nginx_stop();

# --- Redis closes the connection while a command is queued on it ---------------
#
# Redis closes the connection (the process serving it is killed) after the
# worker's epoll_wait(2) returned a request, before the worker handles it
# (strace holds each epoll_wait's return 100 ms): the charge that request
# queues was never written when the close is read, so it goes on the next
# connection and the request does not notice: 200, charged once.

$prefix = nginx_start(name => 'redis_stress_close', port => 1960, workers => 1,
    http => http_config(redis => '127.0.0.1:1962 timeout=5s') . $keycache
            . $upstream,
    server => $server);
my ($close_master) = Worksible::Test::slurp("$prefix/logs/nginx.pid") =~ /(\d+)/;
my ($close_worker) = Worksible::Test::workers_of($close_master);
my @rounds;
for my $round (1 .. 3) {
    # a request first: the key is cached, a connection is up and ready
    $res = http('GET', '/closed/x', \%auth);
    open my $pfh, '<', "$dir/pids" or die;
    my @conns = <$pfh>;
    close $pfh;
    my ($conn) = $conns[-1] =~ /(\d+)/;
    my $charges = grep { $_ eq 'charge' } commands();
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:1960') or die "connect: $!";
    sleep 0.1;            # accepted
    unlink "$prefix/logs/strace.err";
    my $spid = fork // die;
    if (!$spid) {
        open STDERR, '>', "$prefix/logs/strace.err";
        exec 'strace', '-p', $close_worker, '-o', '/dev/null',
             '-e', 'trace=epoll_wait,epoll_pwait',
             '-e', 'inject=epoll_wait,epoll_pwait:delay_exit=100000';
    }
    for (1 .. 100) {
        last if (Worksible::Test::slurp("$prefix/logs/strace.err") // '') =~ /attached/;
        sleep 0.05;
    }
    sleep 0.2;            # the worker waits in a delayed epoll_wait again
    print $s request('GET', '/closed/x', \%auth);
    $s->flush;
    sleep 0.02;           # its epoll_wait has returned the request
    kill 'KILL', $conn;
    my $status = answer($s)->{status};
    kill 'INT', $spid;
    waitpid $spid, 0;
    push @rounds, "$res->{status} $status "
                  . ((grep { $_ eq 'charge' } commands()) - $charges);
}
is_deeply(\@rounds, [('200 200 1') x 3],
          'a charge queued as Redis closed the connection: sent on the next one, 200, charged once')
    or diag explain \@rounds;

nginx_stop();
kill 'TERM', $fpid;
waitpid($fpid, 0);
done_testing();
