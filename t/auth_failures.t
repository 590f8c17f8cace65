# worksible_auth_failures: a client address whose failed authentications
# (401) run past the burst gets 429 instead of more key lookups in
# PostgreSQL, with Retry-After; keys in the key cache are checked whatever
# the address did, and nothing else is slowed down.

use strict;
use warnings;

use Test::More;
use Worksible::Test qw(company api_key http_config nginx_start nginx_stop
    http problem);

nginx_start(name => 'auth_failures', port => 1943, workers => 2, http => http_config() . '
    worksible_key_cache zone=keys:1m ttl=60s negative_ttl=60s;
    worksible_auth_failures zone=fails:1m rate=6/m burst=3;',
    server => 'location /v1/ { worksible_auth on; worksible_api; }');

my $company = company(plan => 'growth');
my $good = api_key($company, 'company:read');

sub get {
    my ($key) = @_;
    return http('GET', '/v1/companies/me', $key ? { Authorization => "Bearer $key" } : {});
}

is(get($good->{key})->{status}, 200, 'a valid key, now in the key cache');

# well-formed keys with made-up key ids: each costs a lookup
my @made_up = map { sprintf('wsk_live_madeup%06d_%s', $_, 'A' x 32) } 1 .. 6;
is(get($made_up[$_])->{status}, 401, 'a made-up key: 401 (failure ' . ($_ + 1) . ')') for 0 .. 3;

my $res = get($made_up[4]);
is($res->{status}, 429, 'past the burst of 3: 429 instead of a lookup ...');
like($res->{body}, problem(429, 'rate_limited'), '... rate_limited');
like($res->{body}, qr/failed authentications/, '... saying why');
like($res->{headers}{'retry-after'} // '', qr/^([1-9]|10)$/, '... with Retry-After (6 a minute: at most 10 s)');

is(get($good->{key})->{status}, 200, 'the cached valid key from the same address still passes');
is(get(undef)->{status}, 401, 'no key at all needs no lookup: 401');

my $fresh = api_key($company, 'company:read');
is(get($fresh->{key})->{status}, 429, 'a key not cached yet waits like any lookup from this address');

nginx_stop();

done_testing();
