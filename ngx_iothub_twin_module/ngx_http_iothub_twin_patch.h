
/*
 * The twin patch validator: one pass over a PATCH body, no allocation,
 * plain C and libc only (with SSE2 intrinsics where __SSE2__ is defined,
 * unless NGX_HTTP_IOTHUB_TWIN_PATCH_NO_SIMD is), so that unit tests, the
 * fuzzer and the benchmark can use it without nginx.
 *
 * SYNTAX: not strict RFC 8259 JSON: grammar, trailing bytes, whitespace
 * other than space, tab, CR and LF (a BOM included), invalid UTF-8
 * (overlong, surrogates, > U+10FFFF, truncated), raw controls in strings,
 * bad escapes, unpaired \u surrogates.
 *
 * INVALID, with the first problem in document order:
 *   - duplicate keys in any object (compared after decoding), \u0000, a
 *     number with a fraction or exponent that is not finite as a double,
 *     nesting of more than 64 arrays and objects;
 *   - the document is not an object ("patch must be a JSON object"; it is
 *     parsed to the end first, so a malformed one is SYNTAX);
 *   - top-level keys other than tags, properties (only desired inside;
 *     reported is refused) and the read-only twin fields, which are parsed
 *     but otherwise ignored; deviceId / moduleId that do not match;
 *   - under tags and properties.desired: keys empty, longer than
 *     max_key_len, or holding C0/C1 controls, DEL, '.', '$' or space;
 *     strings longer than max_string_len; integers outside
 *     [-2^52, 2^52 - 1]; null inside arrays; more than max_depth levels of
 *     objects below the section, counted like the hub (the section object
 *     is level 0, an object value of one of its keys level 1, an object
 *     inside an array one level more than the array's owner);
 *     a section larger than its limit, counted like the hub: key
 *     bytes + string bytes + 8 per number + 4 per boolean + 0 per null;
 *   - the path callback refusing a path.
 *
 * The validator needs about 50 KB of stack (a key hash table for duplicate
 * detection, the path buffer and the nesting stack).
 */


#ifndef _NGX_HTTP_IOTHUB_TWIN_PATCH_H_INCLUDED_
#define _NGX_HTTP_IOTHUB_TWIN_PATCH_H_INCLUDED_


#include <stddef.h>


/* the hub's limits, used by ngx_http_iothub_twin_patch_default_limits() */
#define NGX_HTTP_IOTHUB_TWIN_PATCH_KEY_LEN       1024
#define NGX_HTTP_IOTHUB_TWIN_PATCH_STRING_LEN    4096
#define NGX_HTTP_IOTHUB_TWIN_PATCH_DEPTH         10
#define NGX_HTTP_IOTHUB_TWIN_PATCH_TAGS_SIZE     8192
#define NGX_HTTP_IOTHUB_TWIN_PATCH_DESIRED_SIZE  32768

/*
 * Nesting of objects and arrays anywhere in the document; deeper input is
 * INVALID (reason NESTING).  It bounds the fixed parser stack.
 */
#define NGX_HTTP_IOTHUB_TWIN_PATCH_MAX_NESTING   64

/*
 * The path buffer: "properties.desired" and 11 keys of 1024 bytes, each
 * after a dot (the keys of the section object and of 10 levels of objects
 * below it).  Limits raised beyond the hub's may produce paths that do not
 * fit: such patches are INVALID ("path too long").
 */
#define NGX_HTTP_IOTHUB_TWIN_PATCH_MAX_PATH                                   \
    (sizeof("properties.desired") - 1                                         \
     + (NGX_HTTP_IOTHUB_TWIN_PATCH_DEPTH + 1)                                 \
       * (1 + NGX_HTTP_IOTHUB_TWIN_PATCH_KEY_LEN))

/*
 * Slots of the key hash table shared by all open objects (8 bytes each, a
 * power of two, at least 64); tests build with a small table to exercise
 * the fallback.
 */
#ifndef NGX_HTTP_IOTHUB_TWIN_PATCH_SLOTS
#define NGX_HTTP_IOTHUB_TWIN_PATCH_SLOTS         4096
#endif


typedef struct {
    size_t    max_key_len;       /* 1024 bytes after decoding */
    size_t    max_string_len;    /* 4096 bytes UTF-8 after decoding */
    unsigned  max_depth;         /* 10 levels of objects below the section */
    size_t    max_tags_size;     /* 8192 */
    size_t    max_desired_size;  /* 32768 */
} ngx_http_iothub_twin_patch_limits_t;


void ngx_http_iothub_twin_patch_default_limits(
    ngx_http_iothub_twin_patch_limits_t *lim);


typedef enum {
    NGX_HTTP_IOTHUB_TWIN_PATCH_OK = 0,
    /* not strict JSON -> hub code IotHubFormatError */
    NGX_HTTP_IOTHUB_TWIN_PATCH_SYNTAX,
    /* JSON but breaks a hub/gateway rule -> ArgumentInvalid */
    NGX_HTTP_IOTHUB_TWIN_PATCH_INVALID
} ngx_http_iothub_twin_patch_rc_e;


