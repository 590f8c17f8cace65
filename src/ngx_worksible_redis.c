/*
 * Redis on nginx's event loop (see ngx_worksible_redis.h).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_sha1.h>

#include "ngx_worksible_module.h"
#include "ngx_worksible_redis.h"
#include "ngx_worksible_redis_cluster.h"


#define NGX_WORKSIBLE_REDIS_BACKOFF_MIN  100
#define NGX_WORKSIBLE_REDIS_BACKOFF_MAX  5000

/* connection failures in a row (no PING answered between) that open it */
#define NGX_WORKSIBLE_REDIS_FAILURES     3


typedef enum {
    NGX_WORKSIBLE_REDIS_DOWN = 0,
    NGX_WORKSIBLE_REDIS_CONNECTING,
    NGX_WORKSIBLE_REDIS_READY
} ngx_worksible_redis_state_e;


struct ngx_worksible_redis_s {
    ngx_worksible_redis_conf_t     *conf;
    redisAsyncContext              *ac;
    ngx_connection_t               *c;
    ngx_event_t                     probe;        /* reconnect, backoff */
    ngx_event_t                     connect_timer;
    ngx_event_t                     stall;        /* nothing read */
    ngx_event_t                     resume;       /* posted: reconnect */
    ngx_queue_t                     waiting;      /* ops for the next one */
    ngx_worksible_redis_state_e     state;
    ngx_uint_t                      broken;       /* fail fast until up */
    ngx_uint_t                      failures;     /* in a row */
    ngx_uint_t                      pending;      /* ops hiredis holds */
    size_t                          appended;     /* bytes queued on ac */
    size_t                          written;      /* bytes sent of them */
    ngx_uint_t                      writing;      /* in the write handler */
    ngx_uint_t                      timed_out;    /* not yet logged */
    time_t                          logged;       /* the last of them */
    ngx_msec_t                      backoff;
    ngx_msec_t                      retry_at;
    ngx_worksible_store_stats_t    *stats;
    ngx_worksible_redis_sentinel_t *sentinel;     /* sentinel=, or NULL */
    ngx_log_t                      *log;
    ngx_worksible_redis_cluster_t  *cluster;      /* ours, or we are a node */
};


static ngx_int_t ngx_worksible_redis_option(ngx_conf_t *cf, ngx_str_t *arg,
    ngx_worksible_redis_conf_t *conf);
static void ngx_worksible_redis_connect(ngx_worksible_redis_t *redis);
static void ngx_worksible_redis_command(ngx_worksible_redis_t *redis,
    redisCallbackFn *fn, int argc, const char **argv);
