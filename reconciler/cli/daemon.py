"""`reconciler daemon`: watch a repository and reconcile continuously."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from reconciler.cli.durations import Duration
from reconciler.cli.options import (
    code_data_options,
    ensure_state_dir,
    resolve_state_dir,
    runtime_options,
)

BACKOFF_ENV = "RECONCILER_BACKOFF_MAX"
LEASE_NAMESPACE_ENV = "RECONCILER_LEASE_NAMESPACE"
LEASE_DURATION_ENV = "RECONCILER_LEASE_DURATION"
POD_NAMESPACE_ENV = "POD_NAMESPACE"  # set by the downward API in deploy/base/deployment.yaml


def lease_namespace_of(option: str | None) -> str:
    """--lease-namespace (or its env), else the pod's own namespace, else reconciler-system."""
    from reconciler.daemon.leader import LEASE_NAMESPACE

    return option or os.environ.get(POD_NAMESPACE_ENV) or LEASE_NAMESPACE


def _positive(seconds: float, option: str) -> float:
    if seconds <= 0:
        raise click.BadParameter("must be greater than 0", param_hint=option)
    return seconds


def _listen(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """HOST:PORT with a port in 0..65535, checked before anything starts."""
    from reconciler.daemon.server import parse_listen

    try:
        _, port = parse_listen(value)
    except ValueError:
        raise click.BadParameter(f"expected HOST:PORT, got {value!r}") from None
    if not 0 <= port <= 65535:
        raise click.BadParameter(f"the port must be 0..65535, got {port}")
    return value


EXAMPLES = ("\b\nExamples:\n"  # --help shows them after the options
            "  reconciler daemon --repo config-examples --state .reconciler\n"
            "  reconciler daemon --repo https://github.com/acme/platform-config.git \\\n"
            "                    --path platform --interval 30s\n"
            "  reconciler daemon --repo ./my-config --once   # one pass (cron, CI)")


@click.command("daemon", epilog=EXAMPLES)
@click.option("--repo", required=True, metavar="URL_OR_PATH", envvar="RECONCILER_REPO",
              help="Git URL, path of a Git repository, or a plain directory (watched) "
                   "[env RECONCILER_REPO: put a URL with user:password there, not in argv, "
                   "which every user of the machine can read].")
@click.option("--branch", default="main", show_default=True, metavar="BRANCH",
              help="Branch to track (Git).")
@click.option("--path", "subdir", default="", metavar="SUBDIR",
              help="Config directory inside the repository (monorepos).")
@click.option("--interval", type=Duration(), default="30s", show_default=True,
              help="Poll interval (±10 % jitter).")
@click.option("--resync", type=Duration(), default="5m", show_default=True,
              help="Full resync period: re-applies even when nothing moved (drift).")
@runtime_options
@click.option("--listen", default="127.0.0.1:8080", show_default=True, callback=_listen,
              metavar="HOST:PORT",
              help="Serve the dashboard, /healthz /readyz /metrics /status /webhook there "
                   "(port 0: any free port, written to STATE/daemon.json).")
@code_data_options
@click.option("--wait-timeout", type=Duration(), default="300s", show_default=True,
              help="How long a pass waits for a moved pool's new replicas before deferring "
                   "the delete of the old pool.")
@click.option("--allow-mass-delete", is_flag=True,
              help="Apply plans that delete more warm pools than Settings.safety permits.")
@click.option("--allow-reduced-capacity", is_flag=True,
              help="When a move or rolling reload has no room for its surge, replace in "
                   "place keeping replicas-1 warm instead of refusing.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="text for people, json (one object per line) for "
                                      "log collectors.")
@click.option("--backoff-max", type=Duration(), default="5m", envvar=BACKOFF_ENV,
              show_default=True, help=f"Cap of the retry backoff [env {BACKOFF_ENV}].")
@click.option("--lease-namespace", default=None, envvar=LEASE_NAMESPACE_ENV, metavar="NS",
              help="Kubernetes: namespace of the Lease `reconciler` that elects the one active "
                   f"daemon per cluster (made if missing) [env {LEASE_NAMESPACE_ENV}; default: "
                   f"${POD_NAMESPACE_ENV}, the pod's own namespace in a cluster, else "
                   "reconciler-system].")
@click.option("--lease-duration", type=Duration(), default="15s", show_default=True,
              envvar=LEASE_DURATION_ENV,
              help="Kubernetes: how long the Lease lasts unrenewed (renewed every third of "
                   f"it) [env {LEASE_DURATION_ENV}].")
@click.option("--once", is_flag=True,
              help="Run one pass and exit with its result (0 applied, unchanged or "
                   "deferred; 1 otherwise).")
@click.option("--no-agent", is_flag=True,
              help="Local runtime: only reconcile the store; start no workers (run "
                   "`reconciler agent` on the same --state for them).")
def command(repo: str, branch: str, subdir: str, interval: float, resync: float, runtime: str,
            state_dir: Path | None, kubeconfig: Path | None, kube_context: str | None,
            listen: str, data_root: Path | None, code_root: Path | None, wait_timeout: float,
            allow_mass_delete: bool, allow_reduced_capacity: bool, log_format: str,
            backoff_max: float, lease_namespace: str | None, lease_duration: float,
            once: bool, no_agent: bool) -> None:
    """Watch a config repository and reconcile on every change and on a schedule.

    \b
    --repo is one of:
      a Git URL (https://, ssh://, git@host:path) or a path of a clean Git
      repository: the branch is fetched into STATE/git/ and checked out there,
      never in your checkout;
      a plain directory (or a subdirectory / uncommitted Git work tree):
      watched for file changes.
    A commit that fails validation, or whose plan is refused, is never
    applied: the last good commit stays applied and /status names the
    failing commit. Git and runtime errors are retried with backoff.

    \b
    Credentials (never logged): RECONCILER_GIT_SSH_KEY (an SSH key file) or
    GIT_SSH_COMMAND; RECONCILER_GIT_TOKEN (HTTPS token).
    Webhook: RECONCILER_WEBHOOK_SECRET, the GitHub webhook secret.
    Dashboard, /status, /metrics: RECONCILER_UI_TOKEN, a bearer token they
    then require (Bearer, or a Basic-auth password).
    Notifications: RECONCILER_NOTIFY_URL (+ RECONCILER_NOTIFY_SECRET to sign),
    RECONCILER_GITHUB_TOKEN + RECONCILER_GITHUB_REPO (commit statuses;
    RECONCILER_GITHUB_API for GitHub Enterprise).

    \b
    --no-agent: the daemon writes the store and a separate `reconciler agent
    --state DIR` runs the workers (a controller and a kubelet apart).

    \b
    --runtime kubernetes: no local agent; one daemon per cluster reconciles,
    holding the Lease LEASE_NAMESPACE/reconciler (identity hostname:pid; in a
    pod, LEASE_NAMESPACE defaults to the pod's namespace from POD_NAMESPACE).
    The others wait (/readyz 503, /status "leader": false) and take over
    when it is released (on SIGTERM) or expires.
    """
    from reconciler.daemon.passes import PassSettings
    from reconciler.daemon.service import DaemonOptions, run_daemon

    state = ensure_state_dir(resolve_state_dir(state_dir))
    passes = PassSettings(
        runtime=runtime, state_dir=state.resolve(),
        kubeconfig=kubeconfig, context=kube_context,
        data_root=data_root.resolve() if data_root else None,
        code_root=code_root.resolve() if code_root else None,
        wait_timeout=wait_timeout,
        allow_mass_delete=allow_mass_delete, allow_reduced_capacity=allow_reduced_capacity,
        watch=None if once else _positive(resync, "--resync"))
    options = DaemonOptions(
        repo=repo, branch=branch, path=subdir, interval=_positive(interval, "--interval"),
        resync=_positive(resync, "--resync"), backoff_max=_positive(backoff_max, "--backoff-max"),
        listen=listen, log_format=log_format, once=once, passes=passes, agent=not no_agent,
        lease_namespace=lease_namespace_of(lease_namespace),
        lease_duration=max(_positive(lease_duration, "--lease-duration"), 1.0))
    code = run_daemon(options)
    if code:
        sys.exit(code)  # not click's Exit: `python -m reconciler` ignores main()'s result
