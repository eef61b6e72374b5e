/* Token store: sealed token records in Redis with fenced writes. */
#include "token_store.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"

struct pw_token_store_s {
    pw_redis_t *redis;        /* borrowed */
    const pw_keyring_t *ring; /* borrowed */
};

/* KEYS: token, fence, account. ARGV: now_ms, then field/value pairs.
 * A put replaces the record and takes the next fencing number. */
static pw_redis_script_t pw_token_put_script = {
    .source = "local fence = redis.call('INCR', KEYS[2])\n"
              "redis.call('DEL', KEYS[1])\n"
              "redis.call('HSET', KEYS[1], 'fence', fence, unpack(ARGV, 2))\n"
              "redis.call('HSET', KEYS[3], 'status', 'active', 'reason', 'token_put',"
              " 'at_ms', ARGV[1])\n"
              "return fence\n",
};

/* KEYS: token. ARGV: fence, then field/value pairs. Applies only a newer
 * fence, and only over a record: a refresh replaces a token, it never
 * brings back one that token delete removed. */
/* KEYS: verification, verify_due, token. ARGV: account, fence, outcome ("":
 * none), message, at_ms, due_s. Only while the token verified is the stored
 * one: a verification that ends after a token put, a refresh or a token
 * delete records nothing (and brings back no key of a deleted account). */
static pw_redis_script_t pw_token_verified_script = {
    .source = "local f = redis.call('HGET', KEYS[3], 'fence')\n"
              "if not f or tonumber(f) ~= tonumber(ARGV[2]) then return 0 end\n"
              "if ARGV[3] ~= '' then\n"
              "  redis.call('DEL', KEYS[1])\n"
              "  redis.call('HSET', KEYS[1], 'fence', ARGV[2], 'outcome', ARGV[3],"
              " 'message', ARGV[4], 'at_ms', ARGV[5])\n"
              "end\n"
              "return redis.call('ZADD', KEYS[2], ARGV[6], ARGV[1])\n",
};

static pw_redis_script_t pw_token_write_script = {
    .source = "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end\n"
              "local cur = tonumber(redis.call('HGET', KEYS[1], 'fence') or '0')\n"
              "if tonumber(ARGV[1]) <= cur then return 0 end\n"
              "redis.call('HSET', KEYS[1], 'fence', ARGV[1], unpack(ARGV, 2))\n"
              "return 1\n",
};

pw_token_store_t *pw_token_store_new(pw_redis_t *redis, const pw_keyring_t *ring)
{
    pw_token_store_t *store = pw_calloc(1, sizeof(*store));
    store->redis = redis;
    store->ring = ring;
    return store;
}

void pw_token_store_destroy(pw_token_store_t *store)
{
    free(store);
}

const char *pw_refresh_method_name(pw_refresh_method_t method)
{
    return method == PW_REFRESH_OAUTH2 ? "oauth2" : "threads";
}

int pw_refresh_method_parse(const char *name, pw_refresh_method_t *method)
{
    if (strcmp(name, "threads") == 0)
        *method = PW_REFRESH_THREADS;
    else if (strcmp(name, "oauth2") == 0)
        *method = PW_REFRESH_OAUTH2;
    else
        return -1;
    return 0;
}

void pw_token_destroy(pw_token_t *token)
{
    if (!token)
        return;
    free(token->account_id);
    free(token->user_id);
    free(token->scopes);
    free(token->key_id);
    pw_secret_destroy(token->access_token);
    pw_secret_destroy(token->refresh_token);
    free(token);
}

char *pw_token_store_context(const char *account_id, const char *field)
{
    return pw_asprintf("%s\n%s", account_id, field);
}

/* Field/value pairs of a token record, sealing the secrets; owned strings are
 * collected in owned[] for the caller to free. Returns the argument count. */
typedef struct pw_token_fields_s {
    const char *argv[24];
    char *owned[8];
    int argc, owned_count;
} pw_token_fields_t;

static void pw_token_fields_add(pw_token_fields_t *f, const char *field, char *value, int owned)
{
    f->argv[f->argc++] = field;
    f->argv[f->argc++] = value;
    if (owned)
        f->owned[f->owned_count++] = value;
}

