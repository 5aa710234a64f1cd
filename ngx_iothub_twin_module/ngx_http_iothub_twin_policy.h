
/*
 * Copyright (C) ngx_iothub_twin developers
 *
 * The per-caller policy: who may read, update or replace which twins,
 * which paths of tags and properties.desired each caller may write, and
 * which nodes of a twin it may read.
 *
 * Pure code, no nginx types.  Loading (jansson, malloc) happens at
 * configuration time, in ngx_http_iothub_twin_policy_load.c; there each
 * caller's patterns are compiled (ngx_http_iothub_twin_policy_compile.c)
 * into what the matcher (ngx_http_iothub_twin_policy_match.c) looks up
 * instead of scanning lists: rule bit sets by operation, the exact IDs of
 * all rules in one hash table, the other ID patterns by first byte, and
 * per section one deterministic automaton over path segments.  The
 * matching functions neither allocate nor look at more than the one
 * caller they are given.  A decision costs one hash lookup per key of a
 * written path, whatever the number of callers, of rules and of patterns;
 * consecutive paths resume from the keys they share with the one before,
 * and a path below a node the caller may write wholly ("**", no deny at or
 * below it) is allowed as soon as the walk reaches that node.  Prefix
 * and glob ID patterns are still tried one by one, but only those
 * beginning with the ID's first byte or with a wildcard.
 *
 * ID patterns (devices, modules), matched case-sensitively against
 * decoded IDs:
 *
 *   dev1        exact
 *   fleet-*     prefix: a single trailing '*'
 *   sensor-??-* glob: '*' any run, '?' one character, anywhere
 *   dev#1\?x    exact: "\*", "\?" and "\\" are a literal '*', '?' and
 *               '\' ("dev#1\\?x" in JSON)
 *
 * '*' and '?' are ID characters too: escaped, they match only themselves
 * ("dev#1\?x" matches dev#1?x, not dev#1ax; "lot\**" is the prefix
 * "lot*").  A backslash before any other character, or at the end, is a
 * configuration error, and so is a literal '\', which no ID holds.  A module ID
 * beginning with '$' (a system module) is matched only by a pattern
 * beginning with '$': "*" never covers $edgeAgent.  In "modules", ""
 * stands for the device twin itself; without "modules" a rule covers
 * device twins only.
 *
 * Path patterns are dot-separated segments of 1 to 1024 bytes: "*"
 * matches exactly one key, a trailing "**" matches the node it follows
 * and anything below it ("config.**" covers config.a, config.a.b and
 * config written or deleted as a whole; "**" alone covers the whole
 * section), any other segment matches literally ("a*" is the key "a*").
 * A segment that is exactly "*" or "**" is a wildcard; "\*" is the key
 * "*", "\*\*" the key "**", and in any segment "\*", "\?" and "\\"
 * stand for '*', '?' and '\'; a backslash before anything else (or at the
 * end of a segment) is a configuration error naming the file, the caller,
 * the field and the pattern.  Segments holding what the hub refuses in
 * keys (' ', '$', control characters) are configuration errors.  An allow
 * pattern covers exactly the paths it matches: "owner" allows writing
 * owner as a whole, not owner.first.  A caller whose patterns of one
 * section combine into more than 65,536 automaton states (many "*"
 * segments at different depths) is a configuration error.
 *
 * A deny pattern protects the nodes it matches and everything below them,
 * and a write of a node replaces what is below it; so a written path is
 * denied when a deny pattern matches the path, one of its ancestors or one
 * of its descendants.  A deny may also name "properties.reported." paths,
 * which no one writes: it narrows reads only.
 *
 * Read scopes ("read", optional in a rule): whole paths of the twin, named
 * as ngx_http_iothub_twin_filter.h names its nodes.  "tags.<pattern>",
 * "properties.desired.<pattern>" and "properties.reported.<pattern>" in
 * the path pattern language above; "tags", "properties",
 * "properties.desired" and "properties.reported" alone; any other
 * top-level member by its name ("status", "connectionState",
 * "capabilities", ...; nothing below it); "**" alone for the whole twin.
 * A read pattern covers the nodes it matches with everything below them
 * (a node read is its whole value, as a node written is replaced whole):
 * "tags.owner" and "tags.owner.**" read the same.  A rule without "read"
 * reads what it may write: its "tags" patterns under "tags.", its
 * "desired" patterns under "properties.desired.".  Every rule reads
 * "deviceId", "moduleId", "etag" and "version", which clients need to
 * know what they read and to write again.
 *
 * The read verdict of a node is the union over the decision's rules'
 * scopes minus their denies: NONE if a deny matches the node or an
 * ancestor; ALL if a read pattern matches it or an ancestor and no deny
 * matches a descendant; SOME if it is covered but a deny matches a
 * descendant, or if a read pattern matches a descendant; NONE otherwise.
 * "Matches a descendant" is read from the patterns alone ("tags.a.*.c"
 * makes tags.a SOME whatever the twin holds), so an object whose readable
 * members are all denied may be kept empty.  The twin as a whole (the
 * empty path) is SOME at least.
 *
 * Hubs ("hubs", optional in a rule): the host names of the IoT hubs the
 * rule applies to, 1 to 253 bytes of letters, digits, '-' and '.', each
 * once, compared without case.  A rule with "hubs" applies only to twins
 * routed to one of them; for any other hub, or for no hub, it is left out
 * of the decision: its operations, its paths, its denies and its read
 * scope alike.  A rule without "hubs" applies to every hub.  A caller
 * without such rules decides as if hubs did not exist; with them, a
 * decision costs one more hash lookup of the hub's name, and only when a
 * rule with "hubs" covers the twin.
 */


