/*
 * The access steps of the API key (see ngx_worksible_auth.h); their order
 * is ngx_worksible_access_handler's (ngx_worksible_request.c).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <sodium.h>

#include "ngx_worksible_module.h"
#include "ngx_worksible_auth.h"
#include "ngx_worksible_problem.h"
#include "ngx_worksible_throttle.h"


#define NGX_WORKSIBLE_LOOKUP_SQL                                              \
    "SELECT api_key_id, company_id, encode(secret_hash, 'hex'), "             \
    "secret_version, array_to_string(scopes, ' '), expires_at, revoked, "     \
    "plan, api_access, rate_limit, rate_window, "                             \
    "array_to_string(ip_allowlist, ' ') FROM worksible_key_lookup($1)"

#define NGX_WORKSIBLE_REHASH_SQL                                              \
    "SELECT worksible_key_rehash($1, $2, decode($3, 'hex'), $4)"

#define NGX_WORKSIBLE_TOUCH_SQL                                               \
    "SELECT worksible_keys_touch(string_to_array($1, ' '))"

/* worksible_api_key_revoke and the CLI announce revoked keys there */
#define NGX_WORKSIBLE_KEYS_CHANNEL  "worksible_api_keys"

/* last_used_at batches leave every few seconds */
#define NGX_WORKSIBLE_TOUCH_INTERVAL  5000


enum {
    NGX_WORKSIBLE_COL_API_KEY_ID = 0,
    NGX_WORKSIBLE_COL_COMPANY_ID,
    NGX_WORKSIBLE_COL_SECRET_HASH,
    NGX_WORKSIBLE_COL_SECRET_VERSION,
    NGX_WORKSIBLE_COL_SCOPES,
    NGX_WORKSIBLE_COL_EXPIRES_AT,
    NGX_WORKSIBLE_COL_REVOKED,
    NGX_WORKSIBLE_COL_PLAN,
    NGX_WORKSIBLE_COL_API_ACCESS,
    NGX_WORKSIBLE_COL_RATE_LIMIT,
    NGX_WORKSIBLE_COL_RATE_WINDOW,
    NGX_WORKSIBLE_COL_ALLOWLIST,
    NGX_WORKSIBLE_COLS
};


static void ngx_worksible_auth_lookup_done(ngx_worksible_pg_op_t *op);
static ngx_worksible_error_e ngx_worksible_auth_row(ngx_http_request_t *r,
    ngx_worksible_pg_op_t *op, ngx_worksible_key_record_t *rec);
static ngx_int_t ngx_worksible_auth_allowlist(ngx_http_request_t *r,
    ngx_str_t *text, ngx_worksible_key_record_t *rec);
static ngx_worksible_error_e ngx_worksible_auth_verify(ngx_http_request_t *r,
    ngx_worksible_request_t *st);
static void ngx_worksible_auth_rehash(ngx_http_request_t *r,
    ngx_worksible_request_t *st);
static void ngx_worksible_auth_touch(ngx_worksible_main_conf_t *mcf,
    ngx_str_t *api_key_id);
static void ngx_worksible_auth_touch_flush(ngx_event_t *ev);
static void ngx_worksible_auth_revoked(void *data, const char *key_id);
static ngx_int_t ngx_worksible_auth_copy(ngx_http_request_t *r,
    PGresult *res, int col, ngx_str_t *dst);


/* hashed for an unknown key id, so that it costs what a wrong secret does */
static const u_char  ngx_worksible_auth_dummy[NGX_WORKSIBLE_KEY_HASH_LEN];


