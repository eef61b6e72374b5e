"""deploy/dev bench: throughput, latency, CPU and memory of one worker on the
local servers (started by deploy/dev), scenario by scenario:

  (a) 2,000 TEXT posts over 500 accounts, 100 ms fake latency per API call,
      WORKER_CONCURRENCY=256: bound = 256 in flight / 0.2 s per post
  (b) the same with 0 ms latency: what the worker itself costs
  (c) 2,000 posts over 5 accounts, 10 ms per call: bound by per-account order

  (t) the operator's commands on 100,000 accounts seeded straight into Redis
      (database 3, emptied before and after; records in the worker's own
      sealed format, seed.py): token list --json, token list (the table),
      token rekey --dry-run, token rekey, and token rekey again (nothing
      left); seconds and CPU of each command

Scenarios (a) to (c) run over HTTPS to the fake API (certificate and host name
verified against deploy/dev's test CA) and again over plain HTTP (--transport
picks one), and counts the API calls and the connections the worker opened
for them (publish_worker_api_connections_total): each new connection is a TCP
and, over HTTPS, a TLS handshake.

Each scenario uses fresh topics and accounts and a fresh worker. Posts are
produced in one burst once the worker is ready; throughput runs from the first
result to the last, latency from a request's Kafka timestamp to its result's.
CPU is the worker's user+system time over the run; RSS its peak (VmHWM).
Every run also checks that no post was lost or published twice.
"""
import argparse
import os
import pathlib
import secrets
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import harness  # noqa: E402
import seed  # noqa: E402
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition  # noqa: E402

SCENARIOS = {
    "a": dict(posts=2000, accounts=500, latency_ms=100, concurrency=256),
    "b": dict(posts=2000, accounts=500, latency_ms=0, concurrency=256),
    "c": dict(posts=2000, accounts=5, latency_ms=10, concurrency=256),
}


def env_or_exit(name):
    value = os.environ.get(name)
    if not value:
        sys.exit(f"bench: {name} is not set: run it through deploy/dev bench")
    return value


def proc_stat(pid):
    """(cpu seconds, peak RSS bytes) of a live process."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    hwm = 0
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) * 1024
    return cpu, hwm


def make_topics(bootstrap, name):
    prefix = f"bench-{name}-{secrets.token_hex(3)}"
    roles = {"requests": "publish.requests", "results": "publish.results",
             "alerts": "publish.alerts", "dlq": "publish.dlq",
             "account_events": "account.events"}
    topics = {role: f"{prefix}-{t}" for role, t in roles.items()}
    harness.create_topics(bootstrap, list(topics.values()), 12)
    topics["group_id"] = f"{prefix}-group"
    return topics


def connect(fake, env, accounts):
    """Registers and stores a token per account (token put, as an operator would)."""
    now = int(time.time())
    users = {}
    for account in accounts:
        user, token = f"u-{account}", f"THAA-{uuid.uuid4().hex}"
        fake.register_token(token, user, expires_at=now + 50 * 86400, issued_at=now - 86400 * 2)
        res = harness.run_cli(["token", "put", "--account", account, "--user-id", user,
                               "--expires-in", str(52 * 86400), "--issued-at",
                               str(now - 2 * 86400)], env=env, input=token + "\n")
        if res.returncode != 0:
            sys.exit(f"bench: token put failed: {res.stderr}")
        users[account] = user
    return users


def collect(bootstrap, topic, n, timeout):
    """The first n messages of topic: (result json, kafka timestamp ms)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4()}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    meta = consumer.list_topics(topic, timeout=10).topics[topic]
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions])
    out, deadline = [], time.monotonic() + timeout
    import json
    while len(out) < n and time.monotonic() < deadline:
        for msg in consumer.consume(500, 0.2):
            if not msg.error():
                out.append((json.loads(msg.value()), msg.timestamp()[1]))
    consumer.close()
    return out


def api_counts(worker):
    """(API calls, connections opened) from the worker's /metrics."""
    calls = conns = 0
    for line in worker.metrics().splitlines():
        if line.startswith("publish_worker_api_calls_total{"):
            calls += float(line.split()[1])
        elif line.startswith("publish_worker_api_connections_total "):
            conns = float(line.split()[1])
    return int(calls), int(conns)


