/* Environment: configuration and logging set up for a command. */
#include "env.h"

#include <stdio.h>
#include <stdlib.h>

#include "http.h"
#include "log.h"
#include "redis.h"

extern char **environ;

static const char *pw_env_get(const char *name)
{
    return getenv(name);
}

int pw_env_init_tls(const pw_config_t *conf, char *errstr, size_t errstr_size)
{
    if (pw_http_global_init(conf->threads_api_ca_file, errstr, errstr_size) == -1)
        return -1;
    return pw_redis_tls_init(conf->redis_tls_ca_file, conf->redis_tls_cert_file,
                             conf->redis_tls_key_file, errstr, errstr_size);
}

pw_config_t *pw_env_load_config(pw_config_need_t needs)
{
    char errstr[4096];
    pw_config_t *conf = pw_config_load(pw_env_get, environ, needs, errstr, sizeof(errstr));
    if (conf && pw_env_init_tls(conf, errstr, sizeof(errstr)) == -1) {
        pw_config_destroy(conf);
        conf = NULL;
    }
    if (!conf) {
        fprintf(stderr, "publish-worker: configuration problems:\n%s\n", errstr);
        return NULL;
    }
    pw_log_level_t level = PW_LOG_INFO;
    (void)pw_log_level_parse(conf->log_level, &level); /* validated by the loader */
    pw_log_init(level, conf->worker_id);
    return conf;
}
