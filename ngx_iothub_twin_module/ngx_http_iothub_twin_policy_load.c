
/*
 * Copyright (C) ngx_iothub_twin developers
 *
 * The policy loader: reads a callers file at configuration time, checks
 * every field with jansson and builds the policy the matcher uses.
 */


#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "ngx_http_iothub_twin_id.h"
#include "ngx_http_iothub_twin_policy_data.h"


#define NGX_HTTP_IOTHUB_TWIN_POLICY_NONE      ((size_t) -1)

#define NGX_HTTP_IOTHUB_TWIN_POLICY_CHUNK     (64 * 1024)
#define NGX_HTTP_IOTHUB_TWIN_POLICY_ALIGN     16

/* a pattern as messages show it */
#define ngx_http_iothub_twin_policy_shown(shown, s, len)                     \
    (void) ngx_http_iothub_twin_policy_escape(shown,                         \
                                              NGX_HTTP_IOTHUB_TWIN_SHOWN,    \
                                              s, len, 1)


/* where the loader is, for messages: rules[rule].field[item] */

typedef struct {
    ngx_http_iothub_twin_policy_t        *policy;
    void                                 *cache;
    const char                           *name;
    const char                           *caller;
    size_t                                rule;
    size_t                                item;
    char                                 *err;
    size_t                                err_len;
} ngx_http_iothub_twin_policy_ctx_t;


static void ngx_http_iothub_twin_policy_wipe(void *p, size_t len);
static int ngx_http_iothub_twin_policy_fail(
    ngx_http_iothub_twin_policy_ctx_t *ctx, const char *where,
    const char *fmt, ...) __attribute__ ((format (printf, 3, 4)));
static void ngx_http_iothub_twin_policy_json_error(
    ngx_http_iothub_twin_policy_ctx_t *ctx, json_error_t *error);
static int ngx_http_iothub_twin_policy_known(
    ngx_http_iothub_twin_policy_ctx_t *ctx, const char *where,
    json_t *obj, const char *const *fields);
static int ngx_http_iothub_twin_policy_callers(
    ngx_http_iothub_twin_policy_ctx_t *ctx, json_t *root);
static int ngx_http_iothub_twin_policy_caller_name_valid(const char *name,
    size_t len);
static void ngx_http_iothub_twin_policy_insert(
    ngx_http_iothub_twin_policy_t *policy, size_t index);
static int ngx_http_iothub_twin_policy_parse_caller(
    ngx_http_iothub_twin_policy_ctx_t *ctx, ngx_http_iothub_twin_caller_t *c,
    json_t *obj);
static int ngx_http_iothub_twin_policy_parse_keys(
    ngx_http_iothub_twin_policy_ctx_t *ctx, ngx_http_iothub_twin_caller_t *c,
    json_t *obj);
static size_t ngx_http_iothub_twin_policy_base64(unsigned char *dst,
    const unsigned char *src, size_t len);
static int ngx_http_iothub_twin_policy_parse_rule(
    ngx_http_iothub_twin_policy_ctx_t *ctx,
    ngx_http_iothub_twin_policy_rule_t *r, json_t *obj, size_t ri);
static int ngx_http_iothub_twin_policy_parse_ops(
    ngx_http_iothub_twin_policy_ctx_t *ctx,
    ngx_http_iothub_twin_policy_rule_t *r, json_t *arr);
static int ngx_http_iothub_twin_policy_parse_ids(
    ngx_http_iothub_twin_policy_ctx_t *ctx,
    ngx_http_iothub_twin_policy_rule_t *r, json_t *arr, int modules);
static int ngx_http_iothub_twin_policy_parse_id(
    ngx_http_iothub_twin_policy_ctx_t *ctx, const char *where,
    ngx_http_iothub_twin_policy_id_t *id, const unsigned char *s,
    size_t len);
static int ngx_http_iothub_twin_policy_parse_paths(
    ngx_http_iothub_twin_policy_ctx_t *ctx,
    ngx_http_iothub_twin_policy_rule_t *r, json_t *arr, const char *where);
static unsigned ngx_http_iothub_twin_policy_deny_section(
    const unsigned char *p, size_t len, size_t *skip);
static int ngx_http_iothub_twin_policy_parse_read(
    ngx_http_iothub_twin_policy_ctx_t *ctx,
    ngx_http_iothub_twin_policy_rule_t *r, json_t *arr);
static int ngx_http_iothub_twin_policy_read_shape(
    ngx_http_iothub_twin_policy_ctx_t *ctx,
    const ngx_http_iothub_twin_policy_path_t *pp, const unsigned char *s,
    size_t len);
static int ngx_http_iothub_twin_policy_parse_path(
    ngx_http_iothub_twin_policy_ctx_t *ctx, const char *where,
    ngx_http_iothub_twin_policy_path_t *pp, const unsigned char *s,
    size_t len, const unsigned char *whole, size_t whole_len);
static int ngx_http_iothub_twin_policy_parse_hubs(
    ngx_http_iothub_twin_policy_ctx_t *ctx,
    ngx_http_iothub_twin_policy_rule_t *r, json_t *arr);
static int ngx_http_iothub_twin_policy_same_hub(const unsigned char *a,
    const unsigned char *b, size_t len);
static int ngx_http_iothub_twin_policy_list(
    ngx_http_iothub_twin_policy_ctx_t *ctx, const char *where, json_t *arr,
    size_t min);
static int ngx_http_iothub_twin_policy_unescape(
    ngx_http_iothub_twin_policy_ctx_t *ctx, const char *where,
    unsigned char *dst, size_t *n, const unsigned char *s, size_t len,
    const unsigned char *whole, size_t whole_len, unsigned char *lit);


ngx_http_iothub_twin_policy_t *
ngx_http_iothub_twin_policy_load(const char *path, char *err, size_t err_len)
{
    int                             fd, e;
    char                           *buf, *p;
    size_t                          len, cap;
    ssize_t                         n;
    struct stat                     st;
    ngx_http_iothub_twin_policy_t  *policy;

    fd = open(path, O_RDONLY);
    if (fd == -1) {
        goto failed;
    }

    if (fstat(fd, &st) == -1) {
        goto failed_fd;
    }

    cap = (S_ISREG(st.st_mode) && st.st_size > 0) ? (size_t) st.st_size + 1
                                                   : 4096;
    buf = malloc(cap);
    if (buf == NULL) {
        goto failed_fd;
    }

    len = 0;

    for ( ;; ) {
        /* not realloc(): the old buffer is to be wiped */

        if (len == cap) {
            p = malloc(cap * 2);
            if (p != NULL) {
                memcpy(p, buf, len);
            }

            ngx_http_iothub_twin_policy_wipe(buf, len);
            free(buf);

            if (p == NULL) {
                goto failed_fd;
            }

            buf = p;
            cap *= 2;
        }

        n = read(fd, buf + len, cap - len);

        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }

            ngx_http_iothub_twin_policy_wipe(buf, len);
            free(buf);
            goto failed_fd;
        }

        if (n == 0) {
            break;
        }

        len += n;
    }

    close(fd);

    policy = ngx_http_iothub_twin_policy_parse(path, buf, len, err, err_len);

    /* the file holds the callers' keys */
    ngx_http_iothub_twin_policy_wipe(buf, len);
    free(buf);

    return policy;

