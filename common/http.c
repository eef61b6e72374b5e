/* HTTP client: libcurl easy handles, form encoding, Retry-After, bounded bodies, TLS. */
#include "http.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "fiber.h"
#include "log.h"
#include "metrics.h"

/* Set by pw_http_global_init() before any thread runs; read-only after. */
static char *pw_http_ca_file; /* NULL: libcurl's default, the system's store */

/* A refused certificate is logged at most this often (it fails every call). */
#define PW_HTTP_TLS_LOG_EVERY_MS 60000
static atomic_int_least64_t pw_http_tls_logged_ms;

int pw_http_global_init(const char *ca_file, char *errstr, size_t errstr_size)
{
    if (ca_file && access(ca_file, R_OK) != 0) {
        pw_errstr_set(errstr, errstr_size, "THREADS_API_CA_FILE: cannot read %s", ca_file);
        return -1;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        pw_errstr_set(errstr, errstr_size, "curl_global_init failed");
        return -1;
    }
    free(pw_http_ca_file);
    pw_http_ca_file = ca_file ? pw_strdup(ca_file) : NULL;
    return 0;
}

struct pw_http_s {
    CURL *curl;
    long connect_timeout_ms;
    long timeout_ms;
};

pw_http_t *pw_http_new(long connect_timeout_ms, long timeout_ms)
{
    pw_http_t *http = pw_calloc(1, sizeof(*http));
    http->curl = curl_easy_init();
    if (!http->curl)
        pw_abort("curl_easy_init failed: out of memory");
    http->connect_timeout_ms = connect_timeout_ms;
    http->timeout_ms = timeout_ms;
    return http;
}

void pw_http_destroy(pw_http_t *http)
{
    if (!http)
        return;
    curl_easy_cleanup(http->curl);
    free(http);
}

long pw_http_set_timeout(pw_http_t *http, long timeout_ms)
{
    long previous = http->timeout_ms;
    http->timeout_ms = timeout_ms;
    return previous;
}

void pw_http_response_clear(pw_http_response_t *resp)
{
    free(resp->body);
    memset(resp, 0, sizeof(*resp));
    resp->retry_after_ms = -1;
}

#define PW_HTTP_TOO_BIG "response body larger than 1 MiB"
_Static_assert(PW_HTTP_MAX_BODY == 1024 * 1024, "PW_HTTP_TOO_BIG names the limit");

static size_t pw_http_on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    pw_http_response_t *resp = arg;
    size_t n = size * nmemb;
    if (n > PW_HTTP_MAX_BODY - resp->body_len) {
        /* Anything but n makes libcurl abort the transfer (CURLE_WRITE_ERROR). */
        snprintf(resp->error, sizeof(resp->error), PW_HTTP_TOO_BIG);
        return 0;
    }
    resp->body = pw_realloc(resp->body, resp->body_len + n + 1);
    memcpy(resp->body + resp->body_len, data, n);
    resp->body_len += n;
    resp->body[resp->body_len] = '\0';
    return n;
}

/* "a=1&b=2", each part escaped by libcurl; caller frees. */
static char *pw_http_encode(CURL *curl, const pw_http_param_t *params, size_t count)
{
    size_t cap = 256, len = 0;
    char *out = pw_malloc(cap);
    out[0] = '\0';
    for (size_t i = 0; i < count; i++) {
        if (!params[i].value)
            continue;
        char *value = curl_easy_escape(curl, params[i].value, 0);
        if (!value)
            pw_abort("curl_easy_escape failed: out of memory");
        size_t need = len + strlen(params[i].name) + strlen(value) + 3;
        if (need > cap) {
            cap = need * 2;
            out = pw_realloc(out, cap);
        }
        len += (size_t)sprintf(out + len, "%s%s=%s", len ? "&" : "", params[i].name, value);
        curl_free(value);
    }
    return out;
}

/* ---- requests from fibers: one curl multi per loop thread ----
 * A fiber adds its easy handle to its loop's multi and waits; the loop feeds
 * socket events and the multi's timer to curl_multi_socket_action() and wakes
 * the fiber when its transfer is done. The multi's connection cache is shared
 * by the loop's fibers, so connections stay open across posts. */

typedef struct pw_http_loop_s {
    pw_loop_t *loop;
    CURLM *multi;
    pw_loop_timer_t timer;
} pw_http_loop_t;

