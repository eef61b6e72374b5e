/* Threads API: the two-step container flow and Meta's error classification.
 *
 * DESIGN: every call's failure becomes one pw_api_error_t (class, HTTP
 * status, code, subcode, message, fbtrace_id, what to do about it), the way
 * rd_kafka_error_t carries retriable/fatal; that value, not scattered ifs,
 * decides retry, refresh, park or fail. Token errors are classified by
 * Meta's code/error_subcode, never by HTTP status alone: Graph API answers
 * them with 400 as well as 401; a 401 or 403 without a Graph error (a proxy's
 * HTML page during an incident) says nothing about the token and is
 * transient. An OAuth2 token endpoint refusing the client itself (RFC 6749
 * §5.2 invalid_client, unauthorized_client) is the fleet's configuration,
 * not the account's: config_error, transient for the post, never a reason
 * to mark an account. */
#ifndef PW_THREADS_API_H
#define PW_THREADS_API_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "http.h"
#include "metrics.h"
#include "pw.h"
#include "secret.h"

typedef enum {
    PW_EC_NONE = 0,
    PW_EC_INVALID_REQUEST,
    PW_EC_AUTH,
    PW_EC_PERMISSION,
    PW_EC_RATE_LIMITED,
    PW_EC_TRANSIENT,
    PW_EC_MEDIA,
} pw_error_class_t;

/* What an auth failure means for the account. */
typedef enum {
    PW_AUTH_NONE = 0,
    PW_AUTH_EXPIRED,       /* 190/463: refresh once, retry once */
    PW_AUTH_REVOKED,       /* 190 with 458, 459, 460, 464, 467...: reconnect */
    PW_AUTH_MISSING_SCOPE, /* code 10 or 200-299: reconnect granting the scope */
    PW_AUTH_WRONG_ACCOUNT, /* token of another user or environment: reconnect */
    PW_AUTH_INVALID_TOKEN, /* 190 without subcode: malformed or unknown token */
} pw_auth_kind_t;

typedef struct pw_api_error_s {
    pw_error_class_t cls;
    pw_auth_kind_t auth;
    int http_status; /* -1: no HTTP response */
    int code;        /* -1: none given */
    int subcode;     /* -1: none given */
    bool retriable;
    bool not_ready; /* 24/4279009: the container is still processing */
    /* The OAuth2 client was refused or is not configured: OAUTH2_CLIENT_ID,
     * OAUTH2_CLIENT_SECRET or OAUTH2_TOKEN_URL are wrong for the whole fleet.
     * cls is PW_EC_TRANSIENT and auth PW_AUTH_NONE; message names the fix. */
    bool config_error;
    /* 9/2207042: the profile's publishing quota is used up (cls
     * PW_EC_RATE_LIMITED, not retriable: the post waits for the window). */
    bool quota_reached;
    long retry_after_ms;  /* -1: none given */
    const char *endpoint; /* "POST /v1.0/{user-id}/threads"; static */
    char message[512];
    char fbtrace_id[64];
} pw_api_error_t;

typedef enum {
    PW_CONTAINER_IN_PROGRESS = 0,
    PW_CONTAINER_FINISHED,
    PW_CONTAINER_PUBLISHED,
    PW_CONTAINER_ERROR,
    PW_CONTAINER_EXPIRED,
} pw_container_status_t;

typedef struct pw_container_spec_s {
    const char *media_type; /* "TEXT", "IMAGE", "VIDEO", "CAROUSEL" */
    const char *text;
    const char *image_url;
    const char *video_url;
    bool is_carousel_item;
    const char *children; /* comma-separated container ids */
    const char *reply_to_id;
    const char *reply_control;
    const char *link_attachment;
} pw_container_spec_t;

#define PW_ID_MAX 64

extern const char *const PW_EP_CREATE;  /* "POST /v1.0/{user-id}/threads" */
extern const char *const PW_EP_STATUS;  /* "GET /v1.0/{container-id}" */
extern const char *const PW_EP_PUBLISH; /* "POST /v1.0/{user-id}/threads_publish" */
extern const char *const PW_EP_REFRESH; /* "GET /refresh_access_token" */

