
/*
 * The validator's SSE2 fast paths (short keys, string values, numbers)
 * against its portable loops, TAP output: the validator is compiled into
 * this test a second time with NGX_HTTP_IOTHUB_TWIN_PATCH_NO_SIMD, under
 * other names, and both validate generated patches that put keys, strings
 * and numbers of every shape at every distance from the end of the input
 * (each input in a buffer of its own size).  Both must give the same
 * result, reason, rule, offset, message, sizes and written paths; a key
 * and its escaped spelling must be found to be duplicates at every length
 * (the fast path hashes the raw bytes, the other the decoded ones).
 */


#define NGX_HTTP_IOTHUB_TWIN_PATCH_NO_SIMD  1

#define ngx_http_iothub_twin_patch_validate                                  \
    test_patch_fast_portable_validate
#define ngx_http_iothub_twin_patch_default_limits                            \
    test_patch_fast_portable_default_limits
#define ngx_http_iothub_twin_patch_rule_name                                 \
    test_patch_fast_portable_rule_name

#include "ngx_http_iothub_twin_patch.c"

#undef ngx_http_iothub_twin_patch_validate
#undef ngx_http_iothub_twin_patch_default_limits
#undef ngx_http_iothub_twin_patch_rule_name

#include <stdlib.h>


/* the build under test, linked in from ngx_http_iothub_twin_patch.c */
ngx_http_iothub_twin_patch_rc_e ngx_http_iothub_twin_patch_validate(
    ngx_http_iothub_twin_patch_t *p, const unsigned char *buf, size_t len);
void ngx_http_iothub_twin_patch_default_limits(
    ngx_http_iothub_twin_patch_limits_t *lim);


#define TEST_PATCH_FAST_PATHS  4096


typedef ngx_http_iothub_twin_patch_rc_e (*test_patch_fast_validate_pt)(
    ngx_http_iothub_twin_patch_t *p, const unsigned char *buf, size_t len);


typedef struct {
    char          buf[TEST_PATCH_FAST_PATHS];
    size_t        len;
} test_patch_fast_paths_t;


typedef struct {
    const char   *name;
    unsigned      inputs;
    unsigned      failed;
} test_patch_fast_group_t;


static int test_patch_fast_collect(void *data, const unsigned char *path,
    size_t len, int is_delete);
static int test_patch_fast_run(test_patch_fast_validate_pt validate,
    const char *input, size_t len, ngx_http_iothub_twin_patch_t *p,
    test_patch_fast_paths_t *paths);
static int test_patch_fast_compare(test_patch_fast_group_t *g,
    const char *input, ngx_http_iothub_twin_patch_t *out);
static void test_patch_fast_contexts(test_patch_fast_group_t *g,
    const char **contexts, const char *item);
static void test_patch_fast_numbers(void);
static void test_patch_fast_keys(void);
static void test_patch_fast_duplicates(void);
static void test_patch_fast_strings(void);
static void test_patch_fast_done(test_patch_fast_group_t *g);
static void test_patch_fast_escape(char *dst, const char *src);


static unsigned  test_patch_fast_n;
static unsigned  test_patch_fast_failed;


/* "%s" is the item; "%p" a string of 0 to 20 bytes after it */
static const char  *test_patch_fast_value_contexts[] = {
    "{\"tags\":{\"k\":%s}}",
    "{\"tags\":{\"k\":%s,\"p\":\"%p\"}}",
    "{\"tags\":{\"k\":[%s,1]}}",
    "{\"tags\":{\"k\":[1,%s]}}",
    "{\"properties\":{\"desired\":{\"a\":{\"b\":%s}}}}",
    "{\"etag\":%s}",
    "{\"etag\":[%s],\"tags\":{\"p\":\"%p\"}}",
    "%s",
    NULL
};


static const char  *test_patch_fast_key_contexts[] = {
    "{\"tags\":{%s:1}}",
    "{\"tags\":{%s:1,\"p\":\"%p\"}}",
    "{\"tags\":{\"a\":{%s:\"v\"}}}",
    "{\"tags\":{\"x\":[{%s:true}]}}",
    "{\"etag\":{%s:null},\"tags\":{\"p\":\"%p\"}}",
    "{%s:{}}",
    NULL
};


int
main(void)
{
    printf("1..4\n");

    test_patch_fast_numbers();
    test_patch_fast_keys();
    test_patch_fast_duplicates();
    test_patch_fast_strings();

    return test_patch_fast_failed ? 1 : 0;
}


