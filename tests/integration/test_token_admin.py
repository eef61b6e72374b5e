"""token verify, list, rekey and delete against the real servers: what an
operator sees of every account, checking tokens on demand, retiring a key,
and offboarding an account."""
import hashlib
import json
import re
import time

import pytest

import harness
import seed
from posts import connect_account

PLAIN = "THAAplaintext-admin-token-0123456789"


def put(run_cli, env, account, token=PLAIN, user_id="1789", extra=()):
    """token put --no-verify (no API needed)."""
    res = run_cli(["token", "put", "--account", account, "--user-id", user_id, "--expires-in",
                   "5184000", "--no-verify", *extra], env=env, input=token + "\n")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def fingerprint(secret):
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:12]


# --- seeding ------------------------------------------------------------------


def test_seed_records_open_like_token_put(run_cli, worker_env, keyring, rds):
    """The bench and the 1,000-account tests seed records in Python: the
    worker must open them as its own, or those tests prove nothing."""
    key = keyring.new_key("s1")
    env = worker_env(keys=[key])
    seed.seed_accounts(rds, key, ["acct-seeded"], token=lambda a: "THAA-seeded-secret",
                       refresh_token="rt-seeded-secret")
    res = run_cli(["token", "show", "--account", "acct-seeded"], env=env)
    assert res.returncode == 0, res.stderr
    shown = json.loads(res.stdout)
    assert shown["access_token"] == fingerprint("THAA-seeded-secret")
    assert shown["refresh_token"] == fingerprint("rt-seeded-secret")
    assert shown["key_id"] == "s1" and shown["status"] == "active"


# --- verify -------------------------------------------------------------------


def test_verify_reports_each_outcome_records_it_and_marks_nothing(run_cli, worker_env, keyring,
                                                                   fake, rds):
    key, other = keyring.new_key("k1"), keyring.new_key("gone")
    env = worker_env(keys=[key])
    connect_account(run_cli, env, fake, "acct-ok", user_id="u-ok")
    connect_account(run_cli, env, fake, "acct-rev", user_id="u-rev")
    fake.revoke(user_id="u-rev")
    # acct-wrong's record says u-wrong, but the token stored is u-ok's.
    fake.register_token("THAA-belongs-to-u-ok", "u-ok")
    put(run_cli, env, "acct-wrong", token="THAA-belongs-to-u-ok", user_id="u-wrong")
    seed.seed_accounts(rds, other, ["acct-unreadable"])

    res = run_cli(["token", "verify", "--account", "acct-ok"], env=env)
    assert res.returncode == 0, res.stderr
    line, = json_lines(res.stdout)
    assert line["account_id"] == "acct-ok" and line["user_id"] == "u-ok"
    assert line["outcome"] == "ok" and line["checked_at"].endswith("Z")
    assert "1 ok" in res.stderr

    res = run_cli(["token", "verify", "--all"], env=env)
    assert res.returncode == 1
    by_account = {line["account_id"]: line for line in json_lines(res.stdout)}
    assert {a: line["outcome"] for a, line in by_account.items()} == {
        "acct-ok": "ok", "acct-rev": "revoked", "acct-wrong": "wrong_user",
        "acct-unreadable": "unreadable"}
    assert "u-ok" in by_account["acct-wrong"]["message"]
    assert "'gone'" in by_account["acct-unreadable"]["message"]
    assert "verified 4 tokens" in res.stderr and "1 revoked" in res.stderr
    for token in ("THAA-belongs-to-u-ok", *fake.issued_tokens()):
        assert token not in res.stdout + res.stderr

    # Recorded for the sweep and for token list...
    verify = rds.hgetall("pw:{acct-rev}:verify")
    assert verify[b"outcome"] == b"revoked" and verify[b"fence"] == b"1"
    due = rds.zscore("pw:verify_due", "acct-ok")
    assert due == pytest.approx(time.time() + 86400, abs=60)
    # ... but no account is marked: the workers' sweep does that.
    for account in ("acct-rev", "acct-wrong", "acct-unreadable"):
        assert rds.hget(f"pw:{{{account}}}:account", "status") == b"active"


