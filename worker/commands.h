/* The commands of the publish-worker binary; each returns its exit code. */
#ifndef PW_COMMANDS_H
#define PW_COMMANDS_H

#include <stdio.h>

int pw_cmd_run(void);
int pw_cmd_token(int argc, char **argv);
/** @brief Prints the token subcommands' synopses. */
void pw_token_usage(FILE *out);

#endif
