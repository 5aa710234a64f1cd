
/*
 * Copyright (C) ngx_iothub_twin developers
 *
 * Device-ID patterns for routing twins to hubs; see
 * ngx_http_iothub_twin_route.h.
 */


#include <stdlib.h>
#include <string.h>

#include "ngx_http_iothub_twin_id.h"
#include "ngx_http_iothub_twin_route.h"



/*
 * the overlap search tracks the ID's length up to the longest ID and one
 * past it, which stands for "longer than any ID"
 */
#define NGX_HTTP_IOTHUB_TWIN_ROUTE_LEN   (NGX_HTTP_IOTHUB_TWIN_ID_MAX + 2)


static size_t ngx_http_iothub_twin_route_compile(const unsigned char *p,
    size_t len, unsigned char *t);


const char *
ngx_http_iothub_twin_route_check(const unsigned char *p, size_t len)
{
    size_t  i;

    if (len == 0) {
        return "is empty";
    }

    if (len > NGX_HTTP_IOTHUB_TWIN_ROUTE_PATTERN_MAX) {
        return "is longer than 256 bytes";
    }

    for (i = 0; i < len; i++) {

        if (p[i] == '\\') {
            if (i + 1 == len
                || (p[i + 1] != '*' && p[i + 1] != '?' && p[i + 1] != '\\'))
            {
                return "has a '\\' that is not \"\\*\", \"\\?\" or \"\\\\\"";
            }

            if (p[i + 1] == '\\') {
                return "holds a literal '\\', which no device ID holds";
            }

            i++;
            continue;
        }

        if (!ngx_http_iothub_twin_id_char(p[i])) {
            return "holds a byte that no device ID holds";
        }
    }

    return NULL;
}


/* a valid pattern compiled; t holds at least len bytes */

static size_t
ngx_http_iothub_twin_route_compile(const unsigned char *p, size_t len,
    unsigned char *t)
{
    size_t  i, n;

    n = 0;

    for (i = 0; i < len; i++) {
        if (p[i] == '\\' && i + 1 < len) {
            t[n++] = p[++i];

        } else if (p[i] == '*') {
            t[n++] = NGX_HTTP_IOTHUB_TWIN_GLOB_ANY_RUN;

        } else if (p[i] == '?') {
            t[n++] = NGX_HTTP_IOTHUB_TWIN_GLOB_ANY_ONE;

        } else {
            t[n++] = p[i];
        }
    }

    return n;
}


int
ngx_http_iothub_twin_route_match(const unsigned char *p, size_t plen,
    const unsigned char *id, size_t len)
{
    size_t         n;
    unsigned char  t[NGX_HTTP_IOTHUB_TWIN_ROUTE_PATTERN_MAX];

    if (plen > NGX_HTTP_IOTHUB_TWIN_ROUTE_PATTERN_MAX) {
        return 0;
    }

    n = ngx_http_iothub_twin_route_compile(p, plen, t);

    return ngx_http_iothub_twin_glob_match(t, n, id, len);
}


/*
 * '*' any run, '?' one byte; on a mismatch only the last '*' is retried
 * one byte further, which is enough and keeps it O(plen * slen)
 */

int
ngx_http_iothub_twin_glob_match(const unsigned char *p, size_t plen,
    const unsigned char *s, size_t slen)
{
    size_t  pi, si, star, mark;

    pi = 0;
    si = 0;
    star = (size_t) -1;
    mark = 0;

    while (si < slen) {
        if (pi < plen && p[pi] == NGX_HTTP_IOTHUB_TWIN_GLOB_ANY_RUN) {
            star = pi++;
            mark = si;

        } else if (pi < plen
                   && (p[pi] == NGX_HTTP_IOTHUB_TWIN_GLOB_ANY_ONE
                       || p[pi] == s[si]))
        {
            pi++;
            si++;

        } else if (star != (size_t) -1) {
            pi = star + 1;
            si = ++mark;

        } else {
            return 0;
        }
    }

    while (pi < plen && p[pi] == NGX_HTTP_IOTHUB_TWIN_GLOB_ANY_RUN) {
        pi++;
    }

    return pi == plen;
}


