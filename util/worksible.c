/*
 * worksible: the operators' command line tool of ngx_worksible_module.
 *
 *   worksible migrate [--dir DIR]
 *   worksible company create --name N --plan P [--currency C]
 *   worksible key create --company ID --scopes "a:read b:write" ...
 *   worksible key revoke KEY_ID
 *   worksible key list --company ID
 *   worksible plan set NAME [--api-access on|off] [--ip-allowlists on|off]
 *                           [--limit N] [--window SECONDS]
 *   worksible plan list
 *   worksible logs prune --older-than N(d|h)
 *
 * Blocking libpq is fine here: this is not the nginx worker. API keys are
 * made and hashed by src/ngx_worksible_key.c, exactly as the module
 * verifies them. Plans (table plans, no row-level security) are changed by
 * the owner role; a changed plan reaches a key within the key cache's ttl.
 * The request log is pruned by dropping whole day partitions
 * (worksible_request_logs_prune, owner only).
 * Exit status: 0 success, 1 the work failed, 2 bad arguments; every
 * failure writes one line "worksible: ..." to stderr.
 *
 * This file: arguments, usage, messages and output. One file per command
 * group (worksible_migrate.c, _company.c, _key.c, _plan.c, _logs.c), and
 * worksible_db.c for the PostgreSQL session; worksible.h holds what they
 * share.
 */


#include "worksible.h"


static int worksible_parse_args(int argc, char **argv,
    worksible_args_t *args);
static const worksible_option_t *worksible_find_option(const char *arg,
    size_t len);
static const worksible_command_t *worksible_find_command(
    worksible_args_t *args);
static void worksible_usage(FILE *out);


static const worksible_option_t  worksible_options[] = {
    { "--db", WORKSIBLE_OPT_DB, 1, offsetof(worksible_args_t, db) },
    { "--json", WORKSIBLE_OPT_JSON, 0, 0 },
    { "--help", WORKSIBLE_OPT_HELP, 0, 0 },
    { "--version", WORKSIBLE_OPT_VERSION, 0, 0 },
    { "--dir", WORKSIBLE_OPT_DIR, 1, offsetof(worksible_args_t, dir) },
    { "--name", WORKSIBLE_OPT_NAME, 1, offsetof(worksible_args_t, name) },
    { "--plan", WORKSIBLE_OPT_PLAN, 1, offsetof(worksible_args_t, plan) },
    { "--currency", WORKSIBLE_OPT_CURRENCY, 1,
      offsetof(worksible_args_t, currency) },
    { "--company", WORKSIBLE_OPT_COMPANY, 1,
      offsetof(worksible_args_t, company) },
    { "--scopes", WORKSIBLE_OPT_SCOPES, 1,
      offsetof(worksible_args_t, scopes) },
    { "--expires-at", WORKSIBLE_OPT_EXPIRES_AT, 1,
      offsetof(worksible_args_t, expires_at) },
    { "--allow-ip", WORKSIBLE_OPT_ALLOW_IP, 1, 0 },
    { "--key-secret-file", WORKSIBLE_OPT_KEY_SECRET_FILE, 1,
      offsetof(worksible_args_t, key_secret_file) },
    { "--api-access", WORKSIBLE_OPT_API_ACCESS, 1,
      offsetof(worksible_args_t, api_access) },
    { "--ip-allowlists", WORKSIBLE_OPT_IP_ALLOWLISTS, 1,
      offsetof(worksible_args_t, ip_allowlists) },
    { "--limit", WORKSIBLE_OPT_LIMIT, 1, offsetof(worksible_args_t, limit) },
    { "--window", WORKSIBLE_OPT_WINDOW, 1,
      offsetof(worksible_args_t, window) },
    { "--older-than", WORKSIBLE_OPT_OLDER_THAN, 1,
      offsetof(worksible_args_t, older_than) },
    { NULL, 0, 0, 0 }
};


