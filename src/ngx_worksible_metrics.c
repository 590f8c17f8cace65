/*
 * Shared counters and their exposition (see ngx_worksible_metrics.h).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_worksible_module.h"
#include "ngx_worksible_metrics.h"
#include "ngx_worksible_problem.h"


/*
 * the exposition's buffer: more than the text with every counter at its
 * widest (20 digits): 2246 bytes of text, 702 of JSON (t/fuzz/metrics_fuzz.c)
 */
#define NGX_WORKSIBLE_METRICS_MAX  4096


static ngx_int_t ngx_worksible_metrics_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_uint_t ngx_worksible_metrics_wants_json(ngx_http_request_t *r);


static const char  *ngx_worksible_outcomes[] = {
    "2xx", "3xx", "401", "403", "429", "4xx", "5xx"
};


ngx_int_t
ngx_worksible_metrics_zone(ngx_conf_t *cf, ngx_shm_zone_t **zone)
{
    static ngx_str_t  name = ngx_string("worksible_metrics");

    *zone = ngx_shared_memory_add(cf, &name, 8 * ngx_pagesize,
                                  &ngx_worksible_module);
    if (*zone == NULL) {
        return NGX_ERROR;
    }

    (*zone)->init = ngx_worksible_metrics_init_zone;

    return NGX_OK;
}


/* reload-safe: the counters of the running zone go on */

static ngx_int_t
ngx_worksible_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t  *shpool;

    if (data != NULL) {
        shm_zone->data = data;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        shm_zone->data = shpool->data;
        return NGX_OK;
    }

    shm_zone->data = ngx_slab_calloc(shpool, sizeof(ngx_worksible_metrics_t));
    if (shm_zone->data == NULL) {
        return NGX_ERROR;
    }

    shpool->data = shm_zone->data;

    return NGX_OK;
}


ngx_worksible_metrics_t *
ngx_worksible_metrics_get(ngx_shm_zone_t *zone)
{
    return zone ? zone->data : NULL;
}


ngx_int_t
ngx_worksible_metrics_log_handler(ngx_http_request_t *r)
{
    ngx_uint_t                  status, outcome;
    ngx_worksible_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_worksible_module);

    if (mcf->metrics == NULL || ngx_worksible_request_guarded(r) == NULL) {
        return NGX_OK;
    }

    status = ngx_worksible_request_status(r);

    switch (status) {
    case NGX_HTTP_UNAUTHORIZED:
        outcome = NGX_WORKSIBLE_OUTCOME_401;
        break;
    case NGX_HTTP_FORBIDDEN:
        outcome = NGX_WORKSIBLE_OUTCOME_403;
        break;
    case NGX_HTTP_TOO_MANY_REQUESTS:
        outcome = NGX_WORKSIBLE_OUTCOME_429;
        break;
    default:
        outcome = (status >= 500 || status == 0) ? NGX_WORKSIBLE_OUTCOME_5XX
                  : status >= 400 ? NGX_WORKSIBLE_OUTCOME_4XX
                  : status >= 300 ? NGX_WORKSIBLE_OUTCOME_3XX
                  : NGX_WORKSIBLE_OUTCOME_2XX;
    }

    (void) ngx_atomic_fetch_add(&mcf->metrics->requests[outcome], 1);

    return NGX_OK;
}


