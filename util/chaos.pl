#!/usr/bin/env perl
# `make chaos`: steady traffic through two nginx servers that share one
# PostgreSQL and one Redis (a private stack, util/stack.sh `chaos`: ports
# 15434 and 16381, under build/chaos/), while the stores fail in the ways
# they fail in production; then it checks what the clients saw.
#
# Traffic (CHAOS_CLIENTS processes, 6 by default, each one request at a
# time, alternating the two servers):
#   GET /v1/freelancers?limit=5                         (a read, one query)
#   POST /v1/freelancers with Idempotency-Key           (our API: a row)
#   POST /svc/things/KEY with Idempotency-Key           (proxy_pass to a
#        service of this script that counts its calls per key, 100 ms each)
# A client retries a POST key like a real one until it has an answer:
# after no answer, a 5xx, 409 in progress or 429 (waiting Retry-After, at
# most 1 s, on the other server). One key in four has its first attempt
# aborted: the connection is closed 1 ms after the request is sent; another
# one in four is sent once more after its 2xx, as by a client whose answer
# the network lost, and must get the same answer; so is every key not
# aborted whose 2xx came during a store fault (until 0.5 s after it).
# Besides, an aborting client sends GETs (half with a well-formed key of a
# random id, which always costs a key lookup; half a valid key's list) and
# closes each 1 ms after sending: 2 every 100 ms, 100 at a time in a storm.
#
# Faults, one after another, CHAOS_GAP (6 s) apart, the cycle repeated for
# CHAOS_SECONDS (180); CHAOS_SHORT=1 runs it once (about a minute):
#   abort storm (3 s), Redis SIGSTOP 150 ms, CLIENT KILL TYPE normal,
#   Redis SIGSTOP 2 s, nginx reload (both), Redis restart (SHUTDOWN SAVE,
#   1 s down, its data kept like a persistent production Redis),
#   PostgreSQL read-only (ALTER SYSTEM default_transaction_read_only, 3 s),
#   PostgreSQL restart (fast stop, 1 s down).
#
# Then it asserts, and exits 1 on any violation (0 when all hold):
#   - no [alert], [emerg] or worker exit in either error log;
#   - every POST key ran at most once: rows of freelancers named after the
#     key, and the service's calls per key (in fleet mode, a service key
#     first run within 0.5 s before a Redis primary's SIGKILL may run again
#     after the failover: its lock can be lost with the primary, the
#     documented bound of asynchronous replication); every 2xx of one key is the
#     same answer (the same freelancer id, the same service run), and a 201
#     of our API has its row;
#   - PostgreSQL backends of the module (pg_stat_activity, application_name
#     nginx-worksible), sampled every 100 ms, never above pool x live nginx
#     workers + one LISTEN connection per live nginx generation (the key
#     cache's revocation channel; counted apart, by its query). Live workers
#     are counted at each sample, so the old workers of a reload that are
#     still finishing count (README: "double that during a reload"); the
#     table shows the steady bound too;
#   - no 5xx but 503 with Retry-After, and those only from a store fault's
#     start to 5 s after the store is back (CHAOS_RECOVERY); no answer at
#     all (a closed connection, 20 s without one) is a violation;
#   - no 4xx but 409 (in progress, or a kept "outcome unknown") on a retry;
#   - every key has a final answer.
# It prints what it did (each fault, when) and what it saw (per fault:
# requests, statuses, max backends, new PostgreSQL sessions, recovery), and
# each violation with its evidence (the request ids, the error log lines).
#
# Everything it writes is under build/chaos/ (nginx prefixes a/ and b/,
# run/ with the raw logs). Everything it started is stopped at the end;
# CHAOS_KEEP=1 leaves the stores running for a look (util/stack.sh stop
# chaos stops them). WORKSIBLE_NGINX and WORKSIBLE_MODULE name another nginx
# and its module (make chaos NGINX_SRC=...).
use strict;
use warnings;

use File::Path qw(make_path remove_tree);
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);

$| = 1;

my $top   = $ENV{WORKSIBLE_TOP} // do { my $d = $0; $d =~ s{/[^/]*$}{}; "$d/.." };
$top = `cd "$top" && pwd`; chomp $top;
my $build = "$top/build";
# fleet mode (util/fleet.sh): three nginx in namespaces wfl-a/b/c, the
# stores on the bridge, started and stopped by fleet.sh
my $fleet = $ENV{CHAOS_FLEET} ? 1 : 0;
my $redis_mode = $fleet ? $ENV{FLEET_REDIS} // 'cluster' : 'single';
my $dir   = $fleet ? "$build/fleet" : "$build/chaos";
my $run   = "$dir/run";

my $nginx  = $ENV{WORKSIBLE_NGINX}  // '/usr/sbin/nginx';
my $module = $ENV{WORKSIBLE_MODULE} // "$build/ngx_worksible_module.so";
my $cli    = "$build/worksible";

my $short    = $ENV{CHAOS_SHORT} ? 1 : 0;
my $seconds  = $ENV{CHAOS_SECONDS} // 180;
my $nclients = $ENV{CHAOS_CLIENTS} // 6;
my $gap      = $ENV{CHAOS_GAP} // 6;
my $recovery = $ENV{CHAOS_RECOVERY} // 5;
my $key_wait = 45;    # a key without a final answer after this: violation

my %port = (pg => 15434, redis => 16381, a => 1931, b => 1932, svc => 1933);
my %addr = (a => '127.0.0.1', b => '127.0.0.1');
my @inst = qw(a b);
my $stores = '127.0.0.1';
if ($fleet) {
    %port = (pg => 15436, pg2 => 15437, redis => 17011,
             a => 1931, b => 1931, c => 1931, svc => 1933);
    %addr = (a => '10.89.0.11', b => '10.89.0.12', c => '10.89.0.13');
    @inst = qw(a b c);
    $stores = '10.89.0.1';
}
my ($POOL, $WORKERS) = (4, 2);
my $APP = 'nginx-worksible';

# the primary, wherever it is (libpq's multi-host: after a promotion too)
$ENV{PGHOST} = $fleet ? "$stores,$stores" : $stores;
$ENV{PGPORT} = $fleet ? "$port{pg},$port{pg2}" : $port{pg};
$ENV{PGTARGETSESSIONATTRS} = 'read-write' if $fleet;
$ENV{PGUSER} = 'worksible';
$ENV{PGDATABASE} = 'worksible';
$ENV{PGCONNECT_TIMEOUT} = 2;
$ENV{WORKSIBLE_KEY_SECRET_FILE} = "$dir/key_secret";

my $main = $$;
my %kids;    # pid => role
my %started; # nginx instance => its master's pid

# --- small helpers -------------------------------------------------------

sub sh { system(@_) == 0 or die "chaos: '@_' failed ($?)\n" }

sub slurp {
    my ($f) = @_;
    open my $fh, '<', $f or return undef;
    local $/;
    return scalar <$fh>;
}

sub spew {
    my ($f, $s) = @_;
    open my $fh, '>', $f or die "chaos: $f: $!";
    print $fh $s;
    close $fh;
}

