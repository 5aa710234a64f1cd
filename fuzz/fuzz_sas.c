
/*
 * libFuzzer target for callers' shared access signatures: parsing, key
 * decoding, signing and verifying.
 *
 * Every input is used three ways, and the run aborts when a check fails:
 *
 *   - as an Authorization value: ngx_http_iothub_twin_sas_parse() must
 *     agree with a plain reference split ("SharedAccessSignature " then
 *     name=value pairs joined by '&', sr, sig, skn and se each exactly
 *     once, values not empty, se 1 to 18 digits), field for field; a
 *     parsed token is verified against a fixed host and key, and the
 *     verdict must be the one an independent check gives (sr decoded
 *     equals the host without case, not expired with the skew, and the
 *     decoded sig is base64(HMAC-SHA256(key, sr "\n" se)) computed here
 *     with OpenSSL, sr and se as sent);
 *
 *   - as a base64 key: ngx_http_iothub_twin_sas_key_decode() must agree
 *     with a reference strict decoder;
 *
 *   - as the material of a token: a key, a resource (any bytes), a policy
 *     name and an expiry taken from the input are signed with
 *     ngx_http_iothub_twin_sas_sign(); the token must parse, name what was
 *     signed and verify (round trip), and fail once expired.  One byte of
 *     it, chosen by the input, is then changed: the changed token must not
 *     verify unless it still means the same token (same sr and se as sent,
 *     same decoded sig and skn: only the case of a %XX can change), and
 *     its verdict must be the independent one as above.
 *
 * clang -g -O1 -fsanitize=fuzzer,address,undefined \
 *     -Ingx_iothub_twin_module fuzz/fuzz_sas.c \
 *     ngx_iothub_twin_module/ngx_http_iothub_twin_sas.c \
 *     ngx_iothub_twin_module/ngx_http_iothub_twin_id.c -lcrypto \
 *     -o build/fuzz/fuzz_sas
 */


#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ngx_http_iothub_twin_sas.h"


#define FUZZ_SAS_HOST  "testhub.azure-devices.net"
#define FUZZ_SAS_NOW   1700000000
#define FUZZ_SAS_SKEW  300


typedef struct {
    const unsigned char  *data;
    size_t                size;
} fuzz_sas_input_t;


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_sas_token(const unsigned char *value, size_t len,
    const unsigned char *host, size_t host_len, const unsigned char *key,
    size_t key_len, time_t now, ngx_http_iothub_twin_sas_token_t *tok,
    ngx_http_iothub_twin_sas_rc_e *vrc);
static int fuzz_sas_ref_parse(const unsigned char *value, size_t len,
    ngx_http_iothub_twin_sas_token_t *tok);
static ngx_http_iothub_twin_sas_rc_e fuzz_sas_ref_verify(
    const ngx_http_iothub_twin_sas_token_t *tok, const unsigned char *host,
    size_t host_len, const unsigned char *key, size_t key_len, time_t now);
static void fuzz_sas_key(const unsigned char *b64, size_t len);
static void fuzz_sas_round_trip(fuzz_sas_input_t *in);
static size_t fuzz_sas_take(fuzz_sas_input_t *in, unsigned char *dst,
    size_t max);
static long fuzz_sas_url_decode(unsigned char *dst, const unsigned char *src,
    size_t len);
static int fuzz_sas_same_field(const unsigned char *a, size_t alen,
    const unsigned char *b, size_t blen, int decode);
static int fuzz_sas_hex(unsigned char c);
static int fuzz_sas_b64(unsigned char c);
static void fuzz_sas_fail(const char *what, const unsigned char *in,
    size_t len);


static const unsigned char  fuzz_sas_key_bytes[32] =
    "fuzz-key-0123456789abcdefghijklm";


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_sas_input_t                  in;
    ngx_http_iothub_twin_sas_rc_e     vrc;
    ngx_http_iothub_twin_sas_token_t  tok;

    fuzz_sas_token(data, size, (const unsigned char *) FUZZ_SAS_HOST,
                   sizeof(FUZZ_SAS_HOST) - 1, fuzz_sas_key_bytes,
                   sizeof(fuzz_sas_key_bytes), FUZZ_SAS_NOW, &tok, &vrc);

    fuzz_sas_key(data, size);

    in.data = data;
    in.size = size;
    fuzz_sas_round_trip(&in);

    return 0;
}


