#!/usr/bin/env bash
# `make capacity`: what each kind of request costs the shared stores, and
# what one Redis primary carries, for the README's capacity table.
#
# On the bench stack (util/stack.sh ... bench: PostgreSQL 15435 with
# pg_stat_statements, Redis 16382; a fresh database with the demo data),
# one nginx with the module (one worker, ports 18095-18096), for each kind
# of request, CAPACITY_N (200) requests one after another, then:
#   redis  commands the Redis server received, and all it ran, its
#          scripts' calls included, per request (INFO commandstats, reset
#          before each kind);
#   pg     statements the module's role ran, per request (pg_stat_statements,
#          the request log's batches included: they leave within a second);
#   rows   rows added to the database's tables, per request (counted; the
#          request log's row included), and the WAL written, bytes.
# Then redis-benchmark runs the rate limiter's script itself, as the module
# sends it (taken with MONITOR), with 32 clients: the charges per second one
# Redis core carries. Everything listens on loopback: run it in a network
# namespace on a shared machine (ip netns exec NS make capacity).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=$top/build
dir=$build/capacity
prefix=$dir/nginx
module=${CAPACITY_MODULE:-$build/ngx_worksible_module.so}
n=${CAPACITY_N:-200}
pg_port=15435
redis_port=16382

export PGHOST=127.0.0.1 PGPORT=$pg_port PGUSER=worksible PGDATABASE=worksible
export WORKSIBLE_KEY_SECRET_FILE=$build/bench/key_secret

cleanup() {
    [ -f "$prefix/logs/nginx.pid" ] && kill -QUIT "$(cat "$prefix/logs/nginx.pid")" 2>/dev/null
    "$top/util/stack.sh" stop bench
}
trap cleanup EXIT

"$top/util/stack.sh" start bench
. "$top/util/bench-db.sh"
bench_db "make capacity"

rm -rf "$prefix"
mkdir -p "$prefix/logs" "$prefix/tmp" "$dir/www/static"
echo '{"ok":true}' >"$dir/www/static/file.json"
cat >"$prefix/nginx.conf" <<CONF
load_module $module;
worker_processes 1;
pid $prefix/logs/nginx.pid;
error_log $prefix/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $prefix/tmp;
    proxy_temp_path $prefix/tmp;
    default_type application/json;
    root $dir/www;
    worksible_postgres "host=127.0.0.1 port=$pg_port dbname=worksible user=worksible_api"
                       pool=4 connect_timeout=2s query_timeout=5s;
    worksible_key_secret_file $WORKSIBLE_KEY_SECRET_FILE;
    worksible_key_cache zone=capacity_keys:1m ttl=60s;
    worksible_redis 127.0.0.1:$redis_port timeout=1s;

    server {
        listen 127.0.0.1:18095;
        location /auth/ { worksible_auth on; alias $dir/www/static/; }
        location /rl/ {
            worksible_auth on; worksible_rate_limit on;
            alias $dir/www/static/;
        }
        location /v1/ {
            worksible_auth on; worksible_rate_limit on;
            worksible_idempotency on; worksible_api;
        }
        location /svc/ {
            worksible_auth on; worksible_rate_limit on;
            worksible_idempotency on;
            proxy_pass http://127.0.0.1:18096;
        }
    }
    # the proxied service: answers every request itself
    server { listen 127.0.0.1:18096; location / { return 201 '{"ok":true}'; } }
}
CONF
/usr/sbin/nginx -p "$prefix" -c "$prefix/nginx.conf"
auth="Authorization: Bearer $key"
for _ in $(seq 50); do
    curl -fs -o /dev/null -H "$auth" http://127.0.0.1:18095/auth/file.json && break
    sleep 0.1
done

redis() { redis-cli -p "$redis_port" "$@"; }
# the commands Redis received, and all it ran (its scripts' calls too)
redis_calls() {
    redis info commandstats | awk -F'[=:,]' '
        /^cmdstat_/ && $1 !~ /cmdstat_(info|config)/ {
            all += $3; if ($1 ~ /^cmdstat_(evalsha|eval|ping|script|auth|select)$/) sent += $3 }
        END { print sent + 0, all + 0 }'
}
pg_statements() {
    psql -X -At -U postgres -c "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s
        JOIN pg_roles r ON r.oid = s.userid WHERE r.rolname = 'worksible_api'"
}
# rows in every table (request_logs' partitions included), and the WAL
# written so far in bytes: counted, not the statistics (which backends
# flush only now and then)
pg_rows() {
    psql -X -At -c "SELECT sum((xpath('/row/c/text()', query_to_xml(
            format('SELECT count(*) AS c FROM %s', c.oid::regclass),
            false, true, '')))[1]::text::bigint)
        FROM pg_class c WHERE c.relkind = 'r'
         AND c.relnamespace = 'public'::regnamespace"
}
pg_wal() { psql -X -At -U postgres -c "SELECT pg_current_wal_lsn() - '0/0'"; }

