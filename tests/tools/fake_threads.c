/* A fake Threads (Meta Graph) API for the black-box tests, the demo and the benchmark.
 *
 * It serves what publish-worker calls, with Meta's validation rules and error
 * shapes: container creation (POST /v1.0/{user-id}/threads), container status
 * (GET /v1.0/{container-id}), publishing (POST /v1.0/{user-id}/threads_publish),
 * the long-lived token refresh (GET /refresh_access_token) and an RFC 6749 §6
 * token endpoint (POST /oauth2/token). A JSON control API under /__control/
 * lets a test register and revoke tokens, inject failures, add latency, move
 * a fake clock and read counters.
 *
 * DESIGN
 * - libmicrohttpd with one thread per connection: injected latency is a plain
 *   sleep that blocks only its own connection, so 512 delayed connections are
 *   512 concurrent requests, which is what the benchmark wants to observe.
 * - All state is one ft_state_t behind one mutex. A handler builds its reply
 *   (a cJSON tree, independent of the state) under the lock and the reply is
 *   serialised and sent after unlocking. Nothing sleeps with the lock held.
 * - Time is a fake clock, real time plus an offset that the control API
 *   moves, so the 24 h refresh rule, token expiry and container expiry are
 *   testable in seconds. Every time-based rule reads ft_now_ms().
 * - Tokens, containers and users live in string-keyed open-addressing hash
 *   tables. Nothing is deleted before /__control/reset drops everything.
 *   Container and media ids are never reused, not even across resets.
 * - Tokens are secrets in our tests' eyes: they never reach stderr.
 *
 * CHOICES where Meta's documentation leaves room
 * - Registered tokens' expires_in counts from now (as OAuth's does), not from
 *   issued_at. Every access token, OAuth2-issued ones too, is long-lived and
 *   can be refreshed with th_refresh_token once 24 h old.
 * - Bad parameters answer "Invalid parameter" with the detail in
 *   error_user_msg, as Meta does; an unknown creation_id is such a bad
 *   parameter, not 100/33, which clients read as "wrong token".
 * - A carousel is ready when its slowest child is and fails when one does.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>

#include <cJSON.h>
#include <microhttpd.h>

#define FT_DAY_MS (86400 * 1000LL)
#define FT_BODY_MAX (1024 * 1024)
#define FT_MAX_PARAMS 64
#define FT_ID_MAX 128
#define FT_TEXT_MAX 500
#define FT_DEFAULT_EXPIRES_IN 5184000 /* 60 days, a long-lived token */
#define FT_MEDIA_ERROR "Media download has failed. The media URI doesn't meet our requirements."

enum {
    FT_EP_THREADS,
    FT_EP_PUBLISH,
    FT_EP_CONTAINER,
    FT_EP_REFRESH,
    FT_EP_OAUTH2,
    FT_EP_OTHER,
    FT_EP_COUNT
};
static const char *const ft_ep_names[FT_EP_COUNT] = {"threads", "threads_publish", "container",
                                                     "refresh", "oauth2",          "other"};

enum { FT_TEXT, FT_IMAGE, FT_VIDEO, FT_CAROUSEL, FT_MEDIA_COUNT };
static const char *const ft_media_names[FT_MEDIA_COUNT] = {"TEXT", "IMAGE", "VIDEO", "CAROUSEL"};

enum { FT_CS_IN_PROGRESS, FT_CS_FINISHED, FT_CS_PUBLISHED, FT_CS_ERROR, FT_CS_EXPIRED };
static const char *const ft_status_names[] = {"IN_PROGRESS", "FINISHED", "PUBLISHED", "ERROR",
                                              "EXPIRED"};

/* Scopes are bits; the first two are the ones the endpoints check. */
static const char *const ft_scope_names[] = {
    "threads_basic",          "threads_content_publish",  "threads_manage_replies",
    "threads_read_replies",   "threads_manage_insights",  "threads_keyword_search",
    "threads_delete",         "threads_location_tagging", "threads_profile_discovery",
    "threads_manage_mentions"};
#define FT_NSCOPES (sizeof ft_scope_names / sizeof ft_scope_names[0])
#define FT_SCOPE_BASIC 1u
#define FT_SCOPE_PUBLISH 2u
#define FT_SCOPES_ALL ((1u << FT_NSCOPES) - 1)

/* ------------------------------------------------------------------------ */
/* Memory, randomness, time                                                  */

static void ft_oom(void)
{
    fputs("fake-threads: out of memory\n", stderr);
    abort();
}

/* Out of memory aborts, so call sites carry no NULL checks (cJSON too, via its hooks). */
static void *ft_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        ft_oom();
    return p;
}

static void *ft_xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        ft_oom();
    return p;
}

static char *ft_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(ft_xmalloc(n), s, n);
}

/* Fills out[0..n) with random letters and digits and terminates it. */
static void ft_random_chars(char *out, size_t n)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char raw[64];
    size_t done = 0;

    while (done < n) {
        size_t chunk = n - done < sizeof raw ? n - done : sizeof raw;
        ssize_t got = getrandom(raw, chunk, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            abort(); /* getrandom only fails on a broken kernel */
        for (ssize_t i = 0; i < got; i++)
            out[done++] = alphabet[raw[i] % (sizeof alphabet - 1)];
    }
    out[n] = '\0';
}

static int64_t ft_real_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void ft_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* "Tuesday, 24-Nov-26 20:00:00 UTC", the shape of Meta's expiry messages. */
static void ft_format_time(int64_t ms, char *buf, size_t size)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, size, "%A, %d-%b-%y %H:%M:%S UTC", &tm);
}

/* ------------------------------------------------------------------------ */
/* Containers of pointers and a string-keyed hash table                      */

typedef struct {
    void **v;
    size_t n, cap;
} ft_vec_t;

static void ft_vec_push(ft_vec_t *vec, void *p)
{
    if (vec->n == vec->cap) {
        vec->cap = vec->cap ? vec->cap * 2 : 16;
        vec->v = ft_xrealloc(vec->v, vec->cap * sizeof *vec->v);
    }
    vec->v[vec->n++] = p;
}

/* Open addressing with linear probing. Keys are owned by the values; there is
 * no deletion, the whole table goes at reset. */
struct ft_slot {
    const char *key;
    void *val;
};

typedef struct {
    struct ft_slot *slots;
    size_t cap, n;
} ft_map_t;

static uint64_t ft_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
    return h;
}

static struct ft_slot *ft_map_slot(const ft_map_t *m, const char *key)
{
    size_t i = (size_t)ft_hash(key) & (m->cap - 1);
    while (m->slots[i].key && strcmp(m->slots[i].key, key) != 0)
        i = (i + 1) & (m->cap - 1);
    return &m->slots[i];
}

static void *ft_map_get(const ft_map_t *m, const char *key)
{
    return key && m->cap ? ft_map_slot(m, key)->val : NULL;
}

static void ft_map_put(ft_map_t *m, const char *key, void *val)
{
    if ((m->n + 1) * 4 > m->cap * 3) {
        ft_map_t grown = {calloc(m->cap ? m->cap * 2 : 64, sizeof *m->slots),
                          m->cap ? m->cap * 2 : 64, m->n};
        if (!grown.slots)
            ft_oom();
        for (size_t i = 0; i < m->cap; i++)
            if (m->slots[i].key)
                *ft_map_slot(&grown, m->slots[i].key) = m->slots[i];
        free(m->slots);
        *m = grown;
    }
    struct ft_slot *s = ft_map_slot(m, key);
    if (!s->key)
        m->n++;
    s->key = key;
    s->val = val;
}

/* ------------------------------------------------------------------------ */
/* State                                                                     */

typedef struct ft_user ft_user_t;

typedef struct ft_token {
    char *value;
    ft_user_t *user;
    bool is_refresh;
    unsigned scopes;
    int64_t issued_ms, expires_ms; /* refresh tokens never expire */
    int revoked_subcode;           /* 0 while not revoked */
    bool refreshed;                /* access token replaced by a refresh */
    bool used;                     /* refresh token already redeemed */
    struct ft_token *access;       /* refresh token: the access token of its last redemption */
} ft_token_t;

typedef struct {
    char id[24], media_id[24]; /* media_id is empty until published */
    ft_user_t *user;
    int media;
    char *text; /* NULL when the request had none */
    int children;
    bool carousel_item;
    int64_t created_ms, ready_ms, published_ms;
    const char *error_message; /* static; non-NULL: ends in ERROR */
} ft_container_t;

struct ft_user {
    char *id;
    ft_vec_t tokens; /* ft_token_t *, oldest first, not owned */
    ft_vec_t pubs;   /* ft_container_t *, in publication order, not owned */
    long refreshes, failed_refreshes;
};

typedef struct {
    char *user_id; /* NULL: any user */
    int endpoint;  /* FT_EP_* or -1: any */
    long status, code, subcode, count, retry_after;
    char *type, *message; /* type NULL: derived from code */
} ft_failure_t;

