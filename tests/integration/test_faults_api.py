"""The Threads API misbehaving while posts of many accounts are in flight:
bursts of 5xx, 429 with Retry-After, an HTML 401 from a proxy, and answers
that never come whole (closed, reset, hung, truncated), before and after the
platform did the work. After each: every request answered as the fault
allows, each post published at most once (exactly once where answered so),
in order per account, and nothing committed past an unanswered request
(invariants.py). Failures are queued per user with a count, so each run is
deterministic."""
import pytest

from harness import consume_json

ACCOUNTS = 12
POSTS = 3  # per account


def accounts(tag):
    return [f"acct-{tag}{i:02d}" for i in range(ACCOUNTS)]


def first_posts(run):
    """account -> its first request."""
    out = {}
    for r in run.reqs:
        out.setdefault(r["account_id"], r)
    return out


def results_of(run, post_id):
    return [r for r in run.results() if r["post_id"] == post_id]


def test_5xx_bursts_are_retried_and_a_burst_past_the_limit_fails_only_its_post(
        worker_env, workers, fake, run_cli, fault_run):
    env = worker_env(WORKER_CONCURRENCY="8", PUBLISH_MAX_ATTEMPTS="3")
    run = fault_run.connect(run_cli, env, accounts("burst"))
    users = list(run.users.values())
    for i, user in enumerate(users):
        if i < 2:  # longer than PUBLISH_MAX_ATTEMPTS: the account's first post fails
            fake.fail("threads", 500, 2, count=3, user_id=user,
                      message="An unexpected error has occurred")
        elif i % 2 == 0:  # container creation: two 500s in a row
            fake.fail("threads", 500, 2, count=2, user_id=user,
                      message="An unexpected error has occurred")
        else:  # the publish call: two 502 pages of a proxy
            fake.fail("threads_publish", 502, kind="html", count=2, user_id=user)
    run.produce(run.make_requests(POSTS))
    w = workers.start(env)
    run.wait_answered(timeout=60, workers=[w])
    firsts = first_posts(run)
    doomed = {firsts[a]["post_id"] for a in list(run.users)[:2]}
    run.check(allowed={"published", "duplicate", "failed"}, failed=doomed)
    for account, req in firsts.items():
        (res,) = results_of(run, req["post_id"])
        assert res["attempts"] == 3, res
        if req["post_id"] in doomed:
            assert res["error"]["class"] == "transient" and res["error"]["http_status"] == 500
    assert w.stop() == 0
    run.check_all_committed()


def test_429_with_retry_after_is_honoured_and_alerts_once_per_account(
        worker_env, workers, fake, run_cli, fault_run, topics, kafka_bootstrap):
    env = worker_env(WORKER_CONCURRENCY="8")
    run = fault_run.connect(run_cli, env, accounts("slow"))
    for i, user in enumerate(run.users.values()):
        endpoint, code = ("threads", 613) if i % 2 else ("threads_publish", 4)
        fake.fail(endpoint, 429, code, count=1, user_id=user, retry_after=2,
                  message="Application request limit reached")
    run.produce(run.make_requests(POSTS))
    w = workers.start(env)
    run.wait_answered(timeout=60, workers=[w])
    run.check()
    for req in first_posts(run).values():
        (res,) = results_of(run, req["post_id"])
        assert (res["status"], res["attempts"]) == ("published", 2), res
    delays = [r["delay_ms"] for r in w.log_records()
              if r.get("msg") == "publish attempt failed; retrying"]
    assert len(delays) == ACCOUNTS and min(delays) >= 2000, delays  # Retry-After, not ~1 s
    # Each alert went out before its post's result: all are there by now.
    alerts = consume_json(kafka_bootstrap, topics["alerts"], ACCOUNTS + 1, timeout=2)
    assert sorted(a["account_id"] for _, a in alerts if a["kind"] == "rate_limited") == \
        sorted(run.users), alerts
    assert w.stop() == 0
    run.check_all_committed()


def test_an_html_401_from_a_proxy_is_transient_not_a_revoked_token(
        worker_env, workers, fake, run_cli, fault_run, topics, kafka_bootstrap):
    env = worker_env(WORKER_CONCURRENCY="8")
    run = fault_run.connect(run_cli, env, accounts("proxy"))
    for i, user in enumerate(run.users.values()):
        fake.fail("threads_publish" if i % 2 else "threads", 401, kind="html", count=1,
                  user_id=user)
    run.produce(run.make_requests(POSTS))
    w = workers.start(env)
    run.wait_answered(timeout=60, workers=[w])
    try:
        run.check()  # none parked, none failed: published after a retry
        alerts = consume_json(kafka_bootstrap, topics["alerts"], 1, timeout=3)
        assert not [a for _, a in alerts if a["kind"] == "reconnect_required"], alerts
    finally:
        w.kill()


# kind, endpoint and processed vary per account: account i fails on
# ENDPOINTS[i % 3], processed for i // 3 odd. `container` is asked by VIDEO
# posts (polled before publishing) and by retries of a recorded container.
ENDPOINTS = ("threads", "threads_publish", "container")
def inject_per_account(fake, run, kind, spare_publish=False):
    """One failure of kind per account, as ENDPOINTS says; spare_publish:
    a threads_publish failure is never processed (the case of
    test_a_publish_whose_answer_is_lost_is_not_sent_again)."""
    for i, user in enumerate(run.users.values()):
        endpoint = ENDPOINTS[i % 3]
        processed = (i // 3) % 2 == 1 and not (spare_publish and endpoint == "threads_publish")
        fake.fail(endpoint, kind=kind, processed=processed, count=1, user_id=user,
                  hang_ms=2500 if kind == "hang" else None)


@pytest.mark.parametrize("kind", ["close", "reset", "hang", "short_body", "cut_json"])
def test_answers_lost_before_or_after_the_work_publish_each_post_once(
        kind, worker_env, workers, fake, run_cli, fault_run):
    env = worker_env(WORKER_CONCURRENCY="8", HTTP_TIMEOUT_MS="1000")
    run = fault_run.connect(run_cli, env, accounts(kind.replace("_", "")))
    inject_per_account(fake, run, kind)
    run.produce(run.make_requests(
        POSTS, media=lambda a, i: "VIDEO" if a % 3 == 2 and i == 0 else "TEXT"))
    w = workers.start(env)
    run.wait_answered(timeout=60, workers=[w])
    run.check()
    injected = fake.stats()["injected_failures"][kind]
    assert injected == ACCOUNTS, f"{injected} of {ACCOUNTS} failures used"
    assert w.stop() == 0
    run.check_all_committed()


def test_a_publish_whose_answer_is_lost_is_not_sent_again(worker_env, workers, fake, run_cli,
                                                          fault_run):
    """Threads publishes, then the connection ends without an answer (closed
    for half the accounts, reset for the others): the worker must ask the
    container's status, never call threads_publish again."""
    env = worker_env(WORKER_CONCURRENCY="8")
    run = fault_run.connect(run_cli, env, accounts("lost"))
    for i, user in enumerate(run.users.values()):
        fake.fail("threads_publish", kind=("close", "reset")[i % 2], processed=True, count=1,
                  user_id=user)
    run.produce(run.make_requests(2))
    w = workers.start(env)
    run.wait_answered(timeout=60, workers=[w])
    try:
        run.check()
        for req in first_posts(run).values():
            (res,) = results_of(run, req["post_id"])
            assert res["attempts"] >= 1, res  # a publish call was made for it
    finally:
        w.kill()