failed_fd:

    e = errno;
    close(fd);
    errno = e;

failed:

    if (err != NULL && err_len > 0) {
        snprintf(err, err_len, "%s: %s", path, strerror(errno));
    }

    return NULL;
}


ngx_http_iothub_twin_policy_t *
ngx_http_iothub_twin_policy_parse(const char *name, const char *json,
    size_t len, char *err, size_t err_len)
{
    int                                 rc;
    char                               *copy;
    json_t                             *root;
    json_error_t                        error;
    ngx_http_iothub_twin_policy_ctx_t   ctx;

    memset(&ctx, 0, sizeof(ngx_http_iothub_twin_policy_ctx_t));
    ctx.name = name;
    ctx.rule = NGX_HTTP_IOTHUB_TWIN_POLICY_NONE;
    ctx.item = NGX_HTTP_IOTHUB_TWIN_POLICY_NONE;
    ctx.err = err;
    ctx.err_len = err_len;

    if (err != NULL && err_len > 0) {
        err[0] = '\0';
    }

    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &error);
    if (root == NULL) {
        ngx_http_iothub_twin_policy_json_error(&ctx, &error);
        return NULL;
    }

    ctx.policy = calloc(1, sizeof(ngx_http_iothub_twin_policy_t));
    if (ctx.policy == NULL) {
        json_decref(root);
        (void) ngx_http_iothub_twin_policy_fail(&ctx, NULL, "out of memory");
        return NULL;
    }

    /* callers with the same path patterns share their automata */

    /* kept for ngx_http_iothub_twin_policy_check_hubs()'s messages */

    if (name == NULL) {
        name = "";
    }

    copy = ngx_http_iothub_twin_policy_alloc(ctx.policy, strlen(name) + 1);
    if (copy == NULL) {
        json_decref(root);
        ngx_http_iothub_twin_policy_free(ctx.policy);
        (void) ngx_http_iothub_twin_policy_fail(&ctx, NULL, "out of memory");
        return NULL;
    }

    memcpy(copy, name, strlen(name) + 1);
    ctx.policy->name = copy;

    ctx.cache = ngx_http_iothub_twin_policy_cache_create();

    rc = (ctx.cache != NULL)
         ? ngx_http_iothub_twin_policy_callers(&ctx, root)
         : ngx_http_iothub_twin_policy_fail(&ctx, NULL, "out of memory");

    ngx_http_iothub_twin_policy_cache_free(ctx.cache);
    json_decref(root);

    if (rc != 0) {
        ngx_http_iothub_twin_policy_free(ctx.policy);
        return NULL;
    }

    return ctx.policy;
}


void
ngx_http_iothub_twin_policy_free(ngx_http_iothub_twin_policy_t *policy)
{
    size_t                                i, k;
    ngx_http_iothub_twin_caller_t        *c;
    ngx_http_iothub_twin_policy_chunk_t  *ch, *next;

    if (policy == NULL) {
        return;
    }

    for (i = 0; i < policy->ncallers; i++) {
        c = &policy->callers[i];

        for (k = 0; k < 2; k++) {
            if (c->key[k] != NULL) {
                ngx_http_iothub_twin_policy_wipe(c->key[k], c->key_len[k]);
            }
        }
    }

    for (ch = policy->chunks; ch; ch = next) {
        next = ch->next;
        free(ch);
    }

    free(policy);
}


size_t
ngx_http_iothub_twin_policy_ncallers(
    const ngx_http_iothub_twin_policy_t *policy)
{
    return policy->ncallers;
}

void *
ngx_http_iothub_twin_policy_alloc(ngx_http_iothub_twin_policy_t *policy,
    size_t size)
{
    size_t                                hdr, n;
    unsigned char                        *p;
    ngx_http_iothub_twin_policy_chunk_t  *ch;

    hdr = (sizeof(ngx_http_iothub_twin_policy_chunk_t)
           + NGX_HTTP_IOTHUB_TWIN_POLICY_ALIGN - 1)
          & ~((size_t) NGX_HTTP_IOTHUB_TWIN_POLICY_ALIGN - 1);

    size = (size + NGX_HTTP_IOTHUB_TWIN_POLICY_ALIGN - 1)
           & ~((size_t) NGX_HTTP_IOTHUB_TWIN_POLICY_ALIGN - 1);

    ch = policy->chunks;

    if (ch == NULL || ch->size - ch->used < size) {
        n = (size > NGX_HTTP_IOTHUB_TWIN_POLICY_CHUNK / 4)
            ? size : NGX_HTTP_IOTHUB_TWIN_POLICY_CHUNK;

        ch = malloc(hdr + n);
        if (ch == NULL) {
            return NULL;
        }

        ch->size = n;
        ch->used = 0;

        /* a large block goes behind the current chunk, keeping its room */

        if (n == size && policy->chunks != NULL) {
            ch->next = policy->chunks->next;
            policy->chunks->next = ch;

        } else {
            ch->next = policy->chunks;
            policy->chunks = ch;
        }
    }

    p = (unsigned char *) ch + hdr + ch->used;
    ch->used += size;

    memset(p, 0, size);

    return p;
}


/* a compiler may not drop stores through a volatile pointer */

static void
ngx_http_iothub_twin_policy_wipe(void *p, size_t len)
{
    volatile unsigned char  *v;

    for (v = p; len--; v++) {
        *v = 0;
    }
}


static int
ngx_http_iothub_twin_policy_fail(ngx_http_iothub_twin_policy_ctx_t *ctx,
    const char *where, const char *fmt, ...)
{
    int      n;
    char     caller[NGX_HTTP_IOTHUB_TWIN_SHOWN];
    size_t   len;
    va_list  args;

    if (ctx->err == NULL || ctx->err_len == 0) {
        return -1;
    }

    n = snprintf(ctx->err, ctx->err_len, "%s: ", ctx->name);

    if (ctx->caller != NULL && n >= 0 && (size_t) n < ctx->err_len) {
        (void) ngx_http_iothub_twin_policy_escape(caller, sizeof(caller),
                                       (const unsigned char *) ctx->caller,
                                       strlen(ctx->caller), 1);
        n += snprintf(ctx->err + n, ctx->err_len - n, "caller \"%s\": ",
                      caller);
    }

    if (ctx->rule != NGX_HTTP_IOTHUB_TWIN_POLICY_NONE
        && n >= 0 && (size_t) n < ctx->err_len)
    {
        n += snprintf(ctx->err + n, ctx->err_len - n, "rules[%zu]%s",
                      ctx->rule, where ? "." : ": ");
    }

    if (where != NULL && n >= 0 && (size_t) n < ctx->err_len) {
        if (ctx->item != NGX_HTTP_IOTHUB_TWIN_POLICY_NONE) {
            n += snprintf(ctx->err + n, ctx->err_len - n, "%s[%zu]: ", where,
                          ctx->item);

        } else {
            n += snprintf(ctx->err + n, ctx->err_len - n, "%s: ", where);
        }
    }

    if (n >= 0 && (size_t) n < ctx->err_len) {
        len = ctx->err_len - n;

        va_start(args, fmt);
        (void) vsnprintf(ctx->err + n, len, fmt, args);
        va_end(args);
    }

    return -1;
}


/*
 * jansson shows the token near a syntax error, which may be (part of) a
 * key: only a one-character token is kept, and the name in a duplicate
 * object key.
 */

