
/*
 * Copyright (C) ngx_iothub_twin developers
 *
 * The policy matcher: at request time, finds the caller and decides
 * whether it may do an operation on a twin, write each path and read each
 * node of the answer.
 */


#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ngx_http_iothub_twin_filter.h"
#include "ngx_http_iothub_twin_policy_data.h"


/* "module <id> of device <id> on hub <host>" */
#define NGX_HTTP_IOTHUB_TWIN_TSHOWN                                          \
    (3 * NGX_HTTP_IOTHUB_TWIN_SHOWN + sizeof("module  of device  on hub "))

#define NGX_HTTP_IOTHUB_TWIN_DEPTH                                           \
    NGX_HTTP_IOTHUB_TWIN_POLICY_PATH_DEPTH


/* the target of a decision, as its refusals name it */

typedef struct {
    const unsigned char                  *device;
    const unsigned char                  *module;
    const unsigned char                  *hub;
    size_t                                dlen;
    size_t                                mlen;
    size_t                                hub_len;

    /* rules covering the twin were left out: they name other hubs */
    unsigned                              left_out;
} ngx_http_iothub_twin_policy_twin_t;


static size_t ngx_http_iothub_twin_policy_width(unsigned char c,
    int quotes);
static void ngx_http_iothub_twin_policy_covers(
    const ngx_http_iothub_twin_caller_t *c, const unsigned char *device,
    size_t dlen, const unsigned char *module, size_t mlen,
    uint64_t *covered);
static void ngx_http_iothub_twin_policy_ids(
    const ngx_http_iothub_twin_policy_ids_t *ids, const unsigned char *s,
    size_t len, int system, uint64_t *bits, size_t nwords);
static void ngx_http_iothub_twin_policy_wild(
    const ngx_http_iothub_twin_policy_id_t *id, size_t n,
    const unsigned char *s, size_t len, int system, uint64_t *bits);
static unsigned ngx_http_iothub_twin_policy_hubs(
    const ngx_http_iothub_twin_caller_t *c, const unsigned char *hub,
    size_t hub_len, uint64_t *covered);
static const uint64_t *ngx_http_iothub_twin_policy_hub_rules(
    const ngx_http_iothub_twin_caller_t *c, const unsigned char *hub,
    size_t hub_len);
static int ngx_http_iothub_twin_policy_refuse_target(
    ngx_http_iothub_twin_policy_decision_t *d, const uint64_t *covered,
    const ngx_http_iothub_twin_policy_twin_t *t);
static void ngx_http_iothub_twin_policy_target_name(char *dst, size_t size,
    const ngx_http_iothub_twin_policy_twin_t *t);
static int ngx_http_iothub_twin_policy_replace(
    ngx_http_iothub_twin_policy_decision_t *d,
    const ngx_http_iothub_twin_policy_twin_t *t);
static int ngx_http_iothub_twin_policy_walk(
    ngx_http_iothub_twin_policy_decision_t *d, unsigned s,
    const unsigned char *path, size_t len, const size_t *ends, size_t n,
    size_t *ri);
static uint32_t ngx_http_iothub_twin_policy_step(
    const ngx_http_iothub_twin_policy_dfa_t *dfa, uint32_t st,
    const unsigned char *key, size_t len);
static int ngx_http_iothub_twin_policy_verdict(
    const ngx_http_iothub_twin_policy_decision_t *d,
    const ngx_http_iothub_twin_policy_dfa_t *dfa,
    const ngx_http_iothub_twin_policy_state_t *state, size_t *ri);
static int ngx_http_iothub_twin_policy_meets(
    const ngx_http_iothub_twin_policy_decision_t *d,
    const ngx_http_iothub_twin_policy_dfa_t *dfa, uint32_t offset);
static size_t ngx_http_iothub_twin_policy_deny_index(
    const ngx_http_iothub_twin_policy_rule_t *r, unsigned s,
    const unsigned char *path, const size_t *ends, size_t n);
static int ngx_http_iothub_twin_policy_always(const unsigned char *path,
    size_t len);
static int ngx_http_iothub_twin_policy_read_walk(
    ngx_http_iothub_twin_policy_decision_t *d,
    const ngx_http_iothub_twin_policy_dfa_t *dfa, const unsigned char *path,
    size_t len);
static int ngx_http_iothub_twin_policy_read_verdict(
    const ngx_http_iothub_twin_policy_decision_t *d,
    const ngx_http_iothub_twin_policy_dfa_t *dfa, uint32_t st, int *final);
static int ngx_http_iothub_twin_policy_refuse(
    ngx_http_iothub_twin_policy_decision_t *d, const unsigned char *path,
    size_t len, const char *fmt, ...) __attribute__ ((format (printf, 4, 5)));


static const char *const  ngx_http_iothub_twin_policy_ops[] = {
    NULL, "read", "update", "replace"
};


/*
 * Printable ASCII, other bytes as \xNN ('"' and '\' too if quotes is
 * set); cut with "..." to fit size bytes with the NUL.
 */

