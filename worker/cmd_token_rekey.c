/* token rekey: key rotation.
 *
 * DESIGN: every token record is read (SCAN, then HMGET fence
 * access_token refresh_token in pipelined batches of PW_REKEY_BATCH); one
 * whose values a key other than the ring's first sealed is opened and
 * sealed again with the first key, and written back by a script that
 * applies only if the record's fence and both sealed values are still the
 * ones read. The fence is not bumped: a refresh that took fence F+1 before
 * the rekey wrote still writes (its value, sealed with the first key,
 * simply replaces ours); a refresh or put that wrote between our read and
 * our write makes our write a no-op, and the record is read again (a
 * refresh seals with the first key, so it is usually done). Nothing else in
 * the record changes. A run is idempotent: records on the first key are
 * skipped, so an interrupted run is simply run again.
 *
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "kafka.h"
#include "keys.h"
#include "request.h"
#include "token_cmd.h"

#define PW_REKEY_BATCH 500
#define PW_REKEY_ROUNDS 3 /* reads of a record that changed meanwhile */

/* KEYS: token. ARGV: fence, access_token, refresh_token ("": none) as
 * read, then the new access_token and refresh_token. 1: written; 0: the
 * record changed (or went) since it was read. */
static const char pw_rekey_source[] =
    "local cur = redis.call('HMGET', KEYS[1], 'fence', 'access_token', 'refresh_token')\n"
    "if cur[1] ~= ARGV[1] or cur[2] ~= ARGV[2] or (cur[3] or '') ~= ARGV[3] then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'access_token', ARGV[4])\n"
    "if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'refresh_token', ARGV[5]) end\n"
    "return 1\n";

/* Records per key id. */
typedef struct pw_keycount_s {
    char id[PW_CRYPTO_KEY_ID_MAX + 1];
    long count;
} pw_keycount_t;

typedef struct pw_keycounts_s {
    pw_keycount_t *items;
    size_t count;
} pw_keycounts_t;

/* A record to re-seal: what was read and what replaces it. */
typedef struct pw_reseal_s {
    char *account_id;
    char *fence, *access, *refresh; /* as read ("" refresh: none) */
    char *new_access, *new_refresh;
} pw_reseal_t;

typedef struct pw_rekey_s {
    pw_token_cmd_t *cmd;
    pw_redis_pipe_t *pipe;
    bool dry_run;
    bool counting; /* the first pass: count records per key before */
    const char *primary;
    char sha[64];
    pw_keycounts_t before, after, predicted; /* predicted: --dry-run's after */
    long rekeyed, changed, unreadable, left;
    pw_strv_t retry; /* changed meanwhile: read again */
} pw_rekey_t;

static void pw_keycounts_add(pw_keycounts_t *kc, const char *id, long n)
{
    const char *name = id[0] ? id : "unknown";
    for (size_t i = 0; i < kc->count; i++) {
        if (strcmp(kc->items[i].id, name) == 0) {
            kc->items[i].count += n;
            return;
        }
    }
    kc->items = pw_realloc(kc->items, (kc->count + 1) * sizeof(*kc->items));
    snprintf(kc->items[kc->count].id, sizeof(kc->items[0].id), "%s", name);
    kc->items[kc->count++].count = n;
}

static cJSON *pw_keycounts_json(const pw_keycounts_t *kc)
{
    cJSON *obj = cJSON_CreateObject();
    for (size_t i = 0; i < kc->count; i++)
        cJSON_AddNumberToObject(obj, kc->items[i].id, (double)kc->items[i].count);
    return obj;
}

static void pw_reseal_free(pw_reseal_t *r)
{
    free(r->account_id);
    free(r->fence);
    free(r->access);
    free(r->refresh);
    free(r->new_access);
    free(r->new_refresh);
}

static const char *pw_str_of(const redisReply *r, size_t i)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || i >= r->elements)
        return NULL;
    return r->element[i]->type == REDIS_REPLY_STRING ? r->element[i]->str : NULL;
}

static void pw_rekey_unreadable(pw_rekey_t *rk, const char *account_id, const char *why)
{
    rk->unreadable++;
    fprintf(stderr, "publish-worker: token rekey: account %s: unreadable: %s\n", account_id, why);
}

