/*
 * The request log (see ngx_worksible_reqlog.h).
 *
 * A batch leaves when it holds NGX_WORKSIBLE_REQLOG_FLUSH rows, or every
 * second; one batch is in flight at a time. While a batch waits, its timer
 * is not cancelable, so a worker that exits (reload, shutdown) sends it
 * first. A batch PostgreSQL does not take (down, slow, full queue) is
 * dropped and counted: the log is bounded, requests never wait for it.
 *
 * A row is written as a line of COPY's text format (PostgreSQL's COPY,
 * "Text Format") straight into the worker's batch buffer (one growing
 * allocation, reused from batch to batch), and the batch goes as the data
 * of one COPY (ngx_worksible_pg_op_copy) straight into request_logs, as
 * worksible_log_writer (the one role allowed to COPY into the log past its
 * row-level security), whose statement trigger counts the rows in the
 * rollups (migrations/0016_request_log_direct_copy.sql): it commits whole
 * or not at all. A batch refused because a row's UTC day has no partition
 * (23514) rolled back, and goes once more, the same rows, through the
 * session's staging table and worksible_request_logs_ingest
 * (migrations/0014_request_log_ingest.sql), which keeps such rows in
 * request_logs_pending. No other batch is sent twice (one whose answer was
 * lost may have committed), so no row is logged twice.
 *
 * Every hour a worker also sends worksible_request_logs_prepare(), which
 * makes the coming days' partitions (the ingest never makes one).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_worksible_module.h"
#include "ngx_worksible_problem.h"
#include "ngx_worksible_reqlog.h"


/*
 * rows at which a batch leaves: a batch's own costs (its transaction, the
 * rollups' upserts) spread over more rows; 500 cost 10.8 µs of PostgreSQL
 * CPU a row, 2000 9.4 (README "The request log's ingest")
 */
#define NGX_WORKSIBLE_REQLOG_FLUSH     2000
#define NGX_WORKSIBLE_REQLOG_MAX       10000
#define NGX_WORKSIBLE_REQLOG_INTERVAL  1000
#define NGX_WORKSIBLE_REQLOG_WARN      10          /* seconds */
#define NGX_WORKSIBLE_REQLOG_PREPARE   3600        /* seconds */

/* one simple query, one transaction: the batch is its COPY's data */
#define NGX_WORKSIBLE_REQLOG_SQL                                              \
    "SET LOCAL ROLE worksible_log_writer;"                                    \
    "COPY request_logs (id, company_id, api_key_id, method, path, status,"    \
    " latency_ms, ip, user_agent, idempotency_key, replayed,"                 \
    " ratelimit_remaining, created_at) FROM STDIN"

/* the same rows again when a row's day has no partition (see above) */
static const char  ngx_worksible_reqlog_stage_sql[] =
    "SELECT worksible_request_logs_stage();"
    "COPY pg_temp.worksible_request_log_batch (id, company_id, api_key_id,"
    " method, path, status, latency_ms, ip, user_agent, idempotency_key,"
    " replayed, ratelimit_remaining, created_at) FROM STDIN;"
    "SELECT worksible_request_logs_ingest()";

/* check_violation: "no partition of relation ... found for row" */
#define NGX_WORKSIBLE_REQLOG_NO_PARTITION  "23514"

/* the batch buffer's first size; one past REQLOG_SHRINK is freed once sent */
#define NGX_WORKSIBLE_REQLOG_BUF       (64 * 1024)
#define NGX_WORKSIBLE_REQLOG_SHRINK    (4 * 1024 * 1024)


static ngx_int_t ngx_worksible_reqlog_reserve(ngx_worksible_main_conf_t *mcf,
    size_t size);
static u_char *ngx_worksible_reqlog_text(u_char *p, u_char *data, size_t len,
    size_t max);
static ngx_int_t ngx_worksible_reqlog_redact(ngx_pool_t *pool,
    ngx_str_t *text, size_t max);
