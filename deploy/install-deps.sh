#!/usr/bin/env bash
# Installs the Debian packages that building and testing publish-worker need.
# Only what is missing is installed; each step says what it does.
set -euo pipefail

packages=(
  # build
  build-essential cmake pkg-config
  librdkafka-dev libhiredis-dev libcurl4-openssl-dev libcjson-dev
  libssl-dev libmicrohttpd-dev libcmocka-dev
  # local servers and black-box tests (Debian's python3-* belong to /usr/bin/python3)
  redis-server python3 python3-pytest python3-confluent-kafka python3-redis
  python3-aiohttp python3-jsonschema python3-yaml python3-requests
  # tools the tests call
  curl clang-format prometheus
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} Debian packages present"
  exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