/*
 * Parses value as the gateway does, checks the parse against the
 * reference and, when it parsed, the verdict against the reference.
 */

static void
fuzz_sas_token(const unsigned char *value, size_t len,
    const unsigned char *host, size_t host_len, const unsigned char *key,
    size_t key_len, time_t now, ngx_http_iothub_twin_sas_token_t *tok,
    ngx_http_iothub_twin_sas_rc_e *vrc)
{
    int                               ref;
    ngx_http_iothub_twin_sas_rc_e     rc, expect;
    ngx_http_iothub_twin_sas_token_t  rtok;

    *vrc = NGX_HTTP_IOTHUB_TWIN_SAS_MALFORMED;

    rc = ngx_http_iothub_twin_sas_parse(value, len, tok);
    ref = fuzz_sas_ref_parse(value, len, &rtok);

    if ((rc == NGX_HTTP_IOTHUB_TWIN_SAS_OK) != (ref == 0)) {
        fuzz_sas_fail(ref ? "parsed a malformed token"
                          : "refused a well-formed token", value, len);
    }

    if (rc != NGX_HTTP_IOTHUB_TWIN_SAS_OK) {
        if (rc != NGX_HTTP_IOTHUB_TWIN_SAS_MALFORMED) {
            fuzz_sas_fail("parse failed, not as malformed", value, len);
        }

        return;
    }

    if (tok->sr != rtok.sr || tok->sr_len != rtok.sr_len
        || tok->sig != rtok.sig || tok->sig_len != rtok.sig_len
        || tok->skn != rtok.skn || tok->skn_len != rtok.skn_len
        || tok->se != rtok.se || tok->se_len != rtok.se_len
        || tok->expiry != rtok.expiry)
    {
        fuzz_sas_fail("fields differ from the reference split", value, len);
    }

    *vrc = ngx_http_iothub_twin_sas_verify(tok, host, host_len, key, key_len,
                                           now, FUZZ_SAS_SKEW);
    expect = fuzz_sas_ref_verify(tok, host, host_len, key, key_len, now);

    if (*vrc != expect) {
        fprintf(stderr, "verify %d, reference %d\n", (int) *vrc, (int) expect);
        fuzz_sas_fail("verdict differs from the reference", value, len);
    }
}


static int
fuzz_sas_ref_parse(const unsigned char *value, size_t len,
    ngx_http_iothub_twin_sas_token_t *tok)
{
    size_t                 i, start, eq, klen;
    const unsigned char  **field;
    size_t                *field_len;

    static const char      scheme[] = "SharedAccessSignature ";

    memset(tok, 0, sizeof(ngx_http_iothub_twin_sas_token_t));

    if (len < sizeof(scheme) - 1
        || memcmp(value, scheme, sizeof(scheme) - 1) != 0)
    {
        return -1;
    }

    start = sizeof(scheme) - 1;

    if (start == len) {
        return -1;
    }

    /* each pair runs from start to the next '&' or the end */

    for (i = start; i <= len; i++) {
        if (i < len && value[i] != '&') {
            continue;
        }

        for (eq = start; eq < i && value[eq] != '='; eq++) {
            /* void */
        }

        if (eq == i || eq + 1 == i) {
            return -1;
        }

        klen = eq - start;

        if (klen == 2 && value[start] == 's' && value[start + 1] == 'r') {
            field = &tok->sr;
            field_len = &tok->sr_len;

        } else if (klen == 3 && memcmp(value + start, "sig", 3) == 0) {
            field = &tok->sig;
            field_len = &tok->sig_len;

        } else if (klen == 3 && memcmp(value + start, "skn", 3) == 0) {
            field = &tok->skn;
            field_len = &tok->skn_len;

        } else if (klen == 2 && value[start] == 's'
                   && value[start + 1] == 'e')
        {
            field = &tok->se;
            field_len = &tok->se_len;

        } else {
            return -1;
        }

        if (*field != NULL) {
            return -1;
        }

        *field = value + eq + 1;
        *field_len = i - eq - 1;

        start = i + 1;
    }

    if (tok->sr == NULL || tok->sig == NULL || tok->skn == NULL
        || tok->se == NULL || tok->se_len > 18)
    {
        return -1;
    }

    for (i = 0; i < tok->se_len; i++) {
        if (tok->se[i] < '0' || tok->se[i] > '9') {
            return -1;
        }

        tok->expiry = tok->expiry * 10 + (tok->se[i] - '0');
    }

    return 0;
}