static const worksible_command_t  worksible_commands[] = {
    { "migrate", NULL, 0, NULL, WORKSIBLE_OPT_DIR, 0,
      worksible_cmd_migrate },

    { "company", "create", 0, NULL,
      WORKSIBLE_OPT_NAME | WORKSIBLE_OPT_PLAN | WORKSIBLE_OPT_CURRENCY,
      WORKSIBLE_OPT_NAME | WORKSIBLE_OPT_PLAN,
      worksible_cmd_company_create },

    { "key", "create", 0, NULL,
      WORKSIBLE_OPT_COMPANY | WORKSIBLE_OPT_SCOPES | WORKSIBLE_OPT_NAME
      | WORKSIBLE_OPT_EXPIRES_AT | WORKSIBLE_OPT_ALLOW_IP
      | WORKSIBLE_OPT_KEY_SECRET_FILE,
      WORKSIBLE_OPT_COMPANY | WORKSIBLE_OPT_SCOPES,
      worksible_cmd_key_create },

    { "key", "revoke", 1, "a key id (key_...)", WORKSIBLE_OPT_COMPANY, 0,
      worksible_cmd_key_revoke },

    { "key", "list", 0, NULL, WORKSIBLE_OPT_COMPANY, WORKSIBLE_OPT_COMPANY,
      worksible_cmd_key_list },

    { "plan", "set", 1, "a plan name",
      WORKSIBLE_OPT_API_ACCESS | WORKSIBLE_OPT_IP_ALLOWLISTS
      | WORKSIBLE_OPT_LIMIT | WORKSIBLE_OPT_WINDOW,
      0, worksible_cmd_plan_set },

    { "plan", "list", 0, NULL, 0, 0, worksible_cmd_plan_list },

    { "logs", "prune", 0, NULL, WORKSIBLE_OPT_OLDER_THAN,
      WORKSIBLE_OPT_OLDER_THAN, worksible_cmd_logs_prune },

    { NULL, NULL, 0, NULL, 0, 0, NULL }
};


/*
 * Parses the command line, runs the command. Returns the exit status:
 * 0 success, 1 the work failed, 2 bad arguments.
 */

int
main(int argc, char **argv)
{
    int                         rc;
    worksible_args_t            args;
    const worksible_command_t  *cmd;

    rc = worksible_parse_args(argc, argv, &args);

    if (rc != WORKSIBLE_EXIT_OK
        || (args.seen & (WORKSIBLE_OPT_HELP | WORKSIBLE_OPT_VERSION)))
    {
        goto done;
    }

    cmd = worksible_find_command(&args);
    if (cmd == NULL) {
        rc = WORKSIBLE_EXIT_USAGE;
        goto done;
    }

    if (sodium_init() < 0) {
        worksible_error("libsodium failed to initialise");
        rc = WORKSIBLE_EXIT_FAILED;
        goto done;
    }

    rc = cmd->handler(&args);

done:

    free(args.allow_ip);
    free(args.words);

    return rc;
}


/*
 * Reads argv into args. Options may come anywhere (before or after the
 * command words), as "--opt VALUE" or "--opt=VALUE"; "--" ends them. A
 * separate value may not start with '-' (use "--opt=-x"), so "--help" is
 * never mistaken for a value. "-h"/"--help" prints the usage on stdout.
 * Returns 0, or 2 after printing the first problem.
 */