ngx_int_t
ngx_worksible_metrics_handler(ngx_http_request_t *r)
{
    u_char                       *p, *end, *body;
    ngx_int_t                     rc;
    ngx_str_t                     v;
    ngx_uint_t                    i, k, json;
    ngx_worksible_metrics_t      *m;
    ngx_worksible_main_conf_t    *mcf;
    ngx_worksible_store_stats_t  *st[2];

    static const char  *stores[] = { "postgres", "redis" };

    static const struct {
        const char  *name;
        const char  *help;
        size_t       offset;
    } counters[] = {
        { "calls", "Calls to a store.",
          offsetof(ngx_worksible_store_stats_t, calls) },
        { "errors", "Calls that failed or found the store down.",
          offsetof(ngx_worksible_store_stats_t, errors) },
        { "timeouts", "Calls past their timeout.",
          offsetof(ngx_worksible_store_stats_t, timeouts) }
    };

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_worksible_module);
    m = mcf->metrics;

    if (m == NULL) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    body = ngx_pnalloc(r->pool, NGX_WORKSIBLE_METRICS_MAX);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    end = body + NGX_WORKSIBLE_METRICS_MAX;

    st[0] = &m->postgres;
    st[1] = &m->redis;
    json = ngx_worksible_metrics_wants_json(r);
    p = body;

    if (json) {
        p = ngx_slprintf(p, end, "{\"requests_total\":{");

        for (i = 0; i < NGX_WORKSIBLE_OUTCOMES; i++) {
            p = ngx_slprintf(p, end,
                             "%s\"%s\":%uA", i ? "," : "",
                             ngx_worksible_outcomes[i], m->requests[i]);
        }

        p = ngx_slprintf(p, end,
                         "},\"key_cache_hits_total\":%uA,"
                         "\"key_cache_misses_total\":%uA",
                         m->key_cache_hits, m->key_cache_misses);

        for (i = 0; i < 2; i++) {
            p = ngx_slprintf(p, end,
                             ",\"%s\":{\"calls_total\":%uA,"
                             "\"errors_total\":%uA,\"timeouts_total\":%uA,"
                             "\"connections\":%uA}",
                             stores[i], st[i]->calls, st[i]->errors,
                             st[i]->timeouts, st[i]->connections);
        }

        p = ngx_slprintf(p, end,
                         ",\"log_rows_written_total\":%uA,"
                         "\"log_rows_dropped_total\":%uA}",
                         m->log_rows_written, m->log_rows_dropped);

    } else {
        p = ngx_slprintf(p, end,
                         "# HELP worksible_requests_total Requests of "
                         "worksible_auth locations, by outcome.\n"
                         "# TYPE worksible_requests_total counter\n");

        for (i = 0; i < NGX_WORKSIBLE_OUTCOMES; i++) {
            p = ngx_slprintf(p, end,
                             "worksible_requests_total{outcome=\"%s\"} "
                             "%uA\n", ngx_worksible_outcomes[i],
                             m->requests[i]);
        }

        p = ngx_slprintf(p, end,
                         "# HELP worksible_key_cache_hits_total Keys "
                         "found in the key cache.\n"
                         "# TYPE worksible_key_cache_hits_total counter\n"
                         "worksible_key_cache_hits_total %uA\n"
                         "# HELP worksible_key_cache_misses_total Keys looked "
                         "up in PostgreSQL.\n"
                         "# TYPE worksible_key_cache_misses_total counter\n"
                         "worksible_key_cache_misses_total %uA\n",
                         m->key_cache_hits, m->key_cache_misses);

        p = ngx_slprintf(p, end,
                         "# HELP worksible_log_rows_written_total Request "
                         "log rows PostgreSQL took.\n"
                         "# TYPE worksible_log_rows_written_total counter\n"
                         "worksible_log_rows_written_total %uA\n"
                         "# HELP worksible_log_rows_dropped_total Request log "
                         "rows lost (PostgreSQL down or slow, batch full).\n"
                         "# TYPE worksible_log_rows_dropped_total counter\n"
                         "worksible_log_rows_dropped_total %uA\n",
                         m->log_rows_written, m->log_rows_dropped);

        p = ngx_slprintf(p, end,
                         "# HELP worksible_store_connections Open "
                         "connections of all workers to a store.\n"
                         "# TYPE worksible_store_connections gauge\n");

        for (i = 0; i < 2; i++) {
            p = ngx_slprintf(p, end,
                             "worksible_store_connections{store=\"%s\"} "
                             "%uA\n", stores[i], st[i]->connections);
        }

        for (k = 0; k < 3; k++) {
            p = ngx_slprintf(p, end,
                             "# HELP worksible_store_%s_total %s\n"
                             "# TYPE worksible_store_%s_total counter\n",
                             counters[k].name, counters[k].help,
                             counters[k].name);

            for (i = 0; i < 2; i++) {
                p = ngx_slprintf(p, end,
                                 "worksible_store_%s_total{store=\"%s\"} "
                                 "%uA\n", counters[k].name, stores[i],
                                 *(ngx_atomic_t *) ((u_char *) st[i]
                                                    + counters[k].offset));
            }
        }
    }

    if (p == end) {
        /* every counter at its widest still fits: never truncate */
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "worksible_metrics: the exposition does not fit in "
                      "%uz bytes", (size_t) NGX_WORKSIBLE_METRICS_MAX);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_str_set(&v, "no-store");

    if (ngx_worksible_header_add(r, "Cache-Control", &v) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (!json) {
        ngx_str_set(&r->headers_out.content_type,
                    "text/plain; version=0.0.4; charset=utf-8");
        r->headers_out.content_type_len = sizeof("text/plain") - 1;
    }

    return ngx_worksible_json_send(r, NGX_HTTP_OK, body, p - body);
}


/* 1 when the Accept header asks for application/json */

static ngx_uint_t
ngx_worksible_metrics_wants_json(ngx_http_request_t *r)
{
    ngx_table_elt_t  *h;

    h = ngx_worksible_header_find(&r->headers_in.headers, "Accept", NULL);

    return h != NULL
           && ngx_strlcasestrn(h->value.data, h->value.data + h->value.len,
                               (u_char *) "application/json", 16 - 1)
              != NULL;
}
