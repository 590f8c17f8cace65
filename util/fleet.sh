#!/usr/bin/env bash
# `make fleet`: three nginx, each in its own network namespace, on a bridge
# with the stores they share: a PostgreSQL primary and its streaming
# replica, and a Redis Cluster of 3 primaries and 3 replicas. Traffic only
# inside this machine (iproute2 namespaces, a veth pair each). Then
# util/chaos.pl runs its clients in fleet mode (CHAOS_FLEET=1) against
# them while nginx, Redis and PostgreSQL fail over; see its header.
#
#   util/fleet.sh run            net-up, stores-start, chaos, everything down
#   util/fleet.sh net-up|net-down|stores-start|stores-stop
#   util/fleet.sh redis-node-start PORT|pg-failover   (the faults chaos.pl makes)
#
# Namespaces wfl-hub (the bridge 10.89.0.1/24, the stores, the clients),
# wfl-a, wfl-b, wfl-c (nginx at 10.89.0.11-13). PostgreSQL on 10.89.0.1
# ports 15436 (primary) and 15437 (replica, pg_basebackup -R); Redis Cluster
# on 10.89.0.1:17011-17016 (the cluster bus: +10000) (cluster-node-timeout 1000 ms). Everything lives
# under build/fleet/. Needs root (namespaces). FLEET_REDIS=single uses one
# Redis (17011) instead of the cluster.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
dir=$top/build/fleet
pgbin=/usr/lib/postgresql/15/bin
hub=wfl-hub
bridge=wflbr0
net=10.89.0
hub_ip=$net.1
insts=(a b c)
pg_ports=(15436 15437)
redis_ports=(17011 17012 17013 17014 17015 17016)
redis_mode=${FLEET_REDIS:-cluster}

in_hub() { ip netns exec "$hub" "$@"; }

as_pg() { (cd / && runuser -u postgres -- "$@"); }

net_down() {
    local ns
    for ns in "$hub" "${insts[@]/#/wfl-}"; do
        ip netns list | grep -qw "^$ns" || continue
        # whatever still runs there (an interrupted run's)
        ip netns pids "$ns" | xargs -r kill -KILL 2>/dev/null || true
        ip netns del "$ns"
    done
}

net_up() {
    net_down
    ip netns add "$hub"
    ip -n "$hub" link set lo up
    ip -n "$hub" link add "$bridge" type bridge
    ip -n "$hub" addr add "$hub_ip/24" dev "$bridge"
    ip -n "$hub" link set "$bridge" up
    local i n=11
    for i in "${insts[@]}"; do
        ip netns add "wfl-$i"
        ip -n "wfl-$i" link set lo up
        ip link add "wfl-$i-h" type veth peer name "wfl-$i-n"
        ip link set "wfl-$i-h" netns "$hub"
        ip link set "wfl-$i-n" netns "wfl-$i"
        ip -n "$hub" link set "wfl-$i-h" master "$bridge" up
        ip -n "wfl-$i" addr add "$net.$n/24" dev "wfl-$i-n"
        ip -n "wfl-$i" link set "wfl-$i-n" up
        n=$((n + 1))
    done
    # the bridge forwards at once (no STP learning delay)
    ip -n "$hub" link set "$bridge" type bridge forward_delay 0 stp_state 0
}

# the primary, then its replica from a base backup (standby.signal and
# primary_conninfo written by -R)
pg_start() {
    local primary=$dir/pg1 replica=$dir/pg2
    rm -rf "$primary" "$replica"
    mkdir -p "$primary" "$replica"
    chown postgres: "$primary" "$replica"
    chmod 700 "$primary" "$replica"
    as_pg "$pgbin/initdb" -D "$primary" -U postgres --auth=trust \
        --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log"
    cat >>"$primary/postgresql.conf" <<CONF
listen_addresses = '$hub_ip'
port = ${pg_ports[0]}
unix_socket_directories = ''
max_connections = 200
fsync = off
full_page_writes = off
wal_level = replica
max_wal_senders = 4
hot_standby = on
log_line_prefix = '%m [%p] %u@%d '
CONF
    cat >"$primary/pg_hba.conf" <<HBA
host all         all $net.0/24 trust
host replication all $net.0/24 trust
HBA
    in_hub runuser -u postgres -- "$pgbin/pg_ctl" -D "$primary" \
        -l "$primary/server.log" -w -t 30 start >/dev/null
    in_hub psql -X -q -v ON_ERROR_STOP=1 -h "$hub_ip" -p "${pg_ports[0]}" \
        -U postgres -d postgres <<SQL
CREATE ROLE worksible LOGIN BYPASSRLS;
CREATE ROLE worksible_api LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE
    NOBYPASSRLS NOINHERIT CONNECTION LIMIT 150;
CREATE ROLE worksible_log_writer NOLOGIN BYPASSRLS;
GRANT worksible_log_writer TO worksible_api;
CREATE DATABASE worksible OWNER worksible;
SQL
    in_hub runuser -u postgres -- "$pgbin/pg_basebackup" -h "$hub_ip" \
        -p "${pg_ports[0]}" -U postgres -D "$replica" -R -X stream -c fast
    sed -i "s/^port = .*/port = ${pg_ports[1]}/" "$replica/postgresql.conf"
    in_hub runuser -u postgres -- "$pgbin/pg_ctl" -D "$replica" \
        -l "$replica/server.log" -w -t 30 start >/dev/null
}

