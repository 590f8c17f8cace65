/*
 * worksible: the operators' command line tool of ngx_worksible_module.
 *
 *   worksible migrate [--dir DIR]
 *   worksible company create --name N --plan P [--currency C]
 *   worksible key create --company ID --scopes "a:read b:write" ...
 *   worksible key revoke KEY_ID
 *   worksible key list --company ID
 *   worksible plan set NAME [--api-access on|off] [--limit N]
 *                           [--window SECONDS]
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
 */

#include <stdio.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <errno.h>
#include <dirent.h>
#include <time.h>
#include <sys/types.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <libpq-fe.h>
#include <sodium.h>
#include <jansson.h>

#include "ngx_worksible_cidr.h"
#include "ngx_worksible_key.h"
#include "ngx_worksible_version.h"


#ifndef WORKSIBLE_MIGRATIONS_DIR
#define WORKSIBLE_MIGRATIONS_DIR  "migrations"
#endif

#define WORKSIBLE_EXIT_OK              0
#define WORKSIBLE_EXIT_FAILED          1
#define WORKSIBLE_EXIT_USAGE           2

/* options, as bits of worksible_args_t.seen */
#define WORKSIBLE_OPT_DB               0x0001
#define WORKSIBLE_OPT_JSON             0x0002
#define WORKSIBLE_OPT_HELP             0x0004
#define WORKSIBLE_OPT_DIR              0x0008
#define WORKSIBLE_OPT_NAME             0x0010
#define WORKSIBLE_OPT_PLAN             0x0020
#define WORKSIBLE_OPT_CURRENCY         0x0040
#define WORKSIBLE_OPT_COMPANY          0x0080
#define WORKSIBLE_OPT_SCOPES           0x0100
#define WORKSIBLE_OPT_EXPIRES_AT       0x0200
#define WORKSIBLE_OPT_ALLOW_IP         0x0400
#define WORKSIBLE_OPT_KEY_SECRET_FILE  0x0800
#define WORKSIBLE_OPT_API_ACCESS       0x1000
#define WORKSIBLE_OPT_LIMIT            0x2000
#define WORKSIBLE_OPT_WINDOW           0x4000
#define WORKSIBLE_OPT_OLDER_THAN       0x8000
#define WORKSIBLE_OPT_VERSION          0x10000

#define WORKSIBLE_OPT_GLOBAL                                                  \
    (WORKSIBLE_OPT_DB | WORKSIBLE_OPT_JSON | WORKSIBLE_OPT_HELP             \
     | WORKSIBLE_OPT_VERSION)

#define WORKSIBLE_NAME_MAX             200    /* characters, as the schema */
#define WORKSIBLE_SECRET_FILE_MAX      1024
#define WORKSIBLE_MIGRATION_MAX        (64 * 1024 * 1024)
#define WORKSIBLE_KEY_TRIES            5
#define WORKSIBLE_PLAN_NAME_MAX        32     /* ^[a-z][a-z0-9_]{0,31}$ */
#define WORKSIBLE_RATE_LIMIT_MAX       1000000000L   /* requests */
#define WORKSIBLE_RATE_WINDOW_MAX      86400L        /* seconds, one day */
#define WORKSIBLE_PRUNE_DAYS_MAX       3650L         /* ten years */
#define WORKSIBLE_PRUNE_HOURS_MAX      (24 * WORKSIBLE_PRUNE_DAYS_MAX)

/* pg_advisory_lock key of `worksible migrate`: "wksbmigr" in ASCII */
#define WORKSIBLE_MIGRATE_LOCK         "8605515385046812018"

#define WORKSIBLE_CROCKFORD            "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#define WORKSIBLE_ULID_LEN             26

/* the plan object of `plan set` and `plan list`, of the row p of plans */
#define WORKSIBLE_PLAN_OBJECT                                                 \
    "json_build_object('object', 'plan', 'name', p.name,"                     \
    " 'api_access', p.api_access, 'rate_limit', p.rate_limit,"                \
    " 'rate_window', p.rate_window,"                                          \
    " 'created_at', worksible_ts(p.created_at),"                              \
    " 'updated_at', worksible_ts(p.updated_at))::text"


typedef struct {
    const char    *db;
    const char    *dir;
    const char    *name;
    const char    *plan;
    const char    *currency;
    const char    *company;
    const char    *scopes;
    const char    *expires_at;
    const char    *key_secret_file;
    const char    *api_access;
    const char    *limit;
    const char    *window;
    const char    *older_than;
    const char   **allow_ip;        /* argv pointers, nallow_ip of them */
    int            nallow_ip;
    const char   **words;           /* command words and operands */
    int            nwords;
    unsigned       seen;            /* WORKSIBLE_OPT_* given */
    unsigned       json:1;
} worksible_args_t;

typedef struct {
    const char    *name;            /* "--db" */
    unsigned       bit;
    unsigned       value:1;         /* takes a value */
    size_t         offset;          /* of the value in worksible_args_t */
} worksible_option_t;

typedef int (*worksible_handler_pt)(worksible_args_t *args);

typedef struct {
    const char            *group;   /* "key" */
    const char            *verb;    /* "create", or NULL */
    int                    operands;
    const char            *operand; /* "a key id (key_...)", for messages */
    unsigned               allowed;
    unsigned               required;
    worksible_handler_pt   handler;
} worksible_command_t;

typedef struct {
    char          *name;            /* file name, the version */
    char          *sql;             /* content, NUL-terminated */
    size_t         len;
    char           checksum[2 * crypto_hash_sha256_BYTES + 1];
    int            applied;
} worksible_migration_t;


static int worksible_parse_args(int argc, char **argv,
    worksible_args_t *args);
static const worksible_option_t *worksible_find_option(const char *arg,
    size_t len);
static const worksible_command_t *worksible_find_command(
    worksible_args_t *args);
static void worksible_usage(FILE *out);
static void worksible_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static const char *worksible_quote(const char *s);

static int worksible_cmd_migrate(worksible_args_t *args);
static int worksible_cmd_company_create(worksible_args_t *args);
static int worksible_cmd_key_create(worksible_args_t *args);
static int worksible_cmd_key_revoke(worksible_args_t *args);
static int worksible_cmd_key_list(worksible_args_t *args);
static int worksible_cmd_plan_set(worksible_args_t *args);
static int worksible_cmd_plan_list(worksible_args_t *args);
static int worksible_cmd_logs_prune(worksible_args_t *args);

static PGconn *worksible_connect(const char *db);
static int worksible_check_db(const char *db);
static void worksible_notice(void *arg, const PGresult *res);
static PGresult *worksible_exec(PGconn *conn, const char *sql, int nparams,
    const char *const *values, const int *lengths, const int *formats);
static void worksible_db_error(PGconn *conn, const PGresult *res,
    const char *where);
static int worksible_command(PGconn *conn, const char *sql);
static void worksible_rollback(PGconn *conn);
static void worksible_close(PGconn *conn, PGresult *res, int rc);
static int worksible_set_company(PGconn *conn, const char *company);
static int worksible_bypasses_rls(PGconn *conn);

static int worksible_migrations_load(const char *dir,
    worksible_migration_t **list, size_t *n);
static int worksible_migration_name(const char *name);
static int worksible_migration_read(const char *dir,
    worksible_migration_t *m);
static int worksible_migration_cmp(const void *a, const void *b);
static void worksible_migrations_free(worksible_migration_t *list, size_t n);
static int worksible_migration_apply(PGconn *conn, worksible_migration_t *m);
static long worksible_sql_line(const char *sql, size_t len, long position);

static int worksible_check_name(const char *opt, const char *s);
static int worksible_check_id(const char *opt, const char *s,
    const char *prefix);
static int worksible_check_plan_name(const char *s);
static int worksible_parse_count(const char *opt, const char *s, long max,
    const char *unit);
static int worksible_parse_age(const char *opt, const char *s, char *interval,
    size_t size);
static int worksible_parse_scopes(const char *s, char **literal);
static int worksible_scope_valid(const char *s, size_t len);
static int worksible_parse_rfc3339(const char *s, char *canon, size_t size,
    int64_t *sec, long *usec, const char **why);
static int worksible_digits(const char **p, int n, int *out);
static int worksible_days_in_month(int y, int m);
static int64_t worksible_days_from_civil(int64_t y, int m, int d);
static void worksible_civil_from_days(int64_t z, int64_t *y, int *m,
    int *d);
static int worksible_parse_allowlist(worksible_args_t *args, char **literal);
static int worksible_read_secret(const char *path,
    ngx_worksible_server_secret_t *current);

static int worksible_print_json(json_t *json, int wipe);
static int worksible_print_json_rows(PGresult *res, const char *object);
static int worksible_print_key_line(const char *object_text,
    const char *state);
