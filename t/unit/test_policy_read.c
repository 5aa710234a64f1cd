
/*
 * Copyright (C) ngx_iothub_twin developers
 *
 * The policy's read scopes: the default scope, explicit "read" patterns,
 * top-level members, "**", deny, escapes, module and device twins, the
 * union over rules, report mode, refused and zeroed decisions, resumed
 * walks, and the load errors of bad read patterns.
 */


#include <stdlib.h>

#include "tap.h"
#include "ngx_http_iothub_twin_filter.h"
#include "policy_util.h"


#define NONE  NGX_HTTP_IOTHUB_TWIN_READ_NONE
#define ALL   NGX_HTTP_IOTHUB_TWIN_READ_ALL
#define SOME  NGX_HTTP_IOTHUB_TWIN_READ_SOME

#define OP_READ     NGX_HTTP_IOTHUB_TWIN_OP_READ
#define OP_UPDATE   NGX_HTTP_IOTHUB_TWIN_OP_UPDATE
#define OP_REPLACE  NGX_HTTP_IOTHUB_TWIN_OP_REPLACE

#define ONE_RULE(r)  "{\"callers\":{\"a\":{\"rules\":[" r "]}}}"




/* a node and the verdict it should get */

typedef struct {
    const char  *path;
    int          want;
} node_t;


static void test_default(void);
static void test_explicit(void);
static void test_whole(void);
static void test_top_level(void);
static void test_union(void);
static void test_escapes(void);
static void test_twins(void);
static void test_report(void);
static void test_refused(void);
static void test_walk(void);
static void test_deep(void);
static void test_errors(void);

static int target(decision_t *d, const caller_t *c, int op,
    const char *device, const char *module);
static int read_node(decision_t *d, const char *path);
static void is_nodes(const char *what, const policy_t *p, const char *name,
    int op, const char *device, const char *module, const node_t *nodes,
    size_t n);
static const char *verdict_name(int v);


int
main(void)
{
    test_default();
    test_explicit();
    test_whole();
    test_top_level();
    test_union();
    test_escapes();
    test_twins();
    test_report();
    test_refused();
    test_walk();
    test_deep();
    test_errors();

    return tap_done();
}



static int
target(decision_t *d, const caller_t *c, int op, const char *device,
    const char *module)
{
    return ngx_http_iothub_twin_policy_target(d, c, op,
                                   (const unsigned char *) device,
                                   strlen(device),
                                   (const unsigned char *) module,
                                   module ? strlen(module) : 0);
}


static int
read_node(decision_t *d, const char *path)
{
    return ngx_http_iothub_twin_policy_read(d, (const unsigned char *) path,
                                            strlen(path));
}


static const char *
verdict_name(int v)
{
    switch (v) {
    case NONE:
        return "NONE";
    case ALL:
        return "ALL";
    case SOME:
        return "SOME";
    default:
        return "?";
    }
}


/*
 * Each node's verdict, asked in the order given with one decision and
 * again each with a fresh one: both must be the one wanted.
 */

static void
is_nodes(const char *what, const policy_t *p, const char *name, int op,
    const char *device, const char *module, const node_t *nodes, size_t n)
{
    int              got, fresh_got;
    char             title[512];
    size_t           i;
    decision_t       d, fresh;
    const caller_t  *c;

    c = ngx_http_iothub_twin_policy_caller(p, (const unsigned char *) name,
                                           strlen(name));

    if (target(&d, c, op, device, module) != 0) {
        snprintf(title, sizeof(title), "%s: the target is allowed", what);
        tap_ok(0, "%s", title);
        printf("#   reason: %s\n", d.reason);
        return;
    }

    for (i = 0; i < n; i++) {
        got = read_node(&d, nodes[i].path);

        (void) target(&fresh, c, op, device, module);
        fresh_got = read_node(&fresh, nodes[i].path);

        snprintf(title, sizeof(title), "%s: %s \"%s\" %s", what,
                 ngx_http_iothub_twin_policy_op_name(op), nodes[i].path,
                 verdict_name(nodes[i].want));

        tap_ok(got == nodes[i].want && fresh_got == nodes[i].want, "%s",
               title);

        if (got != nodes[i].want || fresh_got != nodes[i].want) {
            printf("#   got %s, fresh %s\n", verdict_name(got),
                   verdict_name(fresh_got));
        }
    }
}


/* without "read": what the rule may write, and the four members */

