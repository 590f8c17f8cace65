/*
 * Content handler of worksible_api: the routes of the REST API (API.md).
 */

#ifndef _NGX_WORKSIBLE_API_H_INCLUDED_
#define _NGX_WORKSIBLE_API_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/*
 * The location's content handler: routes r->uri (already normalized by
 * nginx) and the method to an endpoint, checks its scope and query, and
 * answers with the JSON that PostgreSQL builds. Errors are RFC 9457
 * problems: 400 parameter_invalid|parameter_unknown, 403
 * insufficient_scope (with WWW-Authenticate, RFC 6750 section 3.1), 404
 * route_not_found|resource_not_found, 405 method_not_allowed (with Allow),
 * 500 internal_error, 503 service_unavailable (with Retry-After).
 */
ngx_int_t ngx_worksible_api_handler(ngx_http_request_t *r);


#endif /* _NGX_WORKSIBLE_API_H_INCLUDED_ */
