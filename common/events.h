/* Events: the JSON the worker produces (contract: account.event.v1, and with
 * the pipeline publish.result.v1 and publish.alert.v1). Builders return new
 * strings the caller frees. No builder takes a secret. */
#ifndef PW_EVENTS_H
#define PW_EVENTS_H

#include <stdint.h>

/** @brief account.event.v1 of type ("token_updated", "reconnect_required"). */
char *pw_event_account_new(const char *type, const char *account_id, int64_t at_ms);

/* The error part of a result; NULL numbers are -1. */
typedef struct pw_result_error_s {
    const char *cls; /* invalid_request, auth, permission, rate_limited, transient, media */
    int http_status;
    int code;
    int subcode;
    const char *message;
} pw_result_error_t;

typedef struct pw_result_s {
    const char *event_id;
    const char *post_id;
    const char *account_id;
    const char *status;             /* published, duplicate, parked, failed */
    const char *media_id;           /* NULL: null */
    const pw_result_error_t *error; /* NULL: null */
    int attempts;
    int token_refreshed;
    const char *worker_id;
    int64_t finished_at_ms;
} pw_result_t;

/** @brief publish.result.v1. */
char *pw_event_result_new(const pw_result_t *result);

typedef struct pw_alert_s {
    const char *kind; /* reconnect_required, repeated_auth_failure, ... */
    const char *account_id;
    const char *endpoint; /* NULL: null; so are negative numbers */
    int http_status;
    int code;
    int subcode;
    long count;
    long window_s;
    const char *message;
    int64_t at_ms;
} pw_alert_t;

/** @brief publish.alert.v1 with a fresh alert_id; severity follows kind. */
char *pw_event_alert_new(const pw_alert_t *alert);
/** @brief The contract's severity of an alert kind. */
const char *pw_alert_severity(const char *kind);
#endif
