
/*
 * The read filter: one pass over a twin from the hub that checks all of
 * its syntax and copies into the output only the members the caller may
 * read.
 *
 * Objects asked SOME (and the twin itself) are walked member by member
 * with an explicit stack of frames; every other value, kept or dropped,
 * goes through one iterative skipper that checks it and returns its end,
 * and a kept one is then copied with one memmove().  Whitespace between
 * the members of a walked object is not copied; inside a kept value all
 * bytes are.
 *
 * Speed: twins are dense (a token every 10 bytes or so), so what counts
 * is the chain from one token's end to the next one's start, not the
 * bytes.  With SSE2 the skipper sees 64 bytes at a time as bit masks of
 * quotes and of the bytes a string must check (backslash, control,
 * non-ASCII): a string in that window ends at the next quote bit, so the
 * next token's place comes from a shift and a count, not from a load and
 * compares of the bytes at the current one; strings with anything to
 * check, and whatever does not fit the window, go the byte by byte way.
 *
 * Choices the header leaves open:
 *
 *   - paths join the raw bytes of the keys (JSON escapes not decoded) with
 *     '.'; the hub never escapes the keys it validated, so "t\u0061gs" is
 *     not "tags" here but a top-level member asked by that name;
 *   - nesting: the twin object is level 1, at most 64 containers open at
 *     once; a \u escape of a lone surrogate is refused (as by the patch
 *     validator and jansson), \u0000 is accepted;
 *   - "tags", "properties" and the sections are never removed only when
 *     they are objects: another value there is a node like any other;
 *     below "properties" asked NONE the two sections stay, as if asked
 *     NONE themselves;
 *   - '$' members of tags and the sections other than "$version" and
 *     "$metadata" are withheld (and counted) unless the section is ALL;
 *     a "$metadata" that is not an object is dropped;
 *   - a node of "$metadata" asked SOME stays only when something of the
 *     data it describes stays below it, so a SOME on a scalar (NONE for
 *     the data) does not leave its key in the metadata;
 *   - "withheld" counts the data nodes only, not the metadata that follows
 *     them; a never-removed object asked NONE counts 1 when it loses a
 *     member, and is recorded in "first" when it closes;
 *   - a path longer than the path buffer is withheld without asking.
 */


#include <stdint.h>
#include <string.h>

#if (defined __SSE2__ && defined __GNUC__                                    \
     && !defined NGX_HTTP_IOTHUB_TWIN_FILTER_NO_SIMD)
#define NGX_HTTP_IOTHUB_TWIN_FILTER_SSE2  1
#include <emmintrin.h>
#endif

#include "ngx_http_iothub_twin_filter.h"
#include "ngx_http_iothub_twin_utf8.h"


#if (defined __GNUC__)
/* the per-token fast paths go into the loops; their rare ends stay out */
#define NGX_HTTP_IOTHUB_TWIN_FILTER_HOT                                      \
    __inline__ __attribute__((always_inline))
#define NGX_HTTP_IOTHUB_TWIN_FILTER_COLD  __attribute__((noinline))
#else
#define NGX_HTTP_IOTHUB_TWIN_FILTER_HOT
#define NGX_HTTP_IOTHUB_TWIN_FILTER_COLD
#endif

#define NGX_HTTP_IOTHUB_TWIN_FILTER_DEPTH  64
#define NGX_HTTP_IOTHUB_TWIN_FILTER_PATH   16384


/* what the members of a walked object are */
typedef enum {
    NGX_HTTP_IOTHUB_TWIN_FILTER_TOP = 0,      /* the twin */
    NGX_HTTP_IOTHUB_TWIN_FILTER_DATA,         /* an object asked SOME */
    NGX_HTTP_IOTHUB_TWIN_FILTER_PROPS,        /* "properties" asked SOME */
    NGX_HTTP_IOTHUB_TWIN_FILTER_PROPS_NONE,   /* "properties" asked NONE */
    NGX_HTTP_IOTHUB_TWIN_FILTER_SECTION,      /* tags or a section, SOME */
    NGX_HTTP_IOTHUB_TWIN_FILTER_SECTION_NONE, /* tags or a section, NONE */
    NGX_HTTP_IOTHUB_TWIN_FILTER_META,         /* metadata asked SOME */
    NGX_HTTP_IOTHUB_TWIN_FILTER_META_NONE     /* metadata of a NONE section */
} ngx_http_iothub_twin_filter_kind_e;


/* what becomes of one member */
typedef enum {
    NGX_HTTP_IOTHUB_TWIN_FILTER_KEEP = 0,
    NGX_HTTP_IOTHUB_TWIN_FILTER_KEEP_DATA,    /* a kept data member of META */
    NGX_HTTP_IOTHUB_TWIN_FILTER_DROP,         /* withheld and counted */
    NGX_HTTP_IOTHUB_TWIN_FILTER_DROP_QUIET,   /* metadata: not counted */
    NGX_HTTP_IOTHUB_TWIN_FILTER_DROP_NONE,    /* below a kept NONE object */
    NGX_HTTP_IOTHUB_TWIN_FILTER_OPEN          /* walked: kind in the ctx */
} ngx_http_iothub_twin_filter_act_e;


