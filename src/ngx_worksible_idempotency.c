/*
 * Idempotent writes (see ngx_worksible_idempotency.h).
 *
 * The fingerprint is BLAKE2b-256 (libsodium) over the method, the path
 * (as nginx normalized it; it holds no NUL), the raw query string and the
 * body bytes as sent, NUL-separated: two bodies that differ only in
 * spacing or member order are different requests.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <sodium.h>

#include "ngx_worksible_module.h"
#include "ngx_worksible_api.h"
#include "ngx_worksible_idempotency.h"
#include "ngx_worksible_problem.h"


#define NGX_WORKSIBLE_IDEM_SAVE_SQL                                           \
    "SELECT CASE WHEN worksible_idempotency_fresh($1, $%d) "                  \
    "THEN worksible_idempotency_save($1, $%d, $%d, $%d, (%s)) END"

#define NGX_WORKSIBLE_IDEM_FIND_SQL                                           \
    "SELECT fingerprint, result FROM worksible_idempotency_find($1, $2)"

#define NGX_WORKSIBLE_IDEM_CONSTRAINT  "idempotency_records_pkey"


static void ngx_worksible_idempotency_body(ngx_http_request_t *r);
static void ngx_worksible_idempotency_fingerprint_start(ngx_http_request_t *r,
    crypto_generichash_state *hash);
static ngx_int_t ngx_worksible_idempotency_fingerprint(ngx_http_request_t *r,
    ngx_worksible_idempotency_t *idem);
static void ngx_worksible_idempotency_reserved(ngx_worksible_redis_op_t *op,
    redisReply *reply);
static ngx_int_t ngx_worksible_idempotency_copy(ngx_http_request_t *r,
    redisReply *reply, ngx_str_t *dst);
static ngx_int_t ngx_worksible_idempotency_answer(ngx_http_request_t *r,
    ngx_worksible_idempotency_t *idem);
static ngx_int_t ngx_worksible_idempotency_send_answer(ngx_http_request_t *r,
    ngx_worksible_idempotency_t *idem);
static void ngx_worksible_idempotency_renew(ngx_event_t *ev);
static void ngx_worksible_idempotency_act(ngx_worksible_request_t *st,
    const char *action, ngx_str_t *args, int nargs);
static void ngx_worksible_idempotency_acted(ngx_worksible_redis_op_t *op,
    redisReply *reply);
static void ngx_worksible_idempotency_store(ngx_worksible_request_t *st);
static void ngx_worksible_idempotency_give_up(ngx_worksible_request_t *st,
    const char *why);
static ngx_uint_t ngx_worksible_idempotency_reached(ngx_http_request_t *r);
static ngx_int_t ngx_worksible_idempotency_header_filter(
    ngx_http_request_t *r);
static ngx_str_t ngx_worksible_idempotency_location(ngx_http_request_t *r);
static ngx_int_t ngx_worksible_idempotency_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


/*
 * KEYS[1]: the record. ARGV[1] the action, ARGV[2] the owner (request id).
 *   reserve fingerprint lock_ms api -> {"reserved"} | {"reused"} |
 *       {"in_progress"} | {"unknown"} | {"done", status, type, location,
 *       body}
 *   store ttl_ms status type location body -> 1 | 0
 *   renew lock_ms ttl_ms -> 1 | 0;  abandon -> 1 | 0;  release -> 1 | 0
 * "until" (Redis's clock, ms) is the record's lock. A reservation expires
 * with its lock until its owner renews it, at once when it learns it holds
 * it: a reservation whose answer came too late (the request did not run)
 * thus goes by itself. Renewed, it lives for the key's ttl (or the lock,
 * if longer) from then. A
 * record whose lock passed with no response stored is "unknown" (the
 * request may have run), except our API's ("api" 1), which a new
 * reservation takes over: PostgreSQL's record decides there. A record
 * without "until" (from before 0.14) is in progress until it expires.
 * Only the owner of a record with no response yet may store, renew,
 * abandon (its outcome is unknown from now) or release.
 */
static const char  ngx_worksible_idempotency_script[] =
    "local rec = redis.call('HMGET', KEYS[1], 'fp', 'owner', 'status',\n"
    "                       'type', 'location', 'body', 'until', 'api')\n"
    "local t = redis.call('TIME')\n"
    "local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"
    "local locked = not rec[7] or tonumber(rec[7]) > now\n"
    "if ARGV[1] == 'reserve' then\n"
    "  if rec[1] and not rec[3] and not locked and rec[8] == '1' then\n"
    "    rec[1] = false\n"
    "  end\n"
    "  if not rec[1] then\n"
    "    redis.call('DEL', KEYS[1])\n"
    "    redis.call('HSET', KEYS[1], 'fp', ARGV[3], 'owner', ARGV[2],\n"
    "               'until', now + ARGV[4], 'api', ARGV[5])\n"
    "    redis.call('PEXPIRE', KEYS[1], ARGV[4])\n"
    "    return {'reserved'}\n"
    "  end\n"
    "  if rec[1] ~= ARGV[3] then return {'reused'} end\n"
    "  if rec[3] then return {'done', rec[3], rec[4], rec[5], rec[6]} end\n"
    "  if locked then return {'in_progress'} end\n"
    "  return {'unknown'}\n"
    "end\n"
    "if rec[2] ~= ARGV[2] or rec[3] then return 0 end\n"
    "if ARGV[1] == 'store' then\n"
    "  redis.call('HSET', KEYS[1], 'status', ARGV[4], 'type', ARGV[5],\n"
    "             'location', ARGV[6], 'body', ARGV[7])\n"
    "  return redis.call('PEXPIRE', KEYS[1], ARGV[3])\n"
    "end\n"
    "if ARGV[1] == 'renew' then\n"
    "  redis.call('HSET', KEYS[1], 'until', now + ARGV[3])\n"
    "  return redis.call('PEXPIRE', KEYS[1],\n"
    "                    math.max(tonumber(ARGV[3]), tonumber(ARGV[4])))\n"
    "end\n"
    "if ARGV[1] == 'abandon' then\n"
    "  redis.call('HSET', KEYS[1], 'until', 0)\n"
    "  return 1\n"
    "end\n"
    "return redis.call('DEL', KEYS[1])\n";


