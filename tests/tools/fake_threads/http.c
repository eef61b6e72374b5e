/* The libmicrohttpd server: request parsing, routing, replies and every error body. */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fake.h"

typedef struct {
    int ep;
    char id[FT_ID_MAX]; /* user id (threads, threads_publish, publishing_limit) or container id */
} ft_route_t;

/* ------------------------------------------------------------------------ */
/* Requests                                                                */

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
void ft_url_decode(char *s)
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
const char *ft_param(const ft_request_t *rq, const char *name)
{
    for (int i = 0; i < rq->nform; i++)
        if (strcmp(rq->form[i].name, name) == 0)
            return rq->form[i].value;
    return MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, name);
}

/* The access token: form field, query parameter or Authorization: Bearer. */
const char *ft_param_token(const ft_request_t *rq)
{
    const char *v = ft_param(rq, "access_token");
    const char *auth =
        MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!v && auth && strncasecmp(auth, "Bearer ", 7) == 0)
        v = auth + 7;
    return v;
}

/* The fields parameter as a bit set over names[0..n); Meta refuses a field
 * the node type does not have (nested field syntax included). */
int ft_param_fields(const ft_request_t *rq, const char *const *names, int n, unsigned dflt,
                    const char *node, unsigned *out, ft_reply_t *rp)
{
    const char *p = ft_param(rq, "fields");

    *out = 0;
    while (p && *p) {
        size_t len;
        int i;
        p += strspn(p, " ,");
        len = strcspn(p, ",");
        while (len && p[len - 1] == ' ')
            len--;
        if (!len)
            break;
        for (i = 0; i < n && (strlen(names[i]) != len || strncmp(names[i], p, len) != 0); i++)
            ;
        if (i == n) {
            ft_graph_error(rp, 400, 100, 0,
                           "(#100) Tried accessing nonexisting field (%.*s) on node type (%s)",
                           (int)(len > 64 ? 64 : len), p, node);
            return -1;
        }
        *out |= 1u << i;
        p += strcspn(p, ",");
    }
    if (!*out)
        *out = dflt;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Replies and error bodies                                                */

void ft_reply_set(ft_reply_t *rp, int status, cJSON *body)
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
cJSON *ft_graph_error(ft_reply_t *rp, int status, long code, long subcode, const char *fmt, ...)
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
void ft_invalid_param(ft_reply_t *rp, const char *detail)
{
    cJSON *err = ft_graph_error(rp, 400, 100, 0, "Invalid parameter");
    cJSON_AddStringToObject(err, "error_user_msg", detail);
}

void ft_no_object(ft_reply_t *rp, const ft_request_t *rq, const char *id)
{
    ft_graph_error(
        rp, 400, 100, 33,
        "Unsupported %s request. Object with ID '%s' does not exist, cannot be loaded due to "
        "missing permissions, or does not support this operation",
        rq->is_post ? "post" : "get", id);
}

/* RFC 6749 §5.2 error reply. */
void ft_oauth_error(ft_reply_t *rp, int status, const char *error, const char *description)
{
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "error", error);
    if (description)
        cJSON_AddStringToObject(body, "error_description", description);
    ft_reply_set(rp, status, body);
    rp->www_authenticate = status == 401;
}

void ft_ctl_error(ft_reply_t *rp, int status, const char *fmt, ...)
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

void ft_ctl_ok(ft_reply_t *rp)
{
    cJSON *body = cJSON_CreateObject();
    cJSON_AddTrueToObject(body, "ok");
    ft_reply_set(rp, 200, body);
}

