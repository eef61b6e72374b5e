/* Token store: accounts' Threads tokens in Redis, sealed at rest.
 *
 * DESIGN: every key of an account carries the account in a hash tag, so an
 * account's keys live in one Redis Cluster slot and a Lua script may touch
 * them together:
 *   pw:{ACCT}:token    hash: user_id, refresh_method, scopes, issued_at,
 *                      expires_at, updated_at_ms, refreshed_at_ms (set by a
 *                      refresh), fence, access_token, refresh_token (the
 *                      last two sealed, see crypto.h)
 *   pw:{ACCT}:fence    counter handing out fencing numbers
 *   pw:{ACCT}:account  hash: status (active | reconnect_required), reason, at
 *   pw:token_expiry    sorted set: account -> expires_at, for the sweep
 * A write carries a fencing number and applies only if it is newer than the
 * stored one: a writer that lost its lock cannot overwrite a newer token. */
#ifndef PW_TOKEN_STORE_H
#define PW_TOKEN_STORE_H

#include <stdint.h>

#include "crypto.h"
#include "pw.h"
#include "redis.h"
#include "secret.h"

typedef enum { PW_REFRESH_THREADS = 0, PW_REFRESH_OAUTH2 } pw_refresh_method_t;

/* PW_TS_UNREADABLE: the record is there but cannot be opened (malformed, or
 * sealed with a key not in the ring): retrying will not help, a token put will. */
typedef enum {
    PW_TS_OK = 0,
    PW_TS_NOT_FOUND,
    PW_TS_UNREADABLE,
    PW_TS_STALE,
    PW_TS_ERROR
} pw_ts_status_t;

/* The latest time a record may hold (9999-12-31T23:59:59Z, unix seconds):
 * a later or negative one makes it unreadable, so no caller's arithmetic
 * on token times can overflow. */
#define PW_TIME_MAX_S INT64_C(253402300799)

typedef struct pw_token_s {
    char *account_id;
    char *user_id;
    pw_refresh_method_t refresh_method;
    char *scopes;       /* comma-separated; NULL: not given */
    int64_t issued_at;  /* unix seconds */
    int64_t expires_at; /* unix seconds */
    int64_t updated_at_ms;
    int64_t fence;
    char *key_id; /* key that sealed the access token (read side only) */
    pw_secret_t *access_token;
    pw_secret_t *refresh_token; /* NULL: none */
} pw_token_t;

typedef struct pw_token_store_s pw_token_store_t;

/** @brief A store over redis and ring, both borrowed: they must outlive it. */
pw_token_store_t *pw_token_store_new(pw_redis_t *redis, const pw_keyring_t *ring);
void pw_token_store_destroy(pw_token_store_t *store);

/** @brief Stores token as the account's token, replacing any other, with a new
 *  fencing number (so it wins over refreshes started before it), marks the
 *  account active and indexes its expiry. token->access_token must be
 *  non-empty. *fence (if not NULL) receives the number used.
 *  @returns PW_TS_OK or PW_TS_ERROR with errstr. */
pw_ts_status_t pw_token_store_put(pw_token_store_t *store, const pw_token_t *token, int64_t *fence,
                                  char *errstr, size_t errstr_size) PW_MUSTCHECK;

/** @brief Writes token if fence is newer than the stored fencing number.
 *  @returns PW_TS_OK, PW_TS_STALE (a newer write won; nothing changed) or
 *  PW_TS_ERROR. */
pw_ts_status_t pw_token_store_write_fenced(pw_token_store_t *store, const pw_token_t *token,
                                           int64_t fence, char *errstr,
                                           size_t errstr_size) PW_MUSTCHECK;

/** @brief Records a verification of the token with fencing number fence
 *  (outcome NULL: none made, e.g. token put --no-verify) and when the
 *  token is to be verified next (due_s, unix s) in pw:verify_due; nothing
 *  when the stored token is no longer that one (replaced or deleted). */
pw_ts_status_t pw_token_store_note_verification(pw_token_store_t *store, const char *account_id,
                                                int64_t fence, const char *outcome,
                                                const char *message, int64_t at_ms, int64_t due_s,
                                                char *errstr, size_t errstr_size) PW_MUSTCHECK;

/** @brief Reads and opens the account's token; *out is the caller's to free
 *  with pw_token_destroy().
 *  @returns PW_TS_OK, PW_TS_NOT_FOUND, PW_TS_UNREADABLE or PW_TS_ERROR
 *  (Redis failed) with errstr. */
pw_ts_status_t pw_token_store_get(pw_token_store_t *store, const char *account_id, pw_token_t **out,
                                  char *errstr, size_t errstr_size) PW_MUSTCHECK;

/** @brief Like pw_token_store_get() from an HGETALL reply already read
 *  (for scripts that read the token together with other keys). */
pw_ts_status_t pw_token_store_parse(pw_token_store_t *store, const char *account_id,
                                    const redisReply *hash, pw_token_t **out, char *errstr,
                                    size_t errstr_size) PW_MUSTCHECK;

/** @brief The fencing number of a token record read with HGETALL, whether
 *  its secrets can be opened or not (0: no record). */
int64_t pw_token_store_fence_of(const redisReply *hash);
/** @brief The fencing number of the account's stored record (0: none). */
pw_ts_status_t pw_token_store_get_fence(pw_token_store_t *store, const char *account_id,
                                        int64_t *fence, char *errstr,
                                        size_t errstr_size) PW_MUSTCHECK;

/** @brief The account's status ("active", "reconnect_required"), or NULL when
 *  unknown; caller frees. */
pw_ts_status_t pw_token_store_get_status(pw_token_store_t *store, const char *account_id,
                                         char **status, char *errstr,
                                         size_t errstr_size) PW_MUSTCHECK;

/** @brief The associated data that binds a sealed field ("access_token",
 *  "refresh_token") to its account (crypto.h's context); caller frees. For
 *  commands that re-seal a record's values without rewriting the record. */
char *pw_token_store_context(const char *account_id, const char *field);

void pw_token_destroy(pw_token_t *token);
const char *pw_refresh_method_name(pw_refresh_method_t method);
int pw_refresh_method_parse(const char *name, pw_refresh_method_t *method);

#endif
