
/*
 * Copyright (C) ngx_iothub_twin developers
 *
 * Counters in a shared memory zone, so that every worker's requests count
 * once and the numbers survive a reload, served in Prometheus text format
 * by iothub_twin_metrics.  Callers come from the policy, never from
 * request data, so the number of series is bounded by the zone.
 */


#include "ngx_http_iothub_twin_module.h"


#define NGX_HTTP_IOTHUB_TWIN_M_OPS        4
#define NGX_HTTP_IOTHUB_TWIN_M_DECISIONS  7
#define NGX_HTTP_IOTHUB_TWIN_M_CLASSES    6
#define NGX_HTTP_IOTHUB_TWIN_M_BUCKETS    12
#define NGX_HTTP_IOTHUB_TWIN_M_CODES      18

/* the validator's rule codes, named by ..._patch_rule_name() */
#define NGX_HTTP_IOTHUB_TWIN_M_RULES      NGX_HTTP_IOTHUB_TWIN_PATCH_RULES


/* hubs counted apart; more share the "-" slot */
#define NGX_HTTP_IOTHUB_TWIN_M_HUBS       16


/* what a caller or a hub is counted by: its name */

typedef struct {
    size_t                     len;
    u_char                     name[256];
} ngx_http_iothub_twin_m_name_t;


typedef struct {
    ngx_http_iothub_twin_m_name_t  id;
    ngx_atomic_t               requests[NGX_HTTP_IOTHUB_TWIN_M_OPS]
                                       [NGX_HTTP_IOTHUB_TWIN_M_DECISIONS]
                                       [NGX_HTTP_IOTHUB_TWIN_M_CLASSES];
} ngx_http_iothub_twin_m_caller_t;


/* requests forwarded to a hub, by the class of its answer */

typedef struct {
    ngx_http_iothub_twin_m_name_t  id;
    ngx_atomic_t               forwarded[NGX_HTTP_IOTHUB_TWIN_M_CLASSES];
} ngx_http_iothub_twin_m_hub_t;


typedef struct {
    ngx_atomic_t               generation;
    ngx_atomic_t               tokens_signed;
    ngx_atomic_t               refusals[NGX_HTTP_IOTHUB_TWIN_M_CODES]
                                       [NGX_HTTP_IOTHUB_TWIN_M_RULES];
    ngx_atomic_t               latency[NGX_HTTP_IOTHUB_TWIN_M_BUCKETS];
    ngx_atomic_t               latency_count;
    ngx_atomic_t               latency_sum_us;
    ngx_uint_t                 nhubs;
    ngx_http_iothub_twin_m_hub_t     hubs[NGX_HTTP_IOTHUB_TWIN_M_HUBS];
    ngx_uint_t                 ncallers;
    ngx_uint_t                 max_callers;
    ngx_http_iothub_twin_m_caller_t  callers[1];
} ngx_http_iothub_twin_m_shm_t;


static ngx_int_t ngx_http_iothub_twin_metrics_init_zone(
    ngx_shm_zone_t *shm_zone, void *data);
static void *ngx_http_iothub_twin_metrics_slot(ngx_slab_pool_t *shpool,
    u_char *base, size_t stride, ngx_uint_t *count, ngx_uint_t max,
    u_char *name, size_t len);
static ngx_uint_t ngx_http_iothub_twin_metrics_index(ngx_str_t *s,
    const char **names, ngx_uint_t n);
static u_char *ngx_http_iothub_twin_metrics_label(u_char *p, u_char *s,
    size_t len);


/* the first of each list is what does not fit the others */

static const char  *ngx_http_iothub_twin_m_ops[] = {
    "none", "read", "update", "replace"
};

static const char  *ngx_http_iothub_twin_m_decisions[] = {
    "none", "allow", "deny", "report", "unauthenticated", "throttled",
    "refused"
};

static const char  *ngx_http_iothub_twin_m_classes[] = {
    "other", "1xx", "2xx", "3xx", "4xx", "5xx"
};

static const char  *ngx_http_iothub_twin_m_codes[] = {
    "other", "ArgumentInvalid", "IotHubFormatError", "MessageTooLarge",
    "UnsupportedMediaType", "PreconditionRequired", "PolicyDenied",
    "IotHubUnauthorizedAccess", "MethodNotAllowed", "NotFound",
    "InternalServerError", "ThrottlingException", "BadGateway",
    "ServiceUnavailable", "GatewayTimeout", "RequestTimeout", "ServerError",
    "DeviceNotFound"
};

