
/*
 * Copyright (C) ngx_iothub_twin developers
 *
 * The policy matcher: at request time, finds the caller and decides
 * whether it may do an operation on a twin and write each path.
 */


#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ngx_http_iothub_twin_policy_data.h"


/* "module <id> of device <id>" */
#define NGX_HTTP_IOTHUB_TWIN_TSHOWN                                          \
    (2 * NGX_HTTP_IOTHUB_TWIN_SHOWN + sizeof("module  of device "))

#define NGX_HTTP_IOTHUB_TWIN_DEPTH                                           \
    NGX_HTTP_IOTHUB_TWIN_POLICY_PATH_DEPTH


typedef struct {
    const unsigned char                  *data;
    size_t                                len;
} ngx_http_iothub_twin_policy_key_t;


static size_t ngx_http_iothub_twin_policy_width(unsigned char c,
    int quotes);
static int ngx_http_iothub_twin_policy_id_match(
    const ngx_http_iothub_twin_policy_id_t *id, const unsigned char *s,
    size_t len);
static int ngx_http_iothub_twin_policy_glob(const unsigned char *p,
    size_t plen, const unsigned char *s, size_t slen);
static int ngx_http_iothub_twin_policy_covers(
    const ngx_http_iothub_twin_policy_rule_t *r, const unsigned char *device,
    size_t dlen, const unsigned char *module, size_t mlen);
static int ngx_http_iothub_twin_policy_check(
    const ngx_http_iothub_twin_policy_decision_t *d, unsigned section,
    const ngx_http_iothub_twin_policy_key_t *keys, size_t n, size_t *ri,
    size_t *di);
static int ngx_http_iothub_twin_policy_allows(
    const ngx_http_iothub_twin_policy_path_t *pp,
    const ngx_http_iothub_twin_policy_key_t *keys, size_t n);
static int ngx_http_iothub_twin_policy_agree(
    const ngx_http_iothub_twin_policy_path_t *pp,
    const ngx_http_iothub_twin_policy_key_t *keys, size_t m);
static int ngx_http_iothub_twin_policy_overlaps(
    const ngx_http_iothub_twin_policy_path_t *pp,
    const ngx_http_iothub_twin_policy_key_t *keys, size_t n);
static int ngx_http_iothub_twin_policy_refuse_target(
    ngx_http_iothub_twin_policy_decision_t *d, const unsigned char *device,
    size_t dlen, const unsigned char *module, size_t mlen);
static int ngx_http_iothub_twin_policy_replace(
    ngx_http_iothub_twin_policy_decision_t *d, const unsigned char *device,
    size_t dlen, const unsigned char *module, size_t mlen);
static int ngx_http_iothub_twin_policy_refuse(
    ngx_http_iothub_twin_policy_decision_t *d, const unsigned char *path,
    size_t len, const char *fmt, ...) __attribute__ ((format (printf, 4, 5)));
static void ngx_http_iothub_twin_policy_target_name(char *dst, size_t size,
    const unsigned char *device, size_t dlen, const unsigned char *module,
    size_t mlen);


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


uint32_t
ngx_http_iothub_twin_policy_hash(const unsigned char *p, size_t len)
{
    uint32_t  h;

    h = 2166136261u;

    while (len--) {
        h ^= *p++;
        h *= 16777619u;
    }

    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;

    return h;
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
    size_t                                     i;
    const ngx_http_iothub_twin_policy_rule_t  *r;

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

    for (i = 0; i < c->nrules; i++) {
        r = &c->rules[i];

        if ((r->ops & (1u << op))
            && ngx_http_iothub_twin_policy_covers(r, device, dlen, module,
                                                  mlen))
        {
            d->rules.w[i / 64] |= (uint64_t) 1 << (i % 64);
            d->nrules++;
        }
    }

    if (d->nrules == 0) {
        return ngx_http_iothub_twin_policy_refuse_target(d, device, dlen,
                                                         module, mlen);
    }

    if (op == NGX_HTTP_IOTHUB_TWIN_OP_REPLACE
        && ngx_http_iothub_twin_policy_replace(d, device, dlen, module, mlen)
           != 0)
    {
        return -1;
    }

    d->target_ok = 1;

    return 0;
}


static int
ngx_http_iothub_twin_policy_covers(const ngx_http_iothub_twin_policy_rule_t *r,
    const unsigned char *device, size_t dlen, const unsigned char *module,
    size_t mlen)
{
    size_t  i;

    for (i = 0; i < r->ndevices; i++) {
        if (ngx_http_iothub_twin_policy_id_match(&r->devices[i], device,
                                                 dlen))
        {
            break;
        }
    }

    if (i == r->ndevices) {
        return 0;
    }

    if (module == NULL) {
        return r->device_twin;
    }

    for (i = 0; i < r->nmodules; i++) {

        /* a system module only for a pattern that names one */

        if (module[0] == '$' && !r->modules[i].system) {
            continue;
        }

        if (ngx_http_iothub_twin_policy_id_match(&r->modules[i], module,
                                                 mlen))
        {
            return 1;
        }
    }

    return 0;
}


