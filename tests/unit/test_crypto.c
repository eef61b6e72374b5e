/* Unit tests of token sealing: round trip, fresh nonces, tamper detection,
 * account binding, key rotation and key ring parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "crypto.h"

/* 32 bytes each, base64. */
#define KEY_A "A:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
#define KEY_B "B:ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="

static pw_keyring_t *ring(const char *text)
{
    char errstr[256];
    pw_keyring_t *r = pw_keyring_parse(text, "test", errstr, sizeof(errstr));
    assert_non_null(r);
    return r;
}

static void test_round_trip(void **state)
{
    (void)state;
    pw_keyring_t *r = ring(KEY_A "\n");
    pw_secret_t *token = pw_secret_new("THAAtoken-123", 13);
    char *sealed = pw_crypto_seal(r, token, "acct-1\naccess_token");
    assert_non_null(strstr(sealed, "A:"));
    assert_null(strstr(sealed, "THAAtoken"));
    pw_secret_t *opened = NULL;
    char errstr[256];
    assert_int_equal(
        pw_crypto_open(r, sealed, "acct-1\naccess_token", &opened, errstr, sizeof(errstr)), 0);
    assert_true(pw_secret_equal(token, opened));
    pw_secret_destroy(opened);
    pw_secret_destroy(token);
    free(sealed);
    pw_keyring_destroy(r);
}

static void test_each_seal_uses_a_fresh_nonce(void **state)
{
    (void)state;
    pw_keyring_t *r = ring(KEY_A);
    pw_secret_t *token = pw_secret_new("same", 4);
    char *one = pw_crypto_seal(r, token, "ctx");
    char *two = pw_crypto_seal(r, token, "ctx");
    assert_string_not_equal(one, two);
    free(one);
    free(two);
    pw_secret_destroy(token);
    pw_keyring_destroy(r);
}

static void test_tampering_is_detected(void **state)
{
    (void)state;
    pw_keyring_t *r = ring(KEY_A);
    pw_secret_t *token = pw_secret_new("THAAtoken", 9);
    char *sealed = pw_crypto_seal(r, token, "ctx");
    char errstr[256];
    pw_secret_t *opened = NULL;
    /* Flip one character in each position of the base64 body in turn; the
     * last quantum is left out, where a flip may touch only padding bits. */
    for (size_t i = 2; i + 4 < strlen(sealed); i++) {
        char *copy = strdup(sealed);
        copy[i] = copy[i] == 'A' ? 'B' : 'A';
        assert_int_equal(pw_crypto_open(r, copy, "ctx", &opened, errstr, sizeof(errstr)), -1);
        free(copy);
    }
    assert_int_equal(pw_crypto_open(r, "A:", "ctx", &opened, errstr, sizeof(errstr)), -1);
    assert_int_equal(pw_crypto_open(r, "garbage", "ctx", &opened, errstr, sizeof(errstr)), -1);
    assert_int_equal(pw_crypto_open(r, "A:!!!!", "ctx", &opened, errstr, sizeof(errstr)), -1);
    free(sealed);
    pw_secret_destroy(token);
    pw_keyring_destroy(r);
}

static void test_record_copied_to_another_account_fails(void **state)
{
    (void)state;
    pw_keyring_t *r = ring(KEY_A);
    pw_secret_t *token = pw_secret_new("THAAtoken", 9);
    char *sealed = pw_crypto_seal(r, token, "acct-1\naccess_token");
    char errstr[256];
    pw_secret_t *opened = NULL;
    assert_int_equal(
        pw_crypto_open(r, sealed, "acct-2\naccess_token", &opened, errstr, sizeof(errstr)), -1);
    assert_non_null(strstr(errstr, "wrong account"));
    assert_int_equal(
        pw_crypto_open(r, sealed, "acct-1\nrefresh_token", &opened, errstr, sizeof(errstr)), -1);
    free(sealed);
    pw_secret_destroy(token);
    pw_keyring_destroy(r);
}

static void test_rotation_first_key_seals_every_key_opens(void **state)
{
    (void)state;
    pw_keyring_t *old_ring = ring(KEY_A);
    pw_keyring_t *new_ring = ring(KEY_B "\n" KEY_A "\n");
    pw_keyring_t *only_b = ring(KEY_B);
    pw_secret_t *token = pw_secret_new("THAAtoken", 9);
    char *under_a = pw_crypto_seal(old_ring, token, "ctx");
    char *under_b = pw_crypto_seal(new_ring, token, "ctx");
    assert_int_equal(strncmp(under_b, "B:", 2), 0);
    assert_string_equal(pw_keyring_primary_id(new_ring), "B");

    char errstr[256];
    pw_secret_t *opened = NULL;
    assert_int_equal(pw_crypto_open(new_ring, under_a, "ctx", &opened, errstr, sizeof(errstr)), 0);
    assert_true(pw_secret_equal(token, opened));
    pw_secret_destroy(opened);
    assert_int_equal(pw_crypto_open(only_b, under_a, "ctx", &opened, errstr, sizeof(errstr)), -1);
    assert_non_null(strstr(errstr, "not in the key ring"));

    free(under_a);
    free(under_b);
    pw_secret_destroy(token);
    pw_keyring_destroy(old_ring);
    pw_keyring_destroy(new_ring);
    pw_keyring_destroy(only_b);
}

