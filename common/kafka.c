/* Kafka helpers: configuration, the worker's clients, and log routing. */
#include "kafka.h"

#include "fiber.h"
#include "log.h"
#include "metrics.h"

/* librdkafka logs with syslog levels; map them onto ours. */
static void pw_kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    pw_log_level_t our = level <= 3   ? PW_LOG_ERROR
                         : level <= 4 ? PW_LOG_WARN
                         : level <= 6 ? PW_LOG_INFO
                                      : PW_LOG_DEBUG;
    pw_log(our, buf, PW_F_STR("component", "rdkafka"), PW_F_STR("facility", fac),
           PW_F_STR("client", rd_kafka_name(rk)));
}

static void pw_kafka_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)opaque;
    pw_log_warn("kafka client error", PW_F_STR("component", "rdkafka"),
                PW_F_STR("client", rd_kafka_name(rk)),
                PW_F_STR("error", rd_kafka_err2name((rd_kafka_resp_err_t)err)),
                PW_F_STR("reason", reason));
}

/* Consumer statistics feed the consumer lag metric. */
static int pw_kafka_stats_cb(rd_kafka_t *rk, char *json, size_t json_len, void *opaque)
{
    (void)rk;
    (void)json_len;
    (void)opaque;
    pw_metrics_kafka_stats(json);
    return 0; /* librdkafka frees json */
}

static int pw_kafka_set(rd_kafka_conf_t *kconf, const char *name, const char *value, char *errstr,
                        size_t errstr_size)
{
    char kerr[256];
    if (rd_kafka_conf_set(kconf, name, value, kerr, sizeof(kerr)) != RD_KAFKA_CONF_OK) {
        pw_errstr_set(errstr, errstr_size, "kafka property %s: %s", name, kerr);
        return -1;
    }
    return 0;
}

/* Common settings: ours first, then the operator's RDKAFKA_* pass-through. */
static rd_kafka_conf_t *pw_kafka_conf_new(const pw_config_t *conf, const char *const *ours,
                                          char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *kconf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(kconf, pw_kafka_log_cb);
    rd_kafka_conf_set_error_cb(kconf, pw_kafka_error_cb);
    /* random() is seeded once per process from the kernel (worker/main.c);
     * librdkafka would re-seed it with the current millisecond. */
    if (pw_kafka_set(kconf, "bootstrap.servers", conf->kafka_bootstrap_servers, errstr,
                     errstr_size) == -1 ||
        pw_kafka_set(kconf, "client.id", conf->worker_id, errstr, errstr_size) == -1 ||
        pw_kafka_set(kconf, "enable.random.seed", "false", errstr, errstr_size) == -1)
        goto fail;
    for (size_t i = 0; ours[i]; i += 2)
        if (pw_kafka_set(kconf, ours[i], ours[i + 1], errstr, errstr_size) == -1)
            goto fail;
    for (size_t i = 0; i + 1 < conf->rdkafka_prop_count; i += 2)
        if (pw_kafka_set(kconf, conf->rdkafka_props[i], conf->rdkafka_props[i + 1], errstr,
                         errstr_size) == -1)
            goto fail;
    return kconf;

fail:
    rd_kafka_conf_destroy(kconf);
    return NULL;
}

rd_kafka_t *pw_kafka_producer_new(const pw_config_t *conf,
                                  void (*dr_cb)(rd_kafka_t *rk, const rd_kafka_message_t *rkm,
                                                void *opaque),
                                  void *opaque, char *errstr, size_t errstr_size)
{
    /* name, value pairs */
    /* clang-format off */
    static const char *const ours[] = {
        "enable.idempotence", "true",
        "acks", "all",
        "linger.ms", "5",
        /* the worker waits for every report; librdkafka's default is 5 min */
        "message.timeout.ms", "60000",
        NULL,
    };
    /* clang-format on */
    rd_kafka_conf_t *kconf = pw_kafka_conf_new(conf, ours, errstr, errstr_size);
    if (!kconf)
        return NULL;
    if (dr_cb)
        rd_kafka_conf_set_dr_msg_cb(kconf, dr_cb);
    rd_kafka_conf_set_opaque(kconf, opaque);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, kconf, errstr, errstr_size);
    if (!rk)
        rd_kafka_conf_destroy(kconf); /* rd_kafka_new() owns kconf only on success */
    return rk;
}

rd_kafka_t *pw_kafka_consumer_new(const pw_config_t *conf,
                                  void (*rebalance_cb)(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                                                       rd_kafka_topic_partition_list_t *parts,
                                                       void *opaque),
                                  void *opaque, char *errstr, size_t errstr_size)
{
    /* librdkafka's prefetch, bounded beside the worker's own buffer. */
    char prefetch_kb[32];
    snprintf(prefetch_kb, sizeof(prefetch_kb), "%ld", conf->worker_buffer_bytes / 2 / 1024);
    /* name, value pairs */
    /* clang-format off */
    const char *ours[] = {
        "group.id", conf->kafka_group_id,
        "queued.max.messages.kbytes", prefetch_kb,
        "partition.assignment.strategy", "cooperative-sticky",
        "enable.auto.offset.store", "false",
        "enable.auto.commit", "true",
        "auto.commit.interval.ms", "1000",
        "auto.offset.reset", "earliest",
        "enable.partition.eof", "false",
        "statistics.interval.ms", "15000",
        /* refill quickly after a back-pressure pause; operators may override */
        "fetch.wait.max.ms", "100",
        NULL,
    };
    /* clang-format on */
    rd_kafka_conf_t *kconf = pw_kafka_conf_new(conf, ours, errstr, errstr_size);
    if (!kconf)
        return NULL;
    if (rebalance_cb)
        rd_kafka_conf_set_rebalance_cb(kconf, rebalance_cb);
    rd_kafka_conf_set_stats_cb(kconf, pw_kafka_stats_cb);
    rd_kafka_conf_set_opaque(kconf, opaque);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, kconf, errstr, errstr_size);
    if (!rk) {
        rd_kafka_conf_destroy(kconf);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

rd_kafka_resp_err_t pw_kafka_produce(rd_kafka_t *rk, const char *topic, const void *key,
                                     size_t key_len, const void *value, size_t value_len,
                                     const rd_kafka_headers_t *hdrs, void *msg_opaque, char *errstr,
                                     size_t errstr_size)
{
    rd_kafka_headers_t *copy = hdrs ? rd_kafka_headers_copy(hdrs) : NULL;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    /* A full local queue is back-pressure, not failure: serve reports and retry. */
    for (int tries = 0; tries < 100; tries++) {
        err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key ? key_len : 0),
                                RD_KAFKA_V_VALUE((void *)value, value_len),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(copy),
                                RD_KAFKA_V_OPAQUE(msg_opaque), RD_KAFKA_V_END);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            break;
        /* Only sleep: polling here would run delivery reports on this thread. */
        pw_sleep_ms(20);
    }
    if (err) {
        if (copy)
            rd_kafka_headers_destroy(copy); /* producev owns headers only on success */
        pw_errstr_set(errstr, errstr_size, "produce to %s: %s", topic, rd_kafka_err2str(err));
    }
    return err;
}
