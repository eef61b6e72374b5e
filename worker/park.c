/* Parking: keep posts of disconnected accounts in order; replay them later. */
#include "park.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alerts.h"
#include "events.h"
#include "log.h"
#include "post_store.h"
#include "publish.h"

/* KEYS: parked, parked accounts set. ARGV: account. */
static pw_redis_script_t pw_untrack_script = {
    .source =
        "if redis.call('LLEN', KEYS[1]) == 0 then return redis.call('SREM', KEYS[2], ARGV[1]) end\n"
        "return 0\n",
};

/* KEYS: account, parked. ARGV: value, force. Parks the value if forced, if
 * the account is not active or if it already has parked posts; returns
 * {parked, reason}. Atomic, so a post either joins the back of the list or
 * finds it empty for good. Forced: the post failed for auth reasons just now,
 * even if a token put made the account active meanwhile (the sweep then
 * replays it). A value already parked is not parked again: a redelivered
 * message, or a retry after a reply was lost, must not be replayed twice. */
static pw_redis_script_t pw_park_if_needed_script = {
    .source = "local status = redis.call('HGET', KEYS[1], 'status')\n"
              "if ARGV[2] == '1' or (status and status ~= 'active') or"
              " redis.call('LLEN', KEYS[2]) > 0 then\n"
              "  if not redis.call('LPOS', KEYS[2], ARGV[1]) then\n"
              "    redis.call('RPUSH', KEYS[2], ARGV[1]) end\n"
              "  return {1, redis.call('HGET', KEYS[1], 'reason') or ''}\n"
              "end\n"
              "return {0, ''}\n",
};

/* KEYS: account, token. ARGV: reason, at_ms, fence of the token that failed
 * (0: none). Marks the account; 1 if it was not, 2 when a newer token was
 * stored meanwhile (a token put or another worker's refresh): that one has
 * not failed, so the account stays active. */
static pw_redis_script_t pw_mark_script = {
    .source = "if tonumber(redis.call('HGET', KEYS[2], 'fence') or '0') > tonumber(ARGV[3])"
              " then return 2 end\n"
              "if redis.call('HGET', KEYS[1], 'status') == 'reconnect_required' then return 0 end\n"
              "redis.call('HSET', KEYS[1], 'status', 'reconnect_required', 'reason', ARGV[1],"
              " 'at_ms', ARGV[2])\n"
              "return 1\n",
};

/* KEYS: parked. ARGV: value. Pops the head only if it is still value. */
static pw_redis_script_t pw_pop_if_head_script = {
    .source = "if redis.call('LINDEX', KEYS[1], 0) == ARGV[1] then\n"
              "  redis.call('LPOP', KEYS[1]) return 1 end\n"
              "return 0\n",
};

void pw_park_account_clear(pw_account_t *account)
{
    pw_token_destroy(account->token);
    account->token = NULL;
}

/* Runs a script until Redis answers or the worker stops. */
static redisReply *pw_park_eval(pw_pipeline_t *p, pw_redis_script_t *script, int nkeys,
                                const char **keys, int nargs, const char **args)
{
    char errstr[512];
    for (;;) {
        redisReply *reply =
            pw_redis_eval(p->redis, script, nkeys, keys, nargs, args, errstr, sizeof(errstr));
        if (reply)
            return reply;
        pw_log_warn("redis failed while parking; retrying", PW_F_STR("error", errstr));
        if (!pw_pipeline_sleep(p, 1000))
            return NULL;
    }
}

/* The set of accounts with parked posts, for the sweep's replay. */

static void pw_park_track(pw_pipeline_t *p, const char *account_id)
{
    char errstr[256];
    const char *argv[] = {"SADD", PW_PARKED_ACCOUNTS, account_id};
    redisReply *reply = pw_redis_command(p->redis, errstr, sizeof(errstr), 3, argv);
    if (reply)
        freeReplyObject(reply);
}

static const char *pw_park_class_of(const char *reason)
{
    return strcmp(reason, "missing_scope") == 0 ? "permission" : "auth";
}

/* Reads the account's token, retrying while Redis is away; token NULL when
 * there is none usable. Returns false when the worker is stopping. */
