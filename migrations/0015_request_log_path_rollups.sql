-- A rollup level per path (issue 18): a path prefix deeper than a route
-- (a "/" after the third, e.g. /v1/projects/prj_1) read the log's rows,
-- in time proportional to the rows that match (1.2 ms per 1,000; 250 ms
-- for a fifth of a million-row day under one path).
--
-- Level 8 of request_log_minutes keeps the path alone, the whole path in
-- the column route: its path without the query, at most 200 characters
-- (worksible_request_log_path_key). A prefix with no "?" and at most 200
-- characters starts a path exactly when it starts its key
-- (worksible_request_log_path_exact), so level 8 can serve a deep prefix
-- when no method or key filter comes with it. It does when its paths take
-- two requests a row or more (a hot path); under a prefix over many paths
-- of a request or two each its rows are nearly as many as the log's, and
-- slower to read, so the stats read the log's rows. So do a deep prefix
-- with a method or key, and a prefix with a "?".
--
-- Why one level and not four like the routes': for traffic whose paths
-- hold ids, every level per path adds about a rollup row per request. The
-- four (path; and method, key, both) took util/reqlog-bench.sh's mixed
-- traffic from 55 to 101 µs of PostgreSQL CPU a row; level 8 alone is
-- the one the dashboard's path filter needs (README "The dashboard").

CREATE TABLE request_log_minutes_path PARTITION OF request_log_minutes
    FOR VALUES IN (8);

