#!/usr/bin/env bash
# `make bench`: the module side by side with bare nginx, the Lua peer
# (../shared/peers/lua-edge) and PostgreSQL's own ceiling (pgbench).
#
# Starts its own stack (util/stack.sh bench: PostgreSQL 15435 with
# pg_stat_statements, Redis 16382, a fresh database), nginx with the module
# (one worker, ports 18090-18093) and the peer (its own nginx.conf, ports
# 18081/18082, Redis 6379), all on loopback: run it inside a network
# namespace on a shared machine (`ip netns exec NS make bench`). Prints a
# table and writes build/bench.json (and build/bench-pgss.txt, the top
# statements of pg_stat_statements).
#
# Environment:
#   BENCH_SECONDS=8     length of one wrk or pgbench run (60: the real one)
#   BENCH_RUNS=3        runs per row; the row shows the median run
#   BENCH_CONNS=32      wrk connections (one wrk thread)
#   BENCH_PG_CONNS=4    the module's PostgreSQL pool, and pgbench's clients
#   BENCH_NGINX_CPU=1   core the nginx workers run on (taskset)
#   BENCH_LOAD_CPU=0    core wrk and pgbench run on
#   BENCH_STORE_CPU=0   core PostgreSQL and the Redis servers run on (stores
#                       live on other machines in production: the nginx
#                       core is the worker's alone)
#   BENCH_PEER=DIR      the Lua peer's directory (skipped when absent)
#   BENCH_ONLY=REGEX    only the rows whose name matches
#   BENCH_MODULE=SO     another build of the module (an older commit's)
#   BENCH_CALLGRIND=1   instead of the table: the worker under valgrind's
#                       callgrind, the instructions per request of bare
#                       nginx, auth and auth + rate limit (key cached), and
#                       build/bench-callgrind/*.txt, their profiles
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=$top/build
dir=$build/bench
prefix=$dir/nginx

secs=${BENCH_SECONDS:-8}
runs=${BENCH_RUNS:-3}
conns=${BENCH_CONNS:-32}
pg_conns=${BENCH_PG_CONNS:-4}
nginx_cpu=${BENCH_NGINX_CPU:-1}
load_cpu=${BENCH_LOAD_CPU:-0}
store_cpu=${BENCH_STORE_CPU:-0}
peer=${BENCH_PEER:-$top/../shared/peers/lua-edge}
only=${BENCH_ONLY:-.}
module=${BENCH_MODULE:-$build/ngx_worksible_module.so}

pg_port=15435
redis_port=16382

# what the benchmark needs beyond the build (the peer's packages: its README)
need=()
pkgs="wrk libnginx-mod-http-lua lua-nginx-redis"
[ "${BENCH_CALLGRIND:-0}" = 1 ] && pkgs="$pkgs valgrind"
for p in $pkgs; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null
fi

export PGHOST=127.0.0.1 PGPORT=$pg_port PGUSER=worksible PGDATABASE=worksible

stop_pidfile() {
    local pid
    [ -f "$1" ] || return 0
    pid=$(cat "$1")
    kill -QUIT "$pid" 2>/dev/null || return 0
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
    stop_pidfile "$prefix/logs/nginx.pid"
    stop_pidfile "$dir/peer/logs/nginx.pid"
    if [ -f "$dir/peer/redis.pid" ]; then
        kill "$(cat "$dir/peer/redis.pid")" 2>/dev/null || true
        rm -f "$dir/peer/redis.pid"
    fi
    "$top/util/stack.sh" stop bench
}
trap cleanup EXIT

# ------------------------------------------------------------------ stack
"$top/util/stack.sh" start bench
export WORKSIBLE_KEY_SECRET_FILE=$dir/key_secret
. "$top/util/bench-db.sh"
bench_db "make bench"
auth="Authorization: Bearer $key"

# the same 120-byte JSON body for bare nginx, auth and auth + rate limit
mkdir -p "$dir/www/v1/companies" "$prefix/logs" "$prefix/tmp"
printf '{"object":"company","id":"%s","name":"Northwind Studio","plan":"growth","currency":"EUR","bench":true}' \
    "$company" | head -c 119 >"$dir/www/v1/companies/me"
echo >>"$dir/www/v1/companies/me"