typedef struct {
    unsigned         kind;
    unsigned         kept;        /* members written */
    unsigned         kept_data;   /* META: data members written */
    unsigned         dropped;     /* the NONE kinds: a member withheld */
    unsigned         rollback;    /* META: taken back if no data stays */
    size_t           path_len;    /* this object's path */
    size_t           out_start;   /* where its member began in the output */
} ngx_http_iothub_twin_filter_frame_t;


/*
 * 64 bytes of the input seen at once: bit i of quote is set when base[i]
 * is '"', of stop when it is '\\', a control or a non-ASCII byte.  Strings
 * that end in the window end at the next quote bit, with no load on the
 * way from one token to the next.
 */
typedef struct {
    const unsigned char            *base;
    uint64_t                        quote;
    uint64_t                        stop;
} ngx_http_iothub_twin_filter_window_t;


typedef struct {
    ngx_http_iothub_twin_filter_t  *f;
    unsigned char                  *out;
    size_t                          out_len;
    unsigned                        report;
    unsigned                        open_kind;
    size_t                          first_len;
    unsigned                        first_full;
    size_t                          path_len;    /* of the member */

    ngx_http_iothub_twin_filter_frame_t
                        stack[NGX_HTTP_IOTHUB_TWIN_FILTER_DEPTH];
    unsigned char       path[NGX_HTTP_IOTHUB_TWIN_FILTER_PATH];
} ngx_http_iothub_twin_filter_ctx_t;


static const unsigned char *ngx_http_iothub_twin_filter_ws(
    const unsigned char *p, const unsigned char *end);
static NGX_HTTP_IOTHUB_TWIN_FILTER_HOT const unsigned char *
    ngx_http_iothub_twin_filter_string(const unsigned char *p,
    const unsigned char *end);
static NGX_HTTP_IOTHUB_TWIN_FILTER_COLD const unsigned char *
    ngx_http_iothub_twin_filter_string_rest(const unsigned char *p,
    const unsigned char *end);
static NGX_HTTP_IOTHUB_TWIN_FILTER_HOT const unsigned char *
    ngx_http_iothub_twin_filter_string_w(const unsigned char *p,
    const unsigned char *end, ngx_http_iothub_twin_filter_window_t *w);
#if (NGX_HTTP_IOTHUB_TWIN_FILTER_SSE2)
static NGX_HTTP_IOTHUB_TWIN_FILTER_HOT void
    ngx_http_iothub_twin_filter_window(const unsigned char *p,
    ngx_http_iothub_twin_filter_window_t *w);
static NGX_HTTP_IOTHUB_TWIN_FILTER_HOT void
    ngx_http_iothub_twin_filter_bits(const unsigned char *p,
    ngx_http_iothub_twin_filter_window_t *w, unsigned i);
#endif
static const unsigned char *ngx_http_iothub_twin_filter_escape(
    const unsigned char *p, const unsigned char *end);
static int ngx_http_iothub_twin_filter_hex4(const unsigned char *p,
    unsigned *u);
static const unsigned char *ngx_http_iothub_twin_filter_number(
    const unsigned char *p, const unsigned char *end);
static const unsigned char *ngx_http_iothub_twin_filter_literal(
    const unsigned char *p, const unsigned char *end);
static const unsigned char *ngx_http_iothub_twin_filter_skip(
    const unsigned char *p, const unsigned char *end, unsigned room);
static ngx_http_iothub_twin_filter_act_e ngx_http_iothub_twin_filter_decide(
    ngx_http_iothub_twin_filter_ctx_t *ctx,
    ngx_http_iothub_twin_filter_frame_t *fr, const unsigned char *key,
    size_t klen, int is_object);
static int ngx_http_iothub_twin_filter_ask(
    ngx_http_iothub_twin_filter_ctx_t *ctx,
    ngx_http_iothub_twin_filter_frame_t *fr, const unsigned char *key,
    size_t klen, unsigned call);
static ngx_http_iothub_twin_filter_act_e ngx_http_iothub_twin_filter_node(
    ngx_http_iothub_twin_filter_ctx_t *ctx, int verdict, int is_object,
    unsigned some, unsigned none);
static void ngx_http_iothub_twin_filter_emit(
    ngx_http_iothub_twin_filter_ctx_t *ctx, const unsigned char *p,
    size_t n);
static void ngx_http_iothub_twin_filter_withhold(
    ngx_http_iothub_twin_filter_ctx_t *ctx, size_t len);
static int ngx_http_iothub_twin_filter_close(
    ngx_http_iothub_twin_filter_ctx_t *ctx, unsigned depth);


/*
 * Bytes of string bodies: 0 plain, 1 '"', 2 '\', 3 a control (refused),
 * 4 the first byte of a UTF-8 sequence (or not one).
 */
static const unsigned char  ngx_http_iothub_twin_filter_class[256] = {
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4
};


