/*
 * libFuzzer target for the rate-limit headers
 * (ngx_worksible_ratelimit_headers()): the input holds the limiter's
 * answer (limit, window, remaining, t, reset: 8 bytes each), then lines:
 * the plan's name and the names of headers a proxied service sent. Ours
 * are RateLimit-Policy: "plan";q=..;w=.., RateLimit: "plan";r=..;t=..
 * (draft-ietf-httpapi-ratelimit-headers) and X-RateLimit-Limit,
 * -Remaining, -Reset, each once and with the numbers given; every
 * RateLimit* and X-RateLimit-* header of the service is gone.
 */

#include "fuzz_ngx.h"


/* the value of every header of the proxied service */
static u_char  ngx_worksible_fuzz_theirs[] = "1";


static ngx_uint_t
ngx_worksible_fuzz_count(ngx_http_request_t *r, const char *name,
    ngx_str_t *value)
{
    ngx_uint_t        i, n;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    n = 0;

    for (part = &r->headers_out.headers.part; part; part = part->next) {
        h = part->elts;

        for (i = 0; i < part->nelts; i++) {
            if (h[i].hash == 0
                || h[i].key.len != ngx_strlen(name)
                || ngx_strncasecmp(h[i].key.data, (u_char *) name,
                                   h[i].key.len) != 0)
            {
                continue;
            }

            n++;

            ngx_worksible_fuzz_assert(h[i].value.len == value->len
                                      && ngx_memcmp(h[i].value.data,
                                                    value->data,
                                                    value->len) == 0);
        }
    }

    return n;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                     *p, *last, *nl, buf[256];
    ngx_str_t                   v, plan;
    ngx_uint_t                  i;
    ngx_list_part_t            *part;
    ngx_table_elt_t            *h;
    ngx_http_request_t         *r;
    ngx_worksible_request_t    *st;
    ngx_worksible_ratelimit_t   rl;
    uint64_t                    n[5];

    if (size < sizeof(n)) {
        return 0;
    }

    ngx_memcpy(n, data, sizeof(n));
    data += sizeof(n);
    size -= sizeof(n);

    r = ngx_worksible_fuzz_request();

    st = ngx_worksible_request(r);
    if (st == NULL) {
        abort();
    }

    ngx_memzero(&rl, sizeof(ngx_worksible_ratelimit_t));
    rl.limit = n[0];
    rl.window = n[1];
    rl.remaining = n[2];
    /* Redis's integers, never negative (ngx_worksible_ratelimit_done()) */
    rl.t = (time_t) (n[3] & NGX_MAX_INT_T_VALUE);
    rl.reset = (time_t) (n[4] & NGX_MAX_INT_T_VALUE);
    rl.set = 1;
    st->rl = &rl;

    /* the plan, then the service's headers */

    p = ngx_pnalloc(r->pool, size);
    if (p == NULL && size) {
        abort();
    }

    ngx_memcpy(p, data, size);
    last = p + size;

    nl = ngx_strlchr(p, last, '\n');
    plan.data = p;
    plan.len = (nl ? nl : last) - p;
    st->identity.plan = plan;

    for (p = nl ? nl + 1 : last; p < last; p = nl + 1) {
        nl = ngx_strlchr(p, last, '\n');
        if (nl == NULL) {
            nl = last;
        }

        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            abort();
        }

        h->hash = 1;
        h->key.data = p;
        h->key.len = nl - p;
        h->value.data = ngx_worksible_fuzz_theirs;
        h->value.len = 1;
        h->next = NULL;
    }

    ngx_worksible_fuzz_assert(ngx_worksible_ratelimit_headers(r, st)
                              == NGX_OK);

    /* ours, once each */

    v.data = buf;

    if (plan.len < 128) {
        v.len = ngx_sprintf(buf, "\"%V\";q=%ui;w=%ui", &plan, rl.limit,
                            rl.window) - buf;
        ngx_worksible_fuzz_assert(
            ngx_worksible_fuzz_count(r, "RateLimit-Policy", &v) == 1);

        v.len = ngx_sprintf(buf, "\"%V\";r=%ui;t=%T", &plan, rl.remaining,
                            rl.t) - buf;
        ngx_worksible_fuzz_assert(
            ngx_worksible_fuzz_count(r, "RateLimit", &v) == 1);
    }

    v.len = ngx_sprintf(buf, "%ui", rl.limit) - buf;
    ngx_worksible_fuzz_assert(
        ngx_worksible_fuzz_count(r, "X-RateLimit-Limit", &v) == 1);

    v.len = ngx_sprintf(buf, "%ui", rl.remaining) - buf;
    ngx_worksible_fuzz_assert(
        ngx_worksible_fuzz_count(r, "X-RateLimit-Remaining", &v) == 1);

    v.len = ngx_sprintf(buf, "%T", rl.reset) - buf;
    ngx_worksible_fuzz_assert(
        ngx_worksible_fuzz_count(r, "X-RateLimit-Reset", &v) == 1);

    /* none of the service's */

    for (part = &r->headers_out.headers.part; part; part = part->next) {
        h = part->elts;

        for (i = 0; i < part->nelts; i++) {
            if (h[i].hash == 0 || h[i].value.data != ngx_worksible_fuzz_theirs)
            {
                continue;
            }

            /* RateLimit, RateLimit-*, X-RateLimit, X-RateLimit-* */

            p = h[i].key.data;
            last = p + h[i].key.len;

            if (last - p >= 2 && ngx_strncasecmp(p, (u_char *) "x-", 2) == 0) {
                p += 2;
            }

            ngx_worksible_fuzz_assert(
                !(last - p >= 9
                  && ngx_strncasecmp(p, (u_char *) "ratelimit", 9) == 0
                  && (last - p == 9 || p[9] == '-')));
        }
    }

    ngx_worksible_fuzz_free(r);

    return 0;
}
