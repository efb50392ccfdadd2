"""The daemon's HTTP server under abuse (issue 10 item 9, daemon half).

A real daemon process on a real Git repository, with the open-files limit a
systemd service or a login shell gets by default (1024), and:
- 1,000 half-open connections (connected, nothing sent): /healthz still
  answers at once and a pass still runs and applies a new commit;
- clients that hang up in the middle of a response: no traceback in the
  log, and with --log-format json every line stays a JSON object;
- 20 signed webhooks at the same moment: every one answered 202, no reset.
"""

from __future__ import annotations

import json
import resource
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))
from gitops_harness import (  # noqa: E402
    DaemonProcess,
    GitRepo,
    http,
    sign,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.slow
SECRET = "reliability-webhook-secret"
FILE_LIMIT = 1024  # RLIMIT_NOFILE of a default systemd unit or login shell


class LimitedDaemon(DaemonProcess):
    """The daemon with RLIMIT_NOFILE at FILE_LIMIT, as most hosts run it (a child
    inherits the limits of its parent: lowered here for the moment of the spawn)."""

    def __init__(self, args: list[str], state: Path, env: dict[str, str]) -> None:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(FILE_LIMIT, soft), hard))
        try:
            super().__init__(args, state, env=env)
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    repo = GitRepo(tmp_path / "origin")
    write_config(repo.work)
    repo.commit("one warm replica for erin")
    return repo


@pytest.fixture
def daemon(repo: GitRepo, tmp_path: Path) -> Iterator[LimitedDaemon]:
    process = LimitedDaemon(["--repo", str(repo.remote), "--interval", "1s",
                             "--log-format", "json"], tmp_path / "state",
                            env={"RECONCILER_WEBHOOK_SECRET": SECRET})
    process.started()
    try:
        process.wait_status(lambda s: s["lastAppliedCommit"], 30, "first commit applied")
        yield process
    finally:
        process.stop()


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def raise_own_file_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip(f"this test opens {needed} sockets; the hard file limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def open_half_open(target: tuple[str, int], count: int) -> list[socket.socket]:
    """Up to `count` connections that send nothing, one after another; stops early after
    three connects that time out (the server no longer accepts)."""
    conns: list[socket.socket] = []
    failures = 0
    while len(conns) < count and failures < 3:
        conn = socket.socket()
        conn.settimeout(2)
        try:
            conn.connect(target)
            conn.send(b"GET /healthz HTTP/1.1\r\n")  # and never the rest
        except OSError:
            conn.close()
            failures += 1
            continue
        conns.append(conn)
    return conns


def test_half_open_connections_do_not_stop_probes_or_passes(daemon: LimitedDaemon,
                                                            repo: GitRepo) -> None:
    raise_own_file_limit(1200 + 64)
    idle = open_half_open(address(daemon.url), 1000)
    try:
        assert len(idle) == 1000, f"the server stopped accepting after {len(idle)}"
        started = time.monotonic()
        code, body = http(daemon.url + "/healthz", timeout=5)
        assert (code, body) == (200, b"ok\n")
        assert time.monotonic() - started < 3.0
        write_config(repo.work, replicas=2)
        head = repo.commit("two replicas while the connections hang")
        daemon.wait_status(lambda s: s["lastAppliedCommit"] == head, 20,
                           "a pass applies the new commit")
        status = daemon.status()
        assert status["history"][0]["result"] == "applied", status["history"][0]
    finally:
        for conn in idle:
            conn.close()
    log = daemon.output()
    assert "Too many open files" not in log and "Traceback" not in log


def hang_up_mid_response(url: str) -> None:
    """Ask for a big response, then reset the connection without reading it."""
    conn = socket.create_connection(address(url), timeout=5)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    conn.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    conn.recv(1)  # the response has started
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()  # RST: the server's next write fails


def test_client_disconnects_log_no_traceback_and_json_stays_json(daemon: LimitedDaemon) -> None:
    for _ in range(20):
        hang_up_mid_response(daemon.url)
        conn = socket.create_connection(address(daemon.url), timeout=5)
        conn.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n")
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
    assert http(daemon.url + "/healthz")[0] == 200
    time.sleep(0.5)  # let the server finish writing what it will never deliver
    lines = [line for line in daemon.output().splitlines() if line.strip()]
    assert lines
    for line in lines:
        assert isinstance(json.loads(line), dict), line  # not a traceback line
    assert "Traceback" not in daemon.output()


def test_concurrent_signed_webhooks_are_all_answered(daemon: LimitedDaemon) -> None:
    body = json.dumps({"ref": "refs/heads/main", "after": "b" * 40}).encode()
    headers = {"X-GitHub-Event": "push", "Content-Type": "application/json",
               "X-Hub-Signature-256": sign(SECRET, body)}
    results: list[object] = []
    gate = threading.Barrier(20)

    def deliver() -> None:
        gate.wait()
        try:
            results.append(http(daemon.url + "/webhook", data=body, headers=headers,
                                timeout=10)[0])
        except OSError as exc:
            results.append(repr(exc))

    threads = [threading.Thread(target=deliver) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    wait_for(lambda: len(results) == 20, 5, "20 answers")
    assert results == [202] * 20
