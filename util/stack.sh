#!/usr/bin/env bash
# Private PostgreSQL 15 and Redis 7 on loopback, under build/<name>/.
#
#   util/stack.sh start|stop|status dev|test|chaos|bench
#   util/stack.sh pg-start|pg-stop|redis-start|redis-stop dev|test|chaos|bench
#   util/stack.sh cluster-start|cluster-stop dev|test|chaos|bench
#
# cluster-start: a fresh Redis Cluster of 3 primaries and 3 replicas on
# 127.0.0.1:17001-17006 (t/redis_cluster.t; run it in a network namespace
# of its own beside another stack's), under build/<name>/cluster/PORT/,
# cluster-node-timeout 1000 ms; it returns once every node reports
# cluster_state:ok. Bus ports are 27001-27006 (port + 10000, Redis's
# default). cluster-stop stops the six.
#
#   util/stack.sh replica-start|replica-stop|primary-stop|promote dev|test|...
#
# A streaming replica of the stack's PostgreSQL (replica-start: made with
# pg_basebackup -R on loopback unless one runs already) listens on the
# stack's PostgreSQL port + 10 (test: 15443), with hot_standby; promote
# makes it a primary (pg_ctl promote); primary-stop stops the primary
# (PRIMARY_STOP_MODE: fast, or immediate); replica-stop stops the replica
# and deletes it (a promoted one has diverged: the next replica-start makes
# a fresh copy).
#
#   util/stack.sh pgbouncer-start|pgbouncer-stop dev|test|...
#
# PgBouncer (Debian's, 1.18) in front of the stack's PostgreSQL, on its
# port + 1000 (test: 16433), pool_mode=transaction, 2 server connections
# per database and user, trust authentication of the stack's roles; its
# admin console is the database "pgbouncer" for the user postgres.
# PGBOUNCER_IGNORE=options: it drops that startup parameter instead of
# refusing it (ignore_startup_parameters).
#
# Ports: dev PostgreSQL 15432, Redis 16379; test 15433, 16380; chaos
# (util/chaos.pl, `make chaos`) 15434, 16381; bench (make bench,
# util/bench.sh) 15435, 16382, with pg_stat_statements. Every port a
# script listens on is below 32768, outside Linux's ephemeral range
# (net.ipv4.ip_local_port_range, 32768-60999): suites stop and start
# stores while thousands of outgoing connections come and go, and one of
# them holding a store's port made the store fail to bind (DESIGN.md's
# 55432-56382 are in that range; README "Ports").
# The first start creates the cluster, the roles `worksible` (owner of the
# schema, for operators and the CLI; BYPASSRLS so that its SECURITY DEFINER
# functions can find a key before the company is known) and
# `worksible_api` (what nginx uses: owns nothing, no BYPASSRLS), the
# database `worksible`, and a server secret file of 64 hex characters. Authentication is `trust` on 127.0.0.1 only:
# a private development stack; production passes a password in the conninfo.
# PostgreSQL refuses to run as root, so it runs as the `postgres` user.
set -euo pipefail

cmd=${1:?usage: stack.sh start|stop|status|pg-start|pg-stop|redis-start|redis-stop dev|test|chaos|bench}
name=${2:?usage: stack.sh CMD dev|test|chaos|bench}
top=$(cd "$(dirname "$0")/.." && pwd)
case $name in
    dev)  pg_port=15432 redis_port=16379 ;;
    test) pg_port=15433 redis_port=16380 ;;
    chaos) pg_port=15434 redis_port=16381 ;;
    bench) pg_port=15435 redis_port=16382 ;;
    *)    echo "stack.sh: unknown stack '$name'" >&2; exit 2 ;;
esac

dir=$top/build/$name
pgdata=$dir/pg
replica_port=$((pg_port + 10))
bouncer_port=$((pg_port + 1000))
pgbin=/usr/lib/postgresql/15/bin

as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

