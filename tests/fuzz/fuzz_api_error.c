/* Fuzz target: the Graph API error classifier (common/threads_api.c).
 *
 * Input: byte 0 picks the endpoint, bytes 1-2 the HTTP status (byte 1 of
 * 0xff: no response, and the rest is the transport error), the rest is the
 * response body ({"error": {"code": ..., "error_subcode": ...}}); then the
 * token the call used is redacted, as pw_threads_finish() does.
 * Invariants: those of check_api_error.h; classifying twice gives the same
 * value (no hidden state); every field is set. */
#include "check_api_error.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const *const endpoints[] = {&PW_EP_CREATE, &PW_EP_STATUS, &PW_EP_PUBLISH,
                                                   &PW_EP_REFRESH};
    if (size < 3)
        return 0;
    const char *endpoint = *endpoints[data[0] % PW_ARRAY_SIZE(endpoints)];
    int transport = data[1] == 0xff;
    long status = transport ? 0 : 100 + (long)(((unsigned)data[1] << 8 | data[2]) % 500);
    char *text = pw_fuzz_cstr(data + 3, size - 3);
    /* http.c always names a transport failure (curl_easy_strerror()). */
    const char *body = transport ? NULL : text;
    const char *transport_error = transport && text[0] ? text : NULL;

    pw_api_error_t err, again;
    memset(&err, 0x55, sizeof(err)); /* the classifier must set every field */
    pw_api_error_classify(endpoint, status, body, 1500, transport_error, &err);
    pw_fuzz_check_api_error(&err, endpoint, status, pw_fuzz_utf8(text));
    PW_FUZZ_CHECK(err.retry_after_ms == 1500);
    pw_api_error_classify(endpoint, status, body, 1500, transport_error, &again);
    PW_FUZZ_CHECK(memcmp(&err, &again, sizeof(err)) == 0);

    pw_fuzz_check_redacted(&err, PW_FUZZ_TOKEN);
    free(text);
    return 0;
}
