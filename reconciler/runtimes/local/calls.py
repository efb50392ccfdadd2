"""Carrying one call to a worker: one call, one execution.

A call is sent to at most one worker. The next replica is tried only when the
connection to one could not be made (nothing was sent), or when it answered
503 "not warm" (it promises it did not run the function). Once the request
has been sent, any failure (the worker died mid-call, hung up, timed out) is
the call's result: running it again elsewhere could run it twice (a call
that killed one replica would go on to kill the next). The agent replaces a
replica that died.

Connections to warm workers are kept alive and reused (TCP_NODELAY both
ways); an idle connection the worker has closed is never reused. With no
replica to take the call, a cold worker is started for it, reporting on a
pipe of its own (the algorithm's output cannot get in the way), and stopped
after it.
"""

from __future__ import annotations

import json
import os
import random
import select
import socket
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.errors import ReconcilerError
from reconciler.runtimes.local import wire

if TYPE_CHECKING:
    import subprocess

    from reconciler.runtimes.local.routing import Endpoint, Target

CONNECT_TIMEOUT = 1.0  # seconds: a loopback connect that takes longer is not happening
IDLE_REUSE = 30.0  # seconds an idle connection may be reused (workers close at 75 s)
MAX_IDLE = 8  # idle connections kept per port


class CallFailed(ReconcilerError):
    """The call reached a worker and did not succeed; it was not retried."""


@dataclass
class Outcome:
    output: Any
    how: str  # warm | cold
    pid: int | None = None  # the replica's process, when known
    note: str = ""


class Calls:
    """Sends calls to workers over kept-alive connections. Thread-safe."""

    def __init__(self) -> None:
        self._idle: dict[int, list[tuple[float, socket.socket]]] = {}
        self._lock = threading.Lock()

    def warm(self, endpoints: Sequence[Endpoint], body: bytes, timeout: float
             ) -> Outcome | None:
        """The call on one of `endpoints` (current-spec replicas first, spread at random);
        None when none of them took it. CallFailed once one has taken it and failed."""
        current = [e for e in endpoints if e.current]
        previous = [e for e in endpoints if not e.current]
        for endpoint in [*random.sample(current, len(current)),
                         *random.sample(previous, len(previous))]:
            try:
                sock = self._connection(endpoint.port)
            except wire.NotSent:
                continue  # gone since the store was read: nothing was sent, try the next
            status, answer, reuse = _exchange(sock, body, timeout, f"replica {endpoint.replica} "
                                              f"(pid {endpoint.pid})")
            if reuse:
                self._keep(endpoint.port, sock)
            else:
                sock.close()
            if status == 503:
                continue  # a worker answers 503 only for calls it did not run (not warm, busy)
            return Outcome(_output(status, answer), "warm", endpoint.pid)
        return None

    def cold(self, target: Target, data_root: Path, code_root: Path, body: bytes,
             timeout: float) -> Outcome:
        """Start a worker for this one call (it verifies the digest like any replica), call
        it once, then stop it."""
        import subprocess

        from reconciler.runtimes.local.procs import WORKER_SCRIPT, worker_env

        report_read, report_write = os.pipe()
        args = [sys.executable, str(WORKER_SCRIPT), "--pool", f"cold:{target.commit[:12]}",
                "--entrypoint", target.entrypoint, "--code-root", str(code_root.resolve()),
                "--data-root", str(data_root.resolve()), "--model", target.model_path,
                "--digest", target.model_digest, "--exit-with-stdin",
                "--report-fd", str(report_write)]
        # stdin stays an open pipe for the call: the worker exits when it closes, so a
        # kill -9 of the caller never leaves it behind.
        try:
            proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True,
                                    pass_fds=(report_write,), env=worker_env(None))
        finally:
            os.close(report_write)
        what = f"{target.owner}/{target.name} {target.label}"
        try:
            with os.fdopen(report_read, "rb") as reports:
                report = _first_report(reports, timeout)
            if not report.get("ready"):
                raise CallFailed(f"cold start of {what} failed: {report.get('error')}")
            try:
                sock = wire.connect(int(report["port"]), CONNECT_TIMEOUT)
            except wire.NotSent as exc:
                raise CallFailed(f"the cold worker of {what} is not reachable: {exc}") from None
            try:
                status, answer, _ = _exchange(sock, body, timeout, f"the cold worker of {what}",
                                              keep_alive=False)
            finally:
                sock.close()
            return Outcome(_output(status, answer), "cold", proc.pid)
        finally:
            _stop(proc)

    def _connection(self, port: int) -> socket.socket:
        """An idle kept-alive connection to `port` the worker has not closed, else a new one."""
        now = time.monotonic()
        with self._lock:
            idle = self._idle.get(port, [])
            while idle:
                since, sock = idle.pop()
                if now - since < IDLE_REUSE and not wire.dropped(sock):
                    return sock
                sock.close()
        return wire.connect(port, CONNECT_TIMEOUT)

    def _keep(self, port: int, sock: socket.socket) -> None:
        with self._lock:
            idle = self._idle.setdefault(port, [])
            if len(idle) < MAX_IDLE:
                idle.append((time.monotonic(), sock))
                return
        sock.close()

    def close(self) -> None:
        with self._lock:
            for idle in self._idle.values():
                for _, sock in idle:
                    sock.close()
            self._idle.clear()


def _exchange(sock: socket.socket, body: bytes, timeout: float, who: str, *,
              keep_alive: bool = True) -> tuple[int, bytes, bool]:
    try:
        return wire.exchange(sock, body, timeout, keep_alive=keep_alive)
    except TimeoutError:
        sock.close()
        raise CallFailed(f"{who} did not answer within {timeout:g}s (--timeout); the call "
                         f"was not retried (it may still be running)") from None
    except wire.Broken as exc:
        sock.close()
        raise CallFailed(f"{who} went away during the call ({exc}); the call was not "
                         f"retried (it may have run), and the agent replaces the "
                         f"replica") from None


def _output(status: int, answer: bytes) -> Any:
    try:
        data = json.loads(answer)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise CallFailed(f"the worker sent an invalid answer (HTTP {status}): {answer[:200]!r}")
    if status == 200 and "output" in data:
        return data["output"]
    message = data.get("error") or f"HTTP {status}"
    if status == 500:
        raise CallFailed(f"algorithm error: {message}")
    raise CallFailed(f"the worker refused the call (HTTP {status}): {message}")


def _first_report(reports: Any, timeout: float) -> dict[str, Any]:
    ready, _, _ = select.select([reports], [], [], timeout)
    if not ready:
        raise CallFailed(f"the cold worker did not warm up within {timeout:g}s")
    line = reports.readline()
    if not line:
        raise CallFailed("the cold worker exited before it reported (it may have been "
                         "killed, or Python could not start it)")
    try:
        return dict(json.loads(line))
    except (ValueError, TypeError):
        raise CallFailed(f"the cold worker reported {line[:200]!r}, not its JSON status "
                         f"line") from None


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a cold worker: SIGTERM, SIGKILL after 5 s."""
    import subprocess

    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdin is not None:
        proc.stdin.close()
