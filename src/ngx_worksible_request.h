/*
 * One client request's state (ngx_worksible_request_t) and the access
 * phase that fills it.
 *
 * The state is made once per client request, on the main request, the
 * first time the module needs it, as the data of a cleanup of the
 * request's pool. An internal redirect (try_files, index, error_page, a
 * named location, X-Accel-Redirect) wipes every module's ctx; the state
 * is then found again through that cleanup, the way ngx_http_realip_module
 * finds its own. It is released once, when the pool goes: its store calls
 * are detached and its timers stopped. Store callbacks and timers hold the
 * state, never the request alone.
 *
 * The access phase is one state machine over it, in this order:
 *
 *   KEY         the Bearer token and its record (key cache, else
 *               PostgreSQL, unless the client address failed too often:
 *               worksible_auth_failures): secret, revocation, expiry
 *   PLAN        the company's plan includes API access
 *   ADDRESS     the key's IP allowlist
 *   RATE_LIMIT  the company is charged one request (Redis)
 *   SCOPE       the location's worksible_scope
 *   DONE
 *
 * and, in the pre-content phase, after every other module's access check
 * (allow/deny, auth_request, satisfy), the Idempotency-Key reservation.
 *
 * Each step returns NGX_OK once it decided (passed, or st->problem set),
 * NGX_AGAIN after asking a store (the store's callback records the answer
 * in the state and calls ngx_worksible_request_resume(); the step runs
 * again and reads it), or NGX_ERROR.
 *
 * KEY, PLAN and ADDRESS run once per client request. After an internal
 * redirect to a location with worksible_auth, only that location's checks
 * run: its scope, and the rate limit or the reservation if no earlier
 * location took them (one charge and one reservation per client request).
 */

#ifndef _NGX_WORKSIBLE_REQUEST_H_INCLUDED_
#define _NGX_WORKSIBLE_REQUEST_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <sodium.h>

#include "ngx_worksible_cache.h"
#include "ngx_worksible_key.h"
#include "ngx_worksible_pg.h"
#include "ngx_worksible_problem.h"
#include "ngx_worksible_redis.h"


#define NGX_WORKSIBLE_REQUEST_ID_LEN  (sizeof("req_") - 1 + 26)


typedef struct ngx_worksible_request_s      ngx_worksible_request_t;
typedef struct ngx_worksible_ratelimit_s    ngx_worksible_ratelimit_t;
typedef struct ngx_worksible_idempotency_s  ngx_worksible_idempotency_t;


/* a content handler's answer to its query (ngx_worksible_pg_respond) */
typedef ngx_int_t (*ngx_worksible_respond_pt)(ngx_http_request_t *r,
    ngx_worksible_pg_op_t *op);


typedef enum {
    NGX_WORKSIBLE_STEP_KEY = 0,
    NGX_WORKSIBLE_STEP_PLAN,
    NGX_WORKSIBLE_STEP_ADDRESS,
    NGX_WORKSIBLE_STEP_RATE_LIMIT,
    NGX_WORKSIBLE_STEP_SCOPE,
    NGX_WORKSIBLE_STEP_DONE
} ngx_worksible_step_e;


/* what the access phase learnt about the caller, once the secret matched */
typedef struct {
    ngx_str_t                  api_key_id;    /* key_... */
    ngx_str_t                  company_id;    /* cmp_... */
    ngx_str_t                  plan;
    ngx_str_t                  scopes;        /* space-separated */
    ngx_uint_t                 rate_limit;    /* the plan's q requests ... */
    ngx_uint_t                 rate_window;   /* ... per w seconds */
} ngx_worksible_identity_t;


struct ngx_worksible_request_s {
    ngx_http_request_t        *r;             /* the main request */
    u_char                     request_id[NGX_WORKSIBLE_REQUEST_ID_LEN];
    ngx_str_t                  method;        /* of the request line */

