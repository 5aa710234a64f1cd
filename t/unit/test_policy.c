
/*
 * Copyright (C) ngx_iothub_twin developers
 *
 * The caller policy: loading (good and bad files, messages naming the
 * file, the caller and the entry, never a key) and matching (ID and path
 * patterns, system modules, deny over allow, operations, report mode).
 */


#include <stdlib.h>

#include "tap.h"
#include "policy_util.h"


#define DATA  "t/data/policy/"

#define R_READ  "{\"operations\":[\"read\"],\"devices\":[\"d\"]}"

/* a policy with one caller "a" whose first rule is R */
#define ONE_RULE(r)  "{\"callers\":{\"a\":{\"rules\":[" r "]}}}"
#define ONE_CALLER(c)  "{\"callers\":{\"a\":{" c "}}}"

#define OP_READ     NGX_HTTP_IOTHUB_TWIN_OP_READ
#define OP_UPDATE   NGX_HTTP_IOTHUB_TWIN_OP_UPDATE
#define OP_REPLACE  NGX_HTTP_IOTHUB_TWIN_OP_REPLACE




static void test_load_good(void);
static void test_load_files(void);
static void test_load_errors(void);
static void test_load_keys(void);
static void test_load_limits(void);
static void test_ids(void);
static void test_system_modules(void);
static void test_operations(void);
static void test_paths(void);
static void test_deny(void);
static void test_replace(void);
static void test_report(void);
static void test_decision(void);
static void test_many_rules(void);
static void test_many_callers(void);
static void test_escapes(void);
static void test_walk(void);
static void test_states(void);

static int target(decision_t *d, const caller_t *c, int op,
    const char *device, const char *module);
static int path(decision_t *d, const char *path, int is_delete);
static void is_target(const caller_t *c, int op, const char *device,
    const char *module, const char *reason);
static void is_path(const caller_t *c, int op, const char *device,
    const char *module, const char *p, int is_delete, int want);


static const char  match_policy[] =
    "{\"callers\":{"

    /* the example of the documentation, and two rules more */
    "\"backend-a\":{\"rules\":["
      "{\"operations\":[\"read\",\"update\"],"
      "\"devices\":[\"dev1\",\"fleet-*\",\"sensor-?\?-*\"],"
      "\"modules\":[\"mod1\",\"$edgeAgent\"],"
      "\"tags\":[\"location.*\",\"owner\",\"meta.**\"],"
      "\"desired\":[\"telemetry.interval\",\"config.**\"],"
      "\"deny\":[\"tags.meta.secret.**\","
                "\"properties.desired.config.admin\"]},"
      "{\"operations\":[\"update\"],\"devices\":[\"dev1\"],"
      "\"modules\":[\"\",\"mod1\"],\"tags\":[\"**\"]},"
      "{\"operations\":[\"read\"],\"devices\":[\"ro-*\"]}"
    "]},"

    "\"globs\":{\"rules\":["
      "{\"operations\":[\"read\"],"
      "\"devices\":[\"exact\",\"pre-*\",\"g?-*-x\",\"*mid*\",\"q??\","
                  "\"a*b*c\",\"dollar$\"],"
      "\"modules\":[\"\",\"m-*\",\"mod?\",\"x*y\"]}"
    "]},"

    "\"star\":{\"rules\":["
      "{\"operations\":[\"read\"],\"devices\":[\"*\"]}"
    "]},"

    "\"sys\":{\"rules\":["
      "{\"operations\":[\"read\"],\"devices\":[\"d\"],"
      "\"modules\":[\"*\",\"?edgeHub\",\"*Agent\"]},"
      "{\"operations\":[\"update\"],\"devices\":[\"d\"],"
      "\"modules\":[\"$edgeHub\",\"$custom*\"]}"
    "]},"

    "\"paths\":{\"rules\":["
      "{\"operations\":[\"update\"],\"devices\":[\"d\"],"
      "\"tags\":[\"location.*\",\"owner\",\"meta.**\",\"a.*.c\",\"x*y\","
               "\"*\"],"
      "\"desired\":[\"telemetry.interval\",\"config.**\",\"**\"],"
      "\"deny\":[\"tags.meta.secret\",\"properties.desired.config.admin\","
                "\"properties.desired.config.keys.*\"]},"
      "{\"operations\":[\"update\"],\"devices\":[\"p\"],"
      "\"tags\":[\"location.*\",\"owner\",\"meta.**\",\"a.*.c\",\"x*y\"],"
      "\"desired\":[\"telemetry.interval\",\"config.**\"]},"
      "{\"operations\":[\"update\"],\"devices\":[\"t\"],"
      "\"tags\":[\"**\"],\"desired\":[\"**\"],"
      "\"deny\":[\"tags.**\"]}"
    "]},"

    "\"replacer\":{\"rules\":["
      "{\"operations\":[\"update\",\"replace\"],\"devices\":[\"whole\"],"
      "\"modules\":[\"\",\"m\"],\"tags\":[\"**\"],\"desired\":[\"**\"]},"
      "{\"operations\":[\"replace\"],\"devices\":[\"partial\"],"
      "\"tags\":[\"**\"],\"desired\":[\"config.**\"]},"
      "{\"operations\":[\"replace\"],\"devices\":[\"denied\"],"
      "\"tags\":[\"**\"],\"desired\":[\"**\"],"
      "\"deny\":[\"tags.x\",\"properties.desired.y.z\"]},"
      "{\"operations\":[\"replace\"],\"devices\":[\"split\"],"
      "\"tags\":[\"**\"]},"
      "{\"operations\":[\"replace\"],\"devices\":[\"split\"],"
      "\"desired\":[\"**\"]}"
    "]},"

    "\"watcher\":{\"mode\":\"report\",\"rules\":["
      "{\"operations\":[\"read\",\"update\"],\"devices\":[\"d\"],"
      "\"tags\":[\"ok\"]}"
    "]}"

    "}}";


static policy_t  *mp;


int
main(void)
{
    test_load_good();
    test_load_files();
    test_load_errors();
    test_load_keys();
    test_load_limits();

    mp = parse(match_policy);
    tap_ok(mp != NULL, "%s", "the matching policy loads");

    if (mp == NULL) {
        return tap_done();
    }

    test_ids();
    test_system_modules();
    test_operations();
    test_paths();
    test_deny();
    test_replace();
    test_report();
    test_decision();

    ngx_http_iothub_twin_policy_free(mp);

    test_many_rules();
    test_many_callers();
    test_escapes();
    test_walk();
    test_states();

    return tap_done();
}




static int
target(decision_t *d, const caller_t *c, int op, const char *device,
    const char *module)
{
    return ngx_http_iothub_twin_policy_target(d, c, op,
                                   (const unsigned char *) device,
                                   device ? strlen(device) : 0,
                                   (const unsigned char *) module,
                                   module ? strlen(module) : 0);
}


static int
path(decision_t *d, const char *p, int is_delete)
{
    return ngx_http_iothub_twin_policy_path(d, (const unsigned char *) p,
                                            strlen(p), is_delete);
}


/* reason NULL: allowed */

static void
is_target(const caller_t *c, int op, const char *device, const char *module,
    const char *reason)
{
    int         rc;
    char        name[512];
    decision_t  d;

    rc = target(&d, c, op, device, module);

    snprintf(name, sizeof(name), "%s %s%s%s: %s",
             ngx_http_iothub_twin_policy_op_name(op), device,
             module ? "/" : "", module ? module : "",
             reason ? reason : "allowed");

    target_verdict(rc, &d, name, reason);
}


static void
is_path(const caller_t *c, int op, const char *device, const char *module,
    const char *p, int is_delete, int want)
{
    int         rc;
    char        name[512];
    decision_t  d;

    snprintf(name, sizeof(name), "%s %s%s%s: %s%s %s",
             ngx_http_iothub_twin_policy_op_name(op), device,
             module ? "/" : "", module ? module : "", p,
             is_delete ? " (null)" : "", want == 0 ? "allowed" : "refused");

    if (target(&d, c, op, device, module) != 0) {
        tap_ok(0, "%s", name);
        printf("#   target refused: %s\n", d.reason);
        return;
    }

    rc = path(&d, p, is_delete);

    tap_ok(rc == want && d.allowed == (want == 0), "%s", name);

    if (rc != want) {
        printf("#   reason: %s\n", d.reason);
    }
}


