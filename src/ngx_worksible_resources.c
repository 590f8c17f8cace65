/*
 * The resources of API.md that follow one pattern (list, retrieve, create,
 * update, and state changes): a table of their fields (nested items have
 * one of their own), checked here for shape and type before any write,
 * and SQL functions per resource that check what needs the database and
 * write in one transaction (migrations/0006_resources.sql,
 * 0009_billing.sql):
 *
 *   worksible_<object>_write(company, id or NULL, fields jsonb)
 *   worksible_<object>_<action>(company, id)    submit, finalize, void...
 *   worksible_get_<table>(company, id)
 *   worksible_list_<table>(company, limit, starting_after, ending_before,
 *                          filters jsonb)
 *
 * Lists and retrieves are static SQL (0013_static_sql.sql) sent as named
 * statements, prepared once per connection (ngx_worksible_pg.h).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>

#include "ngx_worksible_module.h"
#include "ngx_worksible_api.h"
#include "ngx_worksible_id.h"


#define NGX_WORKSIBLE_MONEY_MAX  9007199254740991LL    /* 2^53 - 1 */


static ngx_int_t ngx_worksible_resource_fields(ngx_http_request_t *r,
    ngx_worksible_endpoint_t *ep, json_t *obj, ngx_worksible_field_t *fields,
    ngx_uint_t create, const char *prefix);
static ngx_int_t ngx_worksible_resource_items(ngx_http_request_t *r,
    ngx_worksible_endpoint_t *ep, json_t *items, ngx_worksible_field_t *f,
    const char *prefix);
static ngx_int_t ngx_worksible_resource_refuse(ngx_http_request_t *r,
    ngx_worksible_endpoint_t *ep, ngx_worksible_error_e err,
    const char *prefix, const char *name, const char *detail);
static const char *ngx_worksible_resource_field(ngx_http_request_t *r,
    ngx_worksible_endpoint_t *ep, ngx_worksible_field_t *f, json_t *v);
static ngx_uint_t ngx_worksible_resource_integer(ngx_worksible_endpoint_t *ep,
    json_t *v, json_int_t *i);
static ngx_uint_t ngx_worksible_resource_pattern(const char *s, size_t len,
    const char *shape);
static ngx_int_t ngx_worksible_resource_sql(ngx_worksible_endpoint_t *ep,
    const char *fmt);
static ngx_int_t ngx_worksible_resource_body(ngx_worksible_endpoint_t *ep);
static ngx_int_t ngx_worksible_resource_times(ngx_http_request_t *r,
    ngx_worksible_endpoint_t *ep, json_t *filters, ngx_uint_t from,
    ngx_uint_t to);
static ngx_int_t ngx_worksible_resource_filters_param(
    ngx_worksible_endpoint_t *ep, json_t *filters);
static ngx_int_t ngx_worksible_resource_filters(ngx_http_request_t *r,
    ngx_worksible_endpoint_t *ep, json_t *filters, ngx_uint_t first);


static const char  *ngx_worksible_freelancer_statuses[] = {
    "invited", "active", "offboarded", NULL
};

static const char  *ngx_worksible_project_statuses[] = {
    "active", "archived", NULL
};

static const char  *ngx_worksible_contract_statuses[] = {
    "draft", "active", "ended", NULL
};

static const char  *ngx_worksible_contract_types[] = {
    "hourly", "fixed", NULL
};

static const char  *ngx_worksible_timesheet_statuses[] = {
    "draft", "submitted", "approved", "rejected", NULL
};

static const char  *ngx_worksible_invoice_statuses[] = {
    "draft", "open", "paid", "void", NULL
};

static const char  *ngx_worksible_payout_statuses[] = {
    "pending", "paid", "failed", NULL
};

static const char  *ngx_worksible_methods[] = {
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", NULL
};

static const char  *ngx_worksible_project_prefix[] = { "prj", NULL };
static const char  *ngx_worksible_api_key_prefix[] = { "key", NULL };
static const char  *ngx_worksible_freelancer_prefix[] = { "fl", NULL };
static const char  *ngx_worksible_contract_prefix[] = { "ctr", NULL };
static const char  *ngx_worksible_invoice_prefix[] = { "inv", NULL };


static ngx_worksible_field_t  ngx_worksible_company_fields[] = {
    { "name", NGX_WORKSIBLE_FIELD_TEXT, 0, 0, 200, NULL, NULL },
    { NULL, 0, 0, 0, 0, NULL, NULL }
};

static ngx_worksible_field_t  ngx_worksible_freelancer_fields[] = {
    { "email", NGX_WORKSIBLE_FIELD_EMAIL, 1, 0, 254, NULL, NULL },
    { "name", NGX_WORKSIBLE_FIELD_TEXT, 1, 0, 200, NULL, NULL },
    { "country", NGX_WORKSIBLE_FIELD_COUNTRY, 1, 0, 0, NULL, NULL },
    { "status", NGX_WORKSIBLE_FIELD_ENUM, 0, 0, 0,
      ngx_worksible_freelancer_statuses, NULL },
    { "hourly_rate", NGX_WORKSIBLE_FIELD_MONEY, 0, 1, 0, NULL, NULL },
    { "currency", NGX_WORKSIBLE_FIELD_CURRENCY, 0, 1, 0, NULL, NULL },
    { NULL, 0, 0, 0, 0, NULL, NULL }
};

