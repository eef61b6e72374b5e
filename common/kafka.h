/* Kafka helpers: client configuration from pw_config_t, the worker's producer
 * and consumer with the settings its guarantees rest on, logging through
 * pw_log. */
#ifndef PW_KAFKA_H
#define PW_KAFKA_H

#include <librdkafka/rdkafka.h>

#include "config.h"
#include "pw.h"

/** @brief A producer: idempotent (no duplicates or reordering on retries),
 *  acks=all. dr_cb (may be NULL) gets each delivery report on the thread
 *  that polls the producer.
 *  @returns the handle or NULL with errstr. */
rd_kafka_t *pw_kafka_producer_new(const pw_config_t *conf,
                                  void (*dr_cb)(rd_kafka_t *rk, const rd_kafka_message_t *rkm,
                                                void *opaque),
                                  void *opaque, char *errstr, size_t errstr_size) PW_MUSTCHECK;

/** @brief A consumer in KAFKA_GROUP_ID: cooperative-sticky assignor, offsets
 *  stored only by the worker (enable.auto.offset.store=false) and committed
 *  in the background, earliest offset for a new group. rebalance_cb may be
 *  NULL. The main queue is redirected to the consumer queue.
 *  @returns the handle or NULL with errstr. */
rd_kafka_t *pw_kafka_consumer_new(const pw_config_t *conf,
                                  void (*rebalance_cb)(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                                                       rd_kafka_topic_partition_list_t *parts,
                                                       void *opaque),
                                  void *opaque, char *errstr, size_t errstr_size) PW_MUSTCHECK;

/** @brief Produces one message, copying key (may be NULL), value and headers
 *  (may be NULL; ownership stays with the caller). msg_opaque reaches the
 *  delivery report. @returns RD_KAFKA_RESP_ERR_NO_ERROR (0), or the error
 *  with errstr (queue full after waiting, too large, unknown topic...). */
rd_kafka_resp_err_t pw_kafka_produce(rd_kafka_t *rk, const char *topic, const void *key,
                                     size_t key_len, const void *value, size_t value_len,
                                     const rd_kafka_headers_t *hdrs, void *msg_opaque, char *errstr,
                                     size_t errstr_size) PW_MUSTCHECK;

#endif
