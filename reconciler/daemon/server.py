"""The daemon's HTTP server: waitress, with limits that hold under abuse.

Why waitress rather than http.server: one select/poll loop holds every
connection (an idle or half-open one costs a file descriptor, not a thread),
requests are read whole by that loop before a worker thread sees them (a slow
client never holds a worker), it has a real listen backlog, and it logs no
traceback when a client goes away. On top of it (pinned, see pyproject.toml):

- a connection limit (MAX_CONNECTIONS): when it is reached, the connection
  idle for longest (no request being served) is closed to make room, so a
  flood of half-open connections can never lock out /healthz or a webhook,
  and file descriptors stay bounded for the passes (git, SQLite, workers);
- an idle timeout (IDLE_TIMEOUT) and a per-request deadline (REQUEST_TIMEOUT:
  the whole request, headers and body, must arrive within it; slowloris);
- TCP_NODELAY on every connection, a bounded request body (webhook.MAX_BODY; up
  to READ_BODY is read whole so that its 413 is seen) and bounded headers.

Handlers (daemon.web) only read the daemon's state or set the loop's trigger;
nothing here ever runs a pass, so a slow or hostile client cannot block
reconciliation.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer

from reconciler.daemon import webhook
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.state import DaemonState

log = logging.getLogger("reconciler.daemon.server")

MAX_CONNECTIONS = 200  # open client connections; beyond it the longest idle one is closed
IDLE_TIMEOUT = 30.0  # seconds a connection may sit idle (keep-alive, or nothing sent yet)
REQUEST_TIMEOUT = 10.0  # seconds a started request has to arrive whole
BACKLOG = 1024  # the listen queue (the kernel caps it at net.core.somaxconn)
THREADS = 8  # worker threads running handlers
MAX_HEADERS = 64 * 1024
# Bodies up to this are read whole even when over webhook.MAX_BODY (the app answers 413):
# closing a connection with unread data makes the kernel send a reset, and the client
# then never sees the 413. Larger ones get waitress's own 413 and the close.
READ_BODY = 4 * webhook.MAX_BODY


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
    token: str | None = None  # RECONCILER_UI_TOKEN: bearer token of the UI/status/metrics
    # Host names the open routes answer to (None: any): a daemon without a token on the
    # loopback interface answers only to this machine's names, against DNS rebinding
    hosts: frozenset[str] | None = None
    dashboard: Any = None  # daemon.views.Dashboard: what the UI shows (None: a bare server)
    extra: dict[str, Any] = field(default_factory=dict)


def parse_listen(listen: str) -> tuple[str, int]:
    """`host:port` (`:port` or a bare port mean 127.0.0.1)."""
    host, _, port = listen.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"--listen {listen!r}: expected HOST:PORT") from None
    return host.strip("[]") or "127.0.0.1", number


def is_loopback(host: str) -> bool:
    """Whether `host` (as given to --listen) only listens on this machine."""
    return host in ("localhost", "::1") or host.startswith("127.")


HOSTS_ENV = "RECONCILER_ALLOWED_HOSTS"


def allowed_hosts(listen_host: str, token: str | None, extra: str | None) -> frozenset[str] | None:
    """The Host names a daemon answers to: any (None) with a token or beyond the loopback
    interface; else localhost, the --listen host and RECONCILER_ALLOWED_HOSTS (comma
    separated). IP literals are always allowed: DNS rebinding needs a name."""
    if token or not is_loopback(listen_host):
        return None
    names = {"localhost", listen_host.lower()}
    names.update(n.strip().lower() for n in (extra or "").split(",") if n.strip())
    return frozenset(names)


def host_allowed(header: str | None, hosts: frozenset[str] | None) -> bool:
    """Whether a request's Host header (`name[:port]`, `[v6]:port`) is one of `hosts`."""
    if hosts is None:
        return True
    value = (header or "").strip().lower()
    if value.startswith("["):
        return True  # an IPv6 literal
    name = value.rsplit(":", 1)[0] if value.count(":") == 1 else value
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return name.rstrip(".") in hosts


class _Channel(HTTPChannel):
    """A connection that remembers when its current request began to arrive."""

    request_started = 0.0

    def received(self, data: bytes) -> bool:
        if self.request is None and data:
            self.request_started = time.monotonic()
        return bool(super().received(data))


class _Listener(TcpWSGIServer):
    """waitress's TCP server with eviction at the connection limit and request deadlines."""

    channel_class = _Channel
    limit = MAX_CONNECTIONS
    request_timeout = REQUEST_TIMEOUT
    _last_warning = 0.0
    next_channel_cleanup: float = 0.0

    def readable(self) -> bool:
        # waitress stops accepting at its connection limit, which leaves new clients
        # (a probe, a webhook) queued behind the flood; we keep accepting and evict.
        now = time.time()
        if now >= self.next_channel_cleanup:
            self.next_channel_cleanup = now + self.adj.cleanup_interval
            self.maintenance(now)
        return bool(self.accepting)

    def handle_accept(self) -> None:
        if len(self.active_channels) >= self.limit:
            self._evict()
        super().handle_accept()

    def set_socket_options(self, conn: socket.socket) -> None:
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass  # the peer is already gone; waitress closes it

    def maintenance(self, now: float) -> None:
        super().maintenance(now)  # idle connections (nothing in service) past channel_timeout
        started_before = time.monotonic() - self.request_timeout
        for channel in list(self.active_channels.values()):
            if (not channel.requests and channel.request is not None
                    and channel.request_started < started_before):
                channel.will_close = True  # a request still arriving after REQUEST_TIMEOUT

    def _evict(self) -> None:
        idle = [c for c in self.active_channels.values() if not c.requests]
        if not idle:
            return  # every connection is being served: the new one waits its turn
        oldest = min(idle, key=lambda c: c.last_activity)
        if time.monotonic() - self._last_warning > 10.0:
            self._last_warning = time.monotonic()
            log.warning("%d connections open (the limit): closing the longest idle ones "
                        "to serve new ones", len(self.active_channels))
        oldest.handle_close()


class Server:
    """The endpoints on `host:port`, served from a daemon thread until `close`."""

    def __init__(self, listen: str, endpoints: Endpoints, *,
                 limit: int = MAX_CONNECTIONS, idle_timeout: float = IDLE_TIMEOUT,
                 request_timeout: float = REQUEST_TIMEOUT) -> None:
        from reconciler.daemon.web import App

        host, port = parse_listen(listen)
        endpoints.metrics.bind_state(endpoints.state.to_json)  # the pool series at scrape time
        self.httpd = _Listener(
            App(endpoints), host=host, port=port, threads=THREADS, backlog=BACKLOG,
            connection_limit=limit + 16, channel_timeout=idle_timeout, cleanup_interval=1,
            asyncore_use_poll=True, asyncore_loop_timeout=0.5, log_socket_errors=False,
            max_request_body_size=READ_BODY, max_request_header_size=MAX_HEADERS,
            ident="reconciler", expose_tracebacks=False, clear_untrusted_proxy_headers=True,
            url_scheme="http")
        self.httpd.limit = limit
        self.httpd.request_timeout = request_timeout
        self._thread = threading.Thread(target=self.httpd.run, name="http", daemon=True)

    @property
    def address(self) -> str:
        host, port = str(self.httpd.effective_host), self.httpd.effective_port
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stop accepting, close every connection, stop the worker threads."""
        from waitress import wasyncore

        self.httpd.task_dispatcher.shutdown(timeout=2)
        wasyncore.close_all(self.httpd._map)
        self._thread.join(timeout=5.0)