static void ngx_worksible_redis_probed(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_worksible_redis_connected(const redisAsyncContext *ac,
    int status);
static void ngx_worksible_redis_disconnected(const redisAsyncContext *ac,
    int status);
static void ngx_worksible_redis_lost(ngx_worksible_redis_t *redis,
    const char *what, const char *detail);
static void ngx_worksible_redis_fail(ngx_worksible_redis_t *redis,
    const char *why);
static void ngx_worksible_redis_drop(ngx_worksible_redis_t *redis);
static void ngx_worksible_redis_probe_handler(ngx_event_t *ev);
static void ngx_worksible_redis_connect_timeout(ngx_event_t *ev);
static void ngx_worksible_redis_stall_handler(ngx_event_t *ev);
static void ngx_worksible_redis_resume_handler(ngx_event_t *ev);
static void ngx_worksible_redis_progress(ngx_worksible_redis_t *redis);
static void ngx_worksible_redis_add_read(void *data);
static void ngx_worksible_redis_del_read(void *data);
static void ngx_worksible_redis_add_write(void *data);
static void ngx_worksible_redis_del_write(void *data);
static void ngx_worksible_redis_cleanup(void *data);
static void ngx_worksible_redis_read_handler(ngx_event_t *ev);
static void ngx_worksible_redis_write_handler(ngx_event_t *ev);
static ngx_int_t ngx_worksible_redis_send(ngx_worksible_redis_t *redis,
    ngx_worksible_redis_op_t *op);
static void ngx_worksible_redis_wait(ngx_worksible_redis_t *redis,
    ngx_worksible_redis_op_t *op);
static void ngx_worksible_redis_reply(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_worksible_redis_answer(ngx_worksible_redis_op_t *op,
    redisReply *reply);
static void ngx_worksible_redis_timeout(ngx_event_t *ev);


char *
ngx_worksible_redis_conf_parse(ngx_conf_t *cf, ngx_str_t *args,
    ngx_uint_t nargs, ngx_worksible_redis_conf_t *conf)
{
    ngx_int_t   rc;
    ngx_uint_t  i, naddrs;

    conf->timeout = 100;
    conf->connect_timeout = 1000;
    conf->display = args[0];
    naddrs = 1;

    for (i = 1; i < nargs; i++) {
        if (args[i].len == 7 && ngx_strncmp(args[i].data, "cluster", 7) == 0) {
            conf->cluster = 1;
            continue;
        }

        if (ngx_strlchr(args[i].data, args[i].data + args[i].len, '=')
            == NULL && i == naddrs)
        {
            naddrs++;       /* the ADDRESSes come first */
            continue;
        }

        rc = ngx_worksible_redis_sentinel_option(cf, &args[i],
                                                 &conf->sentinel);
        if (rc == NGX_ERROR) {
            return NGX_CONF_ERROR;
        }

        if (rc == NGX_DECLINED
            && ngx_worksible_redis_option(cf, &args[i], conf) != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    if (conf->cluster && conf->sentinel != NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "worksible_redis: \"cluster\" and sentinel= "
                           "exclude each other");
        return NGX_CONF_ERROR;
    }

    if (conf->sentinel != NULL) {
        if (ngx_worksible_redis_sentinel_conf(cf, args, naddrs,
                                              conf->sentinel)
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }

        conf->display = conf->sentinel->name;
        return NGX_CONF_OK;
    }

    if (conf->cluster) {
        return ngx_worksible_redis_cluster_conf(cf, args, nargs, conf);
    }

    if (naddrs > 1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "worksible_redis: several addresses need "
                           "\"cluster\" or sentinel=NAME");
        return NGX_CONF_ERROR;
    }

    if (args[0].len > 5 && ngx_strncmp(args[0].data, "unix:", 5) == 0) {
        conf->unix_path = (char *) args[0].data + 5;
        return NGX_CONF_OK;
    }

    if (ngx_worksible_redis_resolve(cf, &args[0], 6379, "", &conf->addr,
                                    &conf->port)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


ngx_int_t
ngx_worksible_redis_resolve(ngx_conf_t *cf, ngx_str_t *arg,
    in_port_t default_port, const char *what, char **addr, int *port)
{
    size_t     len;
    u_char    *p;
    ngx_url_t  u;

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = *arg;
    u.default_port = default_port;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0 || u.uri.len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "worksible_redis%s \"%V\" not resolved%s%s",
                           what, arg, u.err ? ": " : "", u.err ? u.err : "");
        return NGX_ERROR;
    }

    p = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    len = ngx_sock_ntop(u.addrs[0].sockaddr, u.addrs[0].socklen, p,
                        NGX_SOCKADDR_STRLEN, 0);
    p[len] = '\0';

    *addr = (char *) p;
    *port = u.port;

    return NGX_OK;
}


/* one "name=value" option of worksible_redis */

static ngx_int_t
ngx_worksible_redis_option(ngx_conf_t *cf, ngx_str_t *arg,
    ngx_worksible_redis_conf_t *conf)
{
    u_char     *p;
    ngx_int_t   v;
    ngx_str_t   s;

    if (ngx_strncmp(arg->data, "db=", 3) == 0) {
        v = ngx_atoi(arg->data + 3, arg->len - 3);
        if (v < 0 || v > 1024) {
            goto invalid;
        }
        conf->db = v;
        return NGX_OK;
    }

    if (ngx_strncmp(arg->data, "timeout=", 8) == 0
        || ngx_strncmp(arg->data, "connect_timeout=", 16) == 0)
    {
        p = ngx_strlchr(arg->data, arg->data + arg->len, '=') + 1;
        s.data = p;
        s.len = arg->data + arg->len - p;
        v = ngx_parse_time(&s, 0);
        if (v == NGX_ERROR || v == 0) {
            goto invalid;
        }

        if (arg->data[0] == 't') {
            conf->timeout = v;
        } else {
            conf->connect_timeout = v;
        }

        return NGX_OK;
    }

    if (ngx_strncmp(arg->data, "password_file=", 14) == 0) {
        s.data = arg->data + 14;
        s.len = arg->len - 14;
        return ngx_worksible_redis_conf_password(cf, &s, &conf->password);
    }

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid worksible_redis parameter \"%V\" "
                       "(password_file=FILE, db=0..1024, timeout=TIME, "
                       "connect_timeout=TIME, sentinel=NAME, "
                       "sentinel_password_file=FILE)", arg);

    return NGX_ERROR;
}


ngx_int_t
ngx_worksible_redis_conf_password(ngx_conf_t *cf, ngx_str_t *name,
    ngx_str_t *password)
{
    ssize_t    n;
    ngx_str_t  full;
    u_char     buf[512];

    full = *name;

    n = ngx_worksible_conf_read_file(cf, &full, buf, sizeof(buf));
    if (n == NGX_ERROR) {
        return NGX_ERROR;
    }

    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) {
        n--;
    }

    if (n <= 0 || n == (ssize_t) sizeof(buf)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" must hold the Redis password on one line",
                           &full);
        return NGX_ERROR;
    }

    password->data = ngx_pnalloc(cf->pool, n);
    if (password->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(password->data, buf, n);
    password->len = n;
    ngx_explicit_memzero(buf, sizeof(buf));

    return NGX_OK;
}


ngx_worksible_redis_t *
ngx_worksible_redis_create(ngx_worksible_redis_conf_t *conf,
    ngx_cycle_t *cycle, ngx_worksible_store_stats_t *stats)
{
    ngx_worksible_redis_t  *redis;

    redis = ngx_pcalloc(cycle->pool, sizeof(ngx_worksible_redis_t));
    if (redis == NULL) {
        return NULL;
    }

    redis->conf = conf;
    redis->stats = stats;
    redis->log = cycle->log;

    ngx_queue_init(&redis->waiting);

    redis->probe.handler = ngx_worksible_redis_probe_handler;
    redis->probe.data = redis;
    redis->probe.log = cycle->log;
    redis->probe.cancelable = 1;

    redis->connect_timer.handler = ngx_worksible_redis_connect_timeout;
    redis->connect_timer.data = redis;
    redis->connect_timer.log = cycle->log;
    redis->connect_timer.cancelable = 1;

    redis->stall.handler = ngx_worksible_redis_stall_handler;
    redis->stall.data = redis;
    redis->stall.log = cycle->log;
    redis->stall.cancelable = 1;

    redis->resume.handler = ngx_worksible_redis_resume_handler;
    redis->resume.data = redis;
    redis->resume.log = cycle->log;

    if (conf->cluster) {
        /* the front of a cluster: its nodes connect (cluster.c) */
        redis->cluster = ngx_worksible_redis_cluster_create(redis, conf,
                                                            cycle, stats);
        return redis->cluster ? redis : NULL;
    }

    redis->cluster = conf->node_of;

    if (conf->sentinel != NULL) {
        redis->sentinel = ngx_worksible_redis_sentinel_create(redis,
                              conf->sentinel, conf->connect_timeout, cycle);
        if (redis->sentinel == NULL) {
            return NULL;
        }
    }

    ngx_worksible_redis_connect(redis);

    return redis;
}


