"""Residual ADD folded into the CONV_2D that feeds it.

In a residual block, y = conv(x) and z = ADD(skip, y): y is only ever read by
the ADD. Computing the ADD in the convolution's output loop (its int8 value,
then TFLM's ADD arithmetic on it and the skip value) never stores y at all, so
the block needs x, skip and z, and z may be written over the skip tensor as it
dies. That is what brings ResNet-8's peak (the skip tensor, the conv's input
and output live together) down. Bit-exact: the conv still rounds and clamps to
int8 first, exactly as the two separate TFLM ops do.

The fused node keeps the CONV_2D's index, op and options, takes the skip
tensor as an extra (non-constant) input and the ADD's output as its output;
options["residual_add"] holds the original conv and ADD nodes, from which the
conv context computes both halves (tinycomp/codegen/ops/conv.py).
"""
from __future__ import annotations

import dataclasses
from types import MappingProxyType

from ..ir import Graph, Op


def fuse_residual_adds(graph: Graph, fusable) -> Graph:
    """The graph with every CONV_2D -> ADD pair for which fusable(conv, add)
    holds folded into one node. fusable checks what the kernels can do
    (dense blocked convolution, same-shape ADD with exact shortcuts)."""
    readers: dict[int, list] = {}
    for node in graph.nodes:
        for t in node.inputs:
            if t >= 0:
                readers.setdefault(t, []).append(node)
    # position of the node producing each tensor: the skip value must exist
    # by the time the conv runs (in a projection block the ADD's other operand
    # may come from a conv that runs after this one)
    made = {t: i for i, node in enumerate(graph.nodes) for t in node.outputs}
    fused, dropped = {}, set()
    for pos, node in enumerate(graph.nodes):
        if node.op != Op.CONV_2D or node.outputs[0] in graph.outputs:
            continue
        y = node.outputs[0]
        users = readers.get(y, [])
        if len(users) != 1 or users[0].op != Op.ADD:
            continue
        add = users[0]
        if add.index in dropped:
            continue
        others = [t for t in add.inputs if t != y]
        if len(others) != 1 or list(add.inputs).count(y) != 1:
            continue
        skip = graph.tensor(others[0])
        shapes = {tuple(graph.tensor(t).shape) for t in (*add.inputs, add.outputs[0])}
        if skip.is_const or made.get(others[0], -1) > pos or len(shapes) != 1 or not fusable(graph, node, add):
            continue
        inputs = tuple(node.inputs) + (-1,) * (3 - len(node.inputs)) + (others[0],)
        options = MappingProxyType({**node.options, "residual_add": {"conv": node, "add": add}})
        fused[node.index] = dataclasses.replace(node, inputs=inputs, outputs=tuple(add.outputs),
                                                options=options)
        dropped.add(add.index)
    if not fused:
        return graph
    nodes = tuple(fused.get(n.index, n) for n in graph.nodes if n.index not in dropped)
    return dataclasses.replace(graph, nodes=nodes)
