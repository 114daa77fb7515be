"""Figures about a graph that need no code generation: MACs and per-layer summaries."""
from __future__ import annotations

from ..ir import Graph, Node, Op


def layer_macs(graph: Graph, node: Node) -> int:
    if not node.outputs:  # ASSIGN_VARIABLE: a copy
        return 0
    out = graph.tensor(node.outputs[0])
    if node.op == Op.CONV_2D:  # filter (out_c, kh, kw, in_c)
        kh, kw, cin = graph.tensor(node.inputs[1]).shape[1:]
        return out.size * kh * kw * cin
    if node.op == Op.DEPTHWISE_CONV_2D:  # filter (1, kh, kw, out_c)
        _, kh, kw, _ = graph.tensor(node.inputs[1]).shape
        return out.size * kh * kw
    if node.op == Op.FULLY_CONNECTED:  # filter (units, depth)
        return out.size * graph.tensor(node.inputs[1]).shape[1]
    if node.op == Op.TRANSPOSE_CONV:  # every input value meets every filter tap of its channel
        cout, kh, kw, _ = graph.tensor(node.inputs[1]).shape
        return graph.tensor(node.inputs[2]).size * kh * kw * cout
    if node.op == Op.BATCH_MATMUL:  # one depth-long dot per output value
        lhs = graph.tensor(node.inputs[0]).shape
        return out.size * (lhs[-2] if node.options.get("adj_x") else lhs[-1])
    if node.op == Op.SVDF:  # feature (filters x input) and time (filters x memory) dots per batch row
        filters, depth = graph.tensor(node.inputs[1]).shape
        memory = graph.tensor(node.inputs[2]).shape[1]
        return graph.tensor(node.inputs[0]).shape[0] * filters * (depth + memory)
    if node.op == Op.UNIDIRECTIONAL_SEQUENCE_LSTM:  # 4 gates: input and recurrent dots per step
        cells, depth = graph.tensor(node.inputs[2]).shape
        return out.size // cells * 4 * cells * (depth + cells)
    return 0


def layer_summaries(graph: Graph) -> list[dict]:
    rows = []
    for node in graph.nodes:
        acts = [graph.tensor(t) for t in node.inputs if t >= 0 and not graph.tensor(t).is_const]
        consts = [graph.tensor(t) for t in node.inputs if t >= 0 and graph.tensor(t).is_const]
        # ASSIGN_VARIABLE writes no tensor: its row shows the variable's state
        out = graph.tensor(node.outputs[0] if node.outputs else node.inputs[0])
        rows.append({
            "index": node.index,
            "name": node.name,
            "op": node.op.value,
            "input_shapes": [list(t.shape) for t in acts],
            "output_shape": list(out.shape),
            "output_scale": out.scale if out.quant else None,
            "output_zero_point": out.zero_point if out.quant else None,
            "weights_bytes": sum(t.nbytes for t in consts),
            "macs": layer_macs(graph, node),
        })
    return rows
