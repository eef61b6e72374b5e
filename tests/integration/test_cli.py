"""The binary's commands: --help, --version, check-config and bad usage."""
import os
import re

import pytest

from harness import free_port

CONTRACT_VARS = {
    "KAFKA_BOOTSTRAP_SERVERS": None,
    "KAFKA_GROUP_ID": "publish-worker",
    "TOPIC_PUBLISH_REQUESTS": "publish.requests",
    "TOPIC_PUBLISH_RESULTS": "publish.results",
    "TOPIC_ALERTS": "publish.alerts",
    "TOPIC_DEAD_LETTER": "publish.dlq",
    "TOPIC_ACCOUNT_EVENTS": "account.events",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "THREADS_API_BASE_URL": "https://graph.threads.net",
    "OAUTH2_TOKEN_URL": None,
    "OAUTH2_CLIENT_ID": None,
    "OAUTH2_CLIENT_SECRET": None,
    "TOKEN_KEYS_FILE": None,
    "WORKER_ID": None,
    "WORKER_CONCURRENCY": "64",
    "METRICS_ADDR": "0.0.0.0:9102",
    "LOG_LEVEL": "info",
    "TOKEN_REFRESH_AHEAD_S": "604800",
    "AUTH_ALERT_THRESHOLD": "3",
    "AUTH_ALERT_WINDOW_S": "900",
    "PUBLISH_MAX_ATTEMPTS": "5",
}


def clean_env(**kw):
    """An environment with none of the worker's variables but PATH."""
    import os
    env = {k: v for k, v in os.environ.items()
           if k not in CONTRACT_VARS and not k.startswith("RDKAFKA_")}
    env.update(kw)
    return env


def test_help_lists_every_variable_with_its_default(run_cli):
    res = run_cli(["--help"], env=clean_env())
    assert res.returncode == 0
    for name, default in CONTRACT_VARS.items():
        assert name in res.stdout
        if default is not None:
            line = next(l for l in res.stdout.splitlines() if l.strip().startswith(name))
            assert f"default: {default}" in line, line
    assert "RDKAFKA_<NAME>" in res.stdout
    for cmd in ("token put", "token show", "check-config"):
        assert cmd in res.stdout


def test_version(run_cli):
    res = run_cli(["--version"], env=clean_env())
    assert res.returncode == 0
    assert re.match(r"publish-worker \d+\.\d+\.\d+", res.stdout)


def test_check_config_reports_every_problem_naming_the_variable(run_cli):
    res = run_cli(["check-config"], env=clean_env(
        WORKER_CONCURRENCY="lots", LOG_LEVEL="chatty", REDIS_URL="mysql://:hunter2@x",
        METRICS_ADDR="9102", RDKAFKA_NOT_A_PROPERTY="1"))
    assert res.returncode == 2
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "TOKEN_KEYS_FILE", "WORKER_CONCURRENCY",
                 "LOG_LEVEL", "REDIS_URL", "METRICS_ADDR", "RDKAFKA_NOT_A_PROPERTY"):
        assert name in res.stderr, name
    assert "hunter2" not in res.stderr  # a bad URL is named, never echoed: it may hold a password


@pytest.mark.parametrize("url", ["redis://127.0.0.1:notaport/0", "redis://user@127.0.0.1/0",
                                 "redis://127.0.0.1:6379/db"])
