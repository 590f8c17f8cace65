/*
 * ngx_worksible_module: configuration and per-request state shared by the
 * module's files. One file per concern (DESIGN.md):
 *
 *   ngx_worksible_module.c   directives, configuration, phase registration
 *   ngx_worksible_pg.c       per-worker non-blocking libpq pool
 *   ngx_worksible_auth.c     access phase: API key, expiry, plan,
 *                            IP allowlist, scopes; last_used_at batches
 *   ngx_worksible_cache.c    shared-memory key cache
 *   ngx_worksible_redis.c    per-worker hiredis connection, breaker
 *   ngx_worksible_ratelimit.c  GCRA rate limits and their headers
 *   ngx_worksible_idempotency.c  Idempotency-Key: reserve, replay, capture
 *   ngx_worksible_api.c      content handler: routes, queries, bodies
 *   ngx_worksible_api_keys.c the /v1/api_keys endpoints
 *   ngx_worksible_resources.c  the other resources' generic endpoints
 *   ngx_worksible_problem.c  RFC 9457 responses, response headers filter
 *   ngx_worksible_deprecation.c  Deprecation, Sunset, 410 gone
 *   ngx_worksible_health.c   health of this worker's stores
 *   ngx_worksible_metrics.c  shared counters, Prometheus exposition
 *   ngx_worksible_reqlog.c   the request log, in batches
 *   ngx_worksible_key.c      key format and hashing (shared with the CLI)
 *   ngx_worksible_cidr.c     strict CIDR blocks (shared with the CLI)
 *   ngx_worksible_id.c       ULIDs and request ids
 */

#ifndef _NGX_WORKSIBLE_MODULE_H_INCLUDED_
#define _NGX_WORKSIBLE_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_worksible_cache.h"
#include "ngx_worksible_deprecation.h"
#include "ngx_worksible_idempotency.h"
#include "ngx_worksible_key.h"
#include "ngx_worksible_metrics.h"
#include "ngx_worksible_pg.h"
#include "ngx_worksible_ratelimit.h"
#include "ngx_worksible_redis.h"


#define NGX_WORKSIBLE_REQUEST_ID_LEN  (sizeof("req_") - 1 + 26)
#define NGX_WORKSIBLE_OBJECT_ID_MAX   (sizeof("key_") - 1 + 26)
#define NGX_WORKSIBLE_TOUCHED_MAX     1024


typedef struct {
    ngx_worksible_pg_conf_t   *pg;            /* NULL: no worksible_postgres */
    ngx_worksible_pg_pool_t   *pg_pool;       /* this worker's, or NULL */

    ngx_worksible_server_secret_t
                               secrets[NGX_WORKSIBLE_SERVER_SECRETS_MAX];
    ngx_uint_t                 nsecrets;      /* secrets[0]: the current */

    ngx_shm_zone_t            *key_cache;     /* NULL: no worksible_key_cache */

    ngx_shm_zone_t            *metrics_zone;
    ngx_worksible_metrics_t   *metrics;       /* in metrics_zone */

    /* this worker's request log batch */
    void                      *log_rows;      /* a json_t array */
    ngx_event_t                log_timer;
    ngx_uint_t                 log_inflight;  /* rows being sent */
    ngx_uint_t                 log_dropped;   /* since the last warning */
    time_t                     log_warned;

    ngx_worksible_redis_conf_t *redis_conf;   /* NULL: no worksible_redis */
    ngx_worksible_redis_t     *redis;         /* this worker's, or NULL */
    u_char                     ratelimit_sha[41];
    u_char                     idempotency_sha[41];
    time_t                     ratelimit_warned;

    /* this worker's keys used for the first time this minute */
    u_char                   (*touched)[NGX_WORKSIBLE_OBJECT_ID_MAX];
    ngx_uint_t                 ntouched;
    ngx_event_t                touch_timer;
} ngx_worksible_main_conf_t;


