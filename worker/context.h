/* Context: what the steps of every post share, made once at start-up.
 *
 * It borrows the configuration, Redis, the token store, the producer, the
 * pool and the delivery handling from the worker (run.c), which owns them and outlives it. Steps
 * reach them through it; nothing else is global. */
#ifndef PW_CONTEXT_H
#define PW_CONTEXT_H

#include <librdkafka/rdkafka.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "config.h"
#include "delivery.h"
#include "pool.h"
#include "redis.h"
#include "token_refresh.h"
#include "token_store.h"

typedef struct pw_ctx_s {
    const pw_config_t *conf;
    pw_redis_t *redis;
    pw_token_store_t *tokens;
    rd_kafka_t *producer;
    pw_pool_t *pool;
    pw_delivery_t *delivery;
    pw_refresher_t refresher;
    atomic_bool draining; /* shutdown began: long loops stop between items */
    atomic_bool stopping; /* the drain's time is up: every wait gives up */
} pw_ctx_t;

/** @brief A context over the worker's parts (all borrowed); caller destroys. */
pw_ctx_t *pw_ctx_new(const pw_config_t *conf, pw_redis_t *redis, pw_token_store_t *tokens,
                     rd_kafka_t *producer, pw_pool_t *pool, pw_delivery_t *delivery);
void pw_ctx_destroy(pw_ctx_t *ctx);

/** @brief Shutdown began: running posts finish, but loops over many items
 *  (a replay of parked posts) stop before their next item. */
void pw_ctx_drain(pw_ctx_t *ctx);
/** @brief Whether shutdown began (draining or stopping). */
bool pw_ctx_draining(pw_ctx_t *ctx);
/** @brief Tells every wait of every step to give up. @locality any thread */
void pw_ctx_stop(pw_ctx_t *ctx);
/** @brief Whether the worker is stopping. */
bool pw_ctx_stopping(pw_ctx_t *ctx);
/** @brief Runs a Lua script until Redis answers or the worker stops (then
 *  NULL), logging each failure with what it was for. Caller frees the reply. */
redisReply *pw_ctx_eval(pw_ctx_t *ctx, const char *what, pw_redis_script_t *script, int nkeys,
                        const char **keys, int nargs, const char **args);
/** @brief Sleeps ms (on a fiber: without blocking its loop) unless the
 *  worker is stopping; returns false if it is. */
bool pw_ctx_sleep(pw_ctx_t *ctx, long ms);

/* The parking rule in Lua, shared by the scripts that park a post (publish.c, accounts.c, quota.c):
 * park(list, ids, accounts, value, account, cap) parks value once (its SHA-1
 * in ids: O(1), however long the list), unless the list holds cap posts
 * already; 1 parked (now or before), 2 full. */
#define PW_LUA_PARK                                                                                \
    "local function park(list, ids, accounts, value, account, cap)\n"                              \
    "  local id = redis.sha1hex(value)\n"                                                          \
    "  if redis.call('SISMEMBER', ids, id) == 1 then return 1 end\n"                               \
    "  if redis.call('LLEN', list) >= tonumber(cap) then return 2 end\n"                           \
    "  redis.call('RPUSH', list, value)\n"                                                         \
    "  redis.call('SADD', ids, id)\n"                                                              \
    "  redis.call('SADD', accounts, account)\n"                                                    \
    "  return 1\n"                                                                                 \
    "end\n"

#endif
