/* Redis access: URL parsing, a bounded pool of hiredis connections, scripts. */
#include "redis.h"

#include <errno.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secret.h"

struct pw_redis_s {
    char *host;
    int port;
    int db;
    char *user;            /* NULL: AUTH with the password alone */
    pw_secret_t *password; /* NULL: no AUTH */
    struct timeval timeout;
    char describe[300];

    pthread_mutex_t lock;
    pthread_cond_t cond;
    redisContext **idle; /* open connections not in use */
    int idle_count;
    int capacity;  /* pool_size */
    int available; /* slots not handed out: idle ones plus ones not yet opened */
};

/* Splits redis://[[user]:password@]host[:port][/db]. */
static int pw_redis_parse_url(pw_redis_t *redis, const char *url, char *errstr, size_t errstr_size)
{
    if (strncmp(url, "redis://", 8) != 0) {
        pw_errstr_set(errstr, errstr_size, "REDIS_URL: must start with redis://");
        return -1;
    }
    const char *p = url + 8;
    const char *at = strrchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (!colon) {
            pw_errstr_set(errstr, errstr_size, "REDIS_URL: credentials must be [user]:password");
            return -1;
        }
        if (colon > p)
            redis->user = pw_strndup(p, (size_t)(colon - p));
        redis->password = pw_secret_new(colon + 1, (size_t)(at - colon - 1));
        p = at + 1;
    }
    const char *slash = strchr(p, '/');
    const char *hostend = slash ? slash : p + strlen(p);
    const char *colon = memchr(p, ':', (size_t)(hostend - p));
    redis->host = pw_strndup(p, (size_t)((colon ? colon : hostend) - p));
    redis->port = 6379;
    char *end;
    if (colon) {
        long port = strtol(colon + 1, &end, 10);
        if (end != hostend || port < 1 || port > 65535) {
            pw_errstr_set(errstr, errstr_size, "REDIS_URL: bad port");
            return -1;
        }
        redis->port = (int)port;
    }
    if (slash && slash[1]) {
        long db = strtol(slash + 1, &end, 10);
        if (*end || db < 0 || db > 65535) {
            pw_errstr_set(errstr, errstr_size, "REDIS_URL: bad database number");
            return -1;
        }
        redis->db = (int)db;
    }
    if (!redis->host[0]) {
        pw_errstr_set(errstr, errstr_size, "REDIS_URL: no host");
        return -1;
    }
    return 0;
}

pw_redis_t *pw_redis_new(const char *url, int pool_size, int timeout_ms, char *errstr,
                         size_t errstr_size)
{
    pw_redis_t *redis = pw_calloc(1, sizeof(*redis));
    if (pw_redis_parse_url(redis, url, errstr, errstr_size) == -1) {
        pw_redis_destroy(redis);
        return NULL;
    }
    redis->timeout.tv_sec = timeout_ms / 1000;
    redis->timeout.tv_usec = (timeout_ms % 1000) * 1000;
    snprintf(redis->describe, sizeof(redis->describe), "%s:%d/%d", redis->host, redis->port,
             redis->db);
    pthread_mutex_init(&redis->lock, NULL);
    pthread_cond_init(&redis->cond, NULL);
    redis->capacity = pool_size;
    redis->available = pool_size;
    redis->idle = pw_calloc((size_t)pool_size, sizeof(redisContext *));
    return redis;
}

void pw_redis_destroy(pw_redis_t *redis)
{
    if (!redis)
        return;
    if (redis->idle) {
        for (int i = 0; i < redis->idle_count; i++)
            redisFree(redis->idle[i]);
        free(redis->idle);
        pthread_mutex_destroy(&redis->lock);
        pthread_cond_destroy(&redis->cond);
    }
    free(redis->host);
    free(redis->user);
    pw_secret_destroy(redis->password);
    free(redis);
}

const char *pw_redis_describe(const pw_redis_t *redis)
{
    return redis->describe;
}

/* Expects a simple "OK"-like reply to a set-up command. */
static int pw_redis_setup_cmd(pw_redis_t *redis, redisContext *c, int argc, const char **argv,
                              const char *what, char *errstr, size_t errstr_size)
{
    redisReply *reply = redisCommandArgv(c, argc, argv, NULL);
    int rc = reply && reply->type != REDIS_REPLY_ERROR ? 0 : -1;
    if (rc == -1)
        pw_errstr_set(errstr, errstr_size, "redis %s: %s failed: %s", redis->describe, what,
                      reply ? reply->str : c->errstr);
    if (reply)
        freeReplyObject(reply);
    return rc;
}

