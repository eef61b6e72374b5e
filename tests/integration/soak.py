"""deploy/dev soak [MINUTES]: the real worker under mixed traffic and faults
for MINUTES (default 30), watched for leaks, lost posts and doubled posts.

Worker A runs from start to end and is the one judged for leaks; worker B is
the second replica that the faults start, stop (rebalances) and SIGKILL and
restart (crashes). Both run build/worker/publish-worker against the local
servers that deploy/dev starts.

Traffic, at a steady --rate (default 30 requests/s, no catch-up bursts):
  - valid posts over --accounts accounts (default 150): TEXT 60%, IMAGE 20%,
    VIDEO 10%, CAROUSEL 10%, a few IMAGEs whose media the fake fails;
  - 2% invalid requests (the schema examples' mistakes: answered failed) and
    1% unidentifiable ones (not JSON, not an object, unknown schema, missing
    id: dead letters), each with a marker so that it can be found again;
  - tokens that expire and are refreshed: oauth2 accounts with 15-minute
    tokens (the sweep refreshes them every ~7 minutes, invalidating the old
    one), threads tokens falling due at spread times, and every 15 s Threads
    reporting one account's token expired (190/463: refresh once, retry once);
  - every 2 minutes one account revoked, its posts parked, and 30 s later
    reconnected with `publish-worker token put`, which replays them.

Faults, one every --fault-every seconds (default 60), in this order, each
cleared before the next: an API 500 burst, a rebalance (B started or
stopped), 429s with Retry-After, hangs longer than HTTP_TIMEOUT_MS (some
after the post was published), B SIGKILLed and restarted, connection resets
(some after publishing), a Kafka broker down for 10 s, a proxy's HTML 502s
and cut bodies.

Every 10 s it samples each worker's RSS, fds and threads (/proc), its Redis
connections (its sockets to Redis's port, from /proc/net/tcp), /metrics
(posts in flight, buffered bytes, partitions) and Redis's connected_clients.
After the traffic it clears every fault, reconnects revoked accounts and
drains (up to --drain seconds) until every request is answered, then stops
the workers and judges (see RULES below); the exit code is 1 when any
judgement fails. Worker logs and a CSV of the samples go to --log-dir.
"""
import argparse
import collections
import concurrent.futures
import csv
import datetime
import json
import os
import pathlib
import random
import re
import secrets
import signal
import sys
import tempfile
import threading
import time
import uuid

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import harness  # noqa: E402
import posts  # noqa: E402
import redis  # noqa: E402
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition  # noqa: E402

SAMPLE_S = 10
HTTP_TIMEOUT_MS = 3000
OAUTH_LIFETIME_S = 900  # oauth2 tokens: the sweep refreshes at half-life
REFRESH_AHEAD_S = 600  # threads tokens due this long before expiry
EXPIRED_EVERY_S = 15  # Threads says "expired" (190/463) for one account
REVOKE_EVERY_S = 120  # one account revoked ...
REVOKED_FOR_S = 30  # ... and reconnected this much later
EXAMPLES = posts.EXAMPLES / "publish.request.v1"

RULES = """\
rules: judged over the samples of the traffic period, in thirds (the first is warm-up):
  RSS      worker A's max RSS in the last third <= 1.10 x its max in the second third
  fds      worker A's max open fds in the last third <= the second third's max + 4
  redis    worker A's Redis connections, and Redis's connected_clients less worker B's
           (B comes and goes by design): last third's max <= second third's max + 2
  lost     0: a request with no result at all (for a dead letter: not on the DLQ), or a
           valid post neither published on Threads nor answered failed/parked
  parked   0 left parked after the drain: every revoked account is reconnected, so every
           parked post must be answered published (or failed) by the end
  answers  0 valid posts answered failed wrongly: published on the fake anyway, or with class
           invalid_request, or media when their media was sound
  doubled  0: a post published twice on the fake, or double_publish_attempts > 0
  stall    the longest time without a new result while requests were outstanding < 60 s
  exits    no worker exited by itself, and both exit 0 on SIGTERM at the end"""


def env_or_exit(name):
    value = os.environ.get(name)
    if not value:
        sys.exit(f"soak: {name} is not set: run it through deploy/dev soak")
    return value


def log(msg):
    print(f"soak {time.strftime('%H:%M:%S')} {msg}", flush=True)


# --- the process side: /proc and /metrics -------------------------------------------

def proc_status(pid):
    """{'rss': bytes, 'threads': n} of a live process, or None."""
    try:
        text = pathlib.Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    out = {}
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            out["rss"] = int(line.split()[1]) * 1024
        elif line.startswith("Threads:"):
            out["threads"] = int(line.split()[1])
    return out


def cpu_seconds(pid):
    """User + system CPU seconds of a live process, or None."""
    try:
        fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def socket_inodes(pid):
    """(open fd count, set of socket inodes) of a process."""
    inodes, count = set(), 0
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None, set()
    for name in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        count += 1
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return count, inodes


def tcp_peers():
    """inode -> remote port of every established TCP socket (IPv4 and IPv6)."""
    peers = {}
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = pathlib.Path(path).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) > 9 and f[3] == "01":  # ESTABLISHED
                peers[int(f[9])] = int(f[2].rsplit(":", 1)[1], 16)
    return peers


METRIC_RE = re.compile(r"^(publish_worker_[a-z_]+|process_[a-z_]+) (\S+)$", re.M)


def metrics_of(worker):
    """The unlabelled gauges of a worker's /metrics, {} when it does not answer."""
    try:
        return {k: float(v) for k, v in METRIC_RE.findall(worker.metrics())}
    except ValueError:
        return {}


# --- the soak -------------------------------------------------------------------------

