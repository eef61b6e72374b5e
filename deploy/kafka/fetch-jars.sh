#!/usr/bin/env bash
# Fetches the Apache Kafka jars that deploy/dev and the tests run (broker and
# admin tools) from Maven Central once, into a cache outside the repository,
# and prints the directory holding them:
#
#   deploy/kafka/fetch-jars.sh        ->  ~/.cache/publish-worker/kafka-3.9.2/jars
#
# The version is pinned here (PW_KAFKA_VERSION overrides it, e.g. 4.1.1 to
# try a newer line; see the README on what Debian 12's librdkafka does with
# it). Maven resolves deploy/kafka/pom.xml with -C: a jar whose checksum does
# not match Central's fails the fetch. The jar set of the pinned version is
# also recorded in deploy/kafka/jars-VERSION.sha256: a fetched set must match
# it file for file, and the cache is checked against it on every use (a jar
# changed or missing in the cache is fetched again). For another version the
# set Maven verified is recorded in the cache instead.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KAFKA_VERSION=${PW_KAFKA_VERSION:-3.9.2}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/publish-worker/kafka-$KAFKA_VERSION
PINNED="$HERE/jars-$KAFKA_VERSION.sha256"

say() { echo "fetch-jars: $*" >&2; }

cache_ok() {
  local list=$PINNED
  [ -f "$list" ] || list="$CACHE/jars.sha256"
  [ -f "$list" ] && [ -d "$CACHE/jars" ] || return 1
  # the same files, no more, each with its recorded digest
  [ "$(ls "$CACHE/jars" | sort)" = "$(awk '{print $2}' "$list" | sort)" ] || return 1
  (cd "$CACHE/jars" && sha256sum --check --quiet --strict "$list" >/dev/null 2>&1)
}

if cache_ok; then
  echo "$CACHE/jars"
  exit 0
fi

command -v mvn >/dev/null || { say "mvn not found (deploy/install-deps.sh installs it)"; exit 1; }
profile=()
case "$KAFKA_VERSION" in 4.*) profile=(-Pkafka4) ;; esac
tmp="$CACHE.tmp-$$"
rm -rf "$tmp"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
say "fetching Apache Kafka $KAFKA_VERSION's jars with Maven (checksums checked against Central)"
mvn -B -q -C -f "$HERE/pom.xml" "${profile[@]}" -Dkafka.version="$KAFKA_VERSION" \
  dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp/jars" >&2
(cd "$tmp/jars" && sha256sum -- *.jar | sed 's/ \*\?/  /' | awk '{print $1 "  " $2}' | sort -k2) >"$tmp/jars.sha256"
if [ -f "$PINNED" ]; then
  if ! diff -u "$PINNED" "$tmp/jars.sha256" >&2; then
    say "the jars Maven fetched differ from $PINNED (above): refusing them"
    exit 1
  fi
else
  say "no recorded jar list for $KAFKA_VERSION in deploy/kafka/: keeping the one Maven verified"
fi
rm -rf "$CACHE"
mv "$tmp" "$CACHE"
trap - EXIT
say "$(wc -l <"$CACHE/jars.sha256") jars in $CACHE/jars"
echo "$CACHE/jars"
