
/*
 * Copyright (C) ngx_iothub_twin developers
 */


#include <string.h>

#include "ngx_http_iothub_twin_etag.h"


static int ngx_http_iothub_twin_etagc(const unsigned char *p, size_t len);
static const unsigned char *ngx_http_iothub_twin_skip_ws(
    const unsigned char *p, const unsigned char *end);
static const unsigned char *ngx_http_iothub_twin_skip_string(
    const unsigned char *p, const unsigned char *end);
static const unsigned char *ngx_http_iothub_twin_skip_value(
    const unsigned char *p, const unsigned char *end);


/* RFC 7232 etagc without obs-text, and no ',' (lists are not supported) */

static int
ngx_http_iothub_twin_etagc(const unsigned char *p, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (p[i] < 0x21 || p[i] > 0x7e || p[i] == '"' || p[i] == ',') {
            return 0;
        }
    }

    return 1;
}


/*
 * Classifies an If-Match value and writes what is to be forwarded to out
 * (NGX_HTTP_IOTHUB_TWIN_IF_MATCH_MAX + 2 bytes).  The hub honours only
 * quoted etags, so a bare etag is quoted here rather than silently
 * becoming no precondition at all.
 */

ngx_http_iothub_twin_if_match_e
ngx_http_iothub_twin_if_match(const unsigned char *value, size_t len,
    unsigned char *out, size_t *out_len)
{
    const unsigned char  *p, *end;

    p = value;
    end = value + len;

    while (p < end && (*p == ' ' || *p == '\t')) {
        p++;
    }

    while (end > p && (end[-1] == ' ' || end[-1] == '\t')) {
        end--;
    }

    len = end - p;

    if (len == 0 || len > NGX_HTTP_IOTHUB_TWIN_IF_MATCH_MAX) {
        return NGX_HTTP_IOTHUB_TWIN_IF_MATCH_MALFORMED;
    }

    if (len == 1 && p[0] == '*') {
        out[0] = '*';
        *out_len = 1;
        return NGX_HTTP_IOTHUB_TWIN_IF_MATCH_ANY;
    }

    if (len > 4 && p[0] == 'W' && p[1] == '/' && p[2] == '"'
        && end[-1] == '"' && ngx_http_iothub_twin_etagc(p + 3, len - 4))
    {
        memcpy(out, p, len);
        *out_len = len;
        return NGX_HTTP_IOTHUB_TWIN_IF_MATCH_WEAK;
    }

    if (p[0] == '"') {
        if (len < 3 || end[-1] != '"'
            || !ngx_http_iothub_twin_etagc(p + 1, len - 2))
        {
            return NGX_HTTP_IOTHUB_TWIN_IF_MATCH_MALFORMED;
        }

        memcpy(out, p, len);
        *out_len = len;

        if (len == 3 && p[1] == '*') {
            return NGX_HTTP_IOTHUB_TWIN_IF_MATCH_ANY_QUOTED;
        }

        return NGX_HTTP_IOTHUB_TWIN_IF_MATCH_QUOTED;
    }

    if (!ngx_http_iothub_twin_etagc(p, len)
        || (len > 1 && p[0] == 'W' && p[1] == '/'))
    {
        return NGX_HTTP_IOTHUB_TWIN_IF_MATCH_MALFORMED;
    }

    out[0] = '"';
    memcpy(out + 1, p, len);
    out[len + 1] = '"';
    *out_len = len + 2;

    return NGX_HTTP_IOTHUB_TWIN_IF_MATCH_BARE;
}


const char *
ngx_http_iothub_twin_if_match_name(ngx_http_iothub_twin_if_match_e kind)
{
    switch (kind) {
    case NGX_HTTP_IOTHUB_TWIN_IF_MATCH_ANY:
        return "any";
    case NGX_HTTP_IOTHUB_TWIN_IF_MATCH_ANY_QUOTED:
        return "any-quoted";
    case NGX_HTTP_IOTHUB_TWIN_IF_MATCH_QUOTED:
        return "quoted";
    case NGX_HTTP_IOTHUB_TWIN_IF_MATCH_WEAK:
        return "weak";
    case NGX_HTTP_IOTHUB_TWIN_IF_MATCH_BARE:
        return "bare-quoted";
    default:
        return "malformed";
    }
}


