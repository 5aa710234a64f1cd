
/*
 * libFuzzer target for the read filter.
 *
 * Every input is an answer from the hub; the read verdicts are a hash of
 * the path seeded by the input's length and last byte, so a mutation also
 * changes the scope.  The input goes through the filter (normally and in
 * report mode), through jansson, and the filter's output through jansson
 * and the filter again; the run aborts when:
 *
 *   - the filter and jansson disagree on "one JSON object", by this
 *     mapping (jansson: json_loadb() with JSON_ALLOW_NUL, since RFC 8259
 *     allows \u0000; JSON_DECODE_ANY off):
 *
 *       jansson                              filter must return
 *       an object, nested at most 64 deep    0
 *       an object nested deeper, an array,   -1
 *         or fails
 *
 *     inputs that jansson refuses only for its own limits are skipped: an
 *     integer beyond long long ("too big integer"), a real beyond double
 *     ("real number overflow"), \u0000 in a key (refused even with
 *     JSON_ALLOW_NUL) and nesting beyond 2048; so are inputs with
 *     a NUL byte that jansson accepts (jansson 2.14 drops a NUL right
 *     after a number or a literal, "[1\0]" loads);
 *
 *   - the output (rc 0) is not JSON for jansson, or not for the filter,
 *     or filtering it again with the same verdicts changes a byte or
 *     withholds anything;
 *
 *   - the output (when it holds no backslash, so that jansson's decoded
 *     keys are the raw keys the verdicts were asked for) holds a node the
 *     verdicts withhold: a member asked NONE,
 *     a member below a NONE that stays (the sections), a non-object asked
 *     SOME, a '$' member of tags or a section other than "$version" and
 *     "$metadata" below SOME or NONE, a metadata entry whose data is
 *     withheld, or a metadata entry asked SOME with no data member kept;
 *
 *   - filtering a copy of the input in place differs (rc, output bytes,
 *     count, record);
 *
 *   - a member the top hook was told of (rc 0) is not in the output, after
 *     the one before it, as it was when told, or is not one "key":value
 *     member for jansson (wrapped in braces);
 *
 *   - report mode differs (rc, count, record) or writes anything; the
 *     record is not NUL-terminated printable ASCII without '"' and with
 *     '\' only in \xNN, or is not empty when nothing was withheld.
 *
 * clang -g -O1 -fsanitize=fuzzer,address,undefined \
 *     -Ingx_iothub_twin_module fuzz/fuzz_filter.c \
 *     ngx_iothub_twin_module/ngx_http_iothub_twin_filter.c -ljansson \
 *     -o build/fuzz/fuzz_filter
 */


#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ngx_http_iothub_twin_filter.h"


#define FUZZ_FILTER_DEPTH  64


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fuzz_filter_read(void *data, const unsigned char *path,
    size_t len);
static int fuzz_filter_verdict(const char *path);
static int fuzz_filter_jansson_limit(const json_error_t *err);
static size_t fuzz_filter_depth(const uint8_t *data, size_t size);
static void fuzz_filter_record(ngx_http_iothub_twin_filter_t *f);
static void fuzz_filter_top(json_t *twin);
static void fuzz_filter_member(const char *path, json_t *val, int verdict);
static void fuzz_filter_section(const char *path, json_t *obj, int none);
static void fuzz_filter_meta(const char *path, json_t *obj, int none,
    int inner);
static char *fuzz_filter_join(const char *path, const char *key);
static void fuzz_filter_fail(const char *what, const char *path);
static void fuzz_filter_top_told(void *data, const unsigned char *member,
    size_t len);
static void fuzz_filter_tops_check(const unsigned char *out, size_t len);


/* what the top hook was told, in order */
typedef struct {
    unsigned              n;
    const unsigned char  *at[64];
    size_t                len[64];
    unsigned char        *copy[64];
} fuzz_filter_tops_t;


