#!/usr/bin/env perl
# The operators' CLI, build/worksible, against a scratch database of the test
# PostgreSQL (created here as -U postgres, dropped at the end).
#
#   prove -v t/cli.t        (from the repository root, with PGHOST, PGPORT,
#                            PGUSER, WORKSIBLE_KEY_SECRET_FILE set)
#   WORKSIBLE_TEST_VALGRIND=1 prove t/cli.t   runs every CLI call under
#                            valgrind --leak-check=full --error-exitcode=9
#
# Core Perl and JSON::PP only.
use strict;
use warnings;

use Test::More;
use JSON::PP;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Copy qw(copy);
use File::Temp qw(tempdir);
use Digest::SHA qw(sha256_hex);
use IO::Socket::INET;
use POSIX ();

my $root = abs_path(dirname(__FILE__) . '/..');
my $cli  = "$root/build/worksible";

plan skip_all => "$cli is not built" unless -x $cli;

$ENV{PGHOST} //= '127.0.0.1';
$ENV{PGPORT} //= '15433';
$ENV{PGUSER} //= 'worksible';
$ENV{WORKSIBLE_KEY_SECRET_FILE} //= "$root/build/test/key_secret";
delete $ENV{WORKSIBLE_MIGRATIONS};
delete $ENV{PGCONNECT_TIMEOUT};

my $json = JSON::PP->new->canonical;
my $ulid = qr/[0-9A-HJKMNP-TV-Z]{26}/;
my $ts   = qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;

my $db = sprintf 'cli_t_%d_%d', $$, time;
my $conninfo = "host=$ENV{PGHOST} port=$ENV{PGPORT} user=$ENV{PGUSER} "
             . "dbname=$db";
my $created;

system('createdb', '-h', $ENV{PGHOST}, '-p', $ENV{PGPORT}, '-U', 'postgres',
       '-O', $ENV{PGUSER}, $db) == 0
    or BAIL_OUT("createdb $db failed (is the test stack up? "
                . "util/stack.sh start test)");
$created = 1;

END {
    if ($created) {
        system('dropdb', '-h', $ENV{PGHOST}, '-p', $ENV{PGPORT}, '-U',
               'postgres', '--if-exists', '--force', $db);
    }
}

# --- helpers ---------------------------------------------------------------

sub slurp {
    my ($path) = @_;
    open my $fh, '<:raw', $path or die "$path: $!";
    local $/;
    my $s = <$fh>;
    return $s // '';
}

sub spit {
    my ($path, $text) = @_;
    open my $fh, '>:raw', $path or die "$path: $!";
    print $fh $text;
    close $fh or die "$path: $!";
}

my $tmp = tempdir(CLEANUP => 1);
my $seq = 0;

# spawn(@args): starts the CLI, returns a handle for finish()
sub spawn {
    my @cmd = ($cli, @_);
    unshift @cmd, qw(valgrind -q --leak-check=full --error-exitcode=9)
        if $ENV{WORKSIBLE_TEST_VALGRIND};
    $seq++;
    my ($out, $err) = ("$tmp/out.$seq", "$tmp/err.$seq");
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null' or POSIX::_exit(126);
        open STDOUT, '>', $out or POSIX::_exit(126);
        open STDERR, '>', $err or POSIX::_exit(126);
        exec @cmd or POSIX::_exit(127);
    }
    return { pid => $pid, out => $out, err => $err, args => [@_] };
}

# finish(handle): { rc, out, err }
sub finish {
    my ($h) = @_;
    waitpid $h->{pid}, 0;
    my $status = $?;
    return {
        rc  => ($status & 127) ? 128 + ($status & 127) : $status >> 8,
        out => slurp($h->{out}),
        err => slurp($h->{err}),
    };
}

# run(@args): the CLI with exactly these arguments
sub run { return finish(spawn(@_)) }

# cli(@args): the CLI on the scratch database
sub cli { return run('--db', $conninfo, @_) }

# sql($query): one psql call as the superuser (sees every row), trimmed
sub sql {
    my ($query) = @_;
    open my $fh, '-|', 'psql', '-X', '-q', '-A', '-t', '-v',
        'ON_ERROR_STOP=1', '-h', $ENV{PGHOST}, '-p', $ENV{PGPORT},
        '-U', 'postgres', '-d', $db, '-c', $query
        or die "psql: $!";
    local $/;
    my $out = <$fh> // '';
    close $fh or die "psql failed ($?): $query";
    $out =~ s/\n\z//;
    return $out;
}

# ok_run($r, $rc, $name): the exit status, with stderr on failure
sub ok_rc {
    my ($r, $rc, $name) = @_;
    is($r->{rc}, $rc, "$name: exit $rc")
        or diag("stdout: $r->{out}stderr: $r->{err}");
}

# fails($r, $rc, $re, $name): exit rc, nothing on stdout, and exactly one
# stderr line "worksible: ..." matching $re
sub fails {
    my ($r, $rc, $re, $name) = @_;
    ok_rc($r, $rc, $name);
    is($r->{out}, '', "$name: nothing on stdout");
    like($r->{err}, qr/\Aworksible: [^\n]*\n\z/, "$name: one stderr line");
    like($r->{err}, $re, "$name: message");
}

sub decode {
    my ($text, $name) = @_;
    my $v = eval { $json->decode($text) };
    ok(defined $v, "$name: JSON") or diag("not JSON: $text ($@)");
    return $v;
}

sub free_port {
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                  LocalPort => 0, Proto => 'tcp')
        or die "socket: $!";
    my $port = $s->sockport;
    close $s;
    return $port;
}

# --- usage -----------------------------------------------------------------

{
    my $r = run('--help');
    ok_rc($r, 0, '--help');
    like($r->{out}, qr/\Ausage: worksible /, '--help: usage on stdout');
    like($r->{out}, qr/key create --company ID/, '--help: lists key create');
    like($r->{out}, qr/^  plan set NAME \[--api-access on\|off\] \[--ip-allowlists on\|off\]\n\s+\[--limit N\] \[--window SECONDS\]$/m,
         '--help: lists plan set');
    like($r->{out}, qr/^  plan list$/m, '--help: lists plan list');
    is($r->{err}, '', '--help: nothing on stderr');

    $r = run('key', 'create', '-h');
    ok_rc($r, 0, 'key create -h');
    like($r->{out}, qr/\Ausage: worksible /, 'key create -h: usage');
}

# --- migrate ---------------------------------------------------------------

my $migdir = "$root/migrations";
opendir my $dh, $migdir or die "$migdir: $!";
my @files = sort grep { /^[0-9]{4}_[a-z0-9_]+\.sql$/ } readdir $dh;
closedir $dh;
ok(@files >= 1, 'there are migrations') or BAIL_OUT('no migrations');