static bool pw_park_load_account(pw_pipeline_t *p, const pw_request_t *req, pw_account_t *account)
{
    memset(account, 0, sizeof(*account));
    char errstr[512];
    for (;;) {
        pw_ts_status_t st =
            pw_token_store_get(p->tokens, req->account_id, &account->token, errstr, sizeof(errstr));
        if (st == PW_TS_OK)
            break;
        if (st == PW_TS_NOT_FOUND || st == PW_TS_UNREADABLE) {
            /* Nothing to publish with: only a token put can help. */
            pw_log_warn("account has no usable token", PW_F_STR("account_id", req->account_id),
                        PW_F_STR("error", errstr));
            break;
        }
        pw_log_warn("redis failed reading token; retrying", PW_F_STR("error", errstr));
        if (!pw_pipeline_sleep(p, 1000))
            return false;
    }
    return true;
}

/* Answers parked: the class follows the reason (or err, when given). */
static void pw_park_answer_parked(pw_pipeline_t *p, pw_job_t *job, const pw_request_t *req,
                                  const char *stored_reason, const pw_api_error_t *err,
                                  int attempts, bool token_refreshed)
{
    const char *reason = err ? pw_auth_kind_name(err->auth) : stored_reason;
    char message[600];
    if (err)
        snprintf(message, sizeof(message), "%s", err->message);
    else
        snprintf(message, sizeof(message), "account must be reconnected (%s); post parked",
                 reason[0] ? reason : "earlier posts are parked");
    pw_result_error_t error = {pw_park_class_of(reason), -1, -1, -1, message};
    if (err) {
        pw_pipeline_error_of(err, &error);
        error.cls = pw_park_class_of(reason);
    }
    pw_result_t result = {.status = "parked",
                          .error = &error,
                          .attempts = attempts,
                          .token_refreshed = token_refreshed};
    pw_pipeline_result(p, job, req, &result);
    pw_park_track(p, req->account_id);
}

/* Parks if the account is marked or has parked posts; true unless stopping.
 * The parked result carries err (NULL: the account's stored reason). */
static bool pw_park_if_needed_as(pw_pipeline_t *p, pw_job_t *job, const pw_request_t *req,
                                 int *parked, const pw_api_error_t *err, int attempts,
                                 bool token_refreshed)
{
    const char *force = err ? "1" : "0"; /* an auth failure of this very post */
    char k_account[200], k_parked[200];
    pw_token_store_key(k_account, sizeof(k_account), req->account_id, "account");
    pw_token_store_key(k_parked, sizeof(k_parked), req->account_id, "parked");
    const char *keys[] = {k_account, k_parked};
    const char *args[] = {job->value, force};
    redisReply *reply = pw_park_eval(p, &pw_park_if_needed_script, 2, keys, 2, args);
    if (!reply)
        return false;
    *parked = (int)reply->element[0]->integer;
    if (*parked)
        pw_park_answer_parked(p, job, req, reply->element[1]->str, err, attempts, token_refreshed);
    freeReplyObject(reply);
    return true;
}

/* KEYS: token, account, parked, post record. ARGV: value. One round trip at
 * the start of every post: park it (as pw_park_if_needed_script), or return
 * the token and the post's record. */
static pw_redis_script_t pw_begin_script = {
    .source = "local status = redis.call('HGET', KEYS[2], 'status')\n"
              "if (status and status ~= 'active') or redis.call('LLEN', KEYS[3]) > 0 then\n"
              "  if not redis.call('LPOS', KEYS[3], ARGV[1]) then\n"
              "    redis.call('RPUSH', KEYS[3], ARGV[1]) end\n"
              "  return {1, redis.call('HGET', KEYS[2], 'reason') or '', {}, {}}\n"
              "end\n"
              "return {0, '', redis.call('HGETALL', KEYS[1]),\n"
              "  redis.call('HMGET', KEYS[4], 'state', 'container_id', 'container_at_ms',"
              " 'media_id')}\n",
};