static void
test_load_good(void)
{
    char                  err[512];
    size_t                len;
    policy_t             *p;
    const char           *name;
    const caller_t       *a, *b, *c;
    const unsigned char  *key;

    static const unsigned char  secondary[32] = {
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19,
        20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31
    };

    p = ngx_http_iothub_twin_policy_load(DATA "good.json", err, sizeof(err));
    tap_ok(p != NULL, "%s", "good.json loads");

    if (p == NULL) {
        printf("#   %s\n", err);
        return;
    }

    tap_ok(ngx_http_iothub_twin_policy_ncallers(p) == 3, "%s",
           "good.json has 3 callers");

    a = caller(p, "backend-a");
    b = caller(p, "backend-b");
    c = caller(p, "ops.example.com");

    tap_ok(a != NULL && b != NULL && c != NULL, "%s",
           "every caller is found by name");

    if (a == NULL || b == NULL || c == NULL) {
        ngx_http_iothub_twin_policy_free(p);
        return;
    }

    tap_ok(ngx_http_iothub_twin_policy_caller_index(a) == 0
           && ngx_http_iothub_twin_policy_caller_index(b) == 1
           && ngx_http_iothub_twin_policy_caller_index(c) == 2,
           "%s", "caller indexes follow the file");
    tap_ok(ngx_http_iothub_twin_policy_caller_at(p, 1) == b
           && ngx_http_iothub_twin_policy_caller_at(p, 3) == NULL,
           "%s", "caller_at");

    name = ngx_http_iothub_twin_policy_caller_name(c, &len);
    tap_is_str(name, len, "ops.example.com", "caller name");

    tap_ok(caller(p, "backend-") == NULL && caller(p, "backend-a ") == NULL
           && caller(p, "Backend-a") == NULL && caller(p, "") == NULL,
           "%s", "near names are not callers");
    tap_ok(ngx_http_iothub_twin_policy_caller(p,
                               (const unsigned char *) "backend-a-long", 9)
           == a, "%s", "lookup uses the length, not a NUL");
    tap_ok(ngx_http_iothub_twin_policy_caller(NULL,
                               (const unsigned char *) "backend-a", 9)
           == NULL
           && ngx_http_iothub_twin_policy_caller(p, NULL, 0) == NULL,
           "%s", "lookup without a policy or a name");

    key = ngx_http_iothub_twin_policy_caller_key(a, 0, &len);
    tap_is_str((const char *) key, len, "policy-test-key-a-primary",
               "primary key decoded");

    key = ngx_http_iothub_twin_policy_caller_key(a, 1, &len);
    tap_ok(key != NULL && len == 32 && memcmp(key, secondary, 32) == 0,
           "%s", "secondary key decoded (binary)");

    key = ngx_http_iothub_twin_policy_caller_key(b, 1, &len);
    tap_ok(key == NULL && len == 0, "%s", "no secondary key: NULL");

    key = ngx_http_iothub_twin_policy_caller_key(c, 0, &len);
    tap_ok(key == NULL, "%s", "no keys at all: NULL");

    key = ngx_http_iothub_twin_policy_caller_key(a, 2, &len);
    tap_ok(key == NULL, "%s", "slot 2 does not exist");

    tap_ok(!ngx_http_iothub_twin_policy_caller_report(a)
           && ngx_http_iothub_twin_policy_caller_report(b)
           && !ngx_http_iothub_twin_policy_caller_report(c),
           "%s", "mode: enforce, report, enforce by default");

    tap_ok(ngx_http_iothub_twin_policy_caller_max_body_size(a) == 16384
           && ngx_http_iothub_twin_policy_caller_max_body_size(b) == 0
           && ngx_http_iothub_twin_policy_caller_max_body_size(c) == 0,
           "%s", "max_body_size: set, absent, 0");

    tap_ok(ngx_http_iothub_twin_policy_caller_require_if_match(a)
           && !ngx_http_iothub_twin_policy_caller_require_if_match(b)
           && !ngx_http_iothub_twin_policy_caller_require_if_match(c),
           "%s", "require_if_match: true, absent, false");

    tap_ok(ngx_http_iothub_twin_policy_caller_nrules(a) == 1, "%s",
           "rules counted");

    is_target(a, OP_UPDATE, "fleet-7", "$edgeAgent", NULL);
    is_target(c, OP_REPLACE, "lab-1", NULL, NULL);
    is_target(c, OP_REPLACE, "lab-1", "any", NULL);
    is_target(b, OP_READ, "anything", NULL, NULL);

    ngx_http_iothub_twin_policy_free(p);
    ngx_http_iothub_twin_policy_free(NULL);
}


static void
test_load_files(void)
{
    char       err[512];
    policy_t  *p;

    p = ngx_http_iothub_twin_policy_load(DATA "duplicate.json", err,
                                         sizeof(err));
    tap_ok(p == NULL, "%s", "duplicate.json is refused");
    tap_is_str(err, strlen(err),
               DATA "duplicate.json: line 8: duplicate object key near"
               " '\"backend-a\"'",
               "a duplicate caller: file, line and name");

    p = ngx_http_iothub_twin_policy_load(DATA "syntax.json", err,
                                         sizeof(err));
    tap_ok(p == NULL, "%s", "syntax.json is refused");
    tap_is_str(err, strlen(err),
               DATA "syntax.json: line 6: unexpected token near ']'",
               "a syntax error: file, line and jansson's text");

    p = ngx_http_iothub_twin_policy_load(DATA "bad-pattern.json", err,
                                         sizeof(err));
    tap_ok(p == NULL, "%s", "bad-pattern.json is refused");
    tap_is_str(err, strlen(err),
               DATA "bad-pattern.json: caller \"backend-a\":"
               " rules[2].devices[0]: \"[x\": '[' is not allowed in a"
               " pattern", "a bad pattern: file, caller and entry");

    p = ngx_http_iothub_twin_policy_load(DATA "bad-key.json", err,
                                         sizeof(err));
    tap_ok(p == NULL, "%s", "bad-key.json is refused");
    tap_is_str(err, strlen(err),
               DATA "bad-key.json: caller \"backend-a\": keys.secondary:"
               " must be strict base64 (padded, the standard alphabet)"
               " of 1 to 256 bytes", "a bad key is named, not shown");

    p = ngx_http_iothub_twin_policy_load(DATA "key-syntax.json", err,
                                         sizeof(err));
    tap_ok(p == NULL && strstr(err, "line 4") != NULL
           && strstr(err, "c2VjcmV0") == NULL, "%s",
           "a syntax error inside a key does not show the key");
    printf("#   %s\n", err);

    p = ngx_http_iothub_twin_policy_load(DATA "missing.json", err,
                                         sizeof(err));
    tap_is_str(err, strlen(err),
               DATA "missing.json: No such file or directory",
               "a missing file");

    p = ngx_http_iothub_twin_policy_load(DATA, err, sizeof(err));
    tap_ok(p == NULL, "%s", "a directory is refused");

    p = ngx_http_iothub_twin_policy_load(DATA "missing.json", NULL, 0);
    tap_ok(p == NULL, "%s", "no error buffer is fine");
}


