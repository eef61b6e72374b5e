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
    # 2 per second: 5 verifications cross at least two second boundaries,
    # which takes just over a second when the first came at a second's end.
    assert elapsed >= 1.0, elapsed
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


# --- rekey --------------------------------------------------------------------


def open_sealed(key, account, field, sealed):
    """The plaintext of a sealed value (test side of common/crypto.c)."""
    import base64
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    key_id, raw = key
    assert sealed.startswith(f"{key_id}:"), sealed[:20]
    blob = base64.b64decode(sealed[len(key_id) + 1:])
    aad = f"pw-token-v1\n{key_id}\n{account}\n{field}".encode()
    return AESGCM(raw).decrypt(blob[:12], blob[12:], aad).decode()


def records(rds, accounts):
    pipe = rds.pipeline(transaction=False)
    for a in accounts:
        pipe.hgetall(f"pw:{{{a}}}:token")
    return {a: {k.decode(): v.decode() for k, v in r.items()}
            for a, r in zip(accounts, pipe.execute())}


def rekey(run_cli, env, *args):
    res = run_cli(["token", "rekey", *args], env=env, timeout=120)
    return res, (json.loads(res.stdout) if res.stdout.strip() else None)


def test_rekey_reseals_old_records_with_the_first_key(run_cli, worker_env, keyring, rds):
    k1, k2 = keyring.new_key("k1"), keyring.new_key("k2")
    env = worker_env(keys=[k2, k1])
    old = [f"acct-old-{i}" for i in range(40)]
    oauth = [f"acct-oauth-{i}" for i in range(10)]
    new = [f"acct-new-{i}" for i in range(10)]
    seed.seed_accounts(rds, k1, old, fence=3)
    seed.seed_accounts(rds, k1, oauth, refresh_token="rt-secret-refresh")
    seed.seed_accounts(rds, k2, new)
    accounts = old + oauth + new
    before = records(rds, accounts)

    res, report = rekey(run_cli, env, "--dry-run")
    assert res.returncode == 0, res.stderr
    assert report == {"dry_run": True, "primary_key_id": "k2",
                      "records_before": {"k1": 50, "k2": 10}, "records_after": {"k2": 60},
                      "would_rekey": 50, "changed_meanwhile": 0, "unreadable": 0, "left": 0}
    assert records(rds, accounts) == before  # a dry run changes nothing

    res, report = rekey(run_cli, env)
    assert res.returncode == 0, res.stderr
    assert report["records_before"] == {"k1": 50, "k2": 10}
    assert report["records_after"] == {"k2": 60}
    assert report["rekeyed"] == 50 and report["unreadable"] == 0 and report["left"] == 0
    after = records(rds, accounts)
    for a in accounts:
        b, r = before[a], after[a]
        # Same tokens, sealed with k2; nothing else in the record changed,
        # the fence least of all (a refresh holding the next one still wins).
        assert open_sealed(k2, a, "access_token", r["access_token"]) == f"THAA-seed-{a}"
        if a in oauth:
            assert open_sealed(k2, a, "refresh_token", r["refresh_token"]) == "rt-secret-refresh"
        assert {f: v for f, v in r.items() if not f.endswith("_token")} == \
            {f: v for f, v in b.items() if not f.endswith("_token")}
        if a in new:
            assert r == b
    for secret in ("THAA-seed", "rt-secret-refresh"):
        assert secret not in res.stdout + res.stderr
    # The old key can go: a ring of k2 alone opens every record.
    only_k2 = worker_env(keys=[k2])
    shown = run_cli(["token", "show", "--account", "acct-oauth-3"], env=only_k2)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["key_id"] == "k2"

    # Idempotent: a second run finds nothing to do.
    res, report = rekey(run_cli, env)
    assert res.returncode == 0
    assert report["rekeyed"] == 0 and report["records_before"] == {"k2": 60}
    assert records(rds, accounts) == after


def test_rekey_names_records_no_key_opens_and_exits_1(run_cli, worker_env, keyring, rds):
    k1, k2, gone = keyring.new_key("k1"), keyring.new_key("k2"), keyring.new_key("k0")
    env = worker_env(keys=[k2, k1])
    seed.seed_accounts(rds, k1, ["acct-a", "acct-b"])
    seed.seed_accounts(rds, gone, ["acct-lost"])
    rds.hset("pw:{acct-b}:token", "refresh_token", "k1:bm90IGEgc2VhbGVkIHZhbHVlIGF0IGFsbA==")
    for dry in (["--dry-run"], []):
        res, report = rekey(run_cli, env, *dry)
        assert res.returncode == 1
        assert report["unreadable"] == 2, report
        assert report["records_before"] == {"k1": 2, "k0": 1}
        assert "acct-lost" in res.stderr and "'k0'" in res.stderr and "acct-b" in res.stderr
    assert report["rekeyed"] == 1
    assert report["records_after"] == {"k2": 1, "k1": 1, "k0": 1}
    assert rds.hget("pw:{acct-lost}:token", "access_token").startswith(b"k0:")