typedef struct {
    pw_loop_watch_t watch;
    pw_http_loop_t *hl;
} pw_http_socket_t;

typedef struct {
    pw_fiber_t *fiber;
    bool done;
    CURLcode result;
} pw_http_wait_t;

static _Thread_local pw_http_loop_t *pw_http_this_loop;

static void pw_http_check_done(pw_http_loop_t *hl)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(hl->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *easy = msg->easy_handle;
        CURLcode result = msg->data.result;
        pw_http_wait_t *w = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&w);
        curl_multi_remove_handle(hl->multi, easy); /* msg is gone after this */
        w->result = result;
        w->done = true;
        pw_fiber_wake(w->fiber);
    }
}

static void pw_http_on_ready(void *arg, uint32_t revents)
{
    pw_http_socket_t *sock = arg;
    pw_http_loop_t *hl = sock->hl; /* sock may be freed by the action */
    int mask = (revents & EPOLLIN ? CURL_CSELECT_IN : 0) |
               (revents & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
               (revents & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
    int running;
    curl_multi_socket_action(hl->multi, sock->watch.fd, mask, &running);
    pw_http_check_done(hl);
}

static int pw_http_on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    pw_http_loop_t *hl = userp;
    pw_http_socket_t *sock = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (sock) {
            pw_loop_watch_set(hl->loop, &sock->watch, 0);
            curl_multi_assign(hl->multi, fd, NULL);
            free(sock);
        }
        return 0;
    }
    if (!sock) {
        sock = pw_calloc(1, sizeof(*sock));
        sock->watch = (pw_loop_watch_t){.fd = fd, .on_ready = pw_http_on_ready, .arg = sock};
        sock->hl = hl;
        curl_multi_assign(hl->multi, fd, sock);
    }
    uint32_t events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
    pw_loop_watch_set(hl->loop, &sock->watch, events);
    return 0;
}

