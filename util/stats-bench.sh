#!/usr/bin/env bash
# Measures GET /v1/request_logs/stats's SQL on a million request log rows of
# one company over the last 24 hours (README: "Request log statistics").
# Run against a scratch database (it adds a company and a million rows), in
# your own network namespace when other stacks share the machine:
#
#   PGHOST=... PGPORT=... PGUSER=worksible PGDATABASE=... util/stats-bench.sh [ROWS]
#
# The rows are written through the ingest (worksible_request_logs_insert,
# batches of 500 as the module sends them, rollups included), then each
# query runs 5 times as worksible_api and the best and median times of
# EXPLAIN ANALYZE are printed.
set -euo pipefail
rows=${1:-1000000}
batches=$(( (rows + 499) / 500 ))

psql -X -q -v ON_ERROR_STOP=1 <<SQL
INSERT INTO companies (id, name, plan, currency)
VALUES ('cmp_BENCH0000000000000000000000', 'Bench', 'growth', 'EUR')
ON CONFLICT DO NOTHING;
SQL

company=cmp_BENCH0000000000000000000000
start=$(date +%s.%N)
psql -X -q -v ON_ERROR_STOP=1 <<SQL
DO \$\$
DECLARE
    b     integer;
    t0    timestamptz := now() - interval '24 hours';
    batch json;
BEGIN
    FOR b IN 0 .. $batches - 1 LOOP
        SELECT json_agg(json_build_object(
            'id', 'req_' || lpad(to_hex(b * 500 + g), 26, '0'),
            'company_id', '$company',
            'api_key_id', 'key_BENCH' || lpad((g % 5)::text, 21, '0'),
            'method', (ARRAY['GET','GET','GET','POST','PATCH','DELETE'])[1 + (g * 7 + b) % 6],
            'path', (ARRAY['/v1/invoices','/v1/freelancers','/v1/projects/prj_X',
                           '/v1/timesheets?status=draft','/v1/payouts'])[1 + (g * 3 + b) % 5],
            'status', (ARRAY[200,200,200,200,200,200,200,200,200,200,200,200,
                             201,201,400,401,403,404,409,429,500,503])[1 + (g * 13 + b) % 22],
            'latency_ms', floor(exp(random() * 6))::integer,
            'ip', '198.51.100.' || (g % 200),
            'user_agent', 'bench/1.0',
            'replayed', false,
            'ratelimit_remaining', 100,
            'created_at', t0 + (b * 500 + g) * (interval '24 hours' / $rows)))
        INTO batch
        FROM generate_series(0, least(499, $rows - 1 - b * 500)) AS g;
        PERFORM worksible_request_logs_insert(batch);
        IF b % 100 = 99 THEN COMMIT; END IF;
    END LOOP;
END
\$\$;
SQL
end=$(date +%s.%N)
echo "ingest: $rows rows in $batches batches: $(echo "$end - $start" | bc) s"
psql -X -At -c "SELECT 'rollup rows: ' || count(*) FROM request_log_minutes WHERE company_id = '$company'"
psql -X -q -c "ANALYZE request_logs; ANALYZE request_log_minutes"

run() {
    local name=$1 filters=$2
    local times
    times=$(for _ in 1 2 3 4 5; do
        psql -X -At -U worksible_api <<SQL | sed -n 's/^Execution Time: \([0-9.]*\) ms/\1/p'
EXPLAIN (ANALYZE, TIMING OFF, SUMMARY ON)
SELECT worksible_request_log_stats('$company', '/v1/request_logs/stats', '$filters');
SQL
    done | sort -n)
    printf '%-34s best %8.1f ms   median %8.1f ms\n' "$name" \
        "$(echo "$times" | sed -n 1p)" "$(echo "$times" | sed -n 3p)"
}

run '24 h, 1h buckets' '{}'
run '24 h, 1m buckets' '{"interval":"1m"}'
run '24 h, 1h, status 4xx' '{"status[class]":"4"}'
run '24 h, 1h, method POST' '{"method":"POST"}'
run '24 h, 1h, one key' '{"api_key_id":"key_BENCH000000000000000000003"}'
run '24 h, 1d buckets' '{"interval":"1d"}'
run '24 h, 1h, path /v1/payouts (raw)' '{"path[prefix]":"/v1/payouts"}'
run '24 h, 1h, path /v1/p (raw)' '{"path[prefix]":"/v1/p"}'
run '24 h, 1h, POST and one key (raw)' '{"method":"POST","api_key_id":"key_BENCH000000000000000000003"}'
run '24 h, 1h, path /v1/invoices/x (raw, none)' '{"path[prefix]":"/v1/invoices/x"}'

# what the rollups cost the ingest: one batch of 500 rows, with and without
for what in 'worksible_request_log_minutes_add(b)' 'cardinality(b)'; do
    times=$(for _ in 1 2 3 4 5; do
        psql -X -At <<SQL | sed -n 's/^Execution Time: \([0-9.]*\) ms/\1/p'
BEGIN;
EXPLAIN (ANALYZE, TIMING OFF, SUMMARY ON)
SELECT $what FROM (SELECT ARRAY(SELECT l FROM request_logs l
                                WHERE company_id = '$company' LIMIT 500) AS b) AS x;
ROLLBACK;
SQL
    done | sort -n)
    printf '%-34s median %8.1f ms\n' "batch of 500: ${what%%(*}" "$(echo "$times" | sed -n 3p)"
done
