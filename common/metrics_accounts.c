/* Account-state metrics (metrics_accounts.h). */
#include "metrics_accounts.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const pw_ma_states[] = {"active", "reconnect_required", "quota_wait"};
_Static_assert(PW_ARRAY_SIZE(pw_ma_states) == PW_CENSUS_STATES, "a name per state");

const char *pw_census_state_name(pw_census_state_t state)
{
    return pw_ma_states[state];
}

static struct {
    pthread_mutex_t lock;
    pw_census_t census;
    atomic_long verifications[PW_VERIFY_COUNT];
    atomic_long quota_waits;
} pw_ma = {.lock = PTHREAD_MUTEX_INITIALIZER};

void pw_metrics_set_census(const pw_census_t *census)
{
    pthread_mutex_lock(&pw_ma.lock);
    pw_ma.census = *census;
    pthread_mutex_unlock(&pw_ma.lock);
}

void pw_metrics_verification(pw_verify_outcome_t outcome)
{
    if (outcome >= 0 && outcome < PW_VERIFY_COUNT)
        atomic_fetch_add(&pw_ma.verifications[outcome], 1);
}

void pw_metrics_quota_wait(void)
{
    atomic_fetch_add(&pw_ma.quota_waits, 1);
}

/* Appends to a growing string; *text is NULL at first. */
static void pw_ma_printf(char **text, size_t *len, const char *fmt, ...) PW_PRINTF(3, 4);
static void pw_ma_printf(char **text, size_t *len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    *text = pw_realloc(*text, *len + (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(*text + *len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    *len += (size_t)n;
}

#define PW_MA_HEAD(t, l, name, type, help)                                                         \
    pw_ma_printf(t, l, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type)

/* A timestamp gauge (ms in, seconds out); absent while ms is 0 (never). */
static void pw_ma_time(char **t, size_t *l, const char *name, const char *help, int64_t ms)
{
    if (!ms)
        return;
    PW_MA_HEAD(t, l, name, "gauge", help);
    pw_ma_printf(t, l, "%s %.3f\n", name, (double)ms / 1000);
}

/* The census's gauges; none before the first census (absent, not zero). */
static void pw_ma_census(char **t, size_t *l, const pw_census_t *c)
{
    if (c->taken_ms) {
        PW_MA_HEAD(t, l, "publish_worker_accounts", "gauge",
                   "Accounts by state, fleet-wide (aggregate with max).");
        for (int i = 0; i < PW_CENSUS_STATES; i++)
            pw_ma_printf(t, l, "publish_worker_accounts{state=\"%s\"} %ld\n", pw_ma_states[i],
                         c->accounts[i]);
        PW_MA_HEAD(t, l, "publish_worker_parked_posts", "gauge",
                   "Posts parked across all accounts, fleet-wide.");
        pw_ma_printf(t, l, "publish_worker_parked_posts %ld\n", c->parked_posts);
        PW_MA_HEAD(t, l, "publish_worker_token_records", "gauge",
                   "Token records by the key id that seals them, fleet-wide.");
        for (int i = 0; i < c->key_count; i++)
            pw_ma_printf(t, l, "publish_worker_token_records{key_id=\"%s\"} %ld\n",
                         c->keys[i].key_id, c->keys[i].records);
        pw_ma_time(t, l, "publish_worker_census_timestamp_seconds",
                   "When the account census shown was taken.", c->taken_ms);
    }
    pw_ma_time(t, l, "publish_worker_token_earliest_expiry_timestamp_seconds",
               "The earliest expiry of an active account's token.", c->earliest_expiry_s * 1000);
    pw_ma_time(t, l, "publish_worker_sweep_last_success_timestamp_seconds",
               "When a worker last completed a refresh sweep.", c->sweep_ok_ms);
    pw_ma_time(t, l, "publish_worker_verification_last_success_timestamp_seconds",
               "When a worker last completed a verification pass.", c->verify_ok_ms);
}

char *pw_metrics_accounts_text(void)
{
    char *t = NULL;
    size_t l = 0;
    pthread_mutex_lock(&pw_ma.lock);
    pw_census_t c = pw_ma.census;
    pthread_mutex_unlock(&pw_ma.lock);
    pw_ma_census(&t, &l, &c);
    PW_MA_HEAD(&t, &l, "publish_worker_token_verifications_total", "counter",
               "Token verifications against the API by outcome.");
    for (int i = 0; i < PW_VERIFY_COUNT; i++)
        pw_ma_printf(&t, &l, "publish_worker_token_verifications_total{outcome=\"%s\"} %ld\n",
                     pw_verify_outcome_name((pw_verify_outcome_t)i),
                     atomic_load(&pw_ma.verifications[i]));
    PW_MA_HEAD(&t, &l, "publish_worker_quota_waits_total", "counter",
               "Posts that waited for the account's publishing quota.");
    pw_ma_printf(&t, &l, "publish_worker_quota_waits_total %ld\n", atomic_load(&pw_ma.quota_waits));
    return t;
}
