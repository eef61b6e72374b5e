/* Pool: runs the ledger's ready jobs on worker fibers.
 *
 * DESIGN: WORKER_CONCURRENCY fibers (fiber.h) spread over a few loop threads
 * (one per CPU, at most four) take ready jobs from the ledger (ledger.h) and
 * run them with the ops given to pw_pool_start(). Idle fibers wait on a stack,
 * so the most recently busy (cache-warm) fiber takes the next job and the rest
 * stay asleep when there is little to do. One mutex guards the ledger; every
 * call here takes it for O(1) work, except revoke (see ledger.h). */
#ifndef PW_POOL_H
#define PW_POOL_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>

#include "ledger.h"

typedef struct pw_pool_s pw_pool_t;

typedef struct pw_pool_ops_s {
    /* Called on each worker fiber at start and end; returns the fiber's state. */
    void *(*fiber_init)(void *opaque);
    void (*fiber_fini)(void *opaque, void *fiber_state);
    /* Processes a job on a worker fiber. Returns true when it answered (all
     * its output handed to pw_pool_hold()), false when it gave up because the
     * worker is stopping: the job is then abandoned and redelivered later. */
    bool (*run)(void *opaque, void *fiber_state, pw_job_t *job);
} pw_pool_ops_t;

/** @brief A pool for up to `concurrency` jobs at once; its loop threads run,
 *  its fibers start with pw_pool_start(). Caller destroys it. */
pw_pool_t *pw_pool_new(int concurrency);
/** @brief Starts the fibers; ops and opaque must outlive the pool. */
void pw_pool_start(pw_pool_t *pool, const pw_pool_ops_t *ops, void *opaque);
/** @brief Stops the fibers (after their current job) and frees everything. */
void pw_pool_destroy(pw_pool_t *pool);

/** @brief Copies rkm into a new job and queues it. @locality main thread */
void pw_pool_submit(pw_pool_t *pool, const rd_kafka_message_t *rkm);
/** @brief Jobs accepted and not yet settled. */
int pw_pool_in_flight(pw_pool_t *pool);
/** @brief Jobs running on the fibers right now. */
int pw_pool_running(pw_pool_t *pool);
/** @brief The longest any loop thread went without going round (liveness:
 *  a loop wedged in one fiber stalls every post on it). @locality any thread */
int64_t pw_pool_loops_idle_ms(pw_pool_t *pool);
/** @brief What a partition buffers (jobs not run yet or running, and their
 *  payload bytes), and the payload bytes of all partitions. */
void pw_pool_buffered(pw_pool_t *pool, const char *topic, int32_t partition, int *jobs,
                      size_t *bytes, size_t *total_bytes);

/** @brief A running job produced one more message whose delivery it waits
 *  for. @locality the job's fiber, before the message is handed to librdkafka */
void pw_pool_hold(pw_pool_t *pool, pw_job_t *job);
/** @brief One of the job's messages reached Kafka.
 *  @locality the thread serving producer reports */
void pw_pool_delivered(pw_pool_t *pool, pw_job_t *job);
/** @brief One of the job's messages will never reach Kafka: the job is
 *  abandoned, so its offset is never committed (redelivered later).
 *  @locality the thread serving producer reports */
void pw_pool_undeliverable(pw_pool_t *pool, pw_job_t *job);

/** @brief Appends commit points that moved since the last call to list.
 *  @returns how many were added. */
int pw_pool_collect_offsets(pw_pool_t *pool, rd_kafka_topic_partition_list_t *list);

/** @brief Starts tracking newly assigned partitions. */
void pw_pool_assign(pw_pool_t *pool, const rd_kafka_topic_partition_list_t *parts);
/** @brief Lets partitions go: drops their queued jobs, waits up to
 *  timeout_ms for running ones (calling serve() between checks, which must
 *  serve delivery reports), then appends their final offsets to list. */
void pw_pool_revoke(pw_pool_t *pool, const rd_kafka_topic_partition_list_t *parts, int timeout_ms,
                    void (*serve)(void *arg), void *serve_arg,
                    rd_kafka_topic_partition_list_t *list);
/** @brief Stops starting jobs: queued jobs stay queued (and uncommitted). */
void pw_pool_stop_starting(pw_pool_t *pool);

#endif
