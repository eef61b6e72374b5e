/* token put / token show: an operator's way to connect an account.
 *
 * put reads the access token (and, for oauth2, the refresh token) from stdin
 * or --token-file, a line each of any length, without echo on a terminal and
 * as operators paste it (surrounding white space and "Bearer " removed),
 * seals and stores it, marks the account active and produces token_updated so
 * that a worker publishes the account's parked posts. The token is stored
 * even when Kafka is unreachable: the workers' sweep replays parked posts of
 * active accounts anyway, so the command says so and exits 1. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <termios.h>
#include <unistd.h>

#include "commands.h"
#include "crypto.h"
#include "env.h"
#include "events.h"
#include "kafka.h"
#include "log.h"
#include "token_store.h"

typedef struct pw_token_opts_s {
    const char *account_id;
    const char *user_id;
    const char *scopes;
    const char *token_file; /* NULL: stdin */
    long long expires_in;
    long long issued_at; /* -1: now */
    pw_refresh_method_t method;
} pw_token_opts_t;

/* Everything a token command holds; released in one place. */
typedef struct pw_token_cmd_s {
    pw_config_t *conf;
    pw_keyring_t *ring;
    pw_redis_t *redis;
    pw_token_store_t *store;
} pw_token_cmd_t;

static int pw_parse_int(const char *flag, const char *value, long long min, long long *out)
{
    char *end;
    long long n = strtoll(value, &end, 10);
    if (!*value || *end || n < min) {
        fprintf(stderr, "publish-worker: %s: \"%s\" is not an integer >= %lld\n", flag, value, min);
        return -1;
    }
    *out = n;
    return 0;
}

/* Parses token put/show flags; returns -1 after a message (exit 2). */
static int pw_token_parse(int argc, char **argv, int is_put, pw_token_opts_t *opts)
{
    static const struct option longopts[] = {
        {"account", required_argument, NULL, 'a'},
        {"user-id", required_argument, NULL, 'u'},
        {"expires-in", required_argument, NULL, 'e'},
        {"issued-at", required_argument, NULL, 'i'},
        {"refresh-method", required_argument, NULL, 'm'},
        {"scopes", required_argument, NULL, 's'},
        {"token-file", required_argument, NULL, 'f'},
        {NULL, 0, NULL, 0},
    };
    memset(opts, 0, sizeof(*opts));
    opts->expires_in = -1;
    opts->issued_at = -1;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        int put_only = c == 'u' || c == 'e' || c == 'i' || c == 'm' || c == 's' || c == 'f';
        if (c == '?' || c == ':' || (put_only && !is_put)) {
            fprintf(stderr, "publish-worker: token %s: unknown or incomplete flag %s\n",
                    is_put ? "put" : "show", argv[optind - 1]);
            return -1;
        }
        if ((c == 'a' && (opts->account_id = optarg) == NULL) ||
            (c == 'u' && (opts->user_id = optarg) == NULL) ||
            (c == 's' && (opts->scopes = optarg) == NULL) ||
            (c == 'f' && (opts->token_file = optarg) == NULL) ||
            (c == 'e' && pw_parse_int("--expires-in", optarg, 1, &opts->expires_in) == -1) ||
            (c == 'i' && pw_parse_int("--issued-at", optarg, 0, &opts->issued_at) == -1))
            return -1;
        if (c == 'm' && pw_refresh_method_parse(optarg, &opts->method) == -1) {
            fprintf(stderr, "publish-worker: --refresh-method: \"%s\" is not threads or oauth2\n",
                    optarg);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "publish-worker: unexpected argument \"%s\"\n", argv[optind]);
        return -1;
    }
    if (!opts->account_id || !pw_account_id_valid(opts->account_id)) {
        fprintf(stderr, "publish-worker: --account: %s\n",
                opts->account_id ? "must be 1 to 128 of [A-Za-z0-9._:-]" : "required");
        return -1;
    }
    if (is_put && (!opts->user_id || !*opts->user_id)) {
        fprintf(stderr, "publish-worker: --user-id: required\n");
        return -1;
    }
    if (is_put && opts->expires_in < 0) {
        fprintf(stderr, "publish-worker: --expires-in: required\n");
        return -1;
    }
    return 0;
}

/* A token line longer than this is no token (and no reason to fill memory). */
#define PW_TOKEN_LINE_MAX (1024 * 1024)

/* Reads one line of in, of any length below PW_TOKEN_LINE_MAX, without its
 * line end: NULL at the end of input before any byte, or (with *too_long)
 * past the limit. Every buffer it outgrows is wiped before it is freed. */
