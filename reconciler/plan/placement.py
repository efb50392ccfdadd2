"""Placing replicas on nodes: first-fit decreasing without the quadratic cost. Pure.

Each processor class (cpu nodes, gpu nodes) is a segment tree over its
nodes in their given order; every tree node keeps the per-dimension maximum
free capacity (cpu millis, memory bytes, GPUs, pods) of its subtree. Finding
the first node with room for one replica descends the leftmost subtree
whose maxima all cover the need: O(log nodes) when it does not backtrack,
which a max-per-dimension test rarely causes. A pool's identical replicas are
placed in batches (as many as fit on the found node at once), so placing a
pool costs O(nodes it spans x log nodes), independent of its replica count,
and placing every pool costs ~O(pools x log nodes) rather than
pools x nodes x replicas.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from reconciler.quantities import cpu_millis, format_cpu, format_memory, memory_bytes
from reconciler.states import Node, WarmPool

Vec = tuple[int, int, int, int]  # cpu millis, memory bytes, GPUs, pods
DIMS = ("cpu", "memory", "gpu", "pods")
Assignment = list[tuple[int, int]]  # (node index in its class, replicas placed there)


@lru_cache(maxsize=4096)
def _need(cpu: str, memory: str, gpu: int) -> Vec:
    return (cpu_millis(cpu), memory_bytes(memory), gpu, 1)


def replica_need(pool: WarmPool) -> Vec:
    """What one replica of the pool takes on a node."""
    return _need(pool.cpu, pool.memory, pool.gpu)


def need_of(cpu: str, memory: str, gpu: int) -> Vec:
    """What one replica of this shape (quantities as written) takes on a node."""
    return _need(cpu, memory, gpu)


def describe(dim: int, amount: int) -> str:
    """An amount of one dimension in the words of an error message."""
    if dim == 0:
        return f"{format_cpu(amount)} CPU"
    if dim == 1:
        return f"{format_memory(amount)} memory"
    if dim == 2:
        return f"{amount} GPU{'' if amount == 1 else 's'}"
    return f"{amount} pod{'' if amount == 1 else 's'}"


def amount(dim: int, value: int) -> str:
    """An amount without its unit word ("4", "500m", "9Gi")."""
    if dim == 0:
        return format_cpu(value)
    if dim == 1:
        return format_memory(value)
    return str(value)


def describe_need(need: Vec) -> str:
    """A replica's shape, e.g. "1 CPU, 512Mi memory, 2 GPUs"."""
    return ", ".join(describe(d, need[d]) for d in range(3) if need[d] or d < 2)


class NodeTree:
    """Free capacity of one processor class's nodes, with first-fit search."""

    def __init__(self, nodes: Sequence[Node]) -> None:
        self.nodes = list(nodes)
        self.free = [[n.cpu_millis, n.memory_bytes, n.gpu, n.pods] for n in self.nodes]
        size = 1
        while size < max(len(self.nodes), 1):
            size *= 2
        self.size = size
        self.max: list[Vec] = [(-1, -1, -1, -1)] * (2 * size)
        for index, free in enumerate(self.free):
            self.max[size + index] = (free[0], free[1], free[2], free[3])
        for index in range(size - 1, 0, -1):
            self._pull(index)

    def _pull(self, index: int) -> None:
        left, right = self.max[2 * index], self.max[2 * index + 1]
        self.max[index] = (max(left[0], right[0]), max(left[1], right[1]),
                           max(left[2], right[2]), max(left[3], right[3]))

    def _set(self, node: int) -> None:
        free = self.free[node]
        index = self.size + node
        self.max[index] = (free[0], free[1], free[2], free[3])
        index //= 2
        while index:
            self._pull(index)
            index //= 2

    def first_fit(self, need: Vec) -> int | None:
        """Index of the first node with room for one replica, or None."""
        stack = [1]
        while stack:
            index = stack.pop()
            top = self.max[index]
            if top[0] < need[0] or top[1] < need[1] or top[2] < need[2] or top[3] < need[3]:
                continue
            if index >= self.size:
                return index - self.size
            stack.append(2 * index + 1)
            stack.append(2 * index)
        return None

    def place(self, need: Vec, count: int) -> tuple[int, Assignment]:
        """Place up to `count` replicas first-fit; (replicas left over, where they went)."""
        assignment: Assignment = []
        while count > 0:
            node = self.first_fit(need)
            if node is None:
                break
            free = self.free[node]
            fits = min(free[d] // need[d] for d in range(4) if need[d] > 0)
            batch = min(count, fits)
            for d in range(4):
                free[d] -= need[d] * batch
            self._set(node)
            assignment.append((node, batch))
            count -= batch
        return count, assignment

    def remove(self, need: Vec, assignment: Assignment) -> None:
        """Undo a placement."""
        for node, batch in assignment:
            free = self.free[node]
            for d in range(4):
                free[d] += need[d] * batch
            self._set(node)

    def allocatable(self) -> Vec:
        totals = [0, 0, 0, 0]
        for node in self.nodes:
            for d, value in enumerate((node.cpu_millis, node.memory_bytes, node.gpu, node.pods)):
                totals[d] += value
        return (totals[0], totals[1], totals[2], totals[3])


def shortfall(tree: NodeTree, processor: str, need: Vec, demand: Vec) -> tuple[int | None, str]:
    """Why replicas of shape `need` do not fit: (the binding dimension or None, the words).

    `demand` is everything the scenario asks of this processor class. Checks,
    in order: no node of the class; no single node large enough for one
    replica; a dimension whose total demand exceeds the total allocatable;
    otherwise the free capacity is fragmented across nodes.
    """
    if not tree.nodes:
        return None, f"there are no {processor} nodes"
    for d in (2, 0, 1):
        largest = max((n.cpu_millis, n.memory_bytes, n.gpu)[d] for n in tree.nodes)
        if need[d] > largest:
            return d, (f"the largest {processor} node has {describe(d, largest)} allocatable, "
                       f"one replica needs {describe(d, need[d])}")
    totals = tree.allocatable()
    for d in (2, 0, 1, 3):
        if demand[d] > totals[d]:
            return d, (f"{describe(d, totals[d])} allocatable on {processor} nodes, "
                       f"{amount(d, demand[d])} needed")
    return None, (f"the free capacity of the {processor} nodes is fragmented: "
                  f"no node has room for another replica")


def add(total: Vec, need: Vec, count: int) -> Vec:
    return (total[0] + need[0] * count, total[1] + need[1] * count,
            total[2] + need[2] * count, total[3] + need[3] * count)
