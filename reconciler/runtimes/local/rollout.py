"""The agent's decisions, pure: how many replicas a pool may run (quotas) and
which replicas to start or stop this pass (rolling replace, scale, repair).

Kept apart from the process handling so every rule here is a plain function
of the observed rows, testable without starting anything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reconciler.states import Quota, WarmPool

LIVE = ("starting", "warming", "ready")


@dataclass(frozen=True, slots=True)
class Rep:
    """What a decision needs to know about one replica row."""

    id: int
    spec_hash: str
    state: str

    @property
    def ready(self) -> bool:
        return self.state == "ready"


@dataclass(frozen=True, slots=True)
class Step:
    starts: int = 0
    stops: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Allotment:
    replicas: int  # what the pool may run
    error: str | None = None  # why that is less than it wants


def allot(pools: Sequence[WarmPool], quotas: Mapping[str, Quota],
          pods: Mapping[str, int] | None = None) -> dict[str, Allotment]:
    """Replicas per pool under each caller's maxEngines / maxGpus and the nodes' pods.

    `pools` come oldest first (the store's creation order): an older pool
    keeps its allotment and a newer one gets what is left, so the new pool
    of a version move never takes replicas from the pool it replaces, and
    scaling the old pool down by one frees exactly one replica for the new.
    The store may hold more than a quota allows (a plan checks capacity, but a
    quota can be tightened later); the runtime enforces it too. `pods`: how
    many replicas the nodes of each processor class hold (cpu, gpu); None when
    the store records no nodes (then only quotas limit)."""
    result: dict[str, Allotment] = {}
    engines: dict[str, int] = {}
    gpus: dict[str, int] = {}
    placed: dict[str, int] = {}
    for pool in pools:
        allowed, limit = pool.replicas, ""
        quota = quotas.get(pool.caller)
        if quota is not None:
            allowed = max(0, min(allowed, quota.max_engines - engines.get(pool.caller, 0)))
            limit = f"quota of {pool.caller} (maxEngines {quota.max_engines})"
            if quota.max_gpus is not None and pool.gpu > 0:
                by_gpu = max(0, (quota.max_gpus - gpus.get(pool.caller, 0)) // pool.gpu)
                if by_gpu < allowed:
                    allowed, limit = by_gpu, f"quota of {pool.caller} (maxGpus {quota.max_gpus})"
        if pods is not None:
            by_pods = max(0, pods.get(pool.processor, 0) - placed.get(pool.processor, 0))
            if by_pods < allowed:
                allowed = by_pods
                limit = (f"the {pool.processor} nodes' {pods.get(pool.processor, 0)} pods "
                         f"(Settings.local.nodes)")
        engines[pool.caller] = engines.get(pool.caller, 0) + allowed
        gpus[pool.caller] = gpus.get(pool.caller, 0) + allowed * pool.gpu
        placed[pool.processor] = placed.get(pool.processor, 0) + allowed
        error = None
        if allowed < pool.replicas:
            error = f"{limit} allows {allowed} of {pool.replicas} replicas"
        result[pool.id] = Allotment(allowed, error)
    return result


def step(current: str, want: int, replicas: Sequence[Rep], *, in_place: bool,
         room: int, may_start: bool) -> Step:
    """One pass of making a pool's replicas match its spec.

    `current` is the pool's spec hash; replicas with another hash are old.
    A roll starts ONE new replica, and an old one is stopped only while the
    ready count stays >= `want` (surge). With `in_place`, or when the caller's
    quota leaves no `room` for a surge, one old replica is stopped first and
    replaced (want-1 kept warm). `may_start` is False while a failing pool backs off.

    `room` is how many more live replicas the caller's quota allows as the pass
    began; every replica this pass stops frees one. Invariant: unless `in_place`,
    a roll never takes the ready count below `want` when the quota allows want+1
    (tests/runtime/test_rollout.py simulates passes to check it).
    """
    live = [r for r in replicas if r.state in LIVE]
    new = [r for r in live if r.spec_hash == current]
    old = [r for r in live if r.spec_hash != current]
    stops = [r.id for r in old if not r.ready]  # an old replica not serving helps no one
    old = sorted((r for r in old if r.ready), key=lambda r: r.id)
    if len(new) > want:  # scale down: drop the least useful (not ready, newest) first
        ranked = sorted(new, key=lambda r: (r.ready, -r.id))
        stops += [r.id for r in ranked[:len(new) - want]]
        new = ranked[len(new) - want:]
    new_ready = sum(1 for r in new if r.ready)
    excess = new_ready + len(old) - want
    while excess > 0 and old:
        stops.append(old.pop(0).id)
        excess -= 1
    room += len(stops)  # every replica stopped so far was live: its slot is free now
    missing = want - len(new)
    if missing <= 0 or not may_start:
        return Step(0, tuple(stops))
    if not old:
        return Step(min(missing, max(room, 0)), tuple(stops))
    if new_ready < len(new):  # a new replica is still warming: one at a time
        return Step(0, tuple(stops))
    if in_place or room <= 0:  # no surge: replace an old replica instead (want-1 warm)
        if len(new) + len(old) >= want:
            stops.append(old.pop(0).id)
            room += 1
        return Step(1 if room > 0 else 0, tuple(stops))
    return Step(1, tuple(stops))
