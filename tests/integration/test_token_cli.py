"""token put / token show against a real Redis: sealing, fingerprints,
key rotation, clear errors, the token_updated event, and reading the token
as operators give it (long lines, pasted with "Bearer ", from a file, typed
on a terminal without echo)."""
import hashlib
import json
import os
import select
import signal
import string
import subprocess
import termios
import time

import pytest

import harness
from harness import consume_json

PLAIN = "THAAplaintext-access-token-0123456789"
REFRESH = "rt-plaintext-refresh-token-9876543210"


def put(run_cli, env, account="acct-42", token=PLAIN, extra=(), expires_in=5184000):
    """token put --no-verify: these tests are about storage, not the API."""
    args = ["token", "put", "--no-verify", "--account", account, "--user-id", "1789",
            "--expires-in", str(expires_in), *extra]
    return run_cli(args, env=env, input=token + "\n")


def all_redis_bytes(rds):
    """Every key and value in Redis, as bytes."""
    out = []
    for key in rds.scan_iter(count=1000):
        out.append(key)
        kind = rds.type(key)
        if kind == b"hash":
            for f, v in rds.hgetall(key).items():
                out += [f, v]
        elif kind == b"string":
            out.append(rds.get(key))
        elif kind == b"zset":
            out += [m for m, _ in rds.zrange(key, 0, -1, withscores=True)]
        elif kind == b"list":
            out += rds.lrange(key, 0, -1)
    return b"\n".join(out)


def test_put_then_show_round_trip(run_cli, worker_env, rds):
    env = worker_env()
    res = put(run_cli, env, extra=["--issued-at", "1790000000", "--scopes",
                                   "threads_basic,threads_content_publish"])
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["event_produced"] is True
    res = run_cli(["token", "show", "--account", "acct-42"], env=env)
    assert res.returncode == 0, res.stderr
    shown = json.loads(res.stdout)
    assert shown["account_id"] == "acct-42"
    assert shown["user_id"] == "1789"
    assert shown["status"] == "active"
    assert shown["refresh_method"] == "threads"
    assert shown["scopes"] == ["threads_basic", "threads_content_publish"]
    assert shown["issued_at"].startswith("2026-09-21T")
    assert shown["access_token"].startswith("sha256:")
    assert shown["refresh_token"] is None
    assert PLAIN not in res.stdout and PLAIN not in res.stderr
    assert rds.zscore("pw:token_expiry", "acct-42") == 1790000000 + 5184000


def test_no_plaintext_token_in_redis(run_cli, worker_env, rds):
    env = worker_env()
    assert put(run_cli, env).returncode == 0
    res = run_cli(["token", "put", "--no-verify", "--account", "acct-o", "--user-id", "7", "--expires-in",
                   "3600", "--refresh-method", "oauth2"], env=env,
                  input=f"{PLAIN}-2\n{REFRESH}\n")
    assert res.returncode == 0, res.stderr
    dump = all_redis_bytes(rds)
    assert b"pw:{acct-42}:token" in dump  # the layout carries the hash tag
    assert PLAIN.encode() not in dump
    assert REFRESH.encode() not in dump
    shown = json.loads(run_cli(["token", "show", "--account", "acct-o"], env=env).stdout)
    assert shown["refresh_method"] == "oauth2"
    assert shown["refresh_token"].startswith("sha256:")
    assert shown["refresh_token"] != shown["access_token"]


def test_record_copied_to_another_account_does_not_open(run_cli, worker_env, rds):
    env = worker_env()
    assert put(run_cli, env, account="acct-a").returncode == 0
    assert put(run_cli, env, account="acct-b", token="THAAother").returncode == 0
    rds.hset("pw:{acct-b}:token", "access_token", rds.hget("pw:{acct-a}:token", "access_token"))
    res = run_cli(["token", "show", "--account", "acct-b"], env=env)
    assert res.returncode == 1
    assert "cannot decrypt" in res.stderr


def test_key_rotation_old_records_open_under_the_new_ring(run_cli, worker_env, keyring):
    key_a, key_b = keyring.new_key("A"), keyring.new_key("B")
    assert put(run_cli, worker_env(keys=[key_a])).returncode == 0
    rotated = worker_env(keys=[key_b, key_a])
    shown = json.loads(run_cli(["token", "show", "--account", "acct-42"], env=rotated).stdout)
    assert shown["key_id"] == "A"
    assert put(run_cli, rotated, token="THAAnew").returncode == 0
    shown = json.loads(run_cli(["token", "show", "--account", "acct-42"], env=rotated).stdout)
    assert shown["key_id"] == "B"
    only_a = run_cli(["token", "show", "--account", "acct-42"], env=worker_env(keys=[key_a]))
    assert only_a.returncode == 1
    assert "'B', which is not in the key ring" in only_a.stderr


