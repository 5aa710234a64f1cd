
/*
 * libFuzzer target for what the gateway reads from the request line: the
 * twin path parser, ID decoding and canonical encoding, and the query
 * check.
 *
 * Every input goes, as it is, to ngx_http_iothub_twin_target_parse(),
 * ngx_http_iothub_twin_id_decode(), ngx_http_iothub_twin_id_encode() and
 * ngx_http_iothub_twin_query_check(), and once more to the path parser
 * behind "/twins/" (so that most inputs reach the ID code).  Each call gets
 * a buffer of exactly the input's size, so ASan sees any read past it.
 * The run aborts when:
 *
 *   - a target with a raw '#' is not FRAGMENT; one not of the shape
 *     /twins/{segment}[/modules/{segment}] is not NOT_TWIN, or one of that
 *     shape is;
 *   - a decoded ID is not what one plain percent-decoding of its segment
 *     gives, is empty or longer than 128 bytes, holds a byte outside the
 *     hub's alphabet, holds '/', or is "." or "..";
 *   - a legal ID is refused ('%' left after the one decoding is an ID
 *     character like any other);
 *   - a canonical path holds a byte other than [A-Za-z0-9-_.!~*'()], '/'
 *     between its parts and %XX (upper-case hex), does not decode back to
 *     the IDs, or does not parse again to the same IDs and the same path;
 *   - the encoder's output of any bytes holds anything but those bytes
 *     and %XX, or does not decode back to its input;
 *   - the query check accepts anything but nothing or one
 *     "api-version=YYYY-MM-DD[-preview]", or refuses that.
 *
 * clang -g -O1 -fsanitize=fuzzer,address,undefined \
 *     -Ingx_iothub_twin_module fuzz/fuzz_id.c \
 *     ngx_iothub_twin_module/ngx_http_iothub_twin_id.c \
 *     -o build/fuzz/fuzz_id
 */


#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_iothub_twin_id.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_id_target(const unsigned char *path, size_t len);
static void fuzz_id_check_id(const char *what, const unsigned char *enc,
    size_t enc_len, const unsigned char *id, size_t id_len);
static void fuzz_id_decode(const unsigned char *src, size_t len);
static void fuzz_id_encode(const unsigned char *src, size_t len);
static void fuzz_id_query(const unsigned char *args, size_t len);
static int fuzz_id_legal(const unsigned char *id, size_t len);
static int fuzz_id_unreserved(unsigned char c);
static int fuzz_id_canonical(const unsigned char *p, size_t len);
static int fuzz_id_hex(unsigned char c);
static long fuzz_id_pct_decode(unsigned char *dst, const unsigned char *src,
    size_t len);
static void fuzz_id_fail(const char *what, const unsigned char *in,
    size_t len);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char  *buf;

    fuzz_id_target(data, size);
    fuzz_id_decode(data, size);
    fuzz_id_encode(data, size);
    fuzz_id_query(data, size);

    buf = malloc(sizeof("/twins/") - 1 + size);
    if (buf == NULL) {
        return 0;
    }

    memcpy(buf, "/twins/", sizeof("/twins/") - 1);
    memcpy(buf + sizeof("/twins/") - 1, data, size);

    fuzz_id_target(buf, sizeof("/twins/") - 1 + size);

    free(buf);

    return 0;
}