/* refreshed: written by a refresh (refreshed_at_ms), not by a put. */
static void pw_token_fields_build(pw_token_store_t *store, const pw_token_t *token, bool refreshed,
                                  pw_token_fields_t *f)
{
    memset(f, 0, sizeof(*f));
    pw_token_fields_add(f, "user_id", token->user_id, 0);
    pw_token_fields_add(f, "refresh_method", (char *)pw_refresh_method_name(token->refresh_method),
                        0);
    pw_token_fields_add(f, "scopes", token->scopes ? token->scopes : "", 0);
    pw_token_fields_add(f, "issued_at", pw_asprintf("%" PRId64, token->issued_at), 1);
    pw_token_fields_add(f, "expires_at", pw_asprintf("%" PRId64, token->expires_at), 1);
    char *now_ms = pw_asprintf("%" PRId64, pw_now_ms());
    pw_token_fields_add(f, "updated_at_ms", now_ms, 1);
    if (refreshed)
        pw_token_fields_add(f, "refreshed_at_ms", now_ms, 0);
    char *ctx = pw_token_store_context(token->account_id, "access_token");
    pw_token_fields_add(f, "access_token", pw_crypto_seal(store->ring, token->access_token, ctx),
                        1);
    free(ctx);
    if (token->refresh_token) {
        ctx = pw_token_store_context(token->account_id, "refresh_token");
        pw_token_fields_add(f, "refresh_token",
                            pw_crypto_seal(store->ring, token->refresh_token, ctx), 1);
        free(ctx);
    }
}

static void pw_token_fields_free(pw_token_fields_t *f)
{
    for (int i = 0; i < f->owned_count; i++)
        free(f->owned[i]);
}

static int pw_token_check(const pw_token_t *token, char *errstr, size_t errstr_size)
{
    if (!token->access_token || pw_secret_len(token->access_token) == 0) {
        pw_errstr_set(errstr, errstr_size, "refusing to store an empty access token");
        return -1;
    }
    if (token->refresh_token && pw_secret_len(token->refresh_token) == 0) {
        pw_errstr_set(errstr, errstr_size, "refusing to store an empty refresh token");
        return -1;
    }
    return 0;
}

/* Keeps the sweep's index in step with the record. */
static pw_ts_status_t pw_token_index_expiry(pw_token_store_t *store, const pw_token_t *token,
                                            char *errstr, size_t errstr_size)
{
    char score[32];
    snprintf(score, sizeof(score), "%" PRId64, token->expires_at);
    const char *argv[] = {"ZADD", PW_KEY_TOKEN_EXPIRY, score, token->account_id};
    redisReply *reply = pw_redis_command(store->redis, errstr, errstr_size, 4, argv);
    if (!reply)
        return PW_TS_ERROR;
    freeReplyObject(reply);
    return PW_TS_OK;
}

pw_ts_status_t pw_token_store_put(pw_token_store_t *store, const pw_token_t *token, int64_t *fence,
                                  char *errstr, size_t errstr_size)
{
    if (pw_token_check(token, errstr, errstr_size) == -1)
        return PW_TS_ERROR;
    pw_key_t k_token = pw_key_token(token->account_id), k_fence = pw_key_fence(token->account_id),
             k_account = pw_key_account(token->account_id);
    char now_ms[32];
    snprintf(now_ms, sizeof(now_ms), "%" PRId64, pw_now_ms());

    pw_token_fields_t f;
    pw_token_fields_build(store, token, false, &f);
    const char *args[25] = {now_ms};
    memcpy(args + 1, f.argv, sizeof(char *) * (size_t)f.argc);
    const char *keys[] = {k_token.s, k_fence.s, k_account.s};
    redisReply *reply = pw_redis_eval(store->redis, &pw_token_put_script, 3, keys, f.argc + 1, args,
                                      errstr, errstr_size);
    pw_token_fields_free(&f);
    if (!reply)
        return PW_TS_ERROR;
    if (fence)
        *fence = reply->integer;
    freeReplyObject(reply);
    return pw_token_index_expiry(store, token, errstr, errstr_size);
}

