
/*
 * Copyright (C) ngx_iothub_twin developers
 *
 * UTF-8 as RFC 3629 has it, for the two parsers of JSON (the patch
 * validator and the read filter): one definition of a valid sequence.
 * Pure code over bytes.
 */


#ifndef _NGX_HTTP_IOTHUB_TWIN_UTF8_H_INCLUDED_
#define _NGX_HTTP_IOTHUB_TWIN_UTF8_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


/*
 * The length of the valid UTF-8 sequence at p (a byte from 0x80), 0 if it
 * is not one: no overlong form, surrogate or code point over U+10FFFF.
 */

static inline size_t
ngx_http_iothub_twin_utf8(const unsigned char *p,
    const unsigned char *end, uint32_t *cp)
{
    size_t         left;
    unsigned char  c, lo, hi;

    c = p[0];
    left = end - p;

    if (c < 0xc2 || c > 0xf4) {
        return 0;
    }

    if (c < 0xe0) {
        if (left < 2 || (p[1] & 0xc0) != 0x80) {
            return 0;
        }

        *cp = ((uint32_t) (c & 0x1f) << 6) | (p[1] & 0x3f);
        return 2;
    }

    /* the second byte's range excludes overlongs, surrogates, > U+10FFFF */

    lo = 0x80;
    hi = 0xbf;

    if (c == 0xe0) {
        lo = 0xa0;

    } else if (c == 0xed) {
        hi = 0x9f;

    } else if (c == 0xf0) {
        lo = 0x90;

    } else if (c == 0xf4) {
        hi = 0x8f;
    }

    if (c < 0xf0) {
        if (left < 3 || p[1] < lo || p[1] > hi || (p[2] & 0xc0) != 0x80) {
            return 0;
        }

        *cp = ((uint32_t) (c & 0x0f) << 12) | ((uint32_t) (p[1] & 0x3f) << 6)
              | (p[2] & 0x3f);
        return 3;
    }

    if (left < 4 || p[1] < lo || p[1] > hi || (p[2] & 0xc0) != 0x80
        || (p[3] & 0xc0) != 0x80)
    {
        return 0;
    }

    *cp = ((uint32_t) (c & 0x07) << 18) | ((uint32_t) (p[1] & 0x3f) << 12)
          | ((uint32_t) (p[2] & 0x3f) << 6) | (p[3] & 0x3f);
    return 4;
}


#endif /* _NGX_HTTP_IOTHUB_TWIN_UTF8_H_INCLUDED_ */
