
/*
 * Copyright (C) ngx_iothub_twin developers
 *
 * Unit tests of the read filter, TAP output.
 *
 * Part 1: a table of twins and scopes with the exact output, the count
 *         and the record of what was withheld; each case again in place
 *         (the input its own output: the same result), in report mode
 *         (same count and record, nothing written, out NULL) and again
 *         over its own output (the filter is idempotent).
 * Part 2: syntax: invalid values of every class, in kept, dropped, walked
 *         and metadata positions, and whole texts that are not one JSON
 *         object, all -1; valid values in the same positions, kept
 *         verbatim; nesting up to 64 and not beyond; commas: every subset
 *         of six members kept.
 * Part 3: the differential against jansson: random twins (tags, both
 *         sections with $metadata as the hub writes it, before or after
 *         the data, extra metadata, arrays, unicode) dumped compact or
 *         indented, random predicates (a hash of the path), pruned by a
 *         reference written here over jansson's tree; the filter's output
 *         loaded by jansson must be json_equal to it, with the same count
 *         and record.
 *
 * SEED=<n> in the environment picks another sequence; ROUNDS=<n> more
 * twins.
 *
 * gcc -O2 -g -Wall -Wextra -Werror -Ingx_iothub_twin_module \
 *     t/unit/test_filter.c \
 *     ngx_iothub_twin_module/ngx_http_iothub_twin_filter.c \
 *     -ljansson -o build/unit/test_filter && build/unit/test_filter
 */


#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>

#include <jansson.h>

#include "tap.h"
#include "ngx_http_iothub_twin_filter.h"


#define NONE  NGX_HTTP_IOTHUB_TWIN_READ_NONE
#define ALL   NGX_HTTP_IOTHUB_TWIN_READ_ALL
#define SOME  NGX_HTTP_IOTHUB_TWIN_READ_SOME

/* how test_filter_run() runs the filter */
#define TEST_FILTER_COPY      0
#define TEST_FILTER_REPORT    1
#define TEST_FILTER_IN_PLACE  2


/* a scope: "path=A path=S ..." with a default for the other paths */
typedef struct {
    const char  *scope;
    int          dflt;
    unsigned     calls;
} test_filter_scope_t;


typedef struct {
    const char  *name;
    const char  *in;
    const char  *scope;
    int          dflt;
    const char  *out;          /* NULL: -1 expected */
    unsigned     withheld;
    const char  *first;
} test_filter_case_t;


/* what the top hook was told: each member where it is, and a copy */
typedef struct {
    unsigned              calls;
    const unsigned char  *at[16];
    size_t                len[16];
    char                  copy[16][256];
} test_filter_tops_t;


/* the reference's state: a predicate seed, the count and the record */
typedef struct {
    uint64_t     seed;
    unsigned     withheld;
    char         first[256];
    size_t       first_len;
    unsigned     first_full;
} test_filter_ref_t;


static int test_filter_scope_read(void *data, const unsigned char *path,
    size_t len);
static int test_filter_run(const char *in, size_t len, const char *scope,
    int dflt, unsigned mode, ngx_http_iothub_twin_filter_t *f,
    unsigned char **out);
static void test_filter_top(void *data, const unsigned char *member,
    size_t len);
static int test_filter_tops_ok(const unsigned char *out, size_t len);
static void test_filter_table(void);
static void test_filter_case(const test_filter_case_t *c);
static void test_filter_tops(void);
static void test_filter_syntax(void);
static void test_filter_whole(void);
static void test_filter_strings(void);
static void test_filter_nesting(void);
static void test_filter_commas(void);
static void test_filter_first(void);
static void test_filter_differential(void);

static int test_filter_hash_read(void *data, const unsigned char *path,
    size_t len);
static int test_filter_hash_verdict(uint64_t seed, const char *path,
    size_t len);
static void test_filter_ref_withhold(test_filter_ref_t *r, const char *path);
static json_t *test_filter_ref_top(test_filter_ref_t *r, json_t *twin);
static void test_filter_ref_member(test_filter_ref_t *r, json_t *dst,
    const char *key, json_t *val, const char *path, int verdict);
static json_t *test_filter_ref_data(test_filter_ref_t *r, json_t *obj,
    const char *path);
static void test_filter_ref_node(test_filter_ref_t *r, json_t *dst,
    const char *key, json_t *val, const char *path, int verdict,
    int is_props);
static json_t *test_filter_ref_section(test_filter_ref_t *r, json_t *obj,
    const char *path, int none, int *dropped);
static json_t *test_filter_ref_props(test_filter_ref_t *r, json_t *obj,
    int none, int *dropped);
static json_t *test_filter_ref_meta(test_filter_ref_t *r, json_t *obj,
    const char *path, int none, int rollback);
static char *test_filter_join(const char *path, const char *key);

static unsigned test_filter_rand(void);
static void test_filter_key(char *buf, size_t size);
static json_t *test_filter_gen_value(unsigned depth);
static json_t *test_filter_gen_tree(unsigned depth);
static json_t *test_filter_gen_meta(json_t *data, unsigned version);
static json_t *test_filter_gen_section(void);
static json_t *test_filter_gen_twin(void);


static uint64_t            test_filter_seed = 20261111;
static test_filter_tops_t  test_filter_told;


int
main(void)
{
    const char  *s;

    s = getenv("SEED");
    if (s != NULL) {
        test_filter_seed = strtoull(s, NULL, 10);
    }

    test_filter_table();
    test_filter_tops();
    test_filter_syntax();
    test_filter_whole();
    test_filter_strings();
    test_filter_nesting();
    test_filter_commas();
    test_filter_first();
    test_filter_differential();

    return tap_done();
}


/* ------------------------------------------------------------ helpers */


static int
test_filter_scope_read(void *data, const unsigned char *path, size_t len)
{
    const char           *p, *eq, *sp;
    test_filter_scope_t  *s;

    s = data;
    s->calls++;

    for (p = s->scope; *p != '\0'; p = sp) {
        while (*p == ' ') {
            p++;
        }

        sp = strchr(p, ' ');
        if (sp == NULL) {
            sp = p + strlen(p);
        }

        eq = sp;
        while (eq > p && *eq != '=') {
            eq--;
        }

        if (*eq == '=' && (size_t) (eq - p) == len
            && memcmp(p, path, len) == 0)
        {
            return eq[1] == 'A' ? ALL : (eq[1] == 'S' ? SOME : NONE);
        }
    }

    return s->dflt;
}


/*
 * out: a buffer of exactly len bytes (freed by the caller), NULL in
 * report; in place, that buffer holds a copy of the input and is filtered
 * as its own output.
 */

static int
test_filter_run(const char *in, size_t len, const char *scope, int dflt,
    unsigned mode, ngx_http_iothub_twin_filter_t *f, unsigned char **out)
{
    static test_filter_scope_t  s;

    s.scope = scope ? scope : "";
    s.dflt = dflt;
    s.calls = 0;

    memset(f, 0x5a, sizeof(ngx_http_iothub_twin_filter_t));

    f->read = test_filter_scope_read;
    f->data = &s;
    f->top = test_filter_top;
    f->top_data = &test_filter_told;
    f->report = (mode == TEST_FILTER_REPORT);
    f->out = NULL;

    test_filter_told.calls = 0;

    if (!f->report) {
        f->out = malloc(len ? len : 1);
        if (f->out == NULL) {
            abort();
        }
    }

    *out = f->out;

    if (mode == TEST_FILTER_IN_PLACE) {
        memcpy(f->out, in, len);
        return ngx_http_iothub_twin_filter(f, f->out, len);
    }

    return ngx_http_iothub_twin_filter(f, (const unsigned char *) in, len);
}