void
ngx_worksible_redis_close(ngx_worksible_redis_t *redis)
{
    ngx_queue_t               *q;
    ngx_worksible_redis_op_t  *op;

    if (redis->conf->cluster) {
        ngx_worksible_redis_cluster_close(redis->cluster);
        return;
    }

    if (redis->sentinel != NULL) {
        ngx_worksible_redis_sentinel_close(redis->sentinel);
    }

    if (redis->probe.timer_set) {
        ngx_del_timer(&redis->probe);
    }

    if (redis->resume.posted) {
        ngx_delete_posted_event(&redis->resume);
    }

    redis->broken = 1;

    ngx_worksible_redis_drop(redis);

    while (!ngx_queue_empty(&redis->waiting)) {
        q = ngx_queue_head(&redis->waiting);
        ngx_queue_remove(q);

        op = ngx_queue_data(q, ngx_worksible_redis_op_t, queue);
        ngx_worksible_redis_answer(op, NULL);
        ngx_free(op);
    }
}


/*
 * Opens the connection and sends AUTH, SELECT and the PING that marks it
 * ready; commands sent meanwhile are queued by hiredis behind them.
 */

static void
ngx_worksible_redis_connect(ngx_worksible_redis_t *redis)
{
    int                          port;
    char                        *addr;
    u_char                      *p;
    redisAsyncContext           *ac;
    ngx_connection_t            *c;
    ngx_worksible_redis_conf_t  *conf;
    const char                  *argv[2];
    u_char                       db[NGX_INT_T_LEN + 1];

    conf = redis->conf;
    addr = conf->addr;
    port = conf->port;

    if (redis->sentinel != NULL
        && ngx_worksible_redis_sentinel_primary(redis->sentinel, &addr, &port)
           != NGX_OK)
    {
        return;     /* the Sentinels are asked: ngx_worksible_redis_primary */
    }

    ac = conf->unix_path ? redisAsyncConnectUnix(conf->unix_path)
                         : redisAsyncConnect(addr, port);

    if (ac == NULL) {
        ngx_worksible_redis_fail(redis, "out of memory");
        return;
    }

    if (ac->err) {
        ngx_worksible_redis_lost(redis, "connect failed", ac->errstr);
        redisAsyncFree(ac);
        return;
    }

    c = ngx_get_connection(ac->c.fd, redis->log);
    if (c == NULL) {
        redisAsyncFree(ac);
        ngx_worksible_redis_fail(redis, "no free connection");
        return;
    }

    c->data = redis;
    c->read->handler = ngx_worksible_redis_read_handler;
    c->write->handler = ngx_worksible_redis_write_handler;
    c->read->log = redis->log;
    c->write->log = redis->log;

    redis->c = c;
    redis->ac = ac;
    redis->state = NGX_WORKSIBLE_REDIS_CONNECTING;
    redis->pending = 0;
    redis->appended = 0;
    redis->written = 0;

    ac->data = redis;
    ac->ev.data = redis;
    ac->ev.addRead = ngx_worksible_redis_add_read;
    ac->ev.delRead = ngx_worksible_redis_del_read;
    ac->ev.addWrite = ngx_worksible_redis_add_write;
    ac->ev.delWrite = ngx_worksible_redis_del_write;
    ac->ev.cleanup = ngx_worksible_redis_cleanup;

    redisAsyncSetConnectCallback(ac, ngx_worksible_redis_connected);
    redisAsyncSetDisconnectCallback(ac, ngx_worksible_redis_disconnected);

    ngx_add_timer(&redis->connect_timer, conf->connect_timeout);

    if (conf->password.len) {
        argv[0] = "AUTH";
        argv[1] = (char *) conf->password.data;
        ngx_worksible_redis_command(redis, ngx_worksible_redis_probed, 2,
                                    argv);
    }

    if (conf->db) {
        p = ngx_sprintf(db, "%ui", conf->db);
        *p = '\0';
        argv[0] = "SELECT";
        argv[1] = (char *) db;
        ngx_worksible_redis_command(redis, ngx_worksible_redis_probed, 2,
                                    argv);
    }

    if (redis->sentinel != NULL) {
        argv[0] = "ROLE";
        ngx_worksible_redis_command(redis, ngx_worksible_redis_probed, 1,
                                    argv);
    }

    argv[0] = "PING";
    ngx_worksible_redis_command(redis, ngx_worksible_redis_probed, 1, argv);
}


/* a command of the probe (the password's length is kept by the conf) */

