/* Redis access: URL parsing, a bounded pool of hiredis connections, TLS,
 * scripts, and the error replies that report the server's state. */
#include "redis.h"

#include <arpa/inet.h>
#include <hiredis/async.h>
#include <netdb.h>
#include <openssl/sha.h>
#ifdef PW_REDIS_TLS
#include <hiredis/hiredis_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "fiber.h"
#include "log.h"
#include "metrics.h"
#include "secret.h"

typedef struct pw_redis_async_s pw_redis_async_t;

struct pw_redis_s {
    char *host;
    int port;
    int db;
    bool tls;              /* rediss:// */
    char *user;            /* NULL: AUTH with the password alone */
    pw_secret_t *password; /* NULL: no AUTH */
    struct timeval timeout;
    char describe[300];

    pthread_mutex_t lock;
    pthread_cond_t cond;
    redisContext **idle; /* open connections not in use */
    int idle_count;
    int available; /* slots not handed out: idle ones plus ones not yet opened */

    /* Fibers: one pipelined connection per loop, touched only by that loop's
     * thread; freed when the loop ends. */
    pw_redis_async_t *async[PW_LOOP_MAX];

    /* Server-state error replies, from any thread. */
    atomic_ulong server_errors;
    atomic_int server_error_latest; /* a pw_redis_server_error_t */
    atomic_int_least64_t server_error_logged_ms[PW_REDIS_SERVER_COUNT];
};

/* A server-state error is logged at most this often per kind (it is counted
 * every time). */
#define PW_REDIS_ERROR_LOG_EVERY_MS 10000

static pthread_mutex_t pw_redis_script_lock = PTHREAD_MUTEX_INITIALIZER;

#define PW_REDIS_STR_(x) #x
#define PW_REDIS_STR(x) PW_REDIS_STR_(x)
/* Why a build without TLS refuses rediss://, and what to do. */
#define PW_REDIS_NO_TLS                                                                            \
    "this build's hiredis " PW_REDIS_STR(HIREDIS_MAJOR) "." PW_REDIS_STR(                          \
        HIREDIS_MINOR) " has no TLS; build on Debian 13 (hiredis 1.2) or with hiredis >= 1.0 "     \
                       "and its hiredis_ssl library"

/* ---- TLS (rediss://) ----
 * One SSL_CTX for the process (CA, client certificate), made by
 * pw_redis_tls_init() or, failing that, on first use with the system's CA
 * store. Each connection gets its own SSL with the URL's host name to verify
 * (hiredis_ssl sets SNI but checks no name) and hands it to hiredis, which
 * then does the handshake (an async connection's on the loop, as any I/O).
 * Verification failures are kept per thread by the verify callback, so that
 * a refused connection can say why (hiredis reports only an I/O error). */
#ifdef PW_REDIS_TLS
static pthread_mutex_t pw_redis_tls_lock = PTHREAD_MUTEX_INITIALIZER;
static SSL_CTX *pw_redis_tls_ctx;
static const char *pw_redis_tls_ca_name = "the system's store"; /* for messages */
static _Thread_local char pw_redis_tls_verify_error[160];

static int pw_redis_tls_on_verify(int ok, X509_STORE_CTX *store)
{
    if (!ok && !pw_redis_tls_verify_error[0])
        snprintf(pw_redis_tls_verify_error, sizeof(pw_redis_tls_verify_error), "%s",
                 X509_verify_cert_error_string(X509_STORE_CTX_get_error(store)));
    return ok;
}

static void pw_redis_tls_ssl_error(char *errstr, size_t errstr_size, const char *what,
                                   const char *file)
{
    char reason[256];
    ERR_error_string_n(ERR_get_error(), reason, sizeof(reason));
    ERR_clear_error();
    pw_errstr_set(errstr, errstr_size, "%s: cannot use %s: %s", what, file, reason);
}

static SSL_CTX *pw_redis_tls_ctx_new(const char *ca_file, const char *cert_file,
                                     const char *key_file, char *errstr, size_t errstr_size)
{
    redisInitOpenSSL();
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        pw_abort("SSL_CTX_new failed: out of memory");
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, pw_redis_tls_on_verify);
    if (ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1
                : SSL_CTX_set_default_verify_paths(ctx) != 1) {
        pw_redis_tls_ssl_error(errstr, errstr_size, "REDIS_TLS_CA_FILE",
                               ca_file ? ca_file : "the system's CA store");
        goto fail;
    }
    if (cert_file && SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        pw_redis_tls_ssl_error(errstr, errstr_size, "REDIS_TLS_CERT_FILE", cert_file);
        goto fail;
    }
    if (key_file && (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1 ||
                     SSL_CTX_check_private_key(ctx) != 1)) {
        pw_redis_tls_ssl_error(errstr, errstr_size, "REDIS_TLS_KEY_FILE", key_file);
        goto fail;
    }
    return ctx;

fail:
    SSL_CTX_free(ctx);
    return NULL;
}

/* What the verify callback found on this thread, as a message suffix ("" if
 * nothing). */
static const char *pw_redis_tls_why(void)
{
    static _Thread_local char why[400];
    if (!pw_redis_tls_verify_error[0])
        return "";
    snprintf(why, sizeof(why),
             " (the server's certificate was refused: %s; it must be valid for the host name "
             "in REDIS_URL and signed by a CA in %s)",
             pw_redis_tls_verify_error, pw_redis_tls_ca_name);
    return why;
}

