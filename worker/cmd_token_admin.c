/* token rekey and delete: key rotation and offboarding. */
#include <stdio.h>

#include "token_cmd.h"

int pw_token_cmd_rekey(const pw_token_opts_t *opts)
{
    (void)opts;
    fprintf(stderr, "publish-worker: token rekey: not built yet\n");
    return 1;
}

int pw_token_cmd_delete(const pw_token_opts_t *opts)
{
    (void)opts;
    fprintf(stderr, "publish-worker: token delete: not built yet\n");
    return 1;
}
