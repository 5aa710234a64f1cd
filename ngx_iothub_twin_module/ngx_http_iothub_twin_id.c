
/*
 * Copyright (C) ngx_iothub_twin developers
 *
 * Twin request targets: the path split into IDs, each decoded exactly once
 * and checked against the hub's alphabet, the canonical path re-encoded,
 * and the query a caller may send.
 */


#include <string.h>

#include "ngx_http_iothub_twin_id.h"


static int ngx_http_iothub_twin_hex(unsigned char c);
static ngx_http_iothub_twin_target_rc_e ngx_http_iothub_twin_target_id(
    ngx_http_iothub_twin_target_t *t, const char *what,
    const unsigned char *src, size_t len, unsigned char *dst,
    size_t *dst_len);


/*
 * The hub's ID alphabet: ASCII alphanumerics and - : . + % _ # * ? ! ( ) , =
 * @ ; $ '
 */

static const unsigned char  ngx_http_iothub_twin_id_chars[256] = {
    /* 0x20 - 0x2f:   ! " # $ % & ' ( ) * + , - . / */
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['\''] = 1, ['('] = 1,
    [')'] = 1, ['*'] = 1, ['+'] = 1, [','] = 1, ['-'] = 1, ['.'] = 1,

    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1,
    ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,

    /* 0x3a - 0x40: : ; < = > ? @ */
    [':'] = 1, [';'] = 1, ['='] = 1, ['?'] = 1, ['@'] = 1,

    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1,
    ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1,
    ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1,
    ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1,

    ['_'] = 1,

    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
    ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1,
    ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
    ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1
};


/* what JavaScript's encodeURIComponent leaves as it is */

static const unsigned char  ngx_http_iothub_twin_uri_plain[256] = {
    ['!'] = 1, ['\''] = 1, ['('] = 1, [')'] = 1, ['*'] = 1, ['-'] = 1,
    ['.'] = 1, ['_'] = 1, ['~'] = 1,

    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1,
    ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,

    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1,
    ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1,
    ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1,
    ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1,

    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
    ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1,
    ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
    ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1
};


int
ngx_http_iothub_twin_id_char(unsigned char c)
{
    return ngx_http_iothub_twin_id_chars[c];
}


static int
ngx_http_iothub_twin_hex(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}


/*
 * Decodes one path segment exactly once and checks the result against the
 * hub's rules.  dst must hold NGX_HTTP_IOTHUB_TWIN_ID_MAX bytes.
 */

ngx_http_iothub_twin_id_rc_e
ngx_http_iothub_twin_id_decode(const unsigned char *src, size_t len,
    unsigned char *dst, size_t *dst_len, unsigned char *bad)
{
    int            hi, lo;
    size_t         i, n;
    unsigned char  c;

    n = 0;

    for (i = 0; i < len; i++) {
        c = src[i];

        if (c == '%') {
            if (len - i < 3) {
                *bad = c;
                return NGX_HTTP_IOTHUB_TWIN_ID_BAD_ESCAPE;
            }

            hi = ngx_http_iothub_twin_hex(src[i + 1]);
            lo = ngx_http_iothub_twin_hex(src[i + 2]);

            if (hi < 0 || lo < 0) {
                *bad = c;
                return NGX_HTTP_IOTHUB_TWIN_ID_BAD_ESCAPE;
            }

            c = (unsigned char) (hi * 16 + lo);
            i += 2;

            if (c == '/') {
                *bad = c;
                return NGX_HTTP_IOTHUB_TWIN_ID_SLASH;
            }
        }

        if (!ngx_http_iothub_twin_id_chars[c]) {
            *bad = c;
            return NGX_HTTP_IOTHUB_TWIN_ID_BAD_CHAR;
        }

        if (n == NGX_HTTP_IOTHUB_TWIN_ID_MAX) {
            return NGX_HTTP_IOTHUB_TWIN_ID_TOO_LONG;
        }

        dst[n++] = c;
    }

    *dst_len = n;

    if (n == 0) {
        return NGX_HTTP_IOTHUB_TWIN_ID_EMPTY;
    }

    if ((n == 1 && dst[0] == '.') || (n == 2 && dst[0] == '.' && dst[1] == '.'))
    {
        return NGX_HTTP_IOTHUB_TWIN_ID_DOT_SEGMENT;
    }

    /*
     * A '%' left after the one decoding is an ID character like any other
     * ("%2541" is the ID "%41"): the hub decodes a segment once too, and
     * the canonical encoding sends it back as "%25".
     */

    return NGX_HTTP_IOTHUB_TWIN_ID_OK;
}