/* Constructors: an error value is made here, whole, and never patched
 * afterwards; whoever needs another reading of a failure makes a new value. */

/** @brief Classifies an HTTP outcome of a Graph call: status 0 means a
 *  transport failure (transport_error says which); body is the response body
 *  (may be NULL). */
void pw_api_error_classify(const char *endpoint, long http_status, const char *body,
                           long retry_after_ms, const char *transport_error, pw_api_error_t *err);
/** @brief Classifies an HTTP outcome of an OAuth2 token endpoint (RFC 6749
 *  §5.2 body: {"error": "invalid_grant", "error_description": ...}).
 *  invalid_grant needs a reconnect; invalid_client, unauthorized_client, and
 *  a 401 with a WWW-Authenticate challenge (challenged) but no error body
 *  are config_error; anything else is read as pw_api_error_classify() reads
 *  an answer without a Graph error. */
void pw_api_error_classify_oauth2(const char *endpoint, long http_status, const char *body,
                                  bool challenged, const char *transport_error,
                                  pw_api_error_t *err);
/** @brief A failure the worker decides itself (no platform answer says it):
 *  class, auth kind, whether another attempt may help, the HTTP status it
 *  came with (-1: none) and a message. */
void pw_api_error_make(pw_api_error_t *err, const char *endpoint, pw_error_class_t cls,
                       pw_auth_kind_t auth, bool retriable, int http_status, const char *fmt, ...)
    PW_PRINTF(7, 8);
/** @brief A configuration error of the whole fleet that the worker finds
 *  itself (OAUTH2_TOKEN_URL not set): config_error, transient, no HTTP status;
 *  the message says what to set. */
void pw_api_error_config(pw_api_error_t *err, const char *endpoint, const char *fmt, ...)
    PW_PRINTF(3, 4);
/** @brief from, read again as an auth failure of kind auth that only a
 *  reconnect can mend (an expired token whose refresh failed for good). */
void pw_api_error_needs_reconnect(const pw_api_error_t *from, pw_auth_kind_t auth,
                                  pw_api_error_t *out);
const char *pw_error_class_name(pw_error_class_t cls);
const char *pw_auth_kind_name(pw_auth_kind_t auth);

/** @brief Creates a media container; id receives its id.
 *  @returns 0 or -1 with err filled. */
int pw_threads_create_container(pw_http_t *http, const char *base_url, const char *user_id,
                                const pw_secret_t *token, const pw_container_spec_t *spec,
                                char id[PW_ID_MAX], pw_api_error_t *err) PW_MUSTCHECK;
/** @brief Reads a container's status; error_message (may be NULL) receives
 *  Meta's error_message for ERROR. */
int pw_threads_container_status(pw_http_t *http, const char *base_url, const char *container_id,
                                const pw_secret_t *token, pw_container_status_t *status,
                                char *error_message, size_t error_message_size,
                                pw_api_error_t *err) PW_MUSTCHECK;
/** @brief Publishes a finished container; media_id receives the post's id. */
int pw_threads_publish(pw_http_t *http, const char *base_url, const char *user_id,
                       const pw_secret_t *token, const char *container_id, char media_id[PW_ID_MAX],
                       pw_api_error_t *err) PW_MUSTCHECK;

/** @brief GETs a Graph read (url is taken and freed), timed in the metrics
 *  under epm; *root receives the JSON object a 200 answered (the caller's to
 *  cJSON_Delete()). @returns 0, or -1 with err (token redacted). */
int pw_threads_get_json(pw_http_t *http, char *url, const pw_http_param_t *params, size_t count,
                        pw_metrics_endpoint_t epm, const char *endpoint, const pw_secret_t *token,
                        cJSON **root, pw_api_error_t *err) PW_MUSTCHECK;

#endif
