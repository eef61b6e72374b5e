"""The fake Threads API's failure injection, driven over HTTP with no worker:
each kind of failure reaches a client in the shape the fault tests rely on,
only for the user, endpoint and count it was queued for, and the counters
see it (FAILURE INJECTION in tests/tools/fake_threads/fake.h)."""

import json
import os
import socket
import threading
import time
import uuid
from urllib.parse import urlencode, urlsplit

import pytest
import requests

from harness import wait_until


@pytest.fixture(scope="session")
def threads_url():
    """The fake's plain-HTTP listener (same state as the HTTPS one): these
    tests read the raw bytes of its faults off the socket."""
    url = os.environ.get("PW_TEST_THREADS_HTTP_URL")
    if not url:
        pytest.skip("PW_TEST_THREADS_HTTP_URL not set: fake-threads is not running")
    return url


@pytest.fixture
def account(fake):
    """(user_id, access_token) registered on the freshly reset fake."""
    user, token = "u-" + uuid.uuid4().hex[:8], "tok-" + uuid.uuid4().hex
    fake.register_token(token, user)
    return user, token


def create(threads_url, account, timeout=10):
    user, token = account
    return requests.post(f"{threads_url}/v1.0/{user}/threads", timeout=timeout,
                         data={"media_type": "TEXT", "text": "hello", "access_token": token})


def publish(threads_url, account, container, timeout=10):
    user, token = account
    return requests.post(f"{threads_url}/v1.0/{user}/threads_publish", timeout=timeout,
                         data={"creation_id": container, "access_token": token})


