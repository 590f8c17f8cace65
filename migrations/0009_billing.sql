-- The write path of timesheets, invoices, payments and payouts (API.md,
-- Resources), with their state machines. Like 0006: the module checks
-- shapes and types in C and hands the members over as one jsonb; these
-- functions check what needs the database and write in one transaction,
-- under row-level security. A client error is SQLSTATE WS400 with DETAIL =
-- the field (nested ones as line_items[0].unit_amount); a state change the
-- current state forbids is WS409 (409 state_conflict) and changes nothing.
-- Money is bigint minor units; every sum is computed in numeric and
-- refused past 2^53-1, the largest integer every JSON client reads exactly.

-- worksible_state_conflict(message): raises WS409.
CREATE FUNCTION worksible_state_conflict(p_message text) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'WS409', MESSAGE = p_message;
END
$$;

-- worksible_item_date(item, field, name) -> the member as a date; WS400
--   naming name (entries[0].date) when it is not a calendar day.
CREATE FUNCTION worksible_item_date(p jsonb, p_field text, p_name text)
RETURNS date
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN (p->>p_field)::date;
EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format THEN
    RAISE EXCEPTION USING ERRCODE = 'WS400',
        MESSAGE = p_name || ' is not a calendar date', DETAIL = p_name;
END
$$;

-- ---------------------------------------------------------------------------
-- Timesheets: draft -> submitted -> approved | rejected; only drafts change.

-- The timesheet object {"object":"timesheet","id","contract_id",
--   "period_start","period_end","status","entries":[{"date","minutes",
--   "description"}],"total_minutes","submitted_at","approved_at",
--   "rejected_at","created_at","updated_at"}.
CREATE FUNCTION worksible_timesheet_object(t timesheets) RETURNS json
LANGUAGE sql STABLE SECURITY INVOKER AS $$
    SELECT json_build_object(
        'object', 'timesheet',
        'id', t.id,
        'contract_id', t.contract_id,
        'period_start', to_char(t.period_start, 'YYYY-MM-DD'),
        'period_end', to_char(t.period_end, 'YYYY-MM-DD'),
        'status', t.status,
        'entries', (SELECT coalesce(json_agg(json_build_object(
                               'date', to_char(e.date, 'YYYY-MM-DD'),
                               'minutes', e.minutes,
                               'description', e.description)
                           ORDER BY e.position), '[]')
                    FROM timesheet_entries e
                    WHERE e.company_id = t.company_id AND e.timesheet_id = t.id),
        'total_minutes', (SELECT coalesce(sum(e.minutes), 0)
                          FROM timesheet_entries e
                          WHERE e.company_id = t.company_id
                            AND e.timesheet_id = t.id),
        'submitted_at', worksible_ts(t.submitted_at),
        'approved_at', worksible_ts(t.approved_at),
        'rejected_at', worksible_ts(t.rejected_at),
        'created_at', worksible_ts(t.created_at),
        'updated_at', worksible_ts(t.updated_at))
$$;

-- POST /v1/timesheets and PATCH /v1/timesheets/{id} (p_id NULL: create):
--   {contract_id, period_start, period_end, entries: [{date, minutes,
--   description}]} -> the timesheet object, or NULL when the id is not
--   found. entries replace the old ones whole; every date lies within the
--   period, and no day has more than 1440 minutes. A timesheet that is not
--   a draft is WS409.
CREATE FUNCTION worksible_timesheet_write(p_company_id text, p_id text, p jsonb)
RETURNS json
LANGUAGE plpgsql SECURITY INVOKER AS $$
DECLARE
    t  timesheets;
    e  jsonb;
    d  date;
    i  integer;
