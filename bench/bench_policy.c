
/*
 * Micro-benchmark of the policy decision: caller lookup, target check and
 * every written path, in three pairs measured side by side:
 *
 *   callers   the same caller and request in a policy of 10 and of 10,000
 *             callers of 100 rules each
 *   patterns  a caller whose lists hold the few patterns the request needs,
 *             and one whose lists hold 100 each (devices, tags, desired),
 *             the matching ones in their second half
 *   leaves    a patch of 20 and one of 2,000 leaves under "config.**"
 *             (lists of 100 patterns), reported in document order as the
 *             validator does
 *   reads     the read verdict of every node of a twin of about 64 KB
 *             (1,964 nodes: tags, desired and reported properties, the
 *             top-level members), asked in document order, for a caller
 *             whose rule has the 1 read pattern it needs and one whose
 *             rule has 100 (the needed one in the second half), and 1 and
 *             20 denies; both get the same verdicts
 *
 * All policies are built as JSON in memory and loaded with
 * ngx_http_iothub_twin_policy_parse().  Each measurement repeats the
 * decision for at least 0.3 s; the cases are measured in turn, 5 rounds,
 * and the best of each is reported.  The goal: ratios of about 1 for
 * callers and patterns, and for leaves the same cost per path.
 *
 * make build/bench/bench_policy && build/bench/bench_policy
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
#define BENCH_POLICY_PATTERNS  100
#define BENCH_POLICY_CASES     8
#define BENCH_POLICY_NODES     2048


typedef struct {
    const char                            *title;
    const ngx_http_iothub_twin_policy_t   *policy;
    const char                            *caller;
    const char                            *device;
    const char                            *module;
    char                                 **paths;
    size_t                                 npaths;
    int                                    read;
    double                                 best;
} bench_policy_case_t;


static void bench_policy_rule(bench_buf_t *b, size_t c, size_t r);
static char *bench_policy_json(size_t ncallers, size_t *len);
static char *bench_policy_small_json(size_t *len);
static void bench_policy_list(bench_buf_t *b, const char *name,
    const char *const *needed, size_t nneeded, size_t total,
    const char *filler);
static ngx_http_iothub_twin_policy_t *bench_policy_load(const char *json,
    size_t len, double *t);
static char **bench_policy_leaves(size_t n);
static char *bench_policy_read_json(size_t *len);
static char **bench_policy_nodes(size_t *n);
static int bench_policy_decide(const bench_policy_case_t *bc);
static void bench_policy_same_reads(const bench_policy_case_t *a,
    const bench_policy_case_t *b);
static double bench_policy_measure(const bench_policy_case_t *bc);


/* written by every decision, so that none can be left out */
static volatile unsigned  bench_policy_sink;


static char  *bench_policy_paths[] = {
    "tags.location.city",
    "tags.owner",
    "tags.meta.build",
    "properties.desired.telemetry.interval",
    "properties.desired.config.rate"
};


