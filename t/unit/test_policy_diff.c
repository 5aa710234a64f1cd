
/*
 * Copyright (C) ngx_iothub_twin developers
 *
 * Differential test of the policy matcher: random policies (exact, prefix
 * and glob IDs, escapes, system modules, "*", "**", literal "*" keys,
 * deny, report mode, many rules) are loaded by the policy loader and also
 * built directly for the reference matcher of test_policy_ref.h (the
 * matcher before compilation); random targets and sequences of written
 * paths (deletes, document order, shared prefixes, invalid paths) must
 * get the same verdicts, the same deny entries named, from both.  Read
 * scopes too: random "read" lists (or none, the default), denies of the
 * three sections, and sequences of a twin's nodes, with written paths
 * between them on the same decision, get the verdicts of ref_read().
 * Hubs too: random "hubs" lists (any case) on a third of the rules,
 * and decisions for a hub (any case, or one no rule names, or none) leave
 * out what ref_applies() leaves out, and name the hub when they refuse
 * because of it.  Hubs have a random sequence of their own, so that the
 * rest is what it was without them.
 *
 * SEED=<n> in the environment picks another sequence; ROUNDS=<n> more
 * policies.
 */


#include <stdarg.h>
#include <stdlib.h>

#include "tap.h"
#include "test_policy_ref.h"
#include "ngx_http_iothub_twin_policy.h"


#define DIFF_CALLERS    3
#define DIFF_MAX_RULES  70
#define DIFF_WORDS      ((DIFF_MAX_RULES + 63) / 64)
#define DIFF_SHOWN      20


typedef ngx_http_iothub_twin_policy_decision_t  decision_t;


/* one atom of a pattern: its JSON text, its byte, whether a wildcard */

typedef struct {
    const char     *json;
    unsigned char   byte;
    int             wild;
} diff_atom_t;


/* one atom of a path pattern segment, or a whole segment */

typedef struct {
    const char     *json;
    const char     *key;      /* what it matches literally */
    int             any;      /* the segment "*" */
} diff_seg_atom_t;


typedef struct {
    ref_rule_t      rules[DIFF_MAX_RULES];
    size_t          nrules;
    int             report;
} diff_caller_t;


static void diff_json(const char *fmt, ...)
    __attribute__ ((format (printf, 1, 2)));
static uint32_t diff_rand(void);
static size_t diff_below(size_t n);
static void diff_policy(void);
static void diff_rule(ref_rule_t *r);
static void diff_ids(ref_id_t **list, uint32_t *n, int modules,
    unsigned *device_twin);
static void diff_id(ref_id_t *id, int modules);
static void diff_paths(ref_rule_t *r, const char *field, int deny);
static void diff_reads(ref_rule_t *r);
static void diff_hubs(ref_rule_t *r);
static size_t diff_hub_below(size_t n);
static void diff_random_hub(char *buf, const char *name, size_t len);
static void diff_read(ref_path_t *pp);
static void diff_read_nodes(decision_t *d, const diff_caller_t *dc,
    const uint64_t *matched, const uint64_t *everywhere, int target_ok,
    char (*paths)[64], size_t npaths, const char *name);
static void diff_random_node(char *buf, const char *prev);
static int diff_ref_read(const diff_caller_t *dc, const uint64_t *matched,
    const char *path);
static void diff_path(ref_path_t *pp, int deny, unsigned *section);
static void *diff_pool(size_t size);
static void diff_decide(const ngx_http_iothub_twin_caller_t *c,
    const diff_caller_t *dc, const char *name);
static void diff_random_id(char *buf, int module);
static void diff_instance(char *buf, const ref_id_t *id);
static void diff_random_path(char *buf, const char *prev);
static int diff_ref_path(const diff_caller_t *dc, const uint64_t *matched,
    const char *path, size_t *ri, size_t *di);
static void diff_mismatch(const char *fmt, ...)
    __attribute__ ((format (printf, 1, 2)));


static const diff_atom_t  diff_id_atoms[] = {
    { "d", 'd', 0 }, { "1", '1', 0 }, { "x", 'x', 0 }, { "#", '#', 0 },
    { "*", '*', 1 }, { "?", '?', 1 }, { "*", '*', 1 },
    { "\\\\*", '*', 0 }, { "\\\\?", '?', 0 }
};

static const diff_seg_atom_t  diff_seg_atoms[] = {
    { "a", "a", 0 }, { "b", "b", 0 }, { "c", "c", 0 }, { "*", NULL, 1 },
    { "*", NULL, 1 }, { "\\\\*", "*", 0 }, { "\\\\*\\\\*", "**", 0 },
    { "a\\\\*", "a*", 0 }, { "a*", "a*", 0 }, { "\\\\\\\\", "\\", 0 }
};

static const char *const  diff_keys[] = {
    "a", "b", "c", "*", "**", "a*", "\\", "d"
};

static const char *const  diff_id_chars = "d1x*?#";

/* the hubs rules name; the last one none does */
static const char *const  diff_hub_names[] = {
    "eu-fleet.azure-devices.net", "us-fleet.azure-devices.net", "h-3", "a",
    "eu-fleet.azure-devices.ne"
};

#define DIFF_HUBS_NAMED  4


