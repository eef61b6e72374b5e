"""The worker on a secured Kafka: SASL_SSL with SCRAM-SHA-512, the brokers'
certificate from a test CA made at start (deploy/kafka/cluster.py), and
StandardAuthorizer ACLs granted with deploy/kafka/worker-acls.sh, the
command the README's production quick start gives. The worker is configured
with RDKAFKA_* settings only; the tests' own clients (producing requests,
reading results and commits) use the PLAINTEXT listener."""
import os
import re
import subprocess
import time

import pytest

import harness
from harness import ROOT, consume_json, wait_until
from posts import connect_account

ACCOUNTS = 4


def librdkafka_version():
    from confluent_kafka import libversion
    return tuple(int(x) for x in libversion()[0].split(".")[:3])


@pytest.fixture
def sasl(kafka_cluster):
    """The RDKAFKA_* settings of the user `worker` on the SASL_SSL listener."""
    version = tuple(int(x) for x in kafka_cluster["VERSION"].split(".")[:2])
    if version >= (4, 0) and librdkafka_version() < (2, 6, 1):
        # librdkafka before 2.6.1 (confluentinc/librdkafka#4895) appends the
        # client nonce twice in the SCRAM client-final message; Kafka 4
        # checks the nonce strictly (RFC 5802) and refuses the login as
        # "invalid credentials". deploy/dev pins Kafka 3.9 for this reason.
        pytest.skip(f"SCRAM from librdkafka {'.'.join(map(str, librdkafka_version()))} to "
                    f"Kafka {kafka_cluster['VERSION']} fails (needs librdkafka 2.6.1)")
    return {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_cluster["SASL_BOOTSTRAP"],
        "RDKAFKA_SECURITY_PROTOCOL": "sasl_ssl",
        "RDKAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "RDKAFKA_SASL_USERNAME": kafka_cluster["WORKER_USER"],
        "RDKAFKA_SASL_PASSWORD": kafka_cluster["WORKER_PASSWORD"],
        "RDKAFKA_SSL_CA_LOCATION": kafka_cluster["CA"],
    }


def grant_worker_acls(kafka_cluster, topics, **names):
    """deploy/kafka/worker-acls.sh for this test's topics and group; names
    (role=topic) replaces a topic's name, so an ACL lands elsewhere."""
    names = {**topics, **names}
    env = {**os.environ, "JARS": kafka_cluster["JARS"],
           "ADMIN_CONFIG": kafka_cluster["ADMIN_CONFIG"],
           "TOPIC_PUBLISH_REQUESTS": names["requests"],
           "TOPIC_PUBLISH_RESULTS": names["results"], "TOPIC_ALERTS": names["alerts"],
           "TOPIC_DEAD_LETTER": names["dlq"], "TOPIC_ACCOUNT_EVENTS": names["account_events"]}
    res = subprocess.run([ROOT / "deploy" / "kafka" / "worker-acls.sh",
                          kafka_cluster["SASL_BOOTSTRAP"], f"User:{kafka_cluster['WORKER_USER']}",
                          topics["group_id"]], env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    # Each broker's authorizer applies the new ACLs from the metadata log in
    # its own time: a worker's JoinGroup reached a coordinator that had not
    # yet ("Group authorization failed", then fine 2 s later).
    harness.await_metadata_on_every_broker(kafka_cluster["BOOTSTRAP"])


def committed(bootstrap, topics):
    from confluent_kafka import Consumer, TopicPartition
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": topics["group_id"],
                         "enable.auto.commit": False})
    try:
        parts = [TopicPartition(topics["requests"], p) for p in range(3)]
        return {tp.partition: tp.offset for tp in consumer.committed(parts, timeout=10)}
    finally:
        consumer.close()


def test_the_worker_publishes_through_sasl_ssl_with_only_the_acls_it_needs(
        sasl, kafka_cluster, worker_env, workers, fake, run_cli, fault_run, topics):
    grant_worker_acls(kafka_cluster, topics)
    # token put produces its token_updated event through SASL_SSL too.
    publish_and_check(worker_env(**sasl), workers, run_cli, fault_run, "acct-sasl")


def publish_and_check(env, workers, run_cli, fault_run, prefix):
    """Connects ACCOUNTS accounts with token put, publishes 3 posts each
    through one worker: each answered once, published once, committed, and
    no authorization error on the way."""
    run = fault_run.connect(run_cli, env, [f"{prefix}{i}" for i in range(ACCOUNTS)])
    run.produce(run.make_requests(3))
    w = workers.start(env)
    w.wait_ready(timeout=60)
    run.wait_answered(timeout=60, workers=[w])
    run.check()
    assert w.stop() == 0
    run.check_all_committed()
    assert "authorization" not in w.logs().lower(), w.tail()


