"""Sparse weight storage for FULLY_CONNECTED and CONV_2D, chosen per layer
when it is smaller than dense int8 AND, by a calibrated cost model, not slower
than the dense kernel on a DSP core (`--optimize balanced`, `speed`), or,
with `--optimize size`, whichever of dense and the three formats below makes
the layer's constants smallest.

Rows are a dense unit or a conv filter. A weight's *position* in its row is
its input offset (see below) for offset-sparse; for gap and bitmap it is its
index in the row wherever the filter's window rows are contiguous in the
input (FULLY_CONNECTED; CONV_2D without groups and without width dilation),
and the kernel turns an index j into the input offset j + (j / run) * jump
(run: weights per window row, kw * C; jump: the padded input's bytes between
the end of one window row and the start of the next). Elsewhere (grouped or
width-dilated convs) the position is the input offset itself.

Format "offset-sparse" (every aim): one byte stream per layer, rows back to
back:

    count   nonzeros in the row                  (idx_bytes, little-endian)
    pairs   per nonzero: input offset, weight    (idx_bytes LE, then 1 byte)

Format "gap" (`--optimize size`): three sections, each continuous over all
rows (no per-row padding):

    counts  nonzeros of each row                 (count_bytes each, LE)
    values  the nonzeros, rows in order          (int8 bytes; INT4: nibbles,
                                                  low nibble first, as TFLite)
    gaps    per nonzero, position minus the previous nonzero's position
            (the first: position + 1), as 4-bit codes, low nibble first:
            code 15 adds 15 and another code follows; code c < 15 adds c + 1
            and ends the gap. A gap of 40 is 15, 15, 9.

The last section ends on a padding nibble 0 when its length is odd. At the
digits CNN's 90% zeros a gap takes 1.3 codes on average: ~1.7 bytes per
nonzero with the value instead of offset-sparse's 3 (2-byte offsets).

Format "bitmap" (`--optimize size`): two sections:

    bitmaps one bit per position, row_bytes per row (bit b of byte k is
            position 8k + b; set: the weight is nonzero)
    values  the nonzeros, rows in order          (as in "gap")

It wins at 30-60% density: a bit per weight against a code of 4 bits or
more per nonzero.

The offset: where the weight's input sits relative to the output pixel's
window origin: (ky * dil_h * PW + kx * dil_w) * C + group * filter_c + c for
a conv (PW the width of the zero-padded input), the column for a dense unit.
idx_bytes is 1 when every offset and count is below 256, else 2.

Why offsets and not a bitmap for the default aims: the offset-sparse kernel
does exactly four instructions per nonzero (LDRB offset, LDRSB weight, LDRSB
input, MLA; the pointer step and loop test are shared by four nonzeros) and
nothing per zero weight. A bitmap walk pays per bitmap byte and per set bit
for the bit search, and at the digits CNN's 85% sparsity it was twice slower
than the dense DSP kernel; the gap kernel decodes a nibble per code. Both
are there for `--optimize size`, where bytes decide.

Why a padded input: with every tap in bounds, each nonzero's offset is a
build-time constant for every output pixel, and the input offset folds into
the bias for all of them. The pad value is the input zero point, whose
(x - zp) is 0: a padded tap adds exactly what TFLM's skipped tap adds.
The padded copy lives in the layer's scratch (RAM), made once per batch.

Biases under `--optimize size` (`_bias`): the folded bias, or the raw bias
with the fold computed in the kernel, whichever stores in fewer bytes; int16
with a literal base added in the kernel whenever the values span less than
2^16; no array when every value is the same. The kernel's fold: gap and
bitmap rows sum their values and add in_offset * sum once per row (and
block of pixels); offset-sparse adds in_offset to each input it reads. Both
are sum((x + in_offset) * w), 0 on a padded tap as before.

Gap and bitmap convs walk a row's stream once for up to PIXEL_BLOCK output
pixels of an output row (their accumulators in registers): the decode, their
costly part, is shared.

Arithmetic equals the dense kernels and TFLM: the same int32 products are
summed, only the zero ones are left out.
"""
from __future__ import annotations

