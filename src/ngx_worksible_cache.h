/*
 * The key cache: verified key records shared by all workers in a shared
 * memory zone (slab + rbtree + LRU queue, like limit_req), including
 * negative entries for key ids that do not exist.
 */

#ifndef _NGX_WORKSIBLE_CACHE_H_INCLUDED_
#define _NGX_WORKSIBLE_CACHE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_worksible_cidr.h"
#include "ngx_worksible_key.h"


/*
 * The module's shared memory zones (the key cache, worksible_auth_failures)
 * keep their entries in an rbtree and an LRU queue, like limit_req; a
 * zone's ctx begins with these two members.
 */
typedef struct {
    ngx_rbtree_t                rbtree;
    ngx_rbtree_node_t           sentinel;
    ngx_queue_t                 queue;
    ngx_uint_t                  generation;   /* key cache: forgets so far */
} ngx_worksible_zone_sh_t;

typedef struct {
    ngx_worksible_zone_sh_t    *sh;
    ngx_slab_pool_t            *shpool;
} ngx_worksible_zone_t;


/*
 * "zone=NAME:SIZE" of a directive's argument arg: NGX_OK with name and
 * size, NGX_DECLINED when arg is another parameter, NGX_ERROR when it is
 * malformed or smaller than 8 pages.
 */
ngx_int_t ngx_worksible_zone_arg(ngx_str_t *arg, ngx_str_t *name,
    ssize_t *size);

/*
 * Adds the zone name of size bytes for tag (the directive's handler) with
 * ctx (an ngx_worksible_zone_t first) and init into *zone; NGX_CONF_OK, or
 * NGX_CONF_ERROR with the error logged (a duplicate zone).
 */
char *ngx_worksible_zone_add(ngx_conf_t *cf, ngx_str_t *name, ssize_t size,
    void *tag, void *ctx, ngx_shm_zone_init_pt init, ngx_shm_zone_t **zone);

/*
 * The init of such a zone (shm_zone->init calls it with its data): the
 * tree and the queue, made once and kept across reloads; insert orders
 * the tree, directive names the zone in the slab's error messages.
 * NGX_OK or NGX_ERROR.
 */
ngx_int_t ngx_worksible_zone_init(ngx_shm_zone_t *shm_zone, void *data,
    ngx_rbtree_insert_pt insert, const char *directive);


/* what PostgreSQL knows of a key id, as the access phase needs it */
typedef struct {
    ngx_uint_t                  found;        /* 0: no such key id */
    u_char                      hash[NGX_WORKSIBLE_KEY_HASH_LEN];
    ngx_uint_t                  secret_version;
    time_t                      expires_at;   /* Unix seconds, 0: never */
    ngx_uint_t                  revoked;
    ngx_uint_t                  api_access;
    ngx_uint_t                  rate_limit;   /* requests per rate_window */
    ngx_uint_t                  rate_window;  /* seconds */
    ngx_str_t                   api_key_id;
    ngx_str_t                   company_id;
    ngx_str_t                   plan;
    ngx_str_t                   scopes;       /* space-separated */
    ngx_worksible_cidr_t       *allowlist;
    ngx_uint_t                  nallowlist;
    ngx_uint_t                  touch_due;    /* cached: not used this
                                                 minute yet (a hint for
                                                 ngx_worksible_cache_touch) */
} ngx_worksible_key_record_t;


/*
 * "worksible_key_cache zone=NAME:SIZE [ttl=TIME] [negative_ttl=TIME]":
 * adds the zone. Returns NGX_CONF_OK or an error for nginx -t.
 */
char *ngx_worksible_cache_conf(ngx_conf_t *cf, ngx_shm_zone_t **zone);

/*
 * Looks key_id (NGX_WORKSIBLE_KEY_ID_LEN bytes) up. NGX_OK: rec holds a
 * copy from pool (strings and allowlist), found or negative. NGX_DECLINED:
 * not cached, or expired. NGX_ERROR: out of memory. *generation gets the
 * count of forgets so far, for ngx_worksible_cache_put() after a lookup in
 * PostgreSQL (a revocation announced meanwhile wins).
 */
ngx_int_t ngx_worksible_cache_get(ngx_shm_zone_t *zone, const u_char *key_id,
    ngx_pool_t *pool, ngx_worksible_key_record_t *rec,
    ngx_uint_t *generation);

/*
 * A verified use of key_id: 1 when it is the key's first in the current
 * minute on this server (then record last_used_at), 0 otherwise or when the
 * key is not cached (its lookup recorded the minute).
 */
ngx_uint_t ngx_worksible_cache_touch(ngx_shm_zone_t *zone,
    const u_char *key_id);

/*
 * Drops key_id's entry (a revoked key: the next use asks PostgreSQL), or
 * every entry when key_id is NULL.
 */
void ngx_worksible_cache_forget(ngx_shm_zone_t *zone, const u_char *key_id);

/*
 * Stores rec for key_id for the zone's ttl (negative_ttl when not found),
 * replacing an older entry; evicts the least recently used entries when
 * the zone is full. A record that does not fit is not cached, and neither
 * is one read before a forget (generation is no longer the zone's: a
 * revocation announced while its lookup ran).
 */
void ngx_worksible_cache_put(ngx_shm_zone_t *zone, const u_char *key_id,
    ngx_worksible_key_record_t *rec, ngx_uint_t generation);


#endif /* _NGX_WORKSIBLE_CACHE_H_INCLUDED_ */
