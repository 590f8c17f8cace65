/*
 * ngx_worksible_module: the configuration shared by the module's files.
 * One file per concern (DESIGN.md):
 *
 *   ngx_worksible_module.c   directives, configuration, phase registration
 *   ngx_worksible_request.c  one client request's state, through internal
 *                            redirects; the access phase's state machine
 *   ngx_worksible_pg.c       per-worker non-blocking libpq pool
 *   ngx_worksible_replica.c  read replicas: their lag, which reads go there
 *   ngx_worksible_auth.c     the access steps of the key: secret, expiry,
 *                            plan, IP allowlist, scopes; last_used_at
 *   ngx_worksible_cache.c    shared-memory key cache
 *   ngx_worksible_throttle.c failed authentications per client address
 *   ngx_worksible_redis.c    per-worker hiredis connection, breaker
 *   ngx_worksible_redis_cluster.c  Redis Cluster: slot map, redirections
 *   ngx_worksible_redis_sentinel.c  Redis Sentinel: the primary, failover
 *   ngx_worksible_ratelimit.c  GCRA rate limits and their headers
 *   ngx_worksible_idempotency.c  Idempotency-Key: reserve, replay, capture
 *   ngx_worksible_api.c      content handler: routes, queries, bodies
 *   ngx_worksible_api_keys.c the /v1/api_keys endpoints
 *   ngx_worksible_resources.c  the other resources' generic endpoints
 *   ngx_worksible_problem.c  RFC 9457 responses, response headers filter
 *   ngx_worksible_cors.c     CORS: preflights and response headers
 *   ngx_worksible_deprecation.c  Deprecation, Sunset, 410 gone
 *   ngx_worksible_health.c   health of this worker's stores
 *   ngx_worksible_metrics.c  shared counters, Prometheus exposition
 *   ngx_worksible_reqlog.c   the request log, in batches
 *   ngx_worksible_key.c      key format, hashing, scope grammar (shared
 *                            with the CLI)
 *   ngx_worksible_cidr.c     strict CIDR blocks (shared with the CLI)
 *   ngx_worksible_time.c     RFC 3339 date-times (shared with the CLI)
 *   ngx_worksible_compat.h   the differences between nginx versions
 *   ngx_worksible_version.h  the module's version
 *   ngx_worksible_id.c       ULIDs and request ids
 */

#ifndef _NGX_WORKSIBLE_MODULE_H_INCLUDED_
#define _NGX_WORKSIBLE_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_worksible_cache.h"
#include "ngx_worksible_cors.h"
#include "ngx_worksible_deprecation.h"
#include "ngx_worksible_idempotency.h"
#include "ngx_worksible_key.h"
#include "ngx_worksible_metrics.h"
#include "ngx_worksible_pg.h"
#include "ngx_worksible_ratelimit.h"
#include "ngx_worksible_redis.h"
#include "ngx_worksible_replica.h"
#include "ngx_worksible_request.h"


#define NGX_WORKSIBLE_OBJECT_ID_MAX   (sizeof("key_") - 1 + 26)
#define NGX_WORKSIBLE_TOUCHED_MAX     1024


typedef struct {
    ngx_worksible_pg_conf_t   *pg;            /* NULL: no worksible_postgres */
    ngx_worksible_pg_pool_t   *pg_pool;       /* this worker's, or NULL */
    ngx_worksible_pg_pool_t   *pg_listener;   /* revocations, worker 0 */
    ngx_array_t               *replicas;      /* worksible_postgres_replica */
    ngx_uint_t                 replica_next;  /* the next replica to read */

    ngx_worksible_server_secret_t
                               secrets[NGX_WORKSIBLE_SERVER_SECRETS_MAX];
    ngx_uint_t                 nsecrets;      /* secrets[0]: the current */

    ngx_shm_zone_t            *key_cache;     /* NULL: no worksible_key_cache */
    ngx_shm_zone_t            *auth_failures; /* worksible_auth_failures */
    ngx_uint_t                 cors;          /* a worksible_cors anywhere */

    ngx_shm_zone_t            *metrics_zone;
    ngx_worksible_metrics_t   *metrics;       /* in metrics_zone */

    /* this worker's request log batch */
    u_char                    *log_buf;       /* rows: COPY text lines */
    size_t                     log_len;       /* bytes in log_buf */
    size_t                     log_size;      /* log_buf's size */
    ngx_uint_t                 log_nrows;     /* rows in log_buf */
    time_t                     log_date_sec;  /* log_date's second */
    u_char                     log_date[19];  /* YYYY-MM-DDTHH:MM:SS */
    ngx_event_t                log_timer;
    ngx_uint_t                 log_inflight;  /* rows being sent */
    ngx_uint_t                 log_dropped;   /* since the last warning */
    time_t                     log_warned;
    time_t                     log_prepared;  /* partitions: last asked */
    ngx_uint_t                 log_preparing; /* ... and not answered */

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
    ngx_worksible_cors_t      *cors;          /* worksible_cors, NULL: off */
    ngx_flag_t                 read_replica;  /* worksible_read_replica */
    ngx_msec_t                 replica_max_lag;
} ngx_worksible_loc_conf_t;


extern ngx_module_t  ngx_worksible_module;


/*
 * Reads a configuration's secret file at most size bytes into buf, at
 * configuration time (the workers never open it). name is made the file's
 * full path (ngx_conf_full_name), for the caller's messages. Returns the
 * bytes read (0 when reading failed: ngx_read_file logged why), or
 * NGX_ERROR when the file could not be opened (logged: the caller stops
 * there). The caller wipes buf.
 */
ssize_t ngx_worksible_conf_read_file(ngx_conf_t *cf, ngx_str_t *name,
    u_char *buf, size_t size);


#endif /* _NGX_WORKSIBLE_MODULE_H_INCLUDED_ */
