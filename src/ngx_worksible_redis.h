/*
 * Redis on nginx's event loop: one hiredis async connection per worker,
 * commands pipelined on it, and a timeout per command (hiredis 0.14 has no
 * timers). A command past its timeout fails alone: its requester gets no
 * answer, its late reply is read and discarded, the connection and the
 * other commands carry on.
 *
 * A connection that is lost (Redis closed an idle connection, CLIENT KILL,
 * a proxy's idle timeout) is made again at once. Commands never written to
 * it are sent on the new one; a command that was written and got no reply
 * has an unknown fate: it is sent again only when marked safe to run twice
 * (ngx_worksible_redis_allow_resend()), else its requester gets no answer.
 *
 * A circuit breaker treats Redis as down, failing commands at once until a
 * background probe (connect, AUTH, SELECT, PING) finds it back, when:
 * nothing was read for max(timeout, connect_timeout) while commands were
 * outstanding (SIGSTOP, a stuck server), 3 connection failures came in a
 * row (refused, lost, before a PING was answered again), a connect and its
 * PING took longer than connect_timeout, or Redis answered LOADING.
 *
 * hiredis 0.14 facts this file lives with (STYLE.md): it closes the fd
 * itself, reads 16 KB per call (events are level-triggered here), calls
 * pending callbacks with a NULL reply when freed, and resolves host names
 * with a blocking getaddrinfo() (the address is resolved at configuration
 * time; a unix socket needs nothing). It has no TLS: reach Redis over
 * loopback, a unix socket or a private network.
 */

#ifndef _NGX_WORKSIBLE_REDIS_H_INCLUDED_
#define _NGX_WORKSIBLE_REDIS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "ngx_worksible_metrics.h"
#include "ngx_worksible_redis_sentinel.h"


#define NGX_WORKSIBLE_REDIS_MAX_ARGS  12


typedef struct ngx_worksible_redis_s     ngx_worksible_redis_t;
typedef struct ngx_worksible_redis_op_s  ngx_worksible_redis_op_t;
typedef struct ngx_worksible_redis_cluster_s  ngx_worksible_redis_cluster_t;

/* reply NULL: no answer (timeout, Redis down); freed after the call */
typedef void (*ngx_worksible_redis_handler_pt)(ngx_worksible_redis_op_t *op,
    redisReply *reply);


/* from the worksible_redis directive */
typedef struct {
    ngx_str_t                       display;      /* for the log */
    char                           *addr;         /* numeric, or NULL */
    int                             port;
    char                           *unix_path;    /* or NULL */
    ngx_str_t                       password;     /* len 0: no AUTH */
    ngx_uint_t                      db;
    ngx_msec_t                      timeout;
    ngx_msec_t                      connect_timeout;
    ngx_worksible_redis_sentinel_conf_t  *sentinel;  /* sentinel=, or NULL */
    unsigned                        cluster:1;    /* seed nodes of one */
    ngx_array_t                    *seeds;        /* their confs (cluster) */
    ngx_worksible_redis_cluster_t  *node_of;      /* a node's, per worker */
} ngx_worksible_redis_conf_t;


struct ngx_worksible_redis_op_s {
    ngx_worksible_redis_t          *redis;
    ngx_event_t                     timer;
    ngx_worksible_redis_handler_pt  handler;
    void                           *data;         /* NULL once detached */
    const char                     *script;       /* EVAL for NOSCRIPT */
    int                             argc;
    const char                     *argv[NGX_WORKSIBLE_REDIS_MAX_ARGS];
    size_t                          argvlen[NGX_WORKSIBLE_REDIS_MAX_ARGS];
    ngx_queue_t                     queue;        /* waiting, see queued */
    size_t                          sent;         /* its first byte's offset */
    ngx_event_t                     retry;        /* cluster: TRYAGAIN */
    ngx_uint_t                      slot;         /* cluster: of argv[3] */
    ngx_uint_t                      redirects;    /* cluster: so far */
    unsigned                        done:1;       /* the requester was told */
    unsigned                        queued:1;     /* waits for a connection */
    unsigned                        unknown:1;    /* written, then lost */
    unsigned                        resend:1;     /* safe to run twice */
    unsigned                        asking:1;     /* cluster: ASKING first */
};


/*
 * Parses "ADDRESS [ADDRESS ...] [cluster | sentinel=NAME
 * [sentinel_password_file=FILE]] [password_file=FILE] [db=N] [timeout=TIME]
 * [connect_timeout=TIME]" (the worksible_redis directive): ADDRESS is
 * host[:port] (6379), resolved now, or unix:/path; several only with
 * "cluster" (seed nodes of a Redis Cluster, db 0, no unix:, see
 * ngx_worksible_redis_cluster.h) or sentinel=NAME (Sentinels, host[:port],
 * 26379: the primary is asked of them at run time). Defaults: db 0, timeout
 * 100ms, connect_timeout 1s. NGX_CONF_OK or an error for nginx -t.
 */
char *ngx_worksible_redis_conf_parse(ngx_conf_t *cf, ngx_str_t *args,
    ngx_uint_t nargs, ngx_worksible_redis_conf_t *conf);