ngx_int_t
ngx_worksible_auth_key(ngx_http_request_t *r, ngx_worksible_request_t *st)
{
    ngx_int_t                    rc;
    ngx_str_t                    key_id;
    ngx_worksible_pg_op_t       *op;
    ngx_worksible_main_conf_t   *mcf;
    ngx_worksible_key_record_t  *rec;

    if (st->record != NULL) {
        /* the lookup answered */
        st->problem = ngx_worksible_auth_verify(r, st);
        return NGX_OK;
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_worksible_module);

    if (r->headers_in.authorization == NULL) {
        st->problem = NGX_WORKSIBLE_API_KEY_MISSING;
        return NGX_OK;
    }

    if (ngx_worksible_auth_token(r, &st->key) != NGX_OK) {
        st->problem = NGX_WORKSIBLE_API_KEY_INVALID;
        return NGX_OK;
    }

    if (mcf->key_cache != NULL) {
        rec = ngx_palloc(r->pool, sizeof(ngx_worksible_key_record_t));
        if (rec == NULL) {
            return NGX_ERROR;
        }

        /* a revocation announced while PostgreSQL answers wins */

        rc = ngx_worksible_cache_get(mcf->key_cache, st->key.key_id,
                                     r->pool, rec, &st->cache_generation);

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (rc == NGX_OK) {
            (void) ngx_atomic_fetch_add(&mcf->metrics->key_cache_hits, 1);
            st->record = rec;
            st->cached = 1;
            st->problem = ngx_worksible_auth_verify(r, st);
            return NGX_OK;
        }

        (void) ngx_atomic_fetch_add(&mcf->metrics->key_cache_misses, 1);
    }

    /* an address that failed too often costs PostgreSQL nothing more */

    if (mcf->auth_failures != NULL
        && ngx_worksible_throttle_check(mcf->auth_failures, r,
                                        &st->retry_after)
           == NGX_BUSY)
    {
        st->problem = NGX_WORKSIBLE_RATE_LIMITED;
        st->throttled = 1;
        return NGX_OK;
    }

    op = ngx_worksible_pg_op_create(mcf->pg_pool);
    if (op == NULL) {
        return NGX_ERROR;
    }

    key_id.data = (u_char *) st->key.key_id;
    key_id.len = NGX_WORKSIBLE_KEY_ID_LEN;

    op->sql = NGX_WORKSIBLE_LOOKUP_SQL;
    op->handler = ngx_worksible_auth_lookup_done;

    if (ngx_worksible_pg_op_param(op, &key_id) != NGX_OK) {
        ngx_worksible_pg_op_free(op);
        return NGX_ERROR;
    }

    rc = ngx_worksible_pg_run(st, op);

    if (rc == NGX_DECLINED) {
        st->problem = NGX_WORKSIBLE_SERVICE_UNAVAILABLE;
        return NGX_OK;
    }

    st->looked_up = 1;

    return (rc == NGX_OK) ? NGX_AGAIN : NGX_ERROR;
}


ngx_int_t
ngx_worksible_auth_plan(ngx_http_request_t *r, ngx_worksible_request_t *st)
{
    if (!st->record->api_access) {
        st->problem = NGX_WORKSIBLE_PLAN_NOT_ELIGIBLE;
    }

    return NGX_OK;
}


ngx_int_t
ngx_worksible_auth_address(ngx_http_request_t *r, ngx_worksible_request_t *st)
{
    int                          family;
    u_char                      *addr;
    ngx_uint_t                   i, allowed;
    struct sockaddr             *sa;
    struct sockaddr_in          *sin;
#if (NGX_HAVE_INET6)
    struct sockaddr_in6         *sin6;
#endif
    ngx_worksible_main_conf_t   *mcf;
    ngx_worksible_key_record_t  *rec;

    rec = st->record;
    allowed = (rec->nallowlist == 0);

    sa = r->connection->sockaddr;

    switch (sa->sa_family) {

    case AF_INET:
        sin = (struct sockaddr_in *) sa;
        family = AF_INET;
        addr = (u_char *) &sin->sin_addr;
        break;

#if (NGX_HAVE_INET6)
    case AF_INET6:
        sin6 = (struct sockaddr_in6 *) sa;
        family = AF_INET6;
        addr = sin6->sin6_addr.s6_addr;
        break;
#endif

    default: /* a unix socket: no address to allow */
        family = AF_UNSPEC;
        addr = NULL;
        break;
    }

    for (i = 0; !allowed && addr != NULL && i < rec->nallowlist; i++) {
        allowed = ngx_worksible_cidr_match(&rec->allowlist[i], family, addr);
    }

    if (!allowed) {
        st->problem = NGX_WORKSIBLE_IP_NOT_ALLOWED;
        return NGX_OK;
    }

    st->authenticated = 1;

    mcf = ngx_http_get_module_main_conf(r, ngx_worksible_module);

    /* a cached key takes the zone's lock again once a minute, not always */

    if (!st->cached
        || (rec->touch_due
            && ngx_worksible_cache_touch(mcf->key_cache, st->key.key_id)))
    {
        ngx_worksible_auth_touch(mcf, &rec->api_key_id);
    }

    return NGX_OK;
}