size_t
ngx_http_iothub_twin_policy_escape(char *dst, size_t size,
    const unsigned char *s, size_t len, int quotes)
{
    size_t         i, n, need, limit, w;
    unsigned char  c;

    static const char  hex[] = "0123456789abcdef";

    if (size < 4) {
        if (size > 0) {
            dst[0] = '\0';
        }

        return 0;
    }

    need = 0;

    for (i = 0; i < len && need < size; i++) {
        need += ngx_http_iothub_twin_policy_width(s[i], quotes);
    }

    limit = (need < size) ? size - 1 : size - 4;
    n = 0;

    for (i = 0; i < len; i++) {
        c = s[i];
        w = ngx_http_iothub_twin_policy_width(c, quotes);

        if (n + w > limit) {
            break;
        }

        if (w == 1) {
            dst[n++] = (char) c;

        } else {
            dst[n++] = '\\';
            dst[n++] = 'x';
            dst[n++] = hex[c >> 4];
            dst[n++] = hex[c & 0xf];
        }
    }

    if (i < len) {
        memcpy(dst + n, "...", 3);
        n += 3;
    }

    dst[n] = '\0';

    return n;
}


static size_t
ngx_http_iothub_twin_policy_width(unsigned char c, int quotes)
{
    if (c < 0x20 || c > 0x7e || (quotes && (c == '"' || c == '\\'))) {
        return 4;
    }

    return 1;
}


/*
 * Eight bytes per multiplication, then murmur3's 64-bit finalizer so that
 * the low bits mix well; tables looked up with it are built at
 * configuration time, so a request's bytes cannot lengthen their probes.
 */

uint32_t
ngx_http_iothub_twin_policy_hash(const unsigned char *p, size_t len)
{
    uint64_t  h, k;

    h = 0x9e3779b97f4a7c15ull ^ len;

    for ( /* void */ ; len >= 8; len -= 8, p += 8) {
        memcpy(&k, p, 8);
        h = (h ^ k) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }

    if (len > 0) {
        k = 0;
        memcpy(&k, p, len);
        h = (h ^ k) * 0xff51afd7ed558ccdull;
    }

    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;

    return (uint32_t) h;
}


const ngx_http_iothub_twin_caller_t *
ngx_http_iothub_twin_policy_caller(const ngx_http_iothub_twin_policy_t *policy,
    const unsigned char *name, size_t len)
{
    size_t                                     i;
    uint32_t                                   h;
    const ngx_http_iothub_twin_caller_t       *c;
    const ngx_http_iothub_twin_policy_slot_t  *slot;

    if (policy == NULL || name == NULL || len == 0
        || len > NGX_HTTP_IOTHUB_TWIN_POLICY_NAME_MAX)
    {
        return NULL;
    }

    h = ngx_http_iothub_twin_policy_hash(name, len);

    for (i = h & policy->mask; /* void */ ; i = (i + 1) & policy->mask) {
        slot = &policy->slots[i];

        if (slot->index == 0) {
            return NULL;
        }

        if (slot->hash == h) {
            c = &policy->callers[slot->index - 1];

            if (c->name_len == len && memcmp(c->name, name, len) == 0) {
                return c;
            }
        }
    }
}


const ngx_http_iothub_twin_caller_t *
ngx_http_iothub_twin_policy_caller_at(
    const ngx_http_iothub_twin_policy_t *policy, size_t i)
{
    if (policy == NULL || i >= policy->ncallers) {
        return NULL;
    }

    return &policy->callers[i];
}


const char *
ngx_http_iothub_twin_policy_caller_name(const ngx_http_iothub_twin_caller_t *c,
    size_t *len)
{
    if (len != NULL) {
        *len = c->name_len;
    }

    return c->name;
}


const unsigned char *
ngx_http_iothub_twin_policy_caller_key(const ngx_http_iothub_twin_caller_t *c,
    unsigned slot, size_t *len)
{
    if (slot > 1 || c->key[slot] == NULL) {
        if (len != NULL) {
            *len = 0;
        }

        return NULL;
    }

    if (len != NULL) {
        *len = c->key_len[slot];
    }

    return c->key[slot];
}


int
ngx_http_iothub_twin_policy_caller_report(
    const ngx_http_iothub_twin_caller_t *c)
{
    return c->report;
}


size_t
ngx_http_iothub_twin_policy_caller_max_body_size(
    const ngx_http_iothub_twin_caller_t *c)
{
    return c->max_body_size;
}


int
ngx_http_iothub_twin_policy_caller_require_if_match(
    const ngx_http_iothub_twin_caller_t *c)
{
    return c->require_if_match;
}


size_t
ngx_http_iothub_twin_policy_caller_index(
    const ngx_http_iothub_twin_caller_t *c)
{
    return c->index;
}


size_t
ngx_http_iothub_twin_policy_caller_nrules(
    const ngx_http_iothub_twin_caller_t *c)
{
    return c->nrules;
}


const char *
ngx_http_iothub_twin_policy_op_name(int op)
{
    if (op < NGX_HTTP_IOTHUB_TWIN_OP_READ
        || op > NGX_HTTP_IOTHUB_TWIN_OP_REPLACE)
    {
        return "unknown";
    }

    return ngx_http_iothub_twin_policy_ops[op];
}


