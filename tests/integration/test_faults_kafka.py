"""Kafka and the worker process failing while posts of many accounts are in
flight: a broker of the real cluster hung (SIGSTOP), stopped (SIGTERM) or
killed (SIGKILL) and brought back, partition leadership moved by Kafka's own
tools, produce and offset-commit requests refused with retriable errors (on
the mock cluster, the one place such errors can be injected), a second worker
joining and leaving the group, and the worker killed (SIGKILL) five times in
one run. After each: every request answered, each post published at most
once (exactly once where answered so), in order per account, and nothing
committed past an unanswered request (invariants.py).

The clusters are shared by the whole session: brokers are brought back and
injected errors cleared in a finally."""
import time

import pytest

import harness
from harness import wait_until

ACCOUNTS = 12
# Keep group changes short (the brokers allow session timeouts from 1 s).
QUICK_GROUP = {"RDKAFKA_SESSION_TIMEOUT_MS": "3000", "RDKAFKA_HEARTBEAT_INTERVAL_MS": "300"}


def accounts(tag):
    return [f"acct-{tag}{i:02d}" for i in range(ACCOUNTS)]


def metric(worker, name):
    for line in worker.metrics().splitlines():
        key, _, value = line.rpartition(" ")
        if key == name:
            return float(value)
    return None


def leader_of(kafka_bootstrap, topic, partition):
    from confluent_kafka.admin import AdminClient
    meta = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(topic, timeout=10)
    return meta.topics[topic].partitions[partition].leader


# How a broker goes away and comes back: (control commands, seconds away).
# A hung broker (SIGSTOP) keeps its connections open and answers nothing
# until the controller fences it (6 s); a killed one (SIGKILL) refuses
# connections at once; a stopped one (SIGTERM) hands its leaderships over
# first (controlled shutdown). The worker keeps its default
# message.timeout.ms (60 s), longer than the failover, as production should:
# a broker that goes away may have written a result whose ack it never sent,
# and a result that timed out is produced again by the worker, a second
# byte-identical copy the idempotent producer cannot remove (it only removes
# duplicates within librdkafka's own retries). With a 2 s timeout both the
# hung and the killed runs doubled 56 of 96 results. The worker's own
# retries of timed-out results are tested on the mock cluster, whose down
# broker certainly wrote nothing (test_results_that_time_out_...).
BROKER_FAULTS = {
    "hung": ("stop", "cont", 8),
    "killed": ("kill", "start", 4),
    "stopped": ("term", "start", 4),
}


@pytest.mark.parametrize("fault", list(BROKER_FAULTS))
def test_a_broker_down_and_back_mid_run_loses_and_doubles_nothing(
        fault, worker_env, workers, fake, run_cli, fault_run, topics, kafka_bootstrap,
        kafka_control):
    # The partitions' leadership moves to the other two brokers (three
    # replicas, two in sync); results wait for it, their requests held
    # uncommitted; the broker comes back and catches up.
    down, up, away_s = BROKER_FAULTS[fault]
    env = worker_env(WORKER_CONCURRENCY="8")
    run = fault_run.connect(run_cli, env, accounts("broker"))
    # Enough posts that a broker's graceful stop (seconds of controlled
    # shutdown) still finds them running.
    run.produce(run.make_requests(20))
    broker = leader_of(kafka_bootstrap, topics["results"], 0)
    fake.settings(latency_ms=150)
    w = workers.start(env)
    wait_until(lambda: run.published() >= 15, timeout=30)
    try:
        kafka_control(f"{down} {broker}")
        assert run.answered() < len(run.reqs), "all posts were answered before the broker went down"
        time.sleep(away_s)
    finally:
        kafka_control(f"{up} {broker}", check=False)
    run.wait_answered(timeout=120, workers=[w])
    run.check()
    # When the down broker was also the group's coordinator, the worker lost
    # its group meanwhile and its commits wait until it is back: they must
    # catch up then (a slow machine may take a while to rejoin).
    wait_until(lambda: run.all_committed()[0], timeout=60,
               message=lambda: f"commits never caught up: {run.all_committed()[1]}")
    assert w.stop() == 0
    run.check_all_committed()
    wait_until(lambda: kafka_control("nodes") == "OK 1:running 2:running 3:running", timeout=30)


