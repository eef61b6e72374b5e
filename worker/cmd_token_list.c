/* token list: every account's state in one view, for operators.
 *
 * DESIGN: the accounts are the token records (SCAN MATCH pw:{*}:token,
 * never KEYS) and the members of pw:parked_accounts that have no record
 * (posts parked, no token). Their keys are read in pipelined batches of
 * PW_LIST_BATCH accounts, five commands each, on one connection:
 *   HMGET token   refresh_method expires_at refreshed_at_ms access_token
 *   HMGET account status reason at_ms
 *   PTTL  quota_hold
 *   HMGET verify  at_ms outcome message
 *   LLEN  parked
 * so 100,000 accounts cost about a thousand round trips, not half a million.
 * The key id comes from the sealed access token's prefix (crypto.h): no
 * record is opened, so records the ring cannot open are listed like any. Rows are sorted by account
 * and printed as an aligned table or, with --json, a JSON object a line. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keys.h"
#include "token_cmd.h"

#define PW_LIST_BATCH 500
#define PW_LIST_CMDS 5 /* commands per account */

typedef struct pw_list_row_s {
    char *account_id;
    char *state; /* active, reconnect_required, quota_wait, or what is stored */
    char *reason;
    int64_t since_ms;
    int64_t quota_until_ms; /* quota_wait: when the window frees (0: unknown) */
    bool has_token;
    char *method;
    int64_t expires_at_ms;
    int64_t refreshed_at_ms;
    int64_t verified_at_ms;
    char *verify_outcome;
    char *verify_message;
    long long parked;
    char key_id[PW_CRYPTO_KEY_ID_MAX + 1];
} pw_list_row_t;

typedef struct pw_list_s {
    pw_token_cmd_t *cmd;
    pw_redis_pipe_t *pipe;
    const char *state; /* --state, or NULL */
    bool parked_only;  /* this pass lists accounts without a record */
    pw_list_row_t *rows;
    size_t count, cap;
} pw_list_t;

static const char *const pw_list_states[] = {"active", "reconnect_required", "quota_wait"};

/* Element i of an HMGET reply, or NULL. */
static const char *pw_hm(const redisReply *r, size_t i)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || i >= r->elements)
        return NULL;
    return r->element[i]->type == REDIS_REPLY_STRING ? r->element[i]->str : NULL;
}

static int64_t pw_hm_int(const redisReply *r, size_t i)
{
    const char *v = pw_hm(r, i);
    return v ? strtoll(v, NULL, 10) : 0;
}

static char *pw_dup_or_null(const char *s)
{
    return s ? pw_strdup(s) : NULL;
}

/* The account's state from its status and quota hold (PTTL: -2 none). */
static void pw_list_state(pw_list_row_t *row, const redisReply *account, const redisReply *hold,
                          int64_t now_ms)
{
    const char *status = pw_hm(account, 0);
    row->reason = pw_dup_or_null(pw_hm(account, 1));
    row->since_ms = pw_hm_int(account, 2);
    long long pttl = hold && hold->type == REDIS_REPLY_INTEGER ? hold->integer : -2;
    if (!status && !row->has_token) { /* parked posts, no token: the next post marks it */
        row->state = pw_strdup("reconnect_required");
        free(row->reason);
        row->reason = pw_strdup("no_token");
    } else if (status && strcmp(status, "active") == 0 && pttl != -2) {
        row->state = pw_strdup("quota_wait");
        row->quota_until_ms = pttl > 0 ? now_ms + pttl : 0;
    } else {
        row->state = pw_strdup(status ? status : "unknown");
    }
}

