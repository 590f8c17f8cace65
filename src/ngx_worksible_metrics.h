/*
 * Counters of the module for all workers, in shared memory, served by
 * worksible_metrics in the Prometheus text exposition format (version
 * 0.0.4), or as JSON for "Accept: application/json".
 */

#ifndef _NGX_WORKSIBLE_METRICS_H_INCLUDED_
#define _NGX_WORKSIBLE_METRICS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/* one store's calls, counted by its client */
typedef struct {
    ngx_atomic_t                calls;
    ngx_atomic_t                errors;       /* failed, down, refused */
    ngx_atomic_t                timeouts;
    ngx_atomic_t                connections;  /* open, all workers */
} ngx_worksible_store_stats_t;


typedef enum {
    NGX_WORKSIBLE_OUTCOME_2XX = 0,
    NGX_WORKSIBLE_OUTCOME_3XX,
    NGX_WORKSIBLE_OUTCOME_401,
    NGX_WORKSIBLE_OUTCOME_403,
    NGX_WORKSIBLE_OUTCOME_429,
    NGX_WORKSIBLE_OUTCOME_4XX,                /* other 4xx */
    NGX_WORKSIBLE_OUTCOME_5XX,
    NGX_WORKSIBLE_OUTCOMES
} ngx_worksible_outcome_e;


typedef struct {
    ngx_atomic_t                requests[NGX_WORKSIBLE_OUTCOMES];
    ngx_atomic_t                key_cache_hits;
    ngx_atomic_t                key_cache_misses;
    ngx_worksible_store_stats_t postgres;
    ngx_worksible_store_stats_t redis;
    ngx_atomic_t                log_rows_written;
    ngx_atomic_t                log_rows_dropped;
} ngx_worksible_metrics_t;


/* the shared zone of the counters (preconfiguration); NGX_ERROR */
ngx_int_t ngx_worksible_metrics_zone(ngx_conf_t *cf, ngx_shm_zone_t **zone);

/* the counters, once the zone exists (init_process), or NULL */
ngx_worksible_metrics_t *ngx_worksible_metrics_get(ngx_shm_zone_t *zone);

/* NGX_HTTP_LOG_PHASE: counts r's outcome where worksible_auth is on */
ngx_int_t ngx_worksible_metrics_log_handler(ngx_http_request_t *r);

/* the worksible_metrics content handler */
ngx_int_t ngx_worksible_metrics_handler(ngx_http_request_t *r);


#endif /* _NGX_WORKSIBLE_METRICS_H_INCLUDED_ */