cat >"$prefix/nginx.conf" <<CONF
load_module $module;
worker_processes 1;
pid $prefix/logs/nginx.pid;
error_log $prefix/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $prefix/tmp/body;
    proxy_temp_path $prefix/tmp/proxy;
    fastcgi_temp_path $prefix/tmp/fastcgi;
    uwsgi_temp_path $prefix/tmp/uwsgi;
    scgi_temp_path $prefix/tmp/scgi;
    default_type application/json;
    root $dir/www;
    # the file's descriptor kept: one pread(2) per request, no open(2)
    open_file_cache max=16 inactive=60s;
    open_file_cache_valid 60s;

    worksible_postgres "host=127.0.0.1 port=$pg_port dbname=worksible user=worksible_api"
                       pool=$pg_conns connect_timeout=2s query_timeout=5s;
    worksible_key_secret_file $dir/key_secret;
    worksible_key_cache zone=worksible_keys:10m ttl=30s negative_ttl=5s;
    # 1 s: a shared machine stalls Redis past the default 100 ms at times
    worksible_redis 127.0.0.1:$redis_port timeout=1s;

    server { listen 127.0.0.1:18090; location /v1/ { } }
    server { listen 127.0.0.1:18091; location /v1/ { worksible_auth on; } }
    server {
        listen 127.0.0.1:18092;
        location /v1/ { worksible_auth on; worksible_rate_limit on; }
    }
    server {
        listen 127.0.0.1:18093;
        location /v1/ {
            worksible_auth on;
            worksible_rate_limit on;
            worksible_idempotency on;
            worksible_api;
        }
    }
}
CONF
/usr/sbin/nginx -p "$prefix" -c "$prefix/nginx.conf" -t -q

