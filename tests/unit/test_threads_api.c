/* Unit tests of Meta error classification (class, auth kind, retriability),
 * of 401/403 answers without a Graph error (transient), of OAuth2 errors that
 * are the fleet's configuration (config_error), and of the token never
 * surviving in the platform's text, cut or not. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http_server.h"
#include "threads_api.h"

static pw_api_error_t classify(const char *endpoint, long status, int code, int subcode)
{
    char body[256];
    if (subcode >= 0)
        snprintf(body, sizeof(body),
                 "{\"error\":{\"message\":\"m\",\"type\":\"OAuthException\",\"code\":%d,"
                 "\"error_subcode\":%d,\"fbtrace_id\":\"AbC123xyz\"}}",
                 code, subcode);
    else
        snprintf(body, sizeof(body),
                 "{\"error\":{\"message\":\"m\",\"code\":%d,\"fbtrace_id\":\"AbC123xyz\"}}", code);
    pw_api_error_t err;
    pw_api_error_classify(endpoint, status, code >= 0 ? body : "not json", -1, NULL, &err);
    return err;
}

static void test_token_errors_by_code_not_status(void **state)
{
    (void)state;
    /* Expired, as 401 and as 400: the same verdict. */
    for (long status = 400; status <= 401; status++) {
        pw_api_error_t err = classify(PW_EP_CREATE, status, 190, 463);
        assert_int_equal(err.cls, PW_EC_AUTH);
        assert_int_equal(err.auth, PW_AUTH_EXPIRED);
        assert_false(err.retriable);
        assert_string_equal(err.fbtrace_id, "AbC123xyz");
    }
    const int revoked[] = {458, 459, 460, 464, 467};
    for (size_t i = 0; i < sizeof(revoked) / sizeof(revoked[0]); i++)
        assert_int_equal(classify(PW_EP_PUBLISH, 400, 190, revoked[i]).auth, PW_AUTH_REVOKED);
    assert_int_equal(classify(PW_EP_CREATE, 400, 190, -1).auth, PW_AUTH_INVALID_TOKEN);
}

static void test_missing_scope_and_wrong_account(void **state)
{
    (void)state;
    pw_api_error_t err = classify(PW_EP_CREATE, 403, 10, -1);
    assert_int_equal(err.cls, PW_EC_PERMISSION);
    assert_int_equal(err.auth, PW_AUTH_MISSING_SCOPE);
    assert_int_equal(classify(PW_EP_CREATE, 400, 200, -1).cls, PW_EC_PERMISSION);
    assert_int_equal(classify(PW_EP_CREATE, 400, 299, -1).cls, PW_EC_PERMISSION);
    err = classify(PW_EP_CREATE, 400, 100, 33);
    assert_int_equal(err.auth, PW_AUTH_WRONG_ACCOUNT);
    /* On a container, 100/33 means "no such container", not a wrong token. */
    err = classify(PW_EP_STATUS, 400, 100, 33);
    assert_int_equal(err.cls, PW_EC_INVALID_REQUEST);
}

static void test_transient_and_rate_limits_are_retriable(void **state)
{
    (void)state;
    const int rate[] = {4, 17, 32, 613};
    for (size_t i = 0; i < 4; i++) {
        pw_api_error_t err = classify(PW_EP_PUBLISH, 400, rate[i], -1);
        assert_int_equal(err.cls, PW_EC_RATE_LIMITED);
        assert_true(err.retriable);
    }
    assert_int_equal(classify(PW_EP_PUBLISH, 429, -1, -1).cls, PW_EC_RATE_LIMITED);
    assert_int_equal(classify(PW_EP_PUBLISH, 500, 2, -1).cls, PW_EC_TRANSIENT);
    assert_int_equal(classify(PW_EP_PUBLISH, 500, 1, -1).cls, PW_EC_TRANSIENT);
    assert_int_equal(classify(PW_EP_PUBLISH, 503, -1, -1).cls, PW_EC_TRANSIENT);
    pw_api_error_t err;
    pw_api_error_classify(PW_EP_CREATE, 0, NULL, 2000, "Timeout was reached", &err);
    assert_int_equal(err.cls, PW_EC_TRANSIENT);
    assert_true(err.retriable);
    assert_int_equal(err.http_status, -1);
    assert_int_equal(err.retry_after_ms, 2000);
    assert_string_equal(err.message, "Timeout was reached");
}

