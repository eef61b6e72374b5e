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

void pw_secret_redact(const pw_secret_t *secret, char *text, size_t text_size)
{
    if (!secret || secret->len == 0 || !strstr(text, secret->value))
        return;
    char fp[32], mark[48];
    pw_secret_fingerprint(secret, fp, sizeof(fp));
    snprintf(mark, sizeof(mark), "[secret %s]", fp);
    char *out = pw_malloc(text_size);
    size_t len = 0;
    for (const char *p = text; *p && len + 1 < text_size;) {
        if (strncmp(p, secret->value, secret->len) == 0) {
            len += (size_t)snprintf(out + len, text_size - len, "%s", mark);
            if (len >= text_size)
                len = text_size - 1;
            p += secret->len;
        } else {
            out[len++] = *p++;
        }
    }
    out[len] = '\0';
    memcpy(text, out, len + 1);
    OPENSSL_cleanse(out, text_size);
    free(out);
}
