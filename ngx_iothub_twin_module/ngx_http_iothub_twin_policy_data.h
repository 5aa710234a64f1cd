
/*
 * Copyright (C) ngx_iothub_twin developers
 *
 * The policy's compiled form, shared by the loader (policy_load.c), the
 * compiler (policy_compile.c) and the matcher (policy_match.c); nothing
 * outside these three files looks inside it.
 */


#ifndef _NGX_HTTP_IOTHUB_TWIN_POLICY_DATA_H_INCLUDED_
#define _NGX_HTTP_IOTHUB_TWIN_POLICY_DATA_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "ngx_http_iothub_twin_policy.h"
#include "ngx_http_iothub_twin_route.h"


#define NGX_HTTP_IOTHUB_TWIN_POLICY_EXACT     0
#define NGX_HTTP_IOTHUB_TWIN_POLICY_PREFIX    1
#define NGX_HTTP_IOTHUB_TWIN_POLICY_GLOB      2

/*
 * a glob's wildcards, bytes no ID holds; '*' and '?' are literal there;
 * matched by ngx_http_iothub_twin_glob_match()
 */
#define NGX_HTTP_IOTHUB_TWIN_POLICY_ANY_RUN   NGX_HTTP_IOTHUB_TWIN_GLOB_ANY_RUN
#define NGX_HTTP_IOTHUB_TWIN_POLICY_ANY_ONE   NGX_HTTP_IOTHUB_TWIN_GLOB_ANY_ONE

#define NGX_HTTP_IOTHUB_TWIN_POLICY_TAGS      0
#define NGX_HTTP_IOTHUB_TWIN_POLICY_DESIRED   1
#define NGX_HTTP_IOTHUB_TWIN_POLICY_REPORTED  2

/* the automaton of the read scopes, over whole paths of the twin */
#define NGX_HTTP_IOTHUB_TWIN_POLICY_READ      3

#define NGX_HTTP_IOTHUB_TWIN_POLICY_ALLOWED   0
#define NGX_HTTP_IOTHUB_TWIN_POLICY_UNCOVERED 1
#define NGX_HTTP_IOTHUB_TWIN_POLICY_DENIED    2

/* bytes of an excerpt in a message, "..." and the NUL included */
#define NGX_HTTP_IOTHUB_TWIN_SHOWN            80
#define NGX_HTTP_IOTHUB_TWIN_PSHOWN           100

#define NGX_HTTP_IOTHUB_TWIN_WORDS                                           \
    NGX_HTTP_IOTHUB_TWIN_POLICY_RULE_WORDS

/* ASCII lowercase, as hubs' host names are compared */
#define ngx_http_iothub_twin_policy_lower(c)                                 \
    ((unsigned char) (((c) >= 'A' && (c) <= 'Z') ? ((c) | 0x20) : (c)))


typedef struct ngx_http_iothub_twin_policy_chunk_s
    ngx_http_iothub_twin_policy_chunk_t;

struct ngx_http_iothub_twin_policy_chunk_s {
    ngx_http_iothub_twin_policy_chunk_t  *next;
    size_t                                size;
    size_t                                used;
};


/*
 * An ID pattern, escapes resolved: exact and prefix hold the literal
 * bytes (a prefix without its '*'), a glob holds literal bytes and the
 * two wildcard bytes above.
 */

typedef struct {
    const unsigned char                  *data;
    uint32_t                              len;
    uint16_t                              rule;    /* its rule's index */
    uint8_t                               kind;
    uint8_t                               system;  /* begins with '$' */

    /* the first byte if literal: most IDs fail on it */
    uint8_t                               first;
} ngx_http_iothub_twin_policy_id_t;


/* a segment of a path pattern, escapes resolved */

typedef struct {
    const unsigned char                  *data;
    uint32_t                              len;
    uint32_t                              any;     /* the wildcard "*" */
} ngx_http_iothub_twin_policy_seg_t;


typedef struct {
    ngx_http_iothub_twin_policy_seg_t    *segs;
    uint32_t                              nsegs;   /* without "**" */
    uint16_t                              rest;    /* a trailing "**" */
    uint16_t                              index;   /* in its list */
} ngx_http_iothub_twin_policy_path_t;


/* a hub a rule names, as the file spells it */

typedef struct {
    const unsigned char                  *data;
    uint32_t                              len;
} ngx_http_iothub_twin_policy_hub_t;


typedef struct {
    unsigned                              ops;     /* 1 << op */
    unsigned                              device_twin;

    ngx_http_iothub_twin_policy_id_t     *devices;
    ngx_http_iothub_twin_policy_id_t     *modules;
    uint32_t                              ndevices;
    uint32_t                              nmodules;

    /* by section: tags, properties.desired (and properties.reported) */
    ngx_http_iothub_twin_policy_path_t   *allow[2];
    ngx_http_iothub_twin_policy_path_t   *deny[3];
    uint32_t                              nallow[2];
    uint32_t                              ndeny[3];

    /*
     * "read", whole paths of the twin ("**" alone: nsegs 0, rest 1);
     * without it (read_given 0) the rule reads what it may write
     */
    ngx_http_iothub_twin_policy_path_t   *read;
    uint32_t                              nread;
    unsigned                              read_given;

    /* "hubs"; nhubs 0: every hub */
    ngx_http_iothub_twin_policy_hub_t    *hubs;
    uint32_t                              nhubs;
} ngx_http_iothub_twin_policy_rule_t;


/*
 * Exact IDs of all of a caller's rules in one open-addressing table; an
 * ID listed by several rules has a slot per rule, all before the first
 * free slot of its probe sequence.
 */

