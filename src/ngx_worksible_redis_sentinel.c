/*
 * Redis Sentinel for worksible_redis (see ngx_worksible_redis_sentinel.h).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_worksible_redis.h"
#include "ngx_worksible_redis_sentinel.h"


#define NGX_WORKSIBLE_SENTINEL_PORT   26379

/* ms before subscribing again, on the next Sentinel */
#define NGX_WORKSIBLE_SENTINEL_RETRY  1000


typedef struct {
    ngx_worksible_redis_sentinel_t  *sentinel;
    redisAsyncContext               *ac;
    ngx_connection_t                *c;
    ngx_event_t                      timer;
    ngx_uint_t                       index;       /* its Sentinel */
} ngx_worksible_redis_sentinel_link_t;


struct ngx_worksible_redis_sentinel_s {
    ngx_worksible_redis_t                *redis;
    ngx_worksible_redis_sentinel_conf_t  *conf;
    ngx_msec_t                            timeout;
    ngx_log_t                            *log;
    ngx_worksible_redis_sentinel_link_t   query;
    ngx_worksible_redis_sentinel_link_t   sub;
    ngx_event_t                           next;   /* posted: ask the next */
    ngx_uint_t                            first;  /* answered last */
    ngx_uint_t                            tried;  /* in this round */
    int                                   port;
    char                                  addr[NGX_SOCKADDR_STRLEN + 1];
    unsigned                              known:1;
    unsigned                              asking:1;
    unsigned                              unsubscribed:1; /* was lost */
    unsigned                              closing:1;
};


static ngx_int_t ngx_worksible_redis_sentinel_open(
    ngx_worksible_redis_sentinel_link_t *link, ngx_uint_t index);
static void ngx_worksible_redis_sentinel_shut(
    ngx_worksible_redis_sentinel_link_t *link);
static ngx_int_t ngx_worksible_redis_sentinel_send(
    ngx_worksible_redis_sentinel_link_t *link, redisCallbackFn *fn,
    int argc, const char **argv, size_t *argvlen);
static void ngx_worksible_redis_sentinel_failed(
    ngx_worksible_redis_sentinel_link_t *link, const char *why, size_t len);
static void ngx_worksible_redis_sentinel_next(ngx_event_t *ev);
static void ngx_worksible_redis_sentinel_answer(redisAsyncContext *ac,
    void *r, void *privdata);
static void ngx_worksible_redis_sentinel_authed(redisAsyncContext *ac,
    void *r, void *privdata);
static void ngx_worksible_redis_sentinel_query_timeout(ngx_event_t *ev);
static void ngx_worksible_redis_sentinel_subscribe(
    ngx_worksible_redis_sentinel_t *s);
static void ngx_worksible_redis_sentinel_message(redisAsyncContext *ac,
    void *r, void *privdata);
static void ngx_worksible_redis_sentinel_sub_timer(ngx_event_t *ev);
static ngx_int_t ngx_worksible_redis_sentinel_set(
    ngx_worksible_redis_sentinel_t *s, u_char *addr, size_t len,
    u_char *port, size_t plen);
static void ngx_worksible_redis_sentinel_connected(
    const redisAsyncContext *ac, int status);
static void ngx_worksible_redis_sentinel_disconnected(
    const redisAsyncContext *ac, int status);
static void ngx_worksible_redis_sentinel_add_read(void *data);
static void ngx_worksible_redis_sentinel_del_read(void *data);
static void ngx_worksible_redis_sentinel_add_write(void *data);
static void ngx_worksible_redis_sentinel_del_write(void *data);
static void ngx_worksible_redis_sentinel_cleanup(void *data);
static void ngx_worksible_redis_sentinel_read(ngx_event_t *ev);
static void ngx_worksible_redis_sentinel_write(ngx_event_t *ev);


/* --- configuration ------------------------------------------------------ */


