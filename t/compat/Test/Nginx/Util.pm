package Test::Nginx::Util;

# Settings and setters shared by the compat Test::Nginx::Socket (see the POD
# of t/compat/Test/Nginx/Socket.pm).  Written from the documented interface of
# openresty's test-nginx; only the subset used by this project's suites.
# Variable names match the real module, so `$Test::Nginx::Util::ServerPort`
# etc. work under both implementations.

use strict;
use warnings;
use base 'Exporter';
use Carp qw(croak);
use File::Spec ();

our $RepeatEach           = 1;
our $NoShuffle            = $ENV{TEST_NGINX_NO_SHUFFLE} || 0;
our $NginxBinary          = $ENV{TEST_NGINX_BINARY} || 'nginx';
our $Workers              = 1;
our $WorkerConnections    = 64;
our $LogLevel             = $ENV{TEST_NGINX_LOG_LEVEL} || 'debug';
our $MasterProcessEnabled = $ENV{TEST_NGINX_MASTER_PROCESS} || 'off';
our $ServerPort           = $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT} || 1984;
our $ServerPortForClient  = $ENV{TEST_NGINX_CLIENT_PORT} || $ServerPort;
our $ServerAddr           = '127.0.0.1';
our $ServerName           = 'localhost';
our $NoRootLocation       = 0;
our $Timeout              = $ENV{TEST_NGINX_TIMEOUT} || 3;
our $TestNginxSleep       = $ENV{TEST_NGINX_SLEEP} || 0.015;
our $NoLongString;                      # accepted, no effect (no Test::LongString)
our $CheckAccumErrLog     = $ENV{TEST_NGINX_CHECK_ACCUM_ERR_LOG};
our $UseValgrind          = $ENV{TEST_NGINX_USE_VALGRIND};
our $LoadModules          = $ENV{TEST_NGINX_LOAD_MODULES};
our $ConfigPreamble       = '';
our (@EnvToNginx, @BlockPreprocessors, @CleanupHandlers);

# The real module reads TEST_NGINX_SERVROOT and exports the result as
# TEST_NGINX_SERVER_ROOT; we accept either as input.
our $ServRoot = File::Spec->rel2abs($ENV{TEST_NGINX_SERVROOT}
                                    || $ENV{TEST_NGINX_SERVER_ROOT} || 't/servroot');
$ENV{TEST_NGINX_SERVER_ROOT} = $ServRoot;
our $LogDir     = "$ServRoot/logs";
our $ErrLogFile = "$LogDir/error.log";
our $AccLogFile = "$LogDir/access.log";
our $HtmlDir    = "$ServRoot/html";
our $ConfDir    = "$ServRoot/conf";
our $ConfFile   = "$ConfDir/nginx.conf";
our $PidFile    = "$LogDir/nginx.pid";

our @EXPORT = qw(
    repeat_each no_shuffle workers worker_connections log_level master_on
    master_off master_process_enabled no_root_location env_to_nginx
    server_port server_port_for_client server_addr server_name server_root
    html_dir timeout no_long_string check_accum_error_log config_preamble
    add_block_preprocessor add_cleanup_handler parse_time
    $ServerPort $ServerPortForClient $ServRoot $PidFile $ConfFile
);
# everything else, for Socket.pm: use Test::Nginx::Util qw(:DEFAULT :vars)
our %EXPORT_TAGS = (vars => [qw(
    $RepeatEach $NoShuffle $NginxBinary $Workers $WorkerConnections $LogLevel
    $MasterProcessEnabled $ServerAddr $ServerName $NoRootLocation $Timeout
    $TestNginxSleep $CheckAccumErrLog $UseValgrind $LoadModules $ConfigPreamble
    @EnvToNginx @BlockPreprocessors @CleanupHandlers $LogDir $ErrLogFile
    $AccLogFile $HtmlDir $ConfDir
)]);
our @EXPORT_OK = @{ $EXPORT_TAGS{vars} };

# getter/setter helper: `sub foo { _gs(\$Foo, @_) }`
sub _gs { my $ref = shift; $$ref = shift if @_; $$ref }

sub repeat_each           { _gs(\$RepeatEach, @_) }
sub workers               { _gs(\$Workers, @_) }
sub worker_connections    { _gs(\$WorkerConnections, @_) }
sub log_level             { _gs(\$LogLevel, @_) }
sub server_port           { _gs(\$ServerPort, @_) }
sub server_port_for_client { _gs(\$ServerPortForClient, @_) }
sub server_addr           { _gs(\$ServerAddr, @_) }
sub server_name           { _gs(\$ServerName, @_) }
sub timeout               { _gs(\$Timeout, @_) }
sub no_shuffle ()         { $NoShuffle = 1 }
sub master_on ()          { $MasterProcessEnabled = 'on' }
sub master_off ()         { $MasterProcessEnabled = 'off' }
sub master_process_enabled { $MasterProcessEnabled = $_[0] ? 'on' : 'off' if @_;
                             $MasterProcessEnabled }
sub no_root_location ()   { $NoRootLocation = 1 }
sub no_long_string ()     { $NoLongString = 1 }
sub check_accum_error_log () { $CheckAccumErrLog = 1 }
sub config_preamble ($)   { $ConfigPreamble = shift }
sub server_root ()        { $ServRoot }
sub html_dir ()           { $HtmlDir }
sub add_block_preprocessor (&) { unshift @BlockPreprocessors, shift }
sub add_cleanup_handler ($)    { unshift @CleanupHandlers, shift }

sub env_to_nginx {
    croak "env_to_nginx: no arguments specified" unless @_;
    for my $v (@_) {
        croak "env_to_nginx: bad argument value: $v" if $v !~ /^[A-Za-z_]/ || $v =~ /\n/;
        push @EnvToNginx, $v;
    }
}

# "1.5", "1.5s", "300ms" -> seconds
sub parse_time ($) {
    my $t = shift;
    return undef unless defined $t;
    return $1 / 1000 if $t =~ /^\s*([\d.]+)\s*ms\s*$/;
    return $1 if $t =~ /^\s*([\d.]+)\s*s?\s*$/;
    return $t;
}

1;