pw_ts_status_t pw_token_store_write_fenced(pw_token_store_t *store, const pw_token_t *token,
                                           int64_t fence, char *errstr, size_t errstr_size)
{
    if (pw_token_check(token, errstr, errstr_size) == -1)
        return PW_TS_ERROR;
    pw_key_t k_token = pw_key_token(token->account_id);
    char fence_str[32];
    snprintf(fence_str, sizeof(fence_str), "%" PRId64, fence);

    pw_token_fields_t f;
    pw_token_fields_build(store, token, true, &f);
    const char *args[25] = {fence_str};
    memcpy(args + 1, f.argv, sizeof(char *) * (size_t)f.argc);
    const char *keys[] = {k_token.s};
    redisReply *reply = pw_redis_eval(store->redis, &pw_token_write_script, 1, keys, f.argc + 1,
                                      args, errstr, errstr_size);
    pw_token_fields_free(&f);
    if (!reply)
        return PW_TS_ERROR;
    int applied = reply->integer == 1;
    freeReplyObject(reply);
    if (!applied) {
        pw_errstr_set(errstr, errstr_size, "a newer token was written (fence %" PRId64 " is stale)",
                      fence);
        return PW_TS_STALE;
    }
    return pw_token_index_expiry(store, token, errstr, errstr_size);
}

pw_ts_status_t pw_token_store_note_verification(pw_token_store_t *store, const char *account_id,
                                                int64_t fence, const char *outcome,
                                                const char *message, int64_t at_ms, int64_t due_s,
                                                char *errstr, size_t errstr_size)
{
    pw_key_t k_verify = pw_key_verify(account_id);
    char fence_s[32], at_s[32], due[32];
    snprintf(fence_s, sizeof(fence_s), "%" PRId64, fence);
    snprintf(at_s, sizeof(at_s), "%" PRId64, at_ms);
    snprintf(due, sizeof(due), "%" PRId64, due_s);
    pw_key_t k_token = pw_key_token(account_id);
    const char *keys[] = {k_verify.s, PW_KEY_VERIFY_DUE, k_token.s};
    const char *args[] = {account_id, fence_s, outcome ? outcome : "", message ? message : "",
                          at_s,       due};
    redisReply *reply = pw_redis_eval(store->redis, &pw_token_verified_script, 3, keys, 6, args,
                                      errstr, errstr_size);
    if (!reply)
        return PW_TS_ERROR;
    freeReplyObject(reply);
    return PW_TS_OK;
}

static const char *pw_reply_field(const redisReply *reply, const char *name)
{
    for (size_t i = 0; i + 1 < reply->elements; i += 2)
        if (strcmp(reply->element[i]->str, name) == 0)
            return reply->element[i + 1]->str;
    return NULL;
}

/* A number field as the writers write it ("%" PRId64) within 0..max;
 * absent: 0. @returns -1 with errstr when it is there but not such a number. */
static int pw_reply_number(const redisReply *reply, const char *account_id, const char *name,
                           int64_t max, int64_t *out, char *errstr, size_t errstr_size)
{
    const char *v = pw_reply_field(reply, name);
    *out = 0;
    if (!v)
        return 0;
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (!isdigit((unsigned char)v[0]) || *end || errno || n > max) {
        pw_errstr_set(errstr, errstr_size, "account %s: token record has a malformed %s",
                      account_id, name);
        return -1;
    }
    *out = n;
    return 0;
}

/* The fields stored in the clear. What we did not write is not guessed at:
 * an unknown method or a malformed number makes the record unreadable.
 * @returns 0, or -1 with errstr. */
static int pw_token_parse_plain(const redisReply *reply, pw_token_t *token, char *errstr,
                                size_t errstr_size)
{
    const char *v, *account_id = token->account_id;
    token->user_id = pw_strdup((v = pw_reply_field(reply, "user_id")) ? v : "");
    if ((v = pw_reply_field(reply, "scopes")) && *v)
        token->scopes = pw_strdup(v);
    if ((v = pw_reply_field(reply, "refresh_method")) &&
        pw_refresh_method_parse(v, &token->refresh_method) == -1) {
        pw_errstr_set(errstr, errstr_size, "account %s: token record has an unknown refresh_method",
                      account_id);
        return -1;
    }
    if (pw_reply_number(reply, account_id, "issued_at", PW_TIME_MAX_S, &token->issued_at, errstr,
                        errstr_size) == -1 ||
        pw_reply_number(reply, account_id, "expires_at", PW_TIME_MAX_S, &token->expires_at, errstr,
                        errstr_size) == -1 ||
        pw_reply_number(reply, account_id, "updated_at_ms", PW_TIME_MAX_S * 1000 + 999,
                        &token->updated_at_ms, errstr, errstr_size) == -1 ||
        pw_reply_number(reply, account_id, "fence", INT64_MAX, &token->fence, errstr,
                        errstr_size) == -1)
        return -1;
    return 0;
}

