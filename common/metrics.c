/* Metrics and health endpoints served by libmicrohttpd's internal thread. */
#include "metrics.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "metrics_accounts.h"

struct pw_metrics_server_s {
    struct MHD_Daemon *daemon;
    int stall_ms;
    atomic_int_least64_t last_turn_mono_ms;
    atomic_bool redis_ok;
    _Atomic(const char *) redis_problem;
    atomic_bool group_joined;
    atomic_bool delivery_ok;
    int64_t (*_Atomic loops_idle_ms)(void *arg);
    void *_Atomic loops_arg;
};

static enum MHD_Result pw_metrics_reply(struct MHD_Connection *conn, unsigned status,
                                        const char *content_type, const char *body)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    enum MHD_Result rc = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result pw_metrics_health(pw_metrics_server_t *server, struct MHD_Connection *conn)
{
    int64_t idle_ms = pw_mono_ms() - atomic_load(&server->last_turn_mono_ms);
    int64_t (*loops_idle)(void *) = atomic_load(&server->loops_idle_ms);
    int64_t workers_idle_ms = loops_idle ? loops_idle(atomic_load(&server->loops_arg)) : 0;
    bool stalled = idle_ms > server->stall_ms || workers_idle_ms > server->stall_ms;
    char body[160];
    snprintf(body, sizeof(body),
             "{\"status\":\"%s\",\"loop_idle_ms\":%lld,\"worker_loops_idle_ms\":%lld}\n",
             stalled ? "stalled" : "ok", (long long)idle_ms, (long long)workers_idle_ms);
    return pw_metrics_reply(conn, stalled ? MHD_HTTP_SERVICE_UNAVAILABLE : MHD_HTTP_OK,
                            "application/json", body);
}

static enum MHD_Result pw_metrics_ready(pw_metrics_server_t *server, struct MHD_Connection *conn)
{
    bool redis_ok = atomic_load(&server->redis_ok);
    const char *problem = atomic_load(&server->redis_problem);
    bool joined = atomic_load(&server->group_joined);
    bool delivery_ok = atomic_load(&server->delivery_ok);
    bool ready = redis_ok && joined && delivery_ok;
    char body[256], problem_json[48] = "null";
    if (problem)
        snprintf(problem_json, sizeof(problem_json), "\"%s\"", problem);
    snprintf(body, sizeof(body),
             "{\"status\":\"%s\",\"config\":true,\"redis\":%s,\"redis_problem\":%s,"
             "\"group_joined\":%s,\"delivery\":%s}\n",
             ready ? "ready" : "not_ready", redis_ok ? "true" : "false", problem_json,
             joined ? "true" : "false", delivery_ok ? "true" : "false");
    return pw_metrics_reply(conn, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
                            "application/json", body);
}

static char *pw_metrics_render(size_t *len);

static enum MHD_Result pw_metrics_handler(void *cls, struct MHD_Connection *conn, const char *url,
                                          const char *method, const char *version,
                                          const char *upload_data, size_t *upload_data_size,
                                          void **con_cls)
{
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)con_cls;
    pw_metrics_server_t *server = cls;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return pw_metrics_reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain",
                                "method not allowed\n");
    if (strcmp(url, "/healthz") == 0)
        return pw_metrics_health(server, conn);
    if (strcmp(url, "/readyz") == 0)
        return pw_metrics_ready(server, conn);
    if (strcmp(url, "/metrics") == 0) {
        size_t len;
        char *body = pw_metrics_render(&len);
        struct MHD_Response *resp =
            MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                "text/plain; version=0.0.4; charset=utf-8");
        enum MHD_Result rc = MHD_queue_response(conn, MHD_HTTP_OK, resp);
        MHD_destroy_response(resp);
        return rc;
    }
    return pw_metrics_reply(conn, MHD_HTTP_NOT_FOUND, "text/plain", "not found\n");
}

