/*
 * worksible: the PostgreSQL session of a command (blocking libpq: this is
 * not the nginx worker), its errors and row-level security.
 */

#include "worksible.h"


static void worksible_notice(void *arg, const PGresult *res);


/*
 * Connects with PQconnectdbParams and expand_dbname, so that db may be a
 * conninfo string, a URI or a database name (NULL: the libpq environment,
 * PGHOST, PGPORT, ...). Adds connect_timeout=5 (unless the conninfo or
 * PGCONNECT_TIMEOUT gives one) and application_name=worksible-cli (unless
 * the conninfo gives one); the client encoding is UTF-8. Returns the
 * connection, or NULL after printing "worksible: database: <first line
 * of libpq's message>".
 */

PGconn *
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

int
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

PGresult *
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

void
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

int
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

void
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

void
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

int
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

int
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
