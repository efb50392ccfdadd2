"""The one door to the API server: connect, send raw JSON, retry, page, translate errors.

The official client's typed models cost a lot to build for big lists and
know nothing of server-side apply's content type; its request path (the
recursive sanitizing of every body, a token refresh hook that rebuilds the
configuration on every request) cost more client CPU than the API server's
own work on an apply. So requests are plain JSON over the client's own
urllib3 pool: the client still does kubeconfig loading and TLS (certificates,
CA, proxies), and gives the bearer token (Api._auth: static, exec plugins,
service-account files), asked for at most once a second.

- Every request, read or write, is retried on 429, 5xx, timeouts and broken
  connections (urllib3's own retries are off, so each attempt is counted
  here): capped exponential backoff with jitter, or the server's
  Retry-After when it sends one.
- A circuit breaker: after BREAKER_THRESHOLD failed attempts in a row (no
  answer, 429 or 5xx) every further request raises Unavailable at once, so
  an outage stops an apply instead of holding its lock for hours.
- list() pages (limit=PAGE_SIZE, continue) and starts over when the server
  answers 410 Gone to a continue token that expired; `metadata_only` asks
  for PartialObjectMetadata (names, labels, annotations: no specs).
- Failures leave as ApiError (a RuntimeFault) with a readable message;
  `status` lets callers treat 404 as "absent" and 409 as a failed precondition.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from reconciler import __version__
from reconciler.backoff import Backoff
from reconciler.errors import ReconcilerError, RuntimeFault
from reconciler.runtimes.base import Unavailable

log = logging.getLogger("reconciler.runtimes.kubernetes")
FIELD_MANAGER = "reconciler"
APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"
# Metadata only (no spec, no Secret data) where no more is needed; plain JSON from a server
# that cannot.
METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
METADATA_ONE = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"
USER_AGENT = f"reconciler/{__version__}"
REQUEST_TIMEOUT = 30.0  # seconds per request (a page of a list is small)
PAGE_SIZE = 500
ATTEMPTS = 5  # per request: the first try and 4 retries
FIRST_DELAY, MAX_DELAY = 0.2, 5.0  # seconds of backoff between attempts
MAX_RETRY_AFTER = 60.0  # seconds: a longer Retry-After is capped
BREAKER_THRESHOLD = 20  # failed attempts in a row that open the circuit
RELISTS = 3  # times a paged list starts over after 410 Gone
POOL_SIZE = 32  # connections kept per host: room for concurrent writes and watches
RETRYABLE = {409, 429}
AUTH_REFRESH = 1.0  # seconds between asks of the client for the token (see Api._auth)


class ApiError(RuntimeFault):
    """An HTTP error from the API server (status 0: no response at all)."""

    def __init__(self, message: str, status: int, retry_after: float | None = None) -> None:
        super().__init__(message, retryable=status in RETRYABLE or status >= 500 or status == 0)
        self.status = status
        self.retry_after = retry_after


def _failed(status: int) -> bool:
    """The server did not serve the request: no answer, throttled, or a server error."""
    return status == 0 or status == 429 or status >= 500


def connect(kubeconfig: Path | None = None, context: str | None = None) -> Any:
    """An ApiClient from --kubeconfig, else KUBECONFIG, else ~/.kube/config, else the pod's
    service account. ReconcilerError (no traceback) when none of them works."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException
    from yaml import YAMLError

    path: str | None = str(kubeconfig) if kubeconfig else os.environ.get("KUBECONFIG")
    if not path and Path("~/.kube/config").expanduser().exists():
        path = str(Path("~/.kube/config").expanduser())
    configuration = client.Configuration()
    # KUBECONFIG may list several files (merged, as kubectl does); one missing file of a
    # list is skipped by the loader, a single one named is an error of its own.
    if path and os.pathsep not in path and not Path(path).expanduser().is_file():
        what = "no such file" if not Path(path).expanduser().exists() else "not a file"
        source = "--kubeconfig" if kubeconfig else "KUBECONFIG"
        raise ReconcilerError(f"cannot load Kubernetes credentials from {path} ({source}): "
                              f"{what}")
    plugin = _PluginErrors()
    logging.getLogger().addHandler(plugin)  # also keeps logging.error from basicConfig()
    try:
        if path:
            config.load_kube_config(config_file=path, context=context,
                                    client_configuration=configuration, persist_config=False)
        else:
            config.load_incluster_config(client_configuration=configuration)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        raise ReconcilerError(f"cannot load Kubernetes credentials from {path}{where}: "
                              "the kubeconfig is not valid YAML") from None
    except (ConfigException, OSError, ValueError, TypeError, AttributeError, KeyError) as exc:
        where = path or "in-cluster credentials"
        hint = "" if path else " (no --kubeconfig, KUBECONFIG or ~/.kube/config either)"
        detail = str(exc) if isinstance(exc, (ConfigException, OSError, ValueError)) else \
            "it is not a kubeconfig (a mapping with clusters, users and contexts)"
        raise ReconcilerError(f"cannot load Kubernetes credentials from {where}{hint}: "
                              f"{detail}") from None
    finally:
        logging.getLogger().removeHandler(plugin)
    if plugin.messages:
        # The client logs a failed exec plugin (aws, gke-gcloud-auth-plugin, kubelogin) and
        # goes on without credentials: every request would be a bare 401.
        raise ReconcilerError(f"cannot load Kubernetes credentials from {path}: the user's "
                              f"exec plugin failed: {'; '.join(plugin.messages)}")
    configuration.retries = 0  # every attempt goes through Api.request: counted, backed off
    configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize or 0,
                                                POOL_SIZE)
    if not configuration.verify_ssl:
        # The user asked for it in the kubeconfig (insecure-skip-tls-verify); kubectl does
        # not warn on every request either.
        import urllib3

        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    api_client = client.ApiClient(configuration)
    api_client.user_agent = USER_AGENT
    return api_client