static void pw_http_on_timer(void *arg)
{
    pw_http_loop_t *hl = arg;
    int running;
    curl_multi_socket_action(hl->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    pw_http_check_done(hl);
}

static int pw_http_on_timer_change(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    pw_http_loop_t *hl = userp;
    if (timeout_ms < 0)
        pw_loop_timer_disarm(hl->loop, &hl->timer);
    else
        pw_loop_timer_arm(hl->loop, &hl->timer, pw_mono_ms() + timeout_ms);
    return 0;
}

static void pw_http_loop_free(void *arg)
{
    pw_http_loop_t *hl = arg;
    curl_multi_cleanup(hl->multi); /* closes cached connections (removes their watches) */
    pw_loop_timer_disarm(hl->loop, &hl->timer);
    free(hl);
    pw_http_this_loop = NULL;
}

/* Idle connections a loop keeps for reuse (all to one or two hosts). */
#define PW_HTTP_LOOP_MAX_CONNECTS 256L

static pw_http_loop_t *pw_http_loop_get(void)
{
    if (pw_http_this_loop)
        return pw_http_this_loop;
    pw_http_loop_t *hl = pw_calloc(1, sizeof(*hl));
    hl->loop = pw_loop_current();
    hl->multi = curl_multi_init();
    if (!hl->multi)
        pw_abort("curl_multi_init failed: out of memory");
    hl->timer = (pw_loop_timer_t){.on_expiry = pw_http_on_timer, .arg = hl};
    curl_multi_setopt(hl->multi, CURLMOPT_SOCKETFUNCTION, pw_http_on_socket);
    curl_multi_setopt(hl->multi, CURLMOPT_SOCKETDATA, hl);
    curl_multi_setopt(hl->multi, CURLMOPT_TIMERFUNCTION, pw_http_on_timer_change);
    curl_multi_setopt(hl->multi, CURLMOPT_TIMERDATA, hl);
    /* One request per connection, as with an easy handle of its own: no
     * HTTP/2 multiplexing of a whole loop's calls onto one connection. */
    curl_multi_setopt(hl->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
    /* Keep the connections a burst opened: by default the cache holds four
     * per transfer running now, so when a burst ends most connections are
     * closed and the next burst opens them again (a TCP and TLS handshake
     * each). */
    curl_multi_setopt(hl->multi, CURLMOPT_MAXCONNECTS, PW_HTTP_LOOP_MAX_CONNECTS);
    pw_loop_at_exit(hl->loop, pw_http_loop_free, hl);
    pw_http_this_loop = hl;
    return hl;
}

/* curl_easy_perform() for a fiber: the transfer runs on the loop. */
static CURLcode pw_http_perform_on_loop(CURL *curl, pw_fiber_t *fiber)
{
    pw_http_loop_t *hl = pw_http_loop_get();
    pw_http_wait_t w = {.fiber = fiber};
    curl_easy_setopt(curl, CURLOPT_PRIVATE, (char *)&w);
    if (curl_multi_add_handle(hl->multi, curl) != CURLM_OK)
        return CURLE_OUT_OF_MEMORY; /* the only way adding a fresh handle fails */
    while (!w.done)
        pw_fiber_wait();
    return w.result;
}

/* The failures that say the server's certificate was not accepted. */
static bool pw_http_is_tls_refusal(CURLcode rc)
{
    return rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE ||
           rc == CURLE_SSL_ISSUER_ERROR || rc == CURLE_SSL_PINNEDPUBKEYNOTMATCH;
}

/* The URL's host name, for a message: never the URL (a query may hold a
 * token). */
static void pw_http_host_of(const char *url, char *host, size_t size)
{
    CURLU *u = curl_url();
    char *h = NULL;
    snprintf(host, size, "?");
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK)
        snprintf(host, size, "%s", h);
    curl_free(h);
    curl_url_cleanup(u);
}

/* A refused certificate fails every call to that host until someone fixes
 * the configuration or the server: the message says what to check, and it
 * is logged at error level, at most once a minute. */
static void pw_http_tls_refused(const char *url, pw_http_response_t *resp)
{
    char host[256];
    pw_http_host_of(url, host, sizeof(host));
    size_t used = strlen(resp->error);
    snprintf(resp->error + used, sizeof(resp->error) - used,
             " (the TLS certificate of %s was refused: it must be valid for that host name and "
             "signed by a CA in %s)",
             host, pw_http_ca_file ? "THREADS_API_CA_FILE" : "the system's store");
    int64_t now = pw_mono_ms(), last = atomic_load(&pw_http_tls_logged_ms);
    if ((last == 0 || now - last >= PW_HTTP_TLS_LOG_EVERY_MS) &&
        atomic_compare_exchange_strong(&pw_http_tls_logged_ms, &last, now))
        pw_log_error("API server certificate refused", PW_F_STR("host", host),
                     PW_F_STR("error", resp->error),
                     PW_F_STR("fix", "check the host name in THREADS_API_BASE_URL or "
                                     "OAUTH2_TOKEN_URL, and that THREADS_API_CA_FILE holds the "
                                     "CA that signed the server's certificate"));
}

/* Describes a failed transfer in resp->error; on_body has already said why
 * when it stopped the transfer. */
static void pw_http_failed(CURLcode rc, const char *errbuf, const char *url,
                           pw_http_response_t *resp)
{
    if (rc == CURLE_FILESIZE_EXCEEDED)
        snprintf(resp->error, sizeof(resp->error), PW_HTTP_TOO_BIG);
    else if (rc != CURLE_WRITE_ERROR || !resp->error[0])
        snprintf(resp->error, sizeof(resp->error), "%s%s%.300s", curl_easy_strerror(rc),
                 errbuf[0] ? ": " : "", errbuf);
    if (pw_http_is_tls_refusal(rc))
        pw_http_tls_refused(url, resp);
}

static int pw_http_on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                               curl_off_t ulnow)
{
    (void)arg;
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    return pw_waits_cancelled(); /* non-zero aborts with CURLE_ABORTED_BY_CALLBACK */
}

