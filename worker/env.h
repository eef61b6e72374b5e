/* Environment: the configuration that every command loads from it. */
#ifndef PW_ENV_H
#define PW_ENV_H

#include "config.h"

/** @brief Loads the configuration from the environment and sets up logging
 *  from it; NULL after printing every problem on stderr (the caller exits 2).
 *  Caller frees with pw_config_destroy(). */
pw_config_t *pw_env_load_config(pw_config_need_t needs);

#endif
