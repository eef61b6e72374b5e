"""The publishing quota, as a black box: a post that would exceed the
profile's quota is not sent; it waits, kept and in order, answered `parked`
with class rate_limited, with one rate_limited alert per hold, and is
published (a second result) once the window frees. The fake Threads API
counts publications in its own window and refuses past its quota_total."""
import time

from harness import produce_many, wait_until
from posts import alerts_of, connect_account, published_texts, request, results_of




def by_post(results):
    out = {}
    for r in results:
        out.setdefault(r["post_id"], []).append(r["status"])
    return out


def test_posts_past_the_quota_wait_in_order_and_go_out_when_the_window_frees(
        worker_env, workers, fake, run_cli, topics, kafka_bootstrap, rds):
    """Quota 3 in a 6-second window (the fake's, read by token put): of five
    posts three go out, two wait (parked, rate_limited) and go out in order
    when the oldest publication leaves the window."""
    fake.settings(quota_total=3, quota_duration=6)
    env = worker_env(TOKEN_SWEEP_INTERVAL_S="1")
    user, _ = connect_account(run_cli, env, fake, "acct-q")
    reqs = [request("acct-q", post_id=f"q-{i}", text=f"q {i}") for i in range(5)]
    w = workers.start(env)
    produce_many(kafka_bootstrap, topics["requests"], [("acct-q", r) for r in reqs])
    first = results_of(kafka_bootstrap, topics, 5, timeout=30)
    assert [r["status"] for r in first] == ["published"] * 3 + ["parked"] * 2
    for r in first[3:]:
        assert r["error"]["class"] == "rate_limited"
        assert "quota" in r["error"]["message"]
    assert fake.stats()["quota_rejections_total"] == 0  # the worker kept it, not the API
    rest = results_of(kafka_bootstrap, topics, 7, timeout=30)[5:]
    assert [(r["post_id"], r["status"]) for r in rest] == [("q-3", "published"),
                                                          ("q-4", "published")]
    assert published_texts(fake, user) == [f"q {i}" for i in range(5)]
    alerts = [a for a in alerts_of(kafka_bootstrap, topics) if a["kind"] == "rate_limited"]
    assert len(alerts) == 1 and alerts[0]["account_id"] == "acct-q"
    assert "quota" in alerts[0]["message"]
    assert "publish_worker_quota_waits_total 2" in w.metrics(), [
        line for line in w.metrics().splitlines() if "quota" in line]
    assert rds.exists("pw:{acct-q}:quota_hold") == 0
    assert w.stop() == 0


def test_a_later_post_waits_behind_the_held_ones(worker_env, workers, fake, run_cli, topics,
                                                 kafka_bootstrap, rds):
    """While the account waits for its quota, a new post parks behind the
    waiting ones (never overtakes them) without calling the API."""
    fake.settings(quota_total=1, quota_duration=5)
    env = worker_env(TOKEN_SWEEP_INTERVAL_S="1")
    user, _ = connect_account(run_cli, env, fake, "acct-o")
    w = workers.start(env)
    produce_many(kafka_bootstrap, topics["requests"],
                 [("acct-o", request("acct-o", post_id=f"o-{i}", text=f"o {i}"))
                  for i in range(2)])
    results_of(kafka_bootstrap, topics, 2, timeout=30)
    creates = fake.stats()["requests_by_endpoint"]["threads"]
    produce_many(kafka_bootstrap, topics["requests"],
                 [("acct-o", request("acct-o", post_id="o-2", text="o 2"))])
    third = results_of(kafka_bootstrap, topics, 3, timeout=30)[2]
    assert third["status"] == "parked" and third["error"]["class"] == "rate_limited"
    assert fake.stats()["requests_by_endpoint"]["threads"] == creates
    # One post per 5 s window: o 1 then o 2, in order.
    wait_until(lambda: published_texts(fake, user) == ["o 0", "o 1", "o 2"], timeout=30,
               message=lambda: f"{published_texts(fake, user)}\n{w.tail()}")
    assert w.stop() == 0


