/* Unit tests of request validation, driven by schemas/examples (the same
 * files the black-box tests read), plus Threads' text counting rules. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "request.h"

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* Runs check on every file of schemas/examples/publish.request.v1/<dir>. */
static int for_each_example(const char *dir,
                            void (*check)(const char *name, const char *data, size_t len))
{
    const char *root = getenv("PW_SCHEMAS_DIR");
    assert_non_null(root);
    char path[1024];
    snprintf(path, sizeof(path), "%s/examples/publish.request.v1/%s", root, dir);
    DIR *d = opendir(path);
    assert_non_null(d);
    int count = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char file[1400];
        snprintf(file, sizeof(file), "%s/%s", path, de->d_name);
        size_t len;
        char *data = read_file(file, &len);
        check(de->d_name, data, len);
        free(data);
        count++;
    }
    closedir(d);
    return count;
}

static void check_valid(const char *name, const char *data, size_t len)
{
    pw_request_t *req;
    const char *cls;
    char errstr[512];
    pw_req_status_t st = pw_request_parse(data, len, &req, &cls, errstr, sizeof(errstr));
    if (st != PW_REQ_VALID)
        fail_msg("%s: expected valid, got %d: %s", name, st, errstr);
    pw_request_destroy(req);
}

static void check_invalid(const char *name, const char *data, size_t len)
{
    pw_request_t *req;
    const char *cls;
    char errstr[512];
    pw_req_status_t st = pw_request_parse(data, len, &req, &cls, errstr, sizeof(errstr));
    if (st != PW_REQ_INVALID)
        fail_msg("%s: expected invalid_request, got %d", name, st);
    assert_non_null(req); /* answerable: the ids are there */
    assert_true(req->event_id[0] && req->post_id[0] && req->account_id[0]);
    assert_true(errstr[0]);
    pw_request_destroy(req);
}

static void check_dead_letter(const char *name, const char *data, size_t len)
{
    pw_request_t *req;
    const char *cls;
    char errstr[512];
    pw_req_status_t st = pw_request_parse(data, len, &req, &cls, errstr, sizeof(errstr));
    if (st != PW_REQ_DEAD_LETTER)
        fail_msg("%s: expected a dead letter, got %d", name, st);
    assert_null(req);
    /* The file name says the class: CLASS--NAME.EXT */
    size_t cls_len = (size_t)(strstr(name, "--") - name);
    if (strlen(cls) != cls_len || strncmp(cls, name, cls_len) != 0)
        fail_msg("%s: got class %s", name, cls);
}

static void test_valid_examples_are_valid(void **state)
{
    (void)state;
    assert_true(for_each_example("valid", check_valid) >= 10);
}

static void test_invalid_examples_get_invalid_request(void **state)
{
    (void)state;
    assert_true(for_each_example("invalid_request", check_invalid) >= 15);
}

static void test_unanswerable_examples_are_dead_letters_of_their_class(void **state)
{
    (void)state;
    assert_true(for_each_example("dead_letter", check_dead_letter) >= 10);
}

static void test_text_length_counts_emoji_as_bytes(void **state)
{
    (void)state;
    assert_int_equal(pw_request_text_length("hello"), 5);
    assert_int_equal(pw_request_text_length("h\xc3\xa9llo"), 5);             /* é: one */
    assert_int_equal(pw_request_text_length("\xf0\x9f\x98\x80"), 4);         /* 😀: four */
    assert_int_equal(pw_request_text_length("\xe2\x9d\xa4\xef\xb8\x8f"), 6); /* ❤️ */
    assert_int_equal(pw_request_text_length("\xe6\x97\xa5\xe6\x9c\xac"), 2); /* 日本 */
}

static void test_links_count_text_and_attachment(void **state)
{
    (void)state;
    assert_int_equal(pw_request_link_count("a https://x.io b http://y.io", NULL), 2);
    assert_int_equal(pw_request_link_count("see https://x.io", "https://x.io"), 1);
    assert_int_equal(pw_request_link_count("see https://x.io", "https://z.io"), 2);
    assert_int_equal(pw_request_link_count(NULL, "https://z.io"), 1);
}

static void test_utf8_validation(void **state)
{
    (void)state;
    assert_true(pw_utf8_valid((const unsigned char *)"ok \xc3\xa9", 5));
    assert_false(pw_utf8_valid((const unsigned char *)"\xff", 1));
    assert_false(pw_utf8_valid((const unsigned char *)"\xc0\xaf", 2));     /* overlong */
    assert_false(pw_utf8_valid((const unsigned char *)"\xed\xa0\x80", 3)); /* surrogate */
    assert_false(pw_utf8_valid((const unsigned char *)"\xe2\x82", 2));     /* truncated */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_examples_are_valid),
        cmocka_unit_test(test_invalid_examples_get_invalid_request),
        cmocka_unit_test(test_unanswerable_examples_are_dead_letters_of_their_class),
        cmocka_unit_test(test_text_length_counts_emoji_as_bytes),
        cmocka_unit_test(test_links_count_text_and_attachment),
        cmocka_unit_test(test_utf8_validation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