import numpy as np

from ...frontends.tflite import pack_int4
from ..layer import Layer
from .common import bias_const, channel_multipliers, folded_bias, fused_activation, uniform_pair
from .conv import check_io, check_weights, conv_2d, geometry, lag
from .fully_connected import fully_connected

FC_SPARSE = "kernels/fully_connected_sparse.c.j2"
CONV_SPARSE = "kernels/conv_2d_sparse.c.j2"
FORMAT = "offset-sparse"

# Cost model, in instructions (QEMU -icount) on Cortex-M4 (an386), fitted to
# `tinycomp profile` of one layer at 80-95% sparsity (4x4x16 -> 32 3x3 SAME
# conv; 128 -> 32 dense): instructions = per_nz * nonzeros * outputs/row
# + per_out * outputs (requantization, loop set-up, the padded copy and the
# call, amortised). Measured: conv 4.83 per nonzero + 56 per output, FC 4.78
# + 47; dense DSP conv 1.50 and FC 1.53 per MAC. Break-even is about 23%
# density for a 3x3x16 filter. (Measured before the DSP GEMM unpacked its
# rows to int16 once: on the same layers it now runs 1.15 and 1.41. Refitting
# would store pruned layers of about 16-23% density dense in balanced builds,
# a compression-policy change left to its owner.) The dense figures are the DSP kernels', the
# faster dense case: a layer not slower than them on an M4 is far from slower
# than the plain dense kernels on an M3 (3-4x the DSP's instructions there),
# where the sparse kernel, which uses no DSP instruction, costs the same.
# The 2-byte figure adds LDRB + ORR per nonzero (estimated, not fitted).
COST = {
    "sparse_nz": {1: 4.8, 2: 6.8},
    "sparse_out": {"CONV_2D": 56.0, "FULLY_CONNECTED": 47.0},
    "pad_byte": 0.0,  # folded into sparse_out above
    "dense_mac": {"CONV_2D": 1.5, "FULLY_CONNECTED": 1.53},
    # INT4 (estimated, not fitted): the dense GEMM unpacks nibbles (measured
    # 1.59 and 1.71 per MAC on a 3x3x32 conv and a 512 -> 64 FC); the sparse
    # kernel adds a bitfield extract per nonzero and a load per two.
    "int4_sparse_nz": {1: 5.8, 2: 7.8},
    "int4_dense_mac": {"CONV_2D": 1.6, "FULLY_CONNECTED": 1.7},
}


def _idx_bytes(max_offset: int, max_count: int) -> int | None:
    top = max(max_offset, max_count)
    return 1 if top < 256 else 2 if top < 65536 else None


def encode(weights: np.ndarray, offsets: np.ndarray, idx_bytes: int, int4: bool = False) -> np.ndarray:
    """The stream (uint8) of weights (rows, k), offsets (rows, k) the input
    offset of each weight position. INT4 rows: the count, every nonzero's
    offset, then the nonzero values packed two per byte (first in the low
    nibble, as TFLite packs them; an odd count leaves the last high nibble 0)."""
    out = []
    for row, off in zip(weights, offsets):
        nz = np.flatnonzero(row)
        out.append(_le(np.array([nz.size]), idx_bytes))
        if int4:
            out += [_le(off[nz], idx_bytes), pack_int4(row[nz])]
            continue
        pairs = np.concatenate([_le(off[nz], idx_bytes).reshape(nz.size, idx_bytes),
                                row[nz].astype(np.int8).view(np.uint8).reshape(-1, 1)], axis=1)
        out.append(pairs.reshape(-1))
    return np.concatenate(out).astype(np.uint8)