/* upper bounds in milliseconds; the last bucket is +Inf */

static const ngx_msec_t  ngx_http_iothub_twin_m_bounds[] = {
    5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000
};


/* iothub_twin_metrics_zone size; */

char *
ngx_http_iothub_twin_metrics_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_iothub_twin_main_conf_t *imcf = conf;

    ssize_t     size;
    ngx_str_t  *value, name = ngx_string("iothub_twin_metrics");

    if (imcf->metrics) {
        return "is duplicate";
    }

    value = cf->args->elts;

    size = ngx_parse_size(&value[1]);

    if (size == NGX_ERROR || size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\": expected a size "
                           "of at least %uzk", &value[1], &cmd->name,
                           8 * ngx_pagesize / 1024);
        return NGX_CONF_ERROR;
    }

    imcf->metrics = ngx_shared_memory_add(cf, &name, size,
                                          &ngx_http_iothub_twin_module);
    if (imcf->metrics == NULL) {
        return NGX_CONF_ERROR;
    }

    imcf->metrics->init = ngx_http_iothub_twin_metrics_init_zone;

    return NGX_CONF_OK;
}


/*
 * Runs at every start and reload: a zone of the same size keeps its
 * counters, and the generation counts the configurations loaded.
 */

static ngx_int_t
ngx_http_iothub_twin_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    size_t                         size;
    ngx_slab_pool_t               *shpool;
    ngx_http_iothub_twin_m_shm_t  *m;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (data) {
        shm_zone->data = data;
        m = data;
        ngx_atomic_fetch_add(&m->generation, 1);
        return NGX_OK;
    }

    if (shm_zone->shm.exists) {
        shm_zone->data = shpool->data;
        return NGX_OK;
    }

    /* all of the zone but the slab pool's own pages goes to the counters */

    size = shm_zone->shm.size - 4 * ngx_pagesize;

    m = ngx_slab_calloc(shpool, size);
    if (m == NULL) {
        return NGX_ERROR;
    }

    m->generation = 1;
    m->max_callers = (size - sizeof(ngx_http_iothub_twin_m_shm_t))
                     / sizeof(ngx_http_iothub_twin_m_caller_t) + 1;

    /* slot 0: requests with no identified caller */

    m->callers[0].id.name[0] = '-';
    m->callers[0].id.len = 1;
    m->ncallers = 1;

    /* and requests forwarded to a hub beyond the table */

    m->hubs[0].id.name[0] = '-';
    m->hubs[0].id.len = 1;
    m->nhubs = 1;

    shpool->data = m;
    shm_zone->data = m;

    ngx_sprintf(shpool->log_ctx, " in iothub_twin_metrics_zone \"%V\"%Z",
                &shm_zone->shm.name);

    return NGX_OK;
}


void
ngx_http_iothub_twin_metrics_token(ngx_http_request_t *r)
{
    ngx_http_iothub_twin_m_shm_t      *m;
    ngx_http_iothub_twin_main_conf_t  *imcf;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_iothub_twin_module);

    if (imcf->metrics == NULL) {
        return;
    }

    m = imcf->metrics->data;
    ngx_atomic_fetch_add(&m->tokens_signed, 1);
}


/* the log phase: one request, counted once, into the shared zone */