bool pw_park_begin(pw_pipeline_t *p, pw_job_t *job, const pw_request_t *req, pw_account_t *account,
                   pw_post_record_t *rec, int *parked)
{
    memset(account, 0, sizeof(*account));
    char k_token[200], k_account[200], k_parked[200], k_post[400];
    pw_token_store_key(k_token, sizeof(k_token), req->account_id, "token");
    pw_token_store_key(k_account, sizeof(k_account), req->account_id, "account");
    pw_token_store_key(k_parked, sizeof(k_parked), req->account_id, "parked");
    pw_post_store_key(k_post, sizeof(k_post), req->account_id, req->post_id);
    const char *keys[] = {k_token, k_account, k_parked, k_post};
    const char *args[] = {job->value};
    redisReply *reply = pw_park_eval(p, &pw_begin_script, 4, keys, 1, args);
    if (!reply)
        return false;
    *parked = (int)reply->element[0]->integer;
    if (*parked) {
        pw_park_answer_parked(p, job, req, reply->element[1]->str, NULL, 0, false);
    } else {
        char errstr[512];
        pw_ts_status_t st = pw_token_store_parse(p->tokens, req->account_id, reply->element[2],
                                                 &account->token, errstr, sizeof(errstr));
        if (st != PW_TS_OK) {
            pw_log_warn("account has no usable token", PW_F_STR("account_id", req->account_id),
                        PW_F_STR("error", errstr));
        }
        pw_post_record_from_reply(reply->element[3], rec);
    }
    freeReplyObject(reply);
    return true;
}

bool pw_park_without_token(pw_pipeline_t *p, pw_job_t *job, const pw_request_t *req)
{
    /* pw_park_begin() found the account active with nothing parked: mark it. */
    pw_api_error_t err;
    pw_api_error_classify(PW_EP_CREATE, 0, NULL, -1, "account has no usable token", &err);
    err.cls = PW_EC_AUTH;
    err.auth = PW_AUTH_INVALID_TOKEN;
    return pw_park_on_auth_failure(p, job, req, 0, &err, 0, false, false);
}

void pw_park_mark(pw_pipeline_t *p, pw_job_t *job, const char *account_id, int64_t failed_fence,
                  const pw_api_error_t *err, const char *reason)
{
    char k_account[200], k_token[200], now[32], fence[32];
    pw_token_store_key(k_account, sizeof(k_account), account_id, "account");
    pw_token_store_key(k_token, sizeof(k_token), account_id, "token");
    snprintf(now, sizeof(now), "%lld", (long long)pw_now_ms());
    snprintf(fence, sizeof(fence), "%lld", (long long)failed_fence);
    const char *keys[] = {k_account, k_token};
    const char *args[] = {reason, now, fence};
    redisReply *reply = pw_park_eval(p, &pw_mark_script, 2, keys, 3, args);
    if (reply && reply->integer == 2)
        pw_log_info("account not marked: a newer token was stored meanwhile",
                    PW_F_STR("account_id", account_id), PW_F_STR("reason", reason));
    if (!reply || reply->integer != 1) {
        if (reply)
            freeReplyObject(reply);
        return;
    }
    freeReplyObject(reply);
    pw_log_warn("account marked reconnect_required", PW_F_STR("account_id", account_id),
                PW_F_STR("reason", reason));
    char *event = pw_event_account_new("reconnect_required", account_id, pw_now_ms());
    pw_pipeline_emit(p, job, p->conf->topic_account_events, account_id, strlen(account_id), event,
                     strlen(event), NULL);
    free(event);
    bool scope = err->auth == PW_AUTH_MISSING_SCOPE;
    pw_pipeline_alert(p, job, scope ? "permission_denied" : "reconnect_required", account_id, err,
                      NULL, 0);
}

void pw_park_log_auth_failure(pw_pipeline_t *p, pw_job_t *job, const pw_request_t *req,
                              const pw_api_error_t *err)
{
    pw_log_warn("auth failure", PW_F_STR("account_id", req->account_id),
                PW_F_STR("post_id", req->post_id), PW_F_STR("endpoint", err->endpoint),
                PW_F_OPT_INT("http_status", err->http_status), PW_F_OPT_INT("code", err->code),
                PW_F_OPT_INT("subcode", err->subcode), PW_F_STR("fbtrace_id", err->fbtrace_id),
                PW_F_STR("auth", pw_auth_kind_name(err->auth)), PW_F_STR("message", err->message));
    long count = 0;
    char errstr[512];
    if (pw_alert_auth_failure(p->redis, req->account_id, p->conf->auth_alert_threshold,
                              p->conf->auth_alert_window_s, &count, errstr, sizeof(errstr)) == 1)
        pw_pipeline_alert(p, job, "repeated_auth_failure", req->account_id, err, NULL, count);
}

