/*
 * The request log (see ngx_worksible_reqlog.h).
 *
 * A batch leaves when it holds NGX_WORKSIBLE_REQLOG_FLUSH rows, or every
 * second; one batch is in flight at a time. While a batch waits, its timer
 * is not cancelable, so a worker that exits (reload, shutdown) sends it
 * first. A batch PostgreSQL does not take (down, slow, full queue) is
 * dropped and counted: the log is bounded, requests never wait for it.
 *
 * A row is written as JSON text straight into the worker's batch buffer
 * (one growing allocation, reused from batch to batch): no JSON objects
 * are made per request and the batch is not encoded again to be sent.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_worksible_module.h"
#include "ngx_worksible_problem.h"
#include "ngx_worksible_reqlog.h"


#define NGX_WORKSIBLE_REQLOG_FLUSH     500
#define NGX_WORKSIBLE_REQLOG_MAX       10000
#define NGX_WORKSIBLE_REQLOG_INTERVAL  1000
#define NGX_WORKSIBLE_REQLOG_WARN      10          /* seconds */

/* the batch buffer's first size; one past REQLOG_SHRINK is freed once sent */
#define NGX_WORKSIBLE_REQLOG_BUF       (64 * 1024)
#define NGX_WORKSIBLE_REQLOG_SHRINK    (4 * 1024 * 1024)


static ngx_int_t ngx_worksible_reqlog_reserve(ngx_worksible_main_conf_t *mcf,
    size_t size);
static u_char *ngx_worksible_reqlog_text(u_char *p, u_char *data, size_t len,
    size_t max);
static ngx_int_t ngx_worksible_reqlog_path(ngx_http_request_t *r,
    ngx_str_t *path);
static size_t ngx_worksible_reqlog_utf8(u_char *s, u_char *last);
static u_char *ngx_worksible_reqlog_char(u_char *p, u_char *last, u_char *c);
static ngx_str_t *ngx_worksible_reqlog_header(ngx_http_request_t *r,
    const char *name);
static void ngx_worksible_reqlog_flush(ngx_event_t *ev);
static void ngx_worksible_reqlog_sent(ngx_worksible_pg_op_t *op);
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


