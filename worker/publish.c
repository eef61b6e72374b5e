/* The publish step: records first, containers, polling, publication. */
#include "publish.h"

#include <stdio.h>
#include <string.h>

#include "log.h"
#include "post_store.h"

#define PW_CONTAINER_MAX_AGE_MS (24LL * 3600 * 1000)

/* An API failure: decide the attempt's outcome from its classification. */
static pw_pub_outcome_t pw_publish_api_failed(pw_publish_t *pub)
{
    if (pub->err.cls == PW_EC_AUTH || pub->err.cls == PW_EC_PERMISSION)
        return PW_PUB_AUTH;
    return pub->err.retriable ? PW_PUB_RETRY : PW_PUB_FAILED;
}

static pw_pub_outcome_t pw_publish_redis_failed(pw_publish_t *pub, const char *what,
                                                const char *errstr)
{
    pw_log_warn("redis failed during publish", PW_F_STR("account_id", pub->req->account_id),
                PW_F_STR("post_id", pub->req->post_id), PW_F_STR("step", what),
                PW_F_STR("error", errstr));
    return PW_PUB_REDIS;
}

/* The container went to ERROR or EXPIRED: a status read, not an API error. */
static pw_pub_outcome_t pw_publish_media_failed(pw_publish_t *pub, const char *message)
{
    pw_api_error_classify(PW_EP_STATUS, 400, NULL, -1, NULL, &pub->err);
    pub->err.cls = PW_EC_MEDIA;
    pub->err.http_status = -1;
    snprintf(pub->err.message, sizeof(pub->err.message), "%s",
             message && *message ? message : "the media container failed");
    return PW_PUB_FAILED;
}

/* Waits for a container to leave IN_PROGRESS; *status gets where it went. */
static pw_pub_outcome_t pw_publish_poll(pw_publish_t *pub, const char *container_id,
                                        pw_container_status_t *status, bool wait_first)
{
    const pw_config_t *conf = pub->p->conf;
    int64_t deadline = pw_mono_ms() + conf->container_poll_timeout_s * 1000;
    for (;;) {
        if (wait_first && !pw_pipeline_sleep(pub->p, conf->container_poll_interval_ms))
            return PW_PUB_STOPPED;
        wait_first = true;
        if (pw_threads_container_status(pub->http, conf->threads_api_base_url, container_id,
                                        pub->token->access_token, status, pub->media_error,
                                        sizeof(pub->media_error), &pub->err) == -1)
            return pw_publish_api_failed(pub);
        if (*status != PW_CONTAINER_IN_PROGRESS)
            return PW_PUB_PUBLISHED; /* "went somewhere": the caller decides */
        if (pw_mono_ms() >= deadline) {
            pw_api_error_classify(PW_EP_STATUS, 504, NULL, -1, NULL, &pub->err);
            snprintf(pub->err.message, sizeof(pub->err.message),
                     "container %s still IN_PROGRESS after %lds", container_id,
                     conf->container_poll_timeout_s);
            return PW_PUB_RETRY;
        }
    }
}

/* Creates one container; carousel children first. */
static pw_pub_outcome_t pw_publish_create(pw_publish_t *pub, char id[PW_ID_MAX])
{
    const pw_request_t *req = pub->req;
    const pw_config_t *conf = pub->p->conf;
    char children[PW_CAROUSEL_MAX * PW_ID_MAX] = "";
    for (size_t i = 0; i < req->child_count; i++) {
        const pw_child_t *child = &req->children[i];
        pw_container_spec_t spec = {
            .media_type = pw_media_name(child->media_type),
            .image_url = child->media_type == PW_MEDIA_IMAGE ? child->url : NULL,
            .video_url = child->media_type == PW_MEDIA_VIDEO ? child->url : NULL,
            .is_carousel_item = true,
        };
        char child_id[PW_ID_MAX];
        if (pw_threads_create_container(pub->http, conf->threads_api_base_url, pub->token->user_id,
                                        pub->token->access_token, &spec, child_id, &pub->err) == -1)
            return pw_publish_api_failed(pub);
        snprintf(children + strlen(children), sizeof(children) - strlen(children), "%s%s",
                 i ? "," : "", child_id);
    }
    pw_container_spec_t spec = {
        .media_type = pw_media_name(req->media_type),
        .text = req->text,
        .image_url = req->image_url,
        .video_url = req->video_url,
        .children = req->child_count ? children : NULL,
        .reply_to_id = req->reply_to_id,
        .reply_control = req->reply_control,
        .link_attachment = req->link_attachment,
    };
    if (pw_threads_create_container(pub->http, conf->threads_api_base_url, pub->token->user_id,
                                    pub->token->access_token, &spec, id, &pub->err) == -1)
        return pw_publish_api_failed(pub);
    return PW_PUB_PUBLISHED;
}