static int worksible_print_plan(const char *object_text, int json);
static int worksible_flush(void);


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
      WORKSIBLE_OPT_API_ACCESS | WORKSIBLE_OPT_LIMIT | WORKSIBLE_OPT_WINDOW,
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
"  plan set NAME [--api-access on|off] [--limit N] [--window SECONDS]\n"
"      Create or update a plan; print it. A new plan needs --limit and\n"
"      --window (--api-access: off unless given); an update changes only\n"
"      the options given, at least one. NAME: ^[a-z][a-z0-9_]{0,31}$.\n"
"      N: 1 to 1000000000 requests per window; SECONDS: 1 to 86400.\n"
"      A changed plan applies to a key within the key cache's ttl.\n"
"  plan list\n"
"      List the plans by limit, then name, one per line:\n"
"      NAME api_access=on|off limit=N window=SECONDS.\n"
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

static void
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

static const char *
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
 * worksible migrate [--dir DIR]: applies the pending migrations of DIR
 * (--dir, else $WORKSIBLE_MIGRATIONS, else WORKSIBLE_MIGRATIONS_DIR), each
 * in one transaction with its schema_migrations row (version = file name,
 * checksum = SHA-256 hex of the bytes). Runs under a session advisory lock
 * so that concurrent runs apply each file once. Returns 0; 1 when the
 * directory cannot be read, an applied file changed or is missing, or the
 * database fails; 2 for an empty --dir.
 */

static int
worksible_cmd_migrate(worksible_args_t *args)
{
    int                     rc, i, ntuples;
    size_t                  n, k;
    PGconn                 *conn;
    json_t                 *json, *applied;
    PGresult               *res;
    const char             *dir, *version, *checksum;
    worksible_migration_t  *list, *m;

    dir = args->dir;

    if (dir != NULL && dir[0] == '\0') {
        worksible_error("option --dir needs a value");
        return WORKSIBLE_EXIT_USAGE;
    }

    if (dir == NULL) {
        dir = getenv("WORKSIBLE_MIGRATIONS");

        if (dir == NULL || dir[0] == '\0') {
            dir = WORKSIBLE_MIGRATIONS_DIR;
        }
    }

    if (args->db != NULL && worksible_check_db(args->db) != 0) {
        return WORKSIBLE_EXIT_USAGE;
    }

    list = NULL;
    n = 0;
    json = NULL;
    conn = NULL;
    res = NULL;
    rc = WORKSIBLE_EXIT_FAILED;

    if (worksible_migrations_load(dir, &list, &n) != 0) {
        return WORKSIBLE_EXIT_FAILED;
    }

    conn = worksible_connect(args->db);
    if (conn == NULL) {
        goto done;
    }

    res = worksible_exec(conn, "SELECT pg_try_advisory_lock("
                               WORKSIBLE_MIGRATE_LOCK ")",
                         0, NULL, NULL, NULL);
    if (res == NULL) {
        goto done;
    }

    if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
        worksible_error("waiting for another worksible migrate to finish");

        PQclear(res);
        res = worksible_exec(conn, "SELECT pg_advisory_lock("
                                   WORKSIBLE_MIGRATE_LOCK ")",
                             0, NULL, NULL, NULL);
        if (res == NULL) {
            goto done;
        }
    }

    PQclear(res);

    if (worksible_command(conn,
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY,"
            " checksum text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())")
        != 0)
    {
        goto done;
    }

    res = worksible_exec(conn, "SELECT version, checksum"
                               " FROM schema_migrations ORDER BY version",
                         0, NULL, NULL, NULL);
    if (res == NULL) {
        goto done;
    }

    ntuples = PQntuples(res);

    for (i = 0; i < ntuples; i++) {
        version = PQgetvalue(res, i, 0);
        checksum = PQgetvalue(res, i, 1);

        m = NULL;

        for (k = 0; k < n; k++) {
            if (strcmp(list[k].name, version) == 0) {
                m = &list[k];
                break;
            }
        }

        if (m == NULL) {
            worksible_error("applied migration %s is missing from %s: "
                            "refusing to migrate",
                            worksible_quote(version), worksible_quote(dir));
            goto done;
        }

        if (strcmp(m->checksum, checksum) != 0) {
            worksible_error("applied migration %s has changed since it was "
                            "applied (checksum differs): refusing to migrate",
                            worksible_quote(version));
            goto done;
        }

        m->applied = 1;
    }

    PQclear(res);
    res = NULL;

    applied = json_array();
    json = json_pack("{s:o}", "applied", applied);

    if (applied == NULL || json == NULL) {
        worksible_error("out of memory");
        goto done;
    }

    for (k = 0; k < n; k++) {
        m = &list[k];

        if (m->applied) {
            continue;
        }

        if (worksible_migration_apply(conn, m) != 0) {
            goto done;
        }

        if (json_array_append_new(applied, json_string(m->name)) != 0) {
            worksible_error("out of memory");
            goto done;
        }

        if (!args->json) {
            printf("applied %s\n", m->name);

            if (worksible_flush() != 0) {
                goto done;
            }
        }
    }

    if (args->json) {
        rc = worksible_print_json(json, 0);

    } else {
        if (json_array_size(applied) == 0) {
            printf("up to date\n");
        }

        rc = worksible_flush();
    }

done:

    worksible_close(conn, res, rc);

    json_decref(json);
    worksible_migrations_free(list, n);

    return rc;
}


/*
 * Reads the migrations of dir: the files whose names match
 * ^[0-9]{4}_[a-z0-9_]+\.sql$ (others are ignored), sorted by name, each
 * with its content and SHA-256 checksum. Returns 0, or -1 after printing
 * the problem (unreadable directory or file, a NUL byte in a file).
 */

static int
worksible_migrations_load(const char *dir, worksible_migration_t **list,
    size_t *n)
{
    DIR                    *d;
    size_t                  cap;
    struct dirent          *de;
    worksible_migration_t  *l, *nl;

    d = opendir(dir);
    if (d == NULL) {
        worksible_error("migrations directory %s: %s", worksible_quote(dir),
                        strerror(errno));
        return -1;
    }

    l = NULL;
    *n = 0;
    cap = 0;

    for ( ;; ) {
        errno = 0;
        de = readdir(d);

        if (de == NULL) {
            if (errno != 0) {
                worksible_error("migrations directory %s: %s",
                                worksible_quote(dir), strerror(errno));
                goto failed;
            }

            break;
        }

        if (!worksible_migration_name(de->d_name)) {
            continue;
        }

        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            nl = realloc(l, cap * sizeof(worksible_migration_t));

            if (nl == NULL) {
                worksible_error("out of memory");
                goto failed;
            }

            l = nl;
        }

        memset(&l[*n], 0, sizeof(worksible_migration_t));

        l[*n].name = strdup(de->d_name);
        if (l[*n].name == NULL) {
            worksible_error("out of memory");
            goto failed;
        }

        (*n)++;
    }

    closedir(d);
    d = NULL;

    if (*n > 0) {
        qsort(l, *n, sizeof(worksible_migration_t), worksible_migration_cmp);
    }

    for (cap = 0; cap < *n; cap++) {
        if (worksible_migration_read(dir, &l[cap]) != 0) {
            goto failed;
        }
    }

    *list = l;

    return 0;

failed:

    if (d != NULL) {
        closedir(d);
    }

    worksible_migrations_free(l, *n);
    *n = 0;

    return -1;
}


/*
 * 1 when name matches ^[0-9]{4}_[a-z0-9_]+\.sql$, else 0.
 */

static int
worksible_migration_name(const char *name)
{
    size_t  i, len;

    len = strlen(name);

    if (len < 10 || strcmp(name + len - 4, ".sql") != 0 || name[4] != '_') {
        return 0;
    }

    for (i = 0; i < 4; i++) {
        if (name[i] < '0' || name[i] > '9') {
            return 0;
        }
    }

    for (i = 5; i < len - 4; i++) {
        if (!((name[i] >= 'a' && name[i] <= 'z')
              || (name[i] >= '0' && name[i] <= '9') || name[i] == '_'))
        {
            return 0;
        }
    }

    return 1;
}


/*
 * Reads dir/m->name into m->sql (NUL-terminated) and sets m->checksum to
 * the lower-case hex SHA-256 (FIPS 180-4, libsodium) of its bytes. Returns
 * 0, or -1 after printing the problem.
 */

static int
worksible_migration_read(const char *dir, worksible_migration_t *m)
{
    int            rc;
    char          *path;
    FILE          *f;
    size_t         size;
    struct stat    st;
    unsigned char  digest[crypto_hash_sha256_BYTES];

    size = strlen(dir) + strlen(m->name) + 2;
    path = malloc(size);
    if (path == NULL) {
        worksible_error("out of memory");
        return -1;
    }

    snprintf(path, size, "%s/%s", dir, m->name);

    rc = -1;

    f = fopen(path, "rb");
    if (f == NULL) {
        worksible_error("%s: %s", worksible_quote(path), strerror(errno));
        free(path);
        return -1;
    }

    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        worksible_error("%s: not a regular file", worksible_quote(path));
        goto done;
    }

    if (st.st_size > WORKSIBLE_MIGRATION_MAX) {
        worksible_error("%s: larger than %d bytes", worksible_quote(path),
                        WORKSIBLE_MIGRATION_MAX);
        goto done;
    }

    m->sql = malloc((size_t) st.st_size + 1);
    if (m->sql == NULL) {
        worksible_error("out of memory");
        goto done;
    }

    m->len = fread(m->sql, 1, (size_t) st.st_size, f);

    if (ferror(f) || m->len != (size_t) st.st_size) {
        worksible_error("%s: read failed", worksible_quote(path));
        goto done;
    }

    m->sql[m->len] = '\0';

    if (strlen(m->sql) != m->len) {
        worksible_error("%s: contains a NUL byte", worksible_quote(path));
        goto done;
    }

    crypto_hash_sha256(digest, (const unsigned char *) m->sql, m->len);
    sodium_bin2hex(m->checksum, sizeof(m->checksum), digest, sizeof(digest));

    rc = 0;

