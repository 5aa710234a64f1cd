
/*
 * Copyright (C) ngx_iothub_twin developers
 *
 * Twin paths and IoT Hub IDs: decoding, checking and canonical encoding.
 * Pure code: bytes in, results out, no nginx types.
 */


#ifndef _NGX_HTTP_IOTHUB_TWIN_ID_H_INCLUDED_
#define _NGX_HTTP_IOTHUB_TWIN_ID_H_INCLUDED_


#include <stddef.h>


#define NGX_HTTP_IOTHUB_TWIN_ID_MAX        128

/* one encoded ID is at most three bytes per decoded byte */
#define NGX_HTTP_IOTHUB_TWIN_ID_ENC_MAX    (3 * NGX_HTTP_IOTHUB_TWIN_ID_MAX)

/* "/twins/" id "/modules/" id */
#define NGX_HTTP_IOTHUB_TWIN_PATH_MAX                                        \
    (sizeof("/twins/") - 1 + NGX_HTTP_IOTHUB_TWIN_ID_ENC_MAX                 \
     + sizeof("/modules/") - 1 + NGX_HTTP_IOTHUB_TWIN_ID_ENC_MAX)


typedef enum {
    NGX_HTTP_IOTHUB_TWIN_ID_OK = 0,
    NGX_HTTP_IOTHUB_TWIN_ID_EMPTY,
    NGX_HTTP_IOTHUB_TWIN_ID_TOO_LONG,
    NGX_HTTP_IOTHUB_TWIN_ID_BAD_ESCAPE,
    NGX_HTTP_IOTHUB_TWIN_ID_BAD_CHAR,
    NGX_HTTP_IOTHUB_TWIN_ID_SLASH,
    NGX_HTTP_IOTHUB_TWIN_ID_DOT_SEGMENT
} ngx_http_iothub_twin_id_rc_e;


typedef enum {
    NGX_HTTP_IOTHUB_TWIN_TARGET_OK = 0,
    /* not /twins/{id} or /twins/{id}/modules/{mid}: 404 */
    NGX_HTTP_IOTHUB_TWIN_TARGET_NOT_TWIN,
    /* a raw '#' (a fragment) in the request target: 400 */
    NGX_HTTP_IOTHUB_TWIN_TARGET_FRAGMENT,
    /* an ID segment breaks the rules: 400 */
    NGX_HTTP_IOTHUB_TWIN_TARGET_BAD_ID
} ngx_http_iothub_twin_target_rc_e;


typedef struct {
    unsigned char                  device[NGX_HTTP_IOTHUB_TWIN_ID_MAX + 1];
    size_t                         device_len;
    unsigned char                  module[NGX_HTTP_IOTHUB_TWIN_ID_MAX + 1];
    size_t                         module_len;
    unsigned                       has_module:1;

    /* on BAD_ID: which ID, why, and the offending byte */
    const char                    *bad_what;
    ngx_http_iothub_twin_id_rc_e   id_rc;
    unsigned char                  bad_byte;

    /* the canonical path, NUL-terminated */
    unsigned char                  path[NGX_HTTP_IOTHUB_TWIN_PATH_MAX + 1];
    size_t                         path_len;
} ngx_http_iothub_twin_target_t;


int ngx_http_iothub_twin_id_char(unsigned char c);
ngx_http_iothub_twin_id_rc_e ngx_http_iothub_twin_id_decode(
    const unsigned char *src, size_t len, unsigned char *dst, size_t *dst_len,
    unsigned char *bad);
size_t ngx_http_iothub_twin_id_encode(unsigned char *dst,
    const unsigned char *src, size_t len);
const char *ngx_http_iothub_twin_id_strerror(ngx_http_iothub_twin_id_rc_e rc);

ngx_http_iothub_twin_target_rc_e ngx_http_iothub_twin_target_parse(
    const unsigned char *path, size_t len, ngx_http_iothub_twin_target_t *t);

int ngx_http_iothub_twin_api_version_valid(const unsigned char *v,
    size_t len);
const char *ngx_http_iothub_twin_query_check(const unsigned char *args,
    size_t len);


#endif /* _NGX_HTTP_IOTHUB_TWIN_ID_H_INCLUDED_ */
