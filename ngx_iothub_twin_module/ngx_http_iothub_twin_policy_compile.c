
/*
 * Copyright (C) ngx_iothub_twin developers
 *
 * The policy compiler: at configuration time, turns a caller's rules into
 * what the matcher looks up instead of scanning lists (rule bit sets by
 * operation, exact IDs by hash, one path automaton per section).
 *
 * A section's path patterns, allow and deny of all the caller's rules,
 * first make a trie over segments (literal children, a "*" child, and a
 * "sticky" child standing for a trailing "**" or a deny's subtree, which
 * matches any number of further keys).  The trie is then made
 * deterministic: a state is the set of trie nodes the keys walked so far
 * reach, with one edge per literal key that leads somewhere else than
 * "any other key" does.  So a path costs one lookup per key, whatever
 * the number of patterns.  Callers whose patterns are the same (rule by
 * rule) share one automaton.
 *
 * The read scopes make one more automaton of the same kind, over whole
 * paths from the twin's top level: each rule's read patterns (or, without
 * "read", its tags and desired patterns below "tags" and
 * "properties.desired"), every one a subtree, and the denies of the three
 * sections below their own prefix.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_iothub_twin_policy_data.h"


/* states of one section's automaton; more is a configuration error */
#define NGX_HTTP_IOTHUB_TWIN_POLICY_MAX_STATES  65536

#define NGX_HTTP_IOTHUB_TWIN_POLICY_BUCKETS     4096

/* wild ID patterns of a caller from which they are indexed by first byte */
#define NGX_HTTP_IOTHUB_TWIN_POLICY_INDEX_WILD  16


typedef struct {
    uint32_t                              lit;     /* first edge + 1 */
    uint32_t                              star;    /* node + 1 */
    uint32_t                              rest;    /* sticky node + 1 */
    uint32_t                              sticky;
} ngx_http_iothub_twin_policy_node_t;


typedef struct {
    const unsigned char                  *data;
    uint32_t                              len;
    uint32_t                              child;
    uint32_t                              next;    /* edge + 1 */
} ngx_http_iothub_twin_policy_lit_t;


/* a pattern as an automaton takes it: its rule, and the keys before it */

typedef struct {
    const ngx_http_iothub_twin_policy_path_t  *pp;
    uint32_t                                   rule;
    uint16_t                                   deny;
    uint16_t                                   prefix;  /* see prefixes */
} ngx_http_iothub_twin_policy_item_t;


/* a growing array */

typedef struct {
    void                                 *elts;
    size_t                                n;
    size_t                                cap;
    size_t                                size;
} ngx_http_iothub_twin_policy_vec_t;


typedef struct {
    size_t                                nwords;

    /* the read automaton: every allow pattern covers a subtree */
    unsigned                              read;

    /* the trie; its bit sets: node i's at words[2 i W] and [(2 i + 1) W] */
    ngx_http_iothub_twin_policy_vec_t     nodes;
    ngx_http_iothub_twin_policy_vec_t     lits;
    ngx_http_iothub_twin_policy_vec_t     bits;

    /* the automaton: states, their node sets, their edges, bit sets */
    ngx_http_iothub_twin_policy_vec_t     states;
    ngx_http_iothub_twin_policy_vec_t     sets;    /* offset, count */
    ngx_http_iothub_twin_policy_vec_t     members;
    ngx_http_iothub_twin_policy_vec_t     edges;
    ngx_http_iothub_twin_policy_vec_t     words;

    /* hash indexes of states by node set and of bit sets by content */
    uint32_t                             *set_index;
    uint32_t                             *word_index;
    size_t                                set_mask;
    size_t                                word_mask;
    size_t                                nword_sets;

    /* scratch */
    ngx_http_iothub_twin_policy_vec_t     keys;
    ngx_http_iothub_twin_policy_vec_t     other;
    ngx_http_iothub_twin_policy_vec_t     next;
    uint64_t                             *acc;
} ngx_http_iothub_twin_policy_build_t;


typedef struct ngx_http_iothub_twin_policy_shared_s
    ngx_http_iothub_twin_policy_shared_t;

struct ngx_http_iothub_twin_policy_shared_s {
    ngx_http_iothub_twin_policy_shared_t  *next;
    ngx_http_iothub_twin_policy_dfa_t     *dfa;
    uint32_t                               hash;
    size_t                                 len;
    unsigned char                          key[1];
};


typedef struct {
    ngx_http_iothub_twin_policy_shared_t  *buckets[
                                          NGX_HTTP_IOTHUB_TWIN_POLICY_BUCKETS];
} ngx_http_iothub_twin_policy_cache_t;


static void *ngx_http_iothub_twin_policy_push(
    ngx_http_iothub_twin_policy_vec_t *v, size_t n);
static void ngx_http_iothub_twin_policy_vec_free(
    ngx_http_iothub_twin_policy_vec_t *v);
static int ngx_http_iothub_twin_policy_compile_section(
    ngx_http_iothub_twin_policy_t *policy, ngx_http_iothub_twin_caller_t *c,
    ngx_http_iothub_twin_policy_cache_t *cache, unsigned s, char *err,
    size_t err_len);
static int ngx_http_iothub_twin_policy_compile_ids(
    ngx_http_iothub_twin_policy_t *policy, ngx_http_iothub_twin_caller_t *c,
    int modules);
static int ngx_http_iothub_twin_policy_compile_hubs(
    ngx_http_iothub_twin_policy_t *policy, ngx_http_iothub_twin_caller_t *c);
static int ngx_http_iothub_twin_policy_index_wild(
    ngx_http_iothub_twin_policy_t *policy,
    ngx_http_iothub_twin_policy_ids_t *ids);
static int ngx_http_iothub_twin_policy_items(
    const ngx_http_iothub_twin_caller_t *c, unsigned s,
    ngx_http_iothub_twin_policy_vec_t *items);
static int ngx_http_iothub_twin_policy_item(
    ngx_http_iothub_twin_policy_vec_t *items,
    const ngx_http_iothub_twin_policy_path_t *list, size_t n, size_t rule,
    unsigned deny, unsigned prefix);
static int ngx_http_iothub_twin_policy_serialize(
    const ngx_http_iothub_twin_caller_t *c, unsigned s,
    const ngx_http_iothub_twin_policy_vec_t *items,
    ngx_http_iothub_twin_policy_vec_t *out);
static void ngx_http_iothub_twin_policy_put_item(
    ngx_http_iothub_twin_policy_vec_t *out,
    const ngx_http_iothub_twin_policy_item_t *it, int *failed);
static int ngx_http_iothub_twin_policy_compile_paths(
    ngx_http_iothub_twin_policy_t *policy,
    const ngx_http_iothub_twin_caller_t *c, unsigned s,
    const ngx_http_iothub_twin_policy_vec_t *items,
    ngx_http_iothub_twin_policy_dfa_t **dfa, char *err, size_t err_len);
static int ngx_http_iothub_twin_policy_trie_add(
    ngx_http_iothub_twin_policy_build_t *b,
    const ngx_http_iothub_twin_policy_item_t *it);
static int ngx_http_iothub_twin_policy_trie_seg(
    ngx_http_iothub_twin_policy_build_t *b,
    const ngx_http_iothub_twin_policy_seg_t *seg, uint32_t *node);
