
/*
 * Unit tests of the twin patch validator, TAP output.
 *
 * Part 1: a table of cases {input, rc, written paths, error substring}.
 * Part 2: the differential: every table input also goes through jansson
 *         (JSON_REJECT_DUPLICATES, no JSON_DECODE_ANY) and through the
 *         validator in syntax_only mode, and the two must agree on "is this
 *         well-formed JSON without duplicate keys" (see
 *         test_patch_jansson_agrees() for the exact mapping).
 * Part 3: checks that do not fit the table: sizes counted, messages,
 *         callbacks, large objects whose duplicate check is deferred.
 *
 * gcc -O2 -g -Wall -Wextra -Werror -Ingx_iothub_twin_module \
 *     t/unit/test_patch.c ngx_iothub_twin_module/ngx_http_iothub_twin_patch.c \
 *     -ljansson -o build/unit/test_patch && build/unit/test_patch
 */


#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ngx_http_iothub_twin_patch.h"


#define OK   NGX_HTTP_IOTHUB_TWIN_PATCH_OK
#define SYN  NGX_HTTP_IOTHUB_TWIN_PATCH_SYNTAX
#define INV  NGX_HTTP_IOTHUB_TWIN_PATCH_INVALID

/* case flags */
#define DEVICE_TWIN  0x01     /* module_id NULL */
#define REFUSE_2ND   0x02     /* the callback refuses the second path */
#define NO_DIFF      0x04     /* skip the differential for this case */


typedef struct {
    const char   *name;
    const char   *input;
    size_t        len;        /* 0: strlen(input) */
    int           rc;
    const char   *paths;      /* "a|!b" ('!' = delete) or NULL: not checked */
    const char   *error;      /* substring of the message or NULL */
    unsigned      flags;
} test_patch_case_t;


typedef struct {
    char          buf[65536];
    size_t        len;
    unsigned      calls;
    unsigned      refuse_at;
} test_patch_paths_t;


static int test_patch_collect(void *data, const unsigned char *path,
    size_t len, int is_delete);
static int test_patch_run(const char *input, size_t len, unsigned flags,
    unsigned syntax_only, ngx_http_iothub_twin_patch_t *p,
    test_patch_paths_t *paths);
static int test_patch_jansson_agrees(const char *input, size_t len,
    int rc, ngx_http_iothub_twin_patch_reason_e reason, char *why,
    size_t size);
