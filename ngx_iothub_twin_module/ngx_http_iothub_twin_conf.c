
/*
 * Copyright (C) ngx_iothub_twin developers
 *
 * Configuration: iothub_twin_pass composes the location's proxy_pass so that
 * it cannot forward anything but what the gateway checked and signed; key
 * files are read once, at configuration time.
 */


#include "ngx_http_iothub_twin_module.h"


#define NGX_HTTP_IOTHUB_TWIN_KEY_FILE_MAX  4096
#define NGX_HTTP_IOTHUB_TWIN_MAX_BODY      131072


static ngx_command_t *ngx_http_iothub_twin_find_command(ngx_conf_t *cf,
    ngx_module_t **module, const char *module_name, ngx_str_t *name);
static char *ngx_http_iothub_twin_proxy_directive(ngx_conf_t *cf,
    const char *name, const char *arg1, const char *arg2);
static char *ngx_http_iothub_twin_parse_keys(ngx_conf_t *cf,
    ngx_http_iothub_twin_keys_t *keys, u_char *text, size_t len);
static ngx_http_iothub_twin_signer_t *ngx_http_iothub_twin_signer(
    ngx_conf_t *cf, ngx_http_iothub_twin_loc_conf_t *conf);
static char *ngx_http_iothub_twin_merge_identity(ngx_conf_t *cf,
    ngx_http_iothub_twin_loc_conf_t *prev,
    ngx_http_iothub_twin_loc_conf_t *conf, ngx_http_core_loc_conf_t *clcf);
static void ngx_http_iothub_twin_free_policy(void *data);


/*
 * What iothub_twin_pass adds to the location besides proxy_pass: the hub
 * gets only the headers it reads, each once (the gateway's token and
 * If-Match, the caller's checked Content-Type, its Request-Id, User-Agent
 * and Accept), never a caller's credentials or a header the gateway did
 * not check; and the hub's certificate is verified.  The directives are
 * the proxy module's own, so a second setting of them in the location is
 * refused by nginx as a duplicate.
 */

static const char  *ngx_http_iothub_twin_proxy_conf[][3] = {
    { "proxy_pass_request_headers", "off", NULL },
    { "proxy_set_header", "Authorization", "$iothub_twin_token" },
    { "proxy_set_header", "If-Match", "$iothub_twin_if_match" },
    { "proxy_set_header", "Content-Type", "$http_content_type" },
    { "proxy_set_header", "Request-Id", "$http_request_id" },
    { "proxy_set_header", "User-Agent", "$http_user_agent" },
    { "proxy_set_header", "Accept", "$http_accept" },
    { "proxy_pass_request_body", "on", NULL },
    { "proxy_ssl_verify", "on", NULL },
    { "proxy_ssl_server_name", "on", NULL },
    { NULL, NULL, NULL }
};


void *
ngx_http_iothub_twin_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_iothub_twin_main_conf_t  *imcf;

    imcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_iothub_twin_main_conf_t));
    if (imcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&imcf->signers, cf->pool, 4,
                       sizeof(ngx_http_iothub_twin_signer_t *))
        != NGX_OK)
    {
        return NULL;
    }

    return imcf;
}


void *
ngx_http_iothub_twin_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_iothub_twin_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_iothub_twin_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->pass_host = { 0, NULL };
     *     conf->proxy_handler = NULL;
     *     conf->hub = { 0, NULL };
     *     conf->policy = { 0, NULL };
     *     conf->api_version = { 0, NULL };
     *     conf->signer = NULL;
     */

    conf->enabled = NGX_CONF_UNSET;
    conf->keys = NGX_CONF_UNSET_PTR;
    conf->key_slot = NGX_CONF_UNSET_UINT;
    conf->token_lifetime = NGX_CONF_UNSET;
    conf->read = NGX_CONF_UNSET;
    conf->replace = NGX_CONF_UNSET;
    conf->backoff = NGX_CONF_UNSET;
    conf->require_if_match = NGX_CONF_UNSET;
    conf->max_body_size = NGX_CONF_UNSET_SIZE;
    conf->audit_paths = NGX_CONF_UNSET_SIZE;
    conf->identity = NGX_CONF_UNSET_UINT;
    conf->mtls_cn = NGX_CONF_UNSET;
    conf->callers = NGX_CONF_UNSET_PTR;
    conf->sas_skew = NGX_CONF_UNSET;
    conf->audit_values = NGX_CONF_UNSET_SIZE;

    return conf;
}


