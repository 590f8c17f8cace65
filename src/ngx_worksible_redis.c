/*
 * Redis on nginx's event loop (see ngx_worksible_redis.h).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_sha1.h>

#include "ngx_worksible_redis.h"


#define NGX_WORKSIBLE_REDIS_BACKOFF_MIN  100
#define NGX_WORKSIBLE_REDIS_BACKOFF_MAX  5000


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
    ngx_worksible_redis_state_e     state;
    ngx_uint_t                      broken;       /* fail fast until up */
    ngx_msec_t                      backoff;
    ngx_msec_t                      retry_at;
    ngx_worksible_store_stats_t    *stats;
    ngx_log_t                      *log;
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
static void ngx_worksible_redis_fail(ngx_worksible_redis_t *redis,
    const char *why);
static void ngx_worksible_redis_probe_handler(ngx_event_t *ev);
static void ngx_worksible_redis_connect_timeout(ngx_event_t *ev);
static void ngx_worksible_redis_add_read(void *data);
static void ngx_worksible_redis_del_read(void *data);
static void ngx_worksible_redis_add_write(void *data);
static void ngx_worksible_redis_del_write(void *data);
static void ngx_worksible_redis_cleanup(void *data);
static void ngx_worksible_redis_read_handler(ngx_event_t *ev);
static void ngx_worksible_redis_write_handler(ngx_event_t *ev);
static void ngx_worksible_redis_reply(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_worksible_redis_timeout(ngx_event_t *ev);


char *
ngx_worksible_redis_conf_parse(ngx_conf_t *cf, ngx_str_t *args,
    ngx_uint_t nargs, ngx_worksible_redis_conf_t *conf)
{
    size_t      len;
    u_char     *p;
    ngx_url_t   u;
    ngx_uint_t  i;

    conf->timeout = 100;
    conf->connect_timeout = 1000;
    conf->display = args[0];

    for (i = 1; i < nargs; i++) {
        if (ngx_worksible_redis_option(cf, &args[i], conf) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    if (args[0].len > 5 && ngx_strncmp(args[0].data, "unix:", 5) == 0) {
        conf->unix_path = (char *) args[0].data + 5;
        return NGX_CONF_OK;
    }

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = args[0];
    u.default_port = 6379;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "worksible_redis \"%V\" not resolved%s%s",
                           &args[0], u.err ? ": " : "", u.err ? u.err : "");
        return NGX_CONF_ERROR;
    }

    p = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    len = ngx_sock_ntop(u.addrs[0].sockaddr, u.addrs[0].socklen, p,
                        NGX_SOCKADDR_STRLEN, 0);
    p[len] = '\0';

    conf->addr = (char *) p;
    conf->port = u.port;

    return NGX_CONF_OK;
}


/* one "name=value" option of worksible_redis */

static ngx_int_t
ngx_worksible_redis_option(ngx_conf_t *cf, ngx_str_t *arg,
    ngx_worksible_redis_conf_t *conf)
{
    u_char      *p;
    ssize_t      n;
    ngx_int_t    v;
    ngx_str_t    s;
    ngx_file_t   file;
    u_char       buf[512];

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
        ngx_memzero(&file, sizeof(ngx_file_t));
        file.name.data = arg->data + 14;
        file.name.len = arg->len - 14;
        file.log = cf->log;

        if (ngx_conf_full_name(cf->cycle, &file.name, 1) != NGX_OK) {
            return NGX_ERROR;
        }

        file.fd = ngx_open_file(file.name.data, NGX_FILE_RDONLY,
                                NGX_FILE_OPEN, 0);
        if (file.fd == NGX_INVALID_FILE) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                               ngx_open_file_n " \"%V\" failed", &file.name);
            return NGX_ERROR;
        }

        n = ngx_read_file(&file, buf, sizeof(buf), 0);
        ngx_close_file(file.fd);

        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) {
            n--;
        }

        if (n <= 0 || n == (ssize_t) sizeof(buf)) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\" must hold the Redis password on one "
                               "line", &file.name);
            return NGX_ERROR;
        }

        conf->password.data = ngx_pnalloc(cf->pool, n);
        if (conf->password.data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(conf->password.data, buf, n);
        conf->password.len = n;
        ngx_explicit_memzero(buf, sizeof(buf));

        return NGX_OK;
    }

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid worksible_redis parameter \"%V\" "
                       "(password_file=FILE, db=0..1024, timeout=TIME, "
                       "connect_timeout=TIME)", arg);

    return NGX_ERROR;
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

    redis->probe.handler = ngx_worksible_redis_probe_handler;
    redis->probe.data = redis;
    redis->probe.log = cycle->log;
    redis->probe.cancelable = 1;

    redis->connect_timer.handler = ngx_worksible_redis_connect_timeout;
    redis->connect_timer.data = redis;
    redis->connect_timer.log = cycle->log;
    redis->connect_timer.cancelable = 1;

    ngx_worksible_redis_connect(redis);

    return redis;
}


