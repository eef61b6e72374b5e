"""Redis as the worker needs it: taking writes and keeping them.

A failover's demoted primary (READONLY) or a full memory (OOM) must drop the
worker's connections, count in a metric and hold /readyz at 503 while it
lasts, and the post must still go out once afterwards; an evicting
maxmemory-policy must keep the worker unready unless REDIS_ALLOW_EVICTION
says otherwise. These tests change the shared test Redis's role and memory
settings; the test_redis fixture puts them back."""
import json
import subprocess

import pytest
import redis

from harness import consume, consume_json, free_port, produce, wait_until
from posts import connect_account, published_texts, request


def metric(text, name, **labels):
    """The value of one sample on a /metrics page, or None."""
    want = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
                   if labels else "")
    for line in text.splitlines():
        key, _, value = line.rpartition(" ")
        if not line.startswith("#") and key == want:
            return float(value)
    return None


def readyz(worker):
    body = worker.get("/readyz")
    return json.loads(body) if body else {}


def log_with(worker, **fields):
    """The first log record whose fields include these, or None."""
    for record in worker.log_records():
        if all(record.get(k) == v for k, v in fields.items()):
            return record
    return None


@pytest.fixture
def test_redis(redis_url):
    """The shared test Redis; its role and memory settings are restored after
    the test, whatever the test did to them."""
    client = redis.Redis.from_url(redis_url)
    saved = {name: client.config_get(name)[name] for name in ("maxmemory", "maxmemory-policy")}
    yield client
    client.replicaof("NO", "ONE")
    for name, value in saved.items():
        client.config_set(name, value)
    client.close()


@pytest.fixture
def other_redis(tmp_path):
    """A second redis-server of this test's own, to fail over to."""
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path),
         "--logfile", str(tmp_path / "other-redis.log")],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    client = redis.Redis(host="127.0.0.1", port=port)

    def answers():
        try:
            return client.ping()
        except redis.ConnectionError:
            return False
    try:
        wait_until(answers, timeout=10, message="the second redis-server did not start")
        yield client
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def replicate(replica, primary):
    """Makes replica follow primary and waits until it has synchronised."""
    kwargs = primary.connection_pool.connection_kwargs
    replica.replicaof(kwargs["host"], kwargs["port"])
    wait_until(lambda: replica.info("replication").get("master_link_status") == "up",
               timeout=20, message="replication did not come up")


def connections_received(client):
    return client.info("stats")["total_connections_received"]


def wait_one_published(kafka_bootstrap, topics, fake, user, req):
    """The request's one result is `published` after one attempt, and Threads
    got the post once."""
    results = consume_json(kafka_bootstrap, topics["results"], 1, timeout=30)
    assert [r["status"] for _, r in results] == ["published"], results
    assert results[0][1]["attempts"] == 1  # Redis being away spent no attempt
    assert len(consume(kafka_bootstrap, topics["results"], 2, timeout=4)) == 1
    assert published_texts(fake, user) == [req["post"]["text"]]
    assert fake.stats()["double_publish_attempts"] == 0


def test_failover_to_a_demoted_primary_drops_readiness_and_publishes_once_after(
        worker_env, workers, fake, run_cli, topics, kafka_bootstrap, test_redis, other_redis):
    env = worker_env()
    user, _ = connect_account(run_cli, env, fake, "acct-ro")
    replicate(other_redis, test_redis)  # the standby has the token too
    w = workers.start(env).wait_ready()

    # Failover: the standby is promoted and the worker's Redis demoted to its
    # replica (as a Sentinel would), while REDIS_URL still names it.
    other_redis.replicaof("NO", "ONE")
    replicate(test_redis, other_redis)
    before = connections_received(test_redis)
    req = request("acct-ro")
    produce(kafka_bootstrap, topics["requests"], "acct-ro", req)

    wait_until(lambda: w.readyz() == 503, timeout=20,
               message=lambda: f"/readyz stayed {w.readyz()} on a read-only replica:\n{w.tail()}")
    assert readyz(w)["redis"] is False and readyz(w)["redis_problem"] == "readonly"
    assert test_redis.ping()  # PING alone would have called it healthy
    wait_until(lambda: (metric(w.metrics(), "publish_worker_redis_errors_total",
                               kind="readonly") or 0) >= 2, timeout=10)
    record = wait_until(lambda: log_with(w, kind="readonly"), timeout=10)
    assert record["level"] == "error" and "primary" in record["fix"], record
    # Each refusal dropped its connection: the worker keeps reconnecting.
    wait_until(lambda: connections_received(test_redis) >= before + 3, timeout=10)
    assert published_texts(fake, user) == []
    assert w.readyz() == 503

    test_redis.replicaof("NO", "ONE")  # the worker's Redis is the primary again
    wait_until(lambda: w.readyz() == 200, timeout=20,
               message=lambda: f"/readyz not 200 after promotion:\n{w.tail()}")
    wait_one_published(kafka_bootstrap, topics, fake, user, req)
    assert w.readyz() == 200
    assert w.stop() == 0