static char            diff_text[1 << 20];
static size_t          diff_len;
static uint32_t        diff_state;
static uint32_t        diff_hub_state;
static unsigned char   diff_mem[1 << 22];
static size_t          diff_used;
static diff_caller_t   diff_callers[DIFF_CALLERS];

static unsigned long   diff_ndecisions, ndiff_paths, diff_nmismatch;
static unsigned long   diff_counts[5];   /* allowed, uncovered, denied, .. */
static unsigned long   diff_nnodes, diff_nread_all, diff_nnodes_refused;
static unsigned long   diff_read_counts[3];   /* NONE, ALL, SOME */

/*
 * decisions that left rules out for their hubs, and of them those
 * refused; paths and nodes whose verdict those rules would have changed
 */
static unsigned long   diff_nleft_out, diff_nleft_refused;
static unsigned long   diff_nhub_paths, diff_nhub_nodes;


int
main(void)
{
    char           *env;
    size_t          i, rounds;
    unsigned long   checked;

    env = getenv("SEED");
    diff_state = env ? (uint32_t) strtoul(env, NULL, 10) : 20261129;

    if (diff_state == 0) {
        diff_state = 1;
    }

    diff_hub_state = diff_state ^ 0x9e3779b9;

    if (diff_hub_state == 0) {
        diff_hub_state = 1;
    }

    env = getenv("ROUNDS");
    rounds = env ? strtoul(env, NULL, 10) : 3000;

    for (i = 0; i < rounds; i++) {
        diff_policy();
    }

    printf("# %lu policies, %lu decisions, %lu paths: %lu allowed,"
           " %lu uncovered, %lu denied, %lu after a refused target or a"
           " read, %lu not writable paths\n",
           (unsigned long) rounds, diff_ndecisions, ndiff_paths,
           diff_counts[0], diff_counts[1], diff_counts[2], diff_counts[3],
           diff_counts[4]);

    /* tap.h's string comparison is not needed here */
    (void) tap_is_str;

    printf("# %lu nodes read after an allowed target: %lu NONE, %lu ALL,"
           " %lu SOME; %lu after a refused one; %lu decisions read the"
           " whole twin\n", diff_nnodes, diff_read_counts[0],
           diff_read_counts[1], diff_read_counts[2], diff_nnodes_refused,
           diff_nread_all);

    tap_ok(diff_nmismatch == 0, "%s",
           "the compiled matcher agrees with the reference on every"
           " target, path and node read");

    /*
     * A test that could not fail would prove nothing.  Of the paths
     * compared with the reference (after an allowed target of an update
     * or replace), each verdict makes a tenth or more.
     */

    checked = diff_counts[0] + diff_counts[1] + diff_counts[2]
              + diff_counts[4];

    tap_ok(diff_counts[0] > checked / 10
           && diff_counts[1] > checked / 10
           && diff_counts[2] > checked / 10, "%s",
           "allowed, uncovered and denied paths each make 10% or more of"
           " those compared");

    printf("# %lu decisions left rules out for their hubs, %lu of them"
           " refused the target; that changed the verdict of %lu paths and"
           " %lu nodes read\n", diff_nleft_out, diff_nleft_refused,
           diff_nhub_paths, diff_nhub_nodes);

    tap_ok(diff_nleft_out > diff_ndecisions / 20
           && diff_nleft_refused > diff_nleft_out / 20
           && diff_nleft_refused < diff_nleft_out
           && diff_nhub_paths > checked / 200
           && diff_nhub_nodes > diff_nnodes / 200, "%s",
           "rules left out for their hubs in 5% of the decisions or more,"
           " some of those refused, some allowed; that changed 0.5% or"
           " more of the paths and of the nodes compared");

    tap_ok(diff_read_counts[0] > diff_nnodes / 20
           && diff_read_counts[1] > diff_nnodes / 20
           && diff_read_counts[2] > diff_nnodes / 20
           && diff_nread_all > 0, "%s",
           "NONE, ALL and SOME nodes each make 5% or more, and some"
           " decisions read the whole twin");

    return tap_done();
}


static void
diff_json(const char *fmt, ...)
{
    int      n;
    va_list  args;

    va_start(args, fmt);
    n = vsnprintf(diff_text + diff_len, sizeof(diff_text) - diff_len, fmt,
                  args);
    va_end(args);

    if (n < 0 || (size_t) n >= sizeof(diff_text) - diff_len) {
        fprintf(stderr, "test_policy_diff: JSON buffer too small\n");
        exit(2);
    }

    diff_len += n;
}


/* xorshift32: the same sequence on every machine */

static uint32_t
diff_rand(void)
{
    diff_state ^= diff_state << 13;
    diff_state ^= diff_state >> 17;
    diff_state ^= diff_state << 5;

    return diff_state;
}


static size_t
diff_below(size_t n)
{
    return diff_rand() % n;
}


/* the same, from the hubs' own sequence */

static size_t
diff_hub_below(size_t n)
{
    diff_hub_state ^= diff_hub_state << 13;
    diff_hub_state ^= diff_hub_state >> 17;
    diff_hub_state ^= diff_hub_state << 5;

    return diff_hub_state % n;
}