int
ngx_http_iothub_twin_policy_target(ngx_http_iothub_twin_policy_decision_t *d,
    const ngx_http_iothub_twin_caller_t *c, int op,
    const unsigned char *device, size_t dlen, const unsigned char *module,
    size_t mlen)
{
    return ngx_http_iothub_twin_policy_target_hub(d, c, op, NULL, 0, device,
                                                  dlen, module, mlen);
}


int
ngx_http_iothub_twin_policy_target_hub(
    ngx_http_iothub_twin_policy_decision_t *d,
    const ngx_http_iothub_twin_caller_t *c, int op, const unsigned char *hub,
    size_t hub_len, const unsigned char *device, size_t dlen,
    const unsigned char *module, size_t mlen)
{
    size_t                              w;
    uint64_t                            covered[NGX_HTTP_IOTHUB_TWIN_WORDS];
    ngx_http_iothub_twin_policy_twin_t  t;

    memset(&d->rules, 0, sizeof(ngx_http_iothub_twin_policy_rules_t));
    d->caller = c;
    d->op = op;
    d->nrules = 0;
    d->npaths = 0;
    d->nrefused = 0;
    d->allowed = 1;
    d->target_ok = 0;
    d->report = (c != NULL && c->report);
    d->reason[0] = '\0';
    d->path[0] = '\0';
    d->walk_section = 0;
    d->read_walked = 0;

    if (c == NULL) {
        return ngx_http_iothub_twin_policy_refuse(d, NULL, 0,
                                       "the caller is not in the policy");
    }

    if (op < NGX_HTTP_IOTHUB_TWIN_OP_READ
        || op > NGX_HTTP_IOTHUB_TWIN_OP_REPLACE)
    {
        return ngx_http_iothub_twin_policy_refuse(d, NULL, 0,
                                       "operation %d is unknown", op);
    }

    if (device == NULL || dlen == 0) {
        return ngx_http_iothub_twin_policy_refuse(d, NULL, 0,
                                                  "no device ID");
    }

    if (module != NULL && mlen == 0) {
        return ngx_http_iothub_twin_policy_refuse(d, NULL, 0,
                                                  "an empty module ID");
    }

    ngx_http_iothub_twin_policy_covers(c, device, dlen, module, mlen,
                                       covered);

    t.device = device;
    t.dlen = dlen;
    t.module = module;
    t.mlen = mlen;
    t.hub = hub;
    t.hub_len = hub_len;
    t.left_out = 0;

    /* nothing to do for hubs unless a rule of the caller names some */

    if (c->hubbed != NULL) {
        t.left_out = ngx_http_iothub_twin_policy_hubs(c, hub, hub_len,
                                                      covered);
    }

    for (w = 0; w < c->nwords; w++) {
        d->rules.w[w] = covered[w] & c->ops[op][w];
        d->nrules += __builtin_popcountll(d->rules.w[w]);
    }

    if (d->nrules == 0) {
        return ngx_http_iothub_twin_policy_refuse_target(d, covered, &t);
    }

    if (op == NGX_HTTP_IOTHUB_TWIN_OP_REPLACE
        && ngx_http_iothub_twin_policy_replace(d, &t) != 0)
    {
        return -1;
    }

    d->target_ok = 1;

    return 0;
}


/* covered: the rules whose devices and modules cover the twin */

static void
ngx_http_iothub_twin_policy_covers(const ngx_http_iothub_twin_caller_t *c,
    const unsigned char *device, size_t dlen, const unsigned char *module,
    size_t mlen, uint64_t *covered)
{
    size_t    w;
    uint64_t  any, modules[NGX_HTTP_IOTHUB_TWIN_WORDS];

    ngx_http_iothub_twin_policy_ids(&c->devices, device, dlen, 0, covered,
                                    c->nwords);

    any = 0;

    if (module == NULL) {
        for (w = 0; w < c->nwords; w++) {
            covered[w] &= c->device_twin[w];
        }

        return;
    }

    for (w = 0; w < c->nwords; w++) {
        any |= covered[w];
    }

    if (any == 0) {
        return;
    }

    /* a system module only for a pattern that names one */

    ngx_http_iothub_twin_policy_ids(&c->modules, module, mlen,
                                    module[0] == '$', modules, c->nwords);

    for (w = 0; w < c->nwords; w++) {
        covered[w] &= modules[w];
    }
}


/* bits: the rules with a pattern in ids matching the ID */

