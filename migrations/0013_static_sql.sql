-- Static SQL for the REST API's lists and retrieves (issue 16).
--
-- worksible_list and worksible_get (0003_api.sql, 0011_list_precision.sql)
-- build their query with EXECUTE format(...) on every call: PostgreSQL
-- parses and plans it afresh each time, and a filter is compared as text
-- (t.status::text = '404'), which no index serves. Here each resource gets
-- its own two functions whose queries are static SQL, so PL/pgSQL plans
-- each once per session (connection) and keeps the plan:
--
--   worksible_list_<table>(company, limit, starting_after, ending_before,
--                          filters jsonb) -> the list object
--   worksible_get_<table>(company, id) -> the object, or NULL
--
-- The module sends "SELECT worksible_list_<table>($1, $2, $3, $4,
-- $5::jsonb)" and "SELECT worksible_get_<table>($1, $2)" as named prepared
-- statements, one of each per connection (worksible_postgres prepare=on).
--
-- They are generated below from one template per kind, at migration time
-- (a DO block, format()); what is generated is static SQL: the only
-- EXECUTE is the CREATE FUNCTION itself. A list has one static query per
-- direction of travel (newest first, or oldest first for ending_before)
-- and per "leading" filter: the filter whose index the query walks
-- (company_id, <filter>, created_at DESC, id DESC), chosen in the
-- resource's order below when present; the other filters are residual
-- conditions ("v IS NULL OR col = v") checked on the rows that index
-- gives. The plans are generic (plan_cache_mode = force_generic_plan on
-- the list functions: a custom plan, made again on every call, would cost
-- what static SQL is here to save); generic plans of these shapes are the
-- index walks a custom plan would choose: the keyset cursor and the
-- created_at bounds are index conditions whatever their values (no
-- cursor: ('infinity', ''); no bound: -infinity .. infinity; so a row
-- whose created_at were 'infinity' would never be listed: none is, the
-- columns default to now()).
--
-- Same public behaviour as worksible_list / worksible_get, errors
-- included (SQLSTATE WS400, DETAIL = the parameter), plus: a filter name
-- the resource does not have is WS400 naming it (worksible_list turned it
-- into SQL and failed with 42703), and request_logs' status is compared
-- as a smallint (index request_logs_company_status), not as text; a
-- status that is not three digits 100..599 is WS400 status.
--
-- worksible_list and worksible_get stay for callers outside the module
-- (any table, any object function); the wrappers of 0003 and 0005 now call
-- the static functions.