def test_partition_leadership_moved_mid_run_loses_and_doubles_nothing(
        worker_env, workers, fake, run_cli, fault_run, topics, kafka_bootstrap, kafka_cluster):
    # Every partition of the requests and results topics gets a new leader
    # while posts run (harness.move_leaders: kafka-reassign-partitions, then
    # kafka-leader-election): the consumer fetches and the producer writes
    # through the new leaders, nothing lost, doubled or committed early.
    env = worker_env(WORKER_CONCURRENCY="8")
    run = fault_run.connect(run_cli, env, accounts("leader"))
    # Enough posts that they still run while Kafka's tools (a JVM each)
    # move the leaders.
    run.produce(run.make_requests(20))
    fake.settings(latency_ms=150)
    w = workers.start(env)
    wait_until(lambda: run.published() >= 15, timeout=30)
    before = {role: harness.partition_replicas(kafka_bootstrap, topics[role])
              for role in ("requests", "results")}
    harness.move_leaders(kafka_cluster, {topics[role]: parts for role, parts in before.items()})
    assert run.answered() < len(run.reqs), "all posts were answered before leadership moved"

    def leaders_moved():
        return all(harness.leader(kafka_bootstrap, topics[role], p) == replicas[1]
                   for role in before for p, replicas in before[role].items())

    wait_until(leaders_moved, timeout=30, message=lambda: f"leaders did not all move from {before}")
    run.wait_answered(timeout=90, workers=[w])
    run.check()
    wait_until(lambda: run.all_committed()[0], timeout=60,
               message=lambda: f"commits never caught up: {run.all_committed()[1]}")
    assert w.stop() == 0
    run.check_all_committed()


@pytest.mark.mock_kafka
def test_results_that_time_out_on_a_down_broker_are_produced_again(
        worker_env, workers, fake, run_cli, fault_run, topics, kafka_bootstrap, kafka_control):
    # Results queued for the down mock broker time out after 2 s and are
    # produced again by the worker (delivery.c), with their requests held
    # uncommitted. The mock's down broker writes nothing it was sent, so a
    # second copy can only come from the worker.
    env = worker_env(WORKER_CONCURRENCY="8", RDKAFKA_MESSAGE_TIMEOUT_MS="2000")
    run = fault_run.connect(run_cli, env, accounts("broker"))
    # Enough posts that a broker's graceful stop (seconds of controlled
    # shutdown) still finds them running.
    run.produce(run.make_requests(20))
    broker = leader_of(kafka_bootstrap, topics["results"], 0)
    fake.settings(latency_ms=150)
    w = workers.start(env)
    wait_until(lambda: run.published() >= 15, timeout=30)
    try:
        kafka_control(f"down {broker}")
        assert run.answered() < len(run.reqs), "all posts were answered before the broker went down"
        time.sleep(4)
    finally:
        kafka_control(f"up {broker}")
    run.wait_answered(timeout=90, workers=[w])
    run.check()
    failures = metric(w, 'publish_worker_delivery_failures_total{kind="retriable"}')
    assert failures and failures > 0, "no result waited for the broker"
    wait_until(lambda: run.all_committed()[0], timeout=60,
               message=lambda: f"commits never caught up: {run.all_committed()[1]}")
    assert w.stop() == 0
    run.check_all_committed()


