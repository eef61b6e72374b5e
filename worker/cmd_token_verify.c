/* token verify: checks stored tokens against the API, as the workers'
 * verification sweep does, on an operator's demand.
 *
 * DESIGN: each account's record is opened and its token verified
 * (token_verify.h: GET /me, the publishing limit, debug_token for scopes
 * beyond publishing) as the record's user with the record's scopes. The
 * result is recorded (pw:{ACCT}:verify, and the account's next due time in
 * pw:verify_due: an interval from now, or now again when the API could not
 * be asked) and printed as a JSON line; a summary goes to stderr. Nothing
 * is marked: acting on a bad token (reconnect_required, permission_denied)
 * is the sweep's job, which sees the same record.
 *
 * With --all, verifications draw on the fleet's budget
 * (TOKEN_VERIFY_MAX_PER_S, counted in pw:verify_rate:SECOND as the sweep
 * counts them), so an operator's run and the sweeps together keep to it. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keys.h"
#include "token_cmd.h"
#include "token_verify.h"

/* Outcomes of the command: the API's verdicts, then the record's. */
#define PW_VERIFY_UNREADABLE PW_VERIFY_COUNT
#define PW_VERIFY_CMD_OUTCOMES (PW_VERIFY_COUNT + 1)

typedef struct pw_verify_run_s {
    pw_token_cmd_t *cmd;
    pw_http_t *http;
    bool budget; /* --all: draw on the fleet's verification budget */
    long counts[PW_VERIFY_CMD_OUTCOMES];
    long checked;
} pw_verify_run_t;

/* KEYS: the second's counter. Counts a verification started in it. */
static pw_redis_script_t pw_verify_rate_script = {
    .source = "local n = redis.call('INCR', KEYS[1])\n"
              "if n == 1 then redis.call('EXPIRE', KEYS[1], 5) end\n"
              "return n\n",
};

static const char *pw_verify_cmd_outcome_name(int outcome)
{
    return outcome == PW_VERIFY_UNREADABLE ? "unreadable"
                                           : pw_verify_outcome_name((pw_verify_outcome_t)outcome);
}

static void pw_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Waits for a place in the fleet's budget of verifications per second.
 * @returns 0, or -1 when Redis failed (errstr). */
static int pw_verify_take_budget(pw_verify_run_t *run, char *errstr, size_t errstr_size)
{
    for (;;) {
        int64_t now_ms = pw_now_ms();
        pw_key_t k_rate = pw_key_verify_rate(now_ms / 1000);
        const char *keys[] = {k_rate.s};
        redisReply *n = pw_redis_eval(run->cmd->redis, &pw_verify_rate_script, 1, keys, 0, NULL,
                                      errstr, errstr_size);
        if (!n)
            return -1;
        bool ok = n->integer <= run->cmd->conf->token_verify_max_per_s;
        freeReplyObject(n);
        if (ok)
            return 0;
        pw_sleep_ms(1000 - (long)(now_ms % 1000) + 1); /* the next second */
    }
}

static void pw_verify_print(const char *account_id, const char *user_id, int outcome,
                            const char *message, int64_t at_ms)
{
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "account_id", account_id);
    if (user_id)
        cJSON_AddStringToObject(out, "user_id", user_id);
    else
        cJSON_AddNullToObject(out, "user_id");
    cJSON_AddStringToObject(out, "outcome", pw_verify_cmd_outcome_name(outcome));
    cJSON_AddStringToObject(out, "message", message);
    pw_token_json_time(out, "checked_at", at_ms);
    pw_token_print_json(out);
    cJSON_Delete(out);
    fflush(stdout);
}

/* Verifies an opened token, records and prints the result.
 * @returns 0, or -1 when Redis failed (errstr). */
