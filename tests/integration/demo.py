"""deploy/dev demo: the worker end to end on the local servers.

Connects two accounts with `publish-worker token put` (as an operator would),
produces a handful of posts of every media type, runs one worker, and prints
the results as they arrive. Along the way Threads reports one account's token
expired, which the worker heals by itself: one refresh, one retry."""
import json
import os
import pathlib
import secrets
import sys
import tempfile
import time
import uuid

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import harness  # noqa: E402

POSTS = [
    ("acct-bakery", "TEXT", {"text": "Fresh sourdough at 7am 🍞"}),
    ("acct-bakery", "IMAGE", {"text": "Today's rye", "image_url": "https://cdn.example/rye.jpg"}),
    ("acct-bakery", "CAROUSEL", {"text": "The morning bake", "children": [
        {"media_type": "IMAGE", "image_url": "https://cdn.example/1.jpg"},
        {"media_type": "VIDEO", "video_url": "https://cdn.example/2.mp4"}]}),
    ("acct-bakery", "TEXT", {"text": "Open till 6 today", "reply_control": "accounts_you_follow"}),
    ("acct-cafe", "TEXT", {"text": "New menu: https://cafe.example/menu",
                           "link_attachment": "https://cafe.example/menu"}),
    ("acct-cafe", "VIDEO", {"text": "How we pour", "video_url": "https://cdn.example/pour.mp4"}),
    ("acct-cafe", "IMAGE", {"image_url": "https://cdn.example/latte.jpg"}),
]


def env_or_exit(name):
    value = os.environ.get(name)
    if not value:
        sys.exit(f"demo: {name} is not set: run it through deploy/dev demo")
    return value


def main():
    redis_url = env_or_exit("PW_TEST_REDIS_URL")
    kafka = env_or_exit("PW_TEST_KAFKA_BOOTSTRAP")
    threads = env_or_exit("PW_TEST_THREADS_URL")
    fake = harness.FakeThreads(threads)
    fake.reset()
    prefix = f"demo-{secrets.token_hex(3)}"
    topics = {role: f"{prefix}-{name}" for role, name in {
        "requests": "publish.requests", "results": "publish.results",
        "alerts": "publish.alerts", "dlq": "publish.dlq",
        "account_events": "account.events"}.items()}
    harness.create_topics(kafka, list(topics.values()), 3)
    topics["group_id"] = f"{prefix}-group"

    with tempfile.TemporaryDirectory(prefix="pw-demo-") as tmp:
        tmp = pathlib.Path(tmp)
        keys = harness.write_keyring(tmp / "keys", [harness.new_key("demo-key")])
        env = harness.make_worker_env(topics, keys, redis_url, kafka, threads,
                                      LOG_LEVEL="info", WORKER_ID="demo-worker")
        now = int(time.time())
        print("\nConnecting two accounts with `publish-worker token put`:")
        users = {}
        for account in ("acct-bakery", "acct-cafe"):
            user, token = f"1789{len(users)}", f"THAA{uuid.uuid4().hex}"
            fake.register_token(token, user, issued_at=now - 3 * 86400,
                                expires_at=now + 57 * 86400)
            res = harness.run_cli(["token", "put", "--account", account, "--user-id", user,
                                   "--expires-in", str(60 * 86400), "--issued-at",
                                   str(now - 3 * 86400)], env=env, input=token + "\n")
            if res.returncode != 0:
                sys.exit(f"demo: token put failed: {res.stderr}")
            shown = json.loads(harness.run_cli(["token", "show", "--account", account],
                                               env=env).stdout)
            print(f"  {account:12} user {user}  token {shown['access_token']}  "
                  f"expires {shown['expires_at'][:10]}")
            users[account] = user
        # Threads will call the café's token expired once: watch it heal.
        fake.fail("threads", 401, 190, subcode=463, count=1, user_id=users["acct-cafe"],
                  message="Error validating access token: Session has expired")

        requests = []
        for i, (account, media, post) in enumerate(POSTS):
            requests.append({"schema": "publish.request.v1", "event_id": str(uuid.uuid4()),
                             "post_id": f"post-{i + 1}", "account_id": account,
                             "post": {"media_type": media, **post}})
        harness.produce_many(kafka, topics["requests"],
                             [(r["account_id"], r) for r in requests])
        print(f"\nProduced {len(requests)} publish.request.v1 events; starting one worker.\n")
        worker = harness.WorkerProcess(env, tmp / "worker.log").start()
        try:
            results = harness.consume_json(kafka, topics["results"], len(requests), timeout=90)
        finally:
            code = worker.stop(timeout=60)
        media = {r["post_id"]: r["post"]["media_type"] for r in requests}
        print(f"{'account':13} {'post':7} {'type':9} {'status':10} {'media id':18} "
              f"{'tries':5} {'refreshed':9} finished at")
        for _, r in results:
            print(f"{r['account_id']:13} {r['post_id']:7} {media[r['post_id']]:9} "
                  f"{r['status']:10} {r['media_id'] or '-':18} {r['attempts']:<5} "
                  f"{'yes' if r['token_refreshed'] else '-':9} {r['finished_at']}")
        stats = fake.stats()
        print(f"\nThreads saw {stats['publications_total']} publications, "
              f"{sum(stats['refreshes'].values())} token refresh, "
              f"{stats['double_publish_attempts']} double-publish attempts. "
              f"Worker exited {code}.")
        if len(results) != len(requests) or code != 0:
            sys.exit("demo: not every post was answered")


if __name__ == "__main__":
    main()
