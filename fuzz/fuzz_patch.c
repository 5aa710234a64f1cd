
/*
 * libFuzzer target for the twin patch validator.
 *
 * Every input is a whole PATCH body.  It goes through the validator twice
 * (syntax_only, then with the twin rules) and through jansson, and the run
 * aborts when:
 *
 *   - the validator and jansson disagree on "well-formed JSON without
 *     duplicate keys", by this mapping (jansson: json_loadb() with
 *     JSON_REJECT_DUPLICATES, JSON_DECODE_ANY off):
 *
 *       validator says                          jansson must
 *       OK, or INVALID reason TOP_ARRAY         succeed
 *       SYNTAX, or INVALID reason DUPLICATE,    fail
 *         NUL, OVERFLOW or TOP_SCALAR
 *       INVALID reason NESTING or RULE          (not compared: the
 *                                                validator stopped early
 *                                                on its own rule)
 *
 *     inputs that jansson refuses only for its own limits are skipped: an
 *     integer beyond long long ("too big integer") and nesting beyond 2048;
 *     so are inputs with a NUL byte that jansson accepts: jansson 2.14
 *     drops a NUL byte right after a number or a literal ("[1\0]" loads),
 *     while no well-formed JSON text holds a raw NUL;
 *
 *   - the two validator modes are inconsistent: the twin rules may stop a
 *     parse early but never change the syntax verdict (SYNTAX with rules
 *     means SYNTAX at the same offset without; OK with rules means OK
 *     without);
 *
 *   - a result is malformed: a message that is not "<path>: <rule>" in
 *     printable ASCII, an offset past the input, a path that is not under
 *     tags or properties.desired, a path count that differs from the calls,
 *     or an accepted patch over a size limit.
 *
 * clang -g -O1 -fsanitize=fuzzer,address,undefined \
 *     -Ingx_iothub_twin_module fuzz/fuzz_patch.c \
 *     ngx_iothub_twin_module/ngx_http_iothub_twin_patch.c -ljansson \
 *     -o build/fuzz/fuzz_patch
 */


#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ngx_http_iothub_twin_patch.h"


typedef struct {
    unsigned   calls;
} fuzz_patch_paths_t;


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fuzz_patch_path(void *data, const unsigned char *path, size_t len,
    int is_delete);
static void fuzz_patch_run(ngx_http_iothub_twin_patch_t *p,
    unsigned syntax_only, fuzz_patch_paths_t *paths, const uint8_t *data,
    size_t size, ngx_http_iothub_twin_patch_rc_e *rc);
static void fuzz_patch_agree(const char *mode,
    ngx_http_iothub_twin_patch_t *p, ngx_http_iothub_twin_patch_rc_e rc,
    int jansson_ok, const json_error_t *err);
static void fuzz_patch_check_result(ngx_http_iothub_twin_patch_t *p,
    ngx_http_iothub_twin_patch_rc_e rc, size_t size);
static void fuzz_patch_fail(const char *what,
    ngx_http_iothub_twin_patch_t *p);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                               jansson_ok;
    json_t                           *j;
    json_error_t                      err;
    fuzz_patch_paths_t                paths;
    ngx_http_iothub_twin_patch_t      p, sp;
    ngx_http_iothub_twin_patch_rc_e   rc, src;

    fuzz_patch_run(&sp, 1, NULL, data, size, &src);
    fuzz_patch_run(&p, 0, &paths, data, size, &rc);

    j = json_loadb((const char *) data, size, JSON_REJECT_DUPLICATES, &err);
    jansson_ok = (j != NULL);
    json_decref(j);

    if (!jansson_ok
        && (json_error_code(&err) == json_error_stack_overflow
            || (json_error_code(&err) == json_error_numeric_overflow
                && strstr(err.text, "too big") != NULL)))
    {
        /* jansson's own limits */
        jansson_ok = -1;
    }

    if (jansson_ok == 1 && memchr(data, '\0', size) != NULL) {
        /* jansson skips a NUL after a number or a literal */
        jansson_ok = -1;
    }

    fuzz_patch_agree("syntax_only", &sp, src, jansson_ok, &err);
    fuzz_patch_agree("twin rules", &p, rc, jansson_ok, &err);

    if (rc == NGX_HTTP_IOTHUB_TWIN_PATCH_SYNTAX
        && (src != NGX_HTTP_IOTHUB_TWIN_PATCH_SYNTAX
            || sp.error_offset != p.error_offset))
    {
        fuzz_patch_fail("SYNTAX with rules, not without", &sp);
    }

    if (rc == NGX_HTTP_IOTHUB_TWIN_PATCH_OK
        && src != NGX_HTTP_IOTHUB_TWIN_PATCH_OK)
    {
        fuzz_patch_fail("OK with rules, not without", &sp);
    }

    if (sp.npaths != 0 || sp.tags_size != 0 || sp.desired_size != 0) {
        fuzz_patch_fail("syntax_only reported paths or sizes", &sp);
    }

    if (p.npaths != paths.calls) {
        fuzz_patch_fail("npaths differs from the calls", &p);
    }

    fuzz_patch_check_result(&sp, src, size);
    fuzz_patch_check_result(&p, rc, size);

    if (rc == NGX_HTTP_IOTHUB_TWIN_PATCH_OK
        && (p.tags_size > p.limits.max_tags_size
            || p.desired_size > p.limits.max_desired_size))
    {
        fuzz_patch_fail("accepted over a size limit", &p);
    }

    return 0;
}