static int ngx_http_iothub_twin_policy_trie_node(
    ngx_http_iothub_twin_policy_build_t *b, uint32_t sticky);
static void ngx_http_iothub_twin_policy_trie_below(
    ngx_http_iothub_twin_policy_build_t *b);
static void ngx_http_iothub_twin_policy_trie_or(
    ngx_http_iothub_twin_policy_build_t *b, size_t node, size_t child);
static int ngx_http_iothub_twin_policy_determinize(
    ngx_http_iothub_twin_policy_build_t *b, char *err, size_t err_len);
static int ngx_http_iothub_twin_policy_step_keys(
    ngx_http_iothub_twin_policy_build_t *b, size_t i);
static int ngx_http_iothub_twin_policy_copy(
    ngx_http_iothub_twin_policy_vec_t *dst,
    const ngx_http_iothub_twin_policy_vec_t *src);
static int ngx_http_iothub_twin_policy_step_other(
    ngx_http_iothub_twin_policy_build_t *b, const uint32_t *set, size_t n);
static int ngx_http_iothub_twin_policy_add_node(
    ngx_http_iothub_twin_policy_build_t *b,
    ngx_http_iothub_twin_policy_vec_t *v, uint32_t node);
static int ngx_http_iothub_twin_policy_state(
    ngx_http_iothub_twin_policy_build_t *b,
    ngx_http_iothub_twin_policy_vec_t *v, uint32_t *state);
static int ngx_http_iothub_twin_policy_state_bits(
    ngx_http_iothub_twin_policy_build_t *b, const uint32_t *set, size_t n,
    ngx_http_iothub_twin_policy_state_t *st);
static int ngx_http_iothub_twin_policy_words(
    ngx_http_iothub_twin_policy_build_t *b, const uint64_t *w,
    uint32_t *offset);
static ngx_http_iothub_twin_policy_dfa_t *ngx_http_iothub_twin_policy_emit(
    ngx_http_iothub_twin_policy_t *policy,
    ngx_http_iothub_twin_policy_build_t *b);
static void ngx_http_iothub_twin_policy_build_free(
    ngx_http_iothub_twin_policy_build_t *b);
static int ngx_http_iothub_twin_policy_cmp_u32(const void *a, const void *b);
static int ngx_http_iothub_twin_policy_cmp_key(const void *a, const void *b);
static uint32_t ngx_http_iothub_twin_policy_hash_set(const uint32_t *set,
    size_t n);


#define ngx_http_iothub_twin_policy_elt(v, type, i)                          \
    (&((type *) (v)->elts)[i])

#define ngx_http_iothub_twin_policy_node(b, i)                               \
    ngx_http_iothub_twin_policy_elt(&(b)->nodes,                             \
                                    ngx_http_iothub_twin_policy_node_t, i)

/* node i's allow bits (allow at the node, or "**" on a sticky node) */
#define ngx_http_iothub_twin_policy_allow_bits(b, i)                         \
    (&((uint64_t *) (b)->bits.elts)[(2 * (size_t) (i)) * (b)->nwords])

/* deny on a sticky node, deny ending below for another node */
#define ngx_http_iothub_twin_policy_deny_bits(b, i)                          \
    (&((uint64_t *) (b)->bits.elts)[(2 * (size_t) (i) + 1) * (b)->nwords])

#define ngx_http_iothub_twin_policy_set_bit(w, i)                            \
    ((w)[(i) / 64] |= (uint64_t) 1 << ((i) % 64))


/*
 * The keys before a read automaton's patterns: item prefix p stands for
 * prefixes[first[p] .. first[p + 1] - 1] (none, tags, properties.desired,
 * properties.reported).
 */

static const ngx_http_iothub_twin_policy_seg_t
    ngx_http_iothub_twin_policy_prefixes[] = {
    { (const unsigned char *) "tags", 4, 0 },
    { (const unsigned char *) "properties", 10, 0 },
    { (const unsigned char *) "desired", 7, 0 },
    { (const unsigned char *) "properties", 10, 0 },
    { (const unsigned char *) "reported", 8, 0 }
};

static const uint32_t  ngx_http_iothub_twin_policy_prefix_first[] = {
    0, 0, 1, 3, 5
};


void *
ngx_http_iothub_twin_policy_cache_create(void)
{
    return calloc(1, sizeof(ngx_http_iothub_twin_policy_cache_t));
}


void
ngx_http_iothub_twin_policy_cache_free(void *data)
{
    size_t                                 i;
    ngx_http_iothub_twin_policy_cache_t   *cache = data;
    ngx_http_iothub_twin_policy_shared_t  *sh, *next;

    if (cache == NULL) {
        return;
    }

    for (i = 0; i < NGX_HTTP_IOTHUB_TWIN_POLICY_BUCKETS; i++) {
        for (sh = cache->buckets[i]; sh; sh = next) {
            next = sh->next;
            free(sh);
        }
    }

    free(cache);
}


int
ngx_http_iothub_twin_policy_compile(ngx_http_iothub_twin_policy_t *policy,
    ngx_http_iothub_twin_caller_t *c, void *data, char *err, size_t err_len)
{
    int                                   op, rc;
    size_t                                i, w;
    uint64_t                             *bits;
    unsigned                              s;
    ngx_http_iothub_twin_policy_rule_t   *r;
    ngx_http_iothub_twin_policy_cache_t  *cache = data;

    w = (c->nrules + 63) / 64;
    c->nwords = w;

    bits = ngx_http_iothub_twin_policy_alloc(policy,
                                             4 * w * sizeof(uint64_t));
    if (bits == NULL) {
        goto nomem;
    }

    c->ops[0] = NULL;
    c->ops[1] = bits;
    c->ops[2] = bits + w;
    c->ops[3] = bits + 2 * w;
    c->device_twin = bits + 3 * w;

    for (i = 0; i < c->nrules; i++) {
        r = &c->rules[i];

        for (op = NGX_HTTP_IOTHUB_TWIN_OP_READ;
             op <= NGX_HTTP_IOTHUB_TWIN_OP_REPLACE;
             op++)
        {
            if (r->ops & (1u << op)) {
                ngx_http_iothub_twin_policy_set_bit(c->ops[op], i);
            }
        }

        if (r->device_twin) {
            ngx_http_iothub_twin_policy_set_bit(c->device_twin, i);
        }
    }

    if (ngx_http_iothub_twin_policy_compile_ids(policy, c, 0) != 0
        || ngx_http_iothub_twin_policy_compile_ids(policy, c, 1) != 0
        || ngx_http_iothub_twin_policy_compile_hubs(policy, c) != 0)
    {
        goto nomem;
    }

    for (s = 0; s <= NGX_HTTP_IOTHUB_TWIN_POLICY_READ; s++) {
        if (s == NGX_HTTP_IOTHUB_TWIN_POLICY_REPORTED) {
            continue;
        }

        rc = ngx_http_iothub_twin_policy_compile_section(policy, c, cache, s,
                                                         err, err_len);
        if (rc == -2) {
            return -1;
        }

        if (rc != 0) {
            goto nomem;
        }
    }

    return 0;

nomem:

    if (err != NULL && err_len > 0) {
        strncpy(err, "out of memory", err_len - 1);
        err[err_len - 1] = '\0';
    }

    return -1;
}