static void
ngx_worksible_redis_command(ngx_worksible_redis_t *redis, redisCallbackFn *fn,
    int argc, const char **argv)
{
    size_t  len, argvlen[2];

    if (redis->ac == NULL) {
        return;     /* an earlier command of the probe failed */
    }

    argvlen[0] = ngx_strlen(argv[0]);

    if (argc == 2) {
        argvlen[1] = (argv[1] == (char *) redis->conf->password.data)
                     ? redis->conf->password.len : ngx_strlen(argv[1]);
    }

    len = sdslen(redis->ac->c.obuf);

    if (redisAsyncCommandArgv(redis->ac, fn, redis, argc, argv, argvlen)
        != REDIS_OK)
    {
        ngx_worksible_redis_fail(redis, "cannot send the probe");
        return;
    }

    redis->appended += sdslen(redis->ac->c.obuf) - len;
}


/* AUTH, SELECT and PING replies: any error opens the breaker */

static void
ngx_worksible_redis_probed(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply             *reply = r;
    ngx_worksible_redis_t  *redis = privdata;

    if (reply == NULL) {
        return;     /* the context is being freed */
    }

    ngx_worksible_redis_progress(redis);

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, redis->log, 0,
                      "worksible redis %V: %*s", &redis->conf->display,
                      (size_t) reply->len, reply->str);
        ngx_worksible_redis_fail(redis, NULL);
        return;
    }

    if (reply->type == REDIS_REPLY_ARRAY
        && ngx_worksible_redis_sentinel_role(reply) != NGX_OK)
    {
        /* ROLE (sentinel=): a replica, ask the Sentinels again */
        ngx_worksible_redis_lost(redis, "ROLE", "not a master");
        return;
    }

    if (reply->type == REDIS_REPLY_STATUS
        && ngx_strncmp(reply->str, "PONG", 4) == 0)
    {
        if (redis->connect_timer.timer_set) {
            ngx_del_timer(&redis->connect_timer);
        }

        if (redis->broken) {
            ngx_log_error(NGX_LOG_NOTICE, redis->log, 0,
                          "worksible redis %V is back", &redis->conf->display);
        }

        if (redis->state != NGX_WORKSIBLE_REDIS_READY) {
            (void) ngx_atomic_fetch_add(&redis->stats->connections, 1);
        }

        redis->state = NGX_WORKSIBLE_REDIS_READY;
        redis->broken = 0;
        redis->failures = 0;
        redis->backoff = 0;
    }
}


static void
ngx_worksible_redis_connected(const redisAsyncContext *ac, int status)
{
    ngx_worksible_redis_t  *redis = ac->data;

    if (status != REDIS_OK) {
        /* hiredis frees the context right after this callback */
        redis->ac = NULL;
        ngx_worksible_redis_lost(redis, "connect failed", ac->errstr);
    }
}


/*
 * hiredis lost the connection (status REDIS_ERR: EOF, reset), after the
 * pending commands got their NULL replies; REDIS_OK: we freed it.
 */

static void
ngx_worksible_redis_disconnected(const redisAsyncContext *ac, int status)
{
    ngx_worksible_redis_t  *redis = ac->data;

    if (status != REDIS_OK) {
        redis->ac = NULL;
        ngx_worksible_redis_lost(redis, "connection lost", ac->errstr);
    }
}


/*
 * A connection failed (refused, lost): it is made again at once, and the
 * commands waiting are sent on it, unless this is the 3rd failure in a row
 * without a PING answered, or the probe's connection: then the breaker
 * opens (again, with the next backoff).
 */

static void
ngx_worksible_redis_lost(ngx_worksible_redis_t *redis, const char *what,
    const char *detail)
{
    if (detail == NULL) {
        detail = "unknown error";
    }

    if (redis->sentinel != NULL) {
        ngx_worksible_redis_sentinel_ask(redis->sentinel, what);
    }

    if (redis->broken) {
        ngx_log_error(NGX_LOG_ERR, redis->log, 0,
                      "worksible redis %V: %s: %s, still down",
                      &redis->conf->display, what, detail);
        ngx_worksible_redis_fail(redis, NULL);
        return;
    }

    if (++redis->failures >= NGX_WORKSIBLE_REDIS_FAILURES) {
        ngx_log_error(NGX_LOG_ERR, redis->log, 0,
                      "worksible redis %V: %s: %s, down after %ui failures "
                      "in a row", &redis->conf->display, what, detail,
                      redis->failures);
        ngx_worksible_redis_fail(redis, NULL);
        return;
    }

    ngx_log_error(NGX_LOG_WARN, redis->log, 0,
                  "worksible redis %V: %s: %s, reconnecting",
                  &redis->conf->display, what, detail);

    ngx_worksible_redis_drop(redis);

    ngx_post_event(&redis->resume, &ngx_posted_events);
}


/*
 * Opens the breaker: commands fail at once, the context (if still ours) is
 * freed, and a probe is scheduled after a backoff (100 ms doubling to 5 s).
 * Safe from hiredis callbacks: hiredis defers the free until they return.
 */

static void
ngx_worksible_redis_fail(ngx_worksible_redis_t *redis, const char *why)
{
    if (why != NULL) {
        ngx_log_error(NGX_LOG_ERR, redis->log, 0, "worksible redis %V: %s",
                      &redis->conf->display, why);
    }

    redis->broken = 1;

    if (redis->cluster != NULL) {
        /* a cluster's node: has another taken its slots? */
        ngx_worksible_redis_cluster_node_down(redis->cluster);
    }

    if (!redis->probe.timer_set) {
        redis->backoff = redis->backoff
                         ? ngx_min(redis->backoff * 2,
                                   NGX_WORKSIBLE_REDIS_BACKOFF_MAX)
                         : NGX_WORKSIBLE_REDIS_BACKOFF_MIN;
        redis->retry_at = ngx_current_msec + redis->backoff;
        ngx_add_timer(&redis->probe, redis->backoff);
    }

    ngx_worksible_redis_drop(redis);

    if (!ngx_queue_empty(&redis->waiting)) {
        /* they fail there, outside hiredis's callbacks */
        ngx_post_event(&redis->resume, &ngx_posted_events);
    }
}


