/* Pool: worker fibers over the ledger (see pool.h). */
#include "pool.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "fiber.h"
#include "log.h"
#include "pw.h"

/* A worker fiber. */
typedef struct pw_slot_s {
    pw_pool_t *pool;
    pw_fiber_t *fiber; /* NULL before it started and after it returned */
    bool idle;         /* on the idle stack */
    struct pw_slot_s *next_idle;
} pw_slot_t;

/* Each worker fiber's stack; posts only touch the first few pages. */
#define PW_FIBER_STACK (256 * 1024)
/* Loop threads: one per CPU is enough to keep them busy, and a few at most. */
#define PW_LOOPS_MAX 4

struct pw_pool_s {
    pthread_mutex_t lock;
    pw_ledger_t *ledger;
    const pw_pool_ops_t *ops;
    void *opaque;
    pw_slot_t *slots;
    pw_slot_t *idle_top;
    int slot_count;
    pw_loop_t *loops[PW_LOOPS_MAX];
    int loop_count;
    bool stopping;
};

/* Wakes one idle fiber per ready job. @locks_required pool->lock */
static void pw_pool_wake_idle(pw_pool_t *pool)
{
    size_t ready = pw_ledger_ready(pool->ledger);
    for (; ready > 0 && pool->idle_top; ready--) {
        pw_slot_t *slot = pool->idle_top;
        pool->idle_top = slot->next_idle;
        slot->idle = false;
        pw_fiber_wake(slot->fiber);
    }
}

static void pw_slot_leave_idle_stack(pw_pool_t *pool, pw_slot_t *slot)
{
    if (!slot->idle)
        return;
    pw_slot_t **pp = &pool->idle_top;
    while (*pp != slot)
        pp = &(*pp)->next_idle;
    *pp = slot->next_idle;
    slot->idle = false;
}

/* The next job to run, waiting idle for one; NULL when stopping.
 * @locks_required pool->lock (released while waiting) */
static pw_job_t *pw_slot_next_job(pw_pool_t *pool, pw_slot_t *slot)
{
    pw_job_t *job;
    while (!pool->stopping && !(job = pw_ledger_take(pool->ledger))) {
        if (!slot->idle) { /* not after a spurious wake-up: it is still stacked */
            slot->idle = true;
            slot->next_idle = pool->idle_top;
            pool->idle_top = slot;
        }
        pthread_mutex_unlock(&pool->lock);
        pw_fiber_wait(); /* a wake-up between unlock and wait is kept */
        pthread_mutex_lock(&pool->lock);
    }
    /* Took a job without being woken, or stopping: leave the stack. */
    pw_slot_leave_idle_stack(pool, slot);
    return pool->stopping ? NULL : job;
}

static void pw_pool_fiber(void *arg)
{
    pw_slot_t *slot = arg;
    pw_pool_t *pool = slot->pool;
    void *state = pool->ops->fiber_init ? pool->ops->fiber_init(pool->opaque) : NULL;
    pthread_mutex_lock(&pool->lock);
    slot->fiber = pw_fiber_current();
    pw_job_t *job;
    while ((job = pw_slot_next_job(pool, slot))) {
        pthread_mutex_unlock(&pool->lock);
        bool answered = pool->ops->run(pool->opaque, state, job);
        pthread_mutex_lock(&pool->lock);
        if (pw_ledger_finish(pool->ledger, job, answered))
            pw_pool_wake_idle(pool);
    }
    slot->fiber = NULL; /* nobody wakes it any more */
    pthread_mutex_unlock(&pool->lock);
    if (pool->ops->fiber_fini)
        pool->ops->fiber_fini(pool->opaque, state);
}

pw_pool_t *pw_pool_new(int concurrency)
{
    pw_pool_t *pool = pw_calloc(1, sizeof(*pool));
    pthread_mutex_init(&pool->lock, NULL);
    pool->ledger = pw_ledger_new();
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    pool->loop_count = cpus < 1 ? 1 : cpus > PW_LOOPS_MAX ? PW_LOOPS_MAX : (int)cpus;
    if (pool->loop_count > concurrency)
        pool->loop_count = concurrency;
    for (int i = 0; i < pool->loop_count; i++)
        pool->loops[i] = pw_loop_start(i);
    pool->slots = pw_calloc((size_t)concurrency, sizeof(pw_slot_t));
    pool->slot_count = concurrency;
    return pool;
}

void pw_pool_start(pw_pool_t *pool, const pw_pool_ops_t *ops, void *opaque)
{
    pool->ops = ops;
    pool->opaque = opaque;
    for (int i = 0; i < pool->slot_count; i++) {
        pw_slot_t *slot = &pool->slots[i];
        slot->pool = pool;
        pw_fiber_spawn(pool->loops[i % pool->loop_count], PW_FIBER_STACK, pw_pool_fiber, slot);
    }
}

void pw_pool_destroy(pw_pool_t *pool)
{
    if (!pool)
        return;
    /* Setting stopping and waking in one section: no fiber can have returned
     * (and been freed) before its wake-up, since it returns only after
     * seeing stopping under the lock. */
    pthread_mutex_lock(&pool->lock);
    pool->stopping = true;
    for (int i = 0; i < pool->slot_count; i++)
        if (pool->slots[i].fiber)
            pw_fiber_wake(pool->slots[i].fiber);
    pthread_mutex_unlock(&pool->lock);
    for (int i = 0; i < pool->loop_count; i++)
        pw_loop_join(pool->loops[i]);
    free(pool->slots);
    pw_ledger_destroy(pool->ledger);
    pthread_mutex_destroy(&pool->lock);
    free(pool);
}

