"""Black-box harness: drives the real publish-worker binary against the real
local servers that `deploy/dev test` starts (Redis, a three-broker Apache
Kafka cluster, librdkafka's mock cluster for the few tests that inject
protocol errors, the fake Threads API). Fixtures live in conftest.py; this module holds the
plain helpers that test files import directly:

    from harness import produce, consume_json, wait_until
"""

import atexit
import base64
import functools
import itertools
import json
import os
import secrets
import signal
import socket
import struct
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

ROOT = Path(__file__).resolve().parents[2]
PW_BIN = os.environ.get("PW_BIN") or str(ROOT / "build" / "worker" / "publish-worker")
_LIVE = []  # every WorkerProcess started and not yet reaped (see conftest.py)
_STARTED = []  # every WorkerProcess started in the current test (see conftest.py)

# What AddressSanitizer, LeakSanitizer and UBSan print: under the sanitized
# build (PW_BIN=build-asan/...) any of these fails the test.
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "SUMMARY: UndefinedBehaviorSanitizer")


def sanitizer_report(text):
    """The sanitizer report in text (a few lines from its first marker), or None."""
    starts = [text.find(m) for m in SANITIZER_MARKERS if m in text]
    if not starts:
        return None
    start = text.rfind("\n", 0, min(starts)) + 1
    return "\n".join(text[start:].splitlines()[:40])


@atexit.register
def _kill_leftovers():
    """Last resort (pytest interrupted mid-test): no worker outlives pytest."""
    for proc in list(_LIVE):
        proc.kill()


