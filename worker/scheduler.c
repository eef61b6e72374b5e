/* Scheduler: per-account ordering over fibers, and commit tracking. */
#include "scheduler.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fiber.h"
#include "log.h"
#include "pw.h"

struct pw_partition_s {
    char *topic;
    int32_t partition;
    pw_job_t *head, *tail; /* jobs in offset order, not yet retired */
    int64_t commit_offset; /* next offset to commit; -1: nothing to commit yet */
    bool dirty;            /* commit_offset changed since the last collect */
    pw_partition_t *next;
};

struct pw_account_queue_s {
    char *key;
    pw_job_t *head, *tail; /* head is the running (or next to run) job */
    pw_account_queue_t *next_in_bucket;
};

/* A worker fiber. Idle ones wait on a stack, so the most recently busy
 * (cache-warm) fiber takes the next job and the rest stay asleep when there
 * is little to do. */
typedef struct pw_slot_s {
    pw_sched_t *sched;
    pw_fiber_t *fiber; /* NULL before it started and after it returned */
    bool idle;         /* on the idle stack */
    struct pw_slot_s *next_idle;
} pw_slot_t;

/* Each worker fiber's stack; posts only touch the first few pages. */
#define PW_FIBER_STACK (256 * 1024)
/* Loop threads: one per CPU is enough to keep them busy, and a few at most. */
#define PW_LOOPS_MAX 4

struct pw_sched_s {
    pthread_mutex_t lock;
    const pw_sched_ops_t *ops;
    void *opaque;
    pw_slot_t *slots;
    pw_slot_t *idle_top;
    int slot_count;
    pw_loop_t *loops[PW_LOOPS_MAX];
    int loop_count;
    bool stopping;
    bool starting_stopped;

    pw_job_t *ready_head, *ready_tail;
    pw_partition_t *partitions;
    pw_account_queue_t **buckets;
    size_t bucket_count, queue_count;
    int in_flight;
    int running;
};

/* ---- account queues: a chained hash table keyed by order key ---- */