/*
 * The automaton of section s (or of the read scopes), or one an earlier
 * caller with the same patterns has: 0, -1 out of memory, -2 with a
 * message in err.
 */

static int
ngx_http_iothub_twin_policy_compile_section(
    ngx_http_iothub_twin_policy_t *policy, ngx_http_iothub_twin_caller_t *c,
    ngx_http_iothub_twin_policy_cache_t *cache, unsigned s, char *err,
    size_t err_len)
{
    int                                    rc;
    uint32_t                               h;
    ngx_http_iothub_twin_policy_vec_t      key, items;
    ngx_http_iothub_twin_policy_dfa_t    **dfa;
    ngx_http_iothub_twin_policy_shared_t  *sh, **bucket;

    dfa = (s == NGX_HTTP_IOTHUB_TWIN_POLICY_READ) ? &c->read : &c->paths[s];
    *dfa = NULL;

    memset(&key, 0, sizeof(key));
    key.size = 1;
    memset(&items, 0, sizeof(items));
    items.size = sizeof(ngx_http_iothub_twin_policy_item_t);

    rc = -1;

    if (ngx_http_iothub_twin_policy_items(c, s, &items) != 0) {
        goto done;
    }

    if (items.n == 0) {

        /* no rule names a path there */

        rc = 0;
        goto done;
    }

    if (ngx_http_iothub_twin_policy_serialize(c, s, &items, &key) != 0) {
        goto done;
    }

    h = ngx_http_iothub_twin_policy_hash(key.elts, key.n);
    bucket = NULL;

    if (cache != NULL) {
        bucket = &cache->buckets[h % NGX_HTTP_IOTHUB_TWIN_POLICY_BUCKETS];

        for (sh = *bucket; sh; sh = sh->next) {
            if (sh->hash == h && sh->len == key.n
                && memcmp(sh->key, key.elts, key.n) == 0)
            {
                break;
            }
        }

        if (sh != NULL) {
            *dfa = sh->dfa;
            rc = 0;
            goto done;
        }
    }

    if (ngx_http_iothub_twin_policy_compile_paths(policy, c, s, &items, dfa,
                                                  err, err_len)
        != 0)
    {
        rc = -2;
        goto done;
    }

    if (bucket != NULL) {
        sh = malloc(sizeof(ngx_http_iothub_twin_policy_shared_t) + key.n);
        if (sh == NULL) {
            goto done;
        }

        sh->dfa = *dfa;
        sh->hash = h;
        sh->len = key.n;
        memcpy(sh->key, key.elts, key.n);
        sh->next = *bucket;
        *bucket = sh;
    }

    rc = 0;

done:

    ngx_http_iothub_twin_policy_vec_free(&key);
    ngx_http_iothub_twin_policy_vec_free(&items);

    return rc;
}


/* exact IDs into one hash table, the others into one list */

static int
ngx_http_iothub_twin_policy_compile_ids(ngx_http_iothub_twin_policy_t *policy,
    ngx_http_iothub_twin_caller_t *c, int modules)
{
    size_t                                i, k, nexact, nwild, size, slot;
    uint32_t                              n, h;
    ngx_http_iothub_twin_policy_id_t     *id, *list;
    ngx_http_iothub_twin_policy_ids_t    *ids;
    ngx_http_iothub_twin_policy_rule_t   *r;
    ngx_http_iothub_twin_policy_exact_t  *e;

    ids = modules ? &c->modules : &c->devices;

    nexact = 0;
    nwild = 0;

    for (i = 0; i < c->nrules; i++) {
        r = &c->rules[i];
        list = modules ? r->modules : r->devices;
        n = modules ? r->nmodules : r->ndevices;

        for (k = 0; k < n; k++) {
            if (list[k].kind == NGX_HTTP_IOTHUB_TWIN_POLICY_EXACT) {
                nexact++;

            } else {
                nwild++;
            }
        }
    }

    if (nwild > 0) {
        ids->wild = ngx_http_iothub_twin_policy_alloc(policy,
                           nwild * sizeof(ngx_http_iothub_twin_policy_id_t));
        if (ids->wild == NULL) {
            return -1;
        }
    }

    if (nexact > 0) {

        /* at most half full */

        for (size = 8; size < 2 * nexact; size *= 2) { /* void */ }

        ids->slots = ngx_http_iothub_twin_policy_alloc(policy,
                         size * sizeof(ngx_http_iothub_twin_policy_exact_t));
        if (ids->slots == NULL) {
            return -1;
        }

        ids->mask = (uint32_t) (size - 1);
    }

    for (i = 0; i < c->nrules; i++) {
        r = &c->rules[i];
        list = modules ? r->modules : r->devices;
        n = modules ? r->nmodules : r->ndevices;

        for (k = 0; k < n; k++) {
            id = &list[k];

            if (id->kind != NGX_HTTP_IOTHUB_TWIN_POLICY_EXACT) {
                ids->wild[ids->nwild++] = *id;
                continue;
            }

            h = ngx_http_iothub_twin_policy_hash(id->data, id->len);

            for (slot = h & ids->mask; ids->slots[slot].rule;
                 slot = (slot + 1) & ids->mask)
            { /* void */ }

            e = &ids->slots[slot];
            e->data = id->data;
            e->hash = h;
            e->len = (uint16_t) id->len;
            e->rule = (uint16_t) (i + 1);
            ids->n++;
        }
    }

    if (nwild < NGX_HTTP_IOTHUB_TWIN_POLICY_INDEX_WILD) {
        return 0;
    }

    return ngx_http_iothub_twin_policy_index_wild(policy, ids);
}


/*
 * The rules with "hubs" as a bit set, and the hubs they name, lowercase,
 * into one hash table, each with the rules naming it; nothing for a
 * caller without such rules, whose decisions then skip hubs entirely.
 */

static int
ngx_http_iothub_twin_policy_compile_hubs(ngx_http_iothub_twin_policy_t *policy,
    ngx_http_iothub_twin_caller_t *c)
{
    size_t                                   i, k, j, n, size, slot;
    uint32_t                                 h;
    uint64_t                                *rules;
    unsigned char                            lower[
                                          NGX_HTTP_IOTHUB_TWIN_POLICY_HUB_MAX];
    unsigned char                           *data;
    ngx_http_iothub_twin_policy_rule_t      *r;
    ngx_http_iothub_twin_policy_hub_slot_t  *e;

    n = 0;

    for (i = 0; i < c->nrules; i++) {
        n += c->rules[i].nhubs;
    }

    if (n == 0) {
        return 0;
    }

    c->hubbed = ngx_http_iothub_twin_policy_alloc(policy,
                                             c->nwords * sizeof(uint64_t));

    /* at most half full */

    for (size = 8; size < 2 * n; size *= 2) { /* void */ }

    c->hub_slots = ngx_http_iothub_twin_policy_alloc(policy,
                      size * sizeof(ngx_http_iothub_twin_policy_hub_slot_t));

    if (c->hubbed == NULL || c->hub_slots == NULL) {
        return -1;
    }

    c->hub_mask = (uint32_t) (size - 1);

    for (i = 0; i < c->nrules; i++) {
        r = &c->rules[i];

        if (r->nhubs == 0) {
            continue;
        }

        ngx_http_iothub_twin_policy_set_bit(c->hubbed, i);

        for (k = 0; k < r->nhubs; k++) {
            for (j = 0; j < r->hubs[k].len; j++) {
                lower[j] = ngx_http_iothub_twin_policy_lower(
                                                         r->hubs[k].data[j]);
            }

            h = ngx_http_iothub_twin_policy_hash(lower, r->hubs[k].len);

            for (slot = h & c->hub_mask; c->hub_slots[slot].data != NULL;
                 slot = (slot + 1) & c->hub_mask)
            {
                e = &c->hub_slots[slot];

                if (e->hash == h && e->len == r->hubs[k].len
                    && memcmp(e->data, lower, e->len) == 0)
                {
                    break;
                }
            }

            e = &c->hub_slots[slot];

            if (e->data == NULL) {
                data = ngx_http_iothub_twin_policy_alloc(policy,
                                                         r->hubs[k].len);
                rules = ngx_http_iothub_twin_policy_alloc(policy,
                                             c->nwords * sizeof(uint64_t));
                if (data == NULL || rules == NULL) {
                    return -1;
                }

                memcpy(data, lower, r->hubs[k].len);
                e->data = data;
                e->rules = rules;
                e->hash = h;
                e->len = r->hubs[k].len;
            }

            ngx_http_iothub_twin_policy_set_bit(e->rules, i);
        }
    }

    return 0;
}


