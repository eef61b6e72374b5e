/* Census: the fleet's accounts counted for /metrics (census.h). */
#include "census.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "log.h"
#include "metrics_accounts.h"

#define PW_CENSUS_BATCH "500"

/* KEYS: token records. ARGV: now_s, verification interval (0: off).
 * Returns {active, reconnect_required, quota_wait, earliest expiry of an
 * unmarked account, key id, records, key id, records...}. */
static pw_redis_script_t pw_census_tokens_script = {
    .source =
        "local now, interval = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
        "local n, earliest, kids = {0, 0, 0}, 0, {}\n"
        "for _, k in ipairs(KEYS) do\n"
        "  local v = redis.call('HMGET', k, 'access_token', 'expires_at')\n"
        "  local prefix = string.sub(k, 1, #k - 5)\n"
        "  if v[1] then\n"
        "    local status = redis.call('HGET', prefix .. 'account', 'status')\n"
        "    local st = 1\n"
        "    if status and status ~= 'active' then st = 2\n"
        "    elseif redis.call('EXISTS', prefix .. 'quota_hold') == 1 then st = 3 end\n"
        "    n[st] = n[st] + 1\n"
        "    local exp = tonumber(v[2])\n"
        "    if st ~= 2 and exp and (earliest == 0 or exp < earliest) then earliest = exp end\n"
        "    local kid = string.match(v[1], '^([^:]+):') or '?'\n"
        "    kids[kid] = (kids[kid] or 0) + 1\n"
        "    local account = string.match(prefix, '^pw:{(.*)}:$')\n"
        "    if interval > 0 and account then\n"
        "      local spread = tonumber(string.sub(redis.sha1hex(account), 1, 8), 16) % interval\n"
        "      redis.call('ZADD', '" PW_KEY_VERIFY_DUE "', 'NX', now + spread, account)\n"
        "    end\n"
        "  end\n"
        "end\n"
        "local out = {n[1], n[2], n[3], earliest}\n"
        "for kid, c in pairs(kids) do out[#out + 1] = kid out[#out + 1] = c end\n"
        "return out\n",
};

/* KEYS: parked lists. Returns the posts they hold. */
static pw_redis_script_t pw_census_parked_script = {
    .source = "local n = 0\n"
              "for _, k in ipairs(KEYS) do n = n + redis.call('LLEN', k) end\n"
              "return n\n",
};

/* KEYS: census. ARGV: field/value pairs. Replaces the counts, keeping the
 * sweeps' last successes. */
static pw_redis_script_t pw_census_store_script = {
    .source = "local keep = redis.call('HMGET', KEYS[1], 'sweep_ok_ms', 'verify_ok_ms')\n"
              "redis.call('DEL', KEYS[1])\n"
              "redis.call('HSET', KEYS[1], unpack(ARGV))\n"
              "if keep[1] then redis.call('HSET', KEYS[1], 'sweep_ok_ms', keep[1]) end\n"
              "if keep[2] then redis.call('HSET', KEYS[1], 'verify_ok_ms', keep[2]) end\n"
              "return 1\n",
};

static void pw_census_add_key_id(pw_census_t *c, const char *key_id, long records)
{
    for (int i = 0; i < c->key_count; i++) {
        if (strcmp(c->keys[i].key_id, key_id) == 0) {
            c->keys[i].records += records;
            return;
        }
    }
    if (c->key_count == PW_CENSUS_KEY_IDS_MAX)
        return; /* a ring holds a few keys; more ids are not ours to show */
    snprintf(c->keys[c->key_count].key_id, sizeof(c->keys[0].key_id), "%s", key_id);
    c->keys[c->key_count++].records = records;
}