static int
worksible_parse_args(int argc, char **argv, worksible_args_t *args)
{
    int                        i, rc, options;
    size_t                     len;
    const char                *arg, *eq, *value;
    const worksible_option_t  *opt;

    memset(args, 0, sizeof(worksible_args_t));

    args->allow_ip = calloc(argc + 1, sizeof(char *));
    args->words = calloc(argc + 1, sizeof(char *));

    if (args->allow_ip == NULL || args->words == NULL) {
        worksible_error("out of memory");
        return WORKSIBLE_EXIT_FAILED;
    }

    rc = WORKSIBLE_EXIT_OK;
    options = 1;

    for (i = 1; i < argc; i++) {
        arg = argv[i];

        if (!options || arg[0] != '-') {
            args->words[args->nwords++] = arg;
            continue;
        }

        if (strcmp(arg, "--") == 0) {
            options = 0;
            continue;
        }

        if (strcmp(arg, "-h") == 0) {
            args->seen |= WORKSIBLE_OPT_HELP;
            continue;
        }

        eq = strchr(arg, '=');
        len = (eq != NULL) ? (size_t) (eq - arg) : strlen(arg);

        opt = worksible_find_option(arg, len);

        if (opt == NULL) {
            if (rc == WORKSIBLE_EXIT_OK) {
                worksible_error("unknown option %s (see worksible --help)",
                                worksible_quote(arg));
                rc = WORKSIBLE_EXIT_USAGE;
            }
            continue;
        }

        if (!opt->value) {
            if (eq != NULL && rc == WORKSIBLE_EXIT_OK) {
                worksible_error("option %s takes no value", opt->name);
                rc = WORKSIBLE_EXIT_USAGE;
            }

            args->seen |= opt->bit;
            continue;
        }

        if (eq != NULL) {
            value = eq + 1;

        } else if (i + 1 < argc && argv[i + 1][0] != '-') {
            value = argv[++i];

        } else {
            if (rc == WORKSIBLE_EXIT_OK) {
                worksible_error("option %s needs a value", opt->name);
                rc = WORKSIBLE_EXIT_USAGE;
            }
            continue;
        }

        if (opt->bit == WORKSIBLE_OPT_ALLOW_IP) {
            args->allow_ip[args->nallow_ip++] = value;
            args->seen |= opt->bit;
            continue;
        }

        if ((args->seen & opt->bit) && rc == WORKSIBLE_EXIT_OK) {
            worksible_error("option %s given twice", opt->name);
            rc = WORKSIBLE_EXIT_USAGE;
        }

        args->seen |= opt->bit;
        *(const char **) ((char *) args + opt->offset) = value;
    }

    if (args->seen & WORKSIBLE_OPT_HELP) {
        worksible_usage(stdout);
        return worksible_flush();
    }

    if (args->seen & WORKSIBLE_OPT_VERSION) {
        printf("worksible %s\n", NGX_WORKSIBLE_VERSION);
        return worksible_flush();
    }

    args->json = (args->seen & WORKSIBLE_OPT_JSON) ? 1 : 0;

    return rc;
}


/*
 * Looks up the option named by arg[0..len) ("--db"). Returns NULL when
 * there is none.
 */

static const worksible_option_t *
worksible_find_option(const char *arg, size_t len)
{
    const worksible_option_t  *opt;

    for (opt = worksible_options; opt->name != NULL; opt++) {
        if (strlen(opt->name) == len && strncmp(opt->name, arg, len) == 0) {
            return opt;
        }
    }

    return NULL;
}


/*
 * Finds the command named by args->words and checks its operand count and
 * options: those given must be allowed for it, its required ones present.
 * Returns the command, or NULL after printing the problem (exit 2).
 */

