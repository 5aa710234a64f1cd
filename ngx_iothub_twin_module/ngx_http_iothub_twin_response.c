
/*
 * Copyright (C) ngx_iothub_twin developers
 *
 * The answer: a hub's 200 is held until it is complete and checked, so
 * that the caller gets its ETag, and nothing the hub sent that is not a
 * twin; what cannot be given becomes a hub-shaped 502.
 */


#include "ngx_http_iothub_twin_module.h"


#define NGX_HTTP_IOTHUB_TWIN_RESPONSE_MAX  (1024 * 1024)
#define NGX_HTTP_IOTHUB_TWIN_RESPONSE_TOPS  4


/*
 * The members of a filtered twin that the etag scan reads: its top-level
 * "etag" and "version", as the read filter kept them.
 */
typedef struct {
    ngx_uint_t   n;
    ngx_uint_t   more;        /* more than fit: the whole twin is read */
    ngx_str_t    member[NGX_HTTP_IOTHUB_TWIN_RESPONSE_TOPS];
} ngx_http_iothub_twin_tops_t;


static ngx_int_t ngx_http_iothub_twin_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_iothub_twin_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_int_t ngx_http_iothub_twin_hold(ngx_http_request_t *r,
    ngx_http_iothub_twin_ctx_t *ctx, ngx_buf_t *b);
static ngx_int_t ngx_http_iothub_twin_release(ngx_http_request_t *r,
    ngx_http_iothub_twin_ctx_t *ctx, ngx_chain_t *rest);
static ngx_int_t ngx_http_iothub_twin_twin_etag(ngx_http_request_t *r,
    ngx_http_iothub_twin_ctx_t *ctx, ngx_str_t *twin);
static ngx_int_t ngx_http_iothub_twin_read_scope(ngx_http_request_t *r,
    ngx_http_iothub_twin_ctx_t *ctx, ngx_str_t *twin);
static int ngx_http_iothub_twin_read_whole(void *data,
    const unsigned char *path, size_t len);
static void ngx_http_iothub_twin_top(void *data, const unsigned char *member,
    size_t len);
static ngx_int_t ngx_http_iothub_twin_tops(ngx_http_request_t *r,
    ngx_http_iothub_twin_tops_t *tops, ngx_str_t *twin);
static ngx_int_t ngx_http_iothub_twin_bad_answer(ngx_http_request_t *r,
    ngx_http_iothub_twin_ctx_t *ctx, const char *why);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


void
ngx_http_iothub_twin_response_init(void)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_iothub_twin_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_iothub_twin_body_filter;
}


/*
 * A successful answer from the hub is held until it is complete, so that
 * its etag and version are known: the caller gets ETag even when the hub
 * sends none, and both are there for the log.
 */

