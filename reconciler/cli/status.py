"""`reconciler status`: the warm pools on the runtime and their health.

`--format json` is the SPEC.md shape: {"pools": [{id, caller, algorithm,
version, commit, replicas, ready, modelDigest, error, replicaStatus: [{pid,
state, modelDigest, startedAt}]}], ...} plus "nodes", "agent", "revision" and
"lastApply". `replicas` is what the store wants, `ready` what is warm now.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from reconciler.cli import options
from reconciler.states import LiveState, pools_json

NO_AGENT = "replicas pending: no agent running; start `reconciler daemon`"


@click.command("status")
@options.runtime_options
@options.instance_option
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="text for people, json for tools.")
def command(runtime: str, state_dir: Path | None, kubeconfig: Path | None,
            kube_context: str | None, instance: str | None, fmt: str) -> None:
    """Show the warm pools on the runtime: wanted and ready replicas, model
    digest, errors, and each ready replica (its pid on the local runtime, its
    pod on Kubernetes)."""
    from reconciler.runtimes import open_runtime

    target = open_runtime(runtime, state_dir=options.resolve_state_dir(state_dir),
                          kubeconfig=kubeconfig, context=kube_context,
                          settings=options.instance_settings(instance))
    try:
        live = target.observe()
        report = target.report() if hasattr(target, "report") else {}
    finally:
        target.close()
    data = status_json(live, report)
    if fmt == "json":
        click.echo(json.dumps(data, indent=2))
    else:
        print_text(data, runtime)


def status_json(live: LiveState, report: dict[str, Any]) -> dict[str, Any]:
    pools = pools_json(live)
    nodes = [{"name": n["name"], "processor": n["processor"], "cpuMillis": n["cpu_millis"],
              "memoryBytes": n["memory_bytes"], "gpu": n["gpu"], "pods": n["pods"],
              "emulatedGpu": n["emulated_gpu"]} for n in report.get("nodes", [])]
    agent = report.get("agent") or {"running": False, "heartbeat": None}
    return {"pools": pools, "nodes": nodes,
            "agent": {"running": agent.get("running", False), "pid": agent.get("pid"),
                      "heartbeat": agent.get("heartbeat")},
            "revision": live.revision, "lastApply": report.get("lastApply")}


COLUMNS = ("POOL", "CALLER", "ALGORITHM", "VERSION", "READY", "MODEL", "PIDS", "ERROR")


def columns(runtime: str) -> tuple[str, ...]:
    """The table's header: replicas are pids locally, pods anywhere else."""
    return COLUMNS if runtime == "local" else tuple(
        "PODS" if c == "PIDS" else c for c in COLUMNS)


def rows(data: dict[str, Any]) -> list[tuple[str, ...]]:
    result: list[tuple[str, ...]] = []
    for pool in data["pools"]:
        digest = (pool["modelDigest"] or "").removeprefix("sha256:")[:12]
        pids = ",".join(str(r["pid"]) for r in pool["replicaStatus"] if r["state"] == "ready")
        result.append((pool["id"], pool["caller"], pool["algorithm"],
                       pool["version"] or pool["commit"][:12],
                       f"{pool['ready']}/{pool['replicas']}", digest, pids or "-",
                       pool["error"] or ""))
    return result


def footer(data: dict[str, Any], runtime: str = "local") -> list[str]:
    lines = []
    for node in data["nodes"]:
        gpu = f", {node['gpu']} gpu" if node["gpu"] else ""
        note = " (gpu emulated: its workers run on the CPU)" if node["emulatedGpu"] else ""
        lines.append(f"node {node['name']}: {node['cpuMillis'] / 1000:g} cpu, "
                     f"{node['memoryBytes'] / 2**30:.1f} GiB{gpu}, {node['pods']} pods{note}")
    if runtime == "local":  # the agent is the local runtime's; a cluster has kubelets
        lines.append(agent_line(data))
    last = data.get("lastApply")
    if last:
        verdict = "ok" if last["ok"] else "with failures"
        commit = f" of {last['sourceCommit'][:12]}" if last.get("sourceCommit") else ""
        lines.append(f"last apply{commit}: {last['time']} ({verdict})")
    return lines


def agent_line(data: dict[str, Any]) -> str:
    agent = data["agent"]
    if agent["running"]:
        return f"agent: running (pid {agent['pid']}, heartbeat {agent['heartbeat']})"
    pending = any(p["ready"] < p["replicas"] for p in data["pools"])
    return f"agent: not running ({NO_AGENT})" if pending else "agent: not running"


def print_text(data: dict[str, Any], runtime: str = "local") -> None:
    header = columns(runtime)
    table = rows(data)
    if not table:
        click.echo("No warm pools.")
    elif sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        grid = Table(*header, box=None, header_style="bold")
        for row in table:
            grid.add_row(*row, style="red" if row[-1] else None)
        Console().print(grid)
    else:
        widths = [max(len(c), *(len(r[i]) for r in table)) for i, c in enumerate(header)]
        for row in (header, *table):
            click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
                       .rstrip())
    for line in footer(data, runtime):
        click.echo(line)