static void *
diff_pool(size_t size)
{
    void  *p;

    size = (size + 15) & ~(size_t) 15;

    if (diff_used + size > sizeof(diff_mem)) {
        fprintf(stderr, "test_policy_diff: pool too small\n");
        exit(2);
    }

    p = diff_mem + diff_used;
    diff_used += size;
    memset(p, 0, size);

    return p;
}


/* three callers; the third has the first one's rules (shared automata) */

static void
diff_policy(void)
{
    char                                  err[512], name[8];
    size_t                                c, i, k, rules_start, rules_end;
    ngx_http_iothub_twin_policy_t        *p;
    const ngx_http_iothub_twin_caller_t  *caller;

    diff_len = 0;
    diff_used = 0;
    rules_start = 0;
    rules_end = 0;

    diff_json("{\"callers\":{");

    for (c = 0; c < DIFF_CALLERS; c++) {
        diff_callers[c].report = (diff_below(4) == 0);

        diff_json("%s\"c%zu\":{\"mode\":\"%s\",\"rules\":[", c ? "," : "",
                  c, diff_callers[c].report ? "report" : "enforce");

        if (c == DIFF_CALLERS - 1) {

            /* replay the first caller's rules: same text, same structs */

            diff_callers[c].nrules = diff_callers[0].nrules;
            memcpy(diff_callers[c].rules, diff_callers[0].rules,
                   sizeof(diff_callers[0].rules));

            diff_json("%.*s", (int) (rules_end - rules_start),
                      diff_text + rules_start);

        } else {
            k = diff_len;
            diff_callers[c].nrules = (diff_below(20) == 0)
                                     ? DIFF_MAX_RULES : 1 + diff_below(6);

            for (i = 0; i < diff_callers[c].nrules; i++) {
                if (i) {
                    diff_json(",");
                }

                diff_rule(&diff_callers[c].rules[i]);
            }

            if (c == 0) {
                rules_start = k;
                rules_end = diff_len;
            }
        }

        diff_json("]}");
    }

    diff_json("}}");

    p = ngx_http_iothub_twin_policy_parse("diff.json", diff_text, diff_len,
                                          err, sizeof(err));

    if (p == NULL) {
        diff_mismatch("the policy does not load: %s\n#   %.*s", err,
                      (int) diff_len, diff_text);
        return;
    }

    for (c = 0; c < DIFF_CALLERS; c++) {
        snprintf(name, sizeof(name), "c%zu", c);
        caller = ngx_http_iothub_twin_policy_caller(p,
                                           (const unsigned char *) name,
                                           strlen(name));

        for (i = 0; i < 10; i++) {
            diff_decide(caller, &diff_callers[c], name);
        }
    }

    ngx_http_iothub_twin_policy_free(p);
}


static void
diff_rule(ref_rule_t *r)
{
    int           op, any;
    static const char *const  ops[] = { NULL, "read", "update", "replace" };

    memset(r, 0, sizeof(ref_rule_t));

    diff_json("{\"operations\":[");

    any = 0;

    for (op = 1; op <= 3; op++) {
        if (diff_below(2) || (op == 3 && !any)) {
            diff_json("%s\"%s\"", any ? "," : "", ops[op]);
            r->ops |= 1u << op;
            any = 1;
        }
    }

    diff_json("],\"devices\":[");
    diff_ids(&r->devices, &r->ndevices, 0, NULL);
    diff_json("]");

    if (diff_below(2)) {
        diff_json(",\"modules\":[");
        diff_ids(&r->modules, &r->nmodules, 1, &r->device_twin);
        diff_json("]");

    } else {
        r->device_twin = 1;
    }

    diff_paths(r, "tags", 0);
    diff_paths(r, "desired", 0);
    diff_paths(r, "deny", 1);
    diff_reads(r);
    diff_hubs(r);

    diff_json("}");
}


/* on a third of the rules, 1 to 3 of the named hubs, each in any case */

static void
diff_hubs(ref_rule_t *r)
{
    char           *buf;
    size_t          i, k, count, pick[3];

    if (diff_hub_below(3) != 0) {
        return;
    }

    count = 1 + diff_hub_below(3);
    r->hubs = diff_pool(count * sizeof(ref_key_t));

    diff_json(",\"hubs\":[");

    for (i = 0; i < count; i++) {

        /* each once: a hub listed twice is a load error */

        do {
            pick[i] = diff_hub_below(DIFF_HUBS_NAMED);

            for (k = 0; k < i && pick[k] != pick[i]; k++) { /* void */ }

        } while (k < i);

        buf = diff_pool(64);
        diff_random_hub(buf, diff_hub_names[pick[i]],
                        strlen(diff_hub_names[pick[i]]));

        diff_json("%s\"%s\"", i ? "," : "", buf);

        r->hubs[r->nhubs].data = (const unsigned char *) buf;
        r->hubs[r->nhubs].len = strlen(buf);
        r->nhubs++;
    }

    diff_json("]");
}


/* a hub's name, its letters in random case */

