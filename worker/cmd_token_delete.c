/* token delete: offboarding.
 *
 * DESIGN: offboarding must not lose a post silently nor leave a
 * trace a sweep would act on. In order:
 *   1. take the account's replay lock (pw:{ACCT}:replay_lock, as a worker's
 *      replay does, owner WORKER_ID/token-delete/PID), waiting up to --wait
 *      seconds for a worker replaying the account: while we hold it no
 *      worker pops a parked post, so the parked list only grows at its tail;
 *   2. answer every parked post (the original publish.request.v1 values)
 *      with publish.result.v1 failed, class auth, and wait until Kafka has
 *      every result (delivery reports) before anything is removed: a run
 *      that fails here removed nothing and is run again (the posts are then
 *      answered twice, never not at all);
 *   3. one script checks that the lock is still ours and the parked list
 *      still holds exactly the posts answered (a post parked meanwhile is
 *      answered first: back to 2), then removes every key of the account
 *      (SCAN MATCH pw:{ACCT}:*) but pw:{ACCT}:fence; a second SCAN removes
 *      what a post in flight recorded meanwhile;
 *   4. the account leaves the fleet-wide indexes (pw:token_expiry,
 *      pw:parked_accounts, pw:alert_pending, pw:verify_due), so no sweep
 *      refreshes, replays, alerts or verifies it again.
 * The fence stays: a later token put must take a fence above any a refresh
 * in flight still holds, or that refresh could overwrite the new token. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "events.h"
#include "kafka.h"
#include "keys.h"
#include "request.h"
#include "token_cmd.h"

#define PW_DELETE_LOCK_TTL_MS "60000"
#define PW_DELETE_FLUSH_MS 30000

/* KEYS: lock. ARGV: owner, ttl_ms. 1 while the lock is ours. */
static pw_redis_script_t pw_delete_renew_script = {
    .source = "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
              "  return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end\n"
              "return 0\n",
};

/* KEYS: lock, parked, then every other key to remove. ARGV: owner, parked
 * posts answered. Removes the keys (the lock last); -1: the lock is not
 * ours; -2: more posts were parked than answered. */
static pw_redis_script_t pw_delete_script = {
    .source = "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end\n"
              "if redis.call('LLEN', KEYS[2]) ~= tonumber(ARGV[2]) then return -2 end\n"
              "local n = 0\n"
              "for i = 2, #KEYS do n = n + redis.call('DEL', KEYS[i]) end\n"
              "redis.call('DEL', KEYS[1])\n"
              "return n\n",
};

typedef struct pw_delete_s {
    pw_token_cmd_t *cmd;
    const char *account_id;
    pw_key_t k_lock, k_parked, k_fence;
    char owner[256];
    rd_kafka_t *rk;
    long undelivered; /* delivery reports with an error */
    char dr_error[256];
    long answered; /* parked posts answered and in Kafka */
    long long keys_removed, index_removed;
} pw_delete_t;

static void pw_delete_dr(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
    (void)rk;
    pw_delete_t *d = opaque;
    if (rkm->err) {
        d->undelivered++;
        snprintf(d->dr_error, sizeof(d->dr_error), "%s", rd_kafka_err2str(rkm->err));
    }
}

/* Takes the replay lock, waiting up to wait_s for its holder.
 * @returns 0, or -1 after a message. */
static int pw_delete_lock(pw_delete_t *d, long long wait_s)
{
    char errstr[512];
    int64_t deadline = pw_mono_ms() + wait_s * 1000;
    for (;;) {
        const char *argv[] = {"SET", d->k_lock.s, d->owner, "NX", "PX", PW_DELETE_LOCK_TTL_MS};
        redisReply *r = pw_redis_command(d->cmd->redis, errstr, sizeof(errstr), 6, argv);
        if (!r) {
            fprintf(stderr, "publish-worker: token delete: %s\n", errstr);
            return -1;
        }
        bool locked = r->type == REDIS_REPLY_STATUS;
        freeReplyObject(r);
        if (locked)
            return 0;
        if (pw_mono_ms() >= deadline)
            break;
        usleep(200 * 1000);
    }
    const char *get[] = {"GET", d->k_lock.s};
    redisReply *holder = pw_redis_command(d->cmd->redis, errstr, sizeof(errstr), 2, get);
    fprintf(stderr,
            "publish-worker: token delete: a worker holds %s (owner %s): it is publishing the "
            "account's parked posts; nothing removed, try again later (or with a longer "
            "--wait)\n",
            d->k_lock.s, holder && holder->type == REDIS_REPLY_STRING ? holder->str : "unknown");
    if (holder)
        freeReplyObject(holder);
    return -1;
}