/* ASCII but controls, '"' and '\\': written as is in a JSON string */
static uint32_t  ngx_worksible_reqlog_plain[] = {
    0x00000000,  /* 0x00-0x1f: controls */
    0xfffffffb,  /* 0x20-0x3f: but '"' */
    0xefffffff,  /* 0x40-0x5f: but '\\' */
    0xffffffff,  /* 0x60-0x7f (DEL as jansson writes it: as is) */
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

/* at most 6 bytes of JSON (\u00XX) a byte of text, and the quotes or null */
#define ngx_worksible_reqlog_len(len, max)  (6 * ngx_min(len, max) + 4)


ngx_int_t
ngx_worksible_reqlog_handler(ngx_http_request_t *r)
{
    u_char                     *p;
    size_t                      size;
    ngx_str_t                   path, ip, *ua, *ik;
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

    if (ngx_worksible_reqlog_path(r, &path) != NGX_OK) {
        path.data = NULL;
        path.len = 0;
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

    ua = r->headers_in.user_agent ? &r->headers_in.user_agent->value : NULL;
    ik = ngx_worksible_reqlog_header(r, "Idempotency-Key");

    size = sizeof(",{\"id\":,\"company_id\":,\"api_key_id\":,\"method\":,"
                  "\"path\":,\"status\":,\"latency_ms\":,\"ip\":,"
                  "\"user_agent\":,\"idempotency_key\":,\"replayed\":false,"
                  "\"ratelimit_remaining\":,"
                  "\"created_at\":\"1970-01-01T00:00:00.000Z\"}")
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
           + (ua ? ngx_worksible_reqlog_len(ua->len,
                                            NGX_WORKSIBLE_REQLOG_UA_MAX) : 4)
           + (ik ? ngx_worksible_reqlog_len(ik->len,
                                            NGX_WORKSIBLE_REQLOG_IDEM_MAX)
                 : 4)
           + 3 * NGX_INT64_LEN;

    if (ngx_worksible_reqlog_reserve(mcf, size) != NGX_OK) {
        ngx_worksible_reqlog_dropped(mcf, 1, "out of memory");
        return NGX_OK;
    }

    p = mcf->log_buf + mcf->log_len;

    if (mcf->log_nrows > 0) {
        *p++ = ',';
    }

    p = ngx_cpymem(p, "{\"id\":", sizeof("{\"id\":") - 1);
    p = ngx_worksible_reqlog_text(p, st->request_id,
                                  NGX_WORKSIBLE_REQUEST_ID_LEN,
                                  NGX_WORKSIBLE_REQUEST_ID_LEN);

    p = ngx_cpymem(p, ",\"company_id\":", sizeof(",\"company_id\":") - 1);
    p = ngx_worksible_reqlog_text(p, st->identity.company_id.data,
                                  st->identity.company_id.len,
                                  NGX_WORKSIBLE_REQLOG_ID_MAX);

    p = ngx_cpymem(p, ",\"api_key_id\":", sizeof(",\"api_key_id\":") - 1);
    p = ngx_worksible_reqlog_text(p, st->identity.api_key_id.data,
                                  st->identity.api_key_id.len,
                                  NGX_WORKSIBLE_REQLOG_ID_MAX);

    p = ngx_cpymem(p, ",\"method\":", sizeof(",\"method\":") - 1);
    p = ngx_worksible_reqlog_text(p, st->method.data, st->method.len,
                                  NGX_WORKSIBLE_REQLOG_METHOD_MAX);

    p = ngx_cpymem(p, ",\"path\":", sizeof(",\"path\":") - 1);
    p = ngx_worksible_reqlog_text(p, path.data, path.len,
                                  NGX_WORKSIBLE_REQLOG_PATH_MAX);

    p = ngx_cpymem(p, ",\"status\":", sizeof(",\"status\":") - 1);
    p = ngx_worksible_decimal(p, status);
    p = ngx_cpymem(p, ",\"latency_ms\":", sizeof(",\"latency_ms\":") - 1);
    p = ngx_worksible_decimal(p, ms > 0 ? (uint64_t) ms : 0);
    p = ngx_cpymem(p, ",\"ip\":", sizeof(",\"ip\":") - 1);
    p = ngx_worksible_reqlog_text(p, ip.data, ip.len,
                                  NGX_WORKSIBLE_REQLOG_ID_MAX);

    p = ngx_cpymem(p, ",\"user_agent\":", sizeof(",\"user_agent\":") - 1);
    p = ngx_worksible_reqlog_text(p, ua ? ua->data : NULL, ua ? ua->len : 0,
                                  NGX_WORKSIBLE_REQLOG_UA_MAX);

    p = ngx_cpymem(p, ",\"idempotency_key\":",
                   sizeof(",\"idempotency_key\":") - 1);
    p = ngx_worksible_reqlog_text(p, ik ? ik->data : NULL, ik ? ik->len : 0,
                                  NGX_WORKSIBLE_REQLOG_IDEM_MAX);

    p = (st->idem != NULL && st->idem->replayed)
        ? ngx_cpymem(p, ",\"replayed\":true", sizeof(",\"replayed\":true") - 1)
        : ngx_cpymem(p, ",\"replayed\":false",
                     sizeof(",\"replayed\":false") - 1);

    p = (st->rl != NULL && st->rl->set)
        ? ngx_worksible_decimal(
              ngx_cpymem(p, ",\"ratelimit_remaining\":",
                         sizeof(",\"ratelimit_remaining\":") - 1),
              st->rl->remaining)
        : ngx_cpymem(p, ",\"ratelimit_remaining\":null",
                     sizeof(",\"ratelimit_remaining\":null") - 1);

    /* the date changes once a second: written again only then */

    if (mcf->log_date_sec != r->start_sec || mcf->log_date[0] == '\0') {
        ngx_tm_t  tm;

        ngx_gmtime(r->start_sec, &tm);
        ngx_sprintf(mcf->log_date, "%4d-%02d-%02dT%02d:%02d:%02d",
                    tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                    tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec);
        mcf->log_date_sec = r->start_sec;
    }

    p = ngx_cpymem(p, ",\"created_at\":\"", sizeof(",\"created_at\":\"") - 1);
    p = ngx_cpymem(p, mcf->log_date, sizeof(mcf->log_date));
    *p++ = '.';
    *p++ = (u_char) ('0' + r->start_msec / 100 % 10);
    *p++ = (u_char) ('0' + r->start_msec / 10 % 10);
    *p++ = (u_char) ('0' + r->start_msec % 10);
    p = ngx_cpymem(p, "Z\"}", 3);

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
 * Room for size more bytes in the batch buffer, which always begins with
 * the array's "[" (size 0: the first buffer). NGX_OK or NGX_ERROR.
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
        buf[0] = '[';
        mcf->log_len = 1;
    }

    mcf->log_buf = buf;
    mcf->log_size = n;

    return NGX_OK;
}


/*
 * Writes at p a JSON string (RFC 8259, section 7) of at most max bytes of
 * data, cut at a character; "?" if they are not UTF-8 (RFC 3629), null if
 * data is NULL. Returns the end; p has room for
 * ngx_worksible_reqlog_len(len, max) bytes. Jansson's encoding: UTF-8 as
 * is, \b \f \n \r \t, other controls as \u00XX.
 */

static u_char *
ngx_worksible_reqlog_text(u_char *p, u_char *data, size_t len, size_t max)
{
    u_char  c, *s, *last, *start, *run;
    size_t  n;

    static u_char  hex[] = "0123456789abcdef";

    if (data == NULL) {
        return ngx_cpymem(p, "null", 4);
    }

    if (len > max) {
        for (len = max; len > 0 && (data[len] & 0xc0) == 0x80; len--) {
            /* void */
        }
    }

    start = p;
    *p++ = '"';

    s = data;
    last = data + len;

    while (s < last) {

        /* a run of ASCII but controls, '"' and '\\': copied as is */

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
                return ngx_cpymem(start, "\"?\"", 3);
            }

            p = ngx_cpymem(p, s, n);
            s += n;
            continue;
        }

        s++;
        *p++ = '\\';

        switch (c) {
        case '"':  *p++ = '"'; break;
        case '\\': *p++ = '\\'; break;
        case '\b': *p++ = 'b'; break;
        case '\f': *p++ = 'f'; break;
        case '\n': *p++ = 'n'; break;
        case '\r': *p++ = 'r'; break;
        case '\t': *p++ = 't'; break;
        default:    /* another control */
            *p++ = 'u'; *p++ = '0'; *p++ = '0';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 0xf];
        }
    }

    *p++ = '"';

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
 * The request line's path and query, an API key in it (a client that put
 * one in a query) replaced by "wsk_[redacted]": no key reaches the log,
 * however it was percent-encoded (wsk%5Flive%5F..., even twice:
 * %255F).
 */

