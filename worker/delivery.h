/* Delivery: what becomes of every message the worker produces for a job.
 *
 * DESIGN: each such message carries a pw_outmsg_t (its job, its kind, its
 * attempts) as its delivery opaque, and holds its job (pool.h) until the
 * outcome below. A produce call that fails at once and a delivery report
 * with an error end up in the same place:
 *  - delivered: the hold is released;
 *  - a retriable error (a full local queue, librdkafka giving up after
 *    message.timeout.ms during a broker outage, a topic not known yet): the
 *    message is produced again after a backoff (1 s doubling to 30 s), the
 *    job still held, so its offset waits;
 *  - a permanent error (too large for the topic, not authorised, invalid):
 *    a dead letter is cut to fit and produced again with an
 *    `error.truncated` header; any other message cannot be answered, so its
 *    job is abandoned (never committed past: redelivered after a restart or
 *    rebalance), a metric counts it, /readyz fails until a later message to
 *    that topic is delivered, and the log says what to fix.
 * Retries wait in a list that the main loop serves (pw_delivery_serve()); a
 * lock guards it, since fibers fail produce calls too. */
#ifndef PW_DELIVERY_H
#define PW_DELIVERY_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>

#include "metrics.h"
#include "pool.h"

typedef enum {
    PW_OUT_RESULT = 0,
    PW_OUT_ALERT,
    PW_OUT_DEAD_LETTER,
    PW_OUT_ACCOUNT_EVENT,
} pw_out_kind_t;

typedef struct pw_delivery_s pw_delivery_t;

/* Tells one message's final outcome to whoever waits for it: shared by the
 * waiter and the message, freed by the last to let go. */
typedef struct pw_delivery_ticket_s pw_delivery_ticket_t;

/** @brief A ticket to pass to pw_delivery_produce(); release it when done. */
pw_delivery_ticket_t *pw_delivery_ticket_new(void);
/** @brief 0 while pending, 1 once delivered, -1 when it never will be. */
int pw_delivery_ticket_state(const pw_delivery_ticket_t *ticket);
void pw_delivery_ticket_release(pw_delivery_ticket_t *ticket);

/** @brief Delivery handling that releases jobs of pool and reports
 *  readiness to server (may be NULL); both borrowed. Give it to the
 *  producer as the opaque of pw_delivery_report(). */
pw_delivery_t *pw_delivery_new(pw_pool_t *pool, pw_metrics_server_t *server);
/** @brief Abandons the jobs of messages still waiting for a retry (their
 *  offsets stay uncommitted), then frees everything. */
void pw_delivery_destroy(pw_delivery_t *delivery);

/** @brief Produces a message of kind for job (NULL: best effort, nothing
 *  held), holding the job until the outcome above. ticket (may be NULL; the
 *  call takes a share of it) learns the outcome. @locality any thread */
void pw_delivery_produce(pw_delivery_t *delivery, rd_kafka_t *rk, pw_job_t *job, pw_out_kind_t kind,
                         const char *topic, const char *key, size_t key_len, const char *value,
                         size_t len, const rd_kafka_headers_t *hdrs, pw_delivery_ticket_t *ticket);

/** @brief The producer's delivery report callback (its opaque is the
 *  delivery). @locality the thread polling the producer */
void pw_delivery_report(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque);

/** @brief Produces the retries that are due. @locality main thread */
void pw_delivery_serve(pw_delivery_t *delivery, rd_kafka_t *rk);
/** @brief Messages waiting for a retry. */
int pw_delivery_pending(pw_delivery_t *delivery);

#endif
