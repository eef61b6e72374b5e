"""The publishing pipeline as a black box: Kafka in, the fake Threads API out.
The fake's counters are the evidence for "once" and "in order"."""
import signal
import time

import pytest
from harness import consume, consume_json, produce_many, wait_until
from posts import (ALERT_SCHEMA, DLQ_HEADERS_SCHEMA, EXAMPLES, check_results, connect_account,
                   published_texts, request, results_by_post)


def wait_results(kafka_bootstrap, topics, n, timeout=60):
    results = consume_json(kafka_bootstrap, topics["results"], n, timeout=timeout)
    assert len(results) == n, f"{len(results)} of {n} results"
    check_results(results)
    return results


def assert_no_more(kafka_bootstrap, topic, n):
    """Exactly n messages: nothing more arrives within a few seconds."""
    assert len(consume(kafka_bootstrap, topic, n + 1, timeout=4)) == n


def test_every_media_type_once_and_in_order(worker_env, workers, fake, run_cli, topics,
                                            kafka_bootstrap):
    env = worker_env()
    users = {a: connect_account(run_cli, env, fake, a)[0] for a in ("acct-a", "acct-b")}
    reqs = []
    for account in users:
        for i, media in enumerate(["TEXT", "IMAGE", "VIDEO", "CAROUSEL", "TEXT", "IMAGE"]):
            reqs.append(request(account, post_id=f"{account}-{i}", media_type=media,
                                text=f"{account} #{i} {media}"))
    produce_many(kafka_bootstrap, topics["requests"], [(r["account_id"], r) for r in reqs])
    w = workers.start(env)
    results = wait_results(kafka_bootstrap, topics, len(reqs))
    assert {r["status"] for _, r in results} == {"published"}
    for _, r in results:
        assert r["attempts"] == 1 and r["media_id"] and r["error"] is None
        assert r["worker_id"] == env["WORKER_ID"]
    for account, user in users.items():
        expected = [r["post"]["text"] for r in reqs if r["account_id"] == account]
        assert published_texts(fake, user) == expected  # each once, in request order
    stats = fake.stats()
    assert stats["double_publish_attempts"] == 0
    assert_no_more(kafka_bootstrap, topics["results"], len(reqs))
    assert w.stop() == 0


def test_redelivery_and_reused_post_id_publish_once(worker_env, workers, fake, run_cli, topics,
                                                    kafka_bootstrap):
    env = worker_env()
    user, _ = connect_account(run_cli, env, fake, "acct-dup")
    first = request("acct-dup", post_id="post-dup")
    again = dict(first)  # the same request delivered twice
    reused = request("acct-dup", post_id="post-dup")  # a new event, same post_id
    produce_many(kafka_bootstrap, topics["requests"],
                 [("acct-dup", first), ("acct-dup", again), ("acct-dup", reused)])
    w = workers.start(env)
    results = [r for _, r in wait_results(kafka_bootstrap, topics, 3)]
    assert [r["status"] for r in results] == ["published", "duplicate", "duplicate"]
    assert results[1]["media_id"] == results[0]["media_id"] == results[2]["media_id"]
    assert results[2]["event_id"] == reused["event_id"]
    assert len(published_texts(fake, user)) == 1
    assert_no_more(kafka_bootstrap, topics["results"], 3)  # one result per request
    assert w.stop() == 0


def test_crash_mid_run_loses_nothing_and_doubles_nothing(worker_env, workers, fake, run_cli,
                                                         topics, kafka_bootstrap):
    env = worker_env(WORKER_CONCURRENCY="32")
    accounts = [f"acct-k{i}" for i in range(10)]
    users = {a: connect_account(run_cli, env, fake, a)[0] for a in accounts}
    fake.settings(latency_ms=40)
    reqs = [request(a, post_id=f"{a}-{i}") for i in range(15) for a in accounts]
    produce_many(kafka_bootstrap, topics["requests"], [(r["account_id"], r) for r in reqs])
    w = workers.start(env)
    wait_until(lambda: fake.stats()["publications_total"] >= 40, timeout=60)
    w.kill()  # SIGKILL, mid-run
    w2 = workers.start(worker_env(WORKER_CONCURRENCY="32"))
    wait_until(lambda: fake.stats()["publications_total"] >= len(reqs), timeout=90)
    # Every request answered; redeliveries may add duplicate answers.
    by_post = {}

    def all_answered():
        by_post.update(results_by_post(
            consume_json(kafka_bootstrap, topics["results"], 2 * len(reqs), timeout=3)))
        return len(by_post) >= len(reqs)
    wait_until(all_answered, timeout=60)
    for post_id, answers in by_post.items():
        assert {a["status"] for a in answers} <= {"published", "duplicate"}, answers
    time.sleep(1)
    stats = fake.stats()
    assert stats["double_publish_attempts"] == 0
    for account, user in users.items():
        texts = published_texts(fake, user)
        assert len(texts) == len(set(texts)) == 15  # all out, none twice
        assert texts == [r["post"]["text"] for r in reqs if r["account_id"] == account]
    assert w2.stop() == 0


