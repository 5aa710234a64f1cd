
/*
 * The twin patch validator.
 *
 * One pass, no recursion, no allocation: an explicit stack of open
 * containers, a path buffer and a key hash table, all on the C stack.
 *
 * Duplicate keys: every open object keeps the hashes and offsets of its
 * keys, the first few inline in its stack entry, the rest in a region of a
 * table shared by all open objects (regions are stacked as objects nest, so
 * the innermost object owns the top region and may grow it).  A hash hit is
 * confirmed by decoding and comparing both keys from the input.  An object
 * whose region cannot grow any more is checked when it closes instead, by
 * rescanning it in blocks: each block of keys goes into the free part of
 * the table and the keys after it are looked up, so an object of n keys
 * costs about n / block rescans of its text (block is half the free table,
 * 2048 keys when the table is otherwise empty, 16 at worst).
 */


#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/*
 * SSE2 (always there on x86-64) scans 16 bytes at a time in the hot loops:
 * string and key bodies, numbers and whitespace runs.  The portable loops
 * below them do the rest of every input and all of it without SSE2 or with
 * NGX_HTTP_IOTHUB_TWIN_PATCH_NO_SIMD (t/unit/test_patch_scalar.c;
 * t/unit/test_patch_fast.c compares the two).
 */
#if (defined __SSE2__ && defined __GNUC__                                    \
     && !defined NGX_HTTP_IOTHUB_TWIN_PATCH_NO_SIMD)
#define NGX_HTTP_IOTHUB_TWIN_PATCH_SSE2  1
#include <emmintrin.h>
#endif

#include "ngx_http_iothub_twin_patch.h"
#include "ngx_http_iothub_twin_utf8.h"


#if (defined __STDC_VERSION__ && __STDC_VERSION__ >= 199901L)
#define NGX_HTTP_IOTHUB_TWIN_PATCH_INLINE     inline
#else
#define NGX_HTTP_IOTHUB_TWIN_PATCH_INLINE
#endif

#if (defined __GNUC__)
#define NGX_HTTP_IOTHUB_TWIN_PATCH_PRINTF(f, a)                              \
    __attribute__((format(printf, f, a)))
/* the per-token fast paths go into the loop; their rare ends stay out */
#define NGX_HTTP_IOTHUB_TWIN_PATCH_HOT                                       \
    __inline__ __attribute__((always_inline))
#define NGX_HTTP_IOTHUB_TWIN_PATCH_COLD       __attribute__((noinline))
#define ngx_http_iothub_twin_patch_likely(x)   __builtin_expect(!!(x), 1)
#define ngx_http_iothub_twin_patch_unlikely(x) __builtin_expect(!!(x), 0)
#else
#define NGX_HTTP_IOTHUB_TWIN_PATCH_PRINTF(f, a)
#define NGX_HTTP_IOTHUB_TWIN_PATCH_HOT        NGX_HTTP_IOTHUB_TWIN_PATCH_INLINE
#define NGX_HTTP_IOTHUB_TWIN_PATCH_COLD
#define ngx_http_iothub_twin_patch_likely(x)   (x)
#define ngx_http_iothub_twin_patch_unlikely(x) (x)
#endif

#define NGX_HTTP_IOTHUB_TWIN_PATCH_SMALL      8
#define NGX_HTTP_IOTHUB_TWIN_PATCH_MIN_CAP    32
#define NGX_HTTP_IOTHUB_TWIN_PATCH_FIRST_CAP  128
#define NGX_HTTP_IOTHUB_TWIN_PATCH_EXCERPT    32
#define NGX_HTTP_IOTHUB_TWIN_PATCH_HEAD       8

#define NGX_HTTP_IOTHUB_TWIN_PATCH_INT_MAX    "4503599627370495"
#define NGX_HTTP_IOTHUB_TWIN_PATCH_INT_MIN    "4503599627370496"
#define NGX_HTTP_IOTHUB_TWIN_PATCH_INT_DIGITS 16

/* 2^1024 - 2^970: the smallest decimal that strtod() rounds to infinity */
#define NGX_HTTP_IOTHUB_TWIN_PATCH_DBL_LIMIT                                  \
    "1797693134862315807937289714053034150799341327100378269361737789804"    \
    "4496829276475094664901797758720709633028641669288791094655554785194"    \
    "0402630657488671505820681908902000708383676273854845817711531764475"    \
    "7302700698555713669596228429148198608349364752927190741684443655107"    \
    "04342711559699508093042880177904174497792"
#define NGX_HTTP_IOTHUB_TWIN_PATCH_DBL_DIGITS 309

#define NGX_HTTP_IOTHUB_TWIN_PATCH_HASH_INIT  0xcbf29ce484222325ULL
#define NGX_HTTP_IOTHUB_TWIN_PATCH_HASH_MUL   0x9e3779b97f4a7c15ULL
#define NGX_HTTP_IOTHUB_TWIN_PATCH_HASH_MUL2  0xc2b2ae3d27d4eb4fULL


/* what the members or elements of an open container are */
typedef enum {
    NGX_HTTP_IOTHUB_TWIN_PATCH_C_TOP = 0,     /* the patch object */
    NGX_HTTP_IOTHUB_TWIN_PATCH_C_PROPS,       /* "properties" */
    NGX_HTTP_IOTHUB_TWIN_PATCH_C_SECTION,     /* members are written paths */
    NGX_HTTP_IOTHUB_TWIN_PATCH_C_INNER,       /* object in a section array */
    NGX_HTTP_IOTHUB_TWIN_PATCH_C_ARRAY,       /* array in a section */
    NGX_HTTP_IOTHUB_TWIN_PATCH_C_ANY_OBJ,     /* no twin rules apply */
    NGX_HTTP_IOTHUB_TWIN_PATCH_C_ANY_ARR
} ngx_http_iothub_twin_patch_kind_e;


/* what the value about to be parsed is */
typedef enum {
    NGX_HTTP_IOTHUB_TWIN_PATCH_V_TOP = 0,
    NGX_HTTP_IOTHUB_TWIN_PATCH_V_TAGS,
    NGX_HTTP_IOTHUB_TWIN_PATCH_V_PROPS,
    NGX_HTTP_IOTHUB_TWIN_PATCH_V_DESIRED,
    NGX_HTTP_IOTHUB_TWIN_PATCH_V_DEVICE_ID,
    NGX_HTTP_IOTHUB_TWIN_PATCH_V_MODULE_ID,
    NGX_HTTP_IOTHUB_TWIN_PATCH_V_ANY,
    NGX_HTTP_IOTHUB_TWIN_PATCH_V_MEMBER,      /* member of a section object */
    NGX_HTTP_IOTHUB_TWIN_PATCH_V_INNER        /* inside a section array */
} ngx_http_iothub_twin_patch_mode_e;


typedef enum {
    NGX_HTTP_IOTHUB_TWIN_PATCH_T_OBJECT = 0,
    NGX_HTTP_IOTHUB_TWIN_PATCH_T_ARRAY,
    NGX_HTTP_IOTHUB_TWIN_PATCH_T_SCALAR
} ngx_http_iothub_twin_patch_top_e;


typedef struct {
    uint32_t                              hash;     /* 0: free slot */
    uint32_t                              off;      /* the key's '"' */
} ngx_http_iothub_twin_patch_slot_t;


typedef struct {
    const unsigned char                  *start;    /* '{' or '[' */
    size_t                                path_len; /* path of this value */
    uint32_t                              nkeys;
    uint32_t                              base;     /* table region */
    uint32_t                              cap;      /* 0: keys in small */
    uint64_t                              filter;   /* hashes in small */
    unsigned                              level;    /* objects in section */
    unsigned char                         kind;
    unsigned char                         mode;     /* mode when opened */
    unsigned char                         object;
    unsigned char                         overflow; /* check at close */
    unsigned char                         key_mode; /* V_MEMBER, V_INNER */
    size_t                                key_cap;  /* path left for keys */
    ngx_http_iothub_twin_patch_slot_t
                                  small[NGX_HTTP_IOTHUB_TWIN_PATCH_SMALL];
} ngx_http_iothub_twin_patch_level_t;


typedef struct {
    uint64_t                              h;
    uint64_t                              w;        /* bytes not yet mixed */
    unsigned                              sh;       /* bits in w */
} ngx_http_iothub_twin_patch_hash_t;


typedef struct {
    size_t                                len;      /* decoded bytes */
    uint32_t                              hash;
    int                                   bad;      /* first forbidden char */
} ngx_http_iothub_twin_patch_key_t;


typedef struct {
    ngx_http_iothub_twin_patch_t         *p;
    const unsigned char                  *buf;
    const unsigned char                  *end;
    uint64_t                              basis;
    size_t                                size;     /* current section */
    size_t                                size_limit;
    size_t                               *size_out;
    size_t                                path_end;
    size_t                                path_fixed; /* not caller data */
    unsigned                              depth;
    unsigned                              top;
    uint32_t                              slot_top;
    int                                   failed;
    ngx_http_iothub_twin_patch_level_t
                               levels[NGX_HTTP_IOTHUB_TWIN_PATCH_MAX_NESTING];
    unsigned char              path[NGX_HTTP_IOTHUB_TWIN_PATCH_MAX_PATH + 8];
    ngx_http_iothub_twin_patch_slot_t
                               slots[NGX_HTTP_IOTHUB_TWIN_PATCH_SLOTS];
} ngx_http_iothub_twin_patch_state_t;


static int ngx_http_iothub_twin_patch_parse(
    ngx_http_iothub_twin_patch_state_t *st);
static int ngx_http_iothub_twin_patch_open(
    ngx_http_iothub_twin_patch_state_t *st, const unsigned char *p,
    unsigned mode);
static int ngx_http_iothub_twin_patch_close(
    ngx_http_iothub_twin_patch_state_t *st);
static const unsigned char *ngx_http_iothub_twin_patch_member(
    ngx_http_iothub_twin_patch_state_t *st,
    ngx_http_iothub_twin_patch_level_t *lv, const unsigned char *p,
    unsigned *mode);
static int ngx_http_iothub_twin_patch_section_key(
    ngx_http_iothub_twin_patch_state_t *st, const unsigned char *p,
    ngx_http_iothub_twin_patch_key_t *k);
static int ngx_http_iothub_twin_patch_top_key(
    ngx_http_iothub_twin_patch_state_t *st, const unsigned char *p,
    unsigned *mode);
static int ngx_http_iothub_twin_patch_props_key(
    ngx_http_iothub_twin_patch_state_t *st, const unsigned char *p,
    unsigned *mode);
static int ngx_http_iothub_twin_patch_not_scalar(
    ngx_http_iothub_twin_patch_state_t *st, const unsigned char *p,
    unsigned mode);
static const unsigned char *ngx_http_iothub_twin_patch_string_value(
    ngx_http_iothub_twin_patch_state_t *st, const unsigned char *p,
    unsigned mode);
static const unsigned char *ngx_http_iothub_twin_patch_id_value(
    ngx_http_iothub_twin_patch_state_t *st, const unsigned char *p,
    unsigned mode);
static NGX_HTTP_IOTHUB_TWIN_PATCH_HOT const unsigned char *
    ngx_http_iothub_twin_patch_number(
    ngx_http_iothub_twin_patch_state_t *st, const unsigned char *p,
    unsigned mode);
static NGX_HTTP_IOTHUB_TWIN_PATCH_COLD const unsigned char *
    ngx_http_iothub_twin_patch_number_slow(
    ngx_http_iothub_twin_patch_state_t *st, const unsigned char *p,
    unsigned mode);
static int ngx_http_iothub_twin_patch_overflows(const unsigned char *ip,
    size_t ilen, const unsigned char *fp, size_t flen, long exp);
static const unsigned char *ngx_http_iothub_twin_patch_literal(
    ngx_http_iothub_twin_patch_state_t *st, const unsigned char *p,
    unsigned mode);
static NGX_HTTP_IOTHUB_TWIN_PATCH_HOT int
    ngx_http_iothub_twin_patch_leaf(
    ngx_http_iothub_twin_patch_state_t *st, const unsigned char *at,
    unsigned mode, size_t size, int is_delete);
static NGX_HTTP_IOTHUB_TWIN_PATCH_HOT int
    ngx_http_iothub_twin_patch_add_size(
    ngx_http_iothub_twin_patch_state_t *st, const unsigned char *at,
    size_t n);
static NGX_HTTP_IOTHUB_TWIN_PATCH_COLD int
    ngx_http_iothub_twin_patch_too_big(
    ngx_http_iothub_twin_patch_state_t *st, const unsigned char *at);
