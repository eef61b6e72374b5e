/* Configuration: the declarative table of environment variables and its loader. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "log.h"
#include "redis.h"

#define PW_CV_OFF(field) offsetof(pw_config_t, field)
#define PW_NO_BOUNDS 0, 0

/* The one table. Order is the order of --help and of the README. */
const pw_config_var_t pw_config_vars[] = {
    {"KAFKA_BOOTSTRAP_SERVERS", NULL, PW_CV_STRING, PW_CONFIG_NEED_KAFKA, PW_NO_BOUNDS,
     PW_CV_OFF(kafka_bootstrap_servers), "broker list, host:port[,host:port...]"},
    {"KAFKA_GROUP_ID", "publish-worker", PW_CV_STRING, 0, PW_NO_BOUNDS, PW_CV_OFF(kafka_group_id),
     "consumer group"},
    {"TOPIC_PUBLISH_REQUESTS", "publish.requests", PW_CV_STRING, 0, PW_NO_BOUNDS,
     PW_CV_OFF(topic_publish_requests), "input: publish.request.v1"},
    {"TOPIC_PUBLISH_RESULTS", "publish.results", PW_CV_STRING, 0, PW_NO_BOUNDS,
     PW_CV_OFF(topic_publish_results), "output: one publish.result.v1 per request"},
    {"TOPIC_ALERTS", "publish.alerts", PW_CV_STRING, 0, PW_NO_BOUNDS, PW_CV_OFF(topic_alerts),
     "output: publish.alert.v1"},
    {"TOPIC_DEAD_LETTER", "publish.dlq", PW_CV_STRING, 0, PW_NO_BOUNDS,
     PW_CV_OFF(topic_dead_letter), "output: input that cannot be processed"},
    {"TOPIC_ACCOUNT_EVENTS", "account.events", PW_CV_STRING, 0, PW_NO_BOUNDS,
     PW_CV_OFF(topic_account_events), "input and output: account.event.v1"},
    {"REDIS_URL", "redis://127.0.0.1:6379/0", PW_CV_URL, 0, PW_NO_BOUNDS, PW_CV_OFF(redis_url),
     "redis://[:password@]host:port[/db]; rediss://... for TLS"},
    {"REDIS_TLS_CA_FILE", NULL, PW_CV_FILE, 0, PW_NO_BOUNDS, PW_CV_OFF(redis_tls_ca_file),
     "rediss://: PEM bundle of the CAs that verify Redis's certificate (default: the system's "
     "store); the host name in REDIS_URL is always verified"},
    {"REDIS_TLS_CERT_FILE", NULL, PW_CV_FILE, 0, PW_NO_BOUNDS, PW_CV_OFF(redis_tls_cert_file),
     "rediss://: client certificate (PEM, with its chain) for a Redis that asks for one"},
    {"REDIS_TLS_KEY_FILE", NULL, PW_CV_FILE, 0, PW_NO_BOUNDS, PW_CV_OFF(redis_tls_key_file),
     "rediss://: the client certificate's private key (PEM)"},
    {"THREADS_API_BASE_URL", "https://graph.threads.net", PW_CV_URL, 0, PW_NO_BOUNDS,
     PW_CV_OFF(threads_api_base_url), "Threads API host"},
    {"THREADS_API_CA_FILE", NULL, PW_CV_FILE, 0, PW_NO_BOUNDS, PW_CV_OFF(threads_api_ca_file),
     "PEM bundle of the CAs that verify the API's and OAUTH2_TOKEN_URL's certificates "
     "(default: the system's store); verification is never turned off"},
    {"OAUTH2_TOKEN_URL", NULL, PW_CV_URL, 0, PW_NO_BOUNDS, PW_CV_OFF(oauth2_token_url),
     "token endpoint for accounts refreshed by the oauth2 method"},
    {"OAUTH2_CLIENT_ID", NULL, PW_CV_STRING, 0, PW_NO_BOUNDS, PW_CV_OFF(oauth2_client_id),
     "OAuth2 client id"},
    {"OAUTH2_CLIENT_SECRET", NULL, PW_CV_SECRET, 0, PW_NO_BOUNDS, PW_CV_OFF(oauth2_client_secret),
     "OAuth2 client secret (never printed)"},
    {"TOKEN_KEYS_FILE", NULL, PW_CV_STRING, PW_CONFIG_NEED_KEYS, PW_NO_BOUNDS,
     PW_CV_OFF(token_keys_file), "key ring: KEY_ID:BASE64_OF_32_BYTES a line; first encrypts"},
    {"WORKER_ID", NULL, PW_CV_STRING, 0, PW_NO_BOUNDS, PW_CV_OFF(worker_id),
     "worker name in results, logs and lock owners (default: host name)"},
    {"WORKER_CONCURRENCY", "64", PW_CV_INT, 0, 1, 4096, PW_CV_OFF(worker_concurrency),
     "posts in flight at once in this process"},
    {"WORKER_BUFFER_BYTES", "67108864", PW_CV_INT, 0, 1048576, 17179869184L,
     PW_CV_OFF(worker_buffer_bytes),
     "bytes of consumed messages buffered before partitions pause (librdkafka prefetches up to "
     "half as much again)"},
    {"METRICS_ADDR", "0.0.0.0:9102", PW_CV_ADDR, 0, PW_NO_BOUNDS, PW_CV_OFF(metrics_addr),
     "host:port serving /metrics, /healthz, /readyz"},
    {"LOG_LEVEL", "info", PW_CV_LEVEL, 0, PW_NO_BOUNDS, PW_CV_OFF(log_level),
     "debug, info, warn or error"},
    {"TOKEN_REFRESH_AHEAD_S", "604800", PW_CV_INT, 0, 60, 31536000,
     PW_CV_OFF(token_refresh_ahead_s),
     "refresh when remaining lifetime is below this or half the lifetime"},
    {"TOKEN_VERIFY_INTERVAL_S", "86400", PW_CV_INT, 0, 0, 31536000,
     PW_CV_OFF(token_verify_interval_s),
     "verify every token against the API at least this often, fleet-wide; 0: off"},
    {"AUTH_ALERT_THRESHOLD", "3", PW_CV_INT, 0, 1, 1000000, PW_CV_OFF(auth_alert_threshold),
     "auth failures of one account in the window that raise repeated_auth_failure"},
    {"AUTH_ALERT_WINDOW_S", "900", PW_CV_INT, 0, 1, 604800, PW_CV_OFF(auth_alert_window_s),
     "auth failure window; also the de-duplication window of alerts"},
    {"PUBLISH_MAX_ATTEMPTS", "5", PW_CV_INT, 0, 1, 100, PW_CV_OFF(publish_max_attempts),
     "tries of the publish step for transient failures"},
    {"CONTAINER_POLL_INTERVAL_MS", "500", PW_CV_INT, 0, 10, 60000,
     PW_CV_OFF(container_poll_interval_ms), "interval between container status checks"},
    {"CONTAINER_POLL_TIMEOUT_S", "300", PW_CV_INT, 0, 1, 3600, PW_CV_OFF(container_poll_timeout_s),
     "give up waiting for a container after this"},
    {"HTTP_CONNECT_TIMEOUT_MS", "5000", PW_CV_INT, 0, 100, 120000,
     PW_CV_OFF(http_connect_timeout_ms), "connect timeout of every API call"},
    {"HTTP_TIMEOUT_MS", "30000", PW_CV_INT, 0, 100, 600000, PW_CV_OFF(http_timeout_ms),
     "total timeout of every API call"},
    {"LIVENESS_STALL_S", "60", PW_CV_INT, 0, 1, 3600, PW_CV_OFF(liveness_stall_s),
     "/healthz fails when the main loop has not turned for this long"},
    {"SHUTDOWN_TIMEOUT_S", "25", PW_CV_INT, 0, 1, 600, PW_CV_OFF(shutdown_timeout_s),
     "bound on finishing in-flight posts at shutdown or revoke"},
    {"REDIS_POOL_SIZE", "16", PW_CV_INT, 0, 1, 1024, PW_CV_OFF(redis_pool_size),
     "blocking Redis connections (sweep, probes) besides one per loop thread"},
    {"REDIS_ALLOW_EVICTION", "false", PW_CV_BOOL, 0, PW_NO_BOUNDS, PW_CV_OFF(redis_allow_eviction),
     "true: become ready even though Redis's maxmemory-policy may evict keys (an evicted "
     "post record lets a redelivered post be published twice)"},
    {"POST_RECORD_TTL_S", "7776000", PW_CV_INT, 0, 86400, 315360000, PW_CV_OFF(post_record_ttl_s),
     "how long a post's publication record guards against a second publication"},
    {"PARKED_MAX_PER_ACCOUNT", "10000", PW_CV_INT, 0, 1, 10000000,
     PW_CV_OFF(parked_max_per_account),
     "parked posts one account may hold; past it a post is answered failed"},
    {"TOKEN_SWEEP_INTERVAL_S", "60", PW_CV_INT, 0, 1, 86400, PW_CV_OFF(token_sweep_interval_s),
     "how often each worker sweeps for tokens to refresh and parked posts to replay"},
    {"PUBLISH_QUOTA_RECHECK_S", "900", PW_CV_INT, 0, 1, 86400, PW_CV_OFF(quota_recheck_s),
     "how long posts wait before the API's count of a used-up quota is read again"},
    {"TOKEN_VERIFY_MAX_PER_S", "5", PW_CV_INT, 0, 1, 1000, PW_CV_OFF(token_verify_max_per_s),
     "verifications the whole fleet starts per second (2 API calls each)"},
};
const size_t pw_config_var_count = PW_ARRAY_SIZE(pw_config_vars);