@pytest.mark.mock_kafka
def test_produce_errors_are_retried_and_never_answer_twice(
        worker_env, workers, fake, run_cli, fault_run, kafka_control):
    env = worker_env(WORKER_CONCURRENCY="8")
    run = fault_run.connect(run_cli, env, accounts("produce"))
    run.produce(run.make_requests(4))  # before the errors: they hit any producer
    fake.settings(latency_ms=50)
    try:
        for error, count in [("NOT_LEADER_FOR_PARTITION", 3), ("_TRANSPORT", 2),
                             ("NOT_ENOUGH_REPLICAS", 2), ("REQUEST_TIMED_OUT", 2)]:
            kafka_control(f"error Produce {error} {count}")
        w = workers.start(env)
        run.wait_answered(timeout=60, workers=[w])
    finally:
        kafka_control("clear Produce")
    run.check()
    assert w.stop() == 0
    run.check_all_committed()


@pytest.mark.mock_kafka
def test_commit_errors_never_commit_past_an_unanswered_request(
        worker_env, workers, fake, run_cli, fault_run, kafka_control):
    env = worker_env(WORKER_CONCURRENCY="8")
    run = fault_run.connect(run_cli, env, accounts("commit"))
    run.produce(run.make_requests(4))
    fake.settings(latency_ms=50)
    try:
        for error, count in [("COORDINATOR_NOT_AVAILABLE", 3), ("NOT_COORDINATOR", 2),
                             ("REQUEST_TIMED_OUT", 2), ("COORDINATOR_LOAD_IN_PROGRESS", 2)]:
            kafka_control(f"error OffsetCommit {error} {count}")
        w = workers.start(env)
        run.wait_answered(timeout=60, workers=[w])
        run.check()
    finally:
        kafka_control("clear OffsetCommit")
    assert w.stop() == 0
    run.check_all_committed()  # the commits that failed were made good


@pytest.mark.partitions(4)
def test_a_worker_joining_and_leaving_mid_run_loses_and_doubles_nothing(
        worker_env, workers, fake, run_cli, fault_run, topics, kafka_bootstrap):
    # One partition of account events: the assignor balances partitions of
    # both topics, so the joining worker surely gets requests to answer.
    events = topics["account_events"] + "-1"
    harness.create_topics(kafka_bootstrap, [events], 1)
    settings = dict(WORKER_CONCURRENCY="6", TOPIC_ACCOUNT_EVENTS=events, **QUICK_GROUP)
    env = worker_env(**settings)
    run = fault_run.connect(run_cli, env, accounts("rebalance"))
    run.produce(run.make_requests(12))
    fake.settings(latency_ms=200)
    first = workers.start(env)
    wait_until(lambda: run.published() >= 10, timeout=30)
    second = workers.start(worker_env(**settings))
    # The second takes partitions over (the first finishes what runs on
    # them and commits), answers some posts, and leaves while posts run.
    wait_until(lambda: sum(r["worker_id"] == second.env["WORKER_ID"] for r in run.results()) >= 5,
               timeout=30, message=lambda: f"the second worker answered nothing:\n{second.tail()}")
    assert run.answered() < len(run.reqs), "all posts were answered before the second left"
    assert second.stop() == 0
    assert run.answered() < len(run.reqs), "all posts were answered when the second left"
    run.wait_answered(timeout=60, workers=[first])
    run.check()
    assert (metric(first, "publish_worker_rebalances_total") or 0) >= 3  # joined, shared, took back
    assert first.stop() == 0
    run.check_all_committed()


def test_five_sigkills_in_one_run_lose_and_double_nothing(worker_env, workers, fake, run_cli,
                                                          fault_run):
    env = worker_env(WORKER_CONCURRENCY="8", **QUICK_GROUP)
    run = fault_run.connect(run_cli, env, accounts("kill"))
    run.produce(run.make_requests(10))
    fake.settings(latency_ms=100)
    for kill in range(5):
        w = workers.start(env)
        before = run.published()
        wait_until(lambda: run.published() >= before + 6, timeout=30,
                   message=lambda: f"no progress before kill {kill + 1}:\n{w.tail()}")
        assert w.kill() == -9
    assert run.published() < len(run.reqs), "all posts were out before the fifth kill"
    last = workers.start(env)
    run.wait_answered(timeout=90, workers=[last])
    run.check()
    assert last.stop() == 0
    run.check_all_committed()
