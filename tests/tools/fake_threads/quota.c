/* The publishing quota: a user's publications in a moving window of the fake
 * clock, threads_publish's refusal past quota_total, threads_publishing_limit
 * and the control that seeds usage.
 *
 * A user's quota is the sorted list of the fake times of its publications
 * (threads_publish successes and seeded ones). Usage is the number of them
 * later than now - quota_duration: a binary search, so that a benchmark's
 * thousands of publications cost nothing. The list keeps its old entries
 * until /__control/reset: moving the clock back brings them back, as it
 * should. Times are sorted even when the clock moved back between two
 * publications: a new entry is inserted in its place (usually the end). */
#include <string.h>

#include "fake.h"

#define FT_QUOTA_SEED_MAX 100000 /* per POST /__control/quota */

/* Meta documents no Threads error for a reached publishing limit; this is the
 * one Instagram's content publishing answers (see CHOICES in fake.h). */
#define FT_QUOTA_CODE 9
#define FT_QUOTA_SUBCODE 2207042
#define FT_QUOTA_MESSAGE                                                                           \
    "You reached maximum number of posts that is allowed to be published by Content Publishing "   \
    "API."

/* The index of the first entry later than ms. */
static size_t ft_quota_after(const ft_user_t *u, int64_t ms)
{
    size_t lo = 0, hi = u->quota.n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (u->quota.ms[mid] <= ms)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

long ft_quota_usage(const ft_state_t *st, const ft_user_t *u)
{
    int64_t since = ft_now_ms(st) - st->set.quota_duration * 1000LL;
    return (long)(u->quota.n - ft_quota_after(u, since));
}

void ft_quota_record(ft_state_t *st, ft_user_t *u, long n)
{
    int64_t now = ft_now_ms(st);
    size_t at;

    if (n <= 0)
        return;
    if (u->quota.n + (size_t)n > u->quota.cap) {
        u->quota.cap = (u->quota.n + (size_t)n) * 2;
        u->quota.ms = ft_xrealloc(u->quota.ms, u->quota.cap * sizeof *u->quota.ms);
    }
    at = ft_quota_after(u, now);
    memmove(u->quota.ms + at + n, u->quota.ms + at, (u->quota.n - at) * sizeof *u->quota.ms);
    for (long i = 0; i < n; i++)
        u->quota.ms[at + (size_t)i] = now;
    u->quota.n += (size_t)n;
}

bool ft_quota_reject(ft_state_t *st, ft_user_t *u, ft_reply_t *rp)
{
    if (ft_quota_usage(st, u) < st->set.quota_total)
        return false;
    cJSON *err = ft_graph_error(rp, 400, FT_QUOTA_CODE, FT_QUOTA_SUBCODE, "%s", FT_QUOTA_MESSAGE);
    cJSON_AddBoolToObject(err, "is_transient", false);
    cJSON_AddStringToObject(err, "error_user_msg", FT_QUOTA_MESSAGE);
    u->quota_rejections++;
    return true;
}

enum { FT_LF_QUOTA_USAGE, FT_LF_CONFIG };
static const char *const ft_limit_fields[] = {"quota_usage", "config"};

/* GET /v1.0/{user-id}/threads_publishing_limit?fields=quota_usage,config:
 * {"data": [{"quota_usage": N, "config": {"quota_total", "quota_duration"}}]}
 * with the requested fields (quota_usage by default). */
void ft_ep_publishing_limit(ft_state_t *st, const ft_request_t *rq, const char *user_id,
                            ft_reply_t *rp)
{
    const int n = (int)(sizeof ft_limit_fields / sizeof ft_limit_fields[0]);
    const ft_token_t *t = ft_auth(st, rq, user_id, FT_SCOPE_BASIC | FT_SCOPE_PUBLISH, rp);
    unsigned f;

    if (!t || ft_param_fields(rq, ft_limit_fields, n, 1u << FT_LF_QUOTA_USAGE,
                              "ThreadsPublishingLimit", &f, rp) != 0)
        return;
    cJSON *body = cJSON_CreateObject(), *data = cJSON_AddArrayToObject(body, "data");
    cJSON *item = cJSON_CreateObject(), *config;
    cJSON_AddItemToArray(data, item);
    if (f & (1u << FT_LF_QUOTA_USAGE))
        cJSON_AddNumberToObject(item, "quota_usage", (double)ft_quota_usage(st, t->user));
    if (f & (1u << FT_LF_CONFIG)) {
        config = cJSON_AddObjectToObject(item, "config");
        cJSON_AddNumberToObject(config, "quota_total", (double)st->set.quota_total);
        cJSON_AddNumberToObject(config, "quota_duration", (double)st->set.quota_duration);
    }
    ft_reply_set(rp, 200, body);
}

/* POST /__control/quota {"user_id": ..., "usage": N}: records N publications
 * of the user at the fake clock's now (on top of those in the window), so
 * that a test fills the quota without publishing; answers the usage after. */
void ft_ctl_quota(ft_state_t *st, const cJSON *in, const ft_request_t *rq, ft_reply_t *rp)
{
    const char *uid = cJSON_GetStringValue(cJSON_GetObjectItem(in, "user_id"));
    long usage;
    ft_user_t *u;
    (void)rq;

    if (!uid || !*uid || strlen(uid) >= FT_ID_MAX ||
        ft_json_long(cJSON_GetObjectItem(in, "usage"), 0, FT_QUOTA_SEED_MAX, &usage) != 0) {
        ft_ctl_error(rp, 400, "user_id (non-empty string) and usage (0 to %d) are required",
                     FT_QUOTA_SEED_MAX);
        return;
    }
    u = ft_user_get(st, uid);
    ft_quota_record(st, u, usage);
    cJSON *body = cJSON_CreateObject();
    cJSON_AddTrueToObject(body, "ok");
    cJSON_AddNumberToObject(body, "quota_usage", (double)ft_quota_usage(st, u));
    cJSON_AddNumberToObject(body, "quota_total", (double)st->set.quota_total);
    cJSON_AddNumberToObject(body, "quota_duration", (double)st->set.quota_duration);
    ft_reply_set(rp, 200, body);
}
