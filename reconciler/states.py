"""State values shared by the pipeline and the runtimes.

`DesiredState` is what the config compiles to; `LiveState` is what a runtime
observes, in the same shapes plus status and a revision token. Both are
immutable. Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

DEFAULT_WARMUP_TIMEOUT = 120.0  # seconds (SPEC.md section 2: warmupTimeout)


class ResourceKind(StrEnum):
    TENANT = "Tenant"
    QUOTA = "Quota"
    WARM_POOL = "WarmPool"


def pool_id(caller: str, owner: str, name: str, commit: str) -> str:
    """The identity of a warm pool: (caller, OWNER/NAME, resolved commit).
    Names cannot hold dots, so the id is unambiguous and readable."""
    return f"{caller}.{owner}.{name}.{commit[:12]}"


# A live object a runtime found outside the place the config now gives it (Kubernetes: a
# namespace of the old namespacePrefix) has the id `ID@WHERE`; config ids never hold "@".
ELSEWHERE = "@"


@dataclass(frozen=True, slots=True)
class Tenant:
    """A calling account's space on the runtime (a namespace on Kubernetes)."""

    account: str
    type: str = "user"  # user | organization

    @property
    def id(self) -> str:
        return self.account


@dataclass(frozen=True, slots=True)
class Quota:
    """An account CapacityLimit, enforced by the runtime too."""

    account: str
    max_engines: int
    max_gpus: int | None = None
    source: str = ""  # the CapacityLimit's name (display only)

    @property
    def id(self) -> str:
        return self.account


@dataclass(frozen=True, slots=True)
class WarmPool:
    """Warm replicas of one algorithm version kept for one caller."""

    id: str
    caller: str
    owner: str
    name: str
    commit: str
    version: str | None  # None for an unpublished version
    replicas: int
    processor: str  # cpu | gpu
    cpu: str  # per replica, Kubernetes quantity
    memory: str  # per replica, Kubernetes quantity
    gpu: int  # per replica
    image: str
    entrypoint: str  # MODULE:FUNCTION
    model_path: str  # data://OWNER/COLLECTION/FILE
    model_digest: str  # sha256:<hex>
    visibility: str = "public"
    sources: tuple[str, ...] = ()  # reservation names; "CapacityLimit/NAME" for minimum capacity
    reason: str = ""  # display only: why the pool exists
    # Where the runtime may place replicas, runtime-neutral: for gpu pools the canonical JSON
    # {"nodeSelector": {...}, "tolerations": [...]} of Settings.kubernetes ("" when neither is
    # set, and for cpu pools). The Kubernetes runtime builds the pod's scheduling from it; the
    # local runtime ignores it. A change is an `update`.
    scheduling: str = ""
    # The digest of the code the entrypoint loads from the code root (config.code): a
    # change is a rolling `reload`, like a model digest change. "" where there is no code
    # root (Kubernetes: the image is the code); then it is left out of the JSON form.
    code_digest: str = ""
    # Seconds a replica may take to load (the version's warmupTimeout); the runtime stops
    # one that is not warm by then. Left out of to_json() at its default, so plans and
    # stored specs written before it existed read the same.
    warmup_timeout: float = DEFAULT_WARMUP_TIMEOUT
    # Live pools only: what the runtime found changed by hand in fields the pool does not
    # model (e.g. a Deployment's strategy or probes), described; "" when nothing is. A
    # desired pool has "", so such drift is an `update` that writes the pool again.
    drift: str = ""
    # Live pools only: whether writing the drift back replaces replicas (it is in what the
    # replicas run: on Kubernetes, the pod template). False when it is not (a
    # PodDisruptionBudget, a Deployment's labels or strategy): such an update needs no room
    # for an extra replica. Left out of to_json() at its default.
    drift_rolls: bool = True

    @property
    def algorithm(self) -> str:
        return f"{self.owner}/{self.name}"

    def to_json(self) -> dict[str, Any]:
        # Same result as dataclasses.asdict (every field is a plain value), without its
        # recursive deep copy, which dominated writing a 10,000-pool plan.
        data = {name: getattr(self, name) for name in _WARM_POOL_FIELDS}
        data["sources"] = list(self.sources)
        if not self.code_digest:
            del data["code_digest"]  # plans, stores and annotations from before it stay equal
        if self.warmup_timeout == DEFAULT_WARMUP_TIMEOUT:
            del data["warmup_timeout"]
        if not self.drift:
            del data["drift"]  # only live pools have it: plans and annotations stay as before
        if self.drift_rolls:
            del data["drift_rolls"]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WarmPool:
        values = dict(data)
        values["sources"] = tuple(values.get("sources") or ())
        return cls(**values)


