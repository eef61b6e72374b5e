/* Threads API: container calls and error classification. */
#include "threads_api.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

const char *const PW_EP_CREATE = "POST /v1.0/{user-id}/threads";
const char *const PW_EP_STATUS = "GET /v1.0/{container-id}";
const char *const PW_EP_PUBLISH = "POST /v1.0/{user-id}/threads_publish";
const char *const PW_EP_REFRESH = "GET /refresh_access_token";

const char *pw_error_class_name(pw_error_class_t cls)
{
    static const char *const names[] = {"none",         "invalid_request", "auth", "permission",
                                        "rate_limited", "transient",       "media"};
    return names[cls];
}

const char *pw_auth_kind_name(pw_auth_kind_t auth)
{
    static const char *const names[] = {"none",          "expired",       "revoked",
                                        "missing_scope", "wrong_account", "invalid_token"};
    return names[auth];
}

static int pw_json_int(const cJSON *obj, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsNumber(item) ? item->valueint : -1;
}

/* Decides class and auth kind from Meta's code and subcode. */
static void pw_api_error_decide(pw_api_error_t *err)
{
    int code = err->code, sub = err->subcode, status = err->http_status;
    if (code == 190 || code == 102) {
        err->cls = PW_EC_AUTH;
        err->auth = sub == 463 ? PW_AUTH_EXPIRED
                    : sub < 0  ? PW_AUTH_INVALID_TOKEN
                               : PW_AUTH_REVOKED;
    } else if (code == 10 || (code >= 200 && code <= 299)) {
        err->cls = PW_EC_PERMISSION;
        err->auth = PW_AUTH_MISSING_SCOPE;
    } else if (code == 100 && sub == 33 && err->endpoint != PW_EP_STATUS) {
        /* The user object is not reachable with this token: the token belongs
         * to another user or app. On a container it just means "no such id". */
        err->cls = PW_EC_AUTH;
        err->auth = PW_AUTH_WRONG_ACCOUNT;
    } else if (code == 9 && sub == 2207042) {
        /* The 24-hour publishing quota: no retry helps before the window
         * frees, so the post waits for it (worker/quota.h). */
        err->cls = PW_EC_RATE_LIMITED;
        err->quota_reached = true;
    } else if (code == 4 || code == 17 || code == 32 || code == 613 || status == 429) {
        err->cls = PW_EC_RATE_LIMITED;
        err->retriable = true;
    } else if (code == 1 || code == 2 || status >= 500) {
        err->cls = PW_EC_TRANSIENT;
        err->retriable = true;
    } else if (code == 24) {
        err->cls = PW_EC_MEDIA;
        err->not_ready = sub == 4279009;
        err->retriable = err->not_ready;
    } else if (code < 0) {
        /* No Graph error to read (a proxy's or gateway's page during an
         * incident, a body cut short): not the platform judging this token or
         * this request. Parking would mark accounts that are fine, failing
         * would drop a post that is fine; a retry finds out. */
        err->cls = PW_EC_TRANSIENT;
        err->retriable = true;
    } else {
        err->cls = PW_EC_INVALID_REQUEST;
    }
}

void pw_api_error_classify(const char *endpoint, long http_status, const char *body,
                           long retry_after_ms, const char *transport_error, pw_api_error_t *err)
{
    memset(err, 0, sizeof(*err));
    err->endpoint = endpoint;
    err->http_status = http_status > 0 ? (int)http_status : -1;
    err->code = err->subcode = -1;
    err->retry_after_ms = retry_after_ms;
    if (http_status <= 0) {
        err->cls = PW_EC_TRANSIENT;
        err->retriable = true;
        pw_utf8_copy(err->message, sizeof(err->message),
                     transport_error ? transport_error : "no response");
        return;
    }
    cJSON *root = body ? cJSON_Parse(body) : NULL;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
    if (cJSON_IsObject(e)) {
        err->code = pw_json_int(e, "code");
        err->subcode = pw_json_int(e, "error_subcode");
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(e, "message");
        const cJSON *trace = cJSON_GetObjectItemCaseSensitive(e, "fbtrace_id");
        if (cJSON_IsString(msg))
            pw_utf8_copy(err->message, sizeof(err->message), msg->valuestring);
        if (cJSON_IsString(trace))
            pw_utf8_copy(err->fbtrace_id, sizeof(err->fbtrace_id), trace->valuestring);
    }
    if (!err->message[0])
        snprintf(err->message, sizeof(err->message), "HTTP %ld from %s", http_status, endpoint);
    cJSON_Delete(root);
    pw_api_error_decide(err);
}

