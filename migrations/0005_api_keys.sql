-- The api_keys endpoints (GET/POST /v1/api_keys,
-- POST /v1/api_keys/{id}/revoke; GET /v1/api_keys/{id} is worksible_get).

-- worksible_api_keys_list(company, limit, starting_after, ending_before):
--   GET /v1/api_keys, as worksible_list.
CREATE FUNCTION worksible_api_keys_list(p_company_id text, p_limit integer,
                                        p_starting_after text, p_ending_before text)
RETURNS json
LANGUAGE sql SECURITY INVOKER AS $$
    SELECT worksible_list(p_company_id, 'api_keys', 'worksible_api_key_object',
                          '/v1/api_keys', p_limit, p_starting_after, p_ending_before)
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
        EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format
                    OR invalid_time_zone_displacement_value THEN
            RAISE EXCEPTION USING ERRCODE = 'WS400',
                MESSAGE = 'expires_at is not a time', DETAIL = 'expires_at';
        END;
        IF expires <= now() THEN
            RAISE EXCEPTION USING ERRCODE = 'WS400',
                MESSAGE = 'expires_at is not in the future', DETAIL = 'expires_at';
        END IF;
        -- RFC 3339 years have four digits
        IF expires >= '10000-01-01T00:00:00Z' THEN
            RAISE EXCEPTION USING ERRCODE = 'WS400',
                MESSAGE = 'expires_at is after 9999-12-31T23:59:59Z', DETAIL = 'expires_at';
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
    worksible_api_keys_list(text, integer, text, text),
    worksible_api_key_create(text, text, text, smallint, text, text, text, text),
    worksible_api_key_revoke(text, text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    worksible_api_keys_list(text, integer, text, text),
    worksible_api_key_create(text, text, text, smallint, text, text, text, text),
    worksible_api_key_revoke(text, text)
    TO worksible_api;
GRANT EXECUTE ON FUNCTION worksible_api_key_object(api_keys) TO worksible_api;

-- Whole rows (lists, RETURNING *) need every column. The module reads the
-- hashes anyway (worksible_key_lookup) to verify keys; they are useless
-- without the server secret, which never enters the database.
GRANT SELECT (secret_hash, secret_version) ON api_keys TO worksible_api;
