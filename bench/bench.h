
/*
 * Copyright (C) ngx_iothub_twin developers
 *
 * What the micro-benchmarks share: a growing text buffer to build their
 * inputs in, and a monotonic clock.
 */


#ifndef _BENCH_H_INCLUDED_
#define _BENCH_H_INCLUDED_


#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>


typedef struct {
    char       *buf;
    size_t      len;
    size_t      cap;
} bench_buf_t;


static void bench_append(bench_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static double bench_now(void);


static void
bench_append(bench_buf_t *b, const char *fmt, ...)
{
    int      n;
    va_list  args;

    for ( ;; ) {
        va_start(args, fmt);
        n = (b->cap > b->len)
            ? vsnprintf(b->buf + b->len, b->cap - b->len, fmt, args) : -1;
        va_end(args);

        if (n >= 0 && (size_t) n < b->cap - b->len) {
            b->len += (size_t) n;
            return;
        }

        b->cap = b->cap ? b->cap * 2 : 4096;
        b->buf = realloc(b->buf, b->cap);

        if (b->buf == NULL) {
            fprintf(stderr, "bench: out of memory\n");
            exit(2);
        }
    }
}


static double
bench_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}


#endif /* _BENCH_H_INCLUDED_ */