{
    local $ENV{WORKSIBLE_MIGRATIONS} = $migdir;
    my $r = cli('migrate', '--json');
    ok_rc($r, 0, 'migrate --json');
    my $v = decode($r->{out}, 'migrate --json');
    is_deeply($v, { applied => \@files }, 'migrate --json: applied all, '
              . 'in name order');
}

is(sql('SELECT string_agg(version, \' \' ORDER BY version) '
       . 'FROM schema_migrations'),
   join(' ', @files), 'schema_migrations has every file');

for my $f (@files) {
    is(sql("SELECT checksum FROM schema_migrations WHERE version = '$f'"),
       sha256_hex(slurp("$migdir/$f")), "checksum of $f is its SHA-256");
}

{
    # no --dir, no WORKSIBLE_MIGRATIONS: the compiled-in directory
    my $r = cli('migrate');
    ok_rc($r, 0, 'migrate again');
    is($r->{out}, "up to date\n", 'migrate again: up to date');

    $r = cli('migrate', '--dir', $migdir, '--json');
    ok_rc($r, 0, 'migrate again --json');
    is_deeply(decode($r->{out}, 'migrate again --json'), { applied => [] },
              'migrate again --json: nothing applied');
}

{
    my $f = $files[0];
    my $sum = sql("SELECT checksum FROM schema_migrations "
                  . "WHERE version = '$f'");
    sql("UPDATE schema_migrations SET checksum = repeat('0', 64) "
        . "WHERE version = '$f'");
    my $r = cli('migrate', '--dir', $migdir);
    fails($r, 1, qr/^worksible: .*'\Q$f\E'.*changed/,
          'migrate with a changed file');
    sql("UPDATE schema_migrations SET checksum = '$sum' "
        . "WHERE version = '$f'");
    ok_rc(cli('migrate', '--dir', $migdir), 0, 'migrate after restoring');
}

my $extra = "$tmp/migrations";
mkdir $extra or die "$extra: $!";
copy("$migdir/$_", "$extra/$_") or die "copy $_: $!" for @files;

{
    spit("$extra/9000_cli_test.sql", "CREATE TABLE cli_test_a (x int);\n");
    spit("$extra/9001_Bad.sql", "this is not SQL;\n");
    spit("$extra/9002-cli.sql", "this is not SQL;\n");
    spit("$extra/README.md", "not a migration\n");
    spit("$extra/900_short.sql", "this is not SQL;\n");

    my $r = cli('migrate', '--dir', $extra);
    ok_rc($r, 0, 'migrate a new file');
    is($r->{out}, "applied 9000_cli_test.sql\n",
       'migrate: applies the new file only, ignores other names');
    is(sql("SELECT to_regclass('cli_test_a') IS NOT NULL"), 't',
       'migrate: the new file ran');

    spit("$extra/9003_cli_fail.sql",
         "CREATE TABLE cli_test_b (x int);\nSELECT FROM nowhere_at_all;\n");
    $r = cli('migrate', '--dir', $extra);
    fails($r, 1, qr/^worksible: database: 9003_cli_fail\.sql line 2: /,
          'migrate a failing file');
    is(sql("SELECT to_regclass('cli_test_b') IS NULL"), 't',
       'migrate: a failing file is rolled back as a whole');
    is(sql("SELECT count(*) FROM schema_migrations "
           . "WHERE version = '9003_cli_fail.sql'"), '0',
       'migrate: a failing file is not recorded');
    unlink "$extra/9003_cli_fail.sql";

    spit("$extra/9004_cli_commit.sql",
         "CREATE TABLE cli_test_c (x int);\nCOMMIT;\n");
    $r = cli('migrate', '--dir', $extra);
    fails($r, 1, qr/9004_cli_commit\.sql ended the transaction/,
          'migrate a file that commits');
    is(sql("SELECT count(*) FROM schema_migrations "
           . "WHERE version = '9004_cli_commit.sql'"), '0',
       'migrate: a file that commits is not recorded');
    unlink "$extra/9004_cli_commit.sql";

    unlink "$extra/9000_cli_test.sql";
    $r = cli('migrate', '--dir', $extra);
    fails($r, 1,
          qr/^worksible: applied migration '9000_cli_test\.sql' is missing/,
          'migrate with an applied file missing');
    spit("$extra/9000_cli_test.sql", "CREATE TABLE cli_test_a (x int);\n");

    $r = cli('migrate', '--dir', "$tmp/no-such-dir");
    fails($r, 1, qr/no-such-dir/, 'migrate from a missing directory');

    $r = cli('migrate', '--dir=');
    fails($r, 2, qr/--dir/, 'migrate --dir=');
}

{
    # two runs at once: the advisory lock makes one wait, then see it done
    spit("$extra/9005_cli_slow.sql",
         "SELECT pg_sleep(1);\nCREATE TABLE cli_test_slow (x int);\n");
    my @h = map { spawn('--db', $conninfo, 'migrate', '--dir', $extra) } 1, 2;
    my @r = map { finish($_) } @h;
    is_deeply([ map { $_->{rc} } @r ], [ 0, 0 ], 'concurrent migrate: exit 0')
        or diag(join '', map { $_->{err} } @r);
    is_deeply([ sort map { $_->{out} } @r ],
              [ "applied 9005_cli_slow.sql\n", "up to date\n" ],
              'concurrent migrate: applied once');
}

# 0002 fills currencies; make sure of the two this test uses
sql("INSERT INTO currencies (code, minor_unit) VALUES ('EUR', 2), ('JPY', 0) "
    . "ON CONFLICT DO NOTHING");

# --- company create --------------------------------------------------------

my ($growth, $enterprise, $trial);

{
    my $r = cli('company', 'create', '--name', 'Acme GmbH', '--plan',
                'growth');
    ok_rc($r, 0, 'company create');
    like($r->{out}, qr/\Acmp_$ulid\n\z/, 'company create: prints the id');
    ($growth) = $r->{out} =~ /^(\S+)/;
    is(sql("SELECT name || '|' || plan || '|' || currency FROM companies "
           . "WHERE id = '$growth'"),
       'Acme GmbH|growth|EUR', 'company create: stored, currency EUR');

    # --json after the command, --db after it too
    $r = run('company', 'create', '--name', "B\x{c3}\x{bc}ro AG", '--plan',
             'enterprise', '--currency', 'JPY', '--json', '--db', $conninfo);
    ok_rc($r, 0, 'company create --json');
    my $v = decode($r->{out}, 'company create --json');
    is_deeply([ sort keys %$v ], ['id'], 'company create --json: {"id"}');
    like($v->{id}, qr/\Acmp_$ulid\z/, 'company create --json: id');
    $enterprise = $v->{id};
    is(sql("SELECT plan || '|' || currency FROM companies "
           . "WHERE id = '$enterprise'"),
       'enterprise|JPY', 'company create --json: plan and currency');
    is(sql("SELECT name = 'B' || chr(252) || 'ro AG' FROM companies "
           . "WHERE id = '$enterprise'"),
       't', 'company create: UTF-8 name');

    $r = cli('--json', 'company', 'create', '--name', 'Tiny', '--plan',
             'trial');
    ok_rc($r, 0, 'company create on trial');
    $trial = decode($r->{out}, 'trial')->{id};

    fails(cli('company', 'create', '--name', 'X', '--plan', 'platinum'), 1,
          qr/^worksible: unknown plan 'platinum'$/m, 'unknown plan');
    fails(cli('company', 'create', '--name', 'X', '--plan', 'growth',
              '--currency', 'QQQ'), 1,
          qr/^worksible: unknown currency 'QQQ'/, 'unknown currency');
}

