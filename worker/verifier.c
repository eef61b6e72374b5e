/* Verifier: tokens checked against the API before posts need them
 * (verifier.h). */
#include "verifier.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accounts.h"
#include "census.h"
#include "keys.h"
#include "log.h"
#include "metrics_accounts.h"
#include "publish.h"
#include "quota.h"
#include "token_verify.h"

/* An unreachable API is asked again this soon (or at the interval if shorter). */
#define PW_VERIFY_RETRY_S 600
/* Accounts claimed at most per call. */
#define PW_VERIFY_CLAIM_MAX 50

struct pw_verifier_s {
    pw_ctx_t *ctx;
    pw_http_t *http;
    pthread_t thread;
};

/* KEYS: verify_due, this second's budget counter. ARGV: now_s, interval,
 * budget per second, most to claim. Returns {0} when nothing is due, {1,
 * account...} when some were claimed (each moved an interval ahead), {2}
 * when this second's budget is spent. */
static pw_redis_script_t pw_verify_claim_script = {
    .source = "local used = tonumber(redis.call('GET', KEYS[2]) or '0')\n"
              "local room = math.min(tonumber(ARGV[3]) - used, tonumber(ARGV[4]))\n"
              "local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1)\n"
              "if #due == 0 then return {0} end\n"
              "if room <= 0 then return {2} end\n"
              "due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, room)\n"
              "local next = tonumber(ARGV[1]) + tonumber(ARGV[2])\n"
              "for _, a in ipairs(due) do redis.call('ZADD', KEYS[1], next, a) end\n"
              "redis.call('INCRBY', KEYS[2], #due)\n"
              "redis.call('EXPIRE', KEYS[2], 5)\n"
              "local out = {1}\n"
              "for _, a in ipairs(due) do out[#out + 1] = a end\n"
              "return out\n",
};

/* Every auth failure is logged with what the contract's alert carries. */
static void pw_verifier_log(const char *account_id, const pw_verification_t *v)
{
    const pw_api_error_t *e = &v->err;
    pw_log_warn("token verification failed", PW_F_STR("account_id", account_id),
                PW_F_STR("outcome", pw_verify_outcome_name(v->outcome)),
                PW_F_STR("endpoint", e->endpoint), PW_F_OPT_INT("http_status", e->http_status),
                PW_F_OPT_INT("code", e->code), PW_F_OPT_INT("subcode", e->subcode),
                PW_F_STR("message", v->message));
}

/* An expired token: refreshed once; only a refresh that fails for good
 * marks the account. */
static void pw_verifier_expired(pw_verifier_t *vf, pw_token_t **token, const pw_verification_t *v)
{
    pw_api_error_t rerr, reconnect;
    int64_t fence = (*token)->fence;
    pw_rf_status_t st = pw_publish_refresh(vf->ctx, vf->http, NULL, token, true, &rerr);
    if (st != PW_RF_TERMINAL)
        return; /* refreshed, by another, or to be tried again */
    pw_api_error_needs_reconnect(&v->err, rerr.auth != PW_AUTH_NONE ? rerr.auth : PW_AUTH_EXPIRED,
                                 &reconnect);
    pw_accounts_mark(vf->ctx, NULL, (*token)->account_id, fence, &reconnect);
}

/* Acts on what the verification found, as a failed post would. */
static void pw_verifier_act(pw_verifier_t *vf, pw_token_t **token, const pw_verification_t *v)
{
    pw_ctx_t *ctx = vf->ctx;
    const char *account_id = (*token)->account_id;
    char *status = NULL, errstr[256];
    if (pw_token_store_get_status(ctx->tokens, account_id, &status, errstr, sizeof(errstr)) !=
        PW_TS_OK)
        return;
    bool active = !status || strcmp(status, "active") == 0;
    free(status);
    if (!active)
        return; /* marked already: only a token put clears it */
    if (v->outcome == PW_VERIFY_EXPIRED)
        pw_verifier_expired(vf, token, v);
    else if (v->outcome == PW_VERIFY_REVOKED || v->outcome == PW_VERIFY_WRONG_USER ||
             v->outcome == PW_VERIFY_MISSING_SCOPE)
        pw_accounts_mark(ctx, NULL, account_id, (*token)->fence, &v->err);
}

