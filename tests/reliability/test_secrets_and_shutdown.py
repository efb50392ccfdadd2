"""Git credentials never reach an argv, and SIGTERM ends a hung fetch (issue 10 item 11).

A user:password in the repo URL was on `git fetch`'s command line (`ps`
shows it to every user). git now gets the URL without them and learns them
from its environment through a credential helper. SIGTERM waited up to
120 s for a hung fetch; now the fetch is killed and the daemon exits in
seconds.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from localkit import wait_for
from relkit import AskForPassword, env, git_http_server

from reconciler.errors import SourceError
from reconciler.sources.git import GitSource

pytestmark = pytest.mark.slow
SECRET = "s3cr3t-PASS-4242"


def cmdlines() -> dict[int, bytes]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found[int(entry.name)] = (entry / "cmdline").read_bytes()
            except OSError:
                continue
    return found


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never answers: a hung Git remote."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


def start_daemon(state: Path, *args: str, **extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler", "daemon", "--state", str(state),
         "--listen", "127.0.0.1:0", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env=env(**extra), start_new_session=True)


def fetches(daemon: subprocess.Popen[bytes], port: int) -> list[int]:
    remote = f"127.0.0.1:{port}".encode()
    return wait_for(lambda: [pid for pid, line in cmdlines().items()
                             if b"fetch" in line and remote in line and pid != daemon.pid],
                    timeout=20, message="git fetch running")


def stop(daemon: subprocess.Popen[bytes]) -> str:
    if daemon.poll() is None:
        os.killpg(daemon.pid, signal.SIGKILL)
        daemon.wait()
    assert daemon.stdout is not None
    out = daemon.stdout.read().decode()
    daemon.stdout.close()
    return out


def test_git_never_sees_the_password_in_its_argv(silent_server: int, tmp_path: Path) -> None:
    url = f"http://deploy:{SECRET}@127.0.0.1:{silent_server}/org/config.git"
    # the URL in the environment (RECONCILER_REPO): the daemon's own argv is public too
    daemon = start_daemon(tmp_path / "state", RECONCILER_REPO=url)
    try:
        fetches(daemon, silent_server)
        leaks = [line for line in cmdlines().values() if SECRET.encode() in line]
        assert not leaks, f"the password is in an argv: {leaks}"
    finally:
        assert SECRET not in stop(daemon)


def test_sigterm_kills_a_hung_fetch_and_exits_within_10s(silent_server: int,
                                                         tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{silent_server}/org/config.git"
    daemon = start_daemon(tmp_path / "state", "--repo", url)
    try:
        fetching = fetches(daemon, silent_server)
        started = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=10) == 0 and time.monotonic() - started < 10
        wait_for(lambda: not [p for p in fetching if p in cmdlines()], timeout=5,
                 message="the fetch killed with the daemon")
    finally:
        out = stop(daemon)
    assert "Traceback" not in out


def test_the_credentials_still_reach_the_server(tmp_path: Path) -> None:
    with git_http_server() as port:
        url = f"http://deploy:{SECRET}@127.0.0.1:{port}/org/config.git"
        source = GitSource(url, cache_root=tmp_path / "cache")
        with pytest.raises(SourceError) as caught:
            source.fetch()
        assert SECRET not in str(caught.value)
    expected = "Basic " + base64.b64encode(f"deploy:{SECRET}".encode()).decode()
    assert expected in AskForPassword.seen