static NGX_HTTP_IOTHUB_TWIN_PATCH_HOT int
    ngx_http_iothub_twin_patch_emit(
    ngx_http_iothub_twin_patch_state_t *st, const unsigned char *at,
    int is_delete);
static NGX_HTTP_IOTHUB_TWIN_PATCH_HOT const unsigned char *
    ngx_http_iothub_twin_patch_scan_string(
    ngx_http_iothub_twin_patch_state_t *st, const unsigned char *p,
    size_t *len);
static NGX_HTTP_IOTHUB_TWIN_PATCH_COLD const unsigned char *
    ngx_http_iothub_twin_patch_scan_string_rest(
    ngx_http_iothub_twin_patch_state_t *st, const unsigned char *start,
    const unsigned char *p, size_t *len);
static NGX_HTTP_IOTHUB_TWIN_PATCH_HOT const unsigned char *
    ngx_http_iothub_twin_patch_scan_key(
    ngx_http_iothub_twin_patch_state_t *st, const unsigned char *p,
    unsigned char *dst, size_t cap, ngx_http_iothub_twin_patch_key_t *k);
static NGX_HTTP_IOTHUB_TWIN_PATCH_COLD const unsigned char *
    ngx_http_iothub_twin_patch_scan_key_long(
    ngx_http_iothub_twin_patch_state_t *st, const unsigned char *s,
    unsigned char *dst, size_t cap, ngx_http_iothub_twin_patch_key_t *k);
static const unsigned char *ngx_http_iothub_twin_patch_scan_key_slow(
    ngx_http_iothub_twin_patch_state_t *st, const unsigned char *s,
    unsigned char *dst, size_t cap, ngx_http_iothub_twin_patch_key_t *k);
static NGX_HTTP_IOTHUB_TWIN_PATCH_INLINE uint32_t
    ngx_http_iothub_twin_patch_hash_final(
    ngx_http_iothub_twin_patch_hash_t *hs, size_t len);
static NGX_HTTP_IOTHUB_TWIN_PATCH_INLINE void
    ngx_http_iothub_twin_patch_hash_run(
    ngx_http_iothub_twin_patch_hash_t *hs, const unsigned char *p, size_t n,
    const unsigned char *end);
static NGX_HTTP_IOTHUB_TWIN_PATCH_INLINE uint64_t
    ngx_http_iothub_twin_patch_load64(const unsigned char *p);
static const unsigned char *ngx_http_iothub_twin_patch_escape(
    ngx_http_iothub_twin_patch_state_t *st, const unsigned char *p,
    uint32_t *cp);
static const unsigned char *ngx_http_iothub_twin_patch_unescape(
    const unsigned char *p, const unsigned char *end, uint32_t *cp,
    const char **err);
static int ngx_http_iothub_twin_patch_hex4(const unsigned char *p,
    uint32_t *u);
static size_t ngx_http_iothub_twin_patch_encode(uint32_t cp,
    unsigned char *out);
static const unsigned char *ngx_http_iothub_twin_patch_unit(
    const unsigned char *p, const unsigned char *end, unsigned char *out,
    size_t *n);
static int ngx_http_iothub_twin_patch_keys_equal(
    ngx_http_iothub_twin_patch_state_t *st, const unsigned char *a,
    const unsigned char *b);
static NGX_HTTP_IOTHUB_TWIN_PATCH_INLINE int
    ngx_http_iothub_twin_patch_insert(ngx_http_iothub_twin_patch_state_t *st,
    ngx_http_iothub_twin_patch_level_t *lv, const unsigned char *key,
    uint32_t hash);
static int ngx_http_iothub_twin_patch_insert_slow(
    ngx_http_iothub_twin_patch_state_t *st,
    ngx_http_iothub_twin_patch_level_t *lv, const unsigned char *key,
    uint32_t hash);
static int ngx_http_iothub_twin_patch_probe(
    ngx_http_iothub_twin_patch_state_t *st,
    ngx_http_iothub_twin_patch_slot_t *slots, uint32_t cap,
    const unsigned char *key, uint32_t hash, int insert);
static int ngx_http_iothub_twin_patch_grow(
    ngx_http_iothub_twin_patch_state_t *st,
    ngx_http_iothub_twin_patch_level_t *lv);
static int ngx_http_iothub_twin_patch_deferred(
    ngx_http_iothub_twin_patch_state_t *st,
    ngx_http_iothub_twin_patch_level_t *lv);
static const unsigned char *ngx_http_iothub_twin_patch_next_key(
    const unsigned char *p, const unsigned char *end);
static const unsigned char *ngx_http_iothub_twin_patch_skip_member(
    ngx_http_iothub_twin_patch_state_t *st, const unsigned char *p);
static const unsigned char *ngx_http_iothub_twin_patch_skip_string(
    const unsigned char *p, const unsigned char *end);
static void ngx_http_iothub_twin_patch_key_path(
    ngx_http_iothub_twin_patch_state_t *st,
    ngx_http_iothub_twin_patch_level_t *lv, const unsigned char *key);
static NGX_HTTP_IOTHUB_TWIN_PATCH_INLINE const unsigned char *
    ngx_http_iothub_twin_patch_ws(const unsigned char *p,
    const unsigned char *end);
#if (NGX_HTTP_IOTHUB_TWIN_PATCH_SSE2)
static NGX_HTTP_IOTHUB_TWIN_PATCH_INLINE unsigned
    ngx_http_iothub_twin_patch_stop16(const unsigned char *p);
static NGX_HTTP_IOTHUB_TWIN_PATCH_INLINE unsigned
    ngx_http_iothub_twin_patch_key_stop16(const unsigned char *p);
static NGX_HTTP_IOTHUB_TWIN_PATCH_INLINE unsigned
    ngx_http_iothub_twin_patch_key_stop(__m128i v);
#endif
static void ngx_http_iothub_twin_patch_set_path(
    ngx_http_iothub_twin_patch_state_t *st, const char *path);
static int ngx_http_iothub_twin_patch_syntax(
    ngx_http_iothub_twin_patch_state_t *st, const unsigned char *at,
    const char *rule);
static int ngx_http_iothub_twin_patch_fail(
    ngx_http_iothub_twin_patch_state_t *st,
    ngx_http_iothub_twin_patch_reason_e reason,
    ngx_http_iothub_twin_patch_rule_e rule, const unsigned char *at,
    const char *fmt, ...) NGX_HTTP_IOTHUB_TWIN_PATCH_PRINTF(5, 6);
static size_t ngx_http_iothub_twin_patch_excerpt(char *dst,
    const unsigned char *src, size_t n);


/* read-only twin fields: accepted at the top level and ignored */
static const char  *ngx_http_iothub_twin_patch_ignored[] = {
    "etag",
    "version",
    "status",
    "statusReason",
    "statusUpdateTime",
    "connectionState",
    "lastActivityTime",
    "cloudToDeviceMessageCount",
    "authenticationType",
    "x509Thumbprint",
    "capabilities",
    "deviceEtag",
    "modelId",
    "deviceScope",
    "parentScopes",
    "managedBy",
    "configurations",
    NULL
};


/*
 * String bytes that end the fast loop: '"', '\', controls and non-ASCII
 * (1), and, in keys only, '.', '$', ' ' and DEL (2).
 */
