"""Config -> DesiredState: tenants, quotas and warm pools. Pure.

The counting of reservations into pools lives in one place,
`config.resolve.aggregate_pools` (version resolution, access rules,
minimumParallelCapacity); this module only turns its counts into the runtime
vocabulary of `states`. Every tuple is sorted by id, so the same config
always compiles to the same value (and so to the same plan fingerprint).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from reconciler.config.model import CapacityLimit, Config, KubernetesSettings
from reconciler.config.resolve import PoolCount, aggregate_pools
from reconciler.states import DesiredState, Quota, Tenant, WarmPool, pool_id


def compile_config(config: Config) -> DesiredState:
    """Tenants (one per calling account), quotas (account CapacityLimits), warm pools."""
    gpu_scheduling = scheduling_json(config.settings.kubernetes)
    # the loader has counted already (its capacity rules need the counts); a Config
    # made another way is counted here
    counts = config.pool_counts if config.pool_counts is not None else aggregate_pools(config)
    code = config.code_digests
    pools = sorted((_warm_pool(count, gpu_scheduling, code) for count in counts.values()),
                   key=lambda pool: pool.id)
    callers = sorted({pool.caller for pool in pools})
    tenants = tuple(Tenant(caller, str(config.accounts[caller].type)) for caller in callers)
    quotas = compile_quotas(config.limits.values())
    return DesiredState(tenants=tenants, quotas=quotas, pools=tuple(pools))


def scheduling_json(settings: KubernetesSettings) -> str:
    """The canonical JSON of where gpu replicas may run: `{"nodeSelector": {...},
    "tolerations": [...]}` with only the non-empty parts (and a toleration's empty fields
    dropped, as the API server drops them), sorted keys, no spaces; "" when neither is set."""
    data: dict[str, Any] = {}
    if settings.gpu_node_selector:
        data["nodeSelector"] = dict(settings.gpu_node_selector)
    tolerations = [_toleration(t) for t in settings.gpu_tolerations]
    if tolerations:
        data["tolerations"] = tolerations
    return json.dumps(data, sort_keys=True, separators=(",", ":")) if data else ""


def _toleration(toleration: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in toleration.items() if value not in (None, "")}


def _warm_pool(count: PoolCount, gpu_scheduling: str, code: Mapping[str, str]) -> WarmPool:
    algorithm, version = count.algorithm, count.version
    gpu = str(algorithm.processor) == "gpu" or algorithm.resources.gpu > 0
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
        scheduling=gpu_scheduling if gpu else "",
        code_digest=code.get(algorithm.entrypoint.partition(":")[0], "") if code else "",
        warmup_timeout=version.warmup_timeout,
    )


def compile_quotas(limits: Iterable[CapacityLimit]) -> tuple[Quota, ...]:
    """One quota per account-scope CapacityLimit, sorted by account. The rules
    allow at most one such limit per account, so there is nothing to merge."""
    quotas = [Quota(limit.account, limit.max_engines, limit.max_gpus, limit.name)
              for limit in limits if limit.account and limit.max_engines is not None]
    return tuple(sorted(quotas, key=lambda quota: quota.account))