# One account.events partition, as deploy/kafka/topics.sh makes it: the
# group's sticky assignor balances partition counts, not topics, so with as
# many event partitions as request partitions the second worker may get only
# event partitions (README, Reliability). With 3 + 1 each worker gets two, at
# least one of them a request partition.
@pytest.mark.partitions(3, account_events=1)
def test_two_workers_share_partitions_and_publish_each_post_once(worker_env, workers, fake,
                                                                 run_cli, topics,
                                                                 kafka_bootstrap):
    env = worker_env()
    accounts = [f"acct-s{i}" for i in range(12)]
    users = {a: connect_account(run_cli, env, fake, a)[0] for a in accounts}
    w1 = workers.start(worker_env())
    w2 = workers.start(worker_env())
    w1.wait_ready()
    w2.wait_ready()

    def assigned(w):
        return sum(int(float(line.rsplit(" ", 1)[1])) for line in w.metrics().splitlines()
                   if line.startswith("publish_worker_assigned_partitions"))
    # Ready means joined, not yet given partitions: the group's cooperative
    # rebalance hands the second worker its share a moment later.
    wait_until(lambda: assigned(w1) > 0 and assigned(w2) > 0, timeout=30,
               message="the two workers never shared the partitions")
    reqs = [request(a, post_id=f"{a}-{i}") for i in range(8) for a in accounts]
    produce_many(kafka_bootstrap, topics["requests"], [(r["account_id"], r) for r in reqs])
    results = wait_results(kafka_bootstrap, topics, len(reqs), timeout=90)
    assert {r["status"] for _, r in results} == {"published"}
    workers_used = {r["worker_id"] for _, r in results}
    assert len(workers_used) == 2, workers_used
    for account, user in users.items():  # each once, in order
        assert published_texts(fake, user) == [r["post"]["text"] for r in reqs
                                                if r["account_id"] == account]
    assert fake.stats()["double_publish_attempts"] == 0
    assert w1.stop() == 0 and w2.stop() == 0


def test_sigterm_under_load_exits_0_and_restart_doubles_nothing(worker_env, workers, fake,
                                                                run_cli, topics,
                                                                kafka_bootstrap):
    env = worker_env(WORKER_CONCURRENCY="16")
    accounts = [f"acct-t{i}" for i in range(8)]
    users = {a: connect_account(run_cli, env, fake, a)[0] for a in accounts}
    fake.settings(latency_ms=50)
    reqs = [request(a, post_id=f"{a}-{i}") for i in range(10) for a in accounts]
    produce_many(kafka_bootstrap, topics["requests"], [(r["account_id"], r) for r in reqs])
    w = workers.start(env)
    wait_until(lambda: fake.stats()["publications_total"] >= 20, timeout=60)
    assert w.stop(signal.SIGTERM, timeout=40) == 0
    w2 = workers.start(worker_env(WORKER_CONCURRENCY="16"))
    wait_until(lambda: fake.stats()["publications_total"] >= len(reqs), timeout=90)
    time.sleep(2)
    for user in users.values():
        texts = published_texts(fake, user)
        assert len(texts) == len(set(texts)) == 10
    assert fake.stats()["double_publish_attempts"] == 0
    assert w2.stop() == 0


def test_bad_input_goes_to_dlq_or_failed_and_good_posts_still_go_out(worker_env, workers, fake,
                                                                     run_cli, topics,
                                                                     kafka_bootstrap):
    env = worker_env()
    user, _ = connect_account(run_cli, env, fake, "acct-examples")
    dead = sorted((EXAMPLES / "publish.request.v1" / "dead_letter").iterdir())
    invalid = sorted((EXAMPLES / "publish.request.v1" / "invalid_request").iterdir())
    msgs = [("acct-examples", p.read_bytes()) for p in dead + invalid]
    good = request("acct-examples", post_id="after-the-bad-ones")
    msgs.append(("acct-examples", good))
    produce_many(kafka_bootstrap, topics["requests"], msgs)
    w = workers.start(env)
    results = wait_results(kafka_bootstrap, topics, len(invalid) + 1)
    by_post = {r["post_id"]: r for _, r in results}
    assert by_post["after-the-bad-ones"]["status"] == "published"
    failed = [r for _, r in results if r["post_id"] != "after-the-bad-ones"]
    assert len(failed) == len(invalid)
    for r in failed:
        assert r["status"] == "failed" and r["error"]["class"] == "invalid_request", r
        assert r["error"]["message"]
    letters = consume(kafka_bootstrap, topics["dlq"], len(dead), timeout=30)
    assert len(letters) == len(dead)
    sent = {p.read_bytes(): p.name.split("--")[0] for p in dead}
    for m in letters:
        DLQ_HEADERS_SCHEMA.validate(m.headers)
        assert m.value in sent, m.value  # unchanged
        assert m.headers["error.class"] == sent[m.value]
        assert m.key == "acct-examples"
        assert m.headers["source.topic"] == topics["requests"]
        assert m.headers["worker.id"] == env["WORKER_ID"]
    assert published_texts(fake, user) == [good["post"]["text"]]
    assert w.stop() == 0