ngx_int_t
ngx_http_iothub_twin_metrics_log(ngx_http_request_t *r)
{
    ngx_uint_t                         op, decision, class, code, b;
    ngx_msec_t                         ms;
    ngx_slab_pool_t                   *shpool;
    ngx_http_upstream_state_t         *state;
    ngx_http_iothub_twin_ctx_t        *ctx;
    ngx_http_iothub_twin_m_shm_t      *m;
    ngx_http_iothub_twin_m_hub_t      *hub;
    ngx_http_iothub_twin_m_caller_t   *caller;
    ngx_http_iothub_twin_loc_conf_t   *itlcf;
    ngx_http_iothub_twin_main_conf_t  *imcf;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_iothub_twin_module);
    itlcf = ngx_http_get_module_loc_conf(r, ngx_http_iothub_twin_module);

    if (imcf->metrics == NULL || r != r->main
        || (!itlcf->enabled && itlcf->error_status == 0))
    {
        return NGX_OK;
    }

    m = imcf->metrics->data;
    shpool = (ngx_slab_pool_t *) imcf->metrics->shm.addr;

    ctx = ngx_http_get_module_ctx(r, ngx_http_iothub_twin_module);

    op = 0;
    decision = 0;
    caller = &m->callers[0];

    if (ctx) {
        op = ngx_http_iothub_twin_metrics_index(&ctx->operation_name,
                                                ngx_http_iothub_twin_m_ops,
                                                NGX_HTTP_IOTHUB_TWIN_M_OPS);
        decision = ngx_http_iothub_twin_metrics_index(&ctx->decision,
                                         ngx_http_iothub_twin_m_decisions,
                                         NGX_HTTP_IOTHUB_TWIN_M_DECISIONS);

        if (ctx->error.len && decision == 0) {
            decision = NGX_HTTP_IOTHUB_TWIN_M_DECISIONS - 1;
        }

        if (ctx->caller && ctx->caller_name.len) {
            caller = ngx_http_iothub_twin_metrics_slot(shpool,
                                  (u_char *) m->callers,
                                  sizeof(ngx_http_iothub_twin_m_caller_t),
                                  &m->ncallers, m->max_callers,
                                  ctx->caller_name.data,
                                  ctx->caller_name.len);
        }
    }

    class = r->headers_out.status / 100;
    if (class >= NGX_HTTP_IOTHUB_TWIN_M_CLASSES) {
        class = 0;
    }

    ngx_atomic_fetch_add(&caller->requests[op][decision][class], 1);

    if (ctx && ctx->forwarded && ctx->hub.len) {
        hub = ngx_http_iothub_twin_metrics_slot(shpool, (u_char *) m->hubs,
                                       sizeof(ngx_http_iothub_twin_m_hub_t),
                                       &m->nhubs,
                                       NGX_HTTP_IOTHUB_TWIN_M_HUBS,
                                       ctx->hub.data, ctx->hub.len);
        ngx_atomic_fetch_add(&hub->forwarded[class], 1);
    }

    /* refusals made by the gateway, its own or through iothub_twin_error */

    if (ctx && ctx->error.len) {
        code = ngx_http_iothub_twin_metrics_index(&ctx->error,
                                               ngx_http_iothub_twin_m_codes,
                                               NGX_HTTP_IOTHUB_TWIN_M_CODES);
        ngx_atomic_fetch_add(&m->refusals[code][ctx->rule], 1);

    } else if (!itlcf->enabled) {
        code = ngx_http_iothub_twin_metrics_index(&itlcf->error_code,
                                               ngx_http_iothub_twin_m_codes,
                                               NGX_HTTP_IOTHUB_TWIN_M_CODES);
        ngx_atomic_fetch_add(&m->refusals[code][0], 1);
    }

    if (r->upstream_states == NULL || r->upstream_states->nelts == 0) {
        return NGX_OK;
    }

    state = r->upstream_states->elts;
    state = &state[r->upstream_states->nelts - 1];

    if (state->response_time == (ngx_msec_t) -1) {
        return NGX_OK;
    }

    ms = state->response_time;

    for (b = 0; b < NGX_HTTP_IOTHUB_TWIN_M_BUCKETS - 1; b++) {
        if (ms <= ngx_http_iothub_twin_m_bounds[b]) {
            break;
        }
    }

    ngx_atomic_fetch_add(&m->latency[b], 1);
    ngx_atomic_fetch_add(&m->latency_count, 1);
    ngx_atomic_fetch_add(&m->latency_sum_us, ms * 1000);

    return NGX_OK;
}


static ngx_uint_t
ngx_http_iothub_twin_metrics_index(ngx_str_t *s, const char **names,
    ngx_uint_t n)
{
    ngx_uint_t  i;

    for (i = 1; i < n; i++) {
        if (s->len == ngx_strlen(names[i])
            && ngx_strncmp(s->data, names[i], s->len) == 0)
        {
            return i;
        }
    }

    return 0;
}


/*
 * A caller's or a hub's counters, in a table of entries of stride bytes
 * that begin with their name: found, or claimed under the zone's lock.
 * When the table is full, the name counts as "-", the first entry.
 */

