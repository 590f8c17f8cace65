-- Demo data: five companies (one per plan) and, for the growth one,
-- "Northwind Studio" (EUR), eleven months of work: freelancers, projects,
-- hourly and fixed contracts, weekly timesheets, monthly invoices with line
-- items, payments and payouts, in EUR, JPY, USD and GBP.
--
--   psql -X -h HOST -p PORT -U worksible -d worksible -f util/demo.sql
--
-- Run as the owner (worksible, BYPASSRLS) after the migrations. It loads
-- into a database without companies only, so a second run (or a run after
-- the API tour renamed the company) changes nothing. One transaction; times are
-- relative to now(), so lists page through the past months. Every amount
-- adds up: line amount = quantity * unit_amount, subtotal = total = the sum of
-- the lines, amount_paid = the sum of the payments, amount_due = the rest.
-- Pseudo-random choices come from hashtext(), so two loads look alike.

\set ON_ERROR_STOP on
SET row_security = off;  -- fail loudly rather than see a filtered table

BEGIN;
SELECT pg_advisory_xact_lock(hashtext('worksible demo.sql'));
SELECT NOT EXISTS (SELECT 1 FROM companies) AS demo_load
\gset

\if :demo_load

-- pick(key, m): a stable pseudo-random integer in 0..m-1
CREATE FUNCTION pg_temp.pick(key text, m integer) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT ((hashtext(key)::bigint + 2147483648) % m)::integer
$$;

-- ---------------------------------------------------------------- companies
CREATE TEMP TABLE d_company ON COMMIT DROP AS
SELECT worksible_id('cmp', created_at) AS id, name, plan, currency, created_at
FROM (VALUES
    ('Fernleaf Architects Ltd',  'trial',      'GBP', now() - interval '12 days'),
    ('Brightwater Analytics',    'core',       'USD', now() - interval '205 days'),
    ('Northwind Studio',         'growth',     'EUR', now() - interval '330 days'),
    ('Hoshizora Games K.K.',     'scale',      'JPY', now() - interval '410 days'),
    ('Meridian Health Systems',  'enterprise', 'USD', now() - interval '720 days')
) AS v (name, plan, currency, created_at);

INSERT INTO companies (id, name, plan, currency, created_at, updated_at)
SELECT id, name, plan, currency, created_at, created_at FROM d_company;

SELECT id AS nw FROM d_company WHERE name = 'Northwind Studio'
\gset

