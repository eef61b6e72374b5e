/* The fake Threads API's shared state, types and the functions its parts share.
 *
 * A fake Threads (Meta Graph) API for the black-box tests, the demo and the
 * benchmark. It serves what publish-worker calls, with Meta's validation rules
 * and error shapes: container creation (POST /v1.0/{user-id}/threads),
 * container status (GET /v1.0/{container-id}), publishing
 * (POST /v1.0/{user-id}/threads_publish) within the publishing quota, the
 * quota's usage (GET /v1.0/{user-id}/threads_publishing_limit), the token's
 * profile (GET /v1.0/me), the long-lived token refresh
 * (GET /refresh_access_token) and an RFC 6749 §6 token endpoint
 * (POST /oauth2/token). A JSON control API under /__control/ lets a test
 * register and revoke tokens, inject failures, add latency, move a fake clock,
 * fill a user's publishing quota and read counters.
 *
 * THE ENDPOINTS and their names (in stats, failures and latency settings)
 * - threads: POST /v1.0/{user-id}/threads. threads_publish: POST
 *   /v1.0/{user-id}/threads_publish. Both need threads_basic and
 *   threads_content_publish.
 * - container: GET /v1.0/{container-id}?fields=status,error_message;
 *   threads_basic.
 * - me: GET /v1.0/me?fields=id,username,name,threads_profile_picture_url,
 *   threads_biography,is_verified (default: id); threads_basic. username is
 *   user_<id> unless POST /__control/tokens named one; name is the username,
 *   the picture a URL under fake-threads.invalid, the biography empty,
 *   is_verified false.
 * - publishing_limit: GET /v1.0/{user-id}/threads_publishing_limit
 *   ?fields=quota_usage,config (default: quota_usage) answers
 *   {"data": [{"quota_usage": N, "config": {"quota_total": 250,
 *   "quota_duration": 86400}}]} with the requested fields; threads_basic and
 *   threads_content_publish.
 * - debug_token: GET /v1.0/debug_token?input_token=T&access_token=T answers
 *   {"data": {"type": "USER", "application": "fake-threads", "user_id",
 *   "scopes": [...], "is_valid", "issued_at", "expires_at"}} (unix seconds)
 *   for input_token, as Meta's Threads troubleshooting guide shows; the
 *   access_token must pass the token checks (no scope needed), an unknown
 *   input_token answers is_valid false with no scopes.
 * - refresh: GET /refresh_access_token. oauth2: POST /oauth2/token.
 * - other: anything else (404, code 100).
 * Every Graph endpoint runs Meta's token checks (ft_auth: unknown 190,
 * revoked 190/subcode, replaced by a refresh 190/467, expired 190/463,
 * another user's path 100/33, missing scope 10). "me" in a path is the
 * token's user, as on Meta's hosts.
 *
 * THE PUBLISHING QUOTA (quota.c): a user's usage is the number of its
 * publications (threads_publish successes, a carousel counting once, and
 * those seeded with POST /__control/quota) in the last quota_duration seconds
 * of the fake clock. A threads_publish that would take usage past quota_total
 * is refused with HTTP 400, code 9, error_subcode 2207042 (see CHOICES) and
 * publishes nothing; advancing the clock past the window frees the quota.
 *
 * THE PARTS, in the order a request meets them
 * - main.c: the command line, signals, start-up and shutdown; with
 *   --tls-port, a second listener that serves the same state over HTTPS.
 * - http.c: the libmicrohttpd server. It reads a request (form body, query,
 *   headers), routes it to the control API or to a Graph endpoint, counts and
 *   delays Graph requests, and sends the reply. It also builds every error
 *   body (Graph, OAuth2, control), so that an error has one shape wherever it
 *   is raised.
 * - faults.c: injected failures: the queue that POST /__control/failures
 *   fills and that every Graph request consults before its endpoint runs.
 * - accounts.c: users' tokens: Meta's token checks, the profile (me),
 *   debug_token,
 *   refresh_access_token and the OAuth2 refresh_token grant.
 * - containers.c: media containers, their states and threads_publish.
 * - quota.c: the publishing quota, threads_publishing_limit and
 *   POST /__control/quota.
 * - control.c: the rest of /__control/: reset, tokens, revoke, settings
 *   (latency, token rules, container timing, quota), the fake clock and the
 *   counters.
 * - state.c: the one ft_state_t, its reset, users and the fake clock.
 * - util.c: memory, randomness, time, a vector and a string-keyed hash table.
 * http.c calls the endpoints and the control API, never the other way round:
 * they see HTTP only through ft_request_t, ft_reply_t and http.c's helpers
 * that read the one and build the other.
 *
 * DESIGN
 * - libmicrohttpd with one thread per connection: injected latency is a plain
 *   sleep that blocks only its own connection, so 512 delayed connections are
 *   512 concurrent requests, which is what the benchmark wants to observe.
 * - All state is one ft_state_t behind one mutex. A handler builds its reply
 *   (a cJSON tree, independent of the state) under the lock and the reply is
 *   serialised and sent after unlocking. Nothing sleeps with the lock held:
 *   an injected hang waits on a condition variable, which releases it.
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
 * - Meta documents no error for a reached Threads publishing limit (only the
 *   limit: 250 posts in a moving 24 h, enforced on threads_publish). The fake
 *   answers the one Instagram's Content Publishing API documents for its own
 *   limit: HTTP 400, code 9, error_subcode 2207042, "You reached maximum
 *   number of posts that is allowed to be published by Content Publishing
 *   API." (also in error_user_msg), is_transient false. It is checked after
 *   every container check, so an already published container still answers
 *   4279002 and a bad creation_id "Invalid parameter".
 * - The quota counts every publication, replies too (Meta counts replies
 *   against a separate 1,000 a day, which the fake does not model); a
 *   publication counts while it is less than quota_duration old, and one the
 *   clock was moved back before counts until then too.
 * - threads_publishing_limit serves quota_usage and config only; the real
 *   endpoint's reply_, delete_ and location_search_ quota fields, like any
 *   unknown field of either endpoint, answer Meta's 400 "(#100) Tried
 *   accessing nonexisting field (F) on node type (T)". Its default field is
 *   quota_usage, as Instagram's content_publishing_limit documents (Threads
 *   documents none). GET /v1.0/{user-id} is a container status, never a
 *   profile: the profile is served at /v1.0/me only.
 * - The OAuth2 endpoint authenticates the client first (HTTP Basic, or the
 *   client_id and client_secret fields) against --oauth-client-id and
 *   --oauth-client-secret (pw-client and pw-secret by default): any other
 *   client gets RFC 6749's 401 invalid_client with a WWW-Authenticate: Basic
 *   challenge, whatever its grant.
 *
 * CONTROL API: JSON in and out under /__control/, never delayed, failed or
 * counted (tests/integration/harness.py's FakeThreads wraps it)
 * - POST reset: drops every token, container, failure, setting and counter.
 * - POST tokens {access_token, user_id, refresh_token, expires_in or
 *   expires_at, issued_at, scopes, username}; POST revoke {user_id,
 *   access_token or refresh_token, subcode}; GET tokens/issued;
 *   GET tokens/current?user_id=. username (1 to 30 letters, digits, periods,
 *   underscores) renames the user; absent, it stays as it was.
 * - GET, POST settings {latency_ms, latency_ms_by_endpoint, token_error_status,
 *   invalidate_on_refresh, oauth_rotate, container_ready_ms,
 *   refresh_expires_in, oauth_expires_in, quota_total (default 250, 0 to
 *   1000000), quota_duration (seconds, default 86400)}. Latency delays every
 *   request (of an endpoint) until changed: for one request of one user,
 *   inject a hang.
 * - POST quota {user_id, usage}: records `usage` (0 to 100000) publications
 *   of the user at the fake clock's now, on top of those already in the
 *   window, without any post; answers {ok, quota_usage (after), quota_total,
 *   quota_duration}.
 * - GET, POST clock {advance_s}: the fake clock.
 * - GET stats: requests, errors and injected failures by endpoint, injected
 *   failures by kind, publications, refreshes and failed refreshes by user,
 *   quota_usage (users with any) and quota_rejections by user,
 *   quota_rejections_total, requests in flight and their peak;
 *   POST stats/reset_peak.
 * - POST failures, DELETE failures: below.
 *
 * FAILURE INJECTION: POST /__control/failures queues one entry, or all of
 * {"entries": [...]} or none. A Graph or OAuth2 request takes one use of the
 * first entry that matches it and has uses left. Fields, all optional:
 * - user_id: "*" (default) or the user whose requests fail: the path's user,
 *   the container's owner, or the holder of the (refresh) token (for me, and
 *   for a path that says "me").
 * - endpoint: "*" (default), threads, threads_publish, container, refresh,
 *   oauth2, me, publishing_limit or other.
 * - count: how many requests fail (default 1): a burst of 502s is count 5.
 * - kind, what the client gets:
 *   - json (default): the API's error JSON, with status (default 500), code
 *     (2), subcode, type (derived from the code) and message; on oauth2 an
 *     RFC 6749 error whose "error" is the message (message "invalid_client"
 *     or "unauthorized_client" refuses the client), with a WWW-Authenticate
 *     challenge when the status is 401, as the real endpoint's.
 *   - html: an HTML error page (Content-Type text/html, no JSON) with status,
 *     as a proxy's 401, 403 or 502 during an incident; never with a
 *     WWW-Authenticate challenge, on oauth2 neither (the authorization server
 *     did not answer).
 *   - close: the connection closes (FIN) without a response; curl reports
 *     "Empty reply from server".
 *   - reset: the connection is reset (RST) without a response; curl reports
 *     "Connection reset by peer".
 *   - short_body: the headers promise the whole body (Content-Length), half
 *     of it is sent, then the connection closes; curl reports a partial file.
 *   - cut_json: a complete response, Content-Length right, whose JSON body
 *     is cut in half.
 *   - hang: nothing is sent for hang_ms (default 120000; at most an hour),
 *     then the connection closes. A reset ends every hang at once.
 *   libmicrohttpd logs "Application reported internal error" on stderr for
 *   close, reset and hang: that is the injection.
 * - processed: false (default): the request never reaches the endpoint.
 *   true: the endpoint handles it first (a container is created, a post
 *   published, a token refreshed) and the failure replaces its answer, as
 *   when an answer is lost after the work is done; short_body and cut_json
 *   then cut the endpoint's own answer, status included.
 * - retry_after: seconds, sent as Retry-After with json and html.
 * Every injected failure counts in stats' injected_failures (by kind) and
 * injected_failures_by_endpoint, and as an error in errors_by_endpoint (and,
 * on refresh and oauth2, in the user's failed_refreshes), whatever its status.
 * Failures have a count, not a probability: tests stay deterministic.
 */
