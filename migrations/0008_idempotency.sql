-- Idempotency records of the REST API (API.md, Idempotency): the outcome of
-- a write made with an Idempotency-Key, stored by the same statement, in the
-- same transaction, as the write itself. Redis holds every response of a
-- key for replays; this table is what makes our own writes exactly once
-- even when Redis forgets (a flush, a failover, an eviction): the primary
-- key refuses a second record, which rolls the second write back, and the
-- module then replays this row. The statement the module sends is
--   SELECT CASE WHEN worksible_idempotency_fresh(company, key)
--          THEN worksible_idempotency_save(company, key, fingerprint, ttl,
--                                          (SELECT the write)) END
--
-- result is the JSON the write function returned, before the module shaped
-- the response (201 Location, the one-time "key" of a new API key, never
-- stored); fingerprint is the module's hex BLAKE2b-256 of method, path with
-- query and body bytes. Rows past expires_at are ignored, and deleted by
-- the next write of the same company (no job to remember).
CREATE TABLE idempotency_records (
    company_id       text NOT NULL REFERENCES companies (id),
    idempotency_key  text NOT NULL
                     CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    fingerprint      text NOT NULL,
    result           text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    PRIMARY KEY (company_id, idempotency_key)
);

CREATE INDEX idempotency_records_company_expires
    ON idempotency_records (company_id, expires_at);

ALTER TABLE idempotency_records ENABLE ROW LEVEL SECURITY;
ALTER TABLE idempotency_records FORCE ROW LEVEL SECURITY;
CREATE POLICY company_isolation ON idempotency_records
    USING (company_id = current_setting('worksible.company_id', true));

GRANT SELECT, INSERT, DELETE ON idempotency_records TO worksible_api;

-- worksible_idempotency_fresh(company, key) -> true when the key has no
--   live record. When it has one it raises unique_violation (23505) on
--   idempotency_records_pkey, like a second insert would: the module then
--   replays the record. Called before the write (a CASE evaluates it
--   first), so that a retry after Redis forgot never runs the write again,
--   even one that would now fail.
CREATE FUNCTION worksible_idempotency_fresh(p_company_id text, p_key text)
RETURNS boolean
LANGUAGE plpgsql SECURITY INVOKER AS $$
BEGIN
    PERFORM set_config('worksible.company_id', coalesce(p_company_id, ''), true);
    IF EXISTS (SELECT 1 FROM idempotency_records
               WHERE company_id = p_company_id AND idempotency_key = p_key
                 AND expires_at > now()) THEN
        RAISE EXCEPTION USING ERRCODE = 'unique_violation',
            CONSTRAINT = 'idempotency_records_pkey',
            MESSAGE = 'this Idempotency-Key has a record';
    END IF;
    RETURN true;
END
$$;

-- worksible_idempotency_save(company, key, fingerprint, ttl seconds,
--   result) -> result. Called with the write as its last argument, so that
--   the write runs first and both commit or neither does. Stores result for
--   ttl seconds unless it is NULL (nothing was written: a 404). A key that
--   already has a live record raises unique_violation (23505) on
--   idempotency_records_pkey, and the write is rolled back with it.
CREATE FUNCTION worksible_idempotency_save(p_company_id text, p_key text,
                                           p_fingerprint text,
                                           p_ttl integer, p_result json)
RETURNS json
LANGUAGE plpgsql SECURITY INVOKER AS $$
BEGIN
    IF p_result IS NULL THEN
        RETURN NULL;
    END IF;

    PERFORM set_config('worksible.company_id', coalesce(p_company_id, ''), true);

    -- retention: this company's expired records, a bounded batch per write
    DELETE FROM idempotency_records
    WHERE company_id = p_company_id
      AND idempotency_key IN (SELECT idempotency_key FROM idempotency_records
                              WHERE company_id = p_company_id
                                AND expires_at <= now()
                              ORDER BY expires_at LIMIT 100);
    DELETE FROM idempotency_records
    WHERE company_id = p_company_id AND idempotency_key = p_key
      AND expires_at <= now();

    INSERT INTO idempotency_records (company_id, idempotency_key, fingerprint,
                                     result, expires_at)
    VALUES (p_company_id, p_key, p_fingerprint, p_result::text,
            now() + make_interval(secs => p_ttl));

    RETURN p_result;
END
$$;

-- worksible_idempotency_find(company, key) -> (fingerprint, result) of the
--   key's live record: zero or one row.
CREATE FUNCTION worksible_idempotency_find(p_company_id text, p_key text)
RETURNS TABLE (fingerprint text, result text)
LANGUAGE plpgsql SECURITY INVOKER AS $$
BEGIN
    PERFORM set_config('worksible.company_id', coalesce(p_company_id, ''), true);

    RETURN QUERY
        SELECT r.fingerprint, r.result FROM idempotency_records r
        WHERE r.company_id = p_company_id AND r.idempotency_key = p_key
          AND r.expires_at > now();
END
$$;
