/*
 * API key format and hashing, shared by the module and the `worksible` CLI.
 * Plain C and libsodium only: no nginx headers, so the CLI links it too.
 *
 * Token: "wsk_live_" <key id: 12 of [a-z0-9]> "_" <secret: 32 of [A-Za-z0-9]>.
 * Stored: keyed BLAKE2b-256 (libsodium crypto_generichash) of key id ||
 * secret, keyed with the 32-byte server secret, plus the server secret's
 * version so that the server secret can be rotated.
 */

#ifndef _NGX_WORKSIBLE_KEY_H_INCLUDED_
#define _NGX_WORKSIBLE_KEY_H_INCLUDED_


#include <stddef.h>
#include <sys/types.h>


#define NGX_WORKSIBLE_KEY_PREFIX         "wsk_live_"
#define NGX_WORKSIBLE_KEY_TEST_PREFIX    "wsk_test_"
#define NGX_WORKSIBLE_KEY_PREFIX_LEN     9
#define NGX_WORKSIBLE_KEY_ID_LEN         12
#define NGX_WORKSIBLE_KEY_SECRET_LEN     32
#define NGX_WORKSIBLE_KEY_LEN                                                 \
    (NGX_WORKSIBLE_KEY_PREFIX_LEN + NGX_WORKSIBLE_KEY_ID_LEN + 1              \
     + NGX_WORKSIBLE_KEY_SECRET_LEN)
#define NGX_WORKSIBLE_KEY_HASH_LEN       32
#define NGX_WORKSIBLE_SERVER_SECRET_LEN  32

#define NGX_WORKSIBLE_SERVER_SECRETS_MAX 4

#define NGX_WORKSIBLE_KEY_OK             0
#define NGX_WORKSIBLE_KEY_MALFORMED      -1


typedef struct {
    const u_char  *key_id;      /* NGX_WORKSIBLE_KEY_ID_LEN bytes */
    const u_char  *secret;      /* NGX_WORKSIBLE_KEY_SECRET_LEN bytes */
} ngx_worksible_key_t;


/*
 * Splits a token into key id and secret, pointing into token.
 * Returns NGX_WORKSIBLE_KEY_OK, or NGX_WORKSIBLE_KEY_MALFORMED for anything
 * but an exact "wsk_live_" token (a "wsk_test_" token is malformed: API.md
 * reserves it until a test mode exists).
 */
int ngx_worksible_key_parse(const u_char *token, size_t len,
    ngx_worksible_key_t *key);

/*
 * Fills out with a new random token (NGX_WORKSIBLE_KEY_LEN bytes, not
 * NUL-terminated), from libsodium's CSPRNG. sodium_init() must have run.
 */
void ngx_worksible_key_generate(u_char *out);

/*
 * out (NGX_WORKSIBLE_KEY_HASH_LEN bytes) = BLAKE2b-256 keyed with
 * server_secret (NGX_WORKSIBLE_SERVER_SECRET_LEN bytes) of key id || secret.
 */
void ngx_worksible_key_hash(u_char *out, const ngx_worksible_key_t *key,
    const u_char *server_secret);

/*
 * Compares two NGX_WORKSIBLE_KEY_HASH_LEN-byte hashes in constant time
 * (sodium_memcmp). Returns 1 when equal, 0 otherwise.
 */
int ngx_worksible_key_hash_equal(const u_char *a, const u_char *b);

typedef struct {
    unsigned       version;     /* 1..32767, stored beside each hash */
    u_char         secret[NGX_WORKSIBLE_SERVER_SECRET_LEN];
} ngx_worksible_server_secret_t;


/*
 * Decodes exactly 64 hex digits, optionally followed by whitespace, into
 * out (NGX_WORKSIBLE_SERVER_SECRET_LEN bytes). Returns 0, or -1 with
 * nothing written for any other content.
 */
int ngx_worksible_server_secret_decode(const u_char *text, size_t len,
    u_char *out);

/*
 * Parses a server secret file: one line per secret, "VERSION:HEX" (VERSION
 * 1..32767, HEX 64 hex digits), the current secret first and older ones
 * after it while keys still use them; a file of one bare HEX line is
 * version 1. Blank lines are ignored. Fills out (at most max entries) and
 * returns how many, or -1 for anything else (a duplicate version too).
 */
int ngx_worksible_server_secrets_parse(const u_char *text, size_t len,
    ngx_worksible_server_secret_t *out, int max);


/*
 * 1 when s (len bytes) is a scope (API.md, Scopes): "<resource>:read" or
 * "<resource>:write", resource of [a-z_] not starting with "_", 64 bytes
 * at most in all; 0 otherwise. The module's worksible_scope, the API's
 * "scopes" and the CLI's --scopes all take this grammar.
 */
int ngx_worksible_scope_check(const u_char *s, size_t len);


#endif /* _NGX_WORKSIBLE_KEY_H_INCLUDED_ */
