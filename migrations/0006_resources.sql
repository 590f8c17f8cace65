-- The write path of the first resources (API.md, Resources): the company,
-- freelancers, projects, contracts. The module validates each body's shape
-- and types in C and hands the members over as one jsonb; these functions
-- check what needs the database (references, currencies, countries,
-- calendars, pairs of fields) and write in one statement's transaction,
-- bound to the caller's company by row-level security. Every client error
-- is SQLSTATE WS400 with DETAIL = the field (the module answers 400
-- parameter_invalid naming it). A PATCH changes only the members sent; a
-- null member clears an optional field.

-- worksible_check(ok, field, message): raises WS400 naming field unless ok.
CREATE FUNCTION worksible_check(p_ok boolean, p_field text, p_message text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF NOT coalesce(p_ok, false) THEN
        RAISE EXCEPTION USING ERRCODE = 'WS400', MESSAGE = p_message,
            DETAIL = p_field;
    END IF;
END
$$;

-- worksible_date(body, field) -> the member as a date (YYYY-MM-DD, a real
--   day), NULL when absent or null; WS400 naming field otherwise.
CREATE FUNCTION worksible_date(p jsonb, p_field text) RETURNS date
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN (p->>p_field)::date;
EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format THEN
    RAISE EXCEPTION USING ERRCODE = 'WS400',
        MESSAGE = p_field || ' is not a calendar date', DETAIL = p_field;
END
$$;

-- worksible_check_money(amount, amount field, currency): an amount and its
--   currency come together, and the currency is one of ISO 4217's.
CREATE FUNCTION worksible_check_money(p_amount bigint, p_field text,
                                      p_currency text)
RETURNS void
LANGUAGE sql STABLE AS $$
    SELECT worksible_check((p_amount IS NULL) = (p_currency IS NULL),
               CASE WHEN p_currency IS NULL THEN 'currency' ELSE p_field END,
               p_field || ' and currency go together');
    SELECT worksible_check(p_currency IS NULL
               OR EXISTS (SELECT 1 FROM currencies WHERE code = p_currency),
               'currency', 'currency is not an ISO 4217 code');
$$;

-- PATCH /v1/companies/me: {name}. Returns the company object.
CREATE FUNCTION worksible_company_update(p_company_id text, p jsonb)
RETURNS json
LANGUAGE plpgsql SECURITY INVOKER AS $$
BEGIN
    PERFORM set_config('worksible.company_id', coalesce(p_company_id, ''), true);
    IF p ? 'name' THEN
        UPDATE companies SET name = p->>'name' WHERE id = p_company_id;
    END IF;
    RETURN worksible_company_me(p_company_id);
END
$$;

-- POST /v1/freelancers and PATCH /v1/freelancers/{id} (p_id NULL:
--   create): {email, name, country, status, hourly_rate, currency} -> the
--   freelancer object, or NULL when the id is not found. status defaults to
--   invited.
CREATE FUNCTION worksible_freelancer_write(p_company_id text, p_id text,
                                           p jsonb)
RETURNS json
LANGUAGE plpgsql SECURITY INVOKER AS $$
DECLARE
    f freelancers;
BEGIN
    PERFORM set_config('worksible.company_id', coalesce(p_company_id, ''), true);
    IF p_id IS NULL THEN
        f.status := 'invited';
    ELSE
        SELECT * INTO f FROM freelancers
        WHERE company_id = p_company_id AND id = p_id FOR UPDATE;
        IF NOT FOUND THEN
            RETURN NULL;
        END IF;
    END IF;
    IF p ? 'email' THEN f.email := p->>'email'; END IF;
    IF p ? 'name' THEN f.name := p->>'name'; END IF;
    IF p ? 'country' THEN f.country := p->>'country'; END IF;
    IF p ? 'status' THEN f.status := p->>'status'; END IF;
    IF p ? 'hourly_rate' THEN f.hourly_rate := (p->>'hourly_rate')::bigint; END IF;
    IF p ? 'currency' THEN f.currency := p->>'currency'; END IF;

    PERFORM worksible_check(EXISTS (SELECT 1 FROM countries WHERE code = f.country),
                            'country', 'country is not an ISO 3166-1 alpha-2 code');
    PERFORM worksible_check_money(f.hourly_rate, 'hourly_rate', f.currency);

    IF p_id IS NULL THEN
        INSERT INTO freelancers (company_id, email, name, country, status,
                                 hourly_rate, currency)
        VALUES (p_company_id, f.email, f.name, f.country, f.status,
                f.hourly_rate, f.currency)
        RETURNING * INTO f;
    ELSE
        UPDATE freelancers SET email = f.email, name = f.name,
               country = f.country, status = f.status,
               hourly_rate = f.hourly_rate, currency = f.currency
        WHERE company_id = p_company_id AND id = p_id
        RETURNING * INTO f;
    END IF;
    RETURN worksible_freelancer_object(f);
END
$$;

-- The project object {"object":"project","id","name","description",
--   "status","budget": integer|null,"currency": text|null,"created_at",
--   "updated_at"}.
CREATE FUNCTION worksible_project_object(p projects) RETURNS json
LANGUAGE sql STABLE SECURITY INVOKER AS $$
    SELECT json_build_object(
        'object', 'project',
        'id', p.id,
        'name', p.name,
        'description', p.description,
        'status', p.status,
        'budget', p.budget,
        'currency', p.currency,
        'created_at', worksible_ts(p.created_at),
        'updated_at', worksible_ts(p.updated_at))
$$;

-- POST /v1/projects and PATCH /v1/projects/{id} (p_id NULL: create):
--   {name, description, status, budget, currency} -> the project object,
--   or NULL when the id is not found.
CREATE FUNCTION worksible_project_write(p_company_id text, p_id text, p jsonb)
RETURNS json
LANGUAGE plpgsql SECURITY INVOKER AS $$
DECLARE
    r projects;
BEGIN
    PERFORM set_config('worksible.company_id', coalesce(p_company_id, ''), true);
    IF p_id IS NULL THEN
        r.status := 'active';
    ELSE
        SELECT * INTO r FROM projects
        WHERE company_id = p_company_id AND id = p_id FOR UPDATE;
        IF NOT FOUND THEN
            RETURN NULL;
        END IF;
    END IF;
    IF p ? 'name' THEN r.name := p->>'name'; END IF;
    IF p ? 'description' THEN r.description := p->>'description'; END IF;
    IF p ? 'status' THEN r.status := p->>'status'; END IF;
    IF p ? 'budget' THEN r.budget := (p->>'budget')::bigint; END IF;
    IF p ? 'currency' THEN r.currency := p->>'currency'; END IF;
    PERFORM worksible_check_money(r.budget, 'budget', r.currency);
    IF p_id IS NULL THEN
        INSERT INTO projects (company_id, name, description, status, budget, currency)
        VALUES (p_company_id, r.name, r.description, r.status, r.budget, r.currency)
        RETURNING * INTO r;
    ELSE
        UPDATE projects SET name = r.name, description = r.description,
               status = r.status, budget = r.budget, currency = r.currency
        WHERE company_id = p_company_id AND id = p_id
        RETURNING * INTO r;
    END IF;
    RETURN worksible_project_object(r);
END
$$;

-- The contract object {"object":"contract","id","project_id",
--   "freelancer_id","type","rate","currency","status","start_date",
--   "end_date","created_at","updated_at"}; dates as YYYY-MM-DD.
CREATE FUNCTION worksible_contract_object(c contracts) RETURNS json
LANGUAGE sql STABLE SECURITY INVOKER AS $$
    SELECT json_build_object(
        'object', 'contract',
        'id', c.id,
        'project_id', c.project_id,
        'freelancer_id', c.freelancer_id,
        'type', c.type,
        'rate', c.rate,
        'currency', c.currency,
        'status', c.status,
        'start_date', to_char(c.start_date, 'YYYY-MM-DD'),
        'end_date', to_char(c.end_date, 'YYYY-MM-DD'),
        'created_at', worksible_ts(c.created_at),
        'updated_at', worksible_ts(c.updated_at))
$$;

-- POST /v1/contracts and PATCH /v1/contracts/{id} (p_id NULL: create):
--   {project_id, freelancer_id, type, rate, currency, status, start_date,
--   end_date} -> the contract object, or NULL when the id is not found.
--   A project or freelancer that is unknown or another company's is WS400
--   naming the field.
CREATE FUNCTION worksible_contract_write(p_company_id text, p_id text, p jsonb)
RETURNS json
LANGUAGE plpgsql SECURITY INVOKER AS $$
DECLARE
    c contracts;
BEGIN
    PERFORM set_config('worksible.company_id', coalesce(p_company_id, ''), true);
    IF p_id IS NULL THEN
        c.status := 'draft';
    ELSE
        SELECT * INTO c FROM contracts
        WHERE company_id = p_company_id AND id = p_id FOR UPDATE;
        IF NOT FOUND THEN
            RETURN NULL;
        END IF;
    END IF;
    IF p ? 'project_id' THEN c.project_id := p->>'project_id'; END IF;
    IF p ? 'freelancer_id' THEN c.freelancer_id := p->>'freelancer_id'; END IF;
    IF p ? 'type' THEN c.type := p->>'type'; END IF;
    IF p ? 'rate' THEN c.rate := (p->>'rate')::bigint; END IF;
    IF p ? 'currency' THEN c.currency := p->>'currency'; END IF;
    IF p ? 'status' THEN c.status := p->>'status'; END IF;
    IF p ? 'start_date' THEN c.start_date := worksible_date(p, 'start_date'); END IF;
    IF p ? 'end_date' THEN c.end_date := worksible_date(p, 'end_date'); END IF;

    PERFORM worksible_check(EXISTS (SELECT 1 FROM projects
                                    WHERE company_id = p_company_id AND id = c.project_id),
                            'project_id', 'No such project');
    PERFORM worksible_check(EXISTS (SELECT 1 FROM freelancers
                                    WHERE company_id = p_company_id AND id = c.freelancer_id),
                            'freelancer_id', 'No such freelancer');
    PERFORM worksible_check_money(c.rate, 'rate', c.currency);
    PERFORM worksible_check(c.end_date IS NULL OR c.start_date IS NULL
                            OR c.end_date >= c.start_date,
                            'end_date', 'end_date is before start_date');

    IF p_id IS NULL THEN
        INSERT INTO contracts (company_id, project_id, freelancer_id, type, rate,
                               currency, status, start_date, end_date)
        VALUES (p_company_id, c.project_id, c.freelancer_id, c.type, c.rate,
                c.currency, c.status, c.start_date, c.end_date)
        RETURNING * INTO c;
    ELSE
        UPDATE contracts SET project_id = c.project_id,
               freelancer_id = c.freelancer_id, type = c.type, rate = c.rate,
               currency = c.currency, status = c.status,
               start_date = c.start_date, end_date = c.end_date
        WHERE company_id = p_company_id AND id = p_id
        RETURNING * INTO c;
    END IF;
    RETURN worksible_contract_object(c);
END
$$;

GRANT SELECT ON currencies, countries TO worksible_api;
GRANT EXECUTE ON FUNCTION
    worksible_check(boolean, text, text),
    worksible_date(jsonb, text),
    worksible_check_money(bigint, text, text),
    worksible_company_update(text, jsonb),
    worksible_freelancer_write(text, text, jsonb),
    worksible_project_object(projects),
    worksible_project_write(text, text, jsonb),
    worksible_contract_object(contracts),
    worksible_contract_write(text, text, jsonb)
    TO worksible_api;
