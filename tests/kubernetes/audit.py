"""Request counts from the API server's audit log (what the server saw, not the client).

The server logs one event per request stage (RequestReceived is omitted by
the policy; long-running watches log ResponseStarted as well), each with
an auditID, verb, requestURI and userAgent. `Audit.mark()` sends a request
of its own with a unique path and waits until the server has logged it, so
the events between two marks are what happened in between. The reconciler's
requests carry the user agent `reconciler/<version>`; the tests' own helper
client another, so they are told apart.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from reconciler.runtimes.kubernetes.client import USER_AGENT, Api

MARK_PREFIX = "/api/v1/namespaces/audit-mark-"


@dataclass(frozen=True)
class Request:
    verb: str
    path: str
    query: dict[str, list[str]]
    user_agent: str
    code: int

    @property
    def key(self) -> tuple[str, str]:
        return self.verb, self.path


class Audit:
    def __init__(self, log: Path, api: Api) -> None:
        self.log, self.api = log, api

    def mark(self, timeout: float = 10.0) -> int:
        """A point in the log: the byte offset just after a marker request of ours."""
        token = uuid.uuid4().hex[:12]
        self.api.get_or_none(f"{MARK_PREFIX}{token}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            data = self.log.read_bytes()
            at = data.find(f"audit-mark-{token}".encode())
            if at >= 0:
                end = data.find(b"\n", at)
                return len(data) if end < 0 else end + 1
            time.sleep(0.02)
        raise AssertionError(f"the audit log did not show marker {token} in {timeout}s")

    def requests(self, start: int, end: int | None = None,
                 user_agent: str = USER_AGENT) -> list[Request]:
        """Requests whose user agent starts with `user_agent`, logged between two marks
        (one per request: a watch's two stages count once)."""
        data = self.log.read_bytes()[start:end]
        seen: dict[str, Request] = {}
        for line in data.splitlines():
            try:
                event: dict[str, Any] = json.loads(line)
            except ValueError:
                continue
            agent = event.get("userAgent") or ""
            if not agent.startswith(user_agent) or event.get("auditID") in seen:
                continue
            parts = urlsplit(event.get("requestURI") or "")
            seen[event["auditID"]] = Request(
                event.get("verb", ""), parts.path, parse_qs(parts.query), agent,
                int((event.get("responseStatus") or {}).get("code") or 0))
        return list(seen.values())

    def count(self, start: int, end: int | None = None,
              user_agent: str = USER_AGENT) -> Counter[tuple[str, str]]:
        return Counter(r.key for r in self.requests(start, end, user_agent))
