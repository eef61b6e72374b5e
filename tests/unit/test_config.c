/* Unit tests of the configuration table and loader. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"

/* A fake environment: NULL-terminated "NAME=value" list. */
static char **test_env;

static const char *test_getenv(const char *name)
{
    size_t len = strlen(name);
    for (char **e = test_env; e && *e; e++)
        if (strncmp(*e, name, len) == 0 && (*e)[len] == '=')
            return *e + len + 1;
    return NULL;
}

static pw_config_t *load(char **env, pw_config_need_t needs, char *errstr, size_t size)
{
    test_env = env;
    return pw_config_load(test_getenv, env, needs, errstr, size);
}

static void test_defaults_follow_the_contract(void **state)
{
    (void)state;
    char *env[] = {"KAFKA_BOOTSTRAP_SERVERS=k:9092", "TOKEN_KEYS_FILE=/k", NULL};
    char errstr[2048];
    pw_config_t *conf =
        load(env, PW_CONFIG_NEED_KAFKA | PW_CONFIG_NEED_KEYS, errstr, sizeof(errstr));
    assert_non_null(conf);
    assert_string_equal(conf->kafka_group_id, "publish-worker");
    assert_string_equal(conf->topic_publish_requests, "publish.requests");
    assert_string_equal(conf->topic_publish_results, "publish.results");
    assert_string_equal(conf->topic_alerts, "publish.alerts");
    assert_string_equal(conf->topic_dead_letter, "publish.dlq");
    assert_string_equal(conf->topic_account_events, "account.events");
    assert_string_equal(conf->redis_url, "redis://127.0.0.1:6379/0");
    assert_string_equal(conf->threads_api_base_url, "https://graph.threads.net");
    assert_string_equal(conf->metrics_addr, "0.0.0.0:9102");
    assert_string_equal(conf->log_level, "info");
    assert_int_equal(conf->worker_concurrency, 64);
    assert_int_equal(conf->token_refresh_ahead_s, 604800);
    assert_int_equal(conf->auth_alert_threshold, 3);
    assert_int_equal(conf->auth_alert_window_s, 900);
    assert_int_equal(conf->publish_max_attempts, 5);
    assert_non_null(conf->worker_id);
    assert_null(conf->oauth2_client_secret);
    pw_config_destroy(conf);
}

static void test_every_problem_is_reported_naming_its_variable(void **state)
{
    (void)state;
    char *env[] = {"WORKER_CONCURRENCY=0",
                   "PUBLISH_MAX_ATTEMPTS=abc",
                   "REDIS_URL=http://x",
                   "THREADS_API_BASE_URL=ftp://x",
                   "METRICS_ADDR=nohost",
                   "LOG_LEVEL=loud",
                   "RDKAFKA_NO_SUCH_PROP=1",
                   "RDKAFKA_ENABLE_AUTO_OFFSET_STORE=true",
                   NULL};
    char errstr[4096];
    pw_config_t *conf =
        load(env, PW_CONFIG_NEED_KAFKA | PW_CONFIG_NEED_KEYS, errstr, sizeof(errstr));
    assert_null(conf);
    const char *expected[] = {
        "KAFKA_BOOTSTRAP_SERVERS: required",
        "TOKEN_KEYS_FILE: required",
        "WORKER_CONCURRENCY:",
        "PUBLISH_MAX_ATTEMPTS:",
        "REDIS_URL:",
        "THREADS_API_BASE_URL:",
        "METRICS_ADDR:",
        "LOG_LEVEL:",
        "RDKAFKA_NO_SUCH_PROP:",
        "RDKAFKA_ENABLE_AUTO_OFFSET_STORE:",
    };
    for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++)
        assert_non_null(strstr(errstr, expected[i]));
}

static void test_requirements_depend_on_the_command(void **state)
{
    (void)state;
    char *env[] = {"TOKEN_KEYS_FILE=/k", NULL};
    char errstr[1024];
    pw_config_t *conf = load(env, PW_CONFIG_NEED_KEYS, errstr, sizeof(errstr));
    assert_non_null(conf); /* token show needs no Kafka */
    pw_config_destroy(conf);
    assert_null(load(env, PW_CONFIG_NEED_KAFKA, errstr, sizeof(errstr)));
    assert_non_null(strstr(errstr, "KAFKA_BOOTSTRAP_SERVERS"));
}

