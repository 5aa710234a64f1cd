
/*
 * Copyright (C) ngx_iothub_twin developers
 *
 * Twin paths: decoding once, the hub's ID rules, canonical re-encoding,
 * and the query a caller may send.
 */


#include "tap.h"
#include "ngx_http_iothub_twin_id.h"


#define A16  "aaaaaaaaaaaaaaaa"
#define A32  A16 A16
#define A64  A32 A32


static void test_paths(void);
static void test_query(void);
static void test_encode(void);


int
main(void)
{
    test_paths();
    test_query();
    test_encode();

    return tap_done();
}


static void
test_paths(void)
{
    size_t                            i;
    char                              name[512];
    ngx_http_iothub_twin_target_t     t;
    ngx_http_iothub_twin_target_rc_e  rc;

    static const struct {
        const char                        *path;
        ngx_http_iothub_twin_target_rc_e   rc;
        ngx_http_iothub_twin_id_rc_e       id_rc;
        const char                        *device;
        const char                        *module;
        const char                        *canonical;
    } cases[] = {
        { "/twins/dev1", NGX_HTTP_IOTHUB_TWIN_TARGET_OK, 0,
          "dev1", NULL, "/twins/dev1" },
        { "/twins/dev1/modules/mod1", NGX_HTTP_IOTHUB_TWIN_TARGET_OK, 0,
          "dev1", "mod1", "/twins/dev1/modules/mod1" },

        /* what Node's encodeURIComponent sends for every special char */
        { "/twins/dev%23%3F%25%24'()*%2B%2C%3B%3D%40!%3A-._",
          NGX_HTTP_IOTHUB_TWIN_TARGET_OK, 0,
          "dev#?%$'()*+,;=@!:-._", NULL,
          "/twins/dev%23%3F%25%24'()*%2B%2C%3B%3D%40!%3A-._" },

        /*
         * the C SDK sends IDs unencoded: decoded once, encoded canonically
         * (a raw '#' or '?' cannot arrive that way: below and in the query)
         */
        { "/twins/a+b$c/modules/m:x@y", NGX_HTTP_IOTHUB_TWIN_TARGET_OK, 0,
          "a+b$c", "m:x@y", "/twins/a%2Bb%24c/modules/m%3Ax%40y" },

        /* lowercase hex escapes are decoded, and re-encoded uppercase */
        { "/twins/a%2b", NGX_HTTP_IOTHUB_TWIN_TARGET_OK, 0,
          "a+", NULL, "/twins/a%2B" },

        /* escapes of plain characters are normalised away */
        { "/twins/%61bc", NGX_HTTP_IOTHUB_TWIN_TARGET_OK, 0,
          "abc", NULL, "/twins/abc" },

        { "/twins/$edgeAgent/modules/$edgeHub",
          NGX_HTTP_IOTHUB_TWIN_TARGET_OK, 0,
          "$edgeAgent", "$edgeHub", "/twins/%24edgeAgent/modules/%24edgeHub" },

        { "/twins/%2E%2E.", NGX_HTTP_IOTHUB_TWIN_TARGET_OK, 0,
          "...", NULL, "/twins/..." },

        { "/twins/a%2Fb", NGX_HTTP_IOTHUB_TWIN_TARGET_BAD_ID,
          NGX_HTTP_IOTHUB_TWIN_ID_SLASH, NULL, NULL, NULL },
        { "/twins/a%2fb", NGX_HTTP_IOTHUB_TWIN_TARGET_BAD_ID,
          NGX_HTTP_IOTHUB_TWIN_ID_SLASH, NULL, NULL, NULL },
        /*
         * decoded exactly once: what still reads as an escape is an ID of
         * '%' and characters, and goes upstream with '%' as %25
         */
        { "/twins/%2541", NGX_HTTP_IOTHUB_TWIN_TARGET_OK, 0,
          "%41", NULL, "/twins/%2541" },
        { "/twins/a%2541", NGX_HTTP_IOTHUB_TWIN_TARGET_OK, 0,
          "a%41", NULL, "/twins/a%2541" },
        { "/twins/a%252Fb", NGX_HTTP_IOTHUB_TWIN_TARGET_OK, 0,
          "a%2Fb", NULL, "/twins/a%252Fb" },
        { "/twins/a%252fb", NGX_HTTP_IOTHUB_TWIN_TARGET_OK, 0,
          "a%2fb", NULL, "/twins/a%252fb" },
        { "/twins/dev1%250d%250a/modules/m%25252F",
          NGX_HTTP_IOTHUB_TWIN_TARGET_OK, 0,
          "dev1%0d%0a", "m%252F", "/twins/dev1%250d%250a/modules/m%25252F" },
        { "/twins/%", NGX_HTTP_IOTHUB_TWIN_TARGET_BAD_ID,
          NGX_HTTP_IOTHUB_TWIN_ID_BAD_ESCAPE, NULL, NULL, NULL },
        { "/twins/%25", NGX_HTTP_IOTHUB_TWIN_TARGET_OK, 0,
          "%", NULL, "/twins/%25" },
        { "/twins/%2F", NGX_HTTP_IOTHUB_TWIN_TARGET_BAD_ID,
          NGX_HTTP_IOTHUB_TWIN_ID_SLASH, NULL, NULL, NULL },
        { "/twins/d/modules/%2f", NGX_HTTP_IOTHUB_TWIN_TARGET_BAD_ID,
          NGX_HTTP_IOTHUB_TWIN_ID_SLASH, NULL, NULL, NULL },
        { "/twins/%250d%0d", NGX_HTTP_IOTHUB_TWIN_TARGET_BAD_ID,
          NGX_HTTP_IOTHUB_TWIN_ID_BAD_CHAR, NULL, NULL, NULL },

        /* a raw '#' starts a fragment, wherever it is; %23 is an ID char */
        { "/twins/dev1#frag", NGX_HTTP_IOTHUB_TWIN_TARGET_FRAGMENT, 0,
          NULL, NULL, NULL },
        { "/twins/dev1/modules/m#", NGX_HTTP_IOTHUB_TWIN_TARGET_FRAGMENT, 0,
          NULL, NULL, NULL },
        { "/twins/#/modules/m", NGX_HTTP_IOTHUB_TWIN_TARGET_FRAGMENT, 0,
          NULL, NULL, NULL },
        { "/devices/x#", NGX_HTTP_IOTHUB_TWIN_TARGET_FRAGMENT, 0,
          NULL, NULL, NULL },
        { "/twins/dev1%23frag", NGX_HTTP_IOTHUB_TWIN_TARGET_OK, 0,
          "dev1#frag", NULL, "/twins/dev1%23frag" },
        { "/twins/a%00b", NGX_HTTP_IOTHUB_TWIN_TARGET_BAD_ID,
          NGX_HTTP_IOTHUB_TWIN_ID_BAD_CHAR, NULL, NULL, NULL },
        { "/twins/caf%C3%A9", NGX_HTTP_IOTHUB_TWIN_TARGET_BAD_ID,
          NGX_HTTP_IOTHUB_TWIN_ID_BAD_CHAR, NULL, NULL, NULL },
        { "/twins/caf\xc3\xa9", NGX_HTTP_IOTHUB_TWIN_TARGET_BAD_ID,
          NGX_HTTP_IOTHUB_TWIN_ID_BAD_CHAR, NULL, NULL, NULL },
        { "/twins/a%20b", NGX_HTTP_IOTHUB_TWIN_TARGET_BAD_ID,
          NGX_HTTP_IOTHUB_TWIN_ID_BAD_CHAR, NULL, NULL, NULL },
        { "/twins/a~b", NGX_HTTP_IOTHUB_TWIN_TARGET_BAD_ID,
          NGX_HTTP_IOTHUB_TWIN_ID_BAD_CHAR, NULL, NULL, NULL },
        { "/twins/a%", NGX_HTTP_IOTHUB_TWIN_TARGET_BAD_ID,
          NGX_HTTP_IOTHUB_TWIN_ID_BAD_ESCAPE, NULL, NULL, NULL },
        { "/twins/a%4", NGX_HTTP_IOTHUB_TWIN_TARGET_BAD_ID,
          NGX_HTTP_IOTHUB_TWIN_ID_BAD_ESCAPE, NULL, NULL, NULL },
        { "/twins/a%zz", NGX_HTTP_IOTHUB_TWIN_TARGET_BAD_ID,
          NGX_HTTP_IOTHUB_TWIN_ID_BAD_ESCAPE, NULL, NULL, NULL },
        { "/twins/.", NGX_HTTP_IOTHUB_TWIN_TARGET_BAD_ID,
          NGX_HTTP_IOTHUB_TWIN_ID_DOT_SEGMENT, NULL, NULL, NULL },
        { "/twins/..", NGX_HTTP_IOTHUB_TWIN_TARGET_BAD_ID,
          NGX_HTTP_IOTHUB_TWIN_ID_DOT_SEGMENT, NULL, NULL, NULL },
        { "/twins/%2e%2e", NGX_HTTP_IOTHUB_TWIN_TARGET_BAD_ID,
          NGX_HTTP_IOTHUB_TWIN_ID_DOT_SEGMENT, NULL, NULL, NULL },
        { "/twins/d/modules/..", NGX_HTTP_IOTHUB_TWIN_TARGET_BAD_ID,
          NGX_HTTP_IOTHUB_TWIN_ID_DOT_SEGMENT, NULL, NULL, NULL },
        { "/twins/", NGX_HTTP_IOTHUB_TWIN_TARGET_BAD_ID,
          NGX_HTTP_IOTHUB_TWIN_ID_EMPTY, NULL, NULL, NULL },
        { "/twins/d/modules/", NGX_HTTP_IOTHUB_TWIN_TARGET_BAD_ID,
          NGX_HTTP_IOTHUB_TWIN_ID_EMPTY, NULL, NULL, NULL },
        /* any other shape is not a twin path: 404, never an ID with '/' */
        { "/twins/d/", NGX_HTTP_IOTHUB_TWIN_TARGET_NOT_TWIN, 0,
          NULL, NULL, NULL },
        { "/twins/a/b", NGX_HTTP_IOTHUB_TWIN_TARGET_NOT_TWIN, 0,
          NULL, NULL, NULL },
        { "/twins/lab-42/things/x", NGX_HTTP_IOTHUB_TWIN_TARGET_NOT_TWIN, 0,
          NULL, NULL, NULL },
        { "/twins/d/modules", NGX_HTTP_IOTHUB_TWIN_TARGET_NOT_TWIN, 0,
          NULL, NULL, NULL },
        { "/twins/d/modules/m/x", NGX_HTTP_IOTHUB_TWIN_TARGET_NOT_TWIN, 0,
          NULL, NULL, NULL },
        { "/twins/d/modules/m/", NGX_HTTP_IOTHUB_TWIN_TARGET_NOT_TWIN, 0,
          NULL, NULL, NULL },
        { "/twins/d/Modules/m", NGX_HTTP_IOTHUB_TWIN_TARGET_NOT_TWIN, 0,
          NULL, NULL, NULL },
        { "/twins/a%2/b", NGX_HTTP_IOTHUB_TWIN_TARGET_NOT_TWIN, 0,
          NULL, NULL, NULL },
        { "/twins//modules/m", NGX_HTTP_IOTHUB_TWIN_TARGET_BAD_ID,
          NGX_HTTP_IOTHUB_TWIN_ID_EMPTY, NULL, NULL, NULL },
        { "/twins", NGX_HTTP_IOTHUB_TWIN_TARGET_NOT_TWIN, 0,
          NULL, NULL, NULL },
        { "/devices/d", NGX_HTTP_IOTHUB_TWIN_TARGET_NOT_TWIN, 0,
          NULL, NULL, NULL },
        { "/Twins/d", NGX_HTTP_IOTHUB_TWIN_TARGET_NOT_TWIN, 0,
          NULL, NULL, NULL },
        { "//twins/d", NGX_HTTP_IOTHUB_TWIN_TARGET_NOT_TWIN, 0,
          NULL, NULL, NULL },

        /* 128 characters pass, 129 do not; escapes count decoded */
        { "/twins/" A64 A32 A16 "aaaaaaaaaaaaaaa%41",
          NGX_HTTP_IOTHUB_TWIN_TARGET_OK, 0,
          A64 A32 A16 "aaaaaaaaaaaaaaaA", NULL,
          "/twins/" A64 A32 A16 "aaaaaaaaaaaaaaaA" },
        { "/twins/" A64 A32 A16 "aaaaaaaaaaaaaaaa%41",
          NGX_HTTP_IOTHUB_TWIN_TARGET_BAD_ID,
          NGX_HTTP_IOTHUB_TWIN_ID_TOO_LONG, NULL, NULL, NULL },
        { "/twins/d/modules/" A64 A32 A16 "aaaaaaaaaaaaaaaa",
          NGX_HTTP_IOTHUB_TWIN_TARGET_OK, 0,
          "d", A64 A32 A16 "aaaaaaaaaaaaaaaa",
          "/twins/d/modules/" A64 A32 A16 "aaaaaaaaaaaaaaaa" },
        { "/twins/d/modules/" A64 A32 A16 "aaaaaaaaaaaaaaaaa",
          NGX_HTTP_IOTHUB_TWIN_TARGET_BAD_ID,
          NGX_HTTP_IOTHUB_TWIN_ID_TOO_LONG, NULL, NULL, NULL },
    };

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rc = ngx_http_iothub_twin_target_parse(
                 (const unsigned char *) cases[i].path,
                 strlen(cases[i].path), &t);

        snprintf(name, sizeof(name), "%.60s: result %d", cases[i].path,
                 (int) cases[i].rc);
        tap_ok(rc == cases[i].rc, "%s", name);

        if (rc == NGX_HTTP_IOTHUB_TWIN_TARGET_BAD_ID) {
            snprintf(name, sizeof(name), "%.60s: %s", cases[i].path,
                     ngx_http_iothub_twin_id_strerror(cases[i].id_rc));
            tap_ok(t.id_rc == cases[i].id_rc, "%s", name);
        }

        if (rc != NGX_HTTP_IOTHUB_TWIN_TARGET_OK || cases[i].device == NULL) {
            continue;
        }

        snprintf(name, sizeof(name), "%.60s: device ID", cases[i].path);
        tap_is_str((char *) t.device, t.device_len, cases[i].device, name);

        snprintf(name, sizeof(name), "%.60s: module ID", cases[i].path);
        if (cases[i].module) {
            tap_is_str((char *) t.module, t.module_len, cases[i].module, name);

        } else {
            tap_ok(!t.has_module, "%s: no module", name);
        }

        snprintf(name, sizeof(name), "%.60s: canonical path", cases[i].path);
        tap_is_str((char *) t.path, t.path_len, cases[i].canonical, name);
    }
}


