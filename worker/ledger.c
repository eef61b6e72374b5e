/* Ledger: per-account order, per-partition commit points (see ledger.h). */
#include "ledger.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pw_ledger_partition_s {
    char *topic;
    int32_t partition;
    pw_job_t *head, *tail; /* jobs in offset order, not yet retired */
    int64_t commit_offset; /* next offset to commit; -1: nothing to commit yet */
    bool dirty;            /* commit_offset moved since the last collect */
    int buffered;          /* jobs whose run has not returned */
    size_t bytes;          /* their payload */
    pw_ledger_partition_t *next;
};

struct pw_ledger_queue_s {
    char *key;
    pw_job_t *head, *tail; /* head is the running (or next to run) job */
    pw_ledger_queue_t *next_in_bucket;
};

struct pw_ledger_s {
    pw_job_t *ready_head, *ready_tail;
    size_t ready_count;
    pw_ledger_partition_t *partitions;
    pw_ledger_queue_t **buckets;
    size_t bucket_count, queue_count;
    size_t bytes;
    int in_flight;
    int running;
    bool starting_stopped;
};

/* ---- jobs ---- */

pw_job_t *pw_job_new(const char *topic, int32_t partition, int64_t offset, const void *key,
                     size_t key_len, const void *value, size_t value_len,
                     const rd_kafka_headers_t *headers)
{
    pw_job_t *job = pw_calloc(1, sizeof(*job));
    job->topic = pw_strdup(topic);
    job->partition = partition;
    job->offset = offset;
    if (key) {
        job->key = pw_malloc(key_len + 1);
        memcpy(job->key, key, key_len);
        job->key[key_len] = '\0';
        job->key_len = key_len;
    }
    job->value = pw_malloc(value_len + 1);
    if (value_len)
        memcpy(job->value, value, value_len);
    job->value[value_len] = '\0';
    job->value_len = value_len;
    if (headers)
        job->headers = rd_kafka_headers_copy(headers);
    job->bytes = key_len + value_len;
    job->consumed_mono_ms = pw_mono_ms();
    return job;
}

