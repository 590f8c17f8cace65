/*
 * One client request's state and the access phase's state machine
 * (see ngx_worksible_request.h).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_worksible_module.h"
#include "ngx_worksible_api.h"
#include "ngx_worksible_auth.h"
#include "ngx_worksible_id.h"
#include "ngx_worksible_problem.h"
#include "ngx_worksible_throttle.h"


static void ngx_worksible_request_release(void *data);
static ngx_int_t ngx_worksible_request_wake(ngx_worksible_request_t *st,
    ngx_uint_t from);
static ngx_int_t ngx_worksible_access_run(ngx_http_request_t *r,
    ngx_worksible_request_t *st);
static ngx_int_t ngx_worksible_access_refuse(ngx_http_request_t *r,
    ngx_worksible_request_t *st);
static void ngx_worksible_pg_responded(ngx_worksible_pg_op_t *op);
static ngx_int_t ngx_worksible_request_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);


static ngx_http_request_body_filter_pt  ngx_http_next_request_body_filter;


ngx_worksible_request_t *
ngx_worksible_request_find(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t       *cln;
    ngx_worksible_request_t  *st;

    r = r->main;

    st = ngx_http_get_module_ctx(r, ngx_worksible_module);

    if (st != NULL || !(r->internal || r->filter_finalize)) {
        return st;
    }

    /* an internal redirect wiped r->ctx; the pool still owns the state */

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_worksible_request_release) {
            st = cln->data;
            ngx_http_set_ctx(r, st, ngx_worksible_module);
            return st;
        }
    }

    return NULL;
}


ngx_worksible_request_t *
ngx_worksible_request(ngx_http_request_t *r)
{
    u_char                   *p;
    ngx_pool_cleanup_t       *cln;
    ngx_worksible_request_t  *st;

    st = ngx_worksible_request_find(r);
    if (st != NULL) {
        return st;
    }

    r = r->main;

    cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_worksible_request_t));
    if (cln == NULL) {
        return NULL;
    }

    st = cln->data;
    ngx_memzero(st, sizeof(ngx_worksible_request_t));

    st->r = r;

    p = ngx_cpymem(st->request_id, "req_", 4);
    ngx_worksible_ulid(p);

    /* X-Accel-Redirect and error_page to a URI turn the method into GET */

    st->method = r->method_name;

    /* none when nginx could not read it (a 400 of its own) */

    p = (r->request_line.len == 0) ? NULL
        : ngx_strlchr(r->request_line.data,
                      r->request_line.data + r->request_line.len, ' ');

    if (p != NULL) {
        st->method.data = r->request_line.data;
        st->method.len = p - r->request_line.data;
    }

    cln->handler = ngx_worksible_request_release;

    ngx_http_set_ctx(r, st, ngx_worksible_module);

    return st;
}


