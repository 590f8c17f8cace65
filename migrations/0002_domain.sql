-- Domain: the company resources of API.md (freelancers, projects, contracts,
-- timesheets, invoices, payments, payouts) and the request log.
--
-- Rules every company table follows (DESIGN.md, Data):
--   * id text PRIMARY KEY DEFAULT worksible_id('<prefix>'), the prefixes of
--     API.md; nested timesheet entries and invoice line items have no id of
--     their own (primary key: parent id + position).
--   * company_id NOT NULL; references between company rows are composite,
--     (company_id, x_id) -> t (company_id, id), so a row can never point at
--     another company's row, whoever writes it (even a BYPASSRLS owner).
--   * money: bigint minor units, |x| <= 2^53-1 (exact in every JSON client),
--     beside a char(3) currency that references currencies.
--   * ENABLE + FORCE ROW LEVEL SECURITY, policy company_isolation on
--     current_setting('worksible.company_id', true), as in 0001.
--   * index (company_id, created_at DESC, id DESC) for the list order, plus
--     (company_id, <filter>, created_at DESC, id DESC) for list filters.
--   * updated_at is kept by a trigger on every UPDATE (worksible_touch).

-- ISO 4217 list one (SIX, published 2024-06-25): every code with a numeric
-- minor unit, funds included (CLF 4, UYW 4); the N.A. units (XAU, XDR, XTS,
-- XXX...) are not money anyone is paid in. Plus amendment 176: XCG (Caribbean
-- guilder, 2) replaces ANG from 2025-03-31 (ANG kept for older documents).
INSERT INTO currencies (code, minor_unit) VALUES
    ('AED', 2), ('AFN', 2), ('ALL', 2), ('AMD', 2), ('ANG', 2), ('AOA', 2), ('ARS', 2), ('AUD', 2),
    ('AWG', 2), ('AZN', 2), ('BAM', 2), ('BBD', 2), ('BDT', 2), ('BGN', 2), ('BHD', 3), ('BIF', 0),
    ('BMD', 2), ('BND', 2), ('BOB', 2), ('BOV', 2), ('BRL', 2), ('BSD', 2), ('BTN', 2), ('BWP', 2),
    ('BYN', 2), ('BZD', 2), ('CAD', 2), ('CDF', 2), ('CHE', 2), ('CHF', 2), ('CHW', 2), ('CLF', 4),
    ('CLP', 0), ('CNY', 2), ('COP', 2), ('COU', 2), ('CRC', 2), ('CUC', 2), ('CUP', 2), ('CVE', 2),
    ('CZK', 2), ('DJF', 0), ('DKK', 2), ('DOP', 2), ('DZD', 2), ('EGP', 2), ('ERN', 2), ('ETB', 2),
    ('EUR', 2), ('FJD', 2), ('FKP', 2), ('GBP', 2), ('GEL', 2), ('GHS', 2), ('GIP', 2), ('GMD', 2),
    ('GNF', 0), ('GTQ', 2), ('GYD', 2), ('HKD', 2), ('HNL', 2), ('HTG', 2), ('HUF', 2), ('IDR', 2),
    ('ILS', 2), ('INR', 2), ('IQD', 3), ('IRR', 2), ('ISK', 0), ('JMD', 2), ('JOD', 3), ('JPY', 0),
    ('KES', 2), ('KGS', 2), ('KHR', 2), ('KMF', 0), ('KPW', 2), ('KRW', 0), ('KWD', 3), ('KYD', 2),
    ('KZT', 2), ('LAK', 2), ('LBP', 2), ('LKR', 2), ('LRD', 2), ('LSL', 2), ('LYD', 3), ('MAD', 2),
    ('MDL', 2), ('MGA', 2), ('MKD', 2), ('MMK', 2), ('MNT', 2), ('MOP', 2), ('MRU', 2), ('MUR', 2),
    ('MVR', 2), ('MWK', 2), ('MXN', 2), ('MXV', 2), ('MYR', 2), ('MZN', 2), ('NAD', 2), ('NGN', 2),
    ('NIO', 2), ('NOK', 2), ('NPR', 2), ('NZD', 2), ('OMR', 3), ('PAB', 2), ('PEN', 2), ('PGK', 2),
    ('PHP', 2), ('PKR', 2), ('PLN', 2), ('PYG', 0), ('QAR', 2), ('RON', 2), ('RSD', 2), ('RUB', 2),
    ('RWF', 0), ('SAR', 2), ('SBD', 2), ('SCR', 2), ('SDG', 2), ('SEK', 2), ('SGD', 2), ('SHP', 2),
    ('SLE', 2), ('SOS', 2), ('SRD', 2), ('SSP', 2), ('STN', 2), ('SVC', 2), ('SYP', 2), ('SZL', 2),
    ('THB', 2), ('TJS', 2), ('TMT', 2), ('TND', 3), ('TOP', 2), ('TRY', 2), ('TTD', 2), ('TWD', 2),
    ('TZS', 2), ('UAH', 2), ('UGX', 0), ('USD', 2), ('USN', 2), ('UYI', 0), ('UYU', 2), ('UYW', 4),
    ('UZS', 2), ('VED', 2), ('VES', 2), ('VND', 0), ('VUV', 0), ('WST', 2), ('XAF', 0), ('XCD', 2),
    ('XCG', 2), ('XOF', 0), ('XPF', 0), ('YER', 2), ('ZAR', 2), ('ZMW', 2), ('ZWG', 2);

