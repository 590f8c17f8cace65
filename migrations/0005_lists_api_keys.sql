-- One list implementation for every resource, and the api_keys endpoints.

-- worksible_list(company, table, object function, url, limit,
--                starting_after, ending_before, filters) -> the list object
--   {"object":"list","data":[...],"has_more":bool,"url":url} of the
--   company's rows of `table`, each built by `object`(row). Newest first:
--   created_at DESC, id DESC, keyset pagination on (created_at, id) with
--   Stripe semantics (starting_after: the page of older rows after that id;
--   ending_before: the page of newer rows just before it, still newest
--   first; has_more: more rows past this page in the direction of travel).
--   filters: a JSON object of column -> text value, all equal (the module
--   validates names and values). NULL arguments are absent: limit 20.
--   Errors, SQLSTATE WS400 with DETAIL = the parameter: both cursors
--   (ending_before), limit outside 1..100 (limit), a cursor that is not one
--   of this company's rows of the table (starting_after | ending_before).
CREATE FUNCTION worksible_list(p_company_id text, p_table regclass,
                               p_object regproc, p_url text, p_limit integer,
                               p_starting_after text, p_ending_before text,
                               p_filters jsonb DEFAULT '{}')
RETURNS json
LANGUAGE plpgsql SECURITY INVOKER AS $$
DECLARE
    lim     integer := coalesce(p_limit, 20);
    cursor  text := coalesce(p_starting_after, p_ending_before);
    cur_ts  timestamptz;
    cur_id  text;
    filter  text := '';
    col     text;
    val     text;
    result  json;
