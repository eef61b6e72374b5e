/* Token refresh: lock, fence, platform call, fenced write, release. */
#include "token_refresh.h"

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fiber.h"
#include "keys.h"
#include "log.h"
#include "metrics.h"

#define PW_REFRESH_WAIT_MS 20000
#define PW_REFRESH_HTTP_TIMEOUT_MS 10000 /* well under PW_REFRESH_LOCK_TTL_MS */

/* KEYS: lock, fence. ARGV: owner, ttl_ms. Returns the fence, or 0 if taken. */
static pw_redis_script_t pw_lock_acquire_script = {
    .source = "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then\n"
              "  return redis.call('INCR', KEYS[2])\n"
              "end\n"
              "return 0\n",
};

/* KEYS: lock. ARGV: owner. Deletes the lock only if we still hold it. */
static pw_redis_script_t pw_lock_release_script = {
    .source = "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
              "  return redis.call('DEL', KEYS[1])\n"
              "end\n"
              "return 0\n",
};

bool pw_token_refresh_due(const pw_token_t *token, long ahead_s, int64_t now_s)
{
    int64_t lifetime = token->expires_at - token->issued_at;
    int64_t threshold = lifetime / 2 < ahead_s ? lifetime / 2 : ahead_s;
    return token->expires_at - now_s < threshold;
}

bool pw_token_refresh_allowed(const pw_token_t *token, int64_t now_s)
{
    if (token->refresh_method == PW_REFRESH_OAUTH2)
        return token->refresh_token != NULL;
    return now_s - token->issued_at >= PW_THREADS_MIN_AGE_S && now_s < token->expires_at;
}

int pw_token_refresh_parse(const char *body, pw_secret_t **access, pw_secret_t **refresh,
                           long *expires_in)
{
    *access = *refresh = NULL;
    cJSON *root = body ? cJSON_Parse(body) : NULL;
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(root, "access_token");
    const cJSON *rt = cJSON_GetObjectItemCaseSensitive(root, "refresh_token");
    const cJSON *ei = cJSON_GetObjectItemCaseSensitive(root, "expires_in");
    /* Under a second would store a token that expired as it came (cast to
     * 0); any number over the cap (1e300, inf) is as good as the cap, and a
     * cast of it would be undefined. */
    int ok = cJSON_IsString(at) && at->valuestring[0] && cJSON_IsNumber(ei) && ei->valuedouble >= 1;
    if (ok) {
        *access = pw_secret_new(at->valuestring, strlen(at->valuestring));
        if (cJSON_IsString(rt) && rt->valuestring[0])
            *refresh = pw_secret_new(rt->valuestring, strlen(rt->valuestring));
        *expires_in =
            ei->valuedouble < PW_EXPIRES_IN_MAX_S ? (long)ei->valuedouble : PW_EXPIRES_IN_MAX_S;
    }
    cJSON_Delete(root);
    return ok ? 0 : -1;
}

#define PW_EP_OAUTH2 "POST {OAUTH2_TOKEN_URL}"

/* Sends the method's refresh request; resp is the caller's to clear. */
static int pw_refresh_request(const pw_config_t *conf, pw_http_t *http, const pw_token_t *cur,
                              pw_http_response_t *resp)
{
    /* Well under the lock's lifetime: a slow platform must not outlive it. */
    long saved_timeout = pw_http_set_timeout(http, PW_REFRESH_HTTP_TIMEOUT_MS);
    int64_t t0 = pw_mono_ms();
    int rc;
    if (cur->refresh_method == PW_REFRESH_OAUTH2) {
        const pw_http_param_t params[] = {
            {"grant_type", "refresh_token"},
            {"refresh_token", pw_secret_reveal(cur->refresh_token)},
        };
        rc = pw_http_post_form(http, conf->oauth2_token_url, params, PW_ARRAY_SIZE(params),
                               conf->oauth2_client_id, conf->oauth2_client_secret, resp);
    } else {
        char *url = pw_asprintf("%s/refresh_access_token", conf->threads_api_base_url);
        const pw_http_param_t params[] = {
            {"grant_type", "th_refresh_token"},
            {"access_token", pw_secret_reveal(cur->access_token)},
        };
        rc = pw_http_get(http, url, params, PW_ARRAY_SIZE(params), resp);
        free(url);
    }
    pw_http_set_timeout(http, saved_timeout);
    pw_metrics_api_call(cur->refresh_method == PW_REFRESH_OAUTH2 ? PW_EPM_OAUTH2 : PW_EPM_REFRESH,
                        resp->status, (double)(pw_mono_ms() - t0) / 1000);
    return rc;
}

