
/*
 * Copyright (C) ngx_iothub_twin developers
 *
 * Shared access signatures as IoT Hub checks them: signing with a policy
 * key, parsing and verifying a caller's token.  Pure code over bytes.
 */


#ifndef _NGX_HTTP_IOTHUB_TWIN_SAS_H_INCLUDED_
#define _NGX_HTTP_IOTHUB_TWIN_SAS_H_INCLUDED_


#include <stddef.h>
#include <time.h>


#define NGX_HTTP_IOTHUB_TWIN_SAS_KEY_MAX   256
#define NGX_HTTP_IOTHUB_TWIN_SAS_SIG_LEN   44      /* base64 of SHA-256 */
#define NGX_HTTP_IOTHUB_TWIN_SAS_SCHEME    "SharedAccessSignature "

#define ngx_http_iothub_twin_sas_token_max(sr_len, skn_len)                  \
    (sizeof(NGX_HTTP_IOTHUB_TWIN_SAS_SCHEME "sr=&sig=&skn=&se=") - 1         \
     + 3 * (sr_len) + 3 * NGX_HTTP_IOTHUB_TWIN_SAS_SIG_LEN + 3 * (skn_len)   \
     + 20)


typedef struct {
    const unsigned char  *sr;        /* as sent, still URL-encoded */
    size_t                sr_len;
    const unsigned char  *sig;       /* as sent, URL-encoded */
    size_t                sig_len;
    const unsigned char  *skn;
    size_t                skn_len;
    const unsigned char  *se;
    size_t                se_len;
    long long             expiry;
} ngx_http_iothub_twin_sas_token_t;


typedef enum {
    NGX_HTTP_IOTHUB_TWIN_SAS_OK = 0,
    NGX_HTTP_IOTHUB_TWIN_SAS_MALFORMED,
    NGX_HTTP_IOTHUB_TWIN_SAS_EXPIRED,
    NGX_HTTP_IOTHUB_TWIN_SAS_WRONG_RESOURCE,
    NGX_HTTP_IOTHUB_TWIN_SAS_BAD_SIGNATURE
} ngx_http_iothub_twin_sas_rc_e;


size_t ngx_http_iothub_twin_sas_key_decode(const unsigned char *b64,
    size_t len, unsigned char *dst);
int ngx_http_iothub_twin_sas_signature(const unsigned char *key,
    size_t key_len, const unsigned char *sr, size_t sr_len,
    const unsigned char *se, size_t se_len, unsigned char *sig);
size_t ngx_http_iothub_twin_sas_sign(unsigned char *dst,
    const unsigned char *sr, size_t sr_len, const unsigned char *skn,
    size_t skn_len, const unsigned char *key, size_t key_len,
    long long expiry);

ngx_http_iothub_twin_sas_rc_e ngx_http_iothub_twin_sas_parse(
    const unsigned char *value, size_t len,
    ngx_http_iothub_twin_sas_token_t *tok);
ngx_http_iothub_twin_sas_rc_e ngx_http_iothub_twin_sas_verify(
    const ngx_http_iothub_twin_sas_token_t *tok, const unsigned char *host,
    size_t host_len, const unsigned char *key, size_t key_len, time_t now,
    time_t skew);
size_t ngx_http_iothub_twin_url_decode(unsigned char *dst,
    const unsigned char *src, size_t len);


#endif /* _NGX_HTTP_IOTHUB_TWIN_SAS_H_INCLUDED_ */
