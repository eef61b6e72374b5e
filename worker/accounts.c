/* Accounts: parking, marking, replay, account events (see accounts.h). */
#include "accounts.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "log.h"
#include "output.h"
#include "quota.h"
#include "token_store.h"

/* KEYS: parked, parked ids, parked accounts. ARGV: value, account, cap.
 * Parks the value unless it is parked already (a redelivered message, or a
 * retry after a lost reply, must not be replayed twice); 2 when full. */
static pw_redis_script_t pw_park_script = {
    .source = PW_LUA_PARK "return park(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3])\n",
};

/* KEYS: account, token, alert pending. ARGV: reason, at_ms, fence of the
 * token that failed (0: none), account. Marks the account; 1 if it was not,
 * 2 when a newer token was stored meanwhile (a token put or another worker's
 * refresh): that one has not failed, so the account stays active. A new mark
 * waits in the pending set until its alert is known to be in Kafka. */
static pw_redis_script_t pw_mark_script = {
    .source = "if tonumber(redis.call('HGET', KEYS[2], 'fence') or '0') > tonumber(ARGV[3])"
              " then return 2 end\n"
              "if redis.call('HGET', KEYS[1], 'status') == 'reconnect_required' then return 0 end\n"
              "redis.call('HSET', KEYS[1], 'status', 'reconnect_required', 'reason', ARGV[1],"
              " 'at_ms', ARGV[2])\n"
              "redis.call('SADD', KEYS[3], ARGV[4])\n"
              "return 1\n",
};

/* Waits until Kafka has ticket's message or never will: 1 or -1; 0 when
 * the worker stops first. Releases the ticket. */
static int pw_accounts_wait_delivery(pw_ctx_t *ctx, pw_delivery_ticket_t *ticket)
{
    int state;
    while ((state = pw_delivery_ticket_state(ticket)) == 0 && pw_ctx_sleep(ctx, 10))
        ;
    pw_delivery_ticket_release(ticket);
    return state;
}

/* The alert of a mark is in Kafka (ticket NULL: raised in this window
 * already): the account leaves the pending set. Otherwise the sweep raises
 * it again (pw_accounts_repair_alerts()). */
static void pw_accounts_confirm_alert(pw_ctx_t *ctx, const char *account_id,
                                      pw_delivery_ticket_t *ticket)
{
    if (ticket && pw_accounts_wait_delivery(ctx, ticket) != 1)
        return;
    char errstr[256];
    const char *argv[] = {"SREM", PW_KEY_ALERT_PENDING, account_id};
    redisReply *reply = pw_redis_command(ctx->redis, errstr, sizeof(errstr), 3, argv);
    if (reply)
        freeReplyObject(reply);
}

/* ---- marking and parking ---- */

void pw_accounts_mark(pw_ctx_t *ctx, pw_job_t *job, const char *account_id, int64_t failed_fence,
                      const pw_api_error_t *err)
{
    const char *reason = pw_auth_kind_name(err->auth);
    pw_key_t k_account = pw_key_account(account_id), k_token = pw_key_token(account_id);
    char now[32], fence[32], errstr[512];
    snprintf(now, sizeof(now), "%lld", (long long)pw_now_ms());
    snprintf(fence, sizeof(fence), "%lld", (long long)failed_fence);
    const char *keys[] = {k_account.s, k_token.s, PW_KEY_ALERT_PENDING};
    const char *args[] = {reason, now, fence, account_id};
    redisReply *reply =
        pw_redis_eval(ctx->redis, &pw_mark_script, 3, keys, 4, args, errstr, sizeof(errstr));
    long long marked = reply ? reply->integer : -1;
    if (reply)
        freeReplyObject(reply);
    if (marked == 2)
        pw_log_info("account not marked: a newer token was stored meanwhile",
                    PW_F_STR("account_id", account_id), PW_F_STR("reason", reason));
    if (marked != 1)
        return;
    pw_log_warn("account marked reconnect_required", PW_F_STR("account_id", account_id),
                PW_F_STR("reason", reason));
    pw_output_account_event(ctx, job, "reconnect_required", account_id);
    bool scope = err->auth == PW_AUTH_MISSING_SCOPE;
    pw_accounts_confirm_alert(
        ctx, account_id,
        pw_output_alert_tracked(ctx, job, scope ? "permission_denied" : "reconnect_required",
                                account_id, err, NULL, 0));
}