static void *
ngx_http_iothub_twin_metrics_slot(ngx_slab_pool_t *shpool, u_char *base,
    size_t stride, ngx_uint_t *count, ngx_uint_t max, u_char *name,
    size_t len)
{
    ngx_uint_t                      i, n;
    ngx_http_iothub_twin_m_name_t  *id;

    if (len > sizeof(id->name)) {
        return base;
    }

    n = *count;
    ngx_memory_barrier();

    for (i = 1; i < n; i++) {
        id = (ngx_http_iothub_twin_m_name_t *) (base + i * stride);

        if (id->len == len && ngx_memcmp(id->name, name, len) == 0) {
            return id;
        }
    }

    ngx_shmtx_lock(&shpool->mutex);

    for ( /* void */ ; i < *count; i++) {
        id = (ngx_http_iothub_twin_m_name_t *) (base + i * stride);

        if (id->len == len && ngx_memcmp(id->name, name, len) == 0) {
            ngx_shmtx_unlock(&shpool->mutex);
            return id;
        }
    }

    if (*count == max) {
        ngx_shmtx_unlock(&shpool->mutex);
        return base;
    }

    id = (ngx_http_iothub_twin_m_name_t *) (base + *count * stride);
    ngx_memcpy(id->name, name, len);
    id->len = len;

    ngx_memory_barrier();
    (*count)++;

    ngx_shmtx_unlock(&shpool->mutex);

    return id;
}


static u_char *
ngx_http_iothub_twin_metrics_label(u_char *p, u_char *s, size_t len)
{
    while (len--) {
        if (*s == '"' || *s == '\\') {
            *p++ = '\\';
            *p++ = *s++;

        } else if (*s == '\n') {
            *p++ = '\\';
            *p++ = 'n';
            s++;

        } else {
            *p++ = *s++;
        }
    }

    return p;
}


/* the content handler of iothub_twin_metrics */