/* a counting sort of the wild patterns by first byte, stable */

static int
ngx_http_iothub_twin_policy_index_wild(ngx_http_iothub_twin_policy_t *policy,
    ngx_http_iothub_twin_policy_ids_t *ids)
{
    size_t                             i;
    uint32_t                          *first, pos[256];
    ngx_http_iothub_twin_policy_id_t  *sorted;

    first = ngx_http_iothub_twin_policy_alloc(policy, 257 * sizeof(uint32_t));
    sorted = ngx_http_iothub_twin_policy_alloc(policy,
                      ids->nwild * sizeof(ngx_http_iothub_twin_policy_id_t));
    if (first == NULL || sorted == NULL) {
        return -1;
    }

    for (i = 0; i < ids->nwild; i++) {
        first[ids->wild[i].first + 1]++;
    }

    for (i = 1; i <= 256; i++) {
        first[i] += first[i - 1];
    }

    memcpy(pos, first, sizeof(pos));

    for (i = 0; i < ids->nwild; i++) {
        sorted[pos[ids->wild[i].first]++] = ids->wild[i];
    }

    /* the unsorted copy stays in the policy's memory, unused */

    ids->wild = sorted;
    ids->first = first;

    return 0;
}


/*
 * The patterns of section s's automaton, rule by rule: allow, then deny.
 * For the read automaton: the rule's read patterns, or without "read" its
 * tags and desired patterns below their section; then its denies below
 * theirs.
 */

static int
ngx_http_iothub_twin_policy_items(const ngx_http_iothub_twin_caller_t *c,
    unsigned s, ngx_http_iothub_twin_policy_vec_t *items)
{
    int                                        rc;
    size_t                                     i;
    unsigned                                   t;
    const ngx_http_iothub_twin_policy_rule_t  *r;

    rc = 0;

    for (i = 0; i < c->nrules; i++) {
        r = &c->rules[i];

        if (s != NGX_HTTP_IOTHUB_TWIN_POLICY_READ) {
            rc |= ngx_http_iothub_twin_policy_item(items, r->allow[s],
                                                   r->nallow[s], i, 0, 0);
            rc |= ngx_http_iothub_twin_policy_item(items, r->deny[s],
                                                   r->ndeny[s], i, 1, 0);
            continue;
        }

        if (r->read_given) {
            rc |= ngx_http_iothub_twin_policy_item(items, r->read, r->nread,
                                                   i, 0, 0);

        } else {
            for (t = 0; t < 2; t++) {
                rc |= ngx_http_iothub_twin_policy_item(items, r->allow[t],
                                                       r->nallow[t], i, 0,
                                                       t + 1);
            }
        }

        for (t = 0; t < 3; t++) {
            rc |= ngx_http_iothub_twin_policy_item(items, r->deny[t],
                                                   r->ndeny[t], i, 1, t + 1);
        }
    }

    return rc ? -1 : 0;
}


static int
ngx_http_iothub_twin_policy_item(ngx_http_iothub_twin_policy_vec_t *items,
    const ngx_http_iothub_twin_policy_path_t *list, size_t n, size_t rule,
    unsigned deny, unsigned prefix)
{
    size_t                               k;
    ngx_http_iothub_twin_policy_item_t  *it;

    for (k = 0; k < n; k++) {
        it = ngx_http_iothub_twin_policy_push(items, 1);
        if (it == NULL) {
            return -1;
        }

        it->pp = &list[k];
        it->rule = (uint32_t) rule;
        it->deny = (uint16_t) deny;
        it->prefix = (uint16_t) prefix;
    }

    return 0;
}


/*
 * What the automaton depends on, as bytes: which automaton, the number of
 * rules, and each pattern with its rule, kind and prefix.  Callers with
 * the same bytes share one automaton.
 */

static int
ngx_http_iothub_twin_policy_serialize(const ngx_http_iothub_twin_caller_t *c,
    unsigned s, const ngx_http_iothub_twin_policy_vec_t *items,
    ngx_http_iothub_twin_policy_vec_t *out)
{
    int             failed;
    size_t          i;
    uint32_t        head[2];
    unsigned char  *p;

    failed = 0;
    head[0] = s;
    head[1] = (uint32_t) c->nrules;

    p = ngx_http_iothub_twin_policy_push(out, sizeof(head));
    if (p == NULL) {
        return -1;
    }

    memcpy(p, head, sizeof(head));

    for (i = 0; i < items->n; i++) {
        ngx_http_iothub_twin_policy_put_item(out,
                              ngx_http_iothub_twin_policy_elt(items,
                                  ngx_http_iothub_twin_policy_item_t, i),
                              &failed);
    }

    return failed ? -1 : 0;
}


static void
ngx_http_iothub_twin_policy_put_item(ngx_http_iothub_twin_policy_vec_t *out,
    const ngx_http_iothub_twin_policy_item_t *it, int *failed)
{
    size_t                                     i, size;
    uint32_t                                   head[4], len;
    unsigned char                             *p;
    const ngx_http_iothub_twin_policy_seg_t   *seg;
    const ngx_http_iothub_twin_policy_path_t  *pp;

    pp = it->pp;

    head[0] = (it->deny ? 'D' : 'A') | ((uint32_t) it->prefix << 8);
    head[1] = it->rule;
    head[2] = pp->nsegs;
    head[3] = pp->rest;

    p = ngx_http_iothub_twin_policy_push(out, sizeof(head));
    if (p == NULL) {
        *failed = 1;
        return;
    }

    memcpy(p, head, sizeof(head));

    for (i = 0; i < pp->nsegs; i++) {
        seg = &pp->segs[i];

        /* the wildcard "*" as a length no key has */

        len = seg->any ? UINT32_MAX : seg->len;
        size = sizeof(uint32_t) + (seg->any ? 0 : seg->len);

        p = ngx_http_iothub_twin_policy_push(out, size);
        if (p == NULL) {
            *failed = 1;
            return;
        }

        memcpy(p, &len, sizeof(uint32_t));

        if (!seg->any) {
            memcpy(p + sizeof(uint32_t), seg->data, seg->len);
        }
    }
}


