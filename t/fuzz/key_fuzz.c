/*
 * libFuzzer target for the API key, server secret and CIDR parsers
 * (src/ngx_worksible_key.c, src/ngx_worksible_cidr.c): `make fuzz` runs
 * it under ASan and UBSan. A parsed key must lie inside the input and hold
 * only its alphabet; a parsed CIDR's prefix must fit its family.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_worksible_cidr.h"
#include "ngx_worksible_key.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t                         i;
    char                           why[128];
    u_char                         secret[NGX_WORKSIBLE_SERVER_SECRET_LEN];
    ngx_worksible_key_t            key;
    ngx_worksible_cidr_t           cidr;
    ngx_worksible_server_secret_t  secrets[NGX_WORKSIBLE_SERVER_SECRETS_MAX];

    if (ngx_worksible_key_parse(data, size, &key) == NGX_WORKSIBLE_KEY_OK) {

        if (size != NGX_WORKSIBLE_KEY_LEN
            || key.key_id != data + NGX_WORKSIBLE_KEY_PREFIX_LEN
            || key.secret != key.key_id + NGX_WORKSIBLE_KEY_ID_LEN + 1)
        {
            abort();
        }

        for (i = 0; i < NGX_WORKSIBLE_KEY_ID_LEN; i++) {
            if (strchr("abcdefghijklmnopqrstuvwxyz0123456789", key.key_id[i])
                == NULL)
            {
                abort();
            }
        }
    }

    (void) ngx_worksible_server_secret_decode(data, size, secret);
    (void) ngx_worksible_server_secrets_parse(data, size, secrets,
                                              NGX_WORKSIBLE_SERVER_SECRETS_MAX);

    if (ngx_worksible_cidr_parse((const char *) data, size, &cidr, why,
                                 sizeof(why))
        == 0
        && (cidr.prefix > (cidr.family == AF_INET ? 32u : 128u)))
    {
        abort();
    }

    return 0;
}
