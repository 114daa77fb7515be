"""`make bench`: the four MLPerf Tiny models built for QEMU boards, profiled
with -icount shift=0 (deterministic instruction counts), beside TFLite Micro +
CMSIS-NN measured on the same emulated core (shared/ANCHORS.md); then, on the
Cortex-M4 board, cycles estimated from the executed instruction stream with
the NUCLEO-L4R5ZI's timing (tinycomp/cycles/) beside the published MLPerf
Tiny latencies of that board.

The trained reference models are used when ../shared/models/mlperf-tiny
exists next to the checkout; otherwise the architectures built in
benchmarks/models.py (seeded weights) stand in.

    python -m benchmarks.bench [--board qemu-mps2-an386] [--models auto|reference|code]
                               [--optimize balanced|speed|size]
                               [--timing-board nucleo-l4r5zi] [--json results.json]
"""
from __future__ import annotations

import json
from pathlib import Path

import click

from benchmarks import models
from tinycomp.boards import load_board
from tinycomp.cycles.report import assumptions, profile_cycles, timing_for
from tinycomp.frontends.tflite import parse_tflite
from tinycomp.pipeline import build_graph
from tinycomp.profile import profile_build

ROOT = Path(__file__).resolve().parents[1]
SHARED_MODELS = ROOT.parent / "shared" / "models" / "mlperf-tiny"
REFERENCE_FILES = {"kws": "kws_ref_model.tflite", "vww": "vww_96_int8.tflite",
                   "ic": "pretrainedResnet_quant.tflite", "ad": "ad01_int8.tflite"}

# TFLM (90b983c2) + CMSIS-NN (4ab83cc) on QEMU mps2-an386, from ANCHORS.md:
# instructions, arena bytes (input and output tensors included), code bytes
# (flash minus model).
TFLM_CMSIS_AN386 = {
    "code": {
        "kws": (7_699_008, 22_820, 54_332),
        "vww": (24_101_224, 100_644, 54_332),
        "ic": (29_859_592, 54_996, 52_136),
        "ad": (595_852, 15_956, 29_444),
    },
    # code: not measured on the reference models; TFLM's runtime and the same
    # ops' kernels, so the in-code architectures' figures stand in
    "reference": {
        "kws": (7_699_894, 22_820, 54_332),
        "vww": (24_101_964, 100_708, 54_332),
        "ic": (29_863_354, 54_996, 52_136),
        "ad": (582_946, 2_580, 29_444),
    },
}

# The same library on QEMU mps3-an547 (Cortex-M55, CMSIS-NN's Helium kernels),
# reference models only (ANCHORS.md): instructions and arena bytes.
TFLM_CMSIS_AN547 = {
    "reference": {
        "kws": (1_815_810, 27_348, None),
        "vww": (6_558_338, 100_772, None),
        "ic": (4_911_697, 55_028, None),
        "ad": (149_997, 9_268, None),
    },
}
ANCHORS = {"qemu-mps2-an386": TFLM_CMSIS_AN386, "qemu-mps3-an547": TFLM_CMSIS_AN547}


def anchor(row: dict) -> tuple | None:
    """TFLM + CMSIS-NN's figures for this row's board and model, if measured."""
    return ANCHORS.get(row["board"], {}).get(row["source"], {}).get(row["model"])


# MLPerf Tiny closed division, NUCLEO-L4R5ZI (Cortex-M4 at 120 MHz), reference
# models: ST's tool v1.2 and, for AD, Plumerai v1.1 (ANCHORS.md).
PUBLISHED_MS = {"kws": (43.2, "ST v1.2"), "vww": (88.9, "ST v1.2"), "ic": (165.1, "ST v1.2"),
                "ad": (4.05, "Plumerai v1.1")}


def model_bytes(name: str, source: str) -> bytes:
    if source == "reference":
        return (SHARED_MODELS / REFERENCE_FILES[name]).read_bytes()
    return models.tflite_bytes(name)


