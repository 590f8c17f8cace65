/*
 * RFC 9457 problem details and our response headers
 * (see ngx_worksible_problem.h).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>

#include "ngx_worksible_module.h"
#include "ngx_worksible_compat.h"
#include "ngx_worksible_deprecation.h"
#include "ngx_worksible_problem.h"


typedef struct {
    ngx_uint_t   status;
    const char  *code;
    const char  *title;
    const char  *detail;
} ngx_worksible_problem_t;


static ngx_int_t ngx_worksible_problem_body(ngx_http_request_t *r,
    ngx_worksible_problem_t *p, ngx_str_t *detail, ngx_str_t *param,
    ngx_str_t *body);
static ngx_int_t ngx_worksible_error_page(ngx_http_request_t *r,
    ngx_worksible_request_t *st);
static ngx_int_t ngx_worksible_refusal_page(ngx_http_request_t *r,
    ngx_worksible_request_t *st);
static ngx_int_t ngx_worksible_problem_page(ngx_http_request_t *r,
    ngx_worksible_request_t *st, ngx_worksible_problem_t *p,
    ngx_str_t *detail);
static u_char *ngx_worksible_request_id(ngx_http_request_t *r);
static json_t *ngx_worksible_json_string(ngx_str_t *s);
static ngx_int_t ngx_worksible_headers_filter(ngx_http_request_t *r);
static ngx_int_t ngx_worksible_error_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


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

    { NGX_HTTP_BAD_REQUEST, "idempotency_key_invalid",
      "Invalid Idempotency-Key",
      "An Idempotency-Key is 1 to 255 visible ASCII characters, bare or as "
      "a quoted string, sent once." },

    { NGX_HTTP_BAD_REQUEST, "idempotency_key_missing",
      "Idempotency-Key missing",
      "This endpoint needs an Idempotency-Key header on writes." },

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

    { NGX_HTTP_CONFLICT, "idempotency_request_in_progress",
      "Request in progress",
      "A request with this Idempotency-Key is still running: retry after "
      "the number of seconds in Retry-After." },

    { NGX_HTTP_CONFLICT, "idempotency_outcome_unknown", "Outcome unknown",
      "The first request with this Idempotency-Key reached the service, "
      "but its outcome was lost: it may or may not have taken effect. It "
      "is not run again with this key: check its effect before sending it "
      "with a new key." },

    { NGX_HTTP_CONFLICT, "state_conflict", "State conflict",
      "The object's current state does not allow this change." },

    { 422, "idempotency_key_reused", "Idempotency-Key reused",
      "This Idempotency-Key was used with another method, path, query or "
      "body." },

    { NGX_HTTP_TOO_MANY_REQUESTS, "rate_limited", "Rate limited",
      "Your company's plan allows no more requests now: retry after the "
      "number of seconds in Retry-After." },

    { 410, "gone", "Gone",
      "This endpoint was removed at its sunset." },

    { NGX_HTTP_INTERNAL_SERVER_ERROR, "internal_error", "Internal error",
      "Something went wrong on our side; it is logged with this "
      "request_id." },

    { NGX_HTTP_SERVICE_UNAVAILABLE, "service_unavailable",
      "Service unavailable",
      "The service is temporarily unavailable: retry after the number of "
      "seconds in Retry-After." }
};


/*
 * nginx's own error responses (worksible_errors), by status. The codes
 * beyond API.md's name what nginx refused before any endpoint ran.
 */

static ngx_worksible_problem_t  ngx_worksible_nginx_errors[] = {

    { NGX_HTTP_BAD_REQUEST, "invalid_request", "Invalid request",
      "The request is not valid HTTP (a malformed or duplicate header, "
      "an invalid path...)." },

    { NGX_HTTP_FORBIDDEN, "forbidden", "Forbidden",
      "Access to this path is denied." },

    { NGX_HTTP_NOT_FOUND, "route_not_found", "Route not found",
      "No endpoint has this path." },

    { NGX_HTTP_NOT_ALLOWED, "method_not_allowed", "Method not allowed",
      "This endpoint does not support the method." },

    { NGX_HTTP_REQUEST_TIME_OUT, "request_timeout", "Request timeout",
      "The request did not arrive in time." },

    { NGX_HTTP_REQUEST_ENTITY_TOO_LARGE, "body_too_large", "Body too large",
      "The body is larger than this server takes." },

    { NGX_HTTP_REQUEST_URI_TOO_LARGE, "uri_too_long", "URI too long",
      "The request URI is too long." },

    { NGX_HTTP_TOO_MANY_REQUESTS, "rate_limited", "Rate limited",
      "Too many requests: retry after the number of seconds in "
      "Retry-After." },

    { NGX_HTTP_INTERNAL_SERVER_ERROR, "internal_error", "Internal error",
      "Something went wrong on our side; it is logged with this "
      "request_id." },

    { NGX_HTTP_NOT_IMPLEMENTED, "not_implemented", "Not implemented",
      "The server does not support this request's method or transfer "
      "coding." },

    { NGX_HTTP_BAD_GATEWAY, "bad_gateway", "Bad gateway",
      "The service behind this endpoint did not answer properly." },

    { NGX_HTTP_SERVICE_UNAVAILABLE, "service_unavailable",
      "Service unavailable",
      "The service is temporarily unavailable: retry after the number of "
      "seconds in Retry-After." },

    { NGX_HTTP_GATEWAY_TIME_OUT, "gateway_timeout", "Gateway timeout",
      "The service behind this endpoint did not answer in time." },

    { NGX_HTTP_VERSION_NOT_SUPPORTED, "http_version_not_supported",
      "HTTP version not supported", "Use HTTP/1.0, HTTP/1.1 or HTTP/2." },

    { 0, "http_error", "HTTP error", "The request failed." }
};