def run(name, spec, args, workdir, transport):
    url = args.threads if transport == "https" else args.threads_http
    fake = harness.FakeThreads(url)
    fake.reset()
    topics = make_topics(args.kafka, name)
    keys = harness.write_keyring(workdir / f"keys-{name}", [harness.new_key("bench")])
    env = harness.make_worker_env(topics, keys, args.redis, args.kafka, url,
                                  WORKER_CONCURRENCY=spec["concurrency"], LOG_LEVEL="warn")
    nonce = secrets.token_hex(3)  # fresh accounts and post ids: no records from earlier runs
    accounts = [f"bench-{name}-{nonce}-{i}" for i in range(spec["accounts"])]
    # (c) publishes 400 posts an account, past Meta's 250 a day: no quota here.
    # Set before token put, which stores the quota it reads from the API: the
    # worker then holds posts past it (parked, rate_limited) as it should.
    fake.settings(quota_total=1000000)
    users = connect(fake, env, accounts)
    fake.settings(latency_ms=spec["latency_ms"])

    worker = harness.WorkerProcess(env, workdir / f"worker-{name}.log").start()
    print(f"bench: worker pid {worker.pid}", flush=True)
    worker.wait_ready(timeout=60)
    cpu0, _ = proc_stat(worker.pid)
    producer = Producer({"bootstrap.servers": args.kafka, "linger.ms": 5,
                         "enable.idempotence": True})
    texts = {}
    import json
    for i in range(spec["posts"]):
        account = accounts[i % len(accounts)]
        post_id = f"{name}-{nonce}-{i}"
        texts[post_id] = f"bench {post_id}"
        producer.produce(topics["requests"], key=account, value=json.dumps({
            "schema": "publish.request.v1", "event_id": str(uuid.uuid4()), "post_id": post_id,
            "account_id": account, "post": {"media_type": "TEXT", "text": texts[post_id]}}))
        if i % 500 == 0:
            producer.poll(0)
    producer.flush(60)
    request_ts = {}
    for msg, ts in collect(args.kafka, topics["requests"], spec["posts"], 60):
        request_ts[msg["post_id"]] = ts
    results = collect(args.kafka, topics["results"], spec["posts"], args.timeout)
    cpu1, rss = proc_stat(worker.pid)
    calls, conns = api_counts(worker)
    worker.stop(timeout=60)
    # Left behind, each run's 60 partition replicas slowed the next run's
    # brokers: the second transport measured 30-40% below the first.
    harness.delete_topics(args.kafka, [t for role, t in topics.items() if role != "group_id"])

    stats = fake.stats()
    published = [p["text"] for u in users.values() for p in stats["publications"].get(u, [])]
    # Lost: never published on the fake, or never answered `published`.
    answered = {r["post_id"] for r, _ in results if r["status"] == "published"}
    published_once = set(published)
    lost = sum(1 for pid, text in texts.items() if text not in published_once or pid not in answered)
    doubled = len(published) - len(set(published)) + stats["double_publish_attempts"]
    stamps = sorted(ts for _, ts in results)
    span = (stamps[-1] - stamps[0]) / 1000 if len(stamps) > 1 else float("nan")
    lat = sorted(ts - request_ts.get(r["post_id"], ts) for r, ts in results)
    pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")  # noqa
    bound = (spec["concurrency"] / (2 * spec["latency_ms"] / 1000)) if spec["latency_ms"] else None
    if name == "c" and spec["latency_ms"]:
        bound = spec["accounts"] / (2 * spec["latency_ms"] / 1000)
    return {
        "scenario": name, "via": transport, "api_calls": calls, "connections": conns,
        "posts": spec["posts"], "accounts": spec["accounts"],
        "latency_ms": spec["latency_ms"], "results": len(results),
        "posts_per_s": len(results) / span if span else float("nan"),
        "p50_ms": pct(0.50), "p99_ms": pct(0.99),
        "cpu_s_per_1000": (cpu1 - cpu0) / max(1, len(results)) * 1000,
        "peak_rss_mib": rss / 2**20, "lost": lost, "doubled": doubled, "bound": bound,
        "peak_api_concurrency": stats["peak_concurrent_requests"],
    }


ADMIN_ACCOUNTS = 100_000