char *
ngx_http_iothub_twin_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_iothub_twin_loc_conf_t *prev = parent;
    ngx_http_iothub_twin_loc_conf_t *conf = child;

    ngx_http_core_loc_conf_t  *clcf;

    /* the gateway is on only where iothub_twin_pass is, like proxy_pass */

    if (conf->enabled == NGX_CONF_UNSET) {
        conf->enabled = 0;
    }

    ngx_conf_merge_str_value(conf->hub, prev->hub, "");
    ngx_conf_merge_str_value(conf->policy, prev->policy, "");
    ngx_conf_merge_ptr_value(conf->keys, prev->keys, NULL);
    ngx_conf_merge_uint_value(conf->key_slot, prev->key_slot, 0);
    ngx_conf_merge_sec_value(conf->token_lifetime, prev->token_lifetime, 3600);
    ngx_conf_merge_str_value(conf->api_version, prev->api_version,
                             NGX_HTTP_IOTHUB_TWIN_API_VERSION);
    ngx_conf_merge_value(conf->read, prev->read, 0);
    ngx_conf_merge_value(conf->replace, prev->replace, 0);
    ngx_conf_merge_sec_value(conf->backoff, prev->backoff, 0);
    ngx_conf_merge_value(conf->require_if_match, prev->require_if_match, 0);
    ngx_conf_merge_size_value(conf->max_body_size, prev->max_body_size,
                              NGX_HTTP_IOTHUB_TWIN_MAX_BODY);
    ngx_conf_merge_size_value(conf->audit_values, prev->audit_values, 0);
    ngx_conf_merge_size_value(conf->audit_paths, prev->audit_paths, 32);

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (ngx_http_iothub_twin_merge_identity(cf, prev, conf, clcf)
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (!conf->enabled) {
        return NGX_CONF_OK;
    }

    if (clcf->handler != conf->proxy_handler) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"iothub_twin_pass\" in location \"%V\" is "
                           "overridden by another content handler; the "
                           "gateway must be the only way to the hub",
                           &clcf->name);
        return NGX_CONF_ERROR;
    }

    if (conf->hub.len == 0) {
        conf->hub = conf->pass_host;
    }

    if (conf->policy.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"iothub_twin_pass\" in location \"%V\" needs "
                           "\"iothub_twin_hub_policy\"", &clcf->name);
        return NGX_CONF_ERROR;
    }

    if (conf->keys == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"iothub_twin_pass\" in location \"%V\" needs "
                           "\"iothub_twin_hub_key_file\"", &clcf->name);
        return NGX_CONF_ERROR;
    }

    if (conf->key_slot >= conf->keys->nkeys) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"iothub_twin_hub_key_slot secondary\" in location "
                           "\"%V\": key file \"%V\" holds no secondary key",
                           &clcf->name, &conf->keys->file);
        return NGX_CONF_ERROR;
    }

    conf->signer = ngx_http_iothub_twin_signer(cf, conf);
    if (conf->signer == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_iothub_twin_merge_identity(ngx_conf_t *cf,
    ngx_http_iothub_twin_loc_conf_t *prev,
    ngx_http_iothub_twin_loc_conf_t *conf, ngx_http_core_loc_conf_t *clcf)
{
    if (conf->identity == NGX_CONF_UNSET_UINT) {
        conf->identity = prev->identity;
        conf->mtls_cn = prev->mtls_cn;
        conf->identity_value = prev->identity_value;
    }

    ngx_conf_merge_uint_value(conf->identity, prev->identity,
                              NGX_HTTP_IOTHUB_TWIN_IDENTITY_OFF);
    ngx_conf_merge_value(conf->mtls_cn, prev->mtls_cn, 0);
    ngx_conf_merge_ptr_value(conf->callers, prev->callers, NULL);
    ngx_conf_merge_str_value(conf->sas_host, prev->sas_host, "");
    ngx_conf_merge_sec_value(conf->sas_skew, prev->sas_skew, 300);

    if (!conf->enabled) {
        return NGX_CONF_OK;
    }

    if (conf->identity == NGX_HTTP_IOTHUB_TWIN_IDENTITY_OFF) {
        if (conf->callers) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"iothub_twin_callers\" in location \"%V\" "
                               "needs \"iothub_twin_identity\" to know who "
                               "is calling", &clcf->name);
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    if (conf->callers == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"iothub_twin_identity\" in location \"%V\" "
                           "needs \"iothub_twin_callers\"", &clcf->name);
        return NGX_CONF_ERROR;
    }

    if (conf->identity == NGX_HTTP_IOTHUB_TWIN_IDENTITY_SAS
        && conf->sas_host.len == 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"iothub_twin_identity sas\" in location \"%V\" "
                           "needs \"iothub_twin_sas_host\", the host name "
                           "callers sign for", &clcf->name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* locations with the same hub, policy, key and lifetime share one token */

static ngx_http_iothub_twin_signer_t *
ngx_http_iothub_twin_signer(ngx_conf_t *cf,
    ngx_http_iothub_twin_loc_conf_t *conf)
{
    ngx_uint_t                          i;
    ngx_http_iothub_twin_signer_t      *s, **sp;
    ngx_http_iothub_twin_main_conf_t   *imcf;

    imcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_iothub_twin_module);

    sp = imcf->signers.elts;

    for (i = 0; i < imcf->signers.nelts; i++) {
        s = sp[i];

        if (s->keys == conf->keys
            && s->slot == conf->key_slot
            && s->lifetime == conf->token_lifetime
            && s->hub.len == conf->hub.len
            && ngx_strncasecmp(s->hub.data, conf->hub.data, s->hub.len) == 0
            && s->policy.len == conf->policy.len
            && ngx_strncmp(s->policy.data, conf->policy.data, s->policy.len)
               == 0)
        {
            return s;
        }
    }

    s = ngx_pcalloc(cf->pool, sizeof(ngx_http_iothub_twin_signer_t));
    if (s == NULL) {
        return NULL;
    }

    s->hub = conf->hub;
    s->policy = conf->policy;
    s->keys = conf->keys;
    s->slot = conf->key_slot;
    s->lifetime = conf->token_lifetime;

    s->token = ngx_pnalloc(cf->pool,
                           ngx_http_iothub_twin_sas_token_max(s->hub.len,
                                                              s->policy.len));
    if (s->token == NULL) {
        return NULL;
    }

    sp = ngx_array_push(&imcf->signers);
    if (sp == NULL) {
        return NULL;
    }

    *sp = s;

    return s;
}


/*
 * iothub_twin_pass https://host[:port];
 *
 * Only a scheme and a host: the path is always the canonical one the
 * gateway builds, and variables could not be checked here.
 */

char *
ngx_http_iothub_twin_pass(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_iothub_twin_loc_conf_t *itlcf = conf;

    char                      *rv;
    u_char                    *host, *end, *colon;
    const char               **d;
    ngx_str_t                 *value;
    ngx_uint_t                 i;
    ngx_http_core_loc_conf_t  *clcf;

    if (itlcf->enabled != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len <= sizeof("https://") - 1
        || ngx_strncasecmp(value[1].data, (u_char *) "https://",
                           sizeof("https://") - 1)
           != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid URL \"%V\" in \"%V\": the hub is reached "
                           "over https only", &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    host = value[1].data + sizeof("https://") - 1;
    end = value[1].data + value[1].len;

    for (i = 0; host + i < end; i++) {
        if (host[i] == '/' || host[i] == '$' || host[i] == '?'
            || host[i] == '@' || host[i] == '#')
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid URL \"%V\" in \"%V\": give only "
                               "\"https://host[:port]\", without a path or "
                               "variables", &value[1], &cmd->name);
            return NGX_CONF_ERROR;
        }
    }

    colon = ngx_strlchr(host, end, ':');

    itlcf->pass_host.data = host;
    itlcf->pass_host.len = (colon ? colon : end) - host;

    rv = ngx_http_iothub_twin_proxy_directive(cf, "proxy_pass",
                                              (char *) value[1].data, NULL);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    for (i = 0; ngx_http_iothub_twin_proxy_conf[i][0]; i++) {
        d = ngx_http_iothub_twin_proxy_conf[i];

        rv = ngx_http_iothub_twin_proxy_directive(cf, d[0], d[1], d[2]);
        if (rv != NGX_CONF_OK) {
            return rv;
        }
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    itlcf->enabled = 1;
    itlcf->proxy_handler = clcf->handler;

    return NGX_CONF_OK;
}


static ngx_command_t *
ngx_http_iothub_twin_find_command(ngx_conf_t *cf, ngx_module_t **module,
    const char *module_name, ngx_str_t *name)
{
    ngx_uint_t      m;
    ngx_command_t  *cmd;

    for (m = 0; cf->cycle->modules[m]; m++) {
        if (cf->cycle->modules[m]->type != NGX_HTTP_MODULE
            || ngx_strcmp(cf->cycle->modules[m]->name, module_name) != 0)
        {
            continue;
        }

        for (cmd = cf->cycle->modules[m]->commands; cmd->name.len; cmd++) {
            if (cmd->name.len == name->len
                && ngx_strncmp(cmd->name.data, name->data, name->len) == 0)
            {
                *module = cf->cycle->modules[m];
                return cmd;
            }
        }
    }

    return NULL;
}


/* runs one proxy module directive as if it were written in the location */

static char *
ngx_http_iothub_twin_proxy_directive(ngx_conf_t *cf, const char *name,
    const char *arg1, const char *arg2)
{
    char                  *rv;
    void                  *conf;
    ngx_str_t             *value;
    ngx_array_t           *saved, args;
    ngx_module_t          *module;
    ngx_command_t         *cmd;
    ngx_http_conf_ctx_t   *ctx;

    if (ngx_array_init(&args, cf->temp_pool, 3, sizeof(ngx_str_t)) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    value = ngx_array_push_n(&args, arg2 ? 3 : 2);
    if (value == NULL) {
        return NGX_CONF_ERROR;
    }

    value[0].data = (u_char *) name;
    value[0].len = ngx_strlen(name);
    value[1].data = (u_char *) arg1;
    value[1].len = ngx_strlen(arg1);

    if (arg2) {
        value[2].data = (u_char *) arg2;
        value[2].len = ngx_strlen(arg2);
    }

    cmd = ngx_http_iothub_twin_find_command(cf, &module,
                                            "ngx_http_proxy_module",
                                            &value[0]);
    if (cmd == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"iothub_twin_pass\" needs the proxy module, "
                           "which provides \"%s\"", name);
        return NGX_CONF_ERROR;
    }

    ctx = cf->ctx;
    conf = ctx->loc_conf[module->ctx_index];

    saved = cf->args;
    cf->args = &args;

    rv = cmd->set(cf, cmd, conf);

    cf->args = saved;

    if (rv != NGX_CONF_OK && rv != NGX_CONF_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"iothub_twin_pass\" sets \"%s %s%s%s\" itself, "
                           "but the location has it already (%s): remove "
                           "\"%s\" from this location",
                           name, arg1, arg2 ? " " : "", arg2 ? arg2 : "",
                           rv, name);
        return NGX_CONF_ERROR;
    }

    return rv;
}


