/* Parking: posts of an account that must be reconnected are kept, in order,
 * never lost, and published after the next `token put`.
 *
 * DESIGN: pw:{ACCT}:parked is a list of original request values, oldest
 * first. An account parks its posts while its status is reconnect_required
 * or while its list is not empty (so a new post never overtakes a parked
 * one). The first auth failure that needs a reconnect marks the account,
 * produces account.event.v1 reconnect_required and one alert; later posts
 * park without calling the API. */
#ifndef PW_PARK_H
#define PW_PARK_H

#include "pipeline.h"
#include "post_store.h"

typedef struct pw_account_s {
    pw_token_t *token; /* NULL when the account has no usable token */
} pw_account_t;

/* Accounts with parked posts: what the sweep replays. */
#define PW_PARKED_ACCOUNTS "pw:parked_accounts"

void pw_park_account_clear(pw_account_t *account);

/** @brief The first step of every post, in one Redis round trip: parks it
 *  if its account is marked or has parked posts (answering parked), or else
 *  reads the account's token into account (token NULL: none usable) and the
 *  post's record into rec. @returns false when stopping. */
bool pw_park_begin(pw_pipeline_t *p, pw_job_t *job, const pw_request_t *req, pw_account_t *account,
                   pw_post_record_t *rec, int *parked);

/** @brief Parks req of an account without a usable token, marking it.
 *  @returns false when the worker is stopping (the post is not parked). */
bool pw_park_without_token(pw_pipeline_t *p, pw_job_t *job, const pw_request_t *req);

/** @brief An auth or permission failure of the publish step with the token
 *  of fencing number failed_fence (0: none): logs it, counts it, marks the
 *  account (unless a newer token was stored meanwhile) and parks the post
 *  (always: the sweep replays an active account's parked posts).
 *  @returns false when stopping (not parked). */
bool pw_park_on_auth_failure(pw_pipeline_t *p, pw_job_t *job, const pw_request_t *req,
                             int64_t failed_fence, const pw_api_error_t *err, int attempts,
                             bool token_refreshed, bool logged);
/** @brief Logs an auth failure (timestamp, account, endpoint, HTTP status,
 *  code, subcode, fbtrace_id) and counts it towards repeated_auth_failure. */
void pw_park_log_auth_failure(pw_pipeline_t *p, pw_job_t *job, const pw_request_t *req,
                              const pw_api_error_t *err);

/** @brief Marks account reconnect_required once (event and one alert),
 *  unless the stored token is newer than the one that failed (fencing number
 *  failed_fence; 0 when there was none). */
void pw_park_mark(pw_pipeline_t *p, pw_job_t *job, const char *account_id, int64_t failed_fence,
                  const pw_api_error_t *err, const char *reason);

/** @brief Publishes account's parked posts in order, each with a second
 *  result, unless another worker is replaying them. @returns false when
 *  stopping. */
bool pw_park_replay(pw_pipeline_t *p, pw_http_t *http, pw_job_t *job, const char *account_id);

/** @brief An account.event.v1 message. */
bool pw_park_on_account_event(pw_pipeline_t *p, pw_http_t *http, pw_job_t *job);

#endif
