/* publish-worker run: start-up, the consumer loop, and shutdown.
 *
 * DESIGN: the main thread owns the consumer and serves the producer's
 * delivery reports; posts run on the pool's fibers (pool.h), starting at
 * intake.h. Each turn of the loop polls the consumer briefly, hands messages
 * to the pool, serves delivery reports (which settle jobs), stores the offsets
 * that became safe, and pauses or resumes partitions for back-pressure. Once
 * a second it checks Redis and group membership for /readyz.
 * SIGTERM or SIGINT ends the loop: no new posts start, running ones finish
 * (bounded by SHUTDOWN_TIMEOUT_S), the producer is flushed, offsets are
 * stored and committed, and the consumer leaves its group (guarded by a
 * timeout: librdkafka 2.0.2 can hang closing a cooperative consumer). A
 * second signal exits at once. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "context.h"
#include "crypto.h"
#include "delivery.h"
#include "env.h"
#include "intake.h"
#include "kafka.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "redis.h"
#include "redis_health.h"
#include "sweep.h"
#include "verifier.h"

typedef struct pw_worker_s {
    pw_config_t *conf;
    pw_keyring_t *ring;
    pw_redis_t *redis;
    pw_metrics_server_t *metrics;
    rd_kafka_t *producer;
    rd_kafka_t *consumer;
    pw_token_store_t *tokens;
    pw_pool_t *pool;
    pw_delivery_t *delivery;
    pw_ctx_t *ctx;
    pw_sweep_t *sweep;
    pw_verifier_t *verifier;                 /* NULL: TOKEN_VERIFY_INTERVAL_S is 0 */
    rd_kafka_topic_partition_list_t *paused; /* by back-pressure */
    bool ever_assigned;                      /* the group gave us an assignment (maybe empty) */
    int assigned;                            /* partitions assigned now */
    bool wedged;                             /* posts still ran after their waits were cancelled */
} pw_worker_t;

/* Messages a partition buffers per post in flight before it pauses. It
 * resumes when a quarter of that drained, and librdkafka's broker thread takes
 * up to about a second to fetch a resumed partition again (it decides on its
 * next fetch round): the rest must keep every fiber busy that long. */
#define PW_BUFFER_FACTOR 8
#define PW_BUFFER_MIN 1024
/* How long posts get to notice their cancelled waits at shutdown. */
#define PW_CANCEL_GRACE_MS 5000

static volatile sig_atomic_t pw_signals;
static volatile sig_atomic_t pw_fatal; /* the producer failed for good: exit 1 */

static void pw_on_signal(int sig)
{
    (void)sig;
    if (++pw_signals > 1)
        _exit(1); /* the operator insists: no graceful shutdown */
}

static void pw_install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = pw_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* Serves delivery reports while a revoke or shutdown waits for posts. */
static void pw_worker_serve_reports(void *arg)
{
    pw_worker_t *w = arg;
    rd_kafka_poll(w->producer, 20);
    pw_delivery_serve(w->delivery, w->producer);
}

static void pw_worker_store_offsets(pw_worker_t *w, rd_kafka_topic_partition_list_t *offsets)
{
    if (offsets->cnt == 0)
        return;
    rd_kafka_resp_err_t err = rd_kafka_offsets_store(w->consumer, offsets);
    if (err && err != RD_KAFKA_RESP_ERR__STATE)
        pw_log_warn("offsets store failed", PW_F_STR("error", rd_kafka_err2str(err)));
}