static void
test_load_errors(void)
{
    size_t  i;

    static const struct {
        const char  *json;
        const char  *err;
    } cases[] = {
        { "[]", "t.json: the top level must be an object" },
        { "{\"callers\": tru}", "t.json: line 1: invalid token" },
        { "{\"callers\":{\"a\":{\"keys\":{\"primary\":\"c2Vj\\x\"}}}}",
          "t.json: line 1: invalid escape" },
        { "{\"callers\":{\"a\":{\"keys\":{\"primary\":c2VjcmV0}}}}",
          "t.json: line 1: invalid token near 'c'" },
        { "", "t.json: line 1: '[' or '{' expected near end of file" },
        { "{\"callers\":{\"a\":{\"rules\":[" R_READ "]}}} x",
          "t.json: line 1: end of file expected near 'x'" },
        { "{}", "t.json: \"callers\" is missing" },
        { "{\"callers\":{}}",
          "t.json: callers: must be an object holding at least one"
          " caller" },
        { "{\"callers\":[]}",
          "t.json: callers: must be an object holding at least one"
          " caller" },
        { "{\"callers\":{\"a\":{\"rules\":[" R_READ "]}},\"x\":1}",
          "t.json: unknown field \"x\"" },
        { "{\"callers\":{\"a\":1}}",
          "t.json: caller \"a\": must be an object" },
        { ONE_CALLER("\"role\":1,\"rules\":[" R_READ "]"),
          "t.json: caller \"a\": unknown field \"role\"" },
        { ONE_CALLER("\"mode\":\"enforce\""),
          "t.json: caller \"a\": \"rules\" is missing" },
        { ONE_CALLER("\"rules\":[]"),
          "t.json: caller \"a\": rules: must be an array of 1 to 1000"
          " rules" },
        { ONE_CALLER("\"rules\":{}"),
          "t.json: caller \"a\": rules: must be an array of 1 to 1000"
          " rules" },

        /* caller names: printable ASCII, as subject DNs need */
        { "{\"callers\":{\"\":{\"rules\":[" R_READ "]}}}",
          "t.json: caller \"\": a caller name is 1 to 128"
          " printable ASCII characters, no double quote, no backslash,"
          " no space at either end" },
        { "{\"callers\":{\" a\":{\"rules\":[" R_READ "]}}}",
          "t.json: caller \" a\": a caller name is 1 to 128"
          " printable ASCII characters, no double quote, no backslash,"
          " no space at either end" },
        { "{\"callers\":{\"a\\u0009b\":{\"rules\":[" R_READ "]}}}",
          "t.json: caller \"a\\x09b\": a caller name is 1 to 128"
          " printable ASCII characters, no double quote, no backslash,"
          " no space at either end" },
        { "{\"callers\":{\"caf\\u00e9\":{\"rules\":[" R_READ "]}}}",
          "t.json: caller \"caf\\xc3\\xa9\": a caller name is 1 to 128"
          " printable ASCII characters, no double quote, no backslash,"
          " no space at either end" },
        { "{\"callers\":{\"a\\\"b\":{\"rules\":[" R_READ "]}}}",
          "t.json: caller \"a\\x22b\": a caller name is 1 to 128"
          " printable ASCII characters, no double quote, no backslash,"
          " no space at either end" },
        { "{\"callers\":{\"a\\\\b\":{\"rules\":[" R_READ "]}}}",
          "t.json: caller \"a\\x5cb\": a caller name is 1 to 128"
          " printable ASCII characters, no double quote, no backslash,"
          " no space at either end" },

        /* caller settings */
        { ONE_CALLER("\"mode\":\"permissive\",\"rules\":[" R_READ "]"),
          "t.json: caller \"a\": mode: must be \"enforce\" or \"report\"" },
        { ONE_CALLER("\"mode\":1,\"rules\":[" R_READ "]"),
          "t.json: caller \"a\": mode: must be \"enforce\" or \"report\"" },
        { ONE_CALLER("\"max_body_size\":-1,\"rules\":[" R_READ "]"),
          "t.json: caller \"a\": max_body_size: must be an integer from 0"
          " (no limit) to 16777216" },
        { ONE_CALLER("\"max_body_size\":16777217,\"rules\":[" R_READ "]"),
          "t.json: caller \"a\": max_body_size: must be an integer from 0"
          " (no limit) to 16777216" },
        { ONE_CALLER("\"max_body_size\":1024.0,\"rules\":[" R_READ "]"),
          "t.json: caller \"a\": max_body_size: must be an integer from 0"
          " (no limit) to 16777216" },
        { ONE_CALLER("\"max_body_size\":\"1k\",\"rules\":[" R_READ "]"),
          "t.json: caller \"a\": max_body_size: must be an integer from 0"
          " (no limit) to 16777216" },
        { ONE_CALLER("\"require_if_match\":1,\"rules\":[" R_READ "]"),
          "t.json: caller \"a\": require_if_match: must be true or false" },
        { ONE_CALLER("\"require_if_match\":\"yes\",\"rules\":[" R_READ "]"),
          "t.json: caller \"a\": require_if_match: must be true or false" },

        /* rules */
        { ONE_RULE("1"), "t.json: caller \"a\": rules[0]: must be an object" },
        { ONE_RULE(R_READ ",{\"operations\":[\"read\"],\"devices\":[\"d\"],"
                   "\"device\":[\"e\"]}"),
          "t.json: caller \"a\": rules[1]: unknown field \"device\"" },
        { ONE_RULE("{\"devices\":[\"d\"]}"),
          "t.json: caller \"a\": rules[0]: \"operations\" is missing" },
        { ONE_RULE("{\"operations\":[],\"devices\":[\"d\"]}"),
          "t.json: caller \"a\": rules[0].operations: must be an array of"
          " 1 to 1000 strings" },
        { ONE_RULE("{\"operations\":\"read\",\"devices\":[\"d\"]}"),
          "t.json: caller \"a\": rules[0].operations: must be an array of"
          " 1 to 1000 strings" },
        { ONE_RULE("{\"operations\":[\"read\",\"write\"],"
                   "\"devices\":[\"d\"]}"),
          "t.json: caller \"a\": rules[0].operations[1]: \"write\": not one"
          " of \"read\", \"update\", \"replace\"" },
        { ONE_RULE("{\"operations\":[\"Read\"],\"devices\":[\"d\"]}"),
          "t.json: caller \"a\": rules[0].operations[0]: \"Read\": not one"
          " of \"read\", \"update\", \"replace\"" },
        { ONE_RULE("{\"operations\":[\"read\",\"read\"],"
                   "\"devices\":[\"d\"]}"),
          "t.json: caller \"a\": rules[0].operations[1]: \"read\" is listed"
          " twice" },
        { ONE_RULE("{\"operations\":[1],\"devices\":[\"d\"]}"),
          "t.json: caller \"a\": rules[0].operations[0]: must be a string" },
        { ONE_RULE("{\"operations\":[\"read\"]}"),
          "t.json: caller \"a\": rules[0]: \"devices\" is missing" },
        { ONE_RULE("{\"operations\":[\"read\"],\"devices\":[]}"),
          "t.json: caller \"a\": rules[0].devices: must be an array of 1 to"
          " 1000 strings" },
        { ONE_RULE("{\"operations\":[\"read\"],\"devices\":[\"d\",null]}"),
          "t.json: caller \"a\": rules[0].devices[1]: must be a string" },

        /* ID patterns */
        { ONE_RULE("{\"operations\":[\"read\"],\"devices\":[\"\"]}"),
          "t.json: caller \"a\": rules[0].devices[0]: an empty pattern"
          " matches no ID" },
        { ONE_RULE("{\"operations\":[\"read\"],\"devices\":[\"[x\"]}"),
          "t.json: caller \"a\": rules[0].devices[0]: \"[x\": '[' is not"
          " allowed in a pattern" },
        { ONE_RULE("{\"operations\":[\"read\"],\"devices\":[\"a/b\"]}"),
          "t.json: caller \"a\": rules[0].devices[0]: \"a/b\": '/' is not"
          " allowed in a pattern" },
        { ONE_RULE("{\"operations\":[\"read\"],\"devices\":[\"a b\"]}"),
          "t.json: caller \"a\": rules[0].devices[0]: \"a b\": ' ' is not"
          " allowed in a pattern" },
        { ONE_RULE("{\"operations\":[\"read\"],\"devices\":[\"caf\\u00e9\"]}"),
          "t.json: caller \"a\": rules[0].devices[0]: \"caf\\xc3\\xa9\":"
          " '\\xc3' is not allowed in a pattern" },
        { ONE_RULE("{\"operations\":[\"read\"],\"devices\":[\"a\\\"\"]}"),
          "t.json: caller \"a\": rules[0].devices[0]: \"a\\x22\": '\"' is"
          " not allowed in a pattern" },
        { ONE_RULE("{\"operations\":[\"read\"],\"devices\":[\"d\"],"
                   "\"modules\":[]}"),
          "t.json: caller \"a\": rules[0].modules: must be an array of 1 to"
          " 1000 strings" },
        { ONE_RULE("{\"operations\":[\"read\"],\"devices\":[\"d\"],"
                   "\"modules\":[\"\",\"m~1\"]}"),
          "t.json: caller \"a\": rules[0].modules[1]: \"m~1\": '~' is not"
          " allowed in a pattern" },

        /* path patterns */
        { ONE_RULE("{\"operations\":[\"update\"],\"devices\":[\"d\"],"
                   "\"tags\":\"a\"}"),
          "t.json: caller \"a\": rules[0].tags: must be an array of 0 to"
          " 1000 strings" },
        { ONE_RULE("{\"operations\":[\"update\"],\"devices\":[\"d\"],"
                   "\"tags\":[\"\"]}"),
          "t.json: caller \"a\": rules[0].tags[0]: an empty path pattern" },
        { ONE_RULE("{\"operations\":[\"update\"],\"devices\":[\"d\"],"
                   "\"tags\":[\"a\",\"a..b\"]}"),
          "t.json: caller \"a\": rules[0].tags[1]: \"a..b\": an empty"
          " segment" },
        { ONE_RULE("{\"operations\":[\"update\"],\"devices\":[\"d\"],"
                   "\"tags\":[\".a\"]}"),
          "t.json: caller \"a\": rules[0].tags[0]: \".a\": an empty"
          " segment" },
        { ONE_RULE("{\"operations\":[\"update\"],\"devices\":[\"d\"],"
                   "\"desired\":[\"a.\"]}"),
          "t.json: caller \"a\": rules[0].desired[0]: \"a.\": an empty"
          " segment" },
        { ONE_RULE("{\"operations\":[\"update\"],\"devices\":[\"d\"],"
                   "\"tags\":[\"a.**.b\"]}"),
          "t.json: caller \"a\": rules[0].tags[0]: \"a.**.b\": \"**\" is"
          " allowed only as the last segment" },
        { ONE_RULE("{\"operations\":[\"update\"],\"devices\":[\"d\"],"
                   "\"tags\":[\"a b\"]}"),
          "t.json: caller \"a\": rules[0].tags[0]: \"a b\": ' ' is not"
          " allowed in a key" },
        { ONE_RULE("{\"operations\":[\"update\"],\"devices\":[\"d\"],"
                   "\"desired\":[\"$version\"]}"),
          "t.json: caller \"a\": rules[0].desired[0]: \"$version\": '$' is"
          " not allowed in a key" },
        { ONE_RULE("{\"operations\":[\"update\"],\"devices\":[\"d\"],"
                   "\"desired\":[\"a\\u0001\"]}"),
          "t.json: caller \"a\": rules[0].desired[0]: \"a\\x01\": '\\x01' is"
          " a control character" },
        { ONE_RULE("{\"operations\":[\"update\"],\"devices\":[\"d\"],"
                   "\"desired\":[\"a\\u0085\"]}"),
          "t.json: caller \"a\": rules[0].desired[0]: \"a\\xc2\\x85\":"
          " '\\xc2' is a control character" },
        { ONE_RULE("{\"operations\":[\"update\"],\"devices\":[\"d\"],"
                   "\"deny\":[\"location.*\"]}"),
          "t.json: caller \"a\": rules[0].deny[0]: \"location.*\": must"
          " begin with \"tags.\", \"properties.desired.\" or"
          " \"properties.reported.\"" },
        { ONE_RULE("{\"operations\":[\"update\"],\"devices\":[\"d\"],"
                   "\"deny\":[\"tags.a\",\"properties.x\"]}"),
          "t.json: caller \"a\": rules[0].deny[1]: \"properties.x\":"
          " must begin with \"tags.\", \"properties.desired.\" or"
          " \"properties.reported.\"" },
        { ONE_RULE("{\"operations\":[\"update\"],\"devices\":[\"d\"],"
                   "\"deny\":[\"tags\"]}"),
          "t.json: caller \"a\": rules[0].deny[0]: \"tags\": must begin"
          " with \"tags.\", \"properties.desired.\" or"
          " \"properties.reported.\"" },
        { ONE_RULE("{\"operations\":[\"update\"],\"devices\":[\"d\"],"
                   "\"deny\":[\"tags.\"]}"),
          "t.json: caller \"a\": rules[0].deny[0]: \"tags.\": an empty"
          " segment" },
        { ONE_RULE("{\"operations\":[\"update\"],\"devices\":[\"d\"],"
                   "\"deny\":[\"properties.desired.a.**.b\"]}"),
          "t.json: caller \"a\": rules[0].deny[0]:"
          " \"properties.desired.a.**.b\": \"**\" is allowed only as the"
          " last segment" },

        /* keys */
        { ONE_CALLER("\"keys\":\"c2VjcmV0\",\"rules\":[" R_READ "]"),
          "t.json: caller \"a\": keys: must be an object" },
        { ONE_CALLER("\"keys\":{},\"rules\":[" R_READ "]"),
          "t.json: caller \"a\": keys: \"primary\" is missing" },
        { ONE_CALLER("\"keys\":{\"secondary\":\"c2VjcmV0\"},"
                     "\"rules\":[" R_READ "]"),
          "t.json: caller \"a\": keys: \"primary\" is missing" },
        { ONE_CALLER("\"keys\":{\"primary\":\"c2VjcmV0\",\"tertiary\":\"\"},"
                     "\"rules\":[" R_READ "]"),
          "t.json: caller \"a\": keys: unknown field \"tertiary\"" },
        { ONE_CALLER("\"keys\":{\"primary\":42},\"rules\":[" R_READ "]"),
          "t.json: caller \"a\": keys.primary: must be a string" },
    };

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        is_error(cases[i].json, cases[i].err);
    }
}


