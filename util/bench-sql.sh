#!/usr/bin/env bash
# The REST API's SQL, before and after static SQL (issue 16): the same data
# in two databases of the dev cluster, one migrated without
# 0013_static_sql.sql ("before") and one with every migration ("after");
# for each, nginx with the matching module and pgbench with the matching
# SQL. Several runs, before and after taking turns; ratios within a run.
#
#   util/bench-sql.sh [BEFORE_SO]
#
# BEFORE_SO: the module built from the commit before 0013 (without it only
# the "after" rows run), e.g.
#   git worktree add /tmp/before 8d9597e && make -C /tmp/before
#   util/bench-sql.sh /tmp/before/build/ngx_worksible_module.so
#
# Starts the dev stack's PostgreSQL and Redis (util/stack.sh start dev; run
# it inside a network namespace on a shared machine), and its own nginx
# (one worker) on 127.0.0.1:18190 (before) and :18191 (after). Data: one
# company with 10,000 freelancers and 200,000 request-log rows over four
# days. Needs wrk and pgbench (apt: wrk, postgresql-client-15).
#
# Environment: BENCH_SECONDS=8 (one wrk or pgbench run), BENCH_RUNS=3,
# BENCH_CONNS=32 (wrk), BENCH_PG_CONNS=4 (the module's pool, and pgbench's
# clients), BENCH_ONLY=REGEX (rows whose name matches).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=$top/build
dir=$build/bench-sql
before_so=${1:-}
[ -z "$before_so" ] || before_so=$(realpath "$before_so")
after_so=$build/ngx_worksible_module.so
secs=${BENCH_SECONDS:-8}
runs=${BENCH_RUNS:-3}
conns=${BENCH_CONNS:-32}
pg_conns=${BENCH_PG_CONNS:-4}
only=${BENCH_ONLY:-.}

command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null

export PGHOST=127.0.0.1 PGPORT=15432 PGUSER=worksible
"$top/util/stack.sh" start dev
export WORKSIBLE_KEY_SECRET_FILE=$build/dev/key_secret
mkdir -p "$dir"

stop_nginx() {
    local pid
    [ -f "$dir/$1/logs/nginx.pid" ] || return 0
    pid=$(cat "$dir/$1/logs/nginx.pid")
    kill -QUIT "$pid" 2>/dev/null || return 0
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
}
trap 'stop_nginx before; stop_nginx after' EXIT

# setup DB MIGRATIONS_DIR: a fresh database with the bench data, printing
# "company key freelancer_id request_log_id" (the ids: the 5,000th and
# 100,000th newest)
setup() {
    local db=$1 migrations=$2 co key
    psql -X -q -U postgres -d postgres \
        -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" \
        -c "CREATE DATABASE $db OWNER worksible"
    PGDATABASE=$db "$build/worksible" migrate --dir "$migrations" >/dev/null
    PGDATABASE=$db psql -X -q -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
INSERT INTO companies (id, name, plan, currency)
VALUES ('cmp_01BENCH0000000000000000000', 'Bench GmbH', 'growth', 'EUR');
INSERT INTO freelancers (company_id, email, name, country, status, hourly_rate,
                         currency, created_at)
SELECT 'cmp_01BENCH0000000000000000000', 'bench' || g || '@example.com',
       'Bench ' || g, 'DE',
       (ARRAY['invited', 'active', 'active', 'active', 'offboarded'])[1 + g % 5],
       5000 + g % 100, 'EUR',
       timestamptz '2026-11-01 00:00:00Z' - g * interval '1 second'
FROM generate_series(1, 10000) g;
-- 2% 503, 5% 404, the rest 200; two keys; four days
SELECT worksible_request_logs_insert(json_agg(json_build_object(
    'id', worksible_id('req', timestamptz '2026-11-01 00:00:00Z' - g * 1.7 * interval '1 second'),
    'company_id', 'cmp_01BENCH0000000000000000000',
    'api_key_id', CASE WHEN g % 3 = 0 THEN 'key_a' ELSE 'key_b' END,
    'method', CASE WHEN g % 4 = 0 THEN 'POST' ELSE 'GET' END,
    'path', CASE WHEN g % 2 = 0 THEN '/v1/freelancers?limit=20'
                 ELSE '/v1/projects/prj_x' END,
    'status', CASE WHEN g % 50 = 0 THEN 503 WHEN g % 20 = 0 THEN 404 ELSE 200 END,
    'latency_ms', g % 97, 'ip', '10.0.0.1',
    'created_at', timestamptz '2026-11-01 00:00:00Z' - g * 1.7 * interval '1 second')))
FROM generate_series(1, 200000) g;
ANALYZE freelancers;
ANALYZE request_logs;
SQL
    PGDATABASE=$db "$build/worksible" plan set growth --limit 1000000000 --window 60 >/dev/null
    co=cmp_01BENCH0000000000000000000
    key=$(PGDATABASE=$db "$build/worksible" key create --company $co \
            --scopes "freelancers:read request_logs:read" --name bench --json 2>/dev/null \
          | perl -MJSON::PP -0777 -ne 'print decode_json($_)->{key}')
    echo "$co $key $(PGDATABASE=$db psql -X -At -c \
        "SELECT id FROM freelancers WHERE company_id = '$co' ORDER BY created_at DESC, id DESC OFFSET 5000 LIMIT 1") $(PGDATABASE=$db psql -X -At -c \
        "SELECT id FROM request_logs WHERE company_id = '$co' ORDER BY created_at DESC, id DESC OFFSET 100000 LIMIT 1")"
}