static void
ngx_http_iothub_twin_policy_json_error(ngx_http_iothub_twin_policy_ctx_t *ctx,
    json_error_t *error)
{
    char         text[2 * JSON_ERROR_TEXT_LENGTH];
    char        *near;
    size_t       len;
    const char  *dup = "duplicate object key";

    len = strnlen(error->text, JSON_ERROR_TEXT_LENGTH);
    near = strstr(error->text, " near '");

    if (near != NULL && strncmp(error->text, dup, strlen(dup)) != 0
        && len - (near - error->text) != sizeof(" near 'x'") - 1)
    {
        len = near - error->text;
    }

    (void) ngx_http_iothub_twin_policy_escape(text, sizeof(text),
                                       (const unsigned char *) error->text,
                                       len, 0);

    if (error->line > 0) {
        (void) ngx_http_iothub_twin_policy_fail(ctx, NULL, "line %d: %s",
                                                error->line, text);

    } else {
        (void) ngx_http_iothub_twin_policy_fail(ctx, NULL, "%s", text);
    }
}


static int
ngx_http_iothub_twin_policy_known(ngx_http_iothub_twin_policy_ctx_t *ctx,
    const char *where, json_t *obj, const char *const *fields)
{
    char                field[NGX_HTTP_IOTHUB_TWIN_SHOWN];
    json_t             *value;
    const char         *key;
    const char *const  *f;

    json_object_foreach(obj, key, value) {
        for (f = fields; *f; f++) {
            if (strcmp(key, *f) == 0) {
                break;
            }
        }

        if (*f == NULL) {
            (void) ngx_http_iothub_twin_policy_escape(field, sizeof(field),
                                       (const unsigned char *) key,
                                       strlen(key), 1);
            return ngx_http_iothub_twin_policy_fail(ctx, where,
                                       "unknown field \"%s\"", field);
        }
    }

    return 0;
}



static int
ngx_http_iothub_twin_policy_callers(ngx_http_iothub_twin_policy_ctx_t *ctx,
    json_t *root)
{
    char                           *copy, msg[256];
    size_t                          i, n, size;
    json_t                         *callers, *value;
    const char                     *name;
    ngx_http_iothub_twin_caller_t  *c;
    ngx_http_iothub_twin_policy_t  *policy;

    static const char *const        fields[] = { "callers", NULL };

    policy = ctx->policy;

    if (!json_is_object(root)) {
        return ngx_http_iothub_twin_policy_fail(ctx, NULL,
                                       "the top level must be an object");
    }

    if (ngx_http_iothub_twin_policy_known(ctx, NULL, root, fields) != 0) {
        return -1;
    }

    callers = json_object_get(root, "callers");
    if (callers == NULL) {
        return ngx_http_iothub_twin_policy_fail(ctx, NULL,
                                       "\"callers\" is missing");
    }

    n = json_is_object(callers) ? json_object_size(callers) : 0;

    if (n == 0 || n >= UINT32_MAX / 4) {
        return ngx_http_iothub_twin_policy_fail(ctx, "callers",
                                       "must be an object holding at least"
                                       " one caller");
    }

    /* a table at most half full keeps lookups short */

    for (size = 16; size < 2 * n; size *= 2) { /* void */ }

    policy->callers = ngx_http_iothub_twin_policy_alloc(policy,
                                 n * sizeof(ngx_http_iothub_twin_caller_t));
    policy->slots = ngx_http_iothub_twin_policy_alloc(policy,
                            size * sizeof(ngx_http_iothub_twin_policy_slot_t));

    if (policy->callers == NULL || policy->slots == NULL) {
        return ngx_http_iothub_twin_policy_fail(ctx, NULL, "out of memory");
    }

    policy->mask = size - 1;

    i = 0;

    /* jansson keeps the order of the file */

    json_object_foreach(callers, name, value) {
        ctx->caller = name;

        if (!ngx_http_iothub_twin_policy_caller_name_valid(name,
                                                           strlen(name)))
        {
            return ngx_http_iothub_twin_policy_fail(ctx, NULL,
                                       "a caller name is 1 to 128"
                                       " printable ASCII characters, no"
                                       " double quote, no backslash, no"
                                       " space at either end");
        }

        c = &policy->callers[i];
        c->name_len = strlen(name);

        /* the name is the jansson tree's: keep a copy */

        copy = ngx_http_iothub_twin_policy_alloc(policy, c->name_len + 1);
        if (copy == NULL) {
            return ngx_http_iothub_twin_policy_fail(ctx, NULL,
                                                    "out of memory");
        }

        memcpy(copy, name, c->name_len + 1);
        c->name = copy;
        c->index = i;

        /* counted as soon as set up, so that free() wipes its keys */
        policy->ncallers = i + 1;

        if (ngx_http_iothub_twin_policy_parse_caller(ctx, c, value) != 0) {
            return -1;
        }

        if (ngx_http_iothub_twin_policy_compile(policy, c, ctx->cache, msg,
                                                sizeof(msg))
            != 0)
        {
            return ngx_http_iothub_twin_policy_fail(ctx, NULL, "%s", msg);
        }

        ngx_http_iothub_twin_policy_insert(policy, i);

        i++;
    }

    ctx->caller = NULL;

    return 0;
}


static int
ngx_http_iothub_twin_policy_caller_name_valid(const char *name, size_t len)
{
    size_t         i;
    unsigned char  c;

    if (len == 0 || len > NGX_HTTP_IOTHUB_TWIN_POLICY_NAME_MAX) {
        return 0;
    }

    /*
     * Printable ASCII but '"' and '\\', no space at either end: SAS key
     * names, certificate CNs and whole subject DNs ("O=Example,CN=a") fit,
     * and a name shows as it is in logs and metric labels.
     */

    if (name[0] == ' ' || name[len - 1] == ' ') {
        return 0;
    }

    for (i = 0; i < len; i++) {
        c = name[i];

        if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') {
            return 0;
        }
    }

    return 1;
}


static void
ngx_http_iothub_twin_policy_insert(ngx_http_iothub_twin_policy_t *policy,
    size_t index)
{
    size_t                          i;
    uint32_t                        h;
    ngx_http_iothub_twin_caller_t  *c;

    c = &policy->callers[index];
    h = ngx_http_iothub_twin_policy_hash((const unsigned char *) c->name,
                                         c->name_len);

    for (i = h & policy->mask; policy->slots[i].index;
         i = (i + 1) & policy->mask)
    { /* void */ }

    policy->slots[i].hash = h;
    policy->slots[i].index = (uint32_t) index + 1;
}


