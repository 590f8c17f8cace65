/*
 * Redis Cluster: the slot map and the redirections (see
 * ngx_worksible_redis_cluster.h). The connections are those of
 * ngx_worksible_redis.c, one per node.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_worksible_redis.h"
#include "ngx_worksible_redis_cluster.h"


#define NGX_WORKSIBLE_REDIS_CLUSTER_NODES      64
#define NGX_WORKSIBLE_REDIS_CLUSTER_REDIRECTS  5
#define NGX_WORKSIBLE_REDIS_CLUSTER_TRYAGAIN   50     /* ms */
#define NGX_WORKSIBLE_REDIS_CLUSTER_INTERVAL   100    /* ms between reads */
#define NGX_WORKSIBLE_REDIS_CLUSTER_RETRY      1000   /* ms, all nodes failed */


typedef struct {
    ngx_worksible_redis_conf_t     *conf;
    ngx_worksible_redis_t          *redis;       /* NULL until first used */
    ngx_uint_t                      slots;       /* in the last map read */
} ngx_worksible_redis_node_t;


struct ngx_worksible_redis_cluster_s {
    ngx_worksible_redis_conf_t     *conf;        /* the front's */
    ngx_cycle_t                    *cycle;
    ngx_log_t                      *log;
    ngx_worksible_store_stats_t    *stats;
    ngx_worksible_redis_node_t    **slots;       /* the map */
    ngx_worksible_redis_node_t    **fresh;       /* the one being read */
    ngx_worksible_redis_node_t     *nodes[NGX_WORKSIBLE_REDIS_CLUSTER_NODES];
    ngx_uint_t                      nnodes;
    ngx_uint_t                      nseeds;      /* the first nodes */
    ngx_event_t                     refresh;     /* the next map read */
    ngx_worksible_redis_node_t     *reader;      /* a read is under way */
    ngx_uint_t                      next;        /* the node asked next */
    ngx_uint_t                      tries;       /* reads failed in a row */
    ngx_msec_t                      last;        /* the last read began */
    time_t                          logged;      /* the last CLUSTERDOWN */
    unsigned                        loaded:1;
    unsigned                        closing:1;
};


static ngx_worksible_redis_node_t *ngx_worksible_redis_cluster_node(
    ngx_worksible_redis_cluster_t *cl, u_char *addr, size_t len, int port);
static ngx_int_t ngx_worksible_redis_cluster_send(
    ngx_worksible_redis_cluster_t *cl, ngx_worksible_redis_node_t *node,
    ngx_worksible_redis_op_t *op);
static void ngx_worksible_redis_cluster_refresh(
    ngx_worksible_redis_cluster_t *cl);
static void ngx_worksible_redis_cluster_read(ngx_event_t *ev);
static void ngx_worksible_redis_cluster_map(ngx_worksible_redis_op_t *op,
    redisReply *reply);
static ngx_int_t ngx_worksible_redis_cluster_parse(
    ngx_worksible_redis_cluster_t *cl, ngx_worksible_redis_node_t *asked,
    redisReply *reply);
static void ngx_worksible_redis_cluster_tryagain(ngx_event_t *ev);


ngx_uint_t
ngx_worksible_redis_cluster_slot(const u_char *key, size_t len)
{
    size_t         i, s, e;
    uint16_t       crc;
    ngx_uint_t     b;
    const u_char  *p;

    p = key;

    for (s = 0; s < len && key[s] != '{'; s++) { /* void */ }

    if (s < len) {
        for (e = s + 1; e < len && key[e] != '}'; e++) { /* void */ }

        if (e < len && e > s + 1) {
            p = key + s + 1;
            len = e - s - 1;
        }
    }

    /* CRC16/XMODEM: polynomial 0x1021, initial value 0 */

    crc = 0;

    for (i = 0; i < len; i++) {
        crc ^= (uint16_t) (p[i] << 8);

        for (b = 0; b < 8; b++) {
            crc = (crc & 0x8000) ? (uint16_t) ((crc << 1) ^ 0x1021)
                                 : (uint16_t) (crc << 1);
        }
    }

    return crc & (NGX_WORKSIBLE_REDIS_SLOTS - 1);
}