/* Counts one SCAN batch of token records into c. */
static int pw_census_tokens(pw_ctx_t *ctx, const redisReply *batch, pw_census_t *c)
{
    if (batch->elements == 0)
        return 0;
    const char **keys = pw_calloc(batch->elements, sizeof(*keys));
    for (size_t i = 0; i < batch->elements; i++)
        keys[i] = batch->element[i]->str;
    char now[32], interval[32], errstr[256];
    snprintf(now, sizeof(now), "%lld", (long long)(pw_now_ms() / 1000));
    snprintf(interval, sizeof(interval), "%ld", ctx->conf->token_verify_interval_s);
    const char *args[] = {now, interval};
    redisReply *r = pw_redis_eval(ctx->redis, &pw_census_tokens_script, (int)batch->elements, keys,
                                  2, args, errstr, sizeof(errstr));
    free(keys);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 4) {
        if (r)
            freeReplyObject(r);
        return -1;
    }
    for (int i = 0; i < PW_CENSUS_STATES; i++)
        c->accounts[i] += (long)r->element[i]->integer;
    int64_t earliest = r->element[3]->integer;
    if (earliest && (!c->earliest_expiry_s || earliest < c->earliest_expiry_s))
        c->earliest_expiry_s = earliest;
    for (size_t i = 4; i + 1 < r->elements; i += 2)
        pw_census_add_key_id(c, r->element[i]->str, (long)r->element[i + 1]->integer);
    freeReplyObject(r);
    return 0;
}

/* Sums one SSCAN batch of parked accounts' lists into c. */
static int pw_census_parked(pw_ctx_t *ctx, const redisReply *batch, pw_census_t *c)
{
    if (batch->elements == 0)
        return 0;
    pw_key_t *lists = pw_calloc(batch->elements, sizeof(*lists));
    const char **keys = pw_calloc(batch->elements, sizeof(*keys));
    for (size_t i = 0; i < batch->elements; i++) {
        lists[i] = pw_key_parked(batch->element[i]->str);
        keys[i] = lists[i].s;
    }
    char errstr[256];
    redisReply *r = pw_redis_eval(ctx->redis, &pw_census_parked_script, (int)batch->elements, keys,
                                  0, NULL, errstr, sizeof(errstr));
    free(keys);
    free(lists);
    if (!r)
        return -1;
    c->parked_posts += (long)r->integer;
    freeReplyObject(r);
    return 0;
}

/* Walks a SCAN (key NULL) or SSCAN of key, handing each batch to count. */
static int pw_census_walk(pw_ctx_t *ctx, const char *key, pw_census_t *c,
                          int (*count)(pw_ctx_t *, const redisReply *, pw_census_t *))
{
    char cursor[32] = "0", errstr[256];
    do {
        const char *scan[] = {"SCAN", cursor, "MATCH", "pw:{*}:token", "COUNT", PW_CENSUS_BATCH};
        const char *sscan[] = {"SSCAN", key, cursor, "COUNT", PW_CENSUS_BATCH};
        redisReply *r = key ? pw_redis_command(ctx->redis, errstr, sizeof(errstr), 5, sscan)
                            : pw_redis_command(ctx->redis, errstr, sizeof(errstr), 6, scan);
        int rc = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 ? 0 : -1;
        if (rc == 0) {
            snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
            rc = count(ctx, r->element[1], c);
        }
        if (r)
            freeReplyObject(r);
        if (rc == -1 || pw_ctx_draining(ctx))
            return -1;
    } while (strcmp(cursor, "0") != 0);
    return 0;
}

static void pw_census_store(pw_ctx_t *ctx, const pw_census_t *c)
{
    char v[8 + 2 * PW_CENSUS_KEY_IDS_MAX][80];
    const char *args[2 * (6 + PW_CENSUS_KEY_IDS_MAX)];
    int n = 0, s = 0;
    for (int i = 0; i < PW_CENSUS_STATES; i++) {
        args[n++] = pw_census_state_name((pw_census_state_t)i);
        snprintf(v[s], sizeof(v[s]), "%ld", c->accounts[i]);
        args[n++] = v[s++];
    }
    args[n++] = "parked";
    snprintf(v[s], sizeof(v[s]), "%ld", c->parked_posts);
    args[n++] = v[s++];
    args[n++] = "earliest_expiry_s";
    snprintf(v[s], sizeof(v[s]), "%lld", (long long)c->earliest_expiry_s);
    args[n++] = v[s++];
    args[n++] = "taken_ms";
    snprintf(v[s], sizeof(v[s]), "%lld", (long long)pw_now_ms());
    args[n++] = v[s++];
    for (int i = 0; i < c->key_count; i++) {
        snprintf(v[s], sizeof(v[s]), "key:%s", c->keys[i].key_id);
        args[n++] = v[s++];
        snprintf(v[s], sizeof(v[s]), "%ld", c->keys[i].records);
        args[n++] = v[s++];
    }
    const char *keys[] = {PW_KEY_CENSUS};
    char errstr[256];
    redisReply *r = pw_redis_eval(ctx->redis, &pw_census_store_script, 1, keys, n, args, errstr,
                                  sizeof(errstr));
    if (r)
        freeReplyObject(r);
}

