/*
 * Per-worker non-blocking libpq pool (see ngx_worksible_pg.h).
 *
 * The libpq socket is wrapped in an nginx connection whose events are
 * registered level-triggered: libpq reads at most its buffer per call, and a
 * level-triggered registration cannot lose the rest (edge-triggered epoll
 * would). The write event is registered only while libpq has output left
 * (PQflush returned 1) or while connecting asks for it.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_worksible_pg.h"


#define NGX_WORKSIBLE_PG_BACKOFF_MIN  100
#define NGX_WORKSIBLE_PG_BACKOFF_MAX  2000

/* a drained query's reply, after its query_timeout (statement_timeout) */
#define NGX_WORKSIBLE_PG_DRAIN_GRACE  1000

/* connections background work may take at once: half the pool, >= 1 */
#define NGX_WORKSIBLE_PG_BACKGROUND(pool)  ngx_max((pool)->conf->size / 2, 1)

/* addresses of all the hosts of a conninfo, at most */
#define NGX_WORKSIBLE_PG_MAX_ADDRS    64


typedef enum {
    NGX_WORKSIBLE_PG_CLOSED = 0,
    NGX_WORKSIBLE_PG_CONNECTING,
    NGX_WORKSIBLE_PG_IDLE,
    NGX_WORKSIBLE_PG_BUSY,
    NGX_WORKSIBLE_PG_DRAINING      /* its op gone, its reply discarded */
} ngx_worksible_pg_state_e;


typedef struct {
    ngx_worksible_pg_pool_t    *pool;
    PGconn                     *pgconn;
    ngx_connection_t           *c;
    ngx_worksible_pg_op_t      *op;           /* running */
    ngx_event_t                 timer;        /* connecting or draining */
    ngx_worksible_pg_state_e    state;
    ngx_uint_t                  background;   /* running background work */
    ngx_uint_t                  rotation;     /* conf->rotations[] in use */
    ngx_uint_t                  tried;        /* addresses timed out */
    ngx_uint_t                  copying;      /* COPY IN: data to send */

    /* the statements prepared on this connection (op->name), by name */
    const char                 *prepared[NGX_WORKSIBLE_PG_MAX_PREPARED];
    ngx_uint_t                  nprepared;
    const char                 *preparing;    /* its Parse is in flight */
    PGresult                   *prepare_res;  /* that Parse's result */
} ngx_worksible_pg_conn_t;


struct ngx_worksible_pg_pool_s {
    ngx_worksible_pg_conf_t    *conf;
    ngx_worksible_pg_conn_t    *conns;
    ngx_queue_t                 waiting;      /* requests' ops, first */
    ngx_queue_t                 background;   /* background ops */
    ngx_uint_t                  nwaiting;     /* in both queues */
    ngx_msec_t                  backoff;
    ngx_msec_t                  retry_at;     /* ngx_current_msec */
    ngx_uint_t                  rotation;     /* the last address that took */
    ngx_worksible_store_stats_t *stats;
    ngx_uint_t                  refused;      /* queue full, not logged */
    time_t                      refused_logged;
    ngx_log_t                  *log;
    ngx_pool_t                 *mem;          /* the cycle's */

    /* a listening pool (ngx_worksible_pg_listen) */
    ngx_worksible_pg_notify_pt  notify;
    void                       *notify_data;
    char                       *listen_sql;   /* LISTEN "channel" */
    ngx_event_t                 listen_timer; /* LISTEN again */
    ngx_uint_t                  listening;
    ngx_uint_t                  lost;         /* since the last LISTEN */
};


static ngx_int_t ngx_worksible_pg_conf_option(ngx_conf_t *cf,
    ngx_str_t *arg, ngx_worksible_pg_conf_t *conf);
static char *ngx_worksible_pg_conf_host(ngx_conf_t *cf, const char *host,
    const char *port, const char **hosts, const char **hostaddr,
    const char **ports);
static char *ngx_worksible_pg_strdup(ngx_pool_t *pool, const char *s);
static char *ngx_worksible_pg_conf_rotations(ngx_conf_t *cf,
    ngx_worksible_pg_conf_t *conf, ngx_uint_t n);
static ngx_uint_t ngx_worksible_pg_count(const char *list);
static const char *ngx_worksible_pg_rotate(ngx_pool_t *pool,
    const char *list, ngx_uint_t k);
static ngx_int_t ngx_worksible_pg_conf_bounds(ngx_conf_t *cf,
    ngx_worksible_pg_conf_t *conf, ngx_uint_t *n);
static ngx_int_t ngx_worksible_pg_bouncer(ngx_worksible_pg_pool_t *pool);
static void ngx_worksible_pg_dispatch(ngx_worksible_pg_pool_t *pool);
static ngx_worksible_pg_op_t *ngx_worksible_pg_next(
    ngx_worksible_pg_pool_t *pool, ngx_uint_t background);
static ngx_uint_t ngx_worksible_pg_live(ngx_worksible_pg_pool_t *pool);
static ngx_uint_t ngx_worksible_pg_free(ngx_worksible_pg_pool_t *pool);
static ngx_int_t ngx_worksible_pg_connect(ngx_worksible_pg_conn_t *conn);
static void ngx_worksible_pg_connect_handler(ngx_event_t *ev);
static void ngx_worksible_pg_connect_step(ngx_worksible_pg_conn_t *conn);
static void ngx_worksible_pg_connect_failed(ngx_worksible_pg_conn_t *conn);
static void ngx_worksible_pg_connect_timeout(ngx_event_t *ev);
static ngx_uint_t ngx_worksible_pg_address(ngx_worksible_pg_conn_t *conn);
static void ngx_worksible_pg_notice(void *arg, const char *message);
static ngx_int_t ngx_worksible_pg_wrap(ngx_worksible_pg_conn_t *conn);
static ngx_int_t ngx_worksible_pg_events(ngx_connection_t *c,
    ngx_uint_t read, ngx_uint_t write);
static void ngx_worksible_pg_send(ngx_worksible_pg_conn_t *conn,
    ngx_worksible_pg_op_t *op);
static int ngx_worksible_pg_send_query(ngx_worksible_pg_conn_t *conn,
    ngx_worksible_pg_op_t *op);
static ngx_int_t ngx_worksible_pg_prepared(ngx_worksible_pg_conn_t *conn,
    const char *name);
static ngx_int_t ngx_worksible_pg_prepare_done(ngx_worksible_pg_conn_t *conn,
    ngx_worksible_pg_op_t *op);
static ngx_int_t ngx_worksible_pg_flush(ngx_worksible_pg_conn_t *conn);
static ngx_int_t ngx_worksible_pg_copy(ngx_worksible_pg_conn_t *conn);
static void ngx_worksible_pg_read_handler(ngx_event_t *ev);
static void ngx_worksible_pg_write_handler(ngx_event_t *ev);
static void ngx_worksible_pg_receive(ngx_worksible_pg_conn_t *conn);
static void ngx_worksible_pg_close(ngx_worksible_pg_conn_t *conn);
static void ngx_worksible_pg_drain(ngx_worksible_pg_conn_t *conn,
    ngx_msec_t deadline);
static void ngx_worksible_pg_drain_timeout(ngx_event_t *ev);
static ngx_uint_t ngx_worksible_pg_read_only(PGresult *res);
static ngx_uint_t ngx_worksible_pg_unprepared(ngx_worksible_pg_conn_t *conn,
    ngx_worksible_pg_op_t *op);
static void ngx_worksible_pg_op_timeout(ngx_event_t *ev);
static void ngx_worksible_pg_op_finish(ngx_worksible_pg_op_t *op,
    ngx_worksible_pg_status_e status);
static void ngx_worksible_pg_op_done(ngx_event_t *ev);
static void ngx_worksible_pg_unqueue(ngx_worksible_pg_op_t *op);
static void ngx_worksible_pg_listen_start(ngx_event_t *ev);
static void ngx_worksible_pg_listened(ngx_worksible_pg_op_t *op);