char *
ngx_worksible_redis_cluster_conf(ngx_conf_t *cf, ngx_str_t *args,
    ngx_uint_t nargs, ngx_worksible_redis_conf_t *conf)
{
    int                          port;
    char                        *addr;
    ngx_uint_t                   i;
    ngx_worksible_redis_conf_t  *seed;

    if (conf->db != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "worksible_redis: a Redis Cluster has db 0 only");
        return NGX_CONF_ERROR;
    }

    conf->seeds = ngx_array_create(cf->pool, 3,
                                   sizeof(ngx_worksible_redis_conf_t));
    if (conf->seeds == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 0; i < nargs; i++) {

        if ((args[i].len == 7 && ngx_strncmp(args[i].data, "cluster", 7) == 0)
            || ngx_strlchr(args[i].data, args[i].data + args[i].len, '=')
               != NULL)
        {
            continue;
        }

        if (args[i].len >= 5 && ngx_strncmp(args[i].data, "unix:", 5) == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "worksible_redis: \"%V\": a Redis Cluster "
                               "node is host[:port]", &args[i]);
            return NGX_CONF_ERROR;
        }

        if (ngx_worksible_redis_resolve(cf, &args[i], 6379, "", &addr, &port)
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }

        seed = ngx_array_push(conf->seeds);
        if (seed == NULL) {
            return NGX_CONF_ERROR;
        }

        *seed = *conf;
        seed->cluster = 0;
        seed->seeds = NULL;
        seed->display = args[i];
        seed->addr = addr;
        seed->port = port;
        seed->unix_path = NULL;
    }

    if (conf->seeds->nelts == 0
        || conf->seeds->nelts > NGX_WORKSIBLE_REDIS_CLUSTER_NODES / 2)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "worksible_redis: a Redis Cluster needs 1 to %d "
                           "seed addresses",
                           NGX_WORKSIBLE_REDIS_CLUSTER_NODES / 2);
        return NGX_CONF_ERROR;
    }

    seed = conf->seeds->elts;
    conf->addr = seed[0].addr;
    conf->port = seed[0].port;
    conf->unix_path = NULL;

    return NGX_CONF_OK;
}


ngx_worksible_redis_cluster_t *
ngx_worksible_redis_cluster_create(ngx_worksible_redis_t *front,
    ngx_worksible_redis_conf_t *conf, ngx_cycle_t *cycle,
    ngx_worksible_store_stats_t *stats)
{
    ngx_uint_t                      i;
    ngx_worksible_redis_conf_t     *seed;
    ngx_worksible_redis_node_t     *node;
    ngx_worksible_redis_cluster_t  *cl;

    cl = ngx_pcalloc(cycle->pool, sizeof(ngx_worksible_redis_cluster_t));
    if (cl == NULL) {
        return NULL;
    }

    cl->slots = ngx_pcalloc(cycle->pool,
                            2 * NGX_WORKSIBLE_REDIS_SLOTS
                            * sizeof(ngx_worksible_redis_node_t *));
    if (cl->slots == NULL) {
        return NULL;
    }

    cl->fresh = cl->slots + NGX_WORKSIBLE_REDIS_SLOTS;
    cl->conf = conf;
    cl->cycle = cycle;
    cl->log = cycle->log;
    cl->stats = stats;

    cl->refresh.handler = ngx_worksible_redis_cluster_read;
    cl->refresh.data = cl;
    cl->refresh.log = cycle->log;
    cl->refresh.cancelable = 1;

    seed = conf->seeds->elts;

    for (i = 0; i < conf->seeds->nelts; i++) {
        node = ngx_pcalloc(cycle->pool, sizeof(ngx_worksible_redis_node_t));
        if (node == NULL) {
            return NULL;
        }

        seed[i].node_of = cl;
        node->conf = &seed[i];
        cl->nodes[cl->nnodes++] = node;
    }

    cl->nseeds = cl->nnodes;

    ngx_worksible_redis_cluster_refresh(cl);

    return cl;
}


void
ngx_worksible_redis_cluster_close(ngx_worksible_redis_cluster_t *cl)
{
    ngx_uint_t  i;

    if (cl == NULL) {
        return;
    }

    cl->closing = 1;

    if (cl->refresh.timer_set) {
        ngx_del_timer(&cl->refresh);
    }

    for (i = 0; i < cl->nnodes; i++) {
        if (cl->nodes[i]->redis != NULL) {
            ngx_worksible_redis_close(cl->nodes[i]->redis);
        }
    }
}