int
ngx_http_iothub_twin_filter(ngx_http_iothub_twin_filter_t *f,
    const unsigned char *json, size_t len)
{
    unsigned                              depth;
    const unsigned char                  *p, *end, *kstart, *v, *e;
    ngx_http_iothub_twin_filter_act_e     act;
    ngx_http_iothub_twin_filter_ctx_t     ctx;
    ngx_http_iothub_twin_filter_frame_t  *fr, *nf;

    ctx.f = f;
    ctx.out = f->out;
    ctx.out_len = 0;
    ctx.report = (f->report != 0);
    ctx.first_len = 0;
    ctx.first_full = 0;

    f->out_len = 0;
    f->withheld = 0;
    f->first[0] = '\0';

    p = json;
    end = json + len;

    p = ngx_http_iothub_twin_filter_ws(p, end);

    if (p == end || *p != '{') {
        goto invalid;
    }

    fr = &ctx.stack[0];
    fr->kind = NGX_HTTP_IOTHUB_TWIN_FILTER_TOP;
    fr->kept = 0;
    fr->kept_data = 0;
    fr->dropped = 0;
    fr->rollback = 0;
    fr->path_len = 0;
    fr->out_start = 0;
    depth = 1;

    ngx_http_iothub_twin_filter_emit(&ctx, p, 1);

    p = ngx_http_iothub_twin_filter_ws(p + 1, end);

    if (p < end && *p == '}') {
        p++;
        goto close;
    }

member:

    /* p: where a key must begin */

    if (p == end || *p != '"') {
        goto invalid;
    }

    kstart = p;

    p = ngx_http_iothub_twin_filter_string(p + 1, end);
    if (p == NULL) {
        goto invalid;
    }

    e = p - 1;

    p = ngx_http_iothub_twin_filter_ws(p, end);

    if (p == end || *p != ':') {
        goto invalid;
    }

    v = ngx_http_iothub_twin_filter_ws(p + 1, end);

    if (v == end) {
        goto invalid;
    }

    act = ngx_http_iothub_twin_filter_decide(&ctx, fr, kstart + 1,
                                             e - (kstart + 1), *v == '{');

    if (act == NGX_HTTP_IOTHUB_TWIN_FILTER_OPEN) {
        if (depth == NGX_HTTP_IOTHUB_TWIN_FILTER_DEPTH) {
            goto invalid;
        }

        nf = &ctx.stack[depth++];
        nf->kind = ctx.open_kind;
        nf->kept = 0;
        nf->kept_data = 0;
        nf->dropped = 0;
        nf->rollback = (fr->kind == NGX_HTTP_IOTHUB_TWIN_FILTER_META);
        nf->path_len = ctx.path_len;
        nf->out_start = ctx.out_len;

        if (fr->kept++) {
            ngx_http_iothub_twin_filter_emit(&ctx,
                                             (const unsigned char *) ",", 1);
        }

        ngx_http_iothub_twin_filter_emit(&ctx, kstart, v + 1 - kstart);

        fr = nf;

        p = ngx_http_iothub_twin_filter_ws(v + 1, end);

        if (p < end && *p == '}') {
            p++;
            goto close;
        }

        goto member;
    }

    p = ngx_http_iothub_twin_filter_skip(v, end,
                                   NGX_HTTP_IOTHUB_TWIN_FILTER_DEPTH - depth);
    if (p == NULL) {
        goto invalid;
    }

    switch (act) {

    case NGX_HTTP_IOTHUB_TWIN_FILTER_KEEP_DATA:
        fr->kept_data++;
        /* fall through */

    case NGX_HTTP_IOTHUB_TWIN_FILTER_KEEP:
        if (fr->kept++) {
            ngx_http_iothub_twin_filter_emit(&ctx,
                                             (const unsigned char *) ",", 1);
        }

        ngx_http_iothub_twin_filter_emit(&ctx, kstart, p - kstart);

        if (depth == 1 && f->top != NULL && !ctx.report) {
            f->top(f->top_data, ctx.out + ctx.out_len - (p - kstart),
                   p - kstart);
        }

        break;

    case NGX_HTTP_IOTHUB_TWIN_FILTER_DROP:
        ngx_http_iothub_twin_filter_withhold(&ctx, ctx.path_len);
        break;

    case NGX_HTTP_IOTHUB_TWIN_FILTER_DROP_NONE:
        fr->dropped = 1;
        break;

    default: /* NGX_HTTP_IOTHUB_TWIN_FILTER_DROP_QUIET */
        break;
    }

next:

    /* after a member's value */

    p = ngx_http_iothub_twin_filter_ws(p, end);

    if (p == end) {
        goto invalid;
    }

    if (*p == ',') {
        p = ngx_http_iothub_twin_filter_ws(p + 1, end);
        goto member;
    }

    if (*p != '}') {
        goto invalid;
    }

    p++;

close:

    if (ngx_http_iothub_twin_filter_close(&ctx, depth) != 0) {
        goto invalid;
    }

    if (--depth) {
        fr = &ctx.stack[depth - 1];
        goto next;
    }

    p = ngx_http_iothub_twin_filter_ws(p, end);

    if (p != end) {
        goto invalid;
    }

    f->out_len = ctx.report ? 0 : ctx.out_len;

    return 0;

invalid:

    f->out_len = 0;
    f->withheld = 0;
    f->first[0] = '\0';

    return -1;
}


