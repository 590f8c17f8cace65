/*
 * What the libFuzzer targets of t/fuzz/ share: the nginx a module function
 * expects around it (a cycle's log, a request with its pool, header lists,
 * the module's configuration and context, output filters that keep what
 * the module sends), built here so that each target calls the module's
 * own functions, linked from the module's and nginx's objects (make fuzz).
 */

#ifndef _NGX_WORKSIBLE_FUZZ_NGX_H_INCLUDED_
#define _NGX_WORKSIBLE_FUZZ_NGX_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>

#include "ngx_worksible_module.h"
#include "ngx_worksible_api.h"


/* a check the target makes on the module's answer: a finding when false */
#define ngx_worksible_fuzz_assert(cond)                                        \
    if (!(cond)) {                                                            \
        ngx_worksible_fuzz_fail(__FILE__, __LINE__, #cond);                   \
    }


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* prints where a check failed and aborts (libFuzzer keeps the input) */
void ngx_worksible_fuzz_fail(const char *file, int line, const char *cond);

/*
 * A client request: its own pool, r->main = r, empty headers_in and
 * headers_out lists, the module's (zeroed) main and location
 * configuration, output filters that keep the response (fuzz_status,
 * fuzz_body). Aborts when out of memory.
 */
ngx_http_request_t *ngx_worksible_fuzz_request(void);

/* the module's main configuration the requests share (zeroed at first) */
extern ngx_worksible_main_conf_t  ngx_worksible_fuzz_mcf;

/* runs the pool's cleanups, frees it */
void ngx_worksible_fuzz_free(ngx_http_request_t *r);

/* adds "name: value" to r->headers_in.headers (value copied, not NUL-safe) */
ngx_table_elt_t *ngx_worksible_fuzz_header(ngx_http_request_t *r,
    const char *name, const u_char *value, size_t len);

/*
 * The request line "METHOD TARGET" at the start of data, up to a newline:
 * r->method, method_name, request_line, unparsed_uri, uri (TARGET before
 * "?", as nginx would pass it after normalization: no "/../" left, no
 * "//" merged), args. *rest: what follows the newline. NGX_DECLINED when
 * the method is none of nginx's or the target is not "/...".
 */
ngx_int_t ngx_worksible_fuzz_line(ngx_http_request_t *r, const u_char *data,
    size_t size, ngx_str_t *rest);

/* the status and body the module sent through the output filters */
extern ngx_uint_t  ngx_worksible_fuzz_status;
extern ngx_str_t   ngx_worksible_fuzz_body;

/*
 * Logs r as the log phase does where worksible_auth is on
 * (ngx_worksible_reqlog_handler() into a batch of its own); the row, a
 * line of COPY's text format, is then ngx_worksible_fuzz_row()'s, read
 * back into a JSON object of the columns' names (json_decref() it), and
 * the batch empty.
 */
ngx_int_t ngx_worksible_fuzz_logged(ngx_http_request_t *r);
json_t *ngx_worksible_fuzz_row(void);

/* 1 when s (len bytes) is valid UTF-8 (RFC 3629) */
ngx_uint_t ngx_worksible_fuzz_utf8(const u_char *s, size_t len);

/*
 * 1 when a validator's refusal is a 400 parameter_missing|invalid|unknown
 * (or the 403 insufficient_scope of a new API key's scopes) naming a
 * parameter (the empty name only for a JSON member called ""): the
 * property of every validator target. Else prints it.
 */
ngx_uint_t ngx_worksible_fuzz_refusal(ngx_worksible_error_e err,
    ngx_str_t *param);


/*
 * The property of the API's validators (query and body targets): runs
 * the route's endpoint, as ngx_worksible_api_run() does but with an
 * operation that goes nowhere, on what r and route give it. The endpoint
 * either accepts (a query with its SQL, every parameter UTF-8, as
 * PostgreSQL requires of text) or refuses with a 400 naming a parameter;
 * NGX_ERROR (a 500) is a finding. An accepted input is written to the
 * directory $WORKSIBLE_FUZZ_ACCEPTED, when set: t/fuzz_sql.t sends a
 * sample of them through PostgreSQL. Returns 1 when accepted.
 */
ngx_uint_t ngx_worksible_fuzz_endpoint(ngx_http_request_t *r,
    ngx_worksible_route_t *route, ngx_str_t *id, ngx_str_t *args,
    json_t *body, ngx_uint_t reals, const uint8_t *data, size_t size);


#endif /* _NGX_WORKSIBLE_FUZZ_NGX_H_INCLUDED_ */