/* iothub_twin_error status code ["text"] | auto [retry_after=seconds]; */

char *
ngx_http_iothub_twin_error(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_iothub_twin_loc_conf_t *itlcf = conf;

    ngx_int_t                  status;
    ngx_str_t                 *value;
    ngx_uint_t                 i;
    ngx_http_core_loc_conf_t  *clcf;

    if (itlcf->error_status) {
        return "is duplicate";
    }

    /* the text and retry_after= may come in either order */

    value = cf->args->elts;

    if (value[1].len == 4 && ngx_strncmp(value[1].data, "auto", 4) == 0) {
        itlcf->error_status = NGX_HTTP_IOTHUB_TWIN_ERROR_AUTO;
        i = 2;
        goto parameters;
    }

    if (cf->args->nelts < 3) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\": expected "
                           "\"auto\" or a status and an error code",
                           &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    status = ngx_atoi(value[1].data, value[1].len);

    if (status < 400 || status > 599) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid status \"%V\" in \"%V\": expected "
                           "400 to 599", &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    for (i = 0; i < value[2].len; i++) {
        if (!((value[2].data[i] >= 'A' && value[2].data[i] <= 'Z')
              || (value[2].data[i] >= 'a' && value[2].data[i] <= 'z')))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid error code \"%V\" in \"%V\": "
                               "expected a name such as ArgumentInvalid",
                               &value[2], &cmd->name);
            return NGX_CONF_ERROR;
        }
    }

    itlcf->error_status = status;
    itlcf->error_code = value[2];
    ngx_str_set(&itlcf->error_text, "the request was refused");
    i = 3;

