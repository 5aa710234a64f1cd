
/*
 * Micro-benchmark: one policy decision (caller lookup, target check and
 * five written paths) with 10 callers and with 10,000 callers of 100
 * rules each.  Both policies are built as JSON in memory and loaded with
 * ngx_http_iothub_twin_policy_parse(); the caller asked about has the same
 * rules in both, so the ratio shows what the number of callers costs (the
 * goal: about 1).
 *
 * Each measurement repeats the decision for at least 0.3 s; the two
 * policies are measured in turn, 5 times each, and the best of each is
 * reported.
 *
 * gcc -std=gnu99 -O2 -Wall -Wextra -Ingx_iothub_twin_module \
 *     bench/bench_policy.c \
 *     ngx_iothub_twin_module/ngx_http_iothub_twin_policy.c -ljansson \
 *     -o build/bench/bench_policy && build/bench/bench_policy
 */


#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ngx_http_iothub_twin_policy.h"
#include "bench.h"


#define BENCH_POLICY_MIN_TIME  0.3
#define BENCH_POLICY_ROUNDS    5
#define BENCH_POLICY_RULES     100
#define BENCH_POLICY_BATCH     1000


typedef struct {
    const char  *caller;
    const char  *device;
    const char  *module;
    const char  *paths[5];
} bench_policy_request_t;


static void bench_policy_rule(bench_buf_t *b, size_t c, size_t r);
static char *bench_policy_json(size_t ncallers, size_t *len);
static int bench_policy_decide(const ngx_http_iothub_twin_policy_t *policy,
    const bench_policy_request_t *req);
static double bench_policy_measure(
    const ngx_http_iothub_twin_policy_t *policy,
    const bench_policy_request_t *req);


/* written by every decision, so that none can be left out */
static volatile unsigned  bench_policy_sink;


static const bench_policy_request_t  bench_policy_request = {
    "backend-00005", "fleet-42", "mod1",
    {
        "tags.location.city",
        "tags.owner",
        "tags.meta.build",
        "properties.desired.telemetry.interval",
        "properties.desired.config.rate"
    }
};


int
main(void)
{
    int                             round;
    char                           *json, err[512];
    size_t                          i, len[2];
    double                          t[2], ns, best[2];
    ngx_http_iothub_twin_policy_t  *policy[2];

    static const size_t             sizes[2] = { 10, 10000 };

    for (i = 0; i < 2; i++) {
        json = bench_policy_json(sizes[i], &len[i]);

        t[i] = bench_now();
        policy[i] = ngx_http_iothub_twin_policy_parse("bench.json", json,
                                                      len[i], err,
                                                      sizeof(err));
        t[i] = bench_now() - t[i];

        free(json);

        if (policy[i] == NULL) {
            fprintf(stderr, "bench_policy: %s\n", err);
            return 1;
        }

        if (bench_policy_decide(policy[i], &bench_policy_request) != 0) {
            fprintf(stderr, "bench_policy: the request is refused\n");
            return 1;
        }
    }

    /* side by side, so that both see the same machine */

    for (round = 0; round < BENCH_POLICY_ROUNDS; round++) {
        for (i = 0; i < 2; i++) {
            ns = bench_policy_measure(policy[i], &bench_policy_request);

            if (round == 0 || ns < best[i]) {
                best[i] = ns;
            }
        }
    }

    for (i = 0; i < 2; i++) {
        printf("policy decision, %5zu callers x %d rules (%.1f MB JSON,"
               " loaded in %.2f s): %6.1f ns/decision",
               sizes[i], BENCH_POLICY_RULES, len[i] / 1e6, t[i], best[i]);

        if (i == 1) {
            printf(", ratio %zu/%zu: %.2f", sizes[1], sizes[0],
                   best[1] / best[0]);
        }

        printf("\n");

        ngx_http_iothub_twin_policy_free(policy[i]);
    }

    return 0;
}


/*
 * A mix of what operators write: exact device lists, fleet prefixes,
 * globs over naming schemes, module lists with and without the device
 * twin and system modules, relative paths with "*" and "**", denies.
 * Rule r of caller c depends on c and r only, so a caller's rules are the
 * same in both policies.
 */

