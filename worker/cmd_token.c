/* token: an operator's commands for accounts' tokens.
 *
 *   put     verify a token against the API and store it (cmd_token.c)
 *   show    one record, secrets as fingerprints (cmd_token.c)
 *   verify  check stored tokens against the API (cmd_token_verify.c)
 *   list    every account's state (cmd_token_list.c)
 *   rekey   re-seal records with the ring's first key (cmd_token_rekey.c)
 *   delete  offboard an account (cmd_token_delete.c)
 *
 * put reads the token (token_input.h), verifies it (token_verify.h: the
 * token's user must be --user-id, it must be able to publish, and scopes
 * named with --scopes must be granted) unless --no-verify, seals and stores
 * it, marks the account active and produces token_updated so that a worker
 * publishes the account's parked posts. The token is stored even when Kafka
 * is unreachable: the workers' sweep replays parked posts of active accounts
 * anyway, so the command says so and exits 1. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "env.h"
#include "events.h"
#include "kafka.h"
#include "keys.h"
#include "log.h"
#include "quota.h"
#include "token_cmd.h"
#include "token_input.h"
#include "token_verify.h"

typedef struct pw_token_subcmd_s {
    const char *name;
    const char *flags; /* the short names of the options it takes */
    const char *usage; /* after "publish-worker token " */
    const char *about;
    int (*run)(const pw_token_opts_t *opts);
} pw_token_subcmd_t;

static int pw_token_put(const pw_token_opts_t *opts);
static int pw_token_show(const pw_token_opts_t *opts);

static const pw_token_subcmd_t pw_token_subcmds[] = {
    {"put", "auei msfn",
     "put --account ID --user-id THREADS_USER_ID --expires-in SECONDS\n"
     "          [--issued-at UNIX_S] [--refresh-method threads|oauth2] [--scopes a,b]\n"
     "          [--token-file PATH] [--no-verify]",
     "Reads the access token from stdin or PATH, a line (with oauth2, then the\n"
     "refresh token); not echoed on a terminal; a leading \"Bearer \" and\n"
     "surrounding white space are removed. Verifies it against the API (the\n"
     "token's user must be --user-id, it must be able to publish, the --scopes\n"
     "must be granted; --no-verify skips this), then seals and stores it, marks\n"
     "the account active and produces token_updated, which publishes its parked\n"
     "posts. The token expires at --issued-at (default now) + --expires-in.\n"
     "Exit 2 when the token is refused (the message says why), 1 when the API or\n"
     "Kafka could not be reached.",
     pw_token_put},
    {"show", "a", "show --account ID",
     "Prints the account's token record as JSON, every secret as a fingerprint.", pw_token_show},
    {"verify", "aA", "verify (--account ID | --all)",
     "Checks stored tokens against the API with read-only calls (GET /me, the\n"
     "publishing limit, debug_token for scopes beyond publishing) as the\n"
     "record's user and scopes: ok, expired, revoked, missing_scope, wrong_user,\n"
     "unreachable, or unreadable (the key ring cannot open the record); a JSON\n"
     "line per account, a summary on stderr. Records each result for token list\n"
     "and the sweep, but marks no account: the workers' verification sweep does\n"
     "that. --all keeps to TOKEN_VERIFY_MAX_PER_S, shared with the sweeps.\n"
     "Exit 0 only when every checked token is ok; 1 otherwise (an account with\n"
     "no token, Redis failing); 2 without exactly one of --account and --all.\n"
     "Never prints a token.",
     pw_token_cmd_verify},
    {"list", "tj", "list [--state active|reconnect_required|quota_wait] [--json]",
     "Every account: state (and reason and since when), refresh method, expiry,\n"
     "last refresh, last verification and its result, parked posts and the key\n"
     "id that seals its record. A table, or with --json a JSON line each.",
     pw_token_cmd_list},
    {"rekey", "d", "rekey [--dry-run]",
     "Re-seals every token record that a key other than the ring's first sealed\n"
     "with the first key, never over a token refreshed or put meanwhile (such a\n"
     "record is read again); reports records per key id before and after as\n"
     "JSON. Safe to interrupt and run again. --dry-run changes nothing and\n"
     "reports what would change. Exit 0 when nothing is left to do or all was\n"
     "done; 1 when a record cannot be opened (named on stderr) or Redis failed.",
     pw_token_cmd_rekey},
    {"delete", "aw", "delete --account ID [--wait SECONDS]",
     "Offboards an account: takes its replay lock (waiting up to --wait seconds,\n"
     "default 30, for a worker replaying it; exit 1 if it is still held), answers\n"
     "each parked post failed (class auth) and waits until Kafka has the results,\n"
     "then removes the token and every key the worker keeps for the account\n"
     "except its fence counter, and takes it out of the sweeps' indexes. Prints\n"
     "a JSON summary; an account with nothing stored is found:false, exit 0.",
     pw_token_cmd_delete},
};

