"""`reconciler agent --state DIR`: the local runtime's node agent on its own.

The agent is the local runtime's kubelet: it makes worker processes match the
store. `reconciler daemon` runs it in-process; with `daemon --no-agent` (or
after a plain `apply`) this command runs it apart, as a kubelet runs apart
from the controller that writes the API server. One agent per state
directory (STATE/agent.lock); SIGTERM or SIGINT stops it and every worker.
"""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.cli import options
from reconciler.cli.durations import DURATION


def _positive(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if value <= 0:
        raise click.BadParameter("must be greater than 0")
    return value


EXAMPLES = ("\b\nExamples:\n"  # --help shows them after the options
            "  reconciler daemon --repo config-examples --state .reconciler --no-agent &\n"
            "  reconciler agent --state .reconciler")


@click.command("agent", epilog=EXAMPLES)
@options.state_option
@click.option("--poll-interval", type=DURATION, default="0.5s", show_default=True,
              callback=_positive, help="How often the agent compares workers with the store.")
@click.option("--grace", type=DURATION, default="5s", show_default=True, callback=_positive,
              help="How long a stopping worker gets after SIGTERM before SIGKILL.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="text for people, json (one object per line) for "
                                      "log collectors.")
def command(state_dir: Path | None, poll_interval: float, grace: float, log_format: str) -> None:
    """Run the local runtime's node agent on its own, until SIGTERM or SIGINT.

    It starts a worker process per warm replica the store (STATE/state.db)
    wants, restarts crashed ones, rolls changed models one replica at a
    time, enforces quotas, the nodes' pods and each version's warmupTimeout,
    and gives each replica of a gpu pool its own GPUs (CUDA_VISIBLE_DEVICES).
    Workers it finds still running from an earlier agent are adopted. On
    SIGTERM or SIGINT every worker stops and it exits 0. Use it with
    `reconciler daemon --no-agent` or `reconciler apply` on the same --state.
    """
    from reconciler.daemon.logs import setup_logging
    from reconciler.runtimes.local.agent import run_standalone

    setup_logging(log_format)
    state = options.ensure_state_dir(options.resolve_state_dir(state_dir))
    run_standalone(state, poll_interval=poll_interval, grace=grace)