int
main(void)
{
    int                             round;
    char                           *json, **leaves[2], **nodes;
    size_t                          i, len[4], nnodes;
    double                          t[4], ns;
    bench_policy_case_t             cases[BENCH_POLICY_CASES], *bc;
    ngx_http_iothub_twin_policy_t  *policy[4];

    static const size_t             sizes[2] = { 10, 10000 };

    for (i = 0; i < 2; i++) {
        json = bench_policy_json(sizes[i], &len[i]);
        policy[i] = bench_policy_load(json, len[i], &t[i]);
        free(json);
    }

    json = bench_policy_small_json(&len[2]);
    policy[2] = bench_policy_load(json, len[2], &t[2]);
    free(json);

    json = bench_policy_read_json(&len[3]);
    policy[3] = bench_policy_load(json, len[3], &t[3]);
    free(json);

    leaves[0] = bench_policy_leaves(20);
    leaves[1] = bench_policy_leaves(2000);
    nodes = bench_policy_nodes(&nnodes);

    memset(cases, 0, sizeof(cases));

    for (i = 0; i < 2; i++) {
        bc = &cases[i];
        bc->title = i ? "10000 callers" : "   10 callers";
        bc->policy = policy[i];
        bc->caller = "backend-00005";
        bc->device = "fleet-42";
        bc->module = "mod1";
        bc->paths = bench_policy_paths;
        bc->npaths = 5;

        bc = &cases[2 + i];
        bc->title = i ? "100 patterns" : "  1 pattern ";
        bc->policy = policy[2];
        bc->caller = i ? "p100" : "p1";
        bc->device = "fleet-42";
        bc->module = "mod1";
        bc->paths = bench_policy_paths;
        bc->npaths = 5;

        bc = &cases[4 + i];
        bc->title = i ? "2000 leaves" : "  20 leaves";
        bc->policy = policy[2];
        bc->caller = "bulk";
        bc->device = "fleet-42";
        bc->module = NULL;
        bc->paths = leaves[i];
        bc->npaths = i ? 2000 : 20;

        bc = &cases[6 + i];
        bc->title = i ? "100 read pats" : "  1 read pat ";
        bc->policy = policy[3];
        bc->caller = i ? "r100" : "r1";
        bc->device = "fleet-42";
        bc->module = NULL;
        bc->paths = nodes;
        bc->npaths = nnodes;
        bc->read = 1;
    }

    for (i = 0; i < BENCH_POLICY_CASES; i++) {
        if (bench_policy_decide(&cases[i]) != 0) {
            fprintf(stderr, "bench_policy: %s: the request is refused\n",
                    cases[i].title);
            return 1;
        }
    }

    bench_policy_same_reads(&cases[6], &cases[7]);

    /* side by side, so that all see the same machine */

    for (round = 0; round < BENCH_POLICY_ROUNDS; round++) {
        for (i = 0; i < BENCH_POLICY_CASES; i++) {
            ns = bench_policy_measure(&cases[i]);

            if (round == 0 || ns < cases[i].best) {
                cases[i].best = ns;
            }
        }
    }

    for (i = 0; i < 2; i++) {
        printf("policy decision, %5zu callers x %d rules (%.1f MB JSON,"
               " loaded in %.2f s): %7.1f ns/decision\n",
               sizes[i], BENCH_POLICY_RULES, len[i] / 1e6, t[i],
               cases[i].best);
    }

    for (i = 0; i < BENCH_POLICY_CASES; i += 2) {
        printf("policy %-13s vs %-13s: %8.1f vs %8.1f ns/decision,"
               " %6.1f vs %6.1f ns/%s; ratio %.2f per decision,"
               " %.2f per %s\n",
               cases[i].title, cases[i + 1].title, cases[i].best,
               cases[i + 1].best, cases[i].best / cases[i].npaths,
               cases[i + 1].best / cases[i + 1].npaths,
               cases[i].read ? "node" : "path",
               cases[i + 1].best / cases[i].best,
               (cases[i + 1].best / cases[i + 1].npaths)
               / (cases[i].best / cases[i].npaths),
               cases[i].read ? "node" : "path");
    }

    for (i = 0; i < 4; i++) {
        ngx_http_iothub_twin_policy_free(policy[i]);
    }

    for (i = 0; i < nnodes; i++) {
        free(nodes[i]);
    }

    free(nodes);

    for (i = 0; i < 2; i++) {
        size_t  k;

        for (k = 0; k < (i ? 2000u : 20u); k++) {
            free(leaves[i][k]);
        }

        free(leaves[i]);
    }

    return 0;
}