ngx_int_t
ngx_worksible_auth_scope(ngx_http_request_t *r, ngx_worksible_request_t *st)
{
    ngx_str_t                 *scope;
    ngx_uint_t                 i;
    ngx_worksible_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_worksible_module);

    if (lcf->scopes == NULL) {
        return NGX_OK;
    }

    scope = lcf->scopes->elts;

    for (i = 0; i < lcf->scopes->nelts; i++) {
        if (!ngx_worksible_scope_held(&st->identity.scopes, &scope[i])) {
            st->scope = scope[i];
            st->problem = NGX_WORKSIBLE_INSUFFICIENT_SCOPE;
            break;
        }
    }

    return NGX_OK;
}


ngx_int_t
ngx_worksible_auth_token(ngx_http_request_t *r, ngx_worksible_key_t *key)
{
    u_char  *p, *last;

    p = r->headers_in.authorization->value.data;
    last = p + r->headers_in.authorization->value.len;

    if (last - p < 7 || ngx_strncasecmp(p, (u_char *) "Bearer", 6) != 0
        || (p[6] != ' ' && p[6] != '\t'))
    {
        return NGX_DECLINED;
    }

    for (p += 6; p < last && (*p == ' ' || *p == '\t'); p++) {
        /* void */
    }

    while (last > p && (last[-1] == ' ' || last[-1] == '\t')) {
        last--;
    }

    if (ngx_worksible_key_parse(p, last - p, key) != NGX_WORKSIBLE_KEY_OK) {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/* PostgreSQL answered the KEY step's lookup: the step reads it */

static void
ngx_worksible_auth_lookup_done(ngx_worksible_pg_op_t *op)
{
    ngx_http_request_t          *r;
    ngx_worksible_request_t     *st;
    ngx_worksible_main_conf_t   *mcf;
    ngx_worksible_key_record_t  *rec;

    st = op->data;
    r = st->r;
    mcf = ngx_http_get_module_main_conf(r, ngx_worksible_module);

    st->op = NULL;

    rec = ngx_palloc(r->pool, sizeof(ngx_worksible_key_record_t));

    st->problem = (rec == NULL) ? NGX_WORKSIBLE_INTERNAL_ERROR
                                : ngx_worksible_auth_row(r, op, rec);

    if (st->problem == NGX_WORKSIBLE_OK) {
        if (mcf->key_cache != NULL) {
            ngx_worksible_cache_put(mcf->key_cache, st->key.key_id, rec,
                                    st->cache_generation);
        }

        st->record = rec;
    }

    ngx_worksible_request_resume(st);
}


/* the key lookup's result as a record (found or not), or the problem */

static ngx_worksible_error_e
ngx_worksible_auth_row(ngx_http_request_t *r, ngx_worksible_pg_op_t *op,
    ngx_worksible_key_record_t *rec)
{
    char       *v;
    size_t      len;
    PGresult   *res;
    ngx_str_t   msg, allowlist;

    ngx_memzero(rec, sizeof(ngx_worksible_key_record_t));

    if (op->status != NGX_WORKSIBLE_PG_OK) {
        return NGX_WORKSIBLE_SERVICE_UNAVAILABLE;
    }

    res = op->result;

    if (PQresultStatus(res) != PGRES_TUPLES_OK
        || PQnfields(res) != NGX_WORKSIBLE_COLS || PQntuples(res) > 1)
    {
        msg = ngx_worksible_pg_message(PQresultErrorMessage(res));
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "worksible key lookup failed: %V", &msg);

        return ngx_worksible_pg_transient(res)
               ? NGX_WORKSIBLE_SERVICE_UNAVAILABLE
               : NGX_WORKSIBLE_INTERNAL_ERROR;
    }

    if (PQntuples(res) == 0) {
        return NGX_WORKSIBLE_OK;
    }

    v = PQgetvalue(res, 0, NGX_WORKSIBLE_COL_SECRET_HASH);

    if (sodium_hex2bin(rec->hash, sizeof(rec->hash), v, ngx_strlen(v), NULL,
                       &len, NULL)
        != 0
        || len != sizeof(rec->hash))
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "worksible key lookup: a stored hash is not %uz bytes",
                      sizeof(rec->hash));
        return NGX_WORKSIBLE_INTERNAL_ERROR;
    }

    rec->found = 1;

    v = PQgetvalue(res, 0, NGX_WORKSIBLE_COL_SECRET_VERSION);
    rec->secret_version = ngx_atoi((u_char *) v, ngx_strlen(v));

    if (!PQgetisnull(res, 0, NGX_WORKSIBLE_COL_EXPIRES_AT)) {
        v = PQgetvalue(res, 0, NGX_WORKSIBLE_COL_EXPIRES_AT);
        rec->expires_at = ngx_atotm((u_char *) v, ngx_strlen(v));

        if (rec->expires_at <= 0) {
            rec->expires_at = 1;    /* unreadable: treat as expired */
        }
    }

    rec->revoked = *PQgetvalue(res, 0, NGX_WORKSIBLE_COL_REVOKED) == 't';
    rec->api_access = *PQgetvalue(res, 0, NGX_WORKSIBLE_COL_API_ACCESS) == 't';

    v = PQgetvalue(res, 0, NGX_WORKSIBLE_COL_RATE_LIMIT);
    rec->rate_limit = ngx_atoi((u_char *) v, ngx_strlen(v));

    v = PQgetvalue(res, 0, NGX_WORKSIBLE_COL_RATE_WINDOW);
    rec->rate_window = ngx_atoi((u_char *) v, ngx_strlen(v));

    if (ngx_worksible_auth_copy(r, res, NGX_WORKSIBLE_COL_API_KEY_ID,
                                &rec->api_key_id) != NGX_OK
        || ngx_worksible_auth_copy(r, res, NGX_WORKSIBLE_COL_COMPANY_ID,
                                   &rec->company_id) != NGX_OK
        || ngx_worksible_auth_copy(r, res, NGX_WORKSIBLE_COL_PLAN,
                                   &rec->plan) != NGX_OK
        || ngx_worksible_auth_copy(r, res, NGX_WORKSIBLE_COL_SCOPES,
                                   &rec->scopes) != NGX_OK)
    {
        return NGX_WORKSIBLE_INTERNAL_ERROR;
    }

    allowlist.data = (u_char *) PQgetvalue(res, 0, NGX_WORKSIBLE_COL_ALLOWLIST);
    allowlist.len = PQgetlength(res, 0, NGX_WORKSIBLE_COL_ALLOWLIST);

    if (ngx_worksible_auth_allowlist(r, &allowlist, rec) != NGX_OK) {
        return NGX_WORKSIBLE_INTERNAL_ERROR;
    }

    return NGX_WORKSIBLE_OK;
}