typedef struct {
    long latency_ms;
    long latency_by_ep[FT_EP_COUNT]; /* -1: latency_ms applies */
    long token_error_status;
    bool invalidate_on_refresh, oauth_rotate;
    long container_ready_ms[FT_MEDIA_COUNT];
    long refresh_expires_in, oauth_expires_in;
} ft_settings_t;

typedef struct {
    /* Fixed for the process lifetime. */
    pthread_mutex_t lock;
    const char *client_id, *client_secret;
    /* Never reset: ids stay unique across tests, and requests that are in
     * flight during a reset still end and decrement in_flight. */
    uint64_t next_container_id, next_media_id;
    long in_flight;
    /* Everything from here on is per-test: /__control/reset frees and zeroes it. */
    ft_settings_t set;
    int64_t clock_offset_ms;
    ft_map_t tokens, containers, users;
    ft_vec_t token_list, container_list, user_list, failures; /* owners, creation order */
    long requests_total, requests_by_ep[FT_EP_COUNT], errors_by_ep[FT_EP_COUNT];
    long publications_total, double_publish_attempts, containers_created, peak_in_flight;
} ft_state_t;

static void ft_settings_default(ft_settings_t *s)
{
    *s = (ft_settings_t){.token_error_status = 400,
                         .invalidate_on_refresh = true,
                         .oauth_rotate = true,
                         .container_ready_ms = {[FT_VIDEO] = 300},
                         .refresh_expires_in = FT_DEFAULT_EXPIRES_IN,
                         .oauth_expires_in = 3600};
    for (int i = 0; i < FT_EP_COUNT; i++)
        s->latency_by_ep[i] = -1;
}

static void ft_failure_free(ft_failure_t *f)
{
    free(f->user_id);
    free(f->type);
    free(f->message);
    free(f);
}

/* @locks_required st->lock (or no other thread running) */
static void ft_state_reset(ft_state_t *st)
{
    for (size_t i = 0; i < st->token_list.n; i++) {
        ft_token_t *t = st->token_list.v[i];
        free(t->value);
        free(t);
    }
    for (size_t i = 0; i < st->container_list.n; i++) {
        ft_container_t *c = st->container_list.v[i];
        free(c->text);
        free(c);
    }
    for (size_t i = 0; i < st->user_list.n; i++) {
        ft_user_t *u = st->user_list.v[i];
        free(u->tokens.v);
        free(u->pubs.v);
        free(u->id);
        free(u);
    }
    for (size_t i = 0; i < st->failures.n; i++)
        ft_failure_free(st->failures.v[i]);
    free(st->tokens.slots);
    free(st->containers.slots);
    free(st->users.slots);
    free(st->token_list.v);
    free(st->container_list.v);
    free(st->user_list.v);
    free(st->failures.v);
    memset(&st->set, 0, sizeof *st - offsetof(ft_state_t, set));
    ft_settings_default(&st->set);
    st->peak_in_flight = st->in_flight;
}

/* @locks_required st->lock */
static int64_t ft_now_ms(const ft_state_t *st)
{
    return ft_real_ms() + st->clock_offset_ms;
}

static ft_user_t *ft_user_get(ft_state_t *st, const char *id)
{
    ft_user_t *u = ft_map_get(&st->users, id);
    if (!u) {
        u = calloc(1, sizeof *u);
        if (!u)
            ft_oom();
        u->id = ft_xstrdup(id);
        ft_map_put(&st->users, u->id, u);
        ft_vec_push(&st->user_list, u);
    }
    return u;
}

/* Registers a token; takes ownership of value. */
static ft_token_t *ft_token_add(ft_state_t *st, char *value, ft_user_t *u, bool is_refresh,
                                unsigned scopes, int64_t issued_ms, int64_t expires_ms)
{
    ft_token_t *t = calloc(1, sizeof *t);
    if (!t)
        ft_oom();
    *t = (ft_token_t){.value = value,
                      .user = u,
                      .is_refresh = is_refresh,
                      .scopes = scopes,
                      .issued_ms = issued_ms,
                      .expires_ms = is_refresh ? INT64_MAX : expires_ms};
    ft_map_put(&st->tokens, t->value, t);
    ft_vec_push(&st->token_list, t);
    ft_vec_push(&u->tokens, t);
    return t;
}

/* Issues a fresh token: prefix plus 40 random characters. */
static ft_token_t *ft_token_issue(ft_state_t *st, const char *prefix, ft_user_t *u, bool is_refresh,
                                  unsigned scopes, long expires_in)
{
    char *value = ft_xmalloc(strlen(prefix) + 41);
    strcpy(value, prefix);
    ft_random_chars(value + strlen(prefix), 40);
    int64_t now = ft_now_ms(st);
    return ft_token_add(st, value, u, is_refresh, scopes, now, now + expires_in * 1000LL);
}

static bool ft_token_usable(const ft_token_t *t, int64_t now)
{
    return !t->revoked_subcode && !t->refreshed && !t->used && now < t->expires_ms;
}

static int ft_revoke_user(ft_user_t *u, int subcode)
{
    for (size_t i = 0; i < u->tokens.n; i++)
        ((ft_token_t *)u->tokens.v[i])->revoked_subcode = subcode;
    return (int)u->tokens.n;
}

/* ------------------------------------------------------------------------ */
/* Requests and replies                                                      */

typedef struct {
    struct MHD_Connection *conn;
    bool is_post, too_large;
    char *body;
    size_t len, cap;
    struct {
        const char *name, *value;
    } form[FT_MAX_PARAMS];
    int nform;
} ft_request_t;

typedef struct {
    int status;
    cJSON *body;
    long retry_after; /* seconds; 0: no Retry-After header */
    bool www_authenticate;
} ft_reply_t;

typedef struct {
    int ep;
    char id[FT_ID_MAX]; /* user id (threads, threads_publish) or container id */
} ft_route_t;

static void ft_request_append(ft_request_t *rq, const char *data, size_t n)
{
    if (rq->too_large || rq->len + n > FT_BODY_MAX) {
        rq->too_large = true;
        return;
    }
    if (rq->len + n + 1 > rq->cap) {
        rq->cap = (rq->len + n + 1) * 2;
        rq->body = ft_xrealloc(rq->body, rq->cap);
    }
    memcpy(rq->body + rq->len, data, n);
    rq->len += n;
    rq->body[rq->len] = '\0';
}

static int ft_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* application/x-www-form-urlencoded decoding in place: '+' is a space, %XX a
 * byte; a malformed escape is kept literally, as browsers do. */
static void ft_url_decode(char *s)
{
    char *out = s;
    for (; *s; s++) {
        int hi, lo;
        if (*s == '+')
            *out++ = ' ';
        else if (*s == '%' && (hi = ft_hexval(s[1])) >= 0 && (lo = ft_hexval(s[2])) >= 0) {
            *out++ = (char)(hi * 16 + lo);
            s += 2;
        } else
            *out++ = *s;
    }
    *out = '\0';
}

/* Splits a form body into name/value pairs, decoding in place. */
static void ft_form_parse(ft_request_t *rq)
{
    char *p = rq->body;
    while (p && *p && rq->nform < FT_MAX_PARAMS) {
        char *amp = strchr(p, '&'), *eq;
        if (amp)
            *amp = '\0';
        eq = strchr(p, '=');
        if (eq)
            *eq++ = '\0';
        else
            eq = p + strlen(p);
        ft_url_decode(p);
        ft_url_decode(eq);
        if (*p) {
            rq->form[rq->nform].name = p;
            rq->form[rq->nform++].value = eq;
        }
        p = amp ? amp + 1 : NULL;
    }
}

/* A request parameter: the form body first, then the query string (Meta takes both). */
static const char *ft_param(const ft_request_t *rq, const char *name)
{
    for (int i = 0; i < rq->nform; i++)
        if (strcmp(rq->form[i].name, name) == 0)
            return rq->form[i].value;
    return MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, name);
}

/* The access token: form field, query parameter or Authorization: Bearer. */
static const char *ft_param_token(const ft_request_t *rq)
{
    const char *v = ft_param(rq, "access_token");
    const char *auth =
        MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!v && auth && strncasecmp(auth, "Bearer ", 7) == 0)
        v = auth + 7;
    return v;
}

static void ft_reply_set(ft_reply_t *rp, int status, cJSON *body)
{
    cJSON_Delete(rp->body);
    rp->status = status;
    rp->body = body;
}

/* Meta's error types: auth and permission problems are OAuthException. */
static const char *ft_error_type(long code)
{
    return code == 190 || code == 10 || (code >= 200 && code < 300) ? "OAuthException"
                                                                    : "THApiException";
}