static ngx_worksible_field_t  ngx_worksible_freelancer_filters[] = {
    { "status", NGX_WORKSIBLE_FIELD_ENUM, 0, 0, 0,
      ngx_worksible_freelancer_statuses, NULL },
    { NULL, 0, 0, 0, 0, NULL, NULL }
};

static ngx_worksible_field_t  ngx_worksible_project_fields[] = {
    { "name", NGX_WORKSIBLE_FIELD_TEXT, 1, 0, 200, NULL, NULL },
    { "description", NGX_WORKSIBLE_FIELD_TEXT, 0, 1, 5000, NULL, NULL },
    { "status", NGX_WORKSIBLE_FIELD_ENUM, 0, 0, 0,
      ngx_worksible_project_statuses, NULL },
    { "budget", NGX_WORKSIBLE_FIELD_MONEY, 0, 1, 0, NULL, NULL },
    { "currency", NGX_WORKSIBLE_FIELD_CURRENCY, 0, 1, 0, NULL, NULL },
    { NULL, 0, 0, 0, 0, NULL, NULL }
};

static ngx_worksible_field_t  ngx_worksible_project_filters[] = {
    { "status", NGX_WORKSIBLE_FIELD_ENUM, 0, 0, 0,
      ngx_worksible_project_statuses, NULL },
    { NULL, 0, 0, 0, 0, NULL, NULL }
};

static ngx_worksible_field_t  ngx_worksible_contract_fields[] = {
    { "project_id", NGX_WORKSIBLE_FIELD_ID, 1, 0, 0,
      ngx_worksible_project_prefix, NULL },
    { "freelancer_id", NGX_WORKSIBLE_FIELD_ID, 1, 0, 0,
      ngx_worksible_freelancer_prefix, NULL },
    { "type", NGX_WORKSIBLE_FIELD_ENUM, 1, 0, 0,
      ngx_worksible_contract_types, NULL },
    { "rate", NGX_WORKSIBLE_FIELD_MONEY, 1, 0, 0, NULL, NULL },
    { "currency", NGX_WORKSIBLE_FIELD_CURRENCY, 1, 0, 0, NULL, NULL },
    { "status", NGX_WORKSIBLE_FIELD_ENUM, 0, 0, 0,
      ngx_worksible_contract_statuses, NULL },
    { "start_date", NGX_WORKSIBLE_FIELD_DATE, 0, 1, 0, NULL, NULL },
    { "end_date", NGX_WORKSIBLE_FIELD_DATE, 0, 1, 0, NULL, NULL },
    { NULL, 0, 0, 0, 0, NULL, NULL }
};

static ngx_worksible_field_t  ngx_worksible_contract_filters[] = {
    { "status", NGX_WORKSIBLE_FIELD_ENUM, 0, 0, 0,
      ngx_worksible_contract_statuses, NULL },
    { "type", NGX_WORKSIBLE_FIELD_ENUM, 0, 0, 0,
      ngx_worksible_contract_types, NULL },
    { "project_id", NGX_WORKSIBLE_FIELD_ID, 0, 0, 0,
      ngx_worksible_project_prefix, NULL },
    { "freelancer_id", NGX_WORKSIBLE_FIELD_ID, 0, 0, 0,
      ngx_worksible_freelancer_prefix, NULL },
    { NULL, 0, 0, 0, 0, NULL, NULL }
};

/* entries replace the old ones whole; dates within the period (SQL) */
static ngx_worksible_field_t  ngx_worksible_entry_fields[] = {
    { "date", NGX_WORKSIBLE_FIELD_DATE, 1, 0, 0, NULL, NULL },
    { "minutes", NGX_WORKSIBLE_FIELD_COUNT, 1, 0, 1440, NULL, NULL },
    { "description", NGX_WORKSIBLE_FIELD_TEXT, 0, 1, 1000, NULL, NULL },
    { NULL, 0, 0, 0, 0, NULL, NULL }
};

static ngx_worksible_field_t  ngx_worksible_timesheet_fields[] = {
    { "contract_id", NGX_WORKSIBLE_FIELD_ID, 1, 0, 0,
      ngx_worksible_contract_prefix, NULL },
    { "period_start", NGX_WORKSIBLE_FIELD_DATE, 1, 0, 0, NULL, NULL },
    { "period_end", NGX_WORKSIBLE_FIELD_DATE, 1, 0, 0, NULL, NULL },
    { "entries", NGX_WORKSIBLE_FIELD_ITEMS, 0, 0, 500, NULL,
      ngx_worksible_entry_fields },
    { NULL, 0, 0, 0, 0, NULL, NULL }
};

