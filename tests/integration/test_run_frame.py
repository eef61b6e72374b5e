"""publish-worker run: probes, group membership, JSON logs, signals."""
import json
import signal

from harness import wait_until


def test_ready_after_joining_and_sigterm_exits_0(worker_env, workers):
    w = workers.start(worker_env())
    w.wait_ready(timeout=30)
    assert w.healthz() == 200
    ready = json.loads(w.get("/readyz"))
    assert ready["redis"] is True and ready["group_joined"] is True
    assert w.stop(signal.SIGTERM, timeout=30) == 0
    records = w.log_records()  # every stdout line is JSON
    msgs = [r["msg"] for r in records]
    assert "worker started" in msgs and "worker stopped" in msgs
    for r in records:
        assert {"ts", "level", "msg"} <= r.keys()


def test_sigint_also_exits_0(worker_env, workers):
    w = workers.start(worker_env())
    w.wait_ready(timeout=30)
    assert w.stop(signal.SIGINT, timeout=30) == 0


def test_liveness_up_and_readiness_down_without_redis(worker_env, workers):
    w = workers.start(worker_env(REDIS_URL="redis://127.0.0.1:1/0"))
    wait_until(lambda: w.healthz() == 200, timeout=20)
    wait_until(lambda: w.readyz() == 503, timeout=20)
    assert json.loads(w.get("/readyz"))["redis"] is False
    assert w.stop(signal.SIGTERM, timeout=30) == 0


def test_bad_configuration_exits_2(worker_env, workers):
    w = workers.start(worker_env(WORKER_CONCURRENCY="0"))
    assert w.wait(timeout=20) == 2
