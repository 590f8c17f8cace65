/*
 * The resources of API.md that follow one pattern (list, retrieve, create,
 * update): a table of their fields, checked here for shape and type before
 * any write, and a SQL function per resource that checks what needs the
 * database and writes in one transaction (migrations/0006_resources.sql):
 *
 *   worksible_<object>_write(company, id or NULL, fields jsonb)
 *   worksible_get(company, table, worksible_<object>_object, id)
 *   worksible_list(company, table, worksible_<object>_object, url, ...)
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
    ngx_worksible_endpoint_t *ep, ngx_worksible_field_t *fields,
    ngx_uint_t create);
static const char *ngx_worksible_resource_field(ngx_worksible_field_t *f,
    json_t *v);
static ngx_uint_t ngx_worksible_resource_pattern(const char *s, size_t len,
    const char *shape);
static ngx_int_t ngx_worksible_resource_sql(ngx_worksible_endpoint_t *ep,
    const char *fmt);
static ngx_int_t ngx_worksible_resource_body(ngx_worksible_endpoint_t *ep);


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

static const char  *ngx_worksible_methods[] = {
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", NULL
};

static const char  *ngx_worksible_project_prefix[] = { "prj", NULL };
static const char  *ngx_worksible_api_key_prefix[] = { "key", NULL };
static const char  *ngx_worksible_freelancer_prefix[] = { "fl", NULL };


static ngx_worksible_field_t  ngx_worksible_company_fields[] = {
    { "name", NGX_WORKSIBLE_FIELD_TEXT, 0, 0, 200, NULL },
    { NULL, 0, 0, 0, 0, NULL }
};

static ngx_worksible_field_t  ngx_worksible_freelancer_fields[] = {
    { "email", NGX_WORKSIBLE_FIELD_EMAIL, 1, 0, 254, NULL },
    { "name", NGX_WORKSIBLE_FIELD_TEXT, 1, 0, 200, NULL },
    { "country", NGX_WORKSIBLE_FIELD_COUNTRY, 1, 0, 0, NULL },
    { "status", NGX_WORKSIBLE_FIELD_ENUM, 0, 0, 0,
      ngx_worksible_freelancer_statuses },
    { "hourly_rate", NGX_WORKSIBLE_FIELD_MONEY, 0, 1, 0, NULL },
    { "currency", NGX_WORKSIBLE_FIELD_CURRENCY, 0, 1, 0, NULL },
    { NULL, 0, 0, 0, 0, NULL }
};

static ngx_worksible_field_t  ngx_worksible_freelancer_filters[] = {
    { "status", NGX_WORKSIBLE_FIELD_ENUM, 0, 0, 0,
      ngx_worksible_freelancer_statuses },
    { NULL, 0, 0, 0, 0, NULL }
};

static ngx_worksible_field_t  ngx_worksible_project_fields[] = {
    { "name", NGX_WORKSIBLE_FIELD_TEXT, 1, 0, 200, NULL },
    { "description", NGX_WORKSIBLE_FIELD_TEXT, 0, 1, 5000, NULL },
    { "status", NGX_WORKSIBLE_FIELD_ENUM, 0, 0, 0,
      ngx_worksible_project_statuses },
    { "budget", NGX_WORKSIBLE_FIELD_MONEY, 0, 1, 0, NULL },
    { "currency", NGX_WORKSIBLE_FIELD_CURRENCY, 0, 1, 0, NULL },
    { NULL, 0, 0, 0, 0, NULL }
};

static ngx_worksible_field_t  ngx_worksible_project_filters[] = {
    { "status", NGX_WORKSIBLE_FIELD_ENUM, 0, 0, 0,
      ngx_worksible_project_statuses },
    { NULL, 0, 0, 0, 0, NULL }
};

static ngx_worksible_field_t  ngx_worksible_contract_fields[] = {
    { "project_id", NGX_WORKSIBLE_FIELD_ID, 1, 0, 0,
      ngx_worksible_project_prefix },
    { "freelancer_id", NGX_WORKSIBLE_FIELD_ID, 1, 0, 0,
      ngx_worksible_freelancer_prefix },
    { "type", NGX_WORKSIBLE_FIELD_ENUM, 1, 0, 0,
      ngx_worksible_contract_types },
    { "rate", NGX_WORKSIBLE_FIELD_MONEY, 1, 0, 0, NULL },
    { "currency", NGX_WORKSIBLE_FIELD_CURRENCY, 1, 0, 0, NULL },
    { "status", NGX_WORKSIBLE_FIELD_ENUM, 0, 0, 0,
      ngx_worksible_contract_statuses },
    { "start_date", NGX_WORKSIBLE_FIELD_DATE, 0, 1, 0, NULL },
    { "end_date", NGX_WORKSIBLE_FIELD_DATE, 0, 1, 0, NULL },
    { NULL, 0, 0, 0, 0, NULL }
};

static ngx_worksible_field_t  ngx_worksible_contract_filters[] = {
    { "status", NGX_WORKSIBLE_FIELD_ENUM, 0, 0, 0,
      ngx_worksible_contract_statuses },
    { "type", NGX_WORKSIBLE_FIELD_ENUM, 0, 0, 0,
      ngx_worksible_contract_types },
    { "project_id", NGX_WORKSIBLE_FIELD_ID, 0, 0, 0,
      ngx_worksible_project_prefix },
    { "freelancer_id", NGX_WORKSIBLE_FIELD_ID, 0, 0, 0,
      ngx_worksible_freelancer_prefix },
    { NULL, 0, 0, 0, 0, NULL }
};


static ngx_worksible_field_t  ngx_worksible_request_log_filters[] = {
    { "status", NGX_WORKSIBLE_FIELD_STATUS, 0, 0, 0, NULL },
    { "method", NGX_WORKSIBLE_FIELD_ENUM, 0, 0, 0, ngx_worksible_methods },
    { "api_key_id", NGX_WORKSIBLE_FIELD_ID, 0, 0, 0,
      ngx_worksible_api_key_prefix },
    { "path", NGX_WORKSIBLE_FIELD_PATH, 0, 0, 512, NULL },
    { NULL, 0, 0, 0, 0, NULL }
};


ngx_worksible_resource_t  ngx_worksible_company_resource = {
    "company", "companies", "/v1/companies/me",
    ngx_worksible_company_fields, NULL
};

ngx_worksible_resource_t  ngx_worksible_freelancers_resource = {
    "freelancer", "freelancers", "/v1/freelancers",
    ngx_worksible_freelancer_fields, ngx_worksible_freelancer_filters
};

ngx_worksible_resource_t  ngx_worksible_projects_resource = {
    "project", "projects", "/v1/projects",
    ngx_worksible_project_fields, ngx_worksible_project_filters
};

ngx_worksible_resource_t  ngx_worksible_contracts_resource = {
    "contract", "contracts", "/v1/contracts",
    ngx_worksible_contract_fields, ngx_worksible_contract_filters
};

ngx_worksible_resource_t  ngx_worksible_request_logs_resource = {
    "request_log", "request_logs", "/v1/request_logs",
    NULL, ngx_worksible_request_log_filters
};


/*
 * GET <url>?limit&starting_after&ending_before&created_at[gte|gt|lte|lt]
 * &<filters>: worksible_list(company, table, object function, url, limit,
 * starting_after, ending_before, filters jsonb). Newest first (API.md).
 */

