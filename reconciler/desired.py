"""Config -> DesiredState: tenants, quotas and warm pools. Pure.

The counting of reservations into pools lives in one place,
`config.resolve.aggregate_pools` (version resolution, access rules,
minimumParallelCapacity); this module only turns its counts into the runtime
vocabulary of `states`. Every tuple is sorted by id, so the same config
always compiles to the same value (and so to the same plan fingerprint).
"""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.config.model import CapacityLimit, Config
from reconciler.config.resolve import PoolCount, aggregate_pools
from reconciler.states import DesiredState, Quota, Tenant, WarmPool, pool_id


def compile_config(config: Config) -> DesiredState:
    """Tenants (one per calling account), quotas (account CapacityLimits), warm pools."""
    pools = sorted((_warm_pool(count) for count in aggregate_pools(config).values()),
                   key=lambda pool: pool.id)
    callers = sorted({pool.caller for pool in pools})
    tenants = tuple(Tenant(caller, str(config.accounts[caller].type)) for caller in callers)
    quotas = compile_quotas(config.limits.values())
    return DesiredState(tenants=tenants, quotas=quotas, pools=tuple(pools))


def _warm_pool(count: PoolCount) -> WarmPool:
    algorithm, version = count.algorithm, count.version
    return WarmPool(
        id=pool_id(count.caller, algorithm.owner, algorithm.name, version.commit),
        caller=count.caller,
        owner=algorithm.owner,
        name=algorithm.name,
        commit=version.commit,
        version=version.version,
        replicas=count.replicas,
        processor=str(algorithm.processor),
        cpu=algorithm.resources.cpu,
        memory=algorithm.resources.memory,
        gpu=algorithm.resources.gpu,
        image=algorithm.image,
        entrypoint=algorithm.entrypoint,
        model_path=version.model.path,
        model_digest=version.model.digest,
        visibility=str(version.visibility),
        sources=count.sources,
        reason="; ".join(count.reasons),
    )


def compile_quotas(limits: Iterable[CapacityLimit]) -> tuple[Quota, ...]:
    """One quota per account that has account-scope limits.

    Should two limits name the same account, the stricter value of each
    field wins (both limits must hold), and the quota names both sources.
    """
    merged: dict[str, Quota] = {}
    for limit in sorted(limits, key=lambda lim: lim.name):
        if not limit.account or limit.max_engines is None:
            continue
        quota = Quota(limit.account, limit.max_engines, limit.max_gpus, limit.name)
        known = merged.get(limit.account)
        if known is not None:
            quota = Quota(
                limit.account,
                min(known.max_engines, quota.max_engines),
                _stricter(known.max_gpus, quota.max_gpus),
                f"{known.source}, {quota.source}",
            )
        merged[limit.account] = quota
    return tuple(merged[account] for account in sorted(merged))


def _stricter(left: int | None, right: int | None) -> int | None:
    if left is None:
        return right
    if right is None:
        return left
    return min(left, right)
