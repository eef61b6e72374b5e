"""Tokens that heal themselves, as a black box: single-flight refresh across
a fleet, refresh-once-retry-once, park and alert, proactive refresh. The fake
Threads API's counters are the evidence."""
import json
import time
import uuid

import pytest

from harness import consume, consume_json, produce_many, wait_until
from posts import (ACCOUNT_EVENT_SCHEMA, alerts_of, connect_account, published_texts, request,
                   results_of)


def assert_no_secret_anywhere(fake, workers_, kafka_bootstrap, topics, rds):
    """No token value, old or new, access or refresh, in logs, events,
    /metrics or Redis."""
    secrets_ = [t for t in fake.issued_tokens() if len(t) >= 8]
    assert secrets_
    texts = [w.logs() + w.stderr() for w in workers_]
    for role in ("results", "alerts", "dlq", "account_events"):
        texts += [m.value.decode(errors="replace") + json.dumps(m.headers)
                  for m in consume(kafka_bootstrap, topics[role], 10000, timeout=3)]
    redis_dump = []
    for key in rds.scan_iter(count=1000):
        kind = rds.type(key)
        if kind == b"hash":
            redis_dump += [v.decode(errors="replace") for v in rds.hgetall(key).values()]
        elif kind == b"list":
            redis_dump += [v.decode(errors="replace") for v in rds.lrange(key, 0, -1)]
        elif kind == b"string":
            redis_dump.append((rds.get(key) or b"").decode(errors="replace"))
    texts += redis_dump
    blob = "\n".join(texts)
    for s in secrets_:
        assert s not in blob, "a token leaked"


@pytest.mark.partitions(8)
@pytest.mark.parametrize("method", ["threads", "oauth2"])
def test_a_fleet_refreshes_each_expiring_account_once(method, worker_env, workers, fake,
                                                      run_cli, topics, kafka_bootstrap, rds):
    env = worker_env(TOKEN_SWEEP_INTERVAL_S="1")
    now = int(time.time())
    users = {}
    for i in range(40):
        account = f"acct-f{i}"
        if method == "threads":
            # 2 days old, 2 minutes left: due, and refreshable.
            users[account] = connect_account(run_cli, env, fake, account, issued_at=now - 2 * 86400,
                                             expires_in=2 * 86400 + 120)[0]
        else:
            users[account] = connect_account(run_cli, env, fake, account, issued_at=now - 3500,
                                             expires_in=3600,
                                             refresh_token=f"rt-{uuid.uuid4().hex}")[0]
    fake.settings(invalidate_on_refresh=True, oauth_rotate=True)
    reqs = [request(a, post_id=f"{a}-{i}") for i in range(10) for a in users]
    fleet = [workers.start(worker_env(TOKEN_SWEEP_INTERVAL_S="1")) for _ in range(4)]
    produce_many(kafka_bootstrap, topics["requests"], [(r["account_id"], r) for r in reqs])
    results = results_of(kafka_bootstrap, topics, len(reqs), timeout=120)
    assert {r["status"] for r in results} == {"published"}, \
        [r for r in results if r["status"] != "published"][:3]
    time.sleep(3)  # let every sweep have a go at the fresh tokens too
    stats = fake.stats()
    assert stats["refreshes"] == {u: 1 for u in users.values()}
    assert sum(stats["failed_refreshes"].values()) == 0
    for account, user in users.items():
        expected = [r["post"]["text"] for r in reqs if r["account_id"] == account]
        assert published_texts(fake, user) == expected
    assert stats["double_publish_attempts"] == 0
    for w in fleet:
        assert w.stop() == 0
    assert_no_secret_anywhere(fake, fleet, kafka_bootstrap, topics, rds)