/* Opens sealed (a field of account_id) and seals it with the first key;
 * NULL after reporting the account unreadable. */
static char *pw_rekey_reseal_one(pw_rekey_t *rk, const char *account_id, const char *field,
                                 const char *sealed)
{
    char *ctx = pw_token_store_context(account_id, field);
    pw_secret_t *plain = NULL;
    char why[300], *out = NULL;
    if (pw_crypto_open(rk->cmd->ring, sealed, ctx, &plain, why, sizeof(why)) == 0)
        out = pw_crypto_seal(rk->cmd->ring, plain, ctx);
    else
        pw_rekey_unreadable(rk, account_id, why);
    pw_secret_destroy(plain);
    free(ctx);
    return out;
}

/* Whether a sealed value (NULL: none) still needs the first key. */
static bool pw_rekey_needed(const pw_rekey_t *rk, const char *sealed)
{
    char id[PW_CRYPTO_KEY_ID_MAX + 1];
    return sealed &&
           (pw_crypto_sealed_key_id(sealed, id, sizeof(id)) == -1 || strcmp(id, rk->primary) != 0);
}

/* Opens and re-seals a record's values into *out.
 * @returns false after reporting the account unreadable. */
static bool pw_rekey_prepare(pw_rekey_t *rk, const char *account_id, const char *fence,
                             const char *access, const char *refresh, pw_reseal_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!access || !fence) {
        pw_rekey_unreadable(rk, account_id, "the record has no access token or fence");
        return false;
    }
    out->new_access = pw_rekey_reseal_one(rk, account_id, "access_token", access);
    if (out->new_access && refresh)
        out->new_refresh = pw_rekey_reseal_one(rk, account_id, "refresh_token", refresh);
    if (!out->new_access || (refresh && !out->new_refresh)) {
        pw_reseal_free(out);
        return false;
    }
    out->account_id = pw_strdup(account_id);
    out->fence = pw_strdup(fence);
    out->access = pw_strdup(access);
    out->refresh = pw_strdup(refresh ? refresh : "");
    return true;
}

/* Judges one record read as HMGET fence access_token refresh_token; on the
 * first pass counts it by key id, before and (for --dry-run) after.
 * @returns true with *out filled when it is to be written. */
static bool pw_rekey_judge(pw_rekey_t *rk, const char *account_id, const redisReply *hm,
                           pw_reseal_t *out)
{
    const char *fence = pw_str_of(hm, 0), *access = pw_str_of(hm, 1), *refresh = pw_str_of(hm, 2);
    if (!fence && !access && !refresh)
        return false; /* gone since the scan: nothing to re-seal */
    char id[PW_CRYPTO_KEY_ID_MAX + 1] = "";
    if (access && pw_crypto_sealed_key_id(access, id, sizeof(id)) == -1)
        id[0] = '\0';
    bool needed = !access || pw_rekey_needed(rk, access) || pw_rekey_needed(rk, refresh);
    bool write = needed && pw_rekey_prepare(rk, account_id, fence, access, refresh, out);
    if (rk->counting) {
        pw_keycounts_add(&rk->before, id, 1);
        pw_keycounts_add(&rk->predicted, write ? rk->primary : id, 1);
    }
    return write;
}

/* Queues the fenced write of one record. */
static void pw_rekey_queue(pw_rekey_t *rk, const pw_reseal_t *r)
{
    pw_key_t k_token = pw_key_token(r->account_id);
    const char *argv[] = {"EVALSHA",  rk->sha,       "1",
                          k_token.s,  r->fence,      r->access,
                          r->refresh, r->new_access, r->new_refresh ? r->new_refresh : ""};
    pw_redis_pipe_append(rk->pipe, 9, argv, NULL);
}

/* Writes the re-sealed records; one that changed meanwhile is read again.
 * @returns 0, or -1 when Redis failed. */
