/* The publish step: begin, refresh, the container flow, retries, answer. */
#include "publish.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "log.h"
#include "metrics.h"
#include "output.h"
#include "post_store.h"
#include "quota.h"

#define PW_CONTAINER_MAX_AGE_MS (24LL * 3600 * 1000)
/* Tokens that expire within this many seconds are refreshed before use. */
#define PW_REFRESH_BEFORE_USE_S 300
/* Publish calls answered "not ready" before an attempt gives up. */
#define PW_NOT_READY_ROUNDS 20

/* One attempt of the container flow. */
typedef struct pw_attempt_s {
    pw_ctx_t *ctx;
    pw_http_t *http;
    const pw_request_t *req;
    const pw_token_t *token;
    /* The record read at begin; the first attempt uses it instead of reading
     * again, later ones read afresh. */
    const pw_post_record_t *first_record;
    pw_api_error_t err;
    char media_id[PW_ID_MAX];
    char media_error[512]; /* Meta's error_message of an ERROR container */
} pw_attempt_t;

/* A request's attempts so far. */
typedef struct pw_tries_s {
    pw_token_t *token; /* the account's current token (owned) */
    int attempts;
    bool token_refreshed;
    bool refreshed_for_auth;
    /* The API said the token expired (expired) and its refresh failed
     * transiently: the next attempt refreshes first instead of asking the API
     * again with a token known to be expired. */
    bool refresh_pending;
    pw_api_error_t expired;
    bool auth_logged;
} pw_tries_t;

/* ---- the container flow ---- */

/* An API failure: decide the attempt's outcome from its classification. */
static pw_pub_outcome_t pw_attempt_api_failed(const pw_attempt_t *a)
{
    if (a->err.quota_reached)
        return PW_PUB_QUOTA;
    if (a->err.cls == PW_EC_AUTH || a->err.cls == PW_EC_PERMISSION)
        return PW_PUB_AUTH;
    return a->err.retriable ? PW_PUB_RETRY : PW_PUB_FAILED;
}

static pw_pub_outcome_t pw_attempt_redis_failed(const pw_attempt_t *a, const char *what,
                                                const char *errstr)
{
    pw_log_warn("redis failed during publish", PW_F_STR("account_id", a->req->account_id),
                PW_F_STR("post_id", a->req->post_id), PW_F_STR("step", what),
                PW_F_STR("error", errstr));
    return PW_PUB_REDIS;
}

/* The container went to ERROR or EXPIRED: a status read, not an API error. */
static pw_pub_outcome_t pw_attempt_media_failed(pw_attempt_t *a, const char *message)
{
    pw_api_error_make(&a->err, PW_EP_STATUS, PW_EC_MEDIA, PW_AUTH_NONE, false, -1, "%s",
                      message && *message ? message : "the media container failed");
    return PW_PUB_FAILED;
}

/* Waits for a container to leave IN_PROGRESS; *status gets where it went. */
static pw_pub_outcome_t pw_attempt_poll(pw_attempt_t *a, const char *container_id,
                                        pw_container_status_t *status, bool wait_first)
{
    const pw_config_t *conf = a->ctx->conf;
    int64_t deadline = pw_mono_ms() + conf->container_poll_timeout_s * 1000;
    for (;;) {
        if (wait_first && !pw_ctx_sleep(a->ctx, conf->container_poll_interval_ms))
            return PW_PUB_STOPPED;
        wait_first = true;
        if (pw_threads_container_status(a->http, conf->threads_api_base_url, container_id,
                                        a->token->access_token, status, a->media_error,
                                        sizeof(a->media_error), &a->err) == -1)
            return pw_attempt_api_failed(a);
        if (*status != PW_CONTAINER_IN_PROGRESS)
            return PW_PUB_PUBLISHED; /* "went somewhere": the caller decides */
        if (pw_mono_ms() >= deadline) {
            pw_api_error_make(&a->err, PW_EP_STATUS, PW_EC_TRANSIENT, PW_AUTH_NONE, true, 504,
                              "container %s still IN_PROGRESS after %lds", container_id,
                              conf->container_poll_timeout_s);
            return PW_PUB_RETRY;
        }
    }
}