/* Properties whose value the worker's guarantees depend on. */
static const char *const pw_config_rdkafka_reserved[] = {
    "bootstrap.servers",  "group.id",           "enable.auto.offset.store",
    "enable.auto.commit", "enable.idempotence", "enable.random.seed",
};

/* Properties an operator may set, but only to a value that keeps the
 * guarantees; allowed is a "|"-separated list of values (case-insensitive),
 * "" allows none; shown is how the message names them. */
typedef struct {
    const char *prop;
    const char *allowed;
    const char *shown;
    const char *why;
} pw_config_rdkafka_guard_t;

static const pw_config_rdkafka_guard_t pw_config_rdkafka_guarded[] = {
    {"partition.assignment.strategy", "cooperative-sticky", "cooperative-sticky",
     "the worker hands partitions over incrementally; an eager assignor takes every partition "
     "away on each rebalance, posts in flight included"},
    {"transactional.id", "", "",
     "the worker's producer is idempotent, not transactional: it never opens a transaction, "
     "so no result would be delivered"},
    {"acks", "all|-1", "all (or -1)",
     "a result must be on every in-sync replica before its offset is committed"},
    {"request.required.acks", "all|-1", "all (or -1)",
     "a result must be on every in-sync replica before its offset is committed"},
    {"auto.offset.reset", "earliest|smallest|beginning", "earliest (or smallest, beginning)",
     "a new group starts from the earliest offset, so no request produced before the first "
     "worker is skipped"},
};

