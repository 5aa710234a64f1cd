
/*
 * Copyright (C) ngx_iothub_twin developers
 *
 * The read filter: one streaming pass over a twin the hub returned that
 * keeps only what the caller may read.  Pure code over bytes, no nginx
 * types, no allocation.
 *
 * Nodes are named by paths: a top-level member by its name ("deviceId",
 * "status", "tags", "properties"), the two property sections as
 * "properties.desired" and "properties.reported", and what is below tags
 * and the sections by dotted keys ("tags.location.city",
 * "properties.reported.firmware.version").  For each node the read
 * callback says:
 *
 *   NONE   withheld, with everything below it;
 *   ALL    kept, with everything below it;
 *   SOME   an object kept, each of its members asked for in turn (for a
 *          value that is not an object, SOME is NONE).
 *
 * "tags", "properties", "properties.desired" and "properties.reported"
 * are never removed: NONE keeps them as objects with no members, so that
 * clients that index into them keep working.  Inside tags and the
 * sections, members whose key begins with '$' are not asked for:
 * "$version" is kept, and "$metadata" is kept only as far as the data it
 * describes is ("$metadata.a.b" follows "a.b"; its own '$' members stay).
 * Removed members leave no trace: no dangling comma, no key.
 */


#ifndef _NGX_HTTP_IOTHUB_TWIN_FILTER_H_INCLUDED_
#define _NGX_HTTP_IOTHUB_TWIN_FILTER_H_INCLUDED_


#include <stddef.h>


#define NGX_HTTP_IOTHUB_TWIN_READ_NONE   0
#define NGX_HTTP_IOTHUB_TWIN_READ_ALL    1
#define NGX_HTTP_IOTHUB_TWIN_READ_SOME   2


/*
 * What the caller may read of the node at path (not NUL-terminated, valid
 * during the call only): one of the verdicts above.
 */
typedef int (*ngx_http_iothub_twin_read_pt)(void *data,
    const unsigned char *path, size_t len);

/*
 * A member of the twin itself kept whole: its bytes in the output, from
 * the key's opening quote to the end of the value ("key":value, with any
 * whitespace the input had between them); they stay there when the
 * filter returns 0.
 */
typedef void (*ngx_http_iothub_twin_top_pt)(void *data,
    const unsigned char *member, size_t len);


typedef struct {
    ngx_http_iothub_twin_read_pt   read;
    void                          *data;

    /* when not NULL, called for each such member; not in report mode */
    ngx_http_iothub_twin_top_pt    top;
    void                          *top_data;

    /*
     * Non-zero: nothing is written, the verdicts are only counted (report
     * mode); out may be NULL.
     */
    unsigned                       report;

    /*
     * Where the filtered twin goes: at least as many bytes as the input,
     * or the input itself (filtered in place: the output never overtakes
     * the input; after -1 the input's bytes are undefined).
     */
    unsigned char                 *out;

    /* results */
    size_t                         out_len;
    unsigned                       withheld;   /* nodes withheld */

    /*
     * The first nodes withheld, space-separated, NUL-terminated printable
     * ASCII (other bytes, '"' and '\' as \xNN), cut short with "...".
     */
    char                           first[256];
} ngx_http_iothub_twin_filter_t;


/*
 * Filters json[0 .. len - 1] into f->out.  Returns 0, or -1 if the input
 * is not a JSON object of strict RFC 8259 syntax (UTF-8 included) nested
 * at most 64 deep: such an answer is not a twin, and nothing of it may
 * reach a scoped caller.
 */
int ngx_http_iothub_twin_filter(ngx_http_iothub_twin_filter_t *f,
    const unsigned char *json, size_t len);


#endif /* _NGX_HTTP_IOTHUB_TWIN_FILTER_H_INCLUDED_ */
