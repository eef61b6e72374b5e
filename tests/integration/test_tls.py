"""TLS on the worker's hops to the API and to Redis, as a black box.

The suite runs against the fake Threads API over HTTPS (deploy/dev makes a
test CA per run, and every worker trusts it through THREADS_API_CA_FILE);
here: connections are reused, plain HTTP still works, a certificate for
another host or from an unknown CA is refused without losing a post, and an
unreadable CA file stops the worker at start. Redis over TLS (rediss://)
needs a build with hiredis >= 1.0: `deploy/dev debian13` runs the
`redis_over_tls` tests in a Debian 13 root against a TLS-only redis-server;
a Debian 12 build must refuse rediss:// saying why.
"""
import os
import re
import subprocess
from pathlib import Path

import pytest

from harness import FakeThreads, consume_json, free_port, produce_many, wait_until
from posts import check_results, connect_account, published_texts, request


def tls_dir():
    path = os.environ.get("PW_TEST_TLS_DIR")
    if not path:
        pytest.skip("PW_TEST_TLS_DIR not set: run through deploy/dev")
    return Path(path)


def build_has_redis_tls():
    """Whether the build under test speaks TLS to Redis (CMake's finding)."""
    cache = Path(os.environ.get("PW_BUILD_DIR", "build")) / "CMakeCache.txt"
    if not cache.exists():
        pytest.skip(f"{cache} not found: cannot tell whether the build has TLS to Redis")
    return re.search(r"^PW_REDIS_TLS:INTERNAL=ON$", cache.read_text(), re.M) is not None


def metric(worker, name):
    """The value of an unlabelled metric, or None."""
    for line in worker.metrics().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def api_calls(worker):
    return sum(float(line.split()[1]) for line in worker.metrics().splitlines()
               if line.startswith("publish_worker_api_calls_total{"))


def publish_all(env, workers, fake, run_cli, topics, kafka_bootstrap, accounts=4, per_account=5):
    """Connects accounts, publishes their posts with one worker; returns
    (worker, results, users)."""
    users = {f"acct-{i}": connect_account(run_cli, env, fake, f"acct-{i}")[0]
             for i in range(accounts)}
    reqs = [request(a, post_id=f"{a}-{n}", text=f"{a} #{n}") for a in users
            for n in range(per_account)]
    produce_many(kafka_bootstrap, topics["requests"], [(r["account_id"], r) for r in reqs])
    w = workers.start(env)
    results = consume_json(kafka_bootstrap, topics["results"], len(reqs), timeout=60)
    assert len(results) == len(reqs), f"{len(results)} of {len(reqs)} results"
    check_results(results)
    assert {r["status"] for _, r in results} == {"published"}
    for account, user in users.items():
        expected = [r["post"]["text"] for r in reqs if r["account_id"] == account]
        assert published_texts(fake, user) == expected  # each once, in order
    return w, results, users


def test_https_publishes_with_few_connections(worker_env, workers, fake, run_cli, topics,
                                              kafka_bootstrap, threads_url):
    assert threads_url.startswith("https://"), "deploy/dev serves the fake over HTTPS"
    env = worker_env(WORKER_CONCURRENCY="4")
    w, results, _ = publish_all(env, workers, fake, run_cli, topics, kafka_bootstrap)
    calls = api_calls(w)
    connections = metric(w, "publish_worker_api_connections_total")
    # Two calls a post at least (create, publish); each loop thread keeps its
    # connections in its curl multi's cache, so a handful serve them all.
    assert calls >= 2 * len(results)
    assert connections is not None and 1 <= connections <= 8, (connections, calls)
    assert w.stop() == 0


def test_plain_http_still_publishes(worker_env, workers, fake, run_cli, topics, kafka_bootstrap):
    plain = os.environ.get("PW_TEST_THREADS_HTTP_URL")
    if not plain:
        pytest.skip("PW_TEST_THREADS_HTTP_URL not set: run through deploy/dev")
    env = worker_env(THREADS_API_BASE_URL=plain, OAUTH2_TOKEN_URL=f"{plain}/oauth2/token",
                     THREADS_API_CA_FILE=None)
    w, _, _ = publish_all(env, workers, fake, run_cli, topics, kafka_bootstrap, accounts=2,
                          per_account=3)
    assert w.stop() == 0