/* A mark older than this whose alert is not confirmed is raised again. */
#define PW_ALERT_REPAIR_AFTER_MS 60000

/* One pending account: raise its alert again if it is still marked. */
static void pw_accounts_repair_alert(pw_ctx_t *ctx, const char *account_id)
{
    pw_key_t k_account = pw_key_account(account_id);
    char errstr[256];
    const char *argv[] = {"HMGET", k_account.s, "status", "reason", "at_ms"};
    redisReply *r = pw_redis_command(ctx->redis, errstr, sizeof(errstr), 5, argv);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 3) {
        if (r)
            freeReplyObject(r);
        return;
    }
    const char *status = r->element[0]->str, *reason = r->element[1]->str;
    long long at_ms = r->element[2]->str ? strtoll(r->element[2]->str, NULL, 10) : 0;
    if (!status || strcmp(status, "reconnect_required") != 0) {
        pw_accounts_confirm_alert(ctx, account_id, NULL); /* reconnected meanwhile */
    } else if (pw_now_ms() - at_ms >= PW_ALERT_REPAIR_AFTER_MS) {
        char message[200];
        snprintf(message, sizeof(message),
                 "account must be reconnected (%s); this alert was not confirmed delivered when "
                 "the account was marked",
                 reason ? reason : "unknown");
        bool scope = reason && strcmp(reason, "missing_scope") == 0;
        pw_log_warn("raising an unconfirmed alert again", PW_F_STR("account_id", account_id));
        pw_accounts_confirm_alert(
            ctx, account_id,
            pw_output_alert_again(ctx, scope ? "permission_denied" : "reconnect_required",
                                  account_id, message));
    }
    freeReplyObject(r);
}

void pw_accounts_repair_alerts(pw_ctx_t *ctx)
{
    char errstr[256];
    const char *argv[] = {"SRANDMEMBER", PW_KEY_ALERT_PENDING, "100"};
    redisReply *pending = pw_redis_command(ctx->redis, errstr, sizeof(errstr), 3, argv);
    for (size_t i = 0; pending && pending->type == REDIS_REPLY_ARRAY && i < pending->elements &&
                       !pw_ctx_draining(ctx);
         i++)
        pw_accounts_repair_alert(ctx, pending->element[i]->str);
    if (pending)
        freeReplyObject(pending);
}

bool pw_accounts_park(pw_ctx_t *ctx, pw_job_t *job, const pw_request_t *req,
                      const pw_auth_failure_t *failure)
{
    if (!failure->logged)
        pw_output_auth_failure(ctx, job, req->account_id, req->post_id, &failure->err);
    pw_accounts_mark(ctx, job, req->account_id, failure->fence, &failure->err);
    /* Parked even if a token put made the account active meanwhile: the
     * sweep then replays it. */
    pw_key_t k_parked = pw_key_parked(req->account_id), k_ids = pw_key_parked_ids(req->account_id);
    char cap[32];
    snprintf(cap, sizeof(cap), "%ld", ctx->conf->parked_max_per_account);
    const char *keys[] = {k_parked.s, k_ids.s, PW_KEY_PARKED_ACCOUNTS};
    const char *args[] = {job->value, req->account_id, cap};
    redisReply *reply = pw_ctx_eval(ctx, "parking a post", &pw_park_script, 3, keys, 3, args);
    if (!reply)
        return false;
    bool full = reply->integer == 2;
    freeReplyObject(reply);
    pw_outcome_t o = {.status = PW_OUTCOME_PARKED,
                      .attempts = failure->attempts,
                      .token_refreshed = failure->token_refreshed,
                      .err = &failure->err};
    pw_api_error_t full_err;
    if (full) {
        pw_api_error_make(&full_err, failure->err.endpoint, PW_EC_AUTH, failure->err.auth, false,
                          failure->err.http_status,
                          "account must be reconnected and already has %ld parked posts "
                          "(PARKED_MAX_PER_ACCOUNT): this post is not kept",
                          ctx->conf->parked_max_per_account);
        pw_log_error("parked list full; post answered failed",
                     PW_F_STR("account_id", req->account_id), PW_F_STR("post_id", req->post_id));
        o = (pw_outcome_t){.status = PW_OUTCOME_FAILED,
                           .attempts = failure->attempts,
                           .token_refreshed = failure->token_refreshed,
                           .err = &full_err};
    }
    pw_output_answer(ctx, job, req, &o);
    return true;
}

