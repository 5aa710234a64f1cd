
/*
 * Copyright (C) ngx_iothub_twin developers
 *
 * Rules restricted to hubs ("hubs"): load errors, decisions on a rule's
 * hub and on others (allows, denies, read scopes, replace's whole-section
 * check), host names compared without case, no hub at all, the refusals
 * naming the hub, callers without such rules unchanged, and
 * ngx_http_iothub_twin_policy_check_hubs() for nginx -t.
 */


#include <stdlib.h>
#include <strings.h>

#include "tap.h"
#include "ngx_http_iothub_twin_filter.h"
#include "policy_util.h"


#define NONE  NGX_HTTP_IOTHUB_TWIN_READ_NONE
#define ALL   NGX_HTTP_IOTHUB_TWIN_READ_ALL
#define SOME  NGX_HTTP_IOTHUB_TWIN_READ_SOME

#define OP_READ     NGX_HTTP_IOTHUB_TWIN_OP_READ
#define OP_UPDATE   NGX_HTTP_IOTHUB_TWIN_OP_UPDATE
#define OP_REPLACE  NGX_HTTP_IOTHUB_TWIN_OP_REPLACE

#define EU    "eu-fleet.azure-devices.net"
#define US    "us-fleet.azure-devices.net"
#define ASIA  "asia.azure-devices.net"
#define XX    "xx-fleet.azure-devices.net"

/* a caller "a" with one rule restricted to hubs H */
#define HUBS(h)                                                              \
    "{\"callers\":{\"a\":{\"rules\":[{\"operations\":[\"read\"],"            \
    "\"devices\":[\"d\"],\"hubs\":" h "}]}}}"




static void test_load_errors(void);
static void test_load_good(void);
static void test_target(void);
static void test_paths(void);
static void test_deny(void);
static void test_read(void);
static void test_replace(void);
static void test_unrestricted(void);
static void test_report(void);
static void test_odd_hubs(void);
static void test_check_hubs(void);

static int target(decision_t *d, const caller_t *c, int op, const char *hub,
    const char *device, const char *module);
static int path(decision_t *d, const char *path);
static int read_node(decision_t *d, const char *path);
static void is_target(const caller_t *c, int op, const char *hub,
    const char *device, const char *module, const char *reason);
static void is_path(const caller_t *c, int op, const char *hub,
    const char *device, const char *p, const char *reason);
static void is_read(const caller_t *c, int op, const char *hub,
    const char *device, const char *node, int want);
static int known(void *data, const unsigned char *name, size_t len);


static const char  hub_policy[] =
    "{\"callers\":{"

    "\"multi\":{\"rules\":["

      /* 0: dev1 on EU, with its own read scope */
      "{\"operations\":[\"read\",\"update\"],\"devices\":[\"dev1\"],"
      "\"hubs\":[\"" EU "\"],"
      "\"tags\":[\"eu.**\"],\"read\":[\"tags.eu.**\",\"status\"]},"

      /* 1: dev1 on two other hubs, spelt in another case */
      "{\"operations\":[\"read\",\"update\"],\"devices\":[\"dev1\"],"
      "\"hubs\":[\"US-Fleet.Azure-Devices.net\",\"" ASIA "\"],"
      "\"tags\":[\"us.**\"]},"

      /* 2: dev1 everywhere */
      "{\"operations\":[\"read\",\"update\"],\"devices\":[\"dev1\"],"
      "\"tags\":[\"common\"]},"

      /* 3: dev2 only on EU */
      "{\"operations\":[\"update\"],\"devices\":[\"dev2\"],"
      "\"modules\":[\"\",\"m\"],\"hubs\":[\"" EU "\"],\"tags\":[\"**\"]},"

      /* 4, 5: dev3 everywhere, a deny on EU only */
      "{\"operations\":[\"update\"],\"devices\":[\"dev3\"],"
      "\"tags\":[\"**\"]},"
      "{\"operations\":[\"update\"],\"devices\":[\"dev3\"],"
      "\"hubs\":[\"" EU "\"],\"deny\":[\"tags.secret\"]},"

      /* 6, 7: replace rep everywhere, a deny on EU only */
      "{\"operations\":[\"replace\"],\"devices\":[\"rep\"],"
      "\"tags\":[\"**\"],\"desired\":[\"**\"]},"
      "{\"operations\":[\"replace\"],\"devices\":[\"rep\"],"
      "\"hubs\":[\"" EU "\"],"
      "\"deny\":[\"properties.desired.x\"]},"

      /* 8, 9: replace rep2: tags everywhere, desired on US only */
      "{\"operations\":[\"replace\"],\"devices\":[\"rep2\"],"
      "\"tags\":[\"**\"]},"
      "{\"operations\":[\"replace\"],\"devices\":[\"rep2\"],"
      "\"hubs\":[\"" US "\"],\"desired\":[\"**\"]},"

      /* 10: dev4 read on EU only */
      "{\"operations\":[\"read\"],\"devices\":[\"dev4\"],"
      "\"hubs\":[\"" EU "\"]}"
    "]},"

    "\"plain\":{\"rules\":["
      "{\"operations\":[\"update\"],\"devices\":[\"dev1\"],"
      "\"tags\":[\"**\"],\"deny\":[\"tags.secret\"]},"
      "{\"operations\":[\"read\"],\"devices\":[\"ro\"]}"
    "]},"

    "\"watcher\":{\"mode\":\"report\",\"rules\":["
      "{\"operations\":[\"update\"],\"devices\":[\"dev1\"],"
      "\"hubs\":[\"" EU "\"],\"tags\":[\"**\"]}"
    "]}"

    "}}";


