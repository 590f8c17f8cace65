# The version is written once (src/ngx_worksible_version.h): CHANGELOG.md's
# first entry, worksible --version and the Debian package's files agree with
# it, and the package's files name what it installs.

use strict;
use warnings;

use Test::More;
use Worksible::Test qw(cli);

my $top = $ENV{WORKSIBLE_TOP};

sub slurp { Worksible::Test::slurp("$top/$_[0]") // '' }

my ($version) = slurp('src/ngx_worksible_version.h')
    =~ /^#define NGX_WORKSIBLE_VERSION\s+"(\d+\.\d+\.\d+)"$/m;
ok($version, "one version, semantic: $version");

# an "Unreleased" section (changes not released yet) may come first
my ($first) = slurp('CHANGELOG.md') =~ /^## (?!Unreleased\b)(\S+)/m;
is($first, $version, 'CHANGELOG.md begins with it');

my (undef, $out) = cli('--version');
is($out, "worksible $version\n", 'worksible --version prints it');

my $install = slurp('debian/libnginx-mod-http-worksible.install');
like($install, qr{^build/worksible usr/bin$}m, 'the package installs the CLI ...');
like($install, qr{^migrations/\*\.sql usr/share/worksible/migrations$}m, '... and the migrations');
like(slurp('debian/rules'), qr{MIGRATIONS_DIR=/usr/share/worksible/migrations},
     'where the packaged CLI looks for them');
is(slurp('debian/mod-http-worksible.conf'), "load_module modules/ngx_worksible_module.so;\n",
   'the load_module snippet names the module nginx builds');
like(slurp('debian/rules'), qr/^\tdh \$@ --with nginx$/m, 'built with dh --with nginx');

done_testing();
