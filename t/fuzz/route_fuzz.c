/*
 * libFuzzer target for the API's route table (ngx_worksible_api_route()):
 * input "METHOD TARGET". A route found takes the method (HEAD as GET) and
 * its pattern with the {id} it returned is the path; none found, the
 * methods it allows exclude this one; the scope checked before an
 * Idempotency-Key replay is the route's.
 */

#include "fuzz_ngx.h"
#include "ngx_worksible_api.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                 *p, *brace, *close;
    ngx_str_t               id, rest, *scope;
    ngx_uint_t              allow, method;
    ngx_http_request_t     *r;
    ngx_worksible_route_t  *route;

    r = ngx_worksible_fuzz_request();

    if (ngx_worksible_fuzz_line(r, data, size, &rest) != NGX_OK) {
        ngx_worksible_fuzz_free(r);
        return 0;
    }

    method = (r->method == NGX_HTTP_HEAD) ? NGX_HTTP_GET : r->method;

    route = ngx_worksible_api_route(r, &id, &allow);
    scope = ngx_worksible_api_scope(r);

    if (route == NULL) {
        ngx_worksible_fuzz_assert((allow & method) == 0);
        ngx_worksible_fuzz_assert(scope == NULL);

    } else {
        ngx_worksible_fuzz_assert(route->method & method);
        ngx_worksible_fuzz_assert(scope == &route->scope);

        /* the pattern, {id} replaced by id, is the path */

        brace = ngx_strlchr(route->pattern.data,
                            route->pattern.data + route->pattern.len, '{');

        if (brace == NULL) {
            ngx_worksible_fuzz_assert(id.len == 0);
            ngx_worksible_fuzz_assert(r->uri.len == route->pattern.len
                                      && ngx_strncmp(r->uri.data,
                                                     route->pattern.data,
                                                     r->uri.len) == 0);

        } else {
            close = ngx_strlchr(brace, route->pattern.data
                                       + route->pattern.len, '}');
            ngx_worksible_fuzz_assert(close != NULL);
            ngx_worksible_fuzz_assert(id.len > 0
                                      && id.data >= r->uri.data
                                      && id.data + id.len
                                         <= r->uri.data + r->uri.len);
            ngx_worksible_fuzz_assert(ngx_strlchr(id.data, id.data + id.len,
                                                  '/') == NULL);

            p = r->uri.data;
            ngx_worksible_fuzz_assert(id.data - p == brace
                                                     - route->pattern.data);
            ngx_worksible_fuzz_assert(ngx_strncmp(p, route->pattern.data,
                                                  id.data - p) == 0);

            p = id.data + id.len;
            close++;
            ngx_worksible_fuzz_assert(
                (size_t) (r->uri.data + r->uri.len - p)
                == (size_t) (route->pattern.data + route->pattern.len - close)
                && ngx_strncmp(p, close, r->uri.data + r->uri.len - p) == 0);
        }
    }

    ngx_worksible_fuzz_free(r);

    return 0;
}