char *
ngx_worksible_idempotency_conf(ngx_conf_t *cf,
    ngx_worksible_idempotency_conf_t *conf)
{
    ssize_t     size;
    ngx_str_t  *value, s;
    ngx_uint_t  i;

    if (conf->mode != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;
    i = 1;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        conf->mode = NGX_WORKSIBLE_IDEMPOTENCY_OFF;

    } else if (ngx_strcmp(value[1].data, "on") == 0) {
        conf->mode = NGX_WORKSIBLE_IDEMPOTENCY_ON;

    } else if (ngx_strcmp(value[1].data, "required") == 0) {
        conf->mode = NGX_WORKSIBLE_IDEMPOTENCY_REQUIRED;

    } else {
        goto invalid;
    }

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "ttl=", 4) == 0) {
            s.data = value[i].data + 4;
            s.len = value[i].len - 4;

            conf->ttl = ngx_parse_time(&s, 1);
            if (conf->ttl == (time_t) NGX_ERROR || conf->ttl < 1
                || conf->ttl > NGX_WORKSIBLE_IDEMPOTENCY_TTL_MAX)
            {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "lock=", 5) == 0) {
            s.data = value[i].data + 5;
            s.len = value[i].len - 5;

            conf->lock = ngx_parse_time(&s, 0);
            if (conf->lock == (ngx_msec_t) NGX_ERROR || conf->lock < 300) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "max_size=", 9) == 0) {
            s.data = value[i].data + 9;
            s.len = value[i].len - 9;

            size = ngx_parse_size(&s);
            if (size == NGX_ERROR || size < 1) {
                goto invalid;
            }

            conf->max_size = size;
            continue;
        }

        goto invalid;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid worksible_idempotency \"%V\" (on|off|required "
                       "[ttl=TIME, 1s to 365d] [lock=TIME, at least 300ms] "
                       "[max_size=SIZE])", &value[i]);

    return NGX_CONF_ERROR;
}


void
ngx_worksible_idempotency_sha(u_char *hex)
{
    ngx_worksible_redis_sha(ngx_worksible_idempotency_script, hex);
}


ngx_int_t
ngx_worksible_idempotency_reserve(ngx_http_request_t *r,
    ngx_worksible_request_t *st, ngx_worksible_idempotency_conf_t *conf)
{
    ngx_int_t                     rc;
    ngx_worksible_loc_conf_t     *lcf;
    ngx_worksible_idempotency_t  *idem;

    idem = st->idem;

    if (idem != NULL) {
        switch (idem->state) {

        case NGX_WORKSIBLE_IDEM_BODY:
            /*
             * A new pass while the body was being read: reading it failed
             * (400, 408, 413) and error_page redirected; nothing was
             * reserved
             */
            idem->state = NGX_WORKSIBLE_IDEM_FINISHED;
            return NGX_OK;

        case NGX_WORKSIBLE_IDEM_WAIT:
            return NGX_AGAIN;

        case NGX_WORKSIBLE_IDEM_DECIDED:
            return ngx_worksible_idempotency_answer(r, idem);

        default:
            /* decided in an earlier location of this client request */
            return NGX_OK;
        }
    }

    if (r->error_page) {
        /* an error page answers a request that was refused or failed */
        return NGX_OK;
    }

    idem = ngx_pcalloc(r->pool, sizeof(ngx_worksible_idempotency_t));
    if (idem == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    st->idem = idem;

    if (!(r->method & (NGX_HTTP_POST|NGX_HTTP_PATCH|NGX_HTTP_DELETE))) {
        return NGX_OK;
    }

    rc = ngx_worksible_idempotency_key(r, &idem->key);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_DECLINED) {
        if (conf->mode != NGX_WORKSIBLE_IDEMPOTENCY_REQUIRED) {
            return NGX_OK;
        }

        idem->problem = NGX_WORKSIBLE_IDEMPOTENCY_KEY_MISSING;
        return ngx_worksible_idempotency_answer(r, idem);
    }

    if (rc == NGX_ABORT) {
        idem->problem = NGX_WORKSIBLE_IDEMPOTENCY_KEY_INVALID;
        return ngx_worksible_idempotency_answer(r, idem);
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_worksible_module);

    idem->mcf = ngx_http_get_module_main_conf(r, ngx_worksible_module);
    idem->ttl = conf->ttl;
    idem->lock = conf->lock;
    idem->max_size = conf->max_size;
    idem->release_on_abort = lcf->api;

    /*
     * The body is part of the fingerprint: read it now (like mirror),
     * hashed as it arrives; our API's own copy is taken at the same time
     */

    idem->hash = ngx_pmemalign(r->pool, sizeof(crypto_generichash_state), 64);
    if (idem->hash == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_worksible_idempotency_fingerprint_start(r, idem->hash);

    rc = ngx_worksible_request_body_tap(r, st, idem->hash,
                                        lcf->api ? NGX_WORKSIBLE_API_BODY_MAX
                                                 : 0);
    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_DECLINED) {
        idem->hash = NULL;    /* read before us: hashed from its buffers */
    }

    idem->state = NGX_WORKSIBLE_IDEM_BODY;

    rc = ngx_http_read_client_request_body(r, ngx_worksible_idempotency_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        idem->state = NGX_WORKSIBLE_IDEM_FINISHED;
        return rc;
    }

    ngx_http_finalize_request(r, NGX_DONE);

    return NGX_DONE;
}