static void
test_load_keys(void)
{
    char                  json[2048], err[512], b64[400], name[128];
    size_t                i, len;
    policy_t             *p;
    const unsigned char  *key;

    static const char  *bad[] = {
        "", "YQ", "YQ=", "abc", "ab=c", "=abc", "YR==", "YWJ=", " YQ==",
        "YQ==\n", "-_-_", "YWJj\\u0000", "YW Jj", "YQ===", "====",
        "c2VjcmV0LXZhbHVlLTQy!"
    };

    static const struct {
        const char  *b64;
        const char  *bytes;
    } good[] = {
        { "YQ==", "a" }, { "YWI=", "ab" }, { "YWJj", "abc" },
        { "c2VjcmV0LXZhbHVlLTQy", "secret-value-42" },
        { "+/+/", "\xfb\xff\xbf" }
    };

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(json, sizeof(json),
                 ONE_CALLER("\"keys\":{\"primary\":\"c2VjcmV0\","
                            "\"secondary\":\"%s\"},\"rules\":[" R_READ "]"),
                 bad[i]);

        p = ngx_http_iothub_twin_policy_parse("t.json", json, strlen(json),
                                              err, sizeof(err));

        snprintf(name, sizeof(name), "bad key %zu is refused, not shown", i);

        tap_ok(p == NULL
               && (strstr(err, "keys.secondary: must be strict base64")
                   || strstr(err, "line 1"))
               && (bad[i][0] == '\0' || strlen(bad[i]) < 3
                   || strstr(err, bad[i]) == NULL),
               "%s", name);

        ngx_http_iothub_twin_policy_free(p);
    }

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        snprintf(json, sizeof(json),
                 ONE_CALLER("\"keys\":{\"primary\":\"%s\"},"
                            "\"rules\":[" R_READ "]"), good[i].b64);

        p = parse(json);

        snprintf(name, sizeof(name), "key \"%s\" decodes", good[i].b64);

        if (p == NULL) {
            tap_ok(0, "%s", name);
            continue;
        }

        key = ngx_http_iothub_twin_policy_caller_key(caller(p, "a"), 0,
                                                     &len);
        tap_is_str((const char *) key, len, good[i].bytes, name);

        ngx_http_iothub_twin_policy_free(p);
    }

    /* 256 bytes is the most: 344 characters of base64; 348 are too many */

    memset(b64, 'A', 344);
    b64[342] = '=';
    b64[343] = '=';
    b64[344] = '\0';

    snprintf(json, sizeof(json),
             ONE_CALLER("\"keys\":{\"primary\":\"%s\"},"
                        "\"rules\":[" R_READ "]"),
             b64);
    p = parse(json);
    tap_ok(p != NULL, "%s", "a 256-byte key is accepted");

    if (p != NULL) {
        (void) ngx_http_iothub_twin_policy_caller_key(caller(p, "a"), 0,
                                                      &len);
        tap_ok(len == 256, "%s", "a 256-byte key has 256 bytes");
        ngx_http_iothub_twin_policy_free(p);
    }

    memset(b64, 'A', 348);
    b64[348] = '\0';

    snprintf(json, sizeof(json),
             ONE_CALLER("\"keys\":{\"primary\":\"%s\"},"
                        "\"rules\":[" R_READ "]"),
             b64);
    p = ngx_http_iothub_twin_policy_parse("t.json", json, strlen(json), err,
                                          sizeof(err));
    tap_ok(p == NULL && strstr(err, "keys.primary: must be strict base64"),
           "%s", "a 261-byte key is refused");
    ngx_http_iothub_twin_policy_free(p);
}


static void
test_load_limits(void)
{
    char      *json, *q, name[200], err[512];
    size_t     i, size;
    policy_t  *p;

    /* 1000 rules are allowed, 1001 not */

    size = 1100 * sizeof(R_READ) + 200;
    json = malloc(size);
    if (json == NULL) {
        tap_ok(0, "%s", "malloc");
        return;
    }

    q = json + sprintf(json, "{\"callers\":{\"a\":{\"rules\":[");

    for (i = 0; i < 1000; i++) {
        q += sprintf(q, "%s" R_READ, i ? "," : "");
    }

    strcpy(q, "]}}}");

    p = parse(json);
    tap_ok(p != NULL
           && ngx_http_iothub_twin_policy_caller_nrules(caller(p, "a"))
              == 1000, "%s", "1000 rules are allowed");
    ngx_http_iothub_twin_policy_free(p);

    sprintf(q, "," R_READ "]}}}");

    is_error(json, "t.json: caller \"a\": rules: must be an array of 1 to"
                   " 1000 rules");

    /* names and patterns at their limits */

    memset(name, 'n', 128);
    name[128] = '\0';

    sprintf(json, "{\"callers\":{\"%s\":{\"rules\":[" R_READ "]}}}", name);
    p = parse(json);
    tap_ok(p != NULL && caller(p, name) != NULL, "%s",
           "a 128-character caller name");
    ngx_http_iothub_twin_policy_free(p);

    name[128] = 'n';
    name[129] = '\0';

    sprintf(json, "{\"callers\":{\"%s\":{\"rules\":[" R_READ "]}}}", name);
    p = ngx_http_iothub_twin_policy_parse("t.json", json, strlen(json), err,
                                          sizeof(err));
    tap_ok(p == NULL && strstr(err, "a caller name is 1 to 128") != NULL
           && strstr(err, "nnn...\"") != NULL, "%s",
           "a 129-character caller name is refused, shown cut");

    name[128] = '\0';

    sprintf(json, ONE_RULE("{\"operations\":[\"read\"],\"devices\":[\"%s\"]}"),
            name);
    p = parse(json);
    tap_ok(p != NULL, "%s", "a 128-character device pattern");
    ngx_http_iothub_twin_policy_free(p);

    name[128] = '*';
    name[129] = '\0';

    sprintf(json, ONE_RULE("{\"operations\":[\"read\"],\"devices\":[\"%s\"]}"),
            name);
    p = ngx_http_iothub_twin_policy_parse("t.json", json, strlen(json), err,
                                          sizeof(err));
    tap_ok(p == NULL && strstr(err, "longer than 128 characters") != NULL,
           "%s", "a 129-character device pattern is refused");

    memset(json, 0, size);
    q = json + sprintf(json, "{\"callers\":{\"a\":{\"rules\":["
                             "{\"operations\":[\"update\"],"
                             "\"devices\":[\"d\"],\"tags\":[\"x.");
    memset(q, 'k', 1024);
    strcpy(q + 1024, "\"]}]}}}");

    p = parse(json);
    tap_ok(p != NULL, "%s", "a 1024-byte segment");
    ngx_http_iothub_twin_policy_free(p);

    q[1024] = 'k';
    strcpy(q + 1025, "\"]}]}}}");

    p = ngx_http_iothub_twin_policy_parse("t.json", json, strlen(json), err,
                                          sizeof(err));
    tap_ok(p == NULL && strstr(err, "a segment longer than 1024 bytes"),
           "%s", "a 1025-byte segment is refused");

    free(json);
}


