"""A DEPTHWISE_CONV_2D with one input channel and depth multiplier M is a
CONV_2D with M filters of one input channel each: output channel m of pixel
p is sum over the window of (x - zp) * w[0, ky, kx, m] in both, with the
same per-channel multipliers (TFLM derives both ops' from s_in * s_w[c] /
s_out in double), bias, padding and clamp. Audio front layers are often
written so (KWS models: 1 -> 8 channels); the depthwise kernel, built for
many input channels, spends 8-14 instructions per MAC on them, the
convolution kernel a fraction of that. The rewrite transposes the filter
(1, KH, KW, M) to (M, KH, KW, 1) at build time; the node keeps its index and
name, and options["depthwise_as_conv"] marks it for reports."""
from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

from ..ir import Graph, Node, Op, Quant, Tensor

# Depthwise options that mean the same in CONV_2D.
_SHARED = ("padding", "stride_w", "stride_h", "dilation_w_factor", "dilation_h_factor", "activation")


def _candidate(graph: Graph, node: Node) -> bool:
    if node.op != Op.DEPTHWISE_CONV_2D or len(node.inputs) < 2:
        return False
    x, w = graph.tensor(node.inputs[0]), graph.tensor(node.inputs[1])
    return (len(x.shape) == 4 and x.shape[3] == 1 and w.is_const and len(w.shape) == 4
            and w.shape[0] == 1 and w.shape[3] > 1 and w.quant is not None and w.dtype == "int8"
            and int(node.options.get("depth_multiplier", w.shape[3]) or w.shape[3]) == w.shape[3])


def depthwise_as_conv(graph: Graph) -> Graph:
    tensors, nodes, changed = list(graph.tensors), [], False
    for node in graph.nodes:
        if not _candidate(graph, node):
            nodes.append(node)
            continue
        w = graph.tensor(node.inputs[1])
        _, kh, kw, m = w.shape
        filters = w.data.reshape(kh, kw, m).transpose(2, 0, 1).reshape(m, kh, kw, 1).copy()
        quant = Quant(w.quant.scale, w.quant.zero_point, axis=0)  # per output channel, as CONV_2D's
        conv_w = Tensor(len(tensors), f"{w.name}/as_conv", (m, kh, kw, 1), w.dtype, quant, filters)
        tensors.append(conv_w)
        options = {k: node.options[k] for k in _SHARED if k in node.options}
        options["depthwise_as_conv"] = True
        inputs = (node.inputs[0], conv_w.index) + tuple(node.inputs[2:3])
        nodes.append(replace(node, op=Op.CONV_2D, inputs=inputs, options=MappingProxyType(options)))
        changed = True
    return replace(graph, tensors=tuple(tensors), nodes=tuple(nodes)) if changed else graph