done:

    fclose(f);
    free(path);

    return rc;
}


/*
 * qsort comparator: migrations by file name (strcmp, i.e. byte order).
 */

static int
worksible_migration_cmp(const void *a, const void *b)
{
    return strcmp(((const worksible_migration_t *) a)->name,
                  ((const worksible_migration_t *) b)->name);
}


/*
 * Frees what worksible_migrations_load allocated.
 */

static void
worksible_migrations_free(worksible_migration_t *list, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        free(list[i].name);
        free(list[i].sql);
    }

    free(list);
}


/*
 * Applies m in one transaction together with its schema_migrations row.
 * The file may hold many statements (simple query protocol) but must not
 * end the transaction itself. Returns 0, or -1 after printing
 * "worksible: database: <file> line N: <message>" and rolling back.
 */

static int
worksible_migration_apply(PGconn *conn, worksible_migration_t *m)
{
    long             line;
    char             where[300];
    PGresult        *res;
    const char      *pos;
    ExecStatusType   st;
    const char      *values[2];

    if (worksible_command(conn, "BEGIN") != 0) {
        return -1;
    }

    res = PQexec(conn, m->sql);
    st = PQresultStatus(res);

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK
        && st != PGRES_EMPTY_QUERY)
    {
        pos = PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION);
        line = (pos != NULL) ? worksible_sql_line(m->sql, m->len, atol(pos))
                             : 0;

        if (line > 0) {
            snprintf(where, sizeof(where), "%s line %ld", m->name, line);

        } else {
            snprintf(where, sizeof(where), "%s", m->name);
        }

        worksible_db_error(conn, res, where);
        PQclear(res);
        worksible_rollback(conn);
        return -1;
    }

    PQclear(res);

    if (PQtransactionStatus(conn) != PQTRANS_INTRANS) {
        worksible_error("%s ended the transaction itself (COMMIT or "
                        "ROLLBACK in a migration): it may be partly "
                        "applied and was not recorded", m->name);
        worksible_rollback(conn);
        return -1;
    }

    values[0] = m->name;
    values[1] = m->checksum;

    res = worksible_exec(conn, "INSERT INTO schema_migrations"
                               " (version, checksum) VALUES ($1, $2)",
                         2, values, NULL, NULL);
    if (res == NULL) {
        worksible_rollback(conn);
        return -1;
    }

    PQclear(res);

    return worksible_command(conn, "COMMIT");
}


/*
 * Returns the 1-based line of sql[0..len) holding the 1-based character
 * (UTF-8 code point) position reported by PostgreSQL, or 0 when it is out
 * of range.
 */

static long
worksible_sql_line(const char *sql, size_t len, long position)
{
    long    line, chars;
    size_t  i;

    line = 1;
    chars = 0;

    for (i = 0; i < len; i++) {
        if (((unsigned char) sql[i] & 0xc0) == 0x80) {
            continue;
        }

        if (++chars == position) {
            return line;
        }

        if (sql[i] == '\n') {
            line++;
        }
    }

    return 0;
}


/*
 * worksible company create --name N --plan P [--currency C]: inserts the
 * company (currency: ISO 4217 alphabetic code, default EUR) and prints its
 * id (--json: {"id":"cmp_..."}). The id is made first so that the row
 * passes the company_isolation policy even without BYPASSRLS. Returns 0;
 * 1 for an unknown plan or currency or a database failure; 2 for a bad
 * name or a currency that is not three upper-case letters.
 */

static int
worksible_cmd_company_create(worksible_args_t *args)
{
    int          rc;
    char        *id;
    json_t      *json;
    PGconn      *conn;
    PGresult    *res;
    const char  *currency, *values[4];

    currency = args->currency ? args->currency : "EUR";

    if (worksible_check_name("--name", args->name) != 0) {
        return WORKSIBLE_EXIT_USAGE;
    }

    if (strlen(currency) != 3
        || currency[0] < 'A' || currency[0] > 'Z'
        || currency[1] < 'A' || currency[1] > 'Z'
        || currency[2] < 'A' || currency[2] > 'Z')
    {
        worksible_error("--currency: %s is not an ISO 4217 code (three "
                        "upper-case letters, e.g. EUR)",
                        worksible_quote(currency));
        return WORKSIBLE_EXIT_USAGE;
    }

    if (args->plan[0] == '\0') {
        worksible_error("option --plan needs a value");
        return WORKSIBLE_EXIT_USAGE;
    }

    if (args->db != NULL && worksible_check_db(args->db) != 0) {
        return WORKSIBLE_EXIT_USAGE;
    }

    conn = worksible_connect(args->db);
    if (conn == NULL) {
        return WORKSIBLE_EXIT_FAILED;
    }

    rc = WORKSIBLE_EXIT_FAILED;
    id = NULL;
    res = NULL;

    if (worksible_command(conn, "BEGIN") != 0) {
        goto done;
    }

    values[0] = args->plan;

    res = worksible_exec(conn, "SELECT 1 FROM plans WHERE name = $1",
                         1, values, NULL, NULL);
    if (res == NULL) {
        goto done;
    }

    if (PQntuples(res) == 0) {
        worksible_error("unknown plan %s", worksible_quote(args->plan));
        goto done;
    }

    PQclear(res);

    values[0] = currency;

    res = worksible_exec(conn, "SELECT (SELECT count(*) FROM currencies),"
                               " EXISTS (SELECT 1 FROM currencies"
                               "         WHERE code = $1)",
                         1, values, NULL, NULL);
    if (res == NULL) {
        goto done;
    }

    if (strcmp(PQgetvalue(res, 0, 1), "t") != 0) {
        worksible_error("unknown currency %s%s", worksible_quote(currency),
                        strcmp(PQgetvalue(res, 0, 0), "0") == 0
                        ? " (the currencies table is empty: run worksible "
                          "migrate)" : "");
        goto done;
    }

    PQclear(res);

    res = worksible_exec(conn, "SELECT worksible_id('cmp')",
                         0, NULL, NULL, NULL);
    if (res == NULL) {
        goto done;
    }

    id = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    res = NULL;

    if (id == NULL) {
        worksible_error("out of memory");
        goto done;
    }

    if (worksible_set_company(conn, id) != 0) {
        goto done;
    }

    values[0] = id;
    values[1] = args->name;
    values[2] = args->plan;
    values[3] = currency;

    res = worksible_exec(conn, "INSERT INTO companies (id, name, plan,"
                               " currency) VALUES ($1, $2, $3, $4)",
                         4, values, NULL, NULL);
    if (res == NULL) {
        goto done;
    }

    if (worksible_command(conn, "COMMIT") != 0) {
        goto done;
    }

    if (args->json) {
        json = json_pack("{s:s}", "id", id);
        rc = worksible_print_json(json, 0);
        json_decref(json);

    } else {
        printf("%s\n", id);
        rc = worksible_flush();
    }

done:

    worksible_close(conn, res, rc);
    free(id);

    return rc;
}


/*
 * worksible key create: checks every argument (scopes, RFC 3339 expiry in
 * the future, RFC 4632 CIDRs, the server secret file), then in one
 * transaction checks the company and its plan, makes a token with
 * ngx_worksible_key_generate, stores its keyed BLAKE2b hash
 * (ngx_worksible_key_hash, under the current server secret and its
 * version) and prints the object id and
 * the key once (--json: the api_key object plus "key"). A key_id already
 * taken is retried with a new token. Returns 0; 1 for an unknown company,
 * an allowlist on a plan without ip_allowlists, an unreadable secret or a
 * database failure; 2 for bad arguments.
 */

