# worksible_auth_failures: a client address whose failed authentications
# (401s that cost a lookup) run past the burst gets 429 instead of more key
# lookups in PostgreSQL, with a short Retry-After; keys in the key cache
# are checked whatever the address did, and requests without a key never
# count.

use strict;
use warnings;

use File::Path qw(make_path);
use Test::More;
use Worksible::Test qw(company api_key http_config nginx_start nginx_stop
    http problem);

# an SSI page with four includes into a guarded location
my $html = "$ENV{WORKSIBLE_TOP}/t/servroot_auth_failures_html";
make_path("$html/ssi");
open my $fh, '>', "$html/ssi/four.html" or die;
print $fh join('', map { qq(<!--# include virtual="/_guard" -->) } 1 .. 4), "\n";
close $fh;

nginx_start(name => 'auth_failures', port => 1943, workers => 2, http => http_config() . '
    worksible_key_cache zone=keys:1m ttl=60s negative_ttl=60s;
    worksible_auth_failures zone=fails:1m rate=6/m burst=3;',
    server => 'set_real_ip_from 127.0.0.1; real_ip_header X-Real-IP;
               location /v1/ { worksible_auth on; worksible_api; }
               location = /_guard { internal; worksible_auth on; return 204; }
               location /ssi/ { ssi on; root ' . $html . '; }');

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

# only failures that cost a lookup count: a neighbour's bare requests
# cannot lock an address out (realip gives each case its address)
sub from {
    my ($addr, $key) = @_;
    return http('GET', '/v1/companies/me',
                { 'X-Real-IP' => $addr, $key ? (Authorization => "Bearer $key") : () });
}
my $n401 = grep { from('192.0.2.50')->{status} == 401 } 1 .. 40;
is($n401, 40, '40 requests without a key from one address: 401 each');
my $late = api_key($company, 'company:read');
is(from('192.0.2.50', $late->{key})->{status}, 200,
   'a valid key from that address, not cached yet, still passes');

# past the burst an address is not charged more: its wait stays short
from('192.0.2.60', sprintf('wsk_live_spam%08d_%s', $_, 'B' x 32)) for 1 .. 30;
$res = from('192.0.2.60', 'wsk_live_spam99999999_' . ('B' x 32));
is($res->{status}, 429, 'an address that failed 30 times: 429 ...');
cmp_ok($res->{headers}{'retry-after'} // 99, '<=', 10,
       '... and waits at most one failure\'s worth (10 s at 6 a minute), not 30');

# one client request is one failure, however many of its subrequests are
# refused (an SSI page with four includes counted four, past the burst)
$res = http('GET', '/ssi/four.html',
            { 'X-Real-IP' => '192.0.2.70',
              Authorization => 'Bearer wsk_live_ssipage00001_' . ('C' x 32) });
is(() = $res->{body} =~ /"code":"api_key_invalid"/g, 4, 'an SSI page: its four includes refused');
is(from('192.0.2.70', sprintf('wsk_live_ssinxt%06d_%s', $_, 'C' x 32))->{status}, 401,
   'the address counted one failure for the page: 401 (failure ' . ($_ + 1) . ')')
    for 1 .. 3;

nginx_stop();

done_testing();
