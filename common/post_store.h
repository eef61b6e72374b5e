/* Post records: what makes a post's effect happen once under at-least-once
 * delivery.
 *
 * DESIGN: pw:{ACCT}:post:{POST_ID} is a hash: state (container | published),
 * container_id, container_at_ms, media_id, published_at_ms. The container id
 * is recorded before publishing, with compare-and-set, so two deliveries of
 * one post that race converge on one container, and Threads refuses to
 * publish a container twice. On redelivery the record and the container's
 * status are checked first: a PUBLISHED container is a duplicate even when
 * the worker died before recording the media id. Records expire after
 * POST_RECORD_TTL_S, the idempotency window. */
#ifndef PW_POST_STORE_H
#define PW_POST_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "pw.h"
#include "redis.h"
#include "threads_api.h"

typedef struct pw_post_record_s {
    bool found;
    bool published;
    char container_id[PW_ID_MAX]; /* "" when none */
    int64_t container_at_ms;
    char media_id[PW_ID_MAX]; /* "" when unknown */
} pw_post_record_t;

typedef enum { PW_PS_OK = 0, PW_PS_LOST, PW_PS_PUBLISHED, PW_PS_ERROR } pw_ps_status_t;

/** @brief A record from the reply of HMGET key state container_id
 *  container_at_ms media_id (for scripts that read it with other keys). */
void pw_post_record_from_reply(const redisReply *reply, pw_post_record_t *rec);

/** @brief Reads the record of account's post_id into rec (zeroed if none). */
int pw_post_store_get(pw_redis_t *redis, const char *account_id, const char *post_id,
                      pw_post_record_t *rec, char *errstr, size_t errstr_size) PW_MUSTCHECK;

/** @brief Records container_id if the recorded container is still expected
 *  ("" for none). @returns PW_PS_OK; PW_PS_LOST when another container won
 *  (rec then holds the winner); PW_PS_PUBLISHED when the post was published
 *  meanwhile (rec has its media id); PW_PS_ERROR with errstr. */
pw_ps_status_t pw_post_store_set_container(pw_redis_t *redis, const char *account_id,
                                           const char *post_id, const char *expected,
                                           const char *container_id, long ttl_s,
                                           pw_post_record_t *rec, char *errstr,
                                           size_t errstr_size) PW_MUSTCHECK;

/** @brief Records the post as published (media_id "" when unknown). */
int pw_post_store_set_published(pw_redis_t *redis, const char *account_id, const char *post_id,
                                const char *media_id, long ttl_s, char *errstr,
                                size_t errstr_size) PW_MUSTCHECK;

#endif
