-- Access control: the two writes the access phase makes about a key before
-- the company is known (SECURITY DEFINER, like worksible_key_lookup).

-- worksible_key_rehash(id, old_version, hash, version): moves a key's
-- keyed BLAKE2b hash (32 bytes) to server secret `version`, only if the row
-- is still at old_version (a concurrent rehash or a rotated row is left
-- alone). Returns whether the row changed.
CREATE FUNCTION worksible_key_rehash(p_id text, p_old_version smallint,
                                     p_hash bytea, p_version smallint)
RETURNS boolean
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    WITH moved AS (
        UPDATE api_keys SET secret_hash = p_hash, secret_version = p_version
        WHERE id = p_id AND secret_version = p_old_version
          AND length(p_hash) = 32
        RETURNING 1)
    SELECT count(*) = 1 FROM moved
$$;

-- worksible_keys_touch(ids): last_used_at = now() for the keys (key_...
-- object ids) used in the last minute; nginx sends at most one batch per
-- worker every few seconds. Returns how many rows changed.
CREATE FUNCTION worksible_keys_touch(p_ids text[]) RETURNS integer
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    WITH touched AS (
        UPDATE api_keys SET last_used_at = now()
        WHERE id = ANY (p_ids)
          AND (last_used_at IS NULL
               OR last_used_at < date_trunc('minute', now()))
        RETURNING 1)
    SELECT count(*)::integer FROM touched
$$;

REVOKE ALL ON FUNCTION worksible_key_rehash(text, smallint, bytea, smallint),
                       worksible_keys_touch(text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION worksible_key_rehash(text, smallint, bytea, smallint),
                          worksible_keys_touch(text[]) TO worksible_api;
