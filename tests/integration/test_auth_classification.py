"""Auth failures that are not the account's, as a black box.

- An OAuth2 client the token endpoint refuses (a wrong OAUTH2_CLIENT_SECRET:
  RFC 6749 `invalid_client`) is the fleet's configuration: no account is
  marked, one `refresh_failed` alert names the configuration, posts are
  retried (transient) and go out once the operator fixes the secret, with no
  `token put`.
- A 401 or 403 without a Graph error body (a proxy's HTML page during an
  incident) says nothing about the token: it is transient, retried with
  backoff, and never parks a post or marks an account; the same on the
  refresh endpoints.
The fake Threads API's counters and the worker's topics are the evidence."""
import time
import uuid

import pytest

from harness import consume_json, produce_many, wait_until
from posts import (account_events_of, alerts_of, connect_account, published_texts, request,
                   results_of)

WRONG_SECRET = "not-the-client-secret"





def expired_oauth2_accounts(run_cli, env, fake, prefix, n):
    """n oauth2 accounts whose one-hour tokens expired 100 s ago: every post
    and every sweep needs a refresh. Returns {account: user_id}."""
    now = int(time.time())
    return {f"{prefix}{i}": connect_account(run_cli, env, fake, f"{prefix}{i}",
                                            issued_at=now - 3700, expires_in=3600,
                                            refresh_token=f"rt-{uuid.uuid4().hex}")[0]
            for i in range(n)}


def assert_untouched(rds, kafka_bootstrap, topics, accounts):
    """No account marked, no reconnect_required event (the token puts'
    token_updated events are the only kind there)."""
    for account in accounts:
        assert rds.hget(f"pw:{{{account}}}:account", "status") == b"active", account
    events = account_events_of(kafka_bootstrap, topics, timeout=4)
    assert {e["type"] for e in events} <= {"token_updated"}, events


def assert_one_config_alert(kafka_bootstrap, topics, accounts):
    alerts = alerts_of(kafka_bootstrap, topics)
    assert [a["kind"] for a in alerts] == ["refresh_failed"], alerts
    alert = alerts[0]
    assert alert["severity"] == "warning" and alert["account_id"] in accounts
    assert alert["http_status"] == 401
    assert "OAUTH2_CLIENT_ID" in alert["message"] and "OAUTH2_CLIENT_SECRET" in alert["message"]
    assert "invalid_client" in alert["message"]
    return alert


def test_a_wrong_client_secret_marks_no_account_and_raises_one_config_alert(
        worker_env, workers, fake, run_cli, topics, kafka_bootstrap, rds):
    env = worker_env()
    users = expired_oauth2_accounts(run_cli, env, fake, "acct-cfg", 3)
    reqs = [request(a, post_id=f"{a}-1") for a in users]
    produce_many(kafka_bootstrap, topics["requests"], [(r["account_id"], r) for r in reqs])
    w = workers.start(worker_env(OAUTH2_CLIENT_SECRET=WRONG_SECRET, PUBLISH_MAX_ATTEMPTS="2",
                                 TOKEN_SWEEP_INTERVAL_S="1"))
    results = results_of(kafka_bootstrap, topics, 3)
    # Transient for the post: retried, then failed past PUBLISH_MAX_ATTEMPTS.
    assert [r["status"] for r in results] == ["failed"] * 3, results
    for r in results:
        assert r["error"]["class"] == "transient" and r["attempts"] == 2
        assert "OAUTH2_CLIENT_SECRET" in r["error"]["message"]
    time.sleep(3)  # the sweeps try (and fail) to refresh every account too
    assert all(fake.stats()["failed_refreshes"].get(u, 0) >= 2 for u in users.values())
    assert_untouched(rds, kafka_bootstrap, topics, users)
    assert_one_config_alert(kafka_bootstrap, topics, users)
    records = w.log_records()
    errors = [r for r in records if r["level"] == "error" and "OAUTH2_CLIENT_SECRET" in
              r.get("fix", "")]
    assert errors, "the configuration error is logged at error level with the fix"
    assert w.stop() == 0
    assert WRONG_SECRET not in w.logs() + w.stderr()

    # The operator fixes the secret: no token put, the next posts go out.
    w2 = workers.start(worker_env())
    more = [request(a, post_id=f"{a}-2") for a in users]
    produce_many(kafka_bootstrap, topics["requests"], [(r["account_id"], r) for r in more])
    after = [r for r in results_of(kafka_bootstrap, topics, 6) if r["post_id"].endswith("-2")]
    assert [r["status"] for r in after] == ["published"] * 3, after
    assert fake.stats()["refreshes"] == {u: 1 for u in users.values()}
    for r in more:
        assert published_texts(fake, users[r["account_id"]]) == [r["post"]["text"]]
    assert_untouched(rds, kafka_bootstrap, topics, users)
    assert w2.stop() == 0