static int
worksible_cmd_key_create(worksible_args_t *args)
{
    int                            rc, tries, no_access, lengths[8];
    int                            formats[8];
    char                          *scopes, *allowlist, *plan, *id;
    json_t                        *json;
    PGconn                        *conn;
    PGresult                      *res;
    long                           usec;
    int64_t                        sec;
    const char                    *path, *why, *values[9];
    struct timespec                now;
    ngx_worksible_key_t            key;
    char                           expires[64], version[16];
    ngx_worksible_server_secret_t  secret;
    u_char                         hash[NGX_WORKSIBLE_KEY_HASH_LEN];
    u_char                token[NGX_WORKSIBLE_KEY_LEN + 1];
    char                  key_id[NGX_WORKSIBLE_KEY_ID_LEN + 1];

    scopes = NULL;
    allowlist = NULL;
    plan = NULL;
    id = NULL;
    conn = NULL;
    res = NULL;
    no_access = 0;
    rc = WORKSIBLE_EXIT_USAGE;

    sodium_memzero(token, sizeof(token));
    sodium_memzero(&secret, sizeof(secret));

    if (worksible_check_id("--company", args->company, "cmp") != 0) {
        goto done;
    }

    if (worksible_parse_scopes(args->scopes, &scopes) != 0) {
        goto done;
    }

    if (args->name != NULL && worksible_check_name("--name", args->name) != 0)
    {
        goto done;
    }

    if (args->expires_at != NULL
        && worksible_parse_rfc3339(args->expires_at, expires, sizeof(expires),
                                   &sec, &usec, &why)
           != 0)
    {
        worksible_error("--expires-at: %s is not an RFC 3339 date-time "
                        "(e.g. 2027-01-31T10:00:00Z): %s",
                        worksible_quote(args->expires_at), why);
        goto done;
    }

    if (args->expires_at != NULL) {
        clock_gettime(CLOCK_REALTIME, &now);

        if (sec < (int64_t) now.tv_sec
            || (sec == (int64_t) now.tv_sec && usec * 1000 <= now.tv_nsec))
        {
            worksible_error("--expires-at: %s is not in the future",
                            worksible_quote(args->expires_at));
            goto done;
        }
    }

    if (worksible_parse_allowlist(args, &allowlist) != 0) {
        goto done;
    }

    path = args->key_secret_file;

    if (path == NULL) {
        path = getenv("WORKSIBLE_KEY_SECRET_FILE");
    }

    if (path == NULL || path[0] == '\0') {
        worksible_error("'key create' needs --key-secret-file or "
                        "WORKSIBLE_KEY_SECRET_FILE (the server secret)");
        goto done;
    }

    if (args->db != NULL && worksible_check_db(args->db) != 0) {
        goto done;
    }

    rc = WORKSIBLE_EXIT_FAILED;

    if (worksible_read_secret(path, &secret) != 0) {
        goto done;
    }

    conn = worksible_connect(args->db);
    if (conn == NULL) {
        goto done;
    }

    if (worksible_command(conn, "BEGIN") != 0
        || worksible_set_company(conn, args->company) != 0)
    {
        goto done;
    }

    values[0] = args->company;

    res = worksible_exec(conn, "SELECT c.plan, p.api_access, p.ip_allowlists"
                               " FROM companies c"
                               " JOIN plans p ON p.name = c.plan"
                               " WHERE c.id = $1 FOR SHARE OF c",
                         1, values, NULL, NULL);
    if (res == NULL) {
        goto done;
    }

    if (PQntuples(res) == 0) {
        worksible_error("unknown company %s",
                        worksible_quote(args->company));
        goto done;
    }

    plan = strdup(PQgetvalue(res, 0, 0));
    if (plan == NULL) {
        worksible_error("out of memory");
        goto done;
    }

    if (args->nallow_ip > 0 && strcmp(PQgetvalue(res, 0, 2), "t") != 0) {
        worksible_error("IP allowlists are not part of plan %s (company %s; "
                        "see the plans' ip_allowlists)", worksible_quote(plan),
                        args->company);
        goto done;
    }

    no_access = (strcmp(PQgetvalue(res, 0, 1), "t") != 0);

    PQclear(res);
    res = NULL;

    for (tries = 0; tries < WORKSIBLE_KEY_TRIES; tries++) {
        ngx_worksible_key_generate(token);

        if (ngx_worksible_key_parse(token, NGX_WORKSIBLE_KEY_LEN, &key)
            != NGX_WORKSIBLE_KEY_OK)
        {
            worksible_error("generated key is malformed");
            goto done;
        }

        ngx_worksible_key_hash(hash, &key, secret.secret);

        memcpy(key_id, key.key_id, NGX_WORKSIBLE_KEY_ID_LEN);
        key_id[NGX_WORKSIBLE_KEY_ID_LEN] = '\0';

        memset(lengths, 0, sizeof(lengths));
        memset(formats, 0, sizeof(formats));

        values[0] = args->company;
        values[1] = key_id;
        values[2] = args->name;
        values[3] = (const char *) hash;
        lengths[3] = NGX_WORKSIBLE_KEY_HASH_LEN;
        formats[3] = 1;
        values[4] = scopes;
        values[5] = allowlist;
        values[6] = args->expires_at ? expires : NULL;
        snprintf(version, sizeof(version), "%u", secret.version);
        values[7] = version;

        res = worksible_exec(conn,
                  "INSERT INTO api_keys (company_id, key_id, name,"
                  " secret_hash, secret_version, scopes, ip_allowlist,"
                  " expires_at)"
                  " VALUES ($1, $2, $3, $4, $8::smallint, $5::text[],"
                  " $6::cidr[], $7::timestamptz)"
                  " ON CONFLICT (key_id) DO NOTHING RETURNING id",
                  8, values, lengths, formats);
        if (res == NULL) {
            goto done;
        }

        if (PQntuples(res) == 1) {
            break;
        }

        PQclear(res);
        res = NULL;
    }

    if (res == NULL) {
        worksible_error("no free key id after %d tries",
                        WORKSIBLE_KEY_TRIES);
        goto done;
    }

    id = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    res = NULL;

    if (id == NULL) {
        worksible_error("out of memory");
        goto done;
    }

    values[0] = id;

    res = worksible_exec(conn, "SELECT worksible_api_key_object(k)::text"
                               " FROM api_keys k WHERE k.id = $1",
                         1, values, NULL, NULL);
    if (res == NULL) {
        goto done;
    }

    if (PQntuples(res) != 1) {
        worksible_error("database: the new key %s is not visible", id);
        goto done;
    }

    if (worksible_command(conn, "COMMIT") != 0) {
        goto done;
    }

    /* committed: from here on, a failure leaves a key nobody has seen */

    if (args->json) {
        json = json_loads(PQgetvalue(res, 0, 0), 0, NULL);

        if (json == NULL
            || json_object_set_new(json, "key",
                                   json_stringn((const char *) token,
                                                NGX_WORKSIBLE_KEY_LEN))
               != 0)
        {
            worksible_error("bad api_key object from the database");
            json_decref(json);

        } else {
            rc = worksible_print_json(json, 1);
            json_decref(json);
        }

    } else {
        printf("%s\n%s\n", id, (const char *) token);
        rc = worksible_flush();
    }

    if (rc == WORKSIBLE_EXIT_OK) {
        worksible_error("warning: the key is shown only this once: store "
                        "it now");

        if (no_access) {
            worksible_error("warning: plan %s has no API access: the key "
                            "is refused until the company upgrades",
                            worksible_quote(plan));
        }

    } else {
        worksible_error("key %s was created but not shown: revoke it "
                        "(worksible key revoke %s)", id, id);
    }

done:

    worksible_close(conn, res, rc);

    sodium_memzero(&secret, sizeof(secret));
    sodium_memzero(token, sizeof(token));
    sodium_memzero(&key, sizeof(key));

    free(scopes);
    free(allowlist);
    free(plan);
    free(id);

    return rc;
}


/*
 * worksible key revoke KEY_ID [--company ID]: sets revoked_at = now() on
 * the key unless it is revoked already, announces it to the servers' key
 * caches (NOTIFY worksible_api_keys, at COMMIT), and prints it (the tab-separated
 * line of key list, or --json the api_key object). With --company the
 * key must belong to that company, and the company is set for row-level
 * security. Returns 0; 1 for an unknown key or a database failure; 2 for
 * a malformed id.
 */