static const struct option pw_token_longopts[] = {
    {"account", required_argument, NULL, 'a'},
    {"user-id", required_argument, NULL, 'u'},
    {"expires-in", required_argument, NULL, 'e'},
    {"issued-at", required_argument, NULL, 'i'},
    {"refresh-method", required_argument, NULL, 'm'},
    {"scopes", required_argument, NULL, 's'},
    {"token-file", required_argument, NULL, 'f'},
    {"no-verify", no_argument, NULL, 'n'},
    {"all", no_argument, NULL, 'A'},
    {"state", required_argument, NULL, 't'},
    {"json", no_argument, NULL, 'j'},
    {"dry-run", no_argument, NULL, 'd'},
    {"wait", required_argument, NULL, 'w'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static void pw_token_subcmd_usage(const pw_token_subcmd_t *sub, FILE *out)
{
    fprintf(out, "Usage: publish-worker token %s\n\n%s\n", sub->usage, sub->about);
}

void pw_token_usage(FILE *out)
{
    for (size_t i = 0; i < PW_ARRAY_SIZE(pw_token_subcmds); i++)
        fprintf(out, "  publish-worker token %s\n", pw_token_subcmds[i].usage);
    fprintf(out, "Each takes --help.\n");
}

static int pw_parse_int(const char *flag, const char *value, long long min, long long max,
                        long long *out)
{
    char *end;
    errno = 0;
    long long n = strtoll(value, &end, 10);
    if (!*value || *end || errno || n < min || n > max) {
        fprintf(stderr, "publish-worker: %s: \"%s\" is not an integer from %lld to %lld\n", flag,
                value, min, max);
        return -1;
    }
    *out = n;
    return 0;
}

/* One option's value into opts; -1 after a message. */
static int pw_token_opt(int c, pw_token_opts_t *opts)
{
    switch (c) {
    case 'a':
        opts->account_id = optarg;
        return 0;
    case 'u':
        opts->user_id = optarg;
        return 0;
    case 's':
        opts->scopes = optarg;
        return 0;
    case 'f':
        opts->token_file = optarg;
        return 0;
    case 't':
        opts->state = optarg;
        return 0;
    case 'n':
        opts->no_verify = true;
        return 0;
    case 'A':
        opts->all = true;
        return 0;
    case 'j':
        opts->json = true;
        return 0;
    case 'd':
        opts->dry_run = true;
        return 0;
    /* Bounded so that issued_at + expires_in stays a valid time. */
    case 'e':
        return pw_parse_int("--expires-in", optarg, 1, PW_TIME_MAX_S / 2, &opts->expires_in);
    case 'i':
        return pw_parse_int("--issued-at", optarg, 0, PW_TIME_MAX_S / 2, &opts->issued_at);
    case 'w':
        return pw_parse_int("--wait", optarg, 0, 3600, &opts->wait_s);
    case 'm':
        if (pw_refresh_method_parse(optarg, &opts->method) == 0)
            return 0;
        fprintf(stderr, "publish-worker: --refresh-method: \"%s\" is not threads or oauth2\n",
                optarg);
        return -1;
    }
    return -1;
}

/* Parses sub's flags; returns 0, 1 for --help (usage printed), or -1 after
 * a message (exit 2). */
static int pw_token_parse(const pw_token_subcmd_t *sub, int argc, char **argv,
                          pw_token_opts_t *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->expires_in = -1;
    opts->issued_at = -1;
    opts->wait_s = -1;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", pw_token_longopts, NULL)) != -1) {
        if (c == 'h') {
            pw_token_subcmd_usage(sub, stdout);
            return 1;
        }
        if (c == '?' || c == ':' || !strchr(sub->flags, c)) {
            fprintf(stderr, "publish-worker: token %s: unknown or incomplete flag %s\n", sub->name,
                    argv[optind - 1]);
            return -1;
        }
        if (pw_token_opt(c, opts) == -1)
            return -1;
    }
    if (optind < argc) {
        fprintf(stderr, "publish-worker: token %s: unexpected argument \"%s\"\n", sub->name,
                argv[optind]);
        return -1;
    }
    if (opts->account_id && !pw_account_id_valid(opts->account_id)) {
        fprintf(stderr, "publish-worker: --account: must be 1 to 128 of [A-Za-z0-9._:-]\n");
        return -1;
    }
    return 0;
}

/* A flag the subcommand cannot do without; -1 after a message. */
static int pw_token_require(bool given, const char *flag)
{
    if (!given)
        fprintf(stderr, "publish-worker: %s: required\n", flag);
    return given ? 0 : -1;
}

int pw_cmd_token(int argc, char **argv)
{
    if (argc >= 1 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
        printf("Usage:\n");
        pw_token_usage(stdout);
        return 0;
    }
    for (size_t i = 0; argc >= 1 && i < PW_ARRAY_SIZE(pw_token_subcmds); i++) {
        const pw_token_subcmd_t *sub = &pw_token_subcmds[i];
        if (strcmp(argv[0], sub->name) != 0)
            continue;
        pw_token_opts_t opts;
        int parsed = pw_token_parse(sub, argc, argv, &opts);
        return parsed == 1 ? 0 : parsed == -1 ? 2 : sub->run(&opts);
    }
    fprintf(stderr, "publish-worker: token: expected put, show, verify, list, rekey or delete\n");
    pw_token_usage(stderr);
    return 2;
}

/* ---- what the subcommands share (token_cmd.h) ---- */

void pw_token_cmd_close(pw_token_cmd_t *cmd)
{
    pw_token_store_destroy(cmd->store);
    pw_redis_destroy(cmd->redis);
    pw_keyring_destroy(cmd->ring);
    pw_config_destroy(cmd->conf);
}

int pw_token_cmd_open(pw_token_cmd_t *cmd, pw_config_need_t needs)
{
    char errstr[1024];
    memset(cmd, 0, sizeof(*cmd));
    pw_log_set_stream(stderr); /* stdout carries the command's output */
    if (!(cmd->conf = pw_env_load_config(needs | PW_CONFIG_NEED_KEYS)))
        return 2;
    if (!(cmd->ring = pw_keyring_load(cmd->conf->token_keys_file, errstr, sizeof(errstr)))) {
        fprintf(stderr, "publish-worker: %s\n", errstr);
        return 2;
    }
    if (!(cmd->redis = pw_redis_new(cmd->conf->redis_url, 1, 5000, errstr, sizeof(errstr)))) {
        fprintf(stderr, "publish-worker: %s\n", errstr);
        return 2;
    }
    cmd->store = pw_token_store_new(cmd->redis, cmd->ring);
    return 0;
}

void pw_token_print_json(const cJSON *obj)
{
    char *text = cJSON_PrintUnformatted(obj);
    printf("%s\n", text);
    free(text);
}

void pw_token_json_time(cJSON *obj, const char *name, int64_t epoch_ms)
{
    if (epoch_ms <= 0) {
        cJSON_AddNullToObject(obj, name);
        return;
    }
    char buf[40];
    pw_format_time_ms(epoch_ms, buf, sizeof(buf));
    cJSON_AddStringToObject(obj, name, buf);
}

/* The account of a token record's key pw:{ACCT}:token, or NULL when the
 * key only looks like one (a post id may hold "}:token"). */
static char *pw_token_key_account(const redisReply *key)
{
    static const char prefix[] = "pw:{", suffix[] = "}:token";
    size_t plen = sizeof(prefix) - 1, slen = sizeof(suffix) - 1;
    if (key->type != REDIS_REPLY_STRING || key->len <= plen + slen ||
        memcmp(key->str, prefix, plen) != 0 || strcmp(key->str + key->len - slen, suffix) != 0)
        return NULL;
    char *id = pw_strndup(key->str + plen, key->len - plen - slen);
    if (!pw_account_id_valid(id)) {
        free(id);
        return NULL;
    }
    return id;
}

/* Hands one SCAN/SSCAN page's ids to fn; members: the page lists account
 * ids themselves, not record keys. */
static int pw_token_scan_page(const redisReply *items, bool members, pw_token_scan_fn fn, void *arg,
                              char *errstr, size_t errstr_size)
{
    char **ids = pw_calloc(items->elements ? items->elements : 1, sizeof(char *));
    size_t count = 0;
    for (size_t i = 0; i < items->elements; i++) {
        const redisReply *item = items->element[i];
        char *id = members ? pw_strndup(item->str, item->len) : pw_token_key_account(item);
        if (id && members && !pw_account_id_valid(id)) {
            free(id);
            id = NULL;
        }
        if (id)
            ids[count++] = id;
    }
    int rc = count ? fn(arg, ids, count, errstr, errstr_size) : 0;
    for (size_t i = 0; i < count; i++)
        free(ids[i]);
    free(ids);
    return rc;
}

/* SCAN (set NULL) or SSCAN set, page by page. */
static int pw_token_scan_do(pw_token_cmd_t *cmd, const char *set, pw_token_scan_fn fn, void *arg,
                            char *errstr, size_t errstr_size)
{
    char cursor[32] = "0";
    do {
        const char *scan[] = {"SCAN", cursor, "MATCH", "pw:{*}:token", "COUNT", "1000"};
        const char *sscan[] = {"SSCAN", set, cursor, "COUNT", "1000"};
        redisReply *reply = set ? pw_redis_command(cmd->redis, errstr, errstr_size, 5, sscan)
                                : pw_redis_command(cmd->redis, errstr, errstr_size, 6, scan);
        if (!reply)
            return -1;
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
            reply->element[0]->type != REDIS_REPLY_STRING ||
            reply->element[1]->type != REDIS_REPLY_ARRAY) {
            pw_errstr_set(errstr, errstr_size, "redis: unexpected %s reply",
                          set ? "SSCAN" : "SCAN");
            freeReplyObject(reply);
            return -1;
        }
        snprintf(cursor, sizeof(cursor), "%s", reply->element[0]->str);
        int rc = pw_token_scan_page(reply->element[1], set != NULL, fn, arg, errstr, errstr_size);
        freeReplyObject(reply);
        if (rc == -1)
            return -1;
    } while (strcmp(cursor, "0") != 0);
    return 0;
}