static policy_t  *hp;


int
main(void)
{
    test_load_errors();
    test_load_good();

    hp = parse(hub_policy);
    tap_ok(hp != NULL, "%s", "the hub policy loads");

    if (hp == NULL) {
        return tap_done();
    }

    test_target();
    test_paths();
    test_deny();
    test_read();
    test_replace();
    test_unrestricted();
    test_report();
    test_odd_hubs();
    test_check_hubs();

    ngx_http_iothub_twin_policy_free(hp);

    return tap_done();
}




static int
target(decision_t *d, const caller_t *c, int op, const char *hub,
    const char *device, const char *module)
{
    return ngx_http_iothub_twin_policy_target_hub(d, c, op,
                                   (const unsigned char *) hub,
                                   hub ? strlen(hub) : 0,
                                   (const unsigned char *) device,
                                   strlen(device),
                                   (const unsigned char *) module,
                                   module ? strlen(module) : 0);
}


static int
path(decision_t *d, const char *p)
{
    return ngx_http_iothub_twin_policy_path(d, (const unsigned char *) p,
                                            strlen(p), 0);
}


static int
read_node(decision_t *d, const char *p)
{
    return ngx_http_iothub_twin_policy_read(d, (const unsigned char *) p,
                                            strlen(p));
}


/* reason NULL: allowed */

static void
is_target(const caller_t *c, int op, const char *hub, const char *device,
    const char *module, const char *reason)
{
    int         rc;
    char        name[512];
    decision_t  d;

    rc = target(&d, c, op, hub, device, module);

    snprintf(name, sizeof(name), "%s %s%s%s on %s: %s",
             ngx_http_iothub_twin_policy_op_name(op), device,
             module ? "/" : "", module ? module : "",
             hub ? hub : "no hub", reason ? reason : "allowed");

    target_verdict(rc, &d, name, reason);
}


/* a written path after an allowed target; reason NULL: allowed */

static void
is_path(const caller_t *c, int op, const char *hub, const char *device,
    const char *p, const char *reason)
{
    int         rc;
    char        name[512];
    decision_t  d;

    snprintf(name, sizeof(name), "%s %s on %s: %s %s",
             ngx_http_iothub_twin_policy_op_name(op), device,
             hub ? hub : "no hub", p, reason ? reason : "allowed");

    if (target(&d, c, op, hub, device, NULL) != 0) {
        tap_ok(0, "%s", name);
        printf("#   target refused: %s\n", d.reason);
        return;
    }

    rc = path(&d, p);

    if (reason == NULL) {
        tap_ok(rc == 0 && d.allowed, "%s", name);

        if (rc != 0) {
            printf("#   reason: %s\n", d.reason);
        }

        return;
    }

    if (rc != -1 || d.allowed) {
        tap_ok(0, "%s", name);
        return;
    }

    tap_is_str(d.reason, strlen(d.reason), reason, name);
}


static void
is_read(const caller_t *c, int op, const char *hub, const char *device,
    const char *node, int want)
{
    int         got;
    char        name[512];
    decision_t  d;

    static const char *const  verdicts[] = { "NONE", "ALL", "SOME" };

    snprintf(name, sizeof(name), "%s %s on %s: read \"%s\" %s",
             ngx_http_iothub_twin_policy_op_name(op), device,
             hub ? hub : "no hub", node, verdicts[want]);

    if (target(&d, c, op, hub, device, NULL) != 0) {
        tap_ok(0, "%s", name);
        printf("#   target refused: %s\n", d.reason);
        return;
    }

    got = read_node(&d, node);

    tap_ok(got == want, "%s", name);

    if (got != want) {
        printf("#   got %d\n", got);
    }
}