def test_verify_of_an_account_without_a_token_says_so(run_cli, worker_env, fake):
    res = run_cli(["token", "verify", "--account", "acct-none"], env=worker_env())
    assert res.returncode == 1
    assert "acct-none has no token record" in res.stderr
    assert res.stdout == ""


def test_verify_unreachable_api_is_no_verdict(run_cli, worker_env, fake, rds):
    env = worker_env()
    connect_account(run_cli, env, fake, "acct-away")
    res = run_cli(["token", "verify", "--account", "acct-away"],
                  env={**env, "THREADS_API_BASE_URL": "http://127.0.0.1:9"})
    assert res.returncode == 1
    assert json_lines(res.stdout)[0]["outcome"] == "unreachable"
    # Due again now, not in a day: the sweep asks again soon.
    assert rds.zscore("pw:verify_due", "acct-away") <= time.time() + 5


def test_verify_all_keeps_to_the_fleets_budget(run_cli, worker_env, fake, rds):
    env = worker_env(TOKEN_VERIFY_MAX_PER_S="2")
    for i in range(5):
        connect_account(run_cli, env, fake, f"acct-b{i}")
    started = time.monotonic()
    res = run_cli(["token", "verify", "--all"], env=env)
    elapsed = time.monotonic() - started
    assert res.returncode == 0, res.stderr
    assert len(json_lines(res.stdout)) == 5
    # 2 per second: 5 verifications span at least two second boundaries.
    assert elapsed >= 1.5, elapsed
    seconds = {}
    for line in json_lines(res.stdout):
        second = line["checked_at"][:19]
        seconds[second] = seconds.get(second, 0) + 1
    assert max(seconds.values()) <= 2, seconds


# --- list ---------------------------------------------------------------------


def list_json(run_cli, env, *args):
    res = run_cli(["token", "list", "--json", *args], env=env)
    assert res.returncode == 0, res.stderr
    return json_lines(res.stdout), res


def test_list_shows_every_account_with_its_state(run_cli, worker_env, keyring, fake, rds):
    new, old = keyring.new_key("k2"), keyring.new_key("k1")
    env = worker_env(keys=[new, old])
    seed.seed_accounts(rds, old, ["acct-old"], refreshed_at_ms=1790000000000)
    put(run_cli, env, "acct-active")
    put(run_cli, env, "acct-marked")
    rds.hset("pw:{acct-marked}:account",
             mapping={"status": "reconnect_required", "reason": "revoked", "at_ms": 1790000000000})
    rds.rpush("pw:{acct-marked}:parked", "p1", "p2", "p3")
    rds.sadd("pw:parked_accounts", "acct-marked")
    put(run_cli, env, "acct-quota")
    rds.set("pw:{acct-quota}:quota_hold", "1", px=3600_000)
    rds.rpush("pw:{acct-notoken}:parked", "p1")  # parked posts, no token
    rds.sadd("pw:parked_accounts", "acct-notoken")
    rds.hset("pw:{acct-active}:verify", mapping={"at_ms": 1790000001000, "outcome": "ok",
                                                 "message": "fine", "fence": 1})
    # A post id may hold "}:token": its record must not list as an account.
    rds.hset("pw:{acct-active}:post:x}:token", "status", "published")

    rows, res = list_json(run_cli, env)
    by = {r["account_id"]: r for r in rows}
    assert [r["account_id"] for r in rows] == sorted(by) == [
        "acct-active", "acct-marked", "acct-notoken", "acct-old", "acct-quota"]
    assert by["acct-active"]["state"] == "active" and by["acct-active"]["key_id"] == "k2"
    assert by["acct-active"]["last_verification"] == {
        "at": "2026-09-21T14:13:21.000Z", "outcome": "ok", "message": "fine"}
    assert by["acct-active"]["last_refresh"] is None
    assert by["acct-active"]["refresh_method"] == "threads"
    assert by["acct-active"]["expires_at"].endswith("Z")
    assert by["acct-marked"]["state"] == "reconnect_required"
    assert by["acct-marked"]["reason"] == "revoked"
    assert by["acct-marked"]["since"] == "2026-09-21T14:13:20.000Z"
    assert by["acct-marked"]["parked"] == 3
    assert by["acct-notoken"]["has_token"] is False and by["acct-notoken"]["parked"] == 1
    assert by["acct-notoken"]["state"] == "reconnect_required"
    assert by["acct-notoken"]["key_id"] is None
    assert by["acct-old"]["key_id"] == "k1"
    assert by["acct-old"]["last_refresh"] == "2026-09-21T14:13:20.000Z"
    assert by["acct-quota"]["state"] == "quota_wait"
    until = by["acct-quota"]["quota_until"]
    assert until and until > time.strftime("%Y-%m-%dT%H:%M", time.gmtime(time.time() + 3500))
    assert "5 accounts" in res.stderr
    assert PLAIN not in res.stdout + res.stderr

    marked, _ = list_json(run_cli, env, "--state", "reconnect_required")
    assert [r["account_id"] for r in marked] == ["acct-marked", "acct-notoken"]
    quota, _ = list_json(run_cli, env, "--state", "quota_wait")
    assert [r["account_id"] for r in quota] == ["acct-quota"]