-- -------------------------------------------------------------- freelancers
-- Northwind's freelancers, oldest first; hourly_rate in minor units of
-- currency (JPY has none: 7500 is 7,500 yen). The first four came in one
-- import at sign-up (same created_at: lists break the tie by id).
CREATE TEMP TABLE d_fl ON COMMIT DROP AS
WITH v (name, country, currency, hourly_rate) AS (VALUES
    ('Léa Moreau',          'FR', 'EUR',  8500), ('Jonas Becker',        'DE', 'EUR',  9500),
    ('Sofia Marín',         'ES', NULL,   NULL), ('Marco Bellini',       'IT', 'EUR',  7000),
    ('Emma de Vries',       'NL', 'EUR',  9000), ('Łukasz Nowak',        'PL', 'EUR',  6500),
    ('Inês Carvalho',       'PT', NULL,   NULL), ('Astrid Lindqvist',    'SE', 'EUR', 10500),
    ('Ciarán O''Brien',     'IE', 'EUR',  8000), ('Priya Raman',         'GB', 'GBP',  8500),
    ('Daniel Okafor',       'NG', 'USD',  4500), ('Haruto Sato',         'JP', 'JPY',  7500),
    ('Yui Tanaka',          'JP', 'JPY',  6800), ('Min-jun Park',        'KR', NULL,   NULL),
    ('Camila Rojas',        'CL', 'USD',  5500), ('Mateo Fernández',     'AR', 'USD',  5000),
    ('Valentina Cruz',      'MX', NULL,   NULL), ('Arjun Mehta',         'IN', 'USD',  4000),
    ('Amara Nwosu',         'NG', NULL,   NULL), ('Wanjiru Kamau',       'KE', 'USD',  4200),
    ('Thabo Nkosi',         'ZA', 'USD',  5200), ('Nour El-Sayed',       'EG', NULL,   NULL),
    ('Oleksandr Kovalenko', 'UA', 'EUR',  6000), ('Ioana Popescu',       'RO', 'EUR',  5800),
    ('Eleni Papadopoulou',  'GR', NULL,   NULL), ('Elif Yılmaz',         'TR', 'EUR',  5500),
    ('Nguyễn Minh Anh',     'VN', 'USD',  3800), ('Angelica Reyes',      'PH', 'USD',  3500),
    ('Putri Wulandari',     'ID', NULL,   NULL), ('Jack Thompson',       'AU', 'USD',  9500),
    ('Aroha Ngata',         'NZ', NULL,   NULL), ('Mads Jørgensen',      'DK', 'EUR', 11000),
    ('Aino Virtanen',       'FI', 'EUR',  9000), ('Tereza Novotná',      'CZ', 'EUR',  6200),
    ('Lukas Gruber',        'AT', 'EUR',  8800), ('Julie Peeters',       'BE', NULL,   NULL),
    ('Noah Keller',         'CH', 'EUR', 12500), ('Tamar Levi',          'IL', 'USD',  8000),
    ('Youssef Benali',      'MA', NULL,   NULL), ('Santiago Gómez',      'CO', 'USD',  4800),
    ('Hannah Schmidt',      'DE', NULL,   NULL), ('Tom Baker',           'GB', 'GBP',  7500),
    ('Olivia Martin',       'US', 'USD', 11500), ('Ethan Brooks',        'US', NULL,   NULL),
    ('Chloé Tremblay',      'CA', 'USD',  8200), ('Lucas Oliveira',      'BR', 'USD',  5000),
    ('Beatriz Souza',       'BR', NULL,   NULL), ('Kenji Watanabe',      'JP', 'JPY',  9000),
    ('Sakura Ito',          'JP', NULL,   NULL), ('Aisha Bello',         'NG', 'USD',  4000),
    ('Rafael Costa',        'PT', 'EUR',  6800), ('Giulia Romano',       'IT', NULL,   NULL),
    ('Pierre Lefèvre',      'FR', 'EUR',  9200), ('Sara Johansson',      'SE', NULL,   NULL),
    ('Finn Hansen',         'NO', 'EUR',  9800), ('Zoë van Dijk',        'NL', 'EUR',  8600),
    ('Diego Herrera',       'ES', 'EUR',  7200), ('Marta Kowalska',      'PL', NULL,   NULL),
    ('Ravi Iyer',           'IN', 'USD',  4500), ('Mei Lin Chen',        'SG', 'USD',  7800),
    ('Ana Lucía Vargas',    'PE', NULL,   NULL), ('Kofi Mensah',         'GH', 'USD',  4300)
), numbered AS (
    SELECT row_number() OVER () AS n, v.* FROM v
), timed AS (
    SELECT numbered.*,
           CASE WHEN n <= 4 THEN now() - interval '325 days'
                ELSE now() - interval '325 days' + (n - 4) * interval '5 days'
                     + pg_temp.pick('fl-time' || n, 600) * interval '1 minute'
           END AS created_at,
           -- ascii local part: accents off, spaces to dots
           regexp_replace(regexp_replace(
               translate(lower(translate(name, 'Ł', 'L')),
                         'áàâãäåçéèêëễíìîïıłñóòôõöøúùûüýžšśșşčć',
                         'aaaaaaceeeeeiiiiilnoooooouuuuyzsssscc'),
               '[^a-z -]', '', 'g'), ' +', '.', 'g') AS local
    FROM numbered
)
SELECT n, worksible_id('fl', created_at) AS id, name, country, currency,
       hourly_rate::bigint AS hourly_rate,
       local || '@' || (ARRAY['gmail.com', 'proton.me', 'outlook.com', 'fastmail.com',
                              'icloud.com', 'hey.com', 'posteo.net', 'mailbox.org'])
                       [1 + pg_temp.pick('fl-mail' || n, 8)] AS email,
       CASE WHEN n % 9 = 0 OR n > 60 THEN 'invited'
            WHEN n % 11 = 5 THEN 'offboarded'
            ELSE 'active' END AS status,
       created_at,
       least(now(), created_at + pg_temp.pick('fl-upd' || n, 40) * interval '1 day') AS updated_at