def test_bad_key_file_is_a_clear_error(run_cli, worker_env, tmp_path):
    bad = tmp_path / "bad-keys"
    bad.write_text("k1:c2hvcnQ=\n")
    bad.chmod(0o600)
    res = put(run_cli, worker_env(TOKEN_KEYS_FILE=str(bad)))
    assert res.returncode == 2
    assert "TOKEN_KEYS_FILE" in res.stderr and "32" in res.stderr
    res = run_cli(["token", "show", "--account", "x"],
                  env=worker_env(TOKEN_KEYS_FILE=str(tmp_path / "missing")))
    assert res.returncode == 2
    assert "cannot open" in res.stderr


def test_unreachable_redis_exits_1(run_cli, worker_env):
    env = worker_env(REDIS_URL="redis://127.0.0.1:1/0")
    res = put(run_cli, env)
    assert res.returncode == 1
    assert "cannot connect" in res.stderr
    assert PLAIN not in res.stderr


def test_empty_token_on_stdin_is_refused(run_cli, worker_env, rds):
    res = put(run_cli, worker_env(), token="")
    assert res.returncode == 2
    assert rds.exists("pw:{acct-42}:token") == 0
    res = run_cli(["token", "put", "--no-verify", "--account", "a", "--user-id", "u", "--expires-in", "60",
                   "--refresh-method", "oauth2"], env=worker_env(), input="only-access\n")
    assert res.returncode == 2
    assert "refresh token" in res.stderr


def test_put_produces_token_updated(run_cli, worker_env, topics, kafka_bootstrap):
    assert put(run_cli, worker_env(), account="acct-ev").returncode == 0
    events = consume_json(kafka_bootstrap, topics["account_events"], 1, timeout=20)
    assert len(events) == 1
    key, event = events[0]
    assert key == "acct-ev"
    assert event["schema"] == "account.event.v1"
    assert event["type"] == "token_updated"
    assert event["account_id"] == "acct-ev"
    assert PLAIN not in json.dumps(event)


def test_put_with_kafka_down_still_stores_and_exits_1(run_cli, worker_env):
    env = worker_env(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1")
    res = put(run_cli, env, account="acct-nokafka")
    assert res.returncode == 1
    assert "token stored" in res.stderr
    assert PLAIN not in res.stderr + res.stdout
    shown = run_cli(["token", "show", "--account", "acct-nokafka"], env=env)
    assert shown.returncode == 0
    assert json.loads(shown.stdout)["status"] == "active"


# --- reading the token --------------------------------------------------------


def fingerprint(secret):
    """What token show prints for a secret: sha256: and 12 hex digits."""
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:12]


def shown(run_cli, env, account="acct-42"):
    res = run_cli(["token", "show", "--account", account], env=env)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def long_token(size):
    alphabet = string.ascii_letters + string.digits
    return "THAA" + "".join(alphabet[i * 7 % len(alphabet)] for i in range(size - 4))


def test_a_20_kib_token_is_stored_whole(run_cli, worker_env, tmp_path):
    env = worker_env()
    token = long_token(20 * 1024)
    res = put(run_cli, env, token=token)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["access_token"] == fingerprint(token)
    assert shown(run_cli, env)["access_token"] == fingerprint(token)
    # Both lines of an oauth2 put, from a file this time.
    path = tmp_path / "tokens"
    path.write_text(f"{token}-2\n{token}-r\n")
    res = run_cli(["token", "put", "--no-verify", "--account", "acct-o", "--user-id", "7", "--expires-in",
                   "3600", "--refresh-method", "oauth2", "--token-file", str(path)], env=env)
    assert res.returncode == 0, res.stderr
    record = shown(run_cli, env, "acct-o")
    assert record["access_token"] == fingerprint(f"{token}-2")
    assert record["refresh_token"] == fingerprint(f"{token}-r")


@pytest.mark.parametrize("line,stored", [
    ("Bearer  tok \n", "tok"),
    ("bearer THAAlower\n", "THAAlower"),
    ("  \tTHAAspaced\t \r\n", "THAAspaced"),
    ("THAAno-newline", "THAAno-newline"),
])
def test_bearer_and_surrounding_white_space_are_removed(run_cli, worker_env, line, stored):
    env = worker_env()
    res = run_cli(["token", "put", "--no-verify", "--account", "acct-42", "--user-id", "1789", "--expires-in",
                   "3600"], env=env, input=line)
    assert res.returncode == 0, res.stderr
    assert shown(run_cli, env)["access_token"] == fingerprint(stored)


def test_white_space_alone_is_no_token(run_cli, worker_env, rds):
    for line in (" \t\n", "Bearer \n"):
        res = put(run_cli, worker_env(), token=line)
        assert res.returncode == 2, line
        assert "expected the access token" in res.stderr
    assert rds.exists("pw:{acct-42}:token") == 0


