"""The HTTP endpoints on a real socket: health, readiness, metrics, status, webhook HMAC."""

from __future__ import annotations

import base64
import json
import logging
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from gitops_harness import http, sign

from reconciler.daemon.metrics import Metrics
from reconciler.daemon.server import Endpoints, Server, allowed_hosts, parse_listen
from reconciler.daemon.state import DaemonState, Outcome, PassRecord

SECRET = "it's a secret to everybody"
PUSH_MAIN = json.dumps({"ref": "refs/heads/main", "after": "a" * 40}).encode()


class Served:
    def __init__(self, secret: str | None) -> None:
        self.triggers: list[str] = []
        self.state = DaemonState(repo="https://example.com/c.git", branch="main", path="",
                                 mode="git")
        self.metrics = Metrics()
        self.server = Server("127.0.0.1:0", Endpoints(
            state=self.state, metrics=self.metrics, alive=lambda: True,
            trigger=self.triggers.append, secret=secret, branch="main"))
        self.server.start()
        self.url = f"http://{self.server.address}"

    def post(self, body: bytes, signature: str | None, event: str = "push") -> int:
        headers = {"X-GitHub-Event": event, "Content-Type": "application/json"}
        if signature is not None:
            headers["X-Hub-Signature-256"] = signature
        return http(self.url + "/webhook", data=body, headers=headers)[0]


@pytest.fixture
def served() -> Iterator[Served]:
    served = Served(SECRET)
    yield served
    served.server.close()


def test_health_readiness_status_and_metrics(served: Served) -> None:
    assert http(served.url + "/healthz")[0] == 200
    assert http(served.url + "/readyz")[0] == 503
    record = PassRecord(1, "start", "c" * 40, "applied", "2026-11-22T10:00:00Z", 0.5,
                        {"create": 1})
    served.state.seen("c" * 40)
    served.state.record(record, Outcome("applied", {"create": 1},
                                        pools={"desired": 1, "ready": 1, "items": []}))
    assert http(served.url + "/readyz")[0] == 200
    code, body = http(served.url + "/status")
    status = json.loads(body)
    assert code == 200
    assert {"repo", "branch", "path", "lastSeenCommit", "lastAppliedCommit",
            "lastFailedCommit", "pools", "history", "ready"} <= set(status)
    assert status["lastAppliedCommit"] == "c" * 40 and status["history"][0]["pass"] == 1
    served.metrics.record_pass("applied", 0.5)
    code, body = http(served.url + "/metrics")
    text = body.decode()
    for name in ("reconciler_passes_total", "reconciler_pass_duration_seconds_bucket",
                 "reconciler_last_applied_timestamp_seconds", "reconciler_warm_pools",
                 "reconciler_drift_detected_total"):
        assert name in text
    assert http(served.url + "/nothing")[0] == 404


def test_a_valid_signature_triggers_a_pass(served: Served) -> None:
    assert served.post(PUSH_MAIN, sign(SECRET, PUSH_MAIN)) == 202
    assert served.triggers == ["webhook"]


@pytest.mark.parametrize("signature", [None, "", "sha256=" + "0" * 64, "sha1=abc",
                                       sign("wrong secret", PUSH_MAIN)])
def test_a_bad_or_missing_signature_is_refused_and_does_nothing(served: Served,
                                                               signature: str | None) -> None:
    assert served.post(PUSH_MAIN, signature) == 401
    assert served.triggers == []


def test_ping_other_branches_and_oversized_bodies(served: Served) -> None:
    ping = b'{"zen": "Keep it simple."}'
    assert served.post(ping, sign(SECRET, ping), event="ping") == 200
    other = json.dumps({"ref": "refs/heads/feature"}).encode()
    assert served.post(other, sign(SECRET, other)) == 202
    big = b"x" * (1024 * 1024 + 1)
    assert served.post(big, sign(SECRET, big)) == 413
    assert served.triggers == []


