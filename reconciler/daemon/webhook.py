"""GitHub push webhooks: verify the signature, decide whether to trigger a pass.

GitHub signs the raw request body with HMAC-SHA256 and the shared secret and
sends `X-Hub-Signature-256: sha256=<hex>`. Anything not signed with our
secret is refused with 401 and does nothing, so an open port cannot be used
to make the daemon hammer the Git server. Without a configured secret every
delivery is refused: an unauthenticated trigger is never accepted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass

SECRET_ENV = "RECONCILER_WEBHOOK_SECRET"
SIGNATURE_HEADER = "X-Hub-Signature-256"
MAX_BODY = 1024 * 1024


@dataclass(frozen=True)
class Verdict:
    status: int
    message: str
    trigger: bool = False


def sign(secret: str, body: bytes) -> str:
    """The header value GitHub would send for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str | None, body: bytes, header: str | None) -> bool:
    if not secret or not header or not header.startswith("sha256="):
        return False
    return hmac.compare_digest(sign(secret, body), header.strip())


def judge(
    secret: str | None, body: bytes, signature: str | None, event: str | None,
    branch: str | None,
) -> Verdict:
    """What to answer a delivery, and whether it triggers a pass."""
    if not secret:
        return Verdict(401, "webhook secret not configured (set RECONCILER_WEBHOOK_SECRET)")
    if not verify(secret, body, signature):
        return Verdict(401, "missing or invalid X-Hub-Signature-256")
    if event == "ping":
        return Verdict(200, "pong")
    if event not in (None, "", "push"):
        return Verdict(202, f"ignored event {event!r}")
    try:
        payload = json.loads(body or b"{}")
    except ValueError:
        return Verdict(400, "body is not JSON (set the webhook's content type to "
                            "application/json)")
    ref = payload.get("ref") if isinstance(payload, dict) else None
    if branch and isinstance(ref, str) and ref != f"refs/heads/{branch}":
        return Verdict(202, f"ignored push to {ref}")
    return Verdict(202, "pass triggered", trigger=True)
