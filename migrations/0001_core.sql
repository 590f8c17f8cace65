-- Core: ids, plans, currencies, companies and API keys.
--
-- Roles (created by the operator before migrating; util/stack.sh does it for
-- the dev and test stacks):
--   worksible      owns the schema, LOGIN, BYPASSRLS (operators, the CLI,
--                  and the SECURITY DEFINER look-ups below)
--   worksible_api  what nginx connects as: owns nothing, no BYPASSRLS, sees
--                  one company at a time through row-level security
-- Every company table has FORCE ROW LEVEL SECURITY and a policy on
-- current_setting('worksible.company_id').

-- worksible_id(prefix [, t]): prefix || '_' || ULID (48-bit Unix time of t
-- in ms, now by default, then 80 random bits, as 26 upper-case Crockford
-- base32 characters; ulid/spec). Time-sortable; the one source of row ids
-- (API.md, Names).
CREATE FUNCTION worksible_id(prefix text, t timestamptz DEFAULT clock_timestamp())
RETURNS text
LANGUAGE plpgsql VOLATILE PARALLEL SAFE AS $$
DECLARE
    alphabet constant text := '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
    ms   bigint := floor(extract(epoch FROM t) * 1000);
    u    bytea := uuid_send(gen_random_uuid());
    -- bytes 6 and 8 of a v4 UUID carry version and variant: skip them
    bits bit(80) := ('x' || encode(substring(u FROM 1 FOR 6)
                                   || substring(u FROM 10 FOR 4), 'hex'))::bit(80);
    out  text := prefix || '_';
BEGIN
    FOR i IN REVERSE 9..0 LOOP
        out := out || substr(alphabet, ((ms >> (i * 5)) & 31)::int + 1, 1);
    END LOOP;
    FOR i IN 0..15 LOOP
        out := out || substr(alphabet, substring(bits FROM i * 5 + 1 FOR 5)::int + 1, 1);
    END LOOP;
    RETURN out;
END
$$;

-- worksible_ts(t): RFC 3339 in UTC with Z and whole seconds (API.md).
CREATE FUNCTION worksible_ts(t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
$$;

-- Plans: operators change them. rate_limit requests per rate_window seconds.
CREATE TABLE plans (
    name         text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,31}$'),
    api_access   boolean NOT NULL,
    rate_limit   integer NOT NULL CHECK (rate_limit > 0),
    rate_window  integer NOT NULL CHECK (rate_window > 0),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

INSERT INTO plans (name, api_access, rate_limit, rate_window) VALUES
    ('trial',      false,    60, 60),
    ('core',       false,    60, 60),
    ('growth',     true,    600, 60),
    ('scale',      true,   3000, 60),
    ('enterprise', true,  10000, 60);

-- ISO 4217 currencies and their minor units (JPY 0, EUR 2, BHD 3).
CREATE TABLE currencies (
    code        char(3) PRIMARY KEY CHECK (code ~ '^[A-Z]{3}$'),
    minor_unit  smallint NOT NULL CHECK (minor_unit BETWEEN 0 AND 4)
);

CREATE TABLE companies (
    id          text PRIMARY KEY DEFAULT worksible_id('cmp'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    plan        text NOT NULL REFERENCES plans (name),
    currency    char(3) NOT NULL REFERENCES currencies (code),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- key_id is the lookup handle inside the token (wsk_live_<key_id>_<secret>);
-- secret_hash = keyed BLAKE2b-256 under server secret number secret_version.
CREATE TABLE api_keys (
    id              text PRIMARY KEY DEFAULT worksible_id('key'),
    company_id      text NOT NULL REFERENCES companies (id),
    key_id          text NOT NULL UNIQUE CHECK (key_id ~ '^[a-z0-9]{12}$'),
    name            text CHECK (length(name) <= 200),
    secret_hash     bytea NOT NULL CHECK (length(secret_hash) = 32),
    secret_version  smallint NOT NULL CHECK (secret_version > 0),
    scopes          text[] NOT NULL DEFAULT '{}'
                    CHECK (array_position(scopes, NULL) IS NULL),
    ip_allowlist    cidr[] NOT NULL DEFAULT '{}',
    expires_at      timestamptz,
    revoked_at      timestamptz,
    last_used_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX api_keys_company_created ON api_keys (company_id, created_at DESC, id DESC);

-- The api_key object of the API (never the secret or its hash).
CREATE FUNCTION worksible_api_key_object(k api_keys) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'object', 'api_key',
        'id', k.id,
        'name', k.name,
        'prefix', 'wsk_live_' || k.key_id,
        'scopes', to_json(k.scopes),
        'ip_allowlist', (SELECT coalesce(json_agg(host(c) || '/' || masklen(c)), '[]')
                         FROM unnest(k.ip_allowlist) AS c),
        'expires_at', worksible_ts(k.expires_at),
        'revoked_at', worksible_ts(k.revoked_at),
        'last_used_at', worksible_ts(k.last_used_at),
        'created_at', worksible_ts(k.created_at))
$$;

ALTER TABLE companies ENABLE ROW LEVEL SECURITY;
ALTER TABLE companies FORCE ROW LEVEL SECURITY;
CREATE POLICY company_isolation ON companies
    USING (id = current_setting('worksible.company_id', true));

ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY company_isolation ON api_keys
    USING (company_id = current_setting('worksible.company_id', true));

GRANT SELECT ON plans, currencies TO worksible_api;
GRANT SELECT, UPDATE (name, updated_at) ON companies TO worksible_api;
GRANT SELECT (id, company_id, key_id, name, scopes, ip_allowlist, expires_at,
              revoked_at, last_used_at, created_at),
      INSERT, UPDATE (revoked_at, last_used_at)
    ON api_keys TO worksible_api;

-- worksible_key_lookup(key_id): the one look-up made before the company is
-- known (SECURITY DEFINER, runs as the owner). Zero or one row; expires_at in
-- Unix seconds (NULL: never); rate_limit requests per rate_window seconds.
CREATE FUNCTION worksible_key_lookup(p_key_id text)
RETURNS TABLE (api_key_id text, company_id text, secret_hash bytea,
               secret_version smallint, scopes text[], ip_allowlist text[],
               expires_at bigint, revoked boolean, plan text,
               api_access boolean, rate_limit integer, rate_window integer)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT k.id, k.company_id, k.secret_hash, k.secret_version, k.scopes,
           (SELECT coalesce(array_agg(host(c) || '/' || masklen(c)), '{}')
            FROM unnest(k.ip_allowlist) AS c),
           extract(epoch FROM k.expires_at)::bigint, k.revoked_at IS NOT NULL,
           p.name, p.api_access, p.rate_limit, p.rate_window
    FROM api_keys k
    JOIN companies c ON c.id = k.company_id
    JOIN plans p ON p.name = c.plan
    WHERE k.key_id = p_key_id
$$;

REVOKE ALL ON FUNCTION worksible_key_lookup(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION worksible_key_lookup(text) TO worksible_api;
