#!/usr/bin/env bash
# Measures GET /v1/request_logs/stats's SQL on a million request log rows of
# one company over the last 24 hours (README: "Request log statistics").
# Run against a scratch database (it adds a company and a million rows), in
# your own network namespace when other stacks share the machine:
#
#   PGHOST=... PGPORT=... PGUSER=worksible PGDATABASE=... util/stats-bench.sh [ROWS]
#
# The rows are written through the staging ingest (batches of 500 into
# the session's staging table, then worksible_request_logs_ingest, whose
# INSERT into request_logs the log's trigger counts in the rollups, as it
# counts the module's COPY into request_logs), the days' partitions made by
# worksible_request_logs_prepare, then each query runs 5 times as
# worksible_api and the best and median times of EXPLAIN ANALYZE are
# printed (README "The dashboard" says which filters read the rollups and
# which the rows).
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
SELECT count(*) FROM worksible_request_logs_prepare();
DO \$\$
DECLARE
    b     integer;
    t0    timestamptz := now() - interval '24 hours';
BEGIN
    PERFORM worksible_request_logs_stage();
    FOR b IN 0 .. $batches - 1 LOOP
        INSERT INTO pg_temp.worksible_request_log_batch
        SELECT 'req_' || lpad(to_hex(b * 500 + g), 26, '0'), '$company',
            'key_BENCH' || lpad((g % 5)::text, 21, '0'),
            (ARRAY['GET','GET','GET','POST','PATCH','DELETE'])[1 + (g * 7 + b) % 6],
            (ARRAY['/v1/invoices','/v1/freelancers','/v1/projects/prj_X',
                   '/v1/timesheets?status=draft',
                   '/v1/payouts/pay_' || lpad(((b * 500 + g) % 100000)::text, 5, '0')])
                [1 + (g * 3 + b) % 5],
            (ARRAY[200,200,200,200,200,200,200,200,200,200,200,200,
                   201,201,400,401,403,404,409,429,500,503])[1 + (g * 13 + b) % 22],
            floor(exp(random() * 6))::integer,
            ('198.51.100.' || (g % 200))::inet, 'bench/1.0', NULL, false, 100,
            t0 + (b * 500 + g) * (interval '24 hours' / $rows)
        FROM generate_series(0, least(499, $rows - 1 - b * 500)) AS g;
        PERFORM worksible_request_logs_ingest();
        DELETE FROM pg_temp.worksible_request_log_batch;
        IF b % 100 = 99 THEN COMMIT; END IF;
    END LOOP;
END
\$\$;
-- the rows of a day that had no partition yet (yesterday's, on a fresh
-- database) move into the one made now
SELECT count(*) FROM worksible_request_logs_prepare();
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
    printf '%-46s best %8.1f ms   median %8.1f ms\n' "$name" \
        "$(echo "$times" | sed -n 1p)" "$(echo "$times" | sed -n 3p)"
}

run '24 h, 1h buckets' '{}'
run '24 h, 1m buckets' '{"interval":"1m"}'
run '24 h, 1h, status 4xx' '{"status[class]":"4"}'
run '24 h, 1h, method POST' '{"method":"POST"}'
run '24 h, 1h, one key' '{"api_key_id":"key_BENCH000000000000000000003"}'
run '24 h, 1d buckets' '{"interval":"1d"}'
run '24 h, 1h, POST and one key' '{"method":"POST","api_key_id":"key_BENCH000000000000000000003"}'
run '24 h, 1h, path /v1/payouts' '{"path[prefix]":"/v1/payouts"}'
run '24 h, 1h, path /v1/payouts/pay_0 (10,000 paths)' '{"path[prefix]":"/v1/payouts/pay_0"}'
run '24 h, 1h, path /v1/payouts/pay_ (100,000 paths)' '{"path[prefix]":"/v1/payouts/pay_"}'
run '24 h, 1h, path /v1/p' '{"path[prefix]":"/v1/p"}'
run '24 h, 1h, path /v1/projects/' '{"path[prefix]":"/v1/projects/"}'
run '24 h, 1m, path /v1/p' '{"path[prefix]":"/v1/p","interval":"1m"}'
run '24 h, 1h, path /v1/p, POST' '{"path[prefix]":"/v1/p","method":"POST"}'
run '24 h, 1h, path /v1/p, one key' '{"path[prefix]":"/v1/p","api_key_id":"key_BENCH000000000000000000003"}'
run '24 h, 1h, path /v1/p, POST, one key, 4xx' '{"path[prefix]":"/v1/p","method":"POST","api_key_id":"key_BENCH000000000000000000003","status[class]":"4"}'
run '24 h, 1h, path /v1/invoices/x (none)' '{"path[prefix]":"/v1/invoices/x"}'
run '24 h, 1h, path /v1/projects/prj_X' '{"path[prefix]":"/v1/projects/prj_X"}'
run '24 h, 1h, path /v1/projects/p' '{"path[prefix]":"/v1/projects/p"}'
run '24 h, 1m, path /v1/projects/prj_X' '{"path[prefix]":"/v1/projects/prj_X","interval":"1m"}'
run '24 h, 1h, path /v1/projects/prj_X, POST' '{"path[prefix]":"/v1/projects/prj_X","method":"POST"}'
run '24 h, 1h, path /v1/projects/prj_X, one key' '{"path[prefix]":"/v1/projects/prj_X","api_key_id":"key_BENCH000000000000000000003"}'
run '24 h, 1h, path /v1/projects/prj_X, POST, one key' '{"path[prefix]":"/v1/projects/prj_X","method":"POST","api_key_id":"key_BENCH000000000000000000003"}'
run '24 h, 1h, path /v1/timesheets?status= (rows)' '{"path[prefix]":"/v1/timesheets?status="}'

# what a batch of 500 rows costs the ingest: its INSERT into the log with
# the statement trigger that counts it (worksible_request_log_count, the
# rollups), as the module's COPY into request_logs runs it, rolled back
times=$(for _ in 1 2 3 4 5; do
    psql -X -At <<SQL | sed -n 's/^Execution Time: \([0-9.]*\) ms/\1/p'
BEGIN;
EXPLAIN (ANALYZE, TIMING OFF, SUMMARY ON)
INSERT INTO request_logs
SELECT * FROM request_logs WHERE company_id = '$company' LIMIT 500;
ROLLBACK;
SQL
done | sort -n)
printf '%-46s median %8.1f ms\n' "batch of 500: rows and rollups" "$(echo "$times" | sed -n 3p)"
