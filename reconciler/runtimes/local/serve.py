"""The worker's HTTP server, standard library only (the worker loads it as a script).

http.server's threading server, made to hold under load and abuse:
- TCP_NODELAY and one write per response: a kept-alive call never waits on
  Nagle's algorithm and the peer's delayed ACK (that cost 44 ms per call);
- keep-alive (HTTP/1.1) with an idle timeout, and a per-request deadline from
  the first byte of a request to its last (a slow or stalled client cannot hold
  a thread), then a deadline for writing the answer;
- at most MAX_CONNECTIONS connections at once (the next ones get a 503 and are
  closed at once) and a listen backlog of BACKLOG;
- a client that hangs up or resets is routine: no traceback in the log.

A 503 from POST /invoke always means the function did not run (the replica is
not warm, or has no connection to spare): callers may take it elsewhere.
"""

from __future__ import annotations

import collections
import io
import json
import socket
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

IDLE_TIMEOUT = 75.0  # seconds a kept-alive connection may wait for its next request
REQUEST_TIMEOUT = 30.0  # seconds from a request's first byte to its last
WRITE_TIMEOUT = 30.0  # seconds to hand an answer to a slow reader
MAX_CONNECTIONS = 64
BACKLOG = 128
MAX_BODY = 64 * 2**20  # bytes of input JSON
LINGER = 1.0  # seconds a refused connection stays half-open so its client reads the 503
MAX_LINGERING = 256
QUIET = (ConnectionError, TimeoutError)  # a peer that went away or stalled: routine

Answer = tuple[int, dict[str, Any]]


class _DeadlineReader(io.RawIOBase):
    """The connection's reads: the idle timeout while no request has begun, then what is
    left of the request's deadline (so a trickle of bytes cannot extend it)."""

    def __init__(self, sock: socket.socket, idle: float, budget: float) -> None:
        self.sock, self.idle, self.budget = sock, idle, budget
        self.deadline: float | None = None  # None: between requests

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.deadline is None:
            self.sock.settimeout(self.idle)
        else:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the request took longer than its deadline")
            self.sock.settimeout(left)
        count = self.sock.recv_into(buffer)
        if count and self.deadline is None:
            self.deadline = time.monotonic() + self.budget
        return count


class Handler(BaseHTTPRequestHandler):
    """GET /healthz and POST /invoke; the server's `routes` answer them."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: Server

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # http.server's own reader: replaced by one with deadlines
        self.reader = _DeadlineReader(self.connection, self.server.idle_timeout,
                                      self.server.request_timeout)
        self.rfile = io.BufferedReader(self.reader, 65536)

    def handle_one_request(self) -> None:
        self.reader.deadline = None
        super().handle_one_request()

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path == "/healthz":
            self.answer(*self.server.health())
        else:
            self.answer(404, {"error": "not found"})

    def do_POST(self) -> None:  # noqa: N802
        body = self._body()
        if body is None:
            return
        if self.path != "/invoke":
            self.answer(404, {"error": "not found"})
            return
        self.answer(*self.server.invoke(body))

    def _body(self) -> bytes | None:
        """The request body, or None once an error has been answered (connection closed)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._refuse(411, "send the body with a Content-Length")
            return None
        raw = self.headers.get("Content-Length") or "0"
        if not raw.isdigit():
            self._refuse(400, f"bad Content-Length {raw[:40]!r}")
            return None
        length = int(raw)
        if length > MAX_BODY:
            self._refuse(413, f"input of {length} bytes exceeds {MAX_BODY}")
            return None
        try:
            data = self.rfile.read(length)
        except TimeoutError:
            self._refuse(408, f"the request was not received within "
                              f"{self.server.request_timeout:g}s")
            return None
        if len(data) < length:
            self.close_connection = True  # the client hung up half-way: nobody to answer
            return None
        return data

    def _refuse(self, status: int, message: str) -> None:
        self.close_connection = True
        self.answer(status, {"error": message})

    def answer(self, status: int, body: dict[str, Any]) -> None:
        """Status line, headers and body in one write (with TCP_NODELAY: one segment)."""
        data = json.dumps(body).encode()
        reason = self.responses.get(status, ("",))[0]
        head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\n")
        if self.close_connection:
            head += "Connection: close\r\n"
        self.connection.settimeout(WRITE_TIMEOUT)
        self.wfile.write(head.encode("latin-1") + b"\r\n" + data)

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        """http.server's own errors (a malformed request line, say), as JSON."""
        self.close_connection = True
        self.answer(code, {"error": message or self.responses.get(code, ("",))[0]})

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return  # one line per call would flood the replica's log


class Server(ThreadingHTTPServer):
    """A threading HTTP server with a connection limit and quiet disconnects.

    `health()` and `invoke(body)` give (status, JSON body)."""

    daemon_threads = True
    block_on_close = False  # stopping never waits for a call in progress
    request_queue_size = BACKLOG

    def __init__(self, address: tuple[str, int], health: Callable[[], Answer],
                 invoke: Callable[[bytes], Answer], *,
                 max_connections: int = MAX_CONNECTIONS, idle_timeout: float = IDLE_TIMEOUT,
                 request_timeout: float = REQUEST_TIMEOUT) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.health, self.invoke = health, invoke
        self.idle_timeout, self.request_timeout = idle_timeout, request_timeout
        self._slots = threading.BoundedSemaphore(max_connections)
        self._lingering: collections.deque[tuple[float, socket.socket]] = collections.deque()
        super().__init__(address, Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self._busy(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:  # no thread started: give the slot back
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, QUIET):
            return
        print(f"error serving {client_address}: {type(error).__name__}: {error}",
              file=sys.stderr, flush=True)


    def _busy(self, request: socket.socket) -> None:
        """No slot: answer 503 at once, without a thread. The socket is half-closed and
        kept a moment (service_actions closes it): closed at once with the client's request
        unread, the kernel would reset the connection and the client might never read the
        answer that tells it the call did not run."""
        body = b'{"error": "too many connections; try again"}'
        try:
            request.setblocking(False)
            request.send(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json"
                         b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                         % (len(body), body))
            request.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self._lingering.append((time.monotonic() + LINGER, request))
        while len(self._lingering) > MAX_LINGERING:
            self._lingering.popleft()[1].close()

    def service_actions(self) -> None:
        """Between requests (serve_forever's loop): close the refused sockets whose time is up."""
        now = time.monotonic()
        while self._lingering and self._lingering[0][0] <= now:
            self._lingering.popleft()[1].close()

    def server_close(self) -> None:
        super().server_close()
        while self._lingering:
            self._lingering.popleft()[1].close()
