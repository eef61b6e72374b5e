/* Intake: routes a consumed message to its step (see intake.h). */
#include "intake.h"

#include <string.h>

#include "accounts.h"
#include "output.h"
#include "publish.h"

static void *pw_intake_fiber_init(void *opaque)
{
    pw_ctx_t *ctx = opaque;
    return pw_http_new(ctx->conf->http_connect_timeout_ms, ctx->conf->http_timeout_ms);
}

static void pw_intake_fiber_fini(void *opaque, void *fiber_state)
{
    (void)opaque;
    pw_http_destroy(fiber_state);
}

/* A valid request: the publish step, then parking if it ended in an auth failure. */
static bool pw_intake_publish(pw_ctx_t *ctx, pw_http_t *http, pw_job_t *job,
                              const pw_request_t *req)
{
    pw_auth_failure_t failure;
    switch (pw_publish_request(ctx, http, job, req, &failure)) {
    case PW_STEP_ANSWERED:
        return true;
    case PW_STEP_AUTH:
        return pw_accounts_park(ctx, job, req, &failure);
    case PW_STEP_STOPPED:
        break;
    }
    return false;
}

static bool pw_intake_run(void *opaque, void *fiber_state, pw_job_t *job)
{
    pw_ctx_t *ctx = opaque;
    if (strcmp(job->topic, ctx->conf->topic_account_events) == 0)
        return pw_accounts_on_event(ctx, fiber_state, job);

    pw_request_t *req = NULL;
    const char *dlq_class = NULL;
    char reason[512];
    pw_req_status_t status =
        pw_request_parse(job->value, job->value_len, &req, &dlq_class, reason, sizeof(reason));
    bool answered = true;
    if (status == PW_REQ_DEAD_LETTER) {
        pw_output_dead_letter(ctx, job, dlq_class, reason);
    } else if (status == PW_REQ_INVALID) {
        pw_outcome_t invalid = {.status = PW_OUTCOME_INVALID, .reason = reason};
        pw_output_answer(ctx, job, req, &invalid);
    } else {
        answered = pw_intake_publish(ctx, fiber_state, job, req);
    }
    pw_request_destroy(req);
    return answered;
}

const pw_pool_ops_t pw_intake_ops = {
    .fiber_init = pw_intake_fiber_init,
    .fiber_fini = pw_intake_fiber_fini,
    .run = pw_intake_run,
};
