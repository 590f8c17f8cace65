/*
 * The nginx around the module's functions for the fuzz targets (see
 * fuzz_ngx.h).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <sodium.h>

#include "fuzz_ngx.h"
#include "ngx_worksible_reqlog.h"


#define NGX_WORKSIBLE_FUZZ_MODULES  64


ngx_worksible_main_conf_t  ngx_worksible_fuzz_mcf;
ngx_uint_t                 ngx_worksible_fuzz_status;
ngx_str_t                  ngx_worksible_fuzz_body;

static ngx_log_t                  ngx_worksible_fuzz_log;
static ngx_open_file_t            ngx_worksible_fuzz_log_file;
static ngx_cycle_t                ngx_worksible_fuzz_cycle;
static ngx_worksible_loc_conf_t   ngx_worksible_fuzz_lcf;
static ngx_uint_t                 ngx_worksible_fuzz_ready;


static ngx_int_t
ngx_worksible_fuzz_header_filter(ngx_http_request_t *r)
{
    ngx_worksible_fuzz_status = r->headers_out.status;
    r->header_sent = 1;

    return NGX_OK;
}


static ngx_int_t
ngx_worksible_fuzz_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    u_char       *p;
    size_t        len;
    ngx_chain_t  *cl;

    len = ngx_worksible_fuzz_body.len;

    for (cl = in; cl; cl = cl->next) {
        len += ngx_buf_size(cl->buf);
    }

    p = ngx_pnalloc(r->pool, len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (ngx_worksible_fuzz_body.len) {
        p = ngx_cpymem(p, ngx_worksible_fuzz_body.data,
                       ngx_worksible_fuzz_body.len);
    }

    ngx_worksible_fuzz_body.data = p - ngx_worksible_fuzz_body.len;

    for (cl = in; cl; cl = cl->next) {
        if (cl->buf->last > cl->buf->pos) {
            p = ngx_cpymem(p, cl->buf->pos, cl->buf->last - cl->buf->pos);
        }
    }

    ngx_worksible_fuzz_body.len = len;
    *p = '\0';

    return NGX_OK;
}


static void
ngx_worksible_fuzz_init(void)
{
    if (ngx_worksible_fuzz_ready) {
        return;
    }

    if (sodium_init() < 0) {
        abort();
    }

    ngx_pagesize = getpagesize();
    for (ngx_pagesize_shift = 0; (1 << ngx_pagesize_shift) < ngx_pagesize;
         ngx_pagesize_shift++)
    {
        /* void */
    }
    ngx_cacheline_size = NGX_CPU_CACHE_LINE;

    ngx_time_init();
    ngx_event_timer_init(&ngx_worksible_fuzz_log);

    /* quiet: the targets check what the functions return, not the log */
    ngx_worksible_fuzz_log_file.fd = ngx_stderr;
    ngx_worksible_fuzz_log.file = &ngx_worksible_fuzz_log_file;
    ngx_worksible_fuzz_log.log_level = NGX_LOG_STDERR;
    ngx_worksible_fuzz_cycle.log = &ngx_worksible_fuzz_log;
    ngx_cycle = &ngx_worksible_fuzz_cycle;

    /* the only module whose configuration a request carries here */
    ngx_worksible_module.ctx_index = 0;

    ngx_http_top_header_filter = ngx_worksible_fuzz_header_filter;
    ngx_http_top_body_filter = ngx_worksible_fuzz_body_filter;

    ngx_worksible_fuzz_ready = 1;
}


void
ngx_worksible_fuzz_fail(const char *file, int line, const char *cond)
{
    fprintf(stderr, "%s:%d: check failed: %s\n", file, line, cond);
    abort();
}