/* ------------------------------------------------------------------------ */
/* Graph requests: routing, failure injection, accounting                  */

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
    if (!slash && get && strcmp(rt->id, "debug_token") == 0)
        rt->ep = FT_EP_DEBUG;
    else if (!slash && get)
        rt->ep = strcmp(rt->id, "me") == 0 ? FT_EP_ME : FT_EP_CONTAINER;
    else if (slash && get && strcmp(slash, "/threads_publishing_limit") == 0)
        rt->ep = FT_EP_LIMIT;
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
    case FT_EP_LIMIT:
        if (strcmp(rt->id, "me") != 0)
            return rt->id;
        t = ft_map_get(&st->tokens, ft_param_token(rq));
        break;
    case FT_EP_CONTAINER:
        if ((c = ft_map_get(&st->containers, rt->id)))
            return c->user->id;
        t = ft_map_get(&st->tokens, ft_param_token(rq));
        break;
    case FT_EP_REFRESH:
    case FT_EP_ME:
    case FT_EP_DEBUG:
        t = ft_map_get(&st->tokens, ft_param_token(rq));
        break;
    case FT_EP_OAUTH2:
        t = ft_map_get(&st->tokens, ft_param(rq, "refresh_token"));
        break;
    }
    return t ? t->user->id : NULL;
}

/* The endpoint the route names. @locks_required st->lock */
static void ft_graph_endpoint(ft_state_t *st, const ft_request_t *rq, const ft_route_t *rt,
                              ft_reply_t *rp)
{
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
    case FT_EP_ME:
        ft_ep_me(st, rq, rp);
        break;
    case FT_EP_LIMIT:
        ft_ep_publishing_limit(st, rq, rt->id, rp);
        break;
    case FT_EP_DEBUG:
        ft_ep_debug_token(st, rq, rp);
        break;
    default:
        ft_graph_error(rp, 404, 100, 0, "Unknown path components or unsupported method");
    }
}

/* The endpoint's answer, or an injected failure instead of it or on top of
 * it; either way counted. @locks_required st->lock */
static void ft_graph_dispatch(ft_state_t *st, const ft_request_t *rq, const ft_route_t *rt,
                              ft_reply_t *rp)
{
    const char *user = ft_request_user(st, rq, rt);
    const ft_failure_t *f = ft_failure_take(st, rt->ep, user);
    ft_user_t *u;

    if (!f || ft_failure_processed(f))
        ft_graph_endpoint(st, rq, rt, rp);
    if (f)
        ft_failure_apply(st, f, rt->ep, rp);
    if (rp->status < 400 && !rp->fault)
        return;
    st->errors_by_ep[rt->ep]++;
    if ((rt->ep == FT_EP_REFRESH || rt->ep == FT_EP_OAUTH2) && (u = ft_map_get(&st->users, user)))
        u->failed_refreshes++;
}

/* A Threads API request: count it, sleep the injected latency without the
 * lock (only this connection waits), then answer; an injected hang waits
 * after the endpoint, still counted in flight, with the lock released. */
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
    if (rp->fault == FT_FAULT_HANG)
        ft_state_wait(st, rp->hang_ms);
    st->in_flight--;
    pthread_mutex_unlock(&st->lock);
}

/* ------------------------------------------------------------------------ */
/* The server                                                              */

/* A proxy's error page (nginx's shape): no Graph error anywhere in it. */
static char *ft_html_page(int status)
{
    const char *reason = MHD_get_reason_phrase_for((unsigned)status);
    size_t size = 2 * strlen(reason) + 160;
    char *page = ft_xmalloc(size);

    snprintf(page, size,
             "<html>\r\n<head><title>%d %s</title></head>\r\n<body>\r\n"
             "<center><h1>%d %s</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n"
             "</html>\r\n",
             status, reason, status, reason);
    return page;
}

/* FT_FAULT_SHORT_BODY: the response promises the whole text and delivers
 * the first `sent` bytes, then libmicrohttpd closes the connection. */
typedef struct {
    char *text;
    size_t sent;
} ft_short_body_t;

static ssize_t ft_short_body_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    const ft_short_body_t *sb = cls;
    size_t n;

    if (pos >= sb->sent)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    n = sb->sent - pos < max ? sb->sent - pos : max;
    memcpy(buf, sb->text + pos, n);
    return (ssize_t)n;
}

static void ft_short_body_free(void *cls)
{
    ft_short_body_t *sb = cls;
    free(sb->text);
    free(sb);
}

/* The response for rp with text as its body (takes ownership of text), cut
 * as rp's fault says; NULL if libmicrohttpd cannot make one. */
