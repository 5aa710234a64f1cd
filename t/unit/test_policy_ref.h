
/*
 * Copyright (C) ngx_iothub_twin developers
 *
 * The reference for test_policy_diff.c: the policy matcher as it was
 * before patterns were compiled (commit c550879: every pattern of every
 * matched rule compared in turn), its functions renamed ref_* and given
 * their own types.  The only change: IDs' globs use the compiled form's
 * wildcard bytes, so that an escaped '*' or '?' stays literal.
 *
 * Beside it, ref_read(): the read verdict of a node from the read
 * patterns and denies of the matched rules, compared in turn, as
 * ngx_http_iothub_twin_policy.h defines it; and ref_applies(): whether a
 * rule applies to a hub, its "hubs" compared in turn without case.
 */


#ifndef _TEST_POLICY_REF_H_INCLUDED_
#define _TEST_POLICY_REF_H_INCLUDED_


#include <stdint.h>
#include <string.h>


#define REF_EXACT      0
#define REF_PREFIX     1
#define REF_GLOB       2

#define REF_ANY_RUN    0x01
#define REF_ANY_ONE    0x02

#define REF_ALLOWED    0
#define REF_UNCOVERED  1
#define REF_DENIED     2

#define REF_READ_NONE  0
#define REF_READ_ALL   1
#define REF_READ_SOME  2

/* how a pattern stands to a path: it names the path or an ancestor ... */
#define REF_AT         1
/* ... or only descendants */
#define REF_BELOW      2


typedef struct {
    const unsigned char  *data;
    uint32_t              len;     /* prefix: without '*' */
    uint8_t               kind;
    uint8_t               system;  /* begins with '$' */
    uint8_t               first;
} ref_id_t;


typedef struct {
    const unsigned char  *data;
    uint32_t              len;
    uint32_t              any;
} ref_seg_t;


typedef struct {
    ref_seg_t            *segs;
    uint32_t              nsegs;   /* without "**" */
    uint16_t              rest;
    uint16_t              index;
} ref_path_t;


typedef struct {
    const unsigned char  *data;
    size_t                len;
} ref_key_t;


typedef struct {
    unsigned              ops;
    unsigned              device_twin;
    ref_id_t             *devices;
    ref_id_t             *modules;
    uint32_t              ndevices;
    uint32_t              nmodules;
    ref_path_t           *allow[2];
    ref_path_t           *deny[3];     /* tags, desired, reported */
    uint32_t              nallow[2];
    uint32_t              ndeny[3];

    /* "read": whole paths from the top level, prefixes included */
    ref_path_t           *read;
    uint32_t              nread;
    unsigned              read_given;

    /* "hubs", as written; nhubs 0: every hub */
    ref_key_t            *hubs;
    uint32_t              nhubs;
} ref_rule_t;


static int ref_id_match(const ref_id_t *id, const unsigned char *s,
    size_t len);
static int ref_glob(const unsigned char *p, size_t plen,
    const unsigned char *s, size_t slen);
static int ref_allows(const ref_path_t *pp, const ref_key_t *keys, size_t n);
static int ref_overlaps(const ref_path_t *pp, const ref_key_t *keys,
    size_t n);
static int ref_agree(const ref_path_t *pp, const ref_key_t *keys, size_t m);
static int ref_relate(const ref_seg_t *pre, size_t npre,
    const ref_path_t *pp, const ref_key_t *keys, size_t n);


/* the keys before a section's patterns: tags, desired, reported */

static const ref_seg_t  ref_prefixes[3][2] = {
    { { (const unsigned char *) "tags", 4, 0 }, { NULL, 0, 0 } },
    { { (const unsigned char *) "properties", 10, 0 },
      { (const unsigned char *) "desired", 7, 0 } },
    { { (const unsigned char *) "properties", 10, 0 },
      { (const unsigned char *) "reported", 8, 0 } }
};

