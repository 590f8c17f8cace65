/*
 * The REST API's routes (see ngx_worksible_api.h). Each endpoint checks its
 * query in C, then runs one parameterized SQL function that is bound to the
 * caller's company by row-level security and builds the response JSON.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>
#include <sodium.h>

#include "ngx_worksible_module.h"
#include "ngx_worksible_api.h"
#include "ngx_worksible_auth.h"
#include "ngx_worksible_id.h"
#include "ngx_worksible_problem.h"
#include "ngx_worksible_time.h"


/* bodies larger than this are refused with 413 body_too_large */


static ngx_uint_t ngx_worksible_api_match(ngx_str_t *pattern, ngx_str_t *uri,
    ngx_str_t *id);
static void ngx_worksible_api_body_ready(ngx_http_request_t *r);
static ngx_int_t ngx_worksible_api_body(ngx_http_request_t *r,
    ngx_worksible_request_t *st, ngx_str_t *body);
static ngx_int_t ngx_worksible_api_run_on(ngx_http_request_t *r,
    ngx_worksible_route_t *route, ngx_str_t *id, ngx_str_t *args,
    json_t *body, ngx_worksible_pg_pool_t *pool);
static ngx_int_t ngx_worksible_api_run(ngx_http_request_t *r,
    ngx_worksible_route_t *route, ngx_str_t *id, ngx_str_t *args,
    json_t *body);
static ngx_int_t ngx_worksible_api_again(ngx_http_request_t *r,
    ngx_worksible_pg_op_t *op, ngx_worksible_respond_pt respond);
static ngx_int_t ngx_worksible_api_refuse(ngx_http_request_t *r,
    ngx_worksible_refusal_t *ref);
static size_t ngx_worksible_api_cut(ngx_str_t *s, size_t max);
static ngx_int_t ngx_worksible_api_not_allowed(ngx_http_request_t *r,
    ngx_uint_t allow);
static ngx_int_t ngx_worksible_api_unavailable(ngx_http_request_t *r);
static ngx_uint_t ngx_worksible_api_replica_failed(ngx_http_request_t *r,
    ngx_worksible_pg_op_t *op);
static ngx_int_t ngx_worksible_api_primary(ngx_http_request_t *r,
    ngx_worksible_pg_op_t *op);
static ngx_int_t ngx_worksible_api_respond(ngx_http_request_t *r,
    ngx_worksible_pg_op_t *op);
static ngx_int_t ngx_worksible_api_dump(ngx_http_request_t *r, json_t *o,
    ngx_str_t *out);
static ngx_int_t ngx_worksible_api_success(ngx_http_request_t *r,
    ngx_worksible_route_t *route, ngx_str_t *body);
static ngx_int_t ngx_worksible_api_recorded(ngx_http_request_t *r);
static ngx_int_t ngx_worksible_api_replay(ngx_http_request_t *r,
    ngx_worksible_pg_op_t *op);
static ngx_int_t ngx_worksible_api_constraint(ngx_http_request_t *r,
    PGresult *res, ngx_worksible_refusal_t *ref);
static ngx_int_t ngx_worksible_api_created(ngx_http_request_t *r,
    ngx_worksible_route_t *route, ngx_str_t *body, ngx_str_t *key);

static ngx_int_t ngx_worksible_api_company_me(ngx_http_request_t *r,
    ngx_worksible_endpoint_t *ep);


