
/*
 * libFuzzer target for the policy loader: every input is a whole policy
 * file for ngx_http_iothub_twin_policy_parse().
 *
 * The run aborts (ASan's leak checker on, as libFuzzer runs it) when:
 *
 *   - a refusal has no message, a message that is not NUL-terminated
 *     printable ASCII starting with the file name, or a message that shows
 *     the value of a key given in the file (one of 8 bytes or more, that
 *     the file holds only once);
 *   - a loaded policy is inconsistent: a caller found by its index is not
 *     found again by its name, indexes are not in file order, a caller
 *     name or key is empty or over its limit;
 *   - a decision on a few fixed targets and paths, for every caller, is
 *     malformed: a reason or path that is not NUL-terminated printable
 *     ASCII, a refusal without a reason, a verdict that differs from
 *     "allowed", or a path allowed after the target was refused;
 *   - decisions for a hub (as the lead's code asks for twins routed to
 *     one of several) break what hubs promise: without a hub, target_hub
 *     differs from target; for a hub, fewer rules apply than without one
 *     (rules without "hubs" apply to every hub); a hub spelt in another
 *     case gets another verdict, rule count, reason, path verdict or read
 *     verdict;
 *   - check_hubs() with every hub known is not 0, or with only some known
 *     gives a message that is not printable, does not begin with the file
 *     and the caller, or does not name an unknown hub;
 *   - a read verdict on a few fixed nodes, asked in document order between
 *     the written paths, is not NONE, ALL or SOME, differs from a fresh
 *     decision's, is not NONE after a refused target, is not ALL for
 *     deviceId and etag or for a node below an ALL, or is not ALL
 *     everywhere when the decision says it reads the whole twin.
 *
 * clang -g -O1 -fsanitize=fuzzer,address,undefined \
 *     -Ingx_iothub_twin_module fuzz/fuzz_policy.c \
 *     ngx_iothub_twin_module/ngx_http_iothub_twin_policy.c \
 *     ngx_iothub_twin_module/ngx_http_iothub_twin_id.c -ljansson \
 *     -o build/fuzz/fuzz_policy
 */


#define _GNU_SOURCE

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "ngx_http_iothub_twin_filter.h"
#include "ngx_http_iothub_twin_policy.h"


#define FUZZ_POLICY_FILE  "fuzz.json"


typedef struct {
    int          op;
    const char  *device;
    const char  *module;
} fuzz_policy_target_t;


/* what one decision said, to compare with another's */

#define FUZZ_POLICY_NPATHS  10
#define FUZZ_POLICY_NNODES  18

typedef struct {
    int          rc;
    unsigned     nrules;
    int          paths[FUZZ_POLICY_NPATHS];
    int          reads[FUZZ_POLICY_NNODES];
    char         reason[256];
} fuzz_policy_said_t;


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_policy_error(const char *err, size_t err_len,
    const uint8_t *data, size_t size);
static void fuzz_policy_check(const ngx_http_iothub_twin_policy_t *policy,
    const uint8_t *data, size_t size);
static void fuzz_policy_decide(const ngx_http_iothub_twin_caller_t *c);
static void fuzz_policy_decide_hub(const ngx_http_iothub_twin_caller_t *c,
    const fuzz_policy_target_t *t, const char *hub, fuzz_policy_said_t *said);
static int fuzz_policy_target(ngx_http_iothub_twin_policy_decision_t *d,
    const ngx_http_iothub_twin_caller_t *c, const fuzz_policy_target_t *t,
    const char *hub);
static void fuzz_policy_reads(ngx_http_iothub_twin_policy_decision_t *d,
    const ngx_http_iothub_twin_caller_t *c, const fuzz_policy_target_t *t,
    const char *hub, int allowed, fuzz_policy_said_t *said);
static void fuzz_policy_check_hubs(
    const ngx_http_iothub_twin_policy_t *policy, const uint8_t *data,
    size_t size);
static int fuzz_policy_known(void *data, const unsigned char *name,
    size_t len);
static void fuzz_policy_check_text(const char *what, const char *s,
    size_t size);
static void fuzz_policy_fail(const char *what, const char *detail);


static const fuzz_policy_target_t  fuzz_policy_targets[] = {
    { NGX_HTTP_IOTHUB_TWIN_OP_UPDATE, "dev1", NULL },
    { NGX_HTTP_IOTHUB_TWIN_OP_UPDATE, "fleet-42", "mod1" },
    { NGX_HTTP_IOTHUB_TWIN_OP_READ, "sensor-01-a", "$edgeAgent" },
    { NGX_HTTP_IOTHUB_TWIN_OP_REPLACE, "lab-*?", "" },
    { NGX_HTTP_IOTHUB_TWIN_OP_UPDATE, "a-:.+%_#*?!(),=@;$'", "m" },
    { 0, "dev1", NULL }
};


