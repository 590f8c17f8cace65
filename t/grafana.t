# contrib/grafana/worksible.json, the Grafana dashboard for operators: it
# reads, every metric and label value its queries name is one that
# worksible_metrics exposes (a renamed metric fails here), and its panels
# are laid out without overlap, each on the chosen Prometheus.

use strict;
use warnings;

use JSON::PP;
use Test::More;
use Worksible::Test qw(company api_key http_config nginx_start nginx_stop http);

my $file = "$ENV{WORKSIBLE_TOP}/contrib/grafana/worksible.json";
my $dash = eval { local (@ARGV, $/) = ($file); decode_json(<>) };
ok($dash, 'the dashboard is JSON') or BAIL_OUT($@);
is($dash->{uid}, 'worksible-edge', 'a stable uid');

nginx_start(name => 'grafana', port => 1964, http => http_config(), server => '
        location /v1/ { worksible_auth on; worksible_rate_limit on; worksible_api; }
        location = /metrics { worksible_metrics; }');
my $key = api_key(company(plan => 'growth'), 'company:read');
http('GET', '/v1/companies/me', { Authorization => "Bearer $key->{key}" });
my $text = http('GET', '/metrics')->{body};
nginx_stop();

my (%names, %labels);
for (split /\n/, $text) {
    next if /^#/ || !/^(worksible_\w+)(?:\{([^}]*)\})?\s/;
    $names{$1} = 1;
    $labels{"$1 $_"} = 1 for map { s/"//gr } split /,/, $2 // '';
}
ok(keys %names >= 8, 'the exposition was read: ' . join(' ', sort keys %names));

my ($exprs, %ids) = (0);
my @boxes;
for my $p (@{ $dash->{panels} }) {
    ok(!$ids{ $p->{id} }++, "panel $p->{id} ($p->{title}): a unique id");
    is($p->{datasource}{uid}, '${datasource}', "... on the chosen Prometheus");
    ok($p->{description}, '... says what it shows');
    push @boxes, [ $p->{title}, @{ $p->{gridPos} }{qw(x y w h)} ];
    for my $t (@{ $p->{targets} }) {
        my $e = $t->{expr};
        $exprs++;
        my @m = $e =~ /\b(worksible_\w+)/g;
        ok(@m, "$p->{title}: a query of the module's metrics");
        ok($names{$_}, "... $_ is exposed") for @m;
        while ($e =~ /\b(worksible_\w+)\{[^}]*?\b(outcome|store)(=~?)"([^"]+)"/g) {
            my ($m, $l, $op, $v) = ($1, $2, $3, $4);
            ok($labels{"$m $l=$_"}, "... $m has $l=\"$_\"") for split /\|/, $v;
        }
        is(($e =~ tr/(//), ($e =~ tr/)//), '... its parentheses balance');
    }
}
ok($exprs >= 10, "$exprs queries checked");

for my $i (0 .. $#boxes) {
    my ($a, $ax, $ay, $aw, $ah) = @{ $boxes[$i] };
    ok($ax >= 0 && $ax + $aw <= 24, "$a fits the 24 columns");
    for my $j ($i + 1 .. $#boxes) {
        my ($b, $bx, $by, $bw, $bh) = @{ $boxes[$j] };
        ok($ax + $aw <= $bx || $bx + $bw <= $ax || $ay + $ah <= $by || $by + $bh <= $ay,
           "$a and $b do not overlap");
    }
}

my %vars = map { $_->{name} => $_ } @{ $dash->{templating}{list} };
is($vars{datasource}{query}, 'prometheus', 'a Prometheus data source variable');
like($vars{$_}{definition}, qr/worksible_requests_total/, "the $_ variable reads the module's metric")
    for qw(job instance);

done_testing();