static const unsigned char  ngx_http_iothub_twin_patch_class[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,   /* 0x00 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,   /* 0x10 */
    2, 0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0,   /* ' ' '"' '$' '.' */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,   /* 0x30 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,   /* 0x40 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,   /* '\' */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,   /* 0x60 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,   /* DEL */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,   /* 0x80 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1
};


/* the short names of the rule codes, in their order: metric labels */
static const char  *ngx_http_iothub_twin_patch_rule_names[] = {
    "other",
    "key_dollar",
    "key_dot",
    "key_space",
    "key_control",
    "key_empty",
    "key_length",
    "hub_maintained",
    "string_length",
    "integer_range",
    "number_range",
    "null_in_array",
    "depth",
    "size",
    "reported",
    "unknown_field",
    "id_mismatch",
    "duplicate_key",
    "nul",
    "not_object",
    "syntax"
};


const char *
ngx_http_iothub_twin_patch_rule_name(ngx_http_iothub_twin_patch_rule_e rule)
{
    if ((unsigned) rule >= NGX_HTTP_IOTHUB_TWIN_PATCH_RULES) {
        rule = NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_NONE;
    }

    return ngx_http_iothub_twin_patch_rule_names[rule];
}


void
ngx_http_iothub_twin_patch_default_limits(
    ngx_http_iothub_twin_patch_limits_t *lim)
{
    lim->max_key_len = NGX_HTTP_IOTHUB_TWIN_PATCH_KEY_LEN;
    lim->max_string_len = NGX_HTTP_IOTHUB_TWIN_PATCH_STRING_LEN;
    lim->max_depth = NGX_HTTP_IOTHUB_TWIN_PATCH_DEPTH;
    lim->max_tags_size = NGX_HTTP_IOTHUB_TWIN_PATCH_TAGS_SIZE;
    lim->max_desired_size = NGX_HTTP_IOTHUB_TWIN_PATCH_DESIRED_SIZE;
}


ngx_http_iothub_twin_patch_rc_e
ngx_http_iothub_twin_patch_validate(ngx_http_iothub_twin_patch_t *p,
    const unsigned char *buf, size_t len)
{
    int                                  rc;
    ngx_http_iothub_twin_patch_state_t   st;

    p->tags_size = 0;
    p->desired_size = 0;
    p->npaths = 0;
    p->error_offset = 0;
    p->reason = NGX_HTTP_IOTHUB_TWIN_PATCH_R_NONE;
    p->rule = NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_NONE;
    p->error[0] = '\0';

    if (buf == NULL) {
        /* an empty body may come without a buffer */
        buf = (const unsigned char *) "";
        len = 0;
    }

    st.p = p;
    st.buf = buf;
    st.end = buf + len;
    st.basis = NGX_HTTP_IOTHUB_TWIN_PATCH_HASH_INIT
               ^ ((uint64_t) p->hash_seed << 17);
    st.size = 0;
    st.size_limit = 0;
    st.size_out = NULL;
    st.path_end = 0;
    st.path_fixed = 0;
    st.depth = 0;
    st.top = NGX_HTTP_IOTHUB_TWIN_PATCH_T_OBJECT;
    st.slot_top = 0;
    st.failed = 0;

    /* key offsets are kept in 32 bits */
    if ((uint64_t) len > 0xffffffffULL) {
        (void) ngx_http_iothub_twin_patch_fail(&st,
                                    NGX_HTTP_IOTHUB_TWIN_PATCH_R_RULE,
                                    NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_NONE,
                                    buf, "patch too large");
        return NGX_HTTP_IOTHUB_TWIN_PATCH_INVALID;
    }

    rc = ngx_http_iothub_twin_patch_parse(&st);

    if (st.size_out) {
        *st.size_out = st.size;
    }

    if (rc == 0) {
        return NGX_HTTP_IOTHUB_TWIN_PATCH_OK;
    }

    return (p->reason == NGX_HTTP_IOTHUB_TWIN_PATCH_R_SYNTAX)
           ? NGX_HTTP_IOTHUB_TWIN_PATCH_SYNTAX
           : NGX_HTTP_IOTHUB_TWIN_PATCH_INVALID;
}


static int
ngx_http_iothub_twin_patch_parse(ngx_http_iothub_twin_patch_state_t *st)
{
    unsigned                             mode;
    const unsigned char                 *p, *end;
    ngx_http_iothub_twin_patch_level_t  *lv;

    p = st->buf;
    end = st->end;
    mode = NGX_HTTP_IOTHUB_TWIN_PATCH_V_TOP;
    lv = NULL;

value:

    p = ngx_http_iothub_twin_patch_ws(p, end);

    if (p == end) {
        return ngx_http_iothub_twin_patch_syntax(st, p,
                                                 "unexpected end of input");
    }

dispatch:

    /* p < end, at a byte that is not whitespace */

    switch (*p) {

    case '"':
        p = ngx_http_iothub_twin_patch_string_value(st, p, mode);
        if (p == NULL) {
            return -1;
        }
        goto next;

    case '{':
    case '[':
        if (ngx_http_iothub_twin_patch_open(st, p, mode) != 0) {
            return -1;
        }

        lv = &st->levels[st->depth - 1];

        p = ngx_http_iothub_twin_patch_ws(p + 1, end);

        if (p == end) {
            return ngx_http_iothub_twin_patch_syntax(st, p,
                                                 "unexpected end of input");
        }

        if (*p == (lv->object ? '}' : ']')) {
            p++;
            goto close;
        }

        if (lv->object) {
            goto key;
        }

        mode = (lv->kind == NGX_HTTP_IOTHUB_TWIN_PATCH_C_ARRAY)
               ? NGX_HTTP_IOTHUB_TWIN_PATCH_V_INNER
               : NGX_HTTP_IOTHUB_TWIN_PATCH_V_ANY;
        goto value;

    case 't':
    case 'f':
    case 'n':
        p = ngx_http_iothub_twin_patch_literal(st, p, mode);
        if (p == NULL) {
            return -1;
        }
        goto next;

    default:
        if (*p == '-' || (*p >= '0' && *p <= '9')) {
            p = ngx_http_iothub_twin_patch_number(st, p, mode);
            if (p == NULL) {
                return -1;
            }
            goto next;
        }

        return ngx_http_iothub_twin_patch_syntax(st, p, "expected a value");
    }

key:

    /* p < end, at the first byte where a member is expected */

    if (*p != '"') {
        return ngx_http_iothub_twin_patch_syntax(st, p,
                                                 "expected a string key");
    }

member:

    p = ngx_http_iothub_twin_patch_member(st, lv, p, &mode);
    if (p == NULL) {
        return -1;
    }

    /* compact JSON: the ':' and the value right after the key */

    if (ngx_http_iothub_twin_patch_likely(end - p >= 2 && p[0] == ':'
                                          && p[1] > ' '))
    {
        p++;
        goto dispatch;
    }

    p = ngx_http_iothub_twin_patch_ws(p, end);

    if (p == end || *p != ':') {
        return ngx_http_iothub_twin_patch_syntax(st, p, "expected ':'");
    }

    p++;
    goto value;

next:

    /* lv is the innermost open container, NULL after the top value */

    if (lv == NULL) {
        goto done;
    }

    /* compact JSON: ',' and the next key or element right after it */

    if (ngx_http_iothub_twin_patch_likely(end - p >= 2 && p[0] == ',')) {

        if (lv->object) {
            if (p[1] == '"') {
                p++;
                goto member;
            }

        } else if (p[1] > ' ') {
            p++;
            mode = (lv->kind == NGX_HTTP_IOTHUB_TWIN_PATCH_C_ARRAY)
                   ? NGX_HTTP_IOTHUB_TWIN_PATCH_V_INNER
                   : NGX_HTTP_IOTHUB_TWIN_PATCH_V_ANY;
            goto dispatch;
        }
    }

    p = ngx_http_iothub_twin_patch_ws(p, end);

    if (p == end) {
        return ngx_http_iothub_twin_patch_syntax(st, p,
                                                 "unexpected end of input");
    }

    if (*p == ',') {
        p = ngx_http_iothub_twin_patch_ws(p + 1, end);

        if (p == end) {
            return ngx_http_iothub_twin_patch_syntax(st, p,
                                                 "unexpected end of input");
        }

        if (lv->object) {
            goto key;
        }

        mode = (lv->kind == NGX_HTTP_IOTHUB_TWIN_PATCH_C_ARRAY)
               ? NGX_HTTP_IOTHUB_TWIN_PATCH_V_INNER
               : NGX_HTTP_IOTHUB_TWIN_PATCH_V_ANY;
        goto value;
    }

    if (*p == (lv->object ? '}' : ']')) {
        p++;
        goto close;
    }

    return ngx_http_iothub_twin_patch_syntax(st, p,
                                             lv->object
                                             ? "expected ',' or '}'"
                                             : "expected ',' or ']'");

close:

    if (ngx_http_iothub_twin_patch_close(st) != 0) {
        return -1;
    }

    lv = st->depth ? &st->levels[st->depth - 1] : NULL;

    goto next;

done:

    p = ngx_http_iothub_twin_patch_ws(p, end);

    if (p != end) {
        return ngx_http_iothub_twin_patch_syntax(st, p,
                                    "unexpected data after the JSON value");
    }

    if (st->top == NGX_HTTP_IOTHUB_TWIN_PATCH_T_ARRAY) {
        st->path_end = 0;
        return ngx_http_iothub_twin_patch_fail(st,
                                    NGX_HTTP_IOTHUB_TWIN_PATCH_R_TOP_ARRAY,
                                    NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_NOT_OBJECT,
                                    st->buf, "patch must be a JSON object");
    }

    if (st->top == NGX_HTTP_IOTHUB_TWIN_PATCH_T_SCALAR) {
        st->path_end = 0;
        return ngx_http_iothub_twin_patch_fail(st,
                                    NGX_HTTP_IOTHUB_TWIN_PATCH_R_TOP_SCALAR,
                                    NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_NOT_OBJECT,
                                    st->buf, "patch must be a JSON object");
    }

    return 0;
}


static int
ngx_http_iothub_twin_patch_open(ngx_http_iothub_twin_patch_state_t *st,
    const unsigned char *p, unsigned mode)
{
    int                                  object;
    unsigned                             kind, level;
    ngx_http_iothub_twin_patch_level_t  *lv, *parent;

    object = (*p == '{');
    parent = st->depth ? &st->levels[st->depth - 1] : NULL;
    level = parent ? parent->level : 0;

    switch (mode) {

    case NGX_HTTP_IOTHUB_TWIN_PATCH_V_TOP:
        if (object && !st->p->syntax_only) {
            kind = NGX_HTTP_IOTHUB_TWIN_PATCH_C_TOP;

        } else {
            kind = object ? NGX_HTTP_IOTHUB_TWIN_PATCH_C_ANY_OBJ
                          : NGX_HTTP_IOTHUB_TWIN_PATCH_C_ANY_ARR;
        }

        st->top = object ? NGX_HTTP_IOTHUB_TWIN_PATCH_T_OBJECT
                         : NGX_HTTP_IOTHUB_TWIN_PATCH_T_ARRAY;
        break;

    case NGX_HTTP_IOTHUB_TWIN_PATCH_V_TAGS:
    case NGX_HTTP_IOTHUB_TWIN_PATCH_V_DESIRED:
    case NGX_HTTP_IOTHUB_TWIN_PATCH_V_PROPS:
        if (!object) {
            return ngx_http_iothub_twin_patch_not_scalar(st, p, mode);
        }

        if (mode == NGX_HTTP_IOTHUB_TWIN_PATCH_V_PROPS) {
            kind = NGX_HTTP_IOTHUB_TWIN_PATCH_C_PROPS;
            break;
        }

        /* the hub counts the section object as level 0 */
        kind = NGX_HTTP_IOTHUB_TWIN_PATCH_C_SECTION;
        level = 0;

        st->size = 0;

        if (mode == NGX_HTTP_IOTHUB_TWIN_PATCH_V_TAGS) {
            st->size_limit = st->p->limits.max_tags_size;
            st->size_out = &st->p->tags_size;

        } else {
            st->size_limit = st->p->limits.max_desired_size;
            st->size_out = &st->p->desired_size;
        }

        break;

    case NGX_HTTP_IOTHUB_TWIN_PATCH_V_DEVICE_ID:
    case NGX_HTTP_IOTHUB_TWIN_PATCH_V_MODULE_ID:
        return ngx_http_iothub_twin_patch_not_scalar(st, p, mode);

    case NGX_HTTP_IOTHUB_TWIN_PATCH_V_MEMBER:
    case NGX_HTTP_IOTHUB_TWIN_PATCH_V_INNER:
        if (!object) {
            kind = NGX_HTTP_IOTHUB_TWIN_PATCH_C_ARRAY;
            break;
        }

        kind = (mode == NGX_HTTP_IOTHUB_TWIN_PATCH_V_MEMBER)
               ? NGX_HTTP_IOTHUB_TWIN_PATCH_C_SECTION
               : NGX_HTTP_IOTHUB_TWIN_PATCH_C_INNER;

        if (++level > st->p->limits.max_depth) {
            return ngx_http_iothub_twin_patch_fail(st,
                                    NGX_HTTP_IOTHUB_TWIN_PATCH_R_RULE,
                                    NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_DEPTH,
                                    p, "more than %u levels of objects",
                                    st->p->limits.max_depth);
        }

        break;

    default: /* NGX_HTTP_IOTHUB_TWIN_PATCH_V_ANY */
        kind = object ? NGX_HTTP_IOTHUB_TWIN_PATCH_C_ANY_OBJ
                      : NGX_HTTP_IOTHUB_TWIN_PATCH_C_ANY_ARR;
        break;
    }

    if (st->depth == NGX_HTTP_IOTHUB_TWIN_PATCH_MAX_NESTING) {
        return ngx_http_iothub_twin_patch_fail(st,
                                    NGX_HTTP_IOTHUB_TWIN_PATCH_R_NESTING,
                                    NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_NONE,
                                    p, "nesting deeper than %d levels",
                                    NGX_HTTP_IOTHUB_TWIN_PATCH_MAX_NESTING);
    }

    lv = &st->levels[st->depth++];

    lv->start = p;
    lv->path_len = st->path_end;
    lv->nkeys = 0;
    lv->cap = 0;
    lv->filter = 0;
    lv->level = level;
    lv->kind = (unsigned char) kind;
    lv->mode = (unsigned char) mode;
    lv->object = (unsigned char) object;
    lv->overflow = 0;
    lv->key_cap = (st->path_end < NGX_HTTP_IOTHUB_TWIN_PATCH_MAX_PATH)
                  ? NGX_HTTP_IOTHUB_TWIN_PATCH_MAX_PATH - st->path_end - 1 : 0;

    /* 0: the keys are not written paths */
    lv->key_mode = (kind == NGX_HTTP_IOTHUB_TWIN_PATCH_C_SECTION)
                   ? NGX_HTTP_IOTHUB_TWIN_PATCH_V_MEMBER
                   : (kind == NGX_HTTP_IOTHUB_TWIN_PATCH_C_INNER)
                     ? NGX_HTTP_IOTHUB_TWIN_PATCH_V_INNER : 0;

    return 0;
}


static int
ngx_http_iothub_twin_patch_close(ngx_http_iothub_twin_patch_state_t *st)
{
    ngx_http_iothub_twin_patch_level_t  *lv;

    lv = &st->levels[st->depth - 1];

    if (lv->overflow && ngx_http_iothub_twin_patch_deferred(st, lv) != 0) {
        return -1;
    }

    if (lv->cap) {
        st->slot_top = lv->base;
    }

    st->depth--;
    st->path_end = lv->path_len;

    switch (lv->mode) {

    case NGX_HTTP_IOTHUB_TWIN_PATCH_V_MEMBER:

        /* an array or an empty object is written as a whole */

        if (!lv->object || lv->nkeys == 0) {
            return ngx_http_iothub_twin_patch_emit(st, lv->start, 0);
        }

        break;

    case NGX_HTTP_IOTHUB_TWIN_PATCH_V_TAGS:
    case NGX_HTTP_IOTHUB_TWIN_PATCH_V_DESIRED:
        *st->size_out = st->size;
        st->size_out = NULL;
        break;

    default:
        break;
    }

    return 0;
}


static const unsigned char *
ngx_http_iothub_twin_patch_member(ngx_http_iothub_twin_patch_state_t *st,
    ngx_http_iothub_twin_patch_level_t *lv, const unsigned char *p,
    unsigned *mode)
{
    size_t                             cap;
    const unsigned char               *q;
    ngx_http_iothub_twin_patch_key_t   k;

    /* the key is decoded after the path: a failure in it names the object */

    st->path_end = lv->path_len;
    cap = lv->key_cap;

    if (ngx_http_iothub_twin_patch_likely(lv->key_mode)) {

        /* a section object or an object in a section array */

        st->path[lv->path_len] = '.';

        q = ngx_http_iothub_twin_patch_scan_key(st, p,
                                                st->path + lv->path_len + 1,
                                                cap, &k);
        if (q == NULL) {
            return NULL;
        }

        st->path_end = lv->path_len + 1 + (k.len < cap ? k.len : cap);

        if (ngx_http_iothub_twin_patch_insert(st, lv, p, k.hash) != 0) {
            return NULL;
        }

        /* a plain key of 1 to max_key_len bytes that fits the path */

        if (ngx_http_iothub_twin_patch_likely(
                k.bad == 0 && k.len - 1 < st->p->limits.max_key_len
                && k.len <= cap))
        {
            if (ngx_http_iothub_twin_patch_add_size(st, p, k.len) != 0) {
                return NULL;
            }

        } else if (ngx_http_iothub_twin_patch_section_key(st, p, &k) != 0) {
            return NULL;
        }

        *mode = lv->key_mode;
        return q;
    }

    switch (lv->kind) {

    case NGX_HTTP_IOTHUB_TWIN_PATCH_C_TOP:

        q = ngx_http_iothub_twin_patch_scan_key(st, p, st->path,
                                    NGX_HTTP_IOTHUB_TWIN_PATCH_MAX_PATH, &k);
        if (q == NULL) {
            return NULL;
        }

        st->path_fixed = 0;
        st->path_end = k.len < NGX_HTTP_IOTHUB_TWIN_PATCH_MAX_PATH
                       ? k.len : NGX_HTTP_IOTHUB_TWIN_PATCH_MAX_PATH;

        if (ngx_http_iothub_twin_patch_insert(st, lv, p, k.hash) != 0
            || ngx_http_iothub_twin_patch_top_key(st, p, mode) != 0)
        {
            return NULL;
        }

        return q;

    case NGX_HTTP_IOTHUB_TWIN_PATCH_C_PROPS:

        st->path[lv->path_len] = '.';

        q = ngx_http_iothub_twin_patch_scan_key(st, p,
                                                st->path + lv->path_len + 1,
                                                cap, &k);
        if (q == NULL) {
            return NULL;
        }

        st->path_fixed = lv->path_len + 1;
        st->path_end = lv->path_len + 1
                       + (k.len < NGX_HTTP_IOTHUB_TWIN_PATCH_EXCERPT
                          ? k.len : NGX_HTTP_IOTHUB_TWIN_PATCH_EXCERPT);

        if (ngx_http_iothub_twin_patch_insert(st, lv, p, k.hash) != 0
            || ngx_http_iothub_twin_patch_props_key(st, p, mode) != 0)
        {
            return NULL;
        }

        return q;

    default: /* NGX_HTTP_IOTHUB_TWIN_PATCH_C_ANY_OBJ */

        q = ngx_http_iothub_twin_patch_scan_key(st, p, NULL, 0, &k);
        if (q == NULL) {
            return NULL;
        }

        if (ngx_http_iothub_twin_patch_insert(st, lv, p, k.hash) != 0) {
            return NULL;
        }

        *mode = NGX_HTTP_IOTHUB_TWIN_PATCH_V_ANY;
        return q;
    }
}


static int
ngx_http_iothub_twin_patch_section_key(ngx_http_iothub_twin_patch_state_t *st,
    const unsigned char *p, ngx_http_iothub_twin_patch_key_t *k)
{
    size_t                               cap, klen;
    const unsigned char                 *key;
    ngx_http_iothub_twin_patch_level_t  *lv;

    lv = &st->levels[st->depth - 1];
    key = st->path + lv->path_len + 1;
    cap = (lv->path_len < NGX_HTTP_IOTHUB_TWIN_PATCH_MAX_PATH)
          ? NGX_HTTP_IOTHUB_TWIN_PATCH_MAX_PATH - lv->path_len - 1 : 0;
    klen = k->len < cap ? k->len : cap;

    if (k->len == 0) {
        return ngx_http_iothub_twin_patch_fail(st,
                                    NGX_HTTP_IOTHUB_TWIN_PATCH_R_RULE,
                                    NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_KEY_EMPTY,
                                    p, "key is empty");
    }

    if (k->len > st->p->limits.max_key_len) {
        return ngx_http_iothub_twin_patch_fail(st,
                                    NGX_HTTP_IOTHUB_TWIN_PATCH_R_RULE,
                                    NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_KEY_LENGTH,
                                    p, "key longer than %zu bytes",
                                    st->p->limits.max_key_len);
    }

    if (k->len > cap) {
        return ngx_http_iothub_twin_patch_fail(st,
                                    NGX_HTTP_IOTHUB_TWIN_PATCH_R_RULE,
                                    NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_NONE,
                                    p, "path too long");
    }

    switch (k->bad) {

    case 0:
        break;

    case '$':
        if ((klen == 9 && memcmp(key, "$metadata", 9) == 0)
            || (klen == 8 && memcmp(key, "$version", 8) == 0))
        {
            return ngx_http_iothub_twin_patch_fail(st,
                                NGX_HTTP_IOTHUB_TWIN_PATCH_R_RULE,
                                NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_HUB_MAINTAINED,
                                p, "is maintained by the hub");
        }

        return ngx_http_iothub_twin_patch_fail(st,
                                    NGX_HTTP_IOTHUB_TWIN_PATCH_R_RULE,
                                    NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_KEY_DOLLAR,
                                    p, "key contains '$'");

    case '.':
        return ngx_http_iothub_twin_patch_fail(st,
                                    NGX_HTTP_IOTHUB_TWIN_PATCH_R_RULE,
                                    NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_KEY_DOT,
                                    p, "key contains '.'");

    case ' ':
        return ngx_http_iothub_twin_patch_fail(st,
                                    NGX_HTTP_IOTHUB_TWIN_PATCH_R_RULE,
                                    NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_KEY_SPACE,
                                    p, "key contains a space");

    default:
        return ngx_http_iothub_twin_patch_fail(st,
                                   NGX_HTTP_IOTHUB_TWIN_PATCH_R_RULE,
                                   NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_KEY_CONTROL,
                                   p, "key contains a control character");
    }

    return ngx_http_iothub_twin_patch_add_size(st, p, k->len);
}


static int
ngx_http_iothub_twin_patch_top_key(ngx_http_iothub_twin_patch_state_t *st,
    const unsigned char *p, unsigned *mode)
{
    size_t        n;
    const char  **name;

    n = st->path_end;

#define ngx_http_iothub_twin_patch_is(s)                                     \
    (n == sizeof(s) - 1 && memcmp(st->path, s, sizeof(s) - 1) == 0)

    if (ngx_http_iothub_twin_patch_is("tags")) {
        *mode = NGX_HTTP_IOTHUB_TWIN_PATCH_V_TAGS;

    } else if (ngx_http_iothub_twin_patch_is("properties")) {
        *mode = NGX_HTTP_IOTHUB_TWIN_PATCH_V_PROPS;

    } else if (ngx_http_iothub_twin_patch_is("deviceId")) {
        *mode = NGX_HTTP_IOTHUB_TWIN_PATCH_V_DEVICE_ID;

    } else if (ngx_http_iothub_twin_patch_is("moduleId")) {
        *mode = NGX_HTTP_IOTHUB_TWIN_PATCH_V_MODULE_ID;

    } else {
        for (name = ngx_http_iothub_twin_patch_ignored; *name; name++) {
            if (n == strlen(*name) && memcmp(st->path, *name, n) == 0) {
                break;
            }
        }

        if (*name == NULL) {
            if (n > NGX_HTTP_IOTHUB_TWIN_PATCH_EXCERPT) {
                st->path_end = NGX_HTTP_IOTHUB_TWIN_PATCH_EXCERPT;
            }

            return ngx_http_iothub_twin_patch_fail(st,
                                 NGX_HTTP_IOTHUB_TWIN_PATCH_R_RULE,
                                 NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_UNKNOWN_FIELD,
                                 p, "unknown twin field");
        }

        *mode = NGX_HTTP_IOTHUB_TWIN_PATCH_V_ANY;
    }

#undef ngx_http_iothub_twin_patch_is

    st->path_fixed = n;

    return 0;
}


static int
ngx_http_iothub_twin_patch_props_key(ngx_http_iothub_twin_patch_state_t *st,
    const unsigned char *p, unsigned *mode)
{
    size_t                n;
    const unsigned char  *key;

    key = st->path + st->path_fixed;
    n = st->path_end - st->path_fixed;

    if (n == 7 && memcmp(key, "desired", 7) == 0) {
        st->path_fixed = st->path_end;
        *mode = NGX_HTTP_IOTHUB_TWIN_PATCH_V_DESIRED;
        return 0;
    }

    if (n == 8 && memcmp(key, "reported", 8) == 0) {
        st->path_fixed = st->path_end;
        return ngx_http_iothub_twin_patch_fail(st,
                      NGX_HTTP_IOTHUB_TWIN_PATCH_R_RULE,
                      NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_REPORTED,
                      p, "the service side may not write reported properties");
    }

    return ngx_http_iothub_twin_patch_fail(st,
                      NGX_HTTP_IOTHUB_TWIN_PATCH_R_RULE,
                      NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_NONE,
                      p, "only desired properties may be written");
}


static int
ngx_http_iothub_twin_patch_not_scalar(ngx_http_iothub_twin_patch_state_t *st,
    const unsigned char *p, unsigned mode)
{
    if (mode == NGX_HTTP_IOTHUB_TWIN_PATCH_V_DEVICE_ID
        || mode == NGX_HTTP_IOTHUB_TWIN_PATCH_V_MODULE_ID)
    {
        return ngx_http_iothub_twin_patch_fail(st,
                                    NGX_HTTP_IOTHUB_TWIN_PATCH_R_RULE,
                                    NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_NONE,
                                    p, "must be a string");
    }

    return ngx_http_iothub_twin_patch_fail(st,
                                    NGX_HTTP_IOTHUB_TWIN_PATCH_R_RULE,
                                    NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_NOT_OBJECT,
                                    p, "must be a JSON object");
}


static const unsigned char *
ngx_http_iothub_twin_patch_string_value(
    ngx_http_iothub_twin_patch_state_t *st, const unsigned char *p,
    unsigned mode)
{
    size_t                len;
    const unsigned char  *q;

    switch (mode) {

    case NGX_HTTP_IOTHUB_TWIN_PATCH_V_ANY:
        return ngx_http_iothub_twin_patch_scan_string(st, p, &len);

    case NGX_HTTP_IOTHUB_TWIN_PATCH_V_MEMBER:
    case NGX_HTTP_IOTHUB_TWIN_PATCH_V_INNER:
        q = ngx_http_iothub_twin_patch_scan_string(st, p, &len);
        if (q == NULL) {
            return NULL;
        }

        if (len > st->p->limits.max_string_len) {
            (void) ngx_http_iothub_twin_patch_fail(st,
                                 NGX_HTTP_IOTHUB_TWIN_PATCH_R_RULE,
                                 NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_STRING_LENGTH,
                                 p, "string longer than %zu bytes",
                                 st->p->limits.max_string_len);
            return NULL;
        }

        if (ngx_http_iothub_twin_patch_leaf(st, p, mode, len, 0) != 0) {
            return NULL;
        }

        return q;

    case NGX_HTTP_IOTHUB_TWIN_PATCH_V_TOP:
        st->top = NGX_HTTP_IOTHUB_TWIN_PATCH_T_SCALAR;
        return ngx_http_iothub_twin_patch_scan_string(st, p, &len);

    case NGX_HTTP_IOTHUB_TWIN_PATCH_V_DEVICE_ID:
    case NGX_HTTP_IOTHUB_TWIN_PATCH_V_MODULE_ID:
        return ngx_http_iothub_twin_patch_id_value(st, p, mode);

    default:
        (void) ngx_http_iothub_twin_patch_not_scalar(st, p, mode);
        return NULL;
    }
}


static const unsigned char *
ngx_http_iothub_twin_patch_id_value(ngx_http_iothub_twin_patch_state_t *st,
    const unsigned char *p, unsigned mode)
{
    size_t                             cap, n;
    const char                        *id;
    unsigned char                     *dst;
    const unsigned char               *q;
    ngx_http_iothub_twin_patch_key_t   k;

    if (mode == NGX_HTTP_IOTHUB_TWIN_PATCH_V_DEVICE_ID) {
        id = st->p->device_id;

    } else {
        id = st->p->module_id;

        if (id == NULL) {
            (void) ngx_http_iothub_twin_patch_fail(st,
                                   NGX_HTTP_IOTHUB_TWIN_PATCH_R_RULE,
                                   NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_ID_MISMATCH,
                                   p, "not allowed in a device twin patch");
            return NULL;
        }
    }

    /* decode after the path, which holds the field name */

    dst = st->path + st->path_end + 1;
    cap = NGX_HTTP_IOTHUB_TWIN_PATCH_MAX_PATH - st->path_end - 1;

    q = ngx_http_iothub_twin_patch_scan_key(st, p, dst, cap, &k);
    if (q == NULL) {
        return NULL;
    }

    n = (id != NULL) ? strlen(id) : 0;

    if (id == NULL || k.len != n || n > cap || memcmp(dst, id, n) != 0) {
        (void) ngx_http_iothub_twin_patch_fail(st,
                              NGX_HTTP_IOTHUB_TWIN_PATCH_R_RULE,
                              NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_ID_MISMATCH,
                              p, "does not match the id in the request path");
        return NULL;
    }

    return q;
}


/*
 * Most numbers are a few digits, perhaps with a fraction: one 16-byte scan
 * finds the digit runs.  With fewer than 16 integer digits and no exponent
 * an integer is within +-2^52 and a real is finite, so nothing else needs
 * checking; the rest, the top level and the errors take
 * ngx_http_iothub_twin_patch_number_slow.
 */

static const unsigned char *
ngx_http_iothub_twin_patch_number(ngx_http_iothub_twin_patch_state_t *st,
    const unsigned char *p, unsigned mode)
{
#if (NGX_HTTP_IOTHUB_TWIN_PATCH_SSE2)
    size_t                n;
    __m128i               v, digits, dots, sign;
    unsigned              m, md, neg;
    const unsigned char  *d;

    if (ngx_http_iothub_twin_patch_likely(
            (mode == NGX_HTTP_IOTHUB_TWIN_PATCH_V_MEMBER
             || mode == NGX_HTTP_IOTHUB_TWIN_PATCH_V_INNER
             || mode == NGX_HTTP_IOTHUB_TWIN_PATCH_V_ANY)
            && st->end - p >= 17))
    {
        /*
         * the number's end is the first byte that is neither a digit nor
         * a '.' (nor the '-' of a negative number), a short chain from the
         * load to the next token; the grammar is checked aside: a digit
         * first, no leading zero, at most one '.' and a digit after it,
         * no exponent
         */

        v = _mm_loadu_si128((const __m128i *) p);
        digits = _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('0' - 1)),
                               _mm_cmplt_epi8(v, _mm_set1_epi8('9' + 1)));
        dots = _mm_cmpeq_epi8(v, _mm_set1_epi8('.'));
        sign = _mm_and_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('-')),
                             _mm_cvtsi32_si128(0xff));

        n = (size_t) __builtin_ctz(~(unsigned) _mm_movemask_epi8(
                             _mm_or_si128(_mm_or_si128(digits, dots), sign)));

        neg = (*p == '-');
        d = p + neg;
        md = (unsigned) _mm_movemask_epi8(digits) >> neg;
        m = ((unsigned) _mm_movemask_epi8(dots) & (((unsigned) 1 << n) - 1))
            >> neg;

        if (n >= 16 || (md & 1) == 0 || (d[0] == '0' && (md & 2))
            || (m & (m - 1)) != 0 || (m && ((m << 1) & md) == 0)
            || p[n] == 'e' || p[n] == 'E')
        {
            goto slow;
        }

        p += n;

        if (mode != NGX_HTTP_IOTHUB_TWIN_PATCH_V_ANY
            && ngx_http_iothub_twin_patch_leaf(st, p - n, mode, 8, 0) != 0)
        {
            return NULL;
        }

        return p;
    }

