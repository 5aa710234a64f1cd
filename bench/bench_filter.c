
/*
 * Micro-benchmark: the read filter against jansson json_loadb() + the same
 * pruning over jansson's tree + json_dumps(), on a generated twin of about
 * 64 KB (many tags, desired and reported properties, each section with
 * $metadata as the hub writes it) and a scope that keeps about a third of
 * it: a third of the tag assets and of the channels of both sections
 * wholly, and of another third of the desired channels one member.
 *
 * Each measurement repeats the work for at least 0.3 s; the best of 5
 * measurements is reported, in MB/s of input.
 *
 * gcc -O2 -Wall -Wextra -Ingx_iothub_twin_module bench/bench_filter.c \
 *     ngx_iothub_twin_module/ngx_http_iothub_twin_filter.c -ljansson \
 *     -o build/bench/bench_filter && build/bench/bench_filter
 */


#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "ngx_http_iothub_twin_filter.h"
#include "bench.h"


#define BENCH_FILTER_MIN_TIME  0.3
#define BENCH_FILTER_ROUNDS    5
#define BENCH_FILTER_SIZE      63000

#define BENCH_FILTER_TS        "\"$lastUpdated\":\"2026-11-11T10:%02u:%02u." \
                               "%07uZ\",\"$lastUpdatedVersion\":%u"


typedef int (*bench_filter_run_pt)(const unsigned char *buf, size_t len);


static unsigned bench_filter_rand(void);
static void bench_filter_ts(bench_buf_t *b);
static void bench_filter_leaf_meta(bench_buf_t *m, const char *key);
static void bench_filter_channel(bench_buf_t *d, bench_buf_t *m,
    unsigned i, unsigned reported);
static void bench_filter_build(bench_buf_t *b, size_t target);
static int bench_filter_verdict(void *data, const unsigned char *path,
    size_t len);
static int bench_filter_filter(const unsigned char *buf, size_t len);
static void bench_filter_prune(json_t *obj, char *path, size_t plen,
    unsigned kind);
static int bench_filter_jansson(const unsigned char *buf, size_t len);
static double bench_filter_measure(bench_filter_run_pt run,
    const unsigned char *buf, size_t len);


static unsigned                        bench_filter_seed = 4242;
static unsigned char                  *bench_filter_out;
static size_t                          bench_filter_sink;
static char                            bench_filter_dump[BENCH_FILTER_SIZE];
static ngx_http_iothub_twin_filter_t   bench_filter_f;


int
main(void)
{
    double       v, j;
    json_t      *a, *d;
    bench_buf_t  b;

    memset(&b, 0, sizeof(b));
    bench_filter_build(&b, BENCH_FILTER_SIZE);

    bench_filter_out = malloc(b.len);
    if (bench_filter_out == NULL) {
        return 2;
    }

    bench_filter_f.read = bench_filter_verdict;
    bench_filter_f.out = bench_filter_out;

    if (bench_filter_filter((unsigned char *) b.buf, b.len) != 0) {
        fprintf(stderr, "the filter refuses the twin\n");
        return 1;
    }

    printf("# %u byte twin: %u bytes kept (%.0f%%), %u nodes withheld\n",
           (unsigned) b.len, (unsigned) bench_filter_f.out_len,
           100.0 * bench_filter_f.out_len / b.len, bench_filter_f.withheld);

    if (bench_filter_jansson((unsigned char *) b.buf, b.len) != 0) {
        fprintf(stderr, "jansson refuses the twin\n");
        return 1;
    }

    printf("# jansson's pruned dump: %u bytes\n",
           (unsigned) bench_filter_sink);

    /* both cut the same */
    a = json_loadb((char *) bench_filter_out, bench_filter_f.out_len, 0,
                   NULL);
    d = json_loads(bench_filter_dump, 0, NULL);

    if (a == NULL || d == NULL || !json_equal(a, d)) {
        fprintf(stderr, "the filter and jansson's pruning differ\n");
        return 1;
    }

    json_decref(a);
    json_decref(d);

    v = bench_filter_measure(bench_filter_filter, (unsigned char *) b.buf,
                             b.len);
    j = bench_filter_measure(bench_filter_jansson, (unsigned char *) b.buf,
                             b.len);

    printf("filter %u B: filter %8.1f MB/s, jansson load+prune+dump "
           "%6.1f MB/s, ratio %5.1fx\n", (unsigned) b.len, v, j, v / j);

    free(bench_filter_out);
    free(b.buf);

    return 0;
}


