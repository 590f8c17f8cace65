# Keys keep their contract (README, Authentication and Key powers): a key
# makes and revokes only keys no more powerful than itself (scopes, IP
# allowlist, expiry); which plans may use allowlists is a plan attribute;
# an IPv4-mapped block is its IPv4 block, and a dual-stack listener's
# mapped client addresses match like IPv4 ones; a refusal after the key is
# known is logged with its company and key; a filter PostgreSQL cannot hold
# is a 400; a proxied service's own rate-limit headers give way to ours.

use strict;
use warnings;

use IO::Socket::INET;
use POSIX ();
use Test::More;
use Time::HiRes qw(sleep time);
use Worksible::Test qw(company api_key plan http_config nginx_start nginx_stop
    http psql psql_value json problem);

# a service that sends rate-limit headers of its own
my $main = $$;
my $srv = IO::Socket::INET->new(LocalAddr => '127.0.0.1:1946', Listen => 16,
                                ReuseAddr => 1) or die "listen: $!";
my $service = fork // die;
if (!$service) {
    while (my $c = $srv->accept) {
        my $head = '';
        while ($head !~ /\r\n\r\n/) { sysread($c, my $b, 4096) or last; $head .= $b }
        print $c "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-RateLimit-Limit: 5\r\n"
            . "X-RateLimit-Remaining: 4\r\nX-RateLimit-Reset: 1\r\nRateLimit: \"svc\";r=4;t=1\r\n"
            . "RateLimit-Policy: \"svc\";q=5;w=1\r\nX-RateLimit-Used: 1\r\nRateLimit-Remaining: 4\r\n"
            . "Content-Length: 3\r\nConnection: close\r\n\r\nok\n";
        close $c;
    }
    POSIX::_exit(0);
}
END { kill 'TERM', $service if $service && $$ == $main }

