"""A small fault-injecting HTTP proxy in front of the API server, for retry tests.

The client talks plain HTTP to the proxy (a kubeconfig pointing at it, with
the same token); the proxy forwards each request over TLS to the API server
and relays the answer, unless a rule says to fail it first: answer 429 or
5xx itself (with a Retry-After when given), or reset the connection (an RST,
no answer at all). Every request is recorded with what happened to it.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
       "proxy-authorization", "proxy-authenticate"}


@dataclass
class Rule:
    """Fail requests for which `match(method, path)` holds (and whose query string holds
    `query`, when given), `times` of them (None: all), with `fault`: an HTTP status (429,
    500, 503, 410, ...), "reset", or "slow" (answer only after `delay` seconds)."""

    match: Callable[[str, str], bool]
    fault: int | str
    times: int | None = 1
    retry_after: str | None = None
    query: str | None = None
    delay: float = 0.0


@dataclass
class Seen:
    method: str
    path: str
    outcome: int | str  # the upstream status, or the fault injected
    query: str = ""
    accept: str = ""  # the request's Accept header


@dataclass
class FaultProxy:
    upstream: str  # https://127.0.0.1:PORT
    rules: list[Rule] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                path, query = urlsplit(self.path).path, urlsplit(self.path).query
                accept = self.headers.get("Accept") or ""
                fault = proxy.fault_for(self.command, path, query)
                if isinstance(fault, float):  # slow: answer late (the client gave up)
                    proxy.record(self.command, path, "slow", query, accept)
                    time.sleep(fault)
                    fault = None
                elif fault == "reset":
                    proxy.record(self.command, path, "reset", query, accept)
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                               struct.pack("ii", 1, 0))
                    self.connection.close()
                    self.close_connection = True
                    return
                if fault is not None:
                    status, retry_after = fault
                    proxy.record(self.command, path, status, query, accept)
                    payload = json.dumps({"kind": "Status", "apiVersion": "v1",
                                          "status": "Failure", "code": status,
                                          "message": "injected by the test proxy"}).encode()
                    self.send_response(status)
                    if retry_after is not None:
                        self.send_header("Retry-After", retry_after)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                status, headers, data = proxy.forward(self.command, self.path,
                                                      dict(self.headers), body)
                proxy.record(self.command, path, status, query, accept)
                if not self.wfile or self.wfile.closed:
                    return
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in HOP and name.lower() != "content-length":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def kubeconfig(self, folder: Path, token: str) -> Path:
        path = folder / "proxy-kubeconfig"
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "proxy",
            "clusters": [{"name": "proxy", "cluster": {"server": self.url}}],
            "users": [{"name": "u", "user": {"token": token}}],
            "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "u"}}]}))
        return path

    def fault_for(self, method: str, path: str,
                  query: str = "") -> tuple[int, str | None] | str | float | None:
        with self._lock:
            for rule in self.rules:
                if rule.times != 0 and rule.match(method, path) and \
                        (rule.query is None or rule.query in query):
                    if rule.times is not None:
                        rule.times -= 1
                    if rule.fault == "slow":
                        return rule.delay
                    return "reset" if rule.fault == "reset" else (int(rule.fault),
                                                                   rule.retry_after)
        return None

    def record(self, method: str, path: str, outcome: int | str, query: str = "",
               accept: str = "") -> None:
        with self._lock:
            self.seen.append(Seen(method, path, outcome, query, accept))

    def forward(self, method: str, target: str, headers: dict[str, str],
                body: bytes | None) -> tuple[int, list[tuple[str, str]], bytes]:
        parts = urlsplit(self.upstream)
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        connection = http.client.HTTPSConnection(parts.hostname or "", parts.port,
                                                 context=context, timeout=30)
        try:
            send = {k: v for k, v in headers.items() if k.lower() not in HOP | {"host"}}
            connection.request(method, target, body=body, headers=send)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