static unsigned
bench_filter_rand(void)
{
    bench_filter_seed = bench_filter_seed * 1103515245 + 12345;

    return (bench_filter_seed >> 16) & 0x7fff;
}


static void
bench_filter_ts(bench_buf_t *b)
{
    bench_append(b, BENCH_FILTER_TS, bench_filter_rand() % 60,
                 bench_filter_rand() % 60, bench_filter_rand() * 271 % 10000000,
                 bench_filter_rand() % 50 + 1);
}


static void
bench_filter_leaf_meta(bench_buf_t *m, const char *key)
{
    bench_append(m, ",\"%s\":{", key);
    bench_filter_ts(m);
    bench_append(m, "}");
}


/* one channel's data into d, its metadata into m (both after a comma) */

static void
bench_filter_channel(bench_buf_t *d, bench_buf_t *m, unsigned i,
    unsigned reported)
{
    bench_append(d,
        ",\"ch%03u\":{\"enabled\":%s,\"rate\":%u,\"gain\":1.%04u,"
        "\"label\":\"channel %u - inlet pressure\",\"mode\":\"%s\","
        "\"calibration\":{\"offset\":-0.%03u,\"scale\":1.%04u}}",
        i, bench_filter_rand() & 1 ? "true" : "false",
        bench_filter_rand() % 1000, bench_filter_rand() % 10000, i,
        reported ? "running" : "auto", bench_filter_rand() % 1000,
        bench_filter_rand() % 10000);

    bench_append(m, ",\"ch%03u\":{", i);
    bench_filter_ts(m);
    bench_filter_leaf_meta(m, "enabled");
    bench_filter_leaf_meta(m, "rate");
    bench_filter_leaf_meta(m, "gain");
    bench_filter_leaf_meta(m, "label");
    bench_filter_leaf_meta(m, "mode");
    bench_append(m, ",\"calibration\":{");
    bench_filter_ts(m);
    bench_filter_leaf_meta(m, "offset");
    bench_filter_leaf_meta(m, "scale");
    bench_append(m, "}}");
}


/* a device twin of about target bytes, as the hub returns it */

static void
bench_filter_build(bench_buf_t *b, size_t target)
{
    size_t       per;
    unsigned     i, n, sec;
    bench_buf_t  d, m;

    bench_append(b,
        "{\"deviceId\":\"dev-1\",\"etag\":\"AAAAAAAAAAc=\","
        "\"deviceEtag\":\"NDA4MjQ1\",\"status\":\"enabled\","
        "\"statusUpdateTime\":\"0001-01-01T00:00:00Z\","
        "\"connectionState\":\"Connected\","
        "\"lastActivityTime\":\"2026-11-11T10:00:00.1234567Z\","
        "\"cloudToDeviceMessageCount\":0,\"authenticationType\":\"sas\","
        "\"x509Thumbprint\":{\"primaryThumbprint\":null,"
        "\"secondaryThumbprint\":null},\"modelId\":\"\",\"version\":97,"
        "\"tags\":{\"location\":{\"site\":\"plant-7\",\"building\":\"B2\","
        "\"floor\":3},\"owner\":\"ops-team\"");

    /* tags: about an eighth of the twin */

    for (i = 0; b->len < target / 8; i++) {
        bench_append(b,
            ",\"asset%u\":{\"serial\":\"SN-%05u-%04u\",\"vendor\":\"Acme "
            "Instruments\",\"firmware\":\"4.%u.%u\",\"warranty\":%s}",
            i, bench_filter_rand(), bench_filter_rand() % 10000,
            bench_filter_rand() % 20, bench_filter_rand() % 100,
            bench_filter_rand() & 1 ? "true" : "false");
    }

    bench_append(b, "},\"properties\":{");

    /* each section with its metadata: about 7/16 of the twin */

    per = 0;

    for (sec = 0; sec < 2; sec++) {
        memset(&d, 0, sizeof(d));
        memset(&m, 0, sizeof(m));

        bench_append(&d, "\"%s\":{\"telemetry\":{\"interval\":30}",
                     sec ? "reported" : "desired");
        bench_append(&m, ",\"$metadata\":{");
        bench_filter_ts(&m);
        bench_append(&m, ",\"telemetry\":{");
        bench_filter_ts(&m);
        bench_filter_leaf_meta(&m, "interval");
        bench_append(&m, "}");

        n = 0;

        for (i = 0; d.len + m.len < target * 7 / 16; i++) {
            bench_filter_channel(&d, &m, i, sec);
            n++;
        }

        per += n;

        bench_append(b, "%s%s},\"$version\":%u}%s", d.buf, m.buf, n + 3,
                     sec ? "" : ",");

        free(d.buf);
        free(m.buf);
    }

    bench_append(b, "}}");

    printf("# %u channels a section on average\n", (unsigned) (per / 2));
}