static void
diff_random_hub(char *buf, const char *name, size_t len)
{
    size_t  k;

    for (k = 0; k < len; k++) {
        buf[k] = name[k];

        if (name[k] >= 'a' && name[k] <= 'z' && diff_hub_below(4) == 0) {
            buf[k] = (char) (name[k] - 'a' + 'A');

        } else if (name[k] >= 'A' && name[k] <= 'Z'
                   && diff_hub_below(4) == 0)
        {
            buf[k] = (char) (name[k] - 'A' + 'a');
        }
    }

    buf[k] = '\0';
}


static void
diff_ids(ref_id_t **list, uint32_t *n, int modules, unsigned *device_twin)
{
    size_t  i, count;

    count = 1 + diff_below(3);
    *list = diff_pool(count * sizeof(ref_id_t));
    *n = 0;

    for (i = 0; i < count; i++) {
        if (i) {
            diff_json(",");
        }

        if (modules && diff_below(4) == 0) {
            diff_json("\"\"");
            *device_twin = 1;
            continue;
        }

        diff_id(&(*list)[(*n)++], modules);
    }
}


/* the reference's own reading of a pattern made of atoms */

static void
diff_id(ref_id_t *id, int modules)
{
    size_t              i, n, wild;
    unsigned char      *data, lit0, last_wild_run;
    const diff_atom_t  *a;

    n = 1 + diff_below(4);
    wild = 0;

    diff_json("\"");

    data = diff_pool(8);
    i = 0;

    if (modules && diff_below(4) == 0) {
        diff_json("$");
        data[i++] = '$';
    }

    lit0 = (i > 0);
    last_wild_run = 0;

    for (n += i; i < n; i++) {
        a = &diff_id_atoms[diff_below(sizeof(diff_id_atoms)
                                      / sizeof(diff_id_atoms[0]))];
        diff_json("%s", a->json);

        if (i == 0) {
            lit0 = !a->wild;
        }

        data[i] = a->byte;

        if (a->wild) {
            wild++;
            data[i] = (a->byte == '*') ? REF_ANY_RUN : REF_ANY_ONE;
        }

        last_wild_run = (a->wild && a->byte == '*');
    }

    diff_json("\"");

    id->data = data;
    id->len = (uint32_t) n;
    id->system = (data[0] == '$');
    id->first = lit0 ? data[0] : '\0';

    if (wild == 0) {
        id->kind = REF_EXACT;

    } else if (wild == 1 && last_wild_run) {
        id->kind = REF_PREFIX;
        id->len--;

    } else {
        id->kind = REF_GLOB;
    }
}


static void
diff_paths(ref_rule_t *r, const char *field, int deny)
{
    size_t       i, count;
    unsigned     s;
    ref_path_t   pp;

    count = diff_below(4);

    if (count == 0 && diff_below(2)) {
        return;
    }

    diff_json(",\"%s\":[", field);

    if (!deny) {
        s = (field[0] == 't') ? 0 : 1;
        r->allow[s] = diff_pool((count + 1) * sizeof(ref_path_t));

    } else {
        for (s = 0; s < 3; s++) {
            r->deny[s] = diff_pool((count + 1) * sizeof(ref_path_t));
        }
    }

    for (i = 0; i < count; i++) {
        if (i) {
            diff_json(",");
        }

        s = (field[0] == 't') ? 0 : 1;
        diff_path(&pp, deny, &s);
        pp.index = (uint16_t) i;

        if (deny) {
            r->deny[s][r->ndeny[s]++] = pp;

        } else {
            r->allow[s][r->nallow[s]++] = pp;
        }
    }

    diff_json("]");
}


static void
diff_path(ref_path_t *pp, int deny, unsigned *section)
{
    size_t                  i, n;
    const diff_seg_atom_t  *a;

    diff_json("\"");

    static const char *const  prefixes[] = {
        "tags.", "properties.desired.", "properties.reported."
    };

    if (deny) {
        *section = diff_below(3);
        diff_json("%s", prefixes[*section]);
    }

    n = diff_below(4);
    pp->segs = diff_pool((n + 1) * sizeof(ref_seg_t));
    pp->nsegs = 0;
    pp->rest = 0;

    for (i = 0; i < n; i++) {
        a = &diff_seg_atoms[diff_below(sizeof(diff_seg_atoms)
                                       / sizeof(diff_seg_atoms[0]))];
        diff_json("%s%s", i ? "." : "", a->json);

        pp->segs[i].any = a->any;
        pp->segs[i].data = (const unsigned char *) a->key;
        pp->segs[i].len = a->key ? (uint32_t) strlen(a->key) : 0;
        pp->nsegs++;
    }

    if (n == 0 || diff_below(3) == 0) {
        diff_json("%s**", n ? "." : "");
        pp->rest = 1;
    }

    diff_json("\"");
}


/* one target and a sequence of paths, both matchers */

