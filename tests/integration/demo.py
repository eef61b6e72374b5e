"""deploy/dev demo: the worker end to end on the local servers, and the
stories an operator meets.

1. Two accounts are connected with `publish-worker token put` (verified
   against the API first); posts of every media type go out, and one
   expired token heals by itself: one refresh, one retry.
2. A third account's token is revoked: its posts park in order with one
   `reconnect_required` alert; a `token put` with a new token brings them
   out, in order.
3. A fourth account's token nears its expiry: the worker refreshes it in the
   background, ahead of time, with no post involved.
4. `token put` refuses a token that belongs to another user.
Finally `token list` shows every account."""
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


def put(env, account, user, token, issued_at, expires_in):
    return harness.run_cli(["token", "put", "--account", account, "--user-id", user,
                            "--expires-in", str(expires_in), "--issued-at", str(issued_at)],
                           env=env, input=token + "\n")


def connect(fake, env, account, user, issued_days_ago=3, lifetime_days=60):
    """Registers a token with the fake API and stores it as an operator would."""
    now = int(time.time())
    issued = now - issued_days_ago * 86400
    token = f"THAA{uuid.uuid4().hex}"
    fake.register_token(token, user, issued_at=issued, expires_at=issued + lifetime_days * 86400)
    res = put(env, account, user, token, issued, lifetime_days * 86400)
    if res.returncode != 0:
        sys.exit(f"demo: token put failed: {res.stderr}")
    return token


def show(env, account):
    return json.loads(harness.run_cli(["token", "show", "--account", account], env=env).stdout)


def print_results(results, media):
    print(f"{'account':14} {'post':8} {'type':9} {'status':10} {'media id':18} "
          f"{'tries':5} {'refreshed':9} error")
    for r in results:
        error = f"{r['error']['class']}: {r['error']['message'][:48]}" if r["error"] else ""
        print(f"{r['account_id']:14} {r['post_id']:8} {media.get(r['post_id'], '?'):9} "
              f"{r['status']:10} {r['media_id'] or '-':18} {r['attempts']:<5} "
              f"{'yes' if r['token_refreshed'] else '-':9} {error}")


def make_request(i, account, media, post):
    return {"schema": "publish.request.v1", "event_id": str(uuid.uuid4()),
            "post_id": f"post-{i}", "account_id": account,
            "post": {"media_type": media, **post}}


def story_revoked(fake, env, kafka, topics, users, seen):
    """A revoked token: posts park, one alert; token put brings them out."""
    print("\n-- A revoked token --------------------------------------------------")
    print("The florist changed their password: Threads revokes the token.")
    fake.revoke(user_id=users["acct-florist"], subcode=460)
    reqs = [make_request(20 + i, "acct-florist", "TEXT", {"text": text})
            for i, text in enumerate(["Tulips are in 🌷", "Closed Sunday", "Wedding orders open"])]
    harness.produce_many(kafka, topics["requests"], [(r["account_id"], r) for r in reqs])
    results = [r for _, r in harness.consume_json(kafka, topics["results"], seen + 3, 60)][seen:]
    print_results(results, {r["post_id"]: "TEXT" for r in reqs})
    alerts = [a for _, a in harness.consume_json(kafka, topics["alerts"], 20, 3)]
    for a in alerts:
        print(f"  ALERT {a['kind']} ({a['severity']}) for {a['account_id']}: "
              f"code {a['code']}/{a['subcode']} at {a['endpoint']}: {a['message']}")
    print("The owner logs in again; the operator stores the new token:")
    print("  $ publish-worker token put --account acct-florist --user-id "
          f"{users['acct-florist']} --expires-in 5184000 < token.txt")
    connect(fake, env, "acct-florist", users["acct-florist"], issued_days_ago=0)
    results = [r for _, r in harness.consume_json(kafka, topics["results"], seen + 6, 60)]
    print_results(results[seen + 3:], {r["post_id"]: "TEXT" for r in reqs})
    return seen + 6, len(alerts)


def story_refresh_ahead(fake, env, users, before):
    print("\n-- A token refreshed ahead of its expiry ----------------------------")
    print(f"acct-deli's token expires {before['expires_at'][:10]} (in under 7 days); "
          "no post needs it, the sweep refreshes it:")
    deadline = time.time() + 30
    after = show(env, "acct-deli")
    while after["access_token"] == before["access_token"] and time.time() < deadline:
        time.sleep(0.5)
        after = show(env, "acct-deli")
    print(f"  before: token {before['access_token']} expires {before['expires_at']}")
    print(f"  after:  token {after['access_token']} expires {after['expires_at']}")
    return after["access_token"] != before["access_token"]


def story_wrong_user(fake, env):
    print("\n-- A token of the wrong user ----------------------------------------")
    fake.register_token("THAAstaging0123456789", "55501")
    print("  $ publish-worker token put --account acct-cafe --user-id 17891 "
          "--expires-in 5184000 < staging-token.txt")
    res = put(env, "acct-cafe", "17891", "THAAstaging0123456789", int(time.time()), 5184000)
    print("  " + res.stderr.strip().replace("\n", "\n  ") + f"\n  (exit {res.returncode})")
    return res.returncode == 2


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
                                      LOG_LEVEL="info", WORKER_ID="demo-worker",
                                      TOKEN_SWEEP_INTERVAL_S="2")
        print("Connecting four accounts with `publish-worker token put` "
              "(each token verified against the API first):")
        users = {a: f"1789{i}" for i, a in enumerate(
            ("acct-bakery", "acct-cafe", "acct-florist", "acct-deli"))}
        for account, user in users.items():
            # The deli's token was issued 55 days ago: 5 days left.
            connect(fake, env, account, user, issued_days_ago=55 if account == "acct-deli" else 3)
            shown = show(env, account)
            print(f"  {account:13} user {user}  token {shown['access_token']}  "
                  f"expires {shown['expires_at'][:10]}")
        deli_before = show(env, "acct-deli")
        # Threads will call the café's token expired once: watch it heal.
        fake.fail("threads", 401, 190, subcode=463, count=1, user_id=users["acct-cafe"],
                  message="Error validating access token: Session has expired")

        requests = [make_request(i + 1, account, media, post)
                    for i, (account, media, post) in enumerate(POSTS)]
        harness.produce_many(kafka, topics["requests"],
                             [(r["account_id"], r) for r in requests])
        print(f"\nProduced {len(requests)} publish.request.v1 events; starting one worker.\n")
        worker = harness.WorkerProcess(env, tmp / "worker.log").start()
        try:
            results = [r for _, r in harness.consume_json(kafka, topics["results"],
                                                          len(requests), timeout=90)]
            print_results(results, {r["post_id"]: r["post"]["media_type"] for r in requests})
            seen, alerts = story_revoked(fake, env, kafka, topics, users, len(results))
            refreshed = story_refresh_ahead(fake, env, users, deli_before)
            refused = story_wrong_user(fake, env)
            print("\n-- Every account: publish-worker token list ---------------------------")
            listing = harness.run_cli(["token", "list"], env=env)
            print(listing.stdout if listing.returncode == 0 else listing.stderr)
        finally:
            code = worker.stop(timeout=60)
        stats = fake.stats()
        print(f"Threads saw {stats['publications_total']} publications, "
              f"{sum(stats['refreshes'].values())} token refreshes, "
              f"{stats['double_publish_attempts']} double-publish attempts. "
              f"Worker exited {code}.")
        if len(results) != len(requests) or seen != len(requests) + 6 or alerts != 1 \
                or not refreshed or not refused or code != 0:
            sys.exit("demo: a story did not end as it should")


if __name__ == "__main__":
    main()