static void
test_filter_top(void *data, const unsigned char *member, size_t len)
{
    test_filter_tops_t  *t = data;

    if (t->calls < 16) {
        t->at[t->calls] = member;
        t->len[t->calls] = len;
        snprintf(t->copy[t->calls], sizeof(t->copy[0]), "%.*s", (int) len,
                 member);
    }

    t->calls++;
}


/*
 * Each member the top hook was told of is in the output, one after the
 * other, still as it was when told, and begins with a key.
 */

static int
test_filter_tops_ok(const unsigned char *out, size_t len)
{
    unsigned             i;
    const unsigned char  *prev;
    test_filter_tops_t   *t = &test_filter_told;

    prev = out;

    for (i = 0; i < t->calls && i < 16; i++) {
        if (t->at[i] < prev || t->at[i] + t->len[i] > out + len
            || t->len[i] < 3 || t->at[i][0] != '"'
            || (t->len[i] < sizeof(t->copy[0])
                && memcmp(t->at[i], t->copy[i], t->len[i]) != 0))
        {
            printf("# member %u told at %d, %u bytes, of %u: '%s'\n", i,
                   (int) (t->at[i] - out), (unsigned) t->len[i],
                   (unsigned) len, t->copy[i]);
            return 0;
        }

        prev = t->at[i] + t->len[i];
    }

    return 1;
}


/* ------------------------------------------------------------- part 1 */


#define T_BASE                                                               \
    "{\"deviceId\":\"d\",\"etag\":\"E\",\"version\":2,"                      \
    "\"tags\":{\"loc\":{\"city\":\"Oslo\"},\"owner\":\"ops\"},"              \
    "\"properties\":{\"desired\":{\"t\":{\"i\":30,\"b\":1},"                 \
    "\"$metadata\":{\"$lastUpdated\":\"L\",\"t\":{\"$lastUpdated\":\"L\","   \
    "\"i\":{\"$lastUpdated\":\"L\"},\"b\":{\"$lastUpdated\":\"L\"}}},"       \
    "\"$version\":3},"                                                       \
    "\"reported\":{\"fw\":\"1.0\",\"$metadata\":{\"$lastUpdated\":\"L\","    \
    "\"fw\":{\"$lastUpdated\":\"L\"}},\"$version\":4}}}"

#define T_NARROW                                                             \
    "deviceId=A tags=S tags.loc=A properties=S properties.desired=S "        \
    "properties.desired.t=S properties.desired.t.i=A"

#define T_EMPTY_SECTIONS                                                     \
    "\"reported\":{\"$metadata\":{\"$lastUpdated\":\"L\"},\"$version\":4}}}"


