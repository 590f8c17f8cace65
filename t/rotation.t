# Server secret rotation: keys hashed under the previous secret keep
# working, move to the current one when used, and new keys use the current.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(sleep time);
use Worksible::Test qw(company api_key cli psql_value http_config
    nginx_start nginx_stop http);

my $top = $ENV{WORKSIBLE_TOP};
my $old = Worksible::Test::slurp($ENV{WORKSIBLE_KEY_SECRET_FILE});
$old =~ s/\s+//g;
my $new = join '', map { sprintf '%02x', int rand 256 } 1 .. 32;

my $company = company(plan => 'growth');
my $used = api_key($company, 'company:read');
my $idle = api_key($company, 'company:read');

sub version {
    my ($id) = @_;
    return psql_value("SELECT secret_version FROM api_keys WHERE id = '$id'");
}

sub secret_file {
    my ($name, $text) = @_;
    my $f = "$top/build/test/$name";
    open my $fh, '>', $f or die;
    print $fh $text;
    close $fh;
    return $f;
}

is(version($used->{id}), 1, 'keys start under version 1');

my $rotating = secret_file('secret_rotating', "2:$new\n1:$old\n");
my $current = secret_file('secret_current', "2:$new\n");

sub start {
    my ($file) = @_;
    (my $http = http_config()) =~ s/worksible_key_secret_file [^;]+;/worksible_key_secret_file $file;/;
    nginx_start(name => 'rotation', port => 1992, http => $http,
        server => 'location /v1/ { worksible_auth on; worksible_api; }');
}

sub get {
    my ($k) = @_;
    return http('GET', '/v1/companies/me', { Authorization => "Bearer $k" })->{status};
}

# --- during the rotation: both secrets -------------------------------------

start($rotating);
is(get($used->{key}), 200, 'a version 1 key works while both secrets are loaded');

my $deadline = time + 5;
sleep 0.1 while version($used->{id}) != 2 && time < $deadline;
is(version($used->{id}), 2, 'and its hash moved to version 2');
is(get($used->{key}), 200, 'and it still works');
is(version($idle->{id}), 1, 'an unused key stays at version 1');

my ($code, $out) = cli('--json', 'key', 'create', '--company', $company,
    '--scopes', 'company:read', '--key-secret-file', $rotating);
is($code, 0, 'the CLI creates a key with the rotating file');
my $fresh = Worksible::Test::json()->decode($out);
is(version($fresh->{id}), 2, 'under the current version');
nginx_stop();

# --- after the rotation: the old secret removed -----------------------------

start($current);
is(get($used->{key}), 200, 'the moved key works without the old secret');
is(get($fresh->{key}), 200, 'the new key works');
is(get($idle->{key}), 401, 'a key still under the removed version is refused');
nginx_stop();

like(Worksible::Test::slurp("$top/t/servroot_rotation/logs/error.log"),
     qr/hashed with server secret version 1, which worksible_key_secret_file does not hold/,
     'and the error log says why');

done_testing();