ngx_http_request_t *
ngx_worksible_fuzz_request(void)
{
    ngx_pool_t          *pool;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    ngx_worksible_fuzz_init();

    ngx_worksible_fuzz_status = 0;
    ngx_str_null(&ngx_worksible_fuzz_body);

    pool = ngx_create_pool(4096, &ngx_worksible_fuzz_log);
    if (pool == NULL) {
        abort();
    }

    r = ngx_pcalloc(pool, sizeof(ngx_http_request_t));
    c = ngx_pcalloc(pool, sizeof(ngx_connection_t));

    if (r == NULL || c == NULL) {
        abort();
    }

    c->log = &ngx_worksible_fuzz_log;
    c->pool = pool;
    c->fd = (ngx_socket_t) -1;

    r->pool = pool;
    r->connection = c;
    r->main = r;
    r->count = 1;
    r->method = NGX_HTTP_GET;
    ngx_str_set(&r->method_name, "GET");
    r->http_version = NGX_HTTP_VERSION_11;
    r->discard_body = 1;          /* ngx_http_discard_request_body(): done */
    r->headers_out.content_length_n = -1;
    r->headers_in.content_length_n = -1;

    r->ctx = ngx_pcalloc(pool, NGX_WORKSIBLE_FUZZ_MODULES * sizeof(void *));
    r->main_conf = ngx_pcalloc(pool,
                               NGX_WORKSIBLE_FUZZ_MODULES * sizeof(void *));
    r->srv_conf = ngx_pcalloc(pool,
                              NGX_WORKSIBLE_FUZZ_MODULES * sizeof(void *));
    r->loc_conf = ngx_pcalloc(pool,
                              NGX_WORKSIBLE_FUZZ_MODULES * sizeof(void *));

    if (r->ctx == NULL || r->main_conf == NULL || r->srv_conf == NULL
        || r->loc_conf == NULL
        || ngx_list_init(&r->headers_in.headers, pool, 4,
                         sizeof(ngx_table_elt_t))
           != NGX_OK
        || ngx_list_init(&r->headers_out.headers, pool, 4,
                         sizeof(ngx_table_elt_t))
           != NGX_OK)
    {
        abort();
    }

    r->main_conf[ngx_worksible_module.ctx_index] = &ngx_worksible_fuzz_mcf;
    r->loc_conf[ngx_worksible_module.ctx_index] = &ngx_worksible_fuzz_lcf;

    return r;
}


void
ngx_worksible_fuzz_free(ngx_http_request_t *r)
{
    ngx_destroy_pool(r->pool);
}


ngx_table_elt_t *
ngx_worksible_fuzz_header(ngx_http_request_t *r, const char *name,
    const u_char *value, size_t len)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_in.headers);
    if (h == NULL) {
        abort();
    }

    ngx_memzero(h, sizeof(ngx_table_elt_t));

    h->key.len = ngx_strlen(name);
    h->key.data = (u_char *) name;
    h->lowcase_key = (u_char *) name;
    h->hash = 1;

    h->value.len = len;
    h->value.data = ngx_pnalloc(r->pool, len + 1);
    if (h->value.data == NULL) {
        abort();
    }

    ngx_memcpy(h->value.data, value, len);
    h->value.data[len] = '\0';

    return h;
}


ngx_int_t
ngx_worksible_fuzz_line(ngx_http_request_t *r, const u_char *data,
    size_t size, ngx_str_t *rest)
{
    u_char      *line, *last, *sp, *q;
    size_t       len;
    ngx_uint_t   i;

    static struct {
        ngx_str_t   name;
        ngx_uint_t  method;
    } methods[] = {
        { ngx_string("GET"), NGX_HTTP_GET },
        { ngx_string("HEAD"), NGX_HTTP_HEAD },
        { ngx_string("POST"), NGX_HTTP_POST },
        { ngx_string("PUT"), NGX_HTTP_PUT },
        { ngx_string("PATCH"), NGX_HTTP_PATCH },
        { ngx_string("DELETE"), NGX_HTTP_DELETE },
        { ngx_string("OPTIONS"), NGX_HTTP_OPTIONS },
        { ngx_null_string, 0 }
    };

    last = memchr(data, '\n', size);
    len = last ? (size_t) (last - data) : size;

    rest->data = (u_char *) data + (last ? len + 1 : size);
    rest->len = size - (rest->data - data);

    /* a copy of its own: ASan sees a read past the line */
    line = ngx_pnalloc(r->pool, len);
    if (line == NULL && len) {
        abort();
    }

    ngx_memcpy(line, data, len);
    last = line + len;

    sp = ngx_strlchr(line, last, ' ');
    if (sp == NULL || sp + 1 == last || sp[1] != '/') {
        return NGX_DECLINED;
    }

    for (i = 0; methods[i].method; i++) {
        if ((size_t) (sp - line) == methods[i].name.len
            && ngx_strncmp(line, methods[i].name.data, sp - line) == 0)
        {
            break;
        }
    }

    if (methods[i].method == 0) {
        return NGX_DECLINED;
    }

    r->method = methods[i].method;
    r->method_name.data = line;
    r->method_name.len = sp - line;
    r->request_line.data = line;
    r->request_line.len = len;

    r->unparsed_uri.data = sp + 1;
    r->unparsed_uri.len = last - (sp + 1);

    q = ngx_strlchr(sp + 1, last, '?');

    r->uri.data = sp + 1;
    r->uri.len = (q ? q : last) - (sp + 1);

    if (q) {
        r->args.data = q + 1;
        r->args.len = last - (q + 1);
    }

    return NGX_OK;
}


