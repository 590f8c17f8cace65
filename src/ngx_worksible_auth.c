/*
 * Access phase: API keys (see ngx_worksible_auth.h).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <sodium.h>

#include "ngx_worksible_module.h"
#include "ngx_worksible_auth.h"
#include "ngx_worksible_problem.h"


#define NGX_WORKSIBLE_LOOKUP_SQL                                              \
    "SELECT api_key_id, company_id, encode(secret_hash, 'hex'), "             \
    "secret_version, array_to_string(scopes, ' '), expires_at, revoked, "     \
    "plan, api_access FROM worksible_key_lookup($1)"

enum {
    NGX_WORKSIBLE_COL_API_KEY_ID = 0,
    NGX_WORKSIBLE_COL_COMPANY_ID,
    NGX_WORKSIBLE_COL_SECRET_HASH,
    NGX_WORKSIBLE_COL_SECRET_VERSION,
    NGX_WORKSIBLE_COL_SCOPES,
    NGX_WORKSIBLE_COL_EXPIRES_AT,
    NGX_WORKSIBLE_COL_REVOKED,
    NGX_WORKSIBLE_COL_PLAN,
    NGX_WORKSIBLE_COL_API_ACCESS
};


static ngx_int_t ngx_worksible_auth_token(ngx_http_request_t *r,
    ngx_worksible_key_t *key);
static void ngx_worksible_auth_lookup_done(ngx_worksible_pg_op_t *op);
static ngx_worksible_error_e ngx_worksible_auth_verify(ngx_http_request_t *r,
    ngx_worksible_ctx_t *ctx, ngx_worksible_pg_op_t *op);
static ngx_int_t ngx_worksible_auth_copy(ngx_http_request_t *r,
    PGresult *res, int col, ngx_str_t *dst);
static ngx_int_t ngx_worksible_auth_refuse(ngx_http_request_t *r,
    ngx_worksible_ctx_t *ctx);


/* hashed for an unknown key id, so that it costs what a wrong secret does */
static u_char  ngx_worksible_auth_dummy[NGX_WORKSIBLE_KEY_HASH_LEN];


