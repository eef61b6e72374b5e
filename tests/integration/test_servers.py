"""The harness against the real local servers: if these fail, every other
integration test is suspect."""

import json
import os
import time
import uuid

import pytest
import requests
from confluent_kafka import Consumer, Producer

from harness import consume, consume_json, produce, produce_many, wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FAKE_BIN = os.path.join(os.environ.get("PW_BUILD_DIR") or os.path.join(ROOT, "build"),
                        "tests", "tools", "fake-threads")


def test_kafka_round_trip_with_idempotent_producer_and_cooperative_group(kafka_bootstrap, topics):
    topic = topics["requests"]
    sent = [(f"acct-{i % 4}", {"n": i}, [("h", f"v{i}")]) for i in range(20)]
    produce_many(kafka_bootstrap, topic, sent)

    consumer = Consumer({
        "bootstrap.servers": kafka_bootstrap, "group.id": topics["group_id"],
        "partition.assignment.strategy": "cooperative-sticky", "auto.offset.reset": "earliest",
        "enable.auto.commit": False, "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
    try:  # an unclosed group consumer hangs the interpreter's exit
        consumer.subscribe([topic])
        got, deadline = [], time.monotonic() + 30
        while len(got) < len(sent) and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None and not msg.error():
                got.append(msg)
        assert len(got) == len(sent)
        assert len(consumer.assignment()) == 3
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()

    by_n = {json.loads(m.value())["n"]: m for m in got}
    assert sorted(by_n) == list(range(20))
    assert by_n[5].key() == b"acct-1" and by_n[5].headers() == [("h", b"v5")]
    # one account's messages keep their order within its partition
    acct1 = [m.offset() for m in got if m.key() == b"acct-1"]
    assert acct1 == sorted(acct1)

    # the harness reader sees the same, with decoded headers
    msgs = consume(kafka_bootstrap, topic, 20, timeout=10)
    assert {m.headers["h"] for m in msgs} == {f"v{i}" for i in range(20)}
    pairs = consume_json(kafka_bootstrap, topic, 20)
    assert sorted(v["n"] for _, v in pairs) == list(range(20))
    assert {k for k, _ in pairs} == {f"acct-{i}" for i in range(4)}


@pytest.mark.mock_kafka
def test_kafka_broker_down_and_up_through_control_port(kafka_bootstrap, kafka_control, topics):
    topic = topics["results"]
    kafka_control(f"leader {topic} 0 1")
    kafka_control(f"leader {topic} 1 2")
    assert kafka_control("ping") == "OK pong"
    assert kafka_control("down 9", check=False).startswith("ERR")
    try:
        assert kafka_control("down 1") == "OK down"
        # partition 1 (broker 2) still takes writes; partition 0 (broker 1) waits
        producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
        acked = []
        producer.produce(topic, value=b"p0", partition=0, on_delivery=lambda e, m: acked.append(0))
        producer.produce(topic, value=b"p1", partition=1, on_delivery=lambda e, m: acked.append(1))

        def delivered():
            producer.poll(0.1)
            return 1 in acked

        wait_until(delivered, 15)
        assert acked == [1]
    finally:
        assert kafka_control("up 1") == "OK up"
    assert producer.flush(30) == 0 and sorted(acked) == [0, 1]
    assert produce(kafka_bootstrap, topic, None, b"after", headers=None)[0] in (0, 1, 2)


@pytest.mark.mock_kafka
def test_kafka_error_injection(kafka_bootstrap, kafka_control, topics):
    kafka_control("error Produce NOT_LEADER_FOR_PARTITION 2")
    produce(kafka_bootstrap, topics["alerts"], "k", b"v")  # retried through the errors
    assert len(consume(kafka_bootstrap, topics["alerts"], 1, timeout=10)) == 1


def test_redis(rds):
    assert rds.ping()
    assert rds.dbsize() == 0
    rds.set("pw:test", "1")
    assert rds.get("pw:test") == b"1"


def test_fake_threads_publishes_a_text_post(threads_url, fake):
    if not os.access(FAKE_BIN, os.X_OK):
        pytest.skip(f"{FAKE_BIN} is not built yet")
    user, token = "u-" + uuid.uuid4().hex[:8], "tok-" + uuid.uuid4().hex
    fake.register_token(token, user)
    r = requests.post(f"{threads_url}/v1.0/{user}/threads",
                      data={"media_type": "TEXT", "text": "hello", "access_token": token})
    assert r.status_code == 200, r.text
    container = r.json()["id"]
    status = requests.get(f"{threads_url}/v1.0/{container}",
                          params={"fields": "status,error_message", "access_token": token})
    assert status.json()["status"] == "FINISHED", status.text
    r = requests.post(f"{threads_url}/v1.0/{user}/threads_publish",
                      data={"creation_id": container, "access_token": token})
    assert r.status_code == 200, r.text
    stats = fake.stats()
    assert stats["publications_total"] == 1
    assert stats["publications"][user][0]["text"] == "hello"
    assert token in fake.issued_tokens()
    assert fake.current_token(user)["access_token"] == token
