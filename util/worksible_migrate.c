/*
 * worksible migrate: the numbered SQL files of migrations/, each applied
 * once, in order, in its own transaction.
 */

#include "worksible.h"


static int worksible_migrations_load(const char *dir,
    worksible_migration_t **list, size_t *n);
static int worksible_migration_name(const char *name);
static int worksible_migration_read(const char *dir,
    worksible_migration_t *m);
static int worksible_migration_cmp(const void *a, const void *b);
static void worksible_migrations_free(worksible_migration_t *list, size_t n);
static int worksible_migration_apply(PGconn *conn, worksible_migration_t *m);
static long worksible_sql_line(const char *sql, size_t len, long position);


/*
 * worksible migrate [--dir DIR]: applies the pending migrations of DIR
 * (--dir, else $WORKSIBLE_MIGRATIONS, else WORKSIBLE_MIGRATIONS_DIR), each
 * in one transaction with its schema_migrations row (version = file name,
 * checksum = SHA-256 hex of the bytes). Runs under a session advisory lock
 * so that concurrent runs apply each file once. Returns 0; 1 when the
 * directory cannot be read, an applied file changed or is missing, or the
 * database fails; 2 for an empty --dir.
 */

int
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
