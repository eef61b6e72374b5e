/* Requests: publish.request.v1 parsing and validation. */
#include "request.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static const char *const pw_media_names[] = {"TEXT", "IMAGE", "VIDEO", "CAROUSEL"};
static const char *const pw_reply_controls[] = {
    "everyone",       "accounts_you_follow", "mentioned_only", "parent_post_author_only",
    "followers_only",
};

const char *pw_media_name(pw_media_t media)
{
    return pw_media_names[media];
}

int pw_utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            n = 1, cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2, cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3, cp = c & 0x07;
        } else {
            return 0;
        }
        if (i + n >= len)
            return 0;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        static const uint32_t min_for_len[] = {0, 0x80, 0x800, 0x10000};
        if (cp < min_for_len[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += n + 1;
    }
    return 1;
}

/* Emoji and their joiners, by the Unicode blocks that hold them. */
static int pw_is_emoji(uint32_t cp)
{
    return (cp >= 0x1F000 && cp <= 0x1FAFF) || (cp >= 0x2600 && cp <= 0x27BF) ||
           (cp >= 0x2300 && cp <= 0x23FF) || (cp >= 0x2B00 && cp <= 0x2BFF) ||
           (cp >= 0xFE00 && cp <= 0xFE0F) || cp == 0x200D || (cp >= 0xE0020 && cp <= 0xE007F);
}

size_t pw_request_text_length(const char *text)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t count = 0;
    while (*s) {
        size_t n = *s < 0x80 ? 1 : (*s & 0xE0) == 0xC0 ? 2 : (*s & 0xF0) == 0xE0 ? 3 : 4;
        uint32_t cp = n == 1 ? *s : (uint32_t)(*s & (0x7F >> n));
        for (size_t k = 1; k < n && s[k]; k++)
            cp = (cp << 6) | (s[k] & 0x3F);
        count += pw_is_emoji(cp) ? n : 1;
        s += n;
    }
    return count;
}

/* Code points of valid UTF-8. */
static size_t pw_utf8_length(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static int pw_count_substr(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

int pw_request_link_count(const char *text, const char *link_attachment)
{
    int links = 0;
    if (text)
        links = pw_count_substr(text, "http://") + pw_count_substr(text, "https://");
    if (link_attachment && !(text && strstr(text, link_attachment)))
        links++;
    return links;
}

void pw_request_destroy(pw_request_t *req)
{
    if (!req)
        return;
    free(req->event_id);
    free(req->post_id);
    free(req->account_id);
    free(req->text);
    free(req->image_url);
    free(req->video_url);
    free(req->reply_to_id);
    free(req->reply_control);
    free(req->link_attachment);
    for (size_t i = 0; i < req->child_count; i++)
        free(req->children[i].url);
    free(req->children);
    free(req);
}

/* A required id: a non-empty string. */
static const char *pw_id(const cJSON *obj, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsString(item) && item->valuestring[0] ? item->valuestring : NULL;
}

/* An optional string field: absent or null is fine, another type is not. */
static int pw_opt_string(const cJSON *obj, const char *name, char **out, char *errstr,
                         size_t errstr_size)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!item || cJSON_IsNull(item))
        return 0;
    if (!cJSON_IsString(item)) {
        pw_errstr_set(errstr, errstr_size, "post.%s must be a string or null", name);
        return -1;
    }
    *out = pw_strdup(item->valuestring);
    return 0;
}

static int pw_is_http_url(const char *url)
{
    return url && ((strncmp(url, "http://", 7) == 0 && url[7]) ||
                   (strncmp(url, "https://", 8) == 0 && url[8]));
}

static int pw_parse_media(const char *name, pw_media_t *media)
{
    for (size_t i = 0; i < PW_ARRAY_SIZE(pw_media_names); i++) {
        if (strcmp(name, pw_media_names[i]) == 0) {
            *media = (pw_media_t)i;
            return 0;
        }
    }
    return -1;
}

