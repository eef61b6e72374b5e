/* Configuration: the contract's environment variables, from one table.
 *
 * DESIGN: pw_config_vars[] declares every variable once (name, default,
 * kind, bounds, description). Loading, check-config, --help and the README's
 * table all follow it. Loading validates everything and reports every problem
 * at once, each naming its variable. */
#ifndef PW_CONFIG_H
#define PW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "pw.h"
#include "secret.h"

typedef struct pw_config_s {
    char *kafka_bootstrap_servers;
    char *kafka_group_id;
    char *topic_publish_requests;
    char *topic_publish_results;
    char *topic_alerts;
    char *topic_dead_letter;
    char *topic_account_events;
    char *redis_url;
    char *redis_tls_ca_file;
    char *redis_tls_cert_file;
    char *redis_tls_key_file;
    char *threads_api_base_url;
    char *threads_api_ca_file;
    char *oauth2_token_url;
    char *oauth2_client_id;
    pw_secret_t *oauth2_client_secret;
    char *token_keys_file;
    char *worker_id;
    long worker_concurrency;
    long worker_buffer_bytes;
    long parked_max_per_account;
    char *metrics_addr;
    char *log_level;
    long token_refresh_ahead_s;
    long token_verify_interval_s; /* 0: off */
    long token_verify_max_per_s;
    long quota_recheck_s;
    long auth_alert_threshold;
    long auth_alert_window_s;
    long publish_max_attempts;
    long container_poll_interval_ms;
    long container_poll_timeout_s;
    long http_connect_timeout_ms;
    long http_timeout_ms;
    long liveness_stall_s;
    long shutdown_timeout_s;
    long redis_pool_size;
    bool redis_allow_eviction;
    long post_record_ttl_s;
    long token_sweep_interval_s;
    /* RDKAFKA_<NAME> pass-through, as librdkafka property name/value pairs. */
    char **rdkafka_props;
    size_t rdkafka_prop_count;
} pw_config_t;

/* What a command needs beyond the variables every command reads. */
typedef enum {
    PW_CONFIG_NEED_KAFKA = 1 << 0, /* KAFKA_BOOTSTRAP_SERVERS */
    PW_CONFIG_NEED_KEYS = 1 << 1,  /* TOKEN_KEYS_FILE */
} pw_config_need_t;

typedef enum {
    PW_CV_STRING,
    PW_CV_SECRET,
    PW_CV_INT,
    PW_CV_URL,
    PW_CV_ADDR,
    PW_CV_LEVEL,
    PW_CV_BOOL, /* true/false (also 1/0, yes/no), into a bool */
    PW_CV_FILE  /* a path to a file the process can read */
} pw_cv_kind_t;

typedef struct pw_config_var_s {
    const char *name;
    const char *defval; /* NULL: none */
    pw_cv_kind_t kind;
    pw_config_need_t required_by; /* 0: optional */
    long min, max;                /* for PW_CV_INT */
    size_t offset;                /* into pw_config_t */
    const char *description;
} pw_config_var_t;

extern const pw_config_var_t pw_config_vars[];
extern const size_t pw_config_var_count;

/** @brief Reads the configuration from the environment through getenv_fn
 *  (getenv in production; a table in unit tests) and environ_list (the
 *  NULL-terminated "NAME=value" list scanned for RDKAFKA_*).
 *  @returns the configuration (caller frees with pw_config_destroy()) or NULL,
 *  with one line per problem in errstr. */
pw_config_t *pw_config_load(const char *(*getenv_fn)(const char *name), char *const *environ_list,
                            pw_config_need_t needs, char *errstr, size_t errstr_size);
void pw_config_destroy(pw_config_t *conf);

/** @brief Prints the variables, their defaults and meaning (for --help). */
void pw_config_print_help(FILE *out);

#endif
