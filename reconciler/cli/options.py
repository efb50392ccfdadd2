"""Options shared by several commands, declared once."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from reconciler.errors import ReconcilerError

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_STATE_DIR = ".reconciler"
RUNTIMES = ("local", "kubernetes")  # as reconciler.runtimes.RUNTIMES, without importing it


def config_dir_argument(func: F) -> F:
    return click.argument(
        "config_dir", required=False, default=".",
        type=click.Path(file_okay=False, path_type=Path),
    )(func)


STATE_HELP = (f"State directory: the local runtime's store, and on any runtime the apply "
              f"journal and lock and the daemon's files [env RECONCILER_STATE; default "
              f"./{DEFAULT_STATE_DIR}].")


def state_option(func: F) -> F:
    """--state (see resolve_state_dir)."""
    return click.option("--state", "state_dir", type=click.Path(file_okay=False, path_type=Path),
                        default=None, envvar="RECONCILER_STATE", help=STATE_HELP)(func)


def _runtime_options(func: F, runtime: Callable[[Any], Any]) -> F:
    decorators: list[Callable[[Any], Any]] = [
        runtime,
        state_option,
        click.option("--kubeconfig", type=click.Path(dir_okay=False, path_type=Path),
                     default=None, help="Kubernetes: kubeconfig file [default: KUBECONFIG, "
                                        "else ~/.kube/config, else in-cluster]."),
        click.option("--context", "kube_context", default=None, metavar="NAME",
                     help="Kubernetes: kubeconfig context [default: its current context]."),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def runtime_options(func: F) -> F:
    """--runtime, --state, --kubeconfig, --context."""
    return _runtime_options(func, click.option(
        "--runtime", type=click.Choice(RUNTIMES), default="local", show_default=True,
        help="Where warm pools run."))


def apply_runtime_options(func: F) -> F:
    """As runtime_options, for `apply`: with --plan, --runtime defaults to the plan's."""
    return _runtime_options(func, click.option(
        "--runtime", type=click.Choice(RUNTIMES), default="local",
        help="Where warm pools run [default: local; with --plan, the runtime the plan was "
             "made for]."))


def instance_option(func: F) -> F:
    """--instance: which reconciler instance's objects a command without a config reads
    on Kubernetes (Settings.kubernetes.instance, else its namespacePrefix)."""
    return click.option(
        "--instance", default=None, envvar="RECONCILER_INSTANCE", metavar="NAME",
        help="Kubernetes: the reconciler instance to show, as the config names it "
             "(Settings.kubernetes.instance, else its namespacePrefix) [env "
             "RECONCILER_INSTANCE; default: the one the last Kubernetes apply with this "
             "--state wrote, else acct-, the default namespacePrefix].")(func)


INSTANCE_FILE = "kubernetes-instance"  # in the state directory: the last apply's instance


def record_instance(state: Path, settings: Any) -> None:
    """After a Kubernetes apply: the instance it wrote, which `status` and `wait` show
    when no --instance is given. A record only: failing to write it is a warning."""
    from reconciler.config.model import KubernetesSettings
    from reconciler.files import replace_file
    from reconciler.runtimes.kubernetes.manifests import instance_name

    kube = settings.kubernetes if settings is not None else KubernetesSettings()
    try:
        replace_file(state / INSTANCE_FILE, instance_name(kube) + "\n")
    except OSError as exc:
        click.echo(f"warning: cannot record the instance in {state / INSTANCE_FILE}: "
                   f"{describe_os_error(exc)}", err=True)


def recorded_instance(state: Path) -> str | None:
    """The instance the last Kubernetes apply with this state wrote; None when none did."""
    path = state / INSTANCE_FILE
    try:
        with open(path, "rb") as handle:
            raw = handle.read(1024)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ReconcilerError(f"cannot read {path}: {describe_os_error(exc)}") from None
    try:
        name = raw.decode().strip()
    except UnicodeDecodeError:
        name = ""
    if not name or len(name) > 253 or any(c in name for c in "\0\r\n"):
        raise ReconcilerError(f"{path} is damaged (not an instance name): give --instance, "
                              "or remove the file")
    return name


def instance_settings(instance: str | None, state: Path | None = None) -> Any:
    """Settings to read (not write) the objects of Kubernetes instance `instance`, wherever
    its namespaces are; without one, the instance the last Kubernetes apply with `state`
    wrote (said on stderr), else None: the defaults."""
    from reconciler.config.model import KubernetesSettings, Settings

    if instance is None and state is not None:
        instance = recorded_instance(state)
        if instance is not None:
            click.echo(f"instance {instance} (the last Kubernetes apply with this --state; "
                       "--instance shows another)", err=True)
    if instance is None:
        return None
    # "*" is no namespacePrefix: the runtime reads the pools where they are
    return Settings(kubernetes=KubernetesSettings(instance=instance, namespace_prefix="*"))


def code_root_option(func: F, default: str = "CONFIG_DIR/src") -> F:
    """--code-root: where entrypoint modules are (local runtime; validate checks them)."""
    return click.option("--code-root", type=click.Path(file_okay=False, path_type=Path),
                        default=None, help="Algorithm code for the local runtime "
                                           f"[default: {default}].")(func)


def code_data_options(func: F, *, recorded: bool = False) -> F:
    """--data-root, --code-root (local runtime). `recorded`: the defaults are the roots
    the last apply recorded in the store (a command without CONFIG_DIR: invoke)."""
    where = "the {0} root the last apply recorded, else {1}/ under the config directory" \
        if recorded else "CONFIG_DIR/{1}"
    func = code_root_option(func, where.format("code", "src"))
    func = click.option("--data-root", type=click.Path(file_okay=False, path_type=Path),
                        default=None, help="Where data:// paths resolve [default: "
                                           f"{where.format('data', 'data')}].")(func)
    return func


def recorded_roots(func: F) -> F:
    """--data-root, --code-root defaulting to the roots the last apply recorded."""
    return code_data_options(func, recorded=True)


def resolve_state_dir(state_dir: Path | None) -> Path:
    """--state, else RECONCILER_STATE, else ./.reconciler in the current directory."""
    if state_dir is not None:
        return state_dir
    env = os.environ.get("RECONCILER_STATE")
    return Path(env) if env else Path(DEFAULT_STATE_DIR)


def cache_dir_for(no_cache: bool) -> Path | None:
    """The on-disk cache of parsed documents: None with --no-cache (or RECONCILER_NO_CACHE=1),
    else $RECONCILER_CACHE_DIR, $XDG_CACHE_HOME/reconciler or ~/.cache/reconciler."""
    if no_cache:
        return None
    from reconciler.config.cache import default_cache_dir

    return default_cache_dir()


def no_cache_option(func: F) -> F:
    return click.option("--no-cache", is_flag=True,
                        help="Parse and validate every file again (ignore the cache).")(func)


def ensure_state_dir(state: Path) -> Path:
    """Create the local state directory; a ReconcilerError (not a traceback) when it cannot be."""
    try:
        state.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReconcilerError(f"--state {state}: cannot create the state directory: "
                              f"{describe_os_error(exc)}") from None
    return state


def describe_os_error(exc: OSError) -> str:
    """`No such file or directory: /proc/foo` rather than `[Errno 2] ...`."""
    reason = exc.strerror or str(exc)
    return f"{reason}: {exc.filename}" if exc.filename else reason
