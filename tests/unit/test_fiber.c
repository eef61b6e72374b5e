/* Unit tests of fibers and loops (fiber.c) and of Redis commands issued from
 * fibers (redis.c's pipelined connection per loop) against a real Redis
 * (PW_TEST_REDIS_URL; those are skipped when it is not set).
 * cmocka's assertions jump out of the test, which must not happen on a fiber's
 * stack: fibers record what they saw and the test asserts after the join. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cmocka.h>

#include "fiber.h"
#include "redis.h"

/* ---- liveness and cancellation ---- */

static void blocks_its_loop(void *arg)
{
    atomic_int *state = arg;
    atomic_store(state, 1);
    usleep(1500 * 1000); /* a real block: the loop cannot go round */
    atomic_store(state, 2);
}

static void test_a_wedged_loop_shows_in_its_idle_time(void **state)
{
    (void)state;
    atomic_int progress = 0;
    pw_loop_t *loop = pw_loop_start(0);
    assert_true(pw_loop_idle_ms(loop) < 1000);
    pw_fiber_spawn(loop, 64 * 1024, blocks_its_loop, &progress);
    while (atomic_load(&progress) == 0)
        usleep(1000);
    usleep(1200 * 1000);
    int64_t wedged_ms = pw_loop_idle_ms(loop);
    while (atomic_load(&progress) != 2)
        usleep(1000);
    usleep(100 * 1000);
    int64_t after_ms = pw_loop_idle_ms(loop);
    pw_loop_join(loop);
    assert_true(wedged_ms >= 1000);
    assert_true(after_ms < 1000); /* idle loops still go round once a second */
}

/* ---- sleeping and ordering ---- */

typedef struct {
    int order[3];
    int done;
} sleepers_t;

typedef struct {
    sleepers_t *s;
    int id;
    long ms;
} sleeper_t;

static void sleeper(void *arg)
{
    sleeper_t *me = arg;
    pw_sleep_ms(me->ms);
    me->s->order[me->s->done++] = me->id; /* one loop thread: no race */
}

static void test_sleeping_fibers_wake_in_deadline_order(void **state)
{
    (void)state;
    sleepers_t s = {0};
    sleeper_t fibers[3] = {{&s, 0, 60}, {&s, 1, 20}, {&s, 2, 40}};
    int64_t start = pw_mono_ms();
    pw_loop_t *loop = pw_loop_start(0);
    for (int i = 0; i < 3; i++)
        pw_fiber_spawn(loop, 64 * 1024, sleeper, &fibers[i]);
    pw_loop_join(loop);
    assert_int_equal(s.done, 3);
    assert_int_equal(s.order[0], 1);
    assert_int_equal(s.order[1], 2);
    assert_int_equal(s.order[2], 0);
    assert_true(pw_mono_ms() - start >= 60);
}

/* ---- wake-ups ---- */

typedef struct {
    _Atomic(pw_fiber_t *) self;
    atomic_bool go;
    atomic_int waits;
    bool early_wake_returned;
} waiter_t;

static void waiter(void *arg)
{
    waiter_t *w = arg;
    /* A wake-up before the wait is kept: this wait returns at once. */
    pw_fiber_wake(pw_fiber_current());
    pw_fiber_wait();
    w->early_wake_returned = true;
    atomic_store(&w->self, pw_fiber_current());
    while (!atomic_load(&w->go)) {
        atomic_fetch_add(&w->waits, 1);
        pw_fiber_wait();
    }
}

static void test_wake_from_another_thread(void **state)
{
    (void)state;
    waiter_t w = {.self = NULL};
    pw_loop_t *loop = pw_loop_start(0);
    pw_fiber_spawn(loop, 64 * 1024, waiter, &w);
    while (!atomic_load(&w.self))
        pw_sleep_ms(1);
    pw_sleep_ms(20); /* it is asleep in its wait by now */
    atomic_store(&w.go, true);
    pw_fiber_wake(atomic_load(&w.self));
    pw_loop_join(loop);
    assert_true(w.early_wake_returned);
    assert_int_equal(atomic_load(&w.waits), 1); /* no busy looping */
}

/* ---- socket watches ---- */

typedef struct {
    int fd;
    pw_fiber_t *fiber;
    bool readable;
    char got;
} reader_t;

static void reader_on_ready(void *arg, uint32_t revents)
{
    reader_t *r = arg;
    if (revents & EPOLLIN) {
        r->readable = true;
        pw_fiber_wake(r->fiber);
    }
}

