/*
 * worksible key create|revoke|list: API keys made and hashed by
 * src/ngx_worksible_key.c, exactly as the module verifies them, and
 * stored by worksible_api_key_create, the API's own function.
 */

#include "worksible.h"


static int worksible_parse_scopes(const char *s, char **literal);
static int worksible_parse_allowlist(worksible_args_t *args, char **literal);
static int worksible_read_secret(const char *path,
    ngx_worksible_server_secret_t *current);
static int worksible_print_key_line(const char *object_text,
    const char *state);


/*
 * worksible key create: checks every argument (scopes, RFC 3339 expiry in
 * the future, RFC 4632 CIDRs, the server secret file), then in one
 * transaction checks the company, makes a token with
 * ngx_worksible_key_generate and stores its keyed BLAKE2b hash
 * (ngx_worksible_key_hash, under the current server secret and its
 * version) through worksible_api_key_create, the API's own function (its
 * rules, such as which plans allow IP allowlists, live there), as an
 * operator's (no creator to stay below); prints the object id and the key
 * once (--json: the api_key object plus "key"). A key_id already taken is retried with a new
 * token. Returns 0; 1 for an unknown company, an allowlist the plan does
 * not allow, an unreadable secret or a database failure; 2 for bad
 * arguments.
 */

int
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
        && ngx_worksible_rfc3339_parse(args->expires_at, strlen(args->expires_at),
                                       expires, sizeof(expires),
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

    res = worksible_exec(conn, "SELECT c.plan, p.api_access"
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

        /* the API's own function: one rule for both (a taken key_id: retry) */

        res = worksible_exec(conn,
                  "SELECT worksible_api_key_create($1, $2, encode($4, 'hex'),"
                  " $8::smallint, $3, array_to_string($5::text[], ' '),"
                  " array_to_string($6::cidr[], ' '), $7, NULL)::text"
                  " WHERE NOT EXISTS (SELECT 1 FROM api_keys"
                  " WHERE key_id = $2)",
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

    json = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    id = (json != NULL)
         ? strdup(json_string_value(json_object_get(json, "id")) ?: "")
         : NULL;
    json_decref(json);

    if (id == NULL || id[0] == '\0') {
        worksible_error("bad api_key object from the database");
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

int
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

int
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

        if (!ngx_worksible_scope_check((const u_char *) start, len)) {
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
