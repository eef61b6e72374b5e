/* The control API under /__control/: reset, tokens, revoke, settings, clock, counters
 * (failures live in faults.c, quota in quota.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fake.h"

/* Every ft_ctl_ function runs with st->lock held (ft_control_serve takes it). */

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
    cJSON_AddNumberToObject(o, "quota_total", (double)s->quota_total);
    cJSON_AddNumberToObject(o, "quota_duration", (double)s->quota_duration);
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
    if (strcmp(k, "quota_total") == 0)
        return ft_json_long(it, 0, 1000000, &s->quota_total);
    if (strcmp(k, "quota_duration") == 0)
        return ft_json_long(it, 1, 1L << 31, &s->quota_duration);
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

/* A Threads (Instagram) username: 1 to 30 letters, digits, periods and underscores. */
static bool ft_username_ok(const cJSON *it)
{
    const char *s = cJSON_GetStringValue(it);
    size_t len = s ? strlen(s) : 0;
    return !it || cJSON_IsNull(it) ||
           (len >= 1 && len <= 30 &&
            strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._") == len);
}

static void ft_ctl_tokens(ft_state_t *st, const cJSON *in, const ft_request_t *rq, ft_reply_t *rp)
{
    const char *at = cJSON_GetStringValue(cJSON_GetObjectItem(in, "access_token"));
    const char *uid = cJSON_GetStringValue(cJSON_GetObjectItem(in, "user_id"));
    const cJSON *rtj = cJSON_GetObjectItem(in, "refresh_token"),
                *exp_in = cJSON_GetObjectItem(in, "expires_in");
    const cJSON *exp_at = cJSON_GetObjectItem(in, "expires_at"),
                *iss = cJSON_GetObjectItem(in, "issued_at"),
                *name = cJSON_GetObjectItem(in, "username");
    int64_t now = ft_now_ms(st), issued = now, expires = now + FT_DEFAULT_EXPIRES_IN * 1000LL;
    unsigned scopes;
    (void)rq;

    if (!at || !*at || !uid || !*uid || strlen(uid) >= FT_ID_MAX) {
        ft_ctl_error(rp, 400, "access_token and user_id (non-empty strings) are required");
        return;
    }
    if ((exp_in && !cJSON_IsNumber(exp_in)) || (exp_at && !cJSON_IsNumber(exp_at)) ||
        (iss && !cJSON_IsNumber(iss)) || (rtj && !cJSON_IsNull(rtj) && !cJSON_IsString(rtj)) ||
        ft_scopes_from_json(cJSON_GetObjectItem(in, "scopes"), &scopes) != 0 ||
        !ft_username_ok(name)) {
        ft_ctl_error(rp, 400,
                     "bad expires_in, expires_at, issued_at, refresh_token, scopes or username");
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
    if (cJSON_IsString(name)) {
        free(u->username);
        u->username = ft_xstrdup(name->valuestring);
    }
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

/* Injected failures served, by kind and by endpoint. */
static void ft_stats_injected(const ft_state_t *st, cJSON *o)
{
    cJSON *kinds = cJSON_AddObjectToObject(o, "injected_failures");
    cJSON *eps = cJSON_AddObjectToObject(o, "injected_failures_by_endpoint");

    for (int k = FT_FAULT_NONE + 1; k < FT_FAULT_COUNT; k++)
        cJSON_AddNumberToObject(kinds, ft_fault_names[k], (double)st->injected_by_kind[k]);
    for (int i = 0; i < FT_EP_COUNT; i++)
        cJSON_AddNumberToObject(eps, ft_ep_names[i], (double)st->injected_by_ep[i]);
}

static void ft_ctl_stats(ft_state_t *st, const cJSON *in, const ft_request_t *rq, ft_reply_t *rp)
{
    cJSON *o = cJSON_CreateObject(), *reqs, *errs, *pubs, *refr, *failr, *usage, *rejs;
    long rejections = 0, n;
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
    usage = cJSON_AddObjectToObject(o, "quota_usage");
    rejs = cJSON_AddObjectToObject(o, "quota_rejections");
    for (size_t i = 0; i < st->user_list.n; i++) {
        const ft_user_t *u = st->user_list.v[i];
        if ((n = ft_quota_usage(st, u)))
            cJSON_AddNumberToObject(usage, u->id, (double)n);
        if (u->quota_rejections)
            cJSON_AddNumberToObject(rejs, u->id, (double)u->quota_rejections);
        rejections += u->quota_rejections;
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
    cJSON_AddNumberToObject(o, "quota_rejections_total", (double)rejections);
    ft_stats_injected(st, o);
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
    {"POST", "quota", ft_ctl_quota},
};

void ft_control_serve(ft_state_t *st, const ft_request_t *rq, const char *path, const char *method,
                      ft_reply_t *rp)
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