/* Fills a row from the account's replies at r[0..PW_LIST_CMDS). */
static void pw_list_fill(pw_list_row_t *row, const char *account_id, const redisReply **r,
                         int64_t now_ms)
{
    memset(row, 0, sizeof(*row));
    row->account_id = pw_strdup(account_id);
    const char *sealed = pw_hm(r[0], 3);
    row->has_token = sealed || pw_hm(r[0], 0) || pw_hm(r[0], 1);
    row->method = pw_dup_or_null(pw_hm(r[0], 0));
    row->expires_at_ms = pw_hm_int(r[0], 1) * 1000;
    row->refreshed_at_ms = pw_hm_int(r[0], 2);
    if (pw_crypto_sealed_key_id(sealed, row->key_id, sizeof(row->key_id)) == -1)
        row->key_id[0] = '\0';
    pw_list_state(row, r[1], r[2], now_ms);
    row->verified_at_ms = pw_hm_int(r[3], 0);
    row->verify_outcome = pw_dup_or_null(pw_hm(r[3], 1));
    row->verify_message = pw_dup_or_null(pw_hm(r[3], 2));
    row->parked = r[4] && r[4]->type == REDIS_REPLY_INTEGER ? r[4]->integer : 0;
}

static void pw_list_row_free(pw_list_row_t *row)
{
    free(row->account_id);
    free(row->state);
    free(row->reason);
    free(row->method);
    free(row->verify_outcome);
    free(row->verify_message);
}

static void pw_list_append(pw_list_t *list, const char *id)
{
    pw_key_t keys[PW_LIST_CMDS] = {pw_key_token(id), pw_key_account(id), pw_key_quota_hold(id),
                                   pw_key_verify(id), pw_key_parked(id)};
    const char *token[] = {"HMGET",      keys[0].s,         "refresh_method",
                           "expires_at", "refreshed_at_ms", "access_token"};
    const char *account[] = {"HMGET", keys[1].s, "status", "reason", "at_ms"};
    const char *hold[] = {"PTTL", keys[2].s};
    const char *verify[] = {"HMGET", keys[3].s, "at_ms", "outcome", "message"};
    const char *parked[] = {"LLEN", keys[4].s};
    pw_redis_pipe_append(list->pipe, 6, token, NULL);
    pw_redis_pipe_append(list->pipe, 5, account, NULL);
    pw_redis_pipe_append(list->pipe, 2, hold, NULL);
    pw_redis_pipe_append(list->pipe, 5, verify, NULL);
    pw_redis_pipe_append(list->pipe, 2, parked, NULL);
}

/* Keeps the row of account i of the batch just read, if it passes. */
static void pw_list_keep(pw_list_t *list, const char *id, size_t i, int64_t now_ms)
{
    const redisReply *r[PW_LIST_CMDS];
    for (size_t c = 0; c < PW_LIST_CMDS; c++) {
        r[c] = pw_redis_pipe_reply(list->pipe, i * PW_LIST_CMDS + c);
        if (r[c] && r[c]->type == REDIS_REPLY_ERROR)
            r[c] = NULL; /* e.g. WRONGTYPE: shown as absent */
    }
    pw_list_row_t row;
    pw_list_fill(&row, id, r, now_ms);
    if ((list->parked_only && row.has_token) || (list->state && strcmp(row.state, list->state))) {
        pw_list_row_free(&row);
        return;
    }
    if (list->count == list->cap) {
        list->cap = list->cap ? list->cap * 2 : 1024;
        list->rows = pw_realloc(list->rows, list->cap * sizeof(*list->rows));
    }
    list->rows[list->count++] = row;
}

/* One page of accounts, read PW_LIST_BATCH at a time. */
static int pw_list_page(void *arg, char **ids, size_t count, char *errstr, size_t errstr_size)
{
    pw_list_t *list = arg;
    for (size_t start = 0; start < count; start += PW_LIST_BATCH) {
        size_t n = count - start < PW_LIST_BATCH ? count - start : PW_LIST_BATCH;
        for (size_t i = 0; i < n; i++)
            pw_list_append(list, ids[start + i]);
        if (pw_redis_pipe_exec(list->pipe, errstr, errstr_size) == -1)
            return -1;
        int64_t now_ms = pw_now_ms();
        for (size_t i = 0; i < n; i++)
            pw_list_keep(list, ids[start + i], i, now_ms);
    }
    return 0;
}

static int pw_list_row_cmp(const void *a, const void *b)
{
    return strcmp(((const pw_list_row_t *)a)->account_id, ((const pw_list_row_t *)b)->account_id);
}

