# Sourced by the scripts beside it: kafka_tool NAME ARGS... runs one of
# Kafka's command-line tools (kafka-topics, kafka-acls, kafka-configs...):
# $KAFKA_BIN/NAME.sh when KAFKA_BIN names a Kafka distribution's bin/ (as in
# production), otherwise the same tool's class from the jars in $JARS (what
# deploy/kafka/fetch-jars.sh cached, as deploy/dev and the tests run it).
# ADMIN_CONFIG, when set, is passed as --command-config (SASL/TLS settings
# of an administrator).

kafka_tool_class() {
  case "$1" in
  kafka-topics) echo org.apache.kafka.tools.TopicCommand ;;
  kafka-acls) # moved from the core jar to the tools jar in Kafka 4.0
    if compgen -G "$JARS/kafka_2.13-3.*.jar" >/dev/null; then echo kafka.admin.AclCommand; else echo org.apache.kafka.tools.AclCommand; fi ;;
  kafka-configs) echo kafka.admin.ConfigCommand ;;
  kafka-leader-election) echo org.apache.kafka.tools.LeaderElectionCommand ;;
  kafka-reassign-partitions) echo org.apache.kafka.tools.reassign.ReassignPartitionsCommand ;;
  kafka-storage) echo kafka.tools.StorageTool ;;
  *) return 1 ;;
  esac
}

kafka_tool() {
  local name=$1 class
  shift
  local extra=() option=--command-config
  [ "$name" != kafka-leader-election ] || option=--admin.config # its own spelling
  [ -z "${ADMIN_CONFIG:-}" ] || extra=("$option" "$ADMIN_CONFIG")
  if [ -n "${KAFKA_BIN:-}" ]; then
    "$KAFKA_BIN/$name.sh" "$@" "${extra[@]}"
    return
  fi
  class=$(kafka_tool_class "$name") || {
    echo "kafka_tool: unknown tool $name" >&2
    return 2
  }
  : "${JARS:?set JARS to the Kafka jars (deploy/kafka/fetch-jars.sh prints where) or KAFKA_BIN to a Kafka bin/}"
  # A short-lived JVM: the serial collector and C1 alone start fastest.
  "${JAVA:-java}" -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto \
    -Dlog4j2.level=WARN -cp "$JARS/*" "$class" "$@" "${extra[@]}"
}