def test_other_tools_posts_count_through_the_apis_reading(worker_env, workers, fake, run_cli,
                                                          topics, kafka_bootstrap, rds):
    """The profile's quota is used up by another tool (the API's count says
    250 of 250): the post waits without being sent; once the API's window
    frees (the fake's clock moves a day) it goes out."""
    env = worker_env(TOKEN_SWEEP_INTERVAL_S="1", PUBLISH_QUOTA_RECHECK_S="2")
    user, _ = connect_account(run_cli, env, fake, "acct-x")
    fake.set_quota_usage(user, 250)
    rds.hset("pw:{acct-x}:quota", mapping={"usage": 250, "total": 250, "duration_s": 86400,
                                          "at_ms": int(time.time() * 1000)})
    w = workers.start(env)
    produce_many(kafka_bootstrap, topics["requests"],
                 [("acct-x", request("acct-x", post_id="x-0", text="x 0"))])
    first = results_of(kafka_bootstrap, topics, 1, timeout=30)[0]
    assert first["status"] == "parked" and first["error"]["class"] == "rate_limited"
    time.sleep(3)  # the hold ran out once: the API was asked again, still full
    assert published_texts(fake, user) == []
    assert fake.stats()["requests_by_endpoint"]["publishing_limit"] >= 2
    fake.advance_clock(86400 + 60)
    second = results_of(kafka_bootstrap, topics, 2, timeout=30)[1]
    assert second["status"] == "published" and second["post_id"] == "x-0"
    assert published_texts(fake, user) == ["x 0"]
    alerts = [a for a in alerts_of(kafka_bootstrap, topics) if a["kind"] == "rate_limited"]
    assert len(alerts) == 1
    assert fake.stats()["quota_rejections_total"] == 0
    assert w.stop() == 0


def test_the_apis_quota_error_holds_the_account(worker_env, workers, fake, run_cli, topics,
                                                kafka_bootstrap, rds):
    """The worker had no reading (token stored unchecked) and another tool
    used the quota up: threads_publish answers 9/2207042. The post is parked
    (rate_limited, Meta's code and subcode), not retried, not failed, and
    published from its container once the window frees."""
    env = worker_env(TOKEN_SWEEP_INTERVAL_S="1", PUBLISH_QUOTA_RECHECK_S="2",
                     TOKEN_VERIFY_INTERVAL_S="0")
    user, _ = connect_account(run_cli, env, fake, "acct-e", verify=False)
    fake.set_quota_usage(user, 250)
    w = workers.start(env)
    produce_many(kafka_bootstrap, topics["requests"],
                 [("acct-e", request("acct-e", post_id="e-0", text="e 0"))])
    first = results_of(kafka_bootstrap, topics, 1, timeout=30)[0]
    assert first["status"] == "parked"
    assert first["error"]["class"] == "rate_limited"
    assert (first["error"]["code"], first["error"]["subcode"]) == (9, 2207042)
    assert first["attempts"] == 1
    assert fake.stats()["quota_rejections_total"] == 1
    fake.advance_clock(86400 + 60)
    second = results_of(kafka_bootstrap, topics, 2, timeout=30)[1]
    assert second["status"] == "published"
    assert published_texts(fake, user) == ["e 0"]
    # Its container expired during the day's wait: a new one was made.
    assert fake.stats()["containers_created"] == 2
    assert fake.stats()["double_publish_attempts"] == 0
    assert w.stop() == 0


def test_a_waiting_post_survives_a_restart(worker_env, workers, fake, run_cli, topics,
                                           kafka_bootstrap, rds):
    """A parked post's offset is committed: it lives in Redis, not in the
    consumer's position. A new worker publishes it once the window frees,
    and the request is not consumed again."""
    fake.settings(quota_total=1, quota_duration=4)
    env = worker_env(TOKEN_SWEEP_INTERVAL_S="1")
    user, _ = connect_account(run_cli, env, fake, "acct-r")
    w = workers.start(env)
    produce_many(kafka_bootstrap, topics["requests"],
                 [("acct-r", request("acct-r", post_id=f"r-{i}", text=f"r {i}"))
                  for i in range(2)])
    assert [r["status"] for r in results_of(kafka_bootstrap, topics, 2)] == ["published",
                                                                             "parked"]
    assert w.stop() == 0
    w2 = workers.start(env)
    wait_until(lambda: published_texts(fake, user) == ["r 0", "r 1"], timeout=30,
               message=lambda: w2.tail())
    results = results_of(kafka_bootstrap, topics, 3, timeout=20)
    assert by_post(results) == {"r-0": ["published"], "r-1": ["parked", "published"]}
    assert w2.stop() == 0