_WARM_POOL_FIELDS = tuple(f.name for f in dataclasses.fields(WarmPool))

# Which WarmPool fields a change in means which plan op. Other fields
# (version, visibility, sources, reason) are display only and never diffed.
SCALE_FIELDS = ("replicas",)
RELOAD_FIELDS = ("model_path", "model_digest", "code_digest")
UPDATE_FIELDS = ("processor", "cpu", "memory", "gpu", "image", "entrypoint", "scheduling",
                 "warmup_timeout", "drift")


@dataclass(frozen=True, slots=True)
class DesiredState:
    tenants: tuple[Tenant, ...] = ()
    quotas: tuple[Quota, ...] = ()
    pools: tuple[WarmPool, ...] = ()

    def pool(self, pool_id_: str) -> WarmPool | None:
        return next((p for p in self.pools if p.id == pool_id_), None)


@dataclass(frozen=True, slots=True)
class ReplicaStatus:
    """One running replica: a pid on the local runtime, a pod name on Kubernetes."""

    id: str
    state: str  # starting | warming | ready | failed | stopping
    model_digest: str | None = None
    started_at: str | None = None  # RFC 3339
    error: str | None = None


@dataclass(frozen=True, slots=True)
class PoolStatus:
    ready: int = 0
    error: str | None = None
    replicas: tuple[ReplicaStatus, ...] = ()


@dataclass(frozen=True, slots=True)
class LiveState:
    """What a runtime holds now: only objects the reconciler created.

    `revision` changes whenever any of it changes; plans record it in their
    fingerprint so that a stale plan file is refused."""

    tenants: tuple[Tenant, ...] = ()
    quotas: tuple[Quota, ...] = ()
    pools: tuple[WarmPool, ...] = ()
    status: Mapping[str, PoolStatus] = field(default_factory=lambda: MappingProxyType({}))
    revision: str = "0"
    # What the runtime saw that a plan should mention (e.g. another writer of fields the
    # reconciler sets); each becomes a warning of the plan.
    warnings: tuple[str, ...] = ()

    def pool(self, pool_id_: str) -> WarmPool | None:
        return next((p for p in self.pools if p.id == pool_id_), None)

    def ready(self, pool_id_: str) -> int:
        status = self.status.get(pool_id_)
        return status.ready if status else 0


@dataclass(frozen=True, slots=True)
class Node:
    """A place replicas run, with allocatable capacity. A node with gpu > 0 is a gpu node."""

    name: str
    cpu_millis: int
    memory_bytes: int
    pods: int
    gpu: int = 0
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    emulated_gpu: bool = False  # local runtime: a declared gpu node with no real GPU

    @property
    def processor(self) -> str:
        return "gpu" if self.gpu > 0 else "cpu"


def pools_json(live: LiveState) -> list[dict[str, Any]]:
    """Each live pool with its status, as `reconciler status --format json` and the
    daemon's /status show it (SPEC.md section 4): what the store wants (`replicas`),
    how many are warm now (`ready`), and one entry per running replica (`pid`: the
    process id on the local runtime, the pod name on Kubernetes)."""
    items = []
    for pool in live.pools:
        status = live.status.get(pool.id)
        items.append({
            "id": pool.id, "caller": pool.caller, "algorithm": pool.algorithm,
            "version": pool.version, "commit": pool.commit, "replicas": pool.replicas,
            "ready": status.ready if status else 0, "modelDigest": pool.model_digest,
            "error": status.error if status else None,
            "replicaStatus": [
                {"pid": int(r.id) if r.id.isdigit() else r.id, "state": r.state,
                 "modelDigest": r.model_digest, "startedAt": r.started_at}
                for r in (status.replicas if status else ())],
        })
    return items
