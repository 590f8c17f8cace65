/*
 * Deprecation and sunset of a location: the Deprecation (RFC 9745), Sunset
 * (RFC 8594) and Link headers on its responses, and optionally 410 gone
 * after the sunset.
 */

#ifndef _NGX_WORKSIBLE_DEPRECATION_H_INCLUDED_
#define _NGX_WORKSIBLE_DEPRECATION_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


typedef struct {
    time_t                      deprecated;   /* Unix seconds */
    time_t                      sunset;       /* 0: none */
    ngx_str_t                   link;         /* len 0: none */
    ngx_uint_t                  gone;         /* 410 after the sunset */
} ngx_worksible_deprecation_t;


/*
 * "worksible_deprecation DATE [sunset=DATE] [link=URL] [gone]": dates are
 * YYYY-MM-DD (midnight UTC); nginx -t refuses an unreadable date, a sunset
 * before the deprecation, and gone without a sunset. NGX_CONF_OK or an
 * error.
 */
char *ngx_worksible_deprecation_conf(ngx_conf_t *cf,
    ngx_worksible_deprecation_t **dep);

/* adds Deprecation, Sunset and Link to r's response */
ngx_int_t ngx_worksible_deprecation_headers(ngx_http_request_t *r,
    ngx_worksible_deprecation_t *dep);

/*
 * NGX_DECLINED while the location lives; after a sunset with "gone", sends
 * 410 gone (RFC 9457, pointing at the link) and returns its rc.
 */
ngx_int_t ngx_worksible_deprecation_gone(ngx_http_request_t *r,
    ngx_worksible_deprecation_t *dep);


#endif /* _NGX_WORKSIBLE_DEPRECATION_H_INCLUDED_ */
