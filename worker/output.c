/* Output: results, alerts, dead letters and account events (see output.h). */
#include "output.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alerts.h"
#include "events.h"
#include "log.h"
#include "metrics.h"

void pw_output_dead_letter(pw_ctx_t *ctx, pw_job_t *job, const char *cls, const char *reason)
{
    rd_kafka_headers_t *hdrs =
        job->headers ? rd_kafka_headers_copy(job->headers) : rd_kafka_headers_new(6);
    char partition[16], offset[32];
    snprintf(partition, sizeof(partition), "%d", (int)job->partition);
    snprintf(offset, sizeof(offset), "%lld", (long long)job->offset);
    const char *pairs[][2] = {
        {"error.class", cls},         {"error.message", reason},
        {"source.topic", job->topic}, {"source.partition", partition},
        {"source.offset", offset},    {"worker.id", ctx->conf->worker_id},
    };
    for (size_t i = 0; i < PW_ARRAY_SIZE(pairs); i++)
        rd_kafka_header_add(hdrs, pairs[i][0], -1, pairs[i][1], -1);
    pw_log_warn("dead letter", PW_F_STR("error_class", cls), PW_F_STR("reason", reason),
                PW_F_STR("source_topic", job->topic), PW_F_INT("partition", job->partition),
                PW_F_INT("offset", job->offset));
    pw_delivery_produce(ctx->delivery, ctx->producer, job, PW_OUT_DEAD_LETTER,
                        ctx->conf->topic_dead_letter, job->key, job->key_len, job->value,
                        job->value_len, hdrs, NULL);
    rd_kafka_headers_destroy(hdrs);
}

static void pw_output_result(pw_ctx_t *ctx, pw_job_t *job, const pw_request_t *req,
                             pw_result_t *result, pw_delivery_ticket_t *ticket)
{
    result->event_id = req->event_id;
    result->post_id = req->post_id;
    result->account_id = req->account_id;
    result->worker_id = ctx->conf->worker_id;
    result->finished_at_ms = pw_now_ms();
    char *value = pw_event_result_new(result);
    pw_delivery_produce(ctx->delivery, ctx->producer, job, PW_OUT_RESULT,
                        ctx->conf->topic_publish_results, req->account_id, strlen(req->account_id),
                        value, strlen(value), NULL, ticket);
    free(value);
    pw_metrics_result(result->status, result->error ? result->error->cls : NULL);
    pw_log_info("post answered", PW_F_STR("account_id", req->account_id),
                PW_F_STR("post_id", req->post_id), PW_F_STR("event_id", req->event_id),
                PW_F_STR("status", result->status), PW_F_STR("media_id", result->media_id),
                PW_F_STR("error_class", result->error ? result->error->cls : NULL),
                PW_F_INT("attempts", result->attempts),
                PW_F_INT("latency_ms", job ? pw_mono_ms() - job->consumed_mono_ms : 0));
}

static void pw_output_error_of(const pw_api_error_t *err, pw_result_error_t *out)
{
    *out = (pw_result_error_t){pw_error_class_name(err->cls), err->http_status, err->code,
                               err->subcode, err->message};
}

/* A parked post's error: the class follows why the account must be
 * reconnected; the numbers and message are this post's failure, if any. */
static void pw_output_parked_error(const pw_outcome_t *o, char *message, size_t message_size,
                                   pw_result_error_t *out)
{
    bool quota = o->reason && strcmp(o->reason, PW_PARKED_FOR_QUOTA) == 0;
    const char *reason = quota       ? o->reason
                         : o->err    ? pw_auth_kind_name(o->err->auth)
                         : o->reason ? o->reason
                                     : "";
    const char *cls = quota                                  ? "rate_limited"
                      : strcmp(reason, "missing_scope") == 0 ? "permission"
                                                             : "auth";
    if (o->err) {
        pw_output_error_of(o->err, out);
        out->cls = cls;
        return;
    }
    if (quota)
        snprintf(message, message_size,
                 "the account's publishing quota is used up; post kept, published in order "
                 "when the window frees");
    else
        snprintf(message, message_size, "account must be reconnected (%s); post parked",
                 reason[0] ? reason : "earlier posts are parked");
    *out = (pw_result_error_t){cls, -1, -1, -1, message};
}

void pw_output_answer(pw_ctx_t *ctx, pw_job_t *job, const pw_request_t *req, const pw_outcome_t *o)
{
    pw_output_answer_tracked(ctx, job, req, o, NULL);
}

void pw_output_answer_tracked(pw_ctx_t *ctx, pw_job_t *job, const pw_request_t *req,
                              const pw_outcome_t *o, pw_delivery_ticket_t *ticket)
{
    static const char *const statuses[] = {"published", "duplicate", "failed", "parked", "failed"};
    pw_result_error_t error;
    char message[600];
    pw_result_t result = {.status = statuses[o->status],
                          .attempts = o->attempts,
                          .token_refreshed = o->token_refreshed};
    switch (o->status) {
    case PW_OUTCOME_PUBLISHED:
    case PW_OUTCOME_DUPLICATE:
        result.media_id = o->media_id && o->media_id[0] ? o->media_id : NULL;
        break;
    case PW_OUTCOME_FAILED:
        pw_output_error_of(o->err, &error);
        result.error = &error;
        break;
    case PW_OUTCOME_PARKED:
        pw_output_parked_error(o, message, sizeof(message), &error);
        result.error = &error;
        break;
    case PW_OUTCOME_INVALID:
        error = (pw_result_error_t){"invalid_request", -1, -1, -1, o->reason};
        result.error = &error;
        break;
    }
    pw_output_result(ctx, job, req, &result, ticket);
}

