
/*
 * Copyright (C) ngx_iothub_twin developers
 *
 * SAS signing against the known-answer vectors the Node service SDK
 * produced (t/data/sas-vectors.txt), and verification of callers' tokens.
 */


#include <stdlib.h>
#include <time.h>

#include "tap.h"
#include "ngx_http_iothub_twin_sas.h"


static void test_vectors(const char *file);
static void test_vector(char *line);
static void test_key_decode(void);
static void test_verify(void);


int
main(int argc, char **argv)
{
    test_vectors(argc > 1 ? argv[1] : "t/data/sas-vectors.txt");
    test_key_decode();
    test_verify();

    return tap_done();
}


static void
test_vectors(const char *file)
{
    int    n;
    FILE  *f;
    char   line[2048];

    f = fopen(file, "r");
    if (f == NULL) {
        tap_ok(0, "open %s", file);
        return;
    }

    n = 0;

    while (fgets(line, sizeof(line), f)) {
        if (line[0] == '#' || line[0] == '\n') {
            continue;
        }

        line[strcspn(line, "\r\n")] = '\0';
        test_vector(line);
        n++;
    }

    fclose(f);

    tap_ok(n >= 3, "%s holds the three vectors", file);
}


/* host policy key expiry sig token, tab-separated */

static void
test_vector(char *line)
{
    char           *col[6], *p;
    int             i;
    size_t          key_len, len;
    unsigned char   key[NGX_HTTP_IOTHUB_TWIN_SAS_KEY_MAX];
    unsigned char   token[1024];
    char            name[256];

    p = line;

    for (i = 0; i < 6; i++) {
        col[i] = p;
        p = strchr(p, '\t');

        if (p == NULL && i < 5) {
            tap_ok(0, "vector line has six columns: %s", line);
            return;
        }

        if (p) {
            *p++ = '\0';
        }
    }

    key_len = ngx_http_iothub_twin_sas_key_decode((unsigned char *) col[2],
                                                  strlen(col[2]), key);

    snprintf(name, sizeof(name), "vector %s: key decodes", col[0]);
    tap_ok(key_len > 0, "%s", name);

    len = ngx_http_iothub_twin_sas_sign(token, (unsigned char *) col[0],
                                        strlen(col[0]),
                                        (unsigned char *) col[1],
                                        strlen(col[1]), key, key_len,
                                        strtoll(col[3], NULL, 10));

    snprintf(name, sizeof(name), "vector %s: whole token as the SDK prints it",
             col[0]);
    tap_is_str((char *) token, len, col[5], name);

    snprintf(name, sizeof(name), "vector %s: sig field", col[0]);
    p = strstr((char *) token, "&sig=");
    tap_ok(p != NULL && strncmp(p + 5, col[4], strlen(col[4])) == 0
           && p[5 + strlen(col[4])] == '&', "%s", name);
}


static void
test_key_decode(void)
{
    unsigned char  key[NGX_HTTP_IOTHUB_TWIN_SAS_KEY_MAX];

    static const struct {
        const char  *b64;
        size_t       len;
    } cases[] = {
        { "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", 32 },
        { "/////////////////////w==", 16 },
        { "YQ==", 1 },
        { "YWI=", 2 },
        { "YWJj", 3 },
        { "", 0 },
        { "YQ=", 0 },
        { "YQ===", 0 },
        { "Y Q==", 0 },
        { "YQ==\t", 0 },
        { "Y-_Q", 0 },
        { "=YQ=", 0 },
        { "not base64!", 0 },
    };

    size_t  i, n;
    char    name[128];

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        n = ngx_http_iothub_twin_sas_key_decode(
                (const unsigned char *) cases[i].b64, strlen(cases[i].b64),
                key);

        snprintf(name, sizeof(name), "key '%s' decodes to %zu bytes",
                 cases[i].b64, cases[i].len);
        tap_ok(n == cases[i].len, "%s", name);
    }
}


