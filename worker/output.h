/* Output: everything the worker says, through one path.
 *
 * DESIGN: results, alerts, dead letters and account events are produced
 * here and only here, through delivery.h: a message produced for a job holds
 * it, so the job is settled, and its offset committable, only once Kafka has
 * every message it produced (or the job is abandoned, never committed past).
 * job may be NULL (the sweep's own output): then delivery is best effort.
 * pw_output_answer() is the one place where a request's outcome becomes its
 * publish.result.v1, for the first try and for a replay alike. The other
 * modules of worker/ call this one; it calls none of them. */
#ifndef PW_OUTPUT_H
#define PW_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>

#include "context.h"
#include "request.h"
#include "threads_api.h"

typedef enum {
    PW_OUTCOME_PUBLISHED = 0,
    PW_OUTCOME_DUPLICATE,
    PW_OUTCOME_FAILED,
    PW_OUTCOME_PARKED,
    PW_OUTCOME_INVALID,
} pw_outcome_status_t;

/* The reason of a post parked for the publishing quota (quota.h), not for
 * a reconnect: its class is rate_limited. */
#define PW_PARKED_FOR_QUOTA "publishing_quota"

/* How a request ended; pw_output_answer() turns it into its result. */
typedef struct pw_outcome_s {
    pw_outcome_status_t status;
    int attempts;
    bool token_refreshed;
    const char *media_id;      /* PUBLISHED, DUPLICATE: NULL or "" when unknown */
    const pw_api_error_t *err; /* FAILED; PARKED when this post's own failure parked it */
    const char *reason;        /* PARKED without err: the account's stored reason
                                  ("" unknown); INVALID: what is wrong */
} pw_outcome_t;

/** @brief Copies the job's message to the dead-letter topic with the
 *  contract's headers (error.class cls, error.message reason, source.*). */
void pw_output_dead_letter(pw_ctx_t *ctx, pw_job_t *job, const char *cls, const char *reason);

/** @brief Produces the publish.result.v1 of req for outcome and logs it. */
void pw_output_answer(pw_ctx_t *ctx, pw_job_t *job, const pw_request_t *req,
                      const pw_outcome_t *outcome);
/** @brief pw_output_answer(), and ticket (delivery.h) learns whether the
 *  result reached Kafka. */
void pw_output_answer_tracked(pw_ctx_t *ctx, pw_job_t *job, const pw_request_t *req,
                              const pw_outcome_t *outcome, pw_delivery_ticket_t *ticket);

/** @brief Raises kind for account unless raised in this window already;
 *  count is the alert's count (0: the occurrences of kind in the window). */
void pw_output_alert(pw_ctx_t *ctx, pw_job_t *job, const char *kind, const char *account_id,
                     const pw_api_error_t *err, const char *message, long count);

/** @brief pw_output_alert(); the returned ticket (delivery.h; caller
 *  releases) learns whether the alert reached Kafka. NULL when it was held
 *  back: raised in this window already. */
pw_delivery_ticket_t *pw_output_alert_tracked(pw_ctx_t *ctx, pw_job_t *job, const char *kind,
                                              const char *account_id, const pw_api_error_t *err,
                                              const char *message, long count);
/** @brief Raises kind for account again, past de-duplication: the repair of
 *  an alert whose delivery was never confirmed. Caller releases the ticket. */
pw_delivery_ticket_t *pw_output_alert_again(pw_ctx_t *ctx, const char *kind, const char *account_id,
                                            const char *message);
/** @brief Raises kind once per window for the whole fleet (subject names
 *  the problem: "oauth2_client"), however many accounts meet it. An alert
 *  names one account: account_id is the one whose failure raised it; message
 *  says that the problem is not that account's. */
void pw_output_fleet_alert(pw_ctx_t *ctx, pw_job_t *job, const char *kind, const char *subject,
                           const char *account_id, const pw_api_error_t *err, const char *message);

/** @brief Logs an auth failure (timestamp, account, endpoint, HTTP status,
 *  code, subcode, fbtrace_id) and counts it towards repeated_auth_failure,
 *  raising that alert at the threshold. post_id may be NULL. */
void pw_output_auth_failure(pw_ctx_t *ctx, pw_job_t *job, const char *account_id,
                            const char *post_id, const pw_api_error_t *err);

/** @brief Produces an account.event.v1 of type for account. */
void pw_output_account_event(pw_ctx_t *ctx, pw_job_t *job, const char *type,
                             const char *account_id);

#endif