int pw_token_cmd_scan(pw_token_cmd_t *cmd, pw_token_scan_fn fn, void *arg, char *errstr,
                      size_t errstr_size)
{
    return pw_token_scan_do(cmd, NULL, fn, arg, errstr, errstr_size);
}

int pw_token_cmd_scan_set(pw_token_cmd_t *cmd, const char *set, pw_token_scan_fn fn, void *arg,
                          char *errstr, size_t errstr_size)
{
    return pw_token_scan_do(cmd, set, fn, arg, errstr, errstr_size);
}

/* Produces account.event.v1 token_updated and waits for its delivery. */
static int pw_token_announce(const pw_config_t *conf, const char *account_id, char *errstr,
                             size_t errstr_size)
{
    rd_kafka_t *rk = pw_kafka_producer_new(conf, NULL, NULL, errstr, errstr_size);
    if (!rk)
        return -1;
    char *event = pw_event_account_new("token_updated", account_id, pw_now_ms());
    int rc = pw_kafka_produce(rk, conf->topic_account_events, account_id, strlen(account_id), event,
                              strlen(event), NULL, NULL, errstr, errstr_size);
    free(event);
    if (rc == 0) {
        rd_kafka_resp_err_t err = rd_kafka_flush(rk, 15000);
        if (err) {
            pw_errstr_set(errstr, errstr_size, "%s not delivered: %s", conf->topic_account_events,
                          rd_kafka_err2str(err));
            rc = -1;
            rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        }
    }
    rd_kafka_destroy(rk);
    return rc;
}

