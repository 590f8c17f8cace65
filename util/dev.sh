#!/usr/bin/env bash
# `make run` / `make stop`: the development stack.
#
#   util/dev.sh start   PostgreSQL 15432 + Redis 16379 (util/stack.sh), the
#                       migrations, demo data, a new demo key, and nginx with
#                       our module on 127.0.0.1:8080; writes build/dev.env
#   util/dev.sh stop    stops nginx and the stores
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=$top/build
dev=$build/dev
prefix=$dev/nginx

nginx_stop() {
    local pid
    [ -f "$prefix/logs/nginx.pid" ] || return 0
    pid=$(cat "$prefix/logs/nginx.pid")
    kill -QUIT "$pid" 2>/dev/null || return 0
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
}

case ${1:-start} in
    stop)
        nginx_stop
        "$top/util/stack.sh" stop dev
        echo "stopped"
        exit 0 ;;
    start) ;;
    *) echo "usage: dev.sh start|stop" >&2; exit 2 ;;
esac

nginx_stop
"$top/util/stack.sh" start dev

export PGHOST=127.0.0.1 PGPORT=15432 PGUSER=worksible PGDATABASE=worksible
export WORKSIBLE_KEY_SECRET_FILE=$dev/key_secret

"$build/worksible" migrate
psql -X -q -v ON_ERROR_STOP=1 -f "$top/util/demo.sql" >/dev/null

# the demo company: the oldest growth one (the tour may have renamed it)
company=$(psql -X -At -c "SELECT id FROM companies WHERE plan = 'growth'
                          ORDER BY created_at, id LIMIT 1")
company_name=$(psql -X -At -c "SELECT name FROM companies WHERE id = '$company'")
scopes="company:read company:write freelancers:read freelancers:write \
projects:read projects:write contracts:read contracts:write \
timesheets:read timesheets:write invoices:read invoices:write \
payments:read payments:write payouts:read payouts:write \
api_keys:read api_keys:write request_logs:read"
# (its "shown only this once" warning is moot: the key is printed below)
key=$("$build/worksible" key create --company "$company" --scopes "$scopes" \
        --name "make run demo" --json 2>"$dev/key-create.err" \
      | perl -MJSON::PP -0777 -ne 'print decode_json($_)->{key}') \
    || { cat "$dev/key-create.err" >&2; exit 1; }

mkdir -p "$prefix/logs" "$prefix/conf" "$prefix/tmp"
sed -e "s|@BUILD@|$build|g" -e "s|@PREFIX@|$prefix|g" -e "s|@DEV@|$dev|g" \
    "$top/conf/dev.conf.in" >"$prefix/conf/nginx.conf"
/usr/sbin/nginx -p "$prefix" -c "$prefix/conf/nginx.conf" -t -q
/usr/sbin/nginx -p "$prefix" -c "$prefix/conf/nginx.conf"

cat >"$build/dev.env" <<ENV
WORKSIBLE_URL=http://127.0.0.1:8080
WORKSIBLE_DASHBOARD_URL=http://127.0.0.1:8080/dashboard/
WORKSIBLE_DEMO_KEY=$key
WORKSIBLE_DEMO_COMPANY=$company
PGHOST=127.0.0.1
PGPORT=15432
PGUSER=worksible
PGDATABASE=worksible
REDIS_HOST=127.0.0.1
REDIS_PORT=16379
WORKSIBLE_NGINX_PREFIX=$prefix
WORKSIBLE_KEY_SECRET_FILE=$dev/key_secret
ENV

cat <<MSG

Worksible API is running on http://127.0.0.1:8080 (nginx prefix $prefix)
Demo company: $company ($company_name, growth plan)
Demo key (shown once, also in build/dev.env):

    $key

Dashboard (paste the demo key there):

    http://127.0.0.1:8080/dashboard/

Try:

    curl -s http://127.0.0.1:8080/v1/companies/me -H "Authorization: Bearer $key"

Environment for psql and the CLI: set -a; . build/dev.env; set +a
Stop with: make stop
MSG
