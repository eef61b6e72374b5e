/* Token crypto: AES-256-GCM with a key ring, for tokens at rest in Redis.
 *
 * DESIGN: a sealed value is "KEY_ID:BASE64(nonce[12] | ciphertext | tag[16])".
 * Each seal draws a fresh random nonce. The caller's context (the account id
 * and the field name) is authenticated as associated data together with the
 * key id, so a record copied to another account, or an access token swapped
 * with a refresh token, fails to open. The ring's first key seals; any key
 * opens, found by the key id stored beside the ciphertext: rotating means
 * putting a new key first and re-sealing at leisure. */
#ifndef PW_CRYPTO_H
#define PW_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>

#include "pw.h"
#include "secret.h"

#define PW_CRYPTO_KEY_LEN 32
/* A key id is 1 to this many bytes (a buffer for one: PW_CRYPTO_KEY_ID_MAX + 1). */
#define PW_CRYPTO_KEY_ID_MAX 64

typedef struct pw_keyring_s pw_keyring_t;

/** @brief Loads a key ring file: one "KEY_ID:BASE64_OF_32_BYTES" a line; blank
 *  lines and lines starting with '#' are skipped. The file must be a regular
 *  file that other users cannot access and its group cannot write (0600,
 *  0400, 0440, 0640).
 *  @returns the ring (caller frees with pw_keyring_destroy()) or NULL with the
 *  reason (file, line, key id; never key material) in errstr. */
pw_keyring_t *pw_keyring_load(const char *path, char *errstr, size_t errstr_size) PW_MUSTCHECK;
/** @brief Parses a key ring from text; same rules as pw_keyring_load(). */
pw_keyring_t *pw_keyring_parse(const char *text, const char *origin, char *errstr,
                               size_t errstr_size) PW_MUSTCHECK;
void pw_keyring_destroy(pw_keyring_t *ring);
/** @brief The id of the key that seals. */
const char *pw_keyring_primary_id(const pw_keyring_t *ring);
/** @brief Whether the ring holds a key named key_id. */
bool pw_keyring_has(const pw_keyring_t *ring, const char *key_id);

/** @brief The id of the key that sealed a value, read from the value's
 *  prefix without opening it (no key needed): copied into key_id.
 *  @returns 0, or -1 when the value has no key id of a valid length
 *  (key_id is then ""). */
int pw_crypto_sealed_key_id(const char *sealed, char *key_id, size_t key_id_size) PW_MUSTCHECK;

/** @brief Seals plaintext with the primary key, binding context.
 *  @returns a new string the caller frees. */
char *pw_crypto_seal(const pw_keyring_t *ring, const pw_secret_t *plaintext, const char *context);
/** @brief Opens a sealed value; on success *out is a new secret the caller
 *  destroys.
 *  @returns 0, or -1 with the reason in errstr (unknown key id, malformed,
 *  or authentication failed: wrong key, wrong context or tampering). */
int pw_crypto_open(const pw_keyring_t *ring, const char *sealed, const char *context,
                   pw_secret_t **out, char *errstr, size_t errstr_size) PW_MUSTCHECK;

#endif
