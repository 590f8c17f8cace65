#!/usr/bin/env bash
# `make test`: every suite in t/ against a private PostgreSQL (15433) and
# Redis (16380), nginx on 1984 (DESIGN.md ports), a fresh database each run.
# WORKSIBLE_ASAN=1 (make test-asan) loads the AddressSanitizer and
# UndefinedBehaviorSanitizer build of the module into the stock nginx
# (LD_PRELOAD=libasan) and fails on any report, leaks included.
# WORKSIBLE_NGINX and WORKSIBLE_MODULE name another nginx binary and the
# module built for it (make test NGINX_SRC=...), WORKSIBLE_CLI another CLI
# (util/deb-test.sh: the packaged ones).
# Extra arguments are passed to prove (e.g. util/test.sh t/auth.t).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=$top/build
cd "$top"

trap '"$top/util/stack.sh" stop test' EXIT
util/stack.sh start test

export PGHOST=127.0.0.1 PGPORT=15433 PGUSER=worksible PGDATABASE=worksible
psql -X -q -U postgres -d postgres \
    -c 'DROP DATABASE IF EXISTS worksible WITH (FORCE)' \
    -c 'CREATE DATABASE worksible OWNER worksible'
export WORKSIBLE_CLI=${WORKSIBLE_CLI:-$build/worksible}
"$WORKSIBLE_CLI" migrate >/dev/null

export WORKSIBLE_TOP=$top
export WORKSIBLE_KEY_SECRET_FILE=$build/test/key_secret
export TEST_NGINX_BINARY=${WORKSIBLE_NGINX:-/usr/sbin/nginx}
export TEST_NGINX_LOAD_MODULES=${WORKSIBLE_MODULE:-$build/ngx_worksible_module.so}
export TEST_NGINX_PORT=1984
export TEST_NGINX_PG_CONNINFO="host=127.0.0.1 port=15433 dbname=worksible user=worksible_api"
export TEST_NGINX_KEY_SECRET_FILE=$WORKSIBLE_KEY_SECRET_FILE
export TEST_NGINX_REDIS=127.0.0.1:16380
export TEST_NGINX_NO_SHUFFLE=1

if [ "${WORKSIBLE_ASAN:-0}" = 1 ]; then
    asan_logs=$build/test/asan
    rm -rf "$asan_logs"; mkdir -p "$asan_logs"; chmod 777 "$asan_logs"
    export TEST_NGINX_BINARY=$top/util/asan-nginx
    export TEST_NGINX_LOAD_MODULES=$build/asan/ngx_worksible_module.so
    export ASAN_OPTIONS="log_path=$asan_logs/asan:detect_leaks=1:fast_unwind_on_malloc=0"
    export LSAN_OPTIONS="suppressions=$top/t/lsan.supp:print_suppressions=0"
    # UBSan (built in with ASan) stops the worker at its first report, in
    # nginx's error log (stderr), which t/lib/Worksible/Test.pm checks
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
fi

inc=(-I t/lib)
perl -MTest::Nginx::Socket -e 1 2>/dev/null || inc+=(-I t/compat)

if [ $# -eq 0 ]; then
    set -- -r t/
fi

prove "${inc[@]}" "$@"