/* A connection's SSL, set to verify the URL's host (a name or an address). */
static SSL *pw_redis_tls_ssl_new(const pw_redis_t *redis, char *errstr, size_t errstr_size)
{
    pthread_mutex_lock(&pw_redis_tls_lock);
    if (!pw_redis_tls_ctx)
        pw_redis_tls_ctx = pw_redis_tls_ctx_new(NULL, NULL, NULL, errstr, errstr_size);
    SSL *ssl = pw_redis_tls_ctx ? SSL_new(pw_redis_tls_ctx) : NULL;
    pthread_mutex_unlock(&pw_redis_tls_lock);
    if (!ssl)
        return NULL;
    X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
    struct in6_addr scratch;
    bool is_ip = inet_pton(AF_INET, redis->host, &scratch) == 1 ||
                 inet_pton(AF_INET6, redis->host, &scratch) == 1;
    int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, redis->host)
                   : X509_VERIFY_PARAM_set1_host(param, redis->host, 0) &&
                         SSL_set_tlsext_host_name(ssl, redis->host);
    if (!ok) {
        pw_errstr_set(errstr, errstr_size, "redis %s: cannot set the host name to verify",
                      redis->describe);
        SSL_free(ssl);
        return NULL;
    }
    pw_redis_tls_verify_error[0] = '\0';
    return ssl;
}

/* Starts TLS on a connected context; hiredis owns ssl once this succeeds. */
static int pw_redis_tls_start(const pw_redis_t *redis, redisContext *c, char *errstr,
                              size_t errstr_size)
{
    SSL *ssl = pw_redis_tls_ssl_new(redis, errstr, errstr_size);
    if (!ssl)
        return -1;
    if (redisInitiateSSL(c, ssl) != REDIS_OK) {
        SSL_free(ssl);
        pw_errstr_set(errstr, errstr_size, "redis %s: TLS handshake failed: %s%s", redis->describe,
                      c->errstr, pw_redis_tls_why());
        return -1;
    }
    return 0;
}
#endif

bool pw_redis_tls_supported(void)
{
#ifdef PW_REDIS_TLS
    return true;
#else
    return false;
#endif
}

int pw_redis_tls_init(const char *ca_file, const char *cert_file, const char *key_file,
                      char *errstr, size_t errstr_size)
{
#ifdef PW_REDIS_TLS
    SSL_CTX *ctx = pw_redis_tls_ctx_new(ca_file, cert_file, key_file, errstr, errstr_size);
    if (!ctx)
        return -1;
    pthread_mutex_lock(&pw_redis_tls_lock);
    SSL_CTX_free(pw_redis_tls_ctx);
    pw_redis_tls_ctx = ctx;
    pw_redis_tls_ca_name = ca_file ? "REDIS_TLS_CA_FILE" : "the system's store";
    pthread_mutex_unlock(&pw_redis_tls_lock);
    return 0;
#else
    (void)cert_file;
    (void)key_file;
    if (ca_file || cert_file) {
        pw_errstr_set(errstr, errstr_size, "%s: %s",
                      ca_file ? "REDIS_TLS_CA_FILE" : "REDIS_TLS_CERT_FILE", PW_REDIS_NO_TLS);
        return -1;
    }
    return 0;
#endif
}

/* Splits redis[s]://[[user]:password@]host[:port][/db]. */
static int pw_redis_parse_url(pw_redis_t *redis, const char *url, char *errstr, size_t errstr_size)
{
    if (strncmp(url, "rediss://", 9) == 0) {
#ifndef PW_REDIS_TLS
        pw_errstr_set(errstr, errstr_size, "REDIS_URL: rediss:// (TLS): %s", PW_REDIS_NO_TLS);
        return -1;
#endif
        redis->tls = true;
    } else if (strncmp(url, "redis://", 8) != 0) {
        pw_errstr_set(errstr, errstr_size, "REDIS_URL: must start with redis:// or rediss://");
        return -1;
    }
    const char *p = url + (redis->tls ? 9 : 8);
    const char *at = strrchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (!colon) {
            pw_errstr_set(errstr, errstr_size, "REDIS_URL: credentials must be [user]:password");
            return -1;
        }
        if (colon > p)
            redis->user = pw_strndup(p, (size_t)(colon - p));
        redis->password = pw_secret_new(colon + 1, (size_t)(at - colon - 1));
        p = at + 1;
    }
    const char *slash = strchr(p, '/');
    const char *hostend = slash ? slash : p + strlen(p);
    const char *colon = memchr(p, ':', (size_t)(hostend - p));
    redis->host = pw_strndup(p, (size_t)((colon ? colon : hostend) - p));
    redis->port = 6379;
    char *end;
    if (colon) {
        long port = strtol(colon + 1, &end, 10);
        if (end != hostend || port < 1 || port > 65535) {
            pw_errstr_set(errstr, errstr_size, "REDIS_URL: bad port");
            return -1;
        }
        redis->port = (int)port;
    }
    if (slash && slash[1]) {
        long db = strtol(slash + 1, &end, 10);
        if (*end || db < 0 || db > 65535) {
            pw_errstr_set(errstr, errstr_size, "REDIS_URL: bad database number");
            return -1;
        }
        redis->db = (int)db;
    }
    if (!redis->host[0]) {
        pw_errstr_set(errstr, errstr_size, "REDIS_URL: no host");
        return -1;
    }
    return 0;
}

