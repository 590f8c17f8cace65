/*
 * ngx_worksible_module: the Worksible API edge inside nginx.
 *
 * Directives, configuration, phase and filter registration, and the
 * per-worker store pools. The concerns live in src/ (see
 * src/ngx_worksible_module.h for the map).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>
#include <sodium.h>

#include "ngx_worksible_module.h"
#include "ngx_worksible_api.h"
#include "ngx_worksible_auth.h"
#include "ngx_worksible_health.h"
#include "ngx_worksible_metrics.h"
#include "ngx_worksible_reqlog.h"
#include "ngx_worksible_throttle.h"


/* a content handler directive where one is set: itself, proxy_pass... */
#define NGX_WORKSIBLE_HANDLER_SET                                           \
    "is duplicate, or follows another content handler (proxy_pass...) "     \
    "in this location"


static void *ngx_worksible_create_main_conf(ngx_conf_t *cf);
static char *ngx_worksible_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_worksible_create_loc_conf(ngx_conf_t *cf);
static char *ngx_worksible_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_worksible_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_worksible_postconfiguration(ngx_conf_t *cf);
static char *ngx_worksible_postgres(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_worksible_key_secret_file(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_worksible_key_cache(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_worksible_auth_failures_zone(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_worksible_redis(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_worksible_rate_limit(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_worksible_scope(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_worksible_deprecation(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_worksible_idempotency(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_worksible_api(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_worksible_cors(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_worksible_health(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_worksible_metrics(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_worksible_init_module(ngx_cycle_t *cycle);
static ngx_int_t ngx_worksible_init_process(ngx_cycle_t *cycle);
static void ngx_worksible_exit_process(ngx_cycle_t *cycle);


static ngx_command_t  ngx_worksible_commands[] = {

    /*
     * worksible_postgres CONNINFO [pool=N] [queue=N] [connect_timeout=TIME]
     *     [query_timeout=TIME];
     * context: http. CONNINFO is passed to libpq (sslmode, password...).
     */
    { ngx_string("worksible_postgres"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_worksible_postgres,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    /*
     * worksible_postgres_replica CONNINFO [check=TIME] [pool=N] ...;
     * context: http, up to 8. A streaming replica for the locations with
     * worksible_read_replica on (ngx_worksible_replica.h).
     */
    { ngx_string("worksible_postgres_replica"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_worksible_replica_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    /*
     * worksible_read_replica off | on [max_lag=TIME]; default off, max_lag
     * 1s; context: http, server, location. GETs of worksible_api on a
     * replica at most max_lag behind, else on the primary.
     */
    { ngx_string("worksible_read_replica"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_worksible_read_replica,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    /*
     * worksible_key_secret_file FILE;  context: http. Lines of
     * "VERSION:HEX" (the current secret first), or one bare 64-hex line
     * (version 1); read when the configuration loads.
     */
    { ngx_string("worksible_key_secret_file"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_worksible_key_secret_file,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    /*
     * worksible_key_cache zone=NAME:SIZE [ttl=TIME] [negative_ttl=TIME];
     * context: http. Default: no cache, every request asks PostgreSQL.
     */
    { ngx_string("worksible_key_cache"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_worksible_key_cache,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    /*
     * worksible_auth_failures zone=NAME:SIZE [rate=N/m|N/s] [burst=N];
     * context: http. Default: none. A client address whose failed
     * authentications (401) exceed burst beyond rate (default 60/m, 30)
     * gets 429 before any key lookup.
     */
    { ngx_string("worksible_auth_failures"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_worksible_auth_failures_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    /*
     * worksible_redis ADDRESS [ADDRESS ...] [cluster | sentinel=MASTER_NAME
     *     [sentinel_password_file=FILE]] [password_file=FILE] [db=N]
     *     [timeout=TIME] [connect_timeout=TIME];  context: http
     */
    { ngx_string("worksible_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_worksible_redis,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    /*
     * worksible_rate_limit on|off [fail=open|closed];  default off
     * (fail=closed); context: http, server, location
     */
    { ngx_string("worksible_rate_limit"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_worksible_rate_limit,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    /* worksible_auth on|off;  default off; context: http, server, location */
    { ngx_string("worksible_auth"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_worksible_loc_conf_t, auth),
      NULL },

    /*
     * worksible_errors on|off;  default off; context: http, server,
     * location. nginx's own error pages (400 for a malformed request, 413,
     * 414, 502...) become RFC 9457 problems with X-Request-Id.
     */
    { ngx_string("worksible_errors"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_worksible_loc_conf_t, errors),
      NULL },

    /*
     * worksible_scope SCOPE...;  context: http, server, location. Every
     * listed "resource:read|write" scope is required ("write" implies
     * "read").
     */
    { ngx_string("worksible_scope"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_worksible_scope,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    /*
     * worksible_deprecation DATE [sunset=DATE] [link=URL] [gone];
     * context: http, server, location
     */
    { ngx_string("worksible_deprecation"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_worksible_deprecation,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    /*
     * worksible_idempotency on|off|required [ttl=TIME] [lock=TIME]
     *     [max_size=SIZE];  default off; context: http, server, location
     */
    { ngx_string("worksible_idempotency"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_worksible_idempotency,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    /*
     * worksible_health;  context: location. 200 or 503 with the state of
     * this worker's PostgreSQL and Redis, for load balancers.
     */
    { ngx_string("worksible_health"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_worksible_health,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    /*
     * worksible_metrics;  context: location. The module's counters of all
     * workers, Prometheus text format (JSON with Accept: application/json).
     */
    { ngx_string("worksible_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_worksible_metrics,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    /*
     * worksible_cors off | ORIGIN... [max_age=TIME];  default off;
     * context: http, server, location. See ngx_worksible_cors_conf().
     */
    { ngx_string("worksible_cors"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_worksible_cors,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    /* worksible_api;  context: location. The REST API's content handler. */
    { ngx_string("worksible_api"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_worksible_api,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


/*
 * $worksible_request_id (req_...), and once the key is verified
 * $worksible_company_id, $worksible_api_key_id, $worksible_plan and
 * $worksible_scopes (space-separated); not found otherwise.
 */
static ngx_http_variable_t  ngx_worksible_vars[] = {

    { ngx_string("worksible_request_id"), NULL,
      ngx_worksible_request_id_variable, 0, 0, 0 },

    { ngx_string("worksible_company_id"), NULL, ngx_worksible_identity_variable,
      offsetof(ngx_worksible_identity_t, company_id),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("worksible_api_key_id"), NULL, ngx_worksible_identity_variable,
      offsetof(ngx_worksible_identity_t, api_key_id),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("worksible_plan"), NULL, ngx_worksible_identity_variable,
      offsetof(ngx_worksible_identity_t, plan),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("worksible_scopes"), NULL, ngx_worksible_identity_variable,
      offsetof(ngx_worksible_identity_t, scopes),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_http_module_t  ngx_worksible_module_ctx = {
    ngx_worksible_preconfiguration,        /* preconfiguration */
    ngx_worksible_postconfiguration,       /* postconfiguration */

    ngx_worksible_create_main_conf,        /* create main configuration */
    ngx_worksible_init_main_conf,          /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_worksible_create_loc_conf,         /* create location configuration */
    ngx_worksible_merge_loc_conf           /* merge location configuration */
};


ngx_module_t  ngx_worksible_module = {
    NGX_MODULE_V1,
    &ngx_worksible_module_ctx,             /* module context */
    ngx_worksible_commands,                /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    ngx_worksible_init_module,             /* init module */
    ngx_worksible_init_process,            /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_worksible_exit_process,            /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static void *
ngx_worksible_create_main_conf(ngx_conf_t *cf)
{
    ngx_worksible_main_conf_t  *mcf;

    mcf = ngx_pcalloc(cf->pool, sizeof(ngx_worksible_main_conf_t));
    if (mcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     mcf->pg = NULL;
     *     mcf->pg_pool = NULL;
     *     mcf->nsecrets = 0;
     *     mcf->key_cache = NULL;
     */

    return mcf;
}


static char *
ngx_worksible_init_main_conf(ngx_conf_t *cf, void *conf)
{
    return NGX_CONF_OK;
}


static void *
ngx_worksible_create_loc_conf(ngx_conf_t *cf)
{
    ngx_worksible_loc_conf_t  *lcf;

    lcf = ngx_pcalloc(cf->pool, sizeof(ngx_worksible_loc_conf_t));
    if (lcf == NULL) {
        return NULL;
    }

    lcf->auth = NGX_CONF_UNSET;
    lcf->api = NGX_CONF_UNSET;
    lcf->errors = NGX_CONF_UNSET;
    lcf->rate_limit = NGX_CONF_UNSET;
    lcf->rate_limit_open = NGX_CONF_UNSET;
    lcf->scopes = NGX_CONF_UNSET_PTR;
    lcf->deprecation = NGX_CONF_UNSET_PTR;
    lcf->idempotency.mode = NGX_CONF_UNSET_UINT;
    lcf->idempotency.ttl = NGX_CONF_UNSET;
    lcf->idempotency.lock = NGX_CONF_UNSET_MSEC;
    lcf->idempotency.max_size = NGX_CONF_UNSET_SIZE;
    lcf->cors = NGX_CONF_UNSET_PTR;
    lcf->read_replica = NGX_CONF_UNSET;
    lcf->replica_max_lag = NGX_CONF_UNSET_MSEC;

    return lcf;
}


static char *
ngx_worksible_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_worksible_loc_conf_t  *prev = parent;
    ngx_worksible_loc_conf_t  *conf = child;

    ngx_flag_t                  own_scopes, own_idempotency, in_location;
    ngx_worksible_main_conf_t  *mcf;
    ngx_http_core_loc_conf_t   *clcf;
    ngx_http_core_srv_conf_t   *cscf;

    /*
     * worksible_api belongs to its own location, like a content handler,
     * and to the unnamed blocks inside it that set no handler of their own,
     * limit_except and if: nginx serves a request with the block's
     * configuration, takes a limit_except block's handler (as proxy_pass's
     * merge sets it), and keeps the location's for an if block. Without
     * them, POST or PATCH under limit_except went to the static module
     * (404, 405), and under an if a key lacking the endpoint's scope got
     * the replay of another key's write (the check before a replay).
     */

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (conf->api == NGX_CONF_UNSET && clcf->noname && prev->api == 1
        && clcf->handler == NULL)
    {
        conf->api = 1;
        clcf->handler = ngx_worksible_api_handler;
    }

    if (conf->api == NGX_CONF_UNSET) {
        conf->api = 0;
    }

    /* proxy_pass (or another handler) beside it would silently win or lose */

    if (conf->api && clcf->handler != ngx_worksible_api_handler) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"worksible_api\" and another content handler "
                           "(proxy_pass...) in one location");
        return NGX_CONF_ERROR;
    }

    if (conf->api) {
        if (conf->auth == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"worksible_api\" needs \"worksible_auth on\" "
                               "in its location");
            return NGX_CONF_ERROR;
        }

        conf->auth = 1;
    }

    /*
     * set in this location, not inherited: see the checks of !conf->auth;
     * one set in server{}, like one in http{}, is for the locations below
     * it, checked in those with worksible_auth on
     */

    cscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_core_module);
    in_location = (cscf->ctx->loc_conf[ngx_worksible_module.ctx_index]
                   != conf);

    own_scopes = in_location && (conf->scopes != NGX_CONF_UNSET_PTR);
    own_idempotency = in_location
                      && (conf->idempotency.mode != NGX_CONF_UNSET_UINT);

    ngx_conf_merge_value(conf->auth, prev->auth, 0);
    ngx_conf_merge_value(conf->errors, prev->errors, 0);
    ngx_conf_merge_value(conf->rate_limit, prev->rate_limit, 0);
    ngx_conf_merge_value(conf->rate_limit_open, prev->rate_limit_open, 0);
    ngx_conf_merge_ptr_value(conf->scopes, prev->scopes, NULL);
    ngx_conf_merge_ptr_value(conf->deprecation, prev->deprecation, NULL);
    ngx_conf_merge_ptr_value(conf->cors, prev->cors, NULL);

    if (conf->read_replica == NGX_CONF_UNSET) {
        conf->read_replica = prev->read_replica;
        conf->replica_max_lag = prev->replica_max_lag;
    }

    if (conf->read_replica == NGX_CONF_UNSET) {
        conf->read_replica = 0;
    }

    if (conf->replica_max_lag == NGX_CONF_UNSET_MSEC) {
        conf->replica_max_lag = 1000;
    }

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_worksible_module);

    if (conf->read_replica && mcf->replicas == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"worksible_read_replica on\" needs "
                           "\"worksible_postgres_replica\" in http{}");
        return NGX_CONF_ERROR;
    }

    /*
     * a worksible_idempotency replaces the inherited one whole, like
     * worksible_read_replica: the parameters it leaves out take their
     * defaults, not the outer level's ttl=, lock= or max_size=
     */

    if (conf->idempotency.mode == NGX_CONF_UNSET_UINT) {
        conf->idempotency = prev->idempotency;
    }

    ngx_conf_init_uint_value(conf->idempotency.mode,
                             NGX_WORKSIBLE_IDEMPOTENCY_OFF);
    ngx_conf_init_value(conf->idempotency.ttl, 86400);
    ngx_conf_init_msec_value(conf->idempotency.lock, 10000);
    ngx_conf_init_size_value(conf->idempotency.max_size, 1024 * 1024);

    if (!conf->auth) {

        /*
         * a scope that nothing checks would guard nothing; one inherited
         * by a location with worksible_auth off is inert (so is an
         * inherited worksible_idempotency: a request no key passed is
         * never reserved), so that "location = /health { worksible_auth
         * off; }" needs nothing more under a guarded server
         */

        if (own_scopes && conf->scopes != NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"worksible_scope\" needs "
                               "\"worksible_auth on\" in its location");
            return NGX_CONF_ERROR;
        }

        /* keys are scoped to the company: no key, no company */

        if (own_idempotency
            && conf->idempotency.mode != NGX_WORKSIBLE_IDEMPOTENCY_OFF)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"worksible_idempotency\" needs "
                               "\"worksible_auth on\" in its location");
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_worksible_module);

    if (mcf->pg == NULL || mcf->nsecrets == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"worksible_auth\" needs \"worksible_postgres\" "
                           "and \"worksible_key_secret_file\" in http{}");
        return NGX_CONF_ERROR;
    }

    if (conf->rate_limit && mcf->redis_conf == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"worksible_rate_limit\" needs "
                           "\"worksible_redis\" in http{}");
        return NGX_CONF_ERROR;
    }

    if (conf->idempotency.mode != NGX_WORKSIBLE_IDEMPOTENCY_OFF
        && mcf->redis_conf == NULL)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"worksible_idempotency\" needs "
                           "\"worksible_redis\" in http{}");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_worksible_preconfiguration(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_worksible_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_worksible_postconfiguration(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;
    ngx_worksible_main_conf_t  *mcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_worksible_access_handler;

    /*
     * before the rewrite module's (handlers of a phase run last added
     * first): a subrequest to a guarded location answered by "return"
     */

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_REWRITE_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_worksible_rewrite_handler;

    /* after every access check: a refusal is never reserved or replayed */

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PRECONTENT_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_worksible_precontent_handler;

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_worksible_metrics_log_handler;

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_worksible_reqlog_handler;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_worksible_module);
    ngx_worksible_ratelimit_sha(mcf->ratelimit_sha);
    ngx_worksible_idempotency_sha(mcf->idempotency_sha);

    if (ngx_worksible_metrics_zone(cf, &mcf->metrics_zone) != NGX_OK) {
        return NGX_ERROR;
    }

    /* the capture must see the problem filters' output: below them */

    if (ngx_worksible_idempotency_filter_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_worksible_cors_filter_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_worksible_request_body_filter_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_worksible_headers_filter_init(cf);
}


/* worksible_postgres: see ngx_worksible_pg_conf_parse() */

static char *
ngx_worksible_postgres(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_worksible_main_conf_t  *mcf = conf;

    ngx_str_t  *value;

    if (mcf->pg != NULL) {
        return "is duplicate";
    }

    mcf->pg = ngx_pcalloc(cf->pool, sizeof(ngx_worksible_pg_conf_t));
    if (mcf->pg == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    return ngx_worksible_pg_conf_parse(cf, &value[1], cf->args->nelts - 1,
                                       mcf->pg);
}


ssize_t
ngx_worksible_conf_read_file(ngx_conf_t *cf, ngx_str_t *name, u_char *buf,
    size_t size)
{
    ssize_t     n;
    ngx_file_t  file;

    if (ngx_conf_full_name(cf->cycle, name, 1) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));
    file.name = *name;
    file.log = cf->log;

    file.fd = ngx_open_file(name->data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (file.fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%V\" failed", name);
        return NGX_ERROR;
    }

    n = ngx_read_file(&file, buf, size, 0);

    if (ngx_close_file(file.fd) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, cf->log, ngx_errno,
                      ngx_close_file_n " \"%V\" failed", name);
    }

    return n == NGX_ERROR ? 0 : n;
}


/*
 * worksible_key_secret_file: the server secrets that key the BLAKE2b hashes
 * of API keys (see ngx_worksible_server_secrets_parse), read once here:
 * the workers never open the file.
 */

static char *
ngx_worksible_key_secret_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_worksible_main_conf_t  *mcf = conf;

    int         n;
    ssize_t     size;
    ngx_str_t  *value, name;
    u_char      buf[1024];

    if (mcf->nsecrets != 0) {
        return "is duplicate";
    }

    value = cf->args->elts;
    name = value[1];

    size = ngx_worksible_conf_read_file(cf, &name, buf, sizeof(buf));
    if (size == NGX_ERROR) {
        return NGX_CONF_ERROR;
    }

    n = -1;

    if (size < (ssize_t) sizeof(buf)) {
        n = ngx_worksible_server_secrets_parse(buf, size, mcf->secrets,
                                           NGX_WORKSIBLE_SERVER_SECRETS_MAX);
    }

    sodium_memzero(buf, sizeof(buf));

    if (n < 1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" must hold 64 hex characters (32 random "
                           "bytes), or up to %d lines of VERSION:HEX with "
                           "distinct versions 1..32767, the current first",
                           &name, NGX_WORKSIBLE_SERVER_SECRETS_MAX);
        return NGX_CONF_ERROR;
    }

    mcf->nsecrets = n;

    return NGX_CONF_OK;
}


/* worksible_key_cache: see ngx_worksible_cache_conf() */

static char *
ngx_worksible_key_cache(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_worksible_main_conf_t  *mcf = conf;

    if (mcf->key_cache != NULL) {
        return "is duplicate";
    }

    return ngx_worksible_cache_conf(cf, &mcf->key_cache);
}


/* worksible_auth_failures: see ngx_worksible_throttle_conf() */

static char *
ngx_worksible_auth_failures_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_worksible_main_conf_t  *mcf = conf;

    if (mcf->auth_failures != NULL) {
        return "is duplicate";
    }

    return ngx_worksible_throttle_conf(cf, &mcf->auth_failures);
}


/* worksible_redis: see ngx_worksible_redis_conf_parse() */

static char *
ngx_worksible_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_worksible_main_conf_t  *mcf = conf;

    ngx_str_t  *value;

    if (mcf->redis_conf != NULL) {
        return "is duplicate";
    }

    mcf->redis_conf = ngx_pcalloc(cf->pool,
                                  sizeof(ngx_worksible_redis_conf_t));
    if (mcf->redis_conf == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    return ngx_worksible_redis_conf_parse(cf, &value[1], cf->args->nelts - 1,
                                          mcf->redis_conf);
}


/* worksible_rate_limit on|off [fail=open|closed] */

static char *
ngx_worksible_rate_limit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_worksible_loc_conf_t  *lcf = conf;

    ngx_str_t  *value;

    if (lcf->rate_limit != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "on") == 0) {
        lcf->rate_limit = 1;

    } else if (ngx_strcmp(value[1].data, "off") == 0) {
        lcf->rate_limit = 0;

    } else {
        goto invalid;
    }

    lcf->rate_limit_open = 0;

    if (cf->args->nelts == 3) {
        if (ngx_strcmp(value[2].data, "fail=open") == 0) {
            lcf->rate_limit_open = 1;

        } else if (ngx_strcmp(value[2].data, "fail=closed") != 0) {
            goto invalid;
        }
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid worksible_rate_limit \"%V%s%V\" (on|off "
                       "[fail=open|closed])", &value[1],
                       cf->args->nelts == 3 ? " " : "",
                       cf->args->nelts == 3 ? &value[2] : &value[0]);

    return NGX_CONF_ERROR;
}


/* worksible_deprecation: see ngx_worksible_deprecation_conf() */

static char *
ngx_worksible_deprecation(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_worksible_loc_conf_t  *lcf = conf;

    if (lcf->deprecation == NGX_CONF_UNSET_PTR) {
        lcf->deprecation = NULL;
    }

    return ngx_worksible_deprecation_conf(cf, &lcf->deprecation);
}


/* worksible_cors: see ngx_worksible_cors_conf() */

static char *
ngx_worksible_cors(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_worksible_loc_conf_t  *lcf = conf;

    ngx_worksible_main_conf_t  *mcf;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_worksible_module);
    mcf->cors = 1;

    return ngx_worksible_cors_conf(cf, &lcf->cors);
}


/* worksible_idempotency: see ngx_worksible_idempotency_conf() */

static char *
ngx_worksible_idempotency(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_worksible_loc_conf_t  *lcf = conf;

    return ngx_worksible_idempotency_conf(cf, &lcf->idempotency);
}


/* worksible_scope: each argument is "resource:read" or "resource:write" */

static char *
ngx_worksible_scope(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_worksible_loc_conf_t  *lcf = conf;

    ngx_str_t   *value, *s;
    ngx_uint_t   i;

    if (lcf->scopes != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    lcf->scopes = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                   sizeof(ngx_str_t));
    if (lcf->scopes == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 1; i < cf->args->nelts; i++) {
        if (!ngx_worksible_scope_check(value[i].data, value[i].len)) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid scope \"%V\" (resource:read or "
                               "resource:write, resource in [a-z_])",
                               &value[i]);
            return NGX_CONF_ERROR;
        }

        s = ngx_array_push(lcf->scopes);
        if (s == NULL) {
            return NGX_CONF_ERROR;
        }

        *s = value[i];
    }

    return NGX_CONF_OK;
}


static char *
ngx_worksible_api(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_worksible_loc_conf_t  *lcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    if (lcf->api != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    lcf->api = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler != NULL) {
        return NGX_WORKSIBLE_HANDLER_SET;
    }
    clcf->handler = ngx_worksible_api_handler;

    return NGX_CONF_OK;
}


static char *
ngx_worksible_health(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler != NULL) {
        return NGX_WORKSIBLE_HANDLER_SET;
    }

    clcf->handler = ngx_worksible_health_handler;

    return NGX_CONF_OK;
}


static char *
ngx_worksible_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler != NULL) {
        return NGX_WORKSIBLE_HANDLER_SET;
    }

    clcf->handler = ngx_worksible_metrics_handler;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_worksible_init_module(ngx_cycle_t *cycle)
{
    if (sodium_init() < 0) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0, "sodium_init() failed");
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_worksible_init_process(ngx_cycle_t *cycle)
{
    ngx_worksible_main_conf_t  *mcf;

    mcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_worksible_module);

    if (mcf == NULL) {
        return NGX_OK;
    }

    mcf->metrics = ngx_worksible_metrics_get(mcf->metrics_zone);
    if (mcf->metrics == NULL) {
        return NGX_ERROR;
    }

    if (mcf->redis_conf != NULL) {
        mcf->redis = ngx_worksible_redis_create(mcf->redis_conf, cycle,
                                                &mcf->metrics->redis);
        if (mcf->redis == NULL) {
            return NGX_ERROR;
        }
    }

    if (mcf->pg == NULL) {
        return NGX_OK;
    }

    mcf->pg_pool = ngx_worksible_pg_pool_create(mcf->pg, cycle,
                                                &mcf->metrics->postgres);
    if (mcf->pg_pool == NULL) {
        return NGX_ERROR;
    }

    if (ngx_worksible_reqlog_init_process(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_worksible_replica_init_process(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_worksible_auth_init_process(cycle, mcf);
}


static void
ngx_worksible_exit_process(ngx_cycle_t *cycle)
{
    ngx_worksible_main_conf_t  *mcf;

    mcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_worksible_module);

    if (mcf != NULL && mcf->pg_pool != NULL) {
        ngx_worksible_pg_pool_close(mcf->pg_pool);
    }

    if (mcf != NULL && mcf->pg_listener != NULL) {
        ngx_worksible_pg_pool_close(mcf->pg_listener);
    }

    ngx_worksible_replica_exit_process(cycle);

    if (mcf != NULL && mcf->redis != NULL) {
        ngx_worksible_redis_close(mcf->redis);
    }

    if (mcf != NULL) {
        ngx_worksible_reqlog_exit_process(cycle);
    }
}