@pytest.mark.parametrize("status", [401, 400])
def test_expired_by_the_api_is_refreshed_once_and_retried_once(status, worker_env, workers, fake,
                                                               run_cli, topics, kafka_bootstrap):
    env = worker_env()
    user, _ = connect_account(run_cli, env, fake, "acct-exp")
    fake.fail("threads", status, 190, subcode=463, count=1, user_id=user,
              message="Error validating access token: Session has expired")
    produce_many(kafka_bootstrap, topics["requests"], [("acct-exp", request("acct-exp"))])
    w = workers.start(env)
    result, = results_of(kafka_bootstrap, topics, 1)
    assert result["status"] == "published"
    assert result["token_refreshed"] is True
    assert result["attempts"] == 2
    assert fake.stats()["refreshes"] == {user: 1}
    failures = [r for r in w.log_records() if r["msg"] == "auth failure"]
    assert len(failures) == 1
    f = failures[0]
    assert f["account_id"] == "acct-exp" and f["http_status"] == status
    assert f["code"] == 190 and f["subcode"] == 463 and f["fbtrace_id"]
    assert f["endpoint"] == "POST /v1.0/{user-id}/threads" and f["ts"]
    assert w.stop() == 0


def test_expired_again_after_the_refresh_parks(worker_env, workers, fake, run_cli, topics,
                                               kafka_bootstrap):
    env = worker_env()
    user, _ = connect_account(run_cli, env, fake, "acct-exp2")
    fake.fail("threads", 401, 190, subcode=463, count=5, user_id=user)
    produce_many(kafka_bootstrap, topics["requests"], [("acct-exp2", request("acct-exp2"))])
    w = workers.start(env)
    result, = results_of(kafka_bootstrap, topics, 1)
    assert result["status"] == "parked"
    assert result["error"]["class"] == "auth" and result["error"]["subcode"] == 463
    assert fake.stats()["refreshes"] == {user: 1}  # refreshed once, not again
    assert w.stop() == 0


def test_revoked_token_parks_alerts_once_and_replays_in_order(worker_env, workers, fake, run_cli,
                                                               topics, kafka_bootstrap, rds):
    env = worker_env()
    user, _ = connect_account(run_cli, env, fake, "acct-rev")
    fake.revoke(user_id=user, subcode=460)
    reqs = [request("acct-rev", post_id=f"rev-{i}") for i in range(6)]
    produce_many(kafka_bootstrap, topics["requests"], [("acct-rev", r) for r in reqs])
    w = workers.start(env)
    results = results_of(kafka_bootstrap, topics, 6)
    assert [r["status"] for r in results] == ["parked"] * 6
    assert results[0]["error"]["code"] == 190 and results[0]["error"]["subcode"] == 460
    alerts = alerts_of(kafka_bootstrap, topics)
    assert [a["kind"] for a in alerts] == ["reconnect_required"]
    assert alerts[0]["severity"] == "critical" and alerts[0]["subcode"] == 460
    events = [e for _, e in consume_json(kafka_bootstrap, topics["account_events"], 10, 3)]
    for e in events:
        ACCOUNT_EVENT_SCHEMA.validate(e)
    assert [e["type"] for e in events if e["account_id"] == "acct-rev"].count(
        "reconnect_required") == 1
    stats = fake.stats()
    assert stats["refreshes"].get(user, 0) == 0 and sum(stats["failed_refreshes"].values()) <= 1
    assert stats["requests_by_endpoint"].get("threads", 0) == 1  # later posts never called
    # Parked posts survive a restart.
    assert w.stop() == 0
    assert rds.llen("pw:{acct-rev}:parked") == 6
    w2 = workers.start(worker_env())
    w2.wait_ready()
    connect_account(run_cli, env, fake, "acct-rev", user_id=user)  # the operator reconnects
    results = results_of(kafka_bootstrap, topics, 12, timeout=60)
    second = results[6:]
    assert [r["status"] for r in second] == ["published"] * 6
    assert [r["post_id"] for r in second] == [r["post_id"] for r in reqs]
    assert published_texts(fake, user) == [r["post"]["text"] for r in reqs]
    # A replayed post leaves the list once the worker has Kafka's ack of its
    # result, which may come after this test's consumer already read it.
    wait_until(lambda: rds.llen("pw:{acct-rev}:parked") == 0, timeout=10)
    # A new post goes straight out now.
    produce_many(kafka_bootstrap, topics["requests"], [("acct-rev", request("acct-rev"))])
    assert results_of(kafka_bootstrap, topics, 13)[-1]["status"] == "published"
    assert w2.stop() == 0