static void reader(void *arg)
{
    reader_t *r = arg;
    r->fiber = pw_fiber_current();
    pw_loop_watch_t watch = {.fd = r->fd, .on_ready = reader_on_ready, .arg = r};
    pw_loop_watch_set(pw_loop_current(), &watch, EPOLLIN);
    while (!r->readable)
        pw_fiber_wait();
    pw_loop_watch_set(pw_loop_current(), &watch, 0);
    if (read(r->fd, &r->got, 1) != 1)
        r->got = '?';
}

static void test_watch_wakes_a_fiber_when_readable(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    reader_t r = {.fd = fds[0]};
    pw_loop_t *loop = pw_loop_start(0);
    pw_fiber_spawn(loop, 64 * 1024, reader, &r);
    pw_sleep_ms(20);
    assert_int_equal(write(fds[1], "x", 1), 1);
    pw_loop_join(loop);
    assert_int_equal(r.got, 'x');
    close(fds[0]);
    close(fds[1]);
}

/* ---- many fibers over two loops ---- */

static atomic_int steps;

static void stepper(void *arg)
{
    (void)arg;
    for (int i = 0; i < 5; i++) {
        pw_sleep_ms(1);
        atomic_fetch_add(&steps, 1);
    }
}

static void test_many_fibers_over_two_loops(void **state)
{
    (void)state;
    atomic_store(&steps, 0);
    pw_loop_t *loops[2] = {pw_loop_start(0), pw_loop_start(1)};
    for (int i = 0; i < 300; i++)
        pw_fiber_spawn(loops[i % 2], 64 * 1024, stepper, NULL);
    pw_loop_join(loops[0]);
    pw_loop_join(loops[1]);
    assert_int_equal(atomic_load(&steps), 1500);
}

/* ---- Redis from fibers ---- */

static pw_redis_t *redis_for_test(int timeout_ms)
{
    const char *url = getenv("PW_TEST_REDIS_URL");
    if (!url)
        return NULL;
    char db_url[512]; /* a database of our own: the black-box tests use 0 */
    snprintf(db_url, sizeof(db_url), "%.*s/14", (int)(strrchr(url, '/') - url), url);
    char errstr[256];
    pw_redis_t *redis = pw_redis_new(db_url, 2, timeout_ms, errstr, sizeof(errstr));
    assert_non_null(redis);
    const char *flush[] = {"FLUSHDB"};
    redisReply *reply = pw_redis_command(redis, errstr, sizeof(errstr), 1, flush);
    assert_non_null(reply);
    freeReplyObject(reply);
    return redis;
}

typedef struct {
    pw_redis_t *redis;
    int failures;
    bool hash_ok;
    char error[256];
    int64_t took_ms;
} redis_fiber_t;

static void incrementer(void *arg)
{
    redis_fiber_t *rf = arg;
    char errstr[256];
    for (int i = 0; i < 10; i++) {
        const char *argv[] = {"INCR", "counter"};
        redisReply *reply = pw_redis_command(rf->redis, errstr, sizeof(errstr), 2, argv);
        if (!reply || reply->type != REDIS_REPLY_INTEGER)
            rf->failures++;
        if (reply)
            freeReplyObject(reply);
    }
    const char *hset[] = {"HSET", "h", "a", "1", "b", "2"};
    redisReply *reply = pw_redis_command(rf->redis, errstr, sizeof(errstr), 6, hset);
    if (reply)
        freeReplyObject(reply);
    const char *hgetall[] = {"HGETALL", "h"};
    reply = pw_redis_command(rf->redis, errstr, sizeof(errstr), 2, hgetall);
    /* The reply outlives hiredis's callback: it is the caller's copy. */
    rf->hash_ok = reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 4 &&
                  reply->element[1]->len == 1 && reply->element[1]->str[0] == '1';
    if (reply)
        freeReplyObject(reply);
}

static void test_redis_commands_from_many_fibers(void **state)
{
    (void)state;
    pw_redis_t *redis = redis_for_test(2000);
    if (!redis)
        skip();
    redis_fiber_t rf[100];
    pw_loop_t *loops[2] = {pw_loop_start(0), pw_loop_start(1)};
    for (int i = 0; i < 100; i++) {
        rf[i] = (redis_fiber_t){.redis = redis};
        pw_fiber_spawn(loops[i % 2], 64 * 1024, incrementer, &rf[i]);
    }
    pw_loop_join(loops[0]);
    pw_loop_join(loops[1]);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(rf[i].failures, 0);
        assert_true(rf[i].hash_ok);
    }
    char errstr[256];
    const char *get[] = {"GET", "counter"};
    redisReply *reply = pw_redis_command(redis, errstr, sizeof(errstr), 2, get);
    assert_non_null(reply);
    assert_string_equal(reply->str, "1000");
    freeReplyObject(reply);
    pw_redis_destroy(redis);
}