def test_transient_failures_are_retried_then_succeed(worker_env, workers, fake, run_cli, topics,
                                                     kafka_bootstrap):
    env = worker_env()
    user, _ = connect_account(run_cli, env, fake, "acct-flaky")
    fake.fail("threads", 500, 2, message="An unexpected error has occurred", count=1,
              user_id=user)
    # Retry-After above the worker's own backoff (~2 s before a third attempt).
    fake.fail("threads_publish", 429, 4, message="Application request limit reached", count=1,
              user_id=user, retry_after=4)
    produce_many(kafka_bootstrap, topics["requests"], [("acct-flaky", request("acct-flaky"))])
    w = workers.start(env)
    (_, result), = wait_results(kafka_bootstrap, topics, 1, timeout=60)
    assert result["status"] == "published"
    assert result["attempts"] == 3
    assert len(published_texts(fake, user)) == 1
    calls = fake.stats()["requests_by_endpoint"]
    assert (calls["threads"], calls["threads_publish"]) == (2, 2)
    delays = [r["delay_ms"] for r in w.log_records()
              if r["msg"] == "publish attempt failed; retrying"]
    assert len(delays) == 2 and delays[1] >= 4000, delays  # Retry-After honoured
    alerts = consume_json(kafka_bootstrap, topics["alerts"], 10, timeout=4)
    for _, a in alerts:
        ALERT_SCHEMA.validate(a)
    assert [a["kind"] for _, a in alerts] == ["rate_limited"]
    assert w.stop() == 0


def test_transient_failures_past_the_limit_fail(worker_env, workers, fake, run_cli, topics,
                                                kafka_bootstrap):
    env = worker_env(PUBLISH_MAX_ATTEMPTS="2")
    user, _ = connect_account(run_cli, env, fake, "acct-down")
    fake.fail("threads", 500, 2, message="An unexpected error has occurred", count=10,
              user_id=user)
    produce_many(kafka_bootstrap, topics["requests"], [("acct-down", request("acct-down"))])
    w = workers.start(env)
    (_, result), = wait_results(kafka_bootstrap, topics, 1, timeout=60)
    assert result["status"] == "failed"
    assert result["attempts"] == 2
    assert result["error"]["class"] == "transient"
    assert result["error"]["http_status"] == 500 and result["error"]["code"] == 2
    assert published_texts(fake, user) == []
    assert w.stop() == 0


def test_media_error_fails_with_the_platform_message(worker_env, workers, fake, run_cli, topics,
                                                     kafka_bootstrap):
    env = worker_env()
    user, _ = connect_account(run_cli, env, fake, "acct-media")
    bad = request("acct-media", media_type="IMAGE", image_url="https://cdn.example/fake-error.jpg")
    produce_many(kafka_bootstrap, topics["requests"], [("acct-media", bad)])
    w = workers.start(env)
    (_, result), = wait_results(kafka_bootstrap, topics, 1)
    assert result["status"] == "failed"
    assert result["error"]["class"] == "media"
    assert "Media download has failed" in result["error"]["message"]
    assert w.stop() == 0


def test_a_media_error_of_the_publish_call_keeps_its_code_and_message(worker_env, workers, fake,
                                                                      run_cli, topics,
                                                                      kafka_bootstrap):
    """threads_publish refuses the container for a media reason (code 24, not
    "not ready"), also after a status check: the result carries Meta's error."""
    env = worker_env()
    user, _ = connect_account(run_cli, env, fake, "acct-pubmedia")
    fake.fail("threads_publish", 400, 24, subcode=2207051, count=5,
              message="Media upload has failed with error code 2207051")
    produce_many(kafka_bootstrap, topics["requests"], [("acct-pubmedia", request("acct-pubmedia"))])
    w = workers.start(env)
    (_, result), = wait_results(kafka_bootstrap, topics, 1)
    assert result["status"] == "failed"
    error = result["error"]
    assert (error["class"], error["code"], error["subcode"]) == ("media", 24, 2207051)
    assert "2207051" in error["message"]
    assert published_texts(fake, user) == []
    assert w.stop() == 0