/* closes the innermost walked object: its '}', and what its kind asks */

static int
ngx_http_iothub_twin_filter_close(ngx_http_iothub_twin_filter_ctx_t *ctx,
    unsigned depth)
{
    ngx_http_iothub_twin_filter_frame_t  *fr, *parent;

    fr = &ctx->stack[depth - 1];

    ngx_http_iothub_twin_filter_emit(ctx, (const unsigned char *) "}", 1);

    if (depth == 1) {
        return 0;
    }

    parent = &ctx->stack[depth - 2];

    switch (fr->kind) {

    case NGX_HTTP_IOTHUB_TWIN_FILTER_META:
        if (!fr->rollback) {
            break;
        }

        if (fr->kept_data == 0) {
            /* nothing of the data it describes stays: take it back */
            ctx->out_len = fr->out_start;
            parent->kept--;

        } else {
            parent->kept_data++;
        }

        break;

    case NGX_HTTP_IOTHUB_TWIN_FILTER_SECTION_NONE:
    case NGX_HTTP_IOTHUB_TWIN_FILTER_PROPS_NONE:
        if (!fr->dropped) {
            break;
        }

        if (parent->kind == NGX_HTTP_IOTHUB_TWIN_FILTER_PROPS_NONE) {
            parent->dropped = 1;

        } else {
            ngx_http_iothub_twin_filter_withhold(ctx, fr->path_len);
        }

        break;

    default:
        break;
    }

    return 0;
}


/*
 * What becomes of the member key of the object fr; for OPEN, the kind of
 * the new frame is left in ctx->open_kind.  ctx->path_len is the member's
 * path (built when the callback is asked, or when it may be recorded).
 */

