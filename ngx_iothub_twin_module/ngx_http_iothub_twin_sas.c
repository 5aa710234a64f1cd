
/*
 * Copyright (C) ngx_iothub_twin developers
 */


#include <string.h>
#include <stdio.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ngx_http_iothub_twin_id.h"
#include "ngx_http_iothub_twin_sas.h"


static int ngx_http_iothub_twin_b64_char(unsigned char c);
static size_t ngx_http_iothub_twin_sas_put(unsigned char *dst,
    const char *s);


static int
ngx_http_iothub_twin_b64_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
           || (c >= '0' && c <= '9') || c == '+' || c == '/';
}


/*
 * Strict base64 (RFC 4648 alphabet, padded).  Returns the decoded length,
 * or 0 when the text is not base64 or the key is longer than
 * NGX_HTTP_IOTHUB_TWIN_SAS_KEY_MAX.
 */

size_t
ngx_http_iothub_twin_sas_key_decode(const unsigned char *b64, size_t len,
    unsigned char *dst)
{
    int     n;
    size_t  i, pad;

    if (len == 0 || len % 4 != 0
        || len / 4 * 3 > NGX_HTTP_IOTHUB_TWIN_SAS_KEY_MAX)
    {
        return 0;
    }

    pad = 0;

    if (b64[len - 1] == '=') {
        pad = (b64[len - 2] == '=') ? 2 : 1;
    }

    for (i = 0; i < len - pad; i++) {
        if (!ngx_http_iothub_twin_b64_char(b64[i])) {
            return 0;
        }
    }

    n = EVP_DecodeBlock(dst, b64, (int) len);

    if (n < 0 || (size_t) n < pad) {
        return 0;
    }

    return (size_t) n - pad;
}


/*
 * sig = base64(HMAC-SHA256(key, sr "\n" se)), sr exactly as it appears in
 * the token; writes NGX_HTTP_IOTHUB_TWIN_SAS_SIG_LEN bytes and a NUL.
 */

int
ngx_http_iothub_twin_sas_signature(const unsigned char *key, size_t key_len,
    const unsigned char *sr, size_t sr_len, const unsigned char *se,
    size_t se_len, unsigned char *sig)
{
    unsigned int   mac_len;
    unsigned char  mac[EVP_MAX_MD_SIZE];
    unsigned char  msg[3 * 256 + 1 + 20];

    if (sr_len + 1 + se_len > sizeof(msg)) {
        return -1;
    }

    memcpy(msg, sr, sr_len);
    msg[sr_len] = '\n';
    memcpy(msg + sr_len + 1, se, se_len);

    if (HMAC(EVP_sha256(), key, (int) key_len, msg, sr_len + 1 + se_len,
             mac, &mac_len)
        == NULL)
    {
        return -1;
    }

    if (EVP_EncodeBlock(sig, mac, (int) mac_len)
        != NGX_HTTP_IOTHUB_TWIN_SAS_SIG_LEN)
    {
        return -1;
    }

    return 0;
}


static size_t
ngx_http_iothub_twin_sas_put(unsigned char *dst, const char *s)
{
    size_t  n;

    n = strlen(s);
    memcpy(dst, s, n);

    return n;
}


/*
 * Writes "SharedAccessSignature sr=..&sig=..&skn=..&se=.." in the order the
 * Node service SDK uses; dst holds ngx_http_iothub_twin_sas_token_max()
 * bytes.  Returns the length, 0 on failure.
 */