static uint64_t            fuzz_filter_seed;
static fuzz_filter_tops_t  fuzz_filter_tops;


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                             rc, expect, jansson_ok;
    json_t                         *j, *o;
    json_error_t                    err;
    unsigned char                  *out;
    ngx_http_iothub_twin_filter_t   f, r, g;

    fuzz_filter_seed = (uint64_t) size * 0x9e3779b97f4a7c15ULL
                       ^ (size ? data[size - 1] : 0);

    out = malloc(size ? size : 1);
    if (out == NULL) {
        abort();
    }

    memset(&f, 0, sizeof(f));
    f.read = fuzz_filter_read;
    f.top = fuzz_filter_top_told;
    f.top_data = &fuzz_filter_tops;
    f.out = out;

    fuzz_filter_tops.n = 0;

    rc = ngx_http_iothub_twin_filter(&f, data, size);

    if (rc == 0) {
        fuzz_filter_tops_check(out, f.out_len);
    }

    while (fuzz_filter_tops.n) {
        free(fuzz_filter_tops.copy[--fuzz_filter_tops.n]);
    }

    if (rc != 0 && rc != -1) {
        fuzz_filter_fail("rc neither 0 nor -1", NULL);
    }

    if (f.out_len > size) {
        fuzz_filter_fail("output longer than the input", NULL);
    }

    fuzz_filter_record(&f);

    /* in place, over a copy of the input */

    memset(&g, 0, sizeof(g));
    g.read = fuzz_filter_read;
    g.out = malloc(size ? size : 1);

    if (g.out == NULL) {
        abort();
    }

    memcpy(g.out, data, size);

    if (ngx_http_iothub_twin_filter(&g, g.out, size) != rc
        || g.out_len != f.out_len || memcmp(g.out, out, f.out_len) != 0
        || g.withheld != f.withheld || strcmp(g.first, f.first) != 0)
    {
        fuzz_filter_fail("in place differs", NULL);
    }

    free(g.out);

    /* report mode */

    memset(&r, 0, sizeof(r));
    r.read = fuzz_filter_read;
    r.report = 1;

    if (ngx_http_iothub_twin_filter(&r, data, size) != rc
        || r.out_len != 0 || r.withheld != f.withheld
        || strcmp(r.first, f.first) != 0)
    {
        fuzz_filter_fail("report mode differs", NULL);
    }

    /* jansson's verdict */

    j = json_loadb((const char *) data, size, JSON_ALLOW_NUL, &err);
    jansson_ok = (j != NULL);

    expect = (j != NULL && json_is_object(j)
              && fuzz_filter_depth(data, size) <= FUZZ_FILTER_DEPTH)
             ? 0 : -1;

    json_decref(j);

    if (!jansson_ok && fuzz_filter_jansson_limit(&err)) {
        /* jansson's own limits */
        expect = rc;
    }

    if (jansson_ok && memchr(data, '\0', size) != NULL) {
        /* jansson skips a NUL after a number or a literal */
        expect = rc;
    }

    if (rc != expect) {
        fprintf(stderr, "filter %d, jansson %s (%s at %d)\n", rc,
                jansson_ok ? "accepts" : "fails",
                jansson_ok ? "" : err.text, jansson_ok ? -1 : err.position);
        fuzz_filter_fail("filter and jansson disagree", NULL);
    }

    if (rc != 0) {
        free(out);
        return 0;
    }

    /* the output: JSON for jansson, for the filter, and a fixed point */

    o = json_loadb((const char *) out, f.out_len, JSON_ALLOW_NUL, &err);

    if (o == NULL && fuzz_filter_jansson_limit(&err)) {
        /* checked by the filter's own pass below */

    } else if (o == NULL || !json_is_object(o)) {
        fprintf(stderr, "output \"%.*s\": %s\n", (int) f.out_len, out,
                o ? "not an object" : err.text);
        fuzz_filter_fail("output is not a JSON object", NULL);
    }

    /*
     * The verdicts were asked with the raw bytes of the keys, jansson's
     * keys are decoded: the two name the same paths when the output holds
     * no escape at all.
     */
    if (o != NULL && memchr(out, '\\', f.out_len) == NULL) {
        fuzz_filter_top(o);
    }

    json_decref(o);

    memset(&g, 0, sizeof(g));
    g.read = fuzz_filter_read;
    g.out = malloc(f.out_len ? f.out_len : 1);

    if (g.out == NULL) {
        abort();
    }

    if (ngx_http_iothub_twin_filter(&g, out, f.out_len) != 0
        || g.out_len != f.out_len || memcmp(g.out, out, f.out_len) != 0
        || g.withheld != 0)
    {
        fprintf(stderr, "output \"%.*s\"\nagain \"%.*s\"\n", (int) f.out_len,
                out, (int) g.out_len, g.out);
        fuzz_filter_fail("filtering the output again changes it", NULL);
    }

    free(g.out);
    free(out);

    return 0;
}