static ngx_int_t
ngx_http_iothub_twin_header_filter(ngx_http_request_t *r)
{
    ngx_http_iothub_twin_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_iothub_twin_module);

    if (ctx == NULL || !ctx->forwarded || r != r->main || r->internal) {
        return ngx_http_next_header_filter(r);
    }

    if (r->headers_out.status == NGX_HTTP_TOO_MANY_REQUESTS) {
        ngx_http_iothub_twin_backoff_record(r,
            ngx_http_get_module_loc_conf(r, ngx_http_iothub_twin_module),
            ctx);
    }

    if (r->headers_out.status != NGX_HTTP_OK || r->header_only) {
        return ngx_http_next_header_filter(r);
    }

    ctx->buffering = 1;
    r->filter_need_in_memory = 1;

    /* answered from the body filter, where the body can be dropped */

    if (r->headers_out.content_length_n > NGX_HTTP_IOTHUB_TWIN_RESPONSE_MAX) {
        ctx->oversize = 1;
        return NGX_OK;
    }

    if (r->headers_out.content_length_n > 0) {
        ctx->resp_cap = (size_t) r->headers_out.content_length_n;
        ctx->resp = ngx_pnalloc(r->pool, ctx->resp_cap);
        if (ctx->resp == NULL) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_iothub_twin_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_int_t                    rc;
    ngx_str_t                    twin;
    ngx_uint_t                   last, flush;
    ngx_chain_t                 *cl;
    ngx_http_iothub_twin_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_iothub_twin_module);

    if (ctx == NULL || !(ctx->buffering || ctx->replaced)) {
        return ngx_http_next_body_filter(r, in);
    }

    if (ctx->replaced) {

        /* the gateway answered instead: the hub's body goes nowhere */

        for (cl = in; cl; cl = cl->next) {
            cl->buf->pos = cl->buf->last;
            cl->buf->file_pos = cl->buf->file_last;
        }

        return ngx_http_next_body_filter(r, NULL);
    }

    if (ctx->oversize) {
        return ngx_http_iothub_twin_bad_answer(r, ctx, "is larger than "
                                               "a twin can be");
    }

    last = 0;
    flush = 0;

    for (cl = in; cl; cl = cl->next) {
        rc = ngx_http_iothub_twin_hold(r, ctx, cl->buf);

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (rc == NGX_DECLINED) {
            return ngx_http_iothub_twin_bad_answer(r, ctx, "is larger than "
                                                   "a twin can be");
        }

        if (cl->buf->last_buf) {
            last = 1;
        }

        if (cl->buf->flush) {
            flush = 1;
        }
    }

    if (!last) {

        /*
         * The upstream module flushes without a last buffer when the hub
         * failed after its headers (a timeout, a connection closed in the
         * body): nothing has reached the caller yet, so the caller gets an
         * error in the hub's shape, not a cut 200.
         */

        if (flush && r->upstream && r->upstream->peer.connection == NULL) {
            return ngx_http_iothub_twin_bad_answer(r, ctx, "was cut short");
        }

        return NGX_OK;
    }

    /*
     * The read filter first: for a scoped caller it checks the whole twin
     * strictly, and the etag scan then reads only the twin's "etag" and
     * "version" members as the filter kept them (they are always read),
     * not the whole twin a second time.
     */

    rc = ngx_http_iothub_twin_read_scope(r, ctx, &twin);

    if (rc == NGX_OK) {
        rc = ngx_http_iothub_twin_twin_etag(r, ctx, &twin);
    }

    if (rc == NGX_DECLINED) {
        return ngx_http_iothub_twin_bad_answer(r, ctx, "is not a twin");
    }

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_iothub_twin_release(r, ctx, NULL);
}


static ngx_int_t
ngx_http_iothub_twin_hold(ngx_http_request_t *r,
    ngx_http_iothub_twin_ctx_t *ctx, ngx_buf_t *b)
{
    u_char  *p;
    size_t   size, cap;

    if (!ngx_buf_in_memory(b)) {
        return ngx_buf_size(b) ? NGX_DECLINED : NGX_OK;
    }

    size = b->last - b->pos;

    if (size == 0) {
        return NGX_OK;
    }

    if (size > NGX_HTTP_IOTHUB_TWIN_RESPONSE_MAX - ctx->resp_len) {
        return NGX_DECLINED;
    }

    if (ctx->resp_len + size > ctx->resp_cap) {

        /* the hub gave no length, or a wrong one: grow, bounded */

        cap = ngx_max(2 * ctx->resp_cap, ctx->resp_len + size);
        cap = ngx_max(cap, 4096);
        cap = ngx_min(cap, NGX_HTTP_IOTHUB_TWIN_RESPONSE_MAX);

        p = ngx_pnalloc(r->pool, cap);
        if (p == NULL) {
            return NGX_ERROR;
        }

        if (ctx->resp_len) {
            ngx_memcpy(p, ctx->resp, ctx->resp_len);
        }

        if (ctx->resp) {
            ngx_pfree(r->pool, ctx->resp);
        }

        ctx->resp = p;
        ctx->resp_cap = cap;
    }

    ngx_memcpy(ctx->resp + ctx->resp_len, b->pos, size);
    ctx->resp_len += size;

    b->pos = b->last;

    if (b->in_file) {
        b->file_pos = b->file_last;
    }

    return NGX_OK;
}


/* sends the headers, what was held, and the rest of the chain */

static ngx_int_t
ngx_http_iothub_twin_release(ngx_http_request_t *r,
    ngx_http_iothub_twin_ctx_t *ctx, ngx_chain_t *rest)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    ctx->buffering = 0;

    rc = ngx_http_next_header_filter(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = ctx->resp;
    b->last = ctx->resp + ctx->resp_len;
    b->memory = (ctx->resp_len > 0);
    b->last_buf = (rest == NULL);
    b->last_in_chain = (rest == NULL);

    if (ctx->resp_len == 0 && rest != NULL) {
        return ngx_http_next_body_filter(r, rest);
    }

    out.buf = b;
    out.next = rest;

    return ngx_http_next_body_filter(r, &out);
}


