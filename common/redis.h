/* Redis access: a bounded connection pool, commands and Lua scripts.
 *
 * DESIGN: fibers (fiber.h) share one connection per loop thread: their
 * commands are pipelined on it and each fiber waits for its own reply; a
 * command not answered in time drops the connection (failing the commands
 * still on it) and the next command reconnects. Other threads (the sweep, the
 * probes, the CLI) take blocking connections from a bounded pool
 * (REDIS_POOL_SIZE), one caller at a time, waiting while it is empty. A
 * connection that failed is closed and reopened lazily, so a Redis restart
 * heals by itself. A fiber's connection belongs to its loop's index (loops
 * running at once have distinct ones) and is freed when the loop ends, so
 * the loops must be joined before pw_redis_destroy(). A rediss:// URL makes
 * every connection TLS, verified against REDIS_TLS_CA_FILE and the URL's host
 * name (builds with hiredis >= 1.0 only; others refuse the URL, saying why).
 * Scripts go by EVALSHA and fall back to EVAL
 * once when the server has not seen them (after a restart or failover).
 *
 * Server-state errors: some error replies say nothing about the command and
 * everything about the server: a replica (READONLY, MASTERDOWN: a failover
 * demoted it), out of memory (OOM), unable to persist (MISCONF), loading its
 * data (LOADING), short of replicas (NOREPLICAS), stuck in a script (BUSY).
 * Such a reply drops its connection as a timeout does (a fiber's connection
 * after the replies already in flight), so the next command reconnects and
 * resolves the host again, which finds a failover's new primary behind a
 * name that follows it. It is counted (publish_worker_redis_errors_total
 * {kind}), logged with what to fix, and fails its command as any error does;
 * readiness (redis_health.h) reads the count. */
#ifndef PW_REDIS_H
#define PW_REDIS_H

#include <hiredis/hiredis.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "pw.h"

typedef struct pw_redis_s pw_redis_t;

typedef struct pw_redis_script_s {
    const char *source;
    char sha1[41];      /* filled on first use */
    _Atomic int hashed; /* sha1 is filled */
} pw_redis_script_t;

/** @brief TLS settings of every rediss:// connection in the process: the CA
 *  bundle that verifies the server (NULL: the system's store) and a client
 *  certificate chain and its key (NULL: none). Call once at start-up; a
 *  rediss:// pool used without it verifies with the system's store.
 *  @returns 0, or -1 with why in errstr (a file unusable, or a build without
 *  TLS given a file). */
int pw_redis_tls_init(const char *ca_file, const char *cert_file, const char *key_file,
                      char *errstr, size_t errstr_size) PW_MUSTCHECK;
/** @brief Whether this build speaks TLS to Redis (hiredis >= 1.0 with
 *  hiredis_ssl at build time). */
bool pw_redis_tls_supported(void);

/** @brief Parses url (redis[s]://[[user]:password@]host[:port][/db]; rediss://
 *  is TLS, with the certificate and host name verified) and makes a
 *  pool of up to pool_size blocking connections, none opened yet; fibers'
 *  connections come on top, one per loop. timeout_ms bounds every command.
 *  @returns the pool (caller frees with pw_redis_destroy()) or NULL with the
 *  reason in errstr (never the password). */
pw_redis_t *pw_redis_new(const char *url, int pool_size, int timeout_ms, char *errstr,
                         size_t errstr_size) PW_MUSTCHECK;
void pw_redis_destroy(pw_redis_t *redis);
/** @brief "host:port/db" for messages; no password. */
const char *pw_redis_describe(const pw_redis_t *redis);

/** @brief Runs one command given as argv (binary safe).
 *  @returns the reply (caller frees with freeReplyObject()) or NULL when the
 *  connection failed or Redis answered an error, with the reason in errstr.
 *  @locality any thread or fiber; a thread blocks while the pool is empty. */
redisReply *pw_redis_command_argv(pw_redis_t *redis, int argc, const char **argv,
                                  const size_t *argvlen, char *errstr,
                                  size_t errstr_size) PW_MUSTCHECK;
/** @brief Like pw_redis_command_argv() with NUL-terminated strings. */
redisReply *pw_redis_command(pw_redis_t *redis, char *errstr, size_t errstr_size, int argc,
                             const char **argv) PW_MUSTCHECK;