pw_redis_t *pw_redis_new(const char *url, int pool_size, int timeout_ms, char *errstr,
                         size_t errstr_size)
{
    pw_redis_t *redis = pw_calloc(1, sizeof(*redis));
    if (pw_redis_parse_url(redis, url, errstr, errstr_size) == -1) {
        pw_redis_destroy(redis);
        return NULL;
    }
    redis->timeout.tv_sec = timeout_ms / 1000;
    redis->timeout.tv_usec = (timeout_ms % 1000) * 1000;
    snprintf(redis->describe, sizeof(redis->describe), "%s:%d/%d%s", redis->host, redis->port,
             redis->db, redis->tls ? " (TLS)" : "");
    pthread_mutex_init(&redis->lock, NULL);
    pthread_cond_init(&redis->cond, NULL);
    redis->available = pool_size;
    redis->idle = pw_calloc((size_t)pool_size, sizeof(redisContext *));
    return redis;
}

void pw_redis_destroy(pw_redis_t *redis)
{
    if (!redis)
        return;
    if (redis->idle) {
        for (int i = 0; i < redis->idle_count; i++)
            redisFree(redis->idle[i]);
        free(redis->idle);
        pthread_mutex_destroy(&redis->lock);
        pthread_cond_destroy(&redis->cond);
    }
    free(redis->host);
    free(redis->user);
    pw_secret_destroy(redis->password);
    free(redis);
}

const char *pw_redis_describe(const pw_redis_t *redis)
{
    return redis->describe;
}

/* ---- server-state error replies ---- */

static const struct {
    const char *code; /* the reply's first word */
    const char *name; /* the metric's label */
    const char *fix;
} pw_redis_server_errors_tab[PW_REDIS_SERVER_COUNT] = {
    [PW_REDIS_SERVER_READONLY] = {"READONLY", "readonly",
                                  "REDIS_URL reaches a read-only replica (after a failover: the "
                                  "demoted primary); point it at the primary through a name that "
                                  "follows failovers: the worker reconnects, resolving it again, "
                                  "after each such error"},
    [PW_REDIS_SERVER_MASTERDOWN] = {"MASTERDOWN", "masterdown",
                                    "REDIS_URL reaches a replica that lost its primary; point it "
                                    "at the primary through a name that follows failovers"},
    [PW_REDIS_SERVER_OOM] = {"OOM", "oom",
                             "Redis is at maxmemory and may not evict (as it must not): raise "
                             "maxmemory or free memory"},
    [PW_REDIS_SERVER_MISCONF] = {"MISCONF", "misconf",
                                 "Redis refuses writes because it cannot save its snapshot "
                                 "(stop-writes-on-bgsave-error): fix its disk or permissions, "
                                 "see the Redis log"},
    [PW_REDIS_SERVER_LOADING] = {"LOADING", "loading",
                                 "Redis is loading its data after a restart or a full "
                                 "resynchronisation; it answers when done"},
    [PW_REDIS_SERVER_NOREPLICAS] = {"NOREPLICAS", "noreplicas",
                                    "fewer replicas are connected than min-replicas-to-write "
                                    "asks: bring them back or lower that setting"},
    [PW_REDIS_SERVER_BUSY] = {"BUSY", "busy",
                              "a script has run past busy-reply-threshold (lua-time-limit) and "
                              "blocks Redis: SCRIPT KILL it or wait"},
};

pw_redis_server_error_t pw_redis_server_error_of(const char *reply_str)
{
    const char *p = reply_str ? reply_str : "";
    /* Redis 6 wraps a script's failed call: "ERR Error running script (call
     * to f_...): @user_script:1: ... -READONLY You can't write ...". */
    if (strncmp(p, "ERR Error running script", 24) == 0) {
        const char *dash = strstr(p, ": -");
        p = dash ? dash + 3 : "";
    }
    for (int kind = 1; kind < PW_REDIS_SERVER_COUNT; kind++) {
        const char *code = pw_redis_server_errors_tab[kind].code;
        size_t n = strlen(code);
        /* A whole word: BUSYKEY and BUSYGROUP are a command's own errors. */
        if (strncmp(p, code, n) == 0 && (p[n] == ' ' || p[n] == '\0'))
            return (pw_redis_server_error_t)kind;
    }
    return PW_REDIS_SERVER_OK;
}

const char *pw_redis_server_error_name(pw_redis_server_error_t kind)
{
    return kind > 0 && kind < PW_REDIS_SERVER_COUNT ? pw_redis_server_errors_tab[kind].name : NULL;
}

const char *pw_redis_server_error_fix(pw_redis_server_error_t kind)
{
    return kind > 0 && kind < PW_REDIS_SERVER_COUNT ? pw_redis_server_errors_tab[kind].fix : NULL;
}

unsigned long pw_redis_server_errors(pw_redis_t *redis, pw_redis_server_error_t *latest)
{
    if (latest)
        *latest = (pw_redis_server_error_t)atomic_load(&redis->server_error_latest);
    return atomic_load(&redis->server_errors);
}

/* Counts a server-state error reply and logs it, at most every
 * PW_REDIS_ERROR_LOG_EVERY_MS per kind. */
static void pw_redis_server_error_note(pw_redis_t *redis, pw_redis_server_error_t kind,
                                       const char *cmd, const char *reply_str)
{
    atomic_store(&redis->server_error_latest, (int)kind);
    atomic_fetch_add(&redis->server_errors, 1);
    pw_metrics_redis_error(pw_redis_server_error_name(kind));
    int64_t now = pw_mono_ms();
    int64_t last = atomic_load(&redis->server_error_logged_ms[kind]);
    if (last != 0 && now - last < PW_REDIS_ERROR_LOG_EVERY_MS)
        return;
    if (!atomic_compare_exchange_strong(&redis->server_error_logged_ms[kind], &last, now))
        return; /* another thread logs it */
    pw_log_error("redis refused a command for its own state; reconnecting",
                 PW_F_STR("redis", redis->describe),
                 PW_F_STR("kind", pw_redis_server_error_name(kind)), PW_F_STR("command", cmd),
                 PW_F_STR("error", reply_str), PW_F_STR("fix", pw_redis_server_error_fix(kind)));
}

