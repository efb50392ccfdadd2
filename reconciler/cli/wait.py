"""`reconciler wait --ready`: block until every warm pool is ready, for scripts and CI.

Polls the runtime (one observe per --interval) until every pool (of the
caller and algorithm given, if any) has as many ready replicas as it
reserves and, on the local runtime, the agent runs: exit 0. After --timeout
it exits 1 naming what is still not ready and why (a pool's error, replicas
warming, no agent). A pool that errors is waited for too: a replica that
failed is restarted, so an error may be transient.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from reconciler.cli import options
from reconciler.cli.durations import Duration

EXAMPLES = ("\b\nExamples:\n"  # --help shows them after the options
            "  reconciler apply --auto-approve && reconciler wait --ready --timeout 2m\n"
            "  reconciler wait --ready --caller alice --quiet")


@click.command("wait", epilog=EXAMPLES)
@options.runtime_options
@options.instance_option
@click.option("--ready", is_flag=True, required=True,
              help="Wait until every warm pool has its reserved replicas ready (required: the "
                   "only condition for now).")
@click.option("--timeout", type=Duration(), default="5m", show_default=True,
              help="Give up (exit 1) after this long.")
@click.option("--interval", type=Duration(), default="1s", show_default=True,
              help="How often to look.")
@click.option("--caller", default=None, metavar="ACCOUNT", help="Only this caller's pools.")
@click.option("--algorithm", default=None, metavar="OWNER/NAME",
              help="Only the pools of this algorithm.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing on success.")
def command(runtime: str, state_dir: Path | None, kubeconfig: Path | None,
            kube_context: str | None, instance: str | None, ready: bool, timeout: float,
            interval: float,
            caller: str | None, algorithm: str | None, quiet: bool) -> None:
    """Wait until every warm pool is ready: exit 0 once each has its reserved
    replicas warm (and, on the local runtime, the agent runs); exit 1 after
    --timeout, naming the pools still short and why."""
    from reconciler.cli.health import problems, select
    from reconciler.cli.status import status_json
    from reconciler.runtimes import open_runtime

    if interval <= 0:
        raise click.BadParameter("must be greater than 0", param_hint="--interval")
    state = options.resolve_state_dir(state_dir)
    target = open_runtime(runtime, state_dir=state, kubeconfig=kubeconfig, context=kube_context,
                          settings=options.instance_settings(
                              instance, state if runtime == "kubernetes" else None))
    deadline = time.monotonic() + timeout
    try:
        while True:
            report = target.report() if hasattr(target, "report") else {}
            data = select(status_json(target.observe(), report), caller, algorithm)
            found = problems(data, runtime)
            if not found:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                for line in found:
                    click.echo(f"not ready: {line}", err=True)
                click.echo(f"error: gave up after {timeout:g}s", err=True)
                sys.exit(1)
            time.sleep(min(interval, left))
    finally:
        target.close()
    if not quiet:
        replicas = sum(p["replicas"] for p in data["pools"])
        click.echo(f"ready: {len(data['pools'])} pools, {replicas} replicas")