static int pw_parse_children(const cJSON *post, pw_request_t *req, char *errstr, size_t errstr_size)
{
    const cJSON *children = cJSON_GetObjectItemCaseSensitive(post, "children");
    if (!children || cJSON_IsNull(children)) {
        pw_errstr_set(errstr, errstr_size, "CAROUSEL needs post.children");
        return -1;
    }
    int n = cJSON_IsArray(children) ? cJSON_GetArraySize(children) : -1;
    if (n < PW_CAROUSEL_MIN || n > PW_CAROUSEL_MAX) {
        pw_errstr_set(errstr, errstr_size, "post.children must be an array of %d to %d items",
                      PW_CAROUSEL_MIN, PW_CAROUSEL_MAX);
        return -1;
    }
    req->children = pw_calloc((size_t)n, sizeof(pw_child_t));
    const cJSON *child;
    cJSON_ArrayForEach(child, children)
    {
        size_t i = req->child_count;
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(child, "media_type");
        pw_media_t media;
        if (!cJSON_IsString(type) || pw_parse_media(type->valuestring, &media) == -1 ||
            (media != PW_MEDIA_IMAGE && media != PW_MEDIA_VIDEO)) {
            pw_errstr_set(errstr, errstr_size,
                          "post.children[%zu].media_type must be IMAGE or VIDEO", i);
            return -1;
        }
        const char *field = media == PW_MEDIA_IMAGE ? "image_url" : "video_url";
        const cJSON *url = cJSON_GetObjectItemCaseSensitive(child, field);
        if (!cJSON_IsString(url) || !pw_is_http_url(url->valuestring)) {
            pw_errstr_set(errstr, errstr_size, "post.children[%zu].%s must be an http(s) URL", i,
                          field);
            return -1;
        }
        req->children[i].media_type = media;
        req->children[i].url = pw_strdup(url->valuestring);
        req->child_count++;
    }
    return 0;
}

/* The post's optional string fields, each a string or null. */
static int pw_read_post_strings(const cJSON *post, pw_request_t *req, char *errstr,
                                size_t errstr_size)
{
    if (pw_opt_string(post, "text", &req->text, errstr, errstr_size) == -1 ||
        pw_opt_string(post, "image_url", &req->image_url, errstr, errstr_size) == -1 ||
        pw_opt_string(post, "video_url", &req->video_url, errstr, errstr_size) == -1 ||
        pw_opt_string(post, "reply_to_id", &req->reply_to_id, errstr, errstr_size) == -1 ||
        pw_opt_string(post, "reply_control", &req->reply_control, errstr, errstr_size) == -1 ||
        pw_opt_string(post, "link_attachment", &req->link_attachment, errstr, errstr_size) == -1)
        return -1;
    return 0;
}

/* Checks that hold for every media type: text length, links, reply control. */
static int pw_validate_common(const pw_request_t *req, char *errstr, size_t errstr_size)
{
    size_t text_len = req->text ? pw_request_text_length(req->text) : 0;
    if (text_len > PW_TEXT_MAX) {
        pw_errstr_set(errstr, errstr_size, "post.text is %zu characters, at most %d", text_len,
                      PW_TEXT_MAX);
        return -1;
    }
    int links = pw_request_link_count(req->text, req->link_attachment);
    if (links > PW_LINKS_MAX) {
        pw_errstr_set(errstr, errstr_size, "post has %d links, at most %d", links, PW_LINKS_MAX);
        return -1;
    }
    if (req->link_attachment && !pw_is_http_url(req->link_attachment)) {
        pw_errstr_set(errstr, errstr_size, "post.link_attachment must be an http(s) URL");
        return -1;
    }
    if (req->reply_control) {
        int known = 0;
        for (size_t i = 0; i < PW_ARRAY_SIZE(pw_reply_controls); i++)
            known |= strcmp(req->reply_control, pw_reply_controls[i]) == 0;
        if (!known) {
            char quoted[65]; /* at most 64 bytes of it, whole characters */
            pw_utf8_copy(quoted, sizeof(quoted), req->reply_control);
            pw_errstr_set(errstr, errstr_size, "post.reply_control \"%s\" is not known", quoted);
            return -1;
        }
    }
    return 0;
}

/* What each media type needs. */
static int pw_validate_media(const cJSON *post, pw_request_t *req, char *errstr, size_t errstr_size)
{
    switch (req->media_type) {
    case PW_MEDIA_TEXT:
        if (!req->text || !req->text[0]) {
            pw_errstr_set(errstr, errstr_size, "TEXT needs post.text");
            return -1;
        }
        return 0;
    case PW_MEDIA_IMAGE:
    case PW_MEDIA_VIDEO: {
        int image = req->media_type == PW_MEDIA_IMAGE;
        if (!pw_is_http_url(image ? req->image_url : req->video_url)) {
            pw_errstr_set(errstr, errstr_size, "%s needs post.%s, an http(s) URL",
                          image ? "IMAGE" : "VIDEO", image ? "image_url" : "video_url");
            return -1;
        }
        return 0;
    }
    case PW_MEDIA_CAROUSEL:
        return pw_parse_children(post, req, errstr, errstr_size);
    }
    return 0;
}