def test_missing_scope_parks_with_one_permission_denied(worker_env, workers, fake, run_cli, topics,
                                                        kafka_bootstrap):
    # The post finds the missing scope (the verification sweep would find it
    # first: test_verification.py).
    env = worker_env(TOKEN_VERIFY_INTERVAL_S="0")
    # Stored unchecked, as before verification existed (token put refuses it).
    user, _ = connect_account(run_cli, env, fake, "acct-scope", scopes=["threads_basic"],
                              verify=False)
    produce_many(kafka_bootstrap, topics["requests"],
                 [("acct-scope", request("acct-scope")) for _ in range(3)])
    w = workers.start(env)
    results = results_of(kafka_bootstrap, topics, 3)
    assert [r["status"] for r in results] == ["parked"] * 3
    assert results[0]["error"]["class"] == "permission"
    assert results[0]["error"]["http_status"] == 403 and results[0]["error"]["code"] == 10
    assert [a["kind"] for a in alerts_of(kafka_bootstrap, topics)] == ["permission_denied"]
    assert w.stop() == 0


def test_repeated_auth_failures_across_two_workers_raise_one_alert(worker_env, workers, fake,
                                                                   run_cli, topics,
                                                                   kafka_bootstrap):
    env = worker_env(AUTH_ALERT_THRESHOLD="3")
    # oauth2: a token refreshed a moment ago may be refreshed again (a threads
    # token could not: it must be 24 hours old).
    user, _ = connect_account(run_cli, env, fake, "acct-rep", issued_at=int(time.time()),
                              expires_in=3600, refresh_token=f"rt-{uuid.uuid4().hex}")
    reqs = [request("acct-rep", post_id=f"rep-{i}") for i in range(4)]

    def one_failing_post(i):
        """Threads says "expired" once: refresh, retry, published."""
        fake.fail("threads", 401, 190, subcode=463, count=1, user_id=user)
        produce_many(kafka_bootstrap, topics["requests"], [("acct-rep", reqs[i])])
        assert results_of(kafka_bootstrap, topics, i + 1)[i]["status"] == "published"

    w1 = workers.start(worker_env(AUTH_ALERT_THRESHOLD="3"))
    one_failing_post(0)
    one_failing_post(1)
    assert w1.stop() == 0
    w2 = workers.start(worker_env(AUTH_ALERT_THRESHOLD="3"))
    one_failing_post(2)
    one_failing_post(3)
    repeated = [a for a in alerts_of(kafka_bootstrap, topics) if a["kind"] ==
                "repeated_auth_failure"]
    assert len(repeated) == 1
    assert repeated[0]["count"] == 3 and repeated[0]["window_s"] == 900
    assert repeated[0]["severity"] == "warning" and repeated[0]["code"] == 190
    assert w2.stop() == 0


def test_sweep_refreshes_an_idle_account(worker_env, workers, fake, run_cli, topics,
                                         kafka_bootstrap):
    env = worker_env(TOKEN_SWEEP_INTERVAL_S="1")
    now = int(time.time())
    user, _ = connect_account(run_cli, env, fake, "acct-idle", issued_at=now - 50 * 86400,
                              expires_in=51 * 86400)  # one day left of sixty
    before = json.loads(run_cli(["token", "show", "--account", "acct-idle"], env=env).stdout)
    w = workers.start(env)
    wait_until(lambda: fake.stats()["refreshes"].get(user) == 1, timeout=20)
    after = json.loads(run_cli(["token", "show", "--account", "acct-idle"], env=env).stdout)
    assert after["access_token"] != before["access_token"]
    assert after["expires_in_s"] > 50 * 86400
    time.sleep(3)
    assert fake.stats()["refreshes"] == {user: 1}
    assert w.stop() == 0