/* a twin's nodes in document order; parents[i]: its parent's index + 1 */

static const char  *fuzz_policy_nodes[FUZZ_POLICY_NNODES] = {
    "", "deviceId", "etag", "status", "tags", "tags.location",
    "tags.location.city", "tags.meta", "tags.meta.secret",
    "tags.meta.secret.x", "properties", "properties.desired",
    "properties.desired.config", "properties.desired.config.admin",
    "properties.reported", "properties.reported.fw",
    "properties.reported.fw.version", "version"
};

static const size_t  fuzz_policy_parents[] = {
    0, 1, 1, 1, 1, 5, 6, 5, 8, 9, 1, 11, 12, 13, 11, 15, 16, 1
};


/*
 * The hubs decisions are asked for: "" stands for the old entry point
 * (no hub), NULL for target_hub() without one; the last two are the same
 * hub in two spellings.
 */

static const char  *fuzz_policy_hubs[] = {
    "", NULL, "us-fleet.azure-devices.net", "eu-fleet.azure-devices.net",
    "EU-Fleet.AZURE-devices.NET"
};

#define FUZZ_POLICY_NHUBS  (sizeof(fuzz_policy_hubs) / sizeof(char *))


static const char  *fuzz_policy_paths[FUZZ_POLICY_NPATHS] = {
    "tags.location.city",
    "tags.owner",
    "tags.meta.secret.x",
    "properties.desired.telemetry.interval",
    "properties.desired.config",
    "properties.desired.config.admin",
    "properties.desired.a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v.w.x",
    "tags.*",
    "tags",
    "properties.reported.x"
};


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char                            *json, err[512];
    ngx_http_iothub_twin_policy_t   *policy;

    /* exactly the input's bytes: ASan sees a read past them */

    json = malloc(size ? size : 1);
    if (json == NULL) {
        return 0;
    }

    memcpy(json, data, size);

    memset(err, 'X', sizeof(err));

    policy = ngx_http_iothub_twin_policy_parse(FUZZ_POLICY_FILE, json, size,
                                               err, sizeof(err));

    if (policy == NULL) {
        fuzz_policy_error(err, sizeof(err), data, size);

    } else {
        fuzz_policy_check(policy, data, size);
        ngx_http_iothub_twin_policy_free(policy);
    }

    free(json);

    return 0;
}


static void
fuzz_policy_error(const char *err, size_t err_len, const uint8_t *data,
    size_t size)
{
    size_t        k;
    json_t       *root, *callers, *caller, *keys, *key;
    const char   *name, *slot, *v;

    fuzz_policy_check_text("error", err, err_len);

    if (strncmp(err, FUZZ_POLICY_FILE ": ", sizeof(FUZZ_POLICY_FILE ": ") - 1)
        != 0)
    {
        fuzz_policy_fail("error does not name the file", err);
    }

    /* no key value given in the file is in the message */

    root = json_loadb((const char *) data, size, 0, NULL);
    callers = json_object_get(root, "callers");

    json_object_foreach(callers, name, caller) {
        keys = json_object_get(caller, "keys");

        json_object_foreach(keys, slot, key) {
            if (!json_is_string(key)) {
                continue;
            }

            v = json_string_value(key);
            k = json_string_length(key);

            /* a value written only as this key, and shown */

            if (k >= 8 && memmem(err, strlen(err), v, k) != NULL
                && memmem(data, size, v, k) != NULL
                && memmem((const char *) memmem(data, size, v, k) + 1,
                          size - ((const uint8_t *) memmem(data, size, v, k)
                                  + 1 - data), v, k)
                   == NULL)
            {
                fuzz_policy_fail("error shows a key", err);
            }
        }
    }

    json_decref(root);
}