static int
ngx_http_iothub_twin_policy_parse_caller(
    ngx_http_iothub_twin_policy_ctx_t *ctx, ngx_http_iothub_twin_caller_t *c,
    json_t *obj)
{
    size_t       i, n;
    json_t      *v;
    json_int_t   size;
    const char  *mode;

    static const char *const  fields[] = {
        "keys", "mode", "max_body_size", "require_if_match", "rules", NULL
    };

    if (!json_is_object(obj)) {
        return ngx_http_iothub_twin_policy_fail(ctx, NULL,
                                                "must be an object");
    }

    if (ngx_http_iothub_twin_policy_known(ctx, NULL, obj, fields) != 0) {
        return -1;
    }

    v = json_object_get(obj, "keys");
    if (v != NULL && ngx_http_iothub_twin_policy_parse_keys(ctx, c, v) != 0) {
        return -1;
    }

    v = json_object_get(obj, "mode");
    if (v != NULL) {
        mode = json_string_value(v);

        if (mode != NULL && strcmp(mode, "report") == 0) {
            c->report = 1;

        } else if (mode == NULL || strcmp(mode, "enforce") != 0) {
            return ngx_http_iothub_twin_policy_fail(ctx, "mode",
                                       "must be \"enforce\" or \"report\"");
        }
    }

    v = json_object_get(obj, "max_body_size");
    if (v != NULL) {
        size = json_is_integer(v) ? json_integer_value(v) : -1;

        if (size < 0 || size > NGX_HTTP_IOTHUB_TWIN_POLICY_MAX_BODY) {
            return ngx_http_iothub_twin_policy_fail(ctx, "max_body_size",
                                       "must be an integer from 0 (no limit)"
                                       " to %d",
                                       NGX_HTTP_IOTHUB_TWIN_POLICY_MAX_BODY);
        }

        c->max_body_size = (size_t) size;
    }

    v = json_object_get(obj, "require_if_match");
    if (v != NULL) {
        if (!json_is_boolean(v)) {
            return ngx_http_iothub_twin_policy_fail(ctx, "require_if_match",
                                       "must be true or false");
        }

        c->require_if_match = json_is_true(v);
    }

    v = json_object_get(obj, "rules");
    if (v == NULL) {
        return ngx_http_iothub_twin_policy_fail(ctx, NULL,
                                                "\"rules\" is missing");
    }

    n = json_is_array(v) ? json_array_size(v) : 0;

    if (n == 0 || n > NGX_HTTP_IOTHUB_TWIN_POLICY_MAX_RULES) {
        return ngx_http_iothub_twin_policy_fail(ctx, "rules",
                                       "must be an array of 1 to %d rules",
                                       NGX_HTTP_IOTHUB_TWIN_POLICY_MAX_RULES);
    }

    c->rules = ngx_http_iothub_twin_policy_alloc(ctx->policy,
                            n * sizeof(ngx_http_iothub_twin_policy_rule_t));
    if (c->rules == NULL) {
        return ngx_http_iothub_twin_policy_fail(ctx, NULL, "out of memory");
    }

    c->nrules = n;

    for (i = 0; i < n; i++) {
        if (ngx_http_iothub_twin_policy_parse_rule(ctx, &c->rules[i],
                                                   json_array_get(v, i), i)
            != 0)
        {
            return -1;
        }
    }

    return 0;
}


/* messages here name the slot, never show the value */

static int
ngx_http_iothub_twin_policy_parse_keys(ngx_http_iothub_twin_policy_ctx_t *ctx,
    ngx_http_iothub_twin_caller_t *c, json_t *obj)
{
    size_t                k, len;
    json_t               *v;
    unsigned char         buf[NGX_HTTP_IOTHUB_TWIN_POLICY_KEY_MAX];
    const char           *where;
    const unsigned char  *s;

    static const char *const  fields[] = { "primary", "secondary", NULL };
    static const char *const  wheres[] = { "keys.primary", "keys.secondary" };

    if (!json_is_object(obj)) {
        return ngx_http_iothub_twin_policy_fail(ctx, "keys",
                                                "must be an object");
    }

    if (ngx_http_iothub_twin_policy_known(ctx, "keys", obj, fields) != 0) {
        return -1;
    }

    if (json_object_get(obj, "primary") == NULL) {
        return ngx_http_iothub_twin_policy_fail(ctx, "keys",
                                                "\"primary\" is missing");
    }

    for (k = 0; k < 2; k++) {
        v = json_object_get(obj, fields[k]);
        if (v == NULL) {
            continue;
        }

        where = wheres[k];

        if (!json_is_string(v)) {
            return ngx_http_iothub_twin_policy_fail(ctx, where,
                                                    "must be a string");
        }

        s = (const unsigned char *) json_string_value(v);
        len = json_string_length(v);
        len = ngx_http_iothub_twin_policy_base64(buf, s, len);

        if (len == 0) {
            return ngx_http_iothub_twin_policy_fail(ctx, where,
                                       "must be strict base64 (padded, the"
                                       " standard alphabet) of 1 to %d bytes",
                                       NGX_HTTP_IOTHUB_TWIN_POLICY_KEY_MAX);
        }

        c->key[k] = ngx_http_iothub_twin_policy_alloc(ctx->policy, len);
        if (c->key[k] == NULL) {
            ngx_http_iothub_twin_policy_wipe(buf, len);
            return ngx_http_iothub_twin_policy_fail(ctx, NULL,
                                                    "out of memory");
        }

        memcpy(c->key[k], buf, len);
        c->key_len[k] = len;

        ngx_http_iothub_twin_policy_wipe(buf, len);
    }

    return 0;
}


/*
 * Strict base64: the standard alphabet, padded, no whitespace, unused bits
 * zero (so one key has one spelling).  Returns the decoded length, 0 if
 * the text is not such base64 or decodes to more than
 * NGX_HTTP_IOTHUB_TWIN_POLICY_KEY_MAX bytes.  dst holds that many bytes.
 */

static size_t
ngx_http_iothub_twin_policy_base64(unsigned char *dst,
    const unsigned char *src, size_t len)
{
    size_t         i, n, pad;
    uint32_t       v;
    unsigned char  c, d;

    if (len == 0 || len % 4 != 0) {
        return 0;
    }

    pad = 0;

    if (src[len - 1] == '=') {
        pad = (src[len - 2] == '=') ? 2 : 1;
    }

    if (len / 4 * 3 - pad > NGX_HTTP_IOTHUB_TWIN_POLICY_KEY_MAX) {
        return 0;
    }

    n = 0;
    v = 0;

    for (i = 0; i < len - pad; i++) {
        c = src[i];

        if (c >= 'A' && c <= 'Z') {
            d = c - 'A';

        } else if (c >= 'a' && c <= 'z') {
            d = c - 'a' + 26;

        } else if (c >= '0' && c <= '9') {
            d = c - '0' + 52;

        } else if (c == '+') {
            d = 62;

        } else if (c == '/') {
            d = 63;

        } else {
            return 0;
        }

        v = (v << 6) | d;

        if (i % 4 == 3) {
            dst[n++] = (unsigned char) (v >> 16);
            dst[n++] = (unsigned char) (v >> 8);
            dst[n++] = (unsigned char) v;
            v = 0;
        }
    }

    if (pad == 1) {
        if (v & 0x3) {
            return 0;
        }

        dst[n++] = (unsigned char) (v >> 10);
        dst[n++] = (unsigned char) (v >> 2);

    } else if (pad == 2) {
        if (v & 0xf) {
            return 0;
        }

        dst[n++] = (unsigned char) (v >> 4);
    }

    return n;
}


