/*
 * The api_keys endpoints (API.md, Resources): list, retrieve, create (the
 * key is returned once) and revoke. A key never grants a scope it does not
 * hold itself; IP allowlists are parsed strictly here, before PostgreSQL
 * sees them.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>

#include "ngx_worksible_module.h"
#include "ngx_worksible_api.h"
#include "ngx_worksible_auth.h"
#include "ngx_worksible_cidr.h"


#define NGX_WORKSIBLE_API_KEY_NAME_MAX   200     /* characters */
#define NGX_WORKSIBLE_API_KEY_SCOPES_MAX 64
#define NGX_WORKSIBLE_API_KEY_CIDRS_MAX  100


static ngx_int_t ngx_worksible_api_keys_scopes(ngx_http_request_t *r,
    ngx_worksible_endpoint_t *ep, json_t *scopes, ngx_str_t *out);
static ngx_int_t ngx_worksible_api_keys_allowlist(ngx_http_request_t *r,
    ngx_worksible_endpoint_t *ep, json_t *list, ngx_str_t *out);


/* GET /v1/api_keys: worksible_list_api_keys(company, limit, after, before) */

ngx_int_t
ngx_worksible_api_keys_list(ngx_http_request_t *r,
    ngx_worksible_endpoint_t *ep)
{
    ep->op->name = "worksible_list_api_keys";
    ep->op->sql = "SELECT worksible_list_api_keys($1, $2, $3, $4)";

    return ngx_worksible_api_list_args(ep);
}


/* GET /v1/api_keys/{id}: worksible_get_api_keys(company, id) */

ngx_int_t
ngx_worksible_api_keys_get(ngx_http_request_t *r,
    ngx_worksible_endpoint_t *ep)
{
    ep->op->name = "worksible_get_api_keys";
    ep->op->sql = "SELECT worksible_get_api_keys($1, $2)";

    return ngx_worksible_pg_op_param(ep->op, &ep->id);
}


/*
 * POST /v1/api_keys/{id}/revoke: worksible_api_key_revoke(company, id,
 * the calling key), which refuses a key more powerful than the caller
 * (403 insufficient_scope naming the field). Revoking a revoked key
 * returns it unchanged. Other servers' key caches (and this one's) keep
 * the key valid for their ttl.
 */