class _PluginErrors(logging.Handler):
    """The errors the official client's kubeconfig loader logs instead of raising."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.module == "kube_config":
            self.messages.append(record.getMessage())


class Breaker:
    """Counts failed attempts in a row; open (refusing every request) at `threshold`."""

    def __init__(self, threshold: int = BREAKER_THRESHOLD) -> None:
        self.threshold = threshold
        self.failures = 0
        self.reason: str | None = None  # set when the circuit opens; it stays open
        self._lock = threading.Lock()

    @property
    def open(self) -> bool:
        return self.reason is not None

    def check(self) -> None:
        if self.reason is not None:
            raise Unavailable(self.reason)

    def record(self, error: ApiError | None) -> None:
        with self._lock:
            if self.reason is not None:
                return
            if error is None or not _failed(error.status):
                self.failures = 0
                return
            self.failures += 1
            if self.failures >= self.threshold:
                self.reason = (f"stopped: the API server failed {self.failures} requests in a "
                               f"row (circuit breaker; last: {error})")


@dataclass(frozen=True)
class Listing:
    items: list[dict[str, Any]]
    resource_version: str  # of the whole list: a watch starts from here


@dataclass(frozen=True)
class Answer:
    """A successful write's status code and decoded body (201: it was created)."""

    status: int
    body: dict[str, Any]


