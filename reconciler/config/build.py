"""Validated plain documents -> frozen model values (reconciler.config.model).

Only documents that passed their schema reach this module, so it trusts the
shapes and fills in the documented defaults. Field locations are kept as a
lazy read-only mapping: a 10,000-reservation repo has ~150,000 of them and
almost none are ever looked at.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
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
    metadata = Metadata(meta["name"], MappingProxyType(dict(labels)) if labels else _EMPTY,
                        meta.get("description", ""))
    kind = _KINDS[data["kind"]]
    doc = Document(kind, metadata, Location(file, line, col), FieldLocations(file, locs))
    return _BUILDERS[kind](doc, data["spec"])  # type: ignore[no-any-return]


def _account(doc: Document, spec: dict[str, Any]) -> Account:
    return Account(doc, AccountType(spec["type"]), tuple(spec.get("members", ())))


def _quantity(value: Any, default: str) -> str:
    return default if value is None else str(value)


def _algorithm(doc: Document, spec: dict[str, Any]) -> Algorithm:
    res = spec.get("resources") or {}
    resources = Resources(_quantity(res.get("cpu"), "1"), _quantity(res.get("memory"), "512Mi"),
                          int(res.get("gpu", 0)))
    versions = tuple(
        Version(v["commit"], v.get("version"), Visibility(v["visibility"]), v["compiledAt"],
                Model(v["model"]["path"], v["model"]["digest"]), index)
        for index, v in enumerate(spec["versions"])
    )
    return Algorithm(doc, spec["owner"], Processor(spec["processor"]), resources, spec["image"],
                     spec["entrypoint"], versions)


def _reservation(doc: Document, spec: dict[str, Any]) -> Reservation:
    return Reservation(doc, spec["caller"], spec["algorithm"], VersionType(spec["versionType"]),
                       spec["replicas"])


def _limit(doc: Document, spec: dict[str, Any]) -> CapacityLimit:
    return CapacityLimit(doc, spec.get("account"), spec.get("maxEngines"), spec.get("maxGpus"),
                         spec.get("algorithm"), spec.get("minimumParallelCapacity"),
                         spec.get("maximumParallelCapacity"))


def _settings(doc: Document, spec: dict[str, Any]) -> Settings:
    safety_spec = spec.get("safety") or {}
    safety = Safety(safety_spec.get("maxDeletions", 10), safety_spec.get("maxDeletePercent", 50))
    local = spec.get("local") or {}
    nodes = None
    if "nodes" in local:
        nodes = tuple(
            NodeSpec(n["name"], Processor(n["processor"]), str(n["cpu"]), str(n["memory"]),
                     n.get("gpu", 0), n.get("pods", 32))
            for n in local["nodes"]
        )
    kube = spec.get("kubernetes") or {}
    kubernetes = KubernetesSettings(
        kube.get("namespacePrefix", "acct-"),
        MappingProxyType(dict(kube.get("gpuNodeSelector") or {})),
        tuple(MappingProxyType(dict(t)) for t in kube.get("gpuTolerations") or ()),
    )
    return Settings(doc, safety, nodes, kubernetes)


_BUILDERS: dict[Kind, Any] = {
    Kind.ACCOUNT: _account, Kind.ALGORITHM: _algorithm, Kind.RESERVATION: _reservation,
    Kind.CAPACITY_LIMIT: _limit, Kind.SETTINGS: _settings,
}