slow:
#endif

    return ngx_http_iothub_twin_patch_number_slow(st, p, mode);
}


static const unsigned char *
ngx_http_iothub_twin_patch_number_slow(
    ngx_http_iothub_twin_patch_state_t *st, const unsigned char *p,
    unsigned mode)
{
    int                   neg, real, eneg;
    long                  exp;
    size_t                ilen, flen;
    const unsigned char  *start, *ip, *fp, *end;

    if (mode != NGX_HTTP_IOTHUB_TWIN_PATCH_V_ANY
        && mode != NGX_HTTP_IOTHUB_TWIN_PATCH_V_MEMBER
        && mode != NGX_HTTP_IOTHUB_TWIN_PATCH_V_INNER)
    {
        if (mode != NGX_HTTP_IOTHUB_TWIN_PATCH_V_TOP) {
            (void) ngx_http_iothub_twin_patch_not_scalar(st, p, mode);
            return NULL;
        }

        st->top = NGX_HTTP_IOTHUB_TWIN_PATCH_T_SCALAR;
    }

    end = st->end;
    start = p;
    neg = 0;

    if (*p == '-') {
        neg = 1;
        p++;
    }

    ip = p;

    if (p == end || *p < '0' || *p > '9') {
        (void) ngx_http_iothub_twin_patch_syntax(st, p, "invalid number");
        return NULL;
    }

    if (*p++ == '0') {
        if (p < end && *p >= '0' && *p <= '9') {
            (void) ngx_http_iothub_twin_patch_syntax(st, p,
                                                 "leading zero in a number");
            return NULL;
        }

    } else {
        while (p < end && (unsigned) (*p - '0') < 10) {
            p++;
        }
    }

    ilen = p - ip;
    fp = NULL;
    flen = 0;
    exp = 0;
    real = 0;

    if (p < end && *p == '.') {
        fp = ++p;

        while (p < end && (unsigned) (*p - '0') < 10) {
            p++;
        }

        flen = p - fp;

        if (flen == 0) {
            (void) ngx_http_iothub_twin_patch_syntax(st, p,
                                                 "invalid number");
            return NULL;
        }

        real = 1;
    }

    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        eneg = 0;

        if (p < end && (*p == '+' || *p == '-')) {
            eneg = (*p++ == '-');
        }

        if (p == end || *p < '0' || *p > '9') {
            (void) ngx_http_iothub_twin_patch_syntax(st, p,
                                                 "invalid number");
            return NULL;
        }

        while (p < end && (unsigned) (*p - '0') < 10) {
            if (exp < 100000000) {
                exp = exp * 10 + (*p - '0');
            }

            p++;
        }

        if (eneg) {
            exp = -exp;
        }

        real = 1;
    }

    if (real) {
        if (ngx_http_iothub_twin_patch_overflows(ip, ilen, fp, flen, exp)) {
            (void) ngx_http_iothub_twin_patch_fail(st,
                                  NGX_HTTP_IOTHUB_TWIN_PATCH_R_OVERFLOW,
                                  NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_NUMBER_RANGE,
                                  start, "number out of range of a double");
            return NULL;
        }

    } else if (mode != NGX_HTTP_IOTHUB_TWIN_PATCH_V_ANY
               && mode != NGX_HTTP_IOTHUB_TWIN_PATCH_V_TOP)
    {
        /* compare digits: no leading zeros, so length orders first */

        if (ilen > NGX_HTTP_IOTHUB_TWIN_PATCH_INT_DIGITS
            || (ilen == NGX_HTTP_IOTHUB_TWIN_PATCH_INT_DIGITS
                && memcmp(ip, neg ? NGX_HTTP_IOTHUB_TWIN_PATCH_INT_MIN
                                  : NGX_HTTP_IOTHUB_TWIN_PATCH_INT_MAX,
                          NGX_HTTP_IOTHUB_TWIN_PATCH_INT_DIGITS) > 0))
        {
            (void) ngx_http_iothub_twin_patch_fail(st,
                           NGX_HTTP_IOTHUB_TWIN_PATCH_R_RULE,
                           NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_INTEGER_RANGE,
                           start, "integer outside [-%s, %s]",
                           NGX_HTTP_IOTHUB_TWIN_PATCH_INT_MIN,
                           NGX_HTTP_IOTHUB_TWIN_PATCH_INT_MAX);
            return NULL;
        }
    }

    if (mode == NGX_HTTP_IOTHUB_TWIN_PATCH_V_MEMBER
        || mode == NGX_HTTP_IOTHUB_TWIN_PATCH_V_INNER)
    {
        if (ngx_http_iothub_twin_patch_leaf(st, start, mode, 8, 0) != 0) {
            return NULL;
        }
    }

    return p;
}