static void test_media_not_ready_and_invalid_parameters(void **state)
{
    (void)state;
    pw_api_error_t err = classify(PW_EP_PUBLISH, 400, 24, 4279009);
    assert_int_equal(err.cls, PW_EC_MEDIA);
    assert_true(err.not_ready);
    err = classify(PW_EP_PUBLISH, 400, 24, 4279001);
    assert_int_equal(err.cls, PW_EC_MEDIA);
    assert_false(err.not_ready);
    assert_false(err.retriable);
    err = classify(PW_EP_CREATE, 400, 100, -1);
    assert_int_equal(err.cls, PW_EC_INVALID_REQUEST);
    assert_false(err.retriable);
    assert_int_equal(err.code, 100);
    assert_int_equal(err.subcode, -1);
}

/* ---- 401 and 403 without a Graph error: a proxy's page, not a verdict ---- */

/* A 400 whose body was cut short (Meta's "not ready" answer, for one) says
 * nothing readable: transient, never a permanent invalid_request. */
static void test_a_client_error_without_a_readable_graph_error_is_transient(void **state)
{
    (void)state;
    const char *const bodies[] = {"{\"error\":{\"message\":\"Media ID is not avail", "",
                                  "<html>Bad Request</html>"};
    for (size_t i = 0; i < PW_ARRAY_SIZE(bodies); i++) {
        pw_api_error_t err;
        pw_api_error_classify(PW_EP_PUBLISH, 400, bodies[i], -1, NULL, &err);
        assert_int_equal(err.cls, PW_EC_TRANSIENT);
        assert_true(err.retriable);
    }
    /* A readable Graph error still decides: an invalid parameter is final. */
    assert_int_equal(classify(PW_EP_CREATE, 400, 100, -1).cls, PW_EC_INVALID_REQUEST);
}

static void test_an_auth_status_without_a_graph_error_is_transient(void **state)
{
    (void)state;
    const char *const bodies[] = {"<html><body>401 Unauthorized</body></html>", "",
                                  "{\"error\":{\"message\":\"no code\"}}",
                                  "{\"error\":\"a string\"}"};
    const char *const endpoints[] = {PW_EP_CREATE, PW_EP_STATUS, PW_EP_PUBLISH, PW_EP_REFRESH};
    for (long status = 401; status <= 403; status += 2) {
        for (size_t i = 0; i < PW_ARRAY_SIZE(bodies); i++) {
            for (size_t e = 0; e < PW_ARRAY_SIZE(endpoints); e++) {
                pw_api_error_t err;
                pw_api_error_classify(endpoints[e], status, bodies[i], -1, NULL, &err);
                assert_int_equal(err.cls, PW_EC_TRANSIENT);
                assert_int_equal(err.auth, PW_AUTH_NONE);
                assert_true(err.retriable);
                assert_false(err.config_error);
                assert_int_equal(err.http_status, status);
            }
        }
    }
    /* With a Graph error, the code decides, whatever the status. */
    assert_int_equal(classify(PW_EP_CREATE, 401, 190, 460).auth, PW_AUTH_REVOKED);
    assert_int_equal(classify(PW_EP_CREATE, 403, 10, -1).cls, PW_EC_PERMISSION);
    assert_int_equal(classify(PW_EP_CREATE, 403, 200, -1).auth, PW_AUTH_MISSING_SCOPE);
}

/* ---- OAuth2 token endpoint (RFC 6749 §5.2) ---- */

#define OAUTH2_EP "POST {OAUTH2_TOKEN_URL}"

static pw_api_error_t classify_oauth2(long status, const char *body, bool challenged)
{
    pw_api_error_t err;
    pw_api_error_classify_oauth2(OAUTH2_EP, status, body, challenged, NULL, &err);
    return err;
}

static void assert_config_error(const pw_api_error_t *err, long status, const char *said)
{
    assert_true(err->config_error);
    assert_int_equal(err->cls, PW_EC_TRANSIENT);
    assert_int_equal(err->auth, PW_AUTH_NONE);
    assert_true(err->retriable);
    assert_int_equal(err->http_status, status);
    assert_non_null(strstr(err->message, "OAUTH2_CLIENT_ID"));
    assert_non_null(strstr(err->message, "OAUTH2_CLIENT_SECRET"));
    assert_non_null(strstr(err->message, said));
}