/* The lease: one census at a time in the fleet, about one a sweep interval
 * (at most one in 50 s). */
static bool pw_census_lease(pw_ctx_t *ctx)
{
    char errstr[256], ttl[32];
    long long ms = ctx->conf->token_sweep_interval_s * 750LL;
    snprintf(ttl, sizeof(ttl), "%lld", ms < 50000 ? ms : 50000);
    const char *argv[] = {"SET", PW_KEY_CENSUS_LOCK, ctx->conf->worker_id, "NX", "PX", ttl};
    redisReply *r = pw_redis_command(ctx->redis, errstr, sizeof(errstr), 6, argv);
    bool ours = r && r->type == REDIS_REPLY_STATUS;
    if (r)
        freeReplyObject(r);
    return ours;
}

static void pw_census_take(pw_ctx_t *ctx)
{
    pw_census_t c = {0};
    int64_t t0 = pw_mono_ms();
    if (pw_census_walk(ctx, NULL, &c, pw_census_tokens) == -1 ||
        pw_census_walk(ctx, PW_KEY_PARKED_ACCOUNTS, &c, pw_census_parked) == -1) {
        pw_log_warn("account census not taken: redis failed or the worker stops");
        return;
    }
    pw_census_store(ctx, &c);
    pw_log_debug("account census taken", PW_F_INT("ms", pw_mono_ms() - t0),
                 PW_F_INT("active", c.accounts[PW_CENSUS_ACTIVE]),
                 PW_F_INT("parked_posts", c.parked_posts));
}

/* Reads pw:census into the metrics. */
static void pw_census_show(pw_ctx_t *ctx)
{
    char errstr[256];
    const char *argv[] = {"HGETALL", PW_KEY_CENSUS};
    redisReply *r = pw_redis_command(ctx->redis, errstr, sizeof(errstr), 2, argv);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        if (r)
            freeReplyObject(r);
        return;
    }
    pw_census_t c = {0};
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const char *f = r->element[i]->str, *v = r->element[i + 1]->str;
        long long n = strtoll(v, NULL, 10);
        for (int s = 0; s < PW_CENSUS_STATES; s++)
            if (strcmp(f, pw_census_state_name((pw_census_state_t)s)) == 0)
                c.accounts[s] = (long)n;
        if (strncmp(f, "key:", 4) == 0)
            pw_census_add_key_id(&c, f + 4, (long)n);
        c.parked_posts = strcmp(f, "parked") == 0 ? (long)n : c.parked_posts;
        c.earliest_expiry_s = strcmp(f, "earliest_expiry_s") == 0 ? n : c.earliest_expiry_s;
        c.taken_ms = strcmp(f, "taken_ms") == 0 ? n : c.taken_ms;
        c.sweep_ok_ms = strcmp(f, "sweep_ok_ms") == 0 ? n : c.sweep_ok_ms;
        c.verify_ok_ms = strcmp(f, "verify_ok_ms") == 0 ? n : c.verify_ok_ms;
    }
    freeReplyObject(r);
    pw_metrics_set_census(&c);
}

void pw_census_run(pw_ctx_t *ctx)
{
    if (pw_census_lease(ctx))
        pw_census_take(ctx);
    pw_census_show(ctx);
}

void pw_census_note_success(pw_ctx_t *ctx, const char *field)
{
    char now[32], errstr[256];
    snprintf(now, sizeof(now), "%lld", (long long)pw_now_ms());
    const char *argv[] = {"HSET", PW_KEY_CENSUS, field, now};
    redisReply *r = pw_redis_command(ctx->redis, errstr, sizeof(errstr), 4, argv);
    if (r)
        freeReplyObject(r);
}
