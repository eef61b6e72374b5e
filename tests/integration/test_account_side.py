"""The account side under faults: replays that stop at shutdown, give up on a
post that always fails, and accounts that can never succeed are marked and
alerted instead of retried in silence. Black box against the real servers."""
import time

import pytest

from harness import consume_json, produce_many, wait_until
from posts import ALERT_SCHEMA, connect_account, published_texts, request, results_by_post


def results(kafka_bootstrap, topics, n, timeout=30):
    return consume_json(kafka_bootstrap, topics["results"], n, timeout)


def alerts(kafka_bootstrap, topics, timeout=4):
    out = [a for _, a in consume_json(kafka_bootstrap, topics["alerts"], 100, timeout)]
    for a in out:
        ALERT_SCHEMA.validate(a)
    return out


def account_events(kafka_bootstrap, topics, timeout=4):
    return [e for _, e in consume_json(kafka_bootstrap, topics["account_events"], 100, timeout)]


def park_posts(kafka_bootstrap, topics, run_cli, env, fake, workers, account, n):
    """Connects account, revokes its token and produces n posts: all parked.
    Returns (worker, user_id, requests)."""
    user, _ = connect_account(run_cli, env, fake, account)
    fake.revoke(user_id=user)
    reqs = [request(account, post_id=f"{account}-{i}", text=f"{account} {i}") for i in range(n)]
    produce_many(kafka_bootstrap, topics["requests"], [(account, r) for r in reqs])
    w = workers.start(env)
    parked = wait_until(lambda: len(got := results(kafka_bootstrap, topics, n, 2)) == n and got,
                        timeout=30)
    assert {r["status"] for _, r in parked} == {"parked"}
    return w, user, reqs


@pytest.mark.partitions(1)
def test_sigterm_during_a_replay_stops_between_posts(worker_env, workers, fake, run_cli, topics,
                                                     kafka_bootstrap, rds):
    env = worker_env(SHUTDOWN_TIMEOUT_S="20", TOKEN_SWEEP_INTERVAL_S="3600")
    w, user, reqs = park_posts(kafka_bootstrap, topics, run_cli, env, fake, workers, "acct-rp", 20)
    fake.settings(latency_ms=300)
    connect_account(run_cli, env, fake, "acct-rp", user_id=user)  # token put: replay starts
    wait_until(lambda: len(published_texts(fake, user)) >= 2, timeout=30)
    started = time.monotonic()
    assert w.stop() == 0
    took = time.monotonic() - started
    assert took < 6, f"shutdown waited {took:.1f}s for the replay"
    left = rds.llen("pw:{acct-rp}:parked")
    assert 0 < left < 20
    fake.settings(latency_ms=0)
    w2 = workers.start(worker_env(TOKEN_SWEEP_INTERVAL_S="1"))
    wait_until(lambda: len(published_texts(fake, user)) == 20, timeout=60)
    assert published_texts(fake, user) == [r["post"]["text"] for r in reqs]  # once, in order
    by_post = results_by_post(results(kafka_bootstrap, topics, 40))
    assert all([r["status"] for r in by_post[r_["post_id"]]] == ["parked", "published"]
               for r_ in reqs), by_post
    wait_until(lambda: rds.llen("pw:{acct-rp}:parked") == 0, timeout=10)  # popped once delivered
    assert w2.stop() == 0


@pytest.mark.partitions(1)
def test_a_parked_post_that_always_fails_is_answered_failed_in_the_end(worker_env, workers, fake,
                                                                       run_cli, topics,
                                                                       kafka_bootstrap, rds):
    env = worker_env(PUBLISH_MAX_ATTEMPTS="2", TOKEN_SWEEP_INTERVAL_S="1")
    w, user, reqs = park_posts(kafka_bootstrap, topics, run_cli, env, fake, workers, "acct-gu", 3)
    fake.fail("threads", 500, 1, count=1000, user_id=user)  # every try fails, transiently
    connect_account(run_cli, env, fake, "acct-gu", user_id=user)
    wait_until(lambda: len(results(kafka_bootstrap, topics, 6, 2)) == 6, timeout=60,
               message=lambda: f"parked posts never answered a second time:\n{w.tail()}")
    by_post = results_by_post(results(kafka_bootstrap, topics, 6))
    for r in reqs:
        statuses = [x["status"] for x in by_post[r["post_id"]]]
        assert statuses == ["parked", "failed"], statuses
        assert by_post[r["post_id"]][1]["error"]["class"] == "transient"
    # Later posts were not held behind the first. A post leaves the list once
    # Kafka acked its result, which may come after the test read it.
    wait_until(lambda: rds.llen("pw:{acct-gu}:parked") == 0, timeout=10,
               message="a post answered failed stayed parked")
    fake.clear_failures()
    assert w.stop() == 0