static const size_t  ref_nprefix[3] = { 1, 2, 2 };


static int
ref_covers(const ref_rule_t *r, const unsigned char *device, size_t dlen,
    const unsigned char *module, size_t mlen)
{
    size_t  i;

    for (i = 0; i < r->ndevices; i++) {
        if (ref_id_match(&r->devices[i], device, dlen)) {
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

        if (ref_id_match(&r->modules[i], module, mlen)) {
            return 1;
        }
    }

    return 0;
}


/* hub NULL: no hub, which only rules without "hubs" apply to */

static int
ref_applies(const ref_rule_t *r, const unsigned char *hub, size_t len)
{
    size_t  i, k;
    int     a, b;

    if (r->nhubs == 0) {
        return 1;
    }

    if (hub == NULL) {
        return 0;
    }

    for (i = 0; i < r->nhubs; i++) {
        if (r->hubs[i].len != len) {
            continue;
        }

        for (k = 0; k < len; k++) {
            a = r->hubs[i].data[k];
            b = hub[k];

            if (a >= 'A' && a <= 'Z') {
                a += 'a' - 'A';
            }

            if (b >= 'A' && b <= 'Z') {
                b += 'a' - 'A';
            }

            if (a != b) {
                break;
            }
        }

        if (k == len) {
            return 1;
        }
    }

    return 0;
}


static int
ref_id_match(const ref_id_t *id, const unsigned char *s, size_t len)
{
    if (id->first != '\0' && id->first != s[0]) {
        return 0;
    }

    switch (id->kind) {

    case REF_EXACT:
        return len == id->len && memcmp(s, id->data, len) == 0;

    case REF_PREFIX:
        return len >= id->len && memcmp(s, id->data, id->len) == 0;

    default:
        return ref_glob(id->data, id->len, s, len);
    }
}


static int
ref_glob(const unsigned char *p, size_t plen, const unsigned char *s,
    size_t slen)
{
    size_t  pi, si, star, mark;

    pi = 0;
    si = 0;
    star = (size_t) -1;
    mark = 0;

    while (si < slen) {
        if (pi < plen && p[pi] == REF_ANY_RUN) {
            star = pi++;
            mark = si;

        } else if (pi < plen && (p[pi] == REF_ANY_ONE || p[pi] == s[si])) {
            pi++;
            si++;

        } else if (star != (size_t) -1) {
            pi = star + 1;
            si = ++mark;

        } else {
            return 0;
        }
    }

    while (pi < plen && p[pi] == REF_ANY_RUN) {
        pi++;
    }

    return pi == plen;
}


/* the old check: every deny, then every allow, of every matched rule */

static int
ref_check(const ref_rule_t *rules, size_t nrules, const uint64_t *matched,
    unsigned section, const ref_key_t *keys, size_t n, size_t *ri,
    size_t *di)
{
    int                allowed;
    size_t             w, i, k, words;
    uint64_t           bits;
    const ref_rule_t  *r;

    allowed = 0;
    words = (nrules + 63) / 64;

    for (w = 0; w < words; w++) {

        for (bits = matched[w]; bits; bits &= bits - 1) {
            i = w * 64 + __builtin_ctzll(bits);
            r = &rules[i];

            for (k = 0; k < r->ndeny[section]; k++) {
                if (ref_overlaps(&r->deny[section][k], keys, n)) {
                    *ri = i;
                    *di = r->deny[section][k].index;
                    return REF_DENIED;
                }
            }

            if (allowed) {
                continue;
            }

            for (k = 0; k < r->nallow[section]; k++) {
                if (ref_allows(&r->allow[section][k], keys, n)) {
                    allowed = 1;
                    break;
                }
            }
        }
    }

    return allowed ? REF_ALLOWED : REF_UNCOVERED;
}


static int
ref_allows(const ref_path_t *pp, const ref_key_t *keys, size_t n)
{
    if (pp->rest ? n < pp->nsegs : n != pp->nsegs) {
        return 0;
    }

    return ref_agree(pp, keys, pp->nsegs);
}


static int
ref_overlaps(const ref_path_t *pp, const ref_key_t *keys, size_t n)
{
    return ref_agree(pp, keys, (n < pp->nsegs) ? n : pp->nsegs);
}


static int
ref_agree(const ref_path_t *pp, const ref_key_t *keys, size_t m)
{
    size_t            i;
    const ref_seg_t  *seg;

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


/*
 * The read verdict of the node whose keys (from the top level) are
 * keys[0 .. n - 1], for the matched rules: every read pattern covers what
 * it names and everything below; a rule without "read" reads its tags and
 * desired patterns; denies of all three sections count.
 */

static int
ref_read(const ref_rule_t *rules, size_t nrules, const uint64_t *matched,
    const ref_key_t *keys, size_t n)
{
    int                at, below, dat, dbelow, rel, v;
    size_t             w, i, k, t, words;
    uint64_t           bits;
    const ref_rule_t  *r;

    static const char *const  always[] = {
        "deviceId", "moduleId", "etag", "version"
    };

    if (n == 1) {
        for (k = 0; k < 4; k++) {
            if (keys[0].len == strlen(always[k])
                && memcmp(keys[0].data, always[k], keys[0].len) == 0)
            {
                return REF_READ_ALL;
            }
        }
    }

    at = 0;
    below = 0;
    dat = 0;
    dbelow = 0;
    words = (nrules + 63) / 64;

    for (w = 0; w < words; w++) {

        for (bits = matched[w]; bits; bits &= bits - 1) {
            i = w * 64 + __builtin_ctzll(bits);
            r = &rules[i];

            if (r->read_given) {
                for (k = 0; k < r->nread; k++) {
                    rel = ref_relate(NULL, 0, &r->read[k], keys, n);
                    at |= (rel == REF_AT);
                    below |= (rel == REF_BELOW);
                }

            } else {
                for (t = 0; t < 2; t++) {
                    for (k = 0; k < r->nallow[t]; k++) {
                        rel = ref_relate(ref_prefixes[t], ref_nprefix[t],
                                         &r->allow[t][k], keys, n);
                        at |= (rel == REF_AT);
                        below |= (rel == REF_BELOW);
                    }
                }
            }

            for (t = 0; t < 3; t++) {
                for (k = 0; k < r->ndeny[t]; k++) {
                    rel = ref_relate(ref_prefixes[t], ref_nprefix[t],
                                     &r->deny[t][k], keys, n);
                    dat |= (rel == REF_AT);
                    dbelow |= (rel == REF_BELOW);
                }
            }
        }
    }

    if (dat) {
        v = REF_READ_NONE;

    } else if (at) {
        v = dbelow ? REF_READ_SOME : REF_READ_ALL;

    } else {
        v = below ? REF_READ_SOME : REF_READ_NONE;
    }

    /* the twin itself: at least the four members above */

    if (n == 0 && v == REF_READ_NONE) {
        v = REF_READ_SOME;
    }

    return v;
}


/* the prefix's keys, then the pattern's, against the path's */

static int
ref_relate(const ref_seg_t *pre, size_t npre, const ref_path_t *pp,
    const ref_key_t *keys, size_t n)
{
    size_t            i, m, total;
    const ref_seg_t  *seg;

    total = npre + pp->nsegs;
    m = (total < n) ? total : n;

    for (i = 0; i < m; i++) {
        seg = (i < npre) ? &pre[i] : &pp->segs[i - npre];

        if (!seg->any
            && (seg->len != keys[i].len
                || memcmp(seg->data, keys[i].data, seg->len) != 0))
        {
            return 0;
        }
    }

    return (total <= n) ? REF_AT : REF_BELOW;
}


#endif /* _TEST_POLICY_REF_H_INCLUDED_ */