    /* the access phase */
    ngx_worksible_step_e       step;
    ngx_worksible_error_e      problem;       /* the refusal, or 0 */
    ngx_worksible_key_t        key;           /* points into the header */
    ngx_worksible_key_record_t  *record;      /* the key's, once read */
    ngx_uint_t                 cache_generation;  /* before the lookup */
    ngx_worksible_identity_t   identity;
    ngx_str_t                  scope;         /* insufficient_scope: needed */
    time_t                     retry_after;   /* rate_limited: seconds */
    ngx_worksible_ratelimit_t *rl;            /* the limiter's answer */
    ngx_worksible_idempotency_t  *idem;       /* the reservation decided */

    /* store calls in flight: detached when the request goes */
    ngx_worksible_pg_op_t     *op;
    ngx_worksible_respond_pt   respond;       /* answers op's result */
    ngx_worksible_redis_op_t  *redis_op;
    ngx_array_t               *waiting;       /* subrequests they resume */
    void                     **refused_loc;   /* client request's loc_conf
                                                 when its auth_request was
                                                 refused */

    /* the API's content handler */
    void                      *route;         /* the endpoint */
    ngx_str_t                  id;            /* its {id} */
    ngx_str_t                  token;         /* a new key, for its response */

    ngx_str_t                  error_body;    /* replaces nginx's error page */
    void                      *cors;          /* worksible_cors where it ran */

    /* the request body, as the body filter passes it on */
    crypto_generichash_state  *body_hash;     /* the fingerprint's, or NULL */
    ngx_buf_t                 *body;          /* its copy, or NULL */
    size_t                     body_max;      /* the copy's bound, bytes */


    unsigned                   guarded:1;     /* a worksible_auth location */
    unsigned                   throttled:1;   /* too many failed keys */
    unsigned                   cached:1;      /* record from the key cache */
    unsigned                   looked_up:1;   /* PostgreSQL was asked */
    unsigned                   failure_counted:1; /* auth_failures, once */
    unsigned                   authenticated:1;
    unsigned                   redis_failed:1;    /* which store is down */
    unsigned                   cleanup_armed:1;
    unsigned                   error_body_sent:1;
    unsigned                   body_reals:1;  /* see the endpoint's reals */
    unsigned                   body_tapped:1;
    unsigned                   body_too_large:1;  /* past body_max */
};


/*
 * r's client request state, made on first use (a ULID request id, the
 * request line's method); NULL only when out of memory.
 */
ngx_worksible_request_t *ngx_worksible_request(ngx_http_request_t *r);

/* the state if r's client request has one (also after a redirect), or NULL */
ngx_worksible_request_t *ngx_worksible_request_find(ngx_http_request_t *r);

/*
 * The state of r if r is a main request that went through a location with
 * worksible_auth (for the filters and the log phase, whatever location
 * answers in the end), or NULL (also when out of memory).
 */
ngx_worksible_request_t *ngx_worksible_request_guarded(ngx_http_request_t *r);

/* the status sent, or to log (as ngx_http_log_module takes it) */
ngx_uint_t ngx_worksible_request_status(ngx_http_request_t *r);

/*
 * Makes the request body filter take the body's bytes as they arrive, before
 * nginx writes them to a temporary file, so that they are never read back
 * from it: hash (a BLAKE2b state that already holds what precedes the
 * body; NULL: none) is updated with them, and with copy_max > 0 they are
 * copied to st->body, st->body_too_large set past copy_max bytes. To call
 * before ngx_http_read_client_request_body(). NGX_OK; NGX_DECLINED when
 * another module began reading the body before and it was not taken so
 * (the caller reads r->request_body->bufs); NGX_ERROR (no memory).
 */
ngx_int_t ngx_worksible_request_body_tap(ngx_http_request_t *r,
    ngx_worksible_request_t *st, crypto_generichash_state *hash,
    size_t copy_max);

/* puts the request body filter of ngx_worksible_request_body_tap in place */
ngx_int_t ngx_worksible_request_body_filter_init(ngx_conf_t *cf);

/*
 * Makes sure the request's cleanup detaches st's store calls when the
 * client leaves (ngx_http_terminate_request runs it before the pool goes).
 * NGX_OK or NGX_ERROR (no memory).
 */
ngx_int_t ngx_worksible_request_arm(ngx_worksible_request_t *st);

