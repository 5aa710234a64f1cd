
/*
 * Copyright (C) ngx_iothub_twin developers
 *
 * The request path: recognise the twin operation, decode and check the
 * IDs, read and validate the body, sign, and let proxy_pass forward the
 * canonical request; on the way back, give the caller the twin's ETag.
 */


#include "ngx_http_iothub_twin_module.h"


/* the bytes $iothub_twin_paths lists at most, besides its "+N more" */
#define NGX_HTTP_IOTHUB_TWIN_PATHS_TEXT    4096


/*
 * The paths written, joined by spaces as the validator reports them: the
 * first "max" of them, in at most NGX_HTTP_IOTHUB_TWIN_PATHS_TEXT bytes,
 * and how many more; only when a log format or directive uses them.
 */

typedef struct {
    ngx_http_request_t          *request;
    ngx_http_iothub_twin_ctx_t  *ctx;
    u_char                      *data;
    size_t                       len;
    ngx_uint_t                   listed;
    ngx_uint_t                   more;
    ngx_uint_t                   max;
    unsigned                     used:1;
} ngx_http_iothub_twin_paths_t;


/* a walk over the request headers of one name (or all); zeroed to start */

typedef struct {
    ngx_list_part_t             *part;
    ngx_uint_t                   i;
} ngx_http_iothub_twin_walk_t;


static ngx_int_t ngx_http_iothub_twin_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_iothub_twin_start(ngx_http_request_t *r,
    ngx_http_iothub_twin_loc_conf_t *itlcf, ngx_http_iothub_twin_ctx_t *ctx);
static ngx_int_t ngx_http_iothub_twin_parse_target(ngx_http_request_t *r,
    ngx_http_iothub_twin_ctx_t *ctx);
static ngx_int_t ngx_http_iothub_twin_target(ngx_http_request_t *r,
    ngx_http_iothub_twin_loc_conf_t *itlcf, ngx_http_iothub_twin_ctx_t *ctx);
static void ngx_http_iothub_twin_operation(ngx_http_request_t *r,
    ngx_http_iothub_twin_loc_conf_t *itlcf, ngx_http_iothub_twin_ctx_t *ctx);
static ngx_int_t ngx_http_iothub_twin_method(ngx_http_request_t *r,
    ngx_http_iothub_twin_loc_conf_t *itlcf, ngx_http_iothub_twin_ctx_t *ctx);
static ngx_int_t ngx_http_iothub_twin_headers(ngx_http_request_t *r);
static ngx_int_t ngx_http_iothub_twin_access(ngx_http_request_t *r,
    ngx_http_iothub_twin_loc_conf_t *itlcf, ngx_http_iothub_twin_ctx_t *ctx);
static ngx_int_t ngx_http_iothub_twin_deny(ngx_http_request_t *r,
    ngx_http_iothub_twin_ctx_t *ctx);
static ngx_http_iothub_twin_hub_t *ngx_http_iothub_twin_route_hub(
    ngx_http_request_t *r, ngx_http_iothub_twin_loc_conf_t *itlcf,
    ngx_http_iothub_twin_ctx_t *ctx);
static ngx_int_t ngx_http_iothub_twin_routed(ngx_http_request_t *r,
    ngx_http_iothub_twin_loc_conf_t *itlcf, ngx_http_iothub_twin_ctx_t *ctx);
static ngx_int_t ngx_http_iothub_twin_precondition(ngx_http_request_t *r,
    ngx_http_iothub_twin_loc_conf_t *itlcf, ngx_http_iothub_twin_ctx_t *ctx);
static ngx_int_t ngx_http_iothub_twin_rewrite_uri(ngx_http_request_t *r,
    ngx_http_iothub_twin_loc_conf_t *itlcf, ngx_http_iothub_twin_ctx_t *ctx);
static ngx_int_t ngx_http_iothub_twin_read_body(ngx_http_request_t *r,
    ngx_http_iothub_twin_loc_conf_t *itlcf, ngx_http_iothub_twin_ctx_t *ctx);
static ngx_int_t ngx_http_iothub_twin_json_type(ngx_http_request_t *r);
static size_t ngx_http_iothub_twin_max_body(
    ngx_http_iothub_twin_loc_conf_t *itlcf, ngx_http_iothub_twin_ctx_t *ctx);
static void ngx_http_iothub_twin_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_iothub_twin_body(ngx_http_request_t *r,
    ngx_http_iothub_twin_loc_conf_t *itlcf, ngx_http_iothub_twin_ctx_t *ctx);
static u_char *ngx_http_iothub_twin_body_bytes(ngx_http_request_t *r,
    size_t *len);
static int ngx_http_iothub_twin_path(void *data, const unsigned char *path,
    size_t len, int is_delete);
static ngx_int_t ngx_http_iothub_twin_sign(ngx_http_request_t *r,
    ngx_http_iothub_twin_loc_conf_t *itlcf, ngx_http_iothub_twin_ctx_t *ctx);
static void ngx_http_iothub_twin_drop_credentials(ngx_http_request_t *r);
static ngx_table_elt_t *ngx_http_iothub_twin_next_header(
    ngx_http_request_t *r, ngx_http_iothub_twin_walk_t *w, ngx_str_t *name);


static ngx_int_t ngx_http_iothub_twin_ctx_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_iothub_twin_hub_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_iothub_twin_caller_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_iothub_twin_target_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_iothub_twin_key_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_iothub_twin_request_id_variable(
    ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data);
static ngx_http_iothub_twin_ctx_t *ngx_http_iothub_twin_create_ctx(
    ngx_http_request_t *r, ngx_http_iothub_twin_loc_conf_t *itlcf);
static void ngx_http_iothub_twin_ctx_cleanup(void *data);
static ngx_http_iothub_twin_ctx_t *ngx_http_iothub_twin_early_ctx(
    ngx_http_request_t *r);
static ngx_int_t ngx_http_iothub_twin_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_iothub_twin_init(ngx_conf_t *cf);


static ngx_http_iothub_twin_bounds_t  ngx_http_iothub_twin_lifetime_bounds =
    { 1, 10, 365 * 86400, "a time from 10s to 365d", 0 };

static ngx_http_iothub_twin_bounds_t  ngx_http_iothub_twin_skew_bounds =
    { 1, 0, 3600, "a time from 0s to 1h", 0 };

static ngx_http_iothub_twin_bounds_t  ngx_http_iothub_twin_body_bounds =
    { 0, 2, 16 * 1024 * 1024, "a size from 2 to 16m", 0 };

static ngx_http_iothub_twin_bounds_t  ngx_http_iothub_twin_paths_bounds =
    { 0, 0, 1000, "a number from 0 to 1000", 1 };