static void
ngx_http_iothub_twin_policy_ids(const ngx_http_iothub_twin_policy_ids_t *ids,
    const unsigned char *s, size_t len, int system, uint64_t *bits,
    size_t nwords)
{
    size_t                                      slot;
    uint32_t                                    h, rule;
    const ngx_http_iothub_twin_policy_exact_t  *e;

    memset(bits, 0, nwords * sizeof(uint64_t));

    if (ids->n > 0) {
        h = ngx_http_iothub_twin_policy_hash(s, len);

        for (slot = h & ids->mask; ids->slots[slot].rule;
             slot = (slot + 1) & ids->mask)
        {
            e = &ids->slots[slot];

            if (e->hash == h && e->len == len
                && memcmp(e->data, s, len) == 0)
            {
                rule = e->rule - 1;
                bits[rule / 64] |= (uint64_t) 1 << (rule % 64);
            }
        }
    }

    if (ids->first == NULL) {
        ngx_http_iothub_twin_policy_wild(ids->wild, ids->nwild, s, len,
                                         system, bits);
        return;
    }

    /* those beginning with a wildcard, and those with the ID's first byte */

    ngx_http_iothub_twin_policy_wild(ids->wild, ids->first[1], s, len,
                                     system, bits);
    ngx_http_iothub_twin_policy_wild(ids->wild + ids->first[s[0]],
                                     ids->first[s[0] + 1]
                                     - ids->first[s[0]],
                                     s, len, system, bits);
}


static void
ngx_http_iothub_twin_policy_wild(const ngx_http_iothub_twin_policy_id_t *id,
    size_t n, const unsigned char *s, size_t len, int system, uint64_t *bits)
{
    for ( /* void */ ; n--; id++) {
        if (bits[id->rule / 64] & ((uint64_t) 1 << (id->rule % 64))) {
            continue;
        }

        if (system && !id->system) {
            continue;
        }

        if (id->first != '\0' && id->first != s[0]) {
            continue;
        }

        if (id->kind == NGX_HTTP_IOTHUB_TWIN_POLICY_PREFIX
            ? (len >= id->len && memcmp(s, id->data, id->len) == 0)
            : ngx_http_iothub_twin_glob_match(id->data, id->len, s, len))
        {
            bits[id->rule / 64] |= (uint64_t) 1 << (id->rule % 64);
        }
    }
}


/*
 * Leaves out of covered the rules with "hubs" not naming hub; returns 1
 * if it left any out.  One lookup of the hub, and only when such a rule
 * covers the twin.
 */

static unsigned
ngx_http_iothub_twin_policy_hubs(const ngx_http_iothub_twin_caller_t *c,
    const unsigned char *hub, size_t hub_len, uint64_t *covered)
{
    size_t           w;
    uint64_t         any, keep, out;
    const uint64_t  *named;

    any = 0;

    for (w = 0; w < c->nwords; w++) {
        any |= covered[w] & c->hubbed[w];
    }

    if (any == 0) {
        return 0;
    }

    named = ngx_http_iothub_twin_policy_hub_rules(c, hub, hub_len);
    out = 0;

    for (w = 0; w < c->nwords; w++) {
        keep = ~c->hubbed[w] | (named ? named[w] : 0);
        out |= covered[w] & ~keep;
        covered[w] &= keep;
    }

    return out != 0;
}


/* the rules naming hub (compared without case), NULL if none does */

static const uint64_t *
ngx_http_iothub_twin_policy_hub_rules(const ngx_http_iothub_twin_caller_t *c,
    const unsigned char *hub, size_t hub_len)
{
    size_t                                         i, slot;
    uint32_t                                       h;
    unsigned char                                  lower[
                                          NGX_HTTP_IOTHUB_TWIN_POLICY_HUB_MAX];
    const ngx_http_iothub_twin_policy_hub_slot_t  *e;

    if (hub == NULL || hub_len == 0
        || hub_len > NGX_HTTP_IOTHUB_TWIN_POLICY_HUB_MAX)
    {
        return NULL;
    }

    for (i = 0; i < hub_len; i++) {
        lower[i] = ngx_http_iothub_twin_policy_lower(hub[i]);
    }

    h = ngx_http_iothub_twin_policy_hash(lower, hub_len);

    for (slot = h & c->hub_mask; c->hub_slots[slot].data != NULL;
         slot = (slot + 1) & c->hub_mask)
    {
        e = &c->hub_slots[slot];

        if (e->hash == h && e->len == hub_len
            && memcmp(e->data, lower, hub_len) == 0)
        {
            return e->rules;
        }
    }

    return NULL;
}


/*
 * covered: the rules covering the twin and applying to its hub; rules
 * left out for their hubs covered it too if t->left_out is set
 */

static int
ngx_http_iothub_twin_policy_refuse_target(
    ngx_http_iothub_twin_policy_decision_t *d, const uint64_t *covered,
    const ngx_http_iothub_twin_policy_twin_t *t)
{
    char                                  what[NGX_HTTP_IOTHUB_TWIN_TSHOWN];
    size_t                                w;
    const ngx_http_iothub_twin_caller_t  *c;

    c = d->caller;

    ngx_http_iothub_twin_policy_target_name(what, sizeof(what), t);

    for (w = 0; w < c->nwords; w++) {
        if (covered[w] || t->left_out) {
            return ngx_http_iothub_twin_policy_refuse(d, NULL, 0,
                                       "operation %s is not allowed on %s",
                                       ngx_http_iothub_twin_policy_ops[d->op],
                                       what);
        }
    }

    return ngx_http_iothub_twin_policy_refuse(d, NULL, 0,
                                       "%s is not covered by any rule", what);
}


