/* Keys: every Redis key the worker reads or writes, built in one place.
 *
 * DESIGN: an account's keys carry the account id in a hash tag
 * (pw:{ACCT}:...), so they live in one Redis Cluster slot and one Lua script
 * may touch them together; the fleet-wide keys have no tag and are only
 * ever used alone or with keys that are not cluster-routed together (the
 * scripts that name them run on a single-node Redis; see the README).
 *   pw:{ACCT}:token         hash   the sealed token record (token_store.h)
 *   pw:{ACCT}:fence         string fencing numbers for token writes
 *   pw:{ACCT}:account       hash   status, reason, at_ms
 *   pw:{ACCT}:parked        list   parked request values, oldest first
 *   pw:{ACCT}:parked_ids    set    SHA-1 of each parked value (parked once)
 *   pw:{ACCT}:replay_tries  string failed replays of the parked head
 *   pw:{ACCT}:refresh_lock  string refresh lock owner (token_refresh.h)
 *   pw:{ACCT}:replay_lock   string replay lock owner
 *   pw:{ACCT}:post:{POST}   hash   the post's record (post_store.h)
 *   pw:{ACCT}:alert:{KIND}  string alert occurrences in the window
 *   pw:{ACCT}:authfail      string auth failures in the window
 *   pw:{ACCT}:verify        hash   last verification: at_ms, outcome,
 *                                  fence (of the token checked), message
 *   pw:{ACCT}:published     zset   post id -> publication time (ms) within
 *                                  the publishing quota's window
 *   pw:{ACCT}:quota         hash   the API's quota reading: usage, total,
 *                                  duration_s, at_ms
 *   pw:{ACCT}:quota_hold    string set while the quota is used up; expires
 *                                  when the window frees (PX)
 *   pw:token_expiry         zset   account -> token expiry (unix s)
 *   pw:parked_accounts      set    accounts with parked posts
 *   pw:verify_due           zset   account -> when its token is next
 *                                  verified (unix s), claimed by one worker
 *   pw:verify_rate:SECOND   string verifications started in that second,
 *                                  fleet-wide (the API-call budget), 5 s
 *   pw:census               hash   the fleet's account census for /metrics
 *                                  and the sweeps' last successes
 *   pw:census_lock          string the worker taking the census now
 *   pw:alert_pending        set    marked accounts whose alert is not known
 *                                  to be in Kafka yet (the sweep repairs)
 *   pw:probe:WORKER_ID      string readiness write (redis_health.h), 10 s
 *   pw:fleet_alert:SUBJECT  string occurrences of a fleet-wide alert in the
 *                                  window (SUBJECT: a fixed name, oauth2_client)
 * A key is never truncated: ids are bounded by validation (128 characters,
 * so at most 512 bytes of UTF-8), and a part longer than that is replaced by
 * its SHA-256 rather than cut, so two ids can never share a key. */
#ifndef PW_KEYS_H
#define PW_KEYS_H

/* Large enough for every key built from ids of up to PW_KEY_PART_MAX bytes. */
#define PW_KEY_MAX 1280
/* A longer id part is hashed (sha256:HEX) instead of copied. */
#define PW_KEY_PART_MAX 512

/* A key by value: no buffer sizes to get wrong at the call sites. */
typedef struct pw_key_s {
    char s[PW_KEY_MAX];
} pw_key_t;

#define PW_KEY_TOKEN_EXPIRY "pw:token_expiry"
#define PW_KEY_PARKED_ACCOUNTS "pw:parked_accounts"
#define PW_KEY_ALERT_PENDING "pw:alert_pending"
#define PW_KEY_VERIFY_DUE "pw:verify_due"
#define PW_KEY_CENSUS "pw:census"
#define PW_KEY_CENSUS_LOCK "pw:census_lock"

pw_key_t pw_key_token(const char *account_id);
pw_key_t pw_key_fence(const char *account_id);
pw_key_t pw_key_account(const char *account_id);
pw_key_t pw_key_parked(const char *account_id);
pw_key_t pw_key_parked_ids(const char *account_id);
pw_key_t pw_key_replay_tries(const char *account_id);
pw_key_t pw_key_refresh_lock(const char *account_id);
pw_key_t pw_key_replay_lock(const char *account_id);
pw_key_t pw_key_post(const char *account_id, const char *post_id);
pw_key_t pw_key_alert(const char *account_id, const char *kind);
pw_key_t pw_key_authfail(const char *account_id);
pw_key_t pw_key_verify(const char *account_id);
pw_key_t pw_key_published(const char *account_id);
pw_key_t pw_key_quota(const char *account_id);
pw_key_t pw_key_quota_hold(const char *account_id);
/** @brief The fleet's verification budget counter of one second. */
pw_key_t pw_key_verify_rate(long long unix_s);
/** @brief The readiness probe's key of one worker. */
pw_key_t pw_key_probe(const char *worker_id);
/* subject is one of the worker's own fixed names, never an id. */
pw_key_t pw_key_fleet_alert(const char *subject);

#endif
