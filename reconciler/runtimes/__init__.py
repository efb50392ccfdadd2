"""Runtimes: where warm pools run. `open_runtime` picks one by name."""

from __future__ import annotations

from pathlib import Path

from reconciler.config.model import Settings
from reconciler.errors import ReconcilerError
from reconciler.runtimes.base import Runtime

RUNTIMES = ("local", "kubernetes")


def open_runtime(
    name: str,
    *,
    state_dir: Path,
    settings: Settings | None = None,
    data_root: Path | None = None,
    code_root: Path | None = None,
    kubeconfig: Path | None = None,
    context: str | None = None,
) -> Runtime:
    """Open a runtime. Imports lazily, so the local runtime never loads the Kubernetes client."""
    if name == "local":
        from reconciler.runtimes.local.runtime import LocalRuntime

        return LocalRuntime(
            state_dir, settings=settings or Settings(), data_root=data_root, code_root=code_root
        )
    if name == "kubernetes":
        from reconciler.runtimes.kubernetes.runtime import KubernetesRuntime

        return KubernetesRuntime(settings or Settings(), kubeconfig=kubeconfig, context=context)
    raise ReconcilerError(f"unknown runtime {name!r}; expected one of {', '.join(RUNTIMES)}")