static void pw_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                            rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    pw_worker_t *w = opaque;
    int assign = err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
    pw_log_info(assign ? "partitions assigned" : "partitions revoked",
                PW_F_INT("partitions", parts->cnt),
                PW_F_STR("protocol", rd_kafka_rebalance_protocol(rk)));
    pw_metrics_rebalance();
    rd_kafka_error_t *error;
    if (assign) {
        w->ever_assigned = true;
        pw_pool_assign(w->pool, parts);
        error = rd_kafka_incremental_assign(rk, parts);
    } else {
        /* Finish what runs for these partitions, then commit, then let go. */
        rd_kafka_topic_partition_list_t *offsets = rd_kafka_topic_partition_list_new(parts->cnt);
        /* At shutdown the drain has waited already: don't wait again here. */
        pw_pool_revoke(w->pool, parts, pw_signals ? 0 : (int)w->conf->shutdown_timeout_s * 1000,
                       pw_worker_serve_reports, w, offsets);
        pw_worker_store_offsets(w, offsets);
        if (offsets->cnt > 0 && !rd_kafka_assignment_lost(rk)) {
            rd_kafka_resp_err_t cerr = rd_kafka_commit(rk, offsets, 0);
            if (cerr && cerr != RD_KAFKA_RESP_ERR__NO_OFFSET)
                pw_log_warn("commit on revoke failed", PW_F_STR("error", rd_kafka_err2str(cerr)));
        }
        rd_kafka_topic_partition_list_destroy(offsets);
        error = rd_kafka_incremental_unassign(rk, parts);
        for (int i = 0; i < parts->cnt; i++)
            rd_kafka_topic_partition_list_del(w->paused, parts->elems[i].topic,
                                              parts->elems[i].partition);
    }
    if (error) {
        pw_log_error("rebalance failed", PW_F_STR("error", rd_kafka_error_string(error)));
        rd_kafka_error_destroy(error);
    }
    rd_kafka_topic_partition_list_t *now;
    if (rd_kafka_assignment(rk, &now) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        pw_metrics_set_assigned_partitions(now->cnt);
        w->assigned = now->cnt;
        rd_kafka_topic_partition_list_destroy(now);
    }
}

/* Readiness: Redis takes writes and keeps them (redis_health.h), the
 * consumer is a member of its group, and no message failed for good. */
static void pw_worker_check_ready(pw_worker_t *w)
{
    /* What the Redis check keeps from one call to the next; only the one
     * worker's main loop calls this. */
    static pw_redis_health_t redis_health;
    char reason[512];
    if (rd_kafka_fatal_error(w->producer, reason, sizeof(reason))) {
        /* An idempotent producer that failed for good answers nothing more. */
        pw_log_error("producer failed for good; shutting down", PW_F_STR("error", reason));
        pw_fatal = 1;
        pw_signals = 1;
    }
    char errstr[512];
    const char *problem =
        pw_redis_health_check(&redis_health, w->redis, w->conf->worker_id,
                              w->conf->redis_allow_eviction, errstr, sizeof(errstr));
    pw_metrics_set_redis_ok(w->metrics, problem == NULL);
    pw_metrics_set_redis_problem(w->metrics, problem);
    char *member = rd_kafka_memberid(w->consumer);
    pw_metrics_set_group_joined(w->metrics, member && *member);
    if (member)
        rd_kafka_mem_free(w->consumer, member);
}

/* Whether a partition of the assignment should take no more messages. */
static bool pw_worker_full(pw_worker_t *w, const rd_kafka_topic_partition_t *tp, int partitions,
                           bool paused, size_t *total_bytes)
{
    int jobs;
    size_t bytes;
    pw_pool_buffered(w->pool, tp->topic, tp->partition, &jobs, &bytes, total_bytes);
    int msg_limit = (int)w->conf->worker_concurrency * PW_BUFFER_FACTOR;
    if (msg_limit < PW_BUFFER_MIN)
        msg_limit = PW_BUFFER_MIN;
    size_t byte_limit = (size_t)w->conf->worker_buffer_bytes / (size_t)partitions;
    if (paused) /* resume below three quarters of both: no flapping */
        return jobs > msg_limit * 3 / 4 || bytes > byte_limit * 3 / 4;
    return jobs >= msg_limit || bytes >= byte_limit;
}

/* Back-pressure, per partition: a partition pauses when it buffers its
 * share of messages or of WORKER_BUFFER_BYTES (split over the assigned
 * partitions), and resumes below three quarters of both. One busy account
 * (a bulk import, a 429 backoff) fills its own partition; the others keep
 * flowing. */