-- worksible_list_bounds(filters) -> (lo, hi): the created_at[gte|gt|lte|lt]
--   members of a list's filters (RFC 3339 text) as one half-open range of
--   stored times, lo <= created_at < hi, at the shown precision
--   (worksible_created_bound, 0011): -infinity and infinity when absent.
--   Several bounds on a side: the tightest. Errors: WS400 naming the
--   first member (in jsonb's key order, as worksible_list) that PostgreSQL
--   cannot read as a time.
CREATE FUNCTION worksible_list_bounds(p_filters jsonb,
                                      OUT lo timestamptz, OUT hi timestamptz)
LANGUAGE plpgsql STABLE SECURITY INVOKER AS $$
DECLARE
    col  text;
    val  text;
    t    timestamptz;
BEGIN
    lo := '-infinity';
    hi := 'infinity';
    FOR col, val IN
        SELECT key, value FROM jsonb_each_text(p_filters)
        WHERE key IN ('created_at[gte]', 'created_at[gt]',
                      'created_at[lte]', 'created_at[lt]')
    LOOP
        BEGIN
            t := worksible_created_bound(substring(col FROM '\[(\w+)\]'),
                                         val::timestamptz);
        EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format
                    OR invalid_time_zone_displacement_value THEN
            RAISE EXCEPTION USING ERRCODE = 'WS400',
                MESSAGE = 'This is not a time', DETAIL = col;
        END;
        IF col IN ('created_at[gte]', 'created_at[gt]') THEN
            lo := greatest(lo, t);
        ELSE
            hi := least(hi, t);
        END IF;
    END LOOP;
END
$$;

-- worksible_list_cursor_missing(starting_after): raises WS400 "No object
--   with this id is in the list" naming starting_after when it is not
--   NULL, else ending_before. Called when a cursor is not one of the
--   company's rows of the list.
CREATE FUNCTION worksible_list_cursor_missing(p_starting_after text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'WS400',
        MESSAGE = 'No object with this id is in the list',
        DETAIL = CASE WHEN p_starting_after IS NOT NULL
                      THEN 'starting_after' ELSE 'ending_before' END;
END
$$;

-- worksible_list_status(filters) -> (lo, hi): request_logs' status filters
--   as a smallint range: "status" a code (three digits, 100..599) -> code
--   .. code; "status[class]" a digit 1..5 -> N00 .. N99; NULLs when absent
--   (both: the class, the code checked by the caller too). Errors: WS400
--   status for any other value.
CREATE FUNCTION worksible_list_status(p_filters jsonb,
                                      OUT code smallint,
                                      OUT lo smallint, OUT hi smallint)
LANGUAGE plpgsql IMMUTABLE SECURITY INVOKER AS $$
DECLARE
    v text;
BEGIN
    v := p_filters->>'status';
    IF v IS NOT NULL THEN
        IF v !~ '^[1-5][0-9][0-9]$' THEN
            RAISE EXCEPTION USING ERRCODE = 'WS400',
                MESSAGE = 'status must be from 100 to 599', DETAIL = 'status';
        END IF;
        code := v::smallint;
    END IF;
    v := p_filters->>'status[class]';
    IF v IS NOT NULL THEN
        IF v !~ '^[1-5]$' THEN
            RAISE EXCEPTION USING ERRCODE = 'WS400',
                MESSAGE = 'status[class] must be a digit from 1 to 5',
                DETAIL = 'status';
        END IF;
        lo := v::smallint * 100;
        hi := v::smallint * 100 + 99;
    END IF;
END
$$;

-- worksible_ulid_time(id) -> the time in a prefix_ULID id (worksible_id,
--   the module's request ids): its first 10 ULID characters, milliseconds
--   since the Unix epoch; NULL when what follows the first "_" is not 26
--   characters of Crockford's base 32.
CREATE FUNCTION worksible_ulid_time(p_id text) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_timestamp(sum((strpos('0123456789ABCDEFGHJKMNPQRSTVWXYZ',
                                    substr(u, i, 1)) - 1)::bigint
                            << (5 * (10 - i))) / 1000.0)
    FROM (SELECT substr(p_id, strpos(p_id, '_') + 1) AS u) x,
         generate_series(1, 10) i
    WHERE u ~ '^[0-7][0-9A-HJKMNP-TV-Z]{25}$'
$$;

-- The generator: a temporary table of the resources, one row per filter,
-- and the two templates. Each filter is
--   name     its name in the filters object (the query parameter)
--   var      the PL/pgSQL variable holding its value (NULL: absent)
--   decl     that variable's declaration and value
--   test     the condition on the row when the variable is set
--   lead     1, 2...: may lead, in this order (its index exists); NULL: never
CREATE TEMPORARY TABLE worksible_list_filters (
    tbl   text NOT NULL,
    name  text NOT NULL,
    var   text NOT NULL,
    decl  text NOT NULL,
    test  text NOT NULL,
    lead  integer
) ON COMMIT DROP;

INSERT INTO worksible_list_filters VALUES
    ('freelancers', 'status', 'f_status', $s$f_status text := p_filters->>'status';$s$,
     't.status = f_status', 1),
    ('projects', 'status', 'f_status', $s$f_status text := p_filters->>'status';$s$,
     't.status = f_status', 1),
    ('contracts', 'freelancer_id', 'f_freelancer_id',
     $s$f_freelancer_id text := p_filters->>'freelancer_id';$s$,
     't.freelancer_id = f_freelancer_id', 1),
    ('contracts', 'project_id', 'f_project_id',
     $s$f_project_id text := p_filters->>'project_id';$s$,
     't.project_id = f_project_id', 2),
    ('contracts', 'status', 'f_status', $s$f_status text := p_filters->>'status';$s$,
     't.status = f_status', 3),
    ('contracts', 'type', 'f_type', $s$f_type text := p_filters->>'type';$s$,
     't.type = f_type', NULL),
    ('timesheets', 'contract_id', 'f_contract_id',
     $s$f_contract_id text := p_filters->>'contract_id';$s$,
     't.contract_id = f_contract_id', 1),
    ('timesheets', 'status', 'f_status', $s$f_status text := p_filters->>'status';$s$,
     't.status = f_status', 2),
    ('invoices', 'contract_id', 'f_contract_id',
     $s$f_contract_id text := p_filters->>'contract_id';$s$,
     't.contract_id = f_contract_id', 1),
    ('invoices', 'status', 'f_status', $s$f_status text := p_filters->>'status';$s$,
     't.status = f_status', 2),
    ('payments', 'invoice_id', 'f_invoice_id',
     $s$f_invoice_id text := p_filters->>'invoice_id';$s$,
     't.invoice_id = f_invoice_id', 1),
    ('payouts', 'freelancer_id', 'f_freelancer_id',
     $s$f_freelancer_id text := p_filters->>'freelancer_id';$s$,
     't.freelancer_id = f_freelancer_id', 1),
    ('payouts', 'status', 'f_status', $s$f_status text := p_filters->>'status';$s$,
     't.status = f_status', 2),
    -- status: a code walks (company_id, status, created_at DESC) for that
    -- code; a class walks the same index over its 100 codes
    ('request_logs', 'status', 'f_status', 'f_status smallint := st.code;',
     't.status = f_status', 2),
    ('request_logs', 'status[class]', 'f_status_lo',
     'f_status_lo smallint := st.lo; f_status_hi smallint := st.hi;',
     't.status BETWEEN f_status_lo AND f_status_hi', 3),
    ('request_logs', 'api_key_id', 'f_api_key_id',
     $s$f_api_key_id text := p_filters->>'api_key_id';$s$,
     't.api_key_id = f_api_key_id', 1),
    ('request_logs', 'method', 'f_method', $s$f_method text := p_filters->>'method';$s$,
     't.method = f_method', NULL),
    -- a prefix, matched literally: LIKE's escape character is the backslash
    ('request_logs', 'path[prefix]', 'f_path',
     $s$f_path text := regexp_replace(p_filters->>'path[prefix]', '([\\%_])', '\\\1', 'g') || '%';$s$,
     't.path LIKE f_path', NULL);

DO $gen$
DECLARE
    res       record;
    f         record;
    known     text;
    decls     text;
    assigns   text;
    residual  text;
    branches  text;
    leads     text[];
    lead      text;
    dir       text;
    body      text;
    query     text;
    plain     text;
BEGIN
    FOR res IN
        SELECT * FROM (VALUES
            ('freelancers', 'worksible_freelancer_object', '/v1/freelancers'),
            ('projects', 'worksible_project_object', '/v1/projects'),
            ('contracts', 'worksible_contract_object', '/v1/contracts'),
            ('timesheets', 'worksible_timesheet_object', '/v1/timesheets'),
            ('invoices', 'worksible_invoice_object', '/v1/invoices'),
            ('payments', 'worksible_payment_object', '/v1/payments'),
            ('payouts', 'worksible_payout_object', '/v1/payouts'),
            ('request_logs', 'worksible_request_log_object', '/v1/request_logs'),
            ('api_keys', 'worksible_api_key_object', '/v1/api_keys'))
            AS r (tbl, object, url)
    LOOP
        known := '"created_at[gte]","created_at[gt]","created_at[lte]","created_at[lt]"';
        decls := '';
        residual := '';
        leads := ARRAY[NULL];

        assigns := '';
        IF res.tbl = 'request_logs' THEN
            decls := E'    st      record;\n';
            assigns := E'        st := worksible_list_status(p_filters);\n';
        END IF;

        FOR f IN SELECT * FROM worksible_list_filters WHERE tbl = res.tbl
                 ORDER BY lead NULLS LAST, name
        LOOP
            known := known || ',"' || f.name || '"';
            -- declared NULL; set from the filters once they passed
            decls := decls || '    '
                     || regexp_replace(f.decl, ' := [^;]*;', ';', 'g') || chr(10);
            assigns := assigns || '        '
                       || regexp_replace(f.decl, '(\w+) \w+ := ', '\1 := ', 'g')
                       || chr(10);
            residual := residual || format(E'\n              AND (%s IS NULL OR %s)',
                                           f.var, f.test);
            IF f.lead IS NOT NULL THEN
                leads := leads || (f.var || ' ' || f.test);
            END IF;
        END LOOP;

        -- one static query per direction and leading filter: IF the
        -- first leading filter is set THEN ... ELSIF ... ELSE no leader
        branches := '';
        FOREACH dir IN ARRAY ARRAY['DESC', 'ASC'] LOOP
            branches := branches || CASE dir WHEN 'DESC'
                THEN E'    IF p_ending_before IS NULL THEN\n'
                ELSE E'    ELSE\n' END;
            FOR i IN 1 .. array_length(leads, 1) LOOP
                lead := leads[i];
                -- $1 table, $2 leading condition, $3 residual conditions,
                -- $4 direction, $5 cursor comparison, $6 object, $7 url
                query := format($q$
        WITH page AS (
            SELECT t AS r, t.created_at, t.id
            FROM %1$s t
            WHERE t.company_id = p_company_id%2$s%3$s
              AND t.created_at >= lo AND t.created_at < hi
              AND (t.created_at, t.id) %5$s (cur_ts, cur_id)
            ORDER BY t.created_at %4$s, t.id %4$s
            LIMIT lim + 1)
        SELECT json_build_object(
            'object', 'list',
            'data', (SELECT coalesce(json_agg(%6$s(s.r)
                                              ORDER BY s.created_at DESC, s.id DESC),
                                     '[]')
                     FROM (SELECT * FROM page
                           ORDER BY created_at %4$s, id %4$s LIMIT lim) s),
            'has_more', (SELECT count(*) FROM page) > lim,
            'url', %7$L)
        INTO result;$q$,
                    res.tbl,
                    CASE WHEN lead IS NULL THEN ''
                         ELSE E'\n              AND ' || substr(lead, strpos(lead, ' ') + 1) END,
                    residual, dir,
                    CASE dir WHEN 'DESC' THEN '<' ELSE '>' END,
                    res.object, res.url);
                IF i = 1 THEN
                    plain := query;
                    CONTINUE;
                END IF;
                branches := branches
                    || format(E'        %s %s IS NOT NULL THEN',
                              CASE i WHEN 2 THEN 'IF' ELSE 'ELSIF' END,
                              split_part(lead, ' ', 1))
                    || query || chr(10);
            END LOOP;
            IF array_length(leads, 1) > 1 THEN
                branches := branches || E'        ELSE' || plain
                            || E'\n        END IF;\n';
            ELSE
                branches := branches || plain || chr(10);
            END IF;
        END LOOP;
        branches := branches || '    END IF;';

        body := format($f$
DECLARE
    lim     integer := coalesce(p_limit, 20);
    lo      timestamptz := '-infinity';
    hi      timestamptz := 'infinity';
    cursor  text := coalesce(p_starting_after, p_ending_before);
    cur_ts  timestamptz := 'infinity';
    cur_id  text := '';
    bad     text;
    result  json;
%3$s
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

    IF p_filters IS NOT NULL AND p_filters <> '{}' THEN
        SELECT k INTO bad FROM jsonb_object_keys(p_filters) k
        WHERE k <> ALL (%2$L::text[]) LIMIT 1;
        IF bad IS NOT NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'WS400',
                MESSAGE = 'This list has no such filter', DETAIL = bad;
        END IF;
        IF p_filters ?| ARRAY['created_at[gte]', 'created_at[gt]',
                              'created_at[lte]', 'created_at[lt]'] THEN
            SELECT b.lo, b.hi INTO lo, hi FROM worksible_list_bounds(p_filters) b;
        END IF;
%7$s    END IF;

    IF cursor IS NOT NULL THEN%5$s
        SELECT t.created_at, t.id INTO cur_ts, cur_id
        FROM %1$s t WHERE t.company_id = p_company_id AND t.id = cursor;
        IF NOT FOUND THEN
            PERFORM worksible_list_cursor_missing(p_starting_after);
        END IF;%6$s
    END IF;

%4$s

    RETURN result;
END
$f$, res.tbl, '{' || known || '}', decls, branches,
        CASE res.tbl WHEN 'request_logs' THEN $c$
        -- no index finds a row by id alone: a request id's ULID holds the
        -- moment the module made it, just after the request began
        -- (created_at), so look within a second of it first, on
        -- (company_id, created_at, id), and only then everywhere
        cur_ts := worksible_ulid_time(cursor);
        IF cur_ts IS NOT NULL THEN
            SELECT t.created_at, t.id INTO cur_ts, cur_id
            FROM request_logs t
            WHERE t.company_id = p_company_id AND t.id = cursor
              AND t.created_at BETWEEN cur_ts - interval '1 second'
                                   AND cur_ts + interval '1 second';
        END IF;
        IF cur_ts IS NULL OR cur_id = '' THEN$c$ ELSE '' END,
        CASE res.tbl WHEN 'request_logs' THEN $c$
        END IF;$c$ ELSE '' END,
        assigns);

        EXECUTE format($c$
CREATE FUNCTION worksible_list_%1$s(p_company_id text, p_limit integer,
                                    p_starting_after text, p_ending_before text,
                                    p_filters jsonb DEFAULT '{}')
RETURNS json
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET plan_cache_mode = force_generic_plan
AS %2$L$c$, res.tbl, body);

        EXECUTE format($c$
COMMENT ON FUNCTION worksible_list_%1$s(text, integer, text, text, jsonb) IS
%2$L$c$, res.tbl, format(
'worksible_list_%1$s(company, limit, starting_after, ending_before, filters) '
'-> the list object {"object":"list","data":[%2$s(row)...],"has_more",'
'"url":"%3$s"}, as worksible_list (0003_api.sql) on %1$s, in static SQL '
'(0013_static_sql.sql). filters: {%4$s}. Errors: WS400 naming the parameter.',
            res.tbl, res.object, res.url, known));

        EXECUTE format($c$
CREATE FUNCTION worksible_get_%1$s(p_company_id text, p_id text)
RETURNS json
LANGUAGE plpgsql SECURITY INVOKER AS $b$
DECLARE
    result json;
BEGIN
    PERFORM set_config('worksible.company_id', coalesce(p_company_id, ''), true);
    SELECT %2$s(t) INTO result
    FROM %1$s t WHERE t.company_id = p_company_id AND t.id = p_id;
    RETURN result;
END
$b$$c$, res.tbl, res.object);

        EXECUTE format($c$
COMMENT ON FUNCTION worksible_get_%1$s(text, text) IS %2$L$c$, res.tbl, format(
'worksible_get_%1$s(company, id) -> %2$s of the company''s row of %1$s '
'with that id, or NULL when the id is unknown, malformed or another '
'company''s (the module answers 404). Static SQL (0013_static_sql.sql).',
            res.tbl, res.object));

        EXECUTE format('REVOKE ALL ON FUNCTION worksible_list_%1$s(text, integer, text, text, jsonb), '
                       'worksible_get_%1$s(text, text) FROM PUBLIC', res.tbl);
        EXECUTE format('GRANT EXECUTE ON FUNCTION worksible_list_%1$s(text, integer, text, text, jsonb), '
                       'worksible_get_%1$s(text, text) TO worksible_api', res.tbl);
    END LOOP;
END
$gen$;

-- the wrappers of 0003 and 0005, on the static functions
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
    RETURN worksible_list_freelancers(p_company_id, p_limit, p_starting_after,
                                      p_ending_before,
                                      jsonb_strip_nulls(jsonb_build_object('status', p_status)));
END
$$;

CREATE OR REPLACE FUNCTION worksible_freelancer_get(p_company_id text, p_id text) RETURNS json
LANGUAGE sql SECURITY INVOKER AS $$
    SELECT worksible_get_freelancers(p_company_id, p_id)
$$;

CREATE OR REPLACE FUNCTION worksible_api_keys_list(p_company_id text, p_limit integer,
                                                   p_starting_after text, p_ending_before text)
RETURNS json
LANGUAGE sql SECURITY INVOKER AS $$
    SELECT worksible_list_api_keys(p_company_id, p_limit, p_starting_after, p_ending_before)
$$;

GRANT EXECUTE ON FUNCTION worksible_ulid_time(text) TO worksible_api;
REVOKE ALL ON FUNCTION worksible_list_bounds(jsonb),
                       worksible_list_cursor_missing(text),
                       worksible_list_status(jsonb)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION worksible_list_bounds(jsonb),
                          worksible_list_cursor_missing(text),
                          worksible_list_status(jsonb)
    TO worksible_api;

-- worksible_ts(t): as in 0001_core.sql (RFC 3339 in UTC with Z and whole
--   seconds), declared STABLE, which its body is (to_char): an IMMUTABLE
--   SQL function whose body is not is never inlined, so every timestamp of
--   every object ran as a function call of its own (an executor set up and
--   torn down per call: two to five per object, a third of a list's time).
--   STABLE, it inlines into the object functions.
CREATE OR REPLACE FUNCTION worksible_ts(t timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
$$;

-- request_logs' filter indexes end with id, as the list's order does
-- (created_at DESC, id DESC): a generic plan walks them for status = code
-- or api_key_id = key and stops at the page's end, where without id it
-- preferred to walk the newest rows and filter (the sort the missing
-- column needs looked dearer than filtering). Same number of indexes, so
-- the same work per inserted row.
DROP INDEX request_logs_company_status;
CREATE INDEX request_logs_company_status
    ON request_logs (company_id, status, created_at DESC, id DESC);
DROP INDEX request_logs_company_key;
CREATE INDEX request_logs_company_key
    ON request_logs (company_id, api_key_id, created_at DESC, id DESC);