def test_posts_retrying_through_a_wrong_client_secret_go_out_after_the_fix(
        worker_env, workers, fake, run_cli, topics, kafka_bootstrap, rds):
    """While a post's retries last, a restart with the right secret publishes
    it: the abandoned delivery is redelivered, in the account's order."""
    env = worker_env()
    users = expired_oauth2_accounts(run_cli, env, fake, "acct-fix", 2)
    reqs = [request(a, post_id=f"{a}-{i}") for i in range(2) for a in users]
    produce_many(kafka_bootstrap, topics["requests"], [(r["account_id"], r) for r in reqs])
    # SHUTDOWN_TIMEOUT_S: the posts retrying at shutdown are given up (not
    # answered, not committed) after 2 s rather than 25.
    w = workers.start(worker_env(OAUTH2_CLIENT_SECRET=WRONG_SECRET, PUBLISH_MAX_ATTEMPTS="30",
                                 SHUTDOWN_TIMEOUT_S="2"))
    wait_until(lambda: all(fake.stats()["failed_refreshes"].get(u, 0) >= 2
                           for u in users.values()), timeout=30,
               message="every account's refresh refused")
    time.sleep(2)
    assert consume_json(kafka_bootstrap, topics["results"], 1, timeout=2) == []
    assert_untouched(rds, kafka_bootstrap, topics, users)
    assert_one_config_alert(kafka_bootstrap, topics, users)
    assert w.stop() == 0

    w2 = workers.start(worker_env())
    results = results_of(kafka_bootstrap, topics, 4)
    assert [r["status"] for r in results] == ["published"] * 4, results
    for account, user in users.items():
        assert published_texts(fake, user) == [r["post"]["text"] for r in reqs
                                               if r["account_id"] == account]
    assert fake.stats()["refreshes"] == {u: 1 for u in users.values()}
    assert_untouched(rds, kafka_bootstrap, topics, users)
    assert w2.stop() == 0


@pytest.mark.parametrize("status", [401, 403])
def test_an_html_auth_page_on_publish_is_retried_not_parked(status, worker_env, workers, fake,
                                                           run_cli, topics, kafka_bootstrap, rds):
    env = worker_env()
    user, _ = connect_account(run_cli, env, fake, "acct-html")
    fake.fail("threads", status, kind="html", count=2, user_id=user)
    req = request("acct-html")
    produce_many(kafka_bootstrap, topics["requests"], [("acct-html", req)])
    w = workers.start(env)
    result, = results_of(kafka_bootstrap, topics, 1)
    assert result["status"] == "published" and result["attempts"] == 3, result
    assert published_texts(fake, user) == [req["post"]["text"]]
    retries = [r for r in w.log_records() if r["msg"] == "publish attempt failed; retrying"]
    assert [(r["http_status"], r["error_class"]) for r in retries] == [(status, "transient")] * 2
    assert alerts_of(kafka_bootstrap, topics) == []
    assert_untouched(rds, kafka_bootstrap, topics, ["acct-html"])
    assert w.stop() == 0