/*
 * Whether strtod() would round the number to infinity: the value is
 * 0.d1d2d3... * 10^e with d1 the first non-zero digit; it overflows when
 * e > 309, or e == 309 and the digits reach those of 2^1024 - 2^970 (ties
 * round to even, which is up here).
 */

static int
ngx_http_iothub_twin_patch_overflows(const unsigned char *ip, size_t ilen,
    const unsigned char *fp, size_t flen, long exp)
{
    long                  e;
    size_t                i, z;
    const unsigned char  *d, *dend;
    const char           *limit;

    if (ip[0] != '0') {
        e = (ilen < 1000000 ? (long) ilen : 1000000) + exp;
        d = ip;
        dend = ip + ilen;

    } else {
        for (z = 0; z < flen && fp[z] == '0'; z++) {
            /* void */
        }

        if (z == flen) {
            return 0;
        }

        e = exp - (z < 1000000 ? (long) z : 1000000);
        d = fp + z;
        dend = fp + flen;
        fp = NULL;
    }

    if (e != NGX_HTTP_IOTHUB_TWIN_PATCH_DBL_DIGITS) {
        return e > NGX_HTTP_IOTHUB_TWIN_PATCH_DBL_DIGITS;
    }

    limit = NGX_HTTP_IOTHUB_TWIN_PATCH_DBL_LIMIT;

    for (i = 0; i < NGX_HTTP_IOTHUB_TWIN_PATCH_DBL_DIGITS; i++) {

        if (d == dend) {
            if (fp == NULL || flen == 0) {
                /* the rest are zeros; the limit has non-zero digits left */
                return 0;
            }

            d = fp;
            dend = fp + flen;
            fp = NULL;
        }

        if (*d != (unsigned char) limit[i]) {
            return *d > (unsigned char) limit[i];
        }

        d++;
    }

    /* equal to the limit so far: any further digits only add */

    return 1;
}


static const unsigned char *
ngx_http_iothub_twin_patch_literal(ngx_http_iothub_twin_patch_state_t *st,
    const unsigned char *p, unsigned mode)
{
    size_t  n, left;

    if (mode != NGX_HTTP_IOTHUB_TWIN_PATCH_V_ANY
        && mode != NGX_HTTP_IOTHUB_TWIN_PATCH_V_MEMBER
        && mode != NGX_HTTP_IOTHUB_TWIN_PATCH_V_INNER)
    {
        if (mode != NGX_HTTP_IOTHUB_TWIN_PATCH_V_TOP) {
            (void) ngx_http_iothub_twin_patch_not_scalar(st, p, mode);
            return NULL;
        }

        st->top = NGX_HTTP_IOTHUB_TWIN_PATCH_T_SCALAR;
    }

    left = st->end - p;

    if (*p == 't' && left >= 4 && memcmp(p, "true", 4) == 0) {
        n = 4;

    } else if (*p == 'f' && left >= 5 && memcmp(p, "false", 5) == 0) {
        n = 5;

    } else if (*p == 'n' && left >= 4 && memcmp(p, "null", 4) == 0) {

        if (mode == NGX_HTTP_IOTHUB_TWIN_PATCH_V_INNER) {
            (void) ngx_http_iothub_twin_patch_fail(st,
                                 NGX_HTTP_IOTHUB_TWIN_PATCH_R_RULE,
                                 NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_NULL_IN_ARRAY,
                                 p, "null inside an array");
            return NULL;
        }

        if (mode == NGX_HTTP_IOTHUB_TWIN_PATCH_V_MEMBER
            && ngx_http_iothub_twin_patch_leaf(st, p, mode, 0, 1) != 0)
        {
            return NULL;
        }

        return p + 4;

    } else {
        (void) ngx_http_iothub_twin_patch_syntax(st, p, "invalid literal");
        return NULL;
    }

    if ((mode == NGX_HTTP_IOTHUB_TWIN_PATCH_V_MEMBER
         || mode == NGX_HTTP_IOTHUB_TWIN_PATCH_V_INNER)
        && ngx_http_iothub_twin_patch_leaf(st, p, mode, 4, 0) != 0)
    {
        return NULL;
    }

    return p + n;
}


static int
ngx_http_iothub_twin_patch_leaf(ngx_http_iothub_twin_patch_state_t *st,
    const unsigned char *at, unsigned mode, size_t size, int is_delete)
{
    if (size && ngx_http_iothub_twin_patch_add_size(st, at, size) != 0) {
        return -1;
    }

    if (mode == NGX_HTTP_IOTHUB_TWIN_PATCH_V_MEMBER) {
        return ngx_http_iothub_twin_patch_emit(st, at, is_delete);
    }

    return 0;
}


static int
ngx_http_iothub_twin_patch_add_size(ngx_http_iothub_twin_patch_state_t *st,
    const unsigned char *at, size_t n)
{
    st->size += n;

    if (st->size <= st->size_limit) {
        return 0;
    }

    return ngx_http_iothub_twin_patch_too_big(st, at);
}


static int
ngx_http_iothub_twin_patch_too_big(ngx_http_iothub_twin_patch_state_t *st,
    const unsigned char *at)
{
    if (st->size_out == &st->p->tags_size) {
        ngx_http_iothub_twin_patch_set_path(st, "tags");

    } else {
        ngx_http_iothub_twin_patch_set_path(st, "properties.desired");
    }

    return ngx_http_iothub_twin_patch_fail(st,
                                NGX_HTTP_IOTHUB_TWIN_PATCH_R_RULE,
                                NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_SIZE,
                                at, "size exceeds the %zu byte limit"
                                " (%zu bytes counted so far)",
                                st->size_limit, st->size);
}


static int
ngx_http_iothub_twin_patch_emit(ngx_http_iothub_twin_patch_state_t *st,
    const unsigned char *at, int is_delete)
{
    ngx_http_iothub_twin_patch_t  *p;

    p = st->p;
    p->npaths++;

    if (p->path_handler
        && p->path_handler(p->path_data, st->path, st->path_end, is_delete)
           != 0)
    {
        return ngx_http_iothub_twin_patch_fail(st,
                                    NGX_HTTP_IOTHUB_TWIN_PATCH_R_RULE,
                                    NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_NONE,
                                    at, "path callback refused");
    }

    return 0;
}


