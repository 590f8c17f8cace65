#!/usr/bin/env bash
# PostgreSQL CPU per request-log row, before and after a migration, in
# one run (README: "The request log's ingest"). Two databases of the dev
# cluster: one migrated up to the one before BENCH_BEFORE ("before") and
# one with every migration ("after"). Each gets the module's query of its
# migrations, one transaction a batch: before 0016, SELECT
# worksible_request_logs_stage(); COPY into the session's staging table;
# SELECT worksible_request_logs_ingest(); since 0016, SET LOCAL ROLE
# worksible_log_writer; COPY request_logs ... FROM STDIN (the log's
# statement trigger counting the rollups).
# Each gets the same batches of BENCH_BATCH rows (default 2000, the
# module's NGX_WORKSIBLE_REQLOG_FLUSH) from one session; the backend's
# own CPU (utime + stime of /proc/<backend>/stat, read by the backend
# itself) is divided by the rows. Two mixes: "auth" (one company, key,
# method, path and status: the traffic of make bench's auth row) and
# "mixed" (5 keys, 4 methods, 8 paths with ids, 11 statuses: many rollup
# rows a batch).
#
#   util/reqlog-bench.sh [ROWS]      (default 100000 a mix; run it inside a
#                                     network namespace on a shared machine)
#
# Starts the dev stack's PostgreSQL (util/stack.sh start dev). Environment:
# BENCH_RUNS=3 (runs a mix and database, before and after taking turns; the
# median is printed), BENCH_BEFORE=0017 (the first migration "before" does
# not have: 0016 for the direct COPY, 0017 for the rollups by path).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=$top/build
dir=$build/reqlog-bench
rows=${1:-100000}
runs=${BENCH_RUNS:-3}
first=${BENCH_BEFORE:-0017}
batch=${BENCH_BATCH:-2000}
before_fmt=copy
[[ $first > 0016 ]] || before_fmt=stage