/* Extends the lock. @returns 0, or -1 after a message when it was lost. */
static int pw_delete_renew(pw_delete_t *d)
{
    char errstr[512];
    const char *keys[] = {d->k_lock.s};
    const char *args[] = {d->owner, PW_DELETE_LOCK_TTL_MS};
    redisReply *r = pw_redis_eval(d->cmd->redis, &pw_delete_renew_script, 1, keys, 2, args, errstr,
                                  sizeof(errstr));
    bool ours = r && r->integer == 1;
    if (r)
        freeReplyObject(r);
    if (!ours)
        fprintf(stderr, "publish-worker: token delete: %s\n",
                r ? "the replay lock was lost (it ran out): nothing removed, run it again"
                  : errstr);
    return ours ? 0 : -1;
}

/* KEYS: lock. ARGV: owner. */
static pw_redis_script_t pw_delete_unlock_script = {
    .source =
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end\n"
        "return 0\n",
};

static void pw_delete_unlock(pw_delete_t *d)
{
    char errstr[256];
    const char *keys[] = {d->k_lock.s};
    const char *args[] = {d->owner};
    redisReply *r = pw_redis_eval(d->cmd->redis, &pw_delete_unlock_script, 1, keys, 1, args, errstr,
                                  sizeof(errstr));
    if (r)
        freeReplyObject(r);
}

/* Produces the failed result of one parked value (a request that was
 * valid when it parked). @returns 0, or -1 with errstr. */
static int pw_delete_answer_one(pw_delete_t *d, const redisReply *value, char *errstr,
                                size_t errstr_size)
{
    pw_request_t *req = NULL;
    const char *cls = NULL;
    char reason[256];
    if (pw_request_parse(value->str, value->len, &req, &cls, reason, sizeof(reason)) ==
            PW_REQ_DEAD_LETTER ||
        !req) {
        fprintf(stderr,
                "publish-worker: token delete: a parked value is no request (%s): "
                "removed unanswered\n",
                reason);
        return 0;
    }
    pw_result_error_t err = {"auth", -1, -1, -1,
                             "account removed with token delete: the post was not published"};
    pw_result_t result = {.event_id = req->event_id,
                          .post_id = req->post_id,
                          .account_id = req->account_id,
                          .status = "failed",
                          .error = &err,
                          .worker_id = d->cmd->conf->worker_id,
                          .finished_at_ms = pw_now_ms()};
    char *json = pw_event_result_new(&result);
    rd_kafka_resp_err_t e = pw_kafka_produce(d->rk, d->cmd->conf->topic_publish_results,
                                             d->account_id, strlen(d->account_id), json,
                                             strlen(json), NULL, NULL, errstr, errstr_size);
    free(json);
    pw_request_destroy(req);
    return e ? -1 : 0;
}

/* Produces results for values [0, n) and waits for Kafka to have them all.
 * @returns 0, or -1 with errstr. */
static int pw_delete_answer_values(pw_delete_t *d, const redisReply *values, char *errstr,
                                   size_t errstr_size)
{
    if (!d->rk &&
        !(d->rk = pw_kafka_producer_new(d->cmd->conf, pw_delete_dr, d, errstr, errstr_size)))
        return -1;
    for (size_t i = 0; i < values->elements; i++)
        if (pw_delete_answer_one(d, values->element[i], errstr, errstr_size) == -1)
            return -1;
    rd_kafka_resp_err_t e = rd_kafka_flush(d->rk, PW_DELETE_FLUSH_MS);
    if (e || d->undelivered) {
        pw_errstr_set(errstr, errstr_size, "%s not delivered: %s",
                      d->cmd->conf->topic_publish_results, e ? rd_kafka_err2str(e) : d->dr_error);
        return -1;
    }
    return 0;
}

/* Answers the parked posts not answered yet (from index d->answered on).
 * @returns 0, or -1 after a message. */