static int
ngx_http_iothub_twin_policy_parse_rule(ngx_http_iothub_twin_policy_ctx_t *ctx,
    ngx_http_iothub_twin_policy_rule_t *r, json_t *obj, size_t ri)
{
    json_t  *v;

    static const char *const  fields[] = {
        "operations", "devices", "modules", "tags", "desired", "deny",
        "read", "hubs", NULL
    };

    ctx->rule = ri;
    ctx->item = NGX_HTTP_IOTHUB_TWIN_POLICY_NONE;

    if (!json_is_object(obj)) {
        return ngx_http_iothub_twin_policy_fail(ctx, NULL,
                                                "must be an object");
    }

    if (ngx_http_iothub_twin_policy_known(ctx, NULL, obj, fields) != 0) {
        return -1;
    }

    v = json_object_get(obj, "operations");
    if (v == NULL) {
        return ngx_http_iothub_twin_policy_fail(ctx, NULL,
                                                "\"operations\" is missing");
    }

    if (ngx_http_iothub_twin_policy_parse_ops(ctx, r, v) != 0) {
        return -1;
    }

    v = json_object_get(obj, "devices");
    if (v == NULL) {
        return ngx_http_iothub_twin_policy_fail(ctx, NULL,
                                                "\"devices\" is missing");
    }

    if (ngx_http_iothub_twin_policy_parse_ids(ctx, r, v, 0) != 0) {
        return -1;
    }

    v = json_object_get(obj, "modules");

    if (v == NULL) {
        r->device_twin = 1;

    } else if (ngx_http_iothub_twin_policy_parse_ids(ctx, r, v, 1) != 0) {
        return -1;
    }

    v = json_object_get(obj, "tags");
    if (v != NULL
        && ngx_http_iothub_twin_policy_parse_paths(ctx, r, v, "tags") != 0)
    {
        return -1;
    }

    v = json_object_get(obj, "desired");
    if (v != NULL
        && ngx_http_iothub_twin_policy_parse_paths(ctx, r, v, "desired") != 0)
    {
        return -1;
    }

    v = json_object_get(obj, "deny");
    if (v != NULL
        && ngx_http_iothub_twin_policy_parse_paths(ctx, r, v, "deny") != 0)
    {
        return -1;
    }

    v = json_object_get(obj, "read");
    if (v != NULL && ngx_http_iothub_twin_policy_parse_read(ctx, r, v) != 0) {
        return -1;
    }

    v = json_object_get(obj, "hubs");
    if (v != NULL && ngx_http_iothub_twin_policy_parse_hubs(ctx, r, v) != 0) {
        return -1;
    }

    ctx->rule = NGX_HTTP_IOTHUB_TWIN_POLICY_NONE;

    return 0;
}


/* an array of strings, min .. NGX_HTTP_IOTHUB_TWIN_POLICY_MAX_LIST long */

static int
ngx_http_iothub_twin_policy_list(ngx_http_iothub_twin_policy_ctx_t *ctx,
    const char *where, json_t *arr, size_t min)
{
    size_t   i, n;
    json_t  *v;

    n = json_is_array(arr) ? json_array_size(arr) : 0;

    if (!json_is_array(arr) || n < min
        || n > NGX_HTTP_IOTHUB_TWIN_POLICY_MAX_LIST)
    {
        return ngx_http_iothub_twin_policy_fail(ctx, where,
                                       "must be an array of %zu to %d"
                                       " strings",
                                       min,
                                       NGX_HTTP_IOTHUB_TWIN_POLICY_MAX_LIST);
    }

    json_array_foreach(arr, i, v) {
        if (!json_is_string(v)) {
            ctx->item = i;
            return ngx_http_iothub_twin_policy_fail(ctx, where,
                                                    "must be a string");
        }
    }

    return 0;
}


static int
ngx_http_iothub_twin_policy_parse_ops(ngx_http_iothub_twin_policy_ctx_t *ctx,
    ngx_http_iothub_twin_policy_rule_t *r, json_t *arr)
{
    int          op;
    char         shown[NGX_HTTP_IOTHUB_TWIN_SHOWN];
    size_t       i;
    json_t      *v;
    const char  *s, *where;

    where = "operations";

    if (ngx_http_iothub_twin_policy_list(ctx, where, arr, 1) != 0) {
        return -1;
    }

    json_array_foreach(arr, i, v) {
        s = json_string_value(v);

        for (op = NGX_HTTP_IOTHUB_TWIN_OP_READ;
             op <= NGX_HTTP_IOTHUB_TWIN_OP_REPLACE;
             op++)
        {
            if (strcmp(s, ngx_http_iothub_twin_policy_op_name(op)) == 0) {
                break;
            }
        }

        ctx->item = i;

        if (op > NGX_HTTP_IOTHUB_TWIN_OP_REPLACE) {
            (void) ngx_http_iothub_twin_policy_escape(shown, sizeof(shown),
                                       (const unsigned char *) s,
                                       json_string_length(v), 1);
            return ngx_http_iothub_twin_policy_fail(ctx, where,
                                       "\"%s\": not one of \"read\","
                                       " \"update\", \"replace\"", shown);
        }

        if (r->ops & (1u << op)) {
            return ngx_http_iothub_twin_policy_fail(ctx, where,
                                       "\"%s\" is listed twice", s);
        }

        r->ops |= 1u << op;
    }

    ctx->item = NGX_HTTP_IOTHUB_TWIN_POLICY_NONE;

    return 0;
}


static int
ngx_http_iothub_twin_policy_parse_ids(ngx_http_iothub_twin_policy_ctx_t *ctx,
    ngx_http_iothub_twin_policy_rule_t *r, json_t *arr, int modules)
{
    size_t                             i, n, len;
    json_t                            *v;
    const char                        *where;
    ngx_http_iothub_twin_policy_id_t  *ids;

    where = modules ? "modules" : "devices";

    if (ngx_http_iothub_twin_policy_list(ctx, where, arr, 1) != 0) {
        return -1;
    }

    n = json_array_size(arr);

    ids = ngx_http_iothub_twin_policy_alloc(ctx->policy,
                               n * sizeof(ngx_http_iothub_twin_policy_id_t));
    if (ids == NULL) {
        return ngx_http_iothub_twin_policy_fail(ctx, NULL, "out of memory");
    }

    n = 0;

    json_array_foreach(arr, i, v) {
        ctx->item = i;
        len = json_string_length(v);

        /* in "modules", "" is the device twin itself */

        if (len == 0 && modules) {
            r->device_twin = 1;
            continue;
        }

        ids[n].rule = (uint16_t) ctx->rule;

        if (ngx_http_iothub_twin_policy_parse_id(ctx, where, &ids[n],
                                  (const unsigned char *) json_string_value(v),
                                  len)
            != 0)
        {
            return -1;
        }

        n++;
    }

    ctx->item = NGX_HTTP_IOTHUB_TWIN_POLICY_NONE;

    if (modules) {
        r->modules = ids;
        r->nmodules = (uint32_t) n;

    } else {
        r->devices = ids;
        r->ndevices = (uint32_t) n;
    }

    return 0;
}


