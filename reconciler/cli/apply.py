"""`reconciler apply`: make the runtime match the config, or apply a saved plan.

Holds STATE/apply.lock for the whole run, so two appliers (or an apply and
the daemon's pass) never interleave; `--lock-timeout` says how long to wait
for it (default 0s: fail at once, naming the holder).

Exit codes: 0 applied or nothing to do (deferred deletes included, with a
warning); 1 invalid config, refused or stale plan, a failed action, or a
held lock.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from reconciler.cli import options
from reconciler.cli.durations import DURATION
from reconciler.errors import ApplyFailed, PlanRefused, ReconcilerError
from reconciler.gcpause import while_running

if TYPE_CHECKING:
    from reconciler.apply import ApplyResult, ChangeEntry
    from reconciler.config.model import Config, Settings
    from reconciler.plan.plans import Plan
    from reconciler.runtimes.base import Runtime


EXAMPLES = ("\b\nExamples:\n"  # --help shows them after the options
            "  reconciler apply config-examples --auto-approve\n"
            "  reconciler plan --out plan.json && reconciler apply --plan plan.json\n"
            "  reconciler apply --runtime kubernetes --context prod --auto-approve")


@click.command("apply", epilog=EXAMPLES)
@options.config_dir_argument
@click.option("--plan", "plan_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Apply exactly this plan file (from `plan --out`); refused "
                                 "when the live state has changed since it was made.")
@options.apply_runtime_options
@options.code_data_options
@click.option("--auto-approve", is_flag=True, help="Do not ask for confirmation.")
@click.option("--allow-mass-delete", is_flag=True,
              help="Allow deleting more warm pools than Settings.safety permits.")
@click.option("--allow-reduced-capacity", is_flag=True,
              help="When a move or reload has no room for its surge, replace in place "
                   "keeping replicas-1 warm instead of refusing.")
@click.option("--wait-timeout", type=DURATION, default="300s", show_default=True,
              help="How long to wait for a moved pool's new replicas before deferring the "
                   "delete of the old pool.")
@click.option("--lock-timeout", type=DURATION, default="0s", show_default=True,
              help="How long to wait for another apply or the daemon to release the state.")
@options.no_cache_option
@while_running
def command(config_dir: Path, plan_file: Path | None, runtime: str, state_dir: Path | None,
            kubeconfig: Path | None, kube_context: str | None, data_root: Path | None,
            code_root: Path | None, auto_approve: bool, allow_mass_delete: bool,
            allow_reduced_capacity: bool, wait_timeout: float, lock_timeout: float,
            no_cache: bool) -> None:
    """Make the runtime match CONFIG_DIR (default: the current directory).

    Shows the plan, asks for confirmation on a terminal (without one, it
    refuses unless --auto-approve), then applies it action by action,
    printing each outcome. With --plan FILE it applies that saved plan
    instead, without asking: the file must be signed by `plan --out` with
    the same --state, the live state must still match it, and its safety and
    capacity are checked again; it goes to the runtime the plan was made for
    (an explicit --runtime must agree). One apply at a time per state directory.

    Exit codes: 0 applied (or no changes; deferred deletes warn); 1 invalid
    config, refused or stale plan, failed action, or state locked.
    """
    ctx = click.get_current_context()
    explicit_dir = ctx.get_parameter_source("config_dir") is not click.core.ParameterSource.DEFAULT
    explicit_runtime = (ctx.get_parameter_source("runtime")
                        is not click.core.ParameterSource.DEFAULT)
    cache_dir = options.cache_dir_for(no_cache)
    state = options.resolve_state_dir(state_dir)
    if plan_file is None:
        from reconciler.config.loader import load_config

        config = load_config(config_dir, cache_dir=cache_dir, code_root=code_root,
                             code_digests=runtime == "local")
        _locked(state, lock_timeout, lambda: _open(
            runtime, state, config.settings, config_dir, data_root, code_root, kubeconfig,
            kube_context, config), lambda target: _plan_and_apply(
            target, config_dir, config, auto_approve, allow_mass_delete,
            allow_reduced_capacity, wait_timeout, state))
        if runtime == "kubernetes":
            options.record_instance(state, config.settings)
        return
    from reconciler.pipeline import load_plan_file

    plan = load_plan_file(plan_file, state_dir=state)  # signed with this state's key
    runtime = _runtime_for(plan, plan_file, runtime if explicit_runtime else None)
    saved_dir = Path(plan.source_path) if plan.source_path else None
    source = config_dir if explicit_dir else (saved_dir if saved_dir and saved_dir.is_dir()
                                              else None)
    saved = _config_of(source, cache_dir, code_root, runtime)
    settings = _plan_settings(plan, saved.settings if saved else None) \
        if runtime == "kubernetes" else (saved.settings if saved else None)
    _locked(state, lock_timeout, lambda: _open(
        runtime, state, settings, source, data_root, code_root, kubeconfig, kube_context),
        lambda target: _apply_saved(target, plan, saved, wait_timeout, state))
    if runtime == "kubernetes":
        options.record_instance(state, settings)


def _locked(state: Path, lock_timeout: float, open_target: Callable[[], Runtime],
            body: Callable[[Runtime], None]) -> None:
    """Run `body` on the opened runtime, holding STATE/apply.lock (made if missing)."""
    from reconciler.runtimes.local.lock import StateLock

    options.ensure_state_dir(state)
    lock = StateLock(state / "apply.lock", "reconciler apply")
    lock.acquire(timeout=lock_timeout)
    try:
        target = open_target()
        try:
            body(target)
        finally:
            target.close()
    finally:
        lock.release()


def _runtime_for(plan: Plan, plan_file: Path, given: str | None) -> str:
    """The runtime a saved plan is applied to: the one it was made for. An explicit
    --runtime that differs is refused before anything is opened."""
    if given is not None and given != plan.runtime:
        raise PlanRefused(f"plan file {plan_file} was made for the {plan.runtime} runtime, "
                          f"not {given}: leave out --runtime (the plan's runtime is used) or "
                          f"make the plan again with --runtime {given}; nothing was applied")
    if plan.runtime not in options.RUNTIMES:
        raise PlanRefused(f"plan file {plan_file} was made for the {plan.runtime} runtime, "
                          f"which cannot be applied (only {' and '.join(options.RUNTIMES)} can); "
                          f"nothing was applied")
    return plan.runtime


def _open(runtime: str, state: Path, settings: Settings | None, config_dir: Path | None,
          data_root: Path | None, code_root: Path | None, kubeconfig: Path | None,
          context: str | None, config: Config | None = None) -> Runtime:
    """The runtime, told where this config's data and code live (local: recorded for the agent,
    with the config's versions for routing calls)."""
    from reconciler.runtimes import open_runtime

    return open_runtime(runtime, state_dir=state, settings=settings, config_dir=config_dir,
                        data_root=data_root, code_root=code_root,
                        kubeconfig=kubeconfig, context=context, config=config)


