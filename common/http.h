/* HTTP client: libcurl easy handles with keep-alive and hard timeouts.
 *
 * DESIGN: one pw_http_t per thread or fiber (an easy handle is not
 * shareable), reused across requests. On a fiber (fiber.h) the transfer runs
 * on the loop's curl multi, whose connection cache the loop's fibers share,
 * and the fiber waits; elsewhere curl_easy_perform() blocks and the handle
 * keeps its own connections. Every request has a connect and a total timeout. Parameters are
 * URL-encoded by libcurl; a secret goes in a POST form body or a GET query, and this module never
 * logs a URL.
 *
 * TLS: the server's certificate and host name are always verified (no
 * setting turns that off), against THREADS_API_CA_FILE when it is set, else
 * the system's store; a refused certificate is a transport error whose text
 * says what to fix, logged at error level (at most once a minute). Every
 * connection opened counts in publish_worker_api_connections_total. */
#ifndef PW_HTTP_H
#define PW_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "pw.h"
#include "secret.h"

typedef struct pw_http_s pw_http_t;

/* The largest response body read (1 MiB): the API's answers are small, and a
 * bigger one fails the request (a transport error, so a transient failure)
 * instead of growing memory without bound. */
#define PW_HTTP_MAX_BODY (1024 * 1024)

typedef struct pw_http_param_s {
    const char *name;
    const char *value; /* NULL: the parameter is left out */
} pw_http_param_t;

typedef struct pw_http_response_s {
    long status; /* 0 when no HTTP response arrived */
    char *body;  /* NUL-terminated; owned, freed by pw_http_response_clear() */
    size_t body_len;
    long retry_after_ms;   /* from Retry-After; -1 when absent */
    bool www_authenticate; /* the answer carried a WWW-Authenticate challenge */
    char error[512];       /* transport error, when status is 0 */
} pw_http_response_t;

/** @brief Settings of every client in the process: ca_file (a PEM bundle;
 *  NULL: the system's store) verifies the servers' certificates. Call once,
 *  before any thread makes a request (it also runs curl_global_init()).
 *  @returns 0, or -1 with why in errstr (the file cannot be read). */
int pw_http_global_init(const char *ca_file, char *errstr, size_t errstr_size) PW_MUSTCHECK;

/** @brief A client; caller frees with pw_http_destroy(). */
pw_http_t *pw_http_new(long connect_timeout_ms, long timeout_ms);
void pw_http_destroy(pw_http_t *http);
/** @brief The total timeout of the next requests; returns the previous one
 *  (the caller may restore it). */
long pw_http_set_timeout(pw_http_t *http, long timeout_ms);

/** @brief POSTs params as application/x-www-form-urlencoded; with a
 *  basic_user, it and basic_password (may be NULL: empty) go as HTTP Basic.
 *  @returns 0 when a response arrived (any status), -1 on a transport error
 *  (connect, timeout...) described in resp->error. */
int pw_http_post_form(pw_http_t *http, const char *url, const pw_http_param_t *params, size_t count,
                      const char *basic_user, const pw_secret_t *basic_password,
                      pw_http_response_t *resp) PW_MUSTCHECK;
/** @brief GETs url with params appended as the query; as pw_http_post_form(). */
int pw_http_get(pw_http_t *http, const char *url, const pw_http_param_t *params, size_t count,
                pw_http_response_t *resp) PW_MUSTCHECK;
void pw_http_response_clear(pw_http_response_t *resp);

#endif
