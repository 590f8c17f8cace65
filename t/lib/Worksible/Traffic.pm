package Worksible::Traffic;

# Steady keyed traffic for the failover suites (t/pg_promotion.t,
# t/pgbouncer.t): client processes that each send, until stopped, a POST
# /v1/freelancers with an Idempotency-Key of its own (the same key again,
# like a real client's retry, until it gets a 201) and a GET between, and
# write one line per request. Then what they saw, and the checks every such
# suite makes: keys answered 201 once in the end, one row per key, each
# key's replay byte for byte.

use strict;
use warnings;

use Exporter 'import';
use POSIX ();
use Test::More;
use Time::HiRes qw(sleep time);
use Worksible::Test qw(http);

our @EXPORT_OK = qw(traffic_start traffic_stop traffic_check_keys);

my $top = $ENV{WORKSIBLE_TOP};
my (%run, @pids);

sub post {
    my ($port, $key, $k) = @_;
    return http('POST', '/v1/freelancers',
        { Authorization => "Bearer $key", 'Content-Type' => 'application/json',
          'Idempotency-Key' => $k },
        body => qq({"email":"$k\@example.com","name":"Traffic","country":"DE"}),
        port => $port, timeout => 8);
}

# traffic_start(name => 'x', port => N, key => 'wsk_...', clients => 3)
sub traffic_start {
    %run = (clients => 3, @_);
    $run{out} = "$top/t/servroot_$run{name}.clients";
    unlink glob("$run{out}.*");
    for my $c (1 .. $run{clients}) {
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            open my $log, '>', "$run{out}.$c" or die;
            $log->autoflush(1);
            my $n = 0;
            while (!-e "$run{out}.stop") {
                my $k = "$run{name}-$$-" . $n++;
                my $deadline = time + 30;
                for (;;) {
                    my $t0 = time;
                    my $res = post($run{port}, $run{key}, $k);
                    (my $b = $res->{body} // '') =~ s/\s/ /g;
                    printf $log "POST %s %d %d %.3f %.3f %s\n", $k,
                        $res->{status},
                        $res->{headers}{'idempotent-replayed'} ? 1 : 0,
                        $t0, time, $b;
                    last if $res->{status} == 201 || time > $deadline;
                    sleep 0.05;
                }
                my $t0 = time;
                my $res = http('GET', '/v1/freelancers?limit=1',
                    { Authorization => "Bearer $run{key}" },
                    port => $run{port}, timeout => 8);
                printf $log "GET - %d 0 %.3f %.3f -\n", $res->{status}, $t0, time;
            }
            close $log;
            POSIX::_exit(0);
        }
        push @pids, $pid;
    }
}

# stops the clients (each finishes its key); returns what they saw: a list
# of { kind, key, status, replayed, sent, done, body }
sub traffic_stop {
    open my $fh, '>', "$run{out}.stop" or die;
    close $fh;
    waitpid($_, 0) for @pids;
    @pids = ();
    my @reqs;
    for my $c (1 .. $run{clients}) {
        open my $in, '<', "$run{out}.$c" or die "$run{out}.$c: $!";
        while (my $line = <$in>) {
            chomp $line;
            my %r;
            @r{qw(kind key status replayed sent done body)} = split / /, $line, 7;
            push @reqs, \%r;
        }
    }
    unlink glob("$run{out}.*");
    return @reqs;
}

# traffic_check_keys(\@reqs, $rows, $records): every key answered 201 in
# the end, $rows->{key} (freelancers) and $records->{key} (idempotency
# records) 1 for each and nothing else, each key's replay its 201 byte for
# byte (4 tests)
sub traffic_check_keys {
    my ($reqs, $rows, $records) = @_;
    my %final;
    $final{$_->{key}} = $_ for grep { $_->{kind} eq 'POST' && $_->{status} == 201 } @$reqs;
    my @keys = sort keys %{{ map { $_->{key} => 1 } grep { $_->{kind} eq 'POST' } @$reqs }};
    is(scalar(grep { !$final{$_} } @keys), 0,
       scalar(@keys) . ' keys, each answered 201 in the end');
    is(scalar(grep { ($rows->{$_} // 0) != 1 } @keys) + keys(%$rows) - @keys, 0,
       'one freelancer row per key, none twice, none without a key')
        or diag(join ' ', map { "$_=" . ($rows->{$_} // 0) }
                          grep { ($rows->{$_} // 0) != 1 } @keys);
    is(scalar(grep { ($records->{$_} // 0) != 1 } @keys), 0,
       'one idempotency record per key');
    my $bad = 0;
    for my $k (@keys) {
        my $res = post($run{port}, $run{key}, $k);
        (my $b = $res->{body} // '') =~ s/\s/ /g;
        next if $res->{status} == 201 && $res->{headers}{'idempotent-replayed'}
                && $b eq $final{$k}{body};
        diag("$k: $res->{status} $b");
        $bad++;
    }
    is($bad, 0, 'every key replays its 201 byte for byte');
}

1;