# The postgres user must reach the data directory: when the checkout lies
# under a directory it cannot traverse (/root, a 0700 home), the cluster
# lives under /var/tmp instead, at a path made from the checkout's.
mkdir -p "$dir"
if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$dir"; then
    pgdata=/var/tmp/worksible-$(printf '%s' "$top" | md5sum | cut -c1-12)/$name/pg
    mkdir -p "$(dirname "$pgdata")"
    chmod 755 "$(dirname "$(dirname "$pgdata")")" "$(dirname "$pgdata")"
fi

replica=$(dirname "$pgdata")/replica
bouncer=$(dirname "$pgdata")/pgbouncer

pg_init() {
    [ -f "$pgdata/PG_VERSION" ] && return 0
    mkdir -p "$pgdata"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$pgdata"
    chmod 700 "$pgdata"
    as_pg "$pgbin/initdb" -D "$pgdata" -U postgres --auth=trust \
        --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log"
    cat >>"$pgdata/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = '$pgdata'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
log_line_prefix = '%m [%p] %u@%d '
CONF
    if [ "$name" = bench ]; then
        echo "shared_preload_libraries = 'pg_stat_statements'" \
            >>"$pgdata/postgresql.conf"
    fi
    cat >"$pgdata/pg_hba.conf" <<HBA
local all all trust
host  all all 127.0.0.1/32 trust
host  replication all 127.0.0.1/32 trust
HBA
    pg_start_only
    psql_su postgres -q <<SQL
CREATE ROLE worksible LOGIN BYPASSRLS;
CREATE ROLE worksible_api LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE
    NOBYPASSRLS NOINHERIT CONNECTION LIMIT 150;
CREATE DATABASE worksible OWNER worksible;
SQL
}

# worksible_log_writer: the role the request log's COPY runs as (BYPASSRLS,
# INSERT on request_logs only; migrations/0016_request_log_direct_copy.sql),
# made in a cluster older than it too
pg_roles() {
    psql_su postgres -q <<'SQL'
DO $$
BEGIN
    IF to_regrole('worksible_log_writer') IS NULL THEN
        CREATE ROLE worksible_log_writer NOLOGIN BYPASSRLS;
        GRANT worksible_log_writer TO worksible_api;
    END IF;
END
$$;
SQL
}

psql_su() {
    local db=$1; shift
    psql -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port" -U postgres -d "$db" "$@"
}

pg_start_only() {
    if as_pg "$pgbin/pg_ctl" -D "$pgdata" status >/dev/null 2>&1; then
        return 0
    fi
    # the port on the command line: a cluster made before a port change
    # keeps the old one in its postgresql.conf
    as_pg "$pgbin/pg_ctl" -D "$pgdata" -l "$pgdata/server.log" -w -t 30 \
        -o "-p $pg_port" start >/dev/null
}

pg_start() { pg_init; pg_start_only; pg_roles; }

pg_stop() {
    [ -f "$pgdata/PG_VERSION" ] || return 0
    as_pg "$pgbin/pg_ctl" -D "$pgdata" -m fast -w -t 30 stop >/dev/null 2>&1 || true
}

redis_start() {
    mkdir -p "$dir"
    if [ -f "$dir/redis.pid" ] && kill -0 "$(cat "$dir/redis.pid")" 2>/dev/null; then
        return 0
    fi
    redis-server --bind 127.0.0.1 --port "$redis_port" --save '' \
        --appendonly no --daemonize yes --dir "$dir" \
        --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
    local pid
    for _ in $(seq 50); do
        # the pid of the Redis that answers (an interrupted run's, if it
        # still holds the port), so that redis-stop stops that one
        pid=$(redis-cli -h 127.0.0.1 -p "$redis_port" info server 2>/dev/null \
              | sed -n 's/^process_id:\([0-9]*\).*/\1/p')
        if [ -n "$pid" ]; then
            echo "$pid" >"$dir/redis.pid"
            return 0
        fi
        sleep 0.1
    done
    echo "stack.sh: redis did not start, see $dir/redis.log" >&2
    return 1
}

