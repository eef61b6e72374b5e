/* Pipeline: dispatch of one message, dead letters, results, retries. */
#include "pipeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alerts.h"
#include "events.h"
#include "fiber.h"
#include "kafka.h"
#include "log.h"
#include "metrics.h"
#include "park.h"
#include "publish.h"

void *pw_pipeline_fiber_init(void *opaque)
{
    pw_pipeline_t *p = opaque;
    return pw_http_new(p->conf->http_connect_timeout_ms, p->conf->http_timeout_ms);
}

void pw_pipeline_fiber_fini(void *opaque, void *fiber_state)
{
    (void)opaque;
    pw_http_destroy(fiber_state);
}

bool pw_pipeline_sleep(pw_pipeline_t *p, long ms)
{
    int64_t until = pw_mono_ms() + ms;
    for (;;) {
        if (atomic_load(&p->stopping))
            return false;
        int64_t left = until - pw_mono_ms();
        if (left <= 0)
            return true;
        pw_sleep_ms(left < 50 ? (long)left : 50);
    }
}

void pw_pipeline_emit(pw_pipeline_t *p, pw_job_t *job, const char *topic, const char *key,
                      size_t key_len, const char *value, size_t len, const rd_kafka_headers_t *hdrs)
{
    char errstr[512];
    if (job)
        pw_sched_produced(p->sched, job);
    if (pw_kafka_produce(p->producer, topic, key, key_len, value, len, hdrs, job, errstr,
                         sizeof(errstr)) == -1) {
        /* Only local, permanent causes get here (size, unknown topic): not
         * worth blocking the partition for. */
        pw_log_error("could not produce", PW_F_STR("topic", topic), PW_F_STR("error", errstr),
                     PW_F_STR("source_topic", job ? job->topic : NULL));
        if (job)
            pw_sched_delivered(p->sched, job);
    }
}

/* Unanswerable input: a copy, same key and value, with the contract's headers. */
static void pw_pipeline_dead_letter(pw_pipeline_t *p, pw_job_t *job, const char *cls,
                                    const char *reason)
{
    rd_kafka_headers_t *hdrs =
        job->headers ? rd_kafka_headers_copy(job->headers) : rd_kafka_headers_new(6);
    char partition[16], offset[32];
    snprintf(partition, sizeof(partition), "%d", (int)job->partition);
    snprintf(offset, sizeof(offset), "%lld", (long long)job->offset);
    const char *pairs[][2] = {
        {"error.class", cls},         {"error.message", reason},
        {"source.topic", job->topic}, {"source.partition", partition},
        {"source.offset", offset},    {"worker.id", p->conf->worker_id},
    };
    for (size_t i = 0; i < PW_ARRAY_SIZE(pairs); i++)
        rd_kafka_header_add(hdrs, pairs[i][0], -1, pairs[i][1], -1);
    pw_log_warn("dead letter", PW_F_STR("error_class", cls), PW_F_STR("reason", reason),
                PW_F_STR("source_topic", job->topic), PW_F_INT("partition", job->partition),
                PW_F_INT("offset", job->offset));
    pw_pipeline_emit(p, job, p->conf->topic_dead_letter, job->key, job->key_len, job->value,
                     job->value_len, hdrs);
    rd_kafka_headers_destroy(hdrs);
}

void pw_pipeline_result(pw_pipeline_t *p, pw_job_t *job, const pw_request_t *req,
                        pw_result_t *result)
{
    result->event_id = req->event_id;
    result->post_id = req->post_id;
    result->account_id = req->account_id;
    result->worker_id = p->conf->worker_id;
    result->finished_at_ms = pw_now_ms();
    char *value = pw_event_result_new(result);
    pw_pipeline_emit(p, job, p->conf->topic_publish_results, req->account_id,
                     strlen(req->account_id), value, strlen(value), NULL);
    free(value);
    pw_metrics_result(result->status, result->error ? result->error->cls : NULL);
    pw_log_info("post answered", PW_F_STR("account_id", req->account_id),
                PW_F_STR("post_id", req->post_id), PW_F_STR("event_id", req->event_id),
                PW_F_STR("status", result->status), PW_F_STR("media_id", result->media_id),
                PW_F_STR("error_class", result->error ? result->error->cls : NULL),
                PW_F_INT("attempts", result->attempts),
                PW_F_INT("latency_ms", job ? pw_mono_ms() - job->consumed_mono_ms : 0));
}

void pw_pipeline_error_of(const pw_api_error_t *err, pw_result_error_t *out)
{
    out->cls = pw_error_class_name(err->cls);
    out->http_status = err->http_status;
    out->code = err->code;
    out->subcode = err->subcode;
    out->message = err->message;
}