/* Sets a Graph API error reply and returns its "error" object for extra fields. */
__attribute__((format(printf, 5, 6))) static cJSON *
ft_graph_error(ft_reply_t *rp, int status, long code, long subcode, const char *fmt, ...)
{
    char msg[512], trace[24];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ft_random_chars(trace, 23);

    cJSON *body = cJSON_CreateObject(), *err = cJSON_AddObjectToObject(body, "error");
    cJSON_AddStringToObject(err, "message", msg);
    cJSON_AddStringToObject(err, "type", ft_error_type(code));
    cJSON_AddNumberToObject(err, "code", (double)code);
    if (subcode)
        cJSON_AddNumberToObject(err, "error_subcode", (double)subcode);
    cJSON_AddStringToObject(err, "fbtrace_id", trace);
    ft_reply_set(rp, status, body);
    return err;
}

/* Meta answers bad parameters with a generic message and the detail in error_user_msg. */
static void ft_invalid_param(ft_reply_t *rp, const char *detail)
{
    cJSON *err = ft_graph_error(rp, 400, 100, 0, "Invalid parameter");
    cJSON_AddStringToObject(err, "error_user_msg", detail);
}

static void ft_no_object(ft_reply_t *rp, const ft_request_t *rq, const char *id)
{
    ft_graph_error(
        rp, 400, 100, 33,
        "Unsupported %s request. Object with ID '%s' does not exist, cannot be loaded due to "
        "missing permissions, or does not support this operation",
        rq->is_post ? "post" : "get", id);
}

/* RFC 6749 §5.2 error reply. */
static void ft_oauth_error(ft_reply_t *rp, int status, const char *error, const char *description)
{
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "error", error);
    if (description)
        cJSON_AddStringToObject(body, "error_description", description);
    ft_reply_set(rp, status, body);
    rp->www_authenticate = status == 401;
}

__attribute__((format(printf, 3, 4))) static void ft_ctl_error(ft_reply_t *rp, int status,
                                                               const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "error", msg);
    ft_reply_set(rp, status, body);
}

static void ft_ctl_ok(ft_reply_t *rp)
{
    cJSON *body = cJSON_CreateObject();
    cJSON_AddTrueToObject(body, "ok");
    ft_reply_set(rp, 200, body);
}

/* ------------------------------------------------------------------------ */
/* Graph API                                                                 */

/* Meta's messages for the usual revocation subcodes. */
static const char *ft_revoke_message(int subcode)
{
    static const struct {
        int subcode;
        const char *message;
    } known[] = {
        {458, "Error validating access token: The user has not authorized the application."},
        {459,
         "Error validating access token: The user is checkpointed and must log in to Threads."},
        {460, "Error validating access token: The user has changed the password"},
        {464, "Error validating access token: Sessions for the user are not allowed because "
              "the user is not a confirmed user."},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (known[i].subcode == subcode)
            return known[i].message;
    return "Error validating access token: The session has been invalidated.";
}

/* Meta's token checks in Meta's order: unknown, revoked, replaced by a
 * refresh, expired, another user's, missing scope. Returns the token, or NULL
 * with the error in rp.
 * @locks_required st->lock */
static ft_token_t *ft_auth(ft_state_t *st, const ft_request_t *rq, const char *path_user,
                           unsigned need, ft_reply_t *rp)
{
    ft_token_t *t = ft_map_get(&st->tokens, ft_param_token(rq));
    int64_t now = ft_now_ms(st);
    int bad_status = (int)st->set.token_error_status;
    char at[64], now_s[64];

    if (!t || t->is_refresh)
        ft_graph_error(rp, 400, 190, 0, "Invalid OAuth access token - Cannot parse access token");
    else if (t->revoked_subcode)
        ft_graph_error(rp, bad_status, 190, t->revoked_subcode, "%s",
                       ft_revoke_message(t->revoked_subcode));
    else if (t->refreshed)
        ft_graph_error(rp, 400, 190, 467,
                       "Error validating access token: The session is invalid because the "
                       "token was refreshed");
    else if (now >= t->expires_ms) {
        ft_format_time(t->expires_ms, at, sizeof at);
        ft_format_time(now, now_s, sizeof now_s);
        ft_graph_error(
            rp, bad_status, 190, 463,
            "Error validating access token: Session has expired on %s. The current time is %s.", at,
            now_s);
    } else if (path_user && strcmp(path_user, t->user->id) != 0)
        ft_no_object(rp, rq, path_user);
    else if ((t->scopes & need) != need)
        ft_graph_error(rp, 403, 10, 0, "Application does not have permission for this action");
    else
        return t;
    return NULL;
}

static int ft_media_parse(const char *s)
{
    for (int i = 0; s && i < FT_MEDIA_COUNT; i++)
        if (strcmp(s, ft_media_names[i]) == 0)
            return i;
    return -1;
}

static bool ft_is_emoji(uint32_t cp)
{
    return (cp >= 0x1F000 && cp <= 0x1FAFF) || (cp >= 0x2300 && cp <= 0x23FF) ||
           (cp >= 0x2600 && cp <= 0x27BF) || (cp >= 0x2B00 && cp <= 0x2BFF) || cp == 0x200D ||
           cp == 0xFE0F || (cp >= 0xE0020 && cp <= 0xE007F);
}

/* Post text length as Threads limits it: one per Unicode code point, except
 * that an emoji counts as its UTF-8 bytes (Meta's rule, see the contract).
 * Emoji are the pictographic block U+1F000..U+1FAFF, the symbol blocks
 * U+2300..U+23FF, U+2600..U+27BF and U+2B00..U+2BFF, and the characters that
 * glue emoji sequences (ZWJ, VS16, tags). Returns -1 for invalid UTF-8. */
static long ft_text_length(const char *s)
{
    static const uint32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
    const unsigned char *p = (const unsigned char *)s;
    long n = 0;

    while (*p) {
        int len = *p < 0x80             ? 1
                  : (*p & 0xE0) == 0xC0 ? 2
                  : (*p & 0xF0) == 0xE0 ? 3
                  : (*p & 0xF8) == 0xF0 ? 4
                                        : 0;
        if (!len)
            return -1;
        uint32_t cp = len == 1 ? *p : *p & (0x7F >> len);
        for (int i = 1; i < len; i++) {
            if ((p[i] & 0xC0) != 0x80) /* also stops at the terminator */
                return -1;
            cp = (cp << 6) | (p[i] & 0x3F);
        }
        if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return -1;
        n += ft_is_emoji(cp) ? len : 1;
        p += len;
    }
    return n;
}

static bool ft_is_http_url(const char *s)
{
    return s && (strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0) &&
           !strchr(s, ' ');
}

static bool ft_reply_control_ok(const char *s)
{
    static const char *const ok[] = {"everyone", "accounts_you_follow", "mentioned_only",
                                     "parent_post_author_only", "followers_only"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (strcmp(s, ok[i]) == 0)
            return true;
    return false;
}

/* A carousel's children: 2..20 existing carousel items of the same user. The
 * carousel is ready when its slowest child is, and fails if a child fails. */
static const char *ft_children_check(ft_state_t *st, const char *list, const ft_user_t *u,
                                     ft_container_t *c)
{
    char buf[FT_ID_MAX * 24], *save = NULL;
    if (!list || strlen(list) >= sizeof buf)
        return "children is required for CAROUSEL: 2 to 20 container ids separated by commas";
    strcpy(buf, list);
    for (char *id = strtok_r(buf, ", ", &save); id; id = strtok_r(NULL, ", ", &save)) {
        const ft_container_t *child = ft_map_get(&st->containers, id);
        if (!child || child->user != u)
            return "children contains an id that is not a container of this user";
        if (!child->carousel_item)
            return "children contains a container that was not created with is_carousel_item=true";
        if (child->ready_ms > c->ready_ms)
            c->ready_ms = child->ready_ms;
        if (child->error_message)
            c->error_message = child->error_message;
        c->children++;
    }
    return c->children < 2 || c->children > 20 ? "a CAROUSEL needs 2 to 20 children" : NULL;
}

/* Meta's parameter rules for a new container; fills c. Returns NULL or the reason. */
static const char *ft_container_check(ft_state_t *st, const ft_request_t *rq, const ft_user_t *u,
                                      ft_container_t *c)
{
    const char *text = ft_param(rq, "text"), *item = ft_param(rq, "is_carousel_item");
    const char *rc = ft_param(rq, "reply_control"), *link = ft_param(rq, "link_attachment");
    const char *url = NULL;
    long len = text ? ft_text_length(text) : 0;

    c->media = ft_media_parse(ft_param(rq, "media_type"));
    if (c->media < 0)
        return "media_type is required: one of TEXT, IMAGE, VIDEO, CAROUSEL";
    if (len < 0)
        return "text is not valid UTF-8";
    if (len > FT_TEXT_MAX)
        return "text is longer than 500 characters";
    if (c->media == FT_TEXT && len == 0)
        return "text is required for a TEXT post";
    if (c->media == FT_IMAGE && !ft_is_http_url(url = ft_param(rq, "image_url")))
        return "image_url is required for an IMAGE post and must be an http(s) URL";
    if (c->media == FT_VIDEO && !ft_is_http_url(url = ft_param(rq, "video_url")))
        return "video_url is required for a VIDEO post and must be an http(s) URL";
    if (item && strcmp(item, "true") != 0 && strcmp(item, "false") != 0)
        return "is_carousel_item must be true or false";
    c->carousel_item = item && strcmp(item, "true") == 0;
    if (c->carousel_item && c->media != FT_IMAGE && c->media != FT_VIDEO)
        return "only IMAGE and VIDEO containers can be carousel items";
    if (rc && !ft_reply_control_ok(rc))
        return "reply_control must be one of everyone, accounts_you_follow, mentioned_only, "
               "parent_post_author_only, followers_only";
    if (link && !ft_is_http_url(link))
        return "link_attachment must be an http(s) URL";
    if (url && strstr(url, "fake-error"))
        c->error_message = FT_MEDIA_ERROR;
    c->created_ms = ft_now_ms(st);
    c->ready_ms = c->created_ms + st->set.container_ready_ms[c->media];
    return c->media == FT_CAROUSEL ? ft_children_check(st, ft_param(rq, "children"), u, c) : NULL;
}

/* POST /v1.0/{user-id}/threads */
static void ft_ep_threads(ft_state_t *st, const ft_request_t *rq, const char *user_id,
                          ft_reply_t *rp)
{
    ft_token_t *t = ft_auth(st, rq, user_id, FT_SCOPE_BASIC | FT_SCOPE_PUBLISH, rp);
    ft_container_t draft = {0};
    const char *why;

    if (!t)
        return;
    if ((why = ft_container_check(st, rq, t->user, &draft))) {
        ft_invalid_param(rp, why);
        return;
    }
    ft_container_t *c = ft_xmalloc(sizeof *c);
    *c = draft;
    c->user = t->user;
    c->text = ft_param(rq, "text") ? ft_xstrdup(ft_param(rq, "text")) : NULL;
    snprintf(c->id, sizeof c->id, "%" PRIu64, st->next_container_id++);
    ft_map_put(&st->containers, c->id, c);
    ft_vec_push(&st->container_list, c);
    st->containers_created++;

    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "id", c->id);
    ft_reply_set(rp, 200, body);
}

static int ft_container_status(const ft_container_t *c, int64_t now)
{
    if (c->media_id[0])
        return FT_CS_PUBLISHED;
    if (now >= c->created_ms + FT_DAY_MS)
        return FT_CS_EXPIRED;
    if (now < c->ready_ms)
        return FT_CS_IN_PROGRESS;
    return c->error_message ? FT_CS_ERROR : FT_CS_FINISHED;
}

/* GET /v1.0/{container-id}?fields=status,error_message */
static void ft_ep_container(ft_state_t *st, const ft_request_t *rq, const char *id, ft_reply_t *rp)
{
    ft_token_t *t = ft_auth(st, rq, NULL, FT_SCOPE_BASIC, rp);
    if (!t)
        return;
    const ft_container_t *c = ft_map_get(&st->containers, id);
    if (!c || c->user != t->user) {
        ft_no_object(rp, rq, id);
        return;
    }
    int status = ft_container_status(c, ft_now_ms(st));
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "id", c->id);
    cJSON_AddStringToObject(body, "status", ft_status_names[status]);
    if (status == FT_CS_ERROR)
        cJSON_AddStringToObject(body, "error_message", c->error_message);
    ft_reply_set(rp, 200, body);
}

