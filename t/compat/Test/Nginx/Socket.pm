package Test::Nginx::Socket;

=head1 NAME

Test::Nginx::Socket (compat) - minimal stand-in for openresty's Test::Nginx::Socket

=head1 DESCRIPTION

Debian does not package Test::Nginx, so this small runner, written from the
documented format of openresty/test-nginx, lets this project's F<.t> files
run unchanged.  The Makefile puts F<t/compat> on C<@INC> only when the real
module is missing.  It builds on L<Test::Base> (libtest-base-perl) exactly
like the real one: same block syntax, filters (C<eval>, C<chomp>, C<chop>, ...),
C<--- ONLY>, C<--- LAST>, C<--- SKIP>, and the same subtest names and counts
(C<"$0 TEST n: title - status code ok">, ...).

Supported: C<main_config>, C<http_config>, C<config> (reused from the previous
block when absent), C<post_main_config>, C<user_files>, C<init>, C<request>
(string, or C<eval> arrayref of requests / packet lists), C<pipelined_requests>,
C<raw_request>, C<raw_request_middle_delay>, C<more_headers> (string or array),
C<error_code>, C<error_code_like>, C<response_headers> (C<!Name> = absent),
C<response_headers_like>, C<raw_response_headers_like>/C<_unlike>,
C<response_body>, C<response_body_like>, C<response_body_unlike>,
C<error_log>, C<no_error_log>, C<access_log>, C<no_access_log>,
C<grep_error_log>/C<grep_error_log_out>, C<timeout>, C<abort>, C<shutdown>,
C<wait>, C<log_level>, C<ignore_response>.  Everything else is ignored.

Environment: C<TEST_NGINX_BINARY>, C<TEST_NGINX_LOAD_MODULES> (C<load_module>
lines at the top of F<nginx.conf>), C<TEST_NGINX_PORT>/C<TEST_NGINX_SERVER_PORT>,
C<TEST_NGINX_SERVROOT>/C<TEST_NGINX_SERVER_ROOT>, C<TEST_NGINX_NO_CLEAN>,
C<TEST_NGINX_USE_VALGRIND>, C<TEST_NGINX_LOG_LEVEL>, C<TEST_NGINX_TIMEOUT>,
C<TEST_NGINX_NO_SHUFFLE>, C<TEST_NGINX_MASTER_PROCESS>.

Lifecycle (as in the real module): every block with a C<--- config> gets a
fresh server root (F<t/servroot>: F<conf/nginx.conf>, F<logs/>, F<html/>)
and a freshly started nginx (the old one is stopped with QUIT and waited
for; a stale one named by the pid file is stopped first).  A block without
C<--- config> reuses the running nginx and its logs.  The default server
listens on C<$ServerPort> (all addresses, like the real one); C<user root;>
is added when running as root, and the C<*_temp_path>s point into the
server root.  Under C<TEST_NGINX_USE_VALGRIND> nginx runs with C<daemon off>
under valgrind (suppressions from F<t/valgrind.suppress> if present), logging
to F<logs/valgrind.PID.log>.

Like the real module, only functions are exported (use C<server_port()> or
C<$Test::Nginx::Util::ServerPort>), and C<done_testing> is not exported
(call C<Test::More::done_testing()>).

Like the real module, C<$TEST_NGINX_*> is expanded in the config sections
only: requests and expected values use C<eval> with C<$ENV{TEST_NGINX_FOO}>.

=head2 Extra check: no alert / emerg / crash / sanitizer report

