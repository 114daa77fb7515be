"""16x8 FULLY_CONNECTED, CONV_2D and DEPTHWISE_CONV_2D: int16 activations
(symmetric, zero point 0), symmetric int8 weights, int64 (or int32) bias.

What TFLM's reference kernels compute (docs/arithmetic.md, section 16):
    acc = bias[c] + sum over in-bounds taps of w * x     (no offsets: zp = 0)
    y   = clamp(MultiplyByQuantizedMultiplier(acc, m[c], s[c]))
The accumulator's type follows the bias: an int64 bias, or no bias at all
(TFLM's 2026 change: bias-less 16x8 layers accumulate in 64 bits too),
accumulates in int64 and takes the 64-bit MultiplyByQuantizedMultiplier,
which rounds once with the multiplier reduced to 16 bits:
    rm = m < 0x7FFF0000 ? (m + 2^15) >> 16 : 0x7FFF
    y  = (int32)((acc * rm + 2^(14 - s)) >> (15 - s))
An int32 bias accumulates in int32 (wrapping, as the hardware does) and
takes the int8 kernels' double-rounding requantization.

The three ops share one plain C kernel (templates/kernels/int16/conv.c.j2):
FULLY_CONNECTED is a 1x1 convolution over a 1x1 image per input row, and
DEPTHWISE_CONV_2D reads input channel oc / depth_multiplier and weight
column oc. Correctness first: no DSP variant.
"""
from __future__ import annotations

import numpy as np

from ..fixedpoint import f32, quantize_multipliers
from ..layer import Layer
from .common import check_filter_quant, fused_activation
from .conv import window_geometry

TEMPLATE = "kernels/int16/conv.c.j2"
# TFLM's 64-bit MultiplyByQuantizedMultiplier assumes |acc| < 2^47 and a
# shift below 8 (15 - shift must stay a positive shift count).
ACC64_LIMIT = 1 << 47


def check_symmetric_int16(layer: Layer, *tensors) -> None:
    """TFLM's 16x8 kernels require int16 activations with zero point 0."""
    for t in tensors:
        if t.dtype != "int16":
            raise layer.refuse(f"tensor {t.name!r} is {t.dtype}; the 16x8 kernel needs int16")
        if t.quant is None or t.quant.per_channel:
            raise layer.refuse(f"tensor {t.name!r} needs one (per-tensor) scale")
        if t.zero_point != 0:
            raise layer.refuse(f"int16 tensor {t.name!r} has zero point {t.zero_point}; "
                               "TFLM's 16x8 kernels need 0 (symmetric)")
        if not np.isfinite(t.scale) or f32(t.scale) <= 0.0:
            raise layer.refuse(f"tensor {t.name!r} has scale {t.scale!r}; it must be positive")


def _weights(layer: Layer, rank: int, axis: int, channels: int):
    w = layer.input(1)
    if not w.is_const or w.dtype != "int8" or len(w.shape) != rank or w.quant is None:
        raise layer.refuse(f"filter must be a constant, quantized {rank}-D int8 tensor")
    check_filter_quant(layer, w, axis, channels)
    return w


def _bias(layer: Layer, channels: int, int32_ok: bool) -> tuple[np.ndarray | None, bool]:
    """(bias values or None, accumulate in 64 bits)."""
    if not layer.has_input(2):
        return None, True
    b = layer.input(2)
    if b.dtype == "int32" and not int32_ok:
        # TFLM's 16x8 depthwise kernel reads its bias as int64 whatever the
        # tensor's type (measured: an int32 bias gives garbage there)
        raise layer.refuse("an int32 bias with int16 activations is not supported "
                           "(TFLM's 16x8 kernel takes an int64 bias)")
    if not b.is_const or b.dtype not in ("int32", "int64") or b.size != channels:
        raise layer.refuse(f"bias must be a constant int64 (or int32) vector of {channels}")
    return b.data.astype(np.int64).reshape(-1), b.dtype == "int64"


def _requant(layer: Layer, weight_scales, channels: int, float_product: bool,
             acc64: bool, acc_bound: int) -> dict:
    scales = np.broadcast_to(np.asarray(weight_scales, dtype=np.float32), (channels,))
    s_in, s_out = np.float32(layer.input().scale), float(np.float32(layer.output().scale))
    reals = [float(s_in * s) / s_out if float_product else float(s_in) * float(s) / s_out
             for s in scales]
    mult, shift = quantize_multipliers(reals)
    if not acc64:
        return {"mult": layer.const("mult", mult, "int32_t"),
                "shift": layer.const("shift", shift, "int8_t")}
    if shift.max(initial=0) > 7:
        raise layer.refuse("an output rescale factor of 128 or more is outside what TFLM's "
                           "64-bit requantization handles (shift above 7)")
    if acc_bound >= ACC64_LIMIT:
        raise layer.refuse("its bias and weights can make the 64-bit accumulator reach 2^47, "
                           "beyond TFLM's 64-bit requantization")
    reduced = np.where(mult < 0x7FFF0000, (mult + (1 << 15)) >> 16, 0x7FFF)
    return {"mult": layer.const("rmult", reduced, "int32_t"),
            "shift": layer.const("rshift", 15 - shift, "int8_t")}