static ngx_http_iothub_twin_filter_act_e
ngx_http_iothub_twin_filter_decide(ngx_http_iothub_twin_filter_ctx_t *ctx,
    ngx_http_iothub_twin_filter_frame_t *fr, const unsigned char *key,
    size_t klen, int is_object)
{
    int  verdict;

    switch (fr->kind) {

    case NGX_HTTP_IOTHUB_TWIN_FILTER_TOP:
        verdict = ngx_http_iothub_twin_filter_ask(ctx, fr, key, klen, 1);

        if (klen == 4 && memcmp(key, "tags", 4) == 0) {
            return ngx_http_iothub_twin_filter_node(ctx, verdict, is_object,
                                    NGX_HTTP_IOTHUB_TWIN_FILTER_SECTION,
                                    NGX_HTTP_IOTHUB_TWIN_FILTER_SECTION_NONE);
        }

        if (klen == 10 && memcmp(key, "properties", 10) == 0) {
            return ngx_http_iothub_twin_filter_node(ctx, verdict, is_object,
                                    NGX_HTTP_IOTHUB_TWIN_FILTER_PROPS,
                                    NGX_HTTP_IOTHUB_TWIN_FILTER_PROPS_NONE);
        }

        break;

    case NGX_HTTP_IOTHUB_TWIN_FILTER_PROPS:
        verdict = ngx_http_iothub_twin_filter_ask(ctx, fr, key, klen, 1);

        if ((klen == 7 && memcmp(key, "desired", 7) == 0)
            || (klen == 8 && memcmp(key, "reported", 8) == 0))
        {
            return ngx_http_iothub_twin_filter_node(ctx, verdict, is_object,
                                    NGX_HTTP_IOTHUB_TWIN_FILTER_SECTION,
                                    NGX_HTTP_IOTHUB_TWIN_FILTER_SECTION_NONE);
        }

        break;

    case NGX_HTTP_IOTHUB_TWIN_FILTER_PROPS_NONE:
        (void) ngx_http_iothub_twin_filter_ask(ctx, fr, key, klen, 0);

        if (is_object
            && ((klen == 7 && memcmp(key, "desired", 7) == 0)
                || (klen == 8 && memcmp(key, "reported", 8) == 0)))
        {
            ctx->open_kind = NGX_HTTP_IOTHUB_TWIN_FILTER_SECTION_NONE;
            return NGX_HTTP_IOTHUB_TWIN_FILTER_OPEN;
        }

        return NGX_HTTP_IOTHUB_TWIN_FILTER_DROP_NONE;

    case NGX_HTTP_IOTHUB_TWIN_FILTER_SECTION:
    case NGX_HTTP_IOTHUB_TWIN_FILTER_SECTION_NONE:
        if (klen > 0 && key[0] == '$') {
            (void) ngx_http_iothub_twin_filter_ask(ctx, fr, key, klen, 0);

            if (klen == 8 && memcmp(key, "$version", 8) == 0) {
                return NGX_HTTP_IOTHUB_TWIN_FILTER_KEEP;
            }

            if (klen == 9 && memcmp(key, "$metadata", 9) == 0) {
                if (!is_object) {
                    return NGX_HTTP_IOTHUB_TWIN_FILTER_DROP_QUIET;
                }

                /* its children are named by the data paths */
                ctx->path_len = fr->path_len;
                ctx->open_kind =
                    (fr->kind == NGX_HTTP_IOTHUB_TWIN_FILTER_SECTION)
                    ? NGX_HTTP_IOTHUB_TWIN_FILTER_META
                    : NGX_HTTP_IOTHUB_TWIN_FILTER_META_NONE;
                return NGX_HTTP_IOTHUB_TWIN_FILTER_OPEN;
            }

            return (fr->kind == NGX_HTTP_IOTHUB_TWIN_FILTER_SECTION)
                   ? NGX_HTTP_IOTHUB_TWIN_FILTER_DROP
                   : NGX_HTTP_IOTHUB_TWIN_FILTER_DROP_NONE;
        }

        if (fr->kind == NGX_HTTP_IOTHUB_TWIN_FILTER_SECTION_NONE) {
            return NGX_HTTP_IOTHUB_TWIN_FILTER_DROP_NONE;
        }

        verdict = ngx_http_iothub_twin_filter_ask(ctx, fr, key, klen, 1);
        break;

    case NGX_HTTP_IOTHUB_TWIN_FILTER_META:
        if (klen > 0 && key[0] == '$') {
            return NGX_HTTP_IOTHUB_TWIN_FILTER_KEEP;
        }

        verdict = ngx_http_iothub_twin_filter_ask(ctx, fr, key, klen, 1);

        if (verdict == NGX_HTTP_IOTHUB_TWIN_READ_ALL) {
            return NGX_HTTP_IOTHUB_TWIN_FILTER_KEEP_DATA;
        }

        if (verdict == NGX_HTTP_IOTHUB_TWIN_READ_SOME && is_object) {
            ctx->open_kind = NGX_HTTP_IOTHUB_TWIN_FILTER_META;
            return NGX_HTTP_IOTHUB_TWIN_FILTER_OPEN;
        }

        return NGX_HTTP_IOTHUB_TWIN_FILTER_DROP_QUIET;

    case NGX_HTTP_IOTHUB_TWIN_FILTER_META_NONE:
        if (klen > 0 && key[0] == '$') {
            return NGX_HTTP_IOTHUB_TWIN_FILTER_KEEP;
        }

        return NGX_HTTP_IOTHUB_TWIN_FILTER_DROP_QUIET;

    default: /* NGX_HTTP_IOTHUB_TWIN_FILTER_DATA */
        verdict = ngx_http_iothub_twin_filter_ask(ctx, fr, key, klen, 1);
        break;
    }

    if (verdict == NGX_HTTP_IOTHUB_TWIN_READ_ALL) {
        return NGX_HTTP_IOTHUB_TWIN_FILTER_KEEP;
    }

    if (verdict == NGX_HTTP_IOTHUB_TWIN_READ_SOME && is_object) {
        ctx->open_kind = NGX_HTTP_IOTHUB_TWIN_FILTER_DATA;
        return NGX_HTTP_IOTHUB_TWIN_FILTER_OPEN;
    }

    return NGX_HTTP_IOTHUB_TWIN_FILTER_DROP;
}


/* a node that stays as an object even when asked NONE */

static ngx_http_iothub_twin_filter_act_e
ngx_http_iothub_twin_filter_node(ngx_http_iothub_twin_filter_ctx_t *ctx,
    int verdict, int is_object, unsigned some, unsigned none)
{
    if (verdict == NGX_HTTP_IOTHUB_TWIN_READ_ALL) {
        return NGX_HTTP_IOTHUB_TWIN_FILTER_KEEP;
    }

    if (!is_object) {
        return NGX_HTTP_IOTHUB_TWIN_FILTER_DROP;
    }

    ctx->open_kind = (verdict == NGX_HTTP_IOTHUB_TWIN_READ_SOME) ? some : none;

    return NGX_HTTP_IOTHUB_TWIN_FILTER_OPEN;
}


/*
 * Builds in ctx->path the path of the member key of the object fr (of the
 * twin when fr is the first frame) and, with call, asks the callback.  A
 * path that does not fit is withheld without asking.
 */

static int
ngx_http_iothub_twin_filter_ask(ngx_http_iothub_twin_filter_ctx_t *ctx,
    ngx_http_iothub_twin_filter_frame_t *fr, const unsigned char *key,
    size_t klen, unsigned call)
{
    size_t  base, room;

    base = fr->path_len;

    if (fr->kind != NGX_HTTP_IOTHUB_TWIN_FILTER_TOP) {
        ctx->path[base++] = '.';
    }

    room = NGX_HTTP_IOTHUB_TWIN_FILTER_PATH - base;

    if (klen > room) {
        memcpy(ctx->path + base, key, room);
        ctx->path_len = NGX_HTTP_IOTHUB_TWIN_FILTER_PATH;

        return NGX_HTTP_IOTHUB_TWIN_READ_NONE;
    }

    memcpy(ctx->path + base, key, klen);
    ctx->path_len = base + klen;

    if (!call) {
        return NGX_HTTP_IOTHUB_TWIN_READ_NONE;
    }

    return ctx->f->read(ctx->f->data, ctx->path, ctx->path_len);
}


