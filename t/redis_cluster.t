# Redis Cluster (worksible_redis ... cluster) against a real one: 3
# primaries and 3 replicas on 127.0.0.1:17001-17006 (util/stack.sh
# cluster-start). nginx -t checks the form; rate limits and idempotency
# records of companies whose slots live on different primaries land on
# those primaries; a slot migrated by hand (ASK while it moves, MOVED
# after) keeps its limiter counting; a manual failover and a killed
# primary recover without a reload; CLUSTERDOWN is "Redis down". A fake
# one-node cluster (17010) answers what a real one does not send to our
# one-key scripts: TRYAGAIN, MOVED to ":port", endless redirections.

use strict;
use warnings;

use File::Path qw(make_path);
use IO::Select;
use IO::Socket::INET;
use POSIX ();
use Test::More;
use Time::HiRes qw(sleep time);
use Worksible::Test qw(company api_key plan http_config nginx_start
    nginx_stop http psql_value);

my $top = $ENV{WORKSIBLE_TOP};
my @ports = (17001 .. 17006);

# --- nginx -t ---------------------------------------------------------------

my $tprefix = "$top/t/servroot_cluster_t";
make_path("$tprefix/conf", "$tprefix/logs");

sub nginx_t {
    my ($redis) = @_;
    open my $fh, '>', "$tprefix/conf/nginx.conf" or die;
    print $fh "load_module $ENV{TEST_NGINX_LOAD_MODULES};\n",
        "error_log logs/error.log;\npid logs/nginx.pid;\nevents {}\n",
        "http {\nworksible_redis $redis;\n}\n";
    close $fh;
    local $ENV{ASAN_OPTIONS} = ($ENV{ASAN_OPTIONS} // '') . ':detect_leaks=0';
    my $out = `$ENV{TEST_NGINX_BINARY} -t -p $tprefix -c conf/nginx.conf 2>&1`;
    return ($? >> 8, $out);
}

for my $c (
    [ '127.0.0.1:17001 127.0.0.1:17002 cluster timeout=200ms', 0,
      qr/syntax is ok/, 'seed nodes of a cluster' ],
    [ '127.0.0.1:17001 cluster', 0, qr/syntax is ok/, 'one seed node' ],
    [ '127.0.0.1:17001 127.0.0.1:17002', 1,
      qr/several addresses need "cluster" or sentinel=NAME/, 'several addresses without cluster' ],
    [ '127.0.0.1:17001 cluster db=1', 1,
      qr/a Redis Cluster has db 0 only/, 'a cluster with db=1' ],
    [ 'unix:/tmp/redis.sock cluster', 1,
      qr/"unix:\/tmp\/redis.sock": a Redis Cluster node is host\[:port\]/,
      'a unix socket as a cluster node' ],
    [ '127.0.0.1:17001 127.0.0.1:notaport cluster', 1,
      qr/worksible_redis "127.0.0.1:notaport" not resolved/, 'a malformed seed' ],
    [ '127.0.0.1:17001 cluster bogus=1', 1,
      qr/invalid worksible_redis parameter "bogus=1"/, 'an unknown parameter' ],
    [ '127.0.0.1:17001 127.0.0.1:17002 cluster sentinel=mymaster', 1,
      qr/"cluster" and sentinel= exclude each other/, 'cluster with sentinel=' ],
    [ '127.0.0.1:17001 sentinel=mymaster cluster', 1,
      qr/"cluster" and sentinel= exclude each other/, 'sentinel= with cluster' ],
) {
    my ($redis, $fails, $re, $name) = @$c;
    my ($code, $out) = nginx_t($redis);
    is($code != 0 ? 1 : 0, $fails, "nginx -t, $name: " . ($fails ? 'fails' : 'passes'));
    like($out, $re, "nginx -t, $name: message") or diag($out);
}

# --- the cluster --------------------------------------------------------------

system("$top/util/stack.sh", 'cluster-start', 'test') == 0
    or BAIL_OUT('util/stack.sh cluster-start failed');
END { system("$top/util/stack.sh", 'cluster-stop', 'test') }

# redis-cli on one node, its answer chomped
sub rc {
    my ($port, @args) = @_;
    open my $fh, '-|', 'redis-cli', '-p', $port, @args or die;
    local $/;
    my $out = <$fh> // '';
    close $fh;
    $out =~ s/\s+\z//;
    return $out;
}

# commands on one connection (ASKING first, for a slot being imported)
sub rc_asking {
    my ($port, @args) = @_;
    my $out = `printf 'ASKING\\n%s\\n' '@args' | redis-cli -p $port`;
    my @l = split /\n/, $out;
    return $l[-1];
}

sub pidof_node {
    my ($port) = @_;
    my $pid = Worksible::Test::slurp("$top/build/test/cluster/$port/redis.pid") // '';
    chomp $pid;
    return $pid;
}

my %dead;

# CLUSTER NODES of a live node: { port => { id, master (port or undef), slots => [[a, b]...] } }
sub nodes {
    for my $p (grep { !$dead{$_} } @ports) {
        my $out = rc($p, 'CLUSTER', 'NODES');
        next unless $out =~ /myself/;
        my (%by_id, %n);
        for my $line (split /\n/, $out) {
            my ($id, $addr, $flags, $master, undef, undef, undef, undef, @slots) = split / /, $line;
            my ($port) = $addr =~ /:(\d+)@/;
            $by_id{$id} = $port;
            $n{$port} = { id => $id, flags => $flags, master_id => $master,
                          slots => [ map { [ /^(\d+)(?:-(\d+))?$/ ? ($1, $2 // $1) : () ] } grep { /^\d/ } @slots ] };
        }
        for my $port (keys %n) {
            $n{$port}{master} = $n{$port}{master_id} eq '-' ? undef : $by_id{ $n{$port}{master_id} };
        }
        return \%n;
    }
    die 'no live node';
}

sub primary_of {
    my ($slot) = @_;
    my $n = nodes();
    for my $port (keys %$n) {
        next if $n->{$port}{flags} =~ /fail|slave/;
        for my $r (@{ $n->{$port}{slots} }) {
            return $port if $slot >= $r->[0] && $slot <= $r->[1];
        }
    }
    return undef;
}

sub replica_of {
    my ($primary) = @_;
    my $n = nodes();
    my ($r) = grep { ($n->{$_}{master} // 0) == $primary && $n->{$_}{flags} !~ /fail/ } sort keys %$n;
    return $r;
}

sub slot_of { rc(17001, 'CLUSTER', 'KEYSLOT', $_[0]) }

# --- nginx on the cluster -------------------------------------------------------

my $server = '
        location /closed/ { worksible_auth on; worksible_rate_limit on;
                            proxy_pass http://127.0.0.1:1958; }
        location /open/ { worksible_auth on;
                          worksible_rate_limit on fail=open;
                          proxy_pass http://127.0.0.1:1958; }
        location /v1/ { worksible_auth on; worksible_idempotency on;
                        worksible_api; }
        location = /health { worksible_health; }';
# two seeds: 17003 is learnt from the slot map
my $http = http_config(redis => '127.0.0.1:17001 127.0.0.1:17002 cluster timeout=300ms connect_timeout=500ms') . '
    server { listen 127.0.0.1:1958; location / { return 200 "ok\n"; } }';

my $prefix = nginx_start(name => 'redis_cluster', port => 1957, workers => 2,
    http => $http, server => $server);

# 20 in 600 s: each request moves the limiter 30 s ahead, its key lives on
my $plan = plan(limit => 20, window => 600);
my $tag = "$$-" . int(rand(1e6));    # emails no other suite uses

# one company on each primary
my (%company, %key);
for (1 .. 40) {
    my $cmp = company(plan => $plan);
    my $p = primary_of(slot_of("worksible:rl:{$cmp}"));
    next if $company{$p};
    $company{$p} = $cmp;
    $key{$cmp} = api_key($cmp, 'company:read freelancers:write')->{key};
    last if keys %company == 3;
}
is(scalar(keys %company), 3, 'three companies, one on each primary');

# both workers have read the slot map
my $deadline = time + 10;
sleep 0.1 until (() = (Worksible::Test::slurp("$prefix/logs/error.log") // '')
                 =~ /slot map from .*16384 of 16384 slots served/g) >= 2
                || time > $deadline;

# GET /closed/x (or /open/x) as $cmp: the response
sub get {
    my ($cmp, $where) = @_;
    return http('GET', '/' . ($where // 'closed') . '/x',
                { Authorization => "Bearer $key{$cmp}" }, timeout => 5);
}

sub remaining {
    my ($res) = @_;
    return ($res->{headers}{ratelimit} // '') =~ /;r=(\d+)/ ? $1 : undef;
}

# --- rate limits and idempotency on three primaries ---------------------------

for my $p (sort keys %company) {
    my $cmp = $company{$p};
    my @r = map { remaining(get($cmp)) } 1 .. 3;
    is_deeply(\@r, [19, 18, 17], "company on $p: three requests counted (r=19, 18, 17)");
    my $pttl = rc($p, 'PTTL', "worksible:rl:{$cmp}");
    cmp_ok($pttl, '>', 0, "its limiter key lives on $p");

    my %h = (Authorization => "Bearer $key{$cmp}", 'Content-Type' => 'application/json',
             'Idempotency-Key' => "cluster-$p");
    my $body = qq({"email":"c$p-$tag\@example.com","name":"Cluster Person","country":"DE"});
    my $first = http('POST', '/v1/freelancers', \%h, body => $body);
    my $again = http('POST', '/v1/freelancers', \%h, body => $body);
    is($first->{status}, 201, "company on $p: an idempotent POST runs: 201");
    is($again->{headers}{'idempotent-replayed'}, 'true', 'its repeat is replayed');
    is($again->{body}, $first->{body}, 'with the same body');
    is(psql_value("SELECT count(*) FROM freelancers WHERE email = 'c$p-$tag\@example.com'"), 1,
       'one row in PostgreSQL');
    is(rc($p, 'HGET', "worksible:idem:{$cmp}:cluster-$p", 'status'), '201',
       "the record lives on $p");
}

like(http('GET', '/health', {})->{body} // '', qr/"redis":"up"/,
     'health: the slot map is read, Redis is up');

# the module computes the slot as Redis does (CRC16, the {company} hash
# tag): every command above went straight to its primary
unlike(Worksible::Test::slurp("$prefix/logs/error.log"), qr/cluster: (MOVED|ASK) /,
       'no command was redirected: each went to the primary of its slot');
for my $cmp (values %company) {
    is(slot_of("worksible:idem:{$cmp}:any-key"), slot_of("worksible:rl:{$cmp}"),
       'a company\'s idempotency records and limiter share a slot');
}

# --- a slot migrated: ASK while it moves, MOVED after ---------------------------

my ($from) = sort keys %company;
my $a_cmp = $company{$from};
my $a_key = "worksible:rl:{$a_cmp}";
my $slot = slot_of($a_key);
my ($to) = grep { $_ ne $from } sort keys %company;
my $from_id = rc($from, 'CLUSTER', 'MYID');
my $to_id = rc($to, 'CLUSTER', 'MYID');

is(rc($to, 'CLUSTER', 'SETSLOT', $slot, 'IMPORTING', $from_id), 'OK', "slot $slot importing on $to");
is(rc($from, 'CLUSTER', 'SETSLOT', $slot, 'MIGRATING', $to_id), 'OK', "and migrating on $from");
is(rc($from, 'MIGRATE', '127.0.0.1', $to, '', 0, 5000, 'KEYS', $a_key), 'OK',
   'its limiter key migrated');

my $res = get($a_cmp);
is($res->{status}, 200, 'during the migration: 200 (ASK followed)');
is(remaining($res), 16, 'the counter continues on the importing node (r=16)');
cmp_ok(rc_asking($to, "PTTL $a_key"), '>', 0, "the key is on $to");

for my $p (grep { !$dead{$_} } @ports) {
    rc($p, 'CLUSTER', 'SETSLOT', $slot, 'NODE', $to_id);
}
$deadline = time + 10;
sleep 0.2 until primary_of($slot) eq $to || time > $deadline;
is(primary_of($slot), $to, "slot $slot now served by $to");

my @r = map { remaining(get($a_cmp)) } 1 .. 2;
is_deeply(\@r, [15, 14], 'after the migration: MOVED followed, the counter continues');
cmp_ok(rc($to, 'PTTL', $a_key), '>', 0, "the key is on $to");

my $log = Worksible::Test::slurp("$prefix/logs/error.log");
like($log, qr/worksible redis cluster: ASK $slot 127\.0\.0\.1:$to/, 'the ASK was followed');
like($log, qr/worksible redis cluster: MOVED $slot 127\.0\.0\.1:$to/, 'the MOVED was followed');

# --- a manual failover (CLUSTER FAILOVER on a replica) -------------------------

my $replica = replica_of($to);
ok($replica, "$to has a replica");
is(rc($replica, 'CLUSTER', 'FAILOVER'), 'OK', "CLUSTER FAILOVER on $replica");
$deadline = time + 15;
sleep 0.2 until (primary_of($slot) // '') eq $replica || time > $deadline;
is(primary_of($slot), $replica, "$replica is the primary of slot $slot");

@r = map { remaining(get($a_cmp)) } 1 .. 2;
is_deeply(\@r, [13, 12], 'after the failover: no reload, the counter continues');
cmp_ok(rc($replica, 'PTTL', $a_key), '>', 0, "the key is on $replica");

# --- a killed primary: its replica takes over ---------------------------------

my ($b_primary) = grep { $_ ne $replica && $_ ne $to && $_ ne $from } sort keys %company;
is($b_primary, 17003, 'the primary killed is not a seed');
my $b_cmp = $company{$b_primary};
my $b_replica = replica_of($b_primary);
ok($b_replica, "$b_primary has a replica");
@r = map { remaining(get($b_cmp)) } 1 .. 2;
is_deeply(\@r, [16, 15], "company on $b_primary: counted");
rc($b_primary, 'WAIT', 1, 1000);   # the replica has the writes

kill 'KILL', pidof_node($b_primary);
$dead{$b_primary} = 1;

$res = get($b_cmp);
is($res->{status}, 503, 'its primary killed, fail=closed: 503');
like($res->{headers}{'retry-after'} // '', qr/^\d+$/, 'with Retry-After');
$res = get($b_cmp, 'open');
is($res->{status}, 200, 'fail=open: 200');
ok(!exists $res->{headers}{ratelimit}, 'without rate-limit headers');
is(remaining(get($a_cmp)), 11, 'the other primaries serve on');

$deadline = time + 30;
do { sleep 0.2; $res = get($b_cmp) }
    until ($res->{status} == 200 && $res->{headers}{ratelimit}) || time > $deadline;
is($res->{status}, 200, "$b_replica took over: 200 again, without a reload");
cmp_ok(remaining($res), '<=', 14, 'the counter survived the failover');
cmp_ok(rc($b_replica, 'PTTL', "worksible:rl:{$b_cmp}"), '>', 0, "the key is on $b_replica");
like(Worksible::Test::slurp("$prefix/logs/error.log"),
     qr/cluster: 127\.0\.0\.1:$b_primary left the slot map while down, its connection is closed/,
     'the dead primary, learnt from the map, is probed no more');

# every worker, busy or not, learns the new map (its breaker's probes of
# the dead node read it again): health is up on both
my $ups = 0;
$deadline = time + 20;
while ($ups < 10 && time < $deadline) {
    $res = http('GET', '/health', {});
    $ups = ($res->{status} == 200) ? $ups + 1 : 0;
    sleep 0.1;
}
is($ups, 10, 'health: up again on every worker, without a reload');

# --- CLUSTERDOWN: a primary without a replica dies --------------------------------

kill 'KILL', pidof_node($b_replica);
$dead{$b_replica} = 1;
$deadline = time + 20;
sleep 0.2 until rc($replica, 'CLUSTER', 'INFO') =~ /cluster_state:fail/ || time > $deadline;
like(rc($replica, 'CLUSTER', 'INFO'), qr/cluster_state:fail/, 'the cluster is down');

$res = get($a_cmp);
is($res->{status}, 503, 'CLUSTERDOWN, fail=closed: 503');
like($res->{body} // '', qr/"code":"service_unavailable"/, 'service_unavailable');
$res = get($a_cmp, 'open');
is($res->{status}, 200, 'CLUSTERDOWN, fail=open: 200');
my %h = (Authorization => "Bearer $key{$a_cmp}", 'Content-Type' => 'application/json',
         'Idempotency-Key' => 'cluster-down');
$res = http('POST', '/v1/freelancers', \%h,
            body => qq({"email":"down-$tag\@example.com","name":"Down","country":"DE"}));
is($res->{status}, 503, 'CLUSTERDOWN: an idempotent POST is refused: 503');
is(psql_value("SELECT count(*) FROM freelancers WHERE email = 'down-$tag\@example.com'"), 0,
   'and does not run');
like(Worksible::Test::slurp("$prefix/logs/error.log"), qr/worksible redis cluster: CLUSTERDOWN/,
     'CLUSTERDOWN is logged');

nginx_stop();

# --- TRYAGAIN and redirections no real cluster sends here -----------------------
#
# A one-node "cluster" on 17010 that serves every slot and answers each
# company's commands as told, then passes them to the test Redis (16380):
# TRYAGAIN once (a multi-key command during a resharding, which our
# one-key scripts never are), TRYAGAIN always, MOVED to ":17010" (an empty
# host: the node that answered) once, MOVED to itself always.

my %mode;
for my $m (qw(tryagain_once tryagain_always moved_empty moved_always)) {
    my $cmp = company(plan => $plan);
    $mode{$cmp} = $m;
    $key{$cmp} = api_key($cmp, 'company:read')->{key};
}
my %cmp_of = reverse %mode;
my $seen = "$top/t/servroot_redis_cluster.fake";
unlink $seen;

# one RESP reply from $fh, its bytes
sub resp_reply {
    my ($fh) = @_;
    my $line = <$fh> // die 'redis closed';
    my $t = substr($line, 0, 1);
    if ($t eq '$') {
        my ($n) = $line =~ /^\$(-?\d+)/;
        return $line if $n < 0;
        read($fh, my $data, $n + 2) == $n + 2 or die 'short read';
        return $line . $data;
    }
    if ($t eq '*') {
        my ($n) = $line =~ /^\*(-?\d+)/;
        return $line . join('', map { resp_reply($fh) } 1 .. ($n > 0 ? $n : 0));
    }
    return $line;
}

# one RESP command at the head of $$buf, removed; undef if not all there
sub resp_command {
    my ($buf) = @_;
    return undef unless $$buf =~ /\A\*(\d+)\r\n/;
    my ($n, $pos, @args) = ($1, length($&));
    for (1 .. $n) {
        return undef unless substr($$buf, $pos) =~ /\A\$(\d+)\r\n/;
        my $len = $1;
        $pos += length($&);
        return undef if length($$buf) < $pos + $len + 2;
        push @args, substr($$buf, $pos, $len);
        $pos += $len + 2;
    }
    substr($$buf, 0, $pos) = '';
    return \@args;
}

my $fake = fork // die "fork: $!";
if ($fake == 0) {
    my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1:17010', Listen => 16,
                                  ReuseAddr => 1) or POSIX::_exit(1);
    my ($rhost, $rport) = split /:/, $ENV{TEST_NGINX_REDIS};
    my $redis = IO::Socket::INET->new("$rhost:$rport") or POSIX::_exit(1);
    my $sel = IO::Select->new($l);
    my (%buf, %count);
    open my $log, '>>', $seen or POSIX::_exit(1);
    $log->autoflush(1);
    while (1) {
        for my $s ($sel->can_read) {
            if ($s == $l) { $sel->add($l->accept); next }
            my $n = sysread($s, my $in, 65536);
            if (!$n) { $sel->remove($s); close $s; next }
            $buf{$s} .= $in;
            while (my $cmd = resp_command(\$buf{$s})) {
                my $name = uc $cmd->[0];
                my $out;
                if ($name eq 'PING') { $out = "+PONG\r\n" }
                elsif ($name eq 'ASKING') { $out = "+OK\r\n" }
                elsif ($name eq 'CLUSTER') {
                    $out = "*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n\$9\r\n127.0.0.1\r\n:17010\r\n";
                } else {
                    my ($cmp) = ($cmd->[3] // '') =~ /\{([^}]+)\}/;
                    my $m = $mode{$cmp // ''} // '';
                    my $c = ++$count{$cmp // ''};
                    if (($m eq 'tryagain_once' && $c == 1) || $m eq 'tryagain_always') {
                        $out = "-TRYAGAIN Multiple keys request during rehashing of slot\r\n";
                    } elsif ($m eq 'moved_empty' && $c == 1) {
                        $out = "-MOVED 7 :17010\r\n";
                    } elsif ($m eq 'moved_always') {
                        $out = "-MOVED 7 127.0.0.1:17010\r\n";
                    } else {
                        print $redis '*' . @$cmd . "\r\n",
                            map { '$' . length($_) . "\r\n$_\r\n" } @$cmd;
                        $out = resp_reply($redis);
                    }
                    print $log "$m $name " . ($out =~ /^-(\w+)/ ? $1 : 'served') . "\n";
                }
                syswrite($s, $out);
            }
        }
    }
}
END { if ($fake) { kill 'KILL', $fake; waitpid($fake, 0) } }

for (1 .. 50) { last if IO::Socket::INET->new('127.0.0.1:17010'); sleep 0.1 }

$prefix = nginx_start(name => 'redis_cluster_fake', port => 1957, workers => 1,
    http => http_config(redis => '127.0.0.1:17010 cluster timeout=1s') . '
    server { listen 127.0.0.1:1958; location / { return 200 "ok\n"; } }',
    server => $server);

sub fake_seen {
    my ($m) = @_;
    return join ' ', map { /^\S+ \S+ (\S+)/ } grep { /^$m / }
        split /\n/, Worksible::Test::slurp($seen) // '';
}

$res = get($cmp_of{tryagain_once});
is($res->{status}, 200, 'TRYAGAIN: sent again, 200');
is(remaining($res), 19, 'and counted once');
like(fake_seen('tryagain_once'), qr/^TRYAGAIN (NOSCRIPT )?served$/,
     'the node saw the command again after its TRYAGAIN');

$res = get($cmp_of{tryagain_always});
is($res->{status}, 503, 'TRYAGAIN without end: 503 (Redis down, fail=closed)');
is(fake_seen('tryagain_always'), join(' ', ('TRYAGAIN') x 6),
   'after 5 retries');

$res = get($cmp_of{moved_empty});
is($res->{status}, 200, 'MOVED to ":port" (the node that answered): followed, 200');
like(fake_seen('moved_empty'), qr/^MOVED (NOSCRIPT )?served$/, 'the node saw it again');

$res = get($cmp_of{moved_always});
is($res->{status}, 503, 'MOVED without end: 503');
is(fake_seen('moved_always'), join(' ', ('MOVED') x 6), 'after 5 redirections');
like(Worksible::Test::slurp("$prefix/logs/error.log"),
     qr/worksible redis cluster: more than 5 redirections, the last "MOVED 7 127.0.0.1:17010"/,
     'the error log says so');

nginx_stop();

done_testing();