static void
fuzz_policy_check(const ngx_http_iothub_twin_policy_t *policy,
    const uint8_t *data, size_t size)
{
    size_t                                i, n, len, klen;
    unsigned                              slot;
    const char                           *name;
    const unsigned char                  *key;
    const ngx_http_iothub_twin_caller_t  *c;

    n = ngx_http_iothub_twin_policy_ncallers(policy);

    for (i = 0; i < n; i++) {
        c = ngx_http_iothub_twin_policy_caller_at(policy, i);

        if (c == NULL || ngx_http_iothub_twin_policy_caller_index(c) != i) {
            fuzz_policy_fail("caller index", NULL);
        }

        name = ngx_http_iothub_twin_policy_caller_name(c, &len);

        if (name == NULL || len == 0
            || len > NGX_HTTP_IOTHUB_TWIN_POLICY_NAME_MAX)
        {
            fuzz_policy_fail("caller name", name);
        }

        if (ngx_http_iothub_twin_policy_caller(policy,
                                               (const unsigned char *) name,
                                               len)
            != c)
        {
            fuzz_policy_fail("caller not found by its name", name);
        }

        for (slot = 0; slot < 2; slot++) {
            key = ngx_http_iothub_twin_policy_caller_key(c, slot, &klen);

            if (key != NULL
                && (klen == 0 || klen > NGX_HTTP_IOTHUB_TWIN_POLICY_KEY_MAX))
            {
                fuzz_policy_fail("caller key length", name);
            }
        }

        if (ngx_http_iothub_twin_policy_caller_nrules(c)
            > NGX_HTTP_IOTHUB_TWIN_POLICY_MAX_RULES)
        {
            fuzz_policy_fail("too many rules", name);
        }

        (void) ngx_http_iothub_twin_policy_caller_report(c);
        (void) ngx_http_iothub_twin_policy_caller_require_if_match(c);

        if (ngx_http_iothub_twin_policy_caller_max_body_size(c)
            > NGX_HTTP_IOTHUB_TWIN_POLICY_MAX_BODY)
        {
            fuzz_policy_fail("max_body_size over the limit", name);
        }

        fuzz_policy_decide(c);
    }

    if (ngx_http_iothub_twin_policy_caller_at(policy, n) != NULL) {
        fuzz_policy_fail("a caller past the end", NULL);
    }

    /* an unknown caller is refused */

    if (ngx_http_iothub_twin_policy_caller(policy,
                                           (const unsigned char *) "\x01", 1)
        != NULL)
    {
        fuzz_policy_fail("found a caller that cannot be named", NULL);
    }

    fuzz_policy_decide(NULL);

    fuzz_policy_check_hubs(policy, data, size);
}


/*
 * check_hubs() with every hub known, then with only those beginning with
 * 'e' known: the message must be the one for the first other hub of the
 * file, read here with jansson
 */

static void
fuzz_policy_check_hubs(const ngx_http_iothub_twin_policy_t *policy,
    const uint8_t *data, size_t size)
{
    int          rc, all, plain;
    char         err[512], want[512], tail[512];
    size_t       ri, j, k, len, tlen;
    json_t      *root, *callers, *caller, *rule, *hub;
    const char  *name, *h;

    static const char  suffix[] = "(not routed to by this location)";

    all = 1;

    if (ngx_http_iothub_twin_policy_check_hubs(policy, fuzz_policy_known,
                                               &all, suffix, err,
                                               sizeof(err))
        != 0)
    {
        fuzz_policy_fail("check_hubs with every hub known", err);
    }

    /*
     * The message names the first unknown hub: the file, the caller, the
     * rule and the hub.  A caller name that is short and plain is shown
     * as it is; a long one, or one with bytes to escape, as the loader's
     * messages show it, so only what surrounds it is compared.
     */

    want[0] = '\0';
    tail[0] = '\0';
    plain = 1;

    root = json_loadb((const char *) data, size, 0, NULL);
    callers = json_object_get(root, "callers");

    json_object_foreach(callers, name, caller) {
        json_array_foreach(json_object_get(caller, "rules"), ri, rule) {
            json_array_foreach(json_object_get(rule, "hubs"), j, hub) {
                h = json_string_value(hub);

                if (want[0] != '\0' || h[0] == 'e' || h[0] == 'E') {
                    continue;
                }

                snprintf(want, sizeof(want), FUZZ_POLICY_FILE ": caller"
                         " \"%s\": rules[%zu].hubs[%zu]: unknown hub"
                         " \"%s\" %s", name, ri, j, h, suffix);
                snprintf(tail, sizeof(tail), "\": rules[%zu].hubs[%zu]:"
                         " unknown hub \"%s\" %s", ri, j, h, suffix);

                len = strlen(name);
                plain = (len <= 64);

                for (k = 0; k < len; k++) {
                    if (name[k] < ' ' || name[k] > '~' || name[k] == '"'
                        || name[k] == '\\')
                    {
                        plain = 0;
                    }
                }
            }
        }
    }

    json_decref(root);

    all = 0;
    memset(err, 'X', sizeof(err));

    rc = ngx_http_iothub_twin_policy_check_hubs(policy, fuzz_policy_known,
                                                &all, suffix, err,
                                                sizeof(err));

    if (rc != (want[0] ? -1 : 0)) {
        fuzz_policy_fail("check_hubs verdict", want);
    }

    if (rc != 0) {
        fuzz_policy_check_text("check_hubs", err, sizeof(err));

        len = strlen(err);
        tlen = strlen(tail);

        if (plain ? strcmp(err, want) != 0
                  : (strncmp(err, FUZZ_POLICY_FILE ": caller \"",
                             sizeof(FUZZ_POLICY_FILE ": caller \"") - 1)
                     != 0
                     || len < tlen || strcmp(err + len - tlen, tail) != 0))
        {
            fuzz_policy_fail("check_hubs message", err);
        }
    }
}


