"""The fake Threads API's account endpoints, driven over HTTP with no worker:
GET /v1.0/me, GET /v1.0/{user-id}/threads_publishing_limit and the publishing
quota that threads_publish enforces (THE ENDPOINTS and THE PUBLISHING QUOTA in
tests/tools/fake_threads/fake.h): their shapes, Meta's token checks, the
quota reached and freed by the fake clock, injected failures and counters."""

import time
import uuid

import pytest
import requests

LIMIT_REACHED = (400, 9, 2207042)  # Instagram's documented answer, see CHOICES in fake.h


@pytest.fixture
def account(fake):
    """(user_id, access_token) registered on the freshly reset fake."""
    user, token = "u-" + uuid.uuid4().hex[:8], "tok-" + uuid.uuid4().hex
    fake.register_token(token, user)
    return user, token


def me(threads_url, token, fields=None):
    params = {"access_token": token}
    if fields is not None:
        params["fields"] = fields
    return requests.get(f"{threads_url}/v1.0/me", params=params, timeout=10)


def limit(threads_url, user, token, fields="quota_usage,config"):
    params = {"access_token": token}
    if fields is not None:
        params["fields"] = fields
    return requests.get(f"{threads_url}/v1.0/{user}/threads_publishing_limit", params=params,
                        timeout=10)


def post_text(threads_url, account, text="hello"):
    """Creates a TEXT container and publishes it: the publish response."""
    user, token = account
    r = requests.post(f"{threads_url}/v1.0/{user}/threads", timeout=10,
                      data={"media_type": "TEXT", "text": text, "access_token": token})
    assert r.ok, r.text
    return requests.post(f"{threads_url}/v1.0/{user}/threads_publish", timeout=10,
                         data={"creation_id": r.json()["id"], "access_token": token})


def graph_error(r):
    e = r.json()["error"]
    return r.status_code, e["code"], e.get("error_subcode")


def counters(fake, name):
    stats = fake.stats()
    return stats["requests_by_endpoint"][name], stats["errors_by_endpoint"][name]


# --- GET /v1.0/me -------------------------------------------------------------

def test_me_answers_id_by_default_and_the_requested_fields(threads_url, fake, account):
    user, token = account
    assert me(threads_url, token).json() == {"id": user}
    body = me(threads_url, token, "id,username").json()
    assert body == {"id": user, "username": f"user_{user}"}
    body = me(threads_url, token, "username, threads_profile_picture_url,threads_biography,"
              "name,is_verified").json()
    assert set(body) == {"username", "threads_profile_picture_url", "threads_biography", "name",
                         "is_verified"}
    assert body["threads_profile_picture_url"].startswith("https://")
    assert body["is_verified"] is False
    assert counters(fake, "me") == (3, 0)


def test_me_answers_the_registered_username(threads_url, fake):
    fake.register_token("tok-named", "u-named", username="threads.api_test")
    assert me(threads_url, "tok-named", "username").json() == {"username": "threads.api_test"}
    # a bad username is refused, the earlier one stays
    r = requests.post(f"{threads_url}/__control/tokens", timeout=10,
                      json={"access_token": "tok-named", "user_id": "u-named",
                            "username": "no spaces"})
    assert r.status_code == 400
    assert me(threads_url, "tok-named", "username").json() == {"username": "threads.api_test"}


def test_me_refuses_an_unknown_field(threads_url, fake, account):
    r = me(threads_url, account[1], "id,followers_count")
    assert graph_error(r) == (400, 100, None)
    assert "nonexisting field (followers_count)" in r.json()["error"]["message"]
    assert counters(fake, "me") == (1, 1)