/* Creates the carousel's children; children gets their ids, comma-separated. */
static pw_pub_outcome_t pw_attempt_create_children(pw_attempt_t *a, char *children, size_t size)
{
    const pw_request_t *req = a->req;
    children[0] = '\0';
    for (size_t i = 0; i < req->child_count; i++) {
        const pw_child_t *child = &req->children[i];
        pw_container_spec_t spec = {
            .media_type = pw_media_name(child->media_type),
            .image_url = child->media_type == PW_MEDIA_IMAGE ? child->url : NULL,
            .video_url = child->media_type == PW_MEDIA_VIDEO ? child->url : NULL,
            .is_carousel_item = true,
        };
        char child_id[PW_ID_MAX];
        if (pw_threads_create_container(a->http, a->ctx->conf->threads_api_base_url,
                                        a->token->user_id, a->token->access_token, &spec, child_id,
                                        &a->err) == -1)
            return pw_attempt_api_failed(a);
        size_t used = strlen(children);
        snprintf(children + used, size - used, "%s%s", i ? "," : "", child_id);
    }
    return PW_PUB_PUBLISHED;
}

/* Creates the post's container; carousel children first. */
static pw_pub_outcome_t pw_attempt_create(pw_attempt_t *a, char id[PW_ID_MAX])
{
    const pw_request_t *req = a->req;
    char children[PW_CAROUSEL_MAX * PW_ID_MAX];
    pw_pub_outcome_t out = pw_attempt_create_children(a, children, sizeof(children));
    if (out != PW_PUB_PUBLISHED)
        return out;
    pw_container_spec_t spec = {
        .media_type = pw_media_name(req->media_type),
        .text = req->text,
        .image_url = req->image_url,
        .video_url = req->video_url,
        .children = req->child_count ? children : NULL,
        .reply_to_id = req->reply_to_id,
        .reply_control = req->reply_control,
        .link_attachment = req->link_attachment,
    };
    if (pw_threads_create_container(a->http, a->ctx->conf->threads_api_base_url, a->token->user_id,
                                    a->token->access_token, &spec, id, &a->err) == -1)
        return pw_attempt_api_failed(a);
    return PW_PUB_PUBLISHED;
}

static pw_pub_outcome_t pw_attempt_record(pw_attempt_t *a)
{
    char errstr[512];
    if (pw_post_store_set_published(a->ctx->redis, a->req->account_id, a->req->post_id, a->media_id,
                                    a->ctx->conf->post_record_ttl_s, errstr, sizeof(errstr)) == -1)
        /* The post is out; a redelivery will find its container PUBLISHED. */
        pw_log_error("published but not recorded", PW_F_STR("account_id", a->req->account_id),
                     PW_F_STR("post_id", a->req->post_id), PW_F_STR("error", errstr));
    return PW_PUB_PUBLISHED;
}

/* Polls a recorded container; PW_PUB_PUBLISHED means "publish it now". */
static pw_pub_outcome_t pw_attempt_wait_ready(pw_attempt_t *a, const char *container_id,
                                              bool wait_first)
{
    pw_container_status_t status;
    pw_pub_outcome_t out = pw_attempt_poll(a, container_id, &status, wait_first);
    if (out != PW_PUB_PUBLISHED)
        return out;
    if (status == PW_CONTAINER_PUBLISHED) {
        a->media_id[0] = '\0'; /* published before, id not recorded */
        pw_attempt_record(a);
        return PW_PUB_DUPLICATE;
    }
    if (status == PW_CONTAINER_ERROR || status == PW_CONTAINER_EXPIRED)
        return pw_attempt_media_failed(
            a, status == PW_CONTAINER_EXPIRED ? "the media container expired" : a->media_error);
    return PW_PUB_PUBLISHED;
}

/* Publishes a recorded container, polling when it is not ready yet. */
static pw_pub_outcome_t pw_attempt_publish(pw_attempt_t *a, const char *container_id,
                                           bool poll_first)
{
    const pw_config_t *conf = a->ctx->conf;
    for (int round = 0;; round++) {
        if (poll_first || round > 0) {
            pw_pub_outcome_t out = pw_attempt_wait_ready(a, container_id, round > 0);
            if (out != PW_PUB_PUBLISHED)
                return out;
        }
        if (pw_threads_publish(a->http, conf->threads_api_base_url, a->token->user_id,
                               a->token->access_token, container_id, a->media_id, &a->err) == 0)
            return pw_attempt_record(a);
        if (a->err.cls != PW_EC_MEDIA)
            return pw_attempt_api_failed(a);
        /* Not ready, failed, or already published: the status tells which. */
        if (round >= 1 && !a->err.not_ready)
            return PW_PUB_FAILED; /* a->err already says why (class media) */
        if (round >= PW_NOT_READY_ROUNDS)
            return PW_PUB_RETRY; /* still "not ready", which is retriable */
    }
}