/* ---- put ---- */

/* Verifies the token before it is stored. Returns 0 when it may be stored,
 * or the exit code after a message naming the problem: 2 for a token that
 * is refused, 1 when the API could not say. */
static int pw_token_put_verify(const pw_token_cmd_t *cmd, const pw_token_t *token,
                               pw_verification_t *v)
{
    pw_http_t *http = pw_http_new(cmd->conf->http_connect_timeout_ms, cmd->conf->http_timeout_ms);
    pw_token_verify(http, cmd->conf->threads_api_base_url, token->user_id, token->access_token,
                    token->scopes, v);
    pw_http_destroy(http);
    if (v->outcome == PW_VERIFY_OK)
        return 0;
    if (v->outcome == PW_VERIFY_EXPIRED && token->refresh_token) {
        /* The refresh token mends it: the worker refreshes before use, and
         * the verification sweep checks the fresh token soon. */
        fprintf(stderr,
                "publish-worker: the access token has expired; stored with its refresh token, "
                "which the worker uses before the next post (owner and scopes are checked "
                "then)\n");
        return 0;
    }
    fprintf(stderr, "publish-worker: token not stored: %s\n", v->message);
    if (v->outcome == PW_VERIFY_UNREACHABLE) {
        fprintf(stderr, "Try again, or store it unchecked with --no-verify.\n");
        return 1;
    }
    return 2;
}

