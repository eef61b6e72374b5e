/* Redis readiness: the probe write, the maxmemory-policy, check-config's look. */
#include "redis_health.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "log.h"
#include "metrics.h"

#define PW_REDIS_POLICY_EVERY_MS 30000
#define PW_REDIS_PROBE_TTL_MS "10000"

#define PW_REDIS_EVICTION_FIX                                                                      \
    "run CONFIG SET maxmemory-policy noeviction (and keep it in the server's configuration or "    \
    "the managed service's parameters), or set REDIS_ALLOW_EVICTION=true to accept that an "       \
    "evicted post record lets a redelivered post be published twice"
#define PW_REDIS_INFO_FIX                                                                          \
    "allow INFO to the worker's Redis user, or set REDIS_ALLOW_EVICTION=true if its "              \
    "maxmemory-policy is known to be noeviction"

/* Copies the value of "name:value" in INFO's text into out; false if absent. */
static bool pw_redis_info_field(const char *info, const char *name, char *out, size_t out_size)
{
    size_t n = strlen(name);
    for (const char *line = info; line && *line;) {
        if (strncmp(line, name, n) == 0 && line[n] == ':') {
            const char *value = line + n + 1;
            snprintf(out, out_size, "%.*s", (int)strcspn(value, "\r\n"), value);
            return true;
        }
        line = strchr(line, '\n');
        line = line ? line + 1 : NULL;
    }
    return false;
}

void pw_redis_memory_parse(const char *info, pw_redis_memory_t *mem)
{
    char value[64];
    *mem = (pw_redis_memory_t){.maxmemory = -1};
    (void)pw_redis_info_field(info, "maxmemory_policy", mem->policy, sizeof(mem->policy));
    if (pw_redis_info_field(info, "maxmemory", value, sizeof(value))) {
        char *end;
        long long bytes = strtoll(value, &end, 10);
        mem->maxmemory = end != value && bytes >= 0 ? bytes : -1;
    }
}

bool pw_redis_policy_evicts(const char *policy)
{
    return !policy || strcmp(policy, "noeviction") != 0;
}

/* INFO memory into mem. @returns 1 with the policy; 0 when Redis answered
 * without one (INFO refused, or no such field), with errstr; -1 when no
 * reply came, with errstr. */
static int pw_redis_memory_read(pw_redis_t *redis, pw_redis_memory_t *mem, char *errstr,
                                size_t errstr_size)
{
    const char *argv[] = {"INFO", "memory"};
    *mem = (pw_redis_memory_t){.maxmemory = -1};
    redisReply *reply = pw_redis_command_reply(redis, errstr, errstr_size, 2, argv);
    if (!reply)
        return -1;
    if (reply->type == REDIS_REPLY_STRING)
        pw_redis_memory_parse(reply->str, mem);
    if (!mem->policy[0] && reply->type != REDIS_REPLY_ERROR)
        pw_errstr_set(errstr, errstr_size, "redis %s: INFO memory has no maxmemory_policy",
                      pw_redis_describe(redis));
    freeReplyObject(reply);
    return mem->policy[0] ? 1 : 0;
}

/* NULL when a reading is acceptable, else "evicting" or "policy_unknown". */
static const char *pw_redis_policy_problem(const pw_redis_memory_t *mem, bool allow_eviction)
{
    if (allow_eviction || (mem->policy[0] && !pw_redis_policy_evicts(mem->policy)))
        return NULL;
    return mem->policy[0] ? "evicting" : "policy_unknown";
}

/* One line about a new reading: what the policy means for the worker. */
static void pw_redis_policy_log(const pw_redis_t *redis, const pw_redis_memory_t *mem,
                                bool allow_eviction, const char *errstr)
{
    const char *d = pw_redis_describe(redis);
    bool known = mem->policy[0] != '\0';
    if (known && !pw_redis_policy_evicts(mem->policy))
        pw_log_info("redis keeps every key (maxmemory-policy noeviction)", PW_F_STR("redis", d),
                    PW_F_STR("maxmemory_policy", mem->policy),
                    PW_F_OPT_INT("maxmemory", mem->maxmemory));
    else if (allow_eviction)
        pw_log_warn("redis may evict keys; REDIS_ALLOW_EVICTION=true accepts that a post whose "
                    "record is evicted can be published twice",
                    PW_F_STR("redis", d), PW_F_STR("maxmemory_policy", mem->policy),
                    PW_F_OPT_INT("maxmemory", mem->maxmemory),
                    PW_F_STR("error", known ? NULL : errstr));
    else if (known)
        pw_log_error("redis may evict keys (post records, locks): not ready", PW_F_STR("redis", d),
                     PW_F_STR("maxmemory_policy", mem->policy),
                     PW_F_OPT_INT("maxmemory", mem->maxmemory),
                     PW_F_STR("fix", PW_REDIS_EVICTION_FIX));
    else
        pw_log_error("cannot read redis's maxmemory-policy: not ready", PW_F_STR("redis", d),
                     PW_F_STR("error", errstr), PW_F_STR("fix", PW_REDIS_INFO_FIX));
}