ngx_int_t
ngx_worksible_redis_sentinel_option(ngx_conf_t *cf, ngx_str_t *arg,
    ngx_worksible_redis_sentinel_conf_t **conf)
{
    ngx_str_t  file;

    if (ngx_strncmp(arg->data, "sentinel=", 9) != 0
        && ngx_strncmp(arg->data, "sentinel_password_file=", 23) != 0)
    {
        return NGX_DECLINED;
    }

    if (*conf == NULL) {
        *conf = ngx_pcalloc(cf->pool,
                            sizeof(ngx_worksible_redis_sentinel_conf_t));
        if (*conf == NULL) {
            return NGX_ERROR;
        }
    }

    if (arg->data[8] == '=') {
        if (arg->len == 9 || (*conf)->name.len) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "worksible_redis \"%V\": one sentinel=NAME "
                               "with a master name", arg);
            return NGX_ERROR;
        }

        (*conf)->name.data = arg->data + 9;
        (*conf)->name.len = arg->len - 9;
        return NGX_OK;
    }

    file.data = arg->data + 23;
    file.len = arg->len - 23;

    return ngx_worksible_redis_conf_password(cf, &file, &(*conf)->password);
}


ngx_int_t
ngx_worksible_redis_sentinel_conf(ngx_conf_t *cf, ngx_str_t *args,
    ngx_uint_t naddrs, ngx_worksible_redis_sentinel_conf_t *conf)
{
    int                                   port;
    char                                 *addr;
    ngx_uint_t                            i;
    ngx_worksible_redis_sentinel_addr_t  *a;

    if (conf->name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "worksible_redis: sentinel_password_file needs "
                           "sentinel=NAME");
        return NGX_ERROR;
    }

    conf->addrs = ngx_array_create(cf->pool, naddrs,
                                   sizeof(ngx_worksible_redis_sentinel_addr_t));
    if (conf->addrs == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < naddrs; i++) {

        if (args[i].len >= 5 && ngx_strncmp(args[i].data, "unix:", 5) == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "worksible_redis: the Sentinel \"%V\" must be "
                               "host[:port]", &args[i]);
            return NGX_ERROR;
        }

        if (ngx_worksible_redis_resolve(cf, &args[i],
                                        NGX_WORKSIBLE_SENTINEL_PORT,
                                        ": the Sentinel", &addr, &port)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        a = ngx_array_push(conf->addrs);
        if (a == NULL) {
            return NGX_ERROR;
        }

        a->display = args[i];
        a->addr = addr;
        a->port = port;
    }

    return NGX_OK;
}


/* --- the worker's client -------------------------------------------------- */


ngx_worksible_redis_sentinel_t *
ngx_worksible_redis_sentinel_create(ngx_worksible_redis_t *redis,
    ngx_worksible_redis_sentinel_conf_t *conf, ngx_msec_t timeout,
    ngx_cycle_t *cycle)
{
    ngx_worksible_redis_sentinel_t  *s;

    s = ngx_pcalloc(cycle->pool, sizeof(ngx_worksible_redis_sentinel_t));
    if (s == NULL) {
        return NULL;
    }

    s->redis = redis;
    s->conf = conf;
    s->timeout = timeout;
    s->log = cycle->log;

    s->query.sentinel = s;
    s->query.timer.handler = ngx_worksible_redis_sentinel_query_timeout;
    s->query.timer.data = s;
    s->query.timer.log = cycle->log;
    s->query.timer.cancelable = 1;

    s->sub.sentinel = s;
    s->sub.timer.handler = ngx_worksible_redis_sentinel_sub_timer;
    s->sub.timer.data = s;
    s->sub.timer.log = cycle->log;
    s->sub.timer.cancelable = 1;

    s->next.handler = ngx_worksible_redis_sentinel_next;
    s->next.data = s;
    s->next.log = cycle->log;

    /* the worker's pid spreads the subscriptions over the Sentinels */
    s->sub.index = ngx_pid % conf->addrs->nelts;

    ngx_worksible_redis_sentinel_subscribe(s);

    return s;
}