/* Content checks of an identified request; -1 with the reason. */
static int pw_validate_post(const cJSON *root, pw_request_t *req, char *errstr, size_t errstr_size)
{
    if (pw_utf8_length(req->event_id) > 128 || pw_utf8_length(req->post_id) > 128 ||
        !pw_account_id_valid(req->account_id)) {
        pw_errstr_set(errstr, errstr_size,
                      "event_id, post_id and account_id must be 1 to 128 characters, account_id "
                      "of [A-Za-z0-9._:-]");
        return -1;
    }
    const cJSON *post = cJSON_GetObjectItemCaseSensitive(root, "post");
    if (!cJSON_IsObject(post)) {
        pw_errstr_set(errstr, errstr_size, "post must be an object");
        return -1;
    }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(post, "media_type");
    if (!cJSON_IsString(type) || pw_parse_media(type->valuestring, &req->media_type) == -1) {
        pw_errstr_set(errstr, errstr_size,
                      "post.media_type must be TEXT, IMAGE, VIDEO or CAROUSEL");
        return -1;
    }
    if (pw_read_post_strings(post, req, errstr, errstr_size) == -1 ||
        pw_validate_common(req, errstr, errstr_size) == -1)
        return -1;
    return pw_validate_media(post, req, errstr, errstr_size);
}

/* Where data holds a control character other than JSON's whitespace, or
 * len. RFC 8259 allows none (in strings they are escaped), but cJSON takes
 * them inside strings, and a NUL there would cut the string short. */
static size_t pw_json_control_at(const unsigned char *data, size_t len)
{
    size_t i = 0;
    while (i < len && (data[i] >= 0x20 || data[i] == '\t' || data[i] == '\n' || data[i] == '\r'))
        i++;
    return i;
}

pw_req_status_t pw_request_parse(const void *data, size_t len, pw_request_t **out,
                                 const char **dlq_class, char *errstr, size_t errstr_size)
{
    *out = NULL;
    *dlq_class = NULL;
    if (!pw_utf8_valid(data, len)) {
        *dlq_class = "not_json";
        pw_errstr_set(errstr, errstr_size, "value is not valid UTF-8");
        return PW_REQ_DEAD_LETTER;
    }
    size_t bad = pw_json_control_at(data, len);
    if (bad < len) {
        *dlq_class = "not_json";
        pw_errstr_set(errstr, errstr_size, "value is not JSON: control character at byte %zu", bad);
        return PW_REQ_DEAD_LETTER;
    }
    const char *end = NULL;
    cJSON *root = len ? cJSON_ParseWithLengthOpts(data, len, &end, 0) : NULL;
    if (root) {
        /* cJSON stops after the first value; anything but whitespace after it is not JSON. */
        while (end < (const char *)data + len && strchr(" \t\r\n", *end) && *end)
            end++;
        if (end != (const char *)data + len) {
            cJSON_Delete(root);
            root = NULL;
        }
    }
    if (!root) {
        *dlq_class = "not_json";
        pw_errstr_set(errstr, errstr_size, "value is not JSON");
        return PW_REQ_DEAD_LETTER;
    }
    pw_req_status_t status = PW_REQ_DEAD_LETTER;
    const cJSON *schema = cJSON_GetObjectItemCaseSensitive(root, "schema");
    if (!cJSON_IsObject(root)) {
        *dlq_class = "not_object";
        pw_errstr_set(errstr, errstr_size, "value is JSON but not an object");
    } else if (!cJSON_IsString(schema) || strcmp(schema->valuestring, "publish.request.v1") != 0) {
        *dlq_class = "unknown_schema";
        pw_errstr_set(errstr, errstr_size, "schema is not \"publish.request.v1\"");
    } else if (!pw_id(root, "event_id") || !pw_id(root, "post_id") || !pw_id(root, "account_id")) {
        *dlq_class = "missing_id";
        pw_errstr_set(errstr, errstr_size,
                      "event_id, post_id and account_id must be non-empty strings");
    } else {
        pw_request_t *req = pw_calloc(1, sizeof(*req));
        req->event_id = pw_strdup(pw_id(root, "event_id"));
        req->post_id = pw_strdup(pw_id(root, "post_id"));
        req->account_id = pw_strdup(pw_id(root, "account_id"));
        status =
            pw_validate_post(root, req, errstr, errstr_size) == 0 ? PW_REQ_VALID : PW_REQ_INVALID;
        *out = req;
    }
    cJSON_Delete(root);
    return status;
}
