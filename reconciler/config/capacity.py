"""Capacity arithmetic that needs no runtime (SPEC.md section 3, "Capacity").

Counts come from `resolve.aggregate_pools`, the one place reservations are
counted into warm pools, so validation and planning can never disagree about
how many replicas a caller or a version has. Placement on nodes needs the
runtime's nodes and belongs to the planner.
"""

from __future__ import annotations

from collections import defaultdict

from reconciler.config.model import CapacityLimit, Config
from reconciler.config.resolve import PoolCount, limit_target
from reconciler.config.rules import diag
from reconciler.errors import Diagnostic

MAX_NAMED_SOURCES = 5


def check(config: Config, pools: list[PoolCount]) -> list[Diagnostic]:
    """Limits against the pools that `aggregate_pools(config)` counted."""
    by_caller: dict[str, list[PoolCount]] = defaultdict(list)
    by_version: dict[tuple[str, str], list[PoolCount]] = defaultdict(list)
    for pool in pools:
        by_caller[pool.caller].append(pool)
        by_version[(pool.algorithm.ref, pool.version.commit)].append(pool)
    out: list[Diagnostic] = []
    for limit in sorted(config.limits.values(), key=lambda lim: lim.name):
        if limit.account is not None:
            out += _account_limit(limit, by_caller.get(limit.account, []))
        elif limit.algorithm is not None:
            out += _version_limit(limit, config, by_version)
    return out


def _sources(pools: list[PoolCount]) -> str:
    """The contributing reservations, named (a few) and counted (all)."""
    parts = [f"{source} ({pool.replicas})" if len(pool.sources) == 1 else source
             for pool in pools for source in pool.sources]
    shown = ", ".join(parts[:MAX_NAMED_SOURCES])
    more = len(parts) - MAX_NAMED_SOURCES
    return shown + (f" and {more} more" if more > 0 else "")


def _account_limit(limit: CapacityLimit, pools: list[PoolCount]) -> list[Diagnostic]:
    out = []
    engines = sum(pool.replicas for pool in pools)
    if limit.max_engines is not None and engines > limit.max_engines:
        out.append(diag(limit.doc, "spec.maxEngines",
                        f"account {limit.account} reserves {engines} warm replicas, over its "
                        f"maxEngines {limit.max_engines}: {_sources(pools)}"))
    gpu_pools = [pool for pool in pools if pool.algorithm.resources.gpu > 0]
    gpus = sum(pool.replicas * pool.algorithm.resources.gpu for pool in gpu_pools)
    if limit.max_gpus is not None and gpus > limit.max_gpus:
        out.append(diag(limit.doc, "spec.maxGpus",
                        f"account {limit.account} reserves {gpus} GPUs, over its maxGpus "
                        f"{limit.max_gpus}: {_sources(gpu_pools)}"))
    return out


def _version_limit(limit: CapacityLimit, config: Config,
                   by_version: dict[tuple[str, str], list[PoolCount]]) -> list[Diagnostic]:
    if limit.maximum_parallel_capacity is None:
        return []
    target = limit_target(limit, config.algorithms)
    if target is None:
        return []  # reported by the reference rules
    algorithm, version = target
    pools = by_version.get((algorithm.ref, version.commit), [])
    total = sum(pool.replicas for pool in pools)
    if total <= limit.maximum_parallel_capacity:
        return []
    return [diag(limit.doc, "spec.maximumParallelCapacity",
                 f"{algorithm.ref} {version.version or version.commit[:12]} has {total} warm "
                 f"replicas across callers, over its maximumParallelCapacity "
                 f"{limit.maximum_parallel_capacity}: {_sources(pools)}")]