#ifndef FT_FAKE_H
#define FT_FAKE_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cJSON.h>
#include <microhttpd.h>

#define FT_DAY_MS (86400 * 1000LL)
#define FT_BODY_MAX (1024 * 1024)
#define FT_MAX_PARAMS 64
#define FT_ID_MAX 128
#define FT_DEFAULT_EXPIRES_IN 5184000 /* 60 days, a long-lived token */

enum {
    FT_EP_THREADS,
    FT_EP_PUBLISH,
    FT_EP_CONTAINER,
    FT_EP_REFRESH,
    FT_EP_OAUTH2,
    FT_EP_ME,    /* GET /v1.0/me */
    FT_EP_LIMIT, /* GET /v1.0/{user-id}/threads_publishing_limit */
    FT_EP_DEBUG, /* GET /v1.0/debug_token */
    FT_EP_OTHER,
    FT_EP_COUNT
};
extern const char *const ft_ep_names[FT_EP_COUNT];

enum { FT_TEXT, FT_IMAGE, FT_VIDEO, FT_CAROUSEL, FT_MEDIA_COUNT };
extern const char *const ft_media_names[FT_MEDIA_COUNT];

/* Scopes are bits, in the order of accounts.c's names; the first two are the
 * ones the endpoints check. */
#define FT_NSCOPES 10
#define FT_SCOPE_BASIC 1u
#define FT_SCOPE_PUBLISH 2u
#define FT_SCOPES_ALL ((1u << FT_NSCOPES) - 1)

