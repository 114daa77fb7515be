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
    x, y = graph.tensor(graph.inputs[0]), graph.tensor(graph.outputs[0])
    lines = [
        f"model {graph.name} (sha256 {graph.model_hash}): {len(graph.nodes)} layers, "
        f"{model.macs:,} MACs",
        f"input  {list(x.shape)} int8, {_quant(x)}",
        f"output {list(y.shape)} int8, {_quant(y)}",
        "",
        f"{'#':>3}  {'op':<18} {'output shape':<18} {'MACs':>11} {'weights B':>10}  "
        f"{'arena offset':>12}  output quantization",
    ]
    nodes = {n.index: n for n in model.graph.nodes}  # fused layers are one row
    for row in model.layers:
        node = nodes[row["index"]]
        out = graph.tensor(node.outputs[0])
        region, offset = model.plan.places.get(node.outputs[0], ("-", 0))
        where = f"{offset:>12,}" if region == ARENA else f"{region:>12}"
        lines.append(f"{row['index']:>3}  {row['op']:<18} {str(list(out.shape)):<18} "
                     f"{row['macs']:>11,} {row['weights_bytes']:>10,}  {where}  {_quant(out)}")
    lines += ["", f"memory plan: arena {model.arena_bytes:,} B (the input included, at offset "
                  f"{model.plan.places[graph.inputs[0]][1]:,}; the output goes to the caller's buffer), "
                  f"constants {model.weights_bytes:,} B"]
    return "\n".join(lines)