static void
fuzz_id_target(const unsigned char *path, size_t len)
{
    size_t                             dlen;
    const unsigned char               *dev, *mod, *slash, *end;
    ngx_http_iothub_twin_target_t      t, t2;
    ngx_http_iothub_twin_target_rc_e   rc;

    rc = ngx_http_iothub_twin_target_parse(path, len, &t);

    /* a raw '#' anywhere starts a fragment */

    if (memchr(path, '#', len) != NULL) {
        if (rc != NGX_HTTP_IOTHUB_TWIN_TARGET_FRAGMENT) {
            fuzz_id_fail("a '#', yet not FRAGMENT", path, len);
        }

        return;
    }

    /* the shape: /twins/{segment} or /twins/{segment}/modules/{segment} */

    if (len < 7 || memcmp(path, "/twins/", 7) != 0) {
        if (rc != NGX_HTTP_IOTHUB_TWIN_TARGET_NOT_TWIN) {
            fuzz_id_fail("not under /twins/, yet not NOT_TWIN", path, len);
        }

        return;
    }

    end = path + len;
    slash = memchr(path + 7, '/', len - 7);

    if (slash != NULL
        && (end - (slash + 1) < 8 || memcmp(slash + 1, "modules/", 8) != 0
            || memchr(slash + 9, '/', end - (slash + 9)) != NULL))
    {
        if (rc != NGX_HTTP_IOTHUB_TWIN_TARGET_NOT_TWIN) {
            fuzz_id_fail("not a twin path, yet not NOT_TWIN", path, len);
        }

        return;
    }

    if (rc == NGX_HTTP_IOTHUB_TWIN_TARGET_NOT_TWIN) {
        fuzz_id_fail("a twin path, yet NOT_TWIN", path, len);
    }

    if (rc == NGX_HTTP_IOTHUB_TWIN_TARGET_BAD_ID) {
        if (t.bad_what == NULL || t.id_rc == NGX_HTTP_IOTHUB_TWIN_ID_OK) {
            fuzz_id_fail("BAD_ID without what and why", path, len);
        }

        return;
    }

    if (rc != NGX_HTTP_IOTHUB_TWIN_TARGET_OK) {
        return;
    }

    /* the segments as sent: the IDs must be their one decoding */

    end = path + len;
    dev = path + 7;
    slash = memchr(dev, '/', end - dev);
    dlen = (slash ? slash : end) - dev;

    if ((slash != NULL) != t.has_module) {
        fuzz_id_fail("module found where there is none", path, len);
    }

    fuzz_id_check_id("device", dev, dlen, t.device, t.device_len);

    if (t.has_module) {
        mod = slash + 1;

        if (end - mod < 8 || memcmp(mod, "modules/", 8) != 0) {
            fuzz_id_fail("accepted a path without /modules/", path, len);
        }

        mod += 8;

        fuzz_id_check_id("module", mod, end - mod, t.module, t.module_len);
    }

    /* the canonical path */

    if (t.path_len > NGX_HTTP_IOTHUB_TWIN_PATH_MAX
        || t.path[t.path_len] != '\0'
        || t.path_len < 7 || memcmp(t.path, "/twins/", 7) != 0)
    {
        fuzz_id_fail("canonical path malformed", path, len);
    }

    end = t.path + t.path_len;
    dev = t.path + 7;
    slash = memchr(dev, '/', end - dev);
    dlen = (slash ? slash : end) - dev;

    if (!fuzz_id_canonical(dev, dlen)) {
        fuzz_id_fail("canonical device ID not canonical", t.path, t.path_len);
    }

    fuzz_id_check_id("canonical device", dev, dlen, t.device, t.device_len);

    if (t.has_module) {
        if (slash == NULL || end - slash < 9
            || memcmp(slash, "/modules/", 9) != 0)
        {
            fuzz_id_fail("canonical path lost its module", t.path, t.path_len);
        }

        mod = slash + 9;

        if (!fuzz_id_canonical(mod, end - mod)) {
            fuzz_id_fail("canonical module ID not canonical", t.path,
                         t.path_len);
        }

        fuzz_id_check_id("canonical module", mod, end - mod, t.module,
                         t.module_len);

    } else if (slash != NULL) {
        fuzz_id_fail("canonical path grew a module", t.path, t.path_len);
    }

    /* the canonical path parses to the same IDs and itself */

    if (ngx_http_iothub_twin_target_parse(t.path, t.path_len, &t2)
        != NGX_HTTP_IOTHUB_TWIN_TARGET_OK
        || t2.device_len != t.device_len
        || memcmp(t2.device, t.device, t.device_len) != 0
        || t2.has_module != t.has_module
        || t2.module_len != t.module_len
        || memcmp(t2.module, t.module, t.module_len) != 0
        || t2.path_len != t.path_len
        || memcmp(t2.path, t.path, t.path_len) != 0)
    {
        fuzz_id_fail("canonical path does not parse to itself", t.path,
                     t.path_len);
    }
}


/* id must be the one decoding of enc, and a legal ID */

