/* Redis readiness: does Redis take the worker's writes, and keep them.
 *
 * DESIGN: PING answers on a read-only replica, on a server out of memory and
 * on one that cannot persist, so readiness asks Redis two things instead
 * (pw_redis_health_check(), once a second):
 *   writes   it writes a probe key (SET pw:probe:{WORKER_ID} 1 PX 10000). The
 *            check fails when that write fails, or when any command had a
 *            server-state error reply (redis.h) since the previous check:
 *            posts refused between two checks are not hidden by a probe that
 *            passed in between. It passes again once a check sees neither.
 *   keeping  it reads maxmemory_policy from INFO memory (managed services
 *            refuse CONFIG GET but answer INFO) at the first check, then every
 *            30 s while the policy is acceptable and at every check while it
 *            is not. Any policy but noeviction may evict keys, post records
 *            and locks among them, and an evicted record lets a redelivered
 *            post be published twice: such a policy, or one that cannot be
 *            read, fails the check unless REDIS_ALLOW_EVICTION is true. The
 *            policy is judged whatever maxmemory says (maxmemory 0 never
 *            evicts, but it can be set at run time and managed services always
 *            set it); both are logged.
 * check-config asks once, with a short timeout (pw_redis_health_verdict()).
 * An unreachable Redis is noted there, not failed: configuration is checked
 * where Redis may not be reachable (CI, a build machine, the chart's tests). */
#ifndef PW_REDIS_HEALTH_H
#define PW_REDIS_HEALTH_H

#include <stdbool.h>
#include <stdint.h>

#include "pw.h"
#include "redis.h"

typedef struct pw_redis_memory_s {
    char policy[32];     /* maxmemory_policy; "" when INFO did not say */
    long long maxmemory; /* bytes, 0 for no limit; -1 when INFO did not say */
} pw_redis_memory_t;

/** @brief Takes maxmemory_policy and maxmemory out of INFO memory's text. */
void pw_redis_memory_parse(const char *info, pw_redis_memory_t *mem);
/** @brief false only for noeviction: every other policy, and an unknown or
 *  empty one, may evict keys. */
bool pw_redis_policy_evicts(const char *policy);

/* What a check keeps for the next one; zero it before the first. */
typedef struct pw_redis_health_s {
    unsigned long errors_seen;  /* pw_redis_server_errors() after the last check */
    int64_t next_policy_ms;     /* when to read INFO memory again */
    bool policy_read;           /* mem holds a reading */
    pw_redis_memory_t mem;      /* the last reading */
    const char *policy_problem; /* its verdict: NULL, "evicting" or "policy_unknown" */
    const char *problem;        /* the last check's outcome */
} pw_redis_health_t;

/** @brief One readiness check of Redis (see DESIGN); logs what changed since
 *  the last one and sets the policy gauges.
 *  @returns NULL when Redis is fit, else what is wrong: "unreachable" (no
 *  reply), "refused" (another error reply to the probe), a server-state
 *  error's name ("readonly", "oom"...), "evicting" or "policy_unknown"; the
 *  reason in errstr. The string lives as long as the program.
 *  @locality one thread at a time per health; blocks on the pool. */
const char *pw_redis_health_check(pw_redis_health_t *health, pw_redis_t *redis,
                                  const char *worker_id, bool allow_eviction, char *errstr,
                                  size_t errstr_size);

typedef enum {
    PW_REDIS_VERDICT_SAFE,      /* noeviction */
    PW_REDIS_VERDICT_ACCEPTED,  /* may evict (or unknown), and REDIS_ALLOW_EVICTION accepts it */
    PW_REDIS_VERDICT_REFUSED,   /* may evict (or unknown), not accepted */
    PW_REDIS_VERDICT_UNCHECKED, /* Redis did not answer */
} pw_redis_verdict_t;

/** @brief check-config's look at Redis: connects to url (timeout_ms bounds
 *  the connection and each command), reads INFO memory, judges the policy.
 *  msg gets one line: the policy (SAFE, ACCEPTED), the problem naming
 *  REDIS_ALLOW_EVICTION and the fix (REFUSED), or why nothing was checked
 *  (UNCHECKED). Never the password. */
pw_redis_verdict_t pw_redis_health_verdict(const char *url, bool allow_eviction, int timeout_ms,
                                           char *msg, size_t msg_size);

#endif
