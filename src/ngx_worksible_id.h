/*
 * ULIDs (ulid/spec): 48-bit Unix time in ms then 80 random bits, as 26
 * upper-case Crockford base32 characters; the format of every id (API.md).
 */

#ifndef _NGX_WORKSIBLE_ID_H_INCLUDED_
#define _NGX_WORKSIBLE_ID_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


#define NGX_WORKSIBLE_ULID_LEN  26


/* writes a ULID for now (nginx's cached time) at p; returns p + 26 */
u_char *ngx_worksible_ulid(u_char *p);

/* 1 when s is prefix "_" ULID, e.g. "fl_01J..." for prefix "fl" */
ngx_uint_t ngx_worksible_id_valid(ngx_str_t *s, const char *prefix);


#endif /* _NGX_WORKSIBLE_ID_H_INCLUDED_ */