static ngx_http_iothub_twin_policy_t *
bench_policy_load(const char *json, size_t len, double *t)
{
    char                            err[512];
    ngx_http_iothub_twin_policy_t  *policy;

    *t = bench_now();
    policy = ngx_http_iothub_twin_policy_parse("bench.json", json, len, err,
                                               sizeof(err));
    *t = bench_now() - *t;

    if (policy == NULL) {
        fprintf(stderr, "bench_policy: %s\n", err);
        exit(1);
    }

    return policy;
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


/*
 * Callers p1 and p100 allow the same request, p1 with only the patterns
 * it needs, p100 with 100 entries in each list, the needed ones in the
 * second half; bulk has p100's lists without modules, so config and
 * everything below it is allowed (but for config.admin).
 */

static char *
bench_policy_small_json(size_t *len)
{
    size_t       k;
    bench_buf_t  b;

    static const char *const  devices[] = { "fleet-4?" };
    static const char *const  modules[] = { "mod1" };
    static const char *const  tags[] = {
        "location.*", "owner", "meta.**"
    };
    static const char *const  desired[] = {
        "telemetry.interval", "config.**"
    };
    static const char *const  deny[] = {
        "tags.meta.secret.**", "properties.desired.config.admin"
    };

    memset(&b, 0, sizeof(b));

    bench_append(&b, "{\"callers\":{");

    for (k = 0; k < 2; k++) {
        bench_append(&b, "%s\"%s\":{\"rules\":[{\"operations\":[\"update\"],",
                     k ? "," : "", k ? "p100" : "p1");

        bench_policy_list(&b, "devices", devices, 1,
                          k ? BENCH_POLICY_PATTERNS : 1, "site%zu-*");
        bench_append(&b, ",");
        bench_policy_list(&b, "modules", modules, 1,
                          k ? BENCH_POLICY_PATTERNS : 1, "m%zu");
        bench_append(&b, ",");
        bench_policy_list(&b, "tags", tags, 3,
                          k ? BENCH_POLICY_PATTERNS : 3, "zone%zu.*.name");
        bench_append(&b, ",");
        bench_policy_list(&b, "desired", desired, 2,
                          k ? BENCH_POLICY_PATTERNS : 2, "app%zu.**");
        bench_append(&b, ",");
        bench_policy_list(&b, "deny", deny, 2,
                          k ? BENCH_POLICY_PATTERNS / 5 : 2,
                          "tags.zone%zu.keys");
        bench_append(&b, "}]}");
    }

    /* the leaves' caller: 100 patterns a list, as p100 */

    bench_append(&b, ",\"bulk\":{\"rules\":[{\"operations\":[\"update\"],");
    bench_policy_list(&b, "devices", devices, 1, BENCH_POLICY_PATTERNS,
                      "site%zu-*");
    bench_append(&b, ",");
    bench_policy_list(&b, "tags", tags, 3, BENCH_POLICY_PATTERNS,
                      "zone%zu.*.name");
    bench_append(&b, ",");
    bench_policy_list(&b, "desired", desired, 2, BENCH_POLICY_PATTERNS,
                      "app%zu.**");
    bench_append(&b, ",");
    bench_policy_list(&b, "deny", deny, 2, BENCH_POLICY_PATTERNS / 5,
                      "tags.zone%zu.keys");
    bench_append(&b, "}]}");

    bench_append(&b, "}}");

    *len = b.len;

    return b.buf;
}


/* "name":[...] of total entries: fillers, then the needed ones after half */

static void
bench_policy_list(bench_buf_t *b, const char *name,
    const char *const *needed, size_t nneeded, size_t total,
    const char *filler)
{
    size_t  i, k, at;

    at = (total > nneeded) ? total / 2 + 1 : 0;

    bench_append(b, "\"%s\":[", name);

    for (i = 0, k = 0; i < total; i++) {
        if (i) {
            bench_append(b, ",");
        }

        if (i >= at && k < nneeded) {
            bench_append(b, "\"%s\"", needed[k++]);
            continue;
        }

        bench_append(b, "\"");
        bench_append(b, filler, i);
        bench_append(b, "\"");
    }

    bench_append(b, "]");
}


/* n paths under properties.desired.config, in document order */

static char **
bench_policy_leaves(size_t n)
{
    char    **paths;
    size_t    i;

    paths = malloc(n * sizeof(char *));
    if (paths == NULL) {
        fprintf(stderr, "bench_policy: out of memory\n");
        exit(1);
    }

    for (i = 0; i < n; i++) {
        paths[i] = malloc(64);
        if (paths[i] == NULL) {
            fprintf(stderr, "bench_policy: out of memory\n");
            exit(1);
        }

        snprintf(paths[i], 64, "properties.desired.config.group%02zu.key%04zu",
                 i / 100, i);
    }

    return paths;
}


/*
 * Callers r1 and r100 read the same nodes: the reported properties of
 * one group but for a denied key; r100 has 99 more read patterns below
 * properties.reported and 19 more denies below properties.desired, which
 * match none of the twin's nodes but keep the walks going there.
 */

static char *
bench_policy_read_json(size_t *len)
{
    size_t       k;
    bench_buf_t  b;

    static const char *const  read[] = { "properties.reported.g03.**" };
    static const char *const  deny[] = { "properties.reported.g03.k0007" };

    memset(&b, 0, sizeof(b));

    bench_append(&b, "{\"callers\":{");

    for (k = 0; k < 2; k++) {
        bench_append(&b, "%s\"%s\":{\"rules\":[{\"operations\":[\"read\"],"
                     "\"devices\":[\"fleet-4?\"],", k ? "," : "",
                     k ? "r100" : "r1");
        bench_policy_list(&b, "read", read, 1,
                          k ? BENCH_POLICY_PATTERNS : 1,
                          "properties.reported.app%zu.*.name");
        bench_append(&b, ",");
        bench_policy_list(&b, "deny", deny, 1,
                          k ? BENCH_POLICY_PATTERNS / 5 : 1,
                          "properties.desired.zone%zu.keys");
        bench_append(&b, "}]}");
    }

    bench_append(&b, "}}");

    *len = b.len;

    return b.buf;
}


/*
 * A twin's nodes in document order, as the read filter asks for them:
 * 9 top-level members, tags (10 groups of 20 keys), desired (20 of 40)
 * and reported (20 of 45) with their groups and containers.
 */

static char **
bench_policy_nodes(size_t *n)
{
    char    **nodes;
    size_t    i, g, k, s;

    static const char *const  tops[] = {
        "deviceId", "etag", "deviceEtag", "status", "statusUpdateTime",
        "connectionState", "lastActivityTime", "cloudToDeviceMessageCount",
        "authenticationType"
    };
    static const char *const  sections[] = {
        "tags", "properties.desired", "properties.reported"
    };
    static const size_t  groups[] = { 10, 20, 20 };
    static const size_t  keys[] = { 20, 40, 45 };

    nodes = malloc(BENCH_POLICY_NODES * sizeof(char *));
    if (nodes == NULL) {
        fprintf(stderr, "bench_policy: out of memory\n");
        exit(1);
    }

    i = 0;

#define bench_policy_node(...)                                               \
    do {                                                                     \
        if (i == BENCH_POLICY_NODES                                          \
            || (nodes[i] = malloc(64)) == NULL)                              \
        {                                                                    \
            fprintf(stderr, "bench_policy: out of memory\n");                \
            exit(1);                                                         \
        }                                                                    \
        snprintf(nodes[i++], 64, __VA_ARGS__);                               \
    } while (0)

    for (k = 0; k < sizeof(tops) / sizeof(tops[0]); k++) {
        bench_policy_node("%s", tops[k]);
    }

    for (s = 0; s < 3; s++) {
        if (s == 1) {
            bench_policy_node("properties");
        }

        bench_policy_node("%s", sections[s]);

        for (g = 0; g < groups[s]; g++) {
            bench_policy_node("%s.g%02zu", sections[s], g);

            for (k = 0; k < keys[s]; k++) {
                bench_policy_node("%s.g%02zu.k%04zu", sections[s], g, k);
            }
        }
    }

    bench_policy_node("version");

#undef bench_policy_node

    *n = i;

    return nodes;
}


/* the two read cases must get the same verdicts, and not all alike */

static void
bench_policy_same_reads(const bench_policy_case_t *a,
    const bench_policy_case_t *b)
{
    int                                     v[2];
    size_t                                  i, k, count[3];
    const bench_policy_case_t              *bc[2];
    const ngx_http_iothub_twin_caller_t    *c;
    ngx_http_iothub_twin_policy_decision_t  d[2];

    bc[0] = a;
    bc[1] = b;

    for (k = 0; k < 2; k++) {
        c = ngx_http_iothub_twin_policy_caller(bc[k]->policy,
                                   (const unsigned char *) bc[k]->caller,
                                   strlen(bc[k]->caller));

        (void) ngx_http_iothub_twin_policy_target(&d[k], c,
                                   NGX_HTTP_IOTHUB_TWIN_OP_READ,
                                   (const unsigned char *) bc[k]->device,
                                   strlen(bc[k]->device), NULL, 0);
    }

    memset(count, 0, sizeof(count));

    for (i = 0; i < a->npaths; i++) {
        for (k = 0; k < 2; k++) {
            v[k] = ngx_http_iothub_twin_policy_read(&d[k],
                                   (const unsigned char *) bc[k]->paths[i],
                                   strlen(bc[k]->paths[i]));
        }

        if (v[0] != v[1] || v[0] < 0 || v[0] > 2) {
            fprintf(stderr, "bench_policy: %s: verdicts %d and %d\n",
                    a->paths[i], v[0], v[1]);
            exit(1);
        }

        count[v[0]]++;
    }

    printf("policy reads: %zu nodes, %zu NONE, %zu ALL, %zu SOME\n",
           a->npaths, count[0], count[1], count[2]);
}


/* the whole decision for one request: 0 if allowed */

static int
bench_policy_decide(const bench_policy_case_t *bc)
{
    int                                     rc;
    size_t                                  i;
    const ngx_http_iothub_twin_caller_t    *c;
    ngx_http_iothub_twin_policy_decision_t  d;

    c = ngx_http_iothub_twin_policy_caller(bc->policy,
                                   (const unsigned char *) bc->caller,
                                   strlen(bc->caller));

    rc = ngx_http_iothub_twin_policy_target(&d, c,
                                   bc->read ? NGX_HTTP_IOTHUB_TWIN_OP_READ
                                            : NGX_HTTP_IOTHUB_TWIN_OP_UPDATE,
                                   (const unsigned char *) bc->device,
                                   strlen(bc->device),
                                   (const unsigned char *) bc->module,
                                   bc->module ? strlen(bc->module) : 0);

    for (i = 0; bc->read && i < bc->npaths; i++) {
        bench_policy_sink += ngx_http_iothub_twin_policy_read(&d,
                                   (const unsigned char *) bc->paths[i],
                                   strlen(bc->paths[i]));
    }

    for (i = 0; !bc->read && i < bc->npaths; i++) {
        rc |= ngx_http_iothub_twin_policy_path(&d,
                                   (const unsigned char *) bc->paths[i],
                                   strlen(bc->paths[i]), 0);
    }

    bench_policy_sink += d.nrules;

    return rc;
}


/* ns per decision over at least the minimum time */

static double
bench_policy_measure(const bench_policy_case_t *bc)
{
    size_t    i, n, batch;
    double    start, elapsed;

    n = 0;
    batch = 1 + 10000 / bc->npaths;
    start = bench_now();

    do {
        for (i = 0; i < batch; i++) {
            bench_policy_sink += bench_policy_decide(bc);
        }

        n += batch;
        elapsed = bench_now() - start;

    } while (elapsed < BENCH_POLICY_MIN_TIME);

    return elapsed * 1e9 / n;
}
