/*
 * The request log (see ngx_worksible_reqlog.h).
 *
 * A batch leaves when it holds NGX_WORKSIBLE_REQLOG_FLUSH rows, or every
 * second; one batch is in flight at a time. While a batch waits, its timer
 * is not cancelable, so a worker that exits (reload, shutdown) sends it
 * first. A batch PostgreSQL does not take (down, slow, full queue) is
 * dropped and counted: the log is bounded, requests never wait for it.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>

#include "ngx_worksible_module.h"
#include "ngx_worksible_problem.h"
#include "ngx_worksible_reqlog.h"


#define NGX_WORKSIBLE_REQLOG_FLUSH     500
#define NGX_WORKSIBLE_REQLOG_MAX       10000
#define NGX_WORKSIBLE_REQLOG_INTERVAL  1000
#define NGX_WORKSIBLE_REQLOG_WARN      10          /* seconds */


static json_t *ngx_worksible_reqlog_text(u_char *data, size_t len,
    size_t max);
static json_t *ngx_worksible_reqlog_path(ngx_http_request_t *r);
static u_char *ngx_worksible_reqlog_char(u_char *p, u_char *last, u_char *c);
static json_t *ngx_worksible_reqlog_header(ngx_http_request_t *r,
    const char *name, size_t max);
static void ngx_worksible_reqlog_flush(ngx_event_t *ev);
static void ngx_worksible_reqlog_sent(ngx_worksible_pg_op_t *op);
static void ngx_worksible_reqlog_dropped(ngx_worksible_main_conf_t *mcf,
    ngx_uint_t n, const char *why);


ngx_int_t
ngx_worksible_reqlog_init_process(ngx_cycle_t *cycle)
{
    ngx_worksible_main_conf_t  *mcf;

    mcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_worksible_module);

    mcf->log_rows = json_array();
    if (mcf->log_rows == NULL) {
        return NGX_ERROR;
    }

    mcf->log_timer.handler = ngx_worksible_reqlog_flush;
    mcf->log_timer.data = mcf;
    mcf->log_timer.log = cycle->log;

    return NGX_OK;
}


ngx_int_t
ngx_worksible_reqlog_handler(ngx_http_request_t *r)
{
    json_t                     *row;
    ngx_tm_t                    tm;
    ngx_uint_t                  status;
    ngx_msec_int_t              ms;
    ngx_time_t                 *tp;
    ngx_worksible_request_t    *st;
    ngx_worksible_main_conf_t  *mcf;
    u_char                      created[32];

    mcf = ngx_http_get_module_main_conf(r, ngx_worksible_module);

    if (mcf->log_rows == NULL || mcf->pg_pool == NULL) {
        return NGX_OK;
    }

    /* one row per client request that a worksible_auth location saw */

    st = ngx_worksible_request_guarded(r);
    if (st == NULL) {
        return NGX_OK;
    }

    if (json_array_size(mcf->log_rows) >= NGX_WORKSIBLE_REQLOG_MAX) {
        ngx_worksible_reqlog_dropped(mcf, 1, "the batch is full");
        return NGX_OK;
    }

    tp = ngx_timeofday();
    ms = (ngx_msec_int_t) ((tp->sec - r->start_sec) * 1000
                           + (tp->msec - r->start_msec));

    ngx_gmtime(r->start_sec, &tm);
    ngx_sprintf(created, "%4d-%02d-%02dT%02d:%02d:%02d.%03MZ%Z",
                tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec,
                r->start_msec);

    status = ngx_worksible_request_status(r);

    row = json_pack("{s:s%,s:o,s:o,s:o,s:o,s:i,s:I,s:o,s:o,s:o,s:b,s:o,s:s}",
        "id", st->request_id, (size_t) NGX_WORKSIBLE_REQUEST_ID_LEN,
        "company_id", st->identity.company_id.len
            ? ngx_worksible_reqlog_text(st->identity.company_id.data,
                                        st->identity.company_id.len, 64)
            : json_null(),
        "api_key_id", st->identity.api_key_id.len
            ? ngx_worksible_reqlog_text(st->identity.api_key_id.data,
                                        st->identity.api_key_id.len, 64)
            : json_null(),
        "method", ngx_worksible_reqlog_text(st->method.data, st->method.len,
                                            32),
        "path", ngx_worksible_reqlog_path(r),
        "status", (int) status,
        "latency_ms", (json_int_t) (ms > 0 ? ms : 0),
        "ip", (r->connection->sockaddr->sa_family == AF_INET
#if (NGX_HAVE_INET6)
               || r->connection->sockaddr->sa_family == AF_INET6
#endif
              )
              ? ngx_worksible_reqlog_text(r->connection->addr_text.data,
                                          r->connection->addr_text.len, 64)
              : json_null(),      /* a unix socket has no inet address */
        "user_agent", ngx_worksible_reqlog_header(r, "User-Agent", 512),
        "idempotency_key", ngx_worksible_reqlog_header(r, "Idempotency-Key",
                                                       255),
        "replayed", st->idem != NULL && st->idem->replayed,
        "ratelimit_remaining", (st->rl != NULL && st->rl->set)
            ? json_integer((json_int_t) st->rl->remaining) : json_null(),
        "created_at", (char *) created);

    if (row == NULL || json_array_append_new(mcf->log_rows, row) != 0) {
        ngx_worksible_reqlog_dropped(mcf, 1, "out of memory");
        return NGX_OK;
    }

    if (json_array_size(mcf->log_rows) >= NGX_WORKSIBLE_REQLOG_FLUSH
        && !mcf->log_inflight)
    {
        if (mcf->log_timer.timer_set) {
            ngx_del_timer(&mcf->log_timer);
        }

        ngx_post_event(&mcf->log_timer, &ngx_posted_events);

    } else if (!mcf->log_timer.timer_set && !mcf->log_timer.posted) {
        ngx_add_timer(&mcf->log_timer, NGX_WORKSIBLE_REQLOG_INTERVAL);
    }

    return NGX_OK;
}


