/*
 * The differences between the nginx versions the module builds for (1.22
 * to 1.31), each behind one macro that names the nginx change it covers.
 * Everything else in the module uses the same API in all of them.
 */

#ifndef _NGX_WORKSIBLE_COMPAT_H_INCLUDED_
#define _NGX_WORKSIBLE_COMPAT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/*
 * 1 when the response already has a Cache-Control header set by nginx or
 * an upstream. nginx 1.23.0 ("Reworked multi headers to use linked
 * lists") made headers_out.cache_control an ngx_table_elt_t * list
 * instead of an ngx_array_t of them.
 */
#if (nginx_version >= 1023000)
#define ngx_worksible_has_cache_control(r)                                    \
    ((r)->headers_out.cache_control != NULL)
#else
#define ngx_worksible_has_cache_control(r)                                    \
    ((r)->headers_out.cache_control.nelts != 0)
#endif


#endif /* _NGX_WORKSIBLE_COMPAT_H_INCLUDED_ */
