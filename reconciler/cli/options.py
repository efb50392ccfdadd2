"""Options shared by several commands, declared once."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_STATE_DIR = ".reconciler"


def config_dir_argument(func: F) -> F:
    return click.argument(
        "config_dir", required=False, default=".",
        type=click.Path(file_okay=False, path_type=Path),
    )(func)


def runtime_options(func: F) -> F:
    """--runtime, --state, --kubeconfig, --context."""
    decorators = [
        click.option("--runtime", type=click.Choice(["local", "kubernetes"]), default="local",
                     show_default=True, help="Where warm pools run."),
        click.option("--state", "state_dir", type=click.Path(file_okay=False, path_type=Path),
                     default=None, envvar="RECONCILER_STATE",
                     help=f"Local runtime directory [env RECONCILER_STATE; default "
                          f"./{DEFAULT_STATE_DIR}]."),
        click.option("--kubeconfig", type=click.Path(dir_okay=False, path_type=Path),
                     default=None, help="Kubeconfig file (default: KUBECONFIG, ~/.kube/config, "
                                        "in-cluster)."),
        click.option("--context", "kube_context", default=None, help="Kubeconfig context."),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def code_data_options(func: F) -> F:
    """--data-root, --code-root (local runtime)."""
    func = click.option("--code-root", type=click.Path(file_okay=False, path_type=Path),
                        default=None, help="Algorithm code for the local runtime "
                                           "[default: CONFIG_DIR/src].")(func)
    func = click.option("--data-root", type=click.Path(file_okay=False, path_type=Path),
                        default=None, help="Where data:// paths resolve "
                                           "[default: CONFIG_DIR/data].")(func)
    return func


def resolve_state_dir(state_dir: Path | None) -> Path:
    """--state, else RECONCILER_STATE, else ./.reconciler in the current directory."""
    if state_dir is not None:
        return state_dir
    env = os.environ.get("RECONCILER_STATE")
    return Path(env) if env else Path(DEFAULT_STATE_DIR)