static int
worksible_cmd_key_revoke(worksible_args_t *args)
{
    int          rc, n;
    json_t      *json;
    PGconn      *conn;
    PGresult    *res;
    const char  *key, *values[2];

    key = args->words[2];

    if (worksible_check_id("key id", key, "key") != 0) {
        return WORKSIBLE_EXIT_USAGE;
    }

    if (args->company != NULL
        && worksible_check_id("--company", args->company, "cmp") != 0)
    {
        return WORKSIBLE_EXIT_USAGE;
    }

    if (args->db != NULL && worksible_check_db(args->db) != 0) {
        return WORKSIBLE_EXIT_USAGE;
    }

    conn = worksible_connect(args->db);
    if (conn == NULL) {
        return WORKSIBLE_EXIT_FAILED;
    }

    rc = WORKSIBLE_EXIT_FAILED;
    res = NULL;

    if (worksible_command(conn, "BEGIN") != 0) {
        goto done;
    }

    if (args->company != NULL
        && worksible_set_company(conn, args->company) != 0)
    {
        goto done;
    }

    values[0] = key;
    values[1] = args->company;
    n = (args->company != NULL) ? 2 : 1;

    res = worksible_exec(conn, (n == 2)
                         ? "UPDATE api_keys SET revoked_at = now()"
                           " WHERE id = $1 AND company_id = $2"
                           " AND revoked_at IS NULL"
                           " RETURNING pg_notify('worksible_api_keys', key_id)"
                         : "UPDATE api_keys SET revoked_at = now()"
                           " WHERE id = $1 AND revoked_at IS NULL"
                           " RETURNING pg_notify('worksible_api_keys', key_id)",
                         n, values, NULL, NULL);
    if (res == NULL) {
        goto done;
    }

    PQclear(res);

    res = worksible_exec(conn, (n == 2)
                         ? "SELECT worksible_api_key_object(k)::text"
                           " FROM api_keys k"
                           " WHERE k.id = $1 AND k.company_id = $2"
                         : "SELECT worksible_api_key_object(k)::text"
                           " FROM api_keys k WHERE k.id = $1",
                         n, values, NULL, NULL);
    if (res == NULL) {
        goto done;
    }

    if (PQntuples(res) == 0) {
        if (args->company == NULL && worksible_bypasses_rls(conn) == 0) {
            worksible_error("unknown key %s (the database role is subject "
                            "to row-level security: add --company ID)",
                            worksible_quote(key));

        } else {
            worksible_error("unknown key %s", worksible_quote(key));
        }

        goto done;
    }

    if (worksible_command(conn, "COMMIT") != 0) {
        goto done;
    }

    if (args->json) {
        json = json_loads(PQgetvalue(res, 0, 0), 0, NULL);

        if (json == NULL) {
            worksible_error("bad api_key object from the database");

        } else {
            rc = worksible_print_json(json, 0);
            json_decref(json);
        }

    } else {
        rc = worksible_print_key_line(PQgetvalue(res, 0, 0), "revoked");
    }

done:

    worksible_close(conn, res, rc);

    return rc;
}


/*
 * worksible key list --company ID: prints the company's keys, newest first
 * (created_at, then id), one tab-separated line each, or --json a JSON
 * array of api_key objects; never a secret or a hash. Returns 0; 1 for an
 * unknown company or a database failure; 2 for a malformed id.
 */

static int
worksible_cmd_key_list(worksible_args_t *args)
{
    int          rc, i, n;
    PGconn      *conn;
    PGresult    *res;
    const char  *values[1];

    if (worksible_check_id("--company", args->company, "cmp") != 0) {
        return WORKSIBLE_EXIT_USAGE;
    }

    if (args->db != NULL && worksible_check_db(args->db) != 0) {
        return WORKSIBLE_EXIT_USAGE;
    }

    conn = worksible_connect(args->db);
    if (conn == NULL) {
        return WORKSIBLE_EXIT_FAILED;
    }

    rc = WORKSIBLE_EXIT_FAILED;
    res = NULL;

    if (worksible_command(conn, "BEGIN READ ONLY") != 0
        || worksible_set_company(conn, args->company) != 0)
    {
        goto done;
    }

    values[0] = args->company;

    res = worksible_exec(conn, "SELECT 1 FROM companies WHERE id = $1",
                         1, values, NULL, NULL);
    if (res == NULL) {
        goto done;
    }

    if (PQntuples(res) == 0) {
        worksible_error("unknown company %s",
                        worksible_quote(args->company));
        goto done;
    }

    PQclear(res);

    res = worksible_exec(conn,
              "SELECT worksible_api_key_object(k)::text,"
              " CASE WHEN k.revoked_at IS NOT NULL THEN 'revoked'"
              " WHEN k.expires_at <= now() THEN 'expired'"
              " ELSE 'active' END"
              " FROM api_keys k WHERE k.company_id = $1"
              " ORDER BY k.created_at DESC, k.id DESC",
              1, values, NULL, NULL);
    if (res == NULL) {
        goto done;
    }

    if (worksible_command(conn, "COMMIT") != 0) {
        goto done;
    }

    n = PQntuples(res);

    if (!args->json) {
        for (i = 0; i < n; i++) {
            if (worksible_print_key_line(PQgetvalue(res, i, 0),
                                         PQgetvalue(res, i, 1))
                != 0)
            {
                goto done;
            }
        }

        rc = WORKSIBLE_EXIT_OK;
        goto done;
    }

    rc = worksible_print_json_rows(res, "api_key");

done:

    worksible_close(conn, res, rc);

    return rc;
}


/*
 * worksible plan set NAME [--api-access on|off] [--limit N]
 * [--window SECONDS]: creates or updates one row of plans in one
 * transaction and prints it (NAME api_access=on limit=N window=S, or
 * --json the plan object). With both --limit and --window it is an upsert
 * (a new plan gets api_access off unless --api-access is given; an
 * existing one keeps it), so a concurrent create cannot fail it; with
 * fewer it updates an existing plan only. An update keeps what is not
 * given and sets updated_at = now(). Returns 0; 1 for a database failure
 * (plans has no row-level security, but only the owner role may write
 * it); 2 for bad arguments, no option at all, or a plan that does not
 * exist and lacks --limit or --window.
 */

static int
worksible_cmd_plan_set(worksible_args_t *args)
{
    int          rc, create;
    PGconn      *conn;
    PGresult    *res;
    const char  *name, *values[4];

    name = args->words[2];

    if (worksible_check_plan_name(name) != 0) {
        return WORKSIBLE_EXIT_USAGE;
    }

    if (!(args->seen & (WORKSIBLE_OPT_API_ACCESS | WORKSIBLE_OPT_LIMIT
                        | WORKSIBLE_OPT_WINDOW)))
    {
        worksible_error("'plan set' needs at least one of --api-access, "
                        "--limit, --window");
        return WORKSIBLE_EXIT_USAGE;
    }

    values[0] = name;
    values[1] = NULL;

    if (args->api_access != NULL) {
        if (strcmp(args->api_access, "on") == 0) {
            values[1] = "t";

        } else if (strcmp(args->api_access, "off") == 0) {
            values[1] = "f";

        } else {
            worksible_error("--api-access: %s is not on or off",
                            worksible_quote(args->api_access));
            return WORKSIBLE_EXIT_USAGE;
        }
    }

    if ((args->limit != NULL
         && worksible_parse_count("--limit", args->limit,
                                  WORKSIBLE_RATE_LIMIT_MAX, "requests")
            != 0)
        || (args->window != NULL
            && worksible_parse_count("--window", args->window,
                                     WORKSIBLE_RATE_WINDOW_MAX, "seconds")
               != 0))
    {
        return WORKSIBLE_EXIT_USAGE;
    }

    values[2] = args->limit;
    values[3] = args->window;
    create = (args->limit != NULL && args->window != NULL);

    if (args->db != NULL && worksible_check_db(args->db) != 0) {
        return WORKSIBLE_EXIT_USAGE;
    }

    conn = worksible_connect(args->db);
    if (conn == NULL) {
        return WORKSIBLE_EXIT_FAILED;
    }

    rc = WORKSIBLE_EXIT_FAILED;
    res = NULL;

    if (worksible_command(conn, "BEGIN") != 0) {
        goto done;
    }

    res = worksible_exec(conn, create
              ? "INSERT INTO plans AS p"
                " (name, api_access, rate_limit, rate_window)"
                " VALUES ($1, coalesce($2::boolean, false), $3::integer,"
                " $4::integer)"
                " ON CONFLICT (name) DO UPDATE"
                " SET api_access = coalesce($2::boolean, p.api_access),"
                " rate_limit = excluded.rate_limit,"
                " rate_window = excluded.rate_window, updated_at = now()"
                " RETURNING " WORKSIBLE_PLAN_OBJECT
              : "UPDATE plans AS p"
                " SET api_access = coalesce($2::boolean, p.api_access),"
                " rate_limit = coalesce($3::integer, p.rate_limit),"
                " rate_window = coalesce($4::integer, p.rate_window),"
                " updated_at = now()"
                " WHERE p.name = $1"
                " RETURNING " WORKSIBLE_PLAN_OBJECT,
              4, values, NULL, NULL);
    if (res == NULL) {
        goto done;
    }

    if (PQntuples(res) != 1) {
        worksible_error("plan %s does not exist: creating it needs %s",
                        worksible_quote(name),
                        (args->limit == NULL && args->window == NULL)
                        ? "--limit and --window"
                        : (args->limit == NULL) ? "--limit" : "--window");
        rc = WORKSIBLE_EXIT_USAGE;
        goto done;
    }

    if (worksible_command(conn, "COMMIT") != 0) {
        goto done;
    }

    rc = worksible_print_plan(PQgetvalue(res, 0, 0), args->json);

done:

    worksible_close(conn, res, rc);

    return rc;
}


/*
 * worksible plan list: prints every plan ordered by rate_limit, then name
 * (byte order), one line each (NAME api_access=on|off limit=N window=S),
 * or --json a JSON array of plan objects. Returns 0, or 1 for a database
 * failure.
 */