-- ISO 3166-1 alpha-2 (Debian iso-codes 4.15.0, 249 codes): what a
-- freelancer's country must be ('GB', never 'UK').
CREATE TABLE countries (
    code  char(2) PRIMARY KEY CHECK (code ~ '^[A-Z]{2}$'),
    name  text NOT NULL
);

INSERT INTO countries (code, name) VALUES
    ('AD', 'Andorra'),
    ('AE', 'United Arab Emirates'),
    ('AF', 'Afghanistan'),
    ('AG', 'Antigua and Barbuda'),
    ('AI', 'Anguilla'),
    ('AL', 'Albania'),
    ('AM', 'Armenia'),
    ('AO', 'Angola'),
    ('AQ', 'Antarctica'),
    ('AR', 'Argentina'),
    ('AS', 'American Samoa'),
    ('AT', 'Austria'),
    ('AU', 'Australia'),
    ('AW', 'Aruba'),
    ('AX', 'Åland Islands'),
    ('AZ', 'Azerbaijan'),
    ('BA', 'Bosnia and Herzegovina'),
    ('BB', 'Barbados'),
    ('BD', 'Bangladesh'),
    ('BE', 'Belgium'),
    ('BF', 'Burkina Faso'),
    ('BG', 'Bulgaria'),
    ('BH', 'Bahrain'),
    ('BI', 'Burundi'),
    ('BJ', 'Benin'),
    ('BL', 'Saint Barthélemy'),
    ('BM', 'Bermuda'),
    ('BN', 'Brunei Darussalam'),
    ('BO', 'Bolivia'),
    ('BQ', 'Bonaire, Sint Eustatius and Saba'),
    ('BR', 'Brazil'),
    ('BS', 'Bahamas'),
    ('BT', 'Bhutan'),
    ('BV', 'Bouvet Island'),
    ('BW', 'Botswana'),
    ('BY', 'Belarus'),
    ('BZ', 'Belize'),
    ('CA', 'Canada'),
    ('CC', 'Cocos (Keeling) Islands'),
    ('CD', 'Congo, The Democratic Republic of the'),
    ('CF', 'Central African Republic'),
    ('CG', 'Congo'),
    ('CH', 'Switzerland'),
    ('CI', 'Côte d''Ivoire'),
    ('CK', 'Cook Islands'),
    ('CL', 'Chile'),
    ('CM', 'Cameroon'),
    ('CN', 'China'),
    ('CO', 'Colombia'),
    ('CR', 'Costa Rica'),
    ('CU', 'Cuba'),
    ('CV', 'Cabo Verde'),
    ('CW', 'Curaçao'),
    ('CX', 'Christmas Island'),
    ('CY', 'Cyprus'),
    ('CZ', 'Czechia'),
    ('DE', 'Germany'),
    ('DJ', 'Djibouti'),
    ('DK', 'Denmark'),
    ('DM', 'Dominica'),
    ('DO', 'Dominican Republic'),
    ('DZ', 'Algeria'),
    ('EC', 'Ecuador'),
    ('EE', 'Estonia'),
    ('EG', 'Egypt'),
    ('EH', 'Western Sahara'),
    ('ER', 'Eritrea'),
    ('ES', 'Spain'),
    ('ET', 'Ethiopia'),
    ('FI', 'Finland'),
    ('FJ', 'Fiji'),
    ('FK', 'Falkland Islands (Malvinas)'),
    ('FM', 'Micronesia, Federated States of'),
    ('FO', 'Faroe Islands'),
    ('FR', 'France'),
    ('GA', 'Gabon'),
    ('GB', 'United Kingdom'),
    ('GD', 'Grenada'),
    ('GE', 'Georgia'),
    ('GF', 'French Guiana'),
    ('GG', 'Guernsey'),
    ('GH', 'Ghana'),
    ('GI', 'Gibraltar'),
    ('GL', 'Greenland'),
    ('GM', 'Gambia'),
    ('GN', 'Guinea'),
    ('GP', 'Guadeloupe'),
    ('GQ', 'Equatorial Guinea'),
    ('GR', 'Greece'),
    ('GS', 'South Georgia and the South Sandwich Islands'),
    ('GT', 'Guatemala'),
    ('GU', 'Guam'),
    ('GW', 'Guinea-Bissau'),
    ('GY', 'Guyana'),
    ('HK', 'Hong Kong'),
    ('HM', 'Heard Island and McDonald Islands'),
    ('HN', 'Honduras'),
    ('HR', 'Croatia'),
    ('HT', 'Haiti'),
    ('HU', 'Hungary'),
    ('ID', 'Indonesia'),
    ('IE', 'Ireland'),
    ('IL', 'Israel'),
    ('IM', 'Isle of Man'),
    ('IN', 'India'),
    ('IO', 'British Indian Ocean Territory'),
    ('IQ', 'Iraq'),
    ('IR', 'Iran'),
    ('IS', 'Iceland'),
    ('IT', 'Italy'),
    ('JE', 'Jersey'),
    ('JM', 'Jamaica'),
    ('JO', 'Jordan'),
    ('JP', 'Japan'),
    ('KE', 'Kenya'),
    ('KG', 'Kyrgyzstan'),
    ('KH', 'Cambodia'),
    ('KI', 'Kiribati'),
    ('KM', 'Comoros'),
    ('KN', 'Saint Kitts and Nevis'),
    ('KP', 'North Korea'),
    ('KR', 'South Korea'),
    ('KW', 'Kuwait'),
    ('KY', 'Cayman Islands'),
    ('KZ', 'Kazakhstan'),
    ('LA', 'Laos'),
    ('LB', 'Lebanon'),
    ('LC', 'Saint Lucia'),
    ('LI', 'Liechtenstein'),
    ('LK', 'Sri Lanka'),
    ('LR', 'Liberia'),
    ('LS', 'Lesotho'),
    ('LT', 'Lithuania'),
    ('LU', 'Luxembourg'),
    ('LV', 'Latvia'),
    ('LY', 'Libya'),
    ('MA', 'Morocco'),
    ('MC', 'Monaco'),
    ('MD', 'Moldova'),
    ('ME', 'Montenegro'),
    ('MF', 'Saint Martin (French part)'),
    ('MG', 'Madagascar'),
    ('MH', 'Marshall Islands'),
    ('MK', 'North Macedonia'),
    ('ML', 'Mali'),
    ('MM', 'Myanmar'),
    ('MN', 'Mongolia'),
    ('MO', 'Macao'),
    ('MP', 'Northern Mariana Islands'),
    ('MQ', 'Martinique'),
    ('MR', 'Mauritania'),
    ('MS', 'Montserrat'),
    ('MT', 'Malta'),
    ('MU', 'Mauritius'),
    ('MV', 'Maldives'),
    ('MW', 'Malawi'),
    ('MX', 'Mexico'),
    ('MY', 'Malaysia'),
    ('MZ', 'Mozambique'),
    ('NA', 'Namibia'),
    ('NC', 'New Caledonia'),
    ('NE', 'Niger'),
    ('NF', 'Norfolk Island'),
    ('NG', 'Nigeria'),
    ('NI', 'Nicaragua'),
    ('NL', 'Netherlands'),
    ('NO', 'Norway'),
    ('NP', 'Nepal'),
    ('NR', 'Nauru'),
    ('NU', 'Niue'),
    ('NZ', 'New Zealand'),
    ('OM', 'Oman'),
    ('PA', 'Panama'),
    ('PE', 'Peru'),
    ('PF', 'French Polynesia'),
    ('PG', 'Papua New Guinea'),
    ('PH', 'Philippines'),
    ('PK', 'Pakistan'),
    ('PL', 'Poland'),
    ('PM', 'Saint Pierre and Miquelon'),
    ('PN', 'Pitcairn'),
    ('PR', 'Puerto Rico'),
    ('PS', 'Palestine, State of'),
    ('PT', 'Portugal'),
    ('PW', 'Palau'),
    ('PY', 'Paraguay'),
    ('QA', 'Qatar'),
    ('RE', 'Réunion'),
    ('RO', 'Romania'),
    ('RS', 'Serbia'),
    ('RU', 'Russian Federation'),
    ('RW', 'Rwanda'),
    ('SA', 'Saudi Arabia'),
    ('SB', 'Solomon Islands'),
    ('SC', 'Seychelles'),
    ('SD', 'Sudan'),
    ('SE', 'Sweden'),
    ('SG', 'Singapore'),
    ('SH', 'Saint Helena, Ascension and Tristan da Cunha'),
    ('SI', 'Slovenia'),
    ('SJ', 'Svalbard and Jan Mayen'),
    ('SK', 'Slovakia'),
    ('SL', 'Sierra Leone'),
    ('SM', 'San Marino'),
    ('SN', 'Senegal'),
    ('SO', 'Somalia'),
    ('SR', 'Suriname'),
    ('SS', 'South Sudan'),
    ('ST', 'Sao Tome and Principe'),
    ('SV', 'El Salvador'),
    ('SX', 'Sint Maarten (Dutch part)'),
    ('SY', 'Syria'),
    ('SZ', 'Eswatini'),
    ('TC', 'Turks and Caicos Islands'),
    ('TD', 'Chad'),
    ('TF', 'French Southern Territories'),
    ('TG', 'Togo'),
    ('TH', 'Thailand'),
    ('TJ', 'Tajikistan'),
    ('TK', 'Tokelau'),
    ('TL', 'Timor-Leste'),
    ('TM', 'Turkmenistan'),
    ('TN', 'Tunisia'),
    ('TO', 'Tonga'),
    ('TR', 'Türkiye'),
    ('TT', 'Trinidad and Tobago'),
    ('TV', 'Tuvalu'),
    ('TW', 'Taiwan'),
    ('TZ', 'Tanzania'),
    ('UA', 'Ukraine'),
    ('UG', 'Uganda'),
    ('UM', 'United States Minor Outlying Islands'),
    ('US', 'United States'),
    ('UY', 'Uruguay'),
    ('UZ', 'Uzbekistan'),
    ('VA', 'Holy See (Vatican City State)'),
    ('VC', 'Saint Vincent and the Grenadines'),
    ('VE', 'Venezuela'),
    ('VG', 'Virgin Islands, British'),
    ('VI', 'Virgin Islands, U.S.'),
    ('VN', 'Vietnam'),
    ('VU', 'Vanuatu'),
    ('WF', 'Wallis and Futuna'),
    ('WS', 'Samoa'),
    ('YE', 'Yemen'),
    ('YT', 'Mayotte'),
    ('ZA', 'South Africa'),
    ('ZM', 'Zambia'),
    ('ZW', 'Zimbabwe');

