/* Metrics and health endpoints on METRICS_ADDR (libmicrohttpd).
 *
 * DESIGN: the server runs on libmicrohttpd's own thread and reads only
 * atomics that the worker's threads set, so a slow scrape never stalls the
 * consumer loop and a stalled loop is visible to /healthz.
 *   /healthz  liveness: 200 while the main loop, and every loop thread
 *             running posts, has turned within stall_s (never fails because
 *             Kafka or Redis is down)
 *   /readyz   readiness: 200 when configuration is loaded, Redis passed its
 *             last check (it takes writes and keeps them: redis_health.h),
 *             the consumer has joined its group (whether or not it holds
 *             partitions) and no message failed for good since the last
 *             delivery to its topic; the body names what is wrong with Redis
 *   /metrics  Prometheus text exposition */
#ifndef PW_METRICS_H
#define PW_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "pw.h"

typedef struct pw_metrics_server_s pw_metrics_server_t;

/** @brief Starts serving on addr ("host:port"); stall_s bounds liveness.
 *  @returns the server (stop with pw_metrics_server_destroy()) or NULL. */
pw_metrics_server_t *pw_metrics_server_new(const char *addr, int stall_s, char *errstr,
                                           size_t errstr_size) PW_MUSTCHECK;
void pw_metrics_server_destroy(pw_metrics_server_t *server);

/** @brief The main loop calls this each turn. @locality any thread */
void pw_metrics_loop_turned(pw_metrics_server_t *server);
/** @brief /healthz also asks idle_ms(arg) (the longest other loops went
 *  without turning) and fails past stall_s. @locality before serving */
void pw_metrics_watch_loops(pw_metrics_server_t *server, int64_t (*idle_ms)(void *arg), void *arg);
void pw_metrics_set_redis_ok(pw_metrics_server_t *server, bool ok);
/** @brief What the last Redis check found wrong ("readonly", "evicting"...),
 *  NULL when nothing; /readyz shows it as redis_problem. problem must be a
 *  string that lives as long as the server (a literal). */
void pw_metrics_set_redis_problem(pw_metrics_server_t *server, const char *problem);
void pw_metrics_set_group_joined(pw_metrics_server_t *server, bool joined);
/** @brief false while a message could not be delivered for good (readiness). */
void pw_metrics_set_delivery_ok(pw_metrics_server_t *server, bool ok);

/* The process-wide metrics below are plain atomics, safe from any thread;
 * labels come from fixed sets (no account or post ids: unbounded
 * cardinality). */
typedef enum {
    PW_EPM_CREATE = 0, /* POST /{user-id}/threads */
    PW_EPM_STATUS,     /* GET /{container-id} */
    PW_EPM_PUBLISH,    /* POST /{user-id}/threads_publish */
    PW_EPM_REFRESH,    /* GET /refresh_access_token */
    PW_EPM_OAUTH2,     /* POST OAUTH2_TOKEN_URL */
    PW_EPM_ME,         /* GET /me (verification) */
    PW_EPM_LIMIT,      /* GET /{user-id}/threads_publishing_limit */
    PW_EPM_DEBUG,      /* GET /debug_token (verification of scopes) */
    PW_EPM_COUNT
} pw_metrics_endpoint_t;

void pw_metrics_consumed(void);
/** @brief status: published, duplicate, parked or failed; error_class NULL
 *  for published and duplicate. */
void pw_metrics_result(const char *status, const char *error_class);
/** @brief One API call: http_status 0 for a transport failure. */
void pw_metrics_api_call(pw_metrics_endpoint_t endpoint, long http_status, double seconds);
/** @brief Connections a call opened (libcurl's CURLINFO_NUM_CONNECTS). */
void pw_metrics_api_connections(long opened);
/** @brief result: refreshed, by_other, not_allowed, terminal, transient. */
void pw_metrics_refresh(const char *result);
void pw_metrics_lock_wait(void);
void pw_metrics_alert(const char *kind);
void pw_metrics_rebalance(void);
void pw_metrics_set_in_flight(long posts);
void pw_metrics_delivery_failure(bool permanent);
void pw_metrics_dead_letter_cut(void);
/** @brief Payload bytes buffered, and partitions paused for back-pressure. */
void pw_metrics_set_buffer(long bytes, long paused_partitions);
void pw_metrics_set_assigned_partitions(long partitions);
/** @brief Takes consumer lag per partition from librdkafka's statistics JSON. */
void pw_metrics_kafka_stats(const char *json);
/** @brief A server-state error reply: kind is pw_redis_server_error_name()'s. */
void pw_metrics_redis_error(const char *kind);
/** @brief Redis's maxmemory-policy as last read (NULL: unknown) and whether
 *  it may evict keys. */
void pw_metrics_set_redis_policy(const char *policy, bool evicting);

#endif
