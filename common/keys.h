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
 *   pw:token_expiry         zset   account -> token expiry (unix s)
 *   pw:parked_accounts      set    accounts with parked posts
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
/** @brief The readiness probe's key of one worker. */
pw_key_t pw_key_probe(const char *worker_id);
/* subject is one of the worker's own fixed names, never an id. */
pw_key_t pw_key_fleet_alert(const char *subject);

#endif
