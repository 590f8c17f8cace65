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

-- worksible_freelancers_list(company id, limit, starting_after, ending_before,
--                            status) -> list object. GET /v1/freelancers.
--   {"object":"list","data":[freelancer...],"has_more":bool,"url":"/v1/freelancers"}
--   Newest first: created_at DESC, id DESC. Keyset pagination on
--   (created_at, id), Stripe semantics: starting_after = the page of older
--   objects right after that one; ending_before = the page of newer objects
--   right before it (still newest first); has_more = more objects exist past
--   this page in the direction of travel. NULL arguments mean absent:
--   limit 20, all statuses. The cursor object itself need not match status.
--   Errors (SQLSTATE WS400, DETAIL = param): a cursor that is not one of this
--   company's freelancers ('cursor not found'; another company's id is the
--   same as an unknown one); both cursors at once (DETAIL ending_before);
--   limit outside 1..100; status not invited|active|offboarded. The module
--   checks the last three first; these are the database's own guard.
CREATE FUNCTION worksible_freelancers_list(p_company_id text, p_limit integer,
                                           p_starting_after text, p_ending_before text,
                                           p_status text)
RETURNS json
LANGUAGE plpgsql SECURITY INVOKER
-- plan each call with its values: a cached generic plan cannot fold the
-- "absent" branches and would filter the company's rows instead of seeking
-- the cursor in the index
SET plan_cache_mode = force_custom_plan AS $$
DECLARE
    lim       integer := coalesce(p_limit, 20);
    cur_ts    timestamptz;
    cur_id    text;
    page      freelancers[];
    has_more  boolean;
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
    IF p_status IS NOT NULL AND p_status NOT IN ('invited', 'active', 'offboarded') THEN
        RAISE EXCEPTION USING ERRCODE = 'WS400',
            MESSAGE = 'status must be invited, active or offboarded', DETAIL = 'status';
    END IF;

    IF coalesce(p_starting_after, p_ending_before) IS NOT NULL THEN
        SELECT f.created_at, f.id INTO cur_ts, cur_id
        FROM freelancers f
        WHERE f.company_id = p_company_id
          AND f.id = coalesce(p_starting_after, p_ending_before);
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'WS400', MESSAGE = 'cursor not found',
                DETAIL = CASE WHEN p_starting_after IS NOT NULL
                              THEN 'starting_after' ELSE 'ending_before' END;
        END IF;
    END IF;

    IF p_ending_before IS NULL THEN
        -- first page, or older than the cursor: walk down the index
        SELECT array_agg(s.f ORDER BY (s.f).created_at DESC, (s.f).id DESC) INTO page
        FROM (SELECT f
              FROM freelancers f
              WHERE f.company_id = p_company_id
                AND (p_status IS NULL OR f.status = p_status)
                AND (cur_id IS NULL OR (f.created_at, f.id) < (cur_ts, cur_id))
              ORDER BY f.created_at DESC, f.id DESC
              LIMIT lim + 1) s;
    ELSE
        -- newer than the cursor: walk up from it, the nearest first
        SELECT array_agg(s.f ORDER BY (s.f).created_at, (s.f).id) INTO page
        FROM (SELECT f
              FROM freelancers f
              WHERE f.company_id = p_company_id
                AND (p_status IS NULL OR f.status = p_status)
                AND (f.created_at, f.id) > (cur_ts, cur_id)
              ORDER BY f.created_at, f.id
              LIMIT lim + 1) s;
    END IF;

    has_more := coalesce(cardinality(page), 0) > lim;
    RETURN json_build_object(
        'object', 'list',
        'data', (SELECT coalesce(json_agg(worksible_freelancer_object(p)
                                          ORDER BY p.created_at DESC, p.id DESC), '[]')
                 FROM unnest(page[1:lim]) AS p),
        'has_more', has_more,
        'url', '/v1/freelancers');
END
$$;

-- worksible_freelancer_get(company id, freelancer id) -> the freelancer
--   object, or NULL when the id is unknown, malformed or another company's
--   (the module answers 404 resource_not_found). GET /v1/freelancers/{id}.
CREATE FUNCTION worksible_freelancer_get(p_company_id text, p_id text) RETURNS json
LANGUAGE plpgsql SECURITY INVOKER AS $$
DECLARE
    result json;
BEGIN
    PERFORM set_config('worksible.company_id', coalesce(p_company_id, ''), true);
    SELECT worksible_freelancer_object(f) INTO result
    FROM freelancers f
    WHERE f.company_id = p_company_id AND f.id = p_id;
    RETURN result;
END
$$;

REVOKE ALL ON FUNCTION worksible_company_me(text),
                       worksible_freelancer_object(freelancers),
                       worksible_freelancers_list(text, integer, text, text, text),
                       worksible_freelancer_get(text, text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION worksible_company_me(text),
                          worksible_freelancer_object(freelancers),
                          worksible_freelancers_list(text, integer, text, text, text),
                          worksible_freelancer_get(text, text)
    TO worksible_api;