def test_a_publish_call_that_times_out_after_publishing_is_not_sent_again(
        worker_env, workers, fake, run_cli, topics, kafka_bootstrap):
    """Threads publishes, but its answer comes after the worker's timeout: the
    retry asks the recorded container's status instead of publishing again."""
    env = worker_env(HTTP_TIMEOUT_MS="500")
    user, _ = connect_account(run_cli, env, fake, "acct-late")
    # Published 1 s after the call; the retry comes after 0.5 s + at least 0.8 s.
    fake.settings(latency_ms_by_endpoint={"threads_publish": 1000})
    req = request("acct-late")
    produce_many(kafka_bootstrap, topics["requests"], [("acct-late", req)])
    w = workers.start(env)
    (_, result), = wait_results(kafka_bootstrap, topics, 1)
    # This request's own first attempt published it; its media id was in the
    # lost answer, so the contract's "duplicate" with a null media_id.
    assert (result["status"], result["media_id"], result["attempts"]) == ("duplicate", None, 2)
    assert result["error"] is None
    stats = fake.stats()
    assert stats["requests_by_endpoint"]["threads_publish"] == 1
    assert stats["double_publish_attempts"] == 0
    assert published_texts(fake, user) == [req["post"]["text"]]
    assert_no_more(kafka_bootstrap, topics["results"], 1)
    assert w.stop() == 0


def test_crash_after_publish_before_record_is_a_duplicate(worker_env, workers, fake, run_cli,
                                                          topics, kafka_bootstrap, rds,
                                                          threads_url):
    """The state a crash leaves between threads_publish and recording it: the
    container is recorded, Threads has published it. No second post."""
    import requests as http
    env = worker_env()
    user, token = connect_account(run_cli, env, fake, "acct-crash")
    req = request("acct-crash", post_id="post-crash")
    created = http.post(f"{threads_url}/v1.0/{user}/threads",
                        data={"media_type": "TEXT", "text": req["post"]["text"],
                              "access_token": token}).json()["id"]
    assert http.post(f"{threads_url}/v1.0/{user}/threads_publish",
                     data={"creation_id": created, "access_token": token}).status_code == 200
    rds.hset("pw:{acct-crash}:post:post-crash",
             mapping={"state": "container", "container_id": created,
                      "container_at_ms": int(time.time() * 1000)})
    produce_many(kafka_bootstrap, topics["requests"], [("acct-crash", req)])
    w = workers.start(env)
    (_, result), = wait_results(kafka_bootstrap, topics, 1)
    assert result["status"] == "duplicate"
    assert result["media_id"] is None  # the one case it cannot be known
    assert len(published_texts(fake, user)) == 1
    assert fake.stats()["double_publish_attempts"] == 0
    assert w.stop() == 0


def test_recorded_unpublished_container_is_published_not_rebuilt(worker_env, workers, fake,
                                                                 run_cli, topics,
                                                                 kafka_bootstrap, rds,
                                                                 threads_url):
    import requests as http
    env = worker_env()
    user, token = connect_account(run_cli, env, fake, "acct-half")
    req = request("acct-half", post_id="post-half")
    created = http.post(f"{threads_url}/v1.0/{user}/threads",
                        data={"media_type": "TEXT", "text": req["post"]["text"],
                              "access_token": token}).json()["id"]
    rds.hset("pw:{acct-half}:post:post-half",
             mapping={"state": "container", "container_id": created,
                      "container_at_ms": int(time.time() * 1000)})
    produce_many(kafka_bootstrap, topics["requests"], [("acct-half", req)])
    w = workers.start(env)
    (_, result), = wait_results(kafka_bootstrap, topics, 1)
    assert result["status"] == "published"
    pubs = fake.stats()["publications"][user]
    assert [p["container_id"] for p in pubs] == [created]
    assert fake.stats()["containers_created"] == 1
    assert w.stop() == 0


def test_offsets_are_committed_so_a_restart_answers_nothing_twice(worker_env, workers, fake,
                                                                  run_cli, topics,
                                                                  kafka_bootstrap):
    env = worker_env()
    connect_account(run_cli, env, fake, "acct-c")
    reqs = [request("acct-c", post_id=f"c-{i}") for i in range(5)]
    produce_many(kafka_bootstrap, topics["requests"], [("acct-c", r) for r in reqs])
    w = workers.start(env)
    wait_results(kafka_bootstrap, topics, 5)
    assert w.stop() == 0
    w2 = workers.start(worker_env())
    w2.wait_ready()
    time.sleep(5)
    assert_no_more(kafka_bootstrap, topics["results"], 5)
    assert w2.stop() == 0