def test_rekey_never_overwrites_a_token_written_meanwhile(run_cli, worker_env, keyring, rds):
    """Refreshes land while rekey runs: each is kept, none is overwritten
    with the re-sealed older token, and the run still ends with every record
    on the first key. Refreshes are written as pw_token_store_write_fenced()
    writes them (a newer fence, sealed with the first key)."""
    import threading
    k1, k2 = keyring.new_key("k1"), keyring.new_key("k2")
    env = worker_env(keys=[k2, k1])
    accounts = [f"acct-{i:05d}" for i in range(6000)]
    write = rds.register_script(
        "local cur = tonumber(redis.call('HGET', KEYS[1], 'fence') or '0')\n"
        "if tonumber(ARGV[1]) <= cur then return 0 end\n"
        "redis.call('HSET', KEYS[1], 'fence', ARGV[1], 'access_token', ARGV[2])\n"
        "return 1\n")
    for attempt in range(3):
        rds.flushdb()
        seed.seed_accounts(rds, k1, accounts, fence=1)
        refreshed, stop = {}, threading.Event()

        def refresher():
            n = 0
            while not stop.is_set():
                pipe = rds.pipeline(transaction=False)
                batch = accounts[(n * 37) % 6000:][:40]
                for a in batch:
                    refreshed[a] = f"THAA-refreshed-{a}-{n}"
                    write(keys=[f"pw:{{{a}}}:token"],
                          args=[n + 2, seed.seal(k2, a, "access_token", refreshed[a])],
                          client=pipe)
                pipe.execute()
                n += 1

        thread = threading.Thread(target=refresher)
        thread.start()
        try:
            res, report = rekey(run_cli, env)
        finally:
            stop.set()
            thread.join()
        assert res.returncode == 0, res.stderr
        assert report["left"] == 0 and report["unreadable"] == 0
        final = records(rds, accounts)
        for a in accounts:
            r = final[a]
            want = refreshed.get(a, f"THAA-seed-{a}")
            assert open_sealed(k2, a, "access_token", r["access_token"]) == want, a
        if report["changed_meanwhile"] > 0:
            break  # the race was run, and lost by nobody
    else:
        pytest.fail("no refresh landed between rekey's read and write in 3 runs")
    print(f"rekey vs refreshes: {report}, {len(refreshed)} accounts refreshed")


# --- delete -------------------------------------------------------------------


def account_keys(rds, account):
    """Every key that names the account, found by scanning the whole keyspace,
    and every index (sorted set or set) that holds it."""
    keys, indexes = [], []
    for key in rds.scan_iter(count=1000):
        if account.encode() in key:
            keys.append(key.decode())
            continue
        kind = rds.type(key)
        if kind == b"zset" and rds.zscore(key, account) is not None:
            indexes.append(key.decode())
        elif kind == b"set" and rds.sismember(key, account):
            indexes.append(key.decode())
    return sorted(keys), sorted(indexes)


def test_delete_answers_parked_posts_and_leaves_only_the_fence(worker_env, workers, fake, run_cli,
                                                               topics, kafka_bootstrap, rds):
    from harness import consume_json, produce_many, wait_until
    from posts import RESULT_SCHEMA, request
    env = worker_env()
    now = int(time.time())
    # Due for a refresh: a sweep that still knew the account would act on it.
    user, token = connect_account(run_cli, env, fake, "acct-del", issued_at=now - 50 * 86400,
                                  expires_in=51 * 86400)
    connect_account(run_cli, env, fake, "acct-keep")
    produce_many(kafka_bootstrap, topics["requests"], [("acct-del", request("acct-del"))])
    w = workers.start(env)
    wait_until(lambda: len(consume_json(kafka_bootstrap, topics["results"], 1, 2)) == 1, 30)
    fake.revoke(user_id=user)
    parked = [request("acct-del", post_id=f"del-{i}") for i in range(4)]
    produce_many(kafka_bootstrap, topics["requests"], [("acct-del", r) for r in parked])
    wait_until(lambda: rds.llen("pw:{acct-del}:parked") == 4, 30)
    assert w.stop() == 0
    fence_before = int(rds.get("pw:{acct-del}:fence"))
    keep_before = account_keys(rds, "acct-keep")
    refreshes = fake.stats()["refreshes"].get(user, 0)
    keys, _ = account_keys(rds, "acct-del")
    assert any(":post:" in k for k in keys) and any(":alert:" in k for k in keys)

    res = run_cli(["token", "delete", "--account", "acct-del"], env=env)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["found"] is True and summary["parked_answered"] == 4
    assert summary["keys_removed"] == len(keys) - 1  # all but the fence
    assert token not in res.stdout + res.stderr

    results = [r for _, r in consume_json(kafka_bootstrap, topics["results"], 20, 5)]
    failed = [r for r in results if r["status"] == "failed"]
    assert [r["post_id"] for r in failed] == [r["post_id"] for r in parked]  # in order
    for r in failed:
        RESULT_SCHEMA.validate(r)
        assert r["error"]["class"] == "auth" and "token delete" in r["error"]["message"]
        assert r["worker_id"] == env["WORKER_ID"] and r["attempts"] == 0
    assert account_keys(rds, "acct-del") == (["pw:{acct-del}:fence"], [])
    assert account_keys(rds, "acct-keep") == keep_before

    # The sweeps forget it: no refresh, no alert, no result.
    alerts = len(consume_json(kafka_bootstrap, topics["alerts"], 100, 3))
    w = workers.start(worker_env(TOKEN_SWEEP_INTERVAL_S="1"))
    w.wait_ready()
    time.sleep(4)
    assert w.stop() == 0
    assert fake.stats()["refreshes"].get(user, 0) == refreshes
    assert len(consume_json(kafka_bootstrap, topics["alerts"], 100, 3)) == alerts
    assert len(consume_json(kafka_bootstrap, topics["results"], 100, 3)) == len(results)
    assert account_keys(rds, "acct-del") == (["pw:{acct-del}:fence"], [])

    # A later token put works, with a fence above any taken before.
    user2, _ = connect_account(run_cli, env, fake, "acct-del")
    assert int(rds.hget("pw:{acct-del}:token", "fence")) == fence_before + 1
    rows, _ = list_json(run_cli, env)
    assert {r["account_id"]: r["state"] for r in rows} == {"acct-del": "active",
                                                          "acct-keep": "active"}