/* How an injected failure reaches the client (see FAILURE INJECTION above). */
enum {
    FT_FAULT_NONE,       /* an ordinary reply */
    FT_FAULT_JSON,       /* the API's own error JSON */
    FT_FAULT_HTML,       /* an HTML error page, as a proxy's */
    FT_FAULT_CLOSE,      /* the connection closes (FIN) without a response */
    FT_FAULT_RESET,      /* the connection is reset (RST) without a response */
    FT_FAULT_SHORT_BODY, /* Content-Length of the whole body, half of it sent, then close */
    FT_FAULT_CUT_JSON,   /* a complete response whose JSON body is cut in the middle */
    FT_FAULT_HANG,       /* nothing for hang_ms (or until a reset), then close */
    FT_FAULT_COUNT
};
extern const char *const ft_fault_names[FT_FAULT_COUNT];

/* ------------------------------------------------------------------------ */
/* Containers of pointers and a string-keyed hash table (util.c)             */

typedef struct {
    void **v;
    size_t n, cap;
} ft_vec_t;

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
    char *username;  /* user_<id> unless POST /__control/tokens named one */
    ft_vec_t tokens; /* ft_token_t *, oldest first, not owned */
    ft_vec_t pubs;   /* ft_container_t *, in publication order, not owned */
    long refreshes, failed_refreshes;
    /* Fake times of the publications that count against the publishing quota
     * (threads_publish successes and seeded ones), sorted (quota.c). */
    struct {
        int64_t *ms;
        size_t n, cap;
    } quota;
    long quota_rejections;
};