static ngx_worksible_field_t  ngx_worksible_timesheet_filters[] = {
    { "status", NGX_WORKSIBLE_FIELD_ENUM, 0, 0, 0,
      ngx_worksible_timesheet_statuses, NULL },
    { "contract_id", NGX_WORKSIBLE_FIELD_ID, 0, 0, 0,
      ngx_worksible_contract_prefix, NULL },
    { NULL, 0, 0, 0, 0, NULL, NULL }
};

/* the server computes each line's amount and the totals (SQL) */
static ngx_worksible_field_t  ngx_worksible_line_item_fields[] = {
    { "description", NGX_WORKSIBLE_FIELD_TEXT, 1, 0, 500, NULL, NULL },
    { "quantity", NGX_WORKSIBLE_FIELD_COUNT, 1, 0, 1000000, NULL, NULL },
    { "unit_amount", NGX_WORKSIBLE_FIELD_AMOUNT, 1, 0, 0, NULL, NULL },
    { NULL, 0, 0, 0, 0, NULL, NULL }
};

static ngx_worksible_field_t  ngx_worksible_invoice_fields[] = {
    { "contract_id", NGX_WORKSIBLE_FIELD_ID, 1, 0, 0,
      ngx_worksible_contract_prefix, NULL },
    { "currency", NGX_WORKSIBLE_FIELD_CURRENCY, 0, 0, 0, NULL, NULL },
    { "due_date", NGX_WORKSIBLE_FIELD_DATE, 0, 1, 0, NULL, NULL },
    { "line_items", NGX_WORKSIBLE_FIELD_ITEMS, 0, 0, 100, NULL,
      ngx_worksible_line_item_fields },
    { NULL, 0, 0, 0, 0, NULL, NULL }
};

static ngx_worksible_field_t  ngx_worksible_invoice_filters[] = {
    { "status", NGX_WORKSIBLE_FIELD_ENUM, 0, 0, 0,
      ngx_worksible_invoice_statuses, NULL },
    { "contract_id", NGX_WORKSIBLE_FIELD_ID, 0, 0, 0,
      ngx_worksible_contract_prefix, NULL },
    { NULL, 0, 0, 0, 0, NULL, NULL }
};

static ngx_worksible_field_t  ngx_worksible_payment_fields[] = {
    { "invoice_id", NGX_WORKSIBLE_FIELD_ID, 1, 0, 0,
      ngx_worksible_invoice_prefix, NULL },
    { "amount", NGX_WORKSIBLE_FIELD_MONEY, 1, 0, 0, NULL, NULL },
    { "currency", NGX_WORKSIBLE_FIELD_CURRENCY, 1, 0, 0, NULL, NULL },
    { NULL, 0, 0, 0, 0, NULL, NULL }
};

static ngx_worksible_field_t  ngx_worksible_payment_filters[] = {
    { "invoice_id", NGX_WORKSIBLE_FIELD_ID, 0, 0, 0,
      ngx_worksible_invoice_prefix, NULL },
    { NULL, 0, 0, 0, 0, NULL, NULL }
};

static ngx_worksible_field_t  ngx_worksible_payout_fields[] = {
    { "freelancer_id", NGX_WORKSIBLE_FIELD_ID, 1, 0, 0,
      ngx_worksible_freelancer_prefix, NULL },
    { "amount", NGX_WORKSIBLE_FIELD_MONEY, 1, 0, 0, NULL, NULL },
    { "currency", NGX_WORKSIBLE_FIELD_CURRENCY, 1, 0, 0, NULL, NULL },
    { NULL, 0, 0, 0, 0, NULL, NULL }
};

static ngx_worksible_field_t  ngx_worksible_payout_filters[] = {
    { "status", NGX_WORKSIBLE_FIELD_ENUM, 0, 0, 0,
      ngx_worksible_payout_statuses, NULL },
    { "freelancer_id", NGX_WORKSIBLE_FIELD_ID, 0, 0, 0,
      ngx_worksible_freelancer_prefix, NULL },
    { NULL, 0, 0, 0, 0, NULL, NULL }
};


static ngx_worksible_field_t  ngx_worksible_request_log_filters[] = {
    { "status", NGX_WORKSIBLE_FIELD_STATUS, 0, 0, 0, NULL, NULL },
    { "method", NGX_WORKSIBLE_FIELD_ENUM, 0, 0, 0,
      ngx_worksible_methods, NULL },
    { "api_key_id", NGX_WORKSIBLE_FIELD_ID, 0, 0, 0,
      ngx_worksible_api_key_prefix, NULL },
    { "path", NGX_WORKSIBLE_FIELD_PATH, 0, 0, 512, NULL, NULL },
    { NULL, 0, 0, 0, 0, NULL, NULL }
};


ngx_worksible_resource_t  ngx_worksible_company_resource = {
    "company", "companies", "/v1/companies/me",
    ngx_worksible_company_fields, NULL, NULL, NULL, NULL, NULL
};

ngx_worksible_resource_t  ngx_worksible_freelancers_resource = {
    "freelancer", "freelancers", "/v1/freelancers",
    ngx_worksible_freelancer_fields, ngx_worksible_freelancer_filters,
    NGX_WORKSIBLE_RESOURCE_SQL(freelancers)
};