static void test_a_refused_oauth2_client_is_a_config_error(void **state)
{
    (void)state;
    pw_api_error_t err = classify_oauth2(
        401, "{\"error\":\"invalid_client\",\"error_description\":\"bad secret\"}", true);
    assert_config_error(&err, 401, "invalid_client: bad secret");
    /* Without the challenge, and as 400 (some servers answer so): the same. */
    err = classify_oauth2(400, "{\"error\":\"invalid_client\"}", false);
    assert_config_error(&err, 400, "invalid_client");
    err = classify_oauth2(400, "{\"error\":\"unauthorized_client\"}", false);
    assert_config_error(&err, 400, "unauthorized_client");
    /* A 401 with a challenge and no error body is invalid_client too. */
    err = classify_oauth2(401, "", true);
    assert_config_error(&err, 401, "WWW-Authenticate");
    err = classify_oauth2(401, "<html>Unauthorized</html>", true);
    assert_config_error(&err, 401, "WWW-Authenticate");
}

static void test_oauth2_errors_of_the_grant_or_of_a_proxy_are_not_config_errors(void **state)
{
    (void)state;
    /* invalid_grant: the account's refresh token; a reconnect, as before. */
    pw_api_error_t err = classify_oauth2(400, "{\"error\":\"invalid_grant\"}", false);
    assert_int_equal(err.cls, PW_EC_AUTH);
    assert_int_equal(err.auth, PW_AUTH_REVOKED);
    assert_false(err.retriable);
    assert_false(err.config_error);
    /* Even when a server adds a challenge to it. */
    err = classify_oauth2(401, "{\"error\":\"invalid_grant\"}", true);
    assert_int_equal(err.auth, PW_AUTH_REVOKED);
    assert_false(err.config_error);
    /* A proxy's 401 or 403 page without a challenge: transient. */
    for (long status = 401; status <= 403; status += 2) {
        err = classify_oauth2(status, "<html>denied</html>", false);
        assert_int_equal(err.cls, PW_EC_TRANSIENT);
        assert_true(err.retriable);
        assert_false(err.config_error);
        assert_int_equal(err.auth, PW_AUTH_NONE);
    }
    err = classify_oauth2(400, "{\"error\":\"invalid_request\"}", false);
    assert_int_equal(err.cls, PW_EC_INVALID_REQUEST);
    assert_false(err.config_error);
    err = classify_oauth2(503, "", false);
    assert_int_equal(err.cls, PW_EC_TRANSIENT);
    assert_false(err.config_error);
    pw_api_error_classify_oauth2(OAUTH2_EP, 0, NULL, false, "Connection refused", &err);
    assert_int_equal(err.cls, PW_EC_TRANSIENT);
    assert_false(err.config_error);
}

static void test_config_errors_are_made_whole_and_never_reach_a_reconnect(void **state)
{
    (void)state;
    pw_api_error_t err, out;
    pw_api_error_config(&err, OAUTH2_EP, "OAUTH2_TOKEN_URL is not set");
    assert_true(err.config_error);
    assert_int_equal(err.cls, PW_EC_TRANSIENT);
    assert_true(err.retriable);
    assert_int_equal(err.http_status, -1);
    assert_string_equal(err.message, "OAUTH2_TOKEN_URL is not set");
    /* Another reading of a failure is a reconnect of the account: never a
     * configuration error any more. */
    pw_api_error_needs_reconnect(&err, PW_AUTH_REVOKED, &out);
    assert_false(out.config_error);
    assert_int_equal(out.cls, PW_EC_AUTH);
    pw_api_error_make(&err, OAUTH2_EP, PW_EC_TRANSIENT, PW_AUTH_NONE, true, -1, "x");
    assert_false(err.config_error);
}

/* ---- the platform's text quoting the token, cut to fit a buffer ---- */

#define STRADDLING_TOKEN "THAAstraddling0123456789abcdefghijklmnopqrstuvwxyz"

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

/* A message of cut - keep filler bytes, then the token, then more: cut to
 * cut bytes, keep bytes of the token would remain. */
