/* Threads API reads about an account's token: whose it is, what it may
 * publish, which scopes it carries. Read-only calls, for verification. */
#ifndef PW_THREADS_ACCOUNT_H
#define PW_THREADS_ACCOUNT_H

#include <stdbool.h>

#include "http.h"
#include "pw.h"
#include "secret.h"
#include "threads_api.h"

extern const char *const PW_EP_ME;    /* "GET /v1.0/me" */
extern const char *const PW_EP_LIMIT; /* "GET /v1.0/{user-id}/threads_publishing_limit" */
extern const char *const PW_EP_DEBUG; /* "GET /v1.0/debug_token" */

/* The 24-hour publishing quota as the API reported it. */
typedef struct pw_quota_s {
    bool known;
    long usage;      /* posts published in the window */
    long total;      /* posts allowed in the window */
    long duration_s; /* the window */
} pw_quota_t;

/** @brief GET /me?fields=id,username: id receives the token's user id.
 *  @returns 0 or -1 with err. */
int pw_threads_me(pw_http_t *http, const char *base_url, const pw_secret_t *token,
                  char id[PW_ID_MAX], pw_api_error_t *err) PW_MUSTCHECK;

/** @brief GET /{user_id}/threads_publishing_limit?fields=quota_usage,config
 *  (needs threads_basic and threads_content_publish). */
int pw_threads_publishing_limit(pw_http_t *http, const char *base_url, const char *user_id,
                                const pw_secret_t *token, pw_quota_t *quota,
                                pw_api_error_t *err) PW_MUSTCHECK;

/** @brief GET /debug_token?input_token=T (the token inspects itself):
 *  *scopes receives the granted scopes, comma-separated (caller frees). */
int pw_threads_granted_scopes(pw_http_t *http, const char *base_url, const pw_secret_t *token,
                              char **scopes, pw_api_error_t *err) PW_MUSTCHECK;

#endif