def weights_and_biases(graph) -> int:
    """Bytes of the model's filters and biases: what TFLM's "weights +
    biases" counts (its per-channel scales and zero points, and the
    flatbuffer around them, are in the .tflite it keeps in flash too)."""
    ops = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")
    return sum(graph.tensor(t).nbytes for n in graph.nodes if n.op.value in ops
               for t in n.inputs[1:3] if t >= 0 and graph.tensor(t).is_const)


def pick_source(choice: str) -> str:
    have = all((SHARED_MODELS / f).is_file() for f in REFERENCE_FILES.values())
    if choice == "reference" and not have:
        raise click.ClickException(f"the reference models are not in {SHARED_MODELS}")
    return "reference" if choice == "reference" or (choice == "auto" and have) else "code"


def bench_board(board: str, source: str, timing_board: str | None, optimize: str = "balanced") -> list[dict]:
    """Build (build --optimize `optimize`) and profile every model; with
    timing_board also estimate cycles."""
    rows = []
    for name in models.NAMES:
        tflite = model_bytes(name, source)
        out = ROOT / ".cache" / "bench" / board / f"{name}-{source}-{optimize}"
        graph = parse_tflite(tflite, name=name)
        build_graph(graph, tflite, out, board, optimize=optimize)
        p = profile_build(out)
        # TFLM's arena holds the model's input and output tensors; ours holds
        # the input but leaves the output in the caller's buffer, so
        # "arena + output" is the like-for-like RAM.
        io = graph.tensor(graph.outputs[0]).nbytes
        row = {"model": name, "source": source, "board": board, "macs": p["macs"],
               "instructions": p["instructions"], "arena_bytes": p["arena_bytes"], "io_bytes": io,
               "flash_code_bytes": p["flash_code_bytes"],
               "flash_weights_bytes": p["flash_weights_bytes"], "layers": p["layers"],
               "model_weights_biases": weights_and_biases(graph), "model_file_bytes": len(tflite)}
        if timing_board:
            row["cycles"] = profile_cycles(out, as_board=timing_board, refills=(1, 3))
        rows.append(row)
    return rows


def _ratio(ours, theirs) -> str:
    return f"{ours / theirs:.3f}x" if theirs else "-"


def table(rows: list[dict]) -> str:
    head = (f"{'model':<5} {'MACs':>11} {'instructions':>13} {'instr/MAC':>9} {'vs TFLM+CMSIS':>13} "
            f"{'arena B':>8} {'vs':>6} {'arena+out B':>11} {'vs':>6} {'code B':>7} {'vs':>6} {'constants B':>11} "
            f"{'vs w+b':>6} {'vs file':>7}")
    lines = [head]
    for r in rows:
        ref = anchor(r) or (None, None, None)
        ram = r["arena_bytes"] + r["io_bytes"]
        lines.append(
            f"{r['model']:<5} {r['macs']:>11,} {r['instructions']:>13,} {r['instructions'] / r['macs']:>9.2f} "
            f"{_ratio(r['instructions'], ref[0]):>13} {r['arena_bytes']:>8,} {_ratio(r['arena_bytes'], ref[1]):>6} "
            f"{ram:>11,} {_ratio(ram, ref[1]):>6} {r['flash_code_bytes']:>7,} "
            f"{_ratio(r['flash_code_bytes'], ref[2]):>6} {r['flash_weights_bytes']:>11,} "
            f"{_ratio(r['flash_weights_bytes'], r['model_weights_biases']):>6} "
            f"{_ratio(r['flash_weights_bytes'], r['model_file_bytes']):>7}")
    lines += ["constants: the firmware's weights, biases and requantization tables; vs w+b: against the",
              "model's filters and biases alone (TFLM's \"weights + biases\"); vs file: against the .tflite,",
              "which TFLM keeps in flash whole (scales, int64 zero points, graph)."]
    return "\n".join(lines)


