"""The pipeline in one call, shared by the CLI and the daemon; plan files.

load_config -> compile_config -> runtime.observe()/nodes() -> make_plan.
The pure stages stay pure; this module is where they meet the runtime and
the file system.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.config.loader import load_config
from reconciler.config.model import Config, KubernetesSettings
from reconciler.desired import compile_config
from reconciler.plan.capacity import Totals
from reconciler.plan.fingerprint import RowCache
from reconciler.plan.planner import make_plan
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
    config: Config | None = None,
    desired: DesiredState | None = None,
    live: LiveState | None = None,
    candidates: Collection[str] | None = None,
    rows: RowCache | None = None,
    sums: Totals | None = None,
    live_sums: Totals | None = None,
) -> Planned:
    """load_config -> compile_config -> runtime.observe()/nodes() -> make_plan.
    Raises ConfigError for an invalid config; a refused plan comes back with errors.

    `config`: an already loaded config of `config_dir` (the CLI loads it
    first to open the runtime with its Settings); then nothing is loaded again.
    `desired`, `live`: already compiled / observed (the daemon keeps them between
    passes); `candidates`, `rows`, `sums`, `live_sums`: see make_plan.
    """
    if config is None:
        config = load_config(config_dir, cache_dir=cache_dir, commit=commit,
                             code_digests=runtime.name == "local")
    if desired is None:
        desired = compile_config(config)
    if live is None:
        live = runtime.observe()
    plan = make_plan(
        desired, live, runtime.nodes(),
        runtime=runtime.name,
        safety=config.settings.safety,
        source_path=str(config_dir),
        source_commit=commit or config.commit,
        allow_mass_delete=allow_mass_delete,
        allow_reduced_capacity=allow_reduced_capacity,
        candidates=candidates,
        rows=rows,
        sums=sums,
        live_sums=live_sums,
    )
    if runtime.name == "kubernetes":
        # `apply --plan FILE` must write to the same namespaces even when the config dir
        # is gone: the plan file carries the settings that name them.
        options = {**plan.options, "kubernetes": kubernetes_options(config.settings.kubernetes)}
        plan = dataclasses.replace(plan, options=options)
    return Planned(config, desired, live, plan)


def kubernetes_options(settings: KubernetesSettings) -> dict[str, Any]:
    """Settings.kubernetes as recorded in a plan file's options (the config's spelling)."""
    options: dict[str, Any] = {"namespacePrefix": settings.namespace_prefix,
                               "gpuNodeSelector": dict(settings.gpu_node_selector),
                               "gpuTolerations": [dict(t) for t in settings.gpu_tolerations]}
    if settings.instance is not None:
        options["instance"] = settings.instance
    if settings.data_volume is not None:
        options["dataVolume"] = json.loads(json.dumps(settings.data_volume, default=_plain))
    return options


def _plain(value: Any) -> Any:
    """JSON for the read-only mappings and tuples of a Settings value."""
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def kubernetes_settings(options: Mapping[str, Any]) -> KubernetesSettings | None:
    """The Settings.kubernetes a plan file recorded; None when it has none (or they are
    malformed: the caller falls back to the config dir's settings)."""
    data = options.get("kubernetes")
    if not isinstance(data, dict):
        return None
    prefix = data.get("namespacePrefix")
    selector = data.get("gpuNodeSelector") or {}
    tolerations = data.get("gpuTolerations") or []
    instance = data.get("instance")
    volume = data.get("dataVolume")
    if not isinstance(prefix, str) or not isinstance(selector, dict) or \
            not isinstance(tolerations, list) or \
            not all(isinstance(t, dict) for t in tolerations) or \
            not isinstance(instance, str | None) or not isinstance(volume, dict | None):
        return None
    return KubernetesSettings(namespace_prefix=prefix,
                              gpu_node_selector={str(k): str(v) for k, v in selector.items()},
                              gpu_tolerations=tuple(dict(t) for t in tolerations),
                              instance=instance, data_volume=volume)


def load_plan_file(path: Path, *, state_dir: Path | None = None) -> Plan:
    """Read a plan file written by `plan --out`; ReconcilerError when it cannot be used.
    With `state_dir`, it must be signed with that state directory's plan key (planfiles)."""
    from reconciler import planfiles

    return planfiles.load(path, state_dir=state_dir)


def write_plan_file(plan: Plan, path: Path, *, data: dict[str, Any] | None = None,
                    key: bytes | None = None) -> dict[str, Any]:
    """Write the plan's JSON form atomically, signed with `key` when given; what was
    written. `data`: the plan's JSON form when the caller already has it."""
    from reconciler import planfiles

    return planfiles.write(plan, path, data=data, key=key)