static int
ngx_http_iothub_twin_policy_compile_paths(
    ngx_http_iothub_twin_policy_t *policy,
    const ngx_http_iothub_twin_caller_t *c, unsigned s,
    const ngx_http_iothub_twin_policy_vec_t *items,
    ngx_http_iothub_twin_policy_dfa_t **dfa, char *err, size_t err_len)
{
    int                                   rc;
    size_t                                i;
    ngx_http_iothub_twin_policy_build_t   b;

    memset(&b, 0, sizeof(b));

    b.nwords = c->nwords;
    b.read = (s == NGX_HTTP_IOTHUB_TWIN_POLICY_READ);
    b.nodes.size = sizeof(ngx_http_iothub_twin_policy_node_t);
    b.lits.size = sizeof(ngx_http_iothub_twin_policy_lit_t);
    b.bits.size = 2 * b.nwords * sizeof(uint64_t);
    b.states.size = sizeof(ngx_http_iothub_twin_policy_state_t);
    b.sets.size = 2 * sizeof(uint32_t);
    b.members.size = sizeof(uint32_t);
    b.edges.size = sizeof(ngx_http_iothub_twin_policy_edge_t);
    b.words.size = sizeof(uint64_t);
    b.keys.size = sizeof(ngx_http_iothub_twin_policy_lit_t);
    b.other.size = sizeof(uint32_t);
    b.next.size = sizeof(uint32_t);

    rc = -1;

    b.acc = calloc(4 * b.nwords, sizeof(uint64_t));

    if (b.acc == NULL
        || ngx_http_iothub_twin_policy_trie_node(&b, 0) != 0)
    {
        goto failed;
    }

    for (i = 0; i < items->n; i++) {
        if (ngx_http_iothub_twin_policy_trie_add(&b,
                              ngx_http_iothub_twin_policy_elt(items,
                                  ngx_http_iothub_twin_policy_item_t, i))
            != 0)
        {
            goto failed;
        }
    }

    ngx_http_iothub_twin_policy_trie_below(&b);

    rc = ngx_http_iothub_twin_policy_determinize(&b, err, err_len);

    if (rc == -1) {
        goto failed;
    }

    if (rc == 0) {
        *dfa = ngx_http_iothub_twin_policy_emit(policy, &b);

        if (*dfa == NULL) {
            rc = -1;
            goto failed;
        }
    }

    ngx_http_iothub_twin_policy_build_free(&b);

    return rc == 0 ? 0 : -1;

failed:

    ngx_http_iothub_twin_policy_build_free(&b);

    if (rc == -1 && err != NULL && err_len > 0) {
        strncpy(err, "out of memory", err_len - 1);
        err[err_len - 1] = '\0';
    }

    return -1;
}


/*
 * An allow pattern marks the node it ends on, or with "**" that node's
 * sticky child; a deny pattern marks the sticky child (it covers the
 * subtree, with or without "**"), and so does a read pattern.
 */

static int
ngx_http_iothub_twin_policy_trie_add(ngx_http_iothub_twin_policy_build_t *b,
    const ngx_http_iothub_twin_policy_item_t *it)
{
    size_t                                     i;
    uint32_t                                   node;
    ngx_http_iothub_twin_policy_node_t        *nd;
    const ngx_http_iothub_twin_policy_path_t  *pp;

    pp = it->pp;
    node = 0;

    for (i = ngx_http_iothub_twin_policy_prefix_first[it->prefix];
         i < ngx_http_iothub_twin_policy_prefix_first[it->prefix + 1];
         i++)
    {
        if (ngx_http_iothub_twin_policy_trie_seg(b,
                                   &ngx_http_iothub_twin_policy_prefixes[i],
                                   &node)
            != 0)
        {
            return -1;
        }
    }

    for (i = 0; i < pp->nsegs; i++) {
        if (ngx_http_iothub_twin_policy_trie_seg(b, &pp->segs[i], &node)
            != 0)
        {
            return -1;
        }
    }

    if (!it->deny && !pp->rest && !b->read) {
        ngx_http_iothub_twin_policy_set_bit(
            ngx_http_iothub_twin_policy_allow_bits(b, node), it->rule);
        return 0;
    }

    nd = ngx_http_iothub_twin_policy_node(b, node);

    if (nd->rest == 0) {
        if (ngx_http_iothub_twin_policy_trie_node(b, 1) != 0) {
            return -1;
        }

        nd = ngx_http_iothub_twin_policy_node(b, node);
        nd->rest = (uint32_t) b->nodes.n;
    }

    node = nd->rest - 1;

    if (it->deny) {
        ngx_http_iothub_twin_policy_set_bit(
            ngx_http_iothub_twin_policy_deny_bits(b, node), it->rule);

    } else {
        ngx_http_iothub_twin_policy_set_bit(
            ngx_http_iothub_twin_policy_allow_bits(b, node), it->rule);
    }

    return 0;
}


/* *node: its child for the segment, made if there is none yet */

static int
ngx_http_iothub_twin_policy_trie_seg(ngx_http_iothub_twin_policy_build_t *b,
    const ngx_http_iothub_twin_policy_seg_t *seg, uint32_t *node)
{
    uint32_t                             e;
    ngx_http_iothub_twin_policy_lit_t   *lit;
    ngx_http_iothub_twin_policy_node_t  *nd;

    nd = ngx_http_iothub_twin_policy_node(b, *node);

    if (seg->any) {
        if (nd->star == 0) {
            if (ngx_http_iothub_twin_policy_trie_node(b, 0) != 0) {
                return -1;
            }

            nd = ngx_http_iothub_twin_policy_node(b, *node);
            nd->star = (uint32_t) b->nodes.n;
        }

        *node = nd->star - 1;
        return 0;
    }

    for (e = nd->lit; e; e = lit->next) {
        lit = ngx_http_iothub_twin_policy_elt(&b->lits,
                                    ngx_http_iothub_twin_policy_lit_t, e - 1);

        if (lit->len == seg->len
            && memcmp(lit->data, seg->data, seg->len) == 0)
        {
            *node = lit->child;
            return 0;
        }
    }

    if (ngx_http_iothub_twin_policy_trie_node(b, 0) != 0) {
        return -1;
    }

    lit = ngx_http_iothub_twin_policy_push(&b->lits, 1);
    if (lit == NULL) {
        return -1;
    }

    nd = ngx_http_iothub_twin_policy_node(b, *node);

    lit->data = seg->data;
    lit->len = seg->len;
    lit->child = (uint32_t) b->nodes.n - 1;
    lit->next = nd->lit;
    nd->lit = (uint32_t) b->lits.n;

    *node = lit->child;

    return 0;
}


static int
ngx_http_iothub_twin_policy_trie_node(ngx_http_iothub_twin_policy_build_t *b,
    uint32_t sticky)
{
    uint64_t                            *bits;
    ngx_http_iothub_twin_policy_node_t  *nd;

    nd = ngx_http_iothub_twin_policy_push(&b->nodes, 1);
    bits = ngx_http_iothub_twin_policy_push(&b->bits, 1);

    if (nd == NULL || bits == NULL) {
        return -1;
    }

    nd->sticky = sticky;

    return 0;
}


