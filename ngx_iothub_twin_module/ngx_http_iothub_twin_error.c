
/*
 * Copyright (C) ngx_iothub_twin developers
 *
 * Errors made by the gateway, in the hub's own shape, so that the official
 * SDKs report them as they report the hub's:
 *
 *   iothub-errorcode: <Name>
 *   {"Message":"ErrorCode:<Name>;<text>",
 *    "ExceptionMessage":"Tracking ID:<id>-G:0-TimeStamp:<MM/dd/yyyy HH:mm:ss>"}
 */


#include "ngx_http_iothub_twin_module.h"


#define NGX_HTTP_IOTHUB_TWIN_TEXT_MAX  512


static u_char *ngx_http_iothub_twin_json_escape(u_char *dst, u_char *src,
    size_t len);
static u_char *ngx_http_iothub_twin_no_semicolons(u_char *buf, u_char *last,
    size_t size);
static void ngx_http_iothub_twin_refused_body(ngx_http_request_t *r,
    ngx_uint_t status);
static ngx_int_t ngx_http_iothub_twin_send_error(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *code, ngx_str_t *text);
static ngx_http_iothub_twin_error_t *ngx_http_iothub_twin_error_auto(
    ngx_http_request_t *r, ngx_uint_t status);


static ngx_str_t  ngx_http_iothub_twin_json_type =
    ngx_string("application/json; charset=utf-8");


/*
 * "iothub_twin_error auto": what the hub would say for each status nginx
 * itself can answer in a gateway server; a status nginx does not send in
 * the hub's vocabulary (494 and the other 49x) becomes the hub's 400.
 */

static ngx_http_iothub_twin_error_t  ngx_http_iothub_twin_errors[] = {
    { 400, 400, ngx_string("ArgumentInvalid"),
      ngx_string("the request is malformed") },
    { 401, 401, ngx_string("IotHubUnauthorizedAccess"),
      ngx_string("the caller could not be identified") },
    { 403, 403, ngx_string("PolicyDenied"),
      ngx_string("the request is not allowed") },
    { 404, 404, ngx_string("NotFound"),
      ngx_string("the gateway serves only /twins/{deviceId} and "
                 "/twins/{deviceId}/modules/{moduleId}") },
    { 405, 405, ngx_string("MethodNotAllowed"),
      ngx_string("the method is not allowed") },
    { 408, 408, ngx_string("RequestTimeout"),
      ngx_string("the request was not received in time") },
    { 411, 411, ngx_string("ArgumentInvalid"),
      ngx_string("the request needs a length") },
    { 413, 413, ngx_string("MessageTooLarge"),
      ngx_string("the body is larger than this gateway accepts") },
    { 414, 414, ngx_string("ArgumentInvalid"),
      ngx_string("the request target is too long") },
    { 415, 415, ngx_string("UnsupportedMediaType"),
      ngx_string("the body must be application/json in UTF-8") },
    { 429, 429, ngx_string("ThrottlingException"),
      ngx_string("too many requests; retry after the time Retry-After "
                 "gives") },
    { 494, 400, ngx_string("ArgumentInvalid"),
      ngx_string("the request headers are too large") },
    { 495, 400, ngx_string("ArgumentInvalid"),
      ngx_string("the client certificate could not be verified") },
    { 496, 400, ngx_string("ArgumentInvalid"),
      ngx_string("a client certificate is required") },
    { 497, 400, ngx_string("ArgumentInvalid"),
      ngx_string("plain HTTP was sent to an HTTPS port") },
    { 500, 500, ngx_string("ServerError"),
      ngx_string("the gateway failed") },
    { 501, 501, ngx_string("ArgumentInvalid"),
      ngx_string("the request uses what this gateway does not "
                 "implement") },
    { 502, 502, ngx_string("ServiceUnavailable"),
      ngx_string("the hub could not be reached") },
    { 503, 503, ngx_string("ServiceUnavailable"),
      ngx_string("the service is unavailable") },
    { 504, 504, ngx_string("GatewayTimeout"),
      ngx_string("the hub did not answer in time") },
    { 505, 505, ngx_string("ArgumentInvalid"),
      ngx_string("the HTTP version is not supported") },
    { 0, 0, ngx_null_string, ngx_null_string }
};


static ngx_http_iothub_twin_error_t  ngx_http_iothub_twin_error_4xx =
    { 400, 400, ngx_string("ArgumentInvalid"),
      ngx_string("the request was refused") };

static ngx_str_t  ngx_http_iothub_twin_retry_after = ngx_string("10");

static ngx_http_iothub_twin_error_t  ngx_http_iothub_twin_error_5xx =
    { 500, 500, ngx_string("ServerError"),
      ngx_string("the gateway failed") };


/* escape what JSON strings cannot hold; text is printable ASCII mostly */