static void ft_publish(ft_state_t *st, ft_container_t *c, int64_t now, ft_reply_t *rp)
{
    cJSON *body = cJSON_CreateObject();

    snprintf(c->media_id, sizeof c->media_id, "%" PRIu64, st->next_media_id++);
    c->published_ms = now;
    ft_vec_push(&c->user->pubs, c);
    st->publications_total++;
    cJSON_AddStringToObject(body, "id", c->media_id);
    ft_reply_set(rp, 200, body);
}

/* POST /v1.0/{user-id}/threads_publish */
static void ft_ep_publish(ft_state_t *st, const ft_request_t *rq, const char *user_id,
                          ft_reply_t *rp)
{
    const ft_token_t *t = ft_auth(st, rq, user_id, FT_SCOPE_BASIC | FT_SCOPE_PUBLISH, rp);
    const char *cid = ft_param(rq, "creation_id");
    ft_container_t *c = ft_map_get(&st->containers, cid);
    int64_t now = ft_now_ms(st);
    int status = c ? ft_container_status(c, now) : -1;

    if (!t)
        return;
    if (!cid || !*cid)
        ft_invalid_param(rp, "creation_id is required");
    else if (!c || c->user != t->user) /* not 100/33: that would say the token is wrong */
        ft_invalid_param(rp, "creation_id is not a media container of this user");
    else if (c->carousel_item)
        ft_invalid_param(rp, "a carousel item can only be published as part of its carousel");
    else if (status == FT_CS_PUBLISHED) {
        st->double_publish_attempts++;
        ft_graph_error(rp, 400, 24, 4279002, "The container has already been published");
    } else if (status == FT_CS_IN_PROGRESS)
        ft_graph_error(rp, 400, 24, 4279009,
                       "The media is not ready for publishing, please wait for a moment");
    else if (status == FT_CS_ERROR)
        ft_graph_error(rp, 400, 24, 4279001, "The media could not be published: %s",
                       c->error_message);
    else if (status == FT_CS_EXPIRED)
        ft_graph_error(rp, 400, 24, 4279001,
                       "The media container has expired and can no longer be published");
    else
        ft_publish(st, c, now, rp);
}

/* GET /refresh_access_token?grant_type=th_refresh_token&access_token=... */
static void ft_ep_refresh(ft_state_t *st, const ft_request_t *rq, ft_reply_t *rp)
{
    const char *grant = ft_param(rq, "grant_type");
    ft_token_t *t, *fresh;

    if (!grant || strcmp(grant, "th_refresh_token") != 0) {
        ft_graph_error(rp, 400, 100, 0, "Unsupported grant_type: expected th_refresh_token");
        return;
    }
    if (!(t = ft_auth(st, rq, NULL, 0, rp)))
        return;
    if (ft_now_ms(st) - t->issued_ms < FT_DAY_MS) {
        cJSON *err = ft_graph_error(
            rp, 400, 100, 0, "Access token can only be refreshed once it is at least 24 hours old");
        cJSON_ReplaceItemInObject(err, "type", cJSON_CreateString("OAuthException"));
        return;
    }
    fresh = ft_token_issue(st, "THAA", t->user, false, t->scopes, st->set.refresh_expires_in);
    t->refreshed = st->set.invalidate_on_refresh;
    t->user->refreshes++;

    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "access_token", fresh->value);
    cJSON_AddStringToObject(body, "token_type", "bearer");
    cJSON_AddNumberToObject(body, "expires_in", (double)st->set.refresh_expires_in);
    ft_reply_set(rp, 200, body);
}

static int ft_b64_decode(const char *in, char *out, size_t size)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned acc = 0;
    int bits = 0;
    size_t n = 0;

    for (; *in && *in != '='; in++) {
        const char *p = strchr(b64, *in);
        if (!p)
            return -1;
        acc = (acc << 6) | (unsigned)(p - b64);
        if ((bits += 6) >= 8) {
            bits -= 8;
            if (n + 1 >= size)
                return -1;
            out[n++] = (char)((acc >> bits) & 0xFF);
        }
    }
    out[n] = '\0';
    return 0;
}

/* RFC 6749 §2.3.1 client authentication: HTTP Basic (id and secret
 * form-urlencoded, then base64) or the client_id and client_secret fields.
 * Returns NULL when the client is ours, else why not. */
static const char *ft_client_check(const ft_state_t *st, const ft_request_t *rq)
{
    const char *auth =
        MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    const char *id = ft_param(rq, "client_id"), *secret = ft_param(rq, "client_secret");
    char creds[512], *colon;

    if (auth && strncasecmp(auth, "Basic ", 6) == 0) {
        if (ft_b64_decode(auth + 6, creds, sizeof creds) != 0 || !(colon = strchr(creds, ':')))
            return "malformed Basic credentials";
        *colon = '\0';
        ft_url_decode(creds);
        ft_url_decode(colon + 1);
        id = creds;
        secret = colon + 1;
    }
    if (!id || !secret)
        return "client authentication is required";
    if (strcmp(id, st->client_id) != 0 || strcmp(secret, st->client_secret) != 0)
        return "client authentication failed";
    return NULL;
}

static int ft_scope_index(const char *name, size_t len)
{
    for (size_t i = 0; i < FT_NSCOPES; i++)
        if (strlen(ft_scope_names[i]) == len && strncmp(ft_scope_names[i], name, len) == 0)
            return (int)i;
    return -1;
}

/* The requested scope (space or comma separated) must narrow the grant's. */
static int ft_scope_narrow(const char *req, unsigned granted, unsigned *out)
{
    *out = req ? 0 : granted;
    while (req && *req) {
        size_t len = strcspn(req, " ,");
        int i = len ? ft_scope_index(req, len) : -2;
        if (i == -1 || (i >= 0 && !(granted & (1u << i))))
            return -1;
        if (i >= 0)
            *out |= 1u << i;
        req += len + (req[len] != '\0');
    }
    return 0;
}

