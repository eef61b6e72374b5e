/* token verify: checks stored tokens against the API. */
#include <stdio.h>

#include "token_cmd.h"

int pw_token_cmd_verify(const pw_token_opts_t *opts)
{
    (void)opts;
    fprintf(stderr, "publish-worker: token verify: not built yet\n");
    return 1;
}
