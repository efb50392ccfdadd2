"""Whether the warm pools are what was reserved: shared by `status` and `wait`.

A pool is healthy when as many replicas are ready (warm, with the pool's
current model) as it reserves. On the local runtime the agent must also be
running while any pool wants replicas: without it nothing starts or restarts
them. A Kubernetes cluster has no agent of ours (its kubelets run the pods),
so only the pools are looked at there. A pool still warming right after an
apply is below its reservation like any other: `status` reports it (exit 1,
saying it is warming), and `wait --ready` is the command that waits for it.
"""

from __future__ import annotations

from typing import Any

WARMING = ("starting", "warming")


def select(data: dict[str, Any], caller: str | None, algorithm: str | None) -> dict[str, Any]:
    """`data` (status_json) with only the pools of `caller` and `algorithm` (OWNER/NAME)."""
    if not caller and not algorithm:
        return data
    pools = [p for p in data["pools"] if (not caller or p["caller"] == caller)
             and (not algorithm or p["algorithm"] == algorithm)]
    return {**data, "pools": pools}


def pool_problem(pool: dict[str, Any]) -> str | None:
    """Why a pool is below its reservation, or None."""
    if pool["ready"] >= pool["replicas"]:
        return None
    states = [r["state"] for r in pool.get("replicaStatus") or ()]
    warming = sum(1 for s in states if s in WARMING)
    why = f"{pool['ready']}/{pool['replicas']} ready"
    if pool.get("error"):
        why += f": {pool['error']}"
    elif warming:
        why += f" ({warming} warming)"
    return f"pool {pool['id']} ({pool['caller']}, {pool['algorithm']}) is below its " \
           f"reservation: {why}"


def problems(data: dict[str, Any], runtime: str) -> list[str]:
    """Everything that makes `status` exit 1 and `wait --ready` keep waiting."""
    found = [why for pool in data["pools"] if (why := pool_problem(pool))]
    agent = data.get("agent") or {}
    wanted = any(p["replicas"] for p in data["pools"])
    if runtime == "local" and wanted and not agent.get("running"):
        found.append("the local agent is not running: nothing starts or restarts replicas "
                     "(start `reconciler daemon`, or `reconciler agent` beside a daemon "
                     "run with --no-agent)")
    return found