static void
test_filter_table(void)
{
    size_t  i;

    static const test_filter_case_t  cases[] = {

        { "wide: everything", T_BASE, "", ALL, T_BASE, 0, "" },

        { "denied: nothing but the structure", T_BASE, "", NONE,
          "{\"tags\":{},\"properties\":{\"desired\":{\"$metadata\":"
          "{\"$lastUpdated\":\"L\"},\"$version\":3}," T_EMPTY_SECTIONS,
          5, "deviceId etag version tags properties" },

        { "narrow scope", T_BASE, T_NARROW, NONE,
          "{\"deviceId\":\"d\",\"tags\":{\"loc\":{\"city\":\"Oslo\"}},"
          "\"properties\":{\"desired\":{\"t\":{\"i\":30},\"$metadata\":"
          "{\"$lastUpdated\":\"L\",\"t\":{\"$lastUpdated\":\"L\",\"i\":"
          "{\"$lastUpdated\":\"L\"}}},\"$version\":3}," T_EMPTY_SECTIONS,
          5, "etag version tags.owner properties.desired.t.b "
             "properties.reported" },

        { "metadata before the data",
          "{\"properties\":{\"desired\":{\"$metadata\":{\"a\":"
          "{\"$lastUpdated\":\"L\"},\"b\":{\"$lastUpdated\":\"L\"}},"
          "\"a\":1,\"b\":2}}}",
          "properties=S properties.desired=S properties.desired.b=A", NONE,
          "{\"properties\":{\"desired\":{\"$metadata\":{\"b\":"
          "{\"$lastUpdated\":\"L\"}},\"b\":2}}}",
          1, "properties.desired.a" },

        { "SOME on a scalar is NONE, its metadata goes too",
          "{\"properties\":{\"reported\":{\"fw\":\"1.0\",\"$metadata\":"
          "{\"$lastUpdated\":\"L\",\"fw\":{\"$lastUpdated\":\"L\"}},"
          "\"$version\":4}}}",
          "properties=S properties.reported=S properties.reported.fw=S",
          NONE,
          "{\"properties\":{" T_EMPTY_SECTIONS,
          1, "properties.reported.fw" },

        { "SOME on an object whose members all go: {} stays, metadata not",
          "{\"tags\":{},\"properties\":{\"desired\":{\"t\":{\"i\":1},"
          "\"$metadata\":{\"t\":{\"$lastUpdated\":\"L\",\"i\":"
          "{\"$lastUpdated\":\"L\"}}}}}}",
          "properties=S properties.desired=S properties.desired.t=S", NONE,
          "{\"tags\":{},\"properties\":{\"desired\":{\"t\":{},"
          "\"$metadata\":{}}}}",
          1, "properties.desired.t.i" },

        { "metadata ALL below SOME keeps all of it",
          "{\"properties\":{\"desired\":{\"$metadata\":{\"t\":{\"i\":"
          "{\"$lastUpdated\":\"L\",\"x\":{}},\"$lastUpdated\":\"L\"}}}}}",
          "properties=S properties.desired=S properties.desired.t=S "
          "properties.desired.t.i=A", NONE,
          "{\"properties\":{\"desired\":{\"$metadata\":{\"t\":{\"i\":"
          "{\"$lastUpdated\":\"L\",\"x\":{}},\"$lastUpdated\":\"L\"}}}}}",
          0, "" },

        { "empty sections kept as they are",
          "{\"tags\":{},\"properties\":{\"desired\":{},\"reported\":{}}}",
          "", NONE,
          "{\"tags\":{},\"properties\":{\"desired\":{},\"reported\":{}}}",
          0, "" },

        { "$version kept in a section asked SOME",
          "{\"properties\":{\"desired\":{\"a\":1,\"$version\":7}}}",
          "properties=S properties.desired=S", NONE,
          "{\"properties\":{\"desired\":{\"$version\":7}}}",
          1, "properties.desired.a" },

        { "other '$' members: withheld below SOME, kept below ALL",
          "{\"tags\":{\"$x\":1,\"a\":2},\"properties\":{\"desired\":"
          "{\"$y\":{\"z\":1},\"$version\":1}}}",
          "tags=S tags.a=A properties=S properties.desired=A", NONE,
          "{\"tags\":{\"a\":2},\"properties\":{\"desired\":"
          "{\"$y\":{\"z\":1},\"$version\":1}}}",
          1, "tags.$x" },

        { "'$' members are not asked, even when the scope names them",
          "{\"tags\":{\"$x\":1,\"$metadata\":{\"a\":{\"$l\":1}}}}",
          "tags=S tags.$x=A tags.$metadata=A", NONE,
          "{\"tags\":{\"$metadata\":{}}}", 1, "tags.$x" },

        { "a $metadata that is not an object goes, not counted",
          "{\"tags\":{\"$metadata\":5,\"a\":1}}", "tags=S tags.a=A", NONE,
          "{\"tags\":{\"a\":1}}", 0, "" },

        { "tags that are not an object: a node like any other",
          "{\"tags\":5,\"properties\":[1]}", "", NONE, "{}", 2,
          "tags properties" },

        { "tags that are not an object, asked ALL",
          "{\"tags\":5,\"properties\":null}", "tags=A properties=S", NONE,
          "{\"tags\":5}", 1, "properties" },

        { "properties asked NONE keeps both sections",
          "{\"properties\":{\"x\":1,\"desired\":{\"a\":1,\"$version\":2},"
          "\"reported\":{\"$version\":3}}}", "", NONE,
          "{\"properties\":{\"desired\":{\"$version\":2},"
          "\"reported\":{\"$version\":3}}}", 1, "properties" },

        { "properties asked NONE with nothing to lose counts nothing",
          "{\"properties\":{\"desired\":{\"$version\":2}}}", "", NONE,
          "{\"properties\":{\"desired\":{\"$version\":2}}}", 0, "" },

        { "properties asked SOME, another member",
          "{\"properties\":{\"x\":{\"y\":1,\"z\":2},\"desired\":{}}}",
          "properties=S properties.x=S properties.x.z=A", NONE,
          "{\"properties\":{\"x\":{\"z\":2},\"desired\":{}}}", 1,
          "properties.x.y" },

        { "a section asked ALL keeps all of it",
          T_BASE, "properties=S properties.reported=A", NONE,
          "{\"tags\":{},\"properties\":{\"desired\":{\"$metadata\":"
          "{\"$lastUpdated\":\"L\"},\"$version\":3},\"reported\":"
          "{\"fw\":\"1.0\",\"$metadata\":{\"$lastUpdated\":\"L\","
          "\"fw\":{\"$lastUpdated\":\"L\"}},\"$version\":4}}}",
          5, "deviceId etag version tags properties.desired" },

        { "a top-level object asked SOME",
          "{\"x509Thumbprint\":{\"primaryThumbprint\":null,"
          "\"secondaryThumbprint\":\"ab\"}}",
          "x509Thumbprint=S x509Thumbprint.secondaryThumbprint=A", NONE,
          "{\"x509Thumbprint\":{\"secondaryThumbprint\":\"ab\"}}", 1,
          "x509Thumbprint.primaryThumbprint" },

        { "whitespace: kept verbatim inside kept values",
          " \r\n{ \"a\" :\t[ 1 , { \"b\" : null } ] ,\n \"c\" : 2 }\n ",
          "a=A", NONE, "{\"a\" :\t[ 1 , { \"b\" : null } ]}", 1, "c" },

        { "whitespace: an indented twin, all of it (the twin is walked)",
          "{\n  \"tags\": {\n    \"a\": 1\n  },\n  \"x\": [\n  ]\n}",
          "", ALL,
          "{\"tags\": {\n    \"a\": 1\n  },\"x\": [\n  ]}", 0, "" },

        { "whitespace: an indented twin, walked",
          "{\n  \"tags\": {\n    \"a\": 1,\n    \"b\" : 2\n  },\n"
          "  \"x\": [\n  ]\n}",
          "tags=S tags.b=A x=A", NONE,
          "{\"tags\": {\"b\" : 2},\"x\": [\n  ]}", 1, "tags.a" },

        { "escaped key: asked by its raw bytes",
          "{\"t\\u0061gs\":{\"a\":1},\"tags\":{}}", "tags=A", NONE,
          "{\"tags\":{}}", 1, "t\\x5cu0061gs" },

        { "escaped key named by its raw bytes in the scope",
          "{\"t\\u0061gs\":{\"a\":1}}", "t\\u0061gs=A", NONE,
          "{\"t\\u0061gs\":{\"a\":1}}", 0, "" },

        { "escapes and unicode in kept values",
          "{\"s\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\\u0000\","
          "\"u\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\","
          "\"\xc3\xa9\":1}",
          "s=A u=A \xc3\xa9=A", NONE,
          "{\"s\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\\u0000\","
          "\"u\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\","
          "\"\xc3\xa9\":1}", 0, "" },

        { "unicode in withheld keys, recorded as \\xNN",
          "{\"\xc3\xa9\":1,\"a\\\"b\":2}", "", NONE, "{}", 2,
          "\\xc3\\xa9 a\\x5c\\x22b" },

        { "numbers of every form", "{\"n\":[0,-0,1.5,-2e10,3E+2,4e-2,"
          "12345678901234567890123,0.0e0]}", "n=A", NONE,
          "{\"n\":[0,-0,1.5,-2e10,3E+2,4e-2,12345678901234567890123,0.0e0]}",
          0, "" },

        { "duplicates pass through",
          "{\"a\":1,\"a\":{\"b\":2},\"c\":3,\"c\":4}", "a=A", NONE,
          "{\"a\":1,\"a\":{\"b\":2}}", 2, "c c" },

        { "an empty twin", "{}", "", NONE, "{}", 0, "" },

        { "an empty key", "{\"\":1,\"x\":2}", "=A", NONE, "{\"\":1}", 1,
          "x" },

        { "a module twin, moduleId asked by name",
          "{\"deviceId\":\"d\",\"moduleId\":\"m\",\"tags\":{}}",
          "moduleId=A", NONE, "{\"moduleId\":\"m\",\"tags\":{}}", 1,
          "deviceId" },

        { "not an object: an array", "[]", "", ALL, NULL, 0, "" },
        { "not an object: a string", "\"a\"", "", ALL, NULL, 0, "" },
        { "not an object: empty", "", "", ALL, NULL, 0, "" },
        { "trailing bytes", "{} {}", "", ALL, NULL, 0, "" },
        { "an error after withheld members resets the results",
          "{\"a\":1,\"b\":2,", "", NONE, NULL, 0, "" },
    };

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        test_filter_case(&cases[i]);
    }
}


static void
test_filter_case(const test_filter_case_t *c)
{
    int                             rc, rc2;
    char                            name[512];
    size_t                          len;
    unsigned char                  *out, *out2;
    ngx_http_iothub_twin_filter_t   f, r, g;

    len = strlen(c->in);

    rc = test_filter_run(c->in, len, c->scope, c->dflt, 0, &f, &out);

    snprintf(name, sizeof(name), "%s: rc", c->name);
    tap_ok(rc == (c->out ? 0 : -1), "%s", name);

    if (rc == 0) {
        snprintf(name, sizeof(name), "%s: top members", c->name);
        tap_ok(test_filter_tops_ok(out, f.out_len), "%s", name);
    }

    /* in place: the same result, the same bytes at the input's start */

    rc2 = test_filter_run(c->in, len, c->scope, c->dflt,
                          TEST_FILTER_IN_PLACE, &g, &out2);

    snprintf(name, sizeof(name), "%s: in place", c->name);
    tap_ok(rc2 == rc && g.out_len == f.out_len && g.withheld == f.withheld
           && strcmp(g.first, f.first) == 0
           && (rc != 0 || (memcmp(out2, out, f.out_len) == 0
                           && test_filter_tops_ok(out2, g.out_len))),
           "%s", name);

    free(out2);

    if (c->out == NULL) {
        snprintf(name, sizeof(name), "%s: nothing reported", c->name);
        tap_ok(f.out_len == 0 && f.withheld == 0 && f.first[0] == '\0',
               "%s", name);
        free(out);
        return;
    }

    snprintf(name, sizeof(name), "%s: output", c->name);
    tap_is_str((char *) out, f.out_len, c->out, name);

    snprintf(name, sizeof(name), "%s: withheld", c->name);
    tap_ok(f.withheld == c->withheld, "%s", name);
    if (f.withheld != c->withheld) {
        printf("#   got %u, want %u\n", f.withheld, c->withheld);
    }

    snprintf(name, sizeof(name), "%s: first", c->name);
    tap_is_str(f.first, strlen(f.first), c->first, name);

    /* report mode: the same verdicts, nothing written */

    rc2 = test_filter_run(c->in, len, c->scope, c->dflt, 1, &r, &out2);

    snprintf(name, sizeof(name), "%s: report mode", c->name);
    tap_ok(rc2 == rc && r.out_len == 0 && r.withheld == f.withheld
           && strcmp(r.first, f.first) == 0 && test_filter_told.calls == 0,
           "%s", name);

    /* over its own output: the same bytes again */

    rc2 = test_filter_run((char *) out, f.out_len, c->scope, c->dflt, 0, &g,
                          &out2);

    snprintf(name, sizeof(name), "%s: idempotent", c->name);
    tap_ok(rc2 == 0 && g.out_len == f.out_len && g.withheld == 0
           && memcmp(out2, out, f.out_len) == 0, "%s", name);

    free(out2);
    free(out);
}