# --- bad arguments: exit 2, one line, never libpq's text --------------------

my $nocmp = 'cmp_' . ('0' x 26);
my $nokey = 'key_' . ('0' x 26);

my @bad = (
    [ [], qr/missing command/ ],
    [ ['frobnicate'], qr/unknown command 'frobnicate'/ ],
    [ ['key'], qr/'key' needs a subcommand/ ],
    [ ['key', 'frob'], qr/unknown command key 'frob'/ ],
    [ ['migrate', '--bogus'], qr/unknown option '--bogus'/ ],
    [ ['migrate', '-x'], qr/unknown option '-x'/ ],
    [ ['migrate', 'extra'], qr/unexpected argument 'extra'/ ],
    [ ['--json=1', 'migrate'], qr/--json takes no value/ ],
    [ ['company', 'create', '--name'], qr/--name needs a value/ ],
    [ ['company', 'create', '--plan', 'growth', '--name', '--json'],
      qr/--name needs a value/ ],
    [ ['company', 'create', '--plan', 'growth'], qr/needs --name/ ],
    [ ['company', 'create', '--name', 'a', '--name', 'b', '--plan', 'growth'],
      qr/--name given twice/ ],
    [ ['company', 'create', '--name', 'X', '--plan', 'growth', '--dir', '.'],
      qr/--dir is not valid for 'company create'/ ],
    [ ['company', 'create', '--name', 'X', '--plan', 'growth',
       '--currency', 'eur'], qr/--currency: 'eur'/ ],
    [ ['company', 'create', '--name', 'X', '--plan', 'growth',
       '--currency', 'EURO'], qr/--currency: 'EURO'/ ],
    [ ['company', 'create', '--name', 'X', '--plan', 'growth',
       '--currency', 'E1R'], qr/--currency: 'E1R'/ ],
    [ ['company', 'create', '--name=', '--plan', 'growth'],
      qr/--name: must not be empty/ ],
    [ ['company', 'create', '--name', "a\tb", '--plan', 'growth'],
      qr/--name: control characters/ ],
    [ ['company', 'create', '--name', "\xff", '--plan', 'growth'],
      qr/--name: not valid UTF-8/ ],
    [ ['company', 'create', '--name', 'x' x 201, '--plan', 'growth'],
      qr/--name: longer than 200/ ],
    [ ['--db', 'host=127.0.0.1 bogus=1', 'migrate'],
      qr/^worksible: --db: not a valid libpq connection string/ ],
    [ ['--db', 'postgresql://[::1', 'migrate'],
      qr/^worksible: --db: not a valid libpq connection string/ ],
    [ ['key', 'list'], qr/'key list' needs --company/ ],
    [ ['key', 'list', '--company', 'cmp_nope'],
      qr/--company: 'cmp_nope' is not a cmp_ id/ ],
    [ ['key', 'revoke'], qr/'key revoke' needs a key id/ ],
    [ ['key', 'revoke', 'key_nope'], qr/'key_nope' is not a key_ id/ ],
    [ ['key', 'revoke', $nocmp], qr/is not a key_ id/ ],
    [ ['key', 'revoke', $nokey, $nokey], qr/unexpected argument/ ],
    [ ['key', 'create', '--company', $nocmp], qr/needs --scopes/ ],
    [ ['key', 'create', '--scopes', 'company:read'], qr/needs --company/ ],
    [ ['key', 'create', '--company', 'nope', '--scopes', 'a:read'],
      qr/--company: 'nope'/ ],
);

for my $s ('', '   ', 'Company:read', 'company:admin', 'company', ':read',
           'company:read,projects:read', 'a1:read', "company:read\tx:read")
{
    push @bad, [ ['key', 'create', '--company', $nocmp, '--scopes', $s],
                 qr/--scopes: / ];
}

for my $t ('2027-01-31 10:00:00Z', '2027-01-31T10:00Z',
           '2027-01-31T10:00:00', '2027-02-30T10:00:00Z',
           '2027-01-31T24:00:00Z', '2027-01-31T10:60:00Z',
           '2027-01-31T10:00:00+2:00', '2027-01-31T10:00:00+0200',
           '2027-01-31T10:00:00.Z', '27-01-31T10:00:00Z', '2027-01-31',
           'tomorrow', '2027-01-31T10:00:00Z ', '2027-06-29T23:59:60Z',
           '2027-01-31T10:00:00+24:00')
{
    push @bad, [ ['key', 'create', '--company', $nocmp, '--scopes', 'a:read',
                  '--expires-at', $t],
                 qr/--expires-at: '\Q$t\E' is not an RFC 3339 date-time/ ];
}

push @bad, [ ['key', 'create', '--company', $nocmp, '--scopes', 'a:read',
              '--expires-at', '2020-01-01T00:00:00Z'],
             qr/--expires-at: '2020-01-01T00:00:00Z' is not in the future/ ];

for my $ip ('10.0.0.0/33', '::/129', '10.0.0.1/', '010.0.0.1', '256.1.1.1',
            '10.0.0.1/24', '10.0.0.0/08', '1.2.3', '1.2.3.4.5', 'x',
            'fe80::1%eth0', '/8', '2001:db8::1/32', '10.0.0.0/8/8', '::/')
{
    push @bad, [ ['key', 'create', '--company', $nocmp, '--scopes', 'a:read',
                  '--allow-ip', '10.0.0.0/8', '--allow-ip', $ip],
                 qr/--allow-ip: '\Q$ip\E' is not a CIDR block/ ];
}