/*
 * The connection is no longer usable: its context (if still ours) is
 * freed; its commands get their NULL replies, and those not answered yet
 * wait for the next connection unless the breaker is open.
 */

static void
ngx_worksible_redis_drop(ngx_worksible_redis_t *redis)
{
    redisAsyncContext  *ac;

    if (redis->state == NGX_WORKSIBLE_REDIS_READY) {
        (void) ngx_atomic_fetch_add(&redis->stats->connections, -1);
    }

    redis->state = NGX_WORKSIBLE_REDIS_DOWN;

    if (redis->connect_timer.timer_set) {
        ngx_del_timer(&redis->connect_timer);
    }

    if (redis->stall.timer_set) {
        ngx_del_timer(&redis->stall);
    }

    ac = redis->ac;

    if (ac != NULL) {
        redis->ac = NULL;
        redisAsyncFree(ac);
    }
}


static void
ngx_worksible_redis_probe_handler(ngx_event_t *ev)
{
    ngx_worksible_redis_t  *redis = ev->data;

    if (redis->ac == NULL && redis->c == NULL) {
        ngx_worksible_redis_connect(redis);
    }
}


static void
ngx_worksible_redis_connect_timeout(ngx_event_t *ev)
{
    ngx_worksible_redis_t  *redis = ev->data;

    if (redis->sentinel != NULL) {
        ngx_worksible_redis_sentinel_ask(redis->sentinel, "connect timeout");
    }

    ngx_worksible_redis_fail(redis, "connect or probe timed out");
}


/*
 * Nothing was read for max(timeout, connect_timeout) while commands were
 * outstanding: Redis is stuck (SIGSTOP, a long fork, overload).
 */

static void
ngx_worksible_redis_stall_handler(ngx_event_t *ev)
{
    ngx_worksible_redis_t  *redis = ev->data;

    ngx_log_error(NGX_LOG_ERR, redis->log, 0,
                  "worksible redis %V: nothing read for %M ms with %ui "
                  "command%s outstanding", &redis->conf->display,
                  ngx_max(redis->conf->timeout, redis->conf->connect_timeout),
                  redis->pending, redis->pending == 1 ? "" : "s");

    if (redis->sentinel != NULL) {
        ngx_worksible_redis_sentinel_ask(redis->sentinel, "stalled");
    }

    ngx_worksible_redis_fail(redis, NULL);
}


/*
 * Posted after a connection was lost or while none is up: makes the next
 * connection and sends it the commands waiting (or fails them when the
 * breaker is open, or when their fate on the lost one is unknown).
 */

static void
ngx_worksible_redis_resume_handler(ngx_event_t *ev)
{
    ngx_queue_t               *q;
    ngx_worksible_redis_t     *redis = ev->data;
    ngx_worksible_redis_op_t  *op;

    if (!redis->broken && redis->ac == NULL && redis->c == NULL) {
        ngx_worksible_redis_connect(redis);
    }

    while (!ngx_queue_empty(&redis->waiting)) {

        if (!redis->broken && redis->ac == NULL) {
            return;     /* the connect failed at once: posted again */
        }

        q = ngx_queue_head(&redis->waiting);
        ngx_queue_remove(q);

        op = ngx_queue_data(q, ngx_worksible_redis_op_t, queue);
        op->queued = 0;

        if (!redis->broken && !op->unknown
            && ngx_worksible_redis_send(redis, op) == NGX_OK)
        {
            continue;
        }

        ngx_worksible_redis_answer(op, NULL);
        ngx_free(op);
    }
}


/* something was read: Redis is making progress */

static void
ngx_worksible_redis_progress(ngx_worksible_redis_t *redis)
{
    if (redis->pending) {
        ngx_add_timer(&redis->stall, ngx_max(redis->conf->timeout,
                                             redis->conf->connect_timeout));

    } else if (redis->stall.timer_set) {
        ngx_del_timer(&redis->stall);
    }
}


/* the adapter: hiredis asks for events, level-triggered */

static void
ngx_worksible_redis_add_read(void *data)
{
    ngx_worksible_redis_t  *redis = data;

    if (redis->c && !redis->c->read->active
        && ngx_add_event(redis->c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT)
           != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, redis->log, 0,
                      "worksible redis: cannot add a read event");
    }
}


static void
ngx_worksible_redis_del_read(void *data)
{
    ngx_worksible_redis_t  *redis = data;

    if (redis->c && redis->c->read->active) {
        ngx_del_event(redis->c->read, NGX_READ_EVENT, 0);
    }
}


/*
 * A command queued on a ready connection is written by a posted event, after
 * the current event's handlers, together with every other command queued
 * meanwhile: one write(2) for them and no epoll_ctl(2); the write handler
 * reads first (a close that came since epoll_wait(2) is seen then). The
 * write event is armed only while the socket is not writable: connecting,
 * or a write that could not take everything (hiredis asks again from the
 * write handler), or the server has closed its side (EPOLLRDHUP): the close
 * is read first, so that a command queued after it counts as never sent.
 */

