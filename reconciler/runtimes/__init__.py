"""Runtimes: where warm pools run. `open_runtime` picks one by name; every caller (the
CLI's plan, apply, status and invoke, and the daemon) opens its runtime through it.

Importing this package imports nothing else (the protocol types load on first use):
`reconciler invoke` reaches runtimes.local.routing without paying for the config model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from reconciler.errors import ReconcilerError

if TYPE_CHECKING:
    from reconciler.config.model import Config, Settings
    from reconciler.runtimes.base import FullRuntime, Runtime
    from reconciler.runtimes.local.runtime import LocalRuntime

__all__ = ["RUNTIMES", "FullRuntime", "Runtime", "open_runtime"]

RUNTIMES = ("local", "kubernetes")
Gate = Callable[[], str | None]


@overload
def open_runtime(name: Literal["local"], *, state_dir: Path, settings: Settings | None = None,
                 config_dir: Path | None = None, data_root: Path | None = None,
                 code_root: Path | None = None, kubeconfig: Path | None = None,
                 context: str | None = None, gate: Gate | None = None,
                 config: Config | None = None,
                 watch: float | None = None) -> LocalRuntime: ...


@overload
def open_runtime(name: str, *, state_dir: Path, settings: Settings | None = None,
                 config_dir: Path | None = None, data_root: Path | None = None,
                 code_root: Path | None = None, kubeconfig: Path | None = None,
                 context: str | None = None, gate: Gate | None = None,
                 config: Config | None = None,
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
    config: Config | None = None,
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
    - `config`: the config these writes come from (local: its versions are recorded, so
      `invoke` routes without loading it; see runtimes/local/catalog.py).
    - `watch` (seconds, Kubernetes only; the daemon): read from informer caches that
      watch the cluster and are relisted this often, shared by the runtimes this process
      opens, so a pass that changes nothing asks the API server nothing.
    """
    from reconciler.config.model import Settings

    if config_dir is not None:
        data_root = data_root or config_dir / "data"
        code_root = code_root or config_dir / "src"
    if name == "local":
        from reconciler.runtimes.local.runtime import LocalRuntime

        return LocalRuntime(state_dir, settings=settings or Settings(), data_root=data_root,
                            code_root=code_root, config_dir=config_dir, config=config)
    if name == "kubernetes":
        from reconciler.runtimes.kubernetes.runtime import KubernetesRuntime

        return KubernetesRuntime(settings or Settings(), kubeconfig=kubeconfig, context=context,
                                 gate=gate, watch=watch)
    raise ReconcilerError(f"unknown runtime {name!r}; expected one of {', '.join(RUNTIMES)}")


def __getattr__(name: str) -> Any:
    """FullRuntime and Runtime, imported on first use (PEP 562)."""
    if name in ("FullRuntime", "Runtime"):
        from reconciler.runtimes import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