def _le(v: np.ndarray, n: int) -> np.ndarray:
    v = np.asarray(v, np.int64)
    return np.stack([(v >> (8 * i)) & 0xFF for i in range(n)], axis=-1).reshape(-1).astype(np.uint8)


def _values(weights: np.ndarray, int4: bool) -> np.ndarray:
    """The nonzeros of all rows, in order: int8 bytes or INT4 nibbles."""
    nz = weights[weights != 0].astype(np.int64)
    return pack_int4(nz) if int4 else nz.astype(np.int8).view(np.uint8)


def _count_bytes(weights: np.ndarray) -> int | None:
    return _idx_bytes(0, int(np.count_nonzero(weights, axis=1).max(initial=0)))


def encode_gap(weights: np.ndarray, positions: np.ndarray, int4: bool = False) -> tuple[np.ndarray, dict]:
    """The "gap" stream (module docstring) and where its sections start."""
    cb = _count_bytes(weights)
    r, c = np.nonzero(weights)
    pos = positions[r, c].astype(np.int64)
    first = np.ones(r.size, bool)
    first[1:] = r[1:] != r[:-1]
    prev = np.where(first, -1, np.concatenate([[-1], pos[:-1]]))
    gaps = pos - prev
    assert (gaps >= 1).all(), "positions must increase along a row"
    escapes = (gaps - 1) // 15
    codes = np.full(int((escapes + 1).sum()), 15, np.int64)
    codes[np.cumsum(escapes + 1) - 1] = (gaps - 1) - 15 * escapes
    counts = _le(np.count_nonzero(weights, axis=1), cb)
    values = _values(weights, int4)
    stream = np.concatenate([counts, values, pack_int4(codes)]).astype(np.uint8)
    return stream, {"count_bytes": cb, "values_at": counts.size, "gaps_at": counts.size + values.size}


def encode_bitmap(weights: np.ndarray, positions: np.ndarray, int4: bool = False) -> tuple[np.ndarray, dict]:
    """The "bitmap" stream (module docstring) and its row length in bytes."""
    rows = weights.shape[0]
    row_bytes = (int(positions.max(initial=0)) + 8) // 8
    bits = np.zeros((rows, row_bytes * 8), np.uint8)
    r, c = np.nonzero(weights)
    bits[r, positions[r, c]] = 1
    bitmaps = np.packbits(bits, axis=1, bitorder="little").reshape(-1)
    stream = np.concatenate([bitmaps, _values(weights, int4)]).astype(np.uint8)
    return stream, {"row_bytes": row_bytes, "values_at": bitmaps.size}


def stream_bytes(rows: int, nonzeros: int, idx_bytes: int, odd_rows: int | None = None) -> int:
    """Bytes of the stream; odd_rows (INT4: rows with an odd count) given,
    half a byte per value plus the pad nibble of those rows."""
    if odd_rows is not None:
        return rows * idx_bytes + nonzeros * idx_bytes + (nonzeros + odd_rows) // 2
    return rows * idx_bytes + nonzeros * (idx_bytes + 1)