static size_t ngx_worksible_reqlog_utf8(u_char *s, u_char *last);
static u_char *ngx_worksible_reqlog_char(u_char *p, u_char *last, u_char *c);
static ngx_str_t *ngx_worksible_reqlog_header(ngx_http_request_t *r,
    const char *name);
static void ngx_worksible_reqlog_flush(ngx_event_t *ev);
static void ngx_worksible_reqlog_sent(ngx_worksible_pg_op_t *op);
static ngx_int_t ngx_worksible_reqlog_resend(ngx_worksible_pg_op_t *op);
static void ngx_worksible_reqlog_prepare(ngx_worksible_main_conf_t *mcf);
static void ngx_worksible_reqlog_prepared(ngx_worksible_pg_op_t *op);
static void ngx_worksible_reqlog_dropped(ngx_worksible_main_conf_t *mcf,
    ngx_uint_t n, const char *why);


ngx_int_t
ngx_worksible_reqlog_init_process(ngx_cycle_t *cycle)
{
    ngx_worksible_main_conf_t  *mcf;

    mcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_worksible_module);

    if (ngx_worksible_reqlog_reserve(mcf, 0) != NGX_OK) {
        return NGX_ERROR;
    }

    mcf->log_timer.handler = ngx_worksible_reqlog_flush;
    mcf->log_timer.data = mcf;
    mcf->log_timer.log = cycle->log;

    return NGX_OK;
}


void
ngx_worksible_reqlog_exit_process(ngx_cycle_t *cycle)
{
    ngx_worksible_main_conf_t  *mcf;

    mcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_worksible_module);

    if (mcf != NULL && mcf->log_buf != NULL) {
        ngx_free(mcf->log_buf);
        mcf->log_buf = NULL;
    }
}


/* ASCII but NUL, '\t', '\n', '\r' and '\\': as is in COPY's text format */
static uint32_t  ngx_worksible_reqlog_plain[] = {
    0xffffd9fe,  /* 0x00-0x1f: but NUL, \t, \n, \r */
    0xffffffff,  /* 0x20-0x3f */
    0xefffffff,  /* 0x40-0x5f: but '\\' */
    0xffffffff,  /* 0x60-0x7f */
    0, 0, 0, 0   /* 0x80-0xff: UTF-8, checked */
};

#define ngx_worksible_reqlog_is_plain(c)                                      \
    (ngx_worksible_reqlog_plain[(c) >> 5] & (1U << ((c) & 0x1f)))


/* the longest text a row holds of each column, in bytes */
#define NGX_WORKSIBLE_REQLOG_ID_MAX     64
#define NGX_WORKSIBLE_REQLOG_METHOD_MAX 32
#define NGX_WORKSIBLE_REQLOG_PATH_MAX   (4 * 2048)
#define NGX_WORKSIBLE_REQLOG_UA_MAX     512
#define NGX_WORKSIBLE_REQLOG_IDEM_MAX   255

/* at most 2 bytes of COPY text (\t) a byte of text, or \N */
#define ngx_worksible_reqlog_len(len, max)  (2 * ngx_min(len, max) + 2)


