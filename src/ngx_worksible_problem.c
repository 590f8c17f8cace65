/*
 * RFC 9457 problem details and our response headers
 * (see ngx_worksible_problem.h).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>

#include "ngx_worksible_module.h"
#include "ngx_worksible_problem.h"


typedef struct {
    ngx_uint_t   status;
    const char  *code;
    const char  *title;
    const char  *detail;
} ngx_worksible_problem_t;


static u_char *ngx_worksible_request_id(ngx_http_request_t *r);
static json_t *ngx_worksible_json_string(ngx_str_t *s);
static ngx_int_t ngx_worksible_headers_filter(ngx_http_request_t *r);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;


/* indexed by ngx_worksible_error_e */

static ngx_worksible_problem_t  ngx_worksible_problems[] = {
    { 0, NULL, NULL, NULL },

    { NGX_HTTP_BAD_REQUEST, "invalid_json", "Invalid JSON",
      "The body must be a JSON object." },

    { NGX_HTTP_BAD_REQUEST, "parameter_missing", "Missing parameter",
      "A required parameter is missing." },

    { NGX_HTTP_BAD_REQUEST, "parameter_invalid", "Invalid parameter",
      "A parameter has an invalid value." },

    { NGX_HTTP_BAD_REQUEST, "parameter_unknown", "Unknown parameter",
      "This endpoint does not take this parameter." },

    { NGX_HTTP_UNAUTHORIZED, "api_key_missing", "API key missing",
      "No API key was sent: use \"Authorization: Bearer wsk_live_...\"." },

    { NGX_HTTP_UNAUTHORIZED, "api_key_invalid", "API key invalid",
      "The API key is malformed, unknown or wrong." },

    { NGX_HTTP_UNAUTHORIZED, "api_key_expired", "API key expired",
      "This API key has expired: create a new one." },

    { NGX_HTTP_UNAUTHORIZED, "api_key_revoked", "API key revoked",
      "This API key has been revoked: create a new one." },

    { NGX_HTTP_FORBIDDEN, "plan_not_eligible", "Plan not eligible",
      "Your plan does not include API access: upgrade in "
      "Settings \xE2\x86\x92 Billing." },

    { NGX_HTTP_FORBIDDEN, "insufficient_scope", "Insufficient scope",
      "The API key lacks the scope this endpoint needs." },

    { NGX_HTTP_FORBIDDEN, "ip_not_allowed", "IP address not allowed",
      "The API key's IP allowlist does not include this address." },

    { NGX_HTTP_NOT_FOUND, "resource_not_found", "Resource not found",
      "No such object." },

    { NGX_HTTP_NOT_FOUND, "route_not_found", "Route not found",
      "No endpoint has this path." },

    { NGX_HTTP_NOT_ALLOWED, "method_not_allowed", "Method not allowed",
      "This endpoint does not support the method: see the Allow header." },

    { NGX_HTTP_REQUEST_ENTITY_TOO_LARGE, "body_too_large", "Body too large",
      "The body is larger than this endpoint takes." },

    { NGX_HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type",
      "Unsupported media type",
      "Send the body as Content-Type: application/json." },

    { NGX_HTTP_INTERNAL_SERVER_ERROR, "internal_error", "Internal error",
      "Something went wrong on our side; it is logged with this "
      "request_id." },

    { NGX_HTTP_SERVICE_UNAVAILABLE, "service_unavailable",
      "Service unavailable",
      "The service is temporarily unavailable: retry after the number of "
      "seconds in Retry-After." }
};


