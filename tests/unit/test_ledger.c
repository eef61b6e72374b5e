/* Unit tests of the ledger: per-account order, holds, commit points at every
 * step, out-of-order completion, abandoned jobs, revoke with jobs in flight,
 * payloads released when answered, and keys that are not text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ledger.h"

#define TOPIC "publish.requests"

static pw_job_t *job_at(int32_t partition, int64_t offset, const char *key)
{
    char value[64];
    snprintf(value, sizeof(value), "{\"offset\": %lld}", (long long)offset);
    return pw_job_new(TOPIC, partition, offset, key, key ? strlen(key) : 0, value, strlen(value),
                      NULL);
}

/* The commit point collected now for partition, or -1 when none moved. */
static int64_t collect(pw_ledger_t *ledger, int32_t partition)
{
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(4);
    pw_ledger_collect(ledger, list);
    int64_t offset = -1;
    for (int i = 0; i < list->cnt; i++)
        if (list->elems[i].partition == partition)
            offset = list->elems[i].offset;
    rd_kafka_topic_partition_list_destroy(list);
    return offset;
}

/* Runs a taken job to its end: answered with one message, delivered. */
static void answer_and_deliver(pw_ledger_t *ledger, pw_job_t *job)
{
    pw_ledger_hold(ledger, job);
    pw_ledger_finish(ledger, job, true);
    pw_ledger_delivered(ledger, job);
}

static void test_one_account_runs_in_order(void **state)
{
    (void)state;
    pw_ledger_t *ledger = pw_ledger_new();
    pw_ledger_assign(ledger, TOPIC, 0);
    assert_true(pw_ledger_submit(ledger, job_at(0, 10, "acct-a")));
    assert_false(pw_ledger_submit(ledger, job_at(0, 11, "acct-a"))); /* behind the head */
    assert_int_equal(pw_ledger_ready(ledger), 1);
    pw_job_t *first = pw_ledger_take(ledger);
    assert_int_equal(first->offset, 10);
    assert_null(pw_ledger_take(ledger)); /* the second waits for the first */
    assert_int_equal(pw_ledger_running(ledger), 1);
    assert_int_equal(collect(ledger, 0), -1);

    pw_ledger_hold(ledger, first);
    assert_true(pw_ledger_finish(ledger, first, true)); /* readies offset 11 */
    assert_int_equal(collect(ledger, 0), -1);           /* its result is not in Kafka yet */
    pw_ledger_delivered(ledger, first);
    assert_int_equal(collect(ledger, 0), 11);
    assert_int_equal(collect(ledger, 0), -1); /* reported once */

    pw_job_t *second = pw_ledger_take(ledger);
    assert_int_equal(second->offset, 11);
    answer_and_deliver(ledger, second);
    assert_int_equal(collect(ledger, 0), 12);
    assert_int_equal(pw_ledger_in_flight(ledger), 0);
    pw_ledger_destroy(ledger);
}

static void test_accounts_run_at_once_and_finish_out_of_order(void **state)
{
    (void)state;
    pw_ledger_t *ledger = pw_ledger_new();
    pw_ledger_submit(ledger, job_at(0, 0, "acct-a"));
    pw_ledger_submit(ledger, job_at(0, 1, "acct-b"));
    pw_ledger_submit(ledger, job_at(0, 2, "acct-c"));
    assert_int_equal(pw_ledger_ready(ledger), 3);
    pw_job_t *a = pw_ledger_take(ledger), *b = pw_ledger_take(ledger), *c = pw_ledger_take(ledger);
    assert_int_equal(pw_ledger_running(ledger), 3);

    answer_and_deliver(ledger, c); /* the last offset first: nothing to commit */
    assert_int_equal(collect(ledger, 0), -1);
    answer_and_deliver(ledger, a);
    assert_int_equal(collect(ledger, 0), 1); /* up to b, still running */
    answer_and_deliver(ledger, b);
    assert_int_equal(collect(ledger, 0), 3); /* b and the finished c retire together */
    pw_ledger_destroy(ledger);
}