# kind NAME METHOD PATH [BODY]: with a body, a POST with a new
# Idempotency-Key each time (@@ in the body: the key), or with KEY=same
# the key of the warm-up request each time (replays)
kinds=0
kind() {
    local name=$1 method=$2 path=$3 body=${4:-} i s0 w0 l0 r1 s1 w1 l1 idem warm
    kinds=$((kinds + 1))
    warm=k$kinds-warm
    local hdr=(-H "$auth")
    [ -n "$body" ] && hdr+=(-H 'Content-Type: application/json')
    # warm: the key cached, the connections made, a replayed key kept
    curl -s -o /dev/null -X "$method" "${hdr[@]}" \
        ${body:+-H "Idempotency-Key: $warm" --data "${body//@@/$warm}"} \
        "http://127.0.0.1:18095$path"
    sleep 1.2
    redis config resetstat >/dev/null
    s0=$(pg_statements); w0=$(pg_rows); l0=$(pg_wal)
    for i in $(seq "$n"); do
        idem=k$kinds-$i
        [ "${KEY:-}" = same ] && idem=$warm
        curl -s -o /dev/null -X "$method" "${hdr[@]}" \
            ${body:+-H "Idempotency-Key: $idem" --data "${body//@@/$idem}"} \
            "http://127.0.0.1:18095$path"
    done
    sleep 1.5    # the request log's batch leaves within a second
    r1=$(redis_calls); s1=$(pg_statements); w1=$(pg_rows); l1=$(pg_wal)
    per() { awk -v a="$1" -v n="$n" 'BEGIN { printf "%.2f", a / n }'; }
    printf '| %s | %s | %s | %s | %s | %s |\n' "$name" \
        "$(per "${r1% *}")" "$(per "${r1#* }")" "$(per $((s1 - s0)))" \
        "$(per $((w1 - w0)))" "$(awk -v a=$((l1 - l0)) -v n="$n" 'BEGIN { printf "%d", a / n }')"
}

echo
echo "Per request, $n requests of each kind, one at a time (key cached):"
echo
echo "| request | Redis commands sent | run (scripts' included) | PostgreSQL statements | rows added | WAL bytes |"
echo "|---|---|---|---|---|---|"
kind "auth only (a static file)" GET /auth/file.json
kind "auth + rate limit" GET /rl/file.json
kind "GET /v1/companies/me" GET /v1/companies/me
kind "GET /v1/freelancers?limit=20" GET '/v1/freelancers?limit=20'
fl='{"email":"@@@capacity.example","name":"Cap @@","country":"DE"}'
kind "POST /v1/freelancers, new Idempotency-Key" POST /v1/freelancers "$fl"
KEY=same kind "POST /v1/freelancers, a replay" POST /v1/freelancers "$fl"
kind "POST proxied, new Idempotency-Key" POST /svc/things '{"n":"@@"}'
KEY=same kind "POST proxied, a replay" POST /svc/things '{"n":"@@"}'

# the limiter's script as the module sends it, for redis-benchmark
mon=$dir/monitor.txt
timeout 2 redis-cli -p "$redis_port" monitor >"$mon" &
sleep 0.3
curl -s -o /dev/null -H "$auth" http://127.0.0.1:18095/rl/file.json
wait || true
cmd=$(grep -m1 '"EVALSHA"' "$mon" | sed 's/^[^"]*//' | tr -d '"')
echo
echo "One Redis core, the rate limiter's script (redis-benchmark -c 32 -n 300000):"
echo
for pipe in 1 16; do
    rps=$(redis-benchmark -p "$redis_port" -c 32 -n 300000 -P "$pipe" -q $cmd \
          | tr '\r' '\n' | awk '/requests per second/ {
                for (i = 2; i <= NF; i++) if ($i == "requests") v = $(i - 1) }
                END { print v }')
    echo "- pipeline $pipe: $rps charges/s"
done
