"""Retiring a token key with workers running and posts flowing, as the
README's key rotation says: add the new key as a decrypt-only line and roll
out; make it first and roll out; token rekey; remove the old key and roll
out. Each roll-out restarts the workers one at a time, so old and new rings
run side by side; posts keep coming throughout. After each step the records
per key id are what the step promises, and at the end every post was
published exactly once, in order, with no account marked."""
import json
import time

import pytest

from harness import wait_until
from posts import connect_account


def key_ids(run_cli, env):
    res = run_cli(["token", "list", "--json"], env=env)
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    counts = {}
    for r in rows:
        counts[r["key_id"]] = counts.get(r["key_id"], 0) + 1
    return counts, {r["account_id"]: r for r in rows}


def roll(workers, running, make_env, name):
    """Restarts each worker in turn with an environment of make_env() (a
    rolling update)."""
    out = []
    for i, w in enumerate(running):
        assert w.stop() == 0
        out.append(workers.start(make_env(), name=f"{name}-{i}").wait_ready())
    return out


@pytest.mark.partitions(4)
def test_a_key_is_retired_with_workers_running_and_posts_flowing(worker_env, workers, keyring,
                                                                   fake, run_cli, fault_run, rds):
    k1, k2 = keyring.new_key("k1"), keyring.new_key("k2")
    rings = {"old": keyring([k1]), "added": keyring([k1, k2]), "first": keyring([k2, k1]),
             "new": keyring([k2])}
    env = {step: worker_env(keyring=path) for step, path in rings.items()}  # for commands

    def worker_of(step):  # each worker its own metrics port and id
        return lambda: worker_env(keyring=rings[step], TOKEN_SWEEP_INTERVAL_S="1")
    accounts = [f"acct-rot-{i}" for i in range(6)]
    fault_run.connect(run_cli, env["old"], accounts)
    running = [workers.start(worker_of("old")(), name=f"old-{i}").wait_ready() for i in range(2)]
    started = list(running)

    def traffic(n=2):
        fault_run.produce(fault_run.make_requests(n))

    traffic()
    assert key_ids(run_cli, env["old"])[0] == {"k1": 6}

    # 1. k2 as a decrypt-only second line: every worker still seals with k1.
    running = roll(workers, running, worker_of("added"), "added")
    started += running
    traffic()
    assert key_ids(run_cli, env["added"])[0] == {"k1": 6}

    # 2. k2 first. Tokens refreshed from now on are sealed with k2: two
    # accounts whose tokens are due, put by an operator still on the old ring.
    running = roll(workers, running, worker_of("first"), "first")
    started += running
    now = int(time.time())
    for account in ("acct-due-0", "acct-due-1"):
        user, _ = connect_account(run_cli, env["old"], fake, account,
                                  issued_at=now - 50 * 86400, expires_in=51 * 86400)
        fault_run.users[account] = user
    traffic()
    wait_until(lambda: key_ids(run_cli, env["first"])[1]["acct-due-1"]["key_id"] == "k2"
               and key_ids(run_cli, env["first"])[1]["acct-due-0"]["key_id"] == "k2", 30,
               message="the sweep refreshed the due tokens, sealing them with k2")
    counts, rows = key_ids(run_cli, env["first"])
    assert counts == {"k1": 6, "k2": 2}
    assert rows["acct-due-0"]["last_refresh"] is not None

    # 3. token rekey, posts still flowing (and a dry run first).
    traffic()
    res = run_cli(["token", "rekey", "--dry-run"], env=env["first"])
    assert res.returncode == 0, res.stderr
    dry = json.loads(res.stdout)
    assert dry["would_rekey"] == 6 and dry["records_after"] == {"k2": 8}
    assert key_ids(run_cli, env["first"])[0] == {"k1": 6, "k2": 2}
    res = run_cli(["token", "rekey"], env=env["first"])
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["records_after"] == {"k2": 8} and report["left"] == 0
    assert report["rekeyed"] + report["changed_meanwhile"] == 6
    assert key_ids(run_cli, env["first"])[0] == {"k2": 8}
    # A worker that knew only k1 could open none of them now; one with k2
    # alone opens all: the old key can go.
    only_old = run_cli(["token", "verify", "--account", "acct-rot-0"], env=env["old"])
    assert only_old.returncode == 1
    assert json.loads(only_old.stdout)["outcome"] == "unreadable"
    res = run_cli(["token", "verify", "--all"], env=env["new"])
    assert res.returncode == 0, res.stdout + res.stderr

    # 4. k1 removed.
    running = roll(workers, running, worker_of("new"), "new")
    started += running
    traffic()
    fault_run.wait_answered(timeout=90, workers=running)
    for w in running:
        assert w.stop() == 0
    fault_run.check()
    counts, rows = key_ids(run_cli, env["new"])
    assert counts == {"k2": 8}
    assert {r["state"] for r in rows.values()} == {"active"}
    res = run_cli(["token", "rekey"], env=env["new"])
    assert res.returncode == 0 and json.loads(res.stdout)["rekeyed"] == 0
    logs = "".join(w.logs() + w.stderr() for w in started)
    assert "not in the key ring" not in logs
    for secret in fake.issued_tokens():
        assert secret not in logs