static void
ngx_worksible_redis_add_write(void *data)
{
    ngx_worksible_redis_t  *redis = data;

    ngx_connection_t  *c;

    c = redis->c;

    if (c == NULL || c->write->active) {
        return;
    }

    if (redis->state == NGX_WORKSIBLE_REDIS_READY && !redis->writing
        && !c->read->pending_eof)
    {
        if (!c->write->posted) {
            ngx_post_event(c->write, &ngx_posted_events);
        }

        return;
    }

    if (ngx_add_event(c->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, redis->log, 0,
                      "worksible redis: cannot add a write event");
    }
}


static void
ngx_worksible_redis_del_write(void *data)
{
    ngx_worksible_redis_t  *redis = data;

    if (redis->c && redis->c->write->active) {
        ngx_del_event(redis->c->write, NGX_WRITE_EVENT, 0);
    }
}


/* hiredis is freeing its context and will close the fd itself */

static void
ngx_worksible_redis_cleanup(void *data)
{
    ngx_worksible_redis_t  *redis = data;

    ngx_connection_t  *c;

    c = redis->c;

    if (c != NULL) {
        ngx_worksible_redis_release(c);
        redis->c = NULL;
    }

    redis->ac = NULL;
}


void
ngx_worksible_redis_release(ngx_connection_t *c)
{
    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    if (c->read->active) {
        ngx_del_event(c->read, NGX_READ_EVENT, NGX_CLOSE_EVENT);
    }

    if (c->write->active) {
        ngx_del_event(c->write, NGX_WRITE_EVENT, NGX_CLOSE_EVENT);
    }

    ngx_free_connection(c);
    c->fd = (ngx_socket_t) -1;
}


static void
ngx_worksible_redis_read_handler(ngx_event_t *ev)
{
    ngx_connection_t       *c = ev->data;
    ngx_worksible_redis_t  *redis = c->data;

    if (redis->ac != NULL) {
        redisAsyncHandleRead(redis->ac);
    }
}


/* counts the bytes hiredis writes: a command past them was never sent */

static void
ngx_worksible_redis_write_handler(ngx_event_t *ev)
{
    ngx_connection_t       *c = ev->data;
    ngx_worksible_redis_t  *redis = c->data;

    size_t              len;
    redisAsyncContext  *ac;

    ac = redis->ac;

    if (ac == NULL) {
        return;
    }

    if (!ev->active) {
        /*
         * Posted by ngx_worksible_redis_add_write, not reported by epoll:
         * Redis may have closed the connection since the last epoll_wait(2)
         * returned. Read first, so that its end is seen before a command is
         * written to it, and the command counts as never written.
         */

        redisAsyncHandleRead(ac);

        if (redis->ac != ac) {
            return;
        }

        if (ev->posted) {
            /* a reply's handler queued more: they go with this write */
            ngx_delete_posted_event(ev);
        }
    }

    len = sdslen(ac->c.obuf);

    redis->writing = 1;
    redisAsyncHandleWrite(ac);
    redis->writing = 0;

    if (redis->ac == ac) {
        redis->written += len - sdslen(ac->c.obuf);
    }
}


void
ngx_worksible_redis_sha(const char *script, u_char *hex)
{
    u_char      sha[20];
    ngx_sha1_t  ctx;

    ngx_sha1_init(&ctx);
    ngx_sha1_update(&ctx, script, ngx_strlen(script));
    ngx_sha1_final(sha, &ctx);

    *ngx_hex_dump(hex, sha, sizeof(sha)) = '\0';
}


ngx_worksible_redis_op_t *
ngx_worksible_redis_eval(ngx_worksible_redis_t *redis, const char *script,
    const char *sha, ngx_str_t *key, ngx_str_t *args, int nargs,
    ngx_worksible_redis_handler_pt handler, void *data)
{
    int                        i;
    u_char                    *p;
    size_t                     len;
    ngx_worksible_redis_op_t  *op;

    (void) ngx_atomic_fetch_add(&redis->stats->calls, 1);

    if (redis->broken || nargs + 4 > NGX_WORKSIBLE_REDIS_MAX_ARGS) {
        (void) ngx_atomic_fetch_add(&redis->stats->errors, 1);
        return NULL;
    }

    /* the key and arguments are copied: the op may outlive the caller */

    len = sizeof(ngx_worksible_redis_op_t) + key->len;

    for (i = 0; i < nargs; i++) {
        len += args[i].len;
    }

    op = ngx_calloc(len, redis->log);
    if (op == NULL) {
        return NULL;
    }

    p = (u_char *) op + sizeof(ngx_worksible_redis_op_t);

    op->redis = redis;
    op->handler = handler;
    op->data = data;
    op->script = script;
    op->timer.handler = ngx_worksible_redis_timeout;
    op->timer.data = op;
    op->timer.log = redis->log;

    op->argv[0] = "EVALSHA";
    op->argv[1] = sha;
    op->argv[2] = "1";
    op->argv[3] = (char *) p;
    op->argvlen[3] = key->len;
    p = ngx_cpymem(p, key->data, key->len);

    for (i = 0; i < nargs; i++) {
        op->argv[4 + i] = (char *) p;
        op->argvlen[4 + i] = args[i].len;

        if (args[i].len) {
            /* an empty one may have no data: memcpy() takes no NULL */
            p = ngx_cpymem(p, args[i].data, args[i].len);
        }
    }

    op->argc = 4 + nargs;

    for (i = 0; i < 3; i++) {
        op->argvlen[i] = ngx_strlen(op->argv[i]);
    }

    if (redis->conf->cluster) {
        /* to the node of the key's slot */
        if (ngx_worksible_redis_cluster_route(redis->cluster, op) != NGX_OK) {
            (void) ngx_atomic_fetch_add(&redis->stats->errors, 1);
            ngx_free(op);
            return NULL;
        }

    } else if (redis->ac == NULL
               || ngx_worksible_redis_send(redis, op) != NGX_OK)
    {
        /* no connection right now (it is being made again) */
        ngx_worksible_redis_wait(redis, op);
    }

    ngx_add_timer(&op->timer, redis->conf->timeout);

    return op;
}