def test_an_oversized_body_sent_slowly_still_gets_its_413(served: Served) -> None:
    """The server must not close on unread data (the kernel would reset the connection
    and the client would never read the 413): the body arrives in pieces, after the
    server has already seen from the headers that it is too big."""
    host, port = served.url.removeprefix("http://").split(":")
    body = b"x" * (1024 * 1024 + 1)
    head = (f"POST /webhook HTTP/1.1\r\nHost: {host}\r\nX-GitHub-Event: push\r\n"
            f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(head)
        conn.settimeout(0.05)
        try:  # a server that answers at once and closes has something to read already
            early = conn.recv(65536)
        except TimeoutError:
            early = b""
        conn.settimeout(10)
        assert early == b"", early[:100]
        for start in range(0, len(body), 64 * 1024):
            conn.sendall(body[start:start + 64 * 1024])
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    response = b"".join(chunks)
    assert response.split(b"\r\n", 1)[0].endswith(b"413 Request Entity Too Large"), response
    assert served.triggers == []


def raw_post(url: str, length_headers: list[str], body: bytes) -> bytes:
    """POST /webhook with exactly these Content-Length values; the raw response."""
    host, port = url.removeprefix("http://").split(":")
    head = "".join(f"Content-Length: {value}\r\n" for value in length_headers)
    request = (f"POST /webhook HTTP/1.1\r\nHost: {host}\r\nX-GitHub-Event: push\r\n"
               f"X-Hub-Signature-256: {sign(SECRET, body)}\r\n{head}\r\n").encode() + body
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(request)
        conn.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("lengths", [["abc"], ["-5"], [" 1e3"], ["+12"], ["12", "13"]])
def test_a_bad_content_length_is_a_400_and_does_nothing(served: Served, lengths: list[str],
                                                        capfd: pytest.CaptureFixture[str]) -> None:
    response = raw_post(served.url, lengths, PUSH_MAIN)
    assert response.startswith(b"HTTP/1.0 400 ") or response.startswith(b"HTTP/1.1 400 "), \
        response[:200]
    assert b"Content-Length is invalid" in response  # waitress refuses it before our handler
    assert served.triggers == []
    assert "Traceback" not in capfd.readouterr().err
    good = raw_post(served.url, [str(len(PUSH_MAIN))], PUSH_MAIN)
    assert good.split(b" ", 2)[1] == b"202" and served.triggers == ["webhook"]


def test_without_a_secret_every_delivery_is_refused() -> None:
    served = Served(None)
    try:
        assert served.post(PUSH_MAIN, sign("", PUSH_MAIN)) == 401
        assert served.triggers == []
    finally:
        served.server.close()


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_listen(":0") == ("127.0.0.1", 0)
    with pytest.raises(ValueError):
        parse_listen("localhost")


def test_head_of_every_route_answers_as_its_get_without_a_body(served: Served) -> None:
    """prometheus-client's app answered HEAD /metrics with 405 (and `Allow: OPTIONS,GET`,
    while OPTIONS is a 405 too); every route is GET or HEAD."""
    served.metrics.record_pass("applied", 0.5)
    for path, kind in [("/metrics", "text/plain; version=0.0.4"), ("/status", "application/json"),
                       ("/healthz", "text/plain")]:
        get_code, get_body = http(served.url + path)
        request = urllib.request.Request(served.url + path, method="HEAD")
        with urllib.request.urlopen(request, timeout=5) as response:
            assert (response.status, response.read()) == (200, b""), path
            assert response.headers["Content-Type"].startswith(kind), path
            assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
            assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert get_code == 200 and get_body, path
    code, _ = http(served.url + "/metrics", headers={"Accept-Encoding": "gzip"})
    assert code == 200
    request = urllib.request.Request(served.url + "/metrics", method="OPTIONS")
    try:
        urllib.request.urlopen(request, timeout=5)
        raise AssertionError("OPTIONS answered")
    except urllib.error.HTTPError as exc:
        assert exc.code == 405 and exc.headers["Allow"] == "GET, HEAD"


def test_the_token_as_bearer_or_basic_password_even_when_not_ascii() -> None:
    """A WSGI header is its bytes as ISO-8859-1: a non-ASCII token sent as UTF-8 by a
    Bearer client was compared as mojibake and never matched."""
    token = "s3cr\u00e9t-\u00fc-token"
    state = DaemonState(repo="r", branch="main", path="", mode="git")
    server = Server("127.0.0.1:0", Endpoints(
        state=state, metrics=Metrics(), alive=lambda: True, trigger=lambda _: None,
        secret=SECRET, branch="main", token=token))
    server.start()
    url = f"http://{server.address}/status"

    def status(authorization: bytes | None) -> int:
        with socket.create_connection(server.address.rsplit(":", 1), timeout=5) as conn:
            auth = b"Authorization: " + authorization + b"\r\n" if authorization else b""
            conn.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + auth +
                         b"\r\n")
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
        return int(answer.split(b" ", 2)[1])

    try:
        basic = base64.b64encode(f"anyone:{token}".encode())
        assert status(b"Bearer " + token.encode()) == 200
        assert status(b"bearer  " + token.encode()) == 200
        assert status(b"Basic " + basic) == 200
        assert status(b"Basic " + base64.b64encode(b"\xff\xfe:" + token.encode())) == 200
        assert status(b"Bearer " + token.encode("latin-1")) == 401
        assert status(b"Bearer " + token.encode()[:-1]) == 401
        assert status(b"Basic " + base64.b64encode(token.encode())) == 401  # no user: part
        assert status(b"Basic %%%") == 401 and status(b"Token " + token.encode()) == 401
        assert status(None) == 401
        assert http(url.replace("/status", "/healthz"))[0] == 200
    finally:
        server.close()


