"""/metrics, /healthz and /readyz of a running worker."""
import subprocess

from harness import produce_many, wait_until
from posts import connect_account, request

EXPECTED = [
    "publish_worker_build_info", "publish_worker_requests_consumed_total",
    "publish_worker_results_total", "publish_worker_errors_total",
    "publish_worker_api_calls_total", "publish_worker_api_call_duration_seconds_bucket",
    "publish_worker_token_refreshes_total", "publish_worker_refresh_lock_waits_total",
    "publish_worker_alerts_total", "publish_worker_posts_in_flight",
    "publish_worker_assigned_partitions", "publish_worker_rebalances_total",
    "publish_worker_consumer_lag", "process_resident_memory_bytes", "process_cpu_seconds_total",
    "process_open_fds", "process_start_time_seconds",
]


def sample(text, name, **labels):
    """The value of one sample, or None."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        if key == (f"{name}{{{want}}}" if labels else name):
            return float(value)
    return None


def test_metrics_follow_prometheus_rules_and_count_posts(worker_env, workers, fake, run_cli,
                                                         topics, kafka_bootstrap):
    env = worker_env()
    user, token = connect_account(run_cli, env, fake, "acct-m")
    w = workers.start(env)
    w.wait_ready()
    produce_many(kafka_bootstrap, topics["requests"],
                 [("acct-m", request("acct-m")) for _ in range(3)] + [("acct-m", b"junk")])
    # Four requests and the token_updated event of the token put, which
    # comes from its own topic and may be read after the posts are answered.
    wait_until(lambda: sample(w.metrics(), "publish_worker_results_total",
                              status="published") == 3 and
               sample(w.metrics(), "publish_worker_requests_consumed_total") == 5, timeout=30)
    text = w.metrics()
    check = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                           capture_output=True)
    assert check.returncode == 0, check.stdout + check.stderr
    for name in EXPECTED:
        assert f"\n{name}" in text or f"# TYPE {name} " in text, name
    for name in EXPECTED[-4:]:  # the process metrics have no labels
        assert sample(text, name) > 0, name
    assert sample(text, "publish_worker_requests_consumed_total") == 5
    assert sample(text, "publish_worker_api_calls_total", endpoint="create_container",
                  status_class="2xx") == 3
    assert sample(text, "publish_worker_assigned_partitions") > 0
    assert "acct-m" not in text and token not in text  # no ids as labels, no secrets
    assert w.stop() == 0
