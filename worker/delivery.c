/* Delivery: retries, fallbacks and give-ups of produced messages (see delivery.h). */
#include "delivery.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka.h"
#include "log.h"

/* A dead letter too large for its topic is produced again cut to this. */
#define PW_DEAD_LETTER_CUT_BYTES (16 * 1024)
#define PW_RETRY_MAX_DELAY_MS 30000

struct pw_delivery_ticket_s {
    atomic_int state; /* 0 pending, 1 delivered, -1 never */
    atomic_int refs;
};

/* The delivery opaque of a message produced for a job. */
typedef struct pw_outmsg_s {
    pw_job_t *job; /* NULL: best effort */
    pw_out_kind_t kind;
    int attempts;                 /* failed deliveries so far */
    bool cut;                     /* a dead letter already cut to fit */
    pw_delivery_ticket_t *ticket; /* NULL: nobody waits */
} pw_outmsg_t;

pw_delivery_ticket_t *pw_delivery_ticket_new(void)
{
    pw_delivery_ticket_t *t = pw_calloc(1, sizeof(*t));
    atomic_init(&t->state, 0);
    atomic_init(&t->refs, 1);
    return t;
}

int pw_delivery_ticket_state(const pw_delivery_ticket_t *t)
{
    return atomic_load(&t->state);
}

void pw_delivery_ticket_release(pw_delivery_ticket_t *t)
{
    if (t && atomic_fetch_sub(&t->refs, 1) == 1)
        free(t);
}

/* A message waiting for its next try (its own copies). */
typedef struct pw_retry_s {
    pw_outmsg_t *out;
    char *topic;
    char *key;
    size_t key_len;
    char *value;
    size_t len;
    rd_kafka_headers_t *hdrs;
    int64_t due_mono_ms;
    struct pw_retry_s *next;
} pw_retry_t;

struct pw_delivery_s {
    pw_pool_t *pool;
    pw_metrics_server_t *server;
    pthread_mutex_t lock;
    pw_retry_t *retries; /* unordered; few at a time */
    int pending;
    char blocked_topic[256]; /* "" while every topic takes messages */
};

pw_delivery_t *pw_delivery_new(pw_pool_t *pool, pw_metrics_server_t *server)
{
    pw_delivery_t *d = pw_calloc(1, sizeof(*d));
    d->pool = pool;
    d->server = server;
    pthread_mutex_init(&d->lock, NULL);
    return d;
}

static void pw_retry_free(pw_retry_t *r)
{
    free(r->topic);
    free(r->key);
    free(r->value);
    if (r->hdrs)
        rd_kafka_headers_destroy(r->hdrs);
    free(r);
}

/* The message's job is done with, for better or worse. */
static void pw_outmsg_settle(pw_delivery_t *d, pw_outmsg_t *out, bool delivered)
{
    if (out->ticket) {
        atomic_store(&out->ticket->state, delivered ? 1 : -1);
        pw_delivery_ticket_release(out->ticket);
    }
    if (out->job) {
        if (delivered)
            pw_pool_delivered(d->pool, out->job);
        else
            pw_pool_undeliverable(d->pool, out->job);
    }
    free(out);
}

void pw_delivery_destroy(pw_delivery_t *d)
{
    if (!d)
        return;
    for (pw_retry_t *r = d->retries, *next; r; r = next) {
        next = r->next;
        pw_log_error("message not delivered before shutdown; its request will be redelivered",
                     PW_F_STR("topic", r->topic));
        pw_outmsg_settle(d, r->out, false);
        pw_retry_free(r);
    }
    pthread_mutex_destroy(&d->lock);
    free(d);
}

/* Errors that no retry mends: the message or the worker's rights must change. */
static bool pw_delivery_permanent(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
    case RD_KAFKA_RESP_ERR__FATAL:
        return true;
    default:
        return false;
    }
}

static const char *pw_delivery_fix(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
        return "raise the topic's max.message.bytes (and RDKAFKA_MESSAGE_MAX_BYTES), then restart "
               "the worker: the request is redelivered";
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
        return "grant this worker's principal WRITE (and IDEMPOTENT_WRITE) on the topic, then "
               "restart the worker: the request is redelivered";
    default:
        return "see the error; the request is redelivered after a restart";
    }
}