static void
test_patch_fast_numbers(void)
{
    char                      num[128];
    unsigned                  s, i, f, e, t;
    test_patch_fast_group_t   g = { "numbers", 0, 0 };

    static const char  *signs[] = { "", "-", "--", "+" };
    static const char  *ints[] = {
        "", "0", "00", "01", "1", "12", "907", "12345678901234",
        "123456789012345", "1234567890123456", "4503599627370495",
        "4503599627370496", "99999999999999999", "1797693134862315807"
    };
    static const char  *fracs[] = {
        "", ".", ".5", ".05", ".0", ".1234567", ".12345678901234", "..5",
        ".5.5", ".x"
    };
    static const char  *exps[] = { "", "e5", "E-3", "e+400", "e" };
    static const char  *tails[] = { "", "x", " ", ".", "-", "9" };

    for (s = 0; s < sizeof(signs) / sizeof(signs[0]); s++) {
    for (i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
    for (f = 0; f < sizeof(fracs) / sizeof(fracs[0]); f++) {
    for (e = 0; e < sizeof(exps) / sizeof(exps[0]); e++) {
    for (t = 0; t < sizeof(tails) / sizeof(tails[0]); t++) {

        snprintf(num, sizeof(num), "%s%s%s%s%s", signs[s], ints[i],
                 fracs[f], exps[e], tails[t]);

        test_patch_fast_contexts(&g, test_patch_fast_value_contexts, num);
    }
    }
    }
    }
    }

    test_patch_fast_done(&g);
}


/* keys of 0 to 40 bytes with one byte of every class at every offset */

static void
test_patch_fast_keys(void)
{
    char                      key[128], body[64];
    size_t                    len, pos;
    unsigned                  c;
    test_patch_fast_group_t   g = { "keys", 0, 0 };

    static const char  *stops[] = {
        "", ".", "$", " ", "\x7f", "\x01", "\\n", "\\u0062", "\\u0000",
        "\\ud83d\\ude00", "\\ud83d", "\xc3\xa9", "\xc2\x80", "\xff", "\\x",
        "\\\"", "\\\\"
    };

    for (len = 0; len <= 40; len++) {
        for (c = 0; c < sizeof(stops) / sizeof(stops[0]); c++) {
            for (pos = 0; pos <= len; pos++) {

                if (c == 0 && pos > 0) {
                    break;
                }

                memset(body, 'a', len);
                body[len] = '\0';

                snprintf(key, sizeof(key), "\"%.*s%s%s\"",
                         (int) pos, body, stops[c], body + pos);

                test_patch_fast_contexts(&g, test_patch_fast_key_contexts,
                                         key);
            }
        }
    }

    test_patch_fast_done(&g);
}


/* a key and the same key with one byte escaped, at every length */

static void
test_patch_fast_duplicates(void)
{
    int                            rc;
    char                           in[512], a[128], b[128];
    size_t                         len, pos, i;
    test_patch_fast_group_t        g = { "duplicates", 0, 0 };
    ngx_http_iothub_twin_patch_t   out;

    for (len = 1; len <= 40; len++) {
        for (pos = 0; pos < len; pos++) {

            memset(a, 0, sizeof(a));

            for (i = 0; i < len; i++) {
                a[i] = (char) ('a' + (i * 7 + len) % 26);
            }

            /* b: a with a[pos] as \u00XX */
            memcpy(b, a, pos);
            snprintf(b + pos, sizeof(b) - pos, "\\u00%02x%s",
                     (unsigned char) a[pos], a + pos + 1);

            snprintf(in, sizeof(in),
                     "{\"tags\":{\"%s\":1,\"%s\":2}}", a, b);
            rc = test_patch_fast_compare(&g, in, &out);

            if (rc == 0 && out.reason != NGX_HTTP_IOTHUB_TWIN_PATCH_R_DUPLICATE)
            {
                if (g.failed++ < 5) {
                    printf("# not found a duplicate: %s\n", in);
                }
            }

            snprintf(in, sizeof(in),
                     "{\"etag\":{\"%s\":1,\"x\":[],\"%s\":2}}", b, a);
            rc = test_patch_fast_compare(&g, in, &out);

            if (rc == 0 && out.reason != NGX_HTTP_IOTHUB_TWIN_PATCH_R_DUPLICATE)
            {
                if (g.failed++ < 5) {
                    printf("# not found a duplicate: %s\n", in);
                }
            }
        }
    }

    test_patch_fast_done(&g);
}


/* strings of 0 to 40 bytes with one byte of every class at every offset */

static void
test_patch_fast_strings(void)
{
    char                      str[128], body[64];
    size_t                    len, pos;
    unsigned                  c;
    test_patch_fast_group_t   g = { "strings", 0, 0 };

    static const char  *stops[] = {
        "", "\x7f", "\x01", "\\n", "\\u0000", "\\u00e9", "\xc3\xa9",
        "\xe2\x82\xac", "\xed\xa0\x80", "\xf0\x9f\x98\x80", "\xc3", "\xff",
        "\\", "\\\"", "\t"
    };

    for (len = 0; len <= 40; len++) {
        for (c = 0; c < sizeof(stops) / sizeof(stops[0]); c++) {
            for (pos = 0; pos <= len; pos++) {

                if (c == 0 && pos > 0) {
                    break;
                }

                memset(body, 'b', len);
                body[len] = '\0';

                snprintf(str, sizeof(str), "\"%.*s%s%s\"",
                         (int) pos, body, stops[c], body + pos);

                test_patch_fast_contexts(&g, test_patch_fast_value_contexts,
                                         str);
            }
        }
    }

    test_patch_fast_done(&g);
}