def test_a_token_the_key_ring_cannot_open_marks_the_account_and_alerts_once(
        worker_env, workers, fake, run_cli, topics, kafka_bootstrap, keyring, rds):
    old, new = keyring.new_key("k-old"), keyring.new_key("k-new")
    put_env = worker_env(keys=[old])
    connect_account(run_cli, put_env, fake, "acct-lost-key")
    reqs = [request("acct-lost-key", post_id=f"lk-{i}") for i in range(3)]
    produce_many(kafka_bootstrap, topics["requests"], [("acct-lost-key", r) for r in reqs])
    w = workers.start(worker_env(keys=[new], TOKEN_SWEEP_INTERVAL_S="1"))  # k-old is gone
    got = wait_until(lambda: len(r := results(kafka_bootstrap, topics, 3, 2)) == 3 and r,
                     timeout=30)
    assert {r["status"] for _, r in got} == {"parked"}
    assert rds.hget("pw:{acct-lost-key}:account", "status") == b"reconnect_required"
    time.sleep(3)  # a few sweeps: still one alert
    kinds = [a["kind"] for a in alerts(kafka_bootstrap, topics)]
    assert kinds.count("reconnect_required") == 1, kinds
    assert [e["type"] for e in account_events(kafka_bootstrap, topics)].count(
        "reconnect_required") == 1
    assert w.stop() == 0


def test_an_idle_account_whose_token_expired_is_marked_by_the_sweep(worker_env, workers, fake,
                                                                    run_cli, topics,
                                                                    kafka_bootstrap, rds):
    env = worker_env(TOKEN_SWEEP_INTERVAL_S="1")
    now = int(time.time())
    # A threads token that expired a day ago: it can never be refreshed.
    connect_account(run_cli, env, fake, "acct-idle", issued_at=now - 3 * 86400,
                    expires_in=2 * 86400, verify=False)
    w = workers.start(env)
    wait_until(lambda: rds.hget("pw:{acct-idle}:account", "status") == b"reconnect_required",
               timeout=20, message=lambda: f"idle expired account not marked:\n{w.tail()}")
    critical = [a for a in alerts(kafka_bootstrap, topics) if a["kind"] == "reconnect_required"]
    assert len(critical) == 1 and critical[0]["severity"] == "critical", critical
    assert rds.zscore("pw:token_expiry", "acct-idle") is None  # out of the sweep's way
    assert w.stop() == 0


@pytest.mark.partitions(1)
def test_a_full_parked_list_answers_failed_and_keeps_what_it_holds(worker_env, workers, fake,
                                                                   run_cli, topics,
                                                                   kafka_bootstrap, rds):
    env = worker_env(PARKED_MAX_PER_ACCOUNT="3")
    w, user, reqs = park_posts(kafka_bootstrap, topics, run_cli, env, fake, workers, "acct-cap", 3)
    extra = [request("acct-cap", post_id=f"cap-extra-{i}") for i in range(2)]
    produce_many(kafka_bootstrap, topics["requests"], [("acct-cap", r) for r in extra])
    got = wait_until(lambda: len(r := results(kafka_bootstrap, topics, 5, 2)) == 5 and r,
                     timeout=30)
    by_post = results_by_post(got)
    for r in extra:
        (answer,) = by_post[r["post_id"]]
        assert answer["status"] == "failed" and answer["error"]["class"] == "auth"
        assert "PARKED_MAX_PER_ACCOUNT" in answer["error"]["message"]
    assert rds.llen("pw:{acct-cap}:parked") == 3
    # A redelivered parked post is not parked twice (O(1) check, no LPOS).
    produce_many(kafka_bootstrap, topics["requests"], [("acct-cap", reqs[0])])
    wait_until(lambda: len(results(kafka_bootstrap, topics, 6, 2)) == 6, timeout=30)
    assert rds.llen("pw:{acct-cap}:parked") == 3
    assert w.stop() == 0