/*
 * A string value: validates it and counts its decoded bytes.  A run of
 * plain ASCII up to the closing quote is found in the caller's loop, 16
 * bytes at a time; escapes, other bytes and the last 15 bytes of the input
 * take ngx_http_iothub_twin_patch_scan_string_rest.
 */

static const unsigned char *
ngx_http_iothub_twin_patch_scan_string(ngx_http_iothub_twin_patch_state_t *st,
    const unsigned char *p, size_t *len)
{
    const unsigned char  *start;
#if (NGX_HTTP_IOTHUB_TWIN_PATCH_SSE2)
    unsigned              m;
#endif

    start = ++p;

#if (NGX_HTTP_IOTHUB_TWIN_PATCH_SSE2)
    while (st->end - p >= 16) {
        m = ngx_http_iothub_twin_patch_stop16(p);

        if (m) {
            p += __builtin_ctz(m);

            if (ngx_http_iothub_twin_patch_likely(*p == '"')) {
                *len = (size_t) (p - start);
                return p + 1;
            }

            break;
        }

        p += 16;
    }
#endif

    return ngx_http_iothub_twin_patch_scan_string_rest(st, start, p, len);
}


/* start is after the opening quote, p at the first byte not yet checked */

static const unsigned char *
ngx_http_iothub_twin_patch_scan_string_rest(
    ngx_http_iothub_twin_patch_state_t *st, const unsigned char *start,
    const unsigned char *p, size_t *len)
{
    size_t                n, shrink;
    uint32_t              cp;
    const unsigned char  *end, *q;
#if (NGX_HTTP_IOTHUB_TWIN_PATCH_SSE2)
    unsigned              m;
#endif

    end = st->end;
    shrink = 0;

    for ( ;; ) {

#if (NGX_HTTP_IOTHUB_TWIN_PATCH_SSE2)
        while (end - p >= 16) {
            m = ngx_http_iothub_twin_patch_stop16(p);

            if (m) {
                p += __builtin_ctz(m);
                goto special;
            }

            p += 16;
        }
#endif

        while (end - p >= 4) {
            if (ngx_http_iothub_twin_patch_class[p[0]] & 1) {
                goto special;
            }

            if (ngx_http_iothub_twin_patch_class[p[1]] & 1) {
                p += 1;
                goto special;
            }

            if (ngx_http_iothub_twin_patch_class[p[2]] & 1) {
                p += 2;
                goto special;
            }

            if (ngx_http_iothub_twin_patch_class[p[3]] & 1) {
                p += 3;
                goto special;
            }

            p += 4;
        }

        while (p < end && !(ngx_http_iothub_twin_patch_class[*p] & 1)) {
            p++;
        }

        if (p == end) {
            (void) ngx_http_iothub_twin_patch_syntax(st, p,
                                                 "unterminated string");
            return NULL;
        }

    special:

        if (*p == '"') {
            *len = (size_t) (p - start) - shrink;
            return p + 1;
        }

        if (*p == '\\') {
            q = ngx_http_iothub_twin_patch_escape(st, p, &cp);
            if (q == NULL) {
                return NULL;
            }

            n = (cp < 0x80) ? 1 : (cp < 0x800) ? 2 : (cp < 0x10000) ? 3 : 4;
            shrink += (size_t) (q - p) - n;
            p = q;
            continue;
        }

        if (*p < 0x20) {
            (void) ngx_http_iothub_twin_patch_syntax(st, p,
                                         "control character in a string");
            return NULL;
        }

        n = ngx_http_iothub_twin_utf8(p, end, &cp);
        if (n == 0) {
            (void) ngx_http_iothub_twin_patch_syntax(st, p, "invalid UTF-8");
            return NULL;
        }

        p += n;
    }
}


/*
 * A key (or an id value): validates it, writes its decoded bytes to dst as
 * far as cap allows, hashes them and notes the first byte forbidden in twin
 * keys.  Most keys are plain ASCII of less than 16 bytes: one 16-byte scan
 * finds the closing quote, one copy moves them and two words hash them, in
 * the caller's loop; the rest takes ngx_http_iothub_twin_patch_scan_key_long.
 */

static const unsigned char *
ngx_http_iothub_twin_patch_scan_key(ngx_http_iothub_twin_patch_state_t *st,
    const unsigned char *p, unsigned char *dst, size_t cap,
    ngx_http_iothub_twin_patch_key_t *k)
{
#if (NGX_HTTP_IOTHUB_TWIN_PATCH_SSE2)
    size_t                n;
    __m128i               v;
    uint64_t              h, lo, hi;
    unsigned              m;
    const unsigned char  *s;

    s = p + 1;

    if (ngx_http_iothub_twin_patch_likely(st->end - s >= 16)) {

        /*
         * the key's end comes from the quotes alone, a short dependency
         * chain from the load to the next token; that no other stop byte
         * comes before it is checked aside
         */

        v = _mm_loadu_si128((const __m128i *) s);
        n = (size_t) __builtin_ctz((unsigned) _mm_movemask_epi8(
                                       _mm_cmpeq_epi8(v, _mm_set1_epi8('"')))
                                   | 0x10000);
        m = ngx_http_iothub_twin_patch_key_stop(v);

        if (ngx_http_iothub_twin_patch_likely(
                n < 16 && (m & (((unsigned) 1 << n) - 1)) == 0))
        {

            if (cap >= 16) {
                /* one fixed-size copy, the excess is scratch */
                memcpy(dst, s, 16);

            } else if (cap) {
                memcpy(dst, s, n < cap ? n : cap);
            }

            /* what ngx_http_iothub_twin_patch_hash_run() makes of it */

            lo = ngx_http_iothub_twin_patch_load64(s);
            h = st->basis;

            if (n >= 8) {
                h = (h ^ lo) * NGX_HTTP_IOTHUB_TWIN_PATCH_HASH_MUL;
                h ^= h >> 29;
                hi = ngx_http_iothub_twin_patch_load64(s + 8)
                     & (((uint64_t) 1 << ((n - 8) * 8)) - 1);

            } else {
                hi = lo & (((uint64_t) 1 << (n * 8)) - 1);
            }

            h = (h ^ hi ^ ((uint64_t) n << 32))
                * NGX_HTTP_IOTHUB_TWIN_PATCH_HASH_MUL;
            h ^= h >> 33;
            h *= NGX_HTTP_IOTHUB_TWIN_PATCH_HASH_MUL2;
            h ^= h >> 29;

            k->len = n;
            k->hash = (uint32_t) h ? (uint32_t) h : 1;
            k->bad = 0;

            return s + n + 1;
        }
    }
#endif

    return ngx_http_iothub_twin_patch_scan_key_long(st, p + 1, dst, cap, k);
}


/* s is after the opening quote */

static const unsigned char *
ngx_http_iothub_twin_patch_scan_key_long(
    ngx_http_iothub_twin_patch_state_t *st, const unsigned char *s,
    unsigned char *dst, size_t cap, ngx_http_iothub_twin_patch_key_t *k)
{
    size_t                              n;
    const unsigned char                *p, *end;
    ngx_http_iothub_twin_patch_hash_t   hs;
#if (NGX_HTTP_IOTHUB_TWIN_PATCH_SSE2)
    unsigned                            m;
#endif

    end = st->end;
    p = s;

#if (NGX_HTTP_IOTHUB_TWIN_PATCH_SSE2)
    while (end - p >= 16) {
        m = ngx_http_iothub_twin_patch_key_stop16(p);

        if (m) {
            p += __builtin_ctz(m);
            goto special;
        }

        p += 16;
    }
#endif

    while (end - p >= 4) {
        if (ngx_http_iothub_twin_patch_class[p[0]]) {
            goto special;
        }

        if (ngx_http_iothub_twin_patch_class[p[1]]) {
            p += 1;
            goto special;
        }

        if (ngx_http_iothub_twin_patch_class[p[2]]) {
            p += 2;
            goto special;
        }

        if (ngx_http_iothub_twin_patch_class[p[3]]) {
            p += 3;
            goto special;
        }

        p += 4;
    }

    while (p < end && ngx_http_iothub_twin_patch_class[*p] == 0) {
        p++;
    }

special:

    if (p == end || *p != '"') {
        return ngx_http_iothub_twin_patch_scan_key_slow(st, s, dst, cap, k);
    }

    n = (size_t) (p - s);

    if (n <= 16 && cap >= 16 && end - s >= 16) {
        /* one fixed-size copy, the excess is scratch */
        memcpy(dst, s, 16);

    } else if (cap) {
        memcpy(dst, s, n < cap ? n : cap);
    }

    hs.h = st->basis;

    if (n < 8 && end - s >= 8) {
        /* what ngx_http_iothub_twin_patch_hash_run() makes of it */
        hs.w = ngx_http_iothub_twin_patch_load64(s)
               & (((uint64_t) 1 << (n * 8)) - 1);

    } else {
        hs.w = 0;
        hs.sh = 0;
        ngx_http_iothub_twin_patch_hash_run(&hs, s, n, end);
    }

    k->len = n;
    k->hash = ngx_http_iothub_twin_patch_hash_final(&hs, n);
    k->bad = 0;

    return p + 1;
}


/* s is after the opening quote */

static const unsigned char *
ngx_http_iothub_twin_patch_scan_key_slow(
    ngx_http_iothub_twin_patch_state_t *st, const unsigned char *s,
    unsigned char *dst, size_t cap, ngx_http_iothub_twin_patch_key_t *k)
{
    int                                 bad;
    size_t                              n, len;
    uint32_t                            cp;
    unsigned char                       c, u[8];
    const unsigned char                *end, *q, *p;
    ngx_http_iothub_twin_patch_hash_t   hs;

    end = st->end;
    hs.h = st->basis;
    hs.w = 0;
    hs.sh = 0;
    len = 0;
    bad = 0;
    p = s;

    for ( ;; ) {

        /* a run of plain bytes is copied and hashed as a whole */

        s = p;

        while (p < end && ngx_http_iothub_twin_patch_class[*p] == 0) {
            p++;
        }

        n = (size_t) (p - s);

        if (n) {
            if (len < cap) {
                memcpy(dst + len, s, n < cap - len ? n : cap - len);
            }

            len += n;
            ngx_http_iothub_twin_patch_hash_run(&hs, s, n, end);
        }

        if (p == end) {
            (void) ngx_http_iothub_twin_patch_syntax(st, p,
                                                 "unterminated string");
            return NULL;
        }

        c = *p;

        if (c == '"') {
            break;
        }

        if (c == '\\') {
            q = ngx_http_iothub_twin_patch_escape(st, p, &cp);
            if (q == NULL) {
                return NULL;
            }

            p = q;
            n = ngx_http_iothub_twin_patch_encode(cp, u);

        } else if (c < 0x20) {
            (void) ngx_http_iothub_twin_patch_syntax(st, p,
                                         "control character in a string");
            return NULL;

        } else if (c >= 0x80) {
            n = ngx_http_iothub_twin_utf8(p, end, &cp);
            if (n == 0) {
                (void) ngx_http_iothub_twin_patch_syntax(st, p,
                                                         "invalid UTF-8");
                return NULL;
            }

            memcpy(u, p, n);
            p += n;

        } else {
            /* '.', '$', ' ', DEL */
            cp = c;
            u[0] = c;
            n = 1;
            p++;
        }

        if (bad == 0) {
            if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f)) {
                bad = 'c';

            } else if (cp == '.' || cp == '$' || cp == ' ') {
                bad = (int) cp;
            }
        }

        if (len < cap) {
            memcpy(dst + len, u, n < cap - len ? n : cap - len);
        }

        len += n;
        ngx_http_iothub_twin_patch_hash_run(&hs, u, n, u + sizeof(u));
    }

    k->len = len;
    k->hash = ngx_http_iothub_twin_patch_hash_final(&hs, len);
    k->bad = bad;

    return p + 1;
}


/* the length and a final mix: equal keys, equal hashes, few others */

static uint32_t
ngx_http_iothub_twin_patch_hash_final(ngx_http_iothub_twin_patch_hash_t *hs,
    size_t len)
{
    uint64_t  h;

    h = (hs->h ^ hs->w ^ ((uint64_t) len << 32))
        * NGX_HTTP_IOTHUB_TWIN_PATCH_HASH_MUL;
    h ^= h >> 33;
    h *= NGX_HTTP_IOTHUB_TWIN_PATCH_HASH_MUL2;
    h ^= h >> 29;

    return (uint32_t) h ? (uint32_t) h : 1;
}