ngx_int_t
ngx_worksible_reqlog_handler(ngx_http_request_t *r)
{
    u_char                     *p;
    size_t                      size;
    ngx_str_t                   path, ip, ua, ik, *h;
    ngx_uint_t                  status;
    ngx_msec_int_t              ms;
    ngx_time_t                 *tp;
    ngx_worksible_request_t    *st;
    ngx_worksible_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_worksible_module);

    if (mcf->log_buf == NULL || mcf->pg_pool == NULL) {
        return NGX_OK;
    }

    /* one row per client request that a worksible_auth location saw */

    st = ngx_worksible_request_guarded(r);
    if (st == NULL) {
        return NGX_OK;
    }

    if (mcf->log_nrows >= NGX_WORKSIBLE_REQLOG_MAX) {
        ngx_worksible_reqlog_dropped(mcf, 1, "the batch is full");
        return NGX_OK;
    }

    tp = ngx_timeofday();
    ms = (ngx_msec_int_t) ((tp->sec - r->start_sec) * 1000
                           + (tp->msec - r->start_msec));

    status = ngx_worksible_request_status(r);

    path = r->unparsed_uri;

    if (path.data == NULL) {
        ngx_str_set(&path, "");
    }

    if (ngx_worksible_reqlog_redact(r->pool, &path, 2048) != NGX_OK) {
        ngx_str_null(&path);
    }

    /* a unix socket has no inet address */

    ngx_str_null(&ip);

    if (r->connection->sockaddr->sa_family == AF_INET
#if (NGX_HAVE_INET6)
        || r->connection->sockaddr->sa_family == AF_INET6
#endif
       )
    {
        ip = r->connection->addr_text;
    }

    /* nginx keeps the first User-Agent already; Idempotency-Key is sought */

    /* absent (data NULL): \N */

    ngx_str_null(&ua);

    if (r->headers_in.user_agent) {
        ua = r->headers_in.user_agent->value;

        if (ngx_worksible_reqlog_redact(r->pool, &ua,
                                        4 * NGX_WORKSIBLE_REQLOG_UA_MAX)
            != NGX_OK)
        {
            ngx_str_null(&ua);
        }
    }

    ngx_str_null(&ik);

    h = ngx_worksible_reqlog_header(r, "Idempotency-Key");

    if (h != NULL) {
        ik = *h;

        if (ngx_worksible_reqlog_redact(r->pool, &ik,
                                        4 * NGX_WORKSIBLE_REQLOG_IDEM_MAX)
            != NGX_OK)
        {
            ngx_str_null(&ik);
        }
    }

    /* 12 tabs, "t" or "f", the date, the newline; 3 numbers */

    size = sizeof("\t\t\t\t\t\t\t\t\t\t\tf\t1970-01-01T00:00:00.000Z\n")
           + ngx_worksible_reqlog_len(NGX_WORKSIBLE_REQUEST_ID_LEN,
                                      NGX_WORKSIBLE_REQUEST_ID_LEN)
           + ngx_worksible_reqlog_len(st->identity.company_id.len,
                                      NGX_WORKSIBLE_REQLOG_ID_MAX)
           + ngx_worksible_reqlog_len(st->identity.api_key_id.len,
                                      NGX_WORKSIBLE_REQLOG_ID_MAX)
           + ngx_worksible_reqlog_len(st->method.len,
                                      NGX_WORKSIBLE_REQLOG_METHOD_MAX)
           + ngx_worksible_reqlog_len(path.len, NGX_WORKSIBLE_REQLOG_PATH_MAX)
           + ngx_worksible_reqlog_len(ip.len, NGX_WORKSIBLE_REQLOG_ID_MAX)
           + ngx_worksible_reqlog_len(ua.len, NGX_WORKSIBLE_REQLOG_UA_MAX)
           + ngx_worksible_reqlog_len(ik.len, NGX_WORKSIBLE_REQLOG_IDEM_MAX)
           + 3 * NGX_INT64_LEN;

    if (ngx_worksible_reqlog_reserve(mcf, size) != NGX_OK) {
        ngx_worksible_reqlog_dropped(mcf, 1, "out of memory");
        return NGX_OK;
    }

    /* the columns of COPY ... (see NGX_WORKSIBLE_REQLOG_SQL), in order */

    p = mcf->log_buf + mcf->log_len;

    p = ngx_worksible_reqlog_text(p, st->request_id,
                                  NGX_WORKSIBLE_REQUEST_ID_LEN,
                                  NGX_WORKSIBLE_REQUEST_ID_LEN);
    *p++ = '\t';
    p = ngx_worksible_reqlog_text(p, st->identity.company_id.data,
                                  st->identity.company_id.len,
                                  NGX_WORKSIBLE_REQLOG_ID_MAX);
    *p++ = '\t';
    p = ngx_worksible_reqlog_text(p, st->identity.api_key_id.data,
                                  st->identity.api_key_id.len,
                                  NGX_WORKSIBLE_REQLOG_ID_MAX);
    *p++ = '\t';
    p = ngx_worksible_reqlog_text(p, st->method.data, st->method.len,
                                  NGX_WORKSIBLE_REQLOG_METHOD_MAX);
    *p++ = '\t';
    p = ngx_worksible_reqlog_text(p, path.data, path.len,
                                  NGX_WORKSIBLE_REQLOG_PATH_MAX);
    *p++ = '\t';
    p = ngx_worksible_decimal(p, status);
    *p++ = '\t';
    p = ngx_worksible_decimal(p, ms > 0 ? (uint64_t) ms : 0);
    *p++ = '\t';
    p = ngx_worksible_reqlog_text(p, ip.data, ip.len,
                                  NGX_WORKSIBLE_REQLOG_ID_MAX);
    *p++ = '\t';
    p = ngx_worksible_reqlog_text(p, ua.data, ua.len,
                                  NGX_WORKSIBLE_REQLOG_UA_MAX);
    *p++ = '\t';
    p = ngx_worksible_reqlog_text(p, ik.data, ik.len,
                                  NGX_WORKSIBLE_REQLOG_IDEM_MAX);
    *p++ = '\t';
    *p++ = (st->idem != NULL && st->idem->replayed) ? 't' : 'f';
    *p++ = '\t';

    if (st->rl != NULL && st->rl->set) {
        p = ngx_worksible_decimal(p, st->rl->remaining);

    } else {
        *p++ = '\\';
        *p++ = 'N';
    }

    *p++ = '\t';

    /* the date changes once a second: written again only then */

    if (mcf->log_date_sec != r->start_sec || mcf->log_date[0] == '\0') {
        ngx_tm_t  tm;

        ngx_gmtime(r->start_sec, &tm);
        ngx_sprintf(mcf->log_date, "%4d-%02d-%02dT%02d:%02d:%02d",
                    tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                    tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec);
        mcf->log_date_sec = r->start_sec;
    }

    p = ngx_cpymem(p, mcf->log_date, sizeof(mcf->log_date));
    *p++ = '.';
    *p++ = (u_char) ('0' + r->start_msec / 100 % 10);
    *p++ = (u_char) ('0' + r->start_msec / 10 % 10);
    *p++ = (u_char) ('0' + r->start_msec % 10);
    *p++ = 'Z';
    *p++ = '\n';

    mcf->log_len = p - mcf->log_buf;
    mcf->log_nrows++;

    if (mcf->log_nrows >= NGX_WORKSIBLE_REQLOG_FLUSH && !mcf->log_inflight) {
        if (mcf->log_timer.timer_set) {
            ngx_del_timer(&mcf->log_timer);
        }

        ngx_post_event(&mcf->log_timer, &ngx_posted_events);

    } else if (!mcf->log_timer.timer_set && !mcf->log_timer.posted) {
        ngx_add_timer(&mcf->log_timer, NGX_WORKSIBLE_REQLOG_INTERVAL);
    }

    return NGX_OK;
}


