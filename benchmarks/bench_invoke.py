#!/usr/bin/env python3
"""Invoke near the wire: how long a call to a warm replica takes.

    .venv/bin/python benchmarks/bench_invoke.py [--calls 2000] [--processes 40]

Applies config-examples/ to a fresh local state, runs the agent in this
process until alice's acme/sentiment replicas are warm, then times:
- the route: `Router.route` (the store's one indexed query: catalog, the
  caller's pool, its ready replicas);
- the library call: `reconciler.runtimes.local.routing.Router.invoke(caller,
  ref, payload)`, route plus the HTTP round trip over a kept-alive
  connection (target: p50 <= 1 ms);
- `reconciler invoke` as a whole process (target: p50 <= 120 ms), next to
  `reconciler --version`, the floor any command pays (interpreter, click).

`rows()` returns them as [{"what", "n", "p50_ms", "p95_ms"}] for benchmarks/run.py.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CALLER, REF, PAYLOAD = "alice", "acme/sentiment", {"text": "I love this"}
POOL = "alice.acme.sentiment.44c3e94e22e5"


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def row(what: str, samples: list[float]) -> dict[str, Any]:
    p50, p95 = percentiles(samples)
    return {"what": what, "n": len(samples), "p50_ms": round(p50 * 1000, 3),
            "p95_ms": round(p95 * 1000, 3)}


def timed(count: int, call: Callable[[], Any], warmup: int = 0) -> list[float]:
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return samples


def cli() -> list[str]:
    script = Path(sys.executable).with_name("reconciler")
    return [str(script)] if script.exists() else [sys.executable, "-m", "reconciler"]


# Processes run as an installed command does: with its bytecode cached (a shell that sets
# PYTHONDONTWRITEBYTECODE would otherwise compile every module on every run).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


@contextmanager
def warm_examples() -> Iterator[Path]:
    """config-examples applied to a fresh state, its replicas warm; the state dir."""
    from reconciler.runtimes.local.agent import Agent
    from reconciler.runtimes.local.runtime import LocalRuntime

    with tempfile.TemporaryDirectory(prefix="bench-invoke-") as tmp:
        config, state = Path(tmp) / "config", Path(tmp) / "state"
        shutil.copytree(ROOT / "config-examples", config)
        subprocess.run([*cli(), "apply", str(config), "--state", str(state), "--auto-approve"],
                       check=True, capture_output=True, env=ENV)
        agent = Agent(state, poll_interval=0.2)
        agent.start()
        runtime = LocalRuntime(state)
        try:
            runtime.wait_ready(POOL, 2, timeout=60)
            yield state
        finally:
            runtime.close()
            agent.stop()


def rows(calls: int = 2000, processes: int = 40) -> list[dict[str, Any]]:
    from reconciler.runtimes.local.routing import Router

    with warm_examples() as state:
        router = Router(state)
        try:
            route = timed(calls, lambda: router.route(CALLER, REF), warmup=100)
            library = timed(calls, lambda: router.invoke(CALLER, REF, PAYLOAD), warmup=100)
        finally:
            router.close()
        argv = [*cli(), "invoke", "--state", str(state), "--as", CALLER, REF,
                '{"text": "I love this"}']
        floor = [*cli(), "--version"]
        process = timed(processes, lambda: subprocess.run(argv, check=True, env=ENV,
                                                          capture_output=True), warmup=2)
        version = timed(processes, lambda: subprocess.run(floor, check=True, env=ENV,
                                                          capture_output=True), warmup=2)
    return [row("invoke: route from the store (Router.route)", route),
            row("invoke: warm call, library (Router.invoke; target p50 <= 1 ms)", library),
            row("invoke: warm call, `reconciler invoke` process (target p50 <= 120 ms)",
                process),
            row("floor: `reconciler --version` process", version)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="library calls to time")
    parser.add_argument("--processes", type=int, default=40, help="CLI processes to time")
    args = parser.parse_args()
    print("| what | n | p50 ms | p95 ms |\n|---|---:|---:|---:|")
    for item in rows(args.calls, args.processes):
        print(f"| {item['what']} | {item['n']} | {item['p50_ms']:.2f} | {item['p95_ms']:.2f} |")


if __name__ == "__main__":
    main()
