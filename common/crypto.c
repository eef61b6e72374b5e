/* Token crypto: AES-256-GCM sealing with a rotatable key ring (OpenSSL EVP). */
#include "crypto.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PW_NONCE_LEN 12
#define PW_TAG_LEN 16
#define PW_KEY_ID_MAX PW_CRYPTO_KEY_ID_MAX

typedef struct pw_key_s {
    char id[PW_KEY_ID_MAX + 1];
    unsigned char bytes[PW_CRYPTO_KEY_LEN];
} pw_key_t;

struct pw_keyring_s {
    pw_key_t *keys; /* keys[0] seals */
    size_t count;
};

/* Base64 decoding with EVP_DecodeBlock, which counts '=' padding as zero bytes. */
static int pw_base64_decode(const char *in, size_t in_len, unsigned char **out, size_t *out_len)
{
    if (in_len == 0 || in_len % 4 != 0)
        return -1;
    unsigned char *buf = pw_malloc(in_len / 4 * 3 + 1);
    int n = EVP_DecodeBlock(buf, (const unsigned char *)in, (int)in_len);
    if (n < 0) {
        free(buf);
        return -1;
    }
    size_t pad = (in[in_len - 1] == '=') + (in[in_len - 2] == '=');
    *out = buf;
    *out_len = (size_t)n - pad;
    return 0;
}

static char *pw_base64_encode(const unsigned char *in, size_t in_len)
{
    char *out = pw_malloc((in_len + 2) / 3 * 4 + 1);
    EVP_EncodeBlock((unsigned char *)out, in, (int)in_len);
    return out;
}

/* Parses "KEY_ID:BASE64" (already trimmed) into key. */
static int pw_keyring_parse_line(const char *line, pw_key_t *key, const char *origin, int lineno,
                                 char *errstr, size_t errstr_size)
{
    const char *colon = strchr(line, ':');
    if (!colon || colon == line) {
        pw_errstr_set(errstr, errstr_size, "%s:%d: expected KEY_ID:BASE64_OF_32_BYTES", origin,
                      lineno);
        return -1;
    }
    size_t id_len = (size_t)(colon - line);
    if (id_len > PW_KEY_ID_MAX) {
        pw_errstr_set(errstr, errstr_size, "%s:%d: key id longer than %d characters", origin,
                      lineno, PW_KEY_ID_MAX);
        return -1;
    }
    memcpy(key->id, line, id_len);
    key->id[id_len] = '\0';

    unsigned char *bytes;
    size_t len;
    if (pw_base64_decode(colon + 1, strlen(colon + 1), &bytes, &len) == -1) {
        pw_errstr_set(errstr, errstr_size, "%s:%d: key '%s' is not valid base64", origin, lineno,
                      key->id);
        return -1;
    }
    int rc = 0;
    if (len != PW_CRYPTO_KEY_LEN) {
        pw_errstr_set(errstr, errstr_size, "%s:%d: key '%s' is %zu bytes, AES-256 needs %d", origin,
                      lineno, key->id, len, PW_CRYPTO_KEY_LEN);
        rc = -1;
    } else {
        memcpy(key->bytes, bytes, PW_CRYPTO_KEY_LEN);
    }
    OPENSSL_cleanse(bytes, len);
    free(bytes);
    return rc;
}

pw_keyring_t *pw_keyring_parse(const char *text, const char *origin, char *errstr,
                               size_t errstr_size)
{
    pw_keyring_t *ring = pw_calloc(1, sizeof(*ring));
    char *copy = pw_strdup(text);
    char *save = NULL;
    int lineno = 0;
    /* Line by line, keeping numbers right even across blank lines. */
    for (char *line = copy; line; line = save) {
        save = strchr(line, '\n');
        if (save)
            *save++ = '\0';
        lineno++;
        while (*line == ' ' || *line == '\t')
            line++;
        size_t len = strlen(line);
        while (len > 0 && strchr(" \t\r", line[len - 1]))
            line[--len] = '\0';
        if (len == 0 || line[0] == '#')
            continue;
        pw_key_t key;
        if (pw_keyring_parse_line(line, &key, origin, lineno, errstr, errstr_size) == -1)
            goto fail;
        for (size_t i = 0; i < ring->count; i++) {
            if (strcmp(ring->keys[i].id, key.id) == 0) {
                pw_errstr_set(errstr, errstr_size, "%s:%d: key id '%s' appears twice", origin,
                              lineno, key.id);
                OPENSSL_cleanse(&key, sizeof(key));
                goto fail;
            }
        }
        ring->keys = pw_realloc(ring->keys, sizeof(pw_key_t) * (ring->count + 1));
        ring->keys[ring->count++] = key;
        OPENSSL_cleanse(&key, sizeof(key));
    }
    if (ring->count == 0) {
        pw_errstr_set(errstr, errstr_size, "%s: no keys", origin);
        goto fail;
    }
    OPENSSL_cleanse(copy, strlen(text));
    free(copy);
    return ring;

fail:
    OPENSSL_cleanse(copy, strlen(text));
    free(copy);
    pw_keyring_destroy(ring);
    return NULL;
}

