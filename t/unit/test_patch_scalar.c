
/*
 * The validator's unit tests (t/unit/test_patch.c, with its differential
 * against jansson) again, on the portable scalar loops: the validator is
 * compiled into this test with NGX_HTTP_IOTHUB_TWIN_PATCH_NO_SIMD, under
 * other names, so that it does not clash with the SSE2 build linked in.
 */


#define NGX_HTTP_IOTHUB_TWIN_PATCH_NO_SIMD  1

#define ngx_http_iothub_twin_patch_validate                                  \
    test_patch_scalar_validate
#define ngx_http_iothub_twin_patch_default_limits                            \
    test_patch_scalar_default_limits
#define ngx_http_iothub_twin_patch_rule_name                                 \
    test_patch_scalar_rule_name

#include "ngx_http_iothub_twin_patch.c"

#include "test_patch.c"
