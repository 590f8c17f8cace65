# worksible_metrics: the module's counters for all workers, in the
# Prometheus text format and as JSON, after a known sequence of requests.

use strict;
use warnings;

use Test::More;
use Worksible::Test qw(company api_key http_config nginx_start nginx_stop
    http json);

my $key = api_key(company(plan => 'growth'), 'company:read')->{key};

nginx_start(name => 'metrics', port => 1993, workers => 2,
    http => http_config() . "    worksible_key_cache zone=keys:1m;\n",
    server => 'location /v1/ { worksible_auth on; worksible_api; }
               location = /metrics { worksible_metrics; }');

my %auth = (Authorization => "Bearer $key");
my @statuses = map { http('GET', $_->[0], $_->[1])->{status} }
    ['/v1/companies/me', \%auth], ['/v1/companies/me', \%auth],
    ['/v1/companies/me', {}], ['/v1/nothing', \%auth],
    ['/v1/freelancers', \%auth];
is_deeply(\@statuses, [200, 200, 401, 404, 403], 'a known sequence of requests');

my $res = http('GET', '/metrics', {});
is($res->{status}, 200, 'metrics: 200');
like($res->{headers}{'content-type'}, qr{^text/plain; version=0\.0\.4}, 'Prometheus text format');

my %m;
for (split /\n/, $res->{body}) {
    next if /^#/;
    my ($name, $value) = /^(\S+) (\d+)$/ or next;
    $m{$name} = $value;
}
is($m{'worksible_requests_total{outcome="2xx"}'}, 2, '2 × 2xx');
is($m{'worksible_requests_total{outcome="401"}'}, 1, '1 × 401');
is($m{'worksible_requests_total{outcome="403"}'}, 1, '1 × 403');
is($m{'worksible_requests_total{outcome="4xx"}'}, 1, '1 × other 4xx (the 404)');
is($m{'worksible_requests_total{outcome="5xx"}'}, 0, 'no 5xx');
is($m{worksible_key_cache_misses_total}, 1, 'the key was looked up once ...');
is($m{worksible_key_cache_hits_total}, 3, '... and found in the cache three times');
cmp_ok($m{'worksible_store_calls_total{store="postgres"}'}, '>=', 3,
       'PostgreSQL calls: the lookup and two endpoints (and perhaps a last_used_at batch)');
is($m{'worksible_store_errors_total{store="postgres"}'}, 0, 'no PostgreSQL errors');
is($m{'worksible_store_timeouts_total{store="redis"}'}, 0, 'no Redis timeouts');
my $pg = $m{'worksible_store_connections{store="postgres"}'};
ok($pg >= 1 && $pg <= 4, "open PostgreSQL connections: $pg (pool 2 × 2 workers at most)");
my $redis = $m{'worksible_store_connections{store="redis"}'};
ok($redis >= 1 && $redis <= 2, "open Redis connections: $redis (one per worker at most)");

$res = http('GET', '/metrics', { Accept => 'application/json' });
my $j = json()->decode($res->{body});
is($j->{requests_total}{'2xx'}, 2, 'the same as JSON');
is($j->{key_cache_hits_total}, 3, 'hits as JSON');

nginx_stop();
done_testing();