# one Redis (a Cluster node, which keeps its nodes.conf: restarted, it
# rejoins as it left or as a replica of the node that took over)
redis_node_start() {
    local p=$1 cluster=()
    mkdir -p "$dir/redis-$p"
    [ "$redis_mode" = cluster ] && cluster=(--cluster-enabled yes
        --cluster-config-file "$dir/redis-$p/nodes.conf"
        --cluster-node-timeout 1000)
    in_hub redis-server --bind "$hub_ip" --port "$p" --save '' \
        --protected-mode no --appendonly no --daemonize yes \
        --dir "$dir/redis-$p" --pidfile "$dir/redis-$p/redis.pid" \
        --logfile "$dir/redis-$p/redis.log" "${cluster[@]}"
}

redis_start() {
    local p
    for p in "${redis_ports[@]}"; do
        [ "$redis_mode" = single ] && [ "$p" != "${redis_ports[0]}" ] && continue
        rm -rf "$dir/redis-$p"
        redis_node_start "$p"
    done
    for p in "${redis_ports[@]}"; do
        [ "$redis_mode" = single ] && [ "$p" != "${redis_ports[0]}" ] && continue
        for _ in $(seq 50); do
            in_hub redis-cli -h "$hub_ip" -p "$p" ping >/dev/null 2>&1 && break
            sleep 0.1
        done
    done
    if [ "$redis_mode" = cluster ]; then
        in_hub redis-cli --cluster create \
            $(printf "$hub_ip:%s " "${redis_ports[@]}") \
            --cluster-replicas 1 --cluster-yes >"$dir/cluster-create.log"
        for _ in $(seq 100); do
            in_hub redis-cli -h "$hub_ip" -p "${redis_ports[0]}" cluster info \
                | grep -q 'cluster_state:ok' && return 0
            sleep 0.1
        done
        echo "fleet: the Redis Cluster did not come up" >&2
        return 1
    fi
}

stores_start() {
    stores_stop
    mkdir -p "$dir"
    chmod 755 "$dir"
    [ -s "$dir/key_secret" ] \
        || (umask 077; od -An -v -tx1 -N32 /dev/urandom | tr -d ' \n' >"$dir/key_secret")
    pg_start
    redis_start
}

# the primary stops at once (no shutdown checkpoint), the replica is promoted
pg_failover() {
    as_pg "$pgbin/pg_ctl" -D "$dir/pg1" -m immediate -w -t 10 stop >/dev/null
    as_pg "$pgbin/pg_ctl" -D "$dir/pg2" -w -t 30 promote >/dev/null
}

stores_stop() {
    local d
    for d in "$dir/pg1" "$dir/pg2"; do
        [ -f "$d/PG_VERSION" ] && as_pg "$pgbin/pg_ctl" -D "$d" -m immediate \
            -w -t 10 stop >/dev/null 2>&1 || true
    done
    for d in "$dir"/redis-*/redis.pid; do
        [ -f "$d" ] && kill -KILL "$(cat "$d")" 2>/dev/null || true
    done
}

case ${1:-run} in
    net-up)       net_up ;;
    net-down)     net_down ;;
    stores-start) stores_start ;;
    stores-stop)  stores_stop ;;
    redis-node-start) redis_node_start "${2:?port}" ;;
    pg-failover)  pg_failover ;;
    run)
        [ "$(id -u)" -eq 0 ] || { echo "fleet: needs root (ip netns)" >&2; exit 1; }
        trap 'stores_stop; net_down' EXIT
        net_up
        stores_start
        rc=0
        in_hub env CHAOS_FLEET=1 FLEET_REDIS="$redis_mode" \
            "$top/util/chaos.pl" || rc=$?
        exit $rc ;;
    *) echo "usage: fleet.sh run|net-up|net-down|stores-start|stores-stop" >&2; exit 2 ;;
esac