FROM timed;

INSERT INTO freelancers (id, company_id, email, name, country, status, hourly_rate,
                         currency, created_at, updated_at)
SELECT id, :'nw', email, name, country, status, hourly_rate, currency, created_at, updated_at
FROM d_fl;

-- A few freelancers of the other companies (row-level security keeps them
-- out of Northwind's lists).
INSERT INTO freelancers (id, company_id, email, name, country, status, hourly_rate,
                         currency, created_at, updated_at)
SELECT worksible_id('fl', c.created_at + v.days * interval '1 day'), c.id, v.email,
       v.name, v.country, v.status, v.hourly_rate, v.currency,
       c.created_at + v.days * interval '1 day', c.created_at + v.days * interval '1 day'
FROM (VALUES
    ('Hoshizora Games K.K.',    'Riku Yamamoto',   'riku.yamamoto@gmail.com',     'JP', 'active',  8000::bigint, 'JPY', 30),
    ('Hoshizora Games K.K.',    'Hana Kobayashi',  'hana.kobayashi@icloud.com',   'JP', 'active',  7200,         'JPY', 95),
    ('Hoshizora Games K.K.',    'Minh Tran',       'minh.tran@proton.me',         'VN', 'invited', NULL,         NULL,  380),
    ('Meridian Health Systems', 'Grace Whitfield', 'grace@whitfield-ux.com',      'US', 'active',  14000,        'USD', 40),
    ('Meridian Health Systems', 'Samuel Adeyemi',  'samuel.adeyemi@outlook.com',  'NG', 'active',  6000,         'USD', 300),
    ('Meridian Health Systems', 'Laura Nielsen',   'laura.nielsen@fastmail.com',  'DK', 'offboarded', NULL,      NULL,  510),
    ('Brightwater Analytics',   'Oscar Lindgren',  'oscar.lindgren@hey.com',      'SE', 'active',  9500,         'EUR', 20),
    ('Brightwater Analytics',   'Fatima Zahra',    'fatima.zahra@gmail.com',      'MA', 'invited', NULL,         NULL,  150),
    ('Fernleaf Architects Ltd', 'Oliver Hughes',   'oliver.hughes@outlook.com',   'GB', 'invited', 6500,         'GBP', 2)
) AS v (company, name, email, country, status, hourly_rate, currency, days)
JOIN d_company c ON c.name = v.company;

-- ----------------------------------------------------------------- projects
CREATE TEMP TABLE d_prj ON COMMIT DROP AS
WITH v (name, description, status, budget, currency) AS (VALUES
    ('Website relaunch',        'New marketing site on a headless CMS',              'active',   4800000::bigint, 'EUR'),
    ('Brand refresh',           'Logo, typography and colour system',                'archived', 1500000, 'EUR'),
    ('Spring campaign',         'Paid social and landing pages for the spring launch', 'archived', 900000, 'EUR'),
    ('Mobile app v2',           'iOS and Android rewrite in React Native',           'active',  12000000, 'EUR'),
    ('Design system',           'Component library shared by web and app',           'active',      NULL, NULL),
    ('Annual report 2024',      'Layout and data visualisation',                     'archived',  600000, 'EUR'),
    ('Tokyo pop-up store',      'Visual identity and signage for the Shibuya pop-up', 'active',  3500000, 'JPY'),
    ('Trade fair Berlin',       'Booth design and print production',                 'archived', 1200000, 'EUR'),
    ('Customer portal',         'Self-service portal for invoices and orders',       'active',   8000000, 'EUR'),
    ('Podcast season 2',        'Editing, show notes and artwork',                   'active',    450000, 'EUR'),
    ('Product photography',     'Seasonal catalogue shoot',                          'archived',  800000, 'EUR'),
    ('Checkout optimisation',   'A/B tests on the checkout funnel',                  'active',      NULL, NULL),
    ('Japanese localisation',   'Translation and QA of the app in Japanese',         'active',   2400000, 'JPY'),
    ('Newsletter templates',    'Responsive email templates',                        'archived',    NULL, NULL),
    ('Data warehouse migration', 'Move reporting to the new warehouse',              'active',   6000000, 'EUR'),
    ('Accessibility audit',     'WCAG 2.2 AA audit and fixes',                       'active',    700000, 'EUR'),
    ('Explainer video',         'Two-minute animated product explainer',             'archived', 1100000, 'EUR'),
    ('Internal tools',          'Admin dashboards and small automations',            'active',      NULL, NULL),
    ('Onboarding flow',         'Research and redesign of the first-run experience', 'active',   1800000, 'EUR'),
    ('Security review',         'Penetration test and remediation',                  'active',   1500000, 'EUR'),
    ('Holiday campaign',        'Video spots and social cut-downs',                  'active',   2000000, 'EUR'),
    ('SEO content',             'Articles and technical SEO fixes',                  'active',    500000, 'EUR'),
    ('Packaging design',        'Packaging for the new product line',                'active',   2500000, 'EUR'),
    ('Partner API docs',        'Developer documentation and examples',              'active',      NULL, NULL)
), numbered AS (
    SELECT row_number() OVER () AS n, v.*,
           now() - interval '322 days' + (row_number() OVER () - 1) * interval '13 days'
               + interval '10 hours' AS created_at
    FROM v
)
SELECT n, worksible_id('prj', created_at) AS id, name, description, status, budget,
       currency, created_at
FROM numbered;

INSERT INTO projects (id, company_id, name, description, status, budget, currency,
                      created_at, updated_at)
SELECT id, :'nw', name, description, status, budget, currency, created_at,
       CASE WHEN status = 'archived' THEN created_at + interval '60 days' ELSE created_at END
FROM d_prj;

-- ---------------------------------------------------------------- contracts
-- One contract per freelancer who got past the invitation, a second one for
-- every fourth. Hourly at the freelancer's rate, else fixed price (in yen for
-- freelancers in Japan, in euro for the rest).
CREATE TEMP TABLE d_ctr ON COMMIT DROP AS
WITH pairs AS (
    SELECT f.n AS fn, k, f.id AS freelancer_id, f.status AS fl_status, f.country,
           f.hourly_rate, f.currency AS fl_currency,
           p.id AS project_id, p.name AS project_name,
           least(now() - interval '2 hours',
                 greatest(f.created_at, p.created_at)
                 + (1 + pg_temp.pick('ctr-time' || f.n || '/' || k, 20)) * interval '1 day')
               AS created_at
    FROM d_fl f
    CROSS JOIN generate_series(1, 2) AS k
    JOIN d_prj p ON p.n = 1 + (f.n * 7 + k * 5) % 24
    WHERE f.status <> 'invited' AND (k = 1 OR f.n % 4 = 0)
), typed AS (
    SELECT pairs.*,
           CASE WHEN hourly_rate IS NOT NULL THEN 'hourly' ELSE 'fixed' END AS type,
           coalesce(hourly_rate,
                    (4 + pg_temp.pick('ctr-rate' || fn || '/' || k, 20)) * 50000) AS rate,
           coalesce(fl_currency, CASE WHEN country = 'JP' THEN 'JPY' ELSE 'EUR' END) AS currency,
           created_at::date AS start_date
    FROM pairs
), stated AS (
    SELECT typed.*,
           CASE WHEN fl_status = 'offboarded' THEN 'ended'
                WHEN created_at > now() - interval '10 days' THEN 'draft'
                WHEN k = 2 AND start_date < current_date - 150 THEN 'ended'
                ELSE 'active' END AS status
    FROM typed
)
SELECT worksible_id('ctr', created_at) AS id, fn || '/' || k AS ckey, freelancer_id,
       project_id,
       project_name, type, rate::bigint AS rate, currency, status, start_date,
       CASE WHEN status = 'ended'
            THEN greatest(start_date, least(start_date + 90, current_date - 3)) END AS end_date,
       created_at
