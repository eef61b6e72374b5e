/* What the token subcommands share: their parsed flags and the connections
 * a command opens (configuration, key ring, Redis, the token store).
 *
 * cmd_token.c parses the flags and runs put and show; cmd_token_verify.c
 * runs verify; cmd_token_list.c list; cmd_token_rekey.c rekey;
 * cmd_token_delete.c delete. */
#ifndef PW_TOKEN_CMD_H
#define PW_TOKEN_CMD_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "config.h"
#include "crypto.h"
#include "redis.h"
#include "token_store.h"

typedef struct pw_token_opts_s {
    const char *account_id;
    const char *user_id;
    const char *scopes;
    const char *token_file; /* NULL: stdin */
    const char *state;      /* token list --state; NULL: every state */
    long long expires_in;   /* -1: not given */
    long long issued_at;    /* -1: now */
    long long wait_s;       /* token delete --wait; -1: the default */
    pw_refresh_method_t method;
    bool all;       /* token verify --all */
    bool json;      /* token list --json */
    bool dry_run;   /* token rekey --dry-run */
    bool no_verify; /* token put --no-verify */
} pw_token_opts_t;

/* Everything a token command holds; released in one place. */
typedef struct pw_token_cmd_s {
    pw_config_t *conf;
    pw_keyring_t *ring;
    pw_redis_t *redis;
    pw_token_store_t *store;
} pw_token_cmd_t;

/** @brief Loads configuration (needs, and the key ring always) and opens
 *  Redis and the token store. @returns 0, or the exit code to give up with
 *  after a message. Close with pw_token_cmd_close() either way. */
int pw_token_cmd_open(pw_token_cmd_t *cmd, pw_config_need_t needs);
void pw_token_cmd_close(pw_token_cmd_t *cmd);

/* A growing list of owned strings (account ids, keys). */
typedef struct pw_strv_s {
    char **ids;
    size_t count, cap;
} pw_strv_t;

/** @brief Appends a copy of id. */
void pw_strv_add(pw_strv_t *v, const char *id);
/** @brief Frees every string and empties v. */
void pw_strv_free(pw_strv_t *v);

/** @brief Prints obj as one line of JSON on stdout. */
void pw_token_print_json(const cJSON *obj);
/** @brief Adds name: epoch_ms as an ISO 8601 UTC time, or null when
 *  epoch_ms <= 0. */
void pw_token_json_time(cJSON *obj, const char *name, int64_t epoch_ms);

/* A page of account ids found by pw_token_cmd_scan(); fn returns 0 to go
 * on, or -1 to stop the scan (which then returns -1 with fn's errstr). */
typedef int (*pw_token_scan_fn)(void *arg, char **account_ids, size_t count, char *errstr,
                                size_t errstr_size);

/** @brief Every account with a token record, by SCAN MATCH pw:{*}:token
 *  COUNT 1000 (never KEYS), a page at a time; an account may come twice
 *  (SCAN's guarantee), and one whose record appears or goes during the scan
 *  may come or not. Keys that only look like a record (an id outside
 *  [A-Za-z0-9._:-]) are skipped.
 *  @returns 0, or -1 with errstr (Redis failed, or fn stopped). */
int pw_token_cmd_scan(pw_token_cmd_t *cmd, pw_token_scan_fn fn, void *arg, char *errstr,
                      size_t errstr_size) PW_MUSTCHECK;
/** @brief Like pw_token_cmd_scan() over the members of a set (SSCAN),
 *  e.g. pw:parked_accounts. */
int pw_token_cmd_scan_set(pw_token_cmd_t *cmd, const char *set, pw_token_scan_fn fn, void *arg,
                          char *errstr, size_t errstr_size) PW_MUSTCHECK;

int pw_token_cmd_verify(const pw_token_opts_t *opts);
int pw_token_cmd_list(const pw_token_opts_t *opts);
int pw_token_cmd_rekey(const pw_token_opts_t *opts);
int pw_token_cmd_delete(const pw_token_opts_t *opts);

#endif