ngx_int_t
ngx_worksible_problem_send(ngx_http_request_t *r, ngx_worksible_error_e err,
    ngx_str_t *detail, ngx_str_t *param)
{
    char                     *text;
    u_char                   *body, *id;
    size_t                    len;
    json_t                   *o;
    ngx_int_t                 rc;
    ngx_worksible_problem_t  *p;
    u_char                    type[128];

    p = &ngx_worksible_problems[err];

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    id = ngx_worksible_request_id(r);
    if (id == NULL) {
        return NGX_ERROR;
    }

    len = ngx_snprintf(type, sizeof(type),
                       "https://docs.worksible.com/errors/%s", p->code)
          - type;

    o = json_pack("{s:s%,s:s,s:i,s:o,s:s,s:o,s:s%}",
                  "type", type, len,
                  "title", p->title,
                  "status", (int) p->status,
                  "detail", detail ? ngx_worksible_json_string(detail)
                                   : json_string(p->detail),
                  "code", p->code,
                  "param", param ? ngx_worksible_json_string(param)
                                 : json_null(),
                  "request_id", id, (size_t) NGX_WORKSIBLE_REQUEST_ID_LEN);
    if (o == NULL) {
        return NGX_ERROR;
    }

    text = json_dumps(o, JSON_COMPACT);
    json_decref(o);

    if (text == NULL) {
        return NGX_ERROR;
    }

    len = ngx_strlen(text);

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        free(text);
        return NGX_ERROR;
    }

    ngx_memcpy(body, text, len);
    free(text);

    if (p->status >= NGX_HTTP_INTERNAL_SERVER_ERROR) {
        r->keepalive = 0;
    }

    r->headers_out.status = p->status;
    ngx_str_set(&r->headers_out.content_type, "application/problem+json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    return ngx_worksible_json_send(r, p->status, body, len);
}


/* a JSON string of s, "?" for bytes that are not UTF-8 */

static json_t *
ngx_worksible_json_string(ngx_str_t *s)
{
    json_t  *j;

    j = json_stringn((const char *) s->data, s->len);

    return j ? j : json_string("?");
}


ngx_int_t
ngx_worksible_json_send(ngx_http_request_t *r, ngx_uint_t status,
    u_char *body, size_t len)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    r->headers_out.status = status;
    r->headers_out.content_length_n = len;

    if (r->headers_out.content_type.len == 0) {
        ngx_str_set(&r->headers_out.content_type,
                    "application/json; charset=utf-8");
        r->headers_out.content_type_len = sizeof("application/json") - 1;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = body;
    b->last = body + len;
    b->memory = len ? 1 : 0;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


ngx_int_t
ngx_worksible_header_add(ngx_http_request_t *r, char *name, ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);
    h->value = *value;

    return NGX_OK;
}


ngx_int_t
ngx_worksible_retry_after(ngx_http_request_t *r, time_t seconds)
{
    ngx_str_t  v;

    v.data = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
    if (v.data == NULL) {
        return NGX_ERROR;
    }

    v.len = ngx_sprintf(v.data, "%T", seconds) - v.data;

    return ngx_worksible_header_add(r, "Retry-After", &v);
}


/* the request's "req_" ULID, made on first use; NULL: out of memory */

static u_char *
ngx_worksible_request_id(ngx_http_request_t *r)
{
    ngx_worksible_ctx_t  *ctx;

    ctx = ngx_worksible_get_ctx(r->main);
    if (ctx == NULL) {
        return NULL;
    }

    return ctx->request_id;
}


ngx_int_t
ngx_worksible_headers_filter_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_worksible_headers_filter;

    return NGX_OK;
}


/*
 * Every response of a location with worksible_auth or worksible_api gets
 * X-Request-Id (ours, always) and, unless a proxied service chose its own,
 * Cache-Control: no-store (API.md).
 */

static ngx_int_t
ngx_worksible_headers_filter(ngx_http_request_t *r)
{
    u_char                    *id;
    ngx_str_t                  v;
    ngx_worksible_loc_conf_t  *lcf;

    if (r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_worksible_module);

    if (!lcf->auth && !lcf->api) {
        return ngx_http_next_header_filter(r);
    }

    id = ngx_worksible_request_id(r);
    if (id == NULL) {
        return NGX_ERROR;
    }

    v.data = id;
    v.len = NGX_WORKSIBLE_REQUEST_ID_LEN;

    if (ngx_worksible_header_add(r, "X-Request-Id", &v) != NGX_OK) {
        return NGX_ERROR;
    }

    if (r->headers_out.cache_control.nelts == 0) {
        ngx_str_set(&v, "no-store");

        if (ngx_worksible_header_add(r, "Cache-Control", &v) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return ngx_http_next_header_filter(r);
}