/* the item in every context, with 0 to 20 bytes of padding for "%p" */

static void
test_patch_fast_contexts(test_patch_fast_group_t *g, const char **contexts,
    const char *item)
{
    char                           in[512], pad[32];
    const char                    *c, *at;
    unsigned                       pads, k;
    ngx_http_iothub_twin_patch_t   out;

    for ( ; *contexts; contexts++) {
        c = *contexts;
        pads = strstr(c, "%p") ? 21 : 1;

        for (k = 0; k < pads; k++) {
            memset(pad, 'p', k);
            pad[k] = '\0';

            in[0] = '\0';

            for (at = c; *at; at++) {
                if (at[0] == '%' && at[1] == 's') {
                    strcat(in, item);
                    at++;

                } else if (at[0] == '%' && at[1] == 'p') {
                    strcat(in, pad);
                    at++;

                } else {
                    strncat(in, at, 1);
                }
            }

            (void) test_patch_fast_compare(g, in, &out);
        }
    }
}


/* 0 when both builds agree on everything; the fast build's result in out */

static int
test_patch_fast_compare(test_patch_fast_group_t *g, const char *input,
    ngx_http_iothub_twin_patch_t *out)
{
    int                            rf, rp;
    char                           shown[1100];
    const char                    *diff;
    ngx_http_iothub_twin_patch_t   pp;
    test_patch_fast_paths_t        fast, portable;

    g->inputs++;

    rf = test_patch_fast_run(ngx_http_iothub_twin_patch_validate, input,
                             strlen(input), out, &fast);
    rp = test_patch_fast_run(test_patch_fast_portable_validate, input,
                             strlen(input), &pp, &portable);

    diff = NULL;

    if (rf != rp) {
        diff = "rc";

    } else if (out->reason != pp.reason || out->rule != pp.rule) {
        diff = "reason or rule";

    } else if (out->error_offset != pp.error_offset) {
        diff = "offset";

    } else if (strcmp(out->error, pp.error) != 0) {
        diff = "message";

    } else if (out->tags_size != pp.tags_size
               || out->desired_size != pp.desired_size
               || out->npaths != pp.npaths)
    {
        diff = "sizes or path count";

    } else if (fast.len != portable.len
               || memcmp(fast.buf, portable.buf, fast.len) != 0)
    {
        diff = "paths";
    }

    if (diff == NULL) {
        return 0;
    }

    if (g->failed++ < 5) {
        test_patch_fast_escape(shown, input);
        printf("# %s differ (fast %d \"%s\", portable %d \"%s\"): %s\n",
               diff, rf, out->error, rp, pp.error, shown);
    }

    return -1;
}


/* validates a copy of the input in a buffer of exactly its size */

static int
test_patch_fast_run(test_patch_fast_validate_pt validate, const char *input,
    size_t len, ngx_http_iothub_twin_patch_t *p,
    test_patch_fast_paths_t *paths)
{
    int             rc;
    unsigned char  *buf;

    memset(p, 0x5a, sizeof(ngx_http_iothub_twin_patch_t));

    p->device_id = "dev-1";
    p->module_id = "mod-1";
    ngx_http_iothub_twin_patch_default_limits(&p->limits);
    p->path_handler = test_patch_fast_collect;
    p->path_data = paths;
    p->syntax_only = 0;
    p->hash_seed = 7;

    paths->len = 0;

    buf = malloc(len ? len : 1);
    if (buf == NULL) {
        printf("Bail out! out of memory\n");
        exit(2);
    }

    memcpy(buf, input, len);

    rc = validate(p, buf, len);

    free(buf);

    return rc;
}


static int
test_patch_fast_collect(void *data, const unsigned char *path, size_t len,
    int is_delete)
{
    test_patch_fast_paths_t  *paths;

    paths = data;

    if (paths->len + len + 2 < sizeof(paths->buf)) {
        paths->buf[paths->len++] = is_delete ? '!' : '|';
        memcpy(paths->buf + paths->len, path, len);
        paths->len += len;
    }

    return 0;
}


static void
test_patch_fast_done(test_patch_fast_group_t *g)
{
    test_patch_fast_n++;

    if (g->failed) {
        test_patch_fast_failed++;
    }

    printf("%sok %u - %s: %u inputs, the fast paths and the portable loops"
           " agree%s\n", g->failed ? "not " : "", test_patch_fast_n,
           g->name, g->inputs, g->failed ? " (not everywhere)" : "");
}


/* printable ASCII as is, other bytes as \xNN, for a diagnostic line */

static void
test_patch_fast_escape(char *dst, const char *src)
{
    size_t         n;
    unsigned char  c;

    for (n = 0; *src && n < 256; src++, n++) {
        c = (unsigned char) *src;

        if (c >= 0x20 && c < 0x7f) {
            *dst++ = (char) c;

        } else {
            dst += sprintf(dst, "\\x%02x", c);
        }
    }

    *dst = '\0';
}