static void
bench_policy_rule(bench_buf_t *b, size_t c, size_t r)
{
    switch (r % 10) {

    case 0:
        bench_append(b,
            "{\"operations\":[\"read\",\"update\"],"
            "\"devices\":[\"fleet-*\",\"dev-%zu-%zu\"],"
            "\"modules\":[\"\",\"mod1\",\"$edgeAgent\"],"
            "\"tags\":[\"location.*\",\"owner\",\"meta.**\"],"
            "\"desired\":[\"telemetry.interval\",\"config.**\"],"
            "\"deny\":[\"tags.meta.secret.**\","
                      "\"properties.desired.config.admin\"]}", c, r);
        break;

    case 1:
        bench_append(b,
            "{\"operations\":[\"update\"],"
            "\"devices\":[\"dev-%zu-%zu\",\"dev-%zu-%zu-b\"],"
            "\"tags\":[\"zone%zu.*\"],\"desired\":[\"app%zu.**\"]}",
            c, r, c, r, r, r);
        break;

    case 2:
        bench_append(b,
            "{\"operations\":[\"read\"],\"devices\":[\"sensor-?\?-%zu-*\"],"
            "\"modules\":[\"mod?\"]}", r);
        break;

    case 3:
        bench_append(b,
            "{\"operations\":[\"update\",\"replace\"],"
            "\"devices\":[\"lab%zu-*\",\"bench%zu\"],"
            "\"modules\":[\"\",\"*\"],\"tags\":[\"**\"],\"desired\":[\"**\"],"
            "\"deny\":[\"tags.private%zu\"]}", r, r, r);
        break;

    case 4:
        bench_append(b,
            "{\"operations\":[\"update\"],"
            "\"devices\":[\"g%zu-*-x\",\"*-%zu-y\"],"
            "\"tags\":[\"site.*.name\",\"k%zu\"],\"desired\":[\"cfg%zu.*\"]}",
            r, r, r, r);
        break;

    case 5:
        bench_append(b,
            "{\"operations\":[\"read\",\"update\"],"
            "\"devices\":[\"plant%zu-line%zu\"],\"modules\":[\"mod%zu\"],"
            "\"desired\":[\"line.speed\",\"line.mode\"]}", c, r, r);
        break;

    case 6:
        bench_append(b,
            "{\"operations\":[\"update\"],\"devices\":[\"fleet-%zu*\"],"
            "\"tags\":[\"batch\"]}", r);
        break;

    case 7:
        bench_append(b,
            "{\"operations\":[\"read\"],\"devices\":[\"*\"],"
            "\"modules\":[\"$edge*\"]}");
        break;

    case 8:
        bench_append(b,
            "{\"operations\":[\"update\"],\"devices\":[\"edge-%zu-*\"],"
            "\"modules\":[\"\",\"$edgeAgent\",\"m%zu\"],"
            "\"tags\":[\"edge.**\"],\"deny\":[\"tags.edge.keys.*\"]}", c, r);
        break;

    default:
        bench_append(b,
            "{\"operations\":[\"update\"],\"devices\":[\"ws-%zu-??\"],"
            "\"desired\":[\"a%zu.b.*\"]}", r, r);
        break;
    }
}


static char *
bench_policy_json(size_t ncallers, size_t *len)
{
    size_t              c, r;
    bench_buf_t  b;

    b.cap = 1 << 20;
    b.len = 0;
    b.buf = malloc(b.cap);

    if (b.buf == NULL) {
        fprintf(stderr, "bench_policy: out of memory\n");
        exit(1);
    }

    bench_append(&b, "{\"callers\":{");

    for (c = 0; c < ncallers; c++) {
        bench_append(&b,
            "%s\"backend-%05zu\":{"
            "\"keys\":{\"primary\":\"YmVuY2gta2V5LSU1enU=\"},"
            "\"mode\":\"%s\",\"max_body_size\":%zu,"
            "\"require_if_match\":%s,\"rules\":[",
            c ? "," : "", c, (c % 7 == 3) ? "report" : "enforce",
            (c % 4) * 8192, (c % 2) ? "true" : "false");

        for (r = 0; r < BENCH_POLICY_RULES; r++) {
            if (r) {
                bench_append(&b, ",");
            }

            bench_policy_rule(&b, c, r);
        }

        bench_append(&b, "]}");
    }

    bench_append(&b, "}}");

    *len = b.len;

    return b.buf;
}


/* the whole decision for one request: 0 if allowed */

static int
bench_policy_decide(const ngx_http_iothub_twin_policy_t *policy,
    const bench_policy_request_t *req)
{
    int                                     rc;
    size_t                                  i;
    const ngx_http_iothub_twin_caller_t    *c;
    ngx_http_iothub_twin_policy_decision_t  d;

    c = ngx_http_iothub_twin_policy_caller(policy,
                                   (const unsigned char *) req->caller,
                                   strlen(req->caller));

    rc = ngx_http_iothub_twin_policy_target(&d, c,
                                   NGX_HTTP_IOTHUB_TWIN_OP_UPDATE,
                                   (const unsigned char *) req->device,
                                   strlen(req->device),
                                   (const unsigned char *) req->module,
                                   strlen(req->module));

    for (i = 0; i < 5; i++) {
        rc |= ngx_http_iothub_twin_policy_path(&d,
                                   (const unsigned char *) req->paths[i],
                                   strlen(req->paths[i]), 0);
    }

    bench_policy_sink += d.nrules;

    return rc;
}


/* ns per decision over at least the minimum time */

static double
bench_policy_measure(const ngx_http_iothub_twin_policy_t *policy,
    const bench_policy_request_t *req)
{
    size_t    i, n;
    double    start, elapsed;

    n = 0;
    start = bench_now();

    do {
        for (i = 0; i < BENCH_POLICY_BATCH; i++) {
            bench_policy_sink += bench_policy_decide(policy, req);
        }

        n += BENCH_POLICY_BATCH;
        elapsed = bench_now() - start;

    } while (elapsed < BENCH_POLICY_MIN_TIME);

    return elapsed * 1e9 / n;
}