def wait_until(predicate, timeout=10.0, interval=0.1, message=None):
    """Calls predicate until it returns something truthy and returns that;
    fails the test after timeout seconds with message (a str or a callable
    returning one)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            if callable(message):
                message = message()
            pytest.fail(message or f"condition not met within {timeout}s: {predicate}")
        time.sleep(interval)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- Kafka: the real cluster and the mock one -------------------------------


def kafka_control(addr, command, check=True, timeout=60.0):
    """Sends one line to a cluster's control port (host:port) and returns its
    one-line reply; with check, an `ERR ...` reply fails the test. The real
    cluster (deploy/kafka/cluster.py) takes `stop N`, `cont N`, `kill N`,
    `term N`, `start N`, `pid N`, `nodes`; the mock one
    (tests/tools/kafka_mock_cluster.c) `topic`, `down`, `up`, `error`,
    `clear`, `rtt`, `leader`, `coordinator`. Both take `ping`."""
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(command.encode() + b"\n")
        reply = s.makefile("rb").readline().decode().strip()
    if check and not reply.startswith("OK"):
        pytest.fail(f"kafka control {command!r}: {reply or 'no reply'}")
    return reply


def create_topics(bootstrap, names, partitions=3, replication=3, config=None, timeout=30):
    """Creates topics on the real cluster with the AdminClient and waits
    until every partition has a leader (names: a list, or a dict of name ->
    its own extra config); existing topics fail the test."""
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap})
    per_topic = names if isinstance(names, dict) else {n: {} for n in names}
    new = [NewTopic(name, partitions, replication, config={**(config or {}), **(extra or {})})
           for name, extra in per_topic.items()]
    for name, future in admin.create_topics(new, operation_timeout=timeout).items():
        future.result()

    def led():
        topics = admin.list_topics(timeout=10).topics
        return all(name in topics and not topics[name].error and
                   len(topics[name].partitions) == partitions and
                   all(p.leader >= 0 for p in topics[name].partitions.values())
                   for name in per_topic)

    deadline = time.monotonic() + timeout
    while not led():
        assert time.monotonic() < deadline, f"topics {list(per_topic)} without leaders"
        time.sleep(0.05)
    # Each broker learns of a new topic from the metadata log in its own time.
    # A consumer whose first metadata comes from a broker that has not yet
    # joins its group with no partitions, and librdkafka asks again only after
    # topic.metadata.refresh.interval.ms (5 min): wait for every broker.
    brokers = admin.list_topics(timeout=10).brokers.values()
    for broker in brokers:
        while not _broker_knows(broker.host, broker.port, list(per_topic), partitions):
            assert time.monotonic() < deadline, \
                f"broker {broker.id} does not know topics {list(per_topic)}"
            time.sleep(0.05)


def await_metadata_on_every_broker(bootstrap):
    """Returns once every broker has applied the cluster metadata written so
    far (ACLs, configs, topics): KRaft brokers apply the metadata log in
    order, so a broker that knows a topic created now knows what came before
    it. The topic is deleted again."""
    marker = f"metadata-marker-{secrets.token_hex(4)}"
    create_topics(bootstrap, [marker], partitions=1, replication=1)
    delete_topics(bootstrap, [marker])


def _broker_knows(host, port, names, partitions):
    """True when the broker at host:port itself answers a Metadata request
    (v1, asked of it alone: client libraries ask any broker) with every topic
    of names, its partitions and a leader for each."""

    def string(s):
        b = s.encode()
        return struct.pack(">h", len(b)) + b

    body = struct.pack(">hhi", 3, 1, 1) + string("pw-tests") + struct.pack(">i", len(names))
    body += b"".join(string(n) for n in names)
    try:
        with socket.create_connection((host, port), timeout=5) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            head = _recv_exactly(sock, 4)
            data = _recv_exactly(sock, struct.unpack(">i", head)[0])
    except OSError:
        return False
    pos = 4  # correlation id

    def take(fmt):
        nonlocal pos
        values = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return values if len(values) > 1 else values[0]

    def take_string():
        nonlocal pos
        n = take(">h")
        s = data[pos:pos + max(n, 0)].decode()
        pos += max(n, 0)
        return s

    for _ in range(take(">i")):  # brokers: node id, host, port, rack
        take(">i"), take_string(), take(">i"), take_string()
    take(">i")  # controller id
    known = {}
    for _ in range(take(">i")):
        error, name, _internal = take(">h"), take_string(), take(">b")
        leaders = []
        for _ in range(take(">i")):
            _perror, _index, leader = take(">hii")
            take(f">{take('>i')}i")  # replicas
            take(f">{take('>i')}i")  # in-sync replicas
            leaders.append(leader)
        known[name] = (error, leaders)
    return all(n in known and known[n][0] == 0 and len(known[n][1]) == partitions and
               all(leader >= 0 for leader in known[n][1]) for n in names)


def _recv_exactly(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
    return buf


def delete_topics(bootstrap, names):
    """Deletes topics of the real cluster (errors ignored: a test's clean-up)."""
    from confluent_kafka.admin import AdminClient
    futures = AdminClient({"bootstrap.servers": bootstrap}).delete_topics(list(names))
    for future in futures.values():
        try:
            future.result(10)
        except Exception:
            pass


def partition_replicas(bootstrap, topic):
    """{partition: [replica broker ids, preferred leader first]}."""
    from confluent_kafka.admin import AdminClient
    meta = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    return {p: list(m.replicas) for p, m in meta.topics[topic].partitions.items()}


def leader(bootstrap, topic, partition):
    from confluent_kafka.admin import AdminClient
    meta = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    return meta.topics[topic].partitions[partition].leader


def kafka_tool(cluster, name, *args, timeout=120):
    """Runs one of Kafka's own tools (kafka-topics, kafka-acls,
    kafka-configs, kafka-reassign-partitions, kafka-leader-election...) the
    way deploy/kafka/kafka-tool.sh does, as the cluster's admin over
    SASL_SSL; fails the test on a non-zero exit. Returns its stdout."""
    env = {**os.environ, "JARS": cluster["JARS"], "ADMIN_CONFIG": cluster["ADMIN_CONFIG"]}
    script = f'. "{ROOT}/deploy/kafka/kafka-tool.sh" && kafka_tool "$@"'
    res = subprocess.run(["bash", "-c", script, "kafka_tool", name, "--bootstrap-server",
                          cluster["SASL_BOOTSTRAP"], *args], env=env, capture_output=True,
                         text=True, timeout=timeout)
    if res.returncode != 0:
        pytest.fail(f"{name} {' '.join(args)}: exit {res.returncode}\n{res.stdout}{res.stderr}")
    return res.stdout


def move_leaders(cluster, replicas, tmp_dir="/tmp"):
    """Moves the leadership of every partition in replicas ({topic:
    {partition: [replicas]}}, as partition_replicas gives them) to its
    second replica with Kafka's own tools: kafka-reassign-partitions puts the
    same replicas in another order (nothing is copied), then
    kafka-leader-election makes the new first one the leader."""
    plan = {"version": 1, "partitions": [
        {"topic": t, "partition": p, "replicas": r[1:] + r[:1]}
        for t, parts in replicas.items() for p, r in parts.items()]}
    elect = {"partitions": [{"topic": t, "partition": p}
                            for t, parts in replicas.items() for p in parts]}
    base = Path(tmp_dir) / f"kafka-move-{uuid.uuid4().hex[:8]}"
    Path(f"{base}-plan.json").write_text(json.dumps(plan))
    Path(f"{base}-elect.json").write_text(json.dumps(elect))
    try:
        kafka_tool(cluster, "kafka-reassign-partitions", "--execute",
                   "--reassignment-json-file", f"{base}-plan.json")
        kafka_tool(cluster, "kafka-leader-election", "--election-type", "PREFERRED",
                   "--path-to-json-file", f"{base}-elect.json")
    finally:
        for suffix in ("-plan.json", "-elect.json"):
            Path(f"{base}{suffix}").unlink(missing_ok=True)


@dataclass
class Message:
    topic: str
    partition: int
    offset: int
    key: str  # None when the message has no key
    value: bytes
    headers: dict = field(default_factory=dict)  # name -> str (UTF-8)

    def json(self):
        return json.loads(self.value)


def _encode(value):
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value).encode()


