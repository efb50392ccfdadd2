"""Runtimes: where warm pools run. `open_runtime` picks one by name; every caller (the
CLI's plan, apply, status and invoke, and the daemon) opens its runtime through it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal, overload

from reconciler.config.model import Settings
from reconciler.errors import ReconcilerError
from reconciler.runtimes.base import FullRuntime, Runtime

if TYPE_CHECKING:
    from reconciler.runtimes.local.runtime import LocalRuntime

__all__ = ["RUNTIMES", "FullRuntime", "Runtime", "open_runtime"]

RUNTIMES = ("local", "kubernetes")
Gate = Callable[[], str | None]


@overload
def open_runtime(name: Literal["local"], *, state_dir: Path, settings: Settings | None = None,
                 config_dir: Path | None = None, data_root: Path | None = None,
                 code_root: Path | None = None, kubeconfig: Path | None = None,
                 context: str | None = None, gate: Gate | None = None,
                 watch: float | None = None) -> LocalRuntime: ...


@overload
def open_runtime(name: str, *, state_dir: Path, settings: Settings | None = None,
                 config_dir: Path | None = None, data_root: Path | None = None,
                 code_root: Path | None = None, kubeconfig: Path | None = None,
                 context: str | None = None, gate: Gate | None = None,
                 watch: float | None = None) -> FullRuntime: ...


def open_runtime(
    name: str,
    *,
    state_dir: Path,
    settings: Settings | None = None,
    config_dir: Path | None = None,
    data_root: Path | None = None,
    code_root: Path | None = None,
    kubeconfig: Path | None = None,
    context: str | None = None,
    gate: Gate | None = None,
    watch: float | None = None,
) -> FullRuntime:
    """Open a runtime. Imports lazily, so the local runtime never loads the Kubernetes client.

    - `config_dir`: the config these writes come from. The data and code roots default
      to its `data/` and `src/` (explicit `data_root` / `code_root` win), and the local
      runtime records all three for its agent.
    - `kubeconfig`, `context`: which cluster (Kubernetes only).
    - `gate()`: None while this process may write, else why not (the daemon's Lease);
      the Kubernetes runtime then writes nothing and stops waiting. The local runtime
      has one writer per state directory (STATE/apply.lock) and takes no gate.
    - `watch` (seconds, Kubernetes only; the daemon): read from informer caches that
      watch the cluster and are relisted this often, shared by the runtimes this process
      opens, so a pass that changes nothing asks the API server nothing.
    """
    if config_dir is not None:
        data_root = data_root or config_dir / "data"
        code_root = code_root or config_dir / "src"
    if name == "local":
        from reconciler.runtimes.local.runtime import LocalRuntime

        return LocalRuntime(state_dir, settings=settings or Settings(), data_root=data_root,
                            code_root=code_root, config_dir=config_dir)
    if name == "kubernetes":
        from reconciler.runtimes.kubernetes.runtime import KubernetesRuntime

        return KubernetesRuntime(settings or Settings(), kubeconfig=kubeconfig, context=context,
                                 gate=gate, watch=watch)
    raise ReconcilerError(f"unknown runtime {name!r}; expected one of {', '.join(RUNTIMES)}")
