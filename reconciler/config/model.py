"""The config model: frozen values built from validated YAML documents.

Purely data: no I/O, no clock, no environment. Every document keeps where it
came from (`Location`) so later stages can point diagnostics at a file and line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from reconciler.config.documents import nearest
from reconciler.states import DEFAULT_WARMUP_TIMEOUT

API_VERSION = "reconciler/v1"


class Kind(StrEnum):
    ACCOUNT = "Account"
    ALGORITHM = "Algorithm"
    RESERVATION = "Reservation"
    CAPACITY_LIMIT = "CapacityLimit"
    SETTINGS = "Settings"


class AccountType(StrEnum):
    USER = "user"
    ORGANIZATION = "organization"


class Processor(StrEnum):
    CPU = "cpu"
    GPU = "gpu"


class Visibility(StrEnum):
    PUBLIC = "public"
    PRIVATE = "private"
    UNPUBLISHED = "unpublished"


class VersionType(StrEnum):
    LATEST_PUBLIC = "latest-public"
    LATEST_PRIVATE = "latest-private"
    LATEST_COMPILED = "latest-compiled"
    SEMANTIC = "semantic"
    HASH = "hash"


@dataclass(frozen=True, slots=True)
class Location:
    """Where a value was written: file relative to the config root, 1-based line and column."""

    file: str
    line: int = 0
    col: int = 0

    def __str__(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}:{self.col}"
        return self.file


@dataclass(frozen=True, slots=True)
class Metadata:
    name: str
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    description: str = ""


@dataclass(frozen=True, slots=True)
class Document:
    """Common envelope fields of every kind. `loc` is the document's start;
    `field_locs` maps dotted field paths ("spec.replicas") to their location,
    so rules can point at the exact field they complain about."""

    kind: Kind
    metadata: Metadata
    loc: Location
    field_locs: Mapping[str, Location] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def name(self) -> str:
        return self.metadata.name

    def at(self, path: str) -> Location:
        """Best location for a field path: the field itself, else its nearest parent."""
        return nearest(self.field_locs, path, self.loc)


@dataclass(frozen=True, slots=True)
class Account:
    doc: Document
    type: AccountType
    members: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.doc.name


@dataclass(frozen=True, slots=True)
class Resources:
    cpu: str = "1"  # Kubernetes quantity, as written
    memory: str = "512Mi"  # Kubernetes quantity, as written
    gpu: int = 0


@dataclass(frozen=True, slots=True)
class Model:
    path: str  # data://OWNER/COLLECTION/FILE
    digest: str  # sha256:<64 hex>


@dataclass(frozen=True, slots=True)
class Version:
    commit: str  # 40 hex
    version: str | None  # semantic version; None only when unpublished
    visibility: Visibility
    compiled_at: str  # RFC 3339 timestamp, as written
    model: Model
    index: int = 0  # position in spec.versions, for diagnostics
    warmup_timeout: float = DEFAULT_WARMUP_TIMEOUT  # seconds a replica may take to load


@dataclass(frozen=True, slots=True)
class Algorithm:
    doc: Document
    owner: str
    processor: Processor
    resources: Resources
    image: str
    entrypoint: str  # MODULE:FUNCTION
    versions: tuple[Version, ...]
    # OWNER/NAME: an algorithm's identity; made once (it keys every pool of the algorithm)
    ref: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ref", f"{self.owner}/{self.doc.name}")

    @property
    def name(self) -> str:
        return self.doc.name


@dataclass(frozen=True, slots=True)
class Reservation:
    doc: Document
    caller: str
    algorithm: str  # OWNER/NAME[/VERSION], as written
    version_type: VersionType
    replicas: int

    @property
    def name(self) -> str:
        return self.doc.name

    @property
    def algorithm_ref(self) -> str:
        """OWNER/NAME part of `algorithm`."""
        return "/".join(self.algorithm.split("/")[:2])

    @property
    def version_selector(self) -> str | None:
        """VERSION part of `algorithm`, if written."""
        parts = self.algorithm.split("/", 2)
        return parts[2] if len(parts) == 3 else None


@dataclass(frozen=True, slots=True)
class CapacityLimit:
    doc: Document
    account: str | None = None
    max_engines: int | None = None
    max_gpus: int | None = None
    algorithm: str | None = None  # OWNER/NAME/VERSION (semantic version or commit)
    minimum_parallel_capacity: int | None = None
    maximum_parallel_capacity: int | None = None

    @property
    def name(self) -> str:
        return self.doc.name

    @property
    def algorithm_ref(self) -> str | None:
        """OWNER/NAME part of `algorithm` (version scope), else None."""
        if self.algorithm is None:
            return None
        return "/".join(self.algorithm.split("/", 2)[:2])

    @property
    def version_selector(self) -> str | None:
        """VERSION part of `algorithm` (a semantic version or a commit), else None."""
        parts = (self.algorithm or "").split("/", 2)
        return parts[2] if len(parts) == 3 else None


@dataclass(frozen=True, slots=True)
class Safety:
    max_deletions: int = 10
    max_delete_percent: int = 50


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """A node of the embedded local runtime, as declared in Settings.spec.local.nodes."""

    name: str
    processor: Processor
    cpu: str
    memory: str
    gpu: int = 0
    pods: int = 32


@dataclass(frozen=True, slots=True)
class KubernetesSettings:
    namespace_prefix: str = "acct-"
    gpu_node_selector: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    gpu_tolerations: tuple[Mapping[str, Any], ...] = ()
    instance: str | None = None  # None: the namespace_prefix
    data_volume: Mapping[str, Any] | None = None  # a pod volume source, mounted at /data


@dataclass(frozen=True, slots=True)
class Settings:
    doc: Document | None = None  # None when the repo has no Settings document
    safety: Safety = field(default_factory=Safety)
    local_nodes: tuple[NodeSpec, ...] | None = None  # None: derive from this machine
    kubernetes: KubernetesSettings = field(default_factory=KubernetesSettings)


@dataclass(frozen=True, slots=True)
class PoolCount:
    """How many warm replicas one (caller, OWNER/NAME, commit) gets, and why.
    Counted by `resolve.aggregate_pools`; kept here, with the values it counts, so that
    the model never imports the resolver."""

    caller: str
    algorithm: Algorithm
    version: Version
    replicas: int
    sources: tuple[str, ...]  # reservation names, then "CapacityLimit/NAME" for a minimum
    reasons: tuple[str, ...]  # one human reason per source


PoolKey = tuple[str, str, str]  # (caller, OWNER/NAME, commit)


@dataclass(frozen=True, slots=True)
class Config:
    """A whole, validated config repository.

    Mappings are keyed by identity: accounts by name, algorithms by OWNER/NAME,
    reservations and limits by metadata.name. `commit` is the Git commit the
    files came from, when known.

    `pool_counts`: what `resolve.aggregate_pools` counted for this config, set
    by the loader (which needs the counts for the capacity rules) so that
    compiling the config does not count again. Not part of the value (no
    equality, no repr) and not an init field, so `dataclasses.replace` never
    carries stale counts over to a changed config; None: not counted yet.
    """

    root: str
    accounts: Mapping[str, Account]
    algorithms: Mapping[str, Algorithm]
    reservations: Mapping[str, Reservation]
    limits: Mapping[str, CapacityLimit]
    settings: Settings = field(default_factory=Settings)
    commit: str | None = None
    pool_counts: Mapping[PoolKey, PoolCount] | None = field(
        default=None, init=False, compare=False, repr=False)
    # The digest of the code each entrypoint module loads ({module: "sha256:..."}), set by
    # the loader where the code root exists (config.code); folded into the warm pools.
    # Empty: no code root (Kubernetes: the code is in the image).
    code_digests: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({}), init=False, compare=False, repr=False)