typedef struct {
    const unsigned char                  *data;
    uint32_t                              hash;
    uint16_t                              len;
    uint16_t                              rule;    /* index + 1, 0: free */
} ngx_http_iothub_twin_policy_exact_t;


typedef struct {
    ngx_http_iothub_twin_policy_exact_t  *slots;
    uint32_t                              mask;
    uint32_t                              n;

    /*
     * Prefixes and globs, tried one by one; with many, sorted by their
     * first byte (0: a wildcard) and first[b] .. first[b + 1] those
     * beginning with b, so that an ID meets only its own and those
     * beginning with a wildcard.
     */
    ngx_http_iothub_twin_policy_id_t     *wild;
    uint32_t                             *first;
    uint32_t                              nwild;
} ngx_http_iothub_twin_policy_ids_t;


/*
 * A state of a section's path automaton: the set of pattern positions the
 * keys walked so far reach.  Bit sets of rules are offsets into the
 * automaton's words, 0 the empty set:
 *
 *   allow  rules with an allow pattern matching the path walked
 *   rest   rules with a "**" pattern covering it and everything below
 *   deny   rules with a deny pattern matching it, an ancestor or a
 *          descendant of it
 *   below  0
 *
 * In the read automaton, where every read pattern covers what it names
 * and everything below it:
 *
 *   allow  rules with a read pattern naming a descendant of the node
 *   rest   rules with a read pattern naming the node or an ancestor
 *   deny   rules with a deny pattern naming the node or an ancestor
 *   below  rules with a deny pattern naming a descendant
 */

typedef struct {
    uint32_t                              other;   /* state + 1, 0: none */
    uint32_t                              allow;
    uint32_t                              rest;
    uint32_t                              deny;
    uint32_t                              below;
} ngx_http_iothub_twin_policy_state_t;


typedef struct {
    const unsigned char                  *data;
    uint32_t                              hash;    /* key and from */
    uint32_t                              len;
    uint32_t                              from;    /* state + 1, 0: free */
    uint32_t                              to;      /* state + 1 */
} ngx_http_iothub_twin_policy_edge_t;


typedef struct {
    ngx_http_iothub_twin_policy_state_t  *states;  /* [0]: the section */
    ngx_http_iothub_twin_policy_edge_t   *edges;
    uint64_t                             *words;
    uint32_t                              nstates;
    uint32_t                              mask;    /* of edges */
} ngx_http_iothub_twin_policy_dfa_t;


/*
 * The hubs a caller's rules name, lowercase, in one open-addressing
 * table, each with the rules naming it.
 */

typedef struct {
    const unsigned char                  *data;    /* NULL: free */
    uint64_t                             *rules;
    uint32_t                              hash;
    uint32_t                              len;
} ngx_http_iothub_twin_policy_hub_slot_t;


struct ngx_http_iothub_twin_caller_s {
    const char                           *name;
    size_t                                name_len;
    unsigned char                        *key[2];
    size_t                                key_len[2];
    size_t                                max_body_size;
    size_t                                index;
    ngx_http_iothub_twin_policy_rule_t   *rules;
    size_t                                nrules;
    size_t                                nwords;  /* of rule bit sets */

    /* rule bit sets: by op (1 .. 3), and rules covering device twins */
    uint64_t                             *ops[4];
    uint64_t                             *device_twin;

    ngx_http_iothub_twin_policy_ids_t     devices;
    ngx_http_iothub_twin_policy_ids_t     modules;

    /* by section; NULL if no rule names a path there */
    ngx_http_iothub_twin_policy_dfa_t    *paths[2];

    /* the read scopes and the denies, from the twin's top level */
    ngx_http_iothub_twin_policy_dfa_t    *read;

    /* the rules with "hubs" (NULL if none), and the hubs they name */
    uint64_t                             *hubbed;
    ngx_http_iothub_twin_policy_hub_slot_t  *hub_slots;
    uint32_t                              hub_mask;

    unsigned                              report:1;
    unsigned                              require_if_match:1;
};


typedef struct {
    uint32_t                              hash;
    uint32_t                              index;   /* caller + 1, 0: free */
} ngx_http_iothub_twin_policy_slot_t;


struct ngx_http_iothub_twin_policy_s {
    const char                           *name;    /* of the file */
    ngx_http_iothub_twin_caller_t        *callers;
    size_t                                ncallers;
    ngx_http_iothub_twin_policy_slot_t   *slots;
    size_t                                mask;
    ngx_http_iothub_twin_policy_chunk_t  *chunks;
};


/* policy_load.c: zeroed memory that lives as long as the policy */
void *ngx_http_iothub_twin_policy_alloc(ngx_http_iothub_twin_policy_t *policy,
    size_t size);

/* policy_compile.c: 0, or -1 with a message in err */
int ngx_http_iothub_twin_policy_compile(ngx_http_iothub_twin_policy_t *policy,
    ngx_http_iothub_twin_caller_t *c, void *cache, char *err,
    size_t err_len);
void *ngx_http_iothub_twin_policy_cache_create(void);
void ngx_http_iothub_twin_policy_cache_free(void *cache);

/* policy_match.c */
size_t ngx_http_iothub_twin_policy_escape(char *dst, size_t size,
    const unsigned char *s, size_t len, int quotes);
uint32_t ngx_http_iothub_twin_policy_hash(const unsigned char *p,
    size_t len);

/* where the edge for a key from a state (+ 1) is looked up first */
#define ngx_http_iothub_twin_policy_edge_hash(p, len, from)                  \
    (ngx_http_iothub_twin_policy_hash(p, len) ^ ((from) * 0x9e3779b9u))


#endif /* _NGX_HTTP_IOTHUB_TWIN_POLICY_DATA_H_INCLUDED_ */