# psql as the superuser, on the postgres database: the output, chomped
sub psql_su {
    my ($sql, %o) = @_;
    local $ENV{PGOPTIONS} = '-c default_transaction_read_only=off';
    my $db = $o{db} // 'postgres';
    open my $fh, '-|', 'psql', '-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1',
        '-U', 'postgres', '-d', $db, '-c', $sql or die "psql: $!";
    local $/;
    my $out = <$fh> // '';
    close $fh or $o{may_fail} or die "chaos: psql failed on: $sql\n";
    $out =~ s/\s+\z//;
    return $out;
}

# redis(args) on the chaos Redis; redis_at($port, args) on one node of the
# fleet's
sub redis { return redis_at($port{redis}, @_) }

sub redis_at {
    my ($p, @args) = @_;
    my $out = `redis-cli -h $stores -p $p @args 2>&1`;
    $out =~ s/\s+\z//;
    return $out;
}

sub redis_pid { my $p = slurp("$dir/redis.pid") // ''; $p =~ /(\d+)/ ? $1 : undef }

sub master_pid {
    my ($i) = @_;
    my $p = slurp("$dir/$i/logs/nginx.pid") // '';
    return $p =~ /(\d+)/ ? $1 : undef;
}

# the live children (workers) of the given master pids
sub workers_of {
    my %m = map { $_ => 1 } grep { defined } @_;
    my $n = 0;
    opendir my $dh, '/proc' or return 0;
    for my $p (grep { /^\d+$/ } readdir $dh) {
        my $st = slurp("/proc/$p/stat") or next;
        # pid (comm) state ppid
        $n++ if $st =~ /\) (\S) (\d+) / && $1 ne 'Z' && $m{$2};
    }
    return $n;
}

sub json { JSON::PP->new->utf8->canonical }

# --- an HTTP/1.1 client, one request per connection ------------------------

# req($port, $method, $path, \%headers, $body, abort => 1):
# { ts, te, status (0: no answer, -1: aborted by us), ra, code, rid, body }
sub req {
    my ($p, $method, $path, $h, $body, %o) = @_;
    my %r = (ts => time, status => 0);
    my $s = IO::Socket::INET->new(PeerAddr => $o{addr} // '127.0.0.1',
                                  PeerPort => $p, Timeout => 5);
    unless ($s) { $r{te} = time; $r{err} = "connect: $!"; return \%r }
    my $q = "$method $path HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n";
    $q .= "$_: $h->{$_}\r\n" for sort keys %$h;
    $q .= "Content-Type: application/json\r\nContent-Length: "
        . length($body) . "\r\n" if defined $body;
    $q .= "\r\n" . ($body // '');
    my $w = syswrite($s, $q);
    unless (defined $w && $w == length $q) {
        $r{te} = time; $r{err} = "write: $!"; return \%r;
    }
    if ($o{abort}) {
        sleep 0.001;
        close $s;
        @r{qw(te status)} = (time, -1);
        return \%r;
    }
    my $raw = '';
    my $sel = IO::Select->new($s);
    my $deadline = $r{ts} + 20;
    while (time < $deadline) {
        next unless $sel->can_read($deadline - time);
        my $n = sysread($s, my $buf, 65536);
        last unless $n;
        $raw .= $buf;
    }
    close $s;
    $r{te} = time;
    my ($head, $b) = split /\r\n\r\n/, $raw, 2;
    unless (defined $head && $head =~ m{^HTTP/1\.\d (\d+)}) {
        $r{err} = length $raw ? 'garbled' : 'closed without an answer';
        $r{err} = 'no answer in 20 s' if $r{te} >= $deadline;
        return \%r;
    }
    $r{status} = $1;
    my %hd;
    for (split /\r\n/, $head) { $hd{lc $1} = $2 if /^([^:]+):\s*(.*)$/ }
    $b //= '';
    if (($hd{'transfer-encoding'} // '') =~ /chunked/i) {
        my $whole = '';
        while ($b =~ s/^([0-9a-fA-F]+)[^\r]*\r\n//) {
            my $n = hex $1;
            last if $n == 0;
            $whole .= substr($b, 0, $n, '');
            $b =~ s/^\r\n//;
        }
        $b = $whole;
    }
    $r{ra}  = $hd{'retry-after'};
    $r{rid} = $hd{'x-request-id'};
    $r{body} = $b;
    $r{code} = $1 if $b =~ /"code":"([^"]+)"/;
    return \%r;
}

# --- the service behind proxy_pass: counts its calls per key --------------