/* Queues a copy of the message for another try after a backoff. */
static void pw_delivery_retry_later(pw_delivery_t *d, pw_outmsg_t *out, const char *topic,
                                    const void *key, size_t key_len, const void *value, size_t len,
                                    const rd_kafka_headers_t *hdrs)
{
    pw_retry_t *r = pw_calloc(1, sizeof(*r));
    r->out = out;
    r->topic = pw_strdup(topic);
    if (key) {
        r->key = pw_malloc(key_len);
        memcpy(r->key, key, key_len);
        r->key_len = key_len;
    }
    r->value = pw_malloc(len + 1);
    memcpy(r->value, value, len);
    r->len = len;
    r->hdrs = hdrs ? rd_kafka_headers_copy(hdrs) : NULL;
    long delay = 1000L << (out->attempts - 1 < 5 ? out->attempts - 1 : 5);
    r->due_mono_ms = pw_mono_ms() + (delay < PW_RETRY_MAX_DELAY_MS ? delay : PW_RETRY_MAX_DELAY_MS);
    pthread_mutex_lock(&d->lock);
    r->next = d->retries;
    d->retries = r;
    d->pending++;
    pthread_mutex_unlock(&d->lock);
}

static void pw_delivery_block(pw_delivery_t *d, const char *topic)
{
    pthread_mutex_lock(&d->lock);
    snprintf(d->blocked_topic, sizeof(d->blocked_topic), "%s", topic);
    pthread_mutex_unlock(&d->lock);
    if (d->server)
        pw_metrics_set_delivery_ok(d->server, false);
}

/* A delivery to topic succeeded: a block on it is lifted. */
static void pw_delivery_unblock(pw_delivery_t *d, const char *topic)
{
    pthread_mutex_lock(&d->lock);
    bool lifted = d->blocked_topic[0] && strcmp(d->blocked_topic, topic) == 0;
    if (lifted)
        d->blocked_topic[0] = '\0';
    pthread_mutex_unlock(&d->lock);
    if (lifted && d->server)
        pw_metrics_set_delivery_ok(d->server, true);
}

static void pw_delivery_produce_out(pw_delivery_t *d, rd_kafka_t *rk, pw_outmsg_t *out,
                                    const char *topic, const void *key, size_t key_len,
                                    const void *value, size_t len, const rd_kafka_headers_t *hdrs);

/* A dead letter too large for its topic: the same headers, the value cut. */
static void pw_delivery_cut_dead_letter(pw_delivery_t *d, rd_kafka_t *rk, pw_outmsg_t *out,
                                        const char *topic, const void *key, size_t key_len,
                                        const void *value, size_t len,
                                        const rd_kafka_headers_t *hdrs)
{
    char note[96];
    snprintf(note, sizeof(note), "value cut from %zu to %d bytes to fit the topic", len,
             PW_DEAD_LETTER_CUT_BYTES);
    rd_kafka_headers_t *cut = hdrs ? rd_kafka_headers_copy(hdrs) : rd_kafka_headers_new(1);
    rd_kafka_header_add(cut, "error.truncated", -1, note, -1);
    pw_metrics_dead_letter_cut();
    pw_log_warn("dead letter too large for its topic; producing it cut", PW_F_STR("topic", topic),
                PW_F_INT("bytes", (long long)len));
    out->cut = true; /* cut once: a second failure gives up */
    pw_delivery_produce_out(d, rk, out, topic, key, key_len, value, PW_DEAD_LETTER_CUT_BYTES, cut);
    rd_kafka_headers_destroy(cut);
}

