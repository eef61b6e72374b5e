"""deploy/dev bench: throughput, latency, CPU and memory of one worker on the
local servers (started by deploy/dev), scenario by scenario:

  (a) 2,000 TEXT posts over 500 accounts, 100 ms fake latency per API call,
      WORKER_CONCURRENCY=256: bound = 256 in flight / 0.2 s per post
  (b) the same with 0 ms latency: what the worker itself costs
  (c) 2,000 posts over 5 accounts, 10 ms per call: bound by per-account order

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
import sys
import tempfile
import time
import uuid

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import harness  # noqa: E402
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


def run(name, spec, args, workdir):
    fake = harness.FakeThreads(args.threads)
    fake.reset()
    topics = make_topics(args.kafka, name)
    keys = harness.write_keyring(workdir / f"keys-{name}", [harness.new_key("bench")])
    env = harness.make_worker_env(topics, keys, args.redis, args.kafka, args.threads,
                                  WORKER_CONCURRENCY=spec["concurrency"], LOG_LEVEL="warn")
    nonce = secrets.token_hex(3)  # fresh accounts and post ids: no records from earlier runs
    accounts = [f"bench-{name}-{nonce}-{i}" for i in range(spec["accounts"])]
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
    worker.stop(timeout=60)

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
        "scenario": name, "posts": spec["posts"], "accounts": spec["accounts"],
        "latency_ms": spec["latency_ms"], "results": len(results),
        "posts_per_s": len(results) / span if span else float("nan"),
        "p50_ms": pct(0.50), "p99_ms": pct(0.99),
        "cpu_s_per_1000": (cpu1 - cpu0) / max(1, len(results)) * 1000,
        "peak_rss_mib": rss / 2**20, "lost": lost, "doubled": doubled, "bound": bound,
        "peak_api_concurrency": stats["peak_concurrent_requests"],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", default=list(SCENARIOS))
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    args.redis = env_or_exit("PW_TEST_REDIS_URL")
    args.kafka = env_or_exit("PW_TEST_KAFKA_BOOTSTRAP")
    args.threads = env_or_exit("PW_TEST_THREADS_URL")
    rows = []
    with tempfile.TemporaryDirectory(prefix="pw-bench-") as tmp:
        for name in args.scenarios:
            print(f"bench: scenario ({name}) {SCENARIOS[name]} ...", flush=True)
            rows.append(run(name, SCENARIOS[name], args, pathlib.Path(tmp)))
    head = ("scen", "posts", "accts", "lat ms", "posts/s", "bound/s", "% bound", "p50 ms",
            "p99 ms", "CPU s/1k", "RSS MiB", "api peak", "lost", "doubled")
    print("\n" + " | ".join(f"{h:>8}" for h in head))
    for r in rows:
        bound = r["bound"]
        cells = (r["scenario"], r["posts"], r["accounts"], r["latency_ms"],
                 f"{r['posts_per_s']:.0f}", f"{bound:.0f}" if bound else "-",
                 f"{100 * r['posts_per_s'] / bound:.0f}%" if bound else "-",
                 f"{r['p50_ms']:.0f}", f"{r['p99_ms']:.0f}", f"{r['cpu_s_per_1000']:.3f}",
                 f"{r['peak_rss_mib']:.1f}", r["peak_api_concurrency"], r["lost"], r["doubled"])
        print(" | ".join(f"{str(c):>8}" for c in cells))
    print("\nbound (a): WORKER_CONCURRENCY / per-post API time = 256 / (2 x 100 ms) = 1280 posts/s;"
          " (c): accounts / per-post API time.")
    failed = [r for r in rows if r["lost"] or r["doubled"] or r["results"] < r["posts"]]
    if failed:
        sys.exit(f"bench: posts lost or doubled in {[r['scenario'] for r in failed]}")


if __name__ == "__main__":
    main()