/*
 * "device d" or "module m of device d", and " on hub h" (" without a
 * hub") if rules covering it were left out for naming other hubs
 */

static void
ngx_http_iothub_twin_policy_target_name(char *dst, size_t size,
    const ngx_http_iothub_twin_policy_twin_t *t)
{
    int   n;
    char  dev[NGX_HTTP_IOTHUB_TWIN_SHOWN];
    char  mod[NGX_HTTP_IOTHUB_TWIN_SHOWN];
    char  hub[NGX_HTTP_IOTHUB_TWIN_SHOWN];

    (void) ngx_http_iothub_twin_policy_escape(dev, sizeof(dev), t->device,
                                              t->dlen, 1);

    if (t->module == NULL) {
        n = snprintf(dst, size, "device %s", dev);

    } else {
        (void) ngx_http_iothub_twin_policy_escape(mod, sizeof(mod),
                                                  t->module, t->mlen, 1);
        n = snprintf(dst, size, "module %s of device %s", mod, dev);
    }

    if (!t->left_out || n < 0 || (size_t) n >= size) {
        return;
    }

    if (t->hub == NULL || t->hub_len == 0) {
        snprintf(dst + n, size - n, " without a hub");
        return;
    }

    (void) ngx_http_iothub_twin_policy_escape(hub, sizeof(hub), t->hub,
                                              t->hub_len, 1);

    snprintf(dst + n, size - n, " on hub %s", hub);
}


/* the hub replaces tags and desired as a whole */

static int
ngx_http_iothub_twin_policy_replace(ngx_http_iothub_twin_policy_decision_t *d,
    const ngx_http_iothub_twin_policy_twin_t *t)
{
    int                                       rc;
    char                                      what[NGX_HTTP_IOTHUB_TWIN_TSHOWN];
    size_t                                    ri, di;
    unsigned                                  s;
    const char                               *name;
    const ngx_http_iothub_twin_policy_dfa_t  *dfa;

    static const char *const  sections[] = { "tags", "properties.desired" };

    for (s = 0; s < 2; s++) {
        dfa = d->caller->paths[s];

        /* the section as a whole: the automaton's first state */

        rc = NGX_HTTP_IOTHUB_TWIN_POLICY_UNCOVERED;

        if (dfa != NULL) {
            rc = ngx_http_iothub_twin_policy_verdict(d, dfa, &dfa->states[0],
                                                     &ri);
        }

        if (rc == NGX_HTTP_IOTHUB_TWIN_POLICY_ALLOWED) {
            continue;
        }

        ngx_http_iothub_twin_policy_target_name(what, sizeof(what), t);

        name = sections[s];

        if (rc == NGX_HTTP_IOTHUB_TWIN_POLICY_DENIED) {
            di = ngx_http_iothub_twin_policy_deny_index(&d->caller->rules[ri],
                                                        s, NULL, NULL, 0);
            return ngx_http_iothub_twin_policy_refuse(d, NULL, 0,
                                       "operation replace is not allowed on"
                                       " %s: %s is partly denied by"
                                       " rules[%zu].deny[%zu]", what, name,
                                       ri, di);
        }

        return ngx_http_iothub_twin_policy_refuse(d, NULL, 0,
                                       "operation replace is not allowed on"
                                       " %s: %s is not writable as a whole",
                                       what, name);
    }

    return 0;
}