static void
diff_decide(const ngx_http_iothub_twin_caller_t *c, const diff_caller_t *dc,
    const char *name)
{
    int           op, rc, want, kind, covered, first, target_rc, left;
    char          device[32], module[32], paths[8][64], expect[300];
    char          hub_buf[64], hub_expect[100];
    char          target_reason[256];
    size_t        i, k, n, ri, di, eri, edi, nrules;
    uint64_t      matched[DIFF_WORDS], everywhere[DIFF_WORDS];
    unsigned      s;
    decision_t    d;
    const char   *mod, *hub;
    const ref_rule_t  *r;

    diff_ndecisions++;

    r = NULL;

    op = 1 + diff_below(3);
    diff_random_id(device, 0);
    mod = NULL;

    if (diff_below(2)) {
        diff_random_id(module, 1);
        mod = module;
    }

    /* mostly a twin some rule covers, with one of its operations */

    if (diff_below(4) != 0) {
        r = &dc->rules[diff_below(dc->nrules)];

        diff_instance(device, &r->devices[diff_below(r->ndevices)]);

        if (r->nmodules > 0 && (!r->device_twin || diff_below(2))) {
            diff_instance(module, &r->modules[diff_below(r->nmodules)]);
            mod = module;

        } else if (r->device_twin) {
            mod = NULL;
        }

        if (diff_below(4) != 0) {
            do {
                op = 1 + diff_below(3);
            } while (!(r->ops & (1u << op)));
        }

    }

    /*
     * mostly one of the hubs of that rule if it names some, else one of
     * the hubs rules name, one none does, or none; each in any case
     */

    hub = hub_buf;

    if (r != NULL && r->nhubs > 0 && diff_hub_below(4) != 0) {
        k = diff_hub_below(r->nhubs);
        diff_random_hub(hub_buf, (const char *) r->hubs[k].data,
                        r->hubs[k].len);

    } else if (diff_hub_below(8) != 0) {
        k = diff_hub_below(sizeof(diff_hub_names)
                           / sizeof(diff_hub_names[0]));
        diff_random_hub(hub_buf, diff_hub_names[k],
                        strlen(diff_hub_names[k]));

    } else {
        hub = NULL;
    }

    if (hub == NULL && diff_hub_below(2)) {
        rc = ngx_http_iothub_twin_policy_target(&d, c, op,
                                   (const unsigned char *) device,
                                   strlen(device),
                                   (const unsigned char *) mod,
                                   mod ? strlen(mod) : 0);

    } else {
        rc = ngx_http_iothub_twin_policy_target_hub(&d, c, op,
                                   (const unsigned char *) hub,
                                   hub ? strlen(hub) : 0,
                                   (const unsigned char *) device,
                                   strlen(device),
                                   (const unsigned char *) mod,
                                   mod ? strlen(mod) : 0);
    }

    /* the reference */

    memset(matched, 0, sizeof(matched));
    memset(everywhere, 0, sizeof(everywhere));
    nrules = 0;
    covered = 0;
    left = 0;

    for (i = 0; i < dc->nrules; i++) {
        if (!ref_covers(&dc->rules[i], (const unsigned char *) device,
                        strlen(device), (const unsigned char *) mod,
                        mod ? strlen(mod) : 0))
        {
            continue;
        }

        covered = 1;

        /* what the decision would be if hubs did not exist */

        if (dc->rules[i].ops & (1u << op)) {
            everywhere[i / 64] |= (uint64_t) 1 << (i % 64);
        }

        if (!ref_applies(&dc->rules[i], (const unsigned char *) hub,
                         hub ? strlen(hub) : 0))
        {
            left = 1;
            continue;
        }

        if (dc->rules[i].ops & (1u << op)) {
            matched[i / 64] |= (uint64_t) 1 << (i % 64);
            nrules++;
        }
    }

    want = 0;
    expect[0] = '\0';

    if (nrules == 0) {
        want = -1;
        snprintf(expect, sizeof(expect), "%s",
                 covered ? "is not allowed on" : "is not covered by any rule");

    } else if (op == NGX_HTTP_IOTHUB_TWIN_OP_REPLACE) {
        for (s = 0; s < 2 && want == 0; s++) {
            kind = ref_check(dc->rules, dc->nrules, matched, s, NULL, 0, &ri,
                             &di);

            if (kind == REF_DENIED) {
                want = -1;
                snprintf(expect, sizeof(expect), "%s is partly denied by"
                         " rules[%zu].deny[%zu]",
                         s ? "properties.desired" : "tags", ri, di);

            } else if (kind == REF_UNCOVERED) {
                want = -1;
                snprintf(expect, sizeof(expect), "%s is not writable as a"
                         " whole", s ? "properties.desired" : "tags");
            }
        }
    }

    target_rc = rc;
    snprintf(target_reason, sizeof(target_reason), "%s", d.reason);

    /* a refused target names the hub if rules were left out for it */

    snprintf(hub_expect, sizeof(hub_expect), "%s%s",
             hub ? " on hub " : " without a hub", hub ? hub : "");

    diff_nleft_out += left;
    diff_nleft_refused += (left && want != 0);

    if (rc != want || d.nrules != nrules
        || (want != 0 && strstr(d.reason, expect) == NULL)
        || (want != 0 && left && strstr(d.reason, hub_expect) == NULL)
        || (want != 0 && !left && strstr(d.reason, " hub") != NULL)
        || d.report != (unsigned) dc->report)
    {
        diff_mismatch("caller %s op %d device \"%s\" module \"%s\" hub"
                      " \"%s\": rc %d (want %d), %u rules (want %zu),"
                      " reason \"%s\" (want \"%s\"%s%s)", name, op, device,
                      mod ? mod : "-", hub ? hub : "-", rc, want, d.nrules,
                      nrules, d.reason, expect, left ? " and " : "",
                      left ? hub_expect : "");
        return;
    }

    /* paths: often each derived from the one before, as in a document */

    n = 1 + diff_below(8);

    for (i = 0; i < n; i++) {
        diff_random_path(paths[i], i ? paths[i - 1] : NULL);
    }

    if (diff_below(2)) {
        for (i = 1; i < n; i++) {
            for (k = i; k > 0 && strcmp(paths[k - 1], paths[k]) > 0; k--) {
                char  t[64];

                memcpy(t, paths[k], sizeof(t));
                memcpy(paths[k], paths[k - 1], sizeof(t));
                memcpy(paths[k - 1], t, sizeof(t));
            }
        }
    }

    for (i = 0; i < n; i++) {
        ndiff_paths++;
        first = (d.nrefused == 0);

        rc = ngx_http_iothub_twin_policy_path(&d,
                                   (const unsigned char *) paths[i],
                                   strlen(paths[i]), (int) diff_below(2));

        if (target_rc != 0 || op == NGX_HTTP_IOTHUB_TWIN_OP_READ) {
            kind = 3;

        } else {
            kind = diff_ref_path(dc, matched, paths[i], &ri, &di);

            diff_nhub_paths += (left && diff_ref_path(dc, everywhere,
                                                      paths[i], &eri, &edi)
                                        != kind);
        }

        diff_counts[kind]++;

        want = (kind == REF_ALLOWED) ? 0 : -1;
        expect[0] = '\0';

        if (first && want != 0) {
            switch (kind) {

            case REF_DENIED:
                snprintf(expect, sizeof(expect), "denied to caller %s by"
                         " rules[%zu].deny[%zu]", name, ri, di);
                break;

            case REF_UNCOVERED:
                snprintf(expect, sizeof(expect), "not writable by caller %s",
                         name);
                break;

            case 4:
                snprintf(expect, sizeof(expect), "not a writable path");
                break;

            default:
                snprintf(expect, sizeof(expect), "%s",
                         target_rc ? target_reason
                                   : "operation read writes no paths");
                break;
            }
        }

        if (rc != want || d.allowed != (want == 0 && d.nrefused == 0)
            || (expect[0] && strstr(d.reason, expect) == NULL))
        {
            diff_mismatch("caller %s op %d device \"%s\" module \"%s\", path"
                          " %zu \"%s\": rc %d (want %d), reason \"%s\""
                          " (want \"%s\")", name, op, device,
                          mod ? mod : "-", i, paths[i], rc, want, d.reason,
                          expect);
            return;
        }
    }

    diff_read_nodes(&d, dc, matched, left ? everywhere : NULL,
                    target_rc == 0 && op != NGX_HTTP_IOTHUB_TWIN_OP_READ
                    ? 2 : (target_rc == 0), paths, n, name);
}