char *
ngx_worksible_pg_conf_parse(ngx_conf_t *cf, ngx_str_t *args, ngx_uint_t nargs,
    ngx_worksible_pg_conf_t *conf)
{
    char                *err, *rv;
    ngx_str_t            msg;
    const char          *value;
    const char          *host, *hosts, *port, *ports, *dbname, *hostaddr;
    ngx_uint_t           i, n;
    PQconninfoOption    *opts, *o;

    conf->size = 4;
    conf->queue = 256;
    conf->connect_timeout = 2000;
    conf->query_timeout = 5000;
    conf->prepare = NGX_CONF_UNSET_UINT;

    for (i = 1; i < nargs; i++) {
        if (ngx_worksible_pg_conf_option(cf, &args[i], conf) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    if (conf->pgbouncer && conf->prepare == 1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "worksible_postgres: prepare=on with pgbouncer=on "
                           "(transaction pooling keeps no named statements)");
        return NGX_CONF_ERROR;
    }

    if (conf->prepare == NGX_CONF_UNSET_UINT) {
        conf->prepare = !conf->pgbouncer;
    }

    /* configuration strings are NUL-terminated by ngx_conf_read_token() */

    err = NULL;
    opts = PQconninfoParse((char *) args[0].data, &err);

    if (opts == NULL) {
        msg = ngx_worksible_pg_message(err ? err : "out of memory");
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid worksible_postgres conninfo: %V", &msg);
        if (err) {
            PQfreemem(err);
        }
        return NGX_CONF_ERROR;
    }

    n = 0;
    host = NULL;
    hosts = NULL;
    port = NULL;
    ports = NULL;
    dbname = NULL;
    hostaddr = NULL;

    for (o = opts; o->keyword; o++) {
        if (o->val == NULL || o->val[0] == '\0') {
            continue;
        }

        n++;

        if (ngx_strcmp(o->keyword, "host") == 0) {
            host = o->val;

        } else if (ngx_strcmp(o->keyword, "hostaddr") == 0) {
            hostaddr = o->val;

        } else if (ngx_strcmp(o->keyword, "port") == 0) {
            port = o->val;

        } else if (ngx_strcmp(o->keyword, "dbname") == 0) {
            dbname = o->val;

        } else if (ngx_strcmp(o->keyword, "target_session_attrs") == 0) {
            conf->read_write = (ngx_strcmp(o->val, "read-write") == 0
                                || ngx_strcmp(o->val, "primary") == 0);

        } else if (conf->pgbouncer && ngx_strcmp(o->keyword, "options") == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "worksible_postgres: PgBouncer refuses the "
                               "startup parameter \"options\" (pgbouncer=on):"
                               " set them on the role (ALTER ROLE ... SET)");
            PQconninfoFree(opts);
            return NGX_CONF_ERROR;
        }
    }

    rv = NGX_CONF_OK;

    if (hostaddr == NULL && host != NULL) {
        rv = ngx_worksible_pg_conf_host(cf, host, port, &hosts, &hostaddr,
                                        &ports);
    }

    if (rv != NGX_CONF_OK) {
        PQconninfoFree(opts);
        return rv;
    }

    /* n options, maybe hostaddr, application_name and options, the NULL */

    conf->keywords = ngx_pcalloc(cf->pool, (n + 4) * sizeof(char *));
    conf->values = ngx_pcalloc(cf->pool, (n + 4) * sizeof(char *));
    if (conf->keywords == NULL || conf->values == NULL) {
        PQconninfoFree(opts);
        return NGX_CONF_ERROR;
    }

    i = 0;

    for (o = opts; o->keyword; o++) {
        if (o->val == NULL || o->val[0] == '\0'
            || ngx_strcmp(o->keyword, "hostaddr") == 0)
        {
            continue;
        }

        value = o->val;

        if (hosts != NULL && ngx_strcmp(o->keyword, "host") == 0) {
            value = hosts;

        } else if (ports != NULL && ngx_strcmp(o->keyword, "port") == 0) {
            value = ports;
        }

        conf->keywords[i] = ngx_worksible_pg_strdup(cf->pool, o->keyword);
        conf->values[i] = ngx_worksible_pg_strdup(cf->pool, value);
        i++;
    }

    if (hostaddr != NULL) {
        conf->keywords[i] = "hostaddr";
        conf->values[i] = ngx_worksible_pg_strdup(cf->pool, hostaddr);
        i++;
    }

    for (n = 0; n < i; n++) {
        if (ngx_strcmp(conf->keywords[n], "application_name") == 0) {
            break;
        }
    }

    if (n == i) {
        conf->keywords[i] = "application_name";
        conf->values[i] = "nginx-worksible";
        i++;
    }

    if (!conf->pgbouncer
        && ngx_worksible_pg_conf_bounds(cf, conf, &i) != NGX_OK)
    {
        PQconninfoFree(opts);
        return NGX_CONF_ERROR;
    }

    conf->display.data = ngx_pnalloc(cf->pool, 512);
    if (conf->display.data == NULL) {
        PQconninfoFree(opts);
        return NGX_CONF_ERROR;
    }

    conf->display.len = ngx_snprintf(conf->display.data, 512, "%s:%s/%s",
                                     host ? host : "(socket)",
                                     port ? port : "5432",
                                     dbname ? dbname : "(default)")
                        - conf->display.data;

    PQconninfoFree(opts);

    for (n = 0; n < i; n++) {
        if (conf->values[n] == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    return ngx_worksible_pg_conf_rotations(cf, conf, i);
}


/*
 * With several addresses (hostaddr "a,b,c"), one set of values per
 * starting address: rotations[k] lists host, hostaddr and port from the
 * k-th address on, wrapping around. libpq passes over a host that refuses
 * or fails, but not over one that never answers: a connect past
 * connect_timeout starts again from the address after the one it hung on
 * (ngx_worksible_pg_connect_timeout). n is the count of keywords.
 */

static char *
ngx_worksible_pg_conf_rotations(ngx_conf_t *cf, ngx_worksible_pg_conf_t *conf,
    ngx_uint_t n)
{
    ngx_uint_t    i, k, count;
    const char  **values;

    conf->rotations = ngx_pcalloc(cf->pool, sizeof(const char **));
    if (conf->rotations == NULL) {
        return NGX_CONF_ERROR;
    }

    conf->rotations[0] = conf->values;
    conf->naddrs = 1;

    for (i = 0; i < n; i++) {
        if (ngx_strcmp(conf->keywords[i], "hostaddr") == 0) {
            conf->naddrs = ngx_worksible_pg_count(conf->values[i]);
        }
    }

    if (conf->naddrs == 1) {
        return NGX_CONF_OK;
    }

    conf->rotations = ngx_pcalloc(cf->pool,
                                  conf->naddrs * sizeof(const char **));
    if (conf->rotations == NULL) {
        return NGX_CONF_ERROR;
    }

    conf->rotations[0] = conf->values;

    for (k = 1; k < conf->naddrs; k++) {
        values = ngx_pcalloc(cf->pool, (n + 1) * sizeof(char *));
        if (values == NULL) {
            return NGX_CONF_ERROR;
        }

        for (i = 0; i < n; i++) {
            values[i] = conf->values[i];

            if (ngx_strcmp(conf->keywords[i], "host") != 0
                && ngx_strcmp(conf->keywords[i], "hostaddr") != 0
                && ngx_strcmp(conf->keywords[i], "port") != 0)
            {
                continue;
            }

            count = ngx_worksible_pg_count(values[i]);

            if (count == conf->naddrs) {
                values[i] = ngx_worksible_pg_rotate(cf->pool, values[i], k);
                if (values[i] == NULL) {
                    return NGX_CONF_ERROR;
                }
            }
        }

        conf->rotations[k] = values;
    }

    return NGX_CONF_OK;
}


/* the number of elements of a comma-separated list */

static ngx_uint_t
ngx_worksible_pg_count(const char *list)
{
    ngx_uint_t  n;

    for (n = 1; *list; list++) {
        n += (*list == ',');
    }

    return n;
}


/* list "e0,e1,...", from its k-th element on and around: a copy */

static const char *
ngx_worksible_pg_rotate(ngx_pool_t *pool, const char *list, ngx_uint_t k)
{
    u_char      *p, *q;
    size_t       len;
    ngx_uint_t   i;
    const char  *start;

    start = list;

    for (i = 0; i < k; i++) {
        start = (const char *) ngx_strchr(start, ',') + 1;
    }

    len = ngx_strlen(list);

    p = ngx_pnalloc(pool, len + 1);
    if (p == NULL) {
        return NULL;
    }

    q = ngx_cpymem(p, start, ngx_strlen(start));
    *q++ = ',';
    q = ngx_cpymem(q, list, start - 1 - list);
    *q = '\0';

    return (const char *) p;
}


/* a NUL-terminated copy of s from pool, or NULL */

/*
 * The server's own bounds, from query_timeout: a query the module gave up
 * on must not go on holding locks or a transaction. statement_timeout,
 * lock_timeout and idle_in_transaction_session_timeout (query_timeout),
 * and client_connection_check_interval (1 s, or query_timeout if shorter:
 * a backend whose connection the module closed stops its query then;
 * PostgreSQL 14 or later) are added to the conninfo's "options" (libpq's
 * -c), each unless it names it already. *n is the count of keywords, one
 * more when "options" is added. "options" becomes the last keyword, so
 * that ngx_worksible_pg_bouncer() can leave it out.
 */

static ngx_int_t
ngx_worksible_pg_conf_bounds(ngx_conf_t *cf, ngx_worksible_pg_conf_t *conf,
    ngx_uint_t *n)
{
    u_char      *p, *last;
    size_t       len;
    ngx_uint_t   i, k;
    const char  *options;

    ngx_msec_t   value;

    static const char  *bounds[] = {
        "statement_timeout", "lock_timeout",
        "idle_in_transaction_session_timeout",
        "client_connection_check_interval"
    };

    for (i = 0; i < *n; i++) {
        if (ngx_strcmp(conf->keywords[i], "options") == 0) {
            break;
        }
    }

    options = (i < *n) ? conf->values[i] : "";
    len = ngx_strlen(options) + 4 * 64;

    p = ngx_pnalloc(cf->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    last = ngx_cpymem(p, options, ngx_strlen(options));

    for (k = 0; k < sizeof(bounds) / sizeof(bounds[0]); k++) {
        if (ngx_strstr(options, bounds[k]) != NULL) {
            continue;
        }

        value = conf->query_timeout;

        if (k == 3) {
            value = ngx_min(value, 1000);
        }

        last = ngx_sprintf(last, " -c %s=%M", bounds[k], value);
    }

    *last = '\0';

    if (i == *n) {
        conf->keywords[i] = "options";
        (*n)++;
    }

    conf->values[i] = (char *) p;

    k = *n - 1;

    if (i != k) {
        conf->keywords[i] = conf->keywords[k];
        conf->values[i] = conf->values[k];
        conf->keywords[k] = "options";
        conf->values[k] = (char *) p;
    }

    conf->options = 1;

    return NGX_OK;
}


/*
 * The server refused the startup parameter "options" ("unsupported startup
 * parameter", PgBouncer): this worker's pool connects without it from now
 * on (the bounds then come from the role's settings), sends every statement
 * unnamed and, when it is the revocation listener, stops listening (in
 * transaction pooling a notification reaches whichever client holds the
 * server connection). NGX_OK, or NGX_ERROR on out of memory.
 */

static ngx_int_t
ngx_worksible_pg_bouncer(ngx_worksible_pg_pool_t *pool)
{
    ngx_uint_t                n;
    const char              **keywords;
    ngx_worksible_pg_conf_t  *conf;

    conf = pool->conf;

    for (n = 0; conf->keywords[n]; n++) { /* void */ }

    keywords = ngx_palloc(pool->mem, n * sizeof(char *));
    if (keywords == NULL) {
        return NGX_ERROR;
    }

    /* "options" is the last keyword (ngx_worksible_pg_conf_bounds) */

    ngx_memcpy(keywords, conf->keywords, (n - 1) * sizeof(char *));
    keywords[n - 1] = NULL;

    conf->keywords = keywords;
    conf->options = 0;
    conf->prepare = 0;
    conf->pgbouncer = 1;

    ngx_log_error(NGX_LOG_WARN, pool->log, 0,
                  "worksible postgres %V refuses the startup parameter "
                  "\"options\" (PgBouncer?): connecting without it, its "
                  "bounds must be the role's settings, statements go "
                  "unnamed (set pgbouncer=on to say so)", &conf->display);

    if (pool->notify != NULL) {
        ngx_log_error(NGX_LOG_WARN, pool->log, 0,
                      "worksible postgres: no %s behind PgBouncer, "
                      "revocations reach the key cache within its ttl",
                      pool->listen_sql);
        pool->notify = NULL;
    }

    return NGX_OK;
}


static char *
ngx_worksible_pg_strdup(ngx_pool_t *pool, const char *s)
{
    size_t   len;
    u_char  *p;

    len = ngx_strlen(s) + 1;

    p = ngx_pnalloc(pool, len);
    if (p == NULL) {
        return NULL;
    }

    ngx_memcpy(p, s, len);

    return (char *) p;
}


/* one "name=value" option of worksible_postgres */

static ngx_int_t
ngx_worksible_pg_conf_option(ngx_conf_t *cf, ngx_str_t *arg,
    ngx_worksible_pg_conf_t *conf)
{
    ngx_int_t   n;
    ngx_str_t   s;

    if (ngx_strncmp(arg->data, "pool=", 5) == 0) {
        n = ngx_atoi(arg->data + 5, arg->len - 5);
        if (n < 1 || n > 1024) {
            goto invalid;
        }
        conf->size = n;
        return NGX_OK;
    }

    if (ngx_strncmp(arg->data, "queue=", 6) == 0) {
        n = ngx_atoi(arg->data + 6, arg->len - 6);
        if (n < 0 || n > 65536) {
            goto invalid;
        }
        conf->queue = n;
        return NGX_OK;
    }

    if (ngx_strncmp(arg->data, "connect_timeout=", 16) == 0) {
        s.data = arg->data + 16;
        s.len = arg->len - 16;
        n = ngx_parse_time(&s, 0);
        if (n == NGX_ERROR || n == 0) {
            goto invalid;
        }
        conf->connect_timeout = n;
        return NGX_OK;
    }

    if (ngx_strncmp(arg->data, "query_timeout=", 14) == 0) {
        s.data = arg->data + 14;
        s.len = arg->len - 14;
        n = ngx_parse_time(&s, 0);
        if (n == NGX_ERROR || n == 0) {
            goto invalid;
        }
        conf->query_timeout = n;
        return NGX_OK;
    }

    if (arg->len == 10 && ngx_strncmp(arg->data, "prepare=on", 10) == 0) {
        conf->prepare = 1;
        return NGX_OK;
    }

    if (arg->len == 11 && ngx_strncmp(arg->data, "prepare=off", 11) == 0) {
        conf->prepare = 0;
        return NGX_OK;
    }

    if (arg->len == 12 && ngx_strncmp(arg->data, "pgbouncer=on", 12) == 0) {
        conf->pgbouncer = 1;
        return NGX_OK;
    }

    if (arg->len == 13 && ngx_strncmp(arg->data, "pgbouncer=off", 13) == 0) {
        conf->pgbouncer = 0;
        return NGX_OK;
    }

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid worksible_postgres parameter \"%V\" "
                       "(pool=1..1024, queue=0..65536, "
                       "connect_timeout=TIME, query_timeout=TIME, "
                       "prepare=on|off, pgbouncer=on|off)", arg);

    return NGX_ERROR;
}


/*
 * Host names become addresses here, at configuration time: libpq would
 * otherwise call the blocking getaddrinfo() on every connect. host may be
 * a list ("a,b", libpq's multi-host form) and port a list of as many ports
 * or one for all. A name of several addresses is repeated, with its port,
 * once per address, so that libpq tries each in turn; *hosts, *hostaddr
 * and *ports are the lists for libpq, *ports NULL when port was not given.
 * A socket directory (a path) needs nothing.
 */

static char *
ngx_worksible_pg_conf_host(ngx_conf_t *cf, const char *host,
    const char *port, const char **hosts, const char **hostaddr,
    const char **ports)
{
    u_char      *h, *a, *pt;
    size_t       len;
    ngx_url_t    u;
    ngx_str_t    name, num;
    ngx_uint_t   i, n, nports, naddrs;
    const char  *hp, *he, *pp, *pe;

    n = 1;
    nports = 1;

    for (hp = host; *hp; hp++) {
        n += (*hp == ',');
    }

    for (pp = port ? port : ""; *pp; pp++) {
        nports += (*pp == ',');
    }

    if (port != NULL && nports != 1 && nports != n) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "worksible_postgres: %ui hosts but %ui ports",
                           n, nports);
        return NGX_CONF_ERROR;
    }

    for (hp = host; *hp; hp++) {
        if (*hp == '/' || *hp == '@') {
            if (n > 1) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "worksible_postgres: a socket directory "
                                   "in a list of hosts \"%s\"", host);
                return NGX_CONF_ERROR;
            }

            return NGX_CONF_OK;
        }
    }

    len = ngx_strlen(host) + 1;

    h = ngx_pnalloc(cf->pool, NGX_WORKSIBLE_PG_MAX_ADDRS * len);
    a = ngx_pnalloc(cf->pool,
                    NGX_WORKSIBLE_PG_MAX_ADDRS * (NGX_SOCKADDR_STRLEN + 1));
    pt = ngx_pnalloc(cf->pool, NGX_WORKSIBLE_PG_MAX_ADDRS * NGX_INT_T_LEN);
    if (h == NULL || a == NULL || pt == NULL) {
        return NGX_CONF_ERROR;
    }

    *hosts = (const char *) h;
    *hostaddr = (const char *) a;
    *ports = port ? (const char *) pt : NULL;

    hp = host;
    pp = port;
    pe = NULL;
    naddrs = 0;
    ngx_str_null(&num);

    for ( ;; ) {
        he = ngx_strchr(hp, ',');
        name.data = (u_char *) hp;
        name.len = he ? (size_t) (he - hp) : ngx_strlen(hp);

        if (pp != NULL) {
            pe = ngx_strchr(pp, ',');
            num.data = (u_char *) pp;
            num.len = pe ? (size_t) (pe - pp) : ngx_strlen(pp);
        }

        ngx_memzero(&u, sizeof(ngx_url_t));

        u.url = name;

        if (ngx_strlchr(name.data, name.data + name.len, ':') != NULL) {
            /* an IPv6 literal: ngx_parse_url() wants it in brackets */

            u.url.len = name.len + 2;
            u.url.data = ngx_pnalloc(cf->pool, u.url.len);
            if (u.url.data == NULL) {
                return NGX_CONF_ERROR;
            }

            u.url.data[0] = '[';
            ngx_memcpy(u.url.data + 1, name.data, name.len);
            u.url.data[name.len + 1] = ']';
        }

        u.default_port = 5432;
        u.no_port = 1;

        if (name.len == 0
            || ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "worksible_postgres host \"%V\" not "
                               "resolved%s%s", &name, u.err ? ": " : "",
                               u.err ? u.err : "");
            return NGX_CONF_ERROR;
        }

        for (i = 0; i < u.naddrs; i++) {

            if (naddrs++ == NGX_WORKSIBLE_PG_MAX_ADDRS) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "worksible_postgres: more than %d "
                                   "addresses in \"%s\"",
                                   NGX_WORKSIBLE_PG_MAX_ADDRS, host);
                return NGX_CONF_ERROR;
            }

            if (naddrs > 1) {
                *h++ = ',';
                *a++ = ',';
                *pt++ = ',';
            }

            h = ngx_cpymem(h, name.data, name.len);

            /* no port: ngx_sock_ntop() then prints IPv6 without brackets */
            a += ngx_sock_ntop(u.addrs[i].sockaddr, u.addrs[i].socklen, a,
                               NGX_SOCKADDR_STRLEN, 0);

            if (pp != NULL) {
                pt = ngx_cpymem(pt, num.data, ngx_min(num.len,
                                                      NGX_INT_T_LEN - 1));
            }
        }

        if (he == NULL) {
            break;
        }

        hp = he + 1;

        if (pp != NULL && nports > 1) {
            pp = pe + 1;
        }
    }

    *h = '\0';
    *a = '\0';
    *pt = '\0';

    return NGX_CONF_OK;
}


