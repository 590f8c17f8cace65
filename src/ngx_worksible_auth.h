/*
 * Access phase of worksible_auth: the Bearer API key (RFC 6750), verified
 * against PostgreSQL, its expiry, revocation and the company's plan.
 */

#ifndef _NGX_WORKSIBLE_AUTH_H_INCLUDED_
#define _NGX_WORKSIBLE_AUTH_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/*
 * The NGX_HTTP_ACCESS_PHASE handler. NGX_DECLINED where worksible_auth is
 * off, NGX_OK for a valid key (identity in the request's ctx), NGX_AGAIN
 * while PostgreSQL answers, NGX_DONE after sending a refusal: 401
 * api_key_missing|invalid|expired|revoked with WWW-Authenticate (RFC 6750,
 * section 3), 403 plan_not_eligible, 503 service_unavailable with
 * Retry-After.
 */
ngx_int_t ngx_worksible_auth_handler(ngx_http_request_t *r);


#endif /* _NGX_WORKSIBLE_AUTH_H_INCLUDED_ */