ngx_int_t
ngx_worksible_fuzz_logged(ngx_http_request_t *r)
{
    ngx_int_t                   rc;
    ngx_worksible_main_conf_t  *mcf;

    mcf = &ngx_worksible_fuzz_mcf;

    if (mcf->log_buf == NULL) {
        /* the worker's batch buffer, as init_process makes it: empty */
        mcf->log_size = 4096;
        mcf->log_buf = ngx_alloc(mcf->log_size, ngx_cycle->log);
        if (mcf->log_buf == NULL) {
            abort();
        }

        mcf->log_len = 0;
    }

    /* never used here: the batch is taken before any flush */
    mcf->pg_pool = (ngx_worksible_pg_pool_t *) &ngx_worksible_fuzz_cycle;

    ngx_worksible_fuzz_lcf.auth = 1;
    rc = ngx_worksible_reqlog_handler(r);
    ngx_worksible_fuzz_lcf.auth = 0;

    mcf->pg_pool = NULL;

    if (mcf->log_timer.timer_set) {
        ngx_del_timer(&mcf->log_timer);
    }

    return rc;
}


json_t *
ngx_worksible_fuzz_row(void)
{
    u_char                     *p, *last, *field, *o;
    json_t                     *row, *v;
    ngx_uint_t                  i;
    ngx_worksible_main_conf_t  *mcf;

    /* the columns of the module's COPY, in order */
    static const char  *names[] = {
        "id", "company_id", "api_key_id", "method", "path", "status",
        "latency_ms", "ip", "user_agent", "idempotency_key", "replayed",
        "ratelimit_remaining", "created_at"
    };

    mcf = &ngx_worksible_fuzz_mcf;

    ngx_worksible_fuzz_assert(mcf->log_nrows == 1);

    /*
     * The batch is one line of COPY's text format: 13 columns split by
     * tabs, "\N" or text whose only backslash sequences are \\ \t \n \r,
     * holding no NUL, tab, newline or carriage return, UTF-8 (else
     * json_stringn fails); the line ends with its newline.
     */

    p = mcf->log_buf;
    last = p + mcf->log_len;

    ngx_worksible_fuzz_assert(mcf->log_len > 0 && last[-1] == '\n');

    row = json_object();
    ngx_worksible_fuzz_assert(row != NULL);

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {

        field = p;
        o = p;

        while (*p != '\t' && *p != '\n') {
            ngx_worksible_fuzz_assert(*p != '\0' && *p != '\r');

            if (*p != '\\') {
                *o++ = *p++;
                continue;
            }

            switch (p[1]) {
            case '\\': *o++ = '\\'; break;
            case 't':  *o++ = '\t'; break;
            case 'n':  *o++ = '\n'; break;
            case 'r':  *o++ = '\r'; break;
            case 'N':  ngx_worksible_fuzz_assert(p == field
                                                 && (p[2] == '\t'
                                                     || p[2] == '\n'));
                       break;
            default:   ngx_worksible_fuzz_assert(0);
            }

            p += 2;
        }

        ngx_worksible_fuzz_assert(*p == (i == 12 ? '\n' : '\t'));

        if (p - field == 2 && field[0] == '\\' && field[1] == 'N' && o == field) {
            v = json_null();

        } else {
            v = json_stringn((char *) field, o - field);
        }

        ngx_worksible_fuzz_assert(v != NULL);
        ngx_worksible_fuzz_assert(json_object_set_new(row, names[i], v) == 0);

        p++;
    }

    ngx_worksible_fuzz_assert(p == last);

    mcf->log_len = 0;
    mcf->log_nrows = 0;

    return row;
}


ngx_uint_t
ngx_worksible_fuzz_utf8(const u_char *s, size_t len)
{
    u_char  *p, *last;

    p = (u_char *) s;
    last = p + len;

    while (p < last) {
        if (*p < 0x80) {
            p++;
            continue;
        }

        if (ngx_utf8_decode(&p, last - p) > 0x10ffff) {
            return 0;
        }
    }

    return 1;
}