static ngx_worksible_route_t  ngx_worksible_routes[] = {

    { NGX_HTTP_GET, ngx_string("/v1/companies/me"),
      ngx_string("company:read"), "company", NULL, 0,
      { NULL },
      ngx_worksible_api_company_me, NULL, NULL },

    { NGX_HTTP_PATCH, ngx_string("/v1/companies/me"),
      ngx_string("company:write"), "company", NULL, 1,
      { NULL },
      ngx_worksible_company_update, &ngx_worksible_company_resource, NULL },

    { NGX_HTTP_GET, ngx_string("/v1/freelancers"),
      ngx_string("freelancers:read"), "freelancer", "fl", 0,
      { NGX_WORKSIBLE_API_LIST_ARGS, "status", NULL },
      ngx_worksible_resource_list, &ngx_worksible_freelancers_resource, NULL },

    { NGX_HTTP_POST, ngx_string("/v1/freelancers"),
      ngx_string("freelancers:write"), "freelancer", "fl", 1,
      { NULL },
      ngx_worksible_resource_create, &ngx_worksible_freelancers_resource,
      NULL },

    { NGX_HTTP_GET, ngx_string("/v1/freelancers/{id}"),
      ngx_string("freelancers:read"), "freelancer", "fl", 0,
      { NULL },
      ngx_worksible_resource_get, &ngx_worksible_freelancers_resource, NULL },

    { NGX_HTTP_PATCH, ngx_string("/v1/freelancers/{id}"),
      ngx_string("freelancers:write"), "freelancer", "fl", 1,
      { NULL },
      ngx_worksible_resource_update, &ngx_worksible_freelancers_resource,
      NULL },

    { NGX_HTTP_GET, ngx_string("/v1/projects"),
      ngx_string("projects:read"), "project", "prj", 0,
      { NGX_WORKSIBLE_API_LIST_ARGS, "status", NULL },
      ngx_worksible_resource_list, &ngx_worksible_projects_resource, NULL },

    { NGX_HTTP_POST, ngx_string("/v1/projects"),
      ngx_string("projects:write"), "project", "prj", 1,
      { NULL },
      ngx_worksible_resource_create, &ngx_worksible_projects_resource, NULL },

    { NGX_HTTP_GET, ngx_string("/v1/projects/{id}"),
      ngx_string("projects:read"), "project", "prj", 0,
      { NULL },
      ngx_worksible_resource_get, &ngx_worksible_projects_resource, NULL },

    { NGX_HTTP_PATCH, ngx_string("/v1/projects/{id}"),
      ngx_string("projects:write"), "project", "prj", 1,
      { NULL },
      ngx_worksible_resource_update, &ngx_worksible_projects_resource, NULL },

    { NGX_HTTP_GET, ngx_string("/v1/contracts"),
      ngx_string("contracts:read"), "contract", "ctr", 0,
      { NGX_WORKSIBLE_API_LIST_ARGS, "status", "type", "project_id",
        "freelancer_id", NULL },
      ngx_worksible_resource_list, &ngx_worksible_contracts_resource, NULL },

    { NGX_HTTP_POST, ngx_string("/v1/contracts"),
      ngx_string("contracts:write"), "contract", "ctr", 1,
      { NULL },
      ngx_worksible_resource_create, &ngx_worksible_contracts_resource, NULL },

    { NGX_HTTP_GET, ngx_string("/v1/contracts/{id}"),
      ngx_string("contracts:read"), "contract", "ctr", 0,
      { NULL },
      ngx_worksible_resource_get, &ngx_worksible_contracts_resource, NULL },

    { NGX_HTTP_PATCH, ngx_string("/v1/contracts/{id}"),
      ngx_string("contracts:write"), "contract", "ctr", 1,
      { NULL },
      ngx_worksible_resource_update, &ngx_worksible_contracts_resource, NULL },

    { NGX_HTTP_GET, ngx_string("/v1/timesheets"),
      ngx_string("timesheets:read"), "timesheet", "ts", 0,
      { NGX_WORKSIBLE_API_LIST_ARGS, "status", "contract_id", NULL },
      ngx_worksible_resource_list, &ngx_worksible_timesheets_resource, NULL },

    { NGX_HTTP_POST, ngx_string("/v1/timesheets"),
      ngx_string("timesheets:write"), "timesheet", "ts", 1,
      { NULL },
      ngx_worksible_resource_create, &ngx_worksible_timesheets_resource, NULL },

    { NGX_HTTP_GET, ngx_string("/v1/timesheets/{id}"),
      ngx_string("timesheets:read"), "timesheet", "ts", 0,
      { NULL },
      ngx_worksible_resource_get, &ngx_worksible_timesheets_resource, NULL },

    { NGX_HTTP_PATCH, ngx_string("/v1/timesheets/{id}"),
      ngx_string("timesheets:write"), "timesheet", "ts", 1,
      { NULL },
      ngx_worksible_resource_update, &ngx_worksible_timesheets_resource, NULL },

    { NGX_HTTP_POST, ngx_string("/v1/timesheets/{id}/submit"),
      ngx_string("timesheets:write"), "timesheet", "ts", 0,
      { NULL },
      ngx_worksible_resource_action, &ngx_worksible_timesheets_resource, NULL },

    { NGX_HTTP_POST, ngx_string("/v1/timesheets/{id}/approve"),
      ngx_string("timesheets:write"), "timesheet", "ts", 0,
      { NULL },
      ngx_worksible_resource_action, &ngx_worksible_timesheets_resource, NULL },

    { NGX_HTTP_POST, ngx_string("/v1/timesheets/{id}/reject"),
      ngx_string("timesheets:write"), "timesheet", "ts", 0,
      { NULL },
      ngx_worksible_resource_action, &ngx_worksible_timesheets_resource, NULL },

    { NGX_HTTP_GET, ngx_string("/v1/invoices"),
      ngx_string("invoices:read"), "invoice", "inv", 0,
      { NGX_WORKSIBLE_API_LIST_ARGS, "status", "contract_id", NULL },
      ngx_worksible_resource_list, &ngx_worksible_invoices_resource, NULL },

    { NGX_HTTP_POST, ngx_string("/v1/invoices"),
      ngx_string("invoices:write"), "invoice", "inv", 1,
      { NULL },
      ngx_worksible_resource_create, &ngx_worksible_invoices_resource, NULL },

    { NGX_HTTP_GET, ngx_string("/v1/invoices/{id}"),
      ngx_string("invoices:read"), "invoice", "inv", 0,
      { NULL },
      ngx_worksible_resource_get, &ngx_worksible_invoices_resource, NULL },

    { NGX_HTTP_PATCH, ngx_string("/v1/invoices/{id}"),
      ngx_string("invoices:write"), "invoice", "inv", 1,
      { NULL },
      ngx_worksible_resource_update, &ngx_worksible_invoices_resource, NULL },

    { NGX_HTTP_POST, ngx_string("/v1/invoices/{id}/finalize"),
      ngx_string("invoices:write"), "invoice", "inv", 0,
      { NULL },
      ngx_worksible_resource_action, &ngx_worksible_invoices_resource, NULL },

    { NGX_HTTP_POST, ngx_string("/v1/invoices/{id}/void"),
      ngx_string("invoices:write"), "invoice", "inv", 0,
      { NULL },
      ngx_worksible_resource_action, &ngx_worksible_invoices_resource, NULL },

    { NGX_HTTP_GET, ngx_string("/v1/payments"),
      ngx_string("payments:read"), "payment", "pay", 0,
      { NGX_WORKSIBLE_API_LIST_ARGS, "invoice_id", NULL },
      ngx_worksible_resource_list, &ngx_worksible_payments_resource, NULL },

    { NGX_HTTP_POST, ngx_string("/v1/payments"),
      ngx_string("payments:write"), "payment", "pay", 1,
      { NULL },
      ngx_worksible_resource_create, &ngx_worksible_payments_resource, NULL },

    { NGX_HTTP_GET, ngx_string("/v1/payments/{id}"),
      ngx_string("payments:read"), "payment", "pay", 0,
      { NULL },
      ngx_worksible_resource_get, &ngx_worksible_payments_resource, NULL },

    { NGX_HTTP_GET, ngx_string("/v1/payouts"),
      ngx_string("payouts:read"), "payout", "po", 0,
      { NGX_WORKSIBLE_API_LIST_ARGS, "status", "freelancer_id", NULL },
      ngx_worksible_resource_list, &ngx_worksible_payouts_resource, NULL },

    { NGX_HTTP_POST, ngx_string("/v1/payouts"),
      ngx_string("payouts:write"), "payout", "po", 1,
      { NULL },
      ngx_worksible_resource_create, &ngx_worksible_payouts_resource, NULL },

    { NGX_HTTP_GET, ngx_string("/v1/payouts/{id}"),
      ngx_string("payouts:read"), "payout", "po", 0,
      { NULL },
      ngx_worksible_resource_get, &ngx_worksible_payouts_resource, NULL },

    { NGX_HTTP_GET, ngx_string("/v1/request_logs"),
      ngx_string("request_logs:read"), "request log", "req", 0,
      { NGX_WORKSIBLE_API_LIST_ARGS, "status", "method", "api_key_id", "path",
        NULL },
      ngx_worksible_resource_list, &ngx_worksible_request_logs_resource, NULL },

    { NGX_HTTP_GET, ngx_string("/v1/request_logs/stats"),
      ngx_string("request_logs:read"), "request log", NULL, 0,
      { "created_at[gte]", "created_at[lt]", "interval", "status", "method",
        "api_key_id", "path", NULL },
      ngx_worksible_request_logs_stats, &ngx_worksible_request_logs_resource,
      NULL },

    { NGX_HTTP_GET, ngx_string("/v1/api_keys"),
      ngx_string("api_keys:read"), "API key", "key", 0,
      { "limit", "starting_after", "ending_before", NULL },
      ngx_worksible_api_keys_list, NULL, NULL },

    { NGX_HTTP_POST, ngx_string("/v1/api_keys"),
      ngx_string("api_keys:write"), "API key", "key", 1,
      { NULL },
      ngx_worksible_api_keys_create, NULL, "key" },

    { NGX_HTTP_GET, ngx_string("/v1/api_keys/{id}"),
      ngx_string("api_keys:read"), "API key", "key", 0,
      { NULL },
      ngx_worksible_api_keys_get, NULL, NULL },

    { NGX_HTTP_POST, ngx_string("/v1/api_keys/{id}/revoke"),
      ngx_string("api_keys:write"), "API key", "key", 0,
      { NULL },
      ngx_worksible_api_keys_revoke, NULL, NULL },

    { 0, ngx_null_string, ngx_null_string, NULL, NULL, 0, { NULL }, NULL,
      NULL, NULL }
};


