/* Verifier: every account's token checked against the API at least once per
 * TOKEN_VERIFY_INTERVAL_S, once per interval for the whole fleet.
 *
 * DESIGN: pw:verify_due orders accounts by when they are due (token put
 * schedules one interval ahead, the census schedules accounts that have no
 * date). A worker claims due accounts with one Lua call that moves each to
 * now + interval, so an account is claimed by one worker per interval
 * however many replicas run, and counts them in pw:verify_rate:SECOND, so
 * the fleet starts at most TOKEN_VERIFY_MAX_PER_S verifications a second.
 * What a verification finds acts as a failed post would, before any post
 * is due: revoked or another user's token marks the account
 * reconnect_required, a missing scope marks it for permission_denied (one
 * event and one alert, accounts.h), an expired token is refreshed once and
 * marks the account only if that fails for good; an unreachable API is no
 * verdict and is asked again within 10 minutes. A token that verifies fine
 * clears no mark (only token put does). Each result is recorded in
 * pw:{ACCT}:verify for token list, with the API's quota reading (quota.h). */
#ifndef PW_VERIFIER_H
#define PW_VERIFIER_H

#include "context.h"

typedef struct pw_verifier_s pw_verifier_t;

/** @brief Starts the verification thread; NULL when TOKEN_VERIFY_INTERVAL_S
 *  is 0. Stops when the context drains. */
pw_verifier_t *pw_verifier_new(pw_ctx_t *ctx);
/** @brief Joins the thread (after the context was told to stop). */
void pw_verifier_destroy(pw_verifier_t *verifier);

#endif