int
ngx_http_iothub_twin_policy_path(ngx_http_iothub_twin_policy_decision_t *d,
    const unsigned char *path, size_t len, int is_delete)
{
    int          rc;
    char         caller[NGX_HTTP_IOTHUB_TWIN_SHOWN];
    char         shown[NGX_HTTP_IOTHUB_TWIN_PSHOWN];
    size_t       n, skip, ri, di;
    size_t       ends[NGX_HTTP_IOTHUB_TWIN_DEPTH + 1];
    unsigned     s;
    const char  *p, *end, *dot;

    (void) is_delete;

    d->npaths++;

    if (!d->target_ok) {

        /* the target's reason stands */
        return ngx_http_iothub_twin_policy_refuse(d, path, len,
                                                  "the target is refused");
    }

    if (d->op == NGX_HTTP_IOTHUB_TWIN_OP_READ) {
        return ngx_http_iothub_twin_policy_refuse(d, path, len,
                                       "operation read writes no paths");
    }

    if (len >= 4 && memcmp(path, "tags", 4) == 0
        && (len == 4 || path[4] == '.'))
    {
        s = NGX_HTTP_IOTHUB_TWIN_POLICY_TAGS;
        skip = 4;

    } else if (len >= 18 && memcmp(path, "properties.desired", 18) == 0
               && (len == 18 || path[18] == '.'))
    {
        s = NGX_HTTP_IOTHUB_TWIN_POLICY_DESIRED;
        skip = 18;

    } else {
        s = 2;
        skip = 0;
    }

    /* ends[i]: where key i ends (ends[0]: the section) */

    n = 0;
    rc = -1;

    if (s < 2) {
        rc = 0;
        ends[0] = skip;
        end = (const char *) path + len;

        for (p = (const char *) path + skip; p < end; p = dot) {

            /* p is at the '.' before the next key */

            p++;

            dot = memchr(p, '.', end - p);
            if (dot == NULL) {
                dot = end;
            }

            if (dot == p || n == NGX_HTTP_IOTHUB_TWIN_DEPTH) {
                rc = -1;
                break;
            }

            ends[++n] = dot - (const char *) path;
        }
    }

    if (rc != 0) {
        (void) ngx_http_iothub_twin_policy_escape(shown, sizeof(shown), path,
                                                  len, 1);
        return ngx_http_iothub_twin_policy_refuse(d, path, len,
                                       "%s: not a writable path", shown);
    }

    rc = ngx_http_iothub_twin_policy_walk(d, s, path, len, ends, n, &ri);

    if (rc == NGX_HTTP_IOTHUB_TWIN_POLICY_ALLOWED) {
        return 0;
    }

    if (d->nrefused > 0) {
        d->nrefused++;
        d->allowed = 0;
        return -1;
    }

    (void) ngx_http_iothub_twin_policy_escape(shown, sizeof(shown), path, len,
                                              1);
    (void) ngx_http_iothub_twin_policy_escape(caller, sizeof(caller),
                                   (const unsigned char *) d->caller->name,
                                   d->caller->name_len, 1);

    if (rc == NGX_HTTP_IOTHUB_TWIN_POLICY_DENIED) {
        di = ngx_http_iothub_twin_policy_deny_index(&d->caller->rules[ri], s,
                                                    path, ends, n);
        return ngx_http_iothub_twin_policy_refuse(d, path, len,
                                       "%s: denied to caller %s by"
                                       " rules[%zu].deny[%zu]", shown,
                                       caller, ri, di);
    }

    return ngx_http_iothub_twin_policy_refuse(d, path, len,
                                   "%s: not writable by caller %s", shown,
                                   caller);
}


/*
 * One lookup per key in the section's automaton, resuming from the
 * previous path's walk where both share their first keys, and stopping
 * at a node the decision's rules allow wholly (a "**" and no deny at or
 * below it).
 */

static int
ngx_http_iothub_twin_policy_walk(ngx_http_iothub_twin_policy_decision_t *d,
    unsigned s, const unsigned char *path, size_t len, const size_t *ends,
    size_t n, size_t *ri)
{
    int                                         rc;
    size_t                                      j, same, keep;
    uint32_t                                    st;
    const ngx_http_iothub_twin_policy_dfa_t    *dfa;
    const ngx_http_iothub_twin_policy_state_t  *state;

    dfa = d->caller->paths[s];

    if (dfa == NULL) {
        return NGX_HTTP_IOTHUB_TWIN_POLICY_UNCOVERED;
    }

    j = 0;
    st = 1;

    if (d->walk_section == s + 1) {

        /* the deepest key both paths end at the same place, same bytes */

        for (j = (n < d->walk_depth) ? n : d->walk_depth; j > 0; j--) {
            if (ends[j] == d->walk_end[j]
                && memcmp(path, d->walk_path, ends[j]) == 0)
            {
                break;
            }
        }

        st = d->walk_state[j];
    }

    same = (j > 0) ? ends[j] : 0;

    for ( ;; ) {
        d->walk_state[j] = st;

        if (st == 0) {
            rc = NGX_HTTP_IOTHUB_TWIN_POLICY_UNCOVERED;
            break;
        }

        state = &dfa->states[st - 1];

        if (j == n) {
            rc = ngx_http_iothub_twin_policy_verdict(d, dfa, state, ri);
            break;
        }

        if (state->rest
            && ngx_http_iothub_twin_policy_meets(d, dfa, state->rest)
            && !ngx_http_iothub_twin_policy_meets(d, dfa, state->deny))
        {
            rc = NGX_HTTP_IOTHUB_TWIN_POLICY_ALLOWED;
            break;
        }

        st = ngx_http_iothub_twin_policy_step(dfa, st, path + ends[j] + 1,
                                              ends[j + 1] - ends[j] - 1);
        j++;
    }

    /* keep the walk as far as its bytes fit */

    while (j > 0 && ends[j] > NGX_HTTP_IOTHUB_TWIN_POLICY_WALK) {
        j--;
    }

    keep = (len < NGX_HTTP_IOTHUB_TWIN_POLICY_WALK)
           ? len : NGX_HTTP_IOTHUB_TWIN_POLICY_WALK;

    if (keep > same) {
        memcpy(d->walk_path + same, path + same, keep - same);
    }

    d->walk_section = s + 1;
    d->walk_len = (uint16_t) keep;
    d->walk_depth = (uint16_t) j;

    for (/* void */; j > 0; j--) {
        d->walk_end[j] = (uint16_t) ends[j];
    }

    return rc;
}


