/* Sweep: proactive token refresh and replay of parked posts. */
#include "sweep.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accounts.h"
#include "census.h"
#include "keys.h"
#include "log.h"
#include "output.h"
#include "publish.h"

#define PW_SWEEP_BATCH "500"
#define PW_DAY_S 86400

struct pw_sweep_s {
    pw_ctx_t *ctx;
    pw_http_t *http;
    pthread_t thread;
};

/* KEYS: expiry index, token. ARGV: account, fencing number seen (0: no
 * token), new score ("" drops it). Moves (or drops) the account's entry
 * unless a newer token was stored since (which indexed itself again). */
static pw_redis_script_t pw_reindex_script = {
    .source = "if tonumber(redis.call('HGET', KEYS[2], 'fence') or '0') ~= tonumber(ARGV[2])"
              " then return 0 end\n"
              "if ARGV[3] == '' then return redis.call('ZREM', KEYS[1], ARGV[1]) end\n"
              "return redis.call('ZADD', KEYS[1], 'XX', ARGV[3], ARGV[1])\n",
};

/* The index orders accounts by when the sweep should look at them again:
 * expires_at as stored, minus TOKEN_REFRESH_AHEAD_S at look-up. Moving an
 * account it can do nothing for yet out of the first batch keeps a few such
 * accounts from crowding out the ones that are due; one only a token put can
 * help (gone, marked, expired, unreadable) leaves it (look_at_s 0). */
static void pw_sweep_reindex(pw_sweep_t *sweep, const char *account_id, int64_t fence,
                             int64_t look_at_s)
{
    pw_key_t k_token = pw_key_token(account_id);
    char seen[32], score[32] = "", errstr[256];
    snprintf(seen, sizeof(seen), "%lld", (long long)fence);
    if (look_at_s > 0)
        snprintf(score, sizeof(score), "%lld",
                 (long long)(look_at_s + sweep->ctx->conf->token_refresh_ahead_s));
    const char *keys[] = {PW_KEY_TOKEN_EXPIRY, k_token.s};
    const char *args[] = {account_id, seen, score};
    redisReply *reply = pw_redis_eval(sweep->ctx->redis, &pw_reindex_script, 2, keys, 3, args,
                                      errstr, sizeof(errstr));
    if (reply)
        freeReplyObject(reply);
}

static void pw_sweep_expiring_alert(pw_sweep_t *sweep, const pw_token_t *token, const char *why)
{
    int64_t left = token->expires_at - pw_now_ms() / 1000;
    if (left > PW_DAY_S)
        return;
    char message[256];
    snprintf(message, sizeof(message), "token expires in %llds and %s",
             (long long)(left > 0 ? left : 0), why);
    pw_output_alert(sweep->ctx, NULL, "token_expiring", token->account_id, NULL, message, 0);
}

/* A stored record the key ring cannot open: only a token put (or the old
 * key back in the ring) helps, so the account is marked and alerted once. */
static void pw_sweep_unreadable(pw_sweep_t *sweep, const char *account_id, const char *why)
{
    int64_t fence = 0;
    char errstr[256];
    if (pw_token_store_get_fence(sweep->ctx->tokens, account_id, &fence, errstr, sizeof(errstr)) !=
        PW_TS_OK)
        return;
    pw_api_error_t err;
    pw_api_error_make(&err, PW_EP_REFRESH, PW_EC_AUTH, PW_AUTH_INVALID_TOKEN, false, -1,
                      "account has no usable token: %s", why);
    pw_log_error("account has no usable token: reconnect it with token put",
                 PW_F_STR("account_id", account_id), PW_F_STR("error", why));
    pw_accounts_mark(sweep->ctx, NULL, account_id, fence, &err);
    pw_sweep_reindex(sweep, account_id, fence, 0);
}

/* Reads the account's token and whether it is active; false when there is
 * nothing to refresh now (gone, unreadable, or Redis is away). */