static char *pw_read_line(FILE *in, bool *too_long)
{
    size_t cap = 256, len = 0;
    char *buf = pw_malloc(cap);
    int c;
    *too_long = false;
    while ((c = getc(in)) != EOF && c != '\n') {
        if (len + 1 == cap) {
            if (cap >= PW_TOKEN_LINE_MAX) {
                *too_long = true;
                break;
            }
            char *bigger = pw_malloc(cap * 2);
            memcpy(bigger, buf, len);
            OPENSSL_cleanse(buf, cap);
            free(buf);
            buf = bigger;
            cap *= 2;
        }
        buf[len++] = (char)c;
    }
    buf[len] = '\0';
    if (*too_long || (c == EOF && len == 0)) {
        OPENSSL_cleanse(buf, cap);
        free(buf);
        return NULL;
    }
    return buf;
}

/* The token in a line as operators paste it: surrounding white space (and
 * the \r of a CRLF line) and a leading "Bearer " removed. NULL when nothing
 * is left. */
static pw_secret_t *pw_token_clean(const char *line)
{
    static const char space[] = " \t\r\n\v\f";
    line += strspn(line, space);
    if (strncasecmp(line, "Bearer", 6) == 0 && line[6] && strchr(space, line[6]))
        line += 6 + strspn(line + 6, space);
    size_t len = strlen(line);
    while (len > 0 && strchr(space, line[len - 1]))
        len--;
    return len > 0 ? pw_secret_new(line, len) : NULL;
}

/* ---- no echo on a terminal ----
 * While a token is typed or pasted on a terminal, echo is off, so that it
 * stays out of the scrollback and of a shared screen. A signal that ends the
 * command first turns echo back on. */

static struct termios pw_tty_saved;
static volatile sig_atomic_t pw_tty_fd = -1;
static const int pw_tty_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
static struct sigaction pw_tty_old_actions[PW_ARRAY_SIZE(pw_tty_signals)];

static void pw_echo_restore(void)
{
    if (pw_tty_fd >= 0)
        tcsetattr(pw_tty_fd, TCSANOW, &pw_tty_saved); /* async-signal-safe */
    pw_tty_fd = -1;
}

static void pw_echo_on_signal(int sig)
{
    pw_echo_restore();
    signal(sig, SIG_DFL);
    raise(sig); /* dies of it as it would have, after the handler returns */
}

/* Echo back on, and the signals' actions as they were. */
static void pw_echo_on(void)
{
    pw_echo_restore();
    for (size_t i = 0; i < PW_ARRAY_SIZE(pw_tty_signals); i++)
        sigaction(pw_tty_signals[i], &pw_tty_old_actions[i], NULL);
}

/* Turns echo off when fd is a terminal; returns whether it did. */
static bool pw_echo_off(int fd)
{
    struct termios quiet;
    if (!isatty(fd) || tcgetattr(fd, &pw_tty_saved) == -1)
        return false;
    struct sigaction sa = {.sa_handler = pw_echo_on_signal};
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < PW_ARRAY_SIZE(pw_tty_signals); i++)
        sigaction(pw_tty_signals[i], &sa, &pw_tty_old_actions[i]);
    quiet = pw_tty_saved;
    quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
    pw_tty_fd = fd;
    if (tcsetattr(fd, TCSAFLUSH, &quiet) == -1) {
        pw_echo_on();
        return false;
    }
    return true;
}

/* Reads the token's line from in, hidden on a terminal (prompting on
 * stderr). Returns 0 with *out (NULL for an empty line or no input), or -1
 * after a message. */
static int pw_read_secret_line(FILE *in, const char *what, pw_secret_t **out)
{
    bool hidden = pw_echo_off(fileno(in));
    if (hidden)
        fprintf(stderr, "%s (not shown): ", what);
    bool too_long;
    char *line = pw_read_line(in, &too_long);
    if (hidden) {
        pw_echo_on();
        fputc('\n', stderr); /* the Enter was not echoed either */
    }
    *out = line ? pw_token_clean(line) : NULL;
    if (line) {
        OPENSSL_cleanse(line, strlen(line));
        free(line);
    }
    if (too_long)
        fprintf(stderr, "publish-worker: token put: the %s is longer than 1 MiB\n", what);
    return too_long ? -1 : 0;
}

/* Reads the access token, and for oauth2 the refresh token, from stdin or
 * --token-file; returns 0 or the exit code (2) after a message. */
static int pw_token_read(const pw_token_opts_t *opts, pw_token_t *token)
{
    bool oauth2 = opts->method == PW_REFRESH_OAUTH2;
    FILE *in = opts->token_file ? fopen(opts->token_file, "r") : stdin;
    if (!in) {
        fprintf(stderr, "publish-worker: --token-file: cannot open %s: %s\n", opts->token_file,
                strerror(errno));
        return 2;
    }
    setvbuf(in, NULL, _IONBF, 0); /* no stdio buffer keeps a copy of the token */
    int rc = pw_read_secret_line(in, "access token", &token->access_token);
    if (rc == 0 && token->access_token && oauth2)
        rc = pw_read_secret_line(in, "refresh token", &token->refresh_token);
    if (opts->token_file)
        fclose(in);
    if (rc == 0 && (!token->access_token || (oauth2 && !token->refresh_token))) {
        fprintf(stderr, "publish-worker: token put: expected the access token%s on %s\n",
                oauth2 ? " then the refresh token, a line each" : "",
                opts->token_file ? opts->token_file : "stdin");
        rc = -1;
    }
    return rc == 0 ? 0 : 2;
}