/* Appends one problem line to errstr. */
static void pw_config_problem(char *errstr, size_t errstr_size, const char *fmt, ...)
    PW_PRINTF(3, 4);
static void pw_config_problem(char *errstr, size_t errstr_size, const char *fmt, ...)
{
    size_t used = strnlen(errstr, errstr_size);
    if (used + 1 >= errstr_size)
        return;
    if (used > 0)
        errstr[used++] = '\n';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errstr + used, errstr_size - used, fmt, ap);
    va_end(ap);
}

static int pw_config_check_addr(const char *value)
{
    const char *colon = strrchr(value, ':');
    if (!colon || colon == value)
        return -1;
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    return (errno || *end || colon[1] == '\0' || port < 1 || port > 65535) ? -1 : 0;
}

static int pw_config_parse_bool(const char *value, bool *out)
{
    static const char *const yes[] = {"true", "1", "yes"}, *const no[] = {"false", "0", "no"};
    for (size_t i = 0; i < PW_ARRAY_SIZE(yes); i++) {
        if (strcasecmp(value, yes[i]) == 0 || strcasecmp(value, no[i]) == 0) {
            *out = strcasecmp(value, yes[i]) == 0;
            return 0;
        }
    }
    return -1;
}

/* errstr gets the reason of a REDIS_URL the parser refuses (never the URL,
 * which may hold a password). */