static ngx_conf_enum_t  ngx_http_iothub_twin_key_slots[] = {
    { ngx_string("primary"), 0 },
    { ngx_string("secondary"), 1 },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_http_iothub_twin_commands[] = {

    { ngx_string("iothub_twin_pass"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_iothub_twin_pass,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("iothub_twin_hub_define"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_http_iothub_twin_hub_define,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("iothub_twin_route"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE23,
      ngx_http_iothub_twin_route,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("iothub_twin_error"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1234,
      ngx_http_iothub_twin_error,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("iothub_twin_identity"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_iothub_twin_identity,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("iothub_twin_callers"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_iothub_twin_callers,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("iothub_twin_sas_host"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_iothub_twin_loc_conf_t, sas_host),
      NULL },

    { ngx_string("iothub_twin_sas_skew"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_iothub_twin_set_bounded,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_iothub_twin_loc_conf_t, sas_skew),
      &ngx_http_iothub_twin_skew_bounds },

    { ngx_string("iothub_twin_hub"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_iothub_twin_loc_conf_t, hub),
      NULL },

    { ngx_string("iothub_twin_hub_policy"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_iothub_twin_loc_conf_t, policy),
      NULL },

    { ngx_string("iothub_twin_hub_key_file"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_iothub_twin_key_file,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("iothub_twin_hub_key_slot"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_iothub_twin_loc_conf_t, key_slot),
      &ngx_http_iothub_twin_key_slots },

    { ngx_string("iothub_twin_token_lifetime"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_iothub_twin_set_bounded,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_iothub_twin_loc_conf_t, token_lifetime),
      &ngx_http_iothub_twin_lifetime_bounds },

    { ngx_string("iothub_twin_api_version"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_iothub_twin_api_version,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("iothub_twin_read"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_iothub_twin_loc_conf_t, read),
      NULL },

    { ngx_string("iothub_twin_replace"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_iothub_twin_loc_conf_t, replace),
      NULL },

    { ngx_string("iothub_twin_require_if_match"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_iothub_twin_loc_conf_t, require_if_match),
      NULL },

    { ngx_string("iothub_twin_backoff_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_iothub_twin_backoff_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("iothub_twin_hub_backoff"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_iothub_twin_conf_backoff,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("iothub_twin_metrics_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_iothub_twin_metrics_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("iothub_twin_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_iothub_twin_metrics,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("iothub_twin_audit_values"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_iothub_twin_set_audit_values,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("iothub_twin_audit_paths"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_iothub_twin_set_bounded,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_iothub_twin_loc_conf_t, audit_paths),
      &ngx_http_iothub_twin_paths_bounds },

    { ngx_string("iothub_twin_max_body_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_iothub_twin_set_bounded,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_iothub_twin_loc_conf_t, max_body_size),
      &ngx_http_iothub_twin_body_bounds },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_iothub_twin_module_ctx = {
    ngx_http_iothub_twin_add_variables,    /* preconfiguration */
    ngx_http_iothub_twin_init,             /* postconfiguration */

    ngx_http_iothub_twin_create_main_conf, /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_iothub_twin_create_loc_conf,  /* create location configuration */
    ngx_http_iothub_twin_merge_loc_conf    /* merge location configuration */
};


ngx_module_t  ngx_http_iothub_twin_module = {
    NGX_MODULE_V1,
    &ngx_http_iothub_twin_module_ctx,      /* module context */
    ngx_http_iothub_twin_commands,         /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


#define ngx_http_iothub_twin_var(name, field)                                 \
    { ngx_string(name), NULL, ngx_http_iothub_twin_ctx_variable,             \
      offsetof(ngx_http_iothub_twin_ctx_t, field),                           \
      NGX_HTTP_VAR_NOCACHEABLE, 0 }

static ngx_http_variable_t  ngx_http_iothub_twin_vars[] = {

    { ngx_string("iothub_twin_device_id"), NULL,
      ngx_http_iothub_twin_target_variable,
      offsetof(ngx_http_iothub_twin_ctx_t, device_id),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("iothub_twin_module_id"), NULL,
      ngx_http_iothub_twin_target_variable,
      offsetof(ngx_http_iothub_twin_ctx_t, module_id),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("iothub_twin_caller_device"), NULL,
      ngx_http_iothub_twin_key_variable, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("iothub_twin_request_id"), NULL,
      ngx_http_iothub_twin_request_id_variable, 0, 0, 0 },

    ngx_http_iothub_twin_var("iothub_twin_values", values),
    ngx_http_iothub_twin_var("iothub_twin_operation", operation_name),
    ngx_http_iothub_twin_var("iothub_twin_upstream_uri", upstream_uri),
    ngx_http_iothub_twin_var("iothub_twin_token", token),
    ngx_http_iothub_twin_var("iothub_twin_if_match", if_match),
    ngx_http_iothub_twin_var("iothub_twin_if_match_kind", if_match_kind),
    ngx_http_iothub_twin_var("iothub_twin_paths", paths),
    ngx_http_iothub_twin_var("iothub_twin_error", error),
    ngx_http_iothub_twin_var("iothub_twin_etag", etag),
    ngx_http_iothub_twin_var("iothub_twin_version", version),
    ngx_http_iothub_twin_var("iothub_twin_decision", decision),
    ngx_http_iothub_twin_var("iothub_twin_reason", reason),
    ngx_http_iothub_twin_var("iothub_twin_policy_mode", mode),
    ngx_http_iothub_twin_var("iothub_twin_withheld", withheld),
    ngx_http_iothub_twin_var("iothub_twin_withheld_paths", withheld_paths),

    { ngx_string("iothub_twin_caller"), NULL,
      ngx_http_iothub_twin_caller_variable, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("iothub_twin_hub"), NULL, ngx_http_iothub_twin_hub_variable,
      0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("iothub_twin_hub_upstream"), NULL,
      ngx_http_iothub_twin_hub_variable, 1, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_int_t
ngx_http_iothub_twin_handler(ngx_http_request_t *r)
{
    ngx_http_iothub_twin_ctx_t       *ctx;
    ngx_http_iothub_twin_loc_conf_t  *itlcf;

    itlcf = ngx_http_get_module_loc_conf(r, ngx_http_iothub_twin_module);

    if (!itlcf->enabled) {
        return NGX_DECLINED;
    }

    if (r != r->main) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "iothub_twin: subrequests may not reach the hub");
        return NGX_HTTP_FORBIDDEN;
    }

    /*
     * The gateway decodes only the URI the caller sent; an internally
     * redirected request never reaches the hub, whatever state a context
     * kept across the redirect is in.
     */

    ctx = ngx_http_get_module_ctx(r, ngx_http_iothub_twin_module);

    if (r->internal
        || ((ctx == NULL || ctx->state == NGX_HTTP_IOTHUB_TWIN_START)
            && !r->valid_unparsed_uri))
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "iothub_twin: the request reached the gateway location "
                      "after a rewrite or an internal redirect; the gateway "
                      "decodes only the URI the caller sent");
        return ngx_http_iothub_twin_refuse(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                           "InternalServerError",
                                           "the gateway is misconfigured");
    }

    if (ctx == NULL) {
        ctx = ngx_http_iothub_twin_create_ctx(r, itlcf);
        if (ctx == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    switch (ctx->state) {

    case NGX_HTTP_IOTHUB_TWIN_START:
        ctx->state = NGX_HTTP_IOTHUB_TWIN_CHECKING;
        return ngx_http_iothub_twin_start(r, itlcf, ctx);

    case NGX_HTTP_IOTHUB_TWIN_READING:
        return NGX_AGAIN;

    case NGX_HTTP_IOTHUB_TWIN_BODY_READ:
        return ngx_http_iothub_twin_body(r, itlcf, ctx);

    default: /* NGX_HTTP_IOTHUB_TWIN_DONE */
        return NGX_DECLINED;
    }
}


static ngx_int_t
ngx_http_iothub_twin_start(ngx_http_request_t *r,
    ngx_http_iothub_twin_loc_conf_t *itlcf, ngx_http_iothub_twin_ctx_t *ctx)
{
    ngx_int_t  rc;

    rc = ngx_http_iothub_twin_target(r, itlcf, ctx);
    if (rc != NGX_OK) {
        return rc;
    }

    rc = ngx_http_iothub_twin_method(r, itlcf, ctx);
    if (rc != NGX_OK) {
        return rc;
    }

    rc = ngx_http_iothub_twin_headers(r);
    if (rc != NGX_OK) {
        return rc;
    }

    rc = ngx_http_iothub_twin_access(r, itlcf, ctx);
    if (rc != NGX_OK) {
        return rc;
    }

    rc = ngx_http_iothub_twin_precondition(r, itlcf, ctx);
    if (rc != NGX_OK) {
        return rc;
    }

    rc = ngx_http_iothub_twin_backoff_check(r, itlcf, ctx);
    if (rc != NGX_OK) {
        return rc;
    }

    rc = ngx_http_iothub_twin_rewrite_uri(r, itlcf, ctx);
    if (rc != NGX_OK) {
        return rc;
    }

    if (ctx->operation == NGX_HTTP_IOTHUB_TWIN_OP_READ) {
        if (r->headers_in.content_length_n > 0 || r->headers_in.chunked) {
            return ngx_http_iothub_twin_refuse(r, NGX_HTTP_BAD_REQUEST,
                                               "ArgumentInvalid",
                                               "a twin read has no body");
        }

        return ngx_http_iothub_twin_sign(r, itlcf, ctx);
    }

    return ngx_http_iothub_twin_read_body(r, itlcf, ctx);
}


/*
 * The twin the request is for, from the request line as the caller sent
 * it; done once, by the handler or by the first variable that needs it.
 */

static ngx_int_t
ngx_http_iothub_twin_parse_target(ngx_http_request_t *r,
    ngx_http_iothub_twin_ctx_t *ctx)
{
    u_char                         *q;
    size_t                          len;
    ngx_http_iothub_twin_target_t  *t;

    if (ctx->target) {
        return NGX_OK;
    }

    t = ngx_palloc(r->pool, sizeof(ngx_http_iothub_twin_target_t));
    if (t == NULL) {
        return NGX_ERROR;
    }

    q = ngx_strlchr(r->unparsed_uri.data,
                    r->unparsed_uri.data + r->unparsed_uri.len, '?');
    len = (q ? q : r->unparsed_uri.data + r->unparsed_uri.len)
          - r->unparsed_uri.data;

    ctx->target = t;
    ctx->target_rc = ngx_http_iothub_twin_target_parse(r->unparsed_uri.data,
                                                       len, t);
    ctx->query = q;

    if (ctx->target_rc == NGX_HTTP_IOTHUB_TWIN_TARGET_OK) {
        ctx->device_id.data = t->device;
        ctx->device_id.len = t->device_len;
        ctx->module_id.data = t->module;
        ctx->module_id.len = t->module_len;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_iothub_twin_target(ngx_http_request_t *r,
    ngx_http_iothub_twin_loc_conf_t *itlcf, ngx_http_iothub_twin_ctx_t *ctx)
{
    u_char                         *q;
    const char                     *err;
    ngx_http_iothub_twin_target_t  *t;

    if (ngx_http_iothub_twin_parse_target(r, ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    t = ctx->target;
    q = ctx->query;

    switch (ctx->target_rc) {

    case NGX_HTTP_IOTHUB_TWIN_TARGET_OK:
        break;

    case NGX_HTTP_IOTHUB_TWIN_TARGET_NOT_TWIN:
        return ngx_http_iothub_twin_refuse(r, NGX_HTTP_NOT_FOUND, "NotFound",
                                           "the gateway serves only "
                                           "/twins/{deviceId} and "
                                           "/twins/{deviceId}/modules/"
                                           "{moduleId}");

    case NGX_HTTP_IOTHUB_TWIN_TARGET_FRAGMENT:
        return ngx_http_iothub_twin_refuse(r, NGX_HTTP_BAD_REQUEST,
                                           "ArgumentInvalid",
                                           "the request target holds a "
                                           "fragment ('#'): '#' in an ID "
                                           "is sent as %%23");

    default: /* NGX_HTTP_IOTHUB_TWIN_TARGET_BAD_ID */
        if (t->id_rc == NGX_HTTP_IOTHUB_TWIN_ID_BAD_CHAR
            || t->id_rc == NGX_HTTP_IOTHUB_TWIN_ID_SLASH)
        {
            return ngx_http_iothub_twin_refuse(r, NGX_HTTP_BAD_REQUEST,
                                   "ArgumentInvalid",
                                   "the %s %s (byte 0x%02xd); IDs are 1 to "
                                   "128 ASCII letters, digits and "
                                   "-:.+%%_#*?!(),=@;$'",
                                   t->bad_what,
                                   ngx_http_iothub_twin_id_strerror(t->id_rc),
                                   (int) t->bad_byte);
        }

        return ngx_http_iothub_twin_refuse(r, NGX_HTTP_BAD_REQUEST,
                                   "ArgumentInvalid", "the %s %s",
                                   t->bad_what,
                                   ngx_http_iothub_twin_id_strerror(t->id_rc));
    }

    if (q) {
        err = ngx_http_iothub_twin_query_check(q + 1,
                  r->unparsed_uri.data + r->unparsed_uri.len - (q + 1));
        if (err) {
            return ngx_http_iothub_twin_refuse(r, NGX_HTTP_BAD_REQUEST,
                                               "ArgumentInvalid", "%s", err);
        }
    }

    return NGX_OK;
}


/* the operation is known with the context, for a log line of any phase */

static void
ngx_http_iothub_twin_operation(ngx_http_request_t *r,
    ngx_http_iothub_twin_loc_conf_t *itlcf, ngx_http_iothub_twin_ctx_t *ctx)
{
    if (r->method == NGX_HTTP_PATCH) {
        ctx->operation = NGX_HTTP_IOTHUB_TWIN_OP_UPDATE;
        ngx_str_set(&ctx->operation_name, "update");

    } else if (r->method == NGX_HTTP_GET && itlcf->read) {
        ctx->operation = NGX_HTTP_IOTHUB_TWIN_OP_READ;
        ngx_str_set(&ctx->operation_name, "read");

    } else if (r->method == NGX_HTTP_PUT && itlcf->replace) {
        ctx->operation = NGX_HTTP_IOTHUB_TWIN_OP_REPLACE;
        ngx_str_set(&ctx->operation_name, "replace");
    }
}


static ngx_int_t
ngx_http_iothub_twin_method(ngx_http_request_t *r,
    ngx_http_iothub_twin_loc_conf_t *itlcf, ngx_http_iothub_twin_ctx_t *ctx)
{
    ngx_table_elt_t  *h;

    if (ctx->operation) {
        return NGX_OK;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Allow");

    if (itlcf->read && itlcf->replace) {
        ngx_str_set(&h->value, "GET, PATCH, PUT");

    } else if (itlcf->read) {
        ngx_str_set(&h->value, "GET, PATCH");

    } else if (itlcf->replace) {
        ngx_str_set(&h->value, "PATCH, PUT");

    } else {
        ngx_str_set(&h->value, "PATCH");
    }

    return ngx_http_iothub_twin_refuse(r, NGX_HTTP_NOT_ALLOWED,
                                       "MethodNotAllowed",
                                       "method %V is not allowed on a twin "
                                       "here; allowed: %V",
                                       &r->method_name, &h->value);
}


/*
 * One meaning per request: a header the gateway or the hub interprets
 * appears once (nginx itself refuses a second Content-Length,
 * Transfer-Encoding, If-Match or Authorization), and the body is the
 * bytes validated, not an encoding of them.
 */

static ngx_int_t
ngx_http_iothub_twin_headers(ngx_http_request_t *r)
{
    ngx_uint_t                    j, n[5];
    ngx_table_elt_t              *h, *encoding;
    ngx_http_iothub_twin_walk_t   w;

    static ngx_str_t  once[] = {
        ngx_string("Content-Type"),
        ngx_string("Request-Id"),
        ngx_string("If-Match"),
        ngx_string("Authorization"),
        ngx_string("Content-Encoding")
    };

    ngx_memzero(n, sizeof(n));
    ngx_memzero(&w, sizeof(ngx_http_iothub_twin_walk_t));
    encoding = NULL;

    /* one walk over every header */

    while ((h = ngx_http_iothub_twin_next_header(r, &w, NULL)) != NULL) {

        for (j = 0; j < sizeof(once) / sizeof(once[0]); j++) {
            if (h->key.len == once[j].len
                && ngx_strncasecmp(h->key.data, once[j].data, once[j].len)
                   == 0)
            {
                break;
            }
        }

        if (j == sizeof(once) / sizeof(once[0])) {
            continue;
        }

        if (++n[j] > 1) {
            return ngx_http_iothub_twin_refuse(r, NGX_HTTP_BAD_REQUEST,
                                               "ArgumentInvalid",
                                               "%V is given more than once",
                                               &once[j]);
        }

        if (j == 4) {
            encoding = h;
        }
    }

    if (encoding
        && !(encoding->value.len == sizeof("identity") - 1
             && ngx_strncasecmp(encoding->value.data, (u_char *) "identity",
                                sizeof("identity") - 1) == 0))
    {
        return ngx_http_iothub_twin_refuse(r, NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                           "UnsupportedMediaType",
                                           "the body must not be encoded "
                                           "(Content-Encoding)");
    }

    return NGX_OK;
}


/*
 * Who is calling, and may they do this operation on this twin at all; the
 * paths the patch writes are checked as the validator finds them.
 */

static ngx_int_t
ngx_http_iothub_twin_access(ngx_http_request_t *r,
    ngx_http_iothub_twin_loc_conf_t *itlcf, ngx_http_iothub_twin_ctx_t *ctx)
{
    ngx_int_t                                rc;
    ngx_http_iothub_twin_target_t           *t;
    ngx_http_iothub_twin_policy_decision_t  *d;

    if (itlcf->identity == NGX_HTTP_IOTHUB_TWIN_IDENTITY_OFF) {
        return ngx_http_iothub_twin_routed(r, itlcf, ctx);
    }

    rc = ngx_http_iothub_twin_identify(r, itlcf, ctx);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc != NGX_OK) {
        ngx_str_set(&ctx->decision, "unauthenticated");

        /* why, for the audit record only: the caller is told nothing */

        if (ctx->identity_error) {
            ctx->reason.data = (u_char *) ctx->identity_error;
            ctx->reason.len = ngx_strlen(ctx->identity_error);
        }

        return ngx_http_iothub_twin_refuse(r, NGX_HTTP_UNAUTHORIZED,
                                           "IotHubUnauthorizedAccess",
                                           "the caller could not be "
                                           "identified");
    }

    /* the hub first: a rule may be for some hubs only */

    rc = ngx_http_iothub_twin_routed(r, itlcf, ctx);
    if (rc != NGX_OK) {
        return rc;
    }

    d = ngx_pcalloc(r->pool, sizeof(ngx_http_iothub_twin_policy_decision_t));
    if (d == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->policy = d;

    if (ngx_http_iothub_twin_policy_caller_report(ctx->caller)) {
        ngx_str_set(&ctx->mode, "report");

    } else {
        ngx_str_set(&ctx->mode, "enforce");
    }

    t = ctx->target;

    rc = ngx_http_iothub_twin_policy_target_hub(d, ctx->caller,
                                            (int) ctx->operation,
                                            ctx->route->name.data,
                                            ctx->route->name.len,
                                            t->device, t->device_len,
                                            t->has_module ? t->module : NULL,
                                            t->module_len);

    ngx_str_set(&ctx->decision, "allow");

    if (rc != 0) {
        return ngx_http_iothub_twin_deny(r, ctx);
    }

    return NGX_OK;
}


/*
 * The hub the twin goes to: the location's one hub, the hub of the route
 * pattern its device ID matches, or the hub the route value names.  Done
 * once, by the handler or by the first variable that needs it
 * ($iothub_twin_hub as a limit_req key, in the preaccess phase).
 */

static ngx_http_iothub_twin_hub_t *
ngx_http_iothub_twin_route_hub(ngx_http_request_t *r,
    ngx_http_iothub_twin_loc_conf_t *itlcf, ngx_http_iothub_twin_ctx_t *ctx)
{
    ngx_str_t                          name;
    ngx_uint_t                         i;
    ngx_http_iothub_twin_hub_t        *hub;
    ngx_http_iothub_twin_route_t      *rt;
    ngx_http_iothub_twin_target_t     *t;
    ngx_http_iothub_twin_main_conf_t  *imcf;

    if (ctx->routed || !itlcf->enabled) {
        return ctx->route;
    }

    if (itlcf->single) {
        ctx->routed = 1;
        ctx->route = itlcf->single;
        ctx->hub = itlcf->single->name;
        return ctx->route;
    }

    /* a route value that asks for the hub itself gets none */

    if (ctx->routing) {
        return NULL;
    }

    if (ngx_http_iothub_twin_parse_target(r, ctx) != NGX_OK
        || ctx->target_rc != NGX_HTTP_IOTHUB_TWIN_TARGET_OK)
    {
        return NULL;
    }

    t = ctx->target;
    hub = NULL;

    if (itlcf->route_value) {
        ctx->routing = 1;

        if (ngx_http_complex_value(r, itlcf->route_value, &name) != NGX_OK) {
            ctx->routing = 0;
            ctx->route_error = 1;
            ctx->routed = 1;
            return NULL;
        }

        ctx->routing = 0;

        if (name.len) {
            imcf = ngx_http_get_module_main_conf(r,
                                                 ngx_http_iothub_twin_module);

            hub = ngx_http_iothub_twin_find_hub(imcf, name.data, name.len);

            if (hub == NULL) {
                ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                              "iothub_twin: \"iothub_twin_route variable\" "
                              "gave \"%V\" for a device, which no "
                              "\"iothub_twin_hub_define\" defines", &name);
                ctx->route_error = 1;
            }
        }

    } else {
        rt = itlcf->routes->elts;

        for (i = 0; i < itlcf->routes->nelts; i++) {
            if (ngx_http_iothub_twin_route_match(rt[i].pattern.data,
                                                 rt[i].pattern.len,
                                                 t->device, t->device_len))
            {
                hub = rt[i].hub;
                break;
            }
        }
    }

    ctx->routed = 1;
    ctx->route = hub;

    if (hub) {
        ctx->hub = hub->name;
    }

    return hub;
}


/* a twin that routes to no hub is the hub's 404: nothing is forwarded */

static ngx_int_t
ngx_http_iothub_twin_routed(ngx_http_request_t *r,
    ngx_http_iothub_twin_loc_conf_t *itlcf, ngx_http_iothub_twin_ctx_t *ctx)
{
    if (ngx_http_iothub_twin_route_hub(r, itlcf, ctx)) {
        return NGX_OK;
    }

    if (ctx->route_error) {
        return ngx_http_iothub_twin_refuse(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                           "InternalServerError",
                                           "the gateway is misconfigured");
    }

    return ngx_http_iothub_twin_refuse(r, NGX_HTTP_NOT_FOUND,
                                       "DeviceNotFound",
                                       "device %V is not on any hub behind "
                                       "this gateway", &ctx->device_id);
}


/*
 * A refusal by the policy: 403 naming the reason, or in report mode a log
 * line and the request goes on.
 */

static ngx_int_t
ngx_http_iothub_twin_deny(ngx_http_request_t *r,
    ngx_http_iothub_twin_ctx_t *ctx)
{
    ngx_http_iothub_twin_policy_decision_t  *d;

    d = ctx->policy;

    ctx->reason.data = (u_char *) d->reason;
    ctx->reason.len = ngx_strlen(d->reason);

    if (d->report) {
        if (!ctx->reported) {
            ctx->reported = 1;
            ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                          "iothub_twin: report mode, would refuse caller "
                          "\"%V\": %V", &ctx->caller_name, &ctx->reason);
        }

        ngx_str_set(&ctx->decision, "report");
        return NGX_OK;
    }

    ngx_str_set(&ctx->decision, "deny");

    return ngx_http_iothub_twin_refuse(r, NGX_HTTP_FORBIDDEN, "PolicyDenied",
                                       "caller %V may not do this: %V",
                                       &ctx->caller_name, &ctx->reason);
}


static ngx_int_t
ngx_http_iothub_twin_precondition(ngx_http_request_t *r,
    ngx_http_iothub_twin_loc_conf_t *itlcf, ngx_http_iothub_twin_ctx_t *ctx)
{
    size_t                            len;
    u_char                           *out;
    ngx_table_elt_t                  *value;
    ngx_http_iothub_twin_if_match_e   kind;

    if (ctx->operation == NGX_HTTP_IOTHUB_TWIN_OP_READ) {
        return NGX_OK;
    }

    /* a second If-Match was refused by ngx_http_iothub_twin_headers() */

    value = r->headers_in.if_match;

    if (value == NULL) {
        ngx_str_set(&ctx->if_match_kind, "none");

        if (itlcf->require_if_match
            || (ctx->caller
                && ngx_http_iothub_twin_policy_caller_require_if_match(
                       ctx->caller)))
        {
            return ngx_http_iothub_twin_refuse(r, 428, "PreconditionRequired",
                                               "this gateway requires "
                                               "If-Match on twin updates "
                                               "and replaces");
        }

        return NGX_OK;
    }

    out = ngx_pnalloc(r->pool, NGX_HTTP_IOTHUB_TWIN_IF_MATCH_MAX + 2);
    if (out == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    kind = ngx_http_iothub_twin_if_match(value->value.data, value->value.len,
                                         out, &len);

    ctx->if_match_kind.data =
                         (u_char *) ngx_http_iothub_twin_if_match_name(kind);
    ctx->if_match_kind.len = ngx_strlen(ctx->if_match_kind.data);

    if (kind == NGX_HTTP_IOTHUB_TWIN_IF_MATCH_MALFORMED) {
        return ngx_http_iothub_twin_refuse(r, NGX_HTTP_BAD_REQUEST,
                                           "ArgumentInvalid",
                                           "If-Match must be an etag, a "
                                           "quoted etag or *");
    }

    ctx->if_match.data = out;
    ctx->if_match.len = len;

    return NGX_OK;
}


/*
 * proxy_pass without a URI part sends r->uri and r->args as they are when
 * the unparsed URI is not valid and the URI is not marked as quoted: so
 * the hub gets exactly the canonical path and the configured api-version.
 */

static ngx_int_t
ngx_http_iothub_twin_rewrite_uri(ngx_http_request_t *r,
    ngx_http_iothub_twin_loc_conf_t *itlcf, ngx_http_iothub_twin_ctx_t *ctx)
{
    u_char                         *p;
    ngx_http_iothub_twin_target_t  *t;

    t = ctx->target;

    p = ngx_pnalloc(r->pool, t->path_len + sizeof("?api-version=") - 1
                             + ctx->route->api_version.len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->upstream_uri.data = p;
    p = ngx_cpymem(p, t->path, t->path_len);
    p = ngx_cpymem(p, "?api-version=", sizeof("?api-version=") - 1);
    p = ngx_cpymem(p, ctx->route->api_version.data,
                   ctx->route->api_version.len);
    ctx->upstream_uri.len = p - ctx->upstream_uri.data;

    r->uri.data = ctx->upstream_uri.data;
    r->uri.len = t->path_len;
    r->args.data = ctx->upstream_uri.data + t->path_len + 1;
    r->args.len = ctx->upstream_uri.len - t->path_len - 1;

    r->valid_unparsed_uri = 0;
    r->quoted_uri = 0;

    return NGX_OK;
}


/* the location's limit, or the caller's where it is smaller */

static size_t
ngx_http_iothub_twin_max_body(ngx_http_iothub_twin_loc_conf_t *itlcf,
    ngx_http_iothub_twin_ctx_t *ctx)
{
    size_t  max;

    if (ctx->caller) {
        max = ngx_http_iothub_twin_policy_caller_max_body_size(ctx->caller);

        if (max && max < itlcf->max_body_size) {
            return max;
        }
    }

    return itlcf->max_body_size;
}


static ngx_int_t
ngx_http_iothub_twin_read_body(ngx_http_request_t *r,
    ngx_http_iothub_twin_loc_conf_t *itlcf, ngx_http_iothub_twin_ctx_t *ctx)
{
    size_t     max;
    ngx_int_t  rc;

    if (ngx_http_iothub_twin_json_type(r) != NGX_OK) {
        return ngx_http_iothub_twin_refuse(r, NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                           "UnsupportedMediaType",
                                           "the body must be "
                                           "application/json in UTF-8");
    }

    max = ngx_http_iothub_twin_max_body(itlcf, ctx);

    if (r->headers_in.content_length_n > (off_t) max) {
        return ngx_http_iothub_twin_refuse(r,
                                           NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                           "MessageTooLarge",
                                           "the body is %O bytes, more than "
                                           "the %uz this gateway accepts",
                                           r->headers_in.content_length_n,
                                           max);
    }

    if (r->headers_in.content_length_n <= 0 && !r->headers_in.chunked) {
        return ngx_http_iothub_twin_refuse(r, NGX_HTTP_BAD_REQUEST,
                                           "ArgumentInvalid",
                                           "a twin update needs a body");
    }

    ctx->state = NGX_HTTP_IOTHUB_TWIN_READING;

    rc = ngx_http_read_client_request_body(r,
                                           ngx_http_iothub_twin_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        if (rc == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE) {
            return ngx_http_iothub_twin_refuse(r, rc, "MessageTooLarge",
                                               "the body is larger than "
                                               "this gateway accepts");
        }

        return rc;
    }

    ngx_http_finalize_request(r, NGX_DONE);

    return NGX_DONE;
}


/* application/json, with at most a charset parameter naming utf-8 */

static ngx_int_t
ngx_http_iothub_twin_json_type(ngx_http_request_t *r)
{
    u_char     *p, *end;
    ngx_str_t  *ct;

    if (r->headers_in.content_type == NULL) {
        return NGX_DECLINED;
    }

    ct = &r->headers_in.content_type->value;
    p = ct->data;
    end = ct->data + ct->len;

    if (ct->len < sizeof("application/json") - 1
        || ngx_strncasecmp(p, (u_char *) "application/json",
                           sizeof("application/json") - 1)
           != 0)
    {
        return NGX_DECLINED;
    }

    p += sizeof("application/json") - 1;

    while (p < end && (*p == ' ' || *p == '\t')) {
        p++;
    }

    if (p == end) {
        return NGX_OK;
    }

    if (*p++ != ';') {
        return NGX_DECLINED;
    }

    while (p < end && (*p == ' ' || *p == '\t')) {
        p++;
    }

    while (end > p && (end[-1] == ' ' || end[-1] == '\t')) {
        end--;
    }

    if ((size_t) (end - p) == sizeof("charset=utf-8") - 1
        && ngx_strncasecmp(p, (u_char *) "charset=utf-8",
                           sizeof("charset=utf-8") - 1) == 0)
    {
        return NGX_OK;
    }

    if ((size_t) (end - p) == sizeof("charset=\"utf-8\"") - 1
        && ngx_strncasecmp(p, (u_char *) "charset=\"utf-8\"",
                           sizeof("charset=\"utf-8\"") - 1) == 0)
    {
        return NGX_OK;
    }

    return NGX_DECLINED;
}


static void
ngx_http_iothub_twin_body_handler(ngx_http_request_t *r)
{
    ngx_http_iothub_twin_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_iothub_twin_module);

    ctx->state = NGX_HTTP_IOTHUB_TWIN_BODY_READ;

    /* the body read here is the body proxy_pass sends */

    r->preserve_body = 1;

    r->write_event_handler = ngx_http_core_run_phases;
    ngx_http_core_run_phases(r);
}


static ngx_int_t
ngx_http_iothub_twin_body(ngx_http_request_t *r,
    ngx_http_iothub_twin_loc_conf_t *itlcf, ngx_http_iothub_twin_ctx_t *ctx)
{
    u_char                            *body;
    size_t                             len, max;
    ngx_http_iothub_twin_patch_t      *p;
    ngx_http_iothub_twin_patch_rc_e    rc;
    ngx_http_iothub_twin_paths_t       paths;
    ngx_http_iothub_twin_main_conf_t  *imcf;

    ctx->state = NGX_HTTP_IOTHUB_TWIN_DONE;

    body = ngx_http_iothub_twin_body_bytes(r, &len);

    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (len == 0) {
        return ngx_http_iothub_twin_refuse(r, NGX_HTTP_BAD_REQUEST,
                                           "ArgumentInvalid",
                                           "a twin update needs a body");
    }

    max = ngx_http_iothub_twin_max_body(itlcf, ctx);

    if (len > max) {
        return ngx_http_iothub_twin_refuse(r,
                                           NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                           "MessageTooLarge",
                                           "the body is %uz bytes, more than "
                                           "the %uz this gateway accepts",
                                           len, max);
    }

    p = ngx_pcalloc(r->pool, sizeof(ngx_http_iothub_twin_patch_t));
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    imcf = ngx_http_get_module_main_conf(r, ngx_http_iothub_twin_module);

    ngx_memzero(&paths, sizeof(ngx_http_iothub_twin_paths_t));
    paths.request = r;
    paths.ctx = ctx;
    paths.used = imcf->paths_used && itlcf->audit_paths;
    paths.max = itlcf->audit_paths;

    ngx_http_iothub_twin_patch_default_limits(&p->limits);
    p->device_id = (const char *) ctx->target->device;
    p->module_id = ctx->target->has_module
                   ? (const char *) ctx->target->module : NULL;
    p->path_handler = (paths.used || ctx->policy
                       || ctx->operation == NGX_HTTP_IOTHUB_TWIN_OP_REPLACE)
                      ? ngx_http_iothub_twin_path : NULL;
    p->path_data = &paths;

    /* a caller cannot aim colliding keys at a seed it does not know */
    p->hash_seed = (unsigned) ngx_random();

    rc = ngx_http_iothub_twin_patch_validate(p, body, len);

    if (rc != NGX_HTTP_IOTHUB_TWIN_PATCH_OK && ctx->replace_null) {
        return ngx_http_iothub_twin_refuse(r, NGX_HTTP_BAD_REQUEST,
                                           "ArgumentInvalid",
                                           "a replace writes whole sections: "
                                           "null (a delete) has no place in "
                                           "it");
    }

    switch (rc) {

    case NGX_HTTP_IOTHUB_TWIN_PATCH_OK:
        break;

    case NGX_HTTP_IOTHUB_TWIN_PATCH_SYNTAX:
        ctx->rule = p->rule;
        return ngx_http_iothub_twin_refuse(r, NGX_HTTP_BAD_REQUEST,
                                           "IotHubFormatError",
                                           "the body is not valid JSON: %s "
                                           "(at byte %uz)",
                                           p->error, p->error_offset);

    default: /* NGX_HTTP_IOTHUB_TWIN_PATCH_INVALID */
        ctx->rule = p->rule;
        return ngx_http_iothub_twin_refuse(r, NGX_HTTP_BAD_REQUEST,
                                           "ArgumentInvalid", "%s", p->error);
    }

    if (paths.more) {
        paths.len += ngx_sprintf(paths.data + paths.len, " (+%ui more)",
                                 paths.more)
                     - (paths.data + paths.len);
    }

    ctx->paths.data = paths.data;
    ctx->paths.len = paths.len;

    /* the values written, for the audit log, only when asked and capped */

    if (itlcf->audit_values) {
        ctx->values.data = body;
        ctx->values.len = ngx_min(len, itlcf->audit_values);
    }

    /* a patch that breaks the hub's rules is a 400 before it is a 403 */

    if (ctx->refused_path && ngx_http_iothub_twin_deny(r, ctx) != NGX_OK) {
        return NGX_DONE;
    }

    return ngx_http_iothub_twin_sign(r, itlcf, ctx);
}


/*
 * The body as one run of bytes: the usual single memory buffer is used in
 * place; two buffers or a temporary file are copied once.
 */

static u_char *
ngx_http_iothub_twin_body_bytes(ngx_http_request_t *r, size_t *len)
{
    u_char       *data, *p;
    off_t         total;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    *len = 0;

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return (u_char *) "";
    }

    total = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        total += ngx_buf_size(cl->buf);
    }

    if (total == 0 || total > 16 * 1024 * 1024) {
        *len = (size_t) total;
        return (u_char *) "";
    }

    b = r->request_body->bufs->buf;

    if (r->request_body->bufs->next == NULL && !b->in_file) {
        *len = b->last - b->pos;
        return b->pos;
    }

    data = ngx_pnalloc(r->pool, (size_t) total + 1);
    if (data == NULL) {
        return NULL;
    }

    p = data;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (b->in_file) {
            n = ngx_read_file(b->file, p, (size_t) (b->file_last - b->file_pos),
                              b->file_pos);

            if (n != b->file_last - b->file_pos) {
                ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                              "iothub_twin: could not read the request body "
                              "from \"%V\"", &b->file->name);
                return NULL;
            }

            p += n;
            continue;
        }

        if (b->last != b->pos) {
            p = ngx_cpymem(p, b->pos, b->last - b->pos);
        }
    }

    *len = p - data;

    return data;
}


/*
 * Each written path is checked against the caller's policy; the first
 * ones are listed for the audit record.  Keys never hold a space, so the
 * paths are joined by spaces, in one buffer of bounded size.
 */

static int
ngx_http_iothub_twin_path(void *data, const unsigned char *path, size_t len,
    int is_delete)
{
    ngx_http_iothub_twin_paths_t *paths = data;

    /* a replace deletes what it does not mention; null is not needed */

    if (is_delete
        && paths->ctx->operation == NGX_HTTP_IOTHUB_TWIN_OP_REPLACE)
    {
        paths->ctx->replace_null = 1;
        return -1;
    }

    if (paths->ctx->policy
        && ngx_http_iothub_twin_policy_path(paths->ctx->policy, path, len,
                                            is_delete)
           != 0)
    {
        paths->ctx->refused_path = 1;
    }

    if (!paths->used) {
        return 0;
    }

    if (paths->listed == paths->max
        || paths->len + 1 + len > NGX_HTTP_IOTHUB_TWIN_PATHS_TEXT)
    {
        paths->more++;
        return 0;
    }

    if (paths->data == NULL) {
        paths->data = ngx_pnalloc(paths->request->pool,
                                  NGX_HTTP_IOTHUB_TWIN_PATHS_TEXT
                                  + sizeof(" (+ more)") + NGX_INT_T_LEN);
        if (paths->data == NULL) {
            return -1;
        }
    }

    if (paths->len) {
        paths->data[paths->len++] = ' ';
    }

    ngx_memcpy(paths->data + paths->len, path, len);
    paths->len += len;
    paths->listed++;

    return 0;
}


/*
 * One token per worker and signer, minted again when half its lifetime is
 * gone, so that a forwarded token always has at least half left.
 */

static ngx_int_t
ngx_http_iothub_twin_sign(ngx_http_request_t *r,
    ngx_http_iothub_twin_loc_conf_t *itlcf, ngx_http_iothub_twin_ctx_t *ctx)
{
    time_t                          now;
    size_t                          len;
    ngx_http_iothub_twin_keys_t    *keys;
    ngx_http_iothub_twin_signer_t  *s;

    s = ctx->route->signer;
    now = ngx_time();

    if (s->token_len == 0 || now >= s->renew) {
        keys = s->keys;

        len = ngx_http_iothub_twin_sas_sign(s->token, s->hub.data, s->hub.len,
                                            s->policy.data, s->policy.len,
                                            keys->key[s->slot],
                                            keys->key_len[s->slot],
                                            (long long) (now + s->lifetime));
        if (len == 0) {
            ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                          "iothub_twin: signing for \"%V\" failed", &s->hub);
            s->token_len = 0;
            return ngx_http_iothub_twin_refuse(r,
                                               NGX_HTTP_INTERNAL_SERVER_ERROR,
                                               "InternalServerError",
                                               "the gateway could not sign "
                                               "the request");
        }

        ngx_http_iothub_twin_metrics_token(r);

        s->token_len = len;
        s->expiry = now + s->lifetime;
        s->renew = now + s->lifetime / 2;
        s->signed_count++;

        ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "iothub_twin: new token for \"%V\" policy \"%V\", "
                       "expires at %T", &s->hub, &s->policy, s->expiry);
    }

    ctx->token.data = ngx_pnalloc(r->pool, s->token_len);
    if (ctx->token.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(ctx->token.data, s->token, s->token_len);
    ctx->token.len = s->token_len;

    ngx_http_iothub_twin_drop_credentials(r);

    ctx->state = NGX_HTTP_IOTHUB_TWIN_DONE;
    ctx->forwarded = 1;

    return NGX_DECLINED;
}


/*
 * The caller's credentials are emptied in place: proxy_pass still skips
 * them (iothub_twin_pass sets these headers itself), and a variable such as
 * $http_authorization, in a proxy_set_header or a log line, is empty.
 */

static void
ngx_http_iothub_twin_drop_credentials(ngx_http_request_t *r)
{
    ngx_uint_t                    j;
    ngx_table_elt_t              *h;
    ngx_http_iothub_twin_walk_t   w;

    static ngx_str_t  names[] = {
        ngx_string("Authorization"),
        ngx_string("Proxy-Authorization"),
        ngx_string("Cookie")
    };

    for (j = 0; j < sizeof(names) / sizeof(names[0]); j++) {
        ngx_memzero(&w, sizeof(ngx_http_iothub_twin_walk_t));

        while ((h = ngx_http_iothub_twin_next_header(r, &w, &names[j]))
               != NULL)
        {
            h->value.len = 0;
            h->value.data = (u_char *) "";
        }
    }
}


static ngx_table_elt_t *
ngx_http_iothub_twin_next_header(ngx_http_request_t *r,
    ngx_http_iothub_twin_walk_t *w, ngx_str_t *name)
{
    ngx_table_elt_t  *h;

    if (w->part == NULL) {
        w->part = &r->headers_in.headers.part;
        w->i = 0;
    }

    for ( ;; ) {

        if (w->i >= w->part->nelts) {
            if (w->part->next == NULL) {
                return NULL;
            }

            w->part = w->part->next;
            w->i = 0;
            continue;
        }

        h = (ngx_table_elt_t *) w->part->elts + w->i++;

        if (name == NULL) {
            return h;
        }

        if (h->key.len == name->len
            && ngx_strncasecmp(h->key.data, name->data, name->len) == 0)
        {
            return h;
        }
    }
}


/*
 * The context lives in a pool cleanup too, as the realip module keeps
 * its own: an error_page redirect (a limit_req 429, nginx's own 413)
 * empties the module contexts, and the audit record of such a request
 * must still name the caller, the operation and the twin.
 */

static ngx_http_iothub_twin_ctx_t *
ngx_http_iothub_twin_create_ctx(ngx_http_request_t *r,
    ngx_http_iothub_twin_loc_conf_t *itlcf)
{
    ngx_pool_cleanup_t          *cln;
    ngx_http_iothub_twin_ctx_t  *ctx;

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_iothub_twin_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_iothub_twin_ctx_cleanup;
    cln->data = ctx;

    if (itlcf->single) {
        ctx->hub = itlcf->single->name;
    }

    ngx_http_iothub_twin_operation(r, itlcf, ctx);

    ngx_http_set_ctx(r, ctx, ngx_http_iothub_twin_module);

    return ctx;
}


static void
ngx_http_iothub_twin_ctx_cleanup(void *data)
{
    /* the cleanup only marks where the context is */
}


ngx_http_iothub_twin_ctx_t *
ngx_http_iothub_twin_get_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t          *cln;
    ngx_http_iothub_twin_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_iothub_twin_module);

    if (ctx || !r->internal || r != r->main) {
        return ctx;
    }

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_iothub_twin_ctx_cleanup) {
            ctx = cln->data;
            ngx_http_set_ctx(r, ctx, ngx_http_iothub_twin_module);
            return ctx;
        }
    }

    return NULL;
}


static ngx_int_t
ngx_http_iothub_twin_ctx_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t                   *s;
    ngx_http_iothub_twin_ctx_t  *ctx;

    ctx = ngx_http_iothub_twin_get_ctx(r);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    s = (ngx_str_t *) ((char *) ctx + data);

    v->data = s->data;
    v->len = s->len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


/*
 * The caller and the twin are known as soon as a variable asks for them,
 * so that limit_req can key on them in the preaccess phase, before the
 * gateway's own handler runs.
 */

static ngx_http_iothub_twin_ctx_t *
ngx_http_iothub_twin_early_ctx(ngx_http_request_t *r)
{
    ngx_http_iothub_twin_ctx_t       *ctx;
    ngx_http_iothub_twin_loc_conf_t  *itlcf;

    ctx = ngx_http_iothub_twin_get_ctx(r);
    if (ctx) {
        return ctx;
    }

    itlcf = ngx_http_get_module_loc_conf(r, ngx_http_iothub_twin_module);

    if (!itlcf->enabled || r != r->main || r->internal) {
        return NULL;
    }

    return ngx_http_iothub_twin_create_ctx(r, itlcf);
}


static ngx_int_t
ngx_http_iothub_twin_caller_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_iothub_twin_ctx_t       *ctx;
    ngx_http_iothub_twin_loc_conf_t  *itlcf;

    ctx = ngx_http_iothub_twin_early_ctx(r);
    itlcf = ngx_http_get_module_loc_conf(r, ngx_http_iothub_twin_module);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    /* after a redirect, the caller the gateway's location identified */

    if (!ctx->identified) {
        if (!itlcf->enabled
            || itlcf->identity == NGX_HTTP_IOTHUB_TWIN_IDENTITY_OFF)
        {
            v->not_found = 1;
            return NGX_OK;
        }

        if (ngx_http_iothub_twin_identify(r, itlcf, ctx) == NGX_ERROR) {
            return NGX_ERROR;
        }
    }

    v->data = ctx->caller_name.data;
    v->len = ctx->caller_name.len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_http_iothub_twin_target_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_iothub_twin_ctx_t  *ctx;

    ctx = ngx_http_iothub_twin_early_ctx(r);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    if (ngx_http_iothub_twin_parse_target(r, ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_iothub_twin_ctx_variable(r, v, data);
}


/* "caller:device", a limit_req key; empty (not limited) without both */

static ngx_int_t
ngx_http_iothub_twin_key_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                      *p;
    ngx_http_variable_value_t    caller, device;
    ngx_http_iothub_twin_ctx_t  *ctx;

    if (ngx_http_iothub_twin_caller_variable(r, &caller, 0) != NGX_OK
        || ngx_http_iothub_twin_target_variable(r, &device,
               offsetof(ngx_http_iothub_twin_ctx_t, device_id))
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_iothub_twin_module);

    if (ctx == NULL || caller.not_found || caller.len == 0
        || device.not_found || device.len == 0)
    {
        v->not_found = 1;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, caller.len + 1 + device.len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->data = p;
    p = ngx_cpymem(p, caller.data, caller.len);
    *p++ = ':';
    p = ngx_cpymem(p, device.data, device.len);
    v->len = p - v->data;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


/*
 * The caller's Request-Id when it is a plain token (the SDKs send a UUID),
 * nginx's $request_id otherwise: what an audit line is searched by.
 */

static ngx_int_t
ngx_http_iothub_twin_request_id_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    size_t                             i;
    ngx_table_elt_t                   *h;
    ngx_http_variable_value_t         *id;
    ngx_http_iothub_twin_walk_t        w;
    ngx_http_iothub_twin_main_conf_t  *imcf;

    static ngx_str_t                   name = ngx_string("Request-Id");

    ngx_memzero(&w, sizeof(ngx_http_iothub_twin_walk_t));

    while ((h = ngx_http_iothub_twin_next_header(r, &w, &name)) != NULL) {

        if (h->value.len == 0 || h->value.len > 64) {
            continue;
        }

        for (i = 0; i < h->value.len; i++) {
            if (!ngx_http_iothub_twin_id_char(h->value.data[i])
                || h->value.data[i] == '%')
            {
                break;
            }
        }

        if (i == h->value.len) {
            v->data = h->value.data;
            v->len = h->value.len;
            v->valid = 1;
            v->no_cacheable = 0;
            v->not_found = 0;
            return NGX_OK;
        }
    }

    imcf = ngx_http_get_module_main_conf(r, ngx_http_iothub_twin_module);

    id = ngx_http_get_indexed_variable(r, imcf->request_id_index);
    if (id == NULL) {
        return NGX_ERROR;
    }

    *v = *id;

    return NGX_OK;
}


/*
 * The hub the twin routes to, known as soon as it is asked for; after a
 * redirect, the hub the gateway's location routed to.  data: 0 for the
 * hub's name, 1 for the upstream iothub_twin_pass route proxies to.
 */

static ngx_int_t
ngx_http_iothub_twin_hub_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t                        *s;
    ngx_http_iothub_twin_ctx_t       *ctx;
    ngx_http_iothub_twin_loc_conf_t  *itlcf;

    ctx = ngx_http_iothub_twin_early_ctx(r);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    itlcf = ngx_http_get_module_loc_conf(r, ngx_http_iothub_twin_module);

    (void) ngx_http_iothub_twin_route_hub(r, itlcf, ctx);

    if (data == 0) {
        s = &ctx->hub;

    } else if (ctx->route) {
        s = &ctx->route->upstream;

    } else {
        s = NULL;
    }

    if (s == NULL || s->len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->data = s->data;
    v->len = s->len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_http_iothub_twin_add_variables(ngx_conf_t *cf)
{
    ngx_str_t                          name = ngx_string("request_id");
    ngx_http_variable_t               *var, *v;
    ngx_http_iothub_twin_main_conf_t  *imcf;

    for (v = ngx_http_iothub_twin_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    /* the tracking id of the gateway's own errors */

    imcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_iothub_twin_module);

    imcf->request_id_index = ngx_http_get_variable_index(cf, &name);
    if (imcf->request_id_index == NGX_ERROR) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_iothub_twin_init(ngx_conf_t *cf)
{
    ngx_uint_t                         i;
    ngx_http_variable_t               *v;
    ngx_http_handler_pt               *h;
    ngx_http_core_main_conf_t         *cmcf;
    ngx_http_iothub_twin_main_conf_t  *imcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    /*
     * The precontent phase runs for every request, whatever "satisfy any"
     * decided in the access phase, and after access modules such as
     * auth_request have set their variables.
     */

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PRECONTENT_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_iothub_twin_handler;

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_iothub_twin_metrics_log;

    ngx_http_iothub_twin_response_init();

    /* the paths are listed only if something will show them */

    imcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_iothub_twin_module);

    v = cmcf->variables.elts;

    for (i = 0; i < cmcf->variables.nelts; i++) {
        if (v[i].name.len == sizeof("iothub_twin_paths") - 1
            && ngx_strncmp(v[i].name.data, "iothub_twin_paths",
                           sizeof("iothub_twin_paths") - 1)
               == 0)
        {
            imcf->paths_used = 1;
        }
    }

    return NGX_OK;
}
