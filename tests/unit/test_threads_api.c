/* Unit tests of Meta error classification: class, auth kind, retriability. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_errors_by_code_not_status),
        cmocka_unit_test(test_missing_scope_and_wrong_account),
        cmocka_unit_test(test_transient_and_rate_limits_are_retriable),
        cmocka_unit_test(test_media_not_ready_and_invalid_parameters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
