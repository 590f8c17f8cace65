-- API: the SQL functions the module calls.
--
-- The module connects as worksible_api and sends one statement per request
-- (PQsendQueryParams, text parameters, one text result). Every function here:
--   * is SECURITY INVOKER and first binds itself to the caller's company with
--     set_config('worksible.company_id', p_company_id, true), so row-level
--     security shows it that company's rows only (until the transaction ends);
--   * builds the response body in PostgreSQL: json_build_object, "object"
--     first, timestamps by worksible_ts() (RFC 3339, UTC, Z), money as JSON
--     integers in minor units (API.md, Conventions);
--   * reports a client error as SQLSTATE WS400 with DETAIL = the parameter's
--     name; the module answers 400 parameter_invalid with param = DETAIL.

-- worksible_company_me(company id) -> the company object
--   {"object":"company","id","name","plan","currency","created_at","updated_at"}
--   or NULL if there is no such company. GET /v1/companies/me.
CREATE FUNCTION worksible_company_me(p_company_id text) RETURNS json
LANGUAGE plpgsql SECURITY INVOKER AS $$
DECLARE
    result json;
BEGIN
    PERFORM set_config('worksible.company_id', coalesce(p_company_id, ''), true);
    SELECT json_build_object(
               'object', 'company',
               'id', c.id,
               'name', c.name,
               'plan', c.plan,
               'currency', c.currency,
               'created_at', worksible_ts(c.created_at),
               'updated_at', worksible_ts(c.updated_at))
    INTO result
    FROM companies c
    WHERE c.id = p_company_id;
    RETURN result;
END
$$;

-- worksible_freelancer_object(row) -> the freelancer object
--   {"object":"freelancer","id","email","name","country","status",
--    "hourly_rate": integer|null,"currency": text|null,"created_at","updated_at"}
--   No company binding of its own: callers have already read the row.
CREATE FUNCTION worksible_freelancer_object(f freelancers) RETURNS json
LANGUAGE sql STABLE SECURITY INVOKER AS $$
    SELECT json_build_object(
        'object', 'freelancer',
        'id', f.id,
        'email', f.email,
        'name', f.name,
        'country', f.country,
        'status', f.status,
        'hourly_rate', f.hourly_rate,
        'currency', f.currency,
        'created_at', worksible_ts(f.created_at),
        'updated_at', worksible_ts(f.updated_at))
$$;

-- worksible_list(company, table, object function, url, limit,
--                starting_after, ending_before, filters) -> the list object
--   {"object":"list","data":[...],"has_more":bool,"url":url} of the
--   company's rows of `table`, each built by `object`(row). Newest first:
--   created_at DESC, id DESC, keyset pagination on (created_at, id) with
--   Stripe semantics (starting_after: the page of older rows after that id;
--   ending_before: the page of newer rows just before it, still newest
--   first; has_more: more rows past this page in the direction of travel).
--   filters: a JSON object of column -> text value, all equal (compared
--   as text: "status": "404" matches a smallint), the ranges
--   "created_at[gte|gt|lte|lt]" -> an RFC 3339 time, "status[class]" ->
--   a digit 1..5 (status from N00 to N99), "path[prefix]" -> the start of
--   path, matched literally (% _ \ escaped for LIKE). The module validates
--   names and values. NULL arguments are absent: limit 20.
--   Errors, SQLSTATE WS400 with DETAIL = the parameter: both cursors
--   (ending_before), limit outside 1..100 (limit), a cursor that is not one
--   of this company's rows of the table (starting_after | ending_before), a
--   time PostgreSQL cannot read (created_at[...]), a status[class] that is
--   not 1..5 (status).
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
        IF col LIKE 'created\_at[%]' THEN
            BEGIN
                filter := filter || format(' AND t.created_at %s %L::timestamptz',
                    CASE col WHEN 'created_at[gte]' THEN '>='
                             WHEN 'created_at[gt]' THEN '>'
                             WHEN 'created_at[lte]' THEN '<='
                             ELSE '<' END,
                    val::timestamptz);
            EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format
                        OR invalid_time_zone_displacement_value THEN
                RAISE EXCEPTION USING ERRCODE = 'WS400',
                    MESSAGE = 'This is not a time', DETAIL = col;
            END;
        ELSIF col = 'status[class]' THEN
            IF val !~ '^[1-5]$' THEN
                RAISE EXCEPTION USING ERRCODE = 'WS400',
                    MESSAGE = 'status[class] must be a digit from 1 to 5',
                    DETAIL = 'status';
            END IF;
            filter := filter || format(' AND t.status BETWEEN %s AND %s',
                                       val::integer * 100, val::integer * 100 + 99);
        ELSIF col = 'path[prefix]' THEN
            -- LIKE's escape character is the backslash
            filter := filter || format(' AND t.path LIKE %L || ''%%''',
                regexp_replace(val, '([\\%_])', '\\\1', 'g'));
        ELSE
            -- as text, so that "404" also matches a smallint column
            filter := filter || format(' AND t.%I::text = %L', col, val);
        END IF;
    END LOOP;

    IF cursor IS NOT NULL THEN
        EXECUTE format('SELECT t.created_at, t.id FROM %s t
                        WHERE t.company_id = $1 AND t.id = $2', p_table)
            INTO cur_ts, cur_id USING p_company_id, cursor;
        IF cur_id IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'WS400', MESSAGE = 'No object with this id is in the list',
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

-- worksible_freelancers_list(company id, limit, starting_after,
--   ending_before, status) -> the list of the company's freelancers
--   (worksible_list), status NULL or invited|active|offboarded (else WS400
--   status). GET /v1/freelancers.
CREATE FUNCTION worksible_freelancers_list(p_company_id text, p_limit integer,
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

-- worksible_get(company, table, object function, id) -> the object of the
--   company's row of `table` with that id, built by `object`(row), or NULL
--   when the id is unknown, malformed or another company's (the module
--   answers 404 resource_not_found). GET /v1/<resource>/{id}.
CREATE FUNCTION worksible_get(p_company_id text, p_table regclass,
                              p_object regproc, p_id text)
RETURNS json
LANGUAGE plpgsql SECURITY INVOKER AS $$
DECLARE
    result json;
BEGIN
    PERFORM set_config('worksible.company_id', coalesce(p_company_id, ''), true);
    EXECUTE format('SELECT %s(t) FROM %s t WHERE t.company_id = $1 AND t.id = $2',
                   p_object, p_table)
        INTO result USING p_company_id, p_id;
    RETURN result;
END
$$;

-- worksible_freelancer_get(company id, freelancer id): worksible_get for
--   freelancers.
CREATE FUNCTION worksible_freelancer_get(p_company_id text, p_id text) RETURNS json
LANGUAGE sql SECURITY INVOKER AS $$
    SELECT worksible_get(p_company_id, 'freelancers', 'worksible_freelancer_object', p_id)
$$;

REVOKE ALL ON FUNCTION worksible_list(text, regclass, regproc, text, integer,
                                      text, text, jsonb),
                       worksible_get(text, regclass, regproc, text),
                       worksible_company_me(text),
                       worksible_freelancer_object(freelancers),
                       worksible_freelancers_list(text, integer, text, text, text),
                       worksible_freelancer_get(text, text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION worksible_list(text, regclass, regproc, text, integer,
                                         text, text, jsonb),
                          worksible_get(text, regclass, regproc, text),
                          worksible_company_me(text),
                          worksible_freelancer_object(freelancers),
                          worksible_freelancers_list(text, integer, text, text, text),
                          worksible_freelancer_get(text, text)
    TO worksible_api;
