
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


/* what the check of a policy's hubs knows: the location, the hubs */

typedef struct {
    ngx_http_iothub_twin_loc_conf_t   *conf;
    ngx_http_iothub_twin_main_conf_t  *imcf;
} ngx_http_iothub_twin_known_hub_t;


static ngx_command_t *ngx_http_iothub_twin_find_command(ngx_conf_t *cf,
    ngx_module_t **module, const char *module_name, ngx_str_t *name);
static char *ngx_http_iothub_twin_proxy_directive(ngx_conf_t *cf,
    const char *name, const char *arg1, const char *arg2);
static char *ngx_http_iothub_twin_parse_keys(ngx_conf_t *cf,
    ngx_str_t *name, ngx_http_iothub_twin_keys_t *keys, u_char *text,
    size_t len);
static ngx_http_iothub_twin_keys_t *ngx_http_iothub_twin_read_keys(
    ngx_conf_t *cf, ngx_str_t *name, ngx_str_t *path);
static ngx_int_t ngx_http_iothub_twin_pass_url(ngx_conf_t *cf,
    ngx_str_t *name, ngx_str_t *url, ngx_str_t *host, ngx_str_t *hostport);
static ngx_http_iothub_twin_signer_t *ngx_http_iothub_twin_signer(
    ngx_conf_t *cf, ngx_http_iothub_twin_hub_t *hub);
static char *ngx_http_iothub_twin_merge_single(ngx_conf_t *cf,
    ngx_http_iothub_twin_loc_conf_t *conf, ngx_http_core_loc_conf_t *clcf);
static char *ngx_http_iothub_twin_merge_routes(ngx_conf_t *cf,
    ngx_http_iothub_twin_loc_conf_t *conf, ngx_http_core_loc_conf_t *clcf);
static char *ngx_http_iothub_twin_check_policy_hubs(ngx_conf_t *cf,
    ngx_http_iothub_twin_loc_conf_t *conf, ngx_http_core_loc_conf_t *clcf);