static void test_rdkafka_pass_through(void **state)
{
    (void)state;
    char *env[] = {"KAFKA_BOOTSTRAP_SERVERS=k:1", "RDKAFKA_SECURITY_PROTOCOL=ssl",
                   "RDKAFKA_MESSAGE_MAX_BYTES=2000000", NULL};
    char errstr[1024];
    pw_config_t *conf = load(env, PW_CONFIG_NEED_KAFKA, errstr, sizeof(errstr));
    assert_non_null(conf);
    assert_int_equal(conf->rdkafka_prop_count, 4);
    assert_string_equal(conf->rdkafka_props[0], "security.protocol");
    assert_string_equal(conf->rdkafka_props[1], "ssl");
    assert_string_equal(conf->rdkafka_props[2], "message.max.bytes");
    assert_string_equal(conf->rdkafka_props[3], "2000000");
    pw_config_destroy(conf);
}

static void test_bounds_are_inclusive_and_empty_means_unset(void **state)
{
    (void)state;
    char *env[] = {"KAFKA_BOOTSTRAP_SERVERS=k:1", "WORKER_CONCURRENCY=4096",
                   "PUBLISH_MAX_ATTEMPTS=1", "KAFKA_GROUP_ID=", NULL};
    char errstr[1024];
    pw_config_t *conf = load(env, PW_CONFIG_NEED_KAFKA, errstr, sizeof(errstr));
    assert_non_null(conf);
    assert_int_equal(conf->worker_concurrency, 4096);
    assert_int_equal(conf->publish_max_attempts, 1);
    assert_string_equal(conf->kafka_group_id, "publish-worker");
    pw_config_destroy(conf);
}

static void test_secret_value_never_in_errors(void **state)
{
    (void)state;
    char *env[] = {"OAUTH2_CLIENT_SECRET=hunter2-very-secret", "WORKER_CONCURRENCY=x", NULL};
    char errstr[2048];
    assert_null(load(env, PW_CONFIG_NEED_KAFKA, errstr, sizeof(errstr)));
    assert_null(strstr(errstr, "hunter2"));
}

static void test_redis_allow_eviction_is_a_boolean_off_by_default(void **state)
{
    (void)state;
    char errstr[1024];
    char *unset[] = {"KAFKA_BOOTSTRAP_SERVERS=k:1", NULL};
    pw_config_t *conf = load(unset, PW_CONFIG_NEED_KAFKA, errstr, sizeof(errstr));
    assert_non_null(conf);
    assert_false(conf->redis_allow_eviction);
    pw_config_destroy(conf);
    char *on[] = {"KAFKA_BOOTSTRAP_SERVERS=k:1", "REDIS_ALLOW_EVICTION=TRUE", NULL};
    conf = load(on, PW_CONFIG_NEED_KAFKA, errstr, sizeof(errstr));
    assert_non_null(conf);
    assert_true(conf->redis_allow_eviction);
    pw_config_destroy(conf);
    char *bad[] = {"KAFKA_BOOTSTRAP_SERVERS=k:1", "REDIS_ALLOW_EVICTION=maybe", NULL};
    assert_null(load(bad, PW_CONFIG_NEED_KAFKA, errstr, sizeof(errstr)));
    assert_non_null(strstr(errstr, "REDIS_ALLOW_EVICTION: \"maybe\" is not true or false"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_follow_the_contract),
        cmocka_unit_test(test_every_problem_is_reported_naming_its_variable),
        cmocka_unit_test(test_requirements_depend_on_the_command),
        cmocka_unit_test(test_rdkafka_pass_through),
        cmocka_unit_test(test_bounds_are_inclusive_and_empty_means_unset),
        cmocka_unit_test(test_secret_value_never_in_errors),
        cmocka_unit_test(test_redis_allow_eviction_is_a_boolean_off_by_default),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
