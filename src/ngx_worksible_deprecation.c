/*
 * Deprecation and sunset (see ngx_worksible_deprecation.h).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_worksible_deprecation.h"
#include "ngx_worksible_problem.h"


static time_t ngx_worksible_deprecation_date(ngx_str_t *s);


char *
ngx_worksible_deprecation_conf(ngx_conf_t *cf,
    ngx_worksible_deprecation_t **dep)
{
    ngx_str_t                    *value, s;
    ngx_uint_t                    i;
    ngx_worksible_deprecation_t  *d;

    if (*dep != NULL) {
        return "is duplicate";
    }

    d = ngx_pcalloc(cf->pool, sizeof(ngx_worksible_deprecation_t));
    if (d == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;
    i = 1;

    d->deprecated = ngx_worksible_deprecation_date(&value[1]);
    if (d->deprecated == NGX_ERROR) {
        goto invalid;
    }

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "sunset=", 7) == 0) {
            s.data = value[i].data + 7;
            s.len = value[i].len - 7;

            d->sunset = ngx_worksible_deprecation_date(&s);
            if (d->sunset == NGX_ERROR) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "link=", 5) == 0 && value[i].len > 5) {
            d->link.data = value[i].data + 5;
            d->link.len = value[i].len - 5;

            if (ngx_strlchr(d->link.data, d->link.data + d->link.len, '>')
                != NULL)
            {
                goto invalid;
            }

            continue;
        }

        if (ngx_strcmp(value[i].data, "gone") == 0) {
            d->gone = 1;
            continue;
        }

        goto invalid;
    }

    if (d->sunset && d->sunset < d->deprecated) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "worksible_deprecation: the sunset is before the "
                           "deprecation");
        return NGX_CONF_ERROR;
    }

    if (d->gone && d->sunset == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "worksible_deprecation: \"gone\" needs a sunset");
        return NGX_CONF_ERROR;
    }

    *dep = d;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid worksible_deprecation parameter \"%V\" "
                       "(DATE [sunset=DATE] [link=URL] [gone], dates as "
                       "YYYY-MM-DD)", &value[i]);

    return NGX_CONF_ERROR;
}


/* YYYY-MM-DD, a real day, as Unix seconds at midnight UTC; or NGX_ERROR */

static time_t
ngx_worksible_deprecation_date(ngx_str_t *s)
{
    time_t     t;
    ngx_int_t  y, m, d;
    struct tm  tm, back;

    if (s->len != 10 || s->data[4] != '-' || s->data[7] != '-') {
        return NGX_ERROR;
    }

    y = ngx_atoi(s->data, 4);
    m = ngx_atoi(s->data + 5, 2);
    d = ngx_atoi(s->data + 8, 2);

    if (y < 1970 || m < 1 || m > 12 || d < 1 || d > 31) {
        return NGX_ERROR;
    }

    ngx_memzero(&tm, sizeof(struct tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = m - 1;
    tm.tm_mday = d;

    t = timegm(&tm);

    /* 2026-02-30 would become March 2nd: refused */

    if (t == (time_t) -1 || gmtime_r(&t, &back) == NULL
        || back.tm_mday != d || back.tm_mon != m - 1)
    {
        return NGX_ERROR;
    }

    return t;
}


ngx_int_t
ngx_worksible_deprecation_headers(ngx_http_request_t *r,
    ngx_worksible_deprecation_t *dep)
{
    ngx_str_t  v;

    v.data = ngx_pnalloc(r->pool, NGX_TIME_T_LEN + 1);
    if (v.data == NULL) {
        return NGX_ERROR;
    }

    v.len = ngx_sprintf(v.data, "@%T", dep->deprecated) - v.data;

    if (ngx_worksible_header_add(r, "Deprecation", &v) != NGX_OK) {
        return NGX_ERROR;
    }

    if (dep->sunset) {
        v.data = ngx_pnalloc(r->pool, sizeof("Mon, 28 Sep 1970 06:00:00 GMT"));
        if (v.data == NULL) {
            return NGX_ERROR;
        }

        v.len = ngx_http_time(v.data, dep->sunset) - v.data;

        if (ngx_worksible_header_add(r, "Sunset", &v) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (dep->link.len == 0) {
        return NGX_OK;
    }

    v.data = ngx_pnalloc(r->pool, 2 * dep->link.len + 64);
    if (v.data == NULL) {
        return NGX_ERROR;
    }

    v.len = dep->sunset
            ? ngx_sprintf(v.data, "<%V>; rel=\"deprecation\", <%V>; "
                          "rel=\"sunset\"", &dep->link, &dep->link) - v.data
            : ngx_sprintf(v.data, "<%V>; rel=\"deprecation\"", &dep->link)
              - v.data;

    return ngx_worksible_header_add(r, "Link", &v);
}


ngx_int_t
ngx_worksible_deprecation_gone(ngx_http_request_t *r,
    ngx_worksible_deprecation_t *dep)
{
    ngx_str_t  detail;

    if (!dep->gone || ngx_time() < dep->sunset) {
        return NGX_DECLINED;
    }

    detail.data = ngx_pnalloc(r->pool, dep->link.len + 64);
    if (detail.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    detail.len = dep->link.len
                 ? ngx_sprintf(detail.data, "This endpoint was removed at "
                               "its sunset: see %V.", &dep->link)
                   - detail.data
                 : ngx_sprintf(detail.data, "This endpoint was removed at "
                               "its sunset.") - detail.data;

    return ngx_worksible_problem_send(r, NGX_WORKSIBLE_GONE, &detail, NULL);
}