/* ---- replay ---- */

/* KEYS: lock. ARGV: owner, ttl_ms. Extends the lock while owner holds it;
 * 0 when it was lost. */
static pw_redis_script_t pw_replay_renew_script = {
    .source = "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
              "  return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end\n"
              "return 0\n",
};

/* KEYS: lock. ARGV: owner. */
static pw_redis_script_t pw_replay_unlock_script = {
    .source =
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end\n"
        "return 0\n",
};

/* KEYS: parked, parked ids, replay tries. ARGV: value. Pops the head only
 * if it is still value; its tries start again for the next head. */
static pw_redis_script_t pw_pop_if_head_script = {
    .source = "if redis.call('LINDEX', KEYS[1], 0) == ARGV[1] then\n"
              "  redis.call('LPOP', KEYS[1])\n"
              "  redis.call('SREM', KEYS[2], redis.sha1hex(ARGV[1]))\n"
              "  redis.call('DEL', KEYS[3])\n"
              "  return 1 end\n"
              "return 0\n",
};

/* KEYS: parked, parked accounts, replay tries. ARGV: account. Returns {head,
 * failed replays of it}, or leaves the set ({}) when the list is empty. */
static pw_redis_script_t pw_replay_head_script = {
    .source = "local head = redis.call('LINDEX', KEYS[1], 0)\n"
              "if not head then redis.call('SREM', KEYS[2], ARGV[1]) return {} end\n"
              "return {head, tonumber(redis.call('GET', KEYS[3]) or '0')}\n",
};

/* KEYS: account, parked, parked accounts set, quota hold. ARGV: account.
 * Returns 1 when the account is active, has parked posts and is not waiting
 * for its publishing quota (the one check most token_updated events need);
 * 0 when it has none (and leaves the set). */
static pw_redis_script_t pw_replay_needed_script = {
    .source = "if redis.call('LLEN', KEYS[2]) == 0 then\n"
              "  redis.call('SREM', KEYS[3], ARGV[1]) return 0 end\n"
              "if redis.call('EXISTS', KEYS[4]) == 1 then return 3 end\n"
              "if redis.call('HGET', KEYS[1], 'status') == 'active' then return 1 end\n"
              "return 2\n",
};

typedef struct pw_replay_s {
    pw_ctx_t *ctx;
    pw_http_t *http;
    pw_job_t *job; /* NULL for the sweep */
    const char *account_id;
    pw_key_t k_lock, k_parked, k_ids, k_tries;
    char owner[160];
    char ttl_ms[32];
    int replayed;
} pw_replay_t;

typedef enum { PW_REPLAY_NEXT, PW_REPLAY_PAUSE, PW_REPLAY_STOPPED } pw_replay_step_t;

/* The replay lock outlives one post's publication (container polling
 * included) and is renewed before each post, so a slow replay keeps it while
 * a crashed replayer's lock still runs out. */
static long long pw_replay_lock_ttl_ms(const pw_ctx_t *ctx)
{
    return ((long long)ctx->conf->container_poll_timeout_s + 120) * 1000;
}

/* false when the lock was lost (it ran out): whoever holds it now replays;
 * two replayers would answer the same post twice. */
static bool pw_replay_renew(pw_replay_t *r)
{
    const char *keys[] = {r->k_lock.s};
    const char *args[] = {r->owner, r->ttl_ms};
    redisReply *held =
        pw_ctx_eval(r->ctx, "renewing the replay lock", &pw_replay_renew_script, 1, keys, 2, args);
    bool ours = held && held->integer != 0;
    if (held)
        freeReplyObject(held);
    if (held && !ours)
        pw_log_warn("replay lock lost; leaving the replay to its holder",
                    PW_F_STR("account_id", r->account_id));
    return ours;
}

/* Reads the account's token, retrying while Redis is away; NULL when there
 * is none usable (or the worker is stopping: *stopped). */
