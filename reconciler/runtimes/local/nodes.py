"""The local runtime's nodes: this machine, or what Settings.spec.local.nodes declares.

Default: one cpu node sized from this machine (os.cpu_count(), MemTotal of
/proc/meminfo, 32 pods or RECONCILER_LOCAL_SLOTS) plus one gpu node per GPU
that `nvidia-smi -L` lists. Declared nodes replace all of them; a declared gpu
node without a real GPU is emulated: its workers run on the CPU and `status`
says so, which keeps GPU configs testable on a laptop.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from types import MappingProxyType

from reconciler import quantities
from reconciler.config.model import Settings
from reconciler.states import Node

DEFAULT_SLOTS = 32
GPU_NODE_PODS = 8


def default_slots() -> int:
    raw = os.environ.get("RECONCILER_LOCAL_SLOTS", "")
    return int(raw) if raw.strip().isdigit() and int(raw) > 0 else DEFAULT_SLOTS


def machine_memory() -> int:
    """MemTotal in bytes; 8 GiB when /proc/meminfo is not there (not Linux)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * 2**30


def real_gpus() -> list[str]:
    """GPU names from `nvidia-smi -L`; empty when the command is absent or fails."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True,
                             timeout=5, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line for line in out.splitlines() if line.startswith("GPU ")]


def gpu_indices() -> tuple[int, ...]:
    """The device indices of this machine's GPUs (`GPU 0: ...` lines of `nvidia-smi -L`),
    what CUDA_VISIBLE_DEVICES names; empty without GPUs."""
    found = []
    for line in real_gpus():
        head = line.split(":", 1)[0].split()
        if len(head) == 2 and head[1].isdigit():
            found.append(int(head[1]))
    return tuple(sorted(set(found)))


def local_nodes(settings: Settings | None) -> list[Node]:
    """The nodes pools are placed on, declared or discovered."""
    gpus = real_gpus()
    if settings is not None and settings.local_nodes is not None:
        return [_declared(spec.name, spec.cpu, spec.memory, spec.gpu, spec.pods, len(gpus))
                for spec in settings.local_nodes]
    cpu_millis = (os.cpu_count() or 1) * 1000
    nodes = [Node(name="local-cpu", cpu_millis=cpu_millis, memory_bytes=machine_memory(),
                  pods=default_slots(), labels=MappingProxyType({"processor": "cpu"}))]
    for index, _ in enumerate(gpus):
        nodes.append(Node(name=f"local-gpu-{index}", cpu_millis=cpu_millis,
                          memory_bytes=machine_memory(), pods=GPU_NODE_PODS, gpu=1,
                          labels=MappingProxyType({"processor": "gpu"})))
    return nodes


def _declared(name: str, cpu: str, memory: str, gpu: int, pods: int, real: int) -> Node:
    processor = "gpu" if gpu > 0 else "cpu"
    return Node(name=name, cpu_millis=quantities.cpu_millis(cpu),
                memory_bytes=quantities.memory_bytes(memory), pods=pods, gpu=gpu,
                labels=MappingProxyType({"processor": processor}),
                emulated_gpu=gpu > 0 and real == 0)
