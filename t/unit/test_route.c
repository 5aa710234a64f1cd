
/*
 * Copyright (C) ngx_iothub_twin developers
 *
 * Device-ID route patterns: checking, matching, and the overlap test that
 * nginx -t uses, against a brute-force search over short IDs.
 */


#include <stdlib.h>

#include "tap.h"
#include "ngx_http_iothub_twin_route.h"


static int match(const char *p, const char *id);
static int overlap(const char *a, const char *b);
static int naive(const char *p, const char *s);
static int brute_overlap(const char *a, const char *b);
static void test_check(void);
static void test_match(void);
static void test_overlap(void);
static void test_differential(void);


int
main(void)
{
    test_check();
    test_match();
    test_overlap();
    test_differential();

    return tap_done();
}


static int
match(const char *p, const char *id)
{
    return ngx_http_iothub_twin_route_match((const unsigned char *) p,
                                            strlen(p),
                                            (const unsigned char *) id,
                                            strlen(id));
}


static int
overlap(const char *a, const char *b)
{
    return ngx_http_iothub_twin_route_overlap((const unsigned char *) a,
                                              strlen(a),
                                              (const unsigned char *) b,
                                              strlen(b));
}


static void
test_check(void)
{
    size_t       i;
    char         long_pattern[300];
    const char  *err;

    static const char  *good[] = {
        "dev1", "eu-*", "*", "?", "sensor-?\?-*", "lot\\**", "dev#1\\?x",
        "a:b.c+d%e_f#g*h?i!j(k)l,m=n@o;p$q'r", NULL
    };

    static const char  *bad[] = {
        "", "a b", "a/b", "a\\", "a\\x", "a\\\\b", "caf\xc3\xa9", "a\"b",
        NULL
    };

    for (i = 0; good[i]; i++) {
        err = ngx_http_iothub_twin_route_check((const unsigned char *) good[i],
                                               strlen(good[i]));
        tap_ok(err == NULL, "valid pattern %s", good[i]);
    }

    for (i = 0; bad[i]; i++) {
        err = ngx_http_iothub_twin_route_check((const unsigned char *) bad[i],
                                               strlen(bad[i]));
        tap_ok(err != NULL, "invalid pattern '%s'", bad[i]);
    }

    err = ngx_http_iothub_twin_route_check((const unsigned char *) "a\\x", 3);
    tap_is_str(err, err ? strlen(err) : 0,
               "has a '\\' that is not \"\\*\", \"\\?\" or \"\\\\\"",
               "the message names the bad escape");

    memset(long_pattern, 'a', 257);
    tap_ok(ngx_http_iothub_twin_route_check(
               (const unsigned char *) long_pattern, 257) != NULL,
           "a pattern of 257 bytes is refused%s", "");
    tap_ok(ngx_http_iothub_twin_route_check(
               (const unsigned char *) long_pattern, 256) == NULL,
           "a pattern of 256 bytes is valid%s", "");
}


static void
test_match(void)
{
    tap_ok(match("dev1", "dev1"), "exact%s", "");
    tap_ok(!match("dev1", "dev10"), "exact is not a prefix%s", "");
    tap_ok(!match("dev1", "Dev1"), "case-sensitive%s", "");
    tap_ok(match("eu-*", "eu-"), "'*' matches nothing%s", "");
    tap_ok(match("eu-*", "eu-berlin-7"), "prefix%s", "");
    tap_ok(!match("eu-*", "us-eu-1"), "prefix only at the start%s", "");
    tap_ok(match("*-eu", "x-eu"), "suffix%s", "");
    tap_ok(match("s-?" "?-*", "s-12-x"), "'?' one character%s", "");
    tap_ok(!match("s-?" "?-*", "s-1-x"), "'?' not zero characters%s", "");
    tap_ok(match("lot\\**", "lot*5"), "escaped '*' is literal%s", "");
    tap_ok(!match("lot\\**", "lot5"), "escaped '*' is not a wildcard%s", "");
    tap_ok(match("a\\?", "a?"), "escaped '?' is literal%s", "");
    tap_ok(!match("a\\?", "ab"), "escaped '?' is not a wildcard%s", "");
    tap_ok(match("*a*a*", "xaya"), "several stars%s", "");
    tap_ok(!match("*a*a*", "xay"), "several stars, no match%s", "");
}