static int ngx_http_iothub_twin_known_hub(void *data,
    const unsigned char *name, size_t len);
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

    if (ngx_array_init(&imcf->hubs, cf->pool, 4,
                       sizeof(ngx_http_iothub_twin_hub_t *))
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
     *     conf->single = NULL;
     *     conf->routes = NULL;
     *     conf->route_value = NULL;
     */

    conf->enabled = NGX_CONF_UNSET;
    conf->routed = NGX_CONF_UNSET;
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

    if (conf->routed == NGX_CONF_UNSET) {
        conf->routed = 0;
    }

    if (conf->routes == NULL && conf->route_value == NULL) {
        conf->routes = prev->routes;
        conf->route_value = prev->route_value;
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

    if (conf->routed) {
        if (ngx_http_iothub_twin_merge_routes(cf, conf, clcf)
            != NGX_CONF_OK)
        {
            return NGX_CONF_ERROR;
        }

    } else if (ngx_http_iothub_twin_merge_single(cf, conf, clcf)
               != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    return ngx_http_iothub_twin_check_policy_hubs(cf, conf, clcf);
}


/* iothub_twin_pass https://...: the location's one hub, from its directives */

static char *
ngx_http_iothub_twin_merge_single(ngx_conf_t *cf,
    ngx_http_iothub_twin_loc_conf_t *conf, ngx_http_core_loc_conf_t *clcf)
{
    ngx_http_iothub_twin_hub_t  *hub;

    if (conf->routes || conf->route_value) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"iothub_twin_route\" in location \"%V\" needs "
                           "\"iothub_twin_pass route\"", &clcf->name);
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

    hub = ngx_pcalloc(cf->pool, sizeof(ngx_http_iothub_twin_hub_t));
    if (hub == NULL) {
        return NGX_CONF_ERROR;
    }

    hub->name = conf->hub;
    hub->upstream = conf->pass_host;
    hub->policy = conf->policy;
    hub->keys = conf->keys;
    hub->key_slot = conf->key_slot;
    hub->token_lifetime = conf->token_lifetime;
    hub->api_version = conf->api_version;

    hub->signer = ngx_http_iothub_twin_signer(cf, hub);
    if (hub->signer == NULL) {
        return NGX_CONF_ERROR;
    }

    conf->single = hub;

    return NGX_CONF_OK;
}


/*
 * iothub_twin_pass route: each hub is an iothub_twin_hub_define; the
 * routes name hubs that exist, and no device ID is routed to two hubs.
 */

static char *
ngx_http_iothub_twin_merge_routes(ngx_conf_t *cf,
    ngx_http_iothub_twin_loc_conf_t *conf, ngx_http_core_loc_conf_t *clcf)
{
    int                                rc;
    ngx_uint_t                         i, j;
    ngx_http_iothub_twin_route_t      *rt;
    ngx_http_iothub_twin_main_conf_t  *imcf;

    if (conf->keys || conf->policy.len || conf->hub.len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"iothub_twin_pass route\" in location \"%V\" "
                           "takes each hub's name, policy and key from its "
                           "\"iothub_twin_hub_define\": remove "
                           "\"iothub_twin_hub\", \"iothub_twin_hub_policy\" "
                           "and \"iothub_twin_hub_key_file\" from the "
                           "location and the levels above it", &clcf->name);
        return NGX_CONF_ERROR;
    }

    if (conf->routes == NULL && conf->route_value == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"iothub_twin_pass route\" in location \"%V\" "
                           "needs \"iothub_twin_route\"", &clcf->name);
        return NGX_CONF_ERROR;
    }

    if (conf->route_value) {
        return NGX_CONF_OK;
    }

    imcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_iothub_twin_module);

    rt = conf->routes->elts;

    for (i = 0; i < conf->routes->nelts; i++) {

        if (rt[i].hub) {
            continue;   /* found for another location already */
        }

        rt[i].hub = ngx_http_iothub_twin_find_hub(imcf, rt[i].hub_name.data,
                                                  rt[i].hub_name.len);
        if (rt[i].hub == NULL) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "unknown hub \"%V\" in \"iothub_twin_route device "
                          "%V %V\" in %s:%ui: define it with "
                          "\"iothub_twin_hub_define\"",
                          &rt[i].hub_name, &rt[i].pattern, &rt[i].hub_name,
                          rt[i].file, rt[i].line);
            return NGX_CONF_ERROR;
        }
    }

    for (i = 0; i < conf->routes->nelts; i++) {
        for (j = i + 1; j < conf->routes->nelts; j++) {

            if (rt[i].hub == rt[j].hub) {
                continue;
            }

            rc = ngx_http_iothub_twin_route_overlap(rt[i].pattern.data,
                                                    rt[i].pattern.len,
                                                    rt[j].pattern.data,
                                                    rt[j].pattern.len);
            if (rc == -1) {
                return NGX_CONF_ERROR;
            }

            if (rc) {
                ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                              "\"iothub_twin_route device %V %V\" in %s:%ui "
                              "and \"iothub_twin_route device %V %V\" in "
                              "%s:%ui overlap: some device ID matches both "
                              "and would route to two hubs",
                              &rt[i].pattern, &rt[i].hub_name, rt[i].file,
                              rt[i].line, &rt[j].pattern, &rt[j].hub_name,
                              rt[j].file, rt[j].line);
                return NGX_CONF_ERROR;
            }
        }
    }

    return NGX_CONF_OK;
}


/* a defined hub by its name, without case: for nginx -t and for routing */

ngx_http_iothub_twin_hub_t *
ngx_http_iothub_twin_find_hub(ngx_http_iothub_twin_main_conf_t *imcf,
    u_char *name, size_t len)
{
    ngx_uint_t                   i;
    ngx_http_iothub_twin_hub_t **hp;

    hp = imcf->hubs.elts;

    for (i = 0; i < imcf->hubs.nelts; i++) {
        if (hp[i]->name.len == len
            && ngx_strncasecmp(hp[i]->name.data, name, len) == 0)
        {
            return hp[i];
        }
    }

    return NULL;
}


/*
 * The hubs a caller's rules name are hubs this location may send a twin
 * to: its one hub, the hubs its routes name, or with a routing value,
 * any defined hub.
 */

