/*
 * libFuzzer target for the Idempotency-Key header
 * (ngx_worksible_idempotency_key()): each line of the input is one
 * Idempotency-Key header. Two or more are refused; a key read is 1..255
 * visible ASCII characters; read from a bare value it is the value, read
 * from a structured-field string (RFC 8941, section 3.3.3) it is the
 * value unquoted, so that quoting it again gives the value back.
 */

#include "fuzz_ngx.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char              *p, *q, *last, *nl;
    size_t               i;
    ngx_int_t            rc;
    ngx_str_t            key, value;
    ngx_uint_t           n;
    ngx_table_elt_t     *h;
    ngx_http_request_t  *r;

    r = ngx_worksible_fuzz_request();

    h = NULL;
    n = 0;
    p = (u_char *) data;
    last = p + size;

    while (size > 0 && n < 3) {
        nl = ngx_strlchr(p, last, '\n');
        h = ngx_worksible_fuzz_header(r, "Idempotency-Key", p,
                                      (nl ? nl : last) - p);
        n++;

        if (nl == NULL) {
            break;
        }

        p = nl + 1;
    }

    rc = ngx_worksible_idempotency_key(r, &key);

    if (n == 0) {
        ngx_worksible_fuzz_assert(rc == NGX_DECLINED);

    } else if (n > 1) {
        ngx_worksible_fuzz_assert(rc == NGX_ABORT);

    } else if (rc == NGX_OK) {
        value = h->value;

        ngx_worksible_fuzz_assert(key.len >= 1 && key.len <= 255);

        for (i = 0; i < key.len; i++) {
            ngx_worksible_fuzz_assert(key.data[i] > 0x20
                                      && key.data[i] < 0x7f);
        }

        if (value.data[0] != '"') {
            ngx_worksible_fuzz_assert(key.len == value.len
                                      && ngx_memcmp(key.data, value.data,
                                                    key.len) == 0);

        } else {
            q = ngx_pnalloc(r->pool, 2 * key.len + 2);
            if (q == NULL) {
                abort();
            }

            p = q;
            *p++ = '"';

            for (i = 0; i < key.len; i++) {
                if (key.data[i] == '"' || key.data[i] == '\\') {
                    *p++ = '\\';
                }

                *p++ = key.data[i];
            }

            *p++ = '"';

            ngx_worksible_fuzz_assert((size_t) (p - q) == value.len
                                      && ngx_memcmp(q, value.data,
                                                    value.len) == 0);
        }

    } else {
        ngx_worksible_fuzz_assert(rc == NGX_ABORT);
    }

    ngx_worksible_fuzz_free(r);

    return 0;
}