#ifndef _NGX_HTTP_IOTHUB_TWIN_POLICY_H_INCLUDED_
#define _NGX_HTTP_IOTHUB_TWIN_POLICY_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


/* the operations, as the module numbers them */
#define NGX_HTTP_IOTHUB_TWIN_OP_READ             1
#define NGX_HTTP_IOTHUB_TWIN_OP_UPDATE           2
#define NGX_HTTP_IOTHUB_TWIN_OP_REPLACE          3

#define NGX_HTTP_IOTHUB_TWIN_POLICY_NAME_MAX     128
#define NGX_HTTP_IOTHUB_TWIN_POLICY_KEY_MAX      256
#define NGX_HTTP_IOTHUB_TWIN_POLICY_MAX_RULES    1000
#define NGX_HTTP_IOTHUB_TWIN_POLICY_MAX_BODY     16777216

/* entries of one pattern list, and bytes of one pattern */
#define NGX_HTTP_IOTHUB_TWIN_POLICY_MAX_LIST     1000
#define NGX_HTTP_IOTHUB_TWIN_POLICY_ID_PATTERN   128
#define NGX_HTTP_IOTHUB_TWIN_POLICY_SEGMENT      1024
#define NGX_HTTP_IOTHUB_TWIN_POLICY_PATH_PATTERN 16384

/* bytes of a hub's host name */
#define NGX_HTTP_IOTHUB_TWIN_POLICY_HUB_MAX      253

/* keys below the section a written path may have; deeper is refused */
#define NGX_HTTP_IOTHUB_TWIN_POLICY_PATH_DEPTH   64

#define NGX_HTTP_IOTHUB_TWIN_POLICY_RULE_WORDS                               \
    ((NGX_HTTP_IOTHUB_TWIN_POLICY_MAX_RULES + 63) / 64)

/* bytes of the previous path a decision keeps to resume its walk */
#define NGX_HTTP_IOTHUB_TWIN_POLICY_WALK         512

/*
 * keys of a read path walked: "properties.reported" and 64 below; deeper
 * paths take their ancestor's verdict if it is ALL or a deny, else NONE
 */
#define NGX_HTTP_IOTHUB_TWIN_POLICY_READ_DEPTH                               \
    (NGX_HTTP_IOTHUB_TWIN_POLICY_PATH_DEPTH + 2)


typedef struct ngx_http_iothub_twin_policy_s  ngx_http_iothub_twin_policy_t;
typedef struct ngx_http_iothub_twin_caller_s  ngx_http_iothub_twin_caller_t;


/* a bit per rule of one caller */
typedef struct {
    uint64_t  w[NGX_HTTP_IOTHUB_TWIN_POLICY_RULE_WORDS];
} ngx_http_iothub_twin_policy_rules_t;


