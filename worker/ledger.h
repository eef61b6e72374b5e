/* Ledger: which consumed messages may run now, and which offsets may be
 * committed: the heart of "nothing lost, nothing doubled, one account in
 * order".
 *
 * DESIGN (after Confluent's Parallel Consumer, key ordering):
 *  - Every consumed message becomes a job. Jobs with the same order key (the
 *    message key: requests are keyed by account_id; without a key, the
 *    partition) form a queue; only a queue's head is ready to run, so one
 *    account's posts go out in partition order while the heads of different
 *    queues run at once.
 *  - A job holds one count while it runs and one per message it produced;
 *    delivery reports release them. At zero it is settled: its outcome is
 *    durably in Kafka (done), or it was abandoned (it gave up at shutdown, or
 *    a message of its could not be delivered) and must be redelivered.
 *  - Per partition, jobs sit in offset order; the commit point is the offset
 *    of the lowest job not done (or the last one + 1). Nothing past a job in
 *    flight or abandoned is ever committed.
 *  - A revoke first drops the partition's jobs that have not started; the
 *    caller waits (bounded) until none is unsettled, then takes the final
 *    commit point and the ledger forgets the partition. Jobs still running
 *    then become orphans, freed when they settle.
 *  - A job's payload is freed when its run returns: a slow job at the head of
 *    a partition keeps only the bookkeeping of the finished ones behind it.
 *    Each partition counts the jobs and payload bytes it buffers (submitted,
 *    run not returned) for back-pressure.
 * Plain data: no locks and no threads; the pool (pool.h) guards it with its
 * mutex. Costs: submit, take, finish, hold and release are O(1) (a hash table
 * of queues; partitions are a short list); revoke is O(jobs of the partition
 * + ready jobs); collect is O(partitions). */
#ifndef PW_LEDGER_H
#define PW_LEDGER_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pw.h"

typedef struct pw_ledger_s pw_ledger_t;
typedef struct pw_ledger_partition_s pw_ledger_partition_t;
typedef struct pw_ledger_queue_s pw_ledger_queue_t;

typedef struct pw_job_s {
    /* The consumed message, copied (the job owns these). value, key and
     * headers are freed (NULL) once the job's run returned. */
    char *topic;
    int32_t partition;
    int64_t offset;
    char *key; /* NUL-terminated copy; NULL when the message had none */
    size_t key_len;
    char *value; /* NUL-terminated copy */
    size_t value_len;
    rd_kafka_headers_t *headers; /* NULL when none */
    int64_t consumed_mono_ms;

    /* Ledger state: only the ledger touches it. */
    struct pw_job_s *queue_prev, *queue_next; /* in its order key's queue */
    struct pw_job_s *ready_next;              /* in the ready list */
    struct pw_job_s *part_next;               /* in its partition, offset order */
    pw_ledger_queue_t *queue;                 /* NULL once out of its queue */
    pw_ledger_partition_t *part;              /* NULL once its partition was revoked */
    size_t bytes;                             /* payload counted in its partition */
    int holds;
    bool running;
    bool done;
    bool abandoned;
} pw_job_t;

/** @brief A copy of a consumed message as a job (caller owns it until
 *  pw_ledger_submit()). key may be NULL; headers may be NULL. */
pw_job_t *pw_job_new(const char *topic, int32_t partition, int64_t offset, const void *key,
                     size_t key_len, const void *value, size_t value_len,
                     const rd_kafka_headers_t *headers);
/** @brief A copy of rkm as a job. */
pw_job_t *pw_job_from_message(const rd_kafka_message_t *rkm);
void pw_job_destroy(pw_job_t *job);

pw_ledger_t *pw_ledger_new(void);
/** @brief Frees the ledger and every job it still holds (orphans excepted:
 *  whoever runs them frees them when they settle). */
void pw_ledger_destroy(pw_ledger_t *ledger);

/** @brief Starts tracking a newly assigned partition (idempotent). */
void pw_ledger_assign(pw_ledger_t *ledger, const char *topic, int32_t partition);
/** @brief Takes ownership of job and queues it behind its order key.
 *  @returns true when it is ready to run at once. */
bool pw_ledger_submit(pw_ledger_t *ledger, pw_job_t *job);
/** @brief The next ready job, now running and holding one count; NULL when
 *  none is ready. */
pw_job_t *pw_ledger_take(pw_ledger_t *ledger);
/** @brief How many jobs are ready to run. */
size_t pw_ledger_ready(const pw_ledger_t *ledger);
/** @brief The job's run returned: answered (all its output handed to
 *  pw_ledger_hold()) or not (it gave up: abandoned, redelivered later).
 *  Frees its payload, readies the next job of its queue and releases the
 *  run's count. @returns true when another job became ready. */
bool pw_ledger_finish(pw_ledger_t *ledger, pw_job_t *job, bool answered);

/** @brief The job produced one more message whose delivery it waits for.
 *  Only while it runs (it holds a count then). */
void pw_ledger_hold(pw_ledger_t *ledger, pw_job_t *job);
/** @brief One of the job's messages reached Kafka. */
void pw_ledger_delivered(pw_ledger_t *ledger, pw_job_t *job);
/** @brief One of the job's messages will never reach Kafka: the job is
 *  abandoned, and its offset is never committed past. */
void pw_ledger_undeliverable(pw_ledger_t *ledger, pw_job_t *job);

/** @brief Appends the commit points that moved since the last call (offset =
 *  next to consume) to list. @returns how many were added. */
int pw_ledger_collect(pw_ledger_t *ledger, rd_kafka_topic_partition_list_t *list);

/** @brief First step of a revoke: drops the partition's jobs that have not
 *  started (abandoned: redelivered to the next owner). */
void pw_ledger_revoke_start(pw_ledger_t *ledger, const char *topic, int32_t partition);
/** @brief The partition's jobs still running or waiting for a delivery. */
int pw_ledger_unsettled(const pw_ledger_t *ledger, const char *topic, int32_t partition);
/** @brief Last step of a revoke: appends the partition's final commit point
 *  (if any) to list and forgets the partition. */
void pw_ledger_revoke_finish(pw_ledger_t *ledger, const char *topic, int32_t partition,
                             rd_kafka_topic_partition_list_t *list);

/** @brief No job starts any more (shutdown): queued jobs stay uncommitted. */
void pw_ledger_stop_starting(pw_ledger_t *ledger);

/** @brief Jobs accepted and not yet settled. */
int pw_ledger_in_flight(const pw_ledger_t *ledger);
/** @brief Jobs running now. */
int pw_ledger_running(const pw_ledger_t *ledger);
/** @brief What a partition buffers: jobs submitted whose run has not
 *  returned, and their payload bytes. false when it is not tracked. */
bool pw_ledger_buffered(const pw_ledger_t *ledger, const char *topic, int32_t partition, int *jobs,
                        size_t *bytes);
/** @brief Payload bytes buffered over all partitions. */
size_t pw_ledger_buffered_bytes(const pw_ledger_t *ledger);

#endif