def test_delete_of_an_account_with_nothing_stored_is_found_false(run_cli, worker_env, rds):
    res = run_cli(["token", "delete", "--account", "acct-never"], env=worker_env())
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"account_id": "acct-never", "found": False,
                                      "parked_answered": 0, "keys_removed": 0,
                                      "index_entries_removed": 0}
    assert "nothing stored" in res.stderr
    assert rds.dbsize() == 0


def test_delete_waits_for_a_worker_replaying_the_account(run_cli, worker_env, rds):
    import threading
    env = worker_env()
    put(run_cli, env, "acct-busy")
    rds.set("pw:{acct-busy}:replay_lock", "test-worker-9/12345", px=60000)
    res = run_cli(["token", "delete", "--account", "acct-busy", "--wait", "1"], env=env)
    assert res.returncode == 1
    assert "test-worker-9/12345" in res.stderr and "nothing removed" in res.stderr
    assert rds.exists("pw:{acct-busy}:token") == 1
    # The replay ends within the wait: delete goes ahead.
    threading.Timer(1.0, lambda: rds.delete("pw:{acct-busy}:replay_lock")).start()
    started = time.monotonic()
    res = run_cli(["token", "delete", "--account", "acct-busy", "--wait", "10"], env=env)
    assert res.returncode == 0, res.stderr
    assert time.monotonic() - started >= 0.9
    assert rds.exists("pw:{acct-busy}:token") == 0


def test_delete_removes_nothing_when_kafka_cannot_take_the_answers(run_cli, worker_env, rds):
    env = worker_env()
    put(run_cli, env, "acct-stuck")
    value = json.dumps({"schema": "publish.request.v1", "event_id": "e1", "post_id": "p1",
                        "account_id": "acct-stuck", "post": {"media_type": "TEXT",
                                                            "text": "hi"}})
    rds.rpush("pw:{acct-stuck}:parked", value)
    rds.sadd("pw:parked_accounts", "acct-stuck")
    before = account_keys(rds, "acct-stuck")
    down = {**env, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "RDKAFKA_MESSAGE_TIMEOUT_MS": "1500"}
    res = run_cli(["token", "delete", "--account", "acct-stuck"], env=down)
    assert res.returncode == 1
    assert "not answered" in res.stderr and "Nothing removed" in res.stderr
    assert account_keys(rds, "acct-stuck") == before
    assert rds.exists("pw:{acct-stuck}:replay_lock") == 0  # released


def test_verify_checks_the_scopes_the_record_names(run_cli, worker_env, fake):
    """Scopes beyond publishing are read with debug_token."""
    env = worker_env()
    scopes = ["threads_basic", "threads_content_publish", "threads_manage_replies"]
    connect_account(run_cli, env, fake, "acct-scoped", scopes=scopes)
    res = run_cli(["token", "verify", "--account", "acct-scoped"], env=env)
    assert res.returncode == 0, res.stderr
    # The same record over a token granted less: missing_scope, named.
    fake.register_token("THAA-narrow", "u-acct-scoped", scopes=scopes[:2])
    put(run_cli, env, "acct-scoped", token="THAA-narrow", user_id="u-acct-scoped",
        extra=["--scopes", ",".join(scopes)])
    res = run_cli(["token", "verify", "--account", "acct-scoped"], env=env)
    assert res.returncode == 1
    line, = json_lines(res.stdout)
    assert line["outcome"] == "missing_scope"
    assert "threads_manage_replies" in line["message"]
    assert fake.stats()["requests_by_endpoint"]["debug_token"] == 3  # put, verify, verify