/* Redeems a valid refresh token: a new access token and, when rotating, a new
 * refresh token that replaces the redeemed one. */
static void ft_oauth2_issue(ft_state_t *st, const ft_request_t *rq, ft_token_t *rt, unsigned scopes,
                            ft_reply_t *rp)
{
    ft_token_t *at = ft_token_issue(st, "THAA", rt->user, false, scopes, st->set.oauth_expires_in);
    cJSON *body = cJSON_CreateObject();

    if (rt->access && st->set.invalidate_on_refresh)
        rt->access->refreshed = true;
    rt->user->refreshes++;
    cJSON_AddStringToObject(body, "access_token", at->value);
    cJSON_AddStringToObject(body, "token_type", "Bearer");
    cJSON_AddNumberToObject(body, "expires_in", (double)st->set.oauth_expires_in);
    if (st->set.oauth_rotate) {
        rt->used = true;
        rt = ft_token_issue(st, "THRT", rt->user, true, rt->scopes, 0);
        cJSON_AddStringToObject(body, "refresh_token", rt->value);
    }
    rt->access = at;
    if (ft_param(rq, "scope")) /* RFC 6749 §5.1: required when it may differ */
        cJSON_AddStringToObject(body, "scope", ft_param(rq, "scope"));
    ft_reply_set(rp, 200, body);
}

/* POST /oauth2/token with grant_type=refresh_token (RFC 6749 §6). Refresh
 * tokens are single-use; replaying a redeemed one means one of the two
 * holders is a thief, so the whole grant is revoked (OAuth 2.0 Security BCP). */
static void ft_ep_oauth2(ft_state_t *st, const ft_request_t *rq, ft_reply_t *rp)
{
    const char *grant = ft_param(rq, "grant_type"), *rtv = ft_param(rq, "refresh_token"), *why;
    ft_token_t *rt = ft_map_get(&st->tokens, rtv);
    unsigned scopes;

    if (!grant)
        ft_oauth_error(rp, 400, "invalid_request", "grant_type is required");
    else if ((why = ft_client_check(st, rq)))
        ft_oauth_error(rp, 401, "invalid_client", why);
    else if (strcmp(grant, "refresh_token") != 0)
        ft_oauth_error(rp, 400, "unsupported_grant_type", "only refresh_token is supported");
    else if (!rtv || !*rtv)
        ft_oauth_error(rp, 400, "invalid_request", "refresh_token is required");
    else if (!rt || !rt->is_refresh)
        ft_oauth_error(rp, 400, "invalid_grant", "unknown refresh token");
    else if (rt->revoked_subcode)
        ft_oauth_error(rp, 400, "invalid_grant", "the refresh token has been revoked");
    else if (rt->used) {
        ft_revoke_user(rt->user, 460);
        ft_oauth_error(rp, 400, "invalid_grant",
                       "refresh token reuse detected; the grant has been revoked");
    } else if (ft_scope_narrow(ft_param(rq, "scope"), rt->scopes, &scopes) != 0)
        ft_oauth_error(rp, 400, "invalid_scope", "the requested scope exceeds the grant");
    else
        ft_oauth2_issue(st, rq, rt, scopes, rp);
}

/* ------------------------------------------------------------------------ */
/* Routing, failure injection, accounting                                    */

static void ft_route_parse(const char *url, const char *method, ft_route_t *rt)
{
    bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
    const char *rest = url + 6, *slash;
    size_t idlen;

    rt->ep = FT_EP_OTHER;
    rt->id[0] = '\0';
    if (strcmp(url, "/refresh_access_token") == 0) {
        rt->ep = get ? FT_EP_REFRESH : FT_EP_OTHER;
        return;
    }
    if (strcmp(url, "/oauth2/token") == 0) {
        rt->ep = post ? FT_EP_OAUTH2 : FT_EP_OTHER;
        return;
    }
    if (strncmp(url, "/v1.0/", 6) != 0)
        return;
    slash = strchr(rest, '/');
    idlen = slash ? (size_t)(slash - rest) : strlen(rest);
    if (idlen == 0 || idlen >= FT_ID_MAX)
        return;
    memcpy(rt->id, rest, idlen);
    rt->id[idlen] = '\0';
    if (!slash && get)
        rt->ep = FT_EP_CONTAINER;
    else if (slash && post && strcmp(slash, "/threads") == 0)
        rt->ep = FT_EP_THREADS;
    else if (slash && post && strcmp(slash, "/threads_publish") == 0)
        rt->ep = FT_EP_PUBLISH;
}

/* Whose request this is, for failure matching and refresh counters.
 * @locks_required st->lock */
static const char *ft_request_user(ft_state_t *st, const ft_request_t *rq, const ft_route_t *rt)
{
    const ft_container_t *c;
    const ft_token_t *t = NULL;

    switch (rt->ep) {
    case FT_EP_THREADS:
    case FT_EP_PUBLISH:
        return rt->id;
    case FT_EP_CONTAINER:
        if ((c = ft_map_get(&st->containers, rt->id)))
            return c->user->id;
        t = ft_map_get(&st->tokens, ft_param_token(rq));
        break;
    case FT_EP_REFRESH:
        t = ft_map_get(&st->tokens, ft_param_token(rq));
        break;
    case FT_EP_OAUTH2:
        t = ft_map_get(&st->tokens, ft_param(rq, "refresh_token"));
        break;
    }
    return t ? t->user->id : NULL;
}

/* Answers with the first matching queued failure, if any.
 * @locks_required st->lock */
static bool ft_failure_inject(ft_state_t *st, int ep, const char *user, ft_reply_t *rp)
{
    for (size_t i = 0; i < st->failures.n; i++) {
        ft_failure_t *f = st->failures.v[i];
        if (f->count <= 0 || (f->endpoint >= 0 && f->endpoint != ep) ||
            (f->user_id && (!user || strcmp(f->user_id, user) != 0)))
            continue;
        f->count--;
        if (ep == FT_EP_OAUTH2)
            ft_oauth_error(rp, (int)f->status, f->message, NULL);
        else {
            cJSON *err = ft_graph_error(rp, (int)f->status, f->code, f->subcode, "%s", f->message);
            if (f->type)
                cJSON_ReplaceItemInObject(err, "type", cJSON_CreateString(f->type));
        }
        rp->retry_after = f->retry_after;
        return true;
    }
    return false;
}

/* @locks_required st->lock */
static void ft_graph_dispatch(ft_state_t *st, const ft_request_t *rq, const ft_route_t *rt,
                              ft_reply_t *rp)
{
    const char *user = ft_request_user(st, rq, rt);
    ft_user_t *u;

    if (!ft_failure_inject(st, rt->ep, user, rp)) {
        switch (rt->ep) {
        case FT_EP_THREADS:
            ft_ep_threads(st, rq, rt->id, rp);
            break;
        case FT_EP_PUBLISH:
            ft_ep_publish(st, rq, rt->id, rp);
            break;
        case FT_EP_CONTAINER:
            ft_ep_container(st, rq, rt->id, rp);
            break;
        case FT_EP_REFRESH:
            ft_ep_refresh(st, rq, rp);
            break;
        case FT_EP_OAUTH2:
            ft_ep_oauth2(st, rq, rp);
            break;
        default:
            ft_graph_error(rp, 404, 100, 0, "Unknown path components or unsupported method");
        }
    }
    if (rp->status < 400)
        return;
    st->errors_by_ep[rt->ep]++;
    if ((rt->ep == FT_EP_REFRESH || rt->ep == FT_EP_OAUTH2) && (u = ft_map_get(&st->users, user)))
        u->failed_refreshes++;
}

/* A Threads API request: count it, sleep the injected latency without the
 * lock (only this connection waits), then answer. */
static void ft_serve_graph(ft_state_t *st, const ft_request_t *rq, const char *url,
                           const char *method, ft_reply_t *rp)
{
    ft_route_t rt;
    long delay;

    ft_route_parse(url, method, &rt);
    pthread_mutex_lock(&st->lock);
    delay = st->set.latency_by_ep[rt.ep] >= 0 ? st->set.latency_by_ep[rt.ep] : st->set.latency_ms;
    st->requests_total++;
    st->requests_by_ep[rt.ep]++;
    if (++st->in_flight > st->peak_in_flight)
        st->peak_in_flight = st->in_flight;
    pthread_mutex_unlock(&st->lock);

    if (delay > 0)
        ft_sleep_ms(delay);

    pthread_mutex_lock(&st->lock);
    ft_graph_dispatch(st, rq, &rt, rp);
    st->in_flight--;
    pthread_mutex_unlock(&st->lock);
}

/* ------------------------------------------------------------------------ */
/* Control API (@locks_required st->lock for every ft_ctl_ function)         */

/* An integral JSON number within [lo, hi]. */
static int ft_json_long(const cJSON *it, long lo, long hi, long *out)
{
    if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) ||
        it->valuedouble < (double)lo || it->valuedouble > (double)hi)
        return -1;
    *out = (long)it->valuedouble;
    return 0;
}

