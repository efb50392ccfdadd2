"""Notifications: a signed outgoing webhook and GitHub commit statuses, sent in the background.

What is told: a pass that fails (once per failing commit and result, not on
every retry), the first good pass after failures ("recovered"), and every
pass that applied a commit ("applied"). Configured from the environment:

  RECONCILER_NOTIFY_URL      POST a JSON event here (http or https)
  RECONCILER_NOTIFY_SECRET   sign it: X-Reconciler-Signature-256: sha256=HMAC-SHA256(body)
  RECONCILER_GITHUB_TOKEN    set a commit status (context "reconciler") on the commit
  RECONCILER_GITHUB_REPO     OWNER/NAME of the config repository on GitHub
  RECONCILER_GITHUB_API      API base URL (default https://api.github.com; GHE, tests)

A pass never waits for a delivery: events go into a bounded queue that one
thread sends from, with a timeout per request and retries with exponential
backoff on 5xx answers, timeouts and connection errors (a 4xx is final).
The oldest waiting event is dropped when the queue is full. Secrets are
registered for redaction and never logged; neither are request headers.
Redirects are not followed: urllib would re-send the headers (the GitHub
token, the signature) to wherever the Location points, as a GET without the
body, and count a lost event as sent; a 3xx is a failed delivery instead.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import queue
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.daemon.state import APPLIED, GOOD, SKIPPED, Outcome, PassRecord, now_iso
from reconciler.sources.credentials import redact, register_secret

log = logging.getLogger("reconciler.daemon.notify")

URL_ENV, SECRET_ENV = "RECONCILER_NOTIFY_URL", "RECONCILER_NOTIFY_SECRET"
GITHUB_TOKEN_ENV, GITHUB_REPO_ENV = "RECONCILER_GITHUB_TOKEN", "RECONCILER_GITHUB_REPO"
GITHUB_API_ENV = "RECONCILER_GITHUB_API"
SIGNATURE_HEADER = "X-Reconciler-Signature-256"
COMMIT = re.compile(r"^[0-9a-f]{40}\Z")
REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+\Z")
QUEUE = 100
_STOP = object()


@dataclass(frozen=True)
class NotifySettings:
    url: str | None = None
    secret: str | None = None
    github_token: str | None = None
    github_repo: str | None = None
    github_api: str = "https://api.github.com"
    timeout: float = 10.0  # per request
    attempts: int = 5  # per delivery
    backoff: float = 1.0  # first retry delay, doubled each time
    backoff_max: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> NotifySettings:
        """The settings in `env`; ValueError naming the variable when one is malformed."""
        url = env.get(URL_ENV) or None
        if url:
            _check_url(URL_ENV, url)
        repo = env.get(GITHUB_REPO_ENV) or None
        if repo and not REPO.match(repo):
            raise ValueError(f"{GITHUB_REPO_ENV} must be OWNER/NAME, got {repo!r}")
        token = env.get(GITHUB_TOKEN_ENV) or None
        if bool(token) != bool(repo):
            raise ValueError(f"set both {GITHUB_TOKEN_ENV} and {GITHUB_REPO_ENV}, or neither")
        api = (env.get(GITHUB_API_ENV) or "https://api.github.com").rstrip("/")
        _check_url(GITHUB_API_ENV, api)
        return cls(url=url, secret=env.get(SECRET_ENV) or None, github_token=token,
                   github_repo=repo, github_api=api)

    @property
    def enabled(self) -> bool:
        return bool(self.url or self.github_token)


def _check_url(name: str, url: str) -> None:
    """ValueError (naming `name`, never echoing the URL: it may hold a secret) unless `url`
    is an http(s) URL urllib can send to."""
    problem = None
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError when the port is not a number in range)
    except ValueError:
        problem = "is not a valid URL"
    else:
        if parts.scheme not in ("http", "https"):
            problem = "must be an http:// or https:// URL"
        elif parts.username is not None or parts.password is not None:
            problem = ("must not hold a user:password@ (not supported; "
                       "sign the events with RECONCILER_NOTIFY_SECRET instead)")
        elif not parts.hostname:
            problem = "has no host"
        elif any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
            problem = "must not contain spaces or control characters"
    if problem:
        raise ValueError(f"{name} {problem}")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse every redirect: the 3xx becomes an HTTPError (a failed delivery)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Delivery:
    target: str  # "webhook" | "github"
    url: str
    body: bytes
    headers: dict[str, str]
    what: str  # for the log: "failed event for 1a2b3c"


class Notifier:
    """Decides what a pass is worth telling, and sends it from a background thread."""

    def __init__(self, settings: NotifySettings, *, repo: str, branch: str | None,
                 metrics: Any = None) -> None:
        self.settings = settings
        self.repo, self.branch = repo, branch
        self.metrics = metrics
        register_secret(settings.secret)
        register_secret(settings.github_token)
        self._queue: queue.Queue[Delivery | object] = queue.Queue(maxsize=QUEUE)
        self._stopping = threading.Event()
        self._failing = False
        self._last_failure: tuple[str | None, str] | None = None
        self._thread = threading.Thread(target=self._run, name="notify", daemon=True)

    # -- deciding ---------------------------------------------------------------------------

    def observe(self, record: PassRecord, outcome: Outcome) -> None:
        """Called after every pass (DaemonState listener); returns at once."""
        event = self._event(record)
        if event is None:
            return
        payload = {"event": event, "result": record.result, "commit": record.commit,
                   "repo": self.repo, "branch": self.branch, "pass": record.pass_id,
                   "trigger": record.trigger, "summary": record.summary,
                   "error": redact(outcome.error) if outcome.error else outcome.error,
                   "durationSeconds": round(record.duration, 3),
                   "at": now_iso()}
        if self.settings.url:
            self._enqueue(self._webhook(payload))
        if self.settings.github_token and record.commit and COMMIT.match(record.commit):
            self._enqueue(self._github(record, outcome))

    def _event(self, record: PassRecord) -> str | None:
        if record.result == SKIPPED:
            return None
        if record.result in GOOD:
            if self._failing:
                self._failing, self._last_failure = False, None
                return "recovered"
            return "applied" if record.result == APPLIED else None
        key = (record.commit, record.result)
        new = not self._failing or key != self._last_failure
        self._failing, self._last_failure = True, key
        return "failed" if new else None

    def _webhook(self, payload: dict[str, Any]) -> Delivery:
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "reconciler",
                   "X-Reconciler-Event": str(payload["event"]),
                   "X-Reconciler-Delivery": str(uuid.uuid4())}
        if self.settings.secret:
            headers[SIGNATURE_HEADER] = sign(self.settings.secret, body)
        what = f"{payload['event']} event for {str(payload['commit'] or '-')[:12]}"
        return Delivery("webhook", str(self.settings.url), body, headers, what)

    def _github(self, record: PassRecord, outcome: Outcome) -> Delivery:
        if record.result in GOOD:
            state, text = "success", f"applied ({record.result})"
        else:
            state = "error" if record.result == "error" else "failure"
            text = f"{record.result}: {outcome.error or ''}"
        body = json.dumps({"state": state, "context": "reconciler",
                           "description": redact(text)[:140]}).encode()
        headers = {"Accept": "application/vnd.github+json", "User-Agent": "reconciler",
                   "Authorization": f"Bearer {self.settings.github_token}",
                   "X-GitHub-Api-Version": "2022-11-28", "Content-Type": "application/json"}
        url = (f"{self.settings.github_api}/repos/{self.settings.github_repo}/statuses/"
               f"{record.commit}")
        return Delivery("github", url, body, headers,
                        f"commit status {state} on {str(record.commit)[:12]}")

    def _enqueue(self, delivery: Delivery) -> None:
        while True:
            try:
                self._queue.put_nowait(delivery)
                return
            except queue.Full:
                try:
                    dropped = self._queue.get_nowait()
                except queue.Empty:
                    continue
                if isinstance(dropped, Delivery):
                    log.warning("notification queue full: dropped the %s", dropped.what)
                    self._count(dropped.target, "failed")

    # -- sending ----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued for up to `timeout` seconds, then stop."""
        if not self._thread.is_alive():
            return
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            pass
        self._thread.join(timeout)
        self._stopping.set()
        self._thread.join(1.0)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            assert isinstance(item, Delivery)
            self._deliver(item)

    def _deliver(self, delivery: Delivery) -> None:
        delay = self.settings.backoff
        for attempt in range(1, self.settings.attempts + 1):
            retry, why = self._send(delivery)
            if why is None:
                self._count(delivery.target, "sent")
                log.info("notified: %s", delivery.what, extra={"target": delivery.target})
                return
            if not retry or attempt == self.settings.attempts or self._stopping.is_set():
                self._count(delivery.target, "failed")
                log.warning("could not send the %s (%s: %s) after %d attempt(s)",
                            delivery.what, delivery.target, why, attempt)
                return
            log.info("retrying the %s in %.1fs (%s)", delivery.what, delay, why)
            if self._stopping.wait(delay):
                return
            delay = min(delay * 2, self.settings.backoff_max)

    def _send(self, delivery: Delivery) -> tuple[bool, str | None]:
        """One attempt: (worth retrying, why it failed or None)."""
        try:
            request = urllib.request.Request(delivery.url, data=delivery.body,
                                             headers=delivery.headers, method="POST")
            with _OPENER.open(request, timeout=self.settings.timeout) as response:
                response.read(65536)
            return False, None
        except urllib.error.HTTPError as exc:
            if 300 <= exc.code < 400:
                return False, f"HTTP {exc.code}: redirects are not followed, give the final URL"
            return exc.code >= 500 or exc.code == 429, f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            return True, redact(str(reason))
        except http.client.HTTPException as exc:  # an answer that is not HTTP
            return True, f"a malformed answer ({type(exc).__name__})"
        except ValueError as exc:  # a URL http.client refuses: final (the thread lives on)
            return False, f"an invalid URL ({type(exc).__name__})"

    def _count(self, target: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.notifications.labels(target=target, outcome=outcome).inc()
