/*
 * libFuzzer target for the request log (ngx_worksible_reqlog_handler(),
 * its redaction ngx_worksible_reqlog_path()): the input is the request
 * line's target, then lines: the User-Agent and Idempotency-Key headers.
 * The row has each as a JSON string (or null), cut to 512 and 255 bytes;
 * its path is at most 4 x 2048 bytes and no API key survives in it:
 * nowhere do "wsk" (any case), "_" and a key character follow each
 * other, each of them read as the module reads them, percent-decoded up
 * to three times (RFC 3986, section 2.1).
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


/* the row's member name: a string of at most max bytes, or null */

static void
ngx_worksible_fuzz_member(json_t *row, const char *name, size_t max)
{
    json_t  *v;

    v = json_object_get(row, name);

    ngx_worksible_fuzz_assert(v != NULL);
    ngx_worksible_fuzz_assert(json_is_null(v)
                              || (json_is_string(v)
                                  && json_string_length(v) <= max));
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                  c;
    json_t              *row, *path;
    size_t               len;
    ngx_uint_t           i;
    const u_char        *s, *p, *last, *nl;
    ngx_http_request_t  *r;
    struct sockaddr_in   sin;

    static const char  *headers[] = { "User-Agent", "Idempotency-Key" };

    r = ngx_worksible_fuzz_request();

    last = data + size;
    nl = memchr(data, '\n', size);
    len = (nl ? nl : last) - data;

    r->unparsed_uri.data = ngx_pnalloc(r->pool, len);
    if (r->unparsed_uri.data == NULL && len) {
        abort();
    }

    if (len) {
        ngx_memcpy(r->unparsed_uri.data, data, len);
    }

    r->unparsed_uri.len = len;

    for (i = 0; i < 2 && nl != NULL; i++) {
        p = nl + 1;
        nl = memchr(p, '\n', last - p);
        (void) ngx_worksible_fuzz_header(r, headers[i], p,
                                         (nl ? nl : last) - p);
    }

    /* a client of a worksible_auth location, logged */

    ngx_memzero(&sin, sizeof(struct sockaddr_in));
    sin.sin_family = AF_INET;
    r->connection->sockaddr = (struct sockaddr *) &sin;
    ngx_str_set(&r->connection->addr_text, "192.0.2.1");
    r->start_sec = ngx_time();

    if (ngx_worksible_fuzz_logged(r) != NGX_OK) {
        abort();
    }

    row = ngx_worksible_fuzz_row();

    ngx_worksible_fuzz_member(row, "user_agent", 512);
    ngx_worksible_fuzz_member(row, "idempotency_key", 255);
    ngx_worksible_fuzz_member(row, "method", 32);

    path = json_object_get(row, "path");

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

    json_decref(row);
    ngx_worksible_fuzz_free(r);

    return 0;
}