/*
 * Room for size more bytes in the batch buffer (size 0: the first
 * buffer). NGX_OK or NGX_ERROR.
 */

static ngx_int_t
ngx_worksible_reqlog_reserve(ngx_worksible_main_conf_t *mcf, size_t size)
{
    u_char  *buf;
    size_t   n;

    if (mcf->log_buf != NULL && mcf->log_len + size <= mcf->log_size) {
        return NGX_OK;
    }

    n = ngx_max(NGX_WORKSIBLE_REQLOG_BUF, 2 * mcf->log_size);
    n = ngx_max(n, mcf->log_len + size);

    buf = ngx_alloc(n, ngx_cycle->log);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    if (mcf->log_buf != NULL) {
        ngx_memcpy(buf, mcf->log_buf, mcf->log_len);
        ngx_free(mcf->log_buf);

    } else {
        mcf->log_len = 0;
    }

    mcf->log_buf = buf;
    mcf->log_size = n;

    return NGX_OK;
}


/*
 * Writes at p a column of COPY's text format (PostgreSQL, COPY, "Text
 * Format"): at most max bytes of data, cut at a character, "\\" "\t" "\n"
 * "\r" as backslash sequences, other bytes as they are; "?" if they are
 * not UTF-8 (RFC 3629) or hold a NUL (no PostgreSQL text can), \N (NULL)
 * if data is NULL. Returns the end; p has room for
 * ngx_worksible_reqlog_len(len, max) bytes.
 */