def _config_of(config_dir: Path | None, cache_dir: Path | None, code_root: Path | None,
               runtime: str) -> Config | None:
    """The config of a saved plan's config dir, when it still loads: its Settings (the local
    nodes) and its accounts (the access re-check). None when there is none."""
    if config_dir is None or not config_dir.is_dir():
        return None
    try:
        from reconciler.config.loader import load_config

        return load_config(config_dir, cache_dir=cache_dir, code_root=code_root,
                           code_digests=runtime == "local")
    except (ReconcilerError, OSError):
        return None


def _plan_settings(plan: Plan, fallback: Settings | None) -> Settings | None:
    """For Kubernetes: the Settings.kubernetes the plan recorded when it was made (they
    name the namespaces its objects live in), else the config dir's, else the defaults."""
    import dataclasses

    from reconciler.config.model import Settings
    from reconciler.pipeline import kubernetes_settings

    recorded = kubernetes_settings(plan.options)
    if recorded is None:
        return fallback
    return dataclasses.replace(fallback or Settings(), kubernetes=recorded)


def _plan_and_apply(target: Runtime, config_dir: Path, config: Config, auto_approve: bool,
                    allow_mass_delete: bool, allow_reduced_capacity: bool,
                    wait_timeout: float, state: Path) -> None:
    from reconciler.cli.plan import print_plan
    from reconciler.pipeline import plan_config

    planned = plan_config(config_dir, target, config=config,
                          allow_mass_delete=allow_mass_delete,
                          allow_reduced_capacity=allow_reduced_capacity)
    print_plan(planned.plan, "text")
    _confirm_and_execute(target, planned.plan, auto_approve, wait_timeout, state)