ngx_worksible_resource_t  ngx_worksible_projects_resource = {
    "project", "projects", "/v1/projects",
    ngx_worksible_project_fields, ngx_worksible_project_filters,
    NGX_WORKSIBLE_RESOURCE_SQL(projects)
};

ngx_worksible_resource_t  ngx_worksible_contracts_resource = {
    "contract", "contracts", "/v1/contracts",
    ngx_worksible_contract_fields, ngx_worksible_contract_filters,
    NGX_WORKSIBLE_RESOURCE_SQL(contracts)
};

ngx_worksible_resource_t  ngx_worksible_timesheets_resource = {
    "timesheet", "timesheets", "/v1/timesheets",
    ngx_worksible_timesheet_fields, ngx_worksible_timesheet_filters,
    NGX_WORKSIBLE_RESOURCE_SQL(timesheets)
};

ngx_worksible_resource_t  ngx_worksible_invoices_resource = {
    "invoice", "invoices", "/v1/invoices",
    ngx_worksible_invoice_fields, ngx_worksible_invoice_filters,
    NGX_WORKSIBLE_RESOURCE_SQL(invoices)
};

ngx_worksible_resource_t  ngx_worksible_payments_resource = {
    "payment", "payments", "/v1/payments",
    ngx_worksible_payment_fields, ngx_worksible_payment_filters,
    NGX_WORKSIBLE_RESOURCE_SQL(payments)
};

ngx_worksible_resource_t  ngx_worksible_payouts_resource = {
    "payout", "payouts", "/v1/payouts",
    ngx_worksible_payout_fields, ngx_worksible_payout_filters,
    NGX_WORKSIBLE_RESOURCE_SQL(payouts)
};

ngx_worksible_resource_t  ngx_worksible_request_logs_resource = {
    "request_log", "request_logs", "/v1/request_logs",
    NULL, ngx_worksible_request_log_filters,
    "worksible_list_request_logs",
    "SELECT worksible_list_request_logs($1, $2, $3, $4, $5::jsonb)",
    NULL, NULL
};


/*
 * GET <url>?limit&starting_after&ending_before&created_at[gte|gt|lte|lt]
 * &<filters>: worksible_list_<table>(company, limit, starting_after,
 * ending_before, filters jsonb). Newest first (API.md).
 */

ngx_int_t
ngx_worksible_resource_list(ngx_http_request_t *r,
    ngx_worksible_endpoint_t *ep)
{
    json_t     *filters;
    ngx_int_t   rc;

    rc = ngx_worksible_api_list_args(ep);
    if (rc != NGX_OK) {
        return rc;
    }

    filters = json_object();
    if (filters == NULL) {
        return NGX_ERROR;
    }

    rc = ngx_worksible_resource_times(r, ep, filters, 3,
                                      NGX_WORKSIBLE_API_FILTER_ARG);
    if (rc == NGX_OK) {
        rc = ngx_worksible_resource_filters(r, ep, filters,
                                            NGX_WORKSIBLE_API_FILTER_ARG);
    }

    if (rc != NGX_OK) {
        json_decref(filters);
        return rc;
    }

    if (ngx_worksible_resource_filters_param(ep, filters) != NGX_OK) {
        return NGX_ERROR;
    }

    /* $1 company, $2..$4 limit and cursors, $5 filters */

    ep->op->name = ep->route->resource->list_name;
    ep->op->sql = ep->route->resource->list_sql;

    return NGX_OK;
}


/*
 * GET /v1/request_logs/stats?created_at[gte]&created_at[lt]&interval
 * &status&method&api_key_id&path: worksible_request_log_stats(company, url,
 * filters jsonb), requests per bucket by status class, latency
 * percentiles, refusals (0012_request_log_stats.sql). interval: 1m, 1h or
 * 1d; the filters as the list's.
 */

ngx_int_t
ngx_worksible_request_logs_stats(ngx_http_request_t *r,
    ngx_worksible_endpoint_t *ep)
{
    json_t     *filters;
    ngx_int_t   rc;
    ngx_str_t  *ivl;

    filters = json_object();
    if (filters == NULL) {
        return NGX_ERROR;
    }

    /* args: created_at[gte], created_at[lt], interval, then the filters */

    rc = ngx_worksible_resource_times(r, ep, filters, 0, 2);

    ivl = &ep->args[2];

    if (rc == NGX_OK && ivl->data != NULL) {
        if (ivl->len != 2 || ivl->data[0] != '1'
            || (ivl->data[1] != 'm' && ivl->data[1] != 'h'
                && ivl->data[1] != 'd'))
        {
            rc = ngx_worksible_api_refusal(r, ep,
                     NGX_WORKSIBLE_PARAMETER_INVALID, "interval", -1,
                     "The interval must be 1m, 1h or 1d.");

        } else if (json_object_set_new(filters, "interval",
                       json_stringn((char *) ivl->data, ivl->len)) != 0)
        {
            rc = NGX_ERROR;
        }
    }

    if (rc == NGX_OK) {
        rc = ngx_worksible_resource_filters(r, ep, filters, 3);
    }

    if (rc != NGX_OK) {
        json_decref(filters);
        return rc;
    }

    if (ngx_worksible_resource_filters_param(ep, filters) != NGX_OK) {
        return NGX_ERROR;
    }

    ep->op->sql = "SELECT worksible_request_log_stats($1, "
                  "'/v1/request_logs/stats', $2::jsonb)";

    return NGX_OK;
}


