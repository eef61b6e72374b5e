"""deploy/docker-compose.yml and deploy/Dockerfile, checked as files: no
container engine runs here, so these tests read them (YAML, Dockerfile
instructions, the shell scripts the compose services run) and need no servers."""

import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
TOPICS = ("publish.requests", "publish.results", "publish.alerts", "publish.dlq", "account.events")
WORKER_ENV = ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL", "TOKEN_KEYS_FILE", "THREADS_API_BASE_URL")


# --- docker-compose.yml ----------------------------------------------------------


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load(COMPOSE.read_text())


def environment(service):
    """A service's environment as a dict, whichever form the file uses."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def command_text(service):
    parts = []
    for key in ("entrypoint", "command"):
        value = service.get(key) or []
        parts.extend(value if isinstance(value, list) else [value])
    return "\n".join(str(part) for part in parts)


def workers(compose):
    found = {name: svc for name, svc in compose["services"].items()
             if (svc.get("build") or {}).get("target") == "worker"
             or str(svc.get("image", "")).startswith("publish-worker:")}
    assert found, "no worker service"
    return found


def test_compose_has_every_service(compose):
    services = compose["services"]
    for name in ("kafka", "redis", "fake-threads", "topics"):
        assert name in services, name
    replicas = sum((svc.get("deploy") or {}).get("replicas", 1)
                   for svc in workers(compose).values())
    assert replicas == 3


def test_kafka_is_apache_kafka_in_kraft_mode(compose):
    kafka = compose["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = environment(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert "CONTROLLER" in env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert not any("ZOOKEEPER" in key for key in env)
    assert kafka["healthcheck"]["test"]


def test_topics_are_created_once_kafka_is_up_by_the_quick_starts_script(compose):
    topics = compose["services"]["topics"]
    assert topics["image"].startswith("apache/kafka:")
    assert topics["image"] == compose["services"]["kafka"]["image"]
    assert topics["depends_on"]["kafka"]["condition"] == "service_healthy"
    # deploy/kafka/topics.sh, mounted from the repository, run with the
    # image's kafka-topics.sh: the command the README's quick start gives.
    mount = next(v for v in topics["volumes"] if v.startswith("./kafka:"))
    inside = mount.split(":")[1]
    assert topics["entrypoint"][:2] == ["/bin/bash", f"{inside}/topics.sh"]
    assert re.fullmatch(r"\d+", topics["entrypoint"][3])  # partitions
    env = environment(topics)
    assert env["KAFKA_BIN"] == "/opt/kafka/bin" and env["REPLICATION_FACTOR"] == "1"
    script = (ROOT / "deploy" / "kafka" / "topics.sh").read_text()
    assert "kafka-topics" in script and "--create" in script and "--if-not-exists" in script
    for topic in TOPICS:
        assert topic in script, topic


def test_redis_appends_to_a_volume(compose):
    redis = compose["services"]["redis"]
    assert re.search(r"--appendonly\W+yes", command_text(redis))
    assert any(str(volume).endswith(":/data") for volume in redis["volumes"])
    assert redis["healthcheck"]["test"]


def test_fake_threads_is_built_from_the_dockerfile(compose):
    fake = compose["services"]["fake-threads"]
    assert fake["build"]["dockerfile"] == "deploy/Dockerfile"
    assert fake["build"]["target"] == "fake-threads"
    context = COMPOSE.parent / fake["build"]["context"]
    assert (context / fake["build"]["dockerfile"]).resolve() == DOCKERFILE
    assert "0.0.0.0" in command_text(fake)


def test_workers_are_configured_for_the_stack(compose):
    for name, worker in workers(compose).items():
        env = environment(worker)
        for var in WORKER_ENV:
            assert env.get(var), f"{name}: {var}"
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert env["REDIS_URL"].startswith("redis://redis:")
        assert env["THREADS_API_BASE_URL"].startswith("http://fake-threads:")
        # The key ring file lives in a volume the worker mounts.
        mounts = [str(v).split(":")[1] for v in worker.get("volumes", [])]
        assert any(env["TOKEN_KEYS_FILE"].startswith(m.rstrip("/") + "/") for m in mounts), name
        for dep in ("topics", "redis"):
            assert dep in worker["depends_on"], f"{name} does not wait for {dep}"
        assert worker["build"]["target"] == "worker"


def test_shell_scripts_survive_compose_interpolation(compose):
    """Compose replaces $NAME in the file; the scripts' own variables must be $$NAME."""
    for name, service in compose["services"].items():
        text = command_text(service)
        assert "$" not in text.replace("$$", ""), f"{name}: a single $ that compose would replace"
        if "set -e" in text:
            script = text[text.index("set -e"):].replace("$$", "$")
            proc = subprocess.run(["sh", "-n"], input=script, capture_output=True, text=True)
            assert proc.returncode == 0, f"{name}: {proc.stderr}"


