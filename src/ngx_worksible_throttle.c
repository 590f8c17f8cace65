/*
 * Failed authentications per client address (see ngx_worksible_throttle.h).
 *
 * Each address has an excess, in thousandths of a failure, that drains at
 * the rate and grows by 1000 per 401 (the leaky bucket of limit_req).
 * Entries live in nginx's string rbtree (crc32 of the address, then the
 * address) and an LRU queue; drained ones go as new ones come, and when
 * the zone is full the least recently used one goes.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_worksible_cache.h"
#include "ngx_worksible_throttle.h"


typedef struct {
    ngx_str_node_t              sn;           /* str: the address bytes */
    ngx_queue_t                 queue;
    ngx_msec_t                  last;         /* ngx_current_msec */
    ngx_uint_t                  excess;       /* failures x 1000 */
    u_char                      addr[16];
} ngx_worksible_throttle_node_t;


typedef struct {
    ngx_worksible_zone_sh_t         *sh;      /* ngx_worksible_zone_t */
    ngx_slab_pool_t                 *shpool;
    ngx_uint_t                       rate;    /* failures x 1000 per second */
    ngx_uint_t                       burst;   /* failures x 1000 */
} ngx_worksible_throttle_ctx_t;


static ngx_int_t ngx_worksible_throttle_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_worksible_throttle_addr(ngx_http_request_t *r,
    ngx_str_t *addr);
static ngx_uint_t ngx_worksible_throttle_drained(
    ngx_worksible_throttle_ctx_t *ctx, ngx_worksible_throttle_node_t *tn);
static ngx_worksible_throttle_node_t *ngx_worksible_throttle_lookup(
    ngx_worksible_throttle_ctx_t *ctx, ngx_str_t *addr, uint32_t hash);
static void ngx_worksible_throttle_expire(ngx_worksible_throttle_ctx_t *ctx,
    ngx_uint_t force);


char *
ngx_worksible_throttle_conf(ngx_conf_t *cf, ngx_shm_zone_t **zone)
{
    ssize_t                        size;
    ngx_str_t                     *value, name, s;
    ngx_int_t                      rc, rate, scale, burst;
    ngx_uint_t                     i;
    ngx_worksible_throttle_ctx_t  *ctx;

    value = cf->args->elts;

    size = 0;
    ngx_str_null(&name);
    rate = 60;
    scale = 60;
    burst = 30;

    for (i = 1; i < cf->args->nelts; i++) {

        rc = ngx_worksible_zone_arg(&value[i], &name, &size);

        if (rc == NGX_ERROR) {
            goto invalid;
        }

        if (rc == NGX_OK) {
            continue;
        }

        if (ngx_strncmp(value[i].data, "rate=", 5) == 0) {
            s.data = value[i].data + 5;
            s.len = value[i].len - 5;

            if (s.len > 2 && ngx_strncmp(s.data + s.len - 2, "/s", 2) == 0) {
                scale = 1;

            } else if (s.len > 2
                       && ngx_strncmp(s.data + s.len - 2, "/m", 2) == 0)
            {
                scale = 60;

            } else {
                goto invalid;
            }

            rate = ngx_atoi(s.data, s.len - 2);

            if (rate <= 0 || rate > 1000000) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "burst=", 6) == 0) {
            burst = ngx_atoi(value[i].data + 6, value[i].len - 6);

            if (burst <= 0 || burst > 1000000) {
                goto invalid;
            }

            continue;
        }

        goto invalid;
    }

    if (name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"worksible_auth_failures\" must have the "
                           "\"zone\" parameter");
        return NGX_CONF_ERROR;
    }

    ctx = ngx_pcalloc(cf->pool, sizeof(ngx_worksible_throttle_ctx_t));
    if (ctx == NULL) {
        return NGX_CONF_ERROR;
    }

    ctx->rate = ngx_max(rate * 1000 / scale, 1);
    ctx->burst = burst * 1000;

    return ngx_worksible_zone_add(cf, &name, size,
                                  &ngx_worksible_throttle_conf, ctx,
                                  ngx_worksible_throttle_init_zone, zone);

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid worksible_auth_failures parameter \"%V\" "
                       "(zone=NAME:SIZE of at least 8 pages, rate=N/m or "
                       "N/s, burst=N)", &value[i]);

    return NGX_CONF_ERROR;
}


static ngx_int_t
ngx_worksible_throttle_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    return ngx_worksible_zone_init(shm_zone, data,
                                   ngx_str_rbtree_insert_value,
                                   "worksible_auth_failures");
}


