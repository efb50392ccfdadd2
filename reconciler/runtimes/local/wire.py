"""The caller's side of a call to a worker: one HTTP request on a raw socket.

Raw, so the caller knows exactly whether anything was sent: `connect` failing
means the worker never saw the call (another replica may take it); once
`exchange` has started, the call may have run and must not be retried. Light
on purpose (socket and select only): `reconciler invoke` imports it on every call.
"""

from __future__ import annotations

import select
import socket
import time


class NotSent(Exception):
    """The connection could not be made: the worker never saw the call."""


class Broken(Exception):
    """The request was sent (in part or whole) and no complete answer came back."""


def connect(port: int, timeout: float, host: str = "127.0.0.1") -> socket.socket:
    """A connection to a worker, with TCP_NODELAY; NotSent when it cannot be made."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:  # an address, not a name: no resolver (nor its codecs) on the way
        sock.settimeout(timeout)
        sock.connect((host, port))
    except OSError as exc:
        sock.close()
        raise NotSent(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def dropped(sock: socket.socket) -> bool:
    """Has the peer closed (or written to) this idle kept-alive connection? Then it must
    not carry a call: the worker may close it while the request is on its way."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def exchange(sock: socket.socket, body: bytes, timeout: float, *,
             keep_alive: bool = True) -> tuple[int, bytes, bool]:
    """POST /invoke with `body`; (status, answer body, whether the connection may be reused).
    TimeoutError when no answer came within `timeout`; Broken when the worker went away.
    Either way the request may have run: the caller must not send it again."""
    deadline = time.monotonic() + timeout
    head = (f"POST /invoke HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n")
    if not keep_alive:
        head += "Connection: close\r\n"
    try:
        sock.settimeout(timeout)
        sock.sendall(head.encode("latin-1") + b"\r\n" + body)
        return _read_answer(sock, deadline)
    except TimeoutError:
        raise
    except OSError as exc:
        raise Broken(f"{type(exc).__name__}: {exc.strerror or exc}") from None


def _read_answer(sock: socket.socket, deadline: float) -> tuple[int, bytes, bool]:
    data = bytearray()
    while b"\r\n\r\n" not in data:
        data += _recv(sock, deadline)
        if len(data) > 65536 and b"\r\n\r\n" not in data:
            raise Broken("the answer's headers are too long")
    head, _, rest = bytes(data).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise Broken(f"not an HTTP answer: {lines[0][:80]!r}")
    headers = {name.strip().lower(): value.strip() for name, _, value in
               (line.partition(":") for line in lines[1:])}
    length_text = headers.get("content-length", "")
    if not length_text.isdigit():
        raise Broken("the answer has no Content-Length")
    length = int(length_text)
    body = bytearray(rest)
    while len(body) < length:
        body += _recv(sock, deadline)
    reuse = headers.get("connection", "").lower() != "close" and len(body) == length
    return int(parts[1]), bytes(body[:length]), reuse


def _recv(sock: socket.socket, deadline: float) -> bytes:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("no answer in time")
    sock.settimeout(left)
    chunk = sock.recv(65536)
    if not chunk:
        raise Broken("the worker closed the connection before answering")
    return chunk