parameters:

    for ( /* void */ ; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "retry_after=", 12) == 0) {
            if (ngx_atoi(value[i].data + 12, value[i].len - 12) == NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid value \"%V\" in \"%V\": "
                                   "expected retry_after=<seconds>",
                                   &value[i], &cmd->name);
                return NGX_CONF_ERROR;
            }

            itlcf->error_retry_after.data = value[i].data + 12;
            itlcf->error_retry_after.len = value[i].len - 12;
            continue;
        }

        if (i == 3 && itlcf->error_status != NGX_HTTP_IOTHUB_TWIN_ERROR_AUTO) {
            itlcf->error_text = value[i];
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" in \"%V\"",
                           &value[i], &cmd->name);
        return NGX_CONF_ERROR;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_iothub_twin_error_handler;

    return NGX_CONF_OK;
}


/*
 * iothub_twin_identity off | sas | mtls [subject | cn] | variable value;
 */

char *
ngx_http_iothub_twin_identity(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_iothub_twin_loc_conf_t *itlcf = conf;

    ngx_str_t                         *value;
    ngx_http_compile_complex_value_t   ccv;

    if (itlcf->identity != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0 && cf->args->nelts == 2) {
        itlcf->identity = NGX_HTTP_IOTHUB_TWIN_IDENTITY_OFF;
        return NGX_CONF_OK;
    }

    if (ngx_strcmp(value[1].data, "sas") == 0 && cf->args->nelts == 2) {
        itlcf->identity = NGX_HTTP_IOTHUB_TWIN_IDENTITY_SAS;
        return NGX_CONF_OK;
    }

    if (ngx_strcmp(value[1].data, "mtls") == 0) {
        itlcf->identity = NGX_HTTP_IOTHUB_TWIN_IDENTITY_MTLS;
        itlcf->mtls_cn = 0;

        if (cf->args->nelts == 2
            || ngx_strcmp(value[2].data, "subject") == 0)
        {
            return NGX_CONF_OK;
        }

        if (ngx_strcmp(value[2].data, "cn") == 0) {
            itlcf->mtls_cn = 1;
            return NGX_CONF_OK;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V mtls\": expected "
                           "\"subject\" or \"cn\"", &value[2], &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (ngx_strcmp(value[1].data, "variable") == 0 && cf->args->nelts == 3) {
        itlcf->identity = NGX_HTTP_IOTHUB_TWIN_IDENTITY_VARIABLE;

        itlcf->identity_value = ngx_palloc(cf->pool,
                                           sizeof(ngx_http_complex_value_t));
        if (itlcf->identity_value == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

        ccv.cf = cf;
        ccv.value = &value[2];
        ccv.complex_value = itlcf->identity_value;

        if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid value \"%V\" in \"%V\": expected \"off\", "
                       "\"sas\", \"mtls [subject|cn]\" or \"variable "
                       "<value>\"", &value[1], &cmd->name);

    return NGX_CONF_ERROR;
}


/*
 * iothub_twin_callers file;
 *
 * The whole file is loaded and checked here, so that nginx -t fails on any
 * error in it, and a reload with a broken file keeps the old policy.
 */

char *
ngx_http_iothub_twin_callers(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_iothub_twin_loc_conf_t *itlcf = conf;

    char                             err[512];
    ngx_str_t                       *value;
    ngx_pool_cleanup_t              *cln;
    ngx_http_iothub_twin_callers_t  *callers;

    if (itlcf->callers != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    callers = ngx_pcalloc(cf->pool, sizeof(ngx_http_iothub_twin_callers_t));
    if (callers == NULL) {
        return NGX_CONF_ERROR;
    }

    callers->file = value[1];

    if (ngx_conf_full_name(cf->cycle, &callers->file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_CONF_ERROR;
    }

    err[0] = '\0';

    callers->policy = ngx_http_iothub_twin_policy_load(
                          (const char *) callers->file.data, err, sizeof(err));

    if (callers->policy == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\": %s",
                           &cmd->name, err);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_iothub_twin_free_policy;
    cln->data = callers->policy;

    itlcf->callers = callers;

    return NGX_CONF_OK;
}


static void
ngx_http_iothub_twin_free_policy(void *data)
{
    ngx_http_iothub_twin_policy_free(data);
}


/* iothub_twin_hub_key_file path; primary key, optional secondary, base64 */

char *
ngx_http_iothub_twin_key_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_iothub_twin_loc_conf_t *itlcf = conf;

    char                         *rv;
    u_char                        buf[NGX_HTTP_IOTHUB_TWIN_KEY_FILE_MAX + 1];
    ssize_t                       n;
    ngx_fd_t                      fd;
    ngx_str_t                    *value;
    ngx_file_info_t               fi;
    ngx_http_iothub_twin_keys_t  *keys;

    if (itlcf->keys != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    keys = ngx_pcalloc(cf->pool, sizeof(ngx_http_iothub_twin_keys_t));
    if (keys == NULL) {
        return NGX_CONF_ERROR;
    }

    keys->file = value[1];

    if (ngx_conf_full_name(cf->cycle, &keys->file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    fd = ngx_open_file(keys->file.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"%V\": cannot open key file \"%V\"",
                           &cmd->name, &keys->file);
        return NGX_CONF_ERROR;
    }

    rv = NGX_CONF_ERROR;

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"%V\": cannot stat key file \"%V\"",
                           &cmd->name, &keys->file);
        goto done;
    }

    if (ngx_file_size(&fi) > NGX_HTTP_IOTHUB_TWIN_KEY_FILE_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\": key file \"%V\" is larger than %d bytes",
                           &cmd->name, &keys->file,
                           NGX_HTTP_IOTHUB_TWIN_KEY_FILE_MAX);
        goto done;
    }

    n = ngx_read_fd(fd, buf, NGX_HTTP_IOTHUB_TWIN_KEY_FILE_MAX);
    if (n == -1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"%V\": cannot read key file \"%V\"",
                           &cmd->name, &keys->file);
        goto done;
    }

    rv = ngx_http_iothub_twin_parse_keys(cf, keys, buf, n);

    ngx_explicit_memzero(buf, sizeof(buf));

    if (rv == NGX_CONF_OK) {
        itlcf->keys = keys;
    }

done:

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_ALERT, cf, ngx_errno,
                           ngx_close_file_n " \"%V\" failed", &keys->file);
    }

    return rv;
}