def test_keyring_service_writes_a_valid_key_ring(compose, tmp_path):
    """The one-shot keyring service's script, run here against a directory."""
    keyring = compose["services"]["keyring"]
    script = command_text(keyring)
    script = script[script.index("set -e"):].replace("$$", "$").replace("/keys/", f"{tmp_path}/")
    script = re.sub(r"^chown .*$", "", script, flags=re.M)  # needs root; the mode is what matters
    subprocess.run(["sh", "-c", script], check=True, capture_output=True)
    line = (tmp_path / "token-keys").read_text()
    # The worker refuses a key ring others can access or its group can write.
    assert (tmp_path / "token-keys").stat().st_mode & 0o027 == 0
    assert re.fullmatch(r"[A-Za-z0-9_-]+:[A-Za-z0-9+/]{43}=\n", line), line
    first = line
    subprocess.run(["sh", "-c", script], check=True, capture_output=True)
    assert (tmp_path / "token-keys").read_text() == first, "a second run must keep the key"


# --- Dockerfile ----------------------------------------------------------------------


def instructions(text):
    """(INSTRUCTION, arguments) pairs, with continuation lines joined."""
    text = re.sub(r"\\\n", " ", text)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def stages(text):
    """{stage name: [(INSTRUCTION, arguments), ...]}, in order."""
    out, current = {}, None
    for word, rest in instructions(text):
        if word == "FROM":
            parts = rest.split()
            current = parts[-1] if len(parts) >= 3 and parts[-2].upper() == "AS" else parts[0]
            out[current] = [(word, rest)]
        elif current is not None:
            out[current].append((word, rest))
    return out


@pytest.fixture(scope="module")
def dockerfile():
    return DOCKERFILE.read_text()


def test_dockerfile_is_multi_stage_on_trixie(dockerfile):
    """Debian 13: hiredis 1.x (TLS to Redis) and a current librdkafka."""
    froms = [rest.split()[0] for word, rest in instructions(dockerfile) if word == "FROM"]
    assert len(froms) >= 2
    names = set(stages(dockerfile))
    for base in froms:
        assert base.startswith("debian:trixie") or base in names, base
    assert "fake-threads" in names


def test_image_speaks_tls_to_redis(dockerfile):
    """The runtime carries hiredis 1.x (with hiredis_ssl), and the build fails
    rather than make an image that would refuse rediss://."""
    runtime = " ".join(rest for word, rest in stages(dockerfile)["runtime-base"] if word == "RUN")
    assert "libhiredis1.1.0" in runtime and "libhiredis0.14" not in runtime
    build = " ".join(rest for word, rest in stages(dockerfile)["build"] if word == "RUN")
    assert 'grep -q "TLS to Redis (rediss://) ON"' in build


def test_worker_image_is_the_last_stage(dockerfile):
    final = list(stages(dockerfile).values())[-1]
    user = [rest for word, rest in final if word == "USER"]
    assert user and re.fullmatch(r"[1-9][0-9]*(:[0-9]+)?", user[-1]), \
        "USER must be a numeric, non-root uid (runAsNonRoot checks it)"
    entrypoint = [rest for word, rest in final if word == "ENTRYPOINT"]
    assert entrypoint == ['["/usr/local/bin/publish-worker"]'], "exec-form ENTRYPOINT"
    assert [rest for word, rest in final if word == "CMD"] == ['["run"]']
    copies = [rest for word, rest in final if word == "COPY"]
    assert any(c.startswith("--from=") and c.endswith("/usr/local/bin/publish-worker")
               for c in copies)


def test_no_healthcheck(dockerfile):
    assert not any(word == "HEALTHCHECK" for word, _ in instructions(dockerfile))


def test_runtime_has_no_compilers(dockerfile):
    """Only the build stages install -dev packages; the runtime only libraries."""
    all_stages = stages(dockerfile)
    final = list(all_stages)[-1]
    chain, name = [], final
    while name in all_stages:  # the final stage and the stages it is built on
        chain.append(name)
        name = all_stages[name][0][1].split()[0]
    for stage in chain:
        for word, rest in all_stages[stage]:
            if word == "RUN" and "apt-get install" in rest:
                packages = shlex.split(rest.split("apt-get install", 1)[1].split("&&")[0])
                tools = [p for p in packages
                         if p.endswith("-dev") or p in ("build-essential", "cmake")]
                assert not tools, f"{stage} installs {tools}"
                assert "ca-certificates" in packages
                assert "librdkafka1" in packages


def test_build_stage_skips_the_tests(dockerfile):
    runs = " ".join(rest for word, rest in instructions(dockerfile) if word == "RUN")
    assert "-DPW_BUILD_TESTS=OFF" in runs
