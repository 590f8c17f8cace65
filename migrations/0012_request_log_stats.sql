-- Request log statistics (GET /v1/request_logs/stats): requests per time
-- bucket by status class, latency percentiles, refusals by code.
--
-- A million rows a day cannot be read per query, so each batch of the
-- ingest also adds its rows to per-minute rollups (request_log_minutes,
-- one row per company, minute, status, method and key), in one INSERT ...
-- GROUP BY ... ON CONFLICT DO UPDATE per batch
-- (worksible_request_log_minutes_add, called by
-- worksible_request_logs_insert). Latency percentiles come from a
-- histogram per rollup row (worksible_latency_bounds). A path filter, which
-- the rollups do not keep, reads the raw rows through an index instead
-- (the same histogram, made on the fly).

-- worksible_latency_bounds() -> the lower bounds, in ms, of the latency
--   histogram's buckets 2..43; bucket 1 holds 0 ms (under a millisecond),
--   bucket i >= 2 holds [bounds[i-1], bounds[i]) and the last everything
--   from 60000 ms. Below 6 ms every bucket is one value; above, a bucket
--   is at most a third of its lower bound wide (10-12, 150-200, 300-400).
CREATE FUNCTION worksible_latency_bounds() RETURNS integer[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT '{1,2,3,4,5,6,8,10,12,15,20,25,30,40,50,60,80,100,120,150,200,
             250,300,400,500,600,800,1000,1200,1500,2000,2500,3000,4000,
             5000,6000,8000,10000,15000,20000,30000,60000}'::integer[]
$$;