ngx_int_t
ngx_worksible_problem_send(ngx_http_request_t *r, ngx_worksible_error_e err,
    ngx_str_t *detail, ngx_str_t *param)
{
    ngx_int_t                 rc;
    ngx_str_t                 body;
    ngx_worksible_problem_t  *p;

    p = &ngx_worksible_problems[err];

    /*
     * a final answer: no "100 Continue" asks the client for a body that
     * would be thrown away (RFC 9110, 10.1.1), as nginx's own errors do
     */

    r->expect_tested = 1;

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_worksible_problem_body(r, p, detail, param, &body) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_str_set(&r->headers_out.content_type, "application/problem+json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    return ngx_worksible_json_send(r, p->status, body.data, body.len);
}


/* the RFC 9457 JSON of p for r, in r's pool */

static ngx_int_t
ngx_worksible_problem_body(ngx_http_request_t *r, ngx_worksible_problem_t *p,
    ngx_str_t *detail, ngx_str_t *param, ngx_str_t *body)
{
    char    *text;
    u_char  *id;
    size_t   len;
    json_t  *o;
    u_char   type[128];

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

    body->len = ngx_strlen(text);
    body->data = ngx_pnalloc(r->pool, body->len);

    if (body->data != NULL) {
        ngx_memcpy(body->data, text, body->len);
    }

    free(text);

    return body->data ? NGX_OK : NGX_ERROR;
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
    if (r->headers_out.content_type.len == 0) {
        ngx_str_set(&r->headers_out.content_type,
                    "application/json; charset=utf-8");
        r->headers_out.content_type_len = sizeof("application/json") - 1;
    }

    return ngx_worksible_body_send(r, status, body, len);
}


ngx_int_t
ngx_worksible_body_send(ngx_http_request_t *r, ngx_uint_t status,
    u_char *body, size_t len)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    r->headers_out.status = status;
    r->headers_out.content_length_n = len;

    if (status == 422) {
        /* nginx 1.22 has no reason phrase for it (RFC 9110, 15.5.21) */
        ngx_str_set(&r->headers_out.status_line, "422 Unprocessable Content");
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


u_char *
ngx_worksible_decimal(u_char *p, uint64_t n)
{
    u_char   *q;
    u_char    tmp[NGX_INT64_LEN];

    q = tmp + sizeof(tmp);

    do {
        *--q = (u_char) ('0' + n % 10);
        n /= 10;
    } while (n);

    return ngx_cpymem(p, q, tmp + sizeof(tmp) - q);
}


ngx_table_elt_t *
ngx_worksible_header_find(ngx_list_t *headers, const char *name,
    ngx_uint_t *count)
{
    size_t            len;
    ngx_uint_t        i, n;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *found;

    len = ngx_strlen(name);
    found = NULL;
    n = 0;
    part = &headers->part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].hash != 0 && h[i].key.len == len
            && ngx_strncasecmp(h[i].key.data, (u_char *) name, len) == 0)
        {
            if (found == NULL) {
                found = &h[i];
            }

            n++;
        }
    }

    if (count != NULL) {
        *count = n;
    }

    return found;
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
    ngx_worksible_request_t  *st;

    st = ngx_worksible_request(r);
    if (st == NULL) {
        return NULL;
    }

    return st->request_id;
}


ngx_int_t
ngx_worksible_headers_filter_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_worksible_headers_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_worksible_error_body_filter;

    return NGX_OK;
}


/*
 * Every response of a location with worksible_auth, worksible_api or
 * worksible_errors gets X-Request-Id (ours, always) and, unless a proxied
 * service chose its own, Cache-Control: no-store (API.md). With
 * worksible_errors, nginx's own error pages become problem details.
 */

