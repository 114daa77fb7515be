"""Helium (MVE) kernels for cores whose board says `core.mve` (codegen/table.py
picks them by the board's features): FULLY_CONNECTED and ungrouped CONV_2D
as one int8 GEMM (templates/kernels/mve/gemm.c.j2).

Each output channel's dot product runs 16 int8 lanes at a time with
VMLADAVA (multiply, add across the lanes, accumulate into a scalar); four
channels share each input vector. Weights are packed at build time in the
order the kernel reads them: per block of MVE_UNITS channels, per 16-byte
chunk of the row, the block's channels' 16 bytes one after the other, rows
zero-padded to whole chunks and the last block to whole channels. The
input's last, partial chunk is loaded tail-predicated (VCTP8 + a zeroing
load), so no byte past the row is read and the padding meets zeros.

Requantization runs on the four accumulators of a block as one vector,
bit-exact with TFLM's two-rounding MultiplyByQuantizedMultiplier:
  - left shift (shift > 0) by VSHL, wrapping as TFLM's int32 product does;
  - SaturatingRoundingDoublingHighMul is exactly VQRDMULH (both give
    floor((2ab + 2^31) / 2^32), saturating only INT32_MIN * INT32_MIN);
  - RoundingDivideByPOT rounds half away from zero; VRSHL by -n rounds half
    up, so negative values first lose 1 (saturating, the sign mask ANDed
    with the negative shift count is -1 only when a right shift happens).
A context returns None when the plain row suits the layer better (sparse
weights, a fused residual ADD, grouped convolutions): the table falls back.
"""
from __future__ import annotations

import numpy as np

from ..layer import Layer
from .common import channel_multipliers, folded_bias, fused_activation
from .conv import check_io, check_weights, geometry, lag
from . import sparse
from .depthwise import depthwise_conv_2d
from .elementwise import add, sub
from .pooling import average_pool_2d
from .fully_connected import fully_connected

LANES = 16        # int8 lanes of one Q register
# Instructions per MAC of the Helium GEMM, measured on the MLPerf Tiny
# models' 1x1 convolutions (0.21-0.30 on mps3-an547): sparse weights are only
# kept when sparse.py's model of the sparse kernel beats this.
MVE_MAC_COST = 0.3
MVE_UNITS = 4     # output channels sharing each input vector (one int32x4 to requantize)


