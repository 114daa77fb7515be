"""Static memory plan: one arena, buffers placed by lifetime.

Every activation lives from the step that writes it to the last step that
reads it (reads through aliases count). Buffers whose lifetimes do not overlap
may share bytes; an op that can run in place may write its output over an
input that dies at that step. Placement is greedy by size, largest first, at
the lowest offset free for the buffer's whole lifetime: the strategy TFLM's
greedy planner uses, here run at build time.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..ir import Graph
from .aliases import storage_roots

ALIGN = 8

INPUT, OUTPUT, ARENA = "input", "output", "arena"


@dataclass(frozen=True)
class MemoryPlan:
    # tensor index -> (region, byte offset); region is INPUT, OUTPUT or ARENA
    places: dict[int, tuple[str, int]]
    scratch: dict[int, int]  # node index -> arena offset of its scratch buffer
    arena_bytes: int
    steps: tuple[int, ...] = field(default=())  # node indices that run code, in order


@dataclass
class _Buffer:
    size: int
    first: int
    last: int
    tensors: list[int]
    offset: int = -1


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def plan_memory(graph: Graph, scratch_bytes: dict[int, int] | None = None,
                inplace: set[int] | frozenset = frozenset()) -> MemoryPlan:
    """scratch_bytes: node -> bytes of scratch it needs; inplace: nodes whose
    output may overwrite their first input when that input dies there."""
    scratch_bytes = scratch_bytes or {}
    root = storage_roots(graph)
    find = lambda t: root.get(t, t)  # noqa: E731
    steps = tuple(n.index for n in graph.nodes if not n.op.is_alias)
    step_of = {n: s for s, n in enumerate(steps)}
    model_in, model_out = find(graph.inputs[0]), find(graph.outputs[0])

    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for node in graph.nodes:
        if node.op.is_alias:
            continue
        s = step_of[node.index]
        for t in node.outputs:
            first.setdefault(find(t), s)
            last[find(t)] = max(last.get(find(t), s), s)
        for t in node.inputs:
            if t >= 0 and not graph.tensor(t).is_const:
                last[find(t)] = max(last.get(find(t), s), s)

    buffers: dict[int, _Buffer] = {}
    for t, s in first.items():
        if t not in (model_in, model_out):
            buffers[t] = _Buffer(graph.tensor(t).nbytes, s, last[t], [t])
    owner = {t: t for t in buffers}
    for node in graph.nodes:
        if node.index not in inplace:
            continue
        src, dst = find(node.inputs[0]), find(node.outputs[0])
        s = step_of[node.index]
        if src in owner and dst in owner and last[src] == s and owner[src] != owner[dst]:
            keep, gone = buffers[owner[src]], buffers.pop(owner[dst])
            keep.size = max(keep.size, gone.size)
            keep.last = max(keep.last, gone.last)
            keep.tensors += gone.tensors
            for t in gone.tensors:
                owner[t] = owner[src]
    scratch = {}
    for node_index, size in scratch_bytes.items():
        if size > 0:
            s = step_of[node_index]
            buffers[("scratch", node_index)] = _Buffer(size, s, s, [])

    placed: list[_Buffer] = []
    for buf in sorted(buffers.values(), key=lambda b: (-b.size, b.first)):
        offset = 0
        for other in sorted((p for p in placed if p.first <= buf.last and buf.first <= p.last),
                            key=lambda p: p.offset):
            if offset + buf.size <= other.offset:
                break
            offset = max(offset, _align(other.offset + other.size))
        buf.offset = offset
        placed.append(buf)

    places = {model_in: (INPUT, 0), model_out: (OUTPUT, 0)}
    for key, buf in buffers.items():
        if isinstance(key, tuple):
            scratch[key[1]] = buf.offset
        for t in buf.tensors:
            places[t] = (ARENA, buf.offset)
    for t, r in root.items():
        places[t] = places[r]
    arena = max((_align(b.offset + b.size) for b in placed), default=0)
    return MemoryPlan(places, scratch, arena, steps)