/*
 * The twin's nodes, often in document order, on the decision that wrote
 * the paths, some of them written again in between (target_ok 2: with
 * the verdicts of writes checked).
 */

/* everywhere: the rules matched if hubs did not exist, NULL if the same */

static void
diff_read_nodes(decision_t *d, const diff_caller_t *dc,
    const uint64_t *matched, const uint64_t *everywhere, int target_ok,
    char (*paths)[64], size_t npaths, const char *name)
{
    int     rc, want, kind, all;
    char    nodes[16][64], t[64];
    size_t  i, k, n, ri, di;

    n = 1 + diff_below(16);

    for (i = 0; i < n; i++) {
        diff_random_node(nodes[i], i ? nodes[i - 1] : NULL);
    }

    if (diff_below(3) != 0) {
        for (i = 1; i < n; i++) {
            for (k = i; k > 0 && strcmp(nodes[k - 1], nodes[k]) > 0; k--) {
                memcpy(t, nodes[k], sizeof(t));
                memcpy(nodes[k], nodes[k - 1], sizeof(t));
                memcpy(nodes[k - 1], t, sizeof(t));
            }
        }
    }

    for (i = 0; i < n; i++) {
        if (diff_below(4) == 0) {
            k = diff_below(npaths);
            rc = ngx_http_iothub_twin_policy_path(d,
                                   (const unsigned char *) paths[k],
                                   strlen(paths[k]), 0);

            if (target_ok == 2) {
                kind = diff_ref_path(dc, matched, paths[k], &ri, &di);
                want = (kind == REF_ALLOWED) ? 0 : -1;

                if (rc != want) {
                    diff_mismatch("caller %s: write \"%s\" between reads:"
                                  " rc %d (want %d)", name, paths[k], rc,
                                  want);
                    return;
                }
            }
        }

        rc = ngx_http_iothub_twin_policy_read(d,
                                   (const unsigned char *) nodes[i],
                                   strlen(nodes[i]));
        want = target_ok ? diff_ref_read(dc, matched, nodes[i])
                         : REF_READ_NONE;

        if (target_ok) {
            diff_nnodes++;
            diff_read_counts[want]++;

            diff_nhub_nodes += (everywhere != NULL
                                && diff_ref_read(dc, everywhere, nodes[i])
                                   != want);

        } else {
            diff_nnodes_refused++;
        }

        if (rc != want) {
            diff_mismatch("caller %s op %d, node %zu \"%s\": verdict %d"
                          " (want %d)", name, d->op, i, nodes[i], rc, want);
            return;
        }
    }

    all = target_ok && diff_ref_read(dc, matched, "") == REF_READ_ALL;
    diff_nread_all += all;

    if (ngx_http_iothub_twin_policy_read_all(d) != all) {
        diff_mismatch("caller %s op %d: read_all %d (want %d)", name, d->op,
                      !all, all);
    }
}


