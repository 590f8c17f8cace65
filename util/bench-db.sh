# Sourced by util/bench.sh and util/capacity.sh. bench_db NAME makes the
# bench stack's database afresh (the migrations, util/demo.sql, a reset
# pg_stat_statements), gives the growth plan a budget no run exhausts
# (every request charged, none refused), and sets $company (a growth
# company) and $key (a new key of it named NAME, with company:read,
# freelancers:read and freelancers:write). Needs $top, $build, the PG*
# variables and WORKSIBLE_KEY_SECRET_FILE.
bench_db() {
    psql -X -q -U postgres -d postgres \
        -c 'DROP DATABASE IF EXISTS worksible WITH (FORCE)' \
        -c 'CREATE DATABASE worksible OWNER worksible'
    psql -X -q -U postgres -c 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements'
    "$build/worksible" migrate >/dev/null
    psql -X -q -v ON_ERROR_STOP=1 -f "$top/util/demo.sql" >/dev/null
    psql -X -q -U postgres -c 'SELECT pg_stat_statements_reset()' >/dev/null

    company=$(psql -X -At -c "SELECT id FROM companies WHERE plan = 'growth'
                              ORDER BY created_at, id LIMIT 1")
    "$build/worksible" plan set growth --limit 1000000000 --window 60 >/dev/null
    key=$("$build/worksible" key create --company "$company" \
            --scopes "company:read freelancers:read freelancers:write" \
            --name "$1" --json 2>/dev/null \
          | perl -MJSON::PP -0777 -ne 'print decode_json($_)->{key}')
}