static const worksible_command_t *
worksible_find_command(worksible_args_t *args)
{
    int                         operands;
    unsigned                    bad;
    const worksible_option_t   *opt;
    const worksible_command_t  *cmd, *group;
    static char                 buf[64];

    if (args->nwords == 0) {
        worksible_error("missing command (see worksible --help)");
        return NULL;
    }

    for (cmd = worksible_commands; cmd->group != NULL; cmd++) {
        if (strcmp(cmd->group, args->words[0]) != 0) {
            continue;
        }

        if (cmd->verb == NULL) {
            break;
        }

        if (args->nwords < 2) {
            worksible_error("'%s' needs a subcommand (see worksible --help)",
                            cmd->group);
            return NULL;
        }

        if (strcmp(cmd->verb, args->words[1]) == 0) {
            break;
        }
    }

    if (cmd->group == NULL) {
        for (group = worksible_commands; group->group != NULL; group++) {
            if (group->verb != NULL
                && strcmp(group->group, args->words[0]) == 0)
            {
                break;
            }
        }

        if (group->group != NULL) {
            worksible_error("unknown command %s %s (see worksible --help)",
                            args->words[0], worksible_quote(args->words[1]));

        } else {
            worksible_error("unknown command %s (see worksible --help)",
                            worksible_quote(args->words[0]));
        }

        return NULL;
    }

    snprintf(buf, sizeof(buf), "%s%s%s", cmd->group,
             cmd->verb ? " " : "", cmd->verb ? cmd->verb : "");
    operands = args->nwords - (cmd->verb ? 2 : 1);

    if (operands > cmd->operands) {
        worksible_error("unexpected argument %s for '%s'",
                        worksible_quote(args->words[args->nwords
                                                    - operands
                                                    + cmd->operands]),
                        buf);
        return NULL;
    }

    if (operands < cmd->operands) {
        worksible_error("'%s' needs %s", buf, cmd->operand);
        return NULL;
    }

    bad = args->seen & ~(cmd->allowed | WORKSIBLE_OPT_GLOBAL);

    for (opt = worksible_options; opt->name != NULL; opt++) {
        if (bad & opt->bit) {
            worksible_error("option %s is not valid for '%s'", opt->name,
                            buf);
            return NULL;
        }

        if ((cmd->required & opt->bit) && !(args->seen & opt->bit)) {
            worksible_error("'%s' needs %s", buf, opt->name);
            return NULL;
        }
    }

    return cmd;
}


/*
 * Writes the usage text to out.
 */

static void
worksible_usage(FILE *out)
{
    fprintf(out,
"usage: worksible [--db CONNINFO] [--json] COMMAND [OPTIONS]\n"
"\n"
"Commands:\n"
"  migrate [--dir DIR]\n"
"      Apply the pending NNNN_name.sql files of DIR in name order, each in\n"
"      one transaction with its row in schema_migrations. Refuses if an\n"
"      applied file changed or is missing. DIR: $WORKSIBLE_MIGRATIONS, else\n"
"      %s.\n"
"  company create --name NAME --plan PLAN [--currency CODE]\n"
"      Create a company (CODE: ISO 4217, default EUR); print its id.\n"
"  key create --company ID --scopes \"SCOPE...\" [--name NAME]\n"
"             [--expires-at TIME] [--allow-ip CIDR]... [--key-secret-file F]\n"
"      Create an API key; print its id and the key, shown only this once.\n"
"      SCOPE: resource:read or resource:write, space-separated.\n"
"      TIME: RFC 3339, in the future (2027-01-31T10:00:00Z).\n"
"      CIDR: IPv4 or IPv6 network or address, repeatable; only on plans\n"
"      with ip_allowlists (enterprise).\n"
"      F: the server secret, default $WORKSIBLE_KEY_SECRET_FILE.\n"
"  key revoke KEY_ID [--company ID]\n"
"      Revoke a key (again: no change); print it. --company is needed\n"
"      only when the database role does not bypass row-level security.\n"
"  key list --company ID\n"
"      List a company's keys, newest first, one per line: id, prefix,\n"
"      state, created_at, expires_at, scopes, name (tab-separated).\n"
"  plan set NAME [--api-access on|off] [--ip-allowlists on|off]\n"
"           [--limit N] [--window SECONDS]\n"
"      Create or update a plan; print it. A new plan needs --limit and\n"
"      --window (--api-access, --ip-allowlists: off unless given); an\n"
"      update changes only the options given, at least one.\n"
"      --ip-allowlists: whether its keys may get new IP allowlists.\n"
"      NAME: ^[a-z][a-z0-9_]{0,31}$.\n"
"      N: 1 to 1000000000 requests per window; SECONDS: 1 to 86400.\n"
"      A changed plan applies to a key within the key cache's ttl.\n"
"  plan list\n"
"      List the plans by limit, then name, one per line:\n"
"      NAME api_access=on|off ip_allowlists=on|off limit=N\n"
"      window=SECONDS.\n"
"  logs prune --older-than AGE\n"
"      Drop the request log's day partitions (UTC) that end at least AGE\n"
"      ago; print each dropped partition, one per line (or \"nothing to\n"
"      drop\"). AGE: Nd (1 to 3650 days) or Nh (1 to 87600 hours).\n"
"      Needs the owner role.\n"
"\n"
"Global options (anywhere on the line):\n"
"  --db CONNINFO  libpq connection string or URI; default: the libpq\n"
"                 environment (PGHOST, PGPORT, PGUSER, PGDATABASE, ...)\n"
"  --json         print JSON (api_key objects as the API shows them,\n"
"                 plan objects, {\"dropped\":[...]} for logs prune)\n"
"  -h, --help     print this help\n"
"  --version      print the version\n"
"\n"
"Exit status: 0 success, 1 the work failed, 2 bad arguments.\n",
            WORKSIBLE_MIGRATIONS_DIR);
}


