/* Unit tests of logging: JSON lines, level gating, redaction by type. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "log.h"
#include "secret.h"

static FILE *out;

static int setup(void **state)
{
    (void)state;
    out = tmpfile();
    pw_log_set_stream(out);
    pw_log_init(PW_LOG_INFO, "w-1");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pw_log_set_stream(NULL);
    fclose(out);
    return 0;
}

/* Everything logged since the last call. */
static char *drain(void)
{
    long end = ftell(out);
    char *buf = calloc(1, (size_t)end + 1);
    rewind(out);
    size_t n = fread(buf, 1, (size_t)end, out);
    buf[n] = '\0';
    rewind(out);
    if (ftruncate(fileno(out), 0) != 0)
        fail();
    return buf;
}

static void test_lines_are_json_with_context(void **state)
{
    (void)state;
    pw_log_warn("auth failure", PW_F_STR("account_id", "acct-\"42\""), PW_F_INT("http_status", 401),
                PW_F_OPT_INT("subcode", -1), PW_F_BOOL("retriable", 0));
    char *text = drain();
    cJSON *line = cJSON_Parse(text);
    assert_non_null(line);
    assert_string_equal(cJSON_GetObjectItem(line, "level")->valuestring, "warn");
    assert_string_equal(cJSON_GetObjectItem(line, "msg")->valuestring, "auth failure");
    assert_string_equal(cJSON_GetObjectItem(line, "worker_id")->valuestring, "w-1");
    assert_string_equal(cJSON_GetObjectItem(line, "account_id")->valuestring, "acct-\"42\"");
    assert_int_equal(cJSON_GetObjectItem(line, "http_status")->valueint, 401);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(line, "subcode")));
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(line, "retriable")));
    assert_non_null(strstr(cJSON_GetObjectItem(line, "ts")->valuestring, "Z"));
    cJSON_Delete(line);
    free(text);
}

static int evaluated;
static const char *count_evaluation(void)
{
    evaluated++;
    return "x";
}

static void test_level_gates_before_arguments_are_evaluated(void **state)
{
    (void)state;
    evaluated = 0;
    pw_log_debug("hidden", PW_F_STR("x", count_evaluation()));
    assert_int_equal(evaluated, 0);
    char *text = drain();
    assert_string_equal(text, "");
    free(text);
}

static void test_secrets_print_only_as_fingerprints(void **state)
{
    (void)state;
    pw_secret_t *token = pw_secret_new("THAAsupersecret", 15);
    char fp[32];
    pw_secret_fingerprint(token, fp, sizeof(fp));
    assert_int_equal(strncmp(fp, "sha256:", 7), 0);
    assert_int_equal(strlen(fp), 19);
    assert_null(strstr(fp, "supersecret"));
    /* The logger has no field type for pw_secret_t (a compile error); the
     * fingerprint is what reaches a line. */
    pw_log_info("token stored", PW_F_STR("access_token", fp));
    char *text = drain();
    assert_null(strstr(text, "supersecret"));
    assert_non_null(strstr(text, fp));
    free(text);
    pw_secret_t *same = pw_secret_new("THAAsupersecret", 15);
    char fp2[32];
    pw_secret_fingerprint(same, fp2, sizeof(fp2));
    assert_string_equal(fp, fp2);
    pw_secret_destroy(same);
    pw_secret_destroy(token);
}

static void test_redact_replaces_every_quote_of_a_secret(void **state)
{
    (void)state;
    pw_secret_t *token = pw_secret_new("THAAtoken123", 12);
    char fp[32], want[256];
    pw_secret_fingerprint(token, fp, sizeof(fp));
    char text[256] = "Malformed access token THAAtoken123 (THAAtoken123)";
    pw_secret_redact(token, text, sizeof(text));
    snprintf(want, sizeof(want), "Malformed access token [secret %s] ([secret %s])", fp, fp);
    assert_string_equal(text, want);

    /* Truncated to the buffer, never leaving a piece of the secret behind. */
    char small[30] = "token THAAtoken123 tail";
    pw_secret_redact(token, small, sizeof(small));
    assert_null(strstr(small, "THAA"));
    assert_true(strlen(small) == sizeof(small) - 1);

    char other[64] = "nothing to hide";
    pw_secret_redact(token, other, sizeof(other));
    assert_string_equal(other, "nothing to hide");
    pw_secret_redact(NULL, other, sizeof(other));
    assert_string_equal(other, "nothing to hide");
    pw_secret_destroy(token);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines_are_json_with_context),
        cmocka_unit_test(test_level_gates_before_arguments_are_evaluated),
        cmocka_unit_test(test_secrets_print_only_as_fingerprints),
        cmocka_unit_test(test_redact_replaces_every_quote_of_a_secret),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