/* Stores the token and announces it; returns the exit code. */
static int pw_token_put_store(pw_token_cmd_t *cmd, const pw_token_t *token,
                              const pw_verification_t *v)
{
    char errstr[1024];
    int64_t fence = 0;
    if (pw_token_store_put(cmd->store, token, &fence, errstr, sizeof(errstr)) != PW_TS_OK) {
        fprintf(stderr, "publish-worker: token not stored: %s\n", errstr);
        return 1;
    }
    /* Verified now: the sweep looks again in an interval; unverified: soon. */
    int64_t now_ms = pw_now_ms();
    bool verified = v && v->outcome == PW_VERIFY_OK;
    int64_t due = now_ms / 1000 + (verified ? cmd->conf->token_verify_interval_s : 0);
    if (pw_token_store_note_verification(
            cmd->store, token->account_id, fence, v ? pw_verify_outcome_name(v->outcome) : NULL,
            v ? v->message : NULL, now_ms, due, errstr, sizeof(errstr)) != PW_TS_OK)
        fprintf(stderr, "publish-worker: verification not recorded: %s\n", errstr);
    if (v)
        pw_quota_note(cmd->redis, token->account_id, &v->quota);
    char fp[32];
    pw_secret_fingerprint(token->access_token, fp, sizeof(fp));
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "account_id", token->account_id);
    cJSON_AddBoolToObject(out, "stored", 1);
    cJSON_AddBoolToObject(out, "verified", verified);
    cJSON_AddStringToObject(out, "access_token", fp);
    cJSON_AddNumberToObject(out, "fence", (double)fence);
    int exit_code = 0;
    if (pw_token_announce(cmd->conf, token->account_id, errstr, sizeof(errstr)) == -1) {
        fprintf(stderr,
                "publish-worker: token stored, but the token_updated event was not "
                "produced: %s\nParked posts will be published by the workers' next sweep.\n",
                errstr);
        exit_code = 1;
    }
    cJSON_AddBoolToObject(out, "event_produced", exit_code == 0);
    pw_token_print_json(out);
    cJSON_Delete(out);
    return exit_code;
}

static int pw_token_put(const pw_token_opts_t *opts)
{
    if (pw_token_require(opts->account_id, "--account") == -1 ||
        pw_token_require(opts->user_id && *opts->user_id, "--user-id") == -1 ||
        pw_token_require(opts->expires_in >= 0, "--expires-in") == -1)
        return 2;
    pw_token_t token = {
        .account_id = (char *)opts->account_id,
        .user_id = (char *)opts->user_id,
        .refresh_method = opts->method,
        .scopes = (char *)opts->scopes,
        .issued_at = opts->issued_at >= 0 ? opts->issued_at : pw_now_ms() / 1000,
    };
    token.expires_at = token.issued_at + opts->expires_in;
    pw_token_cmd_t cmd;
    int exit_code =
        pw_token_input_read(opts->token_file, opts->method == PW_REFRESH_OAUTH2, &token);
    if (exit_code == 0)
        exit_code = pw_token_cmd_open(&cmd, PW_CONFIG_NEED_KAFKA);
    else
        memset(&cmd, 0, sizeof(cmd));
    pw_verification_t v;
    if (exit_code == 0 && !opts->no_verify)
        exit_code = pw_token_put_verify(&cmd, &token, &v);
    if (exit_code == 0)
        exit_code = pw_token_put_store(&cmd, &token, opts->no_verify ? NULL : &v);
    pw_secret_destroy(token.access_token);
    pw_secret_destroy(token.refresh_token);
    pw_token_cmd_close(&cmd);
    return exit_code;
}