-- worksible_request_log_path_key(path) -> the path's key for the path
--   levels: the path without its query, at most 200 characters
--   ("/v1/invoices/inv_2?x=1" -> "/v1/invoices/inv_2").
-- (not STRICT: the planner inlines it into the rollup's statement)
CREATE FUNCTION worksible_request_log_path_key(p_path text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT left(split_part(p_path, '?', 1), 200) COLLATE "C"
$$;

-- worksible_request_log_path_exact(prefix) -> true when the rows whose
--   path starts with prefix are exactly those whose path key does: prefix
--   holds no "?" and at most 200 characters.
CREATE FUNCTION worksible_request_log_path_exact(p_prefix text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
    SELECT strpos(p_prefix, '?') = 0 AND char_length(p_prefix) <= 200
$$;

-- worksible_request_log_prefix_qual(column, prefix, pattern) -> SQL text
--   " AND column >= 'prefix' AND starts_with(column, 'prefix') AND column
--   < 'next'", where next is prefix with its last character incremented
--   (left out when that character is U+D7FF or U+10FFFF: no next one in
--   UTF-8): a range of a btree index, checked again by starts_with. With
--   pattern, the operators ~>=~ and ~<~ (an index with text_pattern_ops);
--   without, >= and < (a COLLATE "C" column). The operators are leakproof,
--   so row-level security lets the range reach an index scan (LIKE would
--   not). prefix must not be empty.
CREATE FUNCTION worksible_request_log_prefix_qual(p_column text, p_prefix text,
                                                  p_pattern boolean)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT format(' AND %1$s %2$s %3$L AND starts_with(%1$s, %3$L)', p_column,
                  CASE WHEN p_pattern THEN '~>=~' ELSE '>=' END, p_prefix)
           || CASE WHEN c.code < 55295 OR c.code BETWEEN 57344 AND 1114110
                   THEN format(' AND %s %s %L', p_column,
                               CASE WHEN p_pattern THEN '~<~' ELSE '<' END,
                               left(p_prefix, -1) || chr(c.code + 1))
                   ELSE '' END
    FROM (SELECT ascii(right(p_prefix, 1)) AS code) AS c
$$;

-- worksible_request_log_rollup(levels) -> nothing: adds the rows of the
--   session's staging table (pg_temp.worksible_request_log_batch, see
--   worksible_request_logs_stage) to request_log_minutes at each of levels
--   (0..8), in one INSERT ... SELECT ... GROUP BY GROUPING SETS ... ON
--   CONFLICT DO UPDATE. Rows without a company are not counted.
-- (made by a DO block: the histogram, 43 sums, is written out once here;
-- no PL/pgSQL loop runs per rollup row)
DO $$
BEGIN
    EXECUTE replace($q$
CREATE OR REPLACE FUNCTION worksible_request_log_rollup(p_levels integer[]
                                   DEFAULT '{0,1,2,3,4,5,6,7,8}')
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = public, pg_temp AS $f$
BEGIN
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
            FROM pg_temp.worksible_request_log_batch s
            WHERE s.company_id IS NOT NULL
            GROUP BY 1, 2, 3, 4, 5, 6, 7, 8) AS f
        GROUP BY f.company_id, f.minute, f.status, f.bucket,
                 GROUPING SETS ((), (f.method), (f.key), (f.method, f.key),
                                (f.route), (f.route, f.method, f.key),
                                (f.route, f.method), (f.route, f.key),
                                (f.path))) AS g
    WHERE g.level = ANY (p_levels)
    GROUP BY g.company_id, g.level, g.method, g.key, g.route, g.path, g.minute, g.status
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

-- the path levels of the rows logged before this migration (those waiting
-- for their partition included), an hour at a time through the staging
-- table
DO $$
DECLARE
    h timestamptz;
BEGIN
    PERFORM worksible_request_logs_stage();
    FOR h IN
        SELECT DISTINCT date_bin('1 hour', created_at, timestamptz '2000-01-01 00:00Z')
        FROM (SELECT created_at FROM request_logs
              UNION ALL SELECT created_at FROM request_logs_pending) AS l
        ORDER BY 1
    LOOP
        DELETE FROM pg_temp.worksible_request_log_batch;
        INSERT INTO pg_temp.worksible_request_log_batch
        SELECT * FROM request_logs l
        WHERE l.created_at >= h AND l.created_at < h + interval '1 hour'
        UNION ALL
        SELECT * FROM request_logs_pending l
        WHERE l.created_at >= h AND l.created_at < h + interval '1 hour';
        PERFORM worksible_request_log_rollup('{8}');
    END LOOP;
    DELETE FROM pg_temp.worksible_request_log_batch;
END
$$;

-- The rows waiting for their day's partition: the stats read them beside
-- the log's when a filter reads the rows, under the log's policy (the API
-- still lists them only once moved in).
ALTER TABLE request_logs_pending ENABLE ROW LEVEL SECURITY;
ALTER TABLE request_logs_pending FORCE ROW LEVEL SECURITY;
CREATE POLICY company_isolation ON request_logs_pending
    USING (company_id = current_setting('worksible.company_id', true));
GRANT SELECT ON request_logs_pending TO worksible_api;

REVOKE ALL ON FUNCTION worksible_request_log_path_key(text),
                       worksible_request_log_path_exact(text),
                       worksible_request_log_prefix_qual(text, text, boolean)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION worksible_request_log_path_exact(text),
                          worksible_request_log_prefix_qual(text, text, boolean)
    TO worksible_api;

-- worksible_request_log_stats(company, url, filters): as in
--   0012_request_log_stats.sql, but every filter reads the rollups of
--   0014_request_log_ingest.sql and this file (levels 0 to 8), a path
--   prefix through the route levels when worksible_request_log_route_exact
--   says they serve it, through level 8 when
--   worksible_request_log_path_exact does, no method or api_key_id comes
--   with it, and the level's first 1,000 rows under it hold two requests a
--   row or more. Any other path prefix reads the raw rows (and those
--   waiting in request_logs_pending), through the path index.
CREATE OR REPLACE FUNCTION worksible_request_log_stats(p_company_id text, p_url text,
                                            p_filters jsonb DEFAULT '{}')
RETURNS json
LANGUAGE plpgsql SECURITY INVOKER AS $$
DECLARE
    epoch   constant timestamptz := timestamptz '2000-01-01 00:00Z';
    nb      constant integer := cardinality(worksible_latency_bounds()) + 1;
    ivl     text := coalesce(p_filters->>'interval', '1h');
    step    interval;
    gte     timestamptz;
    lt      timestamptz;
    first   timestamptz;
    filter  text := '';
    rfilter text;
    deep    boolean;
    use_rows boolean;
    per_row numeric;
    source  text;
    quants  text;
    result  json;
BEGIN
    PERFORM set_config('worksible.company_id', coalesce(p_company_id, ''), true);
    -- a filter given as JSON null is no filter
    p_filters := jsonb_strip_nulls(coalesce(p_filters, '{}'));

    step := CASE ivl WHEN '1m' THEN interval '1 minute'
                     WHEN '1h' THEN interval '1 hour'
                     WHEN '1d' THEN interval '1 day' END;
    IF step IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'WS400',
            MESSAGE = 'interval must be 1m, 1h or 1d', DETAIL = 'interval';
    END IF;

    BEGIN
        lt := coalesce((p_filters->>'created_at[lt]')::timestamptz, now());
        gte := coalesce((p_filters->>'created_at[gte]')::timestamptz,
                        lt - interval '24 hours');
    EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format
                OR invalid_time_zone_displacement_value THEN
        RAISE EXCEPTION USING ERRCODE = 'WS400',
            MESSAGE = 'This is not a time', DETAIL = 'created_at';
    END;

    -- no request is logged before 1970, and buckets must stay RFC 3339
    IF gte < timestamptz '1970-01-01 00:00Z'
       OR lt < timestamptz '1970-01-01 00:00Z'
    THEN
        RAISE EXCEPTION USING ERRCODE = 'WS400',
            MESSAGE = 'Times start at 1970-01-01T00:00:00Z',
            DETAIL = CASE WHEN p_filters ? 'created_at[gte]'
                               AND gte < timestamptz '1970-01-01 00:00Z'
                          THEN 'created_at[gte]' ELSE 'created_at[lt]' END;
    END IF;
    IF lt > timestamptz '9999-01-01 00:00:00+00' THEN
        RAISE EXCEPTION USING ERRCODE = 'WS400',
            MESSAGE = 'Times end at 9999-01-01T00:00:00Z',
            DETAIL = 'created_at[lt]';
    END IF;

    gte := date_bin('1 minute', gte, epoch);
    IF date_bin('1 minute', lt, epoch) < lt THEN
        lt := date_bin('1 minute', lt, epoch) + interval '1 minute';
    END IF;
    IF gte >= lt THEN
        RAISE EXCEPTION USING ERRCODE = 'WS400',
            MESSAGE = 'created_at[gte] must be before created_at[lt]',
            DETAIL = 'created_at[gte]';
    END IF;

    first := date_bin(step, gte, epoch);
    IF extract(epoch FROM lt - first) / extract(epoch FROM step) > 1500 THEN
        RAISE EXCEPTION USING ERRCODE = 'WS400',
            MESSAGE = 'At most 1500 buckets: choose a longer interval or a shorter range',
            DETAIL = 'interval';
    END IF;

    IF p_filters ? 'status' THEN
        filter := filter || format(' AND t.status = %s',
                                   (p_filters->>'status')::smallint);
    END IF;
    IF p_filters ? 'status[class]' THEN
        filter := filter || format(' AND t.status BETWEEN %s AND %s',
            (p_filters->>'status[class]')::integer * 100,
            (p_filters->>'status[class]')::integer * 100 + 99);
    END IF;

    -- a prefix deeper than a route reads level 8 (the path alone) or the
    -- rows; any other filter a route level, or a level without paths
    deep := p_filters ? 'path[prefix]'
            AND NOT worksible_request_log_route_exact(p_filters->>'path[prefix]');
    use_rows := deep
        AND NOT (worksible_request_log_path_exact(p_filters->>'path[prefix]')
                 AND NOT p_filters ? 'method' AND NOT p_filters ? 'api_key_id');

    IF deep THEN
        rfilter := filter;
        IF p_filters ? 'method' THEN
            rfilter := rfilter || format(' AND t.method = %L', p_filters->>'method');
        END IF;
        IF p_filters ? 'api_key_id' THEN
            rfilter := rfilter || format(' AND t.api_key_id = %L',
                                         p_filters->>'api_key_id');
        END IF;
        -- a range of the path index (text_pattern_ops)
        rfilter := rfilter || worksible_request_log_prefix_qual('t.path',
                                  p_filters->>'path[prefix]', true);
        rfilter := 't.company_id = $1 AND t.created_at >= $2 AND t.created_at < $3'
                   || rfilter;
    END IF;

    IF NOT use_rows THEN
        -- a route or path prefix: a range of the primary key (route is
        -- COLLATE "C", so byte order)
        IF p_filters ? 'path[prefix]' AND p_filters->>'path[prefix]' <> '' THEN
            filter := filter || worksible_request_log_prefix_qual('t.route',
                                    p_filters->>'path[prefix]', false);
        ELSIF NOT p_filters ? 'path[prefix]' THEN
            filter := filter || ' AND t.route = ''*''';
        END IF;
        filter := format('t.company_id = $1 AND t.level = %s AND t.method = %L
              AND t.api_key_id = %L AND t.minute >= $2 AND t.minute < $3',
            CASE WHEN deep THEN 8
                 WHEN p_filters ? 'path[prefix]' THEN
                     CASE WHEN p_filters ? 'method' AND p_filters ? 'api_key_id' THEN 5
                          WHEN p_filters ? 'method' THEN 6
                          WHEN p_filters ? 'api_key_id' THEN 7 ELSE 4 END
                 WHEN p_filters ? 'method' AND p_filters ? 'api_key_id' THEN 3
                 WHEN p_filters ? 'method' THEN 1
                 WHEN p_filters ? 'api_key_id' THEN 2 ELSE 0 END,
            coalesce(p_filters->>'method', '*'),
            coalesce(p_filters->>'api_key_id', '*')) || filter;

        -- level 8 keeps a row per minute, status and path, read about
        -- twice as slowly as a log row (its histogram): under a prefix
        -- over many paths that each take few requests it holds nearly as
        -- many rows as the log. Its first 1,000 rows under the prefix
        -- choose: two requests a row or more, level 8; fewer, the rows.
        IF deep THEN
            EXECUTE 'SELECT avg(x.requests) FROM (SELECT t.requests
                     FROM request_log_minutes t WHERE ' || filter || '
                     LIMIT 1000) AS x' INTO per_row USING p_company_id, gte, lt;
            use_rows := coalesce(per_row, 0) < 2;
        END IF;
    END IF;

    IF use_rows THEN
        -- the log's rows and those waiting for their partition (the
        -- rollups count those at once too), grouped per bucket, status
        -- and latency bucket (a hash, no sort)
        source := format($q$
            SELECT date_bin(%1$L, t.created_at, %2$L) AS start, t.status,
                   width_bucket(t.latency_ms, %3$L::integer[]) + 1 AS bucket,
                   count(*) AS requests, max(t.latency_ms) AS latency_max
            FROM (SELECT t.created_at, t.status, t.latency_ms
                  FROM request_logs t WHERE %4$s
                  UNION ALL
                  SELECT t.created_at, t.status, t.latency_ms
                  FROM request_logs_pending t WHERE %4$s) AS t
            GROUP BY 1, 2, 3$q$, step, epoch, worksible_latency_bounds(), rfilter);
        SELECT 'worksible_latency_quantiles(ARRAY['
               || string_agg(format('sum(requests) FILTER (WHERE bucket = %s)', i),
                             ', ' ORDER BY i)
               || ']::bigint[], max(latency_max)) AS q'
        INTO quants FROM generate_series(1, nb) AS i;
    ELSE
        source := format($q$
            SELECT date_bin(%1$L, t.minute, %2$L) AS start, t.status,
                   t.requests, t.latency_max, t.latency_hist AS latency
            FROM request_log_minutes t
            WHERE %3$s$q$, step, epoch, filter);
        SELECT 'worksible_latency_quantiles(ARRAY['
               || string_agg(format('sum(latency[%s])', i), ', ' ORDER BY i)
               || ']::bigint[], max(latency_max)) AS q'
        INTO quants FROM generate_series(1, nb) AS i;
    END IF;

    -- $1 company, $2 start, $3 end, $4 first bucket, $5 step, $6 url,
    -- $7 interval
    EXECUTE format($q$
        WITH s AS (
            SELECT start,
                   sum(requests) AS requests,
                   sum(requests) FILTER (WHERE status BETWEEN 100 AND 199) AS c1,
                   sum(requests) FILTER (WHERE status BETWEEN 200 AND 299) AS c2,
                   sum(requests) FILTER (WHERE status BETWEEN 300 AND 399) AS c3,
                   sum(requests) FILTER (WHERE status BETWEEN 400 AND 499) AS c4,
                   sum(requests) FILTER (WHERE status BETWEEN 500 AND 599) AS c5,
                   sum(requests) FILTER (WHERE status = 401) AS r401,
                   sum(requests) FILTER (WHERE status = 403) AS r403,
                   sum(requests) FILTER (WHERE status = 429) AS r429,
                   max(latency_max) AS lmax,
                   %1$s
            FROM (%2$s) AS x
            GROUP BY GROUPING SETS ((start), ()))
        SELECT json_build_object(
            'object', 'request_log_stats',
            'url', $6,
            'interval', $7,
            'start', worksible_ts($2),
            'end', worksible_ts($3),
            'total', (SELECT worksible_request_log_bucket(s.requests, s.c1,
                          s.c2, s.c3, s.c4, s.c5, s.r401, s.r403, s.r429,
                          s.lmax, s.q)
                      FROM s WHERE s.start IS NULL),
            'data', (SELECT json_agg(json_build_object('start', worksible_ts(g.start))::jsonb
                                     || worksible_request_log_bucket(s.requests,
                                            s.c1, s.c2, s.c3, s.c4, s.c5,
                                            s.r401, s.r403, s.r429, s.lmax,
                                            s.q)::jsonb
                                     ORDER BY g.start)
                     FROM generate_series($4, $3 - interval '1 microsecond', $5)
                          AS g (start)
                     LEFT JOIN s ON s.start = g.start))$q$,
        quants, source)
    INTO result USING p_company_id, gte, lt, first, step, p_url, ivl;

    RETURN result;
END
$$;
