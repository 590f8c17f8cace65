/*
 * The key cache (see ngx_worksible_cache.h), on the model of
 * ngx_http_limit_req_module: an rbtree keyed by the crc32 of the key id,
 * an LRU queue, entries allocated from the zone's slab pool under its
 * mutex, and a zone that survives reloads.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_worksible_cache.h"


typedef struct {
    u_char                      color;
    u_char                      found;
    u_char                      revoked;
    u_char                      api_access;
    u_short                     len[4];       /* key, company, plan, scopes */
    u_short                     nallowlist;
    ngx_queue_t                 queue;
    ngx_msec_t                  expires;      /* ngx_current_msec */
    time_t                      expires_at;
    ngx_uint_t                  touched;      /* minute of the last use */
    ngx_uint_t                  secret_version;
    ngx_uint_t                  rate_limit;
    ngx_uint_t                  rate_window;
    u_char                      key_id[NGX_WORKSIBLE_KEY_ID_LEN];
    u_char                      hash[NGX_WORKSIBLE_KEY_HASH_LEN];
    u_char                      data[1];      /* strings, then allowlist */
} ngx_worksible_cache_node_t;


typedef struct {
    ngx_worksible_zone_sh_t      *sh;         /* ngx_worksible_zone_t */
    ngx_slab_pool_t              *shpool;
    ngx_msec_t                    ttl;
    ngx_msec_t                    negative_ttl;
} ngx_worksible_cache_ctx_t;


static ngx_int_t ngx_worksible_cache_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_worksible_cache_rbtree_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_worksible_cache_node_t *ngx_worksible_cache_lookup(
    ngx_worksible_cache_ctx_t *ctx, const u_char *key_id, uint32_t hash);
static void ngx_worksible_cache_delete(ngx_worksible_cache_ctx_t *ctx,
    ngx_worksible_cache_node_t *cn);
static void ngx_worksible_cache_expire(ngx_worksible_cache_ctx_t *ctx,
    ngx_uint_t n);
static ngx_int_t ngx_worksible_cache_copy(ngx_pool_t *pool, ngx_str_t *dst,
    u_char *src, size_t len);


/* the rbtree node and the entry share the bytes from "color" on */
#define ngx_worksible_cache_node(node)                                        \
    ((ngx_worksible_cache_node_t *) &(node)->color)

#define ngx_worksible_cache_rbnode(cn)                                        \
    ((ngx_rbtree_node_t *) ((u_char *) (cn)                                   \
                            - offsetof(ngx_rbtree_node_t, color)))


char *
ngx_worksible_cache_conf(ngx_conf_t *cf, ngx_shm_zone_t **zone)
{
    ssize_t                     size;
    ngx_str_t                  *value, name, s;
    ngx_int_t                   rc, ttl, negative_ttl;
    ngx_uint_t                  i;
    ngx_worksible_cache_ctx_t  *ctx;

    value = cf->args->elts;

    size = 0;
    ngx_str_null(&name);
    ttl = 30000;
    negative_ttl = 5000;

    for (i = 1; i < cf->args->nelts; i++) {

        rc = ngx_worksible_zone_arg(&value[i], &name, &size);

        if (rc == NGX_ERROR) {
            goto invalid;
        }

        if (rc == NGX_OK) {
            continue;
        }

        if (ngx_strncmp(value[i].data, "ttl=", 4) == 0) {
            s.data = value[i].data + 4;
            s.len = value[i].len - 4;
            ttl = ngx_parse_time(&s, 0);

            if (ttl == NGX_ERROR || ttl == 0) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "negative_ttl=", 13) == 0) {
            s.data = value[i].data + 13;
            s.len = value[i].len - 13;
            negative_ttl = ngx_parse_time(&s, 0);

            if (negative_ttl == NGX_ERROR || negative_ttl == 0) {
                goto invalid;
            }

            continue;
        }

        goto invalid;
    }

    if (name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"worksible_key_cache\" must have "
                           "the \"zone\" parameter");
        return NGX_CONF_ERROR;
    }

    ctx = ngx_pcalloc(cf->pool, sizeof(ngx_worksible_cache_ctx_t));
    if (ctx == NULL) {
        return NGX_CONF_ERROR;
    }

    ctx->ttl = ttl;
    ctx->negative_ttl = negative_ttl;

    return ngx_worksible_zone_add(cf, &name, size, &ngx_worksible_cache_conf,
                                  ctx, ngx_worksible_cache_init_zone, zone);

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid worksible_key_cache parameter \"%V\" "
                       "(zone=NAME:SIZE of at least 8 pages, ttl=TIME, "
                       "negative_ttl=TIME)",
                       &value[i]);

    return NGX_CONF_ERROR;
}


