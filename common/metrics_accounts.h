/* Account-state metrics: the fleet's census of accounts (taken from Redis by
 * one worker at a time, read by every worker), verification outcomes and
 * posts that waited for the publishing quota. Rendered into /metrics by
 * metrics.c. Every worker exports the same census values: aggregate them
 * with max(), not sum(). */
#ifndef PW_METRICS_ACCOUNTS_H
#define PW_METRICS_ACCOUNTS_H

#include <stdbool.h>
#include <stdint.h>

#include "pw.h"
#include "token_verify.h"

#define PW_CENSUS_KEY_IDS_MAX 16

typedef enum {
    PW_CENSUS_ACTIVE = 0,
    PW_CENSUS_RECONNECT_REQUIRED,
    PW_CENSUS_QUOTA_WAIT,
    PW_CENSUS_STATES
} pw_census_state_t;

typedef struct pw_census_s {
    long accounts[PW_CENSUS_STATES];
    long parked_posts;
    struct {
        char key_id[64];
        long records;
    } keys[PW_CENSUS_KEY_IDS_MAX];
    int key_count;
    int64_t earliest_expiry_s; /* 0: no token */
    int64_t taken_ms;          /* 0: no census yet */
    int64_t sweep_ok_ms;       /* last completed refresh sweep, fleet-wide; 0: none */
    int64_t verify_ok_ms;      /* last completed verification pass, fleet-wide; 0: none */
} pw_census_t;

/** @brief The census /metrics shows from now on. @locality any thread */
void pw_metrics_set_census(const pw_census_t *census);
/** @brief "active", "reconnect_required", "quota_wait": the metric's
 *  label and the census's field. */
const char *pw_census_state_name(pw_census_state_t state);
void pw_metrics_verification(pw_verify_outcome_t outcome);
void pw_metrics_quota_wait(void);
/** @brief The account metrics in Prometheus text (caller frees). */
char *pw_metrics_accounts_text(void);

#endif
