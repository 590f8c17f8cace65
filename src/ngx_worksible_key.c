/*
 * API key format and hashing (see ngx_worksible_key.h).
 */

#include <string.h>
#include <sodium.h>

#include "ngx_worksible_key.h"


static int ngx_worksible_key_span(const u_char *p, size_t len, int upper);


static const char  ngx_worksible_key_alnum[] =
    "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";


int
ngx_worksible_key_parse(const u_char *token, size_t len,
    ngx_worksible_key_t *key)
{
    const u_char  *id, *secret;

    if (len != NGX_WORKSIBLE_KEY_LEN
        || memcmp(token, NGX_WORKSIBLE_KEY_PREFIX,
                  NGX_WORKSIBLE_KEY_PREFIX_LEN) != 0)
    {
        return NGX_WORKSIBLE_KEY_MALFORMED;
    }

    id = token + NGX_WORKSIBLE_KEY_PREFIX_LEN;
    secret = id + NGX_WORKSIBLE_KEY_ID_LEN + 1;

    if (id[NGX_WORKSIBLE_KEY_ID_LEN] != '_'
        || !ngx_worksible_key_span(id, NGX_WORKSIBLE_KEY_ID_LEN, 0)
        || !ngx_worksible_key_span(secret, NGX_WORKSIBLE_KEY_SECRET_LEN, 1))
    {
        return NGX_WORKSIBLE_KEY_MALFORMED;
    }

    key->key_id = id;
    key->secret = secret;

    return NGX_WORKSIBLE_KEY_OK;
}


/* 1 when p[0..len) is [a-z0-9], or [A-Za-z0-9] when upper is set */

static int
ngx_worksible_key_span(const u_char *p, size_t len, int upper)
{
    u_char  c;
    size_t  i;

    for (i = 0; i < len; i++) {
        c = p[i];

        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
            || (upper && c >= 'A' && c <= 'Z'))
        {
            continue;
        }

        return 0;
    }

    return 1;
}


void
ngx_worksible_key_generate(u_char *out)
{
    u_char  *p;
    size_t   i;

    p = out;
    memcpy(p, NGX_WORKSIBLE_KEY_PREFIX, NGX_WORKSIBLE_KEY_PREFIX_LEN);
    p += NGX_WORKSIBLE_KEY_PREFIX_LEN;

    for (i = 0; i < NGX_WORKSIBLE_KEY_ID_LEN; i++) {
        *p++ = ngx_worksible_key_alnum[randombytes_uniform(36)];
    }

    *p++ = '_';

    for (i = 0; i < NGX_WORKSIBLE_KEY_SECRET_LEN; i++) {
        *p++ = ngx_worksible_key_alnum[randombytes_uniform(62)];
    }
}


void
ngx_worksible_key_hash(u_char *out, const ngx_worksible_key_t *key,
    const u_char *server_secret)
{
    crypto_generichash_state  st;

    crypto_generichash_init(&st, server_secret,
                            NGX_WORKSIBLE_SERVER_SECRET_LEN,
                            NGX_WORKSIBLE_KEY_HASH_LEN);
    crypto_generichash_update(&st, key->key_id, NGX_WORKSIBLE_KEY_ID_LEN);
    crypto_generichash_update(&st, key->secret, NGX_WORKSIBLE_KEY_SECRET_LEN);
    crypto_generichash_final(&st, out, NGX_WORKSIBLE_KEY_HASH_LEN);
}


int
ngx_worksible_key_hash_equal(const u_char *a, const u_char *b)
{
    return sodium_memcmp(a, b, NGX_WORKSIBLE_KEY_HASH_LEN) == 0;
}


int
ngx_worksible_server_secret_decode(const u_char *text, size_t len,
    u_char *out)
{
    size_t  i, bin_len;
    u_char  buf[NGX_WORKSIBLE_SERVER_SECRET_LEN];

    if (len < 2 * NGX_WORKSIBLE_SERVER_SECRET_LEN) {
        return -1;
    }

    for (i = 2 * NGX_WORKSIBLE_SERVER_SECRET_LEN; i < len; i++) {
        if (text[i] != ' ' && text[i] != '\t' && text[i] != '\r'
            && text[i] != '\n')
        {
            return -1;
        }
    }

    if (sodium_hex2bin(buf, sizeof(buf), (const char *) text,
                       2 * NGX_WORKSIBLE_SERVER_SECRET_LEN, NULL, &bin_len,
                       NULL)
        != 0
        || bin_len != sizeof(buf))
    {
        return -1;
    }

    memcpy(out, buf, sizeof(buf));
    sodium_memzero(buf, sizeof(buf));

    return 0;
}


int
ngx_worksible_server_secrets_parse(const u_char *text, size_t len,
    ngx_worksible_server_secret_t *out, int max)
{
    int            n, i, bare;
    unsigned       version;
    const u_char  *p, *end, *eol, *next, *colon, *hex, *d;

    n = 0;
    bare = 0;
    end = text + len;

    for (p = text; p < end; p = next) {
        eol = memchr(p, '\n', end - p);
        next = (eol != NULL) ? eol + 1 : end;

        if (eol == NULL) {
            eol = end;
        }

        while (eol > p
               && (eol[-1] == '\r' || eol[-1] == ' ' || eol[-1] == '\t'))
        {
            eol--;
        }

        if (eol == p) {
            continue;
        }

        if (n == max) {
            return -1;
        }

        colon = memchr(p, ':', eol - p);

        if (colon == NULL) {
            version = 1;
            hex = p;
            bare = 1;

        } else {
            if (colon == p || colon - p > 5 || *p == '0') {
                return -1;
            }

            version = 0;

            for (d = p; d < colon; d++) {
                if (*d < '0' || *d > '9') {
                    return -1;
                }

                version = version * 10 + (*d - '0');
            }

            if (version > 32767) {
                return -1;
            }

            hex = colon + 1;
        }

        if (eol - hex != 2 * NGX_WORKSIBLE_SERVER_SECRET_LEN
            || ngx_worksible_server_secret_decode(hex, eol - hex,
                                                  out[n].secret)
               != 0)
        {
            return -1;
        }

        for (i = 0; i < n; i++) {
            if (out[i].version == version) {
                return -1;
            }
        }

        out[n++].version = version;
    }

    if (n == 0 || (bare && n > 1)) {
        return -1;
    }

    return n;
}


int
ngx_worksible_scope_check(const u_char *s, size_t len)
{
    size_t  i, colon;

    if (len > 64) {
        return 0;
    }

    for (colon = 0; colon < len && s[colon] != ':'; colon++) {
        if (!((s[colon] >= 'a' && s[colon] <= 'z')
              || (s[colon] == '_' && colon > 0)))
        {
            return 0;
        }
    }

    if (colon == 0 || colon == len) {
        return 0;
    }

    i = len - colon;

    return (i == 5 && memcmp(s + colon, ":read", 5) == 0)
           || (i == 6 && memcmp(s + colon, ":write", 6) == 0);
}
