/* Injected failures: the queue the control API fills and every Graph request consults. */
#include <stdlib.h>
#include <string.h>

#include "fake.h"

struct ft_failure {
    char *user_id; /* NULL: any user */
    int endpoint;  /* FT_EP_* or -1: any */
    long status, code, subcode, count, retry_after;
    char *type, *message; /* type NULL: derived from code */
};

void ft_failure_free(ft_failure_t *f)
{
    free(f->user_id);
    free(f->type);
    free(f->message);
    free(f);
}

bool ft_failure_inject(ft_state_t *st, int ep, const char *user, ft_reply_t *rp)
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
                     "bad failure entry: fields are user_id, endpoint, status, code, subcode, "
                     "type, message, count, retry_after");
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