/* a JSON string of at most max bytes, cut at a character; null if none */

static json_t *
ngx_worksible_reqlog_text(u_char *data, size_t len, size_t max)
{
    json_t  *s;

    if (data == NULL) {
        return json_null();
    }

    if (len > max) {
        for (len = max; len > 0 && (data[len] & 0xc0) == 0x80; len--) {
            /* void */
        }
    }

    s = json_stringn((const char *) data, len);

    return s ? s : json_string("?");
}


/*
 * The request line's path and query, an API key in it (a client that put
 * one in a query) replaced by "wsk_[redacted]": no key reaches the log,
 * however it was percent-encoded (wsk%5Flive%5F..., even twice:
 * %255F).
 */

static json_t *
ngx_worksible_reqlog_path(ngx_http_request_t *r)
{
    u_char  *p, *q, *last, *out, *o;
    size_t   len;
    u_char   c;

    p = r->unparsed_uri.data;
    len = ngx_min(r->unparsed_uri.len, 2048);

    if (p == NULL) {
        return json_string("");
    }

    /* each "wsk_" (4 bytes at least) may become "wsk_[redacted]" (14) */
    out = ngx_pnalloc(r->pool, 4 * len + 16);
    if (out == NULL) {
        return json_null();
    }

    last = p + len;
    o = out;

    while (p < last) {
        q = p;

        if ((q = ngx_worksible_reqlog_char(q, last, &c)) == NULL
            || (c | 0x20) != 'w'
            || (q = ngx_worksible_reqlog_char(q, last, &c)) == NULL
            || (c | 0x20) != 's'
            || (q = ngx_worksible_reqlog_char(q, last, &c)) == NULL
            || (c | 0x20) != 'k'
            || (q = ngx_worksible_reqlog_char(q, last, &c)) == NULL
            || c != '_')
        {
            *o++ = *p++;
            continue;
        }

        o = ngx_cpymem(o, "wsk_[redacted]", 14);

        /* the rest of the key: [A-Za-z0-9_], however encoded */

        for (p = q; (q = ngx_worksible_reqlog_char(p, last, &c)) != NULL
                    && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                        || (c >= '0' && c <= '9') || c == '_');
             p = q)
        {
            /* void */
        }
    }

    return ngx_worksible_reqlog_text(out, o - out, 4 * 2048);
}


/*
 * The byte at p, percent-decoded (RFC 3986, 2.1) up to three times (%5F,
 * %255F, %25255F are all "_"), into *c; returns what follows it, or NULL
 * at last.
 */

