/*
 * Health for load balancers: whether this worker reaches its stores.
 */

#ifndef _NGX_WORKSIBLE_HEALTH_H_INCLUDED_
#define _NGX_WORKSIBLE_HEALTH_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/*
 * The worksible_health content handler: 200 when this worker can reach
 * PostgreSQL (a "SELECT 1" through its pool, within query_timeout) and
 * Redis (its connection is up: the last command or probe succeeded), else
 * 503; the body names each store's state:
 * {"status":"ok"|"unavailable","postgres":"up"|"down"|"not configured",
 *  "redis":"up"|"down"|"not configured"}.
 */
ngx_int_t ngx_worksible_health_handler(ngx_http_request_t *r);


#endif /* _NGX_WORKSIBLE_HEALTH_H_INCLUDED_ */