/* The key ring is every token's key: other users may not read it (nor
 * replace it: a key they wrote would seal new tokens), and its group may read
 * but not write it. Checked on the open file, so the file checked is the file
 * read. */
static int pw_keyring_check_file(FILE *f, const char *path, char *errstr, size_t errstr_size)
{
    struct stat st;
    if (fstat(fileno(f), &st) == -1) {
        pw_errstr_set(errstr, errstr_size, "TOKEN_KEYS_FILE: cannot stat %s: %s", path,
                      strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        pw_errstr_set(errstr, errstr_size, "TOKEN_KEYS_FILE: %s is not a regular file", path);
        return -1;
    }
    if (st.st_mode & (S_IRWXO | S_IWGRP)) {
        pw_errstr_set(errstr, errstr_size,
                      "TOKEN_KEYS_FILE: %s has mode %04o: other users must have no access and "
                      "the group no write; run chmod 600 %s (or 0440 for a group only the "
                      "worker is in; a Kubernetes Secret volume: defaultMode 0440 with fsGroup)",
                      path, (unsigned)(st.st_mode & 07777), path);
        return -1;
    }
    return 0;
}

pw_keyring_t *pw_keyring_load(const char *path, char *errstr, size_t errstr_size)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        pw_errstr_set(errstr, errstr_size, "TOKEN_KEYS_FILE: cannot open %s: %s", path,
                      strerror(errno));
        return NULL;
    }
    if (pw_keyring_check_file(f, path, errstr, errstr_size) == -1) {
        fclose(f);
        return NULL;
    }
    char buf[65536];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    int too_big = !feof(f);
    fclose(f);
    if (too_big) {
        pw_errstr_set(errstr, errstr_size, "TOKEN_KEYS_FILE: %s is larger than 64 KiB", path);
        return NULL;
    }
    buf[n] = '\0';
    char origin[512];
    snprintf(origin, sizeof(origin), "TOKEN_KEYS_FILE %s", path);
    pw_keyring_t *ring = pw_keyring_parse(buf, origin, errstr, errstr_size);
    OPENSSL_cleanse(buf, n);
    return ring;
}

void pw_keyring_destroy(pw_keyring_t *ring)
{
    if (!ring)
        return;
    if (ring->keys)
        OPENSSL_cleanse(ring->keys, sizeof(pw_key_t) * ring->count);
    free(ring->keys);
    free(ring);
}

const char *pw_keyring_primary_id(const pw_keyring_t *ring)
{
    return ring->keys[0].id;
}

bool pw_keyring_has(const pw_keyring_t *ring, const char *key_id)
{
    for (size_t i = 0; i < ring->count; i++)
        if (strcmp(ring->keys[i].id, key_id) == 0)
            return true;
    return false;
}

int pw_crypto_sealed_key_id(const char *sealed, char *key_id, size_t key_id_size)
{
    const char *colon = sealed ? strchr(sealed, ':') : NULL;
    size_t len = colon ? (size_t)(colon - sealed) : 0;
    if (key_id_size > 0)
        key_id[0] = '\0';
    if (len == 0 || len > PW_KEY_ID_MAX || len >= key_id_size)
        return -1;
    memcpy(key_id, sealed, len);
    key_id[len] = '\0';
    return 0;
}

/* Associated data: the key id and the caller's context, unambiguously joined. */
static char *pw_crypto_aad(const char *key_id, const char *context)
{
    return pw_asprintf("pw-token-v1\n%s\n%s", key_id, context);
}