/* The OAuth2 client itself refused: the fleet's configuration, whatever
 * account's refresh met it. said is what the endpoint answered. */
static void pw_api_error_client_refused(pw_api_error_t *err, const char *said)
{
    snprintf(err->message, sizeof(err->message),
             "the token endpoint refused the OAuth2 client (%.300s): check OAUTH2_CLIENT_ID and "
             "OAUTH2_CLIENT_SECRET",
             said);
    err->cls = PW_EC_TRANSIENT;
    err->auth = PW_AUTH_NONE;
    err->retriable = true;
    err->config_error = true;
}

/* RFC 6749 §5.2: errors about the client, not about the grant. A client that
 * authenticated with HTTP Basic and was refused gets a 401 with a challenge;
 * without an error body, the challenge alone says invalid_client. */
static bool pw_oauth2_client_error(const char *error, long http_status, bool challenged)
{
    if (error)
        return strcmp(error, "invalid_client") == 0 || strcmp(error, "unauthorized_client") == 0;
    return http_status == 401 && challenged;
}

void pw_api_error_classify_oauth2(const char *endpoint, long http_status, const char *body,
                                  bool challenged, const char *transport_error, pw_api_error_t *err)
{
    pw_api_error_classify(endpoint, http_status, NULL, -1, transport_error, err);
    if (http_status <= 0)
        return;
    cJSON *root = body ? cJSON_Parse(body) : NULL;
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(root, "error");
    const cJSON *desc = cJSON_GetObjectItemCaseSensitive(root, "error_description");
    const char *error = cJSON_IsString(code) && code->valuestring[0] ? code->valuestring : NULL;
    if (error) {
        char *text = pw_asprintf("%s%s%s", error, cJSON_IsString(desc) ? ": " : "",
                                 cJSON_IsString(desc) ? desc->valuestring : "");
        pw_utf8_copy(err->message, sizeof(err->message), text);
        free(text);
    }
    if (error && strcmp(error, "invalid_grant") == 0) {
        err->cls = PW_EC_AUTH;
        err->auth = PW_AUTH_REVOKED;
        err->retriable = false;
    } else if (pw_oauth2_client_error(error, http_status, challenged)) {
        char said[sizeof(err->message)];
        snprintf(said, sizeof(said), "%s",
                 error ? err->message : "HTTP 401 with a WWW-Authenticate challenge");
        pw_api_error_client_refused(err, said);
    } else if (error && http_status < 500 && http_status != 429) {
        /* Any other RFC 6749 error (invalid_request, invalid_scope...) is the
         * server's answer to this request: retrying will not change it. */
        err->cls = PW_EC_INVALID_REQUEST;
        err->retriable = false;
    }
    cJSON_Delete(root);
}

void pw_api_error_make(pw_api_error_t *err, const char *endpoint, pw_error_class_t cls,
                       pw_auth_kind_t auth, bool retriable, int http_status, const char *fmt, ...)
{
    memset(err, 0, sizeof(*err));
    err->endpoint = endpoint;
    err->cls = cls;
    err->auth = auth;
    err->retriable = retriable;
    err->http_status = http_status;
    err->code = err->subcode = -1;
    err->retry_after_ms = -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
}