/* Resolves "host:port" into a socket address MHD can bind. */
static int pw_metrics_resolve(const char *addr, struct sockaddr_storage *ss, char *errstr,
                              size_t errstr_size)
{
    const char *colon = strrchr(addr, ':');
    char host[256];
    snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res;
    int rc = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &res);
    if (rc != 0) {
        pw_errstr_set(errstr, errstr_size, "METRICS_ADDR: cannot resolve %s: %s", addr,
                      gai_strerror(rc));
        return -1;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

pw_metrics_server_t *pw_metrics_server_new(const char *addr, int stall_s, char *errstr,
                                           size_t errstr_size)
{
    struct sockaddr_storage ss;
    if (pw_metrics_resolve(addr, &ss, errstr, errstr_size) == -1)
        return NULL;
    pw_metrics_server_t *server = pw_calloc(1, sizeof(*server));
    server->stall_ms = stall_s * 1000;
    atomic_store(&server->last_turn_mono_ms, pw_mono_ms());
    atomic_store(&server->delivery_ok, true);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL_LINUX_ONLY;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    uint16_t port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                   : ((struct sockaddr_in *)&ss)->sin_port);
    server->daemon = MHD_start_daemon(flags, port, NULL, NULL, pw_metrics_handler, server,
                                      MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                                      MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
    if (!server->daemon) {
        pw_errstr_set(errstr, errstr_size, "METRICS_ADDR: cannot listen on %s", addr);
        free(server);
        return NULL;
    }
    return server;
}

void pw_metrics_server_destroy(pw_metrics_server_t *server)
{
    if (!server)
        return;
    MHD_stop_daemon(server->daemon);
    free(server);
}

void pw_metrics_loop_turned(pw_metrics_server_t *server)
{
    atomic_store(&server->last_turn_mono_ms, pw_mono_ms());
}

void pw_metrics_watch_loops(pw_metrics_server_t *server, int64_t (*idle_ms)(void *arg), void *arg)
{
    atomic_store(&server->loops_arg, arg);
    atomic_store(&server->loops_idle_ms, idle_ms);
}

void pw_metrics_set_redis_ok(pw_metrics_server_t *server, bool ok)
{
    atomic_store(&server->redis_ok, ok);
}

void pw_metrics_set_redis_problem(pw_metrics_server_t *server, const char *problem)
{
    atomic_store(&server->redis_problem, problem);
}

void pw_metrics_set_group_joined(pw_metrics_server_t *server, bool joined)
{
    atomic_store(&server->group_joined, joined);
}

void pw_metrics_set_delivery_ok(pw_metrics_server_t *server, bool ok)
{
    atomic_store(&server->delivery_ok, ok);
}

/* ---- process-wide metrics ---- */

static const char *const pw_m_statuses[] = {"published", "duplicate", "parked", "failed"};
static const char *const pw_m_classes[] = {"invalid_request", "auth",      "permission",
                                           "rate_limited",    "transient", "media"};
static const char *const pw_m_endpoints[] = {"create_container",     "container_status", "publish",
                                             "refresh_access_token", "oauth2_token",     "me",
                                             "publishing_limit",     "debug_token"};
_Static_assert(PW_ARRAY_SIZE(pw_m_endpoints) == PW_EPM_COUNT, "an endpoint name each");
static const char *const pw_m_status_classes[] = {"2xx", "3xx", "4xx", "5xx", "error"};
static const char *const pw_m_refresh_results[] = {"refreshed", "by_other", "not_allowed",
                                                   "terminal", "transient"};
static const char *const pw_m_alert_kinds[] = {"reconnect_required", "repeated_auth_failure",
                                               "permission_denied",  "refresh_failed",
                                               "rate_limited",       "token_expiring"};
static const char *const pw_m_redis_errors[] = {"readonly", "masterdown", "oom", "misconf",
                                                "loading",  "noreplicas", "busy"};
/* Redis's policies; "other" for one a later Redis may add. */
static const char *const pw_m_redis_policies[] = {
    "noeviction",      "allkeys-lru",  "allkeys-lfu",  "allkeys-random", "volatile-lru",
    "volatile-random", "volatile-lfu", "volatile-ttl", "other"};
static const double pw_m_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
#define PW_M_NBUCKETS PW_ARRAY_SIZE(pw_m_buckets)
#define PW_M_LAG_MAX 256

static struct {
    atomic_long consumed, lock_waits, rebalances, in_flight, assigned;
    atomic_long buffered_bytes, paused;
    atomic_long delivery_failures[2], dead_letters_cut;
    atomic_long results[PW_ARRAY_SIZE(pw_m_statuses)];
    atomic_long errors[PW_ARRAY_SIZE(pw_m_classes)];
    atomic_long api_calls[PW_EPM_COUNT][PW_ARRAY_SIZE(pw_m_status_classes)];
    atomic_long api_bucket[PW_EPM_COUNT][PW_M_NBUCKETS];
    atomic_long api_count[PW_EPM_COUNT];
    atomic_long api_connections;
    atomic_llong api_sum_us[PW_EPM_COUNT];
    atomic_long refreshes[PW_ARRAY_SIZE(pw_m_refresh_results)];
    atomic_long alerts[PW_ARRAY_SIZE(pw_m_alert_kinds)];
    atomic_long redis_errors[PW_ARRAY_SIZE(pw_m_redis_errors)];
    atomic_long redis_policy[PW_ARRAY_SIZE(pw_m_redis_policies)]; /* 1: the current one */
    atomic_long redis_evicting;
    pthread_mutex_t lag_lock;
    struct {
        char topic[128];
        int partition;
        long lag;
    } lag[PW_M_LAG_MAX];
    int lag_count;
} pw_m = {.lag_lock = PTHREAD_MUTEX_INITIALIZER};

static int pw_m_index(const char *const *names, size_t count, const char *name)
{
    for (size_t i = 0; name && i < count; i++)
        if (strcmp(names[i], name) == 0)
            return (int)i;
    return -1;
}

void pw_metrics_consumed(void)
{
    atomic_fetch_add(&pw_m.consumed, 1);
}

void pw_metrics_result(const char *status, const char *error_class)
{
    int i = pw_m_index(pw_m_statuses, PW_ARRAY_SIZE(pw_m_statuses), status);
    if (i >= 0)
        atomic_fetch_add(&pw_m.results[i], 1);
    i = pw_m_index(pw_m_classes, PW_ARRAY_SIZE(pw_m_classes), error_class);
    if (i >= 0)
        atomic_fetch_add(&pw_m.errors[i], 1);
}

void pw_metrics_api_call(pw_metrics_endpoint_t endpoint, long http_status, double seconds)
{
    int cls = http_status >= 200 && http_status < 600 ? (int)(http_status / 100) - 2 : 4;
    atomic_fetch_add(&pw_m.api_calls[endpoint][cls], 1);
    for (size_t b = 0; b < PW_M_NBUCKETS; b++)
        if (seconds <= pw_m_buckets[b])
            atomic_fetch_add(&pw_m.api_bucket[endpoint][b], 1);
    atomic_fetch_add(&pw_m.api_count[endpoint], 1);
    atomic_fetch_add(&pw_m.api_sum_us[endpoint], (long long)(seconds * 1e6));
}

void pw_metrics_api_connections(long opened)
{
    atomic_fetch_add(&pw_m.api_connections, opened);
}

void pw_metrics_refresh(const char *result)
{
    int i = pw_m_index(pw_m_refresh_results, PW_ARRAY_SIZE(pw_m_refresh_results), result);
    if (i >= 0)
        atomic_fetch_add(&pw_m.refreshes[i], 1);
}

void pw_metrics_lock_wait(void)
{
    atomic_fetch_add(&pw_m.lock_waits, 1);
}

void pw_metrics_alert(const char *kind)
{
    int i = pw_m_index(pw_m_alert_kinds, PW_ARRAY_SIZE(pw_m_alert_kinds), kind);
    if (i >= 0)
        atomic_fetch_add(&pw_m.alerts[i], 1);
}

void pw_metrics_redis_error(const char *kind)
{
    int i = pw_m_index(pw_m_redis_errors, PW_ARRAY_SIZE(pw_m_redis_errors), kind);
    if (i >= 0)
        atomic_fetch_add(&pw_m.redis_errors[i], 1);
}

void pw_metrics_set_redis_policy(const char *policy, bool evicting)
{
    size_t n = PW_ARRAY_SIZE(pw_m_redis_policies);
    int current = pw_m_index(pw_m_redis_policies, n, policy);
    if (current < 0 && policy)
        current = (int)n - 1; /* "other" */
    for (size_t i = 0; i < n; i++)
        atomic_store(&pw_m.redis_policy[i], (int)i == current);
    atomic_store(&pw_m.redis_evicting, evicting);
}

void pw_metrics_rebalance(void)
{
    atomic_fetch_add(&pw_m.rebalances, 1);
}

void pw_metrics_set_in_flight(long posts)
{
    atomic_store(&pw_m.in_flight, posts);
}

void pw_metrics_set_buffer(long bytes, long paused_partitions)
{
    atomic_store(&pw_m.buffered_bytes, bytes);
    atomic_store(&pw_m.paused, paused_partitions);
}

void pw_metrics_delivery_failure(bool permanent)
{
    atomic_fetch_add(&pw_m.delivery_failures[permanent], 1);
}

void pw_metrics_dead_letter_cut(void)
{
    atomic_fetch_add(&pw_m.dead_letters_cut, 1);
}

void pw_metrics_set_assigned_partitions(long partitions)
{
    atomic_store(&pw_m.assigned, partitions);
}

void pw_metrics_kafka_stats(const char *json)
{
    cJSON *root = cJSON_Parse(json);
    const cJSON *topics = cJSON_GetObjectItemCaseSensitive(root, "topics");
    const cJSON *topic, *part;
    pthread_mutex_lock(&pw_m.lag_lock);
    pw_m.lag_count = 0;
    cJSON_ArrayForEach(topic, topics)
    {
        cJSON_ArrayForEach(part, cJSON_GetObjectItemCaseSensitive(topic, "partitions"))
        {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(part, "partition");
            const cJSON *lag = cJSON_GetObjectItemCaseSensitive(part, "consumer_lag");
            if (!cJSON_IsNumber(id) || id->valueint < 0 || !cJSON_IsNumber(lag) ||
                lag->valuedouble < 0 || pw_m.lag_count >= PW_M_LAG_MAX)
                continue;
            snprintf(pw_m.lag[pw_m.lag_count].topic, sizeof(pw_m.lag[0].topic), "%s",
                     topic->string);
            pw_m.lag[pw_m.lag_count].partition = id->valueint;
            pw_m.lag[pw_m.lag_count].lag = (long)lag->valuedouble;
            pw_m.lag_count++;
        }
    }
    pthread_mutex_unlock(&pw_m.lag_lock);
    cJSON_Delete(root);
}

/* ---- exposition ---- */

typedef struct pw_buf_s {
    char *data;
    size_t len, cap;
} pw_buf_t;

static void pw_buf_printf(pw_buf_t *b, const char *fmt, ...) PW_PRINTF(2, 3);
static void pw_buf_printf(pw_buf_t *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = (b->cap + (size_t)n) * 2;
        b->data = pw_realloc(b->data, b->cap);
    }
}