typedef struct {
    const ngx_http_iothub_twin_caller_t  *caller;
    int                                   op;

    /*
     * the caller's rules that cover the target, allow op and apply to
     * the twin's hub
     */
    ngx_http_iothub_twin_policy_rules_t   rules;
    unsigned                              nrules;

    unsigned                              npaths;
    unsigned                              nrefused;

    unsigned                              allowed:1;
    unsigned                              target_ok:1;

    /* the caller is in report mode: log refusals, do not enforce them */
    unsigned                              report:1;

    /*
     * The first refusal and the path refused (empty if the target was),
     * NUL-terminated printable ASCII: other bytes and '"' and '\' shown
     * as \xNN, long IDs and paths cut short with "...".  Never key
     * material.
     */
    char                                  reason[256];
    char                                  path[256];

    /*
     * The previous path's walk, for the next one to resume where both
     * share their first keys: its section + 1 (0: none), its first
     * walk_len bytes, and for each of its first walk_depth keys where it
     * ends and the state reached.
     */
    unsigned                              walk_section;
    uint16_t                              walk_len;
    uint16_t                              walk_depth;
    uint16_t                              walk_end[
                                       NGX_HTTP_IOTHUB_TWIN_POLICY_PATH_DEPTH
                                       + 1];
    uint32_t                              walk_state[
                                       NGX_HTTP_IOTHUB_TWIN_POLICY_PATH_DEPTH
                                       + 1];
    unsigned char                         walk_path[
                                       NGX_HTTP_IOTHUB_TWIN_POLICY_WALK];

    /*
     * The same for the read verdicts, apart: a request's patch and its
     * answer walk different paths.  read_walked 0: none yet.
     */
    unsigned                              read_walked;
    uint16_t                              read_depth;
    uint16_t                              read_end[
                                       NGX_HTTP_IOTHUB_TWIN_POLICY_READ_DEPTH
                                       + 1];
    uint32_t                              read_state[
                                       NGX_HTTP_IOTHUB_TWIN_POLICY_READ_DEPTH
                                       + 1];
    unsigned char                         read_path[
                                       NGX_HTTP_IOTHUB_TWIN_POLICY_WALK];
} ngx_http_iothub_twin_policy_decision_t;


/*
 * NULL on failure, with err holding "<file>: [caller "<name>": ]
 * [rules[i].<field>[j]: ]<problem>" (or "<file>: line <n>: <jansson's
 * text>"), cut to err_len.  Values of keys are never shown.
 */
ngx_http_iothub_twin_policy_t *ngx_http_iothub_twin_policy_load(
    const char *path, char *err, size_t err_len);
ngx_http_iothub_twin_policy_t *ngx_http_iothub_twin_policy_parse(
    const char *name, const char *json, size_t len, char *err,
    size_t err_len);
void ngx_http_iothub_twin_policy_free(ngx_http_iothub_twin_policy_t *policy);
size_t ngx_http_iothub_twin_policy_ncallers(
    const ngx_http_iothub_twin_policy_t *policy);

/* NULL for an unknown name */
const ngx_http_iothub_twin_caller_t *ngx_http_iothub_twin_policy_caller(
    const ngx_http_iothub_twin_policy_t *policy, const unsigned char *name,
    size_t len);
/* the caller with index i, in file order; NULL past the end */
const ngx_http_iothub_twin_caller_t *ngx_http_iothub_twin_policy_caller_at(
    const ngx_http_iothub_twin_policy_t *policy, size_t i);

const char *ngx_http_iothub_twin_policy_caller_name(
    const ngx_http_iothub_twin_caller_t *c, size_t *len);
/* slot 0 primary, 1 secondary: decoded bytes, or NULL if not set */
const unsigned char *ngx_http_iothub_twin_policy_caller_key(
    const ngx_http_iothub_twin_caller_t *c, unsigned slot, size_t *len);
int ngx_http_iothub_twin_policy_caller_report(
    const ngx_http_iothub_twin_caller_t *c);
/* 0: no per-caller limit */
size_t ngx_http_iothub_twin_policy_caller_max_body_size(
    const ngx_http_iothub_twin_caller_t *c);
int ngx_http_iothub_twin_policy_caller_require_if_match(
    const ngx_http_iothub_twin_caller_t *c);
/* 0 .. ncallers - 1, in file order */
size_t ngx_http_iothub_twin_policy_caller_index(
    const ngx_http_iothub_twin_caller_t *c);
size_t ngx_http_iothub_twin_policy_caller_nrules(
    const ngx_http_iothub_twin_caller_t *c);

