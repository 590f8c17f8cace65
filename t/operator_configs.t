# The module inside configurations operators write around it, beyond the
# cases of t/redirects.t: limit_except and if in an API location (nginx
# serves a request with the block's own configuration), and a
# worksible_idempotency of a location under a server's, and subrequests
# (auth_request, SSI) to a guarded location.

use strict;
use warnings;

use File::Path qw(make_path);
use IO::Socket::INET;
use Test::More;
use Worksible::Test qw(company api_key http_config nginx_start nginx_stop
    http psql problem redis_cli);

# 1955: a whole server guarded, its records kept 5 s; 1966: the backend
my $html = "$ENV{WORKSIBLE_TOP}/t/servroot_operator_configs_html";
make_path("$html/ssi");
open my $fh, '>', "$html/ssi/page.html" or die;
print $fh qq(A<!--# include virtual="/_guard" -->B\n);
close $fh;
open $fh, '>', "$html/ssi/scopes.html" or die;
print $fh qq(<!--# include virtual="/_wguard" -->|<!--# include virtual="/_guard" -->\n);
close $fh;
open $fh, '>', "$html/ssi/two.html" or die;
print $fh qq(A<!--# include virtual="/_lguard2" -->B<!--# include virtual="/_lguard2" -->C\n);
close $fh;

nginx_start(name => 'operator_configs', port => 1949, http => http_config() . "
    server {
        listen 127.0.0.1:1955;
        worksible_auth on;
        worksible_idempotency on ttl=5s lock=300ms;
        location /required/ { worksible_idempotency required;
                              proxy_pass http://127.0.0.1:1966; }
        location = /open { worksible_auth off; proxy_pass http://127.0.0.1:1966; }
        location /tf/ { worksible_idempotency off; try_files /none /open; }
        location / { proxy_pass http://127.0.0.1:1966; }
    }
    server {
        listen 127.0.0.1:1966;
        location / { return 200 \"done\\n\"; }
    }",
    server => "
        location /v1/ { worksible_auth on; worksible_rate_limit on;
                        worksible_idempotency on; worksible_api;
                        limit_except GET { allow 127.0.0.1; deny all; } }
        location /ro/v1/ { worksible_auth on; worksible_api;
                           limit_except GET { deny all; } }
        location /ar/ { auth_request /_guard; proxy_pass http://127.0.0.1:1966; }
        location /gar/ { worksible_auth on; auth_request /_guard;
                         proxy_pass http://127.0.0.1:1966; }
        location = /_guard { internal; worksible_auth on;
                             proxy_pass http://127.0.0.1:1966; }
        location /ssi/ { ssi on; root $html; }
        location /rar/ { auth_request /_rguard; proxy_pass http://127.0.0.1:1966; }
        location /grar/ { worksible_auth on; auth_request /_rguard;
                          proxy_pass http://127.0.0.1:1966; }
        location = /_rguard { internal; worksible_auth on; return 204; }
        location /sar/ { worksible_auth on; auth_request /_wguard;
                         proxy_pass http://127.0.0.1:1966; }
        location = /_wguard { internal; worksible_auth on;
                              worksible_scope freelancers:write;
                              proxy_pass http://127.0.0.1:1966; }
        location /war/ { auth_request /_wguard; proxy_pass http://127.0.0.1:1966; }
        location /lar/ { auth_request /_lguard; proxy_pass http://127.0.0.1:1966; }
        location = /_lguard { internal; worksible_auth on;
                              worksible_rate_limit on; return 204; }
        location /glar/ { worksible_auth on; worksible_rate_limit on;
                          auth_request /_lguard;
                          proxy_pass http://127.0.0.1:1966; }
        location = /_lguard2 { internal; worksible_auth on; worksible_rate_limit on;
                               proxy_pass http://127.0.0.1:1966; }
        location /epar/ { auth_request /_lguard; error_page 502 504 /50x.html;
                          proxy_pass http://127.0.0.1:1966; }
        location = /50x.html { return 200 \"upstream down\\n\"; }
        location /mirror/v1/ { worksible_auth on; worksible_api; mirror /_rguard;
                               rewrite ^/mirror(/v1/.*)\$ \$1 break; }
        location /idm/ { worksible_auth on; worksible_idempotency on;
                         mirror /_wguard; proxy_pass http://127.0.0.1:1966; }
        location /ear/ { auth_request /_rguard; error_page 401 = \@login;
                         proxy_pass http://127.0.0.1:1966; }
        location \@login { return 200 \"login page\\n\"; }
        location /if/v1/ { worksible_auth on; worksible_idempotency on;
                           worksible_api;
                           if (\$http_x_debug) { add_header X-Debug on; }
                           rewrite ^/if(/v1/.*)\$ \$1 break; }");

my $company = company();
my $rw = api_key($company, 'company:read company:write freelancers:read freelancers:write');
my $ro = api_key($company, 'company:read freelancers:read');

sub auth { return { Authorization => "Bearer $_[0]{key}",
                    'Content-Type' => 'application/json' } }

sub rows {
    my ($email) = @_;
    return psql("SELECT count(*) FROM freelancers WHERE email = '$email'")->[0][0];
}

my $n = int(rand(1e9));
my $body = sub { qq({"email":"le$n-$_[0]\@example.com","name":"L E",)
                 . qq("country":"DE","hourly_rate":1000,"currency":"EUR"}) };

# --- limit_except GET { allow ...; } : the other methods still reach the API ---

my $res = http('GET', '/v1/companies/me', auth($rw));
is($res->{status}, 200, 'GET in the location itself');

$res = http('POST', '/v1/freelancers', auth($rw), body => $body->('a'));
is($res->{status}, 201, 'POST allowed by limit_except reaches the API')
    or diag($res->{body});
like($res->{body}, qr/"object":\s*"freelancer"/, 'the API answered it');
is(rows("le$n-a\@example.com"), 1, 'and created the freelancer');

$res = http('PATCH', '/v1/companies/me', auth($rw),
            body => qq({"name":"Renamed $n"}));
is($res->{status}, 200, 'PATCH allowed by limit_except reaches the API')
    or diag($res->{body});
is(psql("SELECT name FROM companies WHERE id = '$company'")->[0][0],
   "Renamed $n", 'and updated the company');

$res = http('DELETE', '/v1/companies/me', auth($rw));
is($res->{status}, 405, 'a method the API lacks: 405');
like($res->{body}, problem(405, 'method_not_allowed'), 'the API\'s problem');

# the API's scope check holds under limit_except's configuration too

$res = http('POST', '/v1/freelancers', auth($ro), body => $body->('b'));
is($res->{status}, 403, 'a read-only key is refused a POST');
like($res->{body}, qr/"code":"insufficient_scope"/, 'for its scope');
is(rows("le$n-b\@example.com"), 0, 'nothing created');

# --- limit_except GET { deny all; } : the others refused, nothing done --------

$res = http('POST', '/ro/v1/freelancers', auth($rw), body => $body->('c'));
is($res->{status}, 403, 'limit_except denies the POST');
is(rows("le$n-c\@example.com"), 0, 'nothing created');

$res = http('GET', '/ro/v1/companies/me', auth($rw));
is($res->{status}, 404, 'GET reaches the API (no route under /ro/)');
like($res->{body}, problem(404, 'route_not_found'), 'the API\'s own problem');

# --- an if block: the scope checked before a replay ---------------------------

my $idem = { 'Idempotency-Key' => "if-$n", 'X-Debug' => 1 };
$res = http('POST', '/if/v1/freelancers', { %{ auth($rw) }, %$idem },
            body => $body->('d'));
is($res->{status}, 201, 'a write through the if block') or diag($res->{body});
is($res->{headers}{'x-debug'}, 'on', 'the if block served it');
is(rows("le$n-d\@example.com"), 1, 'created once');

$res = http('POST', '/if/v1/freelancers', { %{ auth($ro) }, %$idem },
            body => $body->('d'));
is($res->{status}, 403, 'the same key and body with a read-only key: refused');
like($res->{body}, qr/"code":"insufficient_scope"/, 'for its scope, no replay');
ok(!exists $res->{headers}{'idempotent-replayed'}, 'not replayed');

$res = http('POST', '/if/v1/freelancers', { %{ auth($rw) }, %$idem },
            body => $body->('d'));
is($res->{headers}{'idempotent-replayed'}, 'true', 'the writer\'s retry replays');
is(rows("le$n-d\@example.com"), 1, 'still created once');

# --- subrequests to a guarded location -------------------------------------------

# nginx runs no access phase for a subrequest: one entering a guarded
# location runs the key check there, in its rewrite phase, on the client
# request's state (auth_request to it let every request through, then
# was refused 500 for every request)

# the request_logs rows of a path: "method path status api_key_id" each
sub path_rows {
    my ($path, $n) = @_;
    my $deadline = time + 8;
    my $rows;
    do {
        select undef, undef, undef, 0.2;
        $rows = psql("SELECT method || ' ' || path || ' ' || status || ' '
                             || coalesce(api_key_id, '-')
                      FROM request_logs WHERE path = '$path' ORDER BY created_at, id");
    } until @$rows >= $n || time > $deadline;
    return join ',', map { $_->[0] } @$rows;
}

$res = http('GET', "/ar/none-$n", {});
is($res->{status}, 401, 'auth_request to a guarded location, no key: 401');
like($res->{body}, problem(401, 'api_key_missing'), 'the refusal\'s problem, not nginx\'s page');
is($res->{headers}{'content-type'}, 'application/problem+json', 'as problem+json');
is($res->{headers}{'www-authenticate'}, 'Bearer realm="worksible"', 'with its WWW-Authenticate');
like($res->{headers}{'x-request-id'} // '', qr/^req_[0-9A-Z]{26}$/, 'and our X-Request-Id');
unlike($res->{body}, qr/done/, 'the service is not reached');
is(path_rows("/ar/none-$n", 1), "GET /ar/none-$n 401 -", 'one log row, the client request\'s');

$res = http('GET', "/ar/bad-$n", { Authorization => 'Bearer wsk_live_aaaaaaaaaaaa_'
                                                    . ('A' x 43) });
is($res->{status}, 401, 'a wrong key: 401');
like($res->{body}, problem(401, 'api_key_invalid'), 'api_key_invalid');
like($res->{headers}{'www-authenticate'}, qr/error="invalid_token"/, 'invalid_token');

# a key never used: its record comes from PostgreSQL while the subrequest waits
my $fresh = api_key($company, 'company:read');
$res = http('GET', "/ar/ok-$n", { Authorization => "Bearer $fresh->{key}" });
is($res->{status}, 200, 'a valid key not yet cached passes');
like($res->{body}, qr/done/, 'the service answers');
like($res->{headers}{'x-request-id'} // '', qr/^req_/, 'with our X-Request-Id');
is(path_rows("/ar/ok-$n", 1), "GET /ar/ok-$n 200 $fresh->{id}",
   'one log row: the client request, its key, its final status');
is(psql("SELECT count(*) FROM request_logs WHERE api_key_id = '$fresh->{id}'")->[0][0], 1,
   'and no row for the subrequest');

$res = http('GET', '/gar/x', { Authorization => "Bearer $rw->{key}" });
is($res->{status}, 200, 'auth_request under a guarded main request passes');
like($res->{body}, qr/done/, 'the service answers');

$res = http('GET', '/gar/x', {});
is($res->{status}, 401, 'and the guarded main request still needs its key');

# an SSI page includes the guarded location's answer: the refusal, or the service
$res = http('GET', '/ssi/page.html', {});
is($res->{status}, 200, 'an unguarded SSI page');
unlike($res->{body}, qr/done/, 'does not include the guarded location\'s answer without a key');
like($res->{body}, qr/^A.*api_key_missing.*B$/s, 'but its refusal');

$res = http('GET', '/ssi/page.html', { Authorization => "Bearer $rw->{key}" });
like($res->{body}, qr/^Adone\nB$/, 'with a key it includes the service\'s answer');

# an auth_request endpoint answering with return (the rewrite phase, before
# precontent): checked all the same, not a 204 for every request

$res = http('GET', '/rar/x', {});
is($res->{status}, 401, 'auth_request to a guarded "return 204", no key: 401');
unlike($res->{body}, qr/done/, 'the service is not reached');

$res = http('GET', '/rar/x', { Authorization => "Bearer $ro->{key}" });
is($res->{status}, 200, 'with a key it passes');
like($res->{body}, qr/done/, 'the service answers');

$res = http('GET', '/grar/x', { Authorization => "Bearer $rw->{key}" });
is($res->{status}, 200, 'under a guarded main request it passes');

# the operator's error_page for the 401 still answers
$res = http('GET', '/ear/x', {});
is($res->{status}, 200, 'error_page 401 = @login answers a refused auth_request');
is($res->{body}, "login page\n", 'with its own page');

# an error_page of the location for other statuses (nginx then marks every
# error page of the request as the operator's): the refusal still reaches
# the client as its problem (it got nginx's HTML 401, no WWW-Authenticate)
$res = http('GET', '/epar/x', {});
is($res->{status}, 401, 'error_page 502 504 in the location: a refusal is still 401');
like($res->{body}, problem(401, 'api_key_missing'), 'as its problem, not nginx\'s page');
is($res->{headers}{'www-authenticate'}, 'Bearer realm="worksible"', 'with its WWW-Authenticate');
my $ek = api_key(company(plan => Worksible::Test::plan(limit => 1, window => 3600)),
                 'company:read');
$res = http('GET', '/epar/1', { Authorization => "Bearer $ek->{key}" });
is($res->{status}, 200, 'a key passes there');
$res = http('GET', '/epar/2', { Authorization => "Bearer $ek->{key}" });
is($res->{status}, 429, 'and its 429 is a 429, not nginx\'s 500');
like($res->{body}, problem(429, 'rate_limited'), 'rate_limited');

# an SSI page with two includes into a rate-limited guarded location: the
# second waits for the check the first started (the rate limit's Redis
# call, and the key's PostgreSQL lookup for a key not yet cached) and the
# company is charged once (the second was refused 500)
for my $cached (0, 1) {
    my $c2 = company(plan => Worksible::Test::plan(limit => 2, window => 3600));
    my $k2 = api_key($c2, 'company:read');
    http('GET', "/lar/warm-$n", { Authorization => "Bearer $k2->{key}" }) if $cached;
    my $what = $cached ? 'a cached key' : 'a key not yet cached';
    $res = http('GET', '/ssi/two.html', { Authorization => "Bearer $k2->{key}" });
    is($res->{body}, "Adone\nBdone\nC\n", "two includes, $what: both answered");
    $res = http('GET', "/lar/after-$cached-$n", { Authorization => "Bearer $k2->{key}" });
    is($res->{status}, $cached ? 429 : 200,
       "the page was charged once ($what)");
}

# a mirror of an API request into a guarded location, run while the API's
# query is out: it waited for that query and was never resumed, the
# connection held forever (no keepalive, "open socket left" at exit)
{
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:1949') or die "connect: $!";
    print $s Worksible::Test::request('GET', '/mirror/v1/companies/me',
                                      { Authorization => "Bearer $rw->{key}" })
             =~ s/Connection: close\r\n//r;
    my ($all, $t) = ('', time + 8);
    $s->blocking(0);
    while (time < $t && $all !~ /\}\s*$/) {
        my $got = sysread($s, my $buf, 65536);
        if ($got) { $all .= $buf } else { select undef, undef, undef, 0.05 }
    }
    like($all, qr/^HTTP\/1.1 200 .*"object" ?: ?"company"/s,
         'an API request with a mirror into a guarded location: answered');
    print $s Worksible::Test::request('GET', "/ar/mirror-next-$n",
                                      { Authorization => "Bearer $rw->{key}" });
    ($all, $t) = ('', time + 8);
    while (time < $t) {
        my $got = sysread($s, my $buf, 65536);
        if (defined $got) { last if !$got; $all .= $buf } else { select undef, undef, undef, 0.05 }
    }
    like($all, qr/^HTTP\/1.1 200 .*done/s,
         'the mirror ended: the next request on the connection is answered');
}

# a mirror refused (its location's scope) after its request reserved an
# Idempotency-Key: the request ran all the same, so its answer is kept and
# a retry replays it (the key was released: a retry ran the POST again)
$res = http('POST', "/idm/$n", { Authorization => "Bearer $ro->{key}",
                                 'Idempotency-Key' => "idm-$n" }, body => 'a=1');
is($res->{status}, 200, 'a keyed POST whose mirror is refused: answered');
like($res->{body}, qr/done/, 'by the service');
my $deadline = time + 5;
select undef, undef, undef, 0.1
    while redis_cli('HGET', "worksible:idem:{$company}:idm-$n", 'status') eq ''
          && time < $deadline;
$res = http('POST', "/idm/$n", { Authorization => "Bearer $ro->{key}",
                                 'Idempotency-Key' => "idm-$n" }, body => 'a=1');
is($res->{headers}{'idempotent-replayed'}, 'true', 'its retry replays, not runs again')
    or diag(explain [redis_cli('HGETALL', "worksible:idem:{$company}:idm-$n")]);

# the key is checked against the subrequest's location's scope

# an SSI include refused for its location's scope: the next include, into a
# location without that scope, still gets the service's answer (the first
# refusal was kept and given to every later include)
$res = http('GET', '/ssi/scopes.html', { Authorization => "Bearer $ro->{key}" });
like($res->{body}, qr/^\{[^|]*"code":"insufficient_scope"[^|]*\}\|done\n$/,
     'SSI: the scoped include refused, the next one answered')
    or diag($res->{body});

$res = http('GET', '/sar/x', { Authorization => "Bearer $ro->{key}" });
is($res->{status}, 403, 'auth_request to a scope the main request\'s key lacks: 403');
like($res->{body}, problem(403, 'insufficient_scope'), 'insufficient_scope');
like($res->{headers}{'www-authenticate'}, qr/scope="freelancers:write"/, 'naming the scope');
unlike($res->{body}, qr/done/, 'the service is not reached');

$res = http('GET', '/war/x', { Authorization => "Bearer $ro->{key}" });
is($res->{status}, 403, 'the same from an unguarded main request');
like($res->{body}, problem(403, 'insufficient_scope'), 'insufficient_scope');

$res = http('GET', '/sar/x', { Authorization => "Bearer $rw->{key}" });
is($res->{status}, 200, 'a key that holds it passes');
like($res->{body}, qr/done/, 'the service answers');
$res = http('GET', '/war/x', { Authorization => "Bearer $rw->{key}" });
is($res->{status}, 200, 'from an unguarded main request too');

# the rate limit through auth_request: charged once per client request,
# and a 429 reaches the client as a 429 (auth_request itself makes any
# status but 401 and 403 a 500)

my $small = company(plan => Worksible::Test::plan(limit => 3, window => 3600));
my $sk = api_key($small, 'company:read');
my @seen;
for my $i (1 .. 3) {
    $res = http('GET', "/lar/$i-$n", { Authorization => "Bearer $sk->{key}" });
    push @seen, "$res->{status} " . ($res->{headers}{ratelimit} // '-');
}
like(join(',', @seen), qr/^200 [^,]*;r=2;[^,]*,200 [^,]*;r=1;[^,]*,200 [^,]*;r=0;/,
     'three requests pass, one charge each, with the rate-limit headers');
is(redis_cli('EXISTS', "worksible:rl:{$small}"), 1, 'the company\'s limiter lives in Redis')
    or diag(redis_cli('KEYS', "*$small*"));
$res = http('GET', "/lar/4-$n", { Authorization => "Bearer $sk->{key}" });
is($res->{status}, 429, 'the fourth: 429, not auth_request\'s 500');
like($res->{body}, problem(429, 'rate_limited'), 'rate_limited');
like($res->{headers}{'retry-after'} // '', qr/^[1-9][0-9]*$/, 'with Retry-After');
unlike($res->{body}, qr/done/, 'the service is not reached');
is(path_rows("/lar/4-$n", 1), "GET /lar/4-$n 429 $sk->{id}", 'logged as the 429 it was');

my $gk = api_key(company(plan => Worksible::Test::plan(limit => 2, window => 3600)),
                 'company:read');
@seen = map { http('GET', "/glar/$_", { Authorization => "Bearer $gk->{key}" })->{status} }
        1 .. 3;
is("@seen", '200 200 429', 'a guarded main request and its auth_request: one charge a request');

# a client that leaves while its subrequest waits for PostgreSQL (its key's
# record, behind a lock held 2 s): the request ends cleanly, the next passes
my $lk = api_key($company, 'company:read');
my $locker = fork // die "fork: $!";
if (!$locker) {
    psql("BEGIN; LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(2); COMMIT");
    exit 0;
}
select undef, undef, undef, 0.3;
Worksible::Test::leave(1949, Worksible::Test::request('GET', "/ar/gone-$n",
                       { Authorization => "Bearer $lk->{key}" }), 0.5);
waitpid $locker, 0;
is(path_rows("/ar/gone-$n", 1), "GET /ar/gone-$n 499 -",
   'a client that left mid-check: logged 499, before its key was known');
$res = http('GET', "/ar/after-$n", { Authorization => "Bearer $lk->{key}" });
is($res->{status}, 200, 'the next request with that key passes');
like($res->{body}, qr/done/, 'and reaches the service');

# --- a location's worksible_idempotency replaces the server's whole ------------

my $svc = { Authorization => "Bearer $rw->{key}" };
sub pttl { redis_cli('PTTL', "worksible:idem:{$company}:$_[0]") }

$res = http('POST', '/required/x', $svc, port => 1955, body => 'a=1');
is($res->{status}, 400, 'the location\'s required holds');

$res = http('POST', '/required/x', { %$svc, 'Idempotency-Key' => "rq-$n" },
            port => 1955, body => 'a=1');
is($res->{status}, 200, 'a keyed POST under the location\'s directive');
cmp_ok(pttl("rq-$n"), '>', 86000_000,
       'kept for the default 24 h, not the server\'s ttl=5s');

$res = http('POST', '/other', { %$svc, 'Idempotency-Key' => "sv-$n" },
            port => 1955, body => 'a=1');
is($res->{status}, 200, 'a keyed POST under the server\'s directive');
cmp_ok(pttl("sv-$n"), '<=', 5000, 'kept for the server\'s ttl=5s');
cmp_ok(pttl("sv-$n"), '>', 0, 'and kept');

# a location with worksible_auth off under that server: public, its
# inherited worksible_idempotency inert (no key, no reservation)

$res = http('POST', '/open', {}, port => 1955, body => 'a=1');
is($res->{status}, 200, 'worksible_auth off under a guarded server: open');
like($res->{body}, qr/done/, 'the service answers, no Idempotency-Key asked');

# reached by try_files from a guarded location whose own is off: the
# inherited one is inert there too, nothing reserved or replayed

$res = http('POST', '/tf/x', { %$svc, 'Idempotency-Key' => "tf-$n" },
            port => 1955, body => 'a=1');
is($res->{status}, 200, 'try_files from a guarded location to the open one');
like($res->{body}, qr/done/, 'the service answers');
is(pttl("tf-$n"), -2, 'the open location reserved nothing under the key');

nginx_stop();

done_testing();