/*
 * One base64 key a line: the primary, then optionally the secondary.
 * Blank lines and lines starting with '#' are skipped.  Messages name the
 * line, never its content.
 */

static char *
ngx_http_iothub_twin_parse_keys(ngx_conf_t *cf,
    ngx_http_iothub_twin_keys_t *keys, u_char *text, size_t len)
{
    u_char      *p, *end, *eol, *s, *e;
    size_t       n;
    ngx_uint_t   line;

    p = text;
    end = text + len;
    line = 0;

    while (p < end) {
        eol = ngx_strlchr(p, end, '\n');
        if (eol == NULL) {
            eol = end;
        }

        line++;

        s = p;
        e = eol;
        p = (eol < end) ? eol + 1 : end;

        while (s < e && (*s == ' ' || *s == '\t')) {
            s++;
        }

        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) {
            e--;
        }

        if (s == e || *s == '#') {
            continue;
        }

        if (keys->nkeys == 2) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"iothub_twin_hub_key_file\": key file \"%V\" "
                               "holds more than two keys (line %ui)",
                               &keys->file, line);
            return NGX_CONF_ERROR;
        }

        n = ngx_http_iothub_twin_sas_key_decode(s, e - s,
                                                keys->key[keys->nkeys]);
        if (n == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"iothub_twin_hub_key_file\": key file \"%V\" "
                               "line %ui is not a base64 key",
                               &keys->file, line);
            return NGX_CONF_ERROR;
        }

        keys->key_len[keys->nkeys++] = n;
    }

    if (keys->nkeys == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"iothub_twin_hub_key_file\": key file \"%V\" "
                           "holds no key", &keys->file);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