void
ngx_worksible_redis_sentinel_close(ngx_worksible_redis_sentinel_t *s)
{
    s->closing = 1;

    if (s->next.posted) {
        ngx_delete_posted_event(&s->next);
    }

    ngx_worksible_redis_sentinel_shut(&s->query);
    ngx_worksible_redis_sentinel_shut(&s->sub);

    if (s->sub.timer.timer_set) {
        ngx_del_timer(&s->sub.timer);
    }
}


ngx_int_t
ngx_worksible_redis_sentinel_primary(ngx_worksible_redis_sentinel_t *s,
    char **addr, int *port)
{
    if (s->asking) {
        return NGX_DECLINED;
    }

    if (!s->known) {
        ngx_worksible_redis_sentinel_ask(s, NULL);
        return NGX_DECLINED;
    }

    *addr = s->addr;
    *port = s->port;

    return NGX_OK;
}


void
ngx_worksible_redis_sentinel_ask(ngx_worksible_redis_sentinel_t *s,
    const char *why)
{
    if (s->closing || s->asking) {
        return;
    }

    if (why != NULL) {
        ngx_log_error(NGX_LOG_INFO, s->log, 0,
                      "worksible redis %V: asking the Sentinels for the "
                      "primary (%s)", &s->conf->name, why);
    }

    s->asking = 1;
    s->tried = 0;

    /* outside the caller, which may be a hiredis callback */
    ngx_post_event(&s->next, &ngx_posted_events);
}


ngx_int_t
ngx_worksible_redis_sentinel_role(redisReply *reply)
{
    redisReply  *r;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0) {
        return NGX_ERROR;
    }

    r = reply->element[0];

    if ((r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)
        && r->len == 6 && ngx_strncmp(r->str, "master", 6) == 0)
    {
        return NGX_OK;
    }

    return NGX_ERROR;
}


/*
 * Asks the next Sentinel of this round (posted): each is tried once, the
 * one that answered last first; past them all, the round failed.
 */

static void
ngx_worksible_redis_sentinel_next(ngx_event_t *ev)
{
    ngx_worksible_redis_sentinel_t  *s = ev->data;

    ngx_uint_t   n, i;
    const char  *argv[3];
    size_t       argvlen[3];

    if (s->closing || s->query.ac != NULL) {
        return;
    }

    n = s->conf->addrs->nelts;

    if (s->tried == n) {
        s->asking = 0;

        if (s->known) {
            ngx_log_error(NGX_LOG_ERR, s->log, 0,
                          "worksible redis %V: no Sentinel answered, "
                          "keeping the primary %s:%d", &s->conf->name,
                          s->addr, s->port);
            ngx_worksible_redis_primary(s->redis, 0);
            return;
        }

        ngx_log_error(NGX_LOG_ERR, s->log, 0,
                      "worksible redis %V: no Sentinel named the primary",
                      &s->conf->name);
        ngx_worksible_redis_no_primary(s->redis);
        return;
    }

    i = (s->first + s->tried++) % n;

    if (ngx_worksible_redis_sentinel_open(&s->query, i) != NGX_OK) {
        ngx_post_event(&s->next, &ngx_posted_events);
        return;
    }

    argv[0] = "SENTINEL";
    argv[1] = "get-master-addr-by-name";
    argv[2] = (char *) s->conf->name.data;
    argvlen[0] = 8;
    argvlen[1] = 23;
    argvlen[2] = s->conf->name.len;

    if (ngx_worksible_redis_sentinel_send(&s->query,
                                          ngx_worksible_redis_sentinel_answer,
                                          3, argv, argvlen)
        != NGX_OK)
    {
        return;
    }

    ngx_add_timer(&s->query.timer, s->timeout);
}


/* the answer of SENTINEL get-master-addr-by-name: [ip, port] or nil */

