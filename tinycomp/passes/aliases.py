"""Reshape-like ops (RESHAPE, SQUEEZE, EXPAND_DIMS) copy nothing: their output
is another view of their input's bytes. This pass maps every tensor to the
tensor that owns its storage."""
from __future__ import annotations

from ..ir import Graph


def storage_roots(graph: Graph) -> dict[int, int]:
    """tensor index -> index of the tensor whose buffer it lives in."""
    root: dict[int, int] = {}
    for node in graph.nodes:  # nodes are in execution order
        if node.op.is_alias:
            src = node.inputs[0]
            root[node.outputs[0]] = root.get(src, src)
    return root