@pytest.mark.parametrize("status", [401, 403])
def test_an_html_auth_page_past_the_attempts_fails_transient(status, worker_env, workers, fake,
                                                            run_cli, topics, kafka_bootstrap, rds):
    env = worker_env(PUBLISH_MAX_ATTEMPTS="2")
    user, _ = connect_account(run_cli, env, fake, "acct-html2")
    fake.fail("threads", status, kind="html", count=10, user_id=user)
    produce_many(kafka_bootstrap, topics["requests"], [("acct-html2", request("acct-html2"))])
    w = workers.start(env)
    result, = results_of(kafka_bootstrap, topics, 1)
    assert result["status"] == "failed" and result["attempts"] == 2, result
    assert result["error"]["class"] == "transient" and result["error"]["http_status"] == status
    assert rds.llen("pw:{acct-html2}:parked") == 0
    assert alerts_of(kafka_bootstrap, topics) == []
    assert_untouched(rds, kafka_bootstrap, topics, ["acct-html2"])
    assert w.stop() == 0


def test_an_html_401_from_the_refresh_endpoint_is_retried_not_parked(
        worker_env, workers, fake, run_cli, topics, kafka_bootstrap, rds):
    """Threads says "expired"; the refresh meets a proxy's HTML 401 twice, the
    third refresh goes through: published, one refresh, nothing marked."""
    env = worker_env()
    user, _ = connect_account(run_cli, env, fake, "acct-rhtml")
    fake.fail("threads", 401, 190, subcode=463, count=1, user_id=user)
    fake.fail("refresh", 401, kind="html", count=2, user_id=user)
    produce_many(kafka_bootstrap, topics["requests"], [("acct-rhtml", request("acct-rhtml"))])
    w = workers.start(env)
    result, = results_of(kafka_bootstrap, topics, 1)
    assert result["status"] == "published", result
    assert result["token_refreshed"] is True and result["attempts"] == 3
    stats = fake.stats()
    assert stats["refreshes"] == {user: 1} and stats["failed_refreshes"] == {user: 2}
    # The API was asked once with the expired token, not again before the refresh.
    assert stats["requests_by_endpoint"]["threads"] == 2
    kinds = [a["kind"] for a in alerts_of(kafka_bootstrap, topics)]
    assert "reconnect_required" not in kinds and "permission_denied" not in kinds
    assert_untouched(rds, kafka_bootstrap, topics, ["acct-rhtml"])
    assert w.stop() == 0


def test_an_html_401_from_the_oauth2_endpoint_is_transient(worker_env, workers, fake, run_cli,
                                                           topics, kafka_bootstrap, rds):
    """The sweep's refresh meets a proxy's HTML 401 (no RFC 6749 error, no
    challenge): neither the account's fault nor the client's; a later sweep
    refreshes."""
    env = worker_env(TOKEN_SWEEP_INTERVAL_S="1")
    user, = expired_oauth2_accounts(run_cli, env, fake, "acct-ohtml", 1).values()
    fake.fail("oauth2", 401, kind="html", count=2, user_id=user)
    w = workers.start(env)
    wait_until(lambda: fake.stats()["refreshes"].get(user) == 1, timeout=30,
               message="refreshed after the HTML pages")
    assert fake.stats()["failed_refreshes"] == {user: 2}
    failed = [a for a in alerts_of(kafka_bootstrap, topics) if a["kind"] != "token_expiring"]
    assert [a["kind"] for a in failed] == ["refresh_failed"], failed
    assert failed[0]["account_id"] == "acct-ohtml0" and "OAUTH2_CLIENT" not in failed[0]["message"]
    assert_untouched(rds, kafka_bootstrap, topics, ["acct-ohtml0"])
    assert w.stop() == 0