/*
 * The NGX_HTTP_ACCESS_PHASE handler: the state machine above. NGX_DECLINED
 * where worksible_auth is off and once every check passed (identity in the
 * state; the other access modules still decide, under "satisfy any" too),
 * NGX_AGAIN while a store answers, NGX_DONE after sending a
 * refusal: 401 api_key_missing|invalid|expired|revoked with
 * WWW-Authenticate (RFC 6750, section 3), 403
 * plan_not_eligible|ip_not_allowed|insufficient_scope, 429 rate_limited
 * and 503 service_unavailable with Retry-After (RFC 9110, 10.2.3); 410
 * gone past a worksible_deprecation sunset.
 */
ngx_int_t ngx_worksible_access_handler(ngx_http_request_t *r);

/*
 * Adds to r the headers of st->problem, a refusal of the access phase:
 * WWW-Authenticate for 401 and insufficient_scope (RFC 6750, section 3),
 * Retry-After for 429 and 503 (RFC 9110, 10.2.3); sets *detail to the
 * problem's own detail, or an empty string for the generic one. Used for
 * the refusal itself and, when a subrequest was refused, for its client
 * request's error page. NGX_OK or NGX_ERROR (no memory).
 */
ngx_int_t ngx_worksible_refusal_headers(ngx_http_request_t *r,
    ngx_worksible_request_t *st, ngx_str_t *detail);

/*
 * The NGX_HTTP_PRECONTENT_PHASE handler: the Idempotency-Key reservation
 * (ngx_worksible_idempotency_reserve). NGX_DECLINED to go on (try_files
 * and mirror run after it), NGX_AGAIN/NGX_DONE while the body is read or
 * Redis answers or once a replay or refusal is sent. NGX_DECLINED for a
 * subrequest (checked by ngx_worksible_rewrite_handler).
 */
ngx_int_t ngx_worksible_precontent_handler(ngx_http_request_t *r);

/*
 * The NGX_HTTP_REWRITE_PHASE handler, ahead of the rewrite module's, run
 * in every location a request enters (rewrite ... last, try_files, named
 * locations included). nginx runs no access phase for a subrequest
 * (auth_request, SSI, mirror): one entering a worksible_auth location
 * runs the access handler's state machine here, on its main request's
 * state, before a "return" could answer. NGX_DECLINED for a main request
 * or once passed, NGX_DONE while a store answers (the subrequest is
 * resumed; others of the same request that arrive meanwhile wait too)
 * or once the refusal was sent (the subrequest's response: an
 * auth_request passes its 401 or 403 on and the client request's error
 * page becomes the same problem, see ngx_worksible_refusal_headers).
 */
ngx_int_t ngx_worksible_rewrite_handler(ngx_http_request_t *r);

/*
 * A store answered what st's phase handler waited for: st's request runs
 * its phases again from that handler, then the posted requests
 * (DataDog/nginx-datadog#154).
 */
void ngx_worksible_request_resume(ngx_worksible_request_t *st);

/*
 * Starts op for st's request (query and parameters set): detached if the
 * request goes first, op->handler is called with op->data == st
 * otherwise, and must clear st->op. Returns NGX_OK, or NGX_DECLINED when
 * PostgreSQL is unavailable now (op is freed), or NGX_ERROR.
 */
ngx_int_t ngx_worksible_pg_run(ngx_worksible_request_t *st,
    ngx_worksible_pg_op_t *op);

/*
 * ngx_worksible_pg_run() for a content handler: when op answers, r is
 * finalized with respond(r, op) (and posted requests run). The caller
 * holds r's count meanwhile. A subrequest (SSI, mirror) gets a state of
 * its own for its query.
 */
ngx_int_t ngx_worksible_pg_respond(ngx_http_request_t *r,
    ngx_worksible_pg_op_t *op, ngx_worksible_respond_pt respond);

/* $worksible_request_id, always found */
ngx_int_t ngx_worksible_request_id_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);

/*
 * $worksible_company_id, $worksible_api_key_id, $worksible_plan,
 * $worksible_scopes: data is the offset of an ngx_str_t in
 * ngx_worksible_identity_t; not found until the key passed.
 */
ngx_int_t ngx_worksible_identity_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


#endif /* _NGX_WORKSIBLE_REQUEST_H_INCLUDED_ */
