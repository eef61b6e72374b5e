/* Sweep: the background duties of every worker, on a thread of its own.
 *
 * DESIGN: every TOKEN_SWEEP_INTERVAL_S (with ±25% jitter and a random first
 * delay, so a fleet does not hit Redis in lockstep) a worker
 *  1. reads the expiry index (pw:token_expiry) for tokens expiring within
 *     TOKEN_REFRESH_AHEAD_S and refreshes those that are due, under the same
 *     fleet-wide lock as the publish path, so idle accounts stay connected;
 *     a token that cannot be refreshed yet, or whose refresh failed, and that
 *     expires within a day raises one token_expiring alert;
 *  2. replays the parked posts of accounts that are active again, so a lost
 *     token_updated event delays them but never strands them.
 * Every worker sweeps everything; the locks make the work happen once. */
#ifndef PW_SWEEP_H
#define PW_SWEEP_H

#include "context.h"

typedef struct pw_sweep_s pw_sweep_t;

/** @brief Starts the sweep thread over ctx (borrowed). */
pw_sweep_t *pw_sweep_new(pw_ctx_t *ctx);
/** @brief Stops (after the current pass gives up) and joins the thread. */
void pw_sweep_destroy(pw_sweep_t *sweep);

#endif