static void
test_load_errors(void)
{
    size_t  i;
    char    json[1024], want[512], hub[300];

    static const struct {
        const char  *json;
        const char  *err;
    } cases[] = {
        { HUBS("\"" EU "\""),
          "t.json: caller \"a\": rules[0].hubs: must be an array of 1 to"
          " 1000 strings" },
        { HUBS("{}"),
          "t.json: caller \"a\": rules[0].hubs: must be an array of 1 to"
          " 1000 strings" },
        { HUBS("[]"),
          "t.json: caller \"a\": rules[0].hubs: must be an array of 1 to"
          " 1000 strings" },
        { HUBS("[\"" EU "\",1]"),
          "t.json: caller \"a\": rules[0].hubs[1]: must be a string" },
        { HUBS("[null]"),
          "t.json: caller \"a\": rules[0].hubs[0]: must be a string" },
        { HUBS("[[\"" EU "\"]]"),
          "t.json: caller \"a\": rules[0].hubs[0]: must be a string" },
        { HUBS("[\"\"]"),
          "t.json: caller \"a\": rules[0].hubs[0]: \"\": a hub's host name"
          " is 1 to 253 bytes" },
        { HUBS("[\"" EU "\",\"eu fleet\"]"),
          "t.json: caller \"a\": rules[0].hubs[1]: \"eu fleet\": ' ' is not"
          " allowed in a host name (letters, digits, '-' and '.')" },
        { HUBS("[\"eu_fleet.azure-devices.net\"]"),
          "t.json: caller \"a\": rules[0].hubs[0]:"
          " \"eu_fleet.azure-devices.net\": '_' is not allowed in a host"
          " name (letters, digits, '-' and '.')" },
        { HUBS("[\"https://" EU "\"]"),
          "t.json: caller \"a\": rules[0].hubs[0]: \"https://" EU "\":"
          " ':' is not allowed in a host name (letters, digits, '-' and"
          " '.')" },
        { HUBS("[\"" EU ":443\"]"),
          "t.json: caller \"a\": rules[0].hubs[0]: \"" EU ":443\": ':' is"
          " not allowed in a host name (letters, digits, '-' and '.')" },
        { HUBS("[\"*.azure-devices.net\"]"),
          "t.json: caller \"a\": rules[0].hubs[0]: \"*.azure-devices.net\":"
          " '*' is not allowed in a host name (letters, digits, '-' and"
          " '.')" },
        { HUBS("[\"caf\\u00e9.net\"]"),
          "t.json: caller \"a\": rules[0].hubs[0]: \"caf\\xc3\\xa9.net\":"
          " '\\xc3' is not allowed in a host name (letters, digits, '-'"
          " and '.')" },
        { HUBS("[\"a\\u0001b\"]"),
          "t.json: caller \"a\": rules[0].hubs[0]: \"a\\x01b\": '\\x01' is"
          " not allowed in a host name (letters, digits, '-' and '.')" },
        { HUBS("[\"a\\\"b\"]"),
          "t.json: caller \"a\": rules[0].hubs[0]: \"a\\x22b\": '\"' is"
          " not allowed in a host name (letters, digits, '-' and '.')" },
        { HUBS("[\"" EU "\",\"" US "\",\"" EU "\"]"),
          "t.json: caller \"a\": rules[0].hubs[2]: \"" EU "\" is listed"
          " twice" },
        { HUBS("[\"" EU "\",\"EU-Fleet.Azure-Devices.NET\"]"),
          "t.json: caller \"a\": rules[0].hubs[1]:"
          " \"EU-Fleet.Azure-Devices.NET\" is listed twice" },

        /* the field is checked where it is, in any rule of any caller */
        { "{\"callers\":{\"b\":{\"rules\":[{\"operations\":[\"read\"],"
          "\"devices\":[\"d\"]}]},\"a\":{\"rules\":[{\"operations\":"
          "[\"read\"],\"devices\":[\"d\"],\"hubs\":[\"" EU "\"]},"
          "{\"operations\":[\"read\"],\"devices\":[\"e\"],"
          "\"hubs\":[\"" US "\",\"x/y\"]}]}}}",
          "t.json: caller \"a\": rules[1].hubs[1]: \"x/y\": '/' is not"
          " allowed in a host name (letters, digits, '-' and '.')" },
        { "{\"callers\":{\"a\":{\"rules\":[{\"operations\":[\"read\"],"
          "\"devices\":[\"d\"],\"hub\":[\"" EU "\"]}]}}}",
          "t.json: caller \"a\": rules[0]: unknown field \"hub\"" },
    };

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        is_error(cases[i].json, cases[i].err);
    }

    /* 254 bytes: too long, shown cut short */

    memset(hub, 'a', 254);
    hub[254] = '\0';
    snprintf(json, sizeof(json), HUBS("[\"%s\"]"), hub);
    snprintf(want, sizeof(want), "t.json: caller \"a\": rules[0].hubs[0]:"
             " \"%.76s...\": a hub's host name is 1 to 253 bytes", hub);
    is_error(json, want);

    /* 253 bytes of the alphabet load */

    for (i = 0; i < 253; i++) {
        hub[i] = "aZ09-."[i % 6];
    }

    hub[253] = '\0';
    snprintf(json, sizeof(json), HUBS("[\"%s\"]"), hub);

    {
        policy_t  *p;

        p = parse(json);
        tap_ok(p != NULL, "%s", "a hub of 253 letters, digits, '-' and '.'"
               " loads");
        ngx_http_iothub_twin_policy_free(p);
    }
}


