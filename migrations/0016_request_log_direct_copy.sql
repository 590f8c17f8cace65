-- The request log's batches COPY straight into request_logs (issue 16):
-- no staging table, the rollups fed by a statement trigger from the
-- statement's transition table (15.2 -> 11.0 µs of PostgreSQL CPU a row
-- against 0014's staging path on single-path traffic, 63.4 -> 59.0 on
-- mixed traffic: util/reqlog-bench.sh, README "The request log's ingest").
--
-- The module sends each batch as one simple query, one implicit
-- transaction (all of it commits or none):
--
--   SET LOCAL ROLE worksible_log_writer;
--   COPY request_logs (id, ..., created_at) FROM STDIN;   -- text format
--
-- PostgreSQL refuses COPY FROM into a table with row-level security
-- ("COPY FROM not supported with row-level security") unless the role
-- bypasses it, and request_logs has FORCE ROW LEVEL SECURITY for
-- worksible_api's reads. So the COPY runs as worksible_log_writer: NOLOGIN,
-- BYPASSRLS, granted INSERT on request_logs and nothing else (no SELECT:
-- it reads no row, its own included; no UPDATE, no DELETE), of which
-- worksible_api is a member (NOINHERIT: worksible_api itself still only
-- reads its company's rows). Only a superuser can make a BYPASSRLS role,
-- so the operator makes it before migrating, like the other two (README
-- "The database"; util/stack.sh); this migration stops without it:
--
--   CREATE ROLE worksible_log_writer NOLOGIN BYPASSRLS;
--   GRANT worksible_log_writer TO worksible_api;
--
-- A batch holding a row whose UTC day has no partition is refused whole
-- (23514, "no partition of relation ... found for row") and rolled back;
-- the module sends the same rows once more through 0014's staging path
-- (worksible_request_logs_stage, COPY, worksible_request_logs_ingest),
-- which puts them in request_logs_pending.
--
-- Counting: every INSERT or COPY into request_logs (through the parent:
-- statement triggers of a partitioned table do not fire for a statement
-- aimed at a partition) or into request_logs_pending adds its rows to
-- request_log_minutes, once, in the same statement
-- (worksible_request_log_count); nothing else does. The move of waiting
-- rows into their partition (worksible_request_logs_prepare) sets
-- worksible.request_log_counted = 'on' around it: they were counted when
-- they entered request_logs_pending.

DO $$
BEGIN
    IF to_regrole('worksible_log_writer') IS NULL
       OR NOT (SELECT rolbypassrls FROM pg_roles WHERE rolname = 'worksible_log_writer')
       OR NOT pg_has_role('worksible_api', 'worksible_log_writer', 'MEMBER')
    THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = 'the role worksible_log_writer (BYPASSRLS, granted to worksible_api) is missing',
            HINT = 'as a superuser: CREATE ROLE worksible_log_writer NOLOGIN BYPASSRLS; '
                   'GRANT worksible_log_writer TO worksible_api;';
    END IF;
END
$$;

GRANT INSERT ON request_logs TO worksible_log_writer;

-- worksible_request_log_count() -> NULL: the AFTER INSERT ... FOR EACH
--   STATEMENT trigger of request_logs and request_logs_pending. Adds the
--   statement's rows (its transition table new_rows) to request_log_minutes
--   at every level, 0 to 8 (0012_request_log_stats.sql,
--   0014_request_log_ingest.sql, 0015_request_log_path_rollups.sql), in one
--   INSERT ... SELECT ... GROUP BY GROUPING SETS ... ON CONFLICT DO UPDATE.
--   Rows without a company are not counted. Counts nothing while the
--   transaction-local setting worksible.request_log_counted is 'on' (set by
--   worksible_request_logs_prepare around its move of rows already counted;
--   a session that sets it only leaves its own rows uncounted). SECURITY
--   DEFINER: the writers (worksible_log_writer) have no right on the
--   rollups. The transition table is visible in this function only, so the
--   statement is written here, not in a function it calls.
-- (made by a DO block: the histogram, 43 sums, is written out once here;
-- no PL/pgSQL loop runs per rollup row)
DO $$
BEGIN
    EXECUTE replace($q$
CREATE FUNCTION worksible_request_log_count() RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = public, pg_temp AS $f$
BEGIN
    IF current_setting('worksible.request_log_counted', true) = 'on' THEN
        RETURN NULL;
    END IF;

    -- the rows grouped by every column a level keeps (few groups for
    -- real traffic: one pass over the rows), then per level: its
    -- GROUPING() bits (method 8, key 4, route 2, path 1; 1 = not kept)
    -- name it, through the array (NULL: no grouping set has those bits)
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
            SELECT s.company_id, s.method, coalesce(s.api_key_id, '') AS key,
                   worksible_request_log_route(s.path) AS route,
                   worksible_request_log_path_key(s.path) AS path,
                   date_bin('1 minute', s.created_at,
                            timestamptz '2000-01-01 00:00Z') AS minute,
                   s.status,
                   width_bucket(s.latency_ms, worksible_latency_bounds()) + 1 AS bucket,
                   count(*)::integer AS n, max(s.latency_ms) AS mx
            FROM new_rows s
            WHERE s.company_id IS NOT NULL
            GROUP BY 1, 2, 3, 4, 5, 6, 7, 8) AS f
        GROUP BY f.company_id, f.minute, f.status, f.bucket,
                 GROUPING SETS ((), (f.method), (f.key), (f.method, f.key),
                                (f.route), (f.route, f.method, f.key),
                                (f.route, f.method), (f.route, f.key),
                                (f.path))) AS g
    WHERE g.level IS NOT NULL
    GROUP BY g.company_id, g.level, g.method, g.key, g.route, g.path, g.minute, g.status
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

CREATE TRIGGER request_logs_count AFTER INSERT ON request_logs
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION worksible_request_log_count();
CREATE TRIGGER request_logs_pending_count AFTER INSERT ON request_logs_pending
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION worksible_request_log_count();

-- the trigger is the one rollup path now
DROP FUNCTION worksible_request_log_rollup(integer[]);

-- worksible_request_logs_ingest() -> how many rows were logged: as in
--   0014_request_log_ingest.sql (the rows of the session's staging table
--   into request_logs, into request_logs_pending those whose UTC day has no
--   partition yet; never DDL), always through the parent, whose trigger
--   counts them (worksible_request_log_count), as request_logs_pending's
--   does. The module's fallback for a batch its COPY into request_logs
--   could not route; worksible_request_logs_insert's way in.
CREATE OR REPLACE FUNCTION worksible_request_logs_ingest() RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = public, pg_temp AS $$
DECLARE
    days   date[];
    ready  date[];
    n      integer;
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
    ELSE
        IF cardinality(ready) > 0 THEN
            INSERT INTO request_logs
            SELECT * FROM pg_temp.worksible_request_log_batch s
            WHERE (s.created_at AT TIME ZONE 'UTC')::date = ANY (ready);
        END IF;
        INSERT INTO request_logs_pending
        SELECT * FROM pg_temp.worksible_request_log_batch s
        WHERE NOT (s.created_at AT TIME ZONE 'UTC')::date = ANY (ready);
    END IF;

    RETURN n;
END
$$;

REVOKE ALL ON FUNCTION worksible_request_log_count() FROM PUBLIC;
