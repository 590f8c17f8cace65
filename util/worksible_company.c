/*
 * worksible company create.
 */

#include "worksible.h"


/*
 * worksible company create --name N --plan P [--currency C]: inserts the
 * company (currency: ISO 4217 alphabetic code, default EUR) and prints its
 * id (--json: {"id":"cmp_..."}). The id is made first so that the row
 * passes the company_isolation policy even without BYPASSRLS. Returns 0;
 * 1 for an unknown plan or currency or a database failure; 2 for a bad
 * name or a currency that is not three upper-case letters.
 */

int
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