/* the reference's verdict on a node's path ("" the twin itself) */

static int
diff_ref_read(const diff_caller_t *dc, const uint64_t *matched,
    const char *path)
{
    size_t       n;
    ref_key_t    keys[64];
    const char  *p, *dot;

    n = 0;

    for (p = path; *path != '\0' && n < 64; p = dot + 1) {
        dot = strchr(p, '.');

        keys[n].data = (const unsigned char *) p;
        keys[n].len = dot ? (size_t) (dot - p) : strlen(p);
        n++;

        if (dot == NULL) {
            break;
        }
    }

    return ref_read(dc->rules, dc->nrules, matched, keys, n);
}


/* "read" of 0 to 3 patterns, or none for the default */

static void
diff_reads(ref_rule_t *r)
{
    size_t  i, count;

    if (diff_below(3) == 0) {
        return;
    }

    count = diff_below(4);

    r->read_given = 1;
    r->read = diff_pool((count + 1) * sizeof(ref_path_t));

    diff_json(",\"read\":[");

    for (i = 0; i < count; i++) {
        if (i) {
            diff_json(",");
        }

        diff_read(&r->read[r->nread++]);
    }

    diff_json("]");
}


/* a read pattern and the reference's whole path for it */

static void
diff_read(ref_path_t *pp)
{
    size_t                  i, n, base;
    const char             *name;
    const diff_seg_atom_t  *a;

    static const char *const  tops[] = {
        "status", "modelId", "capabilities", "tags", "properties",
        "deviceId"
    };

    static const char *const  bases[][2] = {
        { "tags", NULL }, { "properties", "desired" },
        { "properties", "reported" }, { "properties", NULL }
    };

    pp->segs = diff_pool(8 * sizeof(ref_seg_t));
    pp->nsegs = 0;
    pp->rest = 0;

    diff_json("\"");

    switch (diff_below(8)) {

    case 0:
        diff_json("**");
        pp->rest = 1;
        break;

    case 1:
        name = tops[diff_below(sizeof(tops) / sizeof(tops[0]))];
        diff_json("%s", name);
        pp->segs[0].data = (const unsigned char *) name;
        pp->segs[0].len = (uint32_t) strlen(name);
        pp->nsegs = 1;
        break;

    default:
        base = diff_below(4);

        for (i = 0; i < 2 && bases[base][i]; i++) {
            diff_json("%s%s", i ? "." : "", bases[base][i]);
            pp->segs[i].data = (const unsigned char *) bases[base][i];
            pp->segs[i].len = (uint32_t) strlen(bases[base][i]);
            pp->nsegs++;
        }

        n = (base == 3) ? 0 : diff_below(4);

        for (i = 0; i < n; i++) {
            a = &diff_seg_atoms[diff_below(sizeof(diff_seg_atoms)
                                           / sizeof(diff_seg_atoms[0]))];
            diff_json(".%s", a->json);

            pp->segs[pp->nsegs].any = a->any;
            pp->segs[pp->nsegs].data = (const unsigned char *) a->key;
            pp->segs[pp->nsegs].len = a->key ? (uint32_t) strlen(a->key)
                                             : 0;
            pp->nsegs++;
        }

        if (diff_below(3) == 0) {
            diff_json(".**");
            pp->rest = 1;
        }

        break;
    }

    diff_json("\"");
}


/* a node of a twin, or one step away from prev */

static void
diff_random_node(char *buf, const char *prev)
{
    size_t       i, n;
    const char  *dot;

    static const char *const  tops[] = {
        "", "deviceId", "moduleId", "etag", "version", "status", "modelId",
        "capabilities", "tags", "properties", "properties.desired",
        "properties.reported", "properties.other", "connectionState"
    };

    static const char *const  bases[] = {
        "tags", "properties.desired", "properties.reported"
    };

    if (diff_below(6) == 0) {
        strcpy(buf, tops[diff_below(sizeof(tops) / sizeof(tops[0]))]);
        return;
    }

    if (prev != NULL && strlen(prev) < 40 && diff_below(3) != 0
        && (strncmp(prev, "tags", 4) == 0
            || strncmp(prev, "properties.", 11) == 0))
    {
        switch (diff_below(3)) {

        case 0:
            snprintf(buf, 64, "%s.%s", prev,
                     diff_keys[diff_below(sizeof(diff_keys)
                                          / sizeof(diff_keys[0]))]);
            return;

        case 1:
            dot = strrchr(prev, '.');

            if (dot != NULL && dot - prev > 4
                && strncmp(dot, ".desired", 8) != 0
                && strncmp(dot, ".reported", 9) != 0)
            {
                snprintf(buf, 64, "%.*s.%s", (int) (dot - prev), prev,
                         diff_keys[diff_below(sizeof(diff_keys)
                                              / sizeof(diff_keys[0]))]);
                return;
            }

            break;

        default:
            strcpy(buf, prev);
            return;
        }
    }

    strcpy(buf, bases[diff_below(3)]);
    n = diff_below(5);

    for (i = 0; i < n; i++) {
        strcat(buf, ".");
        strcat(buf, diff_keys[diff_below(sizeof(diff_keys)
                                         / sizeof(diff_keys[0]))]);
    }
}