static bool pw_sweep_read(pw_sweep_t *sweep, const char *account_id, pw_token_t **token,
                          bool *active)
{
    char errstr[400];
    char *status = NULL;
    pw_ts_status_t st =
        pw_token_store_get(sweep->ctx->tokens, account_id, token, errstr, sizeof(errstr));
    if (st == PW_TS_NOT_FOUND)
        pw_sweep_reindex(sweep, account_id, 0, 0);
    if (st == PW_TS_UNREADABLE)
        pw_sweep_unreadable(sweep, account_id, errstr);
    if (st != PW_TS_OK || pw_token_store_get_status(sweep->ctx->tokens, account_id, &status, errstr,
                                                    sizeof(errstr)) != PW_TS_OK) {
        pw_token_destroy(*token);
        *token = NULL;
        return false;
    }
    *active = !status || strcmp(status, "active") == 0;
    free(status);
    return true;
}

/* A token that can never be refreshed (expired, threads method): an idle
 * account must hear of it before its next post parks. */
static void pw_sweep_expired(pw_sweep_t *sweep, const pw_token_t *token)
{
    pw_api_error_t err;
    pw_api_error_make(&err, PW_EP_REFRESH, PW_EC_AUTH, PW_AUTH_EXPIRED, false, -1,
                      "token expired and can no longer be refreshed");
    pw_accounts_mark(sweep->ctx, NULL, token->account_id, token->fence, &err);
    pw_sweep_reindex(sweep, token->account_id, token->fence, 0);
}

/* Refreshes a due token; a failure that may mend looks again later. */
static void pw_sweep_refresh(pw_sweep_t *sweep, pw_token_t **token)
{
    const char *account_id = (*token)->account_id;
    int64_t fence = (*token)->fence;
    pw_api_error_t err;
    pw_rf_status_t rf = pw_publish_refresh(sweep->ctx, sweep->http, NULL, token, false, &err);
    if (rf == PW_RF_TERMINAL)
        pw_accounts_mark(sweep->ctx, NULL, account_id, fence, &err);
    /* A refused OAuth2 client is the fleet's: its one alert says it all. */
    bool failed = rf == PW_RF_TERMINAL || rf == PW_RF_TRANSIENT || rf == PW_RF_NOT_ALLOWED;
    if (failed && !err.config_error)
        pw_sweep_expiring_alert(sweep, *token, "its refresh failed");
    /* Tried again at the next pass, but behind the accounts due by then: a
     * few that keep failing cannot take every pass's first batch. */
    if (rf == PW_RF_TRANSIENT || rf == PW_RF_NOT_ALLOWED)
        pw_sweep_reindex(sweep, account_id, fence,
                         pw_now_ms() / 1000 + sweep->ctx->conf->token_sweep_interval_s);
}

/* One account from the expiry index. */
static void pw_sweep_account(pw_sweep_t *sweep, const char *account_id)
{
    pw_ctx_t *ctx = sweep->ctx;
    pw_token_t *token = NULL;
    bool active = false;
    if (!pw_sweep_read(sweep, account_id, &token, &active))
        return;
    int64_t now_s = pw_now_ms() / 1000;
    bool expired = now_s >= token->expires_at;
    if (!active) {
        pw_sweep_reindex(sweep, account_id, token->fence, 0); /* only a token put helps */
    } else if (expired && !pw_token_refresh_allowed(token, now_s)) {
        pw_sweep_expired(sweep, token);
    } else if (!pw_token_refresh_allowed(token, now_s)) {
        /* Too young to refresh: warn while there is time to reconnect by
         * hand, and look again once it may be refreshed. */
        pw_sweep_expiring_alert(sweep, token, "cannot be refreshed before it is 24 hours old");
        pw_sweep_reindex(sweep, account_id, token->fence, token->issued_at + PW_THREADS_MIN_AGE_S);
    } else if (pw_token_refresh_due(token, ctx->conf->token_refresh_ahead_s, now_s)) {
        pw_sweep_refresh(sweep, &token);
    } else {
        /* Indexed by expiry but due later (half its lifetime comes first):
         * look again then, not at every pass. */
        int64_t lifetime = token->expires_at - token->issued_at;
        int64_t ahead = ctx->conf->token_refresh_ahead_s;
        pw_sweep_reindex(sweep, account_id, token->fence,
                         token->expires_at - (lifetime / 2 < ahead ? lifetime / 2 : ahead));
    }
    pw_token_destroy(token);
}