static int pw_delete_answer(pw_delete_t *d)
{
    char errstr[512], start[32];
    for (;;) {
        if (pw_delete_renew(d) == -1)
            return -1;
        snprintf(start, sizeof(start), "%ld", d->answered);
        const char *argv[] = {"LRANGE", d->k_parked.s, start, "-1"};
        redisReply *values = pw_redis_command(d->cmd->redis, errstr, sizeof(errstr), 4, argv);
        int rc = values ? 0 : -1;
        size_t n = values && values->type == REDIS_REPLY_ARRAY ? values->elements : 0;
        if (n > 0)
            rc = pw_delete_answer_values(d, values, errstr, sizeof(errstr));
        if (values)
            freeReplyObject(values);
        if (rc == -1) {
            fprintf(stderr,
                    "publish-worker: token delete: parked posts not answered: %s\nNothing "
                    "removed; run it again (posts answered already are answered again).\n",
                    errstr);
            return -1;
        }
        if (n == 0)
            return 0;
        d->answered += (long)n;
    }
}

/* Every key of the account but its fence, lock and parked list (SCAN
 * MATCH pw:{ACCT}:*), appended to keys. @returns 0 or -1 with errstr. */
static int pw_delete_scan(pw_delete_t *d, pw_strv_t *keys, char *errstr, size_t errstr_size)
{
    char cursor[32] = "0", *match = pw_asprintf("pw:{%s}:*", d->account_id);
    int rc = 0;
    do {
        const char *argv[] = {"SCAN", cursor, "MATCH", match, "COUNT", "1000"};
        redisReply *r = pw_redis_command(d->cmd->redis, errstr, errstr_size, 6, argv);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            if (r)
                pw_errstr_set(errstr, errstr_size, "redis: unexpected SCAN reply");
            rc = -1;
        } else {
            snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
            for (size_t i = 0; i < r->element[1]->elements; i++) {
                const char *key = r->element[1]->element[i]->str;
                if (strcmp(key, d->k_fence.s) && strcmp(key, d->k_lock.s) &&
                    strcmp(key, d->k_parked.s))
                    pw_strv_add(keys, key);
            }
        }
        if (r)
            freeReplyObject(r);
    } while (rc == 0 && strcmp(cursor, "0") != 0);
    free(match);
    return rc;
}

/* Step 3: the account's keys, once the parked list holds only posts
 * answered. @returns 0, or -1 after a message. */
static int pw_delete_remove(pw_delete_t *d)
{
    char errstr[512], answered[32];
    for (;;) {
        pw_strv_t keys = {0};
        pw_strv_add(&keys, d->k_lock.s);
        pw_strv_add(&keys, d->k_parked.s);
        int rc = pw_delete_scan(d, &keys, errstr, sizeof(errstr));
        redisReply *r = NULL;
        snprintf(answered, sizeof(answered), "%ld", d->answered);
        const char *args[] = {d->owner, answered};
        if (rc == 0)
            r = pw_redis_eval(d->cmd->redis, &pw_delete_script, (int)keys.count,
                              (const char **)keys.ids, 2, args, errstr, sizeof(errstr));
        pw_strv_free(&keys);
        long long n = r ? r->integer : -3;
        if (r)
            freeReplyObject(r);
        if (n >= 0) {
            d->keys_removed += n;
            return 0;
        }
        if (n == -2 && pw_delete_answer(d) == 0)
            continue; /* posts parked meanwhile: answered now */
        if (n == -1)
            fprintf(stderr, "publish-worker: token delete: the replay lock was lost (it ran "
                            "out): nothing removed, run it again\n");
        else if (n == -3)
            fprintf(stderr, "publish-worker: token delete: %s\n", errstr);
        return -1;
    }
}

/* What a post in flight recorded after the script ran. */
static int pw_delete_leftovers(pw_delete_t *d, char *errstr, size_t errstr_size)
{
    pw_strv_t keys = {0};
    pw_strv_add(&keys, "DEL");
    int rc = pw_delete_scan(d, &keys, errstr, errstr_size);
    if (rc == 0 && keys.count > 1) {
        redisReply *r = pw_redis_command(d->cmd->redis, errstr, errstr_size, (int)keys.count,
                                         (const char **)keys.ids);
        if (r)
            d->keys_removed += r->integer;
        else
            rc = -1;
        if (r)
            freeReplyObject(r);
    }
    pw_strv_free(&keys);
    return rc;
}

