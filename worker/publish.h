/* The publish step: one valid request, from its account's token to its
 * answer, published at most once.
 *
 * DESIGN:
 *  1. Begin: one Redis round trip (a Lua script) either parks the post, when
 *     its account is marked or already has parked posts (so a new post never
 *     overtakes a parked one), or reads the account's token and the post's
 *     record.
 *  2. A token that expires within five minutes is refreshed first, under the
 *     fleet-wide lock (token_refresh.h).
 *  3. Attempts of the container flow. An attempt reads the post's record
 *     first (post_store.h): a post already published is a duplicate; a
 *     recorded container is asked for its status before anything else,
 *     whatever its age (PUBLISHED: duplicate; FINISHED and younger than 24 h:
 *     publish it; IN_PROGRESS: wait; EXPIRED, unknown or older than 24 h:
 *     rebuild; ERROR: media failure). Otherwise the containers are created
 *     (carousel children first), the container id is recorded with
 *     compare-and-set, and only then published. TEXT and IMAGE containers are
 *     usually ready at once, so they are published right away and polled only
 *     if Threads says "not ready"; VIDEO and CAROUSEL are polled first.
 *  4. Transient failures are retried with backoff (about 1 s, doubling with
 *     jitter, capped at 30 s, Retry-After honoured) up to
 *     PUBLISH_MAX_ATTEMPTS; Redis being away spends no attempt. An expired
 *     token is refreshed once and the post retried once; a refresh that
 *     fails transiently is tried again at the next attempt, before the API
 *     is asked again. A 401 or 403 without a Graph error and a refused
 *     OAuth2 client (the fleet's configuration: one fleet-wide alert) are
 *     transient failures like a 5xx. Any other auth or permission failure
 *     ends the step: the caller parks the post (accounts.h).
 * Published, duplicate, failed and parked-at-begin posts are answered here
 * (output.h). */
#ifndef PW_PUBLISH_H
#define PW_PUBLISH_H

#include <stdbool.h>
#include <stdint.h>

#include "context.h"
#include "http.h"
#include "request.h"
#include "threads_api.h"
#include "token_refresh.h"

typedef enum {
    PW_STEP_ANSWERED = 0, /* its result is handed to the output */
    PW_STEP_AUTH,         /* an auth failure: the caller parks it (accounts.h) */
    PW_STEP_STOPPED,      /* the worker is stopping: not answered */
} pw_step_t;

/* Why the step ended with PW_STEP_AUTH. */
typedef struct pw_auth_failure_s {
    pw_api_error_t err;
    int64_t fence; /* fencing number of the token that failed (0: none) */
    int attempts;
    bool token_refreshed;
    bool logged; /* already logged and counted (pw_output_auth_failure()) */
} pw_auth_failure_t;

/** @brief The publish step of req (see the design above); on PW_STEP_AUTH
 *  *failure says why. @locality worker fiber */
pw_step_t pw_publish_request(pw_ctx_t *ctx, pw_http_t *http, pw_job_t *job, const pw_request_t *req,
                             pw_auth_failure_t *failure);

typedef enum {
    PW_PUB_PUBLISHED = 0,
    PW_PUB_DUPLICATE, /* media_id may be "" (unknown) */
    PW_PUB_FAILED,    /* err says why; not worth another attempt */
    PW_PUB_RETRY,     /* err is retriable */
    PW_PUB_AUTH,      /* err is an auth or permission failure */
    PW_PUB_STOPPED,   /* the worker is stopping */
    PW_PUB_REDIS,     /* Redis failed: no attempt was spent; try again later */
    PW_PUB_QUOTA,     /* the API says the publishing quota is used up (quota.h) */
} pw_pub_outcome_t;

/** @brief One attempt of the container flow for req with token (a replay
 *  of a parked post uses it); err and media_id describe the outcome. */
pw_pub_outcome_t pw_publish_once(pw_ctx_t *ctx, pw_http_t *http, const pw_request_t *req,
                                 const pw_token_t *token, pw_api_error_t *err,
                                 char media_id[PW_ID_MAX]);

/** @brief Refreshes *token (replacing it with the current one on success),
 *  counting, logging and alerting refresh_failed on failure. job may be NULL.
 *  force: the API said it expired. */
pw_rf_status_t pw_publish_refresh(pw_ctx_t *ctx, pw_http_t *http, pw_job_t *job, pw_token_t **token,
                                  bool force, pw_api_error_t *err);

#endif