/* every hub if *data, else those beginning with 'e'; each a host name */

static int
fuzz_policy_known(void *data, const unsigned char *name, size_t len)
{
    int     *all = data;
    size_t   i;

    if (len == 0 || len > NGX_HTTP_IOTHUB_TWIN_POLICY_HUB_MAX) {
        fuzz_policy_fail("check_hubs", "a hub's length");
    }

    for (i = 0; i < len; i++) {
        if (!((name[i] >= 'a' && name[i] <= 'z')
              || (name[i] >= 'A' && name[i] <= 'Z')
              || (name[i] >= '0' && name[i] <= '9')
              || name[i] == '-' || name[i] == '.'))
        {
            fuzz_policy_fail("check_hubs", "a hub that is no host name");
        }
    }

    return *all || name[0] == 'e' || name[0] == 'E';
}


static void
fuzz_policy_decide(const ngx_http_iothub_twin_caller_t *c)
{
    size_t                       i, h;
    fuzz_policy_said_t           said[FUZZ_POLICY_NHUBS];
    const fuzz_policy_target_t  *t;

    for (i = 0; i < sizeof(fuzz_policy_targets)
                    / sizeof(fuzz_policy_targets[0]); i++)
    {
        t = &fuzz_policy_targets[i];

        for (h = 0; h < FUZZ_POLICY_NHUBS; h++) {
            fuzz_policy_decide_hub(c, t, fuzz_policy_hubs[h], &said[h]);
        }

        /* no hub: the old entry point and target_hub() agree */

        if (memcmp(&said[0], &said[1], sizeof(fuzz_policy_said_t)) != 0) {
            fuzz_policy_fail("target_hub without a hub differs from target",
                             said[1].reason);
        }

        /* a hub adds the rules naming it to those of every hub */

        for (h = 2; h < FUZZ_POLICY_NHUBS; h++) {
            if (said[h].nrules < said[1].nrules) {
                fuzz_policy_fail("fewer rules for a hub than for none",
                                 fuzz_policy_hubs[h]);
            }
        }

        /* the case of a hub's name changes nothing but the reason's */

        if (said[3].rc != said[4].rc || said[3].nrules != said[4].nrules
            || memcmp(said[3].paths, said[4].paths, sizeof(said[3].paths))
               != 0
            || memcmp(said[3].reads, said[4].reads, sizeof(said[3].reads))
               != 0
            || strcasecmp(said[3].reason, said[4].reason) != 0)
        {
            fuzz_policy_fail("a hub in another case decides otherwise",
                             said[4].reason);
        }
    }
}


static int
fuzz_policy_target(ngx_http_iothub_twin_policy_decision_t *d,
    const ngx_http_iothub_twin_caller_t *c, const fuzz_policy_target_t *t,
    const char *hub)
{
    const char  *m;

    m = t->module;

    if (hub != NULL && hub[0] == '\0') {
        return ngx_http_iothub_twin_policy_target(d, c, t->op,
                 (const unsigned char *) t->device, strlen(t->device),
                 (const unsigned char *) m, m ? strlen(m) : 0);
    }

    return ngx_http_iothub_twin_policy_target_hub(d, c, t->op,
                 (const unsigned char *) hub, hub ? strlen(hub) : 0,
                 (const unsigned char *) t->device, strlen(t->device),
                 (const unsigned char *) m, m ? strlen(m) : 0);
}