/* One queued failure; its fields are faults.c's business. */
typedef struct ft_failure ft_failure_t;

typedef struct {
    long latency_ms;
    long latency_by_ep[FT_EP_COUNT]; /* -1: latency_ms applies */
    long token_error_status;
    bool invalidate_on_refresh, oauth_rotate;
    long container_ready_ms[FT_MEDIA_COUNT];
    long refresh_expires_in, oauth_expires_in;
    long quota_total, quota_duration; /* publications per quota_duration seconds */
} ft_settings_t;

typedef struct {
    /* Fixed for the process lifetime. */
    pthread_mutex_t lock;
    const char *client_id, *client_secret;
    /* Never reset: ids stay unique across tests, and requests that are in
     * flight during a reset still end and decrement in_flight. */
    uint64_t next_container_id, next_media_id;
    long in_flight;
    /* Injected hangs wait on wake; a reset bumps epoch and a shutdown sets
     * stopping, and both broadcast it, so that no hang outlives its test. */
    pthread_cond_t wake;
    uint64_t epoch;
    bool stopping;
    /* Everything from here on is per-test: /__control/reset frees and zeroes it. */
    ft_settings_t set;
    int64_t clock_offset_ms;
    ft_map_t tokens, containers, users;
    ft_vec_t token_list, container_list, user_list, failures; /* owners, creation order */
    long requests_total, requests_by_ep[FT_EP_COUNT], errors_by_ep[FT_EP_COUNT];
    long publications_total, double_publish_attempts, containers_created, peak_in_flight;
    long injected_by_kind[FT_FAULT_COUNT], injected_by_ep[FT_EP_COUNT];
} ft_state_t;

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
    int fault;    /* FT_FAULT_*: how http.c delivers the reply */
    long hang_ms; /* FT_FAULT_HANG: how long nothing is sent */
} ft_reply_t;

/* ------------------------------------------------------------------------ */
/* util.c: out of memory aborts, so call sites carry no NULL checks          */

void ft_oom(void);
void *ft_xmalloc(size_t n);
void *ft_xrealloc(void *p, size_t n);
char *ft_xstrdup(const char *s);
/** @brief Fills out[0..n) with random letters and digits and terminates it. */
void ft_random_chars(char *out, size_t n);
int64_t ft_real_ms(void);
void ft_sleep_ms(long ms);
/** @brief "Tuesday, 24-Nov-26 20:00:00 UTC", the shape of Meta's expiry messages. */
void ft_format_time(int64_t ms, char *buf, size_t size);
void ft_vec_push(ft_vec_t *vec, void *p);
/** @returns the value under key, or NULL (also for a NULL key). */
void *ft_map_get(const ft_map_t *m, const char *key);
/** @brief Adds or replaces; key must live as long as val (it is usually inside it). */
void ft_map_put(ft_map_t *m, const char *key, void *val);
/** @brief An integral JSON number within [lo, hi] into *out. @returns 0 or -1. */
int ft_json_long(const cJSON *it, long lo, long hi, long *out);

/* ------------------------------------------------------------------------ */
/* state.c                                                                   */

/** @brief The state with empty per-test parts; caller frees with ft_state_destroy().
 * client_id and client_secret are borrowed for the state's lifetime. */
