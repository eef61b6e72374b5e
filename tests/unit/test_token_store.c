/* Unit tests of the token store's and refresh lock's Lua scripts against a
 * real Redis (PW_TEST_REDIS_URL; skipped when it is not set): fenced writes,
 * a stale lock holder's late write, compare-and-delete release, sealing at
 * rest. Uses database 15 and flushes it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "crypto.h"
#include "token_refresh.h"
#include "token_store.h"

#define KEY_A "A:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

typedef struct fixture_s {
    pw_redis_t *redis;
    pw_keyring_t *ring;
    pw_token_store_t *store;
} fixture_t;

static void command(pw_redis_t *redis, int argc, const char **argv)
{
    char errstr[256];
    redisReply *reply = pw_redis_command(redis, errstr, sizeof(errstr), argc, argv);
    assert_non_null(reply);
    freeReplyObject(reply);
}

static int setup(void **state)
{
    const char *url = getenv("PW_TEST_REDIS_URL");
    if (!url)
        return 0;
    /* A database of our own: the black-box tests use 0. */
    char db_url[512];
    snprintf(db_url, sizeof(db_url), "%.*s/15", (int)(strrchr(url, '/') - url), url);
    fixture_t *f = calloc(1, sizeof(*f));
    char errstr[256];
    f->redis = pw_redis_new(db_url, 2, 2000, errstr, sizeof(errstr));
    assert_non_null(f->redis);
    f->ring = pw_keyring_parse(KEY_A, "test", errstr, sizeof(errstr));
    f->store = pw_token_store_new(f->redis, f->ring);
    const char *flush[] = {"FLUSHDB"};
    command(f->redis, 1, flush);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    if (!f)
        return 0;
    pw_token_store_destroy(f->store);
    pw_keyring_destroy(f->ring);
    pw_redis_destroy(f->redis);
    free(f);
    return 0;
}

static pw_token_t make_token(const char *access)
{
    pw_token_t t = {
        .account_id = "acct-1",
        .user_id = "u1",
        .issued_at = 1000,
        .expires_at = 5000,
        .access_token = pw_secret_new(access, strlen(access)),
    };
    return t;
}

static pw_token_t *get(fixture_t *f)
{
    pw_token_t *t = NULL;
    char errstr[256];
    assert_int_equal(pw_token_store_get(f->store, "acct-1", &t, errstr, sizeof(errstr)), PW_TS_OK);
    return t;
}

static void test_stale_holder_late_write_is_rejected(void **state)
{
    fixture_t *f = *state;
    if (!f)
        skip();
    char errstr[256];
    pw_token_t t = make_token("THAA-put");
    int64_t fence = 0;
    assert_int_equal(pw_token_store_put(f->store, &t, &fence, errstr, sizeof(errstr)), PW_TS_OK);
    assert_int_equal(fence, 1);

    /* Holder 1 takes the lock, then stalls past its lease. */
    int64_t f1 = pw_refresh_lock_acquire(f->redis, "acct-1", "holder-1", 100);
    assert_int_equal(f1, 2);
    assert_int_equal(pw_refresh_lock_acquire(f->redis, "acct-1", "holder-2", 100), 0);
    usleep(250 * 1000);
    /* Holder 2 takes the expired lock and writes its token. */
    int64_t f2 = pw_refresh_lock_acquire(f->redis, "acct-1", "holder-2", 10000);
    assert_int_equal(f2, 3);
    pw_token_t t2 = make_token("THAA-holder-2");
    assert_int_equal(pw_token_store_write_fenced(f->store, &t2, f2, errstr, sizeof(errstr)),
                     PW_TS_OK);
    /* Holder 1 wakes up: its write and its release are both refused. */
    pw_token_t t1 = make_token("THAA-holder-1");
    assert_int_equal(pw_token_store_write_fenced(f->store, &t1, f1, errstr, sizeof(errstr)),
                     PW_TS_STALE);
    assert_int_equal(pw_refresh_lock_release(f->redis, "acct-1", "holder-1"), 0);
    pw_token_t *stored = get(f);
    assert_string_equal(pw_secret_reveal(stored->access_token), "THAA-holder-2");
    assert_int_equal(stored->fence, 3);
    pw_token_destroy(stored);
    assert_int_equal(pw_refresh_lock_release(f->redis, "acct-1", "holder-2"), 1);
    assert_int_equal(pw_refresh_lock_acquire(f->redis, "acct-1", "holder-3", 100), 4);

    pw_secret_destroy(t.access_token);
    pw_secret_destroy(t1.access_token);
    pw_secret_destroy(t2.access_token);
}