static int pw_config_check_url(const char *name, const char *value, char *errstr,
                               size_t errstr_size)
{
    if (strcmp(name, "REDIS_URL") == 0) {
        /* The parser `run` uses (it opens no connection): both agree. */
        pw_redis_t *redis = pw_redis_new(value, 1, 1000, errstr, errstr_size);
        int ok = redis != NULL;
        pw_redis_destroy(redis);
        return ok ? 0 : -1;
    }
    if (strncmp(value, "http://", 7) == 0 && value[7])
        return 0;
    return strncmp(value, "https://", 8) == 0 && value[8] ? 0 : -1;
}

/* An integer (into a long) or a boolean (into a bool); -1 after noting a problem. */
static int pw_config_set_scalar(void *field, const pw_config_var_t *var, const char *value,
                                char *errstr, size_t errstr_size)
{
    if (var->kind == PW_CV_BOOL) {
        if (pw_config_parse_bool(value, (bool *)field) == 0)
            return 0;
        pw_config_problem(errstr, errstr_size, "%s: \"%s\" is not true or false", var->name, value);
        return -1;
    }
    char *end;
    errno = 0;
    long n = strtol(value, &end, 10);
    if (errno || *end || !*value || n < var->min || n > var->max) {
        pw_config_problem(errstr, errstr_size, "%s: \"%s\" is not an integer in %ld..%ld",
                          var->name, value, var->min, var->max);
        return -1;
    }
    *(long *)field = n;
    return 0;
}

/* Checks and stores one variable's value; returns -1 after noting a problem. */
static int pw_config_set(pw_config_t *conf, const pw_config_var_t *var, const char *value,
                         char *errstr, size_t errstr_size)
{
    void *field = (char *)conf + var->offset;
    switch (var->kind) {
    case PW_CV_INT:
    case PW_CV_BOOL:
        return pw_config_set_scalar(field, var, value, errstr, errstr_size);
    case PW_CV_SECRET:
        *(pw_secret_t **)field = pw_secret_new(value, strlen(value));
        return 0;
    case PW_CV_URL: {
        char why[512] = "";
        if (pw_config_check_url(var->name, value, why, sizeof(why)) == -1) {
            /* The value may carry a password (redis://:secret@host): not echoed. */
            if (why[0])
                pw_config_problem(errstr, errstr_size, "%s", why);
            else
                pw_config_problem(errstr, errstr_size, "%s: not an http(s):// URL", var->name);
            return -1;
        }
        break;
    }
    case PW_CV_FILE:
        if (access(value, R_OK) != 0) {
            pw_config_problem(errstr, errstr_size, "%s: cannot read %s: %s", var->name, value,
                              strerror(errno));
            return -1;
        }
        break;
    case PW_CV_ADDR:
        if (pw_config_check_addr(value) == -1) {
            pw_config_problem(errstr, errstr_size, "%s: \"%s\" is not host:port", var->name, value);
            return -1;
        }
        break;
    case PW_CV_LEVEL: {
        pw_log_level_t level;
        if (pw_log_level_parse(value, &level) == -1) {
            pw_config_problem(errstr, errstr_size,
                              "%s: \"%s\" is not one of debug, info, warn, error", var->name,
                              value);
            return -1;
        }
        break;
    }
    case PW_CV_STRING:
        break;
    }
    *(char **)field = pw_strdup(value);
    return 0;
}