ft_state_t *ft_state_new(const char *client_id, const char *client_secret);
void ft_state_destroy(ft_state_t *st);
/** @brief Frees and zeroes the per-test state. @locks_required st->lock (or no
 * other thread running) */
void ft_state_reset(ft_state_t *st);
/** @brief Stops every injected hang, now and to come (at shutdown). Takes st->lock. */
void ft_state_stop(ft_state_t *st);
/** @brief Waits up to ms with st->lock released, ending early at a reset or at
 * shutdown. @locks_required st->lock */
void ft_state_wait(ft_state_t *st, long ms);
/** @brief The fake clock. @locks_required st->lock */
int64_t ft_now_ms(const ft_state_t *st);
/** @brief The user with this id, created on first use. @locks_required st->lock */
ft_user_t *ft_user_get(ft_state_t *st, const char *id);
/** @returns FT_EP_* for an endpoint name, or -1. */
int ft_ep_parse(const char *s);
/** @returns FT_TEXT... for a media_type, or -1 (also for NULL). */
int ft_media_parse(const char *s);

/* ------------------------------------------------------------------------ */
/* http.c: request parameters and replies                                    */

/** @brief application/x-www-form-urlencoded decoding in place. */
void ft_url_decode(char *s);
/** @brief A request parameter: the form body first, then the query string. */
const char *ft_param(const ft_request_t *rq, const char *name);
/** @brief The access token: form field, query parameter or Authorization: Bearer. */
const char *ft_param_token(const ft_request_t *rq);
/** @brief The fields parameter (comma separated) as a bit set over names[0..n):
 * bit i for names[i]; absent or empty means dflt. @returns 0, or -1 with Meta's
 * "nonexisting field" error on the node type `node` in rp. */
int ft_param_fields(const ft_request_t *rq, const char *const *names, int n, unsigned dflt,
                    const char *node, unsigned *out, ft_reply_t *rp);
/** @brief Replaces rp's status and body; takes ownership of body. */
void ft_reply_set(ft_reply_t *rp, int status, cJSON *body);
/** @brief Sets a Graph API error reply. @returns its "error" object for extra fields. */
__attribute__((format(printf, 5, 6))) cJSON *ft_graph_error(ft_reply_t *rp, int status, long code,
                                                            long subcode, const char *fmt, ...);
/** @brief 400 "Invalid parameter" with the detail in error_user_msg, as Meta does. */
void ft_invalid_param(ft_reply_t *rp, const char *detail);
/** @brief 100/33: the object does not exist or is not the token's to see. */
void ft_no_object(ft_reply_t *rp, const ft_request_t *rq, const char *id);
/** @brief RFC 6749 §5.2 error reply; description may be NULL. */
void ft_oauth_error(ft_reply_t *rp, int status, const char *error, const char *description);
/** @brief A control API error: {"error": "..."}. */
__attribute__((format(printf, 3, 4))) void ft_ctl_error(ft_reply_t *rp, int status, const char *fmt,
                                                        ...);
/** @brief A control API success: {"ok": true}. */
void ft_ctl_ok(ft_reply_t *rp);
/** @brief Starts the server on sa (port 0: the kernel picks) with st as its
 * state; with cert_pem and key_pem (PEM text, NULL for plain HTTP) it serves
 * HTTPS. @returns the daemon, or NULL; *port is the bound port. */
struct MHD_Daemon *ft_http_start(ft_state_t *st, const struct sockaddr_in *sa, const char *cert_pem,
                                 const char *key_pem, uint16_t *port);

/* ------------------------------------------------------------------------ */
/* faults.c (@locks_required st->lock for all)                               */

void ft_failure_free(ft_failure_t *f);
/** @brief Takes one use of the first queued failure that matches the request.
 * @returns it (still owned by the queue, valid while st->lock is held), or NULL. */
const ft_failure_t *ft_failure_take(ft_state_t *st, int ep, const char *user);
/** @returns true when the endpoint handles the request before f replaces its answer. */
bool ft_failure_processed(const ft_failure_t *f);
/** @brief Turns rp into the injected failure (an error body, or a way of
 * delivering rp's own body) and counts it. */
