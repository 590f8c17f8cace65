/*
 * The access steps of worksible_auth: the Bearer API key (RFC 6750),
 * verified against PostgreSQL, its expiry, revocation, the company's plan,
 * the key's IP allowlist and the location's scopes.
 */

#ifndef _NGX_WORKSIBLE_AUTH_H_INCLUDED_
#define _NGX_WORKSIBLE_AUTH_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_worksible_module.h"


/*
 * The access phase's steps (ngx_worksible_request.h says what they return;
 * each sets st->problem on a refusal):
 *
 * KEY: "Authorization: Bearer <key>" (RFC 6750, section 2.1), the key's
 * record from the key cache or PostgreSQL (NGX_AGAIN meanwhile), its
 * secret (BLAKE2b under the server secret of its version), revocation and
 * expiry: 401 api_key_missing|invalid|revoked|expired, 503 when
 * PostgreSQL cannot answer, 429 rate_limited (Retry-After) instead of a
 * lookup when the client address failed too often (worksible_auth_failures;
 * a key in the key cache is checked whatever the address did). Once the secret matches, st->identity holds
 * the key's company, plan and scopes (refusals are logged with them). A key verified under an older server secret
 * is rehashed under the current one in the background.
 */
ngx_int_t ngx_worksible_auth_key(ngx_http_request_t *r,
    ngx_worksible_request_t *st);

/*
 * r's "Authorization: Bearer <token>" (r->headers_in.authorization, not
 * NULL): the scheme is case-insensitive and may be followed by more than
 * one space (RFC 9110, section 11.4; RFC 6750, section 2.1). NGX_OK with
 * key set (pointing into the header), or NGX_DECLINED.
 */
ngx_int_t ngx_worksible_auth_token(ngx_http_request_t *r,
    ngx_worksible_key_t *key);

/* PLAN: the company's plan includes API access, else 403 plan_not_eligible */
ngx_int_t ngx_worksible_auth_plan(ngx_http_request_t *r,
    ngx_worksible_request_t *st);

/*
 * ADDRESS: the client address (after realip) in the key's IP allowlist,
 * else 403 ip_not_allowed. Passed: st->authenticated is set and the key's
 * last_used_at recorded (in a batch, at most once a minute per server).
 */
ngx_int_t ngx_worksible_auth_address(ngx_http_request_t *r,
    ngx_worksible_request_t *st);

/* SCOPE: every worksible_scope of r's location, else 403 insufficient_scope */
ngx_int_t ngx_worksible_auth_scope(ngx_http_request_t *r,
    ngx_worksible_request_t *st);

/*
 * init_process: this worker's last_used_at batch and, in worker 0 with a
 * key cache, the LISTEN connection that drops revoked keys from the cache
 * at once (ttl the fallback while it is down). NGX_ERROR: no memory.
 */
ngx_int_t ngx_worksible_auth_init_process(ngx_cycle_t *cycle,
    ngx_worksible_main_conf_t *mcf);

/*
 * 1 when the space-separated scopes hold need, or, for "<resource>:read",
 * "<resource>:write" (write implies read, API.md).
 */
ngx_uint_t ngx_worksible_scope_held(ngx_str_t *scopes, ngx_str_t *need);


/*
 * Sends 403 insufficient_scope naming scope, with WWW-Authenticate:
 * Bearer error="insufficient_scope", scope="..." (RFC 6750, section 3.1).
 * Returns what ngx_http_output_filter() returned.
 */
ngx_int_t ngx_worksible_insufficient_scope(ngx_http_request_t *r,
    ngx_str_t *scope);

/*
 * Adds that WWW-Authenticate to r and sets *detail to the problem's
 * detail naming scope (r's pool). NGX_OK or NGX_ERROR (no memory).
 */
ngx_int_t ngx_worksible_scope_refusal(ngx_http_request_t *r,
    ngx_str_t *scope, ngx_str_t *detail);


#endif /* _NGX_WORKSIBLE_AUTH_H_INCLUDED_ */