@pytest.mark.parametrize("case", ["unknown", "revoked", "refreshed", "expired", "no_basic"])
def test_me_runs_metas_token_checks(threads_url, fake, case):
    user, token = "u-" + uuid.uuid4().hex[:8], "tok-" + uuid.uuid4().hex
    expected = {"unknown": (400, 190, None), "revoked": (400, 190, 460),
                "refreshed": (400, 190, 467), "expired": (400, 190, 463),
                "no_basic": (403, 10, None)}[case]
    if case == "unknown":
        token = "tok-nobody"
    elif case == "expired":
        fake.register_token(token, user, expires_in=60)
        fake.advance_clock(61)
    elif case == "no_basic":
        fake.register_token(token, user, scopes=["threads_content_publish"])
    else:
        fake.register_token(token, user, issued_at=0)
        if case == "revoked":
            fake.revoke(user_id=user)
        else:
            r = requests.get(f"{threads_url}/refresh_access_token", timeout=10,
                             params={"grant_type": "th_refresh_token", "access_token": token})
            assert r.ok, r.text
    assert graph_error(me(threads_url, token, "id,username")) == expected
    assert counters(fake, "me") == (1, 1)


# --- GET /v1.0/{user-id}/threads_publishing_limit -----------------------------

def test_publishing_limit_has_metas_shape(threads_url, fake, account):
    user, token = account
    assert limit(threads_url, user, token).json() == {
        "data": [{"quota_usage": 0, "config": {"quota_total": 250, "quota_duration": 86400}}]}
    assert limit(threads_url, user, token, None).json() == {"data": [{"quota_usage": 0}]}
    assert limit(threads_url, user, token, "config").json() == {
        "data": [{"config": {"quota_total": 250, "quota_duration": 86400}}]}
    assert post_text(threads_url, account).ok
    assert limit(threads_url, "me", token, "quota_usage").json() == {"data": [{"quota_usage": 1}]}
    r = limit(threads_url, user, token, "quota_usage,reply_quota_usage")
    assert graph_error(r) == (400, 100, None)
    assert counters(fake, "publishing_limit") == (5, 1)


def test_publishing_limit_of_another_user_does_not_exist(threads_url, fake, account):
    user, token = account
    fake.register_token("tok-other", "u-other")
    r = limit(threads_url, "u-other", token)
    assert graph_error(r) == (400, 100, 33)
    assert "Object with ID 'u-other' does not exist" in r.json()["error"]["message"]
    assert counters(fake, "publishing_limit") == (1, 1)


@pytest.mark.parametrize("scopes", [["threads_basic"], ["threads_content_publish"]])
def test_publishing_limit_needs_basic_and_publish(threads_url, fake, scopes):
    fake.register_token("tok-narrow", "u-narrow", scopes=scopes)
    assert graph_error(limit(threads_url, "u-narrow", "tok-narrow")) == (403, 10, None)


def test_publishing_limit_runs_metas_token_checks(threads_url, fake, account):
    user, token = account
    fake.revoke(user_id=user, subcode=458)
    assert graph_error(limit(threads_url, user, token)) == (400, 190, 458)
    assert graph_error(limit(threads_url, user, "tok-nobody")) == (400, 190, None)


# --- the quota ------------------------------------------------------------------

def test_publishing_past_the_quota_is_refused_until_the_window_moves(threads_url, fake, account):
    user, token = account
    fake.settings(quota_total=3, quota_duration=3600)
    assert [post_text(threads_url, account, f"post {i}").status_code for i in range(3)] == [200] * 3
    r = post_text(threads_url, account, "one too many")
    assert graph_error(r) == LIMIT_REACHED
    assert "maximum number of posts" in r.json()["error"]["message"]
    assert r.json()["error"]["is_transient"] is False
    stats = fake.stats()
    assert stats["publications_total"] == 3 and len(stats["publications"][user]) == 3
    assert stats["quota_usage"] == {user: 3}
    assert stats["quota_rejections"] == {user: 1} and stats["quota_rejections_total"] == 1
    assert stats["errors_by_endpoint"]["threads_publish"] == 1
    assert limit(threads_url, user, token).json()["data"][0] == {
        "quota_usage": 3, "config": {"quota_total": 3, "quota_duration": 3600}}

    fake.advance_clock(3599)  # still inside the window
    assert graph_error(post_text(threads_url, account)) == LIMIT_REACHED
    fake.advance_clock(2)
    assert limit(threads_url, user, token, "quota_usage").json() == {"data": [{"quota_usage": 0}]}
    assert post_text(threads_url, account, "after the window").ok
    assert fake.quota_usage(user) == 1


