/* Token verification (token_verify.h). */
#include "token_verify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *pw_verify_outcome_name(pw_verify_outcome_t outcome)
{
    static const char *const names[] = {"ok",         "expired",    "revoked", "missing_scope",
                                        "wrong_user", "unreachable"};
    _Static_assert(PW_ARRAY_SIZE(names) == PW_VERIFY_COUNT, "a name per outcome");
    return names[outcome];
}

/* What a failed call says about the token: the same reading a failed post
 * gets. Anything that is not the platform judging the token is no verdict. */
static pw_verify_outcome_t pw_verify_outcome_of(const pw_api_error_t *err)
{
    switch (err->auth) {
    case PW_AUTH_EXPIRED:
        return PW_VERIFY_EXPIRED;
    case PW_AUTH_REVOKED:
    case PW_AUTH_INVALID_TOKEN:
        return PW_VERIFY_REVOKED;
    case PW_AUTH_MISSING_SCOPE:
        return PW_VERIFY_MISSING_SCOPE;
    case PW_AUTH_WRONG_ACCOUNT:
        return PW_VERIFY_WRONG_USER;
    case PW_AUTH_NONE:
        break;
    }
    return PW_VERIFY_UNREACHABLE;
}

static void pw_verify_failed(pw_verification_t *out, const char *what)
{
    const pw_api_error_t *e = &out->err;
    out->outcome = pw_verify_outcome_of(e);
    const char *meaning[] = {
        [PW_VERIFY_EXPIRED] = "the token has expired: reconnect the account",
        [PW_VERIFY_REVOKED] = "the token was revoked or is not valid: reconnect the account",
        [PW_VERIFY_MISSING_SCOPE] = "the token lacks a permission: reconnect granting it",
        [PW_VERIFY_WRONG_USER] = "the token belongs to another user or app",
        [PW_VERIFY_UNREACHABLE] = "the API could not be asked",
    };
    snprintf(out->message, sizeof(out->message), "%s (%s: %s %s, HTTP %d, code %d, subcode %d: %s)",
             meaning[out->outcome], what, e->endpoint, pw_error_class_name(e->cls), e->http_status,
             e->code, e->subcode, e->message);
}

/* The first scope of wanted (comma-separated) not in granted, or NULL. */
static char *pw_scope_missing(const char *wanted, const char *granted)
{
    char *copy = pw_strdup(wanted), *save = NULL, *missing = NULL;
    for (char *s = strtok_r(copy, ", ", &save); s && !missing; s = strtok_r(NULL, ", ", &save)) {
        size_t len = strlen(s);
        const char *g = granted;
        bool found = false;
        while (g && *g && !found) {
            size_t glen = strcspn(g, ",");
            found = glen == len && strncmp(g, s, len) == 0;
            g += glen + (g[glen] == ',');
        }
        if (!found)
            missing = pw_strdup(s);
    }
    free(copy);
    return missing;
}

/* Whether scopes names any scope that publishing does not already prove. */
static bool pw_scopes_beyond_publishing(const char *scopes)
{
    char *beyond =
        scopes ? pw_scope_missing(scopes, "threads_basic,threads_content_publish") : NULL;
    free(beyond);
    return beyond != NULL;
}

static void pw_verify_scopes(pw_http_t *http, const char *base_url, const pw_secret_t *token,
                             const char *scopes, pw_verification_t *out)
{
    char *granted = NULL;
    if (pw_threads_granted_scopes(http, base_url, token, &granted, &out->err) == -1) {
        pw_verify_failed(out, "reading the token's scopes");
        return;
    }
    char *missing = pw_scope_missing(scopes, granted);
    if (missing) {
        out->outcome = PW_VERIFY_MISSING_SCOPE;
        pw_api_error_make(&out->err, PW_EP_DEBUG, PW_EC_PERMISSION, PW_AUTH_MISSING_SCOPE, false,
                          200, "the token lacks the scope %s", missing);
        snprintf(out->message, sizeof(out->message),
                 "the token lacks the scope %s (it has %s): reconnect granting it", missing,
                 *granted ? granted : "none");
    }
    free(missing);
    free(granted);
}

void pw_token_verify(pw_http_t *http, const char *base_url, const char *user_id,
                     const pw_secret_t *token, const char *scopes, pw_verification_t *out)
{
    memset(out, 0, sizeof(*out));
    out->outcome = PW_VERIFY_OK;
    if (pw_threads_me(http, base_url, token, out->token_user_id, &out->err) == -1) {
        pw_verify_failed(out, "asking whose token it is");
        return;
    }
    if (strcmp(out->token_user_id, user_id) != 0) {
        out->outcome = PW_VERIFY_WRONG_USER;
        pw_api_error_make(&out->err, PW_EP_ME, PW_EC_AUTH, PW_AUTH_WRONG_ACCOUNT, false, 200,
                          "the token belongs to user %s, not %s", out->token_user_id, user_id);
        snprintf(out->message, sizeof(out->message),
                 "the token belongs to user %s, not %s: wrong account or environment?",
                 out->token_user_id, user_id);
        return;
    }
    if (pw_threads_publishing_limit(http, base_url, user_id, token, &out->quota, &out->err) == -1) {
        pw_verify_failed(out, "asking whether it may publish");
        return;
    }
    if (pw_scopes_beyond_publishing(scopes))
        pw_verify_scopes(http, base_url, token, scopes, out);
    if (out->outcome == PW_VERIFY_OK)
        snprintf(out->message, sizeof(out->message),
                 "the token is user %s's and may publish (%ld of %ld posts used in %lds)", user_id,
                 out->quota.usage, out->quota.total, out->quota.duration_s);
}
