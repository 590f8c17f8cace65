/*
 * libFuzzer target for the Content-Type of a body
 * (ngx_worksible_api_media_type()): the input is the header's value. Only
 * "application/json" (any case), alone or before ";", a space or a tab,
 * passes, and then any charset parameter is UTF-8; a body past 64 KiB is
 * body_too_large whatever its type.
 */

#include "fuzz_ngx.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                 *p, *last;
    ngx_table_elt_t        *h;
    ngx_http_request_t     *r;
    ngx_worksible_error_e   err;

    r = ngx_worksible_fuzz_request();

    h = ngx_worksible_fuzz_header(r, "Content-Type", data, size);
    r->headers_in.content_type = h;
    r->headers_in.content_length_n = (size & 1) ? 65537 : 2;

    err = ngx_worksible_api_media_type(r);

    if (size & 1) {
        ngx_worksible_fuzz_assert(err == NGX_WORKSIBLE_BODY_TOO_LARGE);

    } else if (err == NGX_WORKSIBLE_OK) {
        p = h->value.data;
        last = p + h->value.len;

        ngx_worksible_fuzz_assert(last - p >= 16
                                  && ngx_strncasecmp(p, (u_char *)
                                         "application/json", 16) == 0
                                  && (last - p == 16 || p[16] == ';'
                                      || p[16] == ' ' || p[16] == '\t'));

        p = ngx_strlcasestrn(p + 16, last, (u_char *) "charset=", 8 - 1);

        if (p != NULL) {
            p += 8;
            p += (p < last && *p == '"');
            ngx_worksible_fuzz_assert(last - p >= 5
                                      && ngx_strncasecmp(p, (u_char *)
                                                         "utf-8", 5) == 0);
        }

    } else {
        ngx_worksible_fuzz_assert(err == NGX_WORKSIBLE_UNSUPPORTED_MEDIA_TYPE);
    }

    ngx_worksible_fuzz_free(r);

    return 0;
}
