/* Media containers: creation rules, their states, status checks and threads_publish
 * (which quota.c may refuse). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake.h"

#define FT_TEXT_MAX 500
#define FT_MEDIA_ERROR "Media download has failed. The media URI doesn't meet our requirements."

enum { FT_CS_IN_PROGRESS, FT_CS_FINISHED, FT_CS_PUBLISHED, FT_CS_ERROR, FT_CS_EXPIRED };
static const char *const ft_status_names[] = {"IN_PROGRESS", "FINISHED", "PUBLISHED", "ERROR",
                                              "EXPIRED"};

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
void ft_ep_threads(ft_state_t *st, const ft_request_t *rq, const char *user_id, ft_reply_t *rp)
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
void ft_ep_container(ft_state_t *st, const ft_request_t *rq, const char *id, ft_reply_t *rp)
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
    ft_quota_record(st, c->user, 1); /* a carousel is one publication */
    st->publications_total++;
    cJSON_AddStringToObject(body, "id", c->media_id);
    ft_reply_set(rp, 200, body);
}

/* POST /v1.0/{user-id}/threads_publish */
void ft_ep_publish(ft_state_t *st, const ft_request_t *rq, const char *user_id, ft_reply_t *rp)
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
    else if (!ft_quota_reject(st, t->user, rp)) /* last: only a publishable container counts */
        ft_publish(st, c, now, rp);
}