/* the etag and version of the twin (what read_scope left in twin) */

static ngx_int_t
ngx_http_iothub_twin_twin_etag(ngx_http_request_t *r,
    ngx_http_iothub_twin_ctx_t *ctx, ngx_str_t *twin)
{
    u_char                            *p;
    ngx_table_elt_t                   *h;
    ngx_http_iothub_twin_twin_info_t   info;

    if (twin->len == 0
        || ngx_http_iothub_twin_twin_info(twin->data, twin->len, &info) != 0)
    {
        return NGX_DECLINED;
    }

    if (info.has_version) {
        p = ngx_pnalloc(r->pool, NGX_INT64_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ctx->version.data = p;
        ctx->version.len = ngx_sprintf(p, "%L", (int64_t) info.version) - p;
    }

    /* only an etag the hub could have made becomes a header */

    if (info.etag_invalid) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "iothub_twin: the hub's twin holds an etag that is not "
                      "a valid etag; no ETag is sent");
    }

    if (info.etag == NULL) {
        return NGX_OK;
    }

    /* a copy, in quotes for the header */

    p = ngx_pnalloc(r->pool, info.etag_len + 2);
    if (p == NULL) {
        return NGX_ERROR;
    }

    p[0] = '"';
    ngx_memcpy(p + 1, info.etag, info.etag_len);
    p[info.etag_len + 1] = '"';

    ctx->etag.data = p + 1;
    ctx->etag.len = info.etag_len;

    if (r->headers_out.etag) {
        return NGX_OK;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "ETag");
    h->value.data = p;
    h->value.len = info.etag_len + 2;

    r->headers_out.etag = h;

    return NGX_OK;
}


/*
 * The twin the caller gets holds only what its rules let it read: one
 * streaming pass over the held answer, which it cuts down in place.  A
 * twin that cannot be parsed never reaches a scoped caller (NGX_DECLINED:
 * a 502; the held bytes are then undefined, and nothing reads them).  In
 * report mode the whole twin passes, and what would have been withheld is
 * counted and logged.  twin: what the etag scan is to read, the held
 * answer or, filtered, the members it needs.
 */

static ngx_int_t
ngx_http_iothub_twin_read_scope(ngx_http_request_t *r,
    ngx_http_iothub_twin_ctx_t *ctx, ngx_str_t *twin)
{
    u_char                         *p;
    size_t                          len;
    ngx_uint_t                      whole;
    ngx_http_iothub_twin_tops_t     tops;
    ngx_http_iothub_twin_filter_t   f;

    twin->data = ctx->resp;
    twin->len = ctx->resp_len;

    ngx_memzero(&f, sizeof(ngx_http_iothub_twin_filter_t));
    f.top = ngx_http_iothub_twin_top;
    f.top_data = &tops;
    f.out = ctx->resp;

    tops.n = 0;
    tops.more = 0;

    /*
     * A caller that reads the whole twin (or a gateway without identity):
     * the same strict pass keeps every member, checks the twin as for a
     * scoped caller, and finds the members the etag scan reads, which is
     * cheaper than the scan's own walk over the whole twin.
     */

    whole = (ctx->policy == NULL
             || ngx_http_iothub_twin_policy_read_all(ctx->policy));

    if (whole) {
        f.read = ngx_http_iothub_twin_read_whole;

    } else {
        f.read = ngx_http_iothub_twin_policy_read;
        f.data = ctx->policy;
        f.report = ctx->policy->report;
    }

    if (ngx_http_iothub_twin_filter(&f, ctx->resp, ctx->resp_len) != 0) {
        return NGX_DECLINED;
    }

    if (!whole) {
        p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ctx->withheld.data = p;
        ctx->withheld.len = ngx_sprintf(p, "%ui", (ngx_uint_t) f.withheld)
                            - p;

        len = ngx_strlen(f.first);

        if (len) {
            ctx->withheld_paths.data = ngx_pnalloc(r->pool, len);
            if (ctx->withheld_paths.data == NULL) {
                return NGX_ERROR;
            }

            ngx_memcpy(ctx->withheld_paths.data, f.first, len);
            ctx->withheld_paths.len = len;
        }
    }

    if (f.report) {
        if (f.withheld) {
            ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                          "iothub_twin: report mode, would withhold %ui "
                          "nodes of the twin from caller \"%V\": %s",
                          (ngx_uint_t) f.withheld, &ctx->caller_name,
                          f.first);
        }

        return NGX_OK;
    }

    /* kept whole or cut down, the twin is what the filter wrote */

    ctx->resp_len = f.out_len;

    ngx_http_clear_content_length(r);
    r->headers_out.content_length_n = f.out_len;

    twin->len = f.out_len;

    return ngx_http_iothub_twin_tops(r, &tops, twin);
}


