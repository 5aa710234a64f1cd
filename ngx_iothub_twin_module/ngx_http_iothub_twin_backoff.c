
/*
 * Copyright (C) ngx_iothub_twin developers
 *
 * A hub's throttle, respected once for everybody: when the hub answers
 * 429, every worker answers further writes (or reads) to that hub itself,
 * for the hub's Retry-After or a default window, from a table in shared
 * memory, instead of letting every caller hit the hub again.
 */


#include "ngx_http_iothub_twin_module.h"


#define NGX_HTTP_IOTHUB_TWIN_BACKOFF_HUBS      64
#define NGX_HTTP_IOTHUB_TWIN_BACKOFF_HOST      256

/* the longest Retry-After honoured, in seconds */
#define NGX_HTTP_IOTHUB_TWIN_BACKOFF_MAX       3600


/* one hub: until when writes (0) and reads (1) are answered here */

typedef struct {
    u_char                     host[NGX_HTTP_IOTHUB_TWIN_BACKOFF_HOST];
    size_t                     len;
    ngx_msec_t                 until[2];
    ngx_atomic_t               throttled;   /* the hub's 429s seen */
    ngx_atomic_t               answered;    /* 429s answered for it */
} ngx_http_iothub_twin_backoff_hub_t;


typedef struct {
    ngx_uint_t                          nhubs;
    ngx_http_iothub_twin_backoff_hub_t  hubs[NGX_HTTP_IOTHUB_TWIN_BACKOFF_HUBS];
} ngx_http_iothub_twin_backoff_shm_t;


static ngx_int_t ngx_http_iothub_twin_backoff_init_zone(
    ngx_shm_zone_t *shm_zone, void *data);
static ngx_http_iothub_twin_backoff_hub_t *ngx_http_iothub_twin_backoff_hub(
    ngx_shm_zone_t *zone, ngx_str_t *host, ngx_uint_t add);
static ngx_http_iothub_twin_backoff_hub_t *ngx_http_iothub_twin_backoff_find(
    ngx_http_iothub_twin_backoff_shm_t *b, ngx_uint_t n, ngx_str_t *host);
static ngx_msec_t ngx_http_iothub_twin_backoff_retry_after(
    ngx_http_request_t *r, time_t window);


/* iothub_twin_backoff_zone size; */

char *
ngx_http_iothub_twin_backoff_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_iothub_twin_main_conf_t *imcf = conf;

    ssize_t     size, min;
    ngx_str_t  *value, name = ngx_string("iothub_twin_backoff");

    if (imcf->backoff) {
        return "is duplicate";
    }

    value = cf->args->elts;

    size = ngx_parse_size(&value[1]);
    min = 8 * ngx_pagesize
          + sizeof(ngx_http_iothub_twin_backoff_shm_t);

    if (size == NGX_ERROR || size < min) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\": expected a size "
                           "of at least %uzk", &value[1], &cmd->name,
                           (size_t) (min + 1023) / 1024);
        return NGX_CONF_ERROR;
    }

    imcf->backoff = ngx_shared_memory_add(cf, &name, size,
                                          &ngx_http_iothub_twin_module);
    if (imcf->backoff == NULL) {
        return NGX_CONF_ERROR;
    }

    imcf->backoff->init = ngx_http_iothub_twin_backoff_init_zone;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_iothub_twin_backoff_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t                     *shpool;
    ngx_http_iothub_twin_backoff_shm_t  *b;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    /* a reload keeps what the hubs said */

    if (data) {
        shm_zone->data = data;
        return NGX_OK;
    }

    if (shm_zone->shm.exists) {
        shm_zone->data = shpool->data;
        return NGX_OK;
    }

    b = ngx_slab_calloc(shpool, sizeof(ngx_http_iothub_twin_backoff_shm_t));
    if (b == NULL) {
        return NGX_ERROR;
    }

    shpool->data = b;
    shm_zone->data = b;

    return NGX_OK;
}


/* iothub_twin_hub_backoff off | on | time; */