ngx_int_t
ngx_worksible_redis_cluster_route(ngx_worksible_redis_cluster_t *cl,
    ngx_worksible_redis_op_t *op)
{
    ngx_uint_t                   i;
    ngx_worksible_redis_node_t  *node;

    op->slot = ngx_worksible_redis_cluster_slot((u_char *) op->argv[3],
                                                op->argvlen[3]);
    node = cl->slots[op->slot];

    if (node != NULL) {
        return ngx_worksible_redis_cluster_send(cl, node, op);
    }

    if (cl->loaded) {
        /* no node serves the slot: Redis is down for it */
        ngx_worksible_redis_cluster_refresh(cl);
        return NGX_DECLINED;
    }

    /* the map is not read yet: a seed redirects the command with MOVED */

    for (i = 0; i < cl->nseeds; i++) {
        if (ngx_worksible_redis_cluster_send(cl, cl->nodes[i], op) == NGX_OK) {
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


/* op to node, its connection made when first needed */

static ngx_int_t
ngx_worksible_redis_cluster_send(ngx_worksible_redis_cluster_t *cl,
    ngx_worksible_redis_node_t *node, ngx_worksible_redis_op_t *op)
{
    if (node->redis == NULL) {
        node->redis = ngx_worksible_redis_create(node->conf, cl->cycle,
                                                 cl->stats);
        if (node->redis == NULL) {
            return NGX_DECLINED;
        }
    }

    if (ngx_worksible_redis_resubmit(node->redis, op) != NGX_OK) {
        /* the node is down: is there another primary for its slots? */
        ngx_worksible_redis_cluster_refresh(cl);
        return NGX_DECLINED;
    }

    return NGX_OK;
}


ngx_int_t
ngx_worksible_redis_cluster_reply(ngx_worksible_redis_cluster_t *cl,
    ngx_worksible_redis_op_t *op, redisReply *reply)
{
    u_char                      *p, *q, *last, *colon;
    ngx_int_t                    slot, port;
    ngx_uint_t                   i, moved;
    ngx_worksible_redis_node_t  *node;

    p = (u_char *) reply->str;
    last = p + reply->len;

    if (reply->len > 6 && ngx_strncmp(p, "MOVED ", 6) == 0) {
        moved = 1;
        p += 6;

    } else if (reply->len > 4 && ngx_strncmp(p, "ASK ", 4) == 0) {
        moved = 0;
        p += 4;

    } else if (reply->len >= 8 && ngx_strncmp(p, "TRYAGAIN", 8) == 0) {

        if (op->done || op->data == NULL
            || ++op->redirects > NGX_WORKSIBLE_REDIS_CLUSTER_REDIRECTS)
        {
            return NGX_ERROR;
        }

        op->retry.handler = ngx_worksible_redis_cluster_tryagain;
        op->retry.data = op;
        op->retry.log = cl->log;
        ngx_add_timer(&op->retry, NGX_WORKSIBLE_REDIS_CLUSTER_TRYAGAIN);

        return NGX_OK;

    } else if (reply->len >= 11 && ngx_strncmp(p, "CLUSTERDOWN", 11) == 0) {

        if (cl->logged != ngx_time()) {
            ngx_log_error(NGX_LOG_ERR, cl->log, 0,
                          "worksible redis cluster: %*s", (size_t) reply->len,
                          reply->str);
            cl->logged = ngx_time();
        }

        ngx_worksible_redis_cluster_refresh(cl);
        return NGX_ERROR;

    } else {
        return NGX_DECLINED;
    }

    /* "MOVED|ASK slot ip:port" */

    if (op->done || op->data == NULL) {
        return NGX_ERROR;
    }

    if (++op->redirects > NGX_WORKSIBLE_REDIS_CLUSTER_REDIRECTS) {
        ngx_log_error(NGX_LOG_ERR, cl->log, 0,
                      "worksible redis cluster: more than %d redirections, "
                      "the last \"%*s\"", NGX_WORKSIBLE_REDIS_CLUSTER_REDIRECTS,
                      (size_t) reply->len, reply->str);
        return NGX_ERROR;
    }

    node = NULL;
    slot = NGX_ERROR;
    q = p;
    p = ngx_strlchr(q, last, ' ');

    if (p != NULL) {
        slot = ngx_atoi(q, p - q);
        p++;

        for (colon = last - 1; colon > p && *colon != ':'; colon--) {
            /* void */
        }

        port = ngx_atoi(colon + 1, last - colon - 1);

        if (colon == p && *colon == ':') {
            /* "MOVED 3999 :6380": the host of the node that answered */
            for (i = 0; i < cl->nnodes; i++) {
                if (cl->nodes[i]->redis == op->redis) {
                    p = (u_char *) cl->nodes[i]->conf->addr;
                    colon = p + ngx_strlen(p);
                    break;
                }
            }
        }

        if (slot != NGX_ERROR && slot < NGX_WORKSIBLE_REDIS_SLOTS
            && colon > p && port > 0 && port < 65536)
        {
            node = ngx_worksible_redis_cluster_node(cl, p, colon - p, port);
        }
    }

    if (node == NULL) {
        ngx_log_error(NGX_LOG_ERR, cl->log, 0,
                      "worksible redis cluster: cannot follow \"%*s\"",
                      (size_t) reply->len, reply->str);
        return NGX_ERROR;
    }

    ngx_log_error(NGX_LOG_INFO, cl->log, 0,
                  "worksible redis cluster: %*s", (size_t) reply->len,
                  reply->str);

    if (moved) {
        cl->slots[slot] = node;
        op->asking = 0;
        ngx_worksible_redis_cluster_refresh(cl);

    } else {
        op->asking = 1;
    }

    if (ngx_worksible_redis_cluster_send(cl, node, op) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* TRYAGAIN: the command goes to the same node again */

static void
ngx_worksible_redis_cluster_tryagain(ngx_event_t *ev)
{
    ngx_worksible_redis_op_t  *op = ev->data;

    if (op->done || op->data == NULL
        || ngx_worksible_redis_resubmit(op->redis, op) != NGX_OK)
    {
        ngx_worksible_redis_finish(op);
    }
}


void
ngx_worksible_redis_cluster_node_down(ngx_worksible_redis_cluster_t *cl)
{
    ngx_worksible_redis_cluster_refresh(cl);
}


ngx_uint_t
ngx_worksible_redis_cluster_up(ngx_worksible_redis_cluster_t *cl)
{
    ngx_uint_t                   i;
    ngx_worksible_redis_node_t  *node;

    if (!cl->loaded) {
        return 0;
    }

    for (i = 0; i < cl->nnodes; i++) {
        node = cl->nodes[i];

        if (node->slots && node->redis != NULL
            && ngx_worksible_redis_broken(node->redis))
        {
            return 0;
        }
    }

    return 1;
}


time_t
ngx_worksible_redis_cluster_retry_after(ngx_worksible_redis_cluster_t *cl)
{
    time_t                       t, max;
    ngx_uint_t                   i;
    ngx_worksible_redis_node_t  *node;

    max = 1;

    for (i = 0; i < cl->nnodes; i++) {
        node = cl->nodes[i];

        if (node->redis != NULL && ngx_worksible_redis_broken(node->redis)) {
            t = ngx_worksible_redis_retry_after(node->redis);
            max = ngx_max(max, t);
        }
    }

    return max;
}


/*
 * The node at addr:port (a numeric address: a host name would block on
 * getaddrinfo()), added when new; NULL when there are too many.
 */

static ngx_worksible_redis_node_t *
ngx_worksible_redis_cluster_node(ngx_worksible_redis_cluster_t *cl,
    u_char *addr, size_t len, int port)
{
    u_char                      *p;
    ngx_uint_t                   i, v6;
    ngx_worksible_redis_conf_t  *conf;
    ngx_worksible_redis_node_t  *node;
#if (NGX_HAVE_INET6)
    u_char                       buf[16];
#endif

    for (i = 0; i < cl->nnodes; i++) {
        conf = cl->nodes[i]->conf;

        if (conf->port == port && ngx_strlen(conf->addr) == len
            && ngx_strncmp(conf->addr, addr, len) == 0)
        {
            return cl->nodes[i];
        }
    }

    v6 = 0;

    if (len == 0 || ngx_inet_addr(addr, len) == INADDR_NONE) {
#if (NGX_HAVE_INET6)
        if (len == 0 || ngx_inet6_addr(addr, len, buf) != NGX_OK) {
            return NULL;
        }
        v6 = 1;
#else
        return NULL;
#endif
    }

    if (cl->nnodes == NGX_WORKSIBLE_REDIS_CLUSTER_NODES) {
        ngx_log_error(NGX_LOG_ERR, cl->log, 0,
                      "worksible redis cluster: more than %d nodes",
                      NGX_WORKSIBLE_REDIS_CLUSTER_NODES);
        return NULL;
    }

    node = ngx_pcalloc(cl->cycle->pool, sizeof(ngx_worksible_redis_node_t));
    conf = ngx_palloc(cl->cycle->pool, sizeof(ngx_worksible_redis_conf_t));
    p = ngx_pnalloc(cl->cycle->pool, 2 * len + sizeof("[]:65535"));

    if (node == NULL || conf == NULL || p == NULL) {
        return NULL;
    }

    *conf = *cl->conf;
    conf->cluster = 0;
    conf->seeds = NULL;
    conf->node_of = cl;
    conf->unix_path = NULL;
    conf->port = port;

    conf->addr = (char *) p;
    p = ngx_cpymem(p, addr, len);
    *p++ = '\0';

    conf->display.data = p;
    p = ngx_sprintf(p, v6 ? "[%*s]:%d" : "%*s:%d", len, addr, port);
    conf->display.len = p - conf->display.data;

    node->conf = conf;
    cl->nodes[cl->nnodes++] = node;

    return node;
}


/* a read of the slot map, soon, outside hiredis's callbacks */

static void
ngx_worksible_redis_cluster_refresh(ngx_worksible_redis_cluster_t *cl)
{
    ngx_msec_int_t  wait;

    if (cl->closing || cl->reader != NULL || cl->refresh.timer_set) {
        return;
    }

    wait = (ngx_msec_int_t) (cl->last + NGX_WORKSIBLE_REDIS_CLUSTER_INTERVAL
                             - ngx_current_msec);

    ngx_add_timer(&cl->refresh, wait > 0 ? (ngx_msec_t) wait : 1);
}


/* CLUSTER SLOTS to the next node that is not down */

static void
ngx_worksible_redis_cluster_read(ngx_event_t *ev)
{
    ngx_worksible_redis_cluster_t  *cl = ev->data;

    ngx_uint_t                   i;
    ngx_worksible_redis_op_t    *op;
    ngx_worksible_redis_node_t  *node;
    static const char           *argv[] = { "CLUSTER", "SLOTS" };

    if (cl->closing || cl->reader != NULL) {
        return;
    }

    for (i = 0; i < cl->nnodes; i++) {
        node = cl->nodes[cl->next++ % cl->nnodes];

        if (node->redis == NULL) {
            node->redis = ngx_worksible_redis_create(node->conf, cl->cycle,
                                                     cl->stats);
            if (node->redis == NULL) {
                continue;
            }
        }

        if (ngx_worksible_redis_broken(node->redis)) {
            continue;
        }

        cl->last = ngx_current_msec;

        op = ngx_worksible_redis_call(node->redis, 2, argv,
                                      ngx_max(cl->conf->timeout,
                                              cl->conf->connect_timeout),
                                      ngx_worksible_redis_cluster_map, cl);
        if (op != NULL) {
            cl->reader = node;
            return;
        }
    }

    /* every node is down: their breakers probe them meanwhile */

    ngx_add_timer(&cl->refresh, NGX_WORKSIBLE_REDIS_CLUSTER_RETRY);
}


/* the answer to CLUSTER SLOTS */

static void
ngx_worksible_redis_cluster_map(ngx_worksible_redis_op_t *op,
    redisReply *reply)
{
    ngx_worksible_redis_cluster_t  *cl = op->data;

    ngx_worksible_redis_node_t  *asked;

    asked = cl->reader;
    cl->reader = NULL;

    if (cl->closing) {
        return;
    }

    if (reply != NULL && reply->type == REDIS_REPLY_ARRAY
        && ngx_worksible_redis_cluster_parse(cl, asked, reply) == NGX_OK)
    {
        cl->tries = 0;
        return;
    }

    ngx_log_error(NGX_LOG_WARN, cl->log, 0,
                  "worksible redis cluster: no slot map from %V%s%*s",
                  &asked->conf->display,
                  (reply && reply->type == REDIS_REPLY_ERROR) ? ": " : "",
                  (size_t) ((reply && reply->type == REDIS_REPLY_ERROR)
                            ? reply->len : 0),
                  (reply && reply->type == REDIS_REPLY_ERROR)
                  ? reply->str : "");

    if (++cl->tries < cl->nnodes) {
        ngx_add_timer(&cl->refresh, 1);      /* the next node */
        return;
    }

    cl->tries = 0;
    ngx_add_timer(&cl->refresh, NGX_WORKSIBLE_REDIS_CLUSTER_RETRY);
}


/*
 * [[start, end, [ip, port, id...], [replica]...]...]: the primaries of
 * the slot ranges; an empty ip (or "?") is that of the node asked.
 */

static ngx_int_t
ngx_worksible_redis_cluster_parse(ngx_worksible_redis_cluster_t *cl,
    ngx_worksible_redis_node_t *asked, redisReply *reply)
{
    size_t                       len;
    u_char                      *addr;
    ngx_uint_t                   i, s, covered, level;
    long long                    start, end, port;
    redisReply                  *e, *n;
    ngx_worksible_redis_node_t  *node, **swap;

    ngx_memzero(cl->fresh, NGX_WORKSIBLE_REDIS_SLOTS
                           * sizeof(ngx_worksible_redis_node_t *));

    for (i = 0; i < cl->nnodes; i++) {
        cl->nodes[i]->slots = 0;
    }

    covered = 0;

    for (i = 0; i < reply->elements; i++) {
        e = reply->element[i];

        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3
            || e->element[0]->type != REDIS_REPLY_INTEGER
            || e->element[1]->type != REDIS_REPLY_INTEGER
            || e->element[2]->type != REDIS_REPLY_ARRAY
            || e->element[2]->elements < 2
            || e->element[2]->element[0]->type != REDIS_REPLY_STRING
            || e->element[2]->element[1]->type != REDIS_REPLY_INTEGER)
        {
            return NGX_ERROR;
        }

        start = e->element[0]->integer;
        end = e->element[1]->integer;
        n = e->element[2];
        port = n->element[1]->integer;

        if (start < 0 || end < start || end >= NGX_WORKSIBLE_REDIS_SLOTS
            || port <= 0 || port > 65535)
        {
            return NGX_ERROR;
        }

        addr = (u_char *) n->element[0]->str;
        len = n->element[0]->len;

        if (len == 0 || (len == 1 && addr[0] == '?')) {
            addr = (u_char *) asked->conf->addr;
            len = ngx_strlen(asked->conf->addr);
        }

        node = ngx_worksible_redis_cluster_node(cl, addr, len, (int) port);
        if (node == NULL) {
            return NGX_ERROR;
        }

        for (s = (ngx_uint_t) start; s <= (ngx_uint_t) end; s++) {
            cl->fresh[s] = node;
        }

        node->slots += end - start + 1;
        covered += end - start + 1;
    }

    swap = cl->slots;
    cl->slots = cl->fresh;
    cl->fresh = swap;

    /* a node that left the map while down is probed no more */

    for (i = cl->nseeds; i < cl->nnodes; i++) {
        node = cl->nodes[i];

        if (node->slots == 0 && node != asked && node->redis != NULL
            && ngx_worksible_redis_broken(node->redis))
        {
            ngx_log_error(NGX_LOG_NOTICE, cl->log, 0,
                          "worksible redis cluster: %V left the slot map "
                          "while down, its connection is closed",
                          &node->conf->display);

            ngx_worksible_redis_close(node->redis);
            node->redis = NULL;
        }
    }

    if (!cl->loaded || covered < NGX_WORKSIBLE_REDIS_SLOTS) {
        level = (covered < NGX_WORKSIBLE_REDIS_SLOTS) ? NGX_LOG_WARN
                                                      : NGX_LOG_INFO;
        ngx_log_error(level, cl->log, 0,
                      "worksible redis cluster: slot map from %V, %uz "
                      "ranges, %ui of %d slots served",
                      &asked->conf->display, reply->elements, covered,
                      NGX_WORKSIBLE_REDIS_SLOTS);
    }

    cl->loaded = 1;

    return NGX_OK;
}
