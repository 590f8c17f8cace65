/*
 * Unit tests of the API key format and hashing (src/ngx_worksible_key.c),
 * printing TAP for prove (t/unit.t runs the binary the Makefile builds).
 */

#include <stdio.h>
#include <string.h>
#include <sodium.h>

#include "ngx_worksible_key.h"
#include "tap.h"


static int
parses(const char *token)
{
    ngx_worksible_key_t  key;

    return ngx_worksible_key_parse((const u_char *) token, strlen(token), &key)
           == NGX_WORKSIBLE_KEY_OK;
}


int
main(void)
{
    size_t               i;
    u_char               a[NGX_WORKSIBLE_KEY_LEN], b[NGX_WORKSIBLE_KEY_LEN];
    u_char               s1[32], s2[32], h1[32], h2[32], h3[32];
    ngx_worksible_key_t  ka, kb;

    static const char   *good = "wsk_live_abcdefgh1234_"
                                "ABCDEFGHIJKLMNOPQRSTUVWXyz012345";

    static const char   *bad[] = {
        "",
        "wsk_live_",
        "wsk_test_abcdefgh1234_ABCDEFGHIJKLMNOPQRSTUVWXyz012345",
        "WSK_LIVE_abcdefgh1234_ABCDEFGHIJKLMNOPQRSTUVWXyz012345",
        "wsk_live_Abcdefgh1234_ABCDEFGHIJKLMNOPQRSTUVWXyz012345",
        "wsk_live_abcdefgh1234-ABCDEFGHIJKLMNOPQRSTUVWXyz012345",
        "wsk_live_abcdefgh123_ABCDEFGHIJKLMNOPQRSTUVWXyz0123456",
        "wsk_live_abcdefgh1234_ABCDEFGHIJKLMNOPQRSTUVWXyz01234",
        "wsk_live_abcdefgh1234_ABCDEFGHIJKLMNOPQRSTUVWXyz0123456",
        "wsk_live_abcdefgh1234_ABCDEFGHIJKLMNOPQRSTUVWXyz01234+",
        "wsk_live_abcdefgh1234_ABCDEFGHIJKLMNOPQRSTUVWXyz01234 ",
        "wsk_live_abcdefg_1234_ABCDEFGHIJKLMNOPQRSTUVWXyz012345",
        NULL
    };

    if (sodium_init() < 0) {
        printf("Bail out! sodium_init failed\n");
        return 1;
    }

    ok(parses(good), "a well-formed live key parses");

    ngx_worksible_key_parse((const u_char *) good, strlen(good), &ka);
    ok(memcmp(ka.key_id, "abcdefgh1234", 12) == 0, "key id located");
    ok(memcmp(ka.secret, "ABCDEFGHIJKLMNOPQRSTUVWXyz012345", 32) == 0,
       "secret located");

    for (i = 0; bad[i]; i++) {
        char  name[160];

        snprintf(name, sizeof(name), "refused: \"%s\"", bad[i]);
        ok(!parses(bad[i]), name);
    }

    ngx_worksible_key_generate(a);
    ngx_worksible_key_generate(b);

    ok(ngx_worksible_key_parse(a, sizeof(a), &ka) == NGX_WORKSIBLE_KEY_OK,
       "a generated key parses");
    ok(ngx_worksible_key_parse(b, sizeof(b), &kb) == NGX_WORKSIBLE_KEY_OK,
       "another generated key parses");
    ok(memcmp(a, b, sizeof(a)) != 0, "two generated keys differ");

    randombytes_buf(s1, sizeof(s1));
    randombytes_buf(s2, sizeof(s2));

    ngx_worksible_key_hash(h1, &ka, s1);
    ngx_worksible_key_hash(h2, &ka, s1);
    ngx_worksible_key_hash(h3, &ka, s2);

    ok(ngx_worksible_key_hash_equal(h1, h2), "hashing is deterministic");
    ok(!ngx_worksible_key_hash_equal(h1, h3),
       "another server secret gives another hash");

    ngx_worksible_key_hash(h2, &kb, s1);
    ok(!ngx_worksible_key_hash_equal(h1, h2), "another key gives another hash");

    ok(ngx_worksible_server_secret_decode((const u_char *)
           "00112233445566778899aabbccddeeff"
           "00112233445566778899AABBCCDDEEFF\n", 65, s1) == 0
       && s1[0] == 0x00 && s1[1] == 0x11 && s1[31] == 0xff,
       "a server secret of 64 hex digits and a newline decodes");
    ok(ngx_worksible_server_secret_decode((const u_char *)
           "00112233445566778899aabbccddeeff"
           "00112233445566778899aabbccddeef", 63, s1) != 0,
       "63 hex digits are refused");
    ok(ngx_worksible_server_secret_decode((const u_char *)
           "00112233445566778899aabbccddeeff"
           "00112233445566778899aabbccddeeff0", 65, s1) != 0,
       "65 hex digits are refused");
    ok(ngx_worksible_server_secret_decode((const u_char *)
           "00112233445566778899aabbccddeeff"
           "00112233445566778899aabbccddeexx", 64, s1) != 0,
       "non-hex digits are refused");

    {
        int                            n;
        ngx_worksible_server_secret_t  sec[NGX_WORKSIBLE_SERVER_SECRETS_MAX];

#define HEX_A  "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define HEX_B  "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"
#define PARSE(t)                                                              \
        ngx_worksible_server_secrets_parse((const u_char *) (t), strlen(t),  \
                                           sec,                              \
                                           NGX_WORKSIBLE_SERVER_SECRETS_MAX)

        n = PARSE(HEX_A "\n");
        ok(n == 1 && sec[0].version == 1 && sec[0].secret[1] == 0x11,
           "a bare secret is version 1");

        n = PARSE("2:" HEX_B "\n\n1:" HEX_A "\r\n");
        ok(n == 2 && sec[0].version == 2 && sec[0].secret[0] == 0xff
           && sec[1].version == 1 && sec[1].secret[0] == 0x00,
           "current then previous secret, with versions");

        ok(PARSE("1:" HEX_A "\n1:" HEX_B) == -1, "a duplicate version");
        ok(PARSE(HEX_A "\n" HEX_B) == -1, "two bare secrets");
        ok(PARSE("0:" HEX_A) == -1, "version 0");
        ok(PARSE("32768:" HEX_A) == -1, "version 32768");
        ok(PARSE("02:" HEX_A) == -1, "a version with a leading zero");
        ok(PARSE("x:" HEX_A) == -1, "a version that is not a number");
        ok(PARSE("") == -1 && PARSE("\n\n") == -1, "an empty file");
        ok(PARSE("1:" HEX_A "0") == -1, "65 hex digits");
        ok(PARSE("1:" HEX_A "\n2:" HEX_B "\n3:" HEX_A "\n4:" HEX_B
                 "\n5:" HEX_A) == -1,
           "more secrets than the maximum");
    }

    /* the scope grammar, one for the module, the API and the CLI */
    {
        size_t       i;
        char         name[128];
        const char  *good[] = { "company:read", "api_keys:write", "a:read",
                                "reports_v:write", NULL };
        const char  *bad[] = { "", ":read", "_a:read", "Company:read",
                               "company:Read", "company", "company:", "a b:read",
                               "company:read:read", "a1:read", "company:delete",
                               NULL };
        char         longest[80];

        for (i = 0; good[i]; i++) {
            snprintf(name, sizeof(name), "scope \"%s\" accepted", good[i]);
            ok(ngx_worksible_scope_check((const u_char *) good[i],
                                         strlen(good[i])), name);
        }

        for (i = 0; bad[i]; i++) {
            snprintf(name, sizeof(name), "scope \"%s\" refused", bad[i]);
            ok(!ngx_worksible_scope_check((const u_char *) bad[i],
                                          strlen(bad[i])), name);
        }

        memset(longest, 'a', sizeof(longest));
        memcpy(longest + 59, ":read", 5);
        ok(ngx_worksible_scope_check((u_char *) longest, 64),
           "a scope of 64 bytes accepted");
        memcpy(longest + 60, ":read", 5);
        ok(!ngx_worksible_scope_check((u_char *) longest, 65),
           "a scope of 65 bytes refused");
    }

    return tap_done();
}