def test_check_config_parses_redis_url_as_run_does(run_cli, keyring, url):
    """Everything else is good: only REDIS_URL can fail the check."""
    res = run_cli(["check-config"], env=clean_env(
        KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9092", TOKEN_KEYS_FILE=str(keyring()), REDIS_URL=url))
    assert res.returncode == 2
    assert "REDIS_URL" in res.stderr and url not in res.stderr
    assert res.stderr.count("\n") == 1, res.stderr  # the one problem


@pytest.mark.parametrize("content,expect", [
    (None, "cannot open"),
    ("", "no keys"),
    ("k1\n", "expected KEY_ID:BASE64"),
    ("k1:c2hvcnQ=\n", "AES-256 needs 32"),
    ("k1:%%%%\n", "not valid base64"),
])
def test_check_config_rejects_bad_key_files(run_cli, tmp_path, content, expect):
    path = tmp_path / "keys"
    if content is not None:
        path.write_text(content)
        path.chmod(0o600)
    res = run_cli(["check-config"], env=clean_env(
        KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9092", TOKEN_KEYS_FILE=str(path)))
    assert res.returncode == 2
    assert "TOKEN_KEYS_FILE" in res.stderr
    assert expect in res.stderr


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o602, 0o620, 0o660, 0o666], ids=oct)
def test_key_file_others_can_read_or_write_is_refused(run_cli, keyring, mode):
    """Kubernetes mounts a Secret 0644 unless told otherwise; a key ring that
    other users can read, or that its group can rewrite, is refused."""
    path = keyring()
    os.chmod(path, mode)
    env = clean_env(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9", TOKEN_KEYS_FILE=path,
                    METRICS_ADDR=f"127.0.0.1:{free_port()}")
    for args in (["check-config"], ["run"], ["token", "show", "--account", "a"]):
        res = run_cli(args, env=env, timeout=20)
        assert res.returncode == 2, (args, res.stdout, res.stderr)
        out = res.stdout + res.stderr
        assert "TOKEN_KEYS_FILE" in out and path in out, (args, out)
        assert f"{mode:04o}" in out and "chmod 600" in out, (args, out)


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o440, 0o640], ids=oct)
def test_key_file_of_owner_and_group_only_is_accepted(run_cli, keyring, mode):
    path = keyring()
    os.chmod(path, mode)
    res = run_cli(["check-config"], env=clean_env(
        KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9092", TOKEN_KEYS_FILE=path))
    assert res.returncode == 0, res.stderr


def test_check_config_accepts_a_good_environment(run_cli, keyring):
    res = run_cli(["check-config"], env=clean_env(
        KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9092", TOKEN_KEYS_FILE=str(keyring()),
        RDKAFKA_SECURITY_PROTOCOL="plaintext"))
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("name,value", [
    ("RDKAFKA_PARTITION_ASSIGNMENT_STRATEGY", "range"),
    ("RDKAFKA_PARTITION_ASSIGNMENT_STRATEGY", "cooperative-sticky,roundrobin"),
    ("RDKAFKA_TRANSACTIONAL_ID", "publish-worker-1"),
    ("RDKAFKA_ACKS", "1"),
    ("RDKAFKA_ACKS", "0"),
    ("RDKAFKA_REQUEST_REQUIRED_ACKS", "1"),
    ("RDKAFKA_ENABLE_IDEMPOTENCE", "false"),
    ("RDKAFKA_ENABLE_RANDOM_SEED", "true"),
    ("RDKAFKA_AUTO_OFFSET_RESET", "latest"),
    ("RDKAFKA_AUTO_OFFSET_RESET", "error"),
])
def test_settings_that_break_the_guarantees_are_refused(run_cli, keyring, name, value):
    """librdkafka takes each of these; the worker's guarantees would not hold
    (per-account order, a durable result before the commit, the start rule)."""
    env = clean_env(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9", TOKEN_KEYS_FILE=str(keyring()),
                    METRICS_ADDR=f"127.0.0.1:{free_port()}", **{name: value})
    for command in ("check-config", "run"):
        res = run_cli([command], env=env, timeout=20)
        assert res.returncode == 2, (command, res.stdout, res.stderr)
        assert name in res.stderr, (command, res.stderr)


def test_settings_that_keep_the_guarantees_are_accepted(run_cli, keyring):
    res = run_cli(["check-config"], env=clean_env(
        KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9092", TOKEN_KEYS_FILE=str(keyring()),
        RDKAFKA_PARTITION_ASSIGNMENT_STRATEGY="cooperative-sticky", RDKAFKA_ACKS="all",
        RDKAFKA_REQUEST_REQUIRED_ACKS="-1", RDKAFKA_AUTO_OFFSET_RESET="smallest"))
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("args", [
    ["frobnicate"],
    ["token"],
    ["token", "delete", "--account", "a"],
    ["token", "show"],
    ["token", "show", "--account", "bad account!"],
    ["token", "put", "--account", "a", "--user-id", "u"],
    ["token", "put", "--account", "a", "--user-id", "u", "--expires-in", "soon"],
    ["token", "put", "--account", "a", "--user-id", "u", "--expires-in", "60",
     "--refresh-method", "magic"],
    ["token", "put", "--account", "a", "--user-id", "u", "--expires-in", "60", "--bogus"],
    ["run", "extra"],
])
def test_bad_usage_exits_2_with_a_message(run_cli, args):
    res = run_cli(args, env=clean_env(), input="tok\n")
    assert res.returncode == 2, (args, res.stdout, res.stderr)
    assert res.stderr.strip()