ngx_int_t
ngx_http_iothub_twin_metrics_handler(ngx_http_request_t *r)
{
    u_char                            *p;
    size_t                             size;
    ngx_int_t                          rc;
    ngx_buf_t                         *b;
    ngx_uint_t                         i, n, nhubs, op, d, c, code, rule;
    ngx_atomic_uint_t                  v, cumulative;
    ngx_http_iothub_twin_m_shm_t      *m;
    ngx_http_iothub_twin_m_hub_t      *hub;
    ngx_http_iothub_twin_m_caller_t   *caller;
    ngx_http_iothub_twin_main_conf_t  *imcf;

    if (r->method != NGX_HTTP_GET && r->method != NGX_HTTP_HEAD) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    imcf = ngx_http_get_module_main_conf(r, ngx_http_iothub_twin_module);
    m = imcf->metrics->data;

    n = m->ncallers;
    ngx_memory_barrier();

    /* a generous bound: every line at most 512 bytes */

    size = 512 * (n * NGX_HTTP_IOTHUB_TWIN_M_OPS
                  * NGX_HTTP_IOTHUB_TWIN_M_DECISIONS
                  * NGX_HTTP_IOTHUB_TWIN_M_CLASSES
                  + NGX_HTTP_IOTHUB_TWIN_M_CODES * NGX_HTTP_IOTHUB_TWIN_M_RULES
                  + NGX_HTTP_IOTHUB_TWIN_M_HUBS
                    * NGX_HTTP_IOTHUB_TWIN_M_CLASSES
                  + NGX_HTTP_IOTHUB_TWIN_M_BUCKETS + 32 + 2 * 64);

    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = b->last;

    p = ngx_sprintf(p, "# HELP iothub_twin_requests_total Requests to the "
                    "gateway by caller, operation, decision and status "
                    "class.\n# TYPE iothub_twin_requests_total counter\n");

    for (i = 0; i < n; i++) {
        caller = &m->callers[i];

        for (op = 0; op < NGX_HTTP_IOTHUB_TWIN_M_OPS; op++) {
            for (d = 0; d < NGX_HTTP_IOTHUB_TWIN_M_DECISIONS; d++) {
                for (c = 0; c < NGX_HTTP_IOTHUB_TWIN_M_CLASSES; c++) {
                    v = caller->requests[op][d][c];
                    if (v == 0) {
                        continue;
                    }

                    p = ngx_sprintf(p, "iothub_twin_requests_total"
                                    "{caller=\"");
                    p = ngx_http_iothub_twin_metrics_label(p,
                                                           caller->id.name,
                                                           caller->id.len);
                    p = ngx_sprintf(p, "\",operation=\"%s\",decision=\"%s\","
                                    "status=\"%s\"} %uA\n",
                                    ngx_http_iothub_twin_m_ops[op],
                                    ngx_http_iothub_twin_m_decisions[d],
                                    ngx_http_iothub_twin_m_classes[c], v);
                }
            }
        }
    }

    p = ngx_sprintf(p, "# HELP iothub_twin_hub_requests_total Requests "
                    "forwarded to each hub, by the status class of its "
                    "answer.\n# TYPE iothub_twin_hub_requests_total "
                    "counter\n");

    nhubs = m->nhubs;
    ngx_memory_barrier();

    for (i = 0; i < nhubs; i++) {
        hub = &m->hubs[i];

        for (c = 0; c < NGX_HTTP_IOTHUB_TWIN_M_CLASSES; c++) {
            v = hub->forwarded[c];
            if (v == 0) {
                continue;
            }

            p = ngx_sprintf(p, "iothub_twin_hub_requests_total{hub=\"");
            p = ngx_http_iothub_twin_metrics_label(p, hub->id.name,
                                                   hub->id.len);
            p = ngx_sprintf(p, "\",status=\"%s\"} %uA\n",
                            ngx_http_iothub_twin_m_classes[c], v);
        }
    }

    p = ngx_sprintf(p, "# HELP iothub_twin_refusals_total Requests the "
                    "gateway refused itself, by error code and rule.\n"
                    "# TYPE iothub_twin_refusals_total counter\n");

    for (code = 0; code < NGX_HTTP_IOTHUB_TWIN_M_CODES; code++) {
        for (rule = 0; rule < NGX_HTTP_IOTHUB_TWIN_M_RULES; rule++) {
            v = m->refusals[code][rule];
            if (v) {
                p = ngx_sprintf(p, "iothub_twin_refusals_total{code=\"%s\","
                                "rule=\"%s\"} %uA\n",
                                ngx_http_iothub_twin_m_codes[code],
                                ngx_http_iothub_twin_patch_rule_name(
                                    (ngx_http_iothub_twin_patch_rule_e) rule),
                                v);
            }
        }
    }

    p = ngx_sprintf(p, "# HELP iothub_twin_upstream_latency_seconds Time "
                    "to the hub's full answer.\n# TYPE "
                    "iothub_twin_upstream_latency_seconds histogram\n");

    cumulative = 0;

    for (i = 0; i < NGX_HTTP_IOTHUB_TWIN_M_BUCKETS; i++) {
        cumulative += m->latency[i];

        if (i < NGX_HTTP_IOTHUB_TWIN_M_BUCKETS - 1) {
            p = ngx_sprintf(p, "iothub_twin_upstream_latency_seconds_bucket"
                            "{le=\"%ui.%03ui\"} %uA\n",
                            ngx_http_iothub_twin_m_bounds[i] / 1000,
                            ngx_http_iothub_twin_m_bounds[i] % 1000,
                            cumulative);

        } else {
            p = ngx_sprintf(p, "iothub_twin_upstream_latency_seconds_bucket"
                            "{le=\"+Inf\"} %uA\n", cumulative);
        }
    }

    v = m->latency_sum_us;

    p = ngx_sprintf(p, "iothub_twin_upstream_latency_seconds_sum "
                    "%uA.%06uA\n"
                    "iothub_twin_upstream_latency_seconds_count %uA\n",
                    v / 1000000, v % 1000000, m->latency_count);

    p = ngx_sprintf(p, "# HELP iothub_twin_tokens_signed_total SAS tokens "
                    "the workers signed.\n# TYPE "
                    "iothub_twin_tokens_signed_total counter\n"
                    "iothub_twin_tokens_signed_total %uA\n"
                    "# HELP iothub_twin_policy_generation Configurations "
                    "loaded since the zone was made.\n# TYPE "
                    "iothub_twin_policy_generation gauge\n"
                    "iothub_twin_policy_generation %uA\n",
                    m->tokens_signed, m->generation);

    p = ngx_http_iothub_twin_backoff_metrics(r, p);

    b->last = p;
    b->last_buf = 1;
    b->last_in_chain = 1;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type,
                "text/plain; version=0.0.4; charset=utf-8");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    return ngx_http_iothub_twin_send(r, b);
}


/* iothub_twin_metrics; */

char *
ngx_http_iothub_twin_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t          *clcf;
    ngx_http_iothub_twin_main_conf_t  *imcf;

    imcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_iothub_twin_module);

    if (imcf->metrics == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" needs \"iothub_twin_metrics_zone\" "
                           "before it, in the http block", &cmd->name);
        return NGX_CONF_ERROR;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_iothub_twin_metrics_handler;

    return NGX_CONF_OK;
}
