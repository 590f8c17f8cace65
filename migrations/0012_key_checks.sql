-- Key powers, completed: a revoked or expired key makes and revokes
-- nothing, even while a server's key cache still holds it; an IPv4 block
-- lies within an IPv6 block that holds its IPv4-mapped form (::/0 holds
-- every address, as the module matches clients); expiry is read to the
-- second below, never above.

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
CREATE OR REPLACE FUNCTION worksible_key_exceeds(p_key api_keys, p_scopes text[],
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