ngx_int_t
ngx_worksible_throttle_check(ngx_shm_zone_t *zone, ngx_http_request_t *r,
    time_t *retry)
{
    uint32_t                        hash;
    ngx_str_t                       addr;
    ngx_uint_t                      excess;
    ngx_worksible_throttle_ctx_t   *ctx;
    ngx_worksible_throttle_node_t  *tn;

    if (ngx_worksible_throttle_addr(r, &addr) != NGX_OK) {
        return NGX_OK;
    }

    ctx = zone->data;
    hash = ngx_crc32_short(addr.data, addr.len);
    excess = 0;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    tn = ngx_worksible_throttle_lookup(ctx, &addr, hash);

    if (tn != NULL) {
        excess = ngx_worksible_throttle_drained(ctx, tn);
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    if (excess <= ctx->burst) {
        return NGX_OK;
    }

    /* whole seconds until the excess is back at burst */

    *retry = (time_t) ((excess - ctx->burst + ctx->rate - 1) / ctx->rate);
    *retry = ngx_max(*retry, 1);

    return NGX_BUSY;
}


void
ngx_worksible_throttle_fail(ngx_shm_zone_t *zone, ngx_http_request_t *r)
{
    size_t                          size;
    uint32_t                        hash;
    ngx_str_t                       addr;
    ngx_worksible_throttle_ctx_t   *ctx;
    ngx_worksible_throttle_node_t  *tn;

    if (ngx_worksible_throttle_addr(r, &addr) != NGX_OK) {
        return;
    }

    ctx = zone->data;
    hash = ngx_crc32_short(addr.data, addr.len);

    ngx_shmtx_lock(&ctx->shpool->mutex);

    tn = ngx_worksible_throttle_lookup(ctx, &addr, hash);

    if (tn != NULL) {
        /* past burst it is refused, never charged more: the wait is short */
        tn->excess = ngx_min(ngx_worksible_throttle_drained(ctx, tn) + 1000,
                             ctx->burst + 1000);
        tn->last = ngx_current_msec;
        ngx_queue_remove(&tn->queue);
        ngx_queue_insert_head(&ctx->sh->queue, &tn->queue);

        ngx_shmtx_unlock(&ctx->shpool->mutex);
        return;
    }

    ngx_worksible_throttle_expire(ctx, 0);

    size = sizeof(ngx_worksible_throttle_node_t);

    tn = ngx_slab_alloc_locked(ctx->shpool, size);

    if (tn == NULL) {
        /* full: the least recently used address goes */
        ngx_worksible_throttle_expire(ctx, 1);
        tn = ngx_slab_alloc_locked(ctx->shpool, size);
    }

    if (tn != NULL) {
        ngx_memcpy(tn->addr, addr.data, addr.len);
        tn->sn.node.key = hash;
        tn->sn.str.data = tn->addr;
        tn->sn.str.len = addr.len;
        tn->excess = 1000;
        tn->last = ngx_current_msec;

        ngx_rbtree_insert(&ctx->sh->rbtree, &tn->sn.node);
        ngx_queue_insert_head(&ctx->sh->queue, &tn->queue);
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);
}


/*
 * The client address after realip, IPv4 and IPv4-mapped IPv6 alike (one
 * client, one bucket); NGX_DECLINED for a unix socket.
 */

static ngx_int_t
ngx_worksible_throttle_addr(ngx_http_request_t *r, ngx_str_t *addr)
{
    struct sockaddr_in   *sin;
#if (NGX_HAVE_INET6)
    struct sockaddr_in6  *sin6;
#endif

    switch (r->connection->sockaddr->sa_family) {

    case AF_INET:
        sin = (struct sockaddr_in *) r->connection->sockaddr;
        addr->data = (u_char *) &sin->sin_addr;
        addr->len = 4;
        return NGX_OK;

#if (NGX_HAVE_INET6)
    case AF_INET6:
        sin6 = (struct sockaddr_in6 *) r->connection->sockaddr;
        addr->data = sin6->sin6_addr.s6_addr;
        addr->len = 16;

        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
            addr->data += 12;
            addr->len = 4;
        }

        return NGX_OK;
#endif

    default:
        return NGX_DECLINED;
    }
}


/* tn's excess now, drained at the rate since its last failure */

static ngx_uint_t
ngx_worksible_throttle_drained(ngx_worksible_throttle_ctx_t *ctx,
    ngx_worksible_throttle_node_t *tn)
{
    ngx_msec_int_t  ms;
    ngx_uint_t      drained;

    ms = (ngx_msec_int_t) (ngx_current_msec - tn->last);
    drained = (ms > 0) ? ctx->rate * (ngx_uint_t) ms / 1000 : 0;

    return (tn->excess > drained) ? tn->excess - drained : 0;
}


static ngx_worksible_throttle_node_t *
ngx_worksible_throttle_lookup(ngx_worksible_throttle_ctx_t *ctx,
    ngx_str_t *addr, uint32_t hash)
{
    ngx_str_node_t  *sn;

    sn = ngx_str_rbtree_lookup(&ctx->sh->rbtree, addr, hash);

    return (ngx_worksible_throttle_node_t *) sn;
}


/*
 * Frees up to two drained entries from the least recently used end; force:
 * the least recently used one whatever its excess (the zone is full).
 */

static void
ngx_worksible_throttle_expire(ngx_worksible_throttle_ctx_t *ctx,
    ngx_uint_t force)
{
    ngx_uint_t                      n;
    ngx_queue_t                    *q;
    ngx_worksible_throttle_node_t  *tn;

    for (n = 0; n < 2 && !ngx_queue_empty(&ctx->sh->queue); n++) {

        q = ngx_queue_last(&ctx->sh->queue);
        tn = ngx_queue_data(q, ngx_worksible_throttle_node_t, queue);

        if (!force && ngx_worksible_throttle_drained(ctx, tn) > 0) {
            return;
        }

        ngx_queue_remove(q);
        ngx_rbtree_delete(&ctx->sh->rbtree, &tn->sn.node);
        ngx_slab_free_locked(ctx->shpool, tn);

        if (force) {
            return;
        }
    }
}