ngx_int_t
ngx_worksible_idempotency_key(ngx_http_request_t *r, ngx_str_t *key)
{
    u_char           *p, *last, *d;
    ngx_uint_t        n;
    ngx_table_elt_t  *found;

    found = ngx_worksible_header_find(&r->headers_in.headers,
                                      "Idempotency-Key", &n);

    if (n == 0) {
        return NGX_DECLINED;
    }

    if (n > 1) {
        return NGX_ABORT;
    }

    p = found->value.data;
    last = p + found->value.len;

    key->data = ngx_pnalloc(r->pool, found->value.len);
    if (key->data == NULL) {
        return NGX_ERROR;
    }

    d = key->data;

    if (p < last && *p == '"') {
        if (last - p < 2 || last[-1] != '"') {
            return NGX_ABORT;
        }

        for (p++, last--; p < last; p++) {
            if (*p == '\\') {
                if (++p == last || (*p != '"' && *p != '\\')) {
                    return NGX_ABORT;
                }

            } else if (*p == '"') {
                return NGX_ABORT;
            }

            if (*p <= 0x20 || *p >= 0x7f) {
                return NGX_ABORT;
            }

            *d++ = *p;
        }

    } else {
        for ( /* void */ ; p < last; p++) {
            if (*p <= 0x20 || *p >= 0x7f) {
                return NGX_ABORT;
            }

            *d++ = *p;
        }
    }

    key->len = d - key->data;

    if (key->len == 0 || key->len > NGX_WORKSIBLE_IDEMPOTENCY_KEY_MAX) {
        return NGX_ABORT;
    }

    return NGX_OK;
}


/* the body is read: fingerprint it and ask Redis for the key */