/* "read", "update", "replace", or "unknown" */
const char *ngx_http_iothub_twin_policy_op_name(int op);


/*
 * Phase 1: may caller c do op on this twin at all?  module is NULL for a
 * device twin.  c may be NULL (an unknown caller: refused).  A replace
 * also needs tags and properties.desired writable as a whole, since the
 * hub replaces both.  IDs are the decoded bytes, already checked
 * against the hub's alphabet.  Returns 0 if allowed, -1 if refused
 * (d->reason set).  d is initialized here.  The same as
 * ngx_http_iothub_twin_policy_target_hub() with hub NULL: rules with
 * "hubs" never apply.
 */
int ngx_http_iothub_twin_policy_target(
    ngx_http_iothub_twin_policy_decision_t *d,
    const ngx_http_iothub_twin_caller_t *c, int op,
    const unsigned char *device, size_t dlen, const unsigned char *module,
    size_t mlen);

/*
 * Phase 1 for a twin routed to hub (its host name; compared without
 * case).  Rules with "hubs" not naming it are left out of the decision,
 * for the target, the paths, the read scope and replace's whole-section
 * check alike.  hub NULL: rules with "hubs" never apply.
 *
 * When rules covering the twin were left out for the hub, the target's
 * refusals name it: "operation update is not allowed on device dev1 on
 * hub eu-fleet.azure-devices.net" ("... without a hub" for hub NULL,
 * or hub_len 0, which no rule names either).
 */
int ngx_http_iothub_twin_policy_target_hub(
    ngx_http_iothub_twin_policy_decision_t *d,
    const ngx_http_iothub_twin_caller_t *c, int op,
    const unsigned char *hub, size_t hub_len,
    const unsigned char *device, size_t dlen,
    const unsigned char *module, size_t mlen);

/*
 * For nginx -t: calls known(data, name, len) for each hub a rule names;
 * on the first it returns 0 for, writes "<file>: caller \"<name>\":
 * rules[<i>].hubs[<j>]: unknown hub \"<hub>\" <suffix>" into err (cut to
 * err_len; suffix is a string the caller gives, e.g. "(not routed to by
 * this location)") and returns -1; 0 if all are known.
 *
 * Callers, rules and hubs are asked in file order, each hub as the file
 * spells it (not NUL-terminated).  suffix NULL or "": the message ends
 * with the hub's closing quote.  err may be NULL.
 */
int ngx_http_iothub_twin_policy_check_hubs(
    const ngx_http_iothub_twin_policy_t *p,
    int (*known)(void *data, const unsigned char *name, size_t len),
    void *data, const char *suffix, char *err, size_t err_len);

/*
 * Phase 2, once per written path ("tags.a.b", "properties.desired.x"; a
 * null delete is a write like any other).  Returns 0 if allowed, -1 if
 * refused: the first refusal is kept in d->reason and d->path, later
 * ones only counted.  After a refused target, or without one (a zeroed
 * d), every path is refused.  is_delete does not change the verdict.
 * Both phases return the verdict even in report mode: acting on
 * d->report is the caller's business.
 */
int ngx_http_iothub_twin_policy_path(
    ngx_http_iothub_twin_policy_decision_t *d, const unsigned char *path,
    size_t len, int is_delete);


/*
 * The read scope, after ngx_http_iothub_twin_policy_target() (or
 * _target_hub()) allowed the target: what the caller may read of one
 * node of the twin (paths named as in ngx_http_iothub_twin_filter.h), as
 * a NGX_HTTP_IOTHUB_TWIN_READ_* verdict, from the rules that allowed the
 * operation (see "Read scopes" above).  It has the shape of
 * ngx_http_iothub_twin_read_pt, with the decision as data.  One hash
 * lookup per key, resuming from the keys the path shares with the one
 * asked before (document order); a zeroed or refused decision gives NONE
 * for every node.  The verdict does not depend on report mode.
 */
int ngx_http_iothub_twin_policy_read(void *d, const unsigned char *path,
    size_t len);

/* non-zero if those rules let the caller read the whole twin */
int ngx_http_iothub_twin_policy_read_all(
    const ngx_http_iothub_twin_policy_decision_t *d);


#endif /* _NGX_HTTP_IOTHUB_TWIN_POLICY_H_INCLUDED_ */
