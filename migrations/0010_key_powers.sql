-- Key powers (README, Authentication): a key may only make or revoke keys
-- no more powerful than itself; which plans may give keys IP allowlists is
-- a plan attribute; a revocation is announced on the channel
-- worksible_api_keys (LISTEN/NOTIFY) with the key's key_id.

ALTER TABLE plans ADD COLUMN ip_allowlists boolean NOT NULL DEFAULT false;
UPDATE plans SET ip_allowlists = true WHERE name = 'enterprise';

-- worksible_key_exceeds(k, scopes, allowlist, expires) -> the first field
--   ('scopes', 'ip_allowlist', 'expires_at') in which a key with those
--   powers would be more powerful than the key k, or NULL when it is not:
--   every scope held by k (write implies read), every block inside one of
--   k's when k has an allowlist, an expiry no later than k's when k has one.
CREATE FUNCTION worksible_key_exceeds(p_key api_keys, p_scopes text[],
                                      p_allowlist cidr[], p_expires timestamptz)
RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN EXISTS (SELECT 1 FROM unnest(p_scopes) AS s
                     WHERE NOT (s = ANY (p_key.scopes)
                                OR (s LIKE '%:read'
                                    AND left(s, -5) || ':write' = ANY (p_key.scopes))))
            THEN 'scopes'
        WHEN cardinality(p_key.ip_allowlist) > 0
             AND (cardinality(p_allowlist) = 0
                  OR EXISTS (SELECT 1 FROM unnest(p_allowlist) AS a
                             WHERE NOT a <<= ANY (p_key.ip_allowlist)))
            THEN 'ip_allowlist'
        WHEN p_key.expires_at IS NOT NULL
             AND (p_expires IS NULL OR p_expires > p_key.expires_at)
            THEN 'expires_at'
    END
$$;

DROP FUNCTION worksible_api_key_create(text, text, text, smallint, text, text, text, text);
DROP FUNCTION worksible_api_key_revoke(text, text);

-- worksible_api_key_create(company, key_id, hash (64 hex), secret_version,
--   name, scopes (space-separated), ip_allowlist (space-separated canonical
--   CIDRs, checked by the module), expires_at (RFC 3339 text), creator (the
--   api_key id of the key making it, NULL for an operator))
--   -> the new api_key object (POST /v1/api_keys; the module adds "key").
--   A creator's allowlist and expiry are inherited when not given.
--   Errors: WS400 expires_at (not a time, or not in the future); WS403
--   ip_allowlist (a new allowlist on a plan without ip_allowlists); WS4K3
--   scopes|ip_allowlist|expires_at (more powerful than the creator).
CREATE FUNCTION worksible_api_key_create(p_company_id text, p_key_id text,
                                         p_hash text, p_version smallint,
                                         p_name text, p_scopes text,
                                         p_allowlist text, p_expires_at text,
                                         p_creator text)
RETURNS json
LANGUAGE plpgsql SECURITY INVOKER AS $$
DECLARE
    expires    timestamptz;
    scopes     text[] := string_to_array(p_scopes, ' ');
    allowlist  cidr[] := coalesce(string_to_array(nullif(p_allowlist, ''), ' ')::cidr[], '{}');
    creator    api_keys;
    exceeds    text;
    k          api_keys;
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

    IF cardinality(allowlist) > 0
       AND NOT (SELECT p.ip_allowlists FROM companies c JOIN plans p ON p.name = c.plan
                WHERE c.id = p_company_id)
    THEN
        RAISE EXCEPTION USING ERRCODE = 'WS403',
            MESSAGE = 'IP allowlists are not part of this company''s plan',
            DETAIL = 'ip_allowlist';
    END IF;

    IF p_creator IS NOT NULL THEN
        SELECT * INTO creator FROM api_keys
        WHERE company_id = p_company_id AND id = p_creator;

        IF cardinality(allowlist) = 0 THEN
            allowlist := coalesce(creator.ip_allowlist, '{}');
        END IF;
        expires := coalesce(expires, creator.expires_at);

        exceeds := worksible_key_exceeds(creator, scopes, allowlist, expires);
        IF exceeds IS NOT NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'WS4K3',
                MESSAGE = 'A key can only make keys no more powerful than itself: '
                          || 'its ' || exceeds || ' would reach past this key''s',
                DETAIL = exceeds;
        END IF;
    END IF;

    INSERT INTO api_keys (company_id, key_id, name, secret_hash, secret_version,
                          scopes, ip_allowlist, expires_at)
    VALUES (p_company_id, p_key_id, p_name, decode(p_hash, 'hex'), p_version,
            scopes, allowlist, expires)
    RETURNING * INTO k;

    RETURN worksible_api_key_object(k);
END
$$;

-- worksible_api_key_revoke(company, id, revoker) -> the api_key object,
--   revoked now or earlier (revoking twice changes nothing), or NULL when
--   not found. revoker: the api_key id of the key revoking it (NULL for an
--   operator), which must be at least as powerful as the key it revokes
--   (WS4K3 otherwise, naming the field). Announced on worksible_api_keys.
--   POST /v1/api_keys/{id}/revoke.
CREATE FUNCTION worksible_api_key_revoke(p_company_id text, p_id text,
                                         p_revoker text)
RETURNS json
LANGUAGE plpgsql SECURITY INVOKER AS $$
DECLARE
    revoker  api_keys;
    exceeds  text;
    k        api_keys;
BEGIN
    PERFORM set_config('worksible.company_id', coalesce(p_company_id, ''), true);

    SELECT * INTO k FROM api_keys
    WHERE company_id = p_company_id AND id = p_id
    FOR UPDATE;

    IF k.id IS NULL THEN
        RETURN NULL;
    END IF;

    IF p_revoker IS NOT NULL THEN
        SELECT * INTO revoker FROM api_keys
        WHERE company_id = p_company_id AND id = p_revoker;

        exceeds := worksible_key_exceeds(revoker, k.scopes, k.ip_allowlist, k.expires_at);
        IF exceeds IS NOT NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'WS4K3',
                MESSAGE = 'A key can only revoke keys no more powerful than itself: '
                          || 'that key''s ' || exceeds || ' reaches past this key''s',
                DETAIL = exceeds;
        END IF;
    END IF;

    UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
    WHERE id = k.id
    RETURNING * INTO k;

    PERFORM pg_notify('worksible_api_keys', k.key_id);

    RETURN worksible_api_key_object(k);
END
$$;

REVOKE ALL ON FUNCTION
    worksible_api_key_create(text, text, text, smallint, text, text, text, text, text),
    worksible_api_key_revoke(text, text, text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    worksible_api_key_create(text, text, text, smallint, text, text, text, text, text),
    worksible_api_key_revoke(text, text, text)
    TO worksible_api;