static void pw_worker_backpressure(pw_worker_t *w)
{
    rd_kafka_topic_partition_list_t *parts;
    if (rd_kafka_assignment(w->consumer, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    rd_kafka_topic_partition_list_t *pause = rd_kafka_topic_partition_list_new(4),
                                    *resume = rd_kafka_topic_partition_list_new(4);
    size_t total_bytes = 0;
    for (int i = 0; i < parts->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &parts->elems[i];
        bool paused = rd_kafka_topic_partition_list_find(w->paused, tp->topic, tp->partition);
        bool full = pw_worker_full(w, tp, parts->cnt, paused, &total_bytes);
        if (full && !paused) {
            rd_kafka_topic_partition_list_add(pause, tp->topic, tp->partition);
            rd_kafka_topic_partition_list_add(w->paused, tp->topic, tp->partition);
        } else if (!full && paused) {
            rd_kafka_topic_partition_list_add(resume, tp->topic, tp->partition);
            rd_kafka_topic_partition_list_del(w->paused, tp->topic, tp->partition);
        }
    }
    if (pause->cnt)
        rd_kafka_pause_partitions(w->consumer, pause);
    if (resume->cnt)
        rd_kafka_resume_partitions(w->consumer, resume);
    if (pause->cnt || resume->cnt)
        pw_log_debug("back-pressure", PW_F_INT("paused", pause->cnt),
                     PW_F_INT("resumed", resume->cnt), PW_F_INT("buffered_bytes", total_bytes));
    pw_metrics_set_buffer((long)total_bytes, w->paused->cnt);
    rd_kafka_topic_partition_list_destroy(pause);
    rd_kafka_topic_partition_list_destroy(resume);
    rd_kafka_topic_partition_list_destroy(parts);
}

/* A message just handed to the pool filled its partition's share: paused at
 * once, before the rest of the drained batch. Pausing purges what librdkafka
 * fetched ahead for it, and resuming fetches from the next offset, so the
 * buffer overshoots its share by at most this one message. @returns true
 * when it paused. */
static bool pw_worker_pause_if_full(pw_worker_t *w, const rd_kafka_message_t *rkm)
{
    const char *topic = rd_kafka_topic_name(rkm->rkt);
    if (w->assigned <= 0 || rd_kafka_topic_partition_list_find(w->paused, topic, rkm->partition))
        return false;
    rd_kafka_topic_partition_t tp = {.topic = (char *)topic, .partition = rkm->partition};
    size_t total_bytes = 0;
    if (!pw_worker_full(w, &tp, w->assigned, false, &total_bytes))
        return false;
    rd_kafka_topic_partition_list_t *pause = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(pause, topic, rkm->partition);
    rd_kafka_topic_partition_list_add(w->paused, topic, rkm->partition);
    rd_kafka_pause_partitions(w->consumer, pause);
    rd_kafka_topic_partition_list_destroy(pause);
    return true;
}

static void pw_worker_commit_progress(pw_worker_t *w)
{
    rd_kafka_topic_partition_list_t *offsets = rd_kafka_topic_partition_list_new(8);
    if (pw_pool_collect_offsets(w->pool, offsets) > 0)
        pw_worker_store_offsets(w, offsets);
    rd_kafka_topic_partition_list_destroy(offsets);
}

static void pw_worker_loop(pw_worker_t *w)
{
    int64_t next_check = 0;
    while (!pw_signals) {
        pw_metrics_loop_turned(w->metrics);
        rd_kafka_message_t *rkm = rd_kafka_consumer_poll(w->consumer, w->paused->cnt ? 20 : 50);
        for (int batch = 0; rkm; batch++) {
            if (rkm->err)
                pw_log_warn("consumer error", PW_F_STR("error", rd_kafka_message_errstr(rkm)));
            bool paused = false;
            if (!rkm->err) {
                pw_metrics_consumed();
                pw_pool_submit(w->pool, rkm);
                paused = pw_worker_pause_if_full(w, rkm);
            }
            rd_kafka_message_destroy(rkm);
            /* Drain what is already fetched without blocking, up to a bound
             * (a partition that just paused may have left messages behind
             * in the queue: the next turn of the loop sees the queue purged). */
            rkm = batch < 500 && !paused ? rd_kafka_consumer_poll(w->consumer, 0) : NULL;
        }
        rd_kafka_poll(w->producer, 0);
        pw_delivery_serve(w->delivery, w->producer);
        pw_worker_commit_progress(w);
        pw_worker_backpressure(w);
        pw_metrics_set_in_flight(pw_pool_in_flight(w->pool));
        if (pw_mono_ms() >= next_check) {
            pw_worker_check_ready(w);
            next_check = pw_mono_ms() + 1000;
        }
    }
}

/* Lets running posts finish (bounded) and their results reach Kafka. */
static void pw_worker_drain(pw_worker_t *w)
{
    pw_pool_stop_starting(w->pool);
    pw_ctx_drain(w->ctx);
    int64_t deadline = pw_mono_ms() + w->conf->shutdown_timeout_s * 1000;
    while ((pw_pool_running(w->pool) > 0 || pw_delivery_pending(w->delivery) > 0) &&
           pw_mono_ms() < deadline) {
        pw_metrics_loop_turned(w->metrics);
        rd_kafka_poll(w->producer, 50);
        pw_delivery_serve(w->delivery, w->producer);
    }
    /* Whatever still runs gives up now and stays uncommitted: its waits are
     * cancelled, so this takes moments; a post that still runs after that
     * is wedged, and the worker leaves without it. */
    pw_ctx_stop(w->ctx);
    int64_t give_up = pw_mono_ms() + PW_CANCEL_GRACE_MS;
    while (pw_pool_running(w->pool) > 0 && pw_mono_ms() < give_up)
        rd_kafka_poll(w->producer, 50);
    if (pw_pool_running(w->pool) > 0) {
        pw_log_error("posts still running after their waits were cancelled; leaving without them "
                     "(they are redelivered)",
                     PW_F_INT("posts", pw_pool_running(w->pool)));
        w->wedged = true;
    }
    rd_kafka_resp_err_t err = rd_kafka_flush(w->producer, 10000);
    if (err)
        pw_log_error("producer flush incomplete", PW_F_STR("error", rd_kafka_err2str(err)),
                     PW_F_INT("queued", rd_kafka_outq_len(w->producer)));
    pw_worker_commit_progress(w);
    err = rd_kafka_commit(w->consumer, NULL, 0);
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
        pw_log_warn("final commit failed", PW_F_STR("error", rd_kafka_err2str(err)));
}

/* rd_kafka_consumer_close() on its own thread, so it can be bounded. */
typedef struct pw_close_s {
    rd_kafka_t *rk;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done;
} pw_close_t;

static void *pw_close_thread(void *arg)
{
    pw_close_t *cl = arg;
    rd_kafka_resp_err_t err = rd_kafka_consumer_close(cl->rk);
    if (err)
        pw_log_warn("consumer close failed", PW_F_STR("error", rd_kafka_err2str(err)));
    pthread_mutex_lock(&cl->lock);
    cl->done = 1;
    pthread_cond_signal(&cl->cond);
    pthread_mutex_unlock(&cl->lock);
    return NULL;
}

/* Returns 0 when the consumer left its group in time; -1 when it hung (the
 * handle is then leaked on purpose: destroying it would hang too). */
static int pw_consumer_close_bounded(rd_kafka_t *rk, int timeout_ms)
{
    static pw_close_t cl = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    cl.rk = rk;
    pthread_t tid;
    if (pthread_create(&tid, NULL, pw_close_thread, &cl) != 0)
        return -1;
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    pthread_mutex_lock(&cl.lock);
    while (!cl.done)
        if (pthread_cond_timedwait(&cl.cond, &cl.lock, &deadline) != 0)
            break;
    int done = cl.done;
    pthread_mutex_unlock(&cl.lock);
    if (!done) {
        pthread_detach(tid);
        return -1;
    }
    pthread_join(tid, NULL);
    return 0;
}

/* Whether the librdkafka loaded (not the one built against: Debian 12's
 * 2.0.2 and Debian 13's 2.8 share the soname) has #4312, fixed in 2.3.0. */
static bool pw_kafka_close_may_abort(void)
{
    return rd_kafka_version() < 0x020300ff;
}

/* Leaves what a thread we cannot join may still use; the process exits. */
static void pw_worker_leave_in_use(pw_worker_t *w)
{
    w->producer = NULL;
    w->delivery = NULL;
    w->pool = NULL;
    w->ctx = NULL;
    w->tokens = NULL;
    w->redis = NULL;
}

static void pw_worker_close(pw_worker_t *w)
{
    /* Drain first: it stops new posts before it tells long waits to give up,
     * so no account's next post can start behind an abandoned one. */
    if (w->pool && w->consumer && w->producer)
        pw_worker_drain(w);
    if (w->ctx)
        pw_ctx_stop(w->ctx); /* the sweep's waits give up too */
    pw_sweep_destroy(w->sweep);
    pw_verifier_destroy(w->verifier);
    if (w->consumer && !w->ever_assigned && pw_kafka_close_may_abort()) {
        /* librdkafka < 2.3 aborts closing a cooperative-sticky consumer whose
         * first join is still pending (confluentinc/librdkafka#4312). It holds
         * nothing to commit: leave it to the session timeout. */
        pw_log_warn("leaving before the first assignment; skipping consumer close",
                    PW_F_STR("librdkafka", rd_kafka_version_str()));
    } else if (w->consumer) {
        if (pw_consumer_close_bounded(w->consumer, 10000) == 0) {
            rd_kafka_destroy(w->consumer);
        } else {
            /* The close thread may still be revoking: leave what it uses,
             * and what the pool's fibers may still be using. */
            pw_log_warn("consumer close timed out; leaving without a clean group exit");
            pw_worker_leave_in_use(w);
        }
    }
    if (w->wedged)
        pw_worker_leave_in_use(w);
    if (w->producer) {
        rd_kafka_resp_err_t err = rd_kafka_flush(w->producer, 10000);
        if (err)
            pw_log_error("producer flush incomplete", PW_F_STR("error", rd_kafka_err2str(err)),
                         PW_F_INT("queued", rd_kafka_outq_len(w->producer)));
        rd_kafka_destroy(w->producer);
    }
    pw_metrics_server_destroy(w->metrics); /* first: /healthz reads the pool's loops */
    pw_delivery_destroy(w->delivery);      /* what still waits for a retry stays uncommitted */
    pw_pool_destroy(w->pool);
    pw_ctx_destroy(w->ctx);
    pw_token_store_destroy(w->tokens);
    pw_redis_destroy(w->redis);
    pw_keyring_destroy(w->ring);
    pw_config_destroy(w->conf);
    if (w->paused)
        rd_kafka_topic_partition_list_destroy(w->paused);
}

static int64_t pw_worker_loops_idle(void *pool)
{
    return pw_pool_loops_idle_ms(pool);
}

/* Builds the worker; returns the exit code to give up with, or 0. */
static int pw_worker_open(pw_worker_t *w)
{
    char errstr[1024];
    memset(w, 0, sizeof(*w));
    w->paused = rd_kafka_topic_partition_list_new(8);
    if (!(w->conf = pw_env_load_config(PW_CONFIG_NEED_KAFKA | PW_CONFIG_NEED_KEYS)))
        return 2;
    const pw_config_t *conf = w->conf;
    if (!(w->ring = pw_keyring_load(conf->token_keys_file, errstr, sizeof(errstr))) ||
        !(w->redis = pw_redis_new(conf->redis_url, (int)conf->redis_pool_size, 5000, errstr,
                                  sizeof(errstr)))) {
        pw_log_error("bad configuration", PW_F_STR("error", errstr));
        return 2;
    }
    if (!(w->metrics = pw_metrics_server_new(conf->metrics_addr, (int)conf->liveness_stall_s,
                                             errstr, sizeof(errstr)))) {
        pw_log_error("start-up failed", PW_F_STR("error", errstr));
        return 1;
    }
    w->pool = pw_pool_new((int)conf->worker_concurrency);
    w->delivery = pw_delivery_new(w->pool, w->metrics);
    pw_metrics_watch_loops(w->metrics, pw_worker_loops_idle, w->pool);
    if (!(w->producer = pw_kafka_producer_new(conf, pw_delivery_report, w->delivery, errstr,
                                              sizeof(errstr))) ||
        !(w->consumer = pw_kafka_consumer_new(conf, pw_rebalance_cb, w, errstr, sizeof(errstr)))) {
        pw_log_error("start-up failed", PW_F_STR("error", errstr));
        return 1;
    }
    w->tokens = pw_token_store_new(w->redis, w->ring);
    w->ctx = pw_ctx_new(conf, w->redis, w->tokens, w->producer, w->pool, w->delivery);
    pw_pool_start(w->pool, &pw_intake_ops, w->ctx);
    w->sweep = pw_sweep_new(w->ctx);
    w->verifier = pw_verifier_new(w->ctx);

    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(2);
    rd_kafka_topic_partition_list_add(topics, conf->topic_publish_requests, RD_KAFKA_PARTITION_UA);
    rd_kafka_topic_partition_list_add(topics, conf->topic_account_events, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(w->consumer, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (err) {
        pw_log_error("subscribe failed", PW_F_STR("error", rd_kafka_err2str(err)));
        return 1;
    }
    return 0;
}

int pw_cmd_run(void)
{
    pw_install_signals();
    pw_worker_t w;
    int exit_code = pw_worker_open(&w);
    if (exit_code == 0) {
        pw_log_info("worker started", PW_F_STR("version", PW_VERSION),
                    PW_F_STR("group", w.conf->kafka_group_id),
                    PW_F_STR("redis", pw_redis_describe(w.redis)),
                    PW_F_STR("metrics_addr", w.conf->metrics_addr),
                    PW_F_INT("concurrency", w.conf->worker_concurrency));
        pw_worker_loop(&w);
        pw_log_info("worker stopping");
    }
    pw_worker_close(&w);
    if (exit_code == 0 && pw_fatal)
        exit_code = 1;
    if (exit_code == 0)
        pw_log_info("worker stopped");
    return exit_code;
}