def test_redis_out_of_memory_drops_readiness_and_publishes_once_after(
        worker_env, workers, fake, run_cli, topics, kafka_bootstrap, test_redis):
    env = worker_env()
    user, _ = connect_account(run_cli, env, fake, "acct-oom")
    w = workers.start(env).wait_ready()

    test_redis.config_set("maxmemory-policy", "noeviction")
    test_redis.config_set("maxmemory", 1)  # every write is now refused with OOM
    req = request("acct-oom")
    produce(kafka_bootstrap, topics["requests"], "acct-oom", req)

    wait_until(lambda: w.readyz() == 503, timeout=20,
               message=lambda: f"/readyz stayed {w.readyz()} with Redis out of memory:\n"
                               f"{w.tail()}")
    assert readyz(w)["redis_problem"] == "oom"
    wait_until(lambda: (metric(w.metrics(), "publish_worker_redis_errors_total",
                               kind="oom") or 0) >= 2, timeout=10)
    record = wait_until(lambda: log_with(w, kind="oom"), timeout=10)
    assert "maxmemory" in record["fix"], record
    assert published_texts(fake, user) == []

    test_redis.config_set("maxmemory", 0)
    wait_until(lambda: w.readyz() == 200, timeout=20,
               message=lambda: f"/readyz not 200 after memory was freed:\n{w.tail()}")
    wait_one_published(kafka_bootstrap, topics, fake, user, req)
    assert w.stop() == 0


def test_evicting_policy_keeps_the_worker_unready_until_noeviction(worker_env, workers,
                                                                    test_redis):
    test_redis.config_set("maxmemory-policy", "volatile-lru")
    w = workers.start(worker_env())
    wait_until(lambda: readyz(w).get("group_joined") is True, timeout=30,
               message=lambda: f"never joined the group:\n{w.tail()}")
    assert w.readyz() == 503, readyz(w)
    assert readyz(w)["redis_problem"] == "evicting"
    record = wait_until(lambda: log_with(w, maxmemory_policy="volatile-lru"), timeout=10)
    assert record["level"] == "error"
    assert "noeviction" in record["fix"] and "REDIS_ALLOW_EVICTION" in record["fix"], record
    page = w.metrics()
    assert metric(page, "publish_worker_redis_evicting") == 1
    assert metric(page, "publish_worker_redis_maxmemory_policy", policy="volatile-lru") == 1

    test_redis.config_set("maxmemory-policy", "noeviction")
    w.wait_ready(timeout=10)
    page = w.metrics()
    assert metric(page, "publish_worker_redis_evicting") == 0
    assert metric(page, "publish_worker_redis_maxmemory_policy", policy="noeviction") == 1
    assert metric(page, "publish_worker_redis_maxmemory_policy", policy="volatile-lru") == 0
    assert w.stop() == 0


def test_evicting_policy_with_the_opt_in_is_ready_and_says_so(worker_env, workers, test_redis):
    test_redis.config_set("maxmemory-policy", "allkeys-lru")
    w = workers.start(worker_env(REDIS_ALLOW_EVICTION="true")).wait_ready()
    assert metric(w.metrics(), "publish_worker_redis_evicting") == 1
    record = wait_until(lambda: log_with(w, maxmemory_policy="allkeys-lru"), timeout=10)
    assert record["level"] == "warn" and "REDIS_ALLOW_EVICTION" in record["msg"], record
    assert w.stop() == 0


def test_a_policy_changed_while_running_is_noticed(worker_env, workers, test_redis):
    w = workers.start(worker_env()).wait_ready()
    test_redis.config_set("maxmemory-policy", "allkeys-lfu")
    # Read again every 30 s or so.
    wait_until(lambda: w.readyz() == 503, timeout=45,
               message=lambda: f"an evicting policy set at run time went unnoticed:\n{w.tail()}")
    assert readyz(w)["redis_problem"] == "evicting"
    test_redis.config_set("maxmemory-policy", "noeviction")
    w.wait_ready(timeout=10)
    assert w.stop() == 0


def test_check_config_reports_the_redis_policy(run_cli, worker_env, test_redis):
    test_redis.config_set("maxmemory-policy", "volatile-lru")
    res = run_cli(["check-config"], env=worker_env())
    assert res.returncode == 2, res.stdout + res.stderr
    assert "volatile-lru" in res.stderr and "REDIS_ALLOW_EVICTION" in res.stderr
    assert "CONFIG SET maxmemory-policy noeviction" in res.stderr

    res = run_cli(["check-config"], env=worker_env(REDIS_ALLOW_EVICTION="true"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "volatile-lru" in res.stdout

    test_redis.config_set("maxmemory-policy", "noeviction")
    res = run_cli(["check-config"], env=worker_env())
    assert res.returncode == 0, res.stdout + res.stderr
    assert "maxmemory-policy noeviction" in res.stdout


def test_check_config_without_redis_passes_and_says_it_did_not_check(run_cli, worker_env):
    res = run_cli(["check-config"], env=worker_env(REDIS_URL="redis://127.0.0.1:1/0"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "not checked" in res.stderr and "127.0.0.1:1/0" in res.stderr


def test_check_config_refuses_a_bad_allow_eviction_value(run_cli, worker_env):
    res = run_cli(["check-config"], env=worker_env(REDIS_ALLOW_EVICTION="maybe"))
    assert res.returncode == 2
    assert "REDIS_ALLOW_EVICTION" in res.stderr