static void
test_query(void)
{
    size_t       i;
    const char  *err;

    static const struct {
        const char  *args;
        int          ok;
    } cases[] = {
        { "", 1 },
        { "api-version=2021-04-12", 1 },
        { "api-version=2020-09-30", 1 },
        { "api-version=2021-04-12-preview", 1 },
        { "api-version=2021-04-12&api-version=2021-04-12", 0 },
        { "api-version=", 0 },
        { "api-version=latest", 0 },
        { "api-version=2021-04-12&", 0 },
        { "b?api-version=2021-04-12", 0 },
        { "x=1", 0 },
        { "api-version=2021-04-12&x=1", 0 },
        { "API-VERSION=2021-04-12", 0 },
        { "api-version=2021-04-12#frag", 0 },
        { "#", 0 },
    };

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        err = ngx_http_iothub_twin_query_check(
                  (const unsigned char *) cases[i].args,
                  strlen(cases[i].args));

        tap_ok((err == NULL) == cases[i].ok, cases[i].ok
               ? "query '%s' accepted" : "query '%s' refused", cases[i].args);
    }
}


static void
test_encode(void)
{
    int            c;
    size_t         n;
    unsigned char  in[2], out[4];

    /* every allowed ID character, encoded as encodeURIComponent does */

    static const char  plain[] = "-_.!*'()";

    for (c = 0x21; c < 0x7f; c++) {
        if (!ngx_http_iothub_twin_id_char((unsigned char) c)) {
            continue;
        }

        in[0] = (unsigned char) c;
        in[1] = '\0';
        n = ngx_http_iothub_twin_id_encode(out, in, 1);

        if ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z')
            || (c >= 'a' && c <= 'z') || strchr(plain, c))
        {
            if (n != 1 || out[0] != c) {
                tap_ok(0, "'%s' stays plain", (char *) in);
                return;
            }

        } else if (n != 3 || out[0] != '%') {
            tap_ok(0, "'%s' is escaped", (char *) in);
            return;
        }
    }

    tap_ok(1, "allowed ID characters encode as encodeURIComponent does", NULL);
}