/*
 * Feeds decoded key bytes to the hash, 8 at a time, little-endian.  Bytes
 * up to end may be read: a short tail is loaded as a word and masked.
 */

static void
ngx_http_iothub_twin_patch_hash_run(ngx_http_iothub_twin_patch_hash_t *hs,
    const unsigned char *p, size_t n, const unsigned char *end)
{
    uint64_t  h, w;
    unsigned  sh;

    h = hs->h;
    w = hs->w;
    sh = hs->sh;

    while (n && sh) {
        w |= (uint64_t) *p++ << sh;
        sh = (sh + 8) & 63;
        n--;

        if (sh == 0) {
            h = (h ^ w) * NGX_HTTP_IOTHUB_TWIN_PATCH_HASH_MUL;
            h ^= h >> 29;
            w = 0;
        }
    }

    while (n >= 8) {
        h = (h ^ ngx_http_iothub_twin_patch_load64(p))
            * NGX_HTTP_IOTHUB_TWIN_PATCH_HASH_MUL;
        h ^= h >> 29;
        p += 8;
        n -= 8;
    }

    if (n && end - p >= 8) {
        w = ngx_http_iothub_twin_patch_load64(p)
            & (((uint64_t) 1 << (n * 8)) - 1);
        sh = (unsigned) n * 8;

    } else {
        while (n) {
            w |= (uint64_t) *p++ << sh;
            sh += 8;
            n--;
        }
    }

    hs->h = h;
    hs->w = w;
    hs->sh = sh;
}


static uint64_t
ngx_http_iothub_twin_patch_load64(const unsigned char *p)
{
    /* compilers make this one load on little-endian machines */

    return (uint64_t) p[0] | (uint64_t) p[1] << 8 | (uint64_t) p[2] << 16
           | (uint64_t) p[3] << 24 | (uint64_t) p[4] << 32
           | (uint64_t) p[5] << 40 | (uint64_t) p[6] << 48
           | (uint64_t) p[7] << 56;
}


static const unsigned char *
ngx_http_iothub_twin_patch_escape(ngx_http_iothub_twin_patch_state_t *st,
    const unsigned char *p, uint32_t *cp)
{
    const char           *err;
    const unsigned char  *q;

    q = ngx_http_iothub_twin_patch_unescape(p, st->end, cp, &err);

    if (q == NULL) {
        (void) ngx_http_iothub_twin_patch_syntax(st, p, err);
        return NULL;
    }

    if (*cp == 0) {
        (void) ngx_http_iothub_twin_patch_fail(st,
                                    NGX_HTTP_IOTHUB_TWIN_PATCH_R_NUL,
                                    NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_NUL,
                                    p, "string contains U+0000");
        return NULL;
    }

    return q;
}


/* p is at '\'; returns the byte after the escape, or after a pair */

static const unsigned char *
ngx_http_iothub_twin_patch_unescape(const unsigned char *p,
    const unsigned char *end, uint32_t *cp, const char **err)
{
    uint32_t  u, lo;

    if (end - p < 2) {
        *err = "unterminated string";
        return NULL;
    }

    switch (p[1]) {

    case '"':
    case '\\':
    case '/':
        *cp = p[1];
        return p + 2;

    case 'b':
        *cp = '\b';
        return p + 2;

    case 'f':
        *cp = '\f';
        return p + 2;

    case 'n':
        *cp = '\n';
        return p + 2;

    case 'r':
        *cp = '\r';
        return p + 2;

    case 't':
        *cp = '\t';
        return p + 2;

    case 'u':
        break;

    default:
        *err = "invalid escape";
        return NULL;
    }

    if (end - p < 6 || ngx_http_iothub_twin_patch_hex4(p + 2, &u) != 0) {
        *err = "invalid unicode escape";
        return NULL;
    }

    p += 6;

    if (u >= 0xdc00 && u <= 0xdfff) {
        *err = "unpaired surrogate in a unicode escape";
        return NULL;
    }

    if (u >= 0xd800 && u <= 0xdbff) {
        if (end - p < 6 || p[0] != '\\' || p[1] != 'u'
            || ngx_http_iothub_twin_patch_hex4(p + 2, &lo) != 0
            || lo < 0xdc00 || lo > 0xdfff)
        {
            *err = "unpaired surrogate in a unicode escape";
            return NULL;
        }

        u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
        p += 6;
    }

    *cp = u;

    return p;
}


static int
ngx_http_iothub_twin_patch_hex4(const unsigned char *p, uint32_t *u)
{
    unsigned       i;
    uint32_t       v;
    unsigned char  c;

    v = 0;

    for (i = 0; i < 4; i++) {
        c = p[i];

        if (c >= '0' && c <= '9') {
            v = (v << 4) | (uint32_t) (c - '0');

        } else {
            c |= 0x20;

            if (c < 'a' || c > 'f') {
                return -1;
            }

            v = (v << 4) | (uint32_t) (c - 'a' + 10);
        }
    }

    *u = v;

    return 0;
}


static size_t
ngx_http_iothub_twin_patch_encode(uint32_t cp, unsigned char *out)
{
    if (cp < 0x80) {
        out[0] = (unsigned char) cp;
        return 1;
    }

    if (cp < 0x800) {
        out[0] = (unsigned char) (0xc0 | (cp >> 6));
        out[1] = (unsigned char) (0x80 | (cp & 0x3f));
        return 2;
    }

    if (cp < 0x10000) {
        out[0] = (unsigned char) (0xe0 | (cp >> 12));
        out[1] = (unsigned char) (0x80 | ((cp >> 6) & 0x3f));
        out[2] = (unsigned char) (0x80 | (cp & 0x3f));
        return 3;
    }

    out[0] = (unsigned char) (0xf0 | (cp >> 18));
    out[1] = (unsigned char) (0x80 | ((cp >> 12) & 0x3f));
    out[2] = (unsigned char) (0x80 | ((cp >> 6) & 0x3f));
    out[3] = (unsigned char) (0x80 | (cp & 0x3f));
    return 4;
}


/*
 * The decoded bytes of one unit of an already validated string: a raw
 * byte or an escape.  Returns NULL at the closing quote.
 */

static const unsigned char *
ngx_http_iothub_twin_patch_unit(const unsigned char *p,
    const unsigned char *end, unsigned char *out, size_t *n)
{
    uint32_t     cp;
    const char  *err;

    if (*p == '"') {
        return NULL;
    }

    if (*p != '\\') {
        out[0] = *p;
        *n = 1;
        return p + 1;
    }

    p = ngx_http_iothub_twin_patch_unescape(p, end, &cp, &err);
    if (p == NULL) {
        return NULL;
    }

    *n = ngx_http_iothub_twin_patch_encode(cp, out);

    return p;
}


/* a and b are the opening quotes of two validated keys */

static int
ngx_http_iothub_twin_patch_keys_equal(ngx_http_iothub_twin_patch_state_t *st,
    const unsigned char *a, const unsigned char *b)
{
    size_t         na, nb, ia, ib;
    unsigned char  ua[4], ub[4];

    a++;
    b++;
    na = nb = ia = ib = 0;

    for ( ;; ) {
        if (ia == na) {
            a = a ? ngx_http_iothub_twin_patch_unit(a, st->end, ua, &na)
                  : NULL;
            ia = 0;

            if (a == NULL) {
                na = 0;
            }
        }

        if (ib == nb) {
            b = b ? ngx_http_iothub_twin_patch_unit(b, st->end, ub, &nb)
                  : NULL;
            ib = 0;

            if (b == NULL) {
                nb = 0;
            }
        }

        if (na == 0 || nb == 0) {
            return na == 0 && nb == 0;
        }

        if (ua[ia++] != ub[ib++]) {
            return 0;
        }
    }
}


static int
ngx_http_iothub_twin_patch_insert(ngx_http_iothub_twin_patch_state_t *st,
    ngx_http_iothub_twin_patch_level_t *lv, const unsigned char *key,
    uint32_t hash)
{
    uint32_t  n;
    uint64_t  bit;

    /* a small object whose filter has not seen the hash: a new key */

    n = lv->nkeys;
    bit = (uint64_t) 1 << (hash >> 26);

    if (n < NGX_HTTP_IOTHUB_TWIN_PATCH_SMALL && (lv->filter & bit) == 0) {
        lv->filter |= bit;
        lv->small[n].hash = hash;
        lv->small[n].off = (uint32_t) (key - st->buf);
        lv->nkeys++;
        return 0;
    }

    return ngx_http_iothub_twin_patch_insert_slow(st, lv, key, hash);
}


static int
ngx_http_iothub_twin_patch_insert_slow(ngx_http_iothub_twin_patch_state_t *st,
    ngx_http_iothub_twin_patch_level_t *lv, const unsigned char *key,
    uint32_t hash)
{
    uint32_t                            i, n;
    ngx_http_iothub_twin_patch_slot_t  *slots;

    n = lv->nkeys;

    if (n < NGX_HTTP_IOTHUB_TWIN_PATCH_SMALL) {
        for (i = 0; i < n; i++) {
            if (lv->small[i].hash == hash
                && ngx_http_iothub_twin_patch_keys_equal(st,
                                            st->buf + lv->small[i].off, key))
            {
                goto duplicate;
            }
        }

        lv->small[n].hash = hash;
        lv->small[n].off = (uint32_t) (key - st->buf);
        lv->nkeys++;
        return 0;
    }

    if (lv->overflow) {
        lv->nkeys++;
        return 0;
    }

    if (lv->cap == 0) {

        if (st->slot_top + NGX_HTTP_IOTHUB_TWIN_PATCH_MIN_CAP
            > NGX_HTTP_IOTHUB_TWIN_PATCH_SLOTS)
        {
            lv->overflow = 1;
            lv->nkeys++;
            return 0;
        }

        /* room for 96 keys at once where the table has it: fewer grows */

        lv->base = st->slot_top;
        lv->cap = (st->slot_top + NGX_HTTP_IOTHUB_TWIN_PATCH_FIRST_CAP
                   <= NGX_HTTP_IOTHUB_TWIN_PATCH_SLOTS)
                  ? NGX_HTTP_IOTHUB_TWIN_PATCH_FIRST_CAP
                  : NGX_HTTP_IOTHUB_TWIN_PATCH_MIN_CAP;
        st->slot_top += lv->cap;

        slots = st->slots + lv->base;
        memset(slots, 0, lv->cap * sizeof(ngx_http_iothub_twin_patch_slot_t));

        for (i = 0; i < n; i++) {
            (void) ngx_http_iothub_twin_patch_probe(st, slots, lv->cap,
                                             st->buf + lv->small[i].off,
                                             lv->small[i].hash, 1);
        }

    } else if ((n + 1) * 4 > lv->cap * 3) {

        if (ngx_http_iothub_twin_patch_grow(st, lv) != 0) {
            /* the region is given up: the object is checked at close */
            st->slot_top = lv->base;
            lv->cap = 0;
            lv->overflow = 1;
            lv->nkeys++;
            return 0;
        }
    }

    if (ngx_http_iothub_twin_patch_probe(st, st->slots + lv->base, lv->cap,
                                         key, hash, 1)
        != 0)
    {
        goto duplicate;
    }

    lv->nkeys++;
    return 0;

duplicate:

    return ngx_http_iothub_twin_patch_fail(st,
                                 NGX_HTTP_IOTHUB_TWIN_PATCH_R_DUPLICATE,
                                 NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_DUPLICATE_KEY,
                                 key, "duplicate key");
}


/* looks the key up in a table, inserting it if absent and asked to */

static int
ngx_http_iothub_twin_patch_probe(ngx_http_iothub_twin_patch_state_t *st,
    ngx_http_iothub_twin_patch_slot_t *slots, uint32_t cap,
    const unsigned char *key, uint32_t hash, int insert)
{
    uint32_t  i, mask;

    mask = cap - 1;

    for (i = hash & mask; slots[i].hash; i = (i + 1) & mask) {
        if (slots[i].hash == hash
            && ngx_http_iothub_twin_patch_keys_equal(st,
                                             st->buf + slots[i].off, key))
        {
            return 1;
        }
    }

    if (insert) {
        slots[i].hash = hash;
        slots[i].off = (uint32_t) (key - st->buf);
    }

    return 0;
}


/*
 * Doubles the innermost object's region, which is on top: the new table is
 * built above the old one and moved down.
 */