BEGIN
    PERFORM set_config('worksible.company_id', coalesce(p_company_id, ''), true);
    IF p_id IS NULL THEN
        t.status := 'draft';
    ELSE
        SELECT * INTO t FROM timesheets
        WHERE company_id = p_company_id AND id = p_id FOR UPDATE;
        IF NOT FOUND THEN
            RETURN NULL;
        END IF;
        IF t.status <> 'draft' THEN
            PERFORM worksible_state_conflict(format(
                'Only a draft timesheet can change; this one is %s', t.status));
        END IF;
    END IF;
    IF p ? 'contract_id' THEN t.contract_id := p->>'contract_id'; END IF;
    IF p ? 'period_start' THEN t.period_start := worksible_date(p, 'period_start'); END IF;
    IF p ? 'period_end' THEN t.period_end := worksible_date(p, 'period_end'); END IF;

    PERFORM worksible_check(EXISTS (SELECT 1 FROM contracts
                                    WHERE company_id = p_company_id AND id = t.contract_id),
                            'contract_id', 'No such contract');
    PERFORM worksible_check(t.period_end >= t.period_start,
                            'period_end', 'period_end is before period_start');

    IF p_id IS NULL THEN
        INSERT INTO timesheets (company_id, contract_id, period_start, period_end, status)
        VALUES (p_company_id, t.contract_id, t.period_start, t.period_end, t.status)
        RETURNING * INTO t;
    ELSE
        UPDATE timesheets SET contract_id = t.contract_id,
               period_start = t.period_start, period_end = t.period_end,
               updated_at = CASE WHEN p ? 'entries' THEN now() ELSE updated_at END
        WHERE company_id = p_company_id AND id = p_id
        RETURNING * INTO t;
    END IF;

    IF p ? 'entries' THEN
        DELETE FROM timesheet_entries
        WHERE company_id = p_company_id AND timesheet_id = t.id;
        FOR i IN 0 .. jsonb_array_length(p->'entries') - 1 LOOP
            e := p->'entries'->i;
            d := worksible_item_date(e, 'date', format('entries[%s].date', i));
            PERFORM worksible_check(d BETWEEN t.period_start AND t.period_end,
                                    format('entries[%s].date', i),
                                    'The date is outside the timesheet''s period');
            INSERT INTO timesheet_entries (company_id, timesheet_id, position,
                                           date, minutes, description)
            VALUES (p_company_id, t.id, i, d, (e->>'minutes')::integer,
                    e->>'description');
        END LOOP;
        SELECT e2.date INTO d FROM timesheet_entries e2
        WHERE e2.company_id = p_company_id AND e2.timesheet_id = t.id
        GROUP BY e2.date HAVING sum(e2.minutes) > 1440
        ORDER BY e2.date LIMIT 1;
        PERFORM worksible_check(NOT FOUND, 'entries',
                    format('The entries of %s add up to more than 1440 minutes', d));
    ELSE
        PERFORM worksible_check(NOT EXISTS (
                    SELECT 1 FROM timesheet_entries
                    WHERE company_id = p_company_id AND timesheet_id = t.id
                      AND date NOT BETWEEN t.period_start AND t.period_end),
                CASE WHEN p ? 'period_end' THEN 'period_end' ELSE 'period_start' END,
                'An entry would be outside the new period');
    END IF;

    RETURN worksible_timesheet_object(t);
END
$$;

-- worksible_timesheet_move(company, id, from, to, verb) -> the timesheet
--   object after moving it from state `from` to `to`, or NULL when the id
--   is not found; WS409 from any other state.
CREATE FUNCTION worksible_timesheet_move(p_company_id text, p_id text,
                                         p_from text, p_to text, p_verb text)
RETURNS json
LANGUAGE plpgsql SECURITY INVOKER AS $$
DECLARE
    t timesheets;
