#!/usr/bin/env python3
"""Benchmark harness (`make bench`): how long loading and planning a big repo takes.

    .venv/bin/python benchmarks/run.py [--reservations 10000] [--repeat 3]

Generates a synthetic repository with benchmarks/generate.py, declares local
nodes large enough for all its replicas (so the plan is applyable and every
stage runs), then prints a Markdown table of:
- the floor: a bare CSafeLoader parse of every file (plain objects, no marks);
- whole CLI processes: `validate` cold (empty cache) and warm, `plan`
  warm against an empty local state (every pool is a create), `apply` of
  that plan, and a no-op `plan` against the applied state (the daemon's
  steady state);
- the in-process split of planning: load (warm cache), compile, diff,
  place, render (text, markdown, json), for the create-everything plan and
  for a no-op plan (the live state already equals the desired state).
Each figure is the best of --repeat runs (the machines are noisy).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

def best(repeat: int, func: Callable[[], Any]) -> tuple[float, Any]:
    """Best wall time of `repeat` runs, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - start)
    return min(times), result


def generate(reservations: int, out: Path) -> None:
    """The synthetic repo; its Settings declare local nodes that fit it."""
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "generate.py"),
                    "--reservations", str(reservations), "--out", str(out)],
                   check=True, capture_output=True)


def bare_parse(repo: Path) -> int:
    import yaml

    count = 0
    for path in sorted(repo.rglob("*.y*ml")):
        count += sum(1 for _ in yaml.load_all(path.read_bytes(), Loader=yaml.CSafeLoader))
    return count


def cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "reconciler", *args], env=env,
                          capture_output=True, cwd=ROOT)


def cli_rows(repo: Path, work: Path, repeat: int) -> list[tuple[str, float, str]]:
    env = dict(os.environ, NO_COLOR="1")
    env.pop("RECONCILER_NO_CACHE", None)
    cold: list[float] = []
    for attempt in range(repeat):
        env["RECONCILER_CACHE_DIR"] = str(work / f"cold-cache-{attempt}")
        seconds, result = best(1, lambda: cli(["validate", str(repo)], env))
        assert result.returncode == 0, result.stderr.decode()
        cold.append(seconds)
    warm, result = best(repeat, lambda: cli(["validate", str(repo)], env))
    assert result.returncode == 0, result.stderr.decode()
    state = work / "empty-state"
    plan_args = ["plan", str(repo), "--state", str(state), "--out", str(work / "plan.json")]
    planned, result = best(repeat, lambda: cli(plan_args, env))
    assert result.returncode == 0, (result.stdout + result.stderr).decode()[-2000:]
    applied, result = best(1, lambda: cli(["apply", str(repo), "--state", str(state),
                                           "--auto-approve"], env))
    assert result.returncode == 0, (result.stdout + result.stderr).decode()[-2000:]
    noop_args = ["plan", str(repo), "--state", str(state), "--detailed-exitcode"]
    noop, result = best(repeat, lambda: cli(noop_args, env))
    assert result.returncode == 0, (result.stdout + result.stderr).decode()[-2000:]
    return [("`reconciler validate`, cold cache (process)", min(cold), "empty cache dir"),
            ("`reconciler validate`, warm cache (process)", warm, ""),
            ("`reconciler plan`, warm cache, empty local state (process)", planned,
             "every pool a create; text to a pipe, plan file written"),
            ("`reconciler apply`, empty local state (process)", applied,
             "one SQLite transaction per action; no agent"),
            ("`reconciler plan`, no-op against the applied state (process)", noop,
             "target < 1 s; exit 0 with --detailed-exitcode")]


def split_rows(repo: Path, cache: Path, repeat: int) -> list[tuple[str, float, str]]:
    from reconciler.config.loader import load_config
    from reconciler.desired import compile_config
    from reconciler.plan import render
    from reconciler.plan.capacity import check_capacity
    from reconciler.plan.planner import make_plan, plan_actions
    from reconciler.runtimes.local.nodes import local_nodes
    from reconciler.states import LiveState

    load_config(repo, cache_dir=cache)  # fill the cache
    load_s, config = best(repeat, lambda: load_config(repo, cache_dir=cache))
    compile_s, desired = best(repeat, lambda: compile_config(config))
    nodes = local_nodes(config.settings)
    empty = LiveState(revision="0")
    same = LiveState(desired.tenants, desired.quotas, desired.pools, revision="1")
    rows = [("load (warm cache, in process)", load_s, f"{len(config.reservations)} reservations"),
            ("compile", compile_s, f"{len(desired.pools)} pools, {len(desired.tenants)} tenants")]
    for label, live in (("create all", empty), ("no-op", same)):
        diff_s, actions = best(repeat, lambda live=live: plan_actions(desired, live))
        place_s, report = best(repeat, lambda actions=actions: check_capacity(
            desired, actions, nodes, allow_reduced_capacity=False))
        assert not report.errors, report.errors[:3]
        plan_s, plan = best(repeat, lambda live=live: make_plan(desired, live, nodes,
                                                                runtime="local"))
        data = plan.to_json()
        render_s, _ = best(repeat, lambda data=data: (
            render.render_text(data), render.render_markdown(data), render.render_json(data)))
        rows += [(f"diff + order, {label}", diff_s, f"{len(actions)} actions"),
                 (f"place on nodes, {label}", place_s, f"{len(nodes)} nodes"),
                 (f"make_plan total, {label}", plan_s,
                  "diff, place, safety, fingerprint"),
                 (f"render text + markdown + json, {label}", render_s,
                  f"{len(render.render_markdown(data))} markdown part(s)")]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reservations", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="reconciler-bench-") as tmp:
        work = Path(tmp)
        repo = work / "repo"
        generate(args.reservations, repo)
        parse_s, documents = best(args.repeat, lambda: bare_parse(repo))
        rows = [("bare `yaml.load_all` with CSafeLoader", parse_s, f"{documents} documents")]
        rows += cli_rows(repo, work, args.repeat)
        rows += split_rows(repo, work / "split-cache", args.repeat)
    print(f"Benchmark: {args.reservations} reservations, best of {args.repeat}, "
          f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs\n")
    print("| what | seconds | notes |")
    print("|---|---:|---|")
    for what, seconds, notes in rows:
        print(f"| {what} | {seconds:.3f} | {notes} |")
    stages = ("compile", "make_plan total, c")
    total = statistics.fsum(s for w, s, _ in rows if w.startswith(stages))
    print(f"\nPlanning on top of loading (compile + make_plan, create all): {total:.3f} s")


if __name__ == "__main__":
    main()