/* Produces an alert of kind (no de-duplication here). */
static void pw_output_alert_produce(pw_ctx_t *ctx, pw_job_t *job, const char *kind,
                                    const char *account_id, const pw_api_error_t *err,
                                    const char *message, long count, pw_delivery_ticket_t *ticket)
{
    pw_alert_t alert = {
        .kind = kind,
        .account_id = account_id,
        .endpoint = err ? err->endpoint : NULL,
        .http_status = err ? err->http_status : -1,
        .code = err ? err->code : -1,
        .subcode = err ? err->subcode : -1,
        .count = count > 0 ? count : 1,
        .window_s = ctx->conf->auth_alert_window_s,
        .message = message ? message
                   : err   ? err->message
                           : "",
        .at_ms = pw_now_ms(),
    };
    char *value = pw_event_alert_new(&alert);
    pw_delivery_produce(ctx->delivery, ctx->producer, job, PW_OUT_ALERT, ctx->conf->topic_alerts,
                        account_id, strlen(account_id), value, strlen(value), NULL, ticket);
    free(value);
    pw_metrics_alert(kind);
    pw_log_warn("alert raised", PW_F_STR("kind", kind), PW_F_STR("account_id", account_id));
}

pw_delivery_ticket_t *pw_output_alert_tracked(pw_ctx_t *ctx, pw_job_t *job, const char *kind,
                                              const char *account_id, const pw_api_error_t *err,
                                              const char *message, long count)
{
    long occurrences = 0;
    char errstr[512];
    int raise = pw_alert_occurrence(ctx->redis, account_id, kind, ctx->conf->auth_alert_window_s,
                                    &occurrences, errstr, sizeof(errstr));
    if (raise == -1)
        pw_log_warn("alert de-duplication failed; raising anyway", PW_F_STR("kind", kind),
                    PW_F_STR("error", errstr));
    if (raise == 0)
        return NULL;
    pw_delivery_ticket_t *ticket = pw_delivery_ticket_new();
    pw_output_alert_produce(ctx, job, kind, account_id, err, message,
                            count > 0 ? count : occurrences, ticket);
    return ticket;
}

void pw_output_alert(pw_ctx_t *ctx, pw_job_t *job, const char *kind, const char *account_id,
                     const pw_api_error_t *err, const char *message, long count)
{
    pw_delivery_ticket_release(
        pw_output_alert_tracked(ctx, job, kind, account_id, err, message, count));
}

pw_delivery_ticket_t *pw_output_alert_again(pw_ctx_t *ctx, const char *kind, const char *account_id,
                                            const char *message)
{
    pw_delivery_ticket_t *ticket = pw_delivery_ticket_new();
    pw_output_alert_produce(ctx, NULL, kind, account_id, NULL, message, 1, ticket);
    return ticket;
}

void pw_output_fleet_alert(pw_ctx_t *ctx, pw_job_t *job, const char *kind, const char *subject,
                           const char *account_id, const pw_api_error_t *err, const char *message)
{
    long occurrences = 0;
    char errstr[512];
    int raise = pw_alert_fleet_occurrence(ctx->redis, subject, ctx->conf->auth_alert_window_s,
                                          &occurrences, errstr, sizeof(errstr));
    if (raise == -1)
        pw_log_warn("alert de-duplication failed; raising anyway", PW_F_STR("kind", kind),
                    PW_F_STR("error", errstr));
    if (raise != 0)
        pw_output_alert_produce(ctx, job, kind, account_id, err, message, occurrences, NULL);
}

void pw_output_auth_failure(pw_ctx_t *ctx, pw_job_t *job, const char *account_id,
                            const char *post_id, const pw_api_error_t *err)
{
    pw_log_warn("auth failure", PW_F_STR("account_id", account_id), PW_F_STR("post_id", post_id),
                PW_F_STR("endpoint", err->endpoint), PW_F_OPT_INT("http_status", err->http_status),
                PW_F_OPT_INT("code", err->code), PW_F_OPT_INT("subcode", err->subcode),
                PW_F_STR("fbtrace_id", err->fbtrace_id),
                PW_F_STR("auth", pw_auth_kind_name(err->auth)), PW_F_STR("message", err->message));
    long count = 0;
    char errstr[512];
    if (pw_alert_auth_failure(ctx->redis, account_id, ctx->conf->auth_alert_threshold,
                              ctx->conf->auth_alert_window_s, &count, errstr, sizeof(errstr)) == 1)
        pw_output_alert(ctx, job, "repeated_auth_failure", account_id, err, NULL, count);
}

void pw_output_account_event(pw_ctx_t *ctx, pw_job_t *job, const char *type, const char *account_id)
{
    char *event = pw_event_account_new(type, account_id, pw_now_ms());
    pw_delivery_produce(ctx->delivery, ctx->producer, job, PW_OUT_ACCOUNT_EVENT,
                        ctx->conf->topic_account_events, account_id, strlen(account_id), event,
                        strlen(event), NULL, NULL);
    free(event);
}
