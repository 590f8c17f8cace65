/*
 * Fleet-wide rate limits (see ngx_worksible_ratelimit.h).
 *
 * GCRA: a plan of q requests per w seconds emits one request every
 * T = w/q seconds and tolerates a burst of q. Redis keeps, per company,
 * the theoretical arrival time (TAT). A request at `now` is allowed when
 * max(TAT, now) + T - q*T <= now; then TAT moves to max(TAT, now) + T.
 * A refused request changes nothing (it is not charged). All in
 * microseconds of Redis's clock, so that many nginx servers agree.
 *
 * The answer: r, the requests allowed right now; t, whole seconds
 * (rounded up) until one more request's worth returns, so that within t no
 * more than r requests can pass (for a refused request: until the next one
 * may, which is also its Retry-After); and the Unix time at which the whole
 * budget is back.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_worksible_module.h"
#include "ngx_worksible_problem.h"
#include "ngx_worksible_ratelimit.h"


/* fail=open warns at most once in this many seconds, per worker */
#define NGX_WORKSIBLE_RATELIMIT_WARN_EVERY  10


static void ngx_worksible_ratelimit_done(ngx_worksible_redis_op_t *op,
    redisReply *reply);
static ngx_int_t ngx_worksible_ratelimit_unavailable(ngx_http_request_t *r);
static void ngx_worksible_ratelimit_hide(ngx_http_request_t *r);


/*
 * KEYS[1]: the company's "TAT T" (both in µs); ARGV: q, w. Returns
 * {allowed, r, t, reset}. When the plan changed since the last charge (T
 * differs), the requests still owed are owed at the new rate, and never
 * more than one new window: a raised plan gives its budget at once less
 * what was used, a lowered one never makes a client wait past its window.
 */
static const char  ngx_worksible_ratelimit_script[] =
    "local q = tonumber(ARGV[1])\n"
    "local w = tonumber(ARGV[2])\n"
    "local time = redis.call('TIME')\n"
    "local now = tonumber(time[1]) * 1000000 + tonumber(time[2])\n"
    "local T = math.max(1, math.floor(w * 1000000 / q))\n"
    "local burst = q * T\n"
    "local tat = now\n"
    "local v = redis.call('GET', KEYS[1])\n"
    "if v then\n"
    "  local t0, T0 = string.match(v, '^(%d+) ?(%d*)$')\n"
    "  tat = tonumber(t0) or now\n"
    "  T0 = tonumber(T0)\n"
    "  if T0 and T0 ~= T and tat > now then\n"
    "    tat = now + math.min(math.floor((tat - now) / T0 * T), burst)\n"
    "  end\n"
    "end\n"
    "if tat < now then tat = now end\n"
    "local new_tat = tat + T\n"
    "if new_tat - burst > now then\n"
    "  return {0, 0, math.ceil((new_tat - burst - now) / 1000000),\n"
    "          math.ceil(tat / 1000000)}\n"
    "end\n"
    "redis.call('SET', KEYS[1], string.format('%d %d', new_tat, T), 'PX',\n"
    "           math.ceil((new_tat - now) / 1000))\n"
    "local r = math.floor((now + burst - new_tat) / T)\n"
    "local t = math.ceil((new_tat - burst + (r + 1) * T - now) / 1000000)\n"
    "return {1, r, t, math.ceil(new_tat / 1000000)}\n";


void
ngx_worksible_ratelimit_sha(u_char *hex)
{
    ngx_worksible_redis_sha(ngx_worksible_ratelimit_script, hex);
}