/* filters, as JSON text, the op's next parameter; filters is released */

static ngx_int_t
ngx_worksible_resource_filters_param(ngx_worksible_endpoint_t *ep,
    json_t *filters)
{
    char       *text;
    ngx_int_t   rc;
    ngx_str_t   s;

    text = json_dumps(filters, JSON_COMPACT);
    json_decref(filters);

    if (text == NULL) {
        return NGX_ERROR;
    }

    s.data = (u_char *) text;
    s.len = ngx_strlen(text);

    rc = ngx_worksible_pg_op_param(ep->op, &s);
    free(text);

    return rc;
}


/*
 * args[from..to-1], the created_at[...] bounds (the route's params), into
 * filters as PostgreSQL times: NGX_OK, NGX_DECLINED (parameter_invalid)
 * or NGX_ERROR.
 */

static ngx_int_t
ngx_worksible_resource_times(ngx_http_request_t *r,
    ngx_worksible_endpoint_t *ep, json_t *filters, ngx_uint_t from,
    ngx_uint_t to)
{
    ngx_str_t   *arg;
    ngx_uint_t   i;

    for (i = from; i < to; i++) {
        arg = &ep->args[i];

        if (arg->data == NULL) {
            continue;
        }

        if (!ngx_worksible_api_rfc3339(r->pool, arg)
            || json_object_set_new(filters, ep->route->params[i],
                         json_stringn((char *) arg->data, arg->len)) != 0)
        {
            return ngx_worksible_api_refusal(r, ep,
                       NGX_WORKSIBLE_PARAMETER_INVALID, ep->route->params[i],
                       -1, "The time must be RFC 3339, such as "
                       "2026-11-29T15:09:28Z.");
        }
    }

    return NGX_OK;
}


/*
 * The resource's filters from args[first...] into filters (a status class
 * "5xx" as "status[class]": "5", a path as "path[prefix]"): NGX_OK,
 * NGX_DECLINED (parameter_invalid) or NGX_ERROR.
 */

static ngx_int_t
ngx_worksible_resource_filters(ngx_http_request_t *r,
    ngx_worksible_endpoint_t *ep, json_t *filters, ngx_uint_t first)
{
    json_t                 *v;
    ngx_str_t              *arg;
    ngx_uint_t              i;
    const char             *bad, *name;
    ngx_worksible_field_t  *f;

    for (f = ep->route->resource->filters, i = first;
         f && f->name;
         f++, i++)
    {
        arg = &ep->args[i];

        if (arg->data == NULL) {
            continue;
        }

        v = json_stringn((char *) arg->data, arg->len);
        bad = (v == NULL) ? "not UTF-8"
                          : ngx_worksible_resource_field(r, ep, f, v);
        name = f->name;

        if (bad == NULL && f->type == NGX_WORKSIBLE_FIELD_STATUS
            && arg->data[1] == 'x')
        {
            /* a class: "5xx" filters status 500..599 */
            name = "status[class]";
            json_decref(v);
            v = json_stringn((char *) arg->data, 1);

        } else if (bad == NULL && f->type == NGX_WORKSIBLE_FIELD_PATH) {
            name = "path[prefix]";
        }

        if (bad == NULL && json_object_set_new(filters, name, v) != 0) {
            return NGX_ERROR;
        }

        if (bad != NULL) {
            json_decref(v);
            return ngx_worksible_api_refusal(r, ep,
                       NGX_WORKSIBLE_PARAMETER_INVALID, f->name, -1,
                       "The filter's value is not one this field takes.");
        }
    }

    return NGX_OK;
}


/* GET <url>/{id}: worksible_get_<table>(company, id) */

ngx_int_t
ngx_worksible_resource_get(ngx_http_request_t *r,
    ngx_worksible_endpoint_t *ep)
{
    ngx_worksible_resource_t  *res;

    res = ep->route->resource;

    if (ngx_worksible_pg_op_param(ep->op, &ep->id) != NGX_OK) {
        return NGX_ERROR;
    }

    ep->op->name = res->get_name;
    ep->op->sql = res->get_sql;

    return NGX_OK;
}


/* POST <url>: worksible_<object>_write(company, NULL, fields) */

ngx_int_t
ngx_worksible_resource_create(ngx_http_request_t *r,
    ngx_worksible_endpoint_t *ep)
{
    ngx_int_t  rc;

    rc = ngx_worksible_resource_fields(r, ep, ep->body,
                                       ep->route->resource->fields, 1, "");
    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_worksible_resource_body(ep) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_worksible_resource_sql(ep,
               "SELECT worksible_%s_write($1, NULL, $2::jsonb)");
}


