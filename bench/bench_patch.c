
/*
 * Micro-benchmark: the twin patch validator, with a path callback (as when
 * a policy or an audit list needs the written paths) and without one (the
 * gateway passes NULL otherwise), against jansson json_loadb() +
 * json_decref() on the same realistic patches of about 1 KB and 32 KB.
 *
 * Each measurement repeats the parse for at least 0.3 s; the best of 5
 * measurements is reported, by the wall clock and by the thread's CPU
 * time (steadier on a loaded machine).
 *
 * "bench_patch -n N" only validates the 32 KB patch N times with the
 * callback, "bench_patch -b N" N times without one: for callgrind and
 * cachegrind, instructions per validation are (total(N) - total(0)) / N.
 *
 * gcc -O2 -Wall -Wextra -Ingx_iothub_twin_module bench/bench_patch.c \
 *     ngx_iothub_twin_module/ngx_http_iothub_twin_patch.c -ljansson \
 *     -o build/bench/bench_patch && build/bench/bench_patch
 */


#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "ngx_http_iothub_twin_patch.h"
#include "bench.h"


#define BENCH_PATCH_MIN_TIME  0.3
#define BENCH_PATCH_ROUNDS    5


typedef struct {
    size_t      bytes;
    unsigned    deletes;
} bench_patch_sink_t;


typedef struct {
    double      wall;       /* MB/s */
    double      cpu;
} bench_patch_speed_t;


typedef int (*bench_patch_parse_pt)(const unsigned char *buf, size_t len);


static unsigned bench_patch_rand(void);
static void bench_patch_tags(bench_buf_t *b, unsigned extra);
static void bench_patch_channel(bench_buf_t *b, unsigned i);
static void bench_patch_build(bench_buf_t *b, size_t target);
static int bench_patch_path(void *data, const unsigned char *path,
    size_t len, int is_delete);
static int bench_patch_validator(const unsigned char *buf, size_t len);
static int bench_patch_bare(const unsigned char *buf, size_t len);
static int bench_patch_jansson(const unsigned char *buf, size_t len);
static double bench_patch_cpu(void);
static bench_patch_speed_t bench_patch_measure(bench_patch_parse_pt parse,
    const unsigned char *buf, size_t len);


static unsigned                      bench_patch_seed = 12345;
static bench_patch_sink_t            bench_patch_sink;
static ngx_http_iothub_twin_patch_t  bench_patch_p;


int
main(int argc, char **argv)
{
    size_t                i;
    unsigned              n, k;
    bench_buf_t           b;
    bench_patch_speed_t   v, w, j;
    bench_patch_parse_pt  parse;
    static const size_t   sizes[] = { 1024, 32768 };

    ngx_http_iothub_twin_patch_default_limits(&bench_patch_p.limits);
    bench_patch_p.device_id = "dev-1";
    bench_patch_p.module_id = "mod-1";
    bench_patch_p.path_handler = bench_patch_path;
    bench_patch_p.path_data = &bench_patch_sink;

    if (argc == 3
        && (strcmp(argv[1], "-n") == 0 || strcmp(argv[1], "-b") == 0))
    {
        n = (unsigned) strtoul(argv[2], NULL, 10);
        parse = (argv[1][1] == 'n') ? bench_patch_validator
                                    : bench_patch_bare;

        memset(&b, 0, sizeof(b));
        bench_patch_build(&b, 32768);

        for (k = 0; k < n; k++) {
            if (parse((unsigned char *) b.buf, b.len) != 0) {
                fprintf(stderr, "validator refuses the patch: %s\n",
                        bench_patch_p.error);
                return 1;
            }
        }

        printf("# %u bytes validated %u times %s a path callback\n",
               (unsigned) b.len, n, argv[1][1] == 'n' ? "with" : "without");

        free(b.buf);
        return 0;
    }

    if (argc != 1) {
        fprintf(stderr, "usage: bench_patch [-n count | -b count]\n");
        return 2;
    }

    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        memset(&b, 0, sizeof(b));
        bench_patch_build(&b, sizes[i]);

        if (bench_patch_validator((unsigned char *) b.buf, b.len) != 0) {
            fprintf(stderr, "validator refuses the %u byte patch: %s\n",
                    (unsigned) b.len, bench_patch_p.error);
            return 1;
        }

        printf("# %u bytes: %u paths, tags %u, desired %u bytes counted\n",
               (unsigned) b.len, bench_patch_p.npaths,
               (unsigned) bench_patch_p.tags_size,
               (unsigned) bench_patch_p.desired_size);

        if (bench_patch_bare((unsigned char *) b.buf, b.len) != 0) {
            fprintf(stderr, "validator without a callback refuses the %u"
                    " byte patch: %s\n", (unsigned) b.len,
                    bench_patch_p.error);
            return 1;
        }

        if (bench_patch_jansson((unsigned char *) b.buf, b.len) != 0) {
            fprintf(stderr, "jansson refuses the %u byte patch\n",
                    (unsigned) b.len);
            return 1;
        }

        v = bench_patch_measure(bench_patch_validator,
                                (unsigned char *) b.buf, b.len);
        w = bench_patch_measure(bench_patch_bare,
                                (unsigned char *) b.buf, b.len);
        j = bench_patch_measure(bench_patch_jansson,
                                (unsigned char *) b.buf, b.len);

        printf("size %6u B, MB/s by wall clock (by CPU time):\n"
               "  validator, paths callback %8.1f (%8.1f)\n"
               "  validator, no callback    %8.1f (%8.1f)\n"
               "  jansson                   %8.1f (%8.1f)\n"
               "  ratio with callback / jansson %5.1fx (%5.1fx)\n",
               (unsigned) b.len, v.wall, v.cpu, w.wall, w.cpu,
               j.wall, j.cpu, v.wall / j.wall, v.cpu / j.cpu);

        free(b.buf);
    }

    return 0;
}


