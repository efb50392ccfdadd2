"""The worker's HTTP server holds: no Nagle delay on kept-alive calls, idle and request
timeouts, a connection limit, a real backlog, and quiet disconnects.

Each test runs a real worker process (as `invoke` starts a cold one) and talks
to it over real sockets, as a careless or hostile client would.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "runtime"))

from localkit import make_site, sha256, wait_for  # noqa: E402

from reconciler.runtimes.local.procs import WORKER_SCRIPT  # noqa: E402

pytestmark = pytest.mark.slow

SLEEPY = '''
import json, time

def load(path):
    with open(path) as handle:
        return json.load(handle)

def apply(input, model):
    time.sleep(input.get("sleep", 0))
    return {"sum": sum(input.get("values", [])) * model["factor"]}
'''


@contextmanager
def worker(tmp_path: Path, *options: str) -> Iterator[tuple[int, Path, int]]:
    """A worker process with `options`; (its port, its log file, its pid)."""
    site = make_site(tmp_path)
    site.write_code(text=SLEEPY)
    log = tmp_path / "worker.log"
    with open(log, "wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, str(WORKER_SCRIPT), "--pool", "p", "--entrypoint", "adder:apply",
             "--code-root", str(site.src), "--data-root", str(site.data),
             "--model", "data://acme/models/m1.json",
             "--digest", sha256(site.data / "acme" / "models" / "m1.json"), *options],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=sink)
    assert proc.stdout is not None
    try:
        report = json.loads(proc.stdout.readline())
        assert report["ready"], report
        yield int(report["port"]), log, proc.pid
    finally:
        proc.send_signal(signal.SIGCONT)  # a test may have stopped it
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # a server stuck on its connections: never leak it
            proc.kill()
            proc.wait()
        proc.stdout.close()


def post(conn: http.client.HTTPConnection, payload: object) -> tuple[int, dict[str, object]]:
    conn.request("POST", "/invoke", body=json.dumps(payload),
                 headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    return response.status, json.loads(response.read())


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Does the server close `sock` (EOF, or a reset) within `seconds`? Anything it sends
    first (an error answer) is read and skipped."""
    sock.settimeout(seconds)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            if not sock.recv(4096):
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return False


def test_kept_alive_calls_do_not_wait_for_nagle(tmp_path: Path) -> None:
    with worker(tmp_path) as (port, _, _):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        post(conn, {"values": [1]})
        first = conn.sock
        times = []
        for _ in range(15):
            start = time.perf_counter()
            status, body = post(conn, {"values": [1, 2]})
            times.append(time.perf_counter() - start)
            assert (status, body) == (200, {"output": {"sum": 3}})
        assert conn.sock is first, "every call went over the one kept-alive connection"
        conn.close()
    # Nagle's algorithm with the client's delayed ACK costs ~40 ms per kept-alive call.
    assert statistics.median(times) < 0.025, f"median {statistics.median(times) * 1000:.0f} ms"


def test_an_idle_connection_is_closed(tmp_path: Path) -> None:
    with worker(tmp_path, "--idle-timeout", "0.5") as (port, _, _):
        idle = socket.create_connection(("127.0.0.1", port))
        assert closed_within(idle, 5)
        idle.close()


def test_a_request_trickling_in_is_cut_off_at_its_deadline(tmp_path: Path) -> None:
    with worker(tmp_path, "--request-timeout", "1") as (port, _, _):
        slow = socket.create_connection(("127.0.0.1", port))
        slow.sendall(b"POST /invoke HTTP/1.1\r\nContent-Length: 2\r\n")
        started = time.monotonic()
        for _ in range(20):  # a header byte every 0.2 s would go on for 4 s
            try:
                slow.sendall(b"X")
            except OSError:
                break
            if closed_within(slow, 0.2):
                break
        assert time.monotonic() - started < 3.0
        slow.close()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        assert post(conn, {"values": [2]})[0] == 200  # and it still serves
        conn.close()


def test_connections_beyond_the_limit_get_503_at_once(tmp_path: Path) -> None:
    with worker(tmp_path, "--max-connections", "3") as (port, _, _):
        held = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        time.sleep(0.2)  # let the worker take them
        extra = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        status, body = post(extra, {"values": [1]})
        assert status == 503 and "too many connections" in str(body["error"])
        extra.close()
        held.pop().close()

        def served() -> bool:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                return post(conn, {"values": [1]})[0] == 200
            finally:
                conn.close()

        wait_for(served, timeout=5, message="a freed slot to serve again")
        for sock in held:
            sock.close()


def test_a_burst_of_connections_waits_in_the_backlog(tmp_path: Path) -> None:
    """The worker stopped (SIGSTOP) cannot accept: the kernel queues the handshakes up to
    the listen backlog. With a backlog of 5, most of 40 connects would hang."""
    with worker(tmp_path) as (port, _, pid):
        os.kill(pid, signal.SIGSTOP)
        try:
            sockets = []
            for _ in range(40):
                sock = socket.socket()
                sock.settimeout(0.5)
                sock.connect(("127.0.0.1", port))  # TimeoutError when the queue is full
                sockets.append(sock)
        finally:
            os.kill(pid, signal.SIGCONT)
        for sock in sockets:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        for sock in sockets:
            sock.settimeout(5)
            assert sock.recv(64).startswith(b"HTTP/1.1 200")
            sock.close()


def test_resets_bad_requests_and_deep_input_leave_no_traceback(tmp_path: Path) -> None:
    with worker(tmp_path) as (port, log, _):
        gone = socket.create_connection(("127.0.0.1", port))
        body = b'{"sleep": 0.3}'
        gone.sendall(b"POST /invoke HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(body), body))
        gone.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        gone.close()  # a reset while the worker computes the answer

        bad = socket.create_connection(("127.0.0.1", port))
        bad.sendall(b"POST /invoke HTTP/1.1\r\nContent-Length: lots\r\n\r\n")
        assert b" 400 " in bad.recv(4096)
        bad.close()

        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        deep = "[" * 100_000 + "]" * 100_000
        conn.request("POST", "/invoke", body=deep)
        response = conn.getresponse()
        assert response.status == 400 and b"nested too deeply" in response.read()
        time.sleep(0.5)  # the reset call finishes and fails to answer
        assert post(conn, {"values": [3]}) == (200, {"output": {"sum": 3}})
        conn.close()
    assert "Traceback" not in log.read_text()
