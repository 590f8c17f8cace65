/*
 * libFuzzer target for the JSON bodies: input "METHOD TARGET", a newline,
 * the body (POST /v1/invoices\n{"contract_id": ...}). The body is read as
 * the API reads it (ngx_worksible_api_json(): one object, no duplicate
 * members, integers past 64 bits as reals), then the route's endpoint
 * checks it against the field tables: nested items, money, dates,
 * emails, currencies, ids (ngx_worksible_resources.c), or the API key
 * members (ngx_worksible_api_keys.c). Each answer is an accepted row or a
 * 400 naming the member (ngx_worksible_fuzz_endpoint()); invalid JSON is
 * invalid_json.
 */

#include "fuzz_ngx.h"
#include "ngx_worksible_api.h"
#include "ngx_worksible_id.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t                   *json;
    ngx_int_t                 rc;
    ngx_str_t                 id, body, *args;
    ngx_uint_t                allow, reals;
    ngx_http_request_t       *r;
    ngx_worksible_route_t    *route;
    ngx_worksible_refusal_t   ref;

    r = ngx_worksible_fuzz_request();

    if (ngx_worksible_fuzz_line(r, data, size, &body) != NGX_OK
        || (route = ngx_worksible_api_route(r, &id, &allow)) == NULL
        || !route->body
        || (route->id_prefix && id.len
            && !ngx_worksible_id_valid(&id, route->id_prefix)))
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
        ngx_worksible_fuzz_free(r);
        return 0;
    }

    /* the body in memory of its own, as ngx_worksible_api_body() makes it */

    body.data = ngx_pnalloc(r->pool, body.len + 1);
    if (body.data == NULL) {
        abort();
    }

    ngx_memcpy(body.data, data + (size - body.len), body.len);

    reals = 0;
    json = ngx_worksible_api_json(r->pool, &body, &reals, &ref);

    if (json == NULL) {
        ngx_worksible_fuzz_assert(ref.err == NGX_WORKSIBLE_INVALID_JSON);

    } else {
        (void) ngx_worksible_fuzz_endpoint(r, route, &id, args, json, reals,
                                           data, size);
        json_decref(json);
    }

    ngx_worksible_fuzz_free(r);

    return 0;
}