static int test_patch_message_ok(const char *msg);
static void test_patch_ok(int ok, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static char *test_patch_repeat(const char *prefix, const char *unit,
    size_t n, const char *suffix);
static char *test_patch_nest(const char *prefix, size_t levels,
    const char *open, const char *inner, const char *close,
    const char *suffix);
static char *test_patch_printf(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static char *test_patch_alloc(size_t size);
static void test_patch_add(const char *name, char *input, int rc,
    const char *paths, const char *error, unsigned flags);
static char *test_patch_keys(const char *prefix, unsigned n, const char *fmt,
    const char *extra, const char *suffix);
static char *test_patch_chain(unsigned levels, unsigned keys,
    const char *deepest);
static void test_patch_generate(void);
static void test_patch_check_case(const test_patch_case_t *c);
static void test_patch_diff_case(const test_patch_case_t *c);


static unsigned  test_patch_n;
static unsigned  test_patch_failed;

/* every generated input, freed at exit */
static char     *test_patch_allocs[4096];
static size_t    test_patch_nallocs;


/*
 * The table.  Inputs are C strings unless len is set (embedded NUL).
 */

static const test_patch_case_t  test_patch_cases[] = {

    /* shape and paths */

    { "empty patch", "{}", 0, OK, "", NULL, 0 },
    { "tags scalar", "{\"tags\":{\"a\":1}}", 0, OK, "tags.a", NULL, 0 },
    { "nested paths",
      "{\"tags\":{\"location\":{\"city\":\"Oslo\",\"zip\":1}},"
      "\"properties\":{\"desired\":{\"telemetry\":{\"interval\":5},"
      "\"off\":null}}}", 0, OK,
      "tags.location.city|tags.location.zip|"
      "properties.desired.telemetry.interval|!properties.desired.off",
      NULL, 0 },
    { "null is a delete", "{\"tags\":{\"a\":null}}", 0, OK, "!tags.a",
      NULL, 0 },
    { "array is one path", "{\"tags\":{\"a\":[1,\"x\",true,{\"k\":1},[2]]}}",
      0, OK, "tags.a", NULL, 0 },
    { "empty array is a path", "{\"tags\":{\"a\":[]}}", 0, OK, "tags.a",
      NULL, 0 },
    { "empty object is a path", "{\"tags\":{\"a\":{},\"b\":{ }}}", 0, OK,
      "tags.a|tags.b", NULL, 0 },
    { "empty sections", "{\"tags\":{},\"properties\":{\"desired\":{}}}", 0,
      OK, "", NULL, 0 },
    { "empty properties", "{\"properties\":{}}", 0, OK, "", NULL, 0 },
    { "booleans and strings",
      "{\"properties\":{\"desired\":{\"on\":true,\"off\":false,\"s\":\"\"}}}",
      0, OK, "properties.desired.on|properties.desired.off|"
      "properties.desired.s", NULL, 0 },
    { "document order",
      "{\"properties\":{\"desired\":{\"b\":1}},\"tags\":{\"a\":{\"y\":1,"
      "\"x\":{\"q\":null}}}}", 0, OK,
      "properties.desired.b|tags.a.y|!tags.a.x.q", NULL, 0 },
    { "whitespace everywhere",
      " \t\r\n{ \"tags\" : { \"a\" : [ 1 , 2 ] ,\n\"b\"\t:\r{ } } }\n\t ", 0,
      OK, "tags.a|tags.b", NULL, 0 },
    { "tags not an object", "{\"tags\":[1]}", 0, INV, NULL,
      "tags: must be a JSON object", 0 },
    { "tags null", "{\"tags\":null}", 0, INV, NULL,
      "tags: must be a JSON object", 0 },
    { "tags string", "{\"tags\":\"x\"}", 0, INV, NULL,
      "tags: must be a JSON object", 0 },
    { "tags number", "{\"tags\":1}", 0, INV, NULL,
      "tags: must be a JSON object", 0 },
    { "properties not an object", "{\"properties\":true}", 0, INV, NULL,
      "properties: must be a JSON object", 0 },
    { "desired not an object", "{\"properties\":{\"desired\":[]}}", 0, INV,
      NULL, "properties.desired: must be a JSON object", 0 },
    { "desired null", "{\"properties\":{\"desired\":null}}", 0, INV, NULL,
      "properties.desired: must be a JSON object", 0 },
    { "reported refused", "{\"properties\":{\"reported\":{\"a\":1}}}", 0,
      INV, NULL, "properties.reported: the service side may not write "
      "reported properties", 0 },
    { "reported after desired",
      "{\"properties\":{\"desired\":{\"a\":1},\"reported\":{}}}", 0, INV,
      NULL, "properties.reported:", 0 },
    { "other properties key", "{\"properties\":{\"foo\":{}}}", 0, INV, NULL,
      "properties.foo: only desired", 0 },
    { "properties $metadata", "{\"properties\":{\"$metadata\":{}}}", 0, INV,
      NULL, "properties.$metadata: only desired", 0 },
    { "unknown twin field", "{\"foo\":1}", 0, INV, NULL,
      "foo: unknown twin field", 0 },
    { "unknown field case", "{\"Tags\":{}}", 0, INV, NULL,
      "Tags: unknown twin field", 0 },
    { "escaped tags name", "{\"t\\u0061gs\":{\"a\":1}}", 0, OK, "tags.a",
      NULL, 0 },
    { "escaped desired name",
      "{\"properties\":{\"d\\u0065sired\":{\"a\":1}}}", 0, OK,
      "properties.desired.a", NULL, 0 },

    /* read-only fields */

    { "read-only fields ignored",
      "{\"deviceId\":\"dev-1\",\"moduleId\":\"mod-1\",\"etag\":\"AAAA\","
      "\"version\":3,\"status\":\"enabled\",\"statusReason\":null,"
      "\"statusUpdateTime\":\"0001-01-01T00:00:00Z\","
      "\"connectionState\":\"Disconnected\",\"lastActivityTime\":\"x\","
      "\"cloudToDeviceMessageCount\":0,\"authenticationType\":\"sas\","
      "\"x509Thumbprint\":{\"primaryThumbprint\":null,"
      "\"secondaryThumbprint\":null},\"capabilities\":{\"iotEdge\":false},"
      "\"deviceEtag\":\"x\",\"modelId\":\"\",\"deviceScope\":\"s\","
      "\"parentScopes\":[],\"managedBy\":\"m\","
      "\"configurations\":{\"c1\":{\"status\":\"targeted\"}},"
      "\"tags\":{\"a\":1}}", 0, OK, "tags.a", NULL, 0 },
    { "read-only null in array",
      "{\"parentScopes\":[null,{\"$x.y z\":null}]}", 0, OK, "", NULL, 0 },
    { "read-only duplicate",
      "{\"configurations\":{\"a\":{\"b\":1,\"b\":2}}}", 0, INV, NULL,
      "configurations: duplicate key", 0 },
    { "read-only bad syntax", "{\"status\":[1,]}", 0, SYN, NULL,
      "status: expected a value", 0 },
    { "deviceId matches", "{\"deviceId\":\"dev-1\"}", 0, OK, "", NULL, 0 },
    { "deviceId escaped", "{\"deviceId\":\"dev\\u002d1\"}", 0, OK, "", NULL,
      0 },
    { "deviceId differs", "{\"deviceId\":\"dev-2\"}", 0, INV, NULL,
      "deviceId: does not match", 0 },
    { "deviceId prefix", "{\"deviceId\":\"dev-\"}", 0, INV, NULL,
      "deviceId: does not match", 0 },
    { "deviceId longer", "{\"deviceId\":\"dev-10\"}", 0, INV, NULL,
      "deviceId: does not match", 0 },
    { "deviceId case", "{\"deviceId\":\"DEV-1\"}", 0, INV, NULL,
      "deviceId: does not match", 0 },
    { "deviceId number", "{\"deviceId\":1}", 0, INV, NULL,
      "deviceId: must be a string", 0 },
    { "deviceId null", "{\"deviceId\":null}", 0, INV, NULL,
      "deviceId: must be a string", 0 },
    { "deviceId object", "{\"deviceId\":{}}", 0, INV, NULL,
      "deviceId: must be a string", 0 },
    { "moduleId matches", "{\"moduleId\":\"mod-1\"}", 0, OK, "", NULL, 0 },
    { "moduleId differs", "{\"moduleId\":\"mod-2\"}", 0, INV, NULL,
      "moduleId: does not match", 0 },
    { "moduleId on device twin", "{\"moduleId\":\"mod-1\"}", 0, INV, NULL,
      "moduleId: not allowed in a device twin", DEVICE_TWIN },
    { "deviceId on device twin", "{\"deviceId\":\"dev-1\"}", 0, OK, "", NULL,
      DEVICE_TWIN },
    { "deviceId NUL", "{\"deviceId\":\"dev-1\\u0000\"}", 0, INV, NULL,
      "U+0000", 0 },

    /* keys */

    { "key with dot", "{\"tags\":{\"a.b\":1}}", 0, INV, NULL,
      "tags.a.b: key contains '.'", 0 },
    { "key with dollar", "{\"properties\":{\"desired\":{\"a\":{\"$b\":1}}}}",
      0, INV, NULL, "properties.desired.a.$b: key contains '$'", 0 },
    { "key with escaped dollar", "{\"tags\":{\"\\u0024x\":1}}", 0, INV, NULL,
      "tags.$x: key contains '$'", 0 },
    { "key with escaped dot", "{\"tags\":{\"a\\u002eb\":1}}", 0, INV, NULL,
      "key contains '.'", 0 },
    { "key with space", "{\"tags\":{\"a b\":1}}", 0, INV, NULL,
      "tags.a b: key contains a space", 0 },
    { "key with escaped space", "{\"tags\":{\"a\\u0020\":1}}", 0, INV, NULL,
      "key contains a space", 0 },
    { "key with tab escape", "{\"tags\":{\"a\\tb\":1}}", 0, INV, NULL,
      "tags.a\\x09b: key contains a control character", 0 },
    { "key with \\u0001", "{\"tags\":{\"a\\u0001\":1}}", 0, INV, NULL,
      "tags.a\\x01: key contains a control character", 0 },
    { "key with raw DEL", "{\"tags\":{\"a\x7f\":1}}", 0, INV, NULL,
      "tags.a\\x7f: key contains a control character", 0 },
    { "key with \\u007f", "{\"tags\":{\"\\u007f\":1}}", 0, INV, NULL,
      "key contains a control character", 0 },
    { "key with raw C1", "{\"tags\":{\"a\xc2\x85\":1}}", 0, INV, NULL,
      "tags.a\\xc2\\x85: key contains a control character", 0 },
    { "key with escaped C1", "{\"tags\":{\"\\u0080\":1}}", 0, INV, NULL,
      "key contains a control character", 0 },
    { "key with \\u009f", "{\"tags\":{\"\\u009F\":1}}", 0, INV, NULL,
      "key contains a control character", 0 },
    { "key with \\u00a0 ok", "{\"tags\":{\"\\u00a0\":1}}", 0, OK,
      "tags.\xc2\xa0", NULL, 0 },
    { "empty key", "{\"tags\":{\"\":1}}", 0, INV, NULL, "key is empty", 0 },
    { "$metadata", "{\"properties\":{\"desired\":{\"$metadata\":{}}}}", 0,
      INV, NULL, "properties.desired.$metadata: is maintained by the hub",
      0 },
    { "$version", "{\"properties\":{\"desired\":{\"$version\":4}}}", 0, INV,
      NULL, "properties.desired.$version: is maintained by the hub", 0 },
    { "escaped $version", "{\"tags\":{\"\\u0024version\":4}}", 0, INV, NULL,
      "is maintained by the hub", 0 },
    { "key rules in arrays", "{\"tags\":{\"a\":[{\"b.c\":1}]}}", 0, INV,
      NULL, "key contains '.'", 0 },
    { "key rules in nested arrays", "{\"tags\":{\"a\":[[{\"$\":1}]]}}", 0, INV,
      NULL, "key contains '$'", 0 },
    { "unicode key", "{\"tags\":{\"\xc3\xa9t\xc3\xa9\":\"\xe6\x97\xa5\"}}",
      0, OK, "tags.\xc3\xa9t\xc3\xa9", NULL, 0 },
    { "escaped unicode key", "{\"tags\":{\"\\u00e9t\\u00E9\":1}}", 0, OK,
      "tags.\xc3\xa9t\xc3\xa9", NULL, 0 },
    { "surrogate pair key", "{\"tags\":{\"\\ud83d\\ude00\":1}}", 0, OK,
      "tags.\xf0\x9f\x98\x80", NULL, 0 },
    { "hash and colon in key", "{\"tags\":{\"a#b:c\":1}}", 0, OK,
      "tags.a#b:c", NULL, 0 },
    { "escaped quote in key", "{\"tags\":{\"a\\\"b\":1}}", 0, OK,
      "tags.a\"b", NULL, 0 },
    { "escaped slash in key", "{\"tags\":{\"a\\/b\":1}}", 0, OK, "tags.a/b",
      NULL, 0 },

    /* values */

    { "integer max", "{\"tags\":{\"a\":4503599627370495}}", 0, OK, "tags.a",
      NULL, 0 },
    { "integer max + 1", "{\"tags\":{\"a\":4503599627370496}}", 0, INV, NULL,
      "tags.a: integer outside", 0 },
    { "integer min", "{\"tags\":{\"a\":-4503599627370496}}", 0, OK, "tags.a",
      NULL, 0 },
    { "integer min - 1", "{\"tags\":{\"a\":-4503599627370497}}", 0, INV,
      NULL, "integer outside", 0 },
    { "integer 17 digits", "{\"tags\":{\"a\":10000000000000000}}", 0, INV,
      NULL, "integer outside", 0 },
    { "integer 15 digits", "{\"tags\":{\"a\":999999999999999}}", 0, OK,
      "tags.a", NULL, 0 },
    { "integer huge", "{\"tags\":{\"a\":123456789012345678901234567890}}", 0,
      INV, NULL, "integer outside", 0 },
    { "integer in array out of range",
      "{\"tags\":{\"a\":[1,4503599627370496]}}", 0, INV, NULL,
      "integer outside", 0 },
    { "minus zero", "{\"tags\":{\"a\":-0,\"b\":0}}", 0, OK, "tags.a|tags.b",
      NULL, 0 },
    { "real beyond integer range ok",
      "{\"tags\":{\"a\":4503599627370496.0,\"b\":1e300}}", 0, OK,
      "tags.a|tags.b", NULL, 0 },
    { "real overflow", "{\"tags\":{\"a\":1e400}}", 0, INV, NULL,
      "number out of range of a double", 0 },
    { "negative real overflow", "{\"tags\":{\"a\":-1.5E+309}}", 0, INV, NULL,
      "number out of range", 0 },
    { "real overflow just above max",
      "{\"tags\":{\"a\":1.7976931348623159e308}}", 0, INV, NULL,
      "out of range", 0 },
    { "real max", "{\"tags\":{\"a\":1.7976931348623157e308}}", 0, OK,
      "tags.a", NULL, 0 },
    { "real underflow is zero", "{\"tags\":{\"a\":1e-400}}", 0, OK, "tags.a",
      NULL, 0 },
    { "zero with huge exponent", "{\"tags\":{\"a\":0.000e99999999999}}", 0,
      OK, "tags.a", NULL, 0 },
    { "tiny with huge exponent", "{\"tags\":{\"a\":0.0001e312}}", 0, OK,
      "tags.a", NULL, 0 },
    { "tiny with huger exponent", "{\"tags\":{\"a\":0.0001e314}}", 0, INV,
      NULL, "out of range", 0 },
    { "real overflow in read-only", "{\"version\":1e999}", 0, INV, NULL,
      "version: number out of range", 0 },
    { "big integer in read-only", "{\"version\":99999999999999999999999}", 0,
      OK, "", NULL, 0 },
    { "null inside an array", "{\"tags\":{\"a\":[1,null]}}", 0, INV, NULL,
      "tags.a: null inside an array", 0 },
    { "null nested in array", "{\"tags\":{\"a\":[[null]]}}", 0, INV, NULL,
      "null inside an array", 0 },
    { "null in object in array",
      "{\"properties\":{\"desired\":{\"a\":[{\"b\":null}]}}}", 0, INV, NULL,
      "null inside an array", 0 },
    { "literals", "{\"tags\":{\"t\":true,\"f\":false,\"n\":null}}", 0, OK,
      "tags.t|tags.f|!tags.n", NULL, 0 },
    { "string escapes",
      "{\"tags\":{\"s\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\\u00e9\\u20ac"
      "\\ud83d\\ude00\"}}", 0, OK, "tags.s", NULL, 0 },
    { "escaped control char in value ok", "{\"tags\":{\"s\":\"\\u0001\"}}",
      0, OK, "tags.s", NULL, 0 },
    { "NUL escape in value", "{\"tags\":{\"s\":\"a\\u0000\"}}", 0, INV, NULL,
      "tags.s: string contains U+0000", 0 },
    { "NUL escape in key", "{\"tags\":{\"a\\u0000\":1}}", 0, INV, NULL,
      "U+0000", 0 },
    { "NUL escape in read-only", "{\"etag\":\"\\u0000\"}", 0, INV, NULL,
      "U+0000", 0 },

    /* depth */

    { "object in array counts a level",
      "{\"tags\":{\"l1\":{\"l2\":{\"l3\":{\"l4\":{\"l5\":{\"l6\":{\"l7\":"
      "{\"l8\":{\"l9\":{\"l10\":[{\"l11\":{}}]}}}}}}}}}}}", 0, INV, NULL,
      "l9.l10.l11: more than 10 levels", 0 },
    { "object in array at level 10",
      "{\"tags\":{\"l1\":{\"l2\":{\"l3\":{\"l4\":{\"l5\":{\"l6\":{\"l7\":"
      "{\"l8\":{\"l9\":{\"l10\":[{\"l11\":1}]}}}}}}}}}}}", 0, OK,
      "tags.l1.l2.l3.l4.l5.l6.l7.l8.l9.l10", NULL, 0 },
    { "arrays do not count",
      "{\"tags\":{\"a\":[[[[[[[[[[[[1]]]]]]]]]]]]}}", 0, OK, "tags.a", NULL,
      0 },

    /* duplicates */

    { "duplicate top key", "{\"tags\":{},\"tags\":{}}", 0, INV, NULL,
      "tags: duplicate key", 0 },
    { "duplicate in tags", "{\"tags\":{\"a\":1,\"b\":2,\"a\":3}}", 0, INV,
      NULL, "tags.a: duplicate key", 0 },
    { "duplicate via escape", "{\"tags\":{\"a\":1,\"\\u0061\":2}}", 0, INV,
      NULL, "tags.a: duplicate key", 0 },
    { "duplicate via escaped unicode",
      "{\"tags\":{\"\xc3\xa9\":1,\"\\u00e9\":2}}", 0, INV, NULL,
      "duplicate key", 0 },
    { "duplicate via surrogates",
      "{\"tags\":{\"\\ud83d\\ude00\":1,\"\xf0\x9f\x98\x80\":2}}", 0, INV,
      NULL, "duplicate key", 0 },
    { "duplicate at depth",
      "{\"properties\":{\"desired\":{\"a\":{\"b\":{\"c\":{\"d\":{\"x\":1,"
      "\"y\":2,\"x\":3}}}}}}}", 0, INV, NULL,
      "properties.desired.a.b.c.d.x: duplicate key", 0 },
    { "duplicate desired", "{\"properties\":{\"desired\":{},\"desired\":{}}}",
      0, INV, NULL, "properties.desired: duplicate key", 0 },
    { "duplicate in array object", "{\"tags\":{\"a\":[{\"k\":1,\"k\":1}]}}", 0,
      INV, NULL, "duplicate key", 0 },
    { "same key in sibling objects ok",
      "{\"tags\":{\"a\":{\"k\":1},\"b\":{\"k\":1}}}", 0, OK,
      "tags.a.k|tags.b.k", NULL, 0 },
    { "same key at other depth ok", "{\"tags\":{\"k\":{\"k\":{\"k\":1}}}}", 0,
      OK, "tags.k.k.k", NULL, 0 },
    { "prefix keys differ", "{\"tags\":{\"ab\":1,\"a\":2,\"abc\":3}}", 0, OK,
      "tags.ab|tags.a|tags.abc", NULL, 0 },
    { "escape vs other char", "{\"tags\":{\"\\u0062\":1,\"a\":2}}", 0, OK,
      "tags.b|tags.a", NULL, 0 },
    { "duplicate long key via escape",
      "{\"tags\":{\"abcdefghijklmnopq\":1,\"abcdefghij\\u006blmnopq\":2}}",
      0, INV, NULL, "tags.abcdefghijklmnopq: duplicate key", 0 },
    { "duplicate 8-byte key via escape",
      "{\"tags\":{\"abcdefgh\":1,\"\\u0061bcdefgh\":2}}", 0, INV, NULL,
      "duplicate key", 0 },
    { "duplicate 9-byte key, escape last",
      "{\"tags\":{\"abcdefghi\":1,\"abcdefgh\\u0069\":2}}", 0, INV, NULL,
      "duplicate key", 0 },
    { "duplicate 16-byte key via UTF-8 escape",
      "{\"tags\":{\"abcdef\xc3\xa9ghijklmn\":1,"
      "\"abcdef\\u00e9ghijklmn\":2}}", 0, INV, NULL, "duplicate key", 0 },
    { "duplicate at the end of the input", "{\"a\":{\"ab\":1,\"ab\":1}}",
      0, INV, NULL, "a: unknown twin field", 0 },
    { "near-duplicate long keys",
      "{\"tags\":{\"abcdefghijklmnopq\":1,\"abcdefghij\\u006blmnopr\":2,"
      "\"abcdefghijklmnop\":3}}", 0, OK, NULL, NULL, 0 },
    { "duplicate after 8 keys",
      "{\"tags\":{\"k1\":1,\"k2\":1,\"k3\":1,\"k4\":1,\"k5\":1,\"k6\":1,"
      "\"k7\":1,\"k8\":1,\"k9\":1,\"k10\":1,\"k3\":1}}", 0, INV, NULL,
      "tags.k3: duplicate key", 0 },

    /* syntax */

    { "empty input", "", 0, SYN, NULL, "$: unexpected end of input", 0 },
    { "whitespace only", " \n\t\r ", 0, SYN, NULL, "end of input", 0 },
    { "BOM", "\xef\xbb\xbf{}", 0, SYN, NULL, "expected a value", 0 },
    { "trailing garbage", "{} x", 0, SYN, NULL, "unexpected data", 0 },
    { "two documents", "{}{}", 0, SYN, NULL, "unexpected data", 0 },
    { "trailing NUL", "{}\0", 3, SYN, NULL, "unexpected data", 0 },
    { "NUL before", "\0{}", 3, SYN, NULL, "expected a value", 0 },
    { "NUL after a number", "{\"tags\":{\"a\":1\0}}", 17, SYN, NULL,
      "expected ',' or '}'", 0 },
    { "NUL after a literal", "{\"tags\":{\"a\":[true\0]}}", 22, SYN,
      NULL, "expected ',' or ']'", 0 },
    { "trailing comma object", "{\"tags\":{\"a\":1,}}", 0, SYN, NULL,
      "expected a string key", 0 },
    { "trailing comma array", "{\"tags\":{\"a\":[1,]}}", 0, SYN, NULL,
      "expected a value", 0 },
    { "trailing comma top", "{\"tags\":{},}", 0, SYN, NULL,
      "expected a string key", 0 },
    { "missing comma", "{\"tags\":{\"a\":1 \"b\":2}}", 0, SYN, NULL,
      "expected ',' or '}'", 0 },
    { "missing comma array", "{\"tags\":{\"a\":[1 2]}}", 0, SYN, NULL,
      "expected ',' or ']'", 0 },
    { "missing colon", "{\"tags\" {}}", 0, SYN, NULL, "expected ':'", 0 },
    { "double colon", "{\"tags\"::{}}", 0, SYN, NULL, "expected a value",
      0 },
    { "unquoted key", "{tags:{}}", 0, SYN, NULL, "expected a string key",
      0 },
    { "single quotes", "{'tags':{}}", 0, SYN, NULL, "expected a string key",
      0 },
    { "line comment", "{\"tags\":{}} // x", 0, SYN, NULL, NULL, 0 },
    { "block comment", "{/* x */\"tags\":{}}", 0, SYN, NULL, NULL, 0 },
    { "unterminated object", "{\"tags\":{\"a\":1}", 0, SYN, NULL,
      "unexpected end of input", 0 },
    { "unterminated string", "{\"tags\":{\"a\":\"abc", 0, SYN, NULL,
      "unterminated string", 0 },
    { "unterminated key", "{\"ta", 0, SYN, NULL, "unterminated string", 0 },
    { "unterminated escape", "{\"tags\":{\"a\":\"\\", 0, SYN, NULL, NULL,
      0 },
    { "mismatched brackets", "{\"tags\":{\"a\":[1}}}", 0, SYN, NULL,
      "expected ',' or ']'", 0 },
    { "leading zero", "{\"tags\":{\"a\":01}}", 0, SYN, NULL, "leading zero",
      0 },
    { "negative leading zero", "{\"tags\":{\"a\":-01}}", 0, SYN, NULL,
      "leading zero", 0 },
    { "plus sign", "{\"tags\":{\"a\":+1}}", 0, SYN, NULL, "expected a value",
      0 },
    { "lone minus", "{\"tags\":{\"a\":-}}", 0, SYN, NULL, "invalid number",
      0 },
    { "leading dot", "{\"tags\":{\"a\":.5}}", 0, SYN, NULL,
      "expected a value", 0 },
    { "trailing dot", "{\"tags\":{\"a\":1.}}", 0, SYN, NULL,
      "invalid number", 0 },
    { "dot exponent", "{\"tags\":{\"a\":1.e5}}", 0, SYN, NULL,
      "invalid number", 0 },
    { "empty exponent", "{\"tags\":{\"a\":1e}}", 0, SYN, NULL,
      "invalid number", 0 },
    { "signed empty exponent", "{\"tags\":{\"a\":1e+}}", 0, SYN, NULL,
      "invalid number", 0 },
    { "hex number", "{\"tags\":{\"a\":0x10}}", 0, SYN, NULL, NULL, 0 },
    { "NaN", "{\"tags\":{\"a\":NaN}}", 0, SYN, NULL, "expected a value", 0 },
    { "Infinity", "{\"tags\":{\"a\":Infinity}}", 0, SYN, NULL,
      "expected a value", 0 },
    { "-Infinity", "{\"tags\":{\"a\":-Infinity}}", 0, SYN, NULL,
      "invalid number", 0 },
    { "True", "{\"tags\":{\"a\":True}}", 0, SYN, NULL, "expected a value",
      0 },
    { "tru", "{\"tags\":{\"a\":tru}}", 0, SYN, NULL, "invalid literal", 0 },
    { "nulll", "{\"tags\":{\"a\":nulll}}", 0, SYN, NULL, "expected ','", 0 },
    { "truncated literal at end", "{\"tags\":{\"a\":fals", 0, SYN, NULL,
      "invalid literal", 0 },
    { "number then letter", "{\"tags\":{\"a\":1x}}", 0, SYN, NULL,
      "expected ','", 0 },
    { "vertical tab", "{\"tags\":\v{}}", 0, SYN, NULL, NULL, 0 },
    { "form feed", "{\f}", 0, SYN, NULL, NULL, 0 },
    { "nbsp", "{\xc2\xa0}", 0, SYN, NULL, NULL, 0 },
    { "raw tab in string", "{\"tags\":{\"a\":\"x\ty\"}}", 0, SYN, NULL,
      "control character in a string", 0 },
    { "raw newline in key", "{\"tags\":{\"a\nb\":1}}", 0, SYN, NULL,
      "control character", 0 },
    { "raw NUL in string", "{\"tags\":{\"a\":\"x\0\"}}", 19, SYN, NULL,
      "control character", 0 },
    { "raw DEL in value ok", "{\"tags\":{\"a\":\"\x7f\"}}", 0, OK, "tags.a",
      NULL, 0 },
    { "invalid escape", "{\"tags\":{\"a\":\"\\x41\"}}", 0, SYN, NULL,
      "invalid escape", 0 },
    { "uppercase U escape", "{\"tags\":{\"a\":\"\\U0041\"}}", 0, SYN, NULL,
      "invalid escape", 0 },
    { "short unicode escape", "{\"tags\":{\"a\":\"\\u41\"}}", 0, SYN, NULL,
      "invalid unicode escape", 0 },
    { "bad hex escape", "{\"tags\":{\"a\":\"\\u00g1\"}}", 0, SYN, NULL,
      "invalid unicode escape", 0 },
    { "lone high surrogate", "{\"tags\":{\"a\":\"\\ud800\"}}", 0, SYN, NULL,
      "unpaired surrogate", 0 },
    { "lone low surrogate", "{\"tags\":{\"a\":\"\\udc00\"}}", 0, SYN, NULL,
      "unpaired surrogate", 0 },
    { "high then non-low", "{\"tags\":{\"a\":\"\\ud800\\u0041\"}}", 0, SYN,
      NULL, "unpaired surrogate", 0 },
    { "high then high", "{\"tags\":{\"a\":\"\\ud800\\ud800\"}}", 0, SYN,
      NULL, "unpaired surrogate", 0 },
    { "high then raw", "{\"tags\":{\"a\":\"\\ud800x\"}}", 0, SYN, NULL,
      "unpaired surrogate", 0 },
    { "high then short escape", "{\"tags\":{\"a\":\"\\ud800\\n\"}}", 0, SYN,
      NULL, "unpaired surrogate", 0 },
    { "reversed pair", "{\"tags\":{\"a\":\"\\udc00\\ud800\"}}", 0, SYN, NULL,
      "unpaired surrogate", 0 },
    { "lone surrogate in key", "{\"tags\":{\"\\udfff\":1}}", 0, SYN, NULL,
      "unpaired surrogate", 0 },
    { "max code point escape", "{\"tags\":{\"a\":\"\\udbff\\udfff\"}}", 0,
      OK, "tags.a", NULL, 0 },

    /* UTF-8 */

    { "overlong 2-byte", "{\"tags\":{\"a\":\"\xc0\x80\"}}", 0, SYN, NULL,
      "invalid UTF-8", 0 },
    { "overlong C1", "{\"tags\":{\"a\":\"\xc1\xbf\"}}", 0, SYN, NULL,
      "invalid UTF-8", 0 },
    { "overlong 3-byte", "{\"tags\":{\"a\":\"\xe0\x80\xaf\"}}", 0, SYN, NULL,
      "invalid UTF-8", 0 },
    { "overlong 4-byte", "{\"tags\":{\"a\":\"\xf0\x8f\xbf\xbf\"}}", 0, SYN,
      NULL, "invalid UTF-8", 0 },
    { "UTF-8 surrogate", "{\"tags\":{\"a\":\"\xed\xa0\x80\"}}", 0, SYN, NULL,
      "invalid UTF-8", 0 },
    { "UTF-8 low surrogate", "{\"tags\":{\"a\":\"\xed\xbf\xbf\"}}", 0, SYN,
      NULL, "invalid UTF-8", 0 },
    { "above U+10FFFF", "{\"tags\":{\"a\":\"\xf4\x90\x80\x80\"}}", 0, SYN,
      NULL, "invalid UTF-8", 0 },
    { "F5 lead", "{\"tags\":{\"a\":\"\xf5\x80\x80\x80\"}}", 0, SYN, NULL,
      "invalid UTF-8", 0 },
    { "FF byte", "{\"tags\":{\"a\":\"\xff\"}}", 0, SYN, NULL,
      "invalid UTF-8", 0 },
    { "lone continuation", "{\"tags\":{\"a\":\"\x80\"}}", 0, SYN, NULL,
      "invalid UTF-8", 0 },
    { "bad continuation", "{\"tags\":{\"a\":\"\xc3\x28\"}}", 0, SYN, NULL,
      "invalid UTF-8", 0 },
    { "truncated 3-byte", "{\"tags\":{\"a\":\"\xe2\x82\"}}", 0, SYN, NULL,
      "invalid UTF-8", 0 },
    { "truncated at end", "{\"tags\":{\"a\":\"\xf0\x9f\x98", 0, SYN, NULL,
      "invalid UTF-8", 0 },
    { "bad UTF-8 in key", "{\"tags\":{\"\xe0\xa0\":1}}", 0, SYN, NULL,
      "invalid UTF-8", 0 },
    { "bad UTF-8 in read-only", "{\"etag\":\"\xc0\xaf\"}", 0, SYN, NULL,
      "invalid UTF-8", 0 },
    { "valid 2/3/4-byte",
      "{\"tags\":{\"a\":\"\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf"
      "\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\xed\x9f\xbf\xee\x80\x80\"}}", 0, OK,
      "tags.a", NULL, 0 },

    /* top level */

    { "top array", "[]", 0, INV, NULL, "$: patch must be a JSON object", 0 },
    { "top array of objects", "[{\"tags\":{}}]", 0, INV, NULL,
      "patch must be a JSON object", 0 },
    { "top string", "\"tags\"", 0, INV, NULL, "patch must be a JSON object",
      0 },
    { "top number", " 1 ", 0, INV, NULL, "patch must be a JSON object", 0 },
    { "top null", "null", 0, INV, NULL, "patch must be a JSON object", 0 },
    { "top array bad syntax", "[1,]", 0, SYN, NULL, "expected a value", 0 },
    { "top literal garbage", "true false", 0, SYN, NULL, "unexpected data",
      0 },

    /* the callback */

    { "callback refuses", "{\"tags\":{\"a\":1,\"b\":2,\"c\":3}}", 0, INV,
      "tags.a|tags.b", "tags.b: path callback refused", REFUSE_2ND },
};




/* all cases: the table, then the generated ones */
static test_patch_case_t  *test_patch_all;
static size_t              test_patch_nall;

/* 2^1024 - 2^970: the smallest decimal that rounds to infinity */
static const char  test_patch_dbl_limit[] =
    "1797693134862315807937289714053034150799341327100378269361737789804"
    "4496829276475094664901797758720709633028641669288791094655554785194"
    "0402630657488671505820681908902000708383676273854845817711531764475"
    "7302700698555713669596228429148198608349364752927190741684443655107"
    "04342711559699508093042880177904174497792";


typedef void (*test_patch_misc_pt)(void);

static void test_patch_misc_limits(void);
static void test_patch_misc_sizes(void);
static void test_patch_misc_no_handler(void);
static void test_patch_misc_offsets(void);
static void test_patch_misc_excerpt(void);
static void test_patch_misc_syntax_only(void);
static void test_patch_misc_reasons(void);
static void test_patch_misc_seed(void);
static void test_patch_misc_big_object(void);
static void test_patch_misc_big_first_dup(void);
static void test_patch_misc_big_section(void);
static void test_patch_misc_exhausted(void);
static void test_patch_misc_many_objects(void);
static void test_patch_misc_size_on_error(void);
static void test_patch_misc_raised_limits(void);
static void test_patch_misc_rules(void);
static void test_patch_misc_stops(void);

static const test_patch_misc_pt  test_patch_misc[] = {
    test_patch_misc_limits,
    test_patch_misc_sizes,
    test_patch_misc_no_handler,
    test_patch_misc_offsets,
    test_patch_misc_excerpt,
    test_patch_misc_syntax_only,
    test_patch_misc_reasons,
    test_patch_misc_seed,
    test_patch_misc_big_object,
    test_patch_misc_big_first_dup,
    test_patch_misc_big_section,
    test_patch_misc_exhausted,
    test_patch_misc_many_objects,
    test_patch_misc_size_on_error,
    test_patch_misc_raised_limits,
    test_patch_misc_rules,
    test_patch_misc_stops,
};


int
main(void)
{
    size_t  i, n, nmisc;

    n = sizeof(test_patch_cases) / sizeof(test_patch_cases[0]);

    test_patch_all = calloc(n + 256, sizeof(test_patch_case_t));
    if (test_patch_all == NULL) {
        return 2;
    }

    memcpy(test_patch_all, test_patch_cases, sizeof(test_patch_cases));
    test_patch_nall = n;

    test_patch_generate();

    nmisc = sizeof(test_patch_misc) / sizeof(test_patch_misc[0]);

    printf("1..%u\n", (unsigned) (2 * test_patch_nall + nmisc));

    for (i = 0; i < test_patch_nall; i++) {
        test_patch_check_case(&test_patch_all[i]);
    }

    for (i = 0; i < test_patch_nall; i++) {
        test_patch_diff_case(&test_patch_all[i]);
    }

    for (i = 0; i < nmisc; i++) {
        test_patch_misc[i]();
    }

    while (test_patch_nallocs) {
        free(test_patch_allocs[--test_patch_nallocs]);
    }

    free(test_patch_all);

    if (test_patch_failed) {
        printf("# %u of %u failed\n", test_patch_failed, test_patch_n);
        return 1;
    }

    return 0;
}


static char *
test_patch_alloc(size_t size)
{
    char  *s;

    s = malloc(size);
    if (s == NULL
        || test_patch_nallocs == sizeof(test_patch_allocs) / sizeof(char *))
    {
        printf("Bail out! out of memory\n");
        exit(2);
    }

    test_patch_allocs[test_patch_nallocs++] = s;

    return s;
}


static void
test_patch_generate(void)
{
    char  *s;

    /* keys: 1024 bytes after decoding, however they are written */

    test_patch_add("key 1024 bytes",
        test_patch_repeat("{\"tags\":{\"", "k", 1024, "\":1}}"),
        OK, NULL, NULL, 0);
    test_patch_add("key 1025 bytes",
        test_patch_repeat("{\"tags\":{\"", "k", 1025, "\":1}}"),
        INV, NULL, "key longer than 1024 bytes", 0);
    test_patch_add("key 1024 bytes with escapes",
        test_patch_repeat("{\"tags\":{\"", "\\u0062", 1024, "\":1}}"),
        OK, NULL, NULL, 0);
    test_patch_add("key 1025 bytes with escapes",
        test_patch_repeat("{\"tags\":{\"", "\\u0062", 1025, "\":1}}"),
        INV, NULL, "key longer than 1024 bytes", 0);
    test_patch_add("key 1024 bytes of 2-byte chars",
        test_patch_repeat("{\"tags\":{\"", "\xc3\xa9", 512, "\":1}}"),
        OK, NULL, NULL, 0);
    test_patch_add("key 1026 bytes of 2-byte escapes",
        test_patch_repeat("{\"tags\":{\"", "\\u00e9", 513, "\":1}}"),
        INV, NULL, "key longer than 1024 bytes", 0);
    test_patch_add("key 1024 bytes of 4-byte pairs",
        test_patch_repeat("{\"tags\":{\"", "\\ud83d\\ude00", 256, "\":1}}"),
        OK, NULL, NULL, 0);
    test_patch_add("desired key 1025 bytes",
        test_patch_repeat("{\"properties\":{\"desired\":{\"a\":{\"", "k", 1025,
                          "\":1}}}}"),
        INV, NULL, "key longer than 1024 bytes", 0);
    test_patch_add("read-only key 5000 bytes",
        test_patch_repeat("{\"configurations\":{\"", "k", 5000, "\":1}}"),
        OK, "", NULL, 0);
    test_patch_add("unknown field 5000 bytes",
        test_patch_repeat("{\"", "k", 5000, "\":1}"),
        INV, NULL, ": unknown twin field", 0);

    /* strings: 4096 bytes after decoding */

    test_patch_add("string 4096 bytes",
        test_patch_repeat("{\"tags\":{\"s\":\"", "x", 4096, "\"}}"),
        OK, "tags.s", NULL, 0);
    test_patch_add("string 4097 bytes",
        test_patch_repeat("{\"tags\":{\"s\":\"", "x", 4097, "\"}}"),
        INV, NULL, "tags.s: string longer than 4096 bytes", 0);
    test_patch_add("string 4096 bytes of \\n",
        test_patch_repeat("{\"tags\":{\"s\":\"", "\\n", 4096, "\"}}"),
        OK, "tags.s", NULL, 0);
    test_patch_add("string 4097 bytes of \\u0041",
        test_patch_repeat("{\"tags\":{\"s\":\"", "\\u0041", 4097, "\"}}"),
        INV, NULL, "string longer than 4096 bytes", 0);
    test_patch_add("string 4096 bytes of \\u00e9",
        test_patch_repeat("{\"tags\":{\"s\":\"", "\\u00e9", 2048, "\"}}"),
        OK, "tags.s", NULL, 0);
    test_patch_add("string 4097 bytes: \\u00e9 and one more",
        test_patch_repeat("{\"tags\":{\"s\":\"x", "\\u00e9", 2048, "\"}}"),
        INV, NULL, "string longer than 4096 bytes", 0);
    test_patch_add("string 4096 bytes of 4-byte chars",
        test_patch_repeat("{\"tags\":{\"s\":\"", "\xf0\x9f\x98\x80", 1024,
                          "\"}}"),
        OK, "tags.s", NULL, 0);
    test_patch_add("string 4097 bytes in an array",
        test_patch_repeat("{\"properties\":{\"desired\":{\"a\":[\"", "x",
                          4097, "\"]}}}"),
        INV, NULL, "properties.desired.a: string longer than", 0);
    test_patch_add("read-only string 100000 bytes",
        test_patch_repeat("{\"etag\":\"", "x", 100000, "\"}"),
        OK, "", NULL, 0);

    /*
     * depth: 10 levels of objects below the section, counted as the hub
     * counts them: the section object is level 0, the object value of one
     * of its keys level 1; the hub's own example is valid, one more level
     * is not, in tags and in desired, in device and in module twins
     */

    test_patch_add("hub example in tags, module twin",
        "{\"tags\":{\"one\":{\"two\":{\"three\":{\"four\":{\"five\":"
        "{\"six\":{\"seven\":{\"eight\":{\"nine\":{\"ten\":"
        "{\"property\":\"value\"}}}}}}}}}}}}",
        OK, "tags.one.two.three.four.five.six.seven.eight.nine.ten.property",
        NULL, 0);
    test_patch_add("hub example in tags, device twin",
        "{\"tags\":{\"one\":{\"two\":{\"three\":{\"four\":{\"five\":"
        "{\"six\":{\"seven\":{\"eight\":{\"nine\":{\"ten\":"
        "{\"property\":\"value\"}}}}}}}}}}}}",
        OK, "tags.one.two.three.four.five.six.seven.eight.nine.ten.property",
        NULL, DEVICE_TWIN);
    test_patch_add("hub example plus one in tags, module twin",
        "{\"tags\":{\"one\":{\"two\":{\"three\":{\"four\":{\"five\":"
        "{\"six\":{\"seven\":{\"eight\":{\"nine\":{\"ten\":"
        "{\"eleven\":{\"property\":\"value\"}}}}}}}}}}}}}",
        INV, NULL, "tags.one.two....en.eight.nine.ten.eleven: "
        "more than 10 levels", 0);
    test_patch_add("hub example plus one in tags, device twin",
        "{\"tags\":{\"one\":{\"two\":{\"three\":{\"four\":{\"five\":"
        "{\"six\":{\"seven\":{\"eight\":{\"nine\":{\"ten\":"
        "{\"eleven\":{\"property\":\"value\"}}}}}}}}}}}}}",
        INV, NULL, "more than 10 levels", DEVICE_TWIN);
    test_patch_add("hub example in desired, module twin",
        "{\"properties\":{\"desired\":{\"one\":{\"two\":{\"three\":"
        "{\"four\":{\"five\":{\"six\":{\"seven\":{\"eight\":{\"nine\":"
        "{\"ten\":{\"property\":\"value\"}}}}}}}}}}}}}",
        OK, "properties.desired.one.two.three.four.five.six.seven.eight.nine"
        ".ten.property", NULL, 0);
    test_patch_add("hub example in desired, device twin",
        "{\"properties\":{\"desired\":{\"one\":{\"two\":{\"three\":"
        "{\"four\":{\"five\":{\"six\":{\"seven\":{\"eight\":{\"nine\":"
        "{\"ten\":{\"property\":\"value\"}}}}}}}}}}}}}",
        OK, "properties.desired.one.two.three.four.five.six.seven.eight.nine"
        ".ten.property", NULL, DEVICE_TWIN);
    test_patch_add("hub example plus one in desired, module twin",
        "{\"properties\":{\"desired\":{\"one\":{\"two\":{\"three\":"
        "{\"four\":{\"five\":{\"six\":{\"seven\":{\"eight\":{\"nine\":"
        "{\"ten\":{\"eleven\":{\"property\":\"value\"}}}}}}}}}}}}}}",
        INV, NULL, "properties.desired.one.two....en.eight.nine.ten."
        "eleven: more than 10 levels", 0);
    test_patch_add("hub example plus one in desired, device twin",
        "{\"properties\":{\"desired\":{\"one\":{\"two\":{\"three\":"
        "{\"four\":{\"five\":{\"six\":{\"seven\":{\"eight\":{\"nine\":"
        "{\"ten\":{\"eleven\":{\"property\":\"value\"}}}}}}}}}}}}}}",
        INV, NULL, "more than 10 levels", DEVICE_TWIN);

    test_patch_add("depth 10 in tags",
        test_patch_nest("{\"tags\":", 10, "{\"k\":", "{\"k\":1}", "}", "}"),
        OK, "tags.k.k.k.k.k.k.k.k.k.k.k", NULL, 0);
    test_patch_add("depth 11 in tags",
        test_patch_nest("{\"tags\":", 11, "{\"k\":", "{\"k\":1}", "}", "}"),
        INV, NULL, "tags.k.k.k.k.k.k.k.k.k.k.k: more than 10 levels", 0);
    test_patch_add("depth 10 empty object leaf",
        test_patch_nest("{\"tags\":", 10, "{\"k\":", "{}", "}", "}"),
        OK, "tags.k.k.k.k.k.k.k.k.k.k", NULL, 0);
    test_patch_add("depth 11 empty object",
        test_patch_nest("{\"tags\":", 11, "{\"k\":", "{}", "}", "}"),
        INV, NULL, "more than 10 levels", 0);
    test_patch_add("depth 10 in desired",
        test_patch_nest("{\"properties\":{\"desired\":", 10, "{\"k\":",
                        "{\"k\":null}", "}", "}}"),
        OK, "!properties.desired.k.k.k.k.k.k.k.k.k.k.k", NULL, 0);
    test_patch_add("depth 11 in desired",
        test_patch_nest("{\"properties\":{\"desired\":", 11, "{\"k\":",
                        "{\"k\":null}", "}", "}}"),
        INV, NULL, "more than 10 levels", 0);
    test_patch_add("depth 10 through arrays",
        test_patch_nest("{\"tags\":", 10, "{\"k\":[", "{\"k\":1}", "]}", "}"),
        OK, "tags.k", NULL, 0);
    test_patch_add("depth 11 through arrays",
        test_patch_nest("{\"tags\":", 11, "{\"k\":[", "{\"k\":1}", "]}", "}"),
        INV, NULL, "more than 10 levels", 0);
    test_patch_add("read-only depth 30",
        test_patch_nest("{\"configurations\":", 30, "{\"k\":", "1", "}", "}"),
        OK, "", NULL, 0);

    /* nesting: 64 containers anywhere */

    test_patch_add("nesting 64",
        test_patch_nest("{\"configurations\":", 63, "[", "", "]", "}"),
        OK, "", NULL, 0);
    test_patch_add("nesting 65",
        test_patch_nest("{\"configurations\":", 64, "[", "", "]", "}"),
        INV, NULL, "configurations: nesting deeper than 64 levels", 0);
    test_patch_add("nesting 10000 unclosed",
        test_patch_repeat("", "[", 10000, ""),
        INV, NULL, "nesting deeper than 64", 0);
    test_patch_add("nesting 3000 closed",
        test_patch_nest("{\"configurations\":", 3000, "{\"a\":", "1", "}",
                        "}"),
        INV, NULL, "nesting deeper than 64", 0);

    /* sizes */

    s = test_patch_printf("{\"tags\":{\"a\":\"%s\",\"b\":\"%s\"}}",
                          test_patch_repeat("", "x", 4095, ""),
                          test_patch_repeat("", "x", 4095, ""));
    test_patch_add("tags 8192 bytes", s, OK, "tags.a|tags.b", NULL, 0);

    s = test_patch_printf("{\"tags\":{\"a\":\"%s\",\"b\":\"%s\"}}",
                          test_patch_repeat("", "x", 4095, ""),
                          test_patch_repeat("", "x", 4096, ""));
    test_patch_add("tags 8193 bytes", s, INV, NULL,
                   "tags: size exceeds the 8192 byte limit", 0);

    s = test_patch_printf("{\"tags\":{\"a\":\"%s\",\"b\":\"%s\",\"c\":1}}",
                          test_patch_repeat("", "x", 4095, ""),
                          test_patch_repeat("", "x", 4086, ""));
    test_patch_add("tags 8192 bytes with a number", s, OK, NULL, NULL, 0);

    s = test_patch_printf("{\"tags\":{\"a\":\"%s\",\"b\":\"%s\",\"c\":true}}",
                          test_patch_repeat("", "x", 4095, ""),
                          test_patch_repeat("", "x", 4092, ""));
    test_patch_add("tags 8193 bytes with a boolean", s, INV, NULL,
                   "exceeds the 8192 byte limit", 0);

    s = test_patch_printf("{\"tags\":{\"a\":\"%s\",\"b\":\"%s\",\"c\":null}}",
                          test_patch_repeat("", "x", 4095, ""),
                          test_patch_repeat("", "x", 4094, ""));
    test_patch_add("tags 8192 bytes with null = 0", s, OK, NULL, NULL, 0);

    s = test_patch_printf("{\"properties\":{\"desired\":{"
                          "\"a\":\"%s\",\"b\":\"%s\",\"c\":\"%s\",\"d\":\"%s\","
                          "\"e\":\"%s\",\"f\":\"%s\",\"g\":\"%s\","
                          "\"h\":{\"i\":[\"%s\"]}}}}",
                          test_patch_repeat("", "x", 4095, ""),
                          test_patch_repeat("", "x", 4095, ""),
                          test_patch_repeat("", "x", 4095, ""),
                          test_patch_repeat("", "x", 4095, ""),
                          test_patch_repeat("", "x", 4095, ""),
                          test_patch_repeat("", "x", 4095, ""),
                          test_patch_repeat("", "x", 4095, ""),
                          test_patch_repeat("", "x", 4094, ""));
    test_patch_add("desired 32768 bytes", s, OK, NULL, NULL, 0);

    s = test_patch_printf("{\"properties\":{\"desired\":{"
                          "\"a\":\"%s\",\"b\":\"%s\",\"c\":\"%s\",\"d\":\"%s\","
                          "\"e\":\"%s\",\"f\":\"%s\",\"g\":\"%s\","
                          "\"h\":{\"i\":[\"%s\"]}}}}",
                          test_patch_repeat("", "x", 4095, ""),
                          test_patch_repeat("", "x", 4095, ""),
                          test_patch_repeat("", "x", 4095, ""),
                          test_patch_repeat("", "x", 4095, ""),
                          test_patch_repeat("", "x", 4095, ""),
                          test_patch_repeat("", "x", 4095, ""),
                          test_patch_repeat("", "x", 4095, ""),
                          test_patch_repeat("", "x", 4095, ""));
    test_patch_add("desired 32769 bytes", s, INV, NULL,
                   "properties.desired: size exceeds the 32768 byte limit"
                   " (32769 bytes counted so far)", 0);

    s = test_patch_printf("{\"tags\":{\"a\":\"%s\",\"b\":\"%s\"},"
                          "\"properties\":{\"desired\":{\"a\":\"%s\"}}}",
                          test_patch_repeat("", "x", 4095, ""),
                          test_patch_repeat("", "x", 4095, ""),
                          test_patch_repeat("", "x", 4095, ""));
    test_patch_add("sections counted apart", s, OK, NULL, NULL, 0);

    /* numbers at the limit of a double */

    s = test_patch_printf("{\"tags\":{\"a\":%.1s.%se308}}",
                          test_patch_dbl_limit, test_patch_dbl_limit + 1);
    test_patch_add("real at the overflow limit", s, INV, NULL,
                   "out of range", 0);

    s = test_patch_printf("{\"tags\":{\"a\":%.308s.99999}}",
                          test_patch_dbl_limit);
    s[strlen(s) - 11] = '1';
    test_patch_add("real just below the overflow limit", s, OK, "tags.a",
                   NULL, 0);

    s = test_patch_printf("{\"tags\":{\"a\":%s}}", test_patch_dbl_limit);
    test_patch_add("309-digit integer", s, INV, NULL, "integer outside", 0);

    s = test_patch_printf("{\"tags\":{\"a\":%s.0}}", test_patch_dbl_limit);
    test_patch_add("309-digit real at the limit", s, INV, NULL,
                   "out of range", 0);

    s = test_patch_printf("{\"tags\":{\"a\":0.%s%se319}}",
                          "0000000000", test_patch_dbl_limit);
    test_patch_add("limit written with leading zeros", s, INV, NULL,
                   "out of range", 0);

    s = test_patch_printf("{\"tags\":{\"a\":%se-1}}", test_patch_dbl_limit);
    test_patch_add("limit scaled down", s, OK, "tags.a", NULL, 0);

    /* duplicates across many keys */

    s = test_patch_repeat("{\"tags\":{", "\"a\":1,", 2, "\"b\":2}}");
    test_patch_add("repeated key", s, INV, NULL, "tags.a: duplicate key", 0);
}


static void
test_patch_add(const char *name, char *input, int rc, const char *paths,
    const char *error, unsigned flags)
{
    test_patch_case_t  *c;

    c = &test_patch_all[test_patch_nall++];

    c->name = name;
    c->input = input;
    c->len = strlen(input);
    c->rc = rc;
    c->paths = paths;
    c->error = error;
    c->flags = flags;
}


static void
test_patch_check_case(const test_patch_case_t *c)
{
    int                            rc, ok;
    size_t                         len;
    const char                    *why;
    test_patch_paths_t            *paths;
    ngx_http_iothub_twin_patch_t   p;

    len = c->len ? c->len : strlen(c->input);

    paths = malloc(sizeof(test_patch_paths_t));
    if (paths == NULL) {
        exit(2);
    }

    rc = test_patch_run(c->input, len, c->flags, 0, &p, paths);

    ok = 1;
    why = "";

    if (rc != c->rc) {
        ok = 0;
        why = "rc";

    } else if (c->paths && strcmp(paths->buf, c->paths) != 0) {
        ok = 0;
        why = "paths";

    } else if (c->error && strstr(p.error, c->error) == NULL) {
        ok = 0;
        why = "message";

    } else if (rc != OK && !test_patch_message_ok(p.error)) {
        ok = 0;
        why = "message format";

    } else if (rc == OK && (p.error[0] != '\0' || p.npaths != paths->calls)) {
        ok = 0;
        why = "results";

    } else if (rc != OK && p.error_offset > len) {
        ok = 0;
        why = "offset";
    }

    test_patch_ok(ok, "%s", c->name);

    if (!ok) {
        printf("#   failed on %s: rc %d (expected %d) at %u, \"%s\"\n"
               "#   paths \"%.200s\"\n",
               why, rc, c->rc, (unsigned) p.error_offset, p.error,
               paths->buf);
    }

    free(paths);
}


static void
test_patch_diff_case(const test_patch_case_t *c)
{
    int                            rc, src, ok;
    size_t                         len;
    char                           why[512];
    ngx_http_iothub_twin_patch_t   p, sp;

    len = c->len ? c->len : strlen(c->input);

    rc = test_patch_run(c->input, len, c->flags, 0, &p, NULL);
    src = test_patch_run(c->input, len, c->flags, 1, &sp, NULL);

    why[0] = '\0';
    ok = test_patch_jansson_agrees(c->input, len, src, sp.reason, why,
                                   sizeof(why))
         && test_patch_jansson_agrees(c->input, len, rc, p.reason, why,
                                      sizeof(why));

    /* the twin rules only ever stop a parse early */

    if (ok && rc == SYN && (src != SYN || sp.error_offset != p.error_offset))
    {
        ok = 0;
        snprintf(why, sizeof(why), "syntax_only gave %d at %u",
                 src, (unsigned) sp.error_offset);
    }

    if (ok && rc == OK && src != OK) {
        ok = 0;
        snprintf(why, sizeof(why), "syntax_only gave %d: %s", src, sp.error);
    }

    if (ok && sp.npaths != 0) {
        ok = 0;
        snprintf(why, sizeof(why), "syntax_only reported paths");
    }

    test_patch_ok(ok, "differential: %s", c->name);

    if (!ok) {
        printf("#   %s\n", why);
    }
}


/*
 * The differential rule.  The validator and jansson (JSON_REJECT_DUPLICATES,
 * JSON_DECODE_ANY off) agree on "well-formed JSON without duplicate keys":
 *
 *   validator says                          jansson must
 *   OK, or INVALID reason TOP_ARRAY         succeed
 *   SYNTAX, or INVALID reason DUPLICATE,    fail
 *     NUL, OVERFLOW or TOP_SCALAR
 *   INVALID reason NESTING or RULE          (not compared: the validator
 *                                            stopped early on its own rule)
 *
 * Inputs jansson refuses only for its own limits are not compared: an
 * integer beyond long long ("too big integer", "too big negative integer")
 * and nesting beyond 2048.  Nor are inputs with a NUL byte that jansson
 * accepts: jansson 2.14 drops a NUL right after a number or a literal
 * ("[1\0]" loads), while no well-formed JSON text holds a raw NUL.
 */

static int
test_patch_jansson_agrees(const char *input, size_t len, int rc,
    ngx_http_iothub_twin_patch_reason_e reason, char *why, size_t size)
{
    int            expect_ok;
    json_t        *j;
    json_error_t   err;

    if (rc == OK || reason == NGX_HTTP_IOTHUB_TWIN_PATCH_R_TOP_ARRAY) {
        expect_ok = 1;

    } else if (rc == SYN
               || reason == NGX_HTTP_IOTHUB_TWIN_PATCH_R_DUPLICATE
               || reason == NGX_HTTP_IOTHUB_TWIN_PATCH_R_NUL
               || reason == NGX_HTTP_IOTHUB_TWIN_PATCH_R_OVERFLOW
               || reason == NGX_HTTP_IOTHUB_TWIN_PATCH_R_TOP_SCALAR)
    {
        expect_ok = 0;

    } else {
        return 1;
    }

    j = json_loadb(input, len, JSON_REJECT_DUPLICATES, &err);

    if (j != NULL) {
        json_decref(j);

        if (expect_ok || memchr(input, '\0', len) != NULL) {
            return 1;
        }

        snprintf(why, size, "jansson accepts, validator rc %d reason %d",
                 rc, (int) reason);
        return 0;
    }

    if (json_error_code(&err) == json_error_stack_overflow
        || (json_error_code(&err) == json_error_numeric_overflow
            && strstr(err.text, "too big") != NULL))
    {
        return 1;
    }

    if (!expect_ok) {
        return 1;
    }

    snprintf(why, size, "jansson fails (%s at %d), validator rc %d",
             err.text, err.position, rc);
    return 0;
}


static int
test_patch_run(const char *input, size_t len, unsigned flags,
    unsigned syntax_only, ngx_http_iothub_twin_patch_t *p,
    test_patch_paths_t *paths)
{
    memset(p, 0x5a, sizeof(ngx_http_iothub_twin_patch_t));

    p->device_id = "dev-1";
    p->module_id = (flags & DEVICE_TWIN) ? NULL : "mod-1";
    ngx_http_iothub_twin_patch_default_limits(&p->limits);
    p->path_handler = paths ? test_patch_collect : NULL;
    p->path_data = paths;
    p->syntax_only = syntax_only;
    p->hash_seed = 0;

    if (paths) {
        paths->buf[0] = '\0';
        paths->len = 0;
        paths->calls = 0;
        paths->refuse_at = (flags & REFUSE_2ND) ? 2 : 0;
    }

    return ngx_http_iothub_twin_patch_validate(p,
                                        (const unsigned char *) input, len);
}


static int
test_patch_collect(void *data, const unsigned char *path, size_t len,
    int is_delete)
{
    test_patch_paths_t  *paths;

    paths = data;
    paths->calls++;

    if (paths->len + len + 3 < sizeof(paths->buf)) {
        if (paths->len) {
            paths->buf[paths->len++] = '|';
        }

        if (is_delete) {
            paths->buf[paths->len++] = '!';
        }

        memcpy(paths->buf + paths->len, path, len);
        paths->len += len;
        paths->buf[paths->len] = '\0';
    }

    return paths->calls == paths->refuse_at;
}


/* printable ASCII, "<path>: <rule>", no '"', '\' only in \xNN */

static int
test_patch_message_ok(const char *msg)
{
    size_t  i, n;

    n = strlen(msg);

    if (n == 0 || n >= 320 || strstr(msg, ": ") == NULL) {
        return 0;
    }

    for (i = 0; i < n; i++) {
        if (msg[i] < 0x20 || msg[i] > 0x7e || msg[i] == '"') {
            return 0;
        }

        if (msg[i] == '\\' && msg[i + 1] != 'x') {
            return 0;
        }
    }

    return 1;
}


static void
test_patch_ok(int ok, const char *fmt, ...)
{
    va_list  args;

    test_patch_n++;

    if (!ok) {
        test_patch_failed++;
    }

    printf("%sok %u - ", ok ? "" : "not ", test_patch_n);

    va_start(args, fmt);
    vprintf(fmt, args);
    va_end(args);

    printf("\n");
}


static char *
test_patch_repeat(const char *prefix, const char *unit, size_t n,
    const char *suffix)
{
    char    *s, *d;
    size_t   i, lp, lu, ls;

    lp = strlen(prefix);
    lu = strlen(unit);
    ls = strlen(suffix);

    s = test_patch_alloc(lp + lu * n + ls + 1);

    d = s;
    memcpy(d, prefix, lp);
    d += lp;

    for (i = 0; i < n; i++) {
        memcpy(d, unit, lu);
        d += lu;
    }

    memcpy(d, suffix, ls + 1);

    return s;
}


/* prefix open^levels inner close^levels suffix */

static char *
test_patch_nest(const char *prefix, size_t levels, const char *open,
    const char *inner, const char *close, const char *suffix)
{
    char  *a;

    a = test_patch_repeat(prefix, open, levels, inner);

    return test_patch_repeat(a, close, levels, suffix);
}


static char *
test_patch_printf(const char *fmt, ...)
{
    int       n;
    char     *s;
    va_list   args;

    va_start(args, fmt);
    n = vsnprintf(NULL, 0, fmt, args);
    va_end(args);

    s = test_patch_alloc((size_t) n + 1);

    va_start(args, fmt);
    vsnprintf(s, (size_t) n + 1, fmt, args);
    va_end(args);

    return s;
}


static void
test_patch_misc_limits(void)
{
    ngx_http_iothub_twin_patch_limits_t  lim;

    memset(&lim, 0, sizeof(lim));
    ngx_http_iothub_twin_patch_default_limits(&lim);

    test_patch_ok(lim.max_key_len == 1024 && lim.max_string_len == 4096
                  && lim.max_depth == 10 && lim.max_tags_size == 8192
                  && lim.max_desired_size == 32768,
                  "default limits");
}


static void
test_patch_misc_sizes(void)
{
    int                            rc;
    const char                    *in;
    test_patch_paths_t            *paths;
    ngx_http_iothub_twin_patch_t   p;

    /*
     * tags: keys ab n b z o k = 7, "xyz" 3, 1 -> 8, true 4, null 0,
     * [1,"s"] 8 + 1: 31; desired: keys "t" "u" 2, 2.5 8, "\u00e9" 2: 12
     */

    in = "{\"tags\":{\"ab\":\"xyz\",\"n\":1,\"b\":true,\"z\":null,"
         "\"o\":{\"k\":[1,\"s\"]}},"
         "\"properties\":{\"desired\":{\"t\":2.5,\"u\":\"\\u00e9\"}},"
         "\"etag\":\"ignored, not counted\"}";

    paths = malloc(sizeof(test_patch_paths_t));
    if (paths == NULL) {
        exit(2);
    }

    rc = test_patch_run(in, strlen(in), 0, 0, &p, paths);

    test_patch_ok(rc == OK && p.tags_size == 31 && p.desired_size == 12
                  && p.npaths == 7 && paths->calls == 7,
                  "sizes counted like the hub");

    if (rc != OK || p.tags_size != 31 || p.desired_size != 12) {
        printf("#   rc %d tags %u desired %u npaths %u: %s\n", rc,
               (unsigned) p.tags_size, (unsigned) p.desired_size, p.npaths,
               p.error);
    }

    free(paths);
}


static void
test_patch_misc_no_handler(void)
{
    int                            rc;
    const char                    *in;
    ngx_http_iothub_twin_patch_t   p;

    in = "{\"tags\":{\"a\":{\"b\":1,\"c\":[]},\"d\":null}}";

    rc = test_patch_run(in, strlen(in), 0, 0, &p, NULL);

    test_patch_ok(rc == OK && p.npaths == 3 && p.tags_size == 12,
                  "no path handler: paths still counted");
}


static void
test_patch_misc_offsets(void)
{
    int                            ok;
    ngx_http_iothub_twin_patch_t   p;

    ok = 1;

#define test_patch_offset(in, off)                                            \
    (void) test_patch_run(in, sizeof(in) - 1, 0, 0, &p, NULL);                 \
    if (p.error_offset != (off)) {                                            \
        printf("#   %s: offset %u, expected %u\n", in,                        \
               (unsigned) p.error_offset, (unsigned) (off));                  \
        ok = 0;                                                               \
    }

    test_patch_offset("{\"tags\":{\"a\":1,\"a\":2}}", 15);
    test_patch_offset("{} x", 3);
    test_patch_offset("{\"tags\":{\"a\":\"xy\xc0\x80\"}}", 16);
    test_patch_offset("{\"tags\":{\"a\":\"x\\ud800\"}}", 15);
    test_patch_offset("{\"tags\":{\"a\":4503599627370496}}", 13);
    test_patch_offset("{\"tags\":{\"a.b\":1}}", 9);
    test_patch_offset("{\"tags\":{\"a\":1", 14);
    test_patch_offset("", 0);
    test_patch_offset("{\"tags\":{\"a\":[null]}}", 14);

#undef test_patch_offset

    test_patch_ok(ok, "error offsets");
}


static void
test_patch_misc_excerpt(void)
{
    int                            rc;
    char                          *in, *expect;
    ngx_http_iothub_twin_patch_t   p;

    /* a long key: 8 bytes, "...", the last 24 bytes */

    in = test_patch_printf("{\"tags\":{\"%s%s%s\":1}}",
                           test_patch_repeat("", "h", 8, ""),
                           test_patch_repeat("", "a", 900, ""),
                           test_patch_repeat("", "\\u0001", 24, ""));

    rc = test_patch_run(in, strlen(in), 0, 0, &p, NULL);

    expect = test_patch_printf("tags.hhhhhhhh...%s: key contains a control "
                               "character",
                               test_patch_repeat("", "\\x01", 24, ""));

    test_patch_ok(rc == INV && strcmp(p.error, expect) == 0
                  && test_patch_message_ok(p.error),
                  "long path excerpt");

    if (strcmp(p.error, expect) != 0) {
        printf("#   got      \"%s\"\n#   expected \"%s\"\n", p.error, expect);
    }

}


static void
test_patch_misc_syntax_only(void)
{
    int                            ok;
    ngx_http_iothub_twin_patch_t   p;

    ok = 1;

#define test_patch_so(in, rc_, reason_)                                      \
    if (test_patch_run(in, sizeof(in) - 1, 0, 1, &p, NULL) != (rc_)          \
        || p.reason != (reason_) || p.npaths != 0)                           \
    {                                                                         \
        printf("#   %s: rc %d reason %d\n", in,                              \
               test_patch_run(in, sizeof(in) - 1, 0, 1, &p, NULL),           \
               (int) p.reason);                                               \
        ok = 0;                                                               \
    }

    test_patch_so("{\"foo\":{\"$x.y z\":null}}", OK,
                  NGX_HTTP_IOTHUB_TWIN_PATCH_R_NONE);
    test_patch_so("{\"tags\":{\"a\":[null],\"b\":99999999999999999999}}", OK,
                  NGX_HTTP_IOTHUB_TWIN_PATCH_R_NONE);
    test_patch_so("{\"properties\":{\"reported\":1}}", OK,
                  NGX_HTTP_IOTHUB_TWIN_PATCH_R_NONE);
    test_patch_so("[1,{}]", INV, NGX_HTTP_IOTHUB_TWIN_PATCH_R_TOP_ARRAY);
    test_patch_so("\"x\"", INV, NGX_HTTP_IOTHUB_TWIN_PATCH_R_TOP_SCALAR);
    test_patch_so("{\"a\":1,\"a\":2}", INV,
                  NGX_HTTP_IOTHUB_TWIN_PATCH_R_DUPLICATE);
    test_patch_so("{\"a\":\"\\u0000\"}", INV,
                  NGX_HTTP_IOTHUB_TWIN_PATCH_R_NUL);
    test_patch_so("{\"a\":-1e400}", INV,
                  NGX_HTTP_IOTHUB_TWIN_PATCH_R_OVERFLOW);
    test_patch_so("{\"a\":01}", SYN, NGX_HTTP_IOTHUB_TWIN_PATCH_R_SYNTAX);
    test_patch_so("[1,{\"a\":1,}]", SYN, NGX_HTTP_IOTHUB_TWIN_PATCH_R_SYNTAX);

#undef test_patch_so

    test_patch_ok(ok, "syntax_only mode");
}


static void
test_patch_misc_reasons(void)
{
    int                            ok;
    ngx_http_iothub_twin_patch_t   p;

    ok = 1;

#define test_patch_reason(in, reason_)                                       \
    (void) test_patch_run(in, sizeof(in) - 1, 0, 0, &p, NULL);               \
    if (p.reason != (reason_)) {                                             \
        printf("#   %s: reason %d\n", in, (int) p.reason);                   \
        ok = 0;                                                               \
    }

    test_patch_reason("{\"tags\":{}}", NGX_HTTP_IOTHUB_TWIN_PATCH_R_NONE);
    test_patch_reason("{\"tags\":{", NGX_HTTP_IOTHUB_TWIN_PATCH_R_SYNTAX);
    test_patch_reason("{\"tags\":{\"a\":1,\"a\":1}}",
                      NGX_HTTP_IOTHUB_TWIN_PATCH_R_DUPLICATE);
    test_patch_reason("{\"tags\":{\"a\\u0000\":1}}",
                      NGX_HTTP_IOTHUB_TWIN_PATCH_R_NUL);
    test_patch_reason("{\"tags\":{\"a\":1E999}}",
                      NGX_HTTP_IOTHUB_TWIN_PATCH_R_OVERFLOW);
    test_patch_reason("1", NGX_HTTP_IOTHUB_TWIN_PATCH_R_TOP_SCALAR);
    test_patch_reason("[]", NGX_HTTP_IOTHUB_TWIN_PATCH_R_TOP_ARRAY);
    test_patch_reason("{\"tags\":{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
                      "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
                      NGX_HTTP_IOTHUB_TWIN_PATCH_R_NESTING);
    test_patch_reason("{\"tags\":{\"a.\":1}}",
                      NGX_HTTP_IOTHUB_TWIN_PATCH_R_RULE);

#undef test_patch_reason

    test_patch_ok(ok, "reasons");
}


static void
test_patch_misc_seed(void)
{
    int                            ok, rc;
    char                          *dup, *big;
    unsigned                       i;
    ngx_http_iothub_twin_patch_t   p;
    static const unsigned          seeds[] = { 0, 1, 0xdeadbeef, 0xffffffff };

    dup = "{\"tags\":{\"a\":1,\"b\":1,\"c\":1,\"d\":1,\"e\":1,\"f\":1,\"g\":1,"
          "\"h\":1,\"i\":1,\"j\":1,\"k\":1,\"l\":1,\"a\":1}}";
    big = test_patch_repeat("{\"configurations\":{\"a\":{", "\"x\":{},", 1,
                            "\"y\":1}}}");

    ok = 1;

    for (i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
        memset(&p, 0, sizeof(p));
        p.device_id = "dev-1";
        ngx_http_iothub_twin_patch_default_limits(&p.limits);
        p.hash_seed = seeds[i];

        rc = ngx_http_iothub_twin_patch_validate(&p,
                                 (const unsigned char *) dup, strlen(dup));
        if (rc != INV || p.reason != NGX_HTTP_IOTHUB_TWIN_PATCH_R_DUPLICATE
            || p.error_offset != strlen(dup) - 7)
        {
            ok = 0;
        }

        rc = ngx_http_iothub_twin_patch_validate(&p,
                                 (const unsigned char *) big, strlen(big));
        if (rc != OK) {
            ok = 0;
        }
    }


    test_patch_ok(ok, "hash seeds do not change results");
}


/* an object too large for the table: checked when it closes */

static char *
test_patch_keys(const char *prefix, unsigned n, const char *fmt,
    const char *extra, const char *suffix)
{
    char      *s, *d;
    unsigned   i;

    s = test_patch_alloc(strlen(prefix) + (size_t) n * (strlen(fmt) + 24)
                         + strlen(extra) + strlen(suffix) + 1);

    d = s + sprintf(s, "%s", prefix);

    for (i = 0; i < n; i++) {
        d += sprintf(d, fmt, i);
        *d++ = ',';
    }

    sprintf(d, "%s%s", extra, suffix);

    return s;
}


static void
test_patch_misc_big_object(void)
{
    int                            ok, rc;
    char                          *in;
    size_t                         off;
    json_t                        *j;
    ngx_http_iothub_twin_patch_t   p;

    ok = 1;

    /* 20000 keys without a duplicate */

    in = test_patch_keys("{\"configurations\":{", 20000, "\"k%u\":[1]",
                         "\"z\":{}", "}}");
    rc = test_patch_run(in, strlen(in), 0, 0, &p, NULL);
    if (rc != OK) {
        printf("#   20000 keys: %s\n", p.error);
        ok = 0;
    }


    /* a duplicate at the end, written with an escape */

    in = test_patch_keys("{\"configurations\":{", 20000, "\"k%u\":{\"x\":1}",
                         "\"\\u006b17\":1", "}}");
    off = strstr(in, "\"\\u006b17\"") - in;
    rc = test_patch_run(in, strlen(in), 0, 0, &p, NULL);
    if (rc != INV || p.reason != NGX_HTTP_IOTHUB_TWIN_PATCH_R_DUPLICATE
        || p.error_offset != off
        || strcmp(p.error, "configurations: duplicate key") != 0)
    {
        printf("#   20000 keys + dup: rc %d at %u (%u): %s\n", rc,
               (unsigned) p.error_offset, (unsigned) off, p.error);
        ok = 0;
    }

    /* and jansson agrees */

    j = json_loadb(in, strlen(in), JSON_REJECT_DUPLICATES, NULL);

    if (j != NULL) {
        json_decref(j);
        ok = 0;
    }


    test_patch_ok(ok, "20000 keys in one object");
}


static void
test_patch_misc_big_first_dup(void)
{
    int                            ok, rc;
    char                          *in;
    size_t                         off;
    ngx_http_iothub_twin_patch_t   p;

    /* several duplicates: the first repeated key in document order wins */

    in = test_patch_keys("{\"status\":{", 9000, "\"k%u\":1",
                         "\"k8999\":1,\"k5\":1,\"k4000\":1,\"k5\":1", "}}");
    off = strstr(in, "\"k8999\":1,\"k5\"") - in;
    rc = test_patch_run(in, strlen(in), 0, 0, &p, NULL);

    ok = (rc == INV && p.reason == NGX_HTTP_IOTHUB_TWIN_PATCH_R_DUPLICATE
          && p.error_offset == off);

    if (!ok) {
        printf("#   rc %d at %u (%u): %s\n", rc, (unsigned) p.error_offset,
               (unsigned) off, p.error);
    }


    test_patch_ok(ok, "first duplicate in document order");
}


static void
test_patch_misc_big_section(void)
{
    int                            ok, rc;
    char                          *in;
    test_patch_paths_t            *paths;
    ngx_http_iothub_twin_patch_t   p;

    paths = malloc(sizeof(test_patch_paths_t));
    if (paths == NULL) {
        exit(2);
    }

    /* 3000 keys under desired: 3000 * 5 bytes + 8 = 15008 */

    in = test_patch_keys("{\"properties\":{\"desired\":{", 3000,
                         "\"%04u\":null", "\"x\":1", "}}}");
    rc = test_patch_run(in, strlen(in), 0, 0, &p, paths);

    ok = (rc == OK && p.npaths == 3001 && p.desired_size == 3000 * 4 + 9);

    if (!ok) {
        printf("#   rc %d npaths %u size %u: %s\n", rc, p.npaths,
               (unsigned) p.desired_size, p.error);
    }


    in = test_patch_keys("{\"properties\":{\"desired\":{", 3000,
                         "\"%04u\":null", "\"0007\":1", "}}}");
    rc = test_patch_run(in, strlen(in), 0, 0, &p, paths);

    if (rc != INV
        || strcmp(p.error, "properties.desired.0007: duplicate key") != 0)
    {
        printf("#   rc %d: %s\n", rc, p.error);
        ok = 0;
    }

    free(paths);

    test_patch_ok(ok, "3000 keys in desired, duplicate found at close");
}


/* nested objects of 200 keys each use up the table */

static char *
test_patch_chain(unsigned levels, unsigned keys, const char *deepest)
{
    char      *s, *d;
    unsigned   i, j;

    s = test_patch_alloc((size_t) levels * (keys * 16 + 16) + strlen(deepest)
                         + 64);

    d = s + sprintf(s, "{\"configurations\":");

    for (i = 0; i < levels; i++) {
        *d++ = '{';

        for (j = 0; j < keys; j++) {
            d += sprintf(d, "\"k%u\":%u,", j, j);
        }

        d += sprintf(d, "\"next\":");
    }

    d += sprintf(d, "%s", deepest);

    for (i = 0; i < levels; i++) {
        *d++ = '}';
    }

    sprintf(d, "}");

    return s;
}


static void
test_patch_misc_exhausted(void)
{
    int                            ok, rc;
    char                          *in;
    ngx_http_iothub_twin_patch_t   p;

    ok = 1;

    in = test_patch_chain(40, 200, "{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,"
                          "\"f\":6,\"g\":7,\"h\":8,\"i\":9,\"j\":10,\"k\":11}");
    rc = test_patch_run(in, strlen(in), 0, 0, &p, NULL);
    if (rc != OK) {
        printf("#   chain: %s\n", p.error);
        ok = 0;
    }


    in = test_patch_chain(40, 200, "{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,"
                          "\"f\":6,\"g\":7,\"h\":8,\"i\":9,\"j\":10,\"a\":11}");
    rc = test_patch_run(in, strlen(in), 0, 0, &p, NULL);
    if (rc != INV || p.reason != NGX_HTTP_IOTHUB_TWIN_PATCH_R_DUPLICATE
        || p.error_offset != (size_t) (strstr(in, "\"a\":11") - in))
    {
        printf("#   chain + dup: rc %d %s\n", rc, p.error);
        ok = 0;
    }


    /* a duplicate in an outer level, after the inner ones closed */

    in = test_patch_chain(40, 200, "1");
    memcpy(strstr(in, "\"next\":1}") , "\"k199\":1}", 9);
    rc = test_patch_run(in, strlen(in), 0, 0, &p, NULL);
    if (rc != INV || p.reason != NGX_HTTP_IOTHUB_TWIN_PATCH_R_DUPLICATE) {
        printf("#   chain + inner dup: rc %d %s\n", rc, p.error);
        ok = 0;
    }


    test_patch_ok(ok, "hash table exhausted by nesting");
}


static void
test_patch_misc_many_objects(void)
{
    int                            rc;
    char                          *in;
    ngx_http_iothub_twin_patch_t   p;

    /* many sibling objects: regions are given back when they close */

    in = test_patch_keys("{\"tags\":{\"a\":[", 500,
                         "{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,"
                         "\"g\":7,\"h\":8,\"i\":9,\"j%u\":10}",
                         "{}", "]}}");
    rc = test_patch_run(in, strlen(in), 0, 0, &p, NULL);

    test_patch_ok(rc == INV && strstr(p.error, "exceeds the 8192") != NULL,
                  "many sibling objects");

}


static void
test_patch_misc_size_on_error(void)
{
    int                            rc;
    const char                    *in;
    ngx_http_iothub_twin_patch_t   p;

    in = "{\"tags\":{\"ab\":1,\"c\":x}}";
    rc = test_patch_run(in, strlen(in), 0, 0, &p, NULL);

    test_patch_ok(rc == SYN && p.tags_size == 11 && p.desired_size == 0,
                  "sizes counted up to an error");
}


/* limits above the hub's: paths may outgrow the path buffer */

static void
test_patch_misc_raised_limits(void)
{
    int                            ok, rc;
    char                          *in, *key;
    ngx_http_iothub_twin_patch_t   p;

    key = test_patch_repeat("{\"", "k", 1024, "\":");
    ok = 1;

    /*
     * 18 + 11 * 1025 bytes hold 10 keys and ".a"; 11 keys and ".a" do
     * not fit
     */

    in = test_patch_nest("{\"properties\":{\"desired\":", 11, key,
                         "{\"a\":1}", "}", "}}");

    memset(&p, 0, sizeof(p));
    p.device_id = "dev-1";
    ngx_http_iothub_twin_patch_default_limits(&p.limits);
    p.limits.max_depth = 20;
    p.limits.max_desired_size = 1000000;

    rc = ngx_http_iothub_twin_patch_validate(&p, (unsigned char *) in,
                                             strlen(in));
    if (rc != INV || strstr(p.error, ": path too long") == NULL
        || !test_patch_message_ok(p.error))
    {
        printf("#   rc %d: %s\n", rc, p.error);
        ok = 0;
    }

    in = test_patch_nest("{\"properties\":{\"desired\":", 10, key,
                         "{\"a\":1}", "}", "}}");

    rc = ngx_http_iothub_twin_patch_validate(&p, (unsigned char *) in,
                                             strlen(in));
    if (rc != OK) {
        printf("#   rc %d: %s\n", rc, p.error);
        ok = 0;
    }

    /* a 2000-byte key allowed */

    p.limits.max_key_len = 2000;
    in = test_patch_repeat("{\"tags\":{\"", "k", 2000, "\":null}}");

    rc = ngx_http_iothub_twin_patch_validate(&p, (unsigned char *) in,
                                             strlen(in));
    if (rc != OK || p.npaths != 1) {
        printf("#   rc %d: %s\n", rc, p.error);
        ok = 0;
    }

    test_patch_ok(ok, "raised limits, path buffer bound");
}


/* every refusal class sets its rule code, and each code has its name */

static void
test_patch_misc_rules(void)
{
    int                            ok, rc;
    size_t                         i;
    const char                    *name;
    ngx_http_iothub_twin_patch_t   p;

#define R(r)  NGX_HTTP_IOTHUB_TWIN_PATCH_RULE_##r

    static const struct {
        const char                          *input;
        unsigned                             flags;
        ngx_http_iothub_twin_patch_rule_e    rule;
        const char                          *name;
    } cases[] = {
        { "{\"tags\":{\"a\":1}}", 0, R(NONE), "other" },
        { "{\"tags\":{\"a$\":1}}", 0, R(KEY_DOLLAR), "key_dollar" },
        { "{\"tags\":{\"\\u0024a\":1}}", 0, R(KEY_DOLLAR), "key_dollar" },
        { "{\"tags\":{\"a.b\":1}}", 0, R(KEY_DOT), "key_dot" },
        { "{\"tags\":{\"a b\":1}}", 0, R(KEY_SPACE), "key_space" },
        { "{\"tags\":{\"a\\u0085\":1}}", 0, R(KEY_CONTROL), "key_control" },
        { "{\"tags\":{\"\":1}}", 0, R(KEY_EMPTY), "key_empty" },
        { "{\"properties\":{\"desired\":{\"$version\":1}}}", 0,
          R(HUB_MAINTAINED), "hub_maintained" },
        { "{\"tags\":{\"a\":1e999}}", 0, R(NUMBER_RANGE), "number_range" },
        { "{\"tags\":{\"a\":4503599627370496}}", 0, R(INTEGER_RANGE),
          "integer_range" },
        { "{\"tags\":{\"a\":[1,null]}}", 0, R(NULL_IN_ARRAY),
          "null_in_array" },
        { "{\"tags\":{\"1\":{\"2\":{\"3\":{\"4\":{\"5\":{\"6\":{\"7\":"
          "{\"8\":{\"9\":{\"10\":{\"11\":{}}}}}}}}}}}}}", 0, R(DEPTH),
          "depth" },
        { "{\"properties\":{\"reported\":{}}}", 0, R(REPORTED), "reported" },
        { "{\"tag\":{}}", 0, R(UNKNOWN_FIELD), "unknown_field" },
        { "{\"deviceId\":\"other\"}", 0, R(ID_MISMATCH), "id_mismatch" },
        { "{\"moduleId\":\"mod-2\"}", 0, R(ID_MISMATCH), "id_mismatch" },
        { "{\"moduleId\":\"mod-1\"}", DEVICE_TWIN, R(ID_MISMATCH),
          "id_mismatch" },
        { "{\"tags\":{\"a\":1,\"a\":2}}", 0, R(DUPLICATE_KEY),
          "duplicate_key" },
        { "{\"etag\":\"\\u0000\"}", 0, R(NUL), "nul" },
        { "[]", 0, R(NOT_OBJECT), "not_object" },
        { "1", 0, R(NOT_OBJECT), "not_object" },
        { "{\"tags\":[]}", 0, R(NOT_OBJECT), "not_object" },
        { "{\"tags\":{\"a\":1,}}", 0, R(SYNTAX), "syntax" },
        { "{\"tags\":{\"a\":\"\xff\"}}", 0, R(SYNTAX), "syntax" },
        { "{\"properties\":{\"other\":{}}}", 0, R(NONE), "other" },
        { "{\"deviceId\":1}", 0, R(NONE), "other" },
        { "{\"tags\":{\"a\":1,\"b\":2}}", REFUSE_2ND, R(NONE), "other" },
    };

    ok = 1;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        test_patch_paths_t  *paths;

        paths = malloc(sizeof(test_patch_paths_t));
        if (paths == NULL) {
            exit(2);
        }

        rc = test_patch_run(cases[i].input, strlen(cases[i].input),
                            cases[i].flags, 0, &p, paths);
        free(paths);

        name = ngx_http_iothub_twin_patch_rule_name(p.rule);

        if (p.rule != cases[i].rule || strcmp(name, cases[i].name) != 0
            || (rc == OK) != (i == 0)
            || (rc == SYN) != (cases[i].rule == R(SYNTAX)))
        {
            printf("#   %s: rc %d, rule %d (%s), expected %d (%s): %s\n",
                   cases[i].input, rc, (int) p.rule, name,
                   (int) cases[i].rule, cases[i].name, p.error);
            ok = 0;
        }
    }

    /* the size rule needs a big input */

    {
        char  *in;

        in = test_patch_keys("{\"tags\":{", 1000, "\"k%u\":\"vvvvvvvvvv\"",
                             "\"x\":1", "}}");
        rc = test_patch_run(in, strlen(in), 0, 0, &p, NULL);

        if (rc != INV || p.rule != R(SIZE)
            || strcmp(ngx_http_iothub_twin_patch_rule_name(p.rule), "size"))
        {
            printf("#   size: rc %d rule %d\n", rc, (int) p.rule);
            ok = 0;
        }

        in = test_patch_repeat("{\"tags\":{\"", "k", 1025, "\":1}}");
        rc = test_patch_run(in, strlen(in), 0, 0, &p, NULL);

        if (rc != INV || p.rule != R(KEY_LENGTH)) {
            printf("#   key length: rc %d rule %d\n", rc, (int) p.rule);
            ok = 0;
        }

        in = test_patch_repeat("{\"tags\":{\"a\":\"", "s", 4097, "\"}}");
        rc = test_patch_run(in, strlen(in), 0, 0, &p, NULL);

        if (rc != INV || p.rule != R(STRING_LENGTH)) {
            printf("#   string length: rc %d rule %d\n", rc, (int) p.rule);
            ok = 0;
        }

        in = test_patch_nest("{\"configurations\":", 64, "[", "", "]", "}");
        rc = test_patch_run(in, strlen(in), 0, 0, &p, NULL);

        if (rc != INV || p.rule != R(NONE)) {
            printf("#   nesting: rc %d rule %d\n", rc, (int) p.rule);
            ok = 0;
        }
    }

    /* names: one per code, the metric labels; out of range is "other" */

    if (strcmp(ngx_http_iothub_twin_patch_rule_name(
                   NGX_HTTP_IOTHUB_TWIN_PATCH_RULES), "other") != 0
        || strcmp(ngx_http_iothub_twin_patch_rule_name(R(SYNTAX)), "syntax")
           != 0
        || strcmp(ngx_http_iothub_twin_patch_rule_name(R(KEY_DOT)), "key_dot")
           != 0)
    {
        printf("#   names\n");
        ok = 0;
    }

#undef R

    test_patch_ok(ok, "each refusal class sets its rule code");
}


/*
 * Every byte that stops the fast string and key loops (16 bytes at a time
 * with SSE2, 4 at a time in the scalar loops), at every offset of strings
 * and keys of 1 to 48 bytes, and at the end of the input: the result and
 * the offset are those of the byte itself.
 */

static void
test_patch_misc_stops(void)
{
    int                            ok, rc;
    char                           in[256];
    size_t                         i, len, at, prefix;
    const char                    *what;
    ngx_http_iothub_twin_patch_t   p;

    static const struct {
        const char   *bytes;
        int           in_key;       /* 1: in the key, 0: in the value */
        int           rc;
        const char   *error;
    } stops[] = {
        { "\\n", 0, OK, NULL },
        { "\\u00e9", 0, OK, NULL },
        { "\xc3\xa9", 0, OK, NULL },
        { "\xf0\x9f\x98\x80", 0, OK, NULL },
        { "\x01", 0, SYN, "control character" },
        { "\x7f", 0, OK, NULL },
        { "\xff", 0, SYN, "invalid UTF-8" },
        { "\xe2\x82", 0, SYN, "invalid UTF-8" },
        { ".", 0, OK, NULL },
        { "\\n", 1, INV, "control character" },
        { "\xc3\xa9", 1, OK, NULL },
        { "\x1f", 1, SYN, "control character" },
        { ".", 1, INV, "key contains '.'" },
        { "$", 1, INV, "key contains '$'" },
        { " ", 1, INV, "key contains a space" },
        { "\x7f", 1, INV, "control character" },
        { "\xc2\x85", 1, INV, "control character" },
        { "\xc0\x80", 1, SYN, "invalid UTF-8" },
    };

    ok = 1;
    prefix = strlen("{\"tags\":{\"");

    for (i = 0; i < sizeof(stops) / sizeof(stops[0]); i++) {

        for (len = 1; len <= 48; len++) {
            for (at = 0; at < len; at++) {

                /* len plain bytes with the stop inserted at offset at */

                if (stops[i].in_key) {
                    snprintf(in, sizeof(in), "{\"tags\":{\"%.*s%s%.*s\":1}}",
                             (int) at, "abcdefghijklmnopqrstuvwxyzABCDEF"
                             "GHIJKLMNOPQRSTUV", stops[i].bytes,
                             (int) (len - at), "0123456789012345678901234"
                             "56789012345678901234567");

                } else {
                    snprintf(in, sizeof(in),
                             "{\"tags\":{\"k\":\"%.*s%s%.*s\"}}",
                             (int) at, "abcdefghijklmnopqrstuvwxyzABCDEF"
                             "GHIJKLMNOPQRSTUV", stops[i].bytes,
                             (int) (len - at), "0123456789012345678901234"
                             "56789012345678901234567");
                }

                rc = test_patch_run(in, strlen(in), 0, 0, &p, NULL);

                what = NULL;

                if (rc != stops[i].rc) {
                    what = "rc";

                } else if (stops[i].error
                           && strstr(p.error, stops[i].error) == NULL)
                {
                    what = "message";

                } else if (rc == SYN
                           && p.error_offset != prefix + at
                                                + (stops[i].in_key ? 0 : 4))
                {
                    what = "offset";
                }

                if (what) {
                    printf("#   %s: %s (rc %d at %u: %s)\n", what, in, rc,
                           (unsigned) p.error_offset, p.error);
                    ok = 0;
                    goto done;
                }
            }
        }

        /* the input ends inside the string, after the stop */

        len = (size_t) snprintf(in, sizeof(in), "{\"tags\":{\"k\":\"%s%s",
                                "abcdefghijklmnopqrstuvwxyz", stops[i].bytes);
        rc = test_patch_run(in, len, 0, 0, &p, NULL);

        if (rc != SYN) {
            printf("#   truncated: %s (rc %d: %s)\n", in, rc, p.error);
            ok = 0;
        }
    }

done:

    test_patch_ok(ok, "stops at every offset of strings and keys");
}