/*
 * The deny bits of a node that is not sticky: rules with a deny pattern
 * ending strictly below it (children come after their parent).  In the
 * read automaton its allow bits, unused otherwise, get the same for the
 * read patterns.
 */

static void
ngx_http_iothub_twin_policy_trie_below(ngx_http_iothub_twin_policy_build_t *b)
{
    size_t                               i, k, nchild;
    uint32_t                             e, child[2];
    ngx_http_iothub_twin_policy_lit_t   *lit;
    ngx_http_iothub_twin_policy_node_t  *nd, *cn;

    for (i = b->nodes.n; i-- > 0; /* void */) {
        nd = ngx_http_iothub_twin_policy_node(b, i);

        if (nd->sticky) {
            continue;
        }

        for (e = nd->lit, k = 0; e || k == 0; k++) {
            nchild = 0;

            if (k == 0) {
                if (nd->star) {
                    child[nchild++] = nd->star - 1;
                }

            } else {
                lit = ngx_http_iothub_twin_policy_elt(&b->lits,
                                        ngx_http_iothub_twin_policy_lit_t,
                                        e - 1);
                child[nchild++] = lit->child;
                e = lit->next;
            }

            while (nchild--) {
                ngx_http_iothub_twin_policy_trie_or(b, i, child[nchild]);

                cn = ngx_http_iothub_twin_policy_node(b, child[nchild]);

                if (cn->rest) {
                    ngx_http_iothub_twin_policy_trie_or(b, i, cn->rest - 1);
                }
            }
        }
    }
}


/* node's bits below it get child's (read: allow bits too) */

static void
ngx_http_iothub_twin_policy_trie_or(ngx_http_iothub_twin_policy_build_t *b,
    size_t node, size_t child)
{
    size_t     w;
    uint64_t  *to, *from;

    to = ngx_http_iothub_twin_policy_deny_bits(b, node);
    from = ngx_http_iothub_twin_policy_deny_bits(b, child);

    for (w = 0; w < b->nwords; w++) {
        to[w] |= from[w];
    }

    if (!b->read) {
        return;
    }

    to = ngx_http_iothub_twin_policy_allow_bits(b, node);
    from = ngx_http_iothub_twin_policy_allow_bits(b, child);

    for (w = 0; w < b->nwords; w++) {
        to[w] |= from[w];
    }
}


/* the subset construction, states in the order they are found */

static int
ngx_http_iothub_twin_policy_determinize(ngx_http_iothub_twin_policy_build_t *b,
    char *err, size_t err_len)
{
    size_t                                i, n;
    uint32_t                              st, *set, other, *pair;
    ngx_http_iothub_twin_policy_state_t  *state;

    /* the empty bit set at offset 0 */

    if (ngx_http_iothub_twin_policy_push(&b->words, b->nwords) == NULL) {
        return -1;
    }

    /* the section itself: the root and its sticky child */

    b->next.n = 0;

    if (ngx_http_iothub_twin_policy_add_node(b, &b->next, 0) != 0
        || ngx_http_iothub_twin_policy_state(b, &b->next, &st) != 0)
    {
        return -1;
    }

    for (i = 0; i < b->states.n; i++) {

        if (b->states.n > NGX_HTTP_IOTHUB_TWIN_POLICY_MAX_STATES) {
            if (err != NULL && err_len > 0) {
                snprintf(err, err_len, "the %s combine into more than %d"
                         " states; use fewer \"*\" segments",
                         b->read ? "read and deny patterns"
                                 : "path patterns",
                         NGX_HTTP_IOTHUB_TWIN_POLICY_MAX_STATES);
            }

            return -2;
        }

        pair = ngx_http_iothub_twin_policy_elt(&b->sets, uint32_t, 2 * i);
        n = pair[1];
        set = ngx_http_iothub_twin_policy_elt(&b->members, uint32_t, pair[0]);

        state = ngx_http_iothub_twin_policy_elt(&b->states,
                                    ngx_http_iothub_twin_policy_state_t, i);

        if (ngx_http_iothub_twin_policy_state_bits(b, set, n, state) != 0) {
            return -1;
        }

        /* any other key */

        if (ngx_http_iothub_twin_policy_step_other(b, set, n) != 0) {
            return -1;
        }

        if (b->other.n > 0) {
            if (ngx_http_iothub_twin_policy_copy(&b->next, &b->other) != 0
                || ngx_http_iothub_twin_policy_state(b, &b->next, &other)
                   != 0)
            {
                return -1;
            }

            /* the vectors may have moved */

            state = ngx_http_iothub_twin_policy_elt(&b->states,
                                    ngx_http_iothub_twin_policy_state_t, i);
            state->other = other + 1;
        }

        if (ngx_http_iothub_twin_policy_step_keys(b, i) != 0) {
            return -1;
        }
    }

    return 0;
}


/*
 * The edges of state i: the literal keys of its nodes, equal keys
 * together, each to the state of "any other key"'s nodes and the key's
 * children; a key leading there anyway needs no edge.
 */

static int
ngx_http_iothub_twin_policy_step_keys(ngx_http_iothub_twin_policy_build_t *b,
    size_t i)
{
    size_t                                j, k, n;
    uint32_t                              e, st, *set, *pair;
    ngx_http_iothub_twin_policy_lit_t    *lit, *key;
    ngx_http_iothub_twin_policy_node_t   *nd;
    ngx_http_iothub_twin_policy_edge_t   *edge;
    ngx_http_iothub_twin_policy_state_t  *state;

    b->keys.n = 0;

    pair = ngx_http_iothub_twin_policy_elt(&b->sets, uint32_t, 2 * i);
    n = pair[1];
    set = ngx_http_iothub_twin_policy_elt(&b->members, uint32_t, pair[0]);

    for (k = 0; k < n; k++) {
        nd = ngx_http_iothub_twin_policy_node(b, set[k]);

        for (e = nd->lit; e; e = lit->next) {
            lit = ngx_http_iothub_twin_policy_elt(&b->lits,
                                        ngx_http_iothub_twin_policy_lit_t,
                                        e - 1);

            key = ngx_http_iothub_twin_policy_push(&b->keys, 1);
            if (key == NULL) {
                return -1;
            }

            *key = *lit;
        }
    }

    if (b->keys.n > 1) {
        qsort(b->keys.elts, b->keys.n, b->keys.size,
              ngx_http_iothub_twin_policy_cmp_key);
    }

    for (k = 0; k < b->keys.n; k = j) {
        key = ngx_http_iothub_twin_policy_elt(&b->keys,
                                        ngx_http_iothub_twin_policy_lit_t, k);

        if (ngx_http_iothub_twin_policy_copy(&b->next, &b->other) != 0) {
            return -1;
        }

        for (j = k; j < b->keys.n; j++) {
            lit = ngx_http_iothub_twin_policy_elt(&b->keys,
                                        ngx_http_iothub_twin_policy_lit_t, j);

            if (lit->len != key->len
                || memcmp(lit->data, key->data, key->len) != 0)
            {
                break;
            }

            if (ngx_http_iothub_twin_policy_add_node(b, &b->next, lit->child)
                != 0)
            {
                return -1;
            }
        }

        if (ngx_http_iothub_twin_policy_state(b, &b->next, &st) != 0) {
            return -1;
        }

        state = ngx_http_iothub_twin_policy_elt(&b->states,
                                    ngx_http_iothub_twin_policy_state_t, i);

        if (st + 1 == state->other) {
            continue;
        }

        edge = ngx_http_iothub_twin_policy_push(&b->edges, 1);
        if (edge == NULL) {
            return -1;
        }

        edge->data = key->data;
        edge->len = key->len;
        edge->from = (uint32_t) i + 1;
        edge->to = st + 1;
    }

    return 0;
}


