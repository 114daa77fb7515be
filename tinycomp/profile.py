"""`tinycomp profile`: instructions per inference, per layer, on the build's
board (QEMU with -icount shift=0: deterministic), with memory from the linker."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import BoardError
from .pipeline import prepare_inputs, read_manifest, tensor_specs
from .targets import get_runner


def profile_build(build_dir: Path, samples: np.ndarray | None = None, port: str | None = None) -> dict:
    info = read_manifest(build_dir)
    if "firmware" not in info:
        raise BoardError(f"{build_dir} is a {info['board']} build; profiling needs a QEMU or device board")
    if samples is not None:
        first = [a[0] for a in prepare_inputs(samples, info)]
    else:
        first = [np.zeros(s["shape"], s["dtype"]) for s in tensor_specs(info, "input")]
    with get_runner(info["board"], Path(build_dir) / "build", port=port) as runner:
        result = runner.profile(b"".join(np.ascontiguousarray(a).tobytes() for a in first))
    steps = [row for row in info["layers"] if row["op"] not in ("RESHAPE", "SQUEEZE", "EXPAND_DIMS")]
    layers = []
    for row, count in zip(steps, result.per_layer):
        layers.append({"index": row["index"], "name": row["name"], "op": row["op"], "macs": row["macs"],
                       result.unit: count,
                       "per_mac": round(count / row["macs"], 3) if row["macs"] else None})
    fw = info["firmware"]
    return {
        "board": info["board"],
        "unit": result.unit,
        result.unit: result.total,
        "macs": info["macs"],
        "per_mac": round(result.total / info["macs"], 3) if info["macs"] else None,
        "arena_bytes": info["arena_bytes"],
        "ram_bytes": fw["ram_used"],
        "flash_bytes": fw["flash_used"],
        "flash_weights_bytes": fw["weights_bytes"],
        "flash_code_bytes": fw["flash_used"] - fw["weights_bytes"],
        "layers": layers,
    }


def format_profile(p: dict) -> str:
    unit = p["unit"]
    lines = [f"{'#':>3}  {'op':<18} {'MACs':>11} {unit:>13} {'per MAC':>8}  name"]
    for row in p["layers"]:
        per = f"{row['per_mac']:.2f}" if row["per_mac"] is not None else "-"
        lines.append(f"{row['index']:>3}  {row['op']:<18} {row['macs']:>11,} {row[unit]:>13,} {per:>8}  {row['name'][:48]}")
    per = f"{p['per_mac']:.2f}" if p["per_mac"] else "-"
    lines += [f"     {'total':<18} {p['macs']:>11,} {p[unit]:>13,} {per:>8}",
              "",
              f"{p['board']}: {p[unit]:,} {unit} per inference; arena {p['arena_bytes']:,} B, "
              f"RAM {p['ram_bytes']:,} B; flash {p['flash_bytes']:,} B = code {p['flash_code_bytes']:,} B "
              f"+ weights {p['flash_weights_bytes']:,} B"]
    return "\n".join(lines)