void ft_failure_apply(ft_state_t *st, const ft_failure_t *f, int ep, ft_reply_t *rp);
/** @brief POST /__control/failures: one entry, or {"entries": [...]}. */
void ft_ctl_failures_add(ft_state_t *st, const cJSON *in, const ft_request_t *rq, ft_reply_t *rp);
/** @brief DELETE /__control/failures. */
void ft_ctl_failures_clear(ft_state_t *st, const cJSON *in, const ft_request_t *rq, ft_reply_t *rp);

/* ------------------------------------------------------------------------ */
/* accounts.c (@locks_required st->lock for all)                             */

/** @brief Registers a token; takes ownership of value. */
ft_token_t *ft_token_add(ft_state_t *st, char *value, ft_user_t *u, bool is_refresh,
                         unsigned scopes, int64_t issued_ms, int64_t expires_ms);
/** @brief (Re-)registers a token with fresh state (value is copied).
 * @returns NULL when the value belongs to another user or is the other kind. */
ft_token_t *ft_token_register(ft_state_t *st, const char *value, ft_user_t *u, bool is_refresh,
                              unsigned scopes, int64_t issued_ms, int64_t expires_ms);
bool ft_token_usable(const ft_token_t *t, int64_t now);
/** @brief Revokes every token of u. @returns how many. */
int ft_revoke_user(ft_user_t *u, int subcode);
/** @returns the scope's bit number, or -1 for an unknown name. */
int ft_scope_index(const char *name, size_t len);
/** @brief Meta's token checks. @returns the token, or NULL with the error in rp. */
ft_token_t *ft_auth(ft_state_t *st, const ft_request_t *rq, const char *path_user, unsigned need,
                    ft_reply_t *rp);
/** @brief GET /refresh_access_token */
void ft_ep_refresh(ft_state_t *st, const ft_request_t *rq, ft_reply_t *rp);
/** @brief POST /oauth2/token */
void ft_ep_oauth2(ft_state_t *st, const ft_request_t *rq, ft_reply_t *rp);
/** @brief GET /v1.0/me?fields=id,username,... */
void ft_ep_me(ft_state_t *st, const ft_request_t *rq, ft_reply_t *rp);
/** @brief GET /v1.0/debug_token?input_token=... */
void ft_ep_debug_token(ft_state_t *st, const ft_request_t *rq, ft_reply_t *rp);

/* ------------------------------------------------------------------------ */
/* containers.c (@locks_required st->lock for all)                           */

/** @brief POST /v1.0/{user-id}/threads */
void ft_ep_threads(ft_state_t *st, const ft_request_t *rq, const char *user_id, ft_reply_t *rp);
/** @brief GET /v1.0/{container-id} */
void ft_ep_container(ft_state_t *st, const ft_request_t *rq, const char *id, ft_reply_t *rp);
/** @brief POST /v1.0/{user-id}/threads_publish */
void ft_ep_publish(ft_state_t *st, const ft_request_t *rq, const char *user_id, ft_reply_t *rp);

/* ------------------------------------------------------------------------ */
/* quota.c (@locks_required st->lock for all)                                */

/** @returns u's publications within the last quota_duration seconds of the fake clock. */
long ft_quota_usage(const ft_state_t *st, const ft_user_t *u);
/** @brief Records n publications of u at the fake clock's now. */
void ft_quota_record(ft_state_t *st, ft_user_t *u, long n);
/** @brief Answers threads_publish's "publishing limit reached" error when one
 * more publication of u would exceed quota_total, and counts the rejection.
 * @returns true when it did (the caller must not publish). */
bool ft_quota_reject(ft_state_t *st, ft_user_t *u, ft_reply_t *rp);
/** @brief GET /v1.0/{user-id}/threads_publishing_limit */
void ft_ep_publishing_limit(ft_state_t *st, const ft_request_t *rq, const char *user_id,
                            ft_reply_t *rp);
/** @brief POST /__control/quota {user_id, usage} */
void ft_ctl_quota(ft_state_t *st, const cJSON *in, const ft_request_t *rq, ft_reply_t *rp);

/* ------------------------------------------------------------------------ */
/* control.c                                                                 */

/** @brief /__control/{path}: JSON in, JSON out, never delayed or counted.
 * Takes st->lock itself. */
void ft_control_serve(ft_state_t *st, const ft_request_t *rq, const char *path, const char *method,
                      ft_reply_t *rp);

#endif