static uint64_t
fuzz_filter_hash(const unsigned char *p, size_t len)
{
    size_t    i;
    uint64_t  h;

    h = 0xcbf29ce484222325ULL ^ fuzz_filter_seed;

    for (i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }

    return h ^ (h >> 31);
}


static int
fuzz_filter_read(void *data, const unsigned char *path, size_t len)
{
    (void) data;

    return (int) (fuzz_filter_hash(path, len) % 3);
}


static int
fuzz_filter_verdict(const char *path)
{
    return (int) (fuzz_filter_hash((const unsigned char *) path,
                                   strlen(path)) % 3);
}


/* jansson refused for a limit of its own, not for the syntax */

static int
fuzz_filter_jansson_limit(const json_error_t *err)
{
    return json_error_code(err) == json_error_stack_overflow
           || json_error_code(err) == json_error_null_byte_in_key
           || (json_error_code(err) == json_error_numeric_overflow
               && (strstr(err->text, "too big") != NULL
                   || strstr(err->text, "overflow") != NULL));
}


/* the deepest nesting of containers outside strings */

static size_t
fuzz_filter_depth(const uint8_t *data, size_t size)
{
    size_t  i, depth, max;
    int     in_string;

    depth = 0;
    max = 0;
    in_string = 0;

    for (i = 0; i < size; i++) {
        if (in_string) {
            if (data[i] == '\\') {
                i++;

            } else if (data[i] == '"') {
                in_string = 0;
            }

            continue;
        }

        switch (data[i]) {
        case '"':
            in_string = 1;
            break;
        case '{':
        case '[':
            if (++depth > max) {
                max = depth;
            }
            break;
        case '}':
        case ']':
            depth--;
            break;
        }
    }

    return max;
}


static void
fuzz_filter_record(ngx_http_iothub_twin_filter_t *f)
{
    size_t  i, n;

    n = strnlen(f->first, sizeof(f->first));

    if (n == sizeof(f->first)) {
        fuzz_filter_fail("record not NUL-terminated", NULL);
    }

    if (f->withheld == 0 && n != 0) {
        fuzz_filter_fail("a record with nothing withheld", f->first);
    }

    for (i = 0; i < n; i++) {
        if (f->first[i] < 0x20 || f->first[i] > 0x7e || f->first[i] == '"'
            || (f->first[i] == '\\' && f->first[i + 1] != 'x'))
        {
            fuzz_filter_fail("record not printable", f->first);
        }
    }
}


/*
 * The output against the verdicts: what may be there, with the rules of
 * the header applied to jansson's tree of the output.
 */

static void
fuzz_filter_top(json_t *twin)
{
    int          v;
    json_t      *val, *s;
    const char  *key;

    json_object_foreach(twin, key, val) {
        v = fuzz_filter_verdict(key);

        if (strcmp(key, "tags") == 0 && json_is_object(val) && v != 1) {
            fuzz_filter_section("tags", val, v == 0);
            continue;
        }

        if (strcmp(key, "properties") == 0 && json_is_object(val)
            && v != 1)
        {
            json_object_foreach(val, key, s) {
                char  *sub;
                int    sv;

                sub = fuzz_filter_join("properties", key);
                sv = fuzz_filter_verdict(sub);

                if ((strcmp(key, "desired") == 0
                     || strcmp(key, "reported") == 0)
                    && json_is_object(s))
                {
                    if (v == 0 || sv != 1) {
                        fuzz_filter_section(sub, s, v == 0 || sv == 0);
                    }

                } else if (v == 0) {
                    fuzz_filter_fail("below properties asked NONE", sub);

                } else {
                    fuzz_filter_member(sub, s, sv);
                }

                free(sub);
            }

            continue;
        }

        fuzz_filter_member(key, val, v);
    }
}


static void
fuzz_filter_member(const char *path, json_t *val, int verdict)
{
    char        *sub;
    json_t      *m;
    const char  *key;

    if (verdict == 0) {
        fuzz_filter_fail("a member asked NONE", path);
    }

    if (verdict == 1) {
        return;
    }

    if (!json_is_object(val)) {
        fuzz_filter_fail("a non-object asked SOME", path);
    }

    json_object_foreach(val, key, m) {
        sub = fuzz_filter_join(path, key);
        fuzz_filter_member(sub, m, fuzz_filter_verdict(sub));
        free(sub);
    }
}