static void test_a_job_settles_after_its_last_delivery(void **state)
{
    (void)state;
    pw_ledger_t *ledger = pw_ledger_new();
    pw_ledger_submit(ledger, job_at(0, 5, "acct-a"));
    pw_job_t *job = pw_ledger_take(ledger);
    pw_ledger_hold(ledger, job); /* a result */
    pw_ledger_hold(ledger, job); /* an alert */
    pw_ledger_hold(ledger, job); /* an account event */
    pw_ledger_finish(ledger, job, true);
    pw_ledger_delivered(ledger, job);
    pw_ledger_delivered(ledger, job);
    assert_int_equal(collect(ledger, 0), -1);
    assert_int_equal(pw_ledger_in_flight(ledger), 1);
    pw_ledger_delivered(ledger, job);
    assert_int_equal(collect(ledger, 0), 6);
    assert_int_equal(pw_ledger_in_flight(ledger), 0);
    pw_ledger_destroy(ledger);
}

static void test_an_undeliverable_message_holds_the_commit_point(void **state)
{
    (void)state;
    pw_ledger_t *ledger = pw_ledger_new();
    pw_ledger_submit(ledger, job_at(0, 0, "acct-a"));
    pw_ledger_submit(ledger, job_at(0, 1, "acct-b"));
    pw_job_t *a = pw_ledger_take(ledger), *b = pw_ledger_take(ledger);
    pw_ledger_hold(ledger, a);
    pw_ledger_finish(ledger, a, true);
    pw_ledger_undeliverable(ledger, a); /* its result never reached Kafka */
    answer_and_deliver(ledger, b);
    assert_int_equal(collect(ledger, 0), -1); /* never past offset 0 */
    assert_int_equal(pw_ledger_in_flight(ledger), 0);
    pw_ledger_destroy(ledger);
}

static void test_a_job_that_gave_up_is_not_committed(void **state)
{
    (void)state;
    pw_ledger_t *ledger = pw_ledger_new();
    pw_ledger_submit(ledger, job_at(0, 0, "acct-a"));
    pw_ledger_submit(ledger, job_at(0, 1, "acct-a"));
    pw_job_t *a = pw_ledger_take(ledger);
    pw_ledger_finish(ledger, a, false); /* stopping: abandoned */
    pw_job_t *next = pw_ledger_take(ledger);
    assert_int_equal(next->offset, 1);
    answer_and_deliver(ledger, next);
    assert_int_equal(collect(ledger, 0), -1);
    pw_ledger_destroy(ledger);
}

static void test_partitions_commit_apart(void **state)
{
    (void)state;
    pw_ledger_t *ledger = pw_ledger_new();
    pw_ledger_submit(ledger, job_at(0, 7, "acct-a"));
    pw_ledger_submit(ledger, job_at(1, 3, "acct-b"));
    pw_job_t *a = pw_ledger_take(ledger), *b = pw_ledger_take(ledger);
    answer_and_deliver(ledger, b);
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(4);
    assert_int_equal(pw_ledger_collect(ledger, list), 1);
    assert_int_equal(list->elems[0].partition, 1);
    assert_int_equal(list->elems[0].offset, 4);
    rd_kafka_topic_partition_list_destroy(list);
    answer_and_deliver(ledger, a);
    assert_int_equal(collect(ledger, 0), 8);
    pw_ledger_destroy(ledger);
}

