# Self-test of the compat Test::Nginx::Socket runner (t/compat) against a
# stock nginx.  Compat-only (it runs nested files against this runner), so
# it skips itself under the real Test::Nginx.  Run from the repository root:
#
#   TEST_NGINX_BINARY=/usr/sbin/nginx prove -I t/compat t/compat/selftest.t
#
# Uses its own port (default 19840..19845) and servroot so that it does not
# disturb a suite running on 1984 / t/servroot at the same time.

BEGIN {
    $ENV{TEST_NGINX_PORT} ||= 19840;
    $ENV{TEST_NGINX_BACKEND_PORT} = $ENV{TEST_NGINX_PORT} + 1;
    $ENV{TEST_NGINX_SERVROOT} ||= 't/servroot_compat_selftest';
    $ENV{TEST_NGINX_SELFTEST_ENV} = 'x';
    # nested runs make nginx refuse its config and exit without freeing
    # what it parsed: not a leak of this project (make test-asan)
    $ENV{ASAN_OPTIONS} .= ':detect_leaks=0' if $ENV{ASAN_OPTIONS};
}

use Test::Nginx::Socket;
use File::Spec ();
use File::Temp qw(tempdir);

if ($INC{'Test/Nginx/Socket.pm'} !~ m{compat}) {
    plan skip_all => 'compat self-test (the real Test::Nginx is in use)';
}
plan 'no_plan';

repeat_each(2);
no_shuffle();
master_on();
workers(2);
log_level('info');
env_to_nginx('TEST_NGINX_SELFTEST_ENV');

run_tests();

#--- the runner must also *fail* when it should: run small nested files ---

my $compat = File::Spec->rel2abs('t/compat');
my $tmp = tempdir(CLEANUP => 1);

sub nested {
    my ($port, $code, %env) = @_;
    open my $fh, '>', "$tmp/n.t" or die $!;
    print $fh $code;
    close $fh;
    local $ENV{TEST_NGINX_PORT} = $ENV{TEST_NGINX_PORT} + $port;
    local $ENV{TEST_NGINX_SERVROOT} = "$tmp/servroot";
    local @ENV{keys %env} = values %env;
    my $out = `$^X -I$compat $tmp/n.t 2>&1`;
    return ($? >> 8, $out);
}

my %env = (ASAN_OPTIONS => "detect_leaks=0:log_path=$tmp/asan", TMPDIR_SELFTEST => $tmp);
my ($rc, $out) = nested(2, <<'_EOT_', %env);
use Test::Nginx::Socket 'no_plan';
no_shuffle();
master_on();
run_tests();
__DATA__

=== TEST 1: wrong body
--- config
    location = /hi { return 200 "hi"; }
--- request
GET /hi
--- response_body: bye

=== TEST 2: client timeout
--- config
    location = /slow { limit_rate 1; return 200 "0123456789"; }
--- request
GET /slow
--- timeout: 0.3
--- ignore_response

=== TEST 3: crashing worker
--- config
    location = /hi { return 200 "hi"; }
--- init
my $m = Test::Nginx::Socket::read_pid_file();
kill 'SEGV', split ' ', `pgrep -P $m`;
select undef, undef, undef, 0.3;
--- request
GET /hi

=== TEST 4: sanitizer log file appears
--- config
    location = /hi { return 200 "hi"; }
--- init
open my $f, '>', "$ENV{TMPDIR_SELFTEST}/asan.4242" or die;
print $f "==4242==ERROR: LeakSanitizer: detected memory leaks\n";
close $f;
--- request
GET /hi
_EOT_

isnt($rc, 0, 'nested: failing file exits non-zero');
like($out, qr/^not ok \d+ - \S+ TEST 1: wrong body - response_body - response is expected/m,
     'nested: wrong body fails');
like($out, qr/^not ok \d+ - ERROR: client socket timed out - \S+ TEST 2/m,
     'nested: client timeout fails');
like($out, qr/^not ok \d+ - \S+ - no alert\/emerg\/crash\/sanitizer report/m,
     'nested: end-of-file check fails');
# under make test-asan, AddressSanitizer catches the SEGV first
like($out, qr/TEST 3: crashing worker: .*(exited on signal 11|AddressSanitizer)/,
     'nested: worker crash reported');
like($out, qr/TEST 4: sanitizer log file appears: sanitizer report \S+asan\.4242/,
     'nested: sanitizer log file reported');

# a config nginx refuses: bail out (like the real module) with the reason
($rc, $out) = nested(3, <<'_EOT_');
use Test::Nginx::Socket 'no_plan';
run_tests();
__DATA__

=== TEST 1: unknown directive
--- config
    location = /hi { no_such_directive; }
--- request
GET /hi
_EOT_
isnt($rc, 0, 'nested: start failure exits non-zero');
like($out, qr/Bail out!.*TEST 1.*Cannot start nginx.*unknown directive "no_such_directive"/s,
     'nested: nginx start failure bails out with the reason');

# numeric plan: the extra check adds no test when it passes
($rc, $out) = nested(4, <<'_EOT_');
use Test::Nginx::Socket;
plan tests => repeat_each() * 2 * blocks();
run_tests();
__DATA__

=== TEST 1: plain
--- config
    location = /hi { return 200 "hi"; }
