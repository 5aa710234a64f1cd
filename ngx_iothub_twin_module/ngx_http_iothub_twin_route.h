
/*
 * Copyright (C) ngx_iothub_twin developers
 *
 * Device-ID patterns that route twins to hubs (iothub_twin_route device):
 * checking, matching, and whether two patterns can match one ID.
 * Pure code: bytes in, results out, no nginx types.
 *
 * A pattern is the policy file's ID pattern language: '*' any run of ID
 * characters (none too), '?' exactly one, "\*", "\?" and "\\" the literal
 * characters; every other byte an ID character standing for itself.
 * Matching is on the decoded device ID, case-sensitively, as the hub
 * compares device IDs.
 */


#ifndef _NGX_HTTP_IOTHUB_TWIN_ROUTE_H_INCLUDED_
#define _NGX_HTTP_IOTHUB_TWIN_ROUTE_H_INCLUDED_


#include <stddef.h>


/* bytes of a pattern: every character of a longest ID escaped */
#define NGX_HTTP_IOTHUB_TWIN_ROUTE_PATTERN_MAX  256

/*
 * A compiled ID pattern (here and in the policy): its bytes, with escapes
 * undone, and these two bytes, which no ID holds, for the wildcards
 */
#define NGX_HTTP_IOTHUB_TWIN_GLOB_ANY_RUN       0x01
#define NGX_HTTP_IOTHUB_TWIN_GLOB_ANY_ONE       0x02


/* NULL if the pattern is valid, else what is wrong with it */
const char *ngx_http_iothub_twin_route_check(const unsigned char *p,
    size_t len);

/* non-zero if the compiled pattern matches the ID */
int ngx_http_iothub_twin_glob_match(const unsigned char *p, size_t plen,
    const unsigned char *s, size_t slen);

/* non-zero if the (valid) pattern matches the decoded ID */
int ngx_http_iothub_twin_route_match(const unsigned char *p, size_t plen,
    const unsigned char *id, size_t len);

/*
 * Non-zero if some ID of 1 to 128 characters is matched by both (valid)
 * patterns, -1 if memory ran out.
 */
int ngx_http_iothub_twin_route_overlap(const unsigned char *a, size_t alen,
    const unsigned char *b, size_t blen);


#endif /* _NGX_HTTP_IOTHUB_TWIN_ROUTE_H_INCLUDED_ */