static void test_revoke_drops_queued_and_waits_for_running(void **state)
{
    (void)state;
    pw_ledger_t *ledger = pw_ledger_new();
    pw_ledger_submit(ledger, job_at(0, 0, "acct-a"));
    pw_ledger_submit(ledger, job_at(0, 1, "acct-a")); /* queued behind the first */
    pw_ledger_submit(ledger, job_at(0, 2, "acct-b")); /* ready, not started */
    pw_ledger_submit(ledger, job_at(1, 0, "acct-c")); /* another partition */
    pw_job_t *running = pw_ledger_take(ledger);
    assert_int_equal(running->offset, 0);

    pw_ledger_revoke_start(ledger, TOPIC, 0);
    assert_int_equal(pw_ledger_unsettled(ledger, TOPIC, 0), 1);
    pw_job_t *other = pw_ledger_take(ledger); /* acct-b's job was dropped */
    assert_int_equal(other->partition, 1);
    assert_null(pw_ledger_take(ledger));

    pw_ledger_hold(ledger, running);
    assert_false(pw_ledger_finish(ledger, running, true));      /* offset 1 was dropped */
    assert_int_equal(pw_ledger_unsettled(ledger, TOPIC, 0), 1); /* waits for delivery */
    pw_ledger_delivered(ledger, running);
    assert_int_equal(pw_ledger_unsettled(ledger, TOPIC, 0), 0);

    rd_kafka_topic_partition_list_t *final = rd_kafka_topic_partition_list_new(1);
    pw_ledger_revoke_finish(ledger, TOPIC, 0, final);
    assert_int_equal(final->cnt, 1);
    assert_int_equal(final->elems[0].offset, 1); /* only the answered one */
    rd_kafka_topic_partition_list_destroy(final);
    assert_int_equal(pw_ledger_in_flight(ledger), 1); /* partition 1's job */
    answer_and_deliver(ledger, other);
    assert_int_equal(collect(ledger, 1), 1);
    pw_ledger_destroy(ledger);
}

static void test_revoke_with_a_job_still_running_orphans_it(void **state)
{
    (void)state;
    pw_ledger_t *ledger = pw_ledger_new();
    pw_ledger_submit(ledger, job_at(0, 0, "acct-a"));
    pw_job_t *running = pw_ledger_take(ledger);
    pw_ledger_revoke_start(ledger, TOPIC, 0);
    rd_kafka_topic_partition_list_t *final = rd_kafka_topic_partition_list_new(1);
    pw_ledger_revoke_finish(ledger, TOPIC, 0, final); /* timed out waiting */
    assert_int_equal(final->cnt, 0);                  /* nothing committed for it */
    rd_kafka_topic_partition_list_destroy(final);
    /* It finishes later: freed then (ASan checks), nothing to commit. */
    answer_and_deliver(ledger, running);
    assert_int_equal(pw_ledger_in_flight(ledger), 0);
    assert_int_equal(collect(ledger, 0), -1);
    pw_ledger_destroy(ledger);
}

static void test_a_queue_spanning_partitions_goes_on_after_a_revoke(void **state)
{
    (void)state;
    pw_ledger_t *ledger = pw_ledger_new();
    pw_ledger_submit(ledger, job_at(0, 0, "acct-a")); /* head, ready, never started */
    pw_ledger_submit(ledger, job_at(1, 0, "acct-a")); /* same key, kept partition */
    pw_ledger_revoke_start(ledger, TOPIC, 0);
    pw_job_t *next = pw_ledger_take(ledger);
    assert_non_null(next);
    assert_int_equal(next->partition, 1);
    answer_and_deliver(ledger, next);
    assert_int_equal(collect(ledger, 1), 1);
    pw_ledger_destroy(ledger);
}

static void test_stop_starting_leaves_queued_jobs_uncommitted(void **state)
{
    (void)state;
    pw_ledger_t *ledger = pw_ledger_new();
    pw_ledger_submit(ledger, job_at(0, 0, "acct-a"));
    pw_ledger_submit(ledger, job_at(0, 1, "acct-a"));
    pw_job_t *a = pw_ledger_take(ledger);
    pw_ledger_stop_starting(ledger);
    pw_ledger_hold(ledger, a);
    assert_false(pw_ledger_finish(ledger, a, true));
    pw_ledger_delivered(ledger, a);
    assert_null(pw_ledger_take(ledger));
    assert_int_equal(collect(ledger, 0), 1);
    pw_ledger_destroy(ledger);
}