static void
test_default(void)
{
    policy_t    *p;
    decision_t   d;

    static const node_t  nodes[] = {
        { "deviceId", ALL }, { "etag", ALL }, { "moduleId", ALL },
        { "properties", SOME },
        { "properties.desired", SOME },
        { "properties.desired.config", ALL },
        { "properties.desired.config.a.b", ALL },
        { "properties.desired.configx", NONE },
        { "properties.desired.other", NONE },
        { "properties.reported", NONE },
        { "properties.reported.config", NONE },
        { "status", NONE },
        { "tags", SOME },
        { "tags.location", SOME },
        { "tags.location.city", ALL },
        { "tags.location.city.name", ALL },
        { "tags.location.secret", NONE },
        { "tags.location.secret.x", NONE },
        { "tags.owner", ALL },
        { "tags.owner.first", ALL },
        { "tags.ownerx", NONE },
        { "version", ALL },
        { "capabilities", NONE }, { "connectionState", NONE },
        { "lastActivityTime", NONE }, { "authenticationType", NONE },
        { "statusReason", NONE }, { "x509Thumbprint", NONE },
        { "", SOME }
    };

    static const node_t  nothing[] = {
        { "deviceId", ALL }, { "moduleId", ALL }, { "etag", ALL },
        { "version", ALL }, { "tags", NONE }, { "tags.a", NONE },
        { "properties", NONE }, { "properties.desired", NONE },
        { "properties.desired.a", NONE }, { "properties.reported", NONE },
        { "status", NONE }, { "deviceIdx", NONE }, { "etags", NONE },
        { "", SOME }
    };

    p = parse("{\"callers\":{"
              "\"w\":{\"rules\":[{\"operations\":[\"read\",\"update\"],"
              "\"devices\":[\"d\"],"
              "\"tags\":[\"location.*\",\"owner\"],"
              "\"desired\":[\"config.**\"],"
              "\"deny\":[\"tags.location.secret\"]}]},"
              "\"ro\":{\"rules\":[{\"operations\":[\"read\"],"
              "\"devices\":[\"d\"]}]}"
              "}}");

    tap_ok(p != NULL, "%s", "the default scopes' policy loads");

    if (p == NULL) {
        return;
    }

    is_nodes("default", p, "w", OP_UPDATE, "d", NULL, nodes,
             sizeof(nodes) / sizeof(nodes[0]));
    is_nodes("default", p, "w", OP_READ, "d", NULL, nodes,
             sizeof(nodes) / sizeof(nodes[0]));

    /* a rule that writes nothing reads only what every client needs */

    is_nodes("default, nothing written", p, "ro", OP_READ, "d", NULL,
             nothing, sizeof(nothing) / sizeof(nothing[0]));

    (void) target(&d, ngx_http_iothub_twin_policy_caller(p,
                                           (const unsigned char *) "w", 1),
                  OP_UPDATE, "d", NULL);
    tap_ok(!ngx_http_iothub_twin_policy_read_all(&d), "%s",
           "default: not the whole twin");

    ngx_http_iothub_twin_policy_free(p);
}


