"""Notifications against real local HTTP servers: the signed webhook and GitHub statuses.

A receiver on 127.0.0.1 verifies the HMAC signature and answers 503 a few
times before 200 (the sender must retry with backoff); a second server
stands in for api.github.com (RECONCILER_GITHUB_API). Passes are recorded on
a real DaemonState, as the loop does.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from reconciler.daemon.metrics import Metrics
from reconciler.daemon.notify import SIGNATURE_HEADER, Notifier, NotifySettings
from reconciler.daemon.state import DaemonState, Outcome, PassRecord

SECRET = "notify-secret-value"
TOKEN = "ghp_notarealtokenbutlongenough"
GOOD, BAD = "a" * 40, "b" * 40


class Receiver:
    """A real HTTP server that records POSTs; the first `failures` get `fail_code`."""

    def __init__(self, failures: int = 0, fail_code: int = 503, delay: float = 0.0) -> None:
        self.received: list[dict[str, Any]] = []
        self.attempts = 0
        self.failures, self.fail_code, self.delay = failures, fail_code, delay
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                owner.attempts += 1
                time.sleep(owner.delay)
                if owner.attempts <= owner.failures:
                    self.send_response(owner.fail_code)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                owner.received.append({"path": self.path, "headers": dict(self.headers),
                                       "body": body})
                self.send_response(201)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers() -> Iterator[tuple[Receiver, Receiver]]:
    hook, github = Receiver(failures=2), Receiver()
    yield hook, github
    hook.close()
    github.close()


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def record(state: DaemonState, number: int, commit: str, result: str,
           error: str | None = None) -> None:
    state.record(PassRecord(number, "poll", commit, result, "2026-12-01T00:00:00Z", 0.1,
                            {"create": 1} if result == "applied" else {}, error),
                 Outcome(result, error=error))


def notifier_for(hook: Receiver, github: Receiver, metrics: Metrics) -> tuple[DaemonState,
                                                                            Notifier]:
    settings = NotifySettings.from_env({
        "RECONCILER_NOTIFY_URL": hook.url + "/hooks/reconciler",
        "RECONCILER_NOTIFY_SECRET": SECRET, "RECONCILER_GITHUB_TOKEN": TOKEN,
        "RECONCILER_GITHUB_REPO": "acme/platform-config",
        "RECONCILER_GITHUB_API": github.url + "/api/v3"})
    settings = NotifySettings(**{**settings.__dict__, "backoff": 0.05})
    state = DaemonState(repo="git@github.com:acme/platform-config.git", branch="main",
                        path="", mode="git")
    notifier = Notifier(settings, repo=state.repo, branch="main", metrics=metrics)
    state.listeners.append(notifier.observe)
    notifier.start()
    return state, notifier


def test_failed_recovered_and_applied_are_signed_retried_and_posted_as_statuses(
        receivers: tuple[Receiver, Receiver], caplog: pytest.LogCaptureFixture) -> None:
    hook, github = receivers
    metrics = Metrics()
    caplog.set_level(logging.DEBUG, logger="reconciler")
    state, notifier = notifier_for(hook, github, metrics)
    try:
        record(state, 1, BAD, "invalid", "reservations/a.yaml:3:1: spec.replicas: must be >= 1")
        record(state, 2, BAD, "invalid", "the same failure again")  # a retry: not told again
        record(state, 3, GOOD, "applied")  # recovered
        record(state, 4, GOOD, "unchanged")  # nothing to tell
        record(state, 5, GOOD, "applied")  # a commit applied
        wait_for(lambda: len(hook.received) == 3 and len(github.received) == 3)
    finally:
        notifier.close()
    assert hook.attempts == 5  # two 503s, then the three events
    events = []
    for delivery in hook.received:
        body, headers = delivery["body"], delivery["headers"]
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers[SIGNATURE_HEADER], expected)
        assert delivery["path"] == "/hooks/reconciler"
        assert headers["Content-Type"] == "application/json"
        events.append(json.loads(body))
    assert [(e["event"], e["commit"], e["result"]) for e in events] == [
        ("failed", BAD, "invalid"), ("recovered", GOOD, "applied"), ("applied", GOOD, "applied")]
    assert events[0]["error"].startswith("reservations/a.yaml:3:1")
    assert events[0]["repo"] == state.repo and events[0]["branch"] == "main"
    statuses = [(d["path"], json.loads(d["body"])["state"]) for d in github.received]
    assert statuses == [(f"/api/v3/repos/acme/platform-config/statuses/{BAD}", "failure"),
                        (f"/api/v3/repos/acme/platform-config/statuses/{GOOD}", "success"),
                        (f"/api/v3/repos/acme/platform-config/statuses/{GOOD}", "success")]
    assert github.received[0]["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert json.loads(github.received[0]["body"])["context"] == "reconciler"
    text = metrics.render().decode()
    assert 'reconciler_notifications_total{outcome="sent",target="webhook"} 3.0' in text
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "retrying" in logged and SECRET not in logged and TOKEN not in logged


def test_a_slow_or_dead_receiver_never_blocks_a_pass() -> None:
    slow = Receiver(delay=1.5)
    metrics = Metrics()
    settings = NotifySettings(url=slow.url, secret=SECRET, timeout=0.5, attempts=2,
                              backoff=0.05)
    state = DaemonState(repo="r", branch="main", path="", mode="git")
    notifier = Notifier(settings, repo="r", branch="main", metrics=metrics)
    state.listeners.append(notifier.observe)
    notifier.start()
    try:
        started = time.monotonic()
        for number in range(1, 4):
            record(state, number, BAD if number % 2 else GOOD,
                   "failed" if number % 2 else "applied", "boom")
        assert time.monotonic() - started < 0.2  # the loop thread never waits
        wait_for(lambda: 'outcome="failed",target="webhook"} 3.0' in metrics.render().decode(),
                 timeout=20)
    finally:
        notifier.close(timeout=1)
        slow.close()


def test_a_4xx_is_final_and_bad_settings_are_refused() -> None:
    gone = Receiver(failures=100, fail_code=404)
    try:
        metrics = Metrics()
        notifier = Notifier(NotifySettings(url=gone.url, backoff=0.01), repo="r",
                            branch=None, metrics=metrics)
        notifier.start()
        notifier.observe(PassRecord(1, "poll", GOOD, "applied", "t", 0.1, {}),
                         Outcome("applied"))
        wait_for(lambda: 'outcome="failed",target="webhook"} 1.0' in metrics.render().decode())
        notifier.close()
        assert gone.attempts == 1
    finally:
        gone.close()
    with pytest.raises(ValueError, match="RECONCILER_NOTIFY_URL"):
        NotifySettings.from_env({"RECONCILER_NOTIFY_URL": "file:///etc/passwd"})
    with pytest.raises(ValueError, match="both"):
        NotifySettings.from_env({"RECONCILER_GITHUB_TOKEN": TOKEN})
    with pytest.raises(ValueError, match="OWNER/NAME"):
        NotifySettings.from_env({"RECONCILER_GITHUB_TOKEN": TOKEN,
                                 "RECONCILER_GITHUB_REPO": "../../x"})


@pytest.mark.slow
def test_the_daemon_notifies_a_failing_commit_and_its_fix(tmp_path: Any,
                                                           receivers: tuple[Receiver, Receiver]
                                                           ) -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))
    from gitops_harness import DaemonProcess, GitRepo, write_config

    hook, github = receivers
    hook.failures = 0
    repo = GitRepo(tmp_path / "origin")
    write_config(repo.work)
    first = repo.commit("one warm replica")
    daemon = DaemonProcess(["--repo", str(repo.remote), "--interval", "1s"], tmp_path / "state",
                           env={"RECONCILER_NOTIFY_URL": hook.url, "RECONCILER_NOTIFY_SECRET":
                                SECRET, "RECONCILER_GITHUB_TOKEN": TOKEN,
                                "RECONCILER_GITHUB_REPO": "acme/config",
                                "RECONCILER_GITHUB_API": github.url}).started()
    try:
        wait_for(lambda: len(hook.received) == 1, timeout=20)
        write_config(repo.work, replicas=0)
        bad = repo.commit("invalid: zero replicas")
        wait_for(lambda: len(hook.received) == 2, timeout=20)
        write_config(repo.work, replicas=1)
        fixed = repo.commit("fixed")
        wait_for(lambda: len(hook.received) == 3 and len(github.received) == 3, timeout=20)
    finally:
        assert daemon.stop() == 0
    events = [json.loads(d["body"]) for d in hook.received]
    assert [(e["event"], e["commit"]) for e in events] == [
        ("applied", first), ("failed", bad), ("recovered", fixed)]
    assert "replicas" in events[1]["error"]
    assert [(d["path"].rsplit("/", 1)[1], json.loads(d["body"])["state"])
            for d in github.received] == [(first, "success"), (bad, "failure"),
                                          (fixed, "success")]
    log = daemon.output()
    assert "notifications on: webhook, GitHub commit statuses" in log
    assert SECRET not in log and TOKEN not in log


class Redirector:
    """A real HTTP server answering every POST with `code` and a Location on another
    server (another origin), which records whatever reaches it."""

    def __init__(self, code: int) -> None:
        self.elsewhere = Receiver()
        self.reached: list[dict[str, str]] = []
        owner = self

        class Other(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                owner.reached.append(dict(self.headers))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_GET  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(code)
                self.send_header("Location", f"{owner.other_url}/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.other = ThreadingHTTPServer(("127.0.0.1", 0), Other)
        self.other_url = f"http://127.0.0.1:{self.other.server_address[1]}"
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        for server in (self.server, self.other):
            threading.Thread(target=server.serve_forever, daemon=True).start()

    def close(self) -> None:
        for server in (self.server, self.other):
            server.shutdown()
            server.server_close()
        self.elsewhere.close()


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_a_redirect_is_a_failed_delivery_and_never_followed(
        code: int, caplog: pytest.LogCaptureFixture) -> None:
    """urllib would follow a 30x as a GET without the body, to another host, with the
    GitHub token and the signature, and count the lost event as sent."""
    redirector = Redirector(code)
    metrics = Metrics()
    caplog.set_level(logging.INFO, logger="reconciler")
    settings = NotifySettings(url=redirector.url + "/hook", secret=SECRET, github_token=TOKEN,
                              github_repo="acme/platform-config", github_api=redirector.url,
                              backoff=0.01)
    notifier = Notifier(settings, repo="r", branch="main", metrics=metrics)
    notifier.start()
    try:
        notifier.observe(PassRecord(1, "poll", GOOD, "applied", "t", 0.1, {}),
                         Outcome("applied"))
        wait_for(lambda: all(f'outcome="failed",target="{target}"}} 1.0' in
                             metrics.render().decode() for target in ("webhook", "github")))
    finally:
        notifier.close()
        redirector.close()
    assert redirector.reached == []
    text = metrics.render().decode()
    assert 'outcome="sent",target="webhook"} 0.0' in text
    assert 'outcome="sent",target="github"} 0.0' in text
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert f"HTTP {code}: redirects are not followed" in logged and TOKEN not in logged


def test_a_url_urllib_cannot_send_to_is_refused_at_start_without_echoing_it() -> None:
    for url, why in [("http://user:hunter2secret@hooks.example/x", "user:password"),
                     ("http://[bad/x", "not a valid URL"), ("http://host:99999/x", "not a valid"),
                     ("http:///x", "no host"), ("https://hooks.example/a b", "spaces")]:
        with pytest.raises(ValueError, match=why) as raised:
            NotifySettings.from_env({"RECONCILER_NOTIFY_URL": url})
        assert "RECONCILER_NOTIFY_URL" in str(raised.value) and url not in str(raised.value)
        assert "hunter2" not in str(raised.value)
    with pytest.raises(ValueError, match="RECONCILER_GITHUB_API"):
        NotifySettings.from_env({"RECONCILER_GITHUB_TOKEN": TOKEN,
                                 "RECONCILER_GITHUB_REPO": "acme/c",
                                 "RECONCILER_GITHUB_API": "ftp://ghe.example/api/v3"})


def test_a_bad_url_or_a_garbled_answer_fails_the_delivery_not_the_sender_thread() -> None:
    """A ValueError or http.client.HTTPException from urllib used to end the sender thread:
    every later event then sat in the queue, never sent."""
    import socket

    garbled = socket.socket()
    garbled.bind(("127.0.0.1", 0))
    garbled.listen(8)

    def answer() -> None:
        while True:
            try:
                conn, _ = garbled.accept()
            except OSError:
                return
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 70000 + b"\r\n\r\n")
            conn.close()

    threading.Thread(target=answer, daemon=True).start()
    good = Receiver()
    metrics = Metrics()
    notifier = Notifier(NotifySettings(url="http://[bad/x", attempts=2, backoff=0.01),
                        repo="r", branch=None, metrics=metrics)
    notifier.start()
    try:
        notifier.observe(PassRecord(1, "poll", GOOD, "applied", "t", 0.1, {}),
                         Outcome("applied"))
        wait_for(lambda: 'outcome="failed",target="webhook"} 1.0' in metrics.render().decode())
        port = garbled.getsockname()[1]
        object.__setattr__(notifier.settings, "url", f"http://127.0.0.1:{port}/x")
        notifier.observe(PassRecord(2, "poll", GOOD, "applied", "t", 0.1, {}),
                         Outcome("applied"))
        wait_for(lambda: 'outcome="failed",target="webhook"} 2.0' in metrics.render().decode())
        object.__setattr__(notifier.settings, "url", good.url)
        notifier.observe(PassRecord(3, "poll", GOOD, "applied", "t", 0.1, {}),
                         Outcome("applied"))
        wait_for(lambda: len(good.received) == 1)  # the thread is still sending
    finally:
        notifier.close()
        garbled.close()
        good.close()


def test_a_secret_in_an_error_never_leaves_in_the_event() -> None:
    """The commit status's description was redacted, the webhook event's error was not."""
    from reconciler.sources.credentials import register_secret

    leaked = "hunter2-registered-git-password"
    register_secret(leaked)
    hook = Receiver()
    notifier = Notifier(NotifySettings(url=hook.url, backoff=0.01), repo="r", branch="main")
    notifier.start()
    try:
        notifier.observe(PassRecord(1, "poll", BAD, "error", "t", 0.1, {}),
                         Outcome("error", error=f"fetch https://u:{leaked}@git.example failed"))
        wait_for(lambda: len(hook.received) == 1)
    finally:
        notifier.close()
        hook.close()
    event = json.loads(hook.received[0]["body"])
    assert event["event"] == "failed" and "git.example failed" in event["error"]
    assert leaked not in hook.received[0]["body"].decode()
