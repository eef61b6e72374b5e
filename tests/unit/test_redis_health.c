/* Unit tests of common/redis_health.c: reading INFO memory, judging the policy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "redis_health.h"

static const char info_memory[] = "# Memory\r\n"
                                  "used_memory:1063536\r\n"
                                  "maxmemory:1073741824\r\n"
                                  "maxmemory_human:1.00G\r\n"
                                  "maxmemory_policy:volatile-lru\r\n"
                                  "allocator_frag_ratio:1.00\r\n";

static void test_info_memory_gives_policy_and_limit(void **state)
{
    (void)state;
    pw_redis_memory_t mem;
    pw_redis_memory_parse(info_memory, &mem);
    assert_string_equal(mem.policy, "volatile-lru");
    assert_int_equal(mem.maxmemory, 1073741824LL);
    pw_redis_memory_parse("# Memory\nmaxmemory_policy:noeviction\nmaxmemory:0\n", &mem);
    assert_string_equal(mem.policy, "noeviction");
    assert_int_equal(mem.maxmemory, 0);
}

static void test_info_without_the_fields_says_nothing(void **state)
{
    (void)state;
    pw_redis_memory_t mem;
    pw_redis_memory_parse("# Memory\r\nused_memory:5\r\nmaxmemory_human:0B\r\n", &mem);
    assert_string_equal(mem.policy, "");
    assert_int_equal(mem.maxmemory, -1);
    pw_redis_memory_parse("", &mem);
    assert_string_equal(mem.policy, "");
}

static void test_only_noeviction_keeps_every_key(void **state)
{
    (void)state;
    assert_false(pw_redis_policy_evicts("noeviction"));
    const char *evicting[] = {"allkeys-lru",  "allkeys-lfu",        "allkeys-random",
                              "volatile-lru", "volatile-random",    "volatile-lfu",
                              "volatile-ttl", "some-future-policy", ""};
    for (size_t i = 0; i < sizeof(evicting) / sizeof(evicting[0]); i++)
        assert_true(pw_redis_policy_evicts(evicting[i]));
    assert_true(pw_redis_policy_evicts(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_info_memory_gives_policy_and_limit),
        cmocka_unit_test(test_info_without_the_fields_says_nothing),
        cmocka_unit_test(test_only_noeviction_keeps_every_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
