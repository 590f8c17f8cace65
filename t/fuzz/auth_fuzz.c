/*
 * libFuzzer target for the Authorization header
 * (ngx_worksible_auth_token()): the input is its value. A key read came
 * after a case-insensitive "Bearer" and spaces or tabs, lies inside the
 * header, and is the whole token but for spaces and tabs around it.
 */

#include "fuzz_ngx.h"
#include "ngx_worksible_auth.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char               *p, *last;
    ngx_int_t             rc;
    ngx_table_elt_t      *h;
    ngx_http_request_t   *r;
    ngx_worksible_key_t   key;

    r = ngx_worksible_fuzz_request();

    h = ngx_worksible_fuzz_header(r, "Authorization", data, size);
    r->headers_in.authorization = h;

    rc = ngx_worksible_auth_token(r, &key);

    ngx_worksible_fuzz_assert(rc == NGX_OK || rc == NGX_DECLINED);

    if (rc == NGX_OK) {
        p = h->value.data;
        last = p + h->value.len;

        ngx_worksible_fuzz_assert(ngx_strncasecmp(p, (u_char *) "bearer", 6)
                                  == 0);

        for (p += 6; p < last && (*p == ' ' || *p == '\t'); p++) {
            /* void */
        }

        while (last > p && (last[-1] == ' ' || last[-1] == '\t')) {
            last--;
        }

        ngx_worksible_fuzz_assert(last - p == NGX_WORKSIBLE_KEY_LEN);
        ngx_worksible_fuzz_assert(key.key_id
                                  == p + NGX_WORKSIBLE_KEY_PREFIX_LEN);
        ngx_worksible_fuzz_assert(key.secret + NGX_WORKSIBLE_KEY_SECRET_LEN
                                  == last);
    }

    ngx_worksible_fuzz_free(r);

    return 0;
}