static int pw_token_open_field(pw_token_store_t *store, const char *account_id, const char *field,
                               const char *sealed, pw_secret_t **out, char *errstr,
                               size_t errstr_size)
{
    char *ctx = pw_token_store_context(account_id, field);
    char reason[256];
    int rc = pw_crypto_open(store->ring, sealed, ctx, out, reason, sizeof(reason));
    free(ctx);
    if (rc == -1)
        pw_errstr_set(errstr, errstr_size, "account %s: %s: %s", account_id, field, reason);
    return rc;
}

pw_ts_status_t pw_token_store_parse(pw_token_store_t *store, const char *account_id,
                                    const redisReply *reply, pw_token_t **out, char *errstr,
                                    size_t errstr_size)
{
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0) {
        pw_errstr_set(errstr, errstr_size, "account %s has no token", account_id);
        return PW_TS_NOT_FOUND;
    }
    pw_token_t *token = pw_calloc(1, sizeof(*token));
    token->account_id = pw_strdup(account_id);
    pw_ts_status_t status =
        pw_token_parse_plain(reply, token, errstr, errstr_size) == 0 ? PW_TS_OK : PW_TS_UNREADABLE;
    const char *sealed = pw_reply_field(reply, "access_token");
    if (status == PW_TS_OK && !sealed) {
        pw_errstr_set(errstr, errstr_size, "account %s: token record has no access token",
                      account_id);
        status = PW_TS_UNREADABLE;
    } else if (status == PW_TS_OK) {
        const char *colon = strchr(sealed, ':');
        token->key_id = colon ? pw_strndup(sealed, (size_t)(colon - sealed)) : pw_strdup("");
        if (pw_token_open_field(store, account_id, "access_token", sealed, &token->access_token,
                                errstr, errstr_size) == -1)
            status = PW_TS_UNREADABLE;
    }
    sealed = pw_reply_field(reply, "refresh_token");
    if (status == PW_TS_OK && sealed &&
        pw_token_open_field(store, account_id, "refresh_token", sealed, &token->refresh_token,
                            errstr, errstr_size) == -1)
        status = PW_TS_UNREADABLE;
    if (status != PW_TS_OK) {
        pw_token_destroy(token);
        return status;
    }
    *out = token;
    return PW_TS_OK;
}

pw_ts_status_t pw_token_store_get(pw_token_store_t *store, const char *account_id, pw_token_t **out,
                                  char *errstr, size_t errstr_size)
{
    pw_key_t k_token = pw_key_token(account_id);
    const char *argv[] = {"HGETALL", k_token.s};
    redisReply *reply = pw_redis_command(store->redis, errstr, errstr_size, 2, argv);
    if (!reply)
        return PW_TS_ERROR;
    pw_ts_status_t status =
        pw_token_store_parse(store, account_id, reply, out, errstr, errstr_size);
    freeReplyObject(reply);
    return status;
}

int64_t pw_token_store_fence_of(const redisReply *hash)
{
    const char *v = hash->type == REDIS_REPLY_ARRAY ? pw_reply_field(hash, "fence") : NULL;
    return v ? strtoll(v, NULL, 10) : 0;
}

pw_ts_status_t pw_token_store_get_fence(pw_token_store_t *store, const char *account_id,
                                        int64_t *fence, char *errstr, size_t errstr_size)
{
    pw_key_t k_token = pw_key_token(account_id);
    const char *argv[] = {"HGET", k_token.s, "fence"};
    redisReply *reply = pw_redis_command(store->redis, errstr, errstr_size, 3, argv);
    if (!reply)
        return PW_TS_ERROR;
    *fence = reply->type == REDIS_REPLY_STRING ? strtoll(reply->str, NULL, 10) : 0;
    freeReplyObject(reply);
    return PW_TS_OK;
}

pw_ts_status_t pw_token_store_get_status(pw_token_store_t *store, const char *account_id,
                                         char **status, char *errstr, size_t errstr_size)
{
    pw_key_t k_account = pw_key_account(account_id);
    const char *argv[] = {"HGET", k_account.s, "status"};
    redisReply *reply = pw_redis_command(store->redis, errstr, errstr_size, 3, argv);
    if (!reply)
        return PW_TS_ERROR;
    *status = reply->type == REDIS_REPLY_STRING ? pw_strdup(reply->str) : NULL;
    freeReplyObject(reply);
    return PW_TS_OK;
}
