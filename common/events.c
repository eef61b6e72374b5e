/* Events: builders of the contract's outgoing JSON. */
#include "events.h"

#include <cjson/cJSON.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pw.h"

static char *pw_event_print(cJSON *obj)
{
    char *text = cJSON_PrintUnformatted(obj);
    cJSON_Delete(obj);
    if (!text)
        pw_abort("cJSON could not print an event: out of memory");
    return text;
}

static void pw_event_add_time(cJSON *obj, const char *name, int64_t at_ms)
{
    char buf[40];
    pw_format_time_ms(at_ms, buf, sizeof(buf));
    cJSON_AddStringToObject(obj, name, buf);
}

char *pw_event_account_new(const char *type, const char *account_id, int64_t at_ms)
{
    cJSON *obj = cJSON_CreateObject();
    cJSON_AddStringToObject(obj, "schema", "account.event.v1");
    cJSON_AddStringToObject(obj, "type", type);
    cJSON_AddStringToObject(obj, "account_id", account_id);
    pw_event_add_time(obj, "at", at_ms);
    return pw_event_print(obj);
}

static void pw_event_add_opt_int(cJSON *obj, const char *name, long value)
{
    if (value < 0)
        cJSON_AddNullToObject(obj, name);
    else
        cJSON_AddNumberToObject(obj, name, (double)value);
}

static void pw_event_add_opt_str(cJSON *obj, const char *name, const char *value)
{
    if (value)
        cJSON_AddStringToObject(obj, name, value);
    else
        cJSON_AddNullToObject(obj, name);
}

char *pw_event_result_new(const pw_result_t *r)
{
    cJSON *obj = cJSON_CreateObject();
    cJSON_AddStringToObject(obj, "schema", "publish.result.v1");
    cJSON_AddStringToObject(obj, "event_id", r->event_id);
    cJSON_AddStringToObject(obj, "post_id", r->post_id);
    cJSON_AddStringToObject(obj, "account_id", r->account_id);
    cJSON_AddStringToObject(obj, "status", r->status);
    pw_event_add_opt_str(obj, "media_id", r->media_id);
    if (r->error) {
        cJSON *err = cJSON_AddObjectToObject(obj, "error");
        cJSON_AddStringToObject(err, "class", r->error->cls);
        pw_event_add_opt_int(err, "http_status", r->error->http_status);
        pw_event_add_opt_int(err, "code", r->error->code);
        pw_event_add_opt_int(err, "subcode", r->error->subcode);
        cJSON_AddStringToObject(err, "message", r->error->message ? r->error->message : "");
    } else {
        cJSON_AddNullToObject(obj, "error");
    }
    cJSON_AddNumberToObject(obj, "attempts", r->attempts);
    cJSON_AddBoolToObject(obj, "token_refreshed", r->token_refreshed);
    cJSON_AddStringToObject(obj, "worker_id", r->worker_id);
    pw_event_add_time(obj, "finished_at", r->finished_at_ms);
    return pw_event_print(obj);
}

const char *pw_alert_severity(const char *kind)
{
    return strcmp(kind, "reconnect_required") == 0 || strcmp(kind, "permission_denied") == 0
               ? "critical"
               : "warning";
}

char *pw_event_alert_new(const pw_alert_t *a)
{
    unsigned char raw[16];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        pw_abort("RAND_bytes failed: no randomness for an alert id");
    raw[6] = (raw[6] & 0x0F) | 0x40; /* UUID version 4 */
    raw[8] = (raw[8] & 0x3F) | 0x80;
    char id[40];
    snprintf(id, sizeof(id), "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             raw[0], raw[1], raw[2], raw[3], raw[4], raw[5], raw[6], raw[7], raw[8], raw[9],
             raw[10], raw[11], raw[12], raw[13], raw[14], raw[15]);
    cJSON *obj = cJSON_CreateObject();
    cJSON_AddStringToObject(obj, "schema", "publish.alert.v1");
    cJSON_AddStringToObject(obj, "alert_id", id);
    cJSON_AddStringToObject(obj, "kind", a->kind);
    cJSON_AddStringToObject(obj, "severity", pw_alert_severity(a->kind));
    cJSON_AddStringToObject(obj, "account_id", a->account_id);
    pw_event_add_opt_str(obj, "endpoint", a->endpoint);
    pw_event_add_opt_int(obj, "http_status", a->http_status);
    pw_event_add_opt_int(obj, "code", a->code);
    pw_event_add_opt_int(obj, "subcode", a->subcode);
    cJSON_AddNumberToObject(obj, "count", (double)a->count);
    cJSON_AddNumberToObject(obj, "window_s", (double)a->window_s);
    cJSON_AddStringToObject(obj, "message", a->message ? a->message : "");
    pw_event_add_time(obj, "at", a->at_ms);
    return pw_event_print(obj);
}