static int pw_rekey_write(pw_rekey_t *rk, pw_reseal_t *rs, size_t n, char *errstr,
                          size_t errstr_size)
{
    if (n == 0)
        return 0;
    const char *load[] = {"SCRIPT", "LOAD", pw_rekey_source};
    pw_redis_pipe_append(rk->pipe, 3, load, NULL); /* again, should Redis have restarted */
    for (size_t i = 0; i < n; i++)
        pw_rekey_queue(rk, &rs[i]);
    if (pw_redis_pipe_exec(rk->pipe, errstr, errstr_size) == -1)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const redisReply *r = pw_redis_pipe_reply(rk->pipe, i + 1);
        if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 1)
            rk->rekeyed++;
        else
            pw_strv_add(&rk->retry, rs[i].account_id);
    }
    return 0;
}

/* Reads a batch of records, re-seals those that need it and writes them. */
static int pw_rekey_batch(pw_rekey_t *rk, char **ids, size_t n, char *errstr, size_t errstr_size)
{
    for (size_t i = 0; i < n; i++) {
        pw_key_t k_token = pw_key_token(ids[i]);
        const char *argv[] = {"HMGET", k_token.s, "fence", "access_token", "refresh_token"};
        pw_redis_pipe_append(rk->pipe, 5, argv, NULL);
    }
    if (pw_redis_pipe_exec(rk->pipe, errstr, errstr_size) == -1)
        return -1;
    pw_reseal_t *rs = pw_calloc(n, sizeof(*rs));
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        const redisReply *hm = pw_redis_pipe_reply(rk->pipe, i);
        if (hm && hm->type == REDIS_REPLY_ERROR) {
            pw_rekey_unreadable(rk, ids[i], hm->str);
            continue;
        }
        if (pw_rekey_judge(rk, ids[i], hm, &rs[count]))
            count++;
    }
    int rc = 0;
    if (rk->dry_run)
        rk->rekeyed += (long)count;
    else
        rc = pw_rekey_write(rk, rs, count, errstr, errstr_size);
    for (size_t i = 0; i < count; i++)
        pw_reseal_free(&rs[i]);
    free(rs);
    return rc;
}

static int pw_rekey_page(void *arg, char **ids, size_t count, char *errstr, size_t errstr_size)
{
    for (size_t start = 0; start < count; start += PW_REKEY_BATCH) {
        size_t n = count - start < PW_REKEY_BATCH ? count - start : PW_REKEY_BATCH;
        if (pw_rekey_batch(arg, ids + start, n, errstr, errstr_size) == -1)
            return -1;
    }
    return 0;
}

/* Records that changed between our read and our write, read again: most
 * were refreshed (so sealed with the first key) and are done. */
static int pw_rekey_retry(pw_rekey_t *rk, char *errstr, size_t errstr_size)
{
    rk->counting = false;
    for (int round = 0; round < PW_REKEY_ROUNDS && rk->retry.count; round++) {
        pw_strv_t ids = rk->retry;
        memset(&rk->retry, 0, sizeof(rk->retry));
        rk->changed += (long)ids.count;
        long rekeyed = rk->rekeyed;
        int rc = pw_rekey_page(rk, ids.ids, ids.count, errstr, errstr_size);
        rk->changed -= rk->rekeyed - rekeyed; /* written on this read: rekeyed, not changed */
        pw_strv_free(&ids);
        if (rc == -1)
            return -1;
    }
    for (size_t i = 0; i < rk->retry.count; i++)
        fprintf(stderr, "publish-worker: token rekey: account %s changed on every try: left\n",
                rk->retry.ids[i]);
    rk->left = (long)rk->retry.count;
    return 0;
}

/* Counts records per key id as they stand now. */
static int pw_rekey_count_page(void *arg, char **ids, size_t count, char *errstr,
                               size_t errstr_size)
{
    pw_rekey_t *rk = arg;
    for (size_t i = 0; i < count; i++) {
        pw_key_t k_token = pw_key_token(ids[i]);
        const char *argv[] = {"HGET", k_token.s, "access_token"};
        pw_redis_pipe_append(rk->pipe, 3, argv, NULL);
    }
    if (pw_redis_pipe_exec(rk->pipe, errstr, errstr_size) == -1)
        return -1;
    for (size_t i = 0; i < count; i++) {
        const redisReply *r = pw_redis_pipe_reply(rk->pipe, i);
        char id[PW_CRYPTO_KEY_ID_MAX + 1] = "";
        if (!r || r->type != REDIS_REPLY_STRING)
            continue;
        if (pw_crypto_sealed_key_id(r->str, id, sizeof(id)) == -1)
            id[0] = '\0';
        pw_keycounts_add(&rk->after, id, 1);
    }
    return 0;
}