static void
fuzz_filter_section(const char *path, json_t *obj, int none)
{
    char        *sub;
    json_t      *m;
    const char  *key;

    json_object_foreach(obj, key, m) {
        sub = fuzz_filter_join(path, key);

        if (strcmp(key, "$metadata") == 0 && json_is_object(m)) {
            fuzz_filter_meta(path, m, none, 0);

        } else if (key[0] == '$') {
            if (strcmp(key, "$version") != 0) {
                fuzz_filter_fail("a '$' member below SOME or NONE", sub);
            }

        } else if (none) {
            fuzz_filter_fail("a member below a section asked NONE", sub);

        } else {
            fuzz_filter_member(sub, m, fuzz_filter_verdict(sub));
        }

        free(sub);
    }
}


static void
fuzz_filter_meta(const char *path, json_t *obj, int none, int inner)
{
    int          v;
    char        *sub;
    json_t      *m;
    unsigned     data;
    const char  *key;

    data = 0;

    json_object_foreach(obj, key, m) {
        if (key[0] == '$') {
            continue;
        }

        sub = fuzz_filter_join(path, key);
        v = none ? 0 : fuzz_filter_verdict(sub);
        data++;

        if (v == 0) {
            fuzz_filter_fail("metadata of withheld data", sub);
        }

        if (v == 2) {
            if (!json_is_object(m)) {
                fuzz_filter_fail("metadata asked SOME, not an object", sub);
            }

            fuzz_filter_meta(sub, m, 0, 1);
        }

        free(sub);
    }

    if (inner && data == 0) {
        fuzz_filter_fail("metadata asked SOME with no data kept", path);
    }
}


static char *
fuzz_filter_join(const char *path, const char *key)
{
    char    *s;
    size_t   n;

    n = strlen(path) + strlen(key) + 2;
    s = malloc(n);

    if (s == NULL) {
        abort();
    }

    snprintf(s, n, "%s.%s", path, key);

    return s;
}


static void
fuzz_filter_fail(const char *what, const char *path)
{
    fprintf(stderr, "%s%s%.300s\n", what, path ? ": " : "",
            path ? path : "");
    abort();
}


static void
fuzz_filter_top_told(void *data, const unsigned char *member, size_t len)
{
    fuzz_filter_tops_t  *t = data;

    if (t->n == 64) {
        return;
    }

    t->copy[t->n] = malloc(len ? len : 1);
    if (t->copy[t->n] == NULL) {
        abort();
    }

    memcpy(t->copy[t->n], member, len);
    t->at[t->n] = member;
    t->len[t->n] = len;
    t->n++;
}


static void
fuzz_filter_tops_check(const unsigned char *out, size_t len)
{
    char                 *wrapped;
    json_t               *j;
    unsigned              i;
    json_error_t          err;
    const unsigned char  *prev;
    fuzz_filter_tops_t   *t = &fuzz_filter_tops;

    prev = out;

    for (i = 0; i < t->n; i++) {
        if (t->at[i] < prev || t->at[i] + t->len[i] > out + len
            || memcmp(t->at[i], t->copy[i], t->len[i]) != 0)
        {
            fuzz_filter_fail("a top member is not where it was told", NULL);
        }

        prev = t->at[i] + t->len[i];

        wrapped = malloc(t->len[i] + 2);
        if (wrapped == NULL) {
            abort();
        }

        wrapped[0] = '{';
        memcpy(wrapped + 1, t->at[i], t->len[i]);
        wrapped[t->len[i] + 1] = '}';

        j = json_loadb(wrapped, t->len[i] + 2, JSON_ALLOW_NUL, &err);

        if ((j == NULL && !fuzz_filter_jansson_limit(&err))
            || (j != NULL && json_object_size(j) != 1))
        {
            fprintf(stderr, "member \"%.*s\"\n", (int) t->len[i],
                    (const char *) t->at[i]);
            fuzz_filter_fail("a top member is not one member", NULL);
        }

        json_decref(j);
        free(wrapped);
    }
}