FROM stated;

INSERT INTO contracts (id, company_id, project_id, freelancer_id, type, rate, currency,
                       status, start_date, end_date, created_at, updated_at)
SELECT id, :'nw', project_id, freelancer_id, type, rate, currency, status, start_date,
       end_date, created_at,
       CASE WHEN status = 'ended' THEN greatest(created_at, end_date + time '18:00')
            ELSE created_at END
FROM d_ctr;

-- --------------------------------------------------------------- timesheets
-- Weekly (Monday to Sunday), up to the last twenty weeks of each running or
-- ended hourly contract: this week's is a draft, last week's submitted, older
-- ones approved (one in twenty-five rejected, and so never billed).
CREATE TEMP TABLE d_ts ON COMMIT DROP AS
WITH weeks AS (
    SELECT c.id AS contract_id, c.ckey || '/' || w AS tkey, c.ckey, c.status AS ctr_status,
           c.start_date, c.end_date, c.rate,
           c.currency, c.created_at AS ctr_created, w,
           date_trunc('week', coalesce(c.end_date, current_date))::date - 7 * w AS period_start
    FROM d_ctr c CROSS JOIN generate_series(0, 19) AS w
    WHERE c.type = 'hourly' AND c.status IN ('active', 'ended')
), kept AS (
    SELECT weeks.*,
           CASE WHEN ctr_status = 'ended' THEN least(period_start + 6, end_date)
                ELSE period_start + 6 END AS period_end,
           CASE WHEN ctr_status = 'active' AND w = 0 THEN 'draft'
                WHEN ctr_status = 'active' AND w = 1 THEN 'submitted'
                WHEN pg_temp.pick('ts-rej' || tkey, 25) = 0 THEN 'rejected'
                ELSE 'approved' END AS status,
           least(now() - interval '5 minutes',
                 greatest(ctr_created, period_start + time '09:00')) AS created_at
    FROM weeks
    WHERE period_start + 6 >= start_date
)
SELECT worksible_id('ts', created_at) AS id, tkey, ckey, contract_id, rate, currency,
       start_date,
       period_start, period_end, status, created_at,
       CASE WHEN status <> 'draft'
            THEN least(now() - interval '4 minutes', period_end + time '18:00') END
           AS submitted_at,
       CASE WHEN status = 'approved'
            THEN least(now() - interval '3 minutes', period_end + time '18:00' + interval '26 hours') END
           AS approved_at,
       CASE WHEN status = 'rejected'
            THEN least(now() - interval '3 minutes', period_end + time '18:00' + interval '22 hours') END
           AS rejected_at