static void
test_load_good(void)
{
    char        err[512];
    policy_t   *p;
    decision_t  d;

    /* the same host names in different rules, and many hubs in one */

    p = parse("{\"callers\":{\"a\":{\"rules\":["
              "{\"operations\":[\"read\"],\"devices\":[\"d\"],"
              "\"hubs\":[\"h1\",\"h2\",\"h3\",\"h4\",\"h5\",\"h6\",\"h7\","
                        "\"h8\",\"h9\",\"h10\",\"h11\",\"h12\"]},"
              "{\"operations\":[\"update\"],\"devices\":[\"d\"],"
              "\"hubs\":[\"H12\"],\"tags\":[\"x\"]}"
              "]}}}");
    tap_ok(p != NULL, "%s", "the same hub in two rules, 12 in one");

    if (p != NULL) {
        tap_ok(ngx_http_iothub_twin_policy_target_hub(&d, caller(p, "a"),
                                   OP_UPDATE, (const unsigned char *) "h12",
                                   3, (const unsigned char *) "d", 1, NULL,
                                   0)
               == 0 && d.nrules == 1, "%s", "h12: the update rule");
        tap_ok(ngx_http_iothub_twin_policy_target_hub(&d, caller(p, "a"),
                                   OP_READ, (const unsigned char *) "H7",
                                   2, (const unsigned char *) "d", 1, NULL,
                                   0)
               == 0 && d.nrules == 1, "%s", "H7: the read rule");
        tap_ok(ngx_http_iothub_twin_policy_target_hub(&d, caller(p, "a"),
                                   OP_UPDATE, (const unsigned char *) "h1",
                                   2, (const unsigned char *) "d", 1, NULL,
                                   0)
               == -1, "%s", "h1: no update");
        ngx_http_iothub_twin_policy_free(p);
    }

    /* the file name given to load() is the one messages name */

    p = ngx_http_iothub_twin_policy_parse("/etc/nginx/callers.json",
                                          HUBS("[\"a_b\"]"),
                                          strlen(HUBS("[\"a_b\"]")), err,
                                          sizeof(err));
    tap_ok(p == NULL, "%s", "a bad hub refuses the file");
    tap_is_str(err, strlen(err),
               "/etc/nginx/callers.json: caller \"a\": rules[0].hubs[0]:"
               " \"a_b\": '_' is not allowed in a host name (letters,"
               " digits, '-' and '.')", "the message names the file");
}


