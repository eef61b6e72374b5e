/* Events: the JSON the worker produces (contract: account.event.v1, and with
 * the pipeline publish.result.v1 and publish.alert.v1). Builders return new
 * strings the caller frees. No builder takes a secret. */
#ifndef PW_EVENTS_H
#define PW_EVENTS_H

#include <stdint.h>

/** @brief account.event.v1 of type ("token_updated", "reconnect_required"). */
char *pw_event_account_new(const char *type, const char *account_id, int64_t at_ms);

#endif