static char *
ngx_http_iothub_twin_check_policy_hubs(ngx_conf_t *cf,
    ngx_http_iothub_twin_loc_conf_t *conf, ngx_http_core_loc_conf_t *clcf)
{
    char                              err[512];
    const char                       *suffix;
    ngx_http_iothub_twin_known_hub_t  known;

    if (conf->callers == NULL) {
        return NGX_CONF_OK;
    }

    if (conf->single) {
        suffix = "(this location sends every twin to its one hub)";

    } else if (conf->route_value) {
        suffix = "(no \"iothub_twin_hub_define\" defines it)";

    } else {
        suffix = "(no \"iothub_twin_route\" of this location names it)";
    }

    known.conf = conf;
    known.imcf = ngx_http_conf_get_module_main_conf(cf,
                                                ngx_http_iothub_twin_module);

    if (ngx_http_iothub_twin_policy_check_hubs(conf->callers->policy,
                                               ngx_http_iothub_twin_known_hub,
                                               &known, suffix, err,
                                               sizeof(err))
        != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"iothub_twin_callers\" in location \"%V\": %s",
                           &clcf->name, err);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static int
ngx_http_iothub_twin_known_hub(void *data, const unsigned char *name,
    size_t len)
{
    ngx_http_iothub_twin_known_hub_t *known = data;

    ngx_uint_t                        i;
    ngx_http_iothub_twin_route_t     *rt;
    ngx_http_iothub_twin_loc_conf_t  *conf;

    conf = known->conf;

    if (conf->single) {
        return conf->single->name.len == len
               && ngx_strncasecmp(conf->single->name.data, (u_char *) name,
                                  len)
                  == 0;
    }

    if (conf->route_value) {
        return ngx_http_iothub_twin_find_hub(known->imcf, (u_char *) name,
                                             len)
               != NULL;
    }

    rt = conf->routes->elts;

    for (i = 0; i < conf->routes->nelts; i++) {
        if (rt[i].hub->name.len == len
            && ngx_strncasecmp(rt[i].hub->name.data, (u_char *) name, len)
               == 0)
        {
            return 1;
        }
    }

    return 0;
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


/* hubs with the same name, policy, key and lifetime share one token */

static ngx_http_iothub_twin_signer_t *
ngx_http_iothub_twin_signer(ngx_conf_t *cf, ngx_http_iothub_twin_hub_t *hub)
{
    ngx_uint_t                          i;
    ngx_http_iothub_twin_signer_t      *s, **sp;
    ngx_http_iothub_twin_main_conf_t   *imcf;

    imcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_iothub_twin_module);

    sp = imcf->signers.elts;

    for (i = 0; i < imcf->signers.nelts; i++) {
        s = sp[i];

        if (s->keys == hub->keys
            && s->slot == hub->key_slot
            && s->lifetime == hub->token_lifetime
            && s->hub.len == hub->name.len
            && ngx_strncasecmp(s->hub.data, hub->name.data, s->hub.len) == 0
            && s->policy.len == hub->policy.len
            && ngx_strncmp(s->policy.data, hub->policy.data, s->policy.len)
               == 0)
        {
            return s;
        }
    }

    s = ngx_pcalloc(cf->pool, sizeof(ngx_http_iothub_twin_signer_t));
    if (s == NULL) {
        return NULL;
    }

    s->hub = hub->name;
    s->policy = hub->policy;
    s->keys = hub->keys;
    s->slot = hub->key_slot;
    s->lifetime = hub->token_lifetime;

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
 * iothub_twin_pass https://host[:port] | route;
 *
 * Only a scheme and a host: the path is always the canonical one the
 * gateway builds, and variables could not be checked here.  "route":
 * each twin goes to the hub iothub_twin_route gives it, through that
 * hub's upstream, with its name as SNI, Host and the name its
 * certificate is verified against.
 */

char *
ngx_http_iothub_twin_pass(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_iothub_twin_loc_conf_t *itlcf = conf;

    char                      *rv;
    const char               **d;
    ngx_str_t                 *value, host, hostport;
    ngx_uint_t                 i;
    ngx_http_core_loc_conf_t  *clcf;

    if (itlcf->enabled != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == sizeof("route") - 1
        && ngx_strncmp(value[1].data, "route", sizeof("route") - 1) == 0)
    {
        itlcf->routed = 1;

        rv = ngx_http_iothub_twin_proxy_directive(cf, "proxy_pass",
                                          "https://$iothub_twin_hub_upstream",
                                          NULL);
        if (rv != NGX_CONF_OK) {
            return rv;
        }

        rv = ngx_http_iothub_twin_proxy_directive(cf, "proxy_ssl_name",
                                                  "$iothub_twin_hub", NULL);
        if (rv != NGX_CONF_OK) {
            return rv;
        }

        rv = ngx_http_iothub_twin_proxy_directive(cf, "proxy_set_header",
                                                  "Host", "$iothub_twin_hub");
        if (rv != NGX_CONF_OK) {
            return rv;
        }

    } else {
        itlcf->routed = 0;

        if (ngx_http_iothub_twin_pass_url(cf, &cmd->name, &value[1], &host,
                                          &hostport)
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }

        itlcf->pass_host = host;

        rv = ngx_http_iothub_twin_proxy_directive(cf, "proxy_pass",
                                                  (char *) value[1].data,
                                                  NULL);
        if (rv != NGX_CONF_OK) {
            return rv;
        }
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


/* "https://host[:port]", nothing else: the host, and host[:port] */

static ngx_int_t
ngx_http_iothub_twin_pass_url(ngx_conf_t *cf, ngx_str_t *name,
    ngx_str_t *url, ngx_str_t *host, ngx_str_t *hostport)
{
    u_char      *p, *end, *colon;
    ngx_uint_t   i;

    if (url->len <= sizeof("https://") - 1
        || ngx_strncasecmp(url->data, (u_char *) "https://",
                           sizeof("https://") - 1)
           != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid URL \"%V\" in \"%V\": the hub is reached "
                           "over https only", url, name);
        return NGX_ERROR;
    }

    p = url->data + sizeof("https://") - 1;
    end = url->data + url->len;

    for (i = 0; p + i < end; i++) {
        if (p[i] == '/' || p[i] == '$' || p[i] == '?' || p[i] == '@'
            || p[i] == '#')
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid URL \"%V\" in \"%V\": give only "
                               "\"https://host[:port]\", without a path or "
                               "variables", url, name);
            return NGX_ERROR;
        }
    }

    colon = ngx_strlchr(p, end, ':');

    host->data = p;
    host->len = (colon ? colon : end) - p;

    hostport->data = p;
    hostport->len = end - p;

    return NGX_OK;
}


/*
 * iothub_twin_hub_define host policy=name key_file=path
 *     [pass=https://upstream[:port]] [key_slot=primary|secondary]
 *     [token_lifetime=time] [api_version=date];
 *
 * One hub a routed location may send twins to, named by its host name
 * (what the SAS token's sr, SNI, Host and $iothub_twin_hub say), reached
 * through pass= (an upstream{} or host:port; by default the host itself
 * on 443).
 */

char *
ngx_http_iothub_twin_hub_define(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_iothub_twin_main_conf_t *imcf = conf;

    u_char                         c;
    time_t                         t;
    ngx_str_t                     *value, v, host, key_file, pass;
    ngx_url_t                      u;
    ngx_uint_t                     i;
    ngx_http_iothub_twin_hub_t    *hub, **hp;

    value = cf->args->elts;

    for (i = 0; i < value[1].len; i++) {
        c = value[1].data[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '-' || c == '.'))
        {
            break;
        }
    }

    if (value[1].len == 0 || value[1].len > 253 || i < value[1].len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid hub \"%V\" in \"%V\": expected the "
                           "hub's host name, such as "
                           "myhub.azure-devices.net", &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (ngx_http_iothub_twin_find_hub(imcf, value[1].data, value[1].len)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate hub \"%V\" in \"%V\"",
                           &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    hub = ngx_pcalloc(cf->pool, sizeof(ngx_http_iothub_twin_hub_t));
    if (hub == NULL) {
        return NGX_CONF_ERROR;
    }

    hub->name = value[1];
    hub->token_lifetime = 3600;
    ngx_str_set(&hub->api_version, NGX_HTTP_IOTHUB_TWIN_API_VERSION);
    hub->file = cf->conf_file->file.name.data;
    hub->line = cf->conf_file->line;

    ngx_str_null(&key_file);
    ngx_str_null(&pass);

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "policy=", 7) == 0
            && value[i].len > 7 && hub->policy.len == 0)
        {
            hub->policy.data = value[i].data + 7;
            hub->policy.len = value[i].len - 7;
            continue;
        }

        if (ngx_strncmp(value[i].data, "key_file=", 9) == 0
            && value[i].len > 9 && key_file.len == 0)
        {
            key_file.data = value[i].data + 9;
            key_file.len = value[i].len - 9;
            continue;
        }

        if (ngx_strncmp(value[i].data, "pass=", 5) == 0 && pass.len == 0) {
            v.data = value[i].data + 5;
            v.len = value[i].len - 5;

            if (ngx_http_iothub_twin_pass_url(cf, &cmd->name, &v, &host,
                                              &pass)
                != NGX_OK)
            {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strcmp(value[i].data, "key_slot=primary") == 0) {
            hub->key_slot = 0;
            continue;
        }

        if (ngx_strcmp(value[i].data, "key_slot=secondary") == 0) {
            hub->key_slot = 1;
            continue;
        }

        if (ngx_strncmp(value[i].data, "token_lifetime=", 15) == 0) {
            v.data = value[i].data + 15;
            v.len = value[i].len - 15;

            t = ngx_parse_time(&v, 1);

            /* as iothub_twin_token_lifetime */

            if (t == (time_t) NGX_ERROR || t < 10 || t > 365 * 86400) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid value \"%V\" in \"%V\": "
                                   "expected a time from 10s to 365d",
                                   &value[i], &cmd->name);
                return NGX_CONF_ERROR;
            }

            hub->token_lifetime = t;
            continue;
        }

        if (ngx_strncmp(value[i].data, "api_version=", 12) == 0) {
            if (!ngx_http_iothub_twin_api_version_valid(value[i].data + 12,
                                                        value[i].len - 12))
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid value \"%V\" in \"%V\": "
                                   "expected a date like 2021-04-12",
                                   &value[i], &cmd->name);
                return NGX_CONF_ERROR;
            }

            hub->api_version.data = value[i].data + 12;
            hub->api_version.len = value[i].len - 12;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" in \"%V %V\"",
                           &value[i], &cmd->name, &value[1]);
        return NGX_CONF_ERROR;
    }

    if (hub->policy.len == 0 || key_file.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V %V\" needs policy=<SAS policy name> and "
                           "key_file=<path>", &cmd->name, &value[1]);
        return NGX_CONF_ERROR;
    }

    hub->keys = ngx_http_iothub_twin_read_keys(cf, &cmd->name, &key_file);
    if (hub->keys == NULL) {
        return NGX_CONF_ERROR;
    }

    if (hub->key_slot >= hub->keys->nkeys) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V %V\": key_slot=secondary, but key file "
                           "\"%V\" holds no secondary key",
                           &cmd->name, &value[1], &hub->keys->file);
        return NGX_CONF_ERROR;
    }

    /* the upstream, as a proxy_pass to it would add it */

    if (pass.len == 0) {
        pass = hub->name;
    }

    hub->upstream = pass;

    /*
     * A kept-alive connection is verified for the hub it was opened for
     * and reused by its upstream's next request: two hubs on one upstream
     * could send one hub's token to the other.
     */

    hp = imcf->hubs.elts;

    for (i = 0; i < imcf->hubs.nelts; i++) {
        if (hp[i]->upstream.len == pass.len
            && ngx_strncasecmp(hp[i]->upstream.data, pass.data, pass.len)
               == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V %V\" passes to \"https://%V\" as hub "
                               "\"%V\" defined in %s:%ui does: each hub "
                               "needs its own upstream",
                               &cmd->name, &value[1], &pass, &hp[i]->name,
                               hp[i]->file, hp[i]->line);
            return NGX_CONF_ERROR;
        }
    }

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = pass;
    u.default_port = 443;
    u.uri_part = 1;
    u.no_resolve = 1;

    if (ngx_http_upstream_add(cf, &u, 0) == NULL) {
        return NGX_CONF_ERROR;
    }

    hub->signer = ngx_http_iothub_twin_signer(cf, hub);
    if (hub->signer == NULL) {
        return NGX_CONF_ERROR;
    }

    hp = ngx_array_push(&imcf->hubs);
    if (hp == NULL) {
        return NGX_CONF_ERROR;
    }

    *hp = hub;

    return NGX_CONF_OK;
}