static int ft_ep_parse(const char *s)
{
    for (int i = 0; s && i < FT_EP_COUNT; i++)
        if (strcmp(s, ft_ep_names[i]) == 0)
            return i;
    return -1;
}

static cJSON *ft_settings_json(const ft_settings_t *s)
{
    cJSON *o = cJSON_CreateObject(), *by, *ready;
    cJSON_AddNumberToObject(o, "latency_ms", (double)s->latency_ms);
    by = cJSON_AddObjectToObject(o, "latency_ms_by_endpoint");
    for (int i = 0; i < FT_EP_COUNT; i++)
        if (s->latency_by_ep[i] >= 0)
            cJSON_AddNumberToObject(by, ft_ep_names[i], (double)s->latency_by_ep[i]);
    cJSON_AddNumberToObject(o, "token_error_status", (double)s->token_error_status);
    cJSON_AddBoolToObject(o, "invalidate_on_refresh", s->invalidate_on_refresh);
    ready = cJSON_AddObjectToObject(o, "container_ready_ms");
    for (int i = 0; i < FT_MEDIA_COUNT; i++)
        cJSON_AddNumberToObject(ready, ft_media_names[i], (double)s->container_ready_ms[i]);
    cJSON_AddBoolToObject(o, "oauth_rotate", s->oauth_rotate);
    cJSON_AddNumberToObject(o, "refresh_expires_in", (double)s->refresh_expires_in);
    cJSON_AddNumberToObject(o, "oauth_expires_in", (double)s->oauth_expires_in);
    return o;
}

/* Applies one setting to s; returns -1 when the key or value is bad. */
static int ft_setting_apply(ft_settings_t *s, const cJSON *it)
{
    const char *k = it->string;
    const cJSON *sub;

    if (strcmp(k, "latency_ms") == 0)
        return ft_json_long(it, 0, 3600000, &s->latency_ms);
    if (strcmp(k, "token_error_status") == 0)
        return ft_json_long(it, 400, 599, &s->token_error_status);
    if (strcmp(k, "refresh_expires_in") == 0)
        return ft_json_long(it, 1, 1L << 40, &s->refresh_expires_in);
    if (strcmp(k, "oauth_expires_in") == 0)
        return ft_json_long(it, 1, 1L << 40, &s->oauth_expires_in);
    if (strcmp(k, "invalidate_on_refresh") == 0 || strcmp(k, "oauth_rotate") == 0) {
        if (!cJSON_IsBool(it))
            return -1;
        *(k[0] == 'i' ? &s->invalidate_on_refresh : &s->oauth_rotate) = cJSON_IsTrue(it);
        return 0;
    }
    if (strcmp(k, "latency_ms_by_endpoint") == 0 && cJSON_IsObject(it)) {
        for (int i = 0; i < FT_EP_COUNT; i++) /* the map is replaced, not merged */
            s->latency_by_ep[i] = -1;
        cJSON_ArrayForEach(sub, it)
        {
            int ep = ft_ep_parse(sub->string);
            if (ep < 0 || ft_json_long(sub, 0, 3600000, &s->latency_by_ep[ep]) != 0)
                return -1;
        }
        return 0;
    }
    if (strcmp(k, "container_ready_ms") == 0 && cJSON_IsObject(it)) {
        cJSON_ArrayForEach(sub, it)
        {
            int m = ft_media_parse(sub->string);
            if (m < 0 || ft_json_long(sub, 0, 86400000, &s->container_ready_ms[m]) != 0)
                return -1;
        }
        return 0;
    }
    return -1;
}

static void ft_ctl_settings(ft_state_t *st, const cJSON *in, const ft_request_t *rq, ft_reply_t *rp)
{
    ft_settings_t s = st->set; /* all or nothing */
    const cJSON *it;

    cJSON_ArrayForEach(it, in)
    {
        if (ft_setting_apply(&s, it) != 0) {
            ft_ctl_error(rp, 400, "unknown setting or bad value: %s", it->string);
            return;
        }
    }
    if (rq->is_post)
        st->set = s;
    ft_reply_set(rp, 200, ft_settings_json(&st->set));
}

static void ft_ctl_reset(ft_state_t *st, const cJSON *in, const ft_request_t *rq, ft_reply_t *rp)
{
    (void)in;
    (void)rq;
    ft_state_reset(st);
    ft_ctl_ok(rp);
}

/* scopes: absent or null means every scope. Returns -1 on an unknown name. */
static int ft_scopes_from_json(const cJSON *arr, unsigned *out)
{
    const cJSON *it;
    *out = !arr || cJSON_IsNull(arr) ? FT_SCOPES_ALL : 0;
    if (arr && !cJSON_IsNull(arr) && !cJSON_IsArray(arr))
        return -1;
    cJSON_ArrayForEach(it, arr)
    {
        int i = cJSON_IsString(it) ? ft_scope_index(it->valuestring, strlen(it->valuestring)) : -1;
        if (i < 0)
            return -1;
        *out |= 1u << i;
    }
    return 0;
}

/* (Re-)registers a token with fresh state; the same value may not change user or kind. */
static ft_token_t *ft_token_register(ft_state_t *st, const char *value, ft_user_t *u,
                                     bool is_refresh, unsigned scopes, int64_t issued_ms,
                                     int64_t expires_ms)
{
    ft_token_t *t = ft_map_get(&st->tokens, value);
    if (!t)
        return ft_token_add(st, ft_xstrdup(value), u, is_refresh, scopes, issued_ms, expires_ms);
    if (t->user != u || t->is_refresh != is_refresh)
        return NULL;
    *t = (ft_token_t){.value = t->value,
                      .user = u,
                      .is_refresh = is_refresh,
                      .scopes = scopes,
                      .issued_ms = issued_ms,
                      .expires_ms = is_refresh ? INT64_MAX : expires_ms};
    return t;
}

static void ft_ctl_tokens(ft_state_t *st, const cJSON *in, const ft_request_t *rq, ft_reply_t *rp)
{
    const char *at = cJSON_GetStringValue(cJSON_GetObjectItem(in, "access_token"));
    const char *uid = cJSON_GetStringValue(cJSON_GetObjectItem(in, "user_id"));
    const cJSON *rtj = cJSON_GetObjectItem(in, "refresh_token"),
                *exp_in = cJSON_GetObjectItem(in, "expires_in");
    const cJSON *exp_at = cJSON_GetObjectItem(in, "expires_at"),
                *iss = cJSON_GetObjectItem(in, "issued_at");
    int64_t now = ft_now_ms(st), issued = now, expires = now + FT_DEFAULT_EXPIRES_IN * 1000LL;
    unsigned scopes;
    (void)rq;

    if (!at || !*at || !uid || !*uid || strlen(uid) >= FT_ID_MAX) {
        ft_ctl_error(rp, 400, "access_token and user_id (non-empty strings) are required");
        return;
    }
    if ((exp_in && !cJSON_IsNumber(exp_in)) || (exp_at && !cJSON_IsNumber(exp_at)) ||
        (iss && !cJSON_IsNumber(iss)) || (rtj && !cJSON_IsNull(rtj) && !cJSON_IsString(rtj)) ||
        ft_scopes_from_json(cJSON_GetObjectItem(in, "scopes"), &scopes) != 0) {
        ft_ctl_error(rp, 400, "bad expires_in, expires_at, issued_at, refresh_token or scopes");
        return;
    }
    if (iss)
        issued = (int64_t)(iss->valuedouble * 1000);
    if (exp_at)
        expires = (int64_t)(exp_at->valuedouble * 1000);
    else if (exp_in) /* like OAuth's expires_in, counted from now */
        expires = now + (int64_t)(exp_in->valuedouble * 1000);

    ft_user_t *u = ft_user_get(st, uid);
    ft_token_t *t = ft_token_register(st, at, u, false, scopes, issued, expires), *rt = NULL;
    if (t && cJSON_IsString(rtj) &&
        !(rt = ft_token_register(st, rtj->valuestring, u, true, scopes, issued, 0)))
        t = NULL;
    if (!t) {
        ft_ctl_error(rp, 409, "token already registered for another user or as the other kind");
        return;
    }
    if (rt)
        rt->access = t;
    ft_ctl_ok(rp);
}

static void ft_ctl_revoke(ft_state_t *st, const cJSON *in, const ft_request_t *rq, ft_reply_t *rp)
{
    const char *uid = cJSON_GetStringValue(cJSON_GetObjectItem(in, "user_id"));
    const char *tv = cJSON_GetStringValue(cJSON_GetObjectItem(in, "access_token"));
    const cJSON *sub = cJSON_GetObjectItem(in, "subcode");
    long subcode = 460;
    ft_user_t *u;
    ft_token_t *t;
    int n = 1;
    (void)rq;

    if (!tv)
        tv = cJSON_GetStringValue(cJSON_GetObjectItem(in, "refresh_token"));
    if (sub && ft_json_long(sub, 1, 99999999, &subcode) != 0) {
        ft_ctl_error(rp, 400, "subcode must be a positive integer");
        return;
    }
    if (uid && (u = ft_map_get(&st->users, uid)))
        n = ft_revoke_user(u, (int)subcode);
    else if (!uid && tv && (t = ft_map_get(&st->tokens, tv)))
        t->revoked_subcode = (int)subcode;
    else {
        ft_ctl_error(rp, 404, "give a known user_id, access_token or refresh_token");
        return;
    }
    cJSON *body = cJSON_CreateObject();
    cJSON_AddTrueToObject(body, "ok");
    cJSON_AddNumberToObject(body, "revoked", n);
    ft_reply_set(rp, 200, body);
}