/*
 * The top hook: told of the twin's members kept whole, in order, with
 * their bytes in the output (whitespace inside kept), copied or in place;
 * not of members walked, dropped or below the top; not in report mode.
 */

static void
test_filter_tops(void)
{
    int                             rc;
    unsigned                        mode, i, ok;
    unsigned char                  *out;
    ngx_http_iothub_twin_filter_t   f;

    static const char  in[] =
        "{ \"deviceId\":\"d\",\"etag\" : \"AAA=\" , \"tags\":{\"a\":1},"
        "\"status\":\"x\",\"version\":3,\"properties\":{\"desired\":"
        "{\"a\":{\"b\":1}}},\"x509\":{\"p\":null} }";

    static const char  scope[] = "deviceId=A etag=A version=A tags=S "
                                 "tags.a=A properties=A x509=S x509.p=A";

    static const char  *want[] = {
        "\"deviceId\":\"d\"", "\"etag\" : \"AAA=\"", "\"version\":3",
        "\"properties\":{\"desired\":{\"a\":{\"b\":1}}}"
    };

    for (mode = 0; mode < 3; mode++) {
        rc = test_filter_run(in, sizeof(in) - 1, scope, NONE, mode, &f,
                             &out);

        ok = (rc == 0);

        if (mode == TEST_FILTER_REPORT) {
            ok = ok && test_filter_told.calls == 0;

        } else {
            ok = ok && test_filter_told.calls == 4
                 && test_filter_tops_ok(out, f.out_len);

            for (i = 0; ok && i < 4; i++) {
                ok = strcmp(test_filter_told.copy[i], want[i]) == 0;

                if (!ok) {
                    printf("# member %u: '%s', want '%s'\n", i,
                           test_filter_told.copy[i], want[i]);
                }
            }
        }

        free(out);

        tap_ok(ok, "top hook: the members kept whole, in order, as they are "
               "in the output%s",
               mode == TEST_FILTER_REPORT ? " (report mode: none)"
               : mode == TEST_FILTER_IN_PLACE ? ", in place" : "");
    }
}


/* ------------------------------------------------------------- part 2 */


static void
test_filter_syntax(void)
{
    int                             rc, ok, valid;
    char                            in[256], name[512];
    size_t                          i, k, t, len, vlen;
    unsigned                        mode;
    unsigned char                  *out;
    ngx_http_iothub_twin_filter_t   f;

    /* {template, scope}: %s is the value; the scope walks to it or not */
    static const struct {
        const char  *tpl;
        const char  *scope;
        const char  *where;
    } places[] = {
        { "{\"d\":%s}", "d=A", "kept" },
        { "{\"x\":%s}", "", "dropped" },
        { "{\"tags\":{\"a\":%s}}", "tags=S", "dropped below walked tags" },
        { "{\"tags\":{\"a\":%s}}", "tags=S tags.a=A", "kept in tags" },
        { "{\"tags\":{\"a\":%s}}", "", "below tags asked NONE" },
        { "{\"properties\":{\"desired\":{\"$metadata\":{\"a\":%s}}}}",
          "properties=S properties.desired=S", "in $metadata, dropped" },
        { "{\"properties\":{\"desired\":{\"$metadata\":{\"a\":%s}}}}",
          "properties=S properties.desired=S properties.desired.a=A",
          "in $metadata, kept" },
        { "{\"properties\":{\"reported\":{\"$version\":%s}}}", "",
          "as a $version" },
        { "{\"properties\":{\"x\":1,\"reported\":{\"$metadata\":"
          "{\"$l\":%s}}}}", "", "below properties asked NONE" },
        { "{\"a\":{\"b\":[0,%s]}}", "a=S a.b=A", "in a kept array" },
    };

    static const char  *invalid[] = {
        "", "01", "-01", "1.", ".5", "-", "1e", "1e+", "+1", "0x1", "1.e3",
        "NaN", "Infinity", "-Infinity", "tru", "nul", "fals", "True", "nulll",
        "[1,]", "[,1]", "[1 2]", "[", "]", "[}", "{]", "{\"b\":1,}", "{\"b\"}",
        "{\"b\" 1}", "{b:1}", "{1:2}", "{'b':1}", "'a'", "\"a", "\"\\x\"",
        "\"\\\"", "\"\\u12\"", "\"\\u12g4\"", "\"\\U0041\"", "\"\\ud800\"",
        "\"\\udc00\"", "\"\\ud800\\u0041\"", "\"\\ud800\\n\"",
        "\"\\udbff\\udbff\"", "\"a\tb\"", "\"a\nb\"", "\"\x01\"", "\"\x1f\"",
        "\"\x7f\x80\"", "\"\xc0\x80\"", "\"\xc1\xbf\"", "\"\xe0\x80\xaf\"",
        "\"\xed\xa0\x80\"", "\"\xed\xbf\xbf\"", "\"\xf0\x8f\xbf\xbf\"",
        "\"\xf4\x90\x80\x80\"", "\"\xf5\x80\x80\x80\"", "\"\xff\"",
        "\"\xe2\x82\"", "\"\xe2\x82x\"", "\"\xc3\"", "\"\xf0\x9f\x98\"",
        "1 2", "\"a\" \"b\"", "{\"b\":1}}", "[1]]", "/*c*/1", "1//",
    };

    static const char  *valid_values[] = {
        "0", "-0", "1.5e-3", "1E+2", "-0.0", "[]", "{}", "[ ]", "{ }",
        "[1,{\"a\":[true,false,null]}]", "\"\"", "\"\\u00e9\\ud83d\\ude00\"",
        "\"\\u0000\"", "\"\xc3\xa9\xf0\x9f\x98\x80\"",
        "\" \\/\\b\\f\\n\\r\\t\\\"\\\\\"", "\"\x7f\"", "{\"$lastUpdated\":1}",
    };

    for (t = 0; t < sizeof(places) / sizeof(places[0]); t++) {
        for (mode = 0; mode < 3; mode++) {
            ok = 1;

            for (k = 0; k < sizeof(invalid) / sizeof(invalid[0]); k++) {
                len = snprintf(in, sizeof(in), places[t].tpl, invalid[k]);
                rc = test_filter_run(in, len, places[t].scope, NONE, mode,
                                     &f, &out);
                free(out);

                if (rc != -1 || f.out_len != 0) {
                    printf("# accepted: %s\n", in);
                    ok = 0;
                }
            }

            snprintf(name, sizeof(name), "%u invalid values %s%s: -1",
                     (unsigned) k, places[t].where,
                     (mode == TEST_FILTER_REPORT) ? ", report mode"
                     : (mode == TEST_FILTER_IN_PLACE) ? ", in place" : "");
            tap_ok(ok, "%s", name);
        }

        ok = 1;

        for (k = 0; k < 2 * sizeof(valid_values) / sizeof(valid_values[0]);
             k++)
        {
            mode = (k & 1) ? TEST_FILTER_IN_PLACE : TEST_FILTER_COPY;
            len = snprintf(in, sizeof(in), places[t].tpl,
                           valid_values[k / 2]);
            rc = test_filter_run(in, len, places[t].scope, NONE, mode, &f,
                                 &out);

            vlen = strlen(valid_values[k / 2]);
            valid = (rc == 0);

            /* a kept value is in the output verbatim */
            if (valid && strstr(places[t].where, "kept") != NULL) {
                valid = 0;

                for (i = 0; i + vlen <= f.out_len; i++) {
                    if (memcmp(out + i, valid_values[k / 2], vlen) == 0) {
                        valid = 1;
                        break;
                    }
                }
            }

            if (!valid) {
                printf("# refused or changed: %s\n", in);
                ok = 0;
            }

            free(out);
        }

        snprintf(name, sizeof(name), "%u valid values %s: 0 (copied and"
                 " in place)", (unsigned) k / 2, places[t].where);
        tap_ok(ok, "%s", name);
    }
}