char *
ngx_http_iothub_twin_conf_backoff(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_iothub_twin_loc_conf_t *itlcf = conf;

    time_t                             t;
    ngx_str_t                         *value;
    ngx_http_iothub_twin_main_conf_t  *imcf;

    if (itlcf->backoff != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        itlcf->backoff = 0;
        return NGX_CONF_OK;
    }

    if (ngx_strcmp(value[1].data, "on") == 0) {
        t = 10;

    } else {
        t = ngx_parse_time(&value[1], 1);

        if (t == (time_t) NGX_ERROR || t < 1
            || t > NGX_HTTP_IOTHUB_TWIN_BACKOFF_MAX)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid value \"%V\" in \"%V\": expected "
                               "\"off\", \"on\" or a time from 1s to 1h",
                               &value[1], &cmd->name);
            return NGX_CONF_ERROR;
        }
    }

    imcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_iothub_twin_module);

    if (imcf->backoff == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V %V\" needs \"iothub_twin_backoff_zone\" in "
                           "the http block, before it", &cmd->name,
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    itlcf->backoff = t;

    return NGX_CONF_OK;
}


/*
 * Before anything is read or forwarded: is the hub still throttling this
 * kind of operation?  Then the caller gets the hub's 429 shape with the
 * time left as Retry-After.
 */

ngx_int_t
ngx_http_iothub_twin_backoff_check(ngx_http_request_t *r,
    ngx_http_iothub_twin_loc_conf_t *itlcf, ngx_http_iothub_twin_ctx_t *ctx)
{
    ngx_uint_t                           kind;
    ngx_msec_t                           until, left;
    ngx_table_elt_t                     *h;
    ngx_http_iothub_twin_backoff_hub_t  *hub;
    ngx_http_iothub_twin_main_conf_t    *imcf;

    if (!itlcf->backoff) {
        return NGX_OK;
    }

    imcf = ngx_http_get_module_main_conf(r, ngx_http_iothub_twin_module);

    hub = ngx_http_iothub_twin_backoff_hub(imcf->backoff, &ctx->hub, 0);
    if (hub == NULL) {
        return NGX_OK;
    }

    kind = (ctx->operation == NGX_HTTP_IOTHUB_TWIN_OP_READ);
    until = hub->until[kind];
    ngx_memory_barrier();

    left = until - ngx_current_msec;

    if (until == 0 || (ngx_msec_int_t) left <= 0) {
        return NGX_OK;
    }

    (void) ngx_atomic_fetch_add(&hub->answered, 1);

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->value.data = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
    if (h->value.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Retry-After");
    h->value.len = ngx_sprintf(h->value.data, "%M", (left + 999) / 1000)
                   - h->value.data;

    ngx_str_set(&ctx->decision, "throttled");

    return ngx_http_iothub_twin_refuse(r, NGX_HTTP_TOO_MANY_REQUESTS,
                                       "ThrottlingException",
                                       "the hub is throttling %s; the "
                                       "gateway answers for it for %M s more",
                                       kind ? "reads" : "writes",
                                       (left + 999) / 1000);
}


/* the hub answered 429 to a forwarded request: remember it for all */

void
ngx_http_iothub_twin_backoff_record(ngx_http_request_t *r,
    ngx_http_iothub_twin_loc_conf_t *itlcf, ngx_http_iothub_twin_ctx_t *ctx)
{
    ngx_uint_t                           kind;
    ngx_msec_t                           until;
    ngx_slab_pool_t                     *shpool;
    ngx_http_iothub_twin_backoff_hub_t  *hub;
    ngx_http_iothub_twin_main_conf_t    *imcf;

    if (!itlcf->backoff) {
        return;
    }

    imcf = ngx_http_get_module_main_conf(r, ngx_http_iothub_twin_module);

    hub = ngx_http_iothub_twin_backoff_hub(imcf->backoff, &ctx->hub, 1);
    if (hub == NULL) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "iothub_twin: no room for hub \"%V\" in "
                      "iothub_twin_backoff_zone", &ctx->hub);
        return;
    }

    kind = (ctx->operation == NGX_HTTP_IOTHUB_TWIN_OP_READ);
    until = ngx_current_msec
            + ngx_http_iothub_twin_backoff_retry_after(r, itlcf->backoff);

    shpool = (ngx_slab_pool_t *) imcf->backoff->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);

    if (hub->until[kind] == 0
        || (ngx_msec_int_t) (until - hub->until[kind]) > 0)
    {
        hub->until[kind] = until;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    (void) ngx_atomic_fetch_add(&hub->throttled, 1);

    ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                  "iothub_twin: hub \"%V\" answered 429; the gateway "
                  "answers its %s for %M ms", &ctx->hub,
                  kind ? "reads" : "writes", until - ngx_current_msec);
}


