"""The image's HEALTHCHECK: `python -m reconciler.healthcheck`, exit 0 when /healthz answers 200.

One image runs two servers: `reconciler daemon --listen ADDR` and, in algorithm
images built FROM it, `reconciler worker` (bound to RECONCILER_LISTEN). The URL
asked is, first found:
- RECONCILER_HEALTHCHECK_URL, whole (a daemon on another port or path);
- http://127.0.0.1:PORT/healthz with the port of RECONCILER_LISTEN;
- http://127.0.0.1:PORT/healthz with the port of the worker's default
  RECONCILER_LISTEN (8080, which the daemon listens on in the image too).
Standard library only, one request with a 4 s timeout; any failure (refused,
timed out, not 200) exits 1 with one line on stderr, as Docker records it.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping

from reconciler.runtimes.local.worker import ENVIRONMENT

URL_ENV = "RECONCILER_HEALTHCHECK_URL"
LISTEN_ENV = "RECONCILER_LISTEN"
TIMEOUT = 4.0  # seconds: under the Dockerfile's --timeout=5s


def url(env: Mapping[str, str]) -> str:
    """The /healthz URL to ask (module docstring)."""
    if env.get(URL_ENV):
        return env[URL_ENV]
    port = env.get(LISTEN_ENV, "").rpartition(":")[2].strip()
    if not port.isdigit():  # unset or garbled: the worker's default
        port = str(ENVIRONMENT[LISTEN_ENV][1]).rpartition(":")[2]
    return f"http://127.0.0.1:{port}/healthz"


def main(env: Mapping[str, str] | None = None) -> int:
    target = url(os.environ if env is None else env)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy
    try:
        with opener.open(target, timeout=TIMEOUT) as response:
            status = response.status
    except urllib.error.HTTPError as exc:  # 503 while warming
        status = exc.code
    except (OSError, ValueError) as exc:  # refused, timed out, a bad URL
        print(f"unhealthy: {target}: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"unhealthy: {target} answered {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