/* the verdict, in the order the checks are documented */

static ngx_http_iothub_twin_sas_rc_e
fuzz_sas_ref_verify(const ngx_http_iothub_twin_sas_token_t *tok,
    const unsigned char *host, size_t host_len, const unsigned char *key,
    size_t key_len, time_t now)
{
    long           n;
    size_t         i;
    unsigned int   mac_len;
    unsigned char  c1, c2;
    unsigned char  mac[EVP_MAX_MD_SIZE];
    unsigned char  msg[1024], dec[1024], expected[64];

    if (tok->sr_len > 256 || tok->sig_len > 3 * 44) {
        return NGX_HTTP_IOTHUB_TWIN_SAS_MALFORMED;
    }

    n = fuzz_sas_url_decode(dec, tok->sr, tok->sr_len);

    if (n < 0 || (size_t) n != host_len) {
        return NGX_HTTP_IOTHUB_TWIN_SAS_WRONG_RESOURCE;
    }

    for (i = 0; i < host_len; i++) {
        c1 = dec[i];
        c2 = host[i];
        c1 = (c1 >= 'A' && c1 <= 'Z') ? c1 + 32 : c1;
        c2 = (c2 >= 'A' && c2 <= 'Z') ? c2 + 32 : c2;

        if (c1 != c2) {
            return NGX_HTTP_IOTHUB_TWIN_SAS_WRONG_RESOURCE;
        }
    }

    if ((long long) now > tok->expiry + FUZZ_SAS_SKEW) {
        return NGX_HTTP_IOTHUB_TWIN_SAS_EXPIRED;
    }

    memcpy(msg, tok->sr, tok->sr_len);
    msg[tok->sr_len] = '\n';
    memcpy(msg + tok->sr_len + 1, tok->se, tok->se_len);

    if (HMAC(EVP_sha256(), key, (int) key_len, msg,
             tok->sr_len + 1 + tok->se_len, mac, &mac_len)
        == NULL
        || EVP_EncodeBlock(expected, mac, (int) mac_len) != 44)
    {
        fuzz_sas_fail("HMAC failed", NULL, 0);
    }

    n = fuzz_sas_url_decode(dec, tok->sig, tok->sig_len);

    if (n != 44 || memcmp(dec, expected, 44) != 0) {
        return NGX_HTTP_IOTHUB_TWIN_SAS_BAD_SIGNATURE;
    }

    return NGX_HTTP_IOTHUB_TWIN_SAS_OK;
}


