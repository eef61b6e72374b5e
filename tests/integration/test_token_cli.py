"""token put / token show against a real Redis: sealing, fingerprints,
key rotation, clear errors, and the token_updated event."""
import json

import pytest

from harness import consume_json

PLAIN = "THAAplaintext-access-token-0123456789"
REFRESH = "rt-plaintext-refresh-token-9876543210"


def put(run_cli, env, account="acct-42", token=PLAIN, extra=(), expires_in=5184000):
    args = ["token", "put", "--account", account, "--user-id", "1789",
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
    res = run_cli(["token", "put", "--account", "acct-o", "--user-id", "7", "--expires-in",
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
    res = run_cli(["token", "put", "--account", "a", "--user-id", "u", "--expires-in", "60",
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
