-- Request log ingest by COPY, partitions made ahead, rollups for every
-- filter of the stats (issues 16 and 18).
--
-- The module sends each batch as one simple query, one implicit
-- transaction (all of it commits or none):
--
--   SELECT worksible_request_logs_stage();
--   COPY pg_temp.worksible_request_log_batch FROM STDIN;   -- text format
--   SELECT worksible_request_logs_ingest();
--
-- The staging table is the session's own (TEMP, ON COMMIT DELETE ROWS: no
-- WAL, no index, emptied at commit); worksible_request_logs_ingest moves
-- its rows into the day partitions and adds them to the rollups, one
-- INSERT ... SELECT each. No DDL on this path: partitions are made ahead
-- (worksible_request_logs_prepare, which the workers run every hour and
-- the prune runs too); a row whose day has no partition yet waits in
-- request_logs_pending until prepare makes it (no default partition: it
-- would forbid DETACH PARTITION ... CONCURRENTLY, which the prune uses).
--
-- No primary key any more: a row is logged at most once because a batch
-- commits whole or not at all and the module never sends a batch twice
-- (one it cannot confirm is counted as dropped). The indexes left are the
-- query API's: (company_id, created_at, id), (company_id, status, ...),
-- (company_id, api_key_id, ...) for GET /v1/request_logs, and the path
-- index for its path filter and the stats' prefixes no rollup serves.

ALTER TABLE request_logs DROP CONSTRAINT request_logs_pkey;

-- The list's indexes, ascending now (a backward scan serves the list's
-- newest-first order the same): rows arrive in created_at order, and an
-- ascending index takes each at the right end of its company's range,
-- where a page split packs the left page full, instead of at the left
-- end, where splits leave pages half full (1.3 µs less CPU a row with
-- the four indexes, util/reqlog-bench.sh). On a large log this rebuild
-- holds inserts for its duration: batches wait, or are dropped past
-- query_timeout.
DROP INDEX request_logs_company_created;
CREATE INDEX request_logs_company_created ON request_logs (company_id, created_at, id);
DROP INDEX request_logs_company_status;
CREATE INDEX request_logs_company_status ON request_logs (company_id, status, created_at, id);
DROP INDEX request_logs_company_key;
CREATE INDEX request_logs_company_key ON request_logs (company_id, api_key_id, created_at, id);

-- Rows whose UTC day had no partition when they arrived; moved into it by
-- worksible_request_logs_prepare, deleted by the prune once past the
-- retention. Not readable by worksible_api (the API lists them once moved;
-- the stats count them at once).
CREATE TABLE request_logs_pending (LIKE request_logs INCLUDING DEFAULTS);
CREATE INDEX request_logs_pending_created ON request_logs_pending (created_at);

-- worksible_request_logs_stage() -> nothing: makes the session's staging
--   table pg_temp.worksible_request_log_batch if it has none (its columns
--   those of request_logs, in their order; ON COMMIT DELETE ROWS), which
--   the caller may INSERT into (COPY). Called by the module before each
--   COPY, in the same transaction. SECURITY DEFINER: the table belongs to
--   the owner, so worksible_request_logs_ingest reads it.
CREATE FUNCTION worksible_request_logs_stage() RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = public, pg_temp AS $$
BEGIN
    IF to_regclass('pg_temp.worksible_request_log_batch') IS NULL THEN
        CREATE TEMP TABLE worksible_request_log_batch
            (LIKE request_logs INCLUDING DEFAULTS) ON COMMIT DELETE ROWS;
        EXECUTE format('GRANT INSERT ON pg_temp.worksible_request_log_batch TO %I',
                       session_user);
    END IF;
END
$$;

