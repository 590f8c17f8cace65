/*
 * Failed authentications per client address (worksible_auth_failures): a
 * leaky bucket per address in a shared memory zone, on the model of
 * ngx_http_limit_req_module, charged by each 401 of worksible_auth and
 * checked before a key is looked up in PostgreSQL. A key in the key cache
 * is checked whatever its address did: the plan's rate limit governs it.
 */

#ifndef _NGX_WORKSIBLE_THROTTLE_H_INCLUDED_
#define _NGX_WORKSIBLE_THROTTLE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/*
 * Parses "zone=NAME:SIZE [rate=N/m|N/s] [burst=N]" (the
 * worksible_auth_failures directive; rate defaults to 60/m, burst to 30)
 * and adds the zone. Returns NGX_CONF_OK or an error for nginx -t.
 */
char *ngx_worksible_throttle_conf(ngx_conf_t *cf, ngx_shm_zone_t **zone);

/*
 * NGX_OK when r's client address (after realip) may try a key, or
 * NGX_BUSY when it failed more than burst times beyond the rate: *retry
 * gets the seconds (at least 1) until one more try is allowed.
 */
ngx_int_t ngx_worksible_throttle_check(ngx_shm_zone_t *zone,
    ngx_http_request_t *r, time_t *retry);

/*
 * Charges r's client address one failed authentication (a 401 that cost a
 * lookup); the excess never grows past one failure beyond burst, so that
 * an address waits at most one failure's worth of the rate.
 */
void ngx_worksible_throttle_fail(ngx_shm_zone_t *zone, ngx_http_request_t *r);


#endif /* _NGX_WORKSIBLE_THROTTLE_H_INCLUDED_ */