def start_fake(tmp_path, cert, key):
    """A fake Threads API of this test's own, serving HTTPS with cert; returns
    (Popen, its https URL, its plain http URL: the same state)."""
    out = tmp_path / "fake-threads.out"
    binary = Path(os.environ.get("PW_BUILD_DIR", "build")) / "tests/tools/fake-threads"
    proc = subprocess.Popen([str(binary), "--port", "0", "--tls-port", "0", "--tls-cert",
                             str(cert), "--tls-key", str(key)], stdout=open(out, "w"),
                            stderr=subprocess.DEVNULL, start_new_session=True)
    wait_until(lambda: re.search(r"^LISTENING ", out.read_text(), re.M), 10,
               message="fake-threads did not listen")
    text = out.read_text()
    return (proc, re.search(r"^LISTENING_TLS (\S+)$", text, re.M).group(1),
            re.search(r"^LISTENING (\S+)$", text, re.M).group(1))


@pytest.mark.parametrize("case", ["wrong_host", "unknown_ca"])
def test_a_refused_api_certificate_fails_posts_clearly_and_loses_none(
        case, worker_env, workers, fake, run_cli, topics, kafka_bootstrap, tmp_path):
    """wrong_host: a certificate from the trusted CA for another host name;
    unknown_ca: the right host, but the worker trusts only the system's store.
    Either way no request reaches the API, every post is answered failed
    (transient, after PUBLISH_MAX_ATTEMPTS tries) with a message that says
    what to fix, and the worker logs it at error level."""
    certs = tls_dir()
    env = worker_env(PUBLISH_MAX_ATTEMPTS="2")
    # Tokens are stored unverified: the API is what is unreachable here.
    users = {a: connect_account(run_cli, env, fake, a)[0] for a in ("acct-x", "acct-y")}
    name = "wronghost" if case == "wrong_host" else "server"
    proc, url, plain = start_fake(tmp_path, certs / f"{name}.pem", certs / f"{name}.key")
    try:
        env = dict(env, THREADS_API_BASE_URL=url, OAUTH2_TOKEN_URL=f"{url}/oauth2/token")
        if case == "unknown_ca":
            env.pop("THREADS_API_CA_FILE", None)
        reqs = [request(a, post_id=f"{a}-{n}") for a in users for n in range(2)]
        produce_many(kafka_bootstrap, topics["requests"], [(r["account_id"], r) for r in reqs])
        w = workers.start(env)
        results = consume_json(kafka_bootstrap, topics["results"], len(reqs), timeout=60)
        assert len(results) == len(reqs), f"{len(results)} of {len(reqs)} results"
        check_results(results)
        for _, r in results:
            assert r["status"] == "failed", r
            assert r["attempts"] == 2 and r["error"]["class"] == "transient", r
            assert r["error"]["http_status"] is None
            message = r["error"]["message"]
            assert "TLS certificate of 127.0.0.1 was refused" in message, message
            if case == "wrong_host":
                assert "THREADS_API_CA_FILE" in message
                assert re.search(r"host name|subject name", message), message
            else:
                assert "the system's store" in message
        logged = [rec for rec in w.log_records() if rec.get("msg") == "API server certificate refused"]
        assert len(logged) == 1, "logged once a minute, not once a call"
        assert logged[0]["host"] == "127.0.0.1" and "THREADS_API_CA_FILE" in logged[0]["fix"]
        # The handshake failed: no request ever reached the API.
        stats = FakeThreads(plain).stats()
        assert stats["requests_total"] == 0 and stats["publications_total"] == 0
        assert w.stop() == 0
    finally:
        proc.terminate()
        proc.wait(10)