/* A recorded container: PW_PUB_FAILED with rebuild set means "make a new one". */
static pw_pub_outcome_t pw_attempt_recorded(pw_attempt_t *a, const pw_post_record_t *rec,
                                            bool *rebuild)
{
    /* Asked even when older than 24 h: it may have been published just
     * before a crash. Only EXPIRED or unknown (100/33) is rebuilt. */
    pw_container_status_t status;
    pw_pub_outcome_t out = pw_attempt_poll(a, rec->container_id, &status, false);
    bool old = pw_now_ms() - rec->container_at_ms >= PW_CONTAINER_MAX_AGE_MS;
    if (out == PW_PUB_PUBLISHED && status != PW_CONTAINER_EXPIRED &&
        !(old && status != PW_CONTAINER_PUBLISHED))
        return pw_attempt_publish(a, rec->container_id, true);
    *rebuild = out == PW_PUB_PUBLISHED || (a->err.code == 100 && a->err.subcode == 33);
    return out;
}

/* Creates, records with compare-and-set, then publishes a container. */
static pw_pub_outcome_t pw_attempt_create_and_publish(pw_attempt_t *a, const char *expected)
{
    const pw_request_t *req = a->req;
    char id[PW_ID_MAX], errstr[512];
    pw_pub_outcome_t out = pw_attempt_create(a, id);
    if (out != PW_PUB_PUBLISHED)
        return out;
    pw_post_record_t rec;
    switch (pw_post_store_set_container(a->ctx->redis, req->account_id, req->post_id, expected, id,
                                        a->ctx->conf->post_record_ttl_s, &rec, errstr,
                                        sizeof(errstr))) {
    case PW_PS_OK:
        break;
    case PW_PS_PUBLISHED:
        snprintf(a->media_id, sizeof(a->media_id), "%s", rec.media_id);
        return PW_PUB_DUPLICATE;
    case PW_PS_LOST:
        /* Another delivery recorded its container first: publish that one. */
        return pw_attempt_publish(a, rec.container_id, true);
    case PW_PS_ERROR:
        return pw_attempt_redis_failed(a, "record container", errstr);
    }
    bool poll_first = req->media_type == PW_MEDIA_VIDEO || req->media_type == PW_MEDIA_CAROUSEL;
    return pw_attempt_publish(a, id, poll_first);
}

static pw_pub_outcome_t pw_attempt_run(pw_attempt_t *a)
{
    char errstr[512];
    pw_post_record_t rec;
    if (a->first_record) {
        rec = *a->first_record;
        a->first_record = NULL;
    } else if (pw_post_store_get(a->ctx->redis, a->req->account_id, a->req->post_id, &rec, errstr,
                                 sizeof(errstr)) == -1) {
        return pw_attempt_redis_failed(a, "read record", errstr);
    }
    if (rec.published) {
        snprintf(a->media_id, sizeof(a->media_id), "%s", rec.media_id);
        return PW_PUB_DUPLICATE;
    }
    if (rec.container_id[0]) {
        bool rebuild = false;
        pw_pub_outcome_t out = pw_attempt_recorded(a, &rec, &rebuild);
        if (!rebuild)
            return out;
    }
    return pw_attempt_create_and_publish(a, rec.container_id);
}

pw_pub_outcome_t pw_publish_once(pw_ctx_t *ctx, pw_http_t *http, const pw_request_t *req,
                                 const pw_token_t *token, pw_api_error_t *err,
                                 char media_id[PW_ID_MAX])
{
    pw_attempt_t a = {.ctx = ctx, .http = http, .req = req, .token = token};
    pw_pub_outcome_t out = pw_attempt_run(&a);
    *err = a.err;
    memcpy(media_id, a.media_id, PW_ID_MAX);
    return out;
}

/* ---- refresh ---- */

/* A refresh refused for the fleet's configuration (config_error): logged at
 * error level with the fix, at most once a minute per process, and alerted
 * once per window for the whole fleet rather than once per account. */