ngx_worksible_pg_pool_t *
ngx_worksible_pg_pool_create(ngx_worksible_pg_conf_t *conf,
    ngx_cycle_t *cycle, ngx_worksible_store_stats_t *stats)
{
    ngx_uint_t                i;
    ngx_worksible_pg_pool_t  *pool;

    pool = ngx_pcalloc(cycle->pool, sizeof(ngx_worksible_pg_pool_t));
    if (pool == NULL) {
        return NULL;
    }

    pool->conns = ngx_pcalloc(cycle->pool,
                              conf->size * sizeof(ngx_worksible_pg_conn_t));
    if (pool->conns == NULL) {
        return NULL;
    }

    pool->conf = conf;
    pool->stats = stats;
    pool->log = cycle->log;
    pool->mem = cycle->pool;
    pool->retry_at = ngx_current_msec;
    ngx_queue_init(&pool->waiting);
    ngx_queue_init(&pool->background);

    for (i = 0; i < conf->size; i++) {
        pool->conns[i].pool = pool;
        pool->conns[i].timer.handler = ngx_worksible_pg_connect_timeout;
        pool->conns[i].timer.data = &pool->conns[i];
        pool->conns[i].timer.log = pool->log;
        pool->conns[i].timer.cancelable = 1;
    }

    return pool;
}


