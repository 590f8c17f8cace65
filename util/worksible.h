/*
 * worksible: what the CLI's files share (see worksible.c): the options and
 * commands, the exit status, and the helpers of more than one command.
 */

#ifndef _WORKSIBLE_H_INCLUDED_
#define _WORKSIBLE_H_INCLUDED_

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
#include "ngx_worksible_time.h"
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
#define WORKSIBLE_OPT_IP_ALLOWLISTS    0x20000

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
    " 'api_access', p.api_access, 'ip_allowlists', p.ip_allowlists,"          \
    " 'rate_limit', p.rate_limit,"                                            \
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
    const char    *ip_allowlists;
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


/* worksible.c: messages, output and the checks of more than one command */
void worksible_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
const char *worksible_quote(const char *s);
int worksible_check_name(const char *opt, const char *s);
int worksible_check_id(const char *opt, const char *s,
    const char *prefix);
int worksible_parse_count(const char *opt, const char *s, long max,
    const char *unit);
int worksible_print_json(json_t *json, int wipe);
int worksible_print_json_rows(PGresult *res, const char *object);
int worksible_flush(void);

/* the commands, each in its file (worksible_migrate.c, ..._logs.c) */
int worksible_cmd_migrate(worksible_args_t *args);
int worksible_cmd_company_create(worksible_args_t *args);
int worksible_cmd_key_create(worksible_args_t *args);
int worksible_cmd_key_revoke(worksible_args_t *args);
int worksible_cmd_key_list(worksible_args_t *args);
int worksible_cmd_plan_set(worksible_args_t *args);
int worksible_cmd_plan_list(worksible_args_t *args);
int worksible_cmd_logs_prune(worksible_args_t *args);

/* worksible_db.c: the command's PostgreSQL session */
PGconn *worksible_connect(const char *db);
int worksible_check_db(const char *db);
PGresult *worksible_exec(PGconn *conn, const char *sql, int nparams,
    const char *const *values, const int *lengths, const int *formats);
void worksible_db_error(PGconn *conn, const PGresult *res,
    const char *where);
int worksible_command(PGconn *conn, const char *sql);
void worksible_rollback(PGconn *conn);
void worksible_close(PGconn *conn, PGresult *res, int rc);
int worksible_set_company(PGconn *conn, const char *company);
int worksible_bypasses_rls(PGconn *conn);

#endif /* _WORKSIBLE_H_INCLUDED_ */