ngx_uint_t
ngx_worksible_fuzz_refusal(ngx_worksible_error_e err, ngx_str_t *param)
{
    if ((err == NGX_WORKSIBLE_PARAMETER_MISSING
         || err == NGX_WORKSIBLE_PARAMETER_INVALID
         || err == NGX_WORKSIBLE_PARAMETER_UNKNOWN
         || err == NGX_WORKSIBLE_INSUFFICIENT_SCOPE)
        && param->data != NULL)
    {
        return 1;
    }

    fprintf(stderr, "refusal %d naming \"%.*s\"\n", (int) err,
            (int) param->len, param->data ? (char *) param->data : "");

    return 0;
}


ngx_uint_t
ngx_worksible_fuzz_endpoint(ngx_http_request_t *r,
    ngx_worksible_route_t *route, ngx_str_t *id,
    ngx_str_t *args, json_t *body, ngx_uint_t reals, const uint8_t *data,
    size_t size)
{
    int                        i, fd;
    char                      *dir;
    u_char                    *p;
    ngx_int_t                  rc;
    ngx_pool_t                *mem;
    ngx_worksible_pg_op_t     *op;
    ngx_worksible_request_t   *st;
    ngx_worksible_endpoint_t   ep;
    u_char                     hash[16], name[4096];

    /* the access phase's: an authenticated key that holds every scope */

    st = ngx_worksible_request(r);
    if (st == NULL) {
        abort();
    }

    st->authenticated = 1;
    ngx_str_set(&st->identity.company_id, "cmp_01JDZ1Q9Y8X7W6V5T4S3R2Q1P0");
    ngx_str_set(&st->identity.api_key_id, "key_01JDZ1Q9Y8X7W6V5T4S3R2Q1P0");
    ngx_str_set(&st->identity.plan, "growth");
    ngx_str_set(&st->identity.scopes,
                "company:write freelancers:write projects:write "
                "contracts:write timesheets:write invoices:write "
                "payments:write payouts:write request_logs:read "
                "api_keys:write");
    st->body_reals = reals;

    mem = ngx_create_pool(1024, r->connection->log);
    if (mem == NULL) {
        abort();
    }

    op = ngx_pcalloc(mem, sizeof(ngx_worksible_pg_op_t));
    if (op == NULL) {
        abort();
    }

    op->mem = mem;

    if (ngx_worksible_pg_op_param(op, &st->identity.company_id) != NGX_OK) {
        abort();
    }

    ngx_memzero(&ep, sizeof(ngx_worksible_endpoint_t));

    ep.route = route;
    ep.id = *id;
    ep.args = args;
    ep.body = body;
    ep.reals = reals;
    ep.op = op;

    rc = route->endpoint(r, &ep);

    ngx_worksible_fuzz_assert(rc == NGX_OK || rc == NGX_DECLINED);

    if (rc == NGX_DECLINED) {
        ngx_worksible_fuzz_assert(ngx_worksible_fuzz_refusal(ep.ref.err,
                                                             &ep.ref.param));
        ngx_worksible_fuzz_assert(ep.ref.param.len > 0
                                  || (body != NULL
                                      && json_object_get(body, "") != NULL));
        ngx_worksible_fuzz_assert(ngx_worksible_fuzz_utf8(ep.ref.param.data,
                                                      ep.ref.param.len));
        ngx_worksible_pg_op_free(op);
        return 0;
    }

    ngx_worksible_fuzz_assert(op->sql != NULL);

    for (i = 0; i < op->nparams; i++) {
        ngx_worksible_fuzz_assert(op->values[i] == NULL
                                  || ngx_worksible_fuzz_utf8(
                                         (u_char *) op->values[i],
                                         ngx_strlen(op->values[i])));
    }

    ngx_worksible_pg_op_free(op);

    dir = getenv("WORKSIBLE_FUZZ_ACCEPTED");

    if (dir != NULL && ngx_strlen(dir) < sizeof(name) - 64) {
        crypto_generichash(hash, sizeof(hash), data, size, NULL, 0);
        p = ngx_sprintf(name, "%s/", dir);
        p = ngx_hex_dump(p, hash, sizeof(hash));
        *p = '\0';

        fd = open((char *) name, O_WRONLY|O_CREAT|O_TRUNC, 0644);
        if (fd == -1 || write(fd, data, size) != (ssize_t) size) {
            abort();
        }

        close(fd);
    }

    return 1;
}