static void slow_then_ping(void *arg)
{
    redis_fiber_t *rf = arg;
    char errstr[256];
    int64_t start = pw_mono_ms();
    const char *blpop[] = {"BLPOP", "never", "5"};
    redisReply *reply = pw_redis_command(rf->redis, errstr, sizeof(errstr), 3, blpop);
    rf->took_ms = pw_mono_ms() - start;
    if (reply) {
        freeReplyObject(reply);
        rf->failures++;
    } else {
        snprintf(rf->error, sizeof(rf->error), "%s", errstr);
    }
    const char *ping[] = {"PING"};
    reply = pw_redis_command(rf->redis, errstr, sizeof(errstr), 1, ping);
    rf->hash_ok = reply && reply->type == REDIS_REPLY_STATUS; /* reconnected */
    if (reply)
        freeReplyObject(reply);
}

static void test_redis_timeout_drops_connection_and_next_command_reconnects(void **state)
{
    (void)state;
    pw_redis_t *redis = redis_for_test(200);
    if (!redis)
        skip();
    redis_fiber_t rf = {.redis = redis};
    pw_loop_t *loop = pw_loop_start(0);
    pw_fiber_spawn(loop, 64 * 1024, slow_then_ping, &rf);
    pw_loop_join(loop);
    assert_int_equal(rf.failures, 0);
    assert_non_null(strstr(rf.error, "timed out"));
    assert_true(rf.took_ms >= 190 && rf.took_ms < 2000);
    assert_true(rf.hash_ok);
    pw_redis_destroy(redis);
}

static void unreachable(void *arg)
{
    redis_fiber_t *rf = arg;
    const char *ping[] = {"PING"};
    redisReply *reply = pw_redis_command(rf->redis, rf->error, sizeof(rf->error), 1, ping);
    if (reply) {
        rf->failures++;
        freeReplyObject(reply);
    }
}

static void test_redis_unreachable_fails_with_a_message(void **state)
{
    (void)state;
    char errstr[256];
    /* Port 1 on loopback: nothing listens there. */
    pw_redis_t *redis = pw_redis_new("redis://127.0.0.1:1/0", 2, 500, errstr, sizeof(errstr));
    assert_non_null(redis);
    redis_fiber_t rf = {.redis = redis};
    pw_loop_t *loop = pw_loop_start(0);
    pw_fiber_spawn(loop, 64 * 1024, unreachable, &rf);
    pw_loop_join(loop);
    assert_int_equal(rf.failures, 0);
    assert_non_null(strstr(rf.error, "127.0.0.1:1/0"));
    pw_redis_destroy(redis);
}

typedef struct {
    pw_redis_t *redis;
    char error[256];
    bool got_reply;
} setter_t;

static void setter(void *arg)
{
    setter_t *s = arg;
    const char *set[] = {"SET", "pw-test-fiber-wrong-db", "x"};
    redisReply *reply = pw_redis_command(s->redis, s->error, sizeof(s->error), 3, set);
    s->got_reply = reply != NULL;
    if (reply)
        freeReplyObject(reply);
}

static void test_redis_failed_select_fails_commands_never_runs_them_elsewhere(void **state)
{
    (void)state;
    const char *url = getenv("PW_TEST_REDIS_URL");
    if (!url)
        skip();
    char db_url[512], errstr[256];
    snprintf(db_url, sizeof(db_url), "%.*s/99", (int)(strrchr(url, '/') - url), url);
    pw_redis_t *redis = pw_redis_new(db_url, 2, 2000, errstr, sizeof(errstr));
    assert_non_null(redis);
    /* Three fibers at once: one connects, two wait at the gate for SELECT. */
    setter_t s[3];
    pw_loop_t *loop = pw_loop_start(0);
    for (int i = 0; i < 3; i++) {
        s[i] = (setter_t){.redis = redis};
        pw_fiber_spawn(loop, 64 * 1024, setter, &s[i]);
    }
    pw_loop_join(loop);
    for (int i = 0; i < 3; i++) {
        assert_false(s[i].got_reply);
        assert_non_null(strstr(s[i].error, "SELECT"));
    }
    pw_redis_destroy(redis);
    snprintf(db_url, sizeof(db_url), "%.*s/0", (int)(strrchr(url, '/') - url), url);
    pw_redis_t *db0 = pw_redis_new(db_url, 2, 2000, errstr, sizeof(errstr));
    assert_non_null(db0);
    const char *exists[] = {"EXISTS", "pw-test-fiber-wrong-db"};
    redisReply *reply = pw_redis_command(db0, errstr, sizeof(errstr), 2, exists);
    assert_non_null(reply);
    assert_int_equal(reply->integer, 0); /* not written to database 0 either */
    freeReplyObject(reply);
    pw_redis_destroy(db0);
}