static u_char *
ngx_worksible_reqlog_text(u_char *p, u_char *data, size_t len, size_t max)
{
    u_char  c, *s, *last, *start, *run;
    size_t  n;

    if (data == NULL) {
        *p++ = '\\';
        *p++ = 'N';
        return p;
    }

    if (len > max) {
        for (len = max; len > 0 && (data[len] & 0xc0) == 0x80; len--) {
            /* void */
        }
    }

    start = p;

    s = data;
    last = data + len;

    while (s < last) {

        /* a run of ASCII but NUL and the escaped: copied as is */

        for (run = s; s < last && ngx_worksible_reqlog_is_plain(*s); s++) {
            /* void */
        }

        p = ngx_cpymem(p, run, s - run);

        if (s == last) {
            break;
        }

        c = *s;

        if (c >= 0x80) {
            n = ngx_worksible_reqlog_utf8(s, last);

            if (n == 0) {
                *start = '?';
                return start + 1;
            }

            p = ngx_cpymem(p, s, n);
            s += n;
            continue;
        }

        s++;

        switch (c) {
        case '\\': *p++ = '\\'; *p++ = '\\'; break;
        case '\t': *p++ = '\\'; *p++ = 't'; break;
        case '\n': *p++ = '\\'; *p++ = 'n'; break;
        case '\r': *p++ = '\\'; *p++ = 'r'; break;
        default:    /* NUL */
            *start = '?';
            return start + 1;
        }
    }

    return p;
}


/*
 * The length of the UTF-8 character at s (RFC 3629, section 4: no overlong
 * form, no surrogate, nothing past U+10FFFF), or 0 if there is none.
 */

static size_t
ngx_worksible_reqlog_utf8(u_char *s, u_char *last)
{
    size_t    n, i;
    uint32_t  u, min;

    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        n = 2; u = s[0] & 0x1f; min = 0x80;

    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        n = 3; u = s[0] & 0x0f; min = 0x800;

    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        n = 4; u = s[0] & 0x07; min = 0x10000;

    } else {
        return 0;
    }

    if ((size_t) (last - s) < n) {
        return 0;
    }

    for (i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }

        u = (u << 6) | (s[i] & 0x3f);
    }

    if (u < min || u > 0x10ffff || (u >= 0xd800 && u <= 0xdfff)) {
        return 0;
    }

    return n;
}


/*
 * Cuts text at max bytes and replaces each API key in it by
 * "wsk_[redacted]", however it was percent-encoded (wsk%5Flive%5F...,
 * even twice: %255F), in place or in a copy from pool: the request line's
 * path and query (a client that put a key in a query), the User-Agent and
 * the Idempotency-Key (one that pasted a key there). NGX_ERROR: no memory.
 */

