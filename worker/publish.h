/* The publish step: Threads' two-step container flow, made to happen once.
 *
 * DESIGN: an attempt reads the post's record first (post_store.h). A post
 * already published is a duplicate; a recorded container is asked for its
 * status before anything else, whatever its age (PUBLISHED: duplicate;
 * FINISHED and younger than 24 h: publish it; IN_PROGRESS: wait; EXPIRED,
 * unknown or older than 24 h: rebuild; ERROR: media failure).
 * Otherwise the containers are created (carousel children first), the
 * container id is recorded with compare-and-set, and only then published.
 * TEXT and IMAGE containers are usually ready at once, so they are published
 * right away and polled only if Threads says "not ready"; VIDEO and CAROUSEL
 * are polled first. Transient failures end the attempt; the caller retries
 * with backoff up to PUBLISH_MAX_ATTEMPTS. */
#ifndef PW_PUBLISH_H
#define PW_PUBLISH_H

#include "pipeline.h"
#include "post_store.h"

typedef enum {
    PW_PUB_PUBLISHED = 0,
    PW_PUB_DUPLICATE, /* media_id may be "" (unknown) */
    PW_PUB_FAILED,    /* err says why; not worth another attempt */
    PW_PUB_RETRY,     /* err is retriable */
    PW_PUB_AUTH,      /* err is an auth or permission failure */
    PW_PUB_STOPPED,   /* the worker is stopping */
    PW_PUB_REDIS,     /* Redis failed: no attempt was spent; try again later */
} pw_pub_outcome_t;

typedef struct pw_publish_s {
    pw_pipeline_t *p;
    pw_http_t *http;
    const pw_request_t *req;
    const pw_token_t *token;
    /* The record read with the token (pw_park_begin()); the first attempt
     * uses it instead of reading again, later ones read afresh. */
    const pw_post_record_t *first_record;
    pw_api_error_t err;
    char media_id[PW_ID_MAX];
    char media_error[512]; /* Meta's error_message of an ERROR container */
} pw_publish_t;

/** @brief One attempt of the publish step. */
pw_pub_outcome_t pw_publish_attempt(pw_publish_t *pub);

#endif
