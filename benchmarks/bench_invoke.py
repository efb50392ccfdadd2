"""Warm invoke round trips (`make bench`): the library call and the CLI process.

A real daemon (with its agent) serves config-examples/ from a copy; once
alice's acme/sentiment replicas are warm, the same call is timed
- as a library call in this process (`library_call`, below): route to a warm
  replica through the local store, send, read the answer;
- as a whole `reconciler invoke` process.
`library_call` uses the local runtime's routing call when the runtime has one
(`LIBRARY_CALLS`: the serving work moves routing out of the CLI into
reconciler/runtimes/local), else today's pieces (LocalRuntime.ready_endpoints
and the CLI's call_warm).
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CALLER, ALGORITHM, PAYLOAD = "alice", "acme/sentiment", {"text": "I love this"}
CLI_CALLS, LIBRARY_CALLS_N = 20, 200
# "module:function" taking (state_dir, caller, "OWNER/NAME", payload) and returning the
# output; the first that exists is used. Wired when the local runtime grows one.
LIBRARY_CALLS = ("reconciler.runtimes.local.invoke:invoke_warm",)


def percentiles(samples: list[float]) -> dict[str, Any]:
    ordered = sorted(samples)
    return {"calls": len(ordered), "p50": statistics.median(ordered),
            "p95": ordered[max(0, round(0.95 * len(ordered)) - 1)], "max": ordered[-1]}


def library_call(state: Path) -> tuple[str, Callable[[], Any]]:
    """(what is timed, a call that returns the output of one warm invocation)."""
    for spec in LIBRARY_CALLS:
        module, _, name = spec.partition(":")
        try:
            func = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
        return spec, lambda func=func: func(state, CALLER, ALGORITHM, PAYLOAD)
    from reconciler.cli.invoke import call_warm
    from reconciler.runtimes.local.runtime import LocalRuntime

    runtime = LocalRuntime(state)
    pool = _pool_id(runtime)

    def call() -> Any:
        return call_warm(runtime.ready_endpoints(pool), PAYLOAD, 30.0)
    return "LocalRuntime.ready_endpoints + cli.invoke.call_warm", call


def _pool_id(runtime: Any) -> str:
    live = runtime.observe()
    return next(p.id for p in live.pools if p.caller == CALLER and p.algorithm == ALGORITHM)


def _wait_warm(state: Path, timeout: float = 120.0) -> None:
    from reconciler.runtimes.local.runtime import LocalRuntime

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runtime = LocalRuntime(state)
        try:
            live = runtime.observe()
            pools = [p for p in live.pools if p.caller == CALLER and p.algorithm == ALGORITHM]
            if pools and all(live.ready(p.id) >= p.replicas for p in pools):
                return
        except Exception:  # noqa: BLE001 - the store may not exist yet
            pass
        finally:
            runtime.close()
        time.sleep(0.2)
    raise TimeoutError(f"{CALLER}'s {ALGORITHM} replicas did not warm up")


def measure(work: Path) -> dict[str, Any]:
    repo, state = work / "repo", work / "state"
    shutil.copytree(ROOT / "config-examples", repo)
    env = dict(os.environ, NO_COLOR="1")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "daemon", "--repo", str(repo), "--state",
         str(state), "--listen", "127.0.0.1:0", "--interval", "1h"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_warm(state)
        what, call = library_call(state)
        for _ in range(10):
            call()  # connections, imports
        samples = []
        for _ in range(LIBRARY_CALLS_N):
            start = time.perf_counter()
            call()
            samples.append(time.perf_counter() - start)
        library = {"what": what, **percentiles(samples)}
        args = [sys.executable, "-m", "reconciler", "invoke", "--state", str(state), "--as",
                CALLER, ALGORITHM, json.dumps(PAYLOAD)]
        samples = []
        for _ in range(CLI_CALLS):
            start = time.perf_counter()
            done = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True)
            samples.append(time.perf_counter() - start)
            if done.returncode or not done.stderr.startswith("warm"):
                raise RuntimeError(f"invoke: {done.returncode} {done.stderr[-500:]}")
        return {"library": library, "cli": {"what": "reconciler invoke (process)",
                                            **percentiles(samples)}}
    except Exception as exc:  # noqa: BLE001 - the other rows must not be lost
        return {"library": f"n/a ({type(exc).__name__}: {exc})",
                "cli": f"n/a ({type(exc).__name__}: {exc})"}
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            daemon.kill()
