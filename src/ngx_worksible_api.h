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


#define NGX_WORKSIBLE_API_MAX_ARGS  12

/* the largest request body of the API, bytes (413 body_too_large past it) */
#define NGX_WORKSIBLE_API_BODY_MAX  65536

/* args[] of a list: limit, the cursors, the created_at ranges, filters */
#define NGX_WORKSIBLE_API_LIST_ARGS                                           \
    "limit", "starting_after", "ending_before", "created_at[gte]",            \
    "created_at[gt]", "created_at[lte]", "created_at[lt]"
#define NGX_WORKSIBLE_API_FILTER_ARG  7


typedef struct ngx_worksible_route_s     ngx_worksible_route_t;
typedef struct ngx_worksible_endpoint_s  ngx_worksible_endpoint_t;


typedef enum {
    NGX_WORKSIBLE_FIELD_TEXT = 0,     /* a string of 1..max characters */
    NGX_WORKSIBLE_FIELD_ENUM,         /* one of values */
    NGX_WORKSIBLE_FIELD_MONEY,        /* integer minor units 0..2^53-1 */
    NGX_WORKSIBLE_FIELD_CURRENCY,     /* ISO 4217: [A-Z]{3} */
    NGX_WORKSIBLE_FIELD_COUNTRY,      /* ISO 3166-1 alpha-2: [A-Z]{2} */
    NGX_WORKSIBLE_FIELD_EMAIL,
    NGX_WORKSIBLE_FIELD_DATE,         /* RFC 3339 full-date, YYYY-MM-DD */
    NGX_WORKSIBLE_FIELD_ID,           /* values[0] "_" ULID */
    NGX_WORKSIBLE_FIELD_STATUS,       /* filter: 100..599, or a class 5xx */
    NGX_WORKSIBLE_FIELD_PATH,         /* filter: a path prefix, "/..." */
    NGX_WORKSIBLE_FIELD_COUNT,        /* an integer 1..max */
    NGX_WORKSIBLE_FIELD_AMOUNT,       /* signed minor units, |v| < 2^53 */
    NGX_WORKSIBLE_FIELD_ITEMS         /* an array of at most max objects */
} ngx_worksible_field_type_e;


typedef struct ngx_worksible_field_s  ngx_worksible_field_t;

/* a member of a resource's body (or of its items), or a filter of a list */
struct ngx_worksible_field_s {
    const char                 *name;
    ngx_worksible_field_type_e  type;
    ngx_uint_t                  required;     /* on create */
    ngx_uint_t                  nullable;     /* null clears it */
    size_t                      max;          /* TEXT: characters */
    const char                **values;       /* ENUM; ID: its prefix */
    ngx_worksible_field_t      *items;        /* ITEMS: their fields */
};


/* a resource of API.md served by the generic endpoints */
typedef struct {
    const char                 *object;       /* "freelancer" */
    const char                 *table;        /* "freelancers" */
    const char                 *url;          /* "/v1/freelancers" */
    ngx_worksible_field_t      *fields;       /* of its body */
    ngx_worksible_field_t      *filters;      /* of its list, in order */

    /*
     * Its list and retrieve: the statement's name (the SQL function's)
     * and SQL, static (migrations/0013_static_sql.sql), prepared once per
     * connection; NULL when the resource has no such endpoint.
     */
    const char                 *list_name;
    const char                 *list_sql;
    const char                 *get_name;
    const char                 *get_sql;
} ngx_worksible_resource_t;


/* a resource's list_name, list_sql, get_name, get_sql: its table's */
#define NGX_WORKSIBLE_RESOURCE_SQL(table)                                    \
    "worksible_list_" #table,                                                \
    "SELECT worksible_list_" #table "($1, $2, $3, $4, $5::jsonb)",           \
    "worksible_get_" #table,                                                 \
    "SELECT worksible_get_" #table "($1, $2)"


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
    ngx_worksible_resource_t   *resource;     /* generic endpoints */
    const char                 *secret;       /* a member shown once */
};