/*
 * The stored allowlist ("10.0.0.0/8 2001:db8::/32") parsed with the strict
 * parser. An entry it refuses (written around the CLI and the API) makes
 * the key usable from nowhere: an allowlist fails closed.
 */

static ngx_int_t
ngx_worksible_auth_allowlist(ngx_http_request_t *r, ngx_str_t *text,
    ngx_worksible_key_record_t *rec)
{
    u_char                *p, *last, *sp;
    ngx_uint_t             n;
    ngx_worksible_cidr_t  *cidr;
    char                   why[128];

    if (text->len == 0) {
        return NGX_OK;
    }

    n = 1;

    for (p = text->data; p < text->data + text->len; p++) {
        n += (*p == ' ');
    }

    rec->allowlist = ngx_pcalloc(r->pool, n * sizeof(ngx_worksible_cidr_t));
    if (rec->allowlist == NULL) {
        return NGX_ERROR;
    }

    p = text->data;
    last = p + text->len;

    for ( /* void */ ; p < last; p = sp + 1) {
        sp = ngx_strlchr(p, last, ' ');
        if (sp == NULL) {
            sp = last;
        }

        cidr = &rec->allowlist[rec->nallowlist];

        if (ngx_worksible_cidr_parse((char *) p, sp - p, cidr, why,
                                     sizeof(why))
            != 0)
        {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "worksible key %V: IP allowlist entry \"%*s\" "
                          "refused (%s): the key is allowed from nowhere",
                          &rec->api_key_id, (size_t) (sp - p), p, why);

            ngx_memzero(rec->allowlist, sizeof(ngx_worksible_cidr_t));
            rec->allowlist->family = AF_UNSPEC;
            rec->nallowlist = 1;

            return NGX_OK;
        }

        rec->nallowlist++;
    }

    return NGX_OK;
}


