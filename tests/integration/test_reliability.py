"""Promises under the faults production brings: one busy account never stalls
the others, memory is bounded in bytes, keys never collide. Black box: the
real worker against the real local servers."""
import time
import zlib

import pytest

from harness import produce_many, wait_until
from posts import connect_account, published_texts, request

PARTITIONS = 3


def partition_of(key, partitions=PARTITIONS):
    """The partition librdkafka's default partitioner (consistent_random:
    CRC-32 of the key) gives a keyed message."""
    return zlib.crc32(key.encode()) % partitions


def metric(worker, name):
    """The value of an unlabelled metric, or None."""
    for line in worker.metrics().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


@pytest.mark.partitions(PARTITIONS)
def test_a_hot_account_does_not_stall_the_others(worker_env, workers, fake, run_cli, topics,
                                                 kafka_bootstrap):
    env = worker_env(WORKER_CONCURRENCY="8")
    hot = "acct-hot"
    cold = next(a for a in (f"acct-cold-{i}" for i in range(100))
                if partition_of(a) != partition_of(hot))
    hot_user, _ = connect_account(run_cli, env, fake, hot)
    cold_user, _ = connect_account(run_cli, env, fake, cold)
    # The hot account's posts go out one at a time, slowly, past Meta's 250 a day.
    fake.settings(latency_ms=50, quota_total=1000000)
    acks = produce_many(kafka_bootstrap, topics["requests"],
                        [(hot, request(hot, post_id=f"hot-{i}")) for i in range(3000)])
    assert {p for p, _ in acks} == {partition_of(hot)}
    w = workers.start(env)
    # The hot partition fills the worker's buffer for it.
    wait_until(lambda: (metric(w, "publish_worker_posts_in_flight") or 0) >= 1024, timeout=60,
               message=lambda: f"buffer never filled:\n{w.tail()}")
    started = time.monotonic()
    cold_reqs = [request(cold, post_id=f"cold-{i}", text=f"cold {i}") for i in range(5)]
    acks = produce_many(kafka_bootstrap, topics["requests"], [(cold, r) for r in cold_reqs])
    assert all(p != partition_of(hot) for p, _ in acks)
    wait_until(lambda: len(published_texts(fake, cold_user)) == 5, timeout=15,
               message=lambda: f"cold account stalled behind the hot one:\n{w.tail()}")
    assert published_texts(fake, cold_user) == [f"cold {i}" for i in range(5)]
    print(f"cold account published in {time.monotonic() - started:.1f}s")
    assert len(published_texts(fake, hot_user)) < 2000  # the hot one still has plenty queued
    assert metric(w, "publish_worker_paused_partitions") == 1
    w.kill()


@pytest.mark.partitions(1)
def test_buffer_is_bounded_in_bytes(worker_env, workers, fake, run_cli, topics, kafka_bootstrap):
    """Large requests (unknown fields are allowed) of a slow account: the
    worker buffers about WORKER_BUFFER_BYTES of them, not 1,024 messages."""
    limit = 4 * 1024 * 1024
    env = worker_env(WORKER_CONCURRENCY="4", WORKER_BUFFER_BYTES=str(limit))
    user, _ = connect_account(run_cli, env, fake, "acct-big")
    fake.settings(latency_ms=200)
    padding = "x" * (200 * 1024)
    reqs = [request("acct-big", post_id=f"big-{i}", padding=padding) for i in range(60)]
    produce_many(kafka_bootstrap, topics["requests"], [("acct-big", r) for r in reqs])
    w = workers.start(env)
    wait_until(lambda: metric(w, "publish_worker_paused_partitions") == 1, timeout=30,
               message=lambda: f"never paused:\n{w.metrics()}")
    buffered = metric(w, "publish_worker_buffered_bytes")
    assert 0 < buffered <= limit + len(padding) + 4096, buffered
    assert metric(w, "publish_worker_posts_in_flight") < 30  # bytes, not 1,024 messages, bound it
    wait_until(lambda: len(published_texts(fake, user)) >= 3, timeout=30)
    w.kill()


def test_long_post_ids_sharing_a_prefix_are_two_posts(worker_env, workers, fake, run_cli, topics,
                                                      kafka_bootstrap):
    """Ids of 128 characters are up to 512 bytes: their keys are never cut,
    so two ids that differ only at the end are two posts."""
    env = worker_env()
    user, _ = connect_account(run_cli, env, fake, "acct-long")
    prefix = "\u3042" * 126  # 378 bytes of UTF-8
    reqs = [request("acct-long", post_id=prefix + "-1", text="one"),
            request("acct-long", post_id=prefix + "-2", text="two")]
    produce_many(kafka_bootstrap, topics["requests"], [("acct-long", r) for r in reqs])
    w = workers.start(env)
    wait_until(lambda: len(published_texts(fake, user)) == 2, timeout=30,
               message=lambda: f"published {published_texts(fake, user)}:\n{w.tail()}")
    assert published_texts(fake, user) == ["one", "two"]
    assert w.stop() == 0


