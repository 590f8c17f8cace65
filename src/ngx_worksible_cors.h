/*
 * CORS for browser clients (the Fetch standard's CORS protocol):
 * worksible_cors names the origins whose pages may call the API.
 */

#ifndef _NGX_WORKSIBLE_CORS_H_INCLUDED_
#define _NGX_WORKSIBLE_CORS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


typedef struct {
    ngx_array_t               *origins;      /* ngx_str_t, "scheme://host" */
    ngx_uint_t                 any;          /* "*": every origin */
    time_t                     max_age;      /* preflight cache, seconds */
} ngx_worksible_cors_t;


/*
 * worksible_cors off | ORIGIN... [max_age=TIME];  context http, server,
 * location. ORIGIN: "http(s)://host[:port]" as a browser sends it in
 * Origin (no path), or "*" for any origin. max_age: how long a browser may
 * keep a preflight's answer (Access-Control-Max-Age, default 10m, at most
 * 24h). *cors is left NULL for "off".
 */
char *ngx_worksible_cors_conf(ngx_conf_t *cf, ngx_worksible_cors_t **cors);

/*
 * Access phase, before any key: a CORS preflight (OPTIONS with Origin and
 * Access-Control-Request-Method) from an origin cors allows is answered
 * 204 with Access-Control-Allow-Methods|Headers and -Max-Age (the filter
 * adds -Allow-Origin): returns the rc to finalize the request with. Any
 * other request: NGX_DECLINED.
 */
ngx_int_t ngx_worksible_cors_preflight(ngx_http_request_t *r,
    ngx_worksible_cors_t *cors);

/*
 * Installs the header filter: every response of a location with
 * worksible_cors, or of a request that passed one before error_page or
 * try_files sent it elsewhere (errors and nginx's own pages too), gets
 * Vary: Origin,
 * and, for an allowed Origin, Access-Control-Allow-Origin (that origin)
 * and Access-Control-Expose-Headers (the rate-limit, request id, replay,
 * deprecation and Location headers). A proxied service's own
 * Access-Control-* headers give way to these.
 */
ngx_int_t ngx_worksible_cors_filter_init(ngx_conf_t *cf);


#endif /* _NGX_WORKSIBLE_CORS_H_INCLUDED_ */