-- worksible_touch(): BEFORE UPDATE trigger, updated_at = now() (the start of
-- the transaction) whenever a row really changes.
CREATE FUNCTION worksible_touch() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

CREATE TRIGGER touch BEFORE UPDATE ON companies
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION worksible_touch();

-- Targets of composite references from other company rows.
ALTER TABLE api_keys ADD CONSTRAINT api_keys_company_id_id_key UNIQUE (company_id, id);

-- Freelancers: people a company contracts. hourly_rate and currency are both
-- set or both null.
CREATE TABLE freelancers (
    id           text PRIMARY KEY DEFAULT worksible_id('fl'),
    company_id   text NOT NULL REFERENCES companies (id),
    email        text NOT NULL CHECK (length(email) <= 254 AND email ~ '^[^@\s]+@[^@\s]+$'),
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    country      char(2) NOT NULL REFERENCES countries (code),
    status       text NOT NULL DEFAULT 'invited'
                 CHECK (status IN ('invited', 'active', 'offboarded')),
    hourly_rate  bigint CHECK (hourly_rate BETWEEN 0 AND 9007199254740991),
    currency     char(3) REFERENCES currencies (code),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (company_id, id),
    CHECK ((hourly_rate IS NULL) = (currency IS NULL))
);

CREATE INDEX freelancers_company_created ON freelancers (company_id, created_at DESC, id DESC);
CREATE INDEX freelancers_company_status ON freelancers (company_id, status, created_at DESC, id DESC);

