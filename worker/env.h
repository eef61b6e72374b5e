/* Environment: the configuration that every command loads from it. */
#ifndef PW_ENV_H
#define PW_ENV_H

#include "config.h"

/** @brief Loads the configuration from the environment and sets up logging
 *  and TLS (pw_env_init_tls()) from it; NULL after printing every problem on
 *  stderr (the caller exits 2). Caller frees with pw_config_destroy(). */
pw_config_t *pw_env_load_config(pw_config_need_t needs);
/** @brief The process-wide TLS settings of the API client (THREADS_API_CA_FILE)
 *  and of Redis (REDIS_TLS_*), once, before any thread starts.
 *  @returns 0, or -1 with the problem, naming the variable, in errstr. */
int pw_env_init_tls(const pw_config_t *conf, char *errstr, size_t errstr_size);

#endif