/*
 * iothub_twin_route device pattern hub;
 * iothub_twin_route variable value;
 */

char *
ngx_http_iothub_twin_route(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_iothub_twin_loc_conf_t *itlcf = conf;

    const char                        *err;
    ngx_str_t                         *value;
    ngx_http_iothub_twin_route_t      *rt;
    ngx_http_compile_complex_value_t   ccv;

    value = cf->args->elts;

    if (cf->args->nelts == 3
        && ngx_strcmp(value[1].data, "variable") == 0)
    {
        if (itlcf->route_value || itlcf->routes) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V variable\" cannot be combined with "
                               "another \"%V\" in the same location",
                               &cmd->name, &cmd->name);
            return NGX_CONF_ERROR;
        }

        itlcf->route_value = ngx_palloc(cf->pool,
                                        sizeof(ngx_http_complex_value_t));
        if (itlcf->route_value == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

        ccv.cf = cf;
        ccv.value = &value[2];
        ccv.complex_value = itlcf->route_value;

        if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    if (cf->args->nelts != 4 || ngx_strcmp(value[1].data, "device") != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\": expected "
                           "\"device <pattern> <hub>\" or \"variable "
                           "<value>\"", &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (itlcf->route_value) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V device\" cannot be combined with "
                           "\"%V variable\" in the same location",
                           &cmd->name, &cmd->name);
        return NGX_CONF_ERROR;
    }

    err = ngx_http_iothub_twin_route_check(value[2].data, value[2].len);
    if (err) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid pattern \"%V\" in \"%V\": it %s",
                           &value[2], &cmd->name, err);
        return NGX_CONF_ERROR;
    }

    if (itlcf->routes == NULL) {
        itlcf->routes = ngx_array_create(cf->pool, 4,
                                         sizeof(ngx_http_iothub_twin_route_t));
        if (itlcf->routes == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    rt = ngx_array_push(itlcf->routes);
    if (rt == NULL) {
        return NGX_CONF_ERROR;
    }

    rt->pattern = value[2];
    rt->hub_name = value[3];
    rt->hub = NULL;
    rt->file = cf->conf_file->file.name.data;
    rt->line = cf->conf_file->line;

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

    ngx_str_t  *value;

    if (itlcf->keys != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    itlcf->keys = ngx_http_iothub_twin_read_keys(cf, &cmd->name, &value[1]);
    if (itlcf->keys == NULL) {
        itlcf->keys = NGX_CONF_UNSET_PTR;
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* a key file, read once here; messages name the file, never a key */

static ngx_http_iothub_twin_keys_t *
ngx_http_iothub_twin_read_keys(ngx_conf_t *cf, ngx_str_t *name,
    ngx_str_t *path)
{
    char                         *rv;
    u_char                        buf[NGX_HTTP_IOTHUB_TWIN_KEY_FILE_MAX + 1];
    ssize_t                       n;
    ngx_fd_t                      fd;
    ngx_file_info_t               fi;
    ngx_http_iothub_twin_keys_t  *keys;

    keys = ngx_pcalloc(cf->pool, sizeof(ngx_http_iothub_twin_keys_t));
    if (keys == NULL) {
        return NULL;
    }

    keys->file = *path;

    if (ngx_conf_full_name(cf->cycle, &keys->file, 1) != NGX_OK) {
        return NULL;
    }

    fd = ngx_open_file(keys->file.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"%V\": cannot open key file \"%V\"",
                           name, &keys->file);
        return NULL;
    }

    rv = NGX_CONF_ERROR;

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"%V\": cannot stat key file \"%V\"",
                           name, &keys->file);
        goto done;
    }

    if (ngx_file_size(&fi) > NGX_HTTP_IOTHUB_TWIN_KEY_FILE_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\": key file \"%V\" is larger than %d bytes",
                           name, &keys->file,
                           NGX_HTTP_IOTHUB_TWIN_KEY_FILE_MAX);
        goto done;
    }

    n = ngx_read_fd(fd, buf, NGX_HTTP_IOTHUB_TWIN_KEY_FILE_MAX);
    if (n == -1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"%V\": cannot read key file \"%V\"",
                           name, &keys->file);
        goto done;
    }

    rv = ngx_http_iothub_twin_parse_keys(cf, name, keys, buf, n);

    ngx_explicit_memzero(buf, sizeof(buf));

done:

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_ALERT, cf, ngx_errno,
                           ngx_close_file_n " \"%V\" failed", &keys->file);
    }

    return rv == NGX_CONF_OK ? keys : NULL;
}


/*
 * One base64 key a line: the primary, then optionally the secondary.
 * Blank lines and lines starting with '#' are skipped.  Messages name the
 * line, never its content.
 */

static char *
ngx_http_iothub_twin_parse_keys(ngx_conf_t *cf, ngx_str_t *name,
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
                               "\"%V\": key file \"%V\" holds more than "
                               "two keys (line %ui)", name, &keys->file,
                               line);
            return NGX_CONF_ERROR;
        }

        n = ngx_http_iothub_twin_sas_key_decode(s, e - s,
                                                keys->key[keys->nkeys]);
        if (n == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\": key file \"%V\" line %ui is not a "
                               "base64 key", name, &keys->file, line);
            return NGX_CONF_ERROR;
        }

        keys->key_len[keys->nkeys++] = n;
    }

    if (keys->nkeys == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\": key file \"%V\" holds no key", name,
                           &keys->file);
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