static void
test_verify(void)
{
    size_t                             klen, len;
    time_t                             now;
    unsigned char                      key[NGX_HTTP_IOTHUB_TWIN_SAS_KEY_MAX];
    unsigned char                      other[NGX_HTTP_IOTHUB_TWIN_SAS_KEY_MAX];
    unsigned char                      token[1024];
    char                               buf[1200];
    ngx_http_iothub_twin_sas_token_t   tok;

    static const char  host[] = "gateway.example.com";
    static const char  b64[] = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

#define PARSE(s)                                                              \
    ngx_http_iothub_twin_sas_parse((const unsigned char *) (s), strlen(s),   \
                                   &tok)
#define VERIFY(k, t)                                                          \
    ngx_http_iothub_twin_sas_verify(&tok, (const unsigned char *) host,      \
                                    sizeof(host) - 1, k, klen, t, 300)

    now = 1767225600;
    klen = ngx_http_iothub_twin_sas_key_decode((const unsigned char *) b64,
                                               sizeof(b64) - 1, key);
    ngx_http_iothub_twin_sas_key_decode(
        (const unsigned char *) "c2VjcmV0LWtleS1mb3ItdGVzdHMt"
                                "b25seS0wMTIzNDU2Nzg5", 48, other);

    len = ngx_http_iothub_twin_sas_sign(token, (const unsigned char *) host,
                                        sizeof(host) - 1,
                                        (const unsigned char *) "backend-a",
                                        9, key, klen, now + 3600);
    token[len] = '\0';

    tap_ok(PARSE((char *) token) == NGX_HTTP_IOTHUB_TWIN_SAS_OK,
           "own token parses", NULL);
    tap_ok(tok.skn_len == 9 && memcmp(tok.skn, "backend-a", 9) == 0,
           "skn field", NULL);
    tap_ok(VERIFY(key, now) == NGX_HTTP_IOTHUB_TWIN_SAS_OK,
           "own token verifies", NULL);
    tap_ok(VERIFY(key, now + 3600 + 300) == NGX_HTTP_IOTHUB_TWIN_SAS_OK,
           "token verifies at the end of the skew", NULL);
    tap_ok(VERIFY(key, now + 3600 + 301) == NGX_HTTP_IOTHUB_TWIN_SAS_EXPIRED,
           "token expires after the skew", NULL);
    tap_ok(VERIFY(other, now) == NGX_HTTP_IOTHUB_TWIN_SAS_BAD_SIGNATURE,
           "other key: bad signature", NULL);

    /* the same fields in another order verify too */
    snprintf(buf, sizeof(buf), "SharedAccessSignature se=%lld&skn=backend-a&"
             "sr=gateway.example.com&sig=%.*s", (long long) now + 3600,
             (int) tok.sig_len, (const char *) tok.sig);
    tap_ok(PARSE(buf) == NGX_HTTP_IOTHUB_TWIN_SAS_OK
           && VERIFY(key, now) == NGX_HTTP_IOTHUB_TWIN_SAS_OK,
           "field order does not matter", NULL);

    /* the sr is checked against the gateway's own host, any case */
    snprintf(buf, sizeof(buf), "SharedAccessSignature sr=GATEWAY.example.com&"
             "sig=x&se=%lld&skn=a", (long long) now + 3600);
    tap_ok(PARSE(buf) == NGX_HTTP_IOTHUB_TWIN_SAS_OK
           && VERIFY(key, now) == NGX_HTTP_IOTHUB_TWIN_SAS_BAD_SIGNATURE,
           "sr host compared without case, then the signature fails", NULL);

    snprintf(buf, sizeof(buf), "SharedAccessSignature sr=myhub.azure-devices."
             "net&sig=x&se=%lld&skn=a", (long long) now + 3600);
    tap_ok(PARSE(buf) == NGX_HTTP_IOTHUB_TWIN_SAS_OK
           && VERIFY(key, now) == NGX_HTTP_IOTHUB_TWIN_SAS_WRONG_RESOURCE,
           "another sr is refused", NULL);

    /* a raw '+' in sig is a space to the hub's parser: never verifies */
    len = ngx_http_iothub_twin_sas_sign(token, (const unsigned char *) host,
                                        sizeof(host) - 1,
                                        (const unsigned char *) "p", 1,
                                        key, klen, 2000000000);
    token[len] = '\0';
    PARSE((char *) token);
    tap_ok(VERIFY(key, now) == NGX_HTTP_IOTHUB_TWIN_SAS_OK,
           "token with escaped sig verifies", NULL);

    {
        char  *p, *q;

        strcpy(buf, (char *) token);
        while ((p = strstr(buf, "%2B")) != NULL) {
            *p = '+';
            for (q = p + 1; (*q = q[2]) != '\0'; q++) { /* void */ }
        }

        if (strchr(buf, '+')) {
            PARSE(buf);
            tap_ok(VERIFY(key, now) == NGX_HTTP_IOTHUB_TWIN_SAS_BAD_SIGNATURE,
                   "raw '+' in sig does not verify", NULL);
        }
    }

    tap_ok(PARSE("SharedAccessSignature sr=a&sig=b&se=1&skn=c&sr=a")
           == NGX_HTTP_IOTHUB_TWIN_SAS_MALFORMED, "repeated field", NULL);
    tap_ok(PARSE("SharedAccessSignature sr=a&sig=b&se=1")
           == NGX_HTTP_IOTHUB_TWIN_SAS_MALFORMED, "missing skn", NULL);
    tap_ok(PARSE("SharedAccessSignature sr=a&sig=b&se=1&skn=c&x=1")
           == NGX_HTTP_IOTHUB_TWIN_SAS_MALFORMED, "unknown field", NULL);
    tap_ok(PARSE("SharedAccessSignature sr=a&sig=b&se=1x&skn=c")
           == NGX_HTTP_IOTHUB_TWIN_SAS_MALFORMED, "se not a number", NULL);
    tap_ok(PARSE("SharedAccessSignature sr=a&sig=&se=1&skn=c")
           == NGX_HTTP_IOTHUB_TWIN_SAS_MALFORMED, "empty field", NULL);
    tap_ok(PARSE("Bearer xyz") == NGX_HTTP_IOTHUB_TWIN_SAS_MALFORMED,
           "other scheme", NULL);
    tap_ok(PARSE("SharedAccessSignature sr=a&sig=b&se=1&skn=c&")
           == NGX_HTTP_IOTHUB_TWIN_SAS_MALFORMED, "trailing '&'", NULL);

#undef PARSE
#undef VERIFY
}