/** @brief Runs script with keys then args (NUL-terminated strings). */
redisReply *pw_redis_eval(pw_redis_t *redis, pw_redis_script_t *script, int nkeys,
                          const char **keys, int nargs, const char **args, char *errstr,
                          size_t errstr_size) PW_MUSTCHECK;
/** @brief Like pw_redis_command(), but an error reply comes back as a reply
 *  of type REDIS_REPLY_ERROR (a server-state one still counted and its
 *  connection dropped); NULL only when no reply came, with errstr. */
redisReply *pw_redis_command_reply(pw_redis_t *redis, char *errstr, size_t errstr_size, int argc,
                                   const char **argv) PW_MUSTCHECK;

/* Pipelines: many commands sent at once on one blocking connection, their
 * replies read in order; for commands that read or write many accounts
 * (token list, rekey). Commands are formatted when queued and sent by
 * pw_redis_pipe_exec(), which holds a pooled connection only while it runs,
 * so the caller may run other commands between executions. A reply is a
 * value: an error reply stays a REDIS_REPLY_ERROR reply of its command and
 * fails no other (a server-state one is still counted, and its connection
 * dropped). @locality a thread, never a fiber. */
typedef struct pw_redis_pipe_s pw_redis_pipe_t;

/** @brief An empty pipeline over redis (borrowed: it must outlive it). */
pw_redis_pipe_t *pw_redis_pipe_new(pw_redis_t *redis);
/** @brief Frees the pipeline with its queued commands and replies. */
void pw_redis_pipe_destroy(pw_redis_pipe_t *pipe);
/** @brief Queues one command given as argv (argvlen NULL: NUL-terminated
 *  strings; copied). The first command queued after an execution clears
 *  that execution's replies. @returns the command's index. */
size_t pw_redis_pipe_append(pw_redis_pipe_t *pipe, int argc, const char **argv,
                            const size_t *argvlen);
/** @brief Commands queued (and, after an execution, replies held). */
size_t pw_redis_pipe_count(const pw_redis_pipe_t *pipe);
/** @brief Sends the queued commands and reads every reply.
 *  @returns 0, or -1 when the connection failed or timed out (no reply is
 *  then kept: which commands ran is unknown), with the reason in errstr. */
int pw_redis_pipe_exec(pw_redis_pipe_t *pipe, char *errstr, size_t errstr_size) PW_MUSTCHECK;
/** @brief The reply of command i of the last successful execution (owned by
 *  the pipeline, valid until the next append or destroy). */
const redisReply *pw_redis_pipe_reply(const pw_redis_pipe_t *pipe, size_t i);

/* Error replies that report the server's state rather than the command's
 * fault (see DESIGN above). */
typedef enum {
    PW_REDIS_SERVER_OK = 0, /* no error reply, or one of another kind */
    PW_REDIS_SERVER_READONLY,
    PW_REDIS_SERVER_MASTERDOWN,
    PW_REDIS_SERVER_OOM,
    PW_REDIS_SERVER_MISCONF,
    PW_REDIS_SERVER_LOADING,
    PW_REDIS_SERVER_NOREPLICAS,
    PW_REDIS_SERVER_BUSY,
    PW_REDIS_SERVER_COUNT
} pw_redis_server_error_t;

/** @brief Classifies an error reply's text by its code ("READONLY You
 *  can't...", also inside the "ERR Error running script ... -OOM ..." that
 *  Redis 6 makes of a script's failed call). */
pw_redis_server_error_t pw_redis_server_error_of(const char *reply_str);
/** @brief "readonly", "masterdown", "oom", "misconf", "loading",
 *  "noreplicas", "busy"; NULL for PW_REDIS_SERVER_OK. */
const char *pw_redis_server_error_name(pw_redis_server_error_t kind);
/** @brief What an operator does about it, one sentence. */
const char *pw_redis_server_error_fix(pw_redis_server_error_t kind);
/** @brief Server-state error replies this pool's connections (blocking and
 *  fibers') have had so far; *latest (if not NULL) gets the last one's kind.
 *  @locality any thread */
unsigned long pw_redis_server_errors(pw_redis_t *redis, pw_redis_server_error_t *latest);

#endif