-- Projects: budget and currency both set or both null.
CREATE TABLE projects (
    id           text PRIMARY KEY DEFAULT worksible_id('prj'),
    company_id   text NOT NULL REFERENCES companies (id),
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description  text CHECK (length(description) <= 5000),
    status       text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'archived')),
    budget       bigint CHECK (budget BETWEEN 0 AND 9007199254740991),
    currency     char(3) REFERENCES currencies (code),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (company_id, id),
    CHECK ((budget IS NULL) = (currency IS NULL))
);

CREATE INDEX projects_company_created ON projects (company_id, created_at DESC, id DESC);
CREATE INDEX projects_company_status ON projects (company_id, status, created_at DESC, id DESC);

-- Contracts: one freelancer on one project. rate: per hour (hourly) or the
-- whole price (fixed), in currency.
CREATE TABLE contracts (
    id             text PRIMARY KEY DEFAULT worksible_id('ctr'),
    company_id     text NOT NULL REFERENCES companies (id),
    project_id     text NOT NULL,
    freelancer_id  text NOT NULL,
    type           text NOT NULL CHECK (type IN ('hourly', 'fixed')),
    rate           bigint NOT NULL CHECK (rate BETWEEN 0 AND 9007199254740991),
    currency       char(3) NOT NULL REFERENCES currencies (code),
    status         text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'active', 'ended')),
    start_date     date,
    end_date       date,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (company_id, id),
    FOREIGN KEY (company_id, project_id) REFERENCES projects (company_id, id),
    FOREIGN KEY (company_id, freelancer_id) REFERENCES freelancers (company_id, id),
    CHECK (end_date >= start_date)
);

