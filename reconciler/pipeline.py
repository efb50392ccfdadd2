"""STUB (issue 3 replaces this): the pipeline in one call, shared by the CLI and the daemon."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reconciler.config.model import Config
from reconciler.plan.plans import Plan
from reconciler.runtimes.base import Runtime
from reconciler.states import DesiredState, LiveState


@dataclass(frozen=True)
class Planned:
    config: Config
    desired: DesiredState
    live: LiveState
    plan: Plan


def plan_config(
    config_dir: Path,
    runtime: Runtime,
    *,
    cache_dir: Path | None = None,
    commit: str | None = None,
    allow_mass_delete: bool = False,
    allow_reduced_capacity: bool = False,
) -> Planned:
    """load_config -> compile_config -> runtime.observe()/nodes() -> make_plan.
    Raises ConfigError for an invalid config; a refused plan comes back with errors."""
    raise NotImplementedError