static pw_token_t *pw_replay_token(pw_replay_t *r, bool *stopped)
{
    char errstr[512];
    pw_token_t *token = NULL;
    for (;;) {
        pw_ts_status_t st =
            pw_token_store_get(r->ctx->tokens, r->account_id, &token, errstr, sizeof(errstr));
        if (st == PW_TS_OK)
            return token;
        if (st == PW_TS_NOT_FOUND || st == PW_TS_UNREADABLE) {
            /* Nothing to publish with: only a token put can help. */
            pw_log_warn("account has no usable token", PW_F_STR("account_id", r->account_id),
                        PW_F_STR("error", errstr));
            return NULL;
        }
        pw_log_warn("redis failed reading token; retrying", PW_F_STR("error", errstr));
        if (!pw_ctx_sleep(r->ctx, 1000)) {
            *stopped = true;
            return NULL;
        }
    }
}

/* One attempt for a parked post, with the first try's rules for auth: every
 * failure logged, an expired token refreshed once and the post tried again. */
static pw_pub_outcome_t pw_replay_attempt(pw_replay_t *r, const pw_request_t *req,
                                          pw_token_t **token, pw_api_error_t *err,
                                          char media_id[PW_ID_MAX])
{
    pw_pub_outcome_t out = pw_publish_once(r->ctx, r->http, req, *token, err, media_id);
    if (out != PW_PUB_AUTH)
        return out;
    pw_output_auth_failure(r->ctx, r->job, req->account_id, req->post_id, err);
    if (err->auth != PW_AUTH_EXPIRED)
        return out;
    pw_api_error_t rerr;
    pw_rf_status_t st = pw_publish_refresh(r->ctx, r->http, r->job, token, true, &rerr);
    if (st == PW_RF_TRANSIENT) {
        *err = rerr;
        return PW_PUB_RETRY;
    }
    if (st != PW_RF_REFRESHED && st != PW_RF_BY_OTHER) {
        pw_api_error_t expired = *err;
        pw_api_error_needs_reconnect(&expired,
                                     rerr.auth != PW_AUTH_NONE ? rerr.auth : PW_AUTH_REVOKED, err);
        return PW_PUB_AUTH;
    }
    out = pw_publish_once(r->ctx, r->http, req, *token, err, media_id);
    if (out == PW_PUB_AUTH)
        pw_output_auth_failure(r->ctx, r->job, req->account_id, req->post_id, err);
    return out;
}

/* Produces a parked post's answer and waits until Kafka has it: only then
 * may the post leave the list, or a crash would lose its second result. */
static pw_replay_step_t pw_replay_answer(pw_replay_t *r, const pw_request_t *req,
                                         const pw_outcome_t *o)
{
    pw_delivery_ticket_t *ticket = pw_delivery_ticket_new();
    pw_output_answer_tracked(r->ctx, r->job, req, o, ticket);
    int state = pw_accounts_wait_delivery(r->ctx, ticket);
    if (state == 1)
        return PW_REPLAY_NEXT;
    if (state == -1)
        pw_log_warn("replayed post's result not delivered; it stays parked",
                    PW_F_STR("account_id", r->account_id), PW_F_STR("post_id", req->post_id));
    return state == 0 ? PW_REPLAY_STOPPED : PW_REPLAY_PAUSE;
}

/* A transient failure pauses the replay; one that failed every time, a
 * budget of PUBLISH_MAX_ATTEMPTS replays, is answered failed and passed, so
 * the account's later posts are not held behind it for ever. */
static bool pw_replay_gives_up(pw_replay_t *r, long long tries)
{
    if (tries + 1 >= r->ctx->conf->publish_max_attempts)
        return true;
    char errstr[256];
    const char *argv[] = {"INCR", r->k_tries.s};
    redisReply *reply = pw_redis_command(r->ctx->redis, errstr, sizeof(errstr), 2, argv);
    if (reply)
        freeReplyObject(reply);
    return false;
}

/* A parked post's attempt within the publishing quota: PW_PUB_QUOTA when it
 * must wait (the account is then held, quota.h). */
