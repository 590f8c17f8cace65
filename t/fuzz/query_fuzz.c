/*
 * libFuzzer target for the API's query strings: input "METHOD TARGET"
 * (GET /v1/contracts?limit=5&status=active&created_at[gte]=...). The
 * route table finds the endpoint, ngx_worksible_api_args() splits and
 * percent-decodes the query, and the endpoint checks limit, cursors,
 * created_at[...] and filters (ngx_worksible_api_list_args(),
 * ngx_worksible_resource_list()). Each answer is an accepted query or a
 * 400 naming the parameter (ngx_worksible_fuzz_endpoint()).
 */

#include "fuzz_ngx.h"
#include "ngx_worksible_api.h"
#include "ngx_worksible_id.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ngx_int_t                 rc;
    ngx_str_t                 id, rest, *args;
    ngx_uint_t                allow;
    ngx_http_request_t       *r;
    ngx_worksible_route_t    *route;
    ngx_worksible_refusal_t   ref;

    r = ngx_worksible_fuzz_request();

    if (ngx_worksible_fuzz_line(r, data, size, &rest) != NGX_OK
        || (route = ngx_worksible_api_route(r, &id, &allow)) == NULL
        || route->body)
    {
        ngx_worksible_fuzz_free(r);
        return 0;
    }

    args = ngx_pcalloc(r->pool, NGX_WORKSIBLE_API_MAX_ARGS * sizeof(ngx_str_t));
    if (args == NULL) {
        abort();
    }

    ngx_memzero(&ref, sizeof(ngx_worksible_refusal_t));

    rc = ngx_worksible_api_args(r, route, args, &ref);

    ngx_worksible_fuzz_assert(rc == NGX_OK || rc == NGX_DECLINED);

    if (rc == NGX_DECLINED) {
        ngx_worksible_fuzz_assert(ngx_worksible_fuzz_refusal(ref.err,
                                                             &ref.param));
        ngx_worksible_fuzz_assert(ref.param.len > 0);

    } else if (route->id_prefix == NULL || id.len == 0
               || ngx_worksible_id_valid(&id, route->id_prefix))
    {
        /* else 404: ngx_worksible_api_run() checks the {id} first */
        (void) ngx_worksible_fuzz_endpoint(r, route, &id, args, NULL, 0,
                                           data, size);
    }

    ngx_worksible_fuzz_free(r);

    return 0;
}
