"""Git credentials from the environment, and their redaction.

Credentials reach git only through its environment (GIT_SSH_COMMAND, and
GIT_CONFIG_* for an `http.extraHeader` or a credential helper that prints a
URL's user:password from the environment), never through the command line:
`ps` shows argv to every user of the machine, and error messages quote it.
Every message that leaves this package goes through `redact`, which masks
the secrets it was told about and any user:password part of a URL.
"""

from __future__ import annotations

import base64
import re
import shlex
import threading
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit, urlunsplit

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


# What git runs to learn a URL's user:password (credential.helper, through GIT_CONFIG_*):
# it prints them from the environment, so neither is ever in an argv or a file.
USERNAME_ENV = "RECONCILER_GIT_URL_USERNAME"
PASSWORD_ENV = "RECONCILER_GIT_URL_PASSWORD"
CREDENTIAL_HELPER = (
    '!f() { test "$1" = get || exit 0; '
    f'printf "username=%s\\npassword=%s\\n" "${USERNAME_ENV}" "${PASSWORD_ENV}"; }}; f')


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """(the URL without its user:password part, user, password) for an http(s) URL; other
    URLs (ssh, paths) come back unchanged. Percent-escapes in user and password are decoded."""
    if not is_http_url(url):
        return url, None, None
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    clean = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return clean, unquote(user) or None, unquote(password) or None


def git_environment(env: Mapping[str, str], url: str) -> dict[str, str]:
    """Extra environment for a git command that talks to `url`.

    RECONCILER_GIT_SSH_KEY becomes `ssh -i KEY -o IdentitiesOnly=yes` (an
    explicit GIT_SSH_COMMAND wins); RECONCILER_GIT_TOKEN becomes an HTTP
    Authorization header for http(s) URLs; a user:password in an http(s) URL
    is handed to git by a credential helper that reads them from this
    environment (the command runs with the URL stripped of them: see
    split_credentials). GIT_TERMINAL_PROMPT=0 makes a missing credential fail
    fast instead of waiting for a prompt no one sees."""
    extra = {"GIT_TERMINAL_PROMPT": "0"}
    config: list[tuple[str, str]] = []
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
        config.append(("http.extraHeader", f"Authorization: Basic {basic}"))
    _, user, password = split_credentials(url)
    if user or password:
        register_secret(password if password else user)  # a token may be the user part
        extra[USERNAME_ENV] = user or ""
        extra[PASSWORD_ENV] = password or ""
        # an empty helper first: only ours answers (not a user's store or cache helper)
        config += [("credential.helper", ""), ("credential.helper", CREDENTIAL_HELPER)]
    if config:
        index = int(env.get("GIT_CONFIG_COUNT", "0") or 0)
        extra["GIT_CONFIG_COUNT"] = str(index + len(config))
        for offset, (key, value) in enumerate(config):
            extra[f"GIT_CONFIG_KEY_{index + offset}"] = key
            extra[f"GIT_CONFIG_VALUE_{index + offset}"] = value
    return extra