FROM kept;

INSERT INTO timesheets (id, company_id, contract_id, period_start, period_end, status,
                        submitted_at, approved_at, rejected_at, created_at, updated_at)
SELECT id, :'nw', contract_id, period_start, period_end, status, submitted_at, approved_at,
       rejected_at, created_at,
       coalesce(approved_at, rejected_at, submitted_at, created_at)
FROM d_ts;

-- Entries on working days inside the period and the contract, whole hours
-- once submitted; this week's draft only up to yesterday, in half hours.
CREATE TEMP TABLE d_entry ON COMMIT DROP AS
SELECT t.id AS timesheet_id, t.status, day,
       CASE WHEN t.status = 'draft'
            THEN 30 * (4 + pg_temp.pick('min' || t.tkey || day, 12))
            ELSE 60 * (3 + pg_temp.pick('min' || t.tkey || day, 6)) END AS minutes,
       (ARRAY['Implementation', 'Design review', 'Client call and follow-up',
              'Bug fixing', 'Documentation', 'Workshop preparation', 'Code review',
              'Research and notes', 'QA pass', 'Planning'])
           [1 + pg_temp.pick('desc' || t.tkey || day, 10)] AS description
FROM d_ts t
CROSS JOIN LATERAL generate_series(t.period_start, t.period_start + 4, interval '1 day')
    AS g (d)
CROSS JOIN LATERAL (SELECT g.d::date AS day) AS dd
WHERE day BETWEEN t.start_date AND t.period_end
  AND (t.status <> 'draft' OR day < current_date)
  AND (day = t.period_start OR pg_temp.pick('skip' || t.tkey || day, 7) <> 0);

INSERT INTO timesheet_entries (company_id, timesheet_id, position, date, minutes, description)
SELECT :'nw', timesheet_id,
       row_number() OVER (PARTITION BY timesheet_id ORDER BY day) - 1, day, minutes,
       description
FROM d_entry;

-- ----------------------------------------------------------------- invoices
-- Hourly contracts: one invoice per calendar month of approved timesheets,
-- a line per week (hours x rate), finalized on the 1st of the next month;
-- this month's is still a draft. Fixed contracts: a 30% deposit when they
-- start and, once ended, the remaining 70% (sometimes with stock licences).
CREATE TEMP TABLE d_line (
    inv_key      text,
    position     integer,
    description  text,
    quantity     integer,
    unit_amount  bigint
) ON COMMIT DROP;