CREATE INDEX contracts_company_created ON contracts (company_id, created_at DESC, id DESC);
CREATE INDEX contracts_company_status ON contracts (company_id, status, created_at DESC, id DESC);
CREATE INDEX contracts_company_project ON contracts (company_id, project_id, created_at DESC, id DESC);
CREATE INDEX contracts_company_freelancer ON contracts (company_id, freelancer_id, created_at DESC, id DESC);

-- Timesheets: one contract, one period. Each state has its timestamp:
-- submitted (and approved, rejected) ones were submitted; approval is final;
-- a rejected sheet may be edited and submitted again (rejected_at stays).
CREATE TABLE timesheets (
    id            text PRIMARY KEY DEFAULT worksible_id('ts'),
    company_id    text NOT NULL REFERENCES companies (id),
    contract_id   text NOT NULL,
    period_start  date NOT NULL,
    period_end    date NOT NULL,
    status        text NOT NULL DEFAULT 'draft'
                  CHECK (status IN ('draft', 'submitted', 'approved', 'rejected')),
    submitted_at  timestamptz,
    approved_at   timestamptz,
    rejected_at   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (company_id, id),
    FOREIGN KEY (company_id, contract_id) REFERENCES contracts (company_id, id),
    CHECK (period_end >= period_start),
    CHECK (status = 'draft' OR submitted_at IS NOT NULL),
    CHECK ((status = 'approved') = (approved_at IS NOT NULL)),
    CHECK (status <> 'rejected' OR rejected_at IS NOT NULL)
);

