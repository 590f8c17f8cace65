/*
 * Content handler of worksible_api: the routes of the REST API (API.md),
 * and what an endpoint needs to describe its query.
 */

#ifndef _NGX_WORKSIBLE_API_H_INCLUDED_
#define _NGX_WORKSIBLE_API_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>

#include "ngx_worksible_pg.h"
#include "ngx_worksible_problem.h"


#define NGX_WORKSIBLE_API_MAX_ARGS  4


typedef struct ngx_worksible_route_s     ngx_worksible_route_t;
typedef struct ngx_worksible_endpoint_s  ngx_worksible_endpoint_t;


/* a client error found before any query runs */
typedef struct {
    ngx_worksible_error_e       err;
    ngx_str_t                   param;        /* data NULL: JSON null */
    ngx_str_t                   detail;       /* len 0: the default */
} ngx_worksible_refusal_t;


/*
 * Fills ep->op (ep->op->sql, parameters after $1, the company id) from the
 * request; NGX_OK, NGX_DECLINED with ep->ref set, or NGX_ERROR.
 */
typedef ngx_int_t (*ngx_worksible_endpoint_pt)(ngx_http_request_t *r,
    ngx_worksible_endpoint_t *ep);


struct ngx_worksible_route_s {
    ngx_uint_t                  method;       /* NGX_HTTP_GET ... */
    ngx_str_t                   pattern;      /* "{id}" is one segment */
    ngx_str_t                   scope;        /* needed by the key */
    const char                 *object;       /* for "No such ..." */
    const char                 *id_prefix;    /* of {id} and cursors */
    ngx_uint_t                  body;         /* takes a JSON object */
    const char                 *params[NGX_WORKSIBLE_API_MAX_ARGS + 1];
    ngx_worksible_endpoint_pt   endpoint;
};


struct ngx_worksible_endpoint_s {
    ngx_worksible_route_t      *route;
    ngx_str_t                   id;           /* the path's {id} */
    ngx_str_t                  *args;         /* args[i] for params[i] */
    json_t                     *body;         /* NULL without one */
    ngx_worksible_pg_op_t      *op;
    ngx_worksible_refusal_t     ref;
};


/*
 * The location's content handler: routes r->uri (already normalized by
 * nginx) and the method to an endpoint, checks its scope, query and body,
 * and answers with the JSON that PostgreSQL builds. Errors are RFC 9457
 * problems: 400 invalid_json|parameter_missing|parameter_invalid|
 * parameter_unknown, 403 insufficient_scope (WWW-Authenticate, RFC 6750
 * section 3.1), 404 route_not_found|resource_not_found, 405
 * method_not_allowed (with Allow), 413 body_too_large, 415
 * unsupported_media_type, 500 internal_error, 503 service_unavailable
 * (with Retry-After).
 */
ngx_int_t ngx_worksible_api_handler(ngx_http_request_t *r);

/*
 * Checks args[0..2] as the list parameters of API.md (limit 1..100,
 * default 20; starting_after or ending_before, ids with the route's
 * prefix) and adds them to ep->op as the next three parameters.
 */
ngx_int_t ngx_worksible_api_list_args(ngx_worksible_endpoint_t *ep);

/* sends 404 resource_not_found, "No such <route->object>." */
ngx_int_t ngx_worksible_api_not_found(ngx_http_request_t *r,
    ngx_worksible_route_t *route);

/* the api_keys endpoints (ngx_worksible_api_keys.c) */
ngx_int_t ngx_worksible_api_keys_list(ngx_http_request_t *r,
    ngx_worksible_endpoint_t *ep);
ngx_int_t ngx_worksible_api_keys_get(ngx_http_request_t *r,
    ngx_worksible_endpoint_t *ep);
ngx_int_t ngx_worksible_api_keys_create(ngx_http_request_t *r,
    ngx_worksible_endpoint_t *ep);
ngx_int_t ngx_worksible_api_keys_revoke(ngx_http_request_t *r,
    ngx_worksible_endpoint_t *ep);


#endif /* _NGX_WORKSIBLE_API_H_INCLUDED_ */