/* the token against the key's record: its secret, revocation, expiry */

static ngx_worksible_error_e
ngx_worksible_auth_verify(ngx_http_request_t *r, ngx_worksible_request_t *st)
{
    u_char                         *stored;
    ngx_uint_t                      i, known;
    ngx_worksible_main_conf_t      *mcf;
    ngx_worksible_key_record_t     *rec;
    ngx_worksible_server_secret_t  *secret;
    u_char                          hash[NGX_WORKSIBLE_KEY_HASH_LEN];

    mcf = ngx_http_get_module_main_conf(r, ngx_worksible_module);
    rec = st->record;

    secret = &mcf->secrets[0];
    stored = (u_char *) ngx_worksible_auth_dummy;
    known = 0;

    if (rec->found) {
        for (i = 0; i < mcf->nsecrets; i++) {
            if (mcf->secrets[i].version == rec->secret_version) {
                secret = &mcf->secrets[i];
                stored = rec->hash;
                known = 1;
                break;
            }
        }

        if (!known) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "worksible key %V is hashed with server secret "
                          "version %ui, which worksible_key_secret_file "
                          "does not hold", &rec->api_key_id,
                          rec->secret_version);
        }
    }

    ngx_worksible_key_hash(hash, &st->key, secret->secret);

    if (!ngx_worksible_key_hash_equal(hash, stored) || !known) {
        return NGX_WORKSIBLE_API_KEY_INVALID;
    }

    /* the key is known: its refusals are logged for its company */

    st->identity.api_key_id = rec->api_key_id;
    st->identity.company_id = rec->company_id;
    st->identity.plan = rec->plan;
    st->identity.scopes = rec->scopes;
    st->identity.rate_limit = rec->rate_limit;
    st->identity.rate_window = rec->rate_window;

    if (rec->revoked) {
        return NGX_WORKSIBLE_API_KEY_REVOKED;
    }

    if (rec->expires_at != 0 && rec->expires_at <= ngx_time()) {
        return NGX_WORKSIBLE_API_KEY_EXPIRED;
    }

    if (secret != &mcf->secrets[0]) {
        ngx_worksible_auth_rehash(r, st);
    }

    return NGX_WORKSIBLE_OK;
}


/*
 * A key verified under an older server secret: its hash moves to the
 * current one (API.md, rotation), in the background and only if the row
 * still has the old version; the cache gets the new hash at once.
 */

static void
ngx_worksible_auth_rehash(ngx_http_request_t *r, ngx_worksible_request_t *st)
{
    ngx_str_t                    v[4];
    ngx_uint_t                   i;
    ngx_worksible_pg_op_t       *op;
    ngx_worksible_main_conf_t   *mcf;
    ngx_worksible_key_record_t  *rec;
    u_char                       old[NGX_INT_T_LEN], cur[NGX_INT_T_LEN];
    u_char                       hex[2 * NGX_WORKSIBLE_KEY_HASH_LEN];

    mcf = ngx_http_get_module_main_conf(r, ngx_worksible_module);
    rec = st->record;

    op = ngx_worksible_pg_op_create(mcf->pg_pool);
    if (op == NULL) {
        return;
    }

    v[0] = rec->api_key_id;
    v[1].data = old;
    v[1].len = ngx_sprintf(old, "%ui", rec->secret_version) - old;

    ngx_worksible_key_hash(rec->hash, &st->key, mcf->secrets[0].secret);
    rec->secret_version = mcf->secrets[0].version;

    v[2].data = hex;
    v[2].len = ngx_hex_dump(hex, rec->hash, sizeof(rec->hash)) - hex;
    v[3].data = cur;
    v[3].len = ngx_sprintf(cur, "%ui", rec->secret_version) - cur;

    op->sql = NGX_WORKSIBLE_REHASH_SQL;
    op->background = 1;

    for (i = 0; i < 4; i++) {
        if (ngx_worksible_pg_op_param(op, &v[i]) != NGX_OK) {
            ngx_worksible_pg_op_free(op);
            return;
        }
    }

    if (ngx_worksible_pg_op_start(op) != NGX_OK) {
        ngx_worksible_pg_op_free(op);
        return;
    }

    if (mcf->key_cache != NULL) {
        ngx_worksible_cache_put(mcf->key_cache, st->key.key_id, rec,
                                st->cache_generation);
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "worksible key %V moves to server secret version %ui",
                  &rec->api_key_id, rec->secret_version);
}


