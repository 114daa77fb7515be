"""Sparse weight storage for FULLY_CONNECTED and CONV_2D, chosen per layer
when it is smaller than dense int8 AND, by a calibrated cost model, not slower
than the dense kernel on a DSP core.

Format ("offset-sparse"): one byte stream per layer, rows (a dense unit or a
conv filter) back to back:

    count   nonzeros in the row                  (idx_bytes, little-endian)
    pairs   per nonzero: input offset, weight    (idx_bytes LE, then 1 byte)

The offset is where the weight's input sits relative to the output pixel's
window origin: (ky * dil_h * PW + kx * dil_w) * C + group * filter_c + c for
a conv (PW the width of the zero-padded input), the column for a dense unit.
idx_bytes is 1 when every offset and count is below 256, else 2.

Why offsets and not a bitmap: the kernel does exactly four instructions per
nonzero (LDRB offset, LDRSB weight, LDRSB input, MLA; the pointer step and
loop test are shared by four nonzeros) and nothing per zero weight. A bitmap
walk (the previous format) pays per bitmap byte and per set bit for the bit
search, and at the digits CNN's 85% sparsity it was twice slower than the
dense DSP kernel. The price is a byte per nonzero (1 bit per weight for a
bitmap): at 85% zeros 0.30 vs 0.28 of dense.

Why a padded input: with every tap in bounds, each nonzero's offset is a
build-time constant for every output pixel, and the input offset folds into
the bias for all of them. The pad value is the input zero point, whose
(x - zp) is 0: a padded tap adds exactly what TFLM's skipped tap adds.
The padded copy lives in the layer's scratch (RAM), made once per batch.

Arithmetic equals the dense kernels and TFLM: the same int32 products are
summed, only the zero ones are left out.
"""
from __future__ import annotations

import numpy as np

from ..layer import Layer
from .common import bias_const, channel_multipliers, folded_bias, fused_activation, uniform_pair
from .conv import check_io, check_weights, conv_2d, geometry
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
            v = np.append(row[nz].astype(np.int64), np.zeros(nz.size % 2, np.int64)) & 0xF
            out += [_le(off[nz], idx_bytes), (v[0::2] | (v[1::2] << 4)).astype(np.uint8)]
            continue
        pairs = np.concatenate([_le(off[nz], idx_bytes).reshape(nz.size, idx_bytes),
                                row[nz].astype(np.int8).view(np.uint8).reshape(-1, 1)], axis=1)
        out.append(pairs.reshape(-1))
    return np.concatenate(out).astype(np.uint8)


def _le(v: np.ndarray, n: int) -> np.ndarray:
    v = np.asarray(v, np.int64)
    return np.stack([(v >> (8 * i)) & 0xFF for i in range(n)], axis=-1).reshape(-1).astype(np.uint8)


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
    return {"geo": geo, "pad": pad, "pad_hw": (ph, pw), "offsets": offsets,
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


def _constant_bytes(context_fn, layer: Layer) -> int:
    scratch = _scratch(layer)
    context_fn(scratch)
    return sum(k.values.nbytes for k in scratch.constants)


def stores_sparse(layer: Layer) -> bool:
    """Whether the layer's weights are stored sparse, as the storage aim
    decides. For --optimize size the weight streams alone do not decide: both
    layouts are built on scratch layers and the one whose constants (weights,
    biases, multipliers, shifts, indices: what flash holds) take fewer bytes
    wins."""
    if not pays(layer):
        return False
    if layer.storage == "size":
        dense_fn, sparse_fn = _KERNELS[layer.node.op.value]
        return _constant_bytes(sparse_fn, layer) < _constant_bytes(dense_fn, layer)
    return True


def dense_or_sparse(layer: Layer) -> dict:
    """FULLY_CONNECTED and CONV_2D: the sparse kernel where stores_sparse says so."""
    dense_fn, sparse_fn = _KERNELS[layer.node.op.value]
    return sparse_fn(layer) if stores_sparse(layer) else dense_fn(layer)


def _fully_connected_sparse(layer: Layer) -> dict:
    fully_connected(_scratch(layer))  # the dense kernel's checks; its arrays are dropped
    w = layer.input(1)
    units, depth = w.shape
    act_min, act_max = fused_activation(layer)
    ib = choose(layer.graph, layer.node, layer.storage)["idx_bytes"]
    offsets = np.broadcast_to(np.arange(depth), (units, depth))
    mult, shift = channel_multipliers(layer, w.quant.scale, units,
                                      float_product=not w.quant.per_channel)
    return {
        "template": FC_SPARSE,
        "batches": layer.input().size // depth, "depth": depth, "units": units,
        "idx_bytes": ib, "int4": w.dtype == "int4",
        "stream": layer.const("values", encode(w.data, offsets, ib, w.dtype == "int4"), "uint8_t"),
        "bias": bias_const(layer, "bias", folded_bias(layer, w.data, 2, -layer.input().zero_point)),
        **_requant(layer, mult, shift, "o"),
        "out_offset": layer.output().zero_point,
        "act_min": act_min, "act_max": act_max,
    }


def _conv_2d_sparse(layer: Layer) -> dict:
    conv_2d(_scratch(layer))  # the dense kernel's checks of shapes, groups and quantization
    check_io(layer)
    w = layer.input(1)
    oc = w.shape[0]
    c = layer.input().shape[3]
    check_weights(layer, 0, oc)
    plan = _conv_plan(layer)
    geo = plan["geo"]
    ib = choose(layer.graph, layer.node, layer.storage)["idx_bytes"]
    rows = w.data.reshape(oc, -1)
    mult, shift = channel_multipliers(layer, w.quant.scale, oc)
    ph, pw = plan["pad_hw"]
    return {
        **geo,
        "template": CONV_SPARSE,
        "in_c": c, "out_c": oc, "idx_bytes": ib, "int4": w.dtype == "int4",
        "pad": plan["pad"], "p_h": ph, "p_w": pw,
        "copy_rows": plan["copy_rows"], "copy_cols": plan["copy_cols"],
        "in_zp": layer.input().zero_point,
        "scratch_bytes": ph * pw * c if plan["pad"] else 0,
        # every tap is in bounds of the padded input: the folded bias serves all pixels
        "bias": bias_const(layer, "bias_folded", folded_bias(layer, rows, 2, geo["in_offset"])),
        "stream": layer.const("values", encode(rows, plan["offsets"], ib, w.dtype == "int4"), "uint8_t"),
        **_requant(layer, mult, shift, "oc"),
    }


_KERNELS = {"FULLY_CONNECTED": (fully_connected, _fully_connected_sparse),
            "CONV_2D": (conv_2d, _conv_2d_sparse)}


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
        sparse = est is not None and stores_sparse(Layer(graph, node, storage=aim))
        entry = {"index": node.index, "name": node.name, "op": op, "bits": 4 if t.dtype == "int4" else 8,
                 "weights": int(w.size), "sparsity": round(zeros / max(w.size, 1), 4),
                 "dense_bytes": t.nbytes,  # INT4: packed
                 "stored_bytes": int(est["sparse_bytes"]) if sparse else t.nbytes,
                 "format": FORMAT if sparse else "dense"}
        if est is not None:
            entry["reason"] = est["reason"] if sparse or est["format"] != FORMAT else \
                "its sparse weights are smaller but its constants in all are not (--optimize size)"
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
                   "size": "per layer: sparse whenever smaller than dense int8 (--optimize size)",
                   "speed": "per layer: sparse only when the cost model says it is faster than the dense "
                            "DSP kernel on Cortex-M4 (--optimize speed)"}[aim],
        "layers": layers,
    }
