/*
 * The REST API's routes (see ngx_worksible_api.h). Each endpoint checks its
 * query in C, then runs one parameterized SQL function that is bound to the
 * caller's company by row-level security and builds the response JSON.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_worksible_module.h"
#include "ngx_worksible_api.h"
#include "ngx_worksible_auth.h"
#include "ngx_worksible_id.h"
#include "ngx_worksible_problem.h"


#define NGX_WORKSIBLE_API_MAX_ARGS  4


typedef struct {
    ngx_worksible_error_e       err;
    ngx_str_t                   param;
    ngx_str_t                   detail;
} ngx_worksible_refusal_t;


typedef struct ngx_worksible_route_s  ngx_worksible_route_t;

/* fills op's SQL and parameters, or sets ref and returns NGX_DECLINED */
typedef ngx_int_t (*ngx_worksible_endpoint_pt)(ngx_http_request_t *r,
    ngx_worksible_route_t *route, ngx_str_t *id, ngx_str_t *args,
    ngx_worksible_pg_op_t *op, ngx_worksible_refusal_t *ref);


struct ngx_worksible_route_s {
    ngx_uint_t                  method;       /* NGX_HTTP_GET ... */
    ngx_str_t                   pattern;      /* "{id}" is one segment */
    ngx_str_t                   scope;
    const char                 *object;       /* for "No such ..." */
    const char                 *id_prefix;    /* of {id} */
    const char                 *params[NGX_WORKSIBLE_API_MAX_ARGS + 1];
    ngx_worksible_endpoint_pt   endpoint;
};


static ngx_worksible_route_t *ngx_worksible_api_route(ngx_http_request_t *r,
    ngx_str_t *id, ngx_uint_t *allow);
static ngx_uint_t ngx_worksible_api_match(ngx_str_t *pattern, ngx_str_t *uri,
    ngx_str_t *id);
static ngx_int_t ngx_worksible_api_args(ngx_http_request_t *r,
    ngx_worksible_route_t *route, ngx_str_t *args,
    ngx_worksible_refusal_t *ref);
static ngx_int_t ngx_worksible_api_refuse(ngx_http_request_t *r,
    ngx_worksible_refusal_t *ref);
static ngx_int_t ngx_worksible_api_not_allowed(ngx_http_request_t *r,
    ngx_uint_t allow);
static ngx_int_t ngx_worksible_api_unavailable(ngx_http_request_t *r);
static void ngx_worksible_api_done(ngx_worksible_pg_op_t *op);
static ngx_int_t ngx_worksible_api_respond(ngx_http_request_t *r,
    ngx_worksible_pg_op_t *op);

static ngx_int_t ngx_worksible_api_company_me(ngx_http_request_t *r,
    ngx_worksible_route_t *route, ngx_str_t *id, ngx_str_t *args,
    ngx_worksible_pg_op_t *op, ngx_worksible_refusal_t *ref);
static ngx_int_t ngx_worksible_api_freelancers_list(ngx_http_request_t *r,
    ngx_worksible_route_t *route, ngx_str_t *id, ngx_str_t *args,
    ngx_worksible_pg_op_t *op, ngx_worksible_refusal_t *ref);
static ngx_int_t ngx_worksible_api_freelancer_get(ngx_http_request_t *r,
    ngx_worksible_route_t *route, ngx_str_t *id, ngx_str_t *args,
    ngx_worksible_pg_op_t *op, ngx_worksible_refusal_t *ref);
static ngx_int_t ngx_worksible_api_list_args(ngx_str_t *args,
    const char *prefix, ngx_worksible_pg_op_t *op,
    ngx_worksible_refusal_t *ref);


static ngx_worksible_route_t  ngx_worksible_routes[] = {

    { NGX_HTTP_GET, ngx_string("/v1/companies/me"),
      ngx_string("company:read"), "company", NULL,
      { NULL },
      ngx_worksible_api_company_me },

    { NGX_HTTP_GET, ngx_string("/v1/freelancers"),
      ngx_string("freelancers:read"), "freelancer", "fl",
      { "limit", "starting_after", "ending_before", "status", NULL },
      ngx_worksible_api_freelancers_list },

    { NGX_HTTP_GET, ngx_string("/v1/freelancers/{id}"),
      ngx_string("freelancers:read"), "freelancer", "fl",
      { NULL },
      ngx_worksible_api_freelancer_get },

    { 0, ngx_null_string, ngx_null_string, NULL, NULL, { NULL }, NULL }
};


