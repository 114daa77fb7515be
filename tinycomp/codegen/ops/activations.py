"""Activations and int8 requantization: SOFTMAX, LOGISTIC, TANH, RELU, RELU6,
LEAKY_RELU, HARD_SWISH, QUANTIZE.

The element-wise ones map each of the 256 int8 inputs to one output, so the
exact TFLM result for every input is computed here (tinycomp.reference
reproduces TFLM's integer arithmetic) and the kernel is a table lookup.
SOFTMAX gets a table of exp(difference) and does the per-row sum and
reciprocal in C.
"""
from __future__ import annotations

import numpy as np

from ...reference import activations as ref
from ...reference import softmax as ref_softmax
from ..layer import Layer


def _int8_io(layer: Layer) -> tuple:
    x, y = layer.input(), layer.output()
    if x.dtype != "int8" or y.dtype != "int8":
        raise layer.refuse(f"only int8 -> int8 is supported, not {x.dtype} -> {y.dtype}")
    if x.quant is None or y.quant is None:
        raise layer.refuse("input and output must be quantized")
    if x.size != y.size:
        raise layer.refuse(f"input has {x.size} values but output {y.size}")
    return x, y


def _lut(layer: Layer, table: np.ndarray, what: str) -> dict:
    return {
        "size": layer.input().size,
        "lut": layer.const("lut", ref.lut_for_uint8_index(table), "int8_t"),
        "what": what,
        # each element is read once, then its own output written
        "inplace": True,
    }


def _table(layer: Layer, make, *args) -> np.ndarray:
    try:
        return make(*args)
    except ref.NotCompilable as exc:
        raise layer.refuse(str(exc)) from None


def logistic(layer: Layer) -> dict:
    x, y = _int8_io(layer)
    if y.zero_point != -128:
        # TFLM's Prepare requires it (and then assumes scale 1/256 regardless).
        raise layer.refuse(f"output zero point must be -128, not {y.zero_point}")
    return _lut(layer, _table(layer, ref.logistic_table, x.scale, x.zero_point),
                "LOGISTIC: TFLM's gemmlowp logistic per input value")


def tanh(layer: Layer) -> dict:
    x, _ = _int8_io(layer)
    # TFLM does not read the output quantization: its output is always 1/128, zp 0.
    return _lut(layer, _table(layer, ref.tanh_table, x.scale, x.zero_point),
                "TANH: TFLM's gemmlowp tanh per input value")


def relu(layer: Layer) -> dict:
    x, y = _int8_io(layer)
    return _lut(layer, _table(layer, ref.relu_table, x.scale, x.zero_point, y.scale, y.zero_point),
                "RELU: requantize to the output scale, clamp at its zero point")


def relu6(layer: Layer) -> dict:
    x, _ = _int8_io(layer)
    # TFLM clamps on the input's codes and ignores the output quantization.
    return _lut(layer, _table(layer, ref.relu6_table, x.scale, x.zero_point),
                "RELU6: clamp input codes to [zero, six] (TFLM ignores the output quantization)")


def leaky_relu(layer: Layer) -> dict:
    x, y = _int8_io(layer)
    alpha = float(layer.options.get("alpha", 0.2))
    if not np.isfinite(alpha):
        raise layer.refuse(f"alpha {alpha} is not a finite number")
    return _lut(layer, _table(layer, ref.leaky_relu_table, x.scale, x.zero_point,
                              y.scale, y.zero_point, alpha),
                "LEAKY_RELU: requantize by s_in/s_out, or by s_in*alpha/s_out below the zero point")


def hard_swish(layer: Layer) -> dict:
    x, y = _int8_io(layer)
    return _lut(layer, _table(layer, ref.hard_swish_table, x.scale, x.zero_point,
                              y.scale, y.zero_point),
                "HARD_SWISH: TFLM's int16 fixed-point steps per input value")


def quantize(layer: Layer) -> dict:
    x, y = _int8_io(layer)
    if y.quant.per_channel:
        raise layer.refuse("per-channel output quantization is not supported (nor by TFLM)")
    return _lut(layer, _table(layer, ref.requantize_table, x.scale, x.zero_point,
                              y.scale, y.zero_point),
                "QUANTIZE int8 -> int8: requantize")


def softmax(layer: Layer) -> dict:
    x, y = _int8_io(layer)
    if y.zero_point != -128 or np.float32(y.scale) != np.float32(1.0) / np.float32(256.0):
        # TFLM's Prepare demands exactly this output quantization.
        raise layer.refuse(f"output quantization must be scale 1/256, zero point -128 "
                           f"(got {y.scale:g}, {y.zero_point})")
    if not x.shape:
        raise layer.refuse("input must have at least one dimension")
    depth = x.shape[-1]
    if depth < 1:
        raise layer.refuse("empty last axis")
    beta = float(layer.options.get("beta", 1.0))
    table = _table(layer, ref_softmax.exp_table, beta, x.scale)
    mult, shift, _ = ref_softmax.softmax_params(beta, x.scale)
    # --optimize size: the kernel computes each exp (a few dozen instructions
    # per element, once per output) instead of keeping 4 bytes per entry in flash
    computed = layer.storage == "size"
    return {
        "rows": x.size // depth,
        "depth": depth,
        "n": len(table),
        "exp": None if computed else layer.const("exp", table, "int32_t"),
        "exp_mult": mult, "exp_shift": shift,
        # within a row every input is read (max, sum) before the last pass,
        # which reads each element before writing its own output
        "inplace": True,
    }