/*
 * The reference's verdict on a path: REF_* or 4 for no writable path;
 * a read or a refused target is handled by the caller.
 */

static int
diff_ref_path(const diff_caller_t *dc, const uint64_t *matched,
    const char *path, size_t *ri, size_t *di)
{
    size_t       n, len, skip;
    unsigned     s;
    ref_key_t    keys[64];
    const char  *p, *end, *dot;

    len = strlen(path);

    if (strncmp(path, "tags", 4) == 0 && (len == 4 || path[4] == '.')) {
        s = 0;
        skip = 4;

    } else if (strncmp(path, "properties.desired", 18) == 0
               && (len == 18 || path[18] == '.'))
    {
        s = 1;
        skip = 18;

    } else {
        return 4;
    }

    n = 0;
    end = path + len;

    for (p = path + skip; p < end; p = dot) {
        p++;
        dot = strchr(p, '.');

        if (dot == NULL) {
            dot = end;
        }

        if (dot == p || n == 64) {
            return 4;
        }

        keys[n].data = (const unsigned char *) p;
        keys[n].len = dot - p;
        n++;
    }

    return ref_check(dc->rules, dc->nrules, matched, s, keys, n, ri, di);
}


static void
diff_random_id(char *buf, int module)
{
    size_t  i, n;

    i = 0;

    if (module && diff_below(4) == 0) {
        buf[i++] = '$';
    }

    n = i + 1 + diff_below(4);

    for (/* void */; i < n; i++) {
        buf[i] = diff_id_chars[diff_below(strlen(diff_id_chars))];
    }

    buf[i] = '\0';
}


/* an ID the pattern matches */

static void
diff_instance(char *buf, const ref_id_t *id)
{
    size_t  i, k, n;

    n = 0;

    for (i = 0; i < id->len; i++) {
        if (id->kind == REF_GLOB && id->data[i] == REF_ANY_RUN) {
            for (k = diff_below(3); k > 0; k--) {
                buf[n++] = diff_id_chars[diff_below(strlen(diff_id_chars))];
            }

        } else if (id->kind == REF_GLOB && id->data[i] == REF_ANY_ONE) {
            buf[n++] = diff_id_chars[diff_below(strlen(diff_id_chars))];

        } else {
            buf[n++] = (char) id->data[i];
        }
    }

    if (id->kind == REF_PREFIX) {
        for (k = diff_below(3); k > 0; k--) {
            buf[n++] = diff_id_chars[diff_below(strlen(diff_id_chars))];
        }
    }

    /* an empty ID is no target: the rule's first pattern was "*" */

    if (n == 0) {
        buf[n++] = 'd';
    }

    buf[n] = '\0';
}


/* a path of 0 to 4 keys, or one step away from prev, or no path at all */

static void
diff_random_path(char *buf, const char *prev)
{
    size_t       i, n;
    const char  *dot;

    static const char *const  bad[] = {
        "tags..a", "tags.a.", "properties.reported.a", "tagsx", "", "tags.",
        "properties"
    };

    if (diff_below(30) == 0) {
        strcpy(buf, bad[diff_below(sizeof(bad) / sizeof(bad[0]))]);
        return;
    }

    if (prev != NULL && strlen(prev) < 40 && diff_below(3) != 0
        && (strncmp(prev, "tags", 4) == 0
            || strncmp(prev, "properties.desired", 18) == 0))
    {
        switch (diff_below(3)) {

        case 0:
            /* a child */
            snprintf(buf, 64, "%s.%s", prev,
                     diff_keys[diff_below(sizeof(diff_keys)
                                          / sizeof(diff_keys[0]))]);
            return;

        case 1:
            /* a sibling */
            dot = strrchr(prev, '.');

            if (dot != NULL && dot - prev > 4
                && strcmp(prev, "properties.desired") != 0)
            {
                snprintf(buf, 64, "%.*s.%s", (int) (dot - prev), prev,
                         diff_keys[diff_below(sizeof(diff_keys)
                                              / sizeof(diff_keys[0]))]);
                return;
            }

            break;

        default:
            /* the same again */
            strcpy(buf, prev);
            return;
        }
    }

    strcpy(buf, diff_below(2) ? "tags" : "properties.desired");
    n = diff_below(5);

    for (i = 0; i < n; i++) {
        strcat(buf, ".");
        strcat(buf, diff_keys[diff_below(sizeof(diff_keys)
                                         / sizeof(diff_keys[0]))]);
    }
}


static void
diff_mismatch(const char *fmt, ...)
{
    va_list  args;

    if (diff_nmismatch++ >= DIFF_SHOWN) {
        return;
    }

    printf("# mismatch: ");

    va_start(args, fmt);
    vprintf(fmt, args);
    va_end(args);

    printf("\n");
}