/* Verifies one claimed account and records what it found. */
static void pw_verifier_account(pw_verifier_t *vf, const char *account_id)
{
    pw_ctx_t *ctx = vf->ctx;
    pw_token_t *token = NULL;
    char errstr[400];
    pw_ts_status_t st = pw_token_store_get(ctx->tokens, account_id, &token, errstr, sizeof(errstr));
    if (st == PW_TS_NOT_FOUND) { /* deleted: nothing to verify any more */
        const char *argv[] = {"ZREM", PW_KEY_VERIFY_DUE, account_id};
        redisReply *r = pw_redis_command(ctx->redis, errstr, sizeof(errstr), 3, argv);
        if (r)
            freeReplyObject(r);
    }
    if (st != PW_TS_OK) /* unreadable: the sweep marks it; Redis away: next interval */
        return;
    pw_verification_t v;
    pw_token_verify(vf->http, ctx->conf->threads_api_base_url, token->user_id, token->access_token,
                    token->scopes, &v);
    pw_metrics_verification(v.outcome);
    pw_quota_note(ctx->redis, account_id, &v.quota);
    int64_t now_ms = pw_now_ms(), interval = ctx->conf->token_verify_interval_s;
    int64_t due =
        now_ms / 1000 + (v.outcome == PW_VERIFY_UNREACHABLE && interval > PW_VERIFY_RETRY_S
                             ? PW_VERIFY_RETRY_S
                             : interval);
    if (pw_token_store_note_verification(ctx->tokens, account_id, token->fence,
                                         pw_verify_outcome_name(v.outcome), v.message, now_ms, due,
                                         errstr, sizeof(errstr)) != PW_TS_OK)
        pw_log_warn("verification not recorded", PW_F_STR("account_id", account_id),
                    PW_F_STR("error", errstr));
    if (v.outcome != PW_VERIFY_OK)
        pw_verifier_log(account_id, &v);
    if (v.outcome != PW_VERIFY_OK && v.outcome != PW_VERIFY_UNREACHABLE)
        pw_verifier_act(vf, &token, &v);
    pw_token_destroy(token);
}

/* Claims and verifies what is due now; returns how long to wait before the
 * next round (ms). */
static long pw_verifier_round(pw_verifier_t *vf)
{
    pw_ctx_t *ctx = vf->ctx;
    long long now_s = pw_now_ms() / 1000;
    pw_key_t k_rate = pw_key_verify_rate(now_s);
    char now[32], interval[32], budget[32], most[32], errstr[256];
    snprintf(now, sizeof(now), "%lld", now_s);
    snprintf(interval, sizeof(interval), "%ld", ctx->conf->token_verify_interval_s);
    snprintf(budget, sizeof(budget), "%ld", ctx->conf->token_verify_max_per_s);
    snprintf(most, sizeof(most), "%d", PW_VERIFY_CLAIM_MAX);
    const char *keys[] = {PW_KEY_VERIFY_DUE, k_rate.s};
    const char *args[] = {now, interval, budget, most};
    redisReply *r = pw_redis_eval(ctx->redis, &pw_verify_claim_script, 2, keys, 4, args, errstr,
                                  sizeof(errstr));
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
        if (r)
            freeReplyObject(r);
        return 5000; /* Redis away: readiness says so; try again soon */
    }
    long long verdict = r->element[0]->integer;
    for (size_t i = 1; i < r->elements && !pw_ctx_draining(ctx); i++)
        pw_verifier_account(vf, r->element[i]->str);
    freeReplyObject(r);
    if (verdict == 0) { /* nobody is overdue: the fleet is verified */
        pw_census_note_success(ctx, "verify_ok_ms");
        return 5000;
    }
    return verdict == 2 ? 1000 - pw_now_ms() % 1000 : 0;
}

static void *pw_verifier_thread(void *arg)
{
    pw_verifier_t *vf = arg;
    long delay = 1000 + random() % 4000; /* replicas started together spread */
    while (pw_ctx_sleep(vf->ctx, delay))
        delay = pw_verifier_round(vf);
    return NULL;
}

pw_verifier_t *pw_verifier_new(pw_ctx_t *ctx)
{
    if (ctx->conf->token_verify_interval_s <= 0)
        return NULL;
    pw_verifier_t *vf = pw_calloc(1, sizeof(*vf));
    vf->ctx = ctx;
    vf->http = pw_http_new(ctx->conf->http_connect_timeout_ms, ctx->conf->http_timeout_ms);
    if (pthread_create(&vf->thread, NULL, pw_verifier_thread, vf) != 0)
        pw_abort("cannot start the verification thread (pthread_create)");
    return vf;
}

void pw_verifier_destroy(pw_verifier_t *vf)
{
    if (!vf)
        return;
    pthread_join(vf->thread, NULL);
    pw_http_destroy(vf->http);
    free(vf);
}
