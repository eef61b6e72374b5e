/* Metrics and health endpoints served by libmicrohttpd's internal thread. */
#include "metrics.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct pw_metrics_server_s {
    struct MHD_Daemon *daemon;
    int stall_ms;
    atomic_int_least64_t last_turn_mono_ms;
    atomic_bool redis_ok;
    atomic_bool group_joined;
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
    char body[128];
    if (idle_ms > server->stall_ms) {
        snprintf(body, sizeof(body), "{\"status\":\"stalled\",\"loop_idle_ms\":%lld}\n",
                 (long long)idle_ms);
        return pw_metrics_reply(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "application/json", body);
    }
    snprintf(body, sizeof(body), "{\"status\":\"ok\",\"loop_idle_ms\":%lld}\n", (long long)idle_ms);
    return pw_metrics_reply(conn, MHD_HTTP_OK, "application/json", body);
}

static enum MHD_Result pw_metrics_ready(pw_metrics_server_t *server, struct MHD_Connection *conn)
{
    bool redis_ok = atomic_load(&server->redis_ok);
    bool joined = atomic_load(&server->group_joined);
    char body[160];
    snprintf(body, sizeof(body),
             "{\"status\":\"%s\",\"config\":true,\"redis\":%s,\"group_joined\":%s}\n",
             redis_ok && joined ? "ready" : "not_ready", redis_ok ? "true" : "false",
             joined ? "true" : "false");
    return pw_metrics_reply(conn, redis_ok && joined ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
                            "application/json", body);
}

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

void pw_metrics_set_redis_ok(pw_metrics_server_t *server, bool ok)
{
    atomic_store(&server->redis_ok, ok);
}

void pw_metrics_set_group_joined(pw_metrics_server_t *server, bool joined)
{
    atomic_store(&server->group_joined, joined);
}