def raw_create(threads_url, account):
    """POSTs a container creation on a connection of its own and reads until
    the server closes it: (bytes received, the OSError that ended the read or
    None after a clean end of stream)."""
    user, token = account
    url = urlsplit(threads_url)
    body = urlencode({"media_type": "TEXT", "text": "hello", "access_token": token}).encode()
    head = (f"POST /v1.0/{user}/threads HTTP/1.1\r\nHost: {url.netloc}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(head.encode() + body)
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except OSError as e:
            return data, e
    return data, None


def parse(data):
    """(status, {lower-case header: value}, body) of one raw HTTP response."""
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


def not_json(text):
    try:
        json.loads(text)
    except ValueError:
        return True
    return False


def injected(fake):
    stats = fake.stats()
    kinds = {k: n for k, n in stats["injected_failures"].items() if n}
    endpoints = {e: n for e, n in stats["injected_failures_by_endpoint"].items() if n}
    errors = {e: n for e, n in stats["errors_by_endpoint"].items() if n}
    return kinds, endpoints, errors


def test_html_401_and_403_pages_carry_no_graph_error(threads_url, fake, account):
    user, token = account
    fake.fail("threads", 401, kind="html", user_id=user)
    fake.fail("container", 403, kind="html", user_id=user)

    r = create(threads_url, account)
    assert r.status_code == 401
    assert r.headers["Content-Type"] == "text/html"
    assert r.text.startswith("<html>") and "401 Unauthorized" in r.text
    assert not_json(r.text) and "OAuthException" not in r.text

    container = create(threads_url, account).json()["id"]  # the count was 1
    status_url = f"{threads_url}/v1.0/{container}"
    r = requests.get(status_url, params={"access_token": token}, timeout=10)
    assert r.status_code == 403
    assert r.headers["Content-Type"] == "text/html" and "403 Forbidden" in r.text
    assert requests.get(status_url, params={"access_token": token}, timeout=10).ok

    assert injected(fake) == ({"html": 2}, {"threads": 1, "container": 1},
                              {"threads": 1, "container": 1})


def test_the_oauth2_endpoint_challenges_a_wrong_client_but_a_proxy_page_does_not(threads_url,
                                                                                   fake):
    """A wrong client secret gets RFC 6749's 401 invalid_client with a Basic
    challenge; an injected HTML 401 (a proxy's) carries no challenge."""
    user, refresh = "u-" + uuid.uuid4().hex[:8], "rt-" + uuid.uuid4().hex
    fake.register_token("tok-" + uuid.uuid4().hex, user, refresh_token=refresh)
    url, form = f"{threads_url}/oauth2/token", {"grant_type": "refresh_token",
                                                 "refresh_token": refresh}
    r = requests.post(url, data=form, auth=("pw-client", "wrong"), timeout=10)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    assert r.headers["WWW-Authenticate"].startswith("Basic ")
    fake.fail("oauth2", 401, kind="html", user_id=user)
    r = requests.post(url, data=form, auth=("pw-client", "pw-secret"), timeout=10)
    assert r.status_code == 401 and r.headers["Content-Type"] == "text/html"
    assert "WWW-Authenticate" not in r.headers
    r = requests.post(url, data=form, auth=("pw-client", "pw-secret"), timeout=10)
    assert r.status_code == 200 and r.json()["access_token"]


def test_a_5xx_burst_then_success(threads_url, fake, account):
    fake.fail("threads", 500, 2, count=2)
    fake.fail("threads", 502, kind="html")
    fake.fail("threads", 503, 2, retry_after=7)

    answers = [create(threads_url, account) for _ in range(5)]
    assert [r.status_code for r in answers] == [500, 500, 502, 503, 200]
    assert answers[0].json()["error"]["code"] == 2
    assert answers[2].headers["Content-Type"] == "text/html"
    assert answers[3].headers["Retry-After"] == "7"
    assert injected(fake) == ({"json": 3, "html": 1}, {"threads": 4}, {"threads": 4})


def test_close_ends_the_connection_without_a_response(threads_url, fake, account):
    user, _ = account
    other = ("u-other", "tok-other-" + uuid.uuid4().hex)
    fake.register_token(other[1], other[0])
    fake.fail("threads", kind="close", count=2, user_id=user)

    assert raw_create(threads_url, account) == (b"", None)  # an orderly end of stream
    assert create(threads_url, other).ok  # another user's request is not touched
    with pytest.raises(requests.ConnectionError):
        create(threads_url, account)
    assert create(threads_url, account).ok
    assert injected(fake) == ({"close": 2}, {"threads": 2}, {"threads": 2})


def test_reset_aborts_the_connection_without_a_response(threads_url, fake, account):
    fake.fail("threads", kind="reset", count=2)

    data, error = raw_create(threads_url, account)
    assert data == b"" and isinstance(error, ConnectionResetError)
    with pytest.raises(requests.ConnectionError):
        create(threads_url, account)
    assert create(threads_url, account).ok
    assert injected(fake) == ({"reset": 2}, {"threads": 2}, {"threads": 2})


def test_short_body_sends_less_than_its_content_length(threads_url, fake, account):
    fake.fail("threads", 503, kind="short_body")
    data, error = raw_create(threads_url, account)
    status, headers, body = parse(data)
    assert error is None and status == 503
    assert 0 < len(body) < int(headers["content-length"])
    assert body.startswith(b'{"error":')
    assert fake.stats()["containers_created"] == 0

    # processed: the container exists, its id is in the part that never came
    # (read raw: Debian's urllib3 1.26 does not check Content-Length; curl does)
    fake.fail("threads", kind="short_body", processed=True)
    data, error = raw_create(threads_url, account)
    status, headers, body = parse(data)
    assert error is None and status == 200
    assert body.startswith(b'{"id":"') and int(headers["content-length"]) == 2 * len(body)
    assert fake.stats()["containers_created"] == 1
    assert injected(fake) == ({"short_body": 2}, {"threads": 2}, {"threads": 2})


def test_cut_json_is_a_whole_response_with_half_a_body(threads_url, fake, account):
    fake.fail("threads", 500, kind="cut_json")
    data, error = raw_create(threads_url, account)
    status, headers, body = parse(data)
    assert error is None and status == 500
    assert int(headers["content-length"]) == len(body)
    assert body.startswith(b'{"error":') and not_json(body)

    # processed: published, and the answer with the media id is unreadable
    container = create(threads_url, account).json()["id"]
    fake.fail("threads_publish", kind="cut_json", processed=True)
    r = publish(threads_url, account, container)
    assert r.status_code == 200 and int(r.headers["Content-Length"]) == len(r.content)
    assert r.text.startswith('{"id":') and not_json(r.text)
    assert fake.stats()["publications_total"] == 1
    assert injected(fake) == ({"cut_json": 2}, {"threads": 1, "threads_publish": 1},
                              {"threads": 1, "threads_publish": 1})


def test_hang_outlasts_the_client_timeout(threads_url, fake, account):
    container = create(threads_url, account).json()["id"]
    fake.fail("threads_publish", kind="hang", hang_ms=2000, processed=True)
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        publish(threads_url, account, container, timeout=0.5)
    # processed: the post went out before the hang, the answer never comes
    stats = fake.stats()
    assert stats["publications_total"] == 1 and stats["concurrent_requests"] == 1
    wait_until(lambda: fake.stats()["concurrent_requests"] == 0, 10)
    assert time.monotonic() - started >= 1.9
    assert injected(fake) == ({"hang": 1}, {"threads_publish": 1}, {"threads_publish": 1})


def test_reset_ends_a_hang(threads_url, fake, account):
    fake.fail("threads", kind="hang")  # the default: two minutes
    outcome = []

    def call():
        try:
            outcome.append(create(threads_url, account, timeout=30))
        except requests.ConnectionError as e:
            outcome.append(e)

    caller = threading.Thread(target=call)
    caller.start()
    wait_until(lambda: fake.stats()["concurrent_requests"] == 1, 10)
    started = time.monotonic()
    fake.reset()
    caller.join(10)
    assert not caller.is_alive() and time.monotonic() - started < 5
    assert isinstance(outcome[0], requests.ConnectionError)  # closed, no response
    assert fake.stats()["concurrent_requests"] == 0


@pytest.mark.parametrize("entry", [
    {"kind": "teapot"},
    {"kind": "json", "hang_ms": 1000},
    {"kind": "hang", "hang_ms": -1},
    {"processed": "yes"},
])
def test_bad_failure_entries_are_refused(threads_url, fake, entry):
    r = requests.post(f"{threads_url}/__control/failures", json=entry, timeout=10)
    assert r.status_code == 400 and "kind" in r.json()["error"]
