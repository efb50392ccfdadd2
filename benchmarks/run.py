#!/usr/bin/env python3
"""Benchmark harness (`make bench`): the pipeline at 1,000 / 10,000 / 100,000 reservations.

    .venv/bin/python benchmarks/run.py [--sizes 1000,10000,100000] [--repeat 3]
        [--commits 50] [--out benchmarks/results.json] [--no-daemon] [--no-invoke]

For each size, a repo from benchmarks/generate.py (its Settings declare local
nodes that fit it), then whole CLI processes, each the best of --repeat runs
(the machines are noisy) unless said otherwise:
- `validate` with an empty cache, `plan` against an empty local state (every
  pool a create; one run each at 100,000), `apply` of that (one run; no agent:
  it writes the store);
- then in rounds that take each size in turn (so that every size sees the
  same machine), best of --repeat rounds: bare parse (`yaml.load_all` with
  CSafeLoader of every file, in process: the floor, and the baseline that
  shows how busy the machine was), `validate` with a warm cache, and `plan`
  against the applied state (a no-op);
- the peak RSS of any of those processes.
Then, on the largest size: a real daemon tracking the repo as Git, 50 commits
that each edit one reservation, each timed from its signed webhook to the
daemon's log line saying it was applied (bench_daemon.py); `reconciler
invoke` p50/p95 (bench_invoke.rows()); and the Kubernetes rows when
benchmarks/bench_kubernetes.py exists (its rows()). Prints a Markdown table
and writes the figures to --out as JSON, with the checks of the targets.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

ROWS = [("parse", "bare `yaml.load_all` (CSafeLoader), in process: the floor"),
        ("validate_cold", "`validate`, empty cache"),
        ("validate_warm", "`validate`, warm cache"),
        ("plan_create", "`plan`, empty local state (all creates)"),
        ("apply", "`apply` of all creates (store only, no agent)"),
        ("plan_noop", "`plan`, no-op against the applied state"),
        ("peak_rss_mb", "peak RSS of those processes (MB)")]


def best(repeat: int, func: Callable[[], Any]) -> tuple[float, Any]:
    """Best wall time of `repeat` runs, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - start)
    return min(times), result


def generate(reservations: int, out: Path, git: bool) -> None:
    subprocess.run([sys.executable, str(HERE / "generate.py"), "--reservations",
                    str(reservations), "--out", str(out), *(["--git"] if git else [])],
                   check=True, capture_output=True)


def bare_parse(repo: Path) -> int:
    import yaml

    count = 0
    for path in sorted(repo.rglob("*.y*ml")):
        count += sum(1 for _ in yaml.load_all(path.read_bytes(), Loader=yaml.CSafeLoader))
    return count


