"""The pipeline in one call, shared by the CLI and the daemon; plan files.

load_config -> compile_config -> runtime.observe()/nodes() -> make_plan.
The pure stages stay pure; this module is where they meet the runtime and
the file system.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.config.loader import load_config
from reconciler.config.model import Config, KubernetesSettings
from reconciler.desired import compile_config
from reconciler.errors import ReconcilerError
from reconciler.plan.planner import make_plan
from reconciler.plan.plans import FORMAT_VERSION, Plan
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
) -> Planned:
    """load_config -> compile_config -> runtime.observe()/nodes() -> make_plan.
    Raises ConfigError for an invalid config; a refused plan comes back with errors.

    `config`: an already loaded config of `config_dir` (the CLI loads it
    first to open the runtime with its Settings); then nothing is loaded again.
    """
    if config is None:
        config = load_config(config_dir, cache_dir=cache_dir, commit=commit)
    desired = compile_config(config)
    live = runtime.observe()
    plan = make_plan(
        desired, live, runtime.nodes(),
        runtime=runtime.name,
        safety=config.settings.safety,
        source_path=str(config_dir),
        source_commit=commit or config.commit,
        allow_mass_delete=allow_mass_delete,
        allow_reduced_capacity=allow_reduced_capacity,
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


def load_plan_file(path: Path) -> Plan:
    """Read a plan file written by `plan --out`; ReconcilerError when it cannot be used."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReconcilerError(f"plan file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ReconcilerError(f"cannot read plan file {path}: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReconcilerError(
            f"plan file {path} is not JSON ({exc.msg} at line {exc.lineno}); "
            f"write one with `reconciler plan --out {path}`") from None
    if not isinstance(data, dict) or data.get("formatVersion") != FORMAT_VERSION:
        found = data.get("formatVersion") if isinstance(data, dict) else None
        raise ReconcilerError(
            f"plan file {path} has formatVersion {found!r}, expected {FORMAT_VERSION}; "
            f"write it again with this version's `reconciler plan --out`")
    try:
        return Plan.from_json(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise ReconcilerError(f"plan file {path} is malformed: {exc!r}") from None


def write_plan_file(plan: Plan, path: Path, *, data: dict[str, Any] | None = None) -> None:
    """Write the plan's JSON form atomically (temp file + rename in the same directory).
    `data`: the plan's JSON form when the caller already has it (it costs ~0.1 s per
    10,000 actions to make)."""
    from reconciler.plan.render import render_json

    path = Path(path)
    text = render_json(plan.to_json() if data is None else data) + "\n"
    directory = path.parent if str(path.parent) else Path(".")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise ReconcilerError(f"cannot write plan file {path}: {exc}") from None
