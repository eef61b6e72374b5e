"""Fixtures of the black-box tests. `deploy/dev test` starts the servers and
exports where they listen:

    PW_TEST_REDIS_URL             redis://127.0.0.1:P/0
    PW_TEST_KAFKA_BOOTSTRAP       the Apache Kafka cluster's PLAINTEXT listeners
    PW_TEST_KAFKA_CONTROL         127.0.0.1:P, its control port (stop, kill,
                                  start a broker: deploy/kafka/cluster.py)
    PW_TEST_KAFKA_CLUSTER         its cluster.json: SASL_SSL listeners, test CA,
                                  the worker user's password, the admin
                                  tools' settings, the jars
    PW_TEST_MOCK_KAFKA_BOOTSTRAP  librdkafka's mock cluster, for the tests
    PW_TEST_MOCK_KAFKA_CONTROL    marked `mock_kafka` (injected protocol errors)
    PW_TEST_THREADS_URL           https://127.0.0.1:P, the fake Threads API (HTTPS)
    PW_TEST_THREADS_HTTP_URL      http://127.0.0.1:Q, the same fake over plain HTTP
    PW_TEST_TLS_DIR               the run's test CA (ca.pem) and certificates it signed
    THREADS_API_CA_FILE           the test CA: every worker (it inherits the
                                  environment) verifies the fake's certificate with it
    PW_BIN                        the publish-worker binary under test

Each test gets its own topics (created before it, deleted after it),
consumer group and key ring and an empty Redis database and fake Threads
API; no worker outlives its test.
"""

import hashlib
import json
import os
import secrets
import signal

import pytest

import harness

REQUIRED = ("PW_TEST_REDIS_URL", "PW_TEST_KAFKA_BOOTSTRAP", "PW_TEST_KAFKA_CONTROL",
            "PW_TEST_KAFKA_CLUSTER", "PW_TEST_MOCK_KAFKA_BOOTSTRAP", "PW_TEST_MOCK_KAFKA_CONTROL")
# Where no fake Threads API runs, workers point at a port nobody listens on.
NO_THREADS = "http://127.0.0.1:9"


def pytest_configure(config):
    config.addinivalue_line("markers", "partitions(n, ROLE=m): partitions of each test topic (default 3), of ROLE's m")
    config.addinivalue_line("markers", "topic_config(role=dict): extra config of a test topic "
                            "(role: requests, results, alerts, dlq, account_events)")
    config.addinivalue_line("markers", "mock_kafka: the test runs against librdkafka's mock "
                            "cluster (it injects protocol errors a real broker has no way to)")


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_sessionstart(session):
    # SIGTERM (CI cancelling, `timeout`) tears down like Ctrl-C: no worker survives.
    signal.signal(signal.SIGTERM, _interrupt)
    mock_only = os.environ.get("PW_TEST_KAFKA") == "mock"
    missing = [name for name in REQUIRED if not os.environ.get(name)
               and not (mock_only and name.startswith("PW_TEST_KAFKA_"))]
    if missing:
        pytest.exit(f"{', '.join(missing)} not set: run through `deploy/dev test` "
                    "(or export what `deploy/dev servers` prints)", 2)


@pytest.fixture(scope="session")
def redis_url():
    return os.environ["PW_TEST_REDIS_URL"]


@pytest.fixture(autouse=True)
def _empty_redis():
    """Every test starts on an empty Redis: post records, tokens and locks of
    one test must not answer for another's (tests reuse post ids)."""
    if "PW_TEST_REDIS_URL" in os.environ:
        harness.redis_client(os.environ["PW_TEST_REDIS_URL"]).flushdb()


@pytest.fixture
def rds(redis_url):
    """A redis.Redis client (bytes replies) on an emptied database."""
    client = harness.redis_client(redis_url)
    client.flushdb()
    yield client
    client.close()


def _mock(request):
    """Whether this test runs on the mock cluster: marked `mock_kafka`, or
    every test where no real cluster runs (PW_TEST_KAFKA=mock: deploy/dev
    debian13)."""
    return (os.environ.get("PW_TEST_KAFKA") == "mock"
            or request.node.get_closest_marker("mock_kafka") is not None)


@pytest.fixture
def kafka_bootstrap(request):
    """The real cluster's bootstrap servers (the mock's for `mock_kafka` tests)."""
    return os.environ["PW_TEST_MOCK_KAFKA_BOOTSTRAP" if _mock(request) else
                      "PW_TEST_KAFKA_BOOTSTRAP"]


@pytest.fixture
def kafka_control(request):
    """kafka_control("kill 1") -> "OK kill" (the mock's commands for
    `mock_kafka` tests); an ERR reply fails the test unless check=False."""
    addr = os.environ["PW_TEST_MOCK_KAFKA_CONTROL" if _mock(request) else
                      "PW_TEST_KAFKA_CONTROL"]

    def control(command, check=True):
        return harness.kafka_control(addr, command, check)

    return control


@pytest.fixture(scope="session")
def kafka_cluster():
    """The real cluster's cluster.json: SASL_BOOTSTRAP, CA, WORKER_USER,
    WORKER_PASSWORD, ADMIN_CONFIG, JARS (see deploy/kafka/cluster.py)."""
    with open(os.environ["PW_TEST_KAFKA_CLUSTER"]) as f:
        return json.load(f)