/* texts that are not one JSON object */

static void
test_filter_whole(void)
{
    int                             ok;
    size_t                          k;
    unsigned char                  *out;
    ngx_http_iothub_twin_filter_t   f;

    static const struct {
        const char  *in;
        size_t       len;
    } texts[] = {
        { "", 0 }, { " \n", 2 }, { "[]", 2 }, { "[{}]", 4 }, { "1", 1 },
        { "\"{}\"", 4 }, { "null", 4 }, { "true", 4 }, { "{", 1 },
        { "}", 1 }, { "{}}", 3 }, { "{} {}", 5 }, { "{}x", 3 },
        { "{}\0", 3 }, { "\0{}", 3 }, { "{\"a\":1}\0", 8 },
        { "{\"a\":1\0}", 8 }, { "{\"a\0\":1}", 8 }, { "\xef\xbb\xbf{}", 5 },
        { "{}\xef\xbb\xbf", 5 }, { "\f{}", 3 }, { "{}\v", 3 },
        { "{\"a\":1,}", 8 }, { "{,}", 3 }, { "{\"a\"}", 5 },
        { "{\"a\":}", 6 }, { "{\"a\" 1}", 7 }, { "{\"a\":1 \"b\":2}", 13 },
        { "{\"a\":1;\"b\":2}", 13 }, { "{a:1}", 5 }, { "{\"a\":1", 6 },
        { "{\"a", 3 }, { "{\"tags\":{\"a\":1,}}", 17 },
        { "{\"tags\":{,}}", 12 }, { "{\"tags\":{\"a\":1}", 15 },
        { "{\"tags\":{\"a\":1]}", 16 }, { "{\"a\":[}", 7 },
    };

    ok = 1;

    for (k = 0; k < sizeof(texts) / sizeof(texts[0]); k++) {
        if (test_filter_run(texts[k].in, texts[k].len, "tags=S", ALL, 0, &f,
                            &out)
            != -1
            || test_filter_run(texts[k].in, texts[k].len, "tags=S", NONE, 1,
                               &f, &out)
               != -1)
        {
            printf("# accepted: text %u\n", (unsigned) k);
            ok = 0;
        }

        free(out);
    }

    tap_ok(ok, "%s", "texts that are not one JSON object: -1");
}


/*
 * Strings are scanned 64 bytes at a time from where the first one of a
 * skipped value begins: a string at every offset from there (0 to 129
 * bytes in), 0 to 80 bytes long, plain, with an escape, a non-ASCII
 * sequence, a control byte, a bad escape or a byte that is not UTF-8 at
 * every place in it, and near the end of the input or not: each valid one
 * kept verbatim (and dropped), each invalid one -1.
 */