void
ngx_worksible_redis_close(ngx_worksible_redis_t *redis)
{
    if (redis->probe.timer_set) {
        ngx_del_timer(&redis->probe);
    }

    if (redis->connect_timer.timer_set) {
        ngx_del_timer(&redis->connect_timer);
    }

    if (redis->state == NGX_WORKSIBLE_REDIS_READY) {
        (void) ngx_atomic_fetch_add(&redis->stats->connections, -1);
    }

    redis->state = NGX_WORKSIBLE_REDIS_DOWN;
    redis->broken = 1;

    if (redis->ac != NULL) {
        redisAsyncFree(redis->ac);
    }
}


/*
 * Opens the connection and sends AUTH, SELECT and the PING that marks it
 * ready; commands sent meanwhile are queued by hiredis behind them.
 */

static void
ngx_worksible_redis_connect(ngx_worksible_redis_t *redis)
{
    u_char                      *p;
    redisAsyncContext           *ac;
    ngx_connection_t            *c;
    ngx_worksible_redis_conf_t  *conf;
    const char                  *argv[2];
    u_char                       db[NGX_INT_T_LEN + 1];

    conf = redis->conf;

    ac = conf->unix_path ? redisAsyncConnectUnix(conf->unix_path)
                         : redisAsyncConnect(conf->addr, conf->port);

    if (ac == NULL) {
        ngx_worksible_redis_fail(redis, "out of memory");
        return;
    }

    if (ac->err) {
        ngx_log_error(NGX_LOG_ERR, redis->log, 0,
                      "worksible redis %V: %s", &conf->display, ac->errstr);
        redisAsyncFree(ac);
        ngx_worksible_redis_fail(redis, NULL);
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

    argv[0] = "PING";
    ngx_worksible_redis_command(redis, ngx_worksible_redis_probed, 1, argv);
}


/* a command of the probe (the password's length is kept by the conf) */

static void
ngx_worksible_redis_command(ngx_worksible_redis_t *redis, redisCallbackFn *fn,
    int argc, const char **argv)
{
    size_t  argvlen[2];

    if (redis->ac == NULL) {
        return;     /* an earlier command of the probe failed */
    }

    argvlen[0] = ngx_strlen(argv[0]);

    if (argc == 2) {
        argvlen[1] = (argv[1] == (char *) redis->conf->password.data)
                     ? redis->conf->password.len : ngx_strlen(argv[1]);
    }

    if (redisAsyncCommandArgv(redis->ac, fn, redis, argc, argv, argvlen)
        != REDIS_OK)
    {
        ngx_worksible_redis_fail(redis, "cannot send the probe");
    }
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

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, redis->log, 0,
                      "worksible redis %V: %*s", &redis->conf->display,
                      (size_t) reply->len, reply->str);
        ngx_worksible_redis_fail(redis, NULL);
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
        redis->backoff = 0;
    }
}


static void
ngx_worksible_redis_connected(const redisAsyncContext *ac, int status)
{
    ngx_worksible_redis_t  *redis = ac->data;

    if (status != REDIS_OK) {
        ngx_log_error(NGX_LOG_ERR, redis->log, 0,
                      "worksible redis %V: connect failed: %s",
                      &redis->conf->display, ac->errstr);

        /* hiredis frees the context right after this callback */
        redis->ac = NULL;
        ngx_worksible_redis_fail(redis, NULL);
    }
}


static void
ngx_worksible_redis_disconnected(const redisAsyncContext *ac, int status)
{
    ngx_worksible_redis_t  *redis = ac->data;

    if (status != REDIS_OK) {
        ngx_log_error(NGX_LOG_ERR, redis->log, 0,
                      "worksible redis %V: connection lost: %s",
                      &redis->conf->display, ac->errstr);
    }

    /* called while hiredis frees the context */
    redis->ac = NULL;
    ngx_worksible_redis_fail(redis, NULL);
}


/*
 * Opens the breaker: commands fail at once, the context (if still ours) is
 * freed, and a probe is scheduled after a backoff (100 ms doubling to 5 s).
 * Safe from hiredis callbacks: hiredis defers the free until they return.
 */

