/* Unit tests of the HTTP client against a tiny server on a loopback port:
 * response bodies are bounded, and a Threads call whose answer is too big is
 * a transient failure. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "http.h"
#include "threads_api.h"

static int server_fd = -1;
static int server_port;
static pthread_t server_thread;

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

/* GET/POST .../size/N...: N bytes with a Content-Length; .../chunked/N...:
 * N bytes in 64 KiB chunks without one. */
static void serve(int fd)
{
    char head[8192];
    read_request(fd, head, sizeof(head));
    const char *sized = strstr(head, "/size/"), *chunked = strstr(head, "/chunked/");
    size_t total = (size_t)atol(sized ? sized + 6 : chunked ? chunked + 9 : "0");
    char line[256];
    snprintf(line, sizeof(line), "HTTP/1.1 200 OK\r\nConnection: close\r\n%s%zu\r\n\r\n",
             sized ? "Content-Length: " : "Transfer-Encoding: chunked\r\nX-Total: ", total);
    send_all(fd, line, strlen(line));
    static char chunk[65536];
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

static int server_start(void **state)
{
    (void)state;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t addr_len = sizeof(addr);
    server_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (server_fd < 0 || bind(server_fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
        listen(server_fd, 16) != 0 ||
        getsockname(server_fd, (struct sockaddr *)&addr, &addr_len) != 0)
        return -1;
    server_port = ntohs(addr.sin_port);
    return pthread_create(&server_thread, NULL, server_main, NULL) == 0 ? 0 : -1;
}

static int server_stop(void **state)
{
    (void)state;
    shutdown(server_fd, SHUT_RDWR); /* wakes accept() */
    pthread_join(server_thread, NULL);
    close(server_fd);
    return 0;
}

static int get(const char *path, pw_http_response_t *resp)
{
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", server_port, path);
    pw_http_t *http = pw_http_new(2000, 20000);
    int rc = pw_http_get(http, url, NULL, 0, resp);
    pw_http_destroy(http);
    return rc;
}

static void test_body_up_to_the_limit_is_read(void **state)
{
    (void)state;
    char path[64];
    pw_http_response_t resp;
    snprintf(path, sizeof(path), "/size/%d", PW_HTTP_MAX_BODY);
    assert_int_equal(get(path, &resp), 0);
    assert_int_equal(resp.status, 200);
    assert_int_equal(resp.body_len, PW_HTTP_MAX_BODY);
    pw_http_response_clear(&resp);
    snprintf(path, sizeof(path), "/chunked/%d", PW_HTTP_MAX_BODY);
    assert_int_equal(get(path, &resp), 0);
    assert_int_equal(resp.body_len, PW_HTTP_MAX_BODY);
    pw_http_response_clear(&resp);
}

static void test_body_over_the_limit_is_refused(void **state)
{
    (void)state;
    char path[64];
    pw_http_response_t resp;
    /* Announced by Content-Length, and found out while reading chunks. */
    const char *const kinds[] = {"/size/%d", "/chunked/%d"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), kinds[i], PW_HTTP_MAX_BODY + 1);
        assert_int_equal(get(path, &resp), -1);
        assert_int_equal(resp.status, 0);
        assert_null(resp.body);
        assert_non_null(strstr(resp.error, "larger than"));
        pw_http_response_clear(&resp);
    }
    snprintf(path, sizeof(path), "/chunked/%d", 64 * PW_HTTP_MAX_BODY);
    assert_int_equal(get(path, &resp), -1);
    pw_http_response_clear(&resp);
}

static void test_threads_answer_too_big_is_transient(void **state)
{
    (void)state;
    char base[128];
    snprintf(base, sizeof(base), "http://127.0.0.1:%d/size/%d", server_port, 4 * PW_HTTP_MAX_BODY);
    pw_http_t *http = pw_http_new(2000, 20000);
    pw_secret_t *token = pw_secret_new("THAAtoken", 9);
    pw_container_spec_t spec = {.media_type = "TEXT", .text = "hello"};
    char id[PW_ID_MAX];
    pw_api_error_t err;
    assert_int_equal(pw_threads_create_container(http, base, "1789", token, &spec, id, &err), -1);
    assert_int_equal(err.cls, PW_EC_TRANSIENT);
    assert_true(err.retriable);
    assert_int_equal(err.http_status, -1);
    assert_non_null(strstr(err.message, "larger than"));
    pw_secret_destroy(token);
    pw_http_destroy(http);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_body_up_to_the_limit_is_read),
        cmocka_unit_test(test_body_over_the_limit_is_refused),
        cmocka_unit_test(test_threads_answer_too_big_is_transient),
    };
    return cmocka_run_group_tests(tests, server_start, server_stop);
}
