/* Secrets: an opaque type that logs, events and metrics cannot print.
 *
 * DESIGN: redaction by construction. A token or client secret lives only in a
 * pw_secret_t. The logger's fields take plain strings and numbers, so a secret
 * cannot be handed to it by mistake; code that really needs the plaintext (an
 * HTTP form body, the cipher) calls pw_secret_reveal(), which is easy to grep.
 * The memory is wiped when the secret is destroyed. */
#ifndef PW_SECRET_H
#define PW_SECRET_H

#include <stddef.h>

typedef struct pw_secret_s pw_secret_t;

/** @brief Copies len bytes of value into a new secret; caller destroys it. */
pw_secret_t *pw_secret_new(const char *value, size_t len);
/** @brief A new secret holding the same value. */
pw_secret_t *pw_secret_dup(const pw_secret_t *secret);
/** @brief Wipes and frees; NULL is fine. */
void pw_secret_destroy(pw_secret_t *secret);

/** @brief The plaintext, NUL-terminated; valid while the secret lives.
 *  Only for sending it to the platform or encrypting it. */
const char *pw_secret_reveal(const pw_secret_t *secret);
size_t pw_secret_len(const pw_secret_t *secret);
int pw_secret_equal(const pw_secret_t *a, const pw_secret_t *b);

/** @brief A short, non-reversible fingerprint ("sha256:1a2b3c4d5e6f") that
 *  identifies a secret in output without disclosing it; buf >= 24 bytes. */
void pw_secret_fingerprint(const pw_secret_t *secret, char *buf, size_t buf_size);
/** @brief Replaces every occurrence of secret in the NUL-terminated text
 *  (of buffer size text_size) by "[secret sha256:...]", truncating at a
 *  character boundary if need be. A text that fills its buffer and ends in
 *  the secret's first part (4 bytes or more) was cut short through it: that
 *  part is replaced too. For text from elsewhere that may quote it: the
 *  platform's error messages ("Malformed access token <token>"). NULL
 *  secret: no-op. */
void pw_secret_redact(const pw_secret_t *secret, char *text, size_t text_size);
/** @brief A copy of text, of any length, with every occurrence of secret
 *  replaced as pw_secret_redact() does (NULL secret: a plain copy); the
 *  caller frees it. For text that is cut to fit a buffer afterwards. */
char *pw_secret_redact_dup(const pw_secret_t *secret, const char *text);

#endif
