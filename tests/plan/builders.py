"""Build Config values, live states and nodes from compact Python data (test helpers).

The config model is plain frozen dataclasses, so engine tests build it
directly instead of going through YAML: `make_config(account(...), algo(...),
resv(...))`. `apply_plan` is a pure, faithful model of what an executor does
to a live state, used by the property tests.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from types import MappingProxyType
from typing import Any

from reconciler.config.model import (
    Account,
    AccountType,
    Algorithm,
    CapacityLimit,
    Config,
    Document,
    Kind,
    Location,
    Metadata,
    Model,
    Processor,
    Reservation,
    Resources,
    Safety,
    Settings,
    Version,
    VersionType,
    Visibility,
)
from reconciler.plan.plans import Op, Plan
from reconciler.quantities import cpu_millis, memory_bytes
from reconciler.states import (
    DesiredState,
    LiveState,
    Node,
    Quota,
    ResourceKind,
    Tenant,
    WarmPool,
    pool_id,
)


def commit_of(label: str) -> str:
    """A stable 40-hex commit for a version label."""
    return hashlib.sha1(label.encode()).hexdigest()


def digest_of(label: str) -> str:
    return "sha256:" + hashlib.sha256(label.encode()).hexdigest()


def _doc(kind: Kind, name: str, description: str = "") -> Document:
    return Document(kind, Metadata(name, description=description), Location(f"{name}.yaml", 1, 1))


def account(name: str, *members: str, org: bool | None = None) -> Account:
    is_org = bool(members) if org is None else org
    return Account(_doc(Kind.ACCOUNT, name),
                   AccountType.ORGANIZATION if is_org else AccountType.USER, tuple(members))


def ver(label: str | None, *, visibility: str = "public", commit: str | None = None,
        compiled: str = "2026-11-01T10:00:00Z", model: str = "m1", index: int = 0) -> Version:
    return Version(commit or commit_of(label or compiled), label, Visibility(visibility),
                   compiled, Model(f"data://x/models/{model}.json", digest_of(model)), index)


def algo(ref: str, *versions: Version, processor: str = "cpu", cpu: str = "1",
         memory: str = "512Mi", gpu: int = 0, image: str = "registry.example/img",
         entrypoint: str = "mod:apply") -> Algorithm:
    owner, name = ref.split("/")
    indexed = tuple(Version(v.commit, v.version, v.visibility, v.compiled_at, v.model, i)
                    for i, v in enumerate(versions))
    return Algorithm(_doc(Kind.ALGORITHM, name), owner, Processor(processor),
                     Resources(cpu, memory, gpu), image, entrypoint, indexed)


def resv(name: str, caller: str, algorithm: str, vtype: str = "latest-public",
         replicas: int = 1) -> Reservation:
    return Reservation(_doc(Kind.RESERVATION, name), caller, algorithm, VersionType(vtype),
                       replicas)


def account_limit(name: str, account_name: str, max_engines: int,
                  max_gpus: int | None = None) -> CapacityLimit:
    return CapacityLimit(_doc(Kind.CAPACITY_LIMIT, name), account=account_name,
                         max_engines=max_engines, max_gpus=max_gpus)


def version_limit(name: str, algorithm: str, minimum: int | None = None,
                  maximum: int | None = None) -> CapacityLimit:
    return CapacityLimit(_doc(Kind.CAPACITY_LIMIT, name), algorithm=algorithm,
                         minimum_parallel_capacity=minimum, maximum_parallel_capacity=maximum)


def make_config(*objects: Any, safety: Safety | None = None, commit: str | None = None) -> Config:
    """A Config from accounts, algorithms, reservations and limits in any order."""
    by_type: dict[type, dict[str, Any]] = {Account: {}, Algorithm: {}, Reservation: {},
                                           CapacityLimit: {}}
    for obj in objects:
        key = obj.ref if isinstance(obj, Algorithm) else obj.name
        by_type[type(obj)][key] = obj
    return Config(
        root="/config",
        accounts=MappingProxyType(by_type[Account]),
        algorithms=MappingProxyType(by_type[Algorithm]),
        reservations=MappingProxyType(by_type[Reservation]),
        limits=MappingProxyType(by_type[CapacityLimit]),
        settings=Settings(safety=safety or Safety()),
        commit=commit,
    )


def node(name: str, cpu: str = "8", memory: str = "16Gi", gpu: int = 0, pods: int = 32) -> Node:
    return Node(name, cpu_millis(cpu), memory_bytes(memory), pods, gpu)


def big_nodes() -> list[Node]:
    """Room for everything the tests usually ask for."""
    return [node("cpu-1", "1000", "4000Gi", pods=10_000),
            node("gpu-1", "1000", "4000Gi", gpu=1000, pods=10_000)]


def apply_plan(live: LiveState, plan: Plan, revision: str = "next") -> LiveState:
    """What an executor leaves behind after applying every action of `plan` to `live`."""
    objects: dict[ResourceKind, dict[str, Any]] = {
        ResourceKind.TENANT: {t.id: t for t in live.tenants},
        ResourceKind.QUOTA: {q.id: q for q in live.quotas},
        ResourceKind.WARM_POOL: {p.id: p for p in live.pools},
    }
    for action in plan.actions:
        if action.op is Op.DELETE:
            objects[action.kind].pop(action.id, None)
        else:
            objects[action.kind][action.id] = action.after
    return LiveState(
        tenants=_sorted(objects[ResourceKind.TENANT].values()),
        quotas=_sorted(objects[ResourceKind.QUOTA].values()),
        pools=_sorted(objects[ResourceKind.WARM_POOL].values()),
        revision=revision,
    )


def _sorted(objs: Iterable[Tenant | Quota | WarmPool]) -> tuple[Any, ...]:
    return tuple(sorted(objs, key=lambda o: o.id))


def pool(caller: str, algorithm: str = "acme/sentiment", version: str = "1.2.0",
         replicas: int = 1, **fields: Any) -> WarmPool:
    """A WarmPool with sensible defaults; `fields` override any attribute."""
    owner, name = algorithm.split("/")
    commit = fields.pop("commit", commit_of(version))
    values: dict[str, Any] = dict(
        id=pool_id(caller, owner, name, commit), caller=caller, owner=owner, name=name,
        commit=commit, version=version, replicas=replicas, processor="cpu", cpu="1",
        memory="512Mi", gpu=0, image="registry.example/img", entrypoint="mod:apply",
        model_path="data://x/models/m1.json", model_digest=digest_of("m1"),
        reason=f"reservation {caller}-{name}")
    values.update(fields)
    return WarmPool(**values)


def desired_of(*pools: WarmPool, quotas: tuple[Quota, ...] = ()) -> DesiredState:
    """A DesiredState with a tenant per caller, like compile_config makes."""
    callers = sorted({p.caller for p in pools})
    return DesiredState(tuple(Tenant(c) for c in callers), quotas,
                        tuple(sorted(pools, key=lambda p: p.id)))


def live_of(desired: DesiredState, revision: str = "r1") -> LiveState:
    return LiveState(desired.tenants, desired.quotas, desired.pools, revision=revision)
