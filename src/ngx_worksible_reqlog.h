/*
 * The request log: every request of a worksible_auth location, copied in
 * the log phase into this worker's batch and sent to PostgreSQL in the
 * background (one COPY a batch into request_logs:
 * migrations/0016_request_log_direct_copy.sql), never making a request
 * wait.
 */

#ifndef _NGX_WORKSIBLE_REQLOG_H_INCLUDED_
#define _NGX_WORKSIBLE_REQLOG_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/* this worker's batch (init_process); NGX_ERROR: no memory */
ngx_int_t ngx_worksible_reqlog_init_process(ngx_cycle_t *cycle);

/* frees this worker's batch buffer (exit_process, after the last batch) */
void ngx_worksible_reqlog_exit_process(ngx_cycle_t *cycle);

/*
 * NGX_HTTP_LOG_PHASE: copies r's record (request id, company and key when
 * known, method, path with its query and any API key in it redacted,
 * status, latency in ms, client address after realip, user agent,
 * Idempotency-Key, rate-limit remaining, time) into the batch. A full
 * batch (10000 rows) drops the record and counts it.
 */
ngx_int_t ngx_worksible_reqlog_handler(ngx_http_request_t *r);


#endif /* _NGX_WORKSIBLE_REQLOG_H_INCLUDED_ */