static void pw_add_time(cJSON *obj, const char *name, int64_t epoch_ms)
{
    char buf[40];
    pw_format_time_ms(epoch_ms, buf, sizeof(buf));
    cJSON_AddStringToObject(obj, name, buf);
}

/* The record with every secret replaced by its fingerprint. */
static cJSON *pw_token_describe(const pw_token_t *token, const char *status)
{
    char fp[32];
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "account_id", token->account_id);
    cJSON_AddStringToObject(out, "user_id", token->user_id);
    if (status)
        cJSON_AddStringToObject(out, "status", status);
    else
        cJSON_AddNullToObject(out, "status");
    cJSON_AddStringToObject(out, "refresh_method", pw_refresh_method_name(token->refresh_method));
    cJSON *scopes = cJSON_AddArrayToObject(out, "scopes");
    char *copy = pw_strdup(token->scopes ? token->scopes : ""), *save = NULL;
    for (char *s = strtok_r(copy, ",", &save); s; s = strtok_r(NULL, ",", &save))
        cJSON_AddItemToArray(scopes, cJSON_CreateString(s));
    free(copy);
    pw_add_time(out, "issued_at", token->issued_at * 1000);
    pw_add_time(out, "expires_at", token->expires_at * 1000);
    cJSON_AddNumberToObject(out, "expires_in_s", (double)(token->expires_at - pw_now_ms() / 1000));
    pw_add_time(out, "updated_at", token->updated_at_ms);
    cJSON_AddNumberToObject(out, "fence", (double)token->fence);
    cJSON_AddStringToObject(out, "key_id", token->key_id);
    pw_secret_fingerprint(token->access_token, fp, sizeof(fp));
    cJSON_AddStringToObject(out, "access_token", fp);
    if (token->refresh_token) {
        pw_secret_fingerprint(token->refresh_token, fp, sizeof(fp));
        cJSON_AddStringToObject(out, "refresh_token", fp);
    } else {
        cJSON_AddNullToObject(out, "refresh_token");
    }
    return out;
}

/* ---- show ---- */

static int pw_token_show(const pw_token_opts_t *opts)
{
    if (pw_token_require(opts->account_id, "--account") == -1)
        return 2;
    pw_token_cmd_t cmd;
    int exit_code = pw_token_cmd_open(&cmd, 0);
    char errstr[1024];
    pw_token_t *token = NULL;
    char *status = NULL;
    if (exit_code == 0 && (pw_token_store_get(cmd.store, opts->account_id, &token, errstr,
                                              sizeof(errstr)) != PW_TS_OK ||
                           pw_token_store_get_status(cmd.store, opts->account_id, &status, errstr,
                                                     sizeof(errstr)) != PW_TS_OK)) {
        fprintf(stderr, "publish-worker: %s\n", errstr);
        exit_code = 1;
    }
    if (exit_code == 0) {
        cJSON *out = pw_token_describe(token, status);
        pw_token_print_json(out);
        cJSON_Delete(out);
    }
    free(status);
    pw_token_destroy(token);
    pw_token_cmd_close(&cmd);
    return exit_code;
}

void pw_strv_add(pw_strv_t *ids, const char *id)
{
    if (ids->count == ids->cap) {
        ids->cap = ids->cap ? ids->cap * 2 : 64;
        ids->ids = pw_realloc(ids->ids, ids->cap * sizeof(char *));
    }
    ids->ids[ids->count++] = pw_strdup(id);
}

void pw_strv_free(pw_strv_t *ids)
{
    for (size_t i = 0; i < ids->count; i++)
        free(ids->ids[i]);
    free(ids->ids);
    memset(ids, 0, sizeof(*ids));
}