static char *message_cut_in_token(size_t cut, size_t keep)
{
    size_t filler = cut - keep;
    char *msg = malloc(filler + sizeof(STRADDLING_TOKEN) + 16);
    memset(msg, 'm', filler);
    snprintf(msg + filler, sizeof(STRADDLING_TOKEN) + 16, "%s and more", STRADDLING_TOKEN);
    return msg;
}

/* No piece of the token (4 bytes or more, or whatever a cut leaves at the end). */
static void assert_no_piece_of_token(const char *text, size_t keep)
{
    assert_null(strstr(text, "THAA"));
    size_t len = strlen(text);
    if (len >= keep)
        assert_int_not_equal(strncmp(text + len - keep, STRADDLING_TOKEN, keep), 0);
}

static void test_token_straddling_the_cut_of_an_error_message_is_redacted(void **state)
{
    (void)state;
    char base[64], body[1024];
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", server_port);
    pw_secret_t *token = pw_secret_new(STRADDLING_TOKEN, strlen(STRADDLING_TOKEN));
    pw_http_t *http = pw_http_new(2000, 10000);
    pw_container_spec_t spec = {.media_type = "TEXT", .text = "hello"};
    const size_t keeps[] = {1, 3, 4, 10, strlen(STRADDLING_TOKEN) - 1};
    for (size_t i = 0; i < PW_ARRAY_SIZE(keeps); i++) {
        pw_api_error_t err;
        char *msg = message_cut_in_token(sizeof(err.message) - 1, keeps[i]);
        snprintf(body, sizeof(body),
                 "{\"error\":{\"message\":\"%s\",\"type\":\"OAuthException\",\"code\":190}}", msg);
        http_server_answer(400, body);
        char id[PW_ID_MAX];
        assert_int_equal(pw_threads_create_container(http, base, "1789", token, &spec, id, &err),
                         -1);
        assert_int_equal(err.cls, PW_EC_AUTH);
        assert_no_piece_of_token(err.message, keeps[i]);
        assert_non_null(strstr(err.message, "mmm"));
        free(msg);
    }
    pw_http_destroy(http);
    pw_secret_destroy(token);
}

static void test_token_straddling_the_cut_of_a_container_error_is_redacted(void **state)
{
    (void)state;
    char base[64], body[1024], error_message[64];
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", server_port);
    pw_secret_t *token = pw_secret_new(STRADDLING_TOKEN, strlen(STRADDLING_TOKEN));
    pw_http_t *http = pw_http_new(2000, 10000);
    const size_t keeps[] = {1, 4, 10, strlen(STRADDLING_TOKEN) - 1};
    for (size_t i = 0; i < PW_ARRAY_SIZE(keeps); i++) {
        char *msg = message_cut_in_token(sizeof(error_message) - 1, keeps[i]);
        snprintf(body, sizeof(body), "{\"status\":\"ERROR\",\"error_message\":\"%s\"}", msg);
        http_server_answer(200, body);
        pw_container_status_t status;
        pw_api_error_t err;
        assert_int_equal(pw_threads_container_status(http, base, "c1", token, &status,
                                                     error_message, sizeof(error_message), &err),
                         0);
        assert_int_equal(status, PW_CONTAINER_ERROR);
        assert_no_piece_of_token(error_message, keeps[i]);
        free(msg);
    }
    pw_http_destroy(http);
    pw_secret_destroy(token);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_errors_by_code_not_status),
        cmocka_unit_test(test_missing_scope_and_wrong_account),
        cmocka_unit_test(test_transient_and_rate_limits_are_retriable),
        cmocka_unit_test(test_media_not_ready_and_invalid_parameters),
        cmocka_unit_test(test_a_client_error_without_a_readable_graph_error_is_transient),
        cmocka_unit_test(test_an_auth_status_without_a_graph_error_is_transient),
        cmocka_unit_test(test_a_refused_oauth2_client_is_a_config_error),
        cmocka_unit_test(test_oauth2_errors_of_the_grant_or_of_a_proxy_are_not_config_errors),
        cmocka_unit_test(test_config_errors_are_made_whole_and_never_reach_a_reconnect),
        cmocka_unit_test(test_token_straddling_the_cut_of_an_error_message_is_redacted),
        cmocka_unit_test(test_token_straddling_the_cut_of_a_container_error_is_redacted),
    };
    return cmocka_run_group_tests(tests, server_start, server_stop);
}