CREATE INDEX timesheets_company_created ON timesheets (company_id, created_at DESC, id DESC);
CREATE INDEX timesheets_company_status ON timesheets (company_id, status, created_at DESC, id DESC);
CREATE INDEX timesheets_company_contract ON timesheets (company_id, contract_id, created_at DESC, id DESC);

-- Timesheet entries: the timesheet's `entries` array, in position order
-- (0, 1, ...); no id, no timestamps: a PATCH replaces them all.
CREATE TABLE timesheet_entries (
    company_id    text NOT NULL REFERENCES companies (id),
    timesheet_id  text NOT NULL,
    position      integer NOT NULL CHECK (position >= 0),
    date          date NOT NULL,
    minutes       integer NOT NULL CHECK (minutes BETWEEN 1 AND 1440),
    description   text CHECK (length(description) <= 1000),
    PRIMARY KEY (timesheet_id, position),
    FOREIGN KEY (company_id, timesheet_id) REFERENCES timesheets (company_id, id)
);

-- Invoices: for one contract. number: null while draft, then unique per
-- company. amount_due = total - amount_paid, never below zero (overpayment
-- is refused by the database too); a paid invoice owes nothing.
CREATE TABLE invoices (
    id            text PRIMARY KEY DEFAULT worksible_id('inv'),
    company_id    text NOT NULL REFERENCES companies (id),
    contract_id   text NOT NULL,
    number        integer CHECK (number > 0),
    status        text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'open', 'paid', 'void')),
    currency      char(3) NOT NULL REFERENCES currencies (code),
    subtotal      bigint NOT NULL DEFAULT 0
                  CHECK (subtotal BETWEEN -9007199254740991 AND 9007199254740991),
    total         bigint NOT NULL DEFAULT 0 CHECK (total BETWEEN 0 AND 9007199254740991),
    amount_paid   bigint NOT NULL DEFAULT 0 CHECK (amount_paid BETWEEN 0 AND 9007199254740991),
    amount_due    bigint NOT NULL DEFAULT 0 CHECK (amount_due BETWEEN 0 AND 9007199254740991),
    due_date      date,
    finalized_at  timestamptz,
    paid_at       timestamptz,
    voided_at     timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (company_id, id),
    UNIQUE (company_id, id, currency),
    UNIQUE (company_id, number),
    FOREIGN KEY (company_id, contract_id) REFERENCES contracts (company_id, id),
    CHECK (amount_due = total - amount_paid),
    CHECK ((status = 'draft') = (finalized_at IS NULL)),
    CHECK ((number IS NULL) = (finalized_at IS NULL)),
    CHECK ((status = 'paid') = (paid_at IS NOT NULL)),
    CHECK ((status = 'void') = (voided_at IS NOT NULL)),
    CHECK (status <> 'paid' OR amount_due = 0)
);