# plan set and plan list: refused before connecting
push @bad,
    [ ['plan'], qr/'plan' needs a subcommand/ ],
    [ ['plan', 'frob'], qr/unknown command plan 'frob'/ ],
    [ ['plan', 'set', '--limit', '5', '--window', '60'],
      qr/'plan set' needs a plan name/ ],
    [ ['plan', 'set', 'a', 'b', '--limit', '5'],
      qr/unexpected argument 'b' for 'plan set'/ ],
    [ ['plan', 'set', 'growth'],
      qr/'plan set' needs at least one of --api-access, --ip-allowlists, --limit, --window/ ],
    [ ['plan', 'set', 'cli_nothing'], qr/needs at least one of/ ],
    [ ['plan', 'set', 'growth', '--name', 'x'],
      qr/--name is not valid for 'plan set'/ ],
    [ ['plan', 'set', 'growth', '--limit', '5', '--limit', '6'],
      qr/--limit given twice/ ],
    [ ['plan', 'set', 'growth', '--limit', '-1'], qr/--limit needs a value/ ],
    [ ['plan', 'set', 'growth', '--window'], qr/--window needs a value/ ],
    [ ['plan', 'list', '--limit', '5'],
      qr/--limit is not valid for 'plan list'/ ],
    [ ['plan', 'list', 'extra'], qr/unexpected argument 'extra'/ ];

for my $n ('Upper', 'growtH', '1abc', '_abc', 'a-b', 'a b', 'a' x 33, '',
           "caf\x{c3}\x{a9}")
{
    push @bad, [ ['plan', 'set', '--limit', '5', '--window', '60', $n],
                 qr/plan name '.*' is not valid/ ];
}

for my $v ('0', '-1', '+1', '01', '1e3', 'abc', '', ' 5', '5 ', '1.5',
           '0x10', '1000000001', '99999999999999999999')
{
    push @bad, [ ['plan', 'set', 'growth', "--limit=$v"],
                 qr/--limit: '\Q$v\E' is not a whole number of requests from 1 to 1000000000/ ];
}

for my $v ('0', '-1', '01', '1e3', 'abc', '86401', '100000')
{
    push @bad, [ ['plan', 'set', 'growth', "--window=$v"],
                 qr/--window: '\Q$v\E' is not a whole number of seconds from 1 to 86400/ ];
}

for my $v ('yes', 'ON', 'true', '1', '') {
    push @bad, [ ['plan', 'set', 'growth', "--api-access=$v"],
                 qr/--api-access: '\Q$v\E' is not on or off/ ];
}

{
    local $ENV{WORKSIBLE_KEY_SECRET_FILE};
    delete $ENV{WORKSIBLE_KEY_SECRET_FILE};
    fails(cli('key', 'create', '--company', $nocmp, '--scopes', 'a:read'), 2,
          qr/needs --key-secret-file or WORKSIBLE_KEY_SECRET_FILE/,
          'key create without a server secret');
}

for my $b (@bad) {
    my ($args, $re) = @$b;
    my $name = 'bad: ' . (join(' ', @$args) || '(nothing)');
    $name =~ s/[^\x20-\x7e]/?/g;
    my $r = (@$args && $args->[0] eq '--db') ? run(@$args) : cli(@$args);
    fails($r, 2, qr/^worksible: /, $name);
    like($r->{err}, $re, "$name: says why");
    unlike($r->{err}, qr/invalid connection option|missing "="|FATAL|ERROR/,
           "$name: no libpq text");
}

# --- key create ------------------------------------------------------------

my $token_re = qr/\Awsk_live_([a-z0-9]{12})_([A-Za-z0-9]{32})\z/;
my (@tokens, $key1, $key2);

{
    my $r = cli('key', 'create', '--company', $growth, '--scopes',
                'company:read  freelancers:write company:read', '--name',
                'ci deploy', '--json');
    ok_rc($r, 0, 'key create --json');
    like($r->{err}, qr/\Aworksible: warning: the key is shown only this once/,
         'key create: warns that the key is shown once');
    my $v = decode($r->{out}, 'key create --json');
    is_deeply([ sort keys %$v ],
              [ qw(created_at expires_at id ip_allowlist key last_used_at
                   name object prefix revoked_at scopes) ],
              'key create --json: the api_key object plus "key"');
    is($v->{object}, 'api_key', 'key create: object');
    like($v->{id}, qr/\Akey_$ulid\z/, 'key create: id');
    like($v->{key}, $token_re, 'key create: key format');
    my ($kid) = $v->{key} =~ $token_re;
    is($v->{prefix}, "wsk_live_$kid", 'key create: prefix is the key id');
    is($v->{name}, 'ci deploy', 'key create: name');
    is_deeply($v->{scopes}, [ 'company:read', 'freelancers:write' ],
              'key create: duplicate scopes removed, order kept');
    is_deeply($v->{ip_allowlist}, [], 'key create: no allowlist');
    is($v->{$_}, undef, "key create: $_ null")
        for qw(expires_at revoked_at last_used_at);
    like($v->{created_at}, $ts, 'key create: created_at RFC 3339 UTC');
    $key1 = $v;
    push @tokens, $v->{key};

    is(sql("SELECT concat_ws('|', company_id, key_id, length(secret_hash), "
           . "secret_version) FROM api_keys WHERE id = '$v->{id}'"),
       "$growth|$kid|32|1",
       'key create: stored with its key id, a 32-byte hash, version 1');

    # text output: id, then the key; a new token and hash each time
    $r = cli('key', 'create', '--company', $growth, '--scopes',
             'company:read');
    ok_rc($r, 0, 'key create (text)');
    like($r->{out}, qr/\Akey_$ulid\nwsk_live_[a-z0-9]{12}_[A-Za-z0-9]{32}\n\z/,
         'key create (text): id and key lines');
    my ($id2, $tok2) = split /\n/, $r->{out};
    push @tokens, $tok2;
    my ($kid2) = $tok2 =~ $token_re;
    $key2 = $id2;
    isnt($kid2, $kid, 'key create: another key id');
    is(sql("SELECT count(DISTINCT secret_hash) FROM api_keys "
           . "WHERE id IN ('$v->{id}', '$id2')"), '2',
       'key create: another hash');
    is(sql("SELECT key_id FROM api_keys WHERE id = '$id2'"), $kid2,
       'key create (text): the printed key is the stored one');

    fails(cli('key', 'create', '--company', $nocmp, '--scopes', 'a:read'), 1,
          qr/^worksible: unknown company '\Q$nocmp\E'/,
          'key create for an unknown company');
    fails(cli('key', 'list', '--company', $nocmp), 1,
          qr/^worksible: unknown company/, 'key list for an unknown company');

    fails(cli('key', 'create', '--company', $growth, '--scopes', 'a:read',
              '--key-secret-file', "$tmp/no-such-file"), 1,
          qr/no-such-file/, 'key create with a missing secret file');
    spit("$tmp/bad_secret", "not hex\n");
    fails(cli('key', 'create', '--company', $growth, '--scopes', 'a:read',
              '--key-secret-file', "$tmp/bad_secret"), 1,
          qr/not 64 hex characters/, 'key create with a bad secret file');

    $r = cli('key', 'create', '--company', $trial, '--scopes', 'a:read');
    ok_rc($r, 0, 'key create on trial');
    like($r->{err}, qr/plan 'trial' has no API access/,
         'key create on trial: warns');
}

