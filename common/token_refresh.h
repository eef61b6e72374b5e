/* Token refresh: single-flight across the fleet, fenced, two methods.
 *
 * DESIGN: a per-account lock pw:{ACCT}:refresh_lock is taken with SET NX PX
 * in a Lua script that also hands out the next fencing number (INCR
 * pw:{ACCT}:fence). The holder re-reads the token (another worker may have
 * refreshed it meanwhile), calls the platform with an HTTP timeout well under
 * the lock's lifetime, writes the new token only if its fencing number is
 * still the newest (pw_token_store_write_fenced()), and releases the lock
 * with compare-and-delete. A worker that finds the lock taken does not call
 * the platform: it waits (bounded) and re-reads the token. So with rotating,
 * single-use refresh tokens one account is refreshed once, however many
 * workers want it at once, and a holder that stalled past its lease cannot
 * overwrite the newer token.
 * Methods: "threads" (GET {base}/refresh_access_token, allowed once the token
 * is 24 hours old and not expired) and "oauth2" (RFC 6749 §6 refresh_token
 * grant at OAUTH2_TOKEN_URL, client credentials by HTTP Basic; a rotated
 * refresh token replaces the old one, a response without one keeps it;
 * invalid_grant is terminal; a refused client (invalid_client,
 * unauthorized_client) or a missing OAUTH2_TOKEN_URL is the fleet's
 * configuration: transient, with the error's config_error set, so that no
 * account is marked for it). */
#ifndef PW_TOKEN_REFRESH_H
#define PW_TOKEN_REFRESH_H

#include <stdbool.h>

#include "config.h"
#include "http.h"
#include "pw.h"
#include "redis.h"
#include "threads_api.h"
#include "token_store.h"

typedef enum {
    PW_RF_REFRESHED = 0, /* this call refreshed the token */
    PW_RF_BY_OTHER,      /* another worker did; *out is the token it wrote */
    PW_RF_NOT_ALLOWED,   /* threads token younger than 24 h: not yet */
    PW_RF_TERMINAL,      /* revoked, expired or invalid_grant: reconnect */
    PW_RF_TRANSIENT,     /* try again later (platform, Redis, lock wait, a refused
                            OAuth2 client: err->config_error) */
} pw_rf_status_t;

#define PW_REFRESH_LOCK_TTL_MS 30000
#define PW_THREADS_MIN_AGE_S 86400
/* The longest lifetime taken from a token endpoint (10 years): a token that
 * lives longer is refreshed after that, and its expiry stays a time a token
 * record can hold (PW_TIME_MAX_S). */
#define PW_EXPIRES_IN_MAX_S (10L * 365 * 86400)

typedef struct pw_refresher_s {
    const pw_config_t *conf;
    pw_redis_t *redis;
    pw_token_store_t *tokens;
} pw_refresher_t;

/** @brief Refreshes account's token under the fleet-wide lock.
 *  @param used  the token the caller holds (the one that failed or is about
 *               to expire); if the stored token differs, it was refreshed
 *               already and is returned as PW_RF_BY_OTHER.
 *  @param force refresh even if the stored token does not look due (the API
 *               said it expired).
 *  @returns the outcome; on PW_RF_REFRESHED and PW_RF_BY_OTHER *out is the
 *  current token (caller frees); err describes platform failures.
 *  @locality any thread; blocks up to about the lock's lifetime. */
pw_rf_status_t pw_token_refresh(pw_refresher_t *rf, pw_http_t *http, const pw_token_t *used,
                                bool force, pw_token_t **out, pw_api_error_t *err);

/** @brief Takes account's refresh lock for ttl_ms as owner.
 *  @returns the fencing number of this holder, 0 when another holds the
 *  lock, -1 when Redis failed. */
int64_t pw_refresh_lock_acquire(pw_redis_t *redis, const char *account_id, const char *owner,
                                int ttl_ms);
/** @brief Releases the lock if owner still holds it: 1 released, 0 not ours
 *  (it expired and maybe another took it), -1 Redis failed. */
int pw_refresh_lock_release(pw_redis_t *redis, const char *account_id, const char *owner);

/** @brief Whether a token is due for a proactive refresh: remaining lifetime
 *  below ahead_s or below half its whole lifetime, whichever is smaller. */
bool pw_token_refresh_due(const pw_token_t *token, long ahead_s, int64_t now_s);
/** @brief Whether the method allows refreshing this token now. */
bool pw_token_refresh_allowed(const pw_token_t *token, int64_t now_s);

/** @brief Parses a token endpoint's success body: access_token (non-empty),
 *  expires_in (at least 1; more than PW_EXPIRES_IN_MAX_S reads as that),
 *  refresh_token (optional). @returns 0 or -1. */
int pw_token_refresh_parse(const char *body, pw_secret_t **access, pw_secret_t **refresh,
                           long *expires_in);
#endif