def test_the_delivery_id_logged_is_only_what_a_guid_may_hold(
        served: Served, caplog: pytest.LogCaptureFixture) -> None:
    """The header is logged before the signature is known good: an anonymous client could
    forge `key=value` fields in the text log, or log 64 KiB a request."""
    caplog.set_level(logging.INFO, logger="reconciler.daemon.web")
    for value in ["72d3162e-cc78-11e3-81ab-4c9367dc0958", "x result=applied pass=1", "a" * 9000]:
        http(served.url + "/webhook", data=b"{}", headers={"X-GitHub-Delivery": value})
    logged = [r.__dict__["delivery"] for r in caplog.records if "delivery" in r.__dict__]
    assert logged == ["72d3162e-cc78-11e3-81ab-4c9367dc0958", "x?result?applied?pass?1", "a" * 64]
    assert served.triggers == []


def test_without_a_token_on_loopback_only_this_machines_names_are_answered() -> None:
    """DNS rebinding: a web page whose name resolves to 127.0.0.1 could read an open
    dashboard, /status and /metrics. Without a token, a daemon on the loopback interface
    answers them only for localhost, IP literals and RECONCILER_ALLOWED_HOSTS."""
    assert allowed_hosts("0.0.0.0", None, None) is None  # beyond loopback: warned at start
    assert allowed_hosts("127.0.0.1", "token", None) is None  # the token guards it
    state = DaemonState(repo="r", branch="main", path="", mode="git")
    server = Server("127.0.0.1:0", Endpoints(
        state=state, metrics=Metrics(), alive=lambda: True, trigger=lambda _: None,
        secret=SECRET, branch="main",
        hosts=allowed_hosts("127.0.0.1", None, " dash.example ,other.example")))
    server.start()

    def status(path: str, host: str) -> int:
        with socket.create_connection(server.address.rsplit(":", 1), timeout=5) as conn:
            conn.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
                         .encode())
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
        return int(answer.split(b" ", 2)[1])

    try:
        for host in ("127.0.0.1:8080", "localhost:8080", "LOCALHOST", "[::1]:8080",
                     "127.0.0.1", "dash.example", "Dash.Example.:80", "other.example"):
            assert status("/status", host) == 200, host
        for path in ("/status", "/metrics", "/", "/reservations"):
            assert status(path, "rebind.evil.example") == 421, path
        assert status("/status", "") == 421
        assert status("/healthz", "rebind.evil.example") == 200  # probes stay open
    finally:
        server.close()