class Soak:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.nonce = secrets.token_hex(3)
        self._local = threading.local()
        self.redis = redis.Redis.from_url(args.redis)
        self.redis_port = int(re.search(r":(\d+)(/|$)", args.redis.split("@")[-1]).group(1))
        self.lock = threading.Lock()
        self.stop_traffic = threading.Event()
        self.stop_all = threading.Event()
        # What was produced.
        self.valid = {}  # post_id -> {"account", "text", "kind"}
        self.invalid_sent = {}  # post_id -> example name
        self.dead = {}  # message value -> kind
        self.not_produced = 0  # delivery failed: never in Kafka, expects nothing
        self.acked = 0
        self.sent = 0
        # What came back.
        self.results = collections.defaultdict(list)  # post_id -> [result]
        self.results_total = 0
        self.result_times = []  # monotonic arrival of every result
        self.dead_seen = collections.Counter()
        self.alerts = collections.Counter()
        self.account_events = collections.Counter()
        self.unsettled = set()  # post ids not yet answered for good
        # Workers, samples, faults.
        self.a = None
        self.b = None
        self.b_starts = 0
        self.unexpected_exits = []
        self.samples = []
        self.cpu_seen = {}  # pid -> (monotonic, cpu seconds) at the last sample
        self.fault_now = "-"
        self.fault_log = []
        self.revoked = set()
        self.revoke_log = []
        self.t0 = None
        self.stuck_state = []
        self.late_state = []

    @property
    def fake(self):
        """The fake Threads API's control client of this thread (a requests
        session is not to be shared between threads)."""
        if not hasattr(self._local, "fake"):
            self._local.fake = harness.FakeThreads(self.args.threads)
        return self._local.fake

    # --- set-up ---------------------------------------------------------------------

    def make_topics(self):
        prefix = f"soak-{self.nonce}"
        roles = {"requests": "publish.requests", "results": "publish.results",
                 "alerts": "publish.alerts", "dlq": "publish.dlq",
                 "account_events": "account.events"}
        self.topics = {role: f"{prefix}-{t}" for role, t in roles.items()}
        harness.create_topics(self.args.kafka, list(self.topics.values()), 12)
        self.topics["group_id"] = f"{prefix}-group"

    def worker_env(self, worker_id):
        return harness.make_worker_env(
            self.topics, self.keys, self.args.redis, self.args.kafka, self.args.threads,
            WORKER_ID=worker_id, LOG_LEVEL="info", HTTP_TIMEOUT_MS=HTTP_TIMEOUT_MS,
            TOKEN_SWEEP_INTERVAL_S=15, TOKEN_REFRESH_AHEAD_S=REFRESH_AHEAD_S)

    def token_put(self, account, issued_at, expires_in, refresh_token=None):
        """Registers a fresh token with the fake and stores it as an operator
        would. Exit 1 with the token stored (Kafka unreachable) is accepted:
        the sweep replays parked posts then."""
        token = f"THAA-{uuid.uuid4().hex}"
        self.fake.register_token(token, account["user"], expires_at=issued_at + expires_in,
                                 issued_at=issued_at, refresh_token=refresh_token)
        cmd = ["token", "put", "--account", account["id"], "--user-id", account["user"],
               "--expires-in", str(expires_in), "--issued-at", str(issued_at)]
        stdin = token + "\n"
        if refresh_token:
            cmd += ["--refresh-method", "oauth2"]
            stdin += refresh_token + "\n"
        res = harness.run_cli(cmd, env=self.cli_env, input=stdin, timeout=60)
        if res.returncode == 1 and "stored" in (res.stdout + res.stderr).lower():
            log(f"token put {account['id']}: stored, Kafka unreachable (exit 1)")
        elif res.returncode != 0:
            raise RuntimeError(f"token put {account['id']} exited {res.returncode}: {res.stderr}")

    def connect_accounts(self):
        """Accounts by kind: oauth2 (short-lived tokens the sweep keeps
        refreshing), expiring (threads tokens due at spread times), revocable
        (revoked and reconnected in turn) and plain (long-lived threads)."""
        n = self.args.accounts
        now = int(time.time())
        n_oauth, n_expiring, n_revocable = n // 4, max(1, n // 15), max(1, n // 15)
        self.accounts = []
        for i in range(n):
            kind = ("oauth2" if i < n_oauth else "expiring" if i < n_oauth + n_expiring
                    else "revocable" if i < n_oauth + n_expiring + n_revocable else "plain")
            acct_id = f"soak-{self.nonce}-{kind}-{i}"
            self.accounts.append({"id": acct_id, "user": f"u-{acct_id}", "kind": kind,
                                  "expired_once": False})
        duration = self.args.minutes * 60

        def put(i_acct):
            i, a = i_acct
            if a["kind"] == "oauth2":  # staggered: first refreshes spread over ~7 min
                issued = now - self.rng.randrange(0, OAUTH_LIFETIME_S // 2)
                self.token_put(a, issued, OAUTH_LIFETIME_S,
                               refresh_token=f"THRT-{uuid.uuid4().hex}")
            elif a["kind"] == "expiring":  # due REFRESH_AHEAD_S before expiry, spread over the run
                due_in = int(duration * (i % n_expiring + 1) / (n_expiring + 1))
                self.token_put(a, now - 2 * 86400, 2 * 86400 + REFRESH_AHEAD_S + due_in)
            else:
                self.token_put(a, now - 2 * 86400, 60 * 86400)

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            list(pool.map(put, enumerate(self.accounts)))
        # quota_total: 30 requests/s over 150 accounts pass Meta's 250 a day in 21 minutes.
        self.fake.settings(latency_ms=self.args.latency_ms, oauth_expires_in=OAUTH_LIFETIME_S,
                           container_ready_ms={"IMAGE": 200, "VIDEO": 1500}, quota_total=1000000)
        counts = collections.Counter(a["kind"] for a in self.accounts)
        log(f"{n} accounts connected: {dict(counts)}")

    # --- traffic --------------------------------------------------------------------

    def invalid_templates(self):
        out = []
        for path in sorted((EXAMPLES / "invalid_request").iterdir()):
            out.append((path.stem, json.loads(path.read_text())))
        return out

    def next_message(self, i):
        """(key, value bytes, what) of the i-th request."""
        r = self.rng.random()
        account = self.rng.choice(self.accounts)
        key = account["id"]
        marker = f"soak-{self.nonce}-m{i}"
        if r < 0.01:  # unidentifiable: a dead letter
            kind = ("not_json", "invalid_utf8", "not_object", "unknown_schema", "missing_id")[i % 5]
            value = {
                "not_json": f"soak not json {{{marker}".encode(),
                "invalid_utf8": b"\xff\xfe soak " + marker.encode(),
                "not_object": json.dumps([marker]).encode(),
                "unknown_schema": json.dumps({"schema": "publish.request.v2", "event_id": marker,
                                              "post_id": marker, "account_id": key}).encode(),
                "missing_id": json.dumps({"schema": "publish.request.v1", "event_id": marker,
                                          "account_id": key,
                                          "post": {"media_type": "TEXT", "text": marker}}).encode(),
            }[kind]
            return key, value, ("dead", kind, value)
        if r < 0.03:  # answered failed/invalid_request
            name, body = self.templates[i % len(self.templates)]
            body = json.loads(json.dumps(body))
            body["event_id"] = str(uuid.uuid4())
            body["post_id"] = marker + ("x" * 130 if name == "post-id-too-long" else "")
            if name != "account-id-bad-chars":
                body["account_id"] = key
            else:
                key = body["account_id"]
            return key, json.dumps(body).encode(), ("invalid", name, body["post_id"])
        post_id = f"p{i}-{self.nonce}"
        text = f"soak {post_id}"
        m = self.rng.random()
        kind = "TEXT" if m < 0.6 else "IMAGE" if m < 0.8 else "VIDEO" if m < 0.9 else "CAROUSEL"
        extra = {}
        if kind == "IMAGE" and self.rng.random() < 0.02:
            kind, extra = "MEDIA_ERROR", {"image_url": "https://cdn.example/fake-error.jpg"}
        req = posts.request(key, post_id=post_id, text=text,
                            media_type="IMAGE" if kind == "MEDIA_ERROR" else kind, **extra)
        return key, json.dumps(req).encode(), ("valid", kind, post_id, key, text)

    def produce_loop(self):
        producer = Producer({"bootstrap.servers": self.args.kafka, "linger.ms": 5,
                             "enable.idempotence": True,
                             "log_level": 2})  # our own clients: a broker down is no news
        interval, i = 1.0 / self.args.rate, 0
        next_at = time.monotonic()

        def on_delivery(what):
            def cb(err, _msg):
                with self.lock:
                    if err:
                        self.not_produced += 1
                        self.forget(what)
                    else:
                        self.acked += 1
            return cb

        while not self.stop_traffic.is_set():
            now = time.monotonic()
            if now < next_at:
                producer.poll(min(next_at - now, 0.1))
                continue
            next_at = max(next_at + interval, now - 1.0)  # never more than 1 s of catch-up
            key, value, what = self.next_message(i)
            i += 1
            with self.lock:
                self.expect(what)
                self.sent += 1
            try:
                producer.produce(self.topics["requests"], key=key.encode(), value=value,
                                 on_delivery=on_delivery(what))
            except BufferError:
                with self.lock:
                    self.not_produced += 1
                    self.forget(what)
            producer.poll(0)
        left = producer.flush(120)
        if left:
            log(f"{left} requests never acknowledged by Kafka")

    def expect(self, what):
        if what[0] == "valid":
            _, kind, post_id, account, text = what
            self.valid[post_id] = {"account": account, "text": text, "kind": kind}
            self.unsettled.add(post_id)
        elif what[0] == "invalid":
            self.invalid_sent[what[2]] = what[1]
            self.unsettled.add(what[2])
        else:
            self.dead[what[2]] = what[1]
            self.unsettled.add(what[2])

    def forget(self, what):
        key = what[2]
        self.valid.pop(key, None)
        self.invalid_sent.pop(key, None)
        self.dead.pop(key, None)
        self.unsettled.discard(key)

    # --- what comes back ----------------------------------------------------------------

    def consume_loop(self):
        consumer = Consumer({"bootstrap.servers": self.args.kafka, "log_level": 2,
                             "group.id": f"soak-reader-{uuid.uuid4()}",
                             "enable.auto.commit": False, "auto.offset.reset": "earliest"})
        parts = []
        for role in ("results", "dlq", "alerts", "account_events"):
            topic = self.topics[role]
            meta = consumer.list_topics(topic, timeout=30).topics[topic]
            parts += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions]
        consumer.assign(parts)
        role_of = {self.topics[r]: r for r in ("results", "dlq", "alerts", "account_events")}
        while not self.stop_all.is_set():
            for msg in consumer.consume(500, 0.5):
                if msg.error():
                    continue
                role = role_of[msg.topic()]
                with self.lock:
                    if role == "dlq":
                        self.dead_seen[msg.value()] += 1
                        self.unsettled.discard(msg.value())
                        self.result_times.append(time.monotonic())
                        continue
                    try:
                        body = json.loads(msg.value())
                    except ValueError:
                        continue
                    if role == "alerts":
                        self.alerts[body.get("kind")] += 1
                    elif role == "account_events":
                        self.account_events[body.get("type")] += 1
                    else:
                        self.on_result(body)
        consumer.close()

    def on_result(self, r):
        """@locks_required self.lock"""
        post_id = r.get("post_id")
        self.results[post_id].append(r)
        self.results_total += 1
        self.result_times.append(time.monotonic())
        if r.get("status") in ("published", "duplicate", "failed"):
            self.unsettled.discard(post_id)

    # --- workers ---------------------------------------------------------------------------

    def start_worker(self, name):
        env = self.worker_env(f"soak-{name}")  # a restart keeps its WORKER_ID (a pod's name)
        n = self.b_starts if name == "b" else 0
        w = harness.WorkerProcess(env, self.log_dir / f"worker-{name}{f'-{n}' if n else ''}.log")
        w.start()
        w.name = name
        try:
            w.wait_ready(timeout=60)
        except BaseException as e:  # pytest's Failed is a BaseException
            if isinstance(e, KeyboardInterrupt):
                raise
            log(f"worker {name} not ready within 60 s: {e}")
        return w

    def start_b(self):
        self.b_starts += 1
        self.b = self.start_worker("b")
        log(f"worker b started (pid {self.b.pid})")

    def stop_b(self, sig):
        b, self.b = self.b, None
        if sig == signal.SIGKILL:
            code = b.kill()
        else:
            code = b.stop(sig, timeout=60)
        log(f"worker b {'killed' if sig == signal.SIGKILL else 'stopped'}: exit {code}")
        if sig == signal.SIGTERM and code != 0:
            self.unexpected_exits.append(f"worker b exited {code} on SIGTERM")

    def check_alive(self):
        for w in (self.a, self.b):
            if w is not None and not w.running():
                code = w.proc.returncode
                self.unexpected_exits.append(f"worker {w.name} (pid {w.pid}) exited {code} "
                                             f"at t={self.elapsed():.0f}s")
                log(f"UNEXPECTED: worker {w.name} exited {code}; restarting it\n{w.tail(15)}")
                w._reaped()
                if w is self.a:
                    self.a = self.start_worker("a-restarted")
                else:
                    self.start_b()

    # --- faults ------------------------------------------------------------------------------

    def fault_api_500(self):
        self.fake.fail("*", 500, 2, message="An unexpected error has occurred", count=30)
        return "30 x HTTP 500 (code 2) on any endpoint"

    def fault_rebalance(self):
        if self.b is None:
            self.start_b()
            return "worker b started"
        self.stop_b(signal.SIGTERM)
        return "worker b stopped (SIGTERM)"

    def fault_rate_429(self):
        self.fake.fail("*", 429, 4, message="Application request limit reached", count=20,
                       retry_after=3)
        return "20 x HTTP 429 (code 4, Retry-After 3)"

    def fault_hang(self):
        hang = HTTP_TIMEOUT_MS + 2000
        self.fake.fail("threads", kind="hang", hang_ms=hang, count=3)
        self.fake.fail("threads_publish", kind="hang", hang_ms=hang, count=3, processed=True)
        return f"6 x hang {hang} ms (3 on threads_publish after publishing)"

    def fault_kill(self):
        if self.b is None:
            self.start_b()
            time.sleep(10)
        pid = self.b.pid
        self.stop_b(signal.SIGKILL)
        self.start_b()
        return f"worker b (pid {pid}) SIGKILLed and restarted"

    def fault_reset(self):
        self.fake.fail("*", kind="reset", count=10)
        self.fake.fail("threads_publish", kind="reset", count=3, processed=True)
        return "13 x connection reset (3 on threads_publish after publishing)"

    def fault_broker_down(self):
        self.broker = getattr(self, "broker", 0) % 3 + 1
        harness.kafka_control(self.args.control, f"down {self.broker}")
        try:
            self.stop_all.wait(10)
        finally:
            harness.kafka_control(self.args.control, f"up {self.broker}")
        return f"kafka broker {self.broker} down for 10 s"

    def fault_garbled(self):
        self.fake.fail("*", 502, kind="html", count=10)
        self.fake.fail("container", kind="short_body", count=3)
        self.fake.fail("threads_publish", kind="cut_json", count=3, processed=True)
        return "10 x proxy HTML 502, 3 cut bodies, 3 cut JSON after publishing"

    FAULTS = ("api_500", "rebalance", "rate_429", "hang", "kill", "reset", "broker_down",
              "garbled")

    def fault_loop(self):
        start = time.monotonic()
        next_at, n = start + min(15, self.args.fault_every), 0
        end = start + self.args.minutes * 60 - 15
        while not self.stop_traffic.is_set():
            if self.stop_traffic.wait(max(0.0, next_at - time.monotonic())):
                break
            if time.monotonic() >= end:
                break
            name = self.FAULTS[n % len(self.FAULTS)]
            n += 1
            self.fault_now = name
            t = self.elapsed()
            try:
                what = getattr(self, f"fault_{name}")()
                self.stop_traffic.wait(10)  # let it bite, then clear what is left of it
            except Exception as e:  # noqa: BLE001 - a fault that cannot be set is reported
                what = f"could not inject: {e!r}"
            finally:
                self.fake.clear_failures()
                self.fault_now = "-"
            self.fault_log.append((t, name, what))
            log(f"fault {name}: {what} (cleared)")
            next_at = max(next_at + self.args.fault_every, time.monotonic() + 5)

    # --- tokens: expiry reported by Threads, revoke and reconnect -----------------------

    def accounts_loop(self):
        start = time.monotonic()
        next_expired = start + EXPIRED_EVERY_S
        next_revoke = start + 30
        reput = []  # (when, account)
        revocable = [a for a in self.accounts if a["kind"] == "revocable"]
        n_revoke = 0
        while not self.stop_traffic.wait(0.5):
            now = time.monotonic()
            if now >= next_expired:
                next_expired += EXPIRED_EVERY_S
                self.inject_expired()
            if now >= next_revoke and now < start + self.args.minutes * 60 - REVOKED_FOR_S - 15:
                next_revoke += REVOKE_EVERY_S
                a = revocable[n_revoke % len(revocable)]
                n_revoke += 1
                if a["id"] not in self.revoked:
                    self.fake.revoke(user_id=a["user"], subcode=460)
                    self.revoked.add(a["id"])
                    self.revoke_log.append((self.elapsed(), "revoked", a["id"]))
                    log(f"revoked {a['id']}")
                    reput.append((now + REVOKED_FOR_S, a))
            for when, a in list(reput):
                if now >= when:
                    reput.remove((when, a))
                    self.reconnect(a)
        for _, a in reput:
            self.reconnect(a)

    def reconnect(self, a):
        self.token_put(a, int(time.time()) - 2 * 86400, 60 * 86400)
        self.revoked.discard(a["id"])
        self.revoke_log.append((self.elapsed(), "reconnected", a["id"]))
        log(f"reconnected {a['id']} (token put)")

    def inject_expired(self):
        """Threads reports one account's token expired: oauth2 accounts any
        time; a threads account once (its refreshed token is then younger
        than 24 h and could not be refreshed again)."""
        pool = [a for a in self.accounts if a["kind"] == "oauth2"]
        once = [a for a in self.accounts if a["kind"] == "plain" and not a["expired_once"]]
        if once and self.rng.random() < 0.5:
            pool = once
        a = self.rng.choice(pool)
        a["expired_once"] = True
        self.fake.fail("threads", 401, 190, subcode=463, count=1, user_id=a["user"],
                       message="Error validating access token: Session has expired")

    # --- sampling --------------------------------------------------------------------------

    def elapsed(self):
        return time.monotonic() - self.t0

    def sample(self, phase):
        peers = tcp_peers()
        row = {"t": round(self.elapsed()), "phase": phase, "fault": self.fault_now}
        with self.lock:
            row.update(sent=self.sent, results=self.results_total + sum(self.dead_seen.values()),
                       open=len(self.unsettled))
        for name, w in (("a", self.a), ("b", self.b)):
            st = proc_status(w.pid) if w is not None and w.running() else None
            if st is None:
                row.update({f"{name}_{k}": "" for k in ("cpu", "rss", "fds", "threads", "redis",
                                                          "inflight", "buffered", "parts")})
                continue
            fds, inodes = socket_inodes(w.pid)
            m = metrics_of(w)
            cpu, now, last = cpu_seconds(w.pid), time.monotonic(), self.cpu_seen.get(w.pid)
            if cpu is not None:
                self.cpu_seen[w.pid] = (now, cpu)
            row.update({
                f"{name}_cpu": round(100 * (cpu - last[1]) / (now - last[0]), 1)
                if cpu is not None and last else "",
                f"{name}_rss": st.get("rss", 0), f"{name}_fds": fds,
                f"{name}_threads": st.get("threads", 0),
                f"{name}_redis": sum(1 for i in inodes if peers.get(i) == self.redis_port),
                f"{name}_inflight": int(m.get("publish_worker_posts_in_flight", -1)),
                f"{name}_buffered": int(m.get("publish_worker_buffered_bytes", -1)),
                f"{name}_parts": int(m.get("publish_worker_assigned_partitions", -1)),
            })
        try:
            row["redis_clients"] = self.redis.info("clients")["connected_clients"]
        except redis.RedisError:
            row["redis_clients"] = ""
        self.samples.append(row)
        mib = lambda v: f"{v / 2**20:.1f}" if v != "" else "-"  # noqa: E731
        log(f"t={row['t']}s sent={row['sent']} results={row['results']} open={row['open']} "
            f"A rss={mib(row['a_rss'])}MiB fds={row['a_fds']} thr={row['a_threads']} "
            f"redis={row['a_redis']} inflight={row['a_inflight']} | "
            f"B rss={mib(row['b_rss'])} | redis clients={row['redis_clients']} "
            f"fault={row['fault']}")

    def sample_loop(self):
        next_at = time.monotonic() + SAMPLE_S
        while not self.stop_all.wait(max(0.0, next_at - time.monotonic())):
            next_at += SAMPLE_S
            self.check_alive()
            self.sample("drain" if self.stop_traffic.is_set() else "traffic")

    # --- the run -------------------------------------------------------------------------------

    def run(self):
        args = self.args
        self.log_dir = pathlib.Path(args.log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.fake.reset()
        self.make_topics()
        self.keys = harness.write_keyring(self.log_dir / "soak-keys", [harness.new_key("soak")])
        self.cli_env = self.worker_env("soak-cli")
        self.templates = self.invalid_templates()
        log(f"seed {args.seed}, {args.minutes} min at {args.rate} requests/s over "
            f"{args.accounts} accounts, a fault every {args.fault_every} s, "
            f"fake latency {args.latency_ms} ms; logs in {self.log_dir}")
        self.connect_accounts()

        self.t0 = time.monotonic()
        self.a = self.start_worker("a")
        log(f"worker a started (pid {self.a.pid})")
        threads = [threading.Thread(target=f, name=f.__name__, daemon=True) for f in
                   (self.consume_loop, self.produce_loop, self.sample_loop, self.fault_loop,
                    self.accounts_loop)]
        for t in threads:
            t.start()
        traffic_end = time.monotonic() + args.minutes * 60
        while time.monotonic() < traffic_end and not self.stop_all.is_set():
            time.sleep(1)
        self.traffic_s = self.elapsed()
        self.stop_traffic.set()
        log("traffic stopped; clearing faults, reconnecting revoked accounts, draining")
        for t in threads[1:2] + threads[3:]:  # producer, faults, accounts
            t.join(timeout=180)
        self.fake.clear_failures()
        for broker in (1, 2, 3):
            harness.kafka_control(args.control, f"up {broker}", check=False)

        drain_start = time.monotonic()
        drain_end, looked = drain_start + args.drain, False
        while time.monotonic() < drain_end:
            with self.lock:
                open_ = len(self.unsettled)
                accounts = sorted({self.valid[p]["account"] for p in self.unsettled
                                   if p in self.valid})
            if open_ == 0:
                break
            if not looked and time.monotonic() - drain_start >= 60 and accounts:
                looked = True  # evidence while it lasts: a lock may run out later
                self.late_state = [self.account_state(a) for a in accounts]
                for state in self.late_state:
                    log(f"still unanswered 60 s into the drain: {json.dumps(state)}")
            time.sleep(1)
        time.sleep(3)  # stray second answers (redeliveries) still on their way
        self.drain_s = self.elapsed() - self.traffic_s
        with self.lock:
            left = len(self.unsettled)
            stuck_accounts = sorted({self.valid[p]["account"] for p in self.unsettled
                                     if p in self.valid})
        log(f"drained in {self.drain_s:.0f} s, {left} requests unanswered")
        self.stuck_state = [self.account_state(a) for a in stuck_accounts]
        self.sample("end")
        self.stop_all.set()
        threads[2].join(timeout=30)
        if self.b is not None:
            self.stop_b(signal.SIGTERM)
        code = self.a.stop(timeout=60)
        log(f"worker a stopped: exit {code}")
        if code != 0:
            self.unexpected_exits.append(f"worker a exited {code} on SIGTERM")
        threads[0].join(timeout=30)
        self.stats = self.fake.stats()
        return self.report()

    def account_state(self, account_id):
        """What Redis says about an account whose posts are still unanswered
        (for the report): its status, parked list, replay lock and its TTL."""
        tag = f"pw:{{{account_id}}}"
        try:
            r = self.redis
            lock = r.get(f"{tag}:replay_lock")
            return {"account": account_id,
                    "status": {k.decode(): v.decode() for k, v in
                               r.hgetall(f"{tag}:account").items() if k != b"at_ms"},
                    "parked": r.llen(f"{tag}:parked"),
                    "in_parked_accounts": bool(r.sismember("pw:parked_accounts", account_id)),
                    "replay_lock": lock.decode() if lock else None,
                    "replay_lock_ttl_s": round(r.pttl(f"{tag}:replay_lock") / 1000, 1)
                    if lock else None,
                    "refresh_lock": (r.get(f"{tag}:refresh_lock") or b"").decode() or None}
        except redis.RedisError as e:
            return {"account": account_id, "error": str(e)}

    # --- the verdict ------------------------------------------------------------------------------

    def tally(self):
        pubs = collections.Counter()
        unknown_pubs = 0
        texts = {v["text"]: pid for pid, v in self.valid.items()}
        for lst in self.stats["publications"].values():
            for p in lst:
                if p.get("text") in texts:
                    pubs[texts[p["text"]]] += 1
                else:
                    unknown_pubs += 1
        status = collections.Counter()
        for lst in self.results.values():
            for r in lst:
                status[r.get("status")] += 1
        lost, stuck, answered_not_on_threads, failed_but_published = [], [], [], []
        wrong = []  # (post, kind, on the fake?, error) of valid posts answered failed wrongly
        extra_results = 0
        failed_class = collections.Counter()
        for pid, v in self.valid.items():
            rs = self.results.get(pid, [])
            statuses = [r["status"] for r in rs]
            ok = any(s in ("published", "duplicate") for s in statuses)
            failed = [r for r in rs if r["status"] == "failed"]
            parked = "parked" in statuses
            if failed:
                failed_class[failed[-1]["error"]["class"]] += 1
            if not rs:
                lost.append((pid, "no result"))
            elif not pubs[pid] and not failed and not parked:
                lost.append((pid, "answered published but never published"))
                answered_not_on_threads.append(pid)
            if parked and not ok and not failed:
                stuck.append(pid)
            if failed and pubs[pid]:
                failed_but_published.append(pid)
            err = failed[-1]["error"] if failed else {}
            if failed and (pubs[pid] or err["class"] == "invalid_request"
                           or (err["class"] == "media") != (v["kind"] == "MEDIA_ERROR")):
                wrong.append((pid, v["kind"], "published on the fake" if pubs[pid] else
                              "not published", {k: err.get(k) for k in
                                                ("class", "http_status", "code", "subcode",
                                                 "message")}))
            # one result per request, two for a post parked then published
            extra_results += max(0, len(rs) - (2 if parked and ok else 1))
        for pid, name in self.invalid_sent.items():
            rs = self.results.get(pid, [])
            if not rs:
                lost.append((pid, f"no result for invalid request ({name})"))
            elif any(r["status"] != "failed" or r["error"]["class"] != "invalid_request"
                     for r in rs):
                lost.append((pid, f"invalid request ({name}) answered {rs[0]['status']}"))
            extra_results += max(0, len(rs) - 1)
        for value, kind in self.dead.items():
            if not self.dead_seen.get(value):
                lost.append((value[:40], f"dead letter ({kind}) not on the DLQ"))
        doubled = [(pid, n) for pid, n in pubs.items() if n > 1]
        parked_for = []  # (seconds from the first parked answer to the published one, post)
        for pid in self.valid:
            rs = self.results.get(pid, [])
            parked = [r for r in rs if r["status"] == "parked"]
            done = [r for r in rs if r["status"] in ("published", "duplicate")]
            if parked and done:
                parked_for.append((stamp(done[0]["finished_at"]) -
                                   stamp(parked[0]["finished_at"]), pid))
        kinds = {a["id"]: a["kind"] for a in self.accounts}
        spurious = [pid for pid, v in self.valid.items() if kinds[v["account"]] != "revocable"
                    and any(r["status"] == "parked" for r in self.results.get(pid, []))]
        return dict(parked_for=sorted(parked_for, reverse=True), spurious_parks=spurious,
                    pubs=pubs, unknown_pubs=unknown_pubs, status=status, lost=lost, stuck=stuck,
                    failed_but_published=failed_but_published, extra_results=extra_results,
                    failed_class=failed_class, doubled=doubled, wrong=wrong,
                    answered_not_on_threads=answered_not_on_threads)

    def log_summary(self):
        """Warnings and errors of every worker log, by message (rdkafka's by
        facility), and the auth failures by subcode."""
        kinds, auth = collections.Counter(), collections.Counter()
        for path in sorted(self.log_dir.glob("worker-*.log")):
            with open(path, errors="replace") as f:
                for line in f:
                    if '"level":"warn"' not in line and '"level":"error"' not in line:
                        continue
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        continue
                    msg = rec.get("msg", "")
                    if rec.get("component") == "rdkafka":
                        msg = f"rdkafka {rec.get('facility') or rec.get('error') or ''}".strip()
                    kinds[(rec.get("level"), msg)] += 1
                    if msg == "auth failure":
                        auth[f"{rec.get('code')}/{rec.get('subcode')} ({rec.get('auth')})"] += 1
        return kinds, auth

    def thirds(self, key, transform=None):
        rows = [s for s in self.samples if s["phase"] == "traffic"]
        vals = []
        for s in rows:
            v = s.get(key)
            if transform:
                v = transform(s)
            if v != "" and v is not None:
                vals.append((s["t"], v))
        if len(vals) < 6:
            return None
        span = self.traffic_s
        second = [v for t, v in vals if span / 3 <= t < 2 * span / 3]
        last = [v for t, v in vals if t >= 2 * span / 3]
        if not second or not last:
            return None
        return max(second), max(last), vals

    def slope_mib_per_h(self, vals):
        pts = [(t, v) for t, v in vals if t >= self.traffic_s / 3]
        if len(pts) < 3:
            return float("nan")
        mt = sum(t for t, _ in pts) / len(pts)
        mv = sum(v for _, v in pts) / len(pts)
        den = sum((t - mt) ** 2 for t, _ in pts)
        return (sum((t - mt) * (v - mv) for t, v in pts) / den) * 3600 / 2**20 if den else 0.0

    def print_table(self):
        step = max(1, -(-len(self.samples) // 36))
        rows = [s for i, s in enumerate(self.samples) if i % step == 0 or s["phase"] == "end"]
        head = ("t s", "phase", "fault", "sent", "answered", "open", "A CPU%", "A RSS MiB",
                "A fds", "A thr", "A redis", "A inflt", "A buf KiB", "A parts", "B RSS MiB",
                "B fds", "B redis", "redis clients")
        mib = lambda v: f"{v / 2**20:.1f}" if v != "" else "-"  # noqa: E731
        kib = lambda v: f"{v / 1024:.0f}" if v not in ("", -1) else "-"  # noqa: E731
        dash = lambda v: "-" if v == "" else v  # noqa: E731
        widths = [6, 7, 11, 7, 8, 5, 6, 9, 5, 5, 7, 7, 9, 7, 9, 5, 7, 13]
        print(" ".join(f"{h:>{w}}" for h, w in zip(head, widths)))
        for s in rows:
            cells = (s["t"], s["phase"], s["fault"], s["sent"], s["results"], s["open"],
                     dash(s["a_cpu"]), mib(s["a_rss"]), dash(s["a_fds"]), dash(s["a_threads"]),
                     dash(s["a_redis"]), dash(s["a_inflight"]), kib(s["a_buffered"]),
                     dash(s["a_parts"]), mib(s["b_rss"]), dash(s["b_fds"]), dash(s["b_redis"]),
                     dash(s["redis_clients"]))
            print(" ".join(f"{str(c):>{w}}" for c, w in zip(cells, widths)))
        if step > 1:
            print(f"(every {step}th sample of {len(self.samples)}; all of them in "
                  f"{self.log_dir / 'samples.csv'})")

    def report(self):
        with open(self.log_dir / "samples.csv", "w", newline="") as f:
            out = csv.DictWriter(f, fieldnames=list(self.samples[0]))
            out.writeheader()
            out.writerows(self.samples)
        t = self.tally()
        st = self.stats
        print(f"\n=== soak: {self.args.minutes} min of traffic + {self.drain_s:.0f} s drain, "
              f"seed {self.args.seed}, {time.strftime('%Y-%m-%d %H:%M')} ===\n")
        self.print_table()
        print("\nfaults:")
        for when, name, what in self.fault_log:
            print(f"  t={when:5.0f}s  {name:<12} {what}")
        print(f"revokes: {sum(1 for e in self.revoke_log if e[1] == 'revoked')} accounts revoked "
              f"and reconnected {REVOKED_FOR_S} s later")
        valid_kinds = collections.Counter(v["kind"] for v in self.valid.values())
        published = sum(1 for n in t["pubs"].values() if n)
        print("\ntotals:")
        print(f"  requests produced   {self.acked} acknowledged ({len(self.valid)} valid "
              f"{dict(valid_kinds)}, {len(self.invalid_sent)} invalid, {len(self.dead)} "
              f"unidentifiable); {self.not_produced} never reached Kafka")
        print(f"  results received    {self.results_total}: "
              + ", ".join(f"{k} {v}" for k, v in sorted(t["status"].items())))
        print(f"  published           {published} valid posts on the fake Threads "
              f"(publications {st['publications_total']}, unmatched {t['unknown_pubs']})")
        print(f"  duplicate           {t['status'].get('duplicate', 0)} results")
        print(f"  parked              {t['status'].get('parked', 0)} results "
              f"(left parked at the end: {len(t['stuck'])}; of accounts never revoked: "
              f"{len(t['spurious_parks'])} {t['spurious_parks'][:5]})")
        if t["parked_for"]:
            secs, pid = t["parked_for"][0]
            print(f"  longest parked      {secs:.0f} s ({pid} of {self.valid[pid]['account']}); "
                  f"{sum(1 for s_, _ in t['parked_for'] if s_ > 60)} posts parked over 60 s")
        for state in self.late_state:
            print(f"  60 s into drain     {json.dumps(state)}")
        for state in self.stuck_state:
            print(f"  left unanswered     {json.dumps(state)}")
        print(f"  failed              {sum(t['failed_class'].values())} valid posts "
              f"{dict(t['failed_class'])} + {len(self.invalid_sent)} invalid requests; "
              f"failed though published (answer lost): {len(t['failed_but_published'])}")
        print(f"  dead letters        {sum(self.dead_seen.values())} on the DLQ "
              f"({len(self.dead)} expected)")
        print(f"  extra results       {t['extra_results']} (second answers to a request "
              f"redelivered after a crash or a rebalance)")
        dup0 = sum(1 for lst in self.results.values() for r in lst
                   if r["status"] == "duplicate" and r["attempts"] == 0)
        print(f"  duplicate at once   {dup0} (found published at once: a redelivery, or a "
              f"publish call the HTTP client sent again)")
        print(f"  alerts              {dict(self.alerts)}")
        print(f"  account events      {dict(self.account_events)}")
        print(f"  token refreshes     {sum(st['refreshes'].values())} "
              f"(failed {sum(st['failed_refreshes'].values())})")
        print(f"  injected failures   {st['injected_failures']}")
        print(f"  API requests        {st['requests_total']} {st['requests_by_endpoint']}")
        print(f"  worker b starts     {self.b_starts}")
        kinds, auth = self.log_summary()
        print(f"  auth failures       {dict(auth)} (worker logs)")
        print("  worker warnings     " + ("; ".join(
            f"{n} x {lvl} {msg!r}" for (lvl, msg), n in kinds.most_common(12)) or "none"))
        print(f"  lost                {len(t['lost'])}")
        print(f"  doubled             {len(t['doubled'])} posts published twice, "
              f"double_publish_attempts {st['double_publish_attempts']}")

        verdicts = []

        def judge(name, ok, detail):
            verdicts.append((name, ok, detail))

        rss = self.thirds("a_rss")
        if rss:
            mid, last, vals = rss
            judge("RSS flat", last <= 1.10 * mid,
                  f"worker A max {mid / 2**20:.1f} MiB in the second third, "
                  f"{last / 2**20:.1f} MiB in the last ({100 * (last / mid - 1):+.1f}%, "
                  f"bound +10%); slope after warm-up {self.slope_mib_per_h(vals):+.2f} MiB/h")
        else:
            judge("RSS flat", False, "too few samples to judge (run at least 2 minutes)")
        fds = self.thirds("a_fds")
        if fds:
            judge("fds not growing", fds[1] <= fds[0] + 4,
                  f"worker A max {fds[0]} in the second third, {fds[1]} in the last (bound +4)")
        rc = self.thirds("a_redis")
        if rc:
            judge("Redis connections (A)", rc[1] <= rc[0] + 2,
                  f"worker A max {rc[0]} in the second third, {rc[1]} in the last (bound +2)")
        clients = self.thirds(None, lambda s: "" if s["redis_clients"] == "" else
                              s["redis_clients"] - (s["b_redis"] or 0))
        if clients:
            judge("Redis connected_clients", clients[1] <= clients[0] + 2,
                  f"less worker B's: max {clients[0]} in the second third, {clients[1]} in the "
                  f"last (bound +2)")
        judge("lost == 0", not t["lost"], f"{len(t['lost'])} lost"
              + (": " + "; ".join(f"{p} ({why})" for p, why in t["lost"][:8]) if t["lost"] else ""))
        judge("answers right", not t["wrong"],
              f"{len(t['wrong'])} valid posts answered failed although published, as an "
              f"invalid request, or for their media with sound media"
              + "".join(f"\n{'':32}{w}" for w in t["wrong"][:10]))
        judge("none left parked", not t["stuck"], f"{len(t['stuck'])} parked posts never replayed"
              + (f": {t['stuck'][:8]}" if t["stuck"] else ""))
        doubled = len(t["doubled"]) + st["double_publish_attempts"]
        judge("doubled == 0", doubled == 0,
              f"{len(t['doubled'])} published twice {t['doubled'][:8]}, "
              f"double_publish_attempts {st['double_publish_attempts']}")
        gap = self.longest_gap()
        judge("no stall", gap < 60, f"longest time without a new result {gap:.1f} s (bound 60 s)")
        judge("no unexpected exit", not self.unexpected_exits,
              "; ".join(self.unexpected_exits) or "none")

        print("\n" + RULES + "\n")
        for name, ok, detail in verdicts:
            print(f"  {'PASS' if ok else 'FAIL'}  {name:<24} {detail}")
        failed = [n for n, ok, _ in verdicts if not ok]
        print(f"\nsoak: {'FAILED: ' + ', '.join(failed) if failed else 'passed'} "
              f"(logs in {self.log_dir})")
        return 1 if failed else 0

    def longest_gap(self):
        """The longest gap between consecutive results (or dead letters) during
        the traffic period, counted only while some request was outstanding:
        traffic never stops, so one always is."""
        times = sorted(t for t in self.result_times if t - self.t0 <= self.traffic_s)
        if len(times) < 2:
            return float("inf")
        gaps = [b - a for a, b in zip(times, times[1:])]
        gaps.append(self.t0 + self.traffic_s - times[-1])
        return max(gaps)


def stamp(rfc3339):
    """Seconds since the epoch of a result's finished_at."""
    return datetime.datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def on_sigterm(signum, frame):
    """SIGTERM tears down like Ctrl-C: harness kills every worker still running."""
    raise KeyboardInterrupt(f"signal {signum}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("minutes", nargs="?", type=float, default=30,
                        help="minutes of traffic (default 30)")
    parser.add_argument("--rate", type=float, default=30, help="requests per second (30)")
    parser.add_argument("--accounts", type=int, default=150, help="accounts (150)")
    parser.add_argument("--fault-every", type=float, default=60,
                        help="seconds between faults (60)")
    parser.add_argument("--latency-ms", type=int, default=20,
                        help="the fake's delay per API call (20)")
    parser.add_argument("--drain", type=float, default=480,
                        help="seconds to wait for answers after the traffic (default: longer "
                        "than a crashed replayer's lock, CONTAINER_POLL_TIMEOUT_S + 120 s)")
    parser.add_argument("--seed", type=int, default=None,
                        help="of the traffic's random choices (printed; default: random)")
    parser.add_argument("--log-dir", default=None,
                        help="worker logs and samples.csv (deploy/dev: its run directory)")
    args = parser.parse_args()
    if args.seed is None:
        args.seed = int.from_bytes(os.urandom(4), "big")
    if not 1 <= args.rate <= 200:
        parser.error("--rate must be within 1..200 (the soak is meant to be modest)")
    if args.minutes <= 0 or args.accounts < 20:
        parser.error("MINUTES must be positive and --accounts at least 20")
    args.redis = env_or_exit("PW_TEST_REDIS_URL")
    args.kafka = env_or_exit("PW_TEST_KAFKA_BOOTSTRAP")
    args.control = env_or_exit("PW_TEST_KAFKA_CONTROL")
    args.threads = env_or_exit("PW_TEST_THREADS_URL")
    if args.log_dir is None:
        args.log_dir = tempfile.mkdtemp(prefix="pw-soak-")
    signal.signal(signal.SIGTERM, on_sigterm)
    sys.exit(Soak(args).run())


if __name__ == "__main__":
    main()