static void pw_m_header(pw_buf_t *b, const char *name, const char *type, const char *help)
{
    pw_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void pw_m_labelled(pw_buf_t *b, const char *name, const char *type, const char *help,
                          const char *label, const char *const *values, atomic_long *counts,
                          size_t n)
{
    pw_m_header(b, name, type, help);
    for (size_t i = 0; i < n; i++)
        pw_buf_printf(b, "%s{%s=\"%s\"} %ld\n", name, label, values[i], atomic_load(&counts[i]));
}

static void pw_m_api(pw_buf_t *b)
{
    pw_m_header(b, "publish_worker_api_calls_total", "counter",
                "Threads and OAuth2 API calls by endpoint and HTTP status class.");
    for (int e = 0; e < PW_EPM_COUNT; e++)
        for (size_t c = 0; c < PW_ARRAY_SIZE(pw_m_status_classes); c++)
            pw_buf_printf(
                b, "publish_worker_api_calls_total{endpoint=\"%s\",status_class=\"%s\"} %ld\n",
                pw_m_endpoints[e], pw_m_status_classes[c], atomic_load(&pw_m.api_calls[e][c]));
    pw_m_header(b, "publish_worker_api_connections_total", "counter",
                "Connections opened to the Threads and OAuth2 APIs (each with its TCP and TLS "
                "handshakes); against publish_worker_api_calls_total, how well they are reused.");
    pw_buf_printf(b, "publish_worker_api_connections_total %ld\n",
                  atomic_load(&pw_m.api_connections));
    const char *h = "publish_worker_api_call_duration_seconds";
    pw_m_header(b, h, "histogram", "Latency of API calls, including failed ones.");
    for (int e = 0; e < PW_EPM_COUNT; e++) {
        for (size_t k = 0; k < PW_M_NBUCKETS; k++)
            pw_buf_printf(b, "%s_bucket{endpoint=\"%s\",le=\"%g\"} %ld\n", h, pw_m_endpoints[e],
                          pw_m_buckets[k], atomic_load(&pw_m.api_bucket[e][k]));
        long count = atomic_load(&pw_m.api_count[e]);
        pw_buf_printf(b, "%s_bucket{endpoint=\"%s\",le=\"+Inf\"} %ld\n", h, pw_m_endpoints[e],
                      count);
        pw_buf_printf(b, "%s_sum{endpoint=\"%s\"} %.6f\n", h, pw_m_endpoints[e],
                      (double)atomic_load(&pw_m.api_sum_us[e]) / 1e6);
        pw_buf_printf(b, "%s_count{endpoint=\"%s\"} %ld\n", h, pw_m_endpoints[e], count);
    }
}

static void pw_m_redis(pw_buf_t *b)
{
    pw_m_labelled(b, "publish_worker_redis_errors_total", "counter",
                  "Redis error replies that report the server's state (a replica, out of memory, "
                  "...), by kind; each drops its connection.",
                  "kind", pw_m_redis_errors, pw_m.redis_errors, PW_ARRAY_SIZE(pw_m_redis_errors));
    pw_m_labelled(b, "publish_worker_redis_maxmemory_policy", "gauge",
                  "1 for Redis's maxmemory-policy as last read (INFO memory).", "policy",
                  pw_m_redis_policies, pw_m.redis_policy, PW_ARRAY_SIZE(pw_m_redis_policies));
    pw_m_header(b, "publish_worker_redis_evicting", "gauge",
                "1 when Redis's maxmemory-policy may evict keys (post records, locks).");
    pw_buf_printf(b, "publish_worker_redis_evicting %ld\n", atomic_load(&pw_m.redis_evicting));
}

/* process_* as the Prometheus client libraries export them, from /proc. */
static void pw_m_process(pw_buf_t *b)
{
    long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    unsigned long utime = 0, stime = 0, vsize = 0;
    unsigned long long starttime = 0;
    long rss = 0;
    FILE *f = fopen("/proc/self/stat", "r");
    if (f) {
        char line[1024];
        if (fgets(line, sizeof(line), f)) {
            const char *p = strrchr(line, ')');
            if (p)
                sscanf(p + 2,
                       "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d "
                       "%*d %*d %llu %lu %ld",
                       &utime, &stime, &starttime, &vsize, &rss);
        }
        fclose(f);
    }
    double boot = 0;
    f = fopen("/proc/stat", "r");
    if (f) {
        char line[256];
        while (fgets(line, sizeof(line), f))
            if (sscanf(line, "btime %lf", &boot) == 1)
                break;
        fclose(f);
    }
    long fds = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        for (struct dirent *de; (de = readdir(d));)
            fds += de->d_name[0] != '.';
        closedir(d);
        fds--; /* the directory's own descriptor */
    }
    struct rlimit rl = {0};
    getrlimit(RLIMIT_NOFILE, &rl);
    pw_m_header(b, "process_cpu_seconds_total", "counter", "User and system CPU time spent.");
    pw_buf_printf(b, "process_cpu_seconds_total %.2f\n", (double)(utime + stime) / (double)ticks);
    pw_m_header(b, "process_resident_memory_bytes", "gauge", "Resident memory size.");
    pw_buf_printf(b, "process_resident_memory_bytes %ld\n", rss * page);
    pw_m_header(b, "process_virtual_memory_bytes", "gauge", "Virtual memory size.");
    pw_buf_printf(b, "process_virtual_memory_bytes %lu\n", vsize);
    pw_m_header(b, "process_open_fds", "gauge", "Open file descriptors.");
    pw_buf_printf(b, "process_open_fds %ld\n", fds);
    pw_m_header(b, "process_max_fds", "gauge", "Maximum open file descriptors.");
    pw_buf_printf(b, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
    pw_m_header(b, "process_start_time_seconds", "gauge", "Start time since the epoch.");
    pw_buf_printf(b, "process_start_time_seconds %.2f\n", boot + (double)starttime / (double)ticks);
}

static char *pw_metrics_render(size_t *len)
{
    pw_buf_t b = {.data = pw_malloc(16384), .cap = 16384};
    pw_m_header(&b, "publish_worker_build_info", "gauge", "Version of the running worker.");
    pw_buf_printf(&b, "publish_worker_build_info{version=\"%s\"} 1\n", PW_VERSION);
    pw_m_header(&b, "publish_worker_requests_consumed_total", "counter",
                "Messages consumed from the requests and account events topics.");
    pw_buf_printf(&b, "publish_worker_requests_consumed_total %ld\n", atomic_load(&pw_m.consumed));
    pw_m_labelled(&b, "publish_worker_results_total", "counter", "Results produced, by status.",
                  "status", pw_m_statuses, pw_m.results, PW_ARRAY_SIZE(pw_m_statuses));
    pw_m_labelled(&b, "publish_worker_errors_total", "counter",
                  "Parked and failed results, by error class.", "class", pw_m_classes, pw_m.errors,
                  PW_ARRAY_SIZE(pw_m_classes));
    pw_m_api(&b);
    char *accounts = pw_metrics_accounts_text();
    pw_buf_printf(&b, "%s", accounts);
    free(accounts);
    pw_m_labelled(&b, "publish_worker_token_refreshes_total", "counter",
                  "Token refreshes by outcome.", "result", pw_m_refresh_results, pw_m.refreshes,
                  PW_ARRAY_SIZE(pw_m_refresh_results));
    pw_m_header(&b, "publish_worker_refresh_lock_waits_total", "counter",
                "Times a worker waited for another's refresh instead of refreshing.");
    pw_buf_printf(&b, "publish_worker_refresh_lock_waits_total %ld\n",
                  atomic_load(&pw_m.lock_waits));
    pw_m_labelled(&b, "publish_worker_alerts_total", "counter", "Alerts raised, by kind.", "kind",
                  pw_m_alert_kinds, pw_m.alerts, PW_ARRAY_SIZE(pw_m_alert_kinds));
    pw_m_header(&b, "publish_worker_posts_in_flight", "gauge",
                "Consumed messages not yet durably answered.");
    pw_buf_printf(&b, "publish_worker_posts_in_flight %ld\n", atomic_load(&pw_m.in_flight));
    pw_m_header(&b, "publish_worker_buffered_bytes", "gauge",
                "Payload bytes of consumed messages not answered yet (WORKER_BUFFER_BYTES bounds "
                "it).");
    pw_buf_printf(&b, "publish_worker_buffered_bytes %ld\n", atomic_load(&pw_m.buffered_bytes));
    pw_m_header(&b, "publish_worker_paused_partitions", "gauge",
                "Partitions paused because they buffer their share of messages or bytes.");
    pw_buf_printf(&b, "publish_worker_paused_partitions %ld\n", atomic_load(&pw_m.paused));
    static const char *const kinds[] = {"retriable", "permanent"};
    pw_m_labelled(&b, "publish_worker_delivery_failures_total", "counter",
                  "Messages Kafka did not take: retried later, or (permanent) never.", "kind",
                  kinds, pw_m.delivery_failures, 2);
    pw_m_header(&b, "publish_worker_dead_letters_cut_total", "counter",
                "Dead letters too large for their topic, produced cut to fit.");
    pw_buf_printf(&b, "publish_worker_dead_letters_cut_total %ld\n",
                  atomic_load(&pw_m.dead_letters_cut));
    pw_m_header(&b, "publish_worker_assigned_partitions", "gauge", "Partitions assigned.");
    pw_buf_printf(&b, "publish_worker_assigned_partitions %ld\n", atomic_load(&pw_m.assigned));
    pw_m_header(&b, "publish_worker_rebalances_total", "counter", "Consumer group rebalances.");
    pw_buf_printf(&b, "publish_worker_rebalances_total %ld\n", atomic_load(&pw_m.rebalances));
    pw_m_redis(&b);
    pw_m_header(&b, "publish_worker_consumer_lag", "gauge",
                "Messages behind the partition's end, from librdkafka's statistics.");
    pthread_mutex_lock(&pw_m.lag_lock);
    for (int i = 0; i < pw_m.lag_count; i++)
        pw_buf_printf(&b, "publish_worker_consumer_lag{topic=\"%s\",partition=\"%d\"} %ld\n",
                      pw_m.lag[i].topic, pw_m.lag[i].partition, pw_m.lag[i].lag);
    pthread_mutex_unlock(&pw_m.lag_lock);
    pw_m_process(&b);
    *len = b.len;
    return b.data;
}