if [ "${BENCH_CALLGRIND:-0}" = 1 ]; then
    set +o pipefail     # head closes its pipes early
    # one process (no master), so that callgrind sees the worker's code
    cg=$build/bench-callgrind
    rm -rf "$cg"; mkdir -p "$cg"
    valgrind --tool=callgrind --callgrind-out-file="$cg/callgrind.out" \
        /usr/sbin/nginx -p "$prefix" -c "$prefix/nginx.conf" \
        -g 'daemon off; master_process off;' 2>"$cg/valgrind.log" &
    vg=$!
    for _ in $(seq 150); do
        curl -fs -o /dev/null http://127.0.0.1:18091/v1/companies/me \
            -H "$auth" && break
        sleep 0.2
    done
    printf '\n%-30s %10s %14s\n' what requests instr/request
    for t in bare:18090 auth:18091 auth-ratelimit:18092; do
        url=http://127.0.0.1:${t#*:}/v1/companies/me
        # warm: the key cached, the Redis connection made
        wrk -t1 -c4 -d2s -H "$auth" "$url" >/dev/null
        callgrind_control -z "$vg" >/dev/null
        out=$(wrk -t1 -c4 -d"${secs}s" -H "$auth" "$url")
        sleep 1.5  # the request log's batch leaves within a second
        callgrind_control --dump="${t%%:*}" "$vg" >/dev/null
        n=$(awk '/requests in/ { print $1 }' <<<"$out")
        f=$(ls -t "$cg"/callgrind.out.* | head -1)
        ir=$(awk '/^totals:/ { print $2 }' "$f")
        # each function's own instructions per request (callgrind's file
        # format: a cost line right after calls= is the call's, not self)
        awk -v n="$n" '
            function reg(s,   id) {
                if (match(s, /^\([0-9]+\)/)) {
                    id = substr(s, RSTART, RLENGTH)
                    if (length(s) > RLENGTH) names[id] = substr(s, RLENGTH + 2)
                    return id
                }
                return s
            }
            /^ob=/ { ob = reg(substr($0, 4)); next }
            /^fn=/ { cur = reg(substr($0, 4)); obj[cur] = ob; next }
            /^cfn=/ { reg(substr($0, 5)); next }
            /^calls=/ { skip = 1; next }
            /^[0-9+*-]/ { if (skip) { skip = 0; next } self[cur] += $2 }
            END {
                for (k in self) {
                    o = names[obj[k]]; sub(/.*\//, "", o)
                    printf "%10.1f  %s [%s]\n", self[k] / n,
                           (k in names) ? names[k] : k, o
                }
            }' "$f" | sort -rn | head -60 >"$cg/${t%%:*}.txt"
        printf '%-30s %10s %14.0f\n' "${t%%:*}" "$n" "$(awk -v a="$ir" -v n="$n" 'BEGIN { print a / n }')"
    done
    kill -QUIT "$vg"; wait "$vg" || true

    # the peer the same way (its configuration copied without "daemon on")
    if [ -f "$peer/nginx.conf" ]; then
        mkdir -p "$dir/peer/logs"
        grep -v '^daemon ' "$peer/nginx.conf" >"$dir/peer/nginx-fg.conf"
        redis-cli -p 6379 ping >/dev/null 2>&1 \
            || redis-server --bind 127.0.0.1 --port 6379 --save '' \
                   --appendonly no --daemonize yes --dir "$dir/peer" \
                   --pidfile "$dir/peer/redis.pid" \
                   --logfile "$dir/peer/redis.log"
        valgrind --tool=callgrind --callgrind-out-file="$cg/peer.out" \
            /usr/sbin/nginx -p "$dir/peer" -c "$dir/peer/nginx-fg.conf" \
            -g 'daemon off; master_process off;' 2>"$cg/valgrind-peer.log" &
        vg=$!
        url=http://127.0.0.1:18081/v1/companies/me
        hdr="Authorization: Bearer wsk_live_demo1234_s3cr3tvalue"
        for _ in $(seq 150); do
            curl -fs -o /dev/null "$url" -H "$hdr" && break
            sleep 0.2
        done
        wrk -t1 -c4 -d2s -H "$hdr" "$url" >/dev/null
        callgrind_control -z "$vg" >/dev/null
        out=$(wrk -t1 -c4 -d"${secs}s" -H "$hdr" "$url")
        callgrind_control --dump=peer "$vg" >/dev/null
        n=$(awk '/requests in/ { print $1 }' <<<"$out")
        f=$(ls -t "$cg"/peer.out.* | head -1)
        ir=$(awk '/^totals:/ { print $2 }' "$f")
        printf '%-30s %10s %14.0f\n' "lua-edge peer" "$n" \
            "$(awk -v a="$ir" -v n="$n" 'BEGIN { print a / n }')"
        kill -QUIT "$vg"; wait "$vg" || true
    fi
    exit 0
fi

taskset -c "$nginx_cpu" /usr/sbin/nginx -p "$prefix" -c "$prefix/nginx.conf"

have_peer=0
if [ -f "$peer/nginx.conf" ]; then
    mkdir -p "$dir/peer/logs"
    if ! redis-cli -p 6379 ping >/dev/null 2>&1; then
        redis-server --bind 127.0.0.1 --port 6379 --save '' --appendonly no \
            --daemonize yes --dir "$dir/peer" --pidfile "$dir/peer/redis.pid" \
            --logfile "$dir/peer/redis.log"
        for _ in $(seq 50); do
            redis-cli -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1
        done
    fi
    taskset -c "$nginx_cpu" /usr/sbin/nginx -p "$dir/peer" -c "$peer/nginx.conf"
    have_peer=1
else
    echo "bench: no peer at $peer, its row is skipped" >&2
fi

for _ in $(seq 50); do
    curl -fs -o /dev/null http://127.0.0.1:18091/v1/companies/me -H "$auth" \
        && break
    sleep 0.2
done

# ------------------------------------------------------------- measuring
worker_of() { pgrep -P "$(cat "$1")" | head -1; }
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }

pg_pidfile=$(psql -X -At -U postgres -d postgres -c 'SHOW data_directory')/postmaster.pid

# the stores off the nginx core (the postmaster's later children inherit it)
pin_stores() {
    local p
    for p in $(head -1 "$pg_pidfile") $(pgrep -P "$(head -1 "$pg_pidfile")") \
             $(cat "$build/bench/redis.pid") \
             $(cat "$dir/peer/redis.pid" 2>/dev/null); do
        taskset -a -cp "$store_cpu" "$p" >/dev/null 2>&1 || true
    done
}
pin_stores
pg_ticks() {
    local pm p total=0 t
    pm=$(head -1 "$pg_pidfile")
    # the postmaster's own and its reaped children's, then the live children
    t=$(sed 's/.*) //' "/proc/$pm/stat" | awk '{ print $12 + $13 + $14 + $15 }')
    total=$((total + t))
    for p in $(pgrep -P "$pm"); do
        t=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null \
            | awk '{ print $12 + $13 }') || t=0
        total=$((total + ${t:-0}))
    done
    echo "$total"
}
log_rows() { psql -X -At -c 'SELECT count(*) FROM request_logs'; }
proc_ticks() {   # the CPU (user + system, clock ticks) of process $1
    sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}