/*
 * host[:port] (default_port when none) resolved now: hiredis would call the
 * blocking getaddrinfo(). *addr: its first address, numeric, NUL-terminated
 * (cf's pool); *port. NGX_OK, or NGX_ERROR after the emerg "worksible_redis
 * WHAT \"ARG\" not resolved" for nginx -t (what: "" or ": the Sentinel").
 */
ngx_int_t ngx_worksible_redis_resolve(ngx_conf_t *cf, ngx_str_t *arg,
    in_port_t default_port, const char *what, char **addr, int *port);

/*
 * A connection hiredis is about to close (its cleanup): the events are
 * removed, posted or armed, and nginx's connection slot is freed; the fd is
 * hiredis's to close.
 */
void ngx_worksible_redis_release(ngx_connection_t *c);

/*
 * The password on the one line of file (relative to the prefix), read now,
 * into *password: NGX_OK, or NGX_ERROR logged for nginx -t.
 */
ngx_int_t ngx_worksible_redis_conf_password(ngx_conf_t *cf, ngx_str_t *file,
    ngx_str_t *password);

/*
 * This worker's connection (init_process), connecting, counting its calls
 * in stats (shared by all workers); NULL: no memory.
 */
ngx_worksible_redis_t *ngx_worksible_redis_create(
    ngx_worksible_redis_conf_t *conf, ngx_cycle_t *cycle,
    ngx_worksible_store_stats_t *stats);

/* closes it (exit_process); pending commands get a NULL reply */
void ngx_worksible_redis_close(ngx_worksible_redis_t *redis);

/* the SHA-1 of a Lua script, 40 hex digits and a NUL, for EVALSHA */
void ngx_worksible_redis_sha(const char *script, u_char *hex);

/*
 * EVALSHA sha 1 key args... (re-sent as EVAL script on NOSCRIPT); key and
 * args are copied, script and sha must live as long as the worker (at
 * most 8 args). Returns the op, whose handler is
 * called once, later (reply, or NULL after conf->timeout or when its
 * connection was lost with the command written), or NULL at once when
 * Redis is known to be down (the breaker is open) or on no memory.
 */
ngx_worksible_redis_op_t *ngx_worksible_redis_eval(
    ngx_worksible_redis_t *redis, const char *script, const char *sha,
    ngx_str_t *key, ngx_str_t *args, int nargs,
    ngx_worksible_redis_handler_pt handler, void *data);

/*
 * The command of op (from ngx_worksible_redis_eval()) may run twice with
 * the effect of once (a read, a PEXPIRE): if its connection is lost after it
 * was written and before its reply, it is sent again on the next connection,
 * within its timeout. Without this, such a command fails (reply NULL).
 */
void ngx_worksible_redis_allow_resend(ngx_worksible_redis_op_t *op);

/* the requester went away: the handler will not be called */
void ngx_worksible_redis_detach(ngx_worksible_redis_op_t *op);

/* 1 when the connection is up (its PING answered) and the breaker closed */
ngx_uint_t ngx_worksible_redis_up(ngx_worksible_redis_t *redis);

/* seconds until the next probe of a Redis that is down, at least 1 */
time_t ngx_worksible_redis_retry_after(ngx_worksible_redis_t *redis);

/*
 * sentinel=: the Sentinels named the primary. changed: another address
 * than before, connected to at once (the commands outstanding on the old
 * one are handled as for a lost connection, the breaker closed); else the
 * connection is made if none is up or pending (nor a probe due).
 */
void ngx_worksible_redis_primary(ngx_worksible_redis_t *redis,
    ngx_uint_t changed);

/* sentinel=: no Sentinel answered and no primary is known: Redis is down */
void ngx_worksible_redis_no_primary(ngx_worksible_redis_t *redis);

/*
 * For ngx_worksible_redis_cluster.c. ngx_worksible_redis_call(): the
 * command argv (argc <= NGX_WORKSIBLE_REDIS_MAX_ARGS, strings not copied:
 * static) on this connection, its handler called once within timeout ms;
 * NULL when the breaker is open or on no memory.
 * ngx_worksible_redis_resubmit(): op (of ngx_worksible_redis_eval()) goes
 * to this connection (a redirection), within its first timeout; NGX_DECLINED
 * when this one's breaker is open. ngx_worksible_redis_finish(): op's
 * requester gets no answer (if not told yet) and op is freed.
 * ngx_worksible_redis_broken(): 1 while the breaker is open.
 */
ngx_worksible_redis_op_t *ngx_worksible_redis_call(
    ngx_worksible_redis_t *redis, int argc, const char **argv,
    ngx_msec_t timeout, ngx_worksible_redis_handler_pt handler, void *data);
ngx_int_t ngx_worksible_redis_resubmit(ngx_worksible_redis_t *redis,
    ngx_worksible_redis_op_t *op);
void ngx_worksible_redis_finish(ngx_worksible_redis_op_t *op);
ngx_uint_t ngx_worksible_redis_broken(ngx_worksible_redis_t *redis);


#endif /* _NGX_WORKSIBLE_REDIS_H_INCLUDED_ */