static const unsigned char *
ngx_http_iothub_twin_skip_ws(const unsigned char *p, const unsigned char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) {
        p++;
    }

    return p;
}


/* p is at the opening quote; returns the byte after the closing one */

static const unsigned char *
ngx_http_iothub_twin_skip_string(const unsigned char *p,
    const unsigned char *end)
{
    for (p++; p < end; p++) {
        if (*p == '\\') {
            p++;
            continue;
        }

        if (*p == '"') {
            return p + 1;
        }
    }

    return NULL;
}


/*
 * Skips one value of a document the hub produced; it does not validate,
 * only keeps track of strings and nesting.
 */

static const unsigned char *
ngx_http_iothub_twin_skip_value(const unsigned char *p,
    const unsigned char *end)
{
    size_t  depth;

    depth = 0;

    while (p < end) {
        switch (*p) {

        case '"':
            p = ngx_http_iothub_twin_skip_string(p, end);
            if (p == NULL) {
                return NULL;
            }

            if (depth == 0) {
                return p;
            }

            continue;

        case '{':
        case '[':
            depth++;
            break;

        case '}':
        case ']':
            if (depth == 0) {
                return p;
            }

            if (--depth == 0) {
                return p + 1;
            }

            break;

        case ',':
            if (depth == 0) {
                return p;
            }

            break;
        }

        p++;
    }

    return depth ? NULL : p;
}


/*
 * Finds the top-level "etag" string and "version" number of a twin the hub
 * returned, without building the document.  Returns 0 when the top-level
 * object was walked, -1 when the bytes are not an object.
 */

int
ngx_http_iothub_twin_twin_info(const unsigned char *json, size_t len,
    ngx_http_iothub_twin_twin_info_t *info)
{
    long long             v;
    const unsigned char  *p, *end, *key, *kend, *val, *next;

    memset(info, 0, sizeof(ngx_http_iothub_twin_twin_info_t));

    p = json;
    end = json + len;

    p = ngx_http_iothub_twin_skip_ws(p, end);

    if (p == end || *p != '{') {
        return -1;
    }

    p++;

    for ( ;; ) {
        p = ngx_http_iothub_twin_skip_ws(p, end);

        if (p == end || *p != '"') {
            return (p < end && *p == '}') ? 0 : -1;
        }

        key = p;
        kend = ngx_http_iothub_twin_skip_string(p, end);
        if (kend == NULL) {
            return -1;
        }

        p = ngx_http_iothub_twin_skip_ws(kend, end);
        if (p == end || *p != ':') {
            return -1;
        }

        val = ngx_http_iothub_twin_skip_ws(p + 1, end);
        next = ngx_http_iothub_twin_skip_value(val, end);
        if (next == NULL) {
            return -1;
        }

        /*
         * The etag goes into a response header as it is: only one that
         * needs no JSON escape and is an If-Match the gateway accepts.
         */

        if (kend - key == 6 && memcmp(key, "\"etag\"", 6) == 0) {

            if (next - val >= 2 && *val == '"'
                && ngx_http_iothub_twin_etag_valid(val + 1, next - val - 2))
            {
                info->etag = val + 1;
                info->etag_len = next - val - 2;

            } else {
                info->etag_invalid = 1;
            }

        } else if (kend - key == 9 && memcmp(key, "\"version\"", 9) == 0) {
            v = 0;

            for (p = val; p < next && *p >= '0' && *p <= '9'; p++) {
                if (v >= 1000000000000000000LL / 10) {
                    break;
                }

                v = v * 10 + (*p - '0');
            }

            /* a whole integer of up to 18 digits: not 1.5, 1e3 or more */

            if (p > val
                && (p == next || *p == ' ' || *p == '\t' || *p == '\r'
                    || *p == '\n'))
            {
                info->version = v;
                info->has_version = 1;
            }
        }

        p = ngx_http_iothub_twin_skip_ws(next, end);

        if (p < end && *p == ',') {
            p++;
            continue;
        }

        return (p < end && *p == '}') ? 0 : -1;
    }
}


int
ngx_http_iothub_twin_etag_valid(const unsigned char *etag, size_t len)
{
    return len > 0 && len <= NGX_HTTP_IOTHUB_TWIN_IF_MATCH_MAX
           && ngx_http_iothub_twin_etagc(etag, len)
           && memchr(etag, '\\', len) == NULL;
}