static void
fuzz_id_check_id(const char *what, const unsigned char *enc, size_t enc_len,
    const unsigned char *id, size_t id_len)
{
    long           n;
    unsigned char  dec[NGX_HTTP_IOTHUB_TWIN_PATH_MAX];

    if (enc_len > sizeof(dec)) {
        fprintf(stderr, "%s: ", what);
        fuzz_id_fail("accepted an over-long segment", enc, enc_len);
    }

    n = fuzz_id_pct_decode(dec, enc, enc_len);

    if (n < 0 || (size_t) n != id_len || memcmp(dec, id, id_len) != 0) {
        fprintf(stderr, "%s: ", what);
        fuzz_id_fail("ID is not the one decoding of its segment", enc,
                     enc_len);
    }

    if (!fuzz_id_legal(id, id_len) || id[id_len] != '\0') {
        fprintf(stderr, "%s: ", what);
        fuzz_id_fail("accepted ID not legal", id, id_len);
    }
}


static void
fuzz_id_decode(const unsigned char *src, size_t len)
{
    long                           n;
    size_t                         dlen, elen;
    unsigned char                  bad;
    unsigned char                 *dec, *ref, *enc;
    ngx_http_iothub_twin_id_rc_e   rc, rc2;

    /* exactly the room the module gives, so ASan sees an overflow */

    dec = malloc(NGX_HTTP_IOTHUB_TWIN_ID_MAX);
    ref = malloc(len + 1);
    enc = malloc(NGX_HTTP_IOTHUB_TWIN_ID_ENC_MAX);

    if (dec == NULL || ref == NULL || enc == NULL) {
        goto done;
    }

    dlen = 0;
    rc = ngx_http_iothub_twin_id_decode(src, len, dec, &dlen, &bad);
    n = fuzz_id_pct_decode(ref, src, len);

    if (rc == NGX_HTTP_IOTHUB_TWIN_ID_OK) {
        if (n < 0 || (size_t) n != dlen || memcmp(ref, dec, dlen) != 0) {
            fuzz_id_fail("decoded ID is not the one decoding", src, len);
        }

        if (!fuzz_id_legal(dec, dlen)) {
            fuzz_id_fail("decoded ID not legal", dec, dlen);
        }

        /* round trip through the canonical form */

        elen = ngx_http_iothub_twin_id_encode(enc, dec, dlen);

        if (elen > NGX_HTTP_IOTHUB_TWIN_ID_ENC_MAX
            || !fuzz_id_canonical(enc, elen))
        {
            fuzz_id_fail("canonical form not canonical", enc, elen);
        }

        dlen = 0;
        rc2 = ngx_http_iothub_twin_id_decode(enc, elen, ref, &dlen, &bad);

        if (rc2 != NGX_HTTP_IOTHUB_TWIN_ID_OK || (long) dlen != n
            || memcmp(ref, dec, dlen) != 0)
        {
            fuzz_id_fail("canonical form does not decode to the ID", enc,
                         elen);
        }

        goto done;
    }

    /* refused: a legal ID must not be ('%' left after decoding is legal) */

    if (n >= 0 && fuzz_id_legal(ref, n)) {
        fuzz_id_fail("legal ID refused", src, len);
    }

done:

    free(dec);
    free(ref);
    free(enc);
}


static void
fuzz_id_encode(const unsigned char *src, size_t len)
{
    long            n;
    size_t          elen;
    unsigned char  *enc, *dec;

    enc = malloc(3 * len + 1);
    dec = malloc(3 * len + 1);

    if (enc == NULL || dec == NULL) {
        goto done;
    }

    elen = ngx_http_iothub_twin_id_encode(enc, src, len);

    if (elen > 3 * len || !fuzz_id_canonical(enc, elen)) {
        fuzz_id_fail("encoded bytes not canonical", enc, elen);
    }

    n = fuzz_id_pct_decode(dec, enc, elen);

    if (n < 0 || (size_t) n != len || memcmp(dec, src, len) != 0) {
        fuzz_id_fail("encoded bytes do not decode back", src, len);
    }

done:

    free(enc);
    free(dec);
}