ngx_int_t
ngx_worksible_auth_handler(ngx_http_request_t *r)
{
    ngx_int_t                   rc;
    ngx_str_t                   key_id;
    ngx_worksible_ctx_t        *ctx;
    ngx_worksible_pg_op_t      *op;
    ngx_worksible_loc_conf_t   *lcf;
    ngx_worksible_main_conf_t  *mcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_worksible_module);

    if (!lcf->auth || r != r->main) {
        return NGX_DECLINED;
    }

    ctx = ngx_worksible_get_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->auth_done) {
        return ctx->problem ? ngx_worksible_auth_refuse(r, ctx) : NGX_OK;
    }

    if (ctx->op != NULL) {
        return NGX_AGAIN;
    }

    if (r->headers_in.authorization == NULL) {
        ctx->auth_done = 1;
        ctx->problem = NGX_WORKSIBLE_API_KEY_MISSING;
        return ngx_worksible_auth_refuse(r, ctx);
    }

    if (ngx_worksible_auth_token(r, &ctx->key) != NGX_OK) {
        ctx->auth_done = 1;
        ctx->problem = NGX_WORKSIBLE_API_KEY_INVALID;
        return ngx_worksible_auth_refuse(r, ctx);
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_worksible_module);

    op = ngx_worksible_pg_op_create(mcf->pg_pool);
    if (op == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    key_id.data = (u_char *) ctx->key.key_id;
    key_id.len = NGX_WORKSIBLE_KEY_ID_LEN;

    op->sql = NGX_WORKSIBLE_LOOKUP_SQL;
    op->handler = ngx_worksible_auth_lookup_done;

    if (ngx_worksible_pg_op_param(op, &key_id) != NGX_OK) {
        ngx_worksible_pg_op_free(op);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_worksible_pg_run(r, op);

    if (rc == NGX_DECLINED) {
        ctx->auth_done = 1;
        ctx->problem = NGX_WORKSIBLE_SERVICE_UNAVAILABLE;
        return ngx_worksible_auth_refuse(r, ctx);
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* like limit_req's delay: notice a client that leaves while we wait */

    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_request_empty_handler;

    return NGX_AGAIN;
}


/*
 * "Authorization: Bearer <token>": the scheme is case-insensitive and may be
 * followed by more than one space (RFC 9110, section 11.4; RFC 6750,
 * section 2.1). NGX_OK with key set, or NGX_DECLINED.
 */

static ngx_int_t
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


static void
ngx_worksible_auth_lookup_done(ngx_worksible_pg_op_t *op)
{
    ngx_connection_t     *c;
    ngx_http_request_t   *r;
    ngx_worksible_ctx_t  *ctx;

    r = op->data;
    c = r->connection;
    ctx = ngx_http_get_module_ctx(r, ngx_worksible_module);

    ngx_http_set_log_request(c->log, r);

    ngx_worksible_pg_done(r);

    ctx->auth_done = 1;
    ctx->problem = ngx_worksible_auth_verify(r, ctx, op);

    r->read_event_handler = ngx_http_block_reading;
    r->write_event_handler = ngx_http_core_run_phases;

    ngx_http_core_run_phases(r);
    ngx_http_run_posted_requests(c);
}


/* the key lookup's row against the token: 0 when the key may be used */

static ngx_worksible_error_e
ngx_worksible_auth_verify(ngx_http_request_t *r, ngx_worksible_ctx_t *ctx,
    ngx_worksible_pg_op_t *op)
{
    char                       *v;
    size_t                      len;
    time_t                      expires;
    ngx_str_t                   msg;
    PGresult                   *res;
    ngx_int_t                   version;
    ngx_uint_t                  known;
    ngx_worksible_main_conf_t  *mcf;
    u_char                      stored[NGX_WORKSIBLE_KEY_HASH_LEN];
    u_char                      hash[NGX_WORKSIBLE_KEY_HASH_LEN];

    if (op->status != NGX_WORKSIBLE_PG_OK) {
        return NGX_WORKSIBLE_SERVICE_UNAVAILABLE;
    }

    res = op->result;

    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        msg = ngx_worksible_pg_message(PQresultErrorMessage(res));
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "worksible key lookup failed: %V", &msg);
        return NGX_WORKSIBLE_INTERNAL_ERROR;
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_worksible_module);

    known = 0;
    ngx_memcpy(stored, ngx_worksible_auth_dummy, sizeof(stored));

    if (PQntuples(res) == 1 && PQnfields(res) == 9) {
        v = PQgetvalue(res, 0, NGX_WORKSIBLE_COL_SECRET_VERSION);
        version = ngx_atoi((u_char *) v, ngx_strlen(v));

        v = PQgetvalue(res, 0, NGX_WORKSIBLE_COL_SECRET_HASH);

        if (version == (ngx_int_t) mcf->key_secret_version
            && sodium_hex2bin(stored, sizeof(stored), v, ngx_strlen(v), NULL,
                              &len, NULL) == 0
            && len == sizeof(stored))
        {
            known = 1;

        } else {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "worksible key hashed with server secret "
                          "version %i, not the configured %ui",
                          version, mcf->key_secret_version);
        }
    }

    ngx_worksible_key_hash(hash, &ctx->key, mcf->key_secret);

    if (!ngx_worksible_key_hash_equal(hash, stored) || !known) {
        return NGX_WORKSIBLE_API_KEY_INVALID;
    }

    if (*PQgetvalue(res, 0, NGX_WORKSIBLE_COL_REVOKED) == 't') {
        return NGX_WORKSIBLE_API_KEY_REVOKED;
    }

    if (!PQgetisnull(res, 0, NGX_WORKSIBLE_COL_EXPIRES_AT)) {
        v = PQgetvalue(res, 0, NGX_WORKSIBLE_COL_EXPIRES_AT);
        expires = ngx_atotm((u_char *) v, ngx_strlen(v));

        if (expires == NGX_ERROR || expires <= ngx_time()) {
            return NGX_WORKSIBLE_API_KEY_EXPIRED;
        }
    }

    if (*PQgetvalue(res, 0, NGX_WORKSIBLE_COL_API_ACCESS) != 't') {
        return NGX_WORKSIBLE_PLAN_NOT_ELIGIBLE;
    }

    if (ngx_worksible_auth_copy(r, res, NGX_WORKSIBLE_COL_API_KEY_ID,
                                &ctx->identity.api_key_id) != NGX_OK
        || ngx_worksible_auth_copy(r, res, NGX_WORKSIBLE_COL_COMPANY_ID,
                                   &ctx->identity.company_id) != NGX_OK
        || ngx_worksible_auth_copy(r, res, NGX_WORKSIBLE_COL_PLAN,
                                   &ctx->identity.plan) != NGX_OK
        || ngx_worksible_auth_copy(r, res, NGX_WORKSIBLE_COL_SCOPES,
                                   &ctx->identity.scopes) != NGX_OK)
    {
        return NGX_WORKSIBLE_INTERNAL_ERROR;
    }

    ctx->authenticated = 1;

    return NGX_WORKSIBLE_OK;
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


/* sends ctx->problem with its headers and finalizes: NGX_DONE */

static ngx_int_t
ngx_worksible_auth_refuse(ngx_http_request_t *r, ngx_worksible_ctx_t *ctx)
{
    ngx_int_t                   rc;
    ngx_str_t                   v;
    ngx_worksible_main_conf_t  *mcf;

    rc = NGX_OK;

    switch (ctx->problem) {

    case NGX_WORKSIBLE_API_KEY_MISSING:
        ngx_str_set(&v, "Bearer realm=\"worksible\"");
        rc = ngx_worksible_header_add(r, "WWW-Authenticate", &v);
        break;

    case NGX_WORKSIBLE_API_KEY_INVALID:
    case NGX_WORKSIBLE_API_KEY_EXPIRED:
    case NGX_WORKSIBLE_API_KEY_REVOKED:
        ngx_str_set(&v, "Bearer realm=\"worksible\", error=\"invalid_token\"");
        rc = ngx_worksible_header_add(r, "WWW-Authenticate", &v);
        break;

    case NGX_WORKSIBLE_SERVICE_UNAVAILABLE:
        mcf = ngx_http_get_module_main_conf(r, ngx_worksible_module);
        rc = ngx_worksible_retry_after(r,
                                 ngx_worksible_pg_retry_after(mcf->pg_pool));
        break;

    default:
        break;
    }

    if (rc == NGX_OK) {
        rc = ngx_worksible_problem_send(r, ctx->problem, NULL, NULL);
    }

    ngx_http_finalize_request(r, rc);

    return NGX_DONE;
}