static void
test_explicit(void)
{
    policy_t  *p;

    static const node_t  nodes[] = {
        { "status", ALL },
        { "connectionState", NONE },
        { "tags", SOME },
        { "tags.keys", NONE },
        { "tags.keys.a", NONE },
        { "tags.x", ALL },
        { "tags.x.y.z", ALL },
        { "properties", SOME },
        { "properties.desired", NONE },
        { "properties.desired.config", NONE },
        { "properties.reported", SOME },
        { "properties.reported.firmware", SOME },
        { "properties.reported.firmware.version", ALL },
        { "properties.reported.firmware.version.major", ALL },
        { "properties.reported.firmware.secret", NONE },
        { "properties.reported.firmware.secret.a", NONE },
        { "properties.reported.battery", NONE },
        { "deviceId", ALL }, { "etag", ALL }, { "version", ALL },
        { "", SOME }
    };

    static const node_t  empty[] = {
        { "deviceId", ALL }, { "etag", ALL }, { "version", ALL },
        { "moduleId", ALL }, { "tags", NONE }, { "tags.a", NONE },
        { "properties.desired.config", NONE }, { "status", NONE }
    };

    static const node_t  sections[] = {
        { "tags", ALL }, { "tags.a.b", ALL },
        { "properties", SOME },
        { "properties.desired", ALL }, { "properties.desired.x", ALL },
        { "properties.reported", ALL }, { "properties.reported.y", ALL },
        { "status", NONE }
    };

    static const node_t  props[] = {
        { "tags", NONE }, { "properties", ALL },
        { "properties.desired.x", ALL }, { "properties.reported.y", ALL },
        { "status", NONE }
    };

    p = parse("{\"callers\":{"
              "\"e\":{\"rules\":[{\"operations\":[\"read\",\"update\"],"
              "\"devices\":[\"d\"],"
              "\"desired\":[\"config.**\"],"
              "\"read\":[\"status\",\"properties.reported.firmware.*\","
                        "\"tags.**\"],"
              "\"deny\":[\"tags.keys\","
                        "\"properties.reported.firmware.secret\"]}]},"
              "\"none\":{\"rules\":[{\"operations\":[\"update\"],"
              "\"devices\":[\"d\"],\"tags\":[\"**\"],\"read\":[]}]},"
              "\"sections\":{\"rules\":[{\"operations\":[\"read\"],"
              "\"devices\":[\"d\"],"
              "\"read\":[\"tags\",\"properties.desired\","
                        "\"properties.reported.**\"]}]},"
              "\"props\":{\"rules\":[{\"operations\":[\"read\"],"
              "\"devices\":[\"d\"],\"read\":[\"properties.**\"]}]}"
              "}}");

    tap_ok(p != NULL, "%s", "the explicit scopes' policy loads");

    if (p == NULL) {
        return;
    }

    /* an explicit scope replaces the default: desired is not read */

    is_nodes("explicit", p, "e", OP_READ, "d", NULL, nodes,
             sizeof(nodes) / sizeof(nodes[0]));
    is_nodes("explicit, empty", p, "none", OP_UPDATE, "d", NULL, empty,
             sizeof(empty) / sizeof(empty[0]));
    is_nodes("explicit, sections", p, "sections", OP_READ, "d", NULL,
             sections, sizeof(sections) / sizeof(sections[0]));
    is_nodes("explicit, properties", p, "props", OP_READ, "d", NULL, props,
             sizeof(props) / sizeof(props[0]));

    ngx_http_iothub_twin_policy_free(p);
}


static void
test_whole(void)
{
    policy_t        *p;
    decision_t       d;
    const caller_t  *c;

    static const node_t  all[] = {
        { "", ALL }, { "status", ALL }, { "anything", ALL },
        { "tags", ALL }, { "tags.a.b.c", ALL }, { "properties", ALL },
        { "properties.reported.x", ALL }, { "deviceId", ALL }
    };

    static const node_t  denied[] = {
        { "", SOME }, { "status", ALL }, { "tags", SOME },
        { "tags.a", ALL }, { "tags.meta", SOME }, { "tags.meta.x", ALL },
        { "tags.meta.secret", NONE }, { "tags.meta.secret.y", NONE },
        { "properties", SOME }, { "properties.desired", ALL },
        { "properties.reported", NONE }, { "properties.reported.a", NONE },
        { "etag", ALL }
    };

    p = parse("{\"callers\":{"
              "\"all\":{\"rules\":[{\"operations\":[\"read\"],"
              "\"devices\":[\"d\"],\"read\":[\"**\"]}]},"
              "\"denied\":{\"rules\":[{\"operations\":[\"read\"],"
              "\"devices\":[\"d\"],\"read\":[\"**\"],"
              "\"deny\":[\"tags.meta.secret\","
                        "\"properties.reported.**\"]}]}"
              "}}");

    tap_ok(p != NULL, "%s", "the whole twin's policy loads");

    if (p == NULL) {
        return;
    }

    is_nodes("**", p, "all", OP_READ, "d", NULL, all,
             sizeof(all) / sizeof(all[0]));
    is_nodes("** and deny", p, "denied", OP_READ, "d", NULL, denied,
             sizeof(denied) / sizeof(denied[0]));

    c = ngx_http_iothub_twin_policy_caller(p, (const unsigned char *) "all",
                                           3);
    (void) target(&d, c, OP_READ, "d", NULL);
    tap_ok(ngx_http_iothub_twin_policy_read_all(&d), "%s",
           "** reads the whole twin");

    c = ngx_http_iothub_twin_policy_caller(p,
                                           (const unsigned char *) "denied",
                                           6);
    (void) target(&d, c, OP_READ, "d", NULL);
    tap_ok(!ngx_http_iothub_twin_policy_read_all(&d), "%s",
           "** with a deny is not the whole twin");

    ngx_http_iothub_twin_policy_free(p);
}


