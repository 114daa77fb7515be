"""Where the flash of a model's constants goes: a per-symbol breakdown of the
tinycomp_w_* arrays the linker kept (`nm -S` of firmware.elf, so what
--gc-sections dropped is not counted), by kind, beside TFLM's "weights +
biases" (shared/ANCHORS.md for the MLPerf Tiny reference models; the int8
weights plus int32 biases of the model's own tensors otherwise).

    python -m benchmarks.constants [--board qemu-mps2-an386] [--models kws,ic:size,digits80:size,...]

A model name with ":size" is built with --optimize size, else balanced.

Kinds, per layer: weights (one byte per stored int8 weight: every weight of a
dense layer, the nonzeros of a sparse stream), indices (the rest of a sparse
stream: counts and offsets), pad/copies (bytes of weight arrays beyond that:
word padding, widened or doubled copies, a second layout of the same
weights), biases, requant (multipliers and shifts; the DSP depthwise kernel's
per-channel parameter block is split by its fields: per channel one or two
biases, then multiplier, rounding term and shift; the shared 3x3 kernel's
block also holds the weights as doubled int16: one byte each is weights, the
other pad/copies), tables (lookup tables: softmax exp, ADD, LUT ops), other.

digits is the project's INT8 digits CNN with BatchNorm (tests/support/models);
digits80 is it with the smallest 80% of each CONV_2D / FULLY_CONNECTED
filter's weights zeroed.
"""
from __future__ import annotations

import re

import click
import numpy as np

from benchmarks.bench import ROOT, model_bytes, pick_source, weights_and_biases

# TFLM's weights + biases of the reference models (shared/ANCHORS.md)
TFLM_WEIGHTS_BIASES = {"kws": 24_480, "vww": 219_176, "ic": 78_856, "ad": 270_992}
KINDS = ("weights", "indices", "pad/copies", "biases", "requant", "tables", "other")
WEIGHT_ARRAYS = ("weights", "dsp_weights", "values", "w", "wt", "wf", "weight_pairs")
BIASES = ("bias", "bias_folded", "fbias")
REQUANT = ("mult", "shift", "right", "rshift", "rmult", "left", "mshift", "requant")
# the DSP depthwise block: per channel folded bias, raw bias (not in the band
# build of the shared 3x3 kernel), multiplier, rounding term, exponent, and
# in the shared 3x3 kernel's block the weights as doubled int16
DSP_PARAMS = "dsp_params"
SYMBOL = re.compile(r"tinycomp_w_l(\d+)_(\w+)")


def digits_models() -> dict[str, bytes]:
    from tests.support.models import digits_model
    from tests.support.pruning import pruned_tflite

    buf = digits_model().tflite
    return {"digits": buf, "digits80": pruned_tflite(buf, 0.8)}


def _layer_weights(graph, index: int) -> tuple[int, int]:
    """(int8 weights, nonzeros) of node `index`'s filter, (0, 0) if none."""
    node = graph.nodes[index]
    for t in node.inputs[1:2]:
        w = graph.tensor(t) if t >= 0 else None
        if w is not None and w.is_const and w.dtype == "int8":
            return w.size, int(np.count_nonzero(w.data))
    return 0, 0


def _dsp_params_split(graph, index: int, size: int) -> dict[str, int]:
    """A DSP depthwise block's bytes by kind: 4 bytes a field and channel,
    plus 2 bytes a weight when the block holds the weights (int16)."""
    count, _ = _layer_weights(graph, index)
    channels = graph.tensor(graph.nodes[index].outputs[0]).shape[-1]
    inline = 2 * count if (size - 2 * count) in (16 * channels, 20 * channels) else 0
    fields = (size - inline) // (4 * channels)
    return {"weights": inline // 2, "pad/copies": inline // 2,
            "biases": 4 * channels * (fields - 3), "requant": 12 * channels}


