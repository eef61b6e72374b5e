/* Accounts: the account side of a post's journey: parking, marking, replay
 * and account events.
 *
 * DESIGN: pw:{ACCT}:parked is a list of original request values, oldest
 * first (keys.h). An account parks its posts while its status is
 * reconnect_required or while its list is not empty, so a new post never
 * overtakes a parked one (the publish step's begin script checks both). The
 * first auth failure that needs a reconnect marks the account, produces
 * account.event.v1 reconnect_required and one alert (permission_denied for
 * a missing scope); later posts park without calling the API. A
 * token_updated event, or the sweep for any account that is active again,
 * replays the parked posts in order under a per-account replay lock, each
 * with a second result. */
#ifndef PW_ACCOUNTS_H
#define PW_ACCOUNTS_H

#include <stdbool.h>
#include <stdint.h>

#include "context.h"
#include "http.h"
#include "publish.h"
#include "request.h"
#include "threads_api.h"

/** @brief Parks req after the auth failure that ended its publish step:
 *  logs and counts the failure (unless already logged), marks the account
 *  (unless a newer token was stored meanwhile), parks the post and answers
 *  it parked. @returns false when the worker is stopping (not parked). */
bool pw_accounts_park(pw_ctx_t *ctx, pw_job_t *job, const pw_request_t *req,
                      const pw_auth_failure_t *failure);

/** @brief Marks account reconnect_required once (event and one alert),
 *  unless the stored token is newer than the one that failed (fencing number
 *  failed_fence; 0 when there was none). job may be NULL. */
void pw_accounts_mark(pw_ctx_t *ctx, pw_job_t *job, const char *account_id, int64_t failed_fence,
                      const pw_api_error_t *err);

/** @brief Raises again the alerts of marked accounts that were never
 *  confirmed in Kafka (a crash between the mark and its alert), at most 100
 *  a call. The sweep calls it. */
void pw_accounts_repair_alerts(pw_ctx_t *ctx);

/** @brief Publishes account's parked posts in order, each with a second
 *  result, unless the account is not active, has none, or another worker
 *  replays them. job may be NULL. @returns false when stopping. */
bool pw_accounts_replay(pw_ctx_t *ctx, pw_http_t *http, pw_job_t *job, const char *account_id);

/** @brief An account.event.v1 message (token_updated replays).
 *  @returns false when stopping. */
bool pw_accounts_on_event(pw_ctx_t *ctx, pw_http_t *http, pw_job_t *job);

#endif
