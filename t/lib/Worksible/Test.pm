package Worksible::Test;

# Shared helpers for the suites: fixtures through psql and the CLI, the
# default http_config of Test::Nginx blocks, and, for the plain Test::More
# scripts, an nginx of their own plus a small HTTP client.
# The test driver (util/test.sh) sets PG*, WORKSIBLE_* and TEST_NGINX_*.

use strict;
use warnings;

use Exporter 'import';
use File::Path qw(make_path remove_tree);
use File::Temp ();
use IO::Socket::INET;
use JSON::PP;
use POSIX ();
use Test::More ();
use Time::HiRes qw(sleep time);

our @EXPORT_OK = qw(
    psql psql_value psql_as sql_literal cli company api_key freelancers plan
    redis_cli problem
    http_config
    use_default_http_config nginx_start nginx_stop nginx_reload nginx_clone http
    request at_once leave service calls call_log
    stack json slurp
    log_days clear_of
);

my $top = $ENV{WORKSIBLE_TOP} or die "WORKSIBLE_TOP is not set: run make test\n";

sub json { JSON::PP->new->utf8->canonical }

# problem($status, $code, $param): the regex of a whole RFC 9457 body of
# ours (API.md, Errors); $param undef: "param":null
sub problem {
    my ($status, $code, $param) = @_;
    $param = defined $param ? '"' . quotemeta($param) . '"' : 'null';
    return qr/^\{"type":"https:\/\/docs\.worksible\.com\/errors\/$code","title":"[^"]+","status":$status,"detail":"(?:[^"\\]|\\.)+","code":"$code","param":$param,"request_id":"req_[0-9A-HJKMNP-TV-Z]{26}"\}$/;
}

# psql($sql) as the owner role: the rows as arrayrefs of text (undef: NULL)
sub psql {
    my ($sql) = @_;
    open my $fh, '-|', 'psql', '-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1',
        '-F', "\t", '-P', 'null=\N', '-c', $sql
        or die "psql: $!";
    my @rows;
    while (my $line = <$fh>) {
        chomp $line;
        push @rows, [ map { $_ eq '\N' ? undef : $_ } split /\t/, $line, -1 ];
    }
    close $fh or die "psql failed ($?) on: $sql\n";
    return \@rows;
}

# psql_as($role, $sql): $sql in one psql session as $role (tuples only,
# unaligned, stopping at the first error, verbose errors so SQLSTATE and
# DETAIL show): (stdout without its last newline, stderr, exit code)
sub psql_as {
    my ($user, $sql) = @_;
    my $in  = File::Temp->new(SUFFIX => '.sql');
    my $err = File::Temp->new(SUFFIX => '.err');
    print $in "\\set VERBOSITY verbose\n", $sql, "\n";
    close $in;
    my $out = `psql -X -q -At -v ON_ERROR_STOP=1 -U $user -f $in 2>$err`;
    my $rc = $? >> 8;
    my $stderr = do { local (@ARGV, $/) = ("$err"); <> } // '';
    $out =~ s/\n\z//;
    return ($out, $stderr, $rc);
}

# sql_literal($s): $s quoted for SQL, or NULL
sub sql_literal {
    my ($s) = @_;
    return 'NULL' unless defined $s;
    $s =~ s/'/''/g;
    return "'$s'";
}

# the first column of the first row
sub psql_value {
    my $rows = psql(@_);
    return @$rows ? $rows->[0][0] : undef;
}

# cli(args...) runs build/worksible: (exit code, stdout, stderr)
sub cli {
    my @args = @_;
    my $err = "/tmp/worksible-cli-$$.err";
    my $pid = open my $fh, '-|';
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        open STDERR, '>', $err or die;
        exec $ENV{WORKSIBLE_CLI}, @args or die "exec: $!";
    }
    local $/;
    my $out = <$fh> // '';
    close $fh;
    my $code = $? >> 8;
    open my $efh, '<', $err or die;
    my $stderr = <$efh> // '';
    close $efh;
    unlink $err;
    return ($code, $out, $stderr);
}

# company(plan => 'growth', name => ..., currency => ...): its id
sub company {
    my %o = (plan => 'growth', currency => 'EUR', @_);
    $o{name} //= "Test $o{plan} " . int(rand(1e9));
    my ($code, $out, $err) = cli('company', 'create', '--name', $o{name},
        '--plan', $o{plan}, '--currency', $o{currency}, '--json');
    die "company create: $err" if $code;
    return json()->decode($out)->{id};
}