/* Parses one failure entry into f (strings owned by f). Returns -1 on a bad field. */
static int ft_failure_parse(const cJSON *o, ft_failure_t *f)
{
    static const struct {
        const char *name;
        size_t off;
        long lo, hi;
    } ints[] = {
        {"status", offsetof(ft_failure_t, status), 100, 599},
        {"code", offsetof(ft_failure_t, code), 0, 1L << 31},
        {"subcode", offsetof(ft_failure_t, subcode), 0, 1L << 31},
        {"count", offsetof(ft_failure_t, count), 0, 1L << 40},
        {"retry_after", offsetof(ft_failure_t, retry_after), 0, 1L << 31},
    };
    const cJSON *it;

    *f = (ft_failure_t){.endpoint = -1, .status = 500, .code = 2, .count = 1};
    if (!cJSON_IsObject(o))
        return -1;
    cJSON_ArrayForEach(it, o)
    {
        const char *k = it->string, *sv = cJSON_GetStringValue(it);
        size_t i = 0;
        while (i < sizeof ints / sizeof ints[0] && strcmp(k, ints[i].name) != 0)
            i++;
        if (i < sizeof ints / sizeof ints[0]) {
            if (ft_json_long(it, ints[i].lo, ints[i].hi, (long *)((char *)f + ints[i].off)) != 0)
                return -1;
        } else if (strcmp(k, "user_id") == 0 && sv && !f->user_id)
            f->user_id = strcmp(sv, "*") == 0 ? NULL : ft_xstrdup(sv);
        else if (strcmp(k, "endpoint") == 0 && sv) {
            if ((f->endpoint = ft_ep_parse(sv)) < 0 && strcmp(sv, "*") != 0)
                return -1;
        } else if (strcmp(k, "type") == 0 && sv && !f->type)
            f->type = ft_xstrdup(sv);
        else if (strcmp(k, "message") == 0 && sv && !f->message)
            f->message = ft_xstrdup(sv);
        else
            return -1;
    }
    if (!f->message)
        f->message = ft_xstrdup("Service temporarily unavailable");
    return 0;
}

/* POST: one entry, or {"entries": [...]}; all are queued or none. */
static void ft_ctl_failures_add(ft_state_t *st, const cJSON *in, const ft_request_t *rq,
                                ft_reply_t *rp)
{
    const cJSON *entries = cJSON_GetObjectItem(in, "entries"), *it;
    ft_vec_t parsed = {0};
    bool ok = true;
    (void)rq;

    if (cJSON_IsArray(entries)) {
        cJSON_ArrayForEach(it, entries)
        {
            ft_failure_t *f = ft_xmalloc(sizeof *f);
            ok = ft_failure_parse(it, f) == 0 && ok;
            ft_vec_push(&parsed, f);
        }
    } else {
        ft_failure_t *f = ft_xmalloc(sizeof *f);
        ok = ft_failure_parse(in, f) == 0;
        ft_vec_push(&parsed, f);
    }
    for (size_t i = 0; i < parsed.n; i++) {
        if (ok)
            ft_vec_push(&st->failures, parsed.v[i]);
        else
            ft_failure_free(parsed.v[i]);
    }
    free(parsed.v);
    if (ok)
        ft_ctl_ok(rp);
    else
        ft_ctl_error(rp, 400,
                     "bad failure entry: fields are user_id, endpoint, status, code, subcode, "
                     "type, message, count, retry_after");
}

static void ft_ctl_failures_clear(ft_state_t *st, const cJSON *in, const ft_request_t *rq,
                                  ft_reply_t *rp)
{
    (void)in;
    (void)rq;
    for (size_t i = 0; i < st->failures.n; i++)
        ft_failure_free(st->failures.v[i]);
    st->failures.n = 0;
    ft_ctl_ok(rp);
}

static void ft_ctl_clock(ft_state_t *st, const cJSON *in, const ft_request_t *rq, ft_reply_t *rp)
{
    const cJSON *adv = cJSON_GetObjectItem(in, "advance_s");
    if (rq->is_post && (!cJSON_IsNumber(adv) || !isfinite(adv->valuedouble))) {
        ft_ctl_error(rp, 400, "advance_s (number of seconds) is required");
        return;
    }
    if (rq->is_post)
        st->clock_offset_ms += (int64_t)(adv->valuedouble * 1000);
    cJSON *body = cJSON_CreateObject();
    cJSON_AddNumberToObject(body, "now", (double)(ft_now_ms(st) / 1000));
    cJSON_AddNumberToObject(body, "offset_s", (double)st->clock_offset_ms / 1000);
    ft_reply_set(rp, 200, body);
}

static cJSON *ft_publication_json(const ft_container_t *c)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "media_id", c->media_id);
    cJSON_AddStringToObject(o, "container_id", c->id);
    cJSON_AddStringToObject(o, "media_type", ft_media_names[c->media]);
    if (c->text)
        cJSON_AddStringToObject(o, "text", c->text);
    else
        cJSON_AddNullToObject(o, "text");
    cJSON_AddNumberToObject(o, "children_count", c->children);
    cJSON_AddNumberToObject(o, "at", (double)(c->published_ms / 1000));
    cJSON_AddNumberToObject(o, "at_ms", (double)c->published_ms);
    return o;
}

static void ft_ctl_stats(ft_state_t *st, const cJSON *in, const ft_request_t *rq, ft_reply_t *rp)
{
    cJSON *o = cJSON_CreateObject(), *reqs, *errs, *pubs, *refr, *failr;
    (void)in;
    (void)rq;

    cJSON_AddNumberToObject(o, "requests_total", (double)st->requests_total);
    reqs = cJSON_AddObjectToObject(o, "requests_by_endpoint");
    errs = cJSON_AddObjectToObject(o, "errors_by_endpoint");
    for (int i = 0; i < FT_EP_COUNT; i++) {
        cJSON_AddNumberToObject(reqs, ft_ep_names[i], (double)st->requests_by_ep[i]);
        cJSON_AddNumberToObject(errs, ft_ep_names[i], (double)st->errors_by_ep[i]);
    }
    pubs = cJSON_AddObjectToObject(o, "publications");
    cJSON_AddNumberToObject(o, "publications_total", (double)st->publications_total);
    refr = cJSON_AddObjectToObject(o, "refreshes");
    failr = cJSON_AddObjectToObject(o, "failed_refreshes");
    for (size_t i = 0; i < st->user_list.n; i++) {
        const ft_user_t *u = st->user_list.v[i];
        if (u->pubs.n) {
            cJSON *arr = cJSON_AddArrayToObject(pubs, u->id);
            for (size_t j = 0; j < u->pubs.n; j++)
                cJSON_AddItemToArray(arr, ft_publication_json(u->pubs.v[j]));
        }
        if (u->refreshes)
            cJSON_AddNumberToObject(refr, u->id, (double)u->refreshes);
        if (u->failed_refreshes)
            cJSON_AddNumberToObject(failr, u->id, (double)u->failed_refreshes);
    }
    cJSON_AddNumberToObject(o, "double_publish_attempts", (double)st->double_publish_attempts);
    cJSON_AddNumberToObject(o, "containers_created", (double)st->containers_created);
    cJSON_AddNumberToObject(o, "concurrent_requests", (double)st->in_flight);
    cJSON_AddNumberToObject(o, "peak_concurrent_requests", (double)st->peak_in_flight);
    ft_reply_set(rp, 200, o);
}

static void ft_ctl_reset_peak(ft_state_t *st, const cJSON *in, const ft_request_t *rq,
                              ft_reply_t *rp)
{
    (void)in;
    (void)rq;
    st->peak_in_flight = st->in_flight;
    ft_ctl_ok(rp);
}

static void ft_ctl_tokens_issued(ft_state_t *st, const cJSON *in, const ft_request_t *rq,
                                 ft_reply_t *rp)
{
    cJSON *body = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(body, "tokens");
    (void)in;
    (void)rq;
    for (size_t i = 0; i < st->token_list.n; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(((ft_token_t *)st->token_list.v[i])->value));
    ft_reply_set(rp, 200, body);
}

