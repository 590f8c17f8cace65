# Review of issue 14's multi-host conninfo (d79d569): nginx -t refuses an
# IPv6 literal host that libpq accepts, in the keyword form and in the URI
# form of a multi-host conninfo (libpq strips the URI's brackets). The
# parser hands each host to ngx_parse_url(), which reads "::1" as a host
# ":" with the port ":1" ("invalid port"). README: "anything libpq accepts
# works"; "libpq's multi-host form works". Fails until it is fixed.

use strict;
use warnings;

use File::Path qw(make_path);
use Test::More;

my $top = $ENV{WORKSIBLE_TOP};
my $prefix = "$top/t/servroot_attack14_config";
make_path("$prefix/conf", "$prefix/logs");
my $secret = $ENV{TEST_NGINX_KEY_SECRET_FILE};

sub nginx_t {
    my ($http) = @_;
    open my $fh, '>', "$prefix/conf/nginx.conf" or die;
    print $fh "load_module $ENV{TEST_NGINX_LOAD_MODULES};\n",
        "error_log logs/error.log;\npid logs/nginx.pid;\nevents {}\n",
        "http {\n$http\n}\n";
    close $fh;
    local $ENV{ASAN_OPTIONS} = ($ENV{ASAN_OPTIONS} // '') . ':detect_leaks=0';
    my $out = `$ENV{TEST_NGINX_BINARY} -t -p $prefix -c conf/nginx.conf 2>&1`;
    return ($? >> 8, $out);
}

for my $case (
    [ 'host=::1 port=55433 dbname=worksible', 'an IPv6 literal host' ],
    [ 'host=127.0.0.1,::1 port=55433 dbname=worksible target_session_attrs=read-write',
      'an IPv6 literal in a list of hosts' ],
    [ 'postgresql://127.0.0.1:55433,[::1]:55433/worksible?target_session_attrs=read-write',
      'a multi-host URI with an IPv6 literal' ],
) {
    my ($conninfo, $what) = @$case;
    my ($rc, $out) = nginx_t(qq{worksible_postgres "$conninfo"; worksible_key_secret_file $secret;});
    is($rc, 0, "$what: nginx -t accepts it, as libpq does") or diag($out);
    unlike($out, qr/invalid port|not resolved/, "$what: no \"not resolved: invalid port\"");
}

done_testing();
