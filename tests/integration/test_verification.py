"""Tokens checked before posts need them, as a black box: token put refuses a
token that is another user's, cannot publish or cannot be checked; the
workers' verification sweep marks an idle account whose token was revoked,
belongs to someone else or lacks a scope, once per TOKEN_VERIFY_INTERVAL_S
for the whole fleet and within TOKEN_VERIFY_MAX_PER_S. The fake Threads
API's counters, Redis and the topics are the evidence."""
import time
import uuid

from harness import consume_json, produce_many, wait_until
from posts import account_events_of, alerts_of, connect_account, request


def put(run_cli, env, account, user_id, token, *extra):
    return run_cli(["token", "put", "--account", account, "--user-id", user_id,
                    "--expires-in", str(50 * 86400), *extra], env=env, input=token + "\n")




def verification(rds, account):
    return {k.decode(): v.decode() for k, v in rds.hgetall(f"pw:{{{account}}}:verify").items()}


def metric(worker, name):
    return sum(float(line.rsplit(" ", 1)[1]) for line in worker.metrics().splitlines()
               if line.startswith(name))


# ---- token put ----

def test_put_refuses_another_users_token(run_cli, worker_env, fake, rds):
    env = worker_env()
    fake.register_token("THAA-staging", "123")
    res = put(run_cli, env, "acct-w", "456", "THAA-staging")
    assert res.returncode == 2
    assert "belongs to user 123, not 456: wrong account or environment?" in res.stderr
    assert "THAA-staging" not in res.stdout + res.stderr
    assert rds.exists("pw:{acct-w}:token") == 0


def test_put_refuses_a_token_that_cannot_publish(run_cli, worker_env, fake, rds, topics,
                                                 kafka_bootstrap):
    env = worker_env()
    fake.register_token("THAA-basic", "77", scopes=["threads_basic"])
    res = put(run_cli, env, "acct-s", "77", "THAA-basic")
    assert res.returncode == 2
    assert "lacks a permission" in res.stderr and "threads_publishing_limit" in res.stderr
    assert rds.exists("pw:{acct-s}:token") == 0
    assert account_events_of(kafka_bootstrap, topics, timeout=2) == []
    # --no-verify stores it unchecked, for offline seeding.
    res = put(run_cli, env, "acct-s", "77", "THAA-basic", "--no-verify")
    assert res.returncode == 0, res.stderr
    assert rds.exists("pw:{acct-s}:token") == 1
    assert rds.zscore("pw:verify_due", "acct-s") <= time.time() + 1  # checked soon


def test_put_refuses_revoked_and_expired_tokens(run_cli, worker_env, fake, rds):
    env = worker_env()
    now = int(time.time())
    fake.register_token("THAA-revoked", "81")
    fake.revoke(access_token="THAA-revoked", subcode=460)
    fake.register_token("THAA-expired", "82", issued_at=now - 3 * 86400, expires_at=now - 60)
    res = put(run_cli, env, "acct-r", "81", "THAA-revoked")
    assert res.returncode == 2 and "revoked" in res.stderr
    res = put(run_cli, env, "acct-e", "82", "THAA-expired")
    assert res.returncode == 2 and "expired" in res.stderr
    assert rds.exists("pw:{acct-r}:token") == 0 and rds.exists("pw:{acct-e}:token") == 0


def test_put_that_cannot_ask_the_api_exits_1_and_stores_nothing(run_cli, worker_env, fake, rds):
    env = worker_env(HTTP_TIMEOUT_MS="2000")
    fake.register_token("THAA-ok", "90")
    fake.fail("me", status=503, code=2, count=5)
    res = put(run_cli, env, "acct-u", "90", "THAA-ok")
    assert res.returncode == 1
    assert "could not be asked" in res.stderr and "--no-verify" in res.stderr
    assert rds.exists("pw:{acct-u}:token") == 0


def test_put_records_the_verification_and_the_quota(run_cli, worker_env, fake, rds):
    env = worker_env(TOKEN_VERIFY_INTERVAL_S="3600")
    fake.register_token("THAA-good", "91")
    fake.set_quota_usage("91", 7)
    before = time.time()
    res = put(run_cli, env, "acct-g", "91", "Bearer THAA-good")
    assert res.returncode == 0, res.stderr
    v = verification(rds, "acct-g")
    assert v["outcome"] == "ok" and "may publish" in v["message"]
    due = rds.zscore("pw:verify_due", "acct-g")
    assert before + 3590 <= due <= time.time() + 3601
    quota = {k.decode(): v.decode() for k, v in rds.hgetall("pw:{acct-g}:quota").items()}
    assert quota["usage"] == "7" and quota["total"] == "250" and quota["duration_s"] == "86400"
    assert fake.stats()["requests_by_endpoint"]["me"] >= 1