static u_char *
ngx_worksible_reqlog_char(u_char *p, u_char *last, u_char *c)
{
    u_char      *q;
    ngx_int_t    hi, lo;
    ngx_uint_t   depth;

    if (p >= last) {
        return NULL;
    }

    *c = *p++;

    /* *c is '%' with p after it: the two hex digits that follow, if any */

    for (depth = 0, q = p; depth < 3 && *c == '%'; depth++) {
        if (last - q < 2
            || (hi = ngx_hextoi(q, 1)) == NGX_ERROR
            || (lo = ngx_hextoi(q + 1, 1)) == NGX_ERROR)
        {
            break;
        }

        *c = (u_char) (hi * 16 + lo);
        q += 2;
        p = q;
    }

    return p;
}


/* the first header called name, or null */

static json_t *
ngx_worksible_reqlog_header(ngx_http_request_t *r, const char *name,
    size_t max)
{
    ngx_table_elt_t  *h;

    h = ngx_worksible_header_find(&r->headers_in.headers, name, NULL);

    return h != NULL ? ngx_worksible_reqlog_text(h->value.data,
                                                 h->value.len, max)
                     : json_null();
}


/* sends the batch: worksible_request_logs_insert(rows) */

static void
ngx_worksible_reqlog_flush(ngx_event_t *ev)
{
    char                       *text;
    size_t                      n;
    ngx_str_t                   rows;
    ngx_worksible_pg_op_t      *op;
    ngx_worksible_main_conf_t  *mcf;

    mcf = ev->data;
    n = json_array_size(mcf->log_rows);

    if (n == 0 || mcf->log_inflight) {
        return;
    }

    text = json_dumps(mcf->log_rows, JSON_COMPACT);
    json_array_clear(mcf->log_rows);

    if (text == NULL) {
        ngx_worksible_reqlog_dropped(mcf, n, "out of memory");
        return;
    }

    op = ngx_worksible_pg_op_create(mcf->pg_pool);
    if (op == NULL) {
        free(text);
        ngx_worksible_reqlog_dropped(mcf, n, "out of memory");
        return;
    }

    rows.data = (u_char *) text;
    rows.len = ngx_strlen(text);

    op->sql = "SELECT worksible_request_logs_insert($1::json)";
    op->handler = ngx_worksible_reqlog_sent;
    op->data = mcf;

    if (ngx_worksible_pg_op_param(op, &rows) != NGX_OK
        || ngx_worksible_pg_op_start(op) != NGX_OK)
    {
        free(text);
        ngx_worksible_pg_op_free(op);
        ngx_worksible_reqlog_dropped(mcf, n, "PostgreSQL is unavailable");
        return;
    }

    free(text);
    mcf->log_inflight = n;
}


static void
ngx_worksible_reqlog_sent(ngx_worksible_pg_op_t *op)
{
    ngx_uint_t                  n;
    ngx_worksible_main_conf_t  *mcf;

    mcf = op->data;
    n = mcf->log_inflight;
    mcf->log_inflight = 0;

    if (op->status == NGX_WORKSIBLE_PG_OK
        && PQresultStatus(op->result) == PGRES_TUPLES_OK)
    {
        (void) ngx_atomic_fetch_add(&mcf->metrics->log_rows_written, n);

    } else {
        ngx_worksible_reqlog_dropped(mcf, n, op->status == NGX_WORKSIBLE_PG_OK
                                     ? "PostgreSQL refused the batch"
                                     : "PostgreSQL is unavailable");
    }

    if (json_array_size(mcf->log_rows) && !mcf->log_timer.timer_set) {
        ngx_add_timer(&mcf->log_timer, NGX_WORKSIBLE_REQLOG_INTERVAL);
    }
}


/* counts n lost rows, and says so at most every 10 s per worker */

static void
ngx_worksible_reqlog_dropped(ngx_worksible_main_conf_t *mcf, ngx_uint_t n,
    const char *why)
{
    (void) ngx_atomic_fetch_add(&mcf->metrics->log_rows_dropped, n);

    mcf->log_dropped += n;

    if (ngx_time() - mcf->log_warned >= NGX_WORKSIBLE_REQLOG_WARN) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "worksible request log: %ui rows dropped since the "
                      "last warning (%s)", mcf->log_dropped, why);
        mcf->log_warned = ngx_time();
        mcf->log_dropped = 0;
    }
}
