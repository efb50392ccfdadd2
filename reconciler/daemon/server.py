"""The daemon's HTTP endpoints: health, readiness, metrics, status, webhook.

A stdlib ThreadingHTTPServer in a background thread: these endpoints are
tiny, and a web framework would be a dependency for nothing. Handlers only
read the daemon's state (under its lock) or set the loop's trigger; nothing
here ever runs a pass itself, so a slow or hostile client cannot block
reconciliation.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from reconciler.daemon import webhook
from reconciler.daemon.metrics import CONTENT_TYPE, Metrics
from reconciler.daemon.state import DaemonState

log = logging.getLogger("reconciler.daemon.server")


@dataclass
class Endpoints:
    """What the handlers need from the daemon."""

    state: DaemonState
    metrics: Metrics
    alive: Callable[[], bool]
    trigger: Callable[[str], None]
    secret: str | None
    branch: str | None
    refresh: Callable[[], None] = lambda: None  # update the pools summary before a read


def parse_listen(listen: str) -> tuple[str, int]:
    """`host:port` (`:port` or a bare port mean 127.0.0.1)."""
    host, _, port = listen.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"--listen {listen!r}: expected HOST:PORT") from None
    return host.strip("[]") or "127.0.0.1", number


def content_length(values: list[str]) -> int | None:
    """The body's length from the Content-Length header(s): 0 without one; None when it
    is not one non-negative decimal number (several headers must agree, as RFC 9110 says)."""
    found = {value.strip() for value in values}
    if not found:
        return 0
    if len(found) != 1:
        return None
    text = found.pop()
    if not (text.isascii() and text.isdigit()):
        return None
    return int(text)


class _Handler(BaseHTTPRequestHandler):
    server_version = "reconciler"
    endpoints: Endpoints  # set on the subclass made by `serve`

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = self.path.split("?", 1)[0]
        ep = self.endpoints
        if path == "/healthz":
            ok = ep.alive()
            self._text(200 if ok else 503, "ok\n" if ok else "loop stopped\n")
        elif path == "/readyz":
            self._readyz()
        elif path == "/metrics":
            ep.refresh()
            self._send(200, ep.metrics.render(), CONTENT_TYPE)
        elif path == "/status":
            ep.refresh()
            self._json(200, ep.state.to_json())
        else:
            self._text(404, "not found\n")

    def _readyz(self) -> None:
        """200 once the first pass has finished, and only while this daemon leads."""
        data = self.endpoints.state.to_json()
        if not data["leader"]:
            holder = (data.get("lease") or {}).get("holder") or "nobody"
            self._text(503, f"not the leader (the lease is held by {holder})\n")
        elif not data["ready"]:
            self._text(503, "first pass pending\n")
        else:
            self._text(200, "ready\n")

    def do_POST(self) -> None:  # noqa: N802
        if self.path.split("?", 1)[0] != "/webhook":
            self._text(404, "not found\n")
            return
        length = content_length(self.headers.get_all("Content-Length") or [])
        if length is None:  # the body's end is unknown: answer and close, nothing triggered
            log.info("webhook 400: bad Content-Length %r",
                     ", ".join(self.headers.get_all("Content-Length") or []))
            self._json(400, {"message": "bad Content-Length"})
            self.close_connection = True
            return
        if length > webhook.MAX_BODY:
            self._discard(length)
            self._json(413, {"message": "payload too large"})
            self.close_connection = True
            return
        body = self.rfile.read(length) if length > 0 else b""
        ep = self.endpoints
        verdict = webhook.judge(ep.secret, body, self.headers.get(webhook.SIGNATURE_HEADER),
                                self.headers.get("X-GitHub-Event"), ep.branch)
        delivery = self.headers.get("X-GitHub-Delivery", "-")
        log.info("webhook %s: %s", verdict.status, verdict.message,
                 extra={"delivery": delivery})
        if verdict.trigger:
            ep.trigger("webhook")
        self._json(verdict.status, {"message": verdict.message})

    def _discard(self, length: int) -> None:
        """Read a refused body (up to a bound) so the client sees the 413, not a reset."""
        left = min(length, 4 * webhook.MAX_BODY)
        while left > 0:
            chunk = self.rfile.read(min(left, 65536))
            if not chunk:
                break
            left -= len(chunk)

    def _json(self, status: int, data: Any) -> None:
        self._send(status, (json.dumps(data, indent=2) + "\n").encode(), "application/json")

    def _text(self, status: int, text: str) -> None:
        self._send(status, text.encode(), "text/plain; charset=utf-8")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.debug("%s " + format, self.address_string(), *args)


class Server:
    """The endpoints on `host:port`, served from a daemon thread until `close`."""

    def __init__(self, listen: str, endpoints: Endpoints) -> None:
        handler = type("Handler", (_Handler,), {"endpoints": endpoints})
        self.httpd = ThreadingHTTPServer(parse_listen(listen), handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever,
                                        kwargs={"poll_interval": 0.2}, name="http", daemon=True)

    @property
    def address(self) -> str:
        host, port = self.httpd.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else str(host)
        return f"{name}:{port}"

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5.0)