# ---- the verification sweep ----

def test_idle_revoked_account_is_marked_before_any_post(worker_env, workers, fake, run_cli,
                                                        topics, kafka_bootstrap, rds):
    """No post ever comes for the account: the sweep finds the revoked token
    within one interval, marks the account once (one event, one critical
    alert) and a post that comes later parks without calling the API."""
    env = worker_env(TOKEN_VERIFY_INTERVAL_S="3", TOKEN_SWEEP_INTERVAL_S="1")
    user, _ = connect_account(run_cli, env, fake, "acct-idle")
    fake.revoke(user_id=user, subcode=460)
    w = workers.start(env)
    wait_until(lambda: rds.hget("pw:{acct-idle}:account", "status") == b"reconnect_required",
               timeout=15, message=lambda: f"not marked:\n{w.tail()}")
    events = [e for e in account_events_of(kafka_bootstrap, topics) if e["account_id"] == "acct-idle"]
    assert [e["type"] for e in events] == ["token_updated", "reconnect_required"]
    time.sleep(4)  # another interval: verified again, still one alert
    alerts = [a for a in alerts_of(kafka_bootstrap, topics) if a["account_id"] == "acct-idle"]
    assert [a["kind"] for a in alerts] == ["reconnect_required"]
    assert alerts[0]["code"] == 190 and alerts[0]["subcode"] == 460
    assert alerts[0]["endpoint"] == "GET /v1.0/me"
    assert verification(rds, "acct-idle")["outcome"] == "revoked"
    assert metric(w, 'publish_worker_token_verifications_total{outcome="revoked"}') >= 1
    log = [r for r in w.log_records() if r.get("msg") == "token verification failed"]
    assert log and log[0]["account_id"] == "acct-idle" and log[0]["subcode"] == 460
    assert {"ts", "endpoint", "http_status", "code"} <= set(log[0])
    creates = fake.stats()["requests_by_endpoint"]["threads"]
    produce_many(kafka_bootstrap, topics["requests"], [("acct-idle", request("acct-idle"))])
    results = [r for _, r in consume_json(kafka_bootstrap, topics["results"], 1, 20)]
    assert [r["status"] for r in results] == ["parked"]
    assert fake.stats()["requests_by_endpoint"]["threads"] == creates
    assert w.stop() == 0


def test_sweep_finds_another_users_token_and_a_missing_scope(worker_env, workers, fake, run_cli,
                                                             topics, kafka_bootstrap, rds):
    env = worker_env(TOKEN_VERIFY_INTERVAL_S="2", TOKEN_SWEEP_INTERVAL_S="1")
    # Stored unchecked, as an older version (or --no-verify) would have.
    fake.register_token("THAA-other", "5001")
    assert put(run_cli, env, "acct-wrong", "5002", "THAA-other", "--no-verify").returncode == 0
    connect_account(run_cli, env, fake, "acct-scope", scopes=["threads_basic"], verify=False)
    w = workers.start(env)
    wait_until(lambda: rds.hget("pw:{acct-wrong}:account", "status") == b"reconnect_required"
               and rds.hget("pw:{acct-scope}:account", "status") == b"reconnect_required",
               timeout=15, message=lambda: f"not marked:\n{w.tail()}")
    assert verification(rds, "acct-wrong")["outcome"] == "wrong_user"
    assert "belongs to user 5001, not 5002" in verification(rds, "acct-wrong")["message"]
    assert verification(rds, "acct-scope")["outcome"] == "missing_scope"
    kinds = {a["account_id"]: a["kind"] for a in alerts_of(kafka_bootstrap, topics)}
    assert kinds == {"acct-wrong": "reconnect_required", "acct-scope": "permission_denied"}
    assert rds.hget("pw:{acct-scope}:account", "reason") == b"missing_scope"
    assert w.stop() == 0


