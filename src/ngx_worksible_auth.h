/*
 * Access phase of worksible_auth: the Bearer API key (RFC 6750), verified
 * against PostgreSQL, its expiry, revocation and the company's plan.
 */

#ifndef _NGX_WORKSIBLE_AUTH_H_INCLUDED_
#define _NGX_WORKSIBLE_AUTH_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_worksible_module.h"


/*
 * The NGX_HTTP_ACCESS_PHASE handler. NGX_DECLINED where worksible_auth is
 * off, NGX_OK for a valid key (identity in the request's ctx), NGX_AGAIN
 * while PostgreSQL answers, NGX_DONE after sending a refusal: 401
 * api_key_missing|invalid|expired|revoked with WWW-Authenticate (RFC 6750,
 * section 3), 403 plan_not_eligible|ip_not_allowed|insufficient_scope
 * (worksible_scope), 503 service_unavailable with Retry-After.
 */
ngx_int_t ngx_worksible_auth_handler(ngx_http_request_t *r);

/* this worker's last_used_at batch (init_process); NGX_ERROR: no memory */
ngx_int_t ngx_worksible_auth_init_process(ngx_cycle_t *cycle,
    ngx_worksible_main_conf_t *mcf);

/*
 * 1 when the space-separated scopes hold need, or, for "<resource>:read",
 * "<resource>:write" (write implies read, API.md).
 */
ngx_uint_t ngx_worksible_scope_held(ngx_str_t *scopes, ngx_str_t *need);

/* 1 when scope is "resource:read" or "resource:write", resource [a-z_] */
ngx_uint_t ngx_worksible_scope_valid(ngx_str_t *scope);

/*
 * Sends 403 insufficient_scope naming scope, with WWW-Authenticate:
 * Bearer error="insufficient_scope", scope="..." (RFC 6750, section 3.1).
 * Returns what ngx_http_output_filter() returned.
 */
ngx_int_t ngx_worksible_insufficient_scope(ngx_http_request_t *r,
    ngx_str_t *scope);


#endif /* _NGX_WORKSIBLE_AUTH_H_INCLUDED_ */
