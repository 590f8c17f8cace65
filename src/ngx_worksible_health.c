/*
 * Health for load balancers (see ngx_worksible_health.h).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_worksible_module.h"
#include "ngx_worksible_health.h"
#include "ngx_worksible_problem.h"


static ngx_int_t ngx_worksible_health_answered(ngx_http_request_t *r,
    ngx_worksible_pg_op_t *op);
static ngx_int_t ngx_worksible_health_send(ngx_http_request_t *r,
    const char *postgres);


ngx_int_t
ngx_worksible_health_handler(ngx_http_request_t *r)
{
    ngx_int_t                   rc;
    ngx_worksible_pg_op_t      *op;
    ngx_worksible_main_conf_t  *mcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_worksible_module);

    if (mcf->pg_pool == NULL) {
        return ngx_worksible_health_send(r, "not configured");
    }

    op = ngx_worksible_pg_op_create(mcf->pg_pool);
    if (op == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    op->sql = "SELECT 1";

    rc = ngx_worksible_pg_respond(r, op, ngx_worksible_health_answered);

    if (rc == NGX_DECLINED) {
        return ngx_worksible_health_send(r, "down");
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->main->count++;
    r->read_event_handler = ngx_http_test_reading;

    return NGX_DONE;
}


static ngx_int_t
ngx_worksible_health_answered(ngx_http_request_t *r,
    ngx_worksible_pg_op_t *op)
{
    return ngx_worksible_health_send(r,
                 (op->status == NGX_WORKSIBLE_PG_OK
                  && PQresultStatus(op->result) == PGRES_TUPLES_OK)
                 ? "up" : "down");
}


static ngx_int_t
ngx_worksible_health_send(ngx_http_request_t *r, const char *postgres)
{
    u_char                     *body;
    size_t                      len;
    ngx_str_t                   v;
    const char                 *redis;
    ngx_uint_t                  ok;
    ngx_worksible_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_worksible_module);

    redis = (mcf->redis == NULL) ? "not configured"
            : ngx_worksible_redis_up(mcf->redis) ? "up" : "down";

    ok = ngx_strcmp(postgres, "down") != 0 && ngx_strcmp(redis, "down") != 0;

    len = sizeof("{\"status\":\"unavailable\",\"postgres\":\"\","
                 "\"redis\":\"\"}") + 2 * sizeof("not configured");

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    len = ngx_sprintf(body, "{\"status\":\"%s\",\"postgres\":\"%s\","
                      "\"redis\":\"%s\"}", ok ? "ok" : "unavailable",
                      postgres, redis)
          - body;

    ngx_str_set(&v, "no-store");

    if (ngx_worksible_header_add(r, "Cache-Control", &v) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_worksible_json_send(r, ok ? NGX_HTTP_OK
                                         : NGX_HTTP_SERVICE_UNAVAILABLE,
                                   body, len);
}
