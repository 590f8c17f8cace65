/*
 * Read replicas (see ngx_worksible_replica.h).
 *
 * Each worker measures each replica's lag every check= from a timer, with
 * one query on the replica's own pool; a request only reads the last
 * measure. The lag is 0 on a standby whose WAL receiver runs and has
 * replayed all it received, else the age of the last transaction it
 * replayed (pg_last_xact_replay_timestamp): a paused or slow replay, or a
 * lost primary, ages it. A server that is not in recovery (promoted), that
 * does not answer, or whose last measure is older than 2 x check +
 * query_timeout, is not read from.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_worksible_module.h"
#include "ngx_worksible_replica.h"


#define NGX_WORKSIBLE_REPLICA_MAX  8

#define NGX_WORKSIBLE_REPLICA_LAG_SQL                                        \
    "SELECT pg_is_in_recovery(), CASE"                                       \
    " WHEN NOT pg_is_in_recovery() THEN 0"                                   \
    " WHEN EXISTS (SELECT 1 FROM pg_stat_wal_receiver)"                      \
    " AND pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0"       \
    " ELSE coalesce((extract(epoch FROM clock_timestamp()"                   \
    " - pg_last_xact_replay_timestamp()) * 1000)::bigint, -1) END"


typedef enum {
    NGX_WORKSIBLE_REPLICA_UNKNOWN = 0,
    NGX_WORKSIBLE_REPLICA_STANDBY,        /* measured */
    NGX_WORKSIBLE_REPLICA_PRIMARY,        /* not in recovery */
    NGX_WORKSIBLE_REPLICA_DOWN            /* the check failed */
} ngx_worksible_replica_state_e;


typedef struct {
    ngx_worksible_pg_conf_t        pg;
    ngx_msec_t                     check;     /* lag measured every, ms */

    /* this worker's */
    ngx_worksible_pg_pool_t       *pool;
    ngx_event_t                    timer;
    ngx_uint_t                     checking;  /* a measure in flight */
    ngx_worksible_replica_state_e  state;
    ngx_msec_t                     lag;       /* ms, NGX_MAX_INT32_VALUE:
                                                 unknown */
    ngx_msec_t                     checked;   /* ngx_current_msec */
    ngx_log_t                     *log;
} ngx_worksible_replica_t;


static void ngx_worksible_replica_check(ngx_event_t *ev);
static void ngx_worksible_replica_checked(ngx_worksible_pg_op_t *op);


char *
ngx_worksible_replica_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_worksible_main_conf_t  *mcf = conf;

    ngx_str_t                 *value, *args, s;
    ngx_int_t                  n;
    ngx_uint_t                 i, nargs;
    ngx_worksible_replica_t   *rep;

    if (mcf->replicas == NULL) {
        mcf->replicas = ngx_array_create(cf->pool, 1,
                                         sizeof(ngx_worksible_replica_t));
        if (mcf->replicas == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    if (mcf->replicas->nelts == NGX_WORKSIBLE_REPLICA_MAX) {
        return "is given more than 8 times";
    }

    rep = ngx_array_push(mcf->replicas);
    if (rep == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(rep, sizeof(ngx_worksible_replica_t));
    rep->check = 1000;

    value = cf->args->elts;

    /* the arguments of worksible_postgres, check= taken out */

    args = ngx_palloc(cf->pool, cf->args->nelts * sizeof(ngx_str_t));
    if (args == NULL) {
        return NGX_CONF_ERROR;
    }

    nargs = 0;

    for (i = 1; i < cf->args->nelts; i++) {
        if (i > 1 && ngx_strncmp(value[i].data, "check=", 6) == 0) {
            s.data = value[i].data + 6;
            s.len = value[i].len - 6;
            n = ngx_parse_time(&s, 0);
            if (n == NGX_ERROR || n == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid worksible_postgres_replica "
                                   "parameter \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }
            rep->check = n;
            continue;
        }

        args[nargs++] = value[i];
    }

    return ngx_worksible_pg_conf_parse(cf, args, nargs, &rep->pg);
}


char *
ngx_worksible_read_replica(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_worksible_loc_conf_t  *lcf = conf;

    ngx_str_t  *value, s;
    ngx_int_t   n;
    ngx_uint_t  i;

    if (lcf->read_replica != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;
    i = 1;

    if (ngx_strcmp(value[1].data, "off") == 0 && cf->args->nelts == 2) {
        lcf->read_replica = 0;
        return NGX_CONF_OK;
    }

    if (ngx_strcmp(value[1].data, "on") != 0) {
        goto invalid;
    }

    lcf->read_replica = 1;

    for (i = 2; i < cf->args->nelts; i++) {
        if (ngx_strncmp(value[i].data, "max_lag=", 8) != 0) {
            goto invalid;
        }

        s.data = value[i].data + 8;
        s.len = value[i].len - 8;
        n = ngx_parse_time(&s, 0);
        if (n == NGX_ERROR) {
            goto invalid;
        }

        lcf->replica_max_lag = n;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid worksible_read_replica \"%V\" "
                       "(off, or on [max_lag=TIME])", &value[i]);

    return NGX_CONF_ERROR;
}


ngx_int_t
ngx_worksible_replica_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                  i;
    ngx_worksible_replica_t    *rep;
    ngx_worksible_main_conf_t  *mcf;

    mcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_worksible_module);

    if (mcf == NULL || mcf->replicas == NULL) {
        return NGX_OK;
    }

    rep = mcf->replicas->elts;

    for (i = 0; i < mcf->replicas->nelts; i++) {
        rep[i].pool = ngx_worksible_pg_pool_create(&rep[i].pg, cycle,
                                                   &mcf->metrics->postgres);
        if (rep[i].pool == NULL) {
            return NGX_ERROR;
        }

        rep[i].log = cycle->log;
        rep[i].lag = NGX_MAX_INT32_VALUE;
        rep[i].timer.handler = ngx_worksible_replica_check;
        rep[i].timer.data = &rep[i];
        rep[i].timer.log = cycle->log;
        rep[i].timer.cancelable = 1;

        ngx_worksible_replica_check(&rep[i].timer);
    }

    return NGX_OK;
}


void
ngx_worksible_replica_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                  i;
    ngx_worksible_replica_t    *rep;
    ngx_worksible_main_conf_t  *mcf;

    mcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_worksible_module);

    if (mcf == NULL || mcf->replicas == NULL) {
        return;
    }

    rep = mcf->replicas->elts;

    for (i = 0; i < mcf->replicas->nelts; i++) {
        if (rep[i].timer.timer_set) {
            ngx_del_timer(&rep[i].timer);
        }

        if (rep[i].pool != NULL) {
            ngx_worksible_pg_pool_close(rep[i].pool);
        }
    }
}


