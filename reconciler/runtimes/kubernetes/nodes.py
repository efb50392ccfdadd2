"""Nodes as the scheduler sees them, for placement. Pure: plain dicts in, Nodes out.

Placement (plan/placement.py) puts gpu pools only on nodes with allocatable
GPUs and cpu pools only on the others, so each class is judged by what its
pools tolerate:
- a node that is cordoned, or reports Ready other than True, is left out;
- a cpu node with a NoSchedule or NoExecute taint is left out (cpu pools
  carry no tolerations);
- a gpu node is left out when it misses Settings.kubernetes.gpuNodeSelector,
  or has such a taint that gpu pools do not tolerate (gpuTolerations plus
  `nvidia.com/gpu:NoSchedule`, which every gpu pool carries);
- what is left is the allocatable capacity minus the requests of pods that
  already run there and that this reconciler instance does not manage
  (non-terminated, with spec.nodeName): someone else's workloads, system
  daemons, another instance's engines. The reconciler's own pods are not
  subtracted: placement counts every desired replica itself. A gpu node
  whose GPUs are all taken is left out (it stays a gpu node, full).
Every allocatable value is a Kubernetes quantity (`pods: 1k` is 1000). When
the cluster has gpu nodes and none is left, unusable_gpu_nodes() says why (a
mistyped gpuNodeSelector reads as "there are no gpu nodes" in placement).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from reconciler.config.model import KubernetesSettings
from reconciler.quantities import cpu_millis, memory_bytes, parse
from reconciler.runtimes.kubernetes import manifests as m
from reconciler.states import Node

Obj = Mapping[str, Any]
HARD_EFFECTS = ("NoSchedule", "NoExecute")
DONE_PHASES = ("Succeeded", "Failed")
# What nodes() lists to find the pods to subtract: scheduled and not finished...
FOREIGN_POD_FIELDS = "spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed"


def foreign_pod_labels(settings: KubernetesSettings) -> str:
    """...and not of this instance (pods of ours carry its label; a pod of nobody or of
    another instance does not)."""
    return f"{m.INSTANCE_LABEL}!={m.instance_label(settings)}"


def unschedulable(node: Obj) -> str | None:
    """Why no pool goes to the node: cordoned, or Ready other than True (a node that
    reports no conditions at all counts as Ready). None: pools may go there."""
    if (node.get("spec") or {}).get("unschedulable"):
        return "is cordoned"
    conditions = (node.get("status") or {}).get("conditions") or ()
    ready = [c for c in conditions if c.get("type") == "Ready"]
    return "is not Ready" if ready and ready[0].get("status") != "True" else None


def has_gpus(node: Obj) -> bool:
    """A gpu node: allocatable nvidia.com/gpu (its pools are the gpu pools)."""
    return _amount(((node.get("status") or {}).get("allocatable") or {}).get(m.GPU)) > 0


def _amount(value: Any, convert: Any = None) -> int:
    """A quantity as a whole number (0 when absent or malformed: nothing to place there)."""
    if value is None:
        return 0
    try:
        return int(convert(value) if convert else parse(str(value)))
    except (ValueError, ArithmeticError):
        return 0


def gpu_tolerations(settings: KubernetesSettings) -> list[Mapping[str, Any]]:
    return [*settings.gpu_tolerations, m.GPU_TOLERATION]


def misfit(node: Obj, gpu: bool, settings: KubernetesSettings) -> str | None:
    """Why the pools of the node's class (gpu or cpu) would not be scheduled there (None:
    they would)."""
    why = unschedulable(node)
    if why is not None:
        return why
    tolerations = gpu_tolerations(settings) if gpu else []
    for taint in (node.get("spec") or {}).get("taints") or ():
        if taint.get("effect") in HARD_EFFECTS and \
                not any(m.tolerates(t, taint) for t in tolerations):
            value = f"={taint['value']}" if taint.get("value") else ""
            return (f"has the taint {taint.get('key')}{value}:{taint.get('effect')}, which "
                    + ("gpuTolerations do not tolerate" if gpu else "cpu pools do not tolerate"))
    if gpu:
        labels = (node.get("metadata") or {}).get("labels") or {}
        for key, value in settings.gpu_node_selector.items():
            if labels.get(key) != value:
                has = f" (it has {key}={labels[key]})" if key in labels else ""
                return f"misses gpuNodeSelector {key}={value}{has}"
    return None


def unusable_gpu_nodes(items: Iterable[Obj], kept: Iterable[Node],
                       settings: KubernetesSettings, shown: int = 3) -> str | None:
    """When the cluster has gpu nodes but none of them can take a gpu pool, why not (a
    mistyped gpuNodeSelector would otherwise read only "there are no gpu nodes")."""
    if any(n.gpu for n in kept):
        return None
    reasons = [f"{(item.get('metadata') or {}).get('name', '')} "
               f"{misfit(item, True, settings) or 'has every GPU taken'}"
               for item in items if has_gpus(item)]
    if not reasons:
        return None
    more = f"; and {len(reasons) - shown} more" if len(reasons) > shown else ""
    return (f"none of the {len(reasons)} nodes with {m.GPU} can take a gpu pool: "
            f"{'; '.join(sorted(reasons)[:shown])}{more}")


def pod_requests(pod: Obj) -> tuple[int, int, int]:
    """(cpu millis, memory bytes, GPUs) a pod holds on its node, as the scheduler counts:
    the sum of its containers' requests, at least each init container's, plus overhead."""
    spec = pod.get("spec") or {}

    def of(container: Obj) -> tuple[int, int, int]:
        requests = (container.get("resources") or {}).get("requests") or {}
        return (_amount(requests.get("cpu"), cpu_millis),
                _amount(requests.get("memory"), memory_bytes), _amount(requests.get(m.GPU)))

    total = [0, 0, 0]
    for container in spec.get("containers") or ():
        for i, value in enumerate(of(container)):
            total[i] += value
    for container in spec.get("initContainers") or ():
        for i, value in enumerate(of(container)):
            total[i] = max(total[i], value)
    overhead = spec.get("overhead") or {}
    total[0] += _amount(overhead.get("cpu"), cpu_millis)
    total[1] += _amount(overhead.get("memory"), memory_bytes)
    return total[0], total[1], total[2]


def used_by_others(pods: Iterable[Obj], settings: KubernetesSettings) -> dict[str, list[int]]:
    """Per node name: [cpu, memory, gpu, pods] held by pods this instance does not manage."""
    ours = m.instance_label(settings)
    used: dict[str, list[int]] = {}
    for pod in pods:
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        labels = meta.get("labels") or {}
        node = spec.get("nodeName")
        if not node or (pod.get("status") or {}).get("phase") in DONE_PHASES:
            continue
        if labels.get(m.MANAGED_BY) == m.MANAGER and labels.get(m.INSTANCE_LABEL) == ours:
            continue
        cpu, memory, gpu = pod_requests(pod)
        row = used.setdefault(node, [0, 0, 0, 0])
        row[0] += cpu
        row[1] += memory
        row[2] += gpu
        row[3] += 1
    return used


def to_node(node: Obj, used: list[int] | None = None) -> Node:
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    cpu = _amount(allocatable.get("cpu"), cpu_millis)
    memory = _amount(allocatable.get("memory"), memory_bytes)
    gpu = _amount(allocatable.get(m.GPU))
    pods = _amount(allocatable.get("pods"))
    taken = used or [0, 0, 0, 0]
    return Node(name=(node.get("metadata") or {}).get("name", ""),
                cpu_millis=max(cpu - taken[0], 0), memory_bytes=max(memory - taken[1], 0),
                pods=max(pods - taken[3], 0), gpu=max(gpu - taken[2], 0) if gpu else 0,
                labels=MappingProxyType(dict((node.get("metadata") or {}).get("labels") or {})))


def nodes(items: Iterable[Obj], pods: Iterable[Obj], settings: KubernetesSettings) -> list[Node]:
    """The nodes pools may be placed on, with what is free there (module docstring)."""
    used = used_by_others(pods, settings)
    result = []
    for item in items:
        gpu = has_gpus(item)
        if misfit(item, gpu, settings) is None:
            name = (item.get("metadata") or {}).get("name", "")
            node = to_node(item, used.get(name))
            if gpu and node.gpu == 0:
                continue  # every GPU taken: no room for a gpu pool, and no cpu node either
            result.append(node)
    return sorted(result, key=lambda n: n.name)
