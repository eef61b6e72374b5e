/* Alert de-duplication across the fleet: one alert per account, kind and
 * window (AUTH_ALERT_WINDOW_S), and the fleet-wide auth failure count that
 * raises repeated_auth_failure.
 *
 * DESIGN: pw:{ACCT}:alert:{KIND} counts occurrences in the current window
 * (INCR, expiring with the window); the occurrence that makes it 1 raises the
 * alert. pw:{ACCT}:authfail counts auth failures the same way; the failure
 * that reaches the threshold raises repeated_auth_failure with that count.
 * A problem of the whole fleet (a refused OAuth2 client) is counted once for
 * the fleet under pw:fleet_alert:SUBJECT instead, so it raises one alert per
 * window however many accounts meet it. */
#ifndef PW_ALERTS_H
#define PW_ALERTS_H

#include "pw.h"
#include "redis.h"

/** @brief Counts one occurrence of kind for account in the window.
 *  @returns 1 when this occurrence should raise the alert, 0 when it was
 *  raised already in this window, -1 on a Redis error (errstr). *count gets
 *  the occurrences so far. */
int pw_alert_occurrence(pw_redis_t *redis, const char *account_id, const char *kind, long window_s,
                        long *count, char *errstr, size_t errstr_size) PW_MUSTCHECK;

/** @brief pw_alert_occurrence() for a problem of the whole fleet: one alert
 *  per subject and window, whatever the account. */
int pw_alert_fleet_occurrence(pw_redis_t *redis, const char *subject, long window_s, long *count,
                              char *errstr, size_t errstr_size) PW_MUSTCHECK;

/** @brief Counts one auth failure; returns 1 exactly when the count in the
 *  window reaches threshold, 0 otherwise, -1 on error. */
int pw_alert_auth_failure(pw_redis_t *redis, const char *account_id, long threshold, long window_s,
                          long *count, char *errstr, size_t errstr_size) PW_MUSTCHECK;

#endif
