/*
 * CORS for browser clients (see ngx_worksible_cors.h): the preflight and
 * the response headers of the Fetch standard's CORS protocol
 * (https://fetch.spec.whatwg.org/#http-cors-protocol).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_worksible_module.h"
#include "ngx_worksible_cors.h"
#include "ngx_worksible_problem.h"


#define NGX_WORKSIBLE_CORS_MAX_AGE  600
#define NGX_WORKSIBLE_CORS_MAX_AGE_MAX  86400


static ngx_str_t *ngx_worksible_cors_origin(ngx_http_request_t *r,
    ngx_worksible_cors_t *cors);
static ngx_uint_t ngx_worksible_cors_origin_valid(ngx_str_t *s);
static void ngx_worksible_cors_strip(ngx_http_request_t *r);
static ngx_int_t ngx_worksible_cors_header_filter(ngx_http_request_t *r);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;


/* what a page may read of our responses besides the safelisted ones */
static ngx_str_t  ngx_worksible_cors_expose = ngx_string(
    "RateLimit, RateLimit-Policy, Retry-After, X-Request-Id, "
    "Idempotent-Replayed, X-RateLimit-Limit, X-RateLimit-Remaining, "
    "X-RateLimit-Reset, Deprecation, Sunset, Link, Location, "
    "WWW-Authenticate");

static ngx_str_t  ngx_worksible_cors_methods = ngx_string(
    "GET, HEAD, POST, PUT, PATCH, DELETE");

static ngx_str_t  ngx_worksible_cors_headers = ngx_string(
    "Authorization, Content-Type, Idempotency-Key");


char *
ngx_worksible_cors_conf(ngx_conf_t *cf, ngx_worksible_cors_t **cors)
{
    ngx_str_t             *value, *o, s;
    ngx_int_t              age;
    ngx_uint_t             i;
    ngx_worksible_cors_t  *c;

    if (*cors != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        *cors = NULL;
        return NGX_CONF_OK;
    }

    c = ngx_pcalloc(cf->pool, sizeof(ngx_worksible_cors_t));
    if (c == NULL) {
        return NGX_CONF_ERROR;
    }

    c->origins = ngx_array_create(cf->pool, cf->args->nelts,
                                  sizeof(ngx_str_t));
    if (c->origins == NULL) {
        return NGX_CONF_ERROR;
    }

    c->max_age = NGX_WORKSIBLE_CORS_MAX_AGE;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "max_age=", 8) == 0) {
            s.data = value[i].data + 8;
            s.len = value[i].len - 8;

            age = ngx_parse_time(&s, 1);

            if (age == NGX_ERROR || age > NGX_WORKSIBLE_CORS_MAX_AGE_MAX) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid worksible_cors \"%V\" (a time "
                                   "up to 24h)", &value[i]);
                return NGX_CONF_ERROR;
            }

            c->max_age = age;
            continue;
        }

        if (value[i].len == 1 && value[i].data[0] == '*') {
            c->any = 1;
            continue;
        }

        if (!ngx_worksible_cors_origin_valid(&value[i])) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid worksible_cors origin \"%V\" "
                               "(http://host[:port] or https://host[:port] "
                               "without a path, or *)", &value[i]);
            return NGX_CONF_ERROR;
        }

        o = ngx_array_push(c->origins);
        if (o == NULL) {
            return NGX_CONF_ERROR;
        }

        *o = value[i];
    }

    if (c->origins->nelts == 0 && !c->any) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "worksible_cors needs an origin, \"*\" or "
                           "\"off\"");
        return NGX_CONF_ERROR;
    }

    *cors = c;

    return NGX_CONF_OK;
}


/* 1 for "http(s)://" and a host[:port]: no path, query, user or space */

static ngx_uint_t
ngx_worksible_cors_origin_valid(ngx_str_t *s)
{
    u_char  *p, *last;

    if (s->len > 7 && ngx_strncasecmp(s->data, (u_char *) "http://", 7) == 0) {
        p = s->data + 7;

    } else if (s->len > 8
               && ngx_strncasecmp(s->data, (u_char *) "https://", 8) == 0)
    {
        p = s->data + 8;

    } else {
        return 0;
    }

    for (last = s->data + s->len; p < last; p++) {
        if (*p <= ' ' || *p >= 0x7f || *p == '/' || *p == '?' || *p == '#'
            || *p == '@' || *p == '\\' || *p == ',')
        {
            return 0;
        }
    }

    return 1;
}


