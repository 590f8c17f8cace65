# worksible_redis with sentinel=NAME against real Sentinels (redis-server
# --sentinel): a primary (17101) and its replica (17102), three Sentinels
# (17103-17105, requirepass) on loopback. The rate limiter and
# Idempotency-Key work through the primary the Sentinels name; SENTINEL
# FAILOVER and a killed primary are followed without a reload, counting
# on; one Sentinel down, then all of them, with the primary up: it keeps
# working. And nginx -t checks the directive's form.

use strict;
use warnings;

use File::Path qw(make_path remove_tree);
use Test::More;
use Time::HiRes qw(sleep time);
use Worksible::Test qw(company api_key plan http_config nginx_start
    nginx_stop http service calls slurp);

my $top = $ENV{WORKSIBLE_TOP};
my $dir = "$top/t/servroot_sentinel_stores";
my @data = (17101, 17102);
my @sentinels = (17103, 17104, 17105);
my $name = 'wk';
my $pass = 'sentinel-secret';

# --- the stores -------------------------------------------------------------

sub cli {
    my ($port, @args) = @_;
    my @auth = (grep { $_ == $port } @sentinels) ? ('--no-auth-warning', '-a', $pass) : ();
    open my $fh, '-|', 'redis-cli', '-h', '127.0.0.1', '-p', $port, @auth, @args
        or die "redis-cli: $!";
    local $/;
    my $out = <$fh> // '';
    close $fh;
    $out =~ s/\s+\z//;
    return $out;
}