static void pw_publish_config_error(pw_ctx_t *ctx, pw_job_t *job, const char *account_id,
                                    const pw_api_error_t *err)
{
    static atomic_llong logged_ms; /* monotonic ms of the last log line; 0: never */
    long long now = pw_mono_ms(), last = atomic_load(&logged_ms);
    if ((last == 0 || now - last >= 60000) &&
        atomic_compare_exchange_strong(&logged_ms, &last, now))
        pw_log_error("oauth2 client configuration refused", PW_F_STR("account_id", account_id),
                     PW_F_STR("endpoint", err->endpoint),
                     PW_F_OPT_INT("http_status", err->http_status),
                     PW_F_STR("message", err->message),
                     PW_F_STR("fix", "set OAUTH2_CLIENT_ID and OAUTH2_CLIENT_SECRET (and "
                                     "OAUTH2_TOKEN_URL) to the OAuth2 client's registered "
                                     "values and restart the workers; no account needs a "
                                     "token put"));
    char message[sizeof(err->message) + 200];
    snprintf(message, sizeof(message),
             "%s. This is the whole fleet's configuration, not account %s's (the first whose "
             "refresh met it): no account is marked and posts are retried",
             err->message, account_id);
    pw_output_fleet_alert(ctx, job, "refresh_failed", "oauth2_client", account_id, err, message);
}

pw_rf_status_t pw_publish_refresh(pw_ctx_t *ctx, pw_http_t *http, pw_job_t *job, pw_token_t **token,
                                  bool force, pw_api_error_t *err)
{
    pw_token_t *fresh = NULL;
    pw_rf_status_t st = pw_token_refresh(&ctx->refresher, http, *token, force, &fresh, err);
    if (fresh) {
        pw_token_destroy(*token);
        *token = fresh;
    }
    static const char *const outcomes[] = {"refreshed", "by_other", "not_allowed", "terminal",
                                           "transient"};
    pw_metrics_refresh(outcomes[st]);
    const char *account_id = (*token)->account_id;
    if (st == PW_RF_REFRESHED)
        pw_log_info("token refreshed", PW_F_STR("account_id", account_id),
                    PW_F_STR("method", pw_refresh_method_name((*token)->refresh_method)),
                    PW_F_BOOL("reactive", force));
    if (st == PW_RF_TERMINAL || st == PW_RF_TRANSIENT) {
        pw_log_warn("token refresh failed", PW_F_STR("account_id", account_id),
                    PW_F_STR("endpoint", err->endpoint),
                    PW_F_OPT_INT("http_status", err->http_status), PW_F_OPT_INT("code", err->code),
                    PW_F_OPT_INT("subcode", err->subcode), PW_F_STR("fbtrace_id", err->fbtrace_id),
                    PW_F_STR("message", err->message));
        if (err->config_error)
            pw_publish_config_error(ctx, job, account_id, err);
        else
            pw_output_alert(ctx, job, "refresh_failed", account_id, err, NULL, 0);
    }
    return st;
}

/* Refreshes the token the API said expired (t->expired). Returns true to run
 * the container flow now; otherwise *out (and a->err) say how this attempt
 * ends: a transient failure (a refused OAuth2 client included) is retried
 * and leaves the refresh pending, a terminal one needs a reconnect. */
static bool pw_publish_refresh_expired(pw_attempt_t *a, pw_job_t *job, pw_tries_t *t,
                                       pw_pub_outcome_t *out)
{
    pw_api_error_t rerr;
    pw_rf_status_t st = pw_publish_refresh(a->ctx, a->http, job, &t->token, true, &rerr);
    t->refresh_pending = st == PW_RF_TRANSIENT;
    if (st == PW_RF_REFRESHED || st == PW_RF_BY_OTHER) {
        t->token_refreshed |= st == PW_RF_REFRESHED;
        return true;
    }
    if (st == PW_RF_TRANSIENT) {
        a->err = rerr;
        *out = PW_PUB_RETRY;
        return false;
    }
    /* Expired and not refreshable: only a reconnect helps. */
    pw_api_error_needs_reconnect(&t->expired,
                                 rerr.auth != PW_AUTH_NONE ? rerr.auth : PW_AUTH_REVOKED, &a->err);
    t->auth_logged = true;
    *out = PW_PUB_AUTH;
    return false;
}

/* An expired token: counted as an auth failure, then refreshed once.
 * Returns true to retry at once (see pw_publish_refresh_expired()). */