/* percent-encodes as encodeURIComponent does; dst holds 3 * len bytes */

size_t
ngx_http_iothub_twin_id_encode(unsigned char *dst, const unsigned char *src,
    size_t len)
{
    size_t                      i;
    unsigned char              *p;
    static const unsigned char  hex[] = "0123456789ABCDEF";

    p = dst;

    for (i = 0; i < len; i++) {
        if (ngx_http_iothub_twin_uri_plain[src[i]]) {
            *p++ = src[i];
            continue;
        }

        *p++ = '%';
        *p++ = hex[src[i] >> 4];
        *p++ = hex[src[i] & 0xf];
    }

    return p - dst;
}


const char *
ngx_http_iothub_twin_id_strerror(ngx_http_iothub_twin_id_rc_e rc)
{
    switch (rc) {

    case NGX_HTTP_IOTHUB_TWIN_ID_OK:
        return "valid";

    case NGX_HTTP_IOTHUB_TWIN_ID_EMPTY:
        return "is empty";

    case NGX_HTTP_IOTHUB_TWIN_ID_TOO_LONG:
        return "is longer than 128 characters";

    case NGX_HTTP_IOTHUB_TWIN_ID_BAD_ESCAPE:
        return "has a malformed percent-escape";

    case NGX_HTTP_IOTHUB_TWIN_ID_BAD_CHAR:
        return "has a character outside the allowed set";

    case NGX_HTTP_IOTHUB_TWIN_ID_SLASH:
        return "contains '/'";

    case NGX_HTTP_IOTHUB_TWIN_ID_DOT_SEGMENT:
        return "is a dot segment";
    }

    return "is invalid";
}


static ngx_http_iothub_twin_target_rc_e
ngx_http_iothub_twin_target_id(ngx_http_iothub_twin_target_t *t,
    const char *what, const unsigned char *src, size_t len,
    unsigned char *dst, size_t *dst_len)
{
    ngx_http_iothub_twin_id_rc_e  rc;

    rc = ngx_http_iothub_twin_id_decode(src, len, dst, dst_len, &t->bad_byte);

    if (rc != NGX_HTTP_IOTHUB_TWIN_ID_OK) {
        t->bad_what = what;
        t->id_rc = rc;
        return NGX_HTTP_IOTHUB_TWIN_TARGET_BAD_ID;
    }

    dst[*dst_len] = '\0';

    return NGX_HTTP_IOTHUB_TWIN_TARGET_OK;
}


/*
 * Parses the raw (still encoded) request path: "/twins/{id}" or
 * "/twins/{id}/modules/{mid}", and builds the canonical path.  Any other
 * shape is NOT_TWIN (the hub's 404), even when it starts with "/twins/":
 * a '/' is never read as part of an ID.
 */