def produce_many(bootstrap, topic, messages):
    """Produces (key, value[, headers]) tuples with an idempotent producer and
    waits until all are acknowledged. A value may be bytes, str or a JSON-able
    object. Returns [(partition, offset)] in order."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    acks, errors = [None] * len(messages), []

    def on_delivery(index, err, msg):
        # Reports come per partition: index puts each ack in message order.
        if err:
            errors.append(err)
        else:
            acks[index] = (msg.partition(), msg.offset())

    for index, m in enumerate(messages):
        key, value, headers = (tuple(m) + (None,))[:3]
        producer.produce(topic, key=_encode(key), value=_encode(value), headers=headers,
                         on_delivery=functools.partial(on_delivery, index))
    left = producer.flush(30)
    assert not errors and not left, f"produce to {topic}: {errors or f'{left} unacknowledged'}"
    return acks


def produce(bootstrap, topic, key, value, headers=None):
    """Produces one message and waits for its ack; returns (partition, offset)."""
    return produce_many(bootstrap, topic, [(key, value, headers)])[0]


def consume(bootstrap, topic, n, timeout=30.0):
    """Reads `topic` from the beginning of every partition with a fresh group
    until n messages arrived or timeout passed; returns what arrived (so
    `assert len(...) == n` shows the shortfall)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"harness-{uuid.uuid4()}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        # A topic made a moment ago may not be known to every broker yet.
        deadline = time.monotonic() + 10
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        while meta.error and time.monotonic() < deadline:
            time.sleep(0.2)
            meta = consumer.list_topics(topic, timeout=10).topics[topic]
        assert not meta.error, f"topic {topic}: {meta.error}"
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions])
        out, deadline = [], time.monotonic() + timeout
        while len(out) < n and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            key = msg.key()
            out.append(Message(msg.topic(), msg.partition(), msg.offset(),
                               key.decode(errors="replace") if key is not None else None,
                               msg.value(),
                               {k: (v or b"").decode(errors="replace")
                                for k, v in (msg.headers() or [])}))
        return out
    finally:
        consumer.close()


def consume_json(bootstrap, topic, n, timeout=30.0):
    """consume() as (key, value parsed as JSON) pairs."""
    return [(m.key, m.json()) for m in consume(bootstrap, topic, n, timeout)]


# --- worker configuration ---------------------------------------------------------

def new_key(key_id):
    """A key ring entry: (KEY_ID, 32 random bytes)."""
    return (key_id, secrets.token_bytes(32))


def write_keyring(path, keys):
    """Writes a TOKEN_KEYS_FILE: one `KEY_ID:base64` line per (id, bytes),
    the first one encrypts."""
    lines = [f"{kid}:{base64.b64encode(raw).decode()}" for kid, raw in keys]
    Path(path).write_text("\n".join(lines) + "\n")
    os.chmod(path, 0o600)
    return str(path)


_worker_ids = itertools.count(1)


def make_worker_env(topics, keyring, redis_url, kafka_bootstrap, threads_url, **overrides):
    """The environment of one worker; an override of None removes a variable."""
    env = dict(os.environ)
    env.update({
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "KAFKA_GROUP_ID": topics["group_id"],
        "TOPIC_PUBLISH_REQUESTS": topics["requests"],
        "TOPIC_PUBLISH_RESULTS": topics["results"],
        "TOPIC_ALERTS": topics["alerts"],
        "TOPIC_DEAD_LETTER": topics["dlq"],
        "TOPIC_ACCOUNT_EVENTS": topics["account_events"],
        "REDIS_URL": redis_url,
        "THREADS_API_BASE_URL": threads_url,
        "TOKEN_KEYS_FILE": str(keyring),
        "METRICS_ADDR": f"127.0.0.1:{free_port()}",
        "WORKER_ID": f"test-worker-{next(_worker_ids)}",
        "LOG_LEVEL": "debug",
        "OAUTH2_TOKEN_URL": f"{threads_url}/oauth2/token",
        "OAUTH2_CLIENT_ID": "pw-client",
        "OAUTH2_CLIENT_SECRET": "pw-secret",
        # Keep group changes quick in tests: a member that died is noticed
        # after 6 s, not 45 (the mock cluster also holds every rebalance for
        # session.timeout.ms - 1 s).
        "RDKAFKA_SESSION_TIMEOUT_MS": "6000",
        "RDKAFKA_HEARTBEAT_INTERVAL_MS": "500",
    })
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = str(value)
    return env


