/* Context: the steps' shared parts (see context.h). */
#include "context.h"

#include <stdlib.h>

#include "fiber.h"
#include "log.h"

pw_ctx_t *pw_ctx_new(const pw_config_t *conf, pw_redis_t *redis, pw_token_store_t *tokens,
                     rd_kafka_t *producer, pw_pool_t *pool, pw_delivery_t *delivery)
{
    pw_ctx_t *ctx = pw_calloc(1, sizeof(*ctx));
    ctx->conf = conf;
    ctx->redis = redis;
    ctx->tokens = tokens;
    ctx->producer = producer;
    ctx->pool = pool;
    ctx->delivery = delivery;
    ctx->refresher = (pw_refresher_t){.conf = conf, .redis = redis, .tokens = tokens};
    atomic_init(&ctx->draining, false);
    atomic_init(&ctx->stopping, false);
    return ctx;
}

void pw_ctx_destroy(pw_ctx_t *ctx)
{
    free(ctx);
}

void pw_ctx_drain(pw_ctx_t *ctx)
{
    atomic_store(&ctx->draining, true);
}

bool pw_ctx_draining(pw_ctx_t *ctx)
{
    return atomic_load(&ctx->draining) || atomic_load(&ctx->stopping);
}

void pw_ctx_stop(pw_ctx_t *ctx)
{
    atomic_store(&ctx->stopping, true);
    pw_waits_cancel();
}

bool pw_ctx_stopping(pw_ctx_t *ctx)
{
    return atomic_load(&ctx->stopping);
}

bool pw_ctx_sleep(pw_ctx_t *ctx, long ms)
{
    int64_t until = pw_mono_ms() + ms;
    for (;;) {
        if (pw_ctx_stopping(ctx))
            return false;
        int64_t left = until - pw_mono_ms();
        if (left <= 0)
            return true;
        pw_sleep_ms(left < 50 ? (long)left : 50);
    }
}

redisReply *pw_ctx_eval(pw_ctx_t *ctx, const char *what, pw_redis_script_t *script, int nkeys,
                        const char **keys, int nargs, const char **args)
{
    char errstr[512];
    for (;;) {
        redisReply *reply =
            pw_redis_eval(ctx->redis, script, nkeys, keys, nargs, args, errstr, sizeof(errstr));
        if (reply)
            return reply;
        pw_log_warn("redis failed; retrying", PW_F_STR("while", what), PW_F_STR("error", errstr));
        if (!pw_ctx_sleep(ctx, 1000))
            return NULL;
    }
}