static void pw_token_cmd_close(pw_token_cmd_t *cmd)
{
    pw_token_store_destroy(cmd->store);
    pw_redis_destroy(cmd->redis);
    pw_keyring_destroy(cmd->ring);
    pw_config_destroy(cmd->conf);
}

/* Loads configuration and key ring, prepares Redis; returns the exit code
 * to give up with, or 0. */
static int pw_token_cmd_open(pw_token_cmd_t *cmd, pw_config_need_t needs)
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

static void pw_print_json(cJSON *obj)
{
    char *text = cJSON_PrintUnformatted(obj);
    printf("%s\n", text);
    free(text);
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

static int pw_token_put(int argc, char **argv)
{
    pw_token_opts_t opts;
    if (pw_token_parse(argc, argv, 1, &opts) == -1)
        return 2;
    pw_token_t token = {
        .account_id = (char *)opts.account_id,
        .user_id = (char *)opts.user_id,
        .refresh_method = opts.method,
        .scopes = (char *)opts.scopes,
        .issued_at = opts.issued_at >= 0 ? opts.issued_at : pw_now_ms() / 1000,
    };
    token.expires_at = token.issued_at + opts.expires_in;
    if (pw_token_read(&opts, &token) != 0) {
        pw_secret_destroy(token.access_token);
        pw_secret_destroy(token.refresh_token);
        return 2;
    }

    pw_token_cmd_t cmd;
    int exit_code = pw_token_cmd_open(&cmd, PW_CONFIG_NEED_KAFKA);
    char errstr[1024];
    int64_t fence = 0;
    if (exit_code == 0 &&
        pw_token_store_put(cmd.store, &token, &fence, errstr, sizeof(errstr)) != PW_TS_OK) {
        fprintf(stderr, "publish-worker: token not stored: %s\n", errstr);
        exit_code = 1;
    }
    if (exit_code == 0) {
        char fp[32];
        pw_secret_fingerprint(token.access_token, fp, sizeof(fp));
        cJSON *out = cJSON_CreateObject();
        cJSON_AddStringToObject(out, "account_id", token.account_id);
        cJSON_AddBoolToObject(out, "stored", 1);
        cJSON_AddStringToObject(out, "access_token", fp);
        cJSON_AddNumberToObject(out, "fence", (double)fence);
        if (pw_token_announce(cmd.conf, token.account_id, errstr, sizeof(errstr)) == -1) {
            fprintf(stderr,
                    "publish-worker: token stored, but the token_updated event was not "
                    "produced: %s\nParked posts will be published by the workers' next sweep.\n",
                    errstr);
            cJSON_AddBoolToObject(out, "event_produced", 0);
            exit_code = 1;
        } else {
            cJSON_AddBoolToObject(out, "event_produced", 1);
        }
        pw_print_json(out);
        cJSON_Delete(out);
    }
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

static int pw_token_show(int argc, char **argv)
{
    pw_token_opts_t opts;
    if (pw_token_parse(argc, argv, 0, &opts) == -1)
        return 2;
    pw_token_cmd_t cmd;
    int exit_code = pw_token_cmd_open(&cmd, 0);
    char errstr[1024];
    pw_token_t *token = NULL;
    char *status = NULL;
    if (exit_code == 0 && (pw_token_store_get(cmd.store, opts.account_id, &token, errstr,
                                              sizeof(errstr)) != PW_TS_OK ||
                           pw_token_store_get_status(cmd.store, opts.account_id, &status, errstr,
                                                     sizeof(errstr)) != PW_TS_OK)) {
        fprintf(stderr, "publish-worker: %s\n", errstr);
        exit_code = 1;
    }
    if (exit_code == 0) {
        cJSON *out = pw_token_describe(token, status);
        pw_print_json(out);
        cJSON_Delete(out);
    }
    free(status);
    pw_token_destroy(token);
    pw_token_cmd_close(&cmd);
    return exit_code;
}

int pw_cmd_token(int argc, char **argv)
{
    if (argc >= 1 && strcmp(argv[0], "put") == 0)
        return pw_token_put(argc, argv);
    if (argc >= 1 && strcmp(argv[0], "show") == 0)
        return pw_token_show(argc, argv);
    fprintf(stderr, "publish-worker: token: expected put or show (see --help)\n");
    return 2;
}