/* Raises an alert if it is the first of its kind for the account in the window. */
void pw_pipeline_alert(pw_pipeline_t *p, pw_job_t *job, const char *kind, const char *account_id,
                       const pw_api_error_t *err, const char *message, long count)
{
    long occurrences = 0;
    char errstr[512];
    int raise = pw_alert_occurrence(p->redis, account_id, kind, p->conf->auth_alert_window_s,
                                    &occurrences, errstr, sizeof(errstr));
    if (raise == -1)
        pw_log_warn("alert de-duplication failed; raising anyway", PW_F_STR("kind", kind),
                    PW_F_STR("error", errstr));
    if (raise == 0)
        return;
    pw_alert_t alert = {
        .kind = kind,
        .account_id = account_id,
        .endpoint = err ? err->endpoint : NULL,
        .http_status = err ? err->http_status : -1,
        .code = err ? err->code : -1,
        .subcode = err ? err->subcode : -1,
        .count = count > 0         ? count
                 : occurrences > 0 ? occurrences
                                   : 1,
        .window_s = p->conf->auth_alert_window_s,
        .message = message ? message
                   : err   ? err->message
                           : "",
        .at_ms = pw_now_ms(),
    };
    char *value = pw_event_alert_new(&alert);
    pw_pipeline_emit(p, job, p->conf->topic_alerts, account_id, strlen(account_id), value,
                     strlen(value), NULL);
    free(value);
    pw_metrics_alert(kind);
    pw_log_warn("alert raised", PW_F_STR("kind", kind), PW_F_STR("account_id", account_id));
}

/* Backoff before attempt n+1: ~1 s doubling, jitter, capped at 30 s; a
 * Retry-After from the platform wins when it is longer. */
static long pw_backoff_ms(int attempt, long retry_after_ms)
{
    long base = 1000L << (attempt - 1 < 5 ? attempt - 1 : 5);
    if (base > 30000)
        base = 30000;
    long jittered = base * 4 / 5 + (long)(random() % (base * 2 / 5 + 1));
    return retry_after_ms > jittered ? retry_after_ms : jittered;
}

pw_rf_status_t pw_pipeline_refresh(pw_pipeline_t *p, pw_http_t *http, pw_job_t *job,
                                   pw_account_t *account, bool force, pw_api_error_t *err)
{
    pw_token_t *fresh = NULL;
    pw_rf_status_t st = pw_token_refresh(&p->refresher, http, account->token, force, &fresh, err);
    if (fresh) {
        pw_token_destroy(account->token);
        account->token = fresh;
    }
    static const char *const outcomes[] = {"refreshed", "by_other", "not_allowed", "terminal",
                                           "transient"};
    pw_metrics_refresh(outcomes[st]);
    if (st == PW_RF_REFRESHED)
        pw_log_info("token refreshed", PW_F_STR("account_id", account->token->account_id),
                    PW_F_STR("method", pw_refresh_method_name(account->token->refresh_method)),
                    PW_F_BOOL("reactive", force));
    if (st == PW_RF_TERMINAL || st == PW_RF_TRANSIENT) {
        pw_log_warn("token refresh failed", PW_F_STR("account_id", account->token->account_id),
                    PW_F_STR("endpoint", err->endpoint),
                    PW_F_OPT_INT("http_status", err->http_status), PW_F_OPT_INT("code", err->code),
                    PW_F_OPT_INT("subcode", err->subcode), PW_F_STR("fbtrace_id", err->fbtrace_id),
                    PW_F_STR("message", err->message));
        pw_pipeline_alert(p, job, "refresh_failed", account->token->account_id, err, NULL, 0);
    }
    return st;
}

/* Tokens that expire within this many seconds are refreshed before use. */
#define PW_REFRESH_BEFORE_USE_S 300