/* Decides what becomes of a message Kafka did not take (see delivery.h). */
static void pw_delivery_failed(pw_delivery_t *d, rd_kafka_t *rk, pw_outmsg_t *out,
                               rd_kafka_resp_err_t err, const char *topic, const void *key,
                               size_t key_len, const void *value, size_t len,
                               const rd_kafka_headers_t *hdrs)
{
    bool permanent = pw_delivery_permanent(err);
    pw_metrics_delivery_failure(permanent);
    out->attempts++;
    if (!permanent && (out->job || out->ticket)) {
        pw_log_warn("message not delivered; retrying", PW_F_STR("topic", topic),
                    PW_F_STR("error", rd_kafka_err2str(err)), PW_F_INT("attempt", out->attempts));
        pw_delivery_retry_later(d, out, topic, key, key_len, value, len, hdrs);
        return;
    }
    if (permanent && out->kind == PW_OUT_DEAD_LETTER && !out->cut &&
        len > PW_DEAD_LETTER_CUT_BYTES && err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) {
        pw_delivery_cut_dead_letter(d, rk, out, topic, key, key_len, value, len, hdrs);
        return;
    }
    pw_log_error("message cannot be delivered; its request stays uncommitted",
                 PW_F_STR("topic", topic), PW_F_STR("error", rd_kafka_err2str(err)),
                 PW_F_STR("fix", pw_delivery_fix(err)));
    if (out->job)
        pw_delivery_block(d, topic);
    pw_outmsg_settle(d, out, false);
}

static void pw_delivery_produce_out(pw_delivery_t *d, rd_kafka_t *rk, pw_outmsg_t *out,
                                    const char *topic, const void *key, size_t key_len,
                                    const void *value, size_t len, const rd_kafka_headers_t *hdrs)
{
    char errstr[512];
    rd_kafka_resp_err_t err =
        pw_kafka_produce(rk, topic, key, key_len, value, len, hdrs, out, errstr, sizeof(errstr));
    if (err)
        pw_delivery_failed(d, rk, out, err, topic, key, key_len, value, len, hdrs);
}

void pw_delivery_produce(pw_delivery_t *d, rd_kafka_t *rk, pw_job_t *job, pw_out_kind_t kind,
                         const char *topic, const char *key, size_t key_len, const char *value,
                         size_t len, const rd_kafka_headers_t *hdrs, pw_delivery_ticket_t *ticket)
{
    pw_outmsg_t *out = pw_calloc(1, sizeof(*out));
    out->job = job;
    out->kind = kind;
    if (ticket) {
        atomic_fetch_add(&ticket->refs, 1);
        out->ticket = ticket;
    }
    if (job)
        pw_pool_hold(d->pool, job);
    pw_delivery_produce_out(d, rk, out, topic, key, key_len, value, len, hdrs);
}

void pw_delivery_report(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
    pw_delivery_t *d = opaque;
    pw_outmsg_t *out = rkm->_private;
    if (!out)
        return;
    const char *topic = rd_kafka_topic_name(rkm->rkt);
    if (!rkm->err) {
        pw_delivery_unblock(d, topic);
        pw_outmsg_settle(d, out, true);
        return;
    }
    rd_kafka_headers_t *hdrs = NULL;
    if (rd_kafka_message_headers(rkm, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
        hdrs = NULL;
    pw_delivery_failed(d, rk, out, rkm->err, topic, rkm->key, rkm->key_len, rkm->payload, rkm->len,
                       hdrs);
}

/* Takes the retries that are due off the list. */
static pw_retry_t *pw_delivery_take_due(pw_delivery_t *d)
{
    int64_t now = pw_mono_ms();
    pw_retry_t *due = NULL;
    pthread_mutex_lock(&d->lock);
    for (pw_retry_t **pp = &d->retries; *pp;) {
        pw_retry_t *r = *pp;
        if (r->due_mono_ms <= now) {
            *pp = r->next;
            r->next = due;
            due = r;
            d->pending--;
        } else {
            pp = &r->next;
        }
    }
    pthread_mutex_unlock(&d->lock);
    return due;
}

void pw_delivery_serve(pw_delivery_t *d, rd_kafka_t *rk)
{
    for (pw_retry_t *r = pw_delivery_take_due(d), *next; r; r = next) {
        next = r->next;
        pw_delivery_produce_out(d, rk, r->out, r->topic, r->key, r->key_len, r->value, r->len,
                                r->hdrs);
        pw_retry_free(r);
    }
}

int pw_delivery_pending(pw_delivery_t *d)
{
    pthread_mutex_lock(&d->lock);
    int n = d->pending;
    pthread_mutex_unlock(&d->lock);
    return n;
}
