"""Git credentials from the environment, and their redaction.

Credentials reach git only through its environment (GIT_SSH_COMMAND, and
GIT_CONFIG_* for an `http.extraHeader`), never through the command line or
the URL: GitPython puts the command line into its error messages, and `ps`
shows it to every user of the machine. Every message that leaves this
package goes through `redact`, which masks the secrets it was told about
and any user:password part of a URL.
"""

from __future__ import annotations

import base64
import re
import shlex
import threading
from collections.abc import Mapping

SSH_KEY_ENV = "RECONCILER_GIT_SSH_KEY"
TOKEN_ENV = "RECONCILER_GIT_TOKEN"
MASK = "***"

_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")
_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Remember a value that must never appear in a log line or an error."""
    if value and len(value) >= 4:
        with _secrets_lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """`text` with registered secrets and URL credentials masked."""
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, MASK)
    return _URL_USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)


def redact_url(url: str) -> str:
    """The URL as it may be shown: without a user:password part."""
    return _URL_USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", url)


def is_http_url(url: str) -> bool:
    return url.lower().startswith(("https://", "http://"))


def git_environment(env: Mapping[str, str], url: str) -> dict[str, str]:
    """Extra environment for a git command that talks to `url`.

    RECONCILER_GIT_SSH_KEY becomes `ssh -i KEY -o IdentitiesOnly=yes` (an
    explicit GIT_SSH_COMMAND wins); RECONCILER_GIT_TOKEN becomes an HTTP
    Authorization header for http(s) URLs. GIT_TERMINAL_PROMPT=0 makes a
    missing credential fail fast instead of waiting for a prompt no one sees."""
    extra = {"GIT_TERMINAL_PROMPT": "0"}
    key = env.get(SSH_KEY_ENV)
    if key and not env.get("GIT_SSH_COMMAND"):
        extra["GIT_SSH_COMMAND"] = (
            f"ssh -i {shlex.quote(key)} -o IdentitiesOnly=yes -o BatchMode=yes"
        )
    token = env.get(TOKEN_ENV)
    if token and is_http_url(url):
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        register_secret(token)
        register_secret(basic)
        index = int(env.get("GIT_CONFIG_COUNT", "0") or 0)
        extra["GIT_CONFIG_COUNT"] = str(index + 1)
        extra[f"GIT_CONFIG_KEY_{index}"] = "http.extraHeader"
        extra[f"GIT_CONFIG_VALUE_{index}"] = f"Authorization: Basic {basic}"
    return extra