static void
ngx_worksible_idempotency_body(ngx_http_request_t *r)
{
    ngx_str_t                     args[5];
    ngx_worksible_request_t      *st;
    ngx_worksible_redis_op_t     *op;
    ngx_worksible_main_conf_t    *mcf;
    ngx_worksible_idempotency_t  *idem;
    u_char                        lock[NGX_INT_T_LEN];

    st = ngx_worksible_request_find(r);
    mcf = ngx_http_get_module_main_conf(r, ngx_worksible_module);
    idem = st->idem;

    r->preserve_body = 1;
    r->write_event_handler = ngx_http_core_run_phases;

    idem->record.len = sizeof("worksible:idem:{}:") - 1
                       + st->identity.company_id.len + idem->key.len;
    idem->record.data = ngx_pnalloc(r->pool, idem->record.len);

    if (idem->record.data == NULL
        || ngx_worksible_idempotency_fingerprint(r, idem) != NGX_OK
        || ngx_worksible_request_arm(st) != NGX_OK)
    {
        idem->state = NGX_WORKSIBLE_IDEM_FINISHED;
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    (void) ngx_sprintf(idem->record.data, "worksible:idem:{%V}:%V",
                       &st->identity.company_id, &idem->key);

    ngx_str_set(&args[0], "reserve");
    args[1].data = st->request_id;
    args[1].len = NGX_WORKSIBLE_REQUEST_ID_LEN;
    args[2].data = idem->fingerprint;
    args[2].len = NGX_WORKSIBLE_FINGERPRINT_LEN;
    args[3].data = lock;
    args[3].len = ngx_sprintf(lock, "%M", idem->lock) - lock;
    args[4].data = (u_char *) (idem->release_on_abort ? "1" : "0");
    args[4].len = 1;

    op = ngx_worksible_redis_eval(mcf->redis, ngx_worksible_idempotency_script,
                                  (char *) mcf->idempotency_sha,
                                  &idem->record, args, 5,
                                  ngx_worksible_idempotency_reserved, st);

    if (op == NULL) {
        /* Redis is down: never run unprotected */
        idem->problem = NGX_WORKSIBLE_SERVICE_UNAVAILABLE;
        idem->state = NGX_WORKSIBLE_IDEM_DECIDED;

    } else {
        idem->state = NGX_WORKSIBLE_IDEM_WAIT;
        st->redis_op = op;
        r->read_event_handler = ngx_http_test_reading;
    }

    ngx_http_core_run_phases(r);
}


/* the fingerprint, BLAKE2b-256, of method NUL path NUL query NUL body */

static void
ngx_worksible_idempotency_fingerprint_start(ngx_http_request_t *r,
    crypto_generichash_state *hash)
{
    crypto_generichash_init(hash, NULL, 0, 32);
    crypto_generichash_update(hash, r->method_name.data, r->method_name.len);
    crypto_generichash_update(hash, (u_char *) "", 1);
    crypto_generichash_update(hash, r->uri.data, r->uri.len);
    crypto_generichash_update(hash, (u_char *) "", 1);
    crypto_generichash_update(hash, r->args.data, r->args.len);
    crypto_generichash_update(hash, (u_char *) "", 1);
}


/*
 * Its hex digest, the body hashed as it arrived (the request body filter);
 * from the body's buffers only when another module read the body before
 * the reservation did (its temporary file read then)
 */

static ngx_int_t
ngx_worksible_idempotency_fingerprint(ngx_http_request_t *r,
    ngx_worksible_idempotency_t *idem)
{
    off_t                     off;
    ssize_t                   n;
    ngx_buf_t                *b;
    ngx_chain_t              *cl;
    crypto_generichash_state  st;
    u_char                    hash[32], buf[4096];

    if (idem->hash != NULL) {
        crypto_generichash_final(idem->hash, hash, sizeof(hash));
        ngx_hex_dump(idem->fingerprint, hash, sizeof(hash));
        return NGX_OK;
    }

    ngx_worksible_idempotency_fingerprint_start(r, &st);

    for (cl = r->request_body ? r->request_body->bufs : NULL;
         cl;
         cl = cl->next)
    {
        b = cl->buf;

        if (!b->in_file) {
            crypto_generichash_update(&st, b->pos, b->last - b->pos);
            continue;
        }

        for (off = b->file_pos; off < b->file_last; off += n) {
            n = ngx_read_file(b->file, buf,
                              ngx_min((off_t) sizeof(buf),
                                      b->file_last - off), off);
            if (n <= 0) {
                return NGX_ERROR;
            }

            crypto_generichash_update(&st, buf, n);
        }
    }

    crypto_generichash_final(&st, hash, sizeof(hash));
    ngx_hex_dump(idem->fingerprint, hash, sizeof(hash));

    return NGX_OK;
}


/* Redis answered the reservation (reply NULL: no answer) */

static void
ngx_worksible_idempotency_reserved(ngx_worksible_redis_op_t *op,
    redisReply *reply)
{
    ngx_int_t                     status;
    ngx_str_t                     state;
    ngx_connection_t             *c;
    ngx_http_request_t           *r;
    ngx_worksible_request_t      *st;
    ngx_worksible_idempotency_t  *idem;

    st = op->data;
    r = st->r;
    c = r->connection;
    idem = st->idem;

    st->redis_op = NULL;
    idem->state = NGX_WORKSIBLE_IDEM_DECIDED;
    idem->problem = NGX_WORKSIBLE_SERVICE_UNAVAILABLE;
    idem->unanswered = (reply == NULL);

    if (reply != NULL && reply->type == REDIS_REPLY_ARRAY
        && reply->elements >= 1
        && reply->element[0]->type == REDIS_REPLY_STRING)
    {
        state.data = (u_char *) reply->element[0]->str;
        state.len = reply->element[0]->len;

        if (state.len == 8 && ngx_strncmp(state.data, "reserved", 8) == 0) {
            idem->state = NGX_WORKSIBLE_IDEM_RESERVED;
            idem->problem = NGX_WORKSIBLE_OK;

            idem->renew.handler = ngx_worksible_idempotency_renew;
            idem->renew.data = st;
            idem->renew.log = c->log;
            /* at once: until then the reservation expires with its lock */
            ngx_worksible_idempotency_renew(&idem->renew);

        } else if (state.len == 6
                   && ngx_strncmp(state.data, "reused", 6) == 0)
        {
            idem->problem = NGX_WORKSIBLE_IDEMPOTENCY_KEY_REUSED;

        } else if (state.len == 11
                   && ngx_strncmp(state.data, "in_progress", 11) == 0)
        {
            idem->problem = NGX_WORKSIBLE_IDEMPOTENCY_REQUEST_IN_PROGRESS;

        } else if (state.len == 7
                   && ngx_strncmp(state.data, "unknown", 7) == 0)
        {
            idem->problem = NGX_WORKSIBLE_IDEMPOTENCY_OUTCOME_UNKNOWN;

        } else if (state.len == 4 && ngx_strncmp(state.data, "done", 4) == 0
                   && reply->elements == 5
                   && ngx_worksible_idempotency_copy(r, reply->element[1],
                                                     &state) == NGX_OK
                   && (status = ngx_atoi(state.data, state.len)) >= 200
                   && status < 500
                   && ngx_worksible_idempotency_copy(r, reply->element[2],
                                                     &idem->type) == NGX_OK
                   && ngx_worksible_idempotency_copy(r, reply->element[3],
                                                 &idem->location) == NGX_OK
                   && ngx_worksible_idempotency_copy(r, reply->element[4],
                                                     &idem->body) == NGX_OK)
        {
            idem->problem = NGX_WORKSIBLE_OK;
            idem->status = status;
        }
    }

    if (idem->problem == NGX_WORKSIBLE_SERVICE_UNAVAILABLE
        && reply != NULL)
    {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "worksible idempotency: unexpected reply from Redis "
                      "(type %d)", reply->type);
    }

    if (reply == NULL) {
        /*
         * No answer in time: the reservation may still be made; this
         * release, after it on the same connection, undoes it (the request
         * does not run), so that it never reads as an unknown outcome
         */
        ngx_worksible_idempotency_act(st, "release", NULL, 0);
    }

    ngx_worksible_request_resume(st);
}


