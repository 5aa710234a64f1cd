
/*
 * Copyright (C) ngx_iothub_twin developers
 *
 * What the policy unit tests share: short type names, loading a policy
 * or finding a caller with a message when it fails, and checking that a
 * policy is refused, or a target decided, as expected.
 */


#ifndef _POLICY_UTIL_H_INCLUDED_
#define _POLICY_UTIL_H_INCLUDED_


#include <stdio.h>
#include <string.h>

#include "tap.h"
#include "ngx_http_iothub_twin_policy.h"


typedef ngx_http_iothub_twin_policy_t           policy_t;
typedef ngx_http_iothub_twin_caller_t           caller_t;
typedef ngx_http_iothub_twin_policy_decision_t  decision_t;


static inline policy_t *
parse(const char *json)
{
    char       err[512];
    policy_t  *p;

    p = ngx_http_iothub_twin_policy_parse("t.json", json, strlen(json), err,
                                          sizeof(err));
    if (p == NULL) {
        printf("# unexpected: %s\n", err);
    }

    return p;
}


static inline const caller_t *
caller(const policy_t *p, const char *name)
{
    return ngx_http_iothub_twin_policy_caller(p,
                                              (const unsigned char *) name,
                                              strlen(name));
}



/* the policy is refused with exactly this message */

static inline void
is_error(const char *json, const char *want)
{
    char       err[512], name[512];
    policy_t  *p;

    memset(err, 'x', sizeof(err));

    p = ngx_http_iothub_twin_policy_parse("t.json", json, strlen(json), err,
                                          sizeof(err));

    snprintf(name, sizeof(name), "refused: %.400s", want);

    if (p != NULL) {
        tap_ok(0, "%s", name);
        ngx_http_iothub_twin_policy_free(p);
        return;
    }

    tap_is_str(err, strlen(err), want, name);
}



/* a target decision is what reason says: NULL allowed, else refused so */

static inline void
target_verdict(int rc, const decision_t *d, const char *name,
    const char *reason)
{
    if (reason == NULL) {
        tap_ok(rc == 0 && d->allowed && d->target_ok && d->reason[0] == '\0',
               "%s", name);

        if (rc != 0) {
            printf("#   reason: %s\n", d->reason);
        }

        return;
    }

    if (rc != -1 || d->allowed || d->target_ok) {
        tap_ok(0, "%s", name);
        return;
    }

    tap_is_str(d->reason, strlen(d->reason), reason, name);
}


#endif /* _POLICY_UTIL_H_INCLUDED_ */