def cycles_table(rows: list[dict]) -> str:
    head = (f"{'model':<5} {'instructions':>13} {'vs TFLM+CMSIS':>13} {'est. cycles':>12} {'P=1..3':>21} "
            f"{'cyc/instr':>9} {'flash':>6} {'ms':>7} {'published ms':>20} {'est/pub':>7}")
    lines = [head]
    for r in rows:
        c = r["cycles"]
        ref = anchor(r)
        lo, hi = c["cycles_by_refill"]["1"], c["cycles_by_refill"]["3"]
        pub_ms, who = PUBLISHED_MS[r["model"]]
        pub = f"{pub_ms:g} ({who})"
        lines.append(
            f"{r['model']:<5} {c['instructions']:>13,} {_ratio(c['instructions'], ref and ref[0]):>13} "
            f"{c['cycles']:>12,} {f'{lo / 1e6:.2f}M-{hi / 1e6:.2f}M':>21} "
            f"{c['cycles'] / c['instructions']:>9.2f} {c['flash_cycles'] / c['cycles']:>6.0%} "
            f"{c['ms']:>7.1f} {pub:>20} {c['ms'] / pub_ms:>6.2f}x")
    return "\n".join(lines)


@click.command()
@click.option("--board", "boards", multiple=True, default=("qemu-mps2-an386", "qemu-mps2-an385"),
              show_default=True)
@click.option("--models", "choice", type=click.Choice(["auto", "reference", "code"]), default="auto",
              show_default=True,
              help="reference: the trained .tflite files in ../shared/models/mlperf-tiny; "
                   "code: the architectures of benchmarks/models.py; auto: reference when present.")
@click.option("--timing-board", default="nucleo-l4r5zi", show_default=True,
              help="Board whose core timing, flash and clock the cycle estimate uses.")
@click.option("--optimize", type=click.Choice(["balanced", "speed", "size"]), default="balanced", show_default=True,
              help="The builds' aim (build --optimize): speed may spend more RAM, size fewer flash bytes.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None)
def main(boards, choice, optimize, timing_board, json_path):
    """Build, profile and tabulate the MLPerf Tiny models."""
    source = pick_source(choice)
    what = (f"the MLPerf Tiny reference models ({SHARED_MODELS})" if source == "reference"
            else "the MLPerf Tiny architectures of benchmarks/models.py (seeded weights)")
    click.echo(f"models: {what}; build --optimize {optimize}")
    results = {}
    for requested in boards:
        b = load_board(requested)
        board = b.name  # an alias (qemu, qemu-m55) finds its anchors too
        target = load_board(timing_board)
        timed = b.core is not None and target.core is not None and b.core.cpu == target.core.cpu
        rows = bench_board(board, source, timing_board if timed else None, optimize)
        results[board] = rows
        where = {"qemu-mps2-an386": "mps2-an386", "qemu-mps3-an547": "mps3-an547, Helium kernels"}
        click.echo(f"\n{board} (ratios against TFLite Micro + CMSIS-NN on "
                   f"{where.get(board, 'mps2-an386 only: none here')})")
        click.echo(table(rows))
        if timed:
            timing = timing_for(board, timing_board)
            click.echo(f"\n{board} instruction stream, estimated cycles with {timing_board} timing at "
                       f"{timing.memory.clock_hz / 1e6:g} MHz, beside published MLPerf Tiny latencies "
                       "on that board")
            click.echo(cycles_table(rows))
            click.echo("\n" + "\n".join([
                "est. cycles: P (taken-branch refill) = 2; the P=1..3 column is the range the TRM allows.",
                "flash: share of the estimate that is flash data-cache stalls. est/pub: estimate over",
                "the published latency (a ratio above 1 is slower than the published result).",
                *(["published figures are for the trained reference models; these are the in-code",
                   "architectures (VWW's differs from the reference model's by 25% in instructions)."]
                  if source == "code" else []),
                f"assumptions: {assumptions(timing)}"]))
    if json_path:
        json_path.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