ngx_int_t
ngx_worksible_resource_list(ngx_http_request_t *r,
    ngx_worksible_endpoint_t *ep)
{
    char                      *text;
    json_t                    *filters, *v;
    ngx_int_t                  rc;
    ngx_str_t                  s, *arg;
    ngx_uint_t                 i;
    const char                *bad, *name;
    ngx_worksible_field_t     *f;
    ngx_worksible_resource_t  *res;

    res = ep->route->resource;

    rc = ngx_worksible_api_list_args(ep);
    if (rc != NGX_OK) {
        return rc;
    }

    filters = json_object();
    if (filters == NULL) {
        return NGX_ERROR;
    }

    for (i = 3; i < NGX_WORKSIBLE_API_FILTER_ARG; i++) {
        arg = &ep->args[i];

        if (arg->data == NULL) {
            continue;
        }

        if (!ngx_worksible_api_rfc3339(arg)
            || json_object_set_new(filters, ep->route->params[i],
                         json_stringn((char *) arg->data, arg->len)) != 0)
        {
            json_decref(filters);
            return ngx_worksible_api_refusal(r, ep,
                       NGX_WORKSIBLE_PARAMETER_INVALID, ep->route->params[i],
                       -1, "The time must be RFC 3339, such as "
                       "2026-11-29T15:09:28Z.");
        }
    }

    for (f = res->filters, i = NGX_WORKSIBLE_API_FILTER_ARG;
         f && f->name;
         f++, i++)
    {
        arg = &ep->args[i];

        if (arg->data == NULL) {
            continue;
        }

        v = json_stringn((char *) arg->data, arg->len);
        bad = (v == NULL) ? "not UTF-8" : ngx_worksible_resource_field(f, v);
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
            json_decref(filters);
            return NGX_ERROR;
        }

        if (bad != NULL) {
            json_decref(v);
            json_decref(filters);
            return ngx_worksible_api_refusal(r, ep,
                       NGX_WORKSIBLE_PARAMETER_INVALID, f->name, -1,
                       "The filter's value is not one this field takes.");
        }
    }

    text = json_dumps(filters, JSON_COMPACT);
    json_decref(filters);

    if (text == NULL) {
        return NGX_ERROR;
    }

    s.data = (u_char *) text;
    s.len = ngx_strlen(text);

    rc = ngx_worksible_pg_op_param(ep->op, &s);
    free(text);

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    /* $1 company, $2..$4 limit and cursors, $5 filters */

    return ngx_worksible_resource_sql(ep,
               "SELECT worksible_list($1, '%2$s', 'worksible_%1$s_object', "
               "'%3$s', $2, $3, $4, $5::jsonb)");
}


