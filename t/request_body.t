#!/usr/bin/env perl
# Request bodies larger than client_body_buffer_size, which nginx keeps in
# a temporary file (issue 16: no synchronous file reads on the request
# path). The Idempotency-Key fingerprint hashes the body and the API copies
# it as the request body filter passes it on, before nginx writes it out:
# the fingerprint must be the same as for a body kept in memory, a replay
# must match, a different body under the same key must not, and a chunked
# body past the API's 64 KB must be refused without being kept.

use strict;
use warnings;

use Test::More;
use Worksible::Test qw(company api_key http_config nginx_start nginx_stop
    http json psql_value redis_cli);

my $company = company(plan => 'growth');
my $key = api_key($company, 'freelancers:read freelancers:write')->{key};
my %auth = (Authorization => "Bearer $key",
            'Content-Type' => 'application/json');

my $counter = "/tmp/worksible-request-body-$$.calls";
Worksible::Test::service(1942, $counter);

# /v1/ in memory; /file/v1/ with every body in a temporary file (a small
# buffer, and client_body_in_file_only); /svc/ proxied with the same
nginx_start(name => 'request_body', port => 1945,
    http => http_config() . "    client_body_buffer_size 1k;\n",
    server => <<'SERVER');
        listen 127.0.0.1:1946 http2;
        location /v1/ {
            client_body_buffer_size 128k;
            worksible_auth on;
            worksible_idempotency on;
            worksible_api;
        }
        location /file/v1/ {
            client_body_in_file_only clean;
            rewrite ^/file(/v1/.*)$ $1 break;
            worksible_auth on;
            worksible_idempotency on;
            worksible_api;
        }
        location /limited/v1/ {
            client_max_body_size 1k;
            worksible_auth on;
            worksible_idempotency on;
            rewrite ^/limited(/v1/.*)$ $1 break;
            error_page 413 = @api;
            worksible_api;
        }
        location /limited/svc/ {
            client_max_body_size 1k;
            worksible_auth on;
            worksible_idempotency on;
            proxy_pass http://127.0.0.1:1942;
            error_page 413 = @api;
        }
        location @api {
            rewrite ^ /v1/freelancers break;
            worksible_auth on;
            worksible_api;
        }
        location /svc/ {
            client_body_in_file_only clean;
            worksible_auth on;
            worksible_idempotency on max_size=1m;
            proxy_pass http://127.0.0.1:1942;
        }
SERVER

# a freelancer's JSON padded with $pad spaces (JSON whitespace)
sub body {
    my ($email, $pad) = @_;
    return qq({"email":"$email","name":"Big Body",) . (' ' x $pad)
         . qq("country":"DE"});
}

my $big = body('big@body.example', 20_000);
my $r = http('POST', '/file/v1/freelancers',
             { %auth, 'Idempotency-Key' => 'rb-1' }, body => $big);
is($r->{status}, 201, 'a 20 KB body kept in a temporary file: 201');
my $id = eval { json()->decode($r->{body})->{id} } // '';
like($id, qr/^fl_/, 'the freelancer it made');
is(psql_value("SELECT count(*) FROM freelancers WHERE email = 'big\@body.example'"),
   1, 'one row');

$r = http('POST', '/v1/freelancers',
          { %auth, 'Idempotency-Key' => 'rb-1' }, body => $big);
is($r->{status}, 201, 'the same body, in memory this time: the replay');
is($r->{headers}{'idempotent-replayed'}, 'true',
   'Idempotent-Replayed: true (the fingerprints of file and memory agree)');
