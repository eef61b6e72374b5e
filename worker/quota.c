/* Quota: the publishing quota, kept before a post is sent (quota.h). */
#include "quota.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "log.h"
#include "metrics_accounts.h"
#include "output.h"

/* Meta's quota where the API has not told the account's own yet. */
#define PW_QUOTA_DEFAULT_TOTAL 250
#define PW_QUOTA_DEFAULT_WINDOW_S 86400

/* KEYS: published, quota reading. ARGV: now_ms, post id, default total,
 * default window (s). Returns {1 go | 0 wait, free_at_ms, used, total,
 * reading age ms (-1: none)}. A slot the post holds already is kept (a retry,
 * a replay after a crash). */
static pw_redis_script_t pw_quota_reserve_script = {
    .source = "local now = tonumber(ARGV[1])\n"
              "local q = redis.call('HMGET', KEYS[2], 'usage', 'total', 'duration_s', 'at_ms')\n"
              "local total = tonumber(q[2]) or tonumber(ARGV[3])\n"
              "local window = (tonumber(q[3]) or tonumber(ARGV[4])) * 1000\n"
              "local at = tonumber(q[4])\n"
              "local age = at and (now - at) or -1\n"
              "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)\n"
              "local used = redis.call('ZCARD', KEYS[1])\n"
              "if redis.call('ZSCORE', KEYS[1], ARGV[2]) then return {1, 0, used, total, age} end\n"
              "local by_api = false\n"
              "if q[1] and at and now - at < window then\n"
              "  local api = tonumber(q[1]) + redis.call('ZCOUNT', KEYS[1], '(' .. at, '+inf')\n"
              "  if api > used then used = api by_api = true end\n"
              "end\n"
              "if used < total then\n"
              "  redis.call('ZADD', KEYS[1], now, ARGV[2])\n"
              "  redis.call('PEXPIRE', KEYS[1], window)\n"
              "  return {1, 0, used + 1, total, age}\n"
              "end\n"
              "local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')\n"
              "local free_at = 0\n"
              "if not by_api and oldest[2] then free_at = tonumber(oldest[2]) + window end\n"
              "return {0, free_at, used, total, age}\n",
};

/* KEYS: hold. ARGV: until_ms, ttl_ms. 1 when the hold is new. */
static pw_redis_script_t pw_quota_hold_script = {
    .source = "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end\n"
              "return 0\n",
};

static pw_redis_script_t pw_quota_park_script = {
    .source = PW_LUA_PARK "return park(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3])\n",
};

void pw_quota_note(pw_redis_t *redis, const char *account_id, const pw_quota_t *quota)
{
    if (!quota->known)
        return;
    pw_key_t k_quota = pw_key_quota(account_id);
    char usage[32], total[32], duration[32], at[32], ttl[32], errstr[256];
    snprintf(usage, sizeof(usage), "%ld", quota->usage);
    snprintf(total, sizeof(total), "%ld", quota->total);
    snprintf(duration, sizeof(duration), "%ld", quota->duration_s);
    snprintf(at, sizeof(at), "%lld", (long long)pw_now_ms());
    snprintf(ttl, sizeof(ttl), "%ld", quota->duration_s);
    const char *hset[] = {"HSET", k_quota.s,    "usage",  usage,   "total",
                          total,  "duration_s", duration, "at_ms", at};
    const char *expire[] = {"EXPIRE", k_quota.s, ttl};
    redisReply *reply = pw_redis_command(redis, errstr, sizeof(errstr), 10, hset);
    if (reply) {
        freeReplyObject(reply);
        reply = pw_redis_command(redis, errstr, sizeof(errstr), 3, expire);
    }
    if (reply)
        freeReplyObject(reply);
    else
        pw_log_warn("quota reading not recorded", PW_F_STR("account_id", account_id),
                    PW_F_STR("error", errstr));
}

/* Runs the reserve script; -1 when the worker is stopping. */
static int pw_quota_try(pw_ctx_t *ctx, const char *account_id, const char *post_id,
                        int64_t *free_at_ms, long long *reading_age_ms)
{
    pw_key_t k_published = pw_key_published(account_id), k_quota = pw_key_quota(account_id);
    char now[32], total[32], window[32];
    snprintf(now, sizeof(now), "%lld", (long long)pw_now_ms());
    snprintf(total, sizeof(total), "%d", PW_QUOTA_DEFAULT_TOTAL);
    snprintf(window, sizeof(window), "%d", PW_QUOTA_DEFAULT_WINDOW_S);
    const char *keys[] = {k_published.s, k_quota.s};
    const char *args[] = {now, post_id, total, window};
    redisReply *reply =
        pw_ctx_eval(ctx, "reserving publishing quota", &pw_quota_reserve_script, 2, keys, 4, args);
    if (!reply)
        return -1;
    int go = (int)reply->element[0]->integer;
    *free_at_ms = reply->element[1]->integer;
    *reading_age_ms = reply->element[4]->integer;
    freeReplyObject(reply);
    return go;
}