static void
test_top_level(void)
{
    policy_t  *p;

    static const node_t  nodes[] = {
        { "capabilities", ALL }, { "deviceScope", ALL },
        { "parentScopes", ALL }, { "modelId", ALL },
        { "authenticationType", ALL }, { "x509Thumbprint", ALL },
        { "connectionState", ALL }, { "lastActivityTime", ALL },
        { "status", NONE }, { "statusUpdateTime", NONE },
        { "capabilitiesx", NONE }, { "capabilit", NONE },
        { "tags", NONE }, { "properties", NONE },
        { "properties.reported", NONE }
    };

    p = parse(ONE_RULE("{\"operations\":[\"read\"],\"devices\":[\"d\"],"
                       "\"read\":[\"capabilities\",\"deviceScope\","
                       "\"parentScopes\",\"modelId\",\"authenticationType\","
                       "\"x509Thumbprint\",\"connectionState\","
                       "\"lastActivityTime.**\"]}"));

    tap_ok(p != NULL, "%s", "the top-level members' policy loads");

    if (p == NULL) {
        return;
    }

    is_nodes("top level", p, "a", OP_READ, "d", NULL, nodes,
             sizeof(nodes) / sizeof(nodes[0]));

    ngx_http_iothub_twin_policy_free(p);
}


/*
 * The rules that cover the target and allow the operation add up, their
 * denies with them; other rules count for nothing.
 */

static void
test_union(void)
{
    policy_t  *p;

    static const node_t  get[] = {
        { "status", ALL }, { "tags", SOME }, { "tags.a", ALL },
        { "tags.b", NONE }, { "modelId", NONE },
        { "properties.reported", SOME },
        { "properties.reported.x", ALL }, { "properties.reported.y", NONE }
    };

    static const node_t  patch[] = {
        { "status", NONE }, { "tags", SOME }, { "tags.a", NONE },
        { "tags.b", ALL }, { "modelId", ALL },
        { "properties.reported", NONE }, { "properties.reported.x", NONE }
    };

    static const node_t  put[] = {
        { "tags", ALL }, { "tags.a", ALL }, { "properties.desired", ALL },
        { "properties.reported", NONE }, { "status", NONE }
    };

    static const node_t  other[] = {
        { "status", ALL }, { "tags.a", ALL }, { "tags.b", ALL },
        { "properties.reported", SOME }, { "properties.reported.x", NONE },
        { "properties.reported.y", ALL }
    };

    p = parse(ONE_RULE(
              "{\"operations\":[\"read\"],\"devices\":[\"d\"],"
              "\"read\":[\"status\",\"tags.a\"]},"
              "{\"operations\":[\"read\"],\"devices\":[\"d\"],"
              "\"read\":[\"properties.reported.**\",\"tags.a.**\"],"
              "\"deny\":[\"properties.reported.y\"]},"
              "{\"operations\":[\"update\"],\"devices\":[\"d\"],"
              "\"tags\":[\"b\"],\"read\":[\"modelId\",\"tags.b\"],"
              "\"deny\":[\"tags.a\"]},"
              "{\"operations\":[\"replace\"],\"devices\":[\"d\"],"
              "\"tags\":[\"**\"],\"desired\":[\"**\"]},"
              "{\"operations\":[\"read\"],\"devices\":[\"e\"],"
              "\"read\":[\"properties.reported.**\"],"
              "\"deny\":[\"properties.reported.x\"]},"
              "{\"operations\":[\"read\"],\"devices\":[\"e\"],"
              "\"read\":[\"properties.reported.x\"]},"
              "{\"operations\":[\"read\"],\"devices\":[\"x\"],"
              "\"read\":[\"**\"],\"deny\":[\"properties.reported.x\"]}"));

    tap_ok(p != NULL, "%s", "the union's policy loads");

    if (p == NULL) {
        return;
    }

    is_nodes("union, GET", p, "a", OP_READ, "d", NULL, get,
             sizeof(get) / sizeof(get[0]));
    is_nodes("union, PATCH", p, "a", OP_UPDATE, "d", NULL, patch,
             sizeof(patch) / sizeof(patch[0]));
    is_nodes("union, PUT", p, "a", OP_REPLACE, "d", NULL, put,
             sizeof(put) / sizeof(put[0]));

    /*
     * on device e, one rule's deny wins over the other's read of the same
     * node; on device d (above), the deny of the rule of device x counts
     * for nothing
     */

    {
        static const node_t  e[] = {
            { "properties.reported", SOME },
            { "properties.reported.x", NONE },
            { "properties.reported.y", ALL }
        };

        is_nodes("union, deny of another rule", p, "a", OP_READ, "e", NULL,
                 e, sizeof(e) / sizeof(e[0]));
    }

    is_nodes("union, other device", p, "a", OP_READ, "x", NULL, other,
             sizeof(other) / sizeof(other[0]));

    ngx_http_iothub_twin_policy_free(p);
}