/* redis://user:password@host:port/14 from PW_TEST_REDIS_URL. */
static void url_with_credentials(char *out, size_t size, const char *user, const char *password)
{
    const char *url = getenv("PW_TEST_REDIS_URL");
    const char *host = url + strlen("redis://");
    snprintf(out, size, "redis://%s:%s@%.*s/14", user, password, (int)(strrchr(host, '/') - host),
             host);
}

typedef struct {
    pw_redis_t *redis;
    char error[256];
    bool ok;
} pinger_t;

static void pinger(void *arg)
{
    pinger_t *pg = arg;
    const char *ping[] = {"PING"};
    redisReply *reply = pw_redis_command(pg->redis, pg->error, sizeof(pg->error), 1, ping);
    pg->ok = reply != NULL;
    if (reply)
        freeReplyObject(reply);
}

/* PING from a thread and from a fiber; returns how many succeeded and the
 * last error. */
static int ping_both_ways(const char *url, char *error, size_t size)
{
    char errstr[256];
    pw_redis_t *redis = pw_redis_new(url, 2, 2000, errstr, sizeof(errstr));
    assert_non_null(redis);
    int ok = 0;
    pinger_t pg = {.redis = redis};
    pinger(&pg);
    ok += pg.ok;
    pw_loop_t *loop = pw_loop_start(0);
    pw_fiber_spawn(loop, 64 * 1024, pinger, &pg);
    pw_loop_join(loop);
    ok += pg.ok;
    snprintf(error, size, "%s", pg.error);
    pw_redis_destroy(redis);
    return ok;
}

static void test_redis_auth_as_a_user_and_a_wrong_password_never_echoed(void **state)
{
    (void)state;
    pw_redis_t *admin = redis_for_test(2000);
    if (!admin)
        skip();
    char errstr[256], url[512], error[256];
    const char *setuser[] = {"ACL",           "SETUSER", "pw-fiber-test", "on",
                             ">right-pw-7d1", "~*",      "+@all"};
    redisReply *reply = pw_redis_command(admin, errstr, sizeof(errstr), 7, setuser);
    assert_non_null(reply);
    freeReplyObject(reply);

    url_with_credentials(url, sizeof(url), "pw-fiber-test", "right-pw-7d1");
    assert_int_equal(ping_both_ways(url, error, sizeof(error)), 2);
    url_with_credentials(url, sizeof(url), "pw-fiber-test", "wrong-pw-3c9");
    assert_int_equal(ping_both_ways(url, error, sizeof(error)), 0);
    assert_non_null(strstr(error, "AUTH"));
    assert_null(strstr(error, "wrong-pw-3c9"));

    const char *deluser[] = {"ACL", "DELUSER", "pw-fiber-test"};
    reply = pw_redis_command(admin, errstr, sizeof(errstr), 3, deluser);
    assert_non_null(reply);
    freeReplyObject(reply);
    pw_redis_destroy(admin);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_wedged_loop_shows_in_its_idle_time),
        cmocka_unit_test(test_sleeping_fibers_wake_in_deadline_order),
        cmocka_unit_test(test_wake_from_another_thread),
        cmocka_unit_test(test_watch_wakes_a_fiber_when_readable),
        cmocka_unit_test(test_many_fibers_over_two_loops),
        cmocka_unit_test(test_redis_commands_from_many_fibers),
        cmocka_unit_test(test_redis_timeout_drops_connection_and_next_command_reconnects),
        cmocka_unit_test(test_redis_unreachable_fails_with_a_message),
        cmocka_unit_test(test_redis_failed_select_fails_commands_never_runs_them_elsewhere),
        cmocka_unit_test(test_redis_auth_as_a_user_and_a_wrong_password_never_echoed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