def timed_cli(args, env, workdir):
    """Runs publish-worker ARGS: (seconds, CPU seconds, exit code, stdout
    lines, last stderr line). (Its peak RSS is not reported: a child's
    ru_maxrss keeps the forked Python's.)"""
    out_path, err_path = workdir / "cli.out", workdir / "cli.err"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        started = time.monotonic()
        proc = subprocess.Popen([harness.PW_BIN, *args], env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.monotonic() - started
    with open(out_path) as out:
        lines = sum(1 for _ in out)
    last = (err_path.read_text().strip().splitlines() or [""])[-1]
    return (elapsed, usage.ru_utime + usage.ru_stime, os.waitstatus_to_exitcode(status), lines,
            last)


def seed_admin(rds, keys, n):
    """n accounts: 70% on the old key, 5% marked with parked posts, a
    verification recorded for every tenth."""
    accounts = [f"acct-{i:06d}" for i in range(n)]
    cut = n * 7 // 10
    seed.seed_accounts(rds, keys[1], accounts[:cut])
    seed.seed_accounts(rds, keys[0], accounts[cut:])
    pipe = rds.pipeline(transaction=False)
    now_ms = int(time.time() * 1000)
    for i, account in enumerate(accounts):
        if i % 20 == 0:
            pipe.hset(f"pw:{{{account}}}:account", mapping={
                "status": "reconnect_required", "reason": "revoked", "at_ms": now_ms})
            pipe.rpush(f"pw:{{{account}}}:parked", "{}", "{}")
            pipe.sadd("pw:parked_accounts", account)
        if i % 10 == 0:
            pipe.hset(f"pw:{{{account}}}:verify", mapping={
                "at_ms": now_ms, "outcome": "ok", "message": "fine", "fence": 1})
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()


def run_admin(args, workdir):
    """Scenario (t): the token commands on ADMIN_ACCOUNTS accounts."""
    import redis
    url = args.redis.rsplit("/", 1)[0] + "/3"
    rds = redis.Redis.from_url(url)
    rds.flushdb()
    keys = [harness.new_key("k2"), harness.new_key("k1")]
    ring = harness.write_keyring(workdir / "keys-admin", keys)
    env = harness.make_worker_env(make_topics(args.kafka, "t"), ring, url, args.kafka,
                                  args.threads, LOG_LEVEL="warn")
    started = time.monotonic()
    seed_admin(rds, keys, ADMIN_ACCOUNTS)
    print(f"bench: seeded {ADMIN_ACCOUNTS} accounts ({rds.dbsize()} keys) in "
          f"{time.monotonic() - started:.1f} s", flush=True)
    rows = []
    try:
        for cmd in (["list", "--json"], ["list"], ["rekey", "--dry-run"], ["rekey"], ["rekey"]):
            elapsed, cpu, code, lines, last = timed_cli(["token", *cmd], env, workdir)
            rows.append((" ".join(["token", *cmd]), elapsed, cpu, code, lines, last))
            print(f"bench: {rows[-1]}", flush=True)
    finally:
        rds.flushdb()
    print("\n" + " | ".join(f"{h:>8}" for h in ("seconds", "CPU s", "exit", "lines"))
          + " | command")
    for name, elapsed, cpu, code, lines, last in rows:
        print(" | ".join(f"{c:>8}" for c in (f"{elapsed:.2f}", f"{cpu:.2f}", code, lines))
              + f" | {name}: {last.replace('publish-worker: ', '')}")
    bad = [r[0] for r in rows if r[3] != 0]
    if bad or rows[0][4] != ADMIN_ACCOUNTS:
        sys.exit(f"bench: token commands failed: {bad}, {rows[0][4]} accounts listed")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", default=list(SCENARIOS) + ["t"])
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--transport", choices=("https", "http", "both"), default="both",
                        help="to the fake API (default: both, HTTPS first)")
    args = parser.parse_args()
    args.redis = env_or_exit("PW_TEST_REDIS_URL")
    args.kafka = env_or_exit("PW_TEST_KAFKA_BOOTSTRAP")
    args.threads = env_or_exit("PW_TEST_THREADS_URL")
    args.threads_http = env_or_exit("PW_TEST_THREADS_HTTP_URL")
    if not args.threads.startswith("https://"):
        sys.exit("bench: PW_TEST_THREADS_URL is not HTTPS: run it through deploy/dev bench")
    transports = ["https", "http"] if args.transport == "both" else [args.transport]
    rows = []
    with tempfile.TemporaryDirectory(prefix="pw-bench-") as tmp:
        for name in (n for n in args.scenarios if n != "t"):
            for transport in transports:
                print(f"bench: scenario ({name}) over {transport} {SCENARIOS[name]} ...",
                      flush=True)
                rows.append(run(name, SCENARIOS[name], args, pathlib.Path(tmp), transport))
        if rows:
            print_publishing(rows)
        if "t" in args.scenarios:  # last: its table follows the publishing one
            print(f"bench: scenario (t) token commands on {ADMIN_ACCOUNTS} accounts ...",
                  flush=True)
            run_admin(args, pathlib.Path(tmp))
    failed = [r for r in rows if r["lost"] or r["doubled"] or r["results"] < r["posts"]]
    if failed:
        sys.exit(f"bench: posts lost or doubled in {[r['scenario'] for r in failed]}")


def print_publishing(rows):
    """The publishing scenarios' table."""
    head = ("scen", "via", "posts", "accts", "lat ms", "posts/s", "bound/s", "% bound", "p50 ms",
            "p99 ms", "CPU s/1k", "RSS MiB", "api peak", "calls", "conns", "lost", "doubled")
    print("\n" + " | ".join(f"{h:>8}" for h in head))
    for r in rows:
        bound = r["bound"]
        cells = (r["scenario"], r["via"], r["posts"], r["accounts"], r["latency_ms"],
                 f"{r['posts_per_s']:.0f}", f"{bound:.0f}" if bound else "-",
                 f"{100 * r['posts_per_s'] / bound:.0f}%" if bound else "-",
                 f"{r['p50_ms']:.0f}", f"{r['p99_ms']:.0f}", f"{r['cpu_s_per_1000']:.3f}",
                 f"{r['peak_rss_mib']:.1f}", r["peak_api_concurrency"], r["api_calls"],
                 r["connections"], r["lost"], r["doubled"])
        print(" | ".join(f"{str(c):>8}" for c in cells))
    print("\nbound (a): WORKER_CONCURRENCY / per-post API time = 256 / (2 x 100 ms) = 1280 posts/s;"
          " (c): accounts / per-post API time.", flush=True)


if __name__ == "__main__":
    main()
