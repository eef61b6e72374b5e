/* Environment: configuration and logging set up for a command. */
#include "env.h"

#include <stdio.h>
#include <stdlib.h>

#include "log.h"

extern char **environ;

static const char *pw_env_get(const char *name)
{
    return getenv(name);
}

pw_config_t *pw_env_load_config(pw_config_need_t needs)
{
    char errstr[4096];
    pw_config_t *conf = pw_config_load(pw_env_get, environ, needs, errstr, sizeof(errstr));
    if (!conf) {
        fprintf(stderr, "publish-worker: configuration problems:\n%s\n", errstr);
        return NULL;
    }
    pw_log_level_t level = PW_LOG_INFO;
    (void)pw_log_level_parse(conf->log_level, &level); /* validated by the loader */
    pw_log_init(level, conf->worker_id);
    return conf;
}
