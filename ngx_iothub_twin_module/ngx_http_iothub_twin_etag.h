
/*
 * Copyright (C) ngx_iothub_twin developers
 *
 * If-Match as the hub understands it, and the etag and version of a twin
 * the hub returned.  Pure code over bytes.
 */


#ifndef _NGX_HTTP_IOTHUB_TWIN_ETAG_H_INCLUDED_
#define _NGX_HTTP_IOTHUB_TWIN_ETAG_H_INCLUDED_


#include <stddef.h>


#define NGX_HTTP_IOTHUB_TWIN_IF_MATCH_MAX  256


typedef enum {
    NGX_HTTP_IOTHUB_TWIN_IF_MATCH_MALFORMED = 0,
    NGX_HTTP_IOTHUB_TWIN_IF_MATCH_ANY,          /* *          as is */
    NGX_HTTP_IOTHUB_TWIN_IF_MATCH_ANY_QUOTED,   /* "*"        as is */
    NGX_HTTP_IOTHUB_TWIN_IF_MATCH_QUOTED,       /* "etag"     as is */
    NGX_HTTP_IOTHUB_TWIN_IF_MATCH_WEAK,         /* W/"etag"   as is */
    NGX_HTTP_IOTHUB_TWIN_IF_MATCH_BARE          /* etag       quoted */
} ngx_http_iothub_twin_if_match_e;


typedef struct {
    const unsigned char  *etag;       /* inside the quotes, NULL if absent */
    size_t                etag_len;
    long long             version;
    unsigned              has_version:1;
    unsigned              etag_invalid:1;  /* present, not a valid etag */
} ngx_http_iothub_twin_twin_info_t;


ngx_http_iothub_twin_if_match_e ngx_http_iothub_twin_if_match(
    const unsigned char *value, size_t len, unsigned char *out,
    size_t *out_len);
const char *ngx_http_iothub_twin_if_match_name(
    ngx_http_iothub_twin_if_match_e kind);
/*
 * An etag taken from a twin the hub sent may become a header only if it
 * is 1 to 256 bytes of printable ASCII without '"', ',' or '\\' (the
 * hub's are base64): no CR, LF or escape ever reaches a response header.
 * ngx_http_iothub_twin_twin_info() reports no other etag, and says so in
 * etag_invalid.
 */
int ngx_http_iothub_twin_etag_valid(const unsigned char *etag, size_t len);
int ngx_http_iothub_twin_twin_info(const unsigned char *json, size_t len,
    ngx_http_iothub_twin_twin_info_t *info);


#endif /* _NGX_HTTP_IOTHUB_TWIN_ETAG_H_INCLUDED_ */