/*
 * PATCH <url>/{id}: worksible_<object>_write(company, id, fields): only the
 * members sent change; NULL: 404.
 */

ngx_int_t
ngx_worksible_resource_update(ngx_http_request_t *r,
    ngx_worksible_endpoint_t *ep)
{
    ngx_int_t  rc;

    rc = ngx_worksible_resource_fields(r, ep, ep->body,
                                       ep->route->resource->fields, 0, "");
    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_worksible_pg_op_param(ep->op, &ep->id) != NGX_OK
        || ngx_worksible_resource_body(ep) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_worksible_resource_sql(ep,
               "SELECT worksible_%s_write($1, $2, $3::jsonb)");
}


/* PATCH /v1/companies/me: worksible_company_update(company, fields) */

ngx_int_t
ngx_worksible_company_update(ngx_http_request_t *r,
    ngx_worksible_endpoint_t *ep)
{
    ngx_int_t  rc;

    rc = ngx_worksible_resource_fields(r, ep, ep->body,
                                       ep->route->resource->fields, 0, "");
    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_worksible_resource_body(ep) != NGX_OK) {
        return NGX_ERROR;
    }

    ep->op->sql = "SELECT worksible_company_update($1, $2::jsonb)";

    return NGX_OK;
}


/*
 * POST <url>/{id}/<action> (submit, approve, reject, finalize, void):
 * worksible_<object>_<action>(company, id), where the state machine lives;
 * NULL: 404, a forbidden move: WS409.
 */

ngx_int_t
ngx_worksible_resource_action(ngx_http_request_t *r,
    ngx_worksible_endpoint_t *ep)
{
    u_char     *action, *last;
    ngx_str_t  *pattern;
    u_char      fmt[96];

    pattern = &ep->route->pattern;
    last = pattern->data + pattern->len;

    for (action = last; action > pattern->data && action[-1] != '/';
         action--)
    {
        /* void */
    }

    if (ngx_worksible_pg_op_param(ep->op, &ep->id) != NGX_OK) {
        return NGX_ERROR;
    }

    /* the action comes from our route table, never from the client */

    *ngx_snprintf(fmt, sizeof(fmt) - 1, "SELECT worksible_%%1$s_%*s($1, $2)",
                  (size_t) (last - action), action) = '\0';

    return ngx_worksible_resource_sql(ep, (char *) fmt);
}


/*
 * Every member of obj (the body, or one of its items) against fields:
 * unknown ones are parameter_unknown, a wrong type or value
 * parameter_invalid, and on create a required one absent is
 * parameter_missing, each naming the member after prefix ("" or
 * "line_items[0]."). Nothing is written before the whole body passed.
 */

static ngx_int_t
ngx_worksible_resource_fields(ngx_http_request_t *r,
    ngx_worksible_endpoint_t *ep, json_t *obj, ngx_worksible_field_t *fields,
    ngx_uint_t create, const char *prefix)
{
    json_t                 *v;
    ngx_int_t               rc;
    const char             *member, *bad;
    ngx_worksible_field_t  *f;

    json_object_foreach(obj, member, v) {

        for (f = fields; f->name; f++) {
            if (ngx_strcmp(f->name, member) == 0) {
                break;
            }
        }

        if (f->name == NULL) {
            return ngx_worksible_resource_refuse(r, ep,
                       NGX_WORKSIBLE_PARAMETER_UNKNOWN, prefix, member,
                       "This resource has no such field.");
        }

        if (json_is_null(v)) {
            if (f->nullable) {
                continue;
            }

            return ngx_worksible_resource_refuse(r, ep,
                       NGX_WORKSIBLE_PARAMETER_INVALID, prefix, member,
                       "This field cannot be null.");
        }

        if (f->type == NGX_WORKSIBLE_FIELD_ITEMS) {
            rc = ngx_worksible_resource_items(r, ep, v, f, prefix);
            if (rc != NGX_OK) {
                return rc;
            }

            continue;
        }

        bad = ngx_worksible_resource_field(r, ep, f, v);

        if (bad == NULL) {
            continue;
        }

        if (bad == (const char *) NGX_CONF_ERROR) {
            return NGX_ERROR;
        }

        return ngx_worksible_resource_refuse(r, ep,
                   NGX_WORKSIBLE_PARAMETER_INVALID, prefix, member, bad);
    }

    if (!create) {
        return NGX_OK;
    }

    for (f = fields; f->name; f++) {
        v = json_object_get(obj, f->name);

        if (f->required && (v == NULL || json_is_null(v))) {
            return ngx_worksible_resource_refuse(r, ep,
                       NGX_WORKSIBLE_PARAMETER_MISSING, prefix, f->name,
                       "This field is required.");
        }
    }

    return NGX_OK;
}


/*
 * An ITEMS member: an array of at most f->max objects, each checked
 * against f->items with every required field (a PATCH replaces the
 * items whole).
 */

