/* Fuzz targets: invariants of a classified platform error, shared by the
 * targets of the Graph error classifier and of the token responses. */
#ifndef PW_FUZZ_CHECK_API_ERROR_H
#define PW_FUZZ_CHECK_API_ERROR_H

#include "threads_api.h"

/* A token the fuzzers' dictionaries know, to find it quoted in messages. */
#define PW_FUZZ_TOKEN "EAAfuzzAccessToken0123456789"
/* The length of the mark that replaces a secret ("[secret sha256:...]"). */
#define PW_FUZZ_MARK_LEN 28

/** @brief Checks err as classified for endpoint and status (0: no
 *  response): one class, an auth kind exactly for auth and permission,
 *  retriable exactly for rate limits, transient failures and a container not
 *  ready, the status as given, a terminated non-empty message that is valid
 *  UTF-8 when the text it came from (body or transport error) is. */
void pw_fuzz_check_api_error(const pw_api_error_t *err, const char *endpoint, long status,
                             int text_utf8);

/** @brief Redacts secret (NUL-terminated) from err's message as the callers
 *  do, then checks it is gone, UTF-8 left valid, and no first part of it
 *  left where the message was cut short. */
void pw_fuzz_check_redacted(pw_api_error_t *err, const char *secret);

#endif
