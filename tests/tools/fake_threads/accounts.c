/* Accounts and tokens: token checks, the profile (GET /v1.0/me), refresh_access_token and
 * the OAuth2 refresh_token grant. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fake.h"

/* Scope i is bit i (FT_SCOPE_BASIC, FT_SCOPE_PUBLISH are the first two). */
static const char *const ft_scope_names[] = {
    "threads_basic",          "threads_content_publish",  "threads_manage_replies",
    "threads_read_replies",   "threads_manage_insights",  "threads_keyword_search",
    "threads_delete",         "threads_location_tagging", "threads_profile_discovery",
    "threads_manage_mentions"};
_Static_assert(sizeof ft_scope_names / sizeof ft_scope_names[0] == FT_NSCOPES,
               "FT_NSCOPES counts ft_scope_names");

ft_token_t *ft_token_add(ft_state_t *st, char *value, ft_user_t *u, bool is_refresh,
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

bool ft_token_usable(const ft_token_t *t, int64_t now)
{
    return !t->revoked_subcode && !t->refreshed && !t->used && now < t->expires_ms;
}

int ft_revoke_user(ft_user_t *u, int subcode)
{
    for (size_t i = 0; i < u->tokens.n; i++)
        ((ft_token_t *)u->tokens.v[i])->revoked_subcode = subcode;
    return (int)u->tokens.n;
}

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
 * refresh, expired, another user's ("me" in a path is the token's user),
 * missing scope. Returns the token, or NULL with the error in rp.
 * @locks_required st->lock */
ft_token_t *ft_auth(ft_state_t *st, const ft_request_t *rq, const char *path_user, unsigned need,
                    ft_reply_t *rp)
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
    } else if (path_user && strcmp(path_user, "me") != 0 && strcmp(path_user, t->user->id) != 0)
        ft_no_object(rp, rq, path_user);
    else if ((t->scopes & need) != need)
        ft_graph_error(rp, 403, 10, 0, "Application does not have permission for this action");
    else
        return t;
    return NULL;
}

/* The profile fields of a Threads user (Meta's Threads Profiles reference);
 * id is the default. */
enum { FT_PF_ID, FT_PF_USERNAME, FT_PF_NAME, FT_PF_PICTURE, FT_PF_BIOGRAPHY, FT_PF_VERIFIED };
static const char *const ft_profile_fields[] = {
    "id", "username", "name", "threads_profile_picture_url", "threads_biography", "is_verified"};

/* GET /v1.0/me?fields=id,username,...: the token's user, needs threads_basic. */
void ft_ep_me(ft_state_t *st, const ft_request_t *rq, ft_reply_t *rp)
{
    const int n = (int)(sizeof ft_profile_fields / sizeof ft_profile_fields[0]);
    const ft_token_t *t = ft_auth(st, rq, NULL, FT_SCOPE_BASIC, rp);
    char pic[FT_ID_MAX + 64];
    unsigned f;

    if (!t || ft_param_fields(rq, ft_profile_fields, n, 1u << FT_PF_ID, "User", &f, rp) != 0)
        return;
    cJSON *body = cJSON_CreateObject();
    if (f & (1u << FT_PF_ID))
        cJSON_AddStringToObject(body, "id", t->user->id);
    if (f & (1u << FT_PF_USERNAME))
        cJSON_AddStringToObject(body, "username", t->user->username);
    if (f & (1u << FT_PF_NAME))
        cJSON_AddStringToObject(body, "name", t->user->username);
    if (f & (1u << FT_PF_PICTURE)) {
        snprintf(pic, sizeof pic, "https://fake-threads.invalid/profile/%s.jpg", t->user->id);
        cJSON_AddStringToObject(body, "threads_profile_picture_url", pic);
    }
    if (f & (1u << FT_PF_BIOGRAPHY))
        cJSON_AddStringToObject(body, "threads_biography", "");
    if (f & (1u << FT_PF_VERIFIED))
        cJSON_AddFalseToObject(body, "is_verified");
    ft_reply_set(rp, 200, body);
}

/* GET /v1.0/debug_token?input_token=...&access_token=...: what Meta knows
 * of input_token; the caller's access_token must pass the token checks. */
void ft_ep_debug_token(ft_state_t *st, const ft_request_t *rq, ft_reply_t *rp)
{
    if (!ft_auth(st, rq, NULL, 0, rp))
        return;
    const char *input = ft_param(rq, "input_token");
    const ft_token_t *t = input ? ft_map_get(&st->tokens, input) : NULL;
    cJSON *body = cJSON_CreateObject(), *data = cJSON_AddObjectToObject(body, "data");
    cJSON *scopes;
    cJSON_AddStringToObject(data, "type", "USER");
    cJSON_AddStringToObject(data, "application", "fake-threads");
    if (!t || t->is_refresh) {
        cJSON_AddFalseToObject(data, "is_valid");
        cJSON_AddArrayToObject(data, "scopes");
        ft_reply_set(rp, 200, body);
        return;
    }
    cJSON_AddStringToObject(data, "user_id", t->user->id);
    cJSON_AddBoolToObject(data, "is_valid", ft_token_usable(t, ft_now_ms(st)));
    cJSON_AddNumberToObject(data, "issued_at", (double)(t->issued_ms / 1000));
    cJSON_AddNumberToObject(data, "expires_at", (double)(t->expires_ms / 1000));
    scopes = cJSON_AddArrayToObject(data, "scopes");
    for (int i = 0; i < FT_NSCOPES; i++)
        if (t->scopes & (1u << i))
            cJSON_AddItemToArray(scopes, cJSON_CreateString(ft_scope_names[i]));
    ft_reply_set(rp, 200, body);
}

/* GET /refresh_access_token?grant_type=th_refresh_token&access_token=... */
void ft_ep_refresh(ft_state_t *st, const ft_request_t *rq, ft_reply_t *rp)
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

int ft_scope_index(const char *name, size_t len)
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
void ft_ep_oauth2(ft_state_t *st, const ft_request_t *rq, ft_reply_t *rp)
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

/* (Re-)registers a token with fresh state; the same value may not change user or kind. */
ft_token_t *ft_token_register(ft_state_t *st, const char *value, ft_user_t *u, bool is_refresh,
                              unsigned scopes, int64_t issued_ms, int64_t expires_ms)
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