static ngx_int_t
ngx_worksible_resource_items(ngx_http_request_t *r,
    ngx_worksible_endpoint_t *ep, json_t *items, ngx_worksible_field_t *f,
    const char *prefix)
{
    u_char     *p;
    size_t      i;
    json_t     *item;
    ngx_int_t   rc;
    u_char      name[64];

    if (!json_is_array(items) || json_array_size(items) > f->max) {
        return ngx_worksible_resource_refuse(r, ep,
                   NGX_WORKSIBLE_PARAMETER_INVALID, prefix, f->name,
                   f->max >= 500 ? "This field is an array of at most 500 "
                                   "objects."
                                 : "This field is an array of at most 100 "
                                   "objects.");
    }

    json_array_foreach(items, i, item) {
        p = ngx_snprintf(name, sizeof(name) - 1, "%s%s[%uz]", prefix,
                         f->name, i);
        *p = '\0';

        if (!json_is_object(item)) {
            return ngx_worksible_resource_refuse(r, ep,
                       NGX_WORKSIBLE_PARAMETER_INVALID, "", (char *) name,
                       "Each item is a JSON object.");
        }

        p = ngx_snprintf(name, sizeof(name) - 1, "%s%s[%uz].", prefix,
                         f->name, i);
        *p = '\0';

        rc = ngx_worksible_resource_fields(r, ep, item, f->items, 1,
                                           (char *) name);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    return NGX_OK;
}


/* ngx_worksible_api_refusal() naming prefix + name */

static ngx_int_t
ngx_worksible_resource_refuse(ngx_http_request_t *r,
    ngx_worksible_endpoint_t *ep, ngx_worksible_error_e err,
    const char *prefix, const char *name, const char *detail)
{
    u_char  *p;
    u_char   full[128];

    if (*prefix == '\0') {
        return ngx_worksible_api_refusal(r, ep, err, name, -1, detail);
    }

    p = ngx_snprintf(full, sizeof(full) - 1, "%s%s", prefix, name);
    *p = '\0';

    return ngx_worksible_api_refusal(r, ep, err, (char *) full, -1, detail);
}


/*
 * NULL when v fits f, else why not (a detail for the client), or
 * NGX_CONF_ERROR on no memory.
 */

static const char *
ngx_worksible_resource_field(ngx_http_request_t *r,
    ngx_worksible_endpoint_t *ep, ngx_worksible_field_t *f, json_t *v)
{
    u_char       *p;
    size_t        len, n, k;
    const char   *s, *at, **e;
    json_int_t    i;
    ngx_str_t     id;

    switch (f->type) {

    case NGX_WORKSIBLE_FIELD_MONEY:
        if (!ngx_worksible_resource_integer(ep, v, &i)) {
            return "Money is an integer in the currency's minor unit "
                   "(cents, yen, fils).";
        }

        return (i < 0 || i > NGX_WORKSIBLE_MONEY_MAX)
               ? "Money is from 0 to 9007199254740991 minor units." : NULL;

    case NGX_WORKSIBLE_FIELD_AMOUNT:
        if (!ngx_worksible_resource_integer(ep, v, &i)) {
            return "Money is an integer in the currency's minor unit "
                   "(cents, yen, fils).";
        }

        return (i < -NGX_WORKSIBLE_MONEY_MAX || i > NGX_WORKSIBLE_MONEY_MAX)
               ? "Money is from -9007199254740991 to 9007199254740991 minor "
                 "units."
               : NULL;

    case NGX_WORKSIBLE_FIELD_COUNT:
        if (ngx_worksible_resource_integer(ep, v, &i)
            && i >= 1 && (uint64_t) i <= f->max)
        {
            return NULL;
        }

        p = ngx_pnalloc(r->pool, 64);
        if (p == NULL) {
            return (const char *) NGX_CONF_ERROR;
        }

        *ngx_snprintf(p, 63, "This field is an integer from 1 to %uz.",
                      f->max) = '\0';

        return (const char *) p;

    default:
        break;
    }

    if (!json_is_string(v)) {
        return "This field is a string.";
    }

    s = json_string_value(v);
    len = json_string_length(v);

    switch (f->type) {

    case NGX_WORKSIBLE_FIELD_TEXT:
        n = ngx_utf8_length((u_char *) s, len);

        for (k = 0; k < len && (u_char) s[k] <= ' '; k++) {
            /* void */
        }

        return (k == len || n > f->max
                || ngx_strlchr((u_char *) s, (u_char *) s + len, '\0'))
               ? "The text is blank, too long or holds a NUL." : NULL;

    case NGX_WORKSIBLE_FIELD_ENUM:
        for (e = f->values; *e; e++) {
            if (ngx_strlen(*e) == len && ngx_strncmp(*e, s, len) == 0) {
                return NULL;
            }
        }

        return "The value is not one this field takes.";

    case NGX_WORKSIBLE_FIELD_CURRENCY:
        return ngx_worksible_resource_pattern(s, len, "AAA")
               ? NULL : "A currency is an ISO 4217 code such as EUR.";

    case NGX_WORKSIBLE_FIELD_COUNTRY:
        return ngx_worksible_resource_pattern(s, len, "AA")
               ? NULL : "A country is an ISO 3166-1 alpha-2 code such as DE.";

    case NGX_WORKSIBLE_FIELD_DATE:
        return ngx_worksible_resource_pattern(s, len, "dddd-dd-dd")
               ? NULL : "A date is YYYY-MM-DD.";

    case NGX_WORKSIBLE_FIELD_EMAIL:
        at = (const char *) ngx_strlchr((u_char *) s, (u_char *) s + len,
                                        '@');

        if (at == NULL || at == s || at == s + len - 1 || len > f->max
            || ngx_strlchr((u_char *) at + 1, (u_char *) s + len, '@'))
        {
            return "An email address is local@domain.";
        }

        for (n = 0; n < len; n++) {
            if ((u_char) s[n] <= ' ' || s[n] == 0x7f) {
                return "An email address is local@domain.";
            }
        }

        return NULL;

    case NGX_WORKSIBLE_FIELD_ID:
        id.data = (u_char *) s;
        id.len = len;

        return ngx_worksible_id_valid(&id, f->values[0])
               ? NULL : "This is not an id of the right kind.";

    case NGX_WORKSIBLE_FIELD_STATUS:
        return (ngx_worksible_resource_pattern(s, len, "dxx")
                && s[0] >= '1' && s[0] <= '5')
               || (ngx_worksible_resource_pattern(s, len, "ddd")
                   && s[0] >= '1' && s[0] <= '5')
               ? NULL : "A status is 100 to 599, or a class such as 5xx.";

    case NGX_WORKSIBLE_FIELD_PATH:
        /* f->max characters, like text (the caller checked UTF-8) */
        return (len > 0 && s[0] == '/'
                && ngx_utf8_length((u_char *) s, len) <= f->max
                && ngx_strlchr((u_char *) s, (u_char *) s + len, '\0')
                   == NULL)
               ? NULL : "A path prefix starts with \"/\" and holds no NUL.";

    default:
        return "This field cannot be set.";
    }
}


/*
 * v as an integer into i: 1, or 0 when it is none. A body that held an
 * integer too big for jansson was read again with every integer as a
 * real (ep->reals), only to name the member that holds it: there, a real
 * with a whole value below 2^53 stands for the integer it was.
 */

static ngx_uint_t
ngx_worksible_resource_integer(ngx_worksible_endpoint_t *ep, json_t *v,
    json_int_t *i)
{
    double  d;

    if (json_is_integer(v)) {
        *i = json_integer_value(v);
        return 1;
    }

    if (!ep->reals || !json_is_real(v)) {
        return 0;
    }

    d = json_real_value(v);

    if (d > (double) NGX_WORKSIBLE_MONEY_MAX
        || d < -(double) NGX_WORKSIBLE_MONEY_MAX
        || (double) (json_int_t) d != d)
    {
        return 0;
    }

    *i = (json_int_t) d;

    return 1;
}


/* 1 when s matches shape: "A" an upper-case letter, "d" a digit, else s */

static ngx_uint_t
ngx_worksible_resource_pattern(const char *s, size_t len, const char *shape)
{
    size_t  i;

    if (len != ngx_strlen(shape)) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (shape[i] == 'A' ? (s[i] < 'A' || s[i] > 'Z')
            : shape[i] == 'd' ? (s[i] < '0' || s[i] > '9')
            : s[i] != shape[i])
        {
            return 0;
        }
    }

    return 1;
}


