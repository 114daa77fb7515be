"""`tinycomp inspect`: a readable summary of a model as tinycomp will compile it."""
from __future__ import annotations

from pathlib import Path

from .codegen.generate import generate
from .passes.memory import ARENA
from .pipeline import load_model


def _quant(t) -> str:
    if t.quant is None:
        return "-"
    if t.quant.per_channel:
        return f"per-channel x{len(t.quant.scale)} (axis {t.quant.axis})"
    return f"scale {t.scale:.6g} zp {t.zero_point}"


def describe(model_path: Path, calibration: Path | None = None) -> str:
    graph, _ = load_model(model_path, calibration)
    model = generate(graph)
    lines = [f"model {graph.name} (sha256 {graph.model_hash}): {len(graph.nodes)} layers, "
             f"{model.macs:,} MACs"]
    for role, indices in (("input", graph.inputs), ("output", graph.outputs)):
        for k, index in enumerate(indices):
            t = graph.tensor(index)
            label = f"{role} {k}" if len(indices) > 1 else role
            lines.append(f"{label:<6} {list(t.shape)} {t.dtype}, "
                         f"{_quant(t) if t.dtype != 'float32' else ('quantized' if role == 'input' else 'dequantized') + ' inside'} ({t.name})")
    width = max([18] + [len(row["op"]) for row in model.layers])  # UNIDIRECTIONAL_SEQUENCE_LSTM is 28
    lines += [
        "",
        f"{'#':>3}  {'op':<{width}} {'output shape':<18} {'MACs':>11} {'weights B':>10}  "
        f"{'arena offset':>12}  output quantization",
    ]
    nodes = {n.index: n for n in model.graph.nodes}  # fused layers are one row
    for row in model.layers:
        node = nodes[row["index"]]
        written = node.outputs[0] if node.outputs else node.inputs[0]  # ASSIGN_VARIABLE: its state
        out = graph.tensor(written)
        region, offset = model.plan.places.get(written, ("-", 0))
        where = f"{offset:>12,}" if region == ARENA else f"{region:>12}"
        lines.append(f"{row['index']:>3}  {row['op']:<{width}} {str(list(out.shape)):<18} "
                     f"{row['macs']:>11,} {row['weights_bytes']:>10,}  {where}  {_quant(out)}")
    at = ", ".join(f"{model.plan.places[t][1]:,}" for t in graph.inputs)
    lines += ["", f"memory plan: arena {model.arena_bytes:,} B (the input{'s' if len(graph.inputs) > 1 else ''} "
                  f"included, at offset {at}; outputs go to the caller's buffers), "
                  f"constants {model.weights_bytes:,} B"
                  + (f", state kept between inferences {model.state_bytes:,} B (outside the arena)"
                     if model.state_bytes else "")]
    return "\n".join(lines)