pw_job_t *pw_job_from_message(const rd_kafka_message_t *rkm)
{
    rd_kafka_headers_t *hdrs = NULL;
    if (rd_kafka_message_headers(rkm, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
        hdrs = NULL;
    return pw_job_new(rd_kafka_topic_name(rkm->rkt), rkm->partition, rkm->offset, rkm->key,
                      rkm->key_len, rkm->payload, rkm->len, hdrs);
}

/* The payload is only needed while the job runs. */
static void pw_job_drop_payload(pw_job_t *job)
{
    free(job->key);
    free(job->value);
    if (job->headers)
        rd_kafka_headers_destroy(job->headers);
    job->key = job->value = NULL;
    job->headers = NULL;
    job->key_len = job->value_len = 0;
}

void pw_job_destroy(pw_job_t *job)
{
    if (!job)
        return;
    pw_job_drop_payload(job);
    free(job->topic);
    free(job);
}

/* ---- order-key queues: a chained hash table ---- */

static size_t pw_hash(const char *s)
{
    size_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static void pw_queues_grow(pw_ledger_t *ledger)
{
    size_t count = ledger->bucket_count * 2;
    pw_ledger_queue_t **buckets = pw_calloc(count, sizeof(*buckets));
    for (size_t i = 0; i < ledger->bucket_count; i++) {
        for (pw_ledger_queue_t *q = ledger->buckets[i], *next; q; q = next) {
            next = q->next_in_bucket;
            size_t b = pw_hash(q->key) & (count - 1);
            q->next_in_bucket = buckets[b];
            buckets[b] = q;
        }
    }
    free(ledger->buckets);
    ledger->buckets = buckets;
    ledger->bucket_count = count;
}

static pw_ledger_queue_t *pw_queue_get(pw_ledger_t *ledger, const char *key)
{
    size_t b = pw_hash(key) & (ledger->bucket_count - 1);
    for (pw_ledger_queue_t *q = ledger->buckets[b]; q; q = q->next_in_bucket)
        if (strcmp(q->key, key) == 0)
            return q;
    if (ledger->queue_count >= ledger->bucket_count) {
        pw_queues_grow(ledger);
        b = pw_hash(key) & (ledger->bucket_count - 1);
    }
    pw_ledger_queue_t *q = pw_calloc(1, sizeof(*q));
    q->key = pw_strdup(key);
    q->next_in_bucket = ledger->buckets[b];
    ledger->buckets[b] = q;
    ledger->queue_count++;
    return q;
}

static void pw_queue_free_if_empty(pw_ledger_t *ledger, pw_ledger_queue_t *q)
{
    if (q->head)
        return;
    pw_ledger_queue_t **pp = &ledger->buckets[pw_hash(q->key) & (ledger->bucket_count - 1)];
    while (*pp != q)
        pp = &(*pp)->next_in_bucket;
    *pp = q->next_in_bucket;
    ledger->queue_count--;
    free(q->key);
    free(q);
}

/* Takes job out of its queue; the queue's new head is returned if job was
 * the head (NULL otherwise, or when the queue is empty now). */
static pw_job_t *pw_queue_remove(pw_ledger_t *ledger, pw_job_t *job)
{
    pw_ledger_queue_t *q = job->queue;
    bool was_head = q->head == job;
    if (job->queue_prev)
        job->queue_prev->queue_next = job->queue_next;
    else
        q->head = job->queue_next;
    if (job->queue_next)
        job->queue_next->queue_prev = job->queue_prev;
    else
        q->tail = job->queue_prev;
    job->queue = NULL;
    job->queue_prev = job->queue_next = NULL;
    pw_job_t *new_head = was_head ? q->head : NULL;
    pw_queue_free_if_empty(ledger, q);
    return new_head;
}

static void pw_ready_push(pw_ledger_t *ledger, pw_job_t *job)
{
    job->ready_next = NULL;
    if (ledger->ready_tail)
        ledger->ready_tail->ready_next = job;
    else
        ledger->ready_head = job;
    ledger->ready_tail = job;
    ledger->ready_count++;
}

/* ---- partitions and commit points ---- */

static pw_ledger_partition_t *pw_partition_find(const pw_ledger_t *ledger, const char *topic,
                                                int32_t partition)
{
    for (pw_ledger_partition_t *p = ledger->partitions; p; p = p->next)
        if (p->partition == partition && strcmp(p->topic, topic) == 0)
            return p;
    return NULL;
}

void pw_ledger_assign(pw_ledger_t *ledger, const char *topic, int32_t partition)
{
    if (pw_partition_find(ledger, topic, partition))
        return;
    pw_ledger_partition_t *p = pw_calloc(1, sizeof(*p));
    p->topic = pw_strdup(topic);
    p->partition = partition;
    p->commit_offset = -1;
    p->next = ledger->partitions;
    ledger->partitions = p;
}

/* Retires done jobs from the front of the partition; the commit point
 * follows them. An abandoned job stays and holds the point back. */
static void pw_partition_advance(pw_ledger_partition_t *p)
{
    while (p->head && p->head->done) {
        pw_job_t *job = p->head;
        p->head = job->part_next;
        if (!p->head)
            p->tail = NULL;
        p->commit_offset = job->offset + 1;
        p->dirty = true;
        pw_job_destroy(job);
    }
}

/* The job's last count went. */
static void pw_job_settle(pw_ledger_t *ledger, pw_job_t *job)
{
    if (!job->abandoned)
        job->done = true;
    ledger->in_flight--;
    if (!job->part) {
        pw_job_destroy(job); /* orphaned by a revoke: nothing to commit */
        return;
    }
    if (job->done)
        pw_partition_advance(job->part);
}

static void pw_job_release(pw_ledger_t *ledger, pw_job_t *job)
{
    if (--job->holds == 0)
        pw_job_settle(ledger, job);
}

/* The job no longer buffers a payload in its partition. */
static void pw_job_unbuffer(pw_ledger_t *ledger, pw_job_t *job)
{
    if (job->part) {
        job->part->buffered--;
        job->part->bytes -= job->bytes;
    }
    ledger->bytes -= job->bytes;
    job->bytes = 0;
    pw_job_drop_payload(job);
}

/* ---- the ledger ---- */

pw_ledger_t *pw_ledger_new(void)
{
    pw_ledger_t *ledger = pw_calloc(1, sizeof(*ledger));
    ledger->bucket_count = 256;
    ledger->buckets = pw_calloc(ledger->bucket_count, sizeof(*ledger->buckets));
    return ledger;
}

void pw_ledger_destroy(pw_ledger_t *ledger)
{
    if (!ledger)
        return;
    for (pw_ledger_partition_t *p = ledger->partitions, *next; p; p = next) {
        next = p->next;
        for (pw_job_t *job = p->head, *jn; job; job = jn) {
            jn = job->part_next;
            pw_job_destroy(job);
        }
        free(p->topic);
        free(p);
    }
    for (size_t i = 0; i < ledger->bucket_count; i++) {
        for (pw_ledger_queue_t *q = ledger->buckets[i], *next; q; q = next) {
            next = q->next_in_bucket;
            free(q->key);
            free(q);
        }
    }
    free(ledger->buckets);
    free(ledger);
}

bool pw_ledger_submit(pw_ledger_t *ledger, pw_job_t *job)
{
    pw_ledger_assign(ledger, job->topic, job->partition);
    pw_ledger_partition_t *p = pw_partition_find(ledger, job->topic, job->partition);
    job->part = p;
    if (p->tail)
        p->tail->part_next = job;
    else
        p->head = job;
    p->tail = job;
    p->buffered++;
    p->bytes += job->bytes;
    ledger->bytes += job->bytes;
    ledger->in_flight++;

    /* Without a key (or with a NUL in it), order by partition: the safe
     * reading of "no key". */
    char order_key[64];
    const char *key = job->key && job->key_len == strlen(job->key) ? job->key : NULL;
    if (!key) {
        snprintf(order_key, sizeof(order_key), "\x01partition-%d", (int)job->partition);
        key = order_key;
    }
    pw_ledger_queue_t *q = pw_queue_get(ledger, key);
    job->queue = q;
    job->queue_prev = q->tail;
    if (q->tail) {
        q->tail->queue_next = job;
        q->tail = job;
        return false;
    }
    q->head = q->tail = job;
    if (ledger->starting_stopped)
        return false;
    pw_ready_push(ledger, job);
    return true;
}

pw_job_t *pw_ledger_take(pw_ledger_t *ledger)
{
    pw_job_t *job = ledger->ready_head;
    if (!job)
        return NULL;
    ledger->ready_head = job->ready_next;
    if (!ledger->ready_head)
        ledger->ready_tail = NULL;
    ledger->ready_count--;
    job->ready_next = NULL;
    job->running = true;
    job->holds = 1;
    ledger->running++;
    return job;
}

size_t pw_ledger_ready(const pw_ledger_t *ledger)
{
    return ledger->ready_count;
}

bool pw_ledger_finish(pw_ledger_t *ledger, pw_job_t *job, bool answered)
{
    ledger->running--;
    job->running = false;
    if (!answered)
        job->abandoned = true;
    pw_job_unbuffer(ledger, job);
    bool readied = false;
    if (job->queue) {
        pw_job_t *next = pw_queue_remove(ledger, job);
        if (next && !ledger->starting_stopped) {
            pw_ready_push(ledger, next);
            readied = true;
        }
    }
    pw_job_release(ledger, job);
    return readied;
}

void pw_ledger_hold(pw_ledger_t *ledger, pw_job_t *job)
{
    (void)ledger;
    job->holds++;
}

void pw_ledger_delivered(pw_ledger_t *ledger, pw_job_t *job)
{
    pw_job_release(ledger, job);
}

void pw_ledger_undeliverable(pw_ledger_t *ledger, pw_job_t *job)
{
    job->abandoned = true; /* its offset stays back: redelivered after a restart */
    pw_job_release(ledger, job);
}

int pw_ledger_collect(pw_ledger_t *ledger, rd_kafka_topic_partition_list_t *list)
{
    int added = 0;
    for (pw_ledger_partition_t *p = ledger->partitions; p; p = p->next) {
        if (p->dirty && p->commit_offset >= 0) {
            rd_kafka_topic_partition_list_add(list, p->topic, p->partition)->offset =
                p->commit_offset;
            p->dirty = false;
            added++;
        }
    }
    return added;
}

/* Takes the partition's jobs off the ready list. */
static void pw_ready_drop_partition(pw_ledger_t *ledger, const pw_ledger_partition_t *p)
{
    pw_job_t **pp = &ledger->ready_head;
    ledger->ready_tail = NULL;
    while (*pp) {
        if ((*pp)->part == p) {
            *pp = (*pp)->ready_next;
            ledger->ready_count--;
        } else {
            ledger->ready_tail = *pp;
            pp = &(*pp)->ready_next;
        }
    }
}

void pw_ledger_revoke_start(pw_ledger_t *ledger, const char *topic, int32_t partition)
{
    pw_ledger_partition_t *p = pw_partition_find(ledger, topic, partition);
    if (!p)
        return;
    /* Off the ready list first, so that no dropped job can start later. */
    pw_ready_drop_partition(ledger, p);
    for (pw_job_t *job = p->head; job; job = job->part_next) {
        if (job->running || job->holds > 0 || !job->queue)
            continue; /* running, waiting for a delivery, or finished */
        pw_job_t *next = pw_queue_remove(ledger, job);
        job->abandoned = true;
        ledger->in_flight--;
        pw_job_unbuffer(ledger, job);
        /* A queue whose new head belongs to a partition we keep goes on. */
        if (next && next->part != p && !next->running && !ledger->starting_stopped)
            pw_ready_push(ledger, next);
    }
}

int pw_ledger_unsettled(const pw_ledger_t *ledger, const char *topic, int32_t partition)
{
    const pw_ledger_partition_t *p = pw_partition_find(ledger, topic, partition);
    int unsettled = 0;
    for (const pw_job_t *job = p ? p->head : NULL; job; job = job->part_next)
        unsettled += job->running || job->holds > 0;
    return unsettled;
}

void pw_ledger_revoke_finish(pw_ledger_t *ledger, const char *topic, int32_t partition,
                             rd_kafka_topic_partition_list_t *list)
{
    pw_ledger_partition_t *p = pw_partition_find(ledger, topic, partition);
    if (!p)
        return;
    if (p->commit_offset >= 0)
        rd_kafka_topic_partition_list_add(list, p->topic, p->partition)->offset = p->commit_offset;
    pw_ledger_partition_t **pp = &ledger->partitions;
    while (*pp != p)
        pp = &(*pp)->next;
    *pp = p->next;
    for (pw_job_t *job = p->head, *next; job; job = next) {
        next = job->part_next;
        job->part = NULL;
        if (!job->running && job->holds == 0)
            pw_job_destroy(job); /* the rest are orphans, freed when they settle */
    }
    free(p->topic);
    free(p);
}

void pw_ledger_stop_starting(pw_ledger_t *ledger)
{
    ledger->starting_stopped = true;
    ledger->ready_head = ledger->ready_tail = NULL; /* queued jobs stay uncommitted */
    ledger->ready_count = 0;
}

int pw_ledger_in_flight(const pw_ledger_t *ledger)
{
    return ledger->in_flight;
}

int pw_ledger_running(const pw_ledger_t *ledger)
{
    return ledger->running;
}

bool pw_ledger_buffered(const pw_ledger_t *ledger, const char *topic, int32_t partition, int *jobs,
                        size_t *bytes)
{
    const pw_ledger_partition_t *p = pw_partition_find(ledger, topic, partition);
    *jobs = p ? p->buffered : 0;
    *bytes = p ? p->bytes : 0;
    return p != NULL;
}

size_t pw_ledger_buffered_bytes(const pw_ledger_t *ledger)
{
    return ledger->bytes;
}
