"""Helpers of the pipeline tests: accounts, requests, results, schemas."""
import json
import pathlib
import time
import uuid

import jsonschema

SCHEMAS = pathlib.Path(__file__).resolve().parents[2] / "schemas"
EXAMPLES = SCHEMAS / "examples"


def schema(name):
    return json.loads((SCHEMAS / f"{name}.json").read_text())


def validator(name):
    return jsonschema.Draft202012Validator(schema(name))


RESULT_SCHEMA = validator("publish.result.v1")
ALERT_SCHEMA = validator("publish.alert.v1")
ACCOUNT_EVENT_SCHEMA = validator("account.event.v1")
DLQ_HEADERS_SCHEMA = validator("publish.dlq.headers")


def connect_account(run_cli, env, fake, account, user_id=None, token=None,
                    expires_in=60 * 24 * 3600, issued_at=None, scopes=None, refresh_token=None,
                    verify=True):
    """Registers a token with the fake Threads API and stores it with token put
    (with a refresh_token: the oauth2 method). expires_in counts from issued_at
    (default: two days ago, so a threads token may be refreshed). verify=False
    stores it with --no-verify: a token that token put would refuse (one that
    may not publish, say), as an older worker version may have stored it."""
    user_id = user_id or f"u-{account}"
    token = token or f"THAA-{account}-{uuid.uuid4().hex}"
    issued_at = issued_at if issued_at is not None else int(time.time()) - 2 * 86400
    fake.register_token(token, user_id, expires_at=issued_at + expires_in, issued_at=issued_at,
                        scopes=scopes, refresh_token=refresh_token)
    args = ["token", "put", "--account", account, "--user-id", user_id,
            "--expires-in", str(expires_in), "--issued-at", str(issued_at)]
    stdin = token + "\n"
    if refresh_token:
        args += ["--refresh-method", "oauth2"]
        stdin += refresh_token + "\n"
    if scopes:
        args += ["--scopes", ",".join(scopes)]
    if not verify:
        args.append("--no-verify")
    res = run_cli(args, env=env, input=stdin)
    assert res.returncode == 0, res.stderr
    return user_id, token


def request(account, post_id=None, media_type="TEXT", text=None, event_id=None, **post):
    post_id = post_id or f"post-{uuid.uuid4().hex[:12]}"
    body = {"media_type": media_type}
    if media_type == "TEXT" or text is not None:
        body["text"] = text if text is not None else f"{account} {post_id}"
    if media_type == "IMAGE":
        body.setdefault("image_url", "https://cdn.example/img.jpg")
    if media_type == "VIDEO":
        body.setdefault("video_url", "https://cdn.example/vid.mp4")
    if media_type == "CAROUSEL":
        body["children"] = [
            {"media_type": "IMAGE", "image_url": "https://cdn.example/1.jpg"},
            {"media_type": "VIDEO", "video_url": "https://cdn.example/2.mp4"},
        ]
    body.update(post)
    return {
        "schema": "publish.request.v1",
        "event_id": event_id or str(uuid.uuid4()),
        "post_id": post_id,
        "account_id": account,
        "created_at": "2026-11-25T20:00:00Z",
        "post": body,
    }


def results_by_post(results):
    out = {}
    for _, r in results:
        out.setdefault(r["post_id"], []).append(r)
    return out


def check_results(results):
    """Every result conforms to the schema and carries no secret-looking value."""
    for _, r in results:
        RESULT_SCHEMA.validate(r)
        assert "THAA" not in json.dumps(r)


def published_texts(fake, user_id):
    """The texts Threads published for user_id, in order."""
    return [p["text"] for p in fake.stats()["publications"].get(user_id, [])]
