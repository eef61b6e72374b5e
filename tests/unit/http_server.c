/* A tiny HTTP/1.1 server for unit tests (see http_server.h). */
#include "http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int server_fd = -1;
static pthread_t server_thread;
static int answer_status = 200;
static char *answer_body;
static char *answer_headers;

void http_server_answer_with(int status, const char *headers, const char *body)
{
    free(answer_body);
    free(answer_headers);
    answer_status = status;
    answer_body = strdup(body);
    answer_headers = strdup(headers);
}

void http_server_answer(int status, const char *body)
{
    http_server_answer_with(status, "", body);
}

static void send_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n <= 0)
            return; /* the client gave up: what the tests expect of a big body */
        data += n;
        len -= (size_t)n;
    }
}

/* Reads the request head and any body its Content-Length announces. */
static void read_request(int fd, char *head, size_t head_size)
{
    size_t len = 0;
    head[0] = '\0';
    while (len + 1 < head_size && !strstr(head, "\r\n\r\n")) {
        ssize_t n = recv(fd, head + len, head_size - len - 1, 0);
        if (n <= 0)
            return;
        len += (size_t)n;
        head[len] = '\0';
    }
    const char *cl = strstr(head, "Content-Length: ");
    long body = cl ? atol(cl + 16) : 0;
    body -= (long)(len - (size_t)(strstr(head, "\r\n\r\n") + 4 - head));
    char sink[4096];
    while (body > 0) {
        ssize_t n = recv(fd, sink, sizeof(sink), 0);
        if (n <= 0)
            return;
        body -= n;
    }
}

/* total bytes of 'x', in 64 KiB chunks when chunked. */
static void send_body(int fd, size_t total, int chunked)
{
    static char chunk[65536];
    char line[32];
    memset(chunk, 'x', sizeof(chunk));
    for (size_t sent = 0; sent < total;) {
        size_t n = total - sent < sizeof(chunk) ? total - sent : sizeof(chunk);
        if (chunked) {
            snprintf(line, sizeof(line), "%zx\r\n", n);
            send_all(fd, line, strlen(line));
        }
        send_all(fd, chunk, n);
        if (chunked)
            send_all(fd, "\r\n", 2);
        sent += n;
    }
    if (chunked)
        send_all(fd, "0\r\n\r\n", 5);
}

static void serve(int fd)
{
    char head[8192], line[1024];
    read_request(fd, head, sizeof(head));
    const char *sized = strstr(head, "/size/"), *chunked = strstr(head, "/chunked/");
    if (!sized && !chunked) {
        const char *body = answer_body ? answer_body : "";
        snprintf(line, sizeof(line),
                 "HTTP/1.1 %d X\r\nConnection: close\r\nContent-Type: application/json\r\n"
                 "%sContent-Length: %zu\r\n\r\n",
                 answer_status, answer_headers ? answer_headers : "", strlen(body));
        send_all(fd, line, strlen(line));
        send_all(fd, body, strlen(body));
        return;
    }
    size_t total = (size_t)atol(sized ? sized + 6 : chunked + 9);
    if (sized)
        snprintf(line, sizeof(line),
                 "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %zu\r\n\r\n", total);
    else
        snprintf(line, sizeof(line),
                 "HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n");
    send_all(fd, line, strlen(line));
    send_body(fd, total, chunked != NULL);
}

static void *server_main(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = accept(server_fd, NULL, NULL);
        if (fd < 0)
            return NULL; /* shut down */
        serve(fd);
        close(fd);
    }
}

int http_server_start(void)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t addr_len = sizeof(addr);
    server_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (server_fd < 0 || bind(server_fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
        listen(server_fd, 16) != 0 ||
        getsockname(server_fd, (struct sockaddr *)&addr, &addr_len) != 0 ||
        pthread_create(&server_thread, NULL, server_main, NULL) != 0)
        return -1;
    return ntohs(addr.sin_port);
}

void http_server_stop(void)
{
    shutdown(server_fd, SHUT_RDWR); /* wakes accept() */
    pthread_join(server_thread, NULL);
    close(server_fd);
    free(answer_body);
    free(answer_headers);
    answer_body = answer_headers = NULL;
}