static void
fuzz_sas_key(const unsigned char *b64, size_t len)
{
    int             v;
    size_t          i, n, ref, pad;
    unsigned int    acc;
    unsigned char  *dst, *exp;

    dst = malloc(NGX_HTTP_IOTHUB_TWIN_SAS_KEY_MAX);
    exp = malloc(len / 4 * 3 + 1);

    if (dst == NULL || exp == NULL) {
        goto done;
    }

    n = ngx_http_iothub_twin_sas_key_decode(b64, len, dst);

    /* the reference: padded, whole quanta, '=' only at the very end */

    ref = 0;
    pad = 0;

    if (len == 0 || len % 4 != 0
        || len / 4 * 3 > NGX_HTTP_IOTHUB_TWIN_SAS_KEY_MAX)
    {
        goto compare;
    }

    if (b64[len - 1] == '=') {
        pad = (b64[len - 2] == '=') ? 2 : 1;
    }

    acc = 0;

    for (i = 0; i < len - pad; i++) {
        v = fuzz_sas_b64(b64[i]);

        if (v < 0) {
            ref = 0;
            goto compare;
        }

        acc = (acc << 6) | (unsigned int) v;

        if (i % 4 == 3) {
            exp[ref++] = (unsigned char) (acc >> 16);
            exp[ref++] = (unsigned char) (acc >> 8);
            exp[ref++] = (unsigned char) acc;
            acc = 0;
        }
    }

    if (pad == 1) {
        acc <<= 6;
        exp[ref++] = (unsigned char) (acc >> 16);
        exp[ref++] = (unsigned char) (acc >> 8);

    } else if (pad == 2) {
        acc <<= 12;
        exp[ref++] = (unsigned char) (acc >> 16);
    }

compare:

    if (n != ref || (n && memcmp(dst, exp, n) != 0)) {
        fprintf(stderr, "key decode: %zu bytes, reference %zu\n", n, ref);
        fuzz_sas_fail("key decoding differs from the reference", b64, len);
    }

done:

    free(dst);
    free(exp);
}


/*
 * Input layout (missing bytes read as 0): key length (1 to 64), key,
 * resource length (1 to 63), resource, policy name length (1 to 31),
 * policy name, 8 bytes of expiry, 2 bytes of position and 1 byte of xor
 * for the mutation.
 */

static void
fuzz_sas_round_trip(fuzz_sas_input_t *in)
{
    size_t                             key_len, sr_len, skn_len, len, max, i;
    long                               n;
    long long                          expiry;
    unsigned char                      b, x;
    unsigned char                      key[64], sr[64], skn[32], e[8], m[3];
    unsigned char                      dec[128];
    unsigned char                     *token;
    ngx_http_iothub_twin_sas_rc_e      vrc, mrc;
    ngx_http_iothub_twin_sas_token_t   tok, mtok;

    b = 0;
    fuzz_sas_take(in, &b, 1);
    key_len = 1 + b % 64;
    fuzz_sas_take(in, key, key_len);

    b = 0;
    fuzz_sas_take(in, &b, 1);
    sr_len = 1 + b % 63;
    fuzz_sas_take(in, sr, sr_len);

    b = 0;
    fuzz_sas_take(in, &b, 1);
    skn_len = 1 + b % 31;
    fuzz_sas_take(in, skn, skn_len);

    memset(e, 0, sizeof(e));
    fuzz_sas_take(in, e, sizeof(e));
    expiry = 0;

    for (i = 0; i < sizeof(e); i++) {
        expiry = (expiry << 8) | e[i];
    }

    expiry = (long long) ((unsigned long long) expiry % 1000000000000000000ULL);

    memset(m, 0, sizeof(m));
    fuzz_sas_take(in, m, sizeof(m));

    max = ngx_http_iothub_twin_sas_token_max(sr_len, skn_len);
    token = malloc(max);
    if (token == NULL) {
        return;
    }

    len = ngx_http_iothub_twin_sas_sign(token, sr, sr_len, skn, skn_len, key,
                                        key_len, expiry);

    if (len == 0 || len > max) {
        fuzz_sas_fail("signing failed", sr, sr_len);
    }

    /* the signed token parses, names what was signed and verifies */

    fuzz_sas_token(token, len, sr, sr_len, key, key_len,
                   (time_t) expiry - 1, &tok, &vrc);

    if (vrc != NGX_HTTP_IOTHUB_TWIN_SAS_OK) {
        fprintf(stderr, "verify %d\n", (int) vrc);
        fuzz_sas_fail("a signed token does not verify", token, len);
    }

    n = fuzz_sas_url_decode(dec, tok.skn, tok.skn_len);

    if (tok.expiry != expiry || n < 0 || (size_t) n != skn_len
        || memcmp(dec, skn, skn_len) != 0)
    {
        fuzz_sas_fail("a signed token names something else", token, len);
    }

    if (ngx_http_iothub_twin_sas_verify(&tok, sr, sr_len, key, key_len,
                                        (time_t) (expiry + FUZZ_SAS_SKEW + 1),
                                        FUZZ_SAS_SKEW)
        != NGX_HTTP_IOTHUB_TWIN_SAS_EXPIRED)
    {
        fuzz_sas_fail("an expired token is not refused as expired", token,
                      len);
    }

    /* one byte changed */

    i = ((size_t) m[0] << 8 | m[1]) % len;
    x = m[2] ? m[2] : 1;
    token[i] ^= x;

    fuzz_sas_token(token, len, sr, sr_len, key, key_len, (time_t) expiry - 1,
                   &mtok, &mrc);

    if (mrc == NGX_HTTP_IOTHUB_TWIN_SAS_OK
        && fuzz_sas_same_field(mtok.skn, mtok.skn_len, tok.skn, tok.skn_len,
                               1)
        && !(fuzz_sas_same_field(mtok.sr, mtok.sr_len, tok.sr, tok.sr_len, 0)
             && fuzz_sas_same_field(mtok.se, mtok.se_len, tok.se, tok.se_len,
                                    0)
             && fuzz_sas_same_field(mtok.sig, mtok.sig_len, tok.sig,
                                    tok.sig_len, 1)))
    {
        fprintf(stderr, "byte %zu xor 0x%02x\n", i, x);
        fuzz_sas_fail("a changed token verifies", token, len);
    }

    free(token);
}


