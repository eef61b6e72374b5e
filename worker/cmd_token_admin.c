/* token list, rekey and delete: an operator's view of every account, key
 * rotation, and offboarding. */
#include <stdio.h>

#include "token_cmd.h"

int pw_token_cmd_list(const pw_token_opts_t *opts)
{
    (void)opts;
    fprintf(stderr, "publish-worker: token list: not built yet\n");
    return 1;
}

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
