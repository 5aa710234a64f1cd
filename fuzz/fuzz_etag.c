
/*
 * libFuzzer target for etags: the caller's If-Match and the etag and
 * version the gateway reads from the hub's answer.
 *
 * Every input goes to ngx_http_iothub_twin_if_match() as a header value
 * and to ngx_http_iothub_twin_twin_info() as the hub's body, each in a
 * buffer of exactly its size (the output buffer too), and the run aborts
 * when:
 *
 *   - If-Match: the kind is not the one a reference classification gives
 *     (SP and HTAB trimmed; "*"; W/"etagc+"; "*" quoted; "etagc+" quoted;
 *     a bare etagc+ not starting with W/; etagc is 0x21-0x7e without '"'
 *     and ','; at most 256 bytes); the output is not "*", "W/" and a
 *     quoted etag, or a quoted etag; it holds a byte outside 0x21-0x7e;
 *     it is not the trimmed input (quoted, for a bare etag); parsing the
 *     output again does not give the output back, with the same kind (a
 *     bare etag's output is quoted), where the output is within the 256
 *     bytes a caller may send (a bare etag of 255 or 256 bytes is
 *     forwarded quoted, 257 or 258 bytes, by design);
 *
 *   - the twin scanner: an etag it reports lies outside the input or
 *     holds a byte that cannot stand between the quotes of an ETag header
 *     and of an If-Match the gateway accepts (0x21-0x7e but '"', ',' and
 *     '\', a JSON escape), or a version is negative; and, on
 *     inputs jansson loads (JSON_REJECT_DUPLICATES, an object or an
 *     array), the scanner does not walk an object or walks an array, the
 *     etag it reports is not jansson's "etag" string, the version it
 *     reports is not jansson's "version" integer, or it misses either
 *     where jansson has an etag of such bytes or an integer version from
 *     0 to 10^18 - 1 (unless the input holds a '\', which can spell a key
 *     or an etag in escapes the scanner does not decode, or the version is
 *     0 and could be written -0).  Inputs that
 *     jansson loads and that hold a NUL are skipped: jansson 2.14 drops a
 *     NUL right after a number or a literal.
 *
 * clang -g -O1 -fsanitize=fuzzer,address,undefined \
 *     -Ingx_iothub_twin_module fuzz/fuzz_etag.c \
 *     ngx_iothub_twin_module/ngx_http_iothub_twin_etag.c -ljansson \
 *     -o build/fuzz/fuzz_etag
 */


#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ngx_http_iothub_twin_etag.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_etag_if_match(const unsigned char *value, size_t len);
static ngx_http_iothub_twin_if_match_e fuzz_etag_ref_if_match(
    const unsigned char *value, size_t len);
static void fuzz_etag_twin(const unsigned char *json, size_t len);
static int fuzz_etag_etagc(const unsigned char *p, size_t len);
static void fuzz_etag_fail(const char *what, const unsigned char *in,
    size_t len);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_etag_if_match(data, size);
    fuzz_etag_twin(data, size);

    return 0;
}