ngx_int_t
ngx_worksible_api_keys_revoke(ngx_http_request_t *r,
    ngx_worksible_endpoint_t *ep)
{
    ngx_worksible_request_t  *st;

    st = ngx_worksible_request_find(r);

    ep->op->sql = "SELECT worksible_api_key_revoke($1, $2, $3)";

    if (ngx_worksible_pg_op_param(ep->op, &ep->id) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_worksible_pg_op_param(ep->op, &st->identity.api_key_id);
}


/*
 * POST /v1/api_keys with {"scopes": [...], "name": ..., "expires_at":
 * RFC 3339, "ip_allowlist": [CIDR...]}: a new key hashed under the current
 * server secret, worksible_api_key_create(company, key_id, hash, version,
 * name, scopes, allowlist, expires_at, the calling key): no more powerful
 * than the calling key, whose allowlist and expiry it inherits when it
 * names none (403 insufficient_scope naming the field). The key itself
 * goes to the response only (st->token).
 */

ngx_int_t
ngx_worksible_api_keys_create(ngx_http_request_t *r,
    ngx_worksible_endpoint_t *ep)
{
    u_char                     *p;
    json_t                     *v;
    ngx_str_t                   values[8];
    ngx_int_t                   rc;
    ngx_uint_t                  i;
    const char                 *member;
    ngx_worksible_request_t    *st;
    ngx_worksible_key_t         key;
    ngx_worksible_main_conf_t  *mcf;
    u_char                      hash[NGX_WORKSIBLE_KEY_HASH_LEN];

    st = ngx_worksible_request_find(r);
    mcf = ngx_http_get_module_main_conf(r, ngx_worksible_module);

    ngx_memzero(values, sizeof(values));

    json_object_foreach(ep->body, member, v) {
        if (ngx_strcmp(member, "name") != 0
            && ngx_strcmp(member, "scopes") != 0
            && ngx_strcmp(member, "expires_at") != 0
            && ngx_strcmp(member, "ip_allowlist") != 0)
        {
            return ngx_worksible_api_refusal(r, ep,
                       NGX_WORKSIBLE_PARAMETER_UNKNOWN, member, -1,
                       "API keys take name, scopes, expires_at and "
                       "ip_allowlist.");
        }
    }

    v = json_object_get(ep->body, "name");

    if (v != NULL && !json_is_null(v)) {
        for (i = 0; json_is_string(v) && i < json_string_length(v); i++) {
            if ((u_char) json_string_value(v)[i] > ' ') {
                break;
            }
        }

        if (!json_is_string(v)
            || i == json_string_length(v)
            || ngx_utf8_length((u_char *) json_string_value(v),
                               json_string_length(v))
               > NGX_WORKSIBLE_API_KEY_NAME_MAX)
        {
            return ngx_worksible_api_refusal(r, ep,
                       NGX_WORKSIBLE_PARAMETER_INVALID, "name", -1,
                       "name must be a string of 1 to 200 characters, "
                       "not blank.");
        }

        values[3].len = json_string_length(v);
        values[3].data = (u_char *) json_string_value(v);
    }

    rc = ngx_worksible_api_keys_scopes(r, ep,
                                       json_object_get(ep->body, "scopes"),
                                       &values[4]);
    if (rc != NGX_OK) {
        return rc;
    }

    rc = ngx_worksible_api_keys_allowlist(r, ep,
                                  json_object_get(ep->body, "ip_allowlist"),
                                  &values[5]);
    if (rc != NGX_OK) {
        return rc;
    }

    v = json_object_get(ep->body, "expires_at");

    if (v != NULL && !json_is_null(v)) {
        if (json_is_string(v)) {
            values[6].len = json_string_length(v);
            values[6].data = ngx_pnalloc(r->pool, values[6].len);
            if (values[6].data == NULL) {
                return NGX_ERROR;
            }

            ngx_memcpy(values[6].data, json_string_value(v), values[6].len);
        }

        if (values[6].data == NULL
            || !ngx_worksible_api_rfc3339(r->pool, &values[6]))
        {
            return ngx_worksible_api_refusal(r, ep,
                       NGX_WORKSIBLE_PARAMETER_INVALID, "expires_at", -1,
                       "expires_at must be an RFC 3339 time such as "
                       "2027-01-31T12:00:00Z.");
        }
    }

    /* the key: shown in this response, stored only as its hash */

    st->token.data = ngx_pnalloc(r->pool, NGX_WORKSIBLE_KEY_LEN);
    values[1].data = ngx_pnalloc(r->pool, 2 * NGX_WORKSIBLE_KEY_HASH_LEN);
    values[2].data = ngx_pnalloc(r->pool, NGX_INT_T_LEN);

    if (st->token.data == NULL || values[1].data == NULL
        || values[2].data == NULL)
    {
        return NGX_ERROR;
    }

    ngx_worksible_key_generate(st->token.data);
    st->token.len = NGX_WORKSIBLE_KEY_LEN;

    if (ngx_worksible_key_parse(st->token.data, st->token.len, &key)
        != NGX_WORKSIBLE_KEY_OK)
    {
        return NGX_ERROR;
    }

    ngx_worksible_key_hash(hash, &key, mcf->secrets[0].secret);

    values[0].data = (u_char *) key.key_id;
    values[0].len = NGX_WORKSIBLE_KEY_ID_LEN;
    values[1].len = ngx_hex_dump(values[1].data, hash, sizeof(hash))
                    - values[1].data;
    p = ngx_sprintf(values[2].data, "%ui",
                    (ngx_uint_t) mcf->secrets[0].version);
    values[2].len = p - values[2].data;

    values[7] = st->identity.api_key_id;

    ep->op->sql = "SELECT worksible_api_key_create($1, $2, $3, $4, $5, $6, "
                  "$7, $8, $9)";

    for (i = 0; i < 8; i++) {
        if (ngx_worksible_pg_op_param(ep->op,
                                      values[i].data ? &values[i] : NULL)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * "scopes": a required array of 1..64 scopes, each "resource:read|write"
 * and held by the calling key ("write" implies "read"); duplicates
 * dropped. out: space-separated.
 */

static ngx_int_t
ngx_worksible_api_keys_scopes(ngx_http_request_t *r,
    ngx_worksible_endpoint_t *ep, json_t *scopes, ngx_str_t *out)
{
    u_char                   *p;
    size_t                    i, n;
    json_t                   *v;
    ngx_str_t                 s, seen;
    ngx_worksible_request_t  *st;

    st = ngx_worksible_request_find(r);

    if (scopes == NULL || json_is_null(scopes)) {
        return ngx_worksible_api_refusal(r, ep,
                   NGX_WORKSIBLE_PARAMETER_MISSING, "scopes", -1,
                   "scopes is required: an array such as "
                   "[\"freelancers:read\"].");
    }

    n = json_is_array(scopes) ? json_array_size(scopes) : 0;

    if (n == 0 || n > NGX_WORKSIBLE_API_KEY_SCOPES_MAX) {
        return ngx_worksible_api_refusal(r, ep,
                   NGX_WORKSIBLE_PARAMETER_INVALID, "scopes", -1,
                   "scopes must be an array of 1 to 64 scopes.");
    }

    out->data = ngx_pnalloc(r->pool, n * 65);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    p = out->data;

    json_array_foreach(scopes, i, v) {
        s.data = (u_char *) json_string_value(v);
        s.len = json_is_string(v) ? json_string_length(v) : 0;

        if (s.data == NULL || !ngx_worksible_scope_check(s.data, s.len)) {
            return ngx_worksible_api_refusal(r, ep,
                       NGX_WORKSIBLE_PARAMETER_INVALID, "scopes", i,
                       "A scope is \"resource:read\" or \"resource:write\".");
        }

        if (!ngx_worksible_scope_held(&st->identity.scopes, &s)) {
            return ngx_worksible_api_refusal(r, ep,
                       NGX_WORKSIBLE_INSUFFICIENT_SCOPE, "scopes", i,
                       "An API key cannot grant a scope it does not hold.");
        }

        seen.data = out->data;
        seen.len = p - out->data;

        if (ngx_worksible_scope_held(&seen, &s)) {
            /* a duplicate, or "read" after its "write" */
            continue;
        }

        if (p > out->data) {
            *p++ = ' ';
        }

        p = ngx_cpymem(p, s.data, s.len);
    }

    out->len = p - out->data;

    return NGX_OK;
}


/*
 * "ip_allowlist": absent, null, or an array of at most 100 CIDR blocks,
 * parsed strictly (ngx_worksible_cidr_parse). out: the canonical blocks,
 * space-separated; data NULL when there are none.
 */

static ngx_int_t
ngx_worksible_api_keys_allowlist(ngx_http_request_t *r,
    ngx_worksible_endpoint_t *ep, json_t *list, ngx_str_t *out)
{
    u_char                *p;
    size_t                 i, n;
    json_t                *v;
    ngx_worksible_cidr_t   cidr;
    char                   why[128];

    ngx_str_null(out);

    if (list == NULL || json_is_null(list)) {
        return NGX_OK;
    }

    n = json_is_array(list) ? json_array_size(list) : (size_t) -1;

    if (n > NGX_WORKSIBLE_API_KEY_CIDRS_MAX) {
        return ngx_worksible_api_refusal(r, ep,
                   NGX_WORKSIBLE_PARAMETER_INVALID, "ip_allowlist", -1,
                   "ip_allowlist must be an array of at most 100 CIDR "
                   "blocks.");
    }

    if (n == 0) {
        return NGX_OK;
    }

    out->data = ngx_pnalloc(r->pool, n * NGX_WORKSIBLE_CIDR_TEXT_LEN);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    p = out->data;

    json_array_foreach(list, i, v) {
        if (!json_is_string(v)
            || ngx_worksible_cidr_parse(json_string_value(v),
                                        json_string_length(v), &cidr, why,
                                        sizeof(why))
               != 0)
        {
            return ngx_worksible_api_refusal(r, ep,
                       NGX_WORKSIBLE_PARAMETER_INVALID, "ip_allowlist", i,
                       "An allowlist entry is an IPv4 or IPv6 address or "
                       "CIDR block, such as 203.0.113.0/24, without host "
                       "bits or leading zeros.");
        }

        if (p > out->data) {
            *p++ = ' ';
        }

        p += ngx_worksible_cidr_text(&cidr, (char *) p);
    }

    out->len = p - out->data;

    return NGX_OK;
}
