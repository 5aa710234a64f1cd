
/*
 * Copyright (C) ngx_iothub_twin developers
 *
 * What the module's nginx glue shares between its files: configuration,
 * the request context and the functions one file gives another.
 */


#ifndef _NGX_HTTP_IOTHUB_TWIN_MODULE_H_INCLUDED_
#define _NGX_HTTP_IOTHUB_TWIN_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_iothub_twin_id.h"
#include "ngx_http_iothub_twin_sas.h"
#include "ngx_http_iothub_twin_etag.h"
#include "ngx_http_iothub_twin_patch.h"
#include "ngx_http_iothub_twin_policy.h"
#include "ngx_http_iothub_twin_filter.h"
#include "ngx_http_iothub_twin_route.h"


#define NGX_HTTP_IOTHUB_TWIN_API_VERSION   "2021-04-12"

#define NGX_HTTP_IOTHUB_TWIN_IDENTITY_OFF       0
#define NGX_HTTP_IOTHUB_TWIN_IDENTITY_SAS       1
#define NGX_HTTP_IOTHUB_TWIN_IDENTITY_MTLS      2
#define NGX_HTTP_IOTHUB_TWIN_IDENTITY_VARIABLE  3

#define NGX_HTTP_IOTHUB_TWIN_START         0
#define NGX_HTTP_IOTHUB_TWIN_CHECKING      1
#define NGX_HTTP_IOTHUB_TWIN_READING       2
#define NGX_HTTP_IOTHUB_TWIN_BODY_READ     3
#define NGX_HTTP_IOTHUB_TWIN_DONE          4


/* iothub_twin_error auto: status, code and text from the status answered */
#define NGX_HTTP_IOTHUB_TWIN_ERROR_AUTO    1


/* one hub-shaped error: the status answered, the status sent, the code */

typedef struct {
    ngx_uint_t                       status;
    ngx_uint_t                       send;
    ngx_str_t                        code;
    ngx_str_t                        text;
} ngx_http_iothub_twin_error_t;


/* the policy keys of one key file: primary and optional secondary */

typedef struct {
    ngx_str_t                        file;
    u_char                           key[2][NGX_HTTP_IOTHUB_TWIN_SAS_KEY_MAX];
    size_t                           key_len[2];
    ngx_uint_t                       nkeys;
} ngx_http_iothub_twin_keys_t;


/* the bounds of a time or size directive, in its cmd->post */

typedef struct {
    unsigned                         time:1;
    off_t                            min;
    off_t                            max;
    const char                      *expected;
    unsigned                         number:1;
} ngx_http_iothub_twin_bounds_t;


/* the caller policy file, loaded at configuration time */

typedef struct {
    ngx_str_t                        file;
    ngx_http_iothub_twin_policy_t   *policy;
} ngx_http_iothub_twin_callers_t;


/* one token per hub, policy and key, kept by each worker */

typedef struct {
    ngx_str_t                        hub;
    ngx_str_t                        policy;
    ngx_http_iothub_twin_keys_t     *keys;
    ngx_uint_t                       slot;
    time_t                           lifetime;

    u_char                          *token;
    size_t                           token_len;
    time_t                           expiry;
    time_t                           renew;
    ngx_uint_t                       signed_count;
} ngx_http_iothub_twin_signer_t;


/*
 * One hub the gateway signs for: iothub_twin_hub_define at http level, or
 * the single hub of a location's iothub_twin_pass https://...
 */

typedef struct {
    ngx_str_t                        name;      /* host: sr, SNI, Host */
    ngx_str_t                        upstream;  /* host[:port] proxied to */
    ngx_str_t                        policy;
    ngx_http_iothub_twin_keys_t     *keys;
    ngx_uint_t                       key_slot;
    time_t                           token_lifetime;
    ngx_str_t                        api_version;
    ngx_http_iothub_twin_signer_t   *signer;

    /* where it is defined, for nginx -t messages */
    u_char                          *file;
    ngx_uint_t                       line;
} ngx_http_iothub_twin_hub_t;


/* iothub_twin_route device pattern hub; */

typedef struct {
    ngx_str_t                        pattern;
    ngx_str_t                        hub_name;
    ngx_http_iothub_twin_hub_t      *hub;
    u_char                          *file;
    ngx_uint_t                       line;
} ngx_http_iothub_twin_route_t;


typedef struct {
    ngx_int_t                        request_id_index;

    /* some log format or directive uses $iothub_twin_paths */
    ngx_flag_t                       paths_used;
    ngx_shm_zone_t                  *metrics;
    ngx_shm_zone_t                  *backoff;
    ngx_array_t                      signers;   /* signer pointers */
    ngx_array_t                      hubs;      /* hub pointers */
} ngx_http_iothub_twin_main_conf_t;


typedef struct {
    ngx_flag_t                       enabled;
    ngx_str_t                        pass_host;
    ngx_http_handler_pt              proxy_handler;

    ngx_str_t                        hub;
    ngx_str_t                        policy;
    ngx_http_iothub_twin_keys_t     *keys;
    ngx_uint_t                       key_slot;
    time_t                           token_lifetime;
    ngx_str_t                        api_version;
    ngx_flag_t                       read;
    ngx_flag_t                       replace;

    /* iothub_twin_hub_backoff: the default window, 0 when off */
    time_t                           backoff;
    ngx_flag_t                       require_if_match;
    size_t                           max_body_size;

    /* iothub_twin_pass https://...: the location's one hub */
    ngx_http_iothub_twin_hub_t      *single;

    /* iothub_twin_pass route: by device pattern or by a value */
    ngx_flag_t                       routed;
    ngx_array_t                     *routes;    /* route_t */
    ngx_http_complex_value_t        *route_value;

    ngx_uint_t                       identity;
    ngx_flag_t                       mtls_cn;
    ngx_http_complex_value_t        *identity_value;
    ngx_http_iothub_twin_callers_t  *callers;
    ngx_str_t                        sas_host;
    time_t                           sas_skew;

    /* iothub_twin_error */
    ngx_uint_t                       error_status;
    ngx_str_t                        error_code;
    ngx_str_t                        error_text;
    ngx_str_t                        error_retry_after;

    /* iothub_twin_audit_values, iothub_twin_audit_paths */
    size_t                           audit_values;
    size_t                           audit_paths;
} ngx_http_iothub_twin_loc_conf_t;