ngx_int_t
ngx_worksible_cors_preflight(ngx_http_request_t *r,
    ngx_worksible_cors_t *cors)
{
    ngx_int_t   rc;
    ngx_str_t   v;
    ngx_uint_t  n;

    if (r->method != NGX_HTTP_OPTIONS
        || ngx_worksible_header_find(&r->headers_in.headers,
                                     "Access-Control-Request-Method", &n)
           == NULL
        || ngx_worksible_cors_origin(r, cors) == NULL)
    {
        return NGX_DECLINED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    v.data = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
    if (v.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v.len = ngx_sprintf(v.data, "%T", cors->max_age) - v.data;

    if (ngx_worksible_header_add(r, "Access-Control-Allow-Methods",
                                 &ngx_worksible_cors_methods) != NGX_OK
        || ngx_worksible_header_add(r, "Access-Control-Allow-Headers",
                                    &ngx_worksible_cors_headers) != NGX_OK
        || ngx_worksible_header_add(r, "Access-Control-Max-Age", &v)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.status = NGX_HTTP_NO_CONTENT;
    r->headers_out.content_length_n = 0;
    r->header_only = 1;

    return ngx_http_send_header(r);
}


/* the request's Origin when cors allows it (one Origin header), or NULL */

static ngx_str_t *
ngx_worksible_cors_origin(ngx_http_request_t *r, ngx_worksible_cors_t *cors)
{
    ngx_str_t        *o;
    ngx_uint_t        i, n;
    ngx_table_elt_t  *h;

    h = ngx_worksible_header_find(&r->headers_in.headers, "Origin", &n);

    if (h == NULL || n != 1 || h->value.len == 0) {
        return NULL;
    }

    if (cors->any) {
        return ngx_worksible_cors_origin_valid(&h->value) ? &h->value : NULL;
    }

    o = cors->origins->elts;

    for (i = 0; i < cors->origins->nelts; i++) {
        if (o[i].len == h->value.len
            && ngx_strncasecmp(o[i].data, h->value.data, o[i].len) == 0)
        {
            return &h->value;
        }
    }

    return NULL;
}


ngx_int_t
ngx_worksible_cors_filter_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_worksible_cors_header_filter;

    return NGX_OK;
}


static ngx_int_t
ngx_worksible_cors_header_filter(ngx_http_request_t *r)
{
    ngx_str_t                  *origin, v;
    ngx_worksible_cors_t       *cors;
    ngx_worksible_request_t    *st;
    ngx_worksible_loc_conf_t   *lcf;
    ngx_worksible_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_worksible_module);

    if (r != r->main || !mcf->cors) {
        /* no location has it: nothing to look up on any response */
        return ngx_http_next_header_filter(r);
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_worksible_module);
    cors = lcf->cors;

    if (cors == NULL) {
        /* a location without it, after a redirect from one with it */
        st = ngx_worksible_request_find(r);
        cors = (st != NULL) ? st->cors : NULL;
    }

    if (cors == NULL) {
        return ngx_http_next_header_filter(r);
    }

    if (r->upstream != NULL) {
        ngx_worksible_cors_strip(r);
    }

    /* the answer depends on Origin: for caches between us and the page */

    ngx_str_set(&v, "Origin");

    if (ngx_worksible_header_add(r, "Vary", &v) != NGX_OK) {
        return NGX_ERROR;
    }

    origin = ngx_worksible_cors_origin(r, cors);

    if (origin != NULL
        && (ngx_worksible_header_add(r, "Access-Control-Allow-Origin", origin)
            != NGX_OK
            || ngx_worksible_header_add(r, "Access-Control-Expose-Headers",
                                        &ngx_worksible_cors_expose)
               != NGX_OK))
    {
        return NGX_ERROR;
    }

    return ngx_http_next_header_filter(r);
}


/* a proxied service's Access-Control-* headers: ours decide */

static void
ngx_worksible_cors_strip(ngx_http_request_t *r)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_out.headers.part;
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

        if (h[i].key.len > 15
            && ngx_strncasecmp(h[i].key.data, (u_char *) "Access-Control-",
                               15) == 0)
        {
            h[i].hash = 0;
        }
    }
}