/* Sorts the rows and drops an account SCAN returned twice. */
static void pw_list_sort(pw_list_t *list)
{
    if (list->count == 0)
        return;
    qsort(list->rows, list->count, sizeof(*list->rows), pw_list_row_cmp);
    size_t kept = 1;
    for (size_t i = 1; i < list->count; i++) {
        if (strcmp(list->rows[i].account_id, list->rows[kept - 1].account_id) == 0)
            pw_list_row_free(&list->rows[i]);
        else
            list->rows[kept++] = list->rows[i];
    }
    list->count = kept;
}

static void pw_json_str(cJSON *obj, const char *name, const char *value)
{
    if (value)
        cJSON_AddStringToObject(obj, name, value);
    else
        cJSON_AddNullToObject(obj, name);
}

static void pw_list_print_json(const pw_list_row_t *row)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "account_id", row->account_id);
    cJSON_AddStringToObject(o, "state", row->state);
    pw_json_str(o, "reason", row->reason);
    pw_token_json_time(o, "since", row->since_ms);
    pw_token_json_time(o, "quota_until", row->quota_until_ms);
    cJSON_AddBoolToObject(o, "has_token", row->has_token);
    pw_json_str(o, "refresh_method", row->method);
    pw_token_json_time(o, "expires_at", row->expires_at_ms);
    pw_token_json_time(o, "last_refresh", row->refreshed_at_ms);
    if (row->verified_at_ms > 0) {
        cJSON *v = cJSON_AddObjectToObject(o, "last_verification");
        pw_token_json_time(v, "at", row->verified_at_ms);
        pw_json_str(v, "outcome", row->verify_outcome);
        pw_json_str(v, "message", row->verify_message);
    } else {
        cJSON_AddNullToObject(o, "last_verification");
    }
    cJSON_AddNumberToObject(o, "parked", (double)row->parked);
    pw_json_str(o, "key_id", row->key_id[0] ? row->key_id : NULL);
    pw_token_print_json(o);
    cJSON_Delete(o);
}

/* ---- the table ---- */

enum { PW_COL_COUNT = 11 };
static const char *const pw_list_heads[PW_COL_COUNT] = {
    "ACCOUNT",   "STATE",    "SINCE",  "REASON", "METHOD", "EXPIRES",
    "REFRESHED", "VERIFIED", "RESULT", "PARKED", "KEY"};

/* A time for the table, to the minute (UTC), or "-". */
static void pw_table_time(int64_t ms, char *buf, size_t size)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (ms <= 0 || !gmtime_r(&t, &tm))
        snprintf(buf, size, "-");
    else
        strftime(buf, size, "%Y-%m-%dT%H:%MZ", &tm);
}

/* The row's cells; strings in cells point into row or into buf. */
static void pw_list_cells(const pw_list_row_t *row, char buf[][40], const char *cells[])
{
    pw_table_time(row->since_ms, buf[2], 40);
    pw_table_time(row->expires_at_ms, buf[5], 40);
    pw_table_time(row->refreshed_at_ms, buf[6], 40);
    pw_table_time(row->verified_at_ms, buf[7], 40);
    snprintf(buf[9], 40, "%lld", row->parked);
    const char *reason = row->reason ? row->reason : "-";
    if (strcmp(row->state, "quota_wait") == 0) {
        char until[32];
        pw_table_time(row->quota_until_ms, until, sizeof(until));
        snprintf(buf[3], 40, "until %s", until);
        reason = buf[3];
    }
    const char *v[PW_COL_COUNT] = {row->account_id,
                                   row->state,
                                   buf[2],
                                   reason,
                                   row->method ? row->method : "-",
                                   buf[5],
                                   buf[6],
                                   buf[7],
                                   row->verify_outcome ? row->verify_outcome : "-",
                                   buf[9],
                                   row->key_id[0] ? row->key_id : "-"};
    memcpy(cells, v, sizeof(v));
}