static void
fuzz_policy_decide_hub(const ngx_http_iothub_twin_caller_t *c,
    const fuzz_policy_target_t *t, const char *hub, fuzz_policy_said_t *said)
{
    int                                      rc, prc;
    size_t                                   k;
    ngx_http_iothub_twin_policy_decision_t   d;

    memset(said, 0, sizeof(fuzz_policy_said_t));

    rc = fuzz_policy_target(&d, c, t, hub);

    fuzz_policy_check_text("reason", d.reason, sizeof(d.reason));
    fuzz_policy_check_text("path", d.path, sizeof(d.path));

    /* the reason's bytes only, not what follows its NUL */

    said->rc = rc;
    said->nrules = d.nrules;
    (void) snprintf(said->reason, sizeof(said->reason), "%s", d.reason);

    if ((rc == 0) != (d.allowed && d.target_ok)
        || (rc != 0 && d.reason[0] == '\0')
        || (c == NULL && rc == 0))
    {
        fuzz_policy_fail("target verdict", d.reason);
    }

    for (k = 0; k < sizeof(fuzz_policy_paths)
                    / sizeof(fuzz_policy_paths[0]); k++)
    {
        prc = ngx_http_iothub_twin_policy_path(&d,
                  (const unsigned char *) fuzz_policy_paths[k],
                  strlen(fuzz_policy_paths[k]), (int) (k & 1));

        said->paths[k] = prc;

        fuzz_policy_check_text("reason", d.reason, sizeof(d.reason));
        fuzz_policy_check_text("path", d.path, sizeof(d.path));

        if ((rc != 0 && prc == 0)
            || (prc != 0 && d.reason[0] == '\0')
            || (prc != 0 && d.allowed))
        {
            fuzz_policy_fail("path verdict", fuzz_policy_paths[k]);
        }
    }

    fuzz_policy_reads(&d, c, t, hub, rc == 0, said);
}


static void
fuzz_policy_reads(ngx_http_iothub_twin_policy_decision_t *d,
    const ngx_http_iothub_twin_caller_t *c, const fuzz_policy_target_t *t,
    const char *hub, int allowed, fuzz_policy_said_t *said)
{
    int                                     *v;
    int                                      fresh_v, all;
    size_t                                   i, k, len;
    const char                              *p;
    ngx_http_iothub_twin_policy_decision_t   fresh;

    v = said->reads;
    all = ngx_http_iothub_twin_policy_read_all(d);

    if (all && !allowed) {
        fuzz_policy_fail("read_all", "after a refused target");
    }

    for (i = 0; i < sizeof(fuzz_policy_nodes) / sizeof(char *); i++) {
        p = fuzz_policy_nodes[i];
        len = strlen(p);

        /* a written path between reads, as a PATCH's answer has them */

        k = i % (sizeof(fuzz_policy_paths) / sizeof(fuzz_policy_paths[0]));
        (void) ngx_http_iothub_twin_policy_path(d,
                      (const unsigned char *) fuzz_policy_paths[k],
                      strlen(fuzz_policy_paths[k]), 0);

        v[i] = ngx_http_iothub_twin_policy_read(d, (const unsigned char *) p,
                                                len);

        (void) fuzz_policy_target(&fresh, c, t, hub);
        fresh_v = ngx_http_iothub_twin_policy_read(&fresh,
                                                (const unsigned char *) p,
                                                len);

        if (v[i] != fresh_v
            || (v[i] != NGX_HTTP_IOTHUB_TWIN_READ_NONE
                && v[i] != NGX_HTTP_IOTHUB_TWIN_READ_ALL
                && v[i] != NGX_HTTP_IOTHUB_TWIN_READ_SOME)
            || (!allowed && v[i] != NGX_HTTP_IOTHUB_TWIN_READ_NONE)
            || (allowed && (i == 1 || i == 2)
                && v[i] != NGX_HTTP_IOTHUB_TWIN_READ_ALL)
            || (all && v[i] != NGX_HTTP_IOTHUB_TWIN_READ_ALL)
            || (fuzz_policy_parents[i] > 0
                && v[fuzz_policy_parents[i] - 1]
                   == NGX_HTTP_IOTHUB_TWIN_READ_ALL
                && v[i] != NGX_HTTP_IOTHUB_TWIN_READ_ALL))
        {
            fuzz_policy_fail("read verdict", p);
        }
    }
}


static void
fuzz_policy_check_text(const char *what, const char *s, size_t size)
{
    size_t  i;

    for (i = 0; i < size && s[i] != '\0'; i++) {
        if (s[i] < 0x20 || s[i] > 0x7e) {
            fuzz_policy_fail(what, "holds a byte outside printable ASCII");
        }
    }

    if (i == size) {
        fuzz_policy_fail(what, "not NUL-terminated");
    }
}


static void
fuzz_policy_fail(const char *what, const char *detail)
{
    fprintf(stderr, "%s: %.400s\n", what, detail ? detail : "");
    abort();
}