pw_quota_verdict_t pw_quota_reserve(pw_ctx_t *ctx, pw_http_t *http, const pw_token_t *token,
                                    const char *post_id, int64_t *free_at_ms)
{
    long long age;
    int go = pw_quota_try(ctx, token->account_id, post_id, free_at_ms, &age);
    if (go != 0)
        return go == 1 ? PW_QUOTA_GO : PW_QUOTA_STOPPED;
    /* Used up: unless the API was asked lately, its count (which knows of
     * other tools' posts, and of a new quota) decides. */
    if (age >= 0 && age < ctx->conf->quota_recheck_s * 1000LL)
        return PW_QUOTA_WAIT;
    pw_quota_t quota;
    pw_api_error_t err;
    if (pw_threads_publishing_limit(http, ctx->conf->threads_api_base_url, token->user_id,
                                    token->access_token, &quota, &err) == -1) {
        pw_log_warn("publishing quota not read", PW_F_STR("account_id", token->account_id),
                    PW_F_STR("endpoint", err.endpoint),
                    PW_F_OPT_INT("http_status", err.http_status), PW_F_OPT_INT("code", err.code),
                    PW_F_OPT_INT("subcode", err.subcode), PW_F_STR("message", err.message));
        return PW_QUOTA_WAIT;
    }
    pw_quota_note(ctx->redis, token->account_id, &quota);
    go = pw_quota_try(ctx, token->account_id, post_id, free_at_ms, &age);
    return go == 1 ? PW_QUOTA_GO : go == 0 ? PW_QUOTA_WAIT : PW_QUOTA_STOPPED;
}

void pw_quota_release(pw_ctx_t *ctx, const char *account_id, const char *post_id)
{
    pw_key_t k_published = pw_key_published(account_id);
    const char *argv[] = {"ZREM", k_published.s, post_id};
    char errstr[256];
    redisReply *reply = pw_redis_command(ctx->redis, errstr, sizeof(errstr), 3, argv);
    if (reply)
        freeReplyObject(reply);
}

void pw_quota_hold(pw_ctx_t *ctx, pw_job_t *job, const char *account_id, int64_t free_at_ms,
                   const pw_api_error_t *err)
{
    int64_t now = pw_now_ms();
    if (free_at_ms <= now)
        free_at_ms = now + ctx->conf->quota_recheck_s * 1000LL;
    pw_key_t k_hold = pw_key_quota_hold(account_id);
    char until[32], ttl[32], when[40];
    snprintf(until, sizeof(until), "%lld", (long long)free_at_ms);
    snprintf(ttl, sizeof(ttl), "%lld", (long long)(free_at_ms - now));
    const char *keys[] = {k_hold.s};
    const char *args[] = {until, ttl};
    redisReply *reply =
        pw_ctx_eval(ctx, "holding posts for the quota", &pw_quota_hold_script, 1, keys, 2, args);
    bool fresh = reply && reply->integer == 1;
    if (reply)
        freeReplyObject(reply);
    if (!fresh)
        return;
    pw_format_time_ms(free_at_ms, when, sizeof(when));
    char message[300];
    snprintf(message, sizeof(message),
             "publishing quota used up%s: posts are kept in order and published from %s",
             err ? " (the API says so)" : "", when);
    pw_log_warn("publishing quota used up; posts wait", PW_F_STR("account_id", account_id),
                PW_F_STR("until", when), PW_F_BOOL("api_said_so", err != NULL));
    pw_output_alert(ctx, job, "rate_limited", account_id, err, message, 0);
}

bool pw_quota_park(pw_ctx_t *ctx, pw_job_t *job, const pw_request_t *req, int64_t free_at_ms,
                   const pw_api_error_t *err, int attempts)
{
    pw_quota_hold(ctx, job, req->account_id, free_at_ms, err);
    pw_key_t k_parked = pw_key_parked(req->account_id), k_ids = pw_key_parked_ids(req->account_id);
    char cap[32];
    snprintf(cap, sizeof(cap), "%ld", ctx->conf->parked_max_per_account);
    const char *keys[] = {k_parked.s, k_ids.s, PW_KEY_PARKED_ACCOUNTS};
    const char *args[] = {job->value, req->account_id, cap};
    redisReply *reply =
        pw_ctx_eval(ctx, "parking a post for the quota", &pw_quota_park_script, 3, keys, 3, args);
    if (!reply)
        return false;
    bool full = reply->integer == 2;
    freeReplyObject(reply);
    pw_metrics_quota_wait();
    pw_outcome_t o = {.status = full ? PW_OUTCOME_FAILED : PW_OUTCOME_PARKED,
                      .attempts = attempts,
                      .reason = PW_PARKED_FOR_QUOTA,
                      .err = err};
    pw_api_error_t full_err;
    if (full) {
        pw_api_error_make(&full_err, PW_EP_PUBLISH, PW_EC_RATE_LIMITED, PW_AUTH_NONE, false, -1,
                          "publishing quota used up and %ld posts already wait "
                          "(PARKED_MAX_PER_ACCOUNT): this post is not kept",
                          ctx->conf->parked_max_per_account);
        o.err = &full_err;
    }
    pw_output_answer(ctx, job, req, &o);
    return true;
}
