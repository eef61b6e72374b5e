/* Fuzz target: the token record decoder (pw_token_store_parse(),
 * common/token_store.c), from an HGETALL reply built by hand.
 *
 * Input: lines, alternately a field and its value, as redis-cli prints an
 * HGETALL (an odd last line is a field without a value). A value
 * "@seal:TEXT" is replaced by TEXT sealed for the line's field with the
 * ring's primary key A, "@sealB:" with its second key B, "@sealC:" with a
 * key C that is not in the ring; so the fuzzer reaches the decoder's success
 * path. The account is "acct-fuzz". A decoded token then goes where the
 * sweep takes it: pw_token_refresh_due() and pw_token_refresh_allowed().
 * Invariants: no reply elements, NOT_FOUND; else OK or UNREADABLE; an OK
 * token carries the account, the sealed plaintexts of the first
 * access_token and refresh_token fields, the key id that sealed the access
 * token, and the numbers as stored: a record whose numbers cannot be read
 * as written is UNREADABLE, never read as something else. */
#include <errno.h>
#include <hiredis/hiredis.h>

#include "crypto.h"
#include "fuzz.h"
#include "token_refresh.h"
#include "token_store.h"

#define PW_FUZZ_ACCOUNT "acct-fuzz"
#define PW_FUZZ_KEY_A "A:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
#define PW_FUZZ_KEY_B "B:ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="
#define PW_FUZZ_KEY_C "C:Q0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0M="
#define PW_FUZZ_MAX_FIELDS 64

/* The store's ring (A seals, B opens too) and the rings that seal with B
 * and with C; made once, kept for the process. */
static pw_keyring_t *pw_fuzz_rings[3];
static pw_token_store_t *pw_fuzz_store;

static void pw_fuzz_init(void)
{
    if (pw_fuzz_store)
        return;
    static const char *const texts[] = {PW_FUZZ_KEY_A "\n" PW_FUZZ_KEY_B, PW_FUZZ_KEY_B,
                                        PW_FUZZ_KEY_C};
    char errstr[256];
    for (size_t i = 0; i < PW_ARRAY_SIZE(texts); i++) {
        pw_fuzz_rings[i] = pw_keyring_parse(texts[i], "fuzz", errstr, sizeof(errstr));
        PW_FUZZ_CHECK(pw_fuzz_rings[i] != NULL);
    }
    pw_fuzz_store = pw_token_store_new(NULL, pw_fuzz_rings[0]); /* the decoder needs no Redis */
}

static redisReply *pw_fuzz_string(const char *s, size_t len)
{
    redisReply *r = pw_calloc(1, sizeof(*r));
    r->type = REDIS_REPLY_STRING;
    r->str = pw_strndup(s, len);
    r->len = len;
    return r;
}

/* A value as stored: sealed for field if it asks to be, else as it came. */
static redisReply *pw_fuzz_value(const char *field, const char *v, size_t len, char **plain)
{
    static const char *const marks[] = {"@seal:", "@sealB:", "@sealC:"};
    for (size_t i = 0; i < PW_ARRAY_SIZE(marks); i++) {
        size_t n = strlen(marks[i]);
        if (len >= n && memcmp(v, marks[i], n) == 0) {
            pw_secret_t *pt = pw_secret_new(v + n, len - n);
            char *ctx = pw_asprintf("%s\n%s", PW_FUZZ_ACCOUNT, field);
            char *sealed = pw_crypto_seal(pw_fuzz_rings[i], pt, ctx);
            redisReply *r = pw_fuzz_string(sealed, strlen(sealed));
            *plain = pw_strndup(v + n, len - n);
            pw_secret_destroy(pt);
            free(ctx);
            free(sealed);
            return r;
        }
    }
    *plain = NULL;
    return pw_fuzz_string(v, len);
}

/* The first value of field, as the decoder reads it (up to a NUL). */
static const redisReply *pw_fuzz_field(const redisReply *hash, const char *field)
{
    for (size_t i = 0; i + 1 < hash->elements; i += 2)
        if (strcmp(hash->element[i]->str, field) == 0)
            return hash->element[i + 1];
    return NULL;
}

/* Whether s is a decimal integer (as "%" PRId64 writes it, leading zeros
 * aside) whose value is n. */
static int pw_fuzz_number_is(const char *s, int64_t n)
{
    const char *digits = s + (s[0] == '-');
    if (!*digits || strspn(digits, "0123456789") != strlen(digits))
        return 0;
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    return errno == 0 && v == n;
}