-- worksible_request_log_route(path) -> the path's route for the rollups:
--   the path without its query, up to and including its third "/" (so
--   "/v1/freelancers/frl_1?x" -> "/v1/freelancers/", "/v1/payouts?x" ->
--   "/v1/payouts"), at most 200 characters. A prefix P of a path is
--   exactly a prefix of its route when P holds no "?", at most 200
--   characters and fewer than three "/" or a third as its last character
--   (worksible_request_log_route_exact).
-- (not STRICT: the planner inlines it into the rollup's statement)
CREATE FUNCTION worksible_request_log_route(p_path text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT left(coalesce(substring(p_path FROM '^(?:[^/?]*/){3}'),
                         split_part(p_path, '?', 1)), 200) COLLATE "C"
$$;

-- worksible_request_log_route_exact(prefix) -> true when the rows whose
--   path starts with prefix are exactly those whose route does (see
--   worksible_request_log_route).
CREATE FUNCTION worksible_request_log_route_exact(p_prefix text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
    SELECT strpos(p_prefix, '?') = 0 AND char_length(p_prefix) <= 200
           AND (length(p_prefix) - length(replace(p_prefix, '/', '')) < 3
                OR (length(p_prefix) - length(replace(p_prefix, '/', '')) = 3
                    AND right(p_prefix, 1) = '/'))
$$;

-- Rollups per route, and per method and key together (the levels 3 to 7
-- of request_log_minutes; 0 to 2 as in 0012_request_log_stats.sql):
--   3 method and key; 4 route; 5 route, method and key; 6 route and
--   method; 7 route and key. A column a level does not keep holds '*'
--   (api_key_id '' for requests without a key, as before).
ALTER TABLE request_log_minutes ADD COLUMN route text COLLATE "C" NOT NULL DEFAULT '*';
ALTER TABLE request_log_minutes DROP CONSTRAINT request_log_minutes_pkey;
ALTER TABLE request_log_minutes
    ADD PRIMARY KEY (company_id, level, method, api_key_id, route, minute, status);
CREATE TABLE request_log_minutes_method_key PARTITION OF request_log_minutes
    FOR VALUES IN (3);
CREATE TABLE request_log_minutes_route PARTITION OF request_log_minutes
    FOR VALUES IN (4);
CREATE TABLE request_log_minutes_route_method_key PARTITION OF request_log_minutes
    FOR VALUES IN (5);
CREATE TABLE request_log_minutes_route_method PARTITION OF request_log_minutes
    FOR VALUES IN (6);
CREATE TABLE request_log_minutes_route_key PARTITION OF request_log_minutes
    FOR VALUES IN (7);

-- worksible_request_log_rollup(levels) -> nothing: adds the rows of the
--   session's staging table (pg_temp.worksible_request_log_batch, see
--   worksible_request_logs_stage) to request_log_minutes at each of levels
--   (0..7), in one INSERT ... SELECT ... GROUP BY GROUPING SETS ... ON
--   CONFLICT DO UPDATE. Rows without a company are not counted.
-- (made by a DO block: the histogram, 43 sums, is written out once here;
-- no PL/pgSQL loop runs per rollup row)
DO $$
BEGIN
    EXECUTE replace($q$
CREATE FUNCTION worksible_request_log_rollup(p_levels integer[]
                                             DEFAULT '{0,1,2,3,4,5,6,7}')
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = public, pg_temp AS $f$
BEGIN
    -- the rows grouped by every column a level keeps (few groups for
    -- real traffic: one pass over the rows), then per level: its
    -- GROUPING() bits (method 4, key 2, route 1; 1 = not kept) name it
    INSERT INTO request_log_minutes AS t (company_id, level, method, api_key_id,
        route, minute, status, requests, latency_max, latency_hist)
    SELECT g.company_id, (ARRAY[5, 3, 6, 1, 7, 2, 4, 0])[g.gm + 1],
           coalesce(g.method, '*'), coalesce(g.key, '*'), coalesce(g.route, '*'),
           g.minute, g.status, sum(g.n), max(g.mx),
           ARRAY[/*DENSE*/]
    FROM (
        SELECT f.company_id, f.minute, f.status, f.bucket, f.method, f.key, f.route,
               GROUPING(f.method, f.key, f.route) AS gm,
               sum(f.n)::integer AS n, max(f.mx) AS mx
        FROM (
            SELECT s.company_id, s.method, coalesce(s.api_key_id, '') AS key,
                   worksible_request_log_route(s.path) AS route,
                   date_bin('1 minute', s.created_at,
                            timestamptz '2000-01-01 00:00Z') AS minute,
                   s.status,
                   width_bucket(s.latency_ms, worksible_latency_bounds()) + 1 AS bucket,
                   count(*)::integer AS n, max(s.latency_ms) AS mx
            FROM pg_temp.worksible_request_log_batch s
            WHERE s.company_id IS NOT NULL
            GROUP BY 1, 2, 3, 4, 5, 6, 7) AS f
        GROUP BY f.company_id, f.minute, f.status, f.bucket,
                 GROUPING SETS ((), (f.method), (f.key), (f.method, f.key),
                                (f.route), (f.route, f.method, f.key),
                                (f.route, f.method), (f.route, f.key))) AS g
    WHERE (ARRAY[5, 3, 6, 1, 7, 2, 4, 0])[g.gm + 1] = ANY (p_levels)
    GROUP BY g.company_id, g.gm, g.method, g.key, g.route, g.minute, g.status
    ON CONFLICT (company_id, level, method, api_key_id, route, minute, status)
    DO UPDATE SET requests = t.requests + excluded.requests,
                  latency_max = greatest(t.latency_max, excluded.latency_max),
                  latency_hist = ARRAY(
                      SELECT x.a + x.b
                      FROM unnest(t.latency_hist, excluded.latency_hist) AS x (a, b));
END
$f$;
$q$, '/*DENSE*/', (
        SELECT string_agg(format('coalesce(sum(g.n) FILTER (WHERE g.bucket = %s), 0)::integer', i),
                          ', ' ORDER BY i)
        FROM generate_series(1, cardinality(worksible_latency_bounds()) + 1) AS i));
END
$$;

-- worksible_request_logs_ingest() -> how many rows were logged: moves the
--   rows of the session's staging table into request_logs (into
--   request_logs_pending those whose UTC day has no partition yet) and
--   adds them to the rollups (worksible_request_log_rollup), in the
--   caller's transaction. Never DDL. The module calls it right after its
--   COPY; SECURITY DEFINER: nginx (worksible_api) has no INSERT on the log.
CREATE FUNCTION worksible_request_logs_ingest() RETURNS integer
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

    IF cardinality(days) = 1 AND cardinality(ready) = 1 THEN
        -- one day (nearly always): into its partition, no routing per row
        EXECUTE format('INSERT INTO %I SELECT * FROM pg_temp.worksible_request_log_batch',
                       worksible_request_logs_partition(days[1]));
    ELSIF cardinality(ready) = cardinality(days) THEN
        INSERT INTO request_logs SELECT * FROM pg_temp.worksible_request_log_batch;
    ELSE
        INSERT INTO request_logs
        SELECT * FROM pg_temp.worksible_request_log_batch s
        WHERE (s.created_at AT TIME ZONE 'UTC')::date = ANY (ready);
        INSERT INTO request_logs_pending
        SELECT * FROM pg_temp.worksible_request_log_batch s
        WHERE NOT (s.created_at AT TIME ZONE 'UTC')::date = ANY (ready);
    END IF;

    PERFORM worksible_request_log_rollup();

    RETURN n;
END
$$;

-- worksible_request_logs_prepare(days_ahead) -> the names of the
--   partitions made: today's (UTC) and the next days_ahead days' (0 to 31,
--   default 2), and those of the days waiting in request_logs_pending,
--   whose rows it moves in. Each is made as a table of its own, then
--   attached (ATTACH PARTITION: the log's inserts go on meanwhile). Under
--   the transaction advisory lock "wksbrlog" (the prune takes it too). The
--   workers run it every hour, `worksible logs prune` each time; errors:
--   22023 for days_ahead out of range. The move of waiting rows sets
--   worksible.request_log_counted to 'on' for its statement only: they
--   were counted when they entered request_logs_pending, and the rollup
--   trigger of 0016_request_log_direct_copy.sql must not count them again.
CREATE FUNCTION worksible_request_logs_prepare(p_days_ahead integer DEFAULT 2)
RETURNS SETOF text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = public, pg_temp AS $$
DECLARE
    today    constant date := (now() AT TIME ZONE 'UTC')::date;
    d        date;
    part     text;
    counted  text;
BEGIN
    IF p_days_ahead IS NULL OR p_days_ahead NOT BETWEEN 0 AND 31 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'days_ahead must be 0 to 31';
    END IF;

    -- nothing to do: no lock taken (every hour, every worker)
    IF NOT EXISTS (SELECT 1 FROM request_logs_pending)
       AND NOT EXISTS (SELECT 1 FROM generate_series(0, p_days_ahead) AS i
                       WHERE to_regclass(worksible_request_logs_partition(today + i)) IS NULL)
    THEN
        RETURN;
    END IF;

    PERFORM pg_advisory_xact_lock(8605098379685162855);  -- "wksbrlog"

    FOR d IN
        SELECT today + i FROM generate_series(0, p_days_ahead) AS i
        UNION
        SELECT DISTINCT (created_at AT TIME ZONE 'UTC')::date FROM request_logs_pending
        ORDER BY 1
    LOOP
        part := worksible_request_logs_partition(d);
        IF to_regclass(part) IS NULL THEN
            EXECUTE format('CREATE TABLE %I (LIKE request_logs INCLUDING DEFAULTS)', part);
            EXECUTE format('ALTER TABLE request_logs ATTACH PARTITION %I
                            FOR VALUES FROM (%L) TO (%L)', part,
                           to_char(d, 'YYYY-MM-DD') || ' 00:00:00+00',
                           to_char(d + 1, 'YYYY-MM-DD') || ' 00:00:00+00');
            RETURN NEXT part;
        END IF;
        counted := current_setting('worksible.request_log_counted', true);
        PERFORM set_config('worksible.request_log_counted', 'on', true);
        WITH moved AS (
            DELETE FROM request_logs_pending p
            WHERE p.created_at >= d::timestamp AT TIME ZONE 'UTC'
              AND p.created_at < (d + 1)::timestamp AT TIME ZONE 'UTC'
            RETURNING p.*)
        INSERT INTO request_logs SELECT * FROM moved;
        PERFORM set_config('worksible.request_log_counted', coalesce(counted, ''), true);
    END LOOP;
END
$$;

-- worksible_request_logs_prunable(older_than) -> (name, pending): the
--   attached partitions worksible_request_logs_prune(older_than) would
--   drop, in day order, pending when a concurrent detach of it was
--   interrupted. `worksible logs prune` detaches each first with ALTER
--   TABLE request_logs DETACH PARTITION ... CONCURRENTLY (FINALIZE when
--   pending: PostgreSQL allows one pending detach at a time), a statement
--   of its own, outside any transaction (it cannot run in a function), so
--   the log's readers and writers never wait for the drop. Owner only;
--   22023 for a negative older_than.
CREATE FUNCTION worksible_request_logs_prunable(p_older_than interval)
RETURNS TABLE (name text, pending boolean)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = public, pg_temp AS $$
BEGIN
    IF p_older_than IS NULL OR p_older_than < interval '0' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'older_than must be a positive interval';
    END IF;

    RETURN QUERY
        SELECT c.relname::text, i.inhdetachpending
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'request_logs'::regclass
          AND c.relname ~ '^request_logs_p[0-9]{8}$'
          AND (to_date(substr(c.relname, 15), 'YYYYMMDD') + 1)::timestamp
              AT TIME ZONE 'UTC' <= now() - p_older_than
        ORDER BY NOT i.inhdetachpending, c.relname;
END
$$;

-- worksible_request_logs_prune(older_than) -> the names of the dropped
--   tables, in day order: every day partition request_logs_pYYYYMMDD
--   whose whole UTC day ends at or before now() - older_than, attached or
--   already detached (by `worksible logs prune`, see
--   worksible_request_logs_prunable); the rollups and the pending rows of
--   those days go too. older_than must not be negative (else 22023).
--   Owner only, under the advisory lock "wksbrlog". An attached partition
--   is dropped as is (DROP TABLE locks the log meanwhile).
CREATE OR REPLACE FUNCTION worksible_request_logs_prune(p_older_than interval)
RETURNS SETOF text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = public, pg_temp AS $$
DECLARE
    part  text;
    cut   timestamptz;
BEGIN
    IF p_older_than IS NULL OR p_older_than < interval '0' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'older_than must be a positive interval';
    END IF;

    PERFORM pg_advisory_xact_lock(8605098379685162855);  -- "wksbrlog"

    -- the start of the first day kept
    cut := ((now() - p_older_than) AT TIME ZONE 'UTC')::date::timestamp
           AT TIME ZONE 'UTC';

    FOR part IN
        SELECT c.relname
        FROM pg_class c
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'
          AND c.relname ~ '^request_logs_p[0-9]{8}$'
          AND (to_date(substr(c.relname, 15), 'YYYYMMDD') + 1)::timestamp
              AT TIME ZONE 'UTC' <= now() - p_older_than
        ORDER BY c.relname
    LOOP
        EXECUTE format('DROP TABLE %I', part);
        RETURN NEXT part;
    END LOOP;

    DELETE FROM request_log_minutes WHERE minute < cut;
    DELETE FROM request_logs_pending WHERE created_at < cut;
END
$$;

-- worksible_request_logs_insert(rows) -> how many rows were logged: the
--   JSON form of the ingest (rows as in 0007_request_logs.sql), for
--   scripts and tests; the module uses COPY. A row already logged (same
--   company, created_at and id) or twice in rows counts once. Makes the
--   partitions of the rows' days first (worksible_request_logs_prepare's
--   way), which the module's path never does.
CREATE OR REPLACE FUNCTION worksible_request_logs_insert(p_rows json) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = public, pg_temp AS $$
DECLARE
    d     date;
    part  text;
    n     integer;
BEGIN
    IF p_rows IS NULL OR json_typeof(p_rows) <> 'array' THEN
        RAISE EXCEPTION USING ERRCODE = 'WS400',
            MESSAGE = 'request log rows must be a JSON array', DETAIL = 'rows';
    END IF;

    PERFORM worksible_request_logs_stage();
    DELETE FROM pg_temp.worksible_request_log_batch;

    INSERT INTO pg_temp.worksible_request_log_batch
    SELECT DISTINCT ON (r.created_at, r.id)
           r.id, r.company_id, r.api_key_id, r.method, r.path, r.status,
           r.latency_ms, r.ip::inet, r.user_agent, r.idempotency_key,
           coalesce(r.replayed, false), r.ratelimit_remaining, r.created_at
    FROM json_to_recordset(p_rows) AS r (
        id text, company_id text, api_key_id text, method text, path text,
        status smallint, latency_ms integer, ip text, user_agent text,
        idempotency_key text, replayed boolean, ratelimit_remaining integer,
        created_at timestamptz)
    WHERE NOT EXISTS (SELECT 1 FROM request_logs l
                      WHERE l.company_id = r.company_id
                        AND l.created_at = r.created_at AND l.id = r.id)
      AND NOT EXISTS (SELECT 1 FROM request_logs l
                      WHERE r.company_id IS NULL AND l.company_id IS NULL
                        AND l.created_at = r.created_at AND l.id = r.id)
      AND NOT EXISTS (SELECT 1 FROM request_logs_pending l
                      WHERE l.created_at = r.created_at AND l.id = r.id);

    FOR d IN
        SELECT DISTINCT (s.created_at AT TIME ZONE 'UTC')::date
        FROM pg_temp.worksible_request_log_batch s
    LOOP
        part := worksible_request_logs_partition(d);
        CONTINUE WHEN to_regclass(part) IS NOT NULL;
        PERFORM pg_advisory_xact_lock(8605098379685162855);  -- "wksbrlog"
        CONTINUE WHEN to_regclass(part) IS NOT NULL;
        EXECUTE format('CREATE TABLE %I (LIKE request_logs INCLUDING DEFAULTS)', part);
        EXECUTE format('ALTER TABLE request_logs ATTACH PARTITION %I
                        FOR VALUES FROM (%L) TO (%L)', part,
                       to_char(d, 'YYYY-MM-DD') || ' 00:00:00+00',
                       to_char(d + 1, 'YYYY-MM-DD') || ' 00:00:00+00');
    END LOOP;

    n := worksible_request_logs_ingest();
    DELETE FROM pg_temp.worksible_request_log_batch;
    RETURN n;
END
$$;

-- the levels 3..7 of the rows logged before this migration, an hour at a
-- time through the staging table
DO $$
DECLARE
    h timestamptz;
BEGIN
    PERFORM worksible_request_logs_stage();
    FOR h IN
        SELECT DISTINCT date_bin('1 hour', created_at, timestamptz '2000-01-01 00:00Z')
        FROM request_logs ORDER BY 1
    LOOP
        DELETE FROM pg_temp.worksible_request_log_batch;
        INSERT INTO pg_temp.worksible_request_log_batch
        SELECT * FROM request_logs l
        WHERE l.created_at >= h AND l.created_at < h + interval '1 hour';
        PERFORM worksible_request_log_rollup('{3,4,5,6,7}');
    END LOOP;
    DELETE FROM pg_temp.worksible_request_log_batch;
END
$$;

-- today's partition and the next two days'
SELECT count(*) FROM worksible_request_logs_prepare(2);

REVOKE ALL ON FUNCTION worksible_request_logs_stage(),
                       worksible_request_log_route(text),
                       worksible_request_log_route_exact(text),
                       worksible_request_log_rollup(integer[]),
                       worksible_request_logs_ingest(),
                       worksible_request_logs_prepare(integer),
                       worksible_request_logs_prunable(interval)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION worksible_request_logs_stage(),
                          worksible_request_logs_ingest(),
                          worksible_request_logs_prepare(integer),
                          worksible_request_log_route_exact(text)
    TO worksible_api;

-- The statistics read these levels from 0015_request_log_path_rollups.sql
-- on (worksible_request_log_stats): every filter through the rollups but a
-- path prefix no route or path serves.
