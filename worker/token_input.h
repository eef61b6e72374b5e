/* Token input: the token(s) an operator gives token put, read safely. */
#ifndef PW_TOKEN_INPUT_H
#define PW_TOKEN_INPUT_H

#include <stdbool.h>

#include "token_store.h"

/** @brief Reads the access token, and with oauth2 then the refresh token, a
 *  line each, from token_file (NULL: stdin) into token->access_token and
 *  token->refresh_token (the caller's to destroy, also on failure).
 *  @returns 0, or 2 (the exit code) after a message on stderr. */
int pw_token_input_read(const char *token_file, bool oauth2, pw_token_t *token);

#endif