static void
ngx_worksible_redis_sentinel_answer(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                      *reply = r;
    ngx_int_t                        changed;
    ngx_worksible_redis_sentinel_t  *s = privdata;

    if (reply == NULL) {
        return;     /* the context is being freed */
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_worksible_redis_sentinel_failed(&s->query, reply->str,
                                            reply->len);
        return;
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2
        || reply->element[0]->type != REDIS_REPLY_STRING
        || reply->element[1]->type != REDIS_REPLY_STRING)
    {
        ngx_worksible_redis_sentinel_failed(&s->query,
                                            "does not know the master name",
                                            29);
        return;
    }

    changed = ngx_worksible_redis_sentinel_set(s,
                  (u_char *) reply->element[0]->str, reply->element[0]->len,
                  (u_char *) reply->element[1]->str, reply->element[1]->len);

    if (changed == NGX_ERROR) {
        ngx_worksible_redis_sentinel_failed(&s->query,
                                            "named no numeric address", 24);
        return;
    }

    s->first = s->query.index;
    s->asking = 0;

    ngx_worksible_redis_sentinel_shut(&s->query);

    ngx_worksible_redis_primary(s->redis, changed);
}


static void
ngx_worksible_redis_sentinel_query_timeout(ngx_event_t *ev)
{
    ngx_worksible_redis_sentinel_t  *s = ev->data;

    ngx_worksible_redis_sentinel_failed(&s->query, "timed out", 9);
}


/* the AUTH of sentinel_password_file, on either connection */

static void
ngx_worksible_redis_sentinel_authed(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                           *reply = r;
    ngx_worksible_redis_sentinel_link_t  *link = privdata;

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR
        && link->ac == ac)
    {
        ngx_worksible_redis_sentinel_failed(link, reply->str, reply->len);
    }
}


/*
 * A connection to a Sentinel failed (refused, lost, timed out, an error
 * answered): the query goes on with the next Sentinel, the subscription is
 * made again on the next one after NGX_WORKSIBLE_SENTINEL_RETRY.
 */

static void
ngx_worksible_redis_sentinel_failed(ngx_worksible_redis_sentinel_link_t *link,
    const char *why, size_t len)
{
    ngx_worksible_redis_sentinel_t       *s = link->sentinel;
    ngx_worksible_redis_sentinel_addr_t  *a;

    if (s->closing) {
        return;
    }

    a = s->conf->addrs->elts;

    ngx_log_error(NGX_LOG_WARN, s->log, 0,
                  "worksible redis %V: Sentinel %V%s: %*s", &s->conf->name,
                  &a[link->index].display,
                  link == &s->sub ? " (+switch-master)" : "", len, why);

    ngx_worksible_redis_sentinel_shut(link);

    if (link == &s->query) {
        ngx_post_event(&s->next, &ngx_posted_events);
        return;
    }

    s->unsubscribed = 1;
    link->index = (link->index + 1) % s->conf->addrs->nelts;
    ngx_add_timer(&link->timer, NGX_WORKSIBLE_SENTINEL_RETRY);
}


/* --- +switch-master --------------------------------------------------------- */


static void
ngx_worksible_redis_sentinel_subscribe(ngx_worksible_redis_sentinel_t *s)
{
    const char  *argv[2];
    size_t       argvlen[2];

    if (ngx_worksible_redis_sentinel_open(&s->sub, s->sub.index) != NGX_OK) {
        s->unsubscribed = 1;
        s->sub.index = (s->sub.index + 1) % s->conf->addrs->nelts;
        ngx_add_timer(&s->sub.timer, NGX_WORKSIBLE_SENTINEL_RETRY);
        return;
    }

    argv[0] = "SUBSCRIBE";
    argv[1] = "+switch-master";
    argvlen[0] = 9;
    argvlen[1] = 14;

    if (ngx_worksible_redis_sentinel_send(&s->sub,
                                          ngx_worksible_redis_sentinel_message,
                                          2, argv, argvlen)
        != NGX_OK)
    {
        return;
    }

    /* until the subscription is confirmed */
    ngx_add_timer(&s->sub.timer, s->timeout);
}