export PGHOST=127.0.0.1 PGPORT=15432 PGUSER=postgres
"$top/util/stack.sh" start dev >/dev/null
rm -rf "$dir/before-migrations"
mkdir -p "$dir/before-migrations"
for m in "$top"/migrations/*.sql; do
    [[ $(basename "$m") < $first ]] || continue
    ln -sf "$m" "$dir/before-migrations/"
done

setup() {
    local db=$1 migrations=$2
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" \
        -c "CREATE DATABASE $db OWNER worksible"
    PGUSER=worksible PGDATABASE=$db "$build/worksible" migrate --dir "$migrations" >/dev/null
    psql -X -q -d "$db" -c "INSERT INTO companies (id, name, plan, currency)
        VALUES ('cmp_01BENCH0000000000000000000', 'Bench', 'growth', 'EUR')"
}
setup reqlog_before "$dir/before-migrations"
setup reqlog_after "$top/migrations"

# batches MIX FORMAT ROWS BATCH: the SQL script of ROWS/BATCH batches, one a
# transaction; the same rows in either format (one start time, one seed), so
# "before" and "after" must end with the same rollups
t0=$(date +%s)
batches() {
    perl -e '
use strict; use POSIX qw(strftime);
my ($mix, $fmt, $rows, $batch, $t0) = @ARGV;
srand(16);
my @paths = ("/v1/invoices", "/v1/freelancers?limit=20", "/v1/freelancers/frl_%d",
             "/v1/projects/prj_%d/tasks", "/v1/payouts", "/v1/companies/me",
             "/v1/timesheets?status=draft", "/v1/request_logs/stats");
my @status = (200, 200, 200, 200, 201, 400, 401, 403, 404, 429, 500, 503, 204, 409);
my @methods = qw(GET GET POST PATCH DELETE);
for (my $b = 0; $b * $batch < $rows; $b++) {
    my @r;
    for my $g (0 .. $batch - 1) {
        my $i = $b * $batch + $g;
        my $at = strftime("%Y-%m-%dT%H:%M:%S", gmtime($t0 + int($i / 2000)))
                 . sprintf(".%03dZ", $i % 1000);
        my @row = $mix eq "auth"
            ? (sprintf("req_01BENCH%015d", $i), "cmp_01BENCH0000000000000000000",
               "key_01BENCH0000000000000000001", "GET", "/v1/companies/me", 200,
               1 + $i % 3, "127.0.0.1", "wrk/4.2", undef, "f", undef, $at)
            : (sprintf("req_01BENCH%015d", $i), "cmp_01BENCH0000000000000000000",
               sprintf("key_01BENCH%019d", $i % 5), $methods[$i * 7 % 5],
               sprintf($paths[$i * 3 % 8], $i % 1000), $status[$i * 13 % 14],
               int(exp(rand() * 6)), "198.51.100." . ($i % 200), "bench/1.0",
               undef, "f", 100 - $i % 100, $at);
        push @r, \@row;
    }
    my $cols = "(id, company_id, api_key_id, method, path, status, latency_ms, ip,"
             . " user_agent, idempotency_key, replayed, ratelimit_remaining, created_at)";
    if ($fmt eq "stage") {
        print "BEGIN;\nSELECT worksible_request_logs_stage();\n",
              "COPY pg_temp.worksible_request_log_batch $cols FROM STDIN;\n";
        print join("\t", map { $_ // "\\N" } @$_), "\n" for @r;
        print "\\.\nSELECT worksible_request_logs_ingest();\nCOMMIT;\n";
    } else {
        print "BEGIN;\nSET LOCAL ROLE worksible_log_writer;\n",
              "COPY request_logs $cols FROM STDIN;\n";
        print join("\t", map { $_ // "\\N" } @$_), "\n" for @r;
        print "\\.\nCOMMIT;\n";
    }
}' "$@"
}

# run DB SCRIPT: the backend's CPU in clock ticks for the script
cpu_sql="SELECT (string_to_array(split_part(pg_read_file('/proc/self/stat'), ') ', 2), ' '))[12]::bigint
              + (string_to_array(split_part(pg_read_file('/proc/self/stat'), ') ', 2), ' '))[13]::bigint"
run() {
    local db=$1 script=$2
    psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -o /dev/null <<SQL >/dev/null
TRUNCATE request_logs, request_log_minutes;
SQL
    { echo "\\o $dir/cpu0"; echo "$cpu_sql;"; echo "\\o /dev/null";
      cat "$script"; echo "\\o $dir/cpu1"; echo "$cpu_sql;"; } |
        psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" >/dev/null
    echo $(( $(cat "$dir/cpu1") - $(cat "$dir/cpu0") ))
}

hz=$(getconf CLK_TCK)
printf '%-7s %-7s %10s %10s   (PostgreSQL backend CPU per row, median of %s runs of %s rows, batches of %s)\n' \
    mix path 'us/row' 'runs' "$runs" "$rows" "$batch"
for mix in auth mixed; do
    batches "$mix" stage "$rows" "$batch" "$t0" >"$dir/$mix.stage.sql"
    batches "$mix" copy "$rows" "$batch" "$t0" >"$dir/$mix.copy.sql"
    declare -A res=()
    for r in $(seq "$runs"); do
        for what in before after; do
            if [ $what = before ]; then db=reqlog_before; s=$dir/$mix.$before_fmt.sql
            else db=reqlog_after; s=$dir/$mix.copy.sql; fi
            t=$(run $db "$s")
            res[$what]+="$(echo "scale=1; $t * 1000000 / $hz / $rows" | bc) "
        done
    done
    for what in before after; do
        med=$(echo ${res[$what]} | tr ' ' '\n' | sort -n | sed -n "$(( (runs + 1) / 2 ))p")
        printf '%-7s %-7s %10s %10s\n' "$mix" "$what" "$med" "${res[$what]}"
    done
    unset res
    sums=$(for db in reqlog_before reqlog_after; do
        psql -X -q -At -d $db -c "SELECT count(*) || ' ' || md5(string_agg(m::text, ',' ORDER BY m::text))
                                  FROM request_log_minutes m"
    done)
    echo "rollup rows (before, after; $mix):" $sums
    # the same rows, through either path, must give the same rollups
    if [ "$(echo "$sums" | sort -u | wc -l)" != 1 ]; then
        echo "the rollups differ between before and after" >&2
        exit 1
    fi
done