/* The policy part of a check: reads INFO memory when due. */
static const char *pw_redis_health_policy(pw_redis_health_t *health, pw_redis_t *redis,
                                          bool allow_eviction, char *errstr, size_t errstr_size)
{
    int64_t now = pw_mono_ms();
    if (health->policy_read && now < health->next_policy_ms)
        return health->policy_problem; /* NULL: a refused policy is read at every check */
    pw_redis_memory_t mem;
    if (pw_redis_memory_read(redis, &mem, errstr, errstr_size) == -1)
        return "unreachable"; /* gone since the probe: read again next time */
    const char *problem = pw_redis_policy_problem(&mem, allow_eviction);
    if (!health->policy_read || strcmp(mem.policy, health->mem.policy) != 0)
        pw_redis_policy_log(redis, &mem, allow_eviction, errstr);
    pw_metrics_set_redis_policy(mem.policy[0] ? mem.policy : NULL,
                                pw_redis_policy_evicts(mem.policy));
    health->mem = mem;
    health->policy_read = true;
    health->policy_problem = problem;
    health->next_policy_ms = problem ? now : now + PW_REDIS_POLICY_EVERY_MS;
    if (problem && mem.policy[0])
        pw_errstr_set(errstr, errstr_size, "redis %s: maxmemory-policy %s may evict keys",
                      pw_redis_describe(redis), mem.policy);
    return problem;
}

/* Writes the probe key: NULL when Redis took it, else the problem. */
static const char *pw_redis_health_probe(pw_redis_t *redis, const char *worker_id, char *errstr,
                                         size_t errstr_size)
{
    pw_key_t key = pw_key_probe(worker_id);
    const char *argv[] = {"SET", key.s, "1", "PX", PW_REDIS_PROBE_TTL_MS};
    redisReply *reply = pw_redis_command_reply(redis, errstr, errstr_size, 5, argv);
    if (!reply)
        return "unreachable";
    const char *problem = NULL;
    if (reply->type == REDIS_REPLY_ERROR) {
        problem = pw_redis_server_error_name(pw_redis_server_error_of(reply->str));
        if (!problem)
            problem = "refused";
    }
    freeReplyObject(reply);
    return problem;
}

static bool pw_redis_same_problem(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

const char *pw_redis_health_check(pw_redis_health_t *health, pw_redis_t *redis,
                                  const char *worker_id, bool allow_eviction, char *errstr,
                                  size_t errstr_size)
{
    /* Refusals since the last check, counted before the probe adds its own. */
    pw_redis_server_error_t latest;
    unsigned long errors = pw_redis_server_errors(redis, &latest);
    const char *problem = pw_redis_health_probe(redis, worker_id, errstr, errstr_size);
    if (!problem && errors != health->errors_seen) {
        problem = pw_redis_server_error_name(latest);
        pw_errstr_set(errstr, errstr_size, "redis %s: %lu commands refused since the last check",
                      pw_redis_describe(redis), errors - health->errors_seen);
    }
    health->errors_seen = pw_redis_server_errors(redis, NULL);
    if (!problem)
        problem = pw_redis_health_policy(health, redis, allow_eviction, errstr, errstr_size);
    if (!pw_redis_same_problem(problem, health->problem)) {
        if (problem)
            pw_log_warn("redis not ready", PW_F_STR("problem", problem), PW_F_STR("error", errstr));
        else
            pw_log_info("redis ready", PW_F_STR("redis", pw_redis_describe(redis)));
    }
    health->problem = problem;
    return problem;
}

/* check-config's line for a reading (rc as pw_redis_memory_read()'s). */
static pw_redis_verdict_t pw_redis_verdict_of(const pw_redis_t *redis, int rc,
                                              const pw_redis_memory_t *mem, bool allow_eviction,
                                              const char *errstr, char *msg, size_t msg_size)
{
    const char *d = pw_redis_describe(redis);
    if (rc == -1) {
        pw_errstr_set(msg, msg_size,
                      "%s; not checked: the worker reads Redis's maxmemory-policy when it runs",
                      errstr);
        return PW_REDIS_VERDICT_UNCHECKED;
    }
    if (rc == 1 && !pw_redis_policy_evicts(mem->policy)) {
        pw_errstr_set(msg, msg_size, "redis %s: maxmemory-policy %s, maxmemory %lld", d,
                      mem->policy, mem->maxmemory);
        return PW_REDIS_VERDICT_SAFE;
    }
    if (allow_eviction && rc == 1)
        pw_errstr_set(msg, msg_size,
                      "redis %s: maxmemory-policy %s, maxmemory %lld: may evict keys, accepted "
                      "by REDIS_ALLOW_EVICTION=true",
                      d, mem->policy, mem->maxmemory);
    else if (allow_eviction)
        pw_errstr_set(msg, msg_size, "%s: accepted by REDIS_ALLOW_EVICTION=true", errstr);
    else if (rc == 1)
        pw_errstr_set(msg, msg_size,
                      "REDIS_ALLOW_EVICTION: redis %s: maxmemory-policy %s (maxmemory %lld) may "
                      "evict post records and locks; %s",
                      d, mem->policy, mem->maxmemory, PW_REDIS_EVICTION_FIX);
    else
        pw_errstr_set(msg, msg_size,
                      "REDIS_ALLOW_EVICTION: %s: cannot tell its maxmemory-policy; %s", errstr,
                      PW_REDIS_INFO_FIX);
    return allow_eviction ? PW_REDIS_VERDICT_ACCEPTED : PW_REDIS_VERDICT_REFUSED;
}

pw_redis_verdict_t pw_redis_health_verdict(const char *url, bool allow_eviction, int timeout_ms,
                                           char *msg, size_t msg_size)
{
    char errstr[512];
    pw_redis_t *redis = pw_redis_new(url, 1, timeout_ms, errstr, sizeof(errstr));
    if (!redis) {
        pw_errstr_set(msg, msg_size, "%s; not checked", errstr);
        return PW_REDIS_VERDICT_UNCHECKED;
    }
    pw_redis_memory_t mem;
    int rc = pw_redis_memory_read(redis, &mem, errstr, sizeof(errstr));
    pw_redis_verdict_t verdict =
        pw_redis_verdict_of(redis, rc, &mem, allow_eviction, errstr, msg, msg_size);
    pw_redis_destroy(redis);
    return verdict;
}
