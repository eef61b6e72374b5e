#!/usr/bin/env bash
# The contract's topics, created with Kafka's own kafka-topics tool, with the
# settings the worker assumes (README, "Production quick start"):
#
#   deploy/kafka/topics.sh BOOTSTRAP [PARTITIONS]
#
# PARTITIONS (default 12) bounds the replicas that share the work. Every topic
# gets replication factor 3 and min.insync.replicas=2 (one broker may fail
# while acks=all writes go on; REPLICATION_FACTOR=1 for a one-broker
# laptop cluster, as deploy/docker-compose.yml runs) and 7 days' retention (longer than any outage
# to ride out); publish.dlq takes messages as large as publish.requests does
# (a dead letter is a copy of a request). Topic names follow the worker's own
# variables: TOPIC_PUBLISH_REQUESTS, TOPIC_PUBLISH_RESULTS, TOPIC_ALERTS,
# TOPIC_DEAD_LETTER, TOPIC_ACCOUNT_EVENTS. Existing topics are left alone.
#
# account.events gets one partition (ACCOUNT_EVENTS_PARTITIONS): the workers
# read it in the same consumer group as the requests, and the group's sticky
# assignor balances partition counts, not topics, so every account.events
# partition may take the place of a request partition on some replica (with
# as many of each, a replica can get only account.events partitions and stay
# idle). Its events are few and small.
# Tools: see kafka-tool.sh (KAFKA_BIN or JARS, ADMIN_CONFIG).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/kafka-tool.sh"

bootstrap=${1:?usage: topics.sh BOOTSTRAP [PARTITIONS]}
partitions=${2:-12}
rf=${REPLICATION_FACTOR:-3}
min_isr=2
[ "$rf" -gt 1 ] || min_isr=1
settings=(--replication-factor "$rf" --config min.insync.replicas="$min_isr" --config retention.ms=604800000)
max_bytes=(--config max.message.bytes=1048588) # Kafka's default, stated: requests and dead letters alike

create() { # TOPIC PARTITIONS [MORE KAFKA-TOPICS ARGS]
  local topic=$1 count=$2
  shift 2
  kafka_tool kafka-topics --bootstrap-server "$bootstrap" --create --if-not-exists \
    --topic "$topic" --partitions "$count" "${settings[@]}" "$@"
}

# One JVM each, started together: the tool spends most of its time starting.
pids=()
create "${TOPIC_PUBLISH_REQUESTS:-publish.requests}" "$partitions" "${max_bytes[@]}" & pids+=($!)
create "${TOPIC_PUBLISH_RESULTS:-publish.results}" "$partitions" & pids+=($!)
create "${TOPIC_ALERTS:-publish.alerts}" "$partitions" & pids+=($!)
create "${TOPIC_DEAD_LETTER:-publish.dlq}" "$partitions" "${max_bytes[@]}" & pids+=($!)
create "${TOPIC_ACCOUNT_EVENTS:-account.events}" "${ACCOUNT_EVENTS_PARTITIONS:-1}" & pids+=($!)
rc=0
for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
exit "$rc"