/* dst: a copy of the node set src */

static int
ngx_http_iothub_twin_policy_copy(ngx_http_iothub_twin_policy_vec_t *dst,
    const ngx_http_iothub_twin_policy_vec_t *src)
{
    uint32_t  *p;

    dst->n = 0;

    p = ngx_http_iothub_twin_policy_push(dst, src->n);
    if (p == NULL) {
        return -1;
    }

    if (src->n > 0) {
        memcpy(p, src->elts, src->n * sizeof(uint32_t));
    }

    return 0;
}


/* b->other: where any key goes from the set (sticky nodes, "*" children) */

static int
ngx_http_iothub_twin_policy_step_other(ngx_http_iothub_twin_policy_build_t *b,
    const uint32_t *set, size_t n)
{
    size_t                               k;
    uint32_t                             node;
    ngx_http_iothub_twin_policy_node_t  *nd;

    b->other.n = 0;

    for (k = 0; k < n; k++) {
        node = set[k];
        nd = ngx_http_iothub_twin_policy_node(b, node);

        if (nd->sticky) {
            if (ngx_http_iothub_twin_policy_add_node(b, &b->other, node)
                != 0)
            {
                return -1;
            }

            continue;
        }

        if (nd->star
            && ngx_http_iothub_twin_policy_add_node(b, &b->other,
                                                    nd->star - 1)
               != 0)
        {
            return -1;
        }
    }

    return 0;
}


/* a node and its sticky child, which matches zero further keys too */

static int
ngx_http_iothub_twin_policy_add_node(ngx_http_iothub_twin_policy_build_t *b,
    ngx_http_iothub_twin_policy_vec_t *v, uint32_t node)
{
    uint32_t                            *p;
    ngx_http_iothub_twin_policy_node_t  *nd;

    p = ngx_http_iothub_twin_policy_push(v, 1);
    if (p == NULL) {
        return -1;
    }

    *p = node;

    nd = ngx_http_iothub_twin_policy_node(b, node);

    if (nd->rest) {
        p = ngx_http_iothub_twin_policy_push(v, 1);
        if (p == NULL) {
            return -1;
        }

        *p = nd->rest - 1;
    }

    return 0;
}


/*
 * The state of the node set in v (sorted and deduplicated here), a new
 * one if no state has that set yet.  An empty set is no state: -1 in
 * *state, so that state + 1 is 0.
 */

static int
ngx_http_iothub_twin_policy_state(ngx_http_iothub_twin_policy_build_t *b,
    ngx_http_iothub_twin_policy_vec_t *v, uint32_t *state)
{
    size_t     i, n, size, slot, off;
    uint32_t  *set, *members, *pair, h, *index;

    set = v->elts;

    if (v->n == 0) {
        *state = (uint32_t) -1;
        return 0;
    }

    qsort(set, v->n, sizeof(uint32_t), ngx_http_iothub_twin_policy_cmp_u32);

    for (i = 1, n = 1; i < v->n; i++) {
        if (set[i] != set[n - 1]) {
            set[n++] = set[i];
        }
    }

    v->n = n;
    h = ngx_http_iothub_twin_policy_hash_set(set, n);

    /* the index at most half full */

    if (2 * (b->states.n + 1) > b->set_mask) {
        size = b->set_mask ? 2 * (b->set_mask + 1) : 64;

        index = calloc(size, sizeof(uint32_t));
        if (index == NULL) {
            return -1;
        }

        for (i = 0; i < b->states.n; i++) {
            pair = ngx_http_iothub_twin_policy_elt(&b->sets, uint32_t, 2 * i);
            members = ngx_http_iothub_twin_policy_elt(&b->members, uint32_t,
                                                      pair[0]);

            slot = ngx_http_iothub_twin_policy_hash_set(members, pair[1])
                   & (size - 1);

            while (index[slot]) {
                slot = (slot + 1) & (size - 1);
            }

            index[slot] = (uint32_t) i + 1;
        }

        free(b->set_index);
        b->set_index = index;
        b->set_mask = size - 1;
    }

    for (slot = h & b->set_mask; b->set_index[slot];
         slot = (slot + 1) & b->set_mask)
    {
        i = b->set_index[slot] - 1;
        pair = ngx_http_iothub_twin_policy_elt(&b->sets, uint32_t, 2 * i);

        if (pair[1] == n) {
            members = ngx_http_iothub_twin_policy_elt(&b->members, uint32_t,
                                                      pair[0]);

            if (memcmp(members, set, n * sizeof(uint32_t)) == 0) {
                *state = (uint32_t) i;
                return 0;
            }
        }
    }

    off = b->members.n;

    members = ngx_http_iothub_twin_policy_push(&b->members, n);
    pair = ngx_http_iothub_twin_policy_push(&b->sets, 1);

    if (members == NULL || pair == NULL
        || ngx_http_iothub_twin_policy_push(&b->states, 1) == NULL)
    {
        return -1;
    }

    memcpy(members, v->elts, n * sizeof(uint32_t));
    pair[0] = (uint32_t) off;
    pair[1] = (uint32_t) n;

    b->set_index[slot] = (uint32_t) b->states.n;
    *state = (uint32_t) b->states.n - 1;

    return 0;
}


/*
 * A state's bit sets: the union over its nodes; in the read automaton,
 * split by what sticky nodes (the node or an ancestor) and the others
 * (below it) hold.
 */

static int
ngx_http_iothub_twin_policy_state_bits(ngx_http_iothub_twin_policy_build_t *b,
    const uint32_t *set, size_t n, ngx_http_iothub_twin_policy_state_t *st)
{
    size_t                               k, w, nw;
    uint64_t                            *a, *r, *d, *e, *na, *nd;
    ngx_http_iothub_twin_policy_node_t  *node;

    nw = b->nwords;
    a = b->acc;
    r = b->acc + nw;
    d = b->acc + 2 * nw;
    e = b->acc + 3 * nw;

    memset(b->acc, 0, 4 * nw * sizeof(uint64_t));

    for (k = 0; k < n; k++) {
        node = ngx_http_iothub_twin_policy_node(b, set[k]);
        na = ngx_http_iothub_twin_policy_allow_bits(b, set[k]);
        nd = ngx_http_iothub_twin_policy_deny_bits(b, set[k]);

        for (w = 0; w < nw; w++) {
            if (!b->read) {
                a[w] |= na[w];
                d[w] |= nd[w];

                if (node->sticky) {
                    r[w] |= na[w];
                }

            } else if (node->sticky) {
                r[w] |= na[w];
                d[w] |= nd[w];

            } else {
                a[w] |= na[w];
                e[w] |= nd[w];
            }
        }
    }

    if (ngx_http_iothub_twin_policy_words(b, a, &st->allow) != 0
        || ngx_http_iothub_twin_policy_words(b, r, &st->rest) != 0
        || ngx_http_iothub_twin_policy_words(b, d, &st->deny) != 0
        || ngx_http_iothub_twin_policy_words(b, e, &st->below) != 0)
    {
        return -1;
    }

    return 0;
}