static ngx_int_t
ngx_worksible_idempotency_copy(ngx_http_request_t *r, redisReply *reply,
    ngx_str_t *dst)
{
    if (reply->type != REDIS_REPLY_STRING) {
        return NGX_ERROR;
    }

    dst->len = reply->len;
    dst->data = ngx_pnalloc(r->pool, dst->len + 1);

    if (dst->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(dst->data, reply->str, dst->len);

    return NGX_OK;
}


/* sends and finalizes what the access phase decided: NGX_DONE */

static ngx_int_t
ngx_worksible_idempotency_answer(ngx_http_request_t *r,
    ngx_worksible_idempotency_t *idem)
{
    idem->state = NGX_WORKSIBLE_IDEM_FINISHED;

    ngx_http_finalize_request(r, ngx_worksible_idempotency_send_answer(r,
                                                                     idem));
    return NGX_DONE;
}


/* a refusal or a replay; rc for ngx_http_finalize_request() */

static ngx_int_t
ngx_worksible_idempotency_send_answer(ngx_http_request_t *r,
    ngx_worksible_idempotency_t *idem)
{
    time_t                      retry;
    ngx_str_t                   v;
    ngx_worksible_main_conf_t  *mcf;

    switch (idem->problem) {

    case NGX_WORKSIBLE_OK:
        break;

    case NGX_WORKSIBLE_SERVICE_UNAVAILABLE:
        mcf = ngx_http_get_module_main_conf(r, ngx_worksible_module);
        retry = ngx_worksible_redis_retry_after(mcf->redis);

        if (idem->unanswered) {
            /* a reservation that timed out may still have taken the key */
            retry = ngx_max(retry, (time_t) (idem->lock + 999) / 1000);
        }

        if (ngx_worksible_retry_after(r, retry) != NGX_OK) {
            return NGX_ERROR;
        }

        return ngx_worksible_problem_send(r, idem->problem, NULL, NULL);

    case NGX_WORKSIBLE_IDEMPOTENCY_REQUEST_IN_PROGRESS:
        if (ngx_worksible_retry_after(r, 1) != NGX_OK) {
            return NGX_ERROR;
        }

        /* fall through */

    default:
        return ngx_worksible_problem_send(r, idem->problem, NULL, NULL);
    }

    /* a replay: the stored status, Content-Type, Location and body */

    idem->replayed = 1;

    ngx_str_set(&v, "true");

    if (ngx_worksible_header_add(r, "Idempotent-Replayed", &v) != NGX_OK) {
        return NGX_ERROR;
    }

    if (idem->location.len
        && ngx_worksible_header_add(r, "Location", &idem->location) != NGX_OK)
    {
        return NGX_ERROR;
    }

    r->headers_out.content_type = idem->type;
    r->headers_out.content_type_len = idem->type.len;

    return ngx_worksible_body_send(r, idem->status, idem->body.data,
                                   idem->body.len);
}


/* the request still runs: keep its lock */

static void
ngx_worksible_idempotency_renew(ngx_event_t *ev)
{
    ngx_str_t                     args[2];
    ngx_worksible_request_t      *st = ev->data;
    ngx_worksible_idempotency_t  *idem;
    u_char                        lock[NGX_INT_T_LEN], ttl[NGX_INT_T_LEN];

    idem = st->idem;

    args[0].data = lock;
    args[0].len = ngx_sprintf(lock, "%M", idem->lock) - lock;
    args[1].data = ttl;
    args[1].len = ngx_sprintf(ttl, "%T", idem->ttl * 1000) - ttl;

    ngx_worksible_idempotency_act(st, "renew", args, 2);

    ngx_add_timer(&idem->renew, idem->lock / 3);
}


/*
 * Sends an action on the record without waiting: the request may be gone
 * when Redis answers. A failure is logged.
 */

static void
ngx_worksible_idempotency_act(ngx_worksible_request_t *st,
    const char *action, ngx_str_t *args, int nargs)
{
    int                           i;
    ngx_str_t                     all[8];
    ngx_worksible_redis_op_t     *op;
    ngx_worksible_main_conf_t    *mcf;
    ngx_worksible_idempotency_t  *idem;

    idem = st->idem;
    mcf = idem->mcf;

    all[0].data = (u_char *) action;
    all[0].len = ngx_strlen(action);
    all[1].data = st->request_id;
    all[1].len = NGX_WORKSIBLE_REQUEST_ID_LEN;

    for (i = 0; i < nargs; i++) {
        all[2 + i] = args[i];
    }

    op = ngx_worksible_redis_eval(mcf->redis, ngx_worksible_idempotency_script,
                                  (char *) mcf->idempotency_sha, &idem->record,
                                  all, 2 + nargs,
                                  ngx_worksible_idempotency_acted,
                                  (void *) action);
    if (op == NULL) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "worksible idempotency: cannot %s \"%V\": Redis is "
                      "down; once the lock passes, the key's outcome is "
                      "unknown", action, &idem->record);
        return;
    }

    /* the owner's store, renew or release: twice does what once does */
    ngx_worksible_redis_allow_resend(op);
}