@pytest.fixture(scope="session")
def threads_url():
    url = os.environ.get("PW_TEST_THREADS_URL")
    if not url:
        pytest.skip("PW_TEST_THREADS_URL not set: fake-threads is not running")
    return url


@pytest.fixture
def fake(threads_url):
    """harness.FakeThreads on a freshly reset fake Threads API."""
    client = harness.FakeThreads(threads_url)
    client.reset()
    return client


@pytest.fixture
def topics(request, kafka_bootstrap, kafka_control):
    """This test's own topics and its consumer group: {"requests", "results",
    "alerts", "dlq", "account_events", "group_id"}. On the real cluster they
    have three replicas and min.insync.replicas=2 as in production, and are
    deleted after the test; on the mock (`mock_kafka`) they live on."""
    marker = request.node.get_closest_marker("partitions")
    partitions = marker.args[0] if marker else 3
    per_role = marker.kwargs if marker else {}  # e.g. account_events=1
    extra = request.node.get_closest_marker("topic_config")
    extra = extra.kwargs if extra else {}
    digest = hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:8]
    prefix = f"t{digest}{secrets.token_hex(2)}"
    names = {"requests": "publish.requests", "results": "publish.results",
             "alerts": "publish.alerts", "dlq": "publish.dlq",
             "account_events": "account.events"}
    out = {role: f"{prefix}-{name}" for role, name in names.items()}
    if _mock(request):
        for role in names:
            kafka_control(f"topic {out[role]} {per_role.get(role, partitions)}")
    else:
        counts = {}
        for role in names:
            counts.setdefault(per_role.get(role, partitions), []).append(role)
        for count, roles in counts.items():
            harness.create_topics(kafka_bootstrap, {out[r]: extra.get(r) for r in roles}, count)
    out["group_id"] = f"{prefix}-group"
    yield out
    if not _mock(request):
        harness.delete_topics(kafka_bootstrap, [out[r] for r in names])


class Keyring:
    """keyring() writes a key ring of one random key and returns its path;
    keyring([B, A]) writes the given (KEY_ID, 32 bytes) pairs, B encrypting;
    keyring.new_key("A") makes such a pair."""

    new_key = staticmethod(harness.new_key)

    def __init__(self, directory):
        self.directory, self.count = directory, 0

    def __call__(self, keys=None):
        self.count += 1
        return harness.write_keyring(self.directory / f"keys-{self.count}.txt",
                                     keys or [harness.new_key("k1")])


@pytest.fixture
def keyring(tmp_path):
    return Keyring(tmp_path)


@pytest.fixture
def worker_env(topics, keyring, redis_url, kafka_bootstrap):
    """worker_env(topics=None, keyring=None, keys=None, **overrides) -> env
    dict for one worker: this test's topics and group unless given; the key
    ring at path `keyring`, or one written from `keys` (keyring.new_key
    pairs), or else one key ring shared by the test's workers; a fresh
    METRICS_ADDR and WORKER_ID. An override of None removes the variable."""
    threads = os.environ.get("PW_TEST_THREADS_URL") or NO_THREADS
    test_topics, shared = topics, []

    def make(topics=None, keyring_path=None, keys=None, **overrides):
        path = overrides.pop("keyring", keyring_path)
        if keys:
            path = keyring(keys)
        elif path is None or isinstance(path, Keyring):
            if not shared:
                shared.append(keyring())
            path = shared[0]
        return harness.make_worker_env(topics or test_topics, path, redis_url,
                                       kafka_bootstrap, threads, **overrides)

    return make


@pytest.fixture
def run_cli():
    """run_cli(args, env, input=None, timeout=30) -> CompletedProcess (text)."""
    return harness.run_cli


class Workers:
    """workers.start(env, name=None) -> a started harness.WorkerProcess
    logging to tmp_path/<name>.log; workers.new(...) the same, not started."""

    def __init__(self, directory):
        self.directory, self.count = directory, 0

    def new(self, env, name=None, args=("run",)):
        self.count += 1
        log = self.directory / f"{name or f'worker-{self.count}'}.log"
        return harness.WorkerProcess(env, log, args)

    def start(self, env, name=None, args=("run",)):
        return self.new(env, name, args).start()


@pytest.fixture
def workers(tmp_path):
    return Workers(tmp_path)


@pytest.fixture(autouse=True)
def _reap_workers():
    """Kills every worker a test left running, however it was started, and
    shows the end of its log in the test's report. Then fails the test if
    any worker it started printed a sanitizer report (the ASan/UBSan build
    that `deploy/dev test` runs a subset against): a report of a worker the
    test killed, or of one whose exit code it did not check, counts too."""
    harness._STARTED.clear()
    yield
    for proc in list(harness._LIVE):
        print(f"--- {proc.log_path} (killed at teardown) ---\n{proc.tail()}")
        proc.kill()
    reports = [f"--- {proc.log_path}.stderr ---\n{report}" for proc in harness._STARTED
               if (report := harness.sanitizer_report(proc.stderr()))]
    harness._STARTED.clear()
    if reports:
        pytest.fail("sanitizer report:\n" + "\n".join(reports), pytrace=False)


@pytest.fixture
def fault_run(kafka_bootstrap, topics, fake):
    """invariants.FaultRun of this test: accounts, requests, the observer of
    results and commits, and the checks after a fault."""
    import invariants
    run = invariants.FaultRun(kafka_bootstrap, topics, fake)
    yield run
    run.close()
