
/*
 * libFuzzer target for the device-ID route patterns that nginx -t checks
 * for overlap: ngx_http_iothub_twin_route_check(), _match() and
 * _overlap().
 *
 * The input is split at its first two '\n' into pattern a, pattern b and
 * an ID, each copied into a buffer of exactly its size.  The run aborts
 * when:
 *
 *   - an ID of 1 to 128 ID characters is matched by both valid patterns
 *     but the two are said not to overlap (two hubs would get one
 *     device);
 *   - overlap(a, b) differs from overlap(b, a);
 *   - a valid pattern without '*', '?' and '\' does not match exactly
 *     itself;
 *   - a valid pattern does not overlap itself while it matches the ID.
 *
 * clang -g -O1 -fsanitize=fuzzer,address,undefined \
 *     -Ingx_iothub_twin_module fuzz/fuzz_route.c \
 *     ngx_iothub_twin_module/ngx_http_iothub_twin_route.c \
 *     ngx_iothub_twin_module/ngx_http_iothub_twin_id.c \
 *     -o build/fuzz/fuzz_route
 */


#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_iothub_twin_id.h"
#include "ngx_http_iothub_twin_route.h"


static unsigned char *fuzz_copy(const uint8_t *data, size_t len);
static int fuzz_plain(const unsigned char *p, size_t len);
static int fuzz_id(const unsigned char *p, size_t len);


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int             ab, ba, ma, mb;
    size_t          alen, blen, ilen;
    const uint8_t  *n1, *n2;
    unsigned char  *a, *b, *id;

    n1 = memchr(data, '\n', size);
    if (n1 == NULL) {
        return 0;
    }

    n2 = memchr(n1 + 1, '\n', data + size - (n1 + 1));
    if (n2 == NULL) {
        return 0;
    }

    alen = n1 - data;
    blen = n2 - (n1 + 1);
    ilen = data + size - (n2 + 1);

    a = fuzz_copy(data, alen);
    b = fuzz_copy(n1 + 1, blen);
    id = fuzz_copy(n2 + 1, ilen);

    if (ngx_http_iothub_twin_route_check(a, alen) != NULL
        || ngx_http_iothub_twin_route_check(b, blen) != NULL)
    {
        goto done;
    }

    ab = ngx_http_iothub_twin_route_overlap(a, alen, b, blen);
    ba = ngx_http_iothub_twin_route_overlap(b, blen, a, alen);

    if (ab < 0 || ba < 0) {
        goto done;
    }

    if (ab != ba) {
        fprintf(stderr, "overlap is not symmetric: %d, %d\n", ab, ba);
        abort();
    }

    if (fuzz_plain(a, alen)
        && !ngx_http_iothub_twin_route_match(a, alen, a, alen))
    {
        fprintf(stderr, "a plain pattern does not match itself\n");
        abort();
    }

    if (!fuzz_id(id, ilen)) {
        goto done;
    }

    ma = ngx_http_iothub_twin_route_match(a, alen, id, ilen);
    mb = ngx_http_iothub_twin_route_match(b, blen, id, ilen);

    if (ma && mb && !ab) {
        fprintf(stderr, "both patterns match the ID, yet no overlap\n");
        abort();
    }

    if (ma && ngx_http_iothub_twin_route_overlap(a, alen, a, alen) != 1) {
        fprintf(stderr, "a pattern that matches does not overlap itself\n");
        abort();
    }

done:

    free(a);
    free(b);
    free(id);

    return 0;
}


static unsigned char *
fuzz_copy(const uint8_t *data, size_t len)
{
    unsigned char  *p;

    p = malloc(len ? len : 1);
    if (p == NULL) {
        abort();
    }

    memcpy(p, data, len);

    return p;
}


static int
fuzz_plain(const unsigned char *p, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (p[i] == '*' || p[i] == '?' || p[i] == '\\') {
            return 0;
        }
    }

    return len <= NGX_HTTP_IOTHUB_TWIN_ID_MAX;
}


static int
fuzz_id(const unsigned char *p, size_t len)
{
    size_t  i;

    if (len == 0 || len > NGX_HTTP_IOTHUB_TWIN_ID_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (!ngx_http_iothub_twin_id_char(p[i])) {
            return 0;
        }
    }

    return 1;
}