static void
test_escapes(void)
{
    policy_t  *p;

    static const node_t  nodes[] = {
        { "tags.*", ALL }, { "tags.b", SOME }, { "tags.b.x", NONE },
        { "tags.a*b", ALL }, { "tags.ab", SOME }, { "tags.ab.c", NONE },
        { "tags.**", SOME }, { "tags.**.x", ALL },
        { "tags.**.y", NONE }, { "tags.q", SOME }, { "tags.q.name", ALL },
        { "tags.q.other", NONE }, { "tags.a\\b", ALL }, { "tags.?", ALL },
        { "properties.reported.s", SOME },
        { "properties.reported.s.t", ALL }, { "tags.x", SOME },
        { "tags.x.name", ALL }, { "tags.x.y", SOME },
        { "tags.x.y.z", ALL }
    };

    p = parse(ONE_RULE("{\"operations\":[\"read\"],\"devices\":[\"d\"],"
                       "\"read\":[\"tags.\\\\*\",\"tags.a\\\\*b\","
                       "\"tags.\\\\*\\\\*.x\",\"tags.*.name\","
                       "\"tags.a\\\\\\\\b\",\"tags.\\\\?\","
                       "\"properties.reported.*.t\",\"tags.x.*.z\"]}"));

    tap_ok(p != NULL, "%s", "the escapes' policy loads");

    if (p == NULL) {
        return;
    }

    is_nodes("escapes and wildcards", p, "a", OP_READ, "d", NULL, nodes,
             sizeof(nodes) / sizeof(nodes[0]));

    ngx_http_iothub_twin_policy_free(p);
}


static void
test_twins(void)
{
    policy_t  *p;

    static const node_t  device[] = {
        { "status", ALL }, { "tags", NONE }, { "properties.reported", NONE }
    };

    static const node_t  module[] = {
        { "status", NONE }, { "tags", ALL },
        { "properties.reported", NONE }, { "moduleId", ALL }
    };

    static const node_t  system[] = {
        { "status", NONE }, { "tags", NONE },
        { "properties.reported", ALL }
    };

    p = parse(ONE_RULE("{\"operations\":[\"read\"],\"devices\":[\"d\"],"
                       "\"read\":[\"status\"]},"
                       "{\"operations\":[\"read\"],\"devices\":[\"d\"],"
                       "\"modules\":[\"*\"],\"read\":[\"tags\"]},"
                       "{\"operations\":[\"read\"],\"devices\":[\"d\"],"
                       "\"modules\":[\"$edge*\"],"
                       "\"read\":[\"properties.reported\"]}"));

    tap_ok(p != NULL, "%s", "the twins' policy loads");

    if (p == NULL) {
        return;
    }

    is_nodes("device twin", p, "a", OP_READ, "d", NULL, device,
             sizeof(device) / sizeof(device[0]));
    is_nodes("module twin", p, "a", OP_READ, "d", "m1", module,
             sizeof(module) / sizeof(module[0]));
    is_nodes("system module twin", p, "a", OP_READ, "d", "$edgeAgent",
             system, sizeof(system) / sizeof(system[0]));

    ngx_http_iothub_twin_policy_free(p);
}


/* the same rules in report mode: the same verdicts */

