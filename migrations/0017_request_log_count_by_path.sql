-- The request log's rollup trigger computes a row's route and path key
-- once per group of equal rows instead of once per row (issue 16).
--
-- worksible_request_log_count (0016_request_log_direct_copy.sql) grouped
-- the statement's rows by their route, path key, minute, status and
-- latency bucket, so the route's regular expression and the path key's
-- split ran on every row: a third of the trigger's time on single-path
-- traffic (perf: textregexsubstr 4 % of PostgreSQL's samples, the trigger
-- 17 %). The rows are now grouped by their path as it is first; route and
-- path key are functions of the path, so the groups and the counts are
-- the same. util/reqlog-bench.sh (BENCH_BEFORE=0017): see README "The
-- request log's ingest".
--
-- And it upserts the rollup rows in the order of their key. Batches of
-- several workers (each its own connection) upsert the rows of the same
-- minutes at once; in hash order, two could lock two rows in opposite
-- orders, and PostgreSQL aborted one of them (deadlock detected, 40P01):
-- its rows were dropped. 4 sessions of 30 batches of 2,000 rows over
-- differing paths, keys and methods lost 54 of their 120 batches.

-- worksible_request_log_count() -> NULL: as in 0016_request_log_direct_copy.sql
--   (same triggers, same rollup rows), the route and path key computed per
--   group of rows with one company, method, key, path, minute, status and
--   latency bucket, and the rollup rows upserted in the order of their key.
DO $$
BEGIN
    EXECUTE replace($q$
CREATE OR REPLACE FUNCTION worksible_request_log_count() RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = public, pg_temp AS $f$
BEGIN
    IF current_setting('worksible.request_log_counted', true) = 'on' THEN
        RETURN NULL;
    END IF;

    -- the rows grouped by their own columns first (few groups for real
    -- traffic), each group's route and path key computed once, then per
    -- level: its GROUPING() bits (method 8, key 4, route 2, path 1;
    -- 1 = not kept) name it, through the array (NULL: no grouping set
    -- has those bits)
    INSERT INTO request_log_minutes AS t (company_id, level, method, api_key_id,
        route, minute, status, requests, latency_max, latency_hist)
    SELECT g.company_id, g.level,
           coalesce(g.method, '*'), coalesce(g.key, '*'),
           coalesce(g.route, g.path, '*'),
           g.minute, g.status, sum(g.n), max(g.mx),
           ARRAY[/*DENSE*/]
    FROM (
        SELECT f.company_id, f.minute, f.status, f.bucket, f.method, f.key,
               f.route, f.path,
               (ARRAY[NULL, 5, NULL, 3, NULL, 6, NULL, 1, NULL, 7, NULL, 2, NULL, 4, 8, 0])
                   [GROUPING(f.method, f.key, f.route, f.path) + 1] AS level,
               sum(f.n)::integer AS n, max(f.mx) AS mx
        FROM (
            SELECT r.company_id, r.method, r.key,
                   worksible_request_log_route(r.path) AS route,
                   worksible_request_log_path_key(r.path) AS path,
                   r.minute, r.status, r.bucket, r.n, r.mx
            FROM (
                SELECT s.company_id, s.method, coalesce(s.api_key_id, '') AS key,
                       s.path,
                       date_bin('1 minute', s.created_at,
                                timestamptz '2000-01-01 00:00Z') AS minute,
                       s.status,
                       width_bucket(s.latency_ms, worksible_latency_bounds()) + 1 AS bucket,
                       count(*)::integer AS n, max(s.latency_ms) AS mx
                FROM new_rows s
                WHERE s.company_id IS NOT NULL
                GROUP BY 1, 2, 3, 4, 5, 6, 7) AS r) AS f
        GROUP BY f.company_id, f.minute, f.status, f.bucket,
                 GROUPING SETS ((), (f.method), (f.key), (f.method, f.key),
                                (f.route), (f.route, f.method, f.key),
                                (f.route, f.method), (f.route, f.key),
                                (f.path))) AS g
    WHERE g.level IS NOT NULL
    GROUP BY g.company_id, g.level, g.method, g.key, g.route, g.path, g.minute, g.status
    -- every batch takes its rollup rows' locks in key order: two batches
    -- never wait for each other in a cycle (a deadlock lost one of them)
    ORDER BY 1, 2, 3, 4, 5, 6, 7
    ON CONFLICT (company_id, level, method, api_key_id, route, minute, status)
    DO UPDATE SET requests = t.requests + excluded.requests,
                  latency_max = greatest(t.latency_max, excluded.latency_max),
                  latency_hist = ARRAY(
                      SELECT x.a + x.b
                      FROM unnest(t.latency_hist, excluded.latency_hist) AS x (a, b));

    RETURN NULL;
END
$f$;
$q$, '/*DENSE*/', (
        SELECT string_agg(format('coalesce(sum(g.n) FILTER (WHERE g.bucket = %s), 0)::integer', i),
                          ', ' ORDER BY i)
        FROM generate_series(1, cardinality(worksible_latency_bounds()) + 1) AS i));
END
$$;


-- worksible_request_logs_ingest() -> how many rows were logged: as in
--   0016_request_log_direct_copy.sql (the rows of the session's staging
--   table into request_logs, into request_logs_pending those whose UTC day
--   has no partition yet; never DDL), but counted in one statement: all
--   the rows go into request_logs_pending first (its trigger counts them,
--   in the rollup key's order), then those of days with a partition move
--   on into request_logs uncounted, as worksible_request_logs_prepare
--   moves them. 0016 counted the two parts in two statements, each in key
--   order but the second after the first: with a partition attached
--   between this function's look at the days and its inserts, a batch
--   holding the rows of both parts in one statement (the module's COPY)
--   took the same rollup rows in the other order, and one of the two was
--   aborted (deadlock detected, 40P01). Only the rows this call inserted
--   move (by their ctid: uncommitted, nobody else sees or locks them).
CREATE OR REPLACE FUNCTION worksible_request_logs_ingest() RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = public, pg_temp AS $$
DECLARE
    days     date[];
    ready    date[];
    moving   tid[];
    counted  text;
    n        integer;
BEGIN
    SELECT array_agg(DISTINCT (s.created_at AT TIME ZONE 'UTC')::date), count(*)
    INTO days, n
    FROM pg_temp.worksible_request_log_batch s;

    IF n = 0 THEN
        RETURN 0;
    END IF;

    ready := ARRAY(SELECT d FROM unnest(days) AS d
                   WHERE to_regclass(worksible_request_logs_partition(d)) IS NOT NULL);

    IF cardinality(ready) = cardinality(days) THEN
        INSERT INTO request_logs SELECT * FROM pg_temp.worksible_request_log_batch;
        RETURN n;
    END IF;

    WITH ins AS (
        INSERT INTO request_logs_pending
        SELECT * FROM pg_temp.worksible_request_log_batch
        RETURNING ctid, created_at)
    SELECT coalesce(array_agg(ins.ctid) FILTER (
               WHERE (ins.created_at AT TIME ZONE 'UTC')::date = ANY (ready)), '{}')
    INTO moving
    FROM ins;

    IF cardinality(moving) > 0 THEN
        counted := current_setting('worksible.request_log_counted', true);
        PERFORM set_config('worksible.request_log_counted', 'on', true);
        WITH moved AS (
            DELETE FROM request_logs_pending p
            WHERE p.ctid = ANY (moving)
            RETURNING p.*)
        INSERT INTO request_logs SELECT * FROM moved;
        PERFORM set_config('worksible.request_log_counted', coalesce(counted, ''), true);
    END IF;

    RETURN n;
END
$$;