/* hands op to hiredis, on the current connection, noting where it lies */

static ngx_int_t
ngx_worksible_redis_send(ngx_worksible_redis_t *redis,
    ngx_worksible_redis_op_t *op)
{
    size_t              len;
    redisAsyncContext  *ac;

    ac = redis->ac;
    len = sdslen(ac->c.obuf);

    if (op->asking && redisAsyncCommand(ac, NULL, NULL, "ASKING") != REDIS_OK) {
        return NGX_ERROR;
    }

    if (redisAsyncCommandArgv(ac, ngx_worksible_redis_reply, op, op->argc,
                              op->argv, op->argvlen)
        != REDIS_OK)
    {
        return NGX_ERROR;
    }

    op->sent = redis->appended;
    redis->appended += sdslen(ac->c.obuf) - len;

    if (redis->pending++ == 0 && !redis->stall.timer_set) {
        ngx_add_timer(&redis->stall, ngx_max(redis->conf->timeout,
                                             redis->conf->connect_timeout));
    }

    return NGX_OK;
}


/* op waits for the next connection (ngx_worksible_redis_resume_handler) */

static void
ngx_worksible_redis_wait(ngx_worksible_redis_t *redis,
    ngx_worksible_redis_op_t *op)
{
    ngx_queue_insert_tail(&redis->waiting, &op->queue);
    op->queued = 1;

    ngx_post_event(&redis->resume, &ngx_posted_events);
}


/*
 * A reply, or NULL when hiredis frees the context. The op was handed to
 * hiredis and is freed here, whatever happened to its requester, unless
 * it waits for the next connection: a lost connection (the breaker still
 * closed) leaves its unanswered commands to the resume handler, outside
 * hiredis, which sends again those never written and those safe to run
 * twice, and fails the others. NOSCRIPT (a Redis restarted or flushed:
 * its script cache is empty) is answered by sending the script itself with
 * EVAL; LOADING (a Redis reading its data) opens the breaker.
 */

static void
ngx_worksible_redis_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply                *reply = r;
    ngx_uint_t                 loading;
    ngx_worksible_redis_t     *redis;
    ngx_worksible_redis_op_t  *op = privdata;

    redis = op->redis;
    loading = 0;

    if (redis->pending) {
        redis->pending--;
    }

    if (reply == NULL) {

        if (!redis->broken && !op->done && op->data != NULL) {
            op->unknown = (redis->written > op->sent && !op->resend);
            ngx_worksible_redis_wait(redis, op);
            return;
        }

        ngx_worksible_redis_answer(op, NULL);
        ngx_free(op);
        return;
    }

    ngx_worksible_redis_progress(redis);

    if (reply->type == REDIS_REPLY_ERROR) {

        if (ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0
            && op->argv[0][0] == 'E' && op->argv[0][4] == 'S' && !op->done)
        {
            op->argv[0] = "EVAL";
            op->argvlen[0] = 4;
            op->argv[1] = op->script;
            op->argvlen[1] = ngx_strlen(op->script);

            if (redis->ac == ac
                && ngx_worksible_redis_send(redis, op) == NGX_OK)
            {
                return;
            }

            reply = NULL;

        } else if (ngx_strncmp(reply->str, "LOADING", 7) == 0) {
            loading = 1;
            reply = NULL;

        } else if (redis->sentinel != NULL
                   && ngx_strncmp(reply->str, "READONLY", 8) == 0)
        {
            /*
             * a replica now: nothing ran (a replica refuses every write,
             * and the scripts use redis.call, which ends on the first),
             * so op waits for the primary
             */
            if (op->done || op->data == NULL) {
                ngx_free(op);

            } else {
                op->unknown = 0;
                ngx_worksible_redis_wait(redis, op);
            }

            if (redis->ac == ac) {
                ngx_worksible_redis_lost(redis, "READONLY", "a replica");
            }

            return;
        } else if (redis->cluster != NULL) {
            /* MOVED, ASK, TRYAGAIN, CLUSTERDOWN */
            switch (ngx_worksible_redis_cluster_reply(redis->cluster, op,
                                                      reply))
            {
            case NGX_OK:
                return;     /* redirected */
            case NGX_ERROR:
                reply = NULL;
                break;
            default:
                break;
            }
        }
    }

    ngx_worksible_redis_answer(op, reply);
    ngx_free(op);

    if (loading) {
        ngx_worksible_redis_fail(redis, "Redis is loading its data");
    }
}


/* the requester learns the outcome, once (reply NULL: none) */

static void
ngx_worksible_redis_answer(ngx_worksible_redis_op_t *op, redisReply *reply)
{
    if (op->done) {
        return;
    }

    op->done = 1;

    if (op->timer.timer_set) {
        ngx_del_timer(&op->timer);
    }

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        (void) ngx_atomic_fetch_add(&op->redis->stats->errors, 1);
    }

    if (op->data != NULL) {
        op->handler(op, reply);
    }
}