void pw_api_error_config(pw_api_error_t *err, const char *endpoint, const char *fmt, ...)
{
    pw_api_error_make(err, endpoint, PW_EC_TRANSIENT, PW_AUTH_NONE, true, -1, "%s", "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    err->config_error = true;
}

void pw_api_error_needs_reconnect(const pw_api_error_t *from, pw_auth_kind_t auth,
                                  pw_api_error_t *out)
{
    *out = *from;
    out->cls = auth == PW_AUTH_MISSING_SCOPE ? PW_EC_PERMISSION : PW_EC_AUTH;
    out->auth = auth;
    out->retriable = false;
    out->not_ready = false;
    out->config_error = false;
}

/* Parses a 200 body's "id" or classifies the failure. The platform's
 * message may quote the token it refused: it never leaves here with it. */
static int pw_threads_finish(const char *endpoint, int rc, pw_http_response_t *resp,
                             const pw_secret_t *token, char id[PW_ID_MAX], pw_api_error_t *err)
{
    if (rc == 0 && resp->status == 200) {
        cJSON *root = cJSON_Parse(resp->body);
        const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, "id");
        int ok =
            cJSON_IsString(item) && item->valuestring[0] && strlen(item->valuestring) < PW_ID_MAX;
        if (ok)
            snprintf(id, PW_ID_MAX, "%s", item->valuestring);
        cJSON_Delete(root);
        if (ok) {
            pw_http_response_clear(resp);
            return 0;
        }
        /* A 200 without an id is the platform misbehaving: retry. */
        pw_api_error_make(err, endpoint, PW_EC_TRANSIENT, PW_AUTH_NONE, true, 200,
                          "%s answered 200 without an id", endpoint);
    } else {
        /* Redacted before the message is cut to fit err->message: a cut
         * through the token would leave a piece no later redaction finds. */
        char *body = resp->body ? pw_secret_redact_dup(token, resp->body) : NULL;
        pw_api_error_classify(endpoint, rc == 0 ? resp->status : 0, body, resp->retry_after_ms,
                              resp->error, err);
        free(body);
        pw_secret_redact(token, err->message, sizeof(err->message));
    }
    pw_http_response_clear(resp);
    return -1;
}

/* POSTs a Graph call (url is taken and freed), timed in the metrics, and
 * reads the "id" it answers. */
static int pw_threads_post(pw_http_t *http, char *url, const pw_http_param_t *params, size_t count,
                           pw_metrics_endpoint_t epm, const char *endpoint,
                           const pw_secret_t *token, char id[PW_ID_MAX], pw_api_error_t *err)
{
    pw_http_response_t resp;
    int64_t t0 = pw_mono_ms();
    int rc = pw_http_post_form(http, url, params, count, NULL, NULL, &resp);
    pw_metrics_api_call(epm, resp.status, (double)(pw_mono_ms() - t0) / 1000);
    free(url);
    return pw_threads_finish(endpoint, rc, &resp, token, id, err);
}

int pw_threads_get_json(pw_http_t *http, char *url, const pw_http_param_t *params, size_t count,
                        pw_metrics_endpoint_t epm, const char *endpoint, const pw_secret_t *token,
                        cJSON **root, pw_api_error_t *err)
{
    pw_http_response_t resp;
    int64_t t0 = pw_mono_ms();
    int rc = pw_http_get(http, url, params, count, &resp);
    pw_metrics_api_call(epm, resp.status, (double)(pw_mono_ms() - t0) / 1000);
    free(url);
    *root = NULL;
    if (rc == 0 && resp.status == 200) {
        *root = cJSON_Parse(resp.body);
        pw_http_response_clear(&resp);
        if (cJSON_IsObject(*root))
            return 0;
        cJSON_Delete(*root);
        *root = NULL;
        pw_api_error_make(err, endpoint, PW_EC_TRANSIENT, PW_AUTH_NONE, true, 200,
                          "%s answered 200 without a JSON object", endpoint);
        return -1;
    }
    char unused[PW_ID_MAX];
    return pw_threads_finish(endpoint, rc, &resp, token, unused, err);
}