def _conv_plan(layer: Layer) -> dict:
    """Padded-input geometry and per-weight input offsets of a CONV_2D."""
    w = layer.input(1).data
    oc, kh, kw, ci = w.shape
    c = layer.input().shape[3]
    geo = geometry(layer, kh, kw, oc)
    need_h = (geo["out_h"] - 1) * geo["stride_h"] + (kh - 1) * geo["dil_h"] + 1
    need_w = (geo["out_w"] - 1) * geo["stride_w"] + (kw - 1) * geo["dil_w"] + 1
    pad = bool(geo["pad_h"] or geo["pad_w"] or need_h > geo["in_h"] or need_w > geo["in_w"])
    ph, pw = (need_h, need_w) if pad else (geo["in_h"], geo["in_w"])
    ky, kx, cc = np.meshgrid(np.arange(kh), np.arange(kw), np.arange(ci), indexing="ij")
    base = ((ky * geo["dil_h"] * pw + kx * geo["dil_w"]) * c + cc).reshape(-1)
    fpg = oc // (c // ci)
    offsets = base[None, :] + (np.arange(oc) // fpg * ci)[:, None]
    # gap / bitmap positions: the index in the filter where each window row
    # is contiguous in the input (one group, no width dilation), else the offset
    if ci == c and geo["dil_w"] == 1:
        positions, run, jump = np.broadcast_to(np.arange(kh * kw * ci), (oc, kh * kw * ci)), kw * c, \
            (geo["dil_h"] * pw - kw) * c if kh > 1 else 0
    else:
        positions, run, jump = offsets, 0, 0
    return {"geo": geo, "pad": pad, "pad_hw": (ph, pw), "offsets": offsets,
            "positions": positions, "run": run, "jump": jump,
            "copy_rows": max(0, min(geo["in_h"], ph - geo["pad_h"])),
            "copy_cols": max(0, min(geo["in_w"], pw - geo["pad_w"]))}


STORAGE_AIMS = ("balanced", "size", "speed")  # build --optimize


def estimate(op: str, weights: np.ndarray, outputs_per_row: int, pad_bytes: int = 0,
             max_offset: int = 0, aim: str = "balanced", int4: bool = False) -> dict:
    """Bytes and modelled instructions of the dense and the sparse layout for
    one layer, and the choice by the user's aim: "balanced" sparse only when
    smaller and not slower, "size" whenever smaller, "speed" only when faster.
    int4: packed INT4 weights, dense half a byte each."""
    rows = weights.shape[0]
    nnz = int(np.count_nonzero(weights))
    counts = np.count_nonzero(weights.reshape(rows, -1), axis=1)
    ib = _idx_bytes(max_offset, int(counts.max(initial=0)))
    dense_bytes = (int(weights.size) + 1) // 2 if int4 else int(weights.size)
    dense_cost = COST["int4_dense_mac" if int4 else "dense_mac"][op] * weights.size * outputs_per_row
    if ib is None:
        return {"format": "dense", "reason": "offsets exceed 16 bits",
                "dense_bytes": dense_bytes, "sparse_bytes": None}
    sbytes = stream_bytes(rows, nnz, ib, int(np.count_nonzero(counts % 2)) if int4 else None)
    scost = (COST["int4_sparse_nz" if int4 else "sparse_nz"][ib] * nnz * outputs_per_row
             + COST["sparse_out"][op] * rows * outputs_per_row + COST["pad_byte"] * pad_bytes)
    smaller, not_slower = sbytes < dense_bytes, scost <= dense_cost
    if not smaller:
        fmt, reason = "dense", "sparse would not be smaller"
    elif aim == "size":
        fmt, reason = FORMAT, "smaller (--optimize size)"
    elif aim == "speed" and scost >= dense_cost:
        fmt, reason = "dense", "sparse would not be faster (--optimize speed)"
    elif not_slower:
        fmt, reason = FORMAT, "smaller and not slower" if aim == "balanced" else "faster (--optimize speed)"
    else:
        fmt, reason = "dense", "sparse would be slower than the dense DSP kernel"
    return {"format": fmt, "reason": reason, "dense_bytes": dense_bytes, "sparse_bytes": sbytes,
            "idx_bytes": ib, "density": round(nnz / max(weights.size, 1), 4),
            "model_instructions_dense": int(dense_cost), "model_instructions_sparse": int(scost)}


def choose(graph, node, aim: str = "balanced") -> dict | None:
    """The estimate for a FULLY_CONNECTED or CONV_2D node with int8 constant
    weights, or None when it has none."""
    layer = Layer(graph, node)
    op = node.op.value
    if op not in ("FULLY_CONNECTED", "CONV_2D") or len(node.inputs) < 2:
        return None
    w = layer.input(1)
    if not (w.is_const and w.dtype in ("int8", "int4")):
        return None
    int4 = w.dtype == "int4"
    if op == "FULLY_CONNECTED":
        if len(w.shape) != 2:
            return None
        per_row = max(layer.input().size // w.shape[1], 1)
        return estimate(op, w.data, per_row, 0, w.shape[1] - 1, aim, int4)
    if len(w.shape) != 4 or len(layer.input().shape) != 4:
        return None
    try:
        plan = _conv_plan(layer)
    except Exception:  # the dense context will refuse it with a proper message
        return None
    geo = plan["geo"]
    n = geo["batches"]
    pad_bytes = n * plan["pad_hw"][0] * plan["pad_hw"][1] * layer.input().shape[3] if plan["pad"] else 0
    return estimate(op, w.data.reshape(w.shape[0], -1), n * geo["out_h"] * geo["out_w"],
                    pad_bytes, int(plan["offsets"].max(initial=0)), aim, int4)


def pays(layer: Layer) -> bool:
    est = choose(layer.graph, layer.node, layer.storage)
    return est is not None and est["format"] == FORMAT


def _requant(layer: Layer, mult: str, shift: str, index: str) -> dict:
    """The requantization call's function and its per-output arguments
    (C expressions of `index`): literals when one pair serves every output."""
    values = {c.name: c.values for c in layer.constants}
    # tc_requant_fast equals tc_requant except for the multiplier INT32_MIN
    fn = "tc_requant" if (values[mult] == np.iinfo(np.int32).min).any() else "tc_requant_fast"
    pair = uniform_pair(layer, mult, shift)
    m, s = (str(pair[0]), str(pair[1])) if pair else (f"{mult}[{index}]", f"{shift}[{index}]")
    return {"requant": fn, "mult": m, "shift": s}


GAP, BITMAP = "gap", "bitmap"
# --optimize size's candidates; on equal bytes the earlier (faster) one wins
SIZE_FORMATS = ("dense", FORMAT, BITMAP, GAP)
# Net flash a sparse layer's own kernel adds over the dense one, estimated from
# builds of the issue-10 CNN for QEMU an386: with no charge, the unpruned
# model's two small convs went bitmap to save 23 B of constants and the flash
# grew by 128 B; with 80 B, the pruned model kept two small layers dense and its
# flash grew by 564 B (their dense DSP kernels are larger than the bitmap ones).
# 40 B gives the smallest flash of the three builds.
SPARSE_CODE_BYTES = 40


def _weights(layer: Layer) -> dict:
    """The filter as rows, and each weight's input offset and position
    (module docstring), with the conv's padded-input plan."""
    w = layer.input(1)
    rows = w.data.reshape(w.shape[0], -1)
    if layer.node.op.value == "FULLY_CONNECTED":
        cols = np.broadcast_to(np.arange(rows.shape[1]), rows.shape)
        return {"rows": rows, "offsets": cols, "positions": cols, "run": 0, "jump": 0, "int4": w.dtype == "int4"}
    return {"rows": rows, "int4": w.dtype == "int4", **_conv_plan(layer)}


def _constant_bytes(fmt: str, layer: Layer) -> int:
    scratch = _scratch(layer)
    dense_fn, sparse_fn = _KERNELS[layer.node.op.value]
    dense_fn(scratch) if fmt == "dense" else sparse_fn(scratch, fmt)
    return sum(k.values.nbytes for k in scratch.constants)


def layer_format(layer: Layer) -> str:
    """How the layer's weights are stored, as the storage aim decides:
    balanced / speed, offset-sparse where the cost model says so, else dense;
    size, the format whose constants (weights, biases, multipliers, shifts,
    streams: what flash holds) take the fewest bytes, each candidate built in
    full on a scratch layer, a sparse one charged SPARSE_CODE_BYTES for its
    kernel."""
    if layer.storage != "size":
        return FORMAT if pays(layer) else "dense"
    est = choose(layer.graph, layer.node, "size")
    if est is None:  # no constant int8 / INT4 filter
        return "dense"
    w = layer.input(1)
    # the formats whose counts and offsets fit their fields
    fits = {FORMAT: est["sparse_bytes"] is not None,
            GAP: _count_bytes(w.data.reshape(w.shape[0], -1)) is not None}
    sizes = {f: _constant_bytes(f, layer) + (0 if f == "dense" else SPARSE_CODE_BYTES)
             for f in SIZE_FORMATS if fits.get(f, True)}
    return min(sizes, key=sizes.get)  # on a tie the first, in SIZE_FORMATS order


def stores_sparse(layer: Layer) -> bool:
    return layer_format(layer) != "dense"


def dense_or_sparse(layer: Layer) -> dict:
    """FULLY_CONNECTED and CONV_2D: the kernel of the format layer_format picks."""
    dense_fn, sparse_fn = _KERNELS[layer.node.op.value]
    fmt = layer_format(layer)
    return dense_fn(layer) if fmt == "dense" else sparse_fn(layer, fmt)


def _stream(layer: Layer, fmt: str, w: dict) -> dict:
    """The layer's weight stream in `fmt` and what its kernel needs to walk it."""
    rows, int4 = w["rows"], w["int4"]
    if fmt == FORMAT:
        counts = np.count_nonzero(rows, axis=1)
        ib = _idx_bytes(int(w["offsets"].max(initial=0)), int(counts.max(initial=0)))
        stream, keys = encode(rows, w["offsets"], ib, int4), {"idx_bytes": ib}
    elif fmt == GAP:
        stream, keys = encode_gap(rows, w["positions"], int4)
    else:
        stream, keys = encode_bitmap(rows, w["positions"], int4)
    nonzeros = int(np.count_nonzero(rows))
    # a layer of zeros in gap / bitmap: no stream at all, each output is its bias
    name = layer.const("values", stream, "uint8_t") if nonzeros or fmt == FORMAT else None
    return {**keys, "format": fmt, "int4": int4, "run": w["run"], "jump": w["jump"],
            "nonzeros": nonzeros, "stream": name}


def _bias_storage(values: np.ndarray) -> tuple[str | None, int, int]:
    """(C type or None for no array, literal base, bytes) of a bias array
    stored as values - base: none when all are equal, int16 when they span
    less than 2^16, else int32."""
    v = np.asarray(values, np.int64)
    lo, hi = int(v.min(initial=0)), int(v.max(initial=0))
    if lo == hi:
        return None, lo, 0
    if -(1 << 15) <= lo and hi < 1 << 15:
        return "int16_t", 0, 2 * v.size
    if hi - lo < 1 << 16:
        return "int16_t", lo + (1 << 15), 2 * v.size
    fits = -(1 << 31) <= lo and hi < 1 << 31
    return "int32_t", 0, 4 * v.size if fits else 1 << 62


def _bias(layer: Layer, rows: np.ndarray, in_offset: int, suffix: str) -> dict:
    """The bias and how the kernel starts each accumulator: bias[o] + bias_base,
    and x_offset, the input offset the kernel folds in itself (0: folded into
    the bias; dot_sparse.c.j2). balanced / speed: the folded bias
    (bias_const). size: the folded or the raw bias, whichever stores smaller
    (the folded one on a tie: no work in the kernel), narrowed by
    _bias_storage."""
    folded = folded_bias(layer, rows, 2, in_offset)
    if layer.storage != "size":
        return {"bias": bias_const(layer, suffix, folded), "bias_base": 0, "x_offset": 0}
    raw = folded_bias(layer, rows, 2, 0)  # the bias alone, zeros without one
    choices = [(values, x_off, _bias_storage(values)) for values, x_off in ((folded, 0), (raw, in_offset))]
    values, x_off, (ctype, base, _) = min(choices, key=lambda c: c[2][2])
    name = layer.const(suffix if x_off == 0 else "bias", values - base, ctype) if ctype else None
    return {"bias": name, "bias_base": base, "x_offset": x_off}


def _fully_connected_sparse(layer: Layer, fmt: str = FORMAT) -> dict:
    fully_connected(_scratch(layer))  # the dense kernel's checks; its arrays are dropped
    w = layer.input(1)
    units, depth = w.shape
    act_min, act_max = fused_activation(layer)
    mult, shift = channel_multipliers(layer, w.quant.scale, units,
                                      float_product=not w.quant.per_channel)
    return {
        "template": FC_SPARSE, "shared_args": True,
        "batches": layer.input().size // depth, "depth": depth, "units": units,
        **_stream(layer, fmt, _weights(layer)),
        **_bias(layer, w.data, -layer.input().zero_point, "bias"),
        **_requant(layer, mult, shift, "o"),
        "out_offset": layer.output().zero_point,
        "act_min": act_min, "act_max": act_max,
    }


def _conv_2d_sparse(layer: Layer, fmt: str = FORMAT) -> dict:
    conv_2d(_scratch(layer))  # the dense kernel's checks of shapes, groups and quantization
    check_io(layer)
    w = layer.input(1)
    oc = w.shape[0]
    c = layer.input().shape[3]
    check_weights(layer, 0, oc)
    plan = _weights(layer)
    geo = plan["geo"]
    mult, shift = channel_multipliers(layer, w.quant.scale, oc)
    ph, pw = plan["pad_hw"]
    blocks = _pixel_blocks(geo["out_w"])
    return {
        **geo,
        **({"inplace_lag": _blocked_lag(layer, geo, plan["pad"], blocks[0][0])} if fmt != FORMAT else {}),
        "template": CONV_SPARSE, "shared_args": True,
        "in_c": c, "out_c": oc,
        "pad": plan["pad"], "p_h": ph, "p_w": pw,
        "copy_rows": plan["copy_rows"], "copy_cols": plan["copy_cols"],
        "in_zp": layer.input().zero_point,
        "scratch_bytes": ph * pw * c if plan["pad"] else 0,
        # every tap is in bounds of the padded input: one (folded) bias serves all pixels
        **_bias(layer, plan["rows"], geo["in_offset"], "bias_folded"),
        **_stream(layer, fmt, plan),
        **_requant(layer, mult, shift, "oc"),
        "pixel_blocks": blocks,
    }


PIXEL_BLOCK = 4  # gap / bitmap convs: output pixels sharing one decode of a row


def _blocked_lag(layer: Layer, geo: dict, padded: bool, block: int) -> int:
    """How far below its input the gap / bitmap conv's output may start
    (docs/KERNELS.md, inplace_lag). Padded: each batch's input is copied into
    scratch before the batch's first write (read first, one block per batch
    image). Otherwise windows are read from the input while a block's
    outputs are written: blocks of `block` pixels from the start of each
    output row, which are passes.memory.window_lag's blocks when they tile the
    row; else single pixels' bound plus the (block - 1) pixels' bytes a block
    may write beyond it."""
    if padded:
        return lag(layer, geo, block=geo["out_h"] * geo["out_w"], read_first=True)
    if geo["out_w"] % block == 0:
        return lag(layer, geo, block=block)
    return lag(layer, geo) + (block - 1) * layer.output().shape[3]


def _pixel_blocks(out_w: int) -> list[tuple]:
    """(pixels, first ox, end ox, accumulator names) of the gap / bitmap conv
    loops over an output row: blocks of PIXEL_BLOCK pixels (the stream walk,
    the costly part, is shared by them), single pixels for the rest."""
    n = min(PIXEL_BLOCK, out_w)
    full = out_w - out_w % n
    blocks = [(n, 0, full, [f"acc{k}" for k in range(n)] if n > 1 else ["acc"])]
    return blocks + ([(1, full, out_w, ["acc"])] if full < out_w else [])


_KERNELS = {"FULLY_CONNECTED": (fully_connected, _fully_connected_sparse),
            "CONV_2D": (conv_2d, _conv_2d_sparse)}


def _stream_bytes(layer: Layer, fmt: str) -> int:
    scratch = _scratch(layer)
    _stream(scratch, fmt, _weights(scratch))
    return sum(int(k.values.nbytes) for k in scratch.constants)


def _scratch(layer: Layer) -> Layer:
    """A fresh Layer for the same node: the dense context runs on it in full
    (its refusals still apply) and the constants it emits are thrown away,
    so they never reach flash."""
    return Layer(layer.graph, layer.node, storage=layer.storage)


def compression_summary(graph, aim: str = "balanced") -> dict | None:
    """What pruning bought, for tinycomp.json: per FULLY_CONNECTED / CONV_2D /
    DEPTHWISE_CONV_2D layer its sparsity, the int8 bytes dense storage would
    take, the bytes stored, the format chosen and why (the cost model's
    instruction estimates for both layouts). None when the model looks
    unpruned: no layer stored sparse and under 20% zeros overall (int8
    rounding alone zeroes a few percent of weights)."""
    layers = []
    for node in graph.nodes:
        op = node.op.value
        if op not in ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D") or len(node.inputs) < 2:
            continue
        t = graph.tensor(node.inputs[1])
        if t.data is None or t.dtype not in ("int8", "int4"):
            continue
        w = np.asarray(t.data)
        zeros = int(w.size - np.count_nonzero(w))
        est = choose(graph, node, aim) if op != "DEPTHWISE_CONV_2D" else None
        layer = Layer(graph, node, storage=aim)
        fmt = layer_format(layer) if est is not None else "dense"
        entry = {"index": node.index, "name": node.name, "op": op, "bits": 4 if t.dtype == "int4" else 8,
                 "weights": int(w.size), "sparsity": round(zeros / max(w.size, 1), 4),
                 "dense_bytes": t.nbytes,  # INT4: packed
                 "stored_bytes": t.nbytes if fmt == "dense" else _stream_bytes(layer, fmt),
                 "format": fmt}
        if est is not None:
            entry["reason"] = est["reason"] if aim != "size" else \
                f"the smallest constants of {', '.join(SIZE_FORMATS)} (--optimize size)"
            entry["sparse_bytes"] = est["sparse_bytes"]
            entry["model_instructions"] = {"dense_dsp": est.get("model_instructions_dense"),
                                           "sparse": est.get("model_instructions_sparse")}
        else:
            entry["reason"] = "no sparse kernel for this op"
        layers.append(entry)
    dense = sum(l["dense_bytes"] for l in layers)
    stored = sum(l["stored_bytes"] for l in layers)
    n = sum(l["weights"] for l in layers)
    overall = 1 - sum(l["weights"] * (1 - l["sparsity"]) for l in layers) / max(n, 1)
    if stored == dense and overall < 0.2:
        return None
    return {
        "sparsity": round(overall, 4),
        "float32_weight_bytes": 4 * n,
        "int8_dense_weight_bytes": dense,
        "stored_weight_bytes": stored,
        "ratio_vs_float32": round(4 * n / max(stored, 1), 2),
        "choice": {"balanced": "per layer: sparse only when smaller than dense int8 and, by the cost "
                               "model in tinycomp/codegen/ops/sparse.py (COST), not slower than the dense "
                               "DSP kernel on Cortex-M4",
                   "size": "per layer: the format (dense int8, offset-sparse, bitmap or gap) whose "
                           "constants take the fewest bytes (--optimize size)",
                   "speed": "per layer: sparse only when the cost model says it is faster than the dense "
                            "DSP kernel on Cortex-M4 (--optimize speed)"}[aim],
        "layers": layers,
    }