/*
 * Output never overtakes input: a kept member is written no later in the
 * output than it was in the input (what comes before it is shorter or as
 * long: whitespace is dropped, a comma is written only where the input
 * had one, and a walked object is no longer than it was), so in place the
 * bytes written are ones already read.
 */

static void
ngx_http_iothub_twin_filter_emit(ngx_http_iothub_twin_filter_ctx_t *ctx,
    const unsigned char *p, size_t n)
{
    if (!ctx->report) {
        memmove(ctx->out + ctx->out_len, p, n);
    }

    ctx->out_len += n;
}


/* counts a withheld node and records path[0 .. len - 1] in "first" */

static void
ngx_http_iothub_twin_filter_withhold(ngx_http_iothub_twin_filter_ctx_t *ctx,
    size_t len)
{
    char           *d;
    size_t          i, n, room;
    unsigned char   c;
    static const char  hex[] = "0123456789abcdef";

    ctx->f->withheld++;

    if (ctx->first_full) {
        return;
    }

    d = ctx->f->first;
    n = ctx->first_len;

    /* room for "...": 3 bytes and the NUL */
    room = sizeof(ctx->f->first) - 4;

    for (i = (n == 0); i <= len; i++) {
        c = (i == 0) ? ' ' : ctx->path[i - 1];

        if (c >= 0x20 && c <= 0x7e && c != '"' && c != '\\') {
            if (n + 1 > room) {
                goto full;
            }

            d[n++] = (char) c;
            continue;
        }

        if (n + 4 > room) {
            goto full;
        }

        d[n++] = '\\';
        d[n++] = 'x';
        d[n++] = hex[c >> 4];
        d[n++] = hex[c & 0xf];
    }

    d[n] = '\0';
    ctx->first_len = n;

    return;

full:

    memcpy(d + n, "...", 4);
    ctx->first_len = n + 3;
    ctx->first_full = 1;
}