/* Classifies a failed refresh call. The platform's text may quote what it
 * refused: every secret of the call is redacted from the body before any of
 * it is cut to fit err->message (a cut through a secret would leave a piece
 * no later redaction finds), and from the transport error's text. */
static void pw_refresh_classify(const pw_config_t *conf, const pw_token_t *cur,
                                const char *endpoint, long status, const pw_http_response_t *resp,
                                pw_api_error_t *err)
{
    const pw_secret_t *secrets[] = {cur->access_token, cur->refresh_token,
                                    conf->oauth2_client_secret};
    char *body = resp->body ? pw_strdup(resp->body) : NULL;
    for (size_t i = 0; body && i < PW_ARRAY_SIZE(secrets); i++) {
        char *redacted = pw_secret_redact_dup(secrets[i], body);
        OPENSSL_cleanse(body, strlen(body)); /* may still hold the secrets after this one */
        free(body);
        body = redacted;
    }
    if (cur->refresh_method == PW_REFRESH_OAUTH2)
        pw_api_error_classify_oauth2(endpoint, status, body, resp->www_authenticate, resp->error,
                                     err);
    else
        pw_api_error_classify(endpoint, status, body, resp->retry_after_ms, resp->error, err);
    free(body);
    for (size_t i = 0; i < PW_ARRAY_SIZE(secrets); i++)
        pw_secret_redact(secrets[i], err->message, sizeof(err->message));
}

/* The failure of a refresh request, with nothing it refused quoted back. */
static pw_rf_status_t pw_refresh_failed(const pw_config_t *conf, const pw_token_t *cur, int rc,
                                        const pw_http_response_t *resp, pw_api_error_t *err)
{
    const char *endpoint = cur->refresh_method == PW_REFRESH_OAUTH2 ? PW_EP_OAUTH2 : PW_EP_REFRESH;
    long status = rc == 0 ? resp->status : 0;
    if (status == 200)
        pw_api_error_make(err, endpoint, PW_EC_TRANSIENT, PW_AUTH_NONE, true, 200,
                          "token endpoint answered 200 without a usable access_token/expires_in");
    else
        pw_refresh_classify(conf, cur, endpoint, status, resp, err);
    return err->cls == PW_EC_AUTH || err->cls == PW_EC_PERMISSION ? PW_RF_TERMINAL
                                                                  : PW_RF_TRANSIENT;
}

/* Calls the account's refresh method; on success fills next's secrets and times. */
static pw_rf_status_t pw_refresh_call(pw_refresher_t *rf, pw_http_t *http, const pw_token_t *cur,
                                      pw_token_t *next, pw_api_error_t *err)
{
    const pw_config_t *conf = rf->conf;
    if (cur->refresh_method == PW_REFRESH_OAUTH2 && !cur->refresh_token) {
        pw_api_error_make(err, PW_EP_OAUTH2, PW_EC_INVALID_REQUEST, PW_AUTH_NONE, false, -1,
                          "no refresh token");
        return PW_RF_TERMINAL;
    }
    if (cur->refresh_method == PW_REFRESH_OAUTH2 && !conf->oauth2_token_url) {
        /* The fleet's configuration, not this account's. */
        pw_api_error_config(err, PW_EP_OAUTH2,
                            "OAUTH2_TOKEN_URL is not set: set it (with OAUTH2_CLIENT_ID and "
                            "OAUTH2_CLIENT_SECRET) for accounts refreshed by the oauth2 method");
        return PW_RF_TRANSIENT;
    }
    pw_http_response_t resp;
    int rc = pw_refresh_request(conf, http, cur, &resp);
    long expires_in = 0;
    pw_rf_status_t st = PW_RF_REFRESHED;
    if (rc == 0 && resp.status == 200 &&
        pw_token_refresh_parse(resp.body, &next->access_token, &next->refresh_token, &expires_in) ==
            0) {
        if (!next->refresh_token && cur->refresh_token)
            next->refresh_token = pw_secret_dup(cur->refresh_token); /* not rotated: keep */
        next->issued_at = pw_now_ms() / 1000;
        next->expires_at = next->issued_at + expires_in;
    } else {
        st = pw_refresh_failed(conf, cur, rc, &resp, err);
    }
    pw_http_response_clear(&resp);
    return st;
}