# api_key($company, 'a:read b:write', expires_at => ..., name => ...,
#         allow_ip => [CIDR...]):
# { key => 'wsk_live_...', id => 'key_...', ... }
sub api_key {
    my ($company, $scopes, %o) = @_;
    my @args = ('key', 'create', '--company', $company, '--scopes', $scopes,
        '--json');
    push @args, '--name', $o{name} if $o{name};
    push @args, '--expires-at', $o{expires_at} if $o{expires_at};
    push @args, map { ('--allow-ip', $_) } @{ $o{allow_ip} // [] };
    my ($code, $out, $err) = cli(@args);
    die "key create: $err" if $code;
    return json()->decode($out);
}

# plan(limit => 3, window => 60): a new plan with API access, its name
sub plan {
    my (%o) = @_;
    my $name = 'p' . $$ . '_' . int(rand(1e6));
    psql("INSERT INTO plans (name, api_access, rate_limit, rate_window)
          VALUES ('$name', true, $o{limit}, $o{window})");
    return $name;
}

# redis_cli(args...): the test Redis's answer, chomped
sub redis_cli {
    my @args = @_;
    my ($host, $port) = split /:/, $ENV{TEST_NGINX_REDIS};
    open my $fh, '-|', 'redis-cli', '-h', $host, '-p', $port, @args or die;
    local $/;
    my $out = <$fh> // '';
    close $fh;
    $out =~ s/\s+\z//;
    return $out;
}

# freelancers($company, n, status => 'active'): n rows, one second apart
# going back from now, newest first; returns their ids newest first
sub freelancers {
    my ($company, $n, %o) = @_;
    my $status = $o{status} // 'active';
    my $rows = psql(<<SQL);
BEGIN;
SELECT set_config('worksible.company_id', '$company', true);
INSERT INTO freelancers (company_id, email, name, country, status, created_at, updated_at)
SELECT '$company', 'f' || i || '.' || md5(random()::text) || '\@example.com',
       'Freelancer ' || i, 'DE', '$status',
       now() - i * interval '1 second', now() - i * interval '1 second'
FROM generate_series(1, $n) AS i
RETURNING id;
COMMIT;
SQL
    # psql prints set_config's row first
    my @ids = map { $_->[0] } grep { $_->[0] =~ /^fl_/ } @$rows;
    return @ids;
}

# the http{} lines every block needs
sub http_config {
    my (%o) = @_;
    my $pg = $o{postgres} // qq{"$ENV{TEST_NGINX_PG_CONNINFO}" pool=2 connect_timeout=1s query_timeout=2s};
    my $redis = $o{redis} // "$ENV{TEST_NGINX_REDIS} timeout=300ms";
    return <<CONF;
    worksible_postgres $pg;
    worksible_key_secret_file $ENV{TEST_NGINX_KEY_SECRET_FILE};
    worksible_redis $redis;
CONF
}

# blocks without their own http_config get http_config()
sub use_default_http_config {
    Test::Nginx::Socket::add_block_preprocessor(sub {
        my $block = shift;
        $block->set_value('http_config', http_config())
            unless defined $block->http_config;
    });
}

# stack('pg-stop'|'pg-start'): the test stack's stores
sub stack {
    my ($cmd) = @_;
    system("$top/util/stack.sh", $cmd, 'test') == 0 or die "stack.sh $cmd failed";
}

# --- an nginx of a plain script's own -----------------------------------

my %nginx;    # prefix, port

# nginx_start(name => 't-pgdown', port => 1990, http => '...', server => '...')
sub nginx_start {
    my %o = @_;
    my $prefix = "$top/t/servroot_$o{name}";
    # an nginx an interrupted run left behind holds the ports
    my $old = slurp("$prefix/logs/nginx.pid");
    if ($old && $old =~ /^(\d+)/ && kill 'TERM', $1) {
        sleep 0.05 while kill 0, $1;
    }
    remove_tree($prefix);
    make_path("$prefix/conf", "$prefix/logs", "$prefix/tmp");
    my $module = $ENV{TEST_NGINX_LOAD_MODULES};
    my $http = $o{http} // http_config();
    my $workers = $o{workers} // 1;
    my $user = $> == 0 ? 'user root;' : '';
    open my $fh, '>', "$prefix/conf/nginx.conf" or die;
    print $fh <<CONF;
load_module $module;
$user
worker_processes $workers;
pid logs/nginx.pid;
error_log logs/error.log info;
events { worker_connections 1024; }
http {
    access_log logs/access.log;
    client_body_temp_path tmp;
    proxy_temp_path tmp;
    fastcgi_temp_path tmp;
    uwsgi_temp_path tmp;
    scgi_temp_path tmp;
$http
    server {
        listen 127.0.0.1:$o{port};
$o{server}
    }
}
CONF
    close $fh;
    %nginx = (prefix => $prefix, port => $o{port},
              reports => { map { $_ => 1 } sanitizer_reports() });
    system($ENV{TEST_NGINX_BINARY}, '-p', $prefix, '-c', 'conf/nginx.conf') == 0
        or die "nginx failed to start: " . slurp("$prefix/logs/error.log");
    # nginx listens before its daemon writes the pid file and forks the
    # workers: a test may look them up at once (strace -p, kill)
    for (1 .. 200) {
        my ($master) = (slurp("$prefix/logs/nginx.pid") // '') =~ /^(\d+)/;
        return $prefix if $master && workers_of($master) >= $workers
                          && IO::Socket::INET->new(PeerAddr => "127.0.0.1:$o{port}");
        sleep 0.05;
    }
    die "nginx does not listen on $o{port} with $workers workers";
}

# workers_of($master): the pids of the processes whose parent is $master
sub workers_of {
    my ($master) = @_;
    return grep { (slurp("/proc/$_/stat") // '') =~ /^\d+ \(.*?\) \S (\d+) / && $1 == $master }
           map { m{/(\d+)$} ? $1 : () } glob '/proc/[0-9]*';
}

sub nginx_reload {
    my $pid = slurp("$nginx{prefix}/logs/nginx.pid");
    chomp $pid;
    kill 'HUP', $pid;
}

# nginx_clone($prefix, $name, { old port => new port }): a second nginx
# with $prefix's configuration on other ports, started now, beside the
# first; returns a sub that stops it and checks its error log (one test)
sub nginx_clone {
    my ($from, $name, $ports) = @_;
    my $second = "$top/t/servroot_$name";
    remove_tree($second);
    system('cp', '-r', $from, $second) == 0 or die "cp $from: $?";
    my $conf = slurp("$second/conf/nginx.conf");
    $conf =~ s/listen 127\.0\.0\.1:$_;/listen 127.0.0.1:$ports->{$_};/g for keys %$ports;
    open my $fh, '>', "$second/conf/nginx.conf" or die;
    print $fh $conf;
    close $fh;
    unlink "$second/logs/nginx.pid", "$second/logs/error.log";
    system($ENV{TEST_NGINX_BINARY}, '-p', $second, '-c', 'conf/nginx.conf') == 0
        or die "the second nginx failed to start";
    sleep 0.3;
    return sub {
        my $pid = slurp("$second/logs/nginx.pid");
        chomp $pid;
        kill 'QUIT', $pid;
        sleep 0.5;
        Test::More::unlike(slurp("$second/logs/error.log") // '',
            qr/\[(alert|emerg)\]|exited on signal/, "nginx $second: no alert");
    };
}

# stops it and checks its error log: no [alert], [emerg], crashed worker
# or sanitizer report (one test)
sub nginx_stop {
    my $prefix = $nginx{prefix} or return;
    my $pid = slurp("$prefix/logs/nginx.pid");
    chomp $pid;
    kill 'QUIT', $pid;
    for (1 .. 200) {
        last unless kill 0, $pid;
        waitpid($pid, POSIX::WNOHANG());
        sleep 0.05;
        # a zombie under a PID 1 that does not reap counts as gone
        last if (slurp("/proc/$pid/stat") // '') =~ /^\d+ \(.*?\) Z/;
    }
    my $log = slurp("$prefix/logs/error.log") // '';
    my @bad = grep { /\[(alert|emerg)\]|exited on signal|exited with code [1-9]|Sanitizer|runtime error:/ }
        split /\n/, $log;
    push @bad, map { "sanitizer report $_" }
        grep { !$nginx{reports}{$_} } sanitizer_reports();
    Test::More::is(scalar(@bad), 0, "nginx $prefix: no alert/emerg/crash/sanitizer report")
        or Test::More::diag(join "\n", @bad);
    %nginx = ();
}

# the files AddressSanitizer wrote (ASAN_OPTIONS log_path), if any
sub sanitizer_reports {
    return () unless ($ENV{ASAN_OPTIONS} // '') =~ /log_path=([^:]+)/;
    return glob("$1*");
}

sub slurp {
    my ($f) = @_;
    open my $fh, '<', $f or return undef;
    local $/;
    return scalar <$fh>;
}

# request($method, $path, { header => value or [values] }, $body): the
# bytes of an HTTP/1.1 request with Connection: close (and Content-Length
# when there is a body)
sub request {
    my ($method, $path, $headers, $body) = @_;
    fuzz_seed($method, $path, $headers, $body) if $ENV{WORKSIBLE_FUZZ_SEEDS};
    my $req = "$method $path HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n";
    for my $name (sort keys %{ $headers // {} }) {
        my $v = $headers->{$name};
        $req .= "$name: $_\r\n" for ref $v ? @$v : ($v);
    }
    $req .= "Content-Length: " . length($body) . "\r\n" if defined $body;
    return "$req\r\n" . ($body // '');
}

# WORKSIBLE_FUZZ_SEEDS=DIR (make fuzz-seeds): each request the suites send
# becomes seed inputs of the libFuzzer targets (t/fuzz/*_fuzz.c explains
# their formats), in DIR/TARGET/, named by their MD5
sub fuzz_seed {
    my ($method, $path, $headers, $body) = @_;
    my %h = map { lc($_) => $headers->{$_} } keys %{ $headers // {} };
    my %seeds = (route => "$method $path", reqlog => $path);
    $seeds{defined $body ? 'body' : 'query'} =
        "$method $path" . (defined $body ? "\n$body" : '');
    for ([idempotency => 'idempotency-key'], [auth => 'authorization']) {
        my $v = $h{$_->[1]} // next;
        $seeds{$_->[0]} = join "\n", ref $v ? @$v : ($v);
    }
    require Digest::MD5;
    for my $t (keys %seeds) {
        my $dir = "$ENV{WORKSIBLE_FUZZ_SEEDS}/$t";
        -d $dir or mkdir $dir or die "mkdir $dir: $!";
        my $f = "$dir/" . Digest::MD5::md5_hex($seeds{$t});
        open my $fh, '>:raw', $f or die "$f: $!";
        print $fh $seeds{$t};
        close $fh;
    }
}

# the answer in $raw: { status, headers => { lc name => value }, body (a
# chunked one decoded) }; status 0 when there is none
sub response {
    my ($raw) = @_;
    my ($head, $body) = split /\r\n\r\n/, $raw // '', 2;
    return { status => 0 } unless $head && $head =~ m{^HTTP/1\.\d (\d+)};
    my $status = $1 + 0;
    my %h;
    for (split /\r\n/, $head) { $h{lc $1} = $2 if /^([^:]+):\s*(.*)$/ }
    $body //= '';
    if (($h{'transfer-encoding'} // '') =~ /chunked/i) {
        my $whole = '';
        while ($body =~ s/^([0-9a-fA-F]+)[^\r]*\r\n//) {
            my $n = hex $1;
            last if $n == 0;
            $whole .= substr($body, 0, $n, '');
            $body =~ s/^\r\n//;
        }
        $body = $whole;
    }
    return { status => $status, headers => \%h, body => $body };
}

# http($method, $path, { header => value }, timeout => s, port => n,
#      body => bytes):
# { status, headers => { lc name => value }, body, ms }; status 0 on
# timeout or a closed connection
sub http {
    my ($method, $path, $headers, %o) = @_;
    my $port = $o{port} // $nginx{port};
    my $t0 = time;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port",
        Timeout => $o{timeout} // 10) or return { status => 0, ms => 0 };
    print $s request($method, $path, $headers, $o{body});
    my $raw = '';
    my $deadline = $t0 + ($o{timeout} // 10);
    $s->blocking(0);
    while (time < $deadline) {
        my $n = sysread($s, my $buf, 65536);
        if (defined $n) { last if $n == 0; $raw .= $buf; next }
        sleep 0.005;
    }
    return { %{ response($raw) }, ms => int((time - $t0) * 1000) };
}

# at_once($port or [ports], @requests): each request (bytes, see request())
# on its own connection, taking the ports in turn, all sent before any
# answer is read; the answers in order, as response() gives them
sub at_once {
    my ($ports, @requests) = @_;
    my @ports = ref $ports ? @$ports : ($ports);
    my @socks = map {
        IO::Socket::INET->new(PeerAddr => '127.0.0.1:' . $ports[$_ % @ports])
            or die "connect: $!"
    } 0 .. $#requests;
    print { $socks[$_] } $requests[$_] for 0 .. $#requests;
    return map { local $/; response(scalar readline($_)) } @socks;
}

# leave($port, $request, $seconds): sends the request and closes the
# connection after $seconds, before reading any answer (a client that goes)
sub leave {
    my ($port, $request, $seconds) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") or die "connect: $!";
    print $s $request;
    sleep $seconds;
    close $s;
}

# --- a service behind proxy_pass that counts its calls ------------------

# service($port, $counter): a forked HTTP/1.1 server on 127.0.0.1:$port
# that appends each call's method and path to the file $counter and
# answers 201 with {"call":N,"body":"<the body it got>"} and
# Location: /things/N. Paths containing /slow sleep 2 s first, /fail
# answer 500, /big 2 KB, /text text/plain; charset=utf-8;
# /accel/URI answers 200 with X-Accel-Redirect: /URI. Returns its pid.
my %services;    # pid => the pid of the script that started it

sub service {
    my ($port, $counter) = @_;
    unlink $counter;
    my $srv = IO::Socket::INET->new(LocalAddr => "127.0.0.1:$port",
        Listen => 64, ReuseAddr => 1) or die "listen $port: $!";
    my $pid = fork // die;
    if ($pid) {
        $services{$pid} = $$;
        return $pid;
    }
    $SIG{CHLD} = 'IGNORE';
    while (my $c = $srv->accept) {
        next if fork;
        my ($head, $body) = ('', '');
        while ($head !~ /\r\n\r\n/) {
            sysread($c, my $buf, 4096) or POSIX::_exit(0);
            $head .= $buf;
        }
        ($head, $body) = split /\r\n\r\n/, $head, 2;
        my ($len) = $head =~ /^Content-Length:\s*(\d+)/mi;
        while (length($body) < ($len // 0)) {
            sysread($c, my $buf, 4096) or last;
            $body .= $buf;
        }
        my ($method, $path) = $head =~ m{^(\w+) (\S+)};
        open my $fh, '>>', $counter or die;
        print $fh "$method $path\n";
        close $fh;
        my $n = calls($counter);
        sleep 2 if $path =~ m{/slow};
        my ($status, $out) = $path =~ m{/fail} ? (500, "failed $n\n")
                           : $path =~ m{/big}  ? (201, 'x' x 2048)
                           : $path =~ m{/accel/} ? (200, '')
                           : (201, qq({"call":$n,"body":"$body"}));
        my $type = $path =~ m{/text} ? 'text/plain; charset=utf-8' : 'application/json';
        my $accel = $path =~ m{/accel(/\S*)} ? "X-Accel-Redirect: $1\r\n" : '';
        print $c "HTTP/1.1 $status X\r\nContent-Type: $type\r\n$accel"
            . "Location: /things/$n\r\nContent-Length: " . length($out)
            . "\r\nConnection: close\r\n\r\n$out";
        close $c;
        POSIX::_exit(0);
    }
    POSIX::_exit(0);
}

# a script that ends, even by dying, stops the services it started (they
# would hold their ports and prove's pipe)
END {
    local $?;    # waitpid must not change the script's exit status
    for my $pid (grep { $services{$_} == $$ } keys %services) {
        kill 'TERM', $pid;
        waitpid($pid, 0);
    }
}

# calls($counter): how many calls the service had so far
sub calls { my @l = call_log(@_); return scalar @l }

# call_log($counter): its calls, "METHOD /path" each
sub call_log {
    my ($counter) = @_;
    open my $fh, '<', $counter or return ();
    chomp(my @l = <$fh>);
    return @l;
}

# log_days(@times): makes the request log's partitions of the UTC days of
# @times (Unix seconds) that are missing, as worksible_request_logs_prepare
# makes them. A database migrated today has none before today (prepare
# makes today's and the next two), where a running one has every past day:
# rows a suite dates hours back, in a run soon after 00:00 UTC, would wait
# in request_logs_pending instead.
sub log_days {
    my %day = map { (POSIX::strftime('%Y-%m-%d', gmtime int $_) => 1) } @_;
    psql(join "\n", map {
        "DO \$\$ DECLARE p text := worksible_request_logs_partition('$_'); BEGIN
           IF to_regclass(p) IS NULL THEN
             EXECUTE format('CREATE TABLE %I (LIKE request_logs INCLUDING DEFAULTS)', p);
             EXECUTE format('ALTER TABLE request_logs ATTACH PARTITION %I FOR VALUES
                             FROM (%L) TO (%L)', p, '$_ 00:00:00+00',
                            to_char(date '$_' + 1, 'YYYY-MM-DD') || ' 00:00:00+00');
           END IF; END \$\$;" } sort keys %day);
}

# clear_of($period, $secs): returns at once, or after sleeping past the
# next multiple of $period seconds (Unix time: 86400, a UTC day; 3600, an
# hour; 60, a minute) when fewer than $secs remain before it, so that the
# next $secs seconds stay within one period. For checks that name the
# current day, hour or minute from two clock readings.
sub clear_of {
    my ($period, $secs) = @_;
    my $left = $period - time % $period;
    sleep $left + 0.1 if $left < $secs;
}

1;