ngx_int_t
ngx_worksible_request_arm(ngx_worksible_request_t *st)
{
    ngx_http_cleanup_t  *cln;

    if (st->cleanup_armed) {
        return NGX_OK;
    }

    /* r->cleanup survives internal redirects, like the pool */

    cln = ngx_http_cleanup_add(st->r, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_worksible_request_release;
    cln->data = st;

    st->cleanup_armed = 1;

    return NGX_OK;
}


/*
 * The request ends (its cleanup when the client left, or its pool): store
 * calls must not call it back, timers must not fire. Runs at most twice.
 */

static void
ngx_worksible_request_release(void *data)
{
    ngx_worksible_request_t  *st = data;

    if (st->op != NULL) {
        ngx_worksible_pg_op_detach(st->op);
        st->op = NULL;
    }

    if (st->redis_op != NULL) {
        ngx_worksible_redis_detach(st->redis_op);
        st->redis_op = NULL;
    }

    if (st->idem != NULL) {
        ngx_worksible_idempotency_cleanup(st);
    }
}


ngx_int_t
ngx_worksible_access_handler(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_worksible_request_t   *st;
    ngx_worksible_loc_conf_t  *lcf;

    if (r != r->main) {
        return NGX_DECLINED;
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_worksible_module);

    if (lcf->cors) {
        /* a browser's preflight carries no key: not charged, not refused */
        rc = ngx_worksible_cors_preflight(r, lcf->cors);

        if (rc != NGX_DECLINED) {
            ngx_http_finalize_request(r, rc);
            return NGX_DONE;
        }

        /* the final response's, wherever error_page or try_files send it */

        st = ngx_worksible_request(r);
        if (st == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        st->cors = lcf->cors;
    }

    if (lcf->deprecation) {
        rc = ngx_worksible_deprecation_gone(r, lcf->deprecation);

        if (rc != NGX_DECLINED) {
            ngx_http_finalize_request(r, rc);
            return NGX_DONE;
        }
    }

    if (!lcf->auth) {
        return NGX_DECLINED;
    }

    st = ngx_worksible_request(r);
    if (st == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_worksible_access_run(r, st);
}


/*
 * The state machine for r, the main request or a subrequest in its
 * rewrite phase: NGX_DECLINED once passed, NGX_AGAIN while a store
 * answers, NGX_DONE once a refusal was sent, or an HTTP error code.
 */

static ngx_int_t
ngx_worksible_access_run(ngx_http_request_t *r, ngx_worksible_request_t *st)
{
    ngx_int_t  rc;

    if (st->op != NULL || st->redis_op != NULL) {
        return NGX_AGAIN;
    }

    if (st->step == NGX_WORKSIBLE_STEP_DONE) {
        /* a new location after an internal redirect: its own checks */
        st->step = NGX_WORKSIBLE_STEP_RATE_LIMIT;
    }

    st->guarded = 1;

    while (st->problem == NGX_WORKSIBLE_OK
           && st->step != NGX_WORKSIBLE_STEP_DONE)
    {
        switch (st->step) {

        case NGX_WORKSIBLE_STEP_KEY:
            rc = ngx_worksible_auth_key(r, st);
            break;

        case NGX_WORKSIBLE_STEP_PLAN:
            rc = ngx_worksible_auth_plan(r, st);
            break;

        case NGX_WORKSIBLE_STEP_ADDRESS:
            rc = ngx_worksible_auth_address(r, st);
            break;

        case NGX_WORKSIBLE_STEP_RATE_LIMIT:
            rc = ngx_worksible_ratelimit_charge(r, st);
            break;

        default: /* NGX_WORKSIBLE_STEP_SCOPE */
            rc = ngx_worksible_auth_scope(r, st);
            break;
        }

        if (rc == NGX_AGAIN) {
            /* like limit_req's delay: notice a client that leaves */
            r->read_event_handler = ngx_http_test_reading;
            r->write_event_handler = ngx_http_request_empty_handler;
            return NGX_AGAIN;
        }

        if (rc != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (st->problem == NGX_WORKSIBLE_OK) {
            st->step++;
        }
    }

    /*
     * passed: NGX_DECLINED, not NGX_OK, so that under "satisfy any" the
     * key is still required and one of the other access modules must
     * allow the request too
     */

    return st->problem ? ngx_worksible_access_refuse(r, st) : NGX_DECLINED;
}


/* sends st->problem with its headers and finalizes: NGX_DONE */

static ngx_int_t
ngx_worksible_access_refuse(ngx_http_request_t *r,
    ngx_worksible_request_t *st)
{
    ngx_int_t                   rc;
    ngx_str_t                   detail;
    ngx_uint_t                  answered;
    ngx_worksible_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_worksible_module);

    if (r == r->main && st->idem != NULL
        && st->idem->state == NGX_WORKSIBLE_IDEM_RESERVED)
    {
        /*
         * refused in a later location: nothing ran, keep nothing (a
         * mirror or SSI include refused does not stop its request, whose
         * answer is still kept)
         */
        st->idem->release = 1;
    }

    if (st->problem >= NGX_WORKSIBLE_API_KEY_MISSING
        && st->problem <= NGX_WORKSIBLE_API_KEY_REVOKED
        && mcf->auth_failures != NULL && st->looked_up
        && !st->failure_counted)
    {
        /* only what cost a lookup counts: a neighbour's bare requests
           cannot lock an address out; once a client request, however
           many of its subrequests or error pages are refused */
        st->failure_counted = 1;
        ngx_worksible_throttle_fail(mcf->auth_failures, r);
    }

    answered = 0;

    if (r != r->main) {
        if (r->parent == r->main && !r->background && !r->main->header_sent)
        {
            /*
             * an auth_request: the client request's error page in its
             * location becomes this problem too (not a mirror's, nor an
             * SSI include's, whose client request answers on its own)
             */
            st->refused_loc = r->main->loc_conf;

        } else {
            answered = 1;
        }
    }

    rc = ngx_worksible_refusal_headers(r, st, &detail);

    if (rc == NGX_OK) {
        rc = ngx_worksible_problem_send(r, st->problem,
                                        detail.len ? &detail : NULL, NULL);
    }

    if (answered && st->problem == NGX_WORKSIBLE_INSUFFICIENT_SCOPE) {
        /*
         * this location's scope only: the request's other subrequests
         * (SSI includes) are checked against their locations' own
         */
        st->problem = NGX_WORKSIBLE_OK;
    }

    ngx_http_finalize_request(r, rc);

    return NGX_DONE;
}


ngx_int_t
ngx_worksible_refusal_headers(ngx_http_request_t *r,
    ngx_worksible_request_t *st, ngx_str_t *detail)
{
    ngx_str_t                   v;
    ngx_worksible_main_conf_t  *mcf;

    ngx_str_null(detail);

    switch (st->problem) {

    case NGX_WORKSIBLE_API_KEY_MISSING:
        ngx_str_set(&v, "Bearer realm=\"worksible\"");
        return ngx_worksible_header_add(r, "WWW-Authenticate", &v);

    case NGX_WORKSIBLE_API_KEY_INVALID:
    case NGX_WORKSIBLE_API_KEY_EXPIRED:
    case NGX_WORKSIBLE_API_KEY_REVOKED:
        ngx_str_set(&v, "Bearer realm=\"worksible\", "
                        "error=\"invalid_token\"");
        return ngx_worksible_header_add(r, "WWW-Authenticate", &v);

    case NGX_WORKSIBLE_INSUFFICIENT_SCOPE:
        return ngx_worksible_scope_refusal(r, &st->scope, detail);

    case NGX_WORKSIBLE_IP_NOT_ALLOWED:
        detail->data = ngx_pnalloc(r->pool,
                                   80 + r->connection->addr_text.len);
        if (detail->data == NULL) {
            return NGX_ERROR;
        }

        detail->len = ngx_sprintf(detail->data, "The request came from %V, "
                                  "which this API key's IP allowlist does "
                                  "not include.", &r->connection->addr_text)
                      - detail->data;
        return NGX_OK;

    case NGX_WORKSIBLE_SERVICE_UNAVAILABLE:
        mcf = ngx_http_get_module_main_conf(r, ngx_worksible_module);

        return ngx_worksible_retry_after(r, st->redis_failed
                               ? ngx_worksible_redis_retry_after(mcf->redis)
                               : ngx_worksible_pg_retry_after(mcf->pg_pool));

    case NGX_WORKSIBLE_RATE_LIMITED:
        if (st->throttled) {
            ngx_str_set(detail, "Too many failed authentications came "
                        "from this address: retry after the number of "
                        "seconds in Retry-After.");
        }

        return ngx_worksible_retry_after(r, st->retry_after);

    default:
        return NGX_OK;
    }
}


/*
 * nginx runs no access phase for a subrequest (auth_request, SSI, mirror):
 * one that enters a worksible_auth location runs the state machine here,
 * on its main request's state. A main request that passed already is not
 * checked or charged again; the location's worksible_scope is.
 */

ngx_int_t
ngx_worksible_rewrite_handler(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_uint_t                 i;
    ngx_http_request_t       **w;
    ngx_worksible_request_t   *st;
    ngx_worksible_loc_conf_t  *lcf;

    if (r == r->main) {
        return NGX_DECLINED;
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_worksible_module);

    if (!lcf->auth) {
        return NGX_DECLINED;
    }

    st = ngx_worksible_request(r);
    if (st == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_worksible_access_run(r, st);

    if (rc != NGX_AGAIN) {
        return rc;
    }

    /*
     * resumed by ngx_worksible_request_resume(), with any other subrequest
     * (SSI includes run side by side) that arrives while the store answers
     */

    if (st->waiting == NULL) {
        st->waiting = ngx_array_create(r->main->pool, 2,
                                       sizeof(ngx_http_request_t *));
        if (st->waiting == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    w = st->waiting->elts;

    for (i = 0; i < st->waiting->nelts; i++) {
        if (w[i] == r) {
            return NGX_DONE;
        }
    }

    w = ngx_array_push(st->waiting);
    if (w == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    *w = r;

    return NGX_DONE;
}


ngx_int_t
ngx_worksible_precontent_handler(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_str_t                 *scope;
    ngx_worksible_request_t   *st;
    ngx_worksible_loc_conf_t  *lcf;

    if (r != r->main) {
        /* checked in the rewrite phase of its location */
        return NGX_DECLINED;
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_worksible_module);

    /*
     * one inherited by a location with worksible_auth off is inert there,
     * even when try_files or error_page brings a request a guarded
     * location authenticated
     */

    if (!lcf->auth
        || lcf->idempotency.mode == NGX_WORKSIBLE_IDEMPOTENCY_OFF)
    {
        return NGX_DECLINED;
    }

    /* worksible_idempotency needs worksible_auth: the access phase passed */

    st = ngx_worksible_request_find(r);

    if (st == NULL || !st->authenticated) {
        return NGX_DECLINED;
    }

    if (st->op != NULL || st->redis_op != NULL) {
        return NGX_AGAIN;
    }

    /* our API's endpoint scope, before a replay could answer in its place */

    scope = lcf->api ? ngx_worksible_api_scope(r) : NULL;

    if (scope != NULL
        && !ngx_worksible_scope_held(&st->identity.scopes, scope))
    {
        st->scope = *scope;
        st->problem = NGX_WORKSIBLE_INSUFFICIENT_SCOPE;
        return ngx_worksible_access_refuse(r, st);
    }

    rc = ngx_worksible_idempotency_reserve(r, st, &lcf->idempotency);

    return (rc == NGX_OK) ? NGX_DECLINED : rc;
}


void
ngx_worksible_request_resume(ngx_worksible_request_t *st)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r, **w;

    if (st->waiting != NULL && st->waiting->nelts) {

        /*
         * subrequests wait in their rewrite phase: the first goes on at
         * once, the others are posted (each finds the check done, or
         * waits again for the store call the first made)
         */

        w = st->waiting->elts;
        r = w[0];

        if (ngx_worksible_request_wake(st, 1) != NGX_OK) {
            /* no memory: the client request ends */
            ngx_http_finalize_request(r, NGX_ERROR);
            ngx_http_run_posted_requests(r->connection);
            return;
        }

    } else {
        r = st->r;
    }

    c = r->connection;

    ngx_http_set_log_request(c->log, r);

    r->read_event_handler = ngx_http_block_reading;
    r->write_event_handler = ngx_http_core_run_phases;

    ngx_http_core_run_phases(r);
    ngx_http_run_posted_requests(c);
}


/*
 * Posts the subrequests waiting in their rewrite phase from the from-th
 * on (each runs its phases again) and empties the list. NGX_OK, or
 * NGX_ERROR (no memory; the list is emptied all the same).
 */

static ngx_int_t
ngx_worksible_request_wake(ngx_worksible_request_t *st, ngx_uint_t from)
{
    ngx_int_t             rc;
    ngx_uint_t            i;
    ngx_http_request_t  **w;

    if (st->waiting == NULL) {
        return NGX_OK;
    }

    rc = NGX_OK;
    w = st->waiting->elts;

    for (i = from; i < st->waiting->nelts; i++) {
        w[i]->read_event_handler = ngx_http_block_reading;
        w[i]->write_event_handler = ngx_http_core_run_phases;

        if (ngx_http_post_request(w[i], NULL) != NGX_OK) {
            rc = NGX_ERROR;
            break;
        }
    }

    st->waiting->nelts = 0;

    return rc;
}


ngx_int_t
ngx_worksible_pg_run(ngx_worksible_request_t *st, ngx_worksible_pg_op_t *op)
{
    if (ngx_worksible_request_arm(st) != NGX_OK) {
        ngx_worksible_pg_op_free(op);
        return NGX_ERROR;
    }

    op->data = st;

    if (ngx_worksible_pg_op_start(op) != NGX_OK) {
        ngx_worksible_pg_op_free(op);
        return NGX_DECLINED;
    }

    st->op = op;

    return NGX_OK;
}


ngx_int_t
ngx_worksible_pg_respond(ngx_http_request_t *r, ngx_worksible_pg_op_t *op,
    ngx_worksible_respond_pt respond)
{
    ngx_worksible_request_t  *st;

    if (r == r->main) {
        st = ngx_worksible_request(r);

    } else {
        /* an SSI include or a mirror: its own query, its own answer */

        st = ngx_http_get_module_ctx(r, ngx_worksible_module);

        if (st == NULL) {
            st = ngx_pcalloc(r->pool, sizeof(ngx_worksible_request_t));
            if (st != NULL) {
                st->r = r;
                ngx_http_set_ctx(r, st, ngx_worksible_module);
            }
        }
    }

    if (st == NULL) {
        ngx_worksible_pg_op_free(op);
        return NGX_ERROR;
    }

    st->respond = respond;
    op->handler = ngx_worksible_pg_responded;

    return ngx_worksible_pg_run(st, op);
}


static void
ngx_worksible_pg_responded(ngx_worksible_pg_op_t *op)
{
    ngx_connection_t         *c;
    ngx_http_request_t       *r;
    ngx_worksible_request_t  *st;

    st = op->data;
    r = st->r;
    c = r->connection;

    ngx_http_set_log_request(c->log, r);

    st->op = NULL;

    /*
     * a mirror of our API's request that entered a worksible_auth location
     * waited for this query to end (ngx_worksible_rewrite_handler)
     */

    if (ngx_worksible_request_wake(st, 0) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_ERROR);
        ngx_http_run_posted_requests(c);
        return;
    }

    ngx_http_finalize_request(r, st->respond(r, op));
    ngx_http_run_posted_requests(c);
}


ngx_int_t
ngx_worksible_request_id_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_worksible_request_t  *st;

    st = ngx_worksible_request(r);
    if (st == NULL) {
        return NGX_ERROR;
    }

    v->data = st->request_id;
    v->len = NGX_WORKSIBLE_REQUEST_ID_LEN;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


ngx_int_t
ngx_worksible_identity_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t                *s;
    ngx_worksible_request_t  *st;

    st = ngx_worksible_request_find(r);

    if (st == NULL || !st->authenticated) {
        v->not_found = 1;
        return NGX_OK;
    }

    s = (ngx_str_t *) ((u_char *) &st->identity + data);

    v->data = s->data;
    v->len = s->len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


ngx_worksible_request_t *
ngx_worksible_request_guarded(ngx_http_request_t *r)
{
    ngx_worksible_request_t   *st;
    ngx_worksible_loc_conf_t  *lcf;

    if (r != r->main) {
        return NULL;
    }

    st = ngx_worksible_request_find(r);

    if (st != NULL && st->guarded) {
        return st;
    }

    /* nginx may answer before the access phase (400, 413, return) */

    lcf = ngx_http_get_module_loc_conf(r, ngx_worksible_module);

    return lcf->auth ? ngx_worksible_request(r) : NULL;
}


ngx_uint_t
ngx_worksible_request_status(ngx_http_request_t *r)
{
    return r->err_status ? r->err_status : r->headers_out.status;
}


ngx_int_t
ngx_worksible_request_body_tap(ngx_http_request_t *r,
    ngx_worksible_request_t *st, crypto_generichash_state *hash,
    size_t copy_max)
{
    if (r->main->request_body != NULL) {
        return (st->body_tapped && (hash == NULL || st->body_hash == hash)
                && (copy_max == 0 || st->body_max == copy_max))
               ? NGX_OK : NGX_DECLINED;
    }

    st->body_tapped = 1;

    if (hash != NULL) {
        st->body_hash = hash;
    }

    if (copy_max != 0) {
        st->body_max = copy_max;
        st->body_too_large = (r->main->headers_in.content_length_n
                              > (off_t) copy_max);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_worksible_request_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    size_t                    size, used, cap;
    ngx_buf_t                *b, *copy;
    ngx_chain_t              *cl;
    ngx_worksible_request_t  *st;

    st = ngx_worksible_request_find(r);

    if (st == NULL || !st->body_tapped) {
        return ngx_http_next_request_body_filter(r, in);
    }

    for (cl = in; cl; cl = cl->next) {
        b = cl->buf;
        size = b->last - b->pos;

        if (size == 0) {
            continue;
        }

        if (st->body_hash != NULL) {
            crypto_generichash_update(st->body_hash, b->pos, size);
        }

        if (st->body_max == 0 || st->body_too_large) {
            continue;
        }

        copy = st->body;
        used = copy ? (size_t) (copy->last - copy->pos) : 0;

        if (size > st->body_max - used) {
            st->body_too_large = 1;
            continue;
        }

        if (copy == NULL || size > (size_t) (copy->end - copy->last)) {
            /*
             * the whole body at once when its length is known, else
             * doubled as it comes (the old buffer freed when it was a
             * large allocation of the pool)
             */
            cap = r->main->headers_in.content_length_n > 0
                  ? (size_t) r->main->headers_in.content_length_n
                  : copy ? 2 * (size_t) (copy->end - copy->start) : 4096;
            cap = ngx_min(st->body_max, ngx_max(cap, used + size));

            copy = ngx_create_temp_buf(r->main->pool, cap);
            if (copy == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            if (st->body != NULL) {
                copy->last = ngx_cpymem(copy->pos, st->body->pos, used);
                ngx_pfree(r->main->pool, st->body->start);
            }

            st->body = copy;
        }

        copy->last = ngx_cpymem(copy->last, b->pos, size);
    }

    return ngx_http_next_request_body_filter(r, in);
}


ngx_int_t
ngx_worksible_request_body_filter_init(ngx_conf_t *cf)
{
    ngx_http_next_request_body_filter = ngx_http_top_request_body_filter;
    ngx_http_top_request_body_filter = ngx_worksible_request_body_filter;

    return NGX_OK;
}
