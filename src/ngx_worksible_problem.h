/*
 * RFC 9457 problem details (application/problem+json) with the error codes
 * of API.md, and the headers every response of ours carries.
 */

#ifndef _NGX_WORKSIBLE_PROBLEM_H_INCLUDED_
#define _NGX_WORKSIBLE_PROBLEM_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


typedef enum {
    NGX_WORKSIBLE_OK = 0,
    NGX_WORKSIBLE_INVALID_JSON,
    NGX_WORKSIBLE_PARAMETER_MISSING,
    NGX_WORKSIBLE_PARAMETER_INVALID,
    NGX_WORKSIBLE_PARAMETER_UNKNOWN,
    NGX_WORKSIBLE_IDEMPOTENCY_KEY_INVALID,
    NGX_WORKSIBLE_IDEMPOTENCY_KEY_MISSING,
    NGX_WORKSIBLE_API_KEY_MISSING,
    NGX_WORKSIBLE_API_KEY_INVALID,
    NGX_WORKSIBLE_API_KEY_EXPIRED,
    NGX_WORKSIBLE_API_KEY_REVOKED,
    NGX_WORKSIBLE_PLAN_NOT_ELIGIBLE,
    NGX_WORKSIBLE_INSUFFICIENT_SCOPE,
    NGX_WORKSIBLE_IP_NOT_ALLOWED,
    NGX_WORKSIBLE_RESOURCE_NOT_FOUND,
    NGX_WORKSIBLE_ROUTE_NOT_FOUND,
    NGX_WORKSIBLE_METHOD_NOT_ALLOWED,
    NGX_WORKSIBLE_BODY_TOO_LARGE,
    NGX_WORKSIBLE_UNSUPPORTED_MEDIA_TYPE,
    NGX_WORKSIBLE_IDEMPOTENCY_REQUEST_IN_PROGRESS,
    NGX_WORKSIBLE_IDEMPOTENCY_OUTCOME_UNKNOWN,
    NGX_WORKSIBLE_STATE_CONFLICT,
    NGX_WORKSIBLE_IDEMPOTENCY_KEY_REUSED,
    NGX_WORKSIBLE_RATE_LIMITED,
    NGX_WORKSIBLE_GONE,
    NGX_WORKSIBLE_INTERNAL_ERROR,
    NGX_WORKSIBLE_SERVICE_UNAVAILABLE
} ngx_worksible_error_e;


/*
 * Sends the problem for err (status, type, title, code from API.md) as the
 * whole response: detail (NULL: the code's default text) and param (NULL:
 * JSON null) must be UTF-8. Headers such as WWW-Authenticate, Allow or
 * Retry-After are added by the caller before. Returns what
 * ngx_http_output_filter() returned, for ngx_http_finalize_request().
 */
ngx_int_t ngx_worksible_problem_send(ngx_http_request_t *r,
    ngx_worksible_error_e err, ngx_str_t *detail, ngx_str_t *param);

/* sends status with a JSON body (UTF-8, already built); rc as above */
ngx_int_t ngx_worksible_json_send(ngx_http_request_t *r, ngx_uint_t status,
    u_char *body, size_t len);

/* sends status with body and the Content-Type already set, if any */
ngx_int_t ngx_worksible_body_send(ngx_http_request_t *r, ngx_uint_t status,
    u_char *body, size_t len);

/*
 * The first header called name (case-insensitive) in headers (a
 * headers_in or headers_out list), skipping cleared ones (hash 0), or
 * NULL; *count, unless NULL, gets how many there are.
 */
ngx_table_elt_t *ngx_worksible_header_find(ngx_list_t *headers,
    const char *name, ngx_uint_t *count);

/*
 * n in decimal at p, without ngx_sprintf()'s format parsing (the hot
 * path's headers and log rows); returns the end, at most NGX_INT64_LEN
 * bytes further
 */
u_char *ngx_worksible_decimal(u_char *p, uint64_t n);

/* adds a response header; name must be a literal */
ngx_int_t ngx_worksible_header_add(ngx_http_request_t *r, char *name,
    ngx_str_t *value);

/* "Retry-After: seconds" (RFC 9110, 10.2.3) */
ngx_int_t ngx_worksible_retry_after(ngx_http_request_t *r, time_t seconds);

/* registers the filter adding X-Request-Id and Cache-Control: no-store */
ngx_int_t ngx_worksible_headers_filter_init(ngx_conf_t *cf);


#endif /* _NGX_WORKSIBLE_PROBLEM_H_INCLUDED_ */
