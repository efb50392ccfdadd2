"""The HTTP endpoints on a real socket: health, readiness, metrics, status, webhook HMAC."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest
from gitops_harness import http, sign

from reconciler.daemon.metrics import Metrics
from reconciler.daemon.server import Endpoints, Server, parse_listen
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