is(eval { json()->decode($r->{body})->{id} } // '', $id, 'the same freelancer');

$r = http('POST', '/file/v1/freelancers',
          { %auth, 'Idempotency-Key' => 'rb-1' },
          body => body('big@body.example', 20_001));
is($r->{status}, 422, 'one more byte of the body under the same key: 422');
like($r->{body}, qr/idempotency_key_reused/, 'idempotency_key_reused');
is(psql_value("SELECT count(*) FROM freelancers WHERE email = 'big\@body.example'"),
   1, 'still one row');

# the worker never reads an API body back from its temporary file: strace
# (-y names each descriptor's file) on the worker during one such request
{
    my $prefix = "$ENV{WORKSIBLE_TOP}/t/servroot_request_body";
    my ($master) = Worksible::Test::slurp("$prefix/logs/nginx.pid") =~ /(\d+)/;
    my ($worker) = Worksible::Test::workers_of($master);
    my $trace = "$prefix/logs/strace.txt";
    my $pid = fork // die;
    if (!$pid) {
        open STDERR, '>', "$prefix/logs/strace.err";
        exec 'strace', '-y', '-p', $worker, '-e',
             'trace=read,recvfrom,pread64,readv,preadv,preadv2', '-o', $trace;
    }
    for (1 .. 100) {
        last if (Worksible::Test::slurp("$prefix/logs/strace.err") // '') =~ /attached/;
        select undef, undef, undef, 0.05;
    }
    $r = http('POST', '/file/v1/freelancers', \%auth,
              body => body('strace@body.example', 20_000));
    kill 'INT', $pid;
    waitpid $pid, 0;
    is($r->{status}, 201, 'a 20 KB body in a temporary file, traced: 201');
    my @temp = grep { m{<\Q$prefix\E/tmp/} }
               split /\n/, Worksible::Test::slurp($trace) // '';
    my @any = grep { /^(read|recvfrom)\(/ } split /\n/, Worksible::Test::slurp($trace) // '';
    ok(@any > 0, 'strace saw the worker read (the client socket at least)');
    is(scalar @temp, 0, 'and no read of the temporary file')
        or diag join "\n", @temp[0 .. ($#temp < 4 ? $#temp : 4)];
}

# chunked: no Content-Length, the copy grows as the body comes
sub chunked {
    my ($path, $hdrs, $body) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:1945') or die;
    my $req = "POST $path HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
            . "Transfer-Encoding: chunked\r\n";
    $req .= "$_: $hdrs->{$_}\r\n" for sort keys %$hdrs;
    $req .= "\r\n";
    for (my $i = 0; $i < length $body; $i += 3000) {
        my $c = substr($body, $i, 3000);
        $req .= sprintf("%x\r\n%s\r\n", length $c, $c);
    }
    print $s "${req}0\r\n\r\n";
    local $/;
    return Worksible::Test::response(scalar <$s>);
}

$r = chunked('/file/v1/freelancers', { %auth, 'Idempotency-Key' => 'rb-2' },
             body('chunked@body.example', 30_000));
is($r->{status}, 201, 'a chunked 30 KB body in a temporary file: 201');
$r = chunked('/v1/freelancers', { %auth, 'Idempotency-Key' => 'rb-2' },
             body('chunked@body.example', 30_000));
is($r->{headers}{'idempotent-replayed'}, 'true', 'and its replay');

$r = chunked('/file/v1/freelancers', \%auth,
             body('toolarge@body.example', 70_000));
is($r->{status}, 413, 'a chunked body past 64 KB: 413');
like($r->{body}, qr/body_too_large/, 'body_too_large');
is(psql_value("SELECT count(*) FROM freelancers WHERE email = 'toolarge\@body.example'"),
   0, 'no row');

$r = chunked('/file/v1/freelancers', { %auth, 'Idempotency-Key' => 'rb-3' },
             body('toolarge@body.example', 70_000));
is($r->{status}, 413, 'the same with an Idempotency-Key: 413');
$r = chunked('/file/v1/freelancers', { %auth, 'Idempotency-Key' => 'rb-3' },
             body('toolarge@body.example', 70_000));
is($r->{status}, 413, 'sent again: the kept 413 (a 4xx is kept, API.md)');
is($r->{headers}{'idempotent-replayed'}, 'true', 'replayed');
$r = chunked('/file/v1/freelancers', { %auth, 'Idempotency-Key' => 'rb-3' },
             body('toolarge@body.example', 10));
is($r->{status}, 422, 'a small body under the key: 422 idempotency_key_reused');
is(psql_value("SELECT count(*) FROM freelancers WHERE email = 'toolarge\@body.example'"),
   0, 'no row');

# proxied: the service gets the whole body from the file, the key replays
my $payload = 'p' x 50_000;
$r = http('POST', '/svc/things', { %auth, 'Idempotency-Key' => 'rb-4' },
          body => $payload);
is($r->{status}, 201, 'a 50 KB body proxied from its temporary file: 201');
like($r->{body}, qr/"body":"p{50000}"/, 'the service got all of it');
$r = http('POST', '/svc/things', { %auth, 'Idempotency-Key' => 'rb-4' },
          body => $payload);
is($r->{headers}{'idempotent-replayed'}, 'true', 'the replay');
is(Worksible::Test::calls($counter), 1, 'one call to the service');
$r = http('POST', '/svc/things', { %auth, 'Idempotency-Key' => 'rb-4' },
          body => 'q' . substr($payload, 1));
is($r->{status}, 422, 'another body of the same length under the key: 422');
is(Worksible::Test::calls($counter), 1, 'still one call');

# --- the fingerprint, whatever way the body came --------------------------
#
# BLAKE2b-256 of method NUL path NUL query NUL body, the same bytes as
# before the body was hashed as it arrives (records of earlier versions
# still match): computed here by coreutils' b2sum, and read from the record
# in Redis

sub b2 {
    my ($bytes) = @_;
    my $f = "$ENV{WORKSIBLE_TOP}/t/servroot_request_body/fp.in";
    open my $fh, '>:raw', $f or die;
    print $fh $bytes;
    close $fh;
    my ($hex) = `b2sum -l 256 $f` =~ /^([0-9a-f]{64})/;
    return $hex // 'b2sum failed';
}

sub fp { redis_cli('HGET', "worksible:idem:{$company}:$_[0]", 'fp') }

# the answers to raw bytes sent on one connection (pieces apart)
sub raw {
    my (@pieces) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:1945') or die;
    for (@pieces) {
        print $s $_;
        $s->flush;
        select undef, undef, undef, 0.2 if @pieces > 1;
    }
    local $/;
    return scalar <$s>;
}

my $head = "Host: localhost\r\nAuthorization: Bearer $key\r\n";

# chunked: 1-byte chunks with extensions, one large chunk, a trailer
my $payload2 = join '', map { chr(97 + $_ % 26) } 0 .. 4999;
my $req = "POST /svc/fp?a=1 HTTP/1.1\r\n${head}Connection: close\r\n"
        . "Idempotency-Key: rb-fp-1\r\nTransfer-Encoding: chunked\r\n\r\n";
$req .= "1;ext=v\r\n" . substr($payload2, $_, 1) . "\r\n" for 0 .. 299;
$req .= sprintf("%x;a=\"b c\"\r\n%s\r\n", 4700, substr($payload2, 300));
$r = Worksible::Test::response(raw("${req}0\r\nX-Trailer: t\r\n\r\n"));
is($r->{status}, 201, 'chunked: 300 one-byte chunks with extensions, a trailer: 201');
like($r->{body}, qr/"body":"\Q$payload2\E"/, 'the service got the body');
is(fp('rb-fp-1'), b2("POST\0/svc/fp\0a=1\0$payload2"), 'its fingerprint');

# Expect: 100-continue, the body sent after the 100 in two pieces
my $raw = raw("POST /svc/fp HTTP/1.1\r\n${head}Connection: close\r\n"
              . "Idempotency-Key: rb-fp-2\r\nExpect: 100-continue\r\n"
              . "Content-Length: 3000\r\n\r\n",
              'e' x 1000, 'f' x 2000);
like($raw, qr{^HTTP/1\.1 100 Continue\r\n\r\nHTTP/1\.1 201 }, 'Expect: 100-continue: 100, then 201');
is(fp('rb-fp-2'), b2("POST\0/svc/fp\0\0" . ('e' x 1000) . ('f' x 2000)),
   'its fingerprint');

# two POSTs on one keep-alive connection, sent at once: each hashes its own
$raw = raw("POST /svc/fp HTTP/1.1\r\n${head}Idempotency-Key: rb-fp-3\r\n"
           . "Content-Length: 2000\r\n\r\n" . ('A' x 2000)
           . "POST /svc/fp HTTP/1.1\r\n${head}Idempotency-Key: rb-fp-4\r\n"
           . "Transfer-Encoding: chunked\r\n\r\n7d0\r\n" . ('B' x 2000)
           . "\r\n0\r\n\r\n"
           . "POST /svc/fp HTTP/1.1\r\n${head}Idempotency-Key: rb-fp-5\r\n"
           . "Connection: close\r\nContent-Length: 0\r\n\r\n");
is(() = $raw =~ m{HTTP/1\.1 201 }g, 3, 'three pipelined POSTs: 201 each');
is(fp('rb-fp-3'), b2("POST\0/svc/fp\0\0" . ('A' x 2000)), 'the first one\'s body');
is(fp('rb-fp-4'), b2("POST\0/svc/fp\0\0" . ('B' x 2000)), 'the second one\'s (chunked)');
is(fp('rb-fp-5'), b2("POST\0/svc/fp\0\0"), 'the third one\'s, empty (Content-Length: 0)');

# HTTP/2: the API's body in DATA frames, then its replay over HTTP/1.1
my $h2body = body('h2@body.example', 20_000);
my $h2file = "$ENV{WORKSIBLE_TOP}/t/servroot_request_body/h2.json";
open my $h2fh, '>', $h2file or die;
print $h2fh $h2body;
close $h2fh;
my $h2 = `curl -s --http2-prior-knowledge -o /dev/null -w '%{http_version} %{http_code}' -H 'Authorization: Bearer $key' -H 'Content-Type: application/json' -H 'Idempotency-Key: rb-fp-6' --data-binary \@$h2file http://127.0.0.1:1946/file/v1/freelancers`;
is($h2, '2 201', 'HTTP/2: a 20 KB API body in a temporary file: 201');
is(fp('rb-fp-6'), b2("POST\0/v1/freelancers\0\0$h2body"), 'its fingerprint');
$r = http('POST', '/v1/freelancers', { %auth, 'Idempotency-Key' => 'rb-fp-6' },
          body => $h2body);
is($r->{headers}{'idempotent-replayed'}, 'true', 'replayed over HTTP/1.1');
is(psql_value("SELECT count(*) FROM freelancers WHERE email = 'h2\@body.example'"),
   1, 'one row');

# the API's bound, chunked (no Content-Length): 64 KB exactly, and one more
for my $n (65_536, 65_537) {
    my $json = body("edge$n\@body.example", 0);
    $json .= ' ' x ($n - length $json);
    $r = chunked('/file/v1/freelancers', \%auth, $json);
    is($r->{status}, $n == 65_536 ? 201 : 413, "a chunked body of $n bytes: $r->{status}");
}

# a body nginx refused part way (past client_max_body_size, chunked) and
# an error_page that sends the request on to our API: what was read of it
# is not the body, even when it is a whole JSON object, and creates nothing
sub chunked_slowly {
    my ($path, $hdrs, @chunks) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:1945') or die;
    my $req = "POST $path HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
            . "Transfer-Encoding: chunked\r\n";
    $req .= "$_: $hdrs->{$_}\r\n" for sort keys %$hdrs;
    print $s "$req\r\n";
    for my $c (@chunks) {
        print $s sprintf("%x\r\n%s\r\n", length $c, $c);
        $s->flush;
        select undef, undef, undef, 0.2;    # read and saved before the next
    }
    print $s "0\r\n\r\n";
    local $/;
    return Worksible::Test::response(scalar <$s>);
}

for my $case (['/limited/v1/freelancers', 'partial-api@body.example', 'rb-5'],
              ['/limited/svc/x', 'partial-svc@body.example', undef])
{
    my ($path, $email, $idem) = @$case;
    my $json = qq({"email":"$email","name":"Part","country":"DE"});
    $r = chunked_slowly($path, { %auth, $idem ? ('Idempotency-Key' => $idem) : () },
                        $json . (' ' x (800 - length $json)), ' ' x 800);
    is($r->{status}, 400, "$path: 413 part way, error_page to the API: 400");
    like($r->{body}, qr/"detail":"The body was not received whole.","code":"invalid_json"/,
         'invalid_json: the body was not received whole');
    is(psql_value("SELECT count(*) FROM freelancers WHERE email = '$email'"),
       0, 'no row from the part that was read');
}

# the key of a body nginx refused part way is not reserved: the retry runs
$r = chunked_slowly('/limited/svc/x', { %auth, 'Idempotency-Key' => 'rb-7' },
                    'x' x 800, 'x' x 800);
is($r->{status}, 400, 'a keyed body past client_max_body_size (to the API): 400');
is(redis_cli('EXISTS', "worksible:idem:{$company}:rb-7"), 0, 'the key is not reserved');
$r = http('POST', '/limited/svc/x', { %auth, 'Idempotency-Key' => 'rb-7' },
          body => 'small');
is($r->{status}, 201, 'the retry with a smaller body runs: 201');
like($r->{body}, qr/"body":"small"/, 'with its body');

# after a reload (the new workers' request body filter chain): a record
# made before it still matches, a new one hashes its body
{
    my $pidfile = "$ENV{WORKSIBLE_TOP}/t/servroot_request_body/logs/nginx.pid";
    my ($master) = Worksible::Test::slurp($pidfile) =~ /(\d+)/;
    my %old = map { $_ => 1 } grep { (Worksible::Test::slurp("/proc/$_/stat") // '')
                                     =~ /^\d+ \(.*?\) \S (\d+) / && $1 == $master }
                              map { m{/(\d+)$} ? $1 : () } glob '/proc/[0-9]*';
    Worksible::Test::nginx_reload();
    for (1 .. 100) {
        last unless grep { kill 0, $_ } keys %old;
        select undef, undef, undef, 0.05;
    }
    ok(!grep({ kill 0, $_ } keys %old), 'reloaded: the old worker is gone');
}
$r = http('POST', '/v1/freelancers', { %auth, 'Idempotency-Key' => 'rb-1' }, body => $big);
is($r->{headers}{'idempotent-replayed'}, 'true', 'after a reload: the replay of rb-1');
$r = chunked('/svc/reloaded', { %auth, 'Idempotency-Key' => 'rb-fp-7' }, 'r' x 3000);
is($r->{status}, 201, 'a new keyed body after the reload: 201');
is(fp('rb-fp-7'), b2("POST\0/svc/reloaded\0\0" . ('r' x 3000)), 'its fingerprint');

nginx_stop();
unlink $counter;

done_testing();
