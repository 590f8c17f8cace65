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


/* the limiter's answer for one request */
typedef struct {
    ngx_uint_t                  limit;        /* q requests ... */
    ngx_uint_t                  window;       /* ... per w seconds */
    ngx_uint_t                  remaining;    /* r: requests allowed now */
    time_t                      t;            /* seconds: see the .c */
    time_t                      reset;        /* Unix seconds: all back */
    unsigned                    set:1;        /* headers to send */
    unsigned                    allowed:1;
} ngx_worksible_ratelimit_t;


/* the script's SHA-1, hex, for EVALSHA (postconfiguration) */
void ngx_worksible_ratelimit_sha(u_char *hex);

/*
 * Charges r's company one request, for the plan's limit and window in the
 * request's ctx. NGX_AGAIN: asked Redis, the request resumes when it
 * answers (ctx->rl set, or the failure handled). NGX_OK: nothing to wait
 * for (Redis down and fail=open: no headers). NGX_DECLINED: Redis down and
 * fail=closed (the caller answers 503). NGX_ERROR.
 */
ngx_int_t ngx_worksible_ratelimit_start(ngx_http_request_t *r);

/* adds the rate-limit headers of ctx->rl, if any, to r's response */
ngx_int_t ngx_worksible_ratelimit_headers(ngx_http_request_t *r);


#endif /* _NGX_WORKSIBLE_RATELIMIT_H_INCLUDED_ */