/* the twin as a whole is asked for its members, each kept whole */

static int
ngx_http_iothub_twin_read_whole(void *data, const unsigned char *path,
    size_t len)
{
    return len ? NGX_HTTP_IOTHUB_TWIN_READ_ALL : NGX_HTTP_IOTHUB_TWIN_READ_SOME;
}


/*
 * The filter's top hook: the members the etag scan reads.  Keys are
 * compared as they are, as the scan compares them.
 */

static void
ngx_http_iothub_twin_top(void *data, const unsigned char *member,
    size_t len)
{
    ngx_http_iothub_twin_tops_t  *tops = data;

    if (!(len > 6 && ngx_memcmp(member, "\"etag\"", 6) == 0)
        && !(len > 9 && ngx_memcmp(member, "\"version\"", 9) == 0))
    {
        return;
    }

    if (tops->n == NGX_HTTP_IOTHUB_TWIN_RESPONSE_TOPS) {
        tops->more = 1;
        return;
    }

    tops->member[tops->n].data = (u_char *) member;
    tops->member[tops->n].len = len;
    tops->n++;
}


/*
 * Those members, in their order, as an object of their own: the etag scan
 * finds in it what it would find in the whole twin (it reads nothing else
 * of it, and the filter has checked the rest).
 */

static ngx_int_t
ngx_http_iothub_twin_tops(ngx_http_request_t *r,
    ngx_http_iothub_twin_tops_t *tops, ngx_str_t *twin)
{
    u_char      *p;
    size_t       len;
    ngx_uint_t   i;

    if (tops->more) {
        return NGX_OK;
    }

    len = 2 + tops->n;

    for (i = 0; i < tops->n; i++) {
        len += tops->member[i].len;
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    twin->data = p;

    *p++ = '{';

    for (i = 0; i < tops->n; i++) {
        if (i) {
            *p++ = ',';
        }

        p = ngx_cpymem(p, tops->member[i].data, tops->member[i].len);
    }

    *p++ = '}';

    twin->len = p - twin->data;

    return NGX_OK;
}


/*
 * The hub said 200 but its answer cannot be given to the caller: cut
 * short, not a twin, or too large.  Nothing has been sent yet, so the
 * caller gets a hub-shaped 502 that says the write may have been applied.
 */

static ngx_int_t
ngx_http_iothub_twin_bad_answer(ngx_http_request_t *r,
    ngx_http_iothub_twin_ctx_t *ctx, const char *why)
{
    ngx_buf_t    *b;
    ngx_str_t     code, text;
    ngx_chain_t   out;

    static u_char  applied[] = "the hub's answer %s; the update may have "
                               "been applied: read the twin before you "
                               "retry";
    static u_char  read[] = "the hub's answer %s";

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "iothub_twin: the hub's 200 answer %s; the caller gets 502",
                  why);

    ctx->buffering = 0;
    ctx->replaced = 1;
    ngx_str_set(&code, "BadGateway");
    ctx->error = code;

    text.data = ngx_pnalloc(r->pool, sizeof(applied) + 64);
    if (text.data == NULL) {
        return NGX_ERROR;
    }

    text.len = ngx_sprintf(text.data,
                           ctx->operation == NGX_HTTP_IOTHUB_TWIN_OP_READ
                           ? (char *) read : (char *) applied, why)
               - text.data;

    r->keepalive = 0;

    ngx_http_clean_header(r);

    b = ngx_http_iothub_twin_error_body(r, NGX_HTTP_BAD_GATEWAY, &code,
                                        &text);
    if (b == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_next_header_filter(r) == NGX_ERROR) {
        return NGX_ERROR;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_next_body_filter(r, &out);
}