/* its timer: subscribe again, or the confirmation did not come */

static void
ngx_worksible_redis_sentinel_sub_timer(ngx_event_t *ev)
{
    ngx_worksible_redis_sentinel_t  *s = ev->data;

    if (s->sub.ac != NULL) {
        ngx_worksible_redis_sentinel_failed(&s->sub, "timed out", 9);
        return;
    }

    ngx_worksible_redis_sentinel_subscribe(s);
}


/*
 * ["subscribe", "+switch-master", 1] once, then ["message",
 * "+switch-master", "NAME OLD-IP OLD-PORT NEW-IP NEW-PORT"] per failover of
 * any master the Sentinel watches.
 */

static void
ngx_worksible_redis_sentinel_message(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                      *reply = r;
    u_char                          *p, *last, *f[5];
    size_t                           flen[5];
    ngx_int_t                        changed;
    ngx_uint_t                       n;
    ngx_worksible_redis_sentinel_t  *s = privdata;

    if (reply == NULL || s->sub.ac != ac) {
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_worksible_redis_sentinel_failed(&s->sub, reply->str, reply->len);
        return;
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3
        || reply->element[0]->type != REDIS_REPLY_STRING)
    {
        return;
    }

    if (ngx_strcmp(reply->element[0]->str, "subscribe") == 0) {
        if (s->sub.timer.timer_set) {
            ngx_del_timer(&s->sub.timer);
        }

        /* a switch may have been missed while not subscribed */
        if (s->unsubscribed && s->known) {
            ngx_worksible_redis_sentinel_ask(s, "subscribed again");
        }

        s->unsubscribed = 0;

        return;
    }

    if (ngx_strcmp(reply->element[0]->str, "message") != 0
        || reply->element[2]->type != REDIS_REPLY_STRING)
    {
        return;
    }

    p = (u_char *) reply->element[2]->str;
    last = p + reply->element[2]->len;

    for (n = 0; n < 5 && p < last; n++) {
        f[n] = p;

        while (p < last && *p != ' ') {
            p++;
        }

        flen[n] = p - f[n];

        while (p < last && *p == ' ') {
            p++;
        }
    }

    if (n != 5 || flen[0] != s->conf->name.len
        || ngx_strncmp(f[0], s->conf->name.data, flen[0]) != 0)
    {
        return;     /* another master's */
    }

    changed = ngx_worksible_redis_sentinel_set(s, f[3], flen[3], f[4],
                                               flen[4]);
    if (changed == NGX_ERROR) {
        return;
    }

    if (s->asking) {
        /* the message is newer than the answer being waited for */
        s->asking = 0;
        ngx_worksible_redis_sentinel_shut(&s->query);

        if (s->next.posted) {
            ngx_delete_posted_event(&s->next);
        }
    }

    ngx_log_error(NGX_LOG_NOTICE, s->log, 0,
                  "worksible redis %V: +switch-master to %s:%d",
                  &s->conf->name, s->addr, s->port);

    ngx_worksible_redis_primary(s->redis, changed);
}


/*
 * The primary is addr:port (numeric): 1 when that differs from the one
 * known, 0 when not, NGX_ERROR for a host name or a bad port.
 */

