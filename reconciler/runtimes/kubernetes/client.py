"""The one door to the API server: connect, send raw JSON, translate errors.

The official client's typed models cost a lot to build for big lists and
know nothing of server-side apply's content type, so requests go through
`ApiClient.param_serialize` / `call_api` with plain dicts: the client still
does TLS, auth (tokens, certificates, exec plugins) and kubeconfig loading.

Every failure leaves here as a RuntimeFault with a readable message:
conflicts, throttling, server errors and broken connections are retryable,
other 4xx are not. `ApiError.status` lets callers treat 404 as "absent".
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from reconciler.errors import ReconcilerError, RuntimeFault

FIELD_MANAGER = "reconciler"
APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"
REQUEST_TIMEOUT = 30.0  # seconds per request; a list of 20,000 objects fits well within it
RETRYABLE = {409, 429}
# Metadata only (no spec, no Secret data) where a list needs no more; plain JSON otherwise.
METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"


class ApiError(RuntimeFault):
    """An HTTP error from the API server (status 0: no response at all)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message, retryable=status in RETRYABLE or status >= 500 or status == 0)
        self.status = status


def connect(kubeconfig: Path | None = None, context: str | None = None) -> Any:
    """An ApiClient from --kubeconfig, else KUBECONFIG, else ~/.kube/config, else the pod's
    service account. ReconcilerError (no traceback) when none of them works."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    path: str | None = str(kubeconfig) if kubeconfig else os.environ.get("KUBECONFIG")
    if not path and Path("~/.kube/config").expanduser().exists():
        path = str(Path("~/.kube/config").expanduser())
    configuration = client.Configuration()
    try:
        if path:
            config.load_kube_config(config_file=path, context=context,
                                    client_configuration=configuration, persist_config=False)
        else:
            config.load_incluster_config(client_configuration=configuration)
    except (ConfigException, OSError, ValueError, TypeError) as exc:
        where = path or "in-cluster credentials"
        hint = "" if path else " (no --kubeconfig, KUBECONFIG or ~/.kube/config either)"
        raise ReconcilerError(f"cannot load Kubernetes credentials from {where}{hint}: "
                              f"{exc}") from None
    if not configuration.verify_ssl:
        # The user asked for it in the kubeconfig (insecure-skip-tls-verify); kubectl does
        # not warn on every request either.
        import urllib3

        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    return client.ApiClient(configuration)


class Api:
    """Raw JSON requests over an ApiClient (any subclass, e.g. one that counts calls)."""

    def __init__(self, api_client: Any, timeout: float = REQUEST_TIMEOUT) -> None:
        self.client = api_client
        self.timeout = timeout

    def request(self, method: str, path: str, *, query: dict[str, str] | None = None,
                body: Any = None, content_type: str | None = None,
                accept: str = "application/json") -> dict[str, Any]:
        """Send one request; the decoded JSON answer. ApiError on any failure."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        headers = {"Accept": accept}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        args = self.client.param_serialize(method, path, query_params=list((query or {}).items()),
                                           header_params=headers, body=body,
                                           auth_settings=["BearerToken"])
        try:
            response = self.client.call_api(*args, _request_timeout=self.timeout)
            data = response.read()
        except ApiException as exc:
            raise _fault(method, path, exc.status or 0, exc.reason, exc.body) from None
        except (HTTPError, OSError) as exc:
            raise ApiError(f"{method} {path}: cannot reach the API server at "
                           f"{self.client.configuration.host}: {exc}", 0) from None
        if not 200 <= response.status < 300:
            raise _fault(method, path, response.status, response.reason, data)
        return json.loads(data) if data else {}

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

    def apply(self, path: str, manifest: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply as field manager `reconciler`, taking over conflicting fields."""
        return self.request("PATCH", path, body=manifest, content_type=APPLY_PATCH,
                            query={"fieldManager": FIELD_MANAGER, "force": "true"})

    def delete(self, path: str, uid: str | None = None) -> None:
        """Delete in the background (dependents go after); a uid precondition makes sure
        it is the object that was just checked. Absent already: nothing to do."""
        body: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1",
                                "propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            self.request("DELETE", path, body=body)
        except ApiError as exc:
            if exc.status != 404:
                raise

    def close(self) -> None:
        self.client.close()


def _fault(method: str, path: str, status: int, reason: str | None, body: Any) -> ApiError:
    """`PATCH /apis/...: 422 Unprocessable Entity: <the server's message>`."""
    message = ""
    try:
        text = body.decode() if isinstance(body, bytes) else body
        message = json.loads(text).get("message", "") if text else ""
    except (ValueError, AttributeError, UnicodeDecodeError):
        message = str(body or "")[:300]
    detail = f": {message}" if message else ""
    return ApiError(f"{method} {path}: {status} {reason or ''}".rstrip() + detail, status)