bool pw_park_on_auth_failure(pw_pipeline_t *p, pw_job_t *job, const pw_request_t *req,
                             int64_t failed_fence, const pw_api_error_t *err, int attempts,
                             bool token_refreshed, bool logged)
{
    if (!logged)
        pw_park_log_auth_failure(p, job, req, err);
    pw_park_mark(p, job, req->account_id, failed_fence, err, pw_auth_kind_name(err->auth));
    int parked = 0; /* forced: it parks unless the worker is stopping */
    return pw_park_if_needed_as(p, job, req, &parked, err, attempts, token_refreshed);
}

/* KEYS: lock. ARGV: owner, ttl_ms. Extends the lock while owner holds it;
 * 0 when it was lost. */
static pw_redis_script_t pw_replay_renew_script = {
    .source = "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
              "  return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end\n"
              "return 0\n",
};

/* The replay lock outlives one post's publication (container polling
 * included) and is renewed before each post, so a slow replay keeps it while
 * a crashed replayer's lock still runs out. */
static long long pw_replay_lock_ttl_ms(const pw_pipeline_t *p)
{
    return ((long long)p->conf->container_poll_timeout_s + 120) * 1000;
}

/* Publishes the parked posts; the caller holds the replay lock (k_lock, owner). */
static bool pw_park_replay_locked(pw_pipeline_t *p, pw_http_t *http, pw_job_t *job,
                                  const char *account_id, const char *k_lock, const char *owner)
{
    char k_parked[200], ttl[32];
    pw_token_store_key(k_parked, sizeof(k_parked), account_id, "parked");
    snprintf(ttl, sizeof(ttl), "%lld", pw_replay_lock_ttl_ms(p));
    int replayed = 0;
    for (;;) {
        char errstr[512];
        /* Lost (it ran out): whoever holds it now replays; two would answer
         * the same post twice. */
        const char *lkeys[] = {k_lock};
        const char *largs[] = {owner, ttl};
        redisReply *held = pw_redis_eval(p->redis, &pw_replay_renew_script, 1, lkeys, 2, largs,
                                         errstr, sizeof(errstr));
        bool lost = held && held->integer == 0;
        if (held)
            freeReplyObject(held);
        if (lost) {
            pw_log_warn("replay lock lost; leaving the replay to its holder",
                        PW_F_STR("account_id", account_id));
            break;
        }
        const char *argv[] = {"LINDEX", k_parked, "0"};
        redisReply *head =
            held ? pw_redis_command(p->redis, errstr, sizeof(errstr), 3, argv) : NULL;
        if (!head) {
            if (!pw_pipeline_sleep(p, 1000))
                return false;
            continue;
        }
        if (head->type != REDIS_REPLY_STRING) {
            freeReplyObject(head);
            /* Drained: leave the sweep's set, unless a post parked meanwhile. */
            const char *keys[] = {k_parked, PW_PARKED_ACCOUNTS};
            const char *args[] = {account_id};
            redisReply *r = pw_park_eval(p, &pw_untrack_script, 2, keys, 1, args);
            if (r)
                freeReplyObject(r);
            break;
        }
        pw_request_t *req = NULL;
        const char *cls;
        char reason[256];
        pw_request_parse(head->str, head->len, &req, &cls, reason, sizeof(reason));
        bool keep_going = true;
        if (req) {
            pw_account_t account;
            if (!pw_park_load_account(p, req, &account)) {
                pw_request_destroy(req);
                freeReplyObject(head);
                return false;
            }
            pw_publish_t pub = {.p = p, .http = http, .req = req, .token = account.token};
            pw_pub_outcome_t out = account.token ? pw_publish_attempt(&pub) : PW_PUB_AUTH;
            if (out == PW_PUB_PUBLISHED || out == PW_PUB_DUPLICATE || out == PW_PUB_FAILED) {
                pw_result_error_t error;
                pw_result_t result = {.attempts = out == PW_PUB_DUPLICATE ? 0 : 1};
                result.status = out == PW_PUB_PUBLISHED   ? "published"
                                : out == PW_PUB_DUPLICATE ? "duplicate"
                                                          : "failed";
                result.media_id = pub.media_id[0] ? pub.media_id : NULL;
                if (out == PW_PUB_FAILED) {
                    pw_pipeline_error_of(&pub.err, &error);
                    result.error = &error;
                }
                pw_pipeline_result(p, job, req, &result);
                replayed++;
            } else {
                /* Auth again, or transient: leave it at the head for later. */
                if (out == PW_PUB_AUTH && account.token)
                    pw_park_mark(p, job, req->account_id, account.token->fence, &pub.err,
                                 pw_auth_kind_name(pub.err.auth));
                pw_log_warn("replay of parked posts paused", PW_F_STR("account_id", account_id),
                            PW_F_STR("post_id", req->post_id));
                keep_going = false;
            }
            pw_park_account_clear(&account);
        }
        if (keep_going) {
            const char *keys[] = {k_parked};
            const char *args[] = {head->str};
            redisReply *popped = pw_park_eval(p, &pw_pop_if_head_script, 1, keys, 1, args);
            if (popped)
                freeReplyObject(popped);
        }
        pw_request_destroy(req);
        freeReplyObject(head);
        if (!keep_going)
            break;
    }
    if (replayed)
        pw_log_info("parked posts published", PW_F_STR("account_id", account_id),
                    PW_F_INT("posts", replayed));
    return true;
}