redis_stop() {
    [ -f "$dir/redis.pid" ] || return 0
    local pid
    pid=$(cat "$dir/redis.pid")
    # a suite interrupted during a SIGSTOP leaves it stopped: TERM waits
    kill -CONT "$pid" 2>/dev/null || true
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$dir/redis.pid"
}

cluster_ports="17001 17002 17003 17004 17005 17006"

cluster_stop() {
    local port pid
    for port in $cluster_ports; do
        [ -f "$dir/cluster/$port/redis.pid" ] || continue
        pid=$(cat "$dir/cluster/$port/redis.pid")
        kill -CONT "$pid" 2>/dev/null || true
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        rm -f "$dir/cluster/$port/redis.pid"
    done
}

cluster_start() {
    local port addrs=() ok
    cluster_stop
    rm -rf "$dir/cluster"
    for port in $cluster_ports; do
        mkdir -p "$dir/cluster/$port"
        redis-server --bind 127.0.0.1 --port "$port" --save '' \
            --appendonly no --daemonize yes --dir "$dir/cluster/$port" \
            --cluster-enabled yes --cluster-config-file nodes.conf \
            --cluster-node-timeout 1000 \
            --pidfile "$dir/cluster/$port/redis.pid" \
            --logfile "$dir/cluster/$port/redis.log"
        addrs+=("127.0.0.1:$port")
    done
    for port in $cluster_ports; do
        for _ in $(seq 50); do
            redis-cli -p "$port" ping >/dev/null 2>&1 && break
            sleep 0.1
        done
    done
    redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 \
        --cluster-yes >"$dir/cluster/create.log" 2>&1 || {
        echo "stack.sh: cluster create failed, see $dir/cluster/create.log" >&2
        return 1
    }
    for _ in $(seq 100); do
        ok=0
        for port in $cluster_ports; do
            redis-cli -p "$port" cluster info 2>/dev/null \
                | grep -q '^cluster_state:ok' && ok=$((ok + 1))
        done
        [ "$ok" = 6 ] && return 0
        sleep 0.2
    done
    echo "stack.sh: the cluster is not ok after 20 s" >&2
    return 1
}

# the primary lets replication connections in (a cluster made before the
# line was added gets it now), then a copy of it streams from it
replica_start() {
    pg_start
    if ! grep -q '^host  *replication' "$pgdata/pg_hba.conf"; then
        echo 'host  replication all 127.0.0.1/32 trust' >>"$pgdata/pg_hba.conf"
        as_pg "$pgbin/pg_ctl" -D "$pgdata" reload >/dev/null
    fi
    # a copy left stopped (an interrupted run) may have diverged or fallen
    # past the primary's WAL, a promoted one has: only a running standby is
    # kept
    if [ -f "$replica/PG_VERSION" ] \
       && { ! as_pg "$pgbin/pg_ctl" -D "$replica" status >/dev/null 2>&1 \
            || [ "$(psql -X -At -h 127.0.0.1 -p "$replica_port" -U postgres \
                    -d postgres -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" != t ]; }
    then
        replica_stop
    fi
    if [ ! -f "$replica/PG_VERSION" ]; then
        rm -rf "$replica"
        mkdir -p "$replica"
        [ "$(id -u)" -eq 0 ] && chown postgres: "$replica"
        chmod 700 "$replica"
        as_pg "$pgbin/pg_basebackup" -h 127.0.0.1 -p "$pg_port" -U postgres \
            -D "$replica" -R -X stream -c fast 2>"$dir/basebackup.log" \
            || { cat "$dir/basebackup.log" >&2; exit 1; }
        # the copied settings name the primary's port and socket directory
        cat >>"$replica/postgresql.conf" <<CONF
port = $replica_port
unix_socket_directories = '$replica'
hot_standby = on
CONF
    fi
    if ! as_pg "$pgbin/pg_ctl" -D "$replica" status >/dev/null 2>&1; then
        as_pg "$pgbin/pg_ctl" -D "$replica" -l "$replica/server.log" -w -t 30 \
            start >/dev/null
    fi
}