static pw_pub_outcome_t pw_replay_within_quota(pw_replay_t *r, const pw_request_t *req,
                                               pw_token_t **token, pw_api_error_t *err,
                                               char media_id[PW_ID_MAX])
{
    int64_t free_at_ms = 0;
    switch (pw_quota_reserve(r->ctx, r->http, *token, req->post_id, &free_at_ms)) {
    case PW_QUOTA_STOPPED:
        return PW_PUB_STOPPED;
    case PW_QUOTA_WAIT:
        pw_quota_hold(r->ctx, r->job, req->account_id, free_at_ms, NULL);
        return PW_PUB_QUOTA;
    case PW_QUOTA_GO:
        break;
    }
    pw_pub_outcome_t out = pw_replay_attempt(r, req, token, err, media_id);
    if (out == PW_PUB_FAILED || out == PW_PUB_RETRY || out == PW_PUB_AUTH || out == PW_PUB_QUOTA)
        pw_quota_release(r->ctx, req->account_id, req->post_id);
    if (out == PW_PUB_QUOTA)
        pw_quota_hold(r->ctx, r->job, req->account_id, 0, err);
    return out;
}

/* Publishes one parked request; PAUSE leaves it at the head for later. */
static pw_replay_step_t pw_replay_one(pw_replay_t *r, const pw_request_t *req, long long tries)
{
    bool stopped = false;
    pw_token_t *token = pw_replay_token(r, &stopped);
    if (stopped)
        return PW_REPLAY_STOPPED;
    pw_api_error_t err;
    char media_id[PW_ID_MAX] = "";
    pw_pub_outcome_t out =
        token ? pw_replay_within_quota(r, req, &token, &err, media_id) : PW_PUB_AUTH;
    if (out == PW_PUB_RETRY && pw_replay_gives_up(r, tries))
        out = PW_PUB_FAILED;
    pw_replay_step_t step = PW_REPLAY_PAUSE;
    if (out == PW_PUB_PUBLISHED || out == PW_PUB_DUPLICATE || out == PW_PUB_FAILED) {
        pw_outcome_t o = {.status = out == PW_PUB_PUBLISHED   ? PW_OUTCOME_PUBLISHED
                                    : out == PW_PUB_DUPLICATE ? PW_OUTCOME_DUPLICATE
                                                              : PW_OUTCOME_FAILED,
                          .attempts = out == PW_PUB_DUPLICATE ? 0 : (int)tries + 1,
                          .media_id = media_id,
                          .err = out == PW_PUB_FAILED ? &err : NULL};
        step = pw_replay_answer(r, req, &o);
        r->replayed += step == PW_REPLAY_NEXT;
    } else if (out == PW_PUB_STOPPED) {
        step = PW_REPLAY_STOPPED;
    } else if (out == PW_PUB_QUOTA) {
        pw_log_info("replay of parked posts waits for the publishing quota",
                    PW_F_STR("account_id", r->account_id), PW_F_STR("post_id", req->post_id));
    } else {
        /* Auth again, or transient: leave it at the head for later. */
        if (out == PW_PUB_AUTH && token)
            pw_accounts_mark(r->ctx, r->job, req->account_id, token->fence, &err);
        pw_log_warn("replay of parked posts paused", PW_F_STR("account_id", r->account_id),
                    PW_F_STR("post_id", req->post_id));
    }
    pw_token_destroy(token);
    return step;
}

static void pw_replay_pop(pw_replay_t *r, const char *value)
{
    const char *keys[] = {r->k_parked.s, r->k_ids.s, r->k_tries.s};
    const char *args[] = {value};
    redisReply *popped =
        pw_ctx_eval(r->ctx, "popping a parked post", &pw_pop_if_head_script, 3, keys, 1, args);
    if (popped)
        freeReplyObject(popped);
}

/* The head of the parked list, answered and popped. */
static pw_replay_step_t pw_replay_head(pw_replay_t *r, bool *drained)
{
    const char *keys[] = {r->k_parked.s, PW_KEY_PARKED_ACCOUNTS, r->k_tries.s};
    const char *args[] = {r->account_id};
    redisReply *head =
        pw_ctx_eval(r->ctx, "reading parked posts", &pw_replay_head_script, 3, keys, 1, args);
    if (!head)
        return PW_REPLAY_STOPPED;
    *drained = head->elements != 2;
    pw_replay_step_t step = PW_REPLAY_NEXT;
    if (!*drained) {
        const redisReply *value = head->element[0];
        pw_request_t *req = NULL;
        const char *cls;
        char reason[256];
        /* A parked value was a valid request when it parked. */
        pw_request_parse(value->str, value->len, &req, &cls, reason, sizeof(reason));
        if (req)
            step = pw_replay_one(r, req, head->element[1]->integer);
        pw_request_destroy(req);
        if (step == PW_REPLAY_NEXT)
            pw_replay_pop(r, value->str);
    }
    freeReplyObject(head);
    return step;
}