/* 1 when value is one of the "|"-separated allowed values. */
static int pw_config_value_allowed(const char *allowed, const char *value)
{
    size_t len = strlen(value);
    for (const char *p = allowed; *p;) {
        size_t n = strcspn(p, "|");
        if (n == len && strncasecmp(p, value, n) == 0)
            return 1;
        p += n + (p[n] == '|');
    }
    return 0;
}

/* Refuses a reserved property or a guarded one set to a value that breaks a
 * guarantee; var is "RDKAFKA_NAME=value" for the message. */
static int pw_config_rdkafka_check(const char *prop, const char *value, const char *var,
                                   int var_len, char *errstr, size_t errstr_size)
{
    for (size_t i = 0; i < PW_ARRAY_SIZE(pw_config_rdkafka_reserved); i++) {
        if (strcmp(prop, pw_config_rdkafka_reserved[i]) == 0) {
            pw_config_problem(errstr, errstr_size,
                              "%.*s: %s is set by the worker and cannot be overridden", var_len,
                              var, prop);
            return -1;
        }
    }
    for (size_t i = 0; i < PW_ARRAY_SIZE(pw_config_rdkafka_guarded); i++) {
        const pw_config_rdkafka_guard_t *g = &pw_config_rdkafka_guarded[i];
        if (strcmp(prop, g->prop) != 0 || pw_config_value_allowed(g->allowed, value))
            continue;
        if (g->allowed[0])
            pw_config_problem(errstr, errstr_size, "%.*s: %s must be %s: %s", var_len, var, prop,
                              g->shown, g->why);
        else
            pw_config_problem(errstr, errstr_size, "%.*s: %s cannot be set: %s", var_len, var, prop,
                              g->why);
        return -1;
    }
    return 0;
}

/* RDKAFKA_SECURITY_PROTOCOL=ssl -> "security.protocol" = "ssl", checked by librdkafka. */
static int pw_config_load_rdkafka(pw_config_t *conf, char *const *environ_list, char *errstr,
                                  size_t errstr_size)
{
    int rc = 0;
    rd_kafka_conf_t *scratch = rd_kafka_conf_new();
    for (char *const *ep = environ_list; ep && *ep; ep++) {
        if (strncmp(*ep, "RDKAFKA_", 8) != 0)
            continue;
        const char *eq = strchr(*ep, '=');
        if (!eq || eq == *ep + 8)
            continue;
        char *prop = pw_strndup(*ep + 8, (size_t)(eq - *ep - 8));
        for (char *c = prop; *c; c++)
            *c = *c == '_' ? '.' : (char)tolower((unsigned char)*c);
        const char *value = eq + 1;
        char kerr[256];
        if (pw_config_rdkafka_check(prop, value, *ep, (int)(eq - *ep), errstr, errstr_size) == -1) {
            rc = -1;
        } else if (rd_kafka_conf_set(scratch, prop, value, kerr, sizeof(kerr)) !=
                   RD_KAFKA_CONF_OK) {
            pw_config_problem(errstr, errstr_size, "%.*s: %s", (int)(eq - *ep), *ep, kerr);
            rc = -1;
        } else {
            conf->rdkafka_props =
                pw_realloc(conf->rdkafka_props, sizeof(char *) * (conf->rdkafka_prop_count + 2));
            conf->rdkafka_props[conf->rdkafka_prop_count++] = prop;
            conf->rdkafka_props[conf->rdkafka_prop_count++] = pw_strdup(value);
            prop = NULL;
        }
        free(prop);
    }
    rd_kafka_conf_destroy(scratch);
    return rc;
}