def test_a_worker_without_its_write_acl_is_unready_names_the_topic_and_loses_nothing(
        sasl, kafka_cluster, worker_env, workers, fake, run_cli, topics, kafka_bootstrap):
    # Everything but Write on the results topic: that ACL goes to a topic
    # of another name.
    grant_worker_acls(kafka_cluster, topics, results=topics["results"] + "-elsewhere")
    env = worker_env(**sasl)
    user, _ = connect_account(run_cli, env, fake, "acct-acl")
    from harness import produce_many
    from posts import request
    produce_many(kafka_bootstrap, topics["requests"],
                 [("acct-acl", request("acct-acl", post_id="acl-1", text="acl one"))])
    w = workers.start(env)

    def refused():
        return [r for r in w.log_records() if r.get("msg", "").startswith("message cannot be")]

    wait_until(lambda: refused() and w.readyz() == 503, timeout=60,
               message=lambda: f"no refused delivery, or still ready:\n{w.tail()}")
    line = refused()[0]
    assert line["topic"] == topics["results"], line
    assert re.search("authoriz", line["error"], re.I), line
    assert "WRITE" in line["fix"] and "principal" in line["fix"], line
    time.sleep(3)  # the worker commits every second: nothing may be committed past it
    assert all(o < 0 for o in committed(kafka_bootstrap, topics).values())
    assert fake.stats()["publications_total"] == 1  # published, its answer held back
    assert w.readyz() == 503
    w.kill()

    grant_worker_acls(kafka_cluster, topics)
    w2 = workers.start(env)
    results = consume_json(kafka_bootstrap, topics["results"], 1, timeout=60)
    assert [(r["post_id"], r["status"]) for _, r in results] == [("acl-1", "duplicate")]
    wait_until(lambda: w2.readyz() == 200, timeout=30)
    wait_until(lambda: sum(o for o in committed(kafka_bootstrap, topics).values() if o > 0) == 1,
               timeout=30)
    assert fake.stats()["publications_total"] == 1
    assert w2.stop() == 0


@pytest.mark.skipif(not os.environ.get("PW_TEST_REDIS_TLS_URL"),
                    reason="needs a build with TLS to Redis: deploy/dev test runs it with the "
                           "Debian 13 build (hiredis 1.2, librdkafka 2.8) and a TLS-only Redis")
def test_every_hop_encrypted_sasl_ssl_https_and_redis_over_tls(
        sasl, kafka_cluster, worker_env, workers, fake, run_cli, fault_run, topics, threads_url):
    """The current client stack on every hop at once: Kafka through SASL_SSL
    with exactly the worker's ACLs, the API over HTTPS (certificate and host
    name verified), Redis over TLS only with a client certificate. The
    worker and token put are the Debian 13 build (deploy/dev test points
    PW_BIN at it)."""
    assert threads_url.startswith("https://")
    grant_worker_acls(kafka_cluster, topics)
    env = worker_env(REDIS_URL=os.environ["PW_TEST_REDIS_TLS_URL"], **sasl)
    for name in ("REDIS_TLS_CA_FILE", "REDIS_TLS_CERT_FILE", "REDIS_TLS_KEY_FILE",
                 "THREADS_API_CA_FILE"):
        assert env.get(name), name
    publish_and_check(env, workers, run_cli, fault_run, "acct-hop")


def test_topics_sh_made_the_contract_topics_with_one_account_events_partition(
        kafka_cluster, kafka_bootstrap):
    """deploy/kafka/topics.sh, run by deploy/dev at the cluster's start as the
    README tells operators to: every topic has three replicas and the
    partitions asked for, but account.events has one, so that its partitions
    do not take request partitions' places in the workers' group (the sticky
    assignor balances partition counts, not topics)."""
    from confluent_kafka.admin import AdminClient
    meta = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=10).topics
    names = ("publish.requests", "publish.results", "publish.alerts", "publish.dlq",
             "account.events")
    assert set(names) <= set(meta), sorted(set(names) - set(meta))
    counts = {name: len(meta[name].partitions) for name in names}
    assert counts["account.events"] == 1, counts
    assert len({counts[n] for n in counts if n != "account.events"}) == 1, counts
    assert counts["publish.requests"] > 1, counts
    assert all(len(p.replicas) == 3 for n in counts for p in meta[n].partitions.values())