static ngx_int_t
ngx_worksible_reqlog_redact(ngx_pool_t *pool, ngx_str_t *text, size_t max)
{
    u_char  *p, *q, *last, *out, *o;
    size_t   len;
    u_char   c;

    p = text->data;
    len = ngx_min(text->len, max);
    last = p + len;

    /* no "wsk_" and no "%": nothing to redact, the text as it came */

    for (q = p; q < last; q++) {
        if (*q == '%'
            || ((*q | 0x20) == 'w' && last - q >= 4 && (q[1] | 0x20) == 's'
                && (q[2] | 0x20) == 'k' && q[3] == '_'))
        {
            break;
        }
    }

    if (q == last) {
        text->len = len;
        return NGX_OK;
    }

    /* each "wsk_" (4 bytes at least) may become "wsk_[redacted]" (14) */
    out = ngx_pnalloc(pool, 4 * len + 16);
    if (out == NULL) {
        return NGX_ERROR;
    }
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

    text->data = out;
    text->len = o - out;

    return NGX_OK;
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


/* the value of the first header called name, or NULL */

static ngx_str_t *
ngx_worksible_reqlog_header(ngx_http_request_t *r, const char *name)
{
    ngx_table_elt_t  *h;

    h = ngx_worksible_header_find(&r->headers_in.headers, name, NULL);

    return h != NULL ? &h->value : NULL;
}


/* sends the batch: one COPY into request_logs (NGX_WORKSIBLE_REQLOG_SQL) */

static void
ngx_worksible_reqlog_flush(ngx_event_t *ev)
{
    ngx_int_t                   rc;
    ngx_str_t                   rows;
    ngx_uint_t                  n;
    ngx_worksible_pg_op_t      *op;
    ngx_worksible_main_conf_t  *mcf;

    mcf = ev->data;
    n = mcf->log_nrows;

    if (n == 0 || mcf->log_inflight || mcf->log_buf == NULL) {
        return;
    }

    ngx_worksible_reqlog_prepare(mcf);

    rc = NGX_ERROR;
    op = ngx_worksible_pg_op_create(mcf->pg_pool);

    if (op != NULL) {
        rows.data = mcf->log_buf;
        rows.len = mcf->log_len;

        op->sql = NGX_WORKSIBLE_REQLOG_SQL;
        op->background = 1;
        op->handler = ngx_worksible_reqlog_sent;
        op->data = mcf;

        rc = ngx_worksible_pg_op_copy(op, &rows);
    }

    /* the rows are in the operation (or lost): the buffer starts again */

    mcf->log_len = 0;
    mcf->log_nrows = 0;

    if (mcf->log_size > NGX_WORKSIBLE_REQLOG_SHRINK) {
        ngx_free(mcf->log_buf);
        mcf->log_buf = NULL;
        mcf->log_size = 0;
        (void) ngx_worksible_reqlog_reserve(mcf, 0);
    }

    if (op == NULL || rc != NGX_OK) {
        if (op != NULL) {
            ngx_worksible_pg_op_free(op);
        }

        ngx_worksible_reqlog_dropped(mcf, n, "out of memory");
        return;
    }

    if (ngx_worksible_pg_op_start(op) != NGX_OK) {
        ngx_worksible_pg_op_free(op);
        ngx_worksible_reqlog_dropped(mcf, n, "PostgreSQL is unavailable");
        return;
    }

    mcf->log_inflight = n;
}


/*
 * A batch's end. Committed (a lone COPY ends with PGRES_COMMAND_OK, the
 * staging statement with its ingest's PGRES_TUPLES_OK), or refused: the
 * transaction rolled back; a COPY into request_logs refused for a row
 * without its day's partition (23514) goes once more through the staging
 * statement (ngx_worksible_reqlog_resend), any other refusal is dropped. A
 * batch whose answer was lost (connection lost, query_timeout) may have
 * committed: never sent again, counted as dropped.
 */

static void
ngx_worksible_reqlog_sent(ngx_worksible_pg_op_t *op)
{
    char                       *state;
    ngx_str_t                   msg;
    ngx_uint_t                  n;
    ExecStatusType              rs;
    ngx_worksible_main_conf_t  *mcf;

    mcf = op->data;
    n = mcf->log_inflight;
    mcf->log_inflight = 0;

    rs = op->status == NGX_WORKSIBLE_PG_OK ? PQresultStatus(op->result)
                                           : PGRES_FATAL_ERROR;

    if (rs == PGRES_COMMAND_OK || rs == PGRES_TUPLES_OK) {
        (void) ngx_atomic_fetch_add(&mcf->metrics->log_rows_written, n);

    } else {
        if (op->status == NGX_WORKSIBLE_PG_OK) {
            msg = ngx_worksible_pg_message(PQresultErrorMessage(op->result));
            state = PQresultErrorField(op->result, PG_DIAG_SQLSTATE);

            if (op->sql != ngx_worksible_reqlog_stage_sql
                && state != NULL
                && ngx_strcmp(state, NGX_WORKSIBLE_REQLOG_NO_PARTITION) == 0)
            {
                ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                              "worksible request log: batch refused: %V, "
                              "sending it to request_logs_pending", &msg);

                if (ngx_worksible_reqlog_resend(op) == NGX_OK) {
                    mcf->log_inflight = n;
                    return;
                }

            } else {
                ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                              "worksible request log: batch refused: %V",
                              &msg);
            }
        }

        ngx_worksible_reqlog_dropped(mcf, n, op->status == NGX_WORKSIBLE_PG_OK
                                     ? "PostgreSQL refused the batch"
                                     : "PostgreSQL is unavailable");
    }

    if (mcf->log_nrows && !mcf->log_timer.timer_set) {
        ngx_add_timer(&mcf->log_timer, NGX_WORKSIBLE_REQLOG_INTERVAL);
    }
}


