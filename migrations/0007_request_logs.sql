-- Request log: one row per request, written in batches by the module's log
-- phase through worksible_request_logs_insert (SECURITY DEFINER), read by
-- the API through worksible_list (row-level security), pruned by the
-- operators (`worksible logs prune`).
--
-- Range-partitioned by created_at, one partition per UTC day named
-- request_logs_pYYYYMMDD ([day 00:00Z, next day 00:00Z)), created on demand
-- by the insert function and dropped whole by the prune function: retention
-- is a DROP TABLE, never a DELETE.
--
-- id is the module's req_ + ULID; company_id and api_key_id are NULL when
-- the request never got that far (a refused key); such rows are invisible
-- through row-level security (NULL never equals the setting). No foreign
-- keys and few checks on purpose: a rejected row would lose its batch.
-- path keeps the query string.
CREATE TABLE request_logs (
    id                   text NOT NULL,
    company_id           text,
    api_key_id           text,
    method               text NOT NULL,
    path                 text NOT NULL,
    status               smallint NOT NULL,
    latency_ms           integer NOT NULL,
    ip                   inet,
    user_agent           text,
    idempotency_key      text,
    replayed             boolean NOT NULL DEFAULT false,
    ratelimit_remaining  integer,
    created_at           timestamptz NOT NULL,
    PRIMARY KEY (created_at, id)
) PARTITION BY RANGE (created_at);

-- the query API: newest first, by status, by key (each partition gets them)
CREATE INDEX request_logs_company_created
    ON request_logs (company_id, created_at DESC, id DESC);
CREATE INDEX request_logs_company_status
    ON request_logs (company_id, status, created_at DESC);
CREATE INDEX request_logs_company_key
    ON request_logs (company_id, api_key_id, created_at DESC);

-- Queries go through the parent, where the policy applies; the partitions
-- belong to the owner and grant nothing, so they cannot be read directly.
ALTER TABLE request_logs ENABLE ROW LEVEL SECURITY;
ALTER TABLE request_logs FORCE ROW LEVEL SECURITY;
CREATE POLICY company_isolation ON request_logs
    USING (company_id = current_setting('worksible.company_id', true));

-- Reads only: writes go through worksible_request_logs_insert.
GRANT SELECT ON request_logs TO worksible_api;

-- worksible_request_logs_partition(day) -> the name of day's partition,
--   request_logs_pYYYYMMDD.
CREATE FUNCTION worksible_request_logs_partition(p_day date) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT 'request_logs_p' || to_char(p_day, 'YYYYMMDD')
$$;

-- worksible_request_logs_insert(rows) -> how many rows were inserted.
--   rows: a JSON array of objects with the column names of request_logs
--   {"id","company_id","api_key_id","method","path","status","latency_ms",
--    "ip","user_agent","idempotency_key","replayed","ratelimit_remaining",
--    "created_at"}: created_at RFC 3339 (milliseconds), ip as text, numbers
--   as JSON numbers, null allowed where the column allows it (replayed
--   null or absent: false). Creates the missing day partitions first, under
--   the transaction advisory lock "wksbrlog" (two workers never race on the
--   same CREATE TABLE; the prune takes the same lock), then inserts every
--   row in one statement. A row whose (created_at, id) is already there is
--   skipped, so a retried batch never duplicates (and does not count).
--   SECURITY DEFINER: nginx (worksible_api) has no INSERT on the table.
CREATE FUNCTION worksible_request_logs_insert(p_rows json) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = public, pg_temp
-- CREATE TABLE IF NOT EXISTS after a concurrent worker: no NOTICE to nginx
SET client_min_messages = warning AS $$
DECLARE
    d       date;
    locked  boolean := false;
    n       integer;
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

    WITH added AS (
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
        RETURNING 1)
    SELECT count(*) INTO n FROM added;

    RETURN n;
END
$$;

-- worksible_request_log_object(row) -> the request_log object
--   {"object":"request_log","id","api_key_id","method","path","status",
--    "latency_ms","ip","user_agent","idempotency_key","replayed",
--    "ratelimit_remaining","created_at"}: ip as the bare address (no /32),
--   created_at by worksible_ts. No company binding of its own.
CREATE FUNCTION worksible_request_log_object(l request_logs) RETURNS json
LANGUAGE sql STABLE SECURITY INVOKER AS $$
    SELECT json_build_object(
        'object', 'request_log',
        'id', l.id,
        'api_key_id', l.api_key_id,
        'method', l.method,
        'path', l.path,
        'status', l.status,
        'latency_ms', l.latency_ms,
        'ip', host(l.ip),
        'user_agent', l.user_agent,
        'idempotency_key', l.idempotency_key,
        'replayed', l.replayed,
        'ratelimit_remaining', l.ratelimit_remaining,
        'created_at', worksible_ts(l.created_at))
$$;

-- worksible_request_logs_prune(older_than) -> the names of the dropped
--   partitions, in day order: every request_logs_pYYYYMMDD whose whole day
--   ends at or before now() - older_than. older_than must not be negative
--   (else 22023). Owner only (`worksible logs prune`), under the insert's
--   advisory lock.
CREATE FUNCTION worksible_request_logs_prune(p_older_than interval)
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
END
$$;

REVOKE ALL ON FUNCTION worksible_request_logs_partition(date),
                       worksible_request_logs_insert(json),
                       worksible_request_log_object(request_logs),
                       worksible_request_logs_prune(interval)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION worksible_request_logs_insert(json),
                          worksible_request_log_object(request_logs)
    TO worksible_api;
