/*
 * libFuzzer target for the metrics writer (ngx_worksible_metrics_handler()):
 * the input is the counters, then the Accept header. The exposition is
 * whole whatever the counters hold (every one at its widest still fits):
 * JSON that jansson reads back with each counter's value, or the
 * Prometheus text format ending with the last counter's line.
 */

#include "fuzz_ngx.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t                   *json, *v;
    ngx_int_t                 rc;
    ngx_uint_t                i;
    ngx_http_request_t       *r;
    ngx_worksible_metrics_t   m;
    u_char                    line[128], *p;

    static const char  *outcomes[] = {
        "2xx", "3xx", "401", "403", "429", "4xx", "5xx"
    };

    if (size < sizeof(m)) {
        return 0;
    }

    ngx_memcpy(&m, data, sizeof(m));
    data += sizeof(m);
    size -= sizeof(m);

    r = ngx_worksible_fuzz_request();

    if (size > 0) {
        (void) ngx_worksible_fuzz_header(r, "Accept", data, size);
    }

    ngx_worksible_fuzz_mcf.metrics = &m;

    rc = ngx_worksible_metrics_handler(r);

    ngx_worksible_fuzz_mcf.metrics = NULL;

    ngx_worksible_fuzz_assert(rc == NGX_OK);
    ngx_worksible_fuzz_assert(ngx_worksible_fuzz_status == NGX_HTTP_OK);
    ngx_worksible_fuzz_assert((off_t) ngx_worksible_fuzz_body.len
                              == r->headers_out.content_length_n);

    if (ngx_strncmp(r->headers_out.content_type.data, "application/json",
                    16) == 0)
    {
        json = json_loadb((char *) ngx_worksible_fuzz_body.data,
                          ngx_worksible_fuzz_body.len,
                          JSON_DECODE_INT_AS_REAL, NULL);
        ngx_worksible_fuzz_assert(json != NULL);

        for (i = 0; i < NGX_WORKSIBLE_OUTCOMES; i++) {
            v = json_object_get(json_object_get(json, "requests_total"),
                                outcomes[i]);
            ngx_worksible_fuzz_assert(v != NULL);
            /* as reals: a counter may be past 2^63 */
            ngx_worksible_fuzz_assert(json_is_real(v)
                                      && json_real_value(v)
                                         == (double) m.requests[i]);
        }

        v = json_object_get(json, "log_rows_dropped_total");
        ngx_worksible_fuzz_assert(v != NULL);

        json_decref(json);

    } else {
        p = ngx_sprintf(line, "worksible_store_timeouts_total{store=\"redis\"}"
                        " %uA\n", m.redis.timeouts);

        ngx_worksible_fuzz_assert(
            ngx_worksible_fuzz_body.len >= (size_t) (p - line)
            && ngx_memcmp(ngx_worksible_fuzz_body.data
                          + ngx_worksible_fuzz_body.len - (p - line),
                          line, p - line) == 0);
    }

    ngx_worksible_fuzz_free(r);

    return 0;
}
