/*
 * libFuzzer target for the request log's redaction
 * (ngx_worksible_reqlog_path()): the input is the request line's target.
 * The path logged is a JSON string of at most 4 x 2048 bytes in which no
 * API key survives: nowhere does "wsk" (any case) then "_" then a key
 * character follow each other, each of them read as the module reads
 * them, percent-decoded up to three times (RFC 3986, section 2.1).
 */

#include "fuzz_ngx.h"
#include "ngx_worksible_reqlog.h"


/* the character at *p, percent-decoded up to three times; advances *p */

static int
ngx_worksible_fuzz_char(const u_char **p, const u_char *last)
{
    int            c, depth;
    const u_char  *q;

    if (*p >= last) {
        return -1;
    }

    c = *(*p)++;
    q = *p;

    for (depth = 0; depth < 3 && c == '%'; depth++) {
        if (last - q < 2 || !isxdigit(q[0]) || !isxdigit(q[1])) {
            break;
        }

        c = (ngx_hextoi((u_char *) q, 2));
        q += 2;
        *p = q;
    }

    return c;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                  c;
    json_t              *path;
    size_t               len;
    const u_char        *s, *p, *last;
    ngx_http_request_t  *r;

    r = ngx_worksible_fuzz_request();

    r->unparsed_uri.data = ngx_pnalloc(r->pool, size);
    if (r->unparsed_uri.data == NULL && size) {
        abort();
    }

    ngx_memcpy(r->unparsed_uri.data, data, size);
    r->unparsed_uri.len = size;

    path = ngx_worksible_reqlog_path(r);

    ngx_worksible_fuzz_assert(path != NULL && json_is_string(path));

    s = (const u_char *) json_string_value(path);
    len = json_string_length(path);
    last = s + len;

    ngx_worksible_fuzz_assert(len <= 4 * 2048);

    for ( /* void */ ; s < last; s++) {
        p = s;

        if ((c = ngx_worksible_fuzz_char(&p, last)) == -1
            || (c | 0x20) != 'w'
            || (c = ngx_worksible_fuzz_char(&p, last)) == -1
            || (c | 0x20) != 's'
            || (c = ngx_worksible_fuzz_char(&p, last)) == -1
            || (c | 0x20) != 'k'
            || (c = ngx_worksible_fuzz_char(&p, last)) != '_')
        {
            continue;
        }

        c = ngx_worksible_fuzz_char(&p, last);

        ngx_worksible_fuzz_assert(!isalnum(c) && c != '_');
    }

    json_decref(path);
    ngx_worksible_fuzz_free(r);

    return 0;
}
