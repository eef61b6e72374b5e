"""publish-worker run: probes, group membership, JSON logs, signals."""
import ctypes
import json
import os
import shutil
import signal
import subprocess
import tempfile

import harness
from harness import produce_many, wait_until
from posts import connect_account, request


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


def other_user():
    """(uid, gid) the process under test runs as: ourselves, or nobody when we
    are root (root owns every /proc entry, dumpable or not)."""
    return (65534, 65534) if os.getuid() == 0 else (os.getuid(), os.getgid())


def proc_owner_and_uid(pid):
    """(owner of /proc/PID/status, the process's real uid): the kernel makes
    root own the files under /proc/PID of a process that is not dumpable,
    whoever runs it (task_dump_owner)."""
    status = open(f"/proc/{pid}/status").read()
    uid = int(next(l for l in status.splitlines() if l.startswith("Uid:")).split()[1])
    return os.stat(f"/proc/{pid}/status").st_uid, uid


def test_worker_and_token_put_are_not_dumpable(worker_env, workers):
    """They hold the key ring and decrypted tokens: no core dump may carry them
    to disk, and no process of the same user may read their memory."""
    uid, gid = other_user()
    directory = tempfile.mkdtemp()
    try:
        os.chmod(directory, 0o711)
        keys = harness.write_keyring(os.path.join(directory, "keys"), [harness.new_key("k1")])
        os.chown(keys, uid, gid)
        w = workers.new(worker_env(keyring=keys))
        if os.getuid() == 0:
            w.popen_args = {"user": uid, "group": gid, "extra_groups": []}
        w.start().wait_ready(timeout=30)
        assert proc_owner_and_uid(w.pid) == (0, uid)
        # A process may still read its own /proc entries: the process_* metrics.
        metrics = dict(l.split(" ", 1) for l in w.metrics().splitlines()
                       if l.startswith("process_"))
        assert int(metrics["process_open_fds"]) > 0
        assert int(metrics["process_resident_memory_bytes"]) > 0
        assert w.stop(signal.SIGTERM, timeout=30) == 0

        # token put, waiting for the token on stdin: not dumpable either.
        put = subprocess.Popen([harness.PW_BIN, "token", "put", "--account", "a", "--user-id",
                                "u", "--expires-in", "60"], stdin=subprocess.PIPE,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               **w.popen_args)
        try:
            wait_until(lambda: open(f"/proc/{put.pid}/wchan").read() not in ("", "0"), 10)
            assert proc_owner_and_uid(put.pid) == (0, uid)
        finally:
            put.kill()
            put.wait()
    finally:
        shutil.rmtree(directory)


def librdkafka_sequences(draws=12):
    """The random() sequences librdkafka's own seeding allows: srand() of the
    current millisecond within the second (rd_kafka_global_srand), so one of
    1,000, the same for processes started at the same millisecond."""
    libc = ctypes.CDLL(None)
    libc.random.restype = ctypes.c_long
    values = set()
    for ms in range(1000):
        libc.srandom(ms)
        values.update(libc.random() for _ in range(draws))
    return values


def replay_lock_owner(env, workers, fake, run_cli, kafka_bootstrap, topics, rds, account):
    """The owner one worker process writes into an account's replay lock
    ("WORKER_ID/random()") while it publishes the account's parked posts."""
    user, _ = connect_account(run_cli, env, fake, account)
    fake.revoke(user_id=user, subcode=460)
    produce_many(kafka_bootstrap, topics["requests"],
                 [(account, request(account)) for _ in range(2)])
    w = workers.start(env)
    wait_until(lambda: rds.llen(f"pw:{{{account}}}:parked") == 2, timeout=30,
               message=lambda: w.tail())
    fake.settings(latency_ms_by_endpoint={"threads": 1500})  # a replay of 3 s or more
    connect_account(run_cli, env, fake, account, user_id=user)  # token_updated: replay
    owner = wait_until(lambda: rds.get(f"pw:{{{account}}}:replay_lock"), timeout=30, interval=0.02,
                       message=lambda: w.tail())
    fake.settings(latency_ms_by_endpoint={"threads": 0})
    assert w.stop() == 0
    return owner.decode()


def test_each_process_draws_its_own_random_sequence(worker_env, workers, fake, run_cli,
                                                    kafka_bootstrap, topics, rds):
    """random() (backoff jitter, the sweep's delays, lock owners) is seeded
    per process from the kernel: replicas do not back off, sweep and name
    their locks in lockstep, as they would on one of librdkafka's 1,000
    millisecond seeds (or unseeded, with the same sequence everywhere)."""
    env = worker_env(TOKEN_SWEEP_INTERVAL_S=86400)
    first = replay_lock_owner(env, workers, fake, run_cli, kafka_bootstrap, topics, rds, "acct-r1")
    second = replay_lock_owner(env, workers, fake, run_cli, kafka_bootstrap, topics, rds, "acct-r2")
    draws = [int(owner.rsplit("/", 1)[1]) for owner in (first, second)]
    assert draws[0] != draws[1]
    guessable = librdkafka_sequences()
    # Seeded from the kernel, a draw is among these ~12,000 values by chance
    # once in 180,000 runs.
    assert not [d for d in draws if d in guessable], (draws, "a millisecond-seeded sequence")
