"""The Helm chart (helm/publish-worker): `helm lint` and `helm template` with the
default values and with every switch on, and assertions on the rendered
manifests. Needs helm (deploy/install-deps.sh installs it) and no servers and
no cluster; the one test that runs the worker's check-config on the rendered
environment needs the built binary."""

import base64
import copy
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "publish-worker"
HELM = shutil.which("helm")
RELEASE = "pw"
FULLNAME = "pw-publish-worker"
SELECTOR = {"app.kubernetes.io/name": "publish-worker", "app.kubernetes.io/instance": RELEASE}

pytestmark = pytest.mark.skipif(
    HELM is None, reason="helm is not installed (deploy/install-deps.sh installs it)")

KEY_RING = "k1:" + base64.b64encode(bytes(range(32))).decode() + "\n"

# Every switch on, with KEDA as the autoscaler (HPA_ON swaps it for the HPA).
ALL_ON = {
    "kafka": {
        "bootstrapServers": "kafka-0.kafka:9092,kafka-1.kafka:9092",
        "groupId": "publishers",
        "config": {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": "publish-worker",
            "message.max.bytes": 2000000,
            "enable.ssl.certificate.verification": False,
        },
        "secretConfig": {"sasl.password": {"name": "kafka-credentials", "key": "password"}},
    },
    "redis": {"existingSecret": {"name": "redis-credentials", "key": "url"}},
    "oauth2": {"tokenUrl": "https://auth.example.com/oauth2/token", "clientId": "client-1"},
    "secret": {"tokenKeys": KEY_RING, "oauth2ClientSecret": "client-secret-1"},
    "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
    "prometheusRule": {"enabled": True, "labels": {"release": "prometheus"}},
    "grafanaDashboard": {"enabled": True},
    "keda": {"enabled": True, "authenticationRef": "kafka-auth",
             "triggerMetadata": {"sasl": "scram_sha512"}},
    "networkPolicy": {
        "enabled": True,
        "metricsFrom": [{"namespaceSelector": {
            "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
    },
    "extraEnv": [{"name": "REDIS_POOL_SIZE", "value": "32"}],
    "extraVolumes": [{"name": "kafka-ca", "configMap": {"name": "kafka-ca"}}],
    "extraVolumeMounts": [{"name": "kafka-ca", "mountPath": "/etc/kafka-ca", "readOnly": True}],
}


def merged(base, override):
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


HPA_ON = merged(ALL_ON, {"keda": {"enabled": False}, "autoscaling": {"enabled": True}})
VARIANTS = {"defaults": None, "all-on-keda": ALL_ON, "all-on-hpa": HPA_ON}


def helm(*args):
    return subprocess.run([HELM, *args], capture_output=True, text=True, timeout=60)


def values_args(tmp_path, values):
    if values is None:
        return []
    path = tmp_path / f"values-{len(list(tmp_path.glob('values-*')))}.yaml"
    path.write_text(yaml.safe_dump(values))
    return ["-f", str(path)]


def render(tmp_path, values=None, *extra):
    """The manifests `helm template` makes, as a list of dicts."""
    proc = helm("template", RELEASE, str(CHART), *values_args(tmp_path, values), *extra)
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def render_fails(tmp_path, values=None, *extra):
    """The error of a `helm template` that must fail."""
    proc = helm("template", RELEASE, str(CHART), *values_args(tmp_path, values), *extra)
    assert proc.returncode != 0, "rendering should have failed"
    return proc.stderr


def of_kind(docs, kind):
    return [doc for doc in docs if doc["kind"] == kind]


def one(docs, kind):
    found = of_kind(docs, kind)
    assert len(found) == 1, f"{len(found)} {kind} manifests"
    return found[0]


def deployment_pod(docs):
    return one(docs, "Deployment")["spec"]["template"]["spec"]


def helm_test_pod(docs):
    pods = [doc for doc in of_kind(docs, "Pod")
            if doc["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"]
    assert len(pods) == 1
    return pods[0]


def container(pod_spec):
    (ctr,) = pod_spec["containers"]
    return ctr


def env_of(ctr):
    return {entry["name"]: entry for entry in ctr["env"]}


# --- lint and schema -----------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_chart_lints_strictly(tmp_path, variant):
    proc = helm("lint", "--strict", str(CHART), *values_args(tmp_path, VARIANTS[variant]))
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("override", [
    {"replicaCont": 3},
    {"kafka": {"bootstrapServer": "kafka:9092"}},
    {"keda": {"lagTreshold": 10}},
    {"probes": {"liveness": {"path": "/other"}}},
])
def test_schema_rejects_unknown_keys(tmp_path, override):
    err = render_fails(tmp_path, override)
    assert "Additional property" in err and "not allowed" in err, err


def test_schema_rejects_wrong_types_and_values(tmp_path):
    assert "worker" in render_fails(tmp_path, {"worker": {"logLevel": "verbose"}})
    err = render_fails(tmp_path, {"kafka": {"config": {"SECURITY_PROTOCOL": "ssl"}}})
    assert "kafka.config" in err


def test_schema_sets_additional_properties_false_on_every_object_it_defines():
    schema = json.loads((CHART / "values.schema.json").read_text())

    def walk(node, path):
        if isinstance(node, dict):
            if "properties" in node:
                assert node.get("additionalProperties") is False, f"{path} allows unknown keys"
            for key, value in node.items():
                walk(value, f"{path}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}/{i}")

    walk(schema, "#")
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(values) == set(schema["properties"]), "values.yaml and the schema disagree"


# --- the Deployment ------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_pods_run_locked_down(tmp_path, variant):
    docs = render(tmp_path, VARIANTS[variant])
    for pod in (deployment_pod(docs), helm_test_pod(docs)["spec"]):
        sc = pod["securityContext"]
        assert sc["runAsNonRoot"] is True
        assert sc["runAsUser"] == 10001
        assert sc["fsGroup"] == 10001
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        csc = container(pod)["securityContext"]
        assert csc["readOnlyRootFilesystem"] is True
        assert csc["allowPrivilegeEscalation"] is False
        assert csc["capabilities"]["drop"] == ["ALL"]
    account = one(docs, "ServiceAccount")
    assert account["automountServiceAccountToken"] is False
    assert deployment_pod(docs)["serviceAccountName"] == account["metadata"]["name"]


def test_replicas_set_without_autoscaler(tmp_path):
    docs = render(tmp_path)
    assert one(docs, "Deployment")["spec"]["replicas"] == 3
    assert not of_kind(docs, "HorizontalPodAutoscaler") and not of_kind(docs, "ScaledObject")


def test_hpa_owns_the_replica_count(tmp_path):
    docs = render(tmp_path, {"autoscaling": {"enabled": True}})
    assert "replicas" not in one(docs, "Deployment")["spec"]
    hpa = one(docs, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1", "kind": "Deployment", "name": FULLNAME}
    assert not of_kind(docs, "ScaledObject")


def test_keda_owns_the_replica_count(tmp_path):
    docs = render(tmp_path, ALL_ON)
    assert "replicas" not in one(docs, "Deployment")["spec"]
    scaled = one(docs, "ScaledObject")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"]["name"] == FULLNAME
    assert not of_kind(docs, "HorizontalPodAutoscaler")


def test_both_autoscalers_are_refused(tmp_path):
    err = render_fails(tmp_path, merged(ALL_ON, {"autoscaling": {"enabled": True}}))
    assert "autoscaling.enabled and keda.enabled are both true" in err, err


def test_keda_measures_the_lag_of_the_workers_group(tmp_path):
    docs = render(tmp_path, ALL_ON)
    (trigger,) = one(docs, "ScaledObject")["spec"]["triggers"]
    env = env_of(container(deployment_pod(docs)))
    assert trigger["type"] == "kafka"
    meta = trigger["metadata"]
    assert meta["consumerGroup"] == env["KAFKA_GROUP_ID"]["value"] == "publishers"
    assert meta["topic"] == env["TOPIC_PUBLISH_REQUESTS"]["value"]
    assert meta["bootstrapServers"] == env["KAFKA_BOOTSTRAP_SERVERS"]["value"]
    assert meta["lagThreshold"] == "100"
    assert meta["offsetResetPolicy"] == "earliest"
    assert trigger["authenticationRef"] == {"name": "kafka-auth"}


@pytest.mark.parametrize("variant", VARIANTS)
def test_probes_ask_the_metrics_port(tmp_path, variant):
    docs = render(tmp_path, VARIANTS[variant])
    ctr = container(deployment_pod(docs))
    (port,) = ctr["ports"]
    assert port["name"] == "metrics"
    assert env_of(ctr)["METRICS_ADDR"]["value"] == f"0.0.0.0:{port['containerPort']}"
    for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"),
                        ("readinessProbe", "/readyz")):
        assert ctr[probe]["httpGet"] == {"path": path, "port": "metrics"}, probe


def test_grace_period_covers_the_shutdown(tmp_path):
    pod = deployment_pod(render(tmp_path))
    shutdown_s = int(env_of(container(pod))["SHUTDOWN_TIMEOUT_S"]["value"])
    assert pod["terminationGracePeriodSeconds"] == 45 >= shutdown_s + 10
    err = render_fails(tmp_path, {"worker": {"shutdownTimeoutSeconds": 40}})
    assert "terminationGracePeriodSeconds (45) must be at least" in err, err


def test_contract_environment(tmp_path):
    env = env_of(container(deployment_pod(render(tmp_path))))
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "KAFKA_GROUP_ID", "TOPIC_PUBLISH_REQUESTS",
                 "TOPIC_PUBLISH_RESULTS", "TOPIC_ALERTS", "TOPIC_DEAD_LETTER",
                 "TOPIC_ACCOUNT_EVENTS", "REDIS_URL", "THREADS_API_BASE_URL", "TOKEN_KEYS_FILE",
                 "WORKER_ID", "WORKER_CONCURRENCY", "METRICS_ADDR", "LOG_LEVEL",
                 "TOKEN_REFRESH_AHEAD_S", "AUTH_ALERT_THRESHOLD", "AUTH_ALERT_WINDOW_S",
                 "PUBLISH_MAX_ATTEMPTS", "SHUTDOWN_TIMEOUT_S", "LIVENESS_STALL_S"):
        assert name in env, name
    assert env["TOPIC_PUBLISH_REQUESTS"]["value"] == "publish.requests"
    assert env["WORKER_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["TOKEN_REFRESH_AHEAD_S"]["value"] == "604800"  # an integer, not 6.048e+05
    assert not any(name.startswith("OAUTH2_") for name in env)


def test_redis_eviction_opt_in_is_passed_and_off_by_default(tmp_path):
    env = env_of(container(deployment_pod(render(tmp_path))))
    assert env["REDIS_ALLOW_EVICTION"]["value"] == "false"
    env = env_of(container(deployment_pod(render(tmp_path, {"redis": {"allowEviction": True}}))))
    assert env["REDIS_ALLOW_EVICTION"]["value"] == "true"
    assert "allowEviction" in render_fails(tmp_path, {"redis": {"allowEviction": "yes"}})


def test_topology_spread_over_zones_and_hosts(tmp_path):
    constraints = deployment_pod(render(tmp_path))["topologySpreadConstraints"]
    assert [c["topologyKey"] for c in constraints] == [
        "topology.kubernetes.io/zone", "kubernetes.io/hostname"]
    for c in constraints:
        assert c["whenUnsatisfiable"] == "ScheduleAnyway"
        assert c["labelSelector"] == {"matchLabels": SELECTOR}


def test_resources_are_set(tmp_path):
    resources = container(deployment_pod(render(tmp_path)))["resources"]
    assert resources["requests"]["cpu"] and resources["requests"]["memory"]
    assert resources["limits"]["memory"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_labels(tmp_path, variant):
    docs = render(tmp_path, VARIANTS[variant])
    for doc in docs:
        labels = doc["metadata"]["labels"]
        for name in ("app.kubernetes.io/instance", "app.kubernetes.io/version",
                     "app.kubernetes.io/managed-by", "helm.sh/chart"):
            assert name in labels, (doc["kind"], name)
        if doc is not helm_test_pod(docs):
            assert labels["app.kubernetes.io/name"] == "publish-worker", doc["kind"]
    deployment = one(docs, "Deployment")
    assert deployment["spec"]["selector"] == {"matchLabels": SELECTOR}
    assert SELECTOR.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"] == {"matchLabels": SELECTOR}
    # The helm test pod is no worker: nothing that selects workers selects it.
    hook_labels = helm_test_pod(docs)["metadata"]["labels"]
    assert not SELECTOR.items() <= hook_labels.items()


# --- secrets -------------------------------------------------------------------


def key_ring_mount(pod_spec):
    """(the key ring file path from TOKEN_KEYS_FILE, the volume behind it)"""
    ctr = container(pod_spec)
    path = env_of(ctr)["TOKEN_KEYS_FILE"]["value"]
    directory, filename = path.rsplit("/", 1)
    (mount,) = [m for m in ctr["volumeMounts"] if m["mountPath"] == directory]
    assert mount["readOnly"] is True
    (volume,) = [v for v in pod_spec["volumes"] if v["name"] == mount["name"]]
    assert [item["path"] for item in volume["secret"]["items"]] == [filename]
    return path, volume["secret"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_key_ring_secret_is_mounted_at_token_keys_file(tmp_path, variant):
    docs = render(tmp_path, VARIANTS[variant])
    secret = one(docs, "Secret")
    for pod in (deployment_pod(docs), helm_test_pod(docs)["spec"]):
        path, source = key_ring_mount(pod)
        assert path == "/etc/publish-worker/keys/token-keys"
        assert source["secretName"] == secret["metadata"]["name"] == FULLNAME
        assert [item["key"] for item in source["items"]] == ["token-keys"]
        assert source["defaultMode"] == 0o440
    if VARIANTS[variant]:
        assert base64.b64decode(secret["data"]["token-keys"]).decode() == KEY_RING


def test_oauth2_client_secret_comes_from_the_secret(tmp_path):
    docs = render(tmp_path, ALL_ON)
    secret = one(docs, "Secret")
    env = env_of(container(deployment_pod(docs)))
    assert "value" not in env["OAUTH2_CLIENT_SECRET"]
    assert env["OAUTH2_CLIENT_SECRET"]["valueFrom"] == {
        "secretKeyRef": {"name": FULLNAME, "key": "oauth2-client-secret"}}
    assert base64.b64decode(secret["data"]["oauth2-client-secret"]) == b"client-secret-1"
    assert env["OAUTH2_TOKEN_URL"]["value"] == "https://auth.example.com/oauth2/token"
    assert env["REDIS_URL"]["valueFrom"] == {
        "secretKeyRef": {"name": "redis-credentials", "key": "url"}}
    err = render_fails(tmp_path, merged(ALL_ON, {"secret": {"oauth2ClientSecret": ""}}))
    assert "oauth2.tokenUrl is set but there is no client secret" in err, err


def checksum(docs):
    return one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/secret"]


def test_checksum_rolls_the_pods_when_a_secret_value_changes(tmp_path):
    base = checksum(render(tmp_path, ALL_ON))
    assert checksum(render(tmp_path, ALL_ON)) == base
    new_key = "k2:" + base64.b64encode(bytes(32)).decode() + "\n"
    rotated = merged(ALL_ON, {"secret": {"tokenKeys": KEY_RING + new_key}})
    assert checksum(render(tmp_path, rotated)) != base
    new_client = merged(ALL_ON, {"secret": {"oauth2ClientSecret": "client-secret-2"}})
    assert checksum(render(tmp_path, new_client)) != base
    assert checksum(render(tmp_path, merged(ALL_ON, {"worker": {"logLevel": "debug"}}))) == base


def test_existing_secret_replaces_the_charts(tmp_path):
    docs = render(tmp_path, merged(ALL_ON, {"secret": {
        "existingSecret": "publish-worker-keys", "tokenKeys": "", "oauth2ClientSecret": ""}}))
    assert not of_kind(docs, "Secret")
    for pod in (deployment_pod(docs), helm_test_pod(docs)["spec"]):
        _, source = key_ring_mount(pod)
        assert source["secretName"] == "publish-worker-keys"
        ref = env_of(container(pod))["OAUTH2_CLIENT_SECRET"]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "publish-worker-keys"


# --- librdkafka pass-through ------------------------------------------------------


def test_rdkafka_properties_become_environment_variables(tmp_path):
    env = env_of(container(deployment_pod(render(tmp_path, ALL_ON))))
    assert env["RDKAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
    assert env["RDKAFKA_SASL_MECHANISM"]["value"] == "SCRAM-SHA-512"
    assert env["RDKAFKA_MESSAGE_MAX_BYTES"]["value"] == "2000000"
    assert env["RDKAFKA_ENABLE_SSL_CERTIFICATE_VERIFICATION"]["value"] == "false"
    assert env["RDKAFKA_SASL_PASSWORD"] == {
        "name": "RDKAFKA_SASL_PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "kafka-credentials", "key": "password"}}}
    assert env["REDIS_POOL_SIZE"]["value"] == "32"


@pytest.mark.parametrize("prop", ["group.id", "bootstrap.servers", "enable.auto.commit",
                                  "enable.random.seed"])
def test_properties_the_worker_owns_are_refused(tmp_path, prop):
    err = render_fails(tmp_path, {"kafka": {"config": {prop: "x"}}})
    assert f"{prop} is set by the worker" in err, err


@pytest.mark.parametrize("prop,value", [
    ("partition.assignment.strategy", "range"),
    ("transactional.id", "pw"),
    ("acks", 1),
    ("request.required.acks", "1"),
    ("auto.offset.reset", "latest"),
])
def test_properties_that_break_the_guarantees_are_refused(tmp_path, prop, value):
    err = render_fails(tmp_path, {"kafka": {"config": {prop: value}}})
    assert f"kafka.config: {prop}" in err and "guarantees" in err, err


def test_properties_that_keep_the_guarantees_are_rendered(tmp_path):
    config = {"partition.assignment.strategy": "cooperative-sticky", "acks": -1,
              "request.required.acks": "all", "auto.offset.reset": "smallest"}
    env = env_of(container(deployment_pod(render(tmp_path, {"kafka": {"config": config}}))))
    assert env["RDKAFKA_ACKS"]["value"] == "-1"
    assert env["RDKAFKA_AUTO_OFFSET_RESET"]["value"] == "smallest"


# --- the other objects ---------------------------------------------------------


def test_metrics_service_and_service_monitor(tmp_path):
    docs = render(tmp_path, ALL_ON)
    service = one(docs, "Service")
    (port,) = service["spec"]["ports"]
    assert port["name"] == "metrics" and port["targetPort"] == "metrics"
    assert service["spec"]["selector"] == SELECTOR
    monitor = one(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert SELECTOR.items() <= monitor["spec"]["selector"]["matchLabels"].items()
    selects = monitor["spec"]["selector"]["matchLabels"]
    assert selects.items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    assert not of_kind(render(tmp_path), "ServiceMonitor")


def test_network_policy(tmp_path):
    assert not of_kind(render(tmp_path), "NetworkPolicy")
    policy = one(render(tmp_path, ALL_ON), "NetworkPolicy")["spec"]
    assert policy["podSelector"] == {"matchLabels": SELECTOR}
    assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"]
    (ingress,) = policy["ingress"]
    assert ingress["ports"] == [{"port": 9102, "protocol": "TCP"}]
    assert ingress["from"][0]["namespaceSelector"]
    egress_ports = {(p["port"], p["protocol"]) for rule in policy["egress"] for p in rule["ports"]}
    assert egress_ports == {(53, "UDP"), (53, "TCP"), (9092, "TCP"), (6379, "TCP"), (443, "TCP")}


def test_helm_test_pod_runs_check_config_like_a_worker(tmp_path):
    docs = render(tmp_path, ALL_ON)
    pod = helm_test_pod(docs)
    assert pod["spec"]["restartPolicy"] == "Never"
    ctr = container(pod["spec"])
    worker = container(deployment_pod(docs))
    assert ctr["args"] == ["check-config"]
    assert ctr["image"] == worker["image"]
    assert ctr["env"] == worker["env"]
    assert ctr["volumeMounts"] == worker["volumeMounts"]
    assert pod["spec"]["volumes"] == deployment_pod(docs)["volumes"]


# --- the rendered environment against the real binary ---------------------------


def worker_binary():
    path = Path(os.environ.get("PW_BIN") or ROOT / "build" / "worker" / "publish-worker")
    if not os.access(path, os.X_OK):
        pytest.skip(f"{path} is not built")
    return path


@pytest.mark.parametrize("variant", VARIANTS)
def test_rendered_environment_passes_check_config(tmp_path, variant):
    """The chart's variables are the ones the worker reads, with values it takes."""
    binary = worker_binary()
    values = merged(VARIANTS[variant] or {}, {"secret": {"tokenKeys": KEY_RING},
                                              "kafka": {"bootstrapServers": "kafka:9092"}})
    docs = render(tmp_path, values)
    secret = {k: base64.b64decode(v).decode() for k, v in one(docs, "Secret")["data"].items()}
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    for name, entry in env_of(container(deployment_pod(docs))).items():
        if "value" in entry:
            env[name] = entry["value"]
            continue
        ref = entry["valueFrom"].get("secretKeyRef")
        if ref and ref["name"] == FULLNAME:
            env[name] = secret[ref["key"]]
        elif name == "REDIS_URL":
            env[name] = "redis://:password@redis:6379/0"
        else:
            env[name] = "from-a-secret"
    # The file as the Secret volume mounts it: the worker refuses a key ring
    # other users can read, Kubernetes' 0644 when defaultMode is not set.
    _, source = key_ring_mount(deployment_pod(docs))
    keys_file = tmp_path / "token-keys"
    keys_file.write_text(secret["token-keys"])
    keys_file.chmod(source["defaultMode"])
    env["TOKEN_KEYS_FILE"] = str(keys_file)
    proc = subprocess.run([str(binary), "check-config"], env=env, capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- NOTES.txt ---------------------------------------------------------------------


def render_notes(tmp_path, values=None):
    """NOTES.txt as `helm install` would print it. `helm template` skips NOTES.txt
    and `helm install --dry-run` wants a cluster, so a copy of the chart renders
    it as the text of an ordinary template."""
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    notes = (chart / "templates" / "NOTES.txt").read_text()
    (chart / "templates" / "notes.yaml").write_text(
        "notes: |\n" + "".join(f"  {line}\n" for line in notes.splitlines()))
    proc = helm("template", RELEASE, str(chart), "--show-only", "templates/notes.yaml",
                *values_args(tmp_path, values))
    assert proc.returncode == 0, proc.stderr
    return yaml.safe_load(proc.stdout)["notes"]


def test_notes_say_replicas_beyond_the_partitions_sit_idle(tmp_path):
    notes = render_notes(tmp_path, ALL_ON)
    assert "beyond" in notes and "partition count" in notes and "sit idle" in notes
    assert 'consumer group "publishers"' in notes
    assert "helm test pw" in notes
    assert "WARNING" not in notes


def test_notes_warn_about_missing_settings(tmp_path):
    notes = render_notes(tmp_path)
    assert "kafka.bootstrapServers is empty" in notes
    assert "no token key ring" in notes
