/* Injected failures: the queue the control API fills and every Graph request consults. */
#include <stdlib.h>
#include <string.h>

#include "fake.h"

#define FT_HANG_DEFAULT_MS 120000 /* past every client timeout the worker has by default */

const char *const ft_fault_names[FT_FAULT_COUNT] = {"none",  "json",       "html",     "close",
                                                    "reset", "short_body", "cut_json", "hang"};

/* One entry of POST /__control/failures: see FAILURE INJECTION in fake.h. */
struct ft_failure {
    char *user_id; /* NULL: any user */
    int endpoint;  /* FT_EP_* or -1: any */
    long status, code, subcode, count, retry_after;
    char *type, *message; /* type NULL: derived from code */
    int kind;             /* FT_FAULT_*, never FT_FAULT_NONE */
    bool processed;       /* the endpoint answers first; the failure replaces its answer */
    long hang_ms;         /* FT_FAULT_HANG only */
};

void ft_failure_free(ft_failure_t *f)
{
    free(f->user_id);
    free(f->type);
    free(f->message);
    free(f);
}

const ft_failure_t *ft_failure_take(ft_state_t *st, int ep, const char *user)
{
    for (size_t i = 0; i < st->failures.n; i++) {
        ft_failure_t *f = st->failures.v[i];
        if (f->count <= 0 || (f->endpoint >= 0 && f->endpoint != ep) ||
            (f->user_id && (!user || strcmp(f->user_id, user) != 0)))
            continue;
        f->count--;
        return f;
    }
    return NULL;
}

bool ft_failure_processed(const ft_failure_t *f)
{
    return f->processed;
}

void ft_failure_apply(ft_state_t *st, const ft_failure_t *f, int ep, ft_reply_t *rp)
{
    st->injected_by_kind[f->kind]++;
    st->injected_by_ep[ep]++;
    rp->fault = f->kind;
    rp->hang_ms = f->hang_ms;
    /* Nothing is sent at all, or the endpoint's own answer is what gets cut. */
    if (f->kind == FT_FAULT_CLOSE || f->kind == FT_FAULT_RESET || f->kind == FT_FAULT_HANG ||
        (f->processed && (f->kind == FT_FAULT_SHORT_BODY || f->kind == FT_FAULT_CUT_JSON)))
        return;
    /* The error body; an HTML page only takes its status. */
    if (ep == FT_EP_OAUTH2)
        ft_oauth_error(rp, (int)f->status, f->message, NULL);
    else {
        cJSON *err = ft_graph_error(rp, (int)f->status, f->code, f->subcode, "%s", f->message);
        if (f->type)
            cJSON_ReplaceItemInObject(err, "type", cJSON_CreateString(f->type));
    }
    rp->retry_after = f->retry_after;
}

/* One field of a failure entry that is not a number into f. Returns -1 when
 * the field is unknown, repeated or of a bad value. */
static int ft_failure_field(const cJSON *it, ft_failure_t *f)
{
    const char *k = it->string, *sv = cJSON_GetStringValue(it);

    if (strcmp(k, "user_id") == 0 && sv && !f->user_id)
        f->user_id = strcmp(sv, "*") == 0 ? NULL : ft_xstrdup(sv);
    else if (strcmp(k, "endpoint") == 0 && sv) {
        if ((f->endpoint = ft_ep_parse(sv)) < 0 && strcmp(sv, "*") != 0)
            return -1;
    } else if (strcmp(k, "type") == 0 && sv && !f->type)
        f->type = ft_xstrdup(sv);
    else if (strcmp(k, "message") == 0 && sv && !f->message)
        f->message = ft_xstrdup(sv);
    else if (strcmp(k, "kind") == 0 && sv) {
        for (f->kind = FT_FAULT_COUNT - 1; f->kind > FT_FAULT_NONE; f->kind--)
            if (strcmp(sv, ft_fault_names[f->kind]) == 0)
                break;
        return f->kind == FT_FAULT_NONE ? -1 : 0;
    } else if (strcmp(k, "processed") == 0 && cJSON_IsBool(it))
        f->processed = cJSON_IsTrue(it);
    else
        return -1;
    return 0;
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
        {"hang_ms", offsetof(ft_failure_t, hang_ms), 0, 3600000},
    };
    const cJSON *it;

    *f = (ft_failure_t){
        .endpoint = -1, .status = 500, .code = 2, .count = 1, .kind = FT_FAULT_JSON, .hang_ms = -1};
    if (!cJSON_IsObject(o))
        return -1;
    cJSON_ArrayForEach(it, o)
    {
        size_t i = 0;
        while (i < sizeof ints / sizeof ints[0] && strcmp(it->string, ints[i].name) != 0)
            i++;
        if (i < sizeof ints / sizeof ints[0]
                ? ft_json_long(it, ints[i].lo, ints[i].hi, (long *)((char *)f + ints[i].off)) != 0
                : ft_failure_field(it, f) != 0)
            return -1;
    }
    if (f->hang_ms >= 0 && f->kind != FT_FAULT_HANG) /* a hang_ms that would do nothing */
        return -1;
    if (f->hang_ms < 0)
        f->hang_ms = f->kind == FT_FAULT_HANG ? FT_HANG_DEFAULT_MS : 0;
    if (!f->message)
        f->message = ft_xstrdup("Service temporarily unavailable");
    return 0;
}

/* POST: one entry, or {"entries": [...]}; all are queued or none. */
void ft_ctl_failures_add(ft_state_t *st, const cJSON *in, const ft_request_t *rq, ft_reply_t *rp)
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
                     "bad failure entry: fields are user_id, endpoint, count, kind, processed, "
                     "status, code, subcode, type, message, retry_after, hang_ms (kind hang)");
}

void ft_ctl_failures_clear(ft_state_t *st, const cJSON *in, const ft_request_t *rq, ft_reply_t *rp)
{
    (void)in;
    (void)rq;
    for (size_t i = 0; i < st->failures.n; i++)
        ft_failure_free(st->failures.v[i]);
    st->failures.n = 0;
    ft_ctl_ok(rp);
}
