/* Unit tests of the HTTP client against a tiny server (http_server.c):
 * response bodies are bounded, a Threads call whose answer is too big is
 * a transient failure, and a WWW-Authenticate challenge is reported. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http.h"
#include "http_server.h"
#include "threads_api.h"

static int server_port;

static int server_start(void **state)
{
    (void)state;
    server_port = http_server_start();
    return server_port > 0 ? 0 : -1;
}

static int server_stop(void **state)
{
    (void)state;
    http_server_stop();
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

/* An OAuth2 token endpoint refusing the client answers 401 with a challenge
 * (RFC 6749 §5.2), with or without a body: the response says which. */
static void test_a_www_authenticate_challenge_is_reported(void **state)
{
    (void)state;
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/oauth2/token", server_port);
    pw_http_t *http = pw_http_new(2000, 20000);
    pw_secret_t *secret = pw_secret_new("wrong", 5);
    const pw_http_param_t params[] = {{"grant_type", "refresh_token"}};
    pw_http_response_t resp;
    http_server_answer_with(401, "WWW-Authenticate: Basic realm=\"token\"\r\n", "");
    assert_int_equal(pw_http_post_form(http, url, params, 1, "pw-client", secret, &resp), 0);
    assert_int_equal(resp.status, 401);
    assert_true(resp.www_authenticate);
    pw_http_response_clear(&resp);
    http_server_answer(401, "<html>401 Unauthorized</html>");
    assert_int_equal(pw_http_post_form(http, url, params, 1, "pw-client", secret, &resp), 0);
    assert_int_equal(resp.status, 401);
    assert_false(resp.www_authenticate);
    pw_http_response_clear(&resp);
    pw_secret_destroy(secret);
    pw_http_destroy(http);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_body_up_to_the_limit_is_read),
        cmocka_unit_test(test_body_over_the_limit_is_refused),
        cmocka_unit_test(test_threads_answer_too_big_is_transient),
        cmocka_unit_test(test_a_www_authenticate_challenge_is_reported),
    };
    return cmocka_run_group_tests(tests, server_start, server_stop);
}