/* An error reply sets errstr, is noted when it reports the server's state,
 * and becomes NULL unless the caller keeps error replies. */
static redisReply *pw_redis_reply_checked(pw_redis_t *redis, redisReply *reply, const char *cmd,
                                          bool keep_errors, char *errstr, size_t errstr_size)
{
    if (reply->type != REDIS_REPLY_ERROR)
        return reply;
    pw_errstr_set(errstr, errstr_size, "redis %s: %s: %s", redis->describe, cmd, reply->str);
    pw_redis_server_error_t kind = pw_redis_server_error_of(reply->str);
    if (kind != PW_REDIS_SERVER_OK)
        pw_redis_server_error_note(redis, kind, cmd, reply->str);
    if (keep_errors)
        return reply;
    freeReplyObject(reply);
    return NULL;
}

static bool pw_redis_reply_is_server_error(const redisReply *reply)
{
    return reply && reply->type == REDIS_REPLY_ERROR &&
           pw_redis_server_error_of(reply->str) != PW_REDIS_SERVER_OK;
}

/* One command as a caller gave it. */
typedef struct {
    int argc;
    const char **argv;
    const size_t *argvlen; /* NULL: NUL-terminated strings */
    bool keep_errors;      /* an error reply is returned, not turned into NULL */
} pw_redis_cmd_t;

/* A command a new connection runs before any other. */
typedef struct {
    int argc;
    const char *argv[3];
} pw_redis_setup_t;

/* AUTH and SELECT, as the URL asks; argv points into redis and into db,
 * which must outlive cmds. @returns how many (0..2) were filled. */
static int pw_redis_setup_commands(const pw_redis_t *redis, char db[16], pw_redis_setup_t cmds[2])
{
    int n = 0;
    if (redis->password && redis->user)
        cmds[n++] = (pw_redis_setup_t){3, {"AUTH", redis->user, pw_secret_reveal(redis->password)}};
    else if (redis->password)
        cmds[n++] = (pw_redis_setup_t){2, {"AUTH", pw_secret_reveal(redis->password)}};
    if (redis->db != 0) {
        snprintf(db, 16, "%d", redis->db);
        cmds[n++] = (pw_redis_setup_t){2, {"SELECT", db}};
    }
    return n;
}

/* Expects a simple "OK"-like reply to a set-up command. */
static int pw_redis_setup_cmd(pw_redis_t *redis, redisContext *c, pw_redis_setup_t *cmd,
                              char *errstr, size_t errstr_size)
{
    redisReply *reply = redisCommandArgv(c, cmd->argc, cmd->argv, NULL);
    int rc = reply && reply->type != REDIS_REPLY_ERROR ? 0 : -1;
    if (rc == -1)
        pw_errstr_set(errstr, errstr_size, "redis %s: %s failed: %s", redis->describe, cmd->argv[0],
                      reply ? reply->str : c->errstr);
    if (reply)
        freeReplyObject(reply);
    return rc;
}

static redisContext *pw_redis_connect(pw_redis_t *redis, char *errstr, size_t errstr_size)
{
    redisContext *c = redisConnectWithTimeout(redis->host, redis->port, redis->timeout);
    if (!c || c->err) {
        pw_errstr_set(errstr, errstr_size, "redis %s: cannot connect: %s", redis->describe,
                      c ? c->errstr : "out of memory");
        if (c)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, redis->timeout);
#ifdef PW_REDIS_TLS
    if (redis->tls && pw_redis_tls_start(redis, c, errstr, errstr_size) == -1)
        goto fail;
#endif
    char db[16];
    pw_redis_setup_t cmds[2];
    int n = pw_redis_setup_commands(redis, db, cmds);
    for (int i = 0; i < n; i++)
        if (pw_redis_setup_cmd(redis, c, &cmds[i], errstr, errstr_size) == -1)
            goto fail;
    return c;

fail:
    redisFree(c);
    return NULL;
}

/* Takes a connection out of the pool, opening one if a slot is free. */
static redisContext *pw_redis_acquire(pw_redis_t *redis, char *errstr, size_t errstr_size)
{
    pthread_mutex_lock(&redis->lock);
    while (redis->available == 0)
        pthread_cond_wait(&redis->cond, &redis->lock);
    redis->available--;
    redisContext *c = redis->idle_count > 0 ? redis->idle[--redis->idle_count] : NULL;
    pthread_mutex_unlock(&redis->lock);
    if (c)
        return c;
    /* Connect outside the lock: others may use idle connections meanwhile. */
    c = pw_redis_connect(redis, errstr, errstr_size);
    if (!c) {
        pthread_mutex_lock(&redis->lock);
        redis->available++;
        pthread_cond_signal(&redis->cond);
        pthread_mutex_unlock(&redis->lock);
    }
    return c;
}

/* Returns a connection; a broken one, or one to drop, is closed and its
 * slot freed. */