static bool pw_publish_refresh_for_auth(pw_attempt_t *a, pw_job_t *job, pw_tries_t *t,
                                        pw_pub_outcome_t *out)
{
    pw_output_auth_failure(a->ctx, job, a->req->account_id, a->req->post_id, &a->err);
    t->refreshed_for_auth = true;
    t->expired = a->err;
    return pw_publish_refresh_expired(a, job, t, out);
}

/* ---- the step ---- */

/* Backoff before attempt n+1: ~1 s doubling, jitter, capped at 30 s; a
 * Retry-After from the platform wins when it is longer. */
static long pw_backoff_ms(int attempt, long retry_after_ms)
{
    long base = 1000L << (attempt - 1 < 5 ? attempt - 1 : 5);
    if (base > 30000)
        base = 30000;
    long jittered = base * 4 / 5 + (long)(random() % (base * 2 / 5 + 1));
    if (jittered > 30000)
        jittered = 30000; /* the contract's cap holds after the jitter too */
    return retry_after_ms > jittered ? retry_after_ms : jittered;
}

/* Waits before the next attempt; false when the worker is stopping. */
static bool pw_publish_backoff(pw_attempt_t *a, const pw_tries_t *t)
{
    const pw_request_t *req = a->req;
    long delay = pw_backoff_ms(t->attempts, a->err.retry_after_ms);
    pw_log_info("publish attempt failed; retrying", PW_F_STR("account_id", req->account_id),
                PW_F_STR("post_id", req->post_id), PW_F_INT("attempt", t->attempts),
                PW_F_STR("error_class", pw_error_class_name(a->err.cls)),
                PW_F_OPT_INT("http_status", a->err.http_status), PW_F_OPT_INT("code", a->err.code),
                PW_F_INT("delay_ms", delay));
    return pw_ctx_sleep(a->ctx, delay);
}

/* One attempt: a refresh left pending by the last one first, then the
 * container flow. */
static pw_pub_outcome_t pw_publish_try(pw_attempt_t *a, pw_job_t *job, pw_tries_t *t)
{
    pw_pub_outcome_t out;
    if (t->refresh_pending && !pw_publish_refresh_expired(a, job, t, &out))
        return out;
    a->token = t->token;
    return pw_attempt_run(a);
}

/* Attempts until one does not ask for another, or the budget is spent. */
static pw_pub_outcome_t pw_publish_attempts(pw_attempt_t *a, pw_job_t *job, pw_tries_t *t)
{
    for (;;) {
        pw_pub_outcome_t out = pw_publish_try(a, job, t);
        if (out == PW_PUB_STOPPED)
            return out;
        if (out == PW_PUB_REDIS) { /* Redis being away spends no attempt */
            if (!pw_ctx_sleep(a->ctx, 1000))
                return PW_PUB_STOPPED;
            continue;
        }
        t->attempts++;
        if (out == PW_PUB_AUTH && a->err.auth == PW_AUTH_EXPIRED && !t->refreshed_for_auth &&
            pw_publish_refresh_for_auth(a, job, t, &out))
            continue;
        if (out != PW_PUB_RETRY)
            return out;
        if (a->err.cls == PW_EC_RATE_LIMITED)
            pw_output_alert(a->ctx, job, "rate_limited", a->req->account_id, &a->err, NULL, 0);
        if (t->attempts >= a->ctx->conf->publish_max_attempts)
            return out;
        if (!pw_publish_backoff(a, t))
            return PW_PUB_STOPPED;
    }
}

/* KEYS: token, account, parked, post record, parked accounts, parked ids,
 * quota hold. ARGV: value, account, cap. One round trip at the start of
 * every post: park it if the account is marked, has parked posts or waits
 * for its publishing quota (a value already parked is not parked again: a
 * redelivery, or a retry after a lost reply; a full list parks nothing: 2),
 * or return the token and the post's record. The reason returned is the
 * mark's, PW_PARKED_FOR_QUOTA, or "" behind earlier parked posts. */