/*
 * The scope: the twin's identity, tags.location, every third asset and
 * channel of both sections wholly, and the rate of the channels after
 * them in desired; telemetry in desired.
 */

static int
bench_filter_verdict(void *data, const unsigned char *path, size_t len)
{
    size_t       i, n;
    unsigned     k;
    const char  *p;

    (void) data;

    p = (const char *) path;

    if (len == 8 && memcmp(p, "deviceId", 8) == 0) {
        return NGX_HTTP_IOTHUB_TWIN_READ_ALL;
    }

    if ((len == 4 && memcmp(p, "etag", 4) == 0)
        || (len == 7 && memcmp(p, "version", 7) == 0))
    {
        return NGX_HTTP_IOTHUB_TWIN_READ_ALL;
    }

    if ((len == 4 && memcmp(p, "tags", 4) == 0)
        || (len == 10 && memcmp(p, "properties", 10) == 0)
        || (len == 18 && memcmp(p, "properties.desired", 18) == 0)
        || (len == 19 && memcmp(p, "properties.reported", 19) == 0))
    {
        return NGX_HTTP_IOTHUB_TWIN_READ_SOME;
    }

    if (len == 13 && memcmp(p, "tags.location", 13) == 0) {
        return NGX_HTTP_IOTHUB_TWIN_READ_ALL;
    }

    if (len == 28 && memcmp(p, "properties.desired.telemetry", 28) == 0) {
        return NGX_HTTP_IOTHUB_TWIN_READ_ALL;
    }

    if (len > 10 && memcmp(p, "tags.asset", 10) == 0) {
        i = 10;

    } else if (len > 21 && memcmp(p, "properties.desired.ch", 21) == 0) {
        i = 21;

    } else if (len > 22 && memcmp(p, "properties.reported.ch", 22) == 0) {
        i = 22;

    } else {
        return NGX_HTTP_IOTHUB_TWIN_READ_NONE;
    }

    for (k = 0, n = i; n < len && p[n] >= '0' && p[n] <= '9'; n++) {
        k = k * 10 + (unsigned) (p[n] - '0');
    }

    if (k % 3 == 0) {
        return NGX_HTTP_IOTHUB_TWIN_READ_ALL;
    }

    if (k % 3 == 1 && i == 21) {
        if (n == len) {
            return NGX_HTTP_IOTHUB_TWIN_READ_SOME;
        }

        if (len - n == 5 && memcmp(p + n, ".rate", 5) == 0) {
            return NGX_HTTP_IOTHUB_TWIN_READ_ALL;
        }
    }

    return NGX_HTTP_IOTHUB_TWIN_READ_NONE;
}