/* KEYS: lock. ARGV: owner. */
static pw_redis_script_t pw_replay_unlock_script = {
    .source =
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end\n"
        "return 0\n",
};

/* KEYS: account, parked, parked accounts set. ARGV: account. Returns 1 when
 * the account is active and has parked posts (the one check most
 * token_updated events need); 0 when it has none (and leaves the set). */
static pw_redis_script_t pw_replay_needed_script = {
    .source = "if redis.call('LLEN', KEYS[2]) == 0 then\n"
              "  redis.call('SREM', KEYS[3], ARGV[1]) return 0 end\n"
              "if redis.call('HGET', KEYS[1], 'status') == 'active' then return 1 end\n"
              "return 2\n",
};

bool pw_park_replay(pw_pipeline_t *p, pw_http_t *http, pw_job_t *job, const char *account_id)
{
    char k_lock[200], k_account[200], k_parked[200], owner[160], errstr[256];
    /* Only an active account with parked posts replays: an old token_updated
     * must not retry a token that was revoked after it. */
    pw_token_store_key(k_account, sizeof(k_account), account_id, "account");
    pw_token_store_key(k_parked, sizeof(k_parked), account_id, "parked");
    const char *nkeys[] = {k_account, k_parked, PW_PARKED_ACCOUNTS};
    const char *nargs[] = {account_id};
    redisReply *needed = pw_redis_eval(p->redis, &pw_replay_needed_script, 3, nkeys, 1, nargs,
                                       errstr, sizeof(errstr));
    bool wanted = needed && needed->integer == 1;
    if (needed)
        freeReplyObject(needed);
    if (!wanted)
        return true; /* nothing to do, or Redis is away: the sweep comes back */
    pw_token_store_key(k_lock, sizeof(k_lock), account_id, "replay_lock");
    snprintf(owner, sizeof(owner), "%s/%ld", p->conf->worker_id, random());
    /* One replayer per account: two would answer the same post twice. */
    char ttl[32];
    snprintf(ttl, sizeof(ttl), "%lld", pw_replay_lock_ttl_ms(p));
    const char *argv[] = {"SET", k_lock, owner, "NX", "PX", ttl};
    redisReply *reply = pw_redis_command(p->redis, errstr, sizeof(errstr), 6, argv);
    bool locked = reply && reply->type == REDIS_REPLY_STATUS;
    if (reply)
        freeReplyObject(reply);
    if (!locked)
        return true; /* someone replays already, or Redis is away: the sweep retries */
    bool finished = pw_park_replay_locked(p, http, job, account_id, k_lock, owner);
    const char *keys[] = {k_lock};
    const char *args[] = {owner};
    reply =
        pw_redis_eval(p->redis, &pw_replay_unlock_script, 1, keys, 1, args, errstr, sizeof(errstr));
    if (reply)
        freeReplyObject(reply);
    return finished;
}

bool pw_park_on_account_event(pw_pipeline_t *p, pw_http_t *http, pw_job_t *job)
{
    cJSON *event = cJSON_ParseWithLength(job->value, job->value_len);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(event, "type");
    const cJSON *account = cJSON_GetObjectItemCaseSensitive(event, "account_id");
    bool finished = true;
    if (cJSON_IsString(type) && cJSON_IsString(account) &&
        strcmp(type->valuestring, "token_updated") == 0 &&
        pw_account_id_valid(account->valuestring))
        finished = pw_park_replay(p, http, job, account->valuestring);
    cJSON_Delete(event);
    return finished;
}