def test_seeded_usage_fills_the_quota_of_one_user_only(threads_url, fake, account):
    user, token = account
    other = ("u-other", "tok-other")
    fake.register_token(other[1], other[0])
    assert fake.set_quota_usage(user, 250) == 250
    assert limit(threads_url, user, token, "quota_usage").json() == {"data": [{"quota_usage": 250}]}
    assert graph_error(post_text(threads_url, account)) == LIMIT_REACHED
    assert post_text(threads_url, other).ok  # another user's quota is its own
    stats = fake.stats()
    assert stats["quota_rejections"] == {user: 1}
    assert stats["quota_usage"] == {user: 250, "u-other": 1}
    assert stats["publications_total"] == 1  # seeding publishes nothing

    fake.advance_clock(86400)  # exactly one window later: all of it has left
    assert post_text(threads_url, account).ok


def test_seeded_usage_adds_to_the_window(threads_url, fake, account):
    user, _ = account
    assert post_text(threads_url, account).ok
    assert fake.set_quota_usage(user, 10) == 11
    fake.advance_clock(100)
    assert fake.set_quota_usage(user, 0) == 11
    fake.settings(quota_duration=50)  # the window shrinks: only what is newer than 50 s
    assert fake.quota_usage(user) == 0


def test_an_already_published_container_still_says_so_when_the_quota_is_full(threads_url, fake,
                                                                             account):
    user, token = account
    r = requests.post(f"{threads_url}/v1.0/{user}/threads", timeout=10,
                      data={"media_type": "TEXT", "text": "x", "access_token": token})
    form = {"creation_id": r.json()["id"], "access_token": token}
    assert requests.post(f"{threads_url}/v1.0/{user}/threads_publish", data=form, timeout=10).ok
    fake.set_quota_usage(user, 250)
    again = requests.post(f"{threads_url}/v1.0/{user}/threads_publish", data=form, timeout=10)
    assert graph_error(again) == (400, 24, 4279002)
    assert fake.stats()["quota_rejections_total"] == 0


def test_quota_total_zero_refuses_every_publication(threads_url, fake, account):
    fake.settings(quota_total=0)
    assert graph_error(post_text(threads_url, account)) == LIMIT_REACHED


@pytest.mark.parametrize("body", [
    {"usage": 3},
    {"user_id": "u", "usage": -1},
    {"user_id": "u", "usage": 1.5},
    {"user_id": "u", "usage": 100001},
    {"user_id": "", "usage": 1},
])
def test_bad_quota_controls_are_refused(threads_url, fake, body):
    r = requests.post(f"{threads_url}/__control/quota", json=body, timeout=10)
    assert r.status_code == 400 and "usage" in r.json()["error"]


@pytest.mark.parametrize("setting", [{"quota_total": -1}, {"quota_duration": 0},
                                     {"quota_total": "250"}])
def test_bad_quota_settings_are_refused(threads_url, fake, setting):
    r = requests.post(f"{threads_url}/__control/settings", json=setting, timeout=10)
    assert r.status_code == 400
    current = fake._call("GET", "settings")
    assert (current["quota_total"], current["quota_duration"]) == (250, 86400)


def test_reset_forgets_the_quota(threads_url, fake, account):
    user, token = account
    fake.settings(quota_total=1)
    fake.set_quota_usage(user, 1)
    fake.reset()
    fake.register_token(token, user)
    assert fake.stats()["quota_usage"] == {}
    assert fake._call("GET", "settings")["quota_total"] == 250
    assert post_text(threads_url, (user, token)).ok