class Process:
    """Whole CLI processes, with the peak RSS of each (os.wait4)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.peak_kb = 0

    def run(self, *args: str, ok: tuple[int, ...] = (0,)) -> float:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "reconciler", *args], env=self.env,
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert proc.stderr is not None
        err = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        if proc.returncode not in ok:
            raise RuntimeError(f"reconciler {' '.join(args)} exited {proc.returncode}: "
                               f"{err.decode()[-2000:]}")
        self.peak_kb = max(self.peak_kb, usage.ru_maxrss)
        return seconds

    def best(self, repeat: int, *args: str) -> float:
        return min(self.run(*args) for _ in range(repeat))


def setup_size(n: int, work: Path, repeat: int) -> tuple[dict[str, float], Process]:
    """Generate the repo of size n and take the one-way rows: cold validate, plan of all
    creates, apply (which leaves the state the no-op rows plan against)."""
    repo, state = work / f"repo-{n}", work / f"state-{n}"
    generate(n, repo, git=True)
    env = dict(os.environ, NO_COLOR="1", RECONCILER_CACHE_DIR=str(work / f"cache-{n}"))
    env.pop("RECONCILER_NO_CACHE", None)
    proc = Process(env)
    heavy = 1 if n >= 100_000 else repeat
    cold = []
    for attempt in range(heavy):
        proc.env = {**env, "RECONCILER_CACHE_DIR": str(work / f"cold-{n}-{attempt}")}
        cold.append(proc.run("validate", str(repo)))
    proc.env = env
    rows = {"validate_cold": min(cold)}
    rows["plan_create"] = proc.best(heavy, "plan", str(repo), "--state", str(state))
    rows["apply"] = proc.run("apply", str(repo), "--state", str(state), "--auto-approve")
    return rows, proc


def paired_rows(sizes: list[int], work: Path, procs: dict[int, Process], repeat: int,
                rows: dict[int, dict[str, float]]) -> None:
    """The rows the targets compare across sizes (bare parse, warm validate, no-op plan),
    measured in rounds that take every size in turn, so that each size sees the same
    machine (2 noisy cores): the best of `repeat` rounds."""
    for _ in range(repeat):
        for n in sizes:
            repo, state, proc = work / f"repo-{n}", work / f"state-{n}", procs[n]
            timings = {
                "parse": best(1, lambda repo=repo: bare_parse(repo))[0],
                "validate_warm": proc.run("validate", str(repo)),
                "plan_noop": proc.run("plan", str(repo), "--state", str(state),
                                      "--detailed-exitcode"),
            }
            for key, seconds in timings.items():
                rows[n][key] = min(rows[n].get(key, seconds), seconds)
    for n in sizes:
        rows[n]["peak_rss_mb"] = procs[n].peak_kb / 1024


def invoke_rows() -> list[dict[str, Any]] | str:
    """benchmarks/bench_invoke.py's rows(): warm invoke p50/p95, library call and process."""
    try:
        import bench_invoke

        return list(bench_invoke.rows(calls=2000, processes=20))
    except Exception as exc:  # noqa: BLE001 - the other rows must not be lost
        return f"n/a ({type(exc).__name__}: {exc})"


def kubernetes_rows() -> list[dict[str, Any]] | str:
    """benchmarks/bench_kubernetes.py's rows() (written with the Kubernetes runtime)."""
    if not (HERE / "bench_kubernetes.py").exists():
        return "n/a (benchmarks/bench_kubernetes.py is not there)"
    try:
        import bench_kubernetes  # type: ignore[import-not-found]

        return list(bench_kubernetes.rows())
    except Exception as exc:  # noqa: BLE001 - a missing envtest must not lose the other rows
        return f"n/a ({type(exc).__name__}: {exc})"


def machine() -> dict[str, Any]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "cpu": cpu,
            "system": f"{platform.system()} {platform.release()}",
            "loadavg_at_start": [round(x, 2) for x in load]}