static const unsigned char *
ngx_http_iothub_twin_filter_ws(const unsigned char *p,
    const unsigned char *end)
{
    while (p < end
           && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
    {
        p++;
    }

    return p;
}


/*
 * p: just after the opening quote; returns just after the closing one.
 * A string whose closing quote is in its first 16 bytes with nothing to
 * check before it (no '\', control or non-ASCII byte) ends here, from one
 * load; the rest goes on out of line.
 */

static NGX_HTTP_IOTHUB_TWIN_FILTER_HOT const unsigned char *
ngx_http_iothub_twin_filter_string(const unsigned char *p,
    const unsigned char *end)
{
#if (NGX_HTTP_IOTHUB_TWIN_FILTER_SSE2)
    unsigned  q, stop;
    __m128i   x;

    if (end - p >= 16) {
        x = _mm_loadu_si128((const __m128i *) p);
        q = (unsigned) _mm_movemask_epi8(
                           _mm_cmpeq_epi8(x, _mm_set1_epi8('"')));
        stop = (unsigned) _mm_movemask_epi8(_mm_or_si128(
                              _mm_cmpeq_epi8(x, _mm_set1_epi8('\\')),
                              _mm_cmplt_epi8(x, _mm_set1_epi8(0x20))));

        /* a quote, and no stop byte before the first one */
        if (q != 0 && ((q - 1) & stop) == 0) {
            return p + __builtin_ctz(q) + 1;
        }

        if ((q | stop) == 0) {
            p += 16;
        }
    }
#endif

    return ngx_http_iothub_twin_filter_string_rest(p, end);
}


/*
 * The same, with the window w, moved to p when the string is not in it
 * (w->quote and w->stop 0: not seen yet).
 */

static NGX_HTTP_IOTHUB_TWIN_FILTER_HOT const unsigned char *
ngx_http_iothub_twin_filter_string_w(const unsigned char *p,
    const unsigned char *end, ngx_http_iothub_twin_filter_window_t *w)
{
#if (NGX_HTTP_IOTHUB_TWIN_FILTER_SSE2)
    size_t    off;
    uint64_t  q, stop;

    off = (size_t) (p - w->base);

    if (off < 64) {
        q = w->quote >> off;
        stop = w->stop >> off;

        if (q != 0 && ((q - 1) & stop) == 0) {
            return p + __builtin_ctzll(q) + 1;
        }

        if ((q | stop) != 0) {
            return ngx_http_iothub_twin_filter_string_rest(p, end);
        }
    }

    if (end - p < 64) {
        return ngx_http_iothub_twin_filter_string(p, end);
    }

    ngx_http_iothub_twin_filter_window(p, w);

    q = w->quote;

    if (q != 0 && ((q - 1) & w->stop) == 0) {
        return p + __builtin_ctzll(q) + 1;
    }

    return ngx_http_iothub_twin_filter_string_rest(p, end);
#else
    (void) w;

    return ngx_http_iothub_twin_filter_string(p, end);
#endif
}


#if (NGX_HTTP_IOTHUB_TWIN_FILTER_SSE2)


/* the window at p: 64 bytes from p must be there */

static NGX_HTTP_IOTHUB_TWIN_FILTER_HOT void
ngx_http_iothub_twin_filter_window(const unsigned char *p,
    ngx_http_iothub_twin_filter_window_t *w)
{
    w->base = p;
    w->quote = 0;
    w->stop = 0;

    ngx_http_iothub_twin_filter_bits(p, w, 0);
    ngx_http_iothub_twin_filter_bits(p, w, 16);
    ngx_http_iothub_twin_filter_bits(p, w, 32);
    ngx_http_iothub_twin_filter_bits(p, w, 48);
}


/* the bits of the 16 bytes at p + i */

static NGX_HTTP_IOTHUB_TWIN_FILTER_HOT void
ngx_http_iothub_twin_filter_bits(const unsigned char *p,
    ngx_http_iothub_twin_filter_window_t *w, unsigned i)
{
    __m128i  x;

    x = _mm_loadu_si128((const __m128i *) (p + i));

    w->quote |= (uint64_t) (unsigned) _mm_movemask_epi8(
                    _mm_cmpeq_epi8(x, _mm_set1_epi8('"'))) << i;

    /* a signed compare catches < 0x20 and >= 0x80 */
    w->stop |= (uint64_t) (unsigned) _mm_movemask_epi8(_mm_or_si128(
                   _mm_cmpeq_epi8(x, _mm_set1_epi8('\\')),
                   _mm_cmplt_epi8(x, _mm_set1_epi8(0x20)))) << i;
}

#endif


static NGX_HTTP_IOTHUB_TWIN_FILTER_COLD const unsigned char *
ngx_http_iothub_twin_filter_string_rest(const unsigned char *p,
    const unsigned char *end)
{
    size_t    n;
    unsigned  c;
    uint32_t  cp;
#if (NGX_HTTP_IOTHUB_TWIN_FILTER_SSE2)
    int       m;
    __m128i   x, quote, bslash, low;

    quote = _mm_set1_epi8('"');
    bslash = _mm_set1_epi8('\\');
    low = _mm_set1_epi8(0x20);
#endif

    for ( ;; ) {

#if (NGX_HTTP_IOTHUB_TWIN_FILTER_SSE2)
        /* 16 bytes at a time; a signed compare catches < 0x20 and >= 0x80 */
        while (end - p >= 16) {
            x = _mm_loadu_si128((const __m128i *) p);
            m = _mm_movemask_epi8(_mm_or_si128(
                    _mm_or_si128(_mm_cmpeq_epi8(x, quote),
                                 _mm_cmpeq_epi8(x, bslash)),
                    _mm_cmplt_epi8(x, low)));

            if (m != 0) {
                p += __builtin_ctz((unsigned) m);
                goto stop;
            }

            p += 16;
        }
#endif

        while (p < end && ngx_http_iothub_twin_filter_class[*p] == 0) {
            p++;
        }

        if (p == end) {
            return NULL;
        }

#if (NGX_HTTP_IOTHUB_TWIN_FILTER_SSE2)
    stop:
#endif

        c = ngx_http_iothub_twin_filter_class[*p];

        switch (c) {

        case 1:
            return p + 1;

        case 2:
            p = ngx_http_iothub_twin_filter_escape(p, end);
            break;

        case 4:
            n = ngx_http_iothub_twin_utf8(p, end, &cp);
            p = n ? p + n : NULL;
            break;

        default:
            return NULL;
        }

        if (p == NULL) {
            return NULL;
        }
    }
}


/* p: at a backslash; a lone surrogate is refused */

static const unsigned char *
ngx_http_iothub_twin_filter_escape(const unsigned char *p,
    const unsigned char *end)
{
    unsigned  u, lo;

    if (end - p < 2) {
        return NULL;
    }

    switch (p[1]) {
    case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r':
    case 't':
        return p + 2;

    case 'u':
        break;

    default:
        return NULL;
    }

    if (end - p < 6 || ngx_http_iothub_twin_filter_hex4(p + 2, &u) != 0) {
        return NULL;
    }

    p += 6;

    if (u < 0xd800 || u > 0xdfff) {
        return p;
    }

    if (u >= 0xdc00
        || end - p < 6 || p[0] != '\\' || p[1] != 'u'
        || ngx_http_iothub_twin_filter_hex4(p + 2, &lo) != 0
        || lo < 0xdc00 || lo > 0xdfff)
    {
        return NULL;
    }

    return p + 6;
}


static int
ngx_http_iothub_twin_filter_hex4(const unsigned char *p, unsigned *u)
{
    unsigned       i, v;
    unsigned char  c;

    v = 0;

    for (i = 0; i < 4; i++) {
        c = p[i];

        if (c >= '0' && c <= '9') {
            v = (v << 4) | (unsigned) (c - '0');
            continue;
        }

        c |= 0x20;

        if (c < 'a' || c > 'f') {
            return -1;
        }

        v = (v << 4) | (unsigned) (c - 'a' + 10);
    }

    *u = v;

    return 0;
}


/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */

static const unsigned char *
ngx_http_iothub_twin_filter_number(const unsigned char *p,
    const unsigned char *end)
{
    if (*p == '-') {
        p++;
    }

    if (p == end) {
        return NULL;
    }

    if (*p == '0') {
        p++;

    } else if (*p >= '1' && *p <= '9') {
        do {
            p++;
        } while (p < end && *p >= '0' && *p <= '9');

    } else {
        return NULL;
    }

    if (p < end && *p == '.') {
        p++;

        if (p == end || *p < '0' || *p > '9') {
            return NULL;
        }

        do {
            p++;
        } while (p < end && *p >= '0' && *p <= '9');
    }

    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;

        if (p < end && (*p == '+' || *p == '-')) {
            p++;
        }

        if (p == end || *p < '0' || *p > '9') {
            return NULL;
        }

        do {
            p++;
        } while (p < end && *p >= '0' && *p <= '9');
    }

    return p;
}