static u_char *
ngx_http_iothub_twin_json_escape(u_char *dst, u_char *src, size_t len)
{
    u_char  c;

    static u_char  hex[] = "0123456789abcdef";

    while (len--) {
        c = *src++;

        if (c == '"' || c == '\\') {
            *dst++ = '\\';
            *dst++ = c;

        } else if (c < 0x20 || c >= 0x7f) {
            *dst++ = '\\';
            *dst++ = 'u';
            *dst++ = '0';
            *dst++ = '0';
            *dst++ = hex[c >> 4];
            *dst++ = hex[c & 0xf];

        } else {
            *dst++ = c;
        }
    }

    return dst;
}


/*
 * The SDKs read the text between the first and the second ';' of Message:
 * a ';' in an ID or a key would cut the text short, so it is written as
 * \x3b.
 */

static u_char *
ngx_http_iothub_twin_no_semicolons(u_char *buf, u_char *last, size_t size)
{
    u_char  *p;

    for (p = buf; p < last; p++) {
        if (*p != ';') {
            continue;
        }

        if ((size_t) (last - buf) + 3 > size) {
            *p = ',';
            continue;
        }

        ngx_memmove(p + 4, p + 1, last - p - 1);
        ngx_memcpy(p, "\\x3b", 4);
        last += 3;
        p += 3;
    }

    return last;
}


/*
 * Sends the error and finalizes the request; the phase handler returns
 * NGX_DONE after it.  The text goes to the error log at info level: a
 * refusal is the client's fault, not the operator's.
 */

ngx_int_t
ngx_http_iothub_twin_refuse(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *fmt, ...)
{
    u_char                      *p;
    va_list                      args;
    ngx_int_t                    rc;
    ngx_str_t                    name, text;
    ngx_http_iothub_twin_ctx_t  *ctx;
    u_char                       buf[NGX_HTTP_IOTHUB_TWIN_TEXT_MAX];

    va_start(args, fmt);
    p = ngx_vslprintf(buf, buf + sizeof(buf), fmt, args);
    va_end(args);

    p = ngx_http_iothub_twin_no_semicolons(buf, p, sizeof(buf));

    name.data = (u_char *) code;
    name.len = ngx_strlen(code);
    text.data = buf;
    text.len = p - buf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_iothub_twin_module);
    if (ctx) {
        ctx->error = name;

        /* a policy or identity refusal has said so already */

        if (status != NGX_HTTP_FORBIDDEN && status != NGX_HTTP_UNAUTHORIZED) {
            ngx_str_set(&ctx->decision, "refused");
        }
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "iothub_twin: %ui %V: %V", status, &name, &text);

    ngx_http_iothub_twin_refused_body(r, status);

    rc = ngx_http_iothub_twin_send_error(r, status, &name, &text);

    ngx_http_finalize_request(r, rc);

    return NGX_DONE;
}


/*
 * No byte of a refused request's body may ever be read as a request, as
 * nginx guarantees for its own special responses: a body not yet read is
 * discarded the way nginx discards one, a body read in part (a read that
 * failed, a chunk size over the limit) closes the connection, and so do
 * the statuses after which nginx itself keeps no connection.
 */

static void
ngx_http_iothub_twin_refused_body(ngx_http_request_t *r, ngx_uint_t status)
{
    switch (status) {
    case NGX_HTTP_BAD_REQUEST:
    case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
    case NGX_HTTP_REQUEST_URI_TOO_LARGE:
    case NGX_HTTP_INTERNAL_SERVER_ERROR:
    case NGX_HTTP_NOT_IMPLEMENTED:
        r->keepalive = 0;
        break;
    }

    if (r->request_body == NULL && !r->discard_body) {

        /* no "100 Continue" for a body that is refused anyway */

        r->expect_tested = 1;

        if (ngx_http_discard_request_body(r) != NGX_OK) {
            r->keepalive = 0;
        }

        return;
    }

    if (r->reading_body
        || (r->request_body && r->request_body->rest != 0))
    {
        r->keepalive = 0;
        r->lingering_close = 1;
    }
}


/*
 * The content handler of iothub_twin_error: the hub-shaped answer for
 * what nginx itself refuses (error_page 400, 413, 429, 502 ...).  After
 * error_page the status is the one being answered: "auto" names it as
 * the hub would.  The request's context, kept across the redirect, gets
 * the error for the audit record and the metrics.
 */

