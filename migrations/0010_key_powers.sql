-- Key powers (README, Authentication): a key may only make or revoke keys
-- no more powerful than itself, and a revoked or expired key (still in a
-- server's key cache) makes and revokes nothing; which plans may give keys
-- IP allowlists is a plan attribute; a revocation is announced on the
-- channel worksible_api_keys (LISTEN/NOTIFY) with the key's key_id; the
-- key lookup reads expiry to the second below, never above.

ALTER TABLE plans ADD COLUMN ip_allowlists boolean NOT NULL DEFAULT false;
UPDATE plans SET ip_allowlists = true WHERE name = 'enterprise';

-- worksible_cidr_within(a, b): a lies inside b, an IPv4 block also when
--   b holds its IPv4-mapped form (::ffff:a.b.c.d/96+n).
CREATE FUNCTION worksible_cidr_within(a cidr, b cidr) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT a <<= b
           OR (family(a) = 4 AND family(b) = 6
               AND ('::ffff:' || host(a) || '/' || (masklen(a) + 96))::cidr <<= b)
$$;

-- worksible_key_exceeds(k, scopes, allowlist, expires) -> 'revoked' or
--   'expired' when k itself may no longer act, else the first field
--   ('scopes', 'ip_allowlist', 'expires_at') in which a key with those
--   powers would be more powerful than k, or NULL when it is not.
CREATE FUNCTION worksible_key_exceeds(p_key api_keys, p_scopes text[],
                                      p_allowlist cidr[], p_expires timestamptz)
RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN p_key.revoked_at IS NOT NULL
            THEN 'revoked'
        WHEN p_key.expires_at <= now()
            THEN 'expired'
        WHEN EXISTS (SELECT 1 FROM unnest(p_scopes) AS s
                     WHERE NOT (s = ANY (p_key.scopes)
                                OR (s LIKE '%:read'
                                    AND left(s, -5) || ':write' = ANY (p_key.scopes))))
            THEN 'scopes'
        WHEN cardinality(p_key.ip_allowlist) > 0
             AND (cardinality(p_allowlist) = 0
                  OR EXISTS (SELECT 1 FROM unnest(p_allowlist) AS a
                             WHERE NOT EXISTS (SELECT 1 FROM unnest(p_key.ip_allowlist) AS b
                                               WHERE worksible_cidr_within(a, b))))
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
--   scopes|ip_allowlist|expires_at (more powerful than the creator) or
--   revoked|expired (the creator itself).
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

-- worksible_key_lookup(key_id): as in 0001, expires_at rounded down to the
-- second (the module refuses a key from that second on, never after its
-- expiry).
CREATE OR REPLACE FUNCTION worksible_key_lookup(p_key_id text)
RETURNS TABLE (api_key_id text, company_id text, secret_hash bytea,
               secret_version smallint, scopes text[], ip_allowlist text[],
               expires_at bigint, revoked boolean, plan text,
               api_access boolean, rate_limit integer, rate_window integer)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT k.id, k.company_id, k.secret_hash, k.secret_version, k.scopes,
           (SELECT coalesce(array_agg(host(c) || '/' || masklen(c)), '{}')
            FROM unnest(k.ip_allowlist) AS c),
           floor(extract(epoch FROM k.expires_at))::bigint, k.revoked_at IS NOT NULL,
           p.name, p.api_access, p.rate_limit, p.rate_window
    FROM api_keys k
    JOIN companies c ON c.id = k.company_id
    JOIN plans p ON p.name = c.plan
    WHERE k.key_id = p_key_id
$$;