# timed CMD...: CMD's output (stdout and stderr); the CPU seconds it took,
# its children's included, in $dir/load.cpu
timed() {
    local t
    t=$( { TIMEFORMAT='%3U %3S'; time "$@" >"$dir/load.out" 2>&1; } 2>&1 )
    awk '{ print $1 + $2 }' <<<"$t" >"$dir/load.cpu"
    cat "$dir/load.out"
}
hz=$(getconf CLK_TCK)
us_per() {   # TICKS N: µs of CPU per unit, from clock ticks over N units
    awk -v t="$1" -v n="$2" -v hz="$hz" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }'
}

to_ms() {   # wrk's "1.23ms", "456.00us", "1.02s"
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); print v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); print v + 0 }
        else if (v ~ /s$/) { sub(/s$/, "", v); print v * 1000 }
        else print v }'
}

rows_json=()
ceiling=0

# row NAME KIND(ceiling|rel) then: wrk PIDFILE URL [wrk args] | pgbench FILE MODE
row() {
    local name=$1 kind=$2 tool=$3; shift 3
    local pidfile="" worker="" rss0=0 rss1=0 i out rps p50 p99 bad
    local t0=0 t1=0 n0=0 n1=0 pg_us=null results=()
    local r0=0 r1=0 nreq=0 redis_us=null redis_pid=""
    local w0=0 worker_us=null load_s=0 load_us=null logged=null

    [[ $name =~ $only ]] || return 0

    if [ "$tool" = wrk ]; then
        pidfile=$1; shift
        worker=$(worker_of "$pidfile")
        rss0=$(rss_kb "$worker")
        w0=$(proc_ticks "$worker")
        if [ "$pidfile" = "$prefix/logs/nginx.pid" ] && [ "$kind" != ceiling ]; then
            n0=$(log_rows); t0=$(pg_ticks)
            redis_pid=$build/bench/redis.pid
        elif [ "$pidfile" = "$dir/peer/logs/nginx.pid" ] \
             && [ -f "$dir/peer/redis.pid" ]; then
            redis_pid=$dir/peer/redis.pid
        fi
        [ -z "$redis_pid" ] || r0=$(proc_ticks "$(cat "$redis_pid")")
    fi

    [ "$tool" != pgbench ] || t0=$(pg_ticks)

    for i in $(seq "$runs"); do
        if [ "$tool" = wrk ]; then
            out=$(timed taskset -c "$load_cpu" wrk -t1 -c"$conns" -d"${secs}s" \
                      --latency "$@")
            load_s=$(awk -v a="$load_s" -v b="$(cat "$dir/load.cpu")" 'BEGIN { print a + b }')
            rps=$(awk '/^Requests\/sec/ { print $2 }' <<<"$out")
            nreq=$((nreq + $(awk '/requests in/ { print $1 }' <<<"$out")))
            p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' <<<"$out")")
            p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
            bad=$(awk '/Non-2xx/ { n += $5 }
                       /Socket errors/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 }
                       END { print n + 0 }' <<<"$out")
        else
            rm -f "$dir"/pgb.*
            out=$(timed taskset -c "$load_cpu" pgbench -n -M "$2" -c "$pg_conns" \
                      -j 1 -T "$secs" -f "$1" -l --log-prefix="$dir/pgb" \
                      -h 127.0.0.1 -p "$pg_port" -U worksible_api worksible \
                      2>&1)
            load_s=$(awk -v a="$load_s" -v b="$(cat "$dir/load.cpu")" 'BEGIN { print a + b }')
            nreq=$((nreq + $(awk '/^number of transactions actually processed/ { print $6 }' <<<"$out")))
            rps=$(awk '/^tps/ { print $3 }' <<<"$out")
            read -r p50 p99 < <(cat "$dir"/pgb.* | awk '{ print $3 }' \
                | sort -n | awk '{ v[NR] = $1 } END {
                    printf "%.3f %.3f\n", v[int(NR * 0.5) + 1] / 1000,
                                          v[int(NR * 0.99) + 1] / 1000 }')
            bad=$(awk '/failed transactions/ { print $5 }' <<<"$out")
            bad=${bad:-0}
        fi
        results+=("$rps $p50 $p99 $bad")
    done

    if [ -n "$redis_pid" ]; then
        r1=$(proc_ticks "$(cat "$redis_pid")")
        redis_us=$(us_per $((r1 - r0)) "$nreq")
    fi

    if [ "$nreq" -gt 0 ]; then
        load_us=$(awk -v t="$load_s" -v n="$nreq" 'BEGIN { printf "%.1f", t * 1e6 / n }')
    fi
    if [ "$tool" = pgbench ]; then
        # PostgreSQL's CPU per transaction, as pg_us is per logged request
        t1=$(pg_ticks)
        pg_us=$(us_per $((t1 - t0)) "$nreq")
    fi

    if [ -n "$worker" ]; then
        rss1=$(rss_kb "$worker")
        worker_us=$(us_per $(( $(proc_ticks "$worker") - w0 )) "$nreq")
        if [ "$t0" != 0 ]; then
            sleep 2     # the last batch of the request log leaves
            t1=$(pg_ticks); n1=$(log_rows)
            logged=$(awk -v r=$((n1 - n0)) -v n="$nreq" 'BEGIN { printf "%.3f", r / n }')
            if [ $((n1 - n0)) -gt 0 ]; then
                pg_us=$(us_per $((t1 - t0)) $((n1 - n0)))
            fi
        fi
    fi

    # the median run by req/s
    read -r rps p50 p99 bad < <(printf '%s\n' "${results[@]}" | sort -n -k1,1 \
                                | sed -n "$(( (runs + 1) / 2 ))p")

    local ratio=null all
    all=$(printf '%s\n' "${results[@]}" | awk '{ printf "%s%.0f", (NR > 1 ? "," : ""), $1 }')
    if [ "$kind" = ceiling ]; then
        ceiling=$rps
        ratio=1.00
    elif awk -v c="$ceiling" 'BEGIN { exit !(c > 0) }'; then
        ratio=$(awk -v a="$rps" -v c="$ceiling" 'BEGIN { printf "%.2f", a / c }')
    fi

    printf '%-34s %9.0f %8.2f %8.2f %6s %8s %8s %7s %6s %8s %9s %7s %6s\n' "$name" \
        "$rps" "$p50" "$p99" "$ratio" "${rss0:-0}" "${rss1:-0}" "$logged" "$pg_us" \
        "$redis_us" "$worker_us" "$load_us" "$bad"

    rows_json+=("$(printf '{"name":"%s","req_s":%.0f,"runs_req_s":[%s],"p50_ms":%s,"p99_ms":%s,"ratio":%s,"ceiling":%s,"rss_kb_before":%s,"rss_kb_after":%s,"logged":%s,"pg_cpu_us_per_%s":%s,"redis_cpu_us_per_request":%s,"worker_cpu_us_per_request":%s,"load_cpu_us_per_request":%s,"errors":%s}' \
        "$name" "$rps" "$all" "$p50" "$p99" "$ratio" \
        "$([ "$kind" = ceiling ] && echo true || echo false)" \
        "${rss0:-null}" "${rss1:-null}" "$logged" \
        "$([ "$tool" = pgbench ] && echo transaction || echo log_row)" "$pg_us" "$redis_us" "$worker_us" "$load_us" "${bad:-0}")")
}