static void
test_ids(void)
{
    const caller_t  *g, *s, *a;

    g = caller(mp, "globs");
    s = caller(mp, "star");
    a = caller(mp, "backend-a");

    /* exact */
    is_target(g, OP_READ, "exact", NULL, NULL);
    is_target(g, OP_READ, "Exact", NULL,
              "device Exact is not covered by any rule");
    is_target(g, OP_READ, "exac", NULL,
              "device exac is not covered by any rule");
    is_target(g, OP_READ, "exactt", NULL,
              "device exactt is not covered by any rule");

    /* prefix */
    is_target(g, OP_READ, "pre-", NULL, NULL);
    is_target(g, OP_READ, "pre-1", NULL, NULL);
    is_target(g, OP_READ, "pre-*", NULL, NULL);
    is_target(g, OP_READ, "pre", NULL,
              "device pre is not covered by any rule");
    is_target(g, OP_READ, "PRE-1", NULL,
              "device PRE-1 is not covered by any rule");

    /* glob */
    is_target(g, OP_READ, "g1-a-x", NULL, NULL);
    is_target(g, OP_READ, "g1--x", NULL, NULL);
    is_target(g, OP_READ, "g1-a-b-x", NULL, NULL);
    is_target(g, OP_READ, "g-a-x", NULL,
              "device g-a-x is not covered by any rule");
    is_target(g, OP_READ, "g12-a-x", NULL,
              "device g12-a-x is not covered by any rule");
    is_target(g, OP_READ, "g1-a-xy", NULL,
              "device g1-a-xy is not covered by any rule");
    is_target(g, OP_READ, "mid", NULL, NULL);
    is_target(g, OP_READ, "a-mid-b", NULL, NULL);
    is_target(g, OP_READ, "mi-d", NULL,
              "device mi-d is not covered by any rule");
    is_target(g, OP_READ, "qab", NULL, NULL);
    is_target(g, OP_READ, "qa", NULL,
              "device qa is not covered by any rule");
    is_target(g, OP_READ, "qabc", NULL,
              "device qabc is not covered by any rule");
    is_target(g, OP_READ, "abc", NULL, NULL);
    is_target(g, OP_READ, "a1b2b3c", NULL, NULL);
    is_target(g, OP_READ, "abcb", NULL,
              "device abcb is not covered by any rule");
    is_target(g, OP_READ, "dollar$", NULL, NULL);

    /* '?' and '*' in an ID are matched by wildcards only */
    is_target(g, OP_READ, "q?*", NULL, NULL);
    is_target(g, OP_READ, "g?-*-x", NULL, NULL);

    /* "*" covers every device, '$' at the start included */
    is_target(s, OP_READ, "any-device", NULL, NULL);
    is_target(s, OP_READ, "$dev", NULL, NULL);
    is_target(s, OP_READ, "x", "m",
              "module m of device x is not covered by any rule");

    /* modules: "" is the device twin, patterns the modules */
    is_target(g, OP_READ, "exact", "m-1", NULL);
    is_target(g, OP_READ, "exact", "mod7", NULL);
    is_target(g, OP_READ, "exact", "xzzy", NULL);
    is_target(g, OP_READ, "exact", "mod77",
              "module mod77 of device exact is not covered by any rule");
    is_target(g, OP_READ, "other", "m-1",
              "module m-1 of device other is not covered by any rule");

    /* the example: modules listed without "": no device twin */
    is_target(a, OP_READ, "fleet-1", "mod1", NULL);
    is_target(a, OP_READ, "sensor-12-x", "mod1", NULL);
    is_target(a, OP_READ, "sensor-1-x", "mod1",
              "module mod1 of device sensor-1-x is not covered by any rule");
    is_target(a, OP_READ, "fleet-1", NULL,
              "device fleet-1 is not covered by any rule");
    is_target(a, OP_READ, "dev1", NULL,
              "operation read is not allowed on device dev1");
    is_target(a, OP_UPDATE, "dev1", NULL, NULL);

    /* IDs are bytes and lengths */
    tap_ok(ngx_http_iothub_twin_policy_target(&(decision_t) { 0 }, g,
                                   OP_READ, (const unsigned char *) "exactly",
                                   5, NULL, 0) == 0,
           "%s", "the device ID is taken by its length");
}


static void
test_system_modules(void)
{
    const caller_t  *s, *a;

    s = caller(mp, "sys");
    a = caller(mp, "backend-a");

    is_target(s, OP_READ, "d", "mod", NULL);
    is_target(s, OP_READ, "d", "edgeAgent", NULL);
    is_target(s, OP_READ, "d", "$edgeAgent",
              "module $edgeAgent of device d is not covered by any rule");
    is_target(s, OP_READ, "d", "$edgeHub",
              "operation read is not allowed on module $edgeHub of device d");
    is_target(s, OP_UPDATE, "d", "$edgeHub", NULL);
    is_target(s, OP_UPDATE, "d", "$custom1", NULL);
    is_target(s, OP_UPDATE, "d", "custom1",
              "operation update is not allowed on module custom1 of"
              " device d");
    is_target(s, OP_READ, "d", NULL,
              "device d is not covered by any rule");
    is_target(a, OP_READ, "dev1", "$edgeAgent", NULL);
    is_target(a, OP_READ, "dev1", "$edgeHub",
              "module $edgeHub of device dev1 is not covered by any rule");
}


static void
test_operations(void)
{
    decision_t       d;
    const caller_t  *a, *g;

    a = caller(mp, "backend-a");
    g = caller(mp, "globs");

    is_target(a, OP_READ, "ro-1", NULL, NULL);
    is_target(a, OP_UPDATE, "ro-1", NULL,
              "operation update is not allowed on device ro-1");
    is_target(a, OP_REPLACE, "ro-1", NULL,
              "operation replace is not allowed on device ro-1");
    is_target(a, OP_REPLACE, "fleet-1", "mod1",
              "operation replace is not allowed on module mod1 of device"
              " fleet-1");
    is_target(g, OP_UPDATE, "exact", NULL,
              "operation update is not allowed on device exact");
    is_target(a, 0, "dev1", NULL, "operation 0 is unknown");
    is_target(a, 4, "dev1", NULL, "operation 4 is unknown");
    is_target(NULL, OP_READ, "dev1", NULL, "the caller is not in the policy");
    is_target(a, OP_READ, "", NULL, "no device ID");
    is_target(a, OP_READ, "dev1", "", "an empty module ID");

    tap_ok(target(&d, a, OP_READ, "ro-1", NULL) == 0
           && path(&d, "tags.location.city", 0) == -1
           && strcmp(d.reason, "operation read writes no paths") == 0,
           "%s", "a read writes no paths");

    tap_is_str(ngx_http_iothub_twin_policy_op_name(OP_REPLACE), 7, "replace",
               "op_name replace");
    tap_is_str(ngx_http_iothub_twin_policy_op_name(9), 7, "unknown",
               "op_name of an unknown op");
}