static void test_put_wins_over_a_refresh_started_before_it(void **state)
{
    fixture_t *f = *state;
    if (!f)
        skip();
    char errstr[256];
    pw_token_t t = make_token("THAA-old");
    assert_int_equal(pw_token_store_put(f->store, &t, NULL, errstr, sizeof(errstr)), PW_TS_OK);
    int64_t fr = pw_refresh_lock_acquire(f->redis, "acct-1", "refresher", 10000);
    pw_token_t manual = make_token("THAA-operator");
    assert_int_equal(pw_token_store_put(f->store, &manual, NULL, errstr, sizeof(errstr)), PW_TS_OK);
    pw_token_t refreshed = make_token("THAA-refreshed");
    assert_int_equal(pw_token_store_write_fenced(f->store, &refreshed, fr, errstr, sizeof(errstr)),
                     PW_TS_STALE);
    pw_token_t *stored = get(f);
    assert_string_equal(pw_secret_reveal(stored->access_token), "THAA-operator");
    pw_token_destroy(stored);
    pw_secret_destroy(t.access_token);
    pw_secret_destroy(manual.access_token);
    pw_secret_destroy(refreshed.access_token);
}

static void test_refresh_keeps_refresh_token_when_not_rotated(void **state)
{
    fixture_t *f = *state;
    if (!f)
        skip();
    char errstr[256];
    pw_token_t t = make_token("AT-1");
    t.refresh_method = PW_REFRESH_OAUTH2;
    t.refresh_token = pw_secret_new("RT-1", 4);
    assert_int_equal(pw_token_store_put(f->store, &t, NULL, errstr, sizeof(errstr)), PW_TS_OK);
    int64_t fr = pw_refresh_lock_acquire(f->redis, "acct-1", "r", 10000);
    pw_token_t next = make_token("AT-2");
    next.refresh_method = PW_REFRESH_OAUTH2; /* no refresh_token field: keep the stored one */
    assert_int_equal(pw_token_store_write_fenced(f->store, &next, fr, errstr, sizeof(errstr)),
                     PW_TS_OK);
    pw_token_t *stored = get(f);
    assert_string_equal(pw_secret_reveal(stored->access_token), "AT-2");
    assert_string_equal(pw_secret_reveal(stored->refresh_token), "RT-1");
    pw_token_destroy(stored);
    /* An empty token is never stored. */
    pw_token_t empty = make_token("");
    assert_int_equal(pw_token_store_write_fenced(f->store, &empty, fr + 10, errstr, sizeof(errstr)),
                     PW_TS_ERROR);
    pw_secret_destroy(empty.access_token);
    pw_secret_destroy(t.access_token);
    pw_secret_destroy(t.refresh_token);
    pw_secret_destroy(next.access_token);
}

static void test_refresh_due_and_allowed(void **state)
{
    (void)state;
    pw_token_t t = make_token("x");
    /* A 60-day token is due a week before expiry... */
    t.issued_at = 0;
    t.expires_at = 60 * 86400;
    assert_false(pw_token_refresh_due(&t, 604800, 52 * 86400));
    assert_true(pw_token_refresh_due(&t, 604800, 54 * 86400));
    /* ...a one-hour token at half-life, not in a loop. */
    t.expires_at = 3600;
    assert_false(pw_token_refresh_due(&t, 604800, 1700));
    assert_true(pw_token_refresh_due(&t, 604800, 1900));
    /* threads: once 24 hours old and not expired. */
    t.expires_at = 60 * 86400;
    assert_false(pw_token_refresh_allowed(&t, 86399));
    assert_true(pw_token_refresh_allowed(&t, 86400));
    assert_false(pw_token_refresh_allowed(&t, 60 * 86400));
    pw_secret_destroy(t.access_token);
}

static void test_token_endpoint_bodies(void **state)
{
    (void)state;
    pw_secret_t *at, *rt;
    long ei;
    assert_int_equal(pw_token_refresh_parse("{\"access_token\":\"A\",\"expires_in\":3600,"
                                            "\"refresh_token\":\"R\"}",
                                            &at, &rt, &ei),
                     0);
    assert_string_equal(pw_secret_reveal(at), "A");
    assert_string_equal(pw_secret_reveal(rt), "R");
    assert_int_equal(ei, 3600);
    pw_secret_destroy(at);
    pw_secret_destroy(rt);
    assert_int_equal(
        pw_token_refresh_parse("{\"access_token\":\"\",\"expires_in\":3600}", &at, &rt, &ei), -1);
    assert_int_equal(pw_token_refresh_parse("{\"access_token\":\"A\"}", &at, &rt, &ei), -1);
    assert_int_equal(pw_token_refresh_parse("oops", &at, &rt, &ei), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stale_holder_late_write_is_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_wins_over_a_refresh_started_before_it, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_refresh_keeps_refresh_token_when_not_rotated, setup,
                                        teardown),
        cmocka_unit_test(test_refresh_due_and_allowed),
        cmocka_unit_test(test_token_endpoint_bodies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