static int
ngx_http_iothub_twin_patch_grow(ngx_http_iothub_twin_patch_state_t *st,
    ngx_http_iothub_twin_patch_level_t *lv)
{
    uint32_t                            i, cap;
    ngx_http_iothub_twin_patch_slot_t  *old, *new;

    cap = lv->cap * 2;

    if ((size_t) lv->base + lv->cap + cap > NGX_HTTP_IOTHUB_TWIN_PATCH_SLOTS) {
        return -1;
    }

    old = st->slots + lv->base;
    new = old + lv->cap;

    memset(new, 0, cap * sizeof(ngx_http_iothub_twin_patch_slot_t));

    for (i = 0; i < lv->cap; i++) {
        if (old[i].hash) {
            (void) ngx_http_iothub_twin_patch_probe(st, new, cap,
                                                    st->buf + old[i].off,
                                                    old[i].hash, 1);
        }
    }

    memmove(old, new, cap * sizeof(ngx_http_iothub_twin_patch_slot_t));

    lv->cap = cap;
    st->slot_top = lv->base + cap;

    return 0;
}


/*
 * The object's keys did not fit the table: check them in blocks.  Each
 * pass puts one block in the free table and looks up every later key; it
 * finds the first repeated key in document order.
 */

static int
ngx_http_iothub_twin_patch_deferred(ngx_http_iothub_twin_patch_state_t *st,
    ngx_http_iothub_twin_patch_level_t *lv)
{
    uint32_t                            cap, avail, block, first, i;
    const unsigned char                *from, *next, *q, *key, *dup;
    ngx_http_iothub_twin_patch_key_t    k;
    ngx_http_iothub_twin_patch_slot_t  *slots;
    ngx_http_iothub_twin_patch_slot_t   local[
                                         NGX_HTTP_IOTHUB_TWIN_PATCH_MIN_CAP];

    avail = NGX_HTTP_IOTHUB_TWIN_PATCH_SLOTS - st->slot_top;

    if (avail < NGX_HTTP_IOTHUB_TWIN_PATCH_MIN_CAP) {
        slots = local;
        cap = NGX_HTTP_IOTHUB_TWIN_PATCH_MIN_CAP;

    } else {
        slots = st->slots + st->slot_top;

        for (cap = NGX_HTTP_IOTHUB_TWIN_PATCH_MIN_CAP; cap * 2 <= avail;
             cap *= 2)
        {
            /* void */
        }
    }

    block = cap / 2;
    dup = NULL;
    from = lv->start + 1;

    for (first = 0; first < lv->nkeys; first += block) {

        memset(slots, 0, cap * sizeof(ngx_http_iothub_twin_patch_slot_t));

        next = NULL;
        q = from;

        for (i = first; i < lv->nkeys; i++) {

            if (i == first + block) {
                next = q;
            }

            key = ngx_http_iothub_twin_patch_next_key(q, st->end);

            if (dup && key >= dup) {
                break;
            }

            q = ngx_http_iothub_twin_patch_scan_key(st, key, NULL, 0, &k);

            if (ngx_http_iothub_twin_patch_probe(st, slots, cap, key, k.hash,
                                                 i < first + block))
            {
                dup = key;
                break;
            }

            q = ngx_http_iothub_twin_patch_skip_member(st, q);
        }

        if (next == NULL) {
            break;
        }

        from = next;
    }

    if (dup == NULL) {
        return 0;
    }

    ngx_http_iothub_twin_patch_key_path(st, lv, dup);

    return ngx_http_iothub_twin_patch_fail(st,
                                 NGX_HTTP_IOTHUB_TWIN_PATCH_R_DUPLICATE,
                                 NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_DUPLICATE_KEY,
                                 dup, "duplicate key");
}


/* p is after '{' or after a member's value; returns the next key's '"' */

static const unsigned char *
ngx_http_iothub_twin_patch_next_key(const unsigned char *p,
    const unsigned char *end)
{
    p = ngx_http_iothub_twin_patch_ws(p, end);

    if (p < end && *p == ',') {
        p = ngx_http_iothub_twin_patch_ws(p + 1, end);
    }

    return p;
}


/* p is after a validated key; returns the byte after the member's value */

static const unsigned char *
ngx_http_iothub_twin_patch_skip_member(ngx_http_iothub_twin_patch_state_t *st,
    const unsigned char *p)
{
    unsigned              depth;
    const unsigned char  *end;

    end = st->end;

    p = ngx_http_iothub_twin_patch_ws(p, end);
    p = ngx_http_iothub_twin_patch_ws(p + 1, end);    /* ':' */

    if (*p == '"') {
        return ngx_http_iothub_twin_patch_skip_string(p, end);
    }

    if (*p != '{' && *p != '[') {
        while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' '
               && *p != '\t' && *p != '\n' && *p != '\r')
        {
            p++;
        }

        return p;
    }

    depth = 0;

    while (p < end) {
        switch (*p) {

        case '"':
            p = ngx_http_iothub_twin_patch_skip_string(p, end);
            continue;

        case '{':
        case '[':
            depth++;
            break;

        case '}':
        case ']':
            if (--depth == 0) {
                return p + 1;
            }

            break;
        }

        p++;
    }

    return p;
}


static const unsigned char *
ngx_http_iothub_twin_patch_skip_string(const unsigned char *p,
    const unsigned char *end)
{
    for (p++; p < end && *p != '"'; p++) {
        if (*p == '\\') {
            p++;
        }
    }

    return p + 1;
}


/* the path of a key of an open object, for a message */

static void
ngx_http_iothub_twin_patch_key_path(ngx_http_iothub_twin_patch_state_t *st,
    ngx_http_iothub_twin_patch_level_t *lv, const unsigned char *key)
{
    size_t                             start;
    ngx_http_iothub_twin_patch_key_t   k;

    if (lv->kind == NGX_HTTP_IOTHUB_TWIN_PATCH_C_ANY_OBJ
        || lv->kind == NGX_HTTP_IOTHUB_TWIN_PATCH_C_ANY_ARR)
    {
        st->path_end = lv->path_len;
        return;
    }

    start = lv->path_len;

    if (start) {
        st->path[start++] = '.';
    }

    if (start > NGX_HTTP_IOTHUB_TWIN_PATCH_MAX_PATH) {
        st->path_end = lv->path_len;
        return;
    }

    if (lv->kind != NGX_HTTP_IOTHUB_TWIN_PATCH_C_SECTION
        && lv->kind != NGX_HTTP_IOTHUB_TWIN_PATCH_C_INNER)
    {
        st->path_fixed = start;
    }

    (void) ngx_http_iothub_twin_patch_scan_key(st, key, st->path + start,
                                NGX_HTTP_IOTHUB_TWIN_PATCH_MAX_PATH - start,
                                &k);

    st->path_end = start + (k.len < NGX_HTTP_IOTHUB_TWIN_PATCH_MAX_PATH - start
                            ? k.len
                            : NGX_HTTP_IOTHUB_TWIN_PATCH_MAX_PATH - start);
}


static const unsigned char *
ngx_http_iothub_twin_patch_ws(const unsigned char *p, const unsigned char *end)
{
#if (NGX_HTTP_IOTHUB_TWIN_PATCH_SSE2)
    unsigned  m;
    __m128i   v, w;
#endif

    if (p < end && *p > ' ') {
        return p;
    }

#if (NGX_HTTP_IOTHUB_TWIN_PATCH_SSE2)

    /* indented JSON: runs of blanks, skipped 16 bytes at a time */

    while (end - p >= 16) {
        v = _mm_loadu_si128((const __m128i *) p);
        w = _mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8(' ')),
                             _mm_cmpeq_epi8(v, _mm_set1_epi8('\n'))),
                _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('\r')),
                             _mm_cmpeq_epi8(v, _mm_set1_epi8('\t'))));
        m = ~(unsigned) _mm_movemask_epi8(w) & 0xffff;

        if (m) {
            return p + __builtin_ctz(m);
        }

        p += 16;
    }

#endif

    while (p < end
           && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
    {
        p++;
    }

    return p;
}


#if (NGX_HTTP_IOTHUB_TWIN_PATCH_SSE2)

/*
 * A bit for each of p[0 .. 15] that ends a string's fast loop: '"', '\',
 * controls and non-ASCII bytes (1 in ngx_http_iothub_twin_patch_class).
 * Bytes below 0x20 and from 0x80 are both less than 0x20 as signed chars.
 */

static unsigned
ngx_http_iothub_twin_patch_stop16(const unsigned char *p)
{
    __m128i  v, m;

    v = _mm_loadu_si128((const __m128i *) p);

    m = _mm_or_si128(
            _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                         _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
            _mm_cmplt_epi8(v, _mm_set1_epi8(0x20)));

    return (unsigned) _mm_movemask_epi8(m);
}


/* the same for keys, with '.', '$', ' ' and DEL (any non-zero class) */

static unsigned
ngx_http_iothub_twin_patch_key_stop16(const unsigned char *p)
{
    return ngx_http_iothub_twin_patch_key_stop(
                                  _mm_loadu_si128((const __m128i *) p));
}


static unsigned
ngx_http_iothub_twin_patch_key_stop(__m128i v)
{
    __m128i  m;

    m = _mm_or_si128(
            _mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                             _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
                _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('.')),
                             _mm_cmpeq_epi8(v, _mm_set1_epi8('$')))),
            _mm_or_si128(_mm_cmplt_epi8(v, _mm_set1_epi8(0x21)),
                         _mm_cmpeq_epi8(v, _mm_set1_epi8(0x7f))));

    return (unsigned) _mm_movemask_epi8(m);
}

#endif


static void
ngx_http_iothub_twin_patch_set_path(ngx_http_iothub_twin_patch_state_t *st,
    const char *path)
{
    size_t  n;

    n = strlen(path);
    memcpy(st->path, path, n);

    st->path_end = n;
    st->path_fixed = n;
}


static int
ngx_http_iothub_twin_patch_syntax(ngx_http_iothub_twin_patch_state_t *st,
    const unsigned char *at, const char *rule)
{
    return ngx_http_iothub_twin_patch_fail(st,
                                        NGX_HTTP_IOTHUB_TWIN_PATCH_R_SYNTAX,
                                        NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_SYNTAX,
                                        at, "%s", rule);
}


/* records the first failure; always returns -1 */

static int
ngx_http_iothub_twin_patch_fail(ngx_http_iothub_twin_patch_state_t *st,
    ngx_http_iothub_twin_patch_reason_e reason,
    ngx_http_iothub_twin_patch_rule_e rule, const unsigned char *at,
    const char *fmt, ...)
{
    char                          *e;
    size_t                         fixed, n, size;
    va_list                        args;
    ngx_http_iothub_twin_patch_t  *p;

    if (st->failed) {
        return -1;
    }

    st->failed = 1;

    p = st->p;
    p->reason = reason;
    p->rule = rule;
    p->error_offset = (size_t) (at - st->buf);

    e = p->error;
    size = sizeof(p->error);

    if (st->path_end == 0) {
        *e++ = '$';

    } else {
        fixed = st->path_fixed < st->path_end ? st->path_fixed : st->path_end;

        if (fixed && fixed < st->path_end && st->path[fixed] == '.') {
            fixed++;
        }

        /* the fixed part is ours: field names, "tags", "properties..." */

        memcpy(e, st->path, fixed);
        e += fixed;

        n = st->path_end - fixed;

        if (n <= NGX_HTTP_IOTHUB_TWIN_PATCH_EXCERPT) {
            e += ngx_http_iothub_twin_patch_excerpt(e, st->path + fixed, n);

        } else {
            e += ngx_http_iothub_twin_patch_excerpt(e, st->path + fixed,
                                            NGX_HTTP_IOTHUB_TWIN_PATCH_HEAD);
            *e++ = '.';
            *e++ = '.';
            *e++ = '.';
            n = NGX_HTTP_IOTHUB_TWIN_PATCH_EXCERPT
                - NGX_HTTP_IOTHUB_TWIN_PATCH_HEAD;
            e += ngx_http_iothub_twin_patch_excerpt(e,
                                                st->path + st->path_end - n,
                                                n);
        }
    }

    *e++ = ':';
    *e++ = ' ';

    va_start(args, fmt);
    (void) vsnprintf(e, size - (size_t) (e - p->error), fmt, args);
    va_end(args);

    return -1;
}


/* printable ASCII as is, other bytes and '"' and '\' as \xNN */

static size_t
ngx_http_iothub_twin_patch_excerpt(char *dst, const unsigned char *src,
    size_t n)
{
    char           *d;
    size_t          i;
    unsigned char   c;
    static const char  hex[] = "0123456789abcdef";

    d = dst;

    for (i = 0; i < n; i++) {
        c = src[i];

        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            *d++ = (char) c;
            continue;
        }

        *d++ = '\\';
        *d++ = 'x';
        *d++ = hex[c >> 4];
        *d++ = hex[c & 0x0f];
    }

    return (size_t) (d - dst);
}
