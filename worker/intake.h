/* Intake: where every consumed message's journey starts, on a worker fiber.
 *
 *   account.events ──────────> accounts.h (token_updated: replay)
 *   publish.requests ─parse─┬─ unidentifiable ─> dead letter (output.h)
 *                           ├─ invalid ────────> failed / invalid_request
 *                           └─ valid ──> publish step (publish.h) ─┬─> answered
 *                                                                  └─ auth failure ─> park
 * (accounts.h) The pool (pool.h) runs pw_intake_ops.run for each job; the job is settled, and its
 * offset committable, once Kafka has every message it produced. */
#ifndef PW_INTAKE_H
#define PW_INTAKE_H

#include "pool.h"

/* The pool's callbacks; their opaque is the context (context.h). Each fiber
 * keeps an HTTP client of its own. */
extern const pw_pool_ops_t pw_intake_ops;

#endif