def test_a_token_that_verifies_fine_clears_no_mark(worker_env, workers, fake, run_cli, rds,
                                                   topics, kafka_bootstrap):
    env = worker_env(TOKEN_VERIFY_INTERVAL_S="1", TOKEN_SWEEP_INTERVAL_S="1")
    connect_account(run_cli, env, fake, "acct-kept")
    rds.hset("pw:{acct-kept}:account", mapping={"status": "reconnect_required",
                                                "reason": "revoked"})
    rds.zadd("pw:verify_due", {"acct-kept": 0})
    w = workers.start(env)
    wait_until(lambda: verification(rds, "acct-kept").get("at_ms", "0") > str(int(time.time())),
               timeout=10, message="not verified")
    time.sleep(1.5)
    assert verification(rds, "acct-kept")["outcome"] == "ok"
    assert rds.hget("pw:{acct-kept}:account", "status") == b"reconnect_required"
    assert w.stop() == 0


def test_each_account_is_verified_once_per_interval_across_the_fleet(worker_env, workers, fake,
                                                                    run_cli, rds):
    """Two workers, twelve accounts due at once, an interval of 4 s, a budget
    of 4 a second: each account is verified once per interval (not once per
    worker) and no second starts more than 4."""
    env = dict(TOKEN_VERIFY_INTERVAL_S="4", TOKEN_VERIFY_MAX_PER_S="4", TOKEN_SWEEP_INTERVAL_S="1")
    accounts = [f"acct-v{i}" for i in range(12)]
    for a in accounts:
        connect_account(run_cli, worker_env(**env), fake, a, verify=False)
    me_before = fake.stats()["requests_by_endpoint"]["me"]
    ws = [workers.start(worker_env(**env)) for _ in range(2)]
    seen = {}  # account -> verification times (ms)
    deadline = time.time() + 9
    while time.time() < deadline:
        for a in accounts:
            at = verification(rds, a).get("at_ms")
            if at:
                seen.setdefault(a, set()).add(int(at))
        time.sleep(0.1)
    assert set(seen) == set(accounts)
    total = sum(metric(w, "publish_worker_token_verifications_total") for w in ws)
    assert fake.stats()["requests_by_endpoint"]["me"] - me_before == total
    # 9 s at one per 4 s: at most 3 each (a double claim would make it 6).
    assert all(1 <= len(times) <= 3 for times in seen.values()), seen
    assert total <= 3 * len(accounts)
    per_second = {}
    for times in seen.values():
        for t in times:
            per_second[t // 1000] = per_second.get(t // 1000, 0) + 1
    # at_ms is when a verification ended: the (at most 4) claims of one
    # second may end in the next, beside that second's own 4.
    assert max(per_second.values()) <= 2 * 4, per_second
    for w in ws:
        assert w.stop() == 0


def test_interval_zero_turns_verification_off(worker_env, workers, fake, run_cli, rds):
    env = worker_env(TOKEN_VERIFY_INTERVAL_S="0", TOKEN_SWEEP_INTERVAL_S="1")
    user, _ = connect_account(run_cli, env, fake, "acct-off", verify=False)
    fake.revoke(user_id=user, subcode=460)
    me_before = fake.stats()["requests_by_endpoint"]["me"]
    w = workers.start(env)
    w.wait_ready()
    time.sleep(4)
    assert fake.stats()["requests_by_endpoint"]["me"] == me_before
    assert rds.hget("pw:{acct-off}:account", "status") == b"active"
    assert w.stop() == 0


def test_an_unreachable_api_is_no_verdict(worker_env, workers, fake, run_cli, rds):
    env = worker_env(TOKEN_VERIFY_INTERVAL_S="2", TOKEN_SWEEP_INTERVAL_S="1",
                     HTTP_TIMEOUT_MS="2000")
    connect_account(run_cli, env, fake, "acct-503", verify=False)
    fake.fail("me", status=503, code=2, count=1000)
    w = workers.start(env)
    wait_until(lambda: verification(rds, "acct-503").get("outcome") == "unreachable",
               timeout=10, message=lambda: w.tail())
    assert rds.hget("pw:{acct-503}:account", "status") == b"active"
    assert rds.zscore("pw:verify_due", "acct-503") <= time.time() + 601
    fake.clear_failures()
    assert w.stop() == 0


def test_census_metrics_tell_the_fleets_accounts(worker_env, workers, fake, run_cli, rds):
    env = worker_env(TOKEN_VERIFY_INTERVAL_S="1", TOKEN_SWEEP_INTERVAL_S="1")
    for a in ("acct-c1", "acct-c2", "acct-c3"):
        connect_account(run_cli, env, fake, a)
    rds.hset("pw:{acct-c3}:account", "status", "reconnect_required")
    rds.rpush("pw:{acct-c3}:parked", "{}", "{}")
    rds.sadd("pw:parked_accounts", "acct-c3")
    w = workers.start(env)

    def census():
        text = w.metrics()
        return ('publish_worker_accounts{state="active"} 2' in text
                and 'publish_worker_accounts{state="reconnect_required"} 1' in text
                and "publish_worker_parked_posts 2" in text
                and "publish_worker_verification_last_success_timestamp_seconds" in text
                and "publish_worker_sweep_last_success_timestamp_seconds" in text)
    wait_until(census, timeout=15, message=lambda: w.metrics())
    text = w.metrics()
    assert any(line.startswith("publish_worker_token_records{key_id=") and line.endswith(" 3")
               for line in text.splitlines()), text
    earliest = metric(w, "publish_worker_token_earliest_expiry_timestamp_seconds")
    assert time.time() < earliest < time.time() + 61 * 86400
    assert w.stop() == 0


def test_census_schedules_accounts_that_were_never_verified(worker_env, workers, fake, run_cli,
                                                            rds):
    """Tokens stored before verification existed have no date in
    pw:verify_due: the census gives them one within an interval."""
    env = worker_env(TOKEN_VERIFY_INTERVAL_S="3600", TOKEN_SWEEP_INTERVAL_S="1")
    connect_account(run_cli, env, fake, "acct-old")
    rds.zrem("pw:verify_due", "acct-old")
    w = workers.start(env)
    wait_until(lambda: rds.zscore("pw:verify_due", "acct-old") is not None, timeout=10)
    assert time.time() - 5 <= rds.zscore("pw:verify_due", "acct-old") <= time.time() + 3600
    assert w.stop() == 0


def test_verification_never_shows_a_token(worker_env, workers, fake, run_cli, rds, topics,
                                          kafka_bootstrap):
    env = worker_env(TOKEN_VERIFY_INTERVAL_S="1", TOKEN_SWEEP_INTERVAL_S="1")
    token = f"THAA-secret-{uuid.uuid4().hex}"
    user, _ = connect_account(run_cli, env, fake, "acct-sec", token=token)
    fake.revoke(user_id=user, subcode=460)
    w = workers.start(env)
    wait_until(lambda: rds.hget("pw:{acct-sec}:account", "status") == b"reconnect_required",
               timeout=15)
    texts = [w.logs(), w.stderr(), w.metrics(), str(verification(rds, "acct-sec"))]
    texts += [str(a) for a in alerts_of(kafka_bootstrap, topics)]
    assert not any(token in t for t in texts)
    assert w.stop() == 0


def test_an_expired_token_is_refreshed_once_not_marked(worker_env, workers, fake, run_cli, rds,
                                                       topics, kafka_bootstrap):
    """The API says an oauth2 account's access token expired (its stored
    expiry said otherwise): the sweep refreshes it once and the account stays
    active; a threads token that expired for good is marked."""
    env = worker_env(TOKEN_VERIFY_INTERVAL_S="2", TOKEN_SWEEP_INTERVAL_S="1")
    now = int(time.time())
    user, old = connect_account(run_cli, env, fake, "acct-ox", issued_at=now - 600,
                                expires_in=3600, refresh_token=f"rt-{uuid.uuid4().hex}")
    # The platform ends the session early: the token now answers 190/463.
    fake.register_token(old, user, issued_at=now - 600, expires_at=now - 1)
    w = workers.start(env)
    wait_until(lambda: fake.stats()["refreshes"].get(user, 0) >= 1, timeout=15,
               message=lambda: w.tail())
    wait_until(lambda: verification(rds, "acct-ox").get("outcome") == "ok", timeout=15,
               message=lambda: f"{verification(rds, 'acct-ox')}\n{w.tail()}")
    assert rds.hget("pw:{acct-ox}:account", "status") == b"active"
    assert [a for a in alerts_of(kafka_bootstrap, topics) if a["account_id"] == "acct-ox"] == []
    assert w.stop() == 0