static pw_redis_script_t pw_begin_script = {
    .source =
        PW_LUA_PARK "local status = redis.call('HGET', KEYS[2], 'status')\n"
                    "local marked = status and status ~= 'active'\n"
                    "local held = redis.call('EXISTS', KEYS[7]) == 1\n"
                    "if marked or held or redis.call('LLEN', KEYS[3]) > 0 then\n"
                    "  local parked = park(KEYS[3], KEYS[6], KEYS[5], ARGV[1], ARGV[2], ARGV[3])\n"
                    "  local reason = ''\n"
                    "  if marked then reason = redis.call('HGET', KEYS[2], 'reason') or ''\n"
                    "  elseif held then reason = '" PW_PARKED_FOR_QUOTA "' end\n"
                    "  return {parked, reason, {}, {}}\n"
                    "end\n"
                    "return {0, '', redis.call('HGETALL', KEYS[1]),\n"
                    "  redis.call('HMGET', KEYS[4], 'state', 'container_id', 'container_at_ms',"
                    " 'media_id')}\n",
};

typedef enum { PW_BEGIN_READY, PW_BEGIN_PARKED, PW_BEGIN_STOPPED } pw_begin_t;

/* An account whose parked list is full: this post is answered failed. */
static void pw_publish_parked_full(pw_ctx_t *ctx, pw_job_t *job, const pw_request_t *req)
{
    pw_api_error_t err;
    pw_api_error_make(&err, PW_EP_CREATE, PW_EC_AUTH, PW_AUTH_NONE, false, -1,
                      "account must be reconnected and already has %ld parked posts "
                      "(PARKED_MAX_PER_ACCOUNT): this post is not kept",
                      ctx->conf->parked_max_per_account);
    pw_log_error("parked list full; post answered failed", PW_F_STR("account_id", req->account_id),
                 PW_F_STR("post_id", req->post_id),
                 PW_F_INT("parked_max_per_account", ctx->conf->parked_max_per_account));
    pw_outcome_t failed = {.status = PW_OUTCOME_FAILED, .err = &err};
    pw_output_answer(ctx, job, req, &failed);
}

/* Parks the post (answering it) or reads *token and rec. With no usable
 * token, *token is NULL and *unusable says why (the stored record's fence
 * with it, so that marking the account is not mistaken for a race). */
static pw_begin_t pw_publish_begin(pw_ctx_t *ctx, pw_job_t *job, const pw_request_t *req,
                                   pw_token_t **token, pw_post_record_t *rec,
                                   pw_auth_failure_t *unusable)
{
    *token = NULL;
    pw_key_t k_token = pw_key_token(req->account_id), k_account = pw_key_account(req->account_id),
             k_parked = pw_key_parked(req->account_id),
             k_post = pw_key_post(req->account_id, req->post_id),
             k_ids = pw_key_parked_ids(req->account_id),
             k_hold = pw_key_quota_hold(req->account_id);
    char cap[32];
    snprintf(cap, sizeof(cap), "%ld", ctx->conf->parked_max_per_account);
    const char *keys[] = {k_token.s, k_account.s, k_parked.s, k_post.s, PW_KEY_PARKED_ACCOUNTS,
                          k_ids.s,   k_hold.s};
    const char *args[] = {job->value, req->account_id, cap};
    redisReply *reply = pw_ctx_eval(ctx, "beginning a post", &pw_begin_script, 7, keys, 3, args);
    if (!reply)
        return PW_BEGIN_STOPPED;
    pw_begin_t begin = reply->element[0]->integer ? PW_BEGIN_PARKED : PW_BEGIN_READY;
    if (reply->element[0]->integer == 2) {
        pw_publish_parked_full(ctx, job, req);
    } else if (begin == PW_BEGIN_PARKED) {
        pw_outcome_t parked = {.status = PW_OUTCOME_PARKED, .reason = reply->element[1]->str};
        pw_output_answer(ctx, job, req, &parked);
    } else {
        char errstr[400];
        if (pw_token_store_parse(ctx->tokens, req->account_id, reply->element[2], token, errstr,
                                 sizeof(errstr)) != PW_TS_OK) {
            pw_log_error("account has no usable token: reconnect it with token put",
                         PW_F_STR("account_id", req->account_id), PW_F_STR("error", errstr));
            *unusable = (pw_auth_failure_t){.fence = pw_token_store_fence_of(reply->element[2])};
            pw_api_error_make(&unusable->err, PW_EP_CREATE, PW_EC_AUTH, PW_AUTH_INVALID_TOKEN,
                              false, -1, "account has no usable token: %s", errstr);
        }
        pw_post_record_from_reply(reply->element[3], rec);
    }
    freeReplyObject(reply);
    return begin;
}