static uint32_t
ngx_http_iothub_twin_policy_step(const ngx_http_iothub_twin_policy_dfa_t *dfa,
    uint32_t st, const unsigned char *key, size_t len)
{
    size_t                                     slot;
    uint32_t                                   h;
    const ngx_http_iothub_twin_policy_edge_t  *e;

    h = ngx_http_iothub_twin_policy_edge_hash(key, len, st);

    for (slot = h & dfa->mask; dfa->edges[slot].from;
         slot = (slot + 1) & dfa->mask)
    {
        e = &dfa->edges[slot];

        if (e->hash == h && e->from == st && e->len == len
            && memcmp(e->data, key, len) == 0)
        {
            return e->to;
        }
    }

    return dfa->states[st - 1].other;
}


/* denied if a deny of a decision's rule overlaps, else allowed if ... */

static int
ngx_http_iothub_twin_policy_verdict(
    const ngx_http_iothub_twin_policy_decision_t *d,
    const ngx_http_iothub_twin_policy_dfa_t *dfa,
    const ngx_http_iothub_twin_policy_state_t *state, size_t *ri)
{
    size_t           w;
    uint64_t         bits;
    const uint64_t  *deny;

    if (state->deny) {
        deny = &dfa->words[state->deny];

        for (w = 0; w < d->caller->nwords; w++) {
            bits = deny[w] & d->rules.w[w];

            if (bits) {
                /* the first such rule, as messages name it */
                *ri = w * 64 + __builtin_ctzll(bits);
                return NGX_HTTP_IOTHUB_TWIN_POLICY_DENIED;
            }
        }
    }

    return ngx_http_iothub_twin_policy_meets(d, dfa, state->allow)
           ? NGX_HTTP_IOTHUB_TWIN_POLICY_ALLOWED
           : NGX_HTTP_IOTHUB_TWIN_POLICY_UNCOVERED;
}


/* the bit set at offset has a rule of the decision */

static int
ngx_http_iothub_twin_policy_meets(
    const ngx_http_iothub_twin_policy_decision_t *d,
    const ngx_http_iothub_twin_policy_dfa_t *dfa, uint32_t offset)
{
    size_t           w;
    const uint64_t  *bits;

    if (offset == 0) {
        return 0;
    }

    bits = &dfa->words[offset];

    for (w = 0; w < d->caller->nwords; w++) {
        if (bits[w] & d->rules.w[w]) {
            return 1;
        }
    }

    return 0;
}


/*
 * For a message only: the first deny pattern of rule r that overlaps the
 * path (its keys end at ends[1 .. n]; n 0 for the whole section).
 */

static size_t
ngx_http_iothub_twin_policy_deny_index(
    const ngx_http_iothub_twin_policy_rule_t *r, unsigned s,
    const unsigned char *path, const size_t *ends, size_t n)
{
    size_t                                     k, i, m, klen;
    const unsigned char                       *key;
    const ngx_http_iothub_twin_policy_seg_t   *seg;
    const ngx_http_iothub_twin_policy_path_t  *pp;

    for (k = 0; k < r->ndeny[s]; k++) {
        pp = &r->deny[s][k];
        m = (n < pp->nsegs) ? n : pp->nsegs;

        for (i = 0; i < m; i++) {
            seg = &pp->segs[i];
            key = path + ends[i] + 1;
            klen = ends[i + 1] - ends[i] - 1;

            if (!seg->any
                && (seg->len != klen || memcmp(seg->data, key, klen) != 0))
            {
                break;
            }
        }

        if (i == m) {
            return pp->index;
        }
    }

    return 0;
}


int
ngx_http_iothub_twin_policy_read(void *data, const unsigned char *path,
    size_t len)
{
    int                                      rc;
    ngx_http_iothub_twin_policy_decision_t  *d = data;

    if (d == NULL || !d->target_ok || d->caller == NULL) {
        return NGX_HTTP_IOTHUB_TWIN_READ_NONE;
    }

    if (ngx_http_iothub_twin_policy_always(path, len)) {
        return NGX_HTTP_IOTHUB_TWIN_READ_ALL;
    }

    rc = NGX_HTTP_IOTHUB_TWIN_READ_NONE;

    if (d->caller->read != NULL) {
        rc = ngx_http_iothub_twin_policy_read_walk(d, d->caller->read, path,
                                                   len);
    }

    /* the twin itself holds at least the members every rule reads */

    if (len == 0 && rc == NGX_HTTP_IOTHUB_TWIN_READ_NONE) {
        rc = NGX_HTTP_IOTHUB_TWIN_READ_SOME;
    }

    return rc;
}


int
ngx_http_iothub_twin_policy_read_all(
    const ngx_http_iothub_twin_policy_decision_t *d)
{
    int  final;

    if (d == NULL || !d->target_ok || d->caller == NULL
        || d->caller->read == NULL)
    {
        return 0;
    }

    return ngx_http_iothub_twin_policy_read_verdict(d, d->caller->read, 1,
                                                    &final)
           == NGX_HTTP_IOTHUB_TWIN_READ_ALL;
}


/* what every client needs to go on: which twin, and how to write again */

static int
ngx_http_iothub_twin_policy_always(const unsigned char *path, size_t len)
{
    switch (len) {

    case 4:
        return memcmp(path, "etag", 4) == 0;

    case 7:
        return memcmp(path, "version", 7) == 0;

    case 8:
        return memcmp(path, "deviceId", 8) == 0
               || memcmp(path, "moduleId", 8) == 0;

    default:
        return 0;
    }
}