{
    my $before = sql('SELECT count(*) FROM api_keys');
    fails(cli('key', 'create', '--company', $growth, '--scopes', 'a:read',
              '--allow-ip', '10.0.0.0/8'), 1,
          qr/^worksible: database: IP allowlists are not part of this company's plan/,
          'allowlist on growth');
    fails(cli('key', 'create', '--company', $trial, '--scopes', 'a:read',
              '--allow-ip', '10.0.0.0/8'), 1,
          qr/^worksible: database: IP allowlists are not part of this company's plan/,
          'allowlist on trial');
    is(sql('SELECT count(*) FROM api_keys'), $before,
       'allowlist refused: no key stored');

    my $r = cli('key', 'create', '--company', $enterprise, '--scopes',
                'reports:read', '--allow-ip', '10.0.0.0/8', '--allow-ip',
                '2001:db8::/32', '--allow-ip=192.0.2.7', '--allow-ip',
                '10.0.0.0/8', '--expires-at', '2099-01-31T10:00:00+02:00',
                '--json');
    ok_rc($r, 0, 'key create with an allowlist on enterprise');
    my $v = decode($r->{out}, 'allowlist');
    push @tokens, $v->{key};
    is_deeply($v->{ip_allowlist}, [ '10.0.0.0/8', '2001:db8::/32',
                                    '192.0.2.7/32' ],
              'allowlist: stored, bare address as /32, duplicates dropped');
    is(sql("SELECT ip_allowlist::text FROM api_keys WHERE id = '$v->{id}'"),
       '{10.0.0.0/8,2001:db8::/32,192.0.2.7/32}', 'allowlist: cidr[] row');
    is($v->{expires_at}, '2099-01-31T08:00:00Z',
       'expires-at: offset converted to UTC');

    $r = cli('key', 'create', '--company', $enterprise, '--scopes', 'a:write',
             '--allow-ip', '::1', '--allow-ip', '0.0.0.0/0', '--expires-at',
             '2099-12-31t23:59:59.123456789z', '--json');
    ok_rc($r, 0, 'key create: /128, /0, fraction, lower-case t and z');
    $v = decode($r->{out}, 'fraction');
    push @tokens, $v->{key};
    is_deeply($v->{ip_allowlist}, [ '::1/128', '0.0.0.0/0' ],
              'allowlist: bare IPv6 as /128, /0');
    is(sql("SELECT expires_at = '2099-12-31 23:59:59.123456+00' "
           . "FROM api_keys WHERE id = '$v->{id}'"), 't',
       'expires-at: fraction kept to the microsecond');

    $r = cli('key', 'create', '--company', $enterprise, '--scopes', 'a:read',
             '--expires-at', '2098-12-31T23:59:60Z', '--json');
    ok_rc($r, 0, 'key create: leap second');
    $v = decode($r->{out}, 'leap second');
    push @tokens, $v->{key};
    is($v->{expires_at}, '2099-01-01T00:00:00Z', 'leap second: next second');
}

# --- key list --------------------------------------------------------------

{
    my $r = cli('key', 'list', '--company', $growth, '--json');
    ok_rc($r, 0, 'key list --json');
    my $v = decode($r->{out}, 'key list --json');
    is(ref $v, 'ARRAY', 'key list --json: an array');
    is_deeply([ map { $_->{id} } @$v ], [ $key2, $key1->{id} ],
              'key list: the company\'s keys, newest first');
    ok(!grep({ exists $_->{key} } @$v), 'key list: no "key" member');
    is_deeply([ map { $_->{object} } @$v ], [ 'api_key', 'api_key' ],
              'key list: api_key objects');
    for my $tok (@tokens) {
        my ($kid, $secret) = $tok =~ $token_re;
        unlike($r->{out}, qr/\Q$secret\E/, 'key list: no secret');
    }
    my $hash = sql("SELECT encode(secret_hash, 'hex') FROM api_keys "
                   . "WHERE id = '$key2'");
    unlike($r->{out}, qr/$hash/i, 'key list: no hash');
    unlike($r->{out}, qr/secret|hash/, 'key list: no secret or hash field');

    $r = cli('key', 'list', '--company', $growth);
    ok_rc($r, 0, 'key list');
    my @lines = split /\n/, $r->{out};
    is(scalar @lines, 2, 'key list: one line per key');
    like($lines[0], qr/\A\Q$key2\E\twsk_live_[a-z0-9]{12}\tactive\t\S+Z\t-\t
                       company:read\t-\z/x, 'key list: line format');
    like($lines[1], qr/\tcompany:read,freelancers:write\tci deploy\z/,
         'key list: scopes and name');

    # the libpq environment instead of --db
    local $ENV{PGDATABASE} = $db;
    $r = run('key', 'list', '--company', $growth, '--json');
    ok_rc($r, 0, 'key list without --db');
    is(scalar @{ decode($r->{out}, 'env') }, 2, 'key list without --db: keys');
}

# --- key revoke ------------------------------------------------------------

