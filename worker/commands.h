/* The commands of the publish-worker binary; each returns its exit code. */
#ifndef PW_COMMANDS_H
#define PW_COMMANDS_H

#include "config.h"

/** @brief Loads the configuration and sets up logging; NULL after printing
 *  the problems on stderr (the caller exits 2). */
pw_config_t *pw_main_load_config(pw_config_need_t needs);

int pw_cmd_run(void);
int pw_cmd_token(int argc, char **argv);

#endif
