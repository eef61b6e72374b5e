/* Fuzz targets: invariants of a classified platform error. */
#include "check_api_error.h"

#include "fuzz.h"
#include "secret.h"

/* The length of the longest prefix of secret that text ends with. */
static size_t pw_fuzz_tail_prefix(const char *text, const char *secret)
{
    size_t len = strlen(text), best = 0;
    for (size_t k = 1; k <= len && secret[k - 1]; k++)
        if (memcmp(text + len - k, secret, k) == 0)
            best = k;
    return best;
}

void pw_fuzz_check_api_error(const pw_api_error_t *err, const char *endpoint, long status,
                             int text_utf8)
{
    PW_FUZZ_CHECK(err->cls <= PW_EC_MEDIA && err->cls != PW_EC_NONE);
    PW_FUZZ_CHECK(pw_error_class_name(err->cls) != NULL);
    PW_FUZZ_CHECK(err->auth <= PW_AUTH_INVALID_TOKEN && pw_auth_kind_name(err->auth) != NULL);
    switch (err->cls) {
    case PW_EC_AUTH:
        PW_FUZZ_CHECK(err->auth != PW_AUTH_NONE && err->auth != PW_AUTH_MISSING_SCOPE);
        break;
    case PW_EC_PERMISSION:
        PW_FUZZ_CHECK(err->auth == PW_AUTH_MISSING_SCOPE);
        break;
    default:
        PW_FUZZ_CHECK(err->auth == PW_AUTH_NONE);
    }
    PW_FUZZ_CHECK(!err->not_ready || err->cls == PW_EC_MEDIA);
    PW_FUZZ_CHECK(err->retriable == (err->cls == PW_EC_RATE_LIMITED ||
                                     err->cls == PW_EC_TRANSIENT || err->not_ready));
    PW_FUZZ_CHECK(err->endpoint == endpoint || strcmp(err->endpoint, endpoint) == 0);
    PW_FUZZ_CHECK(err->http_status == (status > 0 ? status : -1));
    PW_FUZZ_CHECK(pw_fuzz_terminated(err->message, sizeof(err->message)) && err->message[0]);
    PW_FUZZ_CHECK(pw_fuzz_terminated(err->fbtrace_id, sizeof(err->fbtrace_id)));
    if (text_utf8) {
        PW_FUZZ_CHECK(pw_fuzz_utf8(err->message));
        PW_FUZZ_CHECK(pw_fuzz_utf8(err->fbtrace_id));
    }
}

void pw_fuzz_check_redacted(pw_api_error_t *err, const char *secret)
{
    int utf8 = pw_fuzz_utf8(err->message);
    pw_secret_t *s = pw_secret_new(secret, strlen(secret));
    pw_secret_redact(s, err->message, sizeof(err->message));
    pw_secret_destroy(s);
    PW_FUZZ_CHECK(pw_fuzz_terminated(err->message, sizeof(err->message)));
    PW_FUZZ_CHECK(!utf8 || pw_fuzz_utf8(err->message));
    PW_FUZZ_CHECK(strstr(err->message, secret) == NULL);
    /* Cut short by its buffer, a message must not end in the secret's first
     * part. (A secret shorter than the mark that replaces it makes the text
     * longer, which may bring any part of it to the end: not checked.) */
    if (strlen(secret) >= PW_FUZZ_MARK_LEN && strlen(err->message) == sizeof(err->message) - 1)
        PW_FUZZ_CHECK(pw_fuzz_tail_prefix(err->message, secret) < 8);
}