/*
 * Prints "worksible: <message>\n" on stderr.
 */

void
worksible_error(const char *fmt, ...)
{
    va_list  ap;

    fputs("worksible: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}


/*
 * Returns s in single quotes for a message, control and non-ASCII bytes
 * as \xHH, cut at 80 bytes, so that a message stays one readable line.
 * Two static buffers used in turn: at most two quotes per message.
 */

const char *
worksible_quote(const char *s)
{
    char          *p, *last;
    size_t         i;
    unsigned char  c;
    static int     n;
    static char    bufs[2][4 * 80 + 8];

    p = bufs[n];
    n ^= 1;
    last = p + sizeof(bufs[0]) - 8;

    *p++ = '\'';

    for (i = 0; s[i] != '\0'; i++) {
        if (i == 80 || p >= last) {
            p += sprintf(p, "...");
            break;
        }

        c = (unsigned char) s[i];

        if (c < 0x20 || c >= 0x7f) {
            p += sprintf(p, "\\x%02x", c);

        } else {
            *p++ = c;
        }
    }

    *p++ = '\'';
    *p = '\0';

    return bufs[n ^ 1];
}


/*
 * Checks a company or key name: valid UTF-8 (RFC 3629), 1 to 200
 * characters, no control characters. Returns 0, or -1 after printing the
 * problem.
 */

int
worksible_check_name(const char *opt, const char *s)
{
    size_t          chars;
    uint32_t        cp;
    const u_char   *p;
    int             n, i;

    chars = 0;

    for (p = (const u_char *) s; *p != '\0'; p += n) {
        if (*p < 0x80) {
            cp = *p;
            n = 1;

        } else if (*p >= 0xc2 && *p <= 0xdf) {
            cp = *p & 0x1f;
            n = 2;

        } else if (*p >= 0xe0 && *p <= 0xef) {
            cp = *p & 0x0f;
            n = 3;

        } else if (*p >= 0xf0 && *p <= 0xf4) {
            cp = *p & 0x07;
            n = 4;

        } else {
            goto invalid;
        }

        for (i = 1; i < n; i++) {
            if ((p[i] & 0xc0) != 0x80) {
                goto invalid;
            }

            cp = (cp << 6) | (p[i] & 0x3f);
        }

        if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000)
            || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        {
            goto invalid;
        }

        if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) {
            worksible_error("%s: control characters are not allowed", opt);
            return -1;
        }

        chars++;
    }

    if (chars == 0) {
        worksible_error("%s: must not be empty", opt);
        return -1;
    }

    if (chars > WORKSIBLE_NAME_MAX) {
        worksible_error("%s: longer than %d characters", opt,
                        WORKSIBLE_NAME_MAX);
        return -1;
    }

    return 0;

invalid:

    worksible_error("%s: not valid UTF-8", opt);

    return -1;
}


