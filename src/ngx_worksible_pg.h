/*
 * A per-worker pool of non-blocking libpq connections on nginx's event loop.
 *
 * A query is an operation object (ngx_worksible_pg_op_t) that outlives the
 * request which started it: the request's cleanup detaches it. An op waits
 * in the queue at most query_timeout; sent, it runs until the server's
 * statement_timeout (query_timeout) ends it, the module giving up 1 s
 * later. A connection left mid-query by a detached or timed-out operation
 * drains: its reply is read and discarded and it goes back to the pool, or
 * it is closed 1 s later still. Background work (request-log batches,
 * last_used_at, rehashes) runs on at most half the connections (at least
 * one), always on one when it waits, else behind requests' queries.
 * Connections are made on demand with PQconnectStartParams to addresses
 * resolved when the configuration loaded; after a failed connect no new
 * attempt is made for a backoff (100 ms doubling to 2 s), during which
 * queries fail at once.
 */

#ifndef _NGX_WORKSIBLE_PG_H_INCLUDED_
#define _NGX_WORKSIBLE_PG_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <libpq-fe.h>

#include "ngx_worksible_metrics.h"


#define NGX_WORKSIBLE_PG_MAX_PARAMS  12

/* named statements a connection prepares, at most; others run unnamed */
#define NGX_WORKSIBLE_PG_MAX_PREPARED  32


typedef struct ngx_worksible_pg_pool_s  ngx_worksible_pg_pool_t;
typedef struct ngx_worksible_pg_op_s    ngx_worksible_pg_op_t;

typedef void (*ngx_worksible_pg_handler_pt)(ngx_worksible_pg_op_t *op);

/* a notification's payload, or NULL: some may have been missed */
typedef void (*ngx_worksible_pg_notify_pt)(void *data, const char *payload);


typedef enum {
    NGX_WORKSIBLE_PG_OK = 0,        /* op->result holds the first result */
    NGX_WORKSIBLE_PG_UNAVAILABLE,   /* no connection could be had */
    NGX_WORKSIBLE_PG_TIMEOUT,       /* query_timeout passed */
    NGX_WORKSIBLE_PG_FAILED         /* connection lost mid-query */
} ngx_worksible_pg_status_e;


/* from the worksible_postgres directive */
typedef struct {
    const char                **keywords;     /* NULL-terminated */
    const char                **values;
    ngx_str_t                   display;      /* host:port/dbname, for logs */
    ngx_uint_t                  size;         /* connections per worker */
    ngx_uint_t                  queue;        /* queries waiting, at most */
    ngx_msec_t                  connect_timeout;
    ngx_msec_t                  query_timeout;
    ngx_uint_t                  read_write;   /* target_session_attrs */
    ngx_uint_t                  naddrs;       /* in hostaddr, 1 or more */
    const char               ***rotations;    /* values, from address k */
    ngx_uint_t                  prepare;      /* named statements: 1 */
    /*
     * PgBouncer in transaction pooling: no "options" startup parameter, no
     * named statements, no LISTEN. Set by pgbouncer=on, or in a worker
     * when a connect is refused with "unsupported startup parameter".
     */
    ngx_uint_t                  pgbouncer;
    ngx_uint_t                  options;      /* keywords[] "options", last */
} ngx_worksible_pg_conf_t;


struct ngx_worksible_pg_op_s {
    ngx_queue_t                 queue;        /* in pool->waiting */
    ngx_worksible_pg_pool_t    *pool;
    void                       *conn;         /* running on, or NULL */
    ngx_pool_t                 *mem;          /* the op and its params */
    ngx_event_t                 timer;        /* query_timeout */

    const char                 *sql;
    /*
     * NULL, or a name for sql (static strings, both): with prepare=on the
     * connection prepares it once (PQsendPrepare) and runs it by name
     * (PQsendQueryPrepared) from then on; a failed prepare is the op's
     * result. The same name always goes with the same sql.
     */
    const char                 *name;
    int                         nparams;
    const char                 *values[NGX_WORKSIBLE_PG_MAX_PARAMS];

    /*
     * A COPY op (ngx_worksible_pg_op_copy): sql is a simple query (no
     * parameters, never prepared) holding one COPY ... FROM STDIN, which
     * gets copy as its data; result is the query's last result.
     */
    ngx_str_t                   copy;
    size_t                      copy_sent;

    ngx_worksible_pg_status_e   status;
    PGresult                   *result;       /* owned by the op */

    ngx_worksible_pg_handler_pt handler;
    void                       *data;         /* NULL once detached */

    /* not a request's: served after requests, on half the pool at most */
    unsigned                    background:1;
};


/*
 * Parses "CONNINFO [pool=N] [queue=N] [connect_timeout=TIME]
 * [query_timeout=TIME] [prepare=on|off] [pgbouncer=on|off]" (the
 * worksible_postgres directive) into conf;
 * resolves host names (one, or libpq's list "a,b" with a port each or one
 * for all) to hostaddr now, never on a request.
 * Returns NGX_CONF_OK or an error message for nginx -t.
 */