def _apply_saved(target: Runtime, plan: Plan, config: Config | None, wait_timeout: float,
                 state: Path) -> None:
    """A saved plan: the file is the approval (no prompt), but it is re-checked against
    the live state first (plan.recheck); a problem refuses it before any write."""
    from reconciler.cli.plan import print_plan
    from reconciler.plan.planner import check_fresh
    from reconciler.plan.recheck import recheck

    if plan.runtime != target.name:
        raise PlanRefused(f"the plan was made for the {plan.runtime} runtime, "
                          f"not {target.name}; nothing was applied")
    live = target.observe()
    check_fresh(plan, live)
    print_plan(plan, "text")
    if not plan.applyable:
        raise PlanRefused("the plan file holds a plan that `plan` refused (see the errors "
                          "above); nothing was applied")
    problems = recheck(plan, live, target.nodes(), config=config)
    for problem in problems:
        click.echo(f"Error: {problem}", err=True)
    if problems:
        raise PlanRefused(f"the plan file does not hold against the live state "
                          f"({len(problems)} problem{'s' if len(problems) != 1 else ''} above); "
                          f"nothing was applied")
    _confirm_and_execute(target, plan, True, wait_timeout, state)


def _confirm_and_execute(target: Runtime, plan: Plan, auto_approve: bool,
                         wait_timeout: float, state: Path) -> None:
    from reconciler.apply import execute

    if not plan.applyable:
        raise PlanRefused("the plan is refused (see the errors above); nothing was applied")
    if plan.empty:
        save = getattr(target, "save_roots", None)
        if save is not None and Path(state).exists():
            save()
        return  # print_plan has said "No changes"
    if not auto_approve:
        if not sys.stdin.isatty():
            raise PlanRefused("apply asks for confirmation, and stdin is not a terminal: pass "
                              "--auto-approve to apply without asking (or save the plan with "
                              "`reconciler plan --out FILE` and run `reconciler apply --plan "
                              "FILE`, both with the same --state); nothing was applied")
        click.confirm("Apply these changes?", abort=True)
    click.echo("")
    result = execute(plan, target, wait_timeout=wait_timeout,
                     journal_dir=state, progress=print_entry,
                     notice=lambda text: click.echo(f"  ... {text}"))
    record = getattr(target, "record_apply", None)
    if record is not None:
        record(result.to_json(), plan.source_commit)
    print_result(result)
    if not result.ok:
        skipped = result.counts.get("skipped", 0)
        done = len(result.entries) - len(result.failed) - skipped
        also = f" and {skipped} not attempted" if skipped else ""
        rest = "the others were applied" if done else "nothing else was applied"
        raise ApplyFailed(f"{len(result.failed)} action(s) failed{also}; {rest} (see above). "
                          "Fix the cause and run apply again.")


MARKS = {"created": "+", "configured": "~", "deleted": "-", "deferred": "…", "failed": "✗",
         "skipped": "·", "unchanged": "="}


def print_entry(entry: ChangeEntry) -> None:
    """One line per action as it finishes: mark, outcome, kind and id, time, message."""
    outcome = str(entry.outcome)
    line = f"  {MARKS.get(outcome, ' ')} {outcome:<10} {entry.kind} {entry.action_id}"
    line += f" ({entry.seconds:.1f}s)"
    if entry.outcome in ("failed", "deferred", "skipped"):
        line += f": {entry.message}"
    click.echo(line, err=entry.outcome == "failed")


def print_result(result: ApplyResult) -> None:
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    if result.resumed:
        click.echo(f"note: {result.resumed}; completed actions were not repeated", err=True)
    counts = ", ".join(f"{n} {outcome}" for outcome, n in result.counts.items() if n)
    head = "Apply complete" if result.ok else "Apply finished with failures"
    click.echo(f"\n{head}: {counts or 'nothing to do'}.")
    deletes = [e for e in result.deferred if e.op == "delete"]
    if deletes:
        click.echo(f"warning: {len(deletes)} delete(s) deferred: the old pool keeps "
                   "serving until the new one is ready; the next apply or daemon pass "
                   "completes it.", err=True)
    if len(deletes) < len(result.deferred):
        click.echo(f"warning: {len(result.deferred) - len(deletes)} action(s) deferred (see "
                   "above): they could not be done yet; the next apply or daemon pass does "
                   "them.", err=True)