static void
test_report(void)
{
    int              same;
    size_t           i;
    policy_t        *p;
    decision_t       d[2];
    const caller_t  *c;

    static const char *const  paths[] = {
        "", "deviceId", "status", "tags", "tags.a", "tags.a.b", "tags.c",
        "properties", "properties.desired", "properties.desired.x",
        "properties.reported", "properties.reported.y", "modelId"
    };

    static const char *const  names[] = { "enforced", "reported" };

    p = parse("{\"callers\":{"
              "\"enforced\":{\"rules\":[{\"operations\":[\"read\"],"
              "\"devices\":[\"d\"],\"read\":[\"tags.**\",\"status\","
              "\"properties.reported.y\"],\"deny\":[\"tags.a.b\"]}]},"
              "\"reported\":{\"mode\":\"report\",\"rules\":["
              "{\"operations\":[\"read\"],"
              "\"devices\":[\"d\"],\"read\":[\"tags.**\",\"status\","
              "\"properties.reported.y\"],\"deny\":[\"tags.a.b\"]}]}"
              "}}");

    tap_ok(p != NULL, "%s", "the report mode's policy loads");

    if (p == NULL) {
        return;
    }

    for (i = 0; i < 2; i++) {
        c = ngx_http_iothub_twin_policy_caller(p,
                                       (const unsigned char *) names[i],
                                       strlen(names[i]));
        (void) target(&d[i], c, OP_READ, "d", NULL);
    }

    tap_ok(d[1].report && !d[0].report, "%s",
           "report mode: the decision says so");

    same = 1;

    for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        if (read_node(&d[0], paths[i]) != read_node(&d[1], paths[i])) {
            printf("#   %s differs\n", paths[i]);
            same = 0;
        }
    }

    tap_ok(same && read_node(&d[1], "tags.a.b") == NONE
           && read_node(&d[1], "properties.reported.x") == NONE, "%s",
           "report mode: the same verdicts, withholding included");

    ngx_http_iothub_twin_policy_free(p);
}


static void
test_refused(void)
{
    int              ok;
    size_t           i;
    policy_t        *p;
    decision_t       d;
    const caller_t  *c;

    static const char *const  paths[] = {
        "", "deviceId", "moduleId", "etag", "version", "status", "tags",
        "tags.a", "properties.reported.x"
    };

    p = parse(ONE_RULE("{\"operations\":[\"read\"],\"devices\":[\"d\"],"
                       "\"read\":[\"**\"]}"));

    tap_ok(p != NULL, "%s", "the refusals' policy loads");

    if (p == NULL) {
        return;
    }

    c = ngx_http_iothub_twin_policy_caller(p, (const unsigned char *) "a",
                                           1);

    memset(&d, 0, sizeof(d));
    ok = !ngx_http_iothub_twin_policy_read_all(&d);

    for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        ok &= (read_node(&d, paths[i]) == NONE);
    }

    tap_ok(ok, "%s", "a zeroed decision reads nothing");

    /* another device, then an operation the rule does not allow */

    ok = (target(&d, c, OP_READ, "e", NULL) == -1)
         && !ngx_http_iothub_twin_policy_read_all(&d);

    for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        ok &= (read_node(&d, paths[i]) == NONE);
    }

    ok &= (target(&d, c, OP_UPDATE, "d", NULL) == -1)
          && !ngx_http_iothub_twin_policy_read_all(&d);

    for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        ok &= (read_node(&d, paths[i]) == NONE);
    }

    tap_ok(ok, "%s", "a refused target reads nothing");

    ok = (ngx_http_iothub_twin_policy_read(NULL,
                                   (const unsigned char *) "etag", 4)
          == NONE)
         && !ngx_http_iothub_twin_policy_read_all(NULL);

    tap_ok(ok, "%s", "no decision reads nothing");

    ngx_http_iothub_twin_policy_free(p);
}


/*
 * A twin's nodes in document order, the patch's paths interleaved as a
 * PATCH has them: the resumed read walk gives what a fresh one gives, and
 * the write verdicts are those of a fresh decision too.
 */

