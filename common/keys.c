/* Keys: the Redis keyspace's builders (the table is in keys.h). */
#include "keys.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

/* part itself, or "sha256:HEX" of it when it is too long to copy whole. */
static const char *pw_key_part(const char *part, char hashed[7 + 2 * SHA256_DIGEST_LENGTH + 1])
{
    size_t len = strlen(part);
    if (len <= PW_KEY_PART_MAX)
        return part;
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)part, len, digest);
    char *out = hashed + sprintf(hashed, "sha256:");
    for (size_t i = 0; i < sizeof(digest); i++)
        out += sprintf(out, "%02x", digest[i]);
    return hashed;
}

/* pw:{ACCOUNT}:SUFFIX[:ITEM]; both variable parts are bounded, so it fits. */
static pw_key_t pw_key_build(const char *account_id, const char *suffix, const char *item)
{
    char h1[7 + 2 * SHA256_DIGEST_LENGTH + 1], h2[sizeof(h1)];
    pw_key_t key;
    snprintf(key.s, sizeof(key.s), "pw:{%s}:%s%s%s", pw_key_part(account_id, h1), suffix,
             item ? ":" : "", item ? pw_key_part(item, h2) : "");
    return key;
}

pw_key_t pw_key_token(const char *account_id)
{
    return pw_key_build(account_id, "token", NULL);
}

pw_key_t pw_key_fence(const char *account_id)
{
    return pw_key_build(account_id, "fence", NULL);
}

pw_key_t pw_key_account(const char *account_id)
{
    return pw_key_build(account_id, "account", NULL);
}

pw_key_t pw_key_parked(const char *account_id)
{
    return pw_key_build(account_id, "parked", NULL);
}

pw_key_t pw_key_parked_ids(const char *account_id)
{
    return pw_key_build(account_id, "parked_ids", NULL);
}

pw_key_t pw_key_replay_tries(const char *account_id)
{
    return pw_key_build(account_id, "replay_tries", NULL);
}

pw_key_t pw_key_refresh_lock(const char *account_id)
{
    return pw_key_build(account_id, "refresh_lock", NULL);
}

pw_key_t pw_key_replay_lock(const char *account_id)
{
    return pw_key_build(account_id, "replay_lock", NULL);
}

pw_key_t pw_key_post(const char *account_id, const char *post_id)
{
    return pw_key_build(account_id, "post", post_id);
}

pw_key_t pw_key_alert(const char *account_id, const char *kind)
{
    return pw_key_build(account_id, "alert", kind);
}

pw_key_t pw_key_probe(const char *worker_id)
{
    char hashed[7 + 2 * SHA256_DIGEST_LENGTH + 1];
    pw_key_t key;
    snprintf(key.s, sizeof(key.s), "pw:probe:%s", pw_key_part(worker_id, hashed));
    return key;
}

pw_key_t pw_key_authfail(const char *account_id)
{
    return pw_key_build(account_id, "authfail", NULL);
}

pw_key_t pw_key_fleet_alert(const char *subject)
{
    pw_key_t key;
    snprintf(key.s, sizeof(key.s), "pw:fleet_alert:%s", subject);
    return key;
}

pw_key_t pw_key_verify(const char *account_id)
{
    return pw_key_build(account_id, "verify", NULL);
}

pw_key_t pw_key_published(const char *account_id)
{
    return pw_key_build(account_id, "published", NULL);
}

pw_key_t pw_key_quota(const char *account_id)
{
    return pw_key_build(account_id, "quota", NULL);
}

pw_key_t pw_key_quota_hold(const char *account_id)
{
    return pw_key_build(account_id, "quota_hold", NULL);
}

pw_key_t pw_key_verify_rate(long long unix_s)
{
    pw_key_t key;
    snprintf(key.s, sizeof(key.s), "pw:verify_rate:%lld", unix_s);
    return key;
}