static int pw_verify_token(pw_verify_run_t *run, const pw_token_t *token, char *errstr,
                           size_t errstr_size)
{
    if (run->budget && pw_verify_take_budget(run, errstr, errstr_size) == -1)
        return -1;
    pw_verification_t v;
    pw_token_verify(run->http, run->cmd->conf->threads_api_base_url, token->user_id,
                    token->access_token, token->scopes, &v);
    int64_t at_ms = pw_now_ms();
    /* No verdict: the sweep asks again soon rather than in an interval. */
    int64_t due_s =
        at_ms / 1000 +
        (v.outcome == PW_VERIFY_UNREACHABLE ? 0 : run->cmd->conf->token_verify_interval_s);
    if (pw_token_store_note_verification(run->cmd->store, token->account_id, token->fence,
                                         pw_verify_outcome_name(v.outcome), v.message, at_ms, due_s,
                                         errstr, errstr_size) != PW_TS_OK)
        return -1;
    run->counts[v.outcome]++;
    run->checked++;
    pw_verify_print(token->account_id, token->user_id, v.outcome, v.message, at_ms);
    return 0;
}

/* One account. *found is false when it has no token record.
 * @returns 0, or -1 when Redis failed (errstr). */
static int pw_verify_account(pw_verify_run_t *run, const char *account_id, bool *found,
                             char *errstr, size_t errstr_size)
{
    pw_token_t *token = NULL;
    char why[640];
    pw_ts_status_t st = pw_token_store_get(run->cmd->store, account_id, &token, why, sizeof(why));
    *found = st != PW_TS_NOT_FOUND;
    int rc = 0;
    switch (st) {
    case PW_TS_OK:
        rc = pw_verify_token(run, token, errstr, errstr_size);
        break;
    case PW_TS_UNREADABLE: /* why names the key or the field, never a secret */
        run->counts[PW_VERIFY_UNREADABLE]++;
        run->checked++;
        pw_verify_print(account_id, NULL, PW_VERIFY_UNREADABLE, why, pw_now_ms());
        break;
    case PW_TS_NOT_FOUND:
        break;
    default:
        pw_errstr_set(errstr, errstr_size, "%s", why);
        rc = -1;
    }
    pw_token_destroy(token);
    return rc;
}

static int pw_verify_page(void *arg, char **account_ids, size_t count, char *errstr,
                          size_t errstr_size)
{
    for (size_t i = 0; i < count; i++) {
        bool found;
        if (pw_verify_account(arg, account_ids[i], &found, errstr, errstr_size) == -1)
            return -1;
    }
    return 0;
}

/* "verified 3 tokens: 2 ok, 1 revoked" on stderr; true when all were ok. */
static bool pw_verify_summary(const pw_verify_run_t *run)
{
    fprintf(stderr, "publish-worker: verified %ld token%s", run->checked,
            run->checked == 1 ? "" : "s");
    const char *sep = ": ";
    for (int i = 0; i < PW_VERIFY_CMD_OUTCOMES; i++) {
        if (run->counts[i]) {
            fprintf(stderr, "%s%ld %s", sep, run->counts[i], pw_verify_cmd_outcome_name(i));
            sep = ", ";
        }
    }
    fprintf(stderr, "\n");
    return run->counts[PW_VERIFY_OK] == run->checked;
}

int pw_token_cmd_verify(const pw_token_opts_t *opts)
{
    if ((opts->account_id != NULL) == opts->all) {
        fprintf(stderr, "publish-worker: token verify: give --account ID or --all (one of them)\n");
        return 2;
    }
    pw_token_cmd_t cmd;
    int exit_code = pw_token_cmd_open(&cmd, 0);
    if (exit_code != 0) {
        pw_token_cmd_close(&cmd);
        return exit_code;
    }
    pw_verify_run_t run = {.cmd = &cmd, .budget = opts->all};
    run.http = pw_http_new(cmd.conf->http_connect_timeout_ms, cmd.conf->http_timeout_ms);
    char errstr[1024];
    bool found = true;
    int rc = opts->all ? pw_token_cmd_scan(&cmd, pw_verify_page, &run, errstr, sizeof(errstr))
                       : pw_verify_account(&run, opts->account_id, &found, errstr, sizeof(errstr));
    if (rc == -1)
        fprintf(stderr, "publish-worker: token verify stopped: %s\n", errstr);
    else if (!found)
        fprintf(stderr, "publish-worker: account %s has no token record\n", opts->account_id);
    bool all_ok = pw_verify_summary(&run);
    exit_code = rc == 0 && found && all_ok ? 0 : 1;
    pw_http_destroy(run.http);
    pw_token_cmd_close(&cmd);
    return exit_code;
}