# wrk scripts: a POST with a fresh Idempotency-Key each time, and one key
body='{"name":"Bench Freelancer","email":"bench@example.com","country":"DE"}'
cat >"$dir/post-fresh.lua" <<LUA
local n = 0
local tag = tostring(os.time()) .. "-" .. tostring(math.random(1000000))
request = function()
    n = n + 1
    local id = tag .. "-" .. n
    return wrk.format("POST", "/v1/freelancers", {
        ["Authorization"] = "Bearer $key",
        ["Content-Type"] = "application/json",
        ["Idempotency-Key"] = "bench-" .. id,
    }, '{"name":"Bench Freelancer","email":"b' .. id ..
       '@example.com","country":"DE"}')
end
LUA
cat >"$dir/post-replay.lua" <<LUA
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Authorization"] = "Bearer $key"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Idempotency-Key"] = "bench-replay-one-key"
LUA
curl -fs -o /dev/null -X POST http://127.0.0.1:18093/v1/freelancers \
    -H "$auth" -H 'Content-Type: application/json' \
    -H 'Idempotency-Key: bench-replay-one-key' -d "$body"

# pgbench: the module's own statements for the two GETs
filters=$(psql -X -At -c "SELECT '{}'::jsonb")
cat >"$dir/me.sql" <<SQL
SELECT worksible_company_me('$company');
SQL
cat >"$dir/list.sql" <<SQL
SELECT worksible_list_freelancers('$company', 20, NULL, NULL, '$filters'::jsonb);
SQL