static void
test_filter_strings(void)
{
    int                             rc, ok, valid;
    char                            in[512], name[256];
    size_t                          pad, blen, at, len, t, kind;
    unsigned char                  *out;
    ngx_http_iothub_twin_filter_t   f;

    static const char  a[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    static const char  x[] = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

    /* what goes at offset at of the string; valid or not */
    static const struct {
        const char  *bytes;
        const char  *label;
        int          valid;
    } inserts[] = {
        { "", "nothing", 1 },
        { "\\\"", "an escaped quote", 1 },
        { "\\u00e9", "a \\u escape", 1 },
        { "\xc3\xa9", "a 2-byte UTF-8 sequence", 1 },
        { "\xf0\x9f\x98\x80", "a 4-byte UTF-8 sequence", 1 },
        { "\x7f", "DEL", 1 },
        { "\"", "a bare quote", 0 },
        { "\x01", "a control byte", 0 },
        { "\x1f", "the last control byte", 0 },
        { "\\x", "a bad escape", 0 },
        { "\xff", "a byte that is not UTF-8", 0 },
        { "\xc3", "a cut UTF-8 sequence", 0 },
    };

    static const char  *tails[] = {
        "", ",\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
            "bbbbbbbbbbbbbbbbbbbb\""
    };

    for (kind = 0; kind < sizeof(inserts) / sizeof(inserts[0]); kind++) {
        ok = 1;
        valid = inserts[kind].valid;

        for (pad = 0; pad < 130; pad += (pad < 70) ? 1 : 7) {
            for (blen = 0; blen <= 80; blen += (blen < 20) ? 1 : 3) {
                for (at = 0; at <= blen; at += (blen < 20) ? 1 : 5) {
                    for (t = 0; t < 2; t++) {

                        /* the first string anchors the scan */

                        len = snprintf(in, sizeof(in),
                                       "{\"d\":[\"%.*s\",\"%.*s%s%.*s\"%s]}",
                                       (int) pad, a, (int) at, x,
                                       inserts[kind].bytes, (int) (blen - at),
                                       x, tails[t]);

                        rc = test_filter_run(in, len, "d=A", NONE, 0, &f,
                                             &out);

                        if (rc != (valid ? 0 : -1)
                            || (valid && (f.out_len != len
                                          || memcmp(out, in, len) != 0)))
                        {
                            printf("# kept: rc %d for %s\n", rc, in);
                            ok = 0;
                        }

                        free(out);

                        rc = test_filter_run(in, len, "", NONE, 0, &f, &out);

                        if (rc != (valid ? 0 : -1)
                            || (valid && (f.out_len != 2
                                          || memcmp(out, "{}", 2) != 0)))
                        {
                            printf("# dropped: rc %d for %s\n", rc, in);
                            ok = 0;
                        }

                        free(out);
                    }
                }
            }
        }

        snprintf(name, sizeof(name), "strings at every offset of the scan, "
                 "with %s in them: %s", inserts[kind].label,
                 valid ? "kept verbatim, or dropped" : "-1");
        tap_ok(ok, "%s", name);
    }
}


/*
 * Containers open at once: 64 pass, 65 do not, wherever they are.  The
 * member "a" holds objects "a":{...} for the first levels and arrays
 * below; the first levels are walked (asked SOME), what is below them is
 * kept or dropped whole, or walked too when all are objects.
 */

static void
test_filter_nesting(void)
{
    int                             rc, ok;
    char                            in[1024], scope[8192], name[256];
    size_t                          len, slen, n, k, objects, i;
    unsigned char                  *out;
    ngx_http_iothub_twin_filter_t   f;

    static const char  *how[] = { "kept", "dropped", "walked" };

    for (k = 0; k < 3; k++) {
        ok = 1;

        for (objects = 1; objects <= 65; objects++) {
            for (n = 62; n <= 66; n++) {

                /* level 1 is the twin; "a" opens level 2 */

                len = 0;
                slen = 0;
                scope[0] = '\0';
                memcpy(in, "{\"a\":", 5);
                len = 5;

                for (i = 2; i <= n; i++) {
                    if (i <= objects || k == 2) {
                        in[len++] = '{';

                        if (i < n) {
                            memcpy(in + len, "\"a\":", 4);
                            len += 4;
                        }

                        /* the path of level i is "a" and i - 2 ".a" */
                        slen += snprintf(scope + slen, sizeof(scope) - slen,
                                         "%sa", i == 2 ? "" : " ");

                        for (rc = 2; rc < (int) i; rc++) {
                            slen += snprintf(scope + slen,
                                             sizeof(scope) - slen, ".a");
                        }

                        slen += snprintf(scope + slen, sizeof(scope) - slen,
                                         "=S");

                    } else {
                        in[len++] = '[';
                    }
                }

                for (i = n; i >= 2; i--) {
                    in[len++] = (i <= objects || k == 2) ? '}' : ']';
                }

                in[len++] = '}';

                rc = test_filter_run(in, len, scope, k == 0 ? ALL : NONE, 0,
                                     &f, &out);
                free(out);

                if (rc != (n <= 64 ? 0 : -1)) {
                    printf("# nesting %u, %u objects, %s: rc %d\n",
                           (unsigned) n, (unsigned) objects, how[k], rc);
                    ok = 0;
                }
            }

            if (k == 2) {
                break;
            }
        }

        snprintf(name, sizeof(name), "nesting 62 to 66, %s below walked "
                 "objects: 64 pass, more do not", how[k]);
        tap_ok(ok, "%s", name);
    }
}


/* every subset of six members kept: no comma too many or too few */

static void
test_filter_commas(void)
{
    int                             rc, ok;
    char                            scope[128], want[256];
    size_t                          len, i;
    unsigned                        mask, first;
    unsigned char                  *out;
    ngx_http_iothub_twin_filter_t   f;

    static const char  *members[] = {
        "\"a\":1", "\"b\":[2]", "\"c\":{\"x\":3}", "\"d\":\"4\"",
        "\"e\":null", "\"f\":{}"
    };
    static const char   in[] = "{\"a\":1, \"b\":[2] ,\"c\":{\"x\":3},"
                               "\n\"d\":\"4\",\"e\":null,\"f\":{}}";

    ok = 1;

    for (mask = 0; mask < 64; mask++) {
        scope[0] = '\0';
        strcpy(want, "{");
        first = 1;

        for (i = 0; i < 6; i++) {
            if (mask & (1u << i)) {
                len = strlen(scope);
                snprintf(scope + len, sizeof(scope) - len, "%c=A ",
                         (int) ('a' + i));

                if (!first) {
                    strcat(want, ",");
                }

                strcat(want, members[i]);
                first = 0;
            }
        }

        strcat(want, "}");

        rc = test_filter_run(in, sizeof(in) - 1, scope, NONE, 0, &f, &out);

        if (rc != 0 || f.out_len != strlen(want)
            || memcmp(out, want, f.out_len) != 0
            || f.withheld != 6 - (unsigned) __builtin_popcount(mask))
        {
            printf("# mask %u: got '%.*s', want '%s'\n", mask,
                   (int) f.out_len, out, want);
            ok = 0;
        }

        free(out);
    }

    tap_ok(ok, "%s", "commas: all 64 subsets of six members");
}


/* the record of withheld nodes is cut short with "..." */

static void
test_filter_first(void)
{
    char                            in[4096];
    size_t                          len, n;
    unsigned                        i;
    unsigned char                  *out;
    ngx_http_iothub_twin_filter_t   f;

    len = 0;
    in[len++] = '{';

    for (i = 0; i < 100; i++) {
        len += snprintf(in + len, sizeof(in) - len, "%s\"key%u\":%u",
                        i ? "," : "", i, i);
    }

    in[len++] = '}';

    (void) test_filter_run(in, len, "", NONE, 0, &f, &out);
    free(out);

    n = strlen(f.first);

    tap_ok(f.withheld == 100, "%s", "first: 100 withheld counted");
    tap_ok(n <= 255 && n > 200 && memcmp(f.first, "key0 key1 ", 10) == 0
           && strcmp(f.first + n - 3, "...") == 0,
           "%s", "first: cut short with ...");

    /* one long name alone */

    len = 0;
    in[len++] = '{';
    in[len++] = '"';
    memset(in + len, '\x01', 300);
    len += 300;
    memcpy(in + len, "\":1}", 4);
    len += 4;

    (void) test_filter_run(in, len, "", NONE, 0, &f, &out);
    free(out);

    n = strlen(f.first);
    tap_ok(f.withheld == 0 && n == 0, "%s", "a raw control in a key: -1");

    /* a key of 150 escaped backslashes: 300 raw bytes, 4 shown each */

    for (i = 0; i < 300; i++) {
        in[2 + i] = '\\';
    }

    (void) test_filter_run(in, len, "", NONE, 0, &f, &out);
    free(out);

    n = strlen(f.first);
    tap_ok(f.withheld == 1 && n <= 255 && strcmp(f.first + n - 3, "...") == 0
           && strncmp(f.first, "\\x5c\\x5c", 8) == 0,
           "%s", "first: one long name with escapes, cut short");
}


/* ------------------------------------------------------------- part 3 */


static uint64_t
test_filter_fnv(const char *p, size_t len, uint64_t h)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        h ^= (unsigned char) p[i];
        h *= 0x100000001b3ULL;
    }

    return h;
}


static int
test_filter_hash_verdict(uint64_t seed, const char *path, size_t len)
{
    uint64_t  h;

    h = test_filter_fnv(path, len, 0xcbf29ce484222325ULL ^ seed);
    h ^= h >> 29;
    h = (h % 10 + (seed >> 8) % 3) % 10;

    /* about 3 in 10 NONE, 3 ALL, 4 SOME, shifted by the seed */
    return h < 3 ? NONE : (h < 6 ? ALL : SOME);
}


static int
test_filter_hash_read(void *data, const unsigned char *path, size_t len)
{
    test_filter_ref_t  *r;

    r = data;

    return test_filter_hash_verdict(r->seed, (const char *) path, len);
}


static int
test_filter_ref_verdict(test_filter_ref_t *r, const char *path)
{
    return test_filter_hash_verdict(r->seed, path, strlen(path));
}


/* the record as the header specifies it, written independently */

