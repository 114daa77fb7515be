"""Sparse weight storage for FULLY_CONNECTED and CONV_2D, chosen when it makes a layer smaller.

Pruned weights are exact int8 zeros after conversion, but a dense array still
spends a byte on each. The sparse format stores, per output row (a dense unit
or a conv filter):

    bitmap  one bit per weight, grouped per filter tap (ky, kx): each tap's
            `filter_c` channels start on a byte boundary, so a kernel can skip
            a whole tap (out of bounds at the border) with a popcount and
            never needs a division to locate a channel. FULLY_CONNECTED is one
            tap of `depth` channels.
    values  the nonzero int8 weights, in row order, rows back to back.

Rows are visited in order and every row consumes exactly its own values, so
no per-row offsets are stored: the value pointer simply runs on. Cost per
row: taps * ceil(filter_c / 8) bitmap bytes + nonzeros. The kernels walk the
set bits of each byte (count-trailing-zeros, clear lowest bit), so zero
weights cost nothing but the byte test: faster than dense when most weights
are zero, which is also when the format is chosen.

Arithmetic equals the dense kernels (and TFLM): the same int32 products are
summed, only the zero ones are left out, and the zero-point folding and
border handling are those of ops/conv.py.
"""
from __future__ import annotations

import numpy as np

from ..layer import Layer
from .common import channel_multipliers, folded_bias, fused_activation
from .conv import biases, check_io, check_weights, conv_2d, geometry
from .fully_connected import fully_connected

FC_SPARSE = "kernels/fully_connected_sparse.c.j2"
CONV_SPARSE = "kernels/conv_2d_sparse.c.j2"


def encode(rows: np.ndarray, taps: int, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """(bitmap uint8, nonzero values int8) of weights shaped (rows, taps * channels),
    bits little-endian within a byte, each tap's channels padded to whole bytes."""
    w = np.asarray(rows).reshape(len(rows), taps, channels)
    group = -(-channels // 8)
    bits = np.zeros((len(rows), taps, group * 8), np.uint8)
    bits[:, :, :channels] = w != 0
    bitmap = np.packbits(bits, axis=-1, bitorder="little").reshape(-1)
    values = w[w != 0]  # C order: row, tap, channel, as the kernels read them
    return bitmap, values.astype(np.int8)


def sparse_bytes(rows: int, taps: int, channels: int, nonzeros: int) -> int:
    return rows * taps * (-(-channels // 8)) + nonzeros


def layer_shape(op: str, weights: np.ndarray) -> tuple[int, int, int]:
    """(rows, taps, channels) of a weight tensor in the sparse layout."""
    if op == "FULLY_CONNECTED":
        return weights.shape[0], 1, weights.shape[1]
    oc, kh, kw, ci = weights.shape
    return oc, kh * kw, ci


def pays(op: str, weights: np.ndarray) -> bool:
    """The sparse layout is used only when it stores fewer bytes than dense int8."""
    rows, taps, channels = layer_shape(op, weights)
    return sparse_bytes(rows, taps, channels, int(np.count_nonzero(weights))) < weights.size


def fully_connected_auto(layer: Layer) -> dict:
    w = layer.input(1)
    if not (w.is_const and w.dtype == "int8" and len(w.shape) == 2 and pays("FULLY_CONNECTED", w.data)):
        return fully_connected(layer)
    fully_connected(_scratch(layer))  # the dense kernel's checks; its arrays are dropped
    units, depth = w.shape
    act_min, act_max = fused_activation(layer)
    bitmap, values = encode(w.data, 1, depth)
    mult, shift = channel_multipliers(layer, w.quant.scale, units,
                                      float_product=not w.quant.per_channel)
    return {
        "template": FC_SPARSE,
        "batches": layer.input().size // depth, "depth": depth, "units": units,
        "row_bytes": -(-depth // 8),
        "bitmap": layer.const("bitmap", bitmap, "uint8_t"),
        "values": layer.const("values", values, "int8_t"),
        "bias": layer.const("bias", folded_bias(layer, w.data, 2, -layer.input().zero_point), "int32_t"),
        "mult": mult, "shift": shift,
        "out_offset": layer.output().zero_point,
        "act_min": act_min, "act_max": act_max,
    }


def conv_2d_auto(layer: Layer) -> dict:
    w = layer.input(1)
    if not (w.is_const and w.dtype == "int8" and len(w.shape) == 4 and pays("CONV_2D", w.data)):
        return conv_2d(layer)
    conv_2d(_scratch(layer))  # the dense kernel's checks of shapes, groups and quantization
    check_io(layer)
    oc, kh, kw, ci = w.shape
    c = layer.input().shape[3]
    check_weights(layer, 0, oc)
    geo = geometry(layer, kh, kw, oc)
    bitmap, values = encode(w.data.reshape(oc, -1), kh * kw, ci)
    mult, shift = channel_multipliers(layer, w.quant.scale, oc)
    return {
        **geo, **biases(layer, geo, w.data),
        "template": CONV_SPARSE,
        "in_c": c, "out_c": oc, "filter_c": ci,
        "groups": c // ci, "filters_per_group": oc // (c // ci),
        "tap_bytes": -(-ci // 8),
        "bitmap": layer.const("bitmap", bitmap, "uint8_t"),
        "values": layer.const("values", values, "int8_t"),
        "mult": mult, "shift": shift,
    }


def _scratch(layer: Layer) -> Layer:
    """A fresh Layer for the same node: the dense context runs on it in full
    (its refusals still apply) and the constants it emits are thrown away,
    so they never reach flash."""
    return Layer(layer.graph, layer.node)


def compression_summary(graph) -> dict | None:
    """What pruning bought, for tinycomp.json: per FULLY_CONNECTED / CONV_2D /
    DEPTHWISE_CONV_2D layer its sparsity, the int8 bytes dense storage would
    take and the bytes stored (sparse layout where it pays). None when the
    model looks unpruned: no layer stored sparse and under 20% zeros overall
    (int8 rounding alone zeroes a few percent of weights)."""
    layers = []
    for node in graph.nodes:
        op = node.op.value
        if op not in ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D") or len(node.inputs) < 2:
            continue
        t = graph.tensor(node.inputs[1])
        if t.data is None or t.dtype != "int8":
            continue
        w = np.asarray(t.data)
        zeros = int(w.size - np.count_nonzero(w))
        sparse = op != "DEPTHWISE_CONV_2D" and pays(op, w)
        stored = sparse_bytes(*layer_shape(op, w), w.size - zeros) if sparse else w.size
        layers.append({"index": node.index, "name": node.name, "op": op,
                       "weights": int(w.size), "sparsity": round(zeros / max(w.size, 1), 4),
                       "dense_bytes": int(w.size), "stored_bytes": int(stored),
                       "format": "bitmap-sparse" if sparse else "dense"})
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
        "layers": layers,
    }