static void
test_target(void)
{
    decision_t       d;
    const caller_t  *m;

    m = caller(hp, "multi");

    /* dev2: only on EU, without case */

    is_target(m, OP_UPDATE, EU, "dev2", NULL, NULL);
    is_target(m, OP_UPDATE, "EU-FLEET.Azure-Devices.NET", "dev2", NULL,
              NULL);
    is_target(m, OP_UPDATE, EU, "dev2", "m", NULL);
    is_target(m, OP_UPDATE, US, "dev2", NULL,
              "operation update is not allowed on device dev2 on hub " US);
    is_target(m, OP_UPDATE, US, "dev2", "m",
              "operation update is not allowed on module m of device dev2"
              " on hub " US);
    is_target(m, OP_UPDATE, "eu-fleet.azure-devices.ne", "dev2", NULL,
              "operation update is not allowed on device dev2 on hub"
              " eu-fleet.azure-devices.ne");
    is_target(m, OP_UPDATE, "eu-fleet.azure-devices.net.", "dev2", NULL,
              "operation update is not allowed on device dev2 on hub"
              " eu-fleet.azure-devices.net.");
    is_target(m, OP_UPDATE, NULL, "dev2", NULL,
              "operation update is not allowed on device dev2 without a"
              " hub");

    /* the old entry point: no hub */

    tap_ok(ngx_http_iothub_twin_policy_target(&d, m, OP_UPDATE,
                                   (const unsigned char *) "dev2", 4, NULL, 0)
           == -1
           && strcmp(d.reason, "operation update is not allowed on device"
                     " dev2 without a hub") == 0,
           "%s", "ngx_http_iothub_twin_policy_target(): rules with hubs"
           " never apply");
    tap_ok(ngx_http_iothub_twin_policy_target(&d, m, OP_UPDATE,
                                   (const unsigned char *) "dev1", 4, NULL, 0)
           == 0 && d.nrules == 1, "%s",
           "ngx_http_iothub_twin_policy_target(): rules without hubs"
           " apply");

    /* the rules counted are those of the hub, and those of every hub */

    tap_ok(target(&d, m, OP_UPDATE, EU, "dev1", NULL) == 0 && d.nrules == 2,
           "%s", "dev1 on EU: 2 rules");
    tap_ok(target(&d, m, OP_UPDATE, US, "dev1", NULL) == 0 && d.nrules == 2,
           "%s", "dev1 on US: 2 rules");
    tap_ok(target(&d, m, OP_UPDATE, ASIA, "dev1", NULL) == 0
           && d.nrules == 2, "%s", "dev1 on ASIA: 2 rules");
    tap_ok(target(&d, m, OP_UPDATE, XX, "dev1", NULL) == 0 && d.nrules == 1,
           "%s", "dev1 on another hub: 1 rule");
    tap_ok(target(&d, m, OP_UPDATE, NULL, "dev1", NULL) == 0
           && d.nrules == 1, "%s", "dev1 without a hub: 1 rule");

    /* dev4: read on EU; other refusals keep their words */

    is_target(m, OP_READ, EU, "dev4", NULL, NULL);
    is_target(m, OP_UPDATE, EU, "dev4", NULL,
              "operation update is not allowed on device dev4");
    is_target(m, OP_READ, US, "dev4", NULL,
              "operation read is not allowed on device dev4 on hub " US);
    is_target(m, OP_READ, EU, "dev5", NULL,
              "device dev5 is not covered by any rule");
    is_target(m, OP_READ, US, "dev5", NULL,
              "device dev5 is not covered by any rule");
    is_target(m, OP_READ, EU, "dev4", "m",
              "module m of device dev4 is not covered by any rule");
    is_target(NULL, OP_READ, EU, "dev4", NULL,
              "the caller is not in the policy");
    is_target(m, 7, EU, "dev4", NULL, "operation 7 is unknown");

    /* a path after a target refused for its hub */

    tap_ok(target(&d, m, OP_UPDATE, US, "dev2", NULL) == -1
           && path(&d, "tags.a") == -1 && d.nrefused == 2
           && strstr(d.reason, "on hub " US) != NULL
           && read_node(&d, "tags") == NONE, "%s",
           "after a target refused for its hub, paths and reads are"
           " refused");
}


static void
test_paths(void)
{
    const caller_t  *m;

    m = caller(hp, "multi");

    is_path(m, OP_UPDATE, EU, "dev1", "tags.eu.x", NULL);
    is_path(m, OP_UPDATE, EU, "dev1", "tags.common", NULL);
    is_path(m, OP_UPDATE, EU, "dev1", "tags.us.x",
            "tags.us.x: not writable by caller multi");

    is_path(m, OP_UPDATE, US, "dev1", "tags.us.x", NULL);
    is_path(m, OP_UPDATE, "us-fleet.AZURE-devices.net", "dev1", "tags.us.x",
            NULL);
    is_path(m, OP_UPDATE, ASIA, "dev1", "tags.us.x", NULL);
    is_path(m, OP_UPDATE, US, "dev1", "tags.common", NULL);
    is_path(m, OP_UPDATE, US, "dev1", "tags.eu.x",
            "tags.eu.x: not writable by caller multi");

    is_path(m, OP_UPDATE, XX, "dev1", "tags.common", NULL);
    is_path(m, OP_UPDATE, XX, "dev1", "tags.eu.x",
            "tags.eu.x: not writable by caller multi");
    is_path(m, OP_UPDATE, XX, "dev1", "tags.us.x",
            "tags.us.x: not writable by caller multi");
    is_path(m, OP_UPDATE, NULL, "dev1", "tags.common", NULL);
    is_path(m, OP_UPDATE, NULL, "dev1", "tags.eu.x",
            "tags.eu.x: not writable by caller multi");

    is_path(m, OP_UPDATE, EU, "dev2", "tags.anything.below", NULL);
}


