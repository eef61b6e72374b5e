/* Pipeline: one consumed message's whole journey on a worker fiber.
 *
 *   request ──parse──┬─ unidentifiable ──> dead-letter topic (copy + headers)
 *                    ├─ invalid ─────────> failed / invalid_request
 *                    └─ valid ──> token ──> publish step (publish.c) ──> result
 * Every output is produced with the job as its delivery opaque, so the job
 * is done, and its offset committable, only once Kafka has it all. */
#ifndef PW_PIPELINE_H
#define PW_PIPELINE_H

#include <librdkafka/rdkafka.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "config.h"
#include "events.h"
#include "http.h"
#include "redis.h"
#include "request.h"
#include "scheduler.h"
#include "threads_api.h"
#include "token_refresh.h"
#include "token_store.h"

typedef struct pw_pipeline_s {
    const pw_config_t *conf;
    pw_redis_t *redis;
    pw_token_store_t *tokens;
    rd_kafka_t *producer;
    pw_sched_t *sched;
    pw_refresher_t refresher;
    atomic_bool stopping; /* set at shutdown: long waits give up */
} pw_pipeline_t;

/* Scheduler callbacks (pw_sched_ops_t); opaque is the pipeline. */
void *pw_pipeline_fiber_init(void *opaque);
void pw_pipeline_fiber_fini(void *opaque, void *fiber_state);
bool pw_pipeline_run(void *opaque, void *fiber_state, pw_job_t *job);

/** @brief Produces a message on behalf of job; its delivery settles the job.
 *  job may be NULL (the sweep's own output): delivery is then best effort.
 *  @locality worker fiber or the sweep's thread */
void pw_pipeline_emit(pw_pipeline_t *p, pw_job_t *job, const char *topic, const char *key,
                      size_t key_len, const char *value, size_t len,
                      const rd_kafka_headers_t *hdrs);

/** @brief Sleeps ms unless the worker is stopping; returns false if it is. */
bool pw_pipeline_sleep(pw_pipeline_t *p, long ms);

/** @brief Produces the publish.result.v1 of req (ids, worker and time are
 *  filled in here) and logs it. */
void pw_pipeline_result(pw_pipeline_t *p, pw_job_t *job, const pw_request_t *req,
                        pw_result_t *result);
/** @brief The result's error part of an API error (points into err). */
void pw_pipeline_error_of(const pw_api_error_t *err, pw_result_error_t *out);
/** @brief Raises kind for account unless raised in this window already;
 *  count is the alert's count (0: the occurrences of kind in the window). */
void pw_pipeline_alert(pw_pipeline_t *p, pw_job_t *job, const char *kind, const char *account_id,
                       const pw_api_error_t *err, const char *message, long count);

struct pw_account_s;
/** @brief Refreshes account->token (replacing it with the current one),
 *  logging and alerting refresh_failed on failure. */
pw_rf_status_t pw_pipeline_refresh(pw_pipeline_t *p, pw_http_t *http, pw_job_t *job,
                                   struct pw_account_s *account, bool force, pw_api_error_t *err);

#endif