static void
fuzz_patch_run(ngx_http_iothub_twin_patch_t *p, unsigned syntax_only,
    fuzz_patch_paths_t *paths, const uint8_t *data, size_t size,
    ngx_http_iothub_twin_patch_rc_e *rc)
{
    memset(p, 0, sizeof(ngx_http_iothub_twin_patch_t));

    p->device_id = "dev-1";
    p->module_id = "mod-1";
    ngx_http_iothub_twin_patch_default_limits(&p->limits);
    p->syntax_only = syntax_only;
    p->hash_seed = (unsigned) size;

    if (paths) {
        paths->calls = 0;
        p->path_handler = fuzz_patch_path;
        p->path_data = paths;
    }

    *rc = ngx_http_iothub_twin_patch_validate(p, data, size);
}


static int
fuzz_patch_path(void *data, const unsigned char *path, size_t len,
    int is_delete)
{
    fuzz_patch_paths_t  *paths;

    paths = data;
    paths->calls++;

    if (!((len > 5 && memcmp(path, "tags.", 5) == 0)
          || (len > 19 && memcmp(path, "properties.desired.", 19) == 0))
        || len > NGX_HTTP_IOTHUB_TWIN_PATCH_MAX_PATH
        || path[len - 1] == '.'
        || (is_delete != 0 && is_delete != 1))
    {
        fprintf(stderr, "bad path \"%.*s\"\n", (int) len, path);
        abort();
    }

    return 0;
}


static void
fuzz_patch_agree(const char *mode, ngx_http_iothub_twin_patch_t *p,
    ngx_http_iothub_twin_patch_rc_e rc, int jansson_ok,
    const json_error_t *err)
{
    int  expect_ok;

    if (rc == NGX_HTTP_IOTHUB_TWIN_PATCH_OK
        || p->reason == NGX_HTTP_IOTHUB_TWIN_PATCH_R_TOP_ARRAY)
    {
        expect_ok = 1;

    } else if (rc == NGX_HTTP_IOTHUB_TWIN_PATCH_SYNTAX
               || p->reason == NGX_HTTP_IOTHUB_TWIN_PATCH_R_DUPLICATE
               || p->reason == NGX_HTTP_IOTHUB_TWIN_PATCH_R_NUL
               || p->reason == NGX_HTTP_IOTHUB_TWIN_PATCH_R_OVERFLOW
               || p->reason == NGX_HTTP_IOTHUB_TWIN_PATCH_R_TOP_SCALAR)
    {
        expect_ok = 0;

    } else {
        return;
    }

    if (jansson_ok == -1 || jansson_ok == expect_ok) {
        return;
    }

    fprintf(stderr, "%s: validator rc %d reason %d \"%s\" at %u; "
            "jansson %s \"%s\" at %d\n", mode, (int) rc, (int) p->reason,
            p->error, (unsigned) p->error_offset,
            jansson_ok ? "accepts" : "fails",
            jansson_ok ? "" : err->text, jansson_ok ? -1 : err->position);
    abort();
}


static void
fuzz_patch_check_result(ngx_http_iothub_twin_patch_t *p,
    ngx_http_iothub_twin_patch_rc_e rc, size_t size)
{
    size_t  i, n;

    if (rc == NGX_HTTP_IOTHUB_TWIN_PATCH_OK) {
        if (p->error[0] != '\0'
            || p->reason != NGX_HTTP_IOTHUB_TWIN_PATCH_R_NONE)
        {
            fuzz_patch_fail("OK with an error", p);
        }

        return;
    }

    if ((rc == NGX_HTTP_IOTHUB_TWIN_PATCH_SYNTAX)
        != (p->reason == NGX_HTTP_IOTHUB_TWIN_PATCH_R_SYNTAX))
    {
        fuzz_patch_fail("rc and reason differ", p);
    }

    if (p->error_offset > size) {
        fuzz_patch_fail("offset past the input", p);
    }

    n = strnlen(p->error, sizeof(p->error));

    if (n == 0 || n == sizeof(p->error) || strstr(p->error, ": ") == NULL) {
        fuzz_patch_fail("malformed message", p);
    }

    for (i = 0; i < n; i++) {
        if (p->error[i] < 0x20 || p->error[i] > 0x7e || p->error[i] == '"'
            || (p->error[i] == '\\' && p->error[i + 1] != 'x'))
        {
            fuzz_patch_fail("message not printable", p);
        }
    }
}


static void
fuzz_patch_fail(const char *what, ngx_http_iothub_twin_patch_t *p)
{
    fprintf(stderr, "%s: reason %d at %u: %.320s\n", what, (int) p->reason,
            (unsigned) p->error_offset, p->error);
    abort();
}