static void pw_redis_release(pw_redis_t *redis, redisContext *c, bool drop)
{
    if (c->err || drop) {
        redisFree(c);
        c = NULL;
    }
    pthread_mutex_lock(&redis->lock);
    if (c)
        redis->idle[redis->idle_count++] = c;
    redis->available++;
    pthread_cond_signal(&redis->cond);
    pthread_mutex_unlock(&redis->lock);
}

/* ---- pipelines (redis.h) ---- */

struct pw_redis_pipe_s {
    pw_redis_t *redis;
    char **cmds; /* formatted with redisFormatCommandArgv() */
    size_t *lens;
    redisReply **replies; /* after an execution: one per command */
    size_t count, cap;
    bool executed;
};

pw_redis_pipe_t *pw_redis_pipe_new(pw_redis_t *redis)
{
    pw_redis_pipe_t *pipe = pw_calloc(1, sizeof(*pipe));
    pipe->redis = redis;
    return pipe;
}

/* Forgets the commands and replies of the last execution. */
static void pw_redis_pipe_clear(pw_redis_pipe_t *pipe)
{
    for (size_t i = 0; i < pipe->count; i++) {
        redisFreeCommand(pipe->cmds[i]);
        if (pipe->replies[i])
            freeReplyObject(pipe->replies[i]);
        pipe->replies[i] = NULL;
    }
    pipe->count = 0;
    pipe->executed = false;
}

void pw_redis_pipe_destroy(pw_redis_pipe_t *pipe)
{
    if (!pipe)
        return;
    pw_redis_pipe_clear(pipe);
    free(pipe->cmds);
    free(pipe->lens);
    free(pipe->replies);
    free(pipe);
}

size_t pw_redis_pipe_append(pw_redis_pipe_t *pipe, int argc, const char **argv,
                            const size_t *argvlen)
{
    if (pipe->executed)
        pw_redis_pipe_clear(pipe);
    if (pipe->count == pipe->cap) {
        pipe->cap = pipe->cap ? pipe->cap * 2 : 64;
        pipe->cmds = pw_realloc(pipe->cmds, pipe->cap * sizeof(*pipe->cmds));
        pipe->lens = pw_realloc(pipe->lens, pipe->cap * sizeof(*pipe->lens));
        pipe->replies = pw_realloc(pipe->replies, pipe->cap * sizeof(*pipe->replies));
    }
    char *cmd = NULL;
    long long len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (len < 0)
        pw_abort("redisFormatCommandArgv failed: out of memory");
    pipe->cmds[pipe->count] = cmd;
    pipe->lens[pipe->count] = (size_t)len;
    pipe->replies[pipe->count] = NULL;
    return pipe->count++;
}

size_t pw_redis_pipe_count(const pw_redis_pipe_t *pipe)
{
    return pipe->count;
}

const redisReply *pw_redis_pipe_reply(const pw_redis_pipe_t *pipe, size_t i)
{
    return pipe->executed && i < pipe->count ? pipe->replies[i] : NULL;
}

/* Reads the replies in order; a server-state error reply is noted and makes
 * the connection one to drop. @returns 0, or -1 when the connection failed. */
static int pw_redis_pipe_read(pw_redis_pipe_t *pipe, redisContext *c, bool *drop, char *errstr,
                              size_t errstr_size)
{
    for (size_t i = 0; i < pipe->count; i++) {
        void *r = NULL;
        if (redisGetReply(c, &r) != REDIS_OK || !r) {
            pw_errstr_set(errstr, errstr_size, "redis %s: pipeline: %s", pipe->redis->describe,
                          c->errstr[0] ? c->errstr : "connection lost");
            return -1;
        }
        redisReply *reply = r;
        if (pw_redis_reply_is_server_error(reply)) {
            *drop = true;
            pw_redis_server_error_note(pipe->redis, pw_redis_server_error_of(reply->str),
                                       "pipeline", reply->str);
        }
        pipe->replies[i] = reply;
    }
    return 0;
}

int pw_redis_pipe_exec(pw_redis_pipe_t *pipe, char *errstr, size_t errstr_size)
{
    if (pipe->executed || pipe->count == 0) {
        pipe->executed = true;
        return 0;
    }
    redisContext *c = pw_redis_acquire(pipe->redis, errstr, errstr_size);
    if (!c)
        return -1;
    for (size_t i = 0; i < pipe->count; i++)
        if (redisAppendFormattedCommand(c, pipe->cmds[i], pipe->lens[i]) != REDIS_OK)
            pw_abort("redisAppendFormattedCommand failed: out of memory");
    bool drop = false;
    int rc = pw_redis_pipe_read(pipe, c, &drop, errstr, errstr_size);
    if (rc == -1) {
        for (size_t i = 0; i < pipe->count; i++) {
            if (pipe->replies[i])
                freeReplyObject(pipe->replies[i]);
            pipe->replies[i] = NULL;
        }
        drop = true; /* replies still unread would answer the next caller */
    }
    pw_redis_release(pipe->redis, c, drop);
    pipe->executed = rc == 0;
    return rc;
}

/* ---- commands from fibers: one pipelined async connection per loop ----
 * A fiber queues its command on its loop's connection and waits; replies come
 * back in order and wake their fibers. A command not answered within the
 * timeout drops the connection, failing every command still waiting on it,
 * and the next command reconnects. */

typedef struct pw_redis_wait_s {
    pw_fiber_t *fiber;
    redisReply *reply; /* a copy the caller owns; NULL on failure */
    char error[512];
    bool done;
    int64_t deadline_ms;
    struct pw_redis_wait_s *next;
} pw_redis_wait_t;