/*
 * A failed action leaves the record as it was: once its lock passes, a
 * retry gets 409 idempotency_outcome_unknown (our API's is taken over).
 */

static void
ngx_worksible_idempotency_acted(ngx_worksible_redis_op_t *op,
    redisReply *reply)
{
    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "worksible idempotency: %s failed (%s); once the "
                      "lock passes, the key's outcome is unknown",
                      (char *) op->data, reply ? "an error" : "no answer");
    }
}


/* the whole response passed: keep it for the retention time */

static void
ngx_worksible_idempotency_store(ngx_worksible_request_t *st)
{
    u_char                       *p;
    ngx_str_t                     args[5];
    ngx_worksible_idempotency_t  *idem;
    u_char                        buf[2 * NGX_INT_T_LEN];

    idem = st->idem;

    if (idem->renew.timer_set) {
        ngx_del_timer(&idem->renew);
    }

    idem->capturing = 0;
    idem->state = NGX_WORKSIBLE_IDEM_FINISHED;

    p = buf;
    args[0].data = p;
    p = ngx_sprintf(p, "%T", idem->ttl * 1000);
    args[0].len = p - args[0].data;
    args[1].data = p;
    p = ngx_sprintf(p, "%ui", idem->status);
    args[1].len = p - args[1].data;
    args[2] = idem->type;
    args[3] = idem->location;
    args[4] = idem->stored.data ? idem->stored : idem->body;

    ngx_worksible_idempotency_act(st, "store", args, 5);
}


/*
 * No response is kept for the reservation (why: for the log, or NULL).
 * The key is released when a retry may run safely: our API's write (its
 * record in PostgreSQL still decides), a refusal of ours, a request that
 * provably sent no byte to an upstream. Otherwise the request may have
 * taken effect: the record is abandoned, and retries get 409
 * idempotency_outcome_unknown for the key's ttl.
 */

static void
ngx_worksible_idempotency_give_up(ngx_worksible_request_t *st,
    const char *why)
{
    ngx_uint_t                    release;
    ngx_worksible_idempotency_t  *idem;

    idem = st->idem;

    if (idem->renew.timer_set) {
        ngx_del_timer(&idem->renew);
    }

    idem->capturing = 0;
    idem->state = NGX_WORKSIBLE_IDEM_FINISHED;

    release = idem->release || idem->release_on_abort
              || !ngx_worksible_idempotency_reached(st->r);

    if (why != NULL) {
        ngx_log_error(NGX_LOG_WARN, st->r->connection->log, 0,
                      release ? "worksible idempotency: not stored, %s: the "
                                "key \"%V\" is released and a retry runs "
                                "again"
                              : "worksible idempotency: not stored, %s: "
                                "the key \"%V\" is kept as outcome "
                                "unknown (409) for its ttl",
                      why, &idem->key);
    }

    ngx_worksible_idempotency_act(st, release ? "release" : "abandon",
                                  NULL, 0);
}


/*
 * 1 unless r provably never reached a service: no upstream (r's own
 * handler ran), or an upstream that got a byte of the request on any try
 * (proxy_next_upstream included). An upstream connection that was never
 * made, or refused, sent nothing.
 */

static ngx_uint_t
ngx_worksible_idempotency_reached(ngx_http_request_t *r)
{
    ngx_uint_t                  i;
    ngx_http_upstream_t        *u;
    ngx_http_upstream_state_t  *state;

    u = r->upstream;

    if (u == NULL) {
        return 1;
    }

    if (u->request_sent
        || (u->peer.connection != NULL && u->peer.connection->sent > 0))
    {
        return 1;
    }

    if (r->upstream_states != NULL) {
        state = r->upstream_states->elts;

        for (i = 0; i < r->upstream_states->nelts; i++) {
            if (state[i].bytes_sent > 0) {
                return 1;
            }
        }
    }

    return 0;
}


void
ngx_worksible_idempotency_cleanup(ngx_worksible_request_t *st)
{
    ngx_worksible_idempotency_t  *idem;

    idem = st->idem;

    if (idem->renew.timer_set) {
        ngx_del_timer(&idem->renew);
    }

    if (idem->state == NGX_WORKSIBLE_IDEM_WAIT) {
        /*
         * The client left before Redis answered: the reservation may still
         * run, then this release (same connection, in order) undoes it;
         * the request itself never ran.
         */
        idem->state = NGX_WORKSIBLE_IDEM_FINISHED;
        ngx_worksible_idempotency_act(st, "release", NULL, 0);
        return;
    }

    if (idem->state != NGX_WORKSIBLE_IDEM_RESERVED) {
        return;
    }

    /* no response was kept: the client left, or the request failed */

    ngx_worksible_idempotency_give_up(st, idem->release_on_abort
                                          ? NULL : "no response was sent");
}


