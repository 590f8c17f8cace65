/*
 * Fleet-wide rate limits: GCRA (the generic cell rate algorithm) per
 * company, decided by one atomic Lua script on Redis's clock (TIME), and
 * the headers of draft-ietf-httpapi-ratelimit-headers (drafts 10-11) and
 * GitHub's X-RateLimit-* on every response of a charged or limited request.
 */

#ifndef _NGX_WORKSIBLE_RATELIMIT_H_INCLUDED_
#define _NGX_WORKSIBLE_RATELIMIT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_worksible_request.h"


/* the limiter's answer for one client request */
struct ngx_worksible_ratelimit_s {
    ngx_uint_t                  limit;        /* q requests ... */
    ngx_uint_t                  window;       /* ... per w seconds */
    ngx_uint_t                  remaining;    /* r: requests allowed now */
    time_t                      t;            /* seconds: see the .c */
    time_t                      reset;        /* Unix seconds: all back */
    unsigned                    set:1;        /* headers to send */
    unsigned                    allowed:1;
    unsigned                    failed:1;     /* Redis could not answer */
    unsigned                    decided:1;    /* the step read the answer */
};


/* the script's SHA-1, hex, for EVALSHA (postconfiguration) */
void ngx_worksible_ratelimit_sha(u_char *hex);

/*
 * The access phase's RATE_LIMIT step (see ngx_worksible_request.h):
 * charges the company one request, at most once per client request, in
 * the first location with worksible_rate_limit on, for the plan in
 * st->identity. NGX_OK: decided (st->problem 429 rate_limited, or 503
 * service_unavailable when Redis cannot answer and fail=closed; with
 * fail=open the request passes without headers). NGX_AGAIN: Redis is
 * asked. NGX_ERROR: no memory.
 */
ngx_int_t ngx_worksible_ratelimit_charge(ngx_http_request_t *r,
    ngx_worksible_request_t *st);

/* adds the rate-limit headers of st->rl, if any, to r's response */
ngx_int_t ngx_worksible_ratelimit_headers(ngx_http_request_t *r,
    ngx_worksible_request_t *st);


#endif /* _NGX_WORKSIBLE_RATELIMIT_H_INCLUDED_ */