typedef struct {
    ngx_flag_t                 auth;          /* worksible_auth */
    ngx_flag_t                 api;           /* worksible_api */
    ngx_flag_t                 errors;        /* worksible_errors */
    ngx_flag_t                 rate_limit;    /* worksible_rate_limit */
    ngx_flag_t                 rate_limit_open;   /* fail=open */
    ngx_array_t               *scopes;        /* worksible_scope, ngx_str_t */
    ngx_worksible_deprecation_t *deprecation; /* worksible_deprecation */
    ngx_worksible_idempotency_conf_t  idempotency;
} ngx_worksible_loc_conf_t;


/* a content handler's answer to its query (ngx_worksible_pg_respond) */
typedef ngx_int_t (*ngx_worksible_respond_pt)(ngx_http_request_t *r,
    ngx_worksible_pg_op_t *op);


/* what the access phase learnt about the caller */
typedef struct {
    ngx_str_t                  api_key_id;    /* key_... */
    ngx_str_t                  company_id;    /* cmp_... */
    ngx_str_t                  plan;
    ngx_str_t                  scopes;        /* space-separated */
} ngx_worksible_identity_t;


typedef struct {
    u_char                     request_id[NGX_WORKSIBLE_REQUEST_ID_LEN];

    ngx_worksible_key_t        key;           /* points into the header */
    ngx_worksible_identity_t   identity;
    ngx_uint_t                 rate_limit;    /* the plan's q ... */
    ngx_uint_t                 rate_window;   /* ... per w seconds */
    ngx_worksible_ratelimit_t  rl;
    ngx_worksible_idempotency_t  idem;

    ngx_worksible_pg_op_t     *op;            /* in flight, or NULL */
    ngx_worksible_respond_pt   respond;       /* answers op's result */
    ngx_worksible_redis_op_t  *redis_op;      /* in flight, or NULL */
    ngx_http_cleanup_t        *cleanup;       /* detaches both */

    ngx_uint_t                 problem;       /* to send, or 0 */
    ngx_str_t                  scope;         /* insufficient_scope: needed */
    void                      *route;         /* the API endpoint */
    ngx_str_t                  id;            /* its {id} */
    ngx_str_t                  token;         /* a new key, for its response */
    ngx_str_t                  error_body;    /* replaces nginx's error page */

    unsigned                   key_done:1;    /* the key is checked */
    unsigned                   rl_done:1;     /* the limiter answered */
    unsigned                   redis_failed:1;
    unsigned                   auth_done:1;   /* the access phase decided */
    unsigned                   error_body_sent:1;
    unsigned                   authenticated:1;
    unsigned                   body_reals:1;  /* see the endpoint's reals */
} ngx_worksible_ctx_t;


/* the module's ctx of r, made on first use; NULL only when out of memory */
ngx_worksible_ctx_t *ngx_worksible_get_ctx(ngx_http_request_t *r);

/* makes sure r's cleanup will detach its store calls; NGX_ERROR: memory */
ngx_int_t ngx_worksible_cleanup_arm(ngx_http_request_t *r);

/*
 * Starts op for r (query and parameters set): detached by r's cleanup if r
 * goes away first, op->handler is called with op->data == r otherwise.
 * Returns NGX_OK, or NGX_DECLINED when PostgreSQL is unavailable now (op is
 * freed), or NGX_ERROR.
 */
ngx_int_t ngx_worksible_pg_run(ngx_http_request_t *r,
    ngx_worksible_pg_op_t *op);

/*
 * A store answered what r's access phase waited for: run r's phases
 * again from there, then the posted requests (DataDog/nginx-datadog#154).
 */
void ngx_worksible_access_resume(ngx_http_request_t *r);

/* after op->handler ran: the request no longer waits for op */
void ngx_worksible_pg_done(ngx_http_request_t *r);

/*
 * ngx_worksible_pg_run() for a content handler: when op answers, r is
 * finalized with respond(r, op) (and posted requests run). The caller
 * holds r's count meanwhile.
 */
ngx_int_t ngx_worksible_pg_respond(ngx_http_request_t *r,
    ngx_worksible_pg_op_t *op, ngx_worksible_respond_pt respond);


extern ngx_module_t  ngx_worksible_module;


#endif /* _NGX_WORKSIBLE_MODULE_H_INCLUDED_ */
