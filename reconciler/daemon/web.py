"""The daemon's routes as one WSGI application: probes, metrics, status, dashboard, webhook.

Read-only by construction: every route is a GET (or HEAD) except the signed
POST /webhook, which can only trigger a pass. Every response carries a strict
Content-Security-Policy (scripts and styles from this origin only, as files;
no inline script, no other origin, no framing) and `nosniff`.

The bearer token (RECONCILER_UI_TOKEN): when it is set, every route but the
probes (/healthz, /readyz) and the webhook (which has its own HMAC) needs it,
on any --listen address: `Authorization: Bearer TOKEN` (Prometheus, curl), or
HTTP Basic with the token as the password (a browser asks for it; any user
name). Unset, those routes are open, and the daemon warns at start when it
listens beyond the loopback interface; on the loopback interface they then
answer only to this machine's names (localhost, IP literals, and the names
in RECONCILER_ALLOWED_HOSTS), so a web page cannot read them through DNS
rebinding (421 otherwise).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from reconciler.daemon import webhook
from reconciler.daemon.server import HOSTS_ENV, Endpoints, host_allowed

log = logging.getLogger("reconciler.daemon.web")

TOKEN_ENV = "RECONCILER_UI_TOKEN"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = [
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
]
OPEN = ("/healthz", "/readyz")
STATIC = Path(__file__).parent / "ui" / "static"
STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
PAGES = ("/", "/reservations", "/capacity", "/plan")

StartResponse = Callable[..., Any]
Response = tuple[str, list[tuple[str, str]], bytes]


def text(status: str, body: str) -> Response:
    return status, [("Content-Type", "text/plain; charset=utf-8")], body.encode()


def as_json(status: str, data: Any) -> Response:
    body = (json.dumps(data, indent=2, default=str) + "\n").encode()
    return status, [("Content-Type", "application/json")], body


def authorized(token: str | None, header: str | None) -> bool:
    """Whether the Authorization header carries the token (Bearer, or Basic's password)."""
    if not token:
        return True
    if not header:
        return False
    scheme, _, value = header.strip().partition(" ")
    # a WSGI header is its bytes decoded as ISO-8859-1: encoding it back gives the bytes
    # the client sent (UTF-8 for a non-ASCII token), whatever the scheme
    raw = value.strip().encode("latin-1", "replace")
    if scheme.lower() == "basic":
        try:
            raw = base64.b64decode(raw, validate=True).partition(b":")[2]
        except binascii.Error:
            return False
    elif scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(raw, token.encode())


class App:
    """The WSGI application waitress serves."""

    def __init__(self, endpoints: Endpoints) -> None:
        self.ep = endpoints
        self._metrics_app: Any = None

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "/") or "/"
        if path == "/webhook":
            status, headers, body = (self._webhook(environ) if method == "POST" else
                                     self._not_allowed("POST"))
        elif method not in ("GET", "HEAD"):
            status, headers, body = self._not_allowed("GET, HEAD")
        elif path not in OPEN and not host_allowed(environ.get("HTTP_HOST"), self.ep.hosts):
            status, headers, body = text(
                "421 Misdirected Request", "without RECONCILER_UI_TOKEN this daemon answers "
                "only to this machine's names (localhost, an IP address): set the token, or "
                f"add the name to {HOSTS_ENV}\n")
        elif path not in OPEN and not authorized(self.ep.token,
                                                 environ.get("HTTP_AUTHORIZATION")):
            status, headers, body = text("401 Unauthorized", "a bearer token is needed\n")
            headers += [("WWW-Authenticate", 'Basic realm="reconciler", charset="UTF-8"'),
                        ("WWW-Authenticate", 'Bearer realm="reconciler"')]
        elif path == "/metrics":
            status, headers, body = self._metrics(environ)
        else:
            status, headers, body = self._get(path, parse_qs(environ.get("QUERY_STRING", "")))
        start_response(status, headers + SECURITY_HEADERS + [("Content-Length", str(len(body)))])
        return [b"" if method == "HEAD" else body]

    def _not_allowed(self, allow: str) -> Response:
        status, headers, body = text("405 Method Not Allowed", "method not allowed\n")
        return status, headers + [("Allow", allow)], body

    def _get(self, path: str, query: dict[str, list[str]]) -> Response:
        ep = self.ep
        if path == "/healthz":
            ok = ep.alive()
            return text("200 OK" if ok else "503 Service Unavailable",
                        "ok\n" if ok else "loop stopped\n")
        if path == "/readyz":
            return self._readyz()
        if path == "/status":
            ep.refresh()
            return as_json("200 OK", ep.state.to_json())
        if path == "/favicon.ico":  # asked by every browser; we have none
            return "204 No Content", [], b""
        if path.startswith("/static/"):
            return self._static(path.removeprefix("/static/"))
        if ep.dashboard is not None and (path in PAGES or path.startswith("/api/")):
            return self._dashboard(path, query)
        return text("404 Not Found", "not found\n")

    def _readyz(self) -> Response:
        """200 once the first pass has finished, and only while this daemon leads."""
        data = self.ep.state.to_json()
        if not data["leader"]:
            holder = (data.get("lease") or {}).get("holder") or "nobody"
            return text("503 Service Unavailable",
                        f"not the leader (the lease is held by {holder})\n")
        if not data["ready"]:
            return text("503 Service Unavailable", "first pass pending\n")
        return text("200 OK", "ready\n")

    def _static(self, name: str) -> Response:
        path = STATIC / name
        kind = STATIC_TYPES.get(path.suffix)
        if "/" in name or kind is None or not path.is_file():
            return text("404 Not Found", "not found\n")
        return "200 OK", [("Content-Type", kind)], path.read_bytes()

    def _dashboard(self, path: str, query: dict[str, list[str]]) -> Response:
        from reconciler.daemon import pages

        self.ep.refresh()
        if path.startswith("/api/"):
            data = pages.api(self.ep.dashboard, path.removeprefix("/api/"), query)
            if data is None:
                return text("404 Not Found", "not found\n")
            return as_json("200 OK", data)
        html = pages.page(self.ep.dashboard, path, query)
        return "200 OK", [("Content-Type", "text/html; charset=utf-8")], html.encode()

    def _metrics(self, environ: dict[str, Any]) -> Response:
        """prometheus-client's own WSGI app (OpenMetrics and gzip by negotiation), always
        asked a GET: it answers HEAD with 405, and we drop the body of a HEAD ourselves."""
        self.ep.refresh()
        if self._metrics_app is None:
            from prometheus_client import make_wsgi_app

            self._metrics_app = make_wsgi_app(self.ep.metrics.registry)
        answer: list[Any] = []

        def start(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            answer[:] = [status, [h for h in headers if h[0].lower() != "content-length"]]
            return lambda data: None

        body = b"".join(self._metrics_app({**environ, "REQUEST_METHOD": "GET"}, start))
        return answer[0], answer[1], body

    def _webhook(self, environ: dict[str, Any]) -> Response:
        """waitress has read the body (a bad Content-Length is its 400, a body over
        server.READ_BODY its 413, before we are called). A body over webhook.MAX_BODY
        but within READ_BODY was read whole, so the 413 reaches the client instead of
        a reset from closing on unread data."""
        stream = environ["wsgi.input"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length > webhook.MAX_BODY:
            log.info("webhook 413: a body of %d bytes, over %d", length, webhook.MAX_BODY)
            return as_json("413 Request Entity Too Large",
                           {"message": f"body over {webhook.MAX_BODY} bytes"})
        body = stream.read(length) if length > 0 else b""
        ep = self.ep
        verdict = webhook.judge(ep.secret, body, environ.get("HTTP_X_HUB_SIGNATURE_256"),
                                environ.get("HTTP_X_GITHUB_EVENT"), ep.branch)
        # unauthenticated: a GUID from GitHub, anything from others (`x fake=1` in a text log)
        delivery = re.sub(r"[^0-9A-Za-z._-]", "?",
                          environ.get("HTTP_X_GITHUB_DELIVERY") or "-")[:64]
        log.info("webhook %s: %s", verdict.status, verdict.message,
                 extra={"delivery": delivery})
        if verdict.trigger:
            ep.trigger("webhook")
        reason = {200: "OK", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized"}
        return as_json(f"{verdict.status} {reason.get(verdict.status, 'OK')}",
                       {"message": verdict.message})