INSERT INTO d_line
SELECT t.ckey || '/' || date_trunc('month', t.period_start)::date,
       row_number() OVER (PARTITION BY t.ckey, date_trunc('month', t.period_start)
                          ORDER BY t.period_start) - 1,
       'Hours, week of ' || to_char(t.period_start, 'YYYY-MM-DD'),
       (sum(e.minutes) / 60)::integer, t.rate
FROM d_ts t JOIN d_entry e ON e.timesheet_id = t.id
WHERE t.status = 'approved'
GROUP BY t.id, t.ckey, t.period_start, t.rate;

INSERT INTO d_line
SELECT c.ckey || '/deposit', 0, 'Deposit (30%): ' || c.project_name, 1, c.rate * 30 / 100
FROM d_ctr c WHERE c.type = 'fixed' AND c.status IN ('active', 'ended')
UNION ALL
SELECT c.ckey || '/final', 0, 'Final delivery (70%): ' || c.project_name, 1,
       c.rate - c.rate * 30 / 100
FROM d_ctr c WHERE c.type = 'fixed' AND c.status = 'ended'
UNION ALL
SELECT c.ckey || '/final', 1, 'Stock image licences', 3,
       CASE c.currency WHEN 'JPY' THEN 4500 ELSE 3900 END
FROM d_ctr c
WHERE c.type = 'fixed' AND c.status = 'ended' AND pg_temp.pick('licences' || c.ckey, 3) = 0;

CREATE TEMP TABLE d_inv ON COMMIT DROP AS
WITH heads AS (
    -- hourly: finalized the 1st of the month after (once the month's last
    -- sheet is approved), unless that is still ahead
    SELECT m.inv_key, c.id AS contract_id, c.freelancer_id, c.currency,
           CASE WHEN m.final_at <= now() THEN m.final_at END AS finalized_at,
           least(now(), greatest(c.created_at, m.last_approved + interval '1 hour')) AS made_at
    FROM (SELECT t.contract_id, t.ckey || '/' || month::date AS inv_key,
                 max(t.approved_at) AS last_approved,
                 greatest(month + interval '1 month 9 hours',
                          max(t.approved_at) + interval '2 hours') AS final_at
          FROM d_ts t
          CROSS JOIN LATERAL (SELECT date_trunc('month', t.period_start) AS month) AS mm
          WHERE t.status = 'approved'
          GROUP BY t.contract_id, t.ckey, month) m
    JOIN d_ctr c ON c.id = m.contract_id
    UNION ALL
    SELECT c.ckey || '/deposit', c.id, c.freelancer_id, c.currency,
           c.created_at + interval '2 days', c.created_at + interval '1 day'
    FROM d_ctr c WHERE c.type = 'fixed' AND c.status IN ('active', 'ended')
    UNION ALL
    SELECT c.ckey || '/final', c.id, c.freelancer_id, c.currency,
           c.end_date + time '10:00' + interval '1 day', c.end_date + time '16:00'
    FROM d_ctr c WHERE c.type = 'fixed' AND c.status = 'ended'
), totals AS (
    SELECT h.*, (SELECT sum(l.quantity * l.unit_amount) FROM d_line l
                 WHERE l.inv_key = h.inv_key)::bigint AS total,
           now() - h.finalized_at AS age
    FROM heads h
), stated AS (
    SELECT totals.*,
           CASE WHEN finalized_at IS NULL OR finalized_at > now() THEN 'draft'
                WHEN pg_temp.pick('void' || inv_key, 30) = 0 THEN 'void'
                WHEN age > interval '40 days' THEN 'paid'
                WHEN age > interval '10 days' AND pg_temp.pick('paid' || inv_key, 2) = 0
                    THEN 'paid'
                ELSE 'open' END AS status
    FROM totals
    WHERE total IS NOT NULL  -- a month of sheets without entries bills nothing
)
SELECT worksible_id('inv', created_at) AS id, s.*
FROM (SELECT stated.*,
             CASE WHEN status = 'draft' THEN NULL ELSE finalized_at END AS final_at,
             least(now() - interval '1 hour',
                   CASE WHEN status = 'draft' THEN made_at
                        ELSE finalized_at - interval '1 hour' END) AS created_at,
             -- partial payment on some open invoices
             status = 'open' AND pg_temp.pick('part' || inv_key, 3) = 0
                 AND total >= 2 AS partial,
             -- some paid invoices were paid in two instalments
             status = 'paid' AND pg_temp.pick('split' || inv_key, 4) = 0
                 AND total >= 2 AS split
      FROM stated) s;