void pw_pool_submit(pw_pool_t *pool, const rd_kafka_message_t *rkm)
{
    pw_job_t *job = pw_job_from_message(rkm);
    pthread_mutex_lock(&pool->lock);
    if (pw_ledger_submit(pool->ledger, job))
        pw_pool_wake_idle(pool);
    pthread_mutex_unlock(&pool->lock);
}

int pw_pool_in_flight(pw_pool_t *pool)
{
    pthread_mutex_lock(&pool->lock);
    int n = pw_ledger_in_flight(pool->ledger);
    pthread_mutex_unlock(&pool->lock);
    return n;
}

int pw_pool_running(pw_pool_t *pool)
{
    pthread_mutex_lock(&pool->lock);
    int n = pw_ledger_running(pool->ledger);
    pthread_mutex_unlock(&pool->lock);
    return n;
}

int64_t pw_pool_loops_idle_ms(pw_pool_t *pool)
{
    int64_t idle = 0;
    for (int i = 0; i < pool->loop_count; i++) {
        int64_t loop_idle = pw_loop_idle_ms(pool->loops[i]);
        if (loop_idle > idle)
            idle = loop_idle;
    }
    return idle;
}

void pw_pool_buffered(pw_pool_t *pool, const char *topic, int32_t partition, int *jobs,
                      size_t *bytes, size_t *total_bytes)
{
    pthread_mutex_lock(&pool->lock);
    (void)pw_ledger_buffered(pool->ledger, topic, partition, jobs, bytes);
    *total_bytes = pw_ledger_buffered_bytes(pool->ledger);
    pthread_mutex_unlock(&pool->lock);
}

void pw_pool_hold(pw_pool_t *pool, pw_job_t *job)
{
    pthread_mutex_lock(&pool->lock);
    pw_ledger_hold(pool->ledger, job);
    pthread_mutex_unlock(&pool->lock);
}

void pw_pool_delivered(pw_pool_t *pool, pw_job_t *job)
{
    pthread_mutex_lock(&pool->lock);
    pw_ledger_delivered(pool->ledger, job);
    pthread_mutex_unlock(&pool->lock);
}

void pw_pool_undeliverable(pw_pool_t *pool, pw_job_t *job)
{
    pthread_mutex_lock(&pool->lock);
    pw_ledger_undeliverable(pool->ledger, job);
    pthread_mutex_unlock(&pool->lock);
}

int pw_pool_collect_offsets(pw_pool_t *pool, rd_kafka_topic_partition_list_t *list)
{
    pthread_mutex_lock(&pool->lock);
    int added = pw_ledger_collect(pool->ledger, list);
    pthread_mutex_unlock(&pool->lock);
    return added;
}

void pw_pool_assign(pw_pool_t *pool, const rd_kafka_topic_partition_list_t *parts)
{
    pthread_mutex_lock(&pool->lock);
    for (int i = 0; i < parts->cnt; i++)
        pw_ledger_assign(pool->ledger, parts->elems[i].topic, parts->elems[i].partition);
    pthread_mutex_unlock(&pool->lock);
}

/* Jobs of parts still running or waiting for a delivery. @locks_required pool->lock */
static int pw_pool_unsettled(pw_pool_t *pool, const rd_kafka_topic_partition_list_t *parts)
{
    int unsettled = 0;
    for (int i = 0; i < parts->cnt; i++)
        unsettled +=
            pw_ledger_unsettled(pool->ledger, parts->elems[i].topic, parts->elems[i].partition);
    return unsettled;
}

void pw_pool_revoke(pw_pool_t *pool, const rd_kafka_topic_partition_list_t *parts, int timeout_ms,
                    void (*serve)(void *arg), void *serve_arg,
                    rd_kafka_topic_partition_list_t *list)
{
    int64_t deadline = pw_mono_ms() + timeout_ms;
    pthread_mutex_lock(&pool->lock);
    for (int i = 0; i < parts->cnt; i++)
        pw_ledger_revoke_start(pool->ledger, parts->elems[i].topic, parts->elems[i].partition);
    pw_pool_wake_idle(pool); /* other partitions' jobs may have become heads */
    int unsettled;
    while ((unsettled = pw_pool_unsettled(pool, parts)) > 0 && pw_mono_ms() < deadline) {
        pthread_mutex_unlock(&pool->lock);
        serve(serve_arg);
        pthread_mutex_lock(&pool->lock);
    }
    if (unsettled)
        pw_log_warn("revoke: in-flight posts did not finish in time; they will be redelivered",
                    PW_F_INT("posts", unsettled));
    for (int i = 0; i < parts->cnt; i++)
        pw_ledger_revoke_finish(pool->ledger, parts->elems[i].topic, parts->elems[i].partition,
                                list);
    pthread_mutex_unlock(&pool->lock);
}

void pw_pool_stop_starting(pw_pool_t *pool)
{
    pthread_mutex_lock(&pool->lock);
    pw_ledger_stop_starting(pool->ledger);
    pthread_mutex_unlock(&pool->lock);
}