/*
 * Checks an object id: prefix "_" and a ULID (26 Crockford base32
 * characters, upper case; API.md, Names). Returns 0, or -1 after printing
 * the problem naming the value.
 */

int
worksible_check_id(const char *opt, const char *s, const char *prefix)
{
    size_t  len, i;

    len = strlen(prefix);

    if (strncmp(s, prefix, len) != 0 || s[len] != '_'
        || strlen(s + len + 1) != WORKSIBLE_ULID_LEN)
    {
        goto bad;
    }

    for (i = len + 1; s[i] != '\0'; i++) {
        if (strchr(WORKSIBLE_CROCKFORD, s[i]) == NULL) {
            goto bad;
        }
    }

    return 0;

bad:

    worksible_error("%s: %s is not a %s_ id (%s_ and 26 characters)", opt,
                    worksible_quote(s), prefix, prefix);

    return -1;
}


/*
 * Checks a count option: decimal digits only (no sign, space or leading
 * zero), from 1 to max. unit names what is counted, for the message.
 * Returns 0, or -1 after printing the problem naming the value.
 */

int
worksible_parse_count(const char *opt, const char *s, long max,
    const char *unit)
{
    long    v;
    size_t  i;

    v = 0;

    if (s[0] < '1' || s[0] > '9') {
        goto bad;
    }

    for (i = 0; s[i] != '\0'; i++) {
        if (s[i] < '0' || s[i] > '9') {
            goto bad;
        }

        v = v * 10 + (s[i] - '0');

        if (v > max) {
            goto bad;
        }
    }

    return 0;

bad:

    worksible_error("%s: %s is not a whole number of %s from 1 to %ld", opt,
                    worksible_quote(s), unit, max);

    return -1;
}


/*
 * Prints json compactly on one line of stdout; with wipe set the text is
 * zeroed before it is freed (it holds a key). Returns 0 or 1.
 */

int
worksible_print_json(json_t *json, int wipe)
{
    int    rc;
    char  *text;

    if (json == NULL) {
        worksible_error("out of memory");
        return WORKSIBLE_EXIT_FAILED;
    }

    text = json_dumps(json, JSON_COMPACT);
    if (text == NULL) {
        worksible_error("out of memory");
        return WORKSIBLE_EXIT_FAILED;
    }

    printf("%s\n", text);
    rc = worksible_flush();

    if (wipe) {
        sodium_memzero(text, strlen(text));
    }

    free(text);

    return rc;
}


/*
 * Prints the first column of every row of res, each the text of one JSON
 * object (an api_key, a plan), as one JSON array on one line of stdout.
 * Returns 0 or 1 (out of memory, a row that is not JSON).
 */

int
worksible_print_json_rows(PGresult *res, const char *object)
{
    int      rc, i, n;
    json_t  *json, *item;

    json = json_array();
    if (json == NULL) {
        worksible_error("out of memory");
        return WORKSIBLE_EXIT_FAILED;
    }

    n = PQntuples(res);

    for (i = 0; i < n; i++) {
        item = json_loads(PQgetvalue(res, i, 0), 0, NULL);

        if (item == NULL || json_array_append_new(json, item) != 0) {
            worksible_error("bad %s object from the database", object);
            json_decref(json);
            return WORKSIBLE_EXIT_FAILED;
        }
    }

    rc = worksible_print_json(json, 0);
    json_decref(json);

    return rc;
}


/*
 * Flushes stdout. Returns 0, or 1 after printing the write error.
 */

int
worksible_flush(void)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        worksible_error("stdout: %s", strerror(errno));
        return WORKSIBLE_EXIT_FAILED;
    }

    return WORKSIBLE_EXIT_OK;
}