def checks(sizes: dict[int, dict[str, float]], daemon: dict[str, Any] | str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if 10_000 in sizes and 100_000 in sizes:
        ratio = sizes[100_000]["plan_noop"] / sizes[10_000]["plan_noop"]
        out["noop_plan_100k_over_10k"] = {"value": ratio, "target": "<= 10", "met": ratio <= 10}
        ratio = sizes[100_000]["validate_warm"] / sizes[10_000]["validate_warm"]
        out["warm_validate_100k_over_10k"] = {"value": ratio, "target": "<= 10",
                                              "met": ratio <= 10}
        rss = max(s["peak_rss_mb"] for s in sizes.values())
        out["peak_rss_mb"] = {"value": rss, "target": "<= 1024", "met": rss <= 1024}
    if isinstance(daemon, dict):
        worst = daemon["latency_max"]
        out["daemon_commit_latency_max"] = {"value": worst, "target": "<= 1 s",
                                            "met": worst <= 1.0}
        growth = daemon["rss_end_mb"] - daemon["rss_after_first_mb"]
        out["daemon_rss_growth_mb"] = {"value": growth, "target": "flat (< 5 % growth)",
                                       "met": growth <= 0.05 * daemon["rss_after_first_mb"]}
    return out


def table(results: dict[str, Any]) -> str:
    sizes: dict[int, dict[str, float]] = {int(k): v for k, v in results["sizes"].items()}
    heads = [f"{n:,}" for n in sizes]
    lines = [f"| what (seconds, best of {results['repeat']}) | " + " | ".join(heads) + " |",
             "|---|" + "---:|" * len(heads)]
    for key, label in ROWS:
        cells = [f"{sizes[n][key]:.0f}" if key == "peak_rss_mb" else f"{sizes[n][key]:.2f}"
                 for n in sizes]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    daemon = results["daemon"]
    if isinstance(daemon, dict):
        lines.append(f"\nDaemon, {daemon['reservations']:,} reservations applied, "
                     f"{daemon['commits']} commits each editing one reservation (signed "
                     f"webhook -> applied): p50 {daemon['latency_p50']:.3f} s, p95 "
                     f"{daemon['latency_p95']:.3f} s, max {daemon['latency_max']:.3f} s "
                     f"(the first commit: {daemon['latencies'][0]:.3f} s); "
                     f"RSS {daemon['rss_after_first_mb']:.0f} MB after the first pass, "
                     f"{daemon['rss_end_mb']:.0f} MB after the last (max "
                     f"{daemon['rss_max_mb']:.0f}); first (full) pass "
                     f"{daemon['first_pass_seconds']:.1f} s.")
    else:
        lines.append(f"\nDaemon: {daemon}")
    invoke = results["invoke"]
    if isinstance(invoke, list):
        lines.append("\n| invoke (config-examples, warm replicas) | n | p50 ms | p95 ms |\n"
                     "|---|---:|---:|---:|")
        lines += [f"| {r['what']} | {r['n']} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} |"
                  for r in invoke]
    else:
        lines.append(f"Invoke: {invoke}")
    kube = results["kubernetes"]
    if isinstance(kube, list) and kube:
        lines.append("\n| Kubernetes | n | reconciler s | reconciler requests | kubectl s | "
                     "kubectl requests |\n|---|---:|---:|---:|---:|---:|")
        lines += [f"| {r['what']} | {r['n']} | {r['reconciler_seconds']} | "
                  f"{r['reconciler_requests']} | {r['kubectl_seconds']} | "
                  f"{r['kubectl_requests']} |" for r in kube]
    else:
        lines.append(f"\nKubernetes: {kube}")
    lines.append("")
    for name, check in results["checks"].items():
        value = check["value"]
        shown = f"{value:.2f}" if isinstance(value, float) else str(value)
        lines.append(f"- {name}: {shown} (target {check['target']}): "
                     f"{'met' if check['met'] else 'MISSED'}")
    lines.append(f"\nTotal bench time {results['total_seconds']:.0f} s on {results['machine']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--commits", type=int, default=50)
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    parser.add_argument("--no-daemon", action="store_true")
    parser.add_argument("--no-invoke", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    results: dict[str, Any] = {"machine": machine(), "repeat": args.repeat, "sizes": {}}
    with tempfile.TemporaryDirectory(prefix="reconciler-bench-") as tmp:
        work = Path(tmp)
        sizes = [int(s) for s in args.sizes.split(",") if s]
        procs: dict[int, Process] = {}
        for n in sizes:
            results["sizes"][n], procs[n] = setup_size(n, work, args.repeat)
        paired_rows(sizes, work, procs, args.repeat, results["sizes"])
        for n in sizes:
            print(f"{n}: {json.dumps(results['sizes'][n])}", file=sys.stderr, flush=True)
        daemon: dict[str, Any] | str = "skipped (--no-daemon)"
        if not args.no_daemon:
            import bench_daemon

            n = max(sizes)
            env = dict(os.environ, NO_COLOR="1", RECONCILER_CACHE_DIR=str(work / f"cache-{n}"))
            daemon = {"reservations": n, **bench_daemon.measure(
                work / f"repo-{n}", work / f"state-{n}", env, args.commits)}
        results["daemon"] = daemon
    results["invoke"] = "skipped (--no-invoke)" if args.no_invoke else invoke_rows()
    results["kubernetes"] = kubernetes_rows()
    results["checks"] = checks(results["sizes"], results["daemon"])
    results["total_seconds"] = time.perf_counter() - started
    results["self_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