struct pw_redis_async_s {
    pw_redis_t *redis;
    pw_loop_t *loop;
    redisAsyncContext *ac; /* NULL: not connected */
    pw_loop_watch_t watch;
    pw_loop_timer_t timer;        /* the oldest waiting command's deadline */
    pw_redis_wait_t *head, *tail; /* waiting commands, in sending order */
    const char *dropped_because;  /* set while we drop the connection */
    bool connecting;              /* AUTH and SELECT not answered yet */
    struct pw_redis_gate_s *gate; /* fibers waiting for them */
    char setup_error[256];        /* why the last connection attempt failed */
};

/* A fiber waiting for the connection to be set up before it sends: commands
 * pipelined behind a failing SELECT would run on the wrong database. */
typedef struct pw_redis_gate_s {
    pw_fiber_t *fiber;
    bool open;
    struct pw_redis_gate_s *next;
} pw_redis_gate_t;

/* hiredis frees a reply when its callback returns: the waiter gets a copy. */
static redisReply *pw_redis_reply_copy(const redisReply *r)
{
    redisReply *copy = pw_calloc(1, sizeof(*copy));
    copy->type = r->type;
    copy->integer = r->integer;
    if (r->str) {
        copy->str = pw_malloc(r->len + 1);
        memcpy(copy->str, r->str, r->len);
        copy->str[r->len] = '\0';
        copy->len = r->len;
    }
    if (r->element) {
        copy->element = pw_calloc(r->elements ? r->elements : 1, sizeof(redisReply *));
        copy->elements = r->elements;
        for (size_t i = 0; i < r->elements; i++)
            copy->element[i] = pw_redis_reply_copy(r->element[i]);
    }
    return copy;
}

static void pw_redis_async_rearm(pw_redis_async_t *ra)
{
    if (ra->head)
        pw_loop_timer_arm(ra->loop, &ra->timer, ra->head->deadline_ms);
    else
        pw_loop_timer_disarm(ra->loop, &ra->timer);
}

/* Why a TLS connection was refused, when its handshake (on this loop's
 * thread) met a certificate it could not verify; "" otherwise. */
static const char *pw_redis_async_tls_why(const pw_redis_async_t *ra)
{
#ifdef PW_REDIS_TLS
    if (ra->redis->tls)
        return pw_redis_tls_why();
#else
    (void)ra;
#endif
    return "";
}

static void pw_redis_async_on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    pw_redis_async_t *ra = ac->data;
    pw_redis_wait_t *w = privdata;
    /* Replies (and the NULLs of a dropped connection) come in sending order. */
    ra->head = w->next;
    if (!ra->head)
        ra->tail = NULL;
    if (r)
        w->reply = pw_redis_reply_copy(r);
    /* Replies already in flight still come; new commands wait for a new
     * connection (hiredis refuses them while it disconnects). */
    if (pw_redis_reply_is_server_error(r))
        redisAsyncDisconnect(ac);
    if (!r)
        snprintf(w->error, sizeof(w->error), "%.100s%.400s",
                 ra->dropped_because ? ra->dropped_because
                 : ac->err           ? ac->errstr
                                     : "connection lost",
                 pw_redis_async_tls_why(ra));
    w->done = true;
    pw_fiber_wake(w->fiber);
    pw_redis_async_rearm(ra);
}

static void pw_redis_async_watch(pw_redis_async_t *ra, uint32_t add, uint32_t remove)
{
    pw_loop_watch_set(ra->loop, &ra->watch, (ra->watch.events | add) & ~remove);
}
static void pw_redis_async_add_read(void *arg)
{
    pw_redis_async_watch(arg, EPOLLIN, 0);
}
static void pw_redis_async_del_read(void *arg)
{
    pw_redis_async_watch(arg, 0, EPOLLIN);
}
static void pw_redis_async_add_write(void *arg)
{
    pw_redis_async_watch(arg, EPOLLOUT, 0);
}
static void pw_redis_async_del_write(void *arg)
{
    pw_redis_async_watch(arg, 0, EPOLLOUT);
}

/* hiredis calls this whenever it frees the context, whatever the reason. */
static void pw_redis_async_cleanup(void *arg)
{
    pw_redis_async_t *ra = arg;
    pw_redis_async_watch(ra, 0, EPOLLIN | EPOLLOUT);
    ra->ac = NULL;
}

