/* Alert de-duplication with fixed windows in Redis. */
#include "alerts.h"

#include <stdio.h>

#include "keys.h"

/* KEYS: counter. ARGV: window_s. Returns the count in the window. */
static pw_redis_script_t pw_alert_count_script = {
    .source = "local n = redis.call('INCR', KEYS[1])\n"
              "if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end\n"
              "return n\n",
};

static int pw_alert_count(pw_redis_t *redis, const char *key, long window_s, long *count,
                          char *errstr, size_t errstr_size)
{
    char window[32];
    snprintf(window, sizeof(window), "%ld", window_s);
    const char *keys[] = {key};
    const char *args[] = {window};
    redisReply *reply =
        pw_redis_eval(redis, &pw_alert_count_script, 1, keys, 1, args, errstr, errstr_size);
    if (!reply)
        return -1;
    *count = (long)reply->integer;
    freeReplyObject(reply);
    return 0;
}

int pw_alert_occurrence(pw_redis_t *redis, const char *account_id, const char *kind, long window_s,
                        long *count, char *errstr, size_t errstr_size)
{
    pw_key_t key = pw_key_alert(account_id, kind);
    if (pw_alert_count(redis, key.s, window_s, count, errstr, errstr_size) == -1)
        return -1;
    return *count == 1;
}

int pw_alert_fleet_occurrence(pw_redis_t *redis, const char *subject, long window_s, long *count,
                              char *errstr, size_t errstr_size)
{
    pw_key_t key = pw_key_fleet_alert(subject);
    if (pw_alert_count(redis, key.s, window_s, count, errstr, errstr_size) == -1)
        return -1;
    return *count == 1;
}

int pw_alert_auth_failure(pw_redis_t *redis, const char *account_id, long threshold, long window_s,
                          long *count, char *errstr, size_t errstr_size)
{
    pw_key_t key = pw_key_authfail(account_id);
    if (pw_alert_count(redis, key.s, window_s, count, errstr, errstr_size) == -1)
        return -1;
    return *count == threshold;
}
