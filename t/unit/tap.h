
/*
 * Copyright (C) ngx_iothub_twin developers
 *
 * A few lines of TAP for the unit tests of the pure parts.
 */


#ifndef _TAP_H_INCLUDED_
#define _TAP_H_INCLUDED_


#include <stdio.h>
#include <string.h>


static int  tap_n;
static int  tap_failed;


static void
tap_ok(int ok, const char *fmt, const char *arg)
{
    tap_n++;

    if (!ok) {
        tap_failed++;
    }

    printf("%s %d - ", ok ? "ok" : "not ok", tap_n);
    printf(fmt, arg ? arg : "");
    printf("\n");
}


static void
tap_is_str(const char *got, size_t got_len, const char *want,
    const char *name)
{
    int  ok;

    ok = (got_len == strlen(want) && memcmp(got, want, got_len) == 0);

    tap_ok(ok, "%s", name);

    if (!ok) {
        printf("#   got:  '%.*s'\n#   want: '%s'\n", (int) got_len, got, want);
    }
}


static int
tap_done(void)
{
    printf("1..%d\n", tap_n);

    return tap_failed ? 1 : 0;
}


#endif /* _TAP_H_INCLUDED_ */