static void ft_ctl_tokens_current(ft_state_t *st, const cJSON *in, const ft_request_t *rq,
                                  ft_reply_t *rp)
{
    const ft_user_t *u = ft_map_get(&st->users, ft_param(rq, "user_id"));
    const ft_token_t *access = NULL, *refresh = NULL;
    int64_t now = ft_now_ms(st);
    (void)in;

    if (!u) {
        ft_ctl_error(rp, 404, "unknown user_id");
        return;
    }
    for (size_t i = u->tokens.n; i-- > 0;) { /* newest first */
        const ft_token_t *t = u->tokens.v[i];
        if (!t->is_refresh && !access && ft_token_usable(t, now))
            access = t;
        if (t->is_refresh && !refresh && ft_token_usable(t, now))
            refresh = t;
    }
    cJSON *body = cJSON_CreateObject();
    cJSON_AddItemToObject(body, "access_token",
                          access ? cJSON_CreateString(access->value) : cJSON_CreateNull());
    cJSON_AddItemToObject(body, "refresh_token",
                          refresh ? cJSON_CreateString(refresh->value) : cJSON_CreateNull());
    ft_reply_set(rp, 200, body);
}

typedef void (*ft_ctl_fn)(ft_state_t *, const cJSON *, const ft_request_t *, ft_reply_t *);

static const struct {
    const char *method, *path;
    ft_ctl_fn fn;
} ft_controls[] = {
    {"POST", "reset", ft_ctl_reset},
    {"POST", "tokens", ft_ctl_tokens},
    {"POST", "revoke", ft_ctl_revoke},
    {"POST", "failures", ft_ctl_failures_add},
    {"DELETE", "failures", ft_ctl_failures_clear},
    {"POST", "settings", ft_ctl_settings},
    {"GET", "settings", ft_ctl_settings},
    {"POST", "clock", ft_ctl_clock},
    {"GET", "clock", ft_ctl_clock},
    {"GET", "stats", ft_ctl_stats},
    {"POST", "stats/reset_peak", ft_ctl_reset_peak},
    {"GET", "tokens/issued", ft_ctl_tokens_issued},
    {"GET", "tokens/current", ft_ctl_tokens_current},
};

/* /__control/...: JSON in, JSON out, never delayed or counted. */
static void ft_serve_control(ft_state_t *st, const ft_request_t *rq, const char *path,
                             const char *method, ft_reply_t *rp)
{
    cJSON *in = NULL;
    size_t i = 0;

    while (i < sizeof ft_controls / sizeof ft_controls[0] &&
           (strcmp(ft_controls[i].method, method) != 0 || strcmp(ft_controls[i].path, path) != 0))
        i++;
    if (i == sizeof ft_controls / sizeof ft_controls[0]) {
        ft_ctl_error(rp, 404, "no control endpoint %s /__control/%s", method, path);
        return;
    }
    if (rq->is_post && rq->len &&
        (!(in = cJSON_ParseWithLength(rq->body, rq->len)) || !cJSON_IsObject(in))) {
        cJSON_Delete(in);
        ft_ctl_error(rp, 400, "the body must be a JSON object");
        return;
    }
    pthread_mutex_lock(&st->lock);
    ft_controls[i].fn(st, in, rq, rp);
    pthread_mutex_unlock(&st->lock);
    cJSON_Delete(in);
}

/* ------------------------------------------------------------------------ */
/* HTTP server                                                               */

static enum MHD_Result ft_send(struct MHD_Connection *conn, ft_reply_t *rp)
{
    char *text = cJSON_PrintUnformatted(rp->body), num[32];
    struct MHD_Response *resp;
    enum MHD_Result ret;

    cJSON_Delete(rp->body);
    resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json; charset=UTF-8");
    if (rp->retry_after > 0) {
        snprintf(num, sizeof num, "%ld", rp->retry_after);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, num);
    }
    if (rp->www_authenticate)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                "Basic realm=\"fake-threads\"");
    ret = MHD_queue_response(conn, (unsigned)rp->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* libmicrohttpd calls this once for the headers, once per body chunk and once
 * more at the end; the request is answered on the last call. */
static enum MHD_Result ft_on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                     const char *method, const char *version,
                                     const char *upload_data, size_t *upload_data_size,
                                     void **con_cls)
{
    ft_state_t *st = cls;
    ft_request_t *rq = *con_cls;
    ft_reply_t rp = {0};
    const char *ctype;
    (void)version;

    if (!rq) {
        rq = calloc(1, sizeof *rq);
        if (!rq)
            ft_oom();
        rq->conn = conn;
        rq->is_post = strcmp(method, "POST") == 0;
        *con_cls = rq;
        return MHD_YES;
    }
    if (*upload_data_size) {
        ft_request_append(rq, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (rq->too_large)
        ft_graph_error(&rp, 413, 100, 0, "Request body too large");
    else if (strncmp(url, "/__control/", 11) == 0)
        ft_serve_control(st, rq, url + 11, method, &rp);
    else {
        ctype = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
        if (rq->body && ctype && strncasecmp(ctype, "application/x-www-form-urlencoded", 33) == 0)
            ft_form_parse(rq);
        ft_serve_graph(st, rq, url, method, &rp);
    }
    return ft_send(conn, &rp);
}

static void ft_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                            enum MHD_RequestTerminationCode toe)
{
    ft_request_t *rq = *con_cls;
    (void)cls;
    (void)conn;
    (void)toe;
    if (rq) {
        free(rq->body);
        free(rq);
        *con_cls = NULL;
    }
}

/* Thousands of benchmark connections need more descriptors than the usual 1024. */
static void ft_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void ft_usage(FILE *out)
{
    fputs("usage: fake-threads [--host 127.0.0.1] [--port N] [--oauth-client-id ID]\n"
          "                    [--oauth-client-secret SECRET]\n"
          "A fake Threads API for tests. Prints \"LISTENING http://HOST:PORT\" once bound\n"
          "(port 0, the default, lets the kernel pick) and runs until SIGTERM or SIGINT.\n",
          out);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"host", required_argument, NULL, 'h'},
                                         {"port", required_argument, NULL, 'p'},
                                         {"oauth-client-id", required_argument, NULL, 'i'},
                                         {"oauth-client-secret", required_argument, NULL, 's'},
                                         {"help", no_argument, NULL, 'H'},
                                         {NULL, 0, NULL, 0}};
    static ft_state_t st;
    const char *host = "127.0.0.1";
    struct sockaddr_in sa = {.sin_family = AF_INET};
    long port = 0;
    char *end;
    int opt, sig;
    sigset_t sigs;

    st.client_id = "pw-client";
    st.client_secret = "pw-secret";
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'h':
            host = optarg;
            break;
        case 'p':
            port = strtol(optarg, &end, 10);
            if (*end || end == optarg || port < 0 || port > 65535) {
                fprintf(stderr, "fake-threads: --port must be 0..65535\n");
                return 2;
            }
            break;
        case 'i':
            st.client_id = optarg;
            break;
        case 's':
            st.client_secret = optarg;
            break;
        case 'H':
            ft_usage(stdout);
            return 0;
        default:
            ft_usage(stderr);
            return 2;
        }
    }
    if (optind < argc || inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "fake-threads: --host must be an IPv4 address\n");
        return 2;
    }
    sa.sin_port = htons((uint16_t)port);

    cJSON_InitHooks(&(cJSON_Hooks){.malloc_fn = ft_xmalloc, .free_fn = free});
    ft_raise_nofile();
    /* Block the stop signals in every thread; main waits for them with sigwait().
     * A shell starts background jobs with SIGINT ignored, and an ignored signal
     * is discarded before sigwait() can see it: restore the defaults first. */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    pthread_mutex_init(&st.lock, NULL);
    st.next_container_id = 17800000000000001ULL;
    st.next_media_id = 18000000000000001ULL;
    ft_state_reset(&st);

    /* One thread per connection, so an injected sleep blocks only its own
     * connection; poll() because thousands of sockets exceed FD_SETSIZE. */
    struct MHD_OptionItem options[] = {
        {MHD_OPTION_SOCK_ADDR, 0, &sa},
        {MHD_OPTION_CONNECTION_LIMIT, 4096, NULL},
        {MHD_OPTION_THREAD_STACK_SIZE, 256 * 1024, NULL},
        {MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, 300, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    struct MHD_Daemon *d =
        MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                             MHD_USE_POLL | MHD_USE_ERROR_LOG,
                         (uint16_t)port, NULL, NULL, ft_on_request, &st, MHD_OPTION_ARRAY, options,
                         MHD_OPTION_NOTIFY_COMPLETED, ft_on_completed, NULL, MHD_OPTION_END);
    const union MHD_DaemonInfo *info = d ? MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT) : NULL;
    if (!info) {
        fprintf(stderr, "fake-threads: cannot listen on %s:%ld\n", host, port);
        if (d)
            MHD_stop_daemon(d);
        return 1;
    }
    printf("LISTENING http://%s:%u\n", host, (unsigned)info->port);
    fflush(stdout);

    while (sigwait(&sigs, &sig) != 0)
        ;
    MHD_stop_daemon(d); /* waits for every connection thread */
    ft_state_reset(&st);
    pthread_mutex_destroy(&st.lock);
    return 0;
}