static size_t
fuzz_sas_take(fuzz_sas_input_t *in, unsigned char *dst, size_t max)
{
    size_t  n;

    n = in->size < max ? in->size : max;
    memcpy(dst, in->data, n);
    memset(dst + n, 0, max - n);
    in->data += n;
    in->size -= n;

    return n;
}


/* the hub's query decoding: '+' is a space; -1 on a malformed escape */

static long
fuzz_sas_url_decode(unsigned char *dst, const unsigned char *src, size_t len)
{
    size_t  i, n;

    n = 0;

    for (i = 0; i < len; i++) {
        if (src[i] == '+') {
            dst[n++] = ' ';

        } else if (src[i] != '%') {
            dst[n++] = src[i];

        } else if (len - i < 3 || fuzz_sas_hex(src[i + 1]) < 0
                   || fuzz_sas_hex(src[i + 2]) < 0)
        {
            return -1;

        } else {
            dst[n++] = (unsigned char) (fuzz_sas_hex(src[i + 1]) * 16
                                        + fuzz_sas_hex(src[i + 2]));
            i += 2;
        }
    }

    return (long) n;
}


static int
fuzz_sas_same_field(const unsigned char *a, size_t alen,
    const unsigned char *b, size_t blen, int decode)
{
    long           an, bn;
    unsigned char  ad[1024], bd[1024];

    if (!decode) {
        return alen == blen && memcmp(a, b, alen) == 0;
    }

    if (alen > sizeof(ad) || blen > sizeof(bd)) {
        return 0;
    }

    an = fuzz_sas_url_decode(ad, a, alen);
    bn = fuzz_sas_url_decode(bd, b, blen);

    return an >= 0 && an == bn && memcmp(ad, bd, an) == 0;
}


static int
fuzz_sas_hex(unsigned char c)
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


static int
fuzz_sas_b64(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }

    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }

    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }

    return c == '+' ? 62 : (c == '/' ? 63 : -1);
}


/* tokens are fuzzer-made, not secrets: shown for the report */

static void
fuzz_sas_fail(const char *what, const unsigned char *in, size_t len)
{
    size_t  i;

    fprintf(stderr, "%s: \"", what);

    for (i = 0; in != NULL && i < len && i < 600; i++) {
        if (in[i] >= 0x20 && in[i] < 0x7f && in[i] != '"' && in[i] != '\\') {
            fputc(in[i], stderr);

        } else {
            fprintf(stderr, "\\x%02x", in[i]);
        }
    }

    fprintf(stderr, "\"\n");
    abort();
}
