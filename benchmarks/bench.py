"""`make bench`: the four MLPerf Tiny models built for QEMU boards, profiled
with -icount shift=0 (deterministic instruction counts), beside TFLite Micro +
CMSIS-NN measured on the same emulated core (shared/ANCHORS.md).

    python -m benchmarks.bench [--board qemu-mps2-an386] [--json results.json]
"""
from __future__ import annotations

import json
from pathlib import Path

import click

from benchmarks import models
from tinycomp.frontends.tflite import parse_tflite
from tinycomp.pipeline import build_graph
from tinycomp.profile import profile_build

ROOT = Path(__file__).resolve().parents[1]

# TFLM (90b983c2) + CMSIS-NN (4ab83cc) on QEMU mps2-an386, from ANCHORS.md:
# instructions, arena bytes (input and output tensors included), code bytes
# (flash minus model).
TFLM_CMSIS_AN386 = {
    "kws": (7_699_008, 22_820, 54_332),
    "vww": (24_101_224, 100_644, 54_332),
    "ic": (29_859_592, 54_996, 52_136),
    "ad": (595_852, 15_956, 29_444),
}


def bench_board(board: str) -> list[dict]:
    rows = []
    for name in models.NAMES:
        tflite = models.tflite_bytes(name)
        out = ROOT / ".cache" / "bench" / board / name
        graph = parse_tflite(tflite, name=name)
        build_graph(graph, tflite, out, board)
        p = profile_build(out)
        # TFLM's arena holds the model's input and output tensors; ours holds
        # the input but leaves the output in the caller's buffer, so
        # "arena + output" is the like-for-like RAM.
        io = graph.tensor(graph.outputs[0]).nbytes
        rows.append({"model": name, "board": board, "macs": p["macs"], "instructions": p["instructions"],
                     "arena_bytes": p["arena_bytes"], "io_bytes": io,
                     "flash_code_bytes": p["flash_code_bytes"],
                     "flash_weights_bytes": p["flash_weights_bytes"], "layers": p["layers"]})
    return rows


def table(rows: list[dict]) -> str:
    head = (f"{'model':<5} {'MACs':>11} {'instructions':>13} {'instr/MAC':>9} {'vs TFLM+CMSIS':>13} "
            f"{'arena B':>8} {'vs':>5} {'arena+out B':>11} {'vs':>5} {'code B':>7} {'vs':>5} {'weights B':>10}")
    lines = [head]
    for r in rows:
        ref = TFLM_CMSIS_AN386.get(r["model"]) if r["board"] == "qemu-mps2-an386" else None
        ratio = (lambda ours, theirs: f"{ours / theirs:.2f}x") if ref else (lambda *_: "-")
        lines.append(
            f"{r['model']:<5} {r['macs']:>11,} {r['instructions']:>13,} {r['instructions'] / r['macs']:>9.2f} "
            f"{ratio(r['instructions'], ref[0]) if ref else '-':>13} {r['arena_bytes']:>8,} "
            f"{ratio(r['arena_bytes'], ref[1]) if ref else '-':>5} {r['arena_bytes'] + r['io_bytes']:>11,} "
            f"{ratio(r['arena_bytes'] + r['io_bytes'], ref[1]) if ref else '-':>5} {r['flash_code_bytes']:>7,} "
            f"{ratio(r['flash_code_bytes'], ref[2]) if ref else '-':>5} {r['flash_weights_bytes']:>10,}")
    return "\n".join(lines)


@click.command()
@click.option("--board", "boards", multiple=True, default=("qemu-mps2-an386", "qemu-mps2-an385"),
              show_default=True)
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None)
def main(boards, json_path):
    """Build, profile and tabulate the MLPerf Tiny models."""
    results = {}
    for board in boards:
        rows = bench_board(board)
        results[board] = rows
        click.echo(f"\n{board} (ratios against TFLite Micro + CMSIS-NN on mps2-an386)")
        click.echo(table(rows))
    if json_path:
        json_path.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
