/* Metrics and health endpoints on METRICS_ADDR (libmicrohttpd).
 *
 * DESIGN: the server runs on libmicrohttpd's own thread and reads only
 * atomics that the worker's threads set, so a slow scrape never stalls the
 * consumer loop and a stalled loop is visible to /healthz.
 *   /healthz  liveness: 200 while the main loop has turned within stall_s
 *             (never fails because Kafka or Redis is down)
 *   /readyz   readiness: 200 when configuration is loaded, Redis answered
 *             its last check and the consumer has joined its group (whether
 *             or not it holds partitions)
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
void pw_metrics_set_redis_ok(pw_metrics_server_t *server, bool ok);
void pw_metrics_set_group_joined(pw_metrics_server_t *server, bool joined);

#endif