char *ngx_worksible_pg_conf_parse(ngx_conf_t *cf, ngx_str_t *args,
    ngx_uint_t nargs, ngx_worksible_pg_conf_t *conf);

/*
 * A pool for this worker (init_process) counting its calls in stats (shared
 * by all workers); NULL on out of memory.
 */
ngx_worksible_pg_pool_t *ngx_worksible_pg_pool_create(
    ngx_worksible_pg_conf_t *conf, ngx_cycle_t *cycle,
    ngx_worksible_store_stats_t *stats);

/* closes every connection (exit_process) */
void ngx_worksible_pg_pool_close(ngx_worksible_pg_pool_t *pool);

/*
 * An empty op whose memory comes from its own pool; NULL on out of memory.
 * Set sql, add parameters with ngx_worksible_pg_op_param, set handler and
 * data, then ngx_worksible_pg_op_start.
 */
ngx_worksible_pg_op_t *ngx_worksible_pg_op_create(
    ngx_worksible_pg_pool_t *pool);

/* appends a text parameter (copied), or SQL NULL when value is NULL */
ngx_int_t ngx_worksible_pg_op_param(ngx_worksible_pg_op_t *op,
    ngx_str_t *value);

/*
 * Queues op. Returns NGX_OK: op->handler will be called once, later, from
 * the event loop, and the op is freed when it returns. NGX_DECLINED:
 * PostgreSQL is unavailable right now (backoff); op is untouched and the
 * caller frees it with ngx_worksible_pg_op_free.
 */
ngx_int_t ngx_worksible_pg_op_start(ngx_worksible_pg_op_t *op);

/*
 * Makes op a COPY op: its sql, a simple query of one or more statements
 * (one implicit transaction) of which one is COPY ... FROM STDIN, gets
 * data (copied; COPY's text or CSV format, whole rows) once the server
 * asks for it, sent with PQputCopyData/PQputCopyEnd as the socket takes
 * it (the write event), never blocking. An op abandoned mid-COPY (detached,
 * query_timeout) ends it with PQputCopyEnd's error, or closes the
 * connection: either way the server rolls the transaction back. op->result
 * is the last result (an error ends the query). NGX_OK or NGX_ERROR (no
 * memory).
 */
ngx_int_t ngx_worksible_pg_op_copy(ngx_worksible_pg_op_t *op,
    ngx_str_t *data);

/*
 * The op's requester went away: the handler will never be called. A queued
 * op is dropped; a running one's connection drains (see above).
 */
void ngx_worksible_pg_op_detach(ngx_worksible_pg_op_t *op);

void ngx_worksible_pg_op_free(ngx_worksible_pg_op_t *op);

/*
 * Keeps pool's connection LISTENing on channel (PostgreSQL LISTEN/NOTIFY):
 * notify(data, payload) for each notification; notify(data, NULL) each
 * time the channel is listened to again after it was lost, since
 * notifications sent while it was down are lost (at start, the worker
 * that listened before, if any, kept listening until it exited). A lost connection is made again after 100 ms, then
 * every 2 s while PostgreSQL is away. Give it a pool of its own, of one
 * connection (init_process). NGX_OK or NGX_ERROR (no memory).
 */
ngx_int_t ngx_worksible_pg_listen(ngx_worksible_pg_pool_t *pool,
    const char *channel, ngx_worksible_pg_notify_pt notify, void *data);

/*
 * 1 when res failed for a reason that says "try again later, or
 * elsewhere" (SQLSTATE): a read-only server (25006, after a failover), a
 * shutdown (57P01, 57P02) or start-up (57P03), a serialization failure or
 * deadlock (40001, 40P01), a lock or statement timeout (55P03, 57014), too
 * many connections or other missing resources (class 53), a lost
 * connection (class 08). The API answers those 503 with Retry-After.
 */
ngx_uint_t ngx_worksible_pg_transient(PGresult *res);

/* the first line of a libpq message (they end with "\n"), for the log */
ngx_str_t ngx_worksible_pg_message(const char *msg);

/*
 * A new op on pool with op's sql, name and parameters (copied): the same
 * query elsewhere (a read a replica failed, run on the primary); NULL on
 * out of memory.
 */
ngx_worksible_pg_op_t *ngx_worksible_pg_op_clone(ngx_worksible_pg_op_t *op,
    ngx_worksible_pg_pool_t *pool);

/* 1 when a query may be sent now: a connection is alive, or no backoff */
ngx_uint_t ngx_worksible_pg_ready(ngx_worksible_pg_pool_t *pool);

/* seconds until a connection attempt is allowed again, at least 1 */
time_t ngx_worksible_pg_retry_after(ngx_worksible_pg_pool_t *pool);


#endif /* _NGX_WORKSIBLE_PG_H_INCLUDED_ */