def test_young_token_is_not_refreshed_and_raises_one_token_expiring(worker_env, workers, fake,
                                                                    run_cli, topics,
                                                                    kafka_bootstrap):
    env = worker_env(TOKEN_SWEEP_INTERVAL_S="1")
    now = int(time.time())
    user, _ = connect_account(run_cli, env, fake, "acct-young", issued_at=now - 3600,
                              expires_in=3 * 3600)  # 1 h old, 2 h left
    w = workers.start(env)
    time.sleep(6)
    assert fake.stats()["refreshes"].get(user, 0) == 0
    assert fake.stats()["requests_by_endpoint"].get("refresh", 0) == 0
    alerts = alerts_of(kafka_bootstrap, topics)
    assert [a["kind"] for a in alerts] == ["token_expiring"]
    assert alerts[0]["account_id"] == "acct-young"
    assert w.stop() == 0


def test_lock_holder_killed_mid_refresh_another_worker_refreshes(worker_env, workers, fake,
                                                                 run_cli, topics,
                                                                 kafka_bootstrap, rds):
    env = worker_env(TOKEN_SWEEP_INTERVAL_S="1")
    now = int(time.time())
    user, _ = connect_account(run_cli, env, fake, "acct-lock", issued_at=now - 50 * 86400,
                              expires_in=51 * 86400)
    # The old token stays valid after a refresh (Meta's behaviour), so a lost
    # refresh response costs nothing but time.
    fake.settings(invalidate_on_refresh=False, latency_ms_by_endpoint={"refresh": 6000})
    holder = workers.start(worker_env(TOKEN_SWEEP_INTERVAL_S="1"))
    wait_until(lambda: rds.exists("pw:{acct-lock}:refresh_lock"), timeout=20)
    holder.kill()
    fake.settings(latency_ms_by_endpoint={"refresh": 0})
    other = workers.start(worker_env(TOKEN_SWEEP_INTERVAL_S="1"))
    wait_until(lambda: not rds.exists("pw:{acct-lock}:refresh_lock") and
               json.loads(run_cli(["token", "show", "--account", "acct-lock"],
                                  env=env).stdout)["expires_in_s"] > 50 * 86400, timeout=60)
    assert fake.stats()["refreshes"][user] == 2  # the dead holder's, then the other's
    assert other.stop() == 0


def test_token_put_racing_an_auth_failure_leaves_the_account_active(worker_env, workers, fake,
                                                                   run_cli, topics,
                                                                   kafka_bootstrap, rds):
    """A revoked token fails while the operator already stored a new one: the
    failure must not mark the freshly reconnected account; the post parks and
    goes out with the new token."""
    env = worker_env(TOKEN_SWEEP_INTERVAL_S="1")
    user, old = connect_account(run_cli, env, fake, "acct-race")
    fake.revoke(access_token=old, subcode=460)
    # The post's call with the old token is slow to fail (the token put's
    # verification calls are not).
    fake.settings(latency_ms_by_endpoint={"threads": 1500})
    w = workers.start(env)
    w.wait_ready()
    req = request("acct-race", post_id="race-1")
    produce_many(kafka_bootstrap, topics["requests"], [("acct-race", req)])
    wait_until(lambda: fake.stats()["concurrent_requests"] >= 1, timeout=20,
               message="the post's first API call")
    connect_account(run_cli, env, fake, "acct-race", user_id=user)  # meanwhile: reconnected
    fake.settings(latency_ms_by_endpoint={})
    results = results_of(kafka_bootstrap, topics, 2, timeout=30)
    assert [r["status"] for r in results] == ["parked", "published"]
    assert published_texts(fake, user) == [req["post"]["text"]]
    assert rds.hget("pw:{acct-race}:account", "status") == b"active"
    assert "reconnect_required" not in [a["kind"] for a in alerts_of(kafka_bootstrap, topics)]
    events = [e for _, e in consume_json(kafka_bootstrap, topics["account_events"], 10, 3)]
    assert [e["type"] for e in events] == ["token_updated", "token_updated"]
    assert w.stop() == 0


