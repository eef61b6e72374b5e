"""The fault tests' checker (invariants.py) catches what it is there to catch:
a commit past an unanswered request, a post published twice, a result
produced twice. No worker: the test plays the worker's part badly."""
import json
import time
import uuid

import pytest
import requests as http
from confluent_kafka import Consumer, TopicPartition

from harness import produce_many
from posts import request


def answer(req, media_id):
    return {"schema": "publish.result.v1", "event_id": req["event_id"],
            "post_id": req["post_id"], "account_id": req["account_id"], "status": "published",
            "media_id": media_id, "error": None, "attempts": 1, "token_refreshed": False,
            "worker_id": "test", "finished_at": "2026-11-25T20:00:01.532Z"}


def inv_request(i):
    return request("acct-inv", post_id=f"inv-{i}-{uuid.uuid4().hex[:6]}", text=f"inv {i}")


def publish(threads_url, user, token, text):
    """Publishes text as user on the fake API; returns the media id."""
    created = http.post(f"{threads_url}/v1.0/{user}/threads", timeout=10,
                        data={"media_type": "TEXT", "text": text, "access_token": token})
    published = http.post(f"{threads_url}/v1.0/{user}/threads_publish", timeout=10,
                          data={"creation_id": created.json()["id"], "access_token": token})
    return published.json()["id"]


@pytest.mark.partitions(1)
def test_a_commit_past_an_unanswered_request_is_seen(fault_run, topics, kafka_bootstrap):
    reqs = [inv_request(i) for i in range(3)]
    fault_run.produce(reqs)
    produce_many(kafka_bootstrap, topics["results"], [("acct-inv", answer(reqs[0], "1"))])
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": topics["group_id"],
                         "enable.auto.commit": False})
    try:  # offset 2 committed: past the request at offset 1, which has no result
        consumer.commit(offsets=[TopicPartition(topics["requests"], 0, 2)], asynchronous=False)
    finally:
        consumer.close()
    fault_run.observer.wait_samples(2)
    assert fault_run.observer.violations, "the commit past offset 1 went unseen"
    assert "offset 1" in fault_run.observer.violations[0]


def test_a_post_published_twice_and_a_result_produced_twice_are_seen(
        fault_run, fake, threads_url, topics, kafka_bootstrap):
    user, token = "u-inv", f"tok-{uuid.uuid4().hex}"
    fake.register_token(token, user)
    fault_run.users["acct-inv"] = user
    reqs = [inv_request(i) for i in range(2)]
    fault_run.produce(reqs)
    media = [publish(threads_url, user, token, r["post"]["text"]) for r in reqs]
    results = [answer(r, m) for r, m in zip(reqs, media)]
    produce_many(kafka_bootstrap, topics["results"], [("acct-inv", r) for r in results])
    fault_run.check()  # as it should be: passes

    publish(threads_url, user, token, reqs[1]["post"]["text"])
    with pytest.raises(AssertionError, match="published twice"):
        fault_run.check(settle_s=0)

    fault_run.fake.reset()
    fake.register_token(token, user)
    for r in reqs:
        publish(threads_url, user, token, r["post"]["text"])
    produce_many(kafka_bootstrap, topics["results"], [("acct-inv", json.dumps(results[0]))])
    time.sleep(0.5)
    with pytest.raises(AssertionError, match="produced twice"):
        fault_run.check(settle_s=0.5)