/* Step 4: the fleet-wide indexes. @returns 0 or -1 with errstr. */
static int pw_delete_unindex(pw_delete_t *d, char *errstr, size_t errstr_size)
{
    pw_redis_pipe_t *pipe = pw_redis_pipe_new(d->cmd->redis);
    const char *cmds[][3] = {{"ZREM", PW_KEY_TOKEN_EXPIRY, d->account_id},
                             {"SREM", PW_KEY_PARKED_ACCOUNTS, d->account_id},
                             {"SREM", PW_KEY_ALERT_PENDING, d->account_id},
                             {"ZREM", PW_KEY_VERIFY_DUE, d->account_id}};
    for (size_t i = 0; i < PW_ARRAY_SIZE(cmds); i++)
        pw_redis_pipe_append(pipe, 3, cmds[i], NULL);
    int rc = pw_redis_pipe_exec(pipe, errstr, errstr_size);
    for (size_t i = 0; rc == 0 && i < PW_ARRAY_SIZE(cmds); i++) {
        const redisReply *r = pw_redis_pipe_reply(pipe, i);
        if (r->type == REDIS_REPLY_ERROR) {
            pw_errstr_set(errstr, errstr_size, "%s %s: %s", cmds[i][0], cmds[i][1], r->str);
            rc = -1;
        } else {
            d->index_removed += r->integer;
        }
    }
    pw_redis_pipe_destroy(pipe);
    return rc;
}

static void pw_delete_report(const pw_delete_t *d)
{
    bool found = d->answered || d->keys_removed || d->index_removed;
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "account_id", d->account_id);
    cJSON_AddBoolToObject(out, "found", found);
    cJSON_AddNumberToObject(out, "parked_answered", (double)d->answered);
    cJSON_AddNumberToObject(out, "keys_removed", (double)d->keys_removed);
    cJSON_AddNumberToObject(out, "index_entries_removed", (double)d->index_removed);
    pw_token_print_json(out);
    cJSON_Delete(out);
    if (found)
        fprintf(stderr,
                "publish-worker: account %s removed: %ld parked post%s answered failed, %lld "
                "key%s removed (its fence counter stays)\n",
                d->account_id, d->answered, d->answered == 1 ? "" : "s", d->keys_removed,
                d->keys_removed == 1 ? "" : "s");
    else
        fprintf(stderr, "publish-worker: account %s has nothing stored: nothing to remove\n",
                d->account_id);
}

/* Steps 1 to 4 (see the DESIGN at the top). @returns the exit code. */
static int pw_delete_run(pw_delete_t *d, long long wait_s)
{
    char errstr[512];
    if (pw_delete_lock(d, wait_s) == -1)
        return 1;
    if (pw_delete_answer(d) == -1 || pw_delete_remove(d) == -1) {
        pw_delete_unlock(d);
        return 1;
    }
    if (pw_delete_leftovers(d, errstr, sizeof(errstr)) == -1 ||
        pw_delete_unindex(d, errstr, sizeof(errstr)) == -1) {
        fprintf(stderr, "publish-worker: token delete: %s\nRun it again to finish.\n", errstr);
        return 1;
    }
    pw_delete_report(d);
    return 0;
}

int pw_token_cmd_delete(const pw_token_opts_t *opts)
{
    if (!opts->account_id) {
        fprintf(stderr, "publish-worker: --account: required\n");
        return 2;
    }
    pw_token_cmd_t cmd;
    int exit_code = pw_token_cmd_open(&cmd, PW_CONFIG_NEED_KAFKA);
    if (exit_code == 0) {
        pw_delete_t d = {.cmd = &cmd,
                         .account_id = opts->account_id,
                         .k_lock = pw_key_replay_lock(opts->account_id),
                         .k_parked = pw_key_parked(opts->account_id),
                         .k_fence = pw_key_fence(opts->account_id)};
        snprintf(d.owner, sizeof(d.owner), "%s/token-delete/%ld", cmd.conf->worker_id,
                 (long)getpid());
        exit_code = pw_delete_run(&d, opts->wait_s >= 0 ? opts->wait_s : 30);
        if (d.rk)
            rd_kafka_destroy(d.rk);
    }
    pw_token_cmd_close(&cmd);
    return exit_code;
}
