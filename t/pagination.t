# Cursor pagination of GET /v1/freelancers walked both ways (API.md, Lists):
# newest first, no gap or repeat, has_more in the direction of travel.

use strict;
use warnings;

use Test::More;
use Worksible::Test qw(company api_key freelancers nginx_start nginx_stop
    http json);

my $company = company(plan => 'growth');
my $key = api_key($company, 'freelancers:read')->{key};
my @ids = freelancers($company, 7);
my @invited = freelancers($company, 2, status => 'invited');
# the invited ones are as new as the first active ones: interleave by time
my @all = sort { $b->[1] cmp $a->[1] || $b->[0] cmp $a->[0] }
    map { [$_, created($_)] } @ids, @invited;
@all = map { $_->[0] } @all;

sub created {
    my ($id) = @_;
    return Worksible::Test::psql_value(
        "SELECT to_char(created_at, 'YYYYMMDDHH24MISSUS') FROM freelancers WHERE id = '$id'");
}

nginx_start(name => 'pagination', port => 1986,
    server => 'location /v1/ { worksible_auth on; worksible_api; }');

sub page {
    my ($query) = @_;
    my $res = http('GET', "/v1/freelancers?$query",
        { Authorization => "Bearer $key" });
    is($res->{status}, 200, "GET ?$query is 200") or diag($res->{body});
    my $list = json()->decode($res->{body});
    return ([map { $_->{id} } @{ $list->{data} }], $list->{has_more}, $list);
}

# forward, 3 at a time
my (@seen, $cursor);
my @more;
while (1) {
    my ($page, $more) = page('limit=3' . ($cursor ? "&starting_after=$cursor" : ''));
    push @seen, @$page;
    push @more, $more ? 1 : 0;
    last unless $more;
    $cursor = $page->[-1];
}
is_deeply(\@seen, \@all, 'forward walk: every freelancer once, newest first');
is_deeply(\@more, [1, 1, 0], 'has_more true, true, then false (9 in pages of 3)');

# backward from the oldest, 4 at a time
my @back;
$cursor = $all[-1];
@more = ();
while (1) {
    my ($page, $more) = page("limit=4&ending_before=$cursor");
    is_deeply($page, [ sort { index_of($a) <=> index_of($b) } @$page ],
        'a page walked backwards is still newest first');
    unshift @back, @$page;
    push @more, $more ? 1 : 0;
    last unless $more;
    $cursor = $page->[0];
}
is_deeply(\@back, [ @all[0 .. $#all - 1] ], 'backward walk: all but the cursor, no gap');
is_deeply(\@more, [1, 0], 'backward has_more true, then false (8 in pages of 4)');

sub index_of {
    my ($id) = @_;
    for my $i (0 .. $#all) { return $i if $all[$i] eq $id }
    return -1;
}

my ($page, $more, $list) = page("limit=2&starting_after=$all[1]");
is_deeply($page, [ @all[2, 3] ], 'starting_after gives the next older objects');
is($list->{url}, '/v1/freelancers', 'url');
is($list->{object}, 'list', 'object');

($page) = page('status=invited');
is_deeply([ sort @$page ], [ sort @invited ], 'status filter');

($page, $more) = page("ending_before=$all[0]");
is_deeply($page, [], 'nothing is newer than the newest');
ok(!$more, 'and has_more is false');

# created_at[...] compares at the precision shown (whole seconds), though
# the rows hold microseconds
my ($one) = Worksible::Test::freelancers($company, 1);
my ($obj) = grep { $_->{id} eq $one } @{ (page('limit=100'))[2]->{data} };
my $shown = $obj->{created_at};
like($shown, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, "created_at is shown in whole seconds ($shown)");
isnt(Worksible::Test::psql_value("SELECT extract(microseconds FROM created_at)::bigint % 1000000
                                  FROM freelancers WHERE id = '$one'"), '0',
     'and stored with a fraction of a second');
my %in;
for my $op (qw(gte gt lte lt)) {
    ($page) = page("limit=100&created_at[$op]=$shown");
    $in{$op} = (grep { $_ eq $one } @$page) ? 1 : 0;
}
is_deeply(\%in, { gte => 1, gt => 0, lte => 1, lt => 0 },
          'created_at[gte] and [lte] of its own shown time hold it, [gt] and [lt] do not');

nginx_stop();
done_testing();