ngx_int_t
ngx_worksible_ratelimit_charge(ngx_http_request_t *r,
    ngx_worksible_request_t *st)
{
    u_char                     *p;
    ngx_str_t                   key, args[2];
    ngx_worksible_ratelimit_t  *rl;
    ngx_worksible_redis_op_t   *op;
    ngx_worksible_loc_conf_t   *lcf;
    ngx_worksible_main_conf_t  *mcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_worksible_module);

    rl = st->rl;

    if (rl == NULL) {
        if (!lcf->rate_limit) {
            return NGX_OK;
        }

        rl = ngx_pcalloc(r->pool, sizeof(ngx_worksible_ratelimit_t));
        if (rl == NULL) {
            return NGX_ERROR;
        }

        st->rl = rl;

        mcf = ngx_http_get_module_main_conf(r, ngx_worksible_module);

        /* a hash tag, so that a Redis Cluster can shard by company */

        key.len = sizeof("worksible:rl:{}") - 1
                  + st->identity.company_id.len;
        key.data = ngx_pnalloc(r->pool, key.len + 2 * NGX_INT_T_LEN);
        if (key.data == NULL) {
            return NGX_ERROR;
        }

        p = ngx_cpymem(key.data, "worksible:rl:{",
                       sizeof("worksible:rl:{") - 1);
        p = ngx_cpymem(p, st->identity.company_id.data,
                       st->identity.company_id.len);
        *p++ = '}';

        args[0].data = p;
        p = ngx_worksible_decimal(p, st->identity.rate_limit);
        args[0].len = p - args[0].data;
        args[1].data = p;
        p = ngx_worksible_decimal(p, st->identity.rate_window);
        args[1].len = p - args[1].data;

        if (ngx_worksible_request_arm(st) != NGX_OK) {
            return NGX_ERROR;
        }

        op = ngx_worksible_redis_eval(mcf->redis,
                                      ngx_worksible_ratelimit_script,
                                      (char *) mcf->ratelimit_sha, &key,
                                      args, 2, ngx_worksible_ratelimit_done,
                                      st);
        if (op != NULL) {
            st->redis_op = op;
            return NGX_AGAIN;
        }

        rl->failed = 1;
    }

    if (rl->decided) {
        /* charged in an earlier location of this client request */
        return NGX_OK;
    }

    rl->decided = 1;

    if (rl->failed) {
        if (ngx_worksible_ratelimit_unavailable(r) == NGX_DECLINED) {
            st->problem = NGX_WORKSIBLE_SERVICE_UNAVAILABLE;
            st->redis_failed = 1;
        }

    } else if (!rl->allowed) {
        st->problem = NGX_WORKSIBLE_RATE_LIMITED;
        st->retry_after = rl->t;
    }

    return NGX_OK;
}


/* Redis answered the charge (reply NULL: no answer): see the step */

static void
ngx_worksible_ratelimit_done(ngx_worksible_redis_op_t *op, redisReply *reply)
{
    ngx_uint_t                  i;
    ngx_worksible_request_t    *st;
    ngx_worksible_ratelimit_t  *rl;

    st = op->data;
    rl = st->rl;

    st->redis_op = NULL;

    if (reply != NULL && reply->type == REDIS_REPLY_ARRAY
        && reply->elements == 4)
    {
        for (i = 0; i < 4; i++) {
            if (reply->element[i]->type != REDIS_REPLY_INTEGER
                || reply->element[i]->integer < 0)
            {
                break;
            }
        }

        if (i == 4) {
            rl->allowed = reply->element[0]->integer ? 1 : 0;
            rl->remaining = (ngx_uint_t) reply->element[1]->integer;
            rl->t = (time_t) reply->element[2]->integer;
            rl->reset = (time_t) reply->element[3]->integer;
            rl->limit = st->identity.rate_limit;
            rl->window = st->identity.rate_window;
            rl->set = 1;

            ngx_worksible_request_resume(st);
            return;
        }
    }

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, st->r->connection->log, 0,
                      "worksible rate limit script failed: %*s",
                      (size_t) reply->len, reply->str);
    }

    rl->failed = 1;

    ngx_worksible_request_resume(st);
}


/*
 * Redis could not decide. fail=open: NGX_OK, the request passes without
 * rate-limit headers (a warning at most every 10 s); fail=closed:
 * NGX_DECLINED, the request gets 503.
 */