/* GET <url>/{id}: worksible_get(company, table, object function, id) */

ngx_int_t
ngx_worksible_resource_get(ngx_http_request_t *r,
    ngx_worksible_endpoint_t *ep)
{
    if (ngx_worksible_pg_op_param(ep->op, &ep->id) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_worksible_resource_sql(ep,
               "SELECT worksible_get($1, '%2$s', 'worksible_%1$s_object', $2)");
}


/* POST <url>: worksible_<object>_write(company, NULL, fields) */

ngx_int_t
ngx_worksible_resource_create(ngx_http_request_t *r,
    ngx_worksible_endpoint_t *ep)
{
    ngx_int_t  rc;

    rc = ngx_worksible_resource_fields(r, ep, ep->route->resource->fields, 1);
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

    rc = ngx_worksible_resource_fields(r, ep, ep->route->resource->fields, 0);
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

    rc = ngx_worksible_resource_fields(r, ep, ep->route->resource->fields, 0);
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
 * Every member of the body against fields: unknown ones are
 * parameter_unknown, a wrong type or value parameter_invalid, and on create
 * a required one absent is parameter_missing. Nothing is written before
 * the whole body passed.
 */

static ngx_int_t
ngx_worksible_resource_fields(ngx_http_request_t *r,
    ngx_worksible_endpoint_t *ep, ngx_worksible_field_t *fields,
    ngx_uint_t create)
{
    json_t                 *v;
    const char             *member, *bad;
    ngx_worksible_field_t  *f;

    json_object_foreach(ep->body, member, v) {

        for (f = fields; f->name; f++) {
            if (ngx_strcmp(f->name, member) == 0) {
                break;
            }
        }

        if (f->name == NULL) {
            return ngx_worksible_api_refusal(r, ep,
                       NGX_WORKSIBLE_PARAMETER_UNKNOWN, member, -1,
                       "This resource has no such field.");
        }

        if (json_is_null(v)) {
            if (f->nullable) {
                continue;
            }

            return ngx_worksible_api_refusal(r, ep,
                       NGX_WORKSIBLE_PARAMETER_INVALID, member, -1,
                       "This field cannot be null.");
        }

        bad = ngx_worksible_resource_field(f, v);

        if (bad != NULL) {
            return ngx_worksible_api_refusal(r, ep,
                       NGX_WORKSIBLE_PARAMETER_INVALID, member, -1, bad);
        }
    }

    if (!create) {
        return NGX_OK;
    }

    for (f = fields; f->name; f++) {
        v = json_object_get(ep->body, f->name);

        if (f->required && (v == NULL || json_is_null(v))) {
            return ngx_worksible_api_refusal(r, ep,
                       NGX_WORKSIBLE_PARAMETER_MISSING, f->name, -1,
                       "This field is required.");
        }
    }

    return NGX_OK;
}


/* NULL when v fits f, else why not (a detail for the client) */

static const char *
ngx_worksible_resource_field(ngx_worksible_field_t *f, json_t *v)
{
    size_t        len, n, k;
    const char   *s, *at, **e;
    json_int_t    i;
    ngx_str_t     id;

    if (f->type == NGX_WORKSIBLE_FIELD_MONEY) {
        if (!json_is_integer(v)) {
            return "Money is an integer in the currency's minor unit "
                   "(cents, yen, fils).";
        }

        i = json_integer_value(v);

        return (i < 0 || i > NGX_WORKSIBLE_MONEY_MAX)
               ? "Money is from 0 to 9007199254740991 minor units." : NULL;
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
        return (len > 0 && len <= f->max && s[0] == '/')
               ? NULL : "A path prefix starts with \"/\".";

    default:
        return "This field cannot be set.";
    }
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