static pw_pub_outcome_t pw_publish_record(pw_publish_t *pub)
{
    char errstr[512];
    if (pw_post_store_set_published(pub->p->redis, pub->req->account_id, pub->req->post_id,
                                    pub->media_id, pub->p->conf->post_record_ttl_s, errstr,
                                    sizeof(errstr)) == -1)
        /* The post is out; a redelivery will find its container PUBLISHED. */
        pw_log_error("published but not recorded", PW_F_STR("account_id", pub->req->account_id),
                     PW_F_STR("post_id", pub->req->post_id), PW_F_STR("error", errstr));
    return PW_PUB_PUBLISHED;
}

/* Publishes a recorded container, polling when it is not ready yet. */
static pw_pub_outcome_t pw_publish_container(pw_publish_t *pub, const char *container_id,
                                             bool poll_first)
{
    const pw_config_t *conf = pub->p->conf;
    pw_container_status_t status = PW_CONTAINER_FINISHED;
    for (int round = 0;; round++) {
        if (poll_first || round > 0) {
            pw_pub_outcome_t out = pw_publish_poll(pub, container_id, &status, round > 0);
            if (out != PW_PUB_PUBLISHED)
                return out;
            if (status == PW_CONTAINER_PUBLISHED) {
                pub->media_id[0] = '\0'; /* published before, id not recorded */
                pw_publish_record(pub);
                return PW_PUB_DUPLICATE;
            }
            if (status == PW_CONTAINER_ERROR || status == PW_CONTAINER_EXPIRED)
                return pw_publish_media_failed(pub, status == PW_CONTAINER_EXPIRED
                                                        ? "the media container expired"
                                                        : pub->media_error);
        }
        if (pw_threads_publish(pub->http, conf->threads_api_base_url, pub->token->user_id,
                               pub->token->access_token, container_id, pub->media_id,
                               &pub->err) == 0)
            return pw_publish_record(pub);
        if (pub->err.cls != PW_EC_MEDIA)
            return pw_publish_api_failed(pub);
        /* Not ready, failed, or already published: the status tells which. */
        if (round >= 20) {
            pub->err.retriable = true;
            return PW_PUB_RETRY;
        }
        if (round >= 1 && !pub->err.not_ready)
            return PW_PUB_FAILED; /* pub->err already says why (class media) */
    }
}

pw_pub_outcome_t pw_publish_attempt(pw_publish_t *pub)
{
    const pw_request_t *req = pub->req;
    pw_redis_t *redis = pub->p->redis;
    char errstr[512];
    pw_post_record_t rec;
    if (pub->first_record) {
        rec = *pub->first_record;
        pub->first_record = NULL;
    } else if (pw_post_store_get(redis, req->account_id, req->post_id, &rec, errstr,
                                 sizeof(errstr)) == -1) {
        return pw_publish_redis_failed(pub, "read record", errstr);
    }
    if (rec.published) {
        snprintf(pub->media_id, sizeof(pub->media_id), "%s", rec.media_id);
        return PW_PUB_DUPLICATE;
    }
    char expected[PW_ID_MAX] = "";
    if (rec.container_id[0]) {
        /* Asked even when older than 24 h: it may have been published just
         * before a crash. Only EXPIRED or unknown (100/33) is rebuilt. */
        snprintf(expected, sizeof(expected), "%s", rec.container_id);
        pw_container_status_t status;
        pw_pub_outcome_t out = pw_publish_poll(pub, rec.container_id, &status, false);
        bool old = pw_now_ms() - rec.container_at_ms >= PW_CONTAINER_MAX_AGE_MS;
        if (out == PW_PUB_PUBLISHED && status != PW_CONTAINER_EXPIRED &&
            !(old && status != PW_CONTAINER_PUBLISHED))
            return pw_publish_container(pub, rec.container_id, true);
        if (out != PW_PUB_PUBLISHED && !(pub->err.code == 100 && pub->err.subcode == 33))
            return out;
    }
    char id[PW_ID_MAX];
    pw_pub_outcome_t out = pw_publish_create(pub, id);
    if (out != PW_PUB_PUBLISHED)
        return out;
    switch (pw_post_store_set_container(redis, req->account_id, req->post_id, expected, id,
                                        pub->p->conf->post_record_ttl_s, &rec, errstr,
                                        sizeof(errstr))) {
    case PW_PS_OK:
        break;
    case PW_PS_PUBLISHED:
        snprintf(pub->media_id, sizeof(pub->media_id), "%s", rec.media_id);
        return PW_PUB_DUPLICATE;
    case PW_PS_LOST:
        /* Another delivery recorded its container first: publish that one. */
        return pw_publish_container(pub, rec.container_id, true);
    case PW_PS_ERROR:
        return pw_publish_redis_failed(pub, "record container", errstr);
    }
    bool poll_first = req->media_type == PW_MEDIA_VIDEO || req->media_type == PW_MEDIA_CAROUSEL;
    return pw_publish_container(pub, id, poll_first);
}