static ngx_int_t
ngx_worksible_ratelimit_unavailable(ngx_http_request_t *r)
{
    ngx_worksible_loc_conf_t   *lcf;
    ngx_worksible_main_conf_t  *mcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_worksible_module);

    if (!lcf->rate_limit_open) {
        return NGX_DECLINED;
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_worksible_module);

    if (ngx_time() - mcf->ratelimit_warned
        >= NGX_WORKSIBLE_RATELIMIT_WARN_EVERY)
    {
        mcf->ratelimit_warned = ngx_time();
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "worksible redis unavailable: requests pass without "
                      "rate limits (fail=open)");
    }

    return NGX_OK;
}


ngx_int_t
ngx_worksible_ratelimit_headers(ngx_http_request_t *r,
    ngx_worksible_request_t *st)
{
    u_char                     *p;
    ngx_str_t                   v;
    ngx_worksible_ratelimit_t  *rl;

    rl = st->rl;

    if (rl == NULL || !rl->set) {
        return NGX_OK;
    }

    ngx_worksible_ratelimit_hide(r);

    /* the five values in one allocation, written without ngx_sprintf */

    p = ngx_pnalloc(r->pool, 2 * st->identity.plan.len + 9 * NGX_INT64_LEN
                             + 32);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v.data = p;
    *p++ = '"';
    p = ngx_cpymem(p, st->identity.plan.data, st->identity.plan.len);
    p = ngx_cpymem(p, "\";q=", 4);
    p = ngx_worksible_decimal(p, rl->limit);
    p = ngx_cpymem(p, ";w=", 3);
    p = ngx_worksible_decimal(p, rl->window);
    v.len = p - v.data;

    if (ngx_worksible_header_add(r, "RateLimit-Policy", &v) != NGX_OK) {
        return NGX_ERROR;
    }

    v.data = p;
    *p++ = '"';
    p = ngx_cpymem(p, st->identity.plan.data, st->identity.plan.len);
    p = ngx_cpymem(p, "\";r=", 4);
    p = ngx_worksible_decimal(p, rl->remaining);
    p = ngx_cpymem(p, ";t=", 3);
    p = ngx_worksible_decimal(p, rl->t > 0 ? rl->t : 0);
    v.len = p - v.data;

    if (ngx_worksible_header_add(r, "RateLimit", &v) != NGX_OK) {
        return NGX_ERROR;
    }

    v.data = p;
    p = ngx_worksible_decimal(p, rl->limit);
    v.len = p - v.data;

    if (ngx_worksible_header_add(r, "X-RateLimit-Limit", &v) != NGX_OK) {
        return NGX_ERROR;
    }

    v.data = p;
    p = ngx_worksible_decimal(p, rl->remaining);
    v.len = p - v.data;

    if (ngx_worksible_header_add(r, "X-RateLimit-Remaining", &v) != NGX_OK) {
        return NGX_ERROR;
    }

    v.data = p;
    p = ngx_worksible_decimal(p, rl->reset > 0 ? rl->reset : 0);
    v.len = p - v.data;

    return ngx_worksible_header_add(r, "X-RateLimit-Reset", &v);
}


/*
 * A proxied service's own rate-limit headers would contradict ours: they
 * go (cleared, as proxy_hide_header would), every RateLimit, RateLimit-*
 * and X-RateLimit-* of them; its Retry-After stays.
 */

static void
ngx_worksible_ratelimit_hide(ngx_http_request_t *r)
{
    u_char           *name;
    size_t            len;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_out.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        name = h[i].key.data;
        len = h[i].key.len;

        if (len >= 2 && ngx_strncasecmp(name, (u_char *) "X-", 2) == 0) {
            name += 2;
            len -= 2;
        }

        if (len >= 9 && ngx_strncasecmp(name, (u_char *) "RateLimit", 9) == 0
            && (len == 9 || name[9] == '-'))
        {
            h[i].hash = 0;
        }
    }
}
