#!/usr/bin/env bash
# Grants a worker's principal exactly what the worker needs, with Kafka's own
# kafka-acls tool (README, "Production quick start"):
#
#   deploy/kafka/worker-acls.sh BOOTSTRAP PRINCIPAL GROUP_ID
#
#   Read   on the group GROUP_ID (KAFKA_GROUP_ID) and on the topics
#          publish.requests and account.events, which it consumes
#   Write  on publish.results, publish.alerts, publish.dlq and account.events,
#          which it produces (`token put` produces to account.events too)
#
# Read and Write imply Describe. No cluster-level ACL: the idempotent
# producer's InitProducerId is allowed by Write on any topic (Kafka 3.0 and
# later, KIP-679), so IdempotentWrite is not needed. Topic names follow the
# worker's variables (TOPIC_PUBLISH_REQUESTS...). Adding an ACL twice is
# harmless. Tools: see kafka-tool.sh (KAFKA_BIN or JARS, ADMIN_CONFIG).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/kafka-tool.sh"

bootstrap=${1:?usage: worker-acls.sh BOOTSTRAP PRINCIPAL GROUP_ID}
principal=${2:?usage: worker-acls.sh BOOTSTRAP PRINCIPAL GROUP_ID}
group=${3:?usage: worker-acls.sh BOOTSTRAP PRINCIPAL GROUP_ID}
events=${TOPIC_ACCOUNT_EVENTS:-account.events}

kafka_tool kafka-acls --bootstrap-server "$bootstrap" --add --allow-principal "$principal" \
  --operation Read --group "$group" \
  --topic "${TOPIC_PUBLISH_REQUESTS:-publish.requests}" --topic "$events" >/dev/null &
read_pid=$!
kafka_tool kafka-acls --bootstrap-server "$bootstrap" --add --allow-principal "$principal" \
  --operation Write --topic "${TOPIC_PUBLISH_RESULTS:-publish.results}" \
  --topic "${TOPIC_ALERTS:-publish.alerts}" --topic "${TOPIC_DEAD_LETTER:-publish.dlq}" \
  --topic "$events" >/dev/null &
write_pid=$!
rc=0
wait "$read_pid" || rc=1
wait "$write_pid" || rc=1
[ "$rc" -eq 0 ] && echo "worker-acls: $principal may read group $group and its input, write its output"
exit "$rc"
