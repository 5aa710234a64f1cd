
/*
 * Copyright (C) ngx_iothub_twin developers
 *
 * If-Match as the hub understands it, and the etag and version found in
 * the twin the hub returns.
 */


#include "tap.h"
#include "ngx_http_iothub_twin_etag.h"


static void test_if_match(void);
static void test_twin_info(void);


int
main(void)
{
    test_if_match();
    test_twin_info();

    return tap_done();
}


static void
test_if_match(void)
{
    size_t                           i, len;
    char                             name[256];
    unsigned char                    out[NGX_HTTP_IOTHUB_TWIN_IF_MATCH_MAX + 2];
    ngx_http_iothub_twin_if_match_e  kind;

    static const struct {
        const char                       *in;
        ngx_http_iothub_twin_if_match_e   kind;
        const char                       *out;
    } cases[] = {
        { "\"AAAAAAAAAAc=\"", NGX_HTTP_IOTHUB_TWIN_IF_MATCH_QUOTED,
          "\"AAAAAAAAAAc=\"" },
        { "  \"AAAAAAAAAAc=\"\t", NGX_HTTP_IOTHUB_TWIN_IF_MATCH_QUOTED,
          "\"AAAAAAAAAAc=\"" },
        { "AAAAAAAAAAc=", NGX_HTTP_IOTHUB_TWIN_IF_MATCH_BARE,
          "\"AAAAAAAAAAc=\"" },
        { "*", NGX_HTTP_IOTHUB_TWIN_IF_MATCH_ANY, "*" },
        { "\"*\"", NGX_HTTP_IOTHUB_TWIN_IF_MATCH_ANY_QUOTED, "\"*\"" },
        { "W/\"AAAAAAAAAAc=\"", NGX_HTTP_IOTHUB_TWIN_IF_MATCH_WEAK,
          "W/\"AAAAAAAAAAc=\"" },
        { "", NGX_HTTP_IOTHUB_TWIN_IF_MATCH_MALFORMED, NULL },
        { "   ", NGX_HTTP_IOTHUB_TWIN_IF_MATCH_MALFORMED, NULL },
        { "\"\"", NGX_HTTP_IOTHUB_TWIN_IF_MATCH_MALFORMED, NULL },
        { "\"abc", NGX_HTTP_IOTHUB_TWIN_IF_MATCH_MALFORMED, NULL },
        { "abc\"", NGX_HTTP_IOTHUB_TWIN_IF_MATCH_MALFORMED, NULL },
        { "\"a\"b\"", NGX_HTTP_IOTHUB_TWIN_IF_MATCH_MALFORMED, NULL },
        { "\"a\", \"b\"", NGX_HTTP_IOTHUB_TWIN_IF_MATCH_MALFORMED, NULL },
        { "a, b", NGX_HTTP_IOTHUB_TWIN_IF_MATCH_MALFORMED, NULL },
        { "a b", NGX_HTTP_IOTHUB_TWIN_IF_MATCH_MALFORMED, NULL },
        { "W/abc", NGX_HTTP_IOTHUB_TWIN_IF_MATCH_MALFORMED, NULL },
        { "W/\"\"", NGX_HTTP_IOTHUB_TWIN_IF_MATCH_MALFORMED, NULL },
        { "**", NGX_HTTP_IOTHUB_TWIN_IF_MATCH_BARE, "\"**\"" },
        { "\"caf\xc3\xa9\"", NGX_HTTP_IOTHUB_TWIN_IF_MATCH_MALFORMED, NULL },
        { "\"a\x01\"", NGX_HTTP_IOTHUB_TWIN_IF_MATCH_MALFORMED, NULL },
    };

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        kind = ngx_http_iothub_twin_if_match(
                   (const unsigned char *) cases[i].in, strlen(cases[i].in),
                   out, &len);

        snprintf(name, sizeof(name), "If-Match [%s] is %s", cases[i].in,
                 ngx_http_iothub_twin_if_match_name(cases[i].kind));
        tap_ok(kind == cases[i].kind, "%s", name);

        if (cases[i].out && kind == cases[i].kind) {
            snprintf(name, sizeof(name), "If-Match [%s] forwarded",
                     cases[i].in);
            tap_is_str((char *) out, len, cases[i].out, name);
        }
    }

    {
        char  big[NGX_HTTP_IOTHUB_TWIN_IF_MATCH_MAX + 2];

        memset(big, 'a', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';

        kind = ngx_http_iothub_twin_if_match((const unsigned char *) big,
                                             strlen(big), out, &len);
        tap_ok(kind == NGX_HTTP_IOTHUB_TWIN_IF_MATCH_MALFORMED,
               "If-Match longer than the limit is malformed", NULL);

        big[NGX_HTTP_IOTHUB_TWIN_IF_MATCH_MAX] = '\0';
        kind = ngx_http_iothub_twin_if_match((const unsigned char *) big,
                                             strlen(big), out, &len);
        tap_ok(kind == NGX_HTTP_IOTHUB_TWIN_IF_MATCH_BARE
               && len == NGX_HTTP_IOTHUB_TWIN_IF_MATCH_MAX + 2,
               "If-Match at the limit is quoted", NULL);
    }
}


static void
test_twin_info(void)
{
    size_t                            i;
    char                              name[256];
    ngx_http_iothub_twin_twin_info_t  info;

    static const struct {
        const char  *json;
        int          rc;
        const char  *etag;
        long long    version;
    } cases[] = {
        { "{\"deviceId\":\"d\",\"etag\":\"AAAAAAAAAAc=\",\"version\":7}",
          0, "AAAAAAAAAAc=", 7 },
        { " { \"etag\" : \"AAAAAAAAAAE=\" , \"version\" : 12 } ",
          0, "AAAAAAAAAAE=", 12 },
        { "{\"tags\":{\"etag\":\"inner\",\"version\":1},"
          "\"properties\":{\"desired\":{\"x\":\"}{\\\"\"}},"
          "\"etag\":\"outer\",\"version\":3}", 0, "outer", 3 },
        { "{\"a\":[1,{\"etag\":\"no\"},\"]\"],\"etag\":\"yes\"}",
          0, "yes", -1 },
        { "{\"version\":5}", 0, NULL, 5 },
        { "{}", 0, NULL, -1 },
        { "[1]", -1, NULL, -1 },
        { "", -1, NULL, -1 },
        { "{\"etag\":\"x\"", -1, "x", -1 },
        { "{\"etag\":\"unterminated}", -1, NULL, -1 },
    };

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int  rc;

        rc = ngx_http_iothub_twin_twin_info(
                 (const unsigned char *) cases[i].json, strlen(cases[i].json),
                 &info);

        snprintf(name, sizeof(name), "twin info [%.50s]: result",
                 cases[i].json);
        tap_ok(rc == cases[i].rc, "%s", name);

        if (rc != 0) {
            continue;
        }

        snprintf(name, sizeof(name), "twin info [%.50s]: etag", cases[i].json);
        if (cases[i].etag) {
            tap_is_str((const char *) info.etag, info.etag_len, cases[i].etag,
                       name);

        } else {
            tap_ok(info.etag == NULL, "%s", name);
        }

        snprintf(name, sizeof(name), "twin info [%.50s]: version",
                 cases[i].json);
        tap_ok(cases[i].version < 0 ? !info.has_version
               : info.has_version && info.version == cases[i].version,
               "%s", name);
    }
}