sub service {
    my $srv = IO::Socket::INET->new(LocalAddr => "$stores:$port{svc}",
        Listen => 256, ReuseAddr => 1) or die "chaos: listen $port{svc}: $!";
    my $pid = fork // die;
    if ($pid) { $kids{$pid} = 'service'; return }
    $SIG{CHLD} = 'IGNORE';
    $SIG{TERM} = sub { POSIX::_exit(0) };
    while (1) {
        my $c = $srv->accept or next;
        if (fork) { close $c; next }
        my $in = '';
        while ($in !~ /\r\n\r\n/) {
            sysread($c, my $buf, 4096) or POSIX::_exit(0);
            $in .= $buf;
        }
        my ($head, $body) = split /\r\n\r\n/, $in, 2;
        my ($len) = $head =~ /^Content-Length:\s*(\d+)/mi;
        while (length($body) < ($len // 0)) {
            sysread($c, my $buf, 4096) or last;
            $body .= $buf;
        }
        # a request cut short never ran: a real service would not act on it
        POSIX::_exit(0) if length($body) < ($len // 0);
        my ($method, $path) = $head =~ m{^(\w+) (\S+)};
        my ($key) = $path =~ m{/things/([^/?\s]+)};
        my $runid = sprintf '%d.%.6f', $$, time;
        # the call counts once it arrived, whatever happens to its answer
        open my $fh, '>>', "$run/service.calls" or die;
        syswrite $fh, sprintf("%.6f\t%s\t%s\t%s\n", time, $method,
                              $key // '-', $runid);
        close $fh;
        sleep 0.1;
        my $out = qq({"key":"@{[ $key // '' ]}","run":"$runid"});
        print $c "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
            . "Content-Length: " . length($out)
            . "\r\nConnection: close\r\n\r\n$out";
        close $c;
        POSIX::_exit(0);
    }
}

# --- the clients ------------------------------------------------------------

# the k-th of the nginx that are up, as a load balancer would pick (a server
# being killed is marked down first: run/down-NAME)
sub pick {
    my ($k) = @_;
    my @up = grep { !-e "$run/down-$_" } @inst;
    @up = @inst unless @up;
    return $up[$k % @up];
}

# req() on nginx $i
sub req_at {
    my ($i, $method, $path, $h, $body, %o) = @_;
    return req($port{$i}, $method, $path, $h, $body, %o, addr => $addr{$i});
}

my ($token, $company);

sub logline {
    my ($fh, $n, $kind, $inst, $key, $try, $r, $val, $why) = @_;
    print $fh join("\t", sprintf('%.6f', $r->{ts}), sprintf('%.6f', $r->{te}),
        $n, $kind, $inst, $key // '-', $try, $r->{status}, $r->{ra} // '',
        $r->{code} // '', $r->{rid} // '', $val // '', $r->{err} // '',
        $why // ''), "\n";
}

# a POST key until its final answer: 2xx, or a 4xx that is not 409 in
# progress or 429, or a problem that says the outcome is unknown. With
# $abort_first the first attempt is abandoned 1 ms after it is sent; with
# $lose a 2xx is taken as lost (a client whose answer the network lost)
# and the key is sent once more, which must get the same answer.
sub post_key {
    my ($fh, $n, $kind, $key, $abort_first, $lose) = @_;
    my ($path, $body) = $kind eq 'api'
        ? ('/v1/freelancers',
           qq({"email":"$key\@chaos.example","name":"$key","country":"DE"}))
        : ("/svc/things/$key", qq({"key":"$key"}));
    my $t0 = time;
    my $why = $abort_first ? 'abort' : 'first';
    my $resent = 0;
    for (my $try = 1; ; $try++) {
        my $i = pick($n + $try);
        my $abort = $why eq 'abort';
        my $r = req_at($i, 'POST', $path,
            { Authorization => "Bearer $token", 'Idempotency-Key' => $key },
            $body, abort => $abort);
        my $val;
        if ($r->{status} >= 200 && $r->{status} < 300) {
            my $j = eval { json()->decode($r->{body}) } // {};
            $val = $kind eq 'api' ? $j->{id} // 'none' : $j->{run} // 'none';
        }
        logline($fh, $n, $kind, $i, $key, $try, $r, $val, $why);
        my $s = $r->{status};
        my $code = $r->{code} // '';
        $why = 'retry';
        # and every answer that came during a store fault, when storing it
        # may have failed (not for the aborted keys: one cause at a time)
        $lose = 1 if !$abort_first && !$resent && -e "$run/fault";
        if ($s >= 200 && $s < 300 && $lose) {
            ($lose, $why, $resent) = (0, 'lost', 1);
            sleep 0.05;
            next;
        }
        return if $code =~ /unknown/;
        return if $s >= 200 && $s < 300;
        return if $s >= 400 && $s < 500 && $s != 409 && $s != 429;
        if (time - $t0 > $key_wait) {
            logline($fh, $n, $kind, '-', $key, $try,
                { ts => time, te => time, status => 'gaveup' });
            return;
        }
        my $wait = $s == -1 ? 0.05 : $s == 0 ? 0.2 : ($r->{ra} // 0.2);
        $wait = 1 if $wait > 1;
        sleep $wait + rand(0.05);
    }
}

sub client {
    my ($n) = @_;
    my $pid = fork // die;
    if ($pid) { $kids{$pid} = "client $n"; return }
    srand($$ ^ time);
    my $drain = 0;
    $SIG{USR1} = sub { $drain = 1 };
    open my $fh, '>', "$run/client-$n.log" or die;
    $fh->autoflush(1);
    my ($seq, $op) = (0, $n);
    until ($drain) {
        my $kind = (qw(get api svc))[$op++ % 3];
        if ($kind eq 'get') {
            my $i = pick($op);
            my $r = req_at($i, 'GET', '/v1/freelancers?limit=5',
                        { Authorization => "Bearer $token" });
            logline($fh, $n, 'get', $i, undef, 1, $r);
        } else {
            # apart, so that each cause of a second run shows on its own
            my $r = rand;
            post_key($fh, $n, $kind, sprintf('c%d-%s-%d', $n, $kind, ++$seq),
                     $r < 0.25, $r >= 0.25 && $r < 0.5);
        }
        sleep 0.01;
    }
    close $fh;
    POSIX::_exit(0);
}

sub aborter {
    my $pid = fork // die;
    if ($pid) { $kids{$pid} = 'aborter'; return }
    my $stop = 0;
    $SIG{TERM} = sub { $stop = 1 };
    open my $fh, '>', "$run/aborts.log" or die;
    $fh->autoflush(1);
    my @a = ('a' .. 'z', 0 .. 9);
    my @A = ('a' .. 'z', 'A' .. 'Z', 0 .. 9);
    until ($stop) {
        my $storm = -e "$run/storm";
        my $n = $storm ? 100 : 2;
        my @s;
        for my $k (1 .. $n) {
            my $tok = $k % 2
                ? 'wsk_live_' . join('', map { $a[rand @a] } 1 .. 12) . '_'
                  . join('', map { $A[rand @A] } 1 .. 32)
                : $token;
            my $i = pick($k);
            my $s = IO::Socket::INET->new(PeerAddr => $addr{$i},
                PeerPort => $port{$i}, Timeout => 2) or next;
            syswrite $s, "GET /v1/freelancers?limit=20 HTTP/1.1\r\n"
                . "Host: localhost\r\nAuthorization: Bearer $tok\r\n\r\n";
            push @s, $s;
        }
        sleep 0.001;
        close $_ for @s;
        printf $fh "%.6f\t%d\n", time, scalar @s;
        sleep $storm ? 0.2 : 0.1;
    }
    POSIX::_exit(0);
}

# every ~100 ms: the module's backends (requests, LISTEN), their pids, the
# database's session count, the live nginx workers
sub sampler {
    my $pid = fork // die;
    if ($pid) { $kids{$pid} = 'sampler'; return }
    my $stop = 0;
    $SIG{TERM} = sub { $stop = 1 };
    open my $fh, '>', "$run/samples.log" or die;
    $fh->autoflush(1);
    my $q = "SELECT count(*) FILTER (WHERE query NOT LIKE 'LISTEN%'), "
          . "count(*) FILTER (WHERE query LIKE 'LISTEN%'), "
          . "coalesce(string_agg(pid::text, ','), ''), "
          . "(SELECT sessions FROM pg_stat_database WHERE datname = 'worksible') "
          . "FROM pg_stat_activity WHERE application_name = '$APP'";
    local $ENV{PGCONNECT_TIMEOUT} = 1;
    until ($stop) {
        my $t = time;
        # workers counted before and after the query, the larger kept: a
        # reload's old workers may exit while psql runs, their backends
        # going a moment later
        my $w = workers_of(map { master_pid($_) } @inst);
        my $out = `psql -X -At -F '|' -U postgres -d postgres -c "$q" 2>/dev/null`;
        my $w2 = workers_of(map { master_pid($_) } @inst);
        $w = $w2 if $w2 > $w;
        chomp $out;
        my @f = split /\|/, $out, -1;
        if (@f == 4) {
            printf $fh "%.6f\t1\t%d\t%d\t%d\t%s\t%s\n", $t, $f[0], $f[1], $w,
                $f[2], $f[3];
        } else {
            printf $fh "%.6f\t0\t0\t0\t%d\t\t\n", $t, $w;
        }
        my $left = 0.1 - (time - $t);
        sleep $left if $left > 0;
    }
    POSIX::_exit(0);
}

# --- nginx --------------------------------------------------------------------

sub nginx_conf {
    my ($i) = @_;
    my $user = $> == 0 ? 'user root;' : '';
    my $pg = $fleet
        ? "host=$stores,$stores port=$port{pg},$port{pg2} target_session_attrs=read-write"
        : "host=127.0.0.1 port=$port{pg}";
    my $redis = $redis_mode eq 'cluster'
        ? join(' ', map { "$stores:$_" } $port{redis} .. $port{redis} + 2)
          . ' cluster'
        : "$stores:$port{redis}";
    return <<CONF;
load_module $module;
$user
worker_processes $WORKERS;
pid logs/nginx.pid;
error_log logs/error.log info;
events { worker_connections 4096; }
http {
    log_format chaos '\$msec \$status \$request_time "\$request" \$sent_http_x_request_id';
    access_log logs/access.log chaos;
    client_body_temp_path tmp;
    proxy_temp_path tmp;
    fastcgi_temp_path tmp;
    uwsgi_temp_path tmp;
    scgi_temp_path tmp;

    worksible_postgres "$pg dbname=worksible user=worksible_api"
                       pool=$POOL connect_timeout=2s query_timeout=5s;
    worksible_key_secret_file $dir/key_secret;
    worksible_key_cache zone=chaos_keys:1m ttl=30s negative_ttl=5s;
    worksible_redis $redis timeout=100ms;
    # no worksible_auth_failures: random key ids always cost a lookup

    server {
        listen $addr{$i}:$port{$i};
        worksible_errors on;

        location /v1/ {
            worksible_auth on;
            worksible_rate_limit on fail=closed;
            worksible_idempotency on;
            worksible_api;
        }

        location /svc/ {
            worksible_auth on;
            worksible_rate_limit on fail=closed;
            worksible_idempotency on lock=2s;
            proxy_pass http://$stores:$port{svc};
        }
    }
}
CONF
}

# starts the given nginx (all by default), each in its own network
# namespace in fleet mode; a restarted one keeps its logs
sub nginx_start {
    my @which = @_ ? @_ : @inst;
    for my $i (@which) {
        my $p = "$dir/$i";
        remove_tree($p) unless @_;
        make_path("$p/conf", "$p/logs", "$p/tmp");
        spew("$p/conf/nginx.conf", nginx_conf($i));
        my @ns = $fleet ? ('ip', 'netns', 'exec', "wfl-$i") : ();
        sh(@ns, $nginx, '-p', $p, '-c', 'conf/nginx.conf', '-q', '-t');
        sh(@ns, $nginx, '-p', $p, '-c', 'conf/nginx.conf');
    }
    for my $i (@which) {
        for (1 .. 100) {
            last if IO::Socket::INET->new(PeerAddr => "$addr{$i}:$port{$i}");
            sleep 0.05;
        }
    }
    # the pid files and every worker (a master listens before it forks)
    for (1 .. 200) {
        last if workers_of(map { master_pid($_) } @which) == $WORKERS * @which;
        sleep 0.05;
    }
    $started{$_} = master_pid($_) for @which;
}

# stops both; 1 when each master was gone within 10 s
sub nginx_stop {
    my $ok = 1;
    for my $i (@inst) {
        my $pid = delete $started{$i} or next;
        kill 'QUIT', $pid or next;
        my $t = time;
        sleep 0.05 while kill(0, $pid) && time - $t < 10;
        if (kill 0, $pid) {
            $ok = 0;
            kill 'KILL', $pid;
        }
    }
    return $ok;
}

# --- the faults ---------------------------------------------------------------

my @events;    # { name, store, t0, t1 }

sub fault {
    my ($name, $store, $code) = @_;
    spew("$run/fault", '') if $store ne 'none';
    my $e = { name => $name, store => $store, t0 => time };
    $code->($e);
    $e->{t1} //= time;
    push @events, $e;
    if ($store ne 'none') {
        sleep 0.5;
        unlink "$run/fault";
    }
    printf "%7.2f  %-28s back at %7.2f\n", $e->{t0} - $::T0, $name,
        $e->{t1} - $::T0;
}

sub stall {
    my ($s) = @_;
    return sub {
        my $pid = redis_pid() or die "chaos: no redis pid\n";
        kill 'STOP', $pid;
        sleep $s;
        kill 'CONT', $pid;
    };
}

our @cycle = (
    ['abort storm 3 s', 'none', sub {
        spew("$run/storm", ''); sleep 3; unlink "$run/storm" }],
    ['redis SIGSTOP 150 ms', 'redis', stall(0.15)],
    ['redis CLIENT KILL', 'redis', sub {
        my $out = redis('CLIENT', 'KILL', 'TYPE', 'normal');
        $_[0]{note} = "killed $out" }],
    ['redis SIGSTOP 2 s', 'redis', stall(2)],
    ['nginx reload', 'none', sub {
        kill 'HUP', master_pid($_) for @inst }],
    ['redis restart', 'redis', sub {
        my $pid = redis_pid();
        my $t = time;
        redis('SHUTDOWN', 'SAVE');
        sleep 0.05 while $pid && kill(0, $pid) && time - $t < 10;
        sh("$top/util/stack.sh", 'redis-stop', 'chaos') if kill 0, $pid;
        unlink "$dir/redis.pid";
        sleep 1;
        sh("$top/util/stack.sh", 'redis-start', 'chaos') }],
    ['postgres read-only 3 s', 'pg', sub {
        psql_su('ALTER SYSTEM SET default_transaction_read_only = on');
        psql_su('SELECT pg_reload_conf()');
        sleep 3;
        psql_su('ALTER SYSTEM RESET default_transaction_read_only');
        psql_su('SELECT pg_reload_conf()') }],
    ['postgres restart', 'pg', sub {
        sh("$top/util/stack.sh", 'pg-stop', 'chaos');
        sleep 1;
        sh("$top/util/stack.sh", 'pg-start', 'chaos') }],
);

# the fleet's: the Redis Cluster node (port) that serves the company's
# keys, and one of its replicas
sub slot_nodes {
    for my $p ($port{redis} .. $port{redis} + 5) {
        my $slot = redis_at($p, 'CLUSTER', 'KEYSLOT', "'worksible:rl:{$company}'");
        next unless $slot =~ /^\d+$/;
        my (%id, $master, $replica);
        my @nodes = map { [ split / / ] } split /\n/, redis_at($p, 'CLUSTER', 'NODES');
        for my $n (@nodes) {
            next unless $n->[2] =~ /master/ && $n->[2] !~ /fail/;
            for my $range (@$n[8 .. $#$n]) {
                my ($lo, $hi) = split /-/, $range;
                $master = $n if $lo =~ /^\d+$/ && $slot >= $lo && $slot <= ($hi // $lo);
            }
        }
        next unless $master;
        ($replica) = grep { $_->[3] eq $master->[0] && $_->[2] !~ /fail/ } @nodes;
        next unless $replica;
        my ($mp) = $master->[1] =~ /:(\d+)@/;
        my ($rp) = $replica->[1] =~ /:(\d+)@/;
        return ($mp, $rp);
    }
    die "chaos: no Redis Cluster node serves the company's slot\n";
}

# waits (at most $s seconds) until the node on $p is a primary
sub await_primary {
    my ($p, $s) = @_;
    my $t = time;
    sleep 0.05 until redis_at($p, 'ROLE') =~ /^master/ || time - $t > $s;
}

sub kill_nginx {
    my ($i) = @_;
    my $m = master_pid($i) or die "chaos: no nginx $i\n";
    spew("$run/down-$i", '');
    my @w = grep { (slurp("/proc/$_/stat") // '') =~ /^\d+ \(.*?\) \S $m / }
            map { m{/(\d+)$} ? $1 : () } glob '/proc/[0-9]*';
    kill 'KILL', $m, @w;
    delete $started{$i};
}

my @fleet_cycle = (
    ['nginx c SIGKILL, 3 s down', 'nginx', sub {
        $_[0]{inst} = 'c';
        kill_nginx('c');
        sleep 3;
        nginx_start('c');
        unlink "$run/down-c" }],
    ($redis_mode eq 'cluster' ? (
    ['redis CLUSTER FAILOVER', 'redis', sub {
        my ($m, $r) = slot_nodes();
        $_[0]{note} = "$m -> $r";
        redis_at($r, 'CLUSTER', 'FAILOVER');
        await_primary($r, 10) }],
    ['redis primary SIGKILL', 'redis', sub {
        my ($m, $r) = slot_nodes();
        $_[0]{note} = "$m killed, $r promoted";
        $_[0]{lost_writes} = 1;
        my ($pid) = redis_at($m, 'INFO', 'server') =~ /process_id:(\d+)/;
        kill 'KILL', $pid;
        await_primary($r, 15);
        $_[0]{t1} = time;
        sh("$top/util/fleet.sh", 'redis-node-start', $m) }],
    ) : ()),
    ['postgres primary stopped, replica promoted', 'pg', sub {
        sh("$top/util/fleet.sh", 'pg-failover') }],
);
@cycle = @fleet_cycle if $fleet;

# --- the fleet's limiter: one company's plan, hammered through all nginx --

my ($limited_token, $limit_q, $limit_w) = ('', 20, 4);

sub limiter {
    my $pid = fork // die;
    if ($pid) { $kids{$pid} = 'limiter'; return }
    my $stop = 0;
    $SIG{TERM} = sub { $stop = 1 };
    open my $fh, '>', "$run/limiter.log" or die;
    $fh->autoflush(1);
    my $k = 0;
    until ($stop) {
        my $i = pick($k++);
        my $r = req_at($i, 'GET', '/v1/freelancers?limit=1',
                       { Authorization => "Bearer $limited_token" });
        printf $fh "%.6f\t%.6f\t%s\t%s\n", $r->{ts}, $r->{te}, $i, $r->{status};
        sleep 0.05;
    }
    POSIX::_exit(0);
}

# --- set up, run ----------------------------------------------------------------

sub cleanup {
    return unless $$ == $main;
    my $redis = redis_pid();
    kill 'CONT', $redis if $redis;    # stopped by a stall that was cut short
    kill 'TERM', keys %kids;
    kill 'KILL', grep { $kids{$_} =~ /client/ } keys %kids;
    nginx_stop();
    1 while waitpid(-1, WNOHANG) > 0;
}

$SIG{INT} = $SIG{TERM} = sub { exit 2 };

END {
    if ($$ == $main) {
        local $?;
        cleanup();
        system("$top/util/stack.sh", 'stop', 'chaos')
            unless $ENV{CHAOS_KEEP} || $fleet;
    }
}

die "chaos: $module is missing: run make\n" unless -f $module;
die "chaos: $cli is missing: run make\n" unless -x $cli;

sh("$top/util/stack.sh", 'start', 'chaos') unless $fleet;
# a run stopped midway may have left PostgreSQL read-only
psql_su('ALTER SYSTEM RESET default_transaction_read_only');
psql_su('SELECT pg_reload_conf()');
psql_su('DROP DATABASE IF EXISTS worksible WITH (FORCE)');
psql_su('CREATE DATABASE worksible OWNER worksible');
sh("$cli migrate >/dev/null");
redis('FLUSHALL') unless $fleet;    # the fleet's stores are made afresh
unlink "$dir/dump.rdb";
remove_tree($run);
make_path($run);

psql_su("INSERT INTO plans (name, api_access, rate_limit, rate_window)
         VALUES ('chaos', true, 100000000, 60)", db => 'worksible');
{
    my $out = `$cli company create --name Chaos --plan chaos --currency EUR --json`;
    $company = json()->decode($out)->{id} or die "chaos: company create\n";
    $out = `$cli key create --company $company --scopes 'freelancers:read freelancers:write' --json 2>/dev/null`;
    $token = json()->decode($out)->{key} or die "chaos: key create\n";
}
if ($fleet) {
    psql_su("INSERT INTO plans (name, api_access, rate_limit, rate_window)
             VALUES ('fleetlimit', true, $limit_q, $limit_w)", db => 'worksible');
    my $out = `$cli company create --name Limited --plan fleetlimit --currency EUR --json`;
    my $c = json()->decode($out)->{id} or die "chaos: company create\n";
    $out = `$cli key create --company $c --scopes 'freelancers:read' --json 2>/dev/null`;
    $limited_token = json()->decode($out)->{key} or die "chaos: key create\n";
}

service();
nginx_start();
sampler();
aborter();
limiter() if $fleet;
our $T0 = time;
client($_) for 1 .. $nclients;

push @events, { name => 'warm-up, no fault', store => 'none', t0 => $T0,
                t1 => $T0 };
sleep 4;
printf "chaos: %s run, %d clients, %d nginx (%d workers, pool %d), "
    . "faults %d s apart\n", $short || $fleet ? 'short' : "${seconds} s",
    $nclients, scalar @inst, $WORKERS, $POOL, $gap;
do {
    for my $f (@cycle) {
        fault(@$f);
        sleep $gap;
    }
} until $short || $fleet || time - $T0 >= $seconds;

# the clients finish their keys; the rest stops
kill 'USR1', grep { $kids{$_} =~ /client/ } keys %kids;
my $dl = time + $key_wait + 25;
while (grep { $kids{$_} =~ /client/ } keys %kids) {
    my $pid = waitpid(-1, WNOHANG);
    if ($pid > 0) { delete $kids{$pid}; next }
    last if time > $dl;
    sleep 0.1;
}
my $stuck = grep { $kids{$_} =~ /client/ } keys %kids;
kill 'TERM', grep { $kids{$_} =~ /sampler|aborter|service|limiter/ } keys %kids;
my $t_done = time;
my $stopped = nginx_stop();
kill 'KILL', keys %kids;
1 while waitpid(-1, WNOHANG) > 0;
%kids = ();

# --- what was seen ----------------------------------------------------------------

my @viol;    # [ assertion, evidence ]
sub violation { push @viol, [ $_[0], $_[1], $_[2] // '' ] }  # assertion, evidence, class

my @reqs;
for my $f (glob "$run/client-*.log") {
    open my $fh, '<', $f or die;
    while (<$fh>) {
        chomp;
        my @x = split /\t/, $_, -1;
        push @reqs, { ts => $x[0], te => $x[1], client => $x[2], kind => $x[3],
            inst => $x[4], key => $x[5], try => $x[6], status => $x[7],
            ra => $x[8], code => $x[9], rid => $x[10], val => $x[11],
            err => $x[12], why => $x[13] // '' };
    }
}
@reqs = sort { $a->{ts} <=> $b->{ts} } @reqs;

my @samples;
{
    open my $fh, '<', "$run/samples.log" or die;
    while (<$fh>) {
        chomp;
        my @x = split /\t/, $_, -1;
        push @samples, { t => $x[0], ok => $x[1], req => $x[2], listen => $x[3],
            w => $x[4], pids => $x[5], sessions => $x[6] };
    }
}

my $aborts = 0;
{
    open my $fh, '<', "$run/aborts.log" or die;
    while (<$fh>) { $aborts += (split /\t/)[1] }
}

my (%errlog, %acclog);
for my $i (@inst) {
    $errlog{$i} = [ split /\n/, slurp("$dir/$i/logs/error.log") // '' ];
    $acclog{$i} = [ map { s/^(\d+\.\d+)/sprintf 't=%.3f', $1 - $::T0/er }
                    split /\n/, slurp("$dir/$i/logs/access.log") // '' ];
}

sub evidence_rid {
    my ($rid) = @_;
    return () unless $rid;
    return map { my $i = $_; map { "  $i/error.log: $_" }
                 grep { index($_, $rid) >= 0 } @{ $errlog{$i} } } @inst;
}

sub fmt_req {
    my ($r) = @_;
    return sprintf '  %s t=%.3f-%.3f %s %s key=%s try=%s -> %s%s%s%s%s%s',
        $r->{client}, $r->{ts} - $::T0, $r->{te} - $::T0, $r->{inst},
        $r->{kind}, $r->{key}, "$r->{try}($r->{why})", $r->{status},
        $r->{ra} ne '' ? " Retry-After=$r->{ra}" : '',
        $r->{code} ne '' ? " $r->{code}" : '',
        $r->{rid} ne '' ? " $r->{rid}" : '',
        $r->{val} ne '' ? " answer=$r->{val}" : '',
        $r->{err} ne '' ? " ($r->{err})" : '';
}

# 1. error logs
for my $i (@inst) {
    my @bad = grep { /\[(alert|emerg)\]|exited on signal|exited with code [1-9]/ }
              @{ $errlog{$i} };
    violation("no [alert], [emerg] or worker exit ($i/logs/error.log)",
              join "\n", map { "  $_" } @bad[0 .. ($#bad < 9 ? $#bad : 9)],
              @bad > 10 ? ('  ... ' . (@bad - 10) . ' more') : ())
        if @bad;
}
violation('nginx stops within 10 s of QUIT', '  a master was still running: killed')
    unless $stopped;
violation('every client finished its keys',
          "  $stuck client(s) still retrying " . ($key_wait + 25) . ' s after the end')
    if $stuck;

# 2. at most once, one answer per key
my (%rows, %rowid);
for (split /\n/, psql_su("SELECT name, count(*), string_agg(id, ',') "
        . "FROM freelancers WHERE company_id = '$company' GROUP BY name",
        db => 'worksible')) {
    my ($k, $n, $ids) = split /\|/;
    ($rows{$k}, $rowid{$k}) = ($n, $ids);
}
my %calls;
my %call_t;
for (split /\n/, slurp("$run/service.calls") // '') {
    my ($t, undef, $k, $runid) = split /\t/;
    push @{ $calls{$k} }, $runid;
    $call_t{$runid} = $t - $::T0;
}
my (%bykey, %twice, @lost_locks);
my @lost_writes = grep { $_->{lost_writes} } @events;
for my $r (@reqs) {
    next if $r->{key} eq '-';
    push @{ $bykey{$r->{key}} }, $r;
}
my %keys_by = (api => 0, svc => 0);
my %outcome = (answered => 0, unknown => 0, gaveup => 0, other => 0);
for my $k (sort keys %bykey) {
    my @rs = @{ $bykey{$k} };
    my $kind = $rs[0]{kind};
    $keys_by{$kind}++;
    my $ran = $kind eq 'api' ? $rows{$k} // 0 : scalar @{ $calls{$k} // [] };
    my @ok = grep { $_->{status} =~ /^2/ } @rs;
    my %answers = map { $_->{val} => 1 } @ok;
    my $last = $rs[-1];
    # what made the client send the key again (retries follow a resend)
    my $class = $rs[0]{why} eq 'abort'
                    ? 'the first attempt aborted 1 ms after sending'
              : (grep { $_->{why} eq 'lost' } @rs)
                    ? 'the key sent again after its 2xx (a lost answer)'
              : (grep { $_->{why} eq 'retry' } @rs)
                    ? 'retried after a failed attempt (5xx, 409, no answer)'
              : 'a single attempt';
    my @log = map { my $i = $_; map { "  $i/error.log: $_" }
                    grep { index($_, "}:$k\"") >= 0 || index($_, "\"$k\"") >= 0
                           || index($_, "/things/$k ") >= 0 }
                    @{ $errlog{$i} } } @inst;
    push @log, map { my $i = $_; map { "  $i/access.log: $_" }
                     grep { index($_, "/things/$k ") >= 0 }
                     @{ $acclog{$i} } } @inst if $kind eq 'svc';
    my $ev = join "\n", (map { fmt_req($_) } @rs), @log,
        $kind eq 'api' ? "  freelancers rows named $k: $ran ("
                         . ($rowid{$k} // '') . ')'
                       : "  service calls for $k: $ran ("
                         . join(', ', map { sprintf 'run %s at t=%.3f', $_, $call_t{$_} }
                                      @{ $calls{$k} // [] }) . ')',
        map { evidence_rid($_->{rid}) } @rs;
    # a service key whose lock a Redis primary acknowledged just before it
    # was killed may be lost with it (asynchronous replication), and its
    # retry after the failover runs again: the documented bound (README,
    # Deployment, "Writes lost in a failover"); our API's keys have
    # PostgreSQL's record and never may
    my $first = $ran > 1 && $kind eq 'svc' ? $call_t{ $calls{$k}[0] } + $::T0 : undef;
    if (defined $first
        && grep { $first >= $_->{t0} - 0.5 && $first <= $_->{t1} } @lost_writes)
    {
        push @lost_locks, $ev;
    } elsif ($ran > 1) {
        violation("every POST key ran at most once ($kind)", $ev, $class);
        $twice{$kind}{ $rs[0]{ts} } = 1;
    }
    if (keys %answers > 1) {
        violation("one answer per key: every 2xx of a key is the same ($kind)",
                  $ev, $class);
    }
    if (@ok && $kind eq 'api' && $ran != 1) {
        violation("a 201 of our API has its row", $ev);
    }
    if (@ok && $kind eq 'api' && $rowid{$k} && $ok[0]{val} ne $rowid{$k}) {
        violation("the 201 names the row that was made", $ev);
    }
    if (@ok && $kind eq 'svc' && $ran && !grep { $_ eq $ok[0]{val} } @{ $calls{$k} }) {
        violation("the 2xx is the service's answer", $ev);
    }
    if ($last->{status} eq 'gaveup') {
        $outcome{gaveup}++;
        violation("every key has a final answer within $key_wait s", $ev);
    } elsif (($last->{code} // '') =~ /unknown/) {
        $outcome{unknown}++;
    } elsif ($last->{status} =~ /^2/) {
        $outcome{answered}++;
    } else {
        $outcome{other}++;
    }
}

# 3. statuses: every 5xx, 4xx and missing answer is weighed
my @store_faults = grep { $_->{store} ne 'none' } @events;
sub in_store_fault {
    my ($r) = @_;
    for my $e (@store_faults) {
        return $e if $r->{te} >= $e->{t0} && $r->{ts} <= $e->{t1} + $recovery;
    }
    return undef;
}
my %bad_by;    # assertion => [requests]
for my $r (@reqs) {
    my $s = $r->{status};
    next if $s eq 'gaveup' || $s == -1;
    next if $s =~ /^[23]/;
    if ($s == 0) {
        # in flight on, or sent to, a server being killed: the client saw
        # its connection close (a load balancer takes it out)
        next if grep { $_->{store} eq 'nginx' && $_->{inst} eq $r->{inst}
                       && $r->{te} >= $_->{t0} && $r->{ts} <= $_->{t1} } @events;
        push @{ $bad_by{'every request (not aborted) gets an answer'} }, $r;
    } elsif ($s >= 500) {
        next if ($r->{code} // '') =~ /unknown/;
        if ($s != 503 || $r->{ra} eq '') {
            push @{ $bad_by{'no 5xx but 503 with Retry-After (README, When something fails)'} }, $r;
        } elsif (!in_store_fault($r)) {
            push @{ $bad_by{"503 only during a store fault or within ${recovery} s of the store's return"} }, $r;
        }
    } elsif ($s >= 400) {
        next if $s == 409 && $r->{key} ne '-' && $r->{try} > 1
                && ($r->{code} // '') =~ /in_progress|unknown/;
        next if $s == 429 && $r->{key} ne '-';
        push @{ $bad_by{'no 4xx for valid requests but 409 on a retry'} }, $r;
    }
}
for my $a (sort keys %bad_by) {
    my @rs = @{ $bad_by{$a} };
    my @show = @rs[0 .. ($#rs < 7 ? $#rs : 7)];
    violation("$a: " . scalar(@rs) . ' requests',
              join "\n", (map { (fmt_req($_), evidence_rid($_->{rid})) } @show),
              @rs > 8 ? ('  ... ' . (@rs - 8) . ' more') : ());
}

# 4. backends at every sample
my $steady = $POOL * $WORKERS * @inst + @inst;
my @over;
my $pg_samples = 0;
for my $s (@samples) {
    next unless $s->{ok};
    $pg_samples++;
    # a killed server's backends outlive its workers a moment
    next if grep { $_->{store} eq 'nginx' && $s->{t} >= $_->{t0}
                   && $s->{t} <= $_->{t0} + 2 } @events;
    my $w = $s->{w} || $WORKERS * @inst;
    my $gens = int(($w + $WORKERS - 1) / $WORKERS);
    $s->{bound} = $POOL * $w + $gens;
    push @over, $s if $s->{req} > $POOL * $w || $s->{req} + $s->{listen} > $s->{bound};
}
violation('PostgreSQL backends <= pool x live workers (+ 1 LISTEN per nginx generation) at every sample: '
          . scalar(@over) . ' samples over',
          join "\n", map { sprintf '  t=%.2f: %d request + %d LISTEN backends, %d live workers, bound %d',
                           $_->{t} - $::T0, $_->{req}, $_->{listen}, $_->{w}, $_->{bound} }
                     @over[0 .. ($#over < 9 ? $#over : 9)])
    if @over;
violation('the sampler saw PostgreSQL', '  no sample') unless $pg_samples;

# 5. the fleet: the limited company's plan holds across the three nginx.
# GCRA lets q requests pass at once and one every T = w/q seconds after:
# in any span of L seconds at most q + L/T + 1 pass. The span of passes i..j
# is taken from i's sending to the latest answer among them (the charge is
# decided in between). A Redis primary killed before it replicated the
# company's counter loses it (asynchronous replication): its replica may
# let a whole burst q pass again, the documented bound (README, Deployment)
my %limit;
if ($fleet) {
    my @l = map { [ split /\t/ ] } split /\n/, slurp("$run/limiter.log") // '';
    $limit{n} = @l;
    $limit{st}{ $_->[3] }++ for @l;
    my @pass = sort { $a->[0] <=> $b->[0] } grep { $_->[3] =~ /^2/ } @l;
    my $T = $limit_w / $limit_q;
    my @kills = grep { $_->{lost_writes} } @events;
    $limit{worst} = -1e9;
    for my $i (0 .. $#pass) {
        my $end = 0;
        for my $j ($i .. $#pass) {
            $end = $pass[$j][1] if $pass[$j][1] > $end;
            my $lost = grep { $_->{t0} <= $end && $_->{t1} >= $pass[$i][0] } @kills;
            my $bound = $limit_q * (1 + $lost) + ($end - $pass[$i][0]) / $T + 1;
            my $over = $j - $i + 1 - $bound;
            @limit{qw(worst span n_in bound)} = ($over, $end - $pass[$i][0],
                $j - $i + 1, $bound) if $over > $limit{worst};
        }
    }
    $limit{pass} = @pass;
    violation(sprintf('a company never passes its plan fleet-wide beyond the '
        . 'documented bound (q=%d per %d s)', $limit_q, $limit_w),
        sprintf('  %d requests passed within %.2f s, the bound is %.1f',
            @limit{qw(n_in span bound)})) if $limit{worst} > 0;
}

# 6. per fault: what it saw; recovery
sub last3 { return @_ > 3 ? @_[-3 .. -1] : @_ }
my @win;
for my $i (0 .. $#events) {
    my $e = $events[$i];
    my $to = $i < $#events ? $events[$i + 1]{t0} : $t_done;
    # a request counts where its answer came (a stall delays it into its window)
    my @rs = grep { $_->{te} >= $e->{t0} && $_->{te} < $to } @reqs;
    my @ss = grep { $_->{t} >= $e->{t0} && $_->{t} < $to } @samples;
    my %st;
    $st{ $_->{status} == -1 ? 'abort' : $_->{status} }++
        for grep { $_->{status} ne 'gaveup' } @rs;
    my @fail = grep { $_->{status} ne 'gaveup' && ($_->{status} == 0 || $_->{status} >= 500) } @rs;
    my $rec = 0;
    for (@fail) { my $d = $_->{te} - $e->{t1}; $rec = $d if $d > $rec }
    my ($maxb, $maxw, $minbound) = (0, 0, 1e9);
    my %pids;
    for (@ss) {
        next unless $_->{ok};
        $maxb = $_->{req} + $_->{listen} if $_->{req} + $_->{listen} > $maxb;
        $maxw = $_->{w} if $_->{w} > $maxw;
        $pids{$_} = 1 for split /,/, $_->{pids};
    }
    my @sess = map { $_->{sessions} } grep { $_->{ok} && $_->{sessions} ne '' } @ss;
    my $newsess = @sess ? $sess[-1] - $sess[0] : undef;
    my $after = grep { $_->{ts} >= $e->{t1} && $_->{status} =~ /^2/ } @rs;
    my $tw = join '/', map { my $k = $_; scalar grep { $_ >= $e->{t0} && $_ < $to }
                                  keys %{ $twice{$k} // {} } } qw(api svc);
    push @win, { e => $e, n => scalar @rs, st => \%st, rec => $rec, tw => $tw,
                 maxb => $maxb, maxw => $maxw, pids => scalar keys %pids,
                 newsess => $newsess, ok_after => $after };
    if ($e->{store} ne 'none' && $rec > $recovery) {
        violation("recovery within ${recovery} s of the store's return ($e->{name})",
                  sprintf("  last failure %.2f s after the store was back:\n", $rec)
                  . join "\n", map { (fmt_req($_), evidence_rid($_->{rid})) }
                               last3(grep { $_->{te} - $e->{t1} > $recovery } @fail));
    }
    if ($e->{store} eq 'none' && @fail) {
        # counted above; the window says so
    }
    violation("traffic ran after $e->{name}", '  no 2xx in its window') unless $after;
}

# --- the table ---------------------------------------------------------------------

my %tot;
$tot{ $_->{status} == -1 ? 'abort' : $_->{status} }++
    for grep { $_->{status} ne 'gaveup' } @reqs;
sub sts {
    my ($h) = @_;
    return join ' ', map { "$_:$h->{$_}" }
        sort { ($a eq 'abort') <=> ($b eq 'abort') || $a cmp $b } keys %$h;
}

print "\n== what it did and what it saw (t in s from the start; backends: "
    . "the module's PostgreSQL sessions, request + LISTEN; bound with live "
    . "workers; new: sessions opened in the window) ==\n\n";
printf "%-24s %7s %7s %5s  %-38s %6s %5s %5s %7s %7s\n",
    'fault', 'at', 'back', 'reqs', 'statuses', 'max be', 'wrk', 'new', 'recov',
    'ran 2x';
for my $w (@win) {
    my $e = $w->{e};
    printf "%-24s %7.2f %7.2f %5d  %-38s %3d/%-2d %5d %5s %6.2fs %7s\n",
        $e->{name}, $e->{t0} - $::T0, $e->{t1} - $::T0, $w->{n},
        sts($w->{st}), $w->{maxb}, $POOL * ($w->{maxw} || $WORKERS * @inst)
            + int((($w->{maxw} || 4) + $WORKERS - 1) / $WORKERS),
        $w->{maxw}, $w->{newsess} // '?', $w->{rec}, $w->{tw};
}
printf "\n%d requests (%s), %d aborted GETs besides; %d api keys, %d svc keys: "
    . "%d answered, %d outcome unknown, %d without an answer, %d other\n",
    scalar(grep { $_->{status} ne 'gaveup' } @reqs), sts(\%tot), $aborts,
    $keys_by{api}, $keys_by{svc}, @outcome{qw(answered unknown gaveup other)};
printf "%d service keys ran twice within the documented bound: their lock "
    . "acknowledged by a Redis primary killed within 0.5 s (asynchronous "
    . "replication)\n%s\n", scalar @lost_locks, join "\n", @lost_locks if @lost_locks;
my ($gapmax, @st) = (0, map { $_->{t} } @samples);
for (1 .. $#st) { $gapmax = $st[$_] - $st[$_ - 1] if $st[$_] - $st[$_ - 1] > $gapmax }
printf "PostgreSQL: %d samples (one every %d ms on average, the longest gap %d ms; "
    . "%d while it was down), max %d backends (steady bound %d = pool %d x %d "
    . "workers x %d nginx + %d LISTEN)\n", scalar @samples,
    @st > 1 ? 1000 * ($st[-1] - $st[0]) / $#st : 0, 1000 * $gapmax,
    @samples - $pg_samples,
    (sort { $b <=> $a } map { $_->{req} + $_->{listen} } grep { $_->{ok} } @samples)[0] // 0,
    $steady, $POOL, $WORKERS, scalar @inst, scalar @inst;
printf "error logs: %s\n", join ', ', map {
    my $i = $_;
    my %c;
    /\[(\w+)\]/ and $c{$1}++ for @{ $errlog{$i} };
    "$i: " . join(' ', map { "$_ $c{$_}" } sort keys %c)
} @inst;
{
    # the module's own lines, alike ones counted together
    my %c;
    for my $l (map { @{ $errlog{$_} } } @inst) {
        next unless $l =~ /^\S+ \S+ \[(\w+)\] \d+#\d+: (?:\*\d+ )?(worksible .*)/;
        my ($lvl, $m) = ($1, $2);
        $m =~ s/, client: .*//;
        $m =~ s/req_[0-9A-Z]{26}/req_.../g;
        $m =~ s/"[^"]*"/"..."/g;
        $m =~ s/\d+/N/g;
        $c{"[$lvl] $m"}++;
    }
    print "the module's error log lines (both nginx):\n";
    printf "  %5d %s\n", $c{$_}, substr($_, 0, 150)
        for sort { $c{$b} <=> $c{$a} || $a cmp $b } keys %c;
    my @sess = map { $_->{sessions} } grep { $_->{ok} && $_->{sessions} ne '' } @samples;
    printf "PostgreSQL sessions opened by the module during the run: %d\n",
        $sess[-1] - $sess[0] if @sess;
}
printf "the limited company (q=%d per %d s) through all nginx: %d requests "
    . "(%s), %d passed; the fullest span: %d passed in %.2f s, bound %.1f\n",
    $limit_q, $limit_w, $limit{n}, sts($limit{st}), $limit{pass},
    @limit{qw(n_in span bound)} if $fleet;
print "raw logs: $run/ (client-N.log, samples.log, service.calls"
    . ($fleet ? ', limiter.log' : '') . "), $dir/{" . join(',', @inst)
    . "}/logs/\n";

if (@viol) {
    # grouped by assertion, then by class: the count, and the evidence of
    # the first two of each class (every one is in the raw logs)
    my (%by, @order);
    for my $v (@viol) {
        push @order, $v->[0] unless $by{ $v->[0] };
        push @{ $by{ $v->[0] }{ $v->[2] } }, $v->[1];
    }
    print "\n== violations ==\n";
    for my $a (@order) {
        my $n = 0;
        $n += @$_ for values %{ $by{$a} };
        print "\nFAIL: $a" . ($n > 1 ? " ($n cases)" : '') . "\n";
        for my $c (sort keys %{ $by{$a} }) {
            my @e = @{ $by{$a}{$c} };
            printf "  %d %s\n", scalar @e, $c if $c ne '';
            print "$_\n\n" for @e[0 .. ($#e < 1 ? $#e : 1)];
        }
    }
    printf "chaos: FAIL (%d assertions violated)\n", scalar @order;
    exit 1;
}
print "\nchaos: PASS\n";
exit 0;