static void
test_paths(void)
{
    size_t           i;
    const caller_t  *p;

    static const struct {
        const char  *path;
        int          is_delete;
        int          rc;
    } cases[] = {
        /* location.*: exactly one key below location */
        { "tags.location.city", 0, 0 },
        { "tags.location.city", 1, 0 },
        { "tags.location", 0, -1 },
        { "tags.location", 1, -1 },
        { "tags.location.city.zip", 0, -1 },

        /* owner: that key, written or deleted as a whole, not below it */
        { "tags.owner", 0, 0 },
        { "tags.owner", 1, 0 },
        { "tags.owner.first", 0, -1 },
        { "tags.owners", 0, -1 },
        { "tags.Owner", 0, -1 },

        /* meta.**: meta itself and anything below */
        { "tags.meta", 0, 0 },
        { "tags.meta", 1, 0 },
        { "tags.meta.a", 0, 0 },
        { "tags.meta.a.b.c.d", 1, 0 },
        { "tags.metadata", 0, -1 },

        /* a.*.c */
        { "tags.a.b.c", 0, 0 },
        { "tags.a.*.c", 0, 0 },
        { "tags.a.b", 0, -1 },
        { "tags.a.b.c.d", 0, -1 },
        { "tags.a.b.d", 0, -1 },

        /* x*y is a literal key */
        { "tags.x*y", 0, 0 },
        { "tags.xzy", 0, -1 },

        /* desired, and the sections do not mix */
        { "properties.desired.telemetry.interval", 0, 0 },
        { "properties.desired.telemetry.interval", 1, 0 },
        { "properties.desired.telemetry", 0, -1 },
        { "properties.desired.telemetry.interval.x", 0, -1 },
        { "properties.desired.config", 1, 0 },
        { "properties.desired.config.a.b", 0, 0 },
        { "tags.telemetry.interval", 0, -1 },
        { "properties.desired.owner", 0, -1 },
        { "properties.desired.location.city", 0, -1 },

        /* what is no writable path at all */
        { "tags", 0, -1 },
        { "tags", 1, -1 },
        { "properties.desired", 0, -1 },
        { "properties.reported.x", 0, -1 },
        { "properties.desiredx", 0, -1 },
        { "properties", 0, -1 },
        { "tagsx.owner", 0, -1 },
        { "tags.", 0, -1 },
        { "tags..owner", 0, -1 },
        { "tags.owner.", 0, -1 },
        { ".tags.owner", 0, -1 },
        { "", 0, -1 },
        { "deviceId", 0, -1 },
    };

    p = caller(mp, "paths");

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        is_path(p, OP_UPDATE, "p", NULL, cases[i].path, cases[i].is_delete,
                cases[i].rc);
    }

    /* "*" alone: any one key; "**" alone: the whole section too */
    is_path(p, OP_UPDATE, "d", NULL, "tags.anything", 0, 0);
    is_path(p, OP_UPDATE, "d", NULL, "tags.anything.below", 0, -1);
    is_path(p, OP_UPDATE, "d", NULL, "tags", 0, -1);
    is_path(p, OP_UPDATE, "d", NULL, "properties.desired.x.y.z", 0, 0);
    is_path(p, OP_UPDATE, "d", NULL, "properties.desired", 1, -1);
    is_path(p, OP_UPDATE, "t", NULL, "properties.desired", 1, 0);
}


static void
test_deny(void)
{
    const caller_t  *a, *p;

    a = caller(mp, "backend-a");
    p = caller(mp, "paths");

    /* the example: deny wins over meta.** and config.** */
    is_path(a, OP_UPDATE, "fleet-1", "mod1", "tags.meta.public", 0, 0);
    is_path(a, OP_UPDATE, "fleet-1", "mod1", "tags.meta.secret", 0, -1);
    is_path(a, OP_UPDATE, "fleet-1", "mod1", "tags.meta.secret.pin", 0, -1);
    is_path(a, OP_UPDATE, "fleet-1", "mod1", "tags.meta.secret.pin", 1, -1);
    is_path(a, OP_UPDATE, "fleet-1", "mod1", "tags.meta.secrets", 0, 0);
    is_path(a, OP_UPDATE, "fleet-1", "mod1", "tags.meta", 1, -1);
    is_path(a, OP_UPDATE, "fleet-1", "mod1",
            "properties.desired.config.admin", 0, -1);
    is_path(a, OP_UPDATE, "fleet-1", "mod1",
            "properties.desired.config.admin.level", 0, -1);
    is_path(a, OP_UPDATE, "fleet-1", "mod1",
            "properties.desired.config", 1, -1);
    is_path(a, OP_UPDATE, "fleet-1", "mod1",
            "properties.desired.config.rate", 0, 0);
    is_path(a, OP_UPDATE, "fleet-1", "mod1",
            "properties.desired.config.rate", 1, 0);

    /* rules[1] allows tags.** on dev1; rules[0] also matches dev1/mod1 */
    is_path(a, OP_UPDATE, "dev1", "mod1", "tags.anything", 0, 0);
    is_path(a, OP_UPDATE, "dev1", "mod1", "tags.meta.secret.pin", 0, -1);
    is_path(a, OP_UPDATE, "dev1", "mod1", "tags.meta", 0, -1);

    /* the device twin of dev1 matches rules[1] only: its deny is not ours */
    is_path(a, OP_UPDATE, "dev1", NULL, "tags.meta.secret.pin", 0, 0);
    is_path(a, OP_UPDATE, "dev1", NULL, "properties.desired.config.x", 0, -1);

    /* deny of one key, and of "*" below a key */
    is_path(p, OP_UPDATE, "d", NULL, "tags.meta.secret", 0, -1);
    is_path(p, OP_UPDATE, "d", NULL, "tags.meta.secret.x", 1, -1);
    is_path(p, OP_UPDATE, "d", NULL, "tags.meta.open", 0, 0);
    is_path(p, OP_UPDATE, "d", NULL, "properties.desired.config.keys", 0, -1);
    is_path(p, OP_UPDATE, "d", NULL, "properties.desired.config.keys.k1",
            0, -1);
    is_path(p, OP_UPDATE, "d", NULL, "properties.desired.config.keyss", 0, 0);
    is_path(p, OP_UPDATE, "d", NULL, "properties.desired.config", 0, -1);

    /* tags.** denies the section, desired stays open */
    is_path(p, OP_UPDATE, "t", NULL, "tags.a", 0, -1);
    is_path(p, OP_UPDATE, "t", NULL, "tags.a.b", 1, -1);
    is_path(p, OP_UPDATE, "t", NULL, "properties.desired.a", 0, 0);
}


static void
test_replace(void)
{
    decision_t       d;
    const caller_t  *r;

    r = caller(mp, "replacer");

    is_target(r, OP_REPLACE, "whole", NULL, NULL);
    is_target(r, OP_REPLACE, "whole", "m", NULL);
    is_target(r, OP_REPLACE, "partial", NULL,
              "operation replace is not allowed on device partial:"
              " properties.desired is not writable as a whole");
    is_target(r, OP_REPLACE, "denied", NULL,
              "operation replace is not allowed on device denied: tags is"
              " partly denied by rules[2].deny[0]");
    is_target(r, OP_REPLACE, "split", NULL, NULL);

    tap_ok(target(&d, r, OP_REPLACE, "whole", NULL) == 0
           && path(&d, "tags.any.thing", 0) == 0
           && path(&d, "properties.desired.x", 1) == 0,
           "%s", "paths of a replace");
}


static void
test_report(void)
{
    int              rc;
    decision_t       d;
    const caller_t  *w, *a;

    w = caller(mp, "watcher");
    a = caller(mp, "backend-a");

    tap_ok(ngx_http_iothub_twin_policy_caller_report(w), "%s",
           "watcher is in report mode");

    rc = target(&d, w, OP_UPDATE, "d", NULL);
    tap_ok(rc == 0 && d.report, "%s", "report mode: target allowed");

    tap_ok(path(&d, "tags.ok", 0) == 0, "%s", "report mode: path allowed");
    tap_ok(path(&d, "tags.no", 0) == -1 && !d.allowed && d.report, "%s",
           "report mode: the verdict is still refused");
    tap_is_str(d.reason, strlen(d.reason),
               "tags.no: not writable by caller watcher",
               "report mode: the reason");

    rc = target(&d, w, OP_UPDATE, "e", NULL);
    tap_ok(rc == -1 && d.report && !d.allowed, "%s",
           "report mode: a refused target says report");

    rc = target(&d, a, OP_UPDATE, "e", NULL);
    tap_ok(rc == -1 && !d.report, "%s", "enforce mode: report is off");

    rc = target(&d, NULL, OP_UPDATE, "e", NULL);
    tap_ok(rc == -1 && !d.report && d.caller == NULL, "%s",
           "no caller: report is off");
}