sub pid_of { my $p = slurp("$dir/$_[0].pid") // ''; chomp $p; return $p }

sub stop {
    my ($port, $signal) = @_;
    my $pid = pid_of($port) or return;
    kill $signal // 'TERM', $pid;
    for (1 .. 200) { last unless kill 0, $pid; sleep 0.05 }
    unlink "$dir/$port.pid";
}

sub stop_all { stop($_, 'KILL') for @data, @sentinels }

sub wait_for {
    my ($what, $seconds, $cond) = @_;
    my $deadline = time + $seconds;
    while (time < $deadline) { return 1 if $cond->(); sleep 0.1 }
    diag("timed out waiting for $what");
    return 0;
}

sub primary_port {
    my @a = split /\n/, cli($sentinels[-1], 'SENTINEL', 'get-master-addr-by-name', $name);
    return $a[1] // 0;
}

# a leftover of an interrupted run
for my $port (@data, @sentinels) { stop($port, 'KILL') if -f "$dir/$port.pid" }
remove_tree($dir);
make_path($dir);
END { stop_all() if $dir && -d $dir }

for my $port (@data) {
    my @replica = $port == $data[1] ? ('--replicaof', '127.0.0.1', $data[0]) : ();
    system('redis-server', '--bind', '127.0.0.1', '--port', $port, '--save', '',
        '--appendonly', 'no', '--daemonize', 'yes', '--dir', $dir,
        '--pidfile', "$dir/$port.pid", '--logfile', "$dir/$port.log", @replica) == 0
        or die "redis-server $port";
}

for my $port (@sentinels) {
    open my $fh, '>', "$dir/sentinel-$port.conf" or die;
    print $fh <<CONF;
bind 127.0.0.1
port $port
daemonize yes
pidfile $dir/$port.pid
logfile $dir/$port.log
dir $dir
requirepass $pass
sentinel sentinel-pass $pass
sentinel monitor $name 127.0.0.1 $data[0] 2
sentinel down-after-milliseconds $name 1000
sentinel failover-timeout $name 2000
sentinel parallel-syncs $name 1
CONF
    close $fh;
    system('redis-server', "$dir/sentinel-$port.conf", '--sentinel') == 0
        or die "redis-server --sentinel $port";
}

# a Redis that cannot bind its port still exits 0 when it daemonizes
sub silent { grep { cli($_, 'PING') ne 'PONG' } @data, @sentinels }
my $up = wait_for('every Redis and Sentinel to answer', 10, sub { !silent() });
diag("$_ does not answer; its log:\n" . (slurp("$dir/$_.log") // ''))
    for $up ? () : silent();

ok($up
   && wait_for('the replica in sync', 20, sub {
    cli($data[1], 'INFO', 'replication') =~ /master_link_status:up/ })
   && wait_for('the Sentinels to know the replica and each other', 30, sub {
    !grep {
        my $s = $_;
        my $others = () = cli($s, 'SENTINEL', 'sentinels', $name) =~ /^name$/mg;
        my $replicas = cli($s, 'SENTINEL', 'replicas', $name);
        $others < 2 || $replicas !~ /$data[1]/;
    } @sentinels }),
   'a primary, a replica and three Sentinels that know each other');

# --- nginx on them ------------------------------------------------------------

open my $pw, '>', "$dir/sentinel_password" or die;
print $pw "$pass\n";
close $pw;

my $counter = "$dir/service.calls";
service(1949, $counter);

my $redis = join(' ', map { "127.0.0.1:$_" } @sentinels)
    . " sentinel=$name sentinel_password_file=$dir/sentinel_password timeout=300ms";
my $server = '
        location /closed/ { worksible_auth on; worksible_rate_limit on;
                            proxy_pass http://127.0.0.1:1942; }
        location /idem/ { worksible_auth on; worksible_idempotency on;
                          proxy_pass http://127.0.0.1:1949; }';
my %start = (name => 'redis_sentinel', port => 1945, workers => 2,
    http => http_config(redis => $redis) . '
    server { listen 127.0.0.1:1942; location / { return 200 "ok\n"; } }',
    server => $server);
my $prefix = nginx_start(%start);

sub key_on {
    my ($limit) = @_;
    my $cmp = company(plan => plan(limit => $limit, window => 60));
    return ($cmp, api_key($cmp, 'company:read')->{key});
}

sub get { http('GET', '/closed/x', { Authorization => "Bearer $_[0]" })->{status} }

# the company's GCRA state on a Redis: ms its budget runs ahead of now
sub ahead {
    my ($port, $cmp) = @_;
    my $t = cli($port, 'PTTL', "worksible:rl:{$cmp}");
    return $t =~ /^\d+$/ ? $t : -1;
}

# a key on a large plan answers 200 when Redis decides (503 when it cannot)
my (undef, $probe) = key_on(100000);

# seconds from $t0 until a request passes again, -1 past $seconds
sub recovers_within {
    my ($t0, $seconds) = @_;
    wait_for('a 200 through the new primary', $seconds, sub { get($probe) == 200 })
        or return -1;
    return time - $t0;
}

ok(wait_for('the primary through the Sentinels', 10, sub { get($probe) == 200 }),
   'requests pass through the primary the Sentinels named');

# --- rate limiting and idempotency on the primary ---------------------------------

my ($cmp, $key) = key_on(10);
my @st = map { get($key) } 1 .. 3;
is_deeply(\@st, [200, 200, 200], 'a plan of 10: 3 requests pass');
my $ahead = ahead($data[0], $cmp);
cmp_ok($ahead, '>', 15_000, 'charged on the primary (17101): 3 of 10 a minute, 18 s ahead');
cmp_ok($ahead, '<=', 18_000, 'and no more');

my %auth = (Authorization => "Bearer $key");
my $first = http('POST', '/idem/a', { %auth, 'Idempotency-Key' => 'sent-1' });
my $again = http('POST', '/idem/a', { %auth, 'Idempotency-Key' => 'sent-1' });
is($first->{status}, 201, 'a keyed POST runs: 201');
is($again->{headers}{'idempotent-replayed'}, 'true', 'its repeat is replayed');
is(calls($counter), 1, 'the service ran once');
isnt(cli($data[0], 'TYPE', "worksible:idem:{$cmp}:sent-1"), 'none', 'the record is on the primary (17101)');

# --- SENTINEL FAILOVER: followed without a reload ------------------------------------

wait_for('the replica to have the charges', 5, sub { ahead($data[1], $cmp) > 0 });
my $t0 = time;
like(cli($sentinels[0], 'SENTINEL', 'FAILOVER', $name), qr/OK/, 'SENTINEL FAILOVER');
ok(wait_for('the Sentinels to name 17102', 20, sub { primary_port() == $data[1] }),
   'the Sentinels name the replica (17102) the primary');
my $took = recovers_within($t0, 10);
ok($took >= 0, sprintf('the module follows within 10 s of SENTINEL FAILOVER (%.1f s), without a reload', $took));

@st = map { get($key) } 1 .. 8;
is_deeply(\@st, [(200) x 7, 429],
          'the limiter counts on: 7 more of the 10 pass on the new primary, the 11th is limited');
cmp_ok(ahead($data[1], $cmp), '>', 55_000, 'the budget is on the new primary (17102), 60 s ahead');
my $log = slurp("$prefix/logs/error.log");
is(scalar(() = $log =~ /\+switch-master to 127\.0\.0\.1:$data[1]/g), 2,
   'both workers got +switch-master from their Sentinel');
unlike($log, qr/reconfiguring|signal 1 \(SIGHUP\)/, 'no reload');

# --- the primary killed: the Sentinels elect the replica ---------------------------------

ok(wait_for('17101 to replicate 17102', 20, sub {
    cli($data[0], 'INFO', 'replication') =~ /role:slave.*master_link_status:up/s }),
   'the old primary (17101) now replicates the new one');
($cmp, $key) = key_on(4);
is(get($key), 200, 'a plan of 4: the first request passes');
wait_for('the replica to have the charge', 5, sub { ahead($data[0], $cmp) > 0 });
$t0 = time;
stop($data[1], 'KILL');
ok(wait_for('the Sentinels to elect 17101', 30, sub { primary_port() == $data[0] }),
   'the primary (17102) killed: the Sentinels elect 17101');
$took = recovers_within($t0, 20);
ok($took >= 0, sprintf('requests pass again within 20 s of the kill (%.1f s)', $took));
@st = map { get($key) } 1 .. 4;
is_deeply(\@st, [200, 200, 200, 429], 'the limiter counts on: 3 more of the 4, then 429');
cmp_ok(ahead($data[0], $cmp), '>', 55_000, 'on 17101');

nginx_stop();
system('cp', "$prefix/logs/error.log", "$dir/nginx-failover.log");

# --- one Sentinel frozen, then down: the next is asked --------------------------------

kill 'STOP', pid_of($sentinels[0]);
$prefix = nginx_start(%start);
ok(wait_for('the primary through the other Sentinels', 10, sub { get($probe) == 200 }),
   'the first Sentinel frozen (SIGSTOP): a new nginx finds the primary through the others');
ok(wait_for('the log', 5, sub { slurp("$prefix/logs/error.log") =~ /Sentinel 127\.0\.0\.1:$sentinels[0]: timed out/ }),
   'after its timeout (connect_timeout)');
nginx_stop();

stop($sentinels[0], 'KILL');
$prefix = nginx_start(%start);
ok(wait_for('the primary through the other Sentinels', 10, sub { get($probe) == 200 }),
   'the first Sentinel down: a new nginx finds the primary through the others');
($cmp, $key) = key_on(10);
is(get($key), 200, 'and charges');
cmp_ok(ahead($data[0], $cmp), '>', 0, 'on the primary (17101)');
$log = slurp("$prefix/logs/error.log");
like($log, qr/Sentinel 127\.0\.0\.1:$sentinels[0]: .*(refused|lost)/i,
     'the error log says which Sentinel was down');

# --- every Sentinel down, the primary up -------------------------------------------

stop($_) for @sentinels[1, 2];
is(get($key), 200, 'all Sentinels down: requests still pass on the known primary');
like(cli($data[0], 'CLIENT', 'KILL', 'TYPE', 'normal'), qr/^\d+$/,
     'the connections to the primary killed (CLIENT KILL)');
ok(wait_for('the connection again', 5, sub { get($key) == 200 }),
   'requests pass again: the known primary is kept');
cmp_ok(ahead($data[0], $cmp), '>', 10_000, 'charged there (2 of 10 a minute, 12 s ahead)');
$log = slurp("$prefix/logs/error.log");
like($log, qr/no Sentinel answered, keeping the primary 127\.0\.0\.1:$data[0]/,
     'the error log says the known primary is kept');


# --- the known primary turned into a replica (the Sentinels down) -------------------

# READONLY: the charge did not run; ROLE then says slave: Redis counts as
# down (fail=closed: 503), until it is a master again
my $before = ahead($data[0], $cmp);
is(cli($data[0], 'REPLICAOF', '127.0.0.1', '17199'), 'OK', 'the primary made a replica of nothing');
is(get($key), 503, 'a request on the replica: 503 (fail=closed), not an error');
ok(wait_for('the breaker open', 5, sub { get($key) == 503 }) && get($key) == 503,
   'and the next ones while it is no master');
cmp_ok(abs(ahead($data[0], $cmp) - $before), '<', 1_000, 'none of them was charged');
$log = slurp("$prefix/logs/error.log");
like($log, qr/READONLY: a replica|ROLE: not a master/, 'the error log says it is no primary');
is(cli($data[0], 'REPLICAOF', 'NO', 'ONE'), 'OK', 'a master again');
ok(wait_for('requests again', 10, sub { get($key) == 200 }),
   'requests pass again once it is a master');
cmp_ok(ahead($data[0], $cmp), '>', $before + 4_000, 'and are charged there');

nginx_stop();
system('cp', "$prefix/logs/error.log", "$dir/nginx-replica.log");

# --- no Sentinel at all, no primary known ----------------------------------------------

$prefix = nginx_start(%start);
my $res = http('GET', '/closed/x', { Authorization => "Bearer $key" });
is($res->{status}, 503, 'nginx started with every Sentinel down: 503 (fail=closed)');
like($res->{headers}{'retry-after'} // '', qr/^\d+$/, 'with Retry-After');
ok(wait_for('the log', 5, sub { (slurp("$prefix/logs/error.log") // '') =~ /no Sentinel named the primary/ }),
   'the error log says no Sentinel named the primary');
nginx_stop();

# --- nginx -t ---------------------------------------------------------------------------

sub nginx_t {
    my ($redis) = @_;
    my $p = "$top/t/servroot_redis_sentinel_t";
    make_path("$p/conf", "$p/logs");
    open my $fh, '>', "$p/conf/nginx.conf" or die;
    print $fh "load_module $ENV{TEST_NGINX_LOAD_MODULES};\n",
        "error_log logs/error.log;\npid logs/nginx.pid;\nevents {}\n",
        "http {\n", http_config(redis => $redis), "}\n";
    close $fh;
    local $ENV{ASAN_OPTIONS} = ($ENV{ASAN_OPTIONS} // '') . ':detect_leaks=0';
    my $out = `$ENV{TEST_NGINX_BINARY} -t -p $p -c conf/nginx.conf 2>&1`;
    return ($? >> 8, $out);
}

for my $case (
    [ "127.0.0.1:17103 127.0.0.1:17104 sentinel=$name", 0, qr/syntax is ok/, 'Sentinels and a master name' ],
    [ "127.0.0.1 sentinel=$name db=3 timeout=50ms", 0, qr/syntax is ok/, 'one Sentinel, port 26379, with db and timeout' ],
    [ "127.0.0.1:17103 127.0.0.1:17104", 1, qr/several addresses need "cluster" or sentinel=NAME/, 'several addresses without sentinel=' ],
    [ "127.0.0.1:17103 sentinel=", 1, qr/one sentinel=NAME with a master name/, 'sentinel= without a name' ],
    [ "127.0.0.1:17103 sentinel=a sentinel=b", 1, qr/one sentinel=NAME/, 'two master names' ],
    [ "127.0.0.1:17103 sentinel_password_file=$dir/sentinel_password", 1,
      qr/sentinel_password_file needs sentinel=NAME/, 'a Sentinel password without sentinel=' ],
    [ "127.0.0.1:17103 sentinel=$name sentinel_password_file=$dir/none", 1,
      qr/open\(\) ".*none" failed/, 'a Sentinel password file that is not there' ],
    [ "unix:/tmp/s.sock sentinel=$name", 1, qr/the Sentinel "unix:\/tmp\/s\.sock" must be host\[:port\]/, 'a unix socket as a Sentinel' ],
    [ "no-such-host.invalid:26379 sentinel=$name", 1, qr/the Sentinel "no-such-host\.invalid:26379" not resolved/, 'an unresolvable Sentinel' ],
    [ "127.0.0.1:17103 db=1 127.0.0.1:17104 sentinel=$name", 1, qr/invalid worksible_redis parameter "127\.0\.0\.1:17104"/, 'an address after the parameters' ],
) {
    my ($redis, $fails, $re, $what) = @$case;
    my ($code, $out) = nginx_t($redis);
    is($code != 0 ? 1 : 0, $fails, "$what: nginx -t " . ($fails ? 'fails' : 'passes'));
    like($out, $re, "$what: the message") or diag($out);
}

done_testing();