static void test_payload_released_when_answered(void **state)
{
    (void)state;
    pw_ledger_t *ledger = pw_ledger_new();
    pw_ledger_submit(ledger, job_at(0, 0, "acct-slow"));
    pw_ledger_submit(ledger, job_at(0, 1, "acct-fast"));
    pw_job_t *slow = pw_ledger_take(ledger), *fast = pw_ledger_take(ledger);
    int jobs;
    size_t bytes;
    assert_true(pw_ledger_buffered(ledger, TOPIC, 0, &jobs, &bytes));
    assert_int_equal(jobs, 2);
    size_t both = bytes;
    assert_true(both > 0);
    pw_ledger_hold(ledger, fast);
    pw_ledger_finish(ledger, fast, true);
    /* Answered but waiting behind the slow head: bookkeeping only. */
    assert_null(fast->value);
    assert_true(pw_ledger_buffered(ledger, TOPIC, 0, &jobs, &bytes));
    assert_int_equal(jobs, 1);
    assert_true(bytes < both);
    assert_int_equal(pw_ledger_buffered_bytes(ledger), bytes);
    pw_ledger_delivered(ledger, fast);
    answer_and_deliver(ledger, slow);
    assert_int_equal(collect(ledger, 0), 2);
    assert_int_equal(pw_ledger_buffered_bytes(ledger), 0);
    pw_ledger_destroy(ledger);
}

static void test_messages_without_a_key_keep_partition_order(void **state)
{
    (void)state;
    pw_ledger_t *ledger = pw_ledger_new();
    pw_ledger_submit(ledger, job_at(0, 0, NULL));
    pw_ledger_submit(ledger, job_at(0, 1, NULL));
    /* A key with a NUL in it is not text: ordered by partition too. */
    pw_ledger_submit(ledger, pw_job_new(TOPIC, 0, 2, "a\0b", 3, "x", 1, NULL));
    assert_int_equal(pw_ledger_ready(ledger), 1);
    pw_job_t *job = pw_ledger_take(ledger);
    for (int64_t expected = 0; job; expected++) {
        assert_int_equal(job->offset, expected);
        assert_null(pw_ledger_take(ledger));
        answer_and_deliver(ledger, job);
        job = pw_ledger_take(ledger);
    }
    assert_int_equal(collect(ledger, 0), 3);
    pw_ledger_destroy(ledger);
}

static void test_many_accounts_grow_the_table(void **state)
{
    (void)state;
    pw_ledger_t *ledger = pw_ledger_new();
    char key[32];
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof(key), "acct-%d", i % 1000);
        pw_ledger_submit(ledger, job_at(0, i, key));
    }
    assert_int_equal(pw_ledger_ready(ledger), 1000);
    int done = 0;
    for (pw_job_t *job; (job = pw_ledger_take(ledger)); done++)
        answer_and_deliver(ledger, job);
    assert_int_equal(done, 2000);
    assert_int_equal(collect(ledger, 0), 2000);
    pw_ledger_destroy(ledger);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_account_runs_in_order),
        cmocka_unit_test(test_accounts_run_at_once_and_finish_out_of_order),
        cmocka_unit_test(test_a_job_settles_after_its_last_delivery),
        cmocka_unit_test(test_an_undeliverable_message_holds_the_commit_point),
        cmocka_unit_test(test_a_job_that_gave_up_is_not_committed),
        cmocka_unit_test(test_partitions_commit_apart),
        cmocka_unit_test(test_revoke_drops_queued_and_waits_for_running),
        cmocka_unit_test(test_revoke_with_a_job_still_running_orphans_it),
        cmocka_unit_test(test_a_queue_spanning_partitions_goes_on_after_a_revoke),
        cmocka_unit_test(test_stop_starting_leaves_queued_jobs_uncommitted),
        cmocka_unit_test(test_payload_released_when_answered),
        cmocka_unit_test(test_messages_without_a_key_keep_partition_order),
        cmocka_unit_test(test_many_accounts_grow_the_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
