"""`reconciler plan`: show what apply would change on the runtime.

Exit codes: 0 no changes (or changes without --detailed-exitcode); 2 changes
with --detailed-exitcode; 1 invalid config or a refused plan (its errors are
printed). `--out FILE` writes the JSON plan file that `apply --plan FILE`
applies, whatever `--format` prints.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from reconciler.cli import options
from reconciler.errors import ReconcilerError
from reconciler.gcpause import while_running
from reconciler.plan.plans import Plan

FORMATS = ("text", "markdown", "json")


# The line before each part of a plan too long for one pull-request comment; the
# example workflow (config-examples/.github/workflows/plan.yml) splits on it.
PART_MARKER = "<!-- reconciler: part {number} of {total} -->"


def markdown_text(parts: list[str]) -> str:
    """The markdown parts as one text: a single part as is, several each after its
    PART_MARKER line."""
    if len(parts) == 1:
        return parts[0]
    return "\n".join(f"{PART_MARKER.format(number=number, total=len(parts))}\n{part}"
                     for number, part in enumerate(parts, start=1))


def use_color() -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def print_plan(plan: Plan, fmt: str, data: dict[str, Any] | None = None) -> None:
    """Print the plan in one of FORMATS; markdown parts are separated by a marker line.
    `data`: the plan's JSON form, when already made (every view is rendered from it)."""
    from reconciler.plan import render

    data = plan.to_json() if data is None else data
    if fmt == "json":
        click.echo(render.render_json(data))
    elif fmt == "markdown":
        click.echo(markdown_text(render.render_markdown(data)))
    else:
        click.echo(render.render_text(data, color=use_color()), color=use_color())
    if fmt != "text" and plan.errors:
        for error in plan.errors:
            click.echo(f"error: {error.message}", err=True)


def exit_code(plan: Plan, detailed: bool) -> int:
    if plan.errors:
        return 1
    if detailed and plan.actions:
        return 2
    return 0


EXAMPLES = ("\b\nExamples:\n"  # --help shows them after the options
            "  reconciler plan config-examples --state .reconciler\n"
            "  reconciler plan --out plan.json --detailed-exitcode   # exit 2: changes\n"
            "  reconciler plan --runtime kubernetes --context prod --format markdown")


@click.command("plan", epilog=EXAMPLES)
@options.config_dir_argument
@options.runtime_options
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
              help="text for people, markdown for a pull-request comment, json for tools.")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the JSON plan file for `apply --plan`.")
@click.option("--detailed-exitcode", is_flag=True,
              help="Exit 2 when the plan has changes (0: none, 1: error).")
@click.option("--allow-mass-delete", is_flag=True,
              help="Allow deleting more warm pools than Settings.safety permits.")
@click.option("--allow-reduced-capacity", is_flag=True,
              help="When a move or rolling reload has no room for its surge, replace in "
                   "place keeping replicas-1 warm instead of refusing.")
@options.code_root_option
@options.no_cache_option
@while_running
def command(config_dir: Path, runtime: str, state_dir: Path | None, kubeconfig: Path | None,
            kube_context: str | None, fmt: str, out: Path | None, detailed_exitcode: bool,
            allow_mass_delete: bool, allow_reduced_capacity: bool, code_root: Path | None,
            no_cache: bool) -> None:
    """Show what apply would change on the runtime.

    Loads and validates CONFIG_DIR (default: the current directory), compiles
    it, observes the runtime and prints the plan: + create, ~ scale / reload /
    update, - delete, with the reason for each. Nothing is changed. --out
    signs the plan file with the state directory's plan key (STATE/plan.key,
    made by the first --out), so `apply --plan` refuses an edited file.

    Exit codes: 0 no changes (or changes without --detailed-exitcode);
    2 changes (with --detailed-exitcode); 1 invalid config or refused plan.
    """
    from reconciler.config.loader import load_config
    from reconciler.pipeline import plan_config, write_plan_file
    from reconciler.runtimes import open_runtime

    config = load_config(config_dir, cache_dir=options.cache_dir_for(no_cache),
                         code_root=code_root, code_digests=runtime == "local")
    try:
        target = open_runtime(runtime, state_dir=options.resolve_state_dir(state_dir),
                              settings=config.settings, kubeconfig=kubeconfig,
                              context=kube_context)
    except ImportError as exc:
        raise ReconcilerError(f"the {runtime} runtime is not available: {exc}") from None
    try:
        planned = plan_config(config_dir, target, config=config,
                              allow_mass_delete=allow_mass_delete,
                              allow_reduced_capacity=allow_reduced_capacity)
    finally:
        target.close()
    data = planned.plan.to_json()
    if out is not None:
        from reconciler.planfiles import state_key

        key = state_key(options.resolve_state_dir(state_dir), create=True)
        data = write_plan_file(planned.plan, out, data=data, key=key)
    print_plan(planned.plan, fmt, data)
    code = exit_code(planned.plan, detailed_exitcode)
    if code:
        sys.exit(code)  # not click's Exit: `python -m reconciler` ignores main()'s return value
