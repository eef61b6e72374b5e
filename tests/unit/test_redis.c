/* Unit tests of common/redis.c: which error replies report the server's
 * state; pipelines against a real Redis (PW_TEST_REDIS_URL, database 13;
 * skipped when it is not set). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "redis.h"

static void test_server_state_errors_are_known_by_their_code(void **state)
{
    (void)state;
    static const struct {
        const char *reply;
        pw_redis_server_error_t kind;
        const char *name;
    } cases[] = {
        {"READONLY You can't write against a read only replica.", PW_REDIS_SERVER_READONLY,
         "readonly"},
        {"MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
         PW_REDIS_SERVER_MASTERDOWN, "masterdown"},
        {"OOM command not allowed when used memory > 'maxmemory'.", PW_REDIS_SERVER_OOM, "oom"},
        {"MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist",
         PW_REDIS_SERVER_MISCONF, "misconf"},
        {"LOADING Redis is loading the dataset in memory", PW_REDIS_SERVER_LOADING, "loading"},
        {"NOREPLICAS Not enough good replicas to write.", PW_REDIS_SERVER_NOREPLICAS, "noreplicas"},
        {"BUSY Redis is busy running a script.", PW_REDIS_SERVER_BUSY, "busy"},
        {"LOADING", PW_REDIS_SERVER_LOADING, "loading"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(pw_redis_server_error_of(cases[i].reply), cases[i].kind);
        assert_string_equal(pw_redis_server_error_name(cases[i].kind), cases[i].name);
        assert_non_null(pw_redis_server_error_fix(cases[i].kind));
    }
}

static void test_a_scripts_failed_call_counts_in_either_redis_format(void **state)
{
    (void)state;
    /* Redis 7 passes the call's error through; Redis 6 wraps it in ERR. */
    assert_int_equal(pw_redis_server_error_of("READONLY You can't write against a read only "
                                              "replica. script: 10a2, on @user_script:6."),
                     PW_REDIS_SERVER_READONLY);
    assert_int_equal(pw_redis_server_error_of("ERR Error running script (call to f_10a2): "
                                              "@user_script:6: @user_script: 6: -OOM command not "
                                              "allowed when used memory > 'maxmemory'."),
                     PW_REDIS_SERVER_OOM);
    assert_int_equal(pw_redis_server_error_of("ERR Error running script (call to f_10a2): "
                                              "@user_script:1: Script attempted to access a "
                                              "non local key"),
                     PW_REDIS_SERVER_OK);
}

static void test_a_commands_own_errors_are_not_the_servers(void **state)
{
    (void)state;
    const char *replies[] = {
        "NOSCRIPT No matching script. Please use EVAL.",
        "WRONGTYPE Operation against a key holding the wrong kind of value",
        "BUSYKEY Target key name already exists.",
        "BUSYGROUP Consumer Group name already exists",
        "ERR unknown command 'FOO'",
        "NOAUTH Authentication required.",
        "OOMPH not a code of ours",
        "",
        NULL,
    };
    for (size_t i = 0; i < sizeof(replies) / sizeof(replies[0]); i++)
        assert_int_equal(pw_redis_server_error_of(replies[i]), PW_REDIS_SERVER_OK);
    assert_null(pw_redis_server_error_name(PW_REDIS_SERVER_OK));
    assert_null(pw_redis_server_error_name(PW_REDIS_SERVER_COUNT));
}

/* A pool of one on database 13, emptied; NULL without a test Redis. */
static pw_redis_t *test_redis(void)
{
    const char *url = getenv("PW_TEST_REDIS_URL");
    if (!url)
        return NULL;
    char db_url[512], errstr[256];
    snprintf(db_url, sizeof(db_url), "%.*s/13", (int)(strrchr(url, '/') - url), url);
    pw_redis_t *redis = pw_redis_new(db_url, 1, 2000, errstr, sizeof(errstr));
    assert_non_null(redis);
    const char *flush[] = {"FLUSHDB"};
    redisReply *reply = pw_redis_command(redis, errstr, sizeof(errstr), 1, flush);
    assert_non_null(reply);
    freeReplyObject(reply);
    return redis;
}

static void test_a_pipeline_answers_each_command_in_order(void **state)
{
    (void)state;
    pw_redis_t *redis = test_redis();
    if (!redis)
        skip();
    pw_redis_pipe_t *pipe = pw_redis_pipe_new(redis);
    char key[32], value[32], errstr[256];
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        snprintf(value, sizeof(value), "v%d", i);
        const char *argv[] = {"SET", key, value};
        assert_int_equal(pw_redis_pipe_append(pipe, 3, argv, NULL), (size_t)i);
    }
    assert_int_equal(pw_redis_pipe_exec(pipe, errstr, sizeof(errstr)), 0);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(pw_redis_pipe_reply(pipe, (size_t)i)->type, REDIS_REPLY_STATUS);
    /* The next append starts afresh; an error reply is its command's value
     * alone, and the pool's one connection is free between executions. */
    const char *get[] = {"GET", "k7"}, *bad[] = {"LLEN", "k1"}, *get2[] = {"GET", "k999"};
    pw_redis_pipe_append(pipe, 2, get, NULL);
    pw_redis_pipe_append(pipe, 2, bad, NULL);
    pw_redis_pipe_append(pipe, 2, get2, NULL);
    assert_int_equal(pw_redis_pipe_count(pipe), 3);
    assert_null(pw_redis_pipe_reply(pipe, 0)); /* not executed yet */
    redisReply *direct = pw_redis_command(redis, errstr, sizeof(errstr), 2, get);
    assert_non_null(direct);
    freeReplyObject(direct);
    assert_int_equal(pw_redis_pipe_exec(pipe, errstr, sizeof(errstr)), 0);
    assert_string_equal(pw_redis_pipe_reply(pipe, 0)->str, "v7");
    assert_int_equal(pw_redis_pipe_reply(pipe, 1)->type, REDIS_REPLY_ERROR);
    assert_non_null(strstr(pw_redis_pipe_reply(pipe, 1)->str, "WRONGTYPE"));
    assert_string_equal(pw_redis_pipe_reply(pipe, 2)->str, "v999");
    assert_null(pw_redis_pipe_reply(pipe, 3));
    pw_redis_pipe_destroy(pipe);
    pw_redis_destroy(redis);
}

static void test_a_pipeline_to_no_server_fails_as_a_value(void **state)
{
    (void)state;
    char errstr[256];
    pw_redis_t *redis = pw_redis_new("redis://127.0.0.1:1/0", 1, 500, errstr, sizeof(errstr));
    assert_non_null(redis);
    pw_redis_pipe_t *pipe = pw_redis_pipe_new(redis);
    const char *ping[] = {"PING"};
    pw_redis_pipe_append(pipe, 1, ping, NULL);
    assert_int_equal(pw_redis_pipe_exec(pipe, errstr, sizeof(errstr)), -1);
    assert_non_null(strstr(errstr, "cannot connect"));
    assert_null(pw_redis_pipe_reply(pipe, 0));
    pw_redis_pipe_destroy(pipe);
    pw_redis_destroy(redis);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server_state_errors_are_known_by_their_code),
        cmocka_unit_test(test_a_scripts_failed_call_counts_in_either_redis_format),
        cmocka_unit_test(test_a_commands_own_errors_are_not_the_servers),
        cmocka_unit_test(test_a_pipeline_answers_each_command_in_order),
        cmocka_unit_test(test_a_pipeline_to_no_server_fails_as_a_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