static ngx_int_t
ngx_worksible_redis_sentinel_set(ngx_worksible_redis_sentinel_t *s,
    u_char *addr, size_t len, u_char *port, size_t plen)
{
    ngx_int_t  p;
#if (NGX_HAVE_INET6)
    u_char     a6[16];
#endif

    p = ngx_atoi(port, plen);

    if (p < 1 || p > 65535 || len == 0 || len > NGX_SOCKADDR_STRLEN) {
        return NGX_ERROR;
    }

    if (ngx_inet_addr(addr, len) == INADDR_NONE
#if (NGX_HAVE_INET6)
        && ngx_inet6_addr(addr, len, a6) != NGX_OK
#endif
        )
    {
        ngx_log_error(NGX_LOG_ERR, s->log, 0,
                      "worksible redis %V: the Sentinel named \"%*s\", not "
                      "a numeric address", &s->conf->name, len, addr);
        return NGX_ERROR;
    }

    if (s->known && (int) p == s->port && ngx_strlen(s->addr) == len
        && ngx_strncmp(s->addr, addr, len) == 0)
    {
        return 0;
    }

    if (s->known) {
        ngx_log_error(NGX_LOG_NOTICE, s->log, 0,
                      "worksible redis %V: the primary is %*s:%i (was "
                      "%s:%d)", &s->conf->name, len, addr, p, s->addr,
                      s->port);

    } else {
        ngx_log_error(NGX_LOG_NOTICE, s->log, 0,
                      "worksible redis %V: the primary is %*s:%i",
                      &s->conf->name, len, addr, p);
    }

    ngx_memcpy(s->addr, addr, len);
    s->addr[len] = '\0';
    s->port = (int) p;
    s->known = 1;

    return 1;
}


/* --- connections to the Sentinels ------------------------------------------ */


/* connects link to Sentinel index (sending AUTH first when configured) */