static void pw_rekey_report(const pw_rekey_t *rk)
{
    cJSON *out = cJSON_CreateObject();
    cJSON_AddBoolToObject(out, "dry_run", rk->dry_run);
    cJSON_AddStringToObject(out, "primary_key_id", rk->primary);
    cJSON_AddItemToObject(out, "records_before", pw_keycounts_json(&rk->before));
    cJSON_AddItemToObject(out, "records_after",
                          pw_keycounts_json(rk->dry_run ? &rk->predicted : &rk->after));
    cJSON_AddNumberToObject(out, rk->dry_run ? "would_rekey" : "rekeyed", (double)rk->rekeyed);
    cJSON_AddNumberToObject(out, "changed_meanwhile", (double)rk->changed);
    cJSON_AddNumberToObject(out, "unreadable", (double)rk->unreadable);
    cJSON_AddNumberToObject(out, "left", (double)rk->left);
    pw_token_print_json(out);
    cJSON_Delete(out);
    fprintf(stderr,
            "publish-worker: token rekey%s: %ld record%s %s with key %s, %ld changed meanwhile, "
            "%ld unreadable, %ld left\n",
            rk->dry_run ? " --dry-run" : "", rk->rekeyed, rk->rekeyed == 1 ? "" : "s",
            rk->dry_run ? "would be re-sealed" : "re-sealed", rk->primary, rk->changed,
            rk->unreadable, rk->left);
    if (rk->unreadable)
        fprintf(stderr,
                "Unreadable records (named above) are sealed with a key not in the ring, or "
                "damaged: put the old key back in the ring and run token rekey again, or "
                "token put those accounts.\n");
}

/* Loads the write script (its SHA-1 into rk->sha). */
static int pw_rekey_load(pw_rekey_t *rk, char *errstr, size_t errstr_size)
{
    const char *argv[] = {"SCRIPT", "LOAD", pw_rekey_source};
    redisReply *sha = pw_redis_command(rk->cmd->redis, errstr, errstr_size, 3, argv);
    if (!sha)
        return -1;
    snprintf(rk->sha, sizeof(rk->sha), "%s", sha->type == REDIS_REPLY_STRING ? sha->str : "");
    freeReplyObject(sha);
    return 0;
}

static int pw_rekey_run(pw_rekey_t *rk, char *errstr, size_t errstr_size)
{
    if (!rk->dry_run && pw_rekey_load(rk, errstr, errstr_size) == -1)
        return -1;
    if (pw_token_cmd_scan(rk->cmd, pw_rekey_page, rk, errstr, errstr_size) == -1)
        return -1;
    if (rk->dry_run)
        return 0;
    if (pw_rekey_retry(rk, errstr, errstr_size) == -1)
        return -1;
    return pw_token_cmd_scan(rk->cmd, pw_rekey_count_page, rk, errstr, errstr_size);
}

int pw_token_cmd_rekey(const pw_token_opts_t *opts)
{
    pw_token_cmd_t cmd;
    int exit_code = pw_token_cmd_open(&cmd, 0);
    if (exit_code != 0) {
        pw_token_cmd_close(&cmd);
        return exit_code;
    }
    pw_rekey_t rk = {.cmd = &cmd,
                     .dry_run = opts->dry_run,
                     .counting = true,
                     .primary = pw_keyring_primary_id(cmd.ring),
                     .pipe = pw_redis_pipe_new(cmd.redis)};
    char errstr[1024];
    if (pw_rekey_run(&rk, errstr, sizeof(errstr)) == -1) {
        fprintf(stderr,
                "publish-worker: token rekey stopped: %s\nWhat was re-sealed stays so; run it "
                "again to finish.\n",
                errstr);
        exit_code = 1;
    } else {
        pw_rekey_report(&rk);
        exit_code = rk.unreadable || rk.left ? 1 : 0;
    }
    pw_strv_free(&rk.retry);
    free(rk.before.items);
    free(rk.after.items);
    free(rk.predicted.items);
    pw_redis_pipe_destroy(rk.pipe);
    pw_token_cmd_close(&cmd);
    return exit_code;
}