static void
fuzz_etag_if_match(const unsigned char *value, size_t len)
{
    size_t                            i, out_len, out2_len, tlen;
    unsigned char                    *out, *out2;
    const unsigned char              *t;
    ngx_http_iothub_twin_if_match_e   kind, kind2, ref;

    out = malloc(NGX_HTTP_IOTHUB_TWIN_IF_MATCH_MAX + 2);
    out2 = malloc(NGX_HTTP_IOTHUB_TWIN_IF_MATCH_MAX + 2);

    if (out == NULL || out2 == NULL) {
        goto done;
    }

    out_len = (size_t) -1;
    kind = ngx_http_iothub_twin_if_match(value, len, out, &out_len);
    ref = fuzz_etag_ref_if_match(value, len);

    if (kind != ref) {
        fprintf(stderr, "kind %s, reference %s\n",
                ngx_http_iothub_twin_if_match_name(kind),
                ngx_http_iothub_twin_if_match_name(ref));
        fuzz_etag_fail("If-Match kind differs from the reference", value,
                       len);
    }

    if (kind == NGX_HTTP_IOTHUB_TWIN_IF_MATCH_MALFORMED) {
        goto done;
    }

    if (out_len == 0 || out_len > NGX_HTTP_IOTHUB_TWIN_IF_MATCH_MAX + 2) {
        fuzz_etag_fail("If-Match output length", value, len);
    }

    for (i = 0; i < out_len; i++) {
        if (out[i] < 0x21 || out[i] > 0x7e) {
            fuzz_etag_fail("If-Match output not printable", out, out_len);
        }
    }

    /* the shape of the output */

    if (!((kind == NGX_HTTP_IOTHUB_TWIN_IF_MATCH_ANY
           && out_len == 1 && out[0] == '*')
          || (kind == NGX_HTTP_IOTHUB_TWIN_IF_MATCH_ANY_QUOTED
              && out_len == 3 && memcmp(out, "\"*\"", 3) == 0)
          || ((kind == NGX_HTTP_IOTHUB_TWIN_IF_MATCH_QUOTED
               || kind == NGX_HTTP_IOTHUB_TWIN_IF_MATCH_BARE)
              && out_len >= 3 && out[0] == '"' && out[out_len - 1] == '"'
              && fuzz_etag_etagc(out + 1, out_len - 2))
          || (kind == NGX_HTTP_IOTHUB_TWIN_IF_MATCH_WEAK
              && out_len >= 5 && memcmp(out, "W/\"", 3) == 0
              && out[out_len - 1] == '"'
              && fuzz_etag_etagc(out + 3, out_len - 4))))
    {
        fuzz_etag_fail("If-Match output malformed", out, out_len);
    }

    /* the trimmed input, quoted when bare */

    t = value;
    tlen = len;

    while (tlen && (t[0] == ' ' || t[0] == '\t')) {
        t++;
        tlen--;
    }

    while (tlen && (t[tlen - 1] == ' ' || t[tlen - 1] == '\t')) {
        tlen--;
    }

    if (kind == NGX_HTTP_IOTHUB_TWIN_IF_MATCH_BARE
        ? (out_len != tlen + 2 || memcmp(out + 1, t, tlen) != 0)
        : (out_len != tlen || memcmp(out, t, tlen) != 0))
    {
        fuzz_etag_fail("If-Match output is not the input", out, out_len);
    }

    /*
     * Idempotent; except that a bare etag of 255 or 256 bytes is forwarded
     * quoted, beyond the limit put on what callers send (as designed: the
     * unit tests check it).
     */

    kind2 = ngx_http_iothub_twin_if_match(out, out_len, out2, &out2_len);

    if (out_len > NGX_HTTP_IOTHUB_TWIN_IF_MATCH_MAX) {
        if (kind != NGX_HTTP_IOTHUB_TWIN_IF_MATCH_BARE
            || kind2 != NGX_HTTP_IOTHUB_TWIN_IF_MATCH_MALFORMED)
        {
            fuzz_etag_fail("If-Match output over the limit", out, out_len);
        }

    } else if (kind2 != (kind == NGX_HTTP_IOTHUB_TWIN_IF_MATCH_BARE
                         ? NGX_HTTP_IOTHUB_TWIN_IF_MATCH_QUOTED : kind)
               || out2_len != out_len || memcmp(out2, out, out_len) != 0)
    {
        fuzz_etag_fail("If-Match output does not parse to itself", out,
                       out_len);
    }

done:

    free(out);
    free(out2);
}


static ngx_http_iothub_twin_if_match_e
fuzz_etag_ref_if_match(const unsigned char *value, size_t len)
{
    const unsigned char  *t;

    t = value;

    while (len && (t[0] == ' ' || t[0] == '\t')) {
        t++;
        len--;
    }

    while (len && (t[len - 1] == ' ' || t[len - 1] == '\t')) {
        len--;
    }

    if (len == 0 || len > NGX_HTTP_IOTHUB_TWIN_IF_MATCH_MAX) {
        return NGX_HTTP_IOTHUB_TWIN_IF_MATCH_MALFORMED;
    }

    if (len == 1 && t[0] == '*') {
        return NGX_HTTP_IOTHUB_TWIN_IF_MATCH_ANY;
    }

    if (len == 3 && memcmp(t, "\"*\"", 3) == 0) {
        return NGX_HTTP_IOTHUB_TWIN_IF_MATCH_ANY_QUOTED;
    }

    if (len >= 5 && memcmp(t, "W/\"", 3) == 0 && t[len - 1] == '"'
        && fuzz_etag_etagc(t + 3, len - 4))
    {
        return NGX_HTTP_IOTHUB_TWIN_IF_MATCH_WEAK;
    }

    if (len >= 3 && t[0] == '"' && t[len - 1] == '"'
        && fuzz_etag_etagc(t + 1, len - 2))
    {
        return NGX_HTTP_IOTHUB_TWIN_IF_MATCH_QUOTED;
    }

    if (fuzz_etag_etagc(t, len) && !(len >= 2 && t[0] == 'W' && t[1] == '/'))
    {
        return NGX_HTTP_IOTHUB_TWIN_IF_MATCH_BARE;
    }

    return NGX_HTTP_IOTHUB_TWIN_IF_MATCH_MALFORMED;
}