nginx_start(name => 'key_powers', port => 1947, http => http_config(), server => '
        listen [::]:1948 ipv6only=off;
        location /v1/ { worksible_auth on; worksible_rate_limit on;
                        worksible_idempotency on; worksible_api; }
        location /svc/ { worksible_auth on; worksible_rate_limit on;
                         proxy_pass http://127.0.0.1:1946; }
        location = /me { worksible_auth on; proxy_pass http://127.0.0.1:1946; }');

my $ent = company(plan => 'enterprise');
my $count = sub { psql_value("SELECT count(*) FROM api_keys WHERE company_id = '$ent'") };

sub post {
    my ($key, $path, $body, %o) = @_;
    return http('POST', $path, { Authorization => "Bearer $key->{key}",
                                 'Content-Type' => 'application/json' },
                body => defined $body ? json()->encode($body) : undef, %o);
}

sub object { json()->decode($_[0]{body}) }

# --- a key restricted to an office network --------------------------------------

my $office = api_key($ent, 'api_keys:write company:read', allow_ip => ['127.0.0.0/8']);
my $before = $count->();

my $res = post($office, '/v1/api_keys', { scopes => ['company:read'] });
is($res->{status}, 201, 'an allowlisted key makes a key ...');
is_deeply(object($res)->{ip_allowlist}, ['127.0.0.0/8'], '... that inherits its allowlist');

$res = post($office, '/v1/api_keys', { scopes => ['company:read'],
                                        ip_allowlist => ['0.0.0.0/0'] });
is($res->{status}, 403, 'a wider allowlist: 403 ...');
like($res->{body}, problem(403, 'insufficient_scope', 'ip_allowlist'), '... insufficient_scope naming ip_allowlist');

$res = post($office, '/v1/api_keys', { scopes => ['company:read'],
                                        ip_allowlist => ['127.0.0.1'] });
is_deeply(object($res)->{ip_allowlist}, ['127.0.0.1/32'], 'a narrower one is fine');
is($count->(), $before + 2, 'the refusal created nothing');

# --- a key that expires in an hour -----------------------------------------------

my $hour = psql_value(q{SELECT to_char((now() + interval '1 hour') AT TIME ZONE 'UTC',
                                       'YYYY-MM-DD"T"HH24:MI:SS"Z"')});
my $brief = api_key($ent, 'api_keys:write company:read', expires_at => $hour);

$res = post($brief, '/v1/api_keys', { scopes => ['company:read'] });
is(object($res)->{expires_at}, $hour, 'a key expiring in an hour makes keys that expire with it');
$res = post($brief, '/v1/api_keys', { scopes => ['company:read'], expires_at => '2099-01-01T00:00:00Z' });
like($res->{body}, problem(403, 'insufficient_scope', 'expires_at'), 'not later: 403 naming expires_at');
$res = post($brief, '/v1/api_keys', { scopes => ['api_keys:write'] });
is($res->{status}, 201, 'the same scopes are no more powerful');

# --- revocation ---------------------------------------------------------------------

my $admin = api_key($ent, 'api_keys:write company:read freelancers:write');
my $small = api_key($ent, 'api_keys:write');

$res = post($small, "/v1/api_keys/$admin->{id}/revoke");
is($res->{status}, 403, 'a key cannot revoke one with more scopes ...');
like($res->{body}, problem(403, 'insufficient_scope', 'scopes'), '... insufficient_scope naming scopes');
is(psql_value("SELECT revoked_at IS NULL FROM api_keys WHERE id = '$admin->{id}'"), 't',
   'and the key stays valid');

my $anywhere = api_key($ent, 'api_keys:write company:read');
$res = post($office, "/v1/api_keys/$anywhere->{id}/revoke");
like($res->{body}, problem(403, 'insufficient_scope', 'ip_allowlist'),
     'nor can an allowlisted key revoke a key usable from anywhere');

$res = post($admin, "/v1/api_keys/$small->{id}/revoke");
is($res->{status}, 200, 'a key revokes one with fewer scopes');
my $self = api_key($ent, 'api_keys:write');
is(post($self, "/v1/api_keys/$self->{id}/revoke")->{status}, 200, 'and itself');

# --- allowlists are a plan attribute ------------------------------------------------

my $custom = plan(limit => 100, window => 60);
my $cust = company(plan => $custom);
my $cust_admin = api_key($cust, 'api_keys:write company:read');
$res = post($cust_admin, '/v1/api_keys', { scopes => ['company:read'], ip_allowlist => ['10.0.0.0/8'] });
like($res->{body}, problem(403, 'plan_not_eligible', 'ip_allowlist'), 'a plan without ip_allowlists: 403');
psql("UPDATE plans SET ip_allowlists = true WHERE name = '$custom'");
$res = post($cust_admin, '/v1/api_keys', { scopes => ['company:read'], ip_allowlist => ['10.0.0.0/8'] });
is($res->{status}, 201, 'the same plan with ip_allowlists on: 201');

# --- IPv4-mapped blocks and dual-stack clients -----------------------------------------

$res = post($admin, '/v1/api_keys', { scopes => ['company:read'],
                                       ip_allowlist => ['::ffff:127.0.0.0/104'] });
is_deeply(object($res)->{ip_allowlist}, ['127.0.0.0/8'], '::ffff:127.0.0.0/104 is the IPv4 block 127.0.0.0/8');
my $mapped = object($res);
my $auth = { Authorization => "Bearer $mapped->{key}" };
is(http('GET', '/me', $auth)->{status}, 200, 'it admits an IPv4 client');
is(http('GET', '/me', $auth, port => 1948)->{status}, 200,
   'and the same client on a dual-stack listener (::ffff:127.0.0.1)');

my $any6 = api_key($ent, 'company:read', allow_ip => ['::/0']);
is(http('GET', '/me', { Authorization => "Bearer $any6->{key}" }, port => 1948)->{status}, 200,
   '::/0 admits an IPv4 client of a dual-stack listener');
my $v4 = api_key($ent, 'company:read', allow_ip => ['127.0.0.0/8']);
is(http('GET', '/me', { Authorization => "Bearer $v4->{key}" }, port => 1948)->{status}, 200,
   'an IPv4 block admits the mapped form of its clients');
my $cli_mapped = api_key($ent, 'company:read', allow_ip => ['::ffff:127.0.0.1']);
is_deeply($cli_mapped->{ip_allowlist}, ['127.0.0.1/32'], 'the CLI stores a mapped address as IPv4 too');

# --- a refusal after the key is known is logged for its company -------------------------

my $far = api_key($ent, 'company:read', allow_ip => ['192.0.2.0/24']);
$res = http('GET', '/v1/companies/me', { Authorization => "Bearer $far->{key}" });
is($res->{status}, 403, 'a key used from outside its allowlist: 403');
my $id = $res->{headers}{'x-request-id'};
my $row;
my $deadline = time + 8;
do { sleep 0.3; $row = psql("SELECT company_id, api_key_id, status FROM request_logs WHERE id = '$id'")->[0] }
    until $row || time > $deadline;
is_deeply($row, [$ent, $far->{id}, 403], 'its row names the company and the key');

# --- a key in a URL, however encoded, never reaches the log -----------------------------

my ($kid, $secret) = $far->{key} =~ /^wsk_live_([a-z0-9]{12})_(\w+)$/ or die;
(my $hexed = $secret) =~ s/(.)/sprintf('%%%02X', ord $1)/ge;
my @ids;
for my $q ("api_key=wsk%5Flive%5F${kid}%5F$secret", "api_key=wsk%255Flive%255F${kid}%255F$secret",
           "k=%77%73%6B_live_${kid}_$hexed", "k=WSK_LIVE_${kid}_$secret")
{
    push @ids, http('GET', "/v1/companies/me?$q", { Authorization => "Bearer $admin->{key}" })
        ->{headers}{'x-request-id'};
}
my $in = join ',', map { "'$_'" } @ids;
my $paths;
$deadline = time + 8;
do { sleep 0.3; $paths = psql("SELECT path FROM request_logs WHERE id IN ($in) ORDER BY path") }
    until @$paths == 4 || time > $deadline;
is(scalar @$paths, 4, 'four requests with a key in the query, four rows');
is(scalar(grep { $_->[0] =~ /\Q$secret\E|\Q$hexed\E|\Q$kid\E/ } @$paths), 0,
   'no row holds the key id or the secret, encoded or not');
is(scalar(grep { $_->[0] =~ /wsk_\[redacted\]/ } @$paths), 4, 'each says wsk_[redacted]');

# --- a filter PostgreSQL cannot hold ----------------------------------------------------

my $logs = api_key($ent, 'request_logs:read');
$res = http('GET', '/v1/request_logs?path=/%00', { Authorization => "Bearer $logs->{key}" });
like($res->{body}, problem(400, 'parameter_invalid', 'path'), 'a NUL in a path filter: 400 naming path');

# --- one RFC 3339 parser for the API and the CLI --------------------------------------

$res = http('GET', '/v1/request_logs?created_at%5Bgte%5D=2026-01-01T00:00:00-23:59',
            { Authorization => "Bearer $logs->{key}" });
is($res->{status}, 200, 'an offset of -23:59 (RFC 3339 allows it) is read, in UTC');
$res = post($admin, '/v1/api_keys', { scopes => ['company:read'],
                                       expires_at => '2099-01-31T12:00:00.123456789+23:59' });
is(object($res)->{expires_at}, '2099-01-30T12:01:00Z', 'a fraction past microseconds and a +23:59 offset');
my $via_cli = api_key($ent, 'company:read', expires_at => '2099-01-31T12:00:00.123456789+23:59');
is($via_cli->{expires_at}, '2099-01-30T12:01:00Z', 'the CLI reads it the same way');
for my $bad ('2099-02-30T00:00:00Z', '2099-01-31T24:00:00Z', '2099-01-31T12:00:00+24:00', '0000-01-01T00:00:00Z') {
    $res = post($admin, '/v1/api_keys', { scopes => ['company:read'], expires_at => $bad });
    like($res->{body}, problem(400, 'parameter_invalid', 'expires_at'), "$bad: 400 naming expires_at");
}

# --- a proxied service's rate-limit headers ---------------------------------------------

my $raw = do {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:1947') or die;
    print $s "GET /svc/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer $admin->{key}\r\n\r\n";
    local $/;
    <$s>;
};
my @rl = $raw =~ /^RateLimit: (.*?)\r$/mg;
is(scalar @rl, 1, 'one RateLimit header ...');
like($rl[0] // '', qr/^"enterprise";r=\d+;t=\d+$/, '... ours');
my @limit = $raw =~ /^X-RateLimit-Limit: (.*?)\r$/mg;
is_deeply(\@limit, ['10000'], 'one X-RateLimit-Limit, the plan\'s');
unlike($raw, qr/"svc"/, 'nothing of the service\'s RateLimit-Policy');
unlike($raw, qr/^(X-RateLimit-Used|RateLimit-Remaining):/mi,
       'nor any other RateLimit-* or X-RateLimit-* header of its own');

# --- the endpoint's scope comes before any Idempotency-Key replay ---------------------

my $writer = api_key($ent, 'freelancers:write');
my $reader = api_key($ent, 'company:read');
my $onboard = { email => 'ada.kp@example.com', name => 'Ada', country => 'GB' };
sub idem_post {
    my ($key, $idem) = @_;
    return http('POST', '/v1/freelancers', { Authorization => "Bearer $key->{key}",
        'Content-Type' => 'application/json', 'Idempotency-Key' => $idem },
        body => json()->encode($onboard));
}
is(idem_post($writer, 'kp-1')->{status}, 201, 'a writer creates a freelancer with a key');
$res = idem_post($reader, 'kp-1');
like($res->{body}, problem(403, 'insufficient_scope'), 'a key without the scope gets 403, not the replay');
$onboard->{email} = 'ada.kp2@example.com';
like(idem_post($reader, 'kp-2')->{body}, problem(403, 'insufficient_scope'),
     'a key without the scope sending first: 403 ...');
$res = idem_post($writer, 'kp-2');
is($res->{status}, 201, '... and the writer\'s request then runs');
is($res->{headers}{'idempotent-replayed'}, undef, 'not a replay of that 403');

# --- a key usable from anywhere in IPv6 narrows to IPv4 ----------------------------------

my $v6admin = api_key($ent, 'api_keys:write company:read', allow_ip => ['::/0']);
$res = post($v6admin, '/v1/api_keys', { scopes => ['company:read'], ip_allowlist => ['127.0.0.0/8'] });
is($res->{status}, 201, 'a ::/0 key makes a key limited to 127.0.0.0/8 (::/0 holds it)');

# --- a revoked or expired key acts no more, whatever a cache still says ----------------

my $gone = api_key($ent, 'api_keys:write');
psql("UPDATE api_keys SET revoked_at = now() WHERE id = '$gone->{id}'");
my (undef, $err) = Worksible::Test::psql_as('worksible',
    "SELECT worksible_api_key_create('$ent', 'kpgone000001', repeat('00', 32), 1::smallint,
            NULL, 'api_keys:read', '', NULL, '$gone->{id}')");
like($err, qr/WS4K3/, 'worksible_api_key_create refuses a revoked creator ...');
like($err, qr/DETAIL:\s+revoked/, '... as revoked (the API answers 401 api_key_revoked)');
(undef, $err) = Worksible::Test::psql_as('worksible',
    "SELECT worksible_api_key_revoke('$ent', '$writer->{id}', '$gone->{id}')");
like($err, qr/DETAIL:\s+revoked/, 'and worksible_api_key_revoke a revoked revoker');

nginx_stop();

done_testing();