static void
test_filter_ref_withhold(test_filter_ref_t *r, const char *path)
{
    char           unit[8];
    size_t         i, n;
    unsigned char  c;

    r->withheld++;

    if (r->first_full) {
        return;
    }

    for (i = 0; i <= strlen(path); i++) {
        if (i == 0) {
            if (r->first_len == 0) {
                continue;
            }

            strcpy(unit, " ");

        } else {
            c = (unsigned char) path[i - 1];

            if (c >= 0x20 && c <= 0x7e && c != '"' && c != '\\') {
                unit[0] = (char) c;
                unit[1] = '\0';

            } else {
                snprintf(unit, sizeof(unit), "\\x%02x", c);
            }
        }

        n = strlen(unit);

        if (r->first_len + n > 252) {
            strcpy(r->first + r->first_len, "...");
            r->first_len += 3;
            r->first_full = 1;
            return;
        }

        memcpy(r->first + r->first_len, unit, n + 1);
        r->first_len += n;
    }
}


static char *
test_filter_join(const char *path, const char *key)
{
    char    *s;
    size_t   n;

    n = strlen(path) + strlen(key) + 2;
    s = malloc(n);

    if (s == NULL) {
        abort();
    }

    if (path[0] == '\0') {
        snprintf(s, n, "%s", key);

    } else {
        snprintf(s, n, "%s.%s", path, key);
    }

    return s;
}


static json_t *
test_filter_ref_top(test_filter_ref_t *r, json_t *twin)
{
    int          verdict;
    json_t      *dst, *val;
    const char  *key;

    dst = json_object();

    json_object_foreach(twin, key, val) {
        verdict = test_filter_ref_verdict(r, key);

        if (strcmp(key, "tags") == 0 || strcmp(key, "properties") == 0) {
            test_filter_ref_node(r, dst, key, val, key, verdict,
                                 key[0] == 'p');
            continue;
        }

        test_filter_ref_member(r, dst, key, val, key, verdict);
    }

    return dst;
}


/* an ordinary data node */

static void
test_filter_ref_member(test_filter_ref_t *r, json_t *dst, const char *key,
    json_t *val, const char *path, int verdict)
{
    if (verdict == ALL) {
        json_object_set(dst, key, val);
        return;
    }

    if (verdict == SOME && json_is_object(val)) {
        json_object_set_new(dst, key, test_filter_ref_data(r, val, path));
        return;
    }

    test_filter_ref_withhold(r, path);
}


static json_t *
test_filter_ref_data(test_filter_ref_t *r, json_t *obj, const char *path)
{
    char        *sub;
    json_t      *dst, *val;
    const char  *key;

    dst = json_object();

    json_object_foreach(obj, key, val) {
        sub = test_filter_join(path, key);
        test_filter_ref_member(r, dst, key, val, sub,
                               test_filter_ref_verdict(r, sub));
        free(sub);
    }

    return dst;
}


/* tags, properties, a section: objects that stay */

static void
test_filter_ref_node(test_filter_ref_t *r, json_t *dst, const char *key,
    json_t *val, const char *path, int verdict, int is_props)
{
    int      dropped;
    json_t  *sub;

    if (verdict == ALL) {
        json_object_set(dst, key, val);
        return;
    }

    if (!json_is_object(val)) {
        test_filter_ref_withhold(r, path);
        return;
    }

    dropped = 0;

    sub = is_props
          ? test_filter_ref_props(r, val, verdict == NONE, &dropped)
          : test_filter_ref_section(r, val, path, verdict == NONE, &dropped);

    json_object_set_new(dst, key, sub);

    if (dropped) {
        test_filter_ref_withhold(r, path);
    }
}


static json_t *
test_filter_ref_props(test_filter_ref_t *r, json_t *obj, int none,
    int *dropped)
{
    int          section;
    char        *sub;
    json_t      *dst, *val;
    const char  *key;

    dst = json_object();

    json_object_foreach(obj, key, val) {
        sub = test_filter_join("properties", key);
        section = (strcmp(key, "desired") == 0
                   || strcmp(key, "reported") == 0);

        if (!none) {
            if (section) {
                test_filter_ref_node(r, dst, key, val, sub,
                                     test_filter_ref_verdict(r, sub), 0);

            } else {
                test_filter_ref_member(r, dst, key, val, sub,
                                       test_filter_ref_verdict(r, sub));
            }

        } else if (section && json_is_object(val)) {
            /* what a section below loses counts for "properties" */
            json_object_set_new(dst, key,
                test_filter_ref_section(r, val, sub, 1, dropped));

        } else {
            *dropped = 1;
        }

        free(sub);
    }

    return dst;
}


static json_t *
test_filter_ref_section(test_filter_ref_t *r, json_t *obj, const char *path,
    int none, int *dropped)
{
    char        *sub;
    json_t      *dst, *val, *meta;
    const char  *key;

    dst = json_object();

    json_object_foreach(obj, key, val) {
        sub = test_filter_join(path, key);

        if (key[0] == '$') {
            if (strcmp(key, "$version") == 0) {
                json_object_set(dst, key, val);

            } else if (strcmp(key, "$metadata") == 0) {
                if (json_is_object(val)) {
                    meta = test_filter_ref_meta(r, val, path, none, 0);
                    json_object_set_new(dst, key, meta);
                }

            } else if (none) {
                *dropped = 1;

            } else {
                test_filter_ref_withhold(r, sub);
            }

        } else if (none) {
            *dropped = 1;

        } else {
            test_filter_ref_member(r, dst, key, val, sub,
                                   test_filter_ref_verdict(r, sub));
        }

        free(sub);
    }

    return dst;
}


/* NULL: taken back, nothing of the data it describes stays */

static json_t *
test_filter_ref_meta(test_filter_ref_t *r, json_t *obj, const char *path,
    int none, int rollback)
{
    int          verdict;
    char        *sub;
    json_t      *dst, *val, *m;
    unsigned     data;
    const char  *key;

    dst = json_object();
    data = 0;

    json_object_foreach(obj, key, val) {
        if (key[0] == '$') {
            json_object_set(dst, key, val);
            continue;
        }

        if (none) {
            continue;
        }

        sub = test_filter_join(path, key);
        verdict = test_filter_ref_verdict(r, sub);

        if (verdict == ALL) {
            json_object_set(dst, key, val);
            data++;

        } else if (verdict == SOME && json_is_object(val)) {
            m = test_filter_ref_meta(r, val, sub, 0, 1);

            if (m != NULL) {
                json_object_set_new(dst, key, m);
                data++;
            }
        }

        free(sub);
    }

    if (rollback && data == 0) {
        json_decref(dst);
        return NULL;
    }

    return dst;
}


/* the generator: a twin as the hub writes it, with some noise */

static unsigned
test_filter_rand(void)
{
    test_filter_seed = test_filter_seed * 6364136223846793005ULL
                       + 1442695040888963407ULL;

    return (unsigned) (test_filter_seed >> 33);
}


static void
test_filter_key(char *buf, size_t size)
{
    static const char  *keys[] = {
        "a", "b", "c", "loc", "city", "fw", "t", "interval", "mode", "x1",
        "\xc3\xa9t\xc3\xa9", "\xf0\x9f\x98\x80", "k-k", "k_k", "K", "long"
        "keylongkeylongkeylongkeylongkey"
    };

    snprintf(buf, size, "%s", keys[test_filter_rand() % 16]);
}


static json_t *
test_filter_gen_value(unsigned depth)
{
    json_t    *a;
    unsigned   i, n;

    switch (test_filter_rand() % 10) {
    case 0:
        return json_integer((json_int_t) test_filter_rand() - 1000000);
    case 1:
        return json_real((double) test_filter_rand() / 7.0);
    case 2:
        return json_string("v \"q\" \\ \n\t\xc3\xa9\xf0\x9f\x98\x80");
    case 3:
        return json_stringn("nul\0in", 6);
    case 4:
        return test_filter_rand() % 2 ? json_true() : json_null();
    case 5:
        if (depth > 0) {
            a = json_array();
            n = test_filter_rand() % 4;

            for (i = 0; i < n; i++) {
                json_array_append_new(a, test_filter_gen_value(depth - 1));
            }

            return a;
        }

        /* fall through */
    case 6:
    case 7:
        if (depth > 0) {
            return test_filter_gen_tree(depth - 1);
        }

        /* fall through */
    default:
        return json_string("plain");
    }
}