static void pw_redis_async_on_ready(void *arg, uint32_t revents)
{
    pw_redis_async_t *ra = arg;
    if (ra->ac && (revents & (EPOLLIN | EPOLLERR | EPOLLHUP)))
        redisAsyncHandleRead(ra->ac);
    if (ra->ac && (revents & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
        redisAsyncHandleWrite(ra->ac);
}

static void pw_redis_async_on_timer(void *arg)
{
    pw_redis_async_t *ra = arg;
    if (!ra->head || ra->head->deadline_ms > pw_mono_ms() || !ra->ac) {
        pw_redis_async_rearm(ra);
        return;
    }
    ra->dropped_because = "timed out";
    redisAsyncFree(ra->ac); /* fails every waiting command */
    ra->dropped_because = NULL;
    pw_redis_async_rearm(ra);
}

/* Sends one command on the connection and waits for its reply. */
static redisReply *pw_redis_async_roundtrip(pw_redis_async_t *ra, pw_fiber_t *fiber,
                                            const pw_redis_cmd_t *cmd, char *errstr,
                                            size_t errstr_size)
{
    pw_redis_t *redis = ra->redis;
    /* On the heap: the connection's list holds it until its reply came. */
    pw_redis_wait_t *w = pw_calloc(1, sizeof(*w));
    w->fiber = fiber;
    w->deadline_ms = pw_mono_ms() + redis->timeout.tv_sec * 1000 + redis->timeout.tv_usec / 1000;
    if (!ra->ac || redisAsyncCommandArgv(ra->ac, pw_redis_async_on_reply, w, cmd->argc, cmd->argv,
                                         cmd->argvlen) != REDIS_OK) {
        pw_errstr_set(errstr, errstr_size, "redis %s: %s: connection lost", redis->describe,
                      cmd->argv[0]);
        free(w);
        return NULL;
    }
    if (ra->tail)
        ra->tail->next = w;
    else
        ra->head = w;
    ra->tail = w;
    if (ra->head == w)
        pw_redis_async_rearm(ra);
    while (!w->done)
        pw_fiber_wait();
    redisReply *reply = w->reply;
    if (!reply)
        pw_errstr_set(errstr, errstr_size, "redis %s: %s: %s", redis->describe, cmd->argv[0],
                      w->error);
    else
        reply = pw_redis_reply_checked(redis, reply, cmd->argv[0], cmd->keep_errors, errstr,
                                       errstr_size);
    free(w);
    return reply;
}

typedef struct {
    const char *host;
    char ip[INET6_ADDRSTRLEN];
    int rc; /* getaddrinfo()'s */
} pw_redis_resolve_t;

static void pw_redis_resolve(void *arg)
{
    pw_redis_resolve_t *r = arg;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    r->rc = getaddrinfo(r->host, NULL, &hints, &res);
    if (r->rc != 0)
        return;
    const void *addr = res->ai_family == AF_INET6
                           ? (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr
                           : (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr;
    inet_ntop(res->ai_family, addr, r->ip, sizeof(r->ip));
    freeaddrinfo(res);
}

static int pw_redis_async_setup(pw_redis_async_t *ra, pw_fiber_t *fiber, pw_redis_setup_t *setup)
{
    char errstr[256];
    pw_redis_cmd_t cmd = {.argc = setup->argc, .argv = setup->argv};
    redisReply *reply = pw_redis_async_roundtrip(ra, fiber, &cmd, errstr, sizeof(errstr));
    if (!reply) {
        pw_errstr_set(ra->setup_error, sizeof(ra->setup_error), "%s", errstr);
        return -1;
    }
    freeReplyObject(reply);
    return 0;
}

/* Connects, then AUTH and SELECT; fibers that come meanwhile wait at the
 * gate and share the outcome. */
static void pw_redis_async_connect(pw_redis_async_t *ra, pw_fiber_t *fiber)
{
    pw_redis_t *redis = ra->redis;
    ra->connecting = true;
    ra->setup_error[0] = '\0';
    /* hiredis resolves names with a blocking getaddrinfo(): not on the loop. */
    pw_redis_resolve_t r = {.host = redis->host};
    struct in6_addr scratch;
    if (inet_pton(AF_INET, redis->host, &scratch) == 1 ||
        inet_pton(AF_INET6, redis->host, &scratch) == 1)
        snprintf(r.ip, sizeof(r.ip), "%s", redis->host);
    else
        pw_fiber_offload(pw_redis_resolve, &r);
    if (r.rc != 0) {
        pw_errstr_set(ra->setup_error, sizeof(ra->setup_error), "redis %s: cannot resolve: %s",
                      redis->describe, gai_strerror(r.rc));
        goto done;
    }
    redisAsyncContext *ac = redisAsyncConnect(r.ip, redis->port);
    if (!ac || ac->err) {
        pw_errstr_set(ra->setup_error, sizeof(ra->setup_error), "redis %s: cannot connect: %s",
                      redis->describe, ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        goto done;
    }
#ifdef PW_REDIS_TLS
    if (redis->tls &&
        pw_redis_tls_start(redis, &ac->c, ra->setup_error, sizeof(ra->setup_error)) == -1) {
        redisAsyncFree(ac);
        goto done;
    }
#endif
    ac->data = ra;
    ac->ev.data = ra;
    ac->ev.addRead = pw_redis_async_add_read;
    ac->ev.delRead = pw_redis_async_del_read;
    ac->ev.addWrite = pw_redis_async_add_write;
    ac->ev.delWrite = pw_redis_async_del_write;
    ac->ev.cleanup = pw_redis_async_cleanup;
    ra->ac = ac;
    ra->watch = (pw_loop_watch_t){.fd = ac->c.fd, .on_ready = pw_redis_async_on_ready, .arg = ra};
    char db[16];
    pw_redis_setup_t cmds[2];
    int n = pw_redis_setup_commands(redis, db, cmds);
    for (int i = 0; i < n; i++)
        if (pw_redis_async_setup(ra, fiber, &cmds[i]) == -1)
            break;
done:
    if (ra->setup_error[0] && ra->ac)
        redisAsyncFree(ra->ac); /* its cleanup clears ra->ac */
    ra->connecting = false;
    for (pw_redis_gate_t *g = ra->gate, *next; g; g = next) {
        next = g->next;
        g->open = true;
        pw_fiber_wake(g->fiber);
    }
    ra->gate = NULL;
}

static void pw_redis_async_free(void *arg)
{
    pw_redis_async_t *ra = arg;
    if (ra->ac)
        redisAsyncFree(ra->ac);
    pw_loop_timer_disarm(ra->loop, &ra->timer);
    ra->redis->async[pw_loop_index(ra->loop)] = NULL;
    free(ra);
}

static pw_redis_async_t *pw_redis_async_get(pw_redis_t *redis)
{
    pw_loop_t *loop = pw_loop_current();
    pw_redis_async_t **slot = &redis->async[pw_loop_index(loop)];
    if (!*slot) {
        pw_redis_async_t *ra = pw_calloc(1, sizeof(*ra));
        ra->redis = redis;
        ra->loop = loop;
        ra->timer = (pw_loop_timer_t){.on_expiry = pw_redis_async_on_timer, .arg = ra};
        pw_loop_at_exit(loop, pw_redis_async_free, ra);
        *slot = ra;
    }
    return *slot;
}

static redisReply *pw_redis_command_on_loop(pw_redis_t *redis, pw_fiber_t *fiber,
                                            const pw_redis_cmd_t *cmd, char *errstr,
                                            size_t errstr_size)
{
    pw_redis_async_t *ra = pw_redis_async_get(redis);
    if (ra->connecting) {
        pw_redis_gate_t g = {.fiber = fiber, .next = ra->gate};
        ra->gate = &g;
        while (!g.open)
            pw_fiber_wait();
    } else if (!ra->ac) {
        pw_redis_async_connect(ra, fiber);
    }
    if (!ra->ac) {
        pw_errstr_set(errstr, errstr_size, "%s",
                      ra->setup_error[0] ? ra->setup_error : "redis: connection lost");
        return NULL;
    }
    return pw_redis_async_roundtrip(ra, fiber, cmd, errstr, errstr_size);
}

/* A command on a pooled blocking connection; a server-state error reply
 * drops the connection instead of returning it to the pool. */
static redisReply *pw_redis_command_blocking(pw_redis_t *redis, const pw_redis_cmd_t *cmd,
                                             char *errstr, size_t errstr_size)
{
    redisContext *c = pw_redis_acquire(redis, errstr, errstr_size);
    if (!c)
        return NULL;
    redisReply *reply = redisCommandArgv(c, cmd->argc, cmd->argv, cmd->argvlen);
    bool drop = pw_redis_reply_is_server_error(reply);
    if (!reply)
        pw_errstr_set(errstr, errstr_size, "redis %s: %s: %s", redis->describe, cmd->argv[0],
                      c->errstr[0] ? c->errstr : "connection lost");
    else
        reply = pw_redis_reply_checked(redis, reply, cmd->argv[0], cmd->keep_errors, errstr,
                                       errstr_size);
    pw_redis_release(redis, c, drop);
    return reply;
}

static redisReply *pw_redis_command_do(pw_redis_t *redis, const pw_redis_cmd_t *cmd, char *errstr,
                                       size_t errstr_size)
{
    pw_fiber_t *fiber = pw_fiber_current();
    if (fiber)
        return pw_redis_command_on_loop(redis, fiber, cmd, errstr, errstr_size);
    return pw_redis_command_blocking(redis, cmd, errstr, errstr_size);
}

redisReply *pw_redis_command_argv(pw_redis_t *redis, int argc, const char **argv,
                                  const size_t *argvlen, char *errstr, size_t errstr_size)
{
    pw_redis_cmd_t cmd = {.argc = argc, .argv = argv, .argvlen = argvlen};
    return pw_redis_command_do(redis, &cmd, errstr, errstr_size);
}

redisReply *pw_redis_command(pw_redis_t *redis, char *errstr, size_t errstr_size, int argc,
                             const char **argv)
{
    return pw_redis_command_argv(redis, argc, argv, NULL, errstr, errstr_size);
}

redisReply *pw_redis_command_reply(pw_redis_t *redis, char *errstr, size_t errstr_size, int argc,
                                   const char **argv)
{
    pw_redis_cmd_t cmd = {.argc = argc, .argv = argv, .keep_errors = true};
    return pw_redis_command_do(redis, &cmd, errstr, errstr_size);
}

static void pw_redis_script_hash(pw_redis_script_t *script)
{
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)script->source, strlen(script->source), digest);
    for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
        snprintf(script->sha1 + i * 2, 3, "%02x", digest[i]);
}

redisReply *pw_redis_eval(pw_redis_t *redis, pw_redis_script_t *script, int nkeys,
                          const char **keys, int nargs, const char **args, char *errstr,
                          size_t errstr_size)
{
    if (!atomic_load_explicit(&script->hashed, memory_order_acquire)) {
        pthread_mutex_lock(&pw_redis_script_lock);
        if (!atomic_load_explicit(&script->hashed, memory_order_relaxed)) {
            pw_redis_script_hash(script);
            atomic_store_explicit(&script->hashed, 1, memory_order_release);
        }
        pthread_mutex_unlock(&pw_redis_script_lock);
    }

    int argc = 3 + nkeys + nargs;
    const char **argv = pw_malloc(sizeof(char *) * (size_t)argc);
    char numkeys[16];
    snprintf(numkeys, sizeof(numkeys), "%d", nkeys);
    argv[0] = "EVALSHA";
    argv[1] = script->sha1;
    argv[2] = numkeys;
    for (int i = 0; i < nkeys; i++)
        argv[3 + i] = keys[i];
    for (int i = 0; i < nargs; i++)
        argv[3 + nkeys + i] = args[i];
    redisReply *reply = pw_redis_command(redis, errstr, errstr_size, argc, argv);
    if (!reply && strstr(errstr, "NOSCRIPT")) {
        argv[0] = "EVAL";
        argv[1] = script->source;
        reply = pw_redis_command(redis, errstr, errstr_size, argc, argv);
    }
    free(argv);
    return reply;
}
