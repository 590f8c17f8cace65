/*
 * Unit tests of the API key format and hashing (src/ngx_worksible_key.c),
 * printing TAP for prove (t/unit.t runs the binary the Makefile builds).
 */

#include <stdio.h>
#include <string.h>
#include <sodium.h>

#include "ngx_worksible_key.h"


static int  test_n;
static int  failed;


static void
ok(int cond, const char *name)
{
    test_n++;
    printf("%sok %d - %s\n", cond ? "" : "not ", test_n, name);

    if (!cond) {
        failed++;
    }
}


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

    printf("1..%d\n", test_n);

    return failed ? 1 : 0;
}
