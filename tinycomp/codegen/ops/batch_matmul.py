"""BATCH_MATMUL int8, as TFLite Micro's reference computes it:
out[b, i, j] = clamp(requant(sum_k (L[b, i, k] - zp_l) * (R[b, k, j] - zp_r))
+ zp_out) over the full int8 range (the op has no fused activation), with
adj_x / adj_y reading L / R transposed and batch dimensions broadcast. The
multiplier is float32(scale_l * scale_r) / scale_out in double
(GetQuantizedConvolutionMultipler). Either input may be a constant.
"""
from __future__ import annotations

import numpy as np

from ...ir.shapes import batch_matmul_dims
from ..fixedpoint import quantize_multiplier
from ..layer import Layer


def _batch_offsets(shape: tuple, batch: tuple, matrix: int) -> list[int]:
    """Element offset of each broadcast batch's matrix in a tensor of `shape`."""
    dims = (1,) * (len(batch) + 2 - len(shape)) + tuple(shape)
    own = dims[:-2]
    strides = np.cumprod((1,) + tuple(reversed(own)))[:-1][::-1] if own else ()
    offsets = []
    for index in np.ndindex(*batch) if batch else [()]:
        k = sum(int(s) * (i if d > 1 else 0) for i, d, s in zip(index, own, strides))
        offsets.append(k * matrix)
    return offsets


def batch_matmul(layer: Layer) -> dict:
    lhs, rhs, out = layer.input(0), layer.input(1), layer.output()
    if lhs.dtype != "int8" or rhs.dtype != "int8":
        raise layer.refuse(f"{lhs.dtype} x {rhs.dtype} is not supported (int8 x int8)")
    for t in (lhs, rhs):
        if t.quant is None or t.quant.per_channel:
            raise layer.refuse(f"{t.name!r} must be quantized per tensor")
    adj_x, adj_y = bool(layer.options.get("adj_x", False)), bool(layer.options.get("adj_y", False))
    batch, rows, depth, _, cols = batch_matmul_dims(lhs.shape, rhs.shape, adj_x, adj_y)
    product = float(np.float32(lhs.scale) * np.float32(rhs.scale))  # float32, as C++ multiplies them
    mult, shift = quantize_multiplier(product / float(np.float32(out.scale)))
    acts = iter(f"in{k}" for k in range(2))
    names = [layer.const(f"{side}", t.data, "int8_t") if t.is_const else next(acts)
             for side, t in (("lhs", lhs), ("rhs", rhs))]
    loffs = _batch_offsets(lhs.shape, batch, rows * depth)
    roffs = _batch_offsets(rhs.shape, batch, depth * cols)
    return {
        "batches": len(loffs), "rows": rows, "cols": cols, "depth": depth,
        "lhs": names[0], "rhs": names[1],
        "loffs": layer.const("loffs", loffs, "int32_t") if len(loffs) > 1 else None,
        "roffs": layer.const("roffs", roffs, "int32_t") if len(roffs) > 1 else None,
        # element (i, k) of L and (k, j) of R, as strides
        "l_i": 1 if adj_x else depth, "l_k": rows if adj_x else 1,
        "r_k": 1 if adj_y else cols, "r_j": depth if adj_y else 1,
        "zp_l": lhs.zero_point, "zp_r": rhs.zero_point, "zp_out": out.zero_point,
        "mult": mult, "shift": shift,
    }