static unsigned
bench_patch_rand(void)
{
    bench_patch_seed = bench_patch_seed * 1103515245 + 12345;

    return (bench_patch_seed >> 16) & 0x7fff;
}


static void
bench_patch_tags(bench_buf_t *b, unsigned extra)
{
    unsigned  i;

    bench_append(b,
        "\"tags\":{\"location\":{\"site\":\"plant-7\",\"building\":\"B2\","
        "\"floor\":%u,\"room\":\"r-%u\",\"geo\":{\"lat\":59.91%u,"
        "\"lon\":10.75%u}},\"owner\":\"ops-team\","
        "\"environment\":\"production\",\"sensors\":[\"temp\",\"humidity\","
        "\"co2\"],\"installedAt\":\"2023-04-11T08:30:00Z\",\"retired\":false",
        bench_patch_rand() % 12, bench_patch_rand() % 900 + 100,
        bench_patch_rand() % 100, bench_patch_rand() % 100);

    for (i = 0; i < extra; i++) {
        bench_append(b,
            ",\"asset%u\":{\"serial\":\"SN-%05u-%04u\",\"vendor\":\"Acme "
            "Instruments\",\"firmware\":\"4.%u.%u\",\"warranty\":%s}",
            i, bench_patch_rand(), bench_patch_rand() % 10000,
            bench_patch_rand() % 20, bench_patch_rand() % 100,
            bench_patch_rand() & 1 ? "true" : "false");
    }

    bench_append(b, "}");
}


static void
bench_patch_channel(bench_buf_t *b, unsigned i)
{
    bench_append(b,
        ",\"ch%03u\":{\"enabled\":%s,\"rate\":%u,\"gain\":1.%04u,"
        "\"label\":\"channel %u - inlet pressure\",\"thresholds\":[%u.5,%u,"
        "%u.75],\"mode\":\"auto\",\"calibration\":{\"offset\":-0.%03u,"
        "\"scale\":1.%04u,\"at\":\"2024-01-15T10:00:00Z\"},\"alarm\":%s}",
        i, bench_patch_rand() & 1 ? "true" : "false",
        bench_patch_rand() % 1000, bench_patch_rand() % 10000, i,
        bench_patch_rand() % 50, bench_patch_rand() % 100,
        bench_patch_rand() % 200, bench_patch_rand() % 1000,
        bench_patch_rand() % 10000,
        bench_patch_rand() % 4 ? "null" : "{\"level\":\"high\"}");
}