def test_an_unreadable_ca_file_stops_the_worker_naming_it(worker_env, run_cli, tmp_path):
    env = worker_env(THREADS_API_CA_FILE=str(tmp_path / "missing.pem"))
    for args in (["check-config"], ["run"]):
        res = run_cli(args, env=env, timeout=20)
        assert res.returncode == 2, (args, res.stderr)
        assert f"THREADS_API_CA_FILE: cannot read {tmp_path / 'missing.pem'}" in res.stderr


# --- Redis over TLS -------------------------------------------------------------


def test_rediss_is_refused_by_a_build_without_tls(worker_env, run_cli):
    if build_has_redis_tls():
        pytest.skip("this build speaks TLS to Redis: the redis_over_tls tests cover it")
    env = worker_env(REDIS_URL="rediss://127.0.0.1:6380/0")
    for args in (["check-config"], ["run"]):
        res = run_cli(args, env=env, timeout=20)
        assert res.returncode == 2, (args, res.stderr)
        assert re.search(r"REDIS_URL: rediss:// \(TLS\): this build's hiredis 0\.\d+ has no TLS; "
                         r"build on Debian 13", res.stderr), res.stderr


def redis_tls_url():
    url = os.environ.get("PW_TEST_REDIS_TLS_URL")
    if not url:
        pytest.skip("no TLS-only Redis (PW_TEST_REDIS_TLS_URL): deploy/dev debian13 starts one")
    assert build_has_redis_tls(), "a TLS Redis to test against, but a build without TLS"
    return url


def test_publishes_with_redis_over_tls_only(worker_env, workers, fake, run_cli, topics,
                                            kafka_bootstrap, threads_url):
    url = redis_tls_url()
    env = worker_env(REDIS_URL=url)
    assert env["REDIS_TLS_CERT_FILE"], "the TLS Redis asks for a client certificate"
    res = run_cli(["check-config"], env=env)
    assert res.returncode == 0, res.stderr
    w, results, users = publish_all(env, workers, fake, run_cli, topics, kafka_bootstrap)
    w.wait_ready()
    assert w.stop() == 0
    # And what the worker wrote went over TLS to that Redis.
    shown = run_cli(["token", "show", "--account", "acct-0"], env=env)
    assert shown.returncode == 0 and '"user_id"' in shown.stdout, shown.stderr


def test_redis_over_tls_refuses_a_wrong_certificate(worker_env, run_cli, tmp_path):
    """A Redis whose certificate names another host, and the right Redis
    without its CA: both refused, saying why, never in cleartext."""
    redis_tls_url()
    certs = tls_dir()
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no", "--dir", str(tmp_path),
         "--tls-cert-file", str(certs / "wronghost.pem"), "--tls-key-file",
         str(certs / "wronghost.key"), "--tls-ca-cert-file", str(certs / "ca.pem"),
         "--tls-auth-clients", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: subprocess.run(
            ["redis-cli", "-p", str(port), "--tls", "--insecure", "ping"],
            capture_output=True, text=True).stdout.strip() == "PONG", 10)
        cases = {  # the URL, what OpenSSL found
            "wrong address": (worker_env(REDIS_URL=f"rediss://127.0.0.1:{port}/0"),
                              "IP address mismatch.*signed by a CA in REDIS_TLS_CA_FILE"),
            "wrong name": (worker_env(REDIS_URL=f"rediss://localhost:{port}/0"),
                           "hostname mismatch.*signed by a CA in REDIS_TLS_CA_FILE"),
            "unknown CA": (worker_env(REDIS_URL=os.environ["PW_TEST_REDIS_TLS_URL"],
                                      REDIS_TLS_CA_FILE=None),
                           "(unable to get local issuer|self-signed certificate in certificate "
                           "chain).*signed by a CA in the system's store"),
        }
        for case, (env, expected) in cases.items():
            res = run_cli(["token", "show", "--account", "acct-0"], env=env)
            assert res.returncode == 1, (case, res.stdout, res.stderr)
            assert "the server's certificate was refused" in res.stderr, (case, res.stderr)
            assert re.search(expected, res.stderr), (case, res.stderr)
    finally:
        proc.terminate()
        proc.wait(10)