static void
fuzz_etag_twin(const unsigned char *json, size_t len)
{
    int                                rc, escapes;
    size_t                             i;
    json_t                            *root, *etag, *version;
    json_int_t                         v;
    json_error_t                       err;
    const char                        *s;
    ngx_http_iothub_twin_twin_info_t   info;

    rc = ngx_http_iothub_twin_twin_info(json, len, &info);

    if (info.etag != NULL) {
        if (info.etag < json || info.etag_len > len
            || info.etag + info.etag_len > json + len)
        {
            fuzz_etag_fail("etag outside the input", json, len);
        }

        for (i = 0; i < info.etag_len; i++) {
            if (info.etag[i] < 0x21 || info.etag[i] > 0x7e
                || info.etag[i] == '"' || info.etag[i] == ','
                || info.etag[i] == '\\')
            {
                fuzz_etag_fail("etag cannot go in an ETag header", info.etag,
                               info.etag_len);
            }
        }
    }

    if (info.has_version && info.version < 0) {
        fuzz_etag_fail("negative version", json, len);
    }

    /* against jansson */

    root = json_loadb((const char *) json, len, JSON_REJECT_DUPLICATES, &err);
    if (root == NULL) {
        return;
    }

    if (memchr(json, '\0', len) != NULL) {
        json_decref(root);
        return;
    }

    if (json_is_array(root)) {
        if (rc != -1 || info.etag != NULL || info.has_version) {
            fuzz_etag_fail("walked an array as a twin", json, len);
        }

        json_decref(root);
        return;
    }

    if (rc != 0) {
        fuzz_etag_fail("did not walk a JSON object", json, len);
    }

    escapes = (memchr(json, '\\', len) != NULL);

    etag = json_object_get(root, "etag");
    s = json_is_string(etag) ? json_string_value(etag) : NULL;

    if (info.etag != NULL) {
        if (s == NULL || json_string_length(etag) != info.etag_len
            || memcmp(s, info.etag, info.etag_len) != 0)
        {
            fuzz_etag_fail("etag is not jansson's", info.etag,
                           info.etag_len);
        }

    } else if (s != NULL && !escapes
               && fuzz_etag_etagc((const unsigned char *) s,
                                  json_string_length(etag)))
    {
        fuzz_etag_fail("missed jansson's etag", json, len);
    }

    version = json_object_get(root, "version");
    v = json_is_integer(version) ? json_integer_value(version) : -1;

    if (info.has_version) {
        if (v < 0 || v != info.version) {
            fprintf(stderr, "version %lld, jansson %lld\n",
                    (long long) info.version, (long long) v);
            fuzz_etag_fail("version is not jansson's", json, len);
        }

    } else if (v >= 0 && v < 1000000000000000000LL && !escapes
               && !(v == 0 && memchr(json, '-', len) != NULL))
    {
        fuzz_etag_fail("missed jansson's version", json, len);
    }

    json_decref(root);
}


/* RFC 7232 etagc without obs-text, and without ',' */

static int
fuzz_etag_etagc(const unsigned char *p, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (p[i] < 0x21 || p[i] > 0x7e || p[i] == '"' || p[i] == ',') {
            return 0;
        }
    }

    return len > 0;
}


static void
fuzz_etag_fail(const char *what, const unsigned char *in, size_t len)
{
    size_t  i;

    fprintf(stderr, "%s: \"", what);

    for (i = 0; i < len && i < 600; i++) {
        if (in[i] >= 0x20 && in[i] < 0x7f && in[i] != '"' && in[i] != '\\') {
            fputc(in[i], stderr);

        } else {
            fprintf(stderr, "\\x%02x", in[i]);
        }
    }

    fprintf(stderr, "\"\n");
    abort();
}