static redisContext *pw_redis_connect(pw_redis_t *redis, char *errstr, size_t errstr_size)
{
    redisContext *c = redisConnectWithTimeout(redis->host, redis->port, redis->timeout);
    if (!c || c->err) {
        pw_errstr_set(errstr, errstr_size, "redis %s: cannot connect: %s", redis->describe,
                      c ? c->errstr : "out of memory");
        if (c)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, redis->timeout);
    if (redis->password) {
        const char *argv[3] = {"AUTH", redis->user, pw_secret_reveal(redis->password)};
        int argc = 3;
        if (!redis->user) {
            argv[1] = argv[2];
            argc = 2;
        }
        if (pw_redis_setup_cmd(redis, c, argc, argv, "AUTH", errstr, errstr_size) == -1)
            goto fail;
    }
    if (redis->db != 0) {
        char db[16];
        snprintf(db, sizeof(db), "%d", redis->db);
        const char *argv[2] = {"SELECT", db};
        if (pw_redis_setup_cmd(redis, c, 2, argv, "SELECT", errstr, errstr_size) == -1)
            goto fail;
    }
    return c;

fail:
    redisFree(c);
    return NULL;
}

/* Takes a connection out of the pool, opening one if a slot is free. */
static redisContext *pw_redis_acquire(pw_redis_t *redis, char *errstr, size_t errstr_size)
{
    pthread_mutex_lock(&redis->lock);
    while (redis->available == 0)
        pthread_cond_wait(&redis->cond, &redis->lock);
    redis->available--;
    redisContext *c = redis->idle_count > 0 ? redis->idle[--redis->idle_count] : NULL;
    pthread_mutex_unlock(&redis->lock);
    if (c)
        return c;
    /* Connect outside the lock: others may use idle connections meanwhile. */
    c = pw_redis_connect(redis, errstr, errstr_size);
    if (!c) {
        pthread_mutex_lock(&redis->lock);
        redis->available++;
        pthread_cond_signal(&redis->cond);
        pthread_mutex_unlock(&redis->lock);
    }
    return c;
}

/* Returns a connection; a broken one is closed and its slot freed. */
static void pw_redis_release(pw_redis_t *redis, redisContext *c)
{
    if (c->err) {
        redisFree(c);
        c = NULL;
    }
    pthread_mutex_lock(&redis->lock);
    if (c)
        redis->idle[redis->idle_count++] = c;
    redis->available++;
    pthread_cond_signal(&redis->cond);
    pthread_mutex_unlock(&redis->lock);
}

redisReply *pw_redis_command_argv(pw_redis_t *redis, int argc, const char **argv,
                                  const size_t *argvlen, char *errstr, size_t errstr_size)
{
    redisContext *c = pw_redis_acquire(redis, errstr, errstr_size);
    if (!c)
        return NULL;
    redisReply *reply = redisCommandArgv(c, argc, argv, argvlen);
    if (!reply) {
        pw_errstr_set(errstr, errstr_size, "redis %s: %s: %s", redis->describe, argv[0],
                      c->errstr[0] ? c->errstr : "connection lost");
    } else if (reply->type == REDIS_REPLY_ERROR) {
        pw_errstr_set(errstr, errstr_size, "redis %s: %s: %s", redis->describe, argv[0],
                      reply->str);
        freeReplyObject(reply);
        reply = NULL;
    }
    pw_redis_release(redis, c);
    return reply;
}

redisReply *pw_redis_command(pw_redis_t *redis, char *errstr, size_t errstr_size, int argc,
                             const char **argv)
{
    return pw_redis_command_argv(redis, argc, argv, NULL, errstr, errstr_size);
}

static void pw_redis_script_hash(pw_redis_script_t *script)
{
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)script->source, strlen(script->source), digest);
    for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
        snprintf(script->sha1 + i * 2, 3, "%02x", digest[i]);
}

redisReply *pw_redis_eval(pw_redis_t *redis, pw_redis_script_t *script, int nkeys,
                          const char **keys, int nargs, const char **args, char *errstr,
                          size_t errstr_size)
{
    /* Hashing is idempotent, so a race between threads on first use is harmless
     * as long as the write is whole; do it under the pool lock. */
    pthread_mutex_lock(&redis->lock);
    if (!script->sha1[0])
        pw_redis_script_hash(script);
    pthread_mutex_unlock(&redis->lock);

    int argc = 3 + nkeys + nargs;
    const char **argv = pw_malloc(sizeof(char *) * (size_t)argc);
    char numkeys[16];
    snprintf(numkeys, sizeof(numkeys), "%d", nkeys);
    argv[0] = "EVALSHA";
    argv[1] = script->sha1;
    argv[2] = numkeys;
    for (int i = 0; i < nkeys; i++)
        argv[3 + i] = keys[i];
    for (int i = 0; i < nargs; i++)
        argv[3 + nkeys + i] = args[i];
    redisReply *reply = pw_redis_command(redis, errstr, errstr_size, argc, argv);
    if (!reply && strstr(errstr, "NOSCRIPT")) {
        argv[0] = "EVAL";
        argv[1] = script->source;
        reply = pw_redis_command(redis, errstr, errstr_size, argc, argv);
    }
    free(argv);
    return reply;
}

int pw_redis_ping(pw_redis_t *redis, char *errstr, size_t errstr_size)
{
    const char *argv[] = {"PING"};
    redisReply *reply = pw_redis_command(redis, errstr, errstr_size, 1, argv);
    if (!reply)
        return -1;
    freeReplyObject(reply);
    return 0;
}