struct ngx_worksible_endpoint_s {
    ngx_worksible_route_t      *route;
    ngx_str_t                   id;           /* the path's {id} */
    ngx_str_t                  *args;         /* args[i] for params[i] */
    json_t                     *body;         /* NULL without one */
    ngx_uint_t                  reals;        /* body read with integers
                                                 as reals (one was too big
                                                 for jansson) */
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
 * The route of r's path (r->uri) and method, with its {id} segment in id.
 * NULL when none: allow then holds the methods the path takes (0: no such
 * path). HEAD is answered as GET.
 */
ngx_worksible_route_t *ngx_worksible_api_route(ngx_http_request_t *r,
    ngx_str_t *id, ngx_uint_t *allow);

/*
 * Splits r->args (RFC 3986 query, application/x-www-form-urlencoded pairs)
 * into the route's parameters: args[i] for params[i], percent-decoded,
 * data NULL when absent. NGX_OK; NGX_DECLINED with ref set (an unknown
 * name: parameter_unknown, a repeated one: parameter_invalid); NGX_ERROR.
 */
ngx_int_t ngx_worksible_api_args(ngx_http_request_t *r,
    ngx_worksible_route_t *route, ngx_str_t *args,
    ngx_worksible_refusal_t *ref);

/*
 * r's Content-Type and Content-Length for a body: "application/json"
 * (parameters allowed, RFC 9110 section 8.3; a charset must be UTF-8, RFC
 * 8259 section 8.1), at most 64 KiB. NGX_WORKSIBLE_OK, or the problem to
 * send: unsupported_media_type (415) or body_too_large (413).
 */
ngx_worksible_error_e ngx_worksible_api_media_type(ngx_http_request_t *r);

/*
 * body as one JSON object (RFC 8259, no duplicate members): the object
 * (json_decref() it), with *reals set to 1 when an integer too big for
 * jansson made every integer a real; or NULL with ref->err
 * invalid_json (and a detail with the line and column), or with ref->err
 * 0 when out of memory.
 */
json_t *ngx_worksible_api_json(ngx_pool_t *pool, ngx_str_t *body,
    ngx_uint_t *reals, ngx_worksible_refusal_t *ref);

/*
 * Checks args[0..2] as the list parameters of API.md (limit 1..100,
 * default 20; starting_after or ending_before, ids with the route's
 * prefix) and adds them to ep->op as the next three parameters.
 */
ngx_int_t ngx_worksible_api_list_args(ngx_worksible_endpoint_t *ep);

/*
 * Sets ep->ref: err naming param, or "param[index]" for index >= 0 (cut to
 * 64 bytes), with detail. Returns NGX_DECLINED, or NGX_ERROR.
 */
ngx_int_t ngx_worksible_api_refusal(ngx_http_request_t *r,
    ngx_worksible_endpoint_t *ep, ngx_worksible_error_e err,
    const char *param, ngx_int_t index, const char *detail);

/*
 * The scope r's endpoint needs (the route worksible_api will answer), or
 * NULL when no route matches: checked before an Idempotency-Key can
 * replay anything, so that a replay never skips the endpoint's scope.
 */
ngx_str_t *ngx_worksible_api_scope(ngx_http_request_t *r);

/*
 * 1 when s is an RFC 3339 date-time (ngx_worksible_rfc3339_parse, the
 * CLI's parser too), then s is its UTC form for PostgreSQL ("YYYY-MM-DD
 * HH:MM:SS.ffffff+00", from pool); 0 otherwise, or when out of memory.
 */
ngx_uint_t ngx_worksible_api_rfc3339(ngx_pool_t *pool, ngx_str_t *s);

/* sends 404 resource_not_found, "No such <route->object>." */
ngx_int_t ngx_worksible_api_not_found(ngx_http_request_t *r,
    ngx_worksible_route_t *route);

/* the generic endpoints of a resource (ngx_worksible_resources.c) */
ngx_int_t ngx_worksible_resource_list(ngx_http_request_t *r,
    ngx_worksible_endpoint_t *ep);
ngx_int_t ngx_worksible_resource_get(ngx_http_request_t *r,
    ngx_worksible_endpoint_t *ep);
ngx_int_t ngx_worksible_resource_create(ngx_http_request_t *r,
    ngx_worksible_endpoint_t *ep);
ngx_int_t ngx_worksible_resource_update(ngx_http_request_t *r,
    ngx_worksible_endpoint_t *ep);
ngx_int_t ngx_worksible_company_update(ngx_http_request_t *r,
    ngx_worksible_endpoint_t *ep);
ngx_int_t ngx_worksible_resource_action(ngx_http_request_t *r,
    ngx_worksible_endpoint_t *ep);
/*
 * GET /v1/request_logs/stats: created_at[gte|lt] (RFC 3339), interval
 * (1m, 1h, 1d) and the request log's filters checked here (400
 * parameter_invalid naming the parameter), then
 * worksible_request_log_stats(company, url, filters) answers
 * (0012_request_log_stats.sql).
 */
ngx_int_t ngx_worksible_request_logs_stats(ngx_http_request_t *r,
    ngx_worksible_endpoint_t *ep);

extern ngx_worksible_resource_t  ngx_worksible_company_resource;
extern ngx_worksible_resource_t  ngx_worksible_freelancers_resource;
extern ngx_worksible_resource_t  ngx_worksible_projects_resource;
extern ngx_worksible_resource_t  ngx_worksible_contracts_resource;
extern ngx_worksible_resource_t  ngx_worksible_timesheets_resource;
extern ngx_worksible_resource_t  ngx_worksible_invoices_resource;
extern ngx_worksible_resource_t  ngx_worksible_payments_resource;
extern ngx_worksible_resource_t  ngx_worksible_payouts_resource;
extern ngx_worksible_resource_t  ngx_worksible_request_logs_resource;

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