int64_t pw_refresh_lock_acquire(pw_redis_t *redis, const char *account_id, const char *owner,
                                int ttl_ms)
{
    pw_key_t lock = pw_key_refresh_lock(account_id), fence = pw_key_fence(account_id);
    char ttl[16], errstr[256];
    snprintf(ttl, sizeof(ttl), "%d", ttl_ms);
    const char *keys[] = {lock.s, fence.s};
    const char *args[] = {owner, ttl};
    redisReply *reply =
        pw_redis_eval(redis, &pw_lock_acquire_script, 2, keys, 2, args, errstr, sizeof(errstr));
    if (!reply) {
        pw_log_warn("refresh lock unavailable", PW_F_STR("account_id", account_id),
                    PW_F_STR("error", errstr));
        return -1;
    }
    int64_t n = reply->integer;
    freeReplyObject(reply);
    return n;
}

int pw_refresh_lock_release(pw_redis_t *redis, const char *account_id, const char *owner)
{
    pw_key_t lock = pw_key_refresh_lock(account_id);
    char errstr[256];
    const char *keys[] = {lock.s};
    const char *args[] = {owner};
    redisReply *reply =
        pw_redis_eval(redis, &pw_lock_release_script, 1, keys, 1, args, errstr, sizeof(errstr));
    if (!reply)
        return -1;
    int released = reply->integer == 1;
    freeReplyObject(reply);
    return released;
}

/* The stored token, if it is no longer the one the caller used. */
static bool pw_refresh_changed(const pw_token_t *stored, const pw_token_t *used)
{
    return stored->fence != used->fence ||
           !pw_secret_equal(stored->access_token, used->access_token);
}

/* A threads token that may not be refreshed now: too young, or expired. */
static pw_rf_status_t pw_refresh_refused(const pw_token_t *cur, int64_t now_s, pw_api_error_t *err)
{
    bool expired = now_s >= cur->expires_at;
    if (expired)
        pw_api_error_make(err, PW_EP_REFRESH, PW_EC_AUTH, PW_AUTH_EXPIRED, false, -1,
                          "token expired: it can no longer be refreshed");
    else
        pw_api_error_make(err, PW_EP_REFRESH, PW_EC_TRANSIENT, PW_AUTH_NONE, true, -1,
                          "token is younger than 24 hours: not refreshable yet");
    return expired ? PW_RF_TERMINAL : PW_RF_NOT_ALLOWED;
}

/* Moves next's new secrets and times into cur: what was stored, in hand. */
static void pw_refresh_adopt(pw_token_t *cur, pw_token_t *next, int64_t fence)
{
    pw_secret_destroy(cur->access_token);
    pw_secret_destroy(cur->refresh_token);
    cur->access_token = next->access_token;
    cur->refresh_token = next->refresh_token;
    next->access_token = next->refresh_token = NULL;
    cur->issued_at = next->issued_at;
    cur->expires_at = next->expires_at;
    cur->updated_at_ms = pw_now_ms();
    cur->fence = fence;
    free(cur->key_id); /* whichever primary key sealed it now */
    cur->key_id = NULL;
}

/* Stores a refreshed token under the lock. A rotated refresh token exists
 * only in our hands now: a failed write is retried while the lock is ours
 * rather than lose it. On success cur becomes the stored token. */
static pw_rf_status_t pw_refresh_store(pw_refresher_t *rf, pw_token_t *cur, pw_token_t *next,
                                       int64_t fence, pw_token_t **out, pw_api_error_t *err)
{
    char errstr[512];
    pw_ts_status_t ws = PW_TS_ERROR;
    for (int tries = 0; tries < 5 && ws == PW_TS_ERROR; tries++) {
        if (tries)
            pw_sleep_ms(200);
        ws = pw_token_store_write_fenced(rf->tokens, next, fence, errstr, sizeof(errstr));
    }
    if (ws == PW_TS_OK) {
        pw_refresh_adopt(cur, next, fence);
        return PW_RF_REFRESHED;
    }
    if (ws == PW_TS_ERROR) {
        pw_log_error("refreshed token could not be stored", PW_F_STR("account_id", cur->account_id),
                     PW_F_STR("error", errstr));
        pw_api_error_make(err, "redis", PW_EC_TRANSIENT, PW_AUTH_NONE, true, -1, "%s", errstr);
        return PW_RF_TRANSIENT;
    }
    /* A newer write won (a token put): ours is stale, theirs stands. */
    pw_log_warn("refreshed token not stored", PW_F_STR("account_id", cur->account_id),
                PW_F_STR("error", errstr));
    return pw_token_store_get(rf->tokens, cur->account_id, out, errstr, sizeof(errstr)) == PW_TS_OK
               ? PW_RF_BY_OTHER
               : PW_RF_TRANSIENT;
}