ours=$prefix/logs/nginx.pid
me=http://127.0.0.1

printf '\nmake bench: %s s x %s runs, wrk -t1 -c%s (core %s), nginx 1 worker (core %s), stores (core %s), pool/pgbench -c %s\n\n' \
    "$secs" "$runs" "$conns" "$load_cpu" "$nginx_cpu" "$store_cpu" "$pg_conns"
printf '%-34s %9s %8s %8s %6s %8s %8s %7s %6s %8s %9s %7s %6s\n' what req/s p50_ms p99_ms \
    ratio rss0_kB rss1_kB logged pg_us redis_us worker_us load_us errors

row "bare nginx (static 120 B)"        ceiling wrk "$ours" "$me:18090/v1/companies/me"
row "auth (cached key), same file"     rel wrk "$ours" "$me:18091/v1/companies/me" -H "$auth"
row "auth + rate limit, same file"     rel wrk "$ours" "$me:18092/v1/companies/me" -H "$auth"
if [ $have_peer = 1 ]; then
    row "lua-edge peer (auth + Redis)" rel wrk "$dir/peer/logs/nginx.pid" \
        "$me:18081/v1/companies/me" \
        -H "Authorization: Bearer wsk_live_demo1234_s3cr3tvalue"
fi
# the worker alone: PostgreSQL refuses the request log's batches (dropped)
log_grant() {
    psql -X -q -c "$1 INSERT ON request_logs $2 worksible_log_writer"
}
if [[ "auth, log refused" =~ $only ]]; then
    log_grant REVOKE FROM
    row "auth, log refused by PostgreSQL" rel wrk "$ours" \
        "$me:18091/v1/companies/me" -H "$auth"
    row "auth + rate limit, log refused"  rel wrk "$ours" \
        "$me:18092/v1/companies/me" -H "$auth"
    log_grant GRANT TO
fi
row "pgbench company_me (extended)"    ceiling pgbench "$dir/me.sql" extended
row "pgbench company_me (prepared)"    rel pgbench "$dir/me.sql" prepared
row "GET /v1/companies/me"             rel wrk "$ours" "$me:18093/v1/companies/me" -H "$auth"
row "pgbench list 20 (extended)"       ceiling pgbench "$dir/list.sql" extended
row "pgbench list 20 (prepared)"       rel pgbench "$dir/list.sql" prepared
row "GET /v1/freelancers?limit=20"     rel wrk "$ours" "$me:18093/v1/freelancers?limit=20" -H "$auth"
ceiling=0
row "POST, fresh Idempotency-Key"      rel wrk "$ours" "$me:18093/v1/freelancers" -s "$dir/post-fresh.lua"
row "POST, replays of one key"         rel wrk "$ours" "$me:18093/v1/freelancers" -s "$dir/post-replay.lua"

cat <<'NOTE'

ratio: req/s over the last row marked as a ceiling above it (bare nginx;
pgbench with the same SQL and protocol as the module, "extended"). rss0/rss1:
the worker's RSS before and after the row's runs. logged: request-log
rows written over requests answered (under 1: batches dropped, the log's
queue full or PostgreSQL refusing them). CPU per request (µs of
user + system time over the row's runs): pg_us, PostgreSQL's (all its
processes; through nginx per request-log row written, so per request
times logged; pgbench: per transaction); redis_us, the row's Redis
server's; worker_us, the nginx worker's; load_us, wrk's or pgbench's.
NOTE

psql -X -q -U postgres -d worksible -o "$build/bench-pgss.txt" -c "
    SELECT calls, round(total_exec_time::numeric, 1) AS total_ms,
           round(mean_exec_time::numeric, 3) AS mean_ms, rows,
           left(regexp_replace(query, '\s+', ' ', 'g'), 110) AS query
    FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 15"

{
    printf '{"seconds":%s,"runs":%s,"connections":%s,"pg_connections":%s,' \
        "$secs" "$runs" "$conns" "$pg_conns"
    printf '"nginx_cpu":%s,"load_cpu":%s,"date":"%s","commit":"%s","rows":[' \
        "$nginx_cpu" "$load_cpu" "$(date -u +%FT%TZ)" \
        "$(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    (IFS=,; printf '%s' "${rows_json[*]}")
    printf ']}\n'
} >"$build/bench.json"
echo "wrote build/bench.json, build/bench-pgss.txt"