static void pw_list_print_table(const pw_list_t *list)
{
    size_t width[PW_COL_COUNT];
    char buf[PW_COL_COUNT][40];
    const char *cells[PW_COL_COUNT];
    for (int c = 0; c < PW_COL_COUNT; c++)
        width[c] = strlen(pw_list_heads[c]);
    for (size_t i = 0; i < list->count; i++) {
        pw_list_cells(&list->rows[i], buf, cells);
        for (int c = 0; c < PW_COL_COUNT; c++)
            width[c] = strlen(cells[c]) > width[c] ? strlen(cells[c]) : width[c];
    }
    for (size_t i = 0; i <= list->count; i++) {
        if (i == 0)
            memcpy(cells, pw_list_heads, sizeof(cells));
        else
            pw_list_cells(&list->rows[i - 1], buf, cells);
        for (int c = 0; c < PW_COL_COUNT; c++)
            if (c + 1 < PW_COL_COUNT)
                printf("%-*s  ", (int)width[c], cells[c]);
            else
                printf("%s\n", cells[c]);
    }
}

/* "3 accounts: 2 active, 1 reconnect_required" on stderr. */
static void pw_list_summary(const pw_list_t *list)
{
    long counts[PW_ARRAY_SIZE(pw_list_states) + 1] = {0};
    for (size_t i = 0; i < list->count; i++) {
        size_t s = 0;
        while (s < PW_ARRAY_SIZE(pw_list_states) && strcmp(list->rows[i].state, pw_list_states[s]))
            s++;
        counts[s]++;
    }
    fprintf(stderr, "publish-worker: %zu account%s", list->count, list->count == 1 ? "" : "s");
    const char *sep = ": ";
    for (size_t s = 0; s <= PW_ARRAY_SIZE(pw_list_states); s++) {
        if (counts[s]) {
            fprintf(stderr, "%s%ld %s", sep, counts[s],
                    s < PW_ARRAY_SIZE(pw_list_states) ? pw_list_states[s] : "other");
            sep = ", ";
        }
    }
    fprintf(stderr, "\n");
}

static bool pw_list_state_known(const char *state)
{
    for (size_t s = 0; s < PW_ARRAY_SIZE(pw_list_states); s++)
        if (strcmp(state, pw_list_states[s]) == 0)
            return true;
    return false;
}

/* Reads every account into list. @returns 0 or -1 with errstr. */
static int pw_list_read(pw_list_t *list, char *errstr, size_t errstr_size)
{
    if (pw_token_cmd_scan(list->cmd, pw_list_page, list, errstr, errstr_size) == -1)
        return -1;
    list->parked_only = true;
    return pw_token_cmd_scan_set(list->cmd, PW_KEY_PARKED_ACCOUNTS, pw_list_page, list, errstr,
                                 errstr_size);
}

int pw_token_cmd_list(const pw_token_opts_t *opts)
{
    if (opts->state && !pw_list_state_known(opts->state)) {
        fprintf(stderr,
                "publish-worker: --state: \"%s\" is not active, reconnect_required or "
                "quota_wait\n",
                opts->state);
        return 2;
    }
    pw_token_cmd_t cmd;
    int exit_code = pw_token_cmd_open(&cmd, 0);
    pw_list_t list = {.cmd = &cmd, .state = opts->state};
    char errstr[1024];
    if (exit_code == 0) {
        list.pipe = pw_redis_pipe_new(cmd.redis);
        if (pw_list_read(&list, errstr, sizeof(errstr)) == -1) {
            fprintf(stderr, "publish-worker: token list: %s\n", errstr);
            exit_code = 1;
        }
    }
    if (exit_code == 0) {
        pw_list_sort(&list);
        for (size_t i = 0; opts->json && i < list.count; i++)
            pw_list_print_json(&list.rows[i]);
        if (!opts->json)
            pw_list_print_table(&list);
        pw_list_summary(&list);
    }
    for (size_t i = 0; i < list.count; i++)
        pw_list_row_free(&list.rows[i]);
    free(list.rows);
    pw_redis_pipe_destroy(list.pipe);
    pw_token_cmd_close(&cmd);
    return exit_code;
}