def _context(layer: Layer, geo: dict, w_oc_taps: np.ndarray, weight_scales, channels: int,
             float_product: bool, int32_bias_ok: bool = True) -> dict:
    bias, acc64 = _bias(layer, channels, int32_bias_ok)
    taps = int(np.prod(w_oc_taps.shape[1:]))
    bound = (0 if bias is None else int(np.abs(bias).max(initial=0))) + taps * 32768 * 128
    act_min, act_max = fused_activation(layer)
    ctx = dict(geo)
    ctx.update(_requant(layer, weight_scales, channels, float_product, acc64, bound))
    ctx.update({
        "template": TEMPLATE, "acc64": acc64,
        "weights": layer.const("w", w_oc_taps, "int8_t"),
        "bias": None if bias is None else layer.const(
            "bias", bias, "int64_t" if acc64 else "int32_t"),
        "act_min": act_min, "act_max": act_max, "out_ch": channels,
    })
    return ctx


def _geometry(layer: Layer, kh: int, kw: int, channels: int) -> dict:
    return {**window_geometry(layer, kh, kw, channels), "in_ch": layer.input().shape[3]}


def _conv_io(layer: Layer, weight_axis: int):
    """(x, y, output channels, weights) of a 16x8 conv or depthwise: int16 NHWC
    activations with zero point 0, int8 weights per channel along weight_axis."""
    x, y = layer.input(), layer.output()
    check_symmetric_int16(layer, x, y)
    if len(x.shape) != 4 or len(y.shape) != 4:
        raise layer.refuse("input and output must be 4-D (NHWC)")
    oc = y.shape[3]
    return x, y, oc, _weights(layer, 4, weight_axis, oc)


def conv_2d16(layer: Layer) -> dict:
    x, y, oc, w = _conv_io(layer, 0)
    o, kh, kw, ci = w.shape
    if o != oc or ci < 1 or x.shape[3] % ci:
        raise layer.refuse(f"filter {list(w.shape)} does not fit input {list(x.shape)} "
                           f"and output {list(y.shape)}")
    groups = x.shape[3] // ci
    if oc % groups:
        raise layer.refuse(f"{oc} output channels do not split into {groups} groups")
    geo = _geometry(layer, kh, kw, oc)
    geo.update(depthwise=False, group_in=ci, group_out=oc // groups)
    return _context(layer, geo, w.data.reshape(oc, -1), w.quant.scale, oc, False)


def depthwise_conv_2d16(layer: Layer) -> dict:
    x, y, oc, w = _conv_io(layer, 3)
    _, kh, kw, wc = w.shape
    mult = int(layer.options.get("depth_multiplier", 1) or 1)
    if wc != oc or w.shape[0] != 1 or x.shape[3] * mult != oc:
        raise layer.refuse(f"filter {list(w.shape)} and depth multiplier {mult} do not fit "
                           f"input {list(x.shape)} and output {list(y.shape)}")
    geo = _geometry(layer, kh, kw, oc)
    geo.update(depthwise=True, multiplier=mult, group_in=1, group_out=1)
    # taps laid out per output channel: (oc, kh * kw)
    return _context(layer, geo, w.data.reshape(kh * kw, oc).T, w.quant.scale, oc, False,
                    int32_bias_ok=False)


def fully_connected16(layer: Layer) -> dict:
    x, y = layer.input(), layer.output()
    check_symmetric_int16(layer, x, y)
    w = _weights(layer, 2, 0, layer.input(1).shape[0] if len(layer.input(1).shape) == 2 else 0)
    units, depth = w.shape
    if depth < 1 or x.size % depth or y.size != (x.size // depth) * units:
        raise layer.refuse(f"input of {x.size} values and output of {y.size} do not fit "
                           f"weights {list(w.shape)}")
    rows = x.size // depth
    geo = {"batches": rows, "in_h": 1, "in_w": 1, "in_ch": depth, "out_h": 1, "out_w": 1,
           "k_h": 1, "k_w": 1, "stride_h": 1, "stride_w": 1, "dil_h": 1, "dil_w": 1,
           "pad_h": 0, "pad_w": 0, "depthwise": False, "group_in": depth, "group_out": units}
    # scales multiplied in double, per-tensor too: the 16x8 path of the TFLM
    # we match does not round s_in * s_w to float32 first (measured: a
    # multiplier a hair under 2^-17 takes the 0x7FFF branch of the 64-bit
    # requantization there)
    return _context(layer, geo, w.data.reshape(units, depth), w.quant.scale, units, False)