Each block's nginx is stopped (QUIT, and waited for) before the next block
starts and after the last one.  At that point its F<error.log> and the
captured startup stderr are scanned for C<[alert]>, C<[emerg]>,
C<exited on signal>, C<exited with code N> (N != 0), C<...Sanitizer> and
UBSan C<runtime error:> lines; an nginx that died by itself is reported; so
is any new file matching C<PREFIX*> when C<ASAN_OPTIONS> contains
C<log_path=PREFIX>, and any non-empty valgrind log.  A block whose
C<error_log>/C<no_error_log> mentions C<[alert> or C<[emerg> is exempt for
that level.  The findings are reported by B<one> test after the last block,
named C<"$0 - no alert/emerg/crash/sanitizer report">:

=over

=item * without a numeric plan (C<'no_plan'>, or C<done_testing> after
C<run_tests>) the test is always emitted;

=item * with C<plan tests =E<gt> N> it is emitted only when it fails, so
passing files keep the real module's count.

=back

=cut

use v5.10.1;
use Test::Base -base;    # subclass of Test::Base (no Spiffy source filter)
use strict;
use warnings;
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(sleep time);
use IO::Socket::INET ();
use IO::Select ();
use File::Path qw(make_path remove_tree);
use List::Util qw(shuffle min);
use Test::Nginx::Util qw(:DEFAULT :vars);

# like the real module, functions only (no $ServerPort: use server_port())
our @EXPORT = ((grep { !/^\$/ } @Test::Nginx::Util::EXPORT), qw(
    run_tests run_test bail_out is_str no_nginx_manager use_hup
));

our ($PrevConfig, $NginxPid, $ChildPid, $ErrLogFilePos, $NginxV, $Cur);
our @Findings;                       # problems found by the extra check
my (%SanSeen, $SanPrefix);           # sanitizer log files present at start
my $DEFAULT_ENV = 'ASAN_OPTIONS LSAN_OPTIONS UBSAN_OPTIONS LD_PRELOAD LD_LIBRARY_PATH';

if (($ENV{ASAN_OPTIONS} // '') =~ /(?:^|[:,\s])log_path=([^:,\s]+)/
    && $1 !~ /^(?:stderr|stdout)$/) {
    $SanPrefix = $1;
    $SanSeen{$_} = 1 for glob("$SanPrefix*");
}

sub no_nginx_manager () { }          # accepted, ignored
sub use_hup () { }                   # accepted, ignored (we always restart)

sub is_str {
    my ($got, $exp, $desc) = @_;
    return Test::More::like($got, $exp, $desc) if ref $exp eq 'Regexp';
    Test::More::is($got, $exp, $desc);
}

# TAP shows only one line of a bail-out message: diag the rest first
sub bail_out {
    my ($first, $rest) = split /\n/, join('', @_), 2;
    stop_nginx('bail_out');
    Test::More::diag($rest) if defined $rest && $rest =~ /\S/;
    Test::More::BAIL_OUT($first);
}

# $TEST_NGINX_FOO -> $ENV{TEST_NGINX_FOO}; recurses into arrays, keeps refs
sub expand_env {
    my ($v, $name) = @_;
    return [map { expand_env($_, $name) } @$v] if ref $v eq 'ARRAY';
    return $v if !defined $v || ref $v;
    $v =~ s{\$(TEST_NGINX_[_A-Z0-9]+)}{
        $ENV{$1} // bail_out("$name - No environment $1 defined.\n")
    }ge;
    $v;
}

#----------------------------------------------------------------- nginx ---

sub alive {
    my $pid = shift or return 0;
    if (defined $ChildPid && $pid == $ChildPid && waitpid($pid, WNOHANG) == $pid) {
        undef $ChildPid;
        return 0;
    }
    return 0 unless kill 0, $pid;
    # a reparented daemon may linger as a zombie if pid 1 does not reap
    if (open my $fh, '<', "/proc/$pid/stat") {
        return 0 if (<$fh> // '') =~ /^\d+ \(.*\) Z/s;
    }
    1;
}

sub read_pid_file {
    open my $fh, '<', $PidFile or return undef;
    my $pid = <$fh> // '';
    return $pid =~ /^(\d+)/ ? $1 : undef;
}

sub port_listening {
    for my $f ('/proc/net/tcp', '/proc/net/tcp6') {
        open my $fh, '<', $f or next;
        while (<$fh>) {
            return 1 if /^\s*\d+:\s+[0-9A-F]+:([0-9A-F]{4})\s+\S+\s+0A\s/
                        && hex($1) == $ServerPort;
        }
    }
    0;
}

sub nginx_V {
    $NginxV //= `$NginxBinary -V 2>&1`;
    bail_out("Cannot run \"$NginxBinary -V\" (set TEST_NGINX_BINARY)")
        unless $NginxV =~ /nginx version/;
    $NginxV;
}

# Stop the running nginx (QUIT, then TERM, then KILL) and wait until it is
# gone; then run the extra check for the block it served.
sub stop_nginx {
    my ($why) = @_;
    my $pid = $NginxPid;
    if (!$pid && ($pid = read_pid_file())) {     # e.g. stale one from a past run
        undef $pid unless slurp("/proc/$pid/cmdline") =~ /nginx|valgrind/;
    }
    if ($pid && alive($pid)) {
        my $grace = $UseValgrind ? 30 : ($Timeout > 5 ? $Timeout : 5);
        for my $sig ('QUIT', 'TERM', 'KILL') {
            kill $sig, $pid;
            kill $sig, -$pid if $sig eq 'KILL';  # daemon/valgrind process group
            my $end = time + ($sig eq 'QUIT' ? $grace : 2);
            sleep 0.02 while alive($pid) && time < $end;
            last unless alive($pid);
            warn "$why - nginx $pid did not exit on $sig\n";
        }
    } elsif ($pid && $Cur && !$Cur->{dead_reported}) {
        push @Findings, "$Cur->{name}: nginx process $pid died unexpectedly";
    }
    undef $NginxPid;
    scan_block_logs() if $Cur;
    undef $Cur;
}

sub start_nginx {
    my ($name) = @_;
    my @cmd = ($NginxBinary, '-p', "$ServRoot/", '-c', $ConfFile);
    if ($UseValgrind) {
        my @vg = ('valgrind', '-q', '--num-callers=50', '--gen-suppressions=all',
                  "--log-file=$LogDir/valgrind.%p.log");
        push @vg, $UseValgrind =~ /^\d+$/
            ? ('--tool=memcheck', '--leak-check=full', '--show-possibly-lost=no')
            : split ' ', $UseValgrind;
        for my $s ('t/valgrind.suppress', 'valgrind.suppress') {
            if (-f $s) { push @vg, "--suppressions=$s"; last }
        }
        @cmd = (@vg, @cmd);
    }
    my $stderr = "$LogDir/nginx.stderr";
    my $deadline = time + 5;
    while (1) {
        my $pid = fork // bail_out("$name - fork() failed: $!");
        if (!$pid) {
            setpgrp(0, 0);
            open STDOUT, '>', '/dev/null';
            open STDERR, '>>', $stderr;
            { no warnings 'exec'; exec { $cmd[0] } @cmd; }
            POSIX::_exit(127);
        }
        if ($UseValgrind) {                      # daemon off: child is nginx
            $ChildPid = $pid;
            last;
        }
        waitpid($pid, 0);
        last if $? == 0;
        my $err = slurp($stderr) . slurp($ErrLogFile);
        if ($err =~ /Address already in use/ && time < $deadline) {
            sleep 0.2;
            next;
        }
        my ($why) = $err =~ /(\[emerg\].*)/;
        bail_out("$name - Cannot start nginx: ", $why // "status $?", "\n@cmd\n$err");
    }
    # ready = pid file written, process alive, port in LISTEN state
    my $deadline2 = time + ($UseValgrind ? 60 : 10);
    while (1) {
        my $pid = read_pid_file();
        if ($pid && alive($pid) && port_listening()) {
            $NginxPid = $pid;
            last;
        }
        if (time > $deadline2 || ($ChildPid && !alive($ChildPid))) {
            bail_out("$name - nginx did not come up on port $ServerPort:\n",
                     slurp($stderr), slurp($ErrLogFile));
        }
        sleep 0.01;
    }
}

sub slurp {
    open my $fh, '<', $_[0] or return '';
    local $/;
    <$fh> // '';
}

sub setup_server_root {
    remove_tree($ConfDir, $HtmlDir, $LogDir, glob("$ServRoot/*_temp"),
                glob("$ServRoot/*_cache")) if -d $ServRoot;
    make_path($LogDir, $HtmlDir, $ConfDir);
    open my $out, '>', "$HtmlDir/index.html" or bail_out("index.html: $!");
    print $out '<html><head><title>It works!</title></head><body>It works!</body></html>';
    close $out;
}

sub write_user_files {
    my ($block) = @_;
    my $files = $block->user_files or return;
    if (!ref $files) {
        my @f;
        for (split /^/, $files) {
            if (/^>>> (\S+)/) { push @f, [$1, ''] } elsif (@f) { $f[-1][1] .= $_ }
        }
        $files = \@f;
    }
    for my $f (@$files) {
        my ($fname, $body) = @$f;
        my $path = $fname =~ m{^/} ? $fname : "$HtmlDir/$fname";
        make_path($1) if $path =~ m{(.*)/} && !-d $1;
        open my $out, '>', $path or bail_out($block->name . " - $path: $!");
        binmode $out;
        print $out expand_env($body // '', $block->name);
        close $out;
    }
}

sub write_config {
    my ($block, $config) = @_;
    my $name = $block->name;
    my ($main, $http, $post) = map { expand_env($block->$_ // '', $name) }
                                   qw(main_config http_config post_main_config);
    my $level = $block->log_level || $LogLevel;
    my $daemon = $UseValgrind ? 'off' : 'on';
    my $modules = join '', map { "load_module $_;\n" } grep { length } split ' ',
                                                                   $LoadModules // '';
    my $env = join '', map { my $v = /\s/ ? "'$_'" : $_; "env $v;\n" }
                           split(' ', $DEFAULT_ENV), @EnvToNginx;
    # keep temp files inside the server root (Debian compiles in /var/lib/nginx)
    my $temps = '';
    my $V = nginx_V();
    for my $t (qw(client_body proxy fastcgi uwsgi scgi)) {
        next if "$http\n$config" =~ /\b${t}_temp_path\b/;
        next if $t ne 'client_body' && $V =~ /--without-http_${t}_module/;
        $temps .= "    ${t}_temp_path $ServRoot/${t}_temp;\n";
    }
    my $root = $NoRootLocation ? '' : <<"_EOC_";
        location / {
            root $HtmlDir;
            index index.html index.htm;
        }
_EOC_
    my $user = $> == 0 ? "user root;\n" : '';
    open my $out, '>', $ConfFile or bail_out("$name - Can't write $ConfFile: $!");
    print $out <<"_EOC_";
${modules}worker_processes  $Workers;
daemon $daemon;
master_process $MasterProcessEnabled;
error_log $ErrLogFile $level;
pid       $PidFile;
$env
$main

http {
    access_log $AccLogFile;
    default_type text/plain;
    keepalive_timeout  68;
$temps
$http

    server {
        listen          $ServerPort;
        server_name     '$ServerName';
        client_max_body_size 30M;

        # Begin preamble config...
$ConfigPreamble
        # End preamble config...

        # Begin test case config...
$config
        # End test case config.

$root    }
}

$post

events {
    accept_mutex off;
    worker_connections  $WorkerConnections;
}
$user
_EOC_
    close $out;
}

#------------------------------------------------------------ extra check ---

# Called once the block's nginx has exited: look for alerts, crashes and
# sanitizer / valgrind reports that belong to block $Cur.
sub scan_block_logs {
    my $c = $Cur;
    my @bad;
    for my $f ($ErrLogFile, "$LogDir/nginx.stderr") {
        open my $fh, '<', $f or next;
        while (my $l = <$fh>) {
            # "2024/01/02 03:04:05 [alert] 12#0: ..." or "nginx: [emerg] ..."
            my $lvl = $l =~ /^(?:\S+ \S+|nginx:) \[(\w+)\]/ ? $1 : '';
            next unless ($lvl eq 'alert' && !$c->{allow_alert})
                || ($lvl eq 'emerg' && !$c->{allow_emerg})
                || $l =~ /exited on signal|exited with code (?!0\b)\d+/
                || $l =~ /\b(?:Address|Leak|Thread|Memory|UndefinedBehavior)Sanitizer\b/
                || $l =~ /^\S+:\d+:\d+: runtime error: /;
            chomp $l;
            push @bad, "$f: $l";
        }
    }
    for my $f (glob("$LogDir/valgrind.*.log")) {
        push @bad, "valgrind report $f:\n" . substr(slurp($f), 0, 4000) if -s $f;
    }
    if (defined $SanPrefix) {
        for my $f (grep { !$SanSeen{$_}++ } glob("$SanPrefix*")) {
            my $s = slurp($f);
            push @bad, "sanitizer report $f:\n" . substr($s, 0, 4000);
        }
    }
    splice @bad, 10, @bad - 10, '...' if @bad > 10;
    push @Findings, map { "$c->{name}: $_" } @bad;
}

sub final_check {
    my $tb = Test::More->builder;
    my $plan = $tb->has_plan;
    my $desc = "$0 - no alert/emerg/crash/sanitizer report";
    if (@Findings) {
        Test::More::fail($desc);
        Test::More::diag($_) for @Findings;
    } elsif (!defined $plan || $plan eq 'no_plan') {
        Test::More::pass($desc);
    }
    @Findings = ();
}

#--------------------------------------------------------------- requests ---

sub parse_more_headers {
    my ($in) = @_;
    my ($out, $chunked) = ('', 0);
    for my $h (split /\n+/, $in // '') {
        next if $h =~ /^\s*#/ || $h !~ /\S/;
        my ($k, $v) = split /:\s*/, $h, 2;
        $v //= '';
        $v =~ s/\r$//;
        $chunked = 1 if lc $k eq 'transfer-encoding' && $v eq 'chunked';
        $out .= "$k: $v\r\n";
    }
    ($out, $chunked);
}

# Turn one "METHOD [URI [VERSION]]\nbody" spec (possibly split in packets)
# into packets of a complete HTTP request.
sub build_request {
    my ($name, $pkts, $more, $conn) = @_;
    my @p = map { ref $_ eq 'HASH' ? {%$_} : { value => $_ } } @$pkts;
    my $whole = join '', map { $_->{value} } @p;
    my ($first, $body) = $whole =~ /\A([^\n]*)(?:\n(.*))?\z/s;
    my @tok = split ' ', $first // '';
    bail_out("$name - Request line is not valid: \"$first\"") if !@tok || @tok > 3;
    my ($meth, $url, $ver) = @tok;
    $url //= '/';
    $ver //= 'HTTP/1.1';
    $body //= '';
    my ($hdrs, $chunked) = parse_more_headers($more);
    my ($len, $lead) = ('', 0);
    if (!$chunked && $body ne '' && $hdrs !~ /(?:^|\n)Content-Length:/i) {
        $lead = length($1) if $body =~ /^(\s+)/;
        $body =~ s/^\s+|\s+$//gs;
        $len = "Content-Length: " . length($body) . "\r\n";
    }
    my $head = "$meth $url $ver\r\n";
    $head .= "Host: $ServerName\r\n" if $hdrs !~ /(?:^|\n)Host:/i;
    $head .= "Connection: $conn\r\n" if $hdrs !~ /(?:^|\n)Connection/i;
    $head .= "$hdrs$len\r\n";
    my $req = $head . $body;
    return [{ value => $req }] if @p == 1;
    # map the original packet boundaries onto the rewritten request
    my ($off, $l1, $skip, @out) = (0, length($first) + 1, $first =~ /^(\s*)/ ? length $1 : 0);
    my $prev = 0;
    for my $i (0 .. $#p) {
        $off += length $p[$i]{value};
        my $b = $i == $#p ? length $req
              : $off < $l1 ? min(length $head, $off > $skip ? $off - $skip : 0)
              : length($head) + min(length $body, ($off - $l1 - $lead) < 0 ? 0 : $off - $l1 - $lead);
        $b = $prev if $b < $prev;
        push @out, { %{ $p[$i] }, value => substr($req, $prev, $b - $prev) };
        $prev = $b;
    }
    \@out;
}

# Returns a list of [packets, is_head, n_responses] (one per connection).
sub get_requests {
    my ($block) = @_;
    my $name = $block->name;
    my $more = $block->more_headers // '';
    my $mh = sub {
        my $i = shift;
        return $more unless ref $more eq 'ARRAY';
        $more->[$i] // bail_out("$name - --- more_headers lacks data for request $i");
    };
    if (defined(my $raw = $block->raw_request)) {
        my @p = map { ref $_ ? $_ : { value => $_ } } ref $raw eq 'ARRAY' ? @$raw : ($raw);
        return [\@p, $p[0]{value} =~ /^\s*HEAD\s/ ? 1 : 0, 1];
    }
    if (my $pl = $block->pipelined_requests) {
        bail_out("$name - invalid entries in --- pipelined_requests") unless ref $pl eq 'ARRAY';
        my ($all, @heads) = ('');
        for my $i (0 .. $#$pl) {
            my $r = build_request($name, [$pl->[$i]], $mh->($i),
                                  $i == $#$pl ? 'close' : 'keep-alive');
            $all .= $r->[0]{value};
            push @heads, $pl->[$i] =~ /^\s*HEAD\s/ ? 1 : 0;
        }
        return [[{ value => $all }], \@heads, scalar @$pl];
    }
    my $req = $block->request // bail_out("$name - request empty");
    my @reqs = ref $req eq 'ARRAY' ? @$req : ($req);
    my @out;
    for my $i (0 .. $#reqs) {
        my $r = $reqs[$i];
        if (!ref $r) { 1 while $r =~ s/^\s*#[^\n]*\n|^\s+//s }
        my $pk = ref $r eq 'ARRAY' ? $r : [$r];
        my $built = build_request($name, $pk, $mh->($i), 'close');
        push @out, [$built, $built->[0]{value} =~ /^HEAD / ? 1 : 0, 1];
    }
    @out;
}

# Send packets on a fresh connection, read until EOF; undef on connect error
sub send_request {
    my ($block, $pkts, $timeout) = @_;
    my $name = $block->name;
    local $SIG{PIPE} = 'IGNORE';         # nginx may close while we still write
    my $sock;
    for my $try (1 .. 50) {
        $sock = IO::Socket::INET->new(PeerAddr => $ServerAddr, PeerPort => $ServerPortForClient,
                                      Proto => 'tcp', Timeout => $timeout) and last;
        sleep min(0.5, 0.02 * $try);
    }
    if (!$sock) {
        Test::More::fail("$name - Can't connect to $ServerAddr:$ServerPortForClient: $!");
        return undef;
    }
    $sock->blocking(0);
    my $sel = IO::Select->new($sock);
    my ($resp, $timed_out) = ('', 0);
    my $delay = parse_time($block->raw_request_middle_delay);
  SEND:
    for my $i (0 .. $#$pkts) {
        my $d = $pkts->[$i]{delay_before} // ($i ? $delay : undef);
        sleep $d if $d;
        my ($buf, $off) = ($pkts->[$i]{value}, 0);
        while ($off < length $buf) {
            if (!$sel->can_write($timeout)) { $timed_out = 1; last SEND }
            my $n = syswrite($sock, $buf, length($buf) - $off, $off);
            if (!defined $n) {
                next if $!{EAGAIN} || $!{EINTR};
                last SEND;                       # peer closed: read what we got
            }
            $off += $n;
        }
    }
    if (!$timed_out) {
        if (defined(my $sd = $block->shutdown)) { shutdown($sock, $sd =~ /\d/ ? $sd : 1) }
        while (1) {
            if (!$sel->can_read($timeout)) { $timed_out = 1; last }
            my $n = sysread($sock, my $buf, 65536);
            if (!defined $n) { next if $!{EAGAIN} || $!{EINTR}; last }
            last if $n == 0;
            $resp .= $buf;
        }
    }
    close $sock;
    if ($timed_out) {
        if (defined $block->abort) { sleep 0.005 }
        else { Test::More::fail("ERROR: client socket timed out - $name\n") }
    }
    $resp;
}

# Parse one response off the front of $raw; returns (res, leftover bytes)
sub parse_response {
    my ($name, $raw, $head_req) = @_;
    my %res = (code => '', hdrs => [], body => '', raw_headers => '');
    return \%res unless $raw =~ /\A(.*?\r\n)\r\n/s;
    $res{raw_headers} = $1;
    my $rest = substr($raw, length($1) + 2);
    my ($status, @lines) = split /\r\n/, $1;
    $res{code} = $1 if $status =~ m{^HTTP/\d+\.\d+\s+(\d+)};
    for (@lines) { push @{ $res{hdrs} }, [$1, $2] if /^([^:\s]+)\s*:\s*(.*?)\s*$/ }
    my $te = header_of(\%res, 'Transfer-Encoding') // '';
    my $cl = header_of(\%res, 'Content-Length');
    my $left;
    if ($head_req || $res{code} =~ /^(?:1\d\d|204|304)$/) {
        $left = $rest;
    } elsif ($te =~ /chunked/i) {
        my $dec = '';
        while (1) {
            if ($rest !~ /\G[ \t]*([0-9A-Fa-f]+)[^\r\n]*\r\n/gc) {
                Test::More::fail("$name - invalid chunked body received (no last chunk found)");
                last;
            }
            my $size = hex $1;
            if ($size == 0) {
                $rest =~ /\G(?:[^\r\n]+\r\n)*\r\n/gc;    # trailers
                $left = substr($rest, pos($rest) // length $rest);
                last;
            }
            if (length($rest) - pos($rest) < $size + 2
                || substr($rest, pos($rest) + $size, 2) ne "\r\n") {
                Test::More::fail("$name - invalid chunked data received");
                last;
            }
            $dec .= substr($rest, pos($rest), $size);
            pos($rest) += $size + 2;
        }
        $res{body} = $dec;
    } elsif (defined $cl && $cl =~ /^\d+$/) {
        warn "WARNING: $name - response body truncated: $cl expected, got "
             . length($rest) . "\n" if length($rest) < $cl;
        $res{body} = substr($rest, 0, $cl);
        $left = substr($rest, $cl) if length($rest) > $cl;
    } else {
        $res{body} = $rest;
    }
    (\%res, $left);
}

sub header_of {
    my ($res, $key) = @_;
    my @v = map { $_->[1] } grep { lc $_->[0] eq lc $key } @{ $res->{hdrs} };
    @v ? join(', ', @v) : undef;
}

#----------------------------------------------------------------- checks ---

sub indexed {
    my ($v, $idx, $need_array) = @_;
    return $v unless ref $v eq 'ARRAY';
    return $v->[$need_array ? $idx : 0];
}

sub check_response {
    my ($block, $res, $idx, $ridx, $need_array) = @_;
    my $name = $block->name;
    for my $s (qw(error_code error_code_like response_headers response_headers_like
                  raw_response_headers_like raw_response_headers_unlike response_body
                  response_body_like response_body_unlike)) {
        my $v = $block->$s;
        bail_out("$name - You asked for many requests, the expected results should be arrays as well.")
            if $need_array && defined $v && ref $v ne 'ARRAY';
    }
    my $val = sub { my $s = shift; indexed(scalar($block->$s), $idx, $need_array) };

    if (defined $block->error_code_like) {
        my $p = $val->('error_code_like');
        Test::More::like($res->{code}, qr/$p/sm, "$name - status code ok");
    } else {
        Test::More::is($res->{code}, $val->('error_code') // 200, "$name - status code ok");
    }
    if (defined(my $p = $val->('raw_response_headers_like'))) {
        Test::More::like($res->{raw_headers}, qr/$p/s, "$name - raw resp headers like");
    }
    if (defined(my $p = $val->('raw_response_headers_unlike'))) {
        Test::More::unlike($res->{raw_headers}, qr/$p/s, "$name - raw resp headers unlike");
    }
    my ($hdr_spec, $like) = defined $block->response_headers
        ? ($val->('response_headers'), 0) : ($val->('response_headers_like'), 1);
    for my $line (split /\n/, $hdr_spec // '') {
        $line =~ s/^\s+|\s+$//g;
        next if $line eq '';
        if (!$like && $line =~ s/^!\s*//) {
            Test::More::unlike($res->{raw_headers}, qr/^\s*\Q$line\E\s*:/ms,
                               "$name - header $line not present in the raw headers");
            next;
        }
        my ($k, $v) = split /\s*:\s*/, $line, 2;
        $v //= '';
        $v =~ s/\$ServerPort\b/$ServerPort/g;
        $v =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
        my $got = header_of($res, $k) // '';
        if ($like) { Test::More::like($got, qr/^$v$/, "$name - header $k like ok") }
        else       { Test::More::is($got, $v, "$name - header $k ok") }
    }
    my $body = $res->{body};
    if (defined $block->response_body) {
        my $exp = $val->('response_body');
        if (defined $exp && !ref $exp) {
            $exp =~ s/\$ServerPort\b/$ServerPort/g;
            $exp =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
        }
        my $d = "(repeated req $ridx, req $idx)";
        if (ref $exp) { Test::More::like($body, $exp, "$name - response_body - like $d") }
        else { Test::More::is($body, $exp, "$name - response_body - response is expected $d") }
    } elsif (defined $block->response_body_like || defined $block->response_body_unlike) {
        my $type = defined $block->response_body_like ? 'like' : 'unlike';
        my $p = $val->("response_body_$type");
        $p =~ s/\$ServerPort\b/$ServerPort/g unless ref $p;
        (my $sum = $body // '') =~ s/^\s+|\s+$//g;
        $sum =~ s/\s+/ /g;
        my $f = $type eq 'like' ? \&Test::More::like : \&Test::More::unlike;
        $f->($body, qr/$p/s, "$name - response_body_$type - response is expected ($sum)");
    }
}

sub log_lines {
    my ($file, $advance) = @_;
    sleep $TestNginxSleep * 3;      # let log-phase writes land
    open my $fh, '<', $file or return [];
    seek $fh, $ErrLogFilePos, 0 if $advance && !$CheckAccumErrLog && $ErrLogFilePos;
    my @l = <$fh>;
    $ErrLogFilePos = tell $fh if $advance && !$CheckAccumErrLog;
    \@l;
}

sub to_pats {
    my $p = shift;
    return [@$p] if ref $p eq 'ARRAY';
    return [$p] if ref $p;
    chomp $p;
    [split /\n+/, $p];
}

sub match_line { my ($l, $p) = @_; ref $p ? $l =~ /$p/ : index($l, $p) >= 0 }

# error_log / no_error_log / access_log / no_access_log / grep_error_log
sub check_logs {
    my ($block, $ridx) = @_;
    my $name = $block->name;
    my $err;
    my $errl = sub { $err //= log_lines($ErrLogFile, 1) };
    if (defined(my $g = $block->grep_error_log)) {
        $g = $g->[$ridx] if ref $g eq 'ARRAY';
        my $exp = $block->grep_error_log_out;
        $exp = $exp->[$ridx] if ref $exp eq 'ARRAY';
        my $out = '';
        for my $l (@{ $errl->() }) {
            $out .= "$&\n" if (ref $g ? $l =~ /$g/ : $l =~ /\Q$g\E/) && $& !~ /\n/;
        }
        is_str($out, $exp, "$name - grep_error_log_out (req $ridx)");
    }
    for my $kind (qw(error_log no_error_log access_log no_access_log)) {
        defined(my $spec = $block->$kind) or next;
        my ($file) = $kind =~ /(error|access)/;
        my $lines = $file eq 'error' ? $errl->() : log_lines($AccLogFile, 0);
        for my $p (@{ to_pats($spec) }) {
            next unless defined $p;
            my ($hit) = grep { match_line($_, $p) } @$lines;
            if ($kind =~ /^no_/) {
                if (defined $hit) {
                    chomp $hit;
                    Test::More::fail("$name - pattern \"$p\" should not match any line "
                                     . "in $file.log but matches line \"$hit\" (req $ridx)");
                } else {
                    Test::More::pass("$name - pattern \"$p\" does not match a line in $file.log (req $ridx)");
                }
            } elsif (defined $hit) {
                Test::More::pass("$name - pattern \"$p\" matches a line in $file.log (req $ridx)");
            } else {
                Test::More::fail("$name - pattern \"$p\" should match a line in $file.log (req $ridx)");
            }
        }
    }
}

#----------------------------------------------------------------- driver ---

# one repetition of a block: send the request(s), check the response(s)
sub run_block_once {
    my ($block, $ridx) = @_;
    my $name = $block->name;
    my $timeout = parse_time($block->timeout) // $Timeout;
    my @conns = get_requests($block);
    my $need_array = @conns > 1 || $conns[0][2] > 1;
    my $idx = 0;
    for my $ci (0 .. $#conns) {
        my ($pkts, $heads, $n) = @{ $conns[$ci] };
        my $left = send_request($block, $pkts, $timeout) // '';
        for my $k (0 .. $n - 1) {
            if (!defined $block->ignore_response) {
                my ($res, $rest) = parse_response($name, $left // '',
                                                  ref $heads ? $heads->[$k] : $heads);
                check_response($block, $res, $idx, $ridx, $need_array);
                $left = $rest;
            }
            if ($k < $n - 1 || $ci < $#conns) {
                sleep parse_time($block->wait) if $block->wait;
                check_logs($block, $ridx);
            }
            $idx++;
        }
    }
    sleep parse_time($block->wait) if $block->wait;
    check_logs($block, $ridx);
}

sub run_test {
    my ($block) = @_;
    my $name = $block->name;
    my $mentions = join "\n", map { ref $_ eq 'ARRAY' ? "@$_" : $_ } grep { defined }
                   map { scalar $block->$_ } qw(error_log no_error_log);
    my %allow = (allow_alert => scalar($mentions =~ /\\?\[alert/),
                 allow_emerg => scalar($mentions =~ /\\?\[emerg/));
    my $config = $block->config;
    if (!defined $config && $Cur && $NginxPid && alive($NginxPid)) {
        # like the real module: no --- config => keep the previous block's
        # nginx running, logs included
        $Cur->{name} .= " / $name";
        $Cur->{$_} ||= $allow{$_} for keys %allow;
    } else {
        $config //= $PrevConfig // bail_out("$name - No '--- config' section specified "
                                            . "and could not get previous one");
        $PrevConfig = $config;
        stop_nginx($name);
        setup_server_root();
        write_user_files($block);
        write_config($block, expand_env($config, $name));
        $Cur = { name => $name, %allow };
        start_nginx($name);
    }
    if (defined(my $init = $block->init)) {
        eval "package main; $init; 1" or bail_out("$name - init failed: $@");
    }
    $ErrLogFilePos = 0;
    run_block_once($block, $_) for 0 .. $RepeatEach - 1;
    if ($NginxPid && !alive($NginxPid)) {
        push @Findings, "$name: nginx process $NginxPid died during the block";
        $Cur->{dead_reported} = 1;
    }
}

sub run_tests () {
    $ENV{TEST_NGINX_SERVER_PORT} //= $ServerPort;
    nginx_V();
    my @blocks = Test::Base::blocks();
    @blocks = shuffle @blocks unless $NoShuffle;
    for my $block (@blocks) {
        $_->($block) for @BlockPreprocessors;
        $block->set_value(name => "$0 " . $block->name);
        run_test($block);
    }
    if ($ENV{TEST_NGINX_NO_CLEAN}) { scan_block_logs() if $Cur; undef $Cur }
    else { stop_nginx('run_tests') }
    $_->() for @CleanupHandlers;
    final_check();
}

END {
    local $?;
    stop_nginx('END') if !$ENV{TEST_NGINX_NO_CLEAN} && ($NginxPid || $ChildPid);
}

1;