static void test_sealed_key_id_is_read_without_opening(void **state)
{
    (void)state;
    pw_keyring_t *r = ring(KEY_B "\n" KEY_A "\n");
    assert_true(pw_keyring_has(r, "A"));
    assert_true(pw_keyring_has(r, "B"));
    assert_false(pw_keyring_has(r, "C"));
    pw_secret_t *token = pw_secret_new("THAAtoken", 9);
    char *sealed = pw_crypto_seal(r, token, "ctx");
    char id[PW_CRYPTO_KEY_ID_MAX + 1];
    assert_int_equal(pw_crypto_sealed_key_id(sealed, id, sizeof(id)), 0);
    assert_string_equal(id, "B");
    /* A key the ring does not hold is still named. */
    assert_int_equal(pw_crypto_sealed_key_id("old-key:AAAA", id, sizeof(id)), 0);
    assert_string_equal(id, "old-key");
    assert_int_equal(pw_crypto_sealed_key_id("no colon", id, sizeof(id)), -1);
    assert_string_equal(id, "");
    assert_int_equal(pw_crypto_sealed_key_id(":AAAA", id, sizeof(id)), -1);
    assert_int_equal(pw_crypto_sealed_key_id(NULL, id, sizeof(id)), -1);
    char small[3];
    assert_int_equal(pw_crypto_sealed_key_id("abc:AAAA", small, sizeof(small)), -1);
    char long_id[PW_CRYPTO_KEY_ID_MAX + 8];
    memset(long_id, 'k', PW_CRYPTO_KEY_ID_MAX + 1);
    strcpy(long_id + PW_CRYPTO_KEY_ID_MAX + 1, ":AA");
    assert_int_equal(pw_crypto_sealed_key_id(long_id, id, sizeof(id)), -1);
    free(sealed);
    pw_secret_destroy(token);
    pw_keyring_destroy(r);
}

static void test_bad_key_rings_are_clear_errors(void **state)
{
    (void)state;
    const struct {
        const char *text, *expect;
    } cases[] = {
        {"", "no keys"},
        {"# only a comment\n\n", "no keys"},
        {"nocolon", "expected KEY_ID:BASE64"},
        {":MDEy", "expected KEY_ID:BASE64"},
        {"A:not base64!", "not valid base64"},
        {"A:MDEyMzQ1Njc4OWFiY2RlZg==", "is 16 bytes, AES-256 needs 32"},
        {KEY_A "\n" KEY_A, "appears twice"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char errstr[256] = "";
        assert_null(pw_keyring_parse(cases[i].text, "keys.txt", errstr, sizeof(errstr)));
        assert_non_null(strstr(errstr, cases[i].expect));
        assert_null(strstr(errstr, "MDEyMzQ1")); /* never key material */
    }
    char errstr[256];
    assert_null(pw_keyring_load("/nonexistent/keys", errstr, sizeof(errstr)));
    assert_non_null(strstr(errstr, "TOKEN_KEYS_FILE"));
}

static void test_key_ring_tolerates_blank_lines_and_crlf(void **state)
{
    (void)state;
    pw_keyring_t *r = ring("\n# keys\n" KEY_B "\r\n\n  " KEY_A "  \n");
    assert_string_equal(pw_keyring_primary_id(r), "B");
    pw_keyring_destroy(r);
}

static void test_key_file_others_can_read_is_refused(void **state)
{
    (void)state;
    char path[] = "/tmp/pw-test-keys-XXXXXX"; /* mkstemp makes it 0600 */
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, KEY_A "\n", strlen(KEY_A) + 1), (ssize_t)strlen(KEY_A) + 1);
    char errstr[512];
    const mode_t good[] = {0600, 0400, 0440, 0640}, bad[] = {0644, 0604, 0620, 0666};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(fchmod(fd, good[i]), 0);
        pw_keyring_t *r = pw_keyring_load(path, errstr, sizeof(errstr));
        assert_non_null(r);
        pw_keyring_destroy(r);
        assert_int_equal(fchmod(fd, bad[i]), 0);
        assert_null(pw_keyring_load(path, errstr, sizeof(errstr)));
        assert_non_null(strstr(errstr, path));
        assert_non_null(strstr(errstr, "chmod 600"));
    }
    close(fd);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_each_seal_uses_a_fresh_nonce),
        cmocka_unit_test(test_tampering_is_detected),
        cmocka_unit_test(test_record_copied_to_another_account_fails),
        cmocka_unit_test(test_rotation_first_key_seals_every_key_opens),
        cmocka_unit_test(test_sealed_key_id_is_read_without_opening),
        cmocka_unit_test(test_bad_key_rings_are_clear_errors),
        cmocka_unit_test(test_key_ring_tolerates_blank_lines_and_crlf),
        cmocka_unit_test(test_key_file_others_can_read_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