/*
 * One lookup per key in the read automaton, from the twin's top level,
 * resuming from the previous path's walk where both share their first
 * keys, and stopping at a node whose verdict holds for all below it (ALL,
 * or denied).
 */

static int
ngx_http_iothub_twin_policy_read_walk(ngx_http_iothub_twin_policy_decision_t *d,
    const ngx_http_iothub_twin_policy_dfa_t *dfa, const unsigned char *path,
    size_t len)
{
    int                   rc, final;
    size_t                j, n, same, keep, start;
    size_t                ends[NGX_HTTP_IOTHUB_TWIN_POLICY_READ_DEPTH + 1];
    uint32_t              st;
    const unsigned char  *p, *end, *dot;

    /* ends[j]: where key j ends; keys past the walk's depth are not kept */

    n = 0;
    ends[0] = 0;
    end = path + len;

    for (p = path; len > 0; p = dot + 1) {
        dot = memchr(p, '.', end - p);
        if (dot == NULL) {
            dot = end;
        }

        ends[++n] = dot - path;

        if (dot == end || n == NGX_HTTP_IOTHUB_TWIN_POLICY_READ_DEPTH) {
            break;
        }
    }

    j = 0;
    st = 1;

    if (d->read_walked) {
        for (j = (n < d->read_depth) ? n : d->read_depth; j > 0; j--) {
            if (ends[j] == d->read_end[j]
                && memcmp(path, d->read_path, ends[j]) == 0)
            {
                break;
            }
        }

        st = d->read_state[j];
    }

    same = (j > 0) ? ends[j] : 0;

    for ( ;; ) {
        d->read_state[j] = st;

        rc = ngx_http_iothub_twin_policy_read_verdict(d, dfa, st, &final);

        if (j == n || final) {
            break;
        }

        start = (j > 0) ? ends[j] + 1 : 0;
        st = ngx_http_iothub_twin_policy_step(dfa, st, path + start,
                                              ends[j + 1] - start);
        j++;
    }

    /* deeper than the walk goes: only a verdict for the subtree holds */

    if (j == n && ends[n] < len && !final) {
        rc = NGX_HTTP_IOTHUB_TWIN_READ_NONE;
    }

    /* keep the walk as far as its bytes fit */

    while (j > 0 && ends[j] > NGX_HTTP_IOTHUB_TWIN_POLICY_WALK) {
        j--;
    }

    keep = (len < NGX_HTTP_IOTHUB_TWIN_POLICY_WALK)
           ? len : NGX_HTTP_IOTHUB_TWIN_POLICY_WALK;

    if (keep > same) {
        memcpy(d->read_path + same, path + same, keep - same);
    }

    d->read_walked = 1;
    d->read_depth = (uint16_t) j;

    for (/* void */; j > 0; j--) {
        d->read_end[j] = (uint16_t) ends[j];
    }

    return rc;
}


/*
 * The verdict of state st (+ 1, 0: none) for the decision's rules; final
 * if it holds for everything below too.
 */

static int
ngx_http_iothub_twin_policy_read_verdict(
    const ngx_http_iothub_twin_policy_decision_t *d,
    const ngx_http_iothub_twin_policy_dfa_t *dfa, uint32_t st, int *final)
{
    const ngx_http_iothub_twin_policy_state_t  *state;

    *final = 1;

    if (st == 0) {
        return NGX_HTTP_IOTHUB_TWIN_READ_NONE;
    }

    state = &dfa->states[st - 1];

    if (ngx_http_iothub_twin_policy_meets(d, dfa, state->deny)) {
        return NGX_HTTP_IOTHUB_TWIN_READ_NONE;
    }

    if (ngx_http_iothub_twin_policy_meets(d, dfa, state->rest)) {
        if (!ngx_http_iothub_twin_policy_meets(d, dfa, state->below)) {
            return NGX_HTTP_IOTHUB_TWIN_READ_ALL;
        }

        *final = 0;
        return NGX_HTTP_IOTHUB_TWIN_READ_SOME;
    }

    *final = 0;

    return ngx_http_iothub_twin_policy_meets(d, dfa, state->allow)
           ? NGX_HTTP_IOTHUB_TWIN_READ_SOME
           : NGX_HTTP_IOTHUB_TWIN_READ_NONE;
}


static int
ngx_http_iothub_twin_policy_refuse(ngx_http_iothub_twin_policy_decision_t *d,
    const unsigned char *path, size_t len, const char *fmt, ...)
{
    va_list  args;

    d->allowed = 0;

    if (d->nrefused++ > 0) {
        return -1;
    }

    va_start(args, fmt);
    (void) vsnprintf(d->reason, sizeof(d->reason), fmt, args);
    va_end(args);

    if (path != NULL) {
        (void) ngx_http_iothub_twin_policy_escape(d->path, sizeof(d->path),
                                                  path, len, 1);
    }

    return -1;
}