static struct MHD_Response *ft_response_new(const ft_reply_t *rp, char *text)
{
    size_t len = strlen(text);
    struct MHD_Response *resp;

    if (rp->fault == FT_FAULT_SHORT_BODY) {
        ft_short_body_t *sb = ft_xmalloc(sizeof *sb);
        *sb = (ft_short_body_t){text, len / 2};
        resp = MHD_create_response_from_callback(len, 4096, ft_short_body_read, sb,
                                                 ft_short_body_free);
        if (!resp)
            ft_short_body_free(sb);
        return resp;
    }
    if (rp->fault == FT_FAULT_CUT_JSON)
        len /= 2; /* no prefix of a JSON object is JSON */
    resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!resp)
        free(text);
    return resp;
}

/* A TCP reset instead of libmicrohttpd's orderly close (which sends FIN
 * first): with SO_LINGER 0 the socket's last close resets it, and dup2()
 * makes that close happen now, leaving libmicrohttpd a placeholder socket
 * to shut down and close. Without a placeholder the connection just closes. */
static void ft_reset_connection(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    int placeholder = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (ci && placeholder >= 0 &&
        setsockopt(ci->connect_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0)
        dup2(placeholder, ci->connect_fd);
    if (placeholder >= 0)
        close(placeholder);
}

static enum MHD_Result ft_send(struct MHD_Connection *conn, ft_reply_t *rp)
{
    bool html = rp->fault == FT_FAULT_HTML;
    char *text = NULL, num[32];
    struct MHD_Response *resp;
    enum MHD_Result ret;

    if (rp->fault == FT_FAULT_RESET)
        ft_reset_connection(conn);
    if (rp->fault != FT_FAULT_CLOSE && rp->fault != FT_FAULT_RESET && rp->fault != FT_FAULT_HANG)
        text = html ? ft_html_page(rp->status) : cJSON_PrintUnformatted(rp->body);
    cJSON_Delete(rp->body);
    if (!text || !(resp = ft_response_new(rp, text)))
        return MHD_NO; /* libmicrohttpd closes the connection without a response */
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            html ? "text/html" : "application/json; charset=UTF-8");
    if (rp->retry_after > 0) {
        snprintf(num, sizeof num, "%ld", rp->retry_after);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, num);
    }
    /* A proxy's page is not the authorization server's answer: no challenge. */
    if (rp->www_authenticate && !html)
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
        ft_control_serve(st, rq, url + 11, method, &rp);
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

struct MHD_Daemon *ft_http_start(ft_state_t *st, const struct sockaddr_in *sa, const char *cert_pem,
                                 const char *key_pem, uint16_t *port)
{
    /* One thread per connection, so an injected sleep blocks only its own
     * connection; poll() because thousands of sockets exceed FD_SETSIZE.
     * With a certificate the same server speaks TLS (libmicrohttpd's GnuTLS):
     * the faults (close, reset, hang...) then happen under TLS, as a real
     * HTTPS endpoint's would. */
    struct MHD_OptionItem options[8] = {
        {MHD_OPTION_SOCK_ADDR, 0, (void *)sa},
        {MHD_OPTION_CONNECTION_LIMIT, 4096, NULL},
        {MHD_OPTION_THREAD_STACK_SIZE, 256 * 1024, NULL},
        {MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, 300, NULL},
    };
    size_t n = 5;
    if (cert_pem) {
        options[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)cert_pem};
        options[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)key_pem};
    }
    options[n] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    unsigned int flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                         MHD_USE_POLL | MHD_USE_ERROR_LOG | (cert_pem ? MHD_USE_TLS : 0);
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, ntohs(sa->sin_port), NULL, NULL, ft_on_request, st, MHD_OPTION_ARRAY, options,
        MHD_OPTION_NOTIFY_COMPLETED, ft_on_completed, NULL, MHD_OPTION_END);
    const union MHD_DaemonInfo *info = d ? MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT) : NULL;

    if (!info) {
        if (d)
            MHD_stop_daemon(d);
        return NULL;
    }
    *port = info->port;
    return d;
}