def test_token_file_instead_of_stdin(run_cli, worker_env, tmp_path, rds):
    env = worker_env()
    path = tmp_path / "tokens"
    path.write_text("Bearer THAAfrom-file\n  rt-from-file  \n")
    args = ["token", "put", "--no-verify", "--account", "acct-f", "--user-id", "7", "--expires-in", "3600",
            "--refresh-method", "oauth2", "--token-file", str(path)]
    res = run_cli(args, env=env, input="THAAnot-this\nnor-this\n")
    assert res.returncode == 0, res.stderr
    record = shown(run_cli, env, "acct-f")
    assert record["access_token"] == fingerprint("THAAfrom-file")
    assert record["refresh_token"] == fingerprint("rt-from-file")

    missing = run_cli(args[:-1] + [str(tmp_path / "missing")], env=env)
    assert missing.returncode == 2
    assert "--token-file" in missing.stderr and "missing" in missing.stderr
    path.write_text("THAAonly-access\n")
    one_line = run_cli(args, env=env)
    assert one_line.returncode == 2 and "refresh token" in one_line.stderr
    wrong_command = run_cli(["token", "show", "--account", "acct-f", "--token-file", str(path)],
                            env=env)
    assert wrong_command.returncode == 2


def read_pty(fd, until=None, timeout=10.0):
    """What the terminal shows (the master side) until `until` appears or
    timeout passes."""
    out, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline and (until is None or until not in out):
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                out += os.read(fd, 4096)
            except OSError:
                break
        elif until is None:
            break
    return out


def echo_on(fd):
    return bool(termios.tcgetattr(fd)[3] & termios.ECHO)


def start_put_on_a_terminal(env, account):
    master, slave = os.openpty()
    proc = subprocess.Popen([harness.PW_BIN, "token", "put", "--no-verify", "--account", account, "--user-id",
                             "1789", "--expires-in", "3600"], env=env, stdin=slave,
                            stdout=subprocess.PIPE, stderr=slave, start_new_session=True)
    return proc, master, slave


def test_token_typed_on_a_terminal_is_not_echoed(run_cli, worker_env):
    env = worker_env()
    proc, master, slave = start_put_on_a_terminal(env, "acct-tty")
    try:
        assert echo_on(slave)
        shows = read_pty(master, b"(not shown): ")
        assert not echo_on(slave), shows
        os.write(master, f"{PLAIN}\n".encode())
        stdout, _ = proc.communicate(timeout=30)
        shows += read_pty(master)
        assert proc.returncode == 0, shows
        assert PLAIN.encode() not in shows  # the terminal never displayed it
        assert echo_on(slave)  # and echoes again afterwards
        assert json.loads(stdout)["access_token"] == fingerprint(PLAIN)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        os.close(master)
        os.close(slave)


def test_echo_comes_back_when_a_signal_ends_token_put(worker_env):
    proc, master, slave = start_put_on_a_terminal(worker_env(), "acct-tty")
    try:
        shows = read_pty(master, b"(not shown): ")
        assert not echo_on(slave), shows
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == -signal.SIGTERM
        assert echo_on(slave)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        os.close(master)
        os.close(slave)


# --- each subcommand's usage ----------------------------------------------------

SUBCOMMANDS = {  # a valid flag of each, so the bad ones below are bad for that reason alone
    "put": ["--account", "a", "--user-id", "1", "--expires-in", "60"],
    "show": ["--account", "a"],
    "verify": ["--account", "a"],
    "list": ["--json"],
    "rekey": ["--dry-run"],
    "delete": ["--account", "a"],
}


@pytest.mark.parametrize("sub", sorted(SUBCOMMANDS))
def test_each_subcommand_help_prints_its_usage_and_exits_0(run_cli, sub):
    # No configuration at all: --help needs none, and touches no server.
    env = {"PATH": os.environ.get("PATH", "")}
    res = run_cli(["token", sub, "--help"], env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"Usage: publish-worker token {sub}")
    assert res.stderr == ""
    # --help wins wherever it stands.
    res = run_cli(["token", sub, *SUBCOMMANDS[sub], "--help"], env=env)
    assert res.returncode == 0 and f"token {sub}" in res.stdout


@pytest.mark.parametrize("sub", sorted(SUBCOMMANDS))
def test_each_subcommand_refuses_unknown_flags_and_arguments(run_cli, sub):
    env = {"PATH": os.environ.get("PATH", "")}
    for bad in (["--no-such-flag"], ["stray"], ["--all"] if sub != "verify" else ["--json"]):
        res = run_cli(["token", sub, *SUBCOMMANDS[sub], *bad], env=env)
        assert res.returncode == 2, (bad, res.stderr)
        assert f"token {sub}" in res.stderr and bad[0] in res.stderr, res.stderr
        assert res.stdout == ""


def test_verify_wants_exactly_one_of_account_and_all(run_cli):
    env = {"PATH": os.environ.get("PATH", "")}
    for args in ([], ["--account", "a", "--all"]):
        res = run_cli(["token", "verify", *args], env=env)
        assert res.returncode == 2
        assert "--account" in res.stderr and "--all" in res.stderr


def test_token_help_lists_every_subcommand(run_cli):
    res = run_cli(["token", "--help"], env={"PATH": os.environ.get("PATH", "")})
    assert res.returncode == 0
    for sub in SUBCOMMANDS:
        assert f"publish-worker token {sub}" in res.stdout