/* One GCM pass; enc=1 seals, enc=0 opens (tag is read or written). */
static int pw_crypto_gcm(int enc, const unsigned char *key, const unsigned char *nonce,
                         const char *aad, const unsigned char *in, size_t in_len,
                         unsigned char *out, unsigned char *tag)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx)
        pw_abort("EVP_CIPHER_CTX_new failed: out of memory");
    int len, ok = EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) &&
                  EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, PW_NONCE_LEN, NULL) &&
                  EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, enc) &&
                  EVP_CipherUpdate(ctx, NULL, &len, (const unsigned char *)aad, (int)strlen(aad)) &&
                  (in_len == 0 || EVP_CipherUpdate(ctx, out, &len, in, (int)in_len));
    if (ok && !enc)
        ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, PW_TAG_LEN, tag);
    if (ok)
        ok = EVP_CipherFinal_ex(ctx, out + in_len, &len);
    if (ok && enc)
        ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, PW_TAG_LEN, tag);
    EVP_CIPHER_CTX_free(ctx);
    return ok ? 0 : -1;
}

char *pw_crypto_seal(const pw_keyring_t *ring, const pw_secret_t *plaintext, const char *context)
{
    const pw_key_t *key = &ring->keys[0];
    size_t pt_len = pw_secret_len(plaintext);
    size_t blob_len = PW_NONCE_LEN + pt_len + PW_TAG_LEN;
    unsigned char *blob = pw_malloc(blob_len + 16);
    if (RAND_bytes(blob, PW_NONCE_LEN) != 1)
        pw_abort("no randomness: sealing must not go on with a reused nonce");
    char *aad = pw_crypto_aad(key->id, context);
    if (pw_crypto_gcm(1, key->bytes, blob, aad, (const unsigned char *)pw_secret_reveal(plaintext),
                      pt_len, blob + PW_NONCE_LEN, blob + PW_NONCE_LEN + pt_len) == -1)
        pw_abort("AES-GCM encryption cannot fail with valid parameters");
    char *b64 = pw_base64_encode(blob, blob_len);
    char *sealed = pw_asprintf("%s:%s", key->id, b64);
    free(aad);
    free(b64);
    free(blob);
    return sealed;
}

int pw_crypto_open(const pw_keyring_t *ring, const char *sealed, const char *context,
                   pw_secret_t **out, char *errstr, size_t errstr_size)
{
    const char *colon = strchr(sealed, ':');
    if (!colon || colon == sealed) {
        pw_errstr_set(errstr, errstr_size, "sealed value is malformed");
        return -1;
    }
    const pw_key_t *key = NULL;
    size_t id_len = (size_t)(colon - sealed);
    for (size_t i = 0; i < ring->count && !key; i++)
        if (strlen(ring->keys[i].id) == id_len && memcmp(ring->keys[i].id, sealed, id_len) == 0)
            key = &ring->keys[i];
    if (!key) {
        pw_errstr_set(errstr, errstr_size, "sealed with key '%.*s', which is not in the key ring",
                      (int)id_len, sealed);
        return -1;
    }
    unsigned char *blob = NULL;
    size_t blob_len = 0;
    if (pw_base64_decode(colon + 1, strlen(colon + 1), &blob, &blob_len) == -1 ||
        blob_len < PW_NONCE_LEN + PW_TAG_LEN) {
        free(blob);
        pw_errstr_set(errstr, errstr_size, "sealed value is malformed");
        return -1;
    }
    size_t ct_len = blob_len - PW_NONCE_LEN - PW_TAG_LEN;
    unsigned char *pt = pw_malloc(ct_len + 16);
    char *aad = pw_crypto_aad(key->id, context);
    int rc = pw_crypto_gcm(0, key->bytes, blob, aad, blob + PW_NONCE_LEN, ct_len, pt,
                           blob + PW_NONCE_LEN + ct_len);
    free(aad);
    if (rc == 0)
        *out = pw_secret_new((const char *)pt, ct_len);
    else
        pw_errstr_set(errstr, errstr_size,
                      "cannot decrypt with key '%s': wrong key, wrong account or tampered value",
                      key->id);
    OPENSSL_cleanse(pt, ct_len);
    free(pt);
    free(blob);
    return rc;
}