static void
test_decision(void)
{
    char             long_path[400];
    size_t           i;
    decision_t       d;
    const caller_t  *a, *p;

    a = caller(mp, "backend-a");
    p = caller(mp, "paths");

    /* the first refusal is kept, the others counted */

    tap_ok(target(&d, a, OP_UPDATE, "fleet-1", "mod1") == 0
           && d.nrules == 1 && d.caller == a && d.op == OP_UPDATE,
           "%s", "one rule matched");
    tap_ok(path(&d, "tags.owner", 0) == 0
           && path(&d, "tags.color", 0) == -1
           && path(&d, "tags.meta.secret.x", 0) == -1
           && path(&d, "tags.location.city", 1) == 0,
           "%s", "four paths");
    tap_ok(d.npaths == 4 && d.nrefused == 2 && !d.allowed, "%s",
           "paths and refusals counted");
    tap_is_str(d.reason, strlen(d.reason),
               "tags.color: not writable by caller backend-a",
               "the first refusal's reason");
    tap_is_str(d.path, strlen(d.path), "tags.color", "the first refused path");

    tap_ok(target(&d, a, OP_UPDATE, "fleet-1", "mod1") == 0
           && path(&d, "tags.meta.secret.x", 0) == -1, "%s",
           "a denied path");
    tap_is_str(d.reason, strlen(d.reason),
               "tags.meta.secret.x: denied to caller backend-a by"
               " rules[0].deny[0]", "a denied path's reason");

    tap_ok(target(&d, a, OP_UPDATE, "dev1", "mod1") == 0 && d.nrules == 2
           && path(&d, "properties.desired.config.admin", 1) == -1,
           "%s", "deny from the first of two rules");
    tap_is_str(d.reason, strlen(d.reason),
               "properties.desired.config.admin: denied to caller backend-a"
               " by rules[0].deny[1]", "the deny entry is named");

    /* after a refused target, paths are refused and the reason stays */

    tap_ok(target(&d, a, OP_UPDATE, "nobody", NULL) == -1
           && path(&d, "tags.owner", 0) == -1 && d.nrefused == 2
           && d.path[0] == '\0', "%s", "paths after a refused target");
    tap_is_str(d.reason, strlen(d.reason),
               "device nobody is not covered by any rule",
               "the target's reason stays");

    /* a decision never given a target refuses everything */

    memset(&d, 0, sizeof(decision_t));
    tap_ok(path(&d, "tags.owner", 0) == -1 && !d.allowed, "%s",
           "a zeroed decision refuses paths");
    tap_is_str(d.reason, strlen(d.reason), "the target is refused",
               "a zeroed decision's reason");

    /* deeper than NGX_HTTP_IOTHUB_TWIN_POLICY_PATH_DEPTH keys */

    memset(long_path, 0, sizeof(long_path));
    strcpy(long_path, "tags.meta");

    for (i = 1; i < NGX_HTTP_IOTHUB_TWIN_POLICY_PATH_DEPTH; i++) {
        strcat(long_path, ".k");
    }

    tap_ok(target(&d, p, OP_UPDATE, "p", NULL) == 0
           && path(&d, long_path, 0) == 0, "%s",
           "a path of 64 keys under meta.**");

    strcat(long_path, ".k");

    tap_ok(target(&d, p, OP_UPDATE, "p", NULL) == 0
           && path(&d, long_path, 0) == -1
           && strstr(d.reason, ": not a writable path") != NULL, "%s",
           "a path of 65 keys is refused");

    /* reasons are printable and short */

    tap_ok(target(&d, p, OP_UPDATE, "p", NULL) == 0
           && path(&d, "tags.caf\xc3\xa9\x01\"\\", 0) == -1, "%s",
           "a non-ASCII path");
    tap_is_str(d.reason, strlen(d.reason),
               "tags.caf\\xc3\\xa9\\x01\\x22\\x5c: not writable by caller"
               " paths", "non-printable bytes escaped in the reason");
    tap_is_str(d.path, strlen(d.path), "tags.caf\\xc3\\xa9\\x01\\x22\\x5c",
               "and in the path");

    memset(long_path, 'k', sizeof(long_path) - 1);
    memcpy(long_path, "tags.", 5);
    long_path[sizeof(long_path) - 1] = '\0';

    tap_ok(target(&d, p, OP_UPDATE, "p", NULL) == 0
           && path(&d, long_path, 0) == -1
           && strlen(d.reason) < sizeof(d.reason)
           && strstr(d.reason, "kkk...: not writable by caller paths")
           && strlen(d.path) == sizeof(d.path) - 1
           && memcmp(d.path + sizeof(d.path) - 4, "...", 3) == 0,
           "%s", "a long path is cut short");

    tap_ok(target(&d, p, OP_UPDATE, "g\x7f", NULL) == -1, "%s",
           "an odd device ID");
    tap_is_str(d.reason, strlen(d.reason),
               "device g\\x7f is not covered by any rule",
               "the device ID escaped");
}


static void
test_many_rules(void)
{
    char            *json, *q;
    size_t           i;
    policy_t        *p;
    decision_t       d;
    const caller_t  *c;

    /* 130 rules: the bitmap's words past the first are used */

    json = malloc(130 * 128 + 64);
    if (json == NULL) {
        tap_ok(0, "%s", "malloc");
        return;
    }

    q = json + sprintf(json, "{\"callers\":{\"m\":{\"rules\":[");

    for (i = 0; i < 130; i++) {
        q += sprintf(q, "%s{\"operations\":[\"update\"],\"devices\":[\"%s\"],"
                     "\"tags\":[\"r%zu\"]}", i ? "," : "",
                     (i == 0 || i == 64 || i == 129) ? "d" : "n", i);
    }

    strcpy(q, "]}}}");

    p = parse(json);
    free(json);

    tap_ok(p != NULL, "%s", "130 rules load");

    if (p == NULL) {
        return;
    }

    c = caller(p, "m");

    tap_ok(target(&d, c, OP_UPDATE, "d", NULL) == 0 && d.nrules == 3
           && d.rules.w[0] == 1 && d.rules.w[1] == 1
           && d.rules.w[2] == 2, "%s", "rules 0, 64 and 129 matched");
    tap_ok(path(&d, "tags.r0", 0) == 0 && path(&d, "tags.r64", 0) == 0
           && path(&d, "tags.r129", 0) == 0 && d.nrefused == 0, "%s",
           "their paths are allowed");
    tap_ok(path(&d, "tags.r1", 0) == -1 && path(&d, "tags.r128", 0) == -1,
           "%s", "the other rules' paths are not");

    ngx_http_iothub_twin_policy_free(p);
}


static void
test_many_callers(void)
{
    int              ok;
    char            *json, *q, name[32];
    size_t           i, n, len;
    policy_t        *p;
    const char      *s;
    const caller_t  *c;

    n = 5000;

    json = malloc(n * 100 + 64);
    if (json == NULL) {
        tap_ok(0, "%s", "malloc");
        return;
    }

    q = json + sprintf(json, "{\"callers\":{");

    for (i = 0; i < n; i++) {
        q += sprintf(q, "%s\"caller-%zu\":{\"rules\":[" R_READ "]}",
                     i ? "," : "", i);
    }

    strcpy(q, "}}");

    p = parse(json);
    free(json);

    tap_ok(p != NULL && ngx_http_iothub_twin_policy_ncallers(p) == n, "%s",
           "5000 callers load");

    if (p == NULL) {
        return;
    }

    ok = 1;

    for (i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "caller-%zu", i);
        c = caller(p, name);

        if (c == NULL || ngx_http_iothub_twin_policy_caller_index(c) != i) {
            ok = 0;
            break;
        }

        s = ngx_http_iothub_twin_policy_caller_name(c, &len);

        if (len != strlen(name) || memcmp(s, name, len) != 0) {
            ok = 0;
            break;
        }
    }

    tap_ok(ok, "%s", "every one of 5000 callers is found, in file order");

    ok = 1;

    for (i = n; i < 2 * n; i++) {
        snprintf(name, sizeof(name), "caller-%zu", i);

        if (caller(p, name) != NULL) {
            ok = 0;
        }
    }

    tap_ok(ok, "%s", "5000 unknown names are not found");

    ngx_http_iothub_twin_policy_free(p);
}


/* "\*", "\?" and "\\" in ID and path patterns */