def test_a_mark_whose_alert_never_reached_kafka_is_alerted_by_the_sweep(worker_env, workers,
                                                                        fake, run_cli, topics,
                                                                        kafka_bootstrap, rds):
    env = worker_env(TOKEN_SWEEP_INTERVAL_S="1")
    connect_account(run_cli, env, fake, "acct-crashed")
    # What a worker leaves when it dies between marking an account and its
    # alert reaching Kafka: the mark, and the account still pending.
    rds.hset("pw:{acct-crashed}:account",
             mapping={"status": "reconnect_required", "reason": "revoked",
                      "at_ms": str(int(time.time() * 1000) - 120000)})
    rds.sadd("pw:alert_pending", "acct-crashed")
    w = workers.start(env)
    wait_until(lambda: not rds.sismember("pw:alert_pending", "acct-crashed"), timeout=20,
               message=lambda: f"pending alert never repaired:\n{w.tail()}")
    time.sleep(3)
    mine = [a for a in alerts(kafka_bootstrap, topics) if a["account_id"] == "acct-crashed"]
    assert [(a["kind"], a["severity"]) for a in mine] == [("reconnect_required", "critical")]
    assert w.stop() == 0


def test_a_mark_whose_alert_is_delivered_leaves_nothing_pending(worker_env, workers, fake,
                                                                run_cli, topics, kafka_bootstrap,
                                                                rds):
    env = worker_env(TOKEN_SWEEP_INTERVAL_S="1")
    w, user, reqs = park_posts(kafka_bootstrap, topics, run_cli, env, fake, workers, "acct-ok", 2)
    assert rds.hget("pw:{acct-ok}:account", "status") == b"reconnect_required"
    wait_until(lambda: not rds.sismember("pw:alert_pending", "acct-ok"), timeout=10)
    time.sleep(2)  # sweeps run: still one alert
    kinds = [a["kind"] for a in alerts(kafka_bootstrap, topics) if a["account_id"] == "acct-ok"]
    assert kinds.count("reconnect_required") == 1, kinds
    assert w.stop() == 0


@pytest.mark.partitions(1)
def test_a_replay_refreshes_an_expired_token_once_and_publishes(worker_env, workers, fake,
                                                                run_cli, topics, kafka_bootstrap,
                                                                rds):
    env = worker_env(TOKEN_SWEEP_INTERVAL_S="3600")
    user, _ = connect_account(run_cli, env, fake, "acct-rx", refresh_token="rt-one")
    fake.revoke(user_id=user)
    reqs = [request("acct-rx", post_id=f"rx-{i}", text=f"rx {i}") for i in range(2)]
    produce_many(kafka_bootstrap, topics["requests"], [("acct-rx", r) for r in reqs])
    w = workers.start(env)
    wait_until(lambda: len(results(kafka_bootstrap, topics, 2, 2)) == 2, timeout=30)
    # The operator reconnects with an access token that has already expired
    # at the platform (its refresh token is good): the replay must refresh once.
    now = int(time.time())
    fake.register_token("THAA-rx-stale", user, expires_at=now - 10, issued_at=now - 3600,
                        refresh_token="rt-two")
    put = run_cli(["token", "put", "--account", "acct-rx", "--user-id", user, "--expires-in",
                   "3600", "--issued-at", str(now - 60), "--refresh-method", "oauth2"],
                  env=env, input="THAA-rx-stale\nrt-two\n")
    assert put.returncode == 0, put.stderr
    wait_until(lambda: published_texts(fake, user) == ["rx 0", "rx 1"], timeout=30,
               message=lambda: f"replay did not refresh:\n{w.tail()}")
    assert rds.hget("pw:{acct-rx}:account", "status") == b"active"
    failures = [r for r in w.log_records() if r.get("msg") == "auth failure"]
    assert any(r.get("auth") == "expired" for r in failures), failures
    assert w.stop() == 0
