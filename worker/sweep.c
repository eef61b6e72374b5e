/* Sweep: proactive token refresh and replay of parked posts. */
#include "sweep.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "park.h"

#define PW_SWEEP_BATCH "500"
#define PW_DAY_S 86400

struct pw_sweep_s {
    pw_pipeline_t *p;
    pw_http_t *http;
    pthread_t thread;
    atomic_bool stop;
};

/* A waiting pass: the sweep stops with the worker. */
static bool pw_sweep_wait(pw_sweep_t *sweep, long ms)
{
    int64_t until = pw_mono_ms() + ms;
    while (!atomic_load(&sweep->stop)) {
        if (pw_mono_ms() >= until)
            return true;
        nanosleep(&(struct timespec){.tv_nsec = 50 * 1000000L}, NULL);
    }
    return false;
}

static void pw_sweep_expiring_alert(pw_sweep_t *sweep, const pw_token_t *token, const char *why)
{
    int64_t left = token->expires_at - pw_now_ms() / 1000;
    if (left > PW_DAY_S)
        return;
    char message[256];
    snprintf(message, sizeof(message), "token expires in %llds and %s",
             (long long)(left > 0 ? left : 0), why);
    pw_pipeline_alert(sweep->p, NULL, "token_expiring", token->account_id, NULL, message, 0);
}

/* One account from the expiry index. */
static void pw_sweep_account(pw_sweep_t *sweep, const char *account_id)
{
    pw_pipeline_t *p = sweep->p;
    char errstr[512];
    pw_account_t account = {0};
    char *status = NULL;
    pw_ts_status_t st =
        pw_token_store_get(p->tokens, account_id, &account.token, errstr, sizeof(errstr));
    if (st != PW_TS_OK ||
        pw_token_store_get_status(p->tokens, account_id, &status, errstr, sizeof(errstr)) !=
            PW_TS_OK ||
        (status && strcmp(status, "active") != 0)) {
        free(status);
        pw_park_account_clear(&account);
        return; /* gone, unreadable or waiting for a reconnect: nothing to refresh */
    }
    free(status);
    int64_t now_s = pw_now_ms() / 1000;
    /* Not refreshable (yet): warn while there is time to reconnect by hand. */
    if (!pw_token_refresh_allowed(account.token, now_s)) {
        pw_sweep_expiring_alert(sweep, account.token,
                                now_s >= account.token->expires_at
                                    ? "has expired"
                                    : "cannot be refreshed before it is 24 hours old");
        pw_park_account_clear(&account);
        return;
    }
    if (!pw_token_refresh_due(account.token, p->conf->token_refresh_ahead_s, now_s)) {
        pw_park_account_clear(&account);
        return;
    }
    pw_api_error_t err;
    pw_rf_status_t rf = pw_pipeline_refresh(p, sweep->http, NULL, &account, false, &err);
    if (rf == PW_RF_TERMINAL)
        pw_park_mark(p, NULL, account_id, account.token->fence, &err, pw_auth_kind_name(err.auth));
    if (rf == PW_RF_TERMINAL || rf == PW_RF_TRANSIENT || rf == PW_RF_NOT_ALLOWED)
        pw_sweep_expiring_alert(sweep, account.token, "its refresh failed");
    pw_park_account_clear(&account);
}

static redisReply *pw_sweep_list(pw_sweep_t *sweep, int argc, const char **argv)
{
    char errstr[512];
    redisReply *reply = pw_redis_command(sweep->p->redis, errstr, sizeof(errstr), argc, argv);
    if (!reply)
        pw_log_warn("sweep: redis failed", PW_F_STR("error", errstr));
    else if (reply->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(reply);
        reply = NULL;
    }
    return reply;
}

static void pw_sweep_pass(pw_sweep_t *sweep)
{
    const pw_config_t *conf = sweep->p->conf;
    char horizon[32];
    snprintf(horizon, sizeof(horizon), "%lld",
             (long long)(pw_now_ms() / 1000 + conf->token_refresh_ahead_s));
    const char *zargv[] = {"ZRANGEBYSCORE", "pw:token_expiry", "-inf", horizon, "LIMIT", "0",
                           PW_SWEEP_BATCH};
    redisReply *due = pw_sweep_list(sweep, 7, zargv);
    for (size_t i = 0; due && i < due->elements && !atomic_load(&sweep->stop); i++)
        pw_sweep_account(sweep, due->element[i]->str);
    if (due)
        freeReplyObject(due);

    const char *sargv[] = {"SMEMBERS", "pw:parked_accounts"};
    redisReply *parked = pw_sweep_list(sweep, 2, sargv);
    for (size_t i = 0; parked && i < parked->elements && !atomic_load(&sweep->stop); i++) {
        const char *account_id = parked->element[i]->str;
        char *status = NULL, errstr[256];
        if (pw_token_store_get_status(sweep->p->tokens, account_id, &status, errstr,
                                      sizeof(errstr)) == PW_TS_OK &&
            status && strcmp(status, "active") == 0)
            pw_park_replay(sweep->p, sweep->http, NULL, account_id);
        free(status);
    }
    if (parked)
        freeReplyObject(parked);
}

static void *pw_sweep_thread(void *arg)
{
    pw_sweep_t *sweep = arg;
    long interval_ms = sweep->p->conf->token_sweep_interval_s * 1000;
    /* Spread the fleet: a random first delay, then jittered intervals. */
    long delay = random() % (interval_ms + 1);
    while (pw_sweep_wait(sweep, delay)) {
        pw_sweep_pass(sweep);
        delay = interval_ms * 3 / 4 + random() % (interval_ms / 2 + 1);
    }
    return NULL;
}

pw_sweep_t *pw_sweep_new(pw_pipeline_t *p)
{
    pw_sweep_t *sweep = pw_calloc(1, sizeof(*sweep));
    sweep->p = p;
    sweep->http = pw_http_new(p->conf->http_connect_timeout_ms, p->conf->http_timeout_ms);
    if (pthread_create(&sweep->thread, NULL, pw_sweep_thread, sweep) != 0)
        abort();
    return sweep;
}

void pw_sweep_destroy(pw_sweep_t *sweep)
{
    if (!sweep)
        return;
    atomic_store(&sweep->stop, true);
    pthread_join(sweep->thread, NULL);
    pw_http_destroy(sweep->http);
    free(sweep);
}
