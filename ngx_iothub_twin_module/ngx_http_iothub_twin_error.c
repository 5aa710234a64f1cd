
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
static ngx_int_t ngx_http_iothub_twin_send_error(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *code, ngx_str_t *text);


static ngx_str_t  ngx_http_iothub_twin_json_type =
    ngx_string("application/json; charset=utf-8");


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

    rc = ngx_http_iothub_twin_send_error(r, status, &name, &text);

    ngx_http_finalize_request(r, rc);

    return NGX_DONE;
}


/*
 * The content handler of iothub_twin_error: the hub-shaped answer for
 * what nginx itself refuses (error_page 400, 413, 429, 502 ...).
 */

ngx_int_t
ngx_http_iothub_twin_error_handler(ngx_http_request_t *r)
{
    ngx_http_iothub_twin_loc_conf_t  *itlcf;
    ngx_table_elt_t                  *h;

    itlcf = ngx_http_get_module_loc_conf(r, ngx_http_iothub_twin_module);

    /* Retry-After, so that SDK clients back off as they do with the hub */

    if (itlcf->error_retry_after.len) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Retry-After");
        h->value = itlcf->error_retry_after;
    }

    return ngx_http_iothub_twin_send_error(r, itlcf->error_status,
                                           &itlcf->error_code,
                                           &itlcf->error_text);
}


static ngx_int_t
ngx_http_iothub_twin_send_error(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *code, ngx_str_t *text)
{
    u_char                            *p;
    size_t                             len;
    ngx_tm_t                           tm;
    ngx_buf_t                         *b;
    ngx_int_t                          rc;
    ngx_chain_t                        out;
    ngx_table_elt_t                   *h;
    ngx_http_variable_value_t         *id;
    ngx_http_iothub_twin_main_conf_t  *imcf;

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }

    imcf = ngx_http_get_module_main_conf(r, ngx_http_iothub_twin_module);

    id = ngx_http_get_indexed_variable(r, imcf->request_id_index);
    if (id == NULL || id->not_found) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_gmtime(ngx_time(), &tm);

    len = sizeof("{\"Message\":\"ErrorCode:;\",\"ExceptionMessage\":"
                 "\"Tracking ID:-G:0-TimeStamp:00/00/0000 00:00:00\"}") - 1
          + code->len + 6 * text->len + id->len;

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
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
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "iothub-errorcode");
    h->value = *code;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "x-ms-request-id");
    h->value.data = id->data;
    h->value.len = id->len;

    r->headers_out.status = status;
    r->headers_out.content_type = ngx_http_iothub_twin_json_type;
    r->headers_out.content_type_len = ngx_http_iothub_twin_json_type.len;
    r->headers_out.content_length_n = b->last - b->pos;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}