static void
ngx_worksible_redis_fail(ngx_worksible_redis_t *redis, const char *why)
{
    redisAsyncContext  *ac;

    if (why != NULL) {
        ngx_log_error(NGX_LOG_ERR, redis->log, 0, "worksible redis %V: %s",
                      &redis->conf->display, why);
    }

    if (redis->state == NGX_WORKSIBLE_REDIS_READY) {
        (void) ngx_atomic_fetch_add(&redis->stats->connections, -1);
    }

    redis->state = NGX_WORKSIBLE_REDIS_DOWN;
    redis->broken = 1;

    if (redis->connect_timer.timer_set) {
        ngx_del_timer(&redis->connect_timer);
    }

    if (!redis->probe.timer_set) {
        redis->backoff = redis->backoff
                         ? ngx_min(redis->backoff * 2,
                                   NGX_WORKSIBLE_REDIS_BACKOFF_MAX)
                         : NGX_WORKSIBLE_REDIS_BACKOFF_MIN;
        redis->retry_at = ngx_current_msec + redis->backoff;
        ngx_add_timer(&redis->probe, redis->backoff);
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
    ngx_worksible_redis_fail(ev->data, "connect or probe timed out");
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


static void
ngx_worksible_redis_add_write(void *data)
{
    ngx_worksible_redis_t  *redis = data;

    if (redis->c && !redis->c->write->active
        && ngx_add_event(redis->c->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT)
           != NGX_OK)
    {
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
        redis->c = NULL;
    }

    redis->ac = NULL;
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


static void
ngx_worksible_redis_write_handler(ngx_event_t *ev)
{
    ngx_connection_t       *c = ev->data;
    ngx_worksible_redis_t  *redis = c->data;

    if (redis->ac != NULL) {
        redisAsyncHandleWrite(redis->ac);
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

    if (redis->broken || redis->ac == NULL
        || nargs + 4 > NGX_WORKSIBLE_REDIS_MAX_ARGS)
    {
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

    if (redisAsyncCommandArgv(redis->ac, ngx_worksible_redis_reply, op,
                              op->argc, op->argv, op->argvlen)
        != REDIS_OK)
    {
        ngx_free(op);
        ngx_worksible_redis_fail(redis, "cannot send a command");
        return NULL;
    }

    ngx_add_timer(&op->timer, redis->conf->timeout);

    return op;
}


/*
 * A reply, or NULL when hiredis frees the context. The op was handed to
 * hiredis and is freed here, whatever happened to its requester. NOSCRIPT
 * (a Redis restarted or flushed: its script cache is empty) is answered by
 * sending the script itself with EVAL; LOADING (a Redis reading its data)
 * counts as down.
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

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {

        if (ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0
            && op->argv[0][0] == 'E' && op->argv[0][4] == 'S' && !op->done)
        {
            op->argv[0] = "EVAL";
            op->argvlen[0] = 4;
            op->argv[1] = op->script;
            op->argvlen[1] = ngx_strlen(op->script);

            if (redisAsyncCommandArgv(ac, ngx_worksible_redis_reply, op,
                                      op->argc, op->argv, op->argvlen)
                == REDIS_OK)
            {
                return;
            }

            reply = NULL;

        } else if (ngx_strncmp(reply->str, "LOADING", 7) == 0) {
            loading = 1;
            reply = NULL;
        }
    }

    if (!op->done) {
        op->done = 1;

        if (op->timer.timer_set) {
            ngx_del_timer(&op->timer);
        }

        if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
            (void) ngx_atomic_fetch_add(&redis->stats->errors, 1);
        }

        if (op->data != NULL) {
            op->handler(op, reply);
        }
    }

    ngx_free(op);

    if (loading) {
        ngx_worksible_redis_fail(redis, "Redis is loading its data");
    }
}


/*
 * No reply within the timeout: the requester gets NULL now, and the
 * breaker opens (a Redis that accepts but never answers, SIGSTOP, must
 * not hold the next requests too). The op itself waits for hiredis.
 */

static void
ngx_worksible_redis_timeout(ngx_event_t *ev)
{
    ngx_worksible_redis_t     *redis;
    ngx_worksible_redis_op_t  *op = ev->data;

    redis = op->redis;
    op->done = 1;

    (void) ngx_atomic_fetch_add(&redis->stats->timeouts, 1);

    if (op->data != NULL) {
        op->handler(op, NULL);
    }

    ngx_worksible_redis_fail(redis, "command timed out");
}


void
ngx_worksible_redis_detach(ngx_worksible_redis_op_t *op)
{
    op->data = NULL;

    if (op->timer.timer_set) {
        ngx_del_timer(&op->timer);
    }
}


ngx_uint_t
ngx_worksible_redis_up(ngx_worksible_redis_t *redis)
{
    return redis->state == NGX_WORKSIBLE_REDIS_READY && !redis->broken;
}


time_t
ngx_worksible_redis_retry_after(ngx_worksible_redis_t *redis)
{
    ngx_msec_int_t  left;

    left = (ngx_msec_int_t) (redis->retry_at - ngx_current_msec);

    return left > 1000 ? (time_t) ((left + 999) / 1000) : 1;
}