CREATE INDEX invoices_company_created ON invoices (company_id, created_at DESC, id DESC);
CREATE INDEX invoices_company_status ON invoices (company_id, status, created_at DESC, id DESC);
CREATE INDEX invoices_company_contract ON invoices (company_id, contract_id, created_at DESC, id DESC);

-- Invoice line items: the invoice's `line_items` array, in position order;
-- amount = quantity * unit_amount (a negative unit_amount is a discount).
CREATE TABLE invoice_line_items (
    company_id   text NOT NULL REFERENCES companies (id),
    invoice_id   text NOT NULL,
    position     integer NOT NULL CHECK (position >= 0),
    description  text NOT NULL CHECK (length(description) BETWEEN 1 AND 500),
    quantity     integer NOT NULL CHECK (quantity >= 1),
    unit_amount  bigint NOT NULL
                 CHECK (unit_amount BETWEEN -9007199254740991 AND 9007199254740991),
    amount       bigint NOT NULL
                 CHECK (amount BETWEEN -9007199254740991 AND 9007199254740991),
    PRIMARY KEY (invoice_id, position),
    FOREIGN KEY (company_id, invoice_id) REFERENCES invoices (company_id, id),
    CHECK (amount = quantity * unit_amount)
);

-- Payments: against an invoice, always in the invoice's currency (the
-- reference includes it). No update.
CREATE TABLE payments (
    id          text PRIMARY KEY DEFAULT worksible_id('pay'),
    company_id  text NOT NULL REFERENCES companies (id),
    invoice_id  text NOT NULL,
    amount      bigint NOT NULL CHECK (amount BETWEEN 1 AND 9007199254740991),
    currency    char(3) NOT NULL REFERENCES currencies (code),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (company_id, id),
    FOREIGN KEY (company_id, invoice_id, currency)
        REFERENCES invoices (company_id, id, currency)
);

CREATE INDEX payments_company_created ON payments (company_id, created_at DESC, id DESC);
CREATE INDEX payments_company_invoice ON payments (company_id, invoice_id, created_at DESC, id DESC);

-- Payouts: money sent to a freelancer. The API creates them (pending); the
-- payment rail moves them to paid or failed.
CREATE TABLE payouts (
    id             text PRIMARY KEY DEFAULT worksible_id('po'),
    company_id     text NOT NULL REFERENCES companies (id),
    freelancer_id  text NOT NULL,
    amount         bigint NOT NULL CHECK (amount BETWEEN 1 AND 9007199254740991),
    currency       char(3) NOT NULL REFERENCES currencies (code),
    status         text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'paid', 'failed')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (company_id, id),
    FOREIGN KEY (company_id, freelancer_id) REFERENCES freelancers (company_id, id)
);

CREATE INDEX payouts_company_created ON payouts (company_id, created_at DESC, id DESC);
CREATE INDEX payouts_company_status ON payouts (company_id, status, created_at DESC, id DESC);
CREATE INDEX payouts_company_freelancer ON payouts (company_id, freelancer_id, created_at DESC, id DESC);

-- updated_at on every real change
CREATE TRIGGER touch BEFORE UPDATE ON freelancers
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION worksible_touch();
CREATE TRIGGER touch BEFORE UPDATE ON projects
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION worksible_touch();
CREATE TRIGGER touch BEFORE UPDATE ON contracts
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION worksible_touch();
CREATE TRIGGER touch BEFORE UPDATE ON timesheets
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION worksible_touch();
CREATE TRIGGER touch BEFORE UPDATE ON invoices
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION worksible_touch();
CREATE TRIGGER touch BEFORE UPDATE ON payouts
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION worksible_touch();