static int
ngx_http_iothub_twin_policy_id_match(
    const ngx_http_iothub_twin_policy_id_t *id, const unsigned char *s,
    size_t len)
{
    if (id->first != '\0' && id->first != s[0]) {
        return 0;
    }

    switch (id->kind) {

    case NGX_HTTP_IOTHUB_TWIN_POLICY_EXACT:
        return len == id->len && memcmp(s, id->data, len) == 0;

    case NGX_HTTP_IOTHUB_TWIN_POLICY_PREFIX:
        return len >= id->len && memcmp(s, id->data, id->len) == 0;

    default:
        return ngx_http_iothub_twin_policy_glob(id->data, id->len, s, len);
    }
}


/*
 * '*' any run, '?' one byte; on a mismatch only the last '*' is retried
 * one byte further, which is enough and keeps it O(plen * slen)
 */

static int
ngx_http_iothub_twin_policy_glob(const unsigned char *p, size_t plen,
    const unsigned char *s, size_t slen)
{
    size_t  pi, si, star, mark;

    pi = 0;
    si = 0;
    star = (size_t) -1;
    mark = 0;

    while (si < slen) {
        if (pi < plen && p[pi] == NGX_HTTP_IOTHUB_TWIN_POLICY_ANY_RUN) {
            star = pi++;
            mark = si;

        } else if (pi < plen
                   && (p[pi] == NGX_HTTP_IOTHUB_TWIN_POLICY_ANY_ONE
                       || p[pi] == s[si]))
        {
            pi++;
            si++;

        } else if (star != (size_t) -1) {
            pi = star + 1;
            si = ++mark;

        } else {
            return 0;
        }
    }

    while (pi < plen && p[pi] == NGX_HTTP_IOTHUB_TWIN_POLICY_ANY_RUN) {
        pi++;
    }

    return pi == plen;
}


static int
ngx_http_iothub_twin_policy_refuse_target(
    ngx_http_iothub_twin_policy_decision_t *d, const unsigned char *device,
    size_t dlen, const unsigned char *module, size_t mlen)
{
    char                                  what[NGX_HTTP_IOTHUB_TWIN_TSHOWN];
    size_t                                i;
    const ngx_http_iothub_twin_caller_t  *c;

    c = d->caller;

    ngx_http_iothub_twin_policy_target_name(what, sizeof(what), device, dlen,
                                            module, mlen);

    for (i = 0; i < c->nrules; i++) {
        if (ngx_http_iothub_twin_policy_covers(&c->rules[i], device, dlen,
                                               module, mlen))
        {
            return ngx_http_iothub_twin_policy_refuse(d, NULL, 0,
                                       "operation %s is not allowed on %s",
                                       ngx_http_iothub_twin_policy_ops[d->op],
                                       what);
        }
    }

    return ngx_http_iothub_twin_policy_refuse(d, NULL, 0,
                                       "%s is not covered by any rule", what);
}


/* "device d" or "module m of device d" */

static void
ngx_http_iothub_twin_policy_target_name(char *dst, size_t size,
    const unsigned char *device, size_t dlen, const unsigned char *module,
    size_t mlen)
{
    char  dev[NGX_HTTP_IOTHUB_TWIN_SHOWN];
    char  mod[NGX_HTTP_IOTHUB_TWIN_SHOWN];

    (void) ngx_http_iothub_twin_policy_escape(dev, sizeof(dev), device, dlen,
                                              1);

    if (module == NULL) {
        snprintf(dst, size, "device %s", dev);
        return;
    }

    (void) ngx_http_iothub_twin_policy_escape(mod, sizeof(mod), module, mlen,
                                              1);

    snprintf(dst, size, "module %s of device %s", mod, dev);
}


/* the hub replaces tags and desired as a whole */