BEGIN
    PERFORM set_config('worksible.company_id', coalesce(p_company_id, ''), true);

    IF p_starting_after IS NOT NULL AND p_ending_before IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'WS400',
            MESSAGE = 'starting_after and ending_before cannot be used together',
            DETAIL = 'ending_before';
    END IF;
    IF lim NOT BETWEEN 1 AND 100 THEN
        RAISE EXCEPTION USING ERRCODE = 'WS400',
            MESSAGE = 'limit must be between 1 and 100', DETAIL = 'limit';
    END IF;

    FOR col, val IN SELECT key, value FROM jsonb_each_text(p_filters) LOOP
        filter := filter || format(' AND t.%I = %L', col, val);
    END LOOP;

    IF cursor IS NOT NULL THEN
        EXECUTE format('SELECT t.created_at, t.id FROM %s t
                        WHERE t.company_id = $1 AND t.id = $2', p_table)
            INTO cur_ts, cur_id USING p_company_id, cursor;
        IF cur_id IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'WS400', MESSAGE = 'cursor not found',
                DETAIL = CASE WHEN p_starting_after IS NOT NULL
                              THEN 'starting_after' ELSE 'ending_before' END;
        END IF;
    END IF;

    -- $1 company, $2 cursor id, $3 cursor time, $4 limit, $5 url
    EXECUTE format($q$
        WITH page AS (
            SELECT t AS r, t.created_at, t.id
            FROM %1$s t
            WHERE t.company_id = $1 %2$s
              AND ($2::text IS NULL OR (t.created_at, t.id) %3$s ($3, $2))
            ORDER BY t.created_at %4$s, t.id %4$s
            LIMIT $4 + 1),
        shown AS (
            SELECT * FROM page ORDER BY created_at %4$s, id %4$s LIMIT $4)
        SELECT json_build_object(
            'object', 'list',
            'data', (SELECT coalesce(json_agg(%5$s(s.r)
                                              ORDER BY s.created_at DESC, s.id DESC),
                                     '[]')
                     FROM shown s),
            'has_more', (SELECT count(*) FROM page) > $4,
            'url', $5)$q$,
        p_table, filter,
        CASE WHEN p_ending_before IS NULL THEN '<' ELSE '>' END,
        CASE WHEN p_ending_before IS NULL THEN 'DESC' ELSE 'ASC' END,
        p_object)
    INTO result USING p_company_id, cur_id, cur_ts, lim, p_url;

    RETURN result;
END
$$;

-- The freelancer list is the generic one (same signature as in 0003).
CREATE OR REPLACE FUNCTION worksible_freelancers_list(p_company_id text, p_limit integer,
                                                      p_starting_after text, p_ending_before text,
                                                      p_status text)
RETURNS json
LANGUAGE plpgsql SECURITY INVOKER AS $$
BEGIN
    IF p_status IS NOT NULL AND p_status NOT IN ('invited', 'active', 'offboarded') THEN
        RAISE EXCEPTION USING ERRCODE = 'WS400',
            MESSAGE = 'status must be invited, active or offboarded', DETAIL = 'status';
    END IF;
    RETURN worksible_list(p_company_id, 'freelancers', 'worksible_freelancer_object',
                          '/v1/freelancers', p_limit, p_starting_after, p_ending_before,
                          jsonb_strip_nulls(jsonb_build_object('status', p_status)));
END
$$;

-- worksible_api_keys_list(company, limit, starting_after, ending_before):
--   GET /v1/api_keys, as worksible_list.
CREATE FUNCTION worksible_api_keys_list(p_company_id text, p_limit integer,
                                        p_starting_after text, p_ending_before text)
RETURNS json
LANGUAGE sql SECURITY INVOKER AS $$
    SELECT worksible_list(p_company_id, 'api_keys', 'worksible_api_key_object',
                          '/v1/api_keys', p_limit, p_starting_after, p_ending_before)
$$;

-- worksible_api_key_get(company, id) -> the api_key object, or NULL.
CREATE FUNCTION worksible_api_key_get(p_company_id text, p_id text) RETURNS json
LANGUAGE plpgsql SECURITY INVOKER AS $$
DECLARE
    result json;
BEGIN
    PERFORM set_config('worksible.company_id', coalesce(p_company_id, ''), true);
    SELECT worksible_api_key_object(k) INTO result
    FROM api_keys k WHERE k.company_id = p_company_id AND k.id = p_id;
    RETURN result;
END
$$;

-- worksible_api_key_create(company, key_id, hash (64 hex), secret_version,
--   name, scopes (space-separated), ip_allowlist (space-separated canonical
--   CIDRs, checked by the module), expires_at (RFC 3339 text))
--   -> the new api_key object (POST /v1/api_keys; the module adds "key").
--   Errors: WS400 expires_at (not a time, or not in the future); WS403
--   ip_allowlist (a new allowlist needs the enterprise plan).
CREATE FUNCTION worksible_api_key_create(p_company_id text, p_key_id text,
                                         p_hash text, p_version smallint,
                                         p_name text, p_scopes text,
                                         p_allowlist text, p_expires_at text)
RETURNS json
LANGUAGE plpgsql SECURITY INVOKER AS $$
DECLARE
    expires  timestamptz;
    k        api_keys;
BEGIN
    PERFORM set_config('worksible.company_id', coalesce(p_company_id, ''), true);

    IF p_expires_at IS NOT NULL THEN
        BEGIN
            expires := p_expires_at::timestamptz;
        EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format THEN
            RAISE EXCEPTION USING ERRCODE = 'WS400',
                MESSAGE = 'expires_at is not a time', DETAIL = 'expires_at';
        END;
        IF expires <= now() THEN
            RAISE EXCEPTION USING ERRCODE = 'WS400',
                MESSAGE = 'expires_at is not in the future', DETAIL = 'expires_at';
        END IF;
    END IF;

    IF coalesce(p_allowlist, '') <> ''
       AND (SELECT plan FROM companies WHERE id = p_company_id) <> 'enterprise'
    THEN
        RAISE EXCEPTION USING ERRCODE = 'WS403',
            MESSAGE = 'IP allowlists need the enterprise plan', DETAIL = 'ip_allowlist';
    END IF;

    INSERT INTO api_keys (company_id, key_id, name, secret_hash, secret_version,
                          scopes, ip_allowlist, expires_at)
    VALUES (p_company_id, p_key_id, p_name, decode(p_hash, 'hex'), p_version,
            string_to_array(p_scopes, ' '),
            coalesce(string_to_array(nullif(p_allowlist, ''), ' ')::cidr[], '{}'),
            expires)
    RETURNING * INTO k;

    RETURN worksible_api_key_object(k);
END
$$;

-- worksible_api_key_revoke(company, id) -> the api_key object, revoked now
--   or earlier (revoking twice changes nothing), or NULL when not found.
--   POST /v1/api_keys/{id}/revoke.
CREATE FUNCTION worksible_api_key_revoke(p_company_id text, p_id text) RETURNS json
LANGUAGE plpgsql SECURITY INVOKER AS $$
DECLARE
    k api_keys;
BEGIN
    PERFORM set_config('worksible.company_id', coalesce(p_company_id, ''), true);
    UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
    WHERE company_id = p_company_id AND id = p_id
    RETURNING * INTO k;
    RETURN CASE WHEN k.id IS NULL THEN NULL ELSE worksible_api_key_object(k) END;
END
$$;

REVOKE ALL ON FUNCTION
    worksible_list(text, regclass, regproc, text, integer, text, text, jsonb),
    worksible_api_keys_list(text, integer, text, text),
    worksible_api_key_get(text, text),
    worksible_api_key_create(text, text, text, smallint, text, text, text, text),
    worksible_api_key_revoke(text, text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    worksible_list(text, regclass, regproc, text, integer, text, text, jsonb),
    worksible_api_keys_list(text, integer, text, text),
    worksible_api_key_get(text, text),
    worksible_api_key_create(text, text, text, smallint, text, text, text, text),
    worksible_api_key_revoke(text, text)
    TO worksible_api;
GRANT EXECUTE ON FUNCTION worksible_api_key_object(api_keys) TO worksible_api;

-- Whole rows (lists, RETURNING *) need every column. The module reads the
-- hashes anyway (worksible_key_lookup) to verify keys; they are useless
-- without the server secret, which never enters the database.
GRANT SELECT (secret_hash, secret_version) ON api_keys TO worksible_api;
