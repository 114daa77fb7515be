"""QUANTIZE and DEQUANTIZE at the model's edges: float32 -> int8, int8 ->
float32, int8 <-> int16, int8 <-> uint8 (int8 -> int8 is a table:
activations.quantize).

What TFLM's reference kernels compute (docs/arithmetic.md, section 15):
- QUANTIZE float32 -> int8 (AffineQuantize): the quotient x / scale in
  float32, rounded half away from zero, plus the zero point, saturated.
- DEQUANTIZE int8 -> float32: float32(double(scale) * (q - zp)). The double
  product is exact (a 24-bit mantissa times a 9-bit integer), so one float32
  multiply, which IEEE rounds once to nearest, gives the same bits.
- QUANTIZE int8 <-> int16, int8 <-> uint8 (Requantize; TFLM's uint8/int8
  shortcut for equal scales and zero points 128 apart gives the same bytes): MultiplyByQuantizedMultiplier of
  q - zp_in by double(s_in) / double(s_out), plus zp_out, saturated to the
  output type.
"""
from __future__ import annotations

import numpy as np

from ..fixedpoint import f32, quantize_multiplier
from ..layer import Layer, c_type

LIMITS = {"int8": (-128, 127), "int16": (-32768, 32767), "uint8": (0, 255),
          "int32": (-(1 << 31), (1 << 31) - 1)}


def _quantized(layer: Layer, t, role: str):
    if t.quant is None or t.quant.per_channel:
        # TFLM's per-channel QUANTIZE exists only for float -> int8 weights
        # quantized at run time, which no integer model needs.
        raise layer.refuse(f"the {role} {t.name!r} needs one (per-tensor) scale and zero point")
    if not np.isfinite(t.scale) or f32(t.scale) <= 0.0:
        raise layer.refuse(f"the {role} {t.name!r} has scale {t.scale!r}; it must be positive")
    return t


def _same_size(layer: Layer, x, y) -> None:
    if x.size != y.size:
        raise layer.refuse(f"input has {x.size} values but output {y.size}")


def quantize_float(layer: Layer) -> dict:
    x, y = layer.input(), _quantized(layer, layer.output(), "output")
    _same_size(layer, x, y)
    lo, hi = LIMITS[y.dtype]
    return {
        "size": x.size, "scale": f32(y.scale), "zero_point": y.zero_point, "lo": lo, "hi": hi,
        "out_ctype": c_type(y.dtype),
        # Past +-limit the result saturates whatever the zero point, so the
        # integer conversion only ever sees quotients it can hold (TFLM
        # converts any quotient, which is undefined behaviour beyond int32).
        "limit": float(2 * (hi - lo + 1)),
        # element i is written (1 byte) after float i (bytes 4i..4i+3) is read
        "inplace": True,
    }


def dequantize(layer: Layer) -> dict:
    x, y = _quantized(layer, layer.input(), "input"), layer.output()
    _same_size(layer, x, y)
    return {"size": x.size, "scale": f32(x.scale), "zero_point": x.zero_point}


def requantize(layer: Layer) -> dict:
    x = _quantized(layer, layer.input(), "input")
    y = _quantized(layer, layer.output(), "output")
    _same_size(layer, x, y)
    mult, shift = quantize_multiplier(f32(x.scale) / f32(y.scale))
    # (q - zp_in) has at most 17 bits; TFLM shifts it left by `shift` in int32.
    # An int32 input (zero point 0) has 32: any left shift may overflow.
    if shift > (0 if x.dtype == "int32" else 14):
        raise layer.refuse(f"rescale factor {f32(x.scale) / f32(y.scale):g} is too large "
                           "(it overflows TFLM's int32 arithmetic)")
    if y.dtype == "int32":
        # the requantized value plus zp_out (0 for int32) cannot leave int32,
        # so the clamp to its limits is the identity: C gets no out-of-range literal
        return {"size": x.size, "mult": mult, "shift": shift, "in_zp": x.zero_point,
                "out_zp": 0, "lo": "INT32_MIN", "hi": "INT32_MAX", "out_ctype": "int32_t",
                "what": f"QUANTIZE {x.dtype} -> int32: requantize"}
    lo, hi = LIMITS[y.dtype]
    return {"size": x.size, "mult": mult, "shift": shift, "in_zp": x.zero_point,
            "out_zp": y.zero_point, "lo": lo, "hi": hi, "out_ctype": c_type(y.dtype),
            "what": f"QUANTIZE {x.dtype} -> {y.dtype}: requantize"}
