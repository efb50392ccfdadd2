"""Helpers of tests/reliability: the CLI as a user runs it, and runs as another user."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "config-examples"
NOBODY = 65534


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    return {**base, "NO_COLOR": "1", "PYTHONUNBUFFERED": "1", "RECONCILER_NO_CACHE": "1",
            **extra}


def cli(*args: str, cwd: Path | None = None, stdin: str = "", timeout: float = 60,
        prefix: tuple[str, ...] = (), **extra: str) -> subprocess.CompletedProcess[str]:
    """`reconciler ARGS` in a child process, stdin not a terminal, no parse cache."""
    return subprocess.run([*prefix, sys.executable, "-m", "reconciler", *args],
                          capture_output=True, text=True, input=stdin, timeout=timeout,
                          cwd=cwd, env=env(**extra))


def clean(result: subprocess.CompletedProcess[str]) -> str:
    """stdout + stderr, asserting no traceback reached the user."""
    text = result.stdout + result.stderr
    assert "Traceback" not in text, text
    return text


def unprivileged() -> tuple[str, ...]:
    """A command prefix that runs as a user who cannot write what the test made: setpriv
    to nobody when the tests run as root (root ignores file modes), nothing otherwise."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: no unprivileged user to test with")
    return (setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups")


def readable_by_all(path: Path) -> None:
    for directory, _, filenames in os.walk(path):
        os.chmod(directory, 0o755)
        for name in filenames:
            os.chmod(Path(directory, name), 0o644)


def pools_in(state: Path) -> dict[str, int]:
    """{pool id: replicas} in a local store, read in-process."""
    from reconciler.runtimes.local.runtime import LocalRuntime

    runtime = LocalRuntime(state)
    try:
        return {p.id: p.replicas for p in runtime.observe().pools}
    finally:
        runtime.close()


def load_json(path: Path) -> Any:
    return json.loads(path.read_text())


class AskForPassword(BaseHTTPRequestHandler):
    """A Git HTTP remote that answers 401 until a request carries credentials, then 403;
    `seen` records the Authorization headers it got."""

    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        auth = self.headers.get("Authorization")
        if auth is None:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
        else:
            self.seen.append(auth)
            self.send_response(403)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def git_http_server() -> Iterator[int]:
    """The port of an AskForPassword server, for the duration of the block."""
    AskForPassword.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), AskForPassword)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