ngx_int_t
ngx_http_iothub_twin_error_handler(ngx_http_request_t *r)
{
    ngx_str_t                        *code, *text, *retry_after;
    ngx_uint_t                        status;
    ngx_table_elt_t                  *h;
    ngx_http_iothub_twin_ctx_t       *ctx;
    ngx_http_iothub_twin_error_t     *e;
    ngx_http_iothub_twin_loc_conf_t  *itlcf;

    itlcf = ngx_http_get_module_loc_conf(r, ngx_http_iothub_twin_module);

    status = itlcf->error_status;
    code = &itlcf->error_code;
    text = &itlcf->error_text;
    retry_after = &itlcf->error_retry_after;

    if (status == NGX_HTTP_IOTHUB_TWIN_ERROR_AUTO) {
        status = r->err_status ? r->err_status : r->headers_out.status;

        e = ngx_http_iothub_twin_error_auto(r, status);

        status = e->send;
        code = &e->code;
        text = &e->text;

        /* the hub's own 429 text asks for 10 seconds */

        if (status == NGX_HTTP_TOO_MANY_REQUESTS && retry_after->len == 0) {
            retry_after = &ngx_http_iothub_twin_retry_after;
        }

        if (r->err_status) {
            r->err_status = status;
        }
    }

    ctx = ngx_http_iothub_twin_get_ctx(r);

    /* refused before any gateway location: the error is still counted */

    if (ctx == NULL && r == r->main) {
        ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_iothub_twin_ctx_t));
        if (ctx == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_http_set_ctx(r, ctx, ngx_http_iothub_twin_module);
    }

    if (ctx) {
        ctx->error = *code;

        if (status == NGX_HTTP_TOO_MANY_REQUESTS && !ctx->forwarded) {
            ngx_str_set(&ctx->decision, "throttled");

        } else if (ctx->decision.len == 0) {
            ngx_str_set(&ctx->decision, "refused");
        }
    }

    /* Retry-After, so that SDK clients back off as they do with the hub */

    if (retry_after->len) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Retry-After");
        h->value = *retry_after;
    }

    ngx_http_iothub_twin_refused_body(r, status);

    return ngx_http_iothub_twin_send_error(r, status, code, text);
}


static ngx_http_iothub_twin_error_t *
ngx_http_iothub_twin_error_auto(ngx_http_request_t *r, ngx_uint_t status)
{
    ngx_http_iothub_twin_error_t  *e;

    for (e = ngx_http_iothub_twin_errors; e->status; e++) {
        if (e->status == status) {
            return e;
        }
    }

    return status >= 500 ? &ngx_http_iothub_twin_error_5xx
                         : &ngx_http_iothub_twin_error_4xx;
}


static ngx_int_t
ngx_http_iothub_twin_send_error(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *code, ngx_str_t *text)
{
    ngx_buf_t  *b;

    b = ngx_http_iothub_twin_error_body(r, status, code, text);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_iothub_twin_send(r, b);
}


/* the headers in r->headers_out, then one buffer as the whole body */

ngx_int_t
ngx_http_iothub_twin_send(ngx_http_request_t *r, ngx_buf_t *b)
{
    ngx_int_t    rc;
    ngx_chain_t  out;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/*
 * The error's body, and the headers that go with it in r->headers_out:
 * for the gateway's own refusals and for a hub answer it replaces.
 */

ngx_buf_t *
ngx_http_iothub_twin_error_body(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *code, ngx_str_t *text)
{
    u_char                            *p;
    size_t                             len;
    ngx_tm_t                           tm;
    ngx_buf_t                         *b;
    ngx_table_elt_t                   *h;
    ngx_http_variable_value_t         *id;
    ngx_http_iothub_twin_main_conf_t  *imcf;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_iothub_twin_module);

    id = ngx_http_get_indexed_variable(r, imcf->request_id_index);
    if (id == NULL || id->not_found) {
        return NULL;
    }

    ngx_gmtime(ngx_time(), &tm);

    len = sizeof("{\"Message\":\"ErrorCode:;\",\"ExceptionMessage\":"
                 "\"Tracking ID:-G:0-TimeStamp:00/00/0000 00:00:00\"}") - 1
          + code->len + 6 * text->len + id->len;

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NULL;
    }

    p = ngx_sprintf(b->last, "{\"Message\":\"ErrorCode:%V;", code);
    p = ngx_http_iothub_twin_json_escape(p, text->data, text->len);
    p = ngx_sprintf(p, "\",\"ExceptionMessage\":\"Tracking ID:%*s-G:0-"
                    "TimeStamp:%02d/%02d/%4d %02d:%02d:%02d\"}",
                    (size_t) id->len, id->data,
                    tm.ngx_tm_mon, tm.ngx_tm_mday, tm.ngx_tm_year,
                    tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec);
    b->last = p;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NULL;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "iothub-errorcode");
    h->value = *code;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NULL;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "x-ms-request-id");
    h->value.data = id->data;
    h->value.len = id->len;

    r->headers_out.status = status;
    r->headers_out.content_type = ngx_http_iothub_twin_json_type;
    r->headers_out.content_type_len = ngx_http_iothub_twin_json_type.len;
    r->headers_out.content_length_n = b->last - b->pos;

    return b;
}