static redisReply *pw_sweep_list(pw_sweep_t *sweep, int argc, const char **argv)
{
    char errstr[512];
    redisReply *reply = pw_redis_command(sweep->ctx->redis, errstr, sizeof(errstr), argc, argv);
    if (!reply)
        pw_log_warn("sweep: redis failed", PW_F_STR("error", errstr));
    else if (reply->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(reply);
        reply = NULL;
    }
    return reply;
}

/* Due tokens refreshed, lost alerts raised again, parked posts of active
 * accounts replayed; then the census. */
static void pw_sweep_pass(pw_sweep_t *sweep)
{
    const pw_config_t *conf = sweep->ctx->conf;
    char horizon[32];
    snprintf(horizon, sizeof(horizon), "%lld",
             (long long)(pw_now_ms() / 1000 + conf->token_refresh_ahead_s));
    const char *zargv[] = {"ZRANGEBYSCORE", PW_KEY_TOKEN_EXPIRY, "-inf", horizon, "LIMIT", "0",
                           PW_SWEEP_BATCH};
    redisReply *due = pw_sweep_list(sweep, 7, zargv);
    bool read = due != NULL;
    for (size_t i = 0; due && i < due->elements && !pw_ctx_draining(sweep->ctx); i++)
        pw_sweep_account(sweep, due->element[i]->str);
    if (due)
        freeReplyObject(due);

    pw_accounts_repair_alerts(sweep->ctx);

    /* pw_accounts_replay() replays only active accounts with parked posts. */
    const char *sargv[] = {"SMEMBERS", PW_KEY_PARKED_ACCOUNTS};
    redisReply *parked = pw_sweep_list(sweep, 2, sargv);
    for (size_t i = 0; parked && i < parked->elements && !pw_ctx_draining(sweep->ctx); i++)
        pw_accounts_replay(sweep->ctx, sweep->http, NULL, parked->element[i]->str);
    if (read && parked && !pw_ctx_draining(sweep->ctx))
        pw_census_note_success(sweep->ctx, "sweep_ok_ms");
    if (parked)
        freeReplyObject(parked);
    if (!pw_ctx_draining(sweep->ctx))
        pw_census_run(sweep->ctx);
}

static void *pw_sweep_thread(void *arg)
{
    pw_sweep_t *sweep = arg;
    long interval_ms = sweep->ctx->conf->token_sweep_interval_s * 1000;
    /* Spread the fleet: a random first delay, then jittered intervals. */
    long delay = random() % (interval_ms + 1);
    while (pw_ctx_sleep(sweep->ctx, delay)) {
        pw_sweep_pass(sweep);
        delay = interval_ms * 3 / 4 + random() % (interval_ms / 2 + 1);
    }
    return NULL;
}

pw_sweep_t *pw_sweep_new(pw_ctx_t *ctx)
{
    pw_sweep_t *sweep = pw_calloc(1, sizeof(*sweep));
    sweep->ctx = ctx;
    sweep->http = pw_http_new(ctx->conf->http_connect_timeout_ms, ctx->conf->http_timeout_ms);
    if (pthread_create(&sweep->thread, NULL, pw_sweep_thread, sweep) != 0)
        pw_abort("cannot start the sweep thread (pthread_create)");
    return sweep;
}

void pw_sweep_destroy(pw_sweep_t *sweep)
{
    if (!sweep)
        return;
    pthread_join(sweep->thread, NULL);
    pw_http_destroy(sweep->http);
    free(sweep);
}