static int pw_http_perform(pw_http_t *http, const char *url, pw_http_response_t *resp)
{
    CURL *curl = http->curl;
    memset(resp, 0, sizeof(*resp));
    resp->retry_after_ms = -1;
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, http->connect_timeout_ms);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, http->timeout_ms);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM for timeouts */
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, pw_http_on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, resp);
    /* Refused before reading when Content-Length announces it; else on_body counts. */
    curl_easy_setopt(curl, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)PW_HTTP_MAX_BODY);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "publish-worker/" PW_VERSION);
    /* libcurl's defaults, said out loud: they are never turned off. */
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
    if (pw_http_ca_file)
        curl_easy_setopt(curl, CURLOPT_CAINFO, pw_http_ca_file);
    /* Called at least once a second: a shutdown past its deadline ends a
     * transfer that would otherwise run to HTTP_TIMEOUT_MS. */
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, pw_http_on_progress);
    pw_fiber_t *fiber = pw_fiber_current();
    CURLcode rc = fiber ? pw_http_perform_on_loop(curl, fiber) : curl_easy_perform(curl);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, NULL);
    long connects = 0;
    if (curl_easy_getinfo(curl, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK && connects > 0)
        pw_metrics_api_connections(connects);
    if (rc != CURLE_OK) {
        pw_http_failed(rc, errbuf, url, resp);
        free(resp->body);
        resp->body = NULL;
        resp->body_len = 0;
        return -1;
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &resp->status);
    /* libcurl reads Retry-After in both forms (seconds or an HTTP date); 0
     * when absent, which backs off no less than our own delay anyway. */
    curl_off_t retry_after_s = 0;
    if (curl_easy_getinfo(curl, CURLINFO_RETRY_AFTER, &retry_after_s) == CURLE_OK &&
        retry_after_s > 0)
        resp->retry_after_ms = (long)retry_after_s * 1000;
    /* An OAuth2 token endpoint's challenge says the client credentials were
     * refused (RFC 6749 §5.2), even with no error body. */
    struct curl_header *challenge;
    resp->www_authenticate =
        curl_easy_header(curl, "WWW-Authenticate", 0, CURLH_HEADER, -1, &challenge) == CURLHE_OK;
    if (!resp->body)
        resp->body = pw_strdup("");
    return 0;
}

/* A POST body that libcurl reads through a callback and cannot rewind.
 * libcurl sends a request again on its own when a reused connection dies
 * before any answer. For a POST the server may already have acted on (a
 * publish; a single-use refresh token) that resend is what must not happen:
 * with no way to rewind the body, libcurl fails the transfer instead
 * (CURLE_SEND_FAIL_REWIND), and the caller asks before it tries again. */
typedef struct pw_http_body_s {
    const char *data;
    size_t len, sent;
} pw_http_body_t;

static size_t pw_http_read_body(char *buf, size_t size, size_t nitems, void *arg)
{
    pw_http_body_t *body = arg;
    size_t n = body->len - body->sent;
    if (n > size * nitems)
        n = size * nitems;
    memcpy(buf, body->data + body->sent, n);
    body->sent += n;
    return n;
}

int pw_http_post_form(pw_http_t *http, const char *url, const pw_http_param_t *params, size_t count,
                      const char *basic_user, const pw_secret_t *basic_password,
                      pw_http_response_t *resp)
{
    CURL *curl = http->curl;
    curl_easy_reset(curl);
    char *body = pw_http_encode(curl, params, count);
    pw_http_body_t reader = {body, strlen(body), 0};
    /* No "Expect: 100-continue" round trip for a body this small. */
    struct curl_slist *headers = curl_slist_append(NULL, "Expect:");
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_READFUNCTION, pw_http_read_body);
    curl_easy_setopt(curl, CURLOPT_READDATA, &reader);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)reader.len);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    if (basic_user) {
        curl_easy_setopt(curl, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
        curl_easy_setopt(curl, CURLOPT_USERNAME, basic_user);
        curl_easy_setopt(curl, CURLOPT_PASSWORD,
                         basic_password ? pw_secret_reveal(basic_password) : "");
    }
    int rc = pw_http_perform(http, url, resp);
    /* The body may hold a token: wipe it, and the credentials libcurl copied. */
    OPENSSL_cleanse(body, reader.len);
    free(body);
    curl_easy_reset(curl);
    curl_slist_free_all(headers);
    return rc;
}

int pw_http_get(pw_http_t *http, const char *url, const pw_http_param_t *params, size_t count,
                pw_http_response_t *resp)
{
    CURL *curl = http->curl;
    curl_easy_reset(curl);
    char *query = pw_http_encode(curl, params, count);
    char *full = pw_asprintf("%s%s%s", url, query[0] ? (strchr(url, '?') ? "&" : "?") : "", query);
    curl_easy_setopt(curl, CURLOPT_URL, full);
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
    int rc = pw_http_perform(http, full, resp);
    OPENSSL_cleanse(full, strlen(full));
    OPENSSL_cleanse(query, strlen(query));
    free(full);
    free(query);
    curl_easy_reset(curl);
    return rc;
}
