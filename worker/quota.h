/* Quota: each profile's publishing quota (250 API posts in 24 hours), kept
 * by the worker itself as Meta asks apps to.
 *
 * DESIGN: pw:{ACCT}:published is a sorted set of the account's publications
 * (post id -> ms) within the window; a post reserves its slot there before
 * its container is made and gives it back when it is not published. The
 * count used is the larger of that set's and the API's own reading
 * (pw:{ACCT}:quota, from GET /{user-id}/threads_publishing_limit, taken by
 * the verification sweep and whenever the quota looks used up) plus what
 * the worker published since the reading: posts published by other tools
 * count too. A post that would exceed the quota is not sent: it is parked,
 * kept and in order, answered `parked` with class `rate_limited`, and
 * pw:{ACCT}:quota_hold is set until the window frees (when the oldest
 * publication leaves it; 15 minutes when only the API's count says so).
 * Later posts park behind it (the begin script checks the hold), the sweep
 * replays the parked posts once the hold has expired, and one
 * `rate_limited` alert is raised per hold. */
#ifndef PW_QUOTA_H
#define PW_QUOTA_H

#include <stdbool.h>
#include <stdint.h>

#include "context.h"
#include "http.h"
#include "request.h"
#include "threads_account.h"
#include "token_store.h"

typedef enum {
    PW_QUOTA_GO = 0, /* a slot is reserved for the post: publish it */
    PW_QUOTA_WAIT,   /* used up until *free_at_ms */
    PW_QUOTA_STOPPED /* the worker is stopping */
} pw_quota_verdict_t;

/** @brief Reserves a slot of token's account's quota for post_id (a slot
 *  it holds already is kept), reading the API's count when the quota looks
 *  used up and the last reading is older than 5 minutes. */
pw_quota_verdict_t pw_quota_reserve(pw_ctx_t *ctx, pw_http_t *http, const pw_token_t *token,
                                    const char *post_id, int64_t *free_at_ms);

/** @brief Gives back post_id's slot: it was not published. */
void pw_quota_release(pw_ctx_t *ctx, const char *account_id, const char *post_id);

/** @brief Holds the account's posts until free_at_ms (0: 15 minutes from
 *  now) and raises one rate_limited alert for the hold; err is the API's
 *  answer that said the quota is used up, NULL when the worker's count did. */
void pw_quota_hold(pw_ctx_t *ctx, pw_job_t *job, const char *account_id, int64_t free_at_ms,
                   const pw_api_error_t *err);

/** @brief Parks req behind the hold (see pw_quota_hold()) and answers it
 *  parked, class rate_limited. @returns false when the worker is stopping. */
bool pw_quota_park(pw_ctx_t *ctx, pw_job_t *job, const pw_request_t *req, int64_t free_at_ms,
                   const pw_api_error_t *err, int attempts);

/** @brief Records the API's reading of the account's quota. */
void pw_quota_note(pw_redis_t *redis, const char *account_id, const pw_quota_t *quota);

#endif