static int
ngx_http_iothub_twin_policy_parse_id(ngx_http_iothub_twin_policy_ctx_t *ctx,
    const char *where, ngx_http_iothub_twin_policy_id_t *id,
    const unsigned char *s, size_t len)
{
    char            shown[NGX_HTTP_IOTHUB_TWIN_SHOWN], bad[8];
    size_t          i, n, wild;
    unsigned char  *data, c;
    unsigned char   buf[NGX_HTTP_IOTHUB_TWIN_POLICY_ID_PATTERN];
    unsigned char   lit[NGX_HTTP_IOTHUB_TWIN_POLICY_ID_PATTERN];

    if (len == 0) {
        return ngx_http_iothub_twin_policy_fail(ctx, where,
                                       "an empty pattern matches no ID");
    }

    if (len > NGX_HTTP_IOTHUB_TWIN_POLICY_ID_PATTERN) {
        ngx_http_iothub_twin_policy_shown(shown, s, len);
        return ngx_http_iothub_twin_policy_fail(ctx, where,
                                       "\"%s\": longer than %d characters",
                                       shown,
                                       NGX_HTTP_IOTHUB_TWIN_POLICY_ID_PATTERN);
    }

    if (ngx_http_iothub_twin_policy_unescape(ctx, where, buf, &n, s, len, s,
                                             len, lit)
        != 0)
    {
        return -1;
    }

    wild = 0;

    for (i = 0; i < n; i++) {
        c = buf[i];

        if (!lit[i] && (c == '*' || c == '?')) {
            wild++;
            continue;
        }

        /* a literal '*' or '?' is an ID character, a backslash is not */

        if (!ngx_http_iothub_twin_id_char(c)) {
            ngx_http_iothub_twin_policy_shown(shown, s, len);
            (void) ngx_http_iothub_twin_policy_escape(bad, sizeof(bad),
                                                      &buf[i], 1, 0);
            return ngx_http_iothub_twin_policy_fail(ctx, where,
                                       "\"%s\": '%s' is not allowed in a"
                                       " pattern", shown, bad);
        }
    }

    if (n == 0) {
        return ngx_http_iothub_twin_policy_fail(ctx, where,
                                       "an empty pattern matches no ID");
    }

    data = ngx_http_iothub_twin_policy_alloc(ctx->policy, n);
    if (data == NULL) {
        return ngx_http_iothub_twin_policy_fail(ctx, NULL, "out of memory");
    }

    id->data = data;
    id->len = (uint32_t) n;
    id->system = (buf[0] == '$');
    id->first = (!lit[0] && (buf[0] == '*' || buf[0] == '?')) ? '\0'
                                                              : buf[0];

    if (wild == 0) {
        id->kind = NGX_HTTP_IOTHUB_TWIN_POLICY_EXACT;
        memcpy(data, buf, n);
        return 0;
    }

    if (wild == 1 && !lit[n - 1] && buf[n - 1] == '*') {
        id->kind = NGX_HTTP_IOTHUB_TWIN_POLICY_PREFIX;
        id->len--;
        memcpy(data, buf, n - 1);
        return 0;
    }

    /* a glob: wildcards as bytes no ID holds, so literals stay literal */

    id->kind = NGX_HTTP_IOTHUB_TWIN_POLICY_GLOB;

    for (i = 0; i < n; i++) {
        if (lit[i] || (buf[i] != '*' && buf[i] != '?')) {
            data[i] = buf[i];

        } else {
            data[i] = (buf[i] == '*') ? NGX_HTTP_IOTHUB_TWIN_POLICY_ANY_RUN
                                      : NGX_HTTP_IOTHUB_TWIN_POLICY_ANY_ONE;
        }
    }

    return 0;
}


/*
 * "\*", "\?" and "\\" stand for '*', '?' and '\' taken literally (lit[i]
 * set for them if lit is given); a backslash before anything else is an
 * error naming the whole pattern.  dst has room for len bytes.
 */

static int
ngx_http_iothub_twin_policy_unescape(ngx_http_iothub_twin_policy_ctx_t *ctx,
    const char *where, unsigned char *dst, size_t *n, const unsigned char *s,
    size_t len, const unsigned char *whole, size_t whole_len,
    unsigned char *lit)
{
    char    shown[NGX_HTTP_IOTHUB_TWIN_SHOWN];
    size_t  i, k;

    for (i = 0, k = 0; i < len; i++, k++) {
        if (s[i] != '\\') {
            if (lit != NULL) {
                lit[k] = 0;
            }

            dst[k] = s[i];
            continue;
        }

        if (i + 1 == len
            || (s[i + 1] != '*' && s[i + 1] != '?' && s[i + 1] != '\\'))
        {
            ngx_http_iothub_twin_policy_shown(shown, whole, whole_len);
            return ngx_http_iothub_twin_policy_fail(ctx, where,
                                       "\"%s\": a backslash may only come"
                                       " before '*', '?' or a backslash",
                                       shown);
        }

        if (lit != NULL) {
            lit[k] = 1;
        }

        dst[k] = s[++i];
    }

    *n = k;

    return 0;
}


/* "tags", "desired" (relative to their section) or "deny" (full paths) */

static int
ngx_http_iothub_twin_policy_parse_paths(ngx_http_iothub_twin_policy_ctx_t *ctx,
    ngx_http_iothub_twin_policy_rule_t *r, json_t *arr, const char *where)
{
    char                                 shown[NGX_HTTP_IOTHUB_TWIN_SHOWN];
    size_t                               i, n, len, skip, count[3];
    json_t                              *v;
    unsigned                             s, deny;
    const unsigned char                 *p;
    ngx_http_iothub_twin_policy_path_t  *list, *pp;

    if (ngx_http_iothub_twin_policy_list(ctx, where, arr, 0) != 0) {
        return -1;
    }

    n = json_array_size(arr);

    if (n == 0) {
        return 0;
    }

    list = ngx_http_iothub_twin_policy_alloc(ctx->policy,
                             n * sizeof(ngx_http_iothub_twin_policy_path_t));
    if (list == NULL) {
        return ngx_http_iothub_twin_policy_fail(ctx, NULL, "out of memory");
    }

    deny = (strcmp(where, "deny") == 0);

    if (deny) {

        /* kept by section: tags, desired, reported */

        memset(count, 0, sizeof(count));

        json_array_foreach(arr, i, v) {
            p = (const unsigned char *) json_string_value(v);
            len = json_string_length(v);

            s = ngx_http_iothub_twin_policy_deny_section(p, len, &skip);

            if (s > NGX_HTTP_IOTHUB_TWIN_POLICY_REPORTED) {
                ctx->item = i;
                (void) ngx_http_iothub_twin_policy_escape(shown,
                                                          sizeof(shown), p,
                                                          len, 1);
                return ngx_http_iothub_twin_policy_fail(ctx, where,
                                       "\"%s\": must begin with \"tags.\","
                                       " \"properties.desired.\" or"
                                       " \"properties.reported.\"", shown);
            }

            count[s]++;
        }

        r->deny[NGX_HTTP_IOTHUB_TWIN_POLICY_TAGS] = list;
        r->deny[NGX_HTTP_IOTHUB_TWIN_POLICY_DESIRED] = list + count[0];
        r->deny[NGX_HTTP_IOTHUB_TWIN_POLICY_REPORTED] = list + count[0]
                                                        + count[1];

    } else {
        s = (where[0] == 't') ? NGX_HTTP_IOTHUB_TWIN_POLICY_TAGS
                              : NGX_HTTP_IOTHUB_TWIN_POLICY_DESIRED;
        r->allow[s] = list;
        r->nallow[s] = (uint32_t) n;
    }

    json_array_foreach(arr, i, v) {
        ctx->item = i;

        p = (const unsigned char *) json_string_value(v);
        len = json_string_length(v);
        skip = 0;

        if (deny) {
            s = ngx_http_iothub_twin_policy_deny_section(p, len, &skip);
            pp = &r->deny[s][r->ndeny[s]++];

        } else {
            pp = &list[i];
        }

        pp->index = (uint16_t) i;

        if (ngx_http_iothub_twin_policy_parse_path(ctx, where, pp, p + skip,
                                                   len - skip, p, len)
            != 0)
        {
            return -1;
        }
    }

    ctx->item = NGX_HTTP_IOTHUB_TWIN_POLICY_NONE;

    return 0;
}


