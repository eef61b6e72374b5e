/* Redis access: a bounded connection pool, commands and Lua scripts.
 *
 * DESIGN: posts in flight share a few connections (REDIS_POOL_SIZE), handed
 * out one caller at a time; a caller that finds the pool empty waits. A
 * connection that failed is closed on release and reopened lazily, so a Redis
 * restart heals by itself. Scripts go by EVALSHA and fall back to EVAL once
 * when the server has not seen them (after a restart or failover). */
#ifndef PW_REDIS_H
#define PW_REDIS_H

#include <hiredis/hiredis.h>
#include <stddef.h>

#include "pw.h"

typedef struct pw_redis_s pw_redis_t;

typedef struct pw_redis_script_s {
    const char *source;
    char sha1[41]; /* filled on first use */
} pw_redis_script_t;

/** @brief Parses url (redis://[[user]:password@]host[:port][/db]) and makes a
 *  pool of up to pool_size connections, none opened yet.
 *  @returns the pool (caller frees with pw_redis_destroy()) or NULL with the
 *  reason in errstr (never the password). */
pw_redis_t *pw_redis_new(const char *url, int pool_size, int timeout_ms, char *errstr,
                         size_t errstr_size) PW_MUSTCHECK;
void pw_redis_destroy(pw_redis_t *redis);
/** @brief "host:port/db" for messages; no password. */
const char *pw_redis_describe(const pw_redis_t *redis);

/** @brief Runs one command given as argv (binary safe).
 *  @returns the reply (caller frees with freeReplyObject()) or NULL when the
 *  connection failed or Redis answered an error, with the reason in errstr.
 *  @locality any thread; blocks while the pool is empty. */
redisReply *pw_redis_command_argv(pw_redis_t *redis, int argc, const char **argv,
                                  const size_t *argvlen, char *errstr,
                                  size_t errstr_size) PW_MUSTCHECK;
/** @brief Like pw_redis_command_argv() with NUL-terminated strings. */
redisReply *pw_redis_command(pw_redis_t *redis, char *errstr, size_t errstr_size, int argc,
                             const char **argv) PW_MUSTCHECK;
/** @brief Runs script with keys then args (NUL-terminated strings). */
redisReply *pw_redis_eval(pw_redis_t *redis, pw_redis_script_t *script, int nkeys,
                          const char **keys, int nargs, const char **args, char *errstr,
                          size_t errstr_size) PW_MUSTCHECK;
/** @brief PING; 0 when Redis answers. */
int pw_redis_ping(pw_redis_t *redis, char *errstr, size_t errstr_size) PW_MUSTCHECK;

#endif
