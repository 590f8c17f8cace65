/*
 * Idempotent writes (API.md, Idempotency; the Idempotency-Key header of
 * draft-ietf-httpapi-idempotency-key-header-06): a POST, PATCH or DELETE
 * carrying Idempotency-Key runs once per company and key; a repeat with
 * the same fingerprint gets the first response back.
 *
 * Redis holds one hash per company and key, under a hash tag
 * ("worksible:idem:{cmp_...}:KEY"): the fingerprint and the owner (the
 * request id) while the first request runs, with a lock TTL renewed while
 * it runs; then its status, Content-Type, Location and body for the
 * retention time. One Lua script reserves, stores, renews and releases.
 * The response is captured by a header and a body filter (the srcache
 * way), whatever produced it: our API or proxy_pass.
 *
 * Our own API also stores the outcome of a write in PostgreSQL, in the
 * same transaction as the write (migrations/0008_idempotency.sql), so
 * that a retry after Redis lost the record still replays and never writes
 * twice.
 */

#ifndef _NGX_WORKSIBLE_IDEMPOTENCY_H_INCLUDED_
#define _NGX_WORKSIBLE_IDEMPOTENCY_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <libpq-fe.h>

#include "ngx_worksible_pg.h"
#include "ngx_worksible_problem.h"
#include "ngx_worksible_request.h"


#define NGX_WORKSIBLE_IDEMPOTENCY_OFF       0
#define NGX_WORKSIBLE_IDEMPOTENCY_ON        1
#define NGX_WORKSIBLE_IDEMPOTENCY_REQUIRED  2

#define NGX_WORKSIBLE_IDEMPOTENCY_KEY_MAX   255
#define NGX_WORKSIBLE_IDEMPOTENCY_TTL_MAX   (365 * 86400)
#define NGX_WORKSIBLE_FINGERPRINT_LEN       64      /* hex BLAKE2b-256 */


/* the worksible_idempotency directive */
typedef struct {
    ngx_uint_t                  mode;         /* off, on, required */
    time_t                      ttl;          /* seconds a response is kept */
    ngx_msec_t                  lock;         /* lock TTL, renewed */
    size_t                      max_size;     /* bytes of body stored */
} ngx_worksible_idempotency_conf_t;


typedef enum {
    NGX_WORKSIBLE_IDEM_NONE = 0,    /* no Idempotency-Key to honour */
    NGX_WORKSIBLE_IDEM_BODY,        /* reading the body to fingerprint it */
    NGX_WORKSIBLE_IDEM_WAIT,        /* Redis is asked */
    NGX_WORKSIBLE_IDEM_RESERVED,    /* ours: it runs, its response is kept */
    NGX_WORKSIBLE_IDEM_DECIDED,     /* answered now: a replay or a refusal */
    NGX_WORKSIBLE_IDEM_FINISHED     /* stored or released */
} ngx_worksible_idem_state_e;


/* a client request's reservation, decided once (st->idem) */
struct ngx_worksible_idempotency_s {
    ngx_worksible_idem_state_e  state;
    ngx_str_t                   key;          /* unquoted */
    ngx_str_t                   record;       /* the Redis key */
    u_char                      fingerprint[NGX_WORKSIBLE_FINGERPRINT_LEN];
    crypto_generichash_state   *hash;         /* of it, as the body comes */
    void                       *mcf;          /* for the request cleanup */

    ngx_worksible_error_e       problem;      /* DECIDED: a refusal, or 0 */
    ngx_uint_t                  status;       /* DECIDED: the replay ... */
    ngx_str_t                   type;         /* ... or RESERVED: what is */
    ngx_str_t                   location;     /* captured */
    ngx_str_t                   body;

    size_t                      capacity;     /* of body.data */
    ngx_str_t                   stored;       /* stored instead of body */
    ngx_event_t                 renew;        /* the lock's */
    size_t                      max_size;
    time_t                      ttl;
    ngx_msec_t                  lock;

    unsigned                    capturing:1;
    unsigned                    replayed:1;   /* Idempotent-Replayed sent */
    unsigned                    release:1;    /* keep nothing: release */
    unsigned                    release_on_abort:1;
    unsigned                    unanswered:1; /* the reservation timed out */
};


/*
 * Parses "on|off|required [ttl=TIME] [lock=TIME] [max_size=SIZE]" (the
 * worksible_idempotency directive). Defaults: ttl 24h (at most 365d),
 * lock 10s (renewed every third of it while the request runs), max_size
 * 1m.
 */
char *ngx_worksible_idempotency_conf(ngx_conf_t *cf,
    ngx_worksible_idempotency_conf_t *conf);

/* the Lua script's SHA-1, hex, for EVALSHA (postconfiguration) */
void ngx_worksible_idempotency_sha(u_char *hex);

/*
 * The pre-content phase's reservation, decided once per client request in
 * the first location with worksible_idempotency on|required that a write
 * (POST, PATCH, DELETE) reaches after every access check passed; conf is
 * that location's. NGX_OK: run the request (reserved, or nothing to do);
 * NGX_AGAIN or NGX_DONE: it waits for its body or Redis, or was answered
 * (a replay; 400 idempotency_key_invalid|idempotency_key_missing, 409
 * idempotency_request_in_progress, 422 idempotency_key_reused, 503
 * service_unavailable with Retry-After); or an HTTP status to finalize
 * with.
 */
ngx_int_t ngx_worksible_idempotency_reserve(ngx_http_request_t *r,
    ngx_worksible_request_t *st, ngx_worksible_idempotency_conf_t *conf);

/* registers the capture filters (before the problem filters) */
/*
 * The Idempotency-Key header, unquoted into key (from r->pool): NGX_OK,
 * NGX_DECLINED when absent, NGX_ABORT when malformed or sent twice,
 * NGX_ERROR. A key is 1..255 visible ASCII characters, bare or as a
 * structured-field string (RFC 8941, section 3.3.3) with \" and \\
 * escapes; both forms are the same key.
 */
ngx_int_t ngx_worksible_idempotency_key(ngx_http_request_t *r,
    ngx_str_t *key);

ngx_int_t ngx_worksible_idempotency_filter_init(ngx_conf_t *cf);

/* st's request ends: stop renewing; a worksible_api write releases */
void ngx_worksible_idempotency_cleanup(ngx_worksible_request_t *st);

/*
 * Our API: makes op (company id as $1, SQL "SELECT f(...)") of a reserved
 * request run only when PostgreSQL has no record of its key, and store
 * its result in the same statement (migrations/0008_idempotency.sql).
 * NGX_OK (wrapped or not to wrap), NGX_ERROR.
 */
ngx_int_t ngx_worksible_idempotency_wrap(ngx_http_request_t *r,
    ngx_worksible_pg_op_t *op);

/* 1 when res is the unique violation of an existing record */
ngx_uint_t ngx_worksible_idempotency_recorded(PGresult *res);

/*
 * Our API: a new op reading r's record (fingerprint, result) from
 * PostgreSQL; NULL on no memory.
 */
ngx_worksible_pg_op_t *ngx_worksible_idempotency_find(
    ngx_http_request_t *r);

/*
 * The record read by that op: NGX_OK with result set to replay it,
 * NGX_DECLINED with *err (409 gone meanwhile, 422 another fingerprint,
 * then the key is released), NGX_ERROR.
 */
ngx_int_t ngx_worksible_idempotency_found(ngx_http_request_t *r,
    PGresult *res, ngx_str_t *result, ngx_worksible_error_e *err);


#endif /* _NGX_WORKSIBLE_IDEMPOTENCY_H_INCLUDED_ */