/*
 * Sends the rows of op, a COPY into request_logs that was refused (rolled
 * back), once more through the staging statement
 * (ngx_worksible_reqlog_stage_sql), with ngx_worksible_reqlog_sent as its
 * end. NGX_OK, or NGX_ERROR (no memory, PostgreSQL unavailable): the rows
 * are lost.
 */

static ngx_int_t
ngx_worksible_reqlog_resend(ngx_worksible_pg_op_t *op)
{
    ngx_worksible_pg_op_t  *again;

    again = ngx_worksible_pg_op_create(op->pool);
    if (again == NULL) {
        return NGX_ERROR;
    }

    again->sql = ngx_worksible_reqlog_stage_sql;
    again->background = 1;
    again->handler = ngx_worksible_reqlog_sent;
    again->data = op->data;

    if (ngx_worksible_pg_op_copy(again, &op->copy) != NGX_OK
        || ngx_worksible_pg_op_start(again) != NGX_OK)
    {
        ngx_worksible_pg_op_free(again);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * Once an hour per worker (the first time with its first batch):
 * worksible_request_logs_prepare(), which makes today's partition and the
 * next two days' if missing (cheap when they are there). A failure is
 * logged and tried again a minute later.
 */

static void
ngx_worksible_reqlog_prepare(ngx_worksible_main_conf_t *mcf)
{
    ngx_worksible_pg_op_t  *op;

    if (mcf->log_preparing
        || ngx_time() - mcf->log_prepared < NGX_WORKSIBLE_REQLOG_PREPARE)
    {
        return;
    }

    op = ngx_worksible_pg_op_create(mcf->pg_pool);
    if (op == NULL) {
        return;
    }

    op->sql = "SELECT count(*) FROM worksible_request_logs_prepare()";
    op->background = 1;
    op->handler = ngx_worksible_reqlog_prepared;
    op->data = mcf;

    mcf->log_prepared = ngx_time();

    if (ngx_worksible_pg_op_start(op) != NGX_OK) {
        ngx_worksible_pg_op_free(op);
        mcf->log_prepared = ngx_time() - NGX_WORKSIBLE_REQLOG_PREPARE + 60;
        return;
    }

    mcf->log_preparing = 1;
}


static void
ngx_worksible_reqlog_prepared(ngx_worksible_pg_op_t *op)
{
    ngx_str_t                   msg;
    ngx_worksible_main_conf_t  *mcf;

    mcf = op->data;
    mcf->log_preparing = 0;

    if (op->status == NGX_WORKSIBLE_PG_OK
        && PQresultStatus(op->result) == PGRES_TUPLES_OK)
    {
        return;
    }

    if (op->status == NGX_WORKSIBLE_PG_OK) {
        msg = ngx_worksible_pg_message(PQresultErrorMessage(op->result));

    } else {
        ngx_str_set(&msg, "PostgreSQL is unavailable");
    }

    ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                  "worksible request log: the coming days' partitions "
                  "were not made (%V), trying again in a minute", &msg);

    mcf->log_prepared = ngx_time() - NGX_WORKSIBLE_REQLOG_PREPARE + 60;
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