/* every check: one measure, unless the last one is still out */

static void
ngx_worksible_replica_check(ngx_event_t *ev)
{
    ngx_worksible_pg_op_t    *op;
    ngx_worksible_replica_t  *rep;

    rep = ev->data;

    if (!rep->checking) {
        op = ngx_worksible_pg_op_create(rep->pool);

        if (op != NULL) {
            op->sql = NGX_WORKSIBLE_REPLICA_LAG_SQL;
            op->handler = ngx_worksible_replica_checked;
            op->data = rep;

            if (ngx_worksible_pg_op_start(op) == NGX_OK) {
                rep->checking = 1;

            } else {
                ngx_worksible_pg_op_free(op);
                op = NULL;
            }
        }

        if (op == NULL && rep->state != NGX_WORKSIBLE_REPLICA_DOWN) {
            ngx_log_error(NGX_LOG_WARN, rep->log, 0,
                          "worksible replica %V unavailable: reads go to "
                          "the primary", &rep->pg.display);
            rep->state = NGX_WORKSIBLE_REPLICA_DOWN;
        }
    }

    ngx_add_timer(&rep->timer, rep->check);
}


static void
ngx_worksible_replica_checked(ngx_worksible_pg_op_t *op)
{
    ngx_str_t                      msg;
    ngx_int_t                      lag;
    PGresult                      *res;
    ngx_worksible_replica_t       *rep;
    ngx_worksible_replica_state_e  state;

    rep = op->data;
    res = op->result;
    rep->checking = 0;

    if (op->status != NGX_WORKSIBLE_PG_OK
        || PQresultStatus(res) != PGRES_TUPLES_OK
        || PQntuples(res) != 1)
    {
        if (rep->state != NGX_WORKSIBLE_REPLICA_DOWN) {
            msg = ngx_worksible_pg_message(res ? PQresultErrorMessage(res)
                                               : "no connection");
            ngx_log_error(NGX_LOG_WARN, rep->log, 0,
                          "worksible replica %V unavailable: reads go to "
                          "the primary (%V)", &rep->pg.display, &msg);
        }

        rep->state = NGX_WORKSIBLE_REPLICA_DOWN;
        return;
    }

    state = (PQgetvalue(res, 0, 0)[0] == 't') ? NGX_WORKSIBLE_REPLICA_STANDBY
                                              : NGX_WORKSIBLE_REPLICA_PRIMARY;

    if (state == NGX_WORKSIBLE_REPLICA_PRIMARY) {
        if (rep->state != state) {
            ngx_log_error(NGX_LOG_WARN, rep->log, 0,
                          "worksible replica %V is not in recovery "
                          "(promoted?): reads go to the primary",
                          &rep->pg.display);
        }

        rep->state = state;
        return;
    }

    lag = ngx_atoi((u_char *) PQgetvalue(res, 0, 1),
                   PQgetlength(res, 0, 1));

    if (rep->state != state) {
        ngx_log_error(NGX_LOG_NOTICE, rep->log, 0,
                      "worksible replica %V is a standby, %i ms behind",
                      &rep->pg.display, lag);
    }

    rep->state = state;
    rep->lag = (lag == NGX_ERROR) ? NGX_MAX_INT32_VALUE : (ngx_msec_t) lag;
    rep->checked = ngx_current_msec;
}


ngx_worksible_pg_pool_t *
ngx_worksible_replica_pool(ngx_http_request_t *r)
{
    ngx_uint_t                  i, k, n;
    ngx_worksible_replica_t    *rep;
    ngx_worksible_loc_conf_t   *lcf;
    ngx_worksible_main_conf_t  *mcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_worksible_module);

    if (!lcf->read_replica
        || !(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD)))
    {
        return NULL;
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_worksible_module);

    rep = mcf->replicas->elts;
    n = mcf->replicas->nelts;

    for (i = 0; i < n; i++) {
        k = (mcf->replica_next + i) % n;

        if (rep[k].state != NGX_WORKSIBLE_REPLICA_STANDBY
            || rep[k].lag > lcf->replica_max_lag
            || ngx_current_msec - rep[k].checked
               > 2 * rep[k].check + rep[k].pg.query_timeout
            || !ngx_worksible_pg_ready(rep[k].pool))
        {
            continue;
        }

        mcf->replica_next = k + 1;

        return rep[k].pool;
    }

    return NULL;
}