/*
 * No reply within the timeout: this requester gets NULL now; the command
 * stays in the pipeline and its late reply is discarded. Other commands and
 * the connection carry on (the breaker watches progress, not timeouts).
 * Logged at most once a second, with the count.
 */

static void
ngx_worksible_redis_timeout(ngx_event_t *ev)
{
    ngx_worksible_redis_t     *redis;
    ngx_worksible_redis_op_t  *op = ev->data;

    redis = op->redis;
    op->done = 1;

    (void) ngx_atomic_fetch_add(&redis->stats->timeouts, 1);

    redis->timed_out++;

    if (redis->logged != ngx_time()) {
        ngx_log_error(NGX_LOG_WARN, redis->log, 0,
                      "worksible redis %V: command timed out after %M ms "
                      "(%ui since the last such line), its late reply is "
                      "discarded", &redis->conf->display,
                      redis->conf->timeout, redis->timed_out);
        redis->timed_out = 0;
        redis->logged = ngx_time();
    }

    if (op->queued) {
        ngx_queue_remove(&op->queue);
        op->queued = 0;

        if (op->data != NULL) {
            op->handler(op, NULL);
        }

        ngx_free(op);
        return;
    }

    if (op->data != NULL) {
        op->handler(op, NULL);
    }
}


void
ngx_worksible_redis_allow_resend(ngx_worksible_redis_op_t *op)
{
    op->resend = 1;
}


void
ngx_worksible_redis_detach(ngx_worksible_redis_op_t *op)
{
    op->data = NULL;

    if (op->timer.timer_set) {
        ngx_del_timer(&op->timer);
    }

    if (op->queued) {
        ngx_queue_remove(&op->queue);
        ngx_free(op);
    }
}


ngx_uint_t
ngx_worksible_redis_up(ngx_worksible_redis_t *redis)
{
    if (redis->conf->cluster) {
        return ngx_worksible_redis_cluster_up(redis->cluster);
    }

    return redis->state == NGX_WORKSIBLE_REDIS_READY && !redis->broken;
}


time_t
ngx_worksible_redis_retry_after(ngx_worksible_redis_t *redis)
{
    ngx_msec_int_t  left;

    if (redis->conf->cluster) {
        return ngx_worksible_redis_cluster_retry_after(redis->cluster);
    }

    left = (ngx_msec_int_t) (redis->retry_at - ngx_current_msec);

    return left > 1000 ? (time_t) ((left + 999) / 1000) : 1;
}


void
ngx_worksible_redis_primary(ngx_worksible_redis_t *redis, ngx_uint_t changed)
{
    if (changed) {
        if (redis->probe.timer_set) {
            ngx_del_timer(&redis->probe);
        }

        redis->broken = 0;
        redis->failures = 0;
        redis->backoff = 0;

        /* outstanding commands wait (or fail: unknown fate) */
        ngx_worksible_redis_drop(redis);

    } else if (redis->ac != NULL
               || (redis->broken && redis->probe.timer_set))
    {
        return;
    }

    ngx_worksible_redis_connect(redis);

    if (!ngx_queue_empty(&redis->waiting)) {
        ngx_post_event(&redis->resume, &ngx_posted_events);
    }
}


ngx_worksible_redis_op_t *
ngx_worksible_redis_call(ngx_worksible_redis_t *redis, int argc,
    const char **argv, ngx_msec_t timeout,
    ngx_worksible_redis_handler_pt handler, void *data)
{
    int                        i;
    ngx_worksible_redis_op_t  *op;

    if (redis->broken || argc > NGX_WORKSIBLE_REDIS_MAX_ARGS) {
        return NULL;
    }

    op = ngx_calloc(sizeof(ngx_worksible_redis_op_t), redis->log);
    if (op == NULL) {
        return NULL;
    }

    op->redis = redis;
    op->handler = handler;
    op->data = data;
    op->timer.handler = ngx_worksible_redis_timeout;
    op->timer.data = op;
    op->timer.log = redis->log;
    op->argc = argc;

    for (i = 0; i < argc; i++) {
        op->argv[i] = argv[i];
        op->argvlen[i] = ngx_strlen(argv[i]);
    }

    if (redis->ac == NULL || ngx_worksible_redis_send(redis, op) != NGX_OK) {
        ngx_worksible_redis_wait(redis, op);
    }

    ngx_add_timer(&op->timer, timeout);

    return op;
}


ngx_int_t
ngx_worksible_redis_resubmit(ngx_worksible_redis_t *redis,
    ngx_worksible_redis_op_t *op)
{
    if (redis->broken) {
        return NGX_DECLINED;
    }

    op->redis = redis;
    op->unknown = 0;

    if (redis->ac == NULL || ngx_worksible_redis_send(redis, op) != NGX_OK) {
        ngx_worksible_redis_wait(redis, op);
    }

    return NGX_OK;
}


void
ngx_worksible_redis_no_primary(ngx_worksible_redis_t *redis)
{
    ngx_worksible_redis_fail(redis, NULL);     /* the Sentinel said why */
}


void
ngx_worksible_redis_finish(ngx_worksible_redis_op_t *op)
{
    ngx_worksible_redis_answer(op, NULL);
    ngx_free(op);
}


ngx_uint_t
ngx_worksible_redis_broken(ngx_worksible_redis_t *redis)
{
    return redis->broken;
}
