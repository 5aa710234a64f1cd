
/*
 * Copyright (C) ngx_iothub_twin developers
 *
 * Who is calling: a caller's own SAS token (an unmodified Azure SDK pointed
 * at the gateway), a verified client certificate, or a variable set by
 * something trusted in front.  The name found is looked up in the caller
 * policy; a caller that is not there has no identity.
 */


#include "ngx_http_iothub_twin_module.h"


static ngx_int_t ngx_http_iothub_twin_identify_sas(ngx_http_request_t *r,
    ngx_http_iothub_twin_loc_conf_t *itlcf, ngx_http_iothub_twin_ctx_t *ctx);
static ngx_int_t ngx_http_iothub_twin_identify_mtls(ngx_http_request_t *r,
    ngx_http_iothub_twin_loc_conf_t *itlcf, ngx_http_iothub_twin_ctx_t *ctx);
static ngx_int_t ngx_http_iothub_twin_identify_variable(ngx_http_request_t *r,
    ngx_http_iothub_twin_loc_conf_t *itlcf, ngx_http_iothub_twin_ctx_t *ctx);
static ngx_int_t ngx_http_iothub_twin_known(ngx_http_request_t *r,
    ngx_http_iothub_twin_loc_conf_t *itlcf, ngx_http_iothub_twin_ctx_t *ctx,
    u_char *name, size_t len);


/*
 * Runs once per request, from the precontent handler or from the first
 * variable that needs the caller (a limit_req key is evaluated earlier, in
 * the preaccess phase).  NGX_OK: ctx->caller is set; NGX_DECLINED: no
 * identity, ctx->identity_error says why (for the log, never the caller).
 */