BEGIN
    PERFORM set_config('worksible.company_id', coalesce(p_company_id, ''), true);
    SELECT * INTO t FROM timesheets
    WHERE company_id = p_company_id AND id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF t.status <> p_from THEN
        PERFORM worksible_state_conflict(format(
            'Only a %s timesheet can be %s; this one is %s', p_from, p_verb, t.status));
    END IF;
    IF p_to = 'submitted' THEN
        PERFORM worksible_check(EXISTS (SELECT 1 FROM timesheet_entries
                                        WHERE company_id = p_company_id
                                          AND timesheet_id = t.id),
                                'entries', 'A timesheet without entries cannot be submitted');
    END IF;
    UPDATE timesheets SET status = p_to,
           submitted_at = CASE WHEN p_to = 'submitted' THEN now() ELSE submitted_at END,
           approved_at = CASE WHEN p_to = 'approved' THEN now() ELSE approved_at END,
           rejected_at = CASE WHEN p_to = 'rejected' THEN now() ELSE rejected_at END
    WHERE company_id = p_company_id AND id = p_id
    RETURNING * INTO t;
    RETURN worksible_timesheet_object(t);
END
$$;

-- POST /v1/timesheets/{id}/submit (draft -> submitted, with entries),
--   /approve and /reject (submitted -> approved | rejected).
CREATE FUNCTION worksible_timesheet_submit(p_company_id text, p_id text) RETURNS json
LANGUAGE sql SECURITY INVOKER AS $$
    SELECT worksible_timesheet_move(p_company_id, p_id, 'draft', 'submitted', 'submitted')
$$;
CREATE FUNCTION worksible_timesheet_approve(p_company_id text, p_id text) RETURNS json
LANGUAGE sql SECURITY INVOKER AS $$
    SELECT worksible_timesheet_move(p_company_id, p_id, 'submitted', 'approved', 'approved')
$$;
CREATE FUNCTION worksible_timesheet_reject(p_company_id text, p_id text) RETURNS json
LANGUAGE sql SECURITY INVOKER AS $$
    SELECT worksible_timesheet_move(p_company_id, p_id, 'submitted', 'rejected', 'rejected')
$$;

-- ---------------------------------------------------------------------------
-- Invoices: draft -> open (finalize: the next number) -> paid, or open ->
-- void; only drafts change. The currency is the contract's.

-- The invoice object {"object":"invoice","id","contract_id","number",
--   "status","currency","line_items":[{"description","quantity",
--   "unit_amount","amount"}],"subtotal","total","amount_paid","amount_due",
--   "due_date","finalized_at","paid_at","voided_at","created_at",
--   "updated_at"}.
CREATE FUNCTION worksible_invoice_object(v invoices) RETURNS json
LANGUAGE sql STABLE SECURITY INVOKER AS $$
    SELECT json_build_object(
        'object', 'invoice',
        'id', v.id,
        'contract_id', v.contract_id,
        'number', v.number,
        'status', v.status,
        'currency', v.currency,
        'line_items', (SELECT coalesce(json_agg(json_build_object(
                                  'description', l.description,
                                  'quantity', l.quantity,
                                  'unit_amount', l.unit_amount,
                                  'amount', l.amount)
                              ORDER BY l.position), '[]')
                       FROM invoice_line_items l
                       WHERE l.company_id = v.company_id AND l.invoice_id = v.id),
        'subtotal', v.subtotal,
        'total', v.total,
        'amount_paid', v.amount_paid,
        'amount_due', v.amount_due,
        'due_date', to_char(v.due_date, 'YYYY-MM-DD'),
        'finalized_at', worksible_ts(v.finalized_at),
        'paid_at', worksible_ts(v.paid_at),
        'voided_at', worksible_ts(v.voided_at),
        'created_at', worksible_ts(v.created_at),
        'updated_at', worksible_ts(v.updated_at))
$$;

