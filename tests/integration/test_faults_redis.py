"""Redis failing while posts of many accounts are in flight: restarted after a
crash, failed over to its replica, out of memory. Each test runs redis-servers
of its own (the session's Redis is shared by every test), the worker's
REDIS_URL naming one of them or, for the failover, a TCP proxy that follows
the primary as a Sentinel-managed name or a managed endpoint would. After
each: every request answered, each post published at most once (exactly
once where answered so), in order per account, and nothing committed past an
unanswered request (invariants.py).

test_redis_health.py covers the worker's signals (metrics, logs, /readyz
body) for READONLY and OOM with one post; these cover the posts in flight."""
import socket
import subprocess
import threading
import time

import pytest
import redis

from harness import free_port, wait_until

ACCOUNTS = 12


def accounts(tag):
    return [f"acct-{tag}{i:02d}" for i in range(ACCOUNTS)]


class RedisServer:
    """A redis-server on a port of its own; start() again after kill()
    restarts it on the same port and directory (with its append-only file)."""

    def __init__(self, directory, name, *args):
        self.directory, self.name, self.args = directory, name, list(args)
        self.port, self.proc = free_port(), None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--dir", str(self.directory), "--logfile", str(self.directory / f"{self.name}.log"),
             "--appenddirname", f"{self.name}-aof", *self.args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        self.client = redis.Redis(host="127.0.0.1", port=self.port)
        wait_until(self._answers, timeout=10, message=f"{self.name} did not start")
        return self

    def _answers(self):
        try:
            return self.client.ping()
        except (redis.ConnectionError, redis.BusyLoadingError):
            return False

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
        if self.proc:
            self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.client.close()


@pytest.fixture
def redis_servers(tmp_path):
    """redis_servers(name, *args) -> a started RedisServer; all are stopped
    after the test."""
    started = []

    def start(name, *args):
        server = RedisServer(tmp_path, name, *args).start()
        started.append(server)
        return server
    yield start
    for server in started:
        server.stop()


class TcpProxy:
    """Forwards each connection to the target of the moment: what a name
    that follows the primary does for clients that connect again."""

    def __init__(self, port):
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.sockets, self.lock = [], threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self.lock:
                self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.listener.close()
        with self.lock:
            for s in self.sockets:
                s.close()


@pytest.fixture
def proxy():
    made = []

    def make(port):
        made.append(TcpProxy(port))
        return made[-1]
    yield make
    for p in made:
        p.close()


def start_run(fault_run, run_cli, env, fake, tag, posts=8, latency_ms=100):
    run = fault_run.connect(run_cli, env, accounts(tag))
    run.produce(run.make_requests(posts))
    fake.settings(latency_ms=latency_ms)
    return run


def test_redis_killed_and_restarted_mid_run_loses_and_doubles_nothing(
        worker_env, workers, fake, run_cli, fault_run, redis_servers):
    # appendfsync always: what Redis acknowledged survives its crash (the
    # README asks for appendonly; `everysec` may lose the last second).
    rds = redis_servers("restart", "--appendonly", "yes", "--appendfsync", "always")
    env = worker_env(WORKER_CONCURRENCY="8", REDIS_URL=rds.url)
    run = start_run(fault_run, run_cli, env, fake, "restart")
    w = workers.start(env)
    wait_until(lambda: run.published() >= 15, timeout=30)
    rds.kill()
    at_crash = run.published()
    wait_until(lambda: w.readyz() == 503, timeout=5,
               message=lambda: f"still ready with Redis down:\n{w.tail()}")
    time.sleep(1)
    rds.start()
    assert at_crash < len(run.reqs), "all posts were out before Redis went down"
    run.wait_answered(timeout=60, workers=[w])
    run.check()
    w.wait_ready(timeout=10)
    assert w.stop() == 0
    run.check_all_committed()


def test_redis_failover_to_its_replica_mid_run_loses_and_doubles_nothing(
        worker_env, workers, fake, run_cli, fault_run, redis_servers, proxy):
    primary = redis_servers("primary", "--repl-diskless-sync-delay", "0")
    replica = redis_servers("replica", "--replicaof", "127.0.0.1", str(primary.port))
    wait_until(lambda: replica.client.info("replication")["master_link_status"] == "up",
               timeout=20, message="replication did not come up")
    name = proxy(primary.port)
    env = worker_env(WORKER_CONCURRENCY="8", REDIS_URL=name.url)
    run = start_run(fault_run, run_cli, env, fake, "failover")
    w = workers.start(env)
    wait_until(lambda: run.published() >= 15, timeout=30)
    # A coordinated failover (as Sentinel's, without losing acknowledged
    # writes): the replica catches up and is promoted, the primary becomes
    # its replica and refuses writes with READONLY; then the name follows.
    primary.client.execute_command("FAILOVER", "TO", "127.0.0.1", replica.port)
    wait_until(lambda: replica.client.info("replication")["role"] == "master", timeout=10)
    at_failover = run.published()
    wait_until(lambda: w.readyz() == 503, timeout=10,
               message=lambda: f"still ready on a demoted primary:\n{w.tail()}")
    name.target = replica.port
    assert at_failover < len(run.reqs), "all posts were out before the failover"
    run.wait_answered(timeout=60, workers=[w])
    run.check()
    w.wait_ready(timeout=10)
    assert w.stop() == 0
    run.check_all_committed()


def test_redis_out_of_memory_mid_run_loses_and_doubles_nothing(
        worker_env, workers, fake, run_cli, fault_run, redis_servers):
    rds = redis_servers("oom", "--maxmemory-policy", "noeviction")
    env = worker_env(WORKER_CONCURRENCY="8", REDIS_URL=rds.url)
    run = start_run(fault_run, run_cli, env, fake, "oom")
    w = workers.start(env)
    wait_until(lambda: run.published() >= 15, timeout=30)
    rds.client.config_set("maxmemory", 1)  # every write refused with OOM
    try:
        at_oom = run.published()
        wait_until(lambda: w.readyz() == 503, timeout=10,
                   message=lambda: f"still ready with Redis out of memory:\n{w.tail()}")
        time.sleep(1)
        stuck = run.published()
    finally:
        rds.client.config_set("maxmemory", 0)
    assert at_oom < len(run.reqs), "all posts were out before Redis ran out of memory"
    run.wait_answered(timeout=60, workers=[w])
    run.check()
    print(f"published {at_oom} before OOM, {stuck - at_oom} while it lasted")
    w.wait_ready(timeout=10)
    assert w.stop() == 0
    run.check_all_committed()