static void
test_overlap(void)
{
    tap_ok(overlap("eu-*", "eu-berlin-*"), "prefix in prefix%s", "");
    tap_ok(!overlap("eu-*", "us-*"), "disjoint prefixes%s", "");
    tap_ok(overlap("*", "dev1"), "star and exact%s", "");
    tap_ok(overlap("*-eu", "us-*"), "suffix and prefix (us-eu)%s", "");
    tap_ok(!overlap("dev1", "dev2"), "two exact IDs%s", "");
    tap_ok(overlap("dev1", "dev1"), "one exact ID twice%s", "");
    tap_ok(!overlap("a\\*", "ab"), "escaped star is literal%s", "");
    tap_ok(overlap("a\\*", "a?"), "'?' covers a literal '*'%s", "");
    tap_ok(!overlap("??", "???"), "lengths differ%s", "");
    tap_ok(overlap("*", "*"), "star and star%s", "");
}


/* a plain recursive matcher over tokens, for the differential */

static int
naive(const char *p, const char *s)
{
    if (*p == '\0') {
        return *s == '\0';
    }

    if (*p == '*') {
        return naive(p + 1, s) || (*s && naive(p, s + 1));
    }

    if (*s == '\0') {
        return 0;
    }

    if (*p == '?' || *p == *s) {
        return naive(p + 1, s + 1);
    }

    return 0;
}


/* any ID of 1 to 6 of 'a', 'b', 'c' matched by both */

static int
brute_overlap(const char *a, const char *b)
{
    int   len, n, i, total;
    char  s[8];

    for (len = 1; len <= 6; len++) {
        total = 1;
        for (i = 0; i < len; i++) {
            total *= 3;
        }

        for (n = 0; n < total; n++) {
            int  v = n;

            for (i = 0; i < len; i++) {
                s[i] = "abc"[v % 3];
                v /= 3;
            }

            s[len] = '\0';

            if (naive(a, s) && naive(b, s)) {
                return 1;
            }
        }
    }

    return 0;
}


/* every pattern of up to 3 of 'a', 'b', '*', '?' against every other */

static void
test_differential(void)
{
    int    i, j, n, total, v, len, bad_match, bad_overlap, count;
    char   pats[400][4], s[8];

    static const char  alphabet[] = "ab*?";

    n = 0;

    for (len = 1; len <= 3; len++) {
        total = 1;
        for (i = 0; i < len; i++) {
            total *= 4;
        }

        for (v = 0; v < total; v++) {
            int  x = v;

            for (i = 0; i < len; i++) {
                pats[n][i] = alphabet[x % 4];
                x /= 4;
            }

            pats[n][len] = '\0';
            n++;
        }
    }

    bad_match = 0;
    bad_overlap = 0;
    count = 0;

    for (i = 0; i < n; i++) {

        /* match against every ID of 1 to 4 of 'a', 'b', 'c' */

        for (len = 1; len <= 4; len++) {
            total = 1;
            for (j = 0; j < len; j++) {
                total *= 3;
            }

            for (v = 0; v < total; v++) {
                int  x = v, k;

                for (k = 0; k < len; k++) {
                    s[k] = "abc"[x % 3];
                    x /= 3;
                }

                s[len] = '\0';

                if (match(pats[i], s) != naive(pats[i], s)) {
                    bad_match++;
                }
            }
        }

        for (j = 0; j < n; j++) {
            count++;

            if (overlap(pats[i], pats[j]) != brute_overlap(pats[i], pats[j])) {
                if (bad_overlap++ < 5) {
                    printf("# overlap('%s', '%s') is wrong\n",
                           pats[i], pats[j]);
                }
            }
        }
    }

    tap_ok(bad_match == 0, "match agrees with a naive matcher%s", "");
    tap_ok(bad_overlap == 0 && count == 84 * 84,
           "overlap agrees with a brute-force search over 84 x 84 "
           "patterns%s", "");
}