/*
 * Remembers a key's first use in this minute; this worker's batch leaves
 * for PostgreSQL every NGX_WORKSIBLE_TOUCH_INTERVAL, or when full.
 */

static void
ngx_worksible_auth_touch(ngx_worksible_main_conf_t *mcf,
    ngx_str_t *api_key_id)
{
    ngx_uint_t  i;

    if (mcf->touched == NULL || api_key_id->len > NGX_WORKSIBLE_OBJECT_ID_MAX) {
        return;
    }

    for (i = 0; i < mcf->ntouched; i++) {
        if (ngx_strncmp(mcf->touched[i], api_key_id->data, api_key_id->len)
            == 0)
        {
            return;
        }
    }

    if (mcf->ntouched == NGX_WORKSIBLE_TOUCHED_MAX) {
        ngx_worksible_auth_touch_flush(&mcf->touch_timer);
    }

    ngx_memzero(mcf->touched[mcf->ntouched], NGX_WORKSIBLE_OBJECT_ID_MAX);
    ngx_memcpy(mcf->touched[mcf->ntouched], api_key_id->data,
               api_key_id->len);
    mcf->ntouched++;

    if (!mcf->touch_timer.timer_set) {
        ngx_add_timer(&mcf->touch_timer, NGX_WORKSIBLE_TOUCH_INTERVAL);
    }
}


/* sends this worker's batch: worksible_keys_touch(ids), result ignored */

static void
ngx_worksible_auth_touch_flush(ngx_event_t *ev)
{
    u_char                     *p;
    ngx_str_t                   ids;
    ngx_uint_t                  i, n;
    ngx_worksible_pg_op_t      *op;
    ngx_worksible_main_conf_t  *mcf;

    mcf = ev->data;

    if (ev->timer_set) {
        ngx_del_timer(ev);
    }

    n = mcf->ntouched;
    mcf->ntouched = 0;

    if (n == 0) {
        return;
    }

    op = ngx_worksible_pg_op_create(mcf->pg_pool);
    if (op == NULL) {
        return;
    }

    ids.data = ngx_pnalloc(op->mem, n * (NGX_WORKSIBLE_OBJECT_ID_MAX + 1));
    if (ids.data == NULL) {
        ngx_worksible_pg_op_free(op);
        return;
    }

    p = ids.data;

    for (i = 0; i < n; i++) {
        if (i > 0) {
            *p++ = ' ';
        }

        p = ngx_cpymem(p, mcf->touched[i],
                       ngx_strnlen(mcf->touched[i],
                                   NGX_WORKSIBLE_OBJECT_ID_MAX));
    }

    ids.len = p - ids.data;
    op->sql = NGX_WORKSIBLE_TOUCH_SQL;
    op->background = 1;

    if (ngx_worksible_pg_op_param(op, &ids) != NGX_OK
        || ngx_worksible_pg_op_start(op) != NGX_OK)
    {
        ngx_log_error(NGX_LOG_WARN, ev->log, 0,
                      "worksible: last_used_at of %ui keys not recorded", n);
        ngx_worksible_pg_op_free(op);
    }
}