--- request
GET /hi
--- response_body chomp
hi
_EOT_
is($rc, 0, 'nested: numeric plan passes') or diag $out;
like($out, qr/^1\.\.2$/m, 'nested: plan is 2');
unlike($out, qr/no alert/, 'nested: no extra test with a numeric plan');

__DATA__

=== TEST 1: return 200 with a body
--- config
    location = /hi { return 200 "hi"; }
--- request
GET /hi
--- response_body chomp
hi
--- no_error_log
[error]
[alert]



=== TEST 2: response headers (exact, absent, empty)
--- config
    location = /h {
        add_header X-Foo "bar baz";
        return 200 "h\n";
    }
--- request
    GET /h
--- response_headers
X-Foo: bar baz
!X-Bar
X-Empty:
Content-Type: text/plain
Content-Length: 2
--- response_body
h



=== TEST 3: response_headers_like, config reused from the previous block
--- request
GET /h
--- response_headers_like
Server: nginx/[\d.]+
X-Foo: bar \w+
--- response_body_like: ^h$



=== TEST 4: 404, error_log and grep_error_log
--- config
    location /static/ { root html; }
--- request
GET /static/nope.txt
--- error_code: 404
--- error_log eval
[qr/\[error\] .*open\(\) ".*nope\.txt" failed/, "No such file or directory"]
--- no_error_log
[alert]
--- grep_error_log chop
No such file or directory
--- grep_error_log_out
No such file or directory



=== TEST 5: user_files served by the default root location
--- config
    location = /dummy { return 204; }
--- user_files
>>> foo.txt
hello file
>>> sub/bar.txt
bar
--- request eval
["GET /foo.txt", "GET /sub/bar.txt", "GET /dummy"]
--- error_code eval
[200, 200, 204]
--- response_body eval
["hello file\n", "bar\n", ""]



=== TEST 6: pipelined requests on one keep-alive connection (incl. HEAD)
--- config
    location = /a { return 200 "a"; }
    location = /b { return 201 "bb"; }
--- pipelined_requests eval
["GET /a", "GET /b", "HEAD /a", "GET /b"]
--- error_code eval
[200, 201, 200, 201]
--- response_headers eval
["Content-Length: 1", "Content-Length: 2", "Content-Length: 1", "Content-Length: 2"]
--- response_body eval
["a", "bb", "", "bb"]



=== TEST 7: chunked response is decoded
--- config
    location = /c {
        sub_filter 'a' 'A';
        sub_filter_once off;
        sub_filter_types *;
        return 200 "banana\n";
    }
--- request
GET /c
--- response_headers
Transfer-Encoding: chunked
!Content-Length
--- response_body
bAnAnA



=== TEST 8: POST body, http_config, $TEST_NGINX_* in config, proxying
--- http_config
    server {
        listen 127.0.0.1:$TEST_NGINX_BACKEND_PORT;
        location / {
            return 200 "len=$http_content_length method=$request_method uri=$uri";
        }
    }
--- config
    location /p {
        proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT;
    }
--- request
POST /p/x
hello world
--- response_body chomp
len=11 method=POST uri=/p/x



=== TEST 9: more_headers with comments, HTTP/1.0, comment before the request
--- config
    location = /echo {
        return 200 "foo=$http_x_foo host=$host conn=$http_connection proto=$server_protocol";
    }
--- more_headers
# a comment
X-Foo: bar
--- request
    # a comment before the request line
    GET /echo HTTP/1.0
--- response_body chomp
foo=bar host=localhost conn=close proto=HTTP/1.0



=== TEST 10: $TEST_NGINX_* through eval in more_headers and expectations
--- more_headers eval
"X-Foo: $ENV{TEST_NGINX_BACKEND_PORT}"
--- request
GET /echo
--- response_body eval
"foo=$ENV{TEST_NGINX_BACKEND_PORT} host=localhost conn=close proto=HTTP/1.1"



=== TEST 11: raw_request (sent verbatim, in two packets)
--- raw_request eval
["GET /echo HTTP/1.1\r\nHost: raw\r\n", "X-Foo: 1\r\nConnection: close\r\n\r\n"]
--- raw_request_middle_delay: 0.05
--- response_body chomp
foo=1 host=raw conn=close proto=HTTP/1.1
--- raw_response_headers_like: ^HTTP/1\.1 200 OK\r\n



=== TEST 12: request split in packets
--- config
    location = /p {
        proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT;
    }
--- http_config
    server {
        listen 127.0.0.1:$TEST_NGINX_BACKEND_PORT;
        location / { return 200 "len=$http_content_length"; }
    }
--- request eval
[["POST /p\nhel", {value => "lo", delay_before => 0.05}]]
--- response_body: len=5



=== TEST 13: client timeout with --- abort does not fail
--- config
    location = /slow { limit_rate 1; return 200 "0123456789"; }
--- request
GET /slow
--- timeout: 200ms
--- abort
--- ignore_response
--- wait: 0.05



=== TEST 14: per-block log_level, main_config, regex bodies
--- main_config
worker_rlimit_nofile 1024;
--- log_level: warn
--- config
    location = /t { return 200 "time=$msec\n"; }
--- request
GET /t
--- response_body eval
qr/^time=\d+\.\d{3}\n\z/
--- no_error_log
[notice]
[info]



=== TEST 15: error_code_like and response_body_unlike
--- config
    location = /t { return 418 "teapot"; }
--- request
GET /t
--- error_code_like: ^4\d\d$
--- response_body_unlike: coffee