/* Hands the outcome of the attempts to the output, or to the caller (auth). */
static pw_step_t pw_publish_end(pw_ctx_t *ctx, pw_job_t *job, const pw_request_t *req,
                                const pw_attempt_t *a, const pw_tries_t *t, pw_pub_outcome_t out,
                                pw_auth_failure_t *failure)
{
    pw_outcome_t o = {.attempts = t->attempts, .token_refreshed = t->token_refreshed};
    switch (out) {
    case PW_PUB_STOPPED:
        return PW_STEP_STOPPED;
    case PW_PUB_QUOTA:
        return pw_quota_park(ctx, job, req, 0, &a->err, t->attempts) ? PW_STEP_ANSWERED
                                                                     : PW_STEP_STOPPED;
    case PW_PUB_AUTH:
        *failure = (pw_auth_failure_t){a->err, t->token->fence, t->attempts, t->token_refreshed,
                                       t->auth_logged};
        return PW_STEP_AUTH;
    case PW_PUB_PUBLISHED:
    case PW_PUB_DUPLICATE:
        o.status = out == PW_PUB_PUBLISHED ? PW_OUTCOME_PUBLISHED : PW_OUTCOME_DUPLICATE;
        o.media_id = a->media_id;
        /* Found in the record at once: nothing was tried for this request.
         * Found on a retry: an earlier attempt of ours published it (its
         * answer was lost), so the attempts stand. */
        if (out == PW_PUB_DUPLICATE && t->attempts == 1)
            o.attempts = 0;
        break;
    default: /* FAILED, or RETRY past the limit */
        o.status = PW_OUTCOME_FAILED;
        o.err = &a->err;
        break;
    }
    pw_output_answer(ctx, job, req, &o);
    return PW_STEP_ANSWERED;
}

/* The token refreshed when it is about to expire, the attempts, the
 * answer; a quota slot not used is given back. */
static pw_step_t pw_publish_go(pw_ctx_t *ctx, pw_http_t *http, pw_job_t *job,
                               const pw_request_t *req, const pw_post_record_t *rec, pw_tries_t *t,
                               pw_auth_failure_t *failure)
{
    int64_t now_s = pw_now_ms() / 1000;
    pw_api_error_t rerr;
    if (t->token->expires_at - now_s < PW_REFRESH_BEFORE_USE_S &&
        pw_token_refresh_allowed(t->token, now_s))
        t->token_refreshed =
            pw_publish_refresh(ctx, http, job, &t->token, false, &rerr) == PW_RF_REFRESHED;
    pw_attempt_t a = {.ctx = ctx, .http = http, .req = req, .first_record = rec};
    pw_pub_outcome_t out = pw_publish_attempts(&a, job, t);
    if (out == PW_PUB_FAILED || out == PW_PUB_RETRY || out == PW_PUB_AUTH || out == PW_PUB_QUOTA)
        pw_quota_release(ctx, req->account_id, req->post_id);
    return pw_publish_end(ctx, job, req, &a, t, out, failure);
}

pw_step_t pw_publish_request(pw_ctx_t *ctx, pw_http_t *http, pw_job_t *job, const pw_request_t *req,
                             pw_auth_failure_t *failure)
{
    pw_tries_t t = {0};
    pw_post_record_t rec;
    pw_begin_t begin = pw_publish_begin(ctx, job, req, &t.token, &rec, failure);
    if (begin != PW_BEGIN_READY)
        return begin == PW_BEGIN_PARKED ? PW_STEP_ANSWERED : PW_STEP_STOPPED;
    if (!t.token) /* active, nothing parked, but nothing to publish with */
        return PW_STEP_AUTH;
    pw_quota_verdict_t quota = PW_QUOTA_GO;
    int64_t free_at_ms = 0;
    if (!rec.published) /* a duplicate is answered from the record: no slot */
        quota = pw_quota_reserve(ctx, http, t.token, req->post_id, &free_at_ms);
    pw_step_t step;
    if (quota == PW_QUOTA_WAIT)
        step =
            pw_quota_park(ctx, job, req, free_at_ms, NULL, 0) ? PW_STEP_ANSWERED : PW_STEP_STOPPED;
    else if (quota == PW_QUOTA_STOPPED)
        step = PW_STEP_STOPPED;
    else
        step = pw_publish_go(ctx, http, job, req, &rec, &t, failure);
    pw_token_destroy(t.token);
    return step;
}
