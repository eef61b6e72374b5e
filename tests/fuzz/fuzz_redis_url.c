/* Fuzz target: the REDIS_URL parser (pw_redis_new(), common/redis.c, which
 * opens no connection; check-config in common/config.c uses the same).
 *
 * Input: the URL (cut at a NUL, as the environment would).
 * Invariants: a pool or a reason, never both; the reason names REDIS_URL; a
 * pool describes itself as "host:port/db" with the URL's host, a port of 1
 * to 65535 and a database of 0 to 65535, followed by " (TLS)" exactly for a
 * rediss:// URL (which a build without TLS refuses); and the password never shows: the
 * same URL with another password of the same length gives the same
 * description or the same reason. */
#include "fuzz.h"
#include "redis.h"

typedef struct {
    int ok;
    char text[256]; /* describe, or errstr */
} pw_fuzz_outcome_t;

static void pw_fuzz_parse(const char *url, pw_fuzz_outcome_t *out)
{
    memset(out->text, 'x', sizeof(out->text));
    pw_redis_t *redis = pw_redis_new(url, 1, 1000, out->text, sizeof(out->text));
    out->ok = redis != NULL;
    if (redis) {
        snprintf(out->text, sizeof(out->text), "%s", pw_redis_describe(redis));
        pw_redis_destroy(redis);
    } else {
        PW_FUZZ_CHECK(pw_fuzz_terminated(out->text, sizeof(out->text)));
    }
}

/* Where the part after redis:// or rediss:// starts; 0 for another scheme. */
static size_t pw_fuzz_scheme_len(const char *url)
{
    return strncmp(url, "redis://", 8) == 0 ? 8 : strncmp(url, "rediss://", 9) == 0 ? 9 : 0;
}

/* The password of redis[s]://[[user]:password@]host...: from the first ':'
 * before the last '@'; *len 0 and NULL when there is none. */
static char *pw_fuzz_password(char *url, size_t *len)
{
    *len = 0;
    size_t skip = pw_fuzz_scheme_len(url);
    if (!skip)
        return NULL;
    char *p = url + skip, *at = strrchr(p, '@');
    char *colon = at ? memchr(p, ':', (size_t)(at - p)) : NULL;
    if (!colon)
        return NULL;
    *len = (size_t)(at - colon - 1);
    return colon + 1;
}

static void pw_fuzz_check_describe(const char *described, const char *url)
{
    char describe[256];
    snprintf(describe, sizeof(describe), "%s", described);
    size_t skip = pw_fuzz_scheme_len(url), n = strlen(describe);
    PW_FUZZ_CHECK(skip != 0);
    bool tls = n >= 6 && strcmp(describe + n - 6, " (TLS)") == 0;
    if (n < 255) {
        PW_FUZZ_CHECK(tls == (skip == 9));
        if (tls)
            describe[n - 6] = '\0';
    }
    const char *at = strrchr(url + skip, '@'), *host = at ? at + 1 : url + skip;
    const char *colon = strrchr(describe, ':');
    if (strlen(describe) >= 255) {
        /* Cut short (a host name has at most 253 characters): the host's start. */
        PW_FUZZ_CHECK(strncmp(describe, host, colon ? (size_t)(colon - describe) : 255) == 0);
        return;
    }
    PW_FUZZ_CHECK(colon && colon > describe);
    PW_FUZZ_CHECK(strncmp(describe, host, (size_t)(colon - describe)) == 0);
    char *end;
    long port = strtol(colon + 1, &end, 10);
    PW_FUZZ_CHECK(port >= 1 && port <= 65535 && *end == '/');
    long db = strtol(end + 1, &end, 10);
    PW_FUZZ_CHECK(db >= 0 && db <= 65535 && *end == '\0');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *url = pw_fuzz_cstr(data, size);
    pw_fuzz_outcome_t out;
    pw_fuzz_parse(url, &out);
    if (out.ok)
        pw_fuzz_check_describe(out.text, url);
    else
        PW_FUZZ_CHECK(strncmp(out.text, "REDIS_URL: ", 11) == 0);

    size_t len;
    char *password = pw_fuzz_password(url, &len);
    if (password && len > 0) {
        for (size_t i = 0; i < len; i++)
            password[i] = password[i] == 'Z' ? 'Y' : 'Z';
        pw_fuzz_outcome_t other;
        pw_fuzz_parse(url, &other);
        PW_FUZZ_CHECK(other.ok == out.ok && strcmp(other.text, out.text) == 0);
    }
    free(url);
    return 0;
}
