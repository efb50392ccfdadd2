"""Webhook abuse against a real daemon process (a family that already holds).

Unsigned, wrongly signed, huge and slow deliveries to POST /webhook: 401 or
413, no pass is started, and /healthz keeps answering while a slow client
holds a connection open.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from configkit import write_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))

from gitops_harness import DaemonProcess, http, sign  # noqa: E402

pytestmark = pytest.mark.slow
SECRET = "webhook-secret-for-abuse"
PUSH = json.dumps({"ref": "refs/heads/main", "after": "0" * 40}).encode()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    config = write_config(tmp_path / "config")
    (config / "reservations.yaml").unlink()  # nothing to run: the passes stay cheap
    proc = DaemonProcess(["--repo", str(config), "--interval", "1h", "--resync", "1h"],
                         tmp_path / "state", env={"RECONCILER_WEBHOOK_SECRET": SECRET})
    proc.started()
    proc.wait_status(lambda s: len(s["history"]) == 1, 20, "the first pass")
    yield proc
    assert proc.stop() == 0


def raw(url: str, head: bytes, body: bytes = b"") -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    conn = socket.create_connection((host, int(port)), timeout=5)
    conn.sendall(head + body)
    return conn


def test_bad_deliveries_change_nothing(daemon: DaemonProcess) -> None:
    headers = {"X-GitHub-Event": "push", "Content-Type": "application/json"}
    assert daemon.post_webhook(PUSH, headers) == 401
    assert daemon.post_webhook(PUSH, {**headers, "X-Hub-Signature-256": sign("wrong", PUSH)}) \
        == 401
    assert daemon.post_webhook(PUSH, {**headers, "X-Hub-Signature-256": "sha256=zz"}) == 401
    huge = b"{" * (3 << 20)  # over the 1 MiB a push event may have
    assert daemon.post_webhook(huge, {**headers, "X-Hub-Signature-256": sign(SECRET, huge)}) \
        == 413
    assert len(daemon.status()["history"]) == 1, "a refused delivery started a pass"


def test_a_slow_body_does_not_stop_the_daemon(daemon: DaemonProcess) -> None:
    slow = raw(daemon.url, b"POST /webhook HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\n"
                           b"Content-Length: 100\r\n\r\n", b"{")
    try:
        started = time.monotonic()
        code, _ = http(daemon.url + "/healthz", timeout=5)
        assert code == 200 and time.monotonic() - started < 2
        assert len(daemon.status()["history"]) == 1
    finally:
        slow.close()
    good = {"X-GitHub-Event": "push", "X-Hub-Signature-256": sign(SECRET, PUSH)}
    assert daemon.post_webhook(PUSH, good) == 202
    daemon.wait_status(lambda s: len(s["history"]) == 2, 10, "the signed push's pass")