/*
 * Why validation failed, finer than the rc.  The differential tests use it
 * to tell which failures a generic JSON parser (jansson with
 * JSON_REJECT_DUPLICATES, without JSON_DECODE_ANY) shares:
 *
 *   SYNTAX       rc SYNTAX: grammar, UTF-8, escapes; jansson fails
 *   DUPLICATE    rc INVALID: duplicate key; jansson fails
 *   NUL          rc INVALID: \u0000 in a string or key; jansson fails
 *   OVERFLOW     rc INVALID: a number with a fraction or an exponent is
 *                not finite as a double; jansson fails
 *   TOP_SCALAR   rc INVALID: the document is a well-formed string, number
 *                or literal; jansson fails (JSON_DECODE_ANY off)
 *   TOP_ARRAY    rc INVALID: the document is a well-formed array; jansson
 *                succeeds
 *   NESTING      rc INVALID: nesting deeper than
 *                NGX_HTTP_IOTHUB_TWIN_PATCH_MAX_NESTING; the rest is not
 *                parsed
 *   RULE         rc INVALID: any other hub or gateway rule (shape, keys,
 *                values, depth, size, path callback); the rest is not
 *                parsed
 */
typedef enum {
    NGX_HTTP_IOTHUB_TWIN_PATCH_R_NONE = 0,
    NGX_HTTP_IOTHUB_TWIN_PATCH_R_SYNTAX,
    NGX_HTTP_IOTHUB_TWIN_PATCH_R_DUPLICATE,
    NGX_HTTP_IOTHUB_TWIN_PATCH_R_NUL,
    NGX_HTTP_IOTHUB_TWIN_PATCH_R_OVERFLOW,
    NGX_HTTP_IOTHUB_TWIN_PATCH_R_TOP_SCALAR,
    NGX_HTTP_IOTHUB_TWIN_PATCH_R_TOP_ARRAY,
    NGX_HTTP_IOTHUB_TWIN_PATCH_R_NESTING,
    NGX_HTTP_IOTHUB_TWIN_PATCH_R_RULE
} ngx_http_iothub_twin_patch_reason_e;


/*
 * Which rule a refusal broke, for counters and tests; the short names
 * ("key_dollar", "depth", "syntax", ...) are given by
 * ngx_http_iothub_twin_patch_rule_name().  RULE_NONE ("other") is both
 * "no refusal" and the refusals without a class of their own: nesting
 * beyond 64, a path over the path buffer, "properties" other than desired,
 * an ID field that is not a string, the path callback, a patch over 4 GB.
 */
typedef enum {
    NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_NONE = 0,
    NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_KEY_DOLLAR,     /* '$' in a key */
    NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_KEY_DOT,        /* '.' in a key */
    NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_KEY_SPACE,
    NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_KEY_CONTROL,    /* C0, DEL, C1 */
    NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_KEY_EMPTY,
    NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_KEY_LENGTH,
    NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_HUB_MAINTAINED, /* $metadata, $version */
    NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_STRING_LENGTH,
    NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_INTEGER_RANGE,  /* outside +-2^52 */
    NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_NUMBER_RANGE,   /* not a finite double */
    NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_NULL_IN_ARRAY,
    NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_DEPTH,
    NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_SIZE,
    NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_REPORTED,
    NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_UNKNOWN_FIELD,  /* at the top level */
    NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_ID_MISMATCH,    /* deviceId, moduleId */
    NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_DUPLICATE_KEY,
    NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_NUL,            /* \u0000 */
    NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_NOT_OBJECT,     /* patch, tags, ... */
    NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_SYNTAX,         /* rc SYNTAX */
    NGX_HTTP_IOTHUB_TWIN_PATCH_RULES                /* the number of codes */
} ngx_http_iothub_twin_patch_rule_e;


const char *ngx_http_iothub_twin_patch_rule_name(
    ngx_http_iothub_twin_patch_rule_e rule);


/* called once per written path, in document order; path is e.g.
 * "tags.location.city" or "properties.desired.telemetry.interval", not
 * NUL-terminated, valid only during the call; is_delete is 1 for a null
 * value. Returning non-zero aborts validation (rc INVALID, message
 * "path callback refused").
 *
 * Paths are reported as soon as their value is complete, so a patch that
 * turns out INVALID or SYNTAX later may already have reported some: act on
 * the paths only when the result is OK. */
typedef int (*ngx_http_iothub_twin_patch_path_pt)(void *data,
    const unsigned char *path, size_t len, int is_delete);


typedef struct {
    const char                          *device_id;  /* decoded, NUL-term */
    const char                          *module_id;  /* NULL for device twin */
    ngx_http_iothub_twin_patch_limits_t  limits;
    ngx_http_iothub_twin_patch_path_pt   path_handler;  /* may be NULL */
    void                                *path_data;

    /*
     * Non-zero: check only syntax, UTF-8, duplicate keys, \u0000, real
     * overflow, nesting and that the document is an object; no twin rules,
     * no sizes, no paths.  The whole input is parsed.
     */
    unsigned                             syntax_only;

    /* mixed into the key hash; a per-process random value is a good idea */
    unsigned                             hash_seed;

    /* results */
    size_t                               tags_size;     /* hub-counted */
    size_t                               desired_size;
    unsigned                             npaths;
    size_t                               error_offset;  /* byte offset */
    ngx_http_iothub_twin_patch_reason_e  reason;
    ngx_http_iothub_twin_patch_rule_e    rule;
    char                                 error[320];    /* NUL-terminated */
} ngx_http_iothub_twin_patch_t;


/*
 * Validates buf[0 .. len - 1].  The inputs (device_id .. hash_seed) must be
 * set; the results are all written.  On failure error holds
 * "<path>: <rule>" in printable ASCII ("$" is the root; at most 32 bytes of
 * the patch's own data, other bytes and '"' and '\' shown as \xNN) and
 * error_offset the byte offset where the problem was found.
 */
ngx_http_iothub_twin_patch_rc_e ngx_http_iothub_twin_patch_validate(
    ngx_http_iothub_twin_patch_t *p, const unsigned char *buf, size_t len);


#endif /* _NGX_HTTP_IOTHUB_TWIN_PATCH_H_INCLUDED_ */
