
/*
 * Copyright (C) ngx_iothub_twin developers
 *
 * The policy compiler: turns a caller's rules into the tables the
 * matcher walks (exact IDs by hash, path automata by section).
 */


#include "ngx_http_iothub_twin_policy_data.h"