static ngx_int_t
ngx_worksible_redis_sentinel_open(ngx_worksible_redis_sentinel_link_t *link,
    ngx_uint_t index)
{
    redisAsyncContext                    *ac;
    ngx_connection_t                     *c;
    ngx_worksible_redis_sentinel_t       *s = link->sentinel;
    ngx_worksible_redis_sentinel_addr_t  *a;
    const char                           *argv[2];
    size_t                                argvlen[2];

    a = s->conf->addrs->elts;
    link->index = index;

    ac = redisAsyncConnect(a[index].addr, a[index].port);
    if (ac == NULL) {
        return NGX_ERROR;
    }

    if (ac->err) {
        ngx_log_error(NGX_LOG_WARN, s->log, 0,
                      "worksible redis %V: Sentinel %V: %s", &s->conf->name,
                      &a[index].display, ac->errstr);
        redisAsyncFree(ac);
        return NGX_ERROR;
    }

    c = ngx_get_connection(ac->c.fd, s->log);
    if (c == NULL) {
        redisAsyncFree(ac);
        return NGX_ERROR;
    }

    c->data = link;
    c->read->handler = ngx_worksible_redis_sentinel_read;
    c->write->handler = ngx_worksible_redis_sentinel_write;
    c->read->log = s->log;
    c->write->log = s->log;

    link->c = c;
    link->ac = ac;

    ac->data = link;
    ac->ev.data = link;
    ac->ev.addRead = ngx_worksible_redis_sentinel_add_read;
    ac->ev.delRead = ngx_worksible_redis_sentinel_del_read;
    ac->ev.addWrite = ngx_worksible_redis_sentinel_add_write;
    ac->ev.delWrite = ngx_worksible_redis_sentinel_del_write;
    ac->ev.cleanup = ngx_worksible_redis_sentinel_cleanup;

    redisAsyncSetConnectCallback(ac, ngx_worksible_redis_sentinel_connected);
    redisAsyncSetDisconnectCallback(ac,
                                    ngx_worksible_redis_sentinel_disconnected);

    if (s->conf->password.len) {
        argv[0] = "AUTH";
        argv[1] = (char *) s->conf->password.data;
        argvlen[0] = 4;
        argvlen[1] = s->conf->password.len;

        if (ngx_worksible_redis_sentinel_send(link,
                                          ngx_worksible_redis_sentinel_authed,
                                          2, argv, argvlen)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* a command on link; on failure the link failed (NGX_ERROR) */

static ngx_int_t
ngx_worksible_redis_sentinel_send(ngx_worksible_redis_sentinel_link_t *link,
    redisCallbackFn *fn, int argc, const char **argv, size_t *argvlen)
{
    void  *privdata;

    privdata = (fn == ngx_worksible_redis_sentinel_authed)
               ? (void *) link : (void *) link->sentinel;

    if (redisAsyncCommandArgv(link->ac, fn, privdata, argc, argv, argvlen)
        != REDIS_OK)
    {
        ngx_worksible_redis_sentinel_failed(link, "cannot send", 11);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* frees link's context, if any; safe in its callbacks (hiredis defers) */

static void
ngx_worksible_redis_sentinel_shut(ngx_worksible_redis_sentinel_link_t *link)
{
    redisAsyncContext  *ac;

    if (link->timer.timer_set) {
        ngx_del_timer(&link->timer);
    }

    ac = link->ac;

    if (ac != NULL) {
        link->ac = NULL;
        redisAsyncFree(ac);
    }
}


static void
ngx_worksible_redis_sentinel_connected(const redisAsyncContext *ac,
    int status)
{
    ngx_worksible_redis_sentinel_link_t  *link = ac->data;

    if (status != REDIS_OK && link->ac == ac) {
        /* hiredis frees the context right after this callback */
        link->ac = NULL;
        ngx_worksible_redis_sentinel_failed(link, ac->errstr,
                                            ngx_strlen(ac->errstr));
    }
}


/* lost (REDIS_ERR), or freed by us (REDIS_OK) */

static void
ngx_worksible_redis_sentinel_disconnected(const redisAsyncContext *ac,
    int status)
{
    ngx_worksible_redis_sentinel_link_t  *link = ac->data;

    if (status != REDIS_OK && link->ac == ac) {
        link->ac = NULL;
        ngx_worksible_redis_sentinel_failed(link, "connection lost", 15);
    }
}


/* the adapter, as in ngx_worksible_redis.c: level-triggered events */

static void
ngx_worksible_redis_sentinel_add_read(void *data)
{
    ngx_worksible_redis_sentinel_link_t  *link = data;

    if (link->c && !link->c->read->active) {
        (void) ngx_add_event(link->c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT);
    }
}


static void
ngx_worksible_redis_sentinel_del_read(void *data)
{
    ngx_worksible_redis_sentinel_link_t  *link = data;

    if (link->c && link->c->read->active) {
        ngx_del_event(link->c->read, NGX_READ_EVENT, 0);
    }
}


static void
ngx_worksible_redis_sentinel_add_write(void *data)
{
    ngx_worksible_redis_sentinel_link_t  *link = data;

    if (link->c && !link->c->write->active) {
        (void) ngx_add_event(link->c->write, NGX_WRITE_EVENT,
                             NGX_LEVEL_EVENT);
    }
}


static void
ngx_worksible_redis_sentinel_del_write(void *data)
{
    ngx_worksible_redis_sentinel_link_t  *link = data;

    if (link->c && link->c->write->active) {
        ngx_del_event(link->c->write, NGX_WRITE_EVENT, 0);
    }
}


/* hiredis is freeing the context and closes the fd itself */

static void
ngx_worksible_redis_sentinel_cleanup(void *data)
{
    ngx_worksible_redis_sentinel_link_t  *link = data;

    ngx_connection_t  *c;

    c = link->c;

    if (c != NULL) {
        ngx_worksible_redis_release(c);
        link->c = NULL;
    }
}


static void
ngx_worksible_redis_sentinel_read(ngx_event_t *ev)
{
    ngx_connection_t                     *c = ev->data;
    ngx_worksible_redis_sentinel_link_t  *link = c->data;

    if (link->ac != NULL) {
        redisAsyncHandleRead(link->ac);
    }
}


static void
ngx_worksible_redis_sentinel_write(ngx_event_t *ev)
{
    ngx_connection_t                     *c = ev->data;
    ngx_worksible_redis_sentinel_link_t  *link = c->data;

    if (link->ac != NULL) {
        redisAsyncHandleWrite(link->ac);
    }
}