ngx_http_iothub_twin_target_rc_e
ngx_http_iothub_twin_target_parse(const unsigned char *path, size_t len,
    ngx_http_iothub_twin_target_t *t)
{
    size_t                            dlen, mlen;
    unsigned char                    *p;
    const unsigned char              *dev, *mod, *slash, *end;
    ngx_http_iothub_twin_target_rc_e  rc;

    static const char                 twins[] = "/twins/";
    static const char                 modules[] = "modules/";

    memset(t, 0, sizeof(ngx_http_iothub_twin_target_t));

    /* a fragment is not part of a request target; '#' in an ID is %23 */

    if (memchr(path, '#', len) != NULL) {
        return NGX_HTTP_IOTHUB_TWIN_TARGET_FRAGMENT;
    }

    if (len < sizeof(twins) - 1
        || memcmp(path, twins, sizeof(twins) - 1) != 0)
    {
        return NGX_HTTP_IOTHUB_TWIN_TARGET_NOT_TWIN;
    }

    end = path + len;
    dev = path + sizeof(twins) - 1;
    slash = memchr(dev, '/', end - dev);

    if (slash == NULL) {
        dlen = end - dev;
        mod = NULL;
        mlen = 0;

    } else {
        dlen = slash - dev;
        mod = slash + 1;

        if ((size_t) (end - mod) < sizeof(modules) - 1
            || memcmp(mod, modules, sizeof(modules) - 1) != 0)
        {
            return NGX_HTTP_IOTHUB_TWIN_TARGET_NOT_TWIN;
        }

        mod += sizeof(modules) - 1;

        if (memchr(mod, '/', end - mod) != NULL) {
            return NGX_HTTP_IOTHUB_TWIN_TARGET_NOT_TWIN;
        }

        mlen = end - mod;
    }

    rc = ngx_http_iothub_twin_target_id(t, "device ID", dev, dlen, t->device,
                                        &t->device_len);
    if (rc != NGX_HTTP_IOTHUB_TWIN_TARGET_OK) {
        return rc;
    }

    if (mod) {
        rc = ngx_http_iothub_twin_target_id(t, "module ID", mod, mlen,
                                            t->module, &t->module_len);
        if (rc != NGX_HTTP_IOTHUB_TWIN_TARGET_OK) {
            return rc;
        }

        t->has_module = 1;
    }

    p = t->path;
    p = (unsigned char *) memcpy(p, twins, sizeof(twins) - 1)
        + sizeof(twins) - 1;
    p += ngx_http_iothub_twin_id_encode(p, t->device, t->device_len);

    if (t->has_module) {
        *p++ = '/';
        p = (unsigned char *) memcpy(p, modules, sizeof(modules) - 1)
            + sizeof(modules) - 1;
        p += ngx_http_iothub_twin_id_encode(p, t->module, t->module_len);
    }

    *p = '\0';
    t->path_len = p - t->path;

    return NGX_HTTP_IOTHUB_TWIN_TARGET_OK;
}


/* "YYYY-MM-DD" with an optional "-preview" */

int
ngx_http_iothub_twin_api_version_valid(const unsigned char *v, size_t len)
{
    size_t  i;

    static const char  preview[] = "-preview";

    if (len == 10 + sizeof(preview) - 1
        && memcmp(v + 10, preview, sizeof(preview) - 1) == 0)
    {
        len = 10;
    }

    if (len != 10) {
        return 0;
    }

    for (i = 0; i < 10; i++) {
        if (i == 4 || i == 7) {
            if (v[i] != '-') {
                return 0;
            }

        } else if (v[i] < '0' || v[i] > '9') {
            return 0;
        }
    }

    return 1;
}


/*
 * The only query parameter a caller may send is api-version; the upstream
 * gets the configured one.  Returns NULL or the reason for refusing.
 */

const char *
ngx_http_iothub_twin_query_check(const unsigned char *args, size_t len)
{
    size_t               n;
    unsigned             seen;
    const unsigned char  *p, *end, *amp;

    static const char    name[] = "api-version=";

    if (memchr(args, '#', len) != NULL) {
        return "the request target holds a fragment ('#'): "
               "'#' in an ID is sent as %23";
    }

    p = args;
    end = args + len;
    seen = 0;

    while (p < end) {
        amp = memchr(p, '&', end - p);
        n = (amp ? amp : end) - p;

        if (n < sizeof(name) - 1 || memcmp(p, name, sizeof(name) - 1) != 0) {
            return "the only query parameter accepted is api-version";
        }

        if (seen++) {
            return "api-version is given more than once";
        }

        if (!ngx_http_iothub_twin_api_version_valid(p + sizeof(name) - 1,
                                                    n - (sizeof(name) - 1)))
        {
            return "api-version is not a valid version";
        }

        p += n;

        if (amp) {
            p++;

            if (p == end) {
                return "the query ends with '&'";
            }
        }
    }

    return NULL;
}