static ngx_int_t
ngx_worksible_reqlog_path(ngx_http_request_t *r, ngx_str_t *path)
{
    u_char  *p, *q, *last, *out, *o;
    size_t   len;
    u_char   c;

    p = r->unparsed_uri.data;
    len = ngx_min(r->unparsed_uri.len, 2048);

    if (p == NULL) {
        path->data = (u_char *) "";
        path->len = 0;
        return NGX_OK;
    }

    last = p + len;

    /* no "w" and no "%": nothing to redact, the path as it came */

    for (q = p; q < last && (*q | 0x20) != 'w' && *q != '%'; q++) {
        /* void */
    }

    if (q == last) {
        path->data = p;
        path->len = len;
        return NGX_OK;
    }

    /* each "wsk_" (4 bytes at least) may become "wsk_[redacted]" (14) */
    out = ngx_pnalloc(r->pool, 4 * len + 16);
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

    path->data = out;
    path->len = o - out;

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


/* sends the batch: worksible_request_logs_insert(rows) */

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

    rc = ngx_worksible_reqlog_reserve(mcf, 1);

    op = (rc == NGX_OK) ? ngx_worksible_pg_op_create(mcf->pg_pool) : NULL;

    if (op != NULL) {
        mcf->log_buf[mcf->log_len] = ']';
        rows.data = mcf->log_buf;
        rows.len = mcf->log_len + 1;

        op->sql = "SELECT worksible_request_logs_insert($1::json)";
        op->background = 1;
        op->handler = ngx_worksible_reqlog_sent;
        op->data = mcf;

        rc = ngx_worksible_pg_op_param(op, &rows);
    }

    /* the rows are in the operation (or lost): the buffer starts again */

    mcf->log_len = 1;
    mcf->log_nrows = 0;

    if (mcf->log_size > NGX_WORKSIBLE_REQLOG_SHRINK) {
        ngx_free(mcf->log_buf);
        mcf->log_buf = NULL;
        mcf->log_size = 0;
        (void) ngx_worksible_reqlog_reserve(mcf, 0);
    }

    if (op == NULL) {
        ngx_worksible_reqlog_dropped(mcf, n, "out of memory");
        return;
    }

    if (rc != NGX_OK || ngx_worksible_pg_op_start(op) != NGX_OK) {
        ngx_worksible_pg_op_free(op);
        ngx_worksible_reqlog_dropped(mcf, n, "PostgreSQL is unavailable");
        return;
    }

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

    if (mcf->log_nrows && !mcf->log_timer.timer_set) {
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