/* the hub's Retry-After in whole seconds, else the configured window */

static ngx_msec_t
ngx_http_iothub_twin_backoff_retry_after(ngx_http_request_t *r,
    time_t window)
{
    ngx_int_t         n;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_out.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].hash == 0
            || h[i].key.len != sizeof("Retry-After") - 1
            || ngx_strncasecmp(h[i].key.data, (u_char *) "Retry-After",
                               sizeof("Retry-After") - 1) != 0)
        {
            continue;
        }

        n = ngx_atoi(h[i].value.data, h[i].value.len);

        if (n >= 1 && n <= NGX_HTTP_IOTHUB_TWIN_BACKOFF_MAX) {
            return (ngx_msec_t) n * 1000;
        }

        break;
    }

    return (ngx_msec_t) window * 1000;
}


/* the hub's entry, found or, with add, claimed under the zone's lock */

static ngx_http_iothub_twin_backoff_hub_t *
ngx_http_iothub_twin_backoff_hub(ngx_shm_zone_t *zone, ngx_str_t *host,
    ngx_uint_t add)
{
    ngx_uint_t                           n;
    ngx_slab_pool_t                     *shpool;
    ngx_http_iothub_twin_backoff_shm_t  *b;
    ngx_http_iothub_twin_backoff_hub_t  *hub;

    if (host->len == 0 || host->len > NGX_HTTP_IOTHUB_TWIN_BACKOFF_HOST) {
        return NULL;
    }

    b = zone->data;

    n = b->nhubs;
    ngx_memory_barrier();

    hub = ngx_http_iothub_twin_backoff_find(b, n, host);

    if (hub || !add) {
        return hub;
    }

    shpool = (ngx_slab_pool_t *) zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);

    /* another worker may have added it meanwhile */

    hub = ngx_http_iothub_twin_backoff_find(b, b->nhubs, host);

    if (hub == NULL && b->nhubs < NGX_HTTP_IOTHUB_TWIN_BACKOFF_HUBS) {
        hub = &b->hubs[b->nhubs];
        ngx_memcpy(hub->host, host->data, host->len);
        hub->len = host->len;
        ngx_memory_barrier();
        b->nhubs++;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return hub;
}


static ngx_http_iothub_twin_backoff_hub_t *
ngx_http_iothub_twin_backoff_find(ngx_http_iothub_twin_backoff_shm_t *b,
    ngx_uint_t n, ngx_str_t *host)
{
    ngx_uint_t  i;

    for (i = 0; i < n; i++) {
        if (b->hubs[i].len == host->len
            && ngx_strncmp(b->hubs[i].host, host->data, host->len) == 0)
        {
            return &b->hubs[i];
        }
    }

    return NULL;
}


/* the counters, in Prometheus text, into p (at most 1 KB a hub) */

u_char *
ngx_http_iothub_twin_backoff_metrics(ngx_http_request_t *r, u_char *p)
{
    ngx_uint_t                           i, n;
    ngx_http_iothub_twin_backoff_shm_t  *b;
    ngx_http_iothub_twin_main_conf_t    *imcf;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_iothub_twin_module);

    if (imcf->backoff == NULL) {
        return p;
    }

    b = imcf->backoff->data;
    n = b->nhubs;
    ngx_memory_barrier();

    p = ngx_sprintf(p, "# HELP iothub_twin_hub_throttled_total 429s the "
                    "hub answered, by hub.\n"
                    "# TYPE iothub_twin_hub_throttled_total counter\n");

    for (i = 0; i < n; i++) {
        p = ngx_sprintf(p, "iothub_twin_hub_throttled_total{hub=\"%*s\"} "
                        "%uA\n", b->hubs[i].len, b->hubs[i].host,
                        b->hubs[i].throttled);
    }

    p = ngx_sprintf(p, "# HELP iothub_twin_backoff_answered_total 429s the "
                    "gateway answered for a throttling hub, by hub.\n"
                    "# TYPE iothub_twin_backoff_answered_total counter\n");

    for (i = 0; i < n; i++) {
        p = ngx_sprintf(p, "iothub_twin_backoff_answered_total{hub=\"%*s\"} "
                        "%uA\n", b->hubs[i].len, b->hubs[i].host,
                        b->hubs[i].answered);
    }

    return p;
}