/*
 * Both patterns walked side by side over one imagined ID, as the product
 * of their automata: state (i, j, k) is "a's first i tokens, b's first j
 * tokens, k characters of the ID"; an ID both match exists if a state
 * with both patterns at their end and 1 <= k <= 128 is reachable.  Every
 * move keeps i, j and k or increases them, so one pass in order finds
 * every reachable state.
 */

int
ngx_http_iothub_twin_route_overlap(const unsigned char *a, size_t alen,
    const unsigned char *b, size_t blen)
{
    int            found;
    size_t         na, nb, i, j, k, k2, i2, j2, w, h;
    unsigned       x, y;
    unsigned char  ta[NGX_HTTP_IOTHUB_TWIN_ROUTE_PATTERN_MAX],
                   tb[NGX_HTTP_IOTHUB_TWIN_ROUTE_PATTERN_MAX];
    unsigned char *reach;

    if (alen > NGX_HTTP_IOTHUB_TWIN_ROUTE_PATTERN_MAX
        || blen > NGX_HTTP_IOTHUB_TWIN_ROUTE_PATTERN_MAX)
    {
        return 0;
    }

    na = ngx_http_iothub_twin_route_compile(a, alen, ta);
    nb = ngx_http_iothub_twin_route_compile(b, blen, tb);

    w = nb + 1;
    h = NGX_HTTP_IOTHUB_TWIN_ROUTE_LEN;

    reach = calloc((na + 1) * w * h, 1);
    if (reach == NULL) {
        return -1;
    }

#define ngx_http_iothub_twin_reach(i, j, k)  reach[((i) * w + (j)) * h + (k)]

    ngx_http_iothub_twin_reach(0, 0, 0) = 1;
    found = 0;

    for (i = 0; i <= na && !found; i++) {
        for (j = 0; j <= nb && !found; j++) {
            for (k = 0; k < h; k++) {

                if (!ngx_http_iothub_twin_reach(i, j, k)) {
                    continue;
                }

                if (i == na && j == nb && k >= 1
                    && k <= NGX_HTTP_IOTHUB_TWIN_ID_MAX)
                {
                    found = 1;
                    break;
                }

                /* a '*' matching nothing more */

                if (i < na && ta[i] == NGX_HTTP_IOTHUB_TWIN_GLOB_ANY_RUN) {
                    ngx_http_iothub_twin_reach(i + 1, j, k) = 1;
                }

                if (j < nb && tb[j] == NGX_HTTP_IOTHUB_TWIN_GLOB_ANY_RUN) {
                    ngx_http_iothub_twin_reach(i, j + 1, k) = 1;
                }

                /* one more character of the ID, taken by both */

                if (i == na || j == nb) {
                    continue;
                }

                x = ta[i];
                y = tb[j];

                if (x > NGX_HTTP_IOTHUB_TWIN_GLOB_ANY_ONE
                    && y > NGX_HTTP_IOTHUB_TWIN_GLOB_ANY_ONE && x != y)
                {
                    continue;
                }

                i2 = (x == NGX_HTTP_IOTHUB_TWIN_GLOB_ANY_RUN) ? i : i + 1;
                j2 = (y == NGX_HTTP_IOTHUB_TWIN_GLOB_ANY_RUN) ? j : j + 1;
                k2 = (k + 1 < h) ? k + 1 : h - 1;

                if (i2 == i && j2 == j && k2 == k) {
                    continue;
                }

                ngx_http_iothub_twin_reach(i2, j2, k2) = 1;
            }
        }
    }

#undef ngx_http_iothub_twin_reach

    free(reach);

    return found;
}
