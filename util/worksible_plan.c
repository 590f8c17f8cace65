/*
 * worksible plan set|list: the plans (table plans, no row-level security,
 * changed by the owner role).
 */

#include "worksible.h"


static int worksible_check_plan_name(const char *s);
static int worksible_parse_switch(const char *name, const char *value,
    const char **v);
static int worksible_print_plan(const char *object_text, int json);


/*
 * worksible plan set NAME [--api-access on|off] [--ip-allowlists on|off]
 * [--limit N] [--window SECONDS]: creates or updates one row of plans in
 * one transaction and prints it (NAME api_access=on ip_allowlists=off
 * limit=N window=S, or --json the plan object). With both --limit and
 * --window it is an upsert (a new plan gets api_access and ip_allowlists
 * off unless given; an existing one keeps them), so a concurrent create
 * cannot fail it; with
 * fewer it updates an existing plan only. An update keeps what is not
 * given and sets updated_at = now(). Returns 0; 1 for a database failure
 * (plans has no row-level security, but only the owner role may write
 * it); 2 for bad arguments, no option at all, or a plan that does not
 * exist and lacks --limit or --window.
 */

int
worksible_cmd_plan_set(worksible_args_t *args)
{
    int          rc, create;
    PGconn      *conn;
    PGresult    *res;
    const char  *name, *values[5];

    name = args->words[2];

    if (worksible_check_plan_name(name) != 0) {
        return WORKSIBLE_EXIT_USAGE;
    }

    if (!(args->seen & (WORKSIBLE_OPT_API_ACCESS | WORKSIBLE_OPT_IP_ALLOWLISTS
                        | WORKSIBLE_OPT_LIMIT | WORKSIBLE_OPT_WINDOW)))
    {
        worksible_error("'plan set' needs at least one of --api-access, "
                        "--ip-allowlists, --limit, --window");
        return WORKSIBLE_EXIT_USAGE;
    }

    values[0] = name;

    if (worksible_parse_switch("--api-access", args->api_access, &values[1])
        != 0
        || worksible_parse_switch("--ip-allowlists", args->ip_allowlists,
                                  &values[4])
           != 0)
    {
        return WORKSIBLE_EXIT_USAGE;
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
                " (name, api_access, ip_allowlists, rate_limit, rate_window)"
                " VALUES ($1, coalesce($2::boolean, false),"
                " coalesce($5::boolean, false), $3::integer, $4::integer)"
                " ON CONFLICT (name) DO UPDATE"
                " SET api_access = coalesce($2::boolean, p.api_access),"
                " ip_allowlists = coalesce($5::boolean, p.ip_allowlists),"
                " rate_limit = excluded.rate_limit,"
                " rate_window = excluded.rate_window, updated_at = now()"
                " RETURNING " WORKSIBLE_PLAN_OBJECT
              : "UPDATE plans AS p"
                " SET api_access = coalesce($2::boolean, p.api_access),"
                " ip_allowlists = coalesce($5::boolean, p.ip_allowlists),"
                " rate_limit = coalesce($3::integer, p.rate_limit),"
                " rate_window = coalesce($4::integer, p.rate_window),"
                " updated_at = now()"
                " WHERE p.name = $1"
                " RETURNING " WORKSIBLE_PLAN_OBJECT,
              5, values, NULL, NULL);
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

int
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
 * "on" or "off" of the option name into *v ("t" or "f"; NULL when value is
 * NULL: not given). Returns 0, or -1 (usage, said on stderr).
 */

static int
worksible_parse_switch(const char *name, const char *value, const char **v)
{
    *v = NULL;

    if (value == NULL) {
        return 0;
    }

    if (strcmp(value, "on") == 0 || strcmp(value, "off") == 0) {
        *v = (value[1] == 'n') ? "t" : "f";
        return 0;
    }

    worksible_error("%s: %s is not on or off", name, worksible_quote(value));

    return -1;
}


/*
 * Prints one plan from its plan object text: with json set the object on
 * one line, else "NAME api_access=on|off ip_allowlists=on|off limit=N
 * window=SECONDS". Returns
 * 0 or 1.
 */

static int
worksible_print_plan(const char *object_text, int json)
{
    int          rc;
    json_t      *obj, *access, *allowlists, *limit, *window;
    const char  *name;

    obj = json_loads(object_text, 0, NULL);

    name = json_string_value(json_object_get(obj, "name"));
    access = json_object_get(obj, "api_access");
    allowlists = json_object_get(obj, "ip_allowlists");
    limit = json_object_get(obj, "rate_limit");
    window = json_object_get(obj, "rate_window");

    if (name == NULL || !json_is_boolean(access)
        || !json_is_boolean(allowlists) || !json_is_integer(limit)
        || !json_is_integer(window))
    {
        worksible_error("bad plan object from the database");
        json_decref(obj);
        return WORKSIBLE_EXIT_FAILED;
    }

    if (json) {
        rc = worksible_print_json(obj, 0);

    } else {
        printf("%s api_access=%s ip_allowlists=%s limit=%" JSON_INTEGER_FORMAT
               " window=%" JSON_INTEGER_FORMAT "\n",
               name, json_is_true(access) ? "on" : "off",
               json_is_true(allowlists) ? "on" : "off",
               json_integer_value(limit), json_integer_value(window));
        rc = worksible_flush();
    }

    json_decref(obj);

    return rc;
}