static ngx_int_t
ngx_worksible_cache_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    return ngx_worksible_zone_init(shm_zone, data,
                                   ngx_worksible_cache_rbtree_insert_value,
                                   "worksible_key_cache");
}


ngx_int_t
ngx_worksible_zone_arg(ngx_str_t *arg, ngx_str_t *name, ssize_t *size)
{
    u_char     *p;
    ngx_str_t   s;

    if (ngx_strncmp(arg->data, "zone=", 5) != 0) {
        return NGX_DECLINED;
    }

    name->data = arg->data + 5;
    p = (u_char *) ngx_strchr(name->data, ':');

    if (p == NULL) {
        return NGX_ERROR;
    }

    name->len = p - name->data;
    s.data = p + 1;
    s.len = arg->data + arg->len - s.data;

    *size = ngx_parse_size(&s);

    if (name->len == 0 || *size == NGX_ERROR
        || *size < (ssize_t) (8 * ngx_pagesize))
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


char *
ngx_worksible_zone_add(ngx_conf_t *cf, ngx_str_t *name, ssize_t size,
    void *tag, void *ctx, ngx_shm_zone_init_pt init, ngx_shm_zone_t **zone)
{
    *zone = ngx_shared_memory_add(cf, name, size, tag);
    if (*zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if ((*zone)->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate zone \"%V\"", name);
        return NGX_CONF_ERROR;
    }

    (*zone)->init = init;
    (*zone)->data = ctx;

    return NGX_CONF_OK;
}


ngx_int_t
ngx_worksible_zone_init(ngx_shm_zone_t *shm_zone, void *data,
    ngx_rbtree_insert_pt insert, const char *directive)
{
    ngx_worksible_zone_t  *octx = data;

    size_t                 len;
    ngx_worksible_zone_t  *ctx;

    ctx = shm_zone->data;

    if (octx) {
        /* a reload: the zone and its entries stay */
        ctx->sh = octx->sh;
        ctx->shpool = octx->shpool;
        return NGX_OK;
    }

    ctx->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        ctx->sh = ctx->shpool->data;
        return NGX_OK;
    }

    ctx->sh = ngx_slab_alloc(ctx->shpool, sizeof(ngx_worksible_zone_sh_t));
    if (ctx->sh == NULL) {
        return NGX_ERROR;
    }

    ctx->shpool->data = ctx->sh;

    ngx_rbtree_init(&ctx->sh->rbtree, &ctx->sh->sentinel, insert);
    ngx_queue_init(&ctx->sh->queue);

    len = sizeof(" in  zone \"\"") + ngx_strlen(directive)
          + shm_zone->shm.name.len;

    ctx->shpool->log_ctx = ngx_slab_alloc(ctx->shpool, len);
    if (ctx->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(ctx->shpool->log_ctx, " in %s zone \"%V\"%Z", directive,
                &shm_zone->shm.name);

    return NGX_OK;
}


static void
ngx_worksible_cache_rbtree_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t          **p;
    ngx_worksible_cache_node_t  *cn, *cnt;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else { /* node->key == temp->key */

            cn = ngx_worksible_cache_node(node);
            cnt = ngx_worksible_cache_node(temp);

            p = (ngx_memcmp(cn->key_id, cnt->key_id,
                            NGX_WORKSIBLE_KEY_ID_LEN) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


/* the entry of key_id, expired or not; the zone must be locked */

static ngx_worksible_cache_node_t *
ngx_worksible_cache_lookup(ngx_worksible_cache_ctx_t *ctx,
    const u_char *key_id, uint32_t hash)
{
    ngx_int_t                    rc;
    ngx_rbtree_node_t           *node, *sentinel;
    ngx_worksible_cache_node_t  *cn;

    node = ctx->sh->rbtree.root;
    sentinel = ctx->sh->rbtree.sentinel;

    while (node != sentinel) {

        if (hash < node->key) {
            node = node->left;
            continue;
        }

        if (hash > node->key) {
            node = node->right;
            continue;
        }

        cn = ngx_worksible_cache_node(node);

        rc = ngx_memcmp(key_id, cn->key_id, NGX_WORKSIBLE_KEY_ID_LEN);

        if (rc == 0) {
            return cn;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


static void
ngx_worksible_cache_delete(ngx_worksible_cache_ctx_t *ctx,
    ngx_worksible_cache_node_t *cn)
{
    ngx_rbtree_node_t  *node;

    node = ngx_worksible_cache_rbnode(cn);

    ngx_queue_remove(&cn->queue);
    ngx_rbtree_delete(&ctx->sh->rbtree, node);
    ngx_slab_free_locked(ctx->shpool, node);
}


/*
 * Frees up to n expired entries from the least recently used end; n == 0
 * frees the least recently used one even if it has not expired (the zone
 * is full).
 */

static void
ngx_worksible_cache_expire(ngx_worksible_cache_ctx_t *ctx, ngx_uint_t n)
{
    ngx_uint_t                   force;
    ngx_queue_t                 *q;
    ngx_worksible_cache_node_t  *cn;

    force = (n == 0);

    if (force) {
        n = 1;
    }

    while (n-- && !ngx_queue_empty(&ctx->sh->queue)) {

        q = ngx_queue_last(&ctx->sh->queue);
        cn = ngx_queue_data(q, ngx_worksible_cache_node_t, queue);

        if (!force && (ngx_msec_int_t) (cn->expires - ngx_current_msec) > 0) {
            return;
        }

        ngx_worksible_cache_delete(ctx, cn);
    }
}


ngx_int_t
ngx_worksible_cache_get(ngx_shm_zone_t *zone, const u_char *key_id,
    ngx_pool_t *pool, ngx_worksible_key_record_t *rec, ngx_uint_t *generation)
{
    u_char                      *p;
    uint32_t                     hash;
    ngx_int_t                    rc;
    ngx_worksible_cache_ctx_t   *ctx;
    ngx_worksible_cache_node_t  *cn;

    ctx = zone->data;
    hash = ngx_crc32_short((u_char *) key_id, NGX_WORKSIBLE_KEY_ID_LEN);

    ngx_shmtx_lock(&ctx->shpool->mutex);

    *generation = ctx->sh->generation;

    cn = ngx_worksible_cache_lookup(ctx, key_id, hash);

    if (cn == NULL || (ngx_msec_int_t) (cn->expires - ngx_current_msec) <= 0)
    {
        ngx_shmtx_unlock(&ctx->shpool->mutex);
        return NGX_DECLINED;
    }

    ngx_queue_remove(&cn->queue);
    ngx_queue_insert_head(&ctx->sh->queue, &cn->queue);

    ngx_memzero(rec, sizeof(ngx_worksible_key_record_t));

    rec->found = cn->found;
    rec->touch_due = (cn->touched != (ngx_uint_t) (ngx_time() / 60));
    rc = NGX_OK;

    if (cn->found) {
        ngx_memcpy(rec->hash, cn->hash, NGX_WORKSIBLE_KEY_HASH_LEN);
        rec->secret_version = cn->secret_version;
        rec->expires_at = cn->expires_at;
        rec->revoked = cn->revoked;
        rec->api_access = cn->api_access;
        rec->rate_limit = cn->rate_limit;
        rec->rate_window = cn->rate_window;
        rec->nallowlist = cn->nallowlist;

        p = cn->data;

        if (ngx_worksible_cache_copy(pool, &rec->api_key_id, p, cn->len[0])
            != NGX_OK
            || ngx_worksible_cache_copy(pool, &rec->company_id,
                                        p += cn->len[0], cn->len[1])
               != NGX_OK
            || ngx_worksible_cache_copy(pool, &rec->plan,
                                        p += cn->len[1], cn->len[2])
               != NGX_OK
            || ngx_worksible_cache_copy(pool, &rec->scopes,
                                        p += cn->len[2], cn->len[3])
               != NGX_OK)
        {
            rc = NGX_ERROR;
            goto done;
        }

        p += cn->len[3];

        if (cn->nallowlist) {
            rec->allowlist = ngx_palloc(pool, cn->nallowlist
                                              * sizeof(ngx_worksible_cidr_t));
            if (rec->allowlist == NULL) {
                rc = NGX_ERROR;
                goto done;
            }

            ngx_memcpy(rec->allowlist, p,
                       cn->nallowlist * sizeof(ngx_worksible_cidr_t));
        }
    }

done:

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return rc;
}


static ngx_int_t
ngx_worksible_cache_copy(ngx_pool_t *pool, ngx_str_t *dst, u_char *src,
    size_t len)
{
    dst->len = len;
    dst->data = ngx_pnalloc(pool, len);

    if (dst->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(dst->data, src, len);

    return NGX_OK;
}


void
ngx_worksible_cache_put(ngx_shm_zone_t *zone, const u_char *key_id,
    ngx_worksible_key_record_t *rec, ngx_uint_t generation)
{
    u_char                      *p;
    size_t                       size, strings;
    uint32_t                     hash;
    ngx_rbtree_node_t           *node;
    ngx_worksible_cache_ctx_t   *ctx;
    ngx_worksible_cache_node_t  *cn;

    ctx = zone->data;
    hash = ngx_crc32_short((u_char *) key_id, NGX_WORKSIBLE_KEY_ID_LEN);

    strings = rec->found ? rec->api_key_id.len + rec->company_id.len
                           + rec->plan.len + rec->scopes.len
                         : 0;

    if (strings > 65535 || rec->nallowlist > 65535) {
        return;
    }

    size = offsetof(ngx_rbtree_node_t, color)
           + offsetof(ngx_worksible_cache_node_t, data)
           + strings + rec->nallowlist * sizeof(ngx_worksible_cidr_t);

    ngx_shmtx_lock(&ctx->shpool->mutex);

    if (ctx->sh->generation != generation) {
        ngx_shmtx_unlock(&ctx->shpool->mutex);
        return;
    }

    cn = ngx_worksible_cache_lookup(ctx, key_id, hash);

    if (cn != NULL) {
        ngx_worksible_cache_delete(ctx, cn);
    }

    ngx_worksible_cache_expire(ctx, 2);

    node = ngx_slab_alloc_locked(ctx->shpool, size);

    while (node == NULL && !ngx_queue_empty(&ctx->sh->queue)) {
        ngx_worksible_cache_expire(ctx, 0);
        node = ngx_slab_alloc_locked(ctx->shpool, size);
    }

    if (node == NULL) {
        ngx_shmtx_unlock(&ctx->shpool->mutex);
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "worksible_key_cache zone \"%V\" cannot hold a "
                      "%uz byte entry", &zone->shm.name, size);
        return;
    }

    node->key = hash;
    cn = ngx_worksible_cache_node(node);

    cn->found = rec->found ? 1 : 0;
    cn->revoked = rec->revoked ? 1 : 0;
    cn->api_access = rec->api_access ? 1 : 0;
    cn->expires = ngx_current_msec + (rec->found ? ctx->ttl
                                                 : ctx->negative_ttl);
    cn->touched = (ngx_uint_t) (ngx_time() / 60);
    cn->expires_at = rec->expires_at;
    cn->secret_version = rec->secret_version;
    cn->rate_limit = rec->rate_limit;
    cn->rate_window = rec->rate_window;
    cn->nallowlist = (u_short) rec->nallowlist;
    ngx_memcpy(cn->key_id, key_id, NGX_WORKSIBLE_KEY_ID_LEN);
    ngx_memcpy(cn->hash, rec->hash, NGX_WORKSIBLE_KEY_HASH_LEN);

    p = cn->data;

    if (rec->found) {
        cn->len[0] = (u_short) rec->api_key_id.len;
        cn->len[1] = (u_short) rec->company_id.len;
        cn->len[2] = (u_short) rec->plan.len;
        cn->len[3] = (u_short) rec->scopes.len;

        p = ngx_cpymem(p, rec->api_key_id.data, rec->api_key_id.len);
        p = ngx_cpymem(p, rec->company_id.data, rec->company_id.len);
        p = ngx_cpymem(p, rec->plan.data, rec->plan.len);
        p = ngx_cpymem(p, rec->scopes.data, rec->scopes.len);

        if (rec->nallowlist) {
            ngx_memcpy(p, rec->allowlist,
                       rec->nallowlist * sizeof(ngx_worksible_cidr_t));
        }

    } else {
        ngx_memzero(cn->len, sizeof(cn->len));
    }

    ngx_rbtree_insert(&ctx->sh->rbtree, node);
    ngx_queue_insert_head(&ctx->sh->queue, &cn->queue);

    ngx_shmtx_unlock(&ctx->shpool->mutex);
}


ngx_uint_t
ngx_worksible_cache_touch(ngx_shm_zone_t *zone, const u_char *key_id)
{
    uint32_t                     hash;
    ngx_uint_t                   minute, first;
    ngx_worksible_cache_ctx_t   *ctx;
    ngx_worksible_cache_node_t  *cn;

    ctx = zone->data;
    hash = ngx_crc32_short((u_char *) key_id, NGX_WORKSIBLE_KEY_ID_LEN);
    minute = (ngx_uint_t) (ngx_time() / 60);
    first = 0;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    cn = ngx_worksible_cache_lookup(ctx, key_id, hash);

    if (cn != NULL && cn->touched != minute) {
        cn->touched = minute;
        first = 1;
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return first;
}


void
ngx_worksible_cache_forget(ngx_shm_zone_t *zone, const u_char *key_id)
{
    ngx_queue_t                 *q;
    ngx_worksible_cache_ctx_t   *ctx;
    ngx_worksible_cache_node_t  *cn;

    ctx = zone->data;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    ctx->sh->generation++;

    if (key_id != NULL) {
        cn = ngx_worksible_cache_lookup(ctx, key_id,
                 ngx_crc32_short((u_char *) key_id, NGX_WORKSIBLE_KEY_ID_LEN));

        if (cn != NULL) {
            ngx_worksible_cache_delete(ctx, cn);
        }

    } else {
        while (!ngx_queue_empty(&ctx->sh->queue)) {
            q = ngx_queue_last(&ctx->sh->queue);
            cn = ngx_queue_data(q, ngx_worksible_cache_node_t, queue);
            ngx_worksible_cache_delete(ctx, cn);
        }
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);
}

