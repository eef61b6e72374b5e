/* HTTP client: libcurl easy handles, form encoding, Retry-After. */
#include "http.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
        abort(); /* fails only on allocation */
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

static size_t pw_http_on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    pw_http_response_t *resp = arg;
    size_t n = size * nmemb;
    resp->body = pw_realloc(resp->body, resp->body_len + n + 1);
    memcpy(resp->body + resp->body_len, data, n);
    resp->body_len += n;
    resp->body[resp->body_len] = '\0';
    return n;
}

/* Retry-After is either delay-seconds or an HTTP-date (RFC 9110 §10.2.3). */
static size_t pw_http_on_header(char *data, size_t size, size_t nmemb, void *arg)
{
    pw_http_response_t *resp = arg;
    size_t n = size * nmemb;
    static const char name[] = "retry-after:";
    if (n > sizeof(name) && strncasecmp(data, name, sizeof(name) - 1) == 0) {
        char value[128];
        size_t len = n - (sizeof(name) - 1);
        if (len >= sizeof(value))
            len = sizeof(value) - 1;
        memcpy(value, data + sizeof(name) - 1, len);
        value[len] = '\0';
        char *end;
        long secs = strtol(value, &end, 10);
        if (end != value && secs >= 0) {
            resp->retry_after_ms = secs * 1000;
        } else {
            time_t when = curl_getdate(value, NULL);
            if (when > 0) {
                int64_t delta = (int64_t)when * 1000 - pw_now_ms();
                resp->retry_after_ms = delta > 0 ? delta : 0;
            }
        }
    }
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
            abort();
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

static int pw_http_perform(pw_http_t *http, pw_http_response_t *resp)
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
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, pw_http_on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, resp);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "publish-worker/" PW_VERSION);
    CURLcode rc = curl_easy_perform(curl);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, NULL);
    if (rc != CURLE_OK) {
        snprintf(resp->error, sizeof(resp->error), "%s%s%s", curl_easy_strerror(rc),
                 errbuf[0] ? ": " : "", errbuf);
        free(resp->body);
        resp->body = NULL;
        resp->body_len = 0;
        return -1;
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &resp->status);
    if (!resp->body)
        resp->body = pw_strdup("");
    return 0;
}

int pw_http_post_form(pw_http_t *http, const char *url, const pw_http_param_t *params, size_t count,
                      const char *basic_auth, pw_http_response_t *resp)
{
    CURL *curl = http->curl;
    curl_easy_reset(curl);
    char *body = pw_http_encode(curl, params, count);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    if (basic_auth) {
        curl_easy_setopt(curl, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
        curl_easy_setopt(curl, CURLOPT_USERPWD, basic_auth);
    }
    int rc = pw_http_perform(http, resp);
    /* The body may hold a token: wipe it, and the credentials libcurl copied. */
    memset(body, 0, strlen(body));
    free(body);
    curl_easy_reset(curl);
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
    int rc = pw_http_perform(http, resp);
    memset(full, 0, strlen(full));
    memset(query, 0, strlen(query));
    free(full);
    free(query);
    curl_easy_reset(curl);
    return rc;
}