class Api:
    """Raw JSON requests over an ApiClient, with retries and a circuit breaker."""

    def __init__(self, api_client: Any, timeout: float = REQUEST_TIMEOUT, *,
                 attempts: int = ATTEMPTS, delays: tuple[float, float] = (FIRST_DELAY, MAX_DELAY),
                 breaker: Breaker | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = api_client
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.delays = delays
        self.breaker = breaker if breaker is not None else Breaker()
        self.sleep = sleep
        self._auth_cache: tuple[float, dict[str, str]] | None = None

    @property
    def host(self) -> str:
        return str(self.client.configuration.host)

    def request(self, method: str, path: str, *, query: dict[str, str] | None = None,
                body: Any = None, content_type: str | None = None,
                accept: str | None = None) -> dict[str, Any]:
        """Send one request (retried as the module docstring says); the decoded JSON answer.
        ApiError on any failure, Unavailable once the circuit is open."""
        return self.send(method, path, query=query, body=body, content_type=content_type,
                         accept=accept).body

    def send(self, method: str, path: str, *, query: dict[str, str] | None = None,
             body: Any = None, content_type: str | None = None,
             accept: str | None = None) -> Answer:
        backoff = Backoff(self.delays[0], self.delays[1], jitter=0.5)
        for attempt in range(1, self.attempts + 1):
            self.breaker.check()
            try:
                answer = self._once(method, path, query, body, content_type, accept)
            except ApiError as exc:
                self.breaker.record(exc)
                if not _failed(exc.status) or attempt >= self.attempts:
                    raise
                delay = backoff.next()
                if exc.retry_after is not None:
                    delay = exc.retry_after + delay / 10  # the server's word, a little spread
                if exc.status == 0:  # no answer (each may have taken the whole timeout): say so
                    log.warning("%s; trying again in %.1fs (attempt %d of %d)", exc,
                                delay, attempt + 1, self.attempts)
                self.sleep(delay)
                continue
            self.breaker.record(None)
            return answer
        raise AssertionError("unreachable")  # pragma: no cover

    def _once(self, method: str, path: str, query: dict[str, str] | None, body: Any,
              content_type: str | None, accept: str | None) -> Answer:
        import urllib3
        from urllib3.exceptions import HTTPError

        headers = {**self.client.default_headers, **self._auth(),
                   "Accept": accept or "application/json"}
        data = None
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
            data = json.dumps(body, separators=(",", ":")).encode()  # apply-patch: JSON is YAML
        url = self.host + path + (f"?{urlencode(query)}" if query else "")
        try:
            response = self.client.rest_client.pool_manager.request(
                method, url, body=data, headers=headers,
                timeout=urllib3.Timeout(total=self.timeout))
            answer = response.data
        except (HTTPError, OSError) as exc:
            raise ApiError(f"{method} {path}: cannot reach the API server at "
                           f"{self.host}: {_why(exc)}", 0) from None
        if not 200 <= response.status < 300:
            raise _fault(method, path, response.status, response.reason, answer,
                         response.headers)
        try:
            decoded = json.loads(answer) if answer else {}
        except ValueError:
            raise ApiError(f"{method} {path}: the API server's answer is not JSON "
                           f"({len(answer)} bytes)", 0) from None
        return Answer(response.status, decoded if isinstance(decoded, dict) else {})

    def _auth(self) -> dict[str, str]:
        """The Authorization header of the kubeconfig's token (none for client certificates),
        asked of the client at most every AUTH_REFRESH seconds: its refresh hook, which
        reloads an expired exec-plugin or service-account token, rebuilds the whole
        configuration each time it runs."""
        now = time.monotonic()
        cached = self._auth_cache
        if cached is None or now - cached[0] >= AUTH_REFRESH:
            found = self.client.configuration.auth_settings().get("BearerToken") or {}
            header = {found["key"]: found["value"]} if found.get("value") else {}
            self._auth_cache = cached = (now, header)
        return cached[1]

    def get(self, path: str, **query: str) -> dict[str, Any]:
        return self.request("GET", path, query=query)

    def get_or_none(self, path: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return self.get(path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, path: str, *, labels: str | None = None, fields: str | None = None,
             metadata_only: bool = False, page: int = PAGE_SIZE) -> Listing:
        """Every item of a collection, PAGE_SIZE at a time; starts over on 410 Gone (the
        continue token expired), at most RELISTS times."""
        accept = METADATA_LIST if metadata_only else None
        for restart in range(RELISTS + 1):
            items: list[dict[str, Any]] = []
            token = ""
            while True:
                query = {"limit": str(page)}
                if labels:
                    query["labelSelector"] = labels
                if fields:
                    query["fieldSelector"] = fields
                if token:
                    query["continue"] = token
                try:
                    data = self.request("GET", path, query=query, accept=accept)
                except ApiError as exc:
                    if exc.status == 410 and token and restart < RELISTS:
                        break  # the snapshot expired mid-way: list again from the start
                    raise
                items.extend(data.get("items") or ())
                meta = data.get("metadata") or {}
                token = meta.get("continue") or ""
                if not token:
                    return Listing(items, str(meta.get("resourceVersion") or ""))
        raise AssertionError("unreachable")  # pragma: no cover

    def apply(self, path: str, manifest: dict[str, Any], *,
              metadata_only: bool = False) -> Answer:
        """Server-side apply as field manager `reconciler`, taking over conflicting fields.
        A `metadata.uid` or `metadata.resourceVersion` in the manifest is a precondition.
        `metadata_only`: the answer holds only the object's metadata (less to encode and
        decode when the caller needs no more)."""
        return self.send("PATCH", path, body=manifest, content_type=APPLY_PATCH,
                         query={"fieldManager": FIELD_MANAGER, "force": "true"},
                         accept=METADATA_ONE if metadata_only else None)

    def delete(self, path: str, uid: str | None = None) -> dict[str, Any] | None:
        """Delete in the background (dependents go after); a uid precondition makes sure
        it is the object that was observed. The server's answer, or None when there was
        nothing to delete (404)."""
        body: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1",
                                "propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            return self.request("DELETE", path, body=body)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def close(self) -> None:
        self.client.close()


def _why(exc: BaseException) -> str:
    """urllib3's error without its wrapping: `Connection refused`, `Read timed out. (read
    timeout=30.0)`, not `HTTPSConnectionPool(...): Max retries exceeded ... (Caused by ...)`."""
    reason = getattr(exc, "reason", None)  # MaxRetryError: the underlying error
    text = str(reason if isinstance(reason, BaseException) else exc)
    if text.startswith("HTTP") and "): " in text:  # "HTTPSConnection(host=.., port=..): "
        text = text.split("): ", 1)[1]
    if text.startswith("Failed to establish a new connection: "):
        text = text[len("Failed to establish a new connection: "):]
    return text


def _fault(method: str, path: str, status: int, reason: str | None, body: Any,
           headers: Any = None) -> ApiError:
    """`PATCH /apis/...: 422 Unprocessable Entity: <the server's message>`."""
    message = ""
    try:
        text = body.decode() if isinstance(body, bytes) else body
        message = json.loads(text).get("message", "") if text else ""
    except (ValueError, AttributeError, UnicodeDecodeError):
        message = str(body or "")[:300]
    detail = f": {message}" if message else ""
    return ApiError(f"{method} {path}: {status} {reason or ''}".rstrip() + detail, status,
                    retry_after(headers))


def retry_after(headers: Any) -> float | None:
    """Seconds from a Retry-After header (a number or an HTTP date), capped; None if none."""
    value = None
    try:
        value = headers.get("Retry-After") if headers is not None else None
    except AttributeError:
        return None
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(str(value))
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)
