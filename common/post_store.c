/* Post records: container and publication records with compare-and-set. */
#include "post_store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"

/* KEYS: record. ARGV: expected container ("" none), new container, now_ms, ttl_s. */
static pw_redis_script_t pw_post_set_container_script = {
    .source = "if redis.call('HGET', KEYS[1], 'state') == 'published' then\n"
              "  return {'published', redis.call('HGET', KEYS[1], 'media_id') or ''}\n"
              "end\n"
              "local cur = redis.call('HGET', KEYS[1], 'container_id') or ''\n"
              "if cur ~= ARGV[1] then return {'lost', cur} end\n"
              "redis.call('HSET', KEYS[1], 'state', 'container', 'container_id', ARGV[2],"
              " 'container_at_ms', ARGV[3])\n"
              "redis.call('EXPIRE', KEYS[1], ARGV[4])\n"
              "return {'ok', ARGV[2]}\n",
};

static void pw_copy_id(char dst[PW_ID_MAX], const char *src)
{
    snprintf(dst, PW_ID_MAX, "%s", src ? src : "");
}

void pw_post_record_from_reply(const redisReply *reply, pw_post_record_t *rec)
{
    memset(rec, 0, sizeof(*rec));
    redisReply **el = reply->element;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 4 ||
        el[0]->type != REDIS_REPLY_STRING)
        return;
    rec->found = true;
    rec->published = strcmp(el[0]->str, "published") == 0;
    pw_copy_id(rec->container_id, el[1]->str);
    rec->container_at_ms = el[2]->str ? strtoll(el[2]->str, NULL, 10) : 0;
    pw_copy_id(rec->media_id, el[3]->str);
}

int pw_post_store_get(pw_redis_t *redis, const char *account_id, const char *post_id,
                      pw_post_record_t *rec, char *errstr, size_t errstr_size)
{
    pw_key_t key = pw_key_post(account_id, post_id);
    const char *argv[] = {"HMGET", key.s, "state", "container_id", "container_at_ms", "media_id"};
    redisReply *reply = pw_redis_command(redis, errstr, errstr_size, 6, argv);
    memset(rec, 0, sizeof(*rec));
    if (!reply)
        return -1;
    pw_post_record_from_reply(reply, rec);
    freeReplyObject(reply);
    return 0;
}

pw_ps_status_t pw_post_store_set_container(pw_redis_t *redis, const char *account_id,
                                           const char *post_id, const char *expected,
                                           const char *container_id, long ttl_s,
                                           pw_post_record_t *rec, char *errstr, size_t errstr_size)
{
    pw_key_t key = pw_key_post(account_id, post_id);
    char now[32], ttl[32];
    int64_t now_ms = pw_now_ms();
    snprintf(now, sizeof(now), "%" PRId64, now_ms);
    snprintf(ttl, sizeof(ttl), "%ld", ttl_s);
    const char *keys[] = {key.s};
    const char *args[] = {expected, container_id, now, ttl};
    redisReply *reply =
        pw_redis_eval(redis, &pw_post_set_container_script, 1, keys, 4, args, errstr, errstr_size);
    if (!reply)
        return PW_PS_ERROR;
    pw_ps_status_t status = PW_PS_ERROR;
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2) {
        const char *verdict = reply->element[0]->str, *value = reply->element[1]->str;
        memset(rec, 0, sizeof(*rec));
        rec->found = true;
        if (strcmp(verdict, "published") == 0) {
            rec->published = true;
            pw_copy_id(rec->media_id, value);
            status = PW_PS_PUBLISHED;
        } else {
            pw_copy_id(rec->container_id, value);
            rec->container_at_ms = now_ms;
            status = strcmp(verdict, "ok") == 0 ? PW_PS_OK : PW_PS_LOST;
        }
    } else {
        pw_errstr_set(errstr, errstr_size, "unexpected reply recording a container");
    }
    freeReplyObject(reply);
    return status;
}

int pw_post_store_set_published(pw_redis_t *redis, const char *account_id, const char *post_id,
                                const char *media_id, long ttl_s, char *errstr, size_t errstr_size)
{
    pw_key_t key = pw_key_post(account_id, post_id);
    char now[32], ttl[32];
    snprintf(now, sizeof(now), "%" PRId64, pw_now_ms());
    snprintf(ttl, sizeof(ttl), "%ld", ttl_s);
    /* MULTI/EXEC would need one connection for three calls; a script is one call. */
    static pw_redis_script_t script = {
        .source = "redis.call('HSET', KEYS[1], 'state', 'published', 'media_id', ARGV[1],"
                  " 'published_at_ms', ARGV[2])\n"
                  "redis.call('EXPIRE', KEYS[1], ARGV[3])\n"
                  "return 1\n",
    };
    const char *keys[] = {key.s};
    const char *args[] = {media_id, now, ttl};
    redisReply *reply = pw_redis_eval(redis, &script, 1, keys, 3, args, errstr, errstr_size);
    if (!reply)
        return -1;
    freeReplyObject(reply);
    return 0;
}