/* As lock holder: re-read, call the platform, write fenced. */
static pw_rf_status_t pw_refresh_as_holder(pw_refresher_t *rf, pw_http_t *http,
                                           const pw_token_t *used, bool force, int64_t fence,
                                           pw_token_t **out, pw_api_error_t *err)
{
    char errstr[512];
    pw_token_t *cur = NULL;
    if (pw_token_store_get(rf->tokens, used->account_id, &cur, errstr, sizeof(errstr)) !=
        PW_TS_OK) {
        pw_api_error_make(err, "redis", PW_EC_TRANSIENT, PW_AUTH_NONE, true, -1, "%s", errstr);
        return PW_RF_TRANSIENT;
    }
    int64_t now_s = pw_now_ms() / 1000;
    if (pw_refresh_changed(cur, used) &&
        (force || !pw_token_refresh_due(cur, rf->conf->token_refresh_ahead_s, now_s))) {
        *out = cur; /* refreshed (or put) by someone else while we waited for the lock */
        return PW_RF_BY_OTHER;
    }
    pw_rf_status_t st;
    if (cur->refresh_method == PW_REFRESH_THREADS && !pw_token_refresh_allowed(cur, now_s)) {
        st = pw_refresh_refused(cur, now_s, err);
    } else {
        pw_token_t next = *cur;
        next.access_token = next.refresh_token = NULL;
        st = pw_refresh_call(rf, http, cur, &next, err);
        if (st == PW_RF_REFRESHED &&
            (st = pw_refresh_store(rf, cur, &next, fence, out, err)) == PW_RF_REFRESHED) {
            *out = cur;
            cur = NULL;
        }
        pw_secret_destroy(next.access_token);
        pw_secret_destroy(next.refresh_token);
    }
    pw_token_destroy(cur);
    return st;
}

pw_rf_status_t pw_token_refresh(pw_refresher_t *rf, pw_http_t *http, const pw_token_t *used,
                                bool force, pw_token_t **out, pw_api_error_t *err)
{
    unsigned char raw[8];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        pw_abort("RAND_bytes failed: no randomness for a lock owner");
    char owner[200];
    snprintf(owner, sizeof(owner), "%s/%02x%02x%02x%02x%02x%02x%02x%02x", rf->conf->worker_id,
             raw[0], raw[1], raw[2], raw[3], raw[4], raw[5], raw[6], raw[7]);
    memset(err, 0, sizeof(*err));
    *out = NULL;
    int64_t deadline = pw_mono_ms() + PW_REFRESH_WAIT_MS;
    bool waited = false;
    for (;;) {
        int64_t fence =
            pw_refresh_lock_acquire(rf->redis, used->account_id, owner, PW_REFRESH_LOCK_TTL_MS);
        if (fence > 0) {
            pw_rf_status_t st = pw_refresh_as_holder(rf, http, used, force, fence, out, err);
            (void)pw_refresh_lock_release(rf->redis, used->account_id, owner);
            return st;
        }
        /* Someone else refreshes: wait for their token instead of calling. */
        if (fence == 0 && !waited) {
            pw_metrics_lock_wait();
            waited = true;
        }
        char errstr[256];
        char *status = NULL;
        if (pw_token_store_get_status(rf->tokens, used->account_id, &status, errstr,
                                      sizeof(errstr)) == PW_TS_OK &&
            status && strcmp(status, "reconnect_required") == 0) {
            free(status);
            pw_api_error_make(err, PW_EP_REFRESH, PW_EC_AUTH, PW_AUTH_REVOKED, false, -1,
                              "account must be reconnected");
            return PW_RF_TERMINAL; /* the holder failed for good: don't try again */
        }
        free(status);
        pw_token_t *cur = NULL;
        if (fence == 0 && pw_token_store_get(rf->tokens, used->account_id, &cur, errstr,
                                             sizeof(errstr)) == PW_TS_OK) {
            if (pw_refresh_changed(cur, used)) {
                *out = cur;
                return PW_RF_BY_OTHER;
            }
            pw_token_destroy(cur);
        }
        if (pw_mono_ms() >= deadline || pw_waits_cancelled()) {
            pw_api_error_make(err, "refresh lock", PW_EC_TRANSIENT, PW_AUTH_NONE, true, -1,
                              "timed out waiting for the refresh of another worker");
            return PW_RF_TRANSIENT;
        }
        pw_sleep_ms(100);
    }
}