void
ngx_worksible_pg_pool_close(ngx_worksible_pg_pool_t *pool)
{
    ngx_uint_t              i;
    ngx_worksible_pg_op_t  *op;

    pool->notify = NULL;

    if (pool->listen_timer.timer_set) {
        ngx_del_timer(&pool->listen_timer);
    }

    while ((op = ngx_worksible_pg_next(pool, 0)) != NULL) {
        ngx_worksible_pg_op_detach(op);
    }

    for (i = 0; i < pool->conf->size; i++) {
        if (pool->conns[i].op) {
            ngx_worksible_pg_op_detach(pool->conns[i].op);
        }

        ngx_worksible_pg_close(&pool->conns[i]);
    }
}


ngx_worksible_pg_op_t *
ngx_worksible_pg_op_create(ngx_worksible_pg_pool_t *pool)
{
    ngx_pool_t             *mem;
    ngx_worksible_pg_op_t  *op;

    mem = ngx_create_pool(1024, pool->log);
    if (mem == NULL) {
        return NULL;
    }

    op = ngx_pcalloc(mem, sizeof(ngx_worksible_pg_op_t));
    if (op == NULL) {
        ngx_destroy_pool(mem);
        return NULL;
    }

    op->pool = pool;
    op->mem = mem;
    op->timer.handler = ngx_worksible_pg_op_timeout;
    op->timer.data = op;
    op->timer.log = pool->log;

    return op;
}