typedef struct {
    ngx_uint_t                       state;
    ngx_uint_t                       operation;
    ngx_http_iothub_twin_target_t   *target;
    ngx_http_iothub_twin_target_rc_e
                                     target_rc;
    u_char                          *query;

    /* what variables show */
    ngx_str_t                        hub;
    ngx_str_t                        device_id;
    ngx_str_t                        module_id;
    ngx_str_t                        operation_name;
    ngx_str_t                        upstream_uri;
    ngx_str_t                        token;
    ngx_str_t                        if_match;
    ngx_str_t                        if_match_kind;
    ngx_str_t                        paths;
    ngx_str_t                        error;
    ngx_str_t                        etag;
    ngx_str_t                        version;
    ngx_str_t                        caller_name;
    ngx_str_t                        decision;
    ngx_str_t                        reason;
    ngx_str_t                        mode;
    ngx_str_t                        values;
    ngx_str_t                        withheld;
    ngx_str_t                        withheld_paths;

    const ngx_http_iothub_twin_caller_t
                                    *caller;
    const char                      *identity_error;
    ngx_http_iothub_twin_policy_decision_t
                                    *policy;

    /* the hub the twin routes to, NULL if none */
    ngx_http_iothub_twin_hub_t      *route;

    /* the hub's answer, held back until its etag is known */
    u_char                          *resp;
    size_t                           resp_len;
    size_t                           resp_cap;

    ngx_uint_t                       rule;

    unsigned                         identified:1;
    unsigned                         replace_null:1;
    unsigned                         refused_path:1;
    unsigned                         reported:1;
    unsigned                         forwarded:1;
    unsigned                         buffering:1;
    unsigned                         oversize:1;
    unsigned                         replaced:1;
    unsigned                         routed:1;
    unsigned                         routing:1;
    unsigned                         route_error:1;
} ngx_http_iothub_twin_ctx_t;


extern ngx_module_t  ngx_http_iothub_twin_module;



/* ngx_http_iothub_twin_module.c */
ngx_http_iothub_twin_ctx_t *ngx_http_iothub_twin_get_ctx(
    ngx_http_request_t *r);


/* ngx_http_iothub_twin_backoff.c */
char *ngx_http_iothub_twin_backoff_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_iothub_twin_conf_backoff(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_iothub_twin_backoff_check(ngx_http_request_t *r,
    ngx_http_iothub_twin_loc_conf_t *itlcf, ngx_http_iothub_twin_ctx_t *ctx);
void ngx_http_iothub_twin_backoff_record(ngx_http_request_t *r,
    ngx_http_iothub_twin_loc_conf_t *itlcf, ngx_http_iothub_twin_ctx_t *ctx);
u_char *ngx_http_iothub_twin_backoff_metrics(ngx_http_request_t *r,
    u_char *p);

/* ngx_http_iothub_twin_response.c */
void ngx_http_iothub_twin_response_init(void);

/* ngx_http_iothub_twin_conf.c */
char *ngx_http_iothub_twin_pass(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_iothub_twin_error(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_iothub_twin_hub_define(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_iothub_twin_route(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_http_iothub_twin_hub_t *ngx_http_iothub_twin_find_hub(
    ngx_http_iothub_twin_main_conf_t *imcf, u_char *name, size_t len);
char *ngx_http_iothub_twin_identity(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_iothub_twin_callers(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_iothub_twin_key_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_iothub_twin_api_version(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_iothub_twin_set_bounded(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_iothub_twin_set_audit_values(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
void *ngx_http_iothub_twin_create_main_conf(ngx_conf_t *cf);
void *ngx_http_iothub_twin_create_loc_conf(ngx_conf_t *cf);
char *ngx_http_iothub_twin_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);

/* ngx_http_iothub_twin_identity.c */
ngx_int_t ngx_http_iothub_twin_identify(ngx_http_request_t *r,
    ngx_http_iothub_twin_loc_conf_t *itlcf, ngx_http_iothub_twin_ctx_t *ctx);

/* ngx_http_iothub_twin_metrics.c */
char *ngx_http_iothub_twin_metrics_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_iothub_twin_metrics(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_iothub_twin_metrics_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_iothub_twin_metrics_log(ngx_http_request_t *r);
void ngx_http_iothub_twin_metrics_token(ngx_http_request_t *r);

/* ngx_http_iothub_twin_error.c */
ngx_int_t ngx_http_iothub_twin_refuse(ngx_http_request_t *r,
    ngx_uint_t status, const char *code, const char *fmt, ...);
ngx_int_t ngx_http_iothub_twin_error_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_iothub_twin_send(ngx_http_request_t *r, ngx_buf_t *b);
ngx_buf_t *ngx_http_iothub_twin_error_body(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *code, ngx_str_t *text);


#endif /* _NGX_HTTP_IOTHUB_TWIN_MODULE_H_INCLUDED_ */