def breakdown(graph, symbols: dict[str, int]) -> tuple[dict[str, int], list[tuple[str, int, str]]]:
    """Bytes per kind, and (symbol, bytes, kind) rows, of the linked symbols."""
    kinds = dict.fromkeys(KINDS, 0)
    rows, claimed = [], {}
    for name, size in sorted(symbols.items()):
        m = SYMBOL.fullmatch(name)
        index, suffix = (int(m.group(1)), m.group(2)) if m else (-1, name)
        split = {}
        if suffix in WEIGHT_ARRAYS and index >= 0:
            count, nonzero = _layer_weights(graph, index)
            left = max(count - claimed.get(index, 0), 0)
            if suffix == "values":  # a sparse stream: nonzero weights and their indices
                split = {"weights": min(nonzero, left), "indices": size - min(nonzero, left)}
            else:
                split = {"weights": min(size, left), "pad/copies": size - min(size, left)}
            claimed[index] = claimed.get(index, 0) + split["weights"]
        elif suffix == DSP_PARAMS and index >= 0:
            split = _dsp_params_split(graph, index, size)
        elif suffix in BIASES:
            split = {"biases": size}
        elif suffix in REQUANT:
            split = {"requant": size}
        elif "table" in suffix or "lut" in suffix or suffix in ("exp", "sigmoid"):
            split = {"tables": size}
        else:
            split = {"other": size}
        for kind, n in split.items():
            kinds[kind] += n
        rows.append((name, size, "+".join(k for k, n in split.items() if n)))
    return kinds, rows


DEFAULT_MODELS = "kws,vww,ic,ad,kws:size,vww:size,ic:size,ad:size,digits,digits80,digits80:size"


def measure(name: str, buf: bytes, board_name: str, optimize: str) -> dict:
    from tinycomp.boards import load_board
    from tinycomp.frontends.tflite import parse_tflite
    from tinycomp.pipeline import build_graph
    from tinycomp.sweep import weight_symbols

    graph = parse_tflite(buf, name=name)
    own = weights_and_biases(graph)
    out = ROOT / ".cache" / "constants" / board_name / f"{name}-{optimize}"
    info = build_graph(graph, buf, out, board_name, optimize=optimize)
    symbols = weight_symbols(load_board(board_name), out / "build" / "firmware.elf")
    kinds, rows = breakdown(graph, symbols)
    total = sum(symbols.values())
    label = name if optimize == "balanced" else f"{name}:{optimize}"
    return {"model": label, "board": board_name, "kinds": kinds, "total": total, "symbols": rows,
            "flash": info["flash_bytes"],
            "tflm": TFLM_WEIGHTS_BIASES.get(name, own),
            "anchor": name in TFLM_WEIGHTS_BIASES and optimize == "balanced", "own_figure": own}


def table(results: list[dict]) -> str:
    head = f"{'model':<14}" + "".join(f"{k:>11}" for k in KINDS) + f"{'total':>9}{'TFLM w+b':>10}{'ratio':>7}{'flash':>9}"
    lines = [head]
    for r in results:
        lines.append(f"{r['model']:<14}" + "".join(f"{r['kinds'][k]:>11,}" for k in KINDS)
                     + f"{r['total']:>9,}{r['tflm']:>10,}{r['total'] / r['tflm']:>6.2f}x{r['flash']:>9,}")
    return "\n".join(lines)


@click.command()
@click.option("--board", "board_name", default="qemu-mps2-an386", show_default=True)
@click.option("--models", "names", default=DEFAULT_MODELS, show_default=True)
@click.option("--symbols", is_flag=True, help="Also list every linked constant and its kind.")
def main(board_name, names, symbols):
    """Per-kind bytes of the constants the firmware holds, beside TFLM's weights + biases."""
    wanted = [tuple(w.split(":")) if ":" in w else (w, "balanced") for w in names.split(",")]
    source = pick_source("reference")
    bufs = {n: model_bytes(n, source) for n in TFLM_WEIGHTS_BIASES if n in {w for w, _ in wanted}}
    if {"digits", "digits80"} & {w for w, _ in wanted}:
        bufs.update(digits_models())
    results = [measure(n, bufs[n], board_name, optimize) for n, optimize in wanted]
    click.echo(f"{board_name}: bytes of tinycomp_w_* in firmware.elf (nm), by kind")
    click.echo(table(results))
    click.echo("flash: the whole firmware image's flash (code, constants, runtime, .data)")
    click.echo("TFLM w+b: shared/ANCHORS.md for kws/vww/ic/ad; int8 weights + int32 biases of the "
               "model's own tensors otherwise")
    for r in results:
        if r["anchor"]:
            click.echo(f"  {r['model']}: the model's own int8 weights + int32 biases: {r['own_figure']:,}")
    if symbols:
        for r in results:
            click.echo(f"\n{r['model']}")
            for name, size, kind in r["symbols"]:
                click.echo(f"  {name:<40} {size:>8,}  {kind}")


if __name__ == "__main__":
    main()