# nginx NAME SO DB PORT
start_nginx() {
    local name=$1 so=$2 db=$3 port=$4 prefix=$dir/$1
    stop_nginx "$name"
    mkdir -p "$prefix/logs" "$prefix/tmp"
    cat >"$prefix/nginx.conf" <<CONF
load_module $so;
worker_processes 1;
pid $prefix/logs/nginx.pid;
error_log $prefix/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $prefix/tmp;
    proxy_temp_path $prefix/tmp;
    fastcgi_temp_path $prefix/tmp;
    uwsgi_temp_path $prefix/tmp;
    scgi_temp_path $prefix/tmp;
    worksible_postgres "host=127.0.0.1 port=15432 dbname=$db user=worksible_api"
                       pool=$pg_conns connect_timeout=2s query_timeout=5s;
    worksible_key_secret_file $WORKSIBLE_KEY_SECRET_FILE;
    worksible_key_cache zone=worksible_keys:10m ttl=30s negative_ttl=5s;
    worksible_redis 127.0.0.1:16379 timeout=100ms;
    server {
        listen 127.0.0.1:$port;
        location /v1/ {
            worksible_auth on;
            worksible_rate_limit on;
            worksible_idempotency on;
            worksible_api;
        }
    }
}
CONF
    /usr/sbin/nginx -p "$prefix" -c "$prefix/nginx.conf"
}

wrk_rps() {     # URL KEY -> 2xx responses a second (others do not count)
    local out
    out=$(wrk -t1 -c"$conns" -d"${secs}s" -H "Authorization: Bearer $2" "$1")
    awk '/requests in/ { n = $1; t = $4 + 0 }
         /Non-2xx/ { bad = $NF }
         END { printf "%d", (n - bad) / t }' <<<"$out"
}

pgbench_tps() { # DB FILE MODE -> tps
    pgbench -n -U worksible_api -d "$1" -M "$3" -c "$pg_conns" -j 1 \
        -T "$secs" -f "$2" 2>/dev/null | awk '/^tps/ {printf "%d", $3}'
}

migr_before=$dir/migrations-before
rm -rf "$migr_before"; mkdir -p "$migr_before"
cp "$top"/migrations/*.sql "$migr_before"/
rm -f "$migr_before"/0013_static_sql.sql

read -r co key_a fl_a req_a <<<"$(setup bench_after "$top/migrations")"
start_nginx after "$after_so" bench_after 18191
if [ -n "$before_so" ]; then
    read -r _ key_b fl_b req_b <<<"$(setup bench_before "$migr_before")"
    start_nginx before "$before_so" bench_before 18190
fi

# the statements each module sends (pgbench -M prepared: named, as after)
cat >"$dir/list-before.sql" <<SQL
SELECT worksible_list('$co', 'freelancers', 'worksible_freelancer_object', '/v1/freelancers', 20, NULL, NULL, '{}'::jsonb);
SQL
cat >"$dir/list-after.sql" <<SQL
SELECT worksible_list_freelancers('$co', 20, NULL, NULL, '{}'::jsonb);
SQL
cat >"$dir/get-before.sql" <<SQL
SELECT worksible_get('$co', 'freelancers', 'worksible_freelancer_object', '${fl_b:-}');
SQL
cat >"$dir/get-after.sql" <<SQL
SELECT worksible_get_freelancers('$co', '$fl_a');
SQL
cat >"$dir/logs-before.sql" <<SQL
SELECT worksible_list('$co', 'request_logs', 'worksible_request_log_object', '/v1/request_logs', 20, NULL, NULL, '{"status":"503"}'::jsonb);
SQL
cat >"$dir/logs-after.sql" <<SQL
SELECT worksible_list_request_logs('$co', 20, NULL, NULL, '{"status":"503"}'::jsonb);
SQL

rows=(
    "GET /v1/freelancers?limit=20|wrk|/v1/freelancers?limit=20"
    "pgbench list 20 (extended)|pgbench|list|extended"
    "pgbench list 20 (prepared)|pgbench|list|prepared"
    "GET /v1/freelancers/{id}|wrk|/v1/freelancers/@FL@"
    "pgbench retrieve (prepared)|pgbench|get|prepared"
    "GET /v1/request_logs?status=503|wrk|/v1/request_logs?status=503&limit=20"
    "pgbench request_logs status (prepared)|pgbench|logs|prepared"
    "GET /v1/request_logs?starting_after=|wrk|/v1/request_logs?limit=20&starting_after=@REQ@"
)

printf '\nbench-sql: %s s x %s runs, wrk -t1 -c%s, nginx 1 worker, pool/pgbench -c %s\n' \
    "$secs" "$runs" "$conns" "$pg_conns"
printf '%-40s %s\n' "row" "run: before after (after/before)"
for row in "${rows[@]}"; do
    IFS='|' read -r name tool a b <<<"$row"
    [[ $name =~ $only ]] || continue
    line=""
    for run in $(seq "$runs"); do
        if [ "$tool" = wrk ]; then
            # each database's own ids
            ab=${a//@FL@/${fl_b:-}}; ab=${ab//@REQ@/${req_b:-}}
            aa=${a//@FL@/$fl_a}; aa=${aa//@REQ@/$req_a}
            [ -n "$before_so" ] && vb=$(wrk_rps "http://127.0.0.1:18190$ab" "$key_b") || vb=0
            va=$(wrk_rps "http://127.0.0.1:18191$aa" "$key_a")
        else
            [ -n "$before_so" ] && vb=$(pgbench_tps bench_before "$dir/$a-before.sql" "$b") || vb=0
            va=$(pgbench_tps bench_after "$dir/$a-after.sql" "$b")
        fi
        ratio=$(awk -v a="$va" -v b="$vb" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
        line="$line  $vb $va ($ratio)"
    done
    printf '%-40s%s\n' "$name" "$line"
done