replica_stop() {
    if [ -f "$replica/PG_VERSION" ]; then
        as_pg "$pgbin/pg_ctl" -D "$replica" -m immediate -w -t 30 stop \
            >/dev/null 2>&1 || true
    fi
    rm -rf "$replica"
}

# PgBouncer refuses to run as root: it runs as postgres, like PostgreSQL
pgbouncer_start() {
    if [ -f "$bouncer/pgbouncer.pid" ] \
       && kill -0 "$(cat "$bouncer/pgbouncer.pid")" 2>/dev/null; then
        return 0
    fi
    mkdir -p "$bouncer"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$bouncer"
    printf '"worksible_api" ""\n"worksible" ""\n"postgres" ""\n' \
        >"$bouncer/users.txt"
    cat >"$bouncer/pgbouncer.ini" <<INI
[databases]
worksible = host=127.0.0.1 port=$pg_port dbname=worksible

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bouncer_port
unix_socket_dir =
auth_type = trust
auth_file = $bouncer/users.txt
admin_users = postgres
pool_mode = transaction
default_pool_size = 2
max_client_conn = 500
server_login_retry = 1
ignore_startup_parameters = ${PGBOUNCER_IGNORE:-}
logfile = $bouncer/pgbouncer.log
pidfile = $bouncer/pgbouncer.pid
INI
    as_pg pgbouncer -d "$bouncer/pgbouncer.ini"
    for _ in $(seq 50); do
        psql -X -q -h 127.0.0.1 -p "$bouncer_port" -U postgres -d pgbouncer \
            -c 'SHOW VERSION' >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "stack.sh: pgbouncer did not start, see $bouncer/pgbouncer.log" >&2
    return 1
}

# SIGTERM: PgBouncer's immediate shutdown, every connection closed
pgbouncer_stop() {
    [ -f "$bouncer/pgbouncer.pid" ] || return 0
    local pid
    pid=$(cat "$bouncer/pgbouncer.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$bouncer/pgbouncer.pid"
}

secret_init() {
    [ -s "$dir/key_secret" ] && return 0
    mkdir -p "$dir"
    (umask 077; od -An -v -tx1 -N32 /dev/urandom | tr -d ' \n' >"$dir/key_secret")
    # nginx workers (user nobody) never read it: the master reads it at load.
}

case $cmd in
    start)       mkdir -p "$dir"; secret_init; pg_start; redis_start ;;
    stop)        pgbouncer_stop; replica_stop; pg_stop; redis_stop ;;
    pg-start)    pg_start ;;
    pg-stop)     pg_stop ;;
    redis-start) redis_start ;;
    redis-stop)  redis_stop ;;
    cluster-start) cluster_start ;;
    cluster-stop)  cluster_stop ;;
    pgbouncer-start) pgbouncer_start ;;
    pgbouncer-stop)  pgbouncer_stop ;;
    replica-start) replica_start ;;
    replica-stop)  replica_stop ;;
    primary-stop)
        as_pg "$pgbin/pg_ctl" -D "$pgdata" -m "${PRIMARY_STOP_MODE:-fast}" \
            -w -t 30 stop >/dev/null ;;
    promote)     as_pg "$pgbin/pg_ctl" -D "$replica" -w -t 30 promote >/dev/null ;;
    status)
        as_pg "$pgbin/pg_ctl" -D "$pgdata" status || true
        redis-cli -h 127.0.0.1 -p "$redis_port" ping || true ;;
    *) echo "stack.sh: unknown command '$cmd'" >&2; exit 2 ;;
esac