ngx_int_t
ngx_worksible_idempotency_filter_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_worksible_idempotency_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_worksible_idempotency_body_filter;

    return NGX_OK;
}


/*
 * A reserved request's response starts: a 5xx releases the key; otherwise
 * its status, Content-Type and Location are kept and the body filter
 * collects the body (in memory: r->filter_need_in_memory).
 */

static ngx_int_t
ngx_worksible_idempotency_header_filter(ngx_http_request_t *r)
{
    u_char                       *p;
    ngx_int_t                     rc;
    ngx_worksible_request_t      *st;
    ngx_worksible_idempotency_t  *idem;

    st = ngx_worksible_request_guarded(r);

    if (st == NULL || st->idem == NULL
        || st->idem->state != NGX_WORKSIBLE_IDEM_RESERVED)
    {
        return ngx_http_next_header_filter(r);
    }

    idem = st->idem;

    if (r->headers_out.status >= NGX_HTTP_INTERNAL_SERVER_ERROR
        || idem->release)
    {
        ngx_worksible_idempotency_give_up(st,
                                (idem->release || idem->release_on_abort)
                                ? NULL : "the response is a 5xx");
        return ngx_http_next_header_filter(r);
    }

    if (r->headers_out.content_length_n > (off_t) idem->max_size) {
        ngx_worksible_idempotency_give_up(st, "the body is over max_size");
        return ngx_http_next_header_filter(r);
    }

    idem->status = r->headers_out.status;

    /* as ngx_http_header_filter() writes it */

    idem->type.len = r->headers_out.content_type.len;

    if (idem->type.len && r->headers_out.charset.len
        && r->headers_out.content_type_len == r->headers_out.content_type.len)
    {
        idem->type.len += sizeof("; charset=") - 1
                          + r->headers_out.charset.len;
    }

    idem->type.data = ngx_pnalloc(r->pool, idem->type.len);
    if (idem->type.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(idem->type.data, r->headers_out.content_type.data,
                   r->headers_out.content_type.len);

    if (p < idem->type.data + idem->type.len) {
        (void) ngx_sprintf(p, "; charset=%V", &r->headers_out.charset);
    }

    idem->location = ngx_worksible_idempotency_location(r);

    idem->capacity = r->headers_out.content_length_n >= 0
                     ? (size_t) r->headers_out.content_length_n
                     : ngx_min(idem->max_size, 4096);

    idem->body.len = 0;
    idem->body.data = ngx_pnalloc(r->pool, idem->capacity);
    if (idem->body.data == NULL) {
        return NGX_ERROR;
    }

    idem->capturing = 1;
    r->filter_need_in_memory = 1;

    rc = ngx_http_next_header_filter(r);

    if (rc != NGX_ERROR && r->header_only && idem->capturing) {
        /* no body will pass (HEAD cannot be here: 204, 304) */
        ngx_worksible_idempotency_store(st);
    }

    return rc;
}


/*
 * The response's Location as it was set: by proxy_pass (headers_out) or as
 * a plain header (our API). A replay sends it as a plain header.
 */

static ngx_str_t
ngx_worksible_idempotency_location(ngx_http_request_t *r)
{
    ngx_str_t         none = ngx_null_string;
    ngx_table_elt_t  *h;

    h = r->headers_out.location;

    if (h == NULL) {
        h = ngx_worksible_header_find(&r->headers_out.headers, "Location",
                                      NULL);
    }

    return h != NULL ? h->value : none;
}


static ngx_int_t
ngx_worksible_idempotency_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in)
{
    u_char                       *p;
    size_t                        n;
    ngx_buf_t                    *b;
    ngx_uint_t                    last;
    ngx_chain_t                  *cl;
    ngx_worksible_request_t      *st;
    ngx_worksible_idempotency_t  *idem;

    st = ngx_worksible_request_guarded(r);

    if (st == NULL || st->idem == NULL || !st->idem->capturing) {
        return ngx_http_next_body_filter(r, in);
    }

    idem = st->idem;
    last = 0;

    for (cl = in; cl; cl = cl->next) {
        b = cl->buf;
        n = ngx_buf_in_memory(b) ? (size_t) (b->last - b->pos) : 0;

        if (n == 0 && ngx_buf_size(b) != 0) {
            ngx_worksible_idempotency_give_up(st,
                                              "the body is not in memory");
            return ngx_http_next_body_filter(r, in);
        }

        if (idem->body.len + n > idem->max_size) {
            ngx_worksible_idempotency_give_up(st,
                                              "the body is over max_size");
            return ngx_http_next_body_filter(r, in);
        }

        if (idem->body.len + n > idem->capacity) {
            /* a body of unknown length: double, within max_size */

            idem->capacity = ngx_min(ngx_max(2 * idem->capacity,
                                             idem->body.len + n),
                                     idem->max_size);

            p = ngx_pnalloc(r->pool, idem->capacity);
            if (p == NULL) {
                return NGX_ERROR;
            }

            ngx_memcpy(p, idem->body.data, idem->body.len);
            idem->body.data = p;
        }

        if (n) {
            ngx_memcpy(idem->body.data + idem->body.len, b->pos, n);
            idem->body.len += n;
        }

        if (b->last_buf) {
            last = 1;
        }
    }

    if (last) {
        ngx_worksible_idempotency_store(st);
    }

    return ngx_http_next_body_filter(r, in);
}