def pack_mve(rows: np.ndarray) -> tuple[np.ndarray, int]:
    """(units, k) int8 rows -> the flat int8 stream the kernel walks, and the
    number of 16-byte chunks per row."""
    units, k = rows.shape
    chunks = -(-k // LANES)
    blocks = -(-units // MVE_UNITS)
    padded = np.zeros((blocks * MVE_UNITS, chunks * LANES), np.int8)
    padded[:units, :k] = rows
    stream = padded.reshape(blocks, MVE_UNITS, chunks, LANES).transpose(0, 2, 1, 3)
    return stream.reshape(-1), chunks


def _pad(values: np.ndarray, n: int, fill: int = 0) -> np.ndarray:
    out = np.full(n, fill, np.int64)
    out[:len(values)] = values
    return out


def gemm_context(layer: Layer, rows: np.ndarray, bias: np.ndarray, scales, float_product: bool) -> dict:
    """Numbers for templates/kernels/mve/gemm.c.j2: packed weights, folded
    bias and the requantization vectors."""
    units, k = rows.shape
    stream, chunks = pack_mve(rows)
    g = requant_vectors(layer, scales, units, bias, float_product)
    return {**g, "k": k, "chunks": chunks - (1 if k % LANES else 0), "tail": k % LANES,
            "last": units - (g["blocks"] - 1) * MVE_UNITS, "fuse": None,
            "weights": layer.const("weights", stream, "int8_t")}


def _sparse_wins(layer: Layer) -> bool:
    """Sparse storage over the Helium GEMM: for --optimize size, as the plain
    kernels decide it (smaller constants); otherwise only where sparse.py's
    model of the sparse kernel beats the GEMM's instructions."""
    if layer.storage == "size":
        return sparse.stores_sparse(layer)
    est = sparse.choose(layer.graph, layer.node, layer.storage)
    if est is None or est["format"] != sparse.FORMAT:
        return False
    macs = est["model_instructions_dense"] / sparse.COST["dense_mac"][layer.node.op.value]
    return est["model_instructions_sparse"] < MVE_MAC_COST * macs


def _int4(layer: Layer) -> bool:
    """INT4 weights take the plain rows (packed nibbles read in place, with the
    DSP path the M55 also has): the Helium kernels' streams are int8."""
    return layer.has_input(1) and layer.input(1).dtype == "int4"


def fully_connected_mve(layer: Layer) -> dict | None:
    if _int4(layer) or _sparse_wins(layer):
        return None
    fully_connected(Layer(layer.graph, layer.node, storage=layer.storage))  # the plain kernel's checks
    w = layer.input(1)
    units, depth = w.shape
    bias = folded_bias(layer, w.data, 2, -layer.input().zero_point)
    g = gemm_context(layer, w.data.reshape(units, depth), bias, w.quant.scale,
                     float_product=not w.quant.per_channel)
    return {"batches": layer.input().size // depth, "depth": depth, "g": g, "shared_args": True}


def conv_2d_mve(layer: Layer) -> dict | None:
    """Ungrouped CONV_2D: a 1x1, stride-1, unpadded one reads each pixel's
    channels in place; any other window is copied into scratch first, taps
    outside the input set to the input zero point (with the offset folded
    into the bias they add 0, as TFLM's skipped taps do)."""
    if _int4(layer):
        return None
    if "residual_add" in layer.options:
        return _conv_2d_add_mve(layer)
    if layer.options.get("depthwise_as_conv") or _sparse_wins(layer):
        return None
    check_io(layer)
    w = layer.input(1)
    oc, kh, kw, ci = w.shape
    if layer.input().shape[3] != ci:
        return None  # grouped: the plain kernel
    check_weights(layer, 0, oc)
    geo = geometry(layer, kh, kw, oc)
    k = kh * kw * ci
    direct = (kh == kw == 1 and geo["stride_h"] == geo["stride_w"] == 1
              and geo["pad_h"] == geo["pad_w"] == 0)
    # Shared window (as the DSP kernel's): the two pixels of a pair (same
    # output row: out_w even) have windows stride_w columns apart that
    # overlap when stride_w < k_w. With rows taken column by column (filter
    # reordered to O,W,H,I here), pixel 1's row is pixel 0's shifted by
    # stride_w columns: one copy of k_w + stride_w columns serves both, less
    # scratch (the arena's peak on ResNet-8) and fewer bytes copied.
    shared = (not direct and geo["dil_w"] == 1 and geo["stride_w"] < kw and geo["out_w"] % 2 == 0)
    rows = w.data.transpose(0, 2, 1, 3).reshape(oc, k) if shared else w.data.reshape(oc, k)
    bias = folded_bias(layer, w.data, 2, geo["in_offset"])
    g = gemm_context(layer, rows, bias, w.quant.scale, float_product=False)
    ctx = {**geo, "in_c": ci, "out_c": oc, "g": g, "im2col": not direct, "shared": shared,
           "pixels": geo["batches"] * geo["out_h"] * geo["out_w"], "shared_args": True,
           # pixel pairs in row-major order; both windows are copied before
           # the pair's first write
           "inplace_lag": lag(layer, geo, block=2, read_first=not direct)}
    if shared:
        ctx["scratch_bytes"] = (kw + geo["stride_w"]) * kh * ci
    elif not direct:
        ctx["scratch_bytes"] = 2 * k
    return ctx


def requant_vectors(layer: Layer, scales, channels: int, bias: np.ndarray | None,
                    float_product: bool = False, group: int = MVE_UNITS, order=None) -> dict:
    """The requantization part of `g` (templates/kernels/mve/gemm.c.j2:
    requant) for `channels` outputs, padded to whole int32x4 groups: bias,
    multiplier, left shift (only when some channel has one) and the right
    shift as VRSHL's negative count. `group` is the padding unit; `order`
    permutes the padded channels (the depthwise kernel's even/odd lanes)."""
    scratch = Layer(layer.graph, layer.node, storage=layer.storage)  # channel_multipliers' own arrays are not emitted
    mult_name, shift_name = channel_multipliers(scratch, scales, channels, float_product=float_product)
    by_name = {c.name: c.values.astype(np.int64) for c in scratch.constants}
    mult, shift = by_name[mult_name], by_name[shift_name]
    n = -(-channels // group) * group
    order = np.arange(n) if order is None else order

    def vec(values):
        return _pad(values, n)[order]

    act_min, act_max = fused_activation(layer)
    return {
        "units": channels, "blocks": n // MVE_UNITS,
        "bias": layer.const("bias_folded", vec(bias), "int32_t") if bias is not None else None,
        "mult": layer.const("mult", vec(mult), "int32_t"),
        "left": layer.const("left", vec(np.maximum(shift, 0)), "int32_t")
                if np.any(shift > 0) else None,
        "right": layer.const("right", vec(np.minimum(shift, 0)), "int32_t"),
        "out_offset": layer.output().zero_point, "act_min": act_min, "act_max": act_max,
    }


DW_LANES = 8  # int16 lanes: output channels per step of the depthwise kernel


def depthwise_mve(layer: Layer) -> dict | None:
    """DEPTHWISE_CONV_2D, any depth multiplier: eight output channels per
    step (templates/kernels/mve/depthwise_conv_2d.c.j2)."""
    if _int4(layer):
        return None
    plain = depthwise_conv_2d(Layer(layer.graph, layer.node, storage=layer.storage))  # the plain kernel's checks and geometry
    geo = {k: plain[k] for k in ("batches", "in_h", "in_w", "out_h", "out_w", "k_h", "k_w",
                                 "stride_h", "stride_w", "dil_h", "dil_w", "pad_h", "pad_w",
                                 "y_lo", "y_hi", "x_lo", "x_hi", "has_interior", "has_border",
                                 "in_offset", "out_offset", "act_min", "act_max", "inplace_lag")}
    w = layer.input(1)
    _, kh, kw, oc = w.shape
    c = layer.input().shape[3]
    taps = kh * kw
    per_channel = w.data.reshape(taps, oc).T  # (oc, taps)
    groups = -(-oc // DW_LANES)
    n = groups * DW_LANES
    packed = np.zeros((n, taps), np.int64)
    packed[:oc] = per_channel
    packed = packed.reshape(groups, DW_LANES, taps).transpose(0, 2, 1).reshape(-1)
    # per group: the even lanes' channels, then the odd lanes' (VMULLB, VMULLT)
    order = (np.arange(groups)[:, None] * DW_LANES + np.r_[0:DW_LANES:2, 1:DW_LANES:2]).reshape(-1)
    # every pixel takes the folded bias: border windows are zero-point padded
    folded = folded_bias(layer, per_channel, 2, geo["in_offset"])
    g = requant_vectors(layer, w.quant.scale, oc, folded, group=DW_LANES, order=order)
    ctx = {**geo, "in_c": c, "out_c": oc, "depth_mult": oc // c, "taps": taps, "g": g,
           "n_groups": groups, "ragged": oc % DW_LANES != 0,
           "weights": layer.const("weights", packed, "int8_t"), "offsets": None}
    if geo["has_border"]:
        ctx["scratch_bytes"] = taps * c
    if oc != c:
        # input channel of each output channel, for the gathers; padded
        # lanes point at channel 0 (their loads are predicated off anyway)
        ctx["offsets"] = layer.const("in_channel", _pad(np.arange(oc) // (oc // c), n), "uint16_t")
    return ctx


def add_mve(layer: Layer) -> dict | None:
    """ADD / SUB of same-shape operands (templates/kernels/mve/add.c.j2);
    broadcasting ones keep the plain kernel. Every right shift of TFLM's ADD
    is at least 1 bit for the operands (multipliers below one) and is
    checked for the output."""
    ctx = add(Layer(layer.graph, layer.node, storage=layer.storage)) if layer.node.op.value == "ADD" else \
        sub(Layer(layer.graph, layer.node, storage=layer.storage))
    loops = ctx["loops"]
    if len(loops) != 1 or loops[0]["strides"] != [1, 1]:
        return None
    keys = ("a", "b", "a_offset", "b_offset", "out_offset", "act_min", "act_max", "inplace",
            "sign", "left_shift", "a_mult", "a_shift", "b_mult", "b_shift", "out_mult", "out_shift")
    if any(ctx[k] > 0 for k in ("a_shift", "b_shift", "out_shift")):
        return None  # TFLM's multipliers below one shift right; anything else keeps the plain kernel
    if not (ctx["a"].startswith("in") and ctx["b"].startswith("in")):
        return None  # a constant operand: the plain kernel
    return {**{k: ctx[k] for k in keys}, "count": loops[0]["size"]}


def average_pool_mve(layer: Layer) -> dict | None:
    return average_pool_2d(layer)


def _conv_2d_add_mve(layer: Layer) -> dict | None:
    """A CONV_2D with the residual ADD that reads its output folded in
    (passes/fuse.py; generate._fusable lets it happen when both halves take
    Helium kernels). Each block of four conv outputs, requantized and clamped
    as the conv alone would be, goes through add.c.j2's arithmetic with the
    skip operand (in1) before it is stored, so the sum never takes arena
    space of its own. Every output byte is written right after the skip byte
    at the same index was read, and no other skip byte is read after that:
    out may lie exactly on in1 (lag 0)."""
    fused = layer.options["residual_add"]
    conv, node = fused["conv"], fused["add"]
    ctx = conv_2d_mve(Layer(layer.graph, conv, layer.constants, storage=layer.storage))
    a = add_mve(Layer(layer.graph, node, layer.constants, storage=layer.storage))
    if ctx is None or a is None or a["sign"] != "+":
        raise layer.refuse("residual ADD folded into a convolution that cannot take it")
    first = node.inputs[0] == conv.outputs[0]  # the conv's value is the ADD's first operand
    conv_side, skip_side = ("a", "b") if first else ("b", "a")
    ctx["g"]["fuse"] = {
        "left_shift": a["left_shift"], "out_offset": a["out_offset"],
        "act_min": a["act_min"], "act_max": a["act_max"],
        "out_mult": a["out_mult"], "out_shift": a["out_shift"],
        **{f"conv_{k}": a[f"{conv_side}_{k}"] for k in ("offset", "mult", "shift")},
        **{f"skip_{k}": a[f"{skip_side}_{k}"] for k in ("offset", "mult", "shift")},
    }
    ctx["inplace_lags"] = {1: 0}
    return ctx