static int
worksible_cmd_plan_list(worksible_args_t *args)
{
    int        rc, i, n;
    PGconn    *conn;
    PGresult  *res;

    if (args->db != NULL && worksible_check_db(args->db) != 0) {
        return WORKSIBLE_EXIT_USAGE;
    }

    conn = worksible_connect(args->db);
    if (conn == NULL) {
        return WORKSIBLE_EXIT_FAILED;
    }

    rc = WORKSIBLE_EXIT_FAILED;

    res = worksible_exec(conn, "SELECT " WORKSIBLE_PLAN_OBJECT
                               " FROM plans p"
                               " ORDER BY p.rate_limit, p.name COLLATE \"C\"",
                         0, NULL, NULL, NULL);
    if (res == NULL) {
        goto done;
    }

    n = PQntuples(res);

    if (!args->json) {
        for (i = 0; i < n; i++) {
            if (worksible_print_plan(PQgetvalue(res, i, 0), 0) != 0) {
                goto done;
            }
        }

        rc = WORKSIBLE_EXIT_OK;
        goto done;
    }

    rc = worksible_print_json_rows(res, "plan");

done:

    worksible_close(conn, res, rc);

    return rc;
}


/*
 * worksible logs prune --older-than N(d|h): drops the request log's day
 * partitions whose whole UTC day ended at least N days (hours) ago, by
 * worksible_request_logs_prune (owner only: worksible_api may not), in one
 * transaction. Prints each dropped partition on a line, "nothing to drop"
 * when none, or --json {"dropped":[names]}. Returns 0; 1 for a database
 * failure (e.g. a role that is not the owner); 2 for a bad --older-than.
 */

static int
worksible_cmd_logs_prune(worksible_args_t *args)
{
    int          rc, i, n;
    char         interval[32];
    json_t      *json, *names;
    PGconn      *conn;
    PGresult    *res;
    const char  *values[1];

    if (worksible_parse_age("--older-than", args->older_than, interval,
                            sizeof(interval))
        != 0)
    {
        return WORKSIBLE_EXIT_USAGE;
    }

    if (args->db != NULL && worksible_check_db(args->db) != 0) {
        return WORKSIBLE_EXIT_USAGE;
    }

    conn = worksible_connect(args->db);
    if (conn == NULL) {
        return WORKSIBLE_EXIT_FAILED;
    }

    rc = WORKSIBLE_EXIT_FAILED;
    res = NULL;
    json = NULL;

    if (worksible_command(conn, "BEGIN") != 0) {
        goto done;
    }

    values[0] = interval;

    res = worksible_exec(conn,
                         "SELECT worksible_request_logs_prune($1::interval)",
                         1, values, NULL, NULL);
    if (res == NULL) {
        goto done;
    }

    if (worksible_command(conn, "COMMIT") != 0) {
        goto done;
    }

    n = PQntuples(res);

    if (!args->json) {
        for (i = 0; i < n; i++) {
            printf("%s\n", PQgetvalue(res, i, 0));
        }

        if (n == 0) {
            printf("nothing to drop\n");
        }

        rc = worksible_flush();
        goto done;
    }

    json = json_object();
    names = json_array();

    if (json == NULL || names == NULL
        || json_object_set_new(json, "dropped", names) != 0)
    {
        worksible_error("out of memory");
        goto done;
    }

    for (i = 0; i < n; i++) {
        if (json_array_append_new(names, json_string(PQgetvalue(res, i, 0)))
            != 0)
        {
            worksible_error("out of memory");
            goto done;
        }
    }

    rc = worksible_print_json(json, 0);

done:

    worksible_close(conn, res, rc);
    json_decref(json);

    return rc;
}


/*
 * Connects with PQconnectdbParams and expand_dbname, so that db may be a
 * conninfo string, a URI or a database name (NULL: the libpq environment,
 * PGHOST, PGPORT, ...). Adds connect_timeout=5 (unless the conninfo or
 * PGCONNECT_TIMEOUT gives one) and application_name=worksible-cli (unless
 * the conninfo gives one); the client encoding is UTF-8. Returns the
 * connection, or NULL after printing "worksible: database: <first line
 * of libpq's message>".
 */

static PGconn *
worksible_connect(const char *db)
{
    int          n;
    PGconn      *conn;
    const char  *keywords[6], *values[6];

    n = 0;

    if (getenv("PGCONNECT_TIMEOUT") == NULL) {
        keywords[n] = "connect_timeout";
        values[n++] = "5";
    }

    keywords[n] = "application_name";
    values[n++] = "worksible-cli";

    if (db != NULL) {
        keywords[n] = "dbname";
        values[n++] = db;
    }

    keywords[n] = "client_encoding";
    values[n++] = "UTF8";

    keywords[n] = NULL;
    values[n] = NULL;

    conn = PQconnectdbParams(keywords, values, 1);

    if (conn == NULL) {
        worksible_error("database: out of memory");
        return NULL;
    }

    if (PQstatus(conn) != CONNECTION_OK) {
        worksible_db_error(conn, NULL, NULL);
        PQfinish(conn);
        return NULL;
    }

    PQsetNoticeReceiver(conn, worksible_notice, NULL);

    return conn;
}


/*
 * Checks --db before connecting: a value that looks like a conninfo
 * ("k=v ...") or a URI (postgres[ql]://) must parse (PQconninfoParse);
 * anything else is a database name. Returns 0, or -1 after printing our
 * own message (libpq's text is not shown for argument problems).
 */

static int
worksible_check_db(const char *db)
{
    char               *err;
    PQconninfoOption   *opts;

    if (db[0] == '\0') {
        worksible_error("option --db needs a value");
        return -1;
    }

    if (strchr(db, '=') == NULL
        && strncmp(db, "postgresql://", 13) != 0
        && strncmp(db, "postgres://", 11) != 0)
    {
        return 0;
    }

    err = NULL;
    opts = PQconninfoParse(db, &err);

    if (err != NULL) {
        PQfreemem(err);
    }

    if (opts == NULL) {
        worksible_error("--db: not a valid libpq connection string or URI "
                        "(e.g. \"host=db.internal dbname=worksible\")");
        return -1;
    }

    PQconninfoFree(opts);

    return 0;
}


/*
 * libpq notice receiver: shows server WARNINGs as one line on stderr and
 * drops NOTICEs (CREATE ... IF NOT EXISTS chatter).
 */

static void
worksible_notice(void *arg, const PGresult *res)
{
    const char  *severity, *msg;

    (void) arg;

    severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

    if (severity != NULL && msg != NULL && strcmp(severity, "WARNING") == 0)
    {
        worksible_error("database: warning: %s", msg);
    }
}


/*
 * Runs sql with text parameters (lengths and formats may be NULL; a NULL
 * value is SQL NULL). Returns the result when the command or query
 * succeeded, else NULL after printing the database error.
 */

static PGresult *
worksible_exec(PGconn *conn, const char *sql, int nparams,
    const char *const *values, const int *lengths, const int *formats)
{
    PGresult        *res;
    ExecStatusType   st;

    res = PQexecParams(conn, sql, nparams, NULL, values, lengths, formats, 0);
    st = PQresultStatus(res);

    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        return res;
    }

    worksible_db_error(conn, res, NULL);
    PQclear(res);

    return NULL;
}


/*
 * Prints "worksible: database: [where: ]<message>": the server's primary
 * message of res, else the first line of libpq's connection message.
 */

static void
worksible_db_error(PGconn *conn, const PGresult *res, const char *where)
{
    int          len;
    const char  *msg;

    msg = (res != NULL) ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
                        : NULL;

    if (msg == NULL || msg[0] == '\0') {
        msg = (res != NULL) ? PQresultErrorMessage(res) : "";

        if (msg[0] == '\0') {
            msg = PQerrorMessage(conn);
        }
    }

    if (msg[0] == '\0') {
        msg = "unknown error";
    }

    len = (int) strcspn(msg, "\n");

    worksible_error("database: %s%s%.*s", where ? where : "",
                    where ? ": " : "", len, msg);
}


/*
 * Runs one parameterless command. Returns 0, or -1 after printing the
 * database error.
 */

