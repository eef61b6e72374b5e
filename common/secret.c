/* Secrets: opaque, wiped on free, printable only as a fingerprint. */
#include "secret.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

#include "pw.h"

struct pw_secret_s {
    size_t len;
    char value[]; /* NUL-terminated */
};

pw_secret_t *pw_secret_new(const char *value, size_t len)
{
    pw_secret_t *secret = pw_malloc(sizeof(*secret) + len + 1);
    secret->len = len;
    memcpy(secret->value, value, len);
    secret->value[len] = '\0';
    return secret;
}

pw_secret_t *pw_secret_dup(const pw_secret_t *secret)
{
    return pw_secret_new(secret->value, secret->len);
}

void pw_secret_destroy(pw_secret_t *secret)
{
    if (!secret)
        return;
    OPENSSL_cleanse(secret->value, secret->len);
    free(secret);
}

const char *pw_secret_reveal(const pw_secret_t *secret)
{
    return secret->value;
}

size_t pw_secret_len(const pw_secret_t *secret)
{
    return secret->len;
}

int pw_secret_equal(const pw_secret_t *a, const pw_secret_t *b)
{
    return a->len == b->len && CRYPTO_memcmp(a->value, b->value, a->len) == 0;
}

void pw_secret_fingerprint(const pw_secret_t *secret, char *buf, size_t buf_size)
{
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)secret->value, secret->len, digest);
    /* 48 bits identify a token among an account's few; far too few to guess it. */
    snprintf(buf, buf_size, "sha256:%02x%02x%02x%02x%02x%02x", digest[0], digest[1], digest[2],
             digest[3], digest[4], digest[5]);
}

char *pw_secret_redact_dup(const pw_secret_t *secret, const char *text)
{
    size_t len = strlen(text);
    if (!secret || secret->len == 0 || !strstr(text, secret->value))
        return pw_strndup(text, len);
    char fp[32], mark[48];
    pw_secret_fingerprint(secret, fp, sizeof(fp));
    size_t mark_len = (size_t)snprintf(mark, sizeof(mark), "[secret %s]", fp);
    /* At most len / secret->len occurrences, each replaced by mark_len bytes. */
    char *out = pw_malloc(len + len / secret->len * mark_len + 1);
    size_t n = 0;
    for (const char *p = text;;) {
        const char *hit = strstr(p, secret->value);
        size_t plain = hit ? (size_t)(hit - p) : strlen(p);
        memcpy(out + n, p, plain);
        n += plain;
        if (!hit)
            break;
        memcpy(out + n, mark, mark_len);
        n += mark_len;
        p = hit + secret->len;
    }
    out[n] = '\0';
    return out;
}

/* The length (4 or more) of the longest first part of secret, shorter than
 * all of it, that text (of length len) ends with; else 0. */
static size_t pw_secret_cut_at_end(const pw_secret_t *secret, const char *text, size_t len)
{
    for (size_t k = secret->len - 1 < len ? secret->len - 1 : len; k >= 4; k--)
        if (memcmp(text + len - k, secret->value, k) == 0)
            return k;
    return 0;
}

void pw_secret_redact(const pw_secret_t *secret, char *text, size_t text_size)
{
    if (!secret || secret->len == 0)
        return;
    size_t len = strlen(text);
    /* A text that fills its buffer was likely cut short: a first part of the
     * secret at its end is the secret cut short, and goes too. */
    size_t cut = len + 1 == text_size ? pw_secret_cut_at_end(secret, text, len) : 0;
    if (!cut && !strstr(text, secret->value))
        return;
    char fp[32], mark[48];
    pw_secret_fingerprint(secret, fp, sizeof(fp));
    size_t mark_len = (size_t)snprintf(mark, sizeof(mark), "[secret %s]", fp);
    /* Redacted in full first, then cut to the buffer at a character boundary. */
    size_t out_size = len + 1 + (len / secret->len + 1) * mark_len;
    char *out = pw_malloc(out_size), *o = out;
    for (const char *p = text, *end = text + len - cut; p < end;) {
        if (strncmp(p, secret->value, secret->len) == 0) {
            memcpy(o, mark, mark_len);
            o += mark_len;
            p += secret->len;
        } else {
            *o++ = *p++;
        }
    }
    if (cut) {
        memcpy(o, mark, mark_len);
        o += mark_len;
    }
    *o = '\0';
    pw_utf8_copy(text, text_size, out);
    OPENSSL_cleanse(out, out_size);
    free(out);
}
