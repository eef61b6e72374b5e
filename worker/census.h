/* Census: the fleet's accounts counted for /metrics (metrics_accounts.h).
 *
 * DESIGN: one worker at a time (a lease, pw:census_lock) walks every token
 * record with SCAN, a batch of 500 per Lua call, counting accounts by state,
 * records by the key id that seals them and the earliest expiry, and sums
 * the parked lists; it stores the counts in pw:census. Every worker reads
 * pw:census after each sweep pass and shows it, so any replica's /metrics
 * tells the fleet's state and nothing is summed twice. The walk also puts
 * every account that has no verification scheduled (tokens stored before
 * verification existed) into pw:verify_due, spread over one interval. */
#ifndef PW_CENSUS_H
#define PW_CENSUS_H

#include "context.h"

/** @brief Takes the census if no other worker holds the lease, then shows
 *  the fleet's latest in the metrics. @locality the sweep thread */
void pw_census_run(pw_ctx_t *ctx);

/** @brief Records that a refresh sweep (field "sweep_ok_ms") or a
 *  verification pass ("verify_ok_ms") completed now. */
void pw_census_note_success(pw_ctx_t *ctx, const char *field);

#endif