/* The REDIS_TLS_* files go with a rediss:// URL, and the certificate with
 * its key: a TLS setting that would be ignored is a mistake to report, not
 * a cleartext connection to make. */
static int pw_config_check_redis_tls(const pw_config_t *conf, char *errstr, size_t errstr_size)
{
    int rc = 0;
    bool tls = conf->redis_url && strncmp(conf->redis_url, "rediss://", 9) == 0;
    const char *set = conf->redis_tls_ca_file     ? "REDIS_TLS_CA_FILE"
                      : conf->redis_tls_cert_file ? "REDIS_TLS_CERT_FILE"
                      : conf->redis_tls_key_file  ? "REDIS_TLS_KEY_FILE"
                                                  : NULL;
    if (set && conf->redis_url && !tls) {
        pw_config_problem(errstr, errstr_size,
                          "%s: set, but REDIS_URL is not a rediss:// (TLS) URL", set);
        rc = -1;
    }
    if (!conf->redis_tls_cert_file != !conf->redis_tls_key_file) {
        pw_config_problem(errstr, errstr_size,
                          "REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE go together: set both");
        rc = -1;
    }
    return rc;
}

pw_config_t *pw_config_load(const char *(*getenv_fn)(const char *name), char *const *environ_list,
                            pw_config_need_t needs, char *errstr, size_t errstr_size)
{
    pw_config_t *conf = pw_calloc(1, sizeof(*conf));
    int failed = 0;
    errstr[0] = '\0';

    for (size_t i = 0; i < pw_config_var_count; i++) {
        const pw_config_var_t *var = &pw_config_vars[i];
        const char *value = getenv_fn(var->name);
        if (value && !*value)
            value = NULL; /* an empty variable means "not set", as in most tools */
        if (!value && (var->required_by & needs)) {
            pw_config_problem(errstr, errstr_size, "%s: required but not set", var->name);
            failed = 1;
            continue;
        }
        if (!value)
            value = var->defval;
        if (value && pw_config_set(conf, var, value, errstr, errstr_size) == -1)
            failed = 1;
    }
    if (!conf->worker_id) {
        char host[256] = "publish-worker";
        if (gethostname(host, sizeof(host)) == 0)
            host[sizeof(host) - 1] = '\0';
        conf->worker_id = pw_strdup(host);
    }
    if (pw_config_load_rdkafka(conf, environ_list, errstr, errstr_size) == -1)
        failed = 1;
    if (pw_config_check_redis_tls(conf, errstr, errstr_size) == -1)
        failed = 1;

    if (failed) {
        pw_config_destroy(conf);
        return NULL;
    }
    return conf;
}

void pw_config_destroy(pw_config_t *conf)
{
    if (!conf)
        return;
    for (size_t i = 0; i < pw_config_var_count; i++) {
        void *field = (char *)conf + pw_config_vars[i].offset;
        if (pw_config_vars[i].kind == PW_CV_SECRET)
            pw_secret_destroy(*(pw_secret_t **)field);
        else if (pw_config_vars[i].kind != PW_CV_INT && pw_config_vars[i].kind != PW_CV_BOOL)
            free(*(char **)field);
    }
    for (size_t i = 0; i < conf->rdkafka_prop_count; i++)
        free(conf->rdkafka_props[i]);
    free(conf->rdkafka_props);
    free(conf);
}

void pw_config_print_help(FILE *out)
{
    fprintf(out, "Environment variables:\n");
    for (size_t i = 0; i < pw_config_var_count; i++) {
        const pw_config_var_t *var = &pw_config_vars[i];
        fprintf(out, "  %-28s %s", var->name, var->description);
        if (var->required_by)
            fprintf(out, " (required)");
        else if (var->defval)
            fprintf(out, " (default: %s)", var->defval);
        fputc('\n', out);
    }
    fprintf(out,
            "  %-28s any librdkafka property: RDKAFKA_SECURITY_PROTOCOL=ssl sets "
            "security.protocol\n",
            "RDKAFKA_<NAME>");
}