static const unsigned char *
ngx_http_iothub_twin_filter_literal(const unsigned char *p,
    const unsigned char *end)
{
    size_t  left;

    left = end - p;

    switch (*p) {

    case 't':
        return (left >= 4 && memcmp(p, "true", 4) == 0) ? p + 4 : NULL;

    case 'f':
        return (left >= 5 && memcmp(p, "false", 5) == 0) ? p + 5 : NULL;

    default:
        return (left >= 4 && memcmp(p, "null", 4) == 0) ? p + 4 : NULL;
    }
}


/*
 * Checks the value at p (no whitespace before it) and returns its end;
 * room: how many containers it may open.  The open containers are bits
 * of one word, 1 for an object.  Its strings end in a window of 64 bytes
 * while they can, and compact JSON takes the short ways: a byte above ' '
 * where a token may follow is that token, with no call to skip
 * whitespace.
 */

static const unsigned char *
ngx_http_iothub_twin_filter_skip(const unsigned char *p,
    const unsigned char *end, unsigned room)
{
    unsigned                              c, depth;
    uint64_t                              objects;
    ngx_http_iothub_twin_filter_window_t  w;

    w.base = p;
    w.quote = 0;
    w.stop = 0;

    objects = 0;
    depth = 0;

value:

    /* p < end; the common kinds first, as branches, not a table jump */

    c = *p;

    if (c == '"') {
        p = ngx_http_iothub_twin_filter_string_w(p + 1, end, &w);

    } else if ((unsigned) (c - '0') < 10 || c == '-') {
        p = ngx_http_iothub_twin_filter_number(p, end);

    } else if (c == '{' || c == '[') {
        if (depth == room) {
            return NULL;
        }

        objects = (objects << 1) | (c == '{');
        depth++;

        if (++p == end) {
            return NULL;
        }

        if (*p <= ' ') {
            p = ngx_http_iothub_twin_filter_ws(p, end);

            if (p == end) {
                return NULL;
            }
        }

        if (*p == ((objects & 1) ? '}' : ']')) {
            p++;
            goto close;
        }

        if (objects & 1) {
            goto key;
        }

        goto value;

    } else {
        /* or not JSON */
        p = ngx_http_iothub_twin_filter_literal(p, end);
    }

    if (p == NULL) {
        return NULL;
    }

after:

    if (depth == 0) {
        return p;
    }

    if (p == end) {
        return NULL;
    }

    if (*p <= ' ') {
        p = ngx_http_iothub_twin_filter_ws(p, end);

        if (p == end) {
            return NULL;
        }
    }

    if (*p == ',') {
        if (++p == end) {
            return NULL;
        }

        if (*p <= ' ') {
            p = ngx_http_iothub_twin_filter_ws(p, end);

            if (p == end) {
                return NULL;
            }
        }

        if (objects & 1) {
            goto key;
        }

        goto value;
    }

    if (*p != ((objects & 1) ? '}' : ']')) {
        return NULL;
    }

    p++;

close:

    objects >>= 1;
    depth--;

    goto after;

key:

    /* p < end */

    if (*p != '"') {
        return NULL;
    }

    p = ngx_http_iothub_twin_filter_string_w(p + 1, end, &w);

    if (p == NULL || p == end) {
        return NULL;
    }

    if (*p != ':') {
        p = ngx_http_iothub_twin_filter_ws(p, end);

        if (p == end || *p != ':') {
            return NULL;
        }
    }

    if (++p == end) {
        return NULL;
    }

    if (*p <= ' ') {
        p = ngx_http_iothub_twin_filter_ws(p, end);

        if (p == end) {
            return NULL;
        }
    }

    goto value;
}