static int
ngx_http_iothub_twin_policy_replace(ngx_http_iothub_twin_policy_decision_t *d,
    const unsigned char *device, size_t dlen, const unsigned char *module,
    size_t mlen)
{
    int          rc;
    char         what[NGX_HTTP_IOTHUB_TWIN_TSHOWN];
    size_t       ri, di;
    unsigned     s;
    const char  *name;

    static const char *const  sections[] = { "tags", "properties.desired" };

    for (s = 0; s < 2; s++) {
        rc = ngx_http_iothub_twin_policy_check(d, s, NULL, 0, &ri, &di);

        if (rc == NGX_HTTP_IOTHUB_TWIN_POLICY_ALLOWED) {
            continue;
        }

        ngx_http_iothub_twin_policy_target_name(what, sizeof(what), device,
                                                dlen, module, mlen);

        name = sections[s];

        if (rc == NGX_HTTP_IOTHUB_TWIN_POLICY_DENIED) {
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
    int                                rc;
    char                               caller[NGX_HTTP_IOTHUB_TWIN_SHOWN];
    char                               shown[NGX_HTTP_IOTHUB_TWIN_PSHOWN];
    size_t                             n, skip, ri, di;
    unsigned                           s;
    const unsigned char               *p, *end, *dot;
    ngx_http_iothub_twin_policy_key_t  keys[NGX_HTTP_IOTHUB_TWIN_DEPTH];

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

    n = 0;
    rc = -1;

    if (s < 2) {
        rc = 0;
        end = path + len;

        for (p = path + skip; p < end; p = dot) {

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

            keys[n].data = p;
            keys[n].len = dot - p;
            n++;
        }
    }

    if (rc != 0) {
        (void) ngx_http_iothub_twin_policy_escape(shown, sizeof(shown), path,
                                                  len, 1);
        return ngx_http_iothub_twin_policy_refuse(d, path, len,
                                       "%s: not a writable path", shown);
    }

    rc = ngx_http_iothub_twin_policy_check(d, s, keys, n, &ri, &di);

    if (rc == NGX_HTTP_IOTHUB_TWIN_POLICY_ALLOWED) {
        return 0;
    }

    if (d->nrefused > 0) {
        d->nrefused++;
        return -1;
    }

    (void) ngx_http_iothub_twin_policy_escape(shown, sizeof(shown), path, len,
                                              1);
    (void) ngx_http_iothub_twin_policy_escape(caller, sizeof(caller),
                                   (const unsigned char *) d->caller->name,
                                   d->caller->name_len, 1);

    if (rc == NGX_HTTP_IOTHUB_TWIN_POLICY_DENIED) {
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
 * keys[0 .. n - 1] below section s: denied if a deny pattern of a matched
 * rule overlaps it, allowed if an allow pattern of one matches it
 */

static int
ngx_http_iothub_twin_policy_check(
    const ngx_http_iothub_twin_policy_decision_t *d, unsigned section,
    const ngx_http_iothub_twin_policy_key_t *keys, size_t n, size_t *ri,
    size_t *di)
{
    int                                        allowed;
    size_t                                     w, i, k, words;
    uint64_t                                   bits;
    const ngx_http_iothub_twin_policy_rule_t  *r;

    allowed = 0;
    words = (d->caller->nrules + 63) / 64;

    for (w = 0; w < words; w++) {

        for (bits = d->rules.w[w]; bits; bits &= bits - 1) {
            i = w * 64 + __builtin_ctzll(bits);
            r = &d->caller->rules[i];

            for (k = 0; k < r->ndeny[section]; k++) {
                if (ngx_http_iothub_twin_policy_overlaps(&r->deny[section][k],
                                                         keys, n))
                {
                    *ri = i;
                    *di = r->deny[section][k].index;
                    return NGX_HTTP_IOTHUB_TWIN_POLICY_DENIED;
                }
            }

            if (allowed) {
                continue;
            }

            for (k = 0; k < r->nallow[section]; k++) {
                if (ngx_http_iothub_twin_policy_allows(&r->allow[section][k],
                                                       keys, n))
                {
                    allowed = 1;
                    break;
                }
            }
        }
    }

    return allowed ? NGX_HTTP_IOTHUB_TWIN_POLICY_ALLOWED
                   : NGX_HTTP_IOTHUB_TWIN_POLICY_UNCOVERED;
}


/* the pattern matches the path itself */

static int
ngx_http_iothub_twin_policy_allows(
    const ngx_http_iothub_twin_policy_path_t *pp,
    const ngx_http_iothub_twin_policy_key_t *keys, size_t n)
{
    if (pp->rest ? n < pp->nsegs : n != pp->nsegs) {
        return 0;
    }

    return ngx_http_iothub_twin_policy_agree(pp, keys, pp->nsegs);
}


/*
 * The pattern matches the path, an ancestor or a descendant of it: the
 * keys both have agree as far as the shorter goes (a pattern can always
 * be continued, its segments being "*", "**" or keys).
 */

static int
ngx_http_iothub_twin_policy_overlaps(
    const ngx_http_iothub_twin_policy_path_t *pp,
    const ngx_http_iothub_twin_policy_key_t *keys, size_t n)
{
    return ngx_http_iothub_twin_policy_agree(pp, keys,
                                             (n < pp->nsegs) ? n : pp->nsegs);
}


/* the first m segments of the pattern match the first m keys */

static int
ngx_http_iothub_twin_policy_agree(const ngx_http_iothub_twin_policy_path_t *pp,
    const ngx_http_iothub_twin_policy_key_t *keys, size_t m)
{
    size_t                                    i;
    const ngx_http_iothub_twin_policy_seg_t  *seg;

    for (i = 0; i < m; i++) {
        seg = &pp->segs[i];

        if (!seg->any
            && (seg->len != keys[i].len
                || memcmp(seg->data, keys[i].data, seg->len) != 0))
        {
            return 0;
        }
    }

    return 1;
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

