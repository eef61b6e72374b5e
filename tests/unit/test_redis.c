/* Unit tests of common/redis.c: which error replies report the server's state. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server_state_errors_are_known_by_their_code),
        cmocka_unit_test(test_a_scripts_failed_call_counts_in_either_redis_format),
        cmocka_unit_test(test_a_commands_own_errors_are_not_the_servers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
