/*
 * worksible logs prune: the request log's day partitions detached
 * concurrently, then dropped whole (worksible_request_logs_prunable and
 * worksible_request_logs_prune, owner only).
 */

#include "worksible.h"


static int worksible_parse_age(const char *opt, const char *s, char *interval,
    size_t size);


/*
 * worksible logs prune --older-than N(d|h): drops the request log's day
 * partitions whose whole UTC day ended at least N days (hours) ago. Each
 * (worksible_request_logs_prunable) is first detached with ALTER TABLE
 * request_logs DETACH PARTITION ... CONCURRENTLY (FINALIZE for one whose
 * concurrent detach was interrupted), a statement of its own
 * (PostgreSQL runs it in two transactions of its own, never in a block):
 * the log's inserts and reads never wait behind the drop. Then, in one
 * transaction, worksible_request_logs_prune drops them (and any the
 * prune detached and left, e.g. interrupted), their rollups and pending
 * rows, and worksible_request_logs_prepare makes the coming days'
 * partitions. Owner only: worksible_api may not. Prints each dropped
 * partition on a line, "nothing to drop" when none, or --json
 * {"dropped":[names]}. Returns 0; 1 for a database failure (e.g. a role
 * that is not the owner); 2 for a bad --older-than.
 */

int
worksible_cmd_logs_prune(worksible_args_t *args)
{
    int          rc, i, n;
    char         interval[32], sql[256], *ident;
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

    values[0] = interval;

    res = worksible_exec(conn,
                         "SELECT name, pending "
                         "FROM worksible_request_logs_prunable($1::interval)",
                         1, values, NULL, NULL);
    if (res == NULL) {
        goto done;
    }

    for (i = 0; i < PQntuples(res); i++) {
        ident = PQescapeIdentifier(conn, PQgetvalue(res, i, 0),
                                   strlen(PQgetvalue(res, i, 0)));
        if (ident == NULL) {
            worksible_error("out of memory");
            goto done;
        }

        /* request_logs_pYYYYMMDD, quoted: always fits */
        n = snprintf(sql, sizeof(sql), "ALTER TABLE request_logs DETACH "
                     "PARTITION %s %s", ident,
                     PQgetvalue(res, i, 1)[0] == 't' ? "FINALIZE"
                                                     : "CONCURRENTLY");
        PQfreemem(ident);

        if (n < 0 || (size_t) n >= sizeof(sql)
            || worksible_command(conn, sql) != 0)
        {
            goto done;
        }
    }

    PQclear(res);
    res = NULL;

    if (worksible_command(conn, "BEGIN") != 0) {
        goto done;
    }

    res = worksible_exec(conn,
                         "SELECT worksible_request_logs_prune($1::interval)",
                         1, values, NULL, NULL);
    if (res == NULL) {
        goto done;
    }

    if (worksible_command(conn,
                          "SELECT count(*) FROM worksible_request_logs_prepare()")
        != 0
        || worksible_command(conn, "COMMIT") != 0)
    {
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