static json_t *
test_filter_gen_tree(unsigned depth)
{
    char       key[64];
    json_t    *o;
    unsigned   i, n;

    o = json_object();
    n = test_filter_rand() % 6;

    for (i = 0; i < n; i++) {
        test_filter_key(key, sizeof(key));
        json_object_set_new(o, key, test_filter_gen_value(depth));
    }

    return o;
}


/* $metadata for data: each member described, objects recursively */

static json_t *
test_filter_gen_meta(json_t *data, unsigned version)
{
    char         key[64];
    json_t      *m, *val;
    const char  *k;

    m = json_object();

    json_object_set_new(m, "$lastUpdated",
                        json_string("2026-11-11T10:00:00.0000000Z"));

    if (version) {
        json_object_set_new(m, "$lastUpdatedVersion",
                            json_integer(version));
    }

    if (!json_is_object(data)) {
        return m;
    }

    json_object_foreach(data, k, val) {
        json_object_set_new(m, k, test_filter_gen_meta(val, version));
    }

    if (test_filter_rand() % 8 == 0) {
        /* metadata of a member the data no longer has */
        test_filter_key(key, sizeof(key));

        if (json_object_get(data, key) == NULL) {
            json_object_set_new(m, key, test_filter_gen_meta(NULL, 1));
        }
    }

    return m;
}


static json_t *
test_filter_gen_section(void)
{
    json_t    *s, *data, *meta, *val;
    unsigned   before, version;
    const char *k;

    data = test_filter_gen_tree(4);
    version = test_filter_rand() % 9 + 1;
    meta = test_filter_gen_meta(data, version);
    before = test_filter_rand() % 3 == 0;

    s = json_object();

    if (before) {
        json_object_set_new(s, "$metadata", meta);
    }

    json_object_foreach(data, k, val) {
        json_object_set(s, k, val);
    }

    if (!before) {
        json_object_set_new(s, "$metadata", meta);
    }

    json_object_set_new(s, "$version", json_integer(version));

    if (test_filter_rand() % 10 == 0) {
        json_object_set_new(s, "$other", json_integer(1));
    }

    json_decref(data);

    return s;
}


static json_t *
test_filter_gen_twin(void)
{
    json_t  *t, *p, *x;

    t = json_object();

    json_object_set_new(t, "deviceId", json_string("dev1"));

    if (test_filter_rand() % 2) {
        json_object_set_new(t, "moduleId", json_string("mod1"));
    }

    json_object_set_new(t, "etag", json_string("AAAAAAAAAAE="));
    json_object_set_new(t, "deviceEtag", json_string("NDA4"));
    json_object_set_new(t, "status", json_string("enabled"));
    json_object_set_new(t, "cloudToDeviceMessageCount", json_integer(0));

    x = json_object();
    json_object_set_new(x, "primaryThumbprint", json_null());
    json_object_set_new(x, "secondaryThumbprint", json_null());
    json_object_set_new(t, "x509Thumbprint", x);

    json_object_set_new(t, "version", json_integer(2));
    json_object_set_new(t, "tags", test_filter_gen_tree(5));

    p = json_object();
    json_object_set_new(p, "desired", test_filter_gen_section());
    json_object_set_new(p, "reported", test_filter_gen_section());

    if (test_filter_rand() % 10 == 0) {
        json_object_set_new(p, "other", test_filter_gen_tree(2));
    }

    json_object_set_new(t, "properties", p);

    return t;
}


static void
test_filter_differential(void)
{
    int                             rc;
    char                           *text, *s;
    size_t                          len, flags;
    json_t                         *twin, *want, *got;
    unsigned                        i, rounds, bad, walked;
    json_error_t                    err;
    unsigned char                  *out;
    test_filter_ref_t               ref;
    ngx_http_iothub_twin_filter_t   f, g;

    s = getenv("ROUNDS");
    rounds = s ? (unsigned) atoi(s) : 3000;
    bad = 0;
    walked = 0;

    for (i = 0; i < rounds; i++) {
        twin = test_filter_gen_twin();

        switch (test_filter_rand() % 3) {
        case 0:
            flags = JSON_COMPACT;
            break;
        case 1:
            flags = JSON_INDENT(test_filter_rand() % 4 + 1);
            break;
        default:
            flags = 0;
        }

        text = json_dumps(twin, flags | JSON_PRESERVE_ORDER);
        len = strlen(text);

        memset(&ref, 0, sizeof(ref));
        ref.seed = ((uint64_t) test_filter_rand() << 32) | test_filter_rand();
        want = test_filter_ref_top(&ref, twin);

        memset(&f, 0, sizeof(f));
        f.read = test_filter_hash_read;
        f.data = &ref;
        f.out = malloc(len);
        out = f.out;

        rc = ngx_http_iothub_twin_filter(&f, (unsigned char *) text, len);

        got = (rc == 0) ? json_loadb((char *) out, f.out_len, JSON_ALLOW_NUL,
                                     &err)
                        : NULL;

        if (got == NULL || !json_equal(got, want)
            || f.withheld != ref.withheld || strcmp(f.first, ref.first) != 0)
        {
            if (bad++ < 3) {
                s = json_dumps(want, JSON_PRESERVE_ORDER | JSON_COMPACT);
                printf("# round %u rc %d\n# in:   %s\n# got:  %.*s\n"
                       "# want: %s\n# withheld %u/%u first '%s' / '%s'\n",
                       i, rc, text, (int) f.out_len, out, s, f.withheld,
                       ref.withheld, f.first, ref.first);
                free(s);
            }
        }

        if (ref.withheld > 0 && f.out_len > 2) {
            walked++;
        }

        /* in place: the same result and bytes */
        memset(&g, 0, sizeof(g));
        g.read = test_filter_hash_read;
        g.data = &ref;
        g.out = malloc(len);
        memcpy(g.out, text, len);

        if (ngx_http_iothub_twin_filter(&g, g.out, len) != rc
            || g.out_len != f.out_len || memcmp(g.out, out, f.out_len) != 0
            || g.withheld != f.withheld || strcmp(g.first, f.first) != 0)
        {
            if (bad++ < 3) {
                printf("# round %u: in place differs\n", i);
            }
        }

        free(g.out);

        /* report mode agrees */
        memset(&g, 0, sizeof(g));
        g.read = test_filter_hash_read;
        g.data = &ref;
        g.report = 1;

        if (ngx_http_iothub_twin_filter(&g, (unsigned char *) text, len) != rc
            || g.withheld != f.withheld || strcmp(g.first, f.first) != 0
            || g.out_len != 0)
        {
            if (bad++ < 3) {
                printf("# round %u: report mode differs\n", i);
            }
        }

        json_decref(got);
        json_decref(want);
        json_decref(twin);
        free(text);
        free(out);
    }

    tap_ok(bad == 0, "differential: %s", "filter equals the reference");
    printf("# %u twins, %u with something kept and something withheld\n",
           rounds, walked);
    tap_ok(walked > rounds / 2, "differential: %s",
           "most twins are cut, not kept or dropped whole");
}