/* the section a deny pattern begins with, 3 if none; skip: its prefix */

static unsigned
ngx_http_iothub_twin_policy_deny_section(const unsigned char *p, size_t len,
    size_t *skip)
{
    static const char  tags[] = "tags.";
    static const char  desired[] = "properties.desired.";
    static const char  reported[] = "properties.reported.";

    if (len >= sizeof(tags) - 1 && memcmp(p, tags, sizeof(tags) - 1) == 0) {
        *skip = sizeof(tags) - 1;
        return NGX_HTTP_IOTHUB_TWIN_POLICY_TAGS;
    }

    if (len >= sizeof(desired) - 1
        && memcmp(p, desired, sizeof(desired) - 1) == 0)
    {
        *skip = sizeof(desired) - 1;
        return NGX_HTTP_IOTHUB_TWIN_POLICY_DESIRED;
    }

    if (len >= sizeof(reported) - 1
        && memcmp(p, reported, sizeof(reported) - 1) == 0)
    {
        *skip = sizeof(reported) - 1;
        return NGX_HTTP_IOTHUB_TWIN_POLICY_REPORTED;
    }

    return 3;
}


/* "read": whole paths of the twin, each checked for its shape */

static int
ngx_http_iothub_twin_policy_parse_read(ngx_http_iothub_twin_policy_ctx_t *ctx,
    ngx_http_iothub_twin_policy_rule_t *r, json_t *arr)
{
    size_t                               i, n, len;
    json_t                              *v;
    const unsigned char                 *p;
    ngx_http_iothub_twin_policy_path_t  *list;

    if (ngx_http_iothub_twin_policy_list(ctx, "read", arr, 0) != 0) {
        return -1;
    }

    n = json_array_size(arr);

    r->read_given = 1;

    if (n == 0) {
        return 0;
    }

    list = ngx_http_iothub_twin_policy_alloc(ctx->policy,
                             n * sizeof(ngx_http_iothub_twin_policy_path_t));
    if (list == NULL) {
        return ngx_http_iothub_twin_policy_fail(ctx, NULL, "out of memory");
    }

    r->read = list;
    r->nread = (uint32_t) n;

    json_array_foreach(arr, i, v) {
        ctx->item = i;

        p = (const unsigned char *) json_string_value(v);
        len = json_string_length(v);

        list[i].index = (uint16_t) i;

        if (ngx_http_iothub_twin_policy_parse_path(ctx, "read", &list[i], p,
                                                   len, p, len)
            != 0
            || ngx_http_iothub_twin_policy_read_shape(ctx, &list[i], p, len)
               != 0)
        {
            return -1;
        }
    }

    ctx->item = NGX_HTTP_IOTHUB_TWIN_POLICY_NONE;

    return 0;
}


/*
 * The twin's nodes: below the top level only tags and properties are
 * objects the filter walks into, and properties holds the two sections.
 */

static int
ngx_http_iothub_twin_policy_read_shape(ngx_http_iothub_twin_policy_ctx_t *ctx,
    const ngx_http_iothub_twin_policy_path_t *pp, const unsigned char *s,
    size_t len)
{
    char                                      shown[NGX_HTTP_IOTHUB_TWIN_SHOWN];
    const char                               *why;
    const ngx_http_iothub_twin_policy_seg_t  *seg;

    /* "**": the whole twin */

    if (pp->nsegs == 0) {
        return 0;
    }

    seg = &pp->segs[0];
    why = NULL;

    if (seg->any) {
        why = "a top-level member is named, not matched with \"*\"; \"**\""
              " alone reads the whole twin";

    } else if (seg->len == 4 && memcmp(seg->data, "tags", 4) == 0) {
        return 0;

    } else if (seg->len == 10 && memcmp(seg->data, "properties", 10) == 0) {
        seg = &pp->segs[1];

        if (pp->nsegs > 1
            && (seg->any
                || !((seg->len == 7 && memcmp(seg->data, "desired", 7) == 0)
                     || (seg->len == 8
                         && memcmp(seg->data, "reported", 8) == 0))))
        {
            why = "below \"properties\" only \"desired\" and \"reported\""
                  " may be named";
        }

    } else if (pp->nsegs > 1) {
        why = "only tags and properties are read below the top level; name"
              " the member as a whole";
    }

    if (why == NULL) {
        return 0;
    }

    (void) ngx_http_iothub_twin_policy_escape(shown, sizeof(shown), s, len,
                                              1);

    return ngx_http_iothub_twin_policy_fail(ctx, "read", "\"%s\": %s",
                                            shown, why);
}


static int
ngx_http_iothub_twin_policy_parse_path(ngx_http_iothub_twin_policy_ctx_t *ctx,
    const char *where, ngx_http_iothub_twin_policy_path_t *pp,
    const unsigned char *s, size_t len, const unsigned char *whole,
    size_t whole_len)
{
    char                                shown[NGX_HTTP_IOTHUB_TWIN_SHOWN];
    char                                bad[8];
    size_t                              n, i, k, seg, klen;
    const char                         *why;
    unsigned char                      *data;
    const unsigned char                *p, *end, *dot;
    ngx_http_iothub_twin_policy_seg_t  *segs;

    if (whole_len == 0) {
        return ngx_http_iothub_twin_policy_fail(ctx, where,
                                                "an empty path pattern");
    }

    if (whole_len > NGX_HTTP_IOTHUB_TWIN_POLICY_PATH_PATTERN) {
        ngx_http_iothub_twin_policy_shown(shown, whole, whole_len);
        return ngx_http_iothub_twin_policy_fail(ctx, where,
                                   "\"%s\": longer than %d bytes", shown,
                                   NGX_HTTP_IOTHUB_TWIN_POLICY_PATH_PATTERN);
    }

    n = 1;

    for (i = 0; i < len; i++) {
        n += (s[i] == '.');
    }

    /* the keys, escapes resolved: never longer than the pattern */

    data = ngx_http_iothub_twin_policy_alloc(ctx->policy, len);
    segs = ngx_http_iothub_twin_policy_alloc(ctx->policy,
                              n * sizeof(ngx_http_iothub_twin_policy_seg_t));
    if (data == NULL || segs == NULL) {
        return ngx_http_iothub_twin_policy_fail(ctx, NULL, "out of memory");
    }

    pp->segs = segs;
    pp->nsegs = 0;
    pp->rest = 0;

    end = s + len;

    for (p = s, k = 0; k < n; k++, p = dot + 1) {
        dot = memchr(p, '.', end - p);
        if (dot == NULL) {
            dot = end;
        }

        seg = dot - p;

        if (seg == 0) {
            ngx_http_iothub_twin_policy_shown(shown, whole, whole_len);
            return ngx_http_iothub_twin_policy_fail(ctx, where,
                                       "\"%s\": an empty segment", shown);
        }

        /* what the hub never accepts in a key could never match */

        for (i = 0; i < seg; i++) {
            why = NULL;

            if (p[i] < 0x20 || p[i] == 0x7f) {
                why = "a control character";

            } else if (p[i] == 0xc2 && i + 1 < seg && p[i + 1] >= 0x80
                       && p[i + 1] <= 0x9f)
            {
                why = "a control character";

            } else if (p[i] == ' ' || p[i] == '$') {
                why = "not allowed in a key";
            }

            if (why != NULL) {
                ngx_http_iothub_twin_policy_shown(shown, whole, whole_len);
                (void) ngx_http_iothub_twin_policy_escape(bad, sizeof(bad),
                                                          &p[i], 1, 0);
                return ngx_http_iothub_twin_policy_fail(ctx, where,
                                           "\"%s\": '%s' is %s", shown, bad,
                                           why);
            }
        }

        if (seg == 2 && p[0] == '*' && p[1] == '*') {
            if (k != n - 1) {
                ngx_http_iothub_twin_policy_shown(shown, whole, whole_len);
                return ngx_http_iothub_twin_policy_fail(ctx, where,
                                           "\"%s\": \"**\" is allowed only"
                                           " as the last segment", shown);
            }

            pp->rest = 1;
            break;
        }

        if (seg == 1 && p[0] == '*') {
            segs[k].data = NULL;
            segs[k].len = 0;
            segs[k].any = 1;
            pp->nsegs++;
            continue;
        }

        /* a key: "\*" is the key "*", "\*\*" the key "**" */

        if (ngx_http_iothub_twin_policy_unescape(ctx, where, data, &klen, p,
                                                 seg, whole, whole_len, NULL)
            != 0)
        {
            return -1;
        }

        if (klen > NGX_HTTP_IOTHUB_TWIN_POLICY_SEGMENT) {
            ngx_http_iothub_twin_policy_shown(shown, whole, whole_len);
            return ngx_http_iothub_twin_policy_fail(ctx, where,
                                       "\"%s\": a segment longer than %d"
                                       " bytes", shown,
                                       NGX_HTTP_IOTHUB_TWIN_POLICY_SEGMENT);
        }

        segs[k].data = data;
        segs[k].len = (uint32_t) klen;
        segs[k].any = 0;
        pp->nsegs++;

        data += klen;
    }

    return 0;
}