def test_a_redelivered_parked_post_is_parked_and_published_once(worker_env, workers, fake, run_cli,
                                                               topics, kafka_bootstrap, rds):
    """The same message twice for a parked account: two `parked` results (one
    per message), one entry in the parked list, one `published` on reconnect
    and no `duplicate`."""
    env = worker_env()
    user, _ = connect_account(run_cli, env, fake, "acct-twice")
    fake.revoke(user_id=user, subcode=460)
    req = request("acct-twice", post_id="twice-1")
    produce_many(kafka_bootstrap, topics["requests"], [("acct-twice", req), ("acct-twice", req)])
    w = workers.start(env)
    assert [r["status"] for r in results_of(kafka_bootstrap, topics, 2)] == ["parked"] * 2
    assert rds.llen("pw:{acct-twice}:parked") == 1
    connect_account(run_cli, env, fake, "acct-twice", user_id=user)
    wait_until(lambda: rds.llen("pw:{acct-twice}:parked") == 0, timeout=30,
               message="the parked post replayed")
    results = [r for _, r in consume_json(kafka_bootstrap, topics["results"], 10, 4)]
    assert [r["status"] for r in results] == ["parked", "parked", "published"]
    assert published_texts(fake, user) == [req["post"]["text"]]
    assert w.stop() == 0


def test_a_platform_message_quoting_the_token_never_leaves_the_worker(worker_env, workers, fake,
                                                                      run_cli, topics,
                                                                      kafka_bootstrap, rds):
    """Graph API errors can quote the token they refused ("Malformed access
    token <token>"): results, alerts and logs carry its fingerprint instead."""
    env = worker_env()
    user, token = connect_account(run_cli, env, fake, "acct-quote")
    fake.fail("threads", 400, 190, subcode=460, count=10, user_id=user,
              message=f"Malformed access token {token}")
    produce_many(kafka_bootstrap, topics["requests"], [("acct-quote", request("acct-quote"))])
    w = workers.start(env)
    results = results_of(kafka_bootstrap, topics, 1)
    assert results[0]["status"] == "parked"
    assert results[0]["error"]["message"].startswith("Malformed access token [secret sha256:")
    alerts = alerts_of(kafka_bootstrap, topics)
    assert [a["kind"] for a in alerts] == ["reconnect_required"]
    assert w.stop() == 0
    assert token not in json.dumps(results) + json.dumps(alerts) + w.logs()
    assert_no_secret_anywhere(fake, [w], kafka_bootstrap, topics, rds)


def test_sweep_drops_accounts_only_a_token_put_can_help(worker_env, workers, fake, run_cli,
                                                        topics, kafka_bootstrap, rds):
    """An account marked reconnect_required, or with an expired threads token,
    leaves the expiry index (so it cannot crowd out accounts that are due);
    a token put brings it back."""
    env = worker_env(TOKEN_SWEEP_INTERVAL_S="1")
    now = int(time.time())
    connect_account(run_cli, env, fake, "acct-marked", issued_at=now - 50 * 86400,
                    expires_in=51 * 86400)
    rds.hset("pw:{acct-marked}:account", "status", "reconnect_required")
    connect_account(run_cli, env, fake, "acct-expired", issued_at=now - 61 * 86400,
                    expires_in=60 * 86400, verify=False)
    connect_account(run_cli, env, fake, "acct-due", issued_at=now - 50 * 86400,
                    expires_in=51 * 86400)
    w = workers.start(env)
    wait_until(lambda: rds.zscore("pw:token_expiry", "acct-marked") is None
               and rds.zscore("pw:token_expiry", "acct-expired") is None, timeout=20,
               message="both dropped from the index")
    wait_until(lambda: fake.stats()["refreshes"].get("u-acct-due") == 1, timeout=20)
    assert rds.zscore("pw:token_expiry", "acct-due") is not None
    # An idle account whose token expired for good is marked, with the
    # contract's critical alert (not a token_expiring warning).
    raised = alerts_of(kafka_bootstrap, topics)
    assert [a["account_id"] for a in raised if a["kind"] == "token_expiring"] == []
    assert [a["account_id"] for a in raised if a["kind"] == "reconnect_required"] == [
        "acct-expired"]
    connect_account(run_cli, env, fake, "acct-marked")
    assert rds.zscore("pw:token_expiry", "acct-marked") is not None
    assert w.stop() == 0
