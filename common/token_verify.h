/* Token verification: is a stored token still the account's, alive and
 * allowed to publish? Asked of the API with read-only calls, before any post
 * needs the answer.
 *
 * DESIGN: three cheap GETs, each of which Meta documents:
 *   GET /v1.0/me?fields=id,username           whose token is it (threads_basic)
 *   GET /v1.0/{user-id}/threads_publishing_limit?fields=quota_usage,config
 *                                             may it publish, and how much is
 *                                             left of the 24-hour quota
 *                                             (threads_basic and
 *                                             threads_content_publish)
 *   GET /v1.0/debug_token?input_token=T       the granted scopes, only when
 *                                             scopes beyond those two must be
 *                                             checked
 * Their failures are read by pw_api_error_classify(), so a verification
 * finds exactly what a failed post would: an outcome, and the error (endpoint,
 * status, code, subcode) that decided it. A transport failure, a 5xx or a
 * rate limit says nothing about the token: "unreachable", never a verdict. */
#ifndef PW_TOKEN_VERIFY_H
#define PW_TOKEN_VERIFY_H

#include <stdbool.h>
#include <stdint.h>

#include "http.h"
#include "pw.h"
#include "secret.h"
#include "threads_account.h"
#include "threads_api.h"

typedef enum {
    PW_VERIFY_OK = 0,
    PW_VERIFY_EXPIRED,
    PW_VERIFY_REVOKED,       /* revoked, or not a token the API knows */
    PW_VERIFY_MISSING_SCOPE, /* may not publish, or lacks a scope named */
    PW_VERIFY_WRONG_USER,    /* another user's (or another environment's) */
    PW_VERIFY_UNREACHABLE,   /* no verdict: transport, 5xx, rate limit */
    PW_VERIFY_COUNT
} pw_verify_outcome_t;

typedef struct pw_verification_s {
    pw_verify_outcome_t outcome;
    /* The failure that decided outcome (unset for PW_VERIFY_OK, and for
     * PW_VERIFY_WRONG_USER found by comparing ids: endpoint set, numbers -1). */
    pw_api_error_t err;
    /* What was found, for the operator: never a secret. */
    char message[640];
    char token_user_id[PW_ID_MAX]; /* whom the API says it belongs to; "" */
    pw_quota_t quota;
} pw_verification_t;

/** @brief Verifies token as user_id's: its owner, that it may publish, and
 *  that every scope in scopes (comma-separated; NULL or "" for none beyond
 *  publishing) is granted. Fills *out. @locality any thread (own http). */
void pw_token_verify(pw_http_t *http, const char *base_url, const char *user_id,
                     const pw_secret_t *token, const char *scopes, pw_verification_t *out);

/** @brief "ok", "expired", "revoked", "missing_scope", "wrong_user",
 *  "unreachable". */
const char *pw_verify_outcome_name(pw_verify_outcome_t outcome);

#endif