CREATE TEMP TABLE d_pay ON COMMIT DROP AS
SELECT i.id AS invoice_id, i.inv_key, i.currency, i.freelancer_id, p.amount,
       p.created_at
FROM d_inv i
CROSS JOIN LATERAL (VALUES
    -- one payment, two instalments, or half of an open invoice
    (CASE WHEN i.split OR i.partial THEN i.total / 2 ELSE i.total END,
     i.final_at + i.age * 0.3),
    (CASE WHEN i.split THEN i.total - i.total / 2 END, i.final_at + i.age * 0.6)
) AS p (amount, created_at)
WHERE (i.status = 'paid' OR i.partial) AND p.amount IS NOT NULL;

INSERT INTO invoices (id, company_id, contract_id, number, status, currency, subtotal, total,
                      amount_paid, amount_due, due_date, finalized_at, paid_at, voided_at,
                      created_at, updated_at)
SELECT i.id, :'nw', i.contract_id,
       CASE WHEN i.final_at IS NOT NULL
            THEN row_number() OVER (PARTITION BY i.final_at IS NOT NULL
                                    ORDER BY i.final_at, i.id) END,
       i.status, i.currency, i.total, i.total, coalesce(p.paid, 0),
       i.total - coalesce(p.paid, 0),
       (i.final_at + interval '30 days')::date, i.final_at,
       CASE WHEN i.status = 'paid' THEN p.last_at END,
       CASE WHEN i.status = 'void' THEN i.final_at + i.age * 0.1 END,
       i.created_at,
       coalesce(p.last_at, CASE WHEN i.status = 'void' THEN i.final_at + i.age * 0.1 END,
                i.final_at, i.created_at)
FROM d_inv i
LEFT JOIN (SELECT invoice_id, sum(amount)::bigint AS paid, max(created_at) AS last_at
           FROM d_pay GROUP BY invoice_id) p ON p.invoice_id = i.id;

INSERT INTO invoice_line_items (company_id, invoice_id, position, description, quantity,
                                unit_amount, amount)
SELECT :'nw', i.id, l.position, l.description, l.quantity, l.unit_amount,
       l.quantity * l.unit_amount
FROM d_line l JOIN d_inv i ON i.inv_key = l.inv_key;

INSERT INTO payments (id, company_id, invoice_id, amount, currency, created_at)
SELECT worksible_id('pay', created_at), :'nw', invoice_id, amount, currency, created_at
FROM d_pay;

-- ------------------------------------------------------------------ payouts
-- The freelancer is paid out the day after the invoice is paid: paid,
-- pending for the last twelve days, now and then failed at the bank.
INSERT INTO payouts (id, company_id, freelancer_id, amount, currency, status, created_at,
                     updated_at)
SELECT worksible_id('po', created_at), :'nw', freelancer_id, total, currency, status,
       created_at,
       CASE WHEN status = 'pending' THEN created_at
            ELSE least(now(), created_at + interval '1 day') END
FROM (SELECT i.freelancer_id, i.total, i.currency,
             least(now() - interval '10 minutes', p.last_at + interval '1 day') AS created_at,
             CASE WHEN p.last_at + interval '1 day' > now() - interval '12 days' THEN 'pending'
                  WHEN pg_temp.pick('po' || i.inv_key, 13) = 0 THEN 'failed'
                  ELSE 'paid' END AS status
      FROM d_inv i
      JOIN (SELECT invoice_id, max(created_at) AS last_at FROM d_pay GROUP BY invoice_id) p
          ON p.invoice_id = i.id
      WHERE i.status = 'paid') AS x;

\echo demo data loaded: Northwind Studio is :nw
\else
\echo the database has companies already: demo data not loaded
\endif

COMMIT;
