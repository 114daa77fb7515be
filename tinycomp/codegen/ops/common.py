"""Helpers shared by the kernel context functions."""
from __future__ import annotations

import numpy as np

from ...frontends.tflite import pack_int4
from ...passes.memory import window_lag
from ..fixedpoint import activation_range, quantize_multipliers
from ..layer import Layer


# value range of each activation type: a fused activation clamps within it
TYPE_LIMITS = {"int8": (-128, 127), "int16": (-32768, 32767)}


def fused_activation(layer: Layer) -> tuple[int, int]:
    act = layer.options.get("activation", "NONE")
    out = layer.output()
    if act not in ("NONE", "RELU", "RELU6", "RELU_N1_TO_1"):
        raise layer.refuse(f"fused activation {act} is not supported")
    lo, hi = TYPE_LIMITS.get(out.dtype, TYPE_LIMITS["int8"])
    return activation_range(act, out.scale, out.zero_point, lo, hi)


def check_filter_quant(layer: Layer, w, axis: int, channels: int) -> None:
    """A filter's quantization as TFLM's conv, depthwise and FC kernels need it:
    present, symmetric, and one scale or one per output channel along `axis`."""
    if w.quant is None:
        raise layer.refuse("filter is not quantized")
    if any(w.quant.zero_point):
        raise layer.refuse("filter must be symmetric (zero point 0)")
    n = len(w.quant.scale)
    if n != 1 and (n != channels or w.quant.axis != axis):
        raise layer.refuse(f"filter has {n} scales along axis {w.quant.axis}; "
                           f"expected 1 or {channels} along axis {axis}")


def lag(layer: Layer, geo: dict, block: int = 1, read_first: bool = False, row_blocks: bool = False) -> int:
    """Bytes by which this layer's output may start below its input (the
    planner's 'inplace_lag'), for a window kernel (geo: conv.geometry's) that
    produces `block` pixels at a time in row-major order (see
    passes.memory.window_lag)."""
    return window_lag(layer.input().shape, layer.output().shape, (geo["k_h"], geo["k_w"]),
                      (geo["stride_h"], geo["stride_w"]), (geo["pad_h"], geo["pad_w"]),
                      (geo["dil_h"], geo["dil_w"]), block=block, read_first=read_first, row_blocks=row_blocks)


def channel_multipliers(layer: Layer, weight_scales, channels: int,
                        float_product: bool = False) -> tuple[str, str]:
    """Per-output-channel requantization constants, scale_in * scale_w / scale_out
    in double precision as TFLM computes them; per-tensor weights broadcast.
    float_product: TFLM's per-tensor FULLY_CONNECTED multiplies the two scales
    in float32 before widening to double."""
    scales = np.broadcast_to(np.asarray(weight_scales, dtype=np.float32), (channels,))
    s_in, s_out = np.float32(layer.input().scale), float(np.float32(layer.output().scale))
    if float_product:
        reals = [float(s_in * s) / s_out for s in scales]
    else:
        reals = [float(s_in) * float(s) / s_out for s in scales]
    mult, shift = quantize_multipliers(reals)
    return layer.const("mult", mult, "int32_t"), layer.const("shift", shift, "int8_t")


def uniform_pair(layer: Layer, mult: str, shift: str) -> tuple[int, int] | None:
    """(multiplier, shift) when every channel has the same pair (per-tensor
    weights, or channels that happen to agree): its two arrays are dropped
    from the layer's constants, the kernel takes the pair as literals (no
    flash, no loads). None otherwise, the arrays kept."""
    by_name = {c.name: c for c in layer.constants}
    m, s = by_name[mult].values, by_name[shift].values
    if len(set(m.tolist())) != 1 or len(set(s.tolist())) != 1:
        return None
    layer.constants.remove(by_name[mult])
    layer.constants.remove(by_name[shift])
    return int(m[0]), int(s[0])


def bias_const(layer: Layer, suffix: str, values) -> str:
    """A bias array as int16 when every value fits, else int32: the kernels
    read it into an int32 accumulator (LDRSH instead of LDR), so the narrower
    array changes no result and costs no instruction."""
    v = np.asarray(values, np.int64).reshape(-1)
    narrow = v.size and -(1 << 15) <= v.min() and v.max() < 1 << 15
    return layer.const(suffix, v, "int16_t" if narrow else "int32_t")


def folded_bias(layer: Layer, weights: np.ndarray, bias_index: int, input_offset: int) -> np.ndarray:
    """bias + input_offset * sum(weights) per output channel (axis 0 of weights):
    sum((x + off) * w) + b == sum(x * w) + (b + off * sum(w)) in int32, so the
    input offset costs nothing at run time."""
    w = weights.reshape(weights.shape[0], -1).astype(np.int64)
    bias = np.zeros(w.shape[0], dtype=np.int64)
    if layer.has_input(bias_index):
        bias += layer.input(bias_index).data.astype(np.int64).reshape(-1)
    return bias + input_offset * w.sum(axis=1)


def int4_weights(layer: Layer, values: np.ndarray) -> str:
    """INT4 weights (values in [-8, 7]) emitted packed as TFLite stores them,
    element 2i in the low nibble of byte i and 2i + 1 in the high one
    (templates read element i with tc_int4): half the bytes of int8."""
    return layer.const("weights4", pack_int4(values), "uint8_t")