-- POST /v1/invoices and PATCH /v1/invoices/{id} (p_id NULL: create):
--   {contract_id, currency (optional: must be the contract's), due_date,
--   line_items: [{description, quantity, unit_amount}]} -> the invoice
--   object, or NULL when the id is not found. Each line's amount is
--   quantity * unit_amount; subtotal and total their sum (at least 0);
--   each past 2^53-1 is WS400. A draft only: WS409 otherwise.
CREATE FUNCTION worksible_invoice_write(p_company_id text, p_id text, p jsonb)
RETURNS json
LANGUAGE plpgsql SECURITY INVOKER AS $$
DECLARE
    v       invoices;
    l       jsonb;
    i       integer;
    amount  numeric;
    running numeric := 0;
    cap     constant numeric := 9007199254740991;
BEGIN
    PERFORM set_config('worksible.company_id', coalesce(p_company_id, ''), true);
    IF p_id IS NULL THEN
        v.status := 'draft';
    ELSE
        SELECT * INTO v FROM invoices
        WHERE company_id = p_company_id AND id = p_id FOR UPDATE;
        IF NOT FOUND THEN
            RETURN NULL;
        END IF;
        IF v.status <> 'draft' THEN
            PERFORM worksible_state_conflict(format(
                'Only a draft invoice can change; this one is %s', v.status));
        END IF;
    END IF;
    IF p ? 'contract_id' THEN v.contract_id := p->>'contract_id'; END IF;
    IF p ? 'due_date' THEN v.due_date := worksible_date(p, 'due_date'); END IF;

    -- the currency is the contract's when the invoice is made or moved to
    -- another contract, and stays the invoice's own after that
    IF p_id IS NULL OR p ? 'contract_id' THEN
        SELECT c.currency INTO v.currency FROM contracts c
        WHERE c.company_id = p_company_id AND c.id = v.contract_id;
        PERFORM worksible_check(FOUND, 'contract_id', 'No such contract');
    END IF;
    PERFORM worksible_check(NOT p ? 'currency' OR p->>'currency' = v.currency,
                            'currency', format('The invoice''s currency is %s, its contract''s',
                                               v.currency));

    IF p_id IS NULL THEN
        INSERT INTO invoices (company_id, contract_id, currency, due_date)
        VALUES (p_company_id, v.contract_id, v.currency, v.due_date)
        RETURNING * INTO v;
    END IF;

    IF p ? 'line_items' THEN
        DELETE FROM invoice_line_items
        WHERE company_id = p_company_id AND invoice_id = v.id;
        FOR i IN 0 .. jsonb_array_length(p->'line_items') - 1 LOOP
            l := p->'line_items'->i;
            amount := (l->>'quantity')::numeric * (l->>'unit_amount')::numeric;
            PERFORM worksible_check(abs(amount) <= cap,
                        format('line_items[%s].unit_amount', i),
                        'quantity times unit_amount is past 9007199254740991');
            running := running + amount;
            INSERT INTO invoice_line_items (company_id, invoice_id, position,
                                            description, quantity, unit_amount, amount)
            VALUES (p_company_id, v.id, i, l->>'description',
                    (l->>'quantity')::integer, (l->>'unit_amount')::bigint,
                    amount::bigint);
        END LOOP;
        PERFORM worksible_check(abs(running) <= cap, 'line_items',
                    'The subtotal is outside -9007199254740991..9007199254740991');
        PERFORM worksible_check(running >= 0, 'line_items', 'The total is below zero');
        v.subtotal := running;
        v.total := running;
        v.amount_due := running - v.amount_paid;
    END IF;

    UPDATE invoices SET contract_id = v.contract_id, currency = v.currency,
           due_date = v.due_date, subtotal = v.subtotal, total = v.total,
           amount_due = v.amount_due,
           updated_at = CASE WHEN p_id IS NOT NULL AND p ? 'line_items'
                             THEN now() ELSE updated_at END
    WHERE company_id = p_company_id AND id = v.id
    RETURNING * INTO v;

    RETURN worksible_invoice_object(v);
END
$$;

-- POST /v1/invoices/{id}/finalize: draft -> open, with the company's next
--   invoice number (1, 2, ...: the company's row lock, FOR NO KEY UPDATE,
--   orders finalizations, and a rolled-back one leaves no gap). A total of 0 is paid at once. It
--   needs line items (WS400 line_items). NULL: no such invoice.
CREATE FUNCTION worksible_invoice_finalize(p_company_id text, p_id text) RETURNS json
LANGUAGE plpgsql SECURITY INVOKER AS $$
DECLARE
    v invoices;
BEGIN
    PERFORM set_config('worksible.company_id', coalesce(p_company_id, ''), true);
    -- NO KEY UPDATE: it orders finalizations without blocking the foreign
    -- key checks (FOR KEY SHARE) of writes that hold an invoice's lock
    PERFORM 1 FROM companies WHERE id = p_company_id FOR NO KEY UPDATE;
    SELECT * INTO v FROM invoices
    WHERE company_id = p_company_id AND id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF v.status <> 'draft' THEN
        PERFORM worksible_state_conflict(format(
            'Only a draft invoice can be finalized; this one is %s', v.status));
    END IF;
    PERFORM worksible_check(EXISTS (SELECT 1 FROM invoice_line_items
                                    WHERE company_id = p_company_id
                                      AND invoice_id = v.id),
                            'line_items', 'An invoice without line items cannot be finalized');
    UPDATE invoices SET
           number = (SELECT coalesce(max(number), 0) + 1 FROM invoices
                     WHERE company_id = p_company_id),
           status = CASE WHEN v.total = 0 THEN 'paid' ELSE 'open' END,
           finalized_at = now(),
           paid_at = CASE WHEN v.total = 0 THEN now() END
    WHERE company_id = p_company_id AND id = p_id
    RETURNING * INTO v;
    RETURN worksible_invoice_object(v);
END
$$;

-- POST /v1/invoices/{id}/void: open -> void, without payments (WS409
--   otherwise: money received stays on an invoice). NULL: no such invoice.
CREATE FUNCTION worksible_invoice_void(p_company_id text, p_id text) RETURNS json
LANGUAGE plpgsql SECURITY INVOKER AS $$
DECLARE
    v invoices;
BEGIN
    PERFORM set_config('worksible.company_id', coalesce(p_company_id, ''), true);
    SELECT * INTO v FROM invoices
    WHERE company_id = p_company_id AND id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF v.status <> 'open' THEN
        PERFORM worksible_state_conflict(format(
            'Only an open invoice can be voided; this one is %s', v.status));
    END IF;
    IF v.amount_paid > 0 THEN
        PERFORM worksible_state_conflict(format(
            'This invoice has payments (%s paid): it cannot be voided', v.amount_paid));
    END IF;
    UPDATE invoices SET status = 'void', voided_at = now()
    WHERE company_id = p_company_id AND id = p_id
    RETURNING * INTO v;
    RETURN worksible_invoice_object(v);
END
$$;

-- ---------------------------------------------------------------------------
-- Payments and payouts: created, never updated.

-- {"object":"payment","id","invoice_id","amount","currency","created_at"}
CREATE FUNCTION worksible_payment_object(y payments) RETURNS json
LANGUAGE sql STABLE SECURITY INVOKER AS $$
    SELECT json_build_object(
        'object', 'payment',
        'id', y.id,
        'invoice_id', y.invoice_id,
        'amount', y.amount,
        'currency', y.currency,
        'created_at', worksible_ts(y.created_at))
$$;

-- POST /v1/payments: {invoice_id, amount, currency} -> the payment object.
--   The invoice is locked (FOR UPDATE), so that two payments at the same
--   moment are counted one after the other and can never overpay: it must
--   be open (WS409), in the payment's currency, and owe at least amount
--   (WS400). Its amount_paid, amount_due and status (paid at 0 due) move
--   in the same transaction.
CREATE FUNCTION worksible_payment_write(p_company_id text, p_id text, p jsonb)
RETURNS json
LANGUAGE plpgsql SECURITY INVOKER AS $$
DECLARE
    v       invoices;
    y       payments;
    amount  bigint := (p->>'amount')::bigint;
BEGIN
    PERFORM set_config('worksible.company_id', coalesce(p_company_id, ''), true);
    SELECT * INTO v FROM invoices
    WHERE company_id = p_company_id AND id = p->>'invoice_id' FOR UPDATE;
    PERFORM worksible_check(FOUND, 'invoice_id', 'No such invoice');
    IF v.status <> 'open' THEN
        PERFORM worksible_state_conflict(format(
            'Only an open invoice can be paid; this one is %s', v.status));
    END IF;
    PERFORM worksible_check(amount >= 1, 'amount', 'amount must be at least 1');
    PERFORM worksible_check(p->>'currency' = v.currency, 'currency',
                            format('The invoice is in %s', v.currency));
    PERFORM worksible_check(amount <= v.amount_due, 'amount',
                            format('amount is more than the invoice''s amount_due, %s',
                                   v.amount_due));

    INSERT INTO payments (company_id, invoice_id, amount, currency)
    VALUES (p_company_id, v.id, amount, v.currency)
    RETURNING * INTO y;

    UPDATE invoices SET amount_paid = amount_paid + amount,
           amount_due = amount_due - amount,
           status = CASE WHEN amount_due - amount = 0 THEN 'paid' ELSE status END,
           paid_at = CASE WHEN amount_due - amount = 0 THEN now() ELSE paid_at END
    WHERE company_id = p_company_id AND id = v.id;

    RETURN worksible_payment_object(y);
END
$$;

-- {"object":"payout","id","freelancer_id","amount","currency","status",
--   "created_at","updated_at"}
CREATE FUNCTION worksible_payout_object(o payouts) RETURNS json
LANGUAGE sql STABLE SECURITY INVOKER AS $$
    SELECT json_build_object(
        'object', 'payout',
        'id', o.id,
        'freelancer_id', o.freelancer_id,
        'amount', o.amount,
        'currency', o.currency,
        'status', o.status,
        'created_at', worksible_ts(o.created_at),
        'updated_at', worksible_ts(o.updated_at))
$$;

-- POST /v1/payouts: {freelancer_id, amount (at least 1), currency} -> the
--   payout object, pending.
CREATE FUNCTION worksible_payout_write(p_company_id text, p_id text, p jsonb)
RETURNS json
LANGUAGE plpgsql SECURITY INVOKER AS $$
DECLARE
    o payouts;
BEGIN
    PERFORM set_config('worksible.company_id', coalesce(p_company_id, ''), true);
    PERFORM worksible_check(EXISTS (SELECT 1 FROM freelancers
                                    WHERE company_id = p_company_id
                                      AND id = p->>'freelancer_id'),
                            'freelancer_id', 'No such freelancer');
    PERFORM worksible_check((p->>'amount')::bigint >= 1, 'amount',
                            'amount must be at least 1');
    PERFORM worksible_check_money((p->>'amount')::bigint, 'amount', p->>'currency');
    INSERT INTO payouts (company_id, freelancer_id, amount, currency)
    VALUES (p_company_id, p->>'freelancer_id', (p->>'amount')::bigint, p->>'currency')
    RETURNING * INTO o;
    RETURN worksible_payout_object(o);
END
$$;

GRANT EXECUTE ON FUNCTION
    worksible_state_conflict(text),
    worksible_item_date(jsonb, text, text),
    worksible_timesheet_object(timesheets),
    worksible_timesheet_write(text, text, jsonb),
    worksible_timesheet_move(text, text, text, text, text),
    worksible_timesheet_submit(text, text),
    worksible_timesheet_approve(text, text),
    worksible_timesheet_reject(text, text),
    worksible_invoice_object(invoices),
    worksible_invoice_write(text, text, jsonb),
    worksible_invoice_finalize(text, text),
    worksible_invoice_void(text, text),
    worksible_payment_object(payments),
    worksible_payment_write(text, text, jsonb),
    worksible_payout_object(payouts),
    worksible_payout_write(text, text, jsonb)
    TO worksible_api;