static void
test_walk(void)
{
    int              ok, got, want, wgot, wwant;
    char             path[600];
    size_t           i, k;
    policy_t        *p;
    decision_t       d, fresh;
    const caller_t  *c;

    static const char *const  nodes[] = {
        "deviceId", "etag", "status", "tags", "tags.a", "tags.a.b",
        "tags.a.b.c", "tags.a.b.d", "tags.a.c", "tags.ab", "tags.b",
        "tags.b.x", "tags.b.x.y", "tags.b.z", "tags.c", "properties",
        "properties.desired", "properties.desired.a",
        "properties.desired.a.b", "properties.desired.b",
        "properties.reported", "properties.reported.a",
        "properties.reported.a.secret", "properties.reported.a.secret.k",
        "properties.reported.a.ok", "properties.reported.b", "version",
        "tags.a.b", "tags", "tags.b.x", "properties.reported.a"
    };

    static const char *const  writes[] = {
        "tags.a.b.c", "tags.b.x", "properties.desired.a.b",
        "properties.desired.q", "tags.c"
    };

    p = parse(ONE_RULE("{\"operations\":[\"read\",\"update\"],"
                       "\"devices\":[\"d\"],"
                       "\"tags\":[\"a.b.*\",\"b.**\"],"
                       "\"desired\":[\"a.**\"],"
                       "\"read\":[\"tags.a.b.*\",\"tags.b.**\","
                       "\"properties.desired.a.**\",\"status\","
                       "\"properties.reported.a.**\"],"
                       "\"deny\":[\"tags.b.x.y\","
                       "\"properties.reported.a.secret\"]}"));

    tap_ok(p != NULL, "%s", "the walk's policy loads");

    if (p == NULL) {
        return;
    }

    c = ngx_http_iothub_twin_policy_caller(p, (const unsigned char *) "a",
                                           1);

    (void) target(&d, c, OP_UPDATE, "d", NULL);

    ok = 1;

    for (i = 0; i < sizeof(nodes) / sizeof(nodes[0]); i++) {
        got = read_node(&d, nodes[i]);

        (void) target(&fresh, c, OP_UPDATE, "d", NULL);
        want = read_node(&fresh, nodes[i]);

        if (got != want) {
            printf("#   %s: %s resumed, %s fresh\n", nodes[i],
                   verdict_name(got), verdict_name(want));
            ok = 0;
        }

        k = i % (sizeof(writes) / sizeof(writes[0]));

        wgot = ngx_http_iothub_twin_policy_path(&d,
                                   (const unsigned char *) writes[k],
                                   strlen(writes[k]), 0);

        (void) target(&fresh, c, OP_UPDATE, "d", NULL);
        wwant = ngx_http_iothub_twin_policy_path(&fresh,
                                   (const unsigned char *) writes[k],
                                   strlen(writes[k]), 0);

        if (wgot != wwant) {
            printf("#   write %s: %d resumed, %d fresh\n", writes[k], wgot,
                   wwant);
            ok = 0;
        }
    }

    tap_ok(ok, "%s", "reads and writes interleaved on one decision give"
           " the verdicts of fresh ones");

    tap_ok(read_node(&fresh, "tags.b.x") == SOME
           && read_node(&fresh, "tags.b.x.y") == NONE
           && read_node(&fresh, "tags.a.b.q") == ALL
           && read_node(&fresh, "properties.reported.a") == SOME, "%s",
           "the walk's policy gives SOME, NONE and ALL");

    /* paths longer than the bytes a walk keeps */

    strcpy(path, "tags.b");

    for (i = 0; strlen(path) < 560; i++) {
        strcat(path, ".k123456789");
    }

    ok = (read_node(&d, path) == ALL);
    strcat(path, ".z");
    ok &= (read_node(&d, path) == ALL);

    memcpy(path, "tags.a", 6);
    ok &= (read_node(&d, path) == NONE);
    ok &= (read_node(&d, "tags.b.x.y") == NONE);

    tap_ok(ok, "%s", "paths longer than a walk keeps");

    ngx_http_iothub_twin_policy_free(p);
}


/* keys past the walk's depth: the verdict of the subtree, or NONE */

