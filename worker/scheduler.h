/* Scheduler: runs posts concurrently while keeping each account's order, and
 * tracks which offsets are safe to commit.
 *
 * DESIGN (after Confluent's Parallel Consumer, key ordering):
 *  - Every consumed message becomes a job. Jobs with the same order key (the
 *    message key: requests are keyed by account_id) form a queue; only a
 *    queue's head runs, so one account's posts go out in partition order,
 *    while heads of different queues run at once, each on a worker fiber
 *    (see fiber.h): WORKER_CONCURRENCY fibers spread over a few loop threads.
 *  - A job holds one "pending" count while its pipeline runs and one per
 *    message it produced; delivery reports release them. At zero the job is
 *    done: its outcome is durably in Kafka.
 *  - Per partition, jobs sit in offset order; the offset to commit is that of
 *    the lowest job not done (or the last one + 1). Nothing past a job that
 *    is still in flight, or that was abandoned at shutdown, is committed.
 *  - A revoke drops the partition's queued jobs, waits (bounded) for its
 *    running ones, and hands back the final offsets.
 * One mutex guards it all; work per job under it is O(1). */
#ifndef PW_SCHEDULER_H
#define PW_SCHEDULER_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct pw_sched_s pw_sched_t;
typedef struct pw_partition_s pw_partition_t;
typedef struct pw_account_queue_s pw_account_queue_t;

typedef struct pw_job_s {
    /* The consumed message, copied (the job owns these). */
    char *topic;
    int32_t partition;
    int64_t offset;
    char *key; /* NUL-terminated copy; NULL when the message had none */
    size_t key_len;
    char *value;
    size_t value_len;
    rd_kafka_headers_t *headers; /* NULL when none */
    int64_t consumed_mono_ms;

    /* Scheduler state: guarded by the scheduler's lock. */
    struct pw_job_s *next;       /* in its account queue */
    struct pw_job_s *ready_next; /* in the ready list */
    struct pw_job_s *part_next;  /* in its partition, offset order */
    pw_account_queue_t *queue;
    pw_partition_t *part; /* NULL once its partition was revoked */
    int pending;
    bool running;
    bool done;
    bool abandoned;
} pw_job_t;

typedef struct pw_sched_ops_s {
    /* Called on each worker fiber at start and end; returns the fiber's state. */
    void *(*fiber_init)(void *opaque);
    void (*fiber_fini)(void *opaque, void *fiber_state);
    /* Processes a job on a worker fiber. Returns true when it finished (all its
     * output handed to pw_sched_produced()), false when it gave up because the
     * worker is stopping: the job is then abandoned and redelivered later. */
    bool (*run)(void *opaque, void *fiber_state, pw_job_t *job);
} pw_sched_ops_t;

/** @brief A scheduler running up to `concurrency` jobs at once; caller
 *  destroys it. */
pw_sched_t *pw_sched_new(int concurrency, const pw_sched_ops_t *ops, void *opaque);
/** @brief Stops the fibers (after their current job) and frees everything. */
void pw_sched_destroy(pw_sched_t *sched);

/** @brief Copies rkm into a new job and queues it. @locality main thread */
void pw_sched_submit(pw_sched_t *sched, const rd_kafka_message_t *rkm);
/** @brief Jobs accepted and not yet done (for back-pressure). */
int pw_sched_in_flight(pw_sched_t *sched);
/** @brief Jobs running on the fibers right now. */
int pw_sched_running(pw_sched_t *sched);

/** @brief A job produced one more message whose delivery it waits for.
 *  @locality any thread, before the message is handed to librdkafka */
void pw_sched_produced(pw_sched_t *sched, pw_job_t *job);
/** @brief The delivery report of one of the job's messages succeeded (or
 *  failed for good). @locality the thread serving producer reports */
void pw_sched_delivered(pw_sched_t *sched, pw_job_t *job);

/** @brief One of the job's messages could not be delivered at all: the job
 *  is abandoned, so its offset is never committed (redelivered later).
 *  @locality the thread serving producer reports */
void pw_sched_failed(pw_sched_t *sched, pw_job_t *job);

/** @brief Appends offsets that became committable since the last call
 *  (offset = next to consume) to list. @returns how many were added. */
int pw_sched_collect_offsets(pw_sched_t *sched, rd_kafka_topic_partition_list_t *list);

/** @brief Starts tracking newly assigned partitions. */
void pw_sched_assign(pw_sched_t *sched, const rd_kafka_topic_partition_list_t *parts);
/** @brief Lets partitions go: drops their queued jobs, waits up to
 *  timeout_ms for running ones (calling serve() between checks, which must
 *  serve delivery reports), then appends their final offsets to list. */
void pw_sched_revoke(pw_sched_t *sched, const rd_kafka_topic_partition_list_t *parts,
                     int timeout_ms, void (*serve)(void *arg), void *serve_arg,
                     rd_kafka_topic_partition_list_t *list);
/** @brief Stops starting jobs: queued jobs stay queued (and uncommitted). */
void pw_sched_stop_starting(pw_sched_t *sched);

#endif
