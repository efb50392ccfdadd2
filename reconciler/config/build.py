"""Validated plain documents -> frozen model values (reconciler.config.model).

Only documents that passed their schema reach this module, so it trusts the
shapes. It passes only the fields that are written; the defaults are the
model's dataclass defaults (one source). Integer fields become ints (2.0 is
an integer to JSON Schema) and numeric quantities plain decimal text. Field locations are kept as a
lazy read-only mapping: a 10,000-reservation repo has ~150,000 of them and
almost none are ever looked at.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from reconciler.config.documents import PackedLocs, Pos, unpack_locs
from reconciler.config.model import (
    Account,
    AccountType,
    Algorithm,
    CapacityLimit,
    Document,
    Kind,
    KubernetesSettings,
    Location,
    Metadata,
    Model,
    NodeSpec,
    Processor,
    Reservation,
    Resources,
    Safety,
    Settings,
    Version,
    VersionType,
    Visibility,
)
from reconciler.durations import parse_duration

Built = Account | Algorithm | Reservation | CapacityLimit | Settings


class FieldLocations(Mapping[str, Location]):
    """Dotted field path -> Location, unpacked and made on demand: most
    documents of a big repo never have a field looked up."""

    __slots__ = ("_file", "_packed", "_map")

    def __init__(self, file: str, packed: PackedLocs) -> None:
        self._file = file
        self._packed = packed
        self._map: dict[str, Pos] | None = None

    @property
    def _pos(self) -> dict[str, Pos]:
        if self._map is None:
            self._map = unpack_locs(self._packed)
        return self._map

    def __getitem__(self, path: str) -> Location:
        line, col = self._pos[path]
        return Location(self._file, line, col)

    def __contains__(self, path: object) -> bool:
        return path in self._pos

    def __iter__(self) -> Iterator[str]:
        return iter(self._pos)

    def __len__(self) -> int:
        return len(self._packed[0])

    def __repr__(self) -> str:
        return f"FieldLocations({self._file!r}, {len(self)} fields)"


_EMPTY: Mapping[str, str] = MappingProxyType({})


_KINDS = {kind.value: kind for kind in Kind}


def build(file: str, data: dict[str, Any], line: int, col: int, locs: PackedLocs) -> Built:
    """The model value of one schema-valid document."""
    meta = data["metadata"]
    labels = meta.get("labels")
    if "description" in meta:
        metadata = Metadata(meta["name"], MappingProxyType(dict(labels)) if labels else _EMPTY,
                            str(meta["description"]))
    else:
        metadata = Metadata(meta["name"], MappingProxyType(dict(labels)) if labels else _EMPTY)
    kind = _KINDS[data["kind"]]
    doc = Document(kind, metadata, Location(file, line, col), FieldLocations(file, locs))
    return _BUILDERS[kind](doc, data["spec"])  # type: ignore[no-any-return]


Fields = dict[str, tuple[str, Callable[[Any], Any]]]


def _present(spec: Mapping[str, Any], fields: Fields) -> dict[str, Any]:
    """Model keyword arguments for the YAML keys that are present, converted:
    an absent key takes the model's dataclass default, the one source of defaults."""
    return {name: convert(spec[key]) for key, (name, convert) in fields.items() if key in spec}


def quantity(value: Any) -> str:
    """A quantity as text. YAML numbers become plain decimals (0.00001, never
    1e-05); a number that is not finite (.inf, .nan) stays "inf" / "nan", which
    the rules reject as not a quantity."""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return format(Decimal(repr(value)), "f") if math.isfinite(value) else str(value)
    return str(value)


def _int(value: Any) -> int:
    """Integer fields: JSON Schema counts 2.0 as an integer; the model holds 2."""
    return int(value)


_ACCOUNT: Fields = {"members": ("members", tuple)}


def _account(doc: Document, spec: dict[str, Any]) -> Account:
    return Account(doc, AccountType(spec["type"]), **_present(spec, _ACCOUNT))


_VERSION: Fields = {"warmupTimeout": ("warmup_timeout", parse_duration)}
_RESOURCES: Fields = {"cpu": ("cpu", quantity), "memory": ("memory", quantity),
                      "gpu": ("gpu", _int)}


def _algorithm(doc: Document, spec: dict[str, Any]) -> Algorithm:
    resources = Resources(**_present(spec.get("resources") or {}, _RESOURCES))
    versions = tuple(
        Version(v["commit"], v.get("version"), Visibility(v["visibility"]), v["compiledAt"],
                Model(v["model"]["path"], v["model"]["digest"]), index,
                **_present(v, _VERSION))
        for index, v in enumerate(spec["versions"])
    )
    return Algorithm(doc, spec["owner"], Processor(spec["processor"]), resources, spec["image"],
                     spec["entrypoint"], versions)


_VERSION_TYPES = {vtype.value: vtype for vtype in VersionType}


def _reservation(doc: Document, spec: dict[str, Any]) -> Reservation:
    return Reservation(doc, spec["caller"], spec["algorithm"], _VERSION_TYPES[spec["versionType"]],
                       int(spec["replicas"]))


_LIMIT: Fields = {
    "account": ("account", str), "maxEngines": ("max_engines", _int),
    "maxGpus": ("max_gpus", _int), "algorithm": ("algorithm", str),
    "minimumParallelCapacity": ("minimum_parallel_capacity", _int),
    "maximumParallelCapacity": ("maximum_parallel_capacity", _int),
}


def _limit(doc: Document, spec: dict[str, Any]) -> CapacityLimit:
    return CapacityLimit(doc, **_present(spec, _LIMIT))


_SAFETY: Fields = {"maxDeletions": ("max_deletions", _int),
                   "maxDeletePercent": ("max_delete_percent", _int)}
_NODE: Fields = {"name": ("name", str), "processor": ("processor", Processor),
                 "cpu": ("cpu", quantity), "memory": ("memory", quantity),
                 "gpu": ("gpu", _int), "pods": ("pods", _int)}


def _frozen(value: Any) -> Any:
    """A read-only copy of a JSON value (mappings become MappingProxyType, lists tuples)."""
    if isinstance(value, dict):
        return MappingProxyType({str(k): _frozen(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


_KUBERNETES: Fields = {
    "namespacePrefix": ("namespace_prefix", str),
    "gpuNodeSelector": ("gpu_node_selector", lambda m: MappingProxyType(dict(m))),
    "gpuTolerations": ("gpu_tolerations", lambda ts: tuple(_toleration(t) for t in ts)),
    "instance": ("instance", str),
    "dataVolume": ("data_volume", _frozen),
}


def _toleration(toleration: dict[str, Any]) -> Mapping[str, Any]:
    out = dict(toleration)
    if "tolerationSeconds" in out:
        out["tolerationSeconds"] = _int(out["tolerationSeconds"])
    return MappingProxyType(out)


def _settings(doc: Document, spec: dict[str, Any]) -> Settings:
    safety = Safety(**_present(spec.get("safety") or {}, _SAFETY))
    local = spec.get("local") or {}
    nodes = None
    if "nodes" in local:
        nodes = tuple(NodeSpec(**_present(n, _NODE)) for n in local["nodes"])
    kubernetes = KubernetesSettings(**_present(spec.get("kubernetes") or {}, _KUBERNETES))
    return Settings(doc, safety, nodes, kubernetes)


_BUILDERS: dict[Kind, Any] = {
    Kind.ACCOUNT: _account, Kind.ALGORITHM: _algorithm, Kind.RESERVATION: _reservation,
    Kind.CAPACITY_LIMIT: _limit, Kind.SETTINGS: _settings,
}