char *
ngx_http_iothub_twin_api_version(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_iothub_twin_loc_conf_t *itlcf = conf;

    ngx_str_t  *value;

    if (itlcf->api_version.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (!ngx_http_iothub_twin_api_version_valid(value[1].data, value[1].len)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\": expected a date "
                           "like 2021-04-12", &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    itlcf->api_version = value[1];

    return NGX_CONF_OK;
}


/*
 * A time or a size within the bounds in cmd->post; the message names the
 * directive, the value and the bounds.
 */

char *
ngx_http_iothub_twin_set_bounded(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    char  *p = conf;

    off_t                              n;
    time_t                            *tp;
    size_t                            *sp;
    ngx_str_t                         *value;
    ngx_http_iothub_twin_bounds_t     *b;

    b = cmd->post;
    value = cf->args->elts;

    if (b->time) {
        tp = (time_t *) (p + cmd->offset);

        if (*tp != NGX_CONF_UNSET) {
            return "is duplicate";
        }

        n = ngx_parse_time(&value[1], 1);

    } else {
        sp = (size_t *) (p + cmd->offset);

        if (*sp != NGX_CONF_UNSET_SIZE) {
            return "is duplicate";
        }

        n = b->number ? ngx_atoof(value[1].data, value[1].len)
                      : ngx_parse_size(&value[1]);
    }

    if (n == NGX_ERROR || n < b->min || n > b->max) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\": expected %s",
                           &value[1], &cmd->name, b->expected);
        return NGX_CONF_ERROR;
    }

    if (b->time) {
        *(time_t *) (p + cmd->offset) = (time_t) n;

    } else {
        *(size_t *) (p + cmd->offset) = (size_t) n;
    }

    return NGX_CONF_OK;
}


/* iothub_twin_audit_values off | size; */

char *
ngx_http_iothub_twin_set_audit_values(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_iothub_twin_loc_conf_t *itlcf = conf;

    ssize_t     n;
    ngx_str_t  *value;

    if (itlcf->audit_values != NGX_CONF_UNSET_SIZE) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        itlcf->audit_values = 0;
        return NGX_CONF_OK;
    }

    n = ngx_parse_size(&value[1]);

    if (n == NGX_ERROR || n < 1 || n > 65536) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\": expected \"off\" "
                           "or a size from 1 to 64k", &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    itlcf->audit_values = (size_t) n;

    return NGX_CONF_OK;
}