static int
worksible_command(PGconn *conn, const char *sql)
{
    PGresult  *res;

    res = worksible_exec(conn, sql, 0, NULL, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    PQclear(res);

    return 0;
}


/*
 * Rolls back an open transaction, quietly: used on the way out of a
 * failure that is already reported.
 */

static void
worksible_rollback(PGconn *conn)
{
    if (PQtransactionStatus(conn) == PQTRANS_INTRANS
        || PQtransactionStatus(conn) == PQTRANS_INERROR)
    {
        PQclear(PQexec(conn, "ROLLBACK"));
    }
}


/*
 * The end of a command: frees res, rolls back an open transaction when the
 * command failed (rc != 0), and closes conn (either may be NULL).
 */

static void
worksible_close(PGconn *conn, PGresult *res, int rc)
{
    PQclear(res);

    if (conn == NULL) {
        return;
    }

    if (rc != WORKSIBLE_EXIT_OK) {
        worksible_rollback(conn);
    }

    PQfinish(conn);
}


/*
 * Sets worksible.company_id for the current transaction, so that the
 * company_isolation policies (FORCE ROW LEVEL SECURITY) pass even for a
 * role without BYPASSRLS. Returns 0, or -1 after printing the error.
 */

static int
worksible_set_company(PGconn *conn, const char *company)
{
    PGresult    *res;
    const char  *values[1];

    values[0] = company;

    res = worksible_exec(conn,
                         "SELECT set_config('worksible.company_id', $1, true)",
                         1, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    PQclear(res);

    return 0;
}


/*
 * Returns 1 when the current role is a superuser or has BYPASSRLS, 0 when
 * not, -1 when the question fails (not reported: only used for a hint).
 */

static int
worksible_bypasses_rls(PGconn *conn)
{
    int        rc;
    PGresult  *res;

    res = PQexec(conn, "SELECT rolsuper OR rolbypassrls FROM pg_roles"
                       " WHERE rolname = current_user");

    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        PQclear(res);
        return -1;
    }

    rc = (strcmp(PQgetvalue(res, 0, 0), "t") == 0);
    PQclear(res);

    return rc;
}


/*
 * Checks a company or key name: valid UTF-8 (RFC 3629), 1 to 200
 * characters, no control characters. Returns 0, or -1 after printing the
 * problem.
 */

static int
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

static int
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
 * Checks a plan name against ^[a-z][a-z0-9_]{0,31}$, the CHECK of
 * plans.name. Returns 0, or -1 after printing the problem naming the
 * value.
 */

static int
worksible_check_plan_name(const char *s)
{
    size_t  i;

    if (s[0] < 'a' || s[0] > 'z') {
        goto bad;
    }

    for (i = 1; s[i] != '\0'; i++) {
        if (i == WORKSIBLE_PLAN_NAME_MAX
            || !((s[i] >= 'a' && s[i] <= 'z')
                 || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
        {
            goto bad;
        }
    }

    return 0;

bad:

    worksible_error("plan name %s is not valid (a lower-case letter, then "
                    "at most %d lower-case letters, digits or _)",
                    worksible_quote(s), WORKSIBLE_PLAN_NAME_MAX - 1);

    return -1;
}


/*
 * Checks a count option: decimal digits only (no sign, space or leading
 * zero), from 1 to max. unit names what is counted, for the message.
 * Returns 0, or -1 after printing the problem naming the value.
 */

static int
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
 * Parses an age "Nd" (1 to WORKSIBLE_PRUNE_DAYS_MAX days) or "Nh" (1 to
 * WORKSIBLE_PRUNE_HOURS_MAX hours), N decimal digits without sign, space
 * or leading zero. Writes a PostgreSQL interval ("30 days", "12 hours")
 * to interval. Returns 0, or -1 after printing the problem naming the
 * value.
 */

static int
worksible_parse_age(const char *opt, const char *s, char *interval,
    size_t size)
{
    long    v, max;
    size_t  i, len;

    len = strlen(s);

    if (len < 2 || (s[len - 1] != 'd' && s[len - 1] != 'h')
        || s[0] < '1' || s[0] > '9')
    {
        goto bad;
    }

    max = (s[len - 1] == 'd') ? WORKSIBLE_PRUNE_DAYS_MAX
                              : WORKSIBLE_PRUNE_HOURS_MAX;
    v = 0;

    for (i = 0; i < len - 1; i++) {
        if (s[i] < '0' || s[i] > '9') {
            goto bad;
        }

        v = v * 10 + (s[i] - '0');

        if (v > max) {
            goto bad;
        }
    }

    snprintf(interval, size, "%ld %s", v,
             (s[len - 1] == 'd') ? "days" : "hours");

    return 0;

bad:

    worksible_error("%s: %s is not Nd (1 to %ld days) or Nh (1 to %ld hours)",
                    opt, worksible_quote(s), WORKSIBLE_PRUNE_DAYS_MAX,
                    WORKSIBLE_PRUNE_HOURS_MAX);

    return -1;
}


/*
 * Parses --scopes: space-separated scopes, each ^[a-z][a-z_]*:(read|write)$
 * (API.md, Scopes), at least one; duplicates are dropped, the first
 * order kept. *literal gets a PostgreSQL text[] literal ({"a:read",...}),
 * to free. Returns 0, or -1 after printing the bad value.
 */

static int
worksible_parse_scopes(const char *s, char **literal)
{
    int          dup;
    char        *out, *p;
    size_t       len, n, i, k;
    const char  *start, *q;

    out = malloc(2 * strlen(s) + 3);
    if (out == NULL) {
        worksible_error("out of memory");
        return -1;
    }

    p = out;
    *p++ = '{';
    n = 0;

    for (q = s; *q != '\0'; q += len) {
        if (*q == ' ') {
            len = 1;
            continue;
        }

        start = q;
        len = strcspn(q, " ");

        if (!worksible_scope_valid(start, len)) {
            worksible_error("--scopes: \"%.*s\" is not a scope "
                            "(resource:read or resource:write, e.g. "
                            "company:read)", (int) (len > 80 ? 80 : len),
                            start);
            free(out);
            return -1;
        }

        /* a duplicate is already in out as "<scope>" */

        dup = 0;

        for (i = 1; i + len + 2 <= (size_t) (p - out); i++) {
            if (out[i] == '"' && out[i + len + 1] == '"'
                && memcmp(out + i + 1, start, len) == 0)
            {
                dup = 1;
                break;
            }
        }

        if (dup) {
            continue;
        }

        if (n++ > 0) {
            *p++ = ',';
        }

        *p++ = '"';

        for (k = 0; k < len; k++) {
            *p++ = start[k];
        }

        *p++ = '"';
    }

    *p++ = '}';
    *p = '\0';

    if (n == 0) {
        worksible_error("--scopes: at least one scope is needed "
                        "(e.g. \"company:read\")");
        free(out);
        return -1;
    }

    *literal = out;

    return 0;
}


/*
 * 1 when s[0..len) matches ^[a-z][a-z_]*:(read|write)$, else 0.
 */

static int
worksible_scope_valid(const char *s, size_t len)
{
    size_t  i;

    if (len == 0 || s[0] < 'a' || s[0] > 'z') {
        return 0;
    }

    for (i = 1; i < len && s[i] != ':'; i++) {
        if (!((s[i] >= 'a' && s[i] <= 'z') || s[i] == '_')) {
            return 0;
        }
    }

    if (i == len) {
        return 0;
    }

    i++;

    return (len - i == 4 && memcmp(s + i, "read", 4) == 0)
           || (len - i == 5 && memcmp(s + i, "write", 5) == 0);
}


/*
 * Parses an RFC 3339 date-time (section 5.6): YYYY-MM-DDTHH:MM:SS, an
 * optional fraction, then Z or +HH:MM/-HH:MM; "T" and "Z" may be lower
 * case (its note), nothing else is accepted (no space for T, no missing
 * seconds or zone). Second 60 only as a leap second, 23:59:60 UTC on the
 * last day of a month. Outputs the instant as *sec (Unix) and *usec
 * (fraction cut to microseconds) and canon, "YYYY-MM-DD HH:MM:SS.ffffff+00"
 * in UTC for PostgreSQL. Returns 0, or -1 with *why set.
 */

static int
worksible_parse_rfc3339(const char *s, char *canon, size_t size,
    int64_t *sec, long *usec, const char **why)
{
    int          y, mo, d, h, mi, se, oh, om, sign, digits, m2, d2;
    long         frac;
    int64_t      t, y2, tod;
    const char  *p;

    p = s;
    *why = "expected YYYY-MM-DDTHH:MM:SS followed by Z or +HH:MM";

    if (worksible_digits(&p, 4, &y) != 0 || *p++ != '-'
        || worksible_digits(&p, 2, &mo) != 0 || *p++ != '-'
        || worksible_digits(&p, 2, &d) != 0)
    {
        return -1;
    }

    if (*p != 'T' && *p != 't') {
        return -1;
    }

    p++;

    if (worksible_digits(&p, 2, &h) != 0 || *p++ != ':'
        || worksible_digits(&p, 2, &mi) != 0 || *p++ != ':'
        || worksible_digits(&p, 2, &se) != 0)
    {
        return -1;
    }

    frac = 0;

    if (*p == '.') {
        p++;

        for (digits = 0; *p >= '0' && *p <= '9'; p++, digits++) {
            if (digits < 6) {
                frac = frac * 10 + (*p - '0');
            }
        }

        if (digits == 0) {
            *why = "a fraction of a second needs at least one digit";
            return -1;
        }

        for ( /* void */ ; digits < 6; digits++) {
            frac *= 10;
        }
    }

    oh = 0;
    om = 0;
    sign = 1;

    if (*p == 'Z' || *p == 'z') {
        p++;

    } else if (*p == '+' || *p == '-') {
        sign = (*p++ == '-') ? -1 : 1;

        if (worksible_digits(&p, 2, &oh) != 0 || *p++ != ':'
            || worksible_digits(&p, 2, &om) != 0)
        {
            *why = "the offset must be +HH:MM or -HH:MM";
            return -1;
        }

        if (oh > 23 || om > 59) {
            *why = "offset out of range";
            return -1;
        }

    } else {
        *why = "missing time zone (Z or +HH:MM)";
        return -1;
    }

    if (*p != '\0') {
        return -1;
    }

    if (mo < 1 || mo > 12 || d < 1 || d > worksible_days_in_month(y, mo)) {
        *why = "no such date";
        return -1;
    }

    if (h > 23 || mi > 59 || se > 60) {
        *why = "no such time";
        return -1;
    }

    t = worksible_days_from_civil(y, mo, d) * 86400
        + h * 3600 + mi * 60 + se - sign * (oh * 3600 + om * 60);

    if (se == 60) {
        /* the second before must be 23:59:59 UTC on a month's last day */
        tod = (t - 1) % 86400;
        if (tod < 0) {
            tod += 86400;
        }

        worksible_civil_from_days((t - 1 - tod) / 86400, &y2, &m2, &d2);

        if (tod != 86399 || d2 != worksible_days_in_month((int) y2, m2)) {
            *why = "second 60 is only a leap second at 23:59:60 UTC at the "
                   "end of a month";
            return -1;
        }
    }

    tod = t % 86400;
    if (tod < 0) {
        tod += 86400;
    }

    worksible_civil_from_days((t - tod) / 86400, &y2, &m2, &d2);

    snprintf(canon, size, "%04lld-%02d-%02d %02d:%02d:%02d.%06ld+00",
             (long long) y2, m2, d2, (int) (tod / 3600),
             (int) (tod / 60 % 60), (int) (tod % 60), frac);

    *sec = t;
    *usec = frac;

    return 0;
}


/*
 * Reads exactly n decimal digits at *p into *out and advances *p.
 * Returns 0, or -1 (nothing consumed) when there are fewer.
 */

static int
worksible_digits(const char **p, int n, int *out)
{
    int          i, v;
    const char  *s;

    s = *p;
    v = 0;

    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }

        v = v * 10 + (s[i] - '0');
    }

    *p = s + n;
    *out = v;

    return 0;
}


/*
 * Days in month m (1..12) of proleptic Gregorian year y.
 */

static int
worksible_days_in_month(int y, int m)
{
    static const int  days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31,
                                 30, 31 };

    if (m == 2 && (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))) {
        return 29;
    }

    return days[m - 1];
}