size_t
ngx_http_iothub_twin_sas_sign(unsigned char *dst, const unsigned char *sr,
    size_t sr_len, const unsigned char *skn, size_t skn_len,
    const unsigned char *key, size_t key_len, long long expiry)
{
    int             se_len;
    size_t          enc_len;
    unsigned char  *p, *enc_sr;
    unsigned char   se[24];
    unsigned char   sig[NGX_HTTP_IOTHUB_TWIN_SAS_SIG_LEN + 1];

    if (expiry < 0 || sr_len > 256) {
        return 0;
    }

    se_len = snprintf((char *) se, sizeof(se), "%lld", expiry);

    p = dst;
    p += ngx_http_iothub_twin_sas_put(p, NGX_HTTP_IOTHUB_TWIN_SAS_SCHEME "sr=");

    enc_sr = p;
    enc_len = ngx_http_iothub_twin_id_encode(p, sr, sr_len);
    p += enc_len;

    if (ngx_http_iothub_twin_sas_signature(key, key_len, enc_sr, enc_len,
                                           se, se_len, sig)
        != 0)
    {
        return 0;
    }

    p += ngx_http_iothub_twin_sas_put(p, "&sig=");
    p += ngx_http_iothub_twin_id_encode(p, sig,
                                        NGX_HTTP_IOTHUB_TWIN_SAS_SIG_LEN);
    p += ngx_http_iothub_twin_sas_put(p, "&skn=");
    p += ngx_http_iothub_twin_id_encode(p, skn, skn_len);
    p += ngx_http_iothub_twin_sas_put(p, "&se=");
    memcpy(p, se, se_len);
    p += se_len;

    OPENSSL_cleanse(sig, sizeof(sig));

    return p - dst;
}


/*
 * Splits "SharedAccessSignature sr=..&sig=..&se=..&skn=.." into its fields;
 * each field exactly once, in any order, nothing else.
 */

ngx_http_iothub_twin_sas_rc_e
ngx_http_iothub_twin_sas_parse(const unsigned char *value, size_t len,
    ngx_http_iothub_twin_sas_token_t *tok)
{
    size_t                n, klen;
    long long             expiry;
    const unsigned char  *p, *end, *amp, *eq, **field;
    size_t               *field_len;

    static const char     scheme[] = NGX_HTTP_IOTHUB_TWIN_SAS_SCHEME;

    memset(tok, 0, sizeof(ngx_http_iothub_twin_sas_token_t));

    if (len < sizeof(scheme) - 1
        || memcmp(value, scheme, sizeof(scheme) - 1) != 0)
    {
        return NGX_HTTP_IOTHUB_TWIN_SAS_MALFORMED;
    }

    p = value + sizeof(scheme) - 1;
    end = value + len;

    while (p < end) {
        amp = memchr(p, '&', end - p);
        n = (amp ? amp : end) - p;

        eq = memchr(p, '=', n);
        if (eq == NULL || eq + 1 == p + n) {
            return NGX_HTTP_IOTHUB_TWIN_SAS_MALFORMED;
        }

        klen = eq - p;

        if (klen == 2 && memcmp(p, "sr", 2) == 0) {
            field = &tok->sr;
            field_len = &tok->sr_len;

        } else if (klen == 3 && memcmp(p, "sig", 3) == 0) {
            field = &tok->sig;
            field_len = &tok->sig_len;

        } else if (klen == 3 && memcmp(p, "skn", 3) == 0) {
            field = &tok->skn;
            field_len = &tok->skn_len;

        } else if (klen == 2 && memcmp(p, "se", 2) == 0) {
            field = &tok->se;
            field_len = &tok->se_len;

        } else {
            return NGX_HTTP_IOTHUB_TWIN_SAS_MALFORMED;
        }

        if (*field != NULL) {
            return NGX_HTTP_IOTHUB_TWIN_SAS_MALFORMED;
        }

        *field = eq + 1;
        *field_len = p + n - (eq + 1);

        p += n;

        if (amp) {
            p++;

            if (p == end) {
                return NGX_HTTP_IOTHUB_TWIN_SAS_MALFORMED;
            }
        }
    }

    if (tok->sr == NULL || tok->sig == NULL || tok->skn == NULL
        || tok->se == NULL || tok->se_len > 18)
    {
        return NGX_HTTP_IOTHUB_TWIN_SAS_MALFORMED;
    }

    expiry = 0;

    for (n = 0; n < tok->se_len; n++) {
        if (tok->se[n] < '0' || tok->se[n] > '9') {
            return NGX_HTTP_IOTHUB_TWIN_SAS_MALFORMED;
        }

        expiry = expiry * 10 + (tok->se[n] - '0');
    }

    tok->expiry = expiry;

    return NGX_HTTP_IOTHUB_TWIN_SAS_OK;
}