def test_list_table_is_aligned(run_cli, worker_env, rds):
    env = worker_env()
    put(run_cli, env, "a")
    put(run_cli, env, "a-much-longer-account-id")
    rds.hset("pw:{a}:account", mapping={"status": "reconnect_required", "reason": "revoked",
                                        "at_ms": 1790000000000})
    res = run_cli(["token", "list"], env=env)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["ACCOUNT", "STATE", "SINCE", "REASON", "METHOD", "EXPIRES",
                                "REFRESHED", "VERIFIED", "RESULT", "PARKED", "KEY"]
    assert len(lines) == 3
    # Every column starts where its heading does.
    starts = [m.start() for m in re.finditer(r"\S+", lines[0])]
    for line in lines[1:]:
        assert [m.start() for m in re.finditer(r"\S+", line)] == starts, line
    assert lines[1].split()[:4] == ["a", "reconnect_required", "2026-09-21T14:13Z", "revoked"]
    assert lines[2].split()[1] == "active"


def test_list_unknown_state_is_bad_usage(run_cli, worker_env):
    res = run_cli(["token", "list", "--state", "parked"], env=worker_env())
    assert res.returncode == 2
    assert "--state" in res.stderr and "parked" in res.stderr


def test_list_a_thousand_accounts(run_cli, worker_env, keyring, rds):
    new, old = keyring.new_key("k2"), keyring.new_key("k1")
    env = worker_env(keys=[new, old])
    accounts = [f"acct-{i:04d}" for i in range(1000)]
    seed.seed_accounts(rds, new, accounts[:700])
    seed.seed_accounts(rds, old, accounts[700:])
    pipe = rds.pipeline(transaction=False)
    for account in accounts[::10]:
        pipe.hset(f"pw:{{{account}}}:account", "status", "reconnect_required")
        pipe.rpush(f"pw:{{{account}}}:parked", "a", "b")
        pipe.sadd("pw:parked_accounts", account)
    for i in range(5):  # parked posts of accounts without a record
        pipe.rpush(f"pw:{{acct-gone-{i}}}:parked", "x")
        pipe.sadd("pw:parked_accounts", f"acct-gone-{i}")
    pipe.execute()
    rows, res = list_json(run_cli, env)
    assert len(rows) == 1005
    assert [r["account_id"] for r in rows] == sorted(accounts + [f"acct-gone-{i}"
                                                                for i in range(5)])
    by = {r["account_id"]: r for r in rows}
    assert sum(r["key_id"] == "k2" for r in rows) == 700
    assert sum(r["key_id"] == "k1" for r in rows) == 300
    marked = [a for a, r in by.items() if r["state"] == "reconnect_required"]
    assert len(marked) == 105
    assert all(by[a]["parked"] == 2 for a in accounts[::10])
    assert sum(r["parked"] for r in rows) == 205
    assert "1005 accounts: 900 active, 105 reconnect_required" in res.stderr
    table = run_cli(["token", "list", "--state", "active"], env=env)
    assert table.returncode == 0
    assert len(table.stdout.splitlines()) == 901