# --- the worker binary -------------------------------------------------------------

def _need_bin():
    if not os.access(PW_BIN, os.X_OK):
        pytest.fail(f"{PW_BIN} is not built (cmake --build build)")


def run_cli(args, env, input=None, timeout=30):
    """Runs `publish-worker ARGS` to completion; returns the CompletedProcess (text)."""
    _need_bin()
    res = subprocess.run([PW_BIN, *args], env=env, input=input, capture_output=True,
                         text=True, timeout=timeout)
    report = sanitizer_report(res.stderr)
    if report:
        pytest.fail(f"publish-worker {' '.join(args)}: sanitizer report:\n{report}")
    return res


class WorkerProcess:
    """One `publish-worker run` in the background, its stdout (JSON log lines)
    in log_path and its stderr next to it in log_path + '.stderr'."""

    def __init__(self, env, log_path, args=("run",)):
        self.env, self.args = env, list(args)
        self.log_path = Path(log_path)
        self.metrics_addr = env["METRICS_ADDR"]
        self.proc = None
        self.popen_args = {}  # more subprocess.Popen arguments (user=, group=...)

    def start(self):
        _need_bin()
        with open(self.log_path, "ab") as out, open(f"{self.log_path}.stderr", "ab") as err:
            self.proc = subprocess.Popen([PW_BIN, *self.args], env=self.env,
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                         start_new_session=True, **self.popen_args)
        _LIVE.append(self)
        _STARTED.append(self)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _get(self, path, timeout=2.0):
        try:
            with urllib.request.urlopen(f"http://{self.metrics_addr}{path}", timeout=timeout) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except OSError:
            return None, ""  # not listening (yet)

    def get(self, path):
        """The body of GET http://METRICS_ADDR/path whatever the status ('' if
        nothing answers)."""
        return self._get(path)[1]

    def healthz(self):
        return self._get("/healthz")[0]

    def readyz(self):
        return self._get("/readyz")[0]

    def metrics(self):
        """The /metrics page (Prometheus text), or '' when not answering."""
        return self.get("/metrics")

    def wait_ready(self, timeout=30.0):
        def ready():
            if not self.running():
                pytest.fail(f"worker exited with {self.proc.returncode} before /readyz:\n"
                            f"{self.tail()}")
            return self.readyz() == 200
        wait_until(ready, timeout, 0.1,
                   lambda: f"/readyz not 200 within {timeout}s:\n{self.tail()}")
        return self

    def stop(self, sig=signal.SIGTERM, timeout=30.0):
        """Sends sig and waits for the exit; returns the exit code (negative:
        killed by that signal). A worker still running after timeout is
        killed and fails the test."""
        if self.running():
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"worker did not exit within {timeout}s of signal {sig}:\n{self.tail()}")
        finally:
            self._reaped()

    def wait(self, timeout=30.0):
        """Waits for the worker to exit by itself; returns its exit code."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"worker still running after {timeout}s:\n{self.tail()}")
        finally:
            if not self.running():
                self._reaped()

    def kill(self):
        """SIGKILL to the worker's whole process group; returns the exit code."""
        if self.running():
            os.killpg(self.proc.pid, signal.SIGKILL)
        code = self.proc.wait()
        self._reaped()
        return code

    def _reaped(self):
        if self in _LIVE:
            _LIVE.remove(self)

    def logs(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stderr(self):
        path = Path(f"{self.log_path}.stderr")
        return path.read_text(errors="replace") if path.exists() else ""

    def tail(self, n=30):
        """The last n lines of its log and stderr, debug lines left out (a
        sweep's once a second would hide what went wrong)."""
        lines = (self.logs() + self.stderr()).splitlines()
        kept = [line for line in lines if '"level":"debug"' not in line]
        left_out = len(lines) - len(kept)
        return "\n".join(kept[-n:]) + (f"\n({left_out} debug lines left out)" if left_out else "")

    def log_records(self):
        """Every stdout line parsed as JSON; a line that is not a JSON object
        fails the test (a line still being written is left for later)."""
        records = []
        for number, line in enumerate(self.logs().split("\n")[:-1], 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if not isinstance(record, dict):
                pytest.fail(f"{self.log_path}:{number}: stdout line is not a JSON object: {line!r}")
            records.append(record)
        return records


# --- the fake Threads API --------------------------------------------------------

def test_ca_file():
    """The test CA's bundle (deploy/dev makes one per run), or None."""
    tls_dir = os.environ.get("PW_TEST_TLS_DIR")
    return os.path.join(tls_dir, "ca.pem") if tls_dir else None


def redis_client(url, **kw):
    """redis.Redis for url; a rediss:// one verifies with REDIS_TLS_CA_FILE and
    presents REDIS_TLS_CERT_FILE/KEY_FILE, as the worker does."""
    import redis
    if url.startswith("rediss://"):
        kw.setdefault("ssl_ca_certs", os.environ.get("REDIS_TLS_CA_FILE"))
        kw.setdefault("ssl_certfile", os.environ.get("REDIS_TLS_CERT_FILE"))
        kw.setdefault("ssl_keyfile", os.environ.get("REDIS_TLS_KEY_FILE"))
        kw.setdefault("ssl_cert_reqs", "required")
    return redis.Redis.from_url(url, **kw)


class FakeThreads:
    """Client of the fake Threads API's control interface (/__control/...),
    which is served on the API's own listener: over HTTPS it verifies the
    fake's certificate with the test CA."""

    def __init__(self, base_url):
        self.base_url = base_url.rstrip("/")
        self.http = requests.Session()
        self.http.verify = test_ca_file() or True

    def _call(self, method, path, body=None, **params):
        r = self.http.request(method, f"{self.base_url}/__control/{path}", json=body,
                              params=params or None, timeout=10)
        assert r.ok, f"fake threads {method} /__control/{path}: {r.status_code} {r.text}"
        return r.json() if r.content else None

    def _post(self, path, **fields):
        return self._call("POST", path, {k: v for k, v in fields.items() if v is not None})

    def reset(self):
        return self._post("reset")

    def register_token(self, access_token, user_id, expires_in=5184000, issued_at=None,
                       scopes=None, refresh_token=None, expires_at=None, username=None):
        """Makes access_token valid for user_id; expires_at (unix s) replaces
        expires_in; scopes=None means every scope; username (GET /v1.0/me's)
        defaults to user_<user_id>."""
        return self._post("tokens", access_token=access_token, user_id=user_id,
                          expires_in=None if expires_at is not None else expires_in,
                          expires_at=expires_at, issued_at=issued_at, scopes=scopes,
                          refresh_token=refresh_token, username=username)

    def revoke(self, user_id=None, access_token=None, subcode=460):
        return self._post("revoke", user_id=user_id, access_token=access_token, subcode=subcode)

    def fail(self, endpoint, status=500, code=2, subcode=None, message="injected failure",
             count=1, user_id="*", retry_after=None, kind=None, processed=None, hang_ms=None):
        """The next `count` calls of endpoint (threads, threads_publish, container,
        refresh, oauth2, me, publishing_limit, or "*") by user_id fail. kind: "json" (default: the API's
        error JSON with status, code...), "html", "close", "reset", "short_body",
        "cut_json" or "hang" (for hang_ms); processed=True lets the endpoint act
        first (a post is published) and replaces its answer. See FAILURE
        INJECTION in tests/tools/fake_threads/fake.h."""
        return self._post("failures", endpoint=endpoint, status=status, code=code,
                          subcode=subcode, message=message, count=count, user_id=user_id,
                          retry_after=retry_after, kind=kind, processed=processed,
                          hang_ms=hang_ms)

    def clear_failures(self):
        return self._call("DELETE", "failures")

    def settings(self, **kw):
        return self._post("settings", **kw)

    def advance_clock(self, s):
        return self._post("clock", advance_s=s)

    def set_quota_usage(self, user_id, usage):
        """Records `usage` publications of user_id at the fake clock's now, on
        top of those already in the quota window (so on a fresh user its
        quota_usage becomes `usage`): a test fills the publishing quota
        (settings quota_total, default 250; quota_duration, default 86400 s)
        without publishing. Returns the user's quota_usage after."""
        return self._post("quota", user_id=user_id, usage=usage)["quota_usage"]

    def quota_usage(self, user_id):
        """The user's publications in the current quota window."""
        return self.stats()["quota_usage"].get(user_id, 0)

    def stats(self):
        return self._call("GET", "stats")

    def issued_tokens(self):
        return self._call("GET", "tokens/issued")["tokens"]

    def current_token(self, user_id):
        """{"access_token": ..., "refresh_token": ...}: the newest usable ones."""
        return self._call("GET", "tokens/current", user_id=user_id)