/*
 * Percent-decoding as the hub's parser does it: a raw '+' is a space.
 * Returns the length, or (size_t) -1 on a malformed escape.
 */

size_t
ngx_http_iothub_twin_url_decode(unsigned char *dst, const unsigned char *src,
    size_t len)
{
    size_t         i, n;
    unsigned char  c, hi, lo;

    n = 0;

    for (i = 0; i < len; i++) {
        c = src[i];

        if (c == '+') {
            c = ' ';

        } else if (c == '%') {
            if (len - i < 3) {
                return (size_t) -1;
            }

            /* digits before folding case: 0x10 | 0x20 is '0' */

            hi = src[i + 1];
            lo = src[i + 2];

            hi = (hi >= '0' && hi <= '9') ? hi - '0'
                 : ((hi | 0x20) >= 'a' && (hi | 0x20) <= 'f')
                   ? (hi | 0x20) - 'a' + 10 : 0xff;
            lo = (lo >= '0' && lo <= '9') ? lo - '0'
                 : ((lo | 0x20) >= 'a' && (lo | 0x20) <= 'f')
                   ? (lo | 0x20) - 'a' + 10 : 0xff;

            if (hi == 0xff || lo == 0xff) {
                return (size_t) -1;
            }

            c = (unsigned char) (hi << 4 | lo);
            i += 2;
        }

        dst[n++] = c;
    }

    return n;
}


/*
 * Checks a parsed token for this gateway: sr names host, not expired
 * (with skew seconds of tolerance), signature made with key.  The caller
 * has already picked the key by skn.
 */

ngx_http_iothub_twin_sas_rc_e
ngx_http_iothub_twin_sas_verify(const ngx_http_iothub_twin_sas_token_t *tok,
    const unsigned char *host, size_t host_len, const unsigned char *key,
    size_t key_len, time_t now, time_t skew)
{
    size_t         i, n;
    unsigned char  c1, c2;
    unsigned char  sr[256];
    unsigned char  sig[3 * NGX_HTTP_IOTHUB_TWIN_SAS_SIG_LEN];
    unsigned char  expected[NGX_HTTP_IOTHUB_TWIN_SAS_SIG_LEN + 1];

    if (tok->sr_len > sizeof(sr) || tok->sig_len > sizeof(sig)) {
        return NGX_HTTP_IOTHUB_TWIN_SAS_MALFORMED;
    }

    n = ngx_http_iothub_twin_url_decode(sr, tok->sr, tok->sr_len);

    if (n != host_len) {
        return NGX_HTTP_IOTHUB_TWIN_SAS_WRONG_RESOURCE;
    }

    for (i = 0; i < n; i++) {
        c1 = sr[i];
        c2 = host[i];

        if (c1 >= 'A' && c1 <= 'Z') {
            c1 |= 0x20;
        }

        if (c2 >= 'A' && c2 <= 'Z') {
            c2 |= 0x20;
        }

        if (c1 != c2) {
            return NGX_HTTP_IOTHUB_TWIN_SAS_WRONG_RESOURCE;
        }
    }

    if ((long long) now > tok->expiry + (long long) skew) {
        return NGX_HTTP_IOTHUB_TWIN_SAS_EXPIRED;
    }

    n = ngx_http_iothub_twin_url_decode(sig, tok->sig, tok->sig_len);

    if (ngx_http_iothub_twin_sas_signature(key, key_len, tok->sr, tok->sr_len,
                                           tok->se, tok->se_len, expected)
        != 0)
    {
        return NGX_HTTP_IOTHUB_TWIN_SAS_BAD_SIGNATURE;
    }

    /* constant time comparison */

    if (n != NGX_HTTP_IOTHUB_TWIN_SAS_SIG_LEN
        || CRYPTO_memcmp(sig, expected, NGX_HTTP_IOTHUB_TWIN_SAS_SIG_LEN) != 0)
    {
        OPENSSL_cleanse(expected, sizeof(expected));
        return NGX_HTTP_IOTHUB_TWIN_SAS_BAD_SIGNATURE;
    }

    OPENSSL_cleanse(expected, sizeof(expected));

    return NGX_HTTP_IOTHUB_TWIN_SAS_OK;
}