# --- failure injection on the new endpoints -------------------------------------

def test_injected_failures_reach_me_and_publishing_limit_by_name(threads_url, fake, account):
    user, token = account
    fake.register_token("tok-other", "u-other")
    fake.fail("me", 503, 2, user_id=user, retry_after=5)
    fake.fail("publishing_limit", 500, kind="html")
    fake.fail("publishing_limit", 502, kind="cut_json", user_id=user)

    assert me(threads_url, "tok-other").ok  # another user's request is not touched
    r = me(threads_url, token)
    assert graph_error(r) == (503, 2, None) and r.headers["Retry-After"] == "5"
    assert me(threads_url, token).ok  # the count was 1

    r = limit(threads_url, user, token)
    assert r.status_code == 500 and r.headers["Content-Type"] == "text/html"
    r = limit(threads_url, "me", token)  # "me" is the token's user, for matching too
    assert r.status_code == 502 and r.text.startswith('{"error":')
    with pytest.raises(ValueError):
        r.json()
    assert limit(threads_url, user, token).ok

    stats = fake.stats()
    assert stats["requests_by_endpoint"]["me"] == 3
    assert stats["requests_by_endpoint"]["publishing_limit"] == 3
    assert stats["errors_by_endpoint"]["me"] == 1
    assert stats["errors_by_endpoint"]["publishing_limit"] == 2
    assert stats["injected_failures_by_endpoint"]["me"] == 1
    assert stats["injected_failures_by_endpoint"]["publishing_limit"] == 2
    assert stats["requests_by_endpoint"]["container"] == 0  # /me is not a container id


def test_latency_by_endpoint_names_the_new_endpoints(threads_url, fake):
    settings = fake.settings(latency_ms_by_endpoint={"me": 10, "publishing_limit": 20})
    assert settings["latency_ms_by_endpoint"] == {"me": 10, "publishing_limit": 20}


# --- GET /v1.0/debug_token ----------------------------------------------------

def debug_token(threads_url, input_token, access_token):
    return requests.get(f"{threads_url}/v1.0/debug_token", timeout=10,
                        params={"input_token": input_token, "access_token": access_token})


def test_debug_token_answers_the_tokens_user_scopes_and_times(threads_url, fake):
    user, token = "u-" + uuid.uuid4().hex[:8], "tok-" + uuid.uuid4().hex
    expires_at = int(time.time()) + 86400
    fake.register_token(token, user, scopes=["threads_basic", "threads_manage_replies"],
                        issued_at=1790000000, expires_at=expires_at)
    r = debug_token(threads_url, token, token)
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["user_id"] == user and data["type"] == "USER" and data["application"]
    assert data["scopes"] == ["threads_basic", "threads_manage_replies"]
    assert data["expires_at"] == expires_at
    assert isinstance(data["issued_at"], int) and data["is_valid"] is True
    assert counters(fake, "debug_token") == (1, 0)


def test_debug_token_runs_the_token_checks_on_the_callers_token(threads_url, fake, account):
    user, token = account
    fake.revoke(user_id=user)
    r = debug_token(threads_url, token, token)
    assert graph_error(r) == (400, 190, 460)
    unknown = debug_token(threads_url, "tok-unknown", "tok-unknown")
    assert graph_error(unknown)[1] == 190
    other, other_token = "u-" + uuid.uuid4().hex[:8], "tok-" + uuid.uuid4().hex
    fake.register_token(other_token, other)
    r = debug_token(threads_url, "tok-unknown", other_token)
    assert r.status_code == 200
    assert r.json()["data"]["is_valid"] is False and r.json()["data"]["scopes"] == []
    fake.fail("debug_token", status=500, code=2)
    assert debug_token(threads_url, other_token, other_token).status_code == 500
