/*
 * ULIDs (see ngx_worksible_id.h). Randomness from libsodium's CSPRNG,
 * drawn NGX_WORKSIBLE_ID_RANDOM bytes at a time: one getrandom(2) per 409
 * ids instead of one per request.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <sodium.h>

#include "ngx_worksible_id.h"


#define NGX_WORKSIBLE_ID_RANDOM  4096


static const u_char  ngx_worksible_crockford[] =
    "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/*
 * This process's random bytes not used yet. Not configuration (a reload
 * keeps them); a process that did not draw them (a worker forked after its
 * master drew some) draws its own, so that no two processes share ids.
 */
static u_char     ngx_worksible_id_random[NGX_WORKSIBLE_ID_RANDOM];
static size_t     ngx_worksible_id_left;
static ngx_pid_t  ngx_worksible_id_pid;


u_char *
ngx_worksible_ulid(u_char *p)
{
    int          i;
    uint64_t     ms, hi, lo;
    u_char       rnd[10];
    ngx_time_t  *tp;

    tp = ngx_timeofday();
    ms = (uint64_t) tp->sec * 1000 + tp->msec;

    for (i = 9; i >= 0; i--) {
        p[i] = ngx_worksible_crockford[ms & 31];
        ms >>= 5;
    }

    if (ngx_worksible_id_left < sizeof(rnd)
        || ngx_worksible_id_pid != ngx_pid)
    {
        randombytes_buf(ngx_worksible_id_random,
                        sizeof(ngx_worksible_id_random));
        ngx_worksible_id_left = sizeof(ngx_worksible_id_random);
        ngx_worksible_id_pid = ngx_pid;
    }

    ngx_worksible_id_left -= sizeof(rnd);
    ngx_memcpy(rnd, ngx_worksible_id_random + ngx_worksible_id_left,
               sizeof(rnd));
    sodium_memzero(ngx_worksible_id_random + ngx_worksible_id_left,
                   sizeof(rnd));

    /* 80 bits: hi holds the top 40, lo the bottom 40 */

    hi = 0;
    lo = 0;

    for (i = 0; i < 5; i++) {
        hi = (hi << 8) | rnd[i];
        lo = (lo << 8) | rnd[i + 5];
    }

    for (i = 7; i >= 0; i--) {
        p[10 + i] = ngx_worksible_crockford[hi & 31];
        p[18 + i] = ngx_worksible_crockford[lo & 31];
        hi >>= 5;
        lo >>= 5;
    }

    return p + NGX_WORKSIBLE_ULID_LEN;
}


ngx_uint_t
ngx_worksible_id_valid(ngx_str_t *s, const char *prefix)
{
    size_t  n, i;

    n = ngx_strlen(prefix);

    if (s->len != n + 1 + NGX_WORKSIBLE_ULID_LEN
        || ngx_strncmp(s->data, prefix, n) != 0
        || s->data[n] != '_'
        || s->data[n + 1] > '7')
    {
        return 0;
    }

    for (i = n + 1; i < s->len; i++) {
        if (ngx_strlchr((u_char *) ngx_worksible_crockford,
                        (u_char *) ngx_worksible_crockford + 32, s->data[i])
            == NULL)
        {
            return 0;
        }
    }

    return 1;
}