-- worksible_latency_hist(latencies) -> the histogram of latencies (ms):
--   43 counts, bucket i as worksible_latency_bounds() says.
CREATE FUNCTION worksible_latency_hist(p_latencies integer[]) RETURNS integer[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    bounds  constant integer[] := worksible_latency_bounds();
    h       integer[] := array_fill(0, ARRAY[cardinality(bounds) + 1]);
    l       integer;
    b       integer;
BEGIN
    FOREACH l IN ARRAY coalesce(p_latencies, '{}') LOOP
        b := width_bucket(l, bounds) + 1;
        h[b] := h[b] + 1;
    END LOOP;
    RETURN h;
END
$$;

-- worksible_latency_hist_add(a, b) -> the histogram of both (a + b, bucket
--   by bucket).
CREATE FUNCTION worksible_latency_hist_add(p_a integer[], p_b integer[])
RETURNS integer[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    h  integer[] := p_a;
BEGIN
    FOR i IN 1 .. coalesce(cardinality(p_b), 0) LOOP
        h[i] := coalesce(h[i], 0) + p_b[i];
    END LOOP;
    RETURN h;
END
$$;

-- worksible_latency_quantiles(hist, max) -> {p50, p95, p99} in ms of the
--   latencies counted by hist (worksible_latency_hist's buckets, summed),
--   max being the largest of them; NULL when hist counts none. Nearest
--   rank (the ceil(q * n)-th smallest, like percentile_disc), located in
--   its bucket and interpolated linearly between the bucket's smallest and
--   largest whole millisecond (the largest: max in the last bucket, or
--   when smaller). Exact below 6 ms; above, within the bucket of the exact
--   value (at most a third off).
CREATE FUNCTION worksible_latency_quantiles(p_hist bigint[], p_max integer)
RETURNS integer[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    bounds  constant integer[] := worksible_latency_bounds();
    qs      constant float8[] := '{0.5,0.95,0.99}';
    out     integer[] := '{}';
    total   bigint := 0;
    cum     bigint := 0;
    rnk     bigint;
    q       integer := 1;
    lo      integer;
    hi      integer;
BEGIN
    FOR i IN 1 .. coalesce(cardinality(p_hist), 0) LOOP
        total := total + coalesce(p_hist[i], 0);
    END LOOP;
    IF total = 0 THEN
        RETURN NULL;
    END IF;
    rnk := greatest(ceil(qs[q] * total), 1);
    FOR i IN 1 .. cardinality(p_hist) LOOP
        WHILE q <= 3 AND cum + coalesce(p_hist[i], 0) >= rnk LOOP
            lo := CASE WHEN i = 1 THEN 0 ELSE bounds[i - 1] END;
            hi := CASE WHEN i > cardinality(bounds) THEN p_max
                       ELSE bounds[i] - 1 END;
            hi := least(hi, p_max);
            lo := least(lo, hi);
            out := out || (lo + round((hi - lo) * (rnk - cum)::numeric
                                      / p_hist[i]))::integer;
            q := q + 1;
            IF q <= 3 THEN
                rnk := greatest(ceil(qs[q] * total), 1);
            END IF;
        END LOOP;
        EXIT WHEN q > 3;
        cum := cum + coalesce(p_hist[i], 0);
    END LOOP;
    WHILE q <= 3 LOOP
        out := out || p_max;
        q := q + 1;
    END LOOP;
    RETURN out;
END
$$;

-- Per company, UTC minute and status, three levels of rows, one partition
-- each (a query reads only its level): 0, every method and key together
-- (method '*', api_key_id '*'); 1, per method (api_key_id '*'); 2, per key
-- (method '*'; api_key_id '' for requests without one). Each row: how many
-- requests, their largest latency and their latency histogram
-- (worksible_latency_hist). A method and a key together are not kept (the
-- stats read the raw rows for those). Requests without a company are not
-- counted (nobody can read them). Written only by
-- worksible_request_log_minutes_add; pruned with the log.
CREATE TABLE request_log_minutes (
    company_id    text NOT NULL,
    level         smallint NOT NULL,
    method        text NOT NULL,
    api_key_id    text NOT NULL,
    minute        timestamptz NOT NULL,
    status        smallint NOT NULL,
    requests      bigint NOT NULL,
    latency_max   integer NOT NULL,
    latency_hist  integer[] NOT NULL,
    PRIMARY KEY (company_id, level, method, api_key_id, minute, status)
) PARTITION BY LIST (level);

CREATE TABLE request_log_minutes_all PARTITION OF request_log_minutes
    FOR VALUES IN (0);
CREATE TABLE request_log_minutes_method PARTITION OF request_log_minutes
    FOR VALUES IN (1);
CREATE TABLE request_log_minutes_key PARTITION OF request_log_minutes
    FOR VALUES IN (2);

ALTER TABLE request_log_minutes ENABLE ROW LEVEL SECURITY;
ALTER TABLE request_log_minutes FORCE ROW LEVEL SECURITY;
CREATE POLICY company_isolation ON request_log_minutes
    USING (company_id = current_setting('worksible.company_id', true));
GRANT SELECT ON request_log_minutes TO worksible_api;

-- the stats' path filter (a prefix), whatever the collation, read from the
-- index alone
CREATE INDEX request_logs_company_path
    ON request_logs (company_id, path text_pattern_ops, created_at)
    INCLUDE (status, latency_ms);

-- worksible_request_log_minutes_add(rows) -> nothing: adds rows (request
--   log rows just inserted, each once) to request_log_minutes, one
--   INSERT ... ON CONFLICT DO UPDATE for all of them. The ingest calls it
--   once per batch with the rows it actually inserted, in its transaction.
CREATE FUNCTION worksible_request_log_minutes_add(p_rows request_logs[])
RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = public, pg_temp AS $$
    INSERT INTO request_log_minutes AS m (company_id, level, method,
                                          api_key_id, minute, status,
                                          requests, latency_max, latency_hist)
    SELECT r.company_id,
           CASE WHEN GROUPING(r.method) = 0 THEN 1
                WHEN GROUPING(r.api_key_id) = 0 THEN 2 ELSE 0 END,
           coalesce(r.method, '*'), coalesce(r.api_key_id, '*'),
           r.minute, r.status, count(*), max(r.latency_ms),
           worksible_latency_hist(array_agg(r.latency_ms))
    FROM (SELECT l.company_id, l.method, coalesce(l.api_key_id, '') AS api_key_id,
                 date_bin('1 minute', l.created_at,
                          timestamptz '2000-01-01 00:00Z') AS minute,
                 l.status, l.latency_ms
          FROM unnest(p_rows) AS l
          WHERE l.company_id IS NOT NULL) AS r
    GROUP BY GROUPING SETS (
        (r.company_id, r.minute, r.status),
        (r.company_id, r.minute, r.status, r.method),
        (r.company_id, r.minute, r.status, r.api_key_id))
    ON CONFLICT (company_id, level, method, api_key_id, minute, status)
    DO UPDATE
    SET requests = m.requests + excluded.requests,
        latency_max = greatest(m.latency_max, excluded.latency_max),
        latency_hist = worksible_latency_hist_add(m.latency_hist,
                                                  excluded.latency_hist)
$$;

-- worksible_request_logs_insert: as in 0007_request_logs.sql, and the rows
-- it inserted go to worksible_request_log_minutes_add in the same
-- transaction (a batch counts in both or in neither).
CREATE OR REPLACE FUNCTION worksible_request_logs_insert(p_rows json) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = public, pg_temp
-- CREATE TABLE IF NOT EXISTS after a concurrent worker: no NOTICE to nginx
SET client_min_messages = warning AS $$
DECLARE
    d       date;
    locked  boolean := false;
    added   request_logs[];
BEGIN
    IF p_rows IS NULL OR json_typeof(p_rows) <> 'array' THEN
        RAISE EXCEPTION USING ERRCODE = 'WS400',
            MESSAGE = 'request log rows must be a JSON array', DETAIL = 'rows';
    END IF;

    FOR d IN
        SELECT DISTINCT (r.created_at AT TIME ZONE 'UTC')::date
        FROM json_to_recordset(p_rows) AS r (created_at timestamptz)
        WHERE r.created_at IS NOT NULL
        ORDER BY 1
    LOOP
        CONTINUE WHEN to_regclass(worksible_request_logs_partition(d)) IS NOT NULL;
        IF NOT locked THEN
            PERFORM pg_advisory_xact_lock(8605098379685162855);  -- "wksbrlog"
            locked := true;
        END IF;
        EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF request_logs
                        FOR VALUES FROM (%L) TO (%L)',
                       worksible_request_logs_partition(d),
                       to_char(d, 'YYYY-MM-DD') || ' 00:00:00+00',
                       to_char(d + 1, 'YYYY-MM-DD') || ' 00:00:00+00');
    END LOOP;

    WITH ins AS (
        INSERT INTO request_logs (id, company_id, api_key_id, method, path, status,
                                  latency_ms, ip, user_agent, idempotency_key,
                                  replayed, ratelimit_remaining, created_at)
        SELECT r.id, r.company_id, r.api_key_id, r.method, r.path, r.status,
               r.latency_ms, r.ip::inet, r.user_agent, r.idempotency_key,
               coalesce(r.replayed, false), r.ratelimit_remaining, r.created_at
        FROM json_to_recordset(p_rows) AS r (
            id text, company_id text, api_key_id text, method text, path text,
            status smallint, latency_ms integer, ip text, user_agent text,
            idempotency_key text, replayed boolean, ratelimit_remaining integer,
            created_at timestamptz)
        ON CONFLICT (created_at, id) DO NOTHING
        RETURNING request_logs AS row)
    SELECT coalesce(array_agg(ins.row), '{}') INTO added FROM ins;

    PERFORM worksible_request_log_minutes_add(added);

    RETURN cardinality(added);
END
$$;

-- worksible_request_logs_prune: as in 0007_request_logs.sql, and the
-- rollups of the dropped days go too.
CREATE OR REPLACE FUNCTION worksible_request_logs_prune(p_older_than interval)
RETURNS SETOF text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = public, pg_temp AS $$
DECLARE
    part text;
BEGIN
    IF p_older_than IS NULL OR p_older_than < interval '0' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'older_than must be a positive interval';
    END IF;

    PERFORM pg_advisory_xact_lock(8605098379685162855);  -- "wksbrlog"

    FOR part IN
        SELECT c.relname
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'request_logs'::regclass
          AND c.relname ~ '^request_logs_p[0-9]{8}$'
          AND (to_date(substr(c.relname, 15), 'YYYYMMDD') + 1)::timestamp
              AT TIME ZONE 'UTC' <= now() - p_older_than
        ORDER BY c.relname
    LOOP
        EXECUTE format('DROP TABLE %I', part);
        RETURN NEXT part;
    END LOOP;

    -- the days dropped: every one that ends at or before now() - older_than
    DELETE FROM request_log_minutes
    WHERE minute < ((now() - p_older_than) AT TIME ZONE 'UTC')::date::timestamp
                   AT TIME ZONE 'UTC';
END
$$;

-- the rows logged before this migration
DO $$
DECLARE
    h timestamptz;
BEGIN
    FOR h IN
        SELECT DISTINCT date_bin('1 hour', created_at, timestamptz '2000-01-01 00:00Z')
        FROM request_logs ORDER BY 1
    LOOP
        PERFORM worksible_request_log_minutes_add(ARRAY(
            SELECT l FROM request_logs l
            WHERE l.created_at >= h AND l.created_at < h + interval '1 hour'));
    END LOOP;
END
$$;

-- worksible_request_log_bucket(requests, 1xx..5xx, 401, 403, 429, max,
--   {p50, p95, p99}) -> one bucket's STATS object (see
--   worksible_request_log_stats); NULL counts are 0.
CREATE FUNCTION worksible_request_log_bucket(p_requests numeric,
    p_c1 numeric, p_c2 numeric, p_c3 numeric, p_c4 numeric, p_c5 numeric,
    p_r401 numeric, p_r403 numeric, p_r429 numeric, p_max integer,
    p_q integer[])
RETURNS json
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT json_build_object(
        'requests', coalesce(p_requests, 0),
        'status_classes', json_build_object(
            '1xx', coalesce(p_c1, 0), '2xx', coalesce(p_c2, 0),
            '3xx', coalesce(p_c3, 0), '4xx', coalesce(p_c4, 0),
            '5xx', coalesce(p_c5, 0)),
        'refused', json_build_object(
            '401', coalesce(p_r401, 0), '403', coalesce(p_r403, 0),
            '429', coalesce(p_r429, 0)),
        'latency_ms', json_build_object(
            'p50', p_q[1], 'p95', p_q[2], 'p99', p_q[3], 'max', p_max))
$$;

-- worksible_request_log_stats(company, url, filters) -> the stats object
--   {"object":"request_log_stats","url","interval","start","end",
--    "total": STATS, "data": [{"start", ...STATS}, ...]} with STATS
--   {"requests", "status_classes": {"1xx".."5xx"}, "refused": {"401",
--    "403","429"}, "latency_ms": {"p50","p95","p99","max"} (null without
--   requests)}: one bucket per interval from start (aligned to the
--   interval in UTC) to end, oldest first, empty ones included.
--   filters (jsonb, each optional, checked for shape by the module):
--   "created_at[gte]" (default: created_at[lt] - 24 hours) and
--   "created_at[lt]" (default: now), widened to whole minutes (gte down,
--   lt up); "interval" 1m|1h|1d (default 1h); "status" (exact) or
--   "status[class]" (a digit 1..5); "method"; "api_key_id";
--   "path[prefix]". Counts come from request_log_minutes, except with a
--   path prefix or a method and a key together: then from request_logs,
--   through the same histogram buckets. WS400 with
--   the parameter in DETAIL: start not before end, or more than 1500
--   buckets.
CREATE FUNCTION worksible_request_log_stats(p_company_id text, p_url text,
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
    source  text;
    quants  text;
    prefix  text;
    code    integer;
    result  json;
BEGIN
    PERFORM set_config('worksible.company_id', coalesce(p_company_id, ''), true);

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

    -- a method and a key together, or a path: the raw rows
    IF p_filters ? 'path[prefix]'
       OR (p_filters ? 'method' AND p_filters ? 'api_key_id')
    THEN
        IF p_filters ? 'method' THEN
            filter := filter || format(' AND t.method = %L', p_filters->>'method');
        END IF;
        IF p_filters ? 'api_key_id' THEN
            filter := filter || format(' AND t.api_key_id = %L',
                                       p_filters->>'api_key_id');
        END IF;
        IF p_filters ? 'path[prefix]' THEN
            -- a range of the index (text_pattern_ops), with leakproof
            -- operators only: row-level security lets no other qual
            -- (LIKE) reach an index scan
            prefix := p_filters->>'path[prefix]';
            code := ascii(right(prefix, 1));
            filter := filter || format(' AND t.path ~>=~ %L AND starts_with(t.path, %L)',
                                       prefix, prefix);
            IF code < 55295 OR code BETWEEN 57344 AND 1114110 THEN
                filter := filter || format(' AND t.path ~<~ %L',
                                           left(prefix, -1) || chr(code + 1));
            END IF;
        END IF;
        -- grouped per bucket, status and latency bucket (a hash, no sort)
        source := format($q$
            SELECT date_bin(%1$L, t.created_at, %2$L) AS start, t.status,
                   width_bucket(t.latency_ms, %3$L::integer[]) + 1 AS bucket,
                   count(*) AS requests, max(t.latency_ms) AS latency_max
            FROM request_logs t
            WHERE t.company_id = $1 AND t.created_at >= $2
              AND t.created_at < $3 %4$s
            GROUP BY 1, 2, 3$q$, step, epoch, worksible_latency_bounds(), filter);
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
            WHERE t.company_id = $1 AND t.level = %6$s AND t.method = %3$L
              AND t.api_key_id = %4$L AND t.minute >= $2 AND t.minute < $3
                  %5$s$q$, step, epoch, coalesce(p_filters->>'method', '*'),
            coalesce(p_filters->>'api_key_id', '*'), filter,
            CASE WHEN p_filters ? 'method' THEN 1
                 WHEN p_filters ? 'api_key_id' THEN 2 ELSE 0 END);
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

REVOKE ALL ON FUNCTION worksible_request_log_minutes_add(request_logs[]),
                       worksible_request_log_stats(text, text, jsonb)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION worksible_request_log_stats(text, text, jsonb)
    TO worksible_api;