/* a module twin patch of about target bytes, as an SDK would send it */

static void
bench_patch_build(bench_buf_t *b, size_t target)
{
    size_t             len;
    unsigned           i;
    bench_buf_t  ch;

    bench_append(b, "{\"deviceId\":\"dev-1\",\"moduleId\":\"mod-1\","
                          "\"etag\":\"AAAAAAAAAAc=\",");
    bench_patch_tags(b, target > 4096 ? 8 : 0);

    bench_append(b,
        ",\"properties\":{\"desired\":{\"telemetry\":{\"interval\":30,"
        "\"batch\":true,\"compression\":\"gzip\",\"endpoints\":["
        "\"amqps://hub-1.example.net\",\"mqtts://hub-2.example.net\"]},"
        "\"schedule\":{\"start\":\"06:00\",\"stop\":\"22:30\","
        "\"days\":[1,2,3,4,5]},\"logLevel\":\"info\"");

    /* the last "}}}" closes desired, properties and the patch */

    for (i = 0; ; i++) {
        memset(&ch, 0, sizeof(ch));
        bench_patch_channel(&ch, i);

        len = b->len + ch.len + 3;

        if (len > target) {
            free(ch.buf);
            break;
        }

        bench_append(b, "%s", ch.buf);
        free(ch.buf);
    }

    bench_append(b, "}}}");
}


static int
bench_patch_path(void *data, const unsigned char *path, size_t len,
    int is_delete)
{
    bench_patch_sink_t  *sink;

    sink = data;
    sink->bytes += len + path[len - 1];
    sink->deletes += is_delete;

    return 0;
}


static int
bench_patch_validator(const unsigned char *buf, size_t len)
{
    return ngx_http_iothub_twin_patch_validate(&bench_patch_p, buf, len)
           != NGX_HTTP_IOTHUB_TWIN_PATCH_OK;
}


/* the same without a path callback: no paths are built */

static int
bench_patch_bare(const unsigned char *buf, size_t len)
{
    int  rc;

    bench_patch_p.path_handler = NULL;

    rc = ngx_http_iothub_twin_patch_validate(&bench_patch_p, buf, len)
         != NGX_HTTP_IOTHUB_TWIN_PATCH_OK;

    bench_patch_p.path_handler = bench_patch_path;

    return rc;
}


static int
bench_patch_jansson(const unsigned char *buf, size_t len)
{
    json_t        *j;
    json_error_t   err;

    j = json_loadb((const char *) buf, len, JSON_REJECT_DUPLICATES, &err);
    if (j == NULL) {
        return -1;
    }

    json_decref(j);

    return 0;
}


static double
bench_patch_cpu(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);

    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}


/*
 * MB/s, best of BENCH_PATCH_ROUNDS runs of at least BENCH_PATCH_MIN_TIME,
 * by the wall clock and by the thread's CPU time
 */

static bench_patch_speed_t
bench_patch_measure(bench_patch_parse_pt parse, const unsigned char *buf,
    size_t len)
{
    int                  failed;
    double               start, cpu, t, c, best, best_cpu;
    unsigned             i, round, n;
    bench_patch_speed_t  speed;

    /* find a repeat count that takes long enough */

    for (n = 16; ; n *= 2) {
        start = bench_now();

        for (i = 0; i < n; i++) {
            (void) parse(buf, len);
        }

        if (bench_now() - start >= BENCH_PATCH_MIN_TIME) {
            break;
        }
    }

    best = 0;
    best_cpu = 0;
    failed = 0;

    for (round = 0; round < BENCH_PATCH_ROUNDS; round++) {
        start = bench_now();
        cpu = bench_patch_cpu();

        for (i = 0; i < n; i++) {
            failed |= parse(buf, len);
        }

        t = bench_now() - start;
        c = bench_patch_cpu() - cpu;

        if (best == 0 || t < best) {
            best = t;
        }

        if (best_cpu == 0 || c < best_cpu) {
            best_cpu = c;
        }
    }

    if (failed) {
        fprintf(stderr, "a parse failed during the measurement\n");
        exit(1);
    }

    speed.wall = (double) len * n / best / 1e6;
    speed.cpu = (double) len * n / best_cpu / 1e6;

    return speed;
}
