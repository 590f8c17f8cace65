/*
 * Read replicas (worksible_postgres_replica, worksible_read_replica): GETs
 * of the API in a location that opts in run on a streaming replica whose
 * replay lag, measured by each worker from a timer, is under the
 * location's max_lag; everything else (writes, idempotency records, key
 * lookups, the request log) stays on worksible_postgres, the primary.
 */

#ifndef _NGX_WORKSIBLE_REPLICA_H_INCLUDED_
#define _NGX_WORKSIBLE_REPLICA_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_worksible_pg.h"


/*
 * worksible_postgres_replica CONNINFO [check=TIME] [pool=N] ...: one
 * replica (the directive may repeat, up to 8); the parameters of
 * worksible_postgres, and check= (default 1s), how often each worker
 * measures its lag. Context: http.
 */
char *ngx_worksible_replica_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/*
 * worksible_read_replica off | on [max_lag=TIME]: the location's GETs (and
 * HEADs) of the API may run on a replica at most max_lag (default 1s)
 * behind. Context: http, server, location.
 */
char *ngx_worksible_read_replica(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* each replica's pool and lag timer in this worker; NGX_OK or NGX_ERROR */
ngx_int_t ngx_worksible_replica_init_process(ngx_cycle_t *cycle);

/* closes the replicas' connections (exit_process) */
void ngx_worksible_replica_exit_process(ngx_cycle_t *cycle);

/*
 * The pool a read of r may use: a replica's (in turn among those that
 * qualify) when r's location opts in, r is a GET or HEAD and the replica's
 * last measured lag is within max_lag; NULL: the primary's.
 */
ngx_worksible_pg_pool_t *ngx_worksible_replica_pool(ngx_http_request_t *r);


#endif /* _NGX_WORKSIBLE_REPLICA_H_INCLUDED_ */