/* A valid request: the publish step with retries, then one result. */
static bool pw_pipeline_publish(pw_pipeline_t *p, pw_http_t *http, pw_job_t *job,
                                const pw_request_t *req)
{
    pw_account_t account;
    pw_post_record_t rec;
    int parked = 0;
    if (!pw_park_begin(p, job, req, &account, &rec, &parked))
        return false; /* stopping while Redis was away */
    if (parked)
        return true;
    if (!account.token)
        return pw_park_without_token(p, job, req);
    pw_result_t result = {.attempts = 0};
    pw_api_error_t rerr;
    int64_t now_s = pw_now_ms() / 1000;
    if (account.token->expires_at - now_s < PW_REFRESH_BEFORE_USE_S &&
        pw_token_refresh_allowed(account.token, now_s))
        result.token_refreshed =
            pw_pipeline_refresh(p, http, job, &account, false, &rerr) == PW_RF_REFRESHED;

    pw_publish_t pub = {
        .p = p, .http = http, .req = req, .token = account.token, .first_record = &rec};
    pw_result_error_t error;
    pw_pub_outcome_t out;
    bool refreshed_for_auth = false, auth_logged = false;
    for (;;) {
        pub.token = account.token;
        out = pw_publish_attempt(&pub);
        if (out == PW_PUB_STOPPED) {
            pw_park_account_clear(&account);
            return false;
        }
        if (out == PW_PUB_REDIS) {
            if (!pw_pipeline_sleep(p, 1000)) {
                pw_park_account_clear(&account);
                return false;
            }
            continue; /* Redis being away spends no attempt */
        }
        result.attempts++;
        if (out == PW_PUB_AUTH && pub.err.auth == PW_AUTH_EXPIRED && !refreshed_for_auth) {
            /* Refresh once and retry once; a second expiry parks. */
            pw_park_log_auth_failure(p, job, req, &pub.err);
            refreshed_for_auth = true;
            pw_rf_status_t st = pw_pipeline_refresh(p, http, job, &account, true, &rerr);
            if (st == PW_RF_REFRESHED || st == PW_RF_BY_OTHER) {
                result.token_refreshed |= st == PW_RF_REFRESHED;
                continue;
            }
            if (st == PW_RF_TRANSIENT) {
                pub.err = rerr;
                out = PW_PUB_RETRY;
            } else {
                pub.err.auth = rerr.auth != PW_AUTH_NONE ? rerr.auth : PW_AUTH_REVOKED;
                auth_logged = true;
            }
        }
        if (out != PW_PUB_RETRY)
            break;
        if (pub.err.cls == PW_EC_RATE_LIMITED)
            pw_pipeline_alert(p, job, "rate_limited", req->account_id, &pub.err, NULL, 0);
        if (result.attempts >= p->conf->publish_max_attempts)
            break;
        long delay = pw_backoff_ms(result.attempts, pub.err.retry_after_ms);
        pw_log_info("publish attempt failed; retrying", PW_F_STR("account_id", req->account_id),
                    PW_F_STR("post_id", req->post_id), PW_F_INT("attempt", result.attempts),
                    PW_F_STR("error_class", pw_error_class_name(pub.err.cls)),
                    PW_F_OPT_INT("http_status", pub.err.http_status),
                    PW_F_OPT_INT("code", pub.err.code), PW_F_INT("delay_ms", delay));
        if (!pw_pipeline_sleep(p, delay)) {
            pw_park_account_clear(&account);
            return false;
        }
    }
    bool finished = true;
    switch (out) {
    case PW_PUB_PUBLISHED:
    case PW_PUB_DUPLICATE:
        result.status = out == PW_PUB_PUBLISHED ? "published" : "duplicate";
        result.media_id = pub.media_id[0] ? pub.media_id : NULL;
        /* Found in the record at once: nothing was tried for this request.
         * Found on a retry: an earlier attempt of ours published it (its
         * answer was lost), so the attempts stand. */
        if (out == PW_PUB_DUPLICATE && result.attempts == 1)
            result.attempts = 0;
        pw_pipeline_result(p, job, req, &result);
        break;
    case PW_PUB_AUTH:
        finished = pw_park_on_auth_failure(p, job, req, account.token->fence, &pub.err,
                                           result.attempts, result.token_refreshed, auth_logged);
        break;
    default: /* FAILED, or RETRY past the limit */
        result.status = "failed";
        pw_pipeline_error_of(&pub.err, &error);
        result.error = &error;
        pw_pipeline_result(p, job, req, &result);
        break;
    }
    pw_park_account_clear(&account);
    return finished;
}

bool pw_pipeline_run(void *opaque, void *fiber_state, pw_job_t *job)
{
    pw_pipeline_t *p = opaque;
    if (strcmp(job->topic, p->conf->topic_account_events) == 0)
        return pw_park_on_account_event(p, fiber_state, job);

    pw_request_t *req = NULL;
    const char *dlq_class = NULL;
    char reason[512];
    pw_req_status_t status =
        pw_request_parse(job->value, job->value_len, &req, &dlq_class, reason, sizeof(reason));
    bool finished = true;
    if (status == PW_REQ_DEAD_LETTER) {
        pw_pipeline_dead_letter(p, job, dlq_class, reason);
    } else if (status == PW_REQ_INVALID) {
        pw_result_error_t error = {"invalid_request", -1, -1, -1, reason};
        pw_result_t result = {.status = "failed", .error = &error};
        pw_pipeline_result(p, job, req, &result);
    } else {
        finished = pw_pipeline_publish(p, fiber_state, job, req);
    }
    pw_request_destroy(req);
    return finished;
}
