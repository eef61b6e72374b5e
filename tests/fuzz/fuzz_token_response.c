/* Fuzz target: the token endpoints' answers (common/token_refresh.c), of
 * GET /refresh_access_token ("threads") and of the OAuth2 token endpoint.
 *
 * Input: byte 0 picks the method (even: threads, odd: oauth2), byte 1 the
 * HTTP status (0: no response, the rest being the transport error), the rest
 * is the body. Every body goes through pw_token_refresh_parse(), as a 200's
 * does; a failure's body also through the method's classifier, then the
 * caller's redaction of the access token, the refresh token and the client
 * secret.
 * Invariants: a parsed answer has a non-empty access token, the whole of it,
 * a refresh token that is absent or non-empty, and an expires_in > 0 that
 * makes a later expiry from now (as pw_refresh_call() computes it); a failed
 * parse hands out nothing; a classified failure meets check_api_error.h,
 * and invalid_grant is terminal. */
#include <cjson/cJSON.h>

#include "check_api_error.h"
#include "fuzz.h"
#include "token_refresh.h"

#define PW_FUZZ_REFRESH_TOKEN "fuzzRefreshToken0123456789AB"
#define PW_FUZZ_CLIENT_SECRET "fuzzClientSecret" /* shorter than the mark */

static void pw_fuzz_parse(const char *body)
{
    pw_secret_t *access = (pw_secret_t *)&access, *refresh = (pw_secret_t *)&refresh;
    long expires_in = -12345;
    if (pw_token_refresh_parse(body, &access, &refresh, &expires_in) == -1) {
        PW_FUZZ_CHECK(access == NULL && refresh == NULL && expires_in == -12345);
        return;
    }
    PW_FUZZ_CHECK(access && pw_secret_len(access) > 0);
    PW_FUZZ_CHECK(strlen(pw_secret_reveal(access)) == pw_secret_len(access));
    PW_FUZZ_CHECK(!refresh || pw_secret_len(refresh) > 0);
    PW_FUZZ_CHECK(expires_in > 0);
    /* What pw_refresh_call() does with it. */
    int64_t issued_at = pw_now_ms() / 1000;
    int64_t expires_at = issued_at + expires_in;
    PW_FUZZ_CHECK(expires_at > issued_at);
    pw_secret_destroy(access);
    pw_secret_destroy(refresh);
}

/* Whether body is an RFC 6749 §5.2 invalid_grant answer. */
static int pw_fuzz_invalid_grant(const char *body)
{
    cJSON *root = cJSON_Parse(body);
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(root, "error");
    int yes = cJSON_IsString(code) && strcmp(code->valuestring, "invalid_grant") == 0;
    cJSON_Delete(root);
    return yes;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const long statuses[] = {200, 200, 200, 200, 400, 401, 403, 404,
                                    429, 500, 502, 503, 0,   302, 201, 204};
    if (size < 2)
        return 0;
    int oauth2 = data[0] & 1;
    long status = statuses[data[1] % PW_ARRAY_SIZE(statuses)];
    char *body = pw_fuzz_cstr(data + 2, size - 2);
    pw_fuzz_parse(body);
    if (status != 200) {
        pw_api_error_t err;
        memset(&err, 0x55, sizeof(err));
        /* http.c always names a transport failure (curl_easy_strerror()). */
        const char *text = status ? body : NULL, *transport = status || !body[0] ? NULL : body;
        if (oauth2) {
            pw_api_error_classify_oauth2("POST {OAUTH2_TOKEN_URL}", status, text, data[0] & 2,
                                         transport, &err);
            pw_fuzz_check_api_error(&err, "POST {OAUTH2_TOKEN_URL}", status, pw_fuzz_utf8(body));
            if (status && pw_fuzz_invalid_grant(body))
                PW_FUZZ_CHECK(err.cls == PW_EC_AUTH && err.auth == PW_AUTH_REVOKED);
        } else {
            pw_api_error_classify(PW_EP_REFRESH, status, text, -1, transport, &err);
            pw_fuzz_check_api_error(&err, PW_EP_REFRESH, status, pw_fuzz_utf8(body));
        }
        pw_fuzz_check_redacted(&err, PW_FUZZ_TOKEN);
        pw_fuzz_check_redacted(&err, PW_FUZZ_REFRESH_TOKEN);
        pw_fuzz_check_redacted(&err, PW_FUZZ_CLIENT_SECRET);
    }
    free(body);
    return 0;
}