static void
fuzz_id_query(const unsigned char *args, size_t len)
{
    int          ok;
    size_t       i, vlen;
    const char  *reason;

    static const char  name[] = "api-version=";

    reason = ngx_http_iothub_twin_query_check(args, len);

    ok = 1;

    if (len != 0) {
        vlen = len - (sizeof(name) - 1);

        ok = len >= sizeof(name) - 1
             && memcmp(args, name, sizeof(name) - 1) == 0
             && (vlen == 10
                 || (vlen == 18 && memcmp(args + len - 8, "-preview", 8) == 0));

        for (i = 0; ok && i < 10; i++) {
            if (i == 4 || i == 7) {
                ok = args[sizeof(name) - 1 + i] == '-';

            } else {
                ok = args[sizeof(name) - 1 + i] >= '0'
                     && args[sizeof(name) - 1 + i] <= '9';
            }
        }
    }

    if (ok != (reason == NULL)) {
        fprintf(stderr, "query check: %s\n", reason ? reason : "accepted");
        fuzz_id_fail(ok ? "refused a good query" : "accepted a bad query",
                     args, len);
    }

    if (reason != NULL && reason[0] == '\0') {
        fuzz_id_fail("refused without a reason", args, len);
    }
}


/* 1 to 128 bytes of the hub's alphabet, no dot segment */

static int
fuzz_id_legal(const unsigned char *id, size_t len)
{
    size_t  i;

    if (len == 0 || len > NGX_HTTP_IOTHUB_TWIN_ID_MAX) {
        return 0;
    }

    if ((len == 1 && id[0] == '.')
        || (len == 2 && id[0] == '.' && id[1] == '.'))
    {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (!ngx_http_iothub_twin_id_char(id[i])
            || id[i] == '/'
            || !((id[i] >= 'A' && id[i] <= 'Z')
                 || (id[i] >= 'a' && id[i] <= 'z')
                 || (id[i] >= '0' && id[i] <= '9')
                 || strchr("-:.+%_#*?!(),=@;$'", id[i]) != NULL))
        {
            return 0;
        }
    }

    return 1;
}


/* what encodeURIComponent leaves as it is */

static int
fuzz_id_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
           || (c >= '0' && c <= '9')
           || (c != '\0' && strchr("-_.!~*'()", c) != NULL);
}


/*
 * Only unreserved bytes and %XX with upper-case hex, and no unreserved
 * byte escaped.
 */

static int
fuzz_id_canonical(const unsigned char *p, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (fuzz_id_unreserved(p[i])) {
            continue;
        }

        if (p[i] != '%' || len - i < 3
            || fuzz_id_hex(p[i + 1]) < 0 || fuzz_id_hex(p[i + 2]) < 0
            || (p[i + 1] >= 'a' && p[i + 1] <= 'f')
            || (p[i + 2] >= 'a' && p[i + 2] <= 'f')
            || fuzz_id_unreserved((unsigned char)
                   (fuzz_id_hex(p[i + 1]) * 16 + fuzz_id_hex(p[i + 2]))))
        {
            return 0;
        }

        i += 2;
    }

    return 1;
}


static int
fuzz_id_hex(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }

    return -1;
}


/* plain percent-decoding ('+' stays '+'); -1 on a malformed escape */

static long
fuzz_id_pct_decode(unsigned char *dst, const unsigned char *src, size_t len)
{
    size_t  i, n;

    n = 0;

    for (i = 0; i < len; i++) {
        if (src[i] != '%') {
            dst[n++] = src[i];
            continue;
        }

        if (len - i < 3 || fuzz_id_hex(src[i + 1]) < 0
            || fuzz_id_hex(src[i + 2]) < 0)
        {
            return -1;
        }

        dst[n++] = (unsigned char) (fuzz_id_hex(src[i + 1]) * 16
                                    + fuzz_id_hex(src[i + 2]));
        i += 2;
    }

    return (long) n;
}


static void
fuzz_id_fail(const char *what, const unsigned char *in, size_t len)
{
    size_t  i;

    fprintf(stderr, "%s: \"", what);

    for (i = 0; i < len && i < 400; i++) {
        if (in[i] >= 0x20 && in[i] < 0x7f && in[i] != '"' && in[i] != '\\') {
            fputc(in[i], stderr);

        } else {
            fprintf(stderr, "\\x%02x", in[i]);
        }
    }

    fprintf(stderr, "\"\n");
    abort();
}