-- Row-level security: one company at a time.
ALTER TABLE freelancers ENABLE ROW LEVEL SECURITY;
ALTER TABLE freelancers FORCE ROW LEVEL SECURITY;
CREATE POLICY company_isolation ON freelancers
    USING (company_id = current_setting('worksible.company_id', true));

ALTER TABLE projects ENABLE ROW LEVEL SECURITY;
ALTER TABLE projects FORCE ROW LEVEL SECURITY;
CREATE POLICY company_isolation ON projects
    USING (company_id = current_setting('worksible.company_id', true));

ALTER TABLE contracts ENABLE ROW LEVEL SECURITY;
ALTER TABLE contracts FORCE ROW LEVEL SECURITY;
CREATE POLICY company_isolation ON contracts
    USING (company_id = current_setting('worksible.company_id', true));

ALTER TABLE timesheets ENABLE ROW LEVEL SECURITY;
ALTER TABLE timesheets FORCE ROW LEVEL SECURITY;
CREATE POLICY company_isolation ON timesheets
    USING (company_id = current_setting('worksible.company_id', true));

ALTER TABLE timesheet_entries ENABLE ROW LEVEL SECURITY;
ALTER TABLE timesheet_entries FORCE ROW LEVEL SECURITY;
CREATE POLICY company_isolation ON timesheet_entries
    USING (company_id = current_setting('worksible.company_id', true));

ALTER TABLE invoices ENABLE ROW LEVEL SECURITY;
ALTER TABLE invoices FORCE ROW LEVEL SECURITY;
CREATE POLICY company_isolation ON invoices
    USING (company_id = current_setting('worksible.company_id', true));

ALTER TABLE invoice_line_items ENABLE ROW LEVEL SECURITY;
ALTER TABLE invoice_line_items FORCE ROW LEVEL SECURITY;
CREATE POLICY company_isolation ON invoice_line_items
    USING (company_id = current_setting('worksible.company_id', true));

ALTER TABLE payments ENABLE ROW LEVEL SECURITY;
ALTER TABLE payments FORCE ROW LEVEL SECURITY;
CREATE POLICY company_isolation ON payments
    USING (company_id = current_setting('worksible.company_id', true));

ALTER TABLE payouts ENABLE ROW LEVEL SECURITY;
ALTER TABLE payouts FORCE ROW LEVEL SECURITY;
CREATE POLICY company_isolation ON payouts
    USING (company_id = current_setting('worksible.company_id', true));

-- What the module (worksible_api) may do. id, company_id and created_at never
-- change; nested entries and line items are replaced (DELETE + INSERT) by a
-- PATCH; payments and payouts have no update in the API. (request_logs:
-- 0007_request_logs.sql.)
GRANT SELECT ON countries TO worksible_api;
GRANT SELECT, INSERT, UPDATE (email, name, country, status, hourly_rate, currency, updated_at)
    ON freelancers TO worksible_api;
GRANT SELECT, INSERT, UPDATE (name, description, status, budget, currency, updated_at)
    ON projects TO worksible_api;
GRANT SELECT, INSERT, UPDATE (project_id, freelancer_id, type, rate, currency, status,
                              start_date, end_date, updated_at)
    ON contracts TO worksible_api;
GRANT SELECT, INSERT, UPDATE (contract_id, period_start, period_end, status, submitted_at,
                              approved_at, rejected_at, updated_at)
    ON timesheets TO worksible_api;
GRANT SELECT, INSERT, DELETE ON timesheet_entries TO worksible_api;
GRANT SELECT, INSERT, UPDATE (contract_id, number, status, currency, subtotal, total,
                              amount_paid, amount_due, due_date, finalized_at, paid_at,
                              voided_at, updated_at)
    ON invoices TO worksible_api;
GRANT SELECT, INSERT, DELETE ON invoice_line_items TO worksible_api;
GRANT SELECT, INSERT ON payments TO worksible_api;
GRANT SELECT, INSERT ON payouts TO worksible_api;
