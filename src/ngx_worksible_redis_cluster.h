/*
 * Redis Cluster (https://redis.io/docs/reference/cluster-spec/) behind
 * "worksible_redis ADDRESS [ADDRESS ...] cluster": the ADDRESSes are seed
 * nodes. Each worker reads the slot map (CLUSTER SLOTS) from a seed at
 * start, and again after a MOVED, a CLUSTERDOWN, a command for a node that
 * is down, or a node's breaker opening (at each of its failed probes, so an
 * idle worker learns of a failover too); at most one read at a time, 100
 * ms apart at least. A node, not a seed, that left the map while down is
 * closed then. A command goes to the primary of its key's slot (CRC16 of
 * the key, or of its {hash tag}, modulo 16384) over that node's own
 * connection of ngx_worksible_redis.c (made when first needed, with its
 * timeout, breaker, reconnect and resend rules). Before the map is read,
 * commands go to the first seed that is up and its MOVED is followed.
 *
 * Replies: MOVED updates the slot's node and sends the command there; ASK
 * sends ASKING and the command to the node named, the map unchanged;
 * TRYAGAIN sends it again after 50 ms. At most 5 of these per command,
 * within its one timeout. CLUSTERDOWN, a slot without a node and a node
 * whose breaker is open are "Redis down" for the requester (its reply is
 * NULL, or ngx_worksible_redis_eval() returns NULL at once). Scripts are
 * sent with EVALSHA and, on a node that answers NOSCRIPT, once with EVAL,
 * which loads them there.
 */

#ifndef _NGX_WORKSIBLE_REDIS_CLUSTER_H_INCLUDED_
#define _NGX_WORKSIBLE_REDIS_CLUSTER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_worksible_redis.h"


#define NGX_WORKSIBLE_REDIS_SLOTS  16384


/*
 * The slot of a key (Redis Cluster spec, "Keys distribution model"):
 * CRC16/XMODEM of the key, or of the part between its first "{" and the
 * next "}" when that is not empty, modulo 16384.
 */
ngx_uint_t ngx_worksible_redis_cluster_slot(const u_char *key, size_t len);

/*
 * "cluster" in worksible_redis: checks the form (db 0, host[:port]
 * ADDRESSes only) and resolves each ADDRESS into conf->seeds.
 * NGX_CONF_OK or NGX_CONF_ERROR (logged for nginx -t).
 */
char *ngx_worksible_redis_cluster_conf(ngx_conf_t *cf, ngx_str_t *args,
    ngx_uint_t nargs, ngx_worksible_redis_conf_t *conf);

/* this worker's cluster behind front (init_process); NULL: no memory */
ngx_worksible_redis_cluster_t *ngx_worksible_redis_cluster_create(
    ngx_worksible_redis_t *front, ngx_worksible_redis_conf_t *conf,
    ngx_cycle_t *cycle, ngx_worksible_store_stats_t *stats);

/* closes every node's connection (exit_process) */
void ngx_worksible_redis_cluster_close(ngx_worksible_redis_cluster_t *cl);

/*
 * Sends op (argv[3] its key) to the node of its slot: NGX_OK, or
 * NGX_DECLINED when there is none or it is down (Redis down).
 */
ngx_int_t ngx_worksible_redis_cluster_route(ngx_worksible_redis_cluster_t *cl,
    ngx_worksible_redis_op_t *op);

/*
 * An error reply of a node: NGX_OK when op was redirected (MOVED, ASK,
 * TRYAGAIN: it is no longer the caller's), NGX_ERROR when the requester
 * gets no answer (CLUSTERDOWN, too many redirections, an unusable target),
 * NGX_DECLINED for any other error (the reply is the answer).
 */
ngx_int_t ngx_worksible_redis_cluster_reply(ngx_worksible_redis_cluster_t *cl,
    ngx_worksible_redis_op_t *op, redisReply *reply);

/* a node's breaker opened: the slot map is read again soon */
void ngx_worksible_redis_cluster_node_down(ngx_worksible_redis_cluster_t *cl);

/* 1 when the map is read and no node of a slot has its breaker open */
ngx_uint_t ngx_worksible_redis_cluster_up(ngx_worksible_redis_cluster_t *cl);

/* seconds until a node that is down is probed again, at least 1 */
time_t ngx_worksible_redis_cluster_retry_after(
    ngx_worksible_redis_cluster_t *cl);


#endif /* _NGX_WORKSIBLE_REDIS_CLUSTER_H_INCLUDED_ */