ngx_int_t
ngx_http_iothub_twin_identify(ngx_http_request_t *r,
    ngx_http_iothub_twin_loc_conf_t *itlcf, ngx_http_iothub_twin_ctx_t *ctx)
{
    ngx_int_t  rc;

    if (ctx->identified) {
        return ctx->caller ? NGX_OK : NGX_DECLINED;
    }

    ctx->identified = 1;

    switch (itlcf->identity) {

    case NGX_HTTP_IOTHUB_TWIN_IDENTITY_SAS:
        rc = ngx_http_iothub_twin_identify_sas(r, itlcf, ctx);
        break;

    case NGX_HTTP_IOTHUB_TWIN_IDENTITY_MTLS:
        rc = ngx_http_iothub_twin_identify_mtls(r, itlcf, ctx);
        break;

    case NGX_HTTP_IOTHUB_TWIN_IDENTITY_VARIABLE:
        rc = ngx_http_iothub_twin_identify_variable(r, itlcf, ctx);
        break;

    default:
        return NGX_DECLINED;
    }

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc != NGX_OK) {
        ctx->caller = NULL;
        ngx_str_null(&ctx->caller_name);
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "iothub_twin: no identity: %s", ctx->identity_error);
        return NGX_DECLINED;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_iothub_twin_identify_sas(ngx_http_request_t *r,
    ngx_http_iothub_twin_loc_conf_t *itlcf, ngx_http_iothub_twin_ctx_t *ctx)
{
    u_char                                *skn;
    size_t                                 len, key_len;
    ngx_uint_t                             slot;
    ngx_table_elt_t                       *h;
    const unsigned char                   *key;
    ngx_http_iothub_twin_sas_rc_e          rc;
    ngx_http_iothub_twin_sas_token_t       tok;

    h = r->headers_in.authorization;

    if (h == NULL) {
        ctx->identity_error = "no Authorization header";
        return NGX_DECLINED;
    }

    if (ngx_http_iothub_twin_sas_parse(h->value.data, h->value.len, &tok)
        != NGX_HTTP_IOTHUB_TWIN_SAS_OK)
    {
        ctx->identity_error = "the Authorization header is not a SAS token";
        return NGX_DECLINED;
    }

    skn = ngx_pnalloc(r->pool, tok.skn_len);
    if (skn == NULL) {
        return NGX_ERROR;
    }

    len = ngx_http_iothub_twin_url_decode(skn, tok.skn, tok.skn_len);

    if (len == (size_t) -1) {
        ctx->identity_error = "the token's skn is malformed";
        return NGX_DECLINED;
    }

    if (ngx_http_iothub_twin_known(r, itlcf, ctx, skn, len) != NGX_OK) {
        return NGX_DECLINED;
    }

    /* the primary, then the secondary: either may sign during rotation */

    rc = NGX_HTTP_IOTHUB_TWIN_SAS_BAD_SIGNATURE;

    for (slot = 0; slot < 2; slot++) {
        key = ngx_http_iothub_twin_policy_caller_key(ctx->caller, slot,
                                                      &key_len);
        if (key == NULL) {
            continue;
        }

        rc = ngx_http_iothub_twin_sas_verify(&tok, itlcf->sas_host.data,
                                             itlcf->sas_host.len, key,
                                             key_len, ngx_time(),
                                             itlcf->sas_skew);

        if (rc != NGX_HTTP_IOTHUB_TWIN_SAS_BAD_SIGNATURE) {
            break;
        }
    }

    switch (rc) {

    case NGX_HTTP_IOTHUB_TWIN_SAS_OK:
        return NGX_OK;

    case NGX_HTTP_IOTHUB_TWIN_SAS_EXPIRED:
        ctx->identity_error = "the token has expired";
        break;

    case NGX_HTTP_IOTHUB_TWIN_SAS_WRONG_RESOURCE:
        ctx->identity_error = "the token's sr is not this gateway";
        break;

    case NGX_HTTP_IOTHUB_TWIN_SAS_BAD_SIGNATURE:
        ctx->identity_error = "the token's signature does not verify";
        break;

    default:
        ctx->identity_error = "the token is malformed";
        break;
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_iothub_twin_identify_mtls(ngx_http_request_t *r,
    ngx_http_iothub_twin_loc_conf_t *itlcf, ngx_http_iothub_twin_ctx_t *ctx)
{
    int               i, n;
    u_char           *utf8;
    X509             *cert;
    ngx_str_t         dn;
    X509_NAME        *subject;
    ngx_connection_t *c;

    c = r->connection;

    if (c->ssl == NULL) {
        ctx->identity_error = "the connection is not TLS";
        return NGX_DECLINED;
    }

    if (SSL_get_verify_result(c->ssl->connection) != X509_V_OK) {
        ctx->identity_error = "the client certificate did not verify";
        return NGX_DECLINED;
    }

    cert = SSL_get_peer_certificate(c->ssl->connection);
    if (cert == NULL) {
        ctx->identity_error = "no client certificate";
        return NGX_DECLINED;
    }

    if (itlcf->mtls_cn) {
        subject = X509_get_subject_name(cert);
        i = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);

        if (i < 0) {
            X509_free(cert);
            ctx->identity_error = "the client certificate has no CN";
            return NGX_DECLINED;
        }

        n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(
                                           X509_NAME_get_entry(subject, i)));
        X509_free(cert);

        if (n < 0) {
            ctx->identity_error = "the client certificate's CN is unreadable";
            return NGX_DECLINED;
        }

        dn.data = ngx_pnalloc(r->pool, n);
        if (dn.data == NULL) {
            OPENSSL_free(utf8);
            return NGX_ERROR;
        }

        ngx_memcpy(dn.data, utf8, n);
        dn.len = n;
        OPENSSL_free(utf8);

    } else {
        X509_free(cert);

        if (ngx_ssl_get_subject_dn(c, r->pool, &dn) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return ngx_http_iothub_twin_known(r, itlcf, ctx, dn.data, dn.len);
}


static ngx_int_t
ngx_http_iothub_twin_identify_variable(ngx_http_request_t *r,
    ngx_http_iothub_twin_loc_conf_t *itlcf, ngx_http_iothub_twin_ctx_t *ctx)
{
    ngx_str_t  name;

    if (ngx_http_complex_value(r, itlcf->identity_value, &name) != NGX_OK) {
        return NGX_ERROR;
    }

    if (name.len == 0) {
        ctx->identity_error = "the identity variable is empty";
        return NGX_DECLINED;
    }

    return ngx_http_iothub_twin_known(r, itlcf, ctx, name.data, name.len);
}


static ngx_int_t
ngx_http_iothub_twin_known(ngx_http_request_t *r,
    ngx_http_iothub_twin_loc_conf_t *itlcf, ngx_http_iothub_twin_ctx_t *ctx,
    u_char *name, size_t len)
{
    ctx->caller = ngx_http_iothub_twin_policy_caller(itlcf->callers->policy,
                                                     name, len);

    if (ctx->caller == NULL) {
        ctx->identity_error = "the caller is not in the policy";
        return NGX_DECLINED;
    }

    ctx->caller_name.data = name;
    ctx->caller_name.len = len;

    return NGX_OK;
}
