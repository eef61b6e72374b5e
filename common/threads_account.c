/* Threads API reads about an account's token (threads_account.h). */
#include "threads_account.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const PW_EP_ME = "GET /v1.0/me";
const char *const PW_EP_LIMIT = "GET /v1.0/{user-id}/threads_publishing_limit";
const char *const PW_EP_DEBUG = "GET /v1.0/debug_token";

/* A 200 whose body is not what Meta documents: the platform misbehaving,
 * not a verdict on the token. */
static int pw_threads_unexpected(const char *endpoint, cJSON *root, pw_api_error_t *err)
{
    cJSON_Delete(root);
    pw_api_error_make(err, endpoint, PW_EC_TRANSIENT, PW_AUTH_NONE, true, 200,
                      "%s answered 200 without the documented fields", endpoint);
    return -1;
}

int pw_threads_me(pw_http_t *http, const char *base_url, const pw_secret_t *token,
                  char id[PW_ID_MAX], pw_api_error_t *err)
{
    const pw_http_param_t params[] = {
        {"fields", "id,username"},
        {"access_token", pw_secret_reveal(token)},
    };
    cJSON *root;
    if (pw_threads_get_json(http, pw_asprintf("%s/v1.0/me", base_url), params,
                            PW_ARRAY_SIZE(params), PW_EPM_ME, PW_EP_ME, token, &root, err) == -1)
        return -1;
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, "id");
    if (!cJSON_IsString(item) || !item->valuestring[0] || strlen(item->valuestring) >= PW_ID_MAX)
        return pw_threads_unexpected(PW_EP_ME, root, err);
    snprintf(id, PW_ID_MAX, "%s", item->valuestring);
    cJSON_Delete(root);
    return 0;
}

static long pw_json_long(const cJSON *obj, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsNumber(item) && item->valuedouble >= 0 && item->valuedouble < 1e12
               ? (long)item->valuedouble
               : -1;
}

int pw_threads_publishing_limit(pw_http_t *http, const char *base_url, const char *user_id,
                                const pw_secret_t *token, pw_quota_t *quota, pw_api_error_t *err)
{
    const pw_http_param_t params[] = {
        {"fields", "quota_usage,config"},
        {"access_token", pw_secret_reveal(token)},
    };
    cJSON *root;
    memset(quota, 0, sizeof(*quota));
    if (pw_threads_get_json(
            http, pw_asprintf("%s/v1.0/%s/threads_publishing_limit", base_url, user_id), params,
            PW_ARRAY_SIZE(params), PW_EPM_LIMIT, PW_EP_LIMIT, token, &root, err) == -1)
        return -1;
    /* {"data": [{"quota_usage": N, "config": {"quota_total": M, "quota_duration": S}}]} */
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data");
    const cJSON *first = cJSON_IsArray(data) ? cJSON_GetArrayItem(data, 0) : NULL;
    const cJSON *config = cJSON_GetObjectItemCaseSensitive(first, "config");
    quota->usage = pw_json_long(first, "quota_usage");
    quota->total = pw_json_long(config, "quota_total");
    quota->duration_s = pw_json_long(config, "quota_duration");
    if (quota->usage < 0 || quota->total <= 0 || quota->duration_s <= 0)
        return pw_threads_unexpected(PW_EP_LIMIT, root, err);
    quota->known = true;
    cJSON_Delete(root);
    return 0;
}

int pw_threads_granted_scopes(pw_http_t *http, const char *base_url, const pw_secret_t *token,
                              char **scopes, pw_api_error_t *err)
{
    const pw_http_param_t params[] = {
        {"input_token", pw_secret_reveal(token)},
        {"access_token", pw_secret_reveal(token)},
    };
    cJSON *root;
    *scopes = NULL;
    if (pw_threads_get_json(http, pw_asprintf("%s/v1.0/debug_token", base_url), params,
                            PW_ARRAY_SIZE(params), PW_EPM_DEBUG, PW_EP_DEBUG, token, &root,
                            err) == -1)
        return -1;
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data");
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(data, "scopes"), *it;
    if (!cJSON_IsArray(list))
        return pw_threads_unexpected(PW_EP_DEBUG, root, err);
    size_t len = 1;
    cJSON_ArrayForEach(it, list) len += cJSON_IsString(it) ? strlen(it->valuestring) + 1 : 0;
    char *out = pw_calloc(1, len);
    cJSON_ArrayForEach(it, list)
    {
        if (!cJSON_IsString(it))
            continue;
        if (*out)
            strcat(out, ",");
        strcat(out, it->valuestring);
    }
    cJSON_Delete(root);
    *scopes = out;
    return 0;
}