static void
test_deny(void)
{
    const caller_t  *m;

    m = caller(hp, "multi");

    /* a deny restricted to EU denies there only */

    is_path(m, OP_UPDATE, EU, "dev3", "tags.secret",
            "tags.secret: denied to caller multi by rules[5].deny[0]");
    is_path(m, OP_UPDATE, "Eu-Fleet.Azure-Devices.Net", "dev3",
            "tags.secret.x",
            "tags.secret.x: denied to caller multi by rules[5].deny[0]");
    is_path(m, OP_UPDATE, EU, "dev3", "tags",
            "tags: denied to caller multi by rules[5].deny[0]");
    is_path(m, OP_UPDATE, EU, "dev3", "tags.other", NULL);
    is_path(m, OP_UPDATE, US, "dev3", "tags.secret", NULL);
    is_path(m, OP_UPDATE, US, "dev3", "tags", NULL);
    is_path(m, OP_UPDATE, NULL, "dev3", "tags.secret", NULL);

    /* no reason names the hub when its rules cover the twin */

    is_target(m, OP_UPDATE, US, "dev3", NULL, NULL);
}


static void
test_read(void)
{
    const caller_t  *m;

    m = caller(hp, "multi");

    /* rule 0's scope on EU, with rule 2's default */

    is_read(m, OP_READ, EU, "dev1", "status", ALL);
    is_read(m, OP_READ, EU, "dev1", "tags.eu", ALL);
    is_read(m, OP_READ, EU, "dev1", "tags.eu.x", ALL);
    is_read(m, OP_READ, EU, "dev1", "tags.common", ALL);
    is_read(m, OP_READ, EU, "dev1", "tags.us", NONE);
    is_read(m, OP_READ, EU, "dev1", "tags", SOME);

    /* absent on US: rule 1's default scope instead */

    is_read(m, OP_READ, US, "dev1", "status", NONE);
    is_read(m, OP_READ, US, "dev1", "tags.eu", NONE);
    is_read(m, OP_READ, US, "dev1", "tags.us.y", ALL);
    is_read(m, OP_READ, US, "dev1", "tags.common", ALL);

    /* and on no hub, only rule 2's */

    is_read(m, OP_READ, XX, "dev1", "status", NONE);
    is_read(m, OP_READ, XX, "dev1", "tags.eu", NONE);
    is_read(m, OP_READ, XX, "dev1", "tags.us", NONE);
    is_read(m, OP_READ, XX, "dev1", "tags.common", ALL);
    is_read(m, OP_READ, NULL, "dev1", "status", NONE);
    is_read(m, OP_READ, NULL, "dev1", "tags.common", ALL);
    is_read(m, OP_READ, NULL, "dev1", "deviceId", ALL);

    /* a deny restricted to EU narrows reads there only */

    is_read(m, OP_UPDATE, EU, "dev3", "tags.secret", NONE);
    is_read(m, OP_UPDATE, EU, "dev3", "tags", SOME);
    is_read(m, OP_UPDATE, US, "dev3", "tags.secret", ALL);
    is_read(m, OP_UPDATE, US, "dev3", "tags", ALL);
}


static void
test_replace(void)
{
    const caller_t  *m;

    m = caller(hp, "multi");

    /* rep: writable whole but on EU, where a deny lies in desired */

    is_target(m, OP_REPLACE, EU, "rep", NULL,
              "operation replace is not allowed on device rep:"
              " properties.desired is partly denied by rules[7].deny[0]");
    is_target(m, OP_REPLACE, US, "rep", NULL, NULL);
    is_target(m, OP_REPLACE, NULL, "rep", NULL, NULL);

    /* rep2: desired writable on US only */

    is_target(m, OP_REPLACE, US, "rep2", NULL, NULL);
    is_target(m, OP_REPLACE, "US-FLEET.AZURE-DEVICES.NET", "rep2", NULL,
              NULL);
    is_target(m, OP_REPLACE, EU, "rep2", NULL,
              "operation replace is not allowed on device rep2 on hub " EU
              ": properties.desired is not writable as a whole");
    is_target(m, OP_REPLACE, NULL, "rep2", NULL,
              "operation replace is not allowed on device rep2 without a"
              " hub: properties.desired is not writable as a whole");
}