def committed_offset(bootstrap, group_id, topic, partition=0):
    """The group's committed offset of topic/partition (-1001: none)."""
    from confluent_kafka import Consumer, TopicPartition
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group_id,
                         "enable.auto.commit": False})
    try:
        return consumer.committed([TopicPartition(topic, partition)], timeout=10)[0].offset
    finally:
        consumer.close()


@pytest.mark.partitions(1)
@pytest.mark.topic_config(results={"max.message.bytes": "200"})
def test_a_result_kafka_refuses_for_good_is_never_committed_past(worker_env, workers, fake,
                                                                 run_cli, topics, kafka_bootstrap):
    """A permanent delivery error (here: the results topic's max.message.bytes
    is smaller than a result) is not produced again in a loop: the worker
    stops being ready, counts it, says what to fix, and leaves the request
    uncommitted, so a restart after the fix answers it."""
    env = worker_env()
    connect_account(run_cli, env, fake, "acct-refused")
    produce_many(kafka_bootstrap, topics["requests"],
                 [("acct-refused", request("acct-refused", post_id="refused-1"))])
    w = workers.start(env)
    wait_until(lambda: w.readyz() == 503 and
               (metric(w, 'publish_worker_delivery_failures_total{kind="permanent"}') or 0) >= 1,
               timeout=30, message=lambda: f"still ready:\n{w.tail()}")
    fix = [r for r in w.log_records() if r.get("msg", "").startswith("message cannot be")]
    assert fix and fix[0]["topic"] == topics["results"], fix
    assert "max.message.bytes" in fix[0]["fix"], fix
    time.sleep(3)  # commits happen every second: nothing may be committed past it
    assert committed_offset(kafka_bootstrap, topics["group_id"], topics["requests"]) < 1
    w.kill()
    from confluent_kafka.admin import AdminClient, ConfigResource
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    fixed = ConfigResource("topic", topics["results"], {"max.message.bytes": "1048588"})
    for future in admin.alter_configs([fixed]).values():
        future.result(30)
    w2 = workers.start(worker_env())
    from harness import consume_json
    results = consume_json(kafka_bootstrap, topics["results"], 1, timeout=30)
    assert [r["status"] for _, r in results] == ["duplicate"]  # published once, answered now
    wait_until(lambda: w2.readyz() == 200, timeout=15)
    wait_until(lambda: committed_offset(kafka_bootstrap, topics["group_id"],
                                        topics["requests"]) == 1, timeout=15)
    assert len(fake.stats()["publications"]["u-acct-refused"]) == 1
    assert w2.stop() == 0


@pytest.mark.partitions(1)
@pytest.mark.topic_config(dlq={"max.message.bytes": "20000"})
def test_a_dead_letter_too_large_for_its_topic_is_cut_to_fit(worker_env, workers, topics,
                                                             kafka_bootstrap):
    env = worker_env()
    produce_many(kafka_bootstrap, topics["requests"], [("k", b"x" * 100000)])
    w = workers.start(env)
    from harness import consume
    dead = consume(kafka_bootstrap, topics["dlq"], 1, timeout=30)
    assert len(dead) == 1, w.tail()
    assert dead[0].headers["error.class"] == "not_json"
    assert "100000" in dead[0].headers["error.truncated"]
    assert dead[0].value == b"x" * 16384
    wait_until(lambda: committed_offset(kafka_bootstrap, topics["group_id"],
                                        topics["requests"]) == 1, timeout=15)
    assert w.readyz() == 200
    assert w.stop() == 0


@pytest.mark.partitions(1)
def test_shutdown_cancels_a_hung_api_call(worker_env, workers, fake, run_cli, topics,
                                          kafka_bootstrap):
    """SHUTDOWN_TIMEOUT_S bounds shutdown even when a call would run to
    HTTP_TIMEOUT_MS: the wait is cancelled, the post stays uncommitted and a
    restart publishes it once."""
    env = worker_env(HTTP_TIMEOUT_MS="60000", SHUTDOWN_TIMEOUT_S="2")
    user, _ = connect_account(run_cli, env, fake, "acct-hang")
    fake.fail("threads", kind="hang", hang_ms=60000, count=1, user_id=user)
    produce_many(kafka_bootstrap, topics["requests"],
                 [("acct-hang", request("acct-hang", post_id="hang-1", text="hung"))])
    w = workers.start(env)
    wait_until(lambda: fake.stats().get("injected_failures", {}).get("hang", 0) >= 1, timeout=30)
    started = time.monotonic()
    assert w.stop(timeout=25) == 0
    took = time.monotonic() - started
    assert took < 10, f"shutdown took {took:.1f}s"
    w2 = workers.start(worker_env())
    wait_until(lambda: published_texts(fake, user) == ["hung"], timeout=30)
    time.sleep(1)
    assert published_texts(fake, user) == ["hung"]
    assert w2.stop() == 0
