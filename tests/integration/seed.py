"""Token records written straight into Redis, in the worker's own format, for
tests and benchmarks that need many accounts (token put runs once per
account and asks the API).

A record is what common/token_store.c writes: a hash pw:{ACCT}:token with
user_id, refresh_method, scopes, issued_at, expires_at, updated_at_ms,
fence, and access_token (and refresh_token) sealed as common/crypto.c seals
them: "KEY_ID:" + base64(nonce[12] | AES-256-GCM ciphertext | tag[16]) with
the associated data "pw-token-v1\\nKEY_ID\\nACCOUNT\\nFIELD". The worker
opens these records like its own (test_seed_records_open_like_token_put
checks that), so they are honest input for token list and token rekey.
"""
import base64
import os
import time

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def seal(key, account, field, plaintext):
    """key: (KEY_ID, 32 bytes). The sealed value the worker would store."""
    key_id, raw = key
    nonce = os.urandom(12)
    aad = f"pw-token-v1\n{key_id}\n{account}\n{field}".encode()
    blob = nonce + AESGCM(raw).encrypt(nonce, plaintext.encode(), aad)
    return f"{key_id}:{base64.b64encode(blob).decode()}"


def record(key, account, access_token, user_id=None, refresh_token=None, issued_at=None,
           expires_in=60 * 86400, fence=1, refreshed_at_ms=None):
    """The fields of pw:{account}:token."""
    issued_at = int(time.time()) - 86400 if issued_at is None else issued_at
    fields = {
        "user_id": user_id or f"u-{account}",
        "refresh_method": "oauth2" if refresh_token else "threads",
        "scopes": "",
        "issued_at": str(issued_at),
        "expires_at": str(issued_at + expires_in),
        "updated_at_ms": str(int(time.time() * 1000)),
        "fence": str(fence),
        "access_token": seal(key, account, "access_token", access_token),
    }
    if refresh_token:
        fields["refresh_token"] = seal(key, account, "refresh_token", refresh_token)
    if refreshed_at_ms:
        fields["refreshed_at_ms"] = str(refreshed_at_ms)
    return fields


def seed_accounts(rds, key, accounts, batch=1000, token=lambda a: f"THAA-seed-{a}", **kw):
    """Stores a record for each account as token put would (record, fence,
    active status, expiry index), pipelined. Returns {account: token}."""
    tokens = {}
    now_ms = str(int(time.time() * 1000))
    for start in range(0, len(accounts), batch):
        pipe = rds.pipeline(transaction=False)
        for account in accounts[start:start + batch]:
            tokens[account] = token(account)
            fields = record(key, account, tokens[account], **kw)
            pipe.hset(f"pw:{{{account}}}:token", mapping=fields)
            pipe.set(f"pw:{{{account}}}:fence", fields["fence"])
            pipe.hset(f"pw:{{{account}}}:account",
                      mapping={"status": "active", "reason": "token_put", "at_ms": now_ms})
            pipe.zadd("pw:token_expiry", {account: int(fields["expires_at"])})
        pipe.execute()
    return tokens