int pw_threads_create_container(pw_http_t *http, const char *base_url, const char *user_id,
                                const pw_secret_t *token, const pw_container_spec_t *spec,
                                char id[PW_ID_MAX], pw_api_error_t *err)
{
    char *url = pw_asprintf("%s/v1.0/%s/threads", base_url, user_id);
    const pw_http_param_t params[] = {
        {"media_type", spec->media_type},
        {"text", spec->text},
        {"image_url", spec->image_url},
        {"video_url", spec->video_url},
        {"is_carousel_item", spec->is_carousel_item ? "true" : NULL},
        {"children", spec->children},
        {"reply_to_id", spec->reply_to_id},
        {"reply_control", spec->reply_control},
        {"link_attachment", spec->link_attachment},
        {"access_token", pw_secret_reveal(token)},
    };
    return pw_threads_post(http, url, params, PW_ARRAY_SIZE(params), PW_EPM_CREATE, PW_EP_CREATE,
                           token, id, err);
}

static int pw_container_status_parse(const char *name, pw_container_status_t *status)
{
    static const char *const names[] = {"IN_PROGRESS", "FINISHED", "PUBLISHED", "ERROR", "EXPIRED"};
    for (size_t i = 0; i < PW_ARRAY_SIZE(names); i++) {
        if (strcmp(name, names[i]) == 0) {
            *status = (pw_container_status_t)i;
            return 0;
        }
    }
    return -1;
}

int pw_threads_container_status(pw_http_t *http, const char *base_url, const char *container_id,
                                const pw_secret_t *token, pw_container_status_t *status,
                                char *error_message, size_t error_message_size, pw_api_error_t *err)
{
    char *url = pw_asprintf("%s/v1.0/%s", base_url, container_id);
    const pw_http_param_t params[] = {
        {"fields", "status,error_message"},
        {"access_token", pw_secret_reveal(token)},
    };
    pw_http_response_t resp;
    int64_t t0 = pw_mono_ms();
    int rc = pw_http_get(http, url, params, PW_ARRAY_SIZE(params), &resp);
    pw_metrics_api_call(PW_EPM_STATUS, resp.status, (double)(pw_mono_ms() - t0) / 1000);
    free(url);
    if (rc == 0 && resp.status == 200) {
        cJSON *root = cJSON_Parse(resp.body);
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(root, "status");
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(root, "error_message");
        int ok = cJSON_IsString(st) && pw_container_status_parse(st->valuestring, status) == 0;
        if (error_message && error_message_size) {
            /* Redacted, then cut to fit at a character boundary. */
            char *text = pw_secret_redact_dup(token, cJSON_IsString(msg) ? msg->valuestring : "");
            pw_utf8_copy(error_message, error_message_size, text);
            free(text);
        }
        cJSON_Delete(root);
        if (ok) {
            pw_http_response_clear(&resp);
            return 0;
        }
        pw_api_error_make(err, PW_EP_STATUS, PW_EC_TRANSIENT, PW_AUTH_NONE, true, 200,
                          "container status not understood");
        pw_http_response_clear(&resp);
        return -1;
    }
    char unused[PW_ID_MAX];
    return pw_threads_finish(PW_EP_STATUS, rc, &resp, token, unused, err);
}

int pw_threads_publish(pw_http_t *http, const char *base_url, const char *user_id,
                       const pw_secret_t *token, const char *container_id, char media_id[PW_ID_MAX],
                       pw_api_error_t *err)
{
    char *url = pw_asprintf("%s/v1.0/%s/threads_publish", base_url, user_id);
    const pw_http_param_t params[] = {
        {"creation_id", container_id},
        {"access_token", pw_secret_reveal(token)},
    };
    return pw_threads_post(http, url, params, PW_ARRAY_SIZE(params), PW_EPM_PUBLISH, PW_EP_PUBLISH,
                           token, media_id, err);
}