static ngx_int_t
ngx_worksible_headers_filter(ngx_http_request_t *r)
{
    ngx_str_t                  v;
    ngx_worksible_request_t   *st;
    ngx_worksible_loc_conf_t  *lcf;

    if (r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_worksible_module);

    if (lcf->deprecation
        && ngx_worksible_deprecation_headers(r, lcf->deprecation) != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* a guarded request keeps its headers wherever a redirect took it */

    st = ngx_worksible_request_guarded(r);

    if (st == NULL) {
        if (!lcf->auth && !lcf->api && !lcf->errors) {
            return ngx_http_next_header_filter(r);
        }

        /* worksible_errors alone, or no memory */

        st = ngx_worksible_request(r);
        if (st == NULL) {
            return NGX_ERROR;
        }
    }

    v.data = st->request_id;
    v.len = NGX_WORKSIBLE_REQUEST_ID_LEN;

    if (ngx_worksible_header_add(r, "X-Request-Id", &v) != NGX_OK) {
        return NGX_ERROR;
    }

    /*
     * nginx's own error page, in the location whose auth_request we
     * refused: an error_page of the operator's that answered the status
     * took the request elsewhere (r->error_page alone says only that the
     * location has error_page directives, matching or not)
     */

    if (st->refused_loc != NULL && st->refused_loc == r->loc_conf
        && r->err_status != 0
        && (r->headers_out.status == NGX_HTTP_UNAUTHORIZED
            || r->headers_out.status == NGX_HTTP_FORBIDDEN
            || r->headers_out.status == NGX_HTTP_INTERNAL_SERVER_ERROR))
    {
        /*
         * auth_request answered our refusal with its 401 or 403, or with
         * 500 for a 429 or 503: the client gets the refusal itself
         */

        if (ngx_worksible_refusal_page(r, st) != NGX_OK) {
            return NGX_ERROR;
        }

    } else if (lcf->errors && r->err_status != 0 && !r->error_page
               && r->headers_out.status >= NGX_HTTP_BAD_REQUEST
               && ngx_worksible_error_page(r, st) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_worksible_ratelimit_headers(r, st) != NGX_OK) {
        return NGX_ERROR;
    }

    if (!ngx_worksible_has_cache_control(r)) {
        ngx_str_set(&v, "no-store");

        if (ngx_worksible_header_add(r, "Cache-Control", &v) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return ngx_http_next_header_filter(r);
}


/*
 * An error page of nginx (ngx_http_special_response_handler, r->err_status
 * set, no error_page of the operator's): its headers become those of a
 * problem, its HTML body is replaced by ngx_worksible_error_body_filter.
 */

static ngx_int_t
ngx_worksible_error_page(ngx_http_request_t *r, ngx_worksible_request_t *st)
{
    ngx_worksible_problem_t  *p, other;

    for (p = ngx_worksible_nginx_errors; p->status; p++) {
        if (p->status == r->headers_out.status) {
            break;
        }
    }

    if (p->status == 0) {
        other = *p;
        other.status = r->headers_out.status;
        p = &other;
    }

    if ((p->status == NGX_HTTP_SERVICE_UNAVAILABLE
         || p->status == NGX_HTTP_TOO_MANY_REQUESTS)
        && ngx_worksible_retry_after(r, 1) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_worksible_problem_page(r, st, p, NULL);
}


/*
 * The error page of a client request whose subrequest the access phase
 * refused (st->problem): that refusal, its status and its headers.
 */

static ngx_int_t
ngx_worksible_refusal_page(ngx_http_request_t *r, ngx_worksible_request_t *st)
{
    ngx_str_t                 detail;
    ngx_worksible_problem_t  *p;

    if (ngx_worksible_refusal_headers(r, st, &detail) != NGX_OK) {
        return NGX_ERROR;
    }

    p = &ngx_worksible_problems[st->problem];

    r->headers_out.status = p->status;
    r->err_status = p->status;

    return ngx_worksible_problem_page(r, st, p, detail.len ? &detail : NULL);
}


/* r's headers for the problem p, its body in st->error_body */

static ngx_int_t
ngx_worksible_problem_page(ngx_http_request_t *r, ngx_worksible_request_t *st,
    ngx_worksible_problem_t *p, ngx_str_t *detail)
{
    if (ngx_worksible_problem_body(r, p, detail, NULL, &st->error_body)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_str_set(&r->headers_out.content_type, "application/problem+json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.content_length_n = st->error_body.len;

    if (r->headers_out.content_length) {
        r->headers_out.content_length->hash = 0;
        r->headers_out.content_length = NULL;
    }

    ngx_http_clear_accept_ranges(r);
    ngx_http_clear_last_modified(r);
    ngx_http_clear_etag(r);

    return NGX_OK;
}


/*
 * Sends the problem instead of nginx's HTML error page, once; later calls
 * (the writer's, for a slow client) still reach the write filter, which
 * may hold part of it.
 */

static ngx_int_t
ngx_worksible_error_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_buf_t                *b;
    ngx_chain_t              *cl, out;
    ngx_worksible_request_t  *st;

    if (r != r->main) {
        return ngx_http_next_body_filter(r, in);
    }

    st = ngx_worksible_request_find(r);

    if (st == NULL || st->error_body.data == NULL) {
        return ngx_http_next_body_filter(r, in);
    }

    for (cl = in; cl; cl = cl->next) {
        cl->buf->pos = cl->buf->last;
        cl->buf->file_pos = cl->buf->file_last;
    }

    if (st->error_body_sent) {
        return ngx_http_next_body_filter(r, NULL);
    }

    st->error_body_sent = 1;

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = st->error_body.data;
    b->last = b->pos + st->error_body.len;
    b->memory = 1;
    b->last_buf = 1;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_next_body_filter(r, &out);
}