ngx_str_t *
ngx_worksible_api_scope(ngx_http_request_t *r)
{
    ngx_str_t               id;
    ngx_uint_t              allow;
    ngx_worksible_route_t  *route;

    route = ngx_worksible_api_route(r, &id, &allow);

    return (route != NULL) ? &route->scope : NULL;
}


ngx_int_t
ngx_worksible_api_handler(ngx_http_request_t *r)
{
    ngx_int_t                 rc;
    ngx_str_t                 id;
    ngx_uint_t                allow;
    ngx_worksible_request_t  *st;
    ngx_worksible_error_e     err;
    ngx_worksible_route_t    *route;
    ngx_worksible_refusal_t   ref;
    ngx_str_t                *args;

    if (r != r->main) {
        /* its answer would need the state of a client request of its own */
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "worksible_api does not answer subrequests (SSI, "
                      "mirror, auth_request)");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    st = ngx_worksible_request_find(r);

    if (st == NULL || !st->authenticated) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "worksible_api reached without worksible_auth");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    route = ngx_worksible_api_route(r, &id, &allow);

    if (route == NULL) {
        return allow ? ngx_worksible_api_not_allowed(r, allow)
                     : ngx_worksible_problem_send(r,
                                   NGX_WORKSIBLE_ROUTE_NOT_FOUND, NULL, NULL);
    }

    if (!ngx_worksible_scope_held(&st->identity.scopes, &route->scope)) {
        return ngx_worksible_insufficient_scope(r, &route->scope);
    }

    ngx_memzero(&ref, sizeof(ngx_worksible_refusal_t));

    args = ngx_pcalloc(r->pool, NGX_WORKSIBLE_API_MAX_ARGS * sizeof(ngx_str_t));
    if (args == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_worksible_api_args(r, route, args, &ref);

    if (rc != NGX_OK) {
        return rc == NGX_DECLINED ? ngx_worksible_api_refuse(r, &ref)
                                  : NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (!route->body) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_worksible_api_run(r, route, &id, args, NULL);
    }

    err = ngx_worksible_api_media_type(r);
    if (err != NGX_WORKSIBLE_OK) {
        return ngx_worksible_problem_send(r, err, NULL, NULL);
    }

    st->route = route;
    st->id = id;

    rc = ngx_worksible_request_body_tap(r, st, NULL,
                                        NGX_WORKSIBLE_API_BODY_MAX);
    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_read_client_request_body(r, ngx_worksible_api_body_ready);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


ngx_worksible_error_e
ngx_worksible_api_media_type(ngx_http_request_t *r)
{
    u_char     *p, *last;
    ngx_str_t  *type;

    static ngx_str_t  json = ngx_string("application/json");

    if (r->headers_in.content_length_n > NGX_WORKSIBLE_API_BODY_MAX) {
        return NGX_WORKSIBLE_BODY_TOO_LARGE;
    }

    if (r->headers_in.content_type == NULL) {
        /* no body at all is invalid_json, once read */
        return (r->headers_in.content_length_n <= 0
                && !r->headers_in.chunked)
               ? NGX_WORKSIBLE_OK : NGX_WORKSIBLE_UNSUPPORTED_MEDIA_TYPE;
    }

    type = &r->headers_in.content_type->value;

    if (type->len < json.len
        || ngx_strncasecmp(type->data, json.data, json.len) != 0
        || (type->len > json.len && type->data[json.len] != ';'
            && type->data[json.len] != ' ' && type->data[json.len] != '\t'))
    {
        return NGX_WORKSIBLE_UNSUPPORTED_MEDIA_TYPE;
    }

    /* a charset, if any, must be UTF-8 (RFC 8259, section 8.1) */

    p = ngx_strlcasestrn(type->data + json.len, type->data + type->len,
                         (u_char *) "charset=", sizeof("charset=") - 2);

    if (p != NULL) {
        p += sizeof("charset=") - 1;
        last = type->data + type->len;

        if (p < last && *p == '"') {
            p++;
        }

        if (last - p < 5 || ngx_strncasecmp(p, (u_char *) "utf-8", 5) != 0
            || (last - p > 5 && p[5] != '"' && p[5] != ';' && p[5] != ' '))
        {
            return NGX_WORKSIBLE_UNSUPPORTED_MEDIA_TYPE;
        }
    }

    return NGX_WORKSIBLE_OK;
}


/*
 * The body has been read: it must be one JSON object (RFC 8259), in UTF-8,
 * without duplicate members; then the endpoint runs. The request's count
 * taken by ngx_http_read_client_request_body() keeps it alive meanwhile.
 */

static void
ngx_worksible_api_body_ready(ngx_http_request_t *r)
{
    json_t                   *json;
    ngx_int_t                 rc;
    ngx_str_t                 body;
    ngx_uint_t                reals;
    ngx_worksible_request_t  *st;
    ngx_worksible_refusal_t   ref;

    static ngx_str_t  partial = ngx_string("The body was not received whole.");

    st = ngx_worksible_request_find(r);

    rc = ngx_worksible_api_body(r, st, &body);

    if (rc == NGX_ABORT) {
        ngx_http_finalize_request(r, ngx_worksible_problem_send(r,
                                  NGX_WORKSIBLE_INVALID_JSON, &partial, NULL));
        return;
    }

    if (rc != NGX_OK) {
        ngx_http_finalize_request(r, rc == NGX_DECLINED
                   ? ngx_worksible_problem_send(r,
                                   NGX_WORKSIBLE_BODY_TOO_LARGE, NULL, NULL)
                   : NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_memzero(&ref, sizeof(ngx_worksible_refusal_t));

    reals = 0;
    json = ngx_worksible_api_json(r->pool, &body, &reals, &ref);
    st->body_reals = reals;

    if (json == NULL) {
        ngx_http_finalize_request(r, ref.err == NGX_WORKSIBLE_INVALID_JSON
                                     ? ngx_worksible_api_refuse(r, &ref)
                                     : NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    rc = ngx_worksible_api_run(r, st->route, &st->id, NULL, json);

    json_decref(json);

    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }
}


json_t *
ngx_worksible_api_json(ngx_pool_t *pool, ngx_str_t *body, ngx_uint_t *reals,
    ngx_worksible_refusal_t *ref)
{
    json_t        *json;
    json_error_t   err;

    json = json_loadb((const char *) body->data, body->len,
                      JSON_REJECT_DUPLICATES, &err);

    if (json == NULL && ngx_strstr(err.text, "too big") != NULL) {
        /*
         * An integer past 64 bits: read it as a real, so that the field
         * check names the member that holds it (parameter_invalid).
         */
        json = json_loadb((const char *) body->data, body->len,
                          JSON_REJECT_DUPLICATES|JSON_DECODE_INT_AS_REAL,
                          &err);
        *reals = 1;
    }

    if (json != NULL && json_is_object(json)) {
        return json;
    }

    ref->err = NGX_WORKSIBLE_INVALID_JSON;

    if (json == NULL && body->len > 0) {
        ref->detail.data = ngx_pnalloc(pool, 128);
        if (ref->detail.data == NULL) {
            ref->err = NGX_WORKSIBLE_OK;
            return NULL;
        }

        ref->detail.len = ngx_sprintf(ref->detail.data,
                                      "The body is not valid JSON (line "
                                      "%d, column %d).", err.line,
                                      err.column)
                          - ref->detail.data;
    }

    json_decref(json);

    return NULL;
}


/*
 * The request body as one piece of memory, as the request body filter
 * copied it (ngx_worksible_request_body_tap); from the body's buffers only
 * when another module read the body before (its temporary file read then).
 * NGX_OK, NGX_DECLINED when over NGX_WORKSIBLE_API_BODY_MAX (a chunked body
 * has no Content-Length to check before), NGX_ABORT when nginx stopped
 * reading it part way (an error_page of its 413, 408 or 400 brought the
 * request here: what was read is not the body), NGX_ERROR.
 */

static ngx_int_t
ngx_worksible_api_body(ngx_http_request_t *r, ngx_worksible_request_t *st,
    ngx_str_t *body)
{
    u_char       *p;
    size_t        len;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    ngx_str_null(body);

    if (r->request_body != NULL && r->request_body->rest > 0) {
        return NGX_ABORT;
    }

    if (st->body_max != 0) {
        if (st->body_too_large) {
            return NGX_DECLINED;
        }

        if (st->body != NULL) {
            body->data = st->body->pos;
            body->len = st->body->last - st->body->pos;
        }

        return NGX_OK;
    }

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        len += ngx_buf_size(cl->buf);
    }

    if (len > NGX_WORKSIBLE_API_BODY_MAX) {
        return NGX_DECLINED;
    }

    body->data = ngx_pnalloc(r->pool, len + 1);
    if (body->data == NULL) {
        return NGX_ERROR;
    }

    p = body->data;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (b->in_file) {
            n = ngx_read_file(b->file, p, b->file_last - b->file_pos,
                              b->file_pos);
            if (n != b->file_last - b->file_pos) {
                return NGX_ERROR;
            }

            p += n;
            continue;
        }

        if (b->last != b->pos) {
            /* an empty buffer may have no memory: memcpy() takes no NULL */
            p = ngx_cpymem(p, b->pos, b->last - b->pos);
        }
    }

    body->len = p - body->data;

    return NGX_OK;
}


/*
 * Checks the path id, lets the endpoint fill its query, and starts it.
 * NGX_DONE while PostgreSQL answers (the request is finalized then), or
 * the rc of a response sent now.
 */

static ngx_int_t
ngx_worksible_api_run(ngx_http_request_t *r, ngx_worksible_route_t *route,
    ngx_str_t *id, ngx_str_t *args, json_t *body)
{
    return ngx_worksible_api_run_on(r, route, id, args, body, NULL);
}


/*
 * The same on pool; NULL: a read replica's if r may use one
 * (worksible_read_replica), else the primary's. A replica that refuses the
 * query at once (backoff, queue full) passes it to the primary.
 */

static ngx_int_t
ngx_worksible_api_run_on(ngx_http_request_t *r, ngx_worksible_route_t *route,
    ngx_str_t *id, ngx_str_t *args, json_t *body,
    ngx_worksible_pg_pool_t *pool)
{
    ngx_int_t                   rc;
    ngx_uint_t                  replica;
    ngx_worksible_request_t    *st;
    ngx_worksible_pg_op_t      *op;
    ngx_worksible_endpoint_t    ep;
    ngx_worksible_main_conf_t  *mcf;

    st = ngx_worksible_request_find(r);
    mcf = ngx_http_get_module_main_conf(r, ngx_worksible_module);

    ngx_memzero(&ep, sizeof(ngx_worksible_endpoint_t));

    if (route->id_prefix && id->len && !ngx_worksible_id_valid(id,
                                                           route->id_prefix))
    {
        return ngx_worksible_api_not_found(r, route);
    }

    /* a GET in a location with worksible_read_replica: maybe a replica */

    replica = 0;

    if (pool == NULL) {
        pool = ngx_worksible_replica_pool(r);
        replica = (pool != NULL);
    }

    op = ngx_worksible_pg_op_create(pool ? pool : mcf->pg_pool);
    if (op == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_worksible_pg_op_param(op, &st->identity.company_id) != NGX_OK) {
        ngx_worksible_pg_op_free(op);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ep.route = route;
    ep.id = *id;
    ep.args = args;
    ep.body = body;
    ep.reals = st->body_reals;
    ep.op = op;

    rc = route->endpoint(r, &ep);

    if (rc != NGX_OK) {
        ngx_worksible_pg_op_free(op);
        return rc == NGX_DECLINED ? ngx_worksible_api_refuse(r, &ep.ref)
                                  : NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_worksible_idempotency_wrap(r, op) != NGX_OK) {
        ngx_worksible_pg_op_free(op);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    st->route = route;

    rc = ngx_worksible_pg_respond(r, op, ngx_worksible_api_respond);

    if (rc == NGX_DECLINED && replica) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "worksible read replica unavailable, request_id %*s: "
                      "reading from the primary",
                      (size_t) NGX_WORKSIBLE_REQUEST_ID_LEN, st->request_id);

        return ngx_worksible_api_run_on(r, route, id, args, body,
                                        mcf->pg_pool);
    }

    if (rc == NGX_DECLINED) {
        return ngx_worksible_api_unavailable(r);
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /*
     * Without a body, take a count like ngx_http_read_client_request_body()
     * does; with one, the count it took still holds the request.
     */

    if (body == NULL) {
        r->main->count++;
    }

    if (!r->discard_body) {
        r->read_event_handler = ngx_http_test_reading;
    }

    return NGX_DONE;
}


ngx_worksible_route_t *
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


ngx_int_t
ngx_worksible_api_args(ngx_http_request_t *r, ngx_worksible_route_t *route,
    ngx_str_t *args, ngx_worksible_refusal_t *ref)
{
    u_char      *p, *last, *end, *eq, *dst, *src;
    ngx_str_t    name, value;
    ngx_uint_t   i;

    if (r->args.len == 0) {
        /* no query: r->args.data is NULL */
        return NGX_OK;
    }

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
            if (name.len == 0) {
                /* "=x", "%": no name to give, the pair as it was sent */
                name.data = p;
                name.len = end - p;
            }

            ref->err = NGX_WORKSIBLE_PARAMETER_UNKNOWN;
            ref->param = name;
            ref->param.len = ngx_worksible_api_cut(&name, 64);
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


/*
 * 1 when op ran on a read replica and failed in a way the primary may not:
 * no connection, a timeout, or a "later or elsewhere" SQLSTATE (a query
 * cancelled by a conflict with recovery is 40001).
 */

static ngx_uint_t
ngx_worksible_api_replica_failed(ngx_http_request_t *r,
    ngx_worksible_pg_op_t *op)
{
    ngx_worksible_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_worksible_module);

    if (op->pool == mcf->pg_pool) {
        return 0;
    }

    return op->status != NGX_WORKSIBLE_PG_OK
           || (PQresultStatus(op->result) == PGRES_FATAL_ERROR
               && ngx_worksible_pg_transient(op->result));
}


/* op's read again, on the primary: NGX_DONE, or the answer sent now */

static ngx_int_t
ngx_worksible_api_primary(ngx_http_request_t *r, ngx_worksible_pg_op_t *op)
{
    ngx_str_t                   msg;
    ngx_worksible_pg_op_t      *copy;
    ngx_worksible_request_t    *st;
    ngx_worksible_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_worksible_module);
    st = ngx_worksible_request_find(r);

    msg = ngx_worksible_pg_message(op->result
                                   ? PQresultErrorMessage(op->result)
                                   : "no answer");
    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "worksible read replica failed, request_id %*s: %V: "
                  "reading from the primary",
                  (size_t) NGX_WORKSIBLE_REQUEST_ID_LEN, st->request_id,
                  &msg);

    copy = ngx_worksible_pg_op_clone(op, mcf->pg_pool);
    if (copy == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_worksible_api_again(r, copy, ngx_worksible_api_respond);
}


/*
 * A second query answers r, from the handler of the first one's answer:
 * NGX_DONE while PostgreSQL answers (the caller's finalize drops the count
 * the first query took), or the status of an answer to send now.
 */

static ngx_int_t
ngx_worksible_api_again(ngx_http_request_t *r, ngx_worksible_pg_op_t *op,
    ngx_worksible_respond_pt respond)
{
    ngx_int_t  rc;

    rc = ngx_worksible_pg_respond(r, op, respond);

    if (rc == NGX_DECLINED) {
        return ngx_worksible_api_unavailable(r);
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->main->count++;

    return NGX_DONE;
}


/*
 * The endpoint's query came back: one row, one JSON column (NULL: no such
 * object). SQLSTATE WS400 is a parameter the database found invalid (a
 * cursor not in the list, a time in the past), WS403 a feature the plan
 * lacks, WS4K3 a key more powerful than the calling key (or the calling
 * key revoked or expired meanwhile: 401); their DETAIL names the
 * parameter, their message is ours.
 */

static ngx_int_t
ngx_worksible_api_respond(ngx_http_request_t *r, ngx_worksible_pg_op_t *op)
{
    char                     *state, *param, *text;
    ngx_str_t                 msg, body;
    PGresult                 *res;
    ngx_worksible_request_t  *st;
    ngx_worksible_route_t    *route;
    ngx_worksible_refusal_t   ref;

    st = ngx_worksible_request_find(r);
    route = st->route;

    if (ngx_worksible_api_replica_failed(r, op)) {
        return ngx_worksible_api_primary(r, op);
    }

    if (op->status != NGX_WORKSIBLE_PG_OK) {
        return ngx_worksible_api_unavailable(r);
    }

    res = op->result;

    if (PQresultStatus(res) == PGRES_FATAL_ERROR
        && ngx_worksible_idempotency_recorded(res))
    {
        /* Redis forgot this key, PostgreSQL did not: replay its record */
        return ngx_worksible_api_recorded(r);
    }

    if (PQresultStatus(res) == PGRES_FATAL_ERROR
        && ngx_worksible_pg_transient(res))
    {
        /* a read-only server after a failover, a deadlock...: retry */
        msg = ngx_worksible_pg_message(PQresultErrorMessage(res));
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "worksible %s query, request_id %*s: %V (503)",
                      route->object, (size_t) NGX_WORKSIBLE_REQUEST_ID_LEN,
                      st->request_id, &msg);

        return ngx_worksible_api_unavailable(r);
    }

    if (PQresultStatus(res) == PGRES_FATAL_ERROR) {
        state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        param = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
        text = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

        if (state && (state[0] == '2') && (state[1] == '2' || state[1] == '3')
            && ngx_worksible_api_constraint(r, res, &ref) == NGX_OK)
        {
            /* a rule of the schema the C checks did not foresee */
            return ngx_worksible_api_refuse(r, &ref);
        }

        if (state && text && ngx_strcmp(state, "WS409") == 0) {
            /* a move the object's state forbids (API.md) */
            ngx_memzero(&ref, sizeof(ngx_worksible_refusal_t));

            ref.err = NGX_WORKSIBLE_STATE_CONFLICT;
            ref.detail.data = ngx_pnalloc(r->pool, ngx_strlen(text) + 2);

            if (ref.detail.data == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            ref.detail.len = ngx_sprintf(ref.detail.data, "%s.", text)
                             - ref.detail.data;

            return ngx_worksible_api_refuse(r, &ref);
        }

        if (state && param && text && ngx_strncmp(state, "WS4", 3) == 0) {
            ngx_memzero(&ref, sizeof(ngx_worksible_refusal_t));

            ref.err = (ngx_strcmp(state, "WS403") == 0)
                      ? NGX_WORKSIBLE_PLAN_NOT_ELIGIBLE
                      : (ngx_strcmp(state, "WS4K3") == 0)
                      ? NGX_WORKSIBLE_INSUFFICIENT_SCOPE
                      : NGX_WORKSIBLE_PARAMETER_INVALID;

            if (ref.err == NGX_WORKSIBLE_INSUFFICIENT_SCOPE
                && (ngx_strcmp(param, "revoked") == 0
                    || ngx_strcmp(param, "expired") == 0))
            {
                /* the calling key itself, revoked after a cache filled */
                return ngx_worksible_problem_send(r, (param[0] == 'r')
                                        ? NGX_WORKSIBLE_API_KEY_REVOKED
                                        : NGX_WORKSIBLE_API_KEY_EXPIRED,
                                        NULL, NULL);
            }

            ref.param.len = ngx_strlen(param);
            ref.param.data = (u_char *) param;
            ref.param.data = ngx_pstrdup(r->pool, &ref.param);

            ref.detail.data = ngx_pnalloc(r->pool, ngx_strlen(text) + 2);

            if (ref.param.data == NULL || ref.detail.data == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            ref.detail.len = ngx_sprintf(ref.detail.data, "%s.", text)
                             - ref.detail.data;

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
                      st->request_id, &msg);

        return ngx_worksible_problem_send(r, NGX_WORKSIBLE_INTERNAL_ERROR,
                                          NULL, NULL);
    }

    if (PQgetisnull(res, 0, 0)) {
        return ngx_worksible_api_not_found(r, route);
    }

    body.len = PQgetlength(res, 0, 0);
    body.data = (u_char *) PQgetvalue(res, 0, 0);

    return ngx_worksible_api_success(r, route, &body);
}


/* the object a query returned: 201 for a create, 200 otherwise */

static ngx_int_t
ngx_worksible_api_success(ngx_http_request_t *r, ngx_worksible_route_t *route,
    ngx_str_t *body)
{
    ngx_str_t                 out;
    ngx_worksible_request_t  *st;

    st = ngx_worksible_request_find(r);

    if (route->method == NGX_HTTP_POST && route->body) {
        return ngx_worksible_api_created(r, route, body, &st->token);
    }

    out.data = ngx_pstrdup(r->pool, body);
    out.len = body->len;

    if (out.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_worksible_json_send(r, NGX_HTTP_OK, out.data, out.len);
}


/*
 * The write of a reserved key conflicted with a record of the same key
 * (Redis lost it): read the record. NGX_DONE while PostgreSQL answers.
 */

static ngx_int_t
ngx_worksible_api_recorded(ngx_http_request_t *r)
{
    ngx_worksible_pg_op_t  *op;

    op = ngx_worksible_idempotency_find(r);
    if (op == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_worksible_api_again(r, op, ngx_worksible_api_replay);
}


/* the record came back: its replay, or 409, 422 (ngx_worksible_respond_pt) */

static ngx_int_t
ngx_worksible_api_replay(ngx_http_request_t *r, ngx_worksible_pg_op_t *op)
{
    ngx_int_t                 rc;
    ngx_str_t                 result;
    ngx_worksible_request_t  *st;
    ngx_worksible_error_e     err;

    st = ngx_worksible_request_find(r);

    if (op->status != NGX_WORKSIBLE_PG_OK) {
        return ngx_worksible_api_unavailable(r);
    }

    rc = ngx_worksible_idempotency_found(r, op->result, &result, &err);

    if (rc == NGX_OK) {
        /* the key this attempt made was rolled back: show none */
        st->token.len = 0;
        return ngx_worksible_api_success(r, st->route, &result);
    }

    if (rc == NGX_DECLINED) {
        if (err == NGX_WORKSIBLE_IDEMPOTENCY_REQUEST_IN_PROGRESS) {
            (void) ngx_worksible_retry_after(r, 1);
        }

        return ngx_worksible_problem_send(r, err, NULL, NULL);
    }

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "worksible idempotency record query failed");

    return NGX_HTTP_INTERNAL_SERVER_ERROR;
}


/*
 * A data exception or integrity violation (SQLSTATE classes 22 and 23)
 * that got past the checks: 400 parameter_invalid naming the column, from
 * the error's column or from a constraint named <table>_<column>_<kind>
 * (PostgreSQL's default names). Logged, as it means a check is missing.
 * NGX_DECLINED when no column can be named.
 */

static ngx_int_t
ngx_worksible_api_constraint(ngx_http_request_t *r, PGresult *res,
    ngx_worksible_refusal_t *ref)
{
    char                     *column, *constraint, *table, *end;
    size_t                    n;
    ngx_str_t                 msg;
    ngx_worksible_request_t  *st;

    column = PQresultErrorField(res, PG_DIAG_COLUMN_NAME);
    constraint = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
    table = PQresultErrorField(res, PG_DIAG_TABLE_NAME);

    ngx_memzero(ref, sizeof(ngx_worksible_refusal_t));

    if (column != NULL) {
        ref->param.data = (u_char *) column;
        ref->param.len = ngx_strlen(column);

    } else if (constraint != NULL && table != NULL
               && (n = ngx_strlen(table)) < ngx_strlen(constraint)
               && ngx_strncmp(constraint, table, n) == 0
               && constraint[n] == '_')
    {
        ref->param.data = (u_char *) constraint + n + 1;
        end = strrchr((char *) ref->param.data, '_');
        ref->param.len = end ? (size_t) (end - (char *) ref->param.data)
                             : ngx_strlen((char *) ref->param.data);

    } else {
        return NGX_DECLINED;
    }

    ref->param.data = ngx_pstrdup(r->pool, &ref->param);
    if (ref->param.data == NULL) {
        return NGX_ERROR;
    }

    ref->err = NGX_WORKSIBLE_PARAMETER_INVALID;
    ngx_str_set(&ref->detail, "The value breaks a rule of this field.");

    st = ngx_worksible_request_find(r);
    msg = ngx_worksible_pg_message(PQresultErrorMessage(res));

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "worksible: a body passed the checks but not the schema, "
                  "request_id %*s: %V", (size_t) NGX_WORKSIBLE_REQUEST_ID_LEN,
                  st->request_id, &msg);

    return NGX_OK;
}


/*
 * 201 Created with Location (RFC 9110, section 10.2.2) for the object in
 * body. A secret made for this response only (route->secret: the key of a
 * new API key) is added last and never stored: what an Idempotency-Key
 * keeps, and replays, has it null (API.md).
 */

static ngx_int_t
ngx_worksible_api_created(ngx_http_request_t *r, ngx_worksible_route_t *route,
    ngx_str_t *body, ngx_str_t *key)
{
    size_t                    len;
    json_t                   *o, *id;
    ngx_str_t                 location, out;
    ngx_worksible_request_t  *st;

    st = ngx_worksible_request_find(r);

    o = json_loadb((const char *) body->data, body->len, 0, NULL);
    id = json_object_get(o, "id");

    if (!json_is_string(id)) {
        json_decref(o);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    len = json_string_length(id);

    location.data = ngx_pnalloc(r->pool, route->pattern.len + 1 + len);
    if (location.data == NULL) {
        json_decref(o);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    location.len = ngx_sprintf(location.data, "%V/%*s", &route->pattern,
                               len, json_string_value(id))
                   - location.data;

    if (route->secret != NULL) {
        if (json_object_set_new(o, route->secret, json_null()) != 0
            || (st->idem != NULL
                && st->idem->state == NGX_WORKSIBLE_IDEM_RESERVED
                && ngx_worksible_api_dump(r, o, &st->idem->stored) != NGX_OK)
            || (key->len
                && json_object_set_new(o, route->secret,
                            json_stringn((char *) key->data, key->len)) != 0))
        {
            json_decref(o);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (ngx_worksible_api_dump(r, o, &out) != NGX_OK) {
        json_decref(o);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    json_decref(o);

    if (ngx_worksible_header_add(r, "Location", &location) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_worksible_json_send(r, NGX_HTTP_CREATED, out.data, out.len);
}


/* compact JSON of o in r's pool; jansson's copy is wiped (it may hold a key) */

static ngx_int_t
ngx_worksible_api_dump(ngx_http_request_t *r, json_t *o, ngx_str_t *out)
{
    char  *text;

    text = json_dumps(o, JSON_COMPACT);
    if (text == NULL) {
        return NGX_ERROR;
    }

    out->len = ngx_strlen(text);
    out->data = ngx_pnalloc(r->pool, out->len);

    if (out->data != NULL) {
        ngx_memcpy(out->data, text, out->len);
    }

    sodium_memzero(text, out->len);
    free(text);

    return out->data != NULL ? NGX_OK : NGX_ERROR;
}


ngx_int_t
ngx_worksible_api_not_found(ngx_http_request_t *r,
    ngx_worksible_route_t *route)
{
    ngx_str_t  detail;

    detail.data = ngx_pnalloc(r->pool, 64);
    if (detail.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    detail.len = ngx_snprintf(detail.data, 64, "No such %s.", route->object)
                 - detail.data;

    return ngx_worksible_problem_send(r, NGX_WORKSIBLE_RESOURCE_NOT_FOUND,
                                      &detail, NULL);
}


/* GET /v1/companies/me: worksible_company_me(company) */

static ngx_int_t
ngx_worksible_api_company_me(ngx_http_request_t *r,
    ngx_worksible_endpoint_t *ep)
{
    ep->op->name = "worksible_company_me";
    ep->op->sql = "SELECT worksible_company_me($1)";

    return NGX_OK;
}


ngx_int_t
ngx_worksible_api_list_args(ngx_worksible_endpoint_t *ep)
{
    ngx_int_t                 n;
    ngx_str_t                 limit, *args;
    ngx_uint_t                i;
    ngx_worksible_refusal_t  *ref;

    static ngx_str_t  names[] = {
        ngx_string("starting_after"), ngx_string("ending_before")
    };

    args = ep->args;
    ref = &ep->ref;
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
        if (args[i].data != NULL
            && !ngx_worksible_id_valid(&args[i], ep->route->id_prefix))
        {
            ref->param = names[i - 1];
            ngx_str_set(&ref->detail, "The cursor must be an id of an object "
                                      "of this list.");
            return NGX_DECLINED;
        }
    }

    ref->err = NGX_WORKSIBLE_OK;

    if (ngx_worksible_pg_op_param(ep->op, &limit) != NGX_OK
        || ngx_worksible_pg_op_param(ep->op, args[1].data ? &args[1] : NULL)
           != NGX_OK
        || ngx_worksible_pg_op_param(ep->op, args[2].data ? &args[2] : NULL)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_uint_t
ngx_worksible_api_rfc3339(ngx_pool_t *pool, ngx_str_t *s)
{
    long         usec;
    int64_t      sec;
    const char  *why;
    char         canon[NGX_WORKSIBLE_RFC3339_CANON];

    if (ngx_worksible_rfc3339_parse((const char *) s->data, s->len, canon,
                                    sizeof(canon), &sec, &usec, &why)
        != 0)
    {
        return 0;
    }

    s->len = ngx_strlen(canon);
    s->data = ngx_pnalloc(pool, s->len);

    if (s->data == NULL) {
        return 0;
    }

    ngx_memcpy(s->data, canon, s->len);

    return 1;
}


ngx_int_t
ngx_worksible_api_refusal(ngx_http_request_t *r,
    ngx_worksible_endpoint_t *ep, ngx_worksible_error_e err,
    const char *param, ngx_int_t index, const char *detail)
{
    size_t     len;
    ngx_str_t  s;

    s.data = (u_char *) param;
    s.len = ngx_strlen(param);
    len = ngx_worksible_api_cut(&s, 64);

    ep->ref.err = err;
    ep->ref.param.data = ngx_pnalloc(r->pool, len + NGX_INT_T_LEN + 2);

    if (ep->ref.param.data == NULL) {
        return NGX_ERROR;
    }

    ep->ref.param.len = (index >= 0)
                        ? ngx_sprintf(ep->ref.param.data, "%*s[%i]", len,
                                      param, index)
                          - ep->ref.param.data
                        : ngx_sprintf(ep->ref.param.data, "%*s", len, param)
                          - ep->ref.param.data;

    ep->ref.detail.data = (u_char *) detail;
    ep->ref.detail.len = ngx_strlen(detail);

    return NGX_DECLINED;
}


/* s's length cut to at most max bytes, never inside a UTF-8 character */

static size_t
ngx_worksible_api_cut(ngx_str_t *s, size_t max)
{
    size_t  len;

    if (s->len <= max) {
        return s->len;
    }

    for (len = max; len > 0 && (s->data[len] & 0xc0) == 0x80; len--) {
        /* void */
    }

    /* not UTF-8 at all (only continuation bytes): cut at max bytes */

    return len ? len : max;
}