/* Publishes the parked posts while the replay lock is ours. */
static bool pw_replay_locked(pw_replay_t *r)
{
    for (;;) {
        if (pw_ctx_draining(r->ctx)) /* shutdown: the rest waits for the next replay */
            break;
        if (!pw_replay_renew(r))
            return !pw_ctx_stopping(r->ctx);
        bool drained = false;
        pw_replay_step_t step = pw_replay_head(r, &drained);
        if (step == PW_REPLAY_STOPPED)
            return false;
        if (drained || step == PW_REPLAY_PAUSE)
            break;
    }
    if (r->replayed)
        pw_log_info("parked posts published", PW_F_STR("account_id", r->account_id),
                    PW_F_INT("posts", r->replayed));
    return true;
}

/* Only an active account with parked posts replays: an old token_updated
 * must not retry a token that was revoked after it. */
static bool pw_replay_needed(pw_ctx_t *ctx, const char *account_id)
{
    pw_key_t k_account = pw_key_account(account_id), k_parked = pw_key_parked(account_id),
             k_hold = pw_key_quota_hold(account_id);
    const char *keys[] = {k_account.s, k_parked.s, PW_KEY_PARKED_ACCOUNTS, k_hold.s};
    const char *args[] = {account_id};
    char errstr[256];
    redisReply *needed = pw_redis_eval(ctx->redis, &pw_replay_needed_script, 4, keys, 1, args,
                                       errstr, sizeof(errstr));
    bool wanted = needed && needed->integer == 1;
    if (needed)
        freeReplyObject(needed);
    return wanted; /* nothing to do, or Redis is away: the sweep comes back */
}

/* One replayer per account: two would answer the same post twice. */
static bool pw_replay_lock(pw_replay_t *r)
{
    char errstr[256];
    const char *argv[] = {"SET", r->k_lock.s, r->owner, "NX", "PX", r->ttl_ms};
    redisReply *reply = pw_redis_command(r->ctx->redis, errstr, sizeof(errstr), 6, argv);
    bool locked = reply && reply->type == REDIS_REPLY_STATUS;
    if (reply)
        freeReplyObject(reply);
    return locked; /* someone replays already, or Redis is away: the sweep retries */
}

static void pw_replay_unlock(pw_replay_t *r)
{
    char errstr[256];
    const char *keys[] = {r->k_lock.s};
    const char *args[] = {r->owner};
    redisReply *reply = pw_redis_eval(r->ctx->redis, &pw_replay_unlock_script, 1, keys, 1, args,
                                      errstr, sizeof(errstr));
    if (reply)
        freeReplyObject(reply);
}

bool pw_accounts_replay(pw_ctx_t *ctx, pw_http_t *http, pw_job_t *job, const char *account_id)
{
    if (!pw_replay_needed(ctx, account_id))
        return true;
    pw_replay_t r = {.ctx = ctx,
                     .http = http,
                     .job = job,
                     .account_id = account_id,
                     .k_lock = pw_key_replay_lock(account_id),
                     .k_parked = pw_key_parked(account_id),
                     .k_ids = pw_key_parked_ids(account_id),
                     .k_tries = pw_key_replay_tries(account_id)};
    snprintf(r.owner, sizeof(r.owner), "%s/%ld", ctx->conf->worker_id, random());
    snprintf(r.ttl_ms, sizeof(r.ttl_ms), "%lld", pw_replay_lock_ttl_ms(ctx));
    if (!pw_replay_lock(&r))
        return true;
    bool finished = pw_replay_locked(&r);
    pw_replay_unlock(&r);
    return finished;
}

bool pw_accounts_on_event(pw_ctx_t *ctx, pw_http_t *http, pw_job_t *job)
{
    cJSON *event = cJSON_ParseWithLength(job->value, job->value_len);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(event, "type");
    const cJSON *account = cJSON_GetObjectItemCaseSensitive(event, "account_id");
    bool finished = true;
    if (cJSON_IsString(type) && cJSON_IsString(account) &&
        strcmp(type->valuestring, "token_updated") == 0 &&
        pw_account_id_valid(account->valuestring))
        finished = pw_accounts_replay(ctx, http, job, account->valuestring);
    cJSON_Delete(event);
    return finished;
}