/*
 * ep->op->sql: fmt with the resource's object, table and url (printf(3)
 * positions %1$s, %2$s, %3$s). Only names of our own tables reach SQL this
 * way, never client input.
 */

static ngx_int_t
ngx_worksible_resource_sql(ngx_worksible_endpoint_t *ep, const char *fmt)
{
    int                        n;
    char                      *sql;
    size_t                     len;
    ngx_worksible_resource_t  *res;

    res = ep->route->resource;
    len = ngx_strlen(fmt) + 256;

    sql = ngx_pnalloc(ep->op->mem, len);
    if (sql == NULL) {
        return NGX_ERROR;
    }

    n = snprintf(sql, len, fmt, res->object, res->table, res->url);
    if (n < 0 || (size_t) n >= len) {
        return NGX_ERROR;
    }

    ep->op->sql = sql;

    return NGX_OK;
}


/* the (checked) body as the next parameter, JSON text for ::jsonb */

static ngx_int_t
ngx_worksible_resource_body(ngx_worksible_endpoint_t *ep)
{
    char       *text;
    ngx_int_t   rc;
    ngx_str_t   s;

    text = json_dumps(ep->body, JSON_COMPACT);
    if (text == NULL) {
        return NGX_ERROR;
    }

    s.data = (u_char *) text;
    s.len = ngx_strlen(text);

    rc = ngx_worksible_pg_op_param(ep->op, &s);
    free(text);

    return rc;
}