static void
test_escapes(void)
{
    decision_t       d;
    policy_t        *p;
    const caller_t  *c;

    p = parse("{\"callers\":{\"e\":{\"rules\":["
              "{\"operations\":[\"read\",\"update\"],"
              "\"devices\":[\"dev#1\\\\?x\",\"star\\\\*\",\"p\\\\*-*\","
                          "\"g?\\\\?\",\"\\\\**\"],"
              "\"modules\":[\"\",\"m\\\\?\"],"
              "\"tags\":[\"\\\\*\",\"\\\\*\\\\*\",\"a.\\\\*.b\","
                       "\"\\\\\\\\\",\"k\\\\*\",\"w.*\"],"
              "\"desired\":[\"**\"],"
              "\"deny\":[\"properties.desired.\\\\*\"]}"
              "]}}}");

    tap_ok(p != NULL, "%s", "a policy with escapes loads");

    if (p == NULL) {
        return;
    }

    c = caller(p, "e");

    /* IDs: an escaped '?' or '*' is that character only */
    is_target(c, OP_READ, "dev#1?x", NULL, NULL);
    is_target(c, OP_READ, "dev#1ax", NULL,
              "device dev#1ax is not covered by any rule");
    is_target(c, OP_READ, "star*", NULL, NULL);
    is_target(c, OP_READ, "star1", NULL,
              "device star1 is not covered by any rule");
    is_target(c, OP_READ, "p*-", NULL, NULL);
    is_target(c, OP_READ, "p*-9", NULL, NULL);
    is_target(c, OP_READ, "px-9", NULL,
              "device px-9 is not covered by any rule");
    is_target(c, OP_READ, "ga?", NULL, NULL);
    is_target(c, OP_READ, "gab", NULL,
              "device gab is not covered by any rule");
    is_target(c, OP_READ, "*lead", NULL, NULL);
    is_target(c, OP_READ, "lead", NULL,
              "device lead is not covered by any rule");
    is_target(c, OP_READ, "star*", "m?", NULL);
    is_target(c, OP_READ, "star*", "m1",
              "module m1 of device star* is not covered by any rule");

    /* paths: "\*" is the key "*", "\*\*" the key "**" */
    is_path(c, OP_UPDATE, "star*", NULL, "tags.*", 0, 0);
    is_path(c, OP_UPDATE, "star*", NULL, "tags.*", 1, 0);
    is_path(c, OP_UPDATE, "star*", NULL, "tags.a", 0, -1);
    is_path(c, OP_UPDATE, "star*", NULL, "tags.**", 0, 0);
    is_path(c, OP_UPDATE, "star*", NULL, "tags.**.x", 0, -1);
    is_path(c, OP_UPDATE, "star*", NULL, "tags.*.x", 0, -1);
    is_path(c, OP_UPDATE, "star*", NULL, "tags.a.*.b", 0, 0);
    is_path(c, OP_UPDATE, "star*", NULL, "tags.a.x.b", 0, -1);
    is_path(c, OP_UPDATE, "star*", NULL, "tags.\\", 0, 0);
    is_path(c, OP_UPDATE, "star*", NULL, "tags.k*", 0, 0);
    is_path(c, OP_UPDATE, "star*", NULL, "tags.kk", 0, -1);

    /* a wildcard "*" still covers a key named "*" */
    is_path(c, OP_UPDATE, "star*", NULL, "tags.w.*", 0, 0);
    is_path(c, OP_UPDATE, "star*", NULL, "tags.w.x", 0, 0);

    /* deny of the key "*" only, its subtree and its parent */
    is_path(c, OP_UPDATE, "star*", NULL, "properties.desired.*", 0, -1);
    is_path(c, OP_UPDATE, "star*", NULL, "properties.desired.*.x", 1, -1);
    is_path(c, OP_UPDATE, "star*", NULL, "properties.desired.x", 0, 0);
    is_path(c, OP_UPDATE, "star*", NULL, "properties.desired.x.*", 0, 0);

    tap_ok(target(&d, c, OP_UPDATE, "star*", NULL) == 0
           && path(&d, "properties.desired", 0) == -1, "%s",
           "deny of the key \"*\" refuses its section written whole");
    tap_is_str(d.reason, strlen(d.reason),
               "properties.desired: denied to caller e by rules[0].deny[0]",
               "and names the deny entry");

    ngx_http_iothub_twin_policy_free(p);

    /* a backslash before anything else, and a literal one in an ID */

    is_error(ONE_RULE("{\"operations\":[\"read\"],"
                      "\"devices\":[\"d\\\\x\"]}"),
             "t.json: caller \"a\": rules[0].devices[0]: \"d\\x5cx\": a"
             " backslash may only come before '*', '?' or a backslash");
    is_error(ONE_RULE("{\"operations\":[\"read\"],"
                      "\"devices\":[\"d\\\\\"]}"),
             "t.json: caller \"a\": rules[0].devices[0]: \"d\\x5c\": a"
             " backslash may only come before '*', '?' or a backslash");
    is_error(ONE_RULE("{\"operations\":[\"read\"],"
                      "\"devices\":[\"d\\\\\\\\\"]}"),
             "t.json: caller \"a\": rules[0].devices[0]: \"d\\x5c\\x5c\":"
             " '\\' is not allowed in a pattern");
    is_error(ONE_RULE("{\"operations\":[\"read\"],\"devices\":[\"d\"],"
                      "\"modules\":[\"m\\\\.\"]}"),
             "t.json: caller \"a\": rules[0].modules[0]: \"m\\x5c.\": a"
             " backslash may only come before '*', '?' or a backslash");
    is_error(ONE_RULE("{\"operations\":[\"update\"],\"devices\":[\"d\"],"
                      "\"tags\":[\"a.b\\\\c\"]}"),
             "t.json: caller \"a\": rules[0].tags[0]: \"a.b\\x5cc\": a"
             " backslash may only come before '*', '?' or a backslash");
    is_error(ONE_RULE("{\"operations\":[\"update\"],\"devices\":[\"d\"],"
                      "\"deny\":[\"tags.a\\\\\"]}"),
             "t.json: caller \"a\": rules[0].deny[0]: \"tags.a\\x5c\": a"
             " backslash may only come before '*', '?' or a backslash");
}


/*
 * The decision resumes the previous path's walk: paths sharing a prefix,
 * one after another, get the verdicts each would get alone.
 */

static void
test_walk(void)
{
    int              ok;
    char             buf[600];
    size_t           i;
    decision_t       d, one;
    policy_t        *p;
    const caller_t  *c;

    static const struct {
        const char  *path;
        int          rc;
    } seq[] = {
        { "tags.cfg.a", 0 },
        { "tags.cfg.a.b", 0 },
        { "tags.cfg.secret", -1 },
        { "tags.cfg.secret.x", -1 },
        { "tags.cfg.secrets", 0 },
        { "tags.cfg", -1 },
        { "tags.open.x.y.z", 0 },
        { "tags.open.x.y", 0 },
        { "tags.open", 0 },
        { "tags.opens", -1 },
        { "properties.desired.cfg.a", -1 },
        { "tags.cfg.a", 0 },
        { "tags.c", -1 },
        { "tags.cfg.a", 0 },
        { "tags.cfg.", -1 },
        { "tags.cfg.a", 0 },
    };

    p = parse("{\"callers\":{\"w\":{\"rules\":["
              "{\"operations\":[\"update\"],\"devices\":[\"d\"],"
              "\"tags\":[\"cfg.**\",\"open.**\"],"
              "\"deny\":[\"tags.cfg.secret\"]}"
              "]}}}");

    tap_ok(p != NULL, "%s", "the walk policy loads");

    if (p == NULL) {
        return;
    }

    c = caller(p, "w");

    ok = (target(&d, c, OP_UPDATE, "d", NULL) == 0);

    for (i = 0; ok && i < sizeof(seq) / sizeof(seq[0]); i++) {
        if (path(&d, seq[i].path, 0) != seq[i].rc
            || target(&one, c, OP_UPDATE, "d", NULL) != 0
            || path(&one, seq[i].path, 0) != seq[i].rc)
        {
            printf("#   %s\n", seq[i].path);
            ok = 0;
        }
    }

    tap_ok(ok, "%s", "a sequence of paths, each as if alone");

    /* longer than the bytes the walk keeps */

    memset(buf, 'k', sizeof(buf) - 1);
    buf[sizeof(buf) - 1] = '\0';
    memcpy(buf, "tags.open.", 10);

    tap_ok(target(&d, c, OP_UPDATE, "d", NULL) == 0
           && path(&d, buf, 0) == 0
           && path(&d, "tags.open.x", 0) == 0
           && path(&d, buf, 0) == 0
           && path(&d, "tags.cfg.secret", 0) == -1
           && d.nrefused == 1, "%s", "paths longer than the walk keeps");

    memcpy(buf, "tags.cfx.", 9);

    tap_ok(target(&d, c, OP_UPDATE, "d", NULL) == 0
           && path(&d, buf, 0) == -1, "%s",
           "a long path outside the patterns");

    ngx_http_iothub_twin_policy_free(p);
}


/*
 * Patterns whose automaton would have more than 65,536 states: n paths
 * of n segments, each "*" but for an "x" at its own depth, make 2^j
 * states at depth j (about 2^(n + 1) in all).
 */

static void
test_states(void)
{
    char      *json, *q, err[512];
    size_t     i, k, n;
    policy_t  *p;

    json = malloc(17 * 17 * 3 + 256);
    if (json == NULL) {
        tap_ok(0, "%s", "malloc");
        return;
    }

    for (n = 14; n <= 17; n += 3) {
        q = json + sprintf(json, "{\"callers\":{\"s\":{\"rules\":[{"
                           "\"operations\":[\"update\"],\"devices\":[\"d\"],"
                           "\"tags\":[");

        for (i = 0; i < n; i++) {
            *q++ = i ? ',' : '"';

            if (i) {
                *q++ = '"';
            }

            for (k = 0; k < n; k++) {
                q += sprintf(q, "%s%s", k ? "." : "", k == i ? "x" : "*");
            }

            *q++ = '"';
        }

        strcpy(q, "]}]}}}");

        p = ngx_http_iothub_twin_policy_parse("t.json", json, strlen(json),
                                              err, sizeof(err));

        if (n == 14) {
            tap_ok(p != NULL, "%s", "14 patterns of 14 segments load");

            if (p == NULL) {
                printf("#   %s\n", err);
            }

        } else {
            tap_ok(p == NULL, "%s", "17 patterns of 17 segments do not");
            tap_is_str(err, strlen(err),
                       "t.json: caller \"s\": the path patterns combine"
                       " into more than 65536 states; use fewer \"*\""
                       " segments", "and the message says why");
        }

        ngx_http_iothub_twin_policy_free(p);
    }

    free(json);
}