static size_t pw_hash(const char *s)
{
    size_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static void pw_queues_grow(pw_sched_t *sched)
{
    size_t count = sched->bucket_count * 2;
    pw_account_queue_t **buckets = pw_calloc(count, sizeof(*buckets));
    for (size_t i = 0; i < sched->bucket_count; i++) {
        pw_account_queue_t *q = sched->buckets[i], *next;
        for (; q; q = next) {
            next = q->next_in_bucket;
            size_t b = pw_hash(q->key) & (count - 1);
            q->next_in_bucket = buckets[b];
            buckets[b] = q;
        }
    }
    free(sched->buckets);
    sched->buckets = buckets;
    sched->bucket_count = count;
}

static pw_account_queue_t *pw_queue_get(pw_sched_t *sched, const char *key)
{
    size_t b = pw_hash(key) & (sched->bucket_count - 1);
    for (pw_account_queue_t *q = sched->buckets[b]; q; q = q->next_in_bucket)
        if (strcmp(q->key, key) == 0)
            return q;
    if (sched->queue_count >= sched->bucket_count) {
        pw_queues_grow(sched);
        b = pw_hash(key) & (sched->bucket_count - 1);
    }
    pw_account_queue_t *q = pw_calloc(1, sizeof(*q));
    q->key = pw_strdup(key);
    q->next_in_bucket = sched->buckets[b];
    sched->buckets[b] = q;
    sched->queue_count++;
    return q;
}

static void pw_queue_free_if_empty(pw_sched_t *sched, pw_account_queue_t *q)
{
    if (q->head)
        return;
    pw_account_queue_t **pp = &sched->buckets[pw_hash(q->key) & (sched->bucket_count - 1)];
    while (*pp != q)
        pp = &(*pp)->next_in_bucket;
    *pp = q->next_in_bucket;
    sched->queue_count--;
    free(q->key);
    free(q);
}

static void pw_ready_push(pw_sched_t *sched, pw_job_t *job)
{
    job->ready_next = NULL;
    if (sched->ready_tail)
        sched->ready_tail->ready_next = job;
    else
        sched->ready_head = job;
    sched->ready_tail = job;
    pw_slot_t *slot = sched->idle_top;
    if (slot) {
        sched->idle_top = slot->next_idle;
        slot->idle = false;
        pw_fiber_wake(slot->fiber);
    }
}

/* ---- partitions and commit tracking ---- */

static pw_partition_t *pw_partition_find(pw_sched_t *sched, const char *topic, int32_t partition)
{
    for (pw_partition_t *p = sched->partitions; p; p = p->next)
        if (p->partition == partition && strcmp(p->topic, topic) == 0)
            return p;
    return NULL;
}

static pw_partition_t *pw_partition_add(pw_sched_t *sched, const char *topic, int32_t partition)
{
    pw_partition_t *p = pw_partition_find(sched, topic, partition);
    if (p)
        return p;
    p = pw_calloc(1, sizeof(*p));
    p->topic = pw_strdup(topic);
    p->partition = partition;
    p->commit_offset = -1;
    p->next = sched->partitions;
    sched->partitions = p;
    return p;
}

static void pw_job_free(pw_job_t *job)
{
    free(job->topic);
    free(job->key);
    free(job->value);
    if (job->headers)
        rd_kafka_headers_destroy(job->headers);
    free(job);
}

/* Retires done jobs from the front of the partition; the commit offset
 * follows them. An abandoned job stays and holds the offset back. */
static void pw_partition_advance(pw_partition_t *p)
{
    while (p->head && p->head->done) {
        pw_job_t *job = p->head;
        p->head = job->part_next;
        if (!p->head)
            p->tail = NULL;
        p->commit_offset = job->offset + 1;
        p->dirty = true;
        pw_job_free(job);
    }
}

/* The job's last pending count went: it is durably answered. */
static void pw_job_settle(pw_sched_t *sched, pw_job_t *job)
{
    if (!job->abandoned)
        job->done = true;
    sched->in_flight--;
    if (!job->part) {
        pw_job_free(job); /* orphaned by a revoke: nothing to commit */
        return;
    }
    if (job->done)
        pw_partition_advance(job->part);
}

/* ---- the worker fibers ---- */

static void pw_job_finished(pw_sched_t *sched, pw_job_t *job, bool finished)
{
    pthread_mutex_lock(&sched->lock);
    sched->running--;
    job->running = false;
    if (!finished)
        job->abandoned = true;
    pw_account_queue_t *q = job->queue;
    job->queue = NULL;
    if (q) {
        q->head = job->next;
        if (!q->head)
            q->tail = NULL;
        if (q->head && !sched->starting_stopped)
            pw_ready_push(sched, q->head);
        pw_queue_free_if_empty(sched, q);
    }
    if (--job->pending == 0)
        pw_job_settle(sched, job);
    pthread_mutex_unlock(&sched->lock);
}

static void pw_slot_leave_idle_stack(pw_sched_t *sched, pw_slot_t *slot)
{
    if (!slot->idle)
        return;
    pw_slot_t **pp = &sched->idle_top;
    while (*pp != slot)
        pp = &(*pp)->next_idle;
    *pp = slot->next_idle;
    slot->idle = false;
}

static void pw_sched_fiber(void *arg)
{
    pw_slot_t *slot = arg;
    pw_sched_t *sched = slot->sched;
    void *state = sched->ops->fiber_init ? sched->ops->fiber_init(sched->opaque) : NULL;
    pthread_mutex_lock(&sched->lock);
    slot->fiber = pw_fiber_current();
    for (;;) {
        while (!sched->stopping && !sched->ready_head) {
            if (!slot->idle) { /* not after a spurious wake-up: it is still stacked */
                slot->idle = true;
                slot->next_idle = sched->idle_top;
                sched->idle_top = slot;
            }
            pthread_mutex_unlock(&sched->lock);
            pw_fiber_wait(); /* a wake-up between unlock and wait is kept */
            pthread_mutex_lock(&sched->lock);
        }
        /* Took a job without being woken, or stopping: leave the stack. */
        pw_slot_leave_idle_stack(sched, slot);
        if (sched->stopping)
            break;
        pw_job_t *job = sched->ready_head;
        sched->ready_head = job->ready_next;
        if (!sched->ready_head)
            sched->ready_tail = NULL;
        job->running = true;
        job->pending = 1;
        sched->running++;
        pthread_mutex_unlock(&sched->lock);

        bool finished = sched->ops->run(sched->opaque, state, job);
        pw_job_finished(sched, job, finished);
        pthread_mutex_lock(&sched->lock);
    }
    slot->fiber = NULL; /* nobody wakes it any more */
    pthread_mutex_unlock(&sched->lock);
    if (sched->ops->fiber_fini)
        sched->ops->fiber_fini(sched->opaque, state);
}

pw_sched_t *pw_sched_new(int concurrency, const pw_sched_ops_t *ops, void *opaque)
{
    pw_sched_t *sched = pw_calloc(1, sizeof(*sched));
    pthread_mutex_init(&sched->lock, NULL);
    sched->ops = ops;
    sched->opaque = opaque;
    sched->bucket_count = 256;
    sched->buckets = pw_calloc(sched->bucket_count, sizeof(*sched->buckets));
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    sched->loop_count = cpus < 1 ? 1 : cpus > PW_LOOPS_MAX ? PW_LOOPS_MAX : (int)cpus;
    if (sched->loop_count > concurrency)
        sched->loop_count = concurrency;
    for (int i = 0; i < sched->loop_count; i++)
        sched->loops[i] = pw_loop_start(i);
    sched->slots = pw_calloc((size_t)concurrency, sizeof(pw_slot_t));
    sched->slot_count = concurrency;
    for (int i = 0; i < concurrency; i++) {
        pw_slot_t *slot = &sched->slots[i];
        slot->sched = sched;
        pw_fiber_spawn(sched->loops[i % sched->loop_count], PW_FIBER_STACK, pw_sched_fiber, slot);
    }
    return sched;
}

void pw_sched_destroy(pw_sched_t *sched)
{
    if (!sched)
        return;
    /* Setting stopping and waking in one section: no fiber can have returned
     * (and been freed) before its wake-up, since it returns only after
     * seeing stopping under the lock. */
    pthread_mutex_lock(&sched->lock);
    sched->stopping = true;
    for (int i = 0; i < sched->slot_count; i++)
        if (sched->slots[i].fiber)
            pw_fiber_wake(sched->slots[i].fiber);
    pthread_mutex_unlock(&sched->lock);
    for (int i = 0; i < sched->loop_count; i++)
        pw_loop_join(sched->loops[i]);
    free(sched->slots);
    for (pw_partition_t *p = sched->partitions, *next; p; p = next) {
        next = p->next;
        for (pw_job_t *job = p->head, *jn; job; job = jn) {
            jn = job->part_next;
            pw_job_free(job);
        }
        free(p->topic);
        free(p);
    }
    for (size_t i = 0; i < sched->bucket_count; i++) {
        for (pw_account_queue_t *q = sched->buckets[i], *next; q; q = next) {
            next = q->next_in_bucket;
            free(q->key);
            free(q);
        }
    }
    free(sched->buckets);
    pthread_mutex_destroy(&sched->lock);
    free(sched);
}

static pw_job_t *pw_job_from_message(const rd_kafka_message_t *rkm)
{
    pw_job_t *job = pw_calloc(1, sizeof(*job));
    job->topic = pw_strdup(rd_kafka_topic_name(rkm->rkt));
    job->partition = rkm->partition;
    job->offset = rkm->offset;
    if (rkm->key) {
        job->key = pw_strndup(rkm->key, rkm->key_len);
        job->key_len = rkm->key_len;
    }
    job->value = pw_malloc(rkm->len + 1);
    if (rkm->len)
        memcpy(job->value, rkm->payload, rkm->len);
    job->value[rkm->len] = '\0';
    job->value_len = rkm->len;
    rd_kafka_headers_t *hdrs;
    if (rd_kafka_message_headers(rkm, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR)
        job->headers = rd_kafka_headers_copy(hdrs);
    job->consumed_mono_ms = pw_mono_ms();
    return job;
}

void pw_sched_submit(pw_sched_t *sched, const rd_kafka_message_t *rkm)
{
    pw_job_t *job = pw_job_from_message(rkm);
    /* Without a key, order by partition: the safe reading of "no key". */
    char order_key[64];
    const char *key = job->key && job->key_len == strlen(job->key) ? job->key : NULL;
    if (!key) {
        snprintf(order_key, sizeof(order_key), "\x01partition-%d", (int)job->partition);
        key = order_key;
    }
    pthread_mutex_lock(&sched->lock);
    pw_partition_t *p = pw_partition_add(sched, job->topic, job->partition);
    job->part = p;
    if (p->tail)
        p->tail->part_next = job;
    else
        p->head = job;
    p->tail = job;
    sched->in_flight++;

    pw_account_queue_t *q = pw_queue_get(sched, key);
    job->queue = q;
    if (q->tail) {
        q->tail->next = job;
        q->tail = job;
    } else {
        q->head = q->tail = job;
        if (!sched->starting_stopped)
            pw_ready_push(sched, job);
    }
    pthread_mutex_unlock(&sched->lock);
}

int pw_sched_in_flight(pw_sched_t *sched)
{
    pthread_mutex_lock(&sched->lock);
    int n = sched->in_flight;
    pthread_mutex_unlock(&sched->lock);
    return n;
}

int pw_sched_running(pw_sched_t *sched)
{
    pthread_mutex_lock(&sched->lock);
    int n = sched->running;
    pthread_mutex_unlock(&sched->lock);
    return n;
}

void pw_sched_produced(pw_sched_t *sched, pw_job_t *job)
{
    pthread_mutex_lock(&sched->lock);
    job->pending++;
    pthread_mutex_unlock(&sched->lock);
}

void pw_sched_delivered(pw_sched_t *sched, pw_job_t *job)
{
    pthread_mutex_lock(&sched->lock);
    if (--job->pending == 0)
        pw_job_settle(sched, job);
    pthread_mutex_unlock(&sched->lock);
}

static void pw_offsets_add(rd_kafka_topic_partition_list_t *list, pw_partition_t *p)
{
    rd_kafka_topic_partition_list_add(list, p->topic, p->partition)->offset = p->commit_offset;
    p->dirty = false;
}

void pw_sched_failed(pw_sched_t *sched, pw_job_t *job)
{
    pthread_mutex_lock(&sched->lock);
    job->abandoned = true; /* its offset stays back: redelivered after a restart */
    if (--job->pending == 0)
        pw_job_settle(sched, job);
    pthread_mutex_unlock(&sched->lock);
}

int pw_sched_collect_offsets(pw_sched_t *sched, rd_kafka_topic_partition_list_t *list)
{
    int added = 0;
    pthread_mutex_lock(&sched->lock);
    for (pw_partition_t *p = sched->partitions; p; p = p->next) {
        if (p->dirty && p->commit_offset >= 0) {
            pw_offsets_add(list, p);
            added++;
        }
    }
    pthread_mutex_unlock(&sched->lock);
    return added;
}

void pw_sched_assign(pw_sched_t *sched, const rd_kafka_topic_partition_list_t *parts)
{
    pthread_mutex_lock(&sched->lock);
    for (int i = 0; i < parts->cnt; i++)
        pw_partition_add(sched, parts->elems[i].topic, parts->elems[i].partition);
    pthread_mutex_unlock(&sched->lock);
}

/* Removes the partition's jobs that have not started from their queues. */
static void pw_partition_drop_queued(pw_sched_t *sched, pw_partition_t *p)
{
    for (pw_job_t *job = p->head; job; job = job->part_next) {
        pw_account_queue_t *q = job->queue;
        if (job->running || job->done || job->abandoned || job->pending > 0 || !q)
            continue;
        pw_job_t **jp = &q->head, *prev = NULL;
        while (*jp != job) {
            prev = *jp;
            jp = &(*jp)->next;
        }
        *jp = job->next;
        if (q->tail == job)
            q->tail = prev;
        job->queue = NULL;
        job->abandoned = true;
        sched->in_flight--;
        /* A queue whose new head belongs to a partition we keep goes on. */
        if (q->head && prev == NULL && !q->head->running && q->head->part != p &&
            !sched->starting_stopped)
            pw_ready_push(sched, q->head);
        pw_queue_free_if_empty(sched, q);
    }
    /* Last, so that no dropped job stays on the ready list to start later. */
    pw_job_t **pp = &sched->ready_head;
    sched->ready_tail = NULL;
    while (*pp) {
        if ((*pp)->part == p)
            *pp = (*pp)->ready_next;
        else {
            sched->ready_tail = *pp;
            pp = &(*pp)->ready_next;
        }
    }
}

static int pw_partition_busy(const pw_partition_t *p)
{
    int busy = 0;
    for (const pw_job_t *job = p->head; job; job = job->part_next)
        busy += job->running || (!job->done && !job->abandoned && job->pending > 0);
    return busy;
}

void pw_sched_revoke(pw_sched_t *sched, const rd_kafka_topic_partition_list_t *parts,
                     int timeout_ms, void (*serve)(void *arg), void *serve_arg,
                     rd_kafka_topic_partition_list_t *list)
{
    int64_t deadline = pw_mono_ms() + timeout_ms;
    pthread_mutex_lock(&sched->lock);
    for (int i = 0; i < parts->cnt; i++) {
        pw_partition_t *p =
            pw_partition_find(sched, parts->elems[i].topic, parts->elems[i].partition);
        if (p)
            pw_partition_drop_queued(sched, p);
    }
    for (;;) {
        int busy = 0;
        for (int i = 0; i < parts->cnt; i++) {
            pw_partition_t *p =
                pw_partition_find(sched, parts->elems[i].topic, parts->elems[i].partition);
            busy += p ? pw_partition_busy(p) : 0;
        }
        if (busy == 0 || pw_mono_ms() >= deadline) {
            if (busy)
                pw_log_warn("revoke: in-flight posts did not finish in time; they will be "
                            "redelivered",
                            PW_F_INT("posts", busy));
            break;
        }
        pthread_mutex_unlock(&sched->lock);
        serve(serve_arg);
        pthread_mutex_lock(&sched->lock);
    }
    /* Final offsets, then let go: unfinished jobs become orphans. */
    for (int i = 0; i < parts->cnt; i++) {
        pw_partition_t *p =
            pw_partition_find(sched, parts->elems[i].topic, parts->elems[i].partition);
        if (!p)
            continue;
        if (p->commit_offset >= 0)
            pw_offsets_add(list, p);
        pw_partition_t **pp = &sched->partitions;
        while (*pp != p)
            pp = &(*pp)->next;
        *pp = p->next;
        for (pw_job_t *job = p->head, *next; job; job = next) {
            next = job->part_next;
            job->part = NULL;
            if (job->done || (job->abandoned && !job->running && job->pending == 0))
                pw_job_free(job);
        }
        free(p->topic);
        free(p);
    }
    pthread_mutex_unlock(&sched->lock);
}

void pw_sched_stop_starting(pw_sched_t *sched)
{
    pthread_mutex_lock(&sched->lock);
    sched->starting_stopped = true;
    sched->ready_head = sched->ready_tail = NULL; /* queued jobs stay uncommitted */
    pthread_mutex_unlock(&sched->lock);
}