static void pw_fuzz_check_token(const redisReply *hash, char **plains, const pw_token_t *t)
{
    PW_FUZZ_CHECK(strcmp(t->account_id, PW_FUZZ_ACCOUNT) == 0);
    PW_FUZZ_CHECK(t->user_id && t->key_id && t->access_token);
    PW_FUZZ_CHECK(t->refresh_method == PW_REFRESH_THREADS ||
                  t->refresh_method == PW_REFRESH_OAUTH2);
    const redisReply *v;
    static const char *const numbers[] = {"issued_at", "expires_at", "updated_at_ms", "fence"};
    const int64_t values[] = {t->issued_at, t->expires_at, t->updated_at_ms, t->fence};
    for (size_t i = 0; i < PW_ARRAY_SIZE(numbers); i++)
        if ((v = pw_fuzz_field(hash, numbers[i])) != NULL)
            PW_FUZZ_CHECK(pw_fuzz_number_is(v->str, values[i]));
    if ((v = pw_fuzz_field(hash, "user_id")) != NULL)
        PW_FUZZ_CHECK(strcmp(v->str, t->user_id) == 0);
    if ((v = pw_fuzz_field(hash, "refresh_method")) != NULL)
        PW_FUZZ_CHECK(strcmp(v->str, pw_refresh_method_name(t->refresh_method)) == 0);
    /* Which plaintext each secret field was sealed from, if it was. */
    for (size_t i = 0; i + 1 < hash->elements; i += 2) {
        const char *field = hash->element[i]->str;
        int access = strcmp(field, "access_token") == 0;
        if (!access && strcmp(field, "refresh_token") != 0)
            continue;
        if (pw_fuzz_field(hash, field) != hash->element[i + 1])
            continue; /* not the first: the decoder reads the first */
        const pw_secret_t *s = access ? t->access_token : t->refresh_token;
        PW_FUZZ_CHECK(s != NULL);
        char *plain = plains[(i + 1) / 2];
        if (plain)
            PW_FUZZ_CHECK(strcmp(pw_secret_reveal(s), plain) == 0);
        if (access)
            PW_FUZZ_CHECK(strncmp(hash->element[i + 1]->str, t->key_id, strlen(t->key_id)) == 0);
    }
    if (!pw_fuzz_field(hash, "refresh_token"))
        PW_FUZZ_CHECK(t->refresh_token == NULL);
    /* Where the sweep takes a decoded token next: no overflow, no UB. */
    int64_t now_s = pw_now_ms() / 1000;
    (void)pw_token_refresh_due(t, 604800, now_s);
    (void)pw_token_refresh_allowed(t, now_s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pw_fuzz_init();
    redisReply hash = {.type = REDIS_REPLY_ARRAY};
    redisReply *elements[PW_FUZZ_MAX_FIELDS * 2];
    char *plains[PW_FUZZ_MAX_FIELDS] = {0};
    hash.element = elements;
    const char *p = (const char *)data, *end = p + size;
    while (p < end && hash.elements < PW_ARRAY_SIZE(elements)) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = (size_t)((nl ? nl : end) - p);
        size_t i = hash.elements;
        elements[i] = i % 2 ? pw_fuzz_value(elements[i - 1]->str, p, len, &plains[i / 2])
                            : pw_fuzz_string(p, len);
        hash.elements++;
        p = nl ? nl + 1 : end;
    }

    pw_token_t *token = (pw_token_t *)&token; /* set on OK only */
    char errstr[512];
    memset(errstr, 'x', sizeof(errstr));
    pw_ts_status_t st =
        pw_token_store_parse(pw_fuzz_store, PW_FUZZ_ACCOUNT, &hash, &token, errstr, sizeof(errstr));
    if (hash.elements == 0)
        PW_FUZZ_CHECK(st == PW_TS_NOT_FOUND);
    else
        PW_FUZZ_CHECK(st == PW_TS_OK || st == PW_TS_UNREADABLE);
    if (st == PW_TS_OK) {
        pw_fuzz_check_token(&hash, plains, token);
        pw_token_destroy(token);
    } else {
        PW_FUZZ_CHECK(token == (pw_token_t *)&token);
        PW_FUZZ_CHECK(pw_fuzz_terminated(errstr, sizeof(errstr)) && errstr[0]);
    }

    for (size_t i = 0; i < hash.elements; i++) {
        free(elements[i]->str);
        free(elements[i]);
    }
    for (size_t i = 0; i < PW_ARRAY_SIZE(plains); i++)
        free(plains[i]);
    return 0;
}