ngx_int_t
ngx_worksible_pg_op_param(ngx_worksible_pg_op_t *op, ngx_str_t *value)
{
    u_char  *p;

    if (op->nparams == NGX_WORKSIBLE_PG_MAX_PARAMS) {
        return NGX_ERROR;
    }

    if (value == NULL) {
        op->values[op->nparams++] = NULL;
        return NGX_OK;
    }

    p = ngx_pnalloc(op->mem, value->len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    *ngx_cpymem(p, value->data, value->len) = '\0';
    op->values[op->nparams++] = (char *) p;

    return NGX_OK;
}


ngx_int_t
ngx_worksible_pg_op_copy(ngx_worksible_pg_op_t *op, ngx_str_t *data)
{
    u_char  *p;

    p = ngx_pnalloc(op->mem, ngx_max(data->len, 1));
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(p, data->data, data->len);

    op->copy.data = p;
    op->copy.len = data->len;
    op->copy_sent = 0;

    return NGX_OK;
}


ngx_int_t
ngx_worksible_pg_op_start(ngx_worksible_pg_op_t *op)
{
    ngx_worksible_pg_pool_t  *pool;

    pool = op->pool;

    (void) ngx_atomic_fetch_add(&pool->stats->calls, 1);

    if (pool->nwaiting >= pool->conf->queue + ngx_worksible_pg_free(pool)) {
        (void) ngx_atomic_fetch_add(&pool->stats->errors, 1);

        pool->refused++;

        /* at most one line a second, however hard the flood */

        if (pool->refused_logged != ngx_time()) {
            ngx_log_error(NGX_LOG_WARN, pool->log, 0,
                          "worksible postgres queue full (%ui waiting): "
                          "%ui queries refused", pool->nwaiting,
                          pool->refused);
            pool->refused_logged = ngx_time();
            pool->refused = 0;
        }

        return NGX_DECLINED;
    }

    ngx_queue_insert_tail(op->background ? &pool->background : &pool->waiting,
                          &op->queue);
    pool->nwaiting++;
    ngx_add_timer(&op->timer, pool->conf->query_timeout);

    ngx_worksible_pg_dispatch(pool);

    if (op->timer.posted && op->status == NGX_WORKSIBLE_PG_UNAVAILABLE) {
        /* failed at once: the caller answers now, no handler call */
        ngx_delete_posted_event(&op->timer);
        op->timer.handler = ngx_worksible_pg_op_timeout;
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/*
 * Gives waiting ops to idle connections: requests' first, except that
 * background work always has one connection when it waits (it is never
 * starved), and never more than half the pool (at least one); opens
 * connections for the rest (unless in backoff), and fails them all when no
 * connection is alive or coming.
 */

static void
ngx_worksible_pg_dispatch(ngx_worksible_pg_pool_t *pool)
{
    ngx_uint_t                i, connecting, background, wanted;
    ngx_worksible_pg_op_t    *op;
    ngx_worksible_pg_conn_t  *conn;

    connecting = 0;
    background = 0;

    for (i = 0; i < pool->conf->size; i++) {
        conn = &pool->conns[i];

        if (conn->state == NGX_WORKSIBLE_PG_CONNECTING) {
            connecting++;
        }

        background += conn->background;
    }

    for (i = 0; i < pool->conf->size && pool->nwaiting; i++) {
        conn = &pool->conns[i];

        if (conn->state != NGX_WORKSIBLE_PG_IDLE) {
            continue;
        }

        op = ngx_worksible_pg_next(pool, background);
        if (op == NULL) {
            break;
        }

        background += op->background;

        ngx_worksible_pg_unqueue(op);
        ngx_worksible_pg_send(conn, op);
    }

    /* the connections the waiting ops can use once made */

    wanted = pool->nwaiting;

    if (ngx_queue_empty(&pool->waiting)) {
        wanted = ngx_min(wanted, NGX_WORKSIBLE_PG_BACKGROUND(pool)
                                 - ngx_min(background,
                                           NGX_WORKSIBLE_PG_BACKGROUND(pool)));
    }

    for (i = 0; i < pool->conf->size && connecting < wanted; i++) {
        conn = &pool->conns[i];

        if (conn->state != NGX_WORKSIBLE_PG_CLOSED) {
            continue;
        }

        if ((ngx_msec_int_t) (pool->retry_at - ngx_current_msec) > 0) {
            break;
        }

        conn->rotation = pool->rotation;
        conn->tried = 0;

        if (ngx_worksible_pg_connect(conn) == NGX_OK) {
            connecting++;
        }
    }

    if (ngx_worksible_pg_live(pool)) {
        return;
    }

    while ((op = ngx_worksible_pg_next(pool, 0)) != NULL) {
        ngx_worksible_pg_op_finish(op, NGX_WORKSIBLE_PG_UNAVAILABLE);
    }
}


/*
 * The next op to run, given the connections running background work: a
 * background op when none does, else a request's, else a background op
 * within the limit. Called with 0 until NULL, it returns every op.
 */

static ngx_worksible_pg_op_t *
ngx_worksible_pg_next(ngx_worksible_pg_pool_t *pool, ngx_uint_t background)
{
    ngx_queue_t  *q;

    if (!ngx_queue_empty(&pool->background) && background == 0) {
        q = ngx_queue_head(&pool->background);

    } else if (!ngx_queue_empty(&pool->waiting)) {
        q = ngx_queue_head(&pool->waiting);

    } else if (!ngx_queue_empty(&pool->background)
               && background < NGX_WORKSIBLE_PG_BACKGROUND(pool))
    {
        q = ngx_queue_head(&pool->background);

    } else {
        return NULL;
    }

    return ngx_queue_data(q, ngx_worksible_pg_op_t, queue);
}


/*
 * Connections an op can have without waiting for a busy one: idle,
 * connecting, or closed with a connect allowed now.
 */

static ngx_uint_t
ngx_worksible_pg_free(ngx_worksible_pg_pool_t *pool)
{
    ngx_uint_t  i, n, connect;

    n = 0;
    connect = ((ngx_msec_int_t) (pool->retry_at - ngx_current_msec) <= 0);

    for (i = 0; i < pool->conf->size; i++) {
        switch (pool->conns[i].state) {

        case NGX_WORKSIBLE_PG_IDLE:
        case NGX_WORKSIBLE_PG_CONNECTING:
            n++;
            break;

        case NGX_WORKSIBLE_PG_CLOSED:
            n += connect;
            break;

        default:
            break;
        }
    }

    return n;
}


/* 1 when a connection is connecting, idle or busy */

static ngx_uint_t
ngx_worksible_pg_live(ngx_worksible_pg_pool_t *pool)
{
    ngx_uint_t  i;

    for (i = 0; i < pool->conf->size; i++) {
        if (pool->conns[i].state != NGX_WORKSIBLE_PG_CLOSED) {
            return 1;
        }
    }

    return 0;
}


static ngx_int_t
ngx_worksible_pg_connect(ngx_worksible_pg_conn_t *conn)
{
    ngx_worksible_pg_pool_t  *pool;

    pool = conn->pool;

    conn->pgconn = PQconnectStartParams(pool->conf->keywords,
                                        pool->conf->rotations[conn->rotation],
                                        0);

    if (conn->pgconn != NULL) {
        PQsetNoticeProcessor(conn->pgconn, ngx_worksible_pg_notice, pool);
    }

    if (conn->pgconn == NULL
        || PQstatus(conn->pgconn) == CONNECTION_BAD
        || PQsetnonblocking(conn->pgconn, 1) != 0
        || PQsocket(conn->pgconn) == -1)
    {
        ngx_worksible_pg_connect_failed(conn);
        return NGX_ERROR;
    }

    if (ngx_worksible_pg_wrap(conn) != NGX_OK) {
        ngx_worksible_pg_connect_failed(conn);
        return NGX_ERROR;
    }

    conn->state = NGX_WORKSIBLE_PG_CONNECTING;
    conn->timer.handler = ngx_worksible_pg_connect_timeout;
    ngx_add_timer(&conn->timer, pool->conf->connect_timeout);

    /* libpq: poll as if PQconnectPoll() had returned PGRES_POLLING_WRITING */

    if (ngx_worksible_pg_events(conn->c, 0, 1) != NGX_OK) {
        ngx_worksible_pg_connect_failed(conn);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * Notices and asynchronous messages of the server ("terminating connection
 * due to administrator command") go to the error log, not to stderr.
 */

static void
ngx_worksible_pg_notice(void *arg, const char *message)
{
    ngx_worksible_pg_pool_t  *pool = arg;

    ngx_str_t  msg;

    msg = ngx_worksible_pg_message(message);

    ngx_log_error(NGX_LOG_NOTICE, pool->log, 0, "worksible postgres: %V",
                  &msg);
}


/* an nginx connection for the current libpq socket */

static ngx_int_t
ngx_worksible_pg_wrap(ngx_worksible_pg_conn_t *conn)
{
    ngx_connection_t  *c;

    c = ngx_get_connection(PQsocket(conn->pgconn), conn->pool->log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->data = conn;
    c->read->handler = ngx_worksible_pg_connect_handler;
    c->write->handler = ngx_worksible_pg_connect_handler;
    c->read->log = conn->pool->log;
    c->write->log = conn->pool->log;
    c->number = ngx_atomic_fetch_add(ngx_connection_counter, 1);

    conn->c = c;

    return NGX_OK;
}


/* registers exactly the wanted events, level-triggered */

static ngx_int_t
ngx_worksible_pg_events(ngx_connection_t *c, ngx_uint_t read,
    ngx_uint_t write)
{
    if (read && !c->read->active) {
        if (ngx_add_event(c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

    } else if (!read && c->read->active) {
        if (ngx_del_event(c->read, NGX_READ_EVENT, 0) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (write && !c->write->active) {
        if (ngx_add_event(c->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

    } else if (!write && c->write->active) {
        if (ngx_del_event(c->write, NGX_WRITE_EVENT, 0) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static void
ngx_worksible_pg_connect_handler(ngx_event_t *ev)
{
    ngx_connection_t  *c;

    c = ev->data;

    if (c->close) {
        ngx_worksible_pg_close(c->data);
        return;
    }

    ngx_worksible_pg_connect_step(c->data);
}


/*
 * One PQconnectPoll() step. The events are removed first: libpq may close
 * the socket and open another one (next address, SSL retry), possibly with
 * the same number, and a stale epoll registration must not survive that.
 */

static void
ngx_worksible_pg_connect_step(ngx_worksible_pg_conn_t *conn)
{
    ngx_connection_t          *c;
    PostgresPollingStatusType  rc;

    c = conn->c;

    if (ngx_worksible_pg_events(c, 0, 0) != NGX_OK) {
        ngx_worksible_pg_connect_failed(conn);
        return;
    }

    rc = PQconnectPoll(conn->pgconn);

    if (rc != PGRES_POLLING_FAILED && PQsocket(conn->pgconn) != c->fd) {
        ngx_free_connection(c);
        c->fd = (ngx_socket_t) -1;
        conn->c = NULL;

        if (PQsocket(conn->pgconn) == -1
            || ngx_worksible_pg_wrap(conn) != NGX_OK)
        {
            ngx_worksible_pg_connect_failed(conn);
            return;
        }

        c = conn->c;
    }

    switch (rc) {

    case PGRES_POLLING_READING:
        if (ngx_worksible_pg_events(c, 1, 0) != NGX_OK) {
            ngx_worksible_pg_connect_failed(conn);
        }
        return;

    case PGRES_POLLING_WRITING:
        if (ngx_worksible_pg_events(c, 0, 1) != NGX_OK) {
            ngx_worksible_pg_connect_failed(conn);
        }
        return;

    case PGRES_POLLING_OK:
        break;

    default: /* PGRES_POLLING_FAILED */
        ngx_worksible_pg_connect_failed(conn);
        return;
    }

    if (conn->timer.timer_set) {
        ngx_del_timer(&conn->timer);
    }

    if (ngx_worksible_pg_events(c, 1, 0) != NGX_OK) {
        ngx_worksible_pg_connect_failed(conn);
        return;
    }

    c->read->handler = ngx_worksible_pg_read_handler;
    c->write->handler = ngx_worksible_pg_write_handler;

    conn->state = NGX_WORKSIBLE_PG_IDLE;
    (void) ngx_atomic_fetch_add(&conn->pool->stats->connections, 1);
    conn->pool->backoff = 0;
    conn->pool->rotation = (conn->rotation + ngx_worksible_pg_address(conn))
                           % conn->pool->conf->naddrs;

    ngx_log_debug1(NGX_LOG_DEBUG_EVENT, conn->pool->log, 0,
                   "worksible postgres connected to %V",
                   &conn->pool->conf->display);

    ngx_worksible_pg_dispatch(conn->pool);
}


/* a failed connect's message has a line per host tried: all are logged */

static void
ngx_worksible_pg_connect_failed(ngx_worksible_pg_conn_t *conn)
{
    u_char                   *p, *last;
    ngx_str_t                 msg;
    ngx_worksible_pg_pool_t  *pool;
    u_char                    buf[NGX_MAX_ERROR_STR];

    pool = conn->pool;

    msg = ngx_worksible_pg_message(conn->pgconn
                                   ? PQerrorMessage(conn->pgconn)
                                   : "out of memory");

    if (msg.len == 0) {
        ngx_str_set(&msg, "no answer within connect_timeout");

    } else if (msg.data[msg.len] == '\n' && msg.data[msg.len + 1] != '\0') {
        last = ngx_cpystrn(buf, msg.data, sizeof(buf));

        while (last > buf && last[-1] == '\n') {
            last--;
        }

        for (p = buf; p < last; p++) {
            if (*p == '\n') {
                *p = ' ';
            }
        }

        msg.data = buf;
        msg.len = last - buf;
    }

    ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                  "worksible postgres connect to %V failed: %V",
                  &pool->conf->display, &msg);

    if (pool->conf->options && conn->pgconn != NULL
        && ngx_strstr(PQerrorMessage(conn->pgconn),
                      "unsupported startup parameter") != NULL
        && ngx_worksible_pg_bouncer(pool) == NGX_OK)
    {
        /* again at once, without "options" */
        ngx_worksible_pg_close(conn);
        ngx_worksible_pg_dispatch(pool);
        return;
    }

    ngx_worksible_pg_close(conn);

    pool->backoff = pool->backoff ? ngx_min(pool->backoff * 2,
                                            NGX_WORKSIBLE_PG_BACKOFF_MAX)
                                  : NGX_WORKSIBLE_PG_BACKOFF_MIN;
    pool->retry_at = ngx_current_msec + pool->backoff;

    ngx_worksible_pg_dispatch(pool);
}


/*
 * libpq passes over an address that refuses, never over one that does not
 * answer: with several, the connect starts again from the next address,
 * until each timed out once.
 */

static void
ngx_worksible_pg_connect_timeout(ngx_event_t *ev)
{
    ngx_uint_t                j;
    const char               *addr;
    ngx_worksible_pg_conn_t  *conn;
    ngx_worksible_pg_conf_t  *conf;

    conn = ev->data;
    conf = conn->pool->conf;

    addr = PQhostaddr(conn->pgconn);

    ngx_log_error(NGX_LOG_ERR, conn->pool->log, 0,
                  "worksible postgres connect to %V timed out (at %s)",
                  &conf->display, (addr && addr[0]) ? addr : "?");

    j = ngx_worksible_pg_address(conn);
    conn->tried += j + 1;

    if (conn->tried >= conf->naddrs) {
        ngx_worksible_pg_connect_failed(conn);
        return;
    }

    ngx_worksible_pg_close(conn);

    conn->rotation = (conn->rotation + j + 1) % conf->naddrs;

    (void) ngx_worksible_pg_connect(conn);
}


/* the position, in its rotation's list, of the address conn is at */

static ngx_uint_t
ngx_worksible_pg_address(ngx_worksible_pg_conn_t *conn)
{
    size_t                    len;
    ngx_uint_t                i, j;
    const char               *addr, *list, *end;
    ngx_worksible_pg_conf_t  *conf;

    conf = conn->pool->conf;
    addr = PQhostaddr(conn->pgconn);

    if (conf->naddrs == 1 || addr == NULL || addr[0] == '\0') {
        return 0;
    }

    len = ngx_strlen(addr);

    for (i = 0; conf->keywords[i]; i++) {
        if (ngx_strcmp(conf->keywords[i], "hostaddr") != 0) {
            continue;
        }

        list = conf->rotations[conn->rotation][i];

        for (j = 0; *list; j++) {
            end = (const char *) ngx_strchr(list, ',');
            if (end == NULL) {
                end = list + ngx_strlen(list);
            }

            if ((size_t) (end - list) == len
                && ngx_strncmp(list, addr, len) == 0)
            {
                return j;
            }

            list = *end ? end + 1 : end;
        }
    }

    return 0;
}


static void
ngx_worksible_pg_send(ngx_worksible_pg_conn_t *conn, ngx_worksible_pg_op_t *op)
{
    ngx_str_t  msg;

    conn->state = NGX_WORKSIBLE_PG_BUSY;
    conn->background = op->background;
    conn->op = op;
    op->conn = conn;

    /*
     * From now on the server's statement_timeout (query_timeout, from when
     * it gets the query) ends it first, and its answer, an error, says
     * that nothing was committed: the module gives up only past it, never
     * answering 503 for a write that commits afterwards.
     */
    ngx_add_timer(&op->timer, op->pool->conf->query_timeout
                              + NGX_WORKSIBLE_PG_DRAIN_GRACE);

    if (!ngx_worksible_pg_send_query(conn, op)
        || ngx_worksible_pg_flush(conn) != NGX_OK)
    {
        msg = ngx_worksible_pg_message(PQerrorMessage(conn->pgconn));
        ngx_log_error(NGX_LOG_ERR, conn->pool->log, 0,
                      "worksible postgres send failed: %V", &msg);
        ngx_worksible_pg_close(conn);
        ngx_worksible_pg_op_finish(op, NGX_WORKSIBLE_PG_FAILED);
    }
}


/*
 * Sends op's query: by name when it has one, prepare=on and this
 * connection prepared it; else its Parse first (PQsendPrepare), the
 * execution following once the Parse succeeded
 * (ngx_worksible_pg_prepare_done); else unnamed (PQsendQueryParams: parsed
 * and planned again each time). libpq's 1, or 0 on failure.
 */

static int
ngx_worksible_pg_send_query(ngx_worksible_pg_conn_t *conn,
    ngx_worksible_pg_op_t *op)
{
    if (op->copy.data != NULL) {
        op->copy_sent = 0;
        return PQsendQuery(conn->pgconn, op->sql);
    }

    if (op->name != NULL && conn->pool->conf->prepare) {

        if (ngx_worksible_pg_prepared(conn, op->name)) {
            return PQsendQueryPrepared(conn->pgconn, op->name, op->nparams,
                                       op->values, NULL, NULL, 0);
        }

        if (conn->nprepared < NGX_WORKSIBLE_PG_MAX_PREPARED) {
            conn->preparing = op->name;
            return PQsendPrepare(conn->pgconn, op->name, op->sql,
                                 op->nparams, NULL);
        }
    }

    return PQsendQueryParams(conn->pgconn, op->sql, op->nparams, NULL,
                             op->values, NULL, NULL, 0);
}


/* 1 when the connection has prepared the statement name */

static ngx_int_t
ngx_worksible_pg_prepared(ngx_worksible_pg_conn_t *conn, const char *name)
{
    ngx_uint_t  i;

    for (i = 0; i < conn->nprepared; i++) {
        if (conn->prepared[i] == name
            || ngx_strcmp(conn->prepared[i], name) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/*
 * The Parse of conn->preparing completed: a success is remembered, and op
 * (still attached) is executed by name: NGX_AGAIN, the connection stays
 * busy. NGX_OK: the connection is done (op gone, or the Parse failed and
 * its error is now op->result). NGX_ERROR: the execution could not be
 * sent; the caller closes the connection and fails op.
 */

static ngx_int_t
ngx_worksible_pg_prepare_done(ngx_worksible_pg_conn_t *conn,
    ngx_worksible_pg_op_t *op)
{
    PGresult    *res;
    const char  *name;

    name = conn->preparing;
    res = conn->prepare_res;

    conn->preparing = NULL;
    conn->prepare_res = NULL;

    if (res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK) {
        conn->prepared[conn->nprepared++] = name;
        PQclear(res);

        if (op == NULL
            || PQstatus(conn->pgconn) != CONNECTION_OK
            || PQtransactionStatus(conn->pgconn) != PQTRANS_IDLE)
        {
            return NGX_OK;
        }

        if (!PQsendQueryPrepared(conn->pgconn, op->name, op->nparams,
                                 op->values, NULL, NULL, 0)
            || ngx_worksible_pg_flush(conn) != NGX_OK)
        {
            return NGX_ERROR;
        }

        return NGX_AGAIN;
    }

    /* the Parse failed: its error answers op, like a failed query's */

    if (op != NULL && op->result == NULL) {
        op->result = res;

    } else if (res != NULL) {
        PQclear(res);
    }

    return NGX_OK;
}


/* PQflush(), and the write event while output is left */

static ngx_int_t
ngx_worksible_pg_flush(ngx_worksible_pg_conn_t *conn)
{
    int  rc;

    rc = PQflush(conn->pgconn);

    if (rc == -1) {
        return NGX_ERROR;
    }

    return ngx_worksible_pg_events(conn->c, 1, rc == 1);
}


/*
 * Sends the running COPY's data, as much as libpq takes, then its end:
 * NGX_OK when all is queued (the rest flushes on the write event), NGX_AGAIN
 * when libpq's buffer is full (the write event resumes), NGX_ERROR when
 * the connection failed. Without an op (draining) or data, the COPY ends
 * with an error: the server rolls the query's transaction back.
 */

static ngx_int_t
ngx_worksible_pg_copy(ngx_worksible_pg_conn_t *conn)
{
    int                     rc;
    size_t                  n;
    ngx_worksible_pg_op_t  *op;

    op = conn->op;
    conn->copying = 1;

    if (op == NULL || op->copy.data == NULL) {
        if (PQputCopyEnd(conn->pgconn, "the batch was abandoned") != 1) {
            return NGX_ERROR;
        }

        conn->copying = 0;
        return ngx_worksible_pg_flush(conn);
    }

    while (op->copy_sent < op->copy.len) {
        n = ngx_min(op->copy.len - op->copy_sent, 65536);

        rc = PQputCopyData(conn->pgconn,
                           (const char *) op->copy.data + op->copy_sent,
                           (int) n);
        if (rc == -1) {
            return NGX_ERROR;
        }

        if (rc == 0) {
            goto again;
        }

        op->copy_sent += n;
    }

    rc = PQputCopyEnd(conn->pgconn, NULL);

    if (rc == -1) {
        return NGX_ERROR;
    }

    if (rc == 0) {
        goto again;
    }

    conn->copying = 0;

    return ngx_worksible_pg_flush(conn);

again:

    /* libpq's buffer is full: it must have output left to wait for */

    rc = PQflush(conn->pgconn);

    if (rc != 1) {
        return NGX_ERROR;
    }

    return ngx_worksible_pg_events(conn->c, 1, 1) == NGX_OK ? NGX_AGAIN
                                                            : NGX_ERROR;
}


static void
ngx_worksible_pg_write_handler(ngx_event_t *ev)
{
    ngx_int_t                 rc;
    ngx_str_t                 msg;
    ngx_connection_t         *c;
    ngx_worksible_pg_conn_t  *conn;

    c = ev->data;
    conn = c->data;

    if (conn->copying) {
        rc = ngx_worksible_pg_copy(conn);

        if (rc == NGX_AGAIN) {
            return;
        }

        if (rc == NGX_OK) {
            /* what the server said while the data went */
            ngx_worksible_pg_receive(conn);
            return;
        }

        msg = ngx_worksible_pg_message(PQerrorMessage(conn->pgconn));
        ngx_log_error(NGX_LOG_ERR, conn->pool->log, 0,
                      "worksible postgres copy failed: %V", &msg);

        if (conn->op) {
            ngx_worksible_pg_op_finish(conn->op, NGX_WORKSIBLE_PG_FAILED);
        }

        ngx_worksible_pg_close(conn);
        ngx_worksible_pg_dispatch(conn->pool);
        return;
    }

    if (ngx_worksible_pg_flush(conn) != NGX_OK) {
        msg = ngx_worksible_pg_message(PQerrorMessage(conn->pgconn));
        ngx_log_error(NGX_LOG_ERR, conn->pool->log, 0,
                      "worksible postgres write failed: %V", &msg);

        if (conn->op) {
            ngx_worksible_pg_op_finish(conn->op, NGX_WORKSIBLE_PG_FAILED);
        }

        ngx_worksible_pg_close(conn);
        ngx_worksible_pg_dispatch(conn->pool);
    }
}


static void
ngx_worksible_pg_read_handler(ngx_event_t *ev)
{
    ngx_connection_t         *c;
    ngx_worksible_pg_conn_t  *conn;

    c = ev->data;
    conn = c->data;

    if (c->close) {
        if (conn->op) {
            ngx_worksible_pg_op_finish(conn->op, NGX_WORKSIBLE_PG_FAILED);
        }

        ngx_worksible_pg_close(conn);
        return;
    }

    ngx_worksible_pg_receive(conn);
}


/*
 * Reads what arrived. Idle: only notices and a closing server can arrive.
 * Busy or draining: collects results until PQgetResult() says the query is
 * complete, without ever calling it while PQisBusy() (it would block); a
 * draining connection discards them and is idle again.
 */

static void
ngx_worksible_pg_receive(ngx_worksible_pg_conn_t *conn)
{
    ngx_str_t                 msg;
    PGnotify                 *notify;
    PGresult                 *res;
    ngx_uint_t                read_only;
    ngx_worksible_pg_op_t    *op;
    ngx_worksible_pg_pool_t  *pool;

    op = conn->op;
    pool = conn->pool;
    read_only = 0;

    if (!PQconsumeInput(conn->pgconn)) {
        msg = ngx_worksible_pg_message(PQerrorMessage(conn->pgconn));
        ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                      "worksible postgres connection lost: %V", &msg);
        goto failed;
    }

    while ((notify = PQnotifies(conn->pgconn)) != NULL) {
        if (pool->notify != NULL && pool->listening) {
            pool->notify(pool->notify_data, notify->extra);
        }

        PQfreemem(notify);
    }

    if (conn->state == NGX_WORKSIBLE_PG_IDLE) {
        if (PQstatus(conn->pgconn) != CONNECTION_OK) {
            goto failed;
        }

        return;
    }

    if (conn->copying) {
        /* the data goes first (the write event); results come after it */
        return;
    }

    for ( ;; ) {

        if (PQisBusy(conn->pgconn)) {
            return;
        }

        res = PQgetResult(conn->pgconn);

        if (res == NULL) {
            break;
        }

        if (PQresultStatus(res) == PGRES_COPY_IN) {
            PQclear(res);

            switch (ngx_worksible_pg_copy(conn)) {

            case NGX_AGAIN:
                return;

            case NGX_ERROR:
                msg = ngx_worksible_pg_message(PQerrorMessage(conn->pgconn));
                ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                              "worksible postgres copy failed: %V", &msg);
                goto failed;

            default: /* NGX_OK */
                continue;
            }
        }

        if (conn->preparing != NULL && conn->prepare_res == NULL) {
            conn->prepare_res = res;
            continue;
        }

        if (conn->preparing == NULL && op != NULL
            && (op->result == NULL || op->copy.data != NULL))
        {
            /* a COPY op's query has several results: the last one counts */

            if (op->result != NULL) {
                PQclear(op->result);
            }

            op->result = res;
            continue;
        }

        read_only |= ngx_worksible_pg_read_only(res);
        PQclear(res);
    }

    /* the query is complete */

    if (conn->preparing != NULL) {
        switch (ngx_worksible_pg_prepare_done(conn, op)) {

        case NGX_AGAIN:
            return;

        case NGX_ERROR:
            msg = ngx_worksible_pg_message(PQerrorMessage(conn->pgconn));
            ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                          "worksible postgres send failed: %V", &msg);
            goto failed;

        default: /* NGX_OK */
            break;
        }
    }

    if (ngx_worksible_pg_unprepared(conn, op)) {
        /* sent again unnamed */

        if (PQsendQueryParams(conn->pgconn, op->sql, op->nparams, NULL,
                              op->values, NULL, NULL, 0)
            && ngx_worksible_pg_flush(conn) == NGX_OK)
        {
            return;
        }

        msg = ngx_worksible_pg_message(PQerrorMessage(conn->pgconn));
        ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                      "worksible postgres send failed: %V", &msg);
        goto failed;
    }

    if (conn->timer.timer_set) {
        ngx_del_timer(&conn->timer);
    }

    conn->op = NULL;
    conn->background = 0;

    if (op != NULL) {
        op->conn = NULL;
    }

    if (PQstatus(conn->pgconn) != CONNECTION_OK
        || PQtransactionStatus(conn->pgconn) != PQTRANS_IDLE)
    {
        ngx_worksible_pg_close(conn);

    } else if (pool->conf->read_write
               && (read_only || (op != NULL && op->result != NULL
                                 && ngx_worksible_pg_read_only(op->result))))
    {
        /* a primary that became a standby: find the writable host again */

        ngx_log_error(NGX_LOG_WARN, pool->log, 0,
                      "worksible postgres %V is read-only, reconnecting",
                      &pool->conf->display);
        ngx_worksible_pg_close(conn);

    } else {
        conn->state = NGX_WORKSIBLE_PG_IDLE;
    }

    if (op != NULL) {
        ngx_worksible_pg_op_finish(op, op->result ? NGX_WORKSIBLE_PG_OK
                                                  : NGX_WORKSIBLE_PG_FAILED);
    }

    ngx_worksible_pg_dispatch(pool);

    return;

failed:

    ngx_worksible_pg_close(conn);

    if (op) {
        ngx_worksible_pg_op_finish(op, NGX_WORKSIBLE_PG_FAILED);
    }

    ngx_worksible_pg_dispatch(pool);
}


/*
 * The running query's op is gone (its client left, or query_timeout
 * passed): the reply is read and discarded, and the connection goes back
 * to the pool, unless it is still running after deadline ms, when it is
 * closed. The server stops the query by itself at statement_timeout, or
 * within client_connection_check_interval once the connection is closed
 * (both set from query_timeout by ngx_worksible_pg_conf_bounds).
 */

static void
ngx_worksible_pg_drain(ngx_worksible_pg_conn_t *conn, ngx_msec_t deadline)
{
    conn->op = NULL;
    conn->state = NGX_WORKSIBLE_PG_DRAINING;

    /*
     * Mid-COPY, the op's data goes with it: the COPY ends with an error
     * (the server rolls back), or the connection closes (the same)
     */

    if (conn->copying && ngx_worksible_pg_copy(conn) != NGX_OK) {
        ngx_worksible_pg_close(conn);
        return;
    }

    conn->timer.handler = ngx_worksible_pg_drain_timeout;

    if (conn->timer.timer_set) {
        ngx_del_timer(&conn->timer);
    }

    ngx_add_timer(&conn->timer, deadline);
}


static void
ngx_worksible_pg_drain_timeout(ngx_event_t *ev)
{
    ngx_worksible_pg_conn_t  *conn;

    conn = ev->data;

    ngx_log_error(NGX_LOG_WARN, conn->pool->log, 0,
                  "worksible postgres: a query abandoned past query_timeout "
                  "still runs, closing its connection");

    ngx_worksible_pg_close(conn);
    ngx_worksible_pg_dispatch(conn->pool);
}


/*
 * 1 when op's named statement failed as it does behind a pooler that hands
 * out another server connection (PgBouncer in transaction pooling with
 * ignore_startup_parameters = options, so undetected): "prepared statement
 * does not exist" (26000) or "already exists" (42P05). Nothing ran; from
 * now on this pool sends statements unnamed, and op's result is dropped
 * for it to be sent again.
 */

static ngx_uint_t
ngx_worksible_pg_unprepared(ngx_worksible_pg_conn_t *conn,
    ngx_worksible_pg_op_t *op)
{
    const char               *state;
    ngx_worksible_pg_pool_t  *pool;

    pool = conn->pool;

    if (op == NULL || op->result == NULL || op->name == NULL
        || !pool->conf->prepare
        || PQstatus(conn->pgconn) != CONNECTION_OK
        || PQtransactionStatus(conn->pgconn) != PQTRANS_IDLE)
    {
        return 0;
    }

    state = PQresultErrorField(op->result, PG_DIAG_SQLSTATE);

    if (state == NULL
        || (ngx_strcmp(state, "26000") != 0 && ngx_strcmp(state, "42P05") != 0))
    {
        return 0;
    }

    ngx_log_error(NGX_LOG_WARN, pool->log, 0,
                  "worksible postgres %V lost the prepared statement \"%s\" "
                  "(a pooler in transaction mode?): statements go unnamed "
                  "from now on (set prepare=off or pgbouncer=on to say so)",
                  &pool->conf->display, op->name);

    pool->conf->prepare = 0;

    PQclear(op->result);
    op->result = NULL;

    return 1;
}


/* 1 when res failed because the server is read-only (SQLSTATE 25006) */

static ngx_uint_t
ngx_worksible_pg_read_only(PGresult *res)
{
    const char  *state;

    state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

    return state != NULL && ngx_strcmp(state, "25006") == 0;
}


/* closes the connection; its op, if any, is the caller's to finish */

static void
ngx_worksible_pg_close(ngx_worksible_pg_conn_t *conn)
{
    ngx_connection_t  *c;

    if (conn->timer.timer_set) {
        ngx_del_timer(&conn->timer);
    }

    c = conn->c;

    if (c != NULL) {
        if (c->read->posted) {
            ngx_delete_posted_event(c->read);
        }

        if (c->write->posted) {
            ngx_delete_posted_event(c->write);
        }

        if (c->read->active || c->read->disabled) {
            ngx_del_event(c->read, NGX_READ_EVENT, NGX_CLOSE_EVENT);
        }

        if (c->write->active || c->write->disabled) {
            ngx_del_event(c->write, NGX_WRITE_EVENT, NGX_CLOSE_EVENT);
        }

        /* PQfinish() owns and closes the socket */

        ngx_free_connection(c);
        c->fd = (ngx_socket_t) -1;
        conn->c = NULL;
    }

    if (conn->pgconn != NULL) {
        PQfinish(conn->pgconn);
        conn->pgconn = NULL;
    }

    if (conn->op != NULL) {
        conn->op->conn = NULL;
        conn->op = NULL;
    }

    /* a connection made again has prepared nothing */

    if (conn->prepare_res != NULL) {
        PQclear(conn->prepare_res);
        conn->prepare_res = NULL;
    }

    conn->preparing = NULL;
    conn->nprepared = 0;

    if (conn->state != NGX_WORKSIBLE_PG_CLOSED
        && conn->state != NGX_WORKSIBLE_PG_CONNECTING)
    {
        (void) ngx_atomic_fetch_add(&conn->pool->stats->connections, -1);
    }

    conn->state = NGX_WORKSIBLE_PG_CLOSED;
    conn->background = 0;
    conn->copying = 0;

    if (conn->pool->notify != NULL && conn->pool->listening) {
        /* the channel is down: LISTEN again on a new connection */
        conn->pool->listening = 0;
        conn->pool->lost = 1;

        ngx_log_error(NGX_LOG_WARN, conn->pool->log, 0,
                      "worksible postgres: %s lost, the key cache's ttl "
                      "applies until it is back", conn->pool->listen_sql);

        ngx_add_timer(&conn->pool->listen_timer, NGX_WORKSIBLE_PG_BACKOFF_MIN);
    }
}


static void
ngx_worksible_pg_op_timeout(ngx_event_t *ev)
{
    ngx_worksible_pg_op_t    *op;
    ngx_worksible_pg_conn_t  *conn;
    ngx_worksible_pg_pool_t  *pool;

    op = ev->data;
    pool = op->pool;

    ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                  "worksible postgres query timed out after %M ms%s",
                  pool->conf->query_timeout,
                  op->conn ? "" : " in queue");

    if (op->conn) {
        conn = op->conn;
        op->conn = NULL;
        ngx_worksible_pg_drain(conn, NGX_WORKSIBLE_PG_DRAIN_GRACE);
    }

    ngx_worksible_pg_op_finish(op, NGX_WORKSIBLE_PG_TIMEOUT);
    ngx_worksible_pg_dispatch(pool);
}


/* the handler runs from a posted event: never inside the pool's own loops */

static void
ngx_worksible_pg_op_finish(ngx_worksible_pg_op_t *op,
    ngx_worksible_pg_status_e status)
{
    ngx_worksible_pg_conn_t  *conn;

    ngx_worksible_pg_unqueue(op);

    if (op->timer.timer_set) {
        ngx_del_timer(&op->timer);
    }

    conn = op->conn;

    if (conn != NULL) {
        conn->op = NULL;
        op->conn = NULL;
    }

    op->status = status;

    if (status == NGX_WORKSIBLE_PG_TIMEOUT) {
        (void) ngx_atomic_fetch_add(&op->pool->stats->timeouts, 1);

    } else if (status != NGX_WORKSIBLE_PG_OK) {
        (void) ngx_atomic_fetch_add(&op->pool->stats->errors, 1);
    }

    op->timer.handler = ngx_worksible_pg_op_done;
    ngx_post_event(&op->timer, &ngx_posted_events);
}


static void
ngx_worksible_pg_op_done(ngx_event_t *ev)
{
    ngx_worksible_pg_op_t  *op;

    op = ev->data;

    if (op->data != NULL) {
        op->handler(op);
    }

    ngx_worksible_pg_op_free(op);
}


/* takes op out of the waiting queue if it is there */

static void
ngx_worksible_pg_unqueue(ngx_worksible_pg_op_t *op)
{
    if (op->queue.next != NULL) {
        ngx_queue_remove(&op->queue);
        op->queue.next = NULL;
        op->pool->nwaiting--;
    }
}


void
ngx_worksible_pg_op_detach(ngx_worksible_pg_op_t *op)
{
    ngx_msec_int_t            left;
    ngx_worksible_pg_conn_t  *conn;

    op->data = NULL;

    if (op->timer.posted) {
        /* finished, its handler not run yet: ngx_worksible_pg_op_done frees */
        return;
    }

    conn = op->conn;

    if (conn != NULL) {
        ngx_log_error(NGX_LOG_INFO, op->pool->log, 0,
                      "worksible postgres query abandoned, "
                      "its reply will be discarded");

        /* the rest of its query_timeout, and the grace */

        left = op->timer.timer_set
               ? (ngx_msec_int_t) (op->timer.timer.key - ngx_current_msec)
               : 0;

        op->conn = NULL;
        ngx_worksible_pg_drain(conn, ngx_max(left, 0)
                                     + NGX_WORKSIBLE_PG_DRAIN_GRACE);

    } else {
        ngx_worksible_pg_unqueue(op);
    }

    ngx_worksible_pg_op_free(op);
}


void
ngx_worksible_pg_op_free(ngx_worksible_pg_op_t *op)
{
    if (op->timer.timer_set) {
        ngx_del_timer(&op->timer);
    }

    if (op->timer.posted) {
        ngx_delete_posted_event(&op->timer);
    }

    if (op->result != NULL) {
        PQclear(op->result);
    }

    ngx_destroy_pool(op->mem);
}


ngx_str_t
ngx_worksible_pg_message(const char *msg)
{
    ngx_str_t  s;
    u_char    *nl;

    s.data = (u_char *) msg;
    s.len = ngx_strlen(msg);

    nl = ngx_strlchr(s.data, s.data + s.len, '\n');

    if (nl != NULL) {
        s.len = nl - s.data;
    }

    return s;
}


time_t
ngx_worksible_pg_retry_after(ngx_worksible_pg_pool_t *pool)
{
    ngx_msec_int_t  left;

    left = (ngx_msec_int_t) (pool->retry_at - ngx_current_msec);

    return left > 1000 ? (time_t) ((left + 999) / 1000) : 1;
}


ngx_int_t
ngx_worksible_pg_listen(ngx_worksible_pg_pool_t *pool, const char *channel,
    ngx_worksible_pg_notify_pt notify, void *data)
{
    size_t  len;

    len = sizeof("LISTEN \"\"") + ngx_strlen(channel);

    pool->listen_sql = ngx_pnalloc(pool->mem, len);
    if (pool->listen_sql == NULL) {
        return NGX_ERROR;
    }

    (void) ngx_sprintf((u_char *) pool->listen_sql, "LISTEN \"%s\"%Z", channel);

    pool->notify = notify;
    pool->notify_data = data;

    pool->listen_timer.handler = ngx_worksible_pg_listen_start;
    pool->listen_timer.data = pool;
    pool->listen_timer.log = pool->log;
    pool->listen_timer.cancelable = 1;

    ngx_worksible_pg_listen_start(&pool->listen_timer);

    return NGX_OK;
}


/* sends LISTEN on the pool's (only) connection, or tries again later */

static void
ngx_worksible_pg_listen_start(ngx_event_t *ev)
{
    ngx_worksible_pg_op_t    *op;
    ngx_worksible_pg_pool_t  *pool;

    pool = ev->data;

    if (pool->notify == NULL) {
        return;
    }

    op = ngx_worksible_pg_op_create(pool);

    if (op != NULL) {
        op->sql = pool->listen_sql;
        op->handler = ngx_worksible_pg_listened;
        op->data = pool;

        if (ngx_worksible_pg_op_start(op) == NGX_OK) {
            return;
        }

        ngx_worksible_pg_op_free(op);
    }

    ngx_add_timer(&pool->listen_timer, NGX_WORKSIBLE_PG_BACKOFF_MAX);
}


static void
ngx_worksible_pg_listened(ngx_worksible_pg_op_t *op)
{
    ngx_str_t                 msg;
    ngx_worksible_pg_pool_t  *pool;

    pool = op->data;

    if (pool->notify == NULL) {
        /* stopped (ngx_worksible_pg_bouncer) */
        return;
    }

    if (op->status != NGX_WORKSIBLE_PG_OK
        || PQresultStatus(op->result) != PGRES_COMMAND_OK)
    {
        msg = ngx_worksible_pg_message(op->result
                                       ? PQresultErrorMessage(op->result)
                                       : "no connection");
        ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                      "worksible postgres: %s failed: %V", pool->listen_sql,
                      &msg);

        ngx_add_timer(&pool->listen_timer, NGX_WORKSIBLE_PG_BACKOFF_MAX);
        return;
    }

    pool->listening = 1;

    if (pool->lost) {
        /* whatever was announced while nobody listened is unknown */
        pool->lost = 0;
        pool->notify(pool->notify_data, NULL);
    }
}


ngx_uint_t
ngx_worksible_pg_transient(PGresult *res)
{
    ngx_uint_t   i;
    const char  *state;

    static const char  *transient[] = {
        "25006", "57P01", "57P02", "57P03", "40001", "40P01", "55P03",
        "57014"
    };

    state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

    if (state == NULL || ngx_strlen(state) != 5) {
        return 0;
    }

    if (ngx_strncmp(state, "53", 2) == 0 || ngx_strncmp(state, "08", 2) == 0) {
        return 1;
    }

    for (i = 0; i < sizeof(transient) / sizeof(transient[0]); i++) {
        if (ngx_strcmp(state, transient[i]) == 0) {
            return 1;
        }
    }

    return 0;
}


ngx_worksible_pg_op_t *
ngx_worksible_pg_op_clone(ngx_worksible_pg_op_t *op,
    ngx_worksible_pg_pool_t *pool)
{
    int                     i;
    ngx_str_t               value;
    ngx_worksible_pg_op_t  *copy;

    copy = ngx_worksible_pg_op_create(pool);
    if (copy == NULL) {
        return NULL;
    }

    copy->sql = ngx_worksible_pg_strdup(copy->mem, op->sql);
    copy->name = op->name;
    copy->background = op->background;

    if (copy->sql == NULL) {
        ngx_worksible_pg_op_free(copy);
        return NULL;
    }

    for (i = 0; i < op->nparams; i++) {
        value.data = (u_char *) op->values[i];
        value.len = value.data ? ngx_strlen(value.data) : 0;

        if (ngx_worksible_pg_op_param(copy, value.data ? &value : NULL)
            != NGX_OK)
        {
            ngx_worksible_pg_op_free(copy);
            return NULL;
        }
    }

    return copy;
}


ngx_uint_t
ngx_worksible_pg_ready(ngx_worksible_pg_pool_t *pool)
{
    return ngx_worksible_pg_live(pool)
           || (ngx_msec_int_t) (pool->retry_at - ngx_current_msec) <= 0;
}