ngx_int_t
ngx_worksible_auth_init_process(ngx_cycle_t *cycle,
    ngx_worksible_main_conf_t *mcf)
{
    ngx_worksible_pg_conf_t  *conf;

    mcf->touched = ngx_palloc(cycle->pool, NGX_WORKSIBLE_TOUCHED_MAX
                                           * NGX_WORKSIBLE_OBJECT_ID_MAX);
    if (mcf->touched == NULL) {
        return NGX_ERROR;
    }

    mcf->touch_timer.handler = ngx_worksible_auth_touch_flush;
    mcf->touch_timer.data = mcf;
    mcf->touch_timer.log = cycle->log;
    mcf->touch_timer.cancelable = 1;

    /*
     * Revocations reach the key cache at once: one worker per server
     * listens (the cache is shared), on a connection of its own
     */

    if (mcf->key_cache == NULL || ngx_worker != 0) {
        return NGX_OK;
    }

    if (mcf->pg->pgbouncer) {
        /* transaction pooling: notifications reach another client */
        ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                      "worksible: pgbouncer=on, revocations reach the key "
                      "cache within its ttl (no LISTEN)");
        return NGX_OK;
    }

    conf = ngx_palloc(cycle->pool, sizeof(ngx_worksible_pg_conf_t));
    if (conf == NULL) {
        return NGX_ERROR;
    }

    *conf = *mcf->pg;
    conf->size = 1;
    conf->queue = 1;

    mcf->pg_listener = ngx_worksible_pg_pool_create(conf, cycle,
                                                    &mcf->metrics->postgres);
    if (mcf->pg_listener == NULL) {
        return NGX_ERROR;
    }

    return ngx_worksible_pg_listen(mcf->pg_listener, NGX_WORKSIBLE_KEYS_CHANNEL,
                                   ngx_worksible_auth_revoked, mcf);
}


/*
 * A key_id announced on the channel (a revoked key, worksible_api_key_revoke
 * and the CLI): its cache entry goes. NULL: the channel was down, so every
 * entry goes.
 */

static void
ngx_worksible_auth_revoked(void *data, const char *key_id)
{
    ngx_worksible_main_conf_t  *mcf = data;

    if (key_id != NULL && ngx_strlen(key_id) != NGX_WORKSIBLE_KEY_ID_LEN) {
        return;
    }

    ngx_worksible_cache_forget(mcf->key_cache, (const u_char *) key_id);
}


ngx_uint_t
ngx_worksible_scope_held(ngx_str_t *scopes, ngx_str_t *need)
{
    size_t   n, base;
    u_char  *p, *last, *end;

    base = 0;

    if (need->len > sizeof(":read") - 1
        && ngx_strncmp(need->data + need->len - 5, ":read", 5) == 0)
    {
        base = need->len - 5;
    }

    p = scopes->data;
    last = p + scopes->len;

    for ( /* void */ ; p < last; p = end + 1) {
        end = ngx_strlchr(p, last, ' ');
        if (end == NULL) {
            end = last;
        }

        n = end - p;

        if (n == need->len && ngx_strncmp(p, need->data, n) == 0) {
            return 1;
        }

        if (base && n == base + sizeof(":write") - 1
            && ngx_strncmp(p, need->data, base) == 0
            && ngx_strncmp(p + base, ":write", 6) == 0)
        {
            return 1;
        }
    }

    return 0;
}


ngx_int_t
ngx_worksible_insufficient_scope(ngx_http_request_t *r, ngx_str_t *scope)
{
    ngx_str_t  detail;

    if (ngx_worksible_scope_refusal(r, scope, &detail) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_worksible_problem_send(r, NGX_WORKSIBLE_INSUFFICIENT_SCOPE,
                                      &detail, NULL);
}


ngx_int_t
ngx_worksible_scope_refusal(ngx_http_request_t *r, ngx_str_t *scope,
    ngx_str_t *detail)
{
    size_t     len;
    ngx_str_t  v;

    len = sizeof("Bearer realm=\"worksible\", error=\"insufficient_scope\", "
                 "scope=\"\"") - 1 + scope->len;

    v.data = ngx_pnalloc(r->pool, len);
    detail->data = ngx_pnalloc(r->pool, 64 + scope->len);

    if (v.data == NULL || detail->data == NULL) {
        return NGX_ERROR;
    }

    v.len = ngx_sprintf(v.data, "Bearer realm=\"worksible\", "
                        "error=\"insufficient_scope\", scope=\"%V\"", scope)
            - v.data;

    detail->len = ngx_sprintf(detail->data,
                              "This endpoint needs the scope %V.", scope)
                  - detail->data;

    return ngx_worksible_header_add(r, "WWW-Authenticate", &v);
}


/* copies a text column into the request's pool */

static ngx_int_t
ngx_worksible_auth_copy(ngx_http_request_t *r, PGresult *res, int col,
    ngx_str_t *dst)
{
    dst->len = PQgetlength(res, 0, col);
    dst->data = ngx_pnalloc(r->pool, dst->len);

    if (dst->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(dst->data, PQgetvalue(res, 0, col), dst->len);

    return NGX_OK;
}