static const char  *ngx_worksible_freelancer_statuses[] = {
    "invited", "active", "offboarded", NULL
};


ngx_int_t
ngx_worksible_api_handler(ngx_http_request_t *r)
{
    ngx_int_t                   rc;
    ngx_str_t                   id, detail;
    ngx_uint_t                  allow;
    ngx_worksible_ctx_t        *ctx;
    ngx_worksible_route_t      *route;
    ngx_worksible_pg_op_t      *op;
    ngx_worksible_refusal_t     ref;
    ngx_worksible_main_conf_t  *mcf;
    ngx_str_t                   args[NGX_WORKSIBLE_API_MAX_ARGS];

    ctx = ngx_http_get_module_ctx(r, ngx_worksible_module);

    if (ctx == NULL || !ctx->authenticated) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "worksible_api reached without worksible_auth");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    route = ngx_worksible_api_route(r, &id, &allow);

    if (route == NULL) {
        return allow ? ngx_worksible_api_not_allowed(r, allow)
                     : ngx_worksible_problem_send(r,
                                   NGX_WORKSIBLE_ROUTE_NOT_FOUND, NULL, NULL);
    }

    if (!ngx_worksible_scope_held(&ctx->identity.scopes, &route->scope)) {
        return ngx_worksible_insufficient_scope(r, &route->scope);
    }

    ngx_memzero(&ref, sizeof(ngx_worksible_refusal_t));
    ngx_memzero(args, sizeof(args));

    if (ngx_worksible_api_args(r, route, args, &ref) != NGX_OK) {
        return ngx_worksible_api_refuse(r, &ref);
    }

    if (route->id_prefix && id.len && !ngx_worksible_id_valid(&id,
                                                           route->id_prefix))
    {
        detail.data = ngx_pnalloc(r->pool, 64);
        if (detail.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        detail.len = ngx_snprintf(detail.data, 64, "No such %s.",
                                  route->object) - detail.data;

        return ngx_worksible_problem_send(r, NGX_WORKSIBLE_RESOURCE_NOT_FOUND,
                                          &detail, NULL);
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_worksible_module);

    op = ngx_worksible_pg_op_create(mcf->pg_pool);
    if (op == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_worksible_pg_op_param(op, &ctx->identity.company_id) != NGX_OK) {
        ngx_worksible_pg_op_free(op);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = route->endpoint(r, route, &id, args, op, &ref);

    if (rc != NGX_OK) {
        ngx_worksible_pg_op_free(op);
        return rc == NGX_DECLINED ? ngx_worksible_api_refuse(r, &ref)
                                  : NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->route = route;
    op->handler = ngx_worksible_api_done;

    rc = ngx_worksible_pg_run(r, op);

    if (rc == NGX_DECLINED) {
        return ngx_worksible_api_unavailable(r);
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* like ngx_http_read_client_request_body(): finalized when done */

    r->main->count++;

    if (!r->discard_body) {
        r->read_event_handler = ngx_http_test_reading;
    }

    return NGX_DONE;
}


/*
 * The route of r's path and method, with its {id} segment. NULL when none:
 * allow then holds the methods the path takes (0: no such path).
 * HEAD is answered as GET.
 */

static ngx_worksible_route_t *
ngx_worksible_api_route(ngx_http_request_t *r, ngx_str_t *id,
    ngx_uint_t *allow)
{
    ngx_uint_t              method;
    ngx_worksible_route_t  *route;

    *allow = 0;
    ngx_str_null(id);

    method = (r->method == NGX_HTTP_HEAD) ? NGX_HTTP_GET : r->method;

    for (route = ngx_worksible_routes; route->method; route++) {

        if (!ngx_worksible_api_match(&route->pattern, &r->uri, id)) {
            continue;
        }

        if (route->method & method) {
            return route;
        }

        *allow |= route->method;
    }

    return NULL;
}


/* 1 when uri matches pattern exactly, {id} standing for one segment */

static ngx_uint_t
ngx_worksible_api_match(ngx_str_t *pattern, ngx_str_t *uri, ngx_str_t *id)
{
    u_char  *p, *pend, *u, *uend, *start;

    p = pattern->data;
    pend = p + pattern->len;
    u = uri->data;
    uend = u + uri->len;

    while (p < pend) {

        if (*p == '{') {
            while (p < pend && *p++ != '}') { /* void */ }

            for (start = u; u < uend && *u != '/'; u++) { /* void */ }

            if (u == start) {
                return 0;
            }

            id->data = start;
            id->len = u - start;
            continue;
        }

        if (u == uend || *u != *p) {
            return 0;
        }

        p++;
        u++;
    }

    return u == uend;
}


/*
 * Splits r->args into the route's parameters (args[i] for params[i],
 * percent-decoded; data NULL when absent). Unknown names are
 * parameter_unknown, repeated ones parameter_invalid.
 */

static ngx_int_t
ngx_worksible_api_args(ngx_http_request_t *r, ngx_worksible_route_t *route,
    ngx_str_t *args, ngx_worksible_refusal_t *ref)
{
    u_char      *p, *last, *end, *eq, *dst, *src;
    ngx_str_t    name, value;
    ngx_uint_t   i;

    p = r->args.data;
    last = p + r->args.len;

    for ( /* void */ ; p < last; p = end + 1) {

        end = ngx_strlchr(p, last, '&');
        if (end == NULL) {
            end = last;
        }

        if (end == p) {
            continue;
        }

        eq = ngx_strlchr(p, end, '=');

        name.data = ngx_pnalloc(r->pool, end - p);
        if (name.data == NULL) {
            return NGX_ERROR;
        }

        dst = name.data;
        src = p;
        ngx_unescape_uri(&dst, &src, (eq ? eq : end) - p, 0);
        name.len = dst - name.data;

        value.data = name.data + name.len;
        value.len = 0;

        if (eq) {
            dst = value.data;
            src = eq + 1;
            ngx_unescape_uri(&dst, &src, end - eq - 1, 0);
            value.len = dst - value.data;
        }

        for (i = 0; route->params[i]; i++) {
            if (name.len == ngx_strlen(route->params[i])
                && ngx_strncmp(name.data, route->params[i], name.len) == 0)
            {
                break;
            }
        }

        if (route->params[i] == NULL) {
            ref->err = NGX_WORKSIBLE_PARAMETER_UNKNOWN;
            ref->param = name;
            return NGX_DECLINED;
        }

        if (args[i].data != NULL) {
            ref->err = NGX_WORKSIBLE_PARAMETER_INVALID;
            ref->param = name;
            ngx_str_set(&ref->detail, "The parameter is given more than once.");
            return NGX_DECLINED;
        }

        args[i] = value;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_worksible_api_refuse(ngx_http_request_t *r, ngx_worksible_refusal_t *ref)
{
    return ngx_worksible_problem_send(r, ref->err,
                                      ref->detail.len ? &ref->detail : NULL,
                                      ref->param.data ? &ref->param : NULL);
}


/* 405 with "Allow" (RFC 9110, section 10.2.1) */

static ngx_int_t
ngx_worksible_api_not_allowed(ngx_http_request_t *r, ngx_uint_t allow)
{
    u_char     *p;
    ngx_str_t   v;

    p = ngx_pnalloc(r->pool, sizeof("GET, HEAD, POST, PATCH, DELETE"));
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v.data = p;

    if (allow & NGX_HTTP_GET) {
        p = ngx_cpymem(p, "GET, HEAD, ", 11);
    }

    if (allow & NGX_HTTP_POST) {
        p = ngx_cpymem(p, "POST, ", 6);
    }

    if (allow & NGX_HTTP_PATCH) {
        p = ngx_cpymem(p, "PATCH, ", 7);
    }

    if (allow & NGX_HTTP_DELETE) {
        p = ngx_cpymem(p, "DELETE, ", 8);
    }

    v.len = p - v.data - 2;

    if (ngx_worksible_header_add(r, "Allow", &v) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_worksible_problem_send(r, NGX_WORKSIBLE_METHOD_NOT_ALLOWED,
                                      NULL, NULL);
}


static ngx_int_t
ngx_worksible_api_unavailable(ngx_http_request_t *r)
{
    ngx_worksible_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_worksible_module);

    if (ngx_worksible_retry_after(r, ngx_worksible_pg_retry_after(
                                                mcf->pg_pool))
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_worksible_problem_send(r, NGX_WORKSIBLE_SERVICE_UNAVAILABLE,
                                      NULL, NULL);
}


static void
ngx_worksible_api_done(ngx_worksible_pg_op_t *op)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = op->data;
    c = r->connection;

    ngx_http_set_log_request(c->log, r);

    ngx_worksible_pg_done(r);

    ngx_http_finalize_request(r, ngx_worksible_api_respond(r, op));
    ngx_http_run_posted_requests(c);
}


/*
 * The endpoint's query came back: one row, one JSON column (NULL: no such
 * object). SQLSTATE WS400 is a parameter that the database found invalid
 * (a cursor not in the list); its DETAIL names the parameter.
 */

static ngx_int_t
ngx_worksible_api_respond(ngx_http_request_t *r, ngx_worksible_pg_op_t *op)
{
    char                     *state, *param;
    u_char                   *body;
    size_t                    len;
    ngx_str_t                 msg;
    PGresult                 *res;
    ngx_worksible_ctx_t      *ctx;
    ngx_worksible_route_t    *route;
    ngx_worksible_refusal_t   ref;

    ctx = ngx_http_get_module_ctx(r, ngx_worksible_module);
    route = ctx->route;

    if (op->status != NGX_WORKSIBLE_PG_OK) {
        return ngx_worksible_api_unavailable(r);
    }

    res = op->result;

    if (PQresultStatus(res) == PGRES_FATAL_ERROR) {
        state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        param = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);

        if (state && param && ngx_strcmp(state, "WS400") == 0) {
            ngx_memzero(&ref, sizeof(ngx_worksible_refusal_t));
            ref.err = NGX_WORKSIBLE_PARAMETER_INVALID;

            ref.param.len = ngx_strlen(param);
            ref.param.data = (u_char *) param;
            ref.param.data = ngx_pstrdup(r->pool, &ref.param);
            if (ref.param.data == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            ngx_str_set(&ref.detail, "No object with this id is in the list.");

            return ngx_worksible_api_refuse(r, &ref);
        }
    }

    if (PQresultStatus(res) != PGRES_TUPLES_OK
        || PQntuples(res) != 1 || PQnfields(res) != 1)
    {
        msg = ngx_worksible_pg_message(PQresultErrorMessage(res));
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "worksible %s query failed, request_id %*s: %V",
                      route->object, (size_t) NGX_WORKSIBLE_REQUEST_ID_LEN,
                      ctx->request_id, &msg);

        return ngx_worksible_problem_send(r, NGX_WORKSIBLE_INTERNAL_ERROR,
                                          NULL, NULL);
    }

    if (PQgetisnull(res, 0, 0)) {
        ngx_memzero(&ref, sizeof(ngx_worksible_refusal_t));
        ref.err = NGX_WORKSIBLE_RESOURCE_NOT_FOUND;

        ref.detail.data = ngx_pnalloc(r->pool, 64);
        if (ref.detail.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ref.detail.len = ngx_snprintf(ref.detail.data, 64, "No such %s.",
                                      route->object)
                         - ref.detail.data;

        return ngx_worksible_api_refuse(r, &ref);
    }

    len = PQgetlength(res, 0, 0);

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(body, PQgetvalue(res, 0, 0), len);

    return ngx_worksible_json_send(r, NGX_HTTP_OK, body, len);
}


/* GET /v1/companies/me: worksible_company_me(company) */

static ngx_int_t
ngx_worksible_api_company_me(ngx_http_request_t *r,
    ngx_worksible_route_t *route, ngx_str_t *id, ngx_str_t *args,
    ngx_worksible_pg_op_t *op, ngx_worksible_refusal_t *ref)
{
    op->sql = "SELECT worksible_company_me($1)";

    return NGX_OK;
}


/*
 * GET /v1/freelancers?limit&starting_after&ending_before&status:
 * worksible_freelancers_list(company, limit, starting_after, ending_before,
 * status)
 */

static ngx_int_t
ngx_worksible_api_freelancers_list(ngx_http_request_t *r,
    ngx_worksible_route_t *route, ngx_str_t *id, ngx_str_t *args,
    ngx_worksible_pg_op_t *op, ngx_worksible_refusal_t *ref)
{
    ngx_int_t     rc;
    const char  **s;

    op->sql = "SELECT worksible_freelancers_list($1, $2, $3, $4, $5)";

    rc = ngx_worksible_api_list_args(args, route->id_prefix, op, ref);
    if (rc != NGX_OK) {
        return rc;
    }

    if (args[3].data == NULL) {
        return ngx_worksible_pg_op_param(op, NULL);
    }

    for (s = ngx_worksible_freelancer_statuses; *s; s++) {
        if (args[3].len == ngx_strlen(*s)
            && ngx_strncmp(args[3].data, *s, args[3].len) == 0)
        {
            return ngx_worksible_pg_op_param(op, &args[3]);
        }
    }

    ref->err = NGX_WORKSIBLE_PARAMETER_INVALID;
    ngx_str_set(&ref->param, "status");
    ngx_str_set(&ref->detail,
                "status must be one of invited, active, offboarded.");

    return NGX_DECLINED;
}


/*
 * The list parameters of API.md, args[0..2]: limit (1..100, default 20),
 * starting_after and ending_before (ids of the listed object, not both).
 * Adds them to op as $2, $3, $4.
 */

static ngx_int_t
ngx_worksible_api_list_args(ngx_str_t *args, const char *prefix,
    ngx_worksible_pg_op_t *op, ngx_worksible_refusal_t *ref)
{
    ngx_int_t   n;
    ngx_str_t   limit;
    ngx_uint_t  i;

    static ngx_str_t  names[] = {
        ngx_string("starting_after"), ngx_string("ending_before")
    };

    ref->err = NGX_WORKSIBLE_PARAMETER_INVALID;

    if (args[0].data != NULL) {
        n = ngx_atoi(args[0].data, args[0].len);

        if (n < 1 || n > 100) {
            ngx_str_set(&ref->param, "limit");
            ngx_str_set(&ref->detail,
                        "limit must be an integer from 1 to 100.");
            return NGX_DECLINED;
        }

        limit = args[0];

    } else {
        ngx_str_set(&limit, "20");
    }

    if (args[1].data != NULL && args[2].data != NULL) {
        ref->param = names[1];
        ngx_str_set(&ref->detail,
                    "Give starting_after or ending_before, not both.");
        return NGX_DECLINED;
    }

    for (i = 1; i <= 2; i++) {
        if (args[i].data != NULL && !ngx_worksible_id_valid(&args[i], prefix))
        {
            ref->param = names[i - 1];
            ngx_str_set(&ref->detail, "The cursor must be an id of an object "
                                      "of this list.");
            return NGX_DECLINED;
        }
    }

    ref->err = NGX_WORKSIBLE_OK;

    if (ngx_worksible_pg_op_param(op, &limit) != NGX_OK
        || ngx_worksible_pg_op_param(op, args[1].data ? &args[1] : NULL)
           != NGX_OK
        || ngx_worksible_pg_op_param(op, args[2].data ? &args[2] : NULL)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* GET /v1/freelancers/{id}: worksible_freelancer_get(company, id) */

static ngx_int_t
ngx_worksible_api_freelancer_get(ngx_http_request_t *r,
    ngx_worksible_route_t *route, ngx_str_t *id, ngx_str_t *args,
    ngx_worksible_pg_op_t *op, ngx_worksible_refusal_t *ref)
{
    op->sql = "SELECT worksible_freelancer_get($1, $2)";

    return ngx_worksible_pg_op_param(op, id);
}