{
    my $bypass = sql("SELECT rolsuper OR rolbypassrls FROM pg_roles "
                     . "WHERE rolname = '$ENV{PGUSER}'") eq 't';
    my $id = $key1->{id};
    my $r;

    if ($bypass) {
        $r = cli('key', 'revoke', $id, '--json');

    } else {
        # the role is subject to row-level security: the key is not visible
        # without its company
        fails(cli('key', 'revoke', $id), 1,
              qr/^worksible: unknown key '\Q$id\E' \(.*add --company/,
              'key revoke without BYPASSRLS');
        $r = cli('key', 'revoke', $id, '--company', $growth, '--json');
    }

    ok_rc($r, 0, 'key revoke');
    my $v = decode($r->{out}, 'key revoke');
    is($v->{id}, $id, 'key revoke: prints the object');
    like($v->{revoked_at}, $ts, 'key revoke: revoked_at set');
    is(sql("SELECT revoked_at IS NOT NULL FROM api_keys WHERE id = '$id'"),
       't', 'key revoke: stored');
    my $at = sql("SELECT revoked_at FROM api_keys WHERE id = '$id'");

    $r = cli('key', 'revoke', $id, '--company', $growth);
    ok_rc($r, 0, 'key revoke again');
    like($r->{out}, qr/\A\Q$id\E\t[^\t]+\trevoked\t/,
         'key revoke (text): the key line');
    is(sql("SELECT revoked_at FROM api_keys WHERE id = '$id'"), $at,
       'key revoke again: revoked_at unchanged');

    fails(cli('key', 'revoke', $key2, '--company', $enterprise), 1,
          qr/^worksible: unknown key/, 'key revoke with another company');
    is(sql("SELECT revoked_at IS NULL FROM api_keys WHERE id = '$key2'"),
       't', 'key revoke with another company: not revoked');
    fails(cli('key', 'revoke', $nokey, '--company', $growth), 1,
          qr/^worksible: unknown key '\Q$nokey\E'/, 'key revoke unknown');
    fails(cli('key', 'revoke', $nokey), 1,
          qr/^worksible: unknown key '\Q$nokey\E'/, 'key revoke unknown');

    $r = cli('key', 'list', '--company', $growth);
    like($r->{out}, qr/^\Q$id\E\t[^\t]+\trevoked\t/m,
         'key list: shows revoked');
}

# --- plan set / plan list -------------------------------------------------

my @plan_keys = qw(object name api_access ip_allowlists rate_limit rate_window
                   created_at updated_at);
my %plans = (
    trial      => [ 0,    60, 60 ],
    core       => [ 0,    60, 60 ],
    growth     => [ 1,   600, 60 ],
    scale      => [ 1,  3000, 60 ],
    enterprise => [ 1, 10000, 60 ],
);

# plan_row($name): "api_access|rate_limit|rate_window" as stored
sub plan_row {
    my ($name) = @_;
    return sql("SELECT concat_ws('|', api_access, rate_limit, rate_window) "
               . "FROM plans WHERE name = '$name'");
}

# plan_line($name): the text line of a plan of %plans
sub plan_line {
    my ($name) = @_;
    my ($access, $limit, $window) = @{ $plans{$name} };
    return sprintf "%s api_access=%s ip_allowlists=%s limit=%d window=%d", $name,
        $access ? 'on' : 'off', $name eq 'enterprise' ? 'on' : 'off', $limit, $window;
}

# plan_order(): the names of %plans ordered by rate_limit, then name
sub plan_order {
    return sort { $plans{$a}[1] <=> $plans{$b}[1] || $a cmp $b } keys %plans;
}

{
    my $r = cli('plan', 'list', '--json');
    ok_rc($r, 0, 'plan list --json (seeded)');
    my $v = decode($r->{out}, 'plan list --json (seeded)');
    is_deeply([ map { $_->{name} } @$v ],
              [ qw(core trial growth scale enterprise) ],
              'plan list: the seeded plans by rate_limit, then name');

    # a new plan without --api-access: off
    $r = cli('plan', 'set', 'cli_basic', '--limit', '100', '--window', '30');
    ok_rc($r, 0, 'plan set new');
    is($r->{out}, "cli_basic api_access=off ip_allowlists=off limit=100 window=30\n",
       'plan set new: prints the plan');
    is($r->{err}, '', 'plan set new: nothing on stderr');
    is(plan_row('cli_basic'), 'f|100|30', 'plan set new: stored, api off');
    is(sql("SELECT created_at = updated_at FROM plans "
           . "WHERE name = 'cli_basic'"), 't',
       'plan set new: created_at = updated_at');
    $plans{cli_basic} = [ 0, 100, 30 ];

    # a new plan with --api-access on, --json: the plan object, exactly
    $r = cli('plan', 'set', 'cli_pro', '--api-access', 'on', '--limit=1',
             '--window=86400', '--json');
    ok_rc($r, 0, 'plan set new --json');
    like($r->{out}, qr/\A\{"object":"plan","name":"cli_pro","api_access":true,
                       "ip_allowlists":false,"rate_limit":1,"rate_window":86400,
                       "created_at":"[^"]+","updated_at":"[^"]+"\}\n\z/x,
         'plan set --json: one line, members in order');
    $v = decode($r->{out}, 'plan set --json');
    is_deeply([ sort keys %$v ], [ sort @plan_keys ],
              'plan set --json: exactly the plan members');
    is($v->{object}, 'plan', 'plan set --json: object');
    is($v->{name}, 'cli_pro', 'plan set --json: name');
    ok(JSON::PP::is_bool($v->{api_access}) && $v->{api_access},
       'plan set --json: api_access true (a JSON boolean)');
    ok(!ref $v->{rate_limit} && $r->{out} =~ /"rate_limit":1,/,
       'plan set --json: rate_limit a JSON number');
    is($v->{rate_window}, 86400, 'plan set --json: rate_window');
    like($v->{created_at}, $ts, 'plan set --json: created_at RFC 3339 UTC');
    like($v->{updated_at}, $ts, 'plan set --json: updated_at RFC 3339 UTC');
    is($v->{created_at},
       sql("SELECT worksible_ts(created_at) FROM plans "
           . "WHERE name = 'cli_pro'"), 'plan set --json: created_at stored');
    is(plan_row('cli_pro'), 't|1|86400', 'plan set new --json: stored');

    # updates: one field at a time keeps the others and bumps updated_at
    sql("UPDATE plans SET created_at = created_at - interval '1 day', "
        . "updated_at = updated_at - interval '1 day' "
        . "WHERE name = 'cli_pro'");
    my $created = sql("SELECT created_at FROM plans WHERE name = 'cli_pro'");

    $r = cli('plan', 'set', 'cli_pro', '--limit', '1000000000');
    ok_rc($r, 0, 'plan set --limit only');
    is($r->{out}, "cli_pro api_access=on ip_allowlists=off limit=1000000000 window=86400\n",
       'plan set --limit only: keeps api_access and window');
    is(plan_row('cli_pro'), 't|1000000000|86400',
       'plan set --limit only: stored');
    is(sql("SELECT concat_ws('|', created_at = '$created', "
           . "updated_at > created_at, updated_at > now() - interval '1 hour') "
           . "FROM plans WHERE name = 'cli_pro'"), 't|t|t',
       'plan set update: created_at kept, updated_at = now()');

    $r = cli('plan', 'set', 'cli_pro', '--window', '1');
    ok_rc($r, 0, 'plan set --window only');
    is(plan_row('cli_pro'), 't|1000000000|1',
       'plan set --window only: keeps api_access and limit');

    $r = cli('--json', 'plan', 'set', 'cli_pro', '--api-access=off');
    ok_rc($r, 0, 'plan set --api-access only');
    $v = decode($r->{out}, 'plan set --api-access only');
    ok(JSON::PP::is_bool($v->{api_access}) && !$v->{api_access},
       'plan set --api-access off: false');
    isnt($v->{updated_at}, $v->{created_at},
         'plan set update --json: updated_at moved');
    is(plan_row('cli_pro'), 'f|1000000000|1',
       'plan set --api-access only: keeps limit and window');

    # --limit and --window on an existing plan: api_access kept
    $r = cli('plan', 'set', 'cli_pro', '--api-access', 'on', '--limit', '250',
             '--window', '60');
    ok_rc($r, 0, 'plan set every option on an existing plan');
    $r = cli('plan', 'set', 'cli_pro', '--limit', '300', '--window', '120');
    ok_rc($r, 0, 'plan set --limit --window on an existing plan');
    is($r->{out}, "cli_pro api_access=on ip_allowlists=off limit=300 window=120\n",
       'plan set --limit --window: keeps api_access of an existing plan');
    is(sql("SELECT count(*) FROM plans WHERE name = 'cli_pro'"), '1',
       'plan set: still one row');
    $plans{cli_pro} = [ 1, 300, 120 ];

    # a seeded plan
    $r = cli('plan', 'set', 'trial', '--limit', '30');
    ok_rc($r, 0, 'plan set on a seeded plan');
    is($r->{out}, "trial api_access=off ip_allowlists=off limit=30 window=60\n",
       'plan set on a seeded plan: printed');
    $plans{trial}[1] = 30;

    # which plans may give keys IP allowlists: an attribute of the plan
    $r = cli('plan', 'set', 'cli_pro', '--ip-allowlists', 'on');
    ok_rc($r, 0, 'plan set --ip-allowlists on');
    is($r->{out}, "cli_pro api_access=on ip_allowlists=on limit=300 window=120\n",
       'plan set --ip-allowlists: printed, the rest kept');
    my $pro = decode(cli('company', 'create', '--name', 'Allow Pro', '--plan',
                         'cli_pro', '--json')->{out}, 'company on cli_pro');
    ok_rc(cli('key', 'create', '--company', $pro->{id}, '--scopes', 'a:read',
              '--allow-ip', '10.0.0.0/8', '--key-secret-file', $ENV{WORKSIBLE_KEY_SECRET_FILE}),
          0, 'key create with an allowlist on a plan with ip_allowlists');
    fails(cli('plan', 'set', 'cli_pro', '--ip-allowlists', 'yes'), 2,
          qr/^worksible: --ip-allowlists: 'yes' is not on or off/, 'plan set --ip-allowlists yes');
    ok_rc(cli('plan', 'set', 'cli_pro', '--ip-allowlists', 'off'), 0,
          'plan set --ip-allowlists off');

    # same limit as another plan: ordered by name
    ok_rc(cli('plan', 'set', 'cli_a_60', '--limit', '60', '--window', '60'),
          0, 'plan set with the limit of core');
    $plans{cli_a_60} = [ 0, 60, 60 ];

    # 32 characters, the longest name
    my $long = 'z' . ('9_' x 15) . 'x';
    ok_rc(cli('plan', 'set', $long, '--limit', '7', '--window', '7'), 0,
          'plan set with a 32-character name');
    $plans{$long} = [ 0, 7, 7 ];
}

{
    # a new plan needs --limit and --window: exit 2, nothing stored
    my $before = sql('SELECT count(*) FROM plans');
    fails(cli('plan', 'set', 'cli_new', '--window', '60'), 2,
          qr/^worksible: plan 'cli_new' does not exist: creating it needs --limit$/,
          'plan set new without --limit');
    fails(cli('plan', 'set', 'cli_new', '--limit', '5', '--api-access', 'on'),
          2,
          qr/^worksible: plan 'cli_new' does not exist: creating it needs --window$/,
          'plan set new without --window');
    fails(cli('plan', 'set', 'cli_new', '--api-access', 'on'), 2,
          qr/^worksible: plan 'cli_new' does not exist: creating it needs --limit and --window$/,
          'plan set new with --api-access only');
    is(sql('SELECT count(*) FROM plans'), $before,
       'plan set refused: no plan stored');
    is(plan_row('cli_pro'), 't|300|120', 'plan set refused: others intact');
}

{
    my @order = plan_order();

    my $r = cli('plan', 'list');
    ok_rc($r, 0, 'plan list');
    is($r->{err}, '', 'plan list: nothing on stderr');
    is($r->{out}, join('', map { plan_line($_) . "\n" } @order),
       'plan list: one line per plan, by rate_limit then name');

    $r = cli('plan', 'list', '--json');
    ok_rc($r, 0, 'plan list --json');
    like($r->{out}, qr/\A\[[^\n]*\]\n\z/, 'plan list --json: one line');
    my $v = decode($r->{out}, 'plan list --json');
    is(ref $v, 'ARRAY', 'plan list --json: an array');
    is_deeply([ map { $_->{name} } @$v ], \@order,
              'plan list --json: every plan, seeded and new, in order');
    is_deeply([ map { [ $_->{api_access} ? 1 : 0, $_->{rate_limit},
                        $_->{rate_window} ] } @$v ],
              [ map { $plans{$_} } @order ], 'plan list --json: the values');
    ok(!grep({ join(',', sort keys %$_) ne join(',', sort @plan_keys) } @$v),
       'plan list --json: plan objects, exactly their members');
    ok(!grep({ $_->{object} ne 'plan' || $_->{created_at} !~ $ts
               || $_->{updated_at} !~ $ts } @$v),
       'plan list --json: object and timestamps');
    like($r->{out}, qr/^\[\{"object":"plan","name":"\Q$order[0]\E",/,
         'plan list --json: members in order');

    # the libpq environment instead of --db
    local $ENV{PGDATABASE} = $db;
    $r = run('plan', 'list');
    ok_rc($r, 0, 'plan list without --db');
    is(scalar(() = $r->{out} =~ /\n/g), scalar @order,
       'plan list without --db: the plans');
}

# --- logs prune ------------------------------------------------------------

# log_at($id, $age): one request_logs row for worksible_request_logs_insert,
# created $age (an SQL interval) before now, as SQL building its JSON
sub log_at {
    my ($id, $age) = @_;
    return "json_build_object('id', '$id', 'company_id', NULL, "
         . "'api_key_id', NULL, 'method', 'GET', 'path', '/v1/x', "
         . "'status', 401, 'latency_ms', 3, 'ip', '192.0.2.1', "
         . "'user_agent', NULL, 'idempotency_key', NULL, 'replayed', false, "
         . "'ratelimit_remaining', NULL, 'created_at', "
         . "to_char((now() - interval '$age') AT TIME ZONE 'UTC', "
         . "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'))";
}

# day_part($age): the partition name of the UTC day of now() - $age
sub day_part {
    my ($age) = @_;
    return sql("SELECT 'request_logs_p' || to_char((now() - interval '$age')"
               . " AT TIME ZONE 'UTC', 'YYYYMMDD')");
}

# log_parts(): the partitions of request_logs up to today's (those of the
# next days are made ahead), by name, space-separated
sub log_parts {
    return sql("SELECT coalesce(string_agg(c.relname, ' ' ORDER BY c.relname),"
               . " '') FROM pg_inherits i JOIN pg_class c"
               . " ON c.oid = i.inhrelid"
               . " WHERE i.inhparent = 'request_logs'::regclass"
               . " AND c.relname <= 'request_logs_p'"
               . " || to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD')");
}

{
    # bad arguments: exit 2, the database untouched
    for my $bad (qw(0d 3651d 87601h 30 d h 030d 30m 30D 1.5d 30dd d30 +3d),
                 ' 3d', '')
    {
        fails(cli('logs', 'prune', "--older-than=$bad"), 2,
              $bad eq '' ? qr/--older-than/
                         : qr/^worksible: --older-than: '\Q$bad\E' is not Nd \(1 to 3650 days\) or Nh \(1 to 87600 hours\)$/m,
              "logs prune --older-than '$bad'");
    }
    fails(cli('logs', 'prune'), 2, qr/'logs prune' needs --older-than/,
          'logs prune without --older-than');
    fails(cli('logs', 'prune', '--older-than', '-3d'), 2,
          qr/--older-than needs a value/, 'logs prune --older-than -3d');
    fails(cli('logs', 'prune', 'extra', '--older-than', '3d'), 2,
          qr/unexpected argument 'extra'/, 'logs prune extra');
    fails(cli('logs', 'prune', '--older-than', '3d', '--limit', '5'), 2,
          qr/option --limit is not valid for 'logs prune'/,
          'logs prune --limit');
    fails(cli('logs'), 2, qr/'logs' needs a subcommand/, 'logs alone');

    my $r = cli('--help');
    like($r->{out}, qr/^  logs prune --older-than AGE$/m,
         '--help: lists logs prune');

    # The checks below name UTC days: a block that crossed midnight would
    # see two "todays". So it does not start in a day's last 20 s, and the
    # partitions that 'migrate' made ahead on an earlier day (a run that
    # began before midnight) are dropped; the table holds no row yet.
    my $left = 86400 - time % 86400;
    sleep $left + 1 if $left < 20;
    sql(q{DO $$ DECLARE p text; BEGIN
            FOR p IN SELECT c.relname FROM pg_inherits i JOIN pg_class c
                       ON c.oid = i.inhrelid
                      WHERE i.inhparent = 'request_logs'::regclass
                        AND c.relname < 'request_logs_p'
                            || to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD')
            LOOP EXECUTE format('DROP TABLE %I', p); END LOOP;
          END $$});

    # nothing yet
    $r = cli('logs', 'prune', '--older-than', '1h');
    ok_rc($r, 0, 'logs prune, no partition');
    is($r->{out}, "nothing to drop\n", 'logs prune, no partition: says so');

    # four days of rows (as the module writes them): 40, 10 and 2 days
    # old, and now
    my @age = ('40 days', '10 days', '2 days', '0 seconds');
    my @part = map { day_part($_) } @age;
    is(sql('SELECT worksible_request_logs_insert(json_build_array('
           . join(', ', map { log_at("req_cli$_", $age[$_]) } 0 .. 3) . '))'),
       4, 'insert: four rows');
    is(log_parts(), join(' ', @part), 'insert: four day partitions');

    $r = cli('logs', 'prune', '--older-than', '30d');
    ok_rc($r, 0, 'logs prune 30d');
    is($r->{out}, "$part[0]\n", 'logs prune 30d: the 40-day-old partition');
    is($r->{err}, '', 'logs prune 30d: nothing on stderr');
    is(log_parts(), "@part[1 .. 3]", 'logs prune 30d: the others remain');

    $r = cli('logs', 'prune', '--older-than=30d');
    ok_rc($r, 0, 'logs prune 30d again');
    is($r->{out}, "nothing to drop\n", 'logs prune 30d again: nothing');

    $r = cli('logs', 'prune', '--older-than', '3650d', '--json');
    ok_rc($r, 0, 'logs prune 3650d --json');
    is($r->{out}, qq({"dropped":[]}\n), 'logs prune --json: empty list');

    # 200 hours: 8 days 8 hours, so the 10-day-old day only
    $r = cli('--json', 'logs', 'prune', '--older-than', '200h');
    ok_rc($r, 0, 'logs prune 200h --json');
    is($r->{out}, qq({"dropped":["$part[1]"]}\n),
       'logs prune 200h --json: the 10-day-old partition');

    # not the owner: worksible_api may not prune
    (my $api = $conninfo) =~ s/\buser=\S+/user=worksible_api/;
    $r = run('--db', $api, 'logs', 'prune', '--older-than', '1h');
    fails($r, 1, qr/^worksible: database: permission denied for function worksible_request_logs_prunable$/m,
          'logs prune as worksible_api');
    is(log_parts(), "@part[2 .. 3]", 'logs prune as worksible_api: nothing dropped');

    # 1 hour: every day but today's (today ends tomorrow)
    $r = cli('logs', 'prune', '--older-than', '1h');
    ok_rc($r, 0, 'logs prune 1h');
    is($r->{out}, "$part[2]\n", 'logs prune 1h: all but today');
    is(log_parts(), $part[3], 'logs prune 1h: today remains');
    is(sql("SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
           . " WHERE i.inhparent = 'request_logs'::regclass AND c.relname IN"
           . " ('request_logs_p' || to_char(now() AT TIME ZONE 'UTC' + interval '1 day', 'YYYYMMDD'),"
           . "  'request_logs_p' || to_char(now() AT TIME ZONE 'UTC' + interval '2 days', 'YYYYMMDD'))"),
       2, 'logs prune 1h: the next two days\' partitions are made ahead');
    is(sql('SELECT count(*) FROM request_logs'), 1,
       'logs prune 1h: today\'s row remains');
}

# --- database unreachable --------------------------------------------------

{
    my $port = free_port();
    fails(run('--db', "host=127.0.0.1 port=$port dbname=x", 'key', 'list',
              '--company', $growth), 1,
          qr/^worksible: database: /, '--db on a closed port');

    fails(run('--db', "host=127.0.0.1 port=$port dbname=x", 'plan', 'set',
              'cli_down', '--limit', '5', '--window', '60'), 1,
          qr/^worksible: database: /, 'plan set on a closed port');
    fails(run('--db', "host=127.0.0.1 port=$port dbname=x", 'plan', 'set',
              'growth', '--api-access', 'off'), 1,
          qr/^worksible: database: /, 'plan set update on a closed port');
    fails(run('--db', "host=127.0.0.1 port=$port dbname=x", 'plan', 'list',
              '--json'), 1,
          qr/^worksible: database: /, 'plan list on a closed port');
    fails(run('--db', "host=127.0.0.1 port=$port dbname=x", 'logs', 'prune',
              '--older-than', '30d'), 1,
          qr/^worksible: database: /, 'logs prune on a closed port');

    local $ENV{PGPORT} = $port;
    local $ENV{PGDATABASE} = 'x';
    fails(run('migrate'), 1, qr/^worksible: database: .*\b$port\b/,
          'PGPORT on a closed port');
}

done_testing();