static void
test_deep(void)
{
    int        ok;
    char       json[4096], path[4096];
    size_t     i, n;
    policy_t  *p;
    decision_t d;

    n = snprintf(json, sizeof(json),
                 "{\"callers\":{\"a\":{\"rules\":[{\"operations\":"
                 "[\"read\"],\"devices\":[\"d\"],\"read\":[\"tags.deep.**\","
                 "\"tags.x");

    for (i = 0; i < 80; i++) {
        n += snprintf(json + n, sizeof(json) - n, ".k");
    }

    snprintf(json + n, sizeof(json) - n, "\"],\"deny\":[\"tags.deep.no\"]}"
             "]}}}");

    p = parse(json);

    tap_ok(p != NULL, "%s", "the deep policy loads");

    if (p == NULL) {
        return;
    }

    (void) target(&d, ngx_http_iothub_twin_policy_caller(p,
                                           (const unsigned char *) "a", 1),
                  OP_READ, "d", NULL);

    ok = 1;

    strcpy(path, "tags.deep");
    for (i = 0; i < 70; i++) {
        strcat(path, ".k");
    }

    ok &= (read_node(&d, path) == ALL);

    strcpy(path, "tags.deep.no");
    for (i = 0; i < 70; i++) {
        strcat(path, ".k");
    }

    ok &= (read_node(&d, path) == NONE);

    /* tags.x.k (64 keys): walked; below the kept depth, not walked */

    strcpy(path, "tags.x");
    for (i = 0; i < 64; i++) {
        strcat(path, ".k");
    }

    ok &= (read_node(&d, path) == SOME);

    for (i = 0; i < 10; i++) {
        strcat(path, ".k");
    }

    ok &= (read_node(&d, path) == NONE);

    tap_ok(ok, "%s", "deep paths: ALL and denied subtrees hold, a"
           " pattern's ancestors past the kept depth are NONE");

    ngx_http_iothub_twin_policy_free(p);
}


static void
test_errors(void)
{
    size_t  i;

    static const struct {
        const char  *read;
        const char  *err;
    } cases[] = {
        { "\"status.x\"",
          "\"status.x\": only tags and properties are read below the top"
          " level; name the member as a whole" },
        { "\"capabilities.iotEdge\"",
          "\"capabilities.iotEdge\": only tags and properties are read below"
          " the top level; name the member as a whole" },
        { "\"*\"",
          "\"*\": a top-level member is named, not matched with \"*\";"
          " \"**\" alone reads the whole twin" },
        { "\"*.x\"",
          "\"*.x\": a top-level member is named, not matched with \"*\";"
          " \"**\" alone reads the whole twin" },
        { "\"properties.foo\"",
          "\"properties.foo\": below \"properties\" only \"desired\" and"
          " \"reported\" may be named" },
        { "\"properties.*.x\"",
          "\"properties.*.x\": below \"properties\" only \"desired\" and"
          " \"reported\" may be named" },
        { "\"tags.a\\\\x\"",
          "\"tags.a\\x5cx\": a backslash may only come before '*', '?' or a"
          " backslash" },
        { "\"\"", "an empty path pattern" },
        { "\"tags..a\"", "\"tags..a\": an empty segment" },
        { "\"tags.a b\"", "\"tags.a b\": ' ' is not allowed in a key" },
        { "\"tags.$x\"", "\"tags.$x\": '$' is not allowed in a key" },
        { "\"**.a\"", "\"**.a\": \"**\" is allowed only as the last segment" }
    };

    char  json[512], want[512];

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(json, sizeof(json),
                 ONE_RULE("{\"operations\":[\"read\"],\"devices\":[\"d\"],"
                          "\"read\":[\"status\",%s]}"), cases[i].read);
        snprintf(want, sizeof(want),
                 "t.json: caller \"a\": rules[0].read[1]: %s", cases[i].err);
        is_error(json, want);
    }

    {
        char       err[512];
        policy_t  *p;

        p = ngx_http_iothub_twin_policy_load("t/data/policy/bad-read.json",
                                             err, sizeof(err));

        tap_ok(p == NULL, "%s", "bad-read.json is refused");
        tap_is_str(err, strlen(err),
                   "t/data/policy/bad-read.json: caller \"reader\":"
                   " rules[1].read[2]: \"connectionState.since\": only tags"
                   " and properties are read below the top level; name the"
                   " member as a whole",
                   "bad-read.json: the file, caller, rule, field and"
                   " pattern named");

        ngx_http_iothub_twin_policy_free(p);
    }

    is_error(ONE_RULE("{\"operations\":[\"read\"],\"devices\":[\"d\"],"
                      "\"read\":\"status\"}"),
             "t.json: caller \"a\": rules[0].read: must be an array of 0 to"
             " 1000 strings");
    is_error(ONE_RULE("{\"operations\":[\"read\"],\"devices\":[\"d\"],"
                      "\"read\":[\"status\",1]}"),
             "t.json: caller \"a\": rules[0].read[1]: must be a string");
    is_error(ONE_RULE("{\"operations\":[\"read\"],\"devices\":[\"d\"]},"
                      "{\"operations\":[\"read\"],\"devices\":[\"d\"],"
                      "\"reads\":[\"status\"]}"),
             "t.json: caller \"a\": rules[1]: unknown field \"reads\"");
}
