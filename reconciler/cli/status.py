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

EVENTS = 20  # events shown by --events
NO_AGENT = "replicas pending: no agent running; start `reconciler daemon`"


EXAMPLES = ("\b\nExamples:\n"  # --help shows them after the options
            "  reconciler status --state .reconciler\n"
            "  reconciler status -o wide --caller alice --events\n"
            "  reconciler status --runtime kubernetes --context prod -o json")


@click.command("status", epilog=EXAMPLES)
@options.runtime_options
@options.instance_option
@click.option("-o", "--output", "output", type=click.Choice(["text", "wide", "json", "yaml"]),
              default=None, help="text (default), wide (more columns), json or yaml.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default=None,
              help="The same as --output text|json (kept for scripts).")
@click.option("--caller", default=None, metavar="ACCOUNT", help="Only this caller's pools.")
@click.option("--algorithm", default=None, metavar="OWNER/NAME",
              help="Only the pools of this algorithm.")
@click.option("--events", "events", is_flag=True,
              help=f"Also show the last {EVENTS} events of the local agent (replicas started, "
                   "ready, failed, stopped).")
def command(runtime: str, state_dir: Path | None, kubeconfig: Path | None,
            kube_context: str | None, instance: str | None, output: str | None,
            fmt: str | None,
            caller: str | None, algorithm: str | None, events: bool) -> None:
    """Show the warm pools on the runtime: wanted and ready replicas, model
    digest, errors, and each ready replica (its pid on the local runtime, its
    pod on Kubernetes).

    Exits 1 when a pool (of those shown) is below its reservation, warming
    ones included, or when the local agent is not running while pools want
    replicas; the reasons go to stderr. `reconciler wait --ready` waits instead."""
    from reconciler.cli.health import problems, select
    from reconciler.errors import ReconcilerError
    from reconciler.runtimes import open_runtime

    if output and fmt and output != fmt:
        raise click.UsageError(f"--output {output} and --format {fmt} disagree; give one")
    shown = output or fmt or "text"
    state = options.resolve_state_dir(state_dir)
    if runtime == "local" and not state.is_dir():
        # a typo in --state must not look like an empty runtime
        raise ReconcilerError(f"--state {state}: no such state directory (nothing was "
                              f"ever applied with it); check the path or RECONCILER_STATE")
    target = open_runtime(runtime, state_dir=state,
                          kubeconfig=kubeconfig, context=kube_context,
                          settings=options.instance_settings(
                              instance, state if runtime == "kubernetes" else None))
    try:
        live = target.observe()
        report = target.report() if hasattr(target, "report") else {}
    finally:
        target.close()
    data = select(status_json(live, report), caller, algorithm)
    if events:
        data["events"] = _events(runtime, state_dir, caller)
    if shown == "json":
        click.echo(json.dumps(data, indent=2))
    elif shown == "yaml":
        import yaml

        click.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), nl=False)
    else:
        print_text(data, runtime, wide=shown == "wide")
    found = problems(data, runtime)
    if found:
        for line in found:
            click.echo(f"not ready: {line}", err=True)
        sys.exit(1)


def _events(runtime: str, state_dir: Path | None, caller: str | None) -> list[dict[str, Any]]:
    """The agent's newest events (local runtime; a cluster keeps events of its own)."""
    if runtime != "local":
        return []
    from reconciler.runtimes.local.events import read_events

    return read_events(options.resolve_state_dir(state_dir), EVENTS, caller=caller)


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
WIDE = ("COMMIT", "REPLICAS", "STARTED")


def columns(runtime: str, wide: bool = False) -> tuple[str, ...]:
    """The table's header: replicas are pids locally, pods anywhere else."""
    names = COLUMNS[:-1] + WIDE + COLUMNS[-1:] if wide else COLUMNS
    return names if runtime == "local" else tuple("PODS" if c == "PIDS" else c for c in names)


def rows(data: dict[str, Any], wide: bool = False) -> list[tuple[str, ...]]:
    result: list[tuple[str, ...]] = []
    for pool in data["pools"]:
        digest = (pool["modelDigest"] or "").removeprefix("sha256:")[:12]
        pids = ",".join(str(r["pid"]) for r in pool["replicaStatus"] if r["state"] == "ready")
        row: tuple[str, ...] = (pool["id"], pool["caller"], pool["algorithm"],
                                pool["version"] or pool["commit"][:12],
                                f"{pool['ready']}/{pool['replicas']}", digest, pids or "-")
        if wide:
            states: dict[str, int] = {}
            for replica in pool["replicaStatus"]:
                states[replica["state"]] = states.get(replica["state"], 0) + 1
            started = min((r["startedAt"] or "" for r in pool["replicaStatus"]), default="")
            row += (pool["commit"][:12],
                    ", ".join(f"{n} {state}" for state, n in sorted(states.items())) or "-",
                    started or "-")
        result.append(row + (pool["error"] or "",))
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


def print_text(data: dict[str, Any], runtime: str = "local", wide: bool = False) -> None:
    header = columns(runtime, wide)
    table = rows(data, wide)
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
    if "events" in data:
        click.echo("events (newest first):" if data["events"] else "events: none")
        for event in data["events"]:
            where = f" {event['pool']}" if event.get("pool") else ""
            click.echo(f"  {event['time']}{where}: {event['message']}")