/*
 * "hubs": host names, 1 to 253 letters, digits, '-' and '.', each once
 * (without case); kept as written, for check_hubs() and its messages
 */

static int
ngx_http_iothub_twin_policy_parse_hubs(ngx_http_iothub_twin_policy_ctx_t *ctx,
    ngx_http_iothub_twin_policy_rule_t *r, json_t *arr)
{
    char                                shown[NGX_HTTP_IOTHUB_TWIN_SHOWN];
    char                                bad[8];
    size_t                              i, k, n, len;
    json_t                             *v;
    unsigned char                      *data, c;
    const unsigned char                *p;
    ngx_http_iothub_twin_policy_hub_t  *hubs;

    if (ngx_http_iothub_twin_policy_list(ctx, "hubs", arr, 1) != 0) {
        return -1;
    }

    n = json_array_size(arr);

    hubs = ngx_http_iothub_twin_policy_alloc(ctx->policy,
                              n * sizeof(ngx_http_iothub_twin_policy_hub_t));
    if (hubs == NULL) {
        return ngx_http_iothub_twin_policy_fail(ctx, NULL, "out of memory");
    }

    json_array_foreach(arr, i, v) {
        ctx->item = i;

        p = (const unsigned char *) json_string_value(v);
        len = json_string_length(v);

        ngx_http_iothub_twin_policy_shown(shown, p, len);

        if (len == 0 || len > NGX_HTTP_IOTHUB_TWIN_POLICY_HUB_MAX) {
            return ngx_http_iothub_twin_policy_fail(ctx, "hubs",
                                       "\"%s\": a hub's host name is 1 to %d"
                                       " bytes", shown,
                                       NGX_HTTP_IOTHUB_TWIN_POLICY_HUB_MAX);
        }

        for (k = 0; k < len; k++) {
            c = p[k];

            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                || (c >= '0' && c <= '9') || c == '-' || c == '.')
            {
                continue;
            }

            (void) ngx_http_iothub_twin_policy_escape(bad, sizeof(bad),
                                                      &p[k], 1, 0);
            return ngx_http_iothub_twin_policy_fail(ctx, "hubs",
                                       "\"%s\": '%s' is not allowed in a"
                                       " host name (letters, digits, '-' and"
                                       " '.')", shown, bad);
        }

        for (k = 0; k < i; k++) {
            if (hubs[k].len == len
                && ngx_http_iothub_twin_policy_same_hub(hubs[k].data, p, len))
            {
                return ngx_http_iothub_twin_policy_fail(ctx, "hubs",
                                           "\"%s\" is listed twice", shown);
            }
        }

        data = ngx_http_iothub_twin_policy_alloc(ctx->policy, len);
        if (data == NULL) {
            return ngx_http_iothub_twin_policy_fail(ctx, NULL,
                                                    "out of memory");
        }

        memcpy(data, p, len);
        hubs[i].data = data;
        hubs[i].len = (uint32_t) len;
    }

    r->hubs = hubs;
    r->nhubs = (uint32_t) n;

    ctx->item = NGX_HTTP_IOTHUB_TWIN_POLICY_NONE;

    return 0;
}


static int
ngx_http_iothub_twin_policy_same_hub(const unsigned char *a,
    const unsigned char *b, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (ngx_http_iothub_twin_policy_lower(a[i])
            != ngx_http_iothub_twin_policy_lower(b[i]))
        {
            return 0;
        }
    }

    return 1;
}


int
ngx_http_iothub_twin_policy_check_hubs(const ngx_http_iothub_twin_policy_t *p,
    int (*known)(void *data, const unsigned char *name, size_t len),
    void *data, const char *suffix, char *err, size_t err_len)
{
    char                                       name[NGX_HTTP_IOTHUB_TWIN_SHOWN];
    size_t                                     i, ri, j;
    const ngx_http_iothub_twin_caller_t       *c;
    const ngx_http_iothub_twin_policy_hub_t   *h;
    const ngx_http_iothub_twin_policy_rule_t  *r;

    if (p == NULL) {
        return 0;
    }

    for (i = 0; i < p->ncallers; i++) {
        c = &p->callers[i];

        for (ri = 0; ri < c->nrules; ri++) {
            r = &c->rules[ri];

            for (j = 0; j < r->nhubs; j++) {
                h = &r->hubs[j];

                if (known(data, h->data, h->len)) {
                    continue;
                }

                if (err == NULL || err_len == 0) {
                    return -1;
                }

                (void) ngx_http_iothub_twin_policy_escape(name, sizeof(name),
                                       (const unsigned char *) c->name,
                                       c->name_len, 1);

                /* a hub's bytes are letters, digits, '-' and '.' */

                (void) snprintf(err, err_len, "%s: caller \"%s\":"
                                " rules[%zu].hubs[%zu]: unknown hub"
                                " \"%.*s\"%s%s", p->name, name, ri, j,
                                (int) h->len, h->data,
                                (suffix != NULL && suffix[0] != '\0')
                                ? " " : "",
                                (suffix != NULL) ? suffix : "");
                return -1;
            }
        }
    }

    return 0;
}
