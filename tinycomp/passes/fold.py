"""Constant folding at build time: SHAPE of a static shape, and the
data-movement ops (STRIDED_SLICE, PACK, GATHER, ...) whose inputs are all
constant, become constant tensors. Shapes are static on a microcontroller,
so the SHAPE -> STRIDED_SLICE -> PACK chains a converter writes around
RESHAPE for a dynamic batch compute nothing at run time. Runs in the front
end, before the type checks: the int32 tensors of those chains vanish."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..errors import ModelError
from ..ir import Graph, Op
from .index_maps import MAPPED_OPS, data_inputs, source_maps


def fold_constants(graph: Graph) -> Graph:
    tensors = list(graph.tensors)
    kept = []
    for node in graph.nodes:
        if node.op == Op.SHAPE:
            x, out = tensors[node.inputs[0]], tensors[node.outputs[0]]
            if tuple(out.shape) != (len(x.shape),) or not out.dtype.startswith("int"):
                raise ModelError(f"SHAPE at layer {node.index} ({node.name!r}): output {out.dtype} "
                                 f"{list(out.shape)} cannot hold the shape {list(x.shape)}")
            tensors[out.index] = replace(out, data=np.array(x.shape, dtype=out.dtype))
            continue
        if node.op in MAPPED_OPS and all(tensors[t].is_const for t in node.inputs if t >= 0):
            current = replace(graph, tensors=tuple(tensors))
            sources = [tensors[t].data.reshape(-1) for t in data_inputs(node)]
            for m, t in zip(source_maps(current, node), node.outputs):
                values = np.zeros(m.index.shape, dtype=tensors[t].dtype)
                for k, src in enumerate(sources):
                    chosen = m.input == k
                    values[chosen] = src[m.index[chosen]]
                tensors[t] = replace(tensors[t], data=values)
            continue
        kept.append(node)
    if len(kept) == len(graph.nodes):
        return graph
    return replace(graph, tensors=tuple(tensors), nodes=tuple(kept))