static int
bench_filter_filter(const unsigned char *buf, size_t len)
{
    return ngx_http_iothub_twin_filter(&bench_filter_f, buf, len);
}


/*
 * The same pruning over jansson's tree, in place: kind 0 the twin, 1 an
 * object asked SOME, 2 a section or tags, 3 metadata (kept where its data
 * is, a SOME node only with data kept).  "properties" is asked SOME by
 * this scope, so its sections go by kind 2 directly.
 */

static void
bench_filter_prune(json_t *obj, char *path, size_t plen, unsigned kind)
{
    int          v, data;
    void        *tmp;
    size_t       klen, n;
    json_t      *val, *sval;
    const char  *key, *skey;

    json_object_foreach_safe(obj, tmp, key, val) {
        klen = strlen(key);

        if ((kind == 2 || kind == 3) && key[0] == '$') {
            if (kind == 2 && strcmp(key, "$metadata") == 0) {
                bench_filter_prune(val, path, plen, 3);

            } else if (kind == 2 && strcmp(key, "$version") != 0) {
                json_object_del(obj, key);
            }

            continue;
        }

        n = plen;

        if (kind != 0) {
            path[n++] = '.';
        }

        memcpy(path + n, key, klen);
        n += klen;

        v = bench_filter_verdict(NULL, (unsigned char *) path, n);

        if (v == NGX_HTTP_IOTHUB_TWIN_READ_ALL) {
            continue;
        }

        if (v == NGX_HTTP_IOTHUB_TWIN_READ_SOME && json_is_object(val)) {
            if (kind == 0 && strcmp(key, "properties") == 0) {
                json_object_foreach(val, skey, sval) {
                    path[n] = '.';
                    klen = strlen(skey);
                    memcpy(path + n + 1, skey, klen);
                    bench_filter_prune(sval, path, n + 1 + klen, 2);
                }

                continue;
            }

            bench_filter_prune(val, path, n,
                               kind == 3 ? 3
                               : (kind == 0 && strcmp(key, "tags") == 0)
                                 ? 2 : 1);

            if (kind == 3) {
                data = 0;

                json_object_foreach(val, skey, sval) {
                    data |= (skey[0] != '$');
                }

                if (!data) {
                    json_object_del(obj, key);
                }
            }

            continue;
        }

        json_object_del(obj, key);
    }
}


static int
bench_filter_jansson(const unsigned char *buf, size_t len)
{
    char          *s, path[4096];
    json_t        *j;
    json_error_t   err;

    j = json_loadb((const char *) buf, len, 0, &err);
    if (j == NULL) {
        return -1;
    }

    bench_filter_prune(j, path, 0, 0);

    s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(j);

    if (s == NULL) {
        return -1;
    }

    bench_filter_sink = strlen(s);

    if (bench_filter_sink < sizeof(bench_filter_dump)) {
        memcpy(bench_filter_dump, s, bench_filter_sink + 1);
    }

    free(s);

    return 0;
}


/* MB/s, best of BENCH_FILTER_ROUNDS runs of at least BENCH_FILTER_MIN_TIME */

static double
bench_filter_measure(bench_filter_run_pt run, const unsigned char *buf,
    size_t len)
{
    int       failed;
    double    start, t, best;
    unsigned  i, round, n;

    for (n = 16; ; n *= 2) {
        start = bench_now();

        for (i = 0; i < n; i++) {
            (void) run(buf, len);
        }

        if (bench_now() - start >= BENCH_FILTER_MIN_TIME) {
            break;
        }
    }

    best = 0;
    failed = 0;

    for (round = 0; round < BENCH_FILTER_ROUNDS; round++) {
        start = bench_now();

        for (i = 0; i < n; i++) {
            failed |= run(buf, len);
        }

        t = bench_now() - start;

        if (best == 0 || t < best) {
            best = t;
        }
    }

    if (failed) {
        fprintf(stderr, "a run failed during the measurement\n");
        exit(1);
    }

    return (double) len * n / best / 1e6;
}
