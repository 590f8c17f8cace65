-- Lists compare created_at at the precision they show it (whole seconds,
-- worksible_ts): created_at[lte] = an object's own created_at includes it,
-- created_at[gt] the same time leaves it out, whatever microseconds the
-- row holds. Only the created_at[...] branch of worksible_list changes.

-- worksible_created_bound(op, t) -> the stored-time bound that compares
--   like "the shown (whole-second) created_at op t": gte -> created_at >=
--   ceil(t), gt -> >= floor(t) + 1 s, lte -> < floor(t) + 1 s, lt -> <
--   ceil(t), floor and ceil to whole seconds.
CREATE FUNCTION worksible_created_bound(p_op text, p_t timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN p_op IN ('gte', 'lt') AND p_t <> date_trunc('second', p_t)
            THEN date_trunc('second', p_t) + interval '1 second'
        WHEN p_op IN ('gte', 'lt')
            THEN p_t
        ELSE date_trunc('second', p_t) + interval '1 second'
    END
$$;

CREATE OR REPLACE FUNCTION worksible_list(p_company_id text, p_table regclass,
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
                    CASE WHEN col IN ('created_at[gte]', 'created_at[gt]')
                         THEN '>=' ELSE '<' END,
                    worksible_created_bound(substring(col FROM '\[(\w+)\]'),
                                            val::timestamptz));
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