/*
 * Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil).
 */

static int64_t
worksible_days_from_civil(int64_t y, int m, int d)
{
    int64_t   era;
    unsigned  yoe, doy, doe;

    y -= (m <= 2);
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned) (y - era * 400);
    doy = (153 * (unsigned) (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    return era * 146097 + (int64_t) doe - 719468;
}


/*
 * The proleptic Gregorian date of day z since 1970-01-01 (H. Hinnant's
 * civil_from_days).
 */

static void
worksible_civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    int64_t   era;
    unsigned  doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = (unsigned) (z - era * 146097);
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;

    *d = (int) (doy - (153 * mp + 2) / 5 + 1);
    *m = (int) (mp < 10 ? mp + 3 : mp - 9);
    *y = (int64_t) yoe + era * 400 + (*m <= 2);
}


/*
 * Parses every --allow-ip into *literal, a PostgreSQL cidr[] literal of
 * the canonical blocks (duplicates dropped; "{}" when none), to free.
 * Returns 0, or -1 after printing the bad value and why.
 */

static int
worksible_parse_allowlist(worksible_args_t *args, char **literal)
{
    int                    i, k, dup;
    char                  *out, *p;
    char                   why[128];
    char                 (*texts)[NGX_WORKSIBLE_CIDR_TEXT_LEN];
    ngx_worksible_cidr_t   cidr;

    texts = calloc(args->nallow_ip + 1, sizeof(texts[0]));
    out = malloc((size_t) args->nallow_ip * sizeof(texts[0]) + 3);

    if (texts == NULL || out == NULL) {
        worksible_error("out of memory");
        free(texts);
        free(out);
        return -1;
    }

    p = out;
    *p++ = '{';

    for (i = 0; i < args->nallow_ip; i++) {
        if (ngx_worksible_cidr_parse(args->allow_ip[i],
                                     strlen(args->allow_ip[i]), &cidr, why,
                                     sizeof(why))
            != 0)
        {
            worksible_error("--allow-ip: %s is not a CIDR block: %s",
                            worksible_quote(args->allow_ip[i]), why);
            free(texts);
            free(out);
            return -1;
        }

        ngx_worksible_cidr_text(&cidr, texts[i]);

        dup = 0;

        for (k = 0; k < i; k++) {
            if (strcmp(texts[k], texts[i]) == 0) {
                dup = 1;
                break;
            }
        }

        if (dup) {
            continue;
        }

        if (p > out + 1) {
            *p++ = ',';
        }

        p = stpcpy(p, texts[i]);
    }

    *p++ = '}';
    *p = '\0';

    free(texts);
    *literal = out;

    return 0;
}


/*
 * Reads the server secret file (64 hex characters, optional trailing
 * whitespace) into secret with ngx_worksible_server_secret_decode.
 * Returns 0, or -1 after printing the problem (never the content).
 */

static int
worksible_read_secret(const char *path,
    ngx_worksible_server_secret_t *current)
{
    int                            rc;
    FILE                          *f;
    size_t                         n;
    u_char                         buf[WORKSIBLE_SECRET_FILE_MAX + 1];
    ngx_worksible_server_secret_t  secrets[NGX_WORKSIBLE_SERVER_SECRETS_MAX];

    f = fopen(path, "rb");
    if (f == NULL) {
        worksible_error("key secret file %s: %s", worksible_quote(path),
                        strerror(errno));
        return -1;
    }

    n = fread(buf, 1, sizeof(buf), f);
    rc = ferror(f);
    fclose(f);

    if (rc != 0) {
        worksible_error("key secret file %s: read failed",
                        worksible_quote(path));
        sodium_memzero(buf, sizeof(buf));
        return -1;
    }

    rc = 0;

    if (n > WORKSIBLE_SECRET_FILE_MAX
        || ngx_worksible_server_secrets_parse(buf, n, secrets,
                                              NGX_WORKSIBLE_SERVER_SECRETS_MAX)
           < 1)
    {
        worksible_error("key secret file %s: not 64 hex characters, nor "
                        "lines of VERSION:64 hex characters",
                        worksible_quote(path));
        rc = -1;

    } else {
        *current = secrets[0];
    }

    sodium_memzero(buf, sizeof(buf));
    sodium_memzero(secrets, sizeof(secrets));

    return rc;
}


/*
 * Prints json compactly on one line of stdout; with wipe set the text is
 * zeroed before it is freed (it holds a key). Returns 0 or 1.
 */

static int
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

static int
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
 * Prints one key as a tab-separated line from its api_key object text:
 * id, prefix, state, created_at, expires_at ("-": never), scopes (comma
 * separated), name ("-": none). Returns 0 or 1.
 */

static int
worksible_print_key_line(const char *object_text, const char *state)
{
    size_t       i;
    json_t      *obj, *scopes, *v;
    const char  *expires, *name;

    obj = json_loads(object_text, 0, NULL);
    if (obj == NULL) {
        worksible_error("bad api_key object from the database");
        return WORKSIBLE_EXIT_FAILED;
    }

    expires = json_string_value(json_object_get(obj, "expires_at"));
    name = json_string_value(json_object_get(obj, "name"));

    printf("%s\t%s\t%s\t%s\t%s\t",
           json_string_value(json_object_get(obj, "id")),
           json_string_value(json_object_get(obj, "prefix")),
           state,
           json_string_value(json_object_get(obj, "created_at")),
           expires ? expires : "-");

    scopes = json_object_get(obj, "scopes");

    json_array_foreach(scopes, i, v) {
        printf("%s%s", i ? "," : "", json_string_value(v));
    }

    printf("\t%s\n", name ? name : "-");

    json_decref(obj);

    return worksible_flush();
}


/*
 * Prints one plan from its plan object text: with json set the object on
 * one line, else "NAME api_access=on|off limit=N window=SECONDS". Returns
 * 0 or 1.
 */

static int
worksible_print_plan(const char *object_text, int json)
{
    int          rc;
    json_t      *obj, *access, *limit, *window;
    const char  *name;

    obj = json_loads(object_text, 0, NULL);

    name = json_string_value(json_object_get(obj, "name"));
    access = json_object_get(obj, "api_access");
    limit = json_object_get(obj, "rate_limit");
    window = json_object_get(obj, "rate_window");

    if (name == NULL || !json_is_boolean(access) || !json_is_integer(limit)
        || !json_is_integer(window))
    {
        worksible_error("bad plan object from the database");
        json_decref(obj);
        return WORKSIBLE_EXIT_FAILED;
    }

    if (json) {
        rc = worksible_print_json(obj, 0);

    } else {
        printf("%s api_access=%s limit=%" JSON_INTEGER_FORMAT
               " window=%" JSON_INTEGER_FORMAT "\n",
               name, json_is_true(access) ? "on" : "off",
               json_integer_value(limit), json_integer_value(window));
        rc = worksible_flush();
    }

    json_decref(obj);

    return rc;
}


/*
 * Flushes stdout. Returns 0, or 1 after printing the write error.
 */

static int
worksible_flush(void)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        worksible_error("stdout: %s", strerror(errno));
        return WORKSIBLE_EXIT_FAILED;
    }

    return WORKSIBLE_EXIT_OK;
}