ngx_int_t
ngx_worksible_idempotency_wrap(ngx_http_request_t *r,
    ngx_worksible_pg_op_t *op)
{
    int                           n;
    char                         *sql;
    size_t                        len;
    ngx_str_t                     s;
    ngx_worksible_request_t      *st;
    ngx_worksible_idempotency_t  *idem;
    u_char                        ttl[NGX_INT_T_LEN];

    st = ngx_worksible_request_find(r);
    idem = st->idem;

    if (idem == NULL || idem->state != NGX_WORKSIBLE_IDEM_RESERVED
        || (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD)))
    {
        return NGX_OK;
    }

    /*
     * "SELECT f(...)" becomes the last argument of the save, evaluated
     * only when the key has no record yet (CASE evaluates lazily, and so
     * does the subquery's InitPlan)
     */

    len = sizeof(NGX_WORKSIBLE_IDEM_SAVE_SQL) + 4 * NGX_INT_T_LEN
          + ngx_strlen(op->sql);

    sql = ngx_pnalloc(op->mem, len);
    if (sql == NULL) {
        return NGX_ERROR;
    }

    n = op->nparams;

    if (snprintf(sql, len, NGX_WORKSIBLE_IDEM_SAVE_SQL, n + 1, n + 1, n + 2,
                 n + 3, op->sql)
        >= (int) len)
    {
        return NGX_ERROR;
    }

    op->sql = sql;

    s.data = idem->fingerprint;
    s.len = NGX_WORKSIBLE_FINGERPRINT_LEN;

    if (ngx_worksible_pg_op_param(op, &idem->key) != NGX_OK
        || ngx_worksible_pg_op_param(op, &s) != NGX_OK)
    {
        return NGX_ERROR;
    }

    s.data = ttl;
    s.len = ngx_sprintf(ttl, "%T", idem->ttl) - ttl;

    return ngx_worksible_pg_op_param(op, &s);
}


ngx_uint_t
ngx_worksible_idempotency_recorded(PGresult *res)
{
    char  *state, *constraint;

    state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    constraint = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);

    return state != NULL && constraint != NULL
           && ngx_strcmp(state, "23505") == 0
           && ngx_strcmp(constraint, NGX_WORKSIBLE_IDEM_CONSTRAINT) == 0;
}


ngx_worksible_pg_op_t *
ngx_worksible_idempotency_find(ngx_http_request_t *r)
{
    ngx_worksible_request_t    *st;
    ngx_worksible_pg_op_t      *op;
    ngx_worksible_main_conf_t  *mcf;

    st = ngx_worksible_request_find(r);
    mcf = ngx_http_get_module_main_conf(r, ngx_worksible_module);

    op = ngx_worksible_pg_op_create(mcf->pg_pool);
    if (op == NULL) {
        return NULL;
    }

    op->sql = NGX_WORKSIBLE_IDEM_FIND_SQL;

    if (ngx_worksible_pg_op_param(op, &st->identity.company_id) != NGX_OK
        || ngx_worksible_pg_op_param(op, &st->idem->key) != NGX_OK)
    {
        ngx_worksible_pg_op_free(op);
        return NULL;
    }

    return op;
}


ngx_int_t
ngx_worksible_idempotency_found(ngx_http_request_t *r, PGresult *res,
    ngx_str_t *result, ngx_worksible_error_e *err)
{
    ngx_str_t                     v;
    ngx_worksible_idempotency_t  *idem;

    idem = ngx_worksible_request_find(r)->idem;

    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != 2) {
        return NGX_ERROR;
    }

    if (PQntuples(res) == 0) {
        /* expired meanwhile: the retry runs */
        idem->release = 1;
        *err = NGX_WORKSIBLE_IDEMPOTENCY_REQUEST_IN_PROGRESS;
        return NGX_DECLINED;
    }

    if (PQgetlength(res, 0, 0) != NGX_WORKSIBLE_FINGERPRINT_LEN
        || ngx_strncmp(PQgetvalue(res, 0, 0), idem->fingerprint,
                       NGX_WORKSIBLE_FINGERPRINT_LEN) != 0)
    {
        /* Redis forgot the first: do not let this one take its key there */
        idem->release = 1;
        *err = NGX_WORKSIBLE_IDEMPOTENCY_KEY_REUSED;
        return NGX_DECLINED;
    }

    result->len = PQgetlength(res, 0, 1);
    result->data = (u_char *) PQgetvalue(res, 0, 1);

    idem->replayed = 1;
    ngx_str_set(&v, "true");

    return ngx_worksible_header_add(r, "Idempotent-Replayed", &v);
}