/* a bit set's offset in the words, the same set stored once */

static int
ngx_http_iothub_twin_policy_words(ngx_http_iothub_twin_policy_build_t *b,
    const uint64_t *w, uint32_t *offset)
{
    size_t     i, nw, size, slot;
    uint32_t  *index, h;
    uint64_t  *p;

    nw = b->nwords;

    for (i = 0; i < nw; i++) {
        if (w[i]) {
            break;
        }
    }

    if (i == nw) {
        *offset = 0;
        return 0;
    }

    if (2 * (b->nword_sets + 1) > b->word_mask) {
        size = b->word_mask ? 2 * (b->word_mask + 1) : 64;

        index = calloc(size, sizeof(uint32_t));
        if (index == NULL) {
            return -1;
        }

        for (i = 0; i <= b->word_mask && b->word_index != NULL; i++) {
            if (b->word_index[i] == 0) {
                continue;
            }

            p = ngx_http_iothub_twin_policy_elt(&b->words, uint64_t,
                                                b->word_index[i]);
            slot = ngx_http_iothub_twin_policy_hash((unsigned char *) p,
                                                    nw * sizeof(uint64_t))
                   & (size - 1);

            while (index[slot]) {
                slot = (slot + 1) & (size - 1);
            }

            index[slot] = b->word_index[i];
        }

        free(b->word_index);
        b->word_index = index;
        b->word_mask = size - 1;
    }

    h = ngx_http_iothub_twin_policy_hash((const unsigned char *) w,
                                         nw * sizeof(uint64_t));

    for (slot = h & b->word_mask; b->word_index[slot];
         slot = (slot + 1) & b->word_mask)
    {
        p = ngx_http_iothub_twin_policy_elt(&b->words, uint64_t,
                                            b->word_index[slot]);

        if (memcmp(p, w, nw * sizeof(uint64_t)) == 0) {
            *offset = b->word_index[slot];
            return 0;
        }
    }

    *offset = (uint32_t) b->words.n;

    p = ngx_http_iothub_twin_policy_push(&b->words, nw);
    if (p == NULL) {
        return -1;
    }

    memcpy(p, w, nw * sizeof(uint64_t));

    b->word_index[slot] = *offset;
    b->nword_sets++;

    return 0;
}


/* the automaton into the policy's memory, its edges in a hash table */

static ngx_http_iothub_twin_policy_dfa_t *
ngx_http_iothub_twin_policy_emit(ngx_http_iothub_twin_policy_t *policy,
    ngx_http_iothub_twin_policy_build_t *b)
{
    size_t                               i, size, slot;
    ngx_http_iothub_twin_policy_dfa_t   *dfa;
    ngx_http_iothub_twin_policy_edge_t  *e, *edges;

    dfa = ngx_http_iothub_twin_policy_alloc(policy,
                                   sizeof(ngx_http_iothub_twin_policy_dfa_t));
    if (dfa == NULL) {
        return NULL;
    }

    for (size = 2; size < 2 * b->edges.n; size *= 2) { /* void */ }

    dfa->states = ngx_http_iothub_twin_policy_alloc(policy,
                     b->states.n * sizeof(ngx_http_iothub_twin_policy_state_t));
    dfa->words = ngx_http_iothub_twin_policy_alloc(policy,
                                            b->words.n * sizeof(uint64_t));
    dfa->edges = ngx_http_iothub_twin_policy_alloc(policy,
                             size * sizeof(ngx_http_iothub_twin_policy_edge_t));

    if (dfa->states == NULL || dfa->words == NULL || dfa->edges == NULL) {
        return NULL;
    }

    memcpy(dfa->states, b->states.elts,
           b->states.n * sizeof(ngx_http_iothub_twin_policy_state_t));
    memcpy(dfa->words, b->words.elts, b->words.n * sizeof(uint64_t));

    dfa->nstates = (uint32_t) b->states.n;
    dfa->mask = (uint32_t) (size - 1);

    edges = b->edges.elts;

    for (i = 0; i < b->edges.n; i++) {
        e = &edges[i];
        e->hash = ngx_http_iothub_twin_policy_edge_hash(e->data, e->len,
                                                        e->from);

        for (slot = e->hash & dfa->mask; dfa->edges[slot].from;
             slot = (slot + 1) & dfa->mask)
        { /* void */ }

        dfa->edges[slot] = *e;
    }

    return dfa;
}


static void
ngx_http_iothub_twin_policy_build_free(ngx_http_iothub_twin_policy_build_t *b)
{
    ngx_http_iothub_twin_policy_vec_free(&b->nodes);
    ngx_http_iothub_twin_policy_vec_free(&b->lits);
    ngx_http_iothub_twin_policy_vec_free(&b->bits);
    ngx_http_iothub_twin_policy_vec_free(&b->states);
    ngx_http_iothub_twin_policy_vec_free(&b->sets);
    ngx_http_iothub_twin_policy_vec_free(&b->members);
    ngx_http_iothub_twin_policy_vec_free(&b->edges);
    ngx_http_iothub_twin_policy_vec_free(&b->words);
    ngx_http_iothub_twin_policy_vec_free(&b->keys);
    ngx_http_iothub_twin_policy_vec_free(&b->other);
    ngx_http_iothub_twin_policy_vec_free(&b->next);

    free(b->set_index);
    free(b->word_index);
    free(b->acc);
}


/* n more zeroed elements at the end; NULL if out of memory */

static void *
ngx_http_iothub_twin_policy_push(ngx_http_iothub_twin_policy_vec_t *v,
    size_t n)
{
    size_t          cap;
    unsigned char  *p;

    if (v->n + n > v->cap) {
        for (cap = v->cap ? 2 * v->cap : 16; cap < v->n + n; cap *= 2) {
            /* void */
        }

        p = realloc(v->elts, cap * v->size);
        if (p == NULL) {
            return NULL;
        }

        v->elts = p;
        v->cap = cap;
    }

    p = (unsigned char *) v->elts + v->n * v->size;
    memset(p, 0, n * v->size);
    v->n += n;

    return p;
}


static void
ngx_http_iothub_twin_policy_vec_free(ngx_http_iothub_twin_policy_vec_t *v)
{
    free(v->elts);
    v->elts = NULL;
    v->n = 0;
    v->cap = 0;
}


static int
ngx_http_iothub_twin_policy_cmp_u32(const void *a, const void *b)
{
    uint32_t  x, y;

    x = *(const uint32_t *) a;
    y = *(const uint32_t *) b;

    return (x > y) - (x < y);
}


static int
ngx_http_iothub_twin_policy_cmp_key(const void *a, const void *b)
{
    const ngx_http_iothub_twin_policy_lit_t  *x = a;
    const ngx_http_iothub_twin_policy_lit_t  *y = b;

    if (x->len != y->len) {
        return (x->len > y->len) - (x->len < y->len);
    }

    return memcmp(x->data, y->data, x->len);
}


static uint32_t
ngx_http_iothub_twin_policy_hash_set(const uint32_t *set, size_t n)
{
    return ngx_http_iothub_twin_policy_hash((const unsigned char *) set,
                                            n * sizeof(uint32_t));
}