/* a caller without rules naming hubs: any hub, or none, is the same */

static void
test_unrestricted(void)
{
    size_t           i;
    const caller_t  *p;

    static const char *const  hubs[] = { NULL, EU, "", "not a host!" };

    p = caller(hp, "plain");

    for (i = 0; i < sizeof(hubs) / sizeof(hubs[0]); i++) {
        is_target(p, OP_UPDATE, hubs[i], "dev1", NULL, NULL);
        is_target(p, OP_UPDATE, hubs[i], "ro", NULL,
                  "operation update is not allowed on device ro");
        is_target(p, OP_UPDATE, hubs[i], "zz", NULL,
                  "device zz is not covered by any rule");
        is_path(p, OP_UPDATE, hubs[i], "dev1", "tags.secret",
                "tags.secret: denied to caller plain by rules[0].deny[0]");
        is_read(p, OP_UPDATE, hubs[i], "dev1", "tags.x", ALL);
    }
}


static void
test_report(void)
{
    decision_t       d;
    const caller_t  *w;

    w = caller(hp, "watcher");

    tap_ok(target(&d, w, OP_UPDATE, EU, "dev1", NULL) == 0 && d.report,
           "%s", "report mode: allowed on its hub");
    tap_ok(target(&d, w, OP_UPDATE, US, "dev1", NULL) == -1 && d.report
           && strcmp(d.reason, "operation update is not allowed on device"
                     " dev1 on hub " US) == 0,
           "%s", "report mode: refused on another, the verdict given");
}


/* hubs that are no host names: never a rule's, shown escaped */

static void
test_odd_hubs(void)
{
    char             hub[400], want[512];
    decision_t       d;
    const caller_t  *m;

    m = caller(hp, "multi");

    is_target(m, OP_UPDATE, "", "dev2", NULL,
              "operation update is not allowed on device dev2 without a"
              " hub");
    is_target(m, OP_UPDATE, "eu\"x\\\x01", "dev2", NULL,
              "operation update is not allowed on device dev2 on hub"
              " eu\\x22x\\x5c\\x01");

    tap_ok(ngx_http_iothub_twin_policy_target_hub(&d, m, OP_UPDATE,
                                   (const unsigned char *) EU "\0x",
                                   sizeof(EU) + 1,
                                   (const unsigned char *) "dev2", 4, NULL,
                                   0)
           == -1, "%s", "a hub's length counts, not a NUL in it");
    tap_ok(ngx_http_iothub_twin_policy_target_hub(&d, m, OP_UPDATE,
                                   (const unsigned char *) EU "xyz",
                                   sizeof(EU) - 1,
                                   (const unsigned char *) "dev2", 4, NULL,
                                   0)
           == 0, "%s", "only hub_len bytes of the hub are read");

    /* longer than any host name: no rule's, cut short in the reason */

    memset(hub, 'a', 300);
    hub[300] = '\0';
    snprintf(want, sizeof(want), "operation update is not allowed on device"
             " dev2 on hub %.76s...", hub);
    is_target(m, OP_UPDATE, hub, "dev2", NULL, want);

    memcpy(hub, EU, sizeof(EU));
    memset(hub + sizeof(EU) - 1, 'a', 253 - (sizeof(EU) - 1));
    hub[253] = '\0';
    tap_ok(target(&d, m, OP_UPDATE, hub, "dev2", NULL) == -1
           && strlen(d.reason) < sizeof(d.reason), "%s",
           "a hub of 253 bytes no rule names");
}


/* known(): the hubs a location routes to, without case; counts its calls */

typedef struct {
    const char  *const  *hubs;
    size_t               n;
    size_t               calls;
} known_t;


static int
known(void *data, const unsigned char *name, size_t len)
{
    size_t    i;
    known_t  *k = data;

    k->calls++;

    for (i = 0; i < k->n; i++) {
        if (strlen(k->hubs[i]) == len
            && strncasecmp(k->hubs[i], (const char *) name, len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


static void
test_check_hubs(void)
{
    int        rc;
    char       err[512];
    known_t    k;
    policy_t  *p;

    static const char *const  eu_us[] = { EU, US };
    static const char *const  all[] = { EU, US, ASIA };
    static const char *const  eu[] = { EU };

    /* rules[1].hubs[0] is known without case, hubs[1] is not */

    k.hubs = eu_us;
    k.n = 2;
    k.calls = 0;
    memset(err, 'x', sizeof(err));

    rc = ngx_http_iothub_twin_policy_check_hubs(hp, known, &k,
                                   "(not routed to by this location)", err,
                                   sizeof(err));
    tap_ok(rc == -1 && k.calls == 3, "%s",
           "check_hubs: -1 at the third hub asked");
    tap_is_str(err, strlen(err),
               "t.json: caller \"multi\": rules[1].hubs[1]: unknown hub"
               " \"" ASIA "\" (not routed to by this location)",
               "check_hubs: file, caller, rule, hub and suffix");

    /* the hub as the file spells it */

    k.hubs = eu;
    k.n = 1;
    k.calls = 0;

    rc = ngx_http_iothub_twin_policy_check_hubs(hp, known, &k, NULL, err,
                                                sizeof(err));
    tap_ok(rc == -1 && k.calls == 2, "%s", "check_hubs: -1 at rules[1]");
    tap_is_str(err, strlen(err),
               "t.json: caller \"multi\": rules[1].hubs[0]: unknown hub"
               " \"US-Fleet.Azure-Devices.net\"",
               "check_hubs: as spelt in the file, no suffix");

    rc = ngx_http_iothub_twin_policy_check_hubs(hp, known, &k, "", err,
                                                sizeof(err));
    tap_is_str(err, strlen(err),
               "t.json: caller \"multi\": rules[1].hubs[0]: unknown hub"
               " \"US-Fleet.Azure-Devices.net\"",
               "check_hubs: an empty suffix");

    /* cut to err_len, and no err at all */

    memset(err, 'x', sizeof(err));
    rc = ngx_http_iothub_twin_policy_check_hubs(hp, known, &k, "(x)", err,
                                                20);
    tap_ok(rc == -1 && err[19] == '\0' && err[20] == 'x', "%s",
           "check_hubs: cut to err_len");
    tap_is_str(err, strlen(err), "t.json: caller \"mul",
               "check_hubs: the message's beginning");
    tap_ok(ngx_http_iothub_twin_policy_check_hubs(hp, known, &k, "(x)",
                                                  NULL, 0)
           == -1, "%s", "check_hubs: no err");

    /* all known: every hub asked, in every caller */

    k.hubs = all;
    k.n = 3;
    k.calls = 0;
    err[0] = '\0';

    rc = ngx_http_iothub_twin_policy_check_hubs(hp, known, &k, "(x)", err,
                                                sizeof(err));
    tap_ok(rc == 0 && k.calls == 9 && err[0] == '\0', "%s",
           "check_hubs: 0 when all 9 are known");

    /* a policy without hubs asks nothing */

    p = parse("{\"callers\":{\"a\":{\"rules\":[{\"operations\":[\"read\"],"
              "\"devices\":[\"d\"]}]}}}");

    if (p != NULL) {
        k.hubs = eu;
        k.n = 0;
        k.calls = 0;
        tap_ok(ngx_http_iothub_twin_policy_check_hubs(p, known, &k, "(x)",
                                                      err, sizeof(err))
               == 0 && k.calls == 0, "%s",
               "check_hubs: nothing to ask without hubs");
        ngx_http_iothub_twin_policy_free(p);
    }

    /* the caller is named as the file spells it */

    p = parse("{\"callers\":{\"CN=backend-b,O=Example Backends\":{\"rules\":"
              "[{\"operations\":[\"read\"],\"devices\":[\"d\"],"
              "\"hubs\":[\"" XX "\"]}]}}}");

    if (p != NULL) {
        k.hubs = eu;
        k.n = 1;
        rc = ngx_http_iothub_twin_policy_check_hubs(p, known, &k,
                                       "(not routed to by this location)",
                                       err, sizeof(err));
        tap_is_str(err, strlen(err),
                   "t.json: caller \"CN=backend-b,O=Example Backends\":"
                   " rules[0].hubs[0]: unknown hub \"" XX "\" (not routed"
                   " to by this location)", "check_hubs: a subject DN");
        ngx_http_iothub_twin_policy_free(p);
    }
}
